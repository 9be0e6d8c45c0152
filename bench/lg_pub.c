/*
 * lg_pub: the publisher of statecast-loadgen (see lg_pub.h). Redis through
 * blocking hiredis calls with a 5 s timeout; HTTP as hand-written POSTs on one
 * keep-alive connection, reading each whole answer before the next. The
 * driver calls lg_pub_send() on its fixed schedule, one message at a time:
 * a publisher the server back-pressures falls behind that schedule
 * (publish_late_max_us, --max-late-ms).
 */
#include "lg_pub.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

void lg_pub_init(lg_publisher_t *p, const char *url) {
  memset(p, 0, sizeof *p);
  p->fd = -1;
  if (url == NULL) return;
  const char *rest;
  if (strncmp(url, "redis://", 8) == 0) {
    p->kind = 1;
    rest = url + 8;
  } else if (strncmp(url, "http://", 7) == 0) {
    p->kind = 2;
    rest = url + 7;
  } else {
    lg_die("--pub: expected redis://HOST:PORT or http://HOST:PORT/PREFIX");
  }
  const char *colon = strchr(rest, ':');
  if (colon == NULL || (size_t)(colon - rest) >= sizeof p->host) lg_die("--pub: no port in %s", url);
  memcpy(p->host, rest, (size_t)(colon - rest));
  p->port = atoi(colon + 1);
  const char *slash = strchr(colon, '/');
  snprintf(p->prefix, sizeof p->prefix, "%s", slash ? slash : "/");
  if (p->port <= 0) lg_die("--pub: bad port in %s", url);
}

static int http_connect(lg_publisher_t *p) {
  if (p->fd >= 0) return 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
  inet_pton(AF_INET, p->host, &a.sin_addr);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  p->fd = fd;
  return 0;
}

/* One POST with keep-alive; reads the whole answer. 0 on 2xx. */
static int http_post_once(lg_publisher_t *p, const char *topic, const char *body, size_t blen) {
  if (http_connect(p) != 0) return -1;
  char head[1024];
  int hn = snprintf(head, sizeof head,
                    "POST %s%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nAccept: text/plain\r\n"
                    "Content-Length: %zu\r\n\r\n",
                    p->prefix, topic, p->host, p->port, blen);
  struct iovec iov[2] = {{head, (size_t)hn}, {(void *)body, blen}};
  size_t total = (size_t)hn + blen, done = 0;
  while (done < total) {
    ssize_t n = writev(p->fd, iov, 2);
    if (n <= 0) return -1;
    done += (size_t)n;
    size_t adv = (size_t)n;
    for (int i = 0; i < 2 && adv; i++) {
      size_t t = adv < iov[i].iov_len ? adv : iov[i].iov_len;
      iov[i].iov_base = (char *)iov[i].iov_base + t;
      iov[i].iov_len -= t;
      adv -= t;
    }
  }
  size_t have = 0;
  char *h = NULL;
  while (h == NULL) {
    if (have == sizeof p->rbuf - 1) return -1;
    ssize_t n = read(p->fd, p->rbuf + have, sizeof p->rbuf - 1 - have);
    if (n <= 0) return -1;
    have += (size_t)n;
    p->rbuf[have] = '\0';
    h = strstr(p->rbuf, "\r\n\r\n");
  }
  int status = atoi(p->rbuf + 9);
  long clen = 0;
  for (char *q = p->rbuf; q < h; q++)
    if ((*q == 'C' || *q == 'c') && strncasecmp(q, "content-length:", 15) == 0) clen = atol(q + 15);
  size_t body_have = have - (size_t)(h + 4 - p->rbuf);
  while ((long)body_have < clen) {
    ssize_t n = read(p->fd, p->rbuf, sizeof p->rbuf);
    if (n <= 0) return -1;
    body_have += (size_t)n;
  }
  if (strcasestr(p->rbuf, "connection: close") != NULL) {
    close(p->fd);
    p->fd = -1;
  }
  return status >= 200 && status < 300 ? 0 : -2;
}

static int redis_connect(lg_publisher_t *p) {
  if (p->rc != NULL) return 0;
  struct timeval tv = {5, 0};
  p->rc = redisConnectWithTimeout(p->host, p->port, tv);
  if (p->rc == NULL || p->rc->err) {
    if (p->rc) redisFree(p->rc);
    p->rc = NULL;
    return -1;
  }
  redisSetTimeout(p->rc, tv);
  return 0;
}

