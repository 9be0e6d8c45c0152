/*
 * routes: the apiserver's HTTP endpoints, served by every worker thread
 * against its own hub and replica store (see routes.h, worker.h).
 */
#include "routes.h"

#include "auth.h"
#include "envelope.h"
#include "err.h"
#include "fields.h"
#include "httpd.h"
#include "keys.h"
#include "log.h"
#include "publish.h"
#include "ratelimit.h"
#include "sse.h"
#include "store.h"
#include "stream.h"
#include "worker.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Content-Security-Policy of the static web display (docs/security.md). */
#define API_WEB_CSP                                                                                             \
  "default-src 'self'; connect-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "       \
  "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

static int on_events(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_state(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_healthz(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_readyz(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_metrics(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_files(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_publish(sc_httpd_handler_t *self, h2o_req_t *req);

const sc_httpd_route_t api_routes[API_NROUTES] = {
    {"/events", on_events}, {"/state", on_state},     {"/healthz", on_healthz},
    {"/readyz", on_readyz}, {"/metrics", on_metrics}, {"/publish", on_publish}, {"/", on_files},
};

void api_site_hub_totals(const api_site_t *s, api_hub_totals_t *t) {
  memset(t, 0, sizeof *t);
  size_t n = atomic_load(&s->nworkers);
  for (size_t i = 0; i < n; i++) {
    const api_hub_t *h = &s->workers[i].hub;
    t->nstreams += atomic_load_explicit(&h->nstreams, memory_order_relaxed);
    t->events_sent += atomic_load_explicit(&h->events_sent, memory_order_relaxed);
    t->bytes_sent += atomic_load_explicit(&h->bytes_sent, memory_order_relaxed);
    t->heartbeats_sent += atomic_load_explicit(&h->heartbeats_sent, memory_order_relaxed);
    for (int j = 0; j < API_DROP_N_; j++) t->dropped[j] += atomic_load_explicit(&h->dropped[j], memory_order_relaxed);
    for (int j = 0; j <= API_HIST_BUCKETS; j++) t->hist[j] += atomic_load_explicit(&h->hist[j], memory_order_relaxed);
    t->hist_sum_us += atomic_load_explicit(&h->hist_sum_us, memory_order_relaxed);
    t->hist_count += atomic_load_explicit(&h->hist_count, memory_order_relaxed);
  }
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
static int parse_query(const api_hub_t *hub, h2o_req_t *req, sc_sse_filter_t *f, h2o_iovec_t *id, api_fields_t *fields,
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
      if (api_hub_parse_heartbeat(hub, dv, dl, hb_ms, reason) != 0) return SC_EINVAL;
    }
    q = amp + 1;
  }
  api_fields_finish(fields);
  return 0;
}

static void respond_not_ready(const api_site_t *s, h2o_req_t *req) {
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
static int rate_check(api_worker_t *w, api_rl_t *rl, h2o_req_t *req, const api_claims_t *c, int has_token) {
  if (rl == NULL) return 0;
  api_site_t *s = w->site;
  char ak[64];
  addr_key(req, ak, sizeof ak);
  uint64_t now = uv_now(&w->loop);
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
static const char *cors_for(const api_site_t *s, h2o_req_t *req) {
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
  api_worker_t *w = self->data;
  api_site_t *s = w->site;
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
  /* On the stack, not in req->pool: 2 KiB that would stay allocated for
   * the life of every stream (the stream's view keeps its own copy). */
  api_fields_t fields_buf, *fields = &fields_buf;
  fields->n = 0;
  api_stream_params_t params = {fields, 0};
  if (parse_query(&w->hub, req, &f, &id, fields, &params.heartbeat_ms, &reason) != 0) {
    sc_sse_filter_dispose(&f);
    api_claims_dispose(&claims);
    sc_httpd_respond(req, 400, "Bad Request", NULL, reason, strlen(reason));
    return 0;
  }
  /* The stream's filter becomes a subset of what the token grants, so it never sees other topics. */
  if (api_auth_scope(s->auth, req, &claims, has_token, &f) != 0 ||
      rate_check(w, s->rl_streams, req, &claims, has_token) != 0) {
    sc_sse_filter_dispose(&f);
    api_claims_dispose(&claims);
    return 0;
  }
  if (has_token && claims.exp > 0 && claims.exp < INT64_MAX / 1000) params.expires_ms = claims.exp * 1000;
  api_claims_dispose(&claims);
  if (w->store == NULL || s->draining) {
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
    if (sc_sse_id_parse(id.base, id.len, epoch, &seq) == 0 && api_store_placeable(w->store, epoch, seq)) resume = 1;
  }
  api_stream_open(&w->hub, req, &f, resume, seq, cors_for(s, req), &params);
  sc_sse_filter_dispose(&f);
  return 0;
}

static void etag_of(const api_store_t *st, const api_entry_t *e, char *out, size_t cap) {
  const char *ep = api_store_epoch(st);
  snprintf(out, cap, "\"%s-%llu\"", ep ? ep : "0000000000000000", (unsigned long long)e->seq);
}

static int on_state(sc_httpd_handler_t *self, h2o_req_t *req) {
  api_worker_t *w = self->data;
  api_site_t *s = w->site;
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
  if (w->store == NULL) {
    api_claims_dispose(&claims);
    respond_not_ready(s, req);
    return 0;
  }
  const api_store_t *st = w->store;
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
  api_fields_t fields_buf, *fields = &fields_buf;
  fields->n = 0;
  if (parse_query(&w->hub, req, &f, &id, fields, NULL, &reason) != 0) {
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
  api_worker_t *w = self->data;
  api_site_t *s = w->site;
  if (!path_is(req, "/readyz")) return -1;
  if (s->ready && s->sub_up && !s->draining && w->store != NULL) {
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
  api_worker_t *w = self->data;
  api_site_t *s = w->site;
  if (!path_is(req, "/metrics")) return -1;
  textbuf_t b = {malloc(4096), 0, 4096, 0};
  if (b.p == NULL) {
    sc_httpd_respond_error(req, 503, "Service Unavailable", "out of memory");
    return 0;
  }
  api_hub_totals_t h;
  api_site_hub_totals(s, &h);
  tb_printf(&b, "# HELP statecast_api_workers Fan-out worker threads.\n# TYPE statecast_api_workers gauge\n");
  tb_printf(&b, "statecast_api_workers %zu\n", atomic_load(&s->nworkers));
  tb_printf(&b, "# HELP statecast_api_streams_open SSE streams currently open.\n# TYPE statecast_api_streams_open gauge\n");
  tb_printf(&b, "statecast_api_streams_open %zu\n", h.nstreams);
  tb_printf(&b, "# HELP statecast_api_worker_streams_open SSE streams open per worker thread.\n# TYPE statecast_api_worker_streams_open gauge\n");
  for (size_t i = 0; i < atomic_load(&s->nworkers); i++)
    tb_printf(&b, "statecast_api_worker_streams_open{worker=\"%zu\"} %zu\n", i,
              atomic_load_explicit(&s->workers[i].hub.nstreams, memory_order_relaxed));
  tb_printf(&b, "# HELP statecast_api_streams_max Configured maximum of concurrent streams.\n# TYPE statecast_api_streams_max gauge\n");
  tb_printf(&b, "statecast_api_streams_max %zu\n", s->max_streams);
  tb_printf(&b, "# HELP statecast_api_events_sent_total Events (update, delete) written to streams.\n# TYPE statecast_api_events_sent_total counter\n");
  tb_printf(&b, "statecast_api_events_sent_total %llu\n", (unsigned long long)h.events_sent);
  tb_printf(&b, "# HELP statecast_api_bytes_sent_total SSE bytes written to streams.\n# TYPE statecast_api_bytes_sent_total counter\n");
  tb_printf(&b, "statecast_api_bytes_sent_total %llu\n", (unsigned long long)h.bytes_sent);
  tb_printf(&b, "# HELP statecast_api_heartbeats_sent_total Heartbeat comments written.\n# TYPE statecast_api_heartbeats_sent_total counter\n");
  tb_printf(&b, "statecast_api_heartbeats_sent_total %llu\n", (unsigned long long)h.heartbeats_sent);
  tb_printf(&b, "# HELP statecast_api_streams_dropped_total Streams ended or refused, by reason.\n# TYPE statecast_api_streams_dropped_total counter\n");
  for (int i = 0; i < API_DROP_N_; i++)
    tb_printf(&b, "statecast_api_streams_dropped_total{reason=\"%s\"} %llu\n", api_drop_names[i],
              (unsigned long long)h.dropped[i]);
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
  tb_printf(&b, "statecast_api_last_seq %llu\n", (unsigned long long)(w->store ? api_store_last_seq(w->store) : 0));
  tb_printf(&b, "# HELP statecast_api_topics Live topics in the store.\n# TYPE statecast_api_topics gauge\n");
  tb_printf(&b, "statecast_api_topics %zu\n", w->store ? api_store_live_count(w->store) : 0);
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
    cum += h.hist[i];
    tb_printf(&b, "statecast_api_commit_to_send_seconds_bucket{le=\"%g\"} %llu\n", api_hist_bounds[i],
              (unsigned long long)cum);
  }
  cum += h.hist[API_HIST_BUCKETS];
  tb_printf(&b, "statecast_api_commit_to_send_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
  tb_printf(&b, "statecast_api_commit_to_send_seconds_sum %.6f\n", (double)h.hist_sum_us / 1e6);
  tb_printf(&b, "statecast_api_commit_to_send_seconds_count %llu\n", (unsigned long long)h.hist_count);
  if (b.oom)
    sc_httpd_respond_error(req, 503, "Service Unavailable", "out of memory");
  else
    sc_httpd_respond(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
  free(b.p);
  return 0;
}

static int on_files(sc_httpd_handler_t *self, h2o_req_t *req) {
  api_worker_t *w = self->data;
  api_site_t *s = w->site;
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
  api_worker_t *w = self->data;
  api_site_t *s = w->site;
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
  } else if (rate_check(w, s->rl_publish, req, &claims, has_token) == 0) {
    api_publish_handle(&w->pubcfg, req, &claims);
  }
  api_claims_dispose(&claims);
  return 0;
}

