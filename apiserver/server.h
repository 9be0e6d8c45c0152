/*
 * server: the apiserver's wiring. On the caller's loop (the Redis thread)
 * it owns the two Redis connections (a subscriber on statecast:notify and a
 * command connection for loading) and the master store; it starts
 * `workers` fan-out threads (worker.h), each listening on the same port
 * (SO_REUSEPORT) with its own hub and a replica of the store, and passes
 * every change on to them in commit order:
 *
 *   sub up -> load (buffering notifications) -> apply buffered by seq -> live
 *   live: notification -> master apply -> every worker: replica apply -> hub notify
 *   epoch change or sub reconnect -> reload into a new store, hand each
 *   worker a replica, and end every stream so it resumes exactly (or gets
 *   full state) on reconnect.
 */
#ifndef API_SERVER_H
#define API_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "redis.h"

typedef struct api_server api_server_t;

typedef struct api_server_opts {
  const char *listen;        /* "host:port"; copied */
  const char *cors_origin;   /* copied; "" disables the header */
  const char *web_root;      /* directory served at "/", copied; NULL: none */
  const sc_redis_addr_t *redis; /* borrowed for the call */
  unsigned heartbeat_ms;
  unsigned retry_ms;
  unsigned drain_ms;
  size_t max_streams;        /* over all workers */
  unsigned workers;          /* fan-out threads (0: 1) */
  size_t stream_sndbuf_bytes; /* SO_SNDBUF of accepted connections (0: kernel autotuning) */
  size_t max_stream_backlog_bytes; /* hard cap per stalled stream (see api_hub_set_backlog_cap); 0: none */
  size_t tomb_cap; /* 0: SC_KEYS_DELETED_CAP */
  /* Bounds of a stream's heartbeat= and the retry: jitter; all 0 (heartbeat_max_ms 0): the hub's defaults
   * (1 s .. 300 s, 50 %). */
  unsigned heartbeat_min_ms, heartbeat_max_ms;
  unsigned retry_jitter_percent;
  /* Auth, limits, publishing (see auth.h, ratelimit.h, publish.h). */
  struct api_auth *auth;          /* moved into the server (freed by api_server_free); NULL: no auth */
  double streams_rate, streams_burst; /* new streams per second per token and per address (0: off) */
  double publish_rate, publish_burst; /* publishes per second per token and per address (0: off) */
  size_t max_message_bytes;       /* POST /publish body limit (0: the default) */
  unsigned publish_timeout_ms;    /* wait for the commit (0: 5000) */
  const char *tls_cert_file, *tls_key_file; /* both set: TLS (HTTP/2 over ALPN) */
  unsigned request_timeout_ms;    /* time to send a request's head (0: h2o's 10 s) */
} api_server_opts_t;

/* Caller frees with api_server_free() after the loop has finished. On
 * failure *out may still be set (handles are closing): run the loop dry,
 * then free it the same way. err gets a reason for listen failures. */
__attribute__((warn_unused_result)) int api_server_new(api_server_t **out, uv_loop_t *loop,
                                                      const api_server_opts_t *opts, char *err, size_t errlen);
int api_server_port(const api_server_t *s);
/* Graceful stop: stop accepting, /readyz 503, end streams spread over the
 * drain period, then close HTTP and Redis. The loop runs dry afterwards. */
typedef void (*api_server_closed_cb)(api_server_t *s, void *data);
/* cb (may be NULL) fires once, when HTTP and Redis have been told to close
 * (the caller then closes its own handles, e.g. signal watchers). */
void api_server_shutdown(api_server_t *s, api_server_closed_cb cb, void *data);
/* After uv_run() returned. NULL is a no-op. */
void api_server_free(api_server_t *s);

#endif
