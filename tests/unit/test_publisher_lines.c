/* The --lines input format of statecast-publisher (publisher/lines.c). */
#include "err.h"
#include "pub_lines.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *line, pub_line_t *out, char **scratch) {
  *scratch = malloc(strlen(line) + 1);
  cr_assert_not_null(*scratch);
  return pub_line_parse(line, strlen(line), *scratch, out);
}

static void assert_span(const char *got, size_t len, const char *want) {
  cr_assert_eq(len, strlen(want), "length %zu, want %zu (%.*s)", len, strlen(want), (int)len, got);
  cr_assert(memcmp(got, want, len) == 0, "got %.*s, want %s", (int)len, got, want);
}

Test(publisher_lines, extracts_topic_and_exact_data_bytes) {
  pub_line_t pl;
  char *s;
  cr_assert_eq(parse("{\"topic\":\"a.b\",\"data\":{\"n\":9007199254740993,\"f\":1.10}}\n", &pl, &s), 0);
  assert_span(pl.topic, pl.topic_len, "a.b");
  assert_span(pl.data, pl.data_len, "{\"n\":9007199254740993,\"f\":1.10}");
  free(s);
}

Test(publisher_lines, accepts_data_first_and_whitespace) {
  pub_line_t pl;
  char *s;
  cr_assert_eq(parse("  { \"data\" : [1, \"x,}]\\\"\", {\"a\": [ ]}] , \"topic\" : \"t\" }\r\n", &pl, &s), 0);
  assert_span(pl.topic, pl.topic_len, "t");
  assert_span(pl.data, pl.data_len, "[1,\"x,}]\\\"\",{\"a\":[]}]");
  free(s);
}

Test(publisher_lines, scalar_and_null_data) {
  pub_line_t pl;
  char *s;
  cr_assert_eq(parse("{\"topic\":\"t\",\"data\":null}", &pl, &s), 0);
  assert_span(pl.data, pl.data_len, "null");
  free(s);
  cr_assert_eq(parse("{\"topic\":\"t\",\"data\":-1.5e3}", &pl, &s), 0);
  assert_span(pl.data, pl.data_len, "-1.5e3");
  free(s);
  cr_assert_eq(parse("{\"topic\":\"t\",\"data\":\"s\"}", &pl, &s), 0);
  assert_span(pl.data, pl.data_len, "\"s\"");
  free(s);
}

Test(publisher_lines, blank_line_is_skipped) {
  pub_line_t pl;
  char *s;
  cr_assert_eq(parse(" \t\r\n", &pl, &s), SC_ENOENT);
  free(s);
}

Test(publisher_lines, invalid_json_reports_offset) {
  pub_line_t pl;
  char *s;
  cr_assert_eq(parse("{\"topic\":\"t\",\"data\":01}", &pl, &s), SC_EJSON);
  cr_assert_not_null(pl.why);
  cr_assert_gt(pl.offset, 0);
  free(s);
  cr_assert_eq(parse("{\"topic\":\"t\",\"data\":\"\xff\"}", &pl, &s), SC_EUTF8);
  free(s);
}

Test(publisher_lines, refuses_wrong_shapes) {
  static const char *bad[] = {
      "[1,2]",
      "{\"topic\":\"t\"}",
      "{\"data\":1}",
      "{\"topic\":1,\"data\":1}",
      "{\"topic\":\"t\",\"data\":1,\"extra\":2}",
      "{\"topic\":\"t\",\"topic\":\"u\",\"data\":1}",
      "{}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    pub_line_t pl;
    char *s;
    cr_assert_eq(parse(bad[i], &pl, &s), SC_EINVAL, "line %s", bad[i]);
    cr_assert_not_null(pl.why);
    free(s);
  }
}

Test(publisher_lines, refuses_invalid_topic) {
  pub_line_t pl;
  char *s;
  cr_assert_eq(parse("{\"topic\":\"a b\",\"data\":1}", &pl, &s), SC_ETOPIC);
  free(s);
  cr_assert_eq(parse("{\"topic\":\"\",\"data\":1}", &pl, &s), SC_ETOPIC);
  free(s);
  cr_assert_eq(parse("{\"topic\":\"a\\u0041\",\"data\":1}", &pl, &s), SC_ETOPIC);
  free(s);
}
