/*
 * statecast-matrix: a reference LED-matrix display for statecast. Follows
 * topics over the apiserver's SSE stream and renders them on a simulated
 * LED matrix in the terminal (or as plain text lines with --plain).
 *
 *   statecast-matrix --url http://HOST:PORT [--topic PATTERN]... [--layout FILE]
 *                    [--plain] [--width PX] [--height PX] [--once] [--frames N]
 *
 * Exit codes: 0 done (signal, --once, --frames), 1 usage or configuration
 * error, 3 --once gave up (no synced stream within --timeout).
 * Plain argv parsing (not sc_conf): --topic repeats, which sc_conf does not do.
 */
#include "app.h"
#include "err.h"
#include "layout.h"
#include "log.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define PROGRAM "statecast-matrix"
#define MAX_TOPICS 32

typedef struct run {
  uv_loop_t *loop;
  mx_app_t *app;
  uv_signal_t sigint, sigterm;
  uv_timer_t deadline;
  uv_timer_t once_poll;
  int once;
  uint64_t frames;
  int exit_code;
  int stopping;
} run_t;

static void usage(FILE *f) {
  fputs("Usage: " PROGRAM " --url http://HOST:PORT [--topic PATTERN]... [--layout FILE] [--plain]\n"
        "                        [--width PX] [--height PX] [--once] [--frames N] [--timeout S]\n"
        "\n"
        "Follows statecast topics over the apiserver's SSE stream and shows them on a\n"
        "simulated LED matrix in the terminal.\n"
        "\n"
        "  --url URL        apiserver base URL (also STATECAST_MATRIX_URL)\n"
        "  --topic PATTERN  topic or pattern with '*' to follow; repeatable; none: all topics\n"
        "  --layout FILE    YAML layout (see docs/matrix-client.md); none: one line per topic\n"
        "  --plain          print the rendered text lines (one per row) whenever they change\n"
        "  --width PX       matrix width in pixels (default: layout's, else 64)\n"
        "  --height PX      matrix height in pixels (default: layout's, else 32)\n"
        "  --once           wait for the full state, print one frame, exit\n"
        "  --frames N       exit after N printed frames\n"
        "  --timeout S      with --once: give up after S seconds, exit 3 (default 10)\n"
        "  --read-timeout S reconnect when the stream is silent this long (default 45)\n"
        "  --log-level L    debug, info, warn or error (default warn)\n"
        "  --help           this text\n"
        "\n"
        "Exit codes: 0 ok, 1 usage/configuration error, 3 --once timed out.\n",
        f);
}

static void stop(run_t *r, int code) {
  if (r->stopping) return;
  r->stopping = 1;
  r->exit_code = code;
  uv_close((uv_handle_t *)&r->sigint, NULL);
  uv_close((uv_handle_t *)&r->sigterm, NULL);
  uv_close((uv_handle_t *)&r->deadline, NULL);
  uv_close((uv_handle_t *)&r->once_poll, NULL);
  mx_app_close(r->app, NULL);
}

static void on_signal(uv_signal_t *s, int sig) {
  (void)sig;
  stop(s->data, 0);
}

static void on_deadline(uv_timer_t *t) {
  run_t *r = t->data;
  mx_app_print(r->app); /* show how far it got */
  fprintf(stderr, PROGRAM ": no synced stream within the timeout\n");
  stop(r, 3);
}

static void on_frame(void *arg, mx_app_t *app, uint64_t frame) {
  (void)app;
  run_t *r = arg;
  if (r->frames && frame >= r->frames) stop(r, 0);
}

static void on_once_poll(uv_timer_t *t) {
  run_t *r = t->data;
  if (mx_app_status(r->app) != MX_STATUS_LIVE) return;
  mx_app_print(r->app);
  stop(r, 0);
}

