/*
 * redis_addr: where a Redis connection goes (see redis.h), pure, no I/O.
 *
 * Parses redis:// and unix:// URLs into an sc_redis_addr_t, switches an
 * address to sentinel mode, describes it for logs without credentials, and
 * wipes the password when the address is disposed. sc_redis_t (redis.c)
 * copies an address at sc_redis_new(); binconf.c and the publisher parse
 * theirs here from the configuration.
 *
 * Ownership: every string in an sc_redis_addr_t is malloc'd and owned by
 * the struct; sc_redis_addr_dispose() frees them all.
 */
#include "redis.h"

#include "err.h"
#include "sentinel.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_range(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p == NULL) return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..n) into a new string (*out, caller frees). 0, or
 * SC_EURL for a bad or NUL escape, SC_ENOMEM. */
static int pct_decode(const char *s, size_t n, char **out) {
  char *p = malloc(n + 1);
  if (p == NULL) return SC_ENOMEM;
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      p[j++] = s[i];
      continue;
    }
    if (i + 2 >= n) {
      free(p);
      return SC_EURL;
    }
    int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
    if (a < 0 || b < 0 || (a == 0 && b == 0)) {
      free(p);
      return SC_EURL;
    }
    p[j++] = (char)(a * 16 + b);
    i += 2;
  }
  p[j] = '\0';
  *out = p;
  return 0;
}

/* Parses s[0..n) as a decimal in [lo, hi]; 0 or -1. */
static int parse_int(const char *s, size_t n, long lo, long hi, int *out) {
  if (n == 0 || n > 10) return -1;
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  if (v < lo || v > hi) return -1;
  *out = (int)v;
  return 0;
}

#define URL_FAIL(...)                       \
  do {                                      \
    if (err != NULL && errlen > 0) snprintf(err, errlen, __VA_ARGS__); \
    rc = SC_EURL;                           \
    goto fail;                              \
  } while (0)

static int parse_unix(const char *rest, sc_redis_addr_t *out, char *err, size_t errlen) {
  int rc = 0;
  if (rest[0] != '/') URL_FAIL("unix socket path must be absolute (unix:///path)");
  const char *q = strchr(rest, '?');
  size_t plen = q != NULL ? (size_t)(q - rest) : strlen(rest);
  if (plen < 2) URL_FAIL("missing unix socket path");
  rc = pct_decode(rest, plen, &out->unix_path);
  if (rc == SC_EURL) URL_FAIL("bad percent-encoding in unix socket path");
  if (rc != 0) goto fail;
  if (q != NULL) {
    const char *p = q + 1;
    while (*p != '\0') {
      const char *amp = strchr(p, '&');
      size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
      if (len > 3 && strncmp(p, "db=", 3) == 0) {
        if (parse_int(p + 3, len - 3, 0, INT_MAX, &out->db) != 0)
          URL_FAIL("db '%.*s' is not a number >= 0", (int)(len - 3), p + 3);
      } else {
        URL_FAIL("unknown parameter '%.*s' (only db=N)", (int)len, p);
      }
      p += len;
      if (*p == '&') p++;
    }
  }
  return 0;
fail:
  return rc;
}

static int parse_tcp(const char *rest, sc_redis_addr_t *out, char *err, size_t errlen) {
  int rc = 0;
  const char *host = rest;
  /* Credentials end at the last '@', so an unencoded '@' or '/' in a
   * password still works; the host part cannot contain '@'. */
  const char *at = strrchr(rest, '@');
  if (at != NULL) {
    const char *colon = memchr(rest, ':', (size_t)(at - rest));
    if (colon == NULL) URL_FAIL("credentials must be ':password@' or 'user:password@'");
    if (colon > rest) {
      rc = pct_decode(rest, (size_t)(colon - rest), &out->user);
      if (rc == SC_EURL) URL_FAIL("bad percent-encoding in user");
      if (rc != 0) goto fail;
    }
    if (at == colon + 1) URL_FAIL("empty password");
    rc = pct_decode(colon + 1, (size_t)(at - colon - 1), &out->password);
    if (rc == SC_EURL) URL_FAIL("bad percent-encoding in password");
    if (rc != 0) goto fail;
    host = at + 1;
  }

  const char *p;
  if (host[0] == '[') {
    const char *rb = strchr(host, ']');
    if (rb == NULL) URL_FAIL("unterminated IPv6 address '%s'", host);
    if (rb == host + 1) URL_FAIL("missing host");
    out->host = dup_range(host + 1, (size_t)(rb - host - 1));
    p = rb + 1;
    if (*p != '\0' && *p != ':' && *p != '/') URL_FAIL("unexpected '%s' after IPv6 address", p);
  } else {
    size_t hlen = strcspn(host, ":/?#");
    if (hlen == 0) URL_FAIL("missing host");
    out->host = dup_range(host, hlen);
    p = host + hlen;
  }
  if (out->host == NULL) {
    rc = SC_ENOMEM;
    goto fail;
  }

  if (*p == ':') {
    p++;
    size_t len = strcspn(p, "/?#");
    if (parse_int(p, len, 1, 65535, &out->port) != 0)
      URL_FAIL("port '%.*s' is not a number in 1..65535", (int)len, p);
    p += len;
  }
  if (*p == '/') {
    p++;
    size_t len = strcspn(p, "?#");
    if (len > 0 && parse_int(p, len, 0, INT_MAX, &out->db) != 0)
      URL_FAIL("db '%.*s' is not a number >= 0", (int)len, p);
    p += len;
  }
  if (*p != '\0') URL_FAIL("unexpected '%s' at the end of the URL", p);
  return 0;
fail:
  return rc;
}

