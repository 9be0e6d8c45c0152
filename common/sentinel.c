/*
 * sentinel: blocking primary discovery through Redis Sentinel (see sentinel.h).
 *
 * Kept blocking on purpose: discovery runs once per connect attempt, every
 * step has a timeout, and a refused connection to a dead sentinel fails at
 * once on a real network stack. Async users pay at most
 * timeout_ms x (number of sentinels) of loop time per attempt, and only
 * while the primary is unreachable anyway.
 */
#include "sentinel.h"

#include "err.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

typedef struct entry {
  char host[256];
  int port;
} entry_t;

/* Parses list into at most SC_SENTINEL_MAX entries. */
static int parse_list(const char *list, entry_t *out, int *n, char *err, size_t errlen) {
  *n = 0;
  if (list == NULL) return errf(err, errlen, SC_EINVAL, "no sentinels given");
  const char *p = list;
  for (;;) {
    while (*p == ' ' || *p == '\t') p++;
    size_t len = strcspn(p, ",");
    size_t tlen = len;
    while (tlen > 0 && (p[tlen - 1] == ' ' || p[tlen - 1] == '\t')) tlen--;
    if (tlen == 0) return errf(err, errlen, SC_EINVAL, "empty entry in the sentinel list '%s'", list);
    if (*n == SC_SENTINEL_MAX)
      return errf(err, errlen, SC_EINVAL, "more than %d sentinels in '%s'", SC_SENTINEL_MAX, list);
    const char *hs = p, *he, *colon;
    if (p[0] == '[') {
      const char *rb = memchr(p, ']', tlen);
      if (rb == NULL || rb + 1 >= p + tlen || rb[1] != ':')
        return errf(err, errlen, SC_EINVAL, "sentinel '%.*s': expected [ipv6]:port", (int)tlen, p);
      hs = p + 1;
      he = rb;
      colon = rb + 1;
    } else {
      colon = NULL;
      for (const char *q = p; q < p + tlen; q++)
        if (*q == ':') colon = q;
      if (colon == NULL || memchr(p, ':', (size_t)(colon - p)) != NULL)
        return errf(err, errlen, SC_EINVAL, "sentinel '%.*s': expected host:port", (int)tlen, p);
      he = colon;
    }
    size_t hlen = (size_t)(he - hs);
    if (hlen == 0 || hlen >= sizeof out[0].host)
      return errf(err, errlen, SC_EINVAL, "sentinel '%.*s': bad host", (int)tlen, p);
    long port = 0;
    const char *d = colon + 1;
    if (d >= p + tlen) return errf(err, errlen, SC_EINVAL, "sentinel '%.*s': missing port", (int)tlen, p);
    for (; d < p + tlen; d++) {
      if (*d < '0' || *d > '9' || port > 65535)
        return errf(err, errlen, SC_EINVAL, "sentinel '%.*s': port is not a number in 1..65535", (int)tlen, p);
      port = port * 10 + (*d - '0');
    }
    if (port < 1 || port > 65535)
      return errf(err, errlen, SC_EINVAL, "sentinel '%.*s': port is not a number in 1..65535", (int)tlen, p);
    memcpy(out[*n].host, hs, hlen);
    out[*n].host[hlen] = '\0';
    out[*n].port = (int)port;
    (*n)++;
    p += len;
    if (*p == '\0') break;
    p++; /* ',' */
  }
  return 0;
}

int sc_sentinel_list_check(const char *list, char *err, size_t errlen) {
  entry_t e[SC_SENTINEL_MAX];
  int n;
  return parse_list(list, e, &n, err, errlen);
}

