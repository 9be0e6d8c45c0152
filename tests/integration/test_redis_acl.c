/*
 * Least privilege: every component runs as its own Redis ACL user with the
 * rules docs/security.md gives (kept identical here), and the whole flow
 * still works: statecast-publisher (durable XADD and --pubsub PUBLISH) ->
 * statecast-kv-updater -> statecast-apiserver (/state, SSE, POST /publish).
 * And each user is refused what it has no business doing.
 */
#include <criterion/criterion.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

#define WAIT_MS 15000

/* The ACL rules of docs/security.md ("Redis ACL users"). */
static const char *const acl_api[] = {"ACL", "SETUSER", "statecast-apiserver", "reset", "on", ">api-pass",
                                      "%R~state:*", "%R~statecast:*", "~statecast:inbox", "&statecast:notify",
                                      "+@connection", "+role", "+get", "+hget", "+hmget", "+zrange", "+zscore",
                                      "+multi", "+exec", "+subscribe", "+unsubscribe", "+xadd", "+xrange", NULL};
static const char *const acl_kvu[] = {"ACL", "SETUSER", "statecast-kv-updater", "reset", "on", ">kvu-pass",
                                      "~state:*", "~statecast:*", "&update:{*}", "&statecast:notify",
                                      "+@connection", "+role", "+@read", "+@write", "+@stream", "+@pubsub",
                                      "+@transaction", "+eval", "+evalsha", "+script|load", "+time", "-@dangerous", "+role",
                                      NULL};
static const char *const acl_pub[] = {"ACL", "SETUSER", "statecast-publisher", "reset", "on", ">pub-pass",
                                      "resetkeys", "~statecast:inbox", "&update:{*}", "+@connection", "+role",
                                      "+xadd", "+publish", NULL};

static const char *const acl_snap[] = {"ACL", "SETUSER", "statecast-snapshot-ro", "reset", "on", ">snap-pass",
                                       "%R~state:*", "%R~statecast:*", "+@connection", "+role", "+eval_ro", "+eval",
                                       "+zrange", "+hmget", "+get", NULL};

static const char secret[] = "acl-test-secret-0123456789-0123456789-abcdef";
static sc_test_redis_t g_redis;
static pid_t g_kvu = -1, g_api = -1;
static int g_kport, g_aport;
static char g_klog[300], g_alog[300];

static void run_argv(redisContext *c, const char *const *argv) {
  int n = 0;
  while (argv[n] != NULL) n++;
  redisReply *r = redisCommandArgv(c, n, (const char **)argv, NULL);
  cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS, "%s %s: %s", argv[0], argv[2], r ? r->str : c->errstr);
  freeReplyObject(r);
}

static void url_for(char *buf, size_t cap, const char *user, const char *pass) {
  snprintf(buf, cap, "redis://%s:%s@127.0.0.1:%d", user, pass, g_redis.port);
}

static void setup(void) {
  cr_assert_eq(sc_test_redis_start(&g_redis, NULL), 0);
  redisContext *c = sc_test_redis_connect(&g_redis);
  run_argv(c, acl_api);
  run_argv(c, acl_kvu);
  run_argv(c, acl_pub);
  run_argv(c, acl_snap);
  redisFree(c);
  snprintf(g_klog, sizeof g_klog, "%s/kvu.log", g_redis.dir);
  snprintf(g_alog, sizeof g_alog, "%s/api.log", g_redis.dir);
}

static void teardown(void) {
  if (g_api > 0) sc_test_stop(g_api, SIGTERM, 15000);
  if (g_kvu > 0) sc_test_stop(g_kvu, SIGTERM, 10000);
  g_api = g_kvu = -1;
  sc_test_redis_stop(&g_redis, 0);
}

static void b64url(const unsigned char *in, size_t len, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < len ? in[i + 2] : 0);
    out[o++] = tab[v >> 18 & 63];
    out[o++] = tab[v >> 12 & 63];
    if (i + 1 < len) out[o++] = tab[v >> 6 & 63];
    if (i + 2 < len) out[o++] = tab[v & 63];
  }
  out[o] = '\0';
}

static int http_ok(void *arg) {
  char body[8192];
  return sc_test_http(g_aport, "GET", (const char *)arg, body, sizeof body) == 200 && strstr(body, "\"v\":2") != NULL;
}

