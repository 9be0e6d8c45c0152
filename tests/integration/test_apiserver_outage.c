/*
 * apiserver through Redis outages, pub/sub gaps and a new epoch: open
 * streams stay open and converge to the committed state without
 * reconnecting (outage, restart with data, gap), or get the new full state
 * only (new epoch). Real redis-server (AOF on, so a restart keeps the data),
 * kv-updater and apiserver; commits that the apiserver must miss are made
 * directly with the commit script and a different notify channel. Every test
 * ends with a checker: what each stream last showed per topic equals
 * Redis's committed state (HGET state:{T} data for every indexed topic).
 * Also: a stalled reader past max_stream_backlog_bytes is cut, and counted.
 */
#include <criterion/criterion.h>

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "commit.h"
#include "keys.h"
#include "sse_client.h"
#include "support.h"

#define WAIT_MS 20000
#define MAX_TOPICS 32

static sc_test_redis_t g_redis;
static int g_redis_started;
static pid_t g_kvu = -1, g_api = -1;
static int g_kport, g_aport;
static char g_log[300], g_alog[300];
static const char *const g_aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};

static void spawn_api(const char *const *extra) {
  char url[128], alisten[64];
  sc_test_redis_url(&g_redis, url, sizeof url);
  g_aport = sc_test_free_port();
  snprintf(alisten, sizeof alisten, "127.0.0.1:%d", g_aport);
  char *abin = sc_test_bin("statecast-apiserver");
  char *aargv[24] = {abin, "--redis-url", url, "--listen", alisten, "--drain-seconds", "1", "--heartbeat-seconds", "1"};
  size_t n = 9;
  for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 23; i++) aargv[n++] = (char *)extra[i];
  aargv[n] = NULL;
  g_api = sc_test_spawn(abin, aargv, NULL, g_alog);
  free(abin);
  cr_assert(sc_test_wait_http(g_aport, "/readyz", 200, WAIT_MS), "apiserver not ready");
}

static void setup(void) {
  cr_assert_eq(sc_test_redis_start(&g_redis, g_aof), 0, "redis-server did not start");
  g_redis_started = 1;
  snprintf(g_log, sizeof g_log, "%s/kvu.log", g_redis.dir);
  snprintf(g_alog, sizeof g_alog, "%s/api.log", g_redis.dir);
  g_kvu = sc_test_start_kvu(&g_redis, NULL, g_log, &g_kport, WAIT_MS);
  cr_assert_gt(g_kvu, 0, "kv-updater not ready");
  spawn_api(NULL);
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

TestSuite(apiserver_outage, .init = setup, .fini = teardown, .timeout = 240);

/* ---- Redis helpers ------------------------------------------------------ */

static redisContext *conn(const char *password) {
  redisContext *c = sc_test_redis_connect(&g_redis);
  cr_assert_not_null(c, "connect to redis");
  if (password != NULL) {
    redisReply *r = redisCommand(c, "AUTH %s", password);
    cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS, "AUTH");
    freeReplyObject(r);
  }
  return c;
}

/* Commit directly with the commit script (as kv-updater would), publishing
 * the notification on channel. Returns the commit's seq. */
static long long commit_on(redisContext *c, const char *topic, const char *data, const char *channel) {
  sc_commit_cmd_t cmd;
  cr_assert_eq(sc_commit_argv(&cmd, 1, topic, strlen(topic), data, data ? strlen(data) : 0), 0);
  /* The notify channel is one of the script's arguments: swap it. */
  int swapped = 0;
  for (int i = 3; i < SC_COMMIT_ARGC; i++)
    if (cmd.argvlen[i] == strlen(SC_KEYS_NOTIFY) && memcmp(cmd.argv[i], SC_KEYS_NOTIFY, cmd.argvlen[i]) == 0) {
      cmd.argv[i] = channel;
      cmd.argvlen[i] = strlen(channel);
      swapped = 1;
    }
  cr_assert(swapped, "notify channel argument");
  redisReply *r = redisCommandArgv(c, SC_COMMIT_ARGC, cmd.argv, cmd.argvlen);
  cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 2, "commit script: %s",
            r && r->type == REDIS_REPLY_ERROR ? r->str : "?");
  cr_assert_eq(r->element[0]->integer, 1, "committed");
  long long seq = r->element[1]->integer;
  freeReplyObject(r);
  return seq;
}

