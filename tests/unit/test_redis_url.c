/* Redis URL parsing and description (common/redis.c, pure part). */
#include <criterion/criterion.h>
#include <string.h>

#include "err.h"
#include "redis.h"

static sc_redis_addr_t parse_ok(const char *url) {
  sc_redis_addr_t a;
  char err[256];
  int rc = sc_redis_url_parse(url, &a, err, sizeof err);
  cr_assert_eq(rc, 0, "%s: %s", url, err);
  return a;
}

static void expect_error(const char *url, const char *want) {
  sc_redis_addr_t a;
  char err[256] = "untouched";
  int rc = sc_redis_url_parse(url, &a, err, sizeof err);
  cr_assert_eq(rc, SC_EURL, "%s parsed but should not", url);
  cr_assert(strstr(err, want) != NULL, "%s: error '%s' lacks '%s'", url, err, want);
  cr_assert_null(a.host);
  cr_assert_null(a.password);
}

Test(redis_url, defaults_port_6379_and_db_0) {
  sc_redis_addr_t a = parse_ok("redis://127.0.0.1");
  cr_assert_str_eq(a.host, "127.0.0.1");
  cr_assert_eq(a.port, 6379);
  cr_assert_eq(a.db, 0);
  cr_assert_null(a.unix_path);
  cr_assert_null(a.user);
  cr_assert_null(a.password);
  sc_redis_addr_dispose(&a);
}

Test(redis_url, reads_host_port_and_db) {
  sc_redis_addr_t a = parse_ok("redis://10.0.0.5:6380/3");
  cr_assert_str_eq(a.host, "10.0.0.5");
  cr_assert_eq(a.port, 6380);
  cr_assert_eq(a.db, 3);
  sc_redis_addr_dispose(&a);
}

Test(redis_url, accepts_trailing_slash_as_db_0) {
  sc_redis_addr_t a = parse_ok("redis://localhost:7000/");
  cr_assert_str_eq(a.host, "localhost");
  cr_assert_eq(a.port, 7000);
  cr_assert_eq(a.db, 0);
  sc_redis_addr_dispose(&a);
}

Test(redis_url, password_only_credentials) {
  sc_redis_addr_t a = parse_ok("redis://:s3cret@127.0.0.1:6379");
  cr_assert_null(a.user);
  cr_assert_str_eq(a.password, "s3cret");
  sc_redis_addr_dispose(&a);
  cr_assert_null(a.password);
}

Test(redis_url, user_and_password_are_percent_decoded) {
  sc_redis_addr_t a = parse_ok("redis://app%40x:p%3Aa%2Fss%25@127.0.0.1/2");
  cr_assert_str_eq(a.user, "app@x");
  cr_assert_str_eq(a.password, "p:a/ss%");
  cr_assert_str_eq(a.host, "127.0.0.1");
  cr_assert_eq(a.db, 2);
  sc_redis_addr_dispose(&a);
}

Test(redis_url, unencoded_at_in_password_uses_last_at) {
  sc_redis_addr_t a = parse_ok("redis://u:p@ss@127.0.0.1");
  cr_assert_str_eq(a.user, "u");
  cr_assert_str_eq(a.password, "p@ss");
  cr_assert_str_eq(a.host, "127.0.0.1");
  sc_redis_addr_dispose(&a);
}

Test(redis_url, ipv6_host_in_brackets) {
  sc_redis_addr_t a = parse_ok("redis://[::1]:6390/1");
  cr_assert_str_eq(a.host, "::1");
  cr_assert_eq(a.port, 6390);
  cr_assert_eq(a.db, 1);
  sc_redis_addr_dispose(&a);
  a = parse_ok("redis://[fe80::1]");
  cr_assert_str_eq(a.host, "fe80::1");
  cr_assert_eq(a.port, 6379);
  sc_redis_addr_dispose(&a);
}

Test(redis_url, unix_socket_with_and_without_db) {
  sc_redis_addr_t a = parse_ok("unix:///run/redis/redis.sock");
  cr_assert_null(a.host);
  cr_assert_str_eq(a.unix_path, "/run/redis/redis.sock");
  cr_assert_eq(a.db, 0);
  sc_redis_addr_dispose(&a);
  a = parse_ok("unix:///tmp/r.sock?db=5");
  cr_assert_str_eq(a.unix_path, "/tmp/r.sock");
  cr_assert_eq(a.db, 5);
  sc_redis_addr_dispose(&a);
}

