/* statecast-snapshot against a real redis-server: consistent saves while
 * publishes go on, restores through the commit script, idempotence,
 * --replace, damaged files, and 100,000 topics. Topics are committed by
 * running the commit script directly, so nothing here needs kv-updater. */
#include "commit.h"
#include "keys.h"
#include "snap_format.h"
#include "support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static sc_test_redis_t srv;
static redisContext *c;
static char *bin;
static char url_env[128];
static char dir[64];

static void setup(void) {
  cr_assert_eq(sc_test_redis_start(&srv, NULL), 0, "redis-server did not start");
  c = sc_test_redis_connect(&srv);
  cr_assert_not_null(c);
  bin = sc_test_bin("statecast-snapshot");
  cr_assert_eq(access(bin, X_OK), 0, "%s is not built", bin);
  char url[96];
  sc_test_redis_url(&srv, url, sizeof url);
  snprintf(url_env, sizeof url_env, "STATECAST_REDIS_URL=%s", url);
  snprintf(dir, sizeof dir, "/tmp/snaptestXXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
  if (c) redisFree(c);
  c = NULL;
  sc_test_redis_stop(&srv, 0);
  free(bin);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(snapshot, .init = setup, .fini = teardown, .timeout = 120);

/* Commit through the script on ctx; data NULL deletes. Returns the seq (0: nothing committed). */
static long long commit_on(redisContext *ctx, const char *topic, const char *data) {
  sc_commit_cmd_t cmd;
  if (sc_commit_argv(&cmd, 1, topic, strlen(topic), data, data ? strlen(data) : 0) != 0) return -1;
  redisReply *r = redisCommandArgv(ctx, SC_COMMIT_ARGC, cmd.argv, cmd.argvlen);
  if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
    if (r) freeReplyObject(r);
    return -1;
  }
  long long seq = r->element[0]->integer ? r->element[1]->integer : 0;
  freeReplyObject(r);
  return seq;
}

static long long commit(const char *topic, const char *data) {
  long long s = commit_on(c, topic, data);
  cr_assert(s >= 0, "commit of %s failed", topic);
  return s;
}

static char *get(const char *fmt, const char *arg) {
  redisReply *r = arg ? redisCommand(c, fmt, arg) : redisCommand(c, fmt);
  cr_assert_not_null(r);
  char *s = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
  freeReplyObject(r);
  return s;
}

static long long get_int(const char *fmt) {
  char *s = get(fmt, NULL);
  long long v = s ? atoll(s) : 0;
  free(s);
  return v;
}

static long long zcard(void) {
  redisReply *r = redisCommand(c, "ZCARD %s", SC_KEYS_INDEX);
  long long n = r->integer;
  freeReplyObject(r);
  return n;
}

static char out[1 << 16], err[1 << 16];

/* Run statecast-snapshot with args (NULL-terminated); returns the exit code. */
static int run(const char *a1, const char *a2, const char *a3, const char *a4) {
  char *argv[] = {bin, (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
  char *env[] = {url_env, NULL};
  return sc_test_run(bin, argv, env, NULL, out, sizeof out, err, sizeof err);
}

static void path_of(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", dir, name); }

static void read_snapshot(const char *path, snap_t *s) {
  char e[512];
  char *buf = NULL;
  size_t len = 0;
  cr_assert_eq(snap_read_file(path, &buf, &len, e, sizeof e), 0, "%s", e);
  cr_assert_eq(snap_parse(buf, len, s, e, sizeof e), 0, "%s", e);
  s->owner = buf;
  s->release = free;
}

static const snap_topic_t *find(const snap_t *s, const char *topic) {
  for (size_t i = 0; i < s->count; i++)
    if (s->topics[i].topic_len == strlen(topic) && memcmp(s->topics[i].topic, topic, s->topics[i].topic_len) == 0)
      return &s->topics[i];
  return NULL;
}

Test(snapshot, save_is_consistent_while_publishes_continue) {
  enum { NTOPICS = 200 };
  char log[128];
  path_of(log, sizeof log, "commits.log");
  pid_t child = fork();
  cr_assert(child >= 0);
  if (child == 0) {
    /* Publisher: commit forever, logging "u|d topic seq" after each commit. */
    redisContext *cc = sc_test_redis_connect(&srv);
    FILE *f = fopen(log, "w");
    if (cc == NULL || f == NULL) _exit(1);
    for (unsigned long i = 0;; i++) {
      char topic[32], data[64];
      snprintf(topic, sizeof topic, "pub/%lu", (i * 7919) % NTOPICS);
      int del = i % 13 == 0;
      snprintf(data, sizeof data, "{\"i\":%lu}", i);
      long long seq = commit_on(cc, topic, del ? NULL : data);
      if (seq < 0) _exit(2);
      if (seq > 0) {
        fprintf(f, "%c %s %lld %s\n", del ? 'd' : 'u', topic, seq, del ? "-" : data);
        fflush(f);
      }
    }
  }
  /* let it get going, then save three times while it runs */
  for (int i = 0; i < 500 && get_int("GET " SC_KEYS_SEQ) < 2000; i++) usleep(10000);
  char paths[3][128];
  for (int k = 0; k < 3; k++) {
    char name[16];
    snprintf(name, sizeof name, "s%d.json", k);
    path_of(paths[k], sizeof paths[k], name);
    cr_assert_eq(run("save", "-o", paths[k], NULL), 0, "save failed: %s", err);
  }
  kill(child, SIGKILL);
  waitpid(child, NULL, 0);

  for (int k = 0; k < 3; k++) {
    snap_t s;
    read_snapshot(paths[k], &s);
    cr_assert(s.seq > 0);
    /* Replay the commit log up to the snapshot's seq: the file must hold exactly that state. */
    char last_op[NTOPICS];
    long long last_seq[NTOPICS];
    char last_data[NTOPICS][64];
    memset(last_op, 0, sizeof last_op);
    FILE *f = fopen(log, "r");
    cr_assert_not_null(f);
    char op, topic[32], data[64];
    long long seq;
    while (fscanf(f, " %c %31s %lld %63s", &op, topic, &seq, data) == 4) {
      if ((unsigned long long)seq > s.seq) continue;
      int t = atoi(topic + 4);
      last_op[t] = op;
      last_seq[t] = seq;
      strcpy(last_data[t], data);
    }
    fclose(f);
    size_t live = 0;
    for (int t = 0; t < NTOPICS; t++) {
      char name[32];
      snprintf(name, sizeof name, "pub/%d", t);
      const snap_topic_t *e = find(&s, name);
      if (last_op[t] == 'u') {
        live++;
        cr_assert_not_null(e, "%s committed at seq %lld <= %llu is missing", name, last_seq[t],
                           (unsigned long long)s.seq);
        cr_assert_eq((long long)e->seq, last_seq[t], "%s: seq %llu, want %lld", name, (unsigned long long)e->seq,
                     last_seq[t]);
        cr_assert_eq(e->data_len, strlen(last_data[t]));
        cr_assert_eq(memcmp(e->data, last_data[t], e->data_len), 0);
      } else {
        cr_assert_null(e, "%s is in the snapshot but was deleted or never committed by seq %llu", name,
                       (unsigned long long)s.seq);
      }
    }
    cr_assert_eq(s.count, live);
    for (size_t i = 0; i < s.count; i++) cr_assert(s.topics[i].seq <= s.seq);
    snap_dispose(&s);
  }
}

/* Commit n topics "t/<i>" with data {"n":i,...}. */
static void fill(int n, const char *extra) {
  for (int i = 0; i < n; i++) {
    char topic[32], data[128];
    snprintf(topic, sizeof topic, "t/%d", i);
    snprintf(data, sizeof data, "{\"n\":%d,\"big\":12345678901234567890123,\"x\":\"%s\"}", i, extra);
    commit(topic, data);
  }
}

static void flushall(void) {
  redisReply *r = redisCommand(c, "FLUSHALL");
  freeReplyObject(r);
}

Test(snapshot, load_into_an_empty_redis_restores_every_topic_and_notifies) {
  fill(50, "a");
  commit("gone", "1");
  commit("gone", NULL);
  char path[128];
  path_of(path, sizeof path, "s.json");
  cr_assert_eq(run("save", "-o", path, NULL), 0, "%s", err);
  char *before[50];
  for (int i = 0; i < 50; i++) {
    char key[32];
    snprintf(key, sizeof key, "state:{t/%d}", i);
    before[i] = get("HGET %s data", key);
  }
  flushall();

  redisContext *sub = sc_test_redis_connect(&srv);
  redisReply *r = redisCommand(sub, "SUBSCRIBE %s", SC_KEYS_NOTIFY);
  freeReplyObject(r);
  cr_assert_eq(run("load", path, NULL, NULL), 0, "%s", err);
  cr_assert(strstr(out, "added=50 ") != NULL, "%s", out);
  cr_assert_eq(zcard(), 50);
  cr_assert_eq(get_int("GET " SC_KEYS_SEQ), 50);
  for (int i = 0; i < 50; i++) {
    char key[32];
    snprintf(key, sizeof key, "state:{t/%d}", i);
    char *now = get("HGET %s data", key);
    cr_assert_str_eq(now, before[i]);
    free(now);
    free(before[i]);
  }
  /* every restored topic went through the commit script, so displays heard of it */
  redisSetTimeout(sub, (struct timeval){5, 0});
  for (int i = 0; i < 50; i++) {
    redisReply *m = NULL;
    cr_assert_eq(redisGetReply(sub, (void **)&m), REDIS_OK, "notification %d missing", i);
    cr_assert_eq(m->element[2]->str[0], 'u');
    freeReplyObject(m);
  }
  redisFree(sub);
}

Test(snapshot, loading_the_same_file_twice_changes_nothing_the_second_time) {
  fill(30, "b");
  char path[128];
  path_of(path, sizeof path, "s.json");
  cr_assert_eq(run("save", "-o", path, NULL), 0, "%s", err);
  flushall();
  cr_assert_eq(run("load", path, NULL, NULL), 0, "%s", err);
  long long seq = get_int("GET " SC_KEYS_SEQ);
  cr_assert_eq(run("load", path, NULL, NULL), 0, "%s", err);
  cr_assert(strstr(out, "added=0 updated=0 deleted=0 unchanged=30") != NULL, "%s", out);
  cr_assert_eq(get_int("GET " SC_KEYS_SEQ), seq);
  cr_assert_eq(run("load", path, "--replace", NULL), 0, "%s", err);
  cr_assert_eq(get_int("GET " SC_KEYS_SEQ), seq);
  cr_assert_eq(run("diff", path, NULL, NULL), 0, "diff after load should be empty: %s", out);
}

Test(snapshot, default_load_restores_missing_and_older_topics_but_keeps_newer_ones) {
  commit("keep", "\"old\"");
  commit("restore", "\"snap\"");
  commit("missing", "\"snap\"");
  char path[128];
  path_of(path, sizeof path, "s.json");
  cr_assert_eq(run("save", "-o", path, NULL), 0, "%s", err);
  commit("keep", "\"newer\"");
  commit("missing", NULL);
  commit("extra", "1");
  /* make "restore" look older than the snapshot: its ts goes back in time */
  commit("restore", "\"changed\"");
  redisReply *r = redisCommand(c, "HSET state:{restore} ts 1000");
  freeReplyObject(r);

  cr_assert_eq(run("diff", path, NULL, NULL), 5, "%s", out);
  cr_assert(strstr(out, "kept      keep") != NULL, "%s", out);
  cr_assert(strstr(out, "added     missing") != NULL, "%s", out);
  cr_assert(strstr(out, "updated   restore") != NULL, "%s", out);

  cr_assert_eq(run("load", path, NULL, NULL), 0, "%s", err);
  cr_assert(strstr(out, "added=1 updated=1 deleted=0 unchanged=0 kept=1") != NULL, "%s", out);
  char *v = get("HGET %s data", "state:{keep}");
  cr_assert_str_eq(v, "\"newer\"");
  free(v);
  v = get("HGET %s data", "state:{restore}");
  cr_assert_str_eq(v, "\"snap\"");
  free(v);
  v = get("HGET %s data", "state:{missing}");
  cr_assert_str_eq(v, "\"snap\"");
  free(v);
  v = get("HGET %s data", "state:{extra}");
  cr_assert_str_eq(v, "1");
  free(v);
}

Test(snapshot, replace_makes_redis_equal_to_the_snapshot) {
  fill(10, "c");
  char path[128];
  path_of(path, sizeof path, "s.json");
  cr_assert_eq(run("save", "-o", path, NULL), 0, "%s", err);
  commit("t/3", "\"newer\"");
  commit("t/4", NULL);
  commit("extra/1", "1");
  commit("extra/2", "2");
  cr_assert_eq(run("diff", path, "--replace", NULL), 5, "%s", out);
  cr_assert(strstr(out, "deleted   extra/1") != NULL, "%s", out);
  cr_assert_eq(run("load", path, "--replace", NULL), 0, "%s", err);
  cr_assert(strstr(out, "added=1 updated=1 deleted=2 unchanged=8 kept=0") != NULL, "%s", out);
  cr_assert_eq(zcard(), 10);
  cr_assert_null(get("HGET %s data", "state:{extra/1}"));
  char *v = get("HGET %s data", "state:{t/3}");
  cr_assert(strstr(v, "\"n\":3") != NULL, "%s", v);
  free(v);
  /* a save now equals the original snapshot topic for topic (data) */
  char again[128];
  path_of(again, sizeof again, "again.json");
  cr_assert_eq(run("save", "-o", again, NULL), 0, "%s", err);
  snap_t a, b;
  read_snapshot(path, &a);
  read_snapshot(again, &b);
  cr_assert_eq(a.count, b.count);
  for (size_t i = 0; i < a.count; i++) {
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)a.topics[i].topic_len, a.topics[i].topic);
    const snap_topic_t *e = find(&b, name);
    cr_assert_not_null(e);
    cr_assert_eq(e->data_len, a.topics[i].data_len);
    cr_assert_eq(memcmp(e->data, a.topics[i].data, e->data_len), 0);
  }
  snap_dispose(&a);
  snap_dispose(&b);
}

static void write_bytes(const char *path, const char *buf, size_t len) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(buf, 1, len, f), len);
  fclose(f);
}