static long long commit(const char *topic, const char *data) {
  redisContext *c = conn(NULL);
  long long seq = commit_on(c, topic, data, "statecast:notify");
  redisFree(c);
  return seq;
}

/* ---- streams that remember what they showed ---------------------------- */

typedef struct shown {
  char topic[64];
  char *data; /* NULL: deleted */
} shown_t;

typedef struct tracked {
  sc_sse_client_t *c;
  shown_t t[MAX_TOPICS];
  size_t n;
  int syncs, last_full;
  long long last_seq;
  char last_id[128]; /* what EventSource would send as Last-Event-ID */
} tracked_t;

static shown_t *slot(tracked_t *s, const char *topic) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->t[i].topic, topic) == 0) return &s->t[i];
  cr_assert_lt(s->n, MAX_TOPICS);
  shown_t *x = &s->t[s->n++];
  snprintf(x->topic, sizeof x->topic, "%s", topic);
  x->data = NULL;
  return x;
}

/* Apply one event to what the stream shows: data is the envelope's raw
 * bytes after "data": (byte-exact, as committed). */
static void track_event(tracked_t *s, const sc_sse_event_t *ev) {
  if (ev->id[0] != '\0') snprintf(s->last_id, sizeof s->last_id, "%s", ev->id);
  if (strcmp(ev->event, "sync") == 0) {
    s->syncs++;
    s->last_full = strstr(ev->data, "\"full\":true") != NULL;
    return;
  }
  int upd = strcmp(ev->event, "update") == 0;
  if (!upd && strcmp(ev->event, "delete") != 0) return;
  const char *tp = strstr(ev->data, "\"topic\":\"");
  cr_assert_not_null(tp, "envelope: %s", ev->data);
  tp += 9;
  const char *te = strchr(tp, '"');
  char topic[64];
  snprintf(topic, sizeof topic, "%.*s", (int)(te - tp), tp);
  const char *sq = strstr(ev->data, "\"seq\":");
  cr_assert_not_null(sq);
  long long seq = atoll(sq + 6);
  cr_assert_gt(seq, s->last_seq, "events arrive in seq order (%s)", ev->data);
  s->last_seq = seq;
  shown_t *x = slot(s, topic);
  free(x->data);
  x->data = NULL;
  if (upd) {
    const char *d = strstr(ev->data, ",\"data\":");
    cr_assert_not_null(d);
    d += 8;
    size_t l = strlen(d);
    cr_assert(l > 0 && d[l - 1] == '}');
    x->data = strndup(d, l - 1);
  }
}

static void track_open_path(tracked_t *s, const char *path, const char *last_id) {
  memset(s, 0, sizeof *s);
  s->c = sc_sse_connect(g_aport, path, last_id, 0, WAIT_MS);
  cr_assert_not_null(s->c);
  cr_assert_eq(sc_sse_status(s->c), 200);
}

static void track_open(tracked_t *s, const char *last_id) { track_open_path(s, "/events", last_id); }

static void track_close(tracked_t *s) {
  for (size_t i = 0; i < s->n; i++) free(s->t[i].data);
  sc_sse_close(s->c);
  s->c = NULL;
}

/* Read until the stream shows topic = data (data NULL: until a sync). The
 * stream must not end. Returns the number of heartbeat comments seen. */
static int track_until(tracked_t *s, const char *topic, const char *data) {
  int comments = 0;
  for (;;) {
    if (topic == NULL && s->syncs > 0) return comments;
    if (topic != NULL) {
      for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->t[i].topic, topic) == 0 && s->t[i].data != NULL && strcmp(s->t[i].data, data) == 0)
          return comments;
    }
    sc_sse_event_t ev;
    int r = sc_sse_next(s->c, &ev, WAIT_MS);
    cr_assert_eq(r, 1, "stream ended or went silent before %s=%s", topic ? topic : "sync", data ? data : "");
    if (ev.is_comment)
      comments++;
    else
      track_event(s, &ev);
    sc_sse_event_dispose(&ev);
  }
}

