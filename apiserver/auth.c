/*
 * auth: JWT verification with OpenSSL, scope containment, token lookup and
 * log redaction (see auth.h).
 */
#include "auth.h"

#include "err.h"
#include "httpd.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKEN 16384
#define MAX_SECRET 4096

typedef enum { ALG_HS256, ALG_RS256, ALG_ES256 } alg_t;

struct api_auth {
  alg_t alg;
  unsigned char *secret; /* owned (HS256) */
  size_t secret_len;
  EVP_PKEY *pkey; /* owned (RS256/ES256) */
  char *audience; /* owned or NULL */
  char *issuer;   /* owned or NULL */
  sc_sse_filter_t pub; /* owned */
};

static const char *const alg_names[] = {"HS256", "RS256", "ES256"};

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Read a whole small file; malloc'd, NUL-terminated. */
static unsigned char *read_file(const char *path, size_t *len, size_t max) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  unsigned char *buf = malloc(max + 1);
  size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
  fclose(f);
  if (buf == NULL || n > max) {
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

static int add_list(sc_sse_filter_t *f, const char *list, char *err, size_t errlen) {
  const char *p = list;
  while (*p) {
    const char *c = strchr(p, ',');
    size_t l = c ? (size_t)(c - p) : strlen(p);
    while (l > 0 && (*p == ' ' || *p == '\t')) p++, l--;
    while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t')) l--;
    if (l > 0) {
      const char *why = "bad pattern";
      int rc = sc_sse_filter_add(f, p, l, &why);
      if (rc != 0) {
        set_err(err, errlen, "public_topics: \"%.*s\": %s", (int)l, p, rc == SC_ENOMEM ? "out of memory" : why);
        return rc == SC_ENOMEM ? SC_ENOMEM : SC_ECONFIG;
      }
    }
    if (c == NULL) break;
    p = c + 1;
  }
  return 0;
}

int api_auth_new(api_auth_t **out, const api_auth_opts_t *o, char *err, size_t errlen) {
  *out = NULL;
  int has_secret = o->secret_file != NULL && o->secret_file[0] != '\0';
  int has_key = o->public_key_file != NULL && o->public_key_file[0] != '\0';
  if (has_secret && has_key) {
    set_err(err, errlen, "set jwt_secret_file or jwt_public_key_file, not both");
    return SC_ECONFIG;
  }
  if (!has_secret && !has_key) {
    if (o->public_topics != NULL && o->public_topics[0] != '\0') {
      set_err(err, errlen, "public_topics needs jwt_secret_file or jwt_public_key_file (without them all is public)");
      return SC_ECONFIG;
    }
    return 0;
  }
  int rc = SC_ENOMEM;
  api_auth_t *a = calloc(1, sizeof *a);
  if (a == NULL) goto fail;
  if (has_secret) {
    a->alg = ALG_HS256;
    a->secret = read_file(o->secret_file, &a->secret_len, MAX_SECRET);
    if (a->secret == NULL) {
      set_err(err, errlen, "jwt_secret_file %s: cannot read (missing, or over %d bytes)", o->secret_file, MAX_SECRET);
      rc = SC_ECONFIG;
      goto fail;
    }
    while (a->secret_len > 0 && (a->secret[a->secret_len - 1] == '\n' || a->secret[a->secret_len - 1] == '\r'))
      a->secret_len--;
    if (a->secret_len < 32) {
      set_err(err, errlen, "jwt_secret_file %s: an HS256 secret needs at least 32 bytes", o->secret_file);
      rc = SC_ECONFIG;
      goto fail;
    }
  } else {
    FILE *f = fopen(o->public_key_file, "r");
    if (f != NULL) {
      a->pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
      fclose(f);
    }
    if (a->pkey == NULL) {
      set_err(err, errlen, "jwt_public_key_file %s: not a readable PEM public key", o->public_key_file);
      rc = SC_ECONFIG;
      goto fail;
    }
    if (EVP_PKEY_is_a(a->pkey, "RSA")) {
      a->alg = ALG_RS256;
      if (EVP_PKEY_get_bits(a->pkey) < 2048) {
        set_err(err, errlen, "jwt_public_key_file %s: RSA keys need at least 2048 bits", o->public_key_file);
        rc = SC_ECONFIG;
        goto fail;
      }
    } else if (EVP_PKEY_is_a(a->pkey, "EC")) {
      char group[64];
      size_t gl = 0;
      if (!EVP_PKEY_get_utf8_string_param(a->pkey, "group", group, sizeof group, &gl) ||
          strcmp(group, "prime256v1") != 0) {
        set_err(err, errlen, "jwt_public_key_file %s: EC keys must be P-256 (ES256)", o->public_key_file);
        rc = SC_ECONFIG;
        goto fail;
      }
      a->alg = ALG_ES256;
    } else {
      set_err(err, errlen, "jwt_public_key_file %s: only RSA (RS256) and EC P-256 (ES256) keys", o->public_key_file);
      rc = SC_ECONFIG;
      goto fail;
    }
  }
  if (o->audience != NULL && o->audience[0] != '\0' && (a->audience = strdup(o->audience)) == NULL) goto fail;
  if (o->issuer != NULL && o->issuer[0] != '\0' && (a->issuer = strdup(o->issuer)) == NULL) goto fail;
  if (o->public_topics != NULL && (rc = add_list(&a->pub, o->public_topics, err, errlen)) != 0) goto fail;
  *out = a;
  return 0;
fail:
  if (rc == SC_ENOMEM) set_err(err, errlen, "out of memory");
  api_auth_free(a);
  return rc;
}

void api_auth_free(api_auth_t *a) {
  if (a == NULL) return;
  if (a->secret != NULL) OPENSSL_cleanse(a->secret, a->secret_len);
  free(a->secret);
  EVP_PKEY_free(a->pkey);
  free(a->audience);
  free(a->issuer);
  sc_sse_filter_dispose(&a->pub);
  free(a);
}

const char *api_auth_alg(const api_auth_t *a) { return alg_names[a->alg]; }
const sc_sse_filter_t *api_auth_public(const api_auth_t *a) { return &a->pub; }

/* ---- verification ----------------------------------------------------- */

static int b64url_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

/* Decode unpadded base64url s[0..len) into out (room for len bytes).
 * Returns the decoded length, or -1 on a bad character or length. */
static long b64url_decode(const char *s, size_t len, unsigned char *out) {
  if (len % 4 == 1) return -1;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = b64url_val((unsigned char)s[i]);
    if (v < 0) return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  return (long)o;
}

/* Decode a base64url JSON segment and parse it (an object). NULL on error. */
static cJSON *json_segment(const char *s, size_t len) {
  unsigned char *buf = malloc(len + 1);
  if (buf == NULL) return NULL;
  long n = b64url_decode(s, len, buf);
  cJSON *j = NULL;
  if (n >= 0) {
    buf[n] = '\0';
    j = cJSON_ParseWithLength((const char *)buf, (size_t)n);
    if (j != NULL && !cJSON_IsObject(j)) {
      cJSON_Delete(j);
      j = NULL;
    }
  }
  free(buf);
  return j;
}

static int verify_sig(const api_auth_t *a, const char *input, size_t ilen, const unsigned char *sig, size_t slen) {
  if (a->alg == ALG_HS256) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    if (HMAC(EVP_sha256(), a->secret, (int)a->secret_len, (const unsigned char *)input, ilen, mac, &ml) == NULL)
      return 0;
    return slen == ml && CRYPTO_memcmp(mac, sig, ml) == 0;
  }
  unsigned char *der = NULL;
  const unsigned char *use = sig;
  size_t ulen = slen;
  int ok = 0;
  if (a->alg == ALG_ES256) {
    /* JWS carries r||s (32 bytes each); OpenSSL wants DER. */
    if (slen != 64) return 0;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
      BN_free(r);
      BN_free(s);
      ECDSA_SIG_free(es);
      return 0;
    }
    int dl = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    if (dl <= 0) return 0;
    use = der;
    ulen = (size_t)dl;
  }
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, a->pkey) == 1 &&
      EVP_DigestVerify(md, use, ulen, (const unsigned char *)input, ilen) == 1)
    ok = 1;
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  return ok;
}

