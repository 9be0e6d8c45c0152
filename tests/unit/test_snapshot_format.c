/* The snapshot file format: round trip, byte-exact data, and a clear refusal
 * of every damaged file; plus the per-topic load decision. */
#include "err.h"
#include "snap_format.h"
#include "snap_redis.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T(name, s, t, d) {name, sizeof name - 1, s, t, d, sizeof d - 1}

static snap_topic_t sample_topics[] = {
    T("a/b", 3, 1700000000001, "{\"x\":1}"),
    T("big", 5, 1700000000002, "[9007199254740993,1.10,-0e+5]"),
    T("s@t:x.y_z-w", 9, 1700000000003, "\"caf\\u00e9 \\\"q\\\" \xe2\x82\xac\""),
    T("n", 10, 1700000000004, "null"),
};

static snap_t sample(void) {
  snap_t s;
  memset(&s, 0, sizeof s);
  s.created = 1700000001000;
  strcpy(s.epoch, "0123456789abcdef");
  s.seq = 12;
  s.count = sizeof sample_topics / sizeof sample_topics[0];
  s.topics = sample_topics;
  return s;
}

/* The sample written to memory; caller frees. */
static char *write_sample(size_t *len) {
  snap_t s = sample();
  char *buf = NULL;
  FILE *f = open_memstream(&buf, len);
  cr_assert_not_null(f);
  cr_assert_eq(snap_write(f, &s), 0);
  fclose(f);
  return buf;
}

static int parse(const char *buf, size_t len, char *err, size_t errlen) {
  snap_t s;
  int rc = snap_parse(buf, len, &s, err, errlen);
  if (rc == 0) snap_dispose(&s);
  return rc;
}

Test(snapshot_format, round_trip_keeps_every_field_and_data_byte_exact) {
  size_t len;
  char *buf = write_sample(&len);
  snap_t s;
  char err[256] = "";
  cr_assert_eq(snap_parse(buf, len, &s, err, sizeof err), 0, "%s", err);
  cr_assert_eq(s.version, 1);
  cr_assert_eq(s.created, 1700000001000);
  cr_assert_str_eq(s.epoch, "0123456789abcdef");
  cr_assert_eq(s.seq, 12);
  cr_assert_eq(s.count, 4);
  for (size_t i = 0; i < s.count; i++) {
    cr_assert_eq(s.topics[i].topic_len, sample_topics[i].topic_len);
    cr_assert_eq(memcmp(s.topics[i].topic, sample_topics[i].topic, s.topics[i].topic_len), 0);
    cr_assert_eq(s.topics[i].seq, sample_topics[i].seq);
    cr_assert_eq(s.topics[i].ts, sample_topics[i].ts);
    cr_assert_eq(s.topics[i].data_len, sample_topics[i].data_len);
    cr_assert_eq(memcmp(s.topics[i].data, sample_topics[i].data, s.topics[i].data_len), 0);
  }
  snap_dispose(&s);
  free(buf);
}

Test(snapshot_format, checksum_ignores_whitespace_and_member_order) {
  char a[] = "{\"format\":\"statecast-snapshot\",\"version\":1,\"created\":5,\"epoch\":\"ab\",\"seq\":2,\"count\":1,"
             "\"topics\":[{\"topic\":\"t\",\"seq\":2,\"ts\":7,\"data\":[1]}],\"sha256\":\"%s\"}";
  snap_topic_t t = T("t", 2, 7, "[1]");
  snap_t s;
  memset(&s, 0, sizeof s);
  s.version = 1;
  s.created = 5;
  strcpy(s.epoch, "ab");
  s.seq = 2;
  s.count = 1;
  s.topics = &t;
  char hex[65];
  cr_assert_eq(snap_checksum(&s, hex), 0);
  char file[1024];
  snprintf(file, sizeof file, a, hex);
  char err[256] = "";
  cr_assert_eq(parse(file, strlen(file), err, sizeof err), 0, "%s", err);
  /* the same content spread out and reordered */
  char spaced[1024];
  snprintf(spaced, sizeof spaced,
           "{ \"version\" : 1 ,\n \"format\":\"statecast-snapshot\", \"seq\":2, \"epoch\":\"ab\", \"created\":5,"
           "\"count\":1, \"topics\" : [ { \"data\" : [1] , \"ts\":7, \"seq\":2, \"topic\":\"t\" } ] ,"
           "\"sha256\":\"%s\" }\n",
           hex);
  cr_assert_eq(parse(spaced, strlen(spaced), err, sizeof err), 0, "%s", err);
}

