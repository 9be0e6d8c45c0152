/*
 * apiserver under change: Redis losing its data (new epoch), Redis
 * restarting, HTTP/1.0 clients, and the static web display files. Real
 * redis-server, kv-updater and apiserver; waits are conditions.
 */
#include <criterion/criterion.h>

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sse_client.h"
#include "support.h"

#define WAIT_MS 20000

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
  char url[128], alisten[64];
  sc_test_redis_url(&g_redis, url, sizeof url);
  g_kvu = sc_test_start_kvu(&g_redis, NULL, g_log, &g_kport, WAIT_MS);
  cr_assert_gt(g_kvu, 0, "kv-updater not ready");
  g_aport = sc_test_free_port();
  snprintf(alisten, sizeof alisten, "127.0.0.1:%d", g_aport);
  char *abin = sc_test_bin("statecast-apiserver");
  char *aargv[] = {abin, "--redis-url", url, "--listen", alisten, "--drain-seconds", "1", NULL};
  g_api = sc_test_spawn(abin, aargv, NULL, g_alog);
  free(abin);
  cr_assert(sc_test_wait_http(g_aport, "/readyz", 200, WAIT_MS), "apiserver not ready");
}

static void teardown(void) {
  if (g_api > 0) {
    int st = sc_test_stop(g_api, SIGTERM, 15000);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) sc_test_dump(g_alog);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "apiserver should exit 0 on SIGTERM (status %d)", st);
  }
  g_api = -1;
  if (g_kvu > 0) sc_test_stop(g_kvu, SIGTERM, 10000);
  g_kvu = -1;
  if (g_redis_started) sc_test_redis_stop(&g_redis, 0);
  g_redis_started = 0;
}

static redisReply *cmd(const char *fmt, const char *a, const char *b) {
  redisContext *c = sc_test_redis_connect(&g_redis);
  if (c == NULL) return NULL;
  redisReply *r = redisCommand(c, fmt, a, b);
  redisFree(c);
  return r;
}

static const char *g_topic;
static int topic_committed(void *arg) {
  const char *want = arg;
  redisReply *r = cmd("HGET state:{%s} %s", g_topic, "data");
  int ok = r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, want) == 0;
  freeReplyObject(r);
  return ok;
}

/* PUBLISH raw (retrying while kv-updater reconnects) until committed. */
static void publish(const char *topic, const char *json) {
  g_topic = topic;
  for (int i = 0; i < 100; i++) {
    redisReply *r = cmd("PUBLISH update:{%s} %s", topic, json);
    int got = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= 1;
    freeReplyObject(r);
    if (got && sc_test_wait(topic_committed, (void *)json, 2000)) return;
    usleep(200 * 1000);
  }
  cr_assert_fail("not committed: %s", topic);
}

static sc_sse_client_t *open_stream(const char *path, const char *last_id, int http10) {
  sc_sse_client_t *c = sc_sse_connect(g_aport, path, last_id, http10, WAIT_MS);
  cr_assert_not_null(c);
  cr_assert_eq(sc_sse_status(c), 200);
  return c;
}

/* Read events until one named name (for topic, if not NULL); returns its id (static). */
static const char *wait_for(sc_sse_client_t *c, const char *name, const char *topic) {
  static char id[128];
  sc_sse_event_t ev;
  for (;;) {
    int r = sc_sse_next_event(c, &ev, WAIT_MS);
    cr_assert_eq(r, 1, "stream ended before %s %s", name, topic ? topic : "");
    int hit = strcmp(ev.event, name) == 0 && (topic == NULL || strstr(ev.data, topic) != NULL);
    snprintf(id, sizeof id, "%s", ev.id);
    sc_sse_event_dispose(&ev);
    if (hit) return id;
  }
}

static void expect_end(sc_sse_client_t *c) {
  sc_sse_event_t ev;
  int r;
  while ((r = sc_sse_next(c, &ev, WAIT_MS)) == 1) sc_sse_event_dispose(&ev);
  cr_assert_eq(r, -1, "stream should end");
}

TestSuite(apiserver_resilience, .init = setup, .fini = teardown, .timeout = 180);

Test(apiserver_resilience, a_new_epoch_ends_streams_and_old_ids_get_full_state) {
  publish("a", "1");
  sc_sse_client_t *c = open_stream("/events", NULL, 0);
  wait_for(c, "update", "\"a\"");
  char id[128];
  snprintf(id, sizeof id, "%s", wait_for(c, "sync", NULL));
  redisReply *r = cmd("FLUSHALL", NULL, NULL);
  freeReplyObject(r);
  publish("z", "2");
  expect_end(c);
  sc_sse_close(c);
  cr_assert(sc_test_wait_http(g_aport, "/readyz", 200, WAIT_MS));
  c = open_stream("/events", id, 0);
  sc_sse_event_t ev;
  cr_assert_eq(sc_sse_next_event(c, &ev, WAIT_MS), 1);
  cr_assert_str_eq(ev.event, "update");
  cr_assert(strstr(ev.data, "\"topic\":\"z\"") != NULL, "only z survives: %s", ev.data);
  cr_assert(strncmp(ev.id, id, 16) != 0, "new epoch in ids");
  sc_sse_event_dispose(&ev);
  cr_assert_eq(sc_sse_next_event(c, &ev, WAIT_MS), 1);
  cr_assert_str_eq(ev.event, "sync");
  cr_assert(strstr(ev.data, "\"full\":true") != NULL);
  sc_sse_event_dispose(&ev);
  sc_sse_close(c);
}

