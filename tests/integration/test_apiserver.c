/*
 * apiserver: the real statecast-apiserver and statecast-kv-updater against a
 * real redis-server, read with the test SSE client (and curl for HTTP/2).
 * Messages are PUBLISHed raw on update:{T}; every wait is a condition with a
 * generous timeout, never a timing assertion.
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sse_client.h"
#include "support.h"

#include "apiserver_fixture.h"

/* Nothing but comments arrives within ms. */
static void expect_quiet(sc_sse_client_t *c, int ms) {
  sc_sse_event_t ev;
  int r = sc_sse_next_event(c, &ev, ms);
  if (r == 1) {
    cr_assert_fail("unexpected %s event: %s", ev.event, ev.data);
    sc_sse_event_dispose(&ev);
  }
}

TestSuite(apiserver, .init = setup, .fini = teardown, .timeout = 120);

Test(apiserver, streams_initial_state_in_seq_order_then_sync) {
  publish("b", "{\"v\":1}");
  publish("a", "[1, 2]");
  publish("b", "{\"v\":2}");
  start_api(NULL, 1);
  sc_sse_client_t *c = open_stream("/events", NULL);
  cr_assert_str_eq(sc_sse_header(c, "content-type"), "text/event-stream");
  cr_assert_str_eq(sc_sse_header(c, "cache-control"), "no-cache");
  cr_assert_str_eq(sc_sse_header(c, "x-accel-buffering"), "no");
  cr_assert_str_eq(sc_sse_header(c, "access-control-allow-origin"), "*");
  sc_sse_event_t ev = expect_event(c, "update", "a");
  cr_assert_str_eq(ev.data, strstr(ev.data, "{\"topic\":\"a\",\"seq\":2,\"ts\":") ? ev.data : "bad envelope");
  cr_assert(strstr(ev.data, "\"data\":[1,2]}") != NULL, "compact data: %s", ev.data);
  cr_assert(strstr(ev.id, "-2") != NULL);
  sc_sse_event_dispose(&ev);
  expect_update(c, "b");
  const char *id = expect_sync(c, 1);
  cr_assert(strstr(id, "-3") != NULL, "sync id %s", id);
  cr_assert_gt(sc_sse_retry_ms(c), 0, "retry line first");
  sc_sse_close(c);
}

Test(apiserver, sends_live_updates_and_deletes) {
  start_api(NULL, 1);
  sc_sse_client_t *c = open_stream("/events", NULL);
  expect_sync(c, 1);
  publish("x", "1");
  expect_update(c, "x");
  publish("x", "null");
  sc_sse_event_t ev = expect_event(c, "delete", "x");
  cr_assert_neq(ev.id[0], '\0', "delete without id");
  cr_assert(strstr(ev.data, "\"data\"") == NULL, "delete has no data: %s", ev.data);
  sc_sse_event_dispose(&ev);
  sc_sse_close(c);
}

Test(apiserver, filters_by_exact_topic_and_wildcard) {
  publish("sensors/a", "1");
  publish("sensors/b/c", "2");
  publish("other", "3");
  publish("room1", "4");
  start_api(NULL, 1);
  sc_sse_client_t *c = open_stream("/events?topic=sensors/*&topic=room1", NULL);
  expect_update(c, "sensors/a");
  expect_update(c, "sensors/b/c");
  expect_update(c, "room1");
  expect_sync(c, 1);
  publish("other", "5");
  publish("sensors/z", "6");
  expect_update(c, "sensors/z");
  sc_sse_close(c);

  c = open_stream("/events?topic=sensors%2F*", NULL);
  expect_update(c, "sensors/a");
  expect_update(c, "sensors/b/c");
  expect_update(c, "sensors/z");
  expect_sync(c, 1);
  sc_sse_close(c);

  char body[512];
  cr_assert_eq(sc_test_http(g_aport, "GET", "/events?topic=bad%20topic", body, sizeof body), 400);
  cr_assert(strstr(body, "topic pattern") != NULL, "reason: %s", body);
}

/* The update of topic and a sync with full:false, in either order: the
 * commit is in Redis when publish() returns, but the worker serving the
 * stream may apply it just before or just after the stream's catch-up
 * ends (then it comes live, after the sync). Both are exact. */
