/*
 * apiserver for small devices: fields= projection on /events and /state,
 * per-stream heartbeat=, and retry: jitter, against a real redis-server,
 * kv-updater and apiserver. Every wait is a condition with a generous
 * timeout.
 */
#include <criterion/criterion.h>

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sse_client.h"
#include "support.h"

#define WAIT_MS 15000

static sc_test_redis_t g_redis;
static int g_redis_started;
static pid_t g_kvu = -1, g_api = -1;
static int g_kport, g_aport;
static char g_log[300], g_alog[300];

static void dump(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return;
  char line[2048];
  fprintf(stderr, "---- %s ----\n", path);
  while (fgets(line, sizeof line, f) != NULL) fputs(line, stderr);
  fclose(f);
}

static void start_kvu(void) {
  char url[128], listen[64];
  sc_test_redis_url(&g_redis, url, sizeof url);
  g_kport = sc_test_free_port();
  snprintf(listen, sizeof listen, "127.0.0.1:%d", g_kport);
  char *bin = sc_test_bin("statecast-kv-updater");
  char *argv[] = {bin, "--redis-url", url, "--health-listen", listen, NULL};
  g_kvu = sc_test_spawn(bin, argv, NULL, g_log);
  free(bin);
  cr_assert_gt(g_kvu, 0);
  cr_assert(sc_test_wait_http(g_kport, "/readyz", 200, WAIT_MS), "kv-updater not ready");
}

/* Start the apiserver with extra flags (NULL-terminated, may be NULL); wait_ready 1 waits for /readyz 200. */
static void start_api(const char *const *extra, int wait_ready) {
  char url[128], listen[64];
  sc_test_redis_url(&g_redis, url, sizeof url);
  g_aport = sc_test_free_port();
  snprintf(listen, sizeof listen, "127.0.0.1:%d", g_aport);
  char *bin = sc_test_bin("statecast-apiserver");
  char *argv[32] = {bin, "--redis-url", url, "--listen", listen, "--drain-seconds", "1", NULL};
  int n = 7;
  for (int i = 0; extra != NULL && extra[i] != NULL && n < 30; i++) argv[n++] = (char *)extra[i];
  argv[n] = NULL;
  g_api = sc_test_spawn(bin, argv, NULL, g_alog);
  free(bin);
  cr_assert_gt(g_api, 0);
  cr_assert(sc_test_wait_http(g_aport, "/healthz", 200, WAIT_MS), "apiserver not serving");
  if (wait_ready) cr_assert(sc_test_wait_http(g_aport, "/readyz", 200, WAIT_MS), "apiserver not ready");
}

static int stop_api(void) {
  if (g_api <= 0) return -1;
  int st = sc_test_stop(g_api, SIGTERM, 15000);
  g_api = -1;
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) dump(g_alog);
  return st;
}

static void setup(void) {
  cr_assert_eq(sc_test_redis_start(&g_redis, NULL), 0, "redis-server did not start");
  g_redis_started = 1;
  snprintf(g_log, sizeof g_log, "%s/kvu.log", g_redis.dir);
  snprintf(g_alog, sizeof g_alog, "%s/api.log", g_redis.dir);
  start_kvu();
}

static void teardown(void) {
  if (g_api > 0) {
    int st = stop_api();
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "apiserver should exit 0 on SIGTERM (status %d)", st);
  }
  if (g_kvu > 0) sc_test_stop(g_kvu, SIGTERM, 10000);
  g_kvu = -1;
  if (g_redis_started) sc_test_redis_stop(&g_redis, 0);
  g_redis_started = 0;
}

static long long current_seq(void) {
  redisContext *c = sc_test_redis_connect(&g_redis);
  redisReply *r = redisCommand(c, "GET statecast:seq");
  long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
  freeReplyObject(r);
  redisFree(c);
  return v;
}

static int g_want_seq;
static int seq_reached(void *arg) {
  (void)arg;
  return current_seq() >= g_want_seq;
}

/* PUBLISH raw and wait until kv-updater committed it (statecast:seq moved). */
static void publish(const char *topic, const char *json) {
  long long before = current_seq();
  redisContext *c = sc_test_redis_connect(&g_redis);
  redisReply *r = redisCommand(c, "PUBLISH update:{%s} %s", topic, json);
  cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= 1, "nobody received the publish");
  freeReplyObject(r);
  redisFree(c);
  g_want_seq = (int)before + 1;
  cr_assert(sc_test_wait(seq_reached, NULL, WAIT_MS), "not committed: %s", topic);
}

static sc_sse_client_t *open_stream(const char *path, const char *last_id) {
  sc_sse_client_t *c = sc_sse_connect(g_aport, path, last_id, 0, WAIT_MS);
  cr_assert_not_null(c, "cannot connect to %s", path);
  cr_assert_eq(sc_sse_status(c), 200, "GET %s -> %d", path, sc_sse_status(c));
  return c;
}

