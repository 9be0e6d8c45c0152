/*
 * kv_updater: the real statecast-kv-updater against a real redis-server.
 * Messages are PUBLISHed raw (no publisher library) so that malformed ones
 * can be sent too; every wait is a condition with a generous timeout.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#define WAIT_MS 15000

static sc_test_redis_t g_redis;
static int g_redis_started;
static pid_t g_kvu = -1;
static int g_hport;
static char g_log[300];

static void setup(void) {
  cr_assert_eq(sc_test_redis_start(&g_redis, NULL), 0, "redis-server did not start");
  g_redis_started = 1;
  snprintf(g_log, sizeof g_log, "%s/kvu.log", g_redis.dir);
}

static int stop_kvu(void) {
  if (g_kvu <= 0) return -1;
  int st = sc_test_stop(g_kvu, SIGTERM, 10000);
  g_kvu = -1;
  return st;
}

static void teardown(void) {
  if (g_kvu > 0) {
    int st = stop_kvu();
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) sc_test_dump(g_log);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "kv-updater should exit 0 on SIGTERM (status %d)", st);
  }
  if (g_redis_started) sc_test_redis_stop(&g_redis, 0);
  g_redis_started = 0;
}

/* Start kv-updater on g_redis with extra flags (NULL-terminated, may be NULL)
 * and environment; wait for /readyz 200 when wait_ready. */
static void start_kvu_url(const char *url, const char *const *extra, char *const *env, int wait_ready) {
  char *bin = sc_test_bin("statecast-kv-updater");
  char listen[64];
  g_hport = sc_test_free_port();
  snprintf(listen, sizeof listen, "127.0.0.1:%d", g_hport);
  const char *argv[32] = {bin, "--redis-url", url, "--health-listen", listen};
  size_t n = 5;
  for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 30; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  g_kvu = sc_test_spawn(bin, (char *const *)argv, env, g_log);
  free(bin);
  cr_assert_gt(g_kvu, 0);
  if (wait_ready && !sc_test_wait_http(g_hport, "/readyz", 200, WAIT_MS)) {
    sc_test_dump(g_log);
    cr_assert_fail("kv-updater never became ready");
  }
}

static void start_kvu(const char *const *extra, char *const *env) {
  char url[64];
  sc_test_redis_url(&g_redis, url, sizeof url);
  start_kvu_url(url, extra, env, 1);
}

static redisContext *conn(void) {
  redisContext *c = sc_test_redis_connect(&g_redis);
  cr_assert_not_null(c);
  return c;
}

static void publish(redisContext *c, const char *topic, const char *msg, size_t len) {
  char ch[512];
  snprintf(ch, sizeof ch, "update:{%s}", topic);
  redisReply *r = redisCommand(c, "PUBLISH %s %b", ch, msg, len);
  cr_assert_not_null(r);
  cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
  freeReplyObject(r);
}

static void publish_s(redisContext *c, const char *topic, const char *msg) { publish(c, topic, msg, strlen(msg)); }

/* HGET state:{topic} field as a malloc'd string, NULL when absent. */
static char *hget(redisContext *c, const char *topic, const char *field) {
  redisReply *r = redisCommand(c, "HGET state:{%s} %s", topic, field);
  cr_assert_not_null(r);
  char *v = r->type == REDIS_REPLY_STRING ? strndup(r->str, r->len) : NULL;
  freeReplyObject(r);
  return v;
}

static long long cmd_int(redisContext *c, const char *fmt, const char *arg) {
  redisReply *r = redisCommand(c, fmt, arg);
  cr_assert_not_null(r);
  long long v = -1;
  if (r->type == REDIS_REPLY_INTEGER) v = r->integer;
  else if (r->type == REDIS_REPLY_STRING) v = atoll(r->str);
  freeReplyObject(r);
  return v;
}

typedef struct data_is {
  redisContext *c;
  const char *topic;
  const char *want;
} data_is_t;

static int pred_data_is(void *arg) {
  data_is_t *d = arg;
  char *v = hget(d->c, d->topic, "data");
  int ok = v != NULL && strcmp(v, d->want) == 0;
  free(v);
  return ok;
}

