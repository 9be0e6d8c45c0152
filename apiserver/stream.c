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
#include <unistd.h>

const char *const api_drop_names[API_DROP_N_] = {"client_closed", "shutdown", "reload", "limit", "slow", "expired", "backlog"};
const double api_hist_bounds[API_HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                  0.25,  0.5,    1,     2.5,  5,     10,  30};

static const char heartbeat[] = ": hb\n\n";
/* The hub's tick: per-stream heartbeats and stall checks. */
#define HUB_TICK_MS 1000

/* One topic's projection under a view: made from the store frame `src`. */
typedef struct view_entry {
  struct view_entry *hnext;
  api_frame_t *src;   /* owned reference: the store frame projected (identity check) */
  api_frame_t *frame; /* owned reference: the framed projected event */
  uint64_t proj_hash; /* of the projected data */
  uint32_t hash;
  uint16_t topic_len;
  char topic[];
} view_entry_t;

/* The projections of one canonical field spec, shared by its streams. */
struct api_view {
  api_view_t *next;
  unsigned refs; /* streams using it */
  api_fields_t fields;
  view_entry_t **buckets; /* owned */
  size_t nbuckets, count;
};

struct api_stream {
  h2o_generator_t gen; /* must be first: h2o hands it back to proceed/stop */
  h2o_req_t *req;      /* borrowed from h2o until stop or our FINAL send */
  api_hub_t *hub;
  api_stream_t *prev, *next;
  sc_sse_filter_t filter;      /* owned */
  api_view_t *view;            /* counted reference (NULL: whole data) */
  api_fields_seen_t seen;      /* fields=: projection hash last sent per topic */
  unsigned hb_ms;              /* heartbeat interval (0: none) */
  int64_t expires_ms;          /* wall-clock ms the token expires (0: never) */
  unsigned retry_ms;           /* with jitter */
  uint64_t last_send_ms;       /* uv_now at the last h2o_send */
  uint64_t inflight_since_ms;
  uint64_t cursor;             /* every entry with seq <= cursor has been passed */
  uint64_t initial_end;        /* sync once cursor >= this */
  uint64_t tomb_skip_upto;     /* full state: tombstones up to here are not sent */
  api_store_hint_t hint;
  api_frame_t **refs;          /* API_STREAM_IOV slots in req->pool: the references pinned by the in-flight send */
  char *ctl;                   /* CTL_MAX bytes in req->pool: the retry line and sync event of a send */
  uint8_t nrefs;
  uint8_t inflight, synced, full, closing, retry_pending;
  uint8_t cut;
  uint8_t close_reason;
};
/* An idle stream is this struct plus what h2o keeps per connection; the
 * iovec array of a send lives on the stack (h2o copies the array, never
 * the bytes), and the slots and control text above come from the request
 * pool, touched only as far as they are used. */

/* Retry line plus the sync event (id, and {"seq":..,"epoch":"..","full":..}). */
#define CTL_MAX 256

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req);
static void on_stop(h2o_generator_t *gen, h2o_req_t *req);
static void on_heartbeat(uv_timer_t *t);
static void on_drain_tick(uv_timer_t *t);

static void hub_link(api_hub_t *hub, api_stream_t *s) {
  s->prev = NULL;
  s->next = hub->head;
  if (hub->head) hub->head->prev = s;
  hub->head = s;
  atomic_fetch_add_explicit(&hub->nstreams, 1, memory_order_relaxed);
}

