/*
 * statecast-kv-updater: subscribe to update:{*}, check every message, commit
 * it (see updater.h), and answer health checks (see health.h).
 * This file only wires things: config, logging, loop, signals, shutdown.
 */
#include "binconf.h"
#include "config.h"
#include "err.h"
#include "health.h"
#include "httpd.h"
#include "log.h"
#include "redis.h"
#include "updater.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define PROGRAM "statecast-kv-updater"
#define SHUTDOWN_TIMEOUT_MS 5000

static const sc_conf_spec_t specs[] = {
    SC_CONF_COMMON_SPECS,
    {"health_listen", SC_CONF_STRING, "0.0.0.0:8081", "host:port of the /healthz, /readyz and /metrics server", 0, 0,
     0, NULL},
    {"commit_timeout_ms", SC_CONF_INT, "5000", "a commit not answered in time makes the command connection reconnect",
     0, 100, 600000, NULL},
    {"pending_max_messages", SC_CONF_INT, "100000", "messages kept while Redis is down (oldest dropped beyond)", 0, 1,
     100000000, NULL},
    {"pending_max_bytes", SC_CONF_INT, "268435456", "bytes kept while Redis is down (oldest dropped beyond)", 0, 1024,
     17179869184LL, NULL},
    {"lease_ms", SC_CONF_INT, "5000",
     "leadership lease: only its holder commits; a standby takes over within about this long after the leader dies",
     0, 300, 600000, NULL},
};
#define NSPECS (sizeof specs / sizeof specs[0])

typedef struct app {
  uv_loop_t loop;
  uv_signal_t sigterm, sigint;
  kvu_t *kvu;        /* owned */
  sc_httpd_t *httpd; /* owned */
  int stopping;
} app_t;

static void on_drained(kvu_t *k, size_t left, void *data) {
  app_t *app = data;
  if (left > 0) SC_ERROR("exiting with %zu message(s) not committed", left);
  kvu_close(k);
  app->kvu = NULL;
  sc_httpd_close(app->httpd);
  app->httpd = NULL;
  uv_close((uv_handle_t *)&app->sigterm, NULL);
  uv_close((uv_handle_t *)&app->sigint, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
  app_t *app = s->data;
  if (app->stopping) return;
  app->stopping = 1;
  SC_INFO("received %s, shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  kvu_drain(app->kvu, SHUTDOWN_TIMEOUT_MS, on_drained, app);
}

int main(int argc, char **argv, char **envp) {
  char err[512];
  sc_conf_t *conf;
  sc_redis_addr_t addr;
  sc_log_level_t level;
  sc_log_format_t format;
  int code = sc_binconf_daemon(PROGRAM, "kv-updater", specs, NSPECS, "health_listen", argc, argv, envp, &conf, &addr,
                               &level, &format);
  if (code != SC_BINCONF_RUN) return code;
  code = 1;
  int loop_inited = 0;
  app_t app;
  memset(&app, 0, sizeof app);

  sc_log_init("kv-updater", level, format);
  signal(SIGPIPE, SIG_IGN);
  if (uv_loop_init(&app.loop) != 0) {
    fprintf(stderr, "%s: cannot create the event loop\n", PROGRAM);
    goto done;
  }
  loop_inited = 1;

  kvu_opts_t opts = {0};
  opts.max_message_bytes = (size_t)sc_conf_int(conf, "max_message_bytes");
  opts.commit_timeout_ms = (int)sc_conf_int(conf, "commit_timeout_ms");
  opts.pending_max_messages = (size_t)sc_conf_int(conf, "pending_max_messages");
  opts.pending_max_bytes = (size_t)sc_conf_int(conf, "pending_max_bytes");
  opts.lease_ms = (int)sc_conf_int(conf, "lease_ms");
  int rc = kvu_new(&app.kvu, &app.loop, &addr, &opts);
  if (rc != 0) {
    fprintf(stderr, "%s: cannot start: %s\n", PROGRAM, sc_strerror(rc));
    goto done;
  }
  rc = sc_httpd_new(&app.httpd, &app.loop, sc_conf_str(conf, "health_listen"), kvu_health_routes,
                    kvu_health_nroutes, app.kvu, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "%s: health_listen: %s\n", PROGRAM, err);
    kvu_close(app.kvu);
    app.kvu = NULL;
    goto done;
  }
  char where[256];
  sc_redis_addr_describe(&addr, where, sizeof where);
  SC_INFO("started: redis %s, health on port %d, max_message_bytes %lld", where, sc_httpd_port(app.httpd),
          sc_conf_int(conf, "max_message_bytes"));

  uv_signal_init(&app.loop, &app.sigterm);
  uv_signal_init(&app.loop, &app.sigint);
  app.sigterm.data = app.sigint.data = &app;
  uv_signal_start(&app.sigterm, on_signal, SIGTERM);
  uv_signal_start(&app.sigint, on_signal, SIGINT);

  uv_run(&app.loop, UV_RUN_DEFAULT);
  SC_INFO("stopped");
  code = 0;

done:
  if (loop_inited) {
    /* Let any close callback still queued (e.g. after a start failure) run. */
    uv_run(&app.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&app.loop) != 0) {
      SC_ERROR("event loop still has open handles at exit");
      code = code == 0 ? 1 : code;
    }
  }
  sc_redis_addr_dispose(&addr);
  sc_conf_free(conf);
  return code;
}
