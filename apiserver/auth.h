/*
 * auth: JWT bearer tokens for the apiserver (subscribe and publish scopes).
 *
 * Verification uses OpenSSL only (HMAC-SHA256, EVP_DigestVerify); no JWT
 * library. The accepted algorithm is fixed by the configured key, never by
 * the token: a secret file means HS256 only; a PEM public key means RS256
 * (RSA key) or ES256 (P-256 key) only. So "alg":"none", any other alg, and
 * the key-confusion attack (an HS256 token "signed" with the public key PEM)
 * are all refused before any signature check.
 *
 * Claims: exp (refused when now >= exp; optional), nbf (refused when now +
 * API_AUTH_LEEWAY_S < nbf), aud (string or array; must contain the
 * configured audience when one is set), iss (must equal the configured
 * issuer when set), sub (rate-limit key), and
 *   "statecast": {"subscribe": [patterns], "publish": [patterns]}
 * with patterns in the /events topic= syntax (see sse.h).
 *
 * Scope rule (conservative containment): a requested pattern p is covered
 * by a granted pattern g when
 *   - p has no '*': g matches p as a glob;
 *   - p has a '*': p == g, or g is "<prefix>*" (one trailing '*', none
 *     before) and p's literal text before its first '*' starts with prefix
 *     (granted sensors/+star covers sensors/kitchen/+star).
 * Anything else is refused (403) even if it is in fact contained.
 */
#ifndef API_AUTH_H
#define API_AUTH_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

#include "sse.h"

#define API_AUTH_LEEWAY_S 30
#define API_AUTH_COOKIE "statecast_token"
#define API_AUTH_QUERY "access_token"

typedef struct api_auth api_auth_t;

typedef struct api_auth_opts {
  const char *secret_file;     /* HS256 secret (whole file, trailing newline stripped); or NULL */
  const char *public_key_file; /* PEM public key (RSA: RS256, EC P-256: ES256); or NULL */
  const char *audience;        /* required aud, or NULL */
  const char *issuer;          /* required iss, or NULL */
  const char *public_topics;   /* comma-separated patterns readable without a token, or NULL */
} api_auth_opts_t;

/* Verified claims. Caller releases with api_claims_dispose(). */
typedef struct api_claims {
  sc_sse_filter_t subscribe; /* owned */
  sc_sse_filter_t publish;   /* owned */
  int64_t exp;               /* 0: no exp claim */
  char key[72];              /* rate-limit key: "sub:<sub>" or "tok:<sha256 prefix>" */
} api_claims_t;

/*
 * Build the checker. Exactly one of secret_file / public_key_file may be
 * set; neither means auth is off (*out NULL, returns 0) unless public_topics
 * is set too (an error: nothing would need a token). Returns 0, SC_ECONFIG
 * (reason in err) or SC_ENOMEM. Caller frees with api_auth_free().
 */
__attribute__((warn_unused_result)) int api_auth_new(api_auth_t **out, const api_auth_opts_t *o, char *err,
                                                    size_t errlen);
void api_auth_free(api_auth_t *a);
/* "HS256", "RS256" or "ES256". */
const char *api_auth_alg(const api_auth_t *a);
/* Patterns readable without a token (may be empty). Borrowed. */
const sc_sse_filter_t *api_auth_public(const api_auth_t *a);

/*
 * Verify tok[0..len) at wall-clock time now (seconds). Returns 0 and fills
 * *c, or SC_EINVAL with *reason (static text, safe to show the client: it
 * never contains the token).
 */
__attribute__((warn_unused_result)) int api_auth_verify(const api_auth_t *a, const char *tok, size_t len, int64_t now,
                                                       api_claims_t *c, const char **reason);
void api_claims_dispose(api_claims_t *c);

/* 1 when every topic p[0..len) can match is matched by some pattern of any
 * of the filters (rule above); NULL filters are skipped. */
int api_auth_covers(const sc_sse_filter_t *g1, const sc_sse_filter_t *g2, const char *p, size_t len);

/* The token of a request: Authorization: Bearer, else the statecast_token
 * cookie, else the access_token query parameter (raw, not decoded: base64url
 * needs none). Returns 1 with *tok (borrowed from req), or 0. */
int api_auth_token_of(h2o_req_t *req, h2o_iovec_t *tok);

/* Copy path[0..len) into out (cap bytes, NUL-terminated, truncated) with the
 * value of every access_token= query parameter replaced by "REDACTED".
 * Returns the length written. */
size_t api_auth_redact(const char *path, size_t len, char *out, size_t cap);

#endif

/* ---- request gate (answers 401/403 itself) ---------------------------- */

/*
 * Authenticate req when auth is on (a non-NULL). Fills *c (always dispose
 * it) from the request's token; a request without a token gets empty
 * claims (public topics only). An invalid token is answered 401 with
 * WWW-Authenticate and logged with its path redacted; returns -1 then
 * (answered), else 0. *has_token tells whether a valid token was given.
 */
int api_auth_gate(const api_auth_t *a, h2o_req_t *req, int64_t now, api_claims_t *c, int *has_token);
/*
 * Restrict a subscription to what c (plus the public topics) grants: an
 * empty filter f becomes every granted pattern; otherwise every requested
 * pattern must be covered. On refusal answers 403 (or 401 when no token
 * was given, with WWW-Authenticate) and returns -1; 0 when allowed.
 */
int api_auth_scope(const api_auth_t *a, h2o_req_t *req, const api_claims_t *c, int has_token, sc_sse_filter_t *f);
/* 401 with WWW-Authenticate: Bearer realm="statecast"[, error="invalid_token", error_description=why]. */
void api_auth_respond_401(h2o_req_t *req, const char *why, int invalid);