static void wait_data(redisContext *c, const char *topic, const char *want) {
  data_is_t d = {c, topic, want};
  if (!sc_test_wait(pred_data_is, &d, WAIT_MS)) {
    sc_test_dump(g_log);
    cr_assert_fail("state:{%s} data never became %s", topic, want);
  }
}

/* Value of one metric line from /metrics ("name" or "name{labels}"), -1 if absent. */
static long long metric(const char *name) {
  static char body[65536];
  if (sc_test_http(g_hport, "GET", "/metrics", body, sizeof body) != 200) return -1;
  size_t n = strlen(name);
  for (char *line = body; line != NULL && *line != '\0';) {
    char *nl = strchr(line, '\n');
    if (strncmp(line, name, n) == 0 && line[n] == ' ') return atoll(line + n + 1);
    line = nl != NULL ? nl + 1 : NULL;
  }
  return -1;
}

typedef struct metric_is {
  const char *name;
  long long want;
} metric_is_t;

static int pred_metric_is(void *arg) {
  metric_is_t *m = arg;
  return metric(m->name) == m->want;
}

static void wait_metric(const char *name, long long want) {
  metric_is_t m = {name, want};
  if (!sc_test_wait(pred_metric_is, &m, WAIT_MS)) {
    sc_test_dump(g_log);
    cr_assert_fail("%s never reached %lld (now %lld)", name, want, metric(name));
  }
}

/* A blocking connection SUBSCRIBEd to statecast:notify. */
static redisContext *notify_sub(void) {
  redisContext *c = conn();
  redisReply *r = redisCommand(c, "SUBSCRIBE statecast:notify");
  cr_assert_not_null(r);
  freeReplyObject(r);
  return c;
}

/* Next notification payload (malloc'd). */
static char *next_notify(redisContext *c) {
  redisReply *r = NULL;
  cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK, "no notification within the timeout");
  cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
  cr_assert_eq(r->elements, 3);
  char *p = strndup(r->element[2]->str, r->element[2]->len);
  freeReplyObject(r);
  return p;
}

typedef struct notif {
  char kind;
  char epoch[64];
  unsigned long long seq;
  long long ts;
  char topic[256];
  char data[4096];
} notif_t;

static void parse_notify(const char *p, notif_t *n) {
  memset(n, 0, sizeof *n);
  int used = 0;
  cr_assert_eq(sscanf(p, "%c %63s %llu %lld %255s%n", &n->kind, n->epoch, &n->seq, &n->ts, n->topic, &used), 5,
               "bad notification: %s", p);
  if (p[used] == ' ') snprintf(n->data, sizeof n->data, "%s", p + used + 1);
}

TestSuite(kv_updater, .init = setup, .fini = teardown, .timeout = 120);

Test(kv_updater, commits_published_state_indexes_it_and_notifies) {
  start_kvu(NULL, NULL);
  redisContext *c = conn();
  redisContext *sub = notify_sub();
  publish_s(c, "t", "{ \"a\" : 1 }");
  char *p = next_notify(sub);
  notif_t n;
  parse_notify(p, &n);
  cr_assert_eq(n.kind, 'u', "%s", p);
  cr_assert_str_eq(n.topic, "t");
  cr_assert_str_eq(n.data, "{\"a\":1}");
  cr_assert_gt(n.seq, 0);
  cr_assert_gt(n.ts, 0);
  cr_assert_gt(strlen(n.epoch), 0);
  free(p);

  char *data = hget(c, "t", "data");
  char *seq = hget(c, "t", "seq");
  char *ts = hget(c, "t", "ts");
  cr_assert_str_eq(data, "{\"a\":1}");
  cr_assert_eq(strtoull(seq, NULL, 10), n.seq);
  cr_assert_eq(atoll(ts), n.ts);
  cr_assert_eq(cmd_int(c, "ZSCORE statecast:index %s", "t"), (long long)n.seq);
  free(data);
  free(seq);
  free(ts);
  wait_metric("statecast_kvu_messages_committed_total", 1);
  wait_metric("statecast_kvu_last_seq", (long long)n.seq);
  redisFree(sub);
  redisFree(c);
}

