/*
 * stream: SSE streams as cursors over the store, one h2o_send in flight
 * each (see stream.h). h2o does not copy the bytes we hand it, so every
 * frame in a send is pinned by a reference until proceed or stop.
 */
#include "stream.h"

#include "err.h"
#include "httpd.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

const char *const api_drop_names[API_DROP_N_] = {"client_closed", "shutdown", "reload", "limit", "slow"};
const double api_hist_bounds[API_HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                  0.25,  0.5,    1,     2.5,  5,     10,  30};

static const char heartbeat[] = ": hb\n\n";

struct api_stream {
  h2o_generator_t gen; /* must be first: h2o hands it back to proceed/stop */
  h2o_req_t *req;      /* borrowed from h2o until stop or our FINAL send */
  api_hub_t *hub;
  api_stream_t *prev, *next;
  sc_sse_filter_t filter;      /* owned */
  uint64_t cursor;             /* every entry with seq <= cursor has been passed */
  uint64_t initial_end;        /* sync once cursor >= this */
  uint64_t tomb_skip_upto;     /* full state: tombstones up to here are not sent */
  api_store_hint_t hint;
  unsigned nrefs;
  uint8_t inflight, synced, full, closing, retry_pending, sent_since_tick;
  uint8_t stalled_ticks; /* heartbeat ticks with the same send still in flight */
  uint8_t cut;
  int close_reason;
  api_frame_t *refs[API_STREAM_IOV]; /* references pinned by the in-flight send */
  h2o_iovec_t iov[API_STREAM_IOV + 3];
  char ctl[256]; /* retry line and sync event of the in-flight send */
};

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req);
static void on_stop(h2o_generator_t *gen, h2o_req_t *req);
static void on_heartbeat(uv_timer_t *t);
static void on_drain_tick(uv_timer_t *t);

static void hub_link(api_hub_t *hub, api_stream_t *s) {
  s->prev = NULL;
  s->next = hub->head;
  if (hub->head) hub->head->prev = s;
  hub->head = s;
  hub->nstreams++;
}

static void hub_unlink(api_hub_t *hub, api_stream_t *s) {
  if (s->prev) s->prev->next = s->next; else hub->head = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  hub->nstreams--;
}

static void release_refs(api_stream_t *s) {
  for (unsigned i = 0; i < s->nrefs; i++) api_frame_unref(s->refs[i]);
  s->nrefs = 0;
}

static void stream_free(api_stream_t *s) {
  release_refs(s);
  sc_sse_filter_dispose(&s->filter);
  free(s);
}

/* End the response now (no send in flight). */
static void end_now(api_stream_t *s, int reason) {
  api_hub_t *hub = s->hub;
  hub_unlink(hub, s);
  hub->dropped[reason]++;
  h2o_req_t *req = s->req;
  stream_free(s);
  h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
}