int sc_redis_url_parse(const char *url, sc_redis_addr_t *out, char *err, size_t errlen) {
  int rc = 0;
  memset(out, 0, sizeof *out);
  out->port = 6379;
  if (err != NULL && errlen > 0) err[0] = '\0';
  if (url == NULL || url[0] == '\0') URL_FAIL("empty Redis URL");
  const char *sep = strstr(url, "://");
  if (sep == NULL) URL_FAIL("missing scheme in '%s' (expected redis:// or unix://)", url);
  size_t slen = (size_t)(sep - url);
  if (slen == 5 && strncasecmp(url, "redis", 5) == 0) {
    rc = parse_tcp(sep + 3, out, err, errlen);
  } else if (slen == 4 && strncasecmp(url, "unix", 4) == 0) {
    out->port = 0;
    rc = parse_unix(sep + 3, out, err, errlen);
  } else {
    URL_FAIL("unsupported scheme '%.*s' (expected redis:// or unix://)", (int)slen, url);
  }
  if (rc != 0) goto fail;
  return 0;
fail:
  if (rc == SC_ENOMEM && err != NULL && errlen > 0) snprintf(err, errlen, "out of memory");
  sc_redis_addr_dispose(out);
  return rc;
}

void sc_redis_addr_dispose(sc_redis_addr_t *addr) {
  if (addr == NULL) return;
  free(addr->host);
  free(addr->unix_path);
  free(addr->user);
  free(addr->sentinels);
  free(addr->master_name);
  if (addr->password != NULL) {
    /* Do not leave the secret lying around in freed memory. */
    memset(addr->password, 0, strlen(addr->password));
    free(addr->password);
  }
  memset(addr, 0, sizeof *addr);
}

int sc_redis_addr_set_sentinels(sc_redis_addr_t *addr, const char *sentinels, const char *master_name, char *err,
                                size_t errlen) {
  if (sentinels == NULL || sentinels[0] == '\0') return 0;
  if (addr->unix_path != NULL) {
    if (err != NULL && errlen > 0) snprintf(err, errlen, "sentinels cannot be combined with a unix socket URL");
    return SC_EINVAL;
  }
  int rc = sc_sentinel_list_check(sentinels, err, errlen);
  if (rc != 0) return rc;
  if (master_name == NULL || master_name[0] == '\0') master_name = "statecast";
  char *s = strdup(sentinels), *m = strdup(master_name);
  if (s == NULL || m == NULL) {
    free(s);
    free(m);
    if (err != NULL && errlen > 0) snprintf(err, errlen, "out of memory");
    return SC_ENOMEM;
  }
  free(addr->sentinels);
  free(addr->master_name);
  addr->sentinels = s;
  addr->master_name = m;
  return 0;
}

void sc_redis_addr_describe(const sc_redis_addr_t *addr, char *buf, size_t cap) {
  if (buf == NULL || cap == 0) return;
  if (addr->unix_path != NULL) {
    if (addr->db != 0) snprintf(buf, cap, "unix:%s?db=%d", addr->unix_path, addr->db);
    else snprintf(buf, cap, "unix:%s", addr->unix_path);
  } else if (addr->host != NULL && strchr(addr->host, ':') != NULL) {
    snprintf(buf, cap, "[%s]:%d/%d", addr->host, addr->port, addr->db);
  } else {
    snprintf(buf, cap, "%s:%d/%d", addr->host != NULL ? addr->host : "?", addr->port, addr->db);
  }
}
