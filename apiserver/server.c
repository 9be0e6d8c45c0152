/*
 * server: the Redis thread of statecast-apiserver (subscribe first, then
 * load, then live) and the worker threads it feeds (see server.h).
 */
#include "server.h"

#include "auth.h"
#include "envelope.h"
#include "err.h"
#include "fields.h"
#include "httpd.h"
#include "keys.h"
#include "loader.h"
#include "log.h"
#include "publish.h"
#include "ratelimit.h"
#include "routes.h"
#include "sse.h"
#include "store.h"
#include "stream.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HMGETs a load keeps in flight (replies are small: the pipeline, not the
 * round trips, sets the pace). */
#define API_LOAD_WINDOW 8192

/* A notification received while loading: a copy of the payload and its parse. */
typedef struct pending {
  char *payload; /* owned */
  sc_notify_t n; /* views into payload */
} pending_t;

struct api_server {
  uv_loop_t *loop;       /* borrowed: the Redis thread's loop */
  sc_redis_t *sub;       /* owned; freed by sc_redis_close */
  sc_redis_t *cmd;       /* owned; freed by sc_redis_close */
  api_store_t *store;    /* owned: the master copy the workers' replicas follow (NULL before the first load) */
  api_loader_t *loader;  /* frees itself; NULL when no load runs */
  api_site_t site;       /* shared with the workers (routes.h); site.workers is the owned worker array */
  size_t nstarted;       /* workers whose thread was started */
  int port;
  pending_t *pending;    /* owned array */
  size_t npending, cappending;
  uv_timer_t load_timer; /* retries a failed load or catch-up */
  uv_timer_t stop_timer; /* shutdown progress */
  int loading, closed;
  int catchup_is_gap;       /* why the running catch-up started (metrics) */
  /* Every commit with seq <= applied_seq is reflected in store. The store's
   * own last_seq can be higher (a load reads a topic changed after its
   * snapshot at the newer seq), so gaps are judged against this one. */
  uint64_t applied_seq;
  unsigned drain_ms;
  api_server_closed_cb on_closed; /* shutdown's callback */
  void *on_closed_data;
};

static void on_sub_state(sc_redis_t *r, int up, const char *why, void *data);
static void on_notify(sc_redis_t *r, const char *pattern, const char *channel, size_t channel_len, const char *msg,
                      size_t msg_len, void *data);
static void on_loaded(api_loader_t *l, int status, api_store_t *store, uint64_t snap_seq, void *data);
static void on_caught_up(api_loader_t *l, int status, const api_delta_t *delta, void *data);
static void on_load_timer(uv_timer_t *t);
static void on_stop_timer(uv_timer_t *t);

/* ---- replication to the workers ---------------------------------------- */

/* Every change of the master store goes to every worker, in commit order. */
static void replicate_meta(api_server_t *s) {
  for (size_t i = 0; i < s->nstarted; i++)
    api_worker_post_meta(&s->site.workers[i], api_store_epoch(s->store), api_store_last_seq(s->store));
}

static void replicate_topic(api_server_t *s, const char *topic, size_t len) {
  const api_entry_t *e = api_store_find(s->store, topic, len);
  for (size_t i = 0; e != NULL && i < s->nstarted; i++) api_worker_post_apply(&s->site.workers[i], e);
}

/* A new data set: each worker gets its own replica of st (sharing its
 * frames). All or nothing: returns 0, or SC_ENOMEM with nothing posted. */
static int replicate_store(api_server_t *s, const api_store_t *st) {
  api_store_t **r = calloc(s->nstarted ? s->nstarted : 1, sizeof *r);
  if (r == NULL) return SC_ENOMEM;
  int rc = 0;
  for (size_t i = 0; i < s->nstarted && rc == 0; i++) rc = api_store_clone(st, &r[i]);
  for (size_t i = 0; i < s->nstarted; i++) {
    if (rc == 0)
      api_worker_post_store(&s->site.workers[i], r[i]);
    else
      api_store_free(r[i]);
  }
  free(r);
  return rc;
}