static void expect_update_and_sync(sc_sse_client_t *c, const char *topic) {
  int got_update = 0, got_sync = 0;
  while (!(got_update && got_sync)) {
    sc_sse_event_t ev;
    cr_assert_eq(sc_sse_next_event(c, &ev, WAIT_MS), 1, "no update %s / sync", topic);
    if (strcmp(ev.event, "sync") == 0) {
      cr_assert_not(got_sync, "two syncs");
      cr_assert(strstr(ev.data, "\"full\":false") != NULL, "sync %s", ev.data);
      got_sync = 1;
    } else {
      char want[256];
      snprintf(want, sizeof want, "{\"topic\":\"%s\",", topic);
      cr_assert_str_eq(ev.event, "update", "unexpected %s %s", ev.event, ev.data);
      cr_assert(strncmp(ev.data, want, strlen(want)) == 0 && !got_update, "unexpected update %s", ev.data);
      got_update = 1;
    }
    sc_sse_event_dispose(&ev);
  }
}

Test(apiserver, resume_sends_only_what_was_missed_including_deletes) {
  publish("a", "1");
  publish("b", "1");
  publish("c", "1");
  start_api(NULL, 1);
  sc_sse_client_t *c = open_stream("/events", NULL);
  expect_update(c, "a");
  expect_update(c, "b");
  expect_update(c, "c");
  char id[128];
  snprintf(id, sizeof id, "%s", expect_sync(c, 1));
  sc_sse_close(c);

  publish("b", "2");
  publish("a", "null");
  publish("d", "1");

  c = open_stream("/events", id);
  expect_update(c, "b");
  sc_sse_event_t ev = expect_event(c, "delete", "a");
  sc_sse_event_dispose(&ev);
  expect_update_and_sync(c, "d");
  expect_quiet(c, 500);
  sc_sse_close(c);

  /* The same with the query parameter. */
  char path[256];
  snprintf(path, sizeof path, "/events?lastEventId=%s", id);
  c = open_stream(path, NULL);
  expect_update(c, "b");
  ev = expect_event(c, "delete", "a");
  sc_sse_event_dispose(&ev);
  expect_update_and_sync(c, "d");
  sc_sse_close(c);
}

Test(apiserver, resume_works_across_an_apiserver_restart) {
  publish("a", "1");
  publish("b", "1");
  start_api(NULL, 1);
  sc_sse_client_t *c = open_stream("/events", NULL);
  expect_update(c, "a");
  expect_update(c, "b");
  char id[128];
  snprintf(id, sizeof id, "%s", expect_sync(c, 1));
  int st = stop_api();
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
  sc_sse_event_t ev;
  cr_assert_eq(sc_sse_next_event(c, &ev, WAIT_MS), -1, "stream closed on shutdown");
  sc_sse_close(c);

  publish("a", "null");
  publish("c", "1");
  start_api(NULL, 1);
  c = open_stream("/events", id);
  ev = expect_event(c, "delete", "a");
  sc_sse_event_dispose(&ev);
  expect_update(c, "c");
  expect_sync(c, 0);
  expect_quiet(c, 500);
  sc_sse_close(c);
}

Test(apiserver, unplaceable_ids_get_the_full_state) {
  publish("a", "1");
  publish("b", "1");
  start_api(NULL, 1);
  const char *ids[] = {"garbage", "ffffffffffffffff-1", "0123456789abcdef-99999999999999999999"};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    sc_sse_client_t *c = open_stream("/events", ids[i]);
    expect_update(c, "a");
    expect_update(c, "b");
    expect_sync(c, 1);
    sc_sse_close(c);
  }
}

Test(apiserver, sends_heartbeats_on_idle_streams) {
  const char *extra[] = {"--heartbeat-seconds", "1", NULL};
  start_api(extra, 1);
  sc_sse_client_t *c = open_stream("/events", NULL);
  expect_sync(c, 1);
  sc_sse_event_t ev;
  int r;
  while ((r = sc_sse_next(c, &ev, WAIT_MS)) == 1 && !ev.is_comment) sc_sse_event_dispose(&ev);
  cr_assert_eq(r, 1, "no heartbeat");
  cr_assert_str_eq(ev.data, "hb");
  sc_sse_event_dispose(&ev);
  sc_sse_close(c);
}