/* Next event (comments skipped); asserts its name and, for updates and
 * deletes, that data names the topic. Returns the event (dispose it). */
static sc_sse_event_t expect_event(sc_sse_client_t *c, const char *name, const char *topic) {
  sc_sse_event_t ev;
  int r = sc_sse_next_event(c, &ev, WAIT_MS);
  cr_assert_eq(r, 1, "no %s event for %s (r=%d)", name, topic ? topic : "-", r);
  cr_assert_str_eq(ev.event, name, "wanted %s %s, got %s %s", name, topic ? topic : "", ev.event, ev.data);
  if (topic != NULL) {
    char want[256];
    snprintf(want, sizeof want, "{\"topic\":\"%s\",", topic);
    cr_assert(strncmp(ev.data, want, strlen(want)) == 0, "wanted topic %s, got %s", topic, ev.data);
  }
  return ev;
}

static void expect_update(sc_sse_client_t *c, const char *topic) {
  sc_sse_event_t ev = expect_event(c, "update", topic);
  cr_assert_neq(ev.id[0], '\0', "update without id");
  cr_assert(strstr(ev.data, "\"data\":") != NULL);
  sc_sse_event_dispose(&ev);
}

/* Expect a sync; return its id (static) and check full. */
static const char *expect_sync(sc_sse_client_t *c, int full) {
  static char id[128];
  sc_sse_event_t ev = expect_event(c, "sync", NULL);
  cr_assert(strstr(ev.data, full ? "\"full\":true" : "\"full\":false") != NULL, "sync %s", ev.data);
  snprintf(id, sizeof id, "%s", ev.id);
  sc_sse_event_dispose(&ev);
  return id;
}

TestSuite(apiserver_devices, .init = setup, .fini = teardown, .timeout = 120);

static const char *SENSOR = "{\"celsius\":21.50,\"hum\":40,\"wind\":{\"speed\":3.0,\"dir\":\"N\"}}";

Test(apiserver_devices, state_projects_the_selected_fields_with_exact_bytes) {
  publish("demo/sensors/a", SENSOR);
  publish("demo/sensors/b", "[1,2]");
  publish("other", "{\"celsius\":1}");
  start_api(NULL, 1);
  char body[4096];
  cr_assert_eq(sc_test_http(g_aport, "GET", "/state?topic=demo/sensors/*&fields=celsius,wind.speed", body, sizeof body),
               200);
  cr_assert(strstr(body, "{\"topic\":\"demo/sensors/a\",\"seq\":1,") != NULL, "%s", body);
  cr_assert(strstr(body, "\"data\":{\"celsius\":21.50,\"wind\":{\"speed\":3.0}}}") != NULL, "%s", body);
  cr_assert(strstr(body, "\"data\":{}}") != NULL, "non-object data projects to {}: %s", body);
  cr_assert(strstr(body, "other") == NULL);
  /* repeated fields= is the same as a comma list */
  char body2[4096];
  cr_assert_eq(sc_test_http(g_aport, "GET", "/state?topic=demo/sensors/*&fields=wind.speed&fields=celsius", body2,
                            sizeof body2), 200);
  cr_assert_str_eq(body, body2);
}

Test(apiserver_devices, fields_stream_gets_projections_and_skips_unchanged_ones) {
  publish("demo/sensors/a", SENSOR);
  start_api(NULL, 1);
  sc_sse_client_t *f = open_stream("/events?topic=demo/sensors/*&fields=celsius,wind.speed", NULL);
  sc_sse_client_t *p = open_stream("/events?topic=demo/sensors/*", NULL);
  sc_sse_event_t ev = expect_event(f, "update", "demo/sensors/a");
  cr_assert(strstr(ev.data, ",\"data\":{\"celsius\":21.50,\"wind\":{\"speed\":3.0}}}") != NULL, "%s", ev.data);
  cr_assert(strstr(ev.id, "-1") != NULL, "id %s", ev.id);
  sc_sse_event_dispose(&ev);
  expect_sync(f, 1);
  expect_update(p, "demo/sensors/a");
  expect_sync(p, 1);

  /* Only unselected fields change: the plain stream gets it, the fields= one does not. */
  publish("demo/sensors/a", "{\"celsius\":21.50,\"hum\":41,\"wind\":{\"speed\":3.0,\"dir\":\"S\"}}");
  ev = expect_event(p, "update", "demo/sensors/a");
  cr_assert(strstr(ev.data, "\"hum\":41") != NULL, "%s", ev.data);
  sc_sse_event_dispose(&ev);
  /* A selected field changes: the next event the fields= stream gets is this one (seq 3). */
  publish("demo/sensors/a", "{\"celsius\":22.00,\"hum\":41,\"wind\":{\"speed\":3.0,\"dir\":\"S\"}}");
  ev = expect_event(f, "update", "demo/sensors/a");
  cr_assert(strstr(ev.data, "\"seq\":3,") != NULL, "the unchanged projection was sent: %s", ev.data);
  cr_assert(strstr(ev.data, ",\"data\":{\"celsius\":22.00,\"wind\":{\"speed\":3.0}}}") != NULL, "%s", ev.data);
  sc_sse_event_dispose(&ev);
  expect_update(p, "demo/sensors/a");

  /* Delete, then the same projection again: both reach the fields= stream. */
  publish("demo/sensors/a", "null");
  ev = expect_event(f, "delete", "demo/sensors/a");
  sc_sse_event_dispose(&ev);
  publish("demo/sensors/a", "{\"celsius\":22.00}");
  ev = expect_event(f, "update", "demo/sensors/a");
  cr_assert(strstr(ev.data, ",\"data\":{\"celsius\":22.00}}") != NULL, "%s", ev.data);
  sc_sse_event_dispose(&ev);
  sc_sse_close(f);
  sc_sse_close(p);
}