/* ---- loading ---------------------------------------------------------- */

static void clear_pending(api_server_t *s) {
  for (size_t i = 0; i < s->npending; i++) free(s->pending[i].payload);
  s->npending = 0;
}

static void start_load(api_server_t *s) {
  if (s->site.draining || !s->site.sub_up) return;
  if (s->loader != NULL) {
    api_loader_cancel(s->loader);
    s->loader = NULL;
  }
  clear_pending(s);
  s->site.catching_up = 0;
  s->loading = 1;
  int rc = api_loader_start(&s->loader, s->cmd, 0, API_LOAD_WINDOW, on_loaded, s);
  if (rc != 0) {
    s->loader = NULL;
    SC_DEBUG("state load deferred: %s", sc_strerror(rc));
    uv_timer_start(&s->load_timer, on_load_timer, 200, 0);
  }
}

/* Catch up from the store's last seq into the same store (after a
 * reconnect, or a gap in the notification seqs). Notifications keep being
 * buffered (s->pending) until it is done; one catch-up at a time. */
static void start_catchup(api_server_t *s) {
  if (s->site.draining || !s->site.sub_up || s->store == NULL || s->loader != NULL) return;
  s->site.catching_up = 1;
  uint64_t since = s->applied_seq;
  int rc = api_loader_start_since(&s->loader, s->cmd, since, API_LOAD_WINDOW, on_caught_up, s);
  if (rc != 0) {
    s->loader = NULL;
    SC_DEBUG("catch-up deferred: %s", sc_strerror(rc));
    uv_timer_start(&s->load_timer, on_load_timer, 200, 0);
  }
}

static void on_load_timer(uv_timer_t *t) {
  api_server_t *s = t->data;
  if (s->loader != NULL) return;
  if (s->loading)
    start_load(s);
  else if (s->site.catching_up)
    start_catchup(s);
}

static int cmp_pending(const void *a, const void *b) {
  uint64_t x = ((const pending_t *)a)->n.seq, y = ((const pending_t *)b)->n.seq;
  return x < y ? -1 : x > y;
}

static int epoch_matches(const api_store_t *st, const sc_notify_t *n) {
  const char *e = api_store_epoch(st);
  return n->epoch_len == SC_SSE_EPOCH_LEN && e != NULL && memcmp(e, n->epoch, SC_SSE_EPOCH_LEN) == 0;
}

/* Apply one notification to st. Returns 1 applied, 0 skipped, -1 epoch
 * changed (reload needed), or an SC_E* error. */
static int apply_notify(api_store_t *st, const sc_notify_t *n) {
  if (n->epoch_len != SC_SSE_EPOCH_LEN) return 0;
  if (api_store_epoch(st) == NULL) {
    /* Redis had no epoch when we loaded: nothing was ever committed, the
     * store is empty, and this is the epoch of the first commit. */
    if (api_store_live_count(st) != 0 || api_store_tomb_count(st) != 0) return -1;
    char ep[SC_SSE_EPOCH_LEN + 1];
    memcpy(ep, n->epoch, SC_SSE_EPOCH_LEN);
    ep[SC_SSE_EPOCH_LEN] = '\0';
    for (int i = 0; i < SC_SSE_EPOCH_LEN; i++)
      if (!((ep[i] >= '0' && ep[i] <= '9') || (ep[i] >= 'a' && ep[i] <= 'f'))) return 0;
    api_store_set_epoch(st, ep);
  } else if (!epoch_matches(st, n)) {
    return -1;
  }
  return api_store_apply(st, n->seq, n->ts, n->topic, n->topic_len, n->data, n->data_len);
}

/* Buffer a notification while a load or catch-up runs. 0 or SC_ENOMEM. */
static int buffer_notify(api_server_t *s, const char *msg, size_t msg_len) {
  if (s->npending == s->cappending) {
    size_t nc = s->cappending ? s->cappending * 2 : 64;
    pending_t *np = realloc(s->pending, nc * sizeof *np);
    if (np == NULL) return SC_ENOMEM;
    s->pending = np;
    s->cappending = nc;
  }
  pending_t *p = &s->pending[s->npending];
  p->payload = malloc(msg_len + 1);
  if (p->payload == NULL) return SC_ENOMEM;
  memcpy(p->payload, msg, msg_len);
  p->payload[msg_len] = '\0';
  if (sc_notify_parse(p->payload, msg_len, &p->n) != 0) {
    free(p->payload);
    return 0;
  }
  s->npending++;
  return 0;
}

