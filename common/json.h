/*
 * json: strict RFC 8259 validation and exact compaction of one JSON text.
 *
 * Why not cJSON for this: cJSON keeps numbers as doubles (2^53+1 and 1.10
 * would change on a round trip) and accepts non-standard input (leading
 * zeros, raw control characters in strings). Messages are committed and
 * compared byte for byte, so the committed form must be the publisher's own
 * bytes minus insignificant whitespace. cJSON is still used where a tree is
 * needed (config, HTTP answers).
 */
#ifndef SC_JSON_H
#define SC_JSON_H

#include <stddef.h>

/* Maximum nesting of arrays and objects accepted. */
#define SC_JSON_MAX_DEPTH 256

typedef struct sc_json_error {
  size_t offset;      /* byte offset in the input where it went wrong */
  const char *reason; /* static text, e.g. "unterminated string" */
} sc_json_error_t;

/*
 * Validate in[0..len) as exactly one JSON value in UTF-8 (whitespace around
 * it allowed, nothing else) and write its compact form to out, which must
 * have room for len bytes (it is never longer); out is not NUL-terminated.
 * Returns 0 and sets *outlen, or SC_EJSON / SC_EUTF8 and fills *err (may be NULL).
 */
__attribute__((warn_unused_result)) int sc_json_compact(const char *in, size_t len, char *out, size_t *outlen,
                                                       sc_json_error_t *err);

/* Append s[0..len) to out as a JSON string body (no quotes), escaping as
 * needed; out must have room for 6*len bytes. Returns bytes written. */
size_t sc_json_escape(char *out, const char *s, size_t len);

#endif
