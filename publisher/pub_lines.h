/*
 * pub_lines: one line of `statecast-publisher --lines` input,
 *   {"topic":"T","data":<any JSON>}
 * taken apart without a JSON tree: the line is validated and compacted with
 * sc_json_compact (so numbers and strings keep their exact bytes), then a
 * small walk over the top-level object finds the byte span of each value.
 * cJSON would turn 2^53+1 or 1.10 into other numbers.
 */
#ifndef PUB_LINES_H
#define PUB_LINES_H

#include <stddef.h>

typedef struct pub_line {
  const char *topic; /* borrowed from the scratch buffer */
  size_t topic_len;
  const char *data; /* compact JSON, borrowed from the scratch buffer */
  size_t data_len;
  const char *why; /* static reason when the line is refused */
  size_t offset;   /* byte offset in the line for JSON/UTF-8 errors, else 0 */
} pub_line_t;

/*
 * Parse line[0..len). scratch must have room for len bytes and outlives the
 * views in *out. Returns 0; SC_ENOENT for an empty or all-whitespace line
 * (skip it); SC_EJSON / SC_EUTF8 for a line that is not valid JSON;
 * SC_EINVAL when it is not an object with exactly the keys "topic" (a
 * string) and "data"; SC_ETOPIC when the topic breaks the topic rules.
 * On failure out->why says why.
 */
__attribute__((warn_unused_result)) int pub_line_parse(const char *line, size_t len, char *scratch, pub_line_t *out);

#endif