/* Read until the stream has passed seq (the stream must not end). */
static void track_until_seq(tracked_t *s, long long seq) {
  while (s->last_seq < seq) {
    sc_sse_event_t ev;
    int r = sc_sse_next(s->c, &ev, WAIT_MS);
    cr_assert_eq(r, 1, "stream ended or went silent before seq %lld", seq);
    if (!ev.is_comment) track_event(s, &ev);
    sc_sse_event_dispose(&ev);
  }
}

/* Read heartbeats until n comments arrived (the stream must stay open). */
static void expect_heartbeats(tracked_t *s, int n) {
  int got = 0;
  while (got < n) {
    sc_sse_event_t ev;
    int r = sc_sse_next(s->c, &ev, WAIT_MS);
    cr_assert_eq(r, 1, "stream ended while Redis is down");
    if (ev.is_comment)
      got++;
    else
      track_event(s, &ev);
    sc_sse_event_dispose(&ev);
  }
}

/* The checker: every indexed topic (only: just that one; NULL: all) shows
 * Redis's data, and nothing the stream shows as live is absent from Redis. */
static void check_matches_redis_for(tracked_t *s, const char *only) {
  redisContext *c = conn(NULL);
  redisReply *idx = redisCommand(c, "ZRANGE statecast:index 0 -1");
  cr_assert(idx != NULL && idx->type == REDIS_REPLY_ARRAY);
  for (size_t i = 0; i < idx->elements; i++) {
    const char *t = idx->element[i]->str;
    if (only != NULL && strcmp(t, only) != 0) continue;
    redisReply *d = redisCommand(c, "HGET state:{%s} data", t);
    cr_assert(d != NULL && d->type == REDIS_REPLY_STRING);
    shown_t *x = NULL;
    for (size_t j = 0; j < s->n; j++)
      if (strcmp(s->t[j].topic, t) == 0) x = &s->t[j];
    cr_assert_not_null(x, "stream never showed topic %s", t);
    cr_assert_not_null(x->data, "stream shows %s deleted", t);
    cr_assert_str_eq(x->data, d->str, "stale topic %s", t);
    freeReplyObject(d);
  }
  for (size_t j = 0; j < s->n; j++) {
    if (s->t[j].data == NULL) continue;
    int found = 0;
    for (size_t i = 0; i < idx->elements; i++) found |= strcmp(idx->element[i]->str, s->t[j].topic) == 0;
    cr_assert(found, "stream shows %s, which Redis does not have", s->t[j].topic);
  }
  freeReplyObject(idx);
  redisFree(c);
}

static void check_matches_redis(tracked_t *s) { check_matches_redis_for(s, NULL); }

static int metric(const char *name, long long *out) {
  char body[32768];
  if (sc_test_http(g_aport, "GET", "/metrics", body, sizeof body) != 200) return 0;
  char pat[160];
  snprintf(pat, sizeof pat, "\n%s ", name);
  const char *p = strstr(body, pat);
  if (p == NULL) return 0;
  *out = atoll(p + strlen(pat));
  return 1;
}

static int readyz_says_redis_down(void *arg) {
  (void)arg;
  char body[512];
  return sc_test_http(g_aport, "GET", "/readyz", body, sizeof body) == 503 && strstr(body, "redis down") != NULL;
}

/* ---- tests ------------------------------------------------------------- */

