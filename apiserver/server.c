/*
 * server: Redis (subscribe first, then load, then live), the stream hub
 * and the HTTP endpoints of statecast-apiserver (see server.h).
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
#include "sse.h"
#include "store.h"
#include "stream.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Content-Security-Policy of the static web display (docs/security.md). */
#define API_WEB_CSP                                                                                             \
  "default-src 'self'; connect-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "       \
  "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

/* A notification received while loading: a copy of the payload and its parse. */
typedef struct pending {
  char *payload; /* owned */
  sc_notify_t n; /* views into payload */
} pending_t;

struct api_server {
  uv_loop_t *loop;       /* borrowed */
  sc_httpd_t *httpd;     /* owned; freed by sc_httpd_close */
  sc_redis_t *sub;       /* owned; freed by sc_redis_close */
  sc_redis_t *cmd;       /* owned; freed by sc_redis_close */
  api_store_t *store;    /* owned: the state streams are served from (NULL before the first load) */
  api_loader_t *loader;  /* frees itself; NULL when no load runs */
  api_hub_t hub;
  h2o_mimemap_t *mimemap; /* owned (h2o shared refcount) */
  pending_t *pending;    /* owned array */
  size_t npending, cappending;
  uv_timer_t load_timer; /* retries a failed load or catch-up */
  uv_timer_t stop_timer; /* shutdown progress */
  uint64_t stop_elapsed_ms;
  int loading, sub_up, ready, draining, closed, cut_done;
  int catching_up;          /* a catch-up runs (or waits for its retry); notifications are buffered */
  int catchup_is_gap;       /* why the running catch-up started (metrics) */
  /* Every commit with seq <= applied_seq is reflected in store. The store's
   * own last_seq can be higher (a load reads a topic changed after its
   * snapshot at the newer seq), so gaps are judged against this one. */
  uint64_t applied_seq;
  unsigned drain_ms;
  api_server_closed_cb on_closed; /* shutdown's callback */
  void *on_closed_data;
  char *cors_origin; /* owned */
  char *web_root;    /* owned, NULL: no web display */
  api_auth_t *auth;  /* owned; NULL: no auth (every topic readable, no HTTP publishing) */
  api_rl_t *rl_streams, *rl_publish; /* owned; NULL: off */
  api_publish_cfg_t pubcfg;
  uint64_t published, rate_limited;
  /* metrics */
  uint64_t notifications, notifications_bad, reloads, loads;
  uint64_t outages;                  /* subscription up -> down transitions */
  uint64_t catchups_reconnect, catchups_gap, catchup_changes;
};

static void on_sub_state(sc_redis_t *r, int up, const char *why, void *data);
static void on_notify(sc_redis_t *r, const char *pattern, const char *channel, size_t channel_len, const char *msg,
                      size_t msg_len, void *data);