static void hub_unlink(api_hub_t *hub, api_stream_t *s) {
  if (s->prev) s->prev->next = s->next; else hub->head = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  atomic_fetch_sub_explicit(&hub->nstreams, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(hub->open_total, 1, memory_order_relaxed);
}

/* Relaxed add to a metrics counter (single writer, read by /metrics). */
static void count(_Atomic uint64_t *c, uint64_t v) { atomic_fetch_add_explicit(c, v, memory_order_relaxed); }

static void release_refs(api_stream_t *s) {
  for (unsigned i = 0; i < s->nrefs; i++) api_frame_unref(s->refs[i]);
  s->nrefs = 0;
}

static void view_release(api_hub_t *hub, api_view_t *v);

static void stream_free(api_stream_t *s) {
  release_refs(s);
  if (s->view != NULL) view_release(s->hub, s->view);
  api_fields_seen_dispose(&s->seen);
  sc_sse_filter_dispose(&s->filter);
  free(s);
}

/* End the response now (no send in flight). */
static void end_now(api_stream_t *s, int reason) {
  api_hub_t *hub = s->hub;
  hub_unlink(hub, s);
  count(&hub->dropped[reason], 1);
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
  count(&hub->hist[i], 1);
  count(&hub->hist_sum_us, (uint64_t)(seconds * 1e6));
  count(&hub->hist_count, 1);
}

/* ---- views: shared fields= projections --------------------------------- */

static api_view_t *view_acquire(api_hub_t *hub, const api_fields_t *f) {
  for (api_view_t *v = hub->views; v != NULL; v = v->next)
    if (v->fields.canon_len == f->canon_len && memcmp(v->fields.canon, f->canon, f->canon_len) == 0) {
      v->refs++;
      return v;
    }
  api_view_t *v = calloc(1, sizeof *v);
  if (v == NULL) return NULL;
  v->nbuckets = 64;
  v->buckets = calloc(v->nbuckets, sizeof *v->buckets);
  if (v->buckets == NULL) {
    free(v);
    return NULL;
  }
  v->fields = *f;
  v->refs = 1;
  v->next = hub->views;
  hub->views = v;
  return v;
}

static void view_release(api_hub_t *hub, api_view_t *v) {
  if (--v->refs > 0) return;
  api_view_t **pp = &hub->views;
  while (*pp != v) pp = &(*pp)->next;
  *pp = v->next;
  for (size_t i = 0; i < v->nbuckets; i++) {
    view_entry_t *e = v->buckets[i];
    while (e != NULL) {
      view_entry_t *n = e->hnext;
      api_frame_unref(e->src);
      api_frame_unref(e->frame);
      free(e);
      e = n;
    }
  }
  free(v->buckets);
  free(v);
}

static uint32_t topic_hash(const char *t, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)t[i]) * 16777619u;
  return h;
}

static void view_grow(api_view_t *v) {
  size_t nb = v->nbuckets * 2;
  view_entry_t **b = calloc(nb, sizeof *b);
  if (b == NULL) return; /* longer chains, still correct */
  for (size_t i = 0; i < v->nbuckets; i++) {
    view_entry_t *e = v->buckets[i];
    while (e != NULL) {
      view_entry_t *n = e->hnext;
      e->hnext = b[e->hash & (nb - 1)];
      b[e->hash & (nb - 1)] = e;
      e = n;
    }
  }
  free(v->buckets);
  v->buckets = b;
  v->nbuckets = nb;
}

/* Frame the projection of store entry e (live) under v's spec. */
static api_frame_t *project_frame(const api_view_t *v, const api_store_t *st, const api_item_t *e,
                                  uint64_t *proj_hash) {
  const api_frame_t *src = e->frame;
  size_t cap = api_fields_project_size(src->env_len);
  char stack[2048];
  char *env = cap <= sizeof stack ? stack : malloc(cap);
  if (env == NULL) return NULL;
  size_t doff, dlen;
  size_t elen = api_fields_project_envelope(&v->fields, src->bytes + src->env_off, src->env_len, env, &doff, &dlen);
  *proj_hash = api_fields_hash(env + doff, dlen);
  const char *epoch = api_store_epoch(st);
  char id[SC_SSE_ID_MAX];
  size_t idlen = sc_sse_id_format(id, epoch ? epoch : "0000000000000000", e->seq);
  size_t fcap = sc_sse_frame_size_line(idlen, 6, elen); /* the envelope is compact JSON: one line */
  api_frame_t *f = malloc(sizeof *f + fcap);
  if (f != NULL) {
    atomic_init(&f->refs, 1);
    f->len = (uint32_t)sc_sse_frame(f->bytes, id, idlen, "update", env, elen);
    f->env_len = (uint32_t)elen;
    f->env_off = f->len - 2 - (uint32_t)elen;
    f->ts = src->ts;
    f->topic_len = src->topic_len;
  }
  if (env != stack) free(env);
  return f;
}