Test(kv_updater, keeps_arrival_order_of_rapid_messages) {
  start_kvu(NULL, NULL);
  redisContext *c = conn();
  redisContext *sub = notify_sub();
  char msg[64];
  for (int i = 0; i < 200; i++) {
    snprintf(msg, sizeof msg, "{\"i\":%d}", i);
    redisAppendCommand(c, "PUBLISH update:{order} %s", msg);
  }
  for (int i = 0; i < 200; i++) {
    redisReply *r = NULL;
    cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
    freeReplyObject(r);
  }
  unsigned long long last_seq = 0;
  for (int i = 0; i < 200; i++) {
    char *p = next_notify(sub);
    notif_t n;
    parse_notify(p, &n);
    snprintf(msg, sizeof msg, "{\"i\":%d}", i);
    cr_assert_str_eq(n.data, msg, "notification %d out of order: %s", i, p);
    cr_assert_gt(n.seq, last_seq, "seq not increasing at %d", i);
    last_seq = n.seq;
    free(p);
  }
  char *data = hget(c, "order", "data");
  cr_assert_str_eq(data, "{\"i\":199}");
  free(data);
  redisFree(sub);
  redisFree(c);
}

Test(kv_updater, seq_continues_across_a_restart) {
  start_kvu(NULL, NULL);
  redisContext *c = conn();
  publish_s(c, "r", "{\"v\":1}");
  wait_data(c, "r", "{\"v\":1}");
  char *s1 = hget(c, "r", "seq");
  int st = stop_kvu();
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM should exit 0 (status %d)", st);

  start_kvu(NULL, NULL);
  publish_s(c, "r", "{\"v\":2}");
  wait_data(c, "r", "{\"v\":2}");
  char *s2 = hget(c, "r", "seq");
  cr_assert_gt(strtoull(s2, NULL, 10), strtoull(s1, NULL, 10));
  free(s1);
  free(s2);
  redisFree(c);
}

Test(kv_updater, null_deletes_the_topic_and_leaves_a_tombstone) {
  start_kvu(NULL, NULL);
  redisContext *c = conn();
  publish_s(c, "gone", "{\"a\":1}");
  wait_data(c, "gone", "{\"a\":1}");
  redisContext *sub = notify_sub();
  publish_s(c, "gone", " null ");
  char *p = next_notify(sub);
  notif_t n;
  parse_notify(p, &n);
  cr_assert_eq(n.kind, 'd', "%s", p);
  cr_assert_str_eq(n.topic, "gone");
  cr_assert_str_eq(n.data, "");
  free(p);
  cr_assert_eq(cmd_int(c, "EXISTS state:{%s}", "gone"), 0);
  cr_assert_eq(cmd_int(c, "ZSCORE statecast:index %s", "gone"), -1);
  cr_assert_eq(cmd_int(c, "ZSCORE statecast:deleted %s", "gone"), (long long)n.seq);
  redisFree(sub);
  redisFree(c);
}

Test(kv_updater, deleting_an_absent_topic_does_nothing) {
  start_kvu(NULL, NULL);
  redisContext *c = conn();
  redisContext *sub = notify_sub();
  publish_s(c, "ghost", "null");
  publish_s(c, "marker", "1");
  /* Messages are handled in order: the first notification is the marker's. */
  char *p = next_notify(sub);
  notif_t n;
  parse_notify(p, &n);
  cr_assert_str_eq(n.topic, "marker", "%s", p);
  cr_assert_eq(n.seq, 1);
  free(p);
  cr_assert_eq(cmd_int(c, "ZSCORE statecast:deleted %s", "ghost"), -1);
  cr_assert_eq(cmd_int(c, "GET %s", "statecast:seq"), 1);
  wait_metric("statecast_kvu_messages_unchanged_total", 1);
  redisFree(sub);
  redisFree(c);
}