Test(apiserver_resilience, survives_a_redis_restart_and_resumes) {
  publish("a", "1");
  sc_sse_client_t *c = open_stream("/events", NULL, 0);
  wait_for(c, "sync", NULL);
  sc_test_redis_stop(&g_redis, 1);
  cr_assert(sc_test_wait_http(g_aport, "/readyz", 503, WAIT_MS), "not ready while Redis is down");
  cr_assert_eq(sc_test_redis_restart(&g_redis, NULL), 0);
  cr_assert(sc_test_wait_http(g_aport, "/readyz", 200, WAIT_MS), "ready again");
  expect_end(c); /* Redis came back empty (no persistence): a new epoch ends streams */
  sc_sse_close(c);
  publish("b", "2");
  c = open_stream("/events", NULL, 0);
  wait_for(c, "update", "\"b\"");
  wait_for(c, "sync", NULL);
  publish("b", "3");
  wait_for(c, "update", "\"b\"");
  sc_sse_close(c);
}

Test(apiserver_resilience, streams_to_http10_clients) {
  publish("old", "{\"v\":1}");
  sc_sse_client_t *c = open_stream("/events", NULL, 1);
  wait_for(c, "update", "\"old\"");
  wait_for(c, "sync", NULL);
  publish("old", "{\"v\":2}");
  wait_for(c, "update", "{\"v\":2}");
  sc_sse_close(c);
}

Test(apiserver_resilience, serves_the_web_display_without_path_traversal) {
  sc_sse_client_t *c = sc_sse_connect(g_aport, "/", NULL, 0, WAIT_MS);
  cr_assert_not_null(c);
  cr_assert_eq(sc_sse_status(c), 200);
  cr_assert(strstr(sc_sse_header(c, "content-type"), "text/html") != NULL);
  const char *body = sc_sse_read_body(c, WAIT_MS);
  cr_assert(body != NULL && strstr(body, "<html") != NULL);
  sc_sse_close(c);
  c = sc_sse_connect(g_aport, "/../../../../etc/passwd", NULL, 0, WAIT_MS);
  cr_assert_not_null(c);
  body = sc_sse_read_body(c, WAIT_MS);
  cr_assert(body == NULL || strstr(body, "root:") == NULL, "path traversal");
  sc_sse_close(c);
  c = sc_sse_connect(g_aport, "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", NULL, 0, WAIT_MS);
  cr_assert_not_null(c);
  body = sc_sse_read_body(c, WAIT_MS);
  cr_assert(body == NULL || strstr(body, "root:") == NULL, "encoded path traversal");
  sc_sse_close(c);
  char buf[256];
  cr_assert_eq(sc_test_http(g_aport, "GET", "/missing.html", buf, sizeof buf), 404);
  cr_assert_eq(sc_test_http(g_aport, "GET", "/healthz", buf, sizeof buf), 200, "API routes win over files");
}

static int metric_value(const char *name, long long *out) {
  static char body[65536];
  if (sc_test_http(g_aport, "GET", "/metrics", body, sizeof body) != 200) return 0;
  char pat[160];
  snprintf(pat, sizeof pat, "\n%s ", name);
  const char *p = strstr(body, pat);
  if (p == NULL) return 0;
  *out = atoll(p + strlen(pat));
  return 1;
}

Test(apiserver_resilience, the_default_stream_limit_stays_below_the_open_file_limit) {
  /* Restart the apiserver under a small open-file limit (inherited). */
  int st = sc_test_stop(g_api, SIGTERM, 15000);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  g_api = -1;
  struct rlimit rl;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  rlim_t lim = 256;
  cr_assert(rl.rlim_max >= lim);
  rl.rlim_cur = lim;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  char url[128], alisten[64];
  sc_test_redis_url(&g_redis, url, sizeof url);
  g_aport = sc_test_free_port();
  snprintf(alisten, sizeof alisten, "127.0.0.1:%d", g_aport);
  char *abin = sc_test_bin("statecast-apiserver");
  char *aargv[] = {abin, "--redis-url", url, "--listen", alisten, "--drain-seconds", "1", NULL};
  g_api = sc_test_spawn(abin, aargv, NULL, g_alog);
  free(abin);
  cr_assert(sc_test_wait_http(g_aport, "/readyz", 200, WAIT_MS), "apiserver not ready");
  long long max = 0;
  cr_assert(metric_value("statecast_api_streams_max", &max));
  cr_assert(max > 0 && max < (long long)lim - 16, "max_streams %lld below the fd limit %llu", max,
            (unsigned long long)lim);
  /* Fill it: every stream is answered, the next one gets 503 + Retry-After, never a dropped connection. */
  sc_sse_client_t **cs = calloc((size_t)max, sizeof *cs);
  cr_assert_not_null(cs);
  for (long long i = 0; i < max; i++) cs[i] = open_stream("/events", NULL, 0);
  sc_sse_client_t *over = sc_sse_connect(g_aport, "/events", NULL, 0, WAIT_MS);
  cr_assert_not_null(over, "connection accepted past the limit");
  cr_assert_eq(sc_sse_status(over), 503);
  cr_assert_not_null(sc_sse_header(over, "retry-after"));
  sc_sse_close(over);
  char body[256];
  cr_assert_eq(sc_test_http(g_aport, "GET", "/healthz", body, sizeof body), 200, "still serving");
  for (long long i = 0; i < max; i++) sc_sse_close(cs[i]);
  free(cs);
}