static void on_loaded(api_loader_t *l, int status, api_store_t *store, uint64_t snap_seq, void *data);
static void on_caught_up(api_loader_t *l, int status, const api_delta_t *delta, void *data);
static void on_load_timer(uv_timer_t *t);
static void on_stop_timer(uv_timer_t *t);
static int on_events(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_state(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_healthz(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_readyz(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_metrics(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_files(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_publish(sc_httpd_handler_t *self, h2o_req_t *req);

/* ---- loading ---------------------------------------------------------- */

static void clear_pending(api_server_t *s) {
  for (size_t i = 0; i < s->npending; i++) free(s->pending[i].payload);
  s->npending = 0;
}

static void start_load(api_server_t *s) {
  if (s->draining || !s->sub_up) return;
  if (s->loader != NULL) {
    api_loader_cancel(s->loader);
    s->loader = NULL;
  }
  clear_pending(s);
  s->catching_up = 0;
  s->loading = 1;
  int rc = api_loader_start(&s->loader, s->cmd, 0, 1000, on_loaded, s);
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
  if (s->draining || !s->sub_up || s->store == NULL || s->loader != NULL) return;
  s->catching_up = 1;
  uint64_t since = s->applied_seq;
  int rc = api_loader_start_since(&s->loader, s->cmd, since, 1000, on_caught_up, s);
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
  else if (s->catching_up)
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
    s->reloads++;
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
      s->reloads++;
      start_load(s);
      return -1;
    }
    s->catchup_is_gap = 1;
    start_catchup(s);
    return 0;
  }
  int rc = apply_notify(st, n);
  if (rc == -1) {
    s->reloads++;
    start_load(s);
  } else if (rc >= 0) {
    s->applied_seq = n->seq;
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
    if (s->loading || s->catching_up) {
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
    s->reloads++;
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
  s->loading = 0;
  s->loads++;
  s->applied_seq = snap_seq;
  api_store_t *old = s->store;
  s->store = store;
  /* A new data set: streams of the old store end and resume (or get the
   * full state with full:true) on reconnect, never a mix of both. */
  api_hub_set_store(&s->hub, store, API_DROP_RELOAD);
  api_store_free(old);
  s->ready = 1;
  const char *ep = api_store_epoch(store);
  SC_INFO("state loaded: %zu topics, %zu tombstones, seq %llu, epoch %s", api_store_live_count(store),
          api_store_tomb_count(store), (unsigned long long)api_store_last_seq(store), ep ? ep : "(none)");
  drain_pending(s, snap_seq);
  if (s->store != NULL) api_hub_notify(&s->hub);
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
    s->reloads++;
    start_load(s);
    return;
  }
  if (ep == NULL && d->has_epoch) api_store_set_epoch(st, d->epoch);
  size_t applied = 0;
  for (size_t i = 0; i < d->n; i++) {
    const api_change_t *c = &d->changes[i];
    int rc = api_store_apply(st, c->seq, c->ts, c->topic, c->topic_len, c->data, c->data_len);
    if (rc == 1) applied++;
    if (rc < 0) {
      SC_ERROR("catch-up: applying %s: %s; reloading the state", c->topic, sc_strerror(rc));
      s->reloads++;
      start_load(s);
      return;
    }
  }
  api_store_raise_last_seq(st, d->snap_seq);
  if (d->snap_seq > s->applied_seq) s->applied_seq = d->snap_seq;
  if (s->catchup_is_gap)
    s->catchups_gap++;
  else
    s->catchups_reconnect++;
  s->catchup_changes += applied;
  SC_INFO("caught up from seq %llu to %llu: %zu changes", (unsigned long long)d->since,
          (unsigned long long)d->snap_seq, applied);
  s->catching_up = 0;
  s->catchup_is_gap = 0;
  s->ready = 1;
  drain_pending(s, d->snap_seq);
  if (s->store != NULL) api_hub_notify(&s->hub);
}

/* ---- Redis ------------------------------------------------------------ */

static void on_sub_state(sc_redis_t *r, int up, const char *why, void *data) {
  (void)r;
  api_server_t *s = data;
  int was_up = s->sub_up;
  s->sub_up = up;
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
    if (was_up) s->outages++;
    s->ready = 0;
    if (s->loader != NULL) {
      api_loader_cancel(s->loader);
      s->loader = NULL;
    }
    uv_timer_stop(&s->load_timer);
    s->loading = 0;
    s->catching_up = 0;
    clear_pending(s);
  }
}

static void on_notify(sc_redis_t *r, const char *pattern, const char *channel, size_t channel_len, const char *msg,
                      size_t msg_len, void *data) {
  (void)r, (void)pattern, (void)channel, (void)channel_len;
  api_server_t *s = data;
  s->notifications++;
  sc_notify_t n;
  if (sc_notify_parse(msg, msg_len, &n) != 0) {
    s->notifications_bad++;
    SC_WARN("ignoring a malformed notification (%zu bytes)", msg_len);
    return;
  }
  if (s->loading || s->catching_up) {
    if (buffer_notify(s, msg, msg_len) != 0) {
      SC_ERROR("out of memory buffering notifications; reloading");
      s->reloads++;
      start_load(s);
    }
    return;
  }
  if (s->store == NULL) return;
  int rc = live_notify(s, &n, msg, msg_len);
  if (rc < -1) {
    SC_WARN("applying a notification: %s", sc_strerror(rc));
    return;
  }
  if (rc == 1) api_hub_notify(&s->hub);
}

/* ---- HTTP helpers ----------------------------------------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decode s[0..len) into out (room for len bytes); '+' is a space. */
static size_t url_decode(char *out, const char *s, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else {
      out[o++] = s[i] == '+' ? ' ' : s[i];
    }
  }
  return o;
}

static int path_is(h2o_req_t *req, const char *p) {
  size_t l = strlen(p);
  return req->path_normalized.len == l && memcmp(req->path_normalized.base, p, l) == 0;
}

static int method_ok(h2o_req_t *req) {
  if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
      h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
    return 1;
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
  sc_httpd_respond_error(req, 405, "Method Not Allowed", "method not allowed");
  return 0;
}

/* Parse the query: topic= into f, lastEventId= into id (pool-allocated),
 * fields= into fields (finished), heartbeat= into *hb_ms (hb_ms NULL: not
 * accepted, e.g. on /state). Returns 0, or SC_EINVAL with *reason set. */
static int parse_query(api_server_t *s, h2o_req_t *req, sc_sse_filter_t *f, h2o_iovec_t *id, api_fields_t *fields,
                       unsigned *hb_ms, const char **reason) {
  if (req->query_at == SIZE_MAX) return 0;
  const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
  while (q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    if (amp == NULL) amp = end;
    const char *eq = memchr(q, '=', (size_t)(amp - q));
    const char *k = q, *v = eq ? eq + 1 : amp;
    size_t kl = (size_t)((eq ? eq : amp) - q), vl = (size_t)(amp - v);
    char *dv = h2o_mem_alloc_pool(&req->pool, vl + 1);
    size_t dl = url_decode(dv, v, vl);
    dv[dl] = '\0';
    if (kl == 5 && memcmp(k, "topic", 5) == 0) {
      int rc = sc_sse_filter_add(f, dv, dl, reason);
      if (rc == SC_ENOMEM) *reason = "out of memory";
      if (rc != 0) return SC_EINVAL;
    } else if (kl == 11 && memcmp(k, "lastEventId", 11) == 0) {
      *id = h2o_iovec_init(dv, dl);
    } else if (kl == 6 && memcmp(k, "fields", 6) == 0) {
      if (api_fields_add(fields, dv, dl, reason) != 0) return SC_EINVAL;
    } else if (hb_ms != NULL && kl == 9 && memcmp(k, "heartbeat", 9) == 0) {
      if (api_hub_parse_heartbeat(&s->hub, dv, dl, hb_ms, reason) != 0) return SC_EINVAL;
    }
    q = amp + 1;
  }
  api_fields_finish(fields);
  return 0;
}

static void respond_not_ready(api_server_t *s, h2o_req_t *req) {
  const char *why = s->draining ? "shutting down" : !s->sub_up ? "redis down" : "loading state";
  h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("retry-after"), 0, NULL, H2O_STRLIT("1"));
  sc_httpd_respond_error(req, 503, "Service Unavailable", why);
}

/* ---- auth and limits hooks (auth.h, ratelimit.h) ----------------------- */

static int64_t wall_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "addr:<ip>" of the client. */
static void addr_key(h2o_req_t *req, char *out, size_t cap) {
  struct sockaddr_storage ss;
  char ip[INET6_ADDRSTRLEN] = "?";
  socklen_t l = req->conn->callbacks->get_peername != NULL
                    ? req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss)
                    : 0;
  if (l > 0 && ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
  else if (l > 0 && ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
  snprintf(out, cap, "addr:%s", ip);
}

/* Take a token from rl for the token's key (if any) and the client
 * address. Answers 429 with Retry-After and returns -1 when over. */
static int rate_check(api_server_t *s, api_rl_t *rl, h2o_req_t *req, const api_claims_t *c, int has_token) {
  if (rl == NULL) return 0;
  char ak[64];
  addr_key(req, ak, sizeof ak);
  uint64_t now = uv_now(s->loop);
  unsigned wait = has_token ? api_rl_take(rl, c->key, now) : 0;
  unsigned w2 = api_rl_take(rl, ak, now);
  if (w2 > wait) wait = w2;
  if (wait == 0) return 0;
  s->rate_limited++;
  char v[16];
  int n = snprintf(v, sizeof v, "%u", wait);
  h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("retry-after"), 0, NULL,
                        h2o_strdup(&req->pool, v, (size_t)n).base, (size_t)n);
  sc_httpd_respond_error(req, 429, "Too Many Requests", "rate limit exceeded");
  return -1;
}

/* CORS: "*" is sent as is and never with credentials; a comma-separated
 * list of origins echoes the request's Origin only when listed, and then
 * allows credentials (Vary: Origin). Returns the Access-Control-Allow-Origin
 * value ("" for none); the extra headers are added to req here. */
static const char *cors_for(api_server_t *s, h2o_req_t *req) {
  const char *co = s->cors_origin;
  if (co[0] == '\0' || strcmp(co, "*") == 0) return co;
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
  ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
  if (i < 0) return "";
  h2o_iovec_t o = req->headers.entries[i].value;
  if (o.len == 0 || !h2o_contains_token(co, strlen(co), o.base, o.len, ',')) return "";
  h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-credentials"), 0, NULL,
                        H2O_STRLIT("true"));
  return h2o_strdup(&req->pool, o.base, o.len).base;
}

/* ---- endpoints -------------------------------------------------------- */

static int on_events(sc_httpd_handler_t *self, h2o_req_t *req) {
  api_server_t *s = self->data;
  if (!path_is(req, "/events")) return -1;
  if (!method_ok(req)) return 0;
  if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
    sc_httpd_respond(req, 200, "OK", "text/event-stream", "", 0);
    return 0;
  }
  api_claims_t claims;
  int has_token;
  if (api_auth_gate(s->auth, req, wall_now_ms() / 1000, &claims, &has_token) != 0) return 0;
  sc_sse_filter_t f = {0};
  h2o_iovec_t id = {NULL, 0};
  const char *reason = "bad query";
  api_fields_t *fields = h2o_mem_alloc_pool(&req->pool, sizeof *fields);
  fields->n = 0;
  api_stream_params_t params = {fields, 0};
  if (parse_query(s, req, &f, &id, fields, &params.heartbeat_ms, &reason) != 0) {
    sc_sse_filter_dispose(&f);
    api_claims_dispose(&claims);
    sc_httpd_respond(req, 400, "Bad Request", NULL, reason, strlen(reason));
    return 0;
  }
  /* The stream's filter becomes a subset of what the token grants, so it never sees other topics. */
  if (api_auth_scope(s->auth, req, &claims, has_token, &f) != 0 ||
      rate_check(s, s->rl_streams, req, &claims, has_token) != 0) {
    sc_sse_filter_dispose(&f);
    api_claims_dispose(&claims);
    return 0;
  }
  if (has_token && claims.exp > 0 && claims.exp < INT64_MAX / 1000) params.expires_ms = claims.exp * 1000;
  api_claims_dispose(&claims);
  if (s->store == NULL || s->draining) {
    sc_sse_filter_dispose(&f);
    respond_not_ready(s, req);
    return 0;
  }
  ssize_t hi = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
  if (hi >= 0) id = req->headers.entries[hi].value;
  int resume = 0;
  uint64_t seq = 0;
  if (id.base != NULL && id.len > 0) {
    char epoch[SC_SSE_EPOCH_LEN + 1];
    if (sc_sse_id_parse(id.base, id.len, epoch, &seq) == 0 && api_store_placeable(s->store, epoch, seq)) resume = 1;
  }
  api_stream_open(&s->hub, req, &f, resume, seq, cors_for(s, req), &params);
  sc_sse_filter_dispose(&f);
  return 0;
}