Test(redis_url, scheme_is_case_insensitive) {
  sc_redis_addr_t a = parse_ok("REDIS://127.0.0.1:1");
  cr_assert_eq(a.port, 1);
  sc_redis_addr_dispose(&a);
}

Test(redis_url, rejects_unsupported_scheme) {
  expect_error("http://127.0.0.1", "unsupported scheme 'http'");
  expect_error("rediss://127.0.0.1", "unsupported scheme 'rediss'");
}

Test(redis_url, rejects_missing_scheme_and_empty_url) {
  expect_error("127.0.0.1:6379", "missing scheme");
  expect_error("", "empty");
}

Test(redis_url, rejects_missing_host) {
  expect_error("redis://", "missing host");
  expect_error("redis://:6379", "missing host");
  expect_error("redis://:pw@", "missing host");
  expect_error("redis://[]:1", "missing host");
}

Test(redis_url, rejects_bad_ports) {
  expect_error("redis://127.0.0.1:x", "port 'x' is not a number in 1..65535");
  expect_error("redis://127.0.0.1:0", "port '0' is not a number in 1..65535");
  expect_error("redis://127.0.0.1:65536", "port '65536'");
  expect_error("redis://127.0.0.1:", "port ''");
  expect_error("redis://127.0.0.1:-1/0", "port '-1'");
}

Test(redis_url, rejects_bad_db) {
  expect_error("redis://127.0.0.1/abc", "db 'abc' is not a number");
  expect_error("unix:///tmp/r.sock?db=x", "db 'x'");
  expect_error("unix:///tmp/r.sock?password=x", "unknown parameter 'password=x'");
}

Test(redis_url, rejects_bad_credentials) {
  expect_error("redis://justuser@127.0.0.1", "credentials must be");
  expect_error("redis://user:@127.0.0.1", "empty password");
  expect_error("redis://:p%zz@127.0.0.1", "bad percent-encoding in password");
  expect_error("redis://:p%4@127.0.0.1", "bad percent-encoding in password");
  expect_error("redis://:p%00@127.0.0.1", "bad percent-encoding in password");
}

Test(redis_url, rejects_relative_unix_path_and_junk) {
  expect_error("unix://tmp/r.sock", "must be absolute");
  expect_error("redis://[::1", "unterminated IPv6");
  expect_error("redis://127.0.0.1:6379/0?x=1", "unexpected '?x=1'");
}

Test(redis_url, describe_omits_credentials) {
  sc_redis_addr_t a = parse_ok("redis://u:topsecret@127.0.0.1:6380/4");
  char buf[128];
  sc_redis_addr_describe(&a, buf, sizeof buf);
  cr_assert_str_eq(buf, "127.0.0.1:6380/4");
  cr_assert(strstr(buf, "topsecret") == NULL);
  sc_redis_addr_dispose(&a);

  a = parse_ok("redis://[::1]");
  sc_redis_addr_describe(&a, buf, sizeof buf);
  cr_assert_str_eq(buf, "[::1]:6379/0");
  sc_redis_addr_dispose(&a);

  a = parse_ok("unix:///tmp/r.sock");
  sc_redis_addr_describe(&a, buf, sizeof buf);
  cr_assert_str_eq(buf, "unix:/tmp/r.sock");
  sc_redis_addr_dispose(&a);
}

Test(redis_url, describe_truncates_to_capacity) {
  sc_redis_addr_t a = parse_ok("redis://127.0.0.1:6379");
  char buf[6];
  sc_redis_addr_describe(&a, buf, sizeof buf);
  cr_assert_str_eq(buf, "127.0");
  sc_redis_addr_dispose(&a);
}

Test(redis_url, dispose_is_safe_twice) {
  sc_redis_addr_t a = parse_ok("redis://:pw@127.0.0.1");
  sc_redis_addr_dispose(&a);
  sc_redis_addr_dispose(&a);
  sc_redis_addr_dispose(NULL);
}
