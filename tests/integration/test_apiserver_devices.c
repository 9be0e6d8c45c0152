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

#include "apiserver_fixture.h"

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