static void etag_of(const api_store_t *st, const api_entry_t *e, char *out, size_t cap) {
  const char *ep = api_store_epoch(st);
  snprintf(out, cap, "\"%s-%llu\"", ep ? ep : "0000000000000000", (unsigned long long)e->seq);
}

static int on_state(sc_httpd_handler_t *self, h2o_req_t *req) {
  api_server_t *s = self->data;
  h2o_iovec_t p = req->path_normalized;
  int whole = path_is(req, "/state");
  if (!whole && !(p.len > 7 && memcmp(p.base, "/state/", 7) == 0)) return -1;
  if (!method_ok(req)) return 0;
  api_claims_t claims;
  int has_token;
  if (api_auth_gate(s->auth, req, wall_now_ms() / 1000, &claims, &has_token) != 0) return 0;
  if (s->auth != NULL && !whole) {
    char t[SC_TOPIC_MAX * 3 + 1];
    size_t rl = p.len - 7 > sizeof t - 1 ? sizeof t - 1 : p.len - 7;
    size_t tl = url_decode(t, p.base + 7, rl);
    if (memchr(t, '*', tl) != NULL || !api_auth_covers(&claims.subscribe, api_auth_public(s->auth), t, tl)) {
      api_claims_dispose(&claims);
      if (has_token)
        sc_httpd_respond_error(req, 403, "Forbidden", "topic not allowed by the token");
      else
        api_auth_respond_401(req, "a token is required for this topic", 0);
      return 0;
    }
  }
  if (!whole) api_claims_dispose(&claims); /* only the topic check needed them */
  if (s->store == NULL) {
    api_claims_dispose(&claims);
    respond_not_ready(s, req);
    return 0;
  }
  const api_store_t *st = s->store;
  if (!whole) {
    char topic[SC_TOPIC_MAX * 3 + 1];
    size_t rl = p.len - 7;
    if (rl > sizeof topic - 1) rl = sizeof topic - 1;
    size_t tl = url_decode(topic, p.base + 7, rl);
    const api_entry_t *e = sc_topic_validate(topic, tl) == 0 ? api_store_find(st, topic, tl) : NULL;
    if (e == NULL || e->deleted) {
      sc_httpd_respond_error(req, 404, "Not Found", "unknown topic");
      return 0;
    }
    char etag[64];
    etag_of(st, e, etag, sizeof etag);
    size_t el = strlen(etag);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, h2o_strdup(&req->pool, etag, el).base, el);
    const char *co = cors_for(s, req);
    if (co[0])
      h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-origin"), 0, NULL, co,
                            strlen(co));
    ssize_t hi = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    if (hi >= 0) {
      h2o_iovec_t v = req->headers.entries[hi].value;
      if (h2o_contains_token(v.base, v.len, etag, el, ',') || h2o_memis(v.base, v.len, H2O_STRLIT("*"))) {
        req->res.status = 304;
        req->res.reason = "Not Modified";
        h2o_send_inline(req, NULL, 0);
        return 0;
      }
    }
    sc_httpd_respond(req, 200, "OK", "application/json", e->frame->bytes + e->frame->env_off, e->frame->env_len);
    return 0;
  }
  sc_sse_filter_t f = {0};
  h2o_iovec_t id = {NULL, 0};
  const char *reason = "bad query";
  api_fields_t *fields = h2o_mem_alloc_pool(&req->pool, sizeof *fields);
  fields->n = 0;
  if (parse_query(s, req, &f, &id, fields, NULL, &reason) != 0) {
    sc_sse_filter_dispose(&f);
    api_claims_dispose(&claims);
    sc_httpd_respond(req, 400, "Bad Request", NULL, reason, strlen(reason));
    return 0;
  }
  int refused = api_auth_scope(s->auth, req, &claims, has_token, &f);
  api_claims_dispose(&claims);
  if (refused != 0) {
    sc_sse_filter_dispose(&f);
    return 0;
  }
  size_t cap = 64;
  for (const api_entry_t *e = api_store_head(st); e != NULL; e = e->next)
    if (!e->deleted && sc_sse_filter_match(&f, e->topic, e->topic_len))
      cap += api_fields_project_size(e->frame->env_len) + 1;
  char *body = malloc(cap);
  if (body == NULL) {
    sc_sse_filter_dispose(&f);
    sc_httpd_respond_error(req, 503, "Service Unavailable", "out of memory");
    return 0;
  }
  size_t n = (size_t)snprintf(body, cap, "{\"seq\":%llu,\"topics\":[", (unsigned long long)api_store_last_seq(st));
  int first = 1;
  for (const api_entry_t *e = api_store_head(st); e != NULL; e = e->next) {
    if (e->deleted || !sc_sse_filter_match(&f, e->topic, e->topic_len)) continue;
    if (!first) body[n++] = ',';
    first = 0;
    if (fields->n > 0) {
      size_t doff, dlen;
      n += api_fields_project_envelope(fields, e->frame->bytes + e->frame->env_off, e->frame->env_len, body + n, &doff,
                                       &dlen);
      continue;
    }
    memcpy(body + n, e->frame->bytes + e->frame->env_off, e->frame->env_len);
    n += e->frame->env_len;
  }
  body[n++] = ']';
  body[n++] = '}';
  sc_sse_filter_dispose(&f);
  const char *co = cors_for(s, req);
  if (co[0])
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-origin"), 0, NULL, co,
                          strlen(co));
  sc_httpd_respond(req, 200, "OK", "application/json", body, n);
  free(body);
  return 0;
}