/* One notification against the live store: seqs are global and every
 * commit publishes exactly one notification, so seq == last + 1 is the
 * next commit, seq <= last is already known (skipped; a topic's own seq
 * guard would also stop it), and seq > last + 1 means pub/sub dropped
 * something: buffer it and catch up. Returns 1 applied, 0 skipped or
 * buffered, -1 a reload was started, or an SC_E* error. */
static int live_notify(api_server_t *s, const sc_notify_t *n, const char *msg, size_t msg_len) {
  api_store_t *st = s->store;
  if (api_store_epoch(st) != NULL && n->epoch_len == SC_SSE_EPOCH_LEN && !epoch_matches(st, n)) {
    SC_INFO("epoch changed (Redis lost or replaced its data); reloading the state");
    s->site.reloads++;
    start_load(s);
    return -1;
  }
  uint64_t last = s->applied_seq;
  if (n->seq <= last) return 0;
  if (n->seq > last + 1) {
    SC_INFO("notification seq %llu after %llu: %llu missed; catching up", (unsigned long long)n->seq,
            (unsigned long long)last, (unsigned long long)(n->seq - last - 1));
    int rc = buffer_notify(s, msg, msg_len);
    if (rc != 0) {
      s->site.reloads++;
      start_load(s);
      return -1;
    }
    s->catchup_is_gap = 1;
    start_catchup(s);
    return 0;
  }
  int had_epoch = api_store_epoch(st) != NULL;
  int rc = apply_notify(st, n);
  if (rc == -1) {
    s->site.reloads++;
    start_load(s);
  } else if (rc >= 0) {
    s->applied_seq = n->seq;
    /* The commit first: a worker that raised its last seq before having
     * the commit would move idle streams' cursors past it. */
    if (rc == 1) replicate_topic(s, n->topic, n->topic_len);
    if (!had_epoch && api_store_epoch(st) != NULL) replicate_meta(s);
  }
  return rc;
}

/* After a load or catch-up: apply the buffered notifications newer than
 * snap_seq in seq order through the live path (which may start a catch-up
 * for a gap; the rest then stay buffered for it). */
static void drain_pending(api_server_t *s, uint64_t snap_seq) {
  if (s->npending > 1) qsort(s->pending, s->npending, sizeof *s->pending, cmp_pending);
  pending_t *p = s->pending;
  size_t n = s->npending, applied = 0, i;
  /* Take the array: live_notify may buffer into a fresh one. */
  s->pending = NULL;
  s->npending = s->cappending = 0;
  for (i = 0; i < n; i++) {
    if (s->loading || s->site.catching_up) {
      if (buffer_notify(s, p[i].payload, strlen(p[i].payload)) != 0) break;
      continue;
    }
    if (p[i].n.seq <= snap_seq) continue;
    int rc = live_notify(s, &p[i].n, p[i].payload, strlen(p[i].payload));
    if (rc == 1) applied++;
    if (rc < -1) SC_WARN("applying a buffered notification: %s", sc_strerror(rc));
  }
  if (i < n && !s->loading) {
    SC_ERROR("out of memory buffering notifications; reloading");
    s->site.reloads++;
    start_load(s);
  }
  for (size_t j = 0; j < n; j++) free(p[j].payload);
  free(p);
  if (applied > 0 || n > 0) SC_INFO("applied %zu of %zu notifications received meanwhile", applied, n);
}

