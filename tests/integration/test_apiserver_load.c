/*
 * apiserver start-up under load: a large committed state is loaded while
 * commits keep arriving. The notifications that arrive during the load must
 * be applied by seq: nothing missed, nothing applied twice, nothing
 * regressed. Checked by comparing /state with Redis once everything settled.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sse_client.h"
#include "support.h"

#define WAIT_MS 30000
#define NTOPICS 30000

static sc_test_redis_t g_redis;
static int g_redis_started;
static pid_t g_kvu = -1, g_api = -1;
static int g_kport, g_aport;
static char g_log[300], g_alog[300];

static void setup(void) {
  cr_assert_eq(sc_test_redis_start(&g_redis, NULL), 0, "redis-server did not start");
  g_redis_started = 1;
  snprintf(g_log, sizeof g_log, "%s/kvu.log", g_redis.dir);
  snprintf(g_alog, sizeof g_alog, "%s/api.log", g_redis.dir);
  g_kvu = sc_test_start_kvu(&g_redis, NULL, g_log, &g_kport, WAIT_MS);
  cr_assert_gt(g_kvu, 0, "kv-updater not ready");
}

static void teardown(void) {
  if (g_api > 0) {
    int st = sc_test_stop(g_api, SIGTERM, 15000);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "apiserver should exit 0 on SIGTERM (status %d)", st);
  }
  g_api = -1;
  if (g_kvu > 0) sc_test_stop(g_kvu, SIGTERM, 10000);
  g_kvu = -1;
  if (g_redis_started) sc_test_redis_stop(&g_redis, 0);
  g_redis_started = 0;
}

/* Commit n topics through kv-updater's own path (PUBLISH, pipelined). */
static void publish_many(redisContext *c, int from, int n, const char *tag) {
  for (int i = from; i < from + n; i++) {
    char data[128];
    snprintf(data, sizeof data, "{\"i\":%d,\"tag\":\"%s\"}", i, tag);
    redisAppendCommand(c, "PUBLISH update:{t%d} %s", i, data);
  }
  for (int i = 0; i < n; i++) {
    redisReply *r = NULL;
    cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
    freeReplyObject(r);
  }
}

static long long redis_seq(redisContext *c) {
  redisReply *r = redisCommand(c, "GET statecast:seq");
  long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
  freeReplyObject(r);
  return v;
}

static long long g_target;
static int seq_at_least(void *arg) {
  redisContext *c = arg;
  return redis_seq(c) >= g_target;
}

static int api_seq_at_least(void *arg) {
  (void)arg;
  sc_sse_client_t *c = sc_sse_connect(g_aport, "/metrics", NULL, 0, 5000);
  if (c == NULL) return 0;
  const char *b = sc_sse_read_body(c, 5000);
  const char *p = b ? strstr(b, "\nstatecast_api_last_seq ") : NULL;
  long long v = p ? atoll(p + 24) : 0;
  sc_sse_close(c);
  return v >= g_target;
}

TestSuite(apiserver_load, .init = setup, .fini = teardown, .timeout = 300);

Test(apiserver_load, commits_during_the_load_are_applied_exactly_once_in_order) {
  redisContext *c = sc_test_redis_connect(&g_redis);
  cr_assert_not_null(c);
  publish_many(c, 0, NTOPICS, "first");
  g_target = NTOPICS;
  cr_assert(sc_test_wait(seq_at_least, c, 120000), "initial commits");

  /* Start the apiserver and keep committing while it loads. */
  char url[128], alisten[64];
  sc_test_redis_url(&g_redis, url, sizeof url);
  g_aport = sc_test_free_port();
  snprintf(alisten, sizeof alisten, "127.0.0.1:%d", g_aport);
  char *abin = sc_test_bin("statecast-apiserver");
  char *aargv[] = {abin, "--redis-url", url, "--listen", alisten, "--drain-seconds", "1", NULL};
  g_api = sc_test_spawn(abin, aargv, NULL, g_alog);
  free(abin);
  for (int round = 0; round < 20; round++) {
    publish_many(c, round * 500, 500, round % 2 ? "odd" : "even");
    redisReply *r = redisCommand(c, "PUBLISH update:{t%d} null", NTOPICS - 1 - round);
    freeReplyObject(r);
  }
  cr_assert(sc_test_wait_http(g_aport, "/readyz", 200, 120000), "apiserver ready");
  g_target = redis_seq(c);
  cr_assert(sc_test_wait(seq_at_least, c, 120000));
  /* Let kv-updater finish: the seq stops moving. */
  long long last = -1, now;
  while ((now = redis_seq(c)) != last) {
    last = now;
    usleep(300 * 1000);
  }
  g_target = now;
  cr_assert(sc_test_wait(api_seq_at_least, NULL, 120000), "apiserver caught up to seq %lld", now);

  /* Compare every topic's seq: Redis index vs the apiserver's /state. */
  redisReply *idx = redisCommand(c, "ZRANGE statecast:index 0 -1 WITHSCORES");
  cr_assert(idx != NULL && idx->type == REDIS_REPLY_ARRAY);
  sc_sse_client_t *sc = sc_sse_connect(g_aport, "/state", NULL, 0, WAIT_MS);
  cr_assert_eq(sc_sse_status(sc), 200);
  const char *body = sc_sse_read_body(sc, 60000);
  cr_assert_not_null(body);
  cJSON *j = cJSON_Parse(body);
  cr_assert_not_null(j, "state is JSON");
  cJSON *topics = cJSON_GetObjectItem(j, "topics");
  cr_assert_eq((size_t)cJSON_GetArraySize(topics), idx->elements / 2, "same number of live topics");
  cJSON *e;
  size_t i = 0;
  double prev = 0;
  cJSON_ArrayForEach(e, topics) {
    const char *t = cJSON_GetObjectItem(e, "topic")->valuestring;
    double seq = cJSON_GetObjectItem(e, "seq")->valuedouble;
    cr_assert_gt(seq, prev, "ascending seq");
    prev = seq;
    /* The index is in seq order too, so the two lists line up. */
    cr_assert_str_eq(t, idx->element[2 * i]->str);
    cr_assert_eq((long long)seq, atoll(idx->element[2 * i + 1]->str), "seq of %s", t);
    i++;
  }
  cJSON_Delete(j);
  freeReplyObject(idx);
  sc_sse_close(sc);
  redisFree(c);
}
