/*
 * sse_client: a small blocking SSE client for tests (loopback only).
 * HTTP/1.1 (chunked or not) or HTTP/1.0, an optional Last-Event-ID header,
 * and an event parser (id / event / data fields, comments, retry).
 */
#ifndef SC_TEST_SSE_CLIENT_H
#define SC_TEST_SSE_CLIENT_H

#include <stddef.h>

typedef struct sc_sse_client sc_sse_client_t;

typedef struct sc_sse_event {
  int is_comment;  /* 1: a ": text" comment line (text in data) */
  char id[128];    /* last id seen on this event ("" if none) */
  char event[64];  /* event name ("message" if none) */
  char *data;      /* malloc'd, NUL-terminated; data lines joined with '\n' */
} sc_sse_event_t;

/* Connect to 127.0.0.1:port and GET path. last_event_id may be NULL;
 * http10 1 sends HTTP/1.0. Waits up to timeout_ms for the response
 * headers. Returns NULL on connection failure. Caller frees with sc_sse_close(). */
sc_sse_client_t *sc_sse_connect(int port, const char *path, const char *last_event_id, int http10, int timeout_ms);
int sc_sse_status(const sc_sse_client_t *c);
/* Value of a response header (case-insensitive name), or NULL. Borrowed. */
const char *sc_sse_header(const sc_sse_client_t *c, const char *name);
/* The retry: value seen so far, or -1. */
int sc_sse_retry_ms(const sc_sse_client_t *c);
/* Read the next event or comment: 1 got one (dispose it with
 * sc_sse_event_dispose), 0 timeout, -1 end of stream or error. */
int sc_sse_next(sc_sse_client_t *c, sc_sse_event_t *ev, int timeout_ms);
/* Next non-comment event (comments skipped). Same return values. */
int sc_sse_next_event(sc_sse_client_t *c, sc_sse_event_t *ev, int timeout_ms);
/* For a non-streaming answer: read the whole body (until Content-Length,
 * the last chunk, or close). Borrowed, NUL-terminated; NULL on timeout. */
const char *sc_sse_read_body(sc_sse_client_t *c, int timeout_ms);
void sc_sse_event_dispose(sc_sse_event_t *ev);
void sc_sse_close(sc_sse_client_t *c);

#endif