static void on_loaded(api_loader_t *l, int status, api_store_t *store, uint64_t snap_seq, void *data) {
  (void)l;
  api_server_t *s = data;
  s->loader = NULL;
  if (status != 0) {
    uv_timer_start(&s->load_timer, on_load_timer, 1000, 0);
    return;
  }
  /* Workers end the streams of their old replica; those resume (or get the
   * full state with full:true) on reconnect, never a mix of both. */
  if (replicate_store(s, store) != 0) {
    SC_ERROR("out of memory handing the loaded state to the workers; loading again in 1 s");
    api_store_free(store);
    uv_timer_start(&s->load_timer, on_load_timer, 1000, 0);
    return;
  }
  s->loading = 0;
  s->site.loads++;
  s->applied_seq = snap_seq;
  api_store_free(s->store);
  s->store = store;
  s->site.ready = 1;
  const char *ep = api_store_epoch(store);
  SC_INFO("state loaded: %zu topics, %zu tombstones, seq %llu, epoch %s", api_store_live_count(store),
          api_store_tomb_count(store), (unsigned long long)api_store_last_seq(store), ep ? ep : "(none)");
  drain_pending(s, snap_seq);
}

static void on_caught_up(api_loader_t *l, int status, const api_delta_t *d, void *data) {
  (void)l;
  api_server_t *s = data;
  s->loader = NULL;
  if (status != 0) {
    uv_timer_start(&s->load_timer, on_load_timer, 1000, 0);
    return;
  }
  api_store_t *st = s->store;
  const char *ep = api_store_epoch(st);
  const char *why = NULL;
  if (ep == NULL && d->has_epoch && (api_store_live_count(st) != 0 || api_store_tomb_count(st) != 0))
    why = "the store has no epoch";
  else if (ep != NULL && (!d->has_epoch || memcmp(ep, d->epoch, SC_SSE_EPOCH_LEN) != 0))
    why = "new epoch (Redis lost or replaced its data)";
  else if (d->snap_seq < d->since)
    why = "Redis went back in time (restored an older copy)";
  else if (d->since < d->deleted_floor)
    why = "tombstones were trimmed past our last seq";
  if (why != NULL) {
    SC_INFO("catch-up from seq %llu impossible: %s; reloading the state", (unsigned long long)d->since, why);
    s->site.reloads++;
    start_load(s);
    return;
  }
  if (ep == NULL && d->has_epoch) {
    api_store_set_epoch(st, d->epoch);
    replicate_meta(s);
  }
  size_t applied = 0;
  for (size_t i = 0; i < d->n; i++) {
    const api_change_t *c = &d->changes[i];
    int rc = api_store_apply(st, c->seq, c->ts, c->topic, c->topic_len, c->data, c->data_len);
    if (rc == 1) {
      applied++;
      replicate_topic(s, c->topic, c->topic_len);
    }
    if (rc < 0) {
      SC_ERROR("catch-up: applying %s: %s; reloading the state", c->topic, sc_strerror(rc));
      s->site.reloads++;
      start_load(s);
      return;
    }
  }
  api_store_raise_last_seq(st, d->snap_seq);
  replicate_meta(s);
  if (d->snap_seq > s->applied_seq) s->applied_seq = d->snap_seq;
  if (s->catchup_is_gap)
    s->site.catchups_gap++;
  else
    s->site.catchups_reconnect++;
  s->site.catchup_changes += applied;
  SC_INFO("caught up from seq %llu to %llu: %zu changes", (unsigned long long)d->since,
          (unsigned long long)d->snap_seq, applied);
  s->site.catching_up = 0;
  s->catchup_is_gap = 0;
  s->site.ready = 1;
  drain_pending(s, d->snap_seq);
}

/* ---- Redis ------------------------------------------------------------ */

