/*
 * lg_stream: one load process of statecast-loadgen, holding its share of the
 * N SSE streams (GET <path> HTTP/1.1) with non-blocking sockets on one
 * epoll, bound to source addresses 127.0.0.2, .3, ... (10,000 streams per
 * address, IP_BIND_ADDRESS_NO_PORT) so ephemeral ports never run out. At
 * most --connect-window connects are in flight; the parent hears how many
 * streams are up (answered 200, or with --expect-sync saw statecast's
 * `event: sync`) in LG_M_STATUS messages until the window starts, and
 * LG_M_CAUGHT_UP once every measured stream has the newest version of every
 * topic (after LG_C_FINAL).
 *
 * It de-chunks HTTP/1.1 chunked bodies in place, cuts SSE events at
 * "\n\n", and looks for the literal keys "bt":, "bk":, "bv": in each, so
 * statecast's envelope and Nchan's raw message parse alike. Events with bt
 * before the window started (the initial state statecast sends on connect)
 * are ignored. Per stream and topic it keeps the last version seen and how
 * many versions it saw: loss, duplicates and staleness follow from those
 * (see bench/README.md for the definitions). No allocation per event, no
 * JSON library. At LG_C_STOP it sends its counters and histograms up.
 */
#include "lg_stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF_SIZE (256 * 1024)
#define STREAMS_PER_SRC 10000
#define HDR_MAX 16384
#define CTRL_TAG UINT32_MAX

enum { ST_IDLE, ST_CONNECTING, ST_HEADERS, ST_STREAMING, ST_CLOSED };
enum { CS_SIZE, CS_EXT, CS_SIZE_LF, CS_DATA, CS_DATA_CR, CS_DATA_LF, CS_DONE };

typedef struct conn {
  int fd;
  uint8_t state;
  uint8_t cst;      /* chunked decoder state */
  uint8_t chunked;
  uint8_t synced;
  uint8_t measured; /* streaming when the window started */
  uint8_t counted_up;
  uint32_t crem;    /* bytes left in the current chunk (or its size being parsed) */
  uint32_t clen, ccap;
  char *cbuf;       /* carry: partial headers or a partial SSE event */
} conn_t;

typedef struct child {
  const lg_opts_t *o;
  int idx;
  long first, n; /* global index of the first stream, and how many */
  int ctl_in, up_out;
  int ep;
  conn_t *conns;
  long next_connect, inflight;
  int64_t deadline_mono;
  lg_status_msg_t st;
  int status_dirty;
  int64_t last_status_mono;
  /* window */
  int measuring;
  int64_t t_start, period_us;
  uint32_t topics, fan_cap;
  uint32_t *last_v;   /* [n * topics] */
  uint32_t *seen;     /* [n * topics] */
  int64_t *fan_max;   /* [fan_cap] */
  uint32_t *fan_cnt;  /* [fan_cap] */
  uint32_t *vfinal;   /* [topics], after LG_C_FINAL */
  int64_t *btfinal;   /* [topics] */
  int final_known, caught_up_sent;
  uint64_t behind;    /* measured stream/topic pairs below vfinal */
  int64_t cpu_start;
  lg_result_msg_t r;
  char *rbuf;
} child_t;

static void child_status(child_t *c, int force) {
  int64_t now = lg_mono_us();
  if (!c->status_dirty && !force) return;
  if (!force && now - c->last_status_mono < 100000) return;
  c->last_status_mono = now;
  c->status_dirty = 0;
  if (lg_send_msg(c->up_out, LG_M_STATUS, &c->st, sizeof c->st, NULL, 0) != 0) exit(3);
}