static int add_patterns(sc_sse_filter_t *f, const cJSON *arr) {
  if (arr == NULL) return 0;
  if (!cJSON_IsArray(arr)) return SC_EINVAL;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    const char *why;
    if (!cJSON_IsString(it) || sc_sse_filter_add(f, it->valuestring, strlen(it->valuestring), &why) != 0)
      return SC_EINVAL;
  }
  return 0;
}

int api_auth_verify(const api_auth_t *a, const char *tok, size_t len, int64_t now, api_claims_t *c,
                    const char **reason) {
  memset(c, 0, sizeof *c);
  cJSON *hdr = NULL, *pl = NULL;
  unsigned char *sig = NULL;
  int rc = SC_EINVAL;
  *reason = "malformed token";
  if (len == 0 || len > MAX_TOKEN) goto fail;
  const char *d1 = memchr(tok, '.', len);
  const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
  if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) != NULL) goto fail;
  hdr = json_segment(tok, (size_t)(d1 - tok));
  if (hdr == NULL) goto fail;
  const cJSON *alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
  if (!cJSON_IsString(alg)) goto fail;
  /* The key decides the algorithm; the token's header only has to agree. */
  if (strcmp(alg->valuestring, alg_names[a->alg]) != 0) {
    *reason = "token algorithm not accepted";
    goto fail;
  }
  size_t slen_enc = len - (size_t)(d2 + 1 - tok);
  sig = malloc(slen_enc + 1);
  if (sig == NULL) goto fail;
  long sl = b64url_decode(d2 + 1, slen_enc, sig);
  if (sl <= 0) goto fail;
  if (!verify_sig(a, tok, (size_t)(d2 - tok), sig, (size_t)sl)) {
    *reason = "bad signature";
    goto fail;
  }
  pl = json_segment(d1 + 1, (size_t)(d2 - d1 - 1));
  if (pl == NULL) goto fail;
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(pl, "exp");
  const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(pl, "nbf");
  if ((exp != NULL && !cJSON_IsNumber(exp)) || (nbf != NULL && !cJSON_IsNumber(nbf))) goto fail;
  if (exp != NULL && (double)now >= exp->valuedouble) {
    *reason = "token expired";
    goto fail;
  }
  if (nbf != NULL && (double)(now + API_AUTH_LEEWAY_S) < nbf->valuedouble) {
    *reason = "token not yet valid";
    goto fail;
  }
  if (a->audience != NULL) {
    const cJSON *aud = cJSON_GetObjectItemCaseSensitive(pl, "aud"), *it;
    int found = cJSON_IsString(aud) && strcmp(aud->valuestring, a->audience) == 0;
    if (cJSON_IsArray(aud))
      cJSON_ArrayForEach(it, aud) if (cJSON_IsString(it) && strcmp(it->valuestring, a->audience) == 0) found = 1;
    if (!found) {
      *reason = "wrong audience";
      goto fail;
    }
  }
  if (a->issuer != NULL) {
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(pl, "iss");
    if (!cJSON_IsString(iss) || strcmp(iss->valuestring, a->issuer) != 0) {
      *reason = "wrong issuer";
      goto fail;
    }
  }
  const cJSON *sc = cJSON_GetObjectItemCaseSensitive(pl, "statecast");
  if (sc != NULL && !cJSON_IsObject(sc)) goto fail;
  if (add_patterns(&c->subscribe, cJSON_GetObjectItemCaseSensitive(sc, "subscribe")) != 0 ||
      add_patterns(&c->publish, cJSON_GetObjectItemCaseSensitive(sc, "publish")) != 0) {
    *reason = "bad statecast claim";
    goto fail;
  }
  if (exp != NULL) c->exp = exp->valuedouble > 9e15 ? INT64_MAX : (int64_t)exp->valuedouble;
  const cJSON *sub = cJSON_GetObjectItemCaseSensitive(pl, "sub");
  if (cJSON_IsString(sub) && strlen(sub->valuestring) <= 64) {
    snprintf(c->key, sizeof c->key, "sub:%s", sub->valuestring);
  } else {
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)tok, len, h);
    int n = snprintf(c->key, sizeof c->key, "tok:");
    for (int i = 0; i < 16; i++) n += snprintf(c->key + n, sizeof c->key - (size_t)n, "%02x", h[i]);
  }
  rc = 0;
