#include "health.h"

#include "updater.h"

#include <string.h>

static int on_healthz(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_readyz(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_metrics(sc_httpd_handler_t *self, h2o_req_t *req);
static int on_other(sc_httpd_handler_t *self, h2o_req_t *req);

const sc_httpd_route_t kvu_health_routes[] = {
    {"/healthz", on_healthz},
    {"/readyz", on_readyz},
    {"/metrics", on_metrics},
    {"/", on_other},
};
const size_t kvu_health_nroutes = sizeof kvu_health_routes / sizeof kvu_health_routes[0];

/* Exact path (a query string allowed), not just the prefix h2o matched. */
static int path_is(const h2o_req_t *req, const char *path) {
  size_t n = strlen(path);
  const h2o_iovec_t *p = &req->path_normalized;
  return p->len == n && memcmp(p->base, path, n) == 0;
}

static int on_healthz(sc_httpd_handler_t *self, h2o_req_t *req) {
  if (!path_is(req, "/healthz")) return on_other(self, req);
  sc_httpd_respond(req, 200, "OK", NULL, "ok", 2);
  return 0;
}

static int on_readyz(sc_httpd_handler_t *self, h2o_req_t *req) {
  if (!path_is(req, "/readyz")) return on_other(self, req);
  const char *why = NULL;
  if (kvu_ready(self->data, &why)) {
    sc_httpd_respond(req, 200, "OK", NULL, "ready", 5);
  } else {
    sc_httpd_respond(req, 503, "Service Unavailable", NULL, why, strlen(why));
  }
  return 0;
}

static int on_metrics(sc_httpd_handler_t *self, h2o_req_t *req) {
  if (!path_is(req, "/metrics")) return on_other(self, req);
  kvu_stats_t st;
  kvu_get_stats(self->data, &st);
  char buf[8192];
  size_t n = kvu_metrics_format(&st, buf, sizeof buf);
  sc_httpd_respond(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", buf, n);
  return 0;
}

static int on_other(sc_httpd_handler_t *self, h2o_req_t *req) {
  (void)self;
  sc_httpd_respond_error(req, 404, "Not Found", "not found");
  return 0;
}
