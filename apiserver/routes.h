/*
 * routes: the HTTP endpoints of statecast-apiserver (/events, /state,
 * /healthz, /readyz, /metrics, /publish and the web display), served by
 * every worker thread: each handler gets its worker (worker.h) as
 * self->data and reads that worker's hub and replica store, plus the
 * process-wide api_site_t below.
 */
#ifndef API_ROUTES_H
#define API_ROUTES_H

#include <h2o.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "httpd.h"
#include "redis.h"
#include "stream.h"

struct api_auth;
struct api_rl;
struct api_worker;

/*
 * What every worker shares, owned by the server (server.c). The
 * configuration is written before the first worker starts and read-only
 * afterwards; the status and Redis-side counters are written by the Redis
 * thread and read by any worker, hence atomic.
 */
typedef struct api_site {
  /* configuration */
  char *cors_origin;            /* owned; "" disables the header */
  char *web_root;               /* owned; NULL: no web display */
  h2o_mimemap_t *mimemap;       /* owned (h2o shared refcount); lookups only */
  struct api_auth *auth;        /* owned; NULL: no auth; read-only */
  struct api_rl *rl_streams, *rl_publish; /* owned, thread-safe; NULL: off */
  size_t max_streams;           /* over all workers */
  atomic_size_t streams_open;   /* the count the limit applies to (every hub adds to it) */
  struct api_worker *workers;   /* owned array; the first nworkers are running (metrics sum their hubs) */
  atomic_size_t nworkers;
  const sc_redis_t *sub, *cmd;  /* borrowed: the Redis thread's connections (reconnect counters only) */
  /* status, written by the Redis thread */
  atomic_int ready, sub_up, draining, catching_up;
  /* counters */
  _Atomic uint64_t published, rate_limited;
  _Atomic uint64_t notifications, notifications_bad, reloads, loads, outages;
  _Atomic uint64_t catchups_reconnect, catchups_gap, catchup_changes;
} api_site_t;

#define API_NROUTES 7
extern const sc_httpd_route_t api_routes[API_NROUTES];

/* The hubs' counters summed over every worker. */
typedef struct api_hub_totals {
  size_t nstreams;
  uint64_t events_sent, bytes_sent, heartbeats_sent;
  uint64_t dropped[API_DROP_N_];
  uint64_t hist[API_HIST_BUCKETS + 1];
  uint64_t hist_sum_us, hist_count;
} api_hub_totals_t;
void api_site_hub_totals(const api_site_t *s, api_hub_totals_t *t);

#endif