Test(kv_updater, identical_state_commits_nothing_and_notifies_nobody) {
  start_kvu(NULL, NULL);
  redisContext *c = conn();
  publish_s(c, "same", "{\"a\":[1,2]}");
  wait_data(c, "same", "{\"a\":[1,2]}");
  char *s1 = hget(c, "same", "seq");
  redisContext *sub = notify_sub();
  publish_s(c, "same", "{ \"a\" : [ 1 , 2 ] }\n");
  publish_s(c, "marker", "true");
  char *p = next_notify(sub);
  notif_t n;
  parse_notify(p, &n);
  cr_assert_str_eq(n.topic, "marker", "the identical message was notified: %s", p);
  free(p);
  char *s2 = hget(c, "same", "seq");
  cr_assert_str_eq(s1, s2);
  wait_metric("statecast_kvu_messages_unchanged_total", 1);
  wait_metric("statecast_kvu_messages_committed_total", 2);
  free(s1);
  free(s2);
  redisFree(sub);
  redisFree(c);
}

/* CLIENT KILL the kv-updater's command connection (found by its name). */
static void kill_cmd_connection(redisContext *c) {
  redisReply *r = redisCommand(c, "CLIENT LIST");
  cr_assert(r != NULL && r->type == REDIS_REPLY_STRING);
  long long id = -1;
  for (char *line = r->str; line != NULL && *line != '\0';) {
    char *nl = strchr(line, '\n');
    if (nl != NULL) *nl = '\0';
    if (strstr(line, "name=kvu-cmd") != NULL && strncmp(line, "id=", 3) == 0) id = atoll(line + 3);
    line = nl != NULL ? nl + 1 : NULL;
  }
  freeReplyObject(r);
  if (id < 0) return; /* between connections right now */
  char ids[32];
  snprintf(ids, sizeof ids, "%lld", id);
  r = redisCommand(c, "CLIENT KILL ID %s", ids);
  freeReplyObject(r);
}

static int pred_reconnected(void *arg) {
  (void)arg;
  return metric("statecast_kvu_redis_reconnects_total") >= 1 && metric("statecast_kvu_redis_up{conn=\"cmd\"}") == 1;
}

Test(kv_updater, commits_survive_losing_the_command_connection) {
  start_kvu(NULL, NULL);
  redisContext *c = conn();
  redisContext *killer = conn();
  redisContext *sub = notify_sub();
  char msg[64];
  int total = 0;
  for (int round = 0; round < 5; round++) {
    for (int i = 0; i < 400; i++, total++) {
      snprintf(msg, sizeof msg, "{\"i\":%d}", total);
      redisAppendCommand(c, "PUBLISH update:{survive} %s", msg);
    }
    for (int i = 0; i < 400; i++) {
      redisReply *r = NULL;
      cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
      freeReplyObject(r);
    }
    kill_cmd_connection(killer);
  }
  wait_data(c, "survive", "{\"i\":1999}");
  /* Commits in flight when the connection died are sent again, but only the
   * newest message of the topic: seq never goes back, displays never see an
   * older state again, and the last notification carries the last message. */
  unsigned long long last_seq = 0;
  int last_i = -1;
  for (;;) {
    char *p = next_notify(sub);
    notif_t n;
    parse_notify(p, &n);
    cr_assert_gt(n.seq, last_seq, "seq went back: %s", p);
    last_seq = n.seq;
    int i = -1;
    cr_assert_eq(sscanf(n.data, "{\"i\":%d}", &i), 1, "unexpected data: %s", p);
    cr_assert_gt(i, last_i, "an older state was committed again: %s after i=%d", p, last_i);
    last_i = i;
    int done = strcmp(n.data, "{\"i\":1999}") == 0;
    free(p);
    if (done) break;
  }
  wait_metric("statecast_kvu_pending_commits", 0);
  cr_assert(sc_test_wait(pred_reconnected, NULL, WAIT_MS), "the command connection should come back");
  cr_assert_eq(metric("statecast_kvu_messages_dropped_total"), 0);
  redisFree(sub);
  redisFree(killer);
  redisFree(c);
}