static void stream_end(api_stream_t *s, int reason) {
  if (s->inflight) {
    if (!s->closing) {
      s->closing = 1;
      s->close_reason = reason;
    }
    return;
  }
  end_now(s, reason);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void observe_delay(api_hub_t *hub, double seconds) {
  if (seconds < 0) seconds = 0;
  unsigned i = 0;
  while (i < API_HIST_BUCKETS && seconds > api_hist_bounds[i]) i++;
  hub->hist[i]++;
  hub->hist_sum += seconds;
  hub->hist_count++;
}

/* Gather everything due for an idle stream and send it in one h2o_send. */
static void pump(api_stream_t *s) {
  api_hub_t *hub = s->hub;
  api_store_t *st = hub->store;
  size_t n = 0, bytes = 0, ctl_used = 0;
  double now = -1;
  if (s->retry_pending) {
    size_t l = sc_sse_retry(s->ctl, sizeof s->ctl, hub->retry_ms);
    s->iov[n++] = h2o_iovec_init(s->ctl, l);
    ctl_used = l;
    bytes += l;
    s->retry_pending = 0;
  }
  const api_entry_t *e = api_store_first_after(st, s->cursor, &s->hint);
  const api_entry_t *last = NULL;
  while (e != NULL && s->nrefs < API_STREAM_IOV) {
    int send = !(e->deleted && e->seq <= s->tomb_skip_upto) && sc_sse_filter_match(&s->filter, e->topic, e->topic_len);
    if (send) {
      api_frame_t *f = api_frame_ref(e->frame);
      s->refs[s->nrefs++] = f;
      s->iov[n++] = h2o_iovec_init(f->bytes, f->len);
      bytes += f->len;
      hub->events_sent++;
      if (s->synced) {
        if (now < 0) now = now_ms();
        observe_delay(hub, (now - (double)f->ts) / 1000.0);
      }
    }
    s->cursor = e->seq;
    last = e;
    e = e->next;
  }
  if (last != NULL) api_store_hint_set(st, &s->hint, last);
  if (e == NULL && api_store_last_seq(st) > s->cursor) s->cursor = api_store_last_seq(st);
  if (!s->synced && s->cursor >= s->initial_end) {
    const char *epoch = api_store_epoch(st);
    char id[SC_SSE_ID_MAX], data[128];
    size_t idlen = sc_sse_id_format(id, epoch ? epoch : "0000000000000000", s->cursor);
    int dl = snprintf(data, sizeof data, "{\"seq\":%llu,\"epoch\":\"%s\",\"full\":%s}",
                      (unsigned long long)s->cursor, epoch ? epoch : "", s->full ? "true" : "false");
    char *out = s->ctl + ctl_used;
    size_t l = sc_sse_frame(out, id, idlen, "sync", data, (size_t)dl);
    s->iov[n++] = h2o_iovec_init(out, l);
    bytes += l;
    s->synced = 1;
  }
  if (n == 0) return;
  hub->bytes_sent += bytes;
  s->inflight = 1;
  s->sent_since_tick = 1;
  h2o_send(s->req, s->iov, n, H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req) {
  (void)req;
  api_stream_t *s = (api_stream_t *)gen;
  release_refs(s);
  s->inflight = 0;
  s->stalled_ticks = 0;
  if (s->closing) {
    end_now(s, s->close_reason);
    return;
  }
  pump(s);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req) {
  (void)req;
  api_stream_t *s = (api_stream_t *)gen;
  api_hub_t *hub = s->hub;
  hub_unlink(hub, s);
  hub->dropped[s->closing ? s->close_reason : API_DROP_CLIENT]++;
  stream_free(s);
}

int api_hub_init(api_hub_t *hub, uv_loop_t *loop, api_store_t *store, unsigned heartbeat_ms, size_t max_streams,
                 unsigned retry_ms) {
  memset(hub, 0, sizeof *hub);
  hub->loop = loop;
  hub->store = store;
  hub->max_streams = max_streams;
  hub->retry_ms = retry_ms;
  uv_timer_init(loop, &hub->hb_timer);
  uv_timer_init(loop, &hub->drain_timer);
  hub->hb_timer.data = hub;
  hub->drain_timer.data = hub;
  if (heartbeat_ms > 0) uv_timer_start(&hub->hb_timer, on_heartbeat, heartbeat_ms, heartbeat_ms);
  uv_unref((uv_handle_t *)&hub->hb_timer);
  return 0;
}

void api_hub_dispose(api_hub_t *hub) {
  /* Streams with a send in flight end from their proceed/stop (the server
   * cuts stalled ones and waits for nstreams == 0 before closing HTTP). */
  api_stream_t *s = hub->head;
  while (s != NULL) {
    api_stream_t *next = s->next;
    stream_end(s, API_DROP_SHUTDOWN);
    s = next;
  }
  uv_timer_stop(&hub->hb_timer);
  uv_timer_stop(&hub->drain_timer);
  if (!uv_is_closing((uv_handle_t *)&hub->hb_timer)) uv_close((uv_handle_t *)&hub->hb_timer, NULL);
  if (!uv_is_closing((uv_handle_t *)&hub->drain_timer)) uv_close((uv_handle_t *)&hub->drain_timer, NULL);
}

void api_hub_set_store(api_hub_t *hub, api_store_t *store, int drop_reason) {
  api_stream_t *s = hub->head;
  while (s != NULL) {
    api_stream_t *next = s->next;
    stream_end(s, drop_reason);
    s = next;
  }
  /* Streams still closing keep sending nothing more, but their hints and
   * refs belong to the old store's frames (refcounted, so still valid). */
  hub->store = store;
}

int api_stream_open(api_hub_t *hub, h2o_req_t *req, sc_sse_filter_t *f, int resume, uint64_t seq,
                    const char *cors_origin) {
  if (hub->draining) {
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("retry-after"), 0, NULL, H2O_STRLIT("1"));
    sc_httpd_respond_error(req, 503, "Service Unavailable", "shutting down");
    return 0;
  }
  if (hub->nstreams >= hub->max_streams) {
    hub->dropped[API_DROP_LIMIT]++;
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("retry-after"), 0, NULL, H2O_STRLIT("5"));
    sc_httpd_respond_error(req, 503, "Service Unavailable", "too many streams");
    return 0;
  }
  api_stream_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    sc_httpd_respond_error(req, 503, "Service Unavailable", "out of memory");
    return 0;
  }
  s->gen.proceed = on_proceed;
  s->gen.stop = on_stop;
  s->req = req;
  s->hub = hub;
  s->filter = *f;
  f->pats = NULL;
  f->n = 0;
  uint64_t last = api_store_last_seq(hub->store);
  s->initial_end = last;
  if (resume) {
    s->cursor = seq;
    s->full = 0;
  } else {
    s->cursor = 0;
    s->tomb_skip_upto = last;
    s->full = 1;
  }
  s->retry_pending = 1;
  req->res.status = 200;
  req->res.reason = "OK";
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/event-stream"));
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
  h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL, H2O_STRLIT("no"));
  if (cors_origin != NULL && cors_origin[0] != '\0')
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-origin"), 0, NULL,
                          cors_origin, strlen(cors_origin));
  h2o_start_response(req, &s->gen);
  hub_link(hub, s);
  pump(s);
  return 0;
}

