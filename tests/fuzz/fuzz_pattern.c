/*
 * fuzz_pattern: topic patterns of ?topics= (sc_sse_pattern_check,
 * sc_sse_filter_add, sc_sse_filter_match, sc_sse_glob_match).
 * Input: "<pattern>\n<pattern>...\n<topic>" (the last line is the topic).
 * Invariants: an accepted pattern matches itself ('*' matches any run,
 * including "*"); a pattern without '*' matches exactly the equal topic;
 * filter_add accepts exactly what pattern_check accepts (until the filter
 * is full); a filter matches a topic iff one of its patterns does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  const char *end = in + size;
  const char *last = in;
  for (const char *p = in; p < end; p++)
    if (*p == '\n') last = p + 1;
  const char *topic = last;
  size_t topic_len = (size_t)(end - last);

  sc_sse_filter_t f = {0};
  int any = 0, added = 0;
  const char *p = in;
  while (p < last) {
    const char *nl = memchr(p, '\n', (size_t)(last - p));
    size_t len = (size_t)(nl - p);
    const char *reason = NULL;
    int ok = sc_sse_pattern_check(p, len, &reason) == 0;
    if (!ok && reason == NULL) abort();
    if (ok) {
      if (!sc_sse_glob_match(p, len, p, len)) abort();
      if (memchr(p, '*', len) == NULL) {
        int eq = len == topic_len && memcmp(p, topic, len) == 0;
        if (sc_sse_glob_match(p, len, topic, topic_len) != eq) abort();
      }
    }
    reason = NULL;
    int arc = sc_sse_filter_add(&f, p, len, &reason);
    if (arc == 0 && !ok) abort();
    if (arc == 0) {
      added = 1;
      if (sc_sse_glob_match(p, len, topic, topic_len)) any = 1;
    } else if (arc != SC_EINVAL && arc != SC_ENOMEM) {
      abort();
    }
    p = nl + 1;
  }
  int m = sc_sse_filter_match(&f, topic, topic_len);
  if (added && m != any) abort();
  if (!added && f.n == 0 && !m) abort(); /* an empty filter matches everything */
  sc_sse_filter_dispose(&f);
  return 0;
}
