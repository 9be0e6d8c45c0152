/*
 * sse_client: WHATWG event-stream parser, HTTP/1.1 response decoder and the
 * reconnecting libuv connection that glues them (see sse_client.h).
 *
 * Memory is bounded by the caps given at init: one line buffer, one data
 * buffer, one fixed read buffer, one request string per attempt.
 */
#include "sse_client.h"

#include "err.h"
#include "log.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

/* ================================================================== parser */

int mx_sse_parser_init(mx_sse_parser_t *p, const mx_sse_parser_opts_t *opts) {
  memset(p, 0, sizeof *p);
  p->o = *opts;
  if (!p->o.max_line) p->o.max_line = MX_SSE_DEFAULT_MAX;
  if (!p->o.max_event) p->o.max_event = MX_SSE_DEFAULT_MAX;
  p->line = malloc(p->o.max_line + 1);
  p->data = malloc(p->o.max_event + 1);
  if (!p->line || !p->data) goto fail;
  return 0;
fail:
  mx_sse_parser_dispose(p);
  return SC_ENOMEM;
}

void mx_sse_parser_dispose(mx_sse_parser_t *p) {
  free(p->line);
  free(p->data);
  p->line = p->data = NULL;
}

void mx_sse_parser_restart(mx_sse_parser_t *p) {
  p->line_len = 0;
  p->data_len = 0;
  p->type_len = 0;
  p->type_overflow = 0;
  p->bom_pos = 0;
  p->after_cr = 0;
  /* The id buffer follows the id string: an id field of an event that was
   * never dispatched must not leak into the next stream. */
  memcpy(p->id_buf, p->last_id, sizeof p->id_buf);
}

const char *mx_sse_parser_last_id(const mx_sse_parser_t *p) { return p->last_id; }

void mx_sse_parser_set_last_id(mx_sse_parser_t *p, const char *id) {
  size_t n = strlen(id);
  if (n > MX_SSE_ID_MAX) return;
  memcpy(p->last_id, id, n + 1);
  memcpy(p->id_buf, id, n + 1);
}

static int dispatch(mx_sse_parser_t *p) {
  /* Step 1 of "dispatch the event": the id string takes the buffer's value
   * even when no event follows. */
  memcpy(p->last_id, p->id_buf, sizeof p->last_id);
  if (p->data_len == 0) {
    p->type_len = 0;
    p->type_overflow = 0;
    return 0;
  }
  p->data_len--; /* the trailing '\n' every data line added */
  p->data[p->data_len] = '\0';
  char type[sizeof p->type];
  if (p->type_len == 0 || p->type_overflow) {
    /* An overlong type cannot name a type anyone listens for; the spec
     * would dispatch it under that name, which no handler matches. */
    if (p->type_overflow) {
      p->data_len = 0;
      p->type_len = 0;
      p->type_overflow = 0;
      return 0;
    }
    memcpy(type, "message", 8);
  } else {
    memcpy(type, p->type, p->type_len);
    type[p->type_len] = '\0';
  }
  mx_sse_event_t ev = {.type = type, .data = p->data, .data_len = p->data_len, .last_id = p->last_id};
  p->data_len = 0;
  p->type_len = 0;
  return p->o.on_event ? p->o.on_event(p->o.arg, &ev) : 0;
}