Test(apiserver_outage, streams_stay_open_and_new_clients_get_the_last_state_while_redis_is_down) {
  commit("a", "1");
  commit("b", "{\"v\":2}");
  tracked_t s1, s2;
  track_open(&s1, NULL);
  track_open(&s2, NULL);
  track_until(&s1, NULL, NULL);
  track_until(&s2, NULL, NULL);

  sc_test_redis_stop(&g_redis, 1);
  cr_assert(sc_test_wait(readyz_says_redis_down, NULL, WAIT_MS), "/readyz 503 \"redis down\"");
  long long up = -1, outages = -1;
  cr_assert(metric("statecast_api_redis_up", &up) && up == 0, "redis_up gauge 0");
  cr_assert(metric("statecast_api_redis_outages_total", &outages) && outages >= 1, "outage counted");
  expect_heartbeats(&s1, 2);
  expect_heartbeats(&s2, 2);

  /* A new client still gets the last known state, then sync. */
  tracked_t s3;
  track_open(&s3, NULL);
  track_until(&s3, NULL, NULL);
  cr_assert(s3.last_full);
  track_until(&s3, "a", "1"); /* the committed state: nothing changed while down */
  track_until(&s3, "b", "{\"v\":2}");
  char body[4096];
  cr_assert_eq(sc_test_http(g_aport, "GET", "/state", body, sizeof body), 200);
  cr_assert(strstr(body, "\"topic\":\"a\"") != NULL && strstr(body, "\"topic\":\"b\"") != NULL, "%s", body);
  track_close(&s3);

  cr_assert_eq(sc_test_redis_restart(&g_redis, g_aof), 0);
  cr_assert(sc_test_wait_http(g_aport, "/readyz", 200, WAIT_MS), "ready again");
  commit("a", "3");
  track_until(&s1, "a", "3");
  track_until(&s2, "a", "3");
  cr_assert_eq(s1.syncs, 1, "same connection, no second sync");
  cr_assert_eq(s2.syncs, 1, "same connection, no second sync");
  check_matches_redis(&s1);
  check_matches_redis(&s2);
  track_close(&s1);
  track_close(&s2);
}

Test(apiserver_outage, open_streams_get_commits_made_while_the_apiserver_was_disconnected) {
  commit("a", "1");
  commit("b", "2");
  tracked_t s1, s2;
  track_open(&s1, NULL);
  track_open(&s2, NULL);
  track_until(&s1, NULL, NULL);
  track_until(&s2, NULL, NULL);

  sc_test_redis_stop(&g_redis, 1);
  cr_assert(sc_test_wait(readyz_says_redis_down, NULL, WAIT_MS));
  /* Back with its data, but with a password the apiserver does not have:
   * it cannot reconnect until the commits below are done, so it must learn
   * of them by catching up. */
  const char *const locked[] = {"--appendonly", "yes", "--appendfsync", "always", "--requirepass", "pw", NULL};
  cr_assert_eq(sc_test_redis_restart(&g_redis, locked), 0);
  redisContext *c = conn("pw");
  redisReply *r = redisCommand(c, "GET statecast:seq");
  cr_assert(r != NULL && r->type == REDIS_REPLY_STRING && atoll(r->str) >= 2, "sequence survived the restart");
  freeReplyObject(r);
  commit_on(c, "a", "{\"while\":\"away\"}", "statecast:notify");
  commit_on(c, "c", "\"new topic\"", "statecast:notify");
  long long last = commit_on(c, "b", NULL, "statecast:notify");
  r = redisCommand(c, "CONFIG SET requirepass %s", "");
  freeReplyObject(r);
  redisFree(c);
  cr_assert(sc_test_wait_http(g_aport, "/readyz", 200, WAIT_MS), "ready again");

  track_until_seq(&s1, last);
  track_until_seq(&s2, last);
  cr_assert_eq(s1.syncs, 1, "same connection, no second sync");
  cr_assert_eq(s2.syncs, 1, "same connection, no second sync");
  check_matches_redis(&s1);
  check_matches_redis(&s2);
  long long n = 0;
  cr_assert(metric("statecast_api_catchups_total{reason=\"reconnect\"}", &n) && n >= 1, "a reconnect catch-up");
  track_close(&s1);
  track_close(&s2);
}

Test(apiserver_outage, a_missed_notification_is_caught_up_in_seq_order) {
  commit("a", "1");
  tracked_t s1;
  track_open(&s1, NULL);
  track_until(&s1, NULL, NULL);
  redisContext *c = conn(NULL);
  long long missed = commit_on(c, "m", "\"missed\"", "statecast:notify-nobody");
  long long next = commit_on(c, "a", "2", "statecast:notify");
  redisFree(c);
  cr_assert_eq(next, missed + 1);
  /* track_event asserts ascending seq, so m (caught up) must come before a=2. */
  track_until(&s1, "m", "\"missed\"");
  track_until(&s1, "a", "2");
  cr_assert_eq(s1.syncs, 1, "no reconnect");
  check_matches_redis(&s1);
  long long n = 0;
  cr_assert(metric("statecast_api_catchups_total{reason=\"gap\"}", &n) && n >= 1, "a gap catch-up");
  track_close(&s1);
}

