/*
 * statecast-apiserver: serve the committed state over SSE, /state, health
 * and metrics, and the web display (see server.h). This file only wires
 * things: config, logging, loop, signals, shutdown.
 */
#include "binconf.h"
#include "config.h"
#include "err.h"
#include "httpd.h"
#include "log.h"
#include "auth.h"
#include "redis.h"
#include "server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <uv.h>

#define PROGRAM "statecast-apiserver"
/* File descriptors kept free for Redis, logs, listeners and bursts. */
#define FD_SAFETY_MARGIN 512
#define MAX_STREAMS_CAP 1000000

static const sc_conf_spec_t specs[] = {
    SC_CONF_COMMON_SPECS,
    {"listen", SC_CONF_STRING, "0.0.0.0:8080", "host:port of the HTTP server", 0, 0, 0, NULL},
    {"cors_origin", SC_CONF_STRING, "*", "Access-Control-Allow-Origin value (empty: no header)", 0, 0, 0, NULL},
    {"heartbeat_seconds", SC_CONF_INT, "15", "SSE heartbeat comment interval (0: none)", 0, 0, 3600, NULL},
    {"max_streams", SC_CONF_INT, "0", "maximum concurrent SSE streams (0: open-file limit minus a margin)", 0, 0,
     MAX_STREAMS_CAP, NULL},
    {"workers", SC_CONF_INT, "0", "fan-out threads, each with its own loop and listener on the port (0: one per CPU)",
     0, 0, 256, NULL},
    {"stream_sndbuf_bytes", SC_CONF_INT, "65536",
     "kernel send buffer of each connection (SO_SNDBUF, doubled by Linux; 0: autotuning up to tcp_wmem)", 0, 0,
     64 << 20, NULL},
    {"max_stream_backlog_bytes", SC_CONF_INT, "8388608",
     "cut a stalled stream whose unsent state (in-flight plus still due) exceeds this (0: no cap)", 0, 0,
     (long long)1 << 40, NULL},
    {"drain_seconds", SC_CONF_INT, "5", "on SIGTERM, close streams spread over this many seconds", 0, 0, 3600, NULL},
    {"retry_ms", SC_CONF_INT, "2000", "reconnect delay announced to SSE clients (retry:)", 0, 100, 600000, NULL},
    {"retry_jitter_percent", SC_CONF_INT, "50", "each stream's retry: is retry_ms +- up to this % at random", 0, 0, 100,
     NULL},
    {"heartbeat_min_seconds", SC_CONF_INT, "1", "smallest heartbeat= a stream may ask for", 0, 1, 3600, NULL},
    {"heartbeat_max_seconds", SC_CONF_INT, "300", "largest heartbeat= a stream may ask for", 0, 1, 3600, NULL},
    {"web_root", SC_CONF_STRING, NULL, "directory of the web display (default: installed share dir or source tree)",
     0, 0, 0, NULL},
    {"jwt_secret_file", SC_CONF_STRING, NULL, "file with the HS256 secret of subscriber/publisher tokens (turns auth on)",
     0, 0, 0, NULL},
    {"jwt_public_key_file", SC_CONF_STRING, NULL, "PEM public key (RSA: RS256, EC P-256: ES256) of tokens (turns auth on)",
     0, 0, 0, NULL},
    {"jwt_audience", SC_CONF_STRING, NULL, "required aud claim of tokens", 0, 0, 0, NULL},
    {"jwt_issuer", SC_CONF_STRING, NULL, "required iss claim of tokens", 0, 0, 0, NULL},
    {"public_topics", SC_CONF_STRING, NULL, "comma-separated topic patterns readable without a token", 0, 0, 0, NULL},
    {"streams_rate_per_second", SC_CONF_INT, "0", "new SSE streams per second per token and per address (0: off)", 0, 0,
     1000000, NULL},
    {"streams_burst", SC_CONF_INT, "20", "burst of new SSE streams per token and per address", 0, 1, 1000000, NULL},
    {"publish_rate_per_second", SC_CONF_INT, "0", "HTTP publishes per second per token and per address (0: off)", 0,
     0, 1000000, NULL},
    {"publish_burst", SC_CONF_INT, "50", "burst of HTTP publishes per token and per address", 0, 1, 1000000, NULL},
    {"publish_timeout_ms", SC_CONF_INT, "5000", "POST /publish waits this long for the commit (then 504)", 0, 100,
     600000, NULL},
    {"tls_cert_file", SC_CONF_STRING, NULL, "PEM certificate chain: serve HTTPS (HTTP/2 over ALPN)", 0, 0, 0, NULL},
    {"tls_key_file", SC_CONF_STRING, NULL, "PEM private key of tls_cert_file", 0, 0, 0, NULL},
    {"request_timeout_seconds", SC_CONF_INT, "10", "time a client has to send a request's head (HTTP/1)", 0, 1, 3600,
     NULL},
};
#define NSPECS (sizeof specs / sizeof specs[0])