static void conn_close(child_t *c, conn_t *k, int failed) {
  if (k->state == ST_CLOSED || k->state == ST_IDLE) return;
  if (!k->counted_up) { /* still counted as a connect in flight */
    k->counted_up = 1;
    c->inflight--;
    c->st.resolved++;
  }
  if (k->state == ST_CONNECTING || k->state == ST_HEADERS) {
    c->st.failed++;
  } else if (k->state == ST_STREAMING) {
    c->st.disconnected++;
    if (c->measuring) c->r.disconnected_window++;
  }
  (void)failed;
  close(k->fd);
  k->fd = -1;
  k->state = ST_CLOSED;
  free(k->cbuf);
  k->cbuf = NULL;
  k->clen = k->ccap = 0;
  c->status_dirty = 1;
}

static void carry_append(conn_t *k, const char *p, size_t n) {
  if (k->clen + n > k->ccap) {
    size_t cap = k->ccap ? k->ccap : 1024;
    while (cap < k->clen + n) cap *= 2;
    char *nb = realloc(k->cbuf, cap);
    if (nb == NULL) lg_die("out of memory");
    k->cbuf = nb;
    k->ccap = (uint32_t)cap;
  }
  memcpy(k->cbuf + k->clen, p, n);
  k->clen += (uint32_t)n;
}

static void start_connect(child_t *c, long i) {
  conn_t *k = &c->conns[i];
  const lg_opts_t *o = c->o;
  long g = c->first + i;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    k->state = ST_CLOSED;
    c->st.failed++;
    c->st.resolved++;
    c->status_dirty = 1;
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in src = {.sin_family = AF_INET};
  inet_pton(AF_INET, o->src, &src.sin_addr);
  src.sin_addr.s_addr = htonl(ntohl(src.sin_addr.s_addr) + (uint32_t)(g / STREAMS_PER_SRC));
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
  inet_pton(AF_INET, o->host, &dst.sin_addr);
  k->fd = fd;
  k->state = ST_CONNECTING;
  c->inflight++;
  if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
      (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS)) {
    conn_close(c, k, 1);
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
  if (epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &ev) != 0) conn_close(c, k, 1);
}

static void on_connected(child_t *c, conn_t *k, uint32_t i) {
  int err = 0;
  socklen_t el = sizeof err;
  if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
    conn_close(c, k, 1);
    return;
  }
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
                   "User-Agent: statecast-loadgen\r\n\r\n",
                   c->o->path, c->o->host, c->o->port);
  if (n <= 0 || (size_t)n >= sizeof req || write(k->fd, req, (size_t)n) != n) {
    conn_close(c, k, 1);
    return;
  }
  k->state = ST_HEADERS;
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
  if (epoll_ctl(c->ep, EPOLL_CTL_MOD, k->fd, &ev) != 0) conn_close(c, k, 1);
}

static void stream_up(child_t *c, conn_t *k) {
  if (k->counted_up) return;
  k->counted_up = 1;
  c->inflight--;
  c->st.resolved++;
  c->status_dirty = 1;
}

/* Digits at p (up to end) as an unsigned number; *ok = 0 if none. */
static uint64_t parse_uint(const char *p, const char *end, int *ok) {
  uint64_t v = 0;
  const char *s = p;
  while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
  *ok = p > s;
  return v;
}

/* Value of key (e.g. "\"bk\":") expected right at p, else searched in [from, end). */
static uint64_t find_field(const char **pp, const char *from, const char *end, const char *key, size_t klen,
                           int *ok) {
  const char *p = *pp;
  if (!(p + klen <= end && *p == ',' && memcmp(p + 1, key, klen) == 0)) {
    p = memmem(from, (size_t)(end - from), key, klen);
    if (p == NULL) {
      *ok = 0;
      return 0;
    }
    p -= 1; /* pretend there was a comma before it */
  }
  p += 1 + klen;
  uint64_t v = parse_uint(p, end, ok);
  while (p < end && *p >= '0' && *p <= '9') p++;
  *pp = p;
  return v;
}