Test(snapshot, corrupt_truncated_and_wrong_version_files_never_change_redis) {
  fill(20, "d");
  char path[128];
  path_of(path, sizeof path, "s.json");
  cr_assert_eq(run("save", "-o", path, NULL), 0, "%s", err);
  /* Redis now differs from the file, so any load would change it */
  flushall();
  commit("other", "1");
  char *buf = NULL;
  size_t len = 0;
  char e[256];
  cr_assert_eq(snap_read_file(path, &buf, &len, e, sizeof e), 0);

  char bad[128];
  path_of(bad, sizeof bad, "bad.json");
  struct {
    const char *what, *needle;
  } cases[] = {{"truncated", "truncated"}, {"flipped", "checksum mismatch"}, {"version", "unsupported snapshot version"},
               {"empty", "empty"}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char *copy = malloc(len);
    memcpy(copy, buf, len);
    size_t n = len;
    if (k == 0) n = len * 2 / 3;
    if (k == 1) strstr(copy, "\"n\":7,")[4] = '8'; /* one digit of one topic's data */
    if (k == 2) strstr(copy, "\"version\":1")[10] = '2';
    if (k == 3) n = 0;
    write_bytes(bad, copy, n);
    free(copy);
    cr_assert_eq(run("verify", bad, NULL, NULL), 2, "%s verify: %s", cases[k].what, err);
    cr_assert(strstr(err, cases[k].needle) != NULL, "%s: %s", cases[k].what, err);
    cr_assert_eq(run("load", bad, NULL, NULL), 2, "%s load: %s", cases[k].what, err);
    cr_assert_eq(run("load", bad, "--replace", NULL), 2, "%s load --replace: %s", cases[k].what, err);
    cr_assert_eq(get_int("GET " SC_KEYS_SEQ), 1, "%s changed Redis", cases[k].what);
    cr_assert_eq(zcard(), 1);
  }
  free(buf);
  cr_assert_eq(run("load", "/nonexistent/file.json", NULL, NULL), 4);
  cr_assert_eq(run("verify", path, NULL, NULL), 0, "%s", err);
  cr_assert(strstr(out, "ok: ") != NULL);
  cr_assert_eq(run("frobnicate", NULL, NULL, NULL), 1);
  cr_assert_eq(run("--help", NULL, NULL, NULL), 0);
  cr_assert(strstr(out, "exit codes") != NULL);
}