fail:
  if (rc != 0) api_claims_dispose(c);
  cJSON_Delete(hdr);
  cJSON_Delete(pl);
  free(sig);
  return rc;
}

void api_claims_dispose(api_claims_t *c) {
  sc_sse_filter_dispose(&c->subscribe);
  sc_sse_filter_dispose(&c->publish);
}

/* ---- scope ------------------------------------------------------------ */

static int covered_by(const sc_sse_pattern_t *g, const char *p, size_t len) {
  const char *star = memchr(p, '*', len);
  if (star == NULL) return sc_sse_glob_match(g->text, g->len, p, len);
  if (g->len == len && memcmp(g->text, p, len) == 0) return 1;
  const char *gstar = memchr(g->text, '*', g->len);
  if (gstar == NULL || gstar != g->text + g->len - 1) return 0;
  size_t prefix = g->len - 1, literal = (size_t)(star - p);
  return literal >= prefix && memcmp(g->text, p, prefix) == 0;
}

int api_auth_covers(const sc_sse_filter_t *g1, const sc_sse_filter_t *g2, const char *p, size_t len) {
  const sc_sse_filter_t *gs[2] = {g1, g2};
  for (int k = 0; k < 2; k++) {
    if (gs[k] == NULL) continue;
    for (unsigned i = 0; i < gs[k]->n; i++)
      if (covered_by(&gs[k]->pats[i], p, len)) return 1;
  }
  return 0;
}

