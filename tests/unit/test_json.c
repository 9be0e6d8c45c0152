#include "err.h"
#include "json.h"

#include <criterion/criterion.h>
#include <string.h>

static int compact(const char *in, char *out, size_t *n, sc_json_error_t *err) {
  return sc_json_compact(in, strlen(in), out, n, err);
}

static void expect_compact(const char *in, const char *want) {
  char out[1024];
  size_t n = 0;
  sc_json_error_t err = {0};
  int rc = compact(in, out, &n, &err);
  cr_assert_eq(rc, 0, "'%s' rejected: %s at %zu", in, err.reason, err.offset);
  cr_assert_eq(n, strlen(want), "'%s' -> '%.*s'", in, (int)n, out);
  cr_assert(memcmp(out, want, n) == 0, "'%s' -> '%.*s', want '%s'", in, (int)n, out, want);
}

static void expect_reject(const char *in, int code) {
  char out[1024];
  size_t n = 0;
  sc_json_error_t err = {0};
  int rc = compact(in, out, &n, &err);
  cr_assert_eq(rc, code, "'%s' gave %d (%s), want %d", in, rc, err.reason ? err.reason : "-", code);
  cr_assert_not_null(err.reason);
}

Test(json, removes_insignificant_whitespace_only) {
  expect_compact(" { \"a\" : [ 1 , 2 ,\n\t3 ] , \"b c\" : \" x  y \" } ", "{\"a\":[1,2,3],\"b c\":\" x  y \"}");
}

Test(json, keeps_numbers_byte_for_byte) {
  expect_compact("[9007199254740993, 1.10, -0, 1E+2, 0.5e-3]", "[9007199254740993,1.10,-0,1E+2,0.5e-3]");
}

Test(json, accepts_every_kind_of_top_level_value) {
  expect_compact("null", "null");
  expect_compact(" true ", "true");
  expect_compact("false", "false");
  expect_compact("\"s\"", "\"s\"");
  expect_compact("42", "42");
  expect_compact("{}", "{}");
  expect_compact("[ ]", "[]");
}

Test(json, keeps_escapes_and_utf8_as_written) {
  expect_compact("\"\\u00e9 \\n \\\" \\/ \\ud83d\\ude00\"", "\"\\u00e9 \\n \\\" \\/ \\ud83d\\ude00\"");
  expect_compact("\"h\xc3\xa9llo \xf0\x9f\x98\x80\"", "\"h\xc3\xa9llo \xf0\x9f\x98\x80\"");
}

Test(json, rejects_malformed_json) {
  const char *bad[] = {"", "   ", "{", "[1,]", "{\"a\":1,}", "{a:1}", "[01]", "1.", ".5", "+1", "1e", "-",
                       "tru", "nul", "\"abc", "\"a\\x\"", "\"\\u12g4\"", "[1 2]", "{\"a\" 1}", "1 2",
                       "{} x", "'a'", "NaN", "[\"a\tb\"]", "\xef\xbb\xbf{}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_reject(bad[i], SC_EJSON);
}

Test(json, rejects_invalid_utf8_inside_strings) {
  const char *bad[] = {"\"\xff\"", "\"\xc0\xaf\"", "\"\xe0\x80\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
                       "\"\xc3\"", "\"\xe2\x82\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_reject(bad[i], SC_EUTF8);
}

Test(json, reports_the_offset_of_the_error) {
  char out[64];
  size_t n;
  sc_json_error_t err;
  cr_assert_eq(compact("[1, 2, x]", out, &n, &err), SC_EJSON);
  cr_assert_eq(err.offset, 7);
}

Test(json, limits_nesting_depth) {
  char deep[2 * SC_JSON_MAX_DEPTH + 10];
  size_t d = SC_JSON_MAX_DEPTH + 1;
  for (size_t i = 0; i < d; i++) deep[i] = '[';
  for (size_t i = 0; i < d; i++) deep[d + i] = ']';
  deep[2 * d] = '\0';
  expect_reject(deep, SC_EJSON);
  deep[0] = ' ';
  deep[2 * d - 1] = ' ';
  char out[sizeof deep];
  size_t n;
  cr_assert_eq(sc_json_compact(deep, strlen(deep), out, &n, NULL), 0, "depth %zu must pass", d - 1);
}

Test(json, escape_writes_a_valid_json_string_body) {
  char out[64];
  size_t n = sc_json_escape(out, "a\"b\\c\nd\x01", 8);
  cr_assert_eq(n, strlen("a\\\"b\\\\c\\nd\\u0001"));
  cr_assert(memcmp(out, "a\\\"b\\\\c\\nd\\u0001", n) == 0);
}
