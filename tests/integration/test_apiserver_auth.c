/*
 * apiserver auth, HTTP publishing, rate limits and TLS: the real
 * statecast-apiserver and statecast-kv-updater against a real redis-server.
 * Tokens are signed here with OpenSSL; keys and a self-signed certificate
 * come from the openssl CLI; HTTP requests go through curl (headers,
 * cookies, POST bodies, TLS, HTTP/2 over ALPN).
 */
#include <criterion/criterion.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sse_client.h"
#include "support.h"

#define WAIT_MS 15000

static const char secret[] = "integration-secret-0123456789-abcdefghijklmnop";
static sc_test_redis_t g_redis;
static int g_redis_started;
static pid_t g_kvu = -1, g_api = -1;
static int g_kport, g_aport;
static char g_log[300], g_alog[300], g_secret_file[300];

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

/* An HS256 (or alg=header's) token over payload, HMAC'd with key (NULL: empty signature). */
static void sign(char *out, const char *header, const char *payload, const void *key, size_t klen) {
  b64url((const unsigned char *)header, strlen(header), out);
  size_t n = strlen(out);
  out[n++] = '.';
  b64url((const unsigned char *)payload, strlen(payload), out + n);
  n = strlen(out);
  unsigned char mac[64];
  unsigned int ml = 0;
  if (key != NULL) HMAC(EVP_sha256(), key, (int)klen, (unsigned char *)out, n, mac, &ml);
  out[n++] = '.';
  b64url(mac, ml, out + n);
}