static void on_sub_state(sc_redis_t *r, int up, const char *why, void *data) {
  (void)r;
  api_server_t *s = data;
  int was_up = s->site.sub_up;
  s->site.sub_up = up;
  if (up) {
    if (s->store == NULL) {
      SC_INFO("subscribed to %s; loading state", SC_KEYS_NOTIFY);
      start_load(s);
    } else {
      /* Subscribed first: everything committed from now on is buffered;
       * what was committed while we were away comes from the catch-up. */
      SC_INFO("subscribed to %s again; catching up from seq %llu", SC_KEYS_NOTIFY,
              (unsigned long long)s->applied_seq);
      s->catchup_is_gap = 0;
      start_catchup(s);
    }
  } else {
    /* Streams stay open on the last known state; /readyz says so. */
    SC_WARN("notification subscription down: %s; serving the last known state", why ? why : "");
    if (was_up) s->site.outages++;
    s->site.ready = 0;
    if (s->loader != NULL) {
      api_loader_cancel(s->loader);
      s->loader = NULL;
    }
    uv_timer_stop(&s->load_timer);
    s->loading = 0;
    s->site.catching_up = 0;
    clear_pending(s);
  }
}

static void on_notify(sc_redis_t *r, const char *pattern, const char *channel, size_t channel_len, const char *msg,
                      size_t msg_len, void *data) {
  (void)r, (void)pattern, (void)channel, (void)channel_len;
  api_server_t *s = data;
  s->site.notifications++;
  sc_notify_t n;
  if (sc_notify_parse(msg, msg_len, &n) != 0) {
    s->site.notifications_bad++;
    SC_WARN("ignoring a malformed notification (%zu bytes)", msg_len);
    return;
  }
  if (s->loading || s->site.catching_up) {
    if (buffer_notify(s, msg, msg_len) != 0) {
      SC_ERROR("out of memory buffering notifications; reloading");
      s->site.reloads++;
      start_load(s);
    }
    return;
  }
  if (s->store == NULL) return;
  int rc = live_notify(s, &n, msg, msg_len);
  if (rc < -1) SC_WARN("applying a notification: %s", sc_strerror(rc));
}

/* ---- lifecycle -------------------------------------------------------- */

/* `listen` with its port replaced by port (the one worker 0 bound, so that
 * ":0" in tests still gives every worker the same port). */
static void listen_on_port(const char *listen, int port, char *out, size_t cap) {
  const char *colon = strrchr(listen, ':');
  int hostlen = colon != NULL ? (int)(colon - listen) : 0;
  snprintf(out, cap, "%.*s:%d", hostlen, listen, port);
}

/* Stop and join every started worker (start-up failure or final close). */
static void stop_workers(api_server_t *s) {
  for (size_t i = 0; i < s->nstarted; i++) api_worker_shutdown(&s->site.workers[i], 0);
  for (size_t i = 0; i < s->nstarted; i++) api_worker_join(&s->site.workers[i]);
}

int api_server_new(api_server_t **out, uv_loop_t *loop, const api_server_opts_t *o, char *err, size_t errlen) {
  int rc = SC_ENOMEM;
  api_server_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    api_auth_free(o->auth); /* moved in even on failure */
    goto fail;
  }
  api_site_t *site = &s->site;
  s->loop = loop;
  s->drain_ms = o->drain_ms;
  uv_timer_init(loop, &s->load_timer);
  uv_timer_init(loop, &s->stop_timer);
  s->load_timer.data = s;
  s->stop_timer.data = s;
  site->auth = o->auth;
  site->max_streams = o->max_streams;
  site->cors_origin = strdup(o->cors_origin ? o->cors_origin : "*");
  if (site->cors_origin == NULL) goto fail;
  if (o->web_root != NULL) {
    site->web_root = strdup(o->web_root);
    if (site->web_root == NULL) goto fail;
    size_t l = strlen(site->web_root);
    while (l > 1 && site->web_root[l - 1] == '/') site->web_root[--l] = '\0';
  }
  site->mimemap = h2o_mimemap_create();
  rc = api_rl_new(&site->rl_streams, o->streams_rate, o->streams_burst, 100000);
  if (rc == 0) rc = api_rl_new(&site->rl_publish, o->publish_rate, o->publish_burst, 100000);
  if (rc != 0) goto fail;
  sc_redis_opts_t ro = {.name = "api-sub", .on_state = on_sub_state, .on_message = on_notify, .data = s};
  rc = sc_redis_new(&s->sub, loop, o->redis, &ro);
  if (rc != 0) goto fail;
  rc = sc_redis_subscribe(s->sub, SC_KEYS_NOTIFY, 0);
  if (rc != 0) goto fail;
  sc_redis_opts_t co = {.name = "api-cmd", .data = s};
  rc = sc_redis_new(&s->cmd, loop, o->redis, &co);
  if (rc != 0) goto fail;
  site->sub = s->sub;
  site->cmd = s->cmd;
  size_t n = o->workers > 0 ? o->workers : 1;
  rc = SC_ENOMEM;
  site->workers = calloc(n, sizeof *site->workers);
  if (site->workers == NULL) goto fail;
  for (size_t i = 0; i < n; i++) {
    api_worker_t *w = &site->workers[i];
    w->site = site;
    w->index = (unsigned)i;
    char listen[300];
    if (i == 0)
      snprintf(listen, sizeof listen, "%s", o->listen);
    else
      listen_on_port(o->listen, s->port, listen, sizeof listen);
    rc = api_worker_start(w, o, listen, err, errlen);
    if (rc != 0) goto fail;
    if (i == 0) s->port = w->port;
    s->nstarted = i + 1;
    /* From now on /metrics (on any worker) includes this one. */
    atomic_store(&site->nworkers, s->nstarted);
  }
  *out = s;
  return 0;
