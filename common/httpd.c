/*
 * httpd: one h2o (libuv build) HTTP server on the caller's loop.
 *
 * Shape: a hand-made listening socket (SO_REUSEADDR + SO_REUSEPORT, then
 * uv_tcp_open, backlog 4096) feeds h2o_accept(); every accepted connection
 * is a small kept-alive record (struct conn) so that sc_httpd_close() can
 * cut idle keep-alive clients and know when the last one is gone.
 *
 * Teardown is asynchronous: close the listener, shutdown(2) every open
 * connection (h2o sees EOF or a failed write and closes through its own
 * path), and only when the listener and all connections have run their
 * close callbacks dispose the h2o context and config and free the struct.
 * h2o_context_dispose() runs the loop once (UV_RUN_NOWAIT) to reap the
 * timers it closes; doing it from a close callback keeps that nested run out
 * of the I/O polling phase.
 */
#include "httpd.h"

#include "err.h"
#include "json.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SC_HTTPD_BACKLOG 4096

/* One accepted connection; tcp must be first (h2o closes it with our
 * close callback, handing back the uv_handle_t). Freed only in on_conn_closed. */
struct conn {
  uv_tcp_t tcp;
  sc_httpd_t *httpd;
  struct conn *prev, *next;
};

/* The handler h2o allocates for a route: the public part plus the callback. */
typedef struct route_handler {
  sc_httpd_handler_t pub;
  sc_httpd_req_cb on_req;
} route_handler_t;

typedef enum { HTTPD_RUNNING, HTTPD_CLOSING } httpd_state_t;

struct sc_httpd {
  uv_loop_t *loop;          /* borrowed */
  uv_tcp_t *listener;       /* owned; NULL once closing; freed in on_listener_closed */
  int listener_open;        /* 1 until on_listener_closed ran */
  h2o_globalconf_t gconf;
  h2o_context_t ctx;
  h2o_accept_ctx_t accept_ctx;
  int port;
  int sndbuf;               /* SO_SNDBUF of accepted sockets (0: the kernel's autotuning) */
  void *data;               /* borrowed, handed to handlers */
  struct conn *conns;       /* open connections (owned list) */
  size_t nconns;
  httpd_state_t state;
  SSL_CTX *ssl_ctx;         /* owned; NULL: plain TCP */
};

static void on_accept(uv_stream_t *server, int status);
static void on_conn_closed(uv_handle_t *handle);
static void on_listener_closed(uv_handle_t *handle);
static int on_route(h2o_handler_t *self, h2o_req_t *req);

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int sc_httpd_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen) {
  if (s == NULL || *s == '\0') {
    set_err(err, errlen, "empty listen address");
    return SC_ECONFIG;
  }
  char host[128];
  const char *port_s;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL || close[1] != ':') {
      set_err(err, errlen, "listen address \"%s\": expected [v6addr]:port", s);
      return SC_ECONFIG;
    }
    size_t hl = (size_t)(close - s - 1);
    if (hl == 0 || hl >= sizeof host) {
      set_err(err, errlen, "listen address \"%s\": bad IPv6 address", s);
      return SC_ECONFIG;
    }
    memcpy(host, s + 1, hl);
    host[hl] = '\0';
    port_s = close + 2;
  } else {
    const char *colon = strrchr(s, ':');
    if (colon == NULL) {
      set_err(err, errlen, "listen address \"%s\": expected host:port or :port", s);
      return SC_ECONFIG;
    }
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host || memchr(s, ':', hl) != NULL) {
      set_err(err, errlen, "listen address \"%s\": bad host (IPv6 needs [brackets])", s);
      return SC_ECONFIG;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    port_s = colon + 1;
  }
  /* port: 1-5 decimal digits, 0..65535 */
  size_t pl = strlen(port_s);
  long port = 0;
  if (pl == 0 || pl > 5) {
    set_err(err, errlen, "listen address \"%s\": bad port", s);
    return SC_ECONFIG;
  }
  for (size_t i = 0; i < pl; i++) {
    if (port_s[i] < '0' || port_s[i] > '9') {
      set_err(err, errlen, "listen address \"%s\": bad port", s);
      return SC_ECONFIG;
    }
    port = port * 10 + (port_s[i] - '0');
  }
  if (port > 65535) {
    set_err(err, errlen, "listen address \"%s\": port out of range", s);
    return SC_ECONFIG;
  }
  memset(ss, 0, sizeof *ss);
  if (s[0] == '[') {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) {
      set_err(err, errlen, "listen address \"%s\": bad IPv6 address", s);
      return SC_ECONFIG;
    }
    *len = sizeof *a6;
    return 0;
  }
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  a4->sin_family = AF_INET;
  a4->sin_port = htons((uint16_t)port);
  if (host[0] == '\0') {
    a4->sin_addr.s_addr = htonl(INADDR_ANY);
  } else if (strcmp(host, "localhost") == 0) {
    a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
    set_err(err, errlen, "listen address \"%s\": \"%s\" is not an IPv4 address", s, host);
    return SC_ECONFIG;
  }
  *len = sizeof *a4;
  return 0;
}