Test(snapshot_format, every_truncation_is_refused_as_truncated_or_malformed) {
  size_t len;
  char *buf = write_sample(&len);
  char err[256];
  /* the final newline is optional whitespace; any shorter prefix is damaged */
  for (size_t n = 0; n + 1 < len; n++) {
    char *copy = malloc(n + 1); /* exact size, so ASan catches any overread */
    memcpy(copy, buf, n);
    int rc = parse(copy, n, err, sizeof err);
    cr_assert_neq(rc, 0, "prefix of %zu bytes accepted", n);
    free(copy);
  }
  cr_assert_neq(parse(buf, len / 2, err, sizeof err), 0);
  cr_assert(strstr(err, "truncated") != NULL, "message: %s", err);
  free(buf);
}

Test(snapshot_format, any_changed_byte_is_detected) {
  size_t len;
  char *buf = write_sample(&len);
  char err[256];
  size_t flips = 0;
  for (size_t i = 0; i < len; i++) {
    char saved = buf[i];
    for (int delta = 1; delta <= 2; delta++) {
      buf[i] = (char)(saved ^ delta);
      if (parse(buf, len, err, sizeof err) == 0) {
        /* only whitespace-for-whitespace swaps may pass ('\n' ^ 2 is '\b': no) */
        cr_assert(saved == ' ' || saved == '\n', "flip at %zu accepted", i);
      }
      flips++;
    }
    buf[i] = saved;
  }
  cr_assert(flips > 0);
  free(buf);
}

Test(snapshot_format, changed_data_fails_the_checksum_with_a_clear_message) {
  size_t len;
  char *buf = write_sample(&len);
  char *p = strstr(buf, "{\"x\":1}");
  cr_assert_not_null(p);
  p[5] = '2';
  char err[256] = "";
  cr_assert_eq(parse(buf, len, err, sizeof err), SC_EINVAL);
  cr_assert(strstr(err, "checksum mismatch") != NULL, "message: %s", err);
  free(buf);
}