/* The view's projection of live entry e, computed once per store frame. */
static const view_entry_t *view_get(api_hub_t *hub, api_view_t *v, const api_store_t *st, const api_item_t *e) {
  uint32_t h = topic_hash(e->topic, e->topic_len);
  view_entry_t *ve = v->buckets[h & (v->nbuckets - 1)];
  while (ve != NULL && !(ve->hash == h && ve->topic_len == e->topic_len && memcmp(ve->topic, e->topic, e->topic_len) == 0))
    ve = ve->hnext;
  if (ve != NULL && ve->src == e->frame) return ve;
  uint64_t ph;
  api_frame_t *f = project_frame(v, st, e, &ph);
  if (f == NULL) return NULL;
  count(&hub->projections, 1);
  if (ve == NULL) {
    ve = calloc(1, sizeof *ve + e->topic_len + 1);
    if (ve == NULL) {
      api_frame_unref(f);
      return NULL;
    }
    memcpy(ve->topic, e->topic, e->topic_len);
    ve->topic_len = e->topic_len;
    ve->hash = h;
    ve->hnext = v->buckets[h & (v->nbuckets - 1)];
    v->buckets[h & (v->nbuckets - 1)] = ve;
    if (++v->count > v->nbuckets) view_grow(v);
  }
  api_frame_unref(ve->src);
  api_frame_unref(ve->frame);
  ve->src = api_frame_ref(e->frame);
  ve->frame = f;
  ve->proj_hash = ph;
  return ve;
}

/* The frame stream s sends for e, or NULL to skip it (a fields=
 * projection that did not change since s last got it). */
static api_frame_t *frame_for(api_stream_t *s, const api_store_t *st, const api_item_t *e) {
  if (s->view == NULL) return e->frame;
  if (e->deleted) {
    api_fields_seen_forget(&s->seen, e->topic, e->topic_len);
    return e->frame;
  }
  const view_entry_t *ve = view_get(s->hub, s->view, st, e);
  if (ve == NULL) {
    SC_WARN("out of memory projecting fields; sending the whole state");
    return e->frame;
  }
  if (api_fields_seen_update(&s->seen, e->topic, e->topic_len, ve->proj_hash) == 0) return NULL;
  return ve->frame;
}

/* retry_ms +- up to pct %, so a fleet does not reconnect in lockstep. */
static unsigned jittered_retry(api_hub_t *hub) {
  unsigned base = hub->retry_ms, span = (unsigned)((uint64_t)base * hub->retry_jitter_pct / 100);
  if (span == 0) return base;
  uint64_t x = hub->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  hub->rng = x;
  long long v = (long long)base - span + (long long)(x % (2ull * span + 1));
  return v < 50 ? 50 : (unsigned)v;
}

/* Add it to the send being built in iov, when s gets it (fields=). */
static void gather(api_stream_t *s, const api_store_t *st, const api_item_t *it, h2o_iovec_t *iov, size_t *n,
                   size_t *bytes, size_t *events, double *now) {
  api_frame_t *ef = frame_for(s, st, it);
  if (ef == NULL) return;
  api_frame_t *f = api_frame_ref(ef);
  s->refs[s->nrefs++] = f;
  iov[(*n)++] = h2o_iovec_init(f->bytes, f->len);
  *bytes += f->len;
  (*events)++;
  if (s->synced) {
    if (*now < 0) *now = now_ms();
    observe_delay(s->hub, (*now - (double)f->ts) / 1000.0);
  }
}