static int on_healthz(sc_httpd_handler_t *self, h2o_req_t *req) {
  (void)self;
  if (!path_is(req, "/healthz")) return -1;
  sc_httpd_respond(req, 200, "OK", "application/json", H2O_STRLIT("{\"status\":\"ok\"}"));
  return 0;
}

static int on_readyz(sc_httpd_handler_t *self, h2o_req_t *req) {
  api_server_t *s = self->data;
  if (!path_is(req, "/readyz")) return -1;
  if (s->ready && s->sub_up && !s->draining && s->store != NULL) {
    sc_httpd_respond(req, 200, "OK", "application/json", H2O_STRLIT("{\"status\":\"ready\"}"));
    return 0;
  }
  const char *why = s->draining      ? "shutting down"
                    : !s->sub_up     ? "redis down"
                    : s->catching_up ? "catching up after a Redis reconnect"
                                     : "loading state";
  sc_httpd_respond_error(req, 503, "Service Unavailable", why);
  return 0;
}

/* A growing text buffer for /metrics. */
typedef struct textbuf {
  char *p;
  size_t len, cap;
  int oom;
} textbuf_t;

__attribute__((format(printf, 2, 3))) static void tb_printf(textbuf_t *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t nc = b->cap * 2 + (size_t)n;
    char *np = realloc(b->p, nc);
    if (np == NULL) {
      b->oom = 1;
      return;
    }
    b->p = np;
    b->cap = nc;
  }
}