Test(apiserver, serves_http2_with_prior_knowledge) {
  if (access("/usr/bin/curl", X_OK) != 0) return;
  publish("h2", "{\"ok\":true}");
  start_api(NULL, 1);
  char url[128], out[8192], err[2048];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/events", g_aport);
  char *argv[] = {"curl", "-sS", "-N", "--http2-prior-knowledge", "--max-time", "3", "-w", "\nHTTP/%{http_version}", url,
                  NULL};
  sc_test_run("/usr/bin/curl", argv, NULL, NULL, out, sizeof out, err, sizeof err);
  cr_assert(strstr(out, "event: update") != NULL, "curl out: %s err: %s", out, err);
  cr_assert(strstr(out, "\"topic\":\"h2\"") != NULL);
  cr_assert(strstr(out, "event: sync") != NULL);
  cr_assert(strstr(out, "HTTP/2") != NULL, "curl out: %s", out);
}

Test(apiserver, refuses_streams_past_the_limit_with_503) {
  const char *extra[] = {"--max-streams", "2", NULL};
  start_api(extra, 1);
  sc_sse_client_t *a = open_stream("/events", NULL);
  sc_sse_client_t *b = open_stream("/events", NULL);
  expect_sync(a, 1);
  expect_sync(b, 1);
  sc_sse_client_t *c = sc_sse_connect(g_aport, "/events", NULL, 0, WAIT_MS);
  cr_assert_not_null(c);
  cr_assert_eq(sc_sse_status(c), 503);
  cr_assert_not_null(sc_sse_header(c, "retry-after"));
  sc_sse_close(c);
  sc_sse_close(a);
  sc_sse_close(b);
}