static void on_sample(child_t *c, uint32_t ci, uint64_t k, uint64_t v, int64_t bt, int64_t now) {
  if (!c->measuring || bt < c->t_start) {
    c->r.old_events++;
    return;
  }
  conn_t *kc = &c->conns[ci];
  if (!kc->measured || k >= c->topics || v == 0) {
    c->r.unparsed++;
    return;
  }
  c->r.events++;
  bench_hist_add(&c->r.delay, now - bt);
  size_t slot = (size_t)ci * c->topics + (size_t)k;
  uint32_t u = c->last_v[slot];
  if (v <= u) {
    c->r.dups++;
    return;
  }
  /* Stale since version u+1 was published (the schedule is fixed per topic). */
  int64_t t_pub = bt - (int64_t)(v - u - 1) * c->period_us;
  bench_hist_add(&c->r.stale, now - t_pub);
  c->last_v[slot] = (uint32_t)v;
  c->seen[slot]++;
  uint64_t m = (v - 1) * c->topics + k;
  if (m < c->fan_cap) {
    if (now - bt > c->fan_max[m]) c->fan_max[m] = now - bt;
    c->fan_cnt[m]++;
  }
  if (c->final_known && u < c->vfinal[k] && v >= c->vfinal[k] && c->behind > 0) c->behind--;
}

/* One complete SSE event e[0..len), ending in "\n\n". */
static void on_event(child_t *c, uint32_t ci, const char *e, size_t len, int64_t now) {
  conn_t *k = &c->conns[ci];
  if (len == 0 || e[0] == ':') return; /* comment (heartbeat, Nchan's ": hi") */
  const char *end = e + len;
  const char *bt = memmem(e, len, "\"bt\":", 5);
  if (bt == NULL) {
    if (c->measuring && memmem(e, len, "event: sync", 11) != NULL) c->r.syncs_window++;
    if (!k->synced && memmem(e, len, "event: sync", 11) != NULL) {
      k->synced = 1;
      c->st.synced++;
      c->status_dirty = 1;
      if (c->o->expect_sync) stream_up(c, k);
    }
    return;
  }
  int ok1, ok2, ok3;
  const char *p = bt + 5;
  uint64_t t = parse_uint(p, end, &ok1);
  while (p < end && *p >= '0' && *p <= '9') p++;
  uint64_t tk = find_field(&p, e, end, "\"bk\":", 5, &ok2);
  uint64_t tv = find_field(&p, e, end, "\"bv\":", 5, &ok3);
  if (!(ok1 && ok2 && ok3)) {
    c->r.unparsed++;
    return;
  }
  on_sample(c, ci, tk, tv, (int64_t)t, now);
}