static int on_metrics(sc_httpd_handler_t *self, h2o_req_t *req) {
  api_server_t *s = self->data;
  if (!path_is(req, "/metrics")) return -1;
  textbuf_t b = {malloc(4096), 0, 4096, 0};
  if (b.p == NULL) {
    sc_httpd_respond_error(req, 503, "Service Unavailable", "out of memory");
    return 0;
  }
  const api_hub_t *h = &s->hub;
  tb_printf(&b, "# HELP statecast_api_streams_open SSE streams currently open.\n# TYPE statecast_api_streams_open gauge\n");
  tb_printf(&b, "statecast_api_streams_open %zu\n", h->nstreams);
  tb_printf(&b, "# HELP statecast_api_streams_max Configured maximum of concurrent streams.\n# TYPE statecast_api_streams_max gauge\n");
  tb_printf(&b, "statecast_api_streams_max %zu\n", h->max_streams);
  tb_printf(&b, "# HELP statecast_api_events_sent_total Events (update, delete) written to streams.\n# TYPE statecast_api_events_sent_total counter\n");
  tb_printf(&b, "statecast_api_events_sent_total %llu\n", (unsigned long long)h->events_sent);
  tb_printf(&b, "# HELP statecast_api_bytes_sent_total SSE bytes written to streams.\n# TYPE statecast_api_bytes_sent_total counter\n");
  tb_printf(&b, "statecast_api_bytes_sent_total %llu\n", (unsigned long long)h->bytes_sent);
  tb_printf(&b, "# HELP statecast_api_heartbeats_sent_total Heartbeat comments written.\n# TYPE statecast_api_heartbeats_sent_total counter\n");
  tb_printf(&b, "statecast_api_heartbeats_sent_total %llu\n", (unsigned long long)h->heartbeats_sent);
  tb_printf(&b, "# HELP statecast_api_streams_dropped_total Streams ended or refused, by reason.\n# TYPE statecast_api_streams_dropped_total counter\n");
  for (int i = 0; i < API_DROP_N_; i++)
    tb_printf(&b, "statecast_api_streams_dropped_total{reason=\"%s\"} %llu\n", api_drop_names[i],
              (unsigned long long)h->dropped[i]);
  tb_printf(&b, "# HELP statecast_api_redis_reconnects_total Redis reconnects, by connection.\n# TYPE statecast_api_redis_reconnects_total counter\n");
  tb_printf(&b, "statecast_api_redis_reconnects_total{conn=\"sub\"} %llu\n",
            (unsigned long long)sc_redis_reconnects(s->sub));
  tb_printf(&b, "statecast_api_redis_reconnects_total{conn=\"cmd\"} %llu\n",
            (unsigned long long)sc_redis_reconnects(s->cmd));
  tb_printf(&b, "# HELP statecast_api_redis_up 1 while the notification subscription is live.\n# TYPE statecast_api_redis_up gauge\n");
  tb_printf(&b, "statecast_api_redis_up %d\n", s->sub_up ? 1 : 0);
  tb_printf(&b, "# HELP statecast_api_redis_outages_total Times the notification subscription went down (streams stay open).\n# TYPE statecast_api_redis_outages_total counter\n");
  tb_printf(&b, "statecast_api_redis_outages_total %llu\n", (unsigned long long)s->outages);
  tb_printf(&b, "# HELP statecast_api_catchups_total Catch-ups of commits missed, by cause.\n# TYPE statecast_api_catchups_total counter\n");
  tb_printf(&b, "statecast_api_catchups_total{reason=\"reconnect\"} %llu\n", (unsigned long long)s->catchups_reconnect);
  tb_printf(&b, "statecast_api_catchups_total{reason=\"gap\"} %llu\n", (unsigned long long)s->catchups_gap);
  tb_printf(&b, "# HELP statecast_api_catchup_changes_total Commits applied by catch-ups.\n# TYPE statecast_api_catchup_changes_total counter\n");
  tb_printf(&b, "statecast_api_catchup_changes_total %llu\n", (unsigned long long)s->catchup_changes);
  tb_printf(&b, "# HELP statecast_api_state_reloads_total Full reloads after the first load (new epoch, catch-up impossible).\n# TYPE statecast_api_state_reloads_total counter\n");
  tb_printf(&b, "statecast_api_state_reloads_total %llu\n", (unsigned long long)s->reloads);
  tb_printf(&b, "# HELP statecast_api_last_seq Highest commit sequence applied.\n# TYPE statecast_api_last_seq gauge\n");
  tb_printf(&b, "statecast_api_last_seq %llu\n", (unsigned long long)(s->store ? api_store_last_seq(s->store) : 0));
  tb_printf(&b, "# HELP statecast_api_topics Live topics in the store.\n# TYPE statecast_api_topics gauge\n");
  tb_printf(&b, "statecast_api_topics %zu\n", s->store ? api_store_live_count(s->store) : 0);
  tb_printf(&b, "# HELP statecast_api_notifications_total Commit notifications received.\n# TYPE statecast_api_notifications_total counter\n");
  tb_printf(&b, "statecast_api_notifications_total %llu\n", (unsigned long long)s->notifications);
  tb_printf(&b, "# HELP statecast_api_notifications_invalid_total Malformed notifications ignored.\n# TYPE statecast_api_notifications_invalid_total counter\n");
  tb_printf(&b, "statecast_api_notifications_invalid_total %llu\n", (unsigned long long)s->notifications_bad);
  tb_printf(&b, "# HELP statecast_api_state_loads_total Complete state loads.\n# TYPE statecast_api_state_loads_total counter\n");
  tb_printf(&b, "statecast_api_state_loads_total %llu\n", (unsigned long long)s->loads);
  tb_printf(&b, "# HELP statecast_api_ready 1 when the state is loaded and the subscription live.\n# TYPE statecast_api_ready gauge\n");
  tb_printf(&b, "statecast_api_ready %d\n", s->ready && s->sub_up && !s->draining);
  tb_printf(&b, "# HELP statecast_api_http_published_total Messages committed through POST /publish.\n# TYPE statecast_api_http_published_total counter\n");
  tb_printf(&b, "statecast_api_http_published_total %llu\n", (unsigned long long)s->published);
  tb_printf(&b, "# HELP statecast_api_rate_limited_total Requests refused with 429 (streams and publishes).\n# TYPE statecast_api_rate_limited_total counter\n");
  tb_printf(&b, "statecast_api_rate_limited_total %llu\n", (unsigned long long)s->rate_limited);
  tb_printf(&b, "# HELP statecast_api_commit_to_send_seconds Delay from commit to the write of a live event.\n# TYPE statecast_api_commit_to_send_seconds histogram\n");
  uint64_t cum = 0;
  for (int i = 0; i < API_HIST_BUCKETS; i++) {
    cum += h->hist[i];
    tb_printf(&b, "statecast_api_commit_to_send_seconds_bucket{le=\"%g\"} %llu\n", api_hist_bounds[i],
              (unsigned long long)cum);
  }
  cum += h->hist[API_HIST_BUCKETS];
  tb_printf(&b, "statecast_api_commit_to_send_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
  tb_printf(&b, "statecast_api_commit_to_send_seconds_sum %.6f\n", h->hist_sum);
  tb_printf(&b, "statecast_api_commit_to_send_seconds_count %llu\n", (unsigned long long)h->hist_count);
  if (b.oom)
    sc_httpd_respond_error(req, 503, "Service Unavailable", "out of memory");
  else
    sc_httpd_respond(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
  free(b.p);
  return 0;
}

static int on_files(sc_httpd_handler_t *self, h2o_req_t *req) {
  api_server_t *s = self->data;
  h2o_iovec_t p = req->path_normalized;
  if (s->web_root == NULL || p.len == 0 || p.base[0] != '/' || h2o_strstr(p.base, p.len, H2O_STRLIT("..")) != SIZE_MAX)
    goto notfound;
  if (!method_ok(req)) return 0;
  size_t rl = strlen(s->web_root);
  int dir = p.base[p.len - 1] == '/';
  char *full = h2o_mem_alloc_pool(&req->pool, rl + p.len + 11 + 1);
  memcpy(full, s->web_root, rl);
  memcpy(full + rl, p.base, p.len);
  size_t fl = rl + p.len;
  if (dir) {
    memcpy(full + fl, "index.html", 10);
    fl += 10;
  }
  full[fl] = '\0';
  const char *slash = strrchr(full, '/');
  const char *dot = strrchr(full, '.');
  h2o_mimemap_type_t *mt = NULL;
  if (dot != NULL && dot > slash) mt = h2o_mimemap_get_type_by_extension(s->mimemap, h2o_iovec_init(dot + 1, strlen(dot + 1)));
  if (mt == NULL) mt = h2o_mimemap_get_default_type(s->mimemap);
  /* The display is plain same-origin files: nothing inline, nothing remote. */
  h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0, NULL,
                        H2O_STRLIT(API_WEB_CSP));
  h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL,
                        H2O_STRLIT("nosniff"));
  if (h2o_file_send(req, 200, "OK", full, mt->data.mimetype, 0) == 0) return 0;
notfound:
  sc_httpd_respond_error(req, 404, "Not Found", "not found");
  return 0;
}