Test(apiserver, answers_state_with_filter_etag_and_304) {
  publish("sensors/a", "1");
  publish("other", "{\"k\":\"v\"}");
  start_api(NULL, 1);
  char body[4096];
  cr_assert_eq(sc_test_http(g_aport, "GET", "/state?topic=sensors/*", body, sizeof body), 200);
  cr_assert(strstr(body, "{\"seq\":2,\"topics\":[{\"topic\":\"sensors/a\",\"seq\":1,") == body, "%s", body);
  cr_assert(strstr(body, "other") == NULL);
  cr_assert_eq(sc_test_http(g_aport, "GET", "/state", body, sizeof body), 200);
  cr_assert(strstr(body, "\"other\"") != NULL);

  sc_sse_client_t *c = sc_sse_connect(g_aport, "/state/other", NULL, 0, WAIT_MS);
  cr_assert_eq(sc_sse_status(c), 200);
  char etag[128];
  cr_assert_not_null(sc_sse_header(c, "etag"));
  snprintf(etag, sizeof etag, "%s", sc_sse_header(c, "etag"));
  cr_assert(etag[0] == '"' && strstr(etag, "-2\"") != NULL, "etag %s", etag);
  const char *b = sc_sse_read_body(c, WAIT_MS);
  cr_assert(strstr(b, "{\"topic\":\"other\",\"seq\":2,") == b, "%s", b);
  sc_sse_close(c);

  char url[128], hdr[200], out[256], err[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/state/other", g_aport);
  snprintf(hdr, sizeof hdr, "If-None-Match: %s", etag);
  char *argv[] = {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", hdr, url, NULL};
  sc_test_run("/usr/bin/curl", argv, NULL, NULL, out, sizeof out, err, sizeof err);
  cr_assert_str_eq(out, "304");

  cr_assert_eq(sc_test_http(g_aport, "GET", "/state/nope", body, sizeof body), 404);
  cr_assert(strstr(body, "\"error\"") != NULL);
  cr_assert_eq(sc_test_http(g_aport, "GET", "/no/such/path", body, sizeof body), 404);
}

Test(apiserver, readyz_is_503_until_the_state_is_loaded) {
  sc_test_stop(g_kvu, SIGTERM, 10000);
  g_kvu = -1;
  sc_test_redis_stop(&g_redis, 1);
  start_api(NULL, 0);
  char body[512];
  cr_assert_eq(sc_test_http(g_aport, "GET", "/readyz", body, sizeof body), 503);
  cr_assert(strstr(body, "\"error\"") != NULL, "%s", body);
  cr_assert_eq(sc_test_http(g_aport, "GET", "/healthz", body, sizeof body), 200);
  cr_assert_eq(sc_test_redis_restart(&g_redis, NULL), 0);
  cr_assert(sc_test_wait_http(g_aport, "/readyz", 200, WAIT_MS), "ready once Redis is up");
}

static int valid_metric_line(const char *l) {
  const char *p = l;
  if (!(isalpha((unsigned char)*p) || *p == '_' || *p == ':')) return 0;
  while (isalnum((unsigned char)*p) || *p == '_' || *p == ':') p++;
  if (*p == '{') {
    const char *close = strchr(p, '}');
    if (close == NULL) return 0;
    p = close + 1;
  }
  if (*p++ != ' ') return 0;
  char *end;
  strtod(p, &end);
  if (end == p && strncmp(p, "+Inf", 4) != 0 && strncmp(p, "NaN", 3) != 0) return 0;
  return *end == '\0';
}

Test(apiserver, metrics_parse_as_prometheus_text) {
  publish("m", "1");
  start_api(NULL, 1);
  sc_sse_client_t *c = open_stream("/events", NULL);
  expect_update(c, "m");
  expect_sync(c, 1);
  publish("m", "2");
  expect_update(c, "m");
  static char body[65536];
  cr_assert_eq(sc_test_http(g_aport, "GET", "/metrics", body, sizeof body), 200);
  int lines = 0;
  for (char *l = strtok(body, "\n"); l != NULL; l = strtok(NULL, "\n")) {
    if (l[0] == '#') continue;
    cr_assert(valid_metric_line(l), "bad metric line: %s", l);
    lines++;
  }
  cr_assert_gt(lines, 10);
  sc_sse_close(c);
  cr_assert_eq(sc_test_http(g_aport, "GET", "/metrics", body, sizeof body), 200);
  cr_assert(strstr(body, "statecast_api_streams_open ") != NULL);
  cr_assert(strstr(body, "statecast_api_commit_to_send_seconds_bucket{le=\"+Inf\"} ") != NULL);
  cr_assert(strstr(body, "statecast_api_last_seq 2") != NULL, "%s", body);
}

static int not_ready(void *arg) {
  (void)arg;
  return sc_test_http(g_aport, "GET", "/readyz", NULL, 0) != 200;
}

Test(apiserver, sigterm_closes_streams_and_exits_zero) {
  start_api(NULL, 1);
  sc_sse_client_t *a = open_stream("/events", NULL);
  sc_sse_client_t *b = open_stream("/events?topic=x", NULL);
  expect_sync(a, 1);
  expect_sync(b, 1);
  kill(g_api, SIGTERM);
  /* It stops accepting at once: no new client is told it is ready. */
  cr_assert(sc_test_wait(not_ready, NULL, WAIT_MS), "/readyz must stop answering 200 after SIGTERM");
  sc_sse_event_t ev;
  cr_assert_eq(sc_sse_next_event(a, &ev, WAIT_MS), -1, "stream a ended");
  cr_assert_eq(sc_sse_next_event(b, &ev, WAIT_MS), -1, "stream b ended");
  int st = sc_test_stop(g_api, 0, 15000); /* no second signal: it exits by itself */
  g_api = -1;
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
  sc_sse_close(a);
  sc_sse_close(b);
}

static int metric_value(const char *needle) {
  static char body[65536];
  if (sc_test_http(g_aport, "GET", "/metrics", body, sizeof body) != 200) return -1;
  const char *p = strstr(body, needle);
  return p ? atoi(p + strlen(needle)) : -1;
}

static int slow_dropped(void *arg) {
  (void)arg;
  return metric_value("statecast_api_streams_dropped_total{reason=\"slow\"} ") >= 1;
}

Test(apiserver, evicts_a_stream_whose_client_stopped_reading) {
  /* The stall timeout alone (the backlog cap has its own test in test_apiserver_outage.c). */
  const char *extra[] = {"--heartbeat-seconds", "1", "--max-stream-backlog-bytes", "0", NULL};
  start_api(extra, 1);
  sc_sse_client_t *c = open_stream("/events", NULL);
  expect_sync(c, 1);
  /* Never read again; commit far more than the socket buffers hold. */
  size_t big = 250000;
  char *json = malloc(big + 3);
  json[0] = '"';
  memset(json + 1, 'x', big);
  json[big + 1] = '"';
  json[big + 2] = '\0';
  redisContext *rc = sc_test_redis_connect(&g_redis);
  for (int i = 0; i < 80; i++) {
    json[1 + i % 26] = (char)('a' + i % 26);
    redisReply *r = redisCommand(rc, "PUBLISH update:{big%d} %s", i, json);
    freeReplyObject(r);
  }
  redisFree(rc);
  free(json);
  cr_assert(sc_test_wait(slow_dropped, NULL, 60000), "stalled stream evicted");
  sc_sse_close(c);
}
