/*
 * sse_client: blocking SSE client for tests (see sse_client.h). Bytes flow
 * raw socket -> transfer decoding (chunked or plain) -> body -> event lines.
 */
#include "sse_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct sc_sse_client {
  int fd;
  int status;
  int chunked;
  long long content_length; /* -1 unknown */
  int eof;                  /* socket closed or last chunk seen */
  int retry;
  char headers[8192]; /* raw response head, NUL-terminated */
  char *raw;          /* bytes read but not yet transfer-decoded */
  size_t rawlen, rawcap;
  char *body; /* decoded bytes not yet parsed into events */
  size_t bodylen, bodycap;
  size_t chunk_left; /* bytes left in the current chunk */
  int chunk_crlf;    /* expecting the CRLF after a chunk */
  long long body_total;
  /* partial event */
  char id[128];
  char event[64];
  char *data;
  size_t datalen;
  int has_data;
};

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
  if (*len + n + 1 > *cap) {
    size_t nc = (*cap ? *cap * 2 : 4096) + n;
    *buf = realloc(*buf, nc);
    *cap = nc;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
  (*buf)[*len] = '\0';
}

static void consume(char *buf, size_t *len, size_t n) {
  memmove(buf, buf + n, *len - n);
  *len -= n;
  buf[*len] = '\0';
}

/* Read what is available within the deadline into raw. 1 got bytes, 0 timeout, -1 EOF/error. */
static int fill(sc_sse_client_t *c, long long deadline) {
  if (c->eof) return -1;
  long long left = deadline - now_ms();
  if (left < 0) left = 0;
  struct pollfd p = {c->fd, POLLIN, 0};
  int r = poll(&p, 1, (int)left);
  if (r == 0) return 0;
  if (r < 0) return errno == EINTR ? 0 : -1;
  char tmp[16384];
  ssize_t n = read(c->fd, tmp, sizeof tmp);
  if (n <= 0) {
    c->eof = 1;
    return -1;
  }
  append(&c->raw, &c->rawlen, &c->rawcap, tmp, (size_t)n);
  return 1;
}

/* Move decodable bytes from raw to body. */
static void decode(sc_sse_client_t *c) {
  if (!c->chunked) {
    append(&c->body, &c->bodylen, &c->bodycap, c->raw ? c->raw : "", c->rawlen);
    c->body_total += (long long)c->rawlen;
    c->rawlen = 0;
    if (c->content_length >= 0 && c->body_total >= c->content_length) c->eof = 1;
    return;
  }
  for (;;) {
    if (c->chunk_crlf) {
      if (c->rawlen < 2) return;
      consume(c->raw, &c->rawlen, 2);
      c->chunk_crlf = 0;
    }
    if (c->chunk_left == 0) {
      char *nl = c->rawlen ? memchr(c->raw, '\n', c->rawlen) : NULL;
      if (nl == NULL) return;
      size_t size = strtoul(c->raw, NULL, 16);
      consume(c->raw, &c->rawlen, (size_t)(nl - c->raw) + 1);
      if (size == 0) {
        c->eof = 1;
        return;
      }
      c->chunk_left = size;
    }
    size_t n = c->rawlen < c->chunk_left ? c->rawlen : c->chunk_left;
    if (n == 0) return;
    append(&c->body, &c->bodylen, &c->bodycap, c->raw, n);
    consume(c->raw, &c->rawlen, n);
    c->chunk_left -= n;
    if (c->chunk_left == 0) c->chunk_crlf = 1;
  }
}

sc_sse_client_t *sc_sse_connect(int port, const char *path, const char *last_event_id, int http10, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return NULL;
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return NULL;
  }
  char req[2048];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.%d\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n%s%s%s\r\n",
                   path, http10 ? 0 : 1, last_event_id ? "Last-Event-ID: " : "", last_event_id ? last_event_id : "",
                   last_event_id ? "\r\n" : "");
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return NULL;
  }
  sc_sse_client_t *c = calloc(1, sizeof *c);
  c->fd = fd;
  c->retry = -1;
  c->content_length = -1;
  long long deadline = now_ms() + timeout_ms;
  char *end = NULL;
  while ((end = c->raw ? strstr(c->raw, "\r\n\r\n") : NULL) == NULL) {
    if (fill(c, deadline) <= 0) {
      sc_sse_close(c);
      return NULL;
    }
  }
  size_t hl = (size_t)(end - c->raw) + 4;
  size_t copy = hl < sizeof c->headers ? hl : sizeof c->headers - 1;
  memcpy(c->headers, c->raw, copy);
  c->headers[copy] = '\0';
  consume(c->raw, &c->rawlen, hl);
  sscanf(c->headers, "HTTP/%*d.%*d %d", &c->status);
  const char *te = sc_sse_header(c, "transfer-encoding");
  c->chunked = te != NULL && strncasecmp(te, "chunked", 7) == 0;
  const char *cl = sc_sse_header(c, "content-length");
  if (cl != NULL) c->content_length = atoll(cl);
  c->eof = 0;
  decode(c);
  return c;
}