/* A valid HS256 token with these scopes and exp = now + ttl. */
static void token(char *out, const char *subscribe, const char *publish, long ttl) {
  char pl[512];
  snprintf(pl, sizeof pl, "{\"sub\":\"t\",\"aud\":\"displays\",\"exp\":%lld,\"statecast\":{\"subscribe\":%s,\"publish\":%s}}",
           (long long)time(NULL) + ttl, subscribe, publish);
  sign(out, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", pl, secret, sizeof secret - 1);
}

/* Run a shell command; its stdout into out. Returns the exit status. */
static int sh(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sh(char *out, size_t cap, const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  FILE *p = popen(cmd, "r");
  if (p == NULL) return -1;
  size_t n = out ? fread(out, 1, cap - 1, p) : 0;
  if (out) out[n] = '\0';
  else {
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {}
  }
  return pclose(p);
}

/* curl an apiserver path with extra curl args; response headers+body into out; returns the status. */
static int curl(char *out, size_t cap, const char *args, const char *path) {
  char buf[65536];
  sh(buf, sizeof buf, "curl -s -i --max-time 20 %s 'http://127.0.0.1:%d%s'", args, g_aport, path);
  if (out != NULL) snprintf(out, cap, "%s", buf);
  int st = 0;
  sscanf(buf, "HTTP/%*s %d", &st);
  return st;
}

static void start_kvu(void) {
  g_kvu = sc_test_start_kvu(&g_redis, NULL, g_log, &g_kport, WAIT_MS);
  cr_assert_gt(g_kvu, 0, "kv-updater not ready");
}

/* Start the apiserver with HS256 auth on (audience "displays") plus extra flags. */
static void start_api(const char *const *extra, int hs256) {
  char url[128], listen[64];
  sc_test_redis_url(&g_redis, url, sizeof url);
  g_aport = sc_test_free_port();
  snprintf(listen, sizeof listen, "127.0.0.1:%d", g_aport);
  char *bin = sc_test_bin("statecast-apiserver");
  char *argv[40] = {bin, "--redis-url", url, "--listen", listen, "--drain-seconds", "1", "--jwt-audience", "displays",
                    "--heartbeat-seconds", "1", NULL};
  int n = 11;
  if (hs256) {
    argv[n++] = "--jwt-secret-file";
    argv[n++] = g_secret_file;
  }
  for (int i = 0; extra != NULL && extra[i] != NULL && n < 38; i++) argv[n++] = (char *)extra[i];
  argv[n] = NULL;
  g_api = sc_test_spawn(bin, argv, NULL, g_alog);
  free(bin);
  cr_assert_gt(g_api, 0);
}

static void wait_api_ready(void) {
  cr_assert(sc_test_wait_http(g_aport, "/readyz", 200, WAIT_MS), "apiserver not ready");
}

static void setup(void) {
  cr_assert_eq(sc_test_redis_start(&g_redis, NULL), 0, "redis-server did not start");
  g_redis_started = 1;
  snprintf(g_log, sizeof g_log, "%s/kvu.log", g_redis.dir);
  snprintf(g_alog, sizeof g_alog, "%s/api.log", g_redis.dir);
  snprintf(g_secret_file, sizeof g_secret_file, "%s/jwt.secret", g_redis.dir);
  FILE *f = fopen(g_secret_file, "w");
  fputs(secret, f);
  fputc('\n', f);
  fclose(f);
  start_kvu();
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

static long long current_seq(void) {
  redisContext *c = sc_test_redis_connect(&g_redis);
  redisReply *r = redisCommand(c, "GET statecast:seq");
  long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
  freeReplyObject(r);
  redisFree(c);
  return v;
}

static long long g_want_seq;
static int seq_reached(void *arg) {
  (void)arg;
  return current_seq() >= g_want_seq;
}

/* PUBLISH raw and wait until committed. */
static void publish(const char *topic, const char *json) {
  long long before = current_seq();
  redisContext *c = sc_test_redis_connect(&g_redis);
  redisReply *r = redisCommand(c, "PUBLISH update:{%s} %s", topic, json);
  cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= 1, "nobody received the publish");
  freeReplyObject(r);
  redisFree(c);
  g_want_seq = before + 1;
  cr_assert(sc_test_wait(seq_reached, NULL, WAIT_MS), "not committed: %s", topic);
}

static int g_state_seq_target;
static int state_has_seq(void *arg) {
  char body[4096];
  (void)arg;
  char path[64];
  snprintf(path, sizeof path, "/metrics");
  if (sc_test_http(g_aport, "GET", path, body, sizeof body) != 200) return 0;
  const char *p = strstr(body, "\nstatecast_api_last_seq ");
  return p != NULL && atoll(p + 24) >= g_state_seq_target;
}

static void seed(void) {
  publish("sensors/kitchen", "{\"t\":21}");
  publish("sensors/hall", "{\"t\":19}");
  publish("secret/plans", "{\"x\":1}");
  publish("public/weather", "{\"sun\":true}");
  g_state_seq_target = 4;
  cr_assert(sc_test_wait(state_has_seq, NULL, WAIT_MS), "apiserver did not apply the seed");
}

TestSuite(api_auth, .init = setup, .fini = teardown, .timeout = 120);

Test(api_auth, a_valid_token_works_from_header_cookie_or_query_and_sees_only_granted_topics) {
  start_api(NULL, 1);
  wait_api_ready();
  seed();
  char tok[2048], args[2300], out[65536];
  token(tok, "[\"sensors/*\"]", "[]", 600);
  snprintf(args, sizeof args, "-H 'Authorization: Bearer %s'", tok);
  cr_assert_eq(curl(out, sizeof out, args, "/state"), 200, "%s", out);
  cr_assert(strstr(out, "sensors/kitchen") && strstr(out, "sensors/hall"), "%s", out);
  cr_assert(strstr(out, "secret/plans") == NULL, "an ungranted topic leaked: %s", out);
  snprintf(args, sizeof args, "--cookie 'theme=dark; statecast_token=%s'", tok);
  cr_assert_eq(curl(out, sizeof out, args, "/state/sensors/kitchen"), 200, "%s", out);
  char path[2300];
  snprintf(path, sizeof path, "/state?topic=sensors/hall&access_token=%s", tok);
  cr_assert_eq(curl(out, sizeof out, "", path), 200, "%s", out);
  cr_assert(strstr(out, "sensors/hall") && !strstr(out, "sensors/kitchen"), "%s", out);
  /* The stream, token in the query (EventSource): granted topics, then sync. */
  snprintf(path, sizeof path, "/events?access_token=%s", tok);
  sc_sse_client_t *c = sc_sse_connect(g_aport, path, NULL, 0, WAIT_MS);
  cr_assert_not_null(c);
  cr_assert_eq(sc_sse_status(c), 200);
  int updates = 0;
  for (;;) {
    sc_sse_event_t ev;
    cr_assert_eq(sc_sse_next_event(c, &ev, WAIT_MS), 1);
    int sync = strcmp(ev.event, "sync") == 0;
    if (!sync) {
      cr_assert(strstr(ev.data, "\"topic\":\"sensors/"), "stream got %s", ev.data);
      updates++;
    }
    sc_sse_event_dispose(&ev);
    if (sync) break;
  }
  cr_assert_eq(updates, 2);
  publish("secret/plans", "{\"x\":2}");
  publish("sensors/hall", "{\"t\":20}");
  sc_sse_event_t ev;
  cr_assert_eq(sc_sse_next_event(c, &ev, WAIT_MS), 1);
  cr_assert(strstr(ev.data, "\"topic\":\"sensors/hall\""), "live event %s", ev.data);
  sc_sse_event_dispose(&ev);
  sc_sse_close(c);
  /* Asking for more than granted: 403 JSON. */
  snprintf(args, sizeof args, "-H 'Authorization: Bearer %s'", tok);
  cr_assert_eq(curl(out, sizeof out, args, "/events?topic=secret/*"), 403, "%s", out);
  cr_assert(strstr(out, "{\"error\":"), "%s", out);
  cr_assert_eq(curl(out, sizeof out, args, "/state/secret/plans"), 403, "%s", out);
  cr_assert_eq(curl(out, sizeof out, args, "/state?topic=sensors/kitchen/*"), 200, "a specialisation is inside: %s", out);
}

Test(api_auth, bad_tokens_get_401_with_www_authenticate) {
  start_api(NULL, 1);
  wait_api_ready();
  char tok[2048], args[2300], out[65536], pl[256];
  long long now = (long long)time(NULL);
  struct {
    const char *name, *hdr, *key;
    long long exp, nbf;
    const char *aud;
  } cases[] = {
      {"expired", "{\"alg\":\"HS256\"}", secret, now - 5, 0, "displays"},
      {"not yet valid", "{\"alg\":\"HS256\"}", secret, now + 600, now + 3600, "displays"},
      {"wrong key", "{\"alg\":\"HS256\"}", "some-other-secret-some-other-secret!!", now + 600, 0, "displays"},
      {"alg none", "{\"alg\":\"none\"}", NULL, now + 600, 0, "displays"},
      {"wrong audience", "{\"alg\":\"HS256\"}", secret, now + 600, 0, "elsewhere"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int m = snprintf(pl, sizeof pl, "{\"aud\":\"%s\",\"exp\":%lld", cases[i].aud, cases[i].exp);
    if (cases[i].nbf) m += snprintf(pl + m, sizeof pl - (size_t)m, ",\"nbf\":%lld", cases[i].nbf);
    snprintf(pl + m, sizeof pl - (size_t)m, ",\"statecast\":{\"subscribe\":[\"*\"]}}");
    sign(tok, cases[i].hdr, pl, cases[i].key, cases[i].key ? strlen(cases[i].key) : 0);
    snprintf(args, sizeof args, "-H 'Authorization: Bearer %s'", tok);
    cr_assert_eq(curl(out, sizeof out, args, "/events"), 401, "%s: %s", cases[i].name, out);
    cr_assert(strcasestr(out, "www-authenticate: Bearer realm=\"statecast\", error=\"invalid_token\""), "%s: %s",
              cases[i].name, out);
    cr_assert(strstr(out, "{\"error\":"), "%s", out);
  }
  cr_assert_eq(curl(out, sizeof out, "", "/events"), 401, "no token: %s", out);
  cr_assert(strcasestr(out, "www-authenticate: Bearer realm=\"statecast\""), "%s", out);
  cr_assert_eq(curl(out, sizeof out, "", "/healthz"), 200, "health stays open");
}

Test(api_auth, public_topics_are_readable_without_a_token) {
  const char *extra[] = {"--public-topics", "public/*", NULL};
  start_api(extra, 1);
  wait_api_ready();
  seed();
  char out[65536];
  cr_assert_eq(curl(out, sizeof out, "", "/state"), 200, "%s", out);
  cr_assert(strstr(out, "public/weather") && !strstr(out, "sensors/"), "%s", out);
  cr_assert_eq(curl(out, sizeof out, "", "/state/public/weather"), 200, "%s", out);
  cr_assert_eq(curl(out, sizeof out, "", "/state/sensors/hall"), 401, "%s", out);
  cr_assert_eq(curl(out, sizeof out, "", "/events?topic=sensors/*"), 401, "%s", out);
}

Test(api_auth, a_token_in_the_query_never_reaches_the_log) {
  start_api(NULL, 1);
  wait_api_ready();
  char tok[2048], path[2300], out[65536];
  token(tok, "[\"sensors/*\"]", "[]", -10); /* expired: the refusal is logged */
  snprintf(path, sizeof path, "/events?topic=sensors/*&access_token=%s", tok);
  cr_assert_eq(curl(out, sizeof out, "", path), 401, "%s", out);
  token(tok, "[\"sensors/*\"]", "[]", 600); /* valid, but asks too much: logged as 403 */
  snprintf(path, sizeof path, "/events?topic=other&access_token=%s", tok);
  cr_assert_eq(curl(out, sizeof out, "", path), 403, "%s", out);
  char grep[512];
  snprintf(grep, sizeof grep, "grep -c 'access_token=REDACTED' %s", g_alog);
  char n[32];
  sh(n, sizeof n, "%s", grep);
  cr_assert_geq(atoi(n), 2, "refusals should be logged with the token redacted");
  /* Neither token's signature part appears anywhere in the log. */
  const char *sig = strrchr(tok, '.') + 1;
  sh(n, sizeof n, "grep -c -F -- '%s' %s", sig, g_alog);
  cr_assert_eq(atoi(n), 0, "the token leaked into the log");
  sh(n, sizeof n, "grep -c 'eyJ' %s", g_alog);
  cr_assert_eq(atoi(n), 0, "a token leaked into the log");
}

Test(api_auth, a_stream_ends_with_an_error_event_when_its_token_expires) {
  start_api(NULL, 1);
  wait_api_ready();
  seed();
  char tok[2048], path[2300];
  token(tok, "[\"sensors/*\"]", "[]", 3);
  snprintf(path, sizeof path, "/events?access_token=%s", tok);
  sc_sse_client_t *c = sc_sse_connect(g_aport, path, NULL, 0, WAIT_MS);
  cr_assert_not_null(c);
  cr_assert_eq(sc_sse_status(c), 200);
  int got = 0;
  for (int i = 0; i < 20 && !got; i++) {
    sc_sse_event_t ev;
    int r = sc_sse_next_event(c, &ev, WAIT_MS);
    cr_assert_eq(r, 1, "stream ended without the expiry event");
    if (strcmp(ev.event, "error") == 0) {
      cr_assert_str_eq(ev.data, "{\"error\":\"token expired\"}");
      got = 1;
    }
    sc_sse_event_dispose(&ev);
  }
  cr_assert(got);
  sc_sse_event_t ev;
  cr_assert_leq(sc_sse_next_event(c, &ev, WAIT_MS), 0, "the stream should be over");
  sc_sse_close(c);
}

Test(api_auth, an_rs256_server_refuses_an_hs256_token_signed_with_its_public_key) {
  char dir[300], out[65536], args[8192], tok[4096];
  snprintf(dir, sizeof dir, "%s", g_redis.dir);
  cr_assert_eq(sh(NULL, 0, "cd %s && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null"
                          " && openssl pkey -in rsa.key -pubout -out rsa.pub 2>/dev/null", dir), 0);
  char pub[400];
  snprintf(pub, sizeof pub, "%s/rsa.pub", dir);
  const char *extra[] = {"--jwt-public-key-file", pub, NULL};
  start_api(extra, 0);
  wait_api_ready();
  FILE *f = fopen(pub, "rb");
  char pem[4096];
  size_t pl = fread(pem, 1, sizeof pem, f);
  fclose(f);
  char payload[256];
  snprintf(payload, sizeof payload, "{\"aud\":\"displays\",\"exp\":%lld,\"statecast\":{\"subscribe\":[\"*\"]}}",
           (long long)time(NULL) + 600);
  sign(tok, "{\"alg\":\"HS256\"}", payload, pem, pl);
  snprintf(args, sizeof args, "-H 'Authorization: Bearer %s'", tok);
  cr_assert_eq(curl(out, sizeof out, args, "/state"), 401, "key confusion accepted: %s", out);
  /* A real RS256 token from the private key (openssl dgst) is accepted. */
  char h64[128], p64[512];
  b64url((const unsigned char *)"{\"alg\":\"RS256\"}", 15, h64);
  b64url((const unsigned char *)payload, strlen(payload), p64);
  char sig[1024];
  cr_assert_eq(sh(sig, sizeof sig,
                  "cd %s && printf '%%s' '%s.%s' | openssl dgst -sha256 -sign rsa.key | base64 -w0 | tr '+/' '-_' | tr -d '='",
                  dir, h64, p64), 0);
  snprintf(args, sizeof args, "-H 'Authorization: Bearer %s.%s.%s'", h64, p64, sig);
  cr_assert_eq(curl(out, sizeof out, args, "/state"), 200, "RS256 refused: %s", out);
}

Test(api_auth, new_streams_past_the_rate_limit_get_429_with_retry_after) {
  const char *extra[] = {"--streams-rate-per-second", "1", "--streams-burst", "2", NULL};
  start_api(extra, 1);
  wait_api_ready();
  char tok[2048], out[65536];
  token(tok, "[\"*\"]", "[]", 600);
  /* Six streams opened at once (each held 2 s): a burst of 2 at 1/s cannot admit them all. */
  sh(out, sizeof out,
     "cd %s && for i in 1 2 3 4 5 6; do curl -s -i -o rl.$i --max-time 2 -H 'Authorization: Bearer %s' "
     "http://127.0.0.1:%d/events & done; wait; grep -h -i -A8 '^HTTP/1.1 429' rl.* | head -20",
     g_redis.dir, tok, g_aport);
  cr_assert(strstr(out, "429"), "never limited");
  cr_assert(strcasestr(out, "retry-after: "), "%s", out);
  cr_assert_geq(atoi(strcasestr(out, "retry-after: ") + 13), 1);
}

Test(api_auth, tls_serves_http1_and_http2_over_alpn) {
  char dir[300], out[65536];
  snprintf(dir, sizeof dir, "%s", g_redis.dir);
  cr_assert_eq(sh(NULL, 0, "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout tls.key -out tls.crt -days 1 "
                          "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null", dir), 0);
  char cert[400], key[400];
  snprintf(cert, sizeof cert, "%s/tls.crt", dir);
  snprintf(key, sizeof key, "%s/tls.key", dir);
  const char *extra[] = {"--tls-cert-file", cert, "--tls-key-file", key, NULL};
  start_api(extra, 1);
  int ok = 0;
  for (int i = 0; i < 100 && !ok; i++) {
    sh(out, sizeof out, "curl -s -o /dev/null -w '%%{http_code}' --cacert %s https://127.0.0.1:%d/healthz", cert, g_aport);
    ok = strcmp(out, "200") == 0;
    if (!ok) usleep(100000);
  }
  cr_assert(ok, "no HTTPS answer");
  sh(out, sizeof out, "curl -s --http1.1 -o /dev/null -w '%%{http_version} %%{http_code}' --cacert %s https://127.0.0.1:%d/healthz",
     cert, g_aport);
  cr_assert_str_eq(out, "1.1 200");
  sh(out, sizeof out, "curl -s --http2 -o /dev/null -w '%%{http_version} %%{http_code}' --cacert %s https://127.0.0.1:%d/healthz",
     cert, g_aport);
  cr_assert_str_eq(out, "2 200");
  sh(out, sizeof out, "curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/healthz", g_aport);
  cr_assert_neq(strcmp(out, "200"), 0, "plain HTTP must not be served on a TLS listener");
}

/* POST body to path with the token; response into out; returns the status. */
static int post(char *out, size_t cap, const char *tok, const char *path, const char *body) {
  char args[8192];
  char bf[400];
  snprintf(bf, sizeof bf, "%s/post.body", g_redis.dir);
  FILE *f = fopen(bf, "wb");
  fputs(body, f);
  fclose(f);
  int n = snprintf(args, sizeof args, "-X POST -H 'Content-Type: application/json' --data-binary @%s", bf);
  if (tok != NULL) snprintf(args + n, sizeof args - (size_t)n, " -H 'Authorization: Bearer %s'", tok);
  return curl(out, cap, args, path);
}

static long long json_int(const char *s, const char *key) {
  char k[64];
  snprintf(k, sizeof k, "\"%s\":", key);
  const char *p = strstr(s, k);
  return p ? atoll(p + strlen(k)) : -1;
}

Test(api_auth, post_publish_commits_through_the_inbox_and_answers_the_seq) {
  const char *extra[] = {"--max-message-bytes", "1000", NULL};
  start_api(extra, 1);
  wait_api_ready();
  char tok[2048], out[65536];
  token(tok, "[\"cmd/*\"]", "[\"cmd/*\"]", 600);
  cr_assert_eq(post(out, sizeof out, tok, "/publish/cmd/lamp", "{ \"on\" : true }"), 200, "%s", out);
  const char *body = strstr(out, "\r\n\r\n") + 4;
  long long seq = json_int(body, "seq");
  cr_assert_gt(seq, 0, "%s", body);
  cr_assert(strstr(body, "\"topic\":\"cmd/lamp\"") && strstr(body, "\"id\":\""), "%s", body);
  cr_assert_eq(seq, current_seq(), "the answer carries the committed seq");
  /* The store has it with that seq, compacted. */
  char args[2300];
  snprintf(args, sizeof args, "-H 'Authorization: Bearer %s'", tok);
  g_state_seq_target = (int)seq;
  cr_assert(sc_test_wait(state_has_seq, NULL, WAIT_MS));
  cr_assert_eq(curl(out, sizeof out, args, "/state/cmd/lamp"), 200, "%s", out);
  cr_assert(strstr(out, "\"data\":{\"on\":true}"), "%s", out);
  cr_assert_eq(json_int(strstr(out, "\r\n\r\n"), "seq"), seq);
  /* Nothing left queued. */
  redisContext *c = sc_test_redis_connect(&g_redis);
  redisReply *r = redisCommand(c, "XLEN statecast:inbox");
  cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0, "inbox not empty");
  freeReplyObject(r);
  redisFree(c);
  /* Batch, including a delete. */
  cr_assert_eq(post(out, sizeof out, tok, "/publish",
                    "{\"messages\":[{\"topic\":\"cmd/a\",\"data\":[1,2]},{\"topic\":\"cmd/lamp\",\"data\":null}]}"),
               200, "%s", out);
  body = strstr(out, "\r\n\r\n") + 4;
  cr_assert(strstr(body, "{\"results\":[{\"topic\":\"cmd/a\",\"seq\":"), "%s", body);
  cr_assert(strstr(body, "{\"topic\":\"cmd/lamp\",\"seq\":"), "%s", body);
  cr_assert_eq(current_seq(), seq + 2);
  /* Refusals. */
  cr_assert_eq(post(out, sizeof out, tok, "/publish/other/x", "1"), 403, "%s", out);
  cr_assert_eq(post(out, sizeof out, NULL, "/publish/cmd/x", "1"), 401, "%s", out);
  cr_assert_eq(post(out, sizeof out, tok, "/publish/cmd/x", "{\"a\":"), 400, "%s", out);
  cr_assert_eq(post(out, sizeof out, tok, "/publish/cmd/b%21d", "1"), 400, "%s", out);
  char big[1200];
  memset(big, 'x', sizeof big);
  big[0] = '"';
  big[sizeof big - 2] = '"';
  big[sizeof big - 1] = '\0';
  cr_assert_eq(post(out, sizeof out, tok, "/publish/cmd/x", big), 413, "%s", out);
  cr_assert_eq(post(out, sizeof out, tok, "/publish",
                    "{\"messages\":[{\"topic\":\"cmd/ok\",\"data\":1},{\"topic\":\"secret/x\",\"data\":1}]}"),
               403, "%s", out);
  cr_assert_eq(current_seq(), seq + 2, "a refused batch queues nothing");
  cr_assert_eq(curl(out, sizeof out, args, "/publish/cmd/x"), 405, "%s", out);
}

Test(api_auth, post_publish_without_a_kv_updater_times_out_with_504) {
  sc_test_stop(g_kvu, SIGTERM, 10000);
  g_kvu = -1;
  const char *extra[] = {"--publish-timeout-ms", "500", NULL};
  start_api(extra, 1);
  wait_api_ready();
  char tok[2048], out[65536];
  token(tok, "[]", "[\"*\"]", 600);
  cr_assert_eq(post(out, sizeof out, tok, "/publish/q/1", "{\"v\":1}"), 504, "%s", out);
  cr_assert(strstr(out, "not committed within 500 ms; it is queued"), "%s", out);
  /* It is queued: a kv-updater started later commits it. */
  start_kvu();
  g_want_seq = 1;
  cr_assert(sc_test_wait(seq_reached, NULL, WAIT_MS), "the queued publish was not committed later");
}

Test(api_auth, publishing_over_http_needs_a_jwt_key) {
  char url[128], listen[64];
  sc_test_redis_url(&g_redis, url, sizeof url);
  g_aport = sc_test_free_port();
  snprintf(listen, sizeof listen, "127.0.0.1:%d", g_aport);
  char *bin = sc_test_bin("statecast-apiserver");
  char *argv[] = {bin, "--redis-url", url, "--listen", listen, "--drain-seconds", "1", NULL};
  g_api = sc_test_spawn(bin, argv, NULL, g_alog);
  free(bin);
  wait_api_ready();
  char out[65536];
  cr_assert_eq(post(out, sizeof out, NULL, "/publish/a", "1"), 403, "%s", out);
  cr_assert(strstr(out, "publishing over HTTP needs STATECAST_JWT_* configured"), "%s", out);
  cr_assert_eq(curl(out, sizeof out, "", "/state"), 200, "without a key everything stays open: %s", out);
}

Test(api_auth, web_files_carry_a_strict_csp_and_cors_never_pairs_any_origin_with_credentials) {
  start_api(NULL, 0);
  wait_api_ready();
  char out[65536];
  cr_assert_eq(curl(out, sizeof out, "", "/"), 200, "%s", out);
  cr_assert(strcasestr(out, "content-security-policy: default-src 'self'; connect-src 'self';"), "%s", out);
  cr_assert_eq(curl(out, sizeof out, "--path-as-is", "/../CMakeLists.txt"), 404, "%s", out);
  cr_assert_eq(curl(out, sizeof out, "--path-as-is", "/%2e%2e/CMakeLists.txt"), 404, "%s", out);
  char tok[2048], args[2400];
  token(tok, "[\"*\"]", "[]", 600);
  snprintf(args, sizeof args, "-H 'Origin: https://evil.example' -H 'Authorization: Bearer %s'", tok);
  cr_assert_eq(curl(out, sizeof out, args, "/state"), 200, "%s", out);
  cr_assert(strcasestr(out, "access-control-allow-origin: *"), "%s", out);
  cr_assert_null(strcasestr(out, "access-control-allow-credentials"), "%s", out);
  sc_test_stop(g_api, SIGTERM, 15000);
  const char *extra[] = {"--cors-origin", "https://a.example,https://b.example", NULL};
  start_api(extra, 1);
  wait_api_ready();
  cr_assert_eq(curl(out, sizeof out, args, "/state"), 200, "%s", out);
  cr_assert_null(strcasestr(out, "access-control-allow-origin"), "an unlisted origin is not echoed: %s", out);
  cr_assert_null(strcasestr(out, "access-control-allow-credentials"), "%s", out);
  snprintf(args, sizeof args, "-H 'Origin: https://b.example' -H 'Authorization: Bearer %s'", tok);
  cr_assert_eq(curl(out, sizeof out, args, "/state"), 200, "%s", out);
  cr_assert(strcasestr(out, "access-control-allow-origin: https://b.example"), "%s", out);
  cr_assert(strcasestr(out, "access-control-allow-credentials: true"), "%s", out);
}