static int all_digits(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

static int process_field(mx_sse_parser_t *p, const char *name, size_t nlen, const char *val, size_t vlen) {
  if (nlen == 5 && memcmp(name, "event", 5) == 0) {
    if (vlen >= sizeof p->type) {
      p->type_overflow = 1;
    } else {
      memcpy(p->type, val, vlen);
      p->type_len = vlen;
      p->type_overflow = 0;
    }
  } else if (nlen == 4 && memcmp(name, "data", 4) == 0) {
    if (p->data_len + vlen + 1 > p->o.max_event) return SC_ETOOBIG;
    memcpy(p->data + p->data_len, val, vlen);
    p->data_len += vlen;
    p->data[p->data_len++] = '\n';
  } else if (nlen == 2 && memcmp(name, "id", 2) == 0) {
    if (vlen <= MX_SSE_ID_MAX && !memchr(val, '\0', vlen)) {
      memcpy(p->id_buf, val, vlen);
      p->id_buf[vlen] = '\0';
    }
  } else if (nlen == 5 && memcmp(name, "retry", 5) == 0) {
    if (all_digits(val, vlen) && vlen <= 12 && p->o.on_retry) {
      uint64_t ms = 0;
      for (size_t i = 0; i < vlen; i++) ms = ms * 10 + (uint64_t)(val[i] - '0');
      p->o.on_retry(p->o.arg, ms);
    }
  }
  /* Any other field name is ignored. */
  return 0;
}

static int process_line(mx_sse_parser_t *p) {
  const char *l = p->line;
  size_t n = p->line_len;
  p->line_len = 0;
  if (n == 0) return dispatch(p);
  if (l[0] == ':') return 0; /* comment */
  const char *colon = memchr(l, ':', n);
  if (!colon) return process_field(p, l, n, "", 0);
  size_t nlen = (size_t)(colon - l);
  const char *val = colon + 1;
  size_t vlen = n - nlen - 1;
  if (vlen > 0 && val[0] == ' ') {
    val++;
    vlen--;
  }
  return process_field(p, l, nlen, val, vlen);
}

/* One byte of the stream after the BOM check. */
static int feed_byte(mx_sse_parser_t *p, char ch) {
  if (p->after_cr) {
    p->after_cr = 0;
    if (ch == '\n') return 0; /* second half of CRLF */
  }
  if (ch == '\r') {
    p->after_cr = 1;
    return process_line(p);
  }
  if (ch == '\n') return process_line(p);
  if (p->line_len >= p->o.max_line) return SC_ETOOBIG;
  p->line[p->line_len++] = ch;
  return 0;
}

int mx_sse_parser_feed(mx_sse_parser_t *p, const char *buf, size_t len) {
  static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
  for (size_t i = 0; i < len; i++) {
    int rc;
    if (p->bom_pos < 3) {
      if ((unsigned char)buf[i] == bom[p->bom_pos]) {
        p->bom_pos++;
        continue;
      }
      /* Not a BOM after all: replay what was held back, then this byte. */
      unsigned held = p->bom_pos;
      p->bom_pos = 3;
      for (unsigned k = 0; k < held; k++)
        if ((rc = feed_byte(p, (char)bom[k])) != 0) return rc;
    }
    /* Fast path: copy a run of ordinary bytes into the line at once. */
    if (!p->after_cr && buf[i] != '\r' && buf[i] != '\n') {
      size_t j = i;
      while (j < len && buf[j] != '\r' && buf[j] != '\n') j++;
      size_t run = j - i;
      if (p->line_len + run > p->o.max_line) return SC_ETOOBIG;
      memcpy(p->line + p->line_len, buf + i, run);
      p->line_len += run;
      i = j - 1;
      continue;
    }
    if ((rc = feed_byte(p, buf[i])) != 0) return rc;
  }
  return 0;
}

/* ============================================================ HTTP decoder */

void mx_http_resp_reset(mx_http_resp_t *r, mx_http_head_cb on_head, mx_http_body_cb on_body, void *arg) {
  r->state = MX_HTTP_STATUS;
  r->status = 0;
  r->chunked = 0;
  r->content_length = -1;
  r->chunk_left = 0;
  r->line_len = 0;
  r->content_type[0] = '\0';
  r->on_head = on_head;
  r->on_body = on_body;
  r->arg = arg;
}

static void trim(const char **s, size_t *n) {
  while (*n && (**s == ' ' || **s == '\t')) (*s)++, (*n)--;
  while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

static int head_line(mx_http_resp_t *r) {
  char *l = r->line;
  size_t n = r->line_len;
  if (n && l[n - 1] == '\r') n--;
  l[n] = '\0';
  r->line_len = 0;
  if (r->state == MX_HTTP_STATUS) {
    /* "HTTP/1.x SSS reason" */
    if (n < 12 || strncmp(l, "HTTP/1.", 7) != 0 || l[8] != ' ' || !isdigit((unsigned char)l[9]) ||
        !isdigit((unsigned char)l[10]) || !isdigit((unsigned char)l[11]))
      return SC_EIO;
    r->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    r->state = MX_HTTP_HEADERS;
    return 0;
  }
  if (r->state == MX_HTTP_TRAILERS) {
    if (n == 0) r->state = MX_HTTP_DONE;
    return 0;
  }
  if (n == 0) { /* end of head */
    if (r->status >= 100 && r->status < 200) { /* interim answer: another head follows */
      r->state = MX_HTTP_STATUS;
      return 0;
    }
    if (r->chunked)
      r->state = MX_HTTP_CHUNK_SIZE;
    else if (r->content_length == 0)
      r->state = MX_HTTP_DONE;
    else
      r->state = MX_HTTP_BODY_IDENTITY;
    return r->on_head ? r->on_head(r->arg, r->status, r->content_type) : 0;
  }
  const char *colon = memchr(l, ':', n);
  if (!colon) return SC_EIO;
  const char *name = l;
  size_t nlen = (size_t)(colon - l);
  const char *val = colon + 1;
  size_t vlen = n - nlen - 1;
  trim(&val, &vlen);
  if (nlen == 17 && strncasecmp(name, "transfer-encoding", 17) == 0) {
    /* Only "chunked" (last coding) is understood; anything else is read to close. */
    r->chunked = vlen >= 7 && strncasecmp(val + vlen - 7, "chunked", 7) == 0;
  } else if (nlen == 14 && strncasecmp(name, "content-length", 14) == 0) {
    if (!r->chunked) {
      char *end;
      errno = 0;
      long long v = strtoll(val, &end, 10);
      if (end == val || v < 0) return SC_EIO;
      r->content_length = v;
    }
  } else if (nlen == 12 && strncasecmp(name, "content-type", 12) == 0) {
    size_t k = vlen < sizeof r->content_type - 1 ? vlen : sizeof r->content_type - 1;
    memcpy(r->content_type, val, k);
    r->content_type[k] = '\0';
  }
  return 0;
}

static int chunk_size_line(mx_http_resp_t *r) {
  char *l = r->line;
  size_t n = r->line_len;
  r->line_len = 0;
  if (n && l[n - 1] == '\r') n--;
  uint64_t v = 0;
  size_t i = 0;
  for (; i < n && isxdigit((unsigned char)l[i]); i++) {
    if (v >> 56) return SC_EIO;
    int d = isdigit((unsigned char)l[i]) ? l[i] - '0' : (tolower((unsigned char)l[i]) - 'a' + 10);
    v = v * 16 + (uint64_t)d;
  }
  if (i == 0) return SC_EIO;
  if (i < n && l[i] != ';' && l[i] != ' ' && l[i] != '\t') return SC_EIO; /* chunk extensions allowed */
  r->chunk_left = v;
  r->state = v == 0 ? MX_HTTP_TRAILERS : MX_HTTP_CHUNK_DATA;
  return 0;
}

int mx_http_resp_feed(mx_http_resp_t *r, const char *buf, size_t len) {
  size_t i = 0;
  while (i < len) {
    int rc = 0;
    switch (r->state) {
    case MX_HTTP_STATUS:
    case MX_HTTP_HEADERS:
    case MX_HTTP_TRAILERS:
    case MX_HTTP_CHUNK_SIZE: {
      const char *nl = memchr(buf + i, '\n', len - i);
      size_t take = nl ? (size_t)(nl - (buf + i)) : len - i;
      if (r->line_len + take > MX_HTTP_LINE_MAX) return SC_EIO;
      memcpy(r->line + r->line_len, buf + i, take);
      r->line_len += take;
      i += take;
      if (!nl) break;
      i++; /* the '\n' */
      rc = r->state == MX_HTTP_CHUNK_SIZE ? chunk_size_line(r) : head_line(r);
      break;
    }
    case MX_HTTP_BODY_IDENTITY: {
      size_t take = len - i;
      if (r->content_length >= 0 && (uint64_t)r->content_length < take) take = (size_t)r->content_length;
      if (r->content_length >= 0) {
        r->content_length -= (int64_t)take;
        if (r->content_length == 0) r->state = MX_HTTP_DONE;
      }
      if (r->on_body && take) rc = r->on_body(r->arg, buf + i, take);
      i += take;
      break;
    }
    case MX_HTTP_CHUNK_DATA: {
      size_t take = len - i;
      if (r->chunk_left < take) take = (size_t)r->chunk_left;
      r->chunk_left -= take;
      if (r->chunk_left == 0) r->state = MX_HTTP_CHUNK_DATA_END;
      if (r->on_body && take) rc = r->on_body(r->arg, buf + i, take);
      i += take;
      break;
    }
    case MX_HTTP_CHUNK_DATA_END:
      /* The CRLF after a chunk's data. */
      if (buf[i] == '\n') r->state = MX_HTTP_CHUNK_SIZE;
      else if (buf[i] != '\r') return SC_EIO;
      i++;
      break;
    case MX_HTTP_DONE:
      return 0;
    }
    if (rc) return rc;
  }
  return 0;
}

/* ============================================================== connection */

/* One connection attempt. The client waits for every conn's close callback
 * before it frees itself, so conn->c is valid for the conn's whole life. */
typedef struct mx_conn {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  mx_sse_client_t *c; /* borrowed; outlives the conn */
} mx_conn_t;

typedef struct mx_write {
  uv_write_t req;
  char buf[]; /* the request text */
} mx_write_t;

struct mx_sse_client {
  uv_loop_t *loop; /* borrowed */
  mx_sse_client_opts_t o;
  char *host, *path; /* owned copies */
  mx_sse_state_t state;
  mx_sse_parser_t parser;
  mx_http_resp_t resp;
  uv_timer_t timer; /* inactivity timeout while connecting/live, backoff while stale */
  uv_getaddrinfo_t gai;
  int gai_pending;
  mx_conn_t *conn;         /* the current attempt (owned; freed only in on_conn_closed), or NULL */
  unsigned pending_closes; /* handles (conns, the timer) whose close callback has not run yet */
  unsigned attempt;        /* consecutive failed attempts */
  uint64_t retry_ms;       /* the server's retry:, 0 until it sends one */
  unsigned connects;
  int closing;
  mx_sse_closed_cb closed_cb;
  char readbuf[16384];
};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res);
static void on_connected(uv_connect_t *req, int status);
static void on_written(uv_write_t *req, int status);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);
static void on_conn_closed(uv_handle_t *h);
static void on_timer_closed(uv_handle_t *h);
static void maybe_finish(mx_sse_client_t *c);

