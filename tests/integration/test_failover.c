/*
 * failover: the write path under faults, with real processes.
 *
 * Two statecast-kv-updaters share one redis-server (lease 1500 ms). The
 * publisher library publishes durably (statecast:inbox) and the test
 * records every accepted publish; a subscriber thread records every
 * notification on statecast:notify. Then faults: SIGKILL the leader
 * mid-storm, SIGSTOP it past its lease (a zombie), or run no kv-updater at
 * all. Each test ends with a checker:
 *   - every accepted publish is committed or superseded: for every topic
 *     Redis holds the LAST accepted publish (absent for a delete);
 *   - statecast:inbox is empty and its group has nothing pending;
 *   - per topic, committed states follow publish order (never backwards);
 *   - seq strictly increases over the notifications.
 * Every wait is a condition with a generous timeout; takeover times are
 * logged, not asserted.
 */
#include <criterion/criterion.h>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keys.h"
#include "statecast_publisher.h"
#include "support.h"

#define WAIT_MS 30000
#define NTOPICS 20
#define MAXPUB 4000
#define MAXNOTE 20000

static sc_test_redis_t g_redis;
static char g_url[64];

typedef struct kvu_proc {
  pid_t pid;
  int hport;
  char log[300];
} kvu_proc_t;
static kvu_proc_t g_kvu[2];

/* Accepted publishes, in publish order. n is the global publish number;
 * n < 0 marks a delete. */
typedef struct accepted {
  int topic;
  int n;
  char id[SC_PUBLISHER_ID_MAX];
} accepted_t;
static accepted_t g_acc[MAXPUB];
static int g_nacc;

/* Notifications, in arrival order. */
typedef struct note {
  long long seq;
  int topic;
  int n; /* from {"n":N}; -1 for a delete */
} note_t;
static note_t g_notes[MAXNOTE];
static int g_nnotes;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t g_thread;
static int g_thread_running;
static volatile int g_stop_thread;
static volatile int g_subscribed;

static void setup(void) {
  cr_assert_eq(sc_test_redis_start(&g_redis, NULL), 0, "redis-server did not start");
  sc_test_redis_url(&g_redis, g_url, sizeof g_url);
  memset(g_kvu, 0, sizeof g_kvu);
  g_nacc = g_nnotes = 0;
  g_stop_thread = 0;
  g_subscribed = 0;
}

static void teardown(void) {
  if (g_thread_running) {
    g_stop_thread = 1;
    pthread_join(g_thread, NULL);
    g_thread_running = 0;
  }
  for (int i = 0; i < 2; i++) {
    if (g_kvu[i].pid > 0) {
      kill(g_kvu[i].pid, SIGCONT);
      int st = sc_test_stop(g_kvu[i].pid, SIGTERM, 10000);
      g_kvu[i].pid = 0;
      if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) sc_test_dump(g_kvu[i].log);
      cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "kv-updater %d should exit 0 on SIGTERM (status %d)", i, st);
    }
  }
  sc_test_redis_stop(&g_redis, 0);
}

TestSuite(failover, .init = setup, .fini = teardown, .timeout = 180);

static void start_kvu(int i) {
  char *bin = sc_test_bin("statecast-kv-updater");
  char listen[64];
  g_kvu[i].hport = sc_test_free_port();
  snprintf(listen, sizeof listen, "127.0.0.1:%d", g_kvu[i].hport);
  snprintf(g_kvu[i].log, sizeof g_kvu[i].log, "%s/kvu%d.log", g_redis.dir, i);
  char *const argv[] = {bin, "--redis-url", g_url, "--health-listen", listen, "--lease-ms", "1500", NULL};
  g_kvu[i].pid = sc_test_spawn(bin, argv, NULL, g_kvu[i].log);
  free(bin);
  cr_assert_gt(g_kvu[i].pid, 0);
  if (!sc_test_wait_http(g_kvu[i].hport, "/readyz", 200, WAIT_MS)) {
    sc_test_dump(g_kvu[i].log);
    cr_assert_fail("kv-updater %d never became ready", i);
  }
}