static int parse_uint(const char *s, long max, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < 0 || v > max) return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"url", required_argument, NULL, 'u'},      {"topic", required_argument, NULL, 't'},
      {"layout", required_argument, NULL, 'l'},   {"plain", no_argument, NULL, 'p'},
      {"width", required_argument, NULL, 'W'},    {"height", required_argument, NULL, 'H'},
      {"once", no_argument, NULL, 'o'},           {"frames", required_argument, NULL, 'f'},
      {"timeout", required_argument, NULL, 'T'},  {"read-timeout", required_argument, NULL, 'R'},
      {"log-level", required_argument, NULL, 'L'}, {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *url = getenv("STATECAST_MATRIX_URL"), *layout_path = NULL;
  const char *topics[MAX_TOPICS];
  size_t ntopics = 0;
  long width = 0, height = 0, frames = 0, timeout_s = 10, read_timeout_s = 0;
  int plain = 0, once = 0, c;
  sc_log_level_t level = SC_LOG_WARN;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case 'u': url = optarg; break;
    case 't':
      if (ntopics == MAX_TOPICS) {
        fprintf(stderr, PROGRAM ": at most %d --topic patterns\n", MAX_TOPICS);
        return 1;
      }
      topics[ntopics++] = optarg;
      break;
    case 'l': layout_path = optarg; break;
    case 'p': plain = 1; break;
    case 'o': once = 1; break;
    case 'W':
    case 'H':
    case 'f':
    case 'T':
    case 'R': {
      long v;
      if (parse_uint(optarg, 1000000, &v) != 0 || ((c == 'W' || c == 'H') && (v < 1 || v > 1024))) {
        fprintf(stderr, PROGRAM ": bad value '%s' for an option\n", optarg);
        return 1;
      }
      *(c == 'W' ? &width : c == 'H' ? &height : c == 'f' ? &frames : c == 'T' ? &timeout_s : &read_timeout_s) = v;
      break;
    }
    case 'L':
      if (sc_log_parse_level(optarg, &level) != 0) {
        fprintf(stderr, PROGRAM ": bad --log-level '%s'\n", optarg);
        return 1;
      }
      break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, PROGRAM ": unexpected argument '%s'\n", argv[optind]);
    return 1;
  }
  if (!url) {
    fprintf(stderr, PROGRAM ": --url is required\n");
    usage(stderr);
    return 1;
  }
  sc_log_init("matrix", level, SC_LOG_PLAIN);
  signal(SIGPIPE, SIG_IGN);
  srand((unsigned)time(NULL) ^ (unsigned)getpid());

  mx_layout_t *layout = NULL;
  char err[300];
  if (layout_path && mx_layout_load(layout_path, &layout, err, sizeof err) != 0) {
    fprintf(stderr, PROGRAM ": layout: %s\n", err);
    return 1;
  }
  run_t r = {.loop = uv_default_loop(), .once = once, .frames = (uint64_t)frames};
  mx_app_opts_t o = {.url = url,
                     .topics = topics,
                     .ntopics = ntopics,
                     .layout = layout,
                     .width = (int)width,
                     .height = (int)height,
                     .plain = plain,
                     .out = stdout,
                     .manual = once,
                     .read_timeout_ms = (uint64_t)read_timeout_s * 1000,
                     .on_frame = on_frame,
                     .arg = &r};
  if (mx_app_new(&r.app, r.loop, &o, err, sizeof err) != 0) {
    fprintf(stderr, PROGRAM ": %s\n", err);
    mx_layout_free(layout);
    return 1;
  }
  uv_signal_init(r.loop, &r.sigint);
  uv_signal_init(r.loop, &r.sigterm);
  r.sigint.data = r.sigterm.data = &r;
  uv_signal_start(&r.sigint, on_signal, SIGINT);
  uv_signal_start(&r.sigterm, on_signal, SIGTERM);
  uv_timer_init(r.loop, &r.deadline);
  uv_timer_init(r.loop, &r.once_poll);
  r.deadline.data = r.once_poll.data = &r;
  if (once) {
    uv_timer_start(&r.deadline, on_deadline, (uint64_t)timeout_s * 1000, 0);
    uv_timer_start(&r.once_poll, on_once_poll, 20, 20);
  }
  uv_run(r.loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(r.loop);
  if (rc != 0) SC_WARN("loop closed with handles open: %s", uv_strerror(rc));
  mx_layout_free(layout);
  return r.exit_code;
}
