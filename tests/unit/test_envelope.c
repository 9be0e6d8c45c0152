#include "envelope.h"
#include "err.h"
#include "keys.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static int check(const char *topic, const char *body, size_t max, char **out, size_t *n, int *del, sc_reject_t *why) {
  return sc_message_check(topic, strlen(topic), body, strlen(body), max, out, n, del, why);
}

Test(envelope, topic_accepts_the_documented_alphabet) {
  const char *ok = "AZaz09._-:/@";
  cr_assert_eq(sc_topic_validate(ok, strlen(ok)), 0);
  char t200[200];
  memset(t200, 'a', sizeof t200);
  cr_assert_eq(sc_topic_validate(t200, 200), 0);
}

Test(envelope, topic_rejects_empty_long_and_foreign_characters) {
  char t201[201];
  memset(t201, 'a', sizeof t201);
  cr_assert_eq(sc_topic_validate(t201, 201), SC_ETOPIC);
  cr_assert_eq(sc_topic_validate("", 0), SC_ETOPIC);
  const char *bad[] = {"a b", "a{b", "a}b", "a*b", "\xc3\xa9", "a\nb", "a\"b", "a%b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(sc_topic_validate(bad[i], strlen(bad[i])), SC_ETOPIC, "%s", bad[i]);
}

Test(envelope, valid_message_is_compacted) {
  char *out = NULL;
  size_t n = 0;
  int del = -1;
  sc_reject_t why;
  cr_assert_eq(check("t", "{ \"a\" : 1 }", 0, &out, &n, &del, &why), 0);
  cr_assert_eq(del, 0);
  cr_assert_eq(n, 7);
  cr_assert(memcmp(out, "{\"a\":1}", 7) == 0);
  free(out);
}

Test(envelope, null_means_delete) {
  char *out = (char *)1;
  size_t n = 9;
  int del = 0;
  sc_reject_t why;
  cr_assert_eq(check("t", "  null ", 0, &out, &n, &del, &why), 0);
  cr_assert_eq(del, 1);
  cr_assert_null(out);
  cr_assert_eq(n, 0);
}

Test(envelope, rejections_name_the_reason_and_allocate_nothing) {
  char *out = NULL;
  size_t n;
  int del;
  sc_reject_t why;
  cr_assert_eq(check("bad topic", "1", 0, &out, &n, &del, &why), SC_ETOPIC);
  cr_assert_not_null(why.reason);
  cr_assert_eq(check("t", "{\"a\":", 0, &out, &n, &del, &why), SC_EJSON);
  cr_assert_eq(check("t", "\"\xff\"", 0, &out, &n, &del, &why), SC_EUTF8);
  cr_assert_eq(why.offset, 1);
  cr_assert_eq(check("t", "[1,2,3,4,5]", 10, &out, &n, &del, &why), SC_ETOOBIG);
  cr_assert_null(out);
}

Test(envelope, default_size_limit_is_256_kib) {
  size_t len = SC_DEFAULT_MAX_MESSAGE_BYTES + 1;
  char *big = malloc(len + 1);
  memset(big, ' ', len);
  big[0] = '1';
  big[len] = '\0';
  char *out = NULL;
  size_t n;
  int del;
  sc_reject_t why;
  cr_assert_eq(check("t", big, 0, &out, &n, &del, &why), SC_ETOOBIG);
  big[len - 1] = '\0';
  cr_assert_eq(check("t", big, 0, &out, &n, &del, &why), 0);
  free(out);
  free(big);
}

Test(envelope, parses_update_notification) {
  const char *p = "u 0123456789abcdef 42 1732370000123 sensors/t1 {\"a\":\"x y\"}";
  sc_notify_t nt;
  cr_assert_eq(sc_notify_parse(p, strlen(p), &nt), 0);
  cr_assert_eq(nt.is_delete, 0);
  cr_assert_eq(nt.epoch_len, 16);
  cr_assert_eq(nt.seq, 42);
  cr_assert_eq(nt.ts, 1732370000123LL);
  cr_assert_eq(nt.topic_len, 10);
  cr_assert(memcmp(nt.topic, "sensors/t1", 10) == 0);
  cr_assert_eq(nt.data_len, strlen("{\"a\":\"x y\"}"));
}

Test(envelope, parses_delete_notification) {
  const char *p = "d e1 7 5 t";
  sc_notify_t nt;
  cr_assert_eq(sc_notify_parse(p, strlen(p), &nt), 0);
  cr_assert_eq(nt.is_delete, 1);
  cr_assert_null(nt.data);
}

Test(envelope, rejects_malformed_notifications) {
  const char *bad[] = {"", "x e 1 2 t {}", "u e 1 2 t", "u e 1 2 t ", "u e x 2 t {}", "u e 0 2 t {}",
                       "d e 1 2 t extra", "u e 1 2 bad{ {}", "u  1 2 t {}", "u e 99999999999999999999 2 t {}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sc_notify_t nt;
    cr_assert_eq(sc_notify_parse(bad[i], strlen(bad[i]), &nt), SC_EINVAL, "'%s'", bad[i]);
  }
}

Test(envelope, writes_the_client_envelope) {
  char buf[256];
  size_t n = sc_envelope_write(buf, "a/b", 3, 12, 1700000000000LL, "{\"x\":1}", 7);
  cr_assert_eq(n, strlen("{\"topic\":\"a/b\",\"seq\":12,\"ts\":1700000000000,\"data\":{\"x\":1}}"));
  cr_assert(memcmp(buf, "{\"topic\":\"a/b\",\"seq\":12,\"ts\":1700000000000,\"data\":{\"x\":1}}", n) == 0);
  n = sc_envelope_write(buf, "a", 1, 13, 5, NULL, 0);
  cr_assert(memcmp(buf, "{\"topic\":\"a\",\"seq\":13,\"ts\":5}", n) == 0);
  cr_assert(n <= sc_envelope_size(1, 0));
}

Test(keys, builds_hash_tagged_names) {
  char buf[SC_KEYS_MAX];
  cr_assert_eq(sc_keys_state(buf, sizeof buf, "a/b", 3), 11);
  cr_assert_str_eq(buf, "state:{a/b}");
  cr_assert_eq(sc_keys_update_channel(buf, sizeof buf, "a/b", 3), 12);
  cr_assert_str_eq(buf, "update:{a/b}");
  cr_assert_eq(sc_keys_state(buf, 8, "abc", 3), SC_ETOOBIG);
}

Test(keys, extracts_topic_from_channel) {
  const char *t;
  size_t n;
  cr_assert_eq(sc_keys_topic_of_channel("update:{x:y}", 12, &t, &n), 0);
  cr_assert_eq(n, 3);
  cr_assert(memcmp(t, "x:y", 3) == 0);
  cr_assert_eq(sc_keys_topic_of_channel("update:{x", 9, &t, &n), SC_ETOPIC);
  cr_assert_eq(sc_keys_topic_of_channel("other:{x}", 9, &t, &n), SC_ETOPIC);
  cr_assert_eq(sc_keys_topic_of_channel("update:{}", 9, &t, &n), 0);
  cr_assert_eq(n, 0);
}

Test(err, every_code_has_a_name_and_text) {
  cr_assert_str_eq(sc_errname(SC_EJSON), "json");
  cr_assert_str_eq(sc_errname(SC_ETOOBIG), "toobig");
  cr_assert_str_eq(sc_strerror(SC_ETIMEOUT), "timed out");
  cr_assert_str_eq(sc_errname(0), "ok");
  cr_assert_str_eq(sc_errname(-1000), "unknown");
}
