/*
 * auth (JWT verification, scope containment, token redaction) and the
 * rate limiter, with tokens signed here by OpenSSL.
 */
#include <criterion/criterion.h>

#include "auth.h"
#include "err.h"
#include "ratelimit.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char secret[] = "0123456789abcdef0123456789abcdef-test-secret";
static char dir[64];

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

/* header.payload.signature; key: HMAC secret (hs) or a private EVP_PKEY. */
static char *make_token(const char *header, const char *payload, const unsigned char *hs, size_t hslen,
                        EVP_PKEY *pk, int es) {
  char *t = malloc(8192);
  b64url((const unsigned char *)header, strlen(header), t);
  size_t n = strlen(t);
  t[n++] = '.';
  b64url((const unsigned char *)payload, strlen(payload), t + n);
  n = strlen(t);
  unsigned char sig[1024];
  size_t sl = 0;
  if (hs != NULL) {
    unsigned int ml = 0;
    HMAC(EVP_sha256(), hs, (int)hslen, (unsigned char *)t, n, sig, &ml);
    sl = ml;
  } else if (pk != NULL) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    sl = sizeof sig;
    cr_assert_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk), 1);
    cr_assert_eq(EVP_DigestSign(md, sig, &sl, (unsigned char *)t, n), 1);
    EVP_MD_CTX_free(md);
    if (es) { /* DER -> r||s */
      const unsigned char *p = sig;
      ECDSA_SIG *e = d2i_ECDSA_SIG(NULL, &p, (long)sl);
      memset(sig, 0, 64);
      BN_bn2binpad(ECDSA_SIG_get0_r(e), sig, 32);
      BN_bn2binpad(ECDSA_SIG_get0_s(e), sig + 32, 32);
      ECDSA_SIG_free(e);
      sl = 64;
    }
  }
  t[n++] = '.';
  b64url(sig, sl, t + n);
  return t;
}

