/*
 * sse_client: a small, reusable Server-Sent Events client for libuv, meant
 * for displays on embedded Linux (no TLS, no HTTP/2, bounded memory).
 *
 * Three layers, the first two pure (no I/O, no loop) so tests drive them
 * byte by byte:
 *
 *   mx_sse_parser  the WHATWG "event stream interpretation" algorithm: any
 *                  line ending (CR, LF, CRLF, also split across feeds), one
 *                  leading UTF-8 BOM ignored, comments, fields without a
 *                  colon, "data:" with or without the single space, data
 *                  lines joined with '\n', "id" containing NUL ignored,
 *                  "retry" only when all ASCII digits, dispatch on a blank
 *                  line, empty data not dispatched, the last event id kept
 *                  across streams. Bytes are passed through as they are
 *                  (no U+FFFD replacement of invalid UTF-8: the consumer
 *                  validates its JSON anyway).
 *   mx_http_resp   an HTTP/1.1 response decoder: status line, headers,
 *                  chunked or identity body, handing body bytes on.
 *   mx_sse_client  the connection: resolve, connect, GET with Accept and
 *                  Last-Event-ID, decode, parse, and reconnect forever with
 *                  exponential backoff and jitter (the server's "retry:" is
 *                  the base). A connection that is silent (no bytes at all,
 *                  heartbeats included) for read_timeout_ms is dropped, as is
 *                  one that exceeds the line/event caps.
 *
 * Deviation from the browser EventSource, on purpose: a non-200 answer or a
 * wrong Content-Type does not "fail the connection" for good; a display
 * keeps retrying with backoff. Redirects are not followed.
 */
#ifndef MX_SSE_CLIENT_H
#define MX_SSE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct uv_loop_s uv_loop_t;

/* ------------------------------------------------------------------ parser */

/* One dispatched event; every pointer is borrowed until the callback returns.
 * data is NUL-terminated too (it may also contain NUL bytes: use data_len). */
typedef struct mx_sse_event {
  const char *type; /* "message" unless an "event:" field said otherwise */
  const char *data;
  size_t data_len;
  const char *last_id; /* the stream's last event id after this event ("" if none) */
} mx_sse_event_t;

/* Return 0 to go on; anything else stops the feed, which returns that value. */
typedef int (*mx_sse_event_cb)(void *arg, const mx_sse_event_t *ev);
/* A valid "retry:" field: the new reconnection time in ms. */
typedef void (*mx_sse_retry_cb)(void *arg, uint64_t ms);

typedef struct mx_sse_parser_opts {
  size_t max_line;  /* longest line accepted (bytes, without its ending); 0: MX_SSE_DEFAULT_MAX */
  size_t max_event; /* largest data buffer of one event; 0: MX_SSE_DEFAULT_MAX */
  mx_sse_event_cb on_event;
  mx_sse_retry_cb on_retry; /* may be NULL */
  void *arg;                /* borrowed, handed to the callbacks */
} mx_sse_parser_opts_t;

#define MX_SSE_DEFAULT_MAX (300u * 1024u)
#define MX_SSE_ID_MAX 256 /* longer ids are ignored like ids containing NUL */

/* Caller-allocated; the fields are private. */
typedef struct mx_sse_parser {
  mx_sse_parser_opts_t o;
  char *line; /* owned, o.max_line + 1 bytes */
  size_t line_len;
  char *data; /* owned, o.max_event + 1 bytes */
  size_t data_len;
  char type[64];
  size_t type_len;
  int type_overflow;
  char id_buf[MX_SSE_ID_MAX + 1];  /* the "last event ID buffer" */
  char last_id[MX_SSE_ID_MAX + 1]; /* the "last event ID string" */
  unsigned bom_pos;                /* 0..2 matched, 3 = BOM check done */
  int after_cr;                    /* previous byte ended a line with CR */
} mx_sse_parser_t;

/* 0 or SC_ENOMEM; release with mx_sse_parser_dispose(). opts is copied. */
__attribute__((warn_unused_result)) int mx_sse_parser_init(mx_sse_parser_t *p, const mx_sse_parser_opts_t *opts);
void mx_sse_parser_dispose(mx_sse_parser_t *p);
/*
 * Feed buf[0..len) (borrowed). Calls on_event for each complete event.
 * Returns 0, SC_ETOOBIG when a line or an event passes its cap (the parser
 * is then in an undefined stream position: call mx_sse_parser_restart()),
 * or the non-zero value an on_event returned.
 */
__attribute__((warn_unused_result)) int mx_sse_parser_feed(mx_sse_parser_t *p, const char *buf, size_t len);
/* A new stream (reconnect): drop any partial line/event, expect a BOM again;
 * the last event id is kept, as the spec requires. */
void mx_sse_parser_restart(mx_sse_parser_t *p);
/* The last event id string ("" if none); borrowed from p. */
const char *mx_sse_parser_last_id(const mx_sse_parser_t *p);
/* Set the last event id (e.g. persisted across process restarts); ignored
 * when it contains NUL or is longer than MX_SSE_ID_MAX. */
void mx_sse_parser_set_last_id(mx_sse_parser_t *p, const char *id);

/* ----------------------------------------------------- HTTP response decoder */

