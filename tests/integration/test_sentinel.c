/*
 * sentinel: primary discovery through a real redis-sentinel and a real
 * failover. A primary, a replica (--replicaof) and one sentinel (quorum 1)
 * run on loopback; kv-updater finds the primary through the sentinel,
 * commits, then the primary is SIGKILLed, the sentinel promotes the
 * replica, and kv-updater must follow without a restart.
 */
#include <criterion/criterion.h>

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "sentinel.h"
#include "support.h"

#define WAIT_MS 30000

static sc_test_redis_t g_primary, g_replica;
static pid_t g_sentinel = -1, g_kvu = -1;
static int g_sport;
static char g_sdir[256];
static char g_log[300];

static redisContext *connect_port(int port) {
  struct timeval tv = {2, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (c != NULL && c->err != 0) {
    redisFree(c);
    return NULL;
  }
  if (c != NULL) redisSetTimeout(c, tv);
  return c;
}

/* The master port the sentinel names now, or -1. */
static int sentinel_master_port(void) {
  redisContext *c = connect_port(g_sport);
  if (c == NULL) return -1;
  redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name statecast");
  int port = -1;
  if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2) port = atoi(r->element[1]->str);
  if (r != NULL) freeReplyObject(r);
  redisFree(c);
  return port;
}

/* 1 when the sentinel knows the replica and the replica's link is up. */
static int replica_known(void *arg) {
  (void)arg;
  int ok = 0;
  redisContext *c = connect_port(g_sport);
  if (c == NULL) return 0;
  redisReply *r = redisCommand(c, "SENTINEL replicas statecast");
  if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 1) ok = 1;
  if (r != NULL) freeReplyObject(r);
  redisFree(c);
  if (!ok) return 0;
  c = connect_port(g_replica.port);
  if (c == NULL) return 0;
  r = redisCommand(c, "INFO replication");
  ok = r != NULL && r->type == REDIS_REPLY_STRING && strstr(r->str, "master_link_status:up") != NULL;
  if (r != NULL) freeReplyObject(r);
  redisFree(c);
  return ok;
}

static int replica_promoted(void *arg) {
  (void)arg;
  if (sentinel_master_port() != g_replica.port) return 0;
  redisContext *c = connect_port(g_replica.port);
  if (c == NULL) return 0;
  redisReply *r = redisCommand(c, "ROLE");
  int ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && strcmp(r->element[0]->str, "master") == 0;
  if (r != NULL) freeReplyObject(r);
  redisFree(c);
  return ok;
}

static void start_sentinel(int master_port) {
  snprintf(g_sdir, sizeof g_sdir, "/tmp/sc-sentinel-XXXXXX");
  cr_assert_not_null(mkdtemp(g_sdir));
  g_sport = sc_test_free_port();
  char conf[300], log[300];
  snprintf(conf, sizeof conf, "%s/sentinel.conf", g_sdir);
  snprintf(log, sizeof log, "%s/sentinel.log", g_sdir);
  FILE *f = fopen(conf, "w");
  cr_assert_not_null(f);
  fprintf(f,
          "port %d\nbind 127.0.0.1\ndir %s\n"
          "sentinel monitor statecast 127.0.0.1 %d 1\n"
          "sentinel down-after-milliseconds statecast 1000\n"
          "sentinel failover-timeout statecast 3000\n"
          "sentinel parallel-syncs statecast 1\n",
          g_sport, g_sdir, master_port);
  fclose(f);
  char *const argv[] = {"redis-sentinel", conf, NULL};
  g_sentinel = sc_test_spawn("/usr/bin/redis-sentinel", argv, NULL, log);
  cr_assert_gt(g_sentinel, 0);
}

static void setup(void) {
  snprintf(g_log, sizeof g_log, "/tmp/sc-sentinel-kvu-%d.log", (int)getpid());
  unlink(g_log);
  cr_assert_eq(sc_test_redis_start(&g_primary, NULL), 0, "primary did not start");
  char port[16];
  snprintf(port, sizeof port, "%d", g_primary.port);
  const char *const extra[] = {"--replicaof", "127.0.0.1", port, NULL};
  cr_assert_eq(sc_test_redis_start(&g_replica, extra), 0, "replica did not start");
  start_sentinel(g_primary.port);
  if (!sc_test_wait(replica_known, NULL, WAIT_MS)) {
    char log[300];
    snprintf(log, sizeof log, "%s/sentinel.log", g_sdir);
    sc_test_dump(log);
    cr_assert_fail("the sentinel never saw the replica in sync");
  }
}

static void teardown(void) {
  if (g_kvu > 0) sc_test_stop(g_kvu, SIGTERM, 10000);
  g_kvu = -1;
  if (g_sentinel > 0) sc_test_stop(g_sentinel, SIGTERM, 5000);
  g_sentinel = -1;
  sc_test_redis_stop(&g_replica, 0);
  sc_test_redis_stop(&g_primary, 0);
  if (g_sdir[0] != '\0') {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_sdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_sdir);
  }
  unlink(g_log);
}

/* Is topic committed (state:{topic} data == want) on the node at port? */
static int committed_on(int port, const char *topic, const char *want) {
  redisContext *c = connect_port(port);
  if (c == NULL) return 0;
  redisReply *r = redisCommand(c, "HGET state:{%s} data", topic);
  int ok = r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, want) == 0;
  if (r != NULL) freeReplyObject(r);
  redisFree(c);
  return ok;
}

/* PUBLISH (again and again: pub/sub drops messages nobody subscribes to yet)
 * until the topic is committed on the node at port. */