Test(snapshot, hundred_thousand_topics_save_and_load, .timeout = 600) {
  enum { N = 100000 };
  redisReply *r = redisCommand(c, "SCRIPT LOAD %s", sc_commit_script);
  freeReplyObject(r);
  static char data[1100];
  /* ~1 KiB per topic, pipelined EVALSHA in chunks */
  for (int base = 0; base < N; base += 1000) {
    sc_commit_cmd_t *cmds = malloc(1000 * sizeof *cmds);
    static char topics[1000][32];
    static char datas[1000][1100];
    for (int i = 0; i < 1000; i++) {
      snprintf(topics[i], sizeof topics[i], "load/%d", base + i);
      int n = snprintf(datas[i], sizeof datas[i], "{\"i\":%d,\"pad\":\"", base + i);
      memset(datas[i] + n, 'x', 1000);
      strcpy(datas[i] + n + 1000, "\"}");
      cr_assert_eq(sc_commit_argv(&cmds[i], 0, topics[i], strlen(topics[i]), datas[i], strlen(datas[i])), 0);
      redisAppendCommandArgv(c, SC_COMMIT_ARGC, cmds[i].argv, cmds[i].argvlen);
    }
    for (int i = 0; i < 1000; i++) {
      cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
      cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
      freeReplyObject(r);
    }
    free(cmds);
  }
  (void)data;
  cr_assert_eq(zcard(), N);
  char path[128];
  path_of(path, sizeof path, "big.json");
  cr_assert_eq(run("save", "-o", path, NULL), 0, "%s", err);
  cr_assert(strstr(err, "saved 100000 topics") != NULL, "%s", err);
  flushall();
  cr_assert_eq(run("load", path, NULL, NULL), 0, "%s", err);
  cr_assert(strstr(out, "added=100000 ") != NULL, "%s", out);
  cr_assert(strstr(err, "restored 100000/100000") != NULL, "no progress report: %s", err);
  cr_assert_eq(zcard(), N);
  cr_assert_eq(get_int("GET " SC_KEYS_SEQ), N);
  char *v = get("HGET %s data", "state:{load/99999}");
  cr_assert(strncmp(v, "{\"i\":99999,\"pad\":\"xxx", 21) == 0);
  free(v);
}
