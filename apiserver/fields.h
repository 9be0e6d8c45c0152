/*
 * fields: the `fields=` projection for small clients (LED matrices, ESP32).
 *
 * A field spec is a set of up to API_FIELDS_MAX dot paths ("temp",
 * "wind.speed"). Projecting a topic's data (the committed compact JSON)
 * keeps only the selected members, with their nesting:
 *
 *   data {"temp":21.50,"hum":40,"wind":{"speed":3,"dir":"N"}}
 *   fields=temp,wind.speed  ->  {"temp":21.50,"wind":{"speed":3}}
 *
 * The projection is a byte scanner over the compact JSON, never a parse into
 * doubles: selected values keep their exact bytes (1.10 stays 1.10, 2^53+1
 * stays exact). Members appear in the data's order; missing paths are left
 * out (an intermediate object left empty is left out too); data that is not
 * an object projects to {}. A path that names an object selects it whole.
 * Keys are matched byte for byte against the raw key text (a key written
 * with \u escapes in the data does not match).
 *
 * api_fields_seen_t remembers, per topic, a hash of the projection a stream
 * last got, so unchanged projections are not sent again.
 *
 * Pure code: no I/O, no loop.
 */
#ifndef API_FIELDS_H
#define API_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#define API_FIELDS_MAX 16
#define API_FIELDS_PATH_MAX 64
#define API_FIELDS_CANON_MAX (API_FIELDS_MAX * (API_FIELDS_PATH_MAX + 1))

/* A parsed spec. Zero-initialise ({0}), add with api_fields_add(), then
 * api_fields_finish(). Plain value: no heap, copy freely. */
typedef struct api_fields {
  unsigned n;
  uint8_t len[API_FIELDS_MAX];
  char path[API_FIELDS_MAX][API_FIELDS_PATH_MAX + 1]; /* NUL-terminated */
  size_t canon_len;
  char canon[API_FIELDS_CANON_MAX]; /* sorted, deduplicated, comma-joined; NUL-terminated */
} api_fields_t;

/*
 * Add the comma-separated paths of s[0..len) (one `fields=` value; call
 * again for a repeated parameter). A path is 1..API_FIELDS_PATH_MAX bytes of
 * segments [A-Za-z0-9_-$@]+ joined by '.'. Duplicates are ignored. Returns
 * 0, or SC_EINVAL with *reason (static text) for an empty or bad path or
 * more than API_FIELDS_MAX paths.
 */
__attribute__((warn_unused_result)) int api_fields_add(api_fields_t *f, const char *s, size_t len,
                                                      const char **reason);
/* Sort the paths and build the canonical spec string (f->canon). */
void api_fields_finish(api_fields_t *f);

/* Bytes api_fields_project() may write for data of data_len bytes. */
size_t api_fields_project_size(size_t data_len);
/* Project data[0..len) (compact JSON) into out (room for
 * api_fields_project_size(len)). Returns bytes written (not NUL-terminated). */
size_t api_fields_project(const api_fields_t *f, const char *data, size_t len, char *out);

/*
 * Rewrite an envelope {"topic":..,"seq":..,"ts":..,"data":D} (as the store
 * frames it) with D projected, into out (room for
 * api_fields_project_size(env_len)). data_off and data_len locate the
 * projected data inside out. An envelope without data (a delete) is copied
 * unchanged with data_len 0. Returns bytes written.
 */
size_t api_fields_project_envelope(const api_fields_t *f, const char *env, size_t env_len, char *out,
                                   size_t *data_off, size_t *data_len);

/* 64-bit FNV-1a of b[0..len). */
uint64_t api_fields_hash(const char *b, size_t len);

/* topic -> hash of the projection last sent. Zero-initialise; release
 * with api_fields_seen_dispose(). */
typedef struct api_fields_seen {
  struct api_fields_seen_slot *slots; /* owned */
  size_t cap, count;
} api_fields_seen_t;

/* 1 when the projection hash differs from what was recorded for topic (or
 * nothing was), and records it; 0 when unchanged; SC_ENOMEM. */
__attribute__((warn_unused_result)) int api_fields_seen_update(api_fields_seen_t *s, const char *topic, size_t len,
                                                              uint64_t proj_hash);
/* Forget topic (it was deleted: the next projection is sent whatever it is). */
void api_fields_seen_forget(api_fields_seen_t *s, const char *topic, size_t len);
void api_fields_seen_dispose(api_fields_seen_t *s);

#endif