/* socket -> SO_REUSEADDR + SO_REUSEPORT -> bind; returns the fd or -errno. */
static int make_listen_socket(const struct sockaddr_storage *ss, socklen_t len) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      bind(fd, (const struct sockaddr *)ss, len) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

int sc_httpd_new(sc_httpd_t **out, uv_loop_t *loop, const char *listen, const sc_httpd_route_t *routes,
                 size_t nroutes, void *data, char *err, size_t errlen) {
  return sc_httpd_new_ex(out, loop, listen, routes, nroutes, data, NULL, err, errlen);
}

/* A server SSL_CTX for cert/key (TLS 1.2+), with HTTP/2 and HTTP/1.1 over ALPN. NULL with a reason in err. */
static SSL_CTX *make_ssl_ctx(const char *cert, const char *key, char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    set_err(err, errlen, "TLS: cannot create a context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    set_err(err, errlen, "tls_cert_file %s: cannot load the certificate chain", cert);
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    set_err(err, errlen, "tls_key_file %s: cannot load the key, or it does not match the certificate", key);
    goto fail;
  }
  h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
  return ctx;
fail:
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return NULL;
}

int sc_httpd_is_tls(const sc_httpd_t *h) { return h->ssl_ctx != NULL; }

int sc_httpd_new_ex(sc_httpd_t **out, uv_loop_t *loop, const char *listen, const sc_httpd_route_t *routes,
                    size_t nroutes, void *data, const sc_httpd_opts_t *opts, char *err, size_t errlen) {
  *out = NULL;
  struct sockaddr_storage ss;
  socklen_t sslen;
  int rc = sc_httpd_parse_listen(listen, &ss, &sslen, err, errlen);
  if (rc != 0) return rc;

  int fd = -1;
  sc_httpd_t *h = calloc(1, sizeof *h);
  if (h == NULL) {
    set_err(err, errlen, "out of memory");
    return SC_ENOMEM;
  }
  h->loop = loop;
  h->data = data;
  h->state = HTTPD_RUNNING;

  h2o_config_init(&h->gconf);
  if (opts != NULL) {
    if (opts->req_timeout_ms > 0) h->gconf.http1.req_timeout = opts->req_timeout_ms;
    if (opts->max_request_body > 0) h->gconf.max_request_entity_size = opts->max_request_body;
    h->sndbuf = opts->sndbuf_bytes > INT_MAX / 2 ? INT_MAX / 2 : (int)opts->sndbuf_bytes;
    int want_tls = (opts->tls_cert_file && opts->tls_cert_file[0]) || (opts->tls_key_file && opts->tls_key_file[0]);
    if (want_tls) {
      if (!(opts->tls_cert_file && opts->tls_cert_file[0]) || !(opts->tls_key_file && opts->tls_key_file[0])) {
        set_err(err, errlen, "TLS needs both tls_cert_file and tls_key_file");
        rc = SC_ECONFIG;
        goto fail;
      }
      h->ssl_ctx = make_ssl_ctx(opts->tls_cert_file, opts->tls_key_file, err, errlen);
      if (h->ssl_ctx == NULL) {
        rc = SC_ECONFIG;
        goto fail;
      }
    }
  }
  h2o_hostconf_t *host = h2o_config_register_host(&h->gconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  for (size_t i = 0; i < nroutes; i++) {
    h2o_pathconf_t *pc = h2o_config_register_path(host, routes[i].path, 0);
    route_handler_t *rh = (route_handler_t *)h2o_create_handler(pc, sizeof *rh);
    rh->pub.super.on_req = on_route;
    rh->pub.httpd = h;
    rh->pub.data = data;
    rh->on_req = routes[i].on_req;
  }

  fd = make_listen_socket(&ss, sslen);
  if (fd < 0) {
    set_err(err, errlen, "listen on %s: %s", listen, fd == -EADDRINUSE ? "address in use" : strerror(-fd));
    rc = SC_EIO;
    goto fail;
  }
  h->listener = malloc(sizeof *h->listener);
  if (h->listener == NULL) {
    set_err(err, errlen, "out of memory");
    rc = SC_ENOMEM;
    goto fail;
  }
  int uvrc = uv_tcp_init(loop, h->listener);
  if (uvrc != 0) {
    free(h->listener);
    h->listener = NULL;
    set_err(err, errlen, "listen on %s: %s", listen, uv_strerror(uvrc));
    rc = SC_EIO;
    goto fail;
  }
  h->listener->data = h;
  h->listener_open = 1;
  if ((uvrc = uv_tcp_open(h->listener, fd)) == 0) {
    fd = -1; /* owned by the handle now */
    uvrc = uv_listen((uv_stream_t *)h->listener, SC_HTTPD_BACKLOG, on_accept);
  }
  if (uvrc != 0) {
    set_err(err, errlen, "listen on %s: %s", listen, uvrc == UV_EADDRINUSE ? "address in use" : uv_strerror(uvrc));
    rc = SC_EIO;
    goto fail;
  }
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  if (uv_tcp_getsockname(h->listener, (struct sockaddr *)&bound, &blen) == 0) {
    h->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
  }

  h2o_context_init(&h->ctx, loop, &h->gconf);
  h->accept_ctx.ctx = &h->ctx;
  h->accept_ctx.hosts = h->gconf.hosts;
  h->accept_ctx.ssl_ctx = h->ssl_ctx;
  *out = h;
  return 0;

fail:
  if (fd >= 0) close(fd);
  if (h->listener != NULL) {
    /* The struct must outlive the handle: finish the teardown in its close callback. */
    h->state = HTTPD_CLOSING;
    uv_close((uv_handle_t *)h->listener, on_listener_closed);
    h->listener = NULL;
    return rc;
  }
  h2o_config_dispose(&h->gconf);
  SSL_CTX_free(h->ssl_ctx);
  free(h);
  return rc;
}

int sc_httpd_port(const sc_httpd_t *h) { return h->port; }

h2o_context_t *sc_httpd_context(sc_httpd_t *h) { return &h->ctx; }

static void on_accept(uv_stream_t *server, int status) {
  sc_httpd_t *h = server->data;
  if (status != 0) {
    SC_WARN("http accept failed: %s", uv_strerror(status));
    return;
  }
  if (h->state != HTTPD_RUNNING) return;
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    SC_ERROR("http accept: out of memory");
    return;
  }
  c->httpd = h;
  uv_tcp_init(h->loop, &c->tcp);
  c->next = h->conns;
  if (h->conns != NULL) h->conns->prev = c;
  h->conns = c;
  h->nconns++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_os_fd_t fd;
  if (h->sndbuf > 0 && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 &&
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &h->sndbuf, sizeof h->sndbuf) != 0)
    SC_DEBUG("SO_SNDBUF %d: %s", h->sndbuf, strerror(errno));
  h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
  h2o_accept(&h->accept_ctx, sock);
}