/* Value of a metric line "name value" (first match), or -1. */
static long long metric(int i, const char *name) {
  static char body[16384];
  if (g_kvu[i].pid <= 0) return -1;
  if (sc_test_http(g_kvu[i].hport, "GET", "/metrics", body, sizeof body) != 200) return -1;
  size_t nl = strlen(name);
  for (const char *p = body; (p = strstr(p, name)) != NULL; p += nl) {
    if ((p == body || p[-1] == '\n') && p[nl] == ' ') return strtoll(p + nl + 1, NULL, 10);
  }
  return -1;
}

/* Does kv-updater i's log contain needle? */
static int log_has(int i, const char *needle) {
  FILE *f = fopen(g_kvu[i].log, "r");
  if (f == NULL) return 0;
  char line[2048];
  int found = 0;
  while (!found && fgets(line, sizeof line, f) != NULL) found = strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

static int is_leader(int i) { return metric(i, "statecast_kvu_leader") == 1; }

typedef struct leader_arg {
  int i;
} leader_arg_t;

static int pred_leader(void *arg) { return is_leader(((leader_arg_t *)arg)->i); }

static void wait_leader(int i) {
  leader_arg_t a = {i};
  if (!sc_test_wait(pred_leader, &a, WAIT_MS)) {
    sc_test_dump(g_kvu[0].log);
    sc_test_dump(g_kvu[1].log);
    cr_assert_fail("kv-updater %d never became leader", i);
  }
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the notification recorder ---- */

static void *record_notes(void *arg) {
  (void)arg;
  redisContext *sub = sc_test_redis_connect(&g_redis);
  if (sub == NULL) return NULL;
  redisReply *r = redisCommand(sub, "SUBSCRIBE %s", SC_KEYS_NOTIFY);
  if (r != NULL) freeReplyObject(r);
  redisSetTimeout(sub, (struct timeval){0, 200000});
  g_subscribed = 1;
  while (!g_stop_thread) {
    r = NULL;
    if (redisGetReply(sub, (void **)&r) != REDIS_OK || r == NULL) {
      if (sub->err == REDIS_ERR_IO) {
        /* A read timeout poisons a hiredis context; nothing is lost as long
         * as we re-subscribe before the next commit, so the recorder only
         * times out while nothing is being committed. */
        redisFree(sub);
        sub = sc_test_redis_connect(&g_redis);
        if (sub == NULL) return NULL;
        r = redisCommand(sub, "SUBSCRIBE %s", SC_KEYS_NOTIFY);
        if (r != NULL) freeReplyObject(r);
        redisSetTimeout(sub, (struct timeval){0, 200000});
      }
      continue;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING) {
      char kind, epoch[64], topic[64];
      long long seq, ts;
      int off = 0;
      const char *m = r->element[2]->str;
      if (sscanf(m, "%c %63s %lld %lld %63s %n", &kind, epoch, &seq, &ts, topic, &off) >= 5) {
        note_t n = {seq, atoi(topic + 1), -1};
        if (kind == 'u') {
          const char *d = strstr(m + off, "\"n\":");
          n.n = d != NULL ? atoi(d + 4) : -2;
        }
        pthread_mutex_lock(&g_lock);
        if (g_nnotes < MAXNOTE) g_notes[g_nnotes++] = n;
        pthread_mutex_unlock(&g_lock);
      }
    }
    freeReplyObject(r);
  }
  redisFree(sub);
  return NULL;
}

static int pred_subscribed(void *arg) {
  (void)arg;
  return g_subscribed;
}

static void start_recorder(void) {
  cr_assert_eq(pthread_create(&g_thread, NULL, record_notes, NULL), 0);
  g_thread_running = 1;
  cr_assert(sc_test_wait(pred_subscribed, NULL, WAIT_MS));
}

/* ---- publishing ---- */

/* Publish {"n":n} (or null when del) to topic "t<topic>" durably; record it when accepted. */
static int publish(sc_publisher_t *p, int topic, int n, int del) {
  char t[16], body[64];
  snprintf(t, sizeof t, "t%d", topic);
  if (del) snprintf(body, sizeof body, "null");
  else snprintf(body, sizeof body, "{\"n\":%d}", n);
  char id[SC_PUBLISHER_ID_MAX];
  int rc = sc_publisher_publish_durable(p, t, strlen(t), body, strlen(body), id, NULL);
  if (rc == 0 && g_nacc < MAXPUB) {
    accepted_t *a = &g_acc[g_nacc++];
    a->topic = topic;
    a->n = del ? -n : n;
    memcpy(a->id, id, sizeof id);
  }
  return rc;
}

/* ---- the checker ---- */

static redisContext *g_check;

/* Has Redis converged to the last accepted publish of every topic, with an
 * empty inbox and nothing pending? */
static int pred_converged(void *arg) {
  (void)arg;
  int last[NTOPICS];
  for (int t = 0; t < NTOPICS; t++) last[t] = 0;
  for (int i = 0; i < g_nacc; i++) last[g_acc[i].topic] = g_acc[i].n;
  for (int t = 0; t < NTOPICS; t++) {
    if (last[t] == 0) continue;
    redisReply *r = redisCommand(g_check, "HGET state:{t%d} data", t);
    if (r == NULL) return 0;
    int ok;
    if (last[t] < 0) {
      ok = r->type == REDIS_REPLY_NIL;
    } else {
      char want[64];
      snprintf(want, sizeof want, "{\"n\":%d}", last[t]);
      ok = r->type == REDIS_REPLY_STRING && strcmp(r->str, want) == 0;
    }
    freeReplyObject(r);
    if (!ok) return 0;
  }
  redisReply *r = redisCommand(g_check, "XLEN %s", SC_KEYS_INBOX);
  int ok = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 0;
  if (r != NULL) freeReplyObject(r);
  if (!ok) return 0;
  r = redisCommand(g_check, "XPENDING %s %s", SC_KEYS_INBOX, SC_KEYS_INBOX_GROUP);
  ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->integer == 0;
  if (r != NULL) freeReplyObject(r);
  return ok;
}

static void check_converged(void) {
  g_check = sc_test_redis_connect(&g_redis);
  cr_assert_not_null(g_check);
  if (!sc_test_wait(pred_converged, NULL, WAIT_MS)) {
    sc_test_dump(g_kvu[0].log);
    sc_test_dump(g_kvu[1].log);
    redisReply *r = redisCommand(g_check, "XLEN %s", SC_KEYS_INBOX);
    long long len = r->integer;
    freeReplyObject(r);
    redisFree(g_check);
    cr_assert_fail("Redis never converged to the last accepted publishes (inbox length %lld)", len);
  }
  redisFree(g_check);
  g_check = NULL;
}

/* Notifications never go backwards per topic; seq strictly increases. The
 * last notification of each topic is its last accepted publish. */
static void check_notes(void) {
  /* The recorder may still be reading the last few notifications. */
  usleep(500 * 1000);
  pthread_mutex_lock(&g_lock);
  int last_n[NTOPICS];
  for (int t = 0; t < NTOPICS; t++) last_n[t] = 0;
  long long last_seq = 0;
  int bad_seq = -1, bad_order = -1;
  for (int i = 0; i < g_nnotes; i++) {
    const note_t *n = &g_notes[i];
    if (n->seq <= last_seq && bad_seq < 0) bad_seq = i;
    last_seq = n->seq;
    if (n->topic < 0 || n->topic >= NTOPICS) continue;
    if (n->n > 0) {
      if (n->n <= last_n[n->topic] && bad_order < 0) bad_order = i;
      last_n[n->topic] = n->n;
    }
  }
  int nnotes = g_nnotes;
  pthread_mutex_unlock(&g_lock);
  cr_assert_gt(nnotes, 0, "no notifications recorded");
  cr_assert_lt(bad_seq, 0, "seq went backwards at notification %d", bad_seq);
  cr_assert_lt(bad_order, 0, "a topic's committed state went backwards at notification %d", bad_order);
}

/* ---- tests ---- */

Test(failover, exactly_one_kv_updater_leads_and_a_standby_takes_over_after_sigkill_mid_storm) {
  start_kvu(0);
  wait_leader(0);
  start_kvu(1);
  /* Give the standby several lease attempts: it must stay standby. */
  usleep(1000 * 1000);
  cr_assert(is_leader(0), "the first kv-updater should still lead");
  cr_assert_eq(metric(1, "statecast_kvu_leader"), 0, "the second one must stand by");
  start_recorder();

  sc_publisher_t *p = NULL;
  cr_assert_eq(sc_publisher_new(&p, g_url, NULL), 0);
  const int total = 3000, kill_at = 1000;
  long long killed_at = 0, took_over = 0;
  for (int i = 1; i <= total; i++) {
    int del = i % 97 == 0;
    int rc = publish(p, i % NTOPICS, i, del);
    cr_assert_eq(rc, 0, "publish %d: %s", i, sc_publisher_last_error(p));
    if (i == kill_at) {
      sc_test_stop(g_kvu[0].pid, SIGKILL, 5000);
      g_kvu[0].pid = 0;
      killed_at = now_ms();
    }
    if (killed_at != 0 && took_over == 0 && i % 50 == 0 && is_leader(1)) took_over = now_ms();
    usleep(1000);
  }
  sc_publisher_free(p);
  wait_leader(1);
  if (took_over == 0) took_over = now_ms();
  cr_log_info("standby took over %lld ms after the leader was killed (lease 1500 ms)", took_over - killed_at);
  check_converged();
  check_notes();
  cr_assert_eq(g_nacc, total);
  cr_assert_gt(metric(1, "statecast_kvu_stream_committed_total"), 0);
  cr_assert(log_has(1, "became the leader"));
}

Test(failover, a_publish_with_no_kv_updater_is_accepted_and_committed_when_one_starts) {
  char *bin = sc_test_bin("statecast-publisher");
  char *const argv[] = {bin, "--redis-url", g_url, "t1", "{\"n\":7}", NULL};
  char out[4096], err[4096];
  int code = sc_test_run(bin, argv, NULL, NULL, out, sizeof out, err, sizeof err);
  free(bin);
  cr_assert_eq(code, 4, "exit %d, stderr: %s", code, err);
  cr_assert_neq(strstr(err, "no kv-updater is running right now, it will be committed when one starts"), NULL,
                "stderr: %s", err);
  /* The library says the same, with the entry id. */
  sc_publisher_t *p = NULL;
  cr_assert_eq(sc_publisher_new(&p, g_url, NULL), 0);
  char id[SC_PUBLISHER_ID_MAX];
  int running = -1;
  cr_assert_eq(sc_publisher_publish_durable(p, "t2", 2, "{\"n\":8}", 7, id, &running), 0);
  cr_assert_eq(running, 0);
  cr_assert_neq(strchr(id, '-'), NULL, "entry id %s", id);
  g_acc[g_nacc++] = (accepted_t){1, 7, ""};
  g_acc[g_nacc++] = (accepted_t){2, 8, ""};

  redisContext *c = sc_test_redis_connect(&g_redis);
  redisReply *r = redisCommand(c, "EXISTS state:{t1}");
  cr_assert_eq(r->integer, 0, "nothing is committed without a kv-updater");
  freeReplyObject(r);
  redisFree(c);

  start_kvu(0);
  check_converged();
  /* With a kv-updater running, the CLI exits 0. */
  cr_assert_eq(sc_publisher_publish_durable(p, "t2", 2, "{\"n\":9}", 7, id, &running), 0);
  cr_assert_eq(running, 1);
  g_acc[g_nacc++] = (accepted_t){2, 9, ""};
  check_converged();
  sc_publisher_free(p);
}

Test(failover, a_paused_leader_is_fenced_after_a_standby_takes_over) {
  start_kvu(0);
  wait_leader(0);
  start_kvu(1);
  start_recorder();
  sc_publisher_t *p = NULL;
  cr_assert_eq(sc_publisher_new(&p, g_url, NULL), 0);
  int n = 1;
  for (; n <= 200; n++) cr_assert_eq(publish(p, n % NTOPICS, n, 0), 0);
  check_converged();
  long long before = metric(0, "statecast_kvu_messages_committed_total");
  cr_assert_gt(before, 0);

  /* Pause the leader well past its lease; publish meanwhile (some of it is
   * delivered to the paused consumer and must be claimed by the new one). */
  cr_assert_eq(kill(g_kvu[0].pid, SIGSTOP), 0);
  long long stopped_at = now_ms();
  for (; n <= 400; n++) {
    cr_assert_eq(publish(p, n % NTOPICS, n, 0), 0);
    usleep(5000);
  }
  wait_leader(1);
  cr_log_info("standby took over %lld ms after the leader was paused", now_ms() - stopped_at);
  cr_assert_eq(kill(g_kvu[0].pid, SIGCONT), 0);
  for (; n <= 600; n++) {
    cr_assert_eq(publish(p, n % NTOPICS, n, 0), 0);
    usleep(2000);
  }
  sc_publisher_free(p);
  check_converged();
  check_notes();
  cr_assert_eq(metric(0, "statecast_kvu_leader"), 0, "the resumed kv-updater must not lead");
  cr_assert(log_has(0, "stepping down as leader"), "the resumed kv-updater should say it stepped down");
  if (log_has(1, "claimed "))
    cr_log_info("the new leader claimed entries left pending (e.g. handed to the paused one)");
  cr_assert_eq(metric(0, "statecast_kvu_messages_committed_total"), before,
               "the resumed kv-updater committed something after losing its lease");
  cr_assert(is_leader(1));
}

static int pred_notes_at_least(void *arg) {
  int want = *(int *)arg;
  pthread_mutex_lock(&g_lock);
  int n = g_nnotes;
  pthread_mutex_unlock(&g_lock);
  return n >= want;
}

Test(failover, a_raw_publish_is_committed_once_by_the_leader_and_ignored_by_the_standby) {
  start_kvu(0);
  wait_leader(0);
  start_kvu(1);
  start_recorder();
  redisContext *c = sc_test_redis_connect(&g_redis);
  cr_assert_not_null(c);
  const int total = 50;
  for (int i = 1; i <= total; i++) {
    redisReply *r = redisCommand(c, "PUBLISH update:{t3} {\"n\":%d}", i);
    cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
    cr_assert_eq(r->integer, 2, "both kv-updaters are subscribed");
    freeReplyObject(r);
  }
  redisFree(c);
  g_acc[g_nacc++] = (accepted_t){3, total, ""};
  check_converged();
  int want = total;
  cr_assert(sc_test_wait(pred_notes_at_least, &want, WAIT_MS));
  usleep(300 * 1000);
  pthread_mutex_lock(&g_lock);
  int n = g_nnotes;
  pthread_mutex_unlock(&g_lock);
  cr_assert_eq(n, total, "each message committed exactly once (%d notifications)", n);
  check_notes();
  cr_assert_eq(metric(1, "statecast_kvu_standby_ignored_total"), total);
  cr_assert_eq(metric(1, "statecast_kvu_messages_committed_total"), 0);
}

Test(failover, a_leader_stopped_with_sigterm_hands_over_at_once) {
  start_kvu(0);
  wait_leader(0);
  start_kvu(1);
  int st = sc_test_stop(g_kvu[0].pid, SIGTERM, 10000);
  g_kvu[0].pid = 0;
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
  /* The lease was released: the standby takes it on its next attempt
   * (every lease_ms/5), far sooner than the lease would expire. */
  long long t0 = now_ms();
  wait_leader(1);
  cr_log_info("standby took over %lld ms after the leader's SIGTERM", now_ms() - t0);
  sc_publisher_t *p = NULL;
  cr_assert_eq(sc_publisher_new(&p, g_url, NULL), 0);
  for (int n = 1; n <= 100; n++) cr_assert_eq(publish(p, n % NTOPICS, n, 0), 0);
  sc_publisher_free(p);
  check_converged();
}