/* The rejected records, parsed, newest first. */
static cJSON *rejected_records(redisContext *c) {
  redisReply *r = redisCommand(c, "LRANGE statecast:rejected 0 -1");
  cr_assert_not_null(r);
  cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
  cJSON *arr = cJSON_CreateArray();
  for (size_t i = 0; i < r->elements; i++) {
    cJSON *o = cJSON_ParseWithLength(r->element[i]->str, r->element[i]->len);
    cr_assert_not_null(o, "record is not JSON: %s", r->element[i]->str);
    cJSON_AddItemToArray(arr, o);
  }
  freeReplyObject(r);
  return arr;
}

static cJSON *record_with_reason(cJSON *arr, const char *reason) {
  cJSON *o;
  cJSON_ArrayForEach(o, arr) {
    cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "reason");
    if (cJSON_IsString(rs) && strcmp(rs->valuestring, reason) == 0) return o;
  }
  return NULL;
}

Test(kv_updater, every_rejection_is_counted_kept_and_leaves_good_state_untouched) {
  const char *const extra[] = {"--max-message-bytes", "100", NULL};
  start_kvu(extra, NULL);
  redisContext *c = conn();
  publish_s(c, "t", "{\"good\":true}");
  wait_data(c, "t", "{\"good\":true}");
  char *s1 = hget(c, "t", "seq");

  redisReply *r = redisCommand(c, "PUBLISH %s %s", "update:{bad topic!}", "{\"x\":1}");
  freeReplyObject(r);
  publish_s(c, "t", "{\"a\":");
  publish(c, "t", "[\"\xff\xfe ok\"]", 9);
  char big[201];
  memset(big, ' ', 200);
  big[0] = '"';
  big[198] = '"';
  big[200] = '\0';
  publish_s(c, "t", big);

  wait_metric("statecast_kvu_messages_rejected_total{reason=\"topic\"}", 1);
  wait_metric("statecast_kvu_messages_rejected_total{reason=\"json\"}", 1);
  wait_metric("statecast_kvu_messages_rejected_total{reason=\"utf8\"}", 1);
  wait_metric("statecast_kvu_messages_rejected_total{reason=\"toobig\"}", 1);
  wait_metric("statecast_kvu_messages_committed_total", 1);

  char *d = hget(c, "t", "data");
  char *s2 = hget(c, "t", "seq");
  cr_assert_str_eq(d, "{\"good\":true}");
  cr_assert_str_eq(s1, s2);
  cr_assert_eq(cmd_int(c, "EXISTS state:{%s}", "bad topic!"), 0);

  cJSON *arr = NULL;
  for (int i = 0; i < 100 && (arr == NULL || cJSON_GetArraySize(arr) < 4); i++) {
    cJSON_Delete(arr);
    arr = rejected_records(c);
    if (cJSON_GetArraySize(arr) < 4) usleep(50000);
  }
  cr_assert_eq(cJSON_GetArraySize(arr), 4);
  cJSON *topic = record_with_reason(arr, "topic");
  cJSON *json = record_with_reason(arr, "json");
  cJSON *utf8 = record_with_reason(arr, "utf8");
  cJSON *toobig = record_with_reason(arr, "toobig");
  cr_assert(topic && json && utf8 && toobig);
  cr_assert_str_eq(cJSON_GetObjectItem(topic, "channel")->valuestring, "update:{bad topic!}");
  cr_assert_str_eq(cJSON_GetObjectItem(topic, "topic")->valuestring, "bad topic!");
  cr_assert_str_eq(cJSON_GetObjectItem(json, "message")->valuestring, "{\"a\":");
  cr_assert_eq(cJSON_GetObjectItem(json, "bytes")->valuedouble, 5);
  cr_assert_gt(cJSON_GetObjectItem(json, "ts")->valuedouble, 0);
  cr_assert_not_null(cJSON_GetObjectItem(json, "offset"));
  cr_assert_eq(cJSON_GetObjectItem(utf8, "offset")->valuedouble, 2);
  cr_assert_str_eq(cJSON_GetObjectItem(utf8, "message")->valuestring, "[\"\xEF\xBF\xBD\xEF\xBF\xBD ok\"]");
  cr_assert_eq(cJSON_GetObjectItem(toobig, "bytes")->valuedouble, 200);
  cr_assert_str_eq(cJSON_GetObjectItem(toobig, "topic")->valuestring, "t");
  cJSON_Delete(arr);
  free(d);
  free(s1);
  free(s2);
  redisFree(c);
}