/* Gather everything due for an idle stream and send it in one h2o_send. */
static void pump(api_stream_t *s) {
  api_hub_t *hub = s->hub;
  api_store_t *st = hub->store;
  h2o_iovec_t iov[API_STREAM_IOV + 2]; /* h2o copies the array */
  size_t n = 0, bytes = 0, ctl_used = 0, events = 0;
  double now = -1;
  if (s->retry_pending) {
    size_t l = sc_sse_retry(s->ctl, CTL_MAX, s->retry_ms);
    iov[n++] = h2o_iovec_init(s->ctl, l);
    ctl_used = l;
    bytes += l;
    s->retry_pending = 0;
  }
  int more;
  api_item_t it;
  if (api_store_history_covers(st, s->cursor)) {
    /* Close behind: every commit after the cursor, every version, in order. */
    size_t i = api_store_history_find(st, s->cursor);
    while ((more = api_store_history_at(st, i++, &it)) && s->nrefs < API_STREAM_IOV) {
      if (sc_sse_filter_match(&s->filter, it.topic, it.topic_len)) gather(s, st, &it, iov, &n, &bytes, &events, &now);
      s->cursor = it.seq;
    }
  } else {
    /* Far behind (or the initial state): each topic's latest state once. */
    const api_entry_t *e = api_store_first_after(st, s->cursor, &s->hint), *last = NULL;
    while (e != NULL && s->nrefs < API_STREAM_IOV) {
      if (!(e->deleted && e->seq <= s->tomb_skip_upto) && sc_sse_filter_match(&s->filter, e->topic, e->topic_len)) {
        it = (api_item_t){e->seq, e->frame, e->topic, e->topic_len, e->deleted};
        gather(s, st, &it, iov, &n, &bytes, &events, &now);
      }
      s->cursor = e->seq;
      last = e;
      e = e->next;
    }
    if (last != NULL) api_store_hint_set(st, &s->hint, last);
    more = e != NULL;
  }
  if (!more && api_store_last_seq(st) > s->cursor) s->cursor = api_store_last_seq(st);
  if (!s->synced && s->cursor >= s->initial_end) {
    const char *epoch = api_store_epoch(st);
    char id[SC_SSE_ID_MAX], data[128];
    size_t idlen = sc_sse_id_format(id, epoch ? epoch : "0000000000000000", s->cursor);
    int dl = snprintf(data, sizeof data, "{\"seq\":%llu,\"epoch\":\"%s\",\"full\":%s}",
                      (unsigned long long)s->cursor, epoch ? epoch : "", s->full ? "true" : "false");
    char *out = s->ctl + ctl_used;
    size_t l = sc_sse_frame(out, id, idlen, "sync", data, (size_t)dl);
    iov[n++] = h2o_iovec_init(out, l);
    bytes += l;
    s->synced = 1;
  }
  if (n == 0) return;
  if (events > 0) count(&hub->events_sent, events);
  count(&hub->bytes_sent, bytes);
  s->inflight = 1;
  s->last_send_ms = s->inflight_since_ms = uv_now(hub->loop);
  h2o_send(s->req, iov, n, H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req) {
  (void)req;
  api_stream_t *s = (api_stream_t *)gen;
  release_refs(s);
  s->inflight = 0;
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
  count(&hub->dropped[s->closing ? s->close_reason : API_DROP_CLIENT], 1);
  stream_free(s);
}

int api_hub_init(api_hub_t *hub, uv_loop_t *loop, api_store_t *store, unsigned heartbeat_ms, size_t max_streams,
                 unsigned retry_ms) {
  memset(hub, 0, sizeof *hub);
  hub->loop = loop;
  hub->store = store;
  hub->max_streams = max_streams;
  hub->open_total = &hub->own_total;
  hub->retry_ms = retry_ms;
  hub->heartbeat_ms = heartbeat_ms;
  hub->hb_min_ms = 1000;
  hub->hb_max_ms = 300000;
  hub->retry_jitter_pct = 50;
  hub->rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)hub ^ uv_hrtime();
  if (hub->rng == 0) hub->rng = 0x9e3779b97f4a7c15ull;
  uv_timer_init(loop, &hub->hb_timer);
  uv_timer_init(loop, &hub->drain_timer);
  hub->hb_timer.data = hub;
  hub->drain_timer.data = hub;
  /* Always ticking: a stream may ask for heartbeats (heartbeat=) even when
   * the default is none. */
  uv_timer_start(&hub->hb_timer, on_heartbeat, HUB_TICK_MS, HUB_TICK_MS);
  uv_unref((uv_handle_t *)&hub->hb_timer);
  return 0;
}

