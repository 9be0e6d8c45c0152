/* SSE framing, event ids and topic patterns (common/sse.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "sse.h"

static char buf[4096];

Test(sse, frames_id_event_and_one_data_line) {
  size_t n = sc_sse_frame(buf, "ab-1", 4, "update", "{\"a\":1}", 7);
  buf[n] = '\0';
  cr_assert_str_eq(buf, "id: ab-1\nevent: update\ndata: {\"a\":1}\n\n");
  cr_assert_leq(n, sc_sse_frame_size(4, 6, 7));
  cr_assert_eq(n, sc_sse_frame_size_line(4, 6, 7), "one data line: the size is exact");
}

Test(sse, splits_multiline_data_into_data_lines) {
  size_t n = sc_sse_frame(buf, NULL, 0, NULL, "a\nb\r\n\nc", 7);
  buf[n] = '\0';
  cr_assert_str_eq(buf, "data: a\ndata: b\ndata: \ndata: c\n\n");
  cr_assert_leq(n, sc_sse_frame_size(0, 0, 7));
}

Test(sse, frame_size_bounds_data_of_only_newlines) {
  const char d[] = "\n\n\n\n";
  size_t n = sc_sse_frame(buf, "x", 1, "e", d, 4);
  cr_assert_leq(n, sc_sse_frame_size(1, 1, 4));
}

Test(sse, writes_comment_and_retry_lines) {
  size_t n = sc_sse_comment(buf, sizeof buf, "hb");
  buf[n] = '\0';
  cr_assert_str_eq(buf, ": hb\n\n");
  n = sc_sse_retry(buf, sizeof buf, 2000);
  buf[n] = '\0';
  cr_assert_str_eq(buf, "retry: 2000\n\n");
  cr_assert_eq(sc_sse_retry(buf, 4, 2000), 0);
}

Test(sse, formats_and_parses_event_ids) {
  char id[SC_SSE_ID_MAX], ep[SC_SSE_EPOCH_LEN + 1];
  uint64_t seq = 0;
  size_t n = sc_sse_id_format(id, "0123456789abcdef", 42);
  cr_assert_str_eq(id, "0123456789abcdef-42");
  cr_assert_eq(sc_sse_id_parse(id, n, ep, &seq), 0);
  cr_assert_str_eq(ep, "0123456789abcdef");
  cr_assert_eq(seq, 42);
  cr_assert_eq(sc_sse_id_parse(" 0123456789abcdef-0 ", 20, ep, &seq), 0);
  cr_assert_eq(seq, 0);
  const char *max = "0123456789abcdef-18446744073709551615";
  cr_assert_eq(sc_sse_id_parse(max, strlen(max), ep, &seq), 0);
  cr_assert_eq(seq, UINT64_MAX);
}

Test(sse, rejects_garbage_ids) {
  char ep[SC_SSE_EPOCH_LEN + 1];
  uint64_t seq;
  const char *bad[] = {"",
                       "garbage",
                       "0123456789abcdef",
                       "0123456789abcdef-",
                       "0123456789abcdef-x",
                       "0123456789abcdef-12a",
                       "0123456789ABCDEF-1",
                       "0123456789abcde-1",
                       "0123456789abcdef0-1",
                       "0123456789abcdef-18446744073709551616",
                       "0123456789abcdef-99999999999999999999",
                       "0123456789abcdef--1",
                       "0123456789abcdef-01",
                       "0123456789abcdeg-1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(sc_sse_id_parse(bad[i], strlen(bad[i]), ep, &seq), SC_EINVAL, "accepted %s", bad[i]);
}

Test(sse, glob_star_matches_any_run_including_slashes) {
  cr_assert(sc_sse_glob_match("sensors/*", 9, "sensors/a", 9));
  cr_assert(sc_sse_glob_match("sensors/*", 9, "sensors/a/b", 11));
  cr_assert(sc_sse_glob_match("sensors/*", 9, "sensors/", 8));
  cr_assert_not(sc_sse_glob_match("sensors/*", 9, "sensor/a", 8));
  cr_assert(sc_sse_glob_match("*", 1, "anything", 8));
  cr_assert(sc_sse_glob_match("*/temp", 6, "a/b/temp", 8));
  cr_assert_not(sc_sse_glob_match("*/temp", 6, "a/b/temp2", 9));
  cr_assert(sc_sse_glob_match("a*b*c", 5, "axxbyyc", 7));
  cr_assert(sc_sse_glob_match("a*b*c", 5, "abbbc", 5));
  cr_assert_not(sc_sse_glob_match("a*b*c", 5, "acb", 3));
  cr_assert(sc_sse_glob_match("**", 2, "", 0));
}

Test(sse, filter_matches_exact_and_patterns) {
  sc_sse_filter_t f = {0};
  cr_assert(sc_sse_filter_match(&f, "x", 1), "empty filter matches everything");
  const char *why = NULL;
  cr_assert_eq(sc_sse_filter_add(&f, "room1", 5, &why), 0);
  cr_assert_eq(sc_sse_filter_add(&f, "sensors/*", 9, &why), 0);
  cr_assert_eq(sc_sse_filter_add(&f, "room1", 5, &why), 0);
  cr_assert_eq(f.n, 2, "duplicates are kept once");
  cr_assert(sc_sse_filter_match(&f, "room1", 5));
  cr_assert_not(sc_sse_filter_match(&f, "room10", 6), "an exact topic is not a prefix");
  cr_assert(sc_sse_filter_match(&f, "sensors/t", 9));
  cr_assert_not(sc_sse_filter_match(&f, "other", 5));
  sc_sse_filter_dispose(&f);
  cr_assert_eq(f.n, 0);
}

Test(sse, rejects_bad_patterns_with_a_reason) {
  sc_sse_filter_t f = {0};
  const char *why = NULL;
  cr_assert_eq(sc_sse_filter_add(&f, "", 0, &why), SC_EINVAL);
  cr_assert_not_null(why);
  why = NULL;
  cr_assert_eq(sc_sse_filter_add(&f, "a b", 3, &why), SC_EINVAL);
  cr_assert_not_null(why);
  cr_assert_eq(sc_sse_filter_add(&f, "a?", 2, &why), SC_EINVAL);
  char longp[202];
  memset(longp, 'a', sizeof longp);
  cr_assert_eq(sc_sse_filter_add(&f, longp, 201, &why), SC_EINVAL);
  cr_assert_eq(sc_sse_filter_add(&f, longp, 200, &why), 0);
  sc_sse_filter_dispose(&f);
}

Test(sse, limits_patterns_per_filter) {
  sc_sse_filter_t f = {0};
  char p[16];
  const char *why = NULL;
  for (int i = 0; i < SC_SSE_MAX_PATTERNS; i++) {
    int n = snprintf(p, sizeof p, "t%d", i);
    cr_assert_eq(sc_sse_filter_add(&f, p, (size_t)n, &why), 0);
  }
  cr_assert_eq(sc_sse_filter_add(&f, "more", 4, &why), SC_EINVAL);
  cr_assert_not_null(why);
  sc_sse_filter_dispose(&f);
}
