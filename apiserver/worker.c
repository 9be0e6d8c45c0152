/*
 * worker: a fan-out thread (see worker.h). Its inbox is the only thing the
 * Redis thread touches; everything else runs on the worker's own loop.
 */
#include "worker.h"

#include "envelope.h"
#include "err.h"
#include "httpd.h"
#include "log.h"
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OP_STORE, OP_APPLY, OP_META };

/* One posted change; owned by the inbox, then by the worker that runs it. */
struct api_op {
  api_op_t *next;
  int kind;
  api_store_t *store;  /* OP_STORE: owned replica */
  api_frame_t *frame;  /* OP_APPLY: owned reference */
  uint64_t seq;        /* OP_APPLY: the commit; OP_META: the last seq */
  int64_t ts;
  uint8_t deleted;
  uint8_t has_epoch;   /* OP_META */
  char epoch[SC_SSE_EPOCH_LEN + 1];
  uint16_t topic_len;
  char topic[];        /* OP_APPLY */
};

/* Set by api_worker_start for the thread's start-up, valid until it posts `started`. */
typedef struct start_args {
  const api_server_opts_t *opts;
  const char *listen;
} start_args_t;

static void op_free(api_op_t *op) {
  if (op->kind == OP_STORE) api_store_free(op->store);
  api_frame_unref(op->frame);
  free(op);
}

static void post(api_worker_t *w, api_op_t *op) {
  uv_mutex_lock(&w->mu);
  if (w->inbox_closed) {
    uv_mutex_unlock(&w->mu);
    op_free(op);
    return;
  }
  if (w->inbox_tail != NULL) w->inbox_tail->next = op; else w->inbox_head = op;
  w->inbox_tail = op;
  /* Under the lock: the worker closes the handle only after inbox_closed is set. */
  uv_async_send(&w->wake);
  uv_mutex_unlock(&w->mu);
}

void api_worker_post_store(api_worker_t *w, api_store_t *replica) {
  api_op_t *op = calloc(1, sizeof *op);
  if (op == NULL) {
    /* The worker keeps serving its old replica; the next load retries. */
    SC_ERROR("worker %u: out of memory handing over a new state", w->index);
    api_store_free(replica);
    return;
  }
  op->kind = OP_STORE;
  op->store = replica;
  post(w, op);
}

void api_worker_post_apply(api_worker_t *w, const api_entry_t *e) {
  api_op_t *op = calloc(1, sizeof *op + e->topic_len + 1);
  if (op == NULL) {
    SC_ERROR("worker %u: out of memory passing on seq %llu", w->index, (unsigned long long)e->seq);
    return;
  }
  op->kind = OP_APPLY;
  op->frame = api_frame_ref(e->frame);
  op->seq = e->seq;
  op->ts = e->ts;
  op->deleted = e->deleted;
  op->topic_len = e->topic_len;
  memcpy(op->topic, e->topic, e->topic_len);
  post(w, op);
}

void api_worker_post_meta(api_worker_t *w, const char *epoch, uint64_t last_seq) {
  api_op_t *op = calloc(1, sizeof *op);
  if (op == NULL) return; /* the next commit carries the same information */
  op->kind = OP_META;
  op->seq = last_seq;
  if (epoch != NULL) {
    memcpy(op->epoch, epoch, SC_SSE_EPOCH_LEN);
    op->has_epoch = 1;
  }
  post(w, op);
}

void api_worker_shutdown(api_worker_t *w, unsigned drain_ms) {
  uv_mutex_lock(&w->mu);
  if (!w->inbox_closed) {
    w->shutdown_requested = 1;
    w->drain_ms = drain_ms;
    uv_async_send(&w->wake);
  }
  uv_mutex_unlock(&w->mu);
}

int api_worker_finished(api_worker_t *w) { return atomic_load(&w->finished); }

/* ---- on the worker's thread ------------------------------------------- */

