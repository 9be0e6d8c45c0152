/*
 * statecast-matrix against a real redis-server, kv-updater and apiserver:
 * the initial state, live updates and deletes, an apiserver restart with a
 * resume that re-sends only what was missed, and the binary's --once
 * --plain output with the demo layout. The client runs in process (the
 * matrix_core app on a test loop) so its counters can be checked; one test
 * runs the real binary.
 */
#include "../../matrix-client/app.h"
#include "../../matrix-client/sse_client.h"
#include "err.h"
#include "support.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static sc_test_redis_t g_redis;
static char g_redis_url[64];
static int g_api_port, g_health_port;
static pid_t g_kvu = -1, g_api = -1;
static char g_log[300];

static pid_t start_apiserver(void) {
  char *bin = sc_test_bin("statecast-apiserver");
  char listen[64];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", g_api_port);
  char *argv[] = {bin,           "--redis-url",         g_redis_url, "--listen", listen, "--retry-ms", "200",
                  "--drain-seconds", "0", "--log-level", "warn", NULL};
  pid_t pid = sc_test_spawn(bin, argv, NULL, g_log);
  free(bin);
  cr_assert_gt(pid, 0, "cannot spawn statecast-apiserver");
  cr_assert(sc_test_wait_http(g_api_port, "/readyz", 200, 20000), "apiserver never became ready");
  return pid;
}

static void setup(void) {
  cr_assert_eq(sc_test_redis_start(&g_redis, NULL), 0, "redis-server did not start");
  sc_test_redis_url(&g_redis, g_redis_url, sizeof g_redis_url);
  snprintf(g_log, sizeof g_log, "%s/services.log", g_redis.dir);
  g_health_port = sc_test_free_port();
  g_api_port = sc_test_free_port();
  char *bin = sc_test_bin("statecast-kv-updater");
  char health[64];
  snprintf(health, sizeof health, "127.0.0.1:%d", g_health_port);
  char *argv[] = {bin, "--redis-url", g_redis_url, "--health-listen", health, "--log-level", "warn", NULL};
  g_kvu = sc_test_spawn(bin, argv, NULL, g_log);
  free(bin);
  cr_assert_gt(g_kvu, 0, "cannot spawn statecast-kv-updater");
  cr_assert(sc_test_wait_http(g_health_port, "/readyz", 200, 20000), "kv-updater never became ready");
  g_api = start_apiserver();
}

static void teardown(void) {
  if (g_api > 0) sc_test_stop(g_api, SIGTERM, 10000);
  if (g_kvu > 0) sc_test_stop(g_kvu, SIGTERM, 10000);
  g_api = g_kvu = -1;
  sc_test_redis_stop(&g_redis, 0);
}

TestSuite(matrix_client, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers --------------------------------------------------------------- */

/* PUBLISH update:{topic} json and wait until kv-updater committed it (the
 * state hash's data equals json's compact form is not checked here: the
 * commit is seen through seq growing). */
static void publish(const char *topic, const char *json) {
  redisContext *c = sc_test_redis_connect(&g_redis);
  cr_assert_not_null(c);
  redisReply *before = redisCommand(c, "GET statecast:seq");
  long long seq0 = before && before->type == REDIS_REPLY_STRING ? atoll(before->str) : 0;
  freeReplyObject(before);
  redisReply *r = redisCommand(c, "PUBLISH update:{%s} %s", topic, json);
  cr_assert_not_null(r);
  cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
  cr_assert_geq(r->integer, 1, "no kv-updater subscribed");
  freeReplyObject(r);
  int committed = 0;
  for (int i = 0; i < 1000 && !committed; i++) {
    redisReply *s = redisCommand(c, "GET statecast:seq");
    committed = s && s->type == REDIS_REPLY_STRING && atoll(s->str) > seq0;
    freeReplyObject(s);
    if (!committed) usleep(10000);
  }
  redisFree(c);
  cr_assert(committed, "kv-updater did not commit %s", topic);
}

typedef int (*cond_fn)(mx_app_t *a, void *arg);

static void on_tick(uv_timer_t *t) { (void)t; }

/* Run the loop until cond holds (checked after every loop iteration) or
 * timeout_ms passes. */
static int run_until(uv_loop_t *loop, mx_app_t *a, cond_fn cond, void *arg, int timeout_ms) {
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, on_tick, 10, 10);
  uint64_t end = uv_now(loop) + (uint64_t)timeout_ms;
  int ok = 0;
  while (!(ok = cond(a, arg)) && uv_now(loop) < end) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return ok;
}