int sc_sse_status(const sc_sse_client_t *c) { return c->status; }
int sc_sse_retry_ms(const sc_sse_client_t *c) { return c->retry; }

const char *sc_sse_header(const sc_sse_client_t *c, const char *name) {
  static __thread char val[1024];
  size_t nl = strlen(name);
  const char *p = strstr(c->headers, "\r\n");
  while (p != NULL && p[2] != '\r' && p[2] != '\0') {
    p += 2;
    const char *eol = strstr(p, "\r\n");
    if (eol == NULL) break;
    if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
      const char *v = p + nl + 1;
      while (*v == ' ') v++;
      size_t l = (size_t)(eol - v);
      if (l >= sizeof val) l = sizeof val - 1;
      memcpy(val, v, l);
      val[l] = '\0';
      return val;
    }
    p = eol;
  }
  return NULL;
}

static void reset_partial(sc_sse_client_t *c) {
  c->event[0] = '\0';
  c->datalen = 0;
  c->has_data = 0;
  if (c->data) c->data[0] = '\0';
}

/* Parse one complete line from body. 1 dispatched (ev filled), 0 nothing yet
 * (no complete line), 2 line consumed without dispatch. */
static int parse_line(sc_sse_client_t *c, sc_sse_event_t *ev) {
  char *nl = c->bodylen ? memchr(c->body, '\n', c->bodylen) : NULL;
  if (nl == NULL) return 0;
  size_t ll = (size_t)(nl - c->body);
  char line[65536];
  if (ll >= sizeof line) ll = sizeof line - 1;
  memcpy(line, c->body, ll);
  line[ll] = '\0';
  if (ll > 0 && line[ll - 1] == '\r') line[--ll] = '\0';
  consume(c->body, &c->bodylen, (size_t)(nl - c->body) + 1);
  if (ll == 0) {
    if (!c->has_data) {
      reset_partial(c);
      return 2;
    }
    memset(ev, 0, sizeof *ev);
    snprintf(ev->id, sizeof ev->id, "%s", c->id);
    snprintf(ev->event, sizeof ev->event, "%s", c->event[0] ? c->event : "message");
    ev->data = strdup(c->data ? c->data : "");
    reset_partial(c);
    return 1;
  }
  if (line[0] == ':') {
    memset(ev, 0, sizeof *ev);
    ev->is_comment = 1;
    ev->data = strdup(line[1] == ' ' ? line + 2 : line + 1);
    return 1;
  }
  char *colon = strchr(line, ':');
  const char *val = "";
  if (colon != NULL) {
    *colon = '\0';
    val = colon[1] == ' ' ? colon + 2 : colon + 1;
  }
  if (strcmp(line, "id") == 0) {
    snprintf(c->id, sizeof c->id, "%s", val);
  } else if (strcmp(line, "event") == 0) {
    snprintf(c->event, sizeof c->event, "%s", val);
  } else if (strcmp(line, "retry") == 0) {
    c->retry = atoi(val);
  } else if (strcmp(line, "data") == 0) {
    size_t cap = c->datalen + 1;
    if (c->has_data) append(&c->data, &c->datalen, &cap, "\n", 1);
    cap = c->datalen + 1;
    append(&c->data, &c->datalen, &cap, val, strlen(val));
    c->has_data = 1;
  }
  return 2;
}

int sc_sse_next(sc_sse_client_t *c, sc_sse_event_t *ev, int timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  for (;;) {
    int r;
    while ((r = parse_line(c, ev)) == 2) {
    }
    if (r == 1) return 1;
    if (c->eof && c->rawlen == 0) return -1;
    int f = fill(c, deadline);
    if (f == 0) return 0;
    decode(c);
    if (f < 0 && c->bodylen == 0) return -1;
  }
}

int sc_sse_next_event(sc_sse_client_t *c, sc_sse_event_t *ev, int timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  for (;;) {
    long long left = deadline - now_ms();
    int r = sc_sse_next(c, ev, left > 0 ? (int)left : 0);
    if (r != 1) return r;
    if (!ev->is_comment) return 1;
    sc_sse_event_dispose(ev);
  }
}

const char *sc_sse_read_body(sc_sse_client_t *c, int timeout_ms) {
  long long deadline = now_ms() + timeout_ms;
  while (!c->eof) {
    int f = fill(c, deadline);
    decode(c);
    if (f == 0) return NULL;
    if (f < 0) break;
  }
  decode(c);
  return c->body ? c->body : "";
}

void sc_sse_event_dispose(sc_sse_event_t *ev) {
  free(ev->data);
  ev->data = NULL;
}

void sc_sse_close(sc_sse_client_t *c) {
  if (c == NULL) return;
  close(c->fd);
  free(c->raw);
  free(c->body);
  free(c->data);
  free(c);
}