Test(apiserver_devices, streams_with_the_same_fields_get_the_same_bytes) {
  publish("t", "{\"a\":1,\"b\":2}");
  start_api(NULL, 1);
  sc_sse_client_t *x = open_stream("/events?fields=a", NULL);
  sc_sse_client_t *y = open_stream("/events?fields=a", NULL);
  expect_update(x, "t");
  expect_update(y, "t");
  expect_sync(x, 1);
  expect_sync(y, 1);
  publish("t", "{\"a\":5,\"b\":2}");
  sc_sse_event_t ex = expect_event(x, "update", "t"), ey = expect_event(y, "update", "t");
  cr_assert_str_eq(ex.data, ey.data);
  cr_assert_str_eq(ex.id, ey.id);
  cr_assert(strstr(ex.data, "\"data\":{\"a\":5}}") != NULL, "%s", ex.data);
  sc_sse_event_dispose(&ex);
  sc_sse_event_dispose(&ey);
  sc_sse_close(x);
  sc_sse_close(y);
}

Test(apiserver_devices, per_stream_heartbeat_overrides_the_default) {
  start_api(NULL, 1); /* default heartbeat 15 s */
  sc_sse_client_t *c = open_stream("/events?heartbeat=1", NULL);
  expect_sync(c, 1);
  sc_sse_event_t ev;
  int r;
  /* Far below the 15 s default; generous for a noisy machine. */
  while ((r = sc_sse_next(c, &ev, 8000)) == 1 && !ev.is_comment) sc_sse_event_dispose(&ev);
  cr_assert_eq(r, 1, "no heartbeat within 8 s on a heartbeat=1 stream");
  cr_assert_str_eq(ev.data, "hb");
  sc_sse_event_dispose(&ev);
  sc_sse_close(c);
}

static void expect_400(const char *path, const char *needle) {
  char body[512];
  cr_assert_eq(sc_test_http(g_aport, "GET", path, body, sizeof body), 400, "GET %s", path);
  cr_assert(strstr(body, needle) != NULL, "GET %s reason: %s", path, body);
}

Test(apiserver_devices, rejects_bad_fields_and_heartbeats_with_400) {
  const char *extra[] = {"--heartbeat-max-seconds", "60", NULL};
  start_api(extra, 1);
  expect_400("/events?fields=", "empty field path");
  expect_400("/events?fields=a..b", "segment");
  expect_400("/events?fields=a%20b", "characters");
  expect_400("/events?fields=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", "16");
  expect_400("/state?fields=a.", "segment");
  expect_400("/events?heartbeat=0", "range");
  expect_400("/events?heartbeat=61", "range");
  expect_400("/events?heartbeat=abc", "whole seconds");
  expect_400("/events?heartbeat=1.5", "whole seconds");
  sc_sse_client_t *c = open_stream("/events?heartbeat=60&fields=a", NULL);
  expect_sync(c, 1);
  sc_sse_close(c);
}

Test(apiserver_devices, retry_values_are_jittered_per_stream) {
  const char *extra[] = {"--retry-ms", "2000", NULL};
  start_api(extra, 1);
  int vals[10], distinct = 0;
  for (int i = 0; i < 10; i++) {
    sc_sse_client_t *c = open_stream("/events", NULL);
    expect_sync(c, 1);
    vals[i] = sc_sse_retry_ms(c);
    cr_assert(vals[i] >= 1000 && vals[i] <= 3000, "retry %d outside 2000 +- 50%%", vals[i]);
    sc_sse_close(c);
  }
  for (int i = 1; i < 10; i++) distinct += vals[i] != vals[0];
  cr_assert_gt(distinct, 0, "all ten streams got retry %d", vals[0]);
}

Test(apiserver_devices, jitter_zero_announces_retry_ms_exactly) {
  const char *extra[] = {"--retry-ms", "2000", "--retry-jitter-percent", "0", NULL};
  start_api(extra, 1);
  sc_sse_client_t *c = open_stream("/events", NULL);
  expect_sync(c, 1);
  cr_assert_eq(sc_sse_retry_ms(c), 2000);
  sc_sse_close(c);
}