static int is_status(mx_app_t *a, void *arg) { return mx_app_status(a) == *(mx_status_t *)arg; }

static int live_with_topics(mx_app_t *a, void *arg) {
  return mx_app_status(a) == MX_STATUS_LIVE && mx_app_state(a)->n == *(size_t *)arg;
}

/* Line i of the default layout equals want. */
typedef struct line_want {
  size_t i;
  const char *text;
} line_want_t;

static int line_is(mx_app_t *a, void *arg) {
  line_want_t *w = arg;
  mx_line_t lines[16];
  size_t n = mx_app_lines(a, lines, 16);
  return w->i < n && strcmp(lines[w->i].text, w->text) == 0;
}

static int live_again(mx_app_t *a, void *arg) {
  return mx_app_status(a) == MX_STATUS_LIVE && mx_app_connects(a) >= *(unsigned *)arg;
}

static int g_closed;
static void on_app_closed(void *arg) {
  (void)arg;
  g_closed = 1;
}

static mx_app_t *new_app(uv_loop_t *loop, const char *const *topics, size_t n) {
  char url[64], err[200];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", g_api_port);
  mx_app_opts_t o = {.url = url, .topics = topics, .ntopics = n, .retry_base_ms = 100};
  mx_app_t *a = NULL;
  cr_assert_eq(mx_app_new(&a, loop, &o, err, sizeof err), 0, "%s", err);
  return a;
}

static void close_app(uv_loop_t *loop, mx_app_t *a) {
  g_closed = 0;
  mx_app_close(a, on_app_closed);
  uv_run(loop, UV_RUN_DEFAULT);
  cr_assert(g_closed);
  cr_assert_eq(uv_loop_close(loop), 0, "handles left open");
}

/* ---- tests ------------------------------------------------------------------ */

Test(matrix_client, shows_initial_state_then_follows_updates_and_deletes) {
  publish("demo/a", "{\"v\":1}");
  publish("demo/b", "{\"v\":2}");
  publish("other/c", "{\"v\":3}");
  uv_loop_t loop;
  uv_loop_init(&loop);
  const char *topics[] = {"demo/*"};
  mx_app_t *a = new_app(&loop, topics, 1);
  cr_assert_eq(mx_app_status(a), MX_STATUS_CONNECTING);
  size_t two = 2;
  cr_assert(run_until(&loop, a, live_with_topics, &two, 20000), "never live with 2 topics (status %d, n %zu)",
            mx_app_status(a), mx_app_state(a)->n);
  mx_line_t lines[8];
  cr_assert_eq(mx_app_lines(a, lines, 8), 2);
  cr_assert_str_eq(lines[0].text, "demo/a {\"v\":1}");
  cr_assert_str_eq(lines[1].text, "demo/b {\"v\":2}");

  publish("demo/a", "{\"v\": 10, \"s\": \"x\"}");
  line_want_t w = {0, "demo/a {\"v\":10,\"s\":\"x\"}"};
  cr_assert(run_until(&loop, a, line_is, &w, 20000), "update not shown");
  publish("other/c", "{\"v\":4}"); /* not followed */
  publish("demo/b", "null");
  size_t one = 1;
  cr_assert(run_until(&loop, a, live_with_topics, &one, 20000), "delete not applied");
  cr_assert_null(mx_state_find(mx_app_state(a), "demo/b"));
  cr_assert_null(mx_state_find(mx_app_state(a), "other/c"));
  cr_assert_eq(mx_app_state(a)->rejected, 0);
  close_app(&loop, a);
}