static void assert_refused(const char *file, int code, const char *needle) {
  char err[256] = "";
  int rc = parse(file, strlen(file), err, sizeof err);
  cr_assert_eq(rc, code, "rc %d (%s) for: %s", rc, err, file);
  cr_assert(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
}

Test(snapshot_format, wrong_version_and_format_are_named) {
  assert_refused("{\"format\":\"statecast-snapshot\",\"version\":2,\"topics\":{}}", SC_EINVAL,
                 "unsupported snapshot version 2");
  assert_refused("{\"format\":\"something-else\",\"version\":1}", SC_EINVAL, "not a statecast snapshot");
  assert_refused("", SC_EJSON, "empty");
  assert_refused("[1,2]", SC_EJSON, "expected '{'");
}

/* A well-formed file with the given topics part, correct checksum except where noted. */
static void build(char *out, size_t cap, uint64_t seq, uint64_t count, const snap_topic_t *ts, size_t n,
                  const char *topics_json) {
  snap_t s;
  memset(&s, 0, sizeof s);
  s.version = 1;
  s.created = 1;
  s.seq = seq;
  s.count = n;
  s.topics = (snap_topic_t *)ts;
  char hex[65];
  cr_assert_eq(snap_checksum(&s, hex), 0);
  snprintf(out, cap,
           "{\"format\":\"statecast-snapshot\",\"version\":1,\"created\":1,\"epoch\":\"\",\"seq\":%llu,"
           "\"count\":%llu,\"topics\":[%s],\"sha256\":\"%s\"}",
           (unsigned long long)seq, (unsigned long long)count, topics_json, hex);
}

Test(snapshot_format, inconsistent_content_is_refused) {
  char f[2048];
  snap_topic_t two[] = {T("t", 1, 1, "1"), T("t", 2, 1, "2")};
  build(f, sizeof f, 5, 2, two, 2,
        "{\"topic\":\"t\",\"seq\":1,\"ts\":1,\"data\":1},{\"topic\":\"t\",\"seq\":2,\"ts\":1,\"data\":2}");
  assert_refused(f, SC_EINVAL, "more than once");

  snap_topic_t ahead[] = {T("t", 9, 1, "1")};
  build(f, sizeof f, 5, 1, ahead, 1, "{\"topic\":\"t\",\"seq\":9,\"ts\":1,\"data\":1}");
  assert_refused(f, SC_EINVAL, "newer than the snapshot");

  snap_topic_t one[] = {T("t", 1, 1, "1")};
  build(f, sizeof f, 5, 3, one, 1, "{\"topic\":\"t\",\"seq\":1,\"ts\":1,\"data\":1}");
  assert_refused(f, SC_EINVAL, "count says 3");

  snap_topic_t loose[] = {T("t", 1, 1, "[1, 2]")};
  build(f, sizeof f, 5, 1, loose, 1, "{\"topic\":\"t\",\"seq\":1,\"ts\":1,\"data\":[1, 2]}");
  assert_refused(f, SC_EJSON, "not in compact form");

  snap_topic_t bad[] = {T("t", 1, 1, "[01]")};
  build(f, sizeof f, 5, 1, bad, 1, "{\"topic\":\"t\",\"seq\":1,\"ts\":1,\"data\":[01]}");
  assert_refused(f, SC_EJSON, "not valid JSON");

  snap_topic_t name[] = {T("bad topic", 1, 1, "1")};
  build(f, sizeof f, 5, 1, name, 1, "{\"topic\":\"bad topic\",\"seq\":1,\"ts\":1,\"data\":1}");
  assert_refused(f, SC_EINVAL, "invalid topic name");

  build(f, sizeof f, 5, 1, one, 1, "{\"topic\":\"t\",\"seq\":1,\"ts\":1,\"data\":1,\"extra\":2}");
  assert_refused(f, SC_EJSON, "unknown member 'extra'");

  build(f, sizeof f, 5, 1, one, 1, "{\"topic\":\"t\",\"seq\":1,\"data\":1}");
  assert_refused(f, SC_EJSON, "lacks \"ts\"");
}

Test(snapshot_format, trailing_garbage_is_refused) {
  size_t len;
  char *buf = write_sample(&len);
  char *more = malloc(len + 3);
  memcpy(more, buf, len);
  memcpy(more + len, "{}", 2);
  char err[256] = "";
  cr_assert_eq(parse(more, len + 2, err, sizeof err), SC_EJSON);
  cr_assert(strstr(err, "after the end") != NULL, "message: %s", err);
  free(more);
  free(buf);
}

Test(snapshot_format, file_is_written_atomically_and_reads_back) {
  char dir[] = "/tmp/snapfmtXXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char path[512];
  snprintf(path, sizeof path, "%s/out.json", dir);
  snap_t s = sample();
  char err[256] = "";
  cr_assert_eq(snap_write_file(path, &s, err, sizeof err), 0, "%s", err);
  /* again over the existing file: still exactly one file in the dir */
  cr_assert_eq(snap_write_file(path, &s, err, sizeof err), 0, "%s", err);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 1", dir);
  cr_assert_eq(system(cmd), 0, "temporary file left behind");
  char *buf = NULL;
  size_t len = 0;
  cr_assert_eq(snap_read_file(path, &buf, &len, err, sizeof err), 0, "%s", err);
  snap_t back;
  cr_assert_eq(snap_parse(buf, len, &back, err, sizeof err), 0, "%s", err);
  back.owner = buf;
  back.release = free;
  cr_assert_eq(back.count, 4);
  cr_assert_str_eq(back.sha256, s.sha256);
  snap_dispose(&back);
  cr_assert_neq(snap_write_file("/nonexistent-dir/x.json", &s, err, sizeof err), 0);
  cr_assert(strstr(err, "/nonexistent-dir") != NULL, "message: %s", err);
  unlink(path);
  rmdir(dir);
}

Test(snapshot_load_decision, restores_absent_and_newer_keeps_newer_redis_state) {
  snap_topic_t want = T("t", 5, 100, "{\"v\":1}");
  snap_topic_t same = T("t", 9, 500, "{\"v\":1}");
  snap_topic_t older = T("t", 2, 50, "{\"v\":0}");
  snap_topic_t newer = T("t", 9, 200, "{\"v\":2}");
  cr_assert_eq(snap_decide(&want, NULL, 0), SNAP_ADD);
  cr_assert_eq(snap_decide(&want, &same, 0), SNAP_UNCHANGED);
  cr_assert_eq(snap_decide(&want, &older, 0), SNAP_UPDATE);
  cr_assert_eq(snap_decide(&want, &newer, 0), SNAP_KEEP);
  cr_assert_eq(snap_decide(&want, &newer, 1), SNAP_UPDATE);
  cr_assert_eq(snap_decide(NULL, &newer, 1), SNAP_DELETE);
  cr_assert_eq(snap_decide(NULL, &newer, 0), SNAP_UNCHANGED);
}

Test(snapshot_load_decision, plan_counts_each_kind_and_replace_adds_deletes) {
  snap_topic_t f[] = {T("a", 1, 10, "1"), T("b", 2, 10, "2"), T("c", 3, 10, "3")};
  snap_topic_t r[] = {T("b", 7, 5, "20"), T("c", 8, 50, "30"), T("z", 9, 5, "0")};
  snap_t file = {.count = 3, .topics = f}, cur = {.count = 3, .topics = r};
  snap_stats_t st;
  cr_assert_eq(snap_plan(&file, &cur, 0, NULL, NULL, &st), 0);
  cr_assert_eq(st.added, 1);
  cr_assert_eq(st.updated, 1);
  cr_assert_eq(st.kept, 1);
  cr_assert_eq(st.deleted, 0);
  cr_assert_eq(snap_plan(&file, &cur, 1, NULL, NULL, &st), 0);
  cr_assert_eq(st.added, 1);
  cr_assert_eq(st.updated, 2);
  cr_assert_eq(st.deleted, 1);
  cr_assert_eq(st.kept, 0);
}