/* Publish body as topic's state; retries once after a broken connection. */
int lg_pub_send(lg_publisher_t *p, const char *topic, const char *body, size_t blen) {
  for (int attempt = 0; attempt < 2; attempt++) {
    if (p->kind == 1) {
      if (redis_connect(p) != 0) continue;
      redisReply *r = redisCommand(p->rc, "XADD statecast:inbox * topic %s data %b", topic, body, blen);
      if (r == NULL) {
        redisFree(p->rc);
        p->rc = NULL;
        continue;
      }
      int ok = r->type == REDIS_REPLY_STRING;
      if (!ok) fprintf(stderr, "statecast-loadgen: XADD: %s\n", r->type == REDIS_REPLY_ERROR ? r->str : "?");
      freeReplyObject(r);
      return ok ? 0 : -1;
    }
    int rc = http_post_once(p, topic, body, blen);
    if (rc == 0) return 0;
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
    if (rc == -2) return -1;
  }
  return -1;
}

/* The data of one message, exactly `size` bytes when size allows. */
size_t lg_make_body(char *buf, size_t cap, long size, int64_t bt, long k, long v) {
  int n = snprintf(buf, cap, "{\"bt\":%" PRId64 ",\"bk\":%ld,\"bv\":%ld,\"pad\":\"", bt, k, v);
  size_t used = (size_t)n + 2;
  size_t pad = (size_t)size > used ? (size_t)size - used : 0;
  if ((size_t)n + pad + 3 > cap) pad = cap - (size_t)n - 3;
  memset(buf + n, 'x', pad);
  memcpy(buf + n + pad, "\"}", 3);
  return (size_t)n + pad + 2;
}

void lg_pub_dispose(lg_publisher_t *p) {
  if (p->rc != NULL) redisFree(p->rc);
  if (p->fd >= 0) close(p->fd);
}

/* ---- fill mode -------------------------------------------------------------- */

int lg_run_fill(const lg_opts_t *o) {
  lg_publisher_t p;
  lg_pub_init(&p, o->pub);
  if (p.kind != 1 || redis_connect(&p) != 0) lg_die("--fill needs a reachable --pub redis://HOST:PORT");
  redisReply *r = redisCommand(p.rc, "INCRBY statecast:seq %ld", o->fill);
  if (r == NULL || r->type != REDIS_REPLY_INTEGER) lg_die("INCRBY statecast:seq failed");
  long long last = r->integer, base = last - o->fill;
  freeReplyObject(r);
  char epoch[17];
  srand((unsigned)lg_realtime_us());
  for (int i = 0; i < 16; i++) epoch[i] = "0123456789abcdef"[rand() % 16];
  epoch[16] = '\0';
  r = redisCommand(p.rc, "SET statecast:epoch %s NX", epoch);
  freeReplyObject(r);
  size_t cap = (size_t)o->fill_bytes + 256;
  char *body = lg_xcalloc(cap, 1);
  int64_t ts_ms = lg_realtime_us() / 1000;
  int64_t t0 = lg_mono_us();
  const long batch = 1000;
  for (long i = 0; i < o->fill; i += batch) {
    long end = i + batch < o->fill ? i + batch : o->fill;
    for (long j = i; j < end; j++) {
      char topic[256], key[300], seq[32], ts[32];
      snprintf(topic, sizeof topic, "%s%ld", o->fill_prefix, j);
      snprintf(key, sizeof key, "state:{%s}", topic);
      snprintf(seq, sizeof seq, "%lld", base + j + 1);
      snprintf(ts, sizeof ts, "%" PRId64, ts_ms);
      size_t bl = lg_make_body(body, cap, o->fill_bytes, 0, j, 0);
      redisAppendCommand(p.rc, "HSET %s seq %s ts %s data %b", key, seq, ts, body, bl);
      redisAppendCommand(p.rc, "ZADD statecast:index %s %s", seq, topic);
    }
    for (long j = i; j < end; j++)
      for (int q = 0; q < 2; q++) {
        void *rep;
        if (redisGetReply(p.rc, &rep) != REDIS_OK) lg_die("fill: redis: %s", p.rc->errstr);
        redisReply *rr = rep;
        if (rr->type == REDIS_REPLY_ERROR) lg_die("fill: redis: %s", rr->str);
        freeReplyObject(rr);
      }
  }
  double secs = (double)(lg_mono_us() - t0) / 1e6;
  lg_result("fill_topics=%ld\nfill_bytes=%ld\nfill_seconds=%.2f\n", o->fill, o->fill_bytes, secs);
  fprintf(stderr, "filled %ld topics of %ld bytes in %.2f s\n", o->fill, o->fill_bytes, secs);
  redisFree(p.rc);
  free(body);
  return 0;
}