Test(matrix_client, survives_apiserver_restart_and_resumes_with_last_id) {
  publish("demo/a", "{\"v\":1}");
  publish("demo/b", "{\"v\":2}");
  publish("demo/c", "{\"v\":3}");
  uv_loop_t loop;
  uv_loop_init(&loop);
  mx_app_t *a = new_app(&loop, NULL, 0);
  size_t three = 3;
  cr_assert(run_until(&loop, a, live_with_topics, &three, 20000), "never live with 3 topics");
  const mx_state_t *s = mx_app_state(a);
  cr_assert_eq(s->applied, 3);
  char id_before[MX_SSE_ID_MAX + 1];
  snprintf(id_before, sizeof id_before, "%s", mx_app_last_id(a));
  cr_assert_neq(id_before[0], '\0', "no event id seen");

  /* Stop the apiserver; the display must say so and keep the old picture. */
  cr_assert_geq(sc_test_stop(g_api, SIGTERM, 10000), 0);
  g_api = -1;
  mx_status_t stale = MX_STATUS_STALE;
  cr_assert(run_until(&loop, a, is_status, &stale, 20000), "stream loss not noticed");
  cr_assert_eq(s->n, 3, "old state stays on screen while stale");

  /* One change while it is down, then the apiserver comes back. */
  publish("demo/b", "{\"v\":20}");
  uint64_t applied = s->applied, events = s->events, ignored = s->ignored;
  g_api = start_apiserver();
  unsigned two = 2;
  cr_assert(run_until(&loop, a, live_again, &two, 30000), "never reconnected (status %d)", mx_app_status(a));
  cr_assert_eq(mx_state_find(s, "demo/b")->data->child->valueint, 20);
  cr_assert_eq(s->applied - applied, 1, "resume must apply only the missed change");
  cr_assert_eq(s->events - events, 2, "resume must send one update and the sync, got %llu events",
               (unsigned long long)(s->events - events));
  cr_assert_eq(s->ignored, ignored, "nothing re-sent");
  cr_assert_eq(s->dropped, 0);
  cr_assert_eq(s->n, 3);
  cr_assert_str_neq(mx_app_last_id(a), id_before, "last id must advance");
  close_app(&loop, a);
}

Test(matrix_client, binary_prints_demo_layout_once_in_plain_mode) {
  publish("demo/clock", "{\"time\":\"14:05:01\",\"date\":\"2026-11-23\"}");
  publish("demo/sensors/living-room", "{\"celsius\":21.44,\"humidity\":48}");
  publish("demo/sensors/outside", "{\"celsius\":-2,\"wind\":{\"speed\":14.5,\"dir\":\"NW\"}}");
  publish("demo/host/load", "{\"load1\":0.5,\"load5\":0.25,\"load15\":0.1}");
  char *bin = sc_test_bin("statecast-matrix");
  char url[64], layout[1024];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", g_api_port);
  snprintf(layout, sizeof layout, "%s", __FILE__);
  *strrchr(layout, '/') = '\0';
  strncat(layout, "/../../matrix-client/examples/demo-layout.yaml", sizeof layout - strlen(layout) - 1);
  char *argv[] = {bin, "--url", url, "--topic", "demo/*", "--layout", layout, "--plain", "--once", NULL};
  char out[4096], err[4096];
  int rc = sc_test_run(bin, argv, NULL, NULL, out, sizeof out, err, sizeof err);
  free(bin);
  cr_assert_eq(rc, 0, "exit %d, stderr: %s", rc, err);
  cr_assert_str_eq(out, "14:05:01\n"
                        "IN 21.4\xC2\xB0 48%\n"
                        "OUT -2.0\xC2\xB0 wind 14.5 km/h NW\n"
                        "LOAD 0.50\n"
                        "\n");
}

Test(matrix_client, binary_once_gives_up_when_nothing_listens) {
  char *bin = sc_test_bin("statecast-matrix");
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", sc_test_free_port());
  char *argv[] = {bin, "--url", url, "--plain", "--once", "--timeout", "1", NULL};
  char out[1024], err[1024];
  int rc = sc_test_run(bin, argv, NULL, NULL, out, sizeof out, err, sizeof err);
  free(bin);
  cr_assert_eq(rc, 3, "exit %d", rc);
  cr_assert(strstr(out, "[connecting]"), "stdout: %s", out);
}

Test(matrix_client, binary_rejects_bad_usage) {
  char *bin = sc_test_bin("statecast-matrix");
  char out[4096], err[4096];
  char *a1[] = {bin, "--plain", NULL};
  cr_assert_eq(sc_test_run(bin, a1, NULL, NULL, out, sizeof out, err, sizeof err), 1);
  cr_assert(strstr(err, "--url is required"));
  char *a2[] = {bin, "--url", "https://x:1", NULL};
  cr_assert_eq(sc_test_run(bin, a2, NULL, NULL, out, sizeof out, err, sizeof err), 1);
  cr_assert(strstr(err, "bad --url"), "%s", err);
  char *a3[] = {bin, "--help", NULL};
  cr_assert_eq(sc_test_run(bin, a3, NULL, NULL, out, sizeof out, err, sizeof err), 0);
  cr_assert(strstr(out, "--topic PATTERN"));
  free(bin);
}