static char *write_file(const char *name, const void *data, size_t len) {
  char *p = malloc(256);
  snprintf(p, 256, "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  fwrite(data, 1, len, f);
  fclose(f);
  return p;
}

static char *pubkey_file(EVP_PKEY *pk, const char *name) {
  char *p = malloc(256);
  snprintf(p, 256, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  PEM_write_PUBKEY(f, pk);
  fclose(f);
  return p;
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *b = malloc(65536);
  *len = fread(b, 1, 65536, f);
  fclose(f);
  return b;
}

static void setup(void) {
  strcpy(dir, "/tmp/sc-auth-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) {}
}

static api_auth_t *hs_auth(const char *aud, const char *pub) {
  char *f = write_file("secret", secret, sizeof secret - 1);
  api_auth_opts_t o = {f, NULL, aud, NULL, pub};
  api_auth_t *a = NULL;
  char err[256];
  cr_assert_eq(api_auth_new(&a, &o, err, sizeof err), 0, "%s", err);
  free(f);
  return a;
}

static const char *HS = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static int verify(api_auth_t *a, const char *tok, const char **why) {
  api_claims_t c;
  int rc = api_auth_verify(a, tok, strlen(tok), time(NULL), &c, why);
  api_claims_dispose(&c);
  return rc;
}

TestSuite(api_auth, .init = setup, .fini = teardown);

Test(api_auth, accepts_a_valid_hs256_token_and_reads_its_scopes) {
  api_auth_t *a = hs_auth("displays", NULL);
  char pl[256];
  snprintf(pl, sizeof pl,
           "{\"sub\":\"d1\",\"aud\":[\"x\",\"displays\"],\"exp\":%lld,\"statecast\":{\"subscribe\":[\"sensors/*\"],"
           "\"publish\":[\"cmd/a\"]}}",
           (long long)time(NULL) + 60);
  char *t = make_token(HS, pl, (const unsigned char *)secret, sizeof secret - 1, NULL, 0);
  api_claims_t c;
  const char *why = NULL;
  cr_assert_eq(api_auth_verify(a, t, strlen(t), time(NULL), &c, &why), 0, "%s", why);
  cr_assert_eq(c.subscribe.n, 1);
  cr_assert_str_eq(c.subscribe.pats[0].text, "sensors/*");
  cr_assert_eq(c.publish.n, 1);
  cr_assert_str_eq(c.key, "sub:d1");
  cr_assert_gt(c.exp, 0);
  api_claims_dispose(&c);
  free(t);
  api_auth_free(a);
}

Test(api_auth, refuses_expired_not_yet_valid_wrong_key_and_wrong_audience) {
  api_auth_t *a = hs_auth("displays", NULL);
  long long now = (long long)time(NULL);
  char pl[256];
  const char *why;
  snprintf(pl, sizeof pl, "{\"aud\":\"displays\",\"exp\":%lld}", now - 1);
  char *t = make_token(HS, pl, (const unsigned char *)secret, sizeof secret - 1, NULL, 0);
  cr_assert_eq(verify(a, t, &why), SC_EINVAL);
  cr_assert_str_eq(why, "token expired");
  free(t);
  snprintf(pl, sizeof pl, "{\"aud\":\"displays\",\"nbf\":%lld}", now + 3600);
  t = make_token(HS, pl, (const unsigned char *)secret, sizeof secret - 1, NULL, 0);
  cr_assert_eq(verify(a, t, &why), SC_EINVAL);
  cr_assert_str_eq(why, "token not yet valid");
  free(t);
  snprintf(pl, sizeof pl, "{\"aud\":\"displays\"}");
  t = make_token(HS, pl, (const unsigned char *)"another-secret-another-secret-another", 36, NULL, 0);
  cr_assert_eq(verify(a, t, &why), SC_EINVAL);
  cr_assert_str_eq(why, "bad signature");
  free(t);
  snprintf(pl, sizeof pl, "{\"aud\":\"elsewhere\"}");
  t = make_token(HS, pl, (const unsigned char *)secret, sizeof secret - 1, NULL, 0);
  cr_assert_eq(verify(a, t, &why), SC_EINVAL);
  cr_assert_str_eq(why, "wrong audience");
  free(t);
  t = make_token(HS, "{}", (const unsigned char *)secret, sizeof secret - 1, NULL, 0);
  cr_assert_eq(verify(a, t, &why), SC_EINVAL, "a missing aud is refused when an audience is configured");
  free(t);
  api_auth_free(a);
}

Test(api_auth, refuses_alg_none_and_garbage) {
  api_auth_t *a = hs_auth(NULL, NULL);
  const char *why;
  char *t = make_token("{\"alg\":\"none\"}", "{}", NULL, 0, NULL, 0);
  cr_assert_eq(verify(a, t, &why), SC_EINVAL);
  cr_assert_str_eq(why, "token algorithm not accepted");
  free(t);
  t = make_token("{\"alg\":\"HS512\"}", "{}", (const unsigned char *)secret, sizeof secret - 1, NULL, 0);
  cr_assert_eq(verify(a, t, &why), SC_EINVAL);
  free(t);
  const char *bad[] = {"", "a", "a.b", "a.b.c.d", "!!.e30.AAAA", "e30.e30.", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) cr_assert_eq(verify(a, bad[i], &why), SC_EINVAL, "%s", bad[i]);
  api_auth_free(a);
}

Test(api_auth, rs256_key_refuses_an_hs256_token_signed_with_the_public_key_pem) {
  EVP_PKEY *pk = EVP_RSA_gen(2048);
  cr_assert_not_null(pk);
  char *kf = pubkey_file(pk, "rsa.pub");
  api_auth_opts_t o = {NULL, kf, NULL, NULL, NULL};
  api_auth_t *a = NULL;
  char err[256];
  cr_assert_eq(api_auth_new(&a, &o, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(api_auth_alg(a), "RS256");
  const char *why;
  char *t = make_token("{\"alg\":\"RS256\"}", "{\"sub\":\"r\"}", NULL, 0, pk, 0);
  cr_assert_eq(verify(a, t, &why), 0);
  free(t);
  size_t pl;
  char *pem = read_all(kf, &pl);
  t = make_token(HS, "{\"sub\":\"r\"}", (const unsigned char *)pem, pl, NULL, 0);
  cr_assert_eq(verify(a, t, &why), SC_EINVAL);
  cr_assert_str_eq(why, "token algorithm not accepted");
  free(t);
  free(pem);
  free(kf);
  api_auth_free(a);
  EVP_PKEY_free(pk);
}

Test(api_auth, es256_tokens_verify_against_a_p256_key) {
  EVP_PKEY *pk = EVP_EC_gen("P-256");
  cr_assert_not_null(pk);
  char *kf = pubkey_file(pk, "ec.pub");
  api_auth_opts_t o = {NULL, kf, NULL, NULL, NULL};
  api_auth_t *a = NULL;
  char err[256];
  cr_assert_eq(api_auth_new(&a, &o, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(api_auth_alg(a), "ES256");
  const char *why;
  char *t = make_token("{\"alg\":\"ES256\"}", "{\"sub\":\"e\"}", NULL, 0, pk, 1);
  cr_assert_eq(verify(a, t, &why), 0);
  t[strlen(t) - 2] ^= 1; /* flip a signature bit */
  cr_assert_eq(verify(a, t, &why), SC_EINVAL);
  free(t);
  t = make_token("{\"alg\":\"RS256\"}", "{}", NULL, 0, pk, 1);
  cr_assert_eq(verify(a, t, &why), SC_EINVAL);
  free(t);
  free(kf);
  api_auth_free(a);
  EVP_PKEY_free(pk);
}

Test(api_auth, config_errors_name_the_problem) {
  api_auth_t *a = NULL;
  char err[256];
  api_auth_opts_t none = {NULL, NULL, NULL, NULL, NULL};
  cr_assert_eq(api_auth_new(&a, &none, err, sizeof err), 0);
  cr_assert_null(a);
  char *f = write_file("short", "short", 5);
  api_auth_opts_t shorts = {f, NULL, NULL, NULL, NULL};
  cr_assert_eq(api_auth_new(&a, &shorts, err, sizeof err), SC_ECONFIG);
  cr_assert(strstr(err, "32 bytes") != NULL);
  api_auth_opts_t both = {f, f, NULL, NULL, NULL};
  cr_assert_eq(api_auth_new(&a, &both, err, sizeof err), SC_ECONFIG);
  api_auth_opts_t pubonly = {NULL, NULL, NULL, NULL, "public/*"};
  cr_assert_eq(api_auth_new(&a, &pubonly, err, sizeof err), SC_ECONFIG);
  api_auth_opts_t badkey = {NULL, f, NULL, NULL, NULL};
  cr_assert_eq(api_auth_new(&a, &badkey, err, sizeof err), SC_ECONFIG);
  free(f);
}

static sc_sse_filter_t filter_of(const char *const *p, size_t n) {
  sc_sse_filter_t f = {0};
  const char *why;
  for (size_t i = 0; i < n; i++) cr_assert_eq(sc_sse_filter_add(&f, p[i], strlen(p[i]), &why), 0);
  return f;
}

Test(api_auth_scope, requested_patterns_must_be_inside_granted_ones) {
  const char *g[] = {"sensors/*", "room/1/temp", "*/status"};
  sc_sse_filter_t f = filter_of(g, 3);
#define COV(p) api_auth_covers(&f, NULL, p, strlen(p))
  cr_assert(COV("sensors/kitchen"));
  cr_assert(COV("sensors/*"));
  cr_assert(COV("sensors/kitchen/*"));
  cr_assert(COV("sensors/*/temp"));
  cr_assert(COV("room/1/temp"));
  cr_assert(COV("pump/status"));
  cr_assert(COV("*/status"));
  cr_assert_not(COV("sens*"));
  cr_assert_not(COV("*"));
  cr_assert_not(COV("room/*"));
  cr_assert_not(COV("room/1/temp*"));
  cr_assert_not(COV("pump/*/status"), "conservative: not provably inside */status by the prefix rule");
  cr_assert_not(COV("other"));
#undef COV
  const char *all[] = {"*"};
  sc_sse_filter_t fa = filter_of(all, 1);
  cr_assert(api_auth_covers(&fa, NULL, "a/*/b*", 6));
  cr_assert(api_auth_covers(NULL, &fa, "x", 1));
  sc_sse_filter_dispose(&f);
  sc_sse_filter_dispose(&fa);
}

Test(api_auth_scope, access_token_is_redacted_from_logged_paths) {
  char out[256];
  const char *p = "/events?topic=a&access_token=eyJ.secret.sig&x=1";
  api_auth_redact(p, strlen(p), out, sizeof out);
  cr_assert_str_eq(out, "/events?topic=a&access_token=REDACTED&x=1");
  p = "/events?access_token=abc";
  api_auth_redact(p, strlen(p), out, sizeof out);
  cr_assert_str_eq(out, "/events?access_token=REDACTED");
  p = "/x/access_token=abc";
  api_auth_redact(p, strlen(p), out, sizeof out);
  cr_assert_str_eq(out, p);
  api_auth_redact(p, strlen(p), out, 5);
  cr_assert_str_eq(out, "/x/a");
}

Test(api_ratelimit, a_bucket_allows_its_burst_then_says_when_to_retry) {
  api_rl_t *rl = NULL;
  cr_assert_eq(api_rl_new(&rl, 0.5, 3, 10), 0);
  for (int i = 0; i < 3; i++) cr_assert_eq(api_rl_take(rl, "sub:a", 1000), 0);
  cr_assert_eq(api_rl_take(rl, "sub:a", 1000), 2, "0.5/s: the next token in 2 s");
  cr_assert_eq(api_rl_take(rl, "sub:b", 1000), 0, "keys are independent");
  cr_assert_eq(api_rl_take(rl, "sub:a", 3000), 0, "refilled after 2 s");
  api_rl_free(rl);
  cr_assert_eq(api_rl_new(&rl, 0, 3, 10), 0);
  cr_assert_null(rl, "rate 0 is off");
  cr_assert_eq(api_rl_take(NULL, "x", 0), 0);
}

Test(api_ratelimit, memory_stays_bounded_by_evicting_the_least_recent_key) {
  api_rl_t *rl = NULL;
  cr_assert_eq(api_rl_new(&rl, 1, 1, 100), 0);
  char k[32];
  for (int i = 0; i < 10000; i++) {
    snprintf(k, sizeof k, "addr:%d", i);
    api_rl_take(rl, k, 0);
  }
  cr_assert_eq(api_rl_count(rl), 100);
  cr_assert_eq(api_rl_take(rl, "addr:9999", 0), 1, "recent keys keep their bucket");
  cr_assert_eq(api_rl_take(rl, "addr:0", 0), 0, "an evicted key starts again full");
  api_rl_free(rl);
}