const char *mx_sse_state_name(mx_sse_state_t s) {
  switch (s) {
  case MX_SSE_CONNECTING: return "connecting";
  case MX_SSE_LIVE: return "live";
  case MX_SSE_STALE: return "stale";
  case MX_SSE_CLOSED: return "closed";
  }
  return "?";
}

uint64_t mx_sse_backoff_ms(uint64_t base, uint64_t max, unsigned attempt, double rnd) {
  uint64_t d = base ? base : 1;
  if (max < d) max = d;
  for (unsigned i = 0; i < attempt && d < max; i++) d *= 2;
  if (d > max) d = max;
  uint64_t half = d / 2;
  uint64_t v = half + (uint64_t)(rnd * (double)(d - half + 1));
  return v > d ? d : v;
}

int mx_url_parse(const char *url, char *host, size_t host_cap, int *port, char *path, size_t path_cap) {
  if (strncmp(url, "http://", 7) != 0) return SC_EINVAL;
  const char *h = url + 7;
  const char *end = h + strcspn(h, "/?#");
  const char *colon = NULL;
  if (h[0] == '[') return SC_EINVAL; /* IPv6 literals: not supported */
  for (const char *q = h; q < end; q++) {
    if (*q == '@') return SC_EINVAL;
    if (*q == ':') colon = q;
  }
  const char *hend = colon ? colon : end;
  size_t hlen = (size_t)(hend - h);
  if (hlen == 0 || hlen >= host_cap) return SC_EINVAL;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = 80;
  if (colon) {
    long v = 0;
    const char *q = colon + 1;
    if (q == end) return SC_EINVAL;
    for (; q < end; q++) {
      if (*q < '0' || *q > '9') return SC_EINVAL;
      v = v * 10 + (*q - '0');
      if (v > 65535) return SC_EINVAL;
    }
    if (v == 0) return SC_EINVAL;
    *port = (int)v;
  }
  const char *p = *end == '/' || *end == '?' ? end : "/";
  size_t plen = strcspn(p, "#");
  if (plen + 2 >= path_cap) return SC_EINVAL;
  if (*p == '?') { /* "http://h:1?x" means "/?x" */
    path[0] = '/';
    memcpy(path + 1, p, plen);
    path[plen + 1] = '\0';
  } else {
    memcpy(path, p, plen);
    path[plen] = '\0';
  }
  return 0;
}

