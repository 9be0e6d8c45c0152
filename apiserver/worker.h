/*
 * worker: one fan-out thread of the apiserver. Each worker has its own
 * libuv loop, h2o context and listening socket on the shared port
 * (SO_REUSEPORT: the kernel spreads connections over the workers), its own
 * stream hub, its own Redis command connection (POST /publish), and a
 * replica of the state store.
 *
 * The Redis thread (server.c) owns the master store and is the only
 * writer of state: it posts every change to every worker's inbox (a mutex-
 * guarded list plus a uv_async wake-up), in commit order:
 *   store  - a new replica (after a load): streams of the old one end with
 *            reason "reload" and resume against the new one;
 *   apply  - one commit, carrying the master's frame (shared, refcounted:
 *            framed once per process, never per worker or per stream);
 *   meta   - the epoch / last seq learned without a commit (catch-up);
 *            posted only after every commit up to that seq, since idle
 *            streams move their cursors up to the last seq.
 * A worker drains its inbox in one go and then pumps its idle streams once,
 * so a burst of commits reaches each stream in as few writes as possible.
 *
 * Ownership: the server creates and frees workers; everything inside a
 * worker (loop, hub, httpd, replica, cmd connection) is touched only by the
 * worker's thread, except the inbox (mutex), the hub's atomic counters and
 * `finished` (read by any thread).
 */
#ifndef API_WORKER_H
#define API_WORKER_H

#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>

#include "publish.h"
#include "redis.h"
#include "server.h"
#include "store.h"
#include "stream.h"

/* Each replica keeps the latest commits, every version, so a stream a few
 * fan-out passes behind still gets every event (store.h, history). */
#define API_WORKER_HISTORY_EVENTS 65536
#define API_WORKER_HISTORY_BYTES (64u << 20)

typedef struct api_site api_site_t;
typedef struct api_op api_op_t;

typedef struct api_worker {
  /* set before the thread starts, then read-only */
  api_site_t *site;          /* borrowed: shared configuration and Redis-side status */
  unsigned index;
  /* the worker thread's own */
  uv_loop_t loop;
  api_hub_t hub;
  api_store_t *store;        /* owned replica; NULL until the first load arrives */
  struct sc_httpd *httpd;    /* owned; freed by sc_httpd_close */
  sc_redis_t *cmd;           /* owned: POST /publish */
  api_publish_cfg_t pubcfg;
  uv_timer_t stop_timer;
  uint64_t stop_elapsed_ms;
  int cut_done, stopping, closed;
  /* inbox, filled by the Redis thread */
  uv_async_t wake;
  uv_mutex_t mu;
  api_op_t *inbox_head, *inbox_tail; /* owned ops, under mu */
  int shutdown_requested;            /* under mu */
  unsigned drain_ms;                 /* under mu until the shutdown starts */
  int inbox_closed;                  /* under mu: posts are dropped, the handle is closing */
  /* start-up hand-shake and end */
  uv_thread_t thread;
  uv_sem_t started;
  const void *start;   /* the start arguments, only until `started` is posted */
  int start_rc;
  int port;
  char err[256];
  int no_thread, joined;
  atomic_int finished; /* 1 once the loop has run dry (the thread is about to return) */
} api_worker_t;

/* Start w's thread (w zeroed except site and index) listening on `listen`
 * with the server's options o (borrowed for the call); blocks until it
 * listens, or failed: then the thread is joined and err says why. */
__attribute__((warn_unused_result)) int api_worker_start(api_worker_t *w, const api_server_opts_t *o,
                                                        const char *listen, char *err, size_t errlen);
/* Posts from the Redis thread. post_store moves replica in. post_apply
 * shares e's frame. epoch may be NULL (unknown). */
void api_worker_post_store(api_worker_t *w, api_store_t *replica);
void api_worker_post_apply(api_worker_t *w, const api_entry_t *e);
void api_worker_post_meta(api_worker_t *w, const char *epoch, uint64_t last_seq);
/* Graceful stop: stop accepting, end streams over drain_ms, close
 * everything; the thread then ends (api_worker_finished()). */
void api_worker_shutdown(api_worker_t *w, unsigned drain_ms);
int api_worker_finished(api_worker_t *w);
/* Join the thread (it must have been shut down) and free what it left. */
void api_worker_join(api_worker_t *w);

#endif