static int publish_until_committed(int port, const char *topic, const char *json) {
  for (int waited = 0; waited < WAIT_MS; waited += 250) {
    redisContext *c = connect_port(port);
    if (c != NULL) {
      redisReply *r = redisCommand(c, "PUBLISH update:{%s} %s", topic, json);
      if (r != NULL) freeReplyObject(r);
      redisFree(c);
    }
    usleep(250 * 1000);
    if (committed_on(port, topic, json)) return 1;
  }
  return 0;
}

TestSuite(sentinel, .init = setup, .fini = teardown, .timeout = 90);

Test(sentinel, kv_updater_follows_a_failover_without_a_restart) {
  char *bin = sc_test_bin("statecast-kv-updater");
  char sentinels[64], hl[64];
  snprintf(sentinels, sizeof sentinels, "127.0.0.1:%d", g_sport);
  int hport = sc_test_free_port();
  snprintf(hl, sizeof hl, "127.0.0.1:%d", hport);
  /* The URL's port is deliberately wrong: only the sentinel knows the primary. */
  char *const argv[] = {bin, "--redis-url", "redis://127.0.0.1:1", "--redis-sentinels", sentinels,
                        "--redis-master-name", "statecast", "--health-listen", hl, NULL};
  g_kvu = sc_test_spawn(bin, argv, NULL, g_log);
  free(bin);
  cr_assert_gt(g_kvu, 0);
  if (!sc_test_wait_http(hport, "/readyz", 200, WAIT_MS)) {
    sc_test_dump(g_log);
    cr_assert_fail("kv-updater never became ready through the sentinel");
  }
  cr_assert(publish_until_committed(g_primary.port, "ha/before", "{\"n\":1}"), "commit on the first primary");

  /* SIGKILL the primary: the sentinel must promote the replica. */
  sc_test_stop(g_primary.pid, SIGKILL, 5000);
  g_primary.pid = 0;
  if (!sc_test_wait(replica_promoted, NULL, WAIT_MS)) {
    char log[300];
    snprintf(log, sizeof log, "%s/sentinel.log", g_sdir);
    sc_test_dump(log);
    cr_assert_fail("the sentinel did not promote the replica");
  }
  if (!publish_until_committed(g_replica.port, "ha/after", "{\"n\":2}")) {
    sc_test_dump(g_log);
    cr_assert_fail("kv-updater did not commit on the new primary");
  }
  /* The replicated state survived and the new commit continued from it. */
  cr_assert(committed_on(g_replica.port, "ha/before", "{\"n\":1}"));

  /* The blocking users find the new primary too: the publisher CLI publishes
   * to it, and statecast-snapshot saves from it. */
  char *pub = sc_test_bin("statecast-publisher");
  char *const pargv[] = {pub, "--redis-url", "redis://127.0.0.1:1", "--redis-sentinels", sentinels,
                         "ha/cli", "{\"n\":3}", NULL};
  char out[4096], err[4096];
  int code = sc_test_run(pub, pargv, NULL, NULL, out, sizeof out, err, sizeof err);
  free(pub);
  cr_assert_eq(code, 0, "statecast-publisher through the sentinel: %s", err);
  for (int waited = 0; waited < WAIT_MS && !committed_on(g_replica.port, "ha/cli", "{\"n\":3}"); waited += 100)
    usleep(100 * 1000);
  cr_assert(committed_on(g_replica.port, "ha/cli", "{\"n\":3}"), "the CLI's publish was not committed");
  char *snap = sc_test_bin("statecast-snapshot");
  char *const sargv[] = {snap, "save", "--redis-url", "redis://127.0.0.1:1", "--redis-sentinels", sentinels, NULL};
  static char sout[1 << 16];
  code = sc_test_run(snap, sargv, NULL, NULL, sout, sizeof sout, err, sizeof err);
  free(snap);
  cr_assert_eq(code, 0, "statecast-snapshot save through the sentinel: %s", err);
  cr_assert(strstr(sout, "ha/before") != NULL && strstr(sout, "ha/cli") != NULL, "snapshot: %.300s", sout);
  int st = sc_test_stop(g_kvu, SIGTERM, 10000);
  g_kvu = -1;
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "kv-updater should exit 0 (status %d)", st);
}

Test(sentinel, resolve_names_the_primary_and_rejects_unknown_masters) {
  char list[64], err[400];
  char *host = NULL;
  int port = 0;
  /* A dead sentinel first: the next one in the list answers. */
  snprintf(list, sizeof list, "127.0.0.1:%d, 127.0.0.1:%d", sc_test_free_port(), g_sport);
  cr_assert_eq(sc_sentinel_resolve(list, "statecast", 1000, &host, &port, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(host, "127.0.0.1");
  cr_assert_eq(port, g_primary.port);
  free(host);
  cr_assert_eq(sc_sentinel_resolve(list, "nosuchmaster", 1000, &host, &port, err, sizeof err), SC_ENOENT);
  cr_assert_null(host);
  cr_assert(strstr(err, "nosuchmaster") != NULL, "%s", err);
}

Test(sentinel, list_check_names_the_bad_entry) {
  char err[200];
  cr_assert_eq(sc_sentinel_list_check("127.0.0.1:26379,[::1]:26380", err, sizeof err), 0, "%s", err);
  cr_assert_eq(sc_sentinel_list_check("127.0.0.1", err, sizeof err), SC_EINVAL);
  cr_assert(strstr(err, "127.0.0.1") != NULL, "%s", err);
  cr_assert_eq(sc_sentinel_list_check("a:1,,b:2", err, sizeof err), SC_EINVAL);
  cr_assert_eq(sc_sentinel_list_check("a:0", err, sizeof err), SC_EINVAL);
  cr_assert_eq(sc_sentinel_list_check("a:99999", err, sizeof err), SC_EINVAL);
  cr_assert_eq(sc_sentinel_list_check("", err, sizeof err), SC_EINVAL);
}