void api_hub_notify(api_hub_t *hub) {
  /* next is read first: never rely on a stream surviving its own send. */
  for (api_stream_t *s = hub->head, *next; s != NULL; s = next) {
    next = s->next;
    if (!s->inflight && !s->closing) pump(s);
  }
}

/* Cut the connection under a stream whose reader stopped reading: h2o's
 * libuv build has no write timeout, so the send would stay in flight
 * forever. The failing write makes h2o call stop. (For HTTP/2 this ends
 * every stream of the connection.) */
static void cut(api_stream_t *s) {
  if (s->cut) return;
  h2o_conn_t *conn = s->req->conn;
  h2o_socket_t *sock = conn->callbacks->get_socket != NULL ? conn->callbacks->get_socket(conn) : NULL;
  if (sock == NULL) return;
  s->cut = 1;
  shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
}

static void on_heartbeat(uv_timer_t *t) {
  api_hub_t *hub = t->data;
  for (api_stream_t *s = hub->head, *next; s != NULL; s = next) {
    next = s->next;
    if (s->inflight) {
      if (++s->stalled_ticks >= API_STREAM_STALL_TICKS && !s->closing) {
        SC_INFO("evicting a stream whose client stopped reading");
        s->closing = 1;
        s->close_reason = API_DROP_SLOW;
        cut(s);
      }
      continue;
    }
    s->stalled_ticks = 0;
    if (!s->inflight && !s->closing && !s->sent_since_tick) {
      h2o_iovec_t b = h2o_iovec_init(heartbeat, sizeof heartbeat - 1);
      s->inflight = 1;
      hub->heartbeats_sent++;
      hub->bytes_sent += b.len;
      s->sent_since_tick = 0;
      h2o_send(s->req, &b, 1, H2O_SEND_STATE_IN_PROGRESS);
      continue;
    }
    s->sent_since_tick = 0;
  }
}

static void on_drain_tick(uv_timer_t *t) {
  api_hub_t *hub = t->data;
  size_t ended = 0;
  api_stream_t *s = hub->head;
  while (s != NULL && ended < hub->drain_per_tick) {
    api_stream_t *next = s->next;
    if (!s->closing) {
      stream_end(s, API_DROP_SHUTDOWN);
      ended++;
    }
    s = next;
  }
  if (ended == 0) uv_timer_stop(t);
}

void api_hub_drain(api_hub_t *hub, unsigned drain_ms) {
  hub->draining = 1;
  unsigned ticks = drain_ms / 100;
  if (ticks == 0 || hub->nstreams == 0) {
    api_stream_t *s = hub->head;
    while (s != NULL) {
      api_stream_t *next = s->next;
      stream_end(s, API_DROP_SHUTDOWN);
      s = next;
    }
    return;
  }
  hub->drain_per_tick = (hub->nstreams + ticks - 1) / ticks;
  uv_timer_start(&hub->drain_timer, on_drain_tick, 100, 100);
}

void api_hub_cut_stalled(api_hub_t *hub) {
  for (api_stream_t *s = hub->head; s != NULL; s = s->next)
    if (s->inflight) cut(s);
}