fail:
  if (s != NULL) {
    if (err != NULL && errlen > 0 && rc == SC_ENOMEM) snprintf(err, errlen, "out of memory");
    site->draining = 1;
    s->closed = 1;
    stop_workers(s);
    if (s->sub) sc_redis_close(s->sub);
    if (s->cmd) sc_redis_close(s->cmd);
    uv_close((uv_handle_t *)&s->load_timer, NULL);
    uv_close((uv_handle_t *)&s->stop_timer, NULL);
    /* The caller runs the loop dry, then calls api_server_free(). */
    *out = s;
  }
  return rc;
}

int api_server_port(const api_server_t *s) { return s->port; }

static void close_all(api_server_t *s) {
  if (s->closed) return;
  s->closed = 1;
  uv_timer_stop(&s->stop_timer);
  uv_close((uv_handle_t *)&s->stop_timer, NULL);
  uv_close((uv_handle_t *)&s->load_timer, NULL);
  if (s->loader != NULL) {
    api_loader_cancel(s->loader);
    s->loader = NULL;
  }
  stop_workers(s);
  sc_redis_close(s->sub);
  sc_redis_close(s->cmd);
  if (s->on_closed != NULL) s->on_closed(s, s->on_closed_data);
}

/* Workers drain and close themselves (each gives up after drain + 5 s);
 * the Redis side closes once they all have. */
static void on_stop_timer(uv_timer_t *t) {
  api_server_t *s = t->data;
  for (size_t i = 0; i < s->nstarted; i++)
    if (!api_worker_finished(&s->site.workers[i])) return;
  close_all(s);
}

void api_server_shutdown(api_server_t *s, api_server_closed_cb cb, void *data) {
  if (s->site.draining) return;
  s->on_closed = cb;
  s->on_closed_data = data;
  s->site.draining = 1;
  s->site.ready = 0;
  SC_INFO("shutting down: draining %zu streams over %u ms",
          atomic_load_explicit(&s->site.streams_open, memory_order_relaxed), s->drain_ms);
  for (size_t i = 0; i < s->nstarted; i++) api_worker_shutdown(&s->site.workers[i], s->drain_ms);
  uv_timer_stop(&s->load_timer);
  uv_timer_start(&s->stop_timer, on_stop_timer, 100, 100);
}

void api_server_free(api_server_t *s) {
  if (s == NULL) return;
  clear_pending(s);
  free(s->pending);
  api_store_free(s->store);
  free(s->site.workers);
  if (s->site.mimemap) h2o_mem_release_shared(s->site.mimemap);
  free(s->site.cors_origin);
  free(s->site.web_root);
  api_auth_free(s->site.auth);
  api_rl_free(s->site.rl_streams);
  api_rl_free(s->site.rl_publish);
  free(s);
}