static void set_state(mx_sse_client_t *c, mx_sse_state_t s, const char *why) {
  if (c->state == s) return;
  c->state = s;
  if (c->o.on_state) c->o.on_state(c->o.arg, s, why ? why : "");
}

static void on_retry_field(void *arg, uint64_t ms) {
  mx_sse_client_t *c = arg;
  c->retry_ms = ms;
}

static int on_parsed_event(void *arg, const mx_sse_event_t *ev) {
  mx_sse_client_t *c = arg;
  int rc = c->o.on_event(c->o.arg, ev);
  return rc ? rc : (c->closing ? 1 : 0);
}

static void arm_timer(mx_sse_client_t *c, uint64_t ms) { uv_timer_start(&c->timer, on_timer, ms, 0); }

static void start_attempt(mx_sse_client_t *c) {
  set_state(c, MX_SSE_CONNECTING, NULL);
  if (c->closing) return;
  if (c->gai_pending) { /* an earlier lookup is still stuck in the resolver */
    mx_sse_client_reconnect(c, "resolver busy");
    return;
  }
  mx_sse_parser_restart(&c->parser);
  arm_timer(c, c->o.read_timeout_ms);
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  char port[8];
  snprintf(port, sizeof port, "%d", c->o.port);
  if (uv_getaddrinfo(c->loop, &c->gai, on_resolved, c->host, port, &hints) < 0) {
    mx_sse_client_reconnect(c, "cannot resolve host");
    return;
  }
  c->gai_pending = 1;
}