/* ---- the SSE client against a scripted loopback server ---------------------
 * A libuv server in the test's own loop answers connection i with script[i]
 * (then stays silent, keeping the socket open) and records each request, so
 * timeouts, caps, non-200 answers and Last-Event-ID can be checked exactly. */

#define MAX_CONNS 8

typedef struct script_srv {
  uv_tcp_t listener;
  int port;
  const char *script[MAX_CONNS]; /* borrowed; NULL: close at once */
  char req[MAX_CONNS][1024];
  size_t req_len[MAX_CONNS];
  int nconns, nreqs;
  uv_tcp_t *conns[MAX_CONNS]; /* owned; freed in on_srv_conn_closed */
} script_srv_t;

typedef struct srv_conn {
  uv_tcp_t tcp;
  script_srv_t *srv;
  int idx;
  char buf[1024];
} srv_conn_t;

static void on_srv_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
  (void)s;
  srv_conn_t *c = h->data;
  *b = uv_buf_init(c->buf, sizeof c->buf);
}

static void on_srv_written(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

static void on_srv_conn_closed(uv_handle_t *h) { free(h->data); }

static void on_srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  srv_conn_t *c = s->data;
  script_srv_t *srv = c->srv;
  if (n <= 0) return;
  size_t *len = &srv->req_len[c->idx];
  size_t take = (size_t)n < sizeof srv->req[0] - 1 - *len ? (size_t)n : sizeof srv->req[0] - 1 - *len;
  memcpy(srv->req[c->idx] + *len, b->base, take);
  *len += take;
  srv->req[c->idx][*len] = '\0';
  if (!strstr(srv->req[c->idx], "\r\n\r\n") || srv->nreqs > c->idx) return;
  srv->nreqs = c->idx + 1;
  const char *resp = srv->script[c->idx];
  if (!resp) {
    uv_close((uv_handle_t *)&c->tcp, on_srv_conn_closed);
    srv->conns[c->idx] = NULL;
    return;
  }
  uv_write_t *w = malloc(sizeof *w);
  uv_buf_t out = uv_buf_init((char *)resp, (unsigned)strlen(resp));
  uv_write(w, s, &out, 1, on_srv_written);
}

static void on_srv_connection(uv_stream_t *l, int status) {
  script_srv_t *srv = l->data;
  cr_assert_eq(status, 0);
  srv_conn_t *c = calloc(1, sizeof *c);
  uv_tcp_init(l->loop, &c->tcp);
  c->tcp.data = c;
  c->srv = srv;
  cr_assert_eq(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
  cr_assert_lt(srv->nconns, MAX_CONNS);
  c->idx = srv->nconns++;
  srv->conns[c->idx] = &c->tcp;
  uv_read_start((uv_stream_t *)&c->tcp, on_srv_alloc, on_srv_read);
}

static void srv_start(uv_loop_t *loop, script_srv_t *srv) {
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_init(loop, &srv->listener);
  srv->listener.data = srv;
  cr_assert_eq(uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&srv->listener, 16, on_srv_connection), 0);
  struct sockaddr_in got;
  int len = sizeof got;
  uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&got, &len);
  srv->port = ntohs(got.sin_port);
}

static void srv_stop(script_srv_t *srv) {
  for (int i = 0; i < srv->nconns; i++)
    if (srv->conns[i] && !uv_is_closing((uv_handle_t *)srv->conns[i]))
      uv_close((uv_handle_t *)srv->conns[i], on_srv_conn_closed);
  uv_close((uv_handle_t *)&srv->listener, NULL);
}

typedef struct rec {
  int events;
  char first_data[256];
  char last_data[256];
  char states[64]; /* one letter per state change: C L S */
  int closed;
} crec_t;

static int on_client_event(void *arg, const mx_sse_event_t *ev) {
  crec_t *r = arg;
  if (r->events++ == 0) snprintf(r->first_data, sizeof r->first_data, "%s", ev->data);
  snprintf(r->last_data, sizeof r->last_data, "%s", ev->data);
  return 0;
}

static void on_client_state(void *arg, mx_sse_state_t st, const char *why) {
  (void)why;
  crec_t *r = arg;
  size_t n = strlen(r->states);
  if (n + 1 < sizeof r->states) r->states[n] = "CLSX"[st];
}

static void on_client_closed(void *arg) { ((crec_t *)arg)->closed = 1; }