/* The redis reply of one command as user (NULL: connection failure). */
static redisReply *as_user(const char *user, const char *pass, const char *fmt, const char *arg) {
  redisContext *c = redisConnect("127.0.0.1", g_redis.port);
  redisReply *a = redisCommand(c, "AUTH %s %s", user, pass);
  cr_assert(a != NULL && a->type == REDIS_REPLY_STATUS, "AUTH %s failed", user);
  freeReplyObject(a);
  redisReply *r = redisCommand(c, fmt, arg);
  redisFree(c);
  return r;
}

static void expect_noperm(const char *user, const char *pass, const char *fmt, const char *arg) {
  redisReply *r = as_user(user, pass, fmt, arg);
  cr_assert(r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOPERM", 6) == 0,
            "%s should be refused: %s", user, r ? (r->type == REDIS_REPLY_ERROR ? r->str : "(allowed)") : "?");
  freeReplyObject(r);
}

TestSuite(redis_acl, .init = setup, .fini = teardown, .timeout = 120);

Test(redis_acl, every_component_works_with_its_restricted_user_and_nothing_more) {
  char url[256], listen[64];
  /* kv-updater */
  url_for(url, sizeof url, "statecast-kv-updater", "kvu-pass");
  g_kport = sc_test_free_port();
  snprintf(listen, sizeof listen, "127.0.0.1:%d", g_kport);
  char *kbin = sc_test_bin("statecast-kv-updater");
  char *kargv[] = {kbin, "--redis-url", url, "--health-listen", listen, NULL};
  g_kvu = sc_test_spawn(kbin, kargv, NULL, g_klog);
  free(kbin);
  if (!sc_test_wait_http(g_kport, "/readyz", 200, WAIT_MS)) sc_test_dump(g_klog);
  cr_assert(sc_test_wait_http(g_kport, "/readyz", 200, 100), "kv-updater not ready as its ACL user");
  /* apiserver: user in the URL, password from a secret file (overrides the URL's). */
  char pwfile[400], secfile[400];
  snprintf(pwfile, sizeof pwfile, "%s/api.pw", g_redis.dir);
  snprintf(secfile, sizeof secfile, "%s/jwt.secret", g_redis.dir);
  FILE *f = fopen(pwfile, "w");
  fputs("api-pass\n", f);
  fclose(f);
  f = fopen(secfile, "w");
  fputs(secret, f);
  fclose(f);
  url_for(url, sizeof url, "statecast-apiserver", "wrong-password");
  g_aport = sc_test_free_port();
  snprintf(listen, sizeof listen, "127.0.0.1:%d", g_aport);
  char *abin = sc_test_bin("statecast-apiserver");
  char *aargv[] = {abin, "--redis-url", url, "--redis-password-file", pwfile, "--listen", listen, "--jwt-secret-file",
                   secfile, "--public-topics", "acl/*", "--drain-seconds", "1", NULL};
  g_api = sc_test_spawn(abin, aargv, NULL, g_alog);
  free(abin);
  if (!sc_test_wait_http(g_aport, "/readyz", 200, WAIT_MS)) sc_test_dump(g_alog);
  cr_assert(sc_test_wait_http(g_aport, "/readyz", 200, 100), "apiserver not ready as its ACL user");
  /* publisher: durable (XADD) and pub/sub forms. */
  url_for(url, sizeof url, "statecast-publisher", "pub-pass");
  char out[4096], err[4096];
  char *pbin = sc_test_bin("statecast-publisher");
  char *p1[] = {pbin, "--redis-url", url, "acl/one", "{\"v\":1}", NULL};
  int rc = sc_test_run(pbin, p1, NULL, NULL, out, sizeof out, err, sizeof err);
  cr_assert_eq(rc, 0, "publisher (durable) as its ACL user: %s", err);
  char *p2[] = {pbin, "--pubsub", "--redis-url", url, "acl/two", "{\"v\":2}", NULL};
  rc = sc_test_run(pbin, p2, NULL, NULL, out, sizeof out, err, sizeof err);
  cr_assert_eq(rc, 0, "publisher (pub/sub) as its ACL user: %s", err);
  free(pbin);
  int seen = sc_test_wait(http_ok, "/state/acl/two", WAIT_MS);
  if (!seen) {
    redisContext *c = sc_test_redis_connect(&g_redis);
    redisReply *l = redisCommand(c, "ACL LOG 3");
    for (size_t i = 0; l && i < l->elements; i++)
      for (size_t j = 0; j + 1 < l->element[i]->elements; j += 2)
        if (l->element[i]->element[j + 1]->type == REDIS_REPLY_STRING)
          fprintf(stderr, "acl log: %s=%s\n", l->element[i]->element[j]->str, l->element[i]->element[j + 1]->str);
    freeReplyObject(l);
    redisFree(c);
    sc_test_dump(g_klog);
    sc_test_dump(g_alog);
  }
  cr_assert(seen, "the pub/sub publish never reached the apiserver");
  char body[8192];
  cr_assert_eq(sc_test_http(g_aport, "GET", "/state/acl/one", body, sizeof body), 200, "durable publish: %s", body);
  /* POST /publish through the apiserver's XADD on the inbox. */
  char tok[1024], pl[256], h64[64], p64[400], mac64[64];
  snprintf(pl, sizeof pl, "{\"exp\":%lld,\"statecast\":{\"publish\":[\"acl/*\"]}}", (long long)time(NULL) + 600);
  b64url((const unsigned char *)"{\"alg\":\"HS256\"}", 15, h64);
  b64url((const unsigned char *)pl, strlen(pl), p64);
  snprintf(tok, sizeof tok, "%s.%s", h64, p64);
  unsigned char mac[32];
  unsigned int ml = 0;
  HMAC(EVP_sha256(), secret, sizeof secret - 1, (unsigned char *)tok, strlen(tok), mac, &ml);
  b64url(mac, ml, mac64);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "curl -s -o /dev/null -w '%%{http_code}' -X POST -H 'Authorization: Bearer %s.%s' --data '{\"v\":3}' "
           "http://127.0.0.1:%d/publish/acl/three",
           tok, mac64, g_aport);
  FILE *p = popen(cmd, "r");
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  pclose(p);
  cr_assert_str_eq(out, "200", "POST /publish as the apiserver's ACL user");
  /* statecast-snapshot save with a read-only user. */
  char snapfile[400];
  snprintf(snapfile, sizeof snapfile, "%s/snap.json", g_redis.dir);
  url_for(url, sizeof url, "statecast-snapshot-ro", "snap-pass");
  char *sbin = sc_test_bin("statecast-snapshot");
  char *sargv[] = {sbin, "save", "-o", snapfile, "--redis-url", url, NULL};
  rc = sc_test_run(sbin, sargv, NULL, NULL, out, sizeof out, err, sizeof err);
  free(sbin);
  cr_assert_eq(rc, 0, "snapshot save as a read-only user: %s", err);
  expect_noperm("statecast-snapshot-ro", "snap-pass", "DEL %s", "state:{acl/one}");
  redisReply *ev = as_user("statecast-snapshot-ro", "snap-pass", "EVAL %s 1 state:{acl/one}",
                           "return redis.call('del', KEYS[1])");
  cr_assert(ev != NULL && ev->type == REDIS_REPLY_ERROR, "a script must not write as the read-only user");
  freeReplyObject(ev);
  /* What each user may not do. */
  expect_noperm("statecast-apiserver", "api-pass", "SET %s x", "anything");
  expect_noperm("statecast-apiserver", "api-pass", "HSET %s data 1", "state:{acl/one}");
  expect_noperm("statecast-apiserver", "api-pass", "PUBLISH %s x", "update:{acl/one}");
  expect_noperm("statecast-apiserver", "api-pass", "XADD %s * a b", "statecast:other");
  expect_noperm("statecast-apiserver", "api-pass", "FLUSHALL%s", "");
  expect_noperm("statecast-publisher", "pub-pass", "HGETALL %s", "state:{acl/one}");
  expect_noperm("statecast-publisher", "pub-pass", "DEL %s", "statecast:inbox");
  expect_noperm("statecast-publisher", "pub-pass", "PUBLISH %s x", "statecast:notify");
  expect_noperm("statecast-kv-updater", "kvu-pass", "SET %s x", "elsewhere");
  expect_noperm("statecast-kv-updater", "kvu-pass", "FLUSHALL%s", "");
  expect_noperm("statecast-kv-updater", "kvu-pass", "CONFIG GET %s", "*");
}
