/*
 * apiserver worker threads: every worker listens on the one port, streams
 * on every worker get the same events with the same ids, the stream limit
 * holds for the whole process, and a shutdown drains all of them. Real
 * redis-server, kv-updater and apiserver; every wait is a condition.
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

#include "apiserver_fixture.h"

TestSuite(apiserver_workers, .init = setup, .fini = teardown, .timeout = 180);

#define NWORKERS 4
/* With 64 connections the chance that the kernel's SO_REUSEPORT hash leaves
 * one of 4 listeners without any is about 4 * (3/4)^64, i.e. never. */
#define NSTREAMS 64

/* The value of a metrics line starting with `name ` (or -1). */
static long long metric(const char *name) {
  static char body[65536];
  if (sc_test_http(g_aport, "GET", "/metrics", body, sizeof body) != 200) return -1;
  char want[160];
  snprintf(want, sizeof want, "\n%s ", name);
  const char *p = strstr(body, want);
  return p != NULL ? atoll(p + strlen(want)) : -1;
}

typedef struct want_metric {
  const char *name;
  long long value;
} want_metric_t;

static int metric_is(void *arg) {
  const want_metric_t *w = arg;
  return metric(w->name) == w->value;
}

Test(apiserver_workers, every_worker_serves_the_same_events_in_the_same_order) {
  publish("w/a", "{\"v\":0}");
  const char *extra[] = {"--workers", "4", NULL};
  start_api(extra, 1);
  cr_assert_eq(metric("statecast_api_workers"), NWORKERS);

  sc_sse_client_t *c[NSTREAMS];
  for (int i = 0; i < NSTREAMS; i++) {
    c[i] = open_stream("/events?topic=w/*", NULL);
    expect_update(c[i], "w/a");
    expect_sync(c[i], 1);
  }
  want_metric_t open = {"statecast_api_streams_open", NSTREAMS};
  cr_assert(sc_test_wait(metric_is, &open, WAIT_MS), "streams_open %lld", metric("statecast_api_streams_open"));
  for (int w = 0; w < NWORKERS; w++) {
    char name[96];
    snprintf(name, sizeof name, "statecast_api_worker_streams_open{worker=\"%d\"}", w);
    cr_expect_gt(metric(name), 0, "worker %d got no stream (kernel did not spread the listeners?)", w);
  }

  publish("w/a", "{\"v\":1}");
  publish("w/b", "{\"v\":2}");
  publish("w/a", "{\"v\":3}");
  char ids[3][128];
  for (int i = 0; i < NSTREAMS; i++) {
    const char *topics[3] = {"w/a", "w/b", "w/a"};
    for (int k = 0; k < 3; k++) {
      sc_sse_event_t ev = expect_event(c[i], "update", topics[k]);
      char v[16];
      snprintf(v, sizeof v, "{\"v\":%d}", k + 1);
      cr_assert(strstr(ev.data, v) != NULL, "stream %d event %d: %s", i, k, ev.data);
      if (i == 0)
        snprintf(ids[k], sizeof ids[k], "%s", ev.id);
      else
        cr_assert_str_eq(ev.id, ids[k], "stream %d saw id %s where stream 0 saw %s", i, ev.id, ids[k]);
      sc_sse_event_dispose(&ev);
    }
  }
  /* /state on any worker is the same replica. */
  for (int i = 0; i < 8; i++) {
    char body[4096];
    cr_assert_eq(sc_test_http(g_aport, "GET", "/state/w/a", body, sizeof body), 200);
    cr_assert(strstr(body, "{\"v\":3}") != NULL, "%s", body);
  }
  for (int i = 0; i < NSTREAMS; i++) sc_sse_close(c[i]);
}

Test(apiserver_workers, the_stream_limit_holds_for_the_whole_process) {
  publish("w/a", "{\"v\":0}");
  /* Heartbeats every second: HTTP/1.1 notices a client gone at the next write. */
  const char *extra[] = {"--workers", "4", "--max-streams", "10", "--heartbeat-seconds", "1", NULL};
  start_api(extra, 1);
  sc_sse_client_t *c[10];
  for (int i = 0; i < 10; i++) {
    c[i] = open_stream("/events", NULL);
    expect_update(c[i], "w/a");
  }
  for (int i = 0; i < 8; i++) {
    sc_sse_client_t *x = sc_sse_connect(g_aport, "/events", NULL, 0, WAIT_MS);
    cr_assert_not_null(x);
    cr_assert_eq(sc_sse_status(x), 503, "stream %d past the limit got %d", 10 + i, sc_sse_status(x));
    sc_sse_close(x);
  }
  /* A slot freed on any worker is free for every worker. */
  sc_sse_close(c[0]);
  want_metric_t open = {"statecast_api_streams_open", 9};
  cr_assert(sc_test_wait(metric_is, &open, WAIT_MS), "streams_open %lld", metric("statecast_api_streams_open"));
  c[0] = open_stream("/events", NULL);
  expect_update(c[0], "w/a");
  for (int i = 0; i < 10; i++) sc_sse_close(c[i]);
}

Test(apiserver_workers, shutdown_ends_the_streams_of_every_worker) {
  publish("w/a", "{\"v\":0}");
  const char *extra[] = {"--workers", "3", NULL};
  start_api(extra, 1);
  sc_sse_client_t *c[24];
  for (int i = 0; i < 24; i++) {
    c[i] = open_stream("/events", NULL);
    expect_update(c[i], "w/a");
    expect_sync(c[i], 1);
  }
  int st = stop_api();
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "apiserver exit status %d", st);
  for (int i = 0; i < 24; i++) {
    sc_sse_event_t ev;
    int r;
    while ((r = sc_sse_next(c[i], &ev, WAIT_MS)) == 1) sc_sse_event_dispose(&ev);
    cr_assert_eq(r, -1, "stream %d did not end (r=%d)", i, r);
    sc_sse_close(c[i]);
  }
}

Test(apiserver_workers, the_first_commit_on_an_empty_redis_reaches_every_stream) {
  /* No epoch yet: the first commit brings it, and every worker must pass
   * the commit on before it learns the new last seq. */
  start_api(NULL, 1);
  sc_sse_client_t *c[32];
  for (int i = 0; i < 32; i++) {
    c[i] = open_stream("/events", NULL);
    expect_sync(c[i], 1);
  }
  publish("first", "{\"v\":1}");
  publish("second", "{\"v\":2}");
  for (int i = 0; i < 32; i++) {
    expect_update(c[i], "first");
    expect_update(c[i], "second");
    sc_sse_close(c[i]);
  }
}