Test(apiserver_outage, a_new_epoch_gives_every_client_the_new_full_state_only) {
  commit("old1", "1");
  commit("old2", "2");
  tracked_t s1;
  track_open(&s1, NULL);
  track_until(&s1, NULL, NULL);
  char id[128];
  snprintf(id, sizeof id, "%s", s1.last_id);
  cr_assert(id[0] != '\0', "the sync carries an id");
  redisContext *c = conn(NULL);
  redisReply *r = redisCommand(c, "FLUSHALL");
  freeReplyObject(r);
  commit_on(c, "new1", "\"n1\"", "statecast:notify");
  commit_on(c, "new2", "\"n2\"", "statecast:notify");
  redisFree(c);
  /* The old stream ends (it never shows a mix) ... */
  sc_sse_event_t ev;
  int rr;
  while ((rr = sc_sse_next(s1.c, &ev, WAIT_MS)) == 1) {
    if (!ev.is_comment) {
      cr_assert(strcmp(ev.event, "update") != 0 || strstr(ev.data, "\"topic\":\"new") == NULL,
                "no new-epoch event on an old-epoch stream: %s", ev.data);
      if (ev.id[0]) snprintf(id, sizeof id, "%s", ev.id);
    }
    sc_sse_event_dispose(&ev);
  }
  cr_assert_eq(rr, -1, "the old-epoch stream ends");
  track_close(&s1);
  /* ... and reconnecting with an old id gives the new full state only. */
  cr_assert(sc_test_wait_http(g_aport, "/readyz", 200, WAIT_MS));
  tracked_t s2;
  track_open(&s2, id);
  track_until(&s2, NULL, NULL);
  cr_assert(s2.last_full, "full:true after a new epoch");
  track_until(&s2, "new2", "\"n2\"");
  check_matches_redis(&s2);
  track_close(&s2);
}

static int backlog_drop_counted(void *arg) {
  (void)arg;
  long long n = 0;
  return metric("statecast_api_streams_dropped_total{reason=\"backlog\"}", &n) && n >= 1;
}

Test(apiserver_outage, a_stalled_reader_past_the_backlog_cap_is_cut_and_counted) {
  /* Restart the apiserver with a small cap (the stall timeout, 4 heartbeats
   * of 60 s, cannot fire first). */
  cr_assert_eq(WEXITSTATUS(sc_test_stop(g_api, SIGTERM, 15000)), 0);
  const char *const extra[] = {"--max-stream-backlog-bytes", "1048576", "--heartbeat-seconds", "60", NULL};
  spawn_api(extra);
  /* 24 MiB of state: more than the socket buffers of one loopback connection hold. */
  size_t big = 256 * 1024;
  char *data = malloc(big + 3);
  cr_assert_not_null(data);
  data[0] = '"';
  memset(data + 1, 'x', big);
  data[big + 1] = '"';
  data[big + 2] = '\0';
  redisContext *c = conn(NULL);
  char topic[32];
  long long last = 0;
  for (int i = 0; i < 96; i++) {
    snprintf(topic, sizeof topic, "big/%02d", i);
    last = commit_on(c, topic, data, "statecast:notify");
  }
  redisFree(c);
  free(data);
  long long seen = 0;
  while (!(metric("statecast_api_last_seq", &seen) && seen >= last)) usleep(20 * 1000);

  /* A client that asks for everything and never reads. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert(fd >= 0);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_aport)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  const char req[] = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
  cr_assert_eq(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));

  /* A healthy stream is not held up by it. */
  tracked_t s1;
  track_open_path(&s1, "/events?topic=small", NULL);
  track_until(&s1, NULL, NULL);
  cr_assert(sc_test_wait(backlog_drop_counted, NULL, 60000), "stalled stream cut for its backlog");
  commit("small", "1");
  track_until(&s1, "small", "1");
  check_matches_redis_for(&s1, "small");
  track_close(&s1);
  close(fd);
}