/* Run the loop until srv has seen `reqs` complete requests. */
static int run_until_reqs(uv_loop_t *loop, script_srv_t *srv, int reqs, int timeout_ms) {
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, on_tick, 10, 10);
  uint64_t end = uv_now(loop) + (uint64_t)timeout_ms;
  while (srv->nreqs < reqs && uv_now(loop) < end) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return srv->nreqs >= reqs;
}

static mx_sse_client_t *client_for(uv_loop_t *loop, script_srv_t *srv, crec_t *r, size_t max_event) {
  mx_sse_client_opts_t o = {.host = "127.0.0.1",
                            .port = srv->port,
                            .path = "/events?topic=a",
                            .read_timeout_ms = 300,
                            .retry_base_ms = 50,
                            .retry_max_ms = 200,
                            .max_line = max_event,
                            .max_event = max_event,
                            .on_event = on_client_event,
                            .on_state = on_client_state,
                            .arg = r};
  mx_sse_client_t *c = NULL;
  cr_assert_eq(mx_sse_client_new(&c, loop, &o), 0);
  return c;
}

static void finish_client(uv_loop_t *loop, script_srv_t *srv, mx_sse_client_t *c, crec_t *r) {
  mx_sse_client_close(c, on_client_closed);
  srv_stop(srv);
  uv_run(loop, UV_RUN_DEFAULT);
  cr_assert(r->closed);
  cr_assert_eq(uv_loop_close(loop), 0, "handles left open");
}

#define SSE_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

/* SSE_HEAD plus body as one chunk (no final chunk: the stream stays open). */
static const char *sse_response(char *dst, size_t cap, const char *body) {
  snprintf(dst, cap, SSE_HEAD "%zx\r\n%s\r\n", strlen(body), body);
  return dst;
}

TestSuite(matrix_sse_client, .timeout = 60);

Test(matrix_sse_client, drops_silent_stream_and_resumes_with_last_event_id) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  script_srv_t srv = {0};
  char r0[256], r1[256];
  srv.script[0] = sse_response(r0, sizeof r0, "retry: 60\n\nid: e-7\ndata: one\n\n"); /* then silence */
  srv.script[1] = sse_response(r1, sizeof r1, "data: two\r\n\r\n");
  srv_start(&loop, &srv);
  crec_t r = {0};
  mx_sse_client_t *c = client_for(&loop, &srv, &r, 0);
  cr_assert(run_until_reqs(&loop, &srv, 2, 10000), "no reconnect after the read timeout");
  cr_assert(strstr(srv.req[0], "GET /events?topic=a HTTP/1.1\r\n"), "%s", srv.req[0]);
  cr_assert(strstr(srv.req[0], "Accept: text/event-stream\r\n"));
  cr_assert_null(strstr(srv.req[0], "Last-Event-ID"), "no id yet on the first request");
  cr_assert(strstr(srv.req[1], "Last-Event-ID: e-7\r\n"), "%s", srv.req[1]);
  cr_assert_geq(r.events, 1);
  cr_assert_str_eq(r.first_data, "one");
  cr_assert_eq(strncmp(r.states, "CLSC", 4), 0, "connecting -> live -> stale -> connecting, got %s", r.states);
  cr_assert_str_eq(mx_sse_client_last_id(c), "e-7");
  finish_client(&loop, &srv, c, &r);
}

Test(matrix_sse_client, reconnects_after_oversize_event_and_non_200) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  script_srv_t srv = {0};
  char big[512], body[200], ok[256];
  snprintf(body, sizeof body, "data: %0100d\n\n", 0);
  srv.script[0] = sse_response(big, sizeof big, body);
  srv.script[1] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
  srv.script[2] = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>";
  srv.script[3] = NULL; /* accepted, then closed at once */
  srv.script[4] = sse_response(ok, sizeof ok, "data: ok\n\n");
  srv_start(&loop, &srv);
  crec_t r = {0};
  mx_sse_client_t *c = client_for(&loop, &srv, &r, 64);
  cr_assert(run_until_reqs(&loop, &srv, 5, 15000), "gave up after %d requests", srv.nreqs);
  /* Let the fifth answer arrive. */
  uv_timer_t tick;
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, on_tick, 10, 10);
  uint64_t end = uv_now(&loop) + 10000;
  while (r.events == 0 && uv_now(&loop) < end) uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  cr_assert_eq(r.events, 1, "the oversize event must not be delivered");
  cr_assert_str_eq(r.last_data, "ok");
  cr_assert_eq(mx_sse_client_state(c), MX_SSE_LIVE);
  finish_client(&loop, &srv, c, &r);
}
