/*
 * httpd: the small h2o-on-libuv HTTP server every statecast binary with an
 * HTTP face uses (kv-updater's health port, the apiserver).
 *
 * It owns the listening socket (created by hand with SO_REUSEADDR and
 * SO_REUSEPORT, then uv_tcp_open'd: libuv 1.44 has no SO_REUSEPORT flag),
 * one h2o_globalconf_t with one host, one h2o_context_t on the caller's
 * loop, and the accept path (TCP_NODELAY on, which h2o's libuv build does
 * not do). Routes are path prefixes in registration order; a handler is a
 * plain h2o on_req callback (return 0 when it answered, -1 to fall through
 * to the next route / 404).
 */
#ifndef SC_HTTPD_H
#define SC_HTTPD_H

#include <h2o.h>
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct sc_httpd sc_httpd_t;

/* h2o handler with a user pointer; the handler gets itself as `self`. */
typedef struct sc_httpd_handler {
  h2o_handler_t super; /* must be first */
  sc_httpd_t *httpd;
  void *data;
} sc_httpd_handler_t;

typedef int (*sc_httpd_req_cb)(sc_httpd_handler_t *self, h2o_req_t *req);

typedef struct sc_httpd_route {
  const char *path; /* prefix, e.g. "/healthz" or "/" */
  sc_httpd_req_cb on_req;
} sc_httpd_route_t;

/* Parse "host:port", "[v6]:port" or ":port" (all interfaces) into ss.
 * Returns 0 or SC_ECONFIG with a reason in err. */
__attribute__((warn_unused_result)) int sc_httpd_parse_listen(const char *s, struct sockaddr_storage *ss,
                                                             socklen_t *len, char *err, size_t errlen);

/* Listen on `listen` and serve routes (copied) on loop; data is handed to
 * every handler as self->data (borrowed). Caller frees with sc_httpd_close().
 * Returns 0, or SC_ECONFIG / SC_EIO with a reason (e.g. "address in use") in err. */
__attribute__((warn_unused_result)) int sc_httpd_new(sc_httpd_t **out, uv_loop_t *loop, const char *listen,
                                                    const sc_httpd_route_t *routes, size_t nroutes, void *data,
                                                    char *err, size_t errlen);
/* Optional settings of sc_httpd_new_ex(); zero means h2o's default. */
typedef struct sc_httpd_opts {
  const char *tls_cert_file;  /* PEM certificate chain; with tls_key_file: TLS only, HTTP/2 over ALPN */
  const char *tls_key_file;   /* PEM private key */
  unsigned req_timeout_ms;    /* HTTP/1 time to send a request (h2o default 10 s) */
  size_t max_request_body;    /* larger request bodies get 413 from h2o (default 1 GiB) */
  size_t sndbuf_bytes;        /* SO_SNDBUF of accepted connections (the kernel doubles it); bounds what a
                               * stalled reader pins in kernel memory (default: autotuning, up to tcp_wmem max) */
} sc_httpd_opts_t;
/* sc_httpd_new() with options (opts NULL: the same as sc_httpd_new()).
 * Certificate or key problems are SC_ECONFIG with a reason in err. Request
 * heads are limited by h2o itself (fixed at build time: H2O_MAX_REQLEN,
 * 8 KiB for HTTP/1; HTTP/2 HPACK header tables are bounded too). */
__attribute__((warn_unused_result)) int sc_httpd_new_ex(sc_httpd_t **out, uv_loop_t *loop, const char *listen,
                                                       const sc_httpd_route_t *routes, size_t nroutes, void *data,
                                                       const sc_httpd_opts_t *opts, char *err, size_t errlen);
/* 1 when the listener speaks TLS. */
int sc_httpd_is_tls(const sc_httpd_t *h);
/* The port actually bound (useful with port 0). */
int sc_httpd_port(const sc_httpd_t *h);
/* The h2o context (for callers that stream: timeouts, loop). Borrowed. */
h2o_context_t *sc_httpd_context(sc_httpd_t *h);
/* Stop accepting new connections (keeps existing ones). */
void sc_httpd_stop_accepting(sc_httpd_t *h);
/* Stop accepting, dispose the context and free everything once handles close.
 * Open connections must already be finished or are cut. */
void sc_httpd_close(sc_httpd_t *h);

/* Answer with a complete body (copied into the request pool) and a
 * Content-Length; content_type may be NULL (text/plain; charset=utf-8). */
void sc_httpd_respond(h2o_req_t *req, int status, const char *reason, const char *content_type, const char *body,
                      size_t len);
/* Answer {"error":"<msg>"} (msg escaped) with the given status. */
void sc_httpd_respond_error(h2o_req_t *req, int status, const char *reason, const char *msg);

#endif