static int on_route(h2o_handler_t *self, h2o_req_t *req) {
  route_handler_t *rh = (route_handler_t *)self;
  return rh->on_req(&rh->pub, req);
}

/* Once nothing on the loop refers to the context any more: dispose and free. */
static void maybe_finish(sc_httpd_t *h) {
  if (h->state != HTTPD_CLOSING || h->listener_open || h->nconns != 0) return;
  if (h->ctx.loop != NULL) h2o_context_dispose(&h->ctx);
  h2o_config_dispose(&h->gconf);
  SSL_CTX_free(h->ssl_ctx);
  free(h);
}

static void on_conn_closed(uv_handle_t *handle) {
  struct conn *c = (struct conn *)handle;
  sc_httpd_t *h = c->httpd;
  if (c->prev != NULL) c->prev->next = c->next;
  else h->conns = c->next;
  if (c->next != NULL) c->next->prev = c->prev;
  h->nconns--;
  free(c);
  maybe_finish(h);
}

static void on_listener_closed(uv_handle_t *handle) {
  sc_httpd_t *h = handle->data;
  free(handle);
  h->listener_open = 0;
  maybe_finish(h);
}

void sc_httpd_stop_accepting(sc_httpd_t *h) {
  if (h->listener == NULL) return;
  uv_close((uv_handle_t *)h->listener, on_listener_closed);
  h->listener = NULL;
}

void sc_httpd_close(sc_httpd_t *h) {
  if (h == NULL || h->state == HTTPD_CLOSING) return;
  h->state = HTTPD_CLOSING;
  sc_httpd_stop_accepting(h);
  /* Cut open connections: h2o notices EOF (idle keep-alive) or a failed
   * write and closes them through its own path, which ends in on_conn_closed. */
  for (struct conn *c = h->conns; c != NULL; c = c->next) {
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) shutdown(fd, SHUT_RDWR);
  }
  /* Usually the listener's close (or a connection's) is still pending and
   * maybe_finish runs from its close callback; after an earlier
   * sc_httpd_stop_accepting() with no connection left, nothing is pending. */
  maybe_finish(h);
}

void sc_httpd_respond(h2o_req_t *req, int status, const char *reason, const char *content_type, const char *body,
                      size_t len) {
  req->res.status = status;
  req->res.reason = reason;
  const char *ct = content_type != NULL ? content_type : "text/plain; charset=utf-8";
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ct, strlen(ct));
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
  req->res.content_length = len;
  h2o_send_inline(req, body, len);
}

void sc_httpd_respond_error(h2o_req_t *req, int status, const char *reason, const char *msg) {
  size_t ml = strlen(msg);
  char *buf = h2o_mem_alloc_pool(&req->pool, 6 * ml + 16);
  size_t n = 0;
  memcpy(buf, "{\"error\":\"", 10);
  n = 10;
  n += sc_json_escape(buf + n, msg, ml);
  memcpy(buf + n, "\"}", 2);
  n += 2;
  sc_httpd_respond(req, status, reason, "application/json", buf, n);
}