void api_hub_share_limit(api_hub_t *hub, atomic_size_t *total) { hub->open_total = total; }

void api_hub_set_stream_limits(api_hub_t *hub, unsigned hb_min_ms, unsigned hb_max_ms, unsigned retry_jitter_pct) {
  hub->hb_min_ms = hb_min_ms;
  hub->hb_max_ms = hb_max_ms;
  hub->retry_jitter_pct = retry_jitter_pct > 100 ? 100 : retry_jitter_pct;
}

void api_hub_set_backlog_cap(api_hub_t *hub, size_t bytes) { hub->max_backlog_bytes = bytes; }

/* Bytes a stream pins in its in-flight send plus what it would still send,
 * counted up to just past the hub's cap. */
static size_t stream_backlog(const api_stream_t *s) {
  size_t pinned = 0;
  for (unsigned i = 0; i < s->nrefs; i++) pinned += s->refs[i]->len;
  size_t cap = s->hub->max_backlog_bytes;
  if (pinned > cap) return pinned;
  return pinned + api_store_bytes_after(s->hub->store, s->cursor, &s->filter, cap - pinned);
}

int api_hub_parse_heartbeat(const api_hub_t *hub, const char *v, size_t len, unsigned *ms, const char **reason) {
  uint64_t sec = 0;
  if (len == 0 || len > 9) goto bad;
  for (size_t i = 0; i < len; i++) {
    if (v[i] < '0' || v[i] > '9') goto bad;
    sec = sec * 10 + (uint64_t)(v[i] - '0');
  }
  if (sec * 1000 < hub->hb_min_ms || sec * 1000 > hub->hb_max_ms) {
    *reason = "heartbeat out of the allowed range (see heartbeat_min_seconds, heartbeat_max_seconds)";
    return SC_EINVAL;
  }
  *ms = (unsigned)(sec * 1000);
  return 0;
bad:
  *reason = "heartbeat must be whole seconds";
  return SC_EINVAL;
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
                    const char *cors_origin, const api_stream_params_t *params) {
  if (hub->draining) {
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("retry-after"), 0, NULL, H2O_STRLIT("1"));
    sc_httpd_respond_error(req, 503, "Service Unavailable", "shutting down");
    return 0;
  }
  if (atomic_fetch_add_explicit(hub->open_total, 1, memory_order_relaxed) >= hub->max_streams) {
    atomic_fetch_sub_explicit(hub->open_total, 1, memory_order_relaxed);
    count(&hub->dropped[API_DROP_LIMIT], 1);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("retry-after"), 0, NULL, H2O_STRLIT("5"));
    sc_httpd_respond_error(req, 503, "Service Unavailable", "too many streams");
    return 0;
  }
  /* From here on the stream is counted in open_total; every exit releases it. */
  api_stream_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    atomic_fetch_sub_explicit(hub->open_total, 1, memory_order_relaxed);
    sc_httpd_respond_error(req, 503, "Service Unavailable", "out of memory");
    return 0;
  }
  s->gen.proceed = on_proceed;
  s->gen.stop = on_stop;
  s->req = req;
  s->hub = hub;
  if (params != NULL && params->fields != NULL && params->fields->n > 0) {
    s->view = view_acquire(hub, params->fields);
    if (s->view == NULL) {
      atomic_fetch_sub_explicit(hub->open_total, 1, memory_order_relaxed);
      free(s);
      sc_httpd_respond_error(req, 503, "Service Unavailable", "out of memory");
      return 0;
    }
  }
  s->hb_ms = params != NULL && params->heartbeat_ms > 0 ? params->heartbeat_ms : hub->heartbeat_ms;
  s->expires_ms = params != NULL ? params->expires_ms : 0;
  s->retry_ms = jittered_retry(hub);
  s->last_send_ms = uv_now(hub->loop);
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
  s->refs = h2o_mem_alloc_pool(&req->pool, API_STREAM_IOV * sizeof *s->refs);
  s->ctl = h2o_mem_alloc_pool(&req->pool, CTL_MAX);
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