/* Let go of the current connection; its memory goes in on_conn_closed. */
static void drop_conn(mx_sse_client_t *c) {
  if (c->conn) {
    uv_close((uv_handle_t *)&c->conn->tcp, on_conn_closed);
    c->conn = NULL;
  }
  if (c->gai_pending) uv_cancel((uv_req_t *)&c->gai); /* on_resolved then sees UV_ECANCELED */
}

void mx_sse_client_reconnect(mx_sse_client_t *c, const char *why) {
  if (c->closing) return;
  drop_conn(c);
  uint64_t base = c->retry_ms ? c->retry_ms : c->o.retry_base_ms;
  uint64_t delay =
      mx_sse_backoff_ms(base, c->o.retry_max_ms, c->attempt, (double)rand() / ((double)RAND_MAX + 1.0));
  c->attempt++;
  SC_DEBUG("sse: %s; reconnecting in %llu ms", why, (unsigned long long)delay);
  set_state(c, MX_SSE_STALE, why);
  if (c->closing) return; /* the state callback closed the client */
  arm_timer(c, delay);
}

static void on_timer(uv_timer_t *t) {
  mx_sse_client_t *c = t->data;
  if (c->state == MX_SSE_STALE) start_attempt(c);
  else mx_sse_client_reconnect(c, c->state == MX_SSE_LIVE ? "stream silent too long" : "connect timed out");
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  mx_sse_client_t *c = req->data;
  c->gai_pending = 0;
  if (status == UV_ECANCELED || c->closing || c->state != MX_SSE_CONNECTING) {
    uv_freeaddrinfo(res);
    maybe_finish(c); /* frees c when closing and nothing else is pending */
    return;
  }
  if (status < 0 || !res) {
    uv_freeaddrinfo(res);
    mx_sse_client_reconnect(c, "cannot resolve host");
    return;
  }
  mx_conn_t *conn = calloc(1, sizeof *conn);
  if (!conn) {
    uv_freeaddrinfo(res);
    mx_sse_client_reconnect(c, "out of memory");
    return;
  }
  uv_tcp_init(c->loop, &conn->tcp);
  conn->tcp.data = conn;
  conn->connect_req.data = conn;
  conn->c = c;
  c->conn = conn;
  c->pending_closes++;
  int rc = uv_tcp_connect(&conn->connect_req, &conn->tcp, res->ai_addr, on_connected);
  uv_freeaddrinfo(res);
  if (rc < 0) mx_sse_client_reconnect(c, "connect failed");
}