static int on_publish(sc_httpd_handler_t *self, h2o_req_t *req) {
  api_server_t *s = self->data;
  h2o_iovec_t p = req->path_normalized;
  if (!path_is(req, "/publish") && !(p.len > 9 && memcmp(p.base, "/publish/", 9) == 0)) return -1;
  if (s->auth == NULL) {
    sc_httpd_respond_error(req, 403, "Forbidden", "publishing over HTTP needs STATECAST_JWT_* configured");
    return 0;
  }
  api_claims_t claims;
  int has_token;
  if (api_auth_gate(s->auth, req, wall_now_ms() / 1000, &claims, &has_token) != 0) return 0;
  if (!has_token) {
    api_auth_respond_401(req, "a token with publish patterns is required", 0);
  } else if (rate_check(s, s->rl_publish, req, &claims, has_token) == 0) {
    api_publish_handle(&s->pubcfg, req, &claims);
  }
  api_claims_dispose(&claims);
  return 0;
}

/* ---- lifecycle -------------------------------------------------------- */

int api_server_new(api_server_t **out, uv_loop_t *loop, const api_server_opts_t *o, char *err, size_t errlen) {
  int rc = SC_ENOMEM;
  api_server_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    api_auth_free(o->auth); /* moved in even on failure */
    goto fail;
  }
  s->loop = loop;
  s->drain_ms = o->drain_ms;
  uv_timer_init(loop, &s->load_timer);
  uv_timer_init(loop, &s->stop_timer);
  s->load_timer.data = s;
  s->stop_timer.data = s;
  rc = api_hub_init(&s->hub, loop, NULL, o->heartbeat_ms, o->max_streams, o->retry_ms);
  if (rc != 0) goto fail;
  if (o->heartbeat_max_ms > 0)
    api_hub_set_stream_limits(&s->hub, o->heartbeat_min_ms, o->heartbeat_max_ms, o->retry_jitter_percent);
  api_hub_set_backlog_cap(&s->hub, o->max_stream_backlog_bytes);
  rc = SC_ENOMEM;
  s->cors_origin = strdup(o->cors_origin ? o->cors_origin : "*");
  if (s->cors_origin == NULL) goto fail;
  if (o->web_root != NULL) {
    s->web_root = strdup(o->web_root);
    if (s->web_root == NULL) goto fail;
    size_t l = strlen(s->web_root);
    while (l > 1 && s->web_root[l - 1] == '/') s->web_root[--l] = '\0';
  }
  s->mimemap = h2o_mimemap_create();
  s->auth = o->auth;
  rc = api_rl_new(&s->rl_streams, o->streams_rate, o->streams_burst, 100000);
  if (rc == 0) rc = api_rl_new(&s->rl_publish, o->publish_rate, o->publish_burst, 100000);
  if (rc != 0) goto fail;
  sc_redis_opts_t ro = {.name = "api-sub", .on_state = on_sub_state, .on_message = on_notify, .data = s};
  rc = sc_redis_new(&s->sub, loop, o->redis, &ro);
  if (rc != 0) goto fail;
  rc = sc_redis_subscribe(s->sub, SC_KEYS_NOTIFY, 0);
  if (rc != 0) goto fail;
  sc_redis_opts_t co = {.name = "api-cmd", .data = s};
  rc = sc_redis_new(&s->cmd, loop, o->redis, &co);
  if (rc != 0) goto fail;
  s->pubcfg.loop = loop;
  s->pubcfg.cmd = s->cmd;
  s->pubcfg.max_bytes = o->max_message_bytes ? o->max_message_bytes : SC_DEFAULT_MAX_MESSAGE_BYTES;
  s->pubcfg.timeout_ms = o->publish_timeout_ms ? o->publish_timeout_ms : 5000;
  s->pubcfg.published = &s->published;
  const sc_httpd_route_t routes[] = {
      {"/events", on_events}, {"/state", on_state},     {"/healthz", on_healthz},
      {"/readyz", on_readyz}, {"/metrics", on_metrics}, {"/publish", on_publish}, {"/", on_files},
  };
  sc_httpd_opts_t ho = {o->tls_cert_file, o->tls_key_file, o->request_timeout_ms, s->pubcfg.max_bytes};
  rc = sc_httpd_new_ex(&s->httpd, loop, o->listen, routes, sizeof routes / sizeof routes[0], s, &ho, err, errlen);
  if (rc != 0) goto fail;
  *out = s;
  return 0;