/* ---- requests --------------------------------------------------------- */

int api_auth_token_of(h2o_req_t *req, h2o_iovec_t *tok) {
  ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
  if (i >= 0) {
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len > 7 && h2o_lcstris(v.base, 7, H2O_STRLIT("bearer "))) {
      size_t o = 7;
      while (o < v.len && v.base[o] == ' ') o++;
      *tok = h2o_iovec_init(v.base + o, v.len - o);
      return tok->len > 0;
    }
  }
  for (i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) >= 0;) {
    h2o_iovec_t v = req->headers.entries[i].value;
    const char *p = v.base, *end = v.base + v.len;
    while (p < end) {
      while (p < end && (*p == ' ' || *p == ';')) p++;
      const char *semi = memchr(p, ';', (size_t)(end - p));
      if (semi == NULL) semi = end;
      size_t nl = sizeof API_AUTH_COOKIE - 1;
      if ((size_t)(semi - p) > nl && memcmp(p, API_AUTH_COOKIE, nl) == 0 && p[nl] == '=') {
        *tok = h2o_iovec_init(p + nl + 1, (size_t)(semi - p - (ptrdiff_t)nl - 1));
        return tok->len > 0;
      }
      p = semi;
    }
  }
  if (req->query_at != SIZE_MAX) {
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nl = sizeof API_AUTH_QUERY - 1;
    while (q < end) {
      const char *amp = memchr(q, '&', (size_t)(end - q));
      if (amp == NULL) amp = end;
      if ((size_t)(amp - q) > nl && memcmp(q, API_AUTH_QUERY, nl) == 0 && q[nl] == '=') {
        *tok = h2o_iovec_init(q + nl + 1, (size_t)(amp - q - (ptrdiff_t)nl - 1));
        return tok->len > 0;
      }
      q = amp + 1;
    }
  }
  return 0;
}