/* One sentinel. 0 with *host and *port, SC_ENOENT (unknown name), SC_ECONN, SC_EREDIS, SC_ENOMEM. */
static int ask_one(const entry_t *e, const char *name, struct timeval tv, char **host, int *port, char *why,
                   size_t whylen) {
  int rc;
  redisReply *reply = NULL;
  redisContext *c = redisConnectWithTimeout(e->host, e->port, tv);
  if (c == NULL) return errf(why, whylen, SC_ENOMEM, "out of memory");
  if (c->err != 0) {
    rc = errf(why, whylen, SC_ECONN, "%s", c->errstr);
    goto out;
  }
  if (redisSetTimeout(c, tv) != REDIS_OK) {
    rc = errf(why, whylen, SC_ECONN, "cannot set a timeout");
    goto out;
  }
  reply = redisCommand(c, "SENTINEL get-master-addr-by-name %s", name);
  if (reply == NULL) {
    rc = errf(why, whylen, SC_ECONN, "%s", c->errstr[0] != '\0' ? c->errstr : "no answer");
    goto out;
  }
  if (reply->type == REDIS_REPLY_NIL) {
    rc = errf(why, whylen, SC_ENOENT, "does not know a master named '%s'", name);
    goto out;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    rc = errf(why, whylen, SC_EREDIS, "answered: %s", reply->str);
    goto out;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
      reply->element[1]->type != REDIS_REPLY_STRING) {
    rc = errf(why, whylen, SC_EREDIS, "unexpected answer (type %d)", reply->type);
    goto out;
  }
  char *end = NULL;
  long pv = strtol(reply->element[1]->str, &end, 10);
  if (reply->element[0]->len == 0 || end == reply->element[1]->str || *end != '\0' || pv < 1 || pv > 65535) {
    rc = errf(why, whylen, SC_EREDIS, "answered a bad address");
    goto out;
  }
  *host = strdup(reply->element[0]->str);
  if (*host == NULL) {
    rc = errf(why, whylen, SC_ENOMEM, "out of memory");
    goto out;
  }
  *port = (int)pv;
  rc = 0;
out:
  if (reply != NULL) freeReplyObject(reply);
  redisFree(c);
  return rc;
}

int sc_sentinel_resolve(const char *list, const char *name, int timeout_ms, char **host, int *port, char *err,
                        size_t errlen) {
  entry_t e[SC_SENTINEL_MAX];
  int n, rc;
  *host = NULL;
  *port = 0;
  if (name == NULL || name[0] == '\0') return errf(err, errlen, SC_EINVAL, "no master name given");
  rc = parse_list(list, e, &n, err, errlen);
  if (rc != 0) return rc;
  if (timeout_ms <= 0) timeout_ms = 1000;
  struct timeval tv = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000L};
  int saw_unknown = 0;
  char why[256] = "", last[400] = "";
  for (int i = 0; i < n; i++) {
    rc = ask_one(&e[i], name, tv, host, port, why, sizeof why);
    if (rc == 0) return 0;
    if (rc == SC_ENOMEM) return errf(err, errlen, rc, "out of memory");
    if (rc == SC_ENOENT) saw_unknown = 1;
    snprintf(last, sizeof last, "sentinel %.100s:%d: %.200s", e[i].host, e[i].port, why);
  }
  return errf(err, errlen, saw_unknown ? SC_ENOENT : SC_ECONN, "no sentinel gave the address of master '%.64s' (last: %.320s)",
              name, last);
}

int sc_sentinel_check_master(redisContext *c, char *err, size_t errlen) {
  redisReply *reply = redisCommand(c, "ROLE");
  if (reply == NULL)
    return errf(err, errlen, SC_ECONN, "ROLE: %s", c->errstr[0] != '\0' ? c->errstr : "connection lost");
  int rc = 0;
  if (reply->type == REDIS_REPLY_ERROR) {
    rc = errf(err, errlen, SC_EREDIS, "ROLE: %s", reply->str);
  } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 || reply->element[0]->type != REDIS_REPLY_STRING ||
             strcmp(reply->element[0]->str, "master") != 0) {
    rc = errf(err, errlen, SC_EREDIS, "the node is not a master (ROLE says %s)",
              reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 && reply->element[0]->type == REDIS_REPLY_STRING
                  ? reply->element[0]->str
                  : "something else");
  }
  freeReplyObject(reply);
  return rc;
}