/* De-chunked body bytes p[0..n): cut events at "\n\n", carrying a partial one. */
static void on_body(child_t *c, uint32_t ci, const char *p, size_t n, int64_t now) {
  conn_t *k = &c->conns[ci];
  if (n == 0) return;
  if (k->clen > 0) {
    const char *nn;
    size_t take;
    if (k->cbuf[k->clen - 1] == '\n' && p[0] == '\n') {
      take = 1;
    } else {
      nn = memmem(p, n, "\n\n", 2);
      if (nn == NULL) {
        carry_append(k, p, n);
        return;
      }
      take = (size_t)(nn - p) + 2;
    }
    carry_append(k, p, take);
    on_event(c, ci, k->cbuf, k->clen, now);
    if (k->state != ST_STREAMING) return;
    k->clen = 0;
    p += take;
    n -= take;
  }
  while (n > 0) {
    const char *nn = memmem(p, n, "\n\n", 2);
    if (nn == NULL) {
      carry_append(k, p, n);
      return;
    }
    size_t len = (size_t)(nn - p) + 2;
    on_event(c, ci, p, len, now);
    p += len;
    n -= len;
  }
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Remove the chunk framing of p[0..n) in place; returns the body length or
 * -1 on a framing error. The end chunk closes the stream (returns -2 after
 * the body before it was handed on... simplified: marks CS_DONE). */
static long dechunk(conn_t *k, char *p, size_t n) {
  char *in = p, *end = p + n, *out = p;
  while (in < end) {
    switch (k->cst) {
    case CS_SIZE: {
      char ch = *in++;
      int h = hexval(ch);
      if (h >= 0) {
        if (k->crem > (UINT32_MAX >> 4)) return -1;
        k->crem = k->crem * 16 + (uint32_t)h;
      } else if (ch == '\r') {
        k->cst = CS_SIZE_LF;
      } else if (ch == ';') {
        k->cst = CS_EXT;
      } else {
        return -1;
      }
      break;
    }
    case CS_EXT:
      if (*in++ == '\r') k->cst = CS_SIZE_LF;
      break;
    case CS_SIZE_LF:
      if (*in++ != '\n') return -1;
      k->cst = k->crem == 0 ? CS_DONE : CS_DATA;
      break;
    case CS_DATA: {
      size_t take = (size_t)(end - in);
      if (take > k->crem) take = k->crem;
      if (out != in) memmove(out, in, take);
      out += take;
      in += take;
      k->crem -= (uint32_t)take;
      if (k->crem == 0) k->cst = CS_DATA_CR;
      break;
    }
    case CS_DATA_CR:
      if (*in++ != '\r') return -1;
      k->cst = CS_DATA_LF;
      break;
    case CS_DATA_LF:
      if (*in++ != '\n') return -1;
      k->cst = CS_SIZE;
      k->crem = 0;
      break;
    case CS_DONE:
      return out - p;
    }
  }
  return out - p;
}

static void on_stream_bytes(child_t *c, uint32_t ci, char *p, size_t n, int64_t now) {
  conn_t *k = &c->conns[ci];
  if (k->chunked) {
    long m = dechunk(k, p, n);
    if (m < 0) {
      c->r.unparsed++;
      conn_close(c, k, 1);
      return;
    }
    on_body(c, ci, p, (size_t)m, now);
    if (k->state == ST_STREAMING && k->cst == CS_DONE) conn_close(c, k, 0);
  } else {
    on_body(c, ci, p, n, now);
  }
}

static void on_header_bytes(child_t *c, uint32_t ci, char *p, size_t n, int64_t now) {
  conn_t *k = &c->conns[ci];
  uint32_t before = k->clen;
  carry_append(k, p, n);
  char *h = memmem(k->cbuf, k->clen, "\r\n\r\n", 4);
  if (h == NULL) {
    if (k->clen > HDR_MAX) conn_close(c, k, 1);
    return;
  }
  size_t hlen = (size_t)(h - k->cbuf) + 4;
  int status = 0;
  if (k->clen >= 12 && memcmp(k->cbuf, "HTTP/1.", 7) == 0) status = atoi(k->cbuf + 9);
  if (status != 200) {
    c->st.st_non200++;
    conn_close(c, k, 1);
    return;
  }
  /* Transfer-Encoding: chunked, case-insensitively, within the head. */
  k->chunked = 0;
  for (char *q = k->cbuf; q + 26 <= k->cbuf + hlen; q++) {
    if ((*q == 'T' || *q == 't') && strncasecmp(q, "transfer-encoding:", 18) == 0) {
      char *eol = memmem(q, hlen - (size_t)(q - k->cbuf), "\r\n", 2);
      for (char *r = q + 18; eol && r + 7 <= eol; r++)
        if (strncasecmp(r, "chunked", 7) == 0) k->chunked = 1;
      break;
    }
  }
  k->state = ST_STREAMING;
  k->cst = CS_SIZE;
  k->crem = 0;
  k->clen = 0;
  c->st.connected++;
  c->status_dirty = 1;
  if (!c->o->expect_sync) stream_up(c, k);
  size_t off = hlen - before; /* the head ended inside this read */
  if (off < n) on_stream_bytes(c, ci, p + off, n - off, now);
}

static void on_readable(child_t *c, uint32_t ci) {
  conn_t *k = &c->conns[ci];
  ssize_t n = read(k->fd, c->rbuf, RBUF_SIZE);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    conn_close(c, k, 1);
    return;
  }
  if (n == 0) {
    conn_close(c, k, 0);
    return;
  }
  c->r.bytes += (uint64_t)n;
  int64_t now = lg_realtime_us();
  if (k->state == ST_HEADERS) on_header_bytes(c, ci, c->rbuf, (size_t)n, now);
  else on_stream_bytes(c, ci, c->rbuf, (size_t)n, now);
}