/* Each tick: evict streams whose send has been stuck for
 * API_STREAM_STALL_TICKS default heartbeat intervals, and send a heartbeat
 * to every idle stream that sent nothing for its own interval. */
static void on_heartbeat(uv_timer_t *t) {
  api_hub_t *hub = t->data;
  uint64_t now = uv_now(hub->loop);
  for (api_stream_t *s = hub->head, *next; s != NULL; s = next) {
    next = s->next;
    if (s->inflight) {
      if (hub->max_backlog_bytes > 0 && !s->closing && now - s->inflight_since_ms >= 2 * HUB_TICK_MS &&
          stream_backlog(s) > hub->max_backlog_bytes) {
        SC_INFO("evicting a stalled stream whose backlog exceeds %zu bytes", hub->max_backlog_bytes);
        s->closing = 1;
        s->close_reason = API_DROP_BACKLOG;
        cut(s);
        continue;
      }
      if (hub->heartbeat_ms > 0 && !s->closing &&
          now - s->inflight_since_ms >= (uint64_t)API_STREAM_STALL_TICKS * hub->heartbeat_ms) {
        SC_INFO("evicting a stream whose client stopped reading");
        s->closing = 1;
        s->close_reason = API_DROP_SLOW;
        cut(s);
      }
      continue;
    }
    if (!s->closing && s->expires_ms > 0 && now_ms() >= (double)s->expires_ms) {
      /* The token ran out: a last event says why, then the response ends. */
      static const char expired[] = "event: error\ndata: {\"error\":\"token expired\"}\n\n";
      h2o_iovec_t b = h2o_iovec_init(expired, sizeof expired - 1);
      h2o_req_t *req = s->req;
      hub_unlink(hub, s);
      count(&hub->dropped[API_DROP_EXPIRED], 1);
      count(&hub->bytes_sent, b.len);
      stream_free(s);
      h2o_send(req, &b, 1, H2O_SEND_STATE_FINAL);
      continue;
    }
    if (!s->closing && s->hb_ms > 0 && now - s->last_send_ms >= s->hb_ms) {
      h2o_iovec_t b = h2o_iovec_init(heartbeat, sizeof heartbeat - 1);
      s->inflight = 1;
      s->last_send_ms = s->inflight_since_ms = now;
      count(&hub->heartbeats_sent, 1);
      count(&hub->bytes_sent, b.len);
      h2o_send(s->req, &b, 1, H2O_SEND_STATE_IN_PROGRESS);
    }
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
  size_t open = atomic_load_explicit(&hub->nstreams, memory_order_relaxed);
  if (ticks == 0 || open == 0) {
    api_stream_t *s = hub->head;
    while (s != NULL) {
      api_stream_t *next = s->next;
      stream_end(s, API_DROP_SHUTDOWN);
      s = next;
    }
    return;
  }
  hub->drain_per_tick = (open + ticks - 1) / ticks;
  uv_timer_start(&hub->drain_timer, on_drain_tick, 100, 100);
}

void api_hub_cut_stalled(api_hub_t *hub) {
  for (api_stream_t *s = hub->head; s != NULL; s = s->next)
    if (s->inflight) cut(s);
}
