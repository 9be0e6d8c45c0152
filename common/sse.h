/*
 * sse: Server-Sent Events framing and the small parsers the SSE endpoint
 * needs, all pure (no I/O, no loop) so they are unit-tested in isolation.
 *
 * - Framing: "id: X\nevent: E\ndata: D\n\n" (a data value containing '\n'
 *   becomes several data lines), comment lines (": text\n\n") and the
 *   "retry: N\n\n" line sent first on every stream.
 * - Event ids are "<epoch>-<seq>": epoch is the 16 lower-case hex digits of
 *   statecast:epoch, seq the commit sequence. They mean the same thing on
 *   every apiserver replica and across restarts.
 * - Topic selection: a filter of up to SC_SSE_MAX_PATTERNS patterns, each an
 *   exact topic or a glob where '*' matches any run of characters
 *   (including '/'). An empty filter matches every topic.
 */
#ifndef SC_SSE_H
#define SC_SSE_H

#include <stddef.h>
#include <stdint.h>

#define SC_SSE_EPOCH_LEN 16
/* "<16 hex>-<20 digits>" plus NUL. */
#define SC_SSE_ID_MAX (SC_SSE_EPOCH_LEN + 1 + 20 + 1)
#define SC_SSE_MAX_PATTERNS 32
#define SC_SSE_PATTERN_MAX 200

/* Upper bound of the bytes sc_sse_frame() writes. */
size_t sc_sse_frame_size(size_t id_len, size_t event_len, size_t data_len);
/* The exact bytes sc_sse_frame() writes (with an id and an event) when data
 * has no '\n' or '\r', e.g. compact JSON: a frame kept for long is sized
 * with this, not with the bound above (up to 7 times the data). */
size_t sc_sse_frame_size_line(size_t id_len, size_t event_len, size_t data_len);
/*
 * Write one event into out (room for sc_sse_frame_size()). id may be NULL
 * (no id line), event may be NULL (no event line, i.e. "message"). Every
 * '\n' in data starts a new "data: " line; '\r' is dropped. Returns bytes
 * written (not NUL-terminated).
 */
size_t sc_sse_frame(char *out, const char *id, size_t id_len, const char *event, const char *data, size_t data_len);
/* ": text\n\n" into out (cap bytes); text must not contain newlines.
 * Returns bytes written, or 0 if it does not fit. */
size_t sc_sse_comment(char *out, size_t cap, const char *text);
/* "retry: ms\n\n" into out. Returns bytes written, or 0 if it does not fit. */
size_t sc_sse_retry(char *out, size_t cap, unsigned ms);

/* Write "<epoch>-<seq>" NUL-terminated into out (SC_SSE_ID_MAX bytes);
 * epoch is SC_SSE_EPOCH_LEN chars. Returns the length. */
size_t sc_sse_id_format(char *out, const char *epoch, uint64_t seq);
/*
 * Parse an event id "<epoch>-<seq>" (s[0..len), surrounding blanks allowed).
 * epoch_out gets the 16 hex digits NUL-terminated (SC_SSE_EPOCH_LEN+1 bytes).
 * Returns 0, or SC_EINVAL for anything else (wrong epoch length or
 * characters, missing/garbage/overflowing seq, trailing bytes).
 */
__attribute__((warn_unused_result)) int sc_sse_id_parse(const char *s, size_t len, char *epoch_out,
                                                       uint64_t *seq_out);

/* A set of topic patterns. Zero-initialise ({0}) before use; release with
 * sc_sse_filter_dispose(). Owns copies of the patterns. */
typedef struct sc_sse_pattern {
  char *text; /* owned, NUL-terminated */
  uint16_t len;
  uint8_t has_star;
} sc_sse_pattern_t;

typedef struct sc_sse_filter {
  sc_sse_pattern_t *pats; /* owned array of n */
  unsigned n;
} sc_sse_filter_t;

/*
 * Check one pattern: 1..SC_SSE_PATTERN_MAX bytes of topic characters
 * (A-Z a-z 0-9 . _ - : / @) or '*'. Returns 0, or SC_EINVAL and sets *reason
 * (static text, may be NULL).
 */
__attribute__((warn_unused_result)) int sc_sse_pattern_check(const char *p, size_t len, const char **reason);
/* Check and add a copy of p. Returns 0, SC_EINVAL (bad pattern or too many
 * patterns; *reason set) or SC_ENOMEM. A duplicate pattern is accepted and ignored. */
__attribute__((warn_unused_result)) int sc_sse_filter_add(sc_sse_filter_t *f, const char *p, size_t len,
                                                         const char **reason);
/* 1 when topic matches any pattern (or the filter is empty), else 0. */
int sc_sse_filter_match(const sc_sse_filter_t *f, const char *topic, size_t len);
/* Glob match of one pattern ('*' only) against a topic. */
int sc_sse_glob_match(const char *pat, size_t plen, const char *s, size_t slen);
void sc_sse_filter_dispose(sc_sse_filter_t *f);

#endif
