/*
 * Shared by the apiserver integration suites: start/stop a real
 * redis-server, statecast-kv-updater and statecast-apiserver, and read SSE
 * events with expectations. Static functions: include once per suite,
 * after <criterion/criterion.h>, "sse_client.h" and "support.h".
 */
#ifndef SC_TEST_APISERVER_FIXTURE_H
#define SC_TEST_APISERVER_FIXTURE_H

#define WAIT_MS 15000

static sc_test_redis_t g_redis;
static int g_redis_started;
static pid_t g_kvu = -1, g_api = -1;
static int g_kport, g_aport;
static char g_log[300], g_alog[300];

static void start_kvu(void) {
  g_kvu = sc_test_start_kvu(&g_redis, NULL, g_log, &g_kport, WAIT_MS);
  cr_assert_gt(g_kvu, 0, "kv-updater not ready");
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
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) sc_test_dump(g_alog);
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

#endif