Test(kv_updater, rejected_list_keeps_only_the_newest_thousand) {
  start_kvu(NULL, NULL);
  redisContext *c = conn();
  char msg[32];
  for (int i = 0; i < 1005; i++) {
    snprintf(msg, sizeof msg, "{bad %d", i);
    redisAppendCommand(c, "PUBLISH update:{cap} %s", msg);
  }
  for (int i = 0; i < 1005; i++) {
    redisReply *r = NULL;
    cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
    freeReplyObject(r);
  }
  wait_metric("statecast_kvu_messages_rejected_total{reason=\"json\"}", 1005);
  wait_metric("statecast_kvu_pending_commits", 0);
  cr_assert_eq(cmd_int(c, "LLEN %s", "statecast:rejected"), 1000);
  redisReply *r = redisCommand(c, "LINDEX statecast:rejected 0");
  cr_assert(r != NULL && r->type == REDIS_REPLY_STRING);
  cr_assert_not_null(strstr(r->str, "{bad 1004"), "newest first: %s", r->str);
  freeReplyObject(r);
  redisFree(c);
}

Test(kv_updater, flag_beats_environment_for_max_message_bytes) {
  char *env[] = {"STATECAST_MAX_MESSAGE_BYTES=50", NULL};
  const char *const extra[] = {"--max-message-bytes", "100", NULL};
  start_kvu(extra, env);
  redisContext *c = conn();
  char msg[81];
  memset(msg, ' ', 80);
  memcpy(msg, "{\"k\":1}", 7);
  msg[80] = '\0';
  publish_s(c, "p", msg); /* 80 bytes: over the env limit, under the flag's */
  wait_data(c, "p", "{\"k\":1}");
  stop_kvu();

  start_kvu(NULL, env); /* env alone: 80 bytes is too big now */
  publish_s(c, "p", "{\"k\":2}                                                                         ");
  wait_metric("statecast_kvu_messages_rejected_total{reason=\"toobig\"}", 1);
  char *d = hget(c, "p", "data");
  cr_assert_str_eq(d, "{\"k\":1}");
  free(d);
  redisFree(c);
}

Test(kv_updater, reads_the_redis_password_from_a_file) {
  /* Swap the fixture's Redis for one started with --requirepass. */
  sc_test_redis_stop(&g_redis, 0);
  g_redis_started = 0;
  const char *const extra[] = {"--requirepass", "s3cret-pw", NULL};
  cr_assert_eq(sc_test_redis_start(&g_redis, extra), 0);
  g_redis_started = 1;
  snprintf(g_log, sizeof g_log, "%s/kvu.log", g_redis.dir);
  redisContext *c = conn();
  redisReply *r = redisCommand(c, "AUTH %s", "s3cret-pw");
  cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
  freeReplyObject(r);

  char path[400];
  snprintf(path, sizeof path, "%s/redis-password", g_redis.dir);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs("s3cret-pw\n", f);
  fclose(f);
  char envvar[450];
  snprintf(envvar, sizeof envvar, "STATECAST_REDIS_PASSWORD_FILE=%s", path);
  char *env[] = {envvar, NULL};
  start_kvu(NULL, env);
  publish_s(c, "auth", "{\"ok\":1}");
  wait_data(c, "auth", "{\"ok\":1}");
  redisFree(c);
}

static int pred_log_has(void *arg) {
  FILE *f = fopen(g_log, "r");
  if (f == NULL) return 0;
  char line[2048];
  int found = 0;
  while (!found && fgets(line, sizeof line, f) != NULL) found = strstr(line, arg) != NULL;
  fclose(f);
  return found;
}