typedef struct app {
  uv_loop_t loop;
  uv_signal_t sigterm, sigint;
  api_server_t *srv; /* owned */
  int stopping;
} app_t;

#if defined(__SANITIZE_ADDRESS__)
/* h2o 2.2.5 caches freed request-pool chunks and socket buffers in
 * per-thread recycle lists with no API to empty them (the pool's list is
 * static in libh2o). When a worker thread ends, LeakSanitizer sees those
 * cached chunks as leaks; everything h2o still uses is disposed before the
 * threads end (connections, contexts), so only the caches are left. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:h2o_mem_alloc_recycle\n"; }
#endif

static void on_server_closed(api_server_t *s, void *data) {
  (void)s;
  app_t *app = data;
  uv_close((uv_handle_t *)&app->sigterm, NULL);
  uv_close((uv_handle_t *)&app->sigint, NULL);
  /* Closing the watchers restores the default action; a repeated SIGTERM
   * during the last moments of shutdown must not turn exit 0 into a kill. */
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
}

static void on_signal(uv_signal_t *s, int signum) {
  app_t *app = s->data;
  if (app->stopping) return;
  app->stopping = 1;
  SC_INFO("received %s, shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  api_server_shutdown(app->srv, on_server_closed, app);
}

static size_t default_max_streams(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 10000;
  rlim_t n = rl.rlim_cur > FD_SAFETY_MARGIN + 16 ? rl.rlim_cur - FD_SAFETY_MARGIN : rl.rlim_cur / 2;
  if (n < 1) n = 1;
  if (n > MAX_STREAMS_CAP) n = MAX_STREAMS_CAP;
  return (size_t)n;
}

static int is_dir(const char *p) {
  struct stat st;
  return p != NULL && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int main(int argc, char **argv, char **envp) {
  char err[512];
  sc_conf_t *conf;
  sc_redis_addr_t addr;
  sc_log_level_t level;
  sc_log_format_t format;
  int code = sc_binconf_daemon(PROGRAM, "apiserver", specs, NSPECS, "listen", argc, argv, envp, &conf, &addr,
                               &level, &format);
  if (code != SC_BINCONF_RUN) return code;
  code = 1;
  int loop_inited = 0;
  app_t app;
  memset(&app, 0, sizeof app);
  const char *web_root = sc_conf_str(conf, "web_root");
  if (web_root == NULL) web_root = is_dir(STATECAST_WEB_INSTALL_DIR) ? STATECAST_WEB_INSTALL_DIR : STATECAST_WEB_SOURCE_DIR;

  sc_log_init("apiserver", level, format);
  signal(SIGPIPE, SIG_IGN);
  if (uv_loop_init(&app.loop) != 0) {
    fprintf(stderr, "%s: cannot create the event loop\n", PROGRAM);
    goto done;
  }
  loop_inited = 1;

  api_server_opts_t opts = {0};
  opts.listen = sc_conf_str(conf, "listen");
  opts.cors_origin = sc_conf_str(conf, "cors_origin");
  opts.web_root = is_dir(web_root) ? web_root : NULL;
  opts.redis = &addr;
  opts.heartbeat_ms = (unsigned)sc_conf_int(conf, "heartbeat_seconds") * 1000u;
  opts.retry_ms = (unsigned)sc_conf_int(conf, "retry_ms");
  opts.retry_jitter_percent = (unsigned)sc_conf_int(conf, "retry_jitter_percent");
  opts.heartbeat_min_ms = (unsigned)sc_conf_int(conf, "heartbeat_min_seconds") * 1000u;
  opts.heartbeat_max_ms = (unsigned)sc_conf_int(conf, "heartbeat_max_seconds") * 1000u;
  if (opts.heartbeat_min_ms > opts.heartbeat_max_ms) {
    fprintf(stderr, "%s: heartbeat_min_seconds is above heartbeat_max_seconds\n", PROGRAM);
    goto done;
  }
  opts.drain_ms = (unsigned)sc_conf_int(conf, "drain_seconds") * 1000u;
  long long ms = sc_conf_int(conf, "max_streams");
  opts.max_streams = ms > 0 ? (size_t)ms : default_max_streams();
  opts.max_stream_backlog_bytes = (size_t)sc_conf_int(conf, "max_stream_backlog_bytes");
  opts.stream_sndbuf_bytes = (size_t)sc_conf_int(conf, "stream_sndbuf_bytes");
  long long nw = sc_conf_int(conf, "workers");
  opts.workers = nw > 0 ? (unsigned)nw : uv_available_parallelism();
  if (opts.web_root == NULL) SC_WARN("web_root %s is not a directory; the web display is off", web_root);
  opts.streams_rate = (double)sc_conf_int(conf, "streams_rate_per_second");
  opts.streams_burst = (double)sc_conf_int(conf, "streams_burst");
  opts.publish_rate = (double)sc_conf_int(conf, "publish_rate_per_second");
  opts.publish_burst = (double)sc_conf_int(conf, "publish_burst");
  opts.publish_timeout_ms = (unsigned)sc_conf_int(conf, "publish_timeout_ms");
  opts.max_message_bytes = (size_t)sc_conf_int(conf, "max_message_bytes");
  opts.tls_cert_file = sc_conf_str(conf, "tls_cert_file");
  opts.tls_key_file = sc_conf_str(conf, "tls_key_file");
  opts.request_timeout_ms = (unsigned)sc_conf_int(conf, "request_timeout_seconds") * 1000u;
  api_auth_opts_t ao = {sc_conf_str(conf, "jwt_secret_file"), sc_conf_str(conf, "jwt_public_key_file"),
                        sc_conf_str(conf, "jwt_audience"), sc_conf_str(conf, "jwt_issuer"),
                        sc_conf_str(conf, "public_topics")};
  if (api_auth_new(&opts.auth, &ao, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", PROGRAM, err);
    goto done;
  }
  if (opts.auth != NULL)
    SC_INFO("subscriber auth on: %s tokens%s", api_auth_alg(opts.auth),
            api_auth_public(opts.auth)->n ? ", some topics public" : "");

  err[0] = '\0';
  int rc = api_server_new(&app.srv, &app.loop, &opts, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "%s: cannot start: %s %s\n", PROGRAM, sc_strerror(rc), err);
    goto done;
  }
  char where[256];
  sc_redis_addr_describe(&addr, where, sizeof where);
  SC_INFO("started: listening on port %d, %u workers, redis %s, max_streams %zu, web_root %s",
          api_server_port(app.srv), opts.workers, where, opts.max_streams, opts.web_root ? opts.web_root : "(none)");

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
  api_server_free(app.srv);
  sc_redis_addr_dispose(&addr);
  sc_conf_free(conf);
  return code;
}