fail:
  if (s != NULL) {
    if (err != NULL && errlen > 0 && rc == SC_ENOMEM) snprintf(err, errlen, "out of memory");
    s->draining = 1;
    s->closed = 1;
    if (s->sub) sc_redis_close(s->sub);
    if (s->cmd) sc_redis_close(s->cmd);
    api_hub_dispose(&s->hub);
    uv_close((uv_handle_t *)&s->load_timer, NULL);
    uv_close((uv_handle_t *)&s->stop_timer, NULL);
    /* The caller runs the loop dry, then calls api_server_free(). */
    *out = s;
  }
  return rc;
}

int api_server_port(const api_server_t *s) { return sc_httpd_port(s->httpd); }

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
  api_hub_dispose(&s->hub);
  sc_httpd_close(s->httpd);
  sc_redis_close(s->sub);
  sc_redis_close(s->cmd);
  if (s->on_closed != NULL) s->on_closed(s, s->on_closed_data);
}

static void on_stop_timer(uv_timer_t *t) {
  api_server_t *s = t->data;
  s->stop_elapsed_ms += 100;
  if (s->hub.nstreams == 0) {
    close_all(s);
    return;
  }
  if (!s->cut_done && s->stop_elapsed_ms >= s->drain_ms + 2000) {
    SC_WARN("%zu streams still open after the drain period; cutting them", s->hub.nstreams);
    api_hub_cut_stalled(&s->hub);
    s->cut_done = 1;
  }
  if (s->stop_elapsed_ms >= s->drain_ms + 5000) close_all(s);
}

void api_server_shutdown(api_server_t *s, api_server_closed_cb cb, void *data) {
  if (s->draining) return;
  s->on_closed = cb;
  s->on_closed_data = data;
  s->draining = 1;
  s->ready = 0;
  SC_INFO("shutting down: draining %zu streams over %u ms", s->hub.nstreams, s->drain_ms);
  /* Stop accepting: the Service has (or soon will have) moved new clients
   * to other replicas. Requests on connections already open still get
   * answers during the drain (503 on /readyz, 503 + Retry-After on /events). */
  sc_httpd_stop_accepting(s->httpd);
  uv_timer_stop(&s->load_timer);
  api_hub_drain(&s->hub, s->drain_ms);
  uv_timer_start(&s->stop_timer, on_stop_timer, 100, 100);
}

void api_server_free(api_server_t *s) {
  if (s == NULL) return;
  clear_pending(s);
  free(s->pending);
  api_store_free(s->store);
  if (s->mimemap) h2o_mem_release_shared(s->mimemap);
  free(s->cors_origin);
  free(s->web_root);
  api_auth_free(s->auth);
  api_rl_free(s->rl_streams);
  api_rl_free(s->rl_publish);
  free(s);
}
