/*
 * stream: the SSE streams of one loop and their fan-out ("hub").
 *
 * A stream is not a queue: it is a cursor (the highest seq it has passed),
 * a topic filter and the references it holds on the frames of its one
 * in-flight h2o_send. Whenever a stream is idle (connect, proceed, a new
 * commit) it gathers every matching store entry with seq > cursor in seq
 * order, up to API_STREAM_IOV frames, and sends them in ONE h2o_send without
 * copying (the frames are shared and refcounted). Because the store keeps
 * only the latest state per topic, a slow stream's backlog is bounded by
 * the number of topics, and it catches up with exactly the current state.
 *
 * The initial state is the same walk from cursor 0 (full state, tombstones
 * skipped) or from a resume id (updates and deletes after it); a `sync`
 * event follows once the walk has passed the store's last seq at connect.
 *
 * Small clients (fields=): a stream with a field spec shares an api_view_t
 * with every other stream of the same canonical spec. The view caches, per
 * topic, the projected and framed event made from the store entry's frame,
 * so identical specs share one refcounted buffer and a projection is
 * computed once per commit and spec. Streams without fields= send the
 * store's frames untouched. Each fields= stream remembers a hash of the
 * projection it last got per topic and skips commits that did not change
 * it. Per-stream heartbeat intervals ride on one 1-second hub tick; the
 * retry: value carries per-stream random jitter.
 */
#ifndef API_STREAM_H
#define API_STREAM_H

#include <h2o.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "fields.h"
#include "sse.h"
#include "store.h"

#define API_STREAM_IOV 64
/* A stream whose one send stays in flight this many heartbeat ticks is evicted. */
#define API_STREAM_STALL_TICKS 4
#define API_HIST_BUCKETS 14

typedef struct api_stream api_stream_t;
typedef struct api_view api_view_t;

enum { API_DROP_CLIENT = 0, API_DROP_SHUTDOWN, API_DROP_RELOAD, API_DROP_LIMIT, API_DROP_SLOW, API_DROP_EXPIRED, API_DROP_BACKLOG, API_DROP_N_ };
extern const char *const api_drop_names[API_DROP_N_];
extern const double api_hist_bounds[API_HIST_BUCKETS];

/*
 * A hub belongs to one loop (thread). Its counters are atomics only so that
 * /metrics, served by any worker, can sum the hubs of all workers; they are
 * written by the hub's own thread alone.
 */
typedef struct api_hub {
  uv_loop_t *loop;          /* borrowed */
  api_store_t *store;       /* borrowed: the current store (the owner swaps it) */
  api_stream_t *head;       /* owned streams (each freed in stop or when ended) */
  atomic_size_t nstreams;   /* this hub's open streams */
  atomic_size_t *open_total; /* borrowed: streams open in every hub of the process (the limit); default &own_total */
  atomic_size_t own_total;
  size_t max_streams;       /* limit on *open_total */
  unsigned retry_ms;
  unsigned heartbeat_ms;                 /* default per stream (0: none) */
  unsigned hb_min_ms, hb_max_ms;         /* bounds of heartbeat= */
  unsigned retry_jitter_pct;             /* retry: is retry_ms +- this % */
  uint64_t rng;                          /* xorshift state for the jitter */
  api_view_t *views;                     /* owned; each freed with its last stream */
  _Atomic uint64_t projections;          /* metrics: fields= projections computed */
  size_t max_backlog_bytes;              /* 0: no cap; see api_hub_set_backlog_cap() */
  uv_timer_t hb_timer;      /* closed in api_hub_dispose */
  uv_timer_t drain_timer;
  int draining;
  size_t drain_per_tick;
  /* metrics */
  _Atomic uint64_t events_sent, bytes_sent, heartbeats_sent;
  _Atomic uint64_t dropped[API_DROP_N_];
  _Atomic uint64_t hist[API_HIST_BUCKETS + 1]; /* last one is +Inf */
  _Atomic uint64_t hist_sum_us;
  _Atomic uint64_t hist_count;
} api_hub_t;

/* heartbeat_ms 0: no heartbeats. */
__attribute__((warn_unused_result)) int api_hub_init(api_hub_t *hub, uv_loop_t *loop, api_store_t *store,
                                                    unsigned heartbeat_ms, size_t max_streams, unsigned retry_ms);
/* Count this hub's streams in *total (shared by the hubs of one process,
 * which then share max_streams). Call before any stream opens. */
void api_hub_share_limit(api_hub_t *hub, atomic_size_t *total);
/* Bounds for heartbeat= (ms) and the retry jitter (0..100 %). */
void api_hub_set_stream_limits(api_hub_t *hub, unsigned hb_min_ms, unsigned hb_max_ms, unsigned retry_jitter_pct);
/* Hard cap on what a stalled stream still has to send: a stream whose
 * write has been in flight for two hub ticks and whose in-flight frames plus
 * the matching store entries after its cursor exceed bytes is cut (reason
 * "backlog"; it resumes from its last id). 0: no cap. */
void api_hub_set_backlog_cap(api_hub_t *hub, size_t bytes);
/* Parse a heartbeat= value (whole seconds) and check it against the
 * bounds. Returns 0 with *ms, or SC_EINVAL with *reason (static text). */
__attribute__((warn_unused_result)) int api_hub_parse_heartbeat(const api_hub_t *hub, const char *v, size_t len,
                                                               unsigned *ms, const char **reason);

/* Ends every stream (FINAL) and closes the timers; keep running the loop
 * until they have closed. */
void api_hub_dispose(api_hub_t *hub);

/* Point the hub at a new store and end every stream (they reconnect and
 * resume against the new store). */
void api_hub_set_store(api_hub_t *hub, api_store_t *store, int drop_reason);

/* Per-stream options of api_stream_open(). */
typedef struct api_stream_params {
  const api_fields_t *fields; /* borrowed for the call; NULL or no paths: whole data */
  unsigned heartbeat_ms;      /* 0: the hub's default */
  int64_t expires_ms;         /* wall-clock ms when the stream's token expires (0: never); the hub's tick then
                               * ends it with a final `event: error` {"error":"token expired"} */
} api_stream_params_t;

/* Start streaming on req: filter is moved into the stream (f is reset to
 * empty). params may be NULL (defaults). resume 1: the client has everything up to (store epoch, seq) and
 * gets only what came after; resume 0: full state. Answers 503 itself when
 * the stream limit is reached. Returns 0 (answered either way). */
int api_stream_open(api_hub_t *hub, h2o_req_t *req, sc_sse_filter_t *f, int resume, uint64_t seq,
                    const char *cors_origin, const api_stream_params_t *params);

/* The store has new entries: pump every idle stream. */
void api_hub_notify(api_hub_t *hub);

/* Close all streams spread over drain_ms (0: now). */
void api_hub_drain(api_hub_t *hub, unsigned drain_ms);
/* Forcefully cut the sockets of streams still open with a send stuck in
 * flight (stalled readers), so that h2o calls their stop. */
void api_hub_cut_stalled(api_hub_t *hub);

#endif
