/*
 * layout: what goes where on the matrix. A layout is a list of rows, top
 * to bottom; each row shows one topic's fields through a format string and
 * picks its colour from rules. Loaded from a small YAML file (libyaml);
 * the format is documented in docs/matrix-client.md:
 *
 *   width: 64            # optional, pixels (flags override)
 *   height: 32
 *   rows:
 *     - topic: demo/sensors/outside
 *       text: "OUT {celsius:.1f}° {wind.speed}km/h"
 *       color: green
 *       rules:                   # first match wins
 *         - if: "celsius < 0"
 *           color: blue
 *
 * Placeholders: {path} a dot path into the topic's data ("wind.speed",
 * "list.0"), {path:SPEC} with a printf spec without the '%' (d i f g e x s,
 * flags, width, precision), {.} the whole data as compact JSON, {$topic}
 * the topic name, {{ and }} literal braces. A missing value shows "--".
 */
#ifndef MX_LAYOUT_H
#define MX_LAYOUT_H

#include "render.h"
#include "state.h"

#include <stddef.h>

typedef struct cJSON cJSON;

typedef enum { MX_OP_LT, MX_OP_LE, MX_OP_GT, MX_OP_GE, MX_OP_EQ, MX_OP_NE } mx_op_t;

typedef struct mx_rule {
  char *path; /* owned */
  mx_op_t op;
  int is_num;
  double num;
  char *str; /* owned; the literal as written (strings compared with it) */
  mx_color_t color;
} mx_rule_t;

typedef struct mx_row {
  char *topic; /* owned; NULL for a static text row */
  char *text;  /* owned format string */
  mx_color_t color;
  mx_rule_t *rules; /* owned array of nrules */
  size_t nrules;
} mx_row_t;

typedef struct mx_layout {
  mx_row_t *rows; /* owned array of nrows */
  size_t nrows;
  int width, height; /* 0 when the file does not say */
} mx_layout_t;

/* Parse YAML text (borrowed). Returns 0 and *out (caller frees with
 * mx_layout_free()), or SC_ECONFIG with "line N: what" in err. */
__attribute__((warn_unused_result)) int mx_layout_parse(const char *yaml, size_t len, mx_layout_t **out, char *err,
                                                        size_t errlen);
/* Same, from a file; SC_EIO when it cannot be read. */
__attribute__((warn_unused_result)) int mx_layout_load(const char *path, mx_layout_t **out, char *err,
                                                       size_t errlen);
void mx_layout_free(mx_layout_t *l);

/* Value at a dot path ("a.b.0"); "." or "" is the root. Borrowed from root. */
const cJSON *mx_json_path(const cJSON *root, const char *path);
/* Expand a format string for topic (may be NULL) and data (may be NULL:
 * every placeholder shows "--") into out (cap bytes, always NUL-terminated,
 * truncated on a UTF-8 boundary). */
void mx_format(const char *fmt, const char *topic, const cJSON *data, char *out, size_t cap);
/* The colour a row gets for data (its rules in order, else its colour). */
mx_color_t mx_row_color(const mx_row_t *row, const cJSON *data);
/* Fill lines[0..min(nrows, max)) from the layout and the state; returns the count. */
size_t mx_layout_eval(const mx_layout_t *l, const mx_state_t *s, mx_line_t *lines, size_t max);
/* No layout: one "topic {compact data}" line per topic, in name order. */
size_t mx_default_eval(const mx_state_t *s, mx_line_t *lines, size_t max);

#endif