static void child_start(child_t *c, const lg_start_msg_t *s) {
  c->t_start = s->t_start_us;
  c->period_us = s->period_us;
  c->topics = s->topics;
  c->fan_cap = s->fan_cap;
  c->last_v = lg_xcalloc((size_t)c->n * c->topics, sizeof *c->last_v);
  c->seen = lg_xcalloc((size_t)c->n * c->topics, sizeof *c->seen);
  c->fan_max = lg_xcalloc(c->fan_cap, sizeof *c->fan_max);
  c->fan_cnt = lg_xcalloc(c->fan_cap, sizeof *c->fan_cnt);
  for (long i = 0; i < c->n; i++)
    if (c->conns[i].state == ST_STREAMING) {
      c->conns[i].measured = 1;
      c->r.streams_measured++;
    }
  /* Streams still connecting now are given up: they would not be measured. */
  for (long i = 0; i < c->n; i++)
    if (c->conns[i].state == ST_CONNECTING || c->conns[i].state == ST_HEADERS) conn_close(c, &c->conns[i], 1);
  c->next_connect = c->n;
  c->cpu_start = lg_self_cpu_us();
  c->measuring = 1;
}

static void child_final(child_t *c, const char *payload, size_t len) {
  if (len != (size_t)c->topics * (sizeof(uint32_t) + sizeof(int64_t))) exit(4);
  c->vfinal = lg_xcalloc(c->topics, sizeof *c->vfinal);
  c->btfinal = lg_xcalloc(c->topics, sizeof *c->btfinal);
  memcpy(c->vfinal, payload, c->topics * sizeof(uint32_t));
  memcpy(c->btfinal, payload + c->topics * sizeof(uint32_t), c->topics * sizeof(int64_t));
  c->behind = 0;
  for (long i = 0; i < c->n; i++) {
    if (!c->conns[i].measured) continue;
    for (uint32_t k = 0; k < c->topics; k++)
      if (c->last_v[(size_t)i * c->topics + k] < c->vfinal[k]) c->behind++;
  }
  c->final_known = 1;
}

static void child_stop(child_t *c, const lg_stop_msg_t *s) {
  lg_result_msg_t *r = &c->r;
  int debug_left = 20;
  r->cpu_us = lg_self_cpu_us() - c->cpu_start;
  r->connected = c->st.connected;
  r->failed = c->st.failed;
  r->disconnected = c->st.disconnected;
  r->non200 = c->st.st_non200;
  for (long i = 0; i < c->n; i++) {
    if (!c->conns[i].measured) continue;
    for (uint32_t k = 0; k < c->topics; k++) {
      size_t slot = (size_t)i * c->topics + k;
      r->seen_versions += c->seen[slot];
      uint32_t u = c->last_v[slot];
      if (c->vfinal && c->seen[slot] < c->vfinal[k] && getenv("STATECAST_LOADGEN_DEBUG") && debug_left-- > 0)
        fprintf(stderr, "loadgen: stream %ld topic %u: saw %u of %u versions, last %u, state %d\n", c->first + i, k,
                c->seen[slot], c->vfinal[k], u, c->conns[i].state);
      if (c->vfinal && u < c->vfinal[k]) {
        /* Still stale at the end: open since u+1 was published. */
        int64_t t_pub = c->btfinal[k] - (int64_t)(c->vfinal[k] - u - 1) * c->period_us;
        bench_hist_add(&r->stale, s->t_end_us - t_pub);
        r->open_stale++;
      }
    }
  }
  uint32_t nfan = c->fan_cap;
  while (nfan > 0 && c->fan_cnt[nfan - 1] == 0) nfan--;
  r->nfan = nfan;
  if (lg_send_msg(c->up_out, LG_M_RESULT, r, sizeof *r, NULL, 0) != 0) exit(3);
  if (nfan && (lg_write_all(c->up_out, c->fan_max, nfan * sizeof(int64_t)) != 0 ||
               lg_write_all(c->up_out, c->fan_cnt, nfan * sizeof(uint32_t)) != 0))
    exit(3);
}