static void run_op(api_worker_t *w, api_op_t *op) {
  switch (op->kind) {
  case OP_STORE: {
    api_store_t *old = w->store;
    w->store = op->store;
    op->store = NULL;
    api_store_keep_history(w->store, API_WORKER_HISTORY_EVENTS, API_WORKER_HISTORY_BYTES);
    /* A new data set: streams of the old one end and resume (or get the
     * full state) on reconnect, never a mix of both. */
    api_hub_set_store(&w->hub, w->store, API_DROP_RELOAD);
    api_store_free(old);
    break;
  }
  case OP_APPLY:
    if (w->store != NULL) {
      int rc = api_store_apply_frame(w->store, op->seq, op->ts, op->topic, op->topic_len, op->frame, op->deleted);
      if (rc < 0) SC_ERROR("worker %u: applying %s: %s", w->index, op->topic, sc_strerror(rc));
    }
    break;
  case OP_META:
    if (w->store != NULL) {
      if (op->has_epoch && api_store_epoch(w->store) == NULL) api_store_set_epoch(w->store, op->epoch);
      api_store_raise_last_seq(w->store, op->seq);
    }
    break;
  }
}

static void close_inbox(api_worker_t *w) {
  uv_mutex_lock(&w->mu);
  w->inbox_closed = 1;
  api_op_t *op = w->inbox_head;
  w->inbox_head = w->inbox_tail = NULL;
  uv_mutex_unlock(&w->mu);
  while (op != NULL) {
    api_op_t *n = op->next;
    op_free(op);
    op = n;
  }
  uv_close((uv_handle_t *)&w->wake, NULL);
}

static void close_all(api_worker_t *w) {
  if (w->closed) return;
  w->closed = 1;
  uv_timer_stop(&w->stop_timer);
  uv_close((uv_handle_t *)&w->stop_timer, NULL);
  close_inbox(w);
  api_hub_dispose(&w->hub);
  if (w->httpd != NULL) sc_httpd_close(w->httpd);
  sc_redis_close(w->cmd);
}

static void on_stop_timer(uv_timer_t *t) {
  api_worker_t *w = t->data;
  w->stop_elapsed_ms += 100;
  size_t open = atomic_load_explicit(&w->hub.nstreams, memory_order_relaxed);
  if (open == 0) {
    close_all(w);
    return;
  }
  if (!w->cut_done && w->stop_elapsed_ms >= w->drain_ms + 2000) {
    SC_WARN("worker %u: %zu streams still open after the drain period; cutting them", w->index, open);
    api_hub_cut_stalled(&w->hub);
    w->cut_done = 1;
  }
  if (w->stop_elapsed_ms >= w->drain_ms + 5000) close_all(w);
}

static void begin_shutdown(api_worker_t *w) {
  /* Stop accepting: the Service has (or soon will have) moved new clients
   * to other replicas. Requests on connections already open still get
   * answers during the drain (503 on /readyz, 503 + Retry-After on /events). */
  sc_httpd_stop_accepting(w->httpd);
  api_hub_drain(&w->hub, w->drain_ms);
  uv_timer_start(&w->stop_timer, on_stop_timer, 100, 100);
}

static void on_wake(uv_async_t *a) {
  api_worker_t *w = a->data;
  uv_mutex_lock(&w->mu);
  api_op_t *op = w->inbox_head;
  w->inbox_head = w->inbox_tail = NULL;
  int stop = w->shutdown_requested && !w->stopping;
  if (stop) w->stopping = 1;
  uv_mutex_unlock(&w->mu);
  int changed = 0;
  while (op != NULL) {
    api_op_t *n = op->next;
    run_op(w, op);
    op_free(op);
    changed = 1;
    op = n;
  }
  /* Everything that arrived together goes out together: one pass, and
   * each idle stream gets all of it in one write. */
  if (changed && w->store != NULL) api_hub_notify(&w->hub);
  if (stop) begin_shutdown(w);
}