size_t api_auth_redact(const char *path, size_t len, char *out, size_t cap) {
  if (cap == 0) return 0;
  size_t o = 0, nl = sizeof API_AUTH_QUERY - 1;
  const char *q = memchr(path, '?', len);
  size_t i = 0;
  while (i < len && o + 1 < cap) {
    int at_param = q != NULL && path + i > q && (path[i - 1] == '?' || path[i - 1] == '&');
    if (at_param && len - i > nl && memcmp(path + i, API_AUTH_QUERY, nl) == 0 && path[i + nl] == '=') {
      const char *rep = API_AUTH_QUERY "=REDACTED";
      for (const char *r = rep; *r && o + 1 < cap; r++) out[o++] = *r;
      while (i < len && path[i] != '&') i++;
      continue;
    }
    out[o++] = path[i++];
  }
  out[o] = '\0';
  return o;
}

/* ---- request gate ----------------------------------------------------- */

void api_auth_respond_401(h2o_req_t *req, const char *why, int invalid) {
  char hdr[256];
  int n = invalid ? snprintf(hdr, sizeof hdr, "Bearer realm=\"statecast\", error=\"invalid_token\", error_description=\"%s\"",
                             why)
                  : snprintf(hdr, sizeof hdr, "Bearer realm=\"statecast\"");
  if (n < 0 || (size_t)n >= sizeof hdr) n = (int)strlen(hdr);
  h2o_iovec_t v = h2o_strdup(&req->pool, hdr, (size_t)n);
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, v.base, v.len);
  sc_httpd_respond_error(req, 401, "Unauthorized", why);
}

static void log_refusal(h2o_req_t *req, int status, const char *why) {
  char path[512];
  api_auth_redact(req->path.base, req->path.len, path, sizeof path);
  SC_INFO("auth: %d %.*s %s: %s", status, (int)req->method.len, req->method.base, path, why);
}

int api_auth_gate(const api_auth_t *a, h2o_req_t *req, int64_t now, api_claims_t *c, int *has_token) {
  memset(c, 0, sizeof *c);
  *has_token = 0;
  if (a == NULL) return 0;
  h2o_iovec_t tok;
  if (!api_auth_token_of(req, &tok)) return 0;
  const char *why = "invalid token";
  if (api_auth_verify(a, tok.base, tok.len, now, c, &why) != 0) {
    log_refusal(req, 401, why);
    api_auth_respond_401(req, why, 1);
    return -1;
  }
  *has_token = 1;
  return 0;
}

int api_auth_scope(const api_auth_t *a, h2o_req_t *req, const api_claims_t *c, int has_token, sc_sse_filter_t *f) {
  if (a == NULL) return 0;
  const char *why = NULL;
  if (f->n == 0) {
    const sc_sse_filter_t *gs[2] = {&c->subscribe, &a->pub};
    for (int k = 0; k < 2 && why == NULL; k++)
      for (unsigned i = 0; i < gs[k]->n; i++) {
        const char *r;
        int rc = sc_sse_filter_add(f, gs[k]->pats[i].text, gs[k]->pats[i].len, &r);
        if (rc != 0) {
          why = rc == SC_ENOMEM ? "out of memory" : "too many granted patterns";
          break;
        }
      }
    if (why == NULL && f->n == 0) why = has_token ? "the token grants no topics" : "a token is required";
  } else {
    for (unsigned i = 0; i < f->n; i++)
      if (!api_auth_covers(&c->subscribe, &a->pub, f->pats[i].text, f->pats[i].len)) {
        why = has_token ? "topic not allowed by the token" : "a token is required for these topics";
        break;
      }
  }
  if (why == NULL) return 0;
  log_refusal(req, has_token ? 403 : 401, why);
  if (has_token)
    sc_httpd_respond_error(req, 403, "Forbidden", why);
  else
    api_auth_respond_401(req, why, 0);
  return -1;
}