Test(kv_updater, is_not_ready_with_a_wrong_redis_password) {
  sc_test_redis_stop(&g_redis, 0);
  g_redis_started = 0;
  const char *const extra[] = {"--requirepass", "right", NULL};
  cr_assert_eq(sc_test_redis_start(&g_redis, extra), 0);
  g_redis_started = 1;
  snprintf(g_log, sizeof g_log, "%s/kvu.log", g_redis.dir);
  char url[64];
  sc_test_redis_url(&g_redis, url, sizeof url);
  const char *const flags[] = {"--redis-password", "wrong", NULL};
  start_kvu_url(url, flags, NULL, 0);
  cr_assert(sc_test_wait(pred_log_has, "WRONGPASS", WAIT_MS), "the refused AUTH should be logged");
  char body[256];
  cr_assert_eq(sc_test_http(g_hport, "GET", "/readyz", body, sizeof body), 503);
}

typedef struct body_has {
  const char *path;
  int status;
  const char *needle;
} body_has_t;

static int pred_body_has(void *arg) {
  body_has_t *b = arg;
  char body[4096];
  return sc_test_http(g_hport, "GET", b->path, body, sizeof body) == b->status && strstr(body, b->needle) != NULL;
}

Test(kv_updater, readyz_is_503_until_redis_is_reachable) {
  /* Give the fixture's Redis up and start one later on a fresh port. */
  sc_test_redis_stop(&g_redis, 0);
  g_redis_started = 0;
  sc_test_redis_t later;
  memset(&later, 0, sizeof later);
  snprintf(later.dir, sizeof later.dir, "/tmp/statecast-test-redis-XXXXXX");
  cr_assert_not_null(mkdtemp(later.dir));
  later.port = sc_test_free_port();
  g_redis = later;
  g_redis_started = 1; /* so teardown removes the dir */
  snprintf(g_log, sizeof g_log, "%s/kvu.log", g_redis.dir);
  char url[64];
  sc_test_redis_url(&g_redis, url, sizeof url);
  start_kvu_url(url, NULL, NULL, 0);

  body_has_t b = {"/readyz", 503, "redis"};
  cr_assert(sc_test_wait(pred_body_has, &b, WAIT_MS), "/readyz should say 503 while Redis is unreachable");
  body_has_t h = {"/healthz", 200, "ok"};
  cr_assert(sc_test_wait(pred_body_has, &h, WAIT_MS), "/healthz is 200 regardless of Redis");
  cr_assert_eq(metric("statecast_kvu_redis_up{conn=\"sub\"}"), 0);

  cr_assert_eq(sc_test_redis_restart(&g_redis, NULL), 0);
  if (!sc_test_wait_http(g_hport, "/readyz", 200, WAIT_MS)) {
    sc_test_dump(g_log);
    cr_assert_fail("/readyz never became 200 after Redis came up");
  }
  redisContext *c = conn();
  publish_s(c, "late", "[]");
  wait_data(c, "late", "[]");
  redisFree(c);
}