static void on_connected(uv_connect_t *req, int status) {
  mx_conn_t *conn = req->data;
  mx_sse_client_t *c = conn->c;
  if (c->conn != conn || c->closing) return; /* abandoned; its close is under way */
  if (status < 0) {
    mx_sse_client_reconnect(c, "connection refused");
    return;
  }
  uv_tcp_nodelay(&conn->tcp, 1);
  const char *lid = mx_sse_parser_last_id(&c->parser);
  size_t cap = strlen(c->path) + strlen(c->host) + strlen(lid) + 256;
  mx_write_t *w = malloc(sizeof *w + cap);
  if (!w) {
    mx_sse_client_reconnect(c, "out of memory");
    return;
  }
  int n = snprintf(w->buf, cap,
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
                   "User-Agent: statecast-matrix\r\n%s%s%s\r\n",
                   c->path, c->host, c->o.port, lid[0] ? "Last-Event-ID: " : "", lid, lid[0] ? "\r\n" : "");
  uv_buf_t b = uv_buf_init(w->buf, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)&conn->tcp, &b, 1, on_written) < 0) {
    free(w);
    mx_sse_client_reconnect(c, "write failed");
    return;
  }
  mx_http_resp_reset(&c->resp, NULL, NULL, NULL);
  if (uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) < 0) mx_sse_client_reconnect(c, "read failed");
}

static void on_written(uv_write_t *req, int status) {
  (void)status; /* a failed write shows up as a read error or the timeout */
  free((mx_write_t *)req);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  mx_conn_t *conn = h->data;
  *buf = uv_buf_init(conn->c->readbuf, sizeof conn->c->readbuf);
}

/* Feed results that tell on_read why to reconnect. */
enum { R_NON200 = 1, R_NOT_SSE, R_STOPPED, R_TOOBIG, R_BAD };

static int on_head(void *arg, int status, const char *content_type) {
  mx_sse_client_t *c = arg;
  if (status != 200) return R_NON200;
  if (strncasecmp(content_type, "text/event-stream", 17) != 0) return R_NOT_SSE;
  c->attempt = 0;
  c->connects++;
  set_state(c, MX_SSE_LIVE, NULL);
  return c->closing ? R_STOPPED : 0;
}