static int child_ctl(child_t *c) {
  lg_msg_hdr_t h;
  if (lg_read_all(c->ctl_in, &h, sizeof h) != 0) exit(0); /* parent gone */
  char *payload = lg_xcalloc(h.len + 1, 1);
  if (h.len && lg_read_all(c->ctl_in, payload, h.len) != 0) exit(0);
  int done = 0;
  if (h.type == LG_C_START && h.len == sizeof(lg_start_msg_t)) child_start(c, (const lg_start_msg_t *)payload);
  else if (h.type == LG_C_FINAL) child_final(c, payload, h.len);
  else if (h.type == LG_C_STOP && h.len == sizeof(lg_stop_msg_t)) {
    child_stop(c, (const lg_stop_msg_t *)payload);
    done = 1;
  }
  free(payload);
  return done;
}

void lg_child_run(const lg_opts_t *o, int idx, long first, long n, int ctl_in, int up_out) {
  child_t c0 = {0}, *c = &c0;
  c->o = o;
  c->idx = idx;
  c->first = first;
  c->n = n;
  c->ctl_in = ctl_in;
  c->up_out = up_out;
  c->conns = lg_xcalloc((size_t)n, sizeof *c->conns);
  c->rbuf = malloc(RBUF_SIZE);
  if (c->rbuf == NULL) lg_die("out of memory");
  c->ep = epoll_create1(EPOLL_CLOEXEC);
  if (c->ep < 0) lg_die("epoll_create1: %s", strerror(errno));
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = CTRL_TAG};
  if (epoll_ctl(c->ep, EPOLL_CTL_ADD, ctl_in, &ev) != 0) lg_die("epoll_ctl: %s", strerror(errno));
  c->deadline_mono = lg_mono_us() + (int64_t)o->connect_timeout_s * 1000000;
  struct epoll_event evs[512];
  child_status(c, 1);
  for (;;) {
    while (c->next_connect < c->n && c->inflight < o->connect_window) start_connect(c, c->next_connect++);
    int timeout = c->measuring ? 100 : 20;
    int ne = epoll_wait(c->ep, evs, 512, timeout);
    if (ne < 0 && errno != EINTR) lg_die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < ne; i++) {
      uint32_t ci = evs[i].data.u32;
      if (ci == CTRL_TAG) {
        if (child_ctl(c)) return;
        continue;
      }
      conn_t *k = &c->conns[ci];
      if (k->state == ST_CONNECTING) {
        if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c, k, ci);
      } else if (k->state == ST_HEADERS || k->state == ST_STREAMING) {
        on_readable(c, ci);
      }
    }
    if (!c->measuring && lg_mono_us() > c->deadline_mono) {
      for (long i = 0; i < c->n; i++) {
        conn_t *k = &c->conns[i];
        if (k->state == ST_IDLE) {
          k->state = ST_CLOSED;
          c->st.failed++;
          c->st.resolved++;
          c->status_dirty = 1;
        } else if (k->state == ST_CONNECTING || k->state == ST_HEADERS) {
          conn_close(c, k, 1);
        } else if (k->state == ST_STREAMING && !k->counted_up) {
          stream_up(c, k); /* connected but never synced: counts as up, not synced */
        }
      }
      c->next_connect = c->n;
    }
    if (!c->measuring) child_status(c, 0);
    if (c->final_known && !c->caught_up_sent && c->behind == 0) {
      c->caught_up_sent = 1;
      if (lg_send_msg(c->up_out, LG_M_CAUGHT_UP, NULL, 0, NULL, 0) != 0) exit(3);
    }
  }
}