Test(kv_updater, serves_healthz_metrics_and_json_404) {
  start_kvu(NULL, NULL);
  char body[8192];
  cr_assert_eq(sc_test_http(g_hport, "GET", "/healthz", body, sizeof body), 200);
  cr_assert_str_eq(body, "ok");
  cr_assert_eq(sc_test_http(g_hport, "GET", "/readyz", body, sizeof body), 200);
  cr_assert_str_eq(body, "ready");
  cr_assert_eq(sc_test_http(g_hport, "GET", "/nope", body, sizeof body), 404);
  cr_assert_str_eq(body, "{\"error\":\"not found\"}");
  cr_assert_eq(sc_test_http(g_hport, "GET", "/metrics", body, sizeof body), 200);
  static const char *const want[] = {
      "# HELP statecast_kvu_messages_committed_total ",
      "# TYPE statecast_kvu_messages_committed_total counter",
      "statecast_kvu_messages_unchanged_total 0",
      "statecast_kvu_messages_rejected_total{reason=\"json\"} 0",
      "statecast_kvu_messages_rejected_total{reason=\"utf8\"} 0",
      "statecast_kvu_messages_rejected_total{reason=\"topic\"} 0",
      "statecast_kvu_messages_rejected_total{reason=\"toobig\"} 0",
      "statecast_kvu_messages_dropped_total 0",
      "statecast_kvu_redis_reconnects_total 0",
      "# TYPE statecast_kvu_pending_commits gauge",
      "statecast_kvu_pending_commits 0",
      "statecast_kvu_last_seq 0",
      "statecast_kvu_redis_up{conn=\"sub\"} 1",
      "statecast_kvu_redis_up{conn=\"cmd\"} 1",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    cr_expect_not_null(strstr(body, want[i]), "missing in /metrics: %s", want[i]);
}

Test(kv_updater, check_config_prints_the_effective_config_without_connecting) {
  char *bin = sc_test_bin("statecast-kv-updater");
  char out[8192], err[4096];
  char *env[] = {"STATECAST_MAX_MESSAGE_BYTES=5000", NULL};
  /* Port 1 on loopback: nothing listens, so connecting would fail or hang. */
  char *argv[] = {bin, "--check-config", "--redis-url", "redis://127.0.0.1:1", "--max-message-bytes", "1234", NULL};
  int rc = sc_test_run(bin, argv, env, NULL, out, sizeof out, err, sizeof err);
  cr_assert_eq(rc, 0, "stderr: %s", err);
  cr_assert_not_null(strstr(out, "max_message_bytes: 1234"), "%s", out);
  cr_assert_not_null(strstr(out, "redis_url: "), "%s", out);
  cr_assert_not_null(strstr(out, "health_listen: "), "%s", out);

  char *argv2[] = {bin, "--check-config", NULL};
  rc = sc_test_run(bin, argv2, env, NULL, out, sizeof out, err, sizeof err);
  cr_assert_eq(rc, 0, "stderr: %s", err);
  cr_assert_not_null(strstr(out, "max_message_bytes: 5000"), "env should apply: %s", out);

  char *argv3[] = {bin, "--help", NULL};
  rc = sc_test_run(bin, argv3, NULL, NULL, out, sizeof out, err, sizeof err);
  cr_assert_eq(rc, 0);
  cr_assert_not_null(strstr(out, "--health-listen"), "%s", out);
  free(bin);
}

Test(kv_updater, a_bad_config_value_exits_1_naming_the_key) {
  char *bin = sc_test_bin("statecast-kv-updater");
  char out[4096], err[4096];
  char *argv[] = {bin, "--max-message-bytes", "lots", NULL};
  int rc = sc_test_run(bin, argv, NULL, NULL, out, sizeof out, err, sizeof err);
  cr_assert_eq(rc, 1);
  cr_assert_not_null(strstr(err, "statecast-kv-updater: "), "%s", err);
  cr_assert_not_null(strstr(err, "max-message-bytes") != NULL ? err : strstr(err, "max_message_bytes"), "%s", err);

  char *env[] = {"STATECAST_COMMIT_TIMEOUT_MS=soon", NULL};
  char *argv2[] = {bin, NULL};
  rc = sc_test_run(bin, argv2, env, NULL, out, sizeof out, err, sizeof err);
  cr_assert_eq(rc, 1);
  cr_assert_not_null(strstr(err, "COMMIT_TIMEOUT_MS") != NULL ? err : strstr(err, "commit_timeout_ms"), "%s", err);

  char *argv3[] = {bin, "--health-listen", "somewhere", NULL};
  rc = sc_test_run(bin, argv3, NULL, NULL, out, sizeof out, err, sizeof err);
  cr_assert_eq(rc, 1);
  cr_assert_not_null(strstr(err, "health_listen"), "%s", err);

  char *argv4[] = {bin, "--redis-url", "http://x", NULL};
  rc = sc_test_run(bin, argv4, NULL, NULL, out, sizeof out, err, sizeof err);
  cr_assert_eq(rc, 1);
  cr_assert_not_null(strstr(err, "redis_url"), "%s", err);
  free(bin);
}