typedef enum {
  MX_HTTP_STATUS = 0,
  MX_HTTP_HEADERS,
  MX_HTTP_BODY_IDENTITY,
  MX_HTTP_CHUNK_SIZE,
  MX_HTTP_CHUNK_DATA,
  MX_HTTP_CHUNK_DATA_END,
  MX_HTTP_TRAILERS,
  MX_HTTP_DONE
} mx_http_state_t;

/* Headers are complete: return 0 to go on, anything else stops the feed. */
typedef int (*mx_http_head_cb)(void *arg, int status, const char *content_type);
/* Body bytes, borrowed until the callback returns; non-zero stops the feed. */
typedef int (*mx_http_body_cb)(void *arg, const char *buf, size_t len);

#define MX_HTTP_LINE_MAX 8192

/* Caller-allocated, zero-initialise then mx_http_resp_reset(); fields private. */
typedef struct mx_http_resp {
  mx_http_state_t state;
  int status;
  int chunked;
  int64_t content_length; /* -1: until the connection closes */
  uint64_t chunk_left;
  char line[MX_HTTP_LINE_MAX + 1];
  size_t line_len;
  char content_type[128];
  mx_http_head_cb on_head;
  mx_http_body_cb on_body;
  void *arg; /* borrowed */
} mx_http_resp_t;

void mx_http_resp_reset(mx_http_resp_t *r, mx_http_head_cb on_head, mx_http_body_cb on_body, void *arg);
/* Feed raw response bytes. 0, SC_EIO for a malformed response (bad status
 * line, bad chunk size, oversize header line), or a callback's value.
 * Once the body has ended (MX_HTTP_DONE) further bytes are ignored. */
__attribute__((warn_unused_result)) int mx_http_resp_feed(mx_http_resp_t *r, const char *buf, size_t len);

/* --------------------------------------------------------------- connection */

typedef enum {
  MX_SSE_CONNECTING = 0, /* resolving, connecting, waiting for the response head */
  MX_SSE_LIVE,           /* 200 text/event-stream received, stream flowing */
  MX_SSE_STALE,          /* connection lost or refused; a reconnect is scheduled */
  MX_SSE_CLOSED          /* mx_sse_client_close() was called */
} mx_sse_state_t;

const char *mx_sse_state_name(mx_sse_state_t s);

typedef struct mx_sse_client mx_sse_client_t;

/* State changes; why is static text (or "") for STALE. */
typedef void (*mx_sse_state_cb)(void *arg, mx_sse_state_t state, const char *why);
/* Last close callback: everything is released after it returns. */
typedef void (*mx_sse_closed_cb)(void *arg);

typedef struct mx_sse_client_opts {
  const char *host; /* copied; a name or an address */
  int port;
  const char *path;            /* copied; path and query, e.g. "/events?topic=a" */
  uint64_t read_timeout_ms;    /* no bytes for this long (also while connecting) → reconnect; 0: 45000 */
  uint64_t retry_base_ms;      /* first reconnect delay until the server sends retry:; 0: 1000 */
  uint64_t retry_max_ms;       /* backoff ceiling; 0: 30000 */
  size_t max_line, max_event;  /* parser caps, 0: defaults */
  mx_sse_event_cb on_event;    /* events, see mx_sse_parser */
  mx_sse_state_cb on_state;    /* may be NULL */
  void *arg;                   /* borrowed */
} mx_sse_client_opts_t;

/*
 * Create a client on loop (borrowed; must outlive the client) and start the
 * first connection attempt at once. Returns 0 and *out (release with
 * mx_sse_client_close()), or SC_EINVAL / SC_ENOMEM and nothing allocated.
 * An event callback may call mx_sse_client_close(); it then returns 1 or
 * any non-zero value so the rest of the buffer is not parsed.
 */
__attribute__((warn_unused_result)) int mx_sse_client_new(mx_sse_client_t **out, uv_loop_t *loop,
                                                          const mx_sse_client_opts_t *opts);
/* Stop for good: closes the connection and timers; closed_cb (may be NULL)
 * runs once from the loop after every handle is closed, and the client is
 * freed after it. Calling it twice is a programming error. */
void mx_sse_client_close(mx_sse_client_t *c, mx_sse_closed_cb closed_cb);
/* Drop the current connection and reconnect after the backoff delay. */
void mx_sse_client_reconnect(mx_sse_client_t *c, const char *why);
mx_sse_state_t mx_sse_client_state(const mx_sse_client_t *c);
/* Borrowed from c. */
const char *mx_sse_client_last_id(const mx_sse_client_t *c);
/* Number of connections that reached LIVE so far. */
unsigned mx_sse_client_connects(const mx_sse_client_t *c);

/* The reconnect delay for attempt n (0 = first retry): base * 2^n capped at
 * max, then a uniformly random value in [delay/2, delay] (rnd in [0,1)). */
uint64_t mx_sse_backoff_ms(uint64_t base, uint64_t max, unsigned attempt, double rnd);

/* Split "http://host[:port][/path]" into host (cap bytes), port and path
 * (cap bytes, "/" when absent). 0 or SC_EINVAL (https, user info, bad port). */
__attribute__((warn_unused_result)) int mx_url_parse(const char *url, char *host, size_t host_cap, int *port,
                                                     char *path, size_t path_cap);

#endif