static void worker_main(void *arg) {
  api_worker_t *w = arg;
  const start_args_t *sa = w->start;
  const api_server_opts_t *o = sa->opts;
  /* h2o reads requests into a per-socket buffer that stays allocated for the
   * connection's life (2.2.5 starts it at 8 KiB; reads reserve 4 KiB). SSE
   * requests are short: start at 4 KiB. The prototype is per thread. */
  h2o_socket_buffer_prototype._initial_buf.capacity = H2O_SOCKET_INITIAL_INPUT_BUFFER_SIZE;
  char name[32];
  snprintf(name, sizeof name, "api-pub-%u", w->index);
  sc_redis_opts_t co = {.name = name, .data = w};
  int rc = sc_redis_new(&w->cmd, &w->loop, o->redis, &co);
  if (rc != 0) {
    snprintf(w->err, sizeof w->err, "out of memory");
  } else {
    w->pubcfg.loop = &w->loop;
    w->pubcfg.cmd = w->cmd;
    w->pubcfg.max_bytes = o->max_message_bytes ? o->max_message_bytes : SC_DEFAULT_MAX_MESSAGE_BYTES;
    w->pubcfg.timeout_ms = o->publish_timeout_ms ? o->publish_timeout_ms : 5000;
    w->pubcfg.published = &w->site->published;
    sc_httpd_opts_t ho = {o->tls_cert_file, o->tls_key_file, o->request_timeout_ms, w->pubcfg.max_bytes,
                          o->stream_sndbuf_bytes};
    rc = sc_httpd_new_ex(&w->httpd, &w->loop, sa->listen, api_routes, API_NROUTES, w, &ho, w->err, sizeof w->err);
    if (rc != 0) w->httpd = NULL;
  }
  w->start_rc = rc;
  if (rc == 0) w->port = sc_httpd_port(w->httpd);
  w->start = NULL;
  if (rc != 0) close_all(w);
  uv_sem_post(&w->started); /* api_worker_start returns; sa is gone */
  uv_run(&w->loop, UV_RUN_DEFAULT);
  api_store_free(w->store);
  w->store = NULL;
  if (uv_loop_close(&w->loop) != 0) SC_WARN("worker %u: handles left open at exit", w->index);
  atomic_store(&w->finished, 1);
}

int api_worker_start(api_worker_t *w, const api_server_opts_t *o, const char *listen, char *err, size_t errlen) {
  int rc = uv_loop_init(&w->loop);
  if (rc != 0) {
    snprintf(err, errlen, "worker loop: %s", uv_strerror(rc));
    return SC_EIO;
  }
  /* The hub is set up here, before any thread runs: /metrics on other
   * workers reads its counters from the start. */
  rc = api_hub_init(&w->hub, &w->loop, NULL, o->heartbeat_ms, o->max_streams, o->retry_ms);
  if (rc != 0) {
    uv_loop_close(&w->loop);
    snprintf(err, errlen, "out of memory");
    return rc;
  }
  if (o->heartbeat_max_ms > 0)
    api_hub_set_stream_limits(&w->hub, o->heartbeat_min_ms, o->heartbeat_max_ms, o->retry_jitter_percent);
  api_hub_set_backlog_cap(&w->hub, o->max_stream_backlog_bytes);
  api_hub_share_limit(&w->hub, &w->site->streams_open);
  uv_mutex_init(&w->mu);
  uv_sem_init(&w->started, 0);
  uv_async_init(&w->loop, &w->wake, on_wake);
  w->wake.data = w;
  uv_timer_init(&w->loop, &w->stop_timer);
  w->stop_timer.data = w;
  start_args_t sa = {o, listen};
  w->start = &sa;
  if (uv_thread_create(&w->thread, worker_main, w) != 0) {
    snprintf(err, errlen, "cannot start a worker thread");
    w->start = NULL;
    w->start_rc = SC_EIO;
    close_all(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    atomic_store(&w->finished, 1);
    w->no_thread = 1;
    return SC_EIO;
  }
  uv_sem_wait(&w->started);
  if (w->start_rc != 0) {
    snprintf(err, errlen, "%s", w->err);
    api_worker_join(w);
    return w->start_rc;
  }
  return 0;
}

void api_worker_join(api_worker_t *w) {
  if (w->joined) return;
  w->joined = 1;
  if (!w->no_thread) uv_thread_join(&w->thread);
  uv_sem_destroy(&w->started);
  uv_mutex_destroy(&w->mu);
}