static int on_body(void *arg, const char *buf, size_t len) {
  mx_sse_client_t *c = arg;
  int rc = mx_sse_parser_feed(&c->parser, buf, len);
  if (rc == SC_ETOOBIG) return R_TOOBIG;
  return rc || c->closing ? R_STOPPED : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  mx_conn_t *conn = s->data;
  mx_sse_client_t *c = conn->c;
  if (c->conn != conn || c->closing || nread == 0) return;
  if (nread < 0) {
    mx_sse_client_reconnect(c, nread == UV_EOF ? "server closed the stream" : "read error");
    return;
  }
  arm_timer(c, c->o.read_timeout_ms);
  c->resp.on_head = on_head;
  c->resp.on_body = on_body;
  c->resp.arg = c;
  int rc = mx_http_resp_feed(&c->resp, buf->base, (size_t)nread);
  if (c->closing || c->conn != conn) return; /* a callback closed or reconnected */
  switch (rc) {
  case 0:
    if (c->resp.state == MX_HTTP_DONE) mx_sse_client_reconnect(c, "server ended the stream");
    return;
  case R_NON200: mx_sse_client_reconnect(c, "server answered non-200"); return;
  case R_NOT_SSE: mx_sse_client_reconnect(c, "not an event stream"); return;
  case R_TOOBIG: mx_sse_client_reconnect(c, "line or event too large"); return;
  case R_STOPPED: mx_sse_client_reconnect(c, "stopped by the event handler"); return;
  default: mx_sse_client_reconnect(c, "malformed response"); return;
  }
}

static void maybe_finish(mx_sse_client_t *c) {
  if (!c->closing || c->pending_closes || c->gai_pending) return;
  mx_sse_closed_cb cb = c->closed_cb;
  void *arg = c->o.arg;
  mx_sse_parser_dispose(&c->parser);
  free(c->host);
  free(c->path);
  free(c);
  if (cb) cb(arg);
}

static void on_conn_closed(uv_handle_t *h) {
  mx_conn_t *conn = h->data;
  mx_sse_client_t *c = conn->c;
  free(conn);
  c->pending_closes--;
  maybe_finish(c);
}

static void on_timer_closed(uv_handle_t *h) {
  mx_sse_client_t *c = h->data;
  c->pending_closes--;
  maybe_finish(c);
}

int mx_sse_client_new(mx_sse_client_t **out, uv_loop_t *loop, const mx_sse_client_opts_t *opts) {
  *out = NULL;
  if (!opts->host || !opts->path || opts->port <= 0 || opts->port > 65535 || !opts->on_event) return SC_EINVAL;
  mx_sse_client_t *c = calloc(1, sizeof *c);
  if (!c) return SC_ENOMEM;
  c->loop = loop;
  c->o = *opts;
  if (!c->o.read_timeout_ms) c->o.read_timeout_ms = 45000;
  if (!c->o.retry_base_ms) c->o.retry_base_ms = 1000;
  if (!c->o.retry_max_ms) c->o.retry_max_ms = 30000;
  c->host = strdup(opts->host);
  c->path = strdup(opts->path);
  if (!c->host || !c->path) goto fail;
  mx_sse_parser_opts_t po = {.max_line = opts->max_line,
                             .max_event = opts->max_event,
                             .on_event = on_parsed_event,
                             .on_retry = on_retry_field,
                             .arg = c};
  if (mx_sse_parser_init(&c->parser, &po) != 0) goto fail;
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->pending_closes = 1; /* the timer */
  c->gai.data = c;
  c->state = MX_SSE_STALE; /* so the first attempt reports CONNECTING */
  *out = c;
  start_attempt(c);
  return 0;
fail:
  free(c->host);
  free(c->path);
  free(c);
  return SC_ENOMEM;
}

void mx_sse_client_close(mx_sse_client_t *c, mx_sse_closed_cb closed_cb) {
  assert(!c->closing);
  drop_conn(c);
  c->closing = 1;
  c->closed_cb = closed_cb;
  c->state = MX_SSE_CLOSED;
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

mx_sse_state_t mx_sse_client_state(const mx_sse_client_t *c) { return c->state; }
const char *mx_sse_client_last_id(const mx_sse_client_t *c) { return mx_sse_parser_last_id(&c->parser); }
unsigned mx_sse_client_connects(const mx_sse_client_t *c) { return c->connects; }
