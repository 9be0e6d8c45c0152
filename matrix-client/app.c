/*
 * app: the SSE client feeding the state, the state feeding the renderer
 * (see app.h).
 */
#include "app.h"

#include "err.h"
#include "log.h"
#include "sse_client.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_LINES 256
#define PAGE_MS 5000

struct mx_app {
  uv_loop_t *loop; /* borrowed */
  mx_app_opts_t o;
  mx_sse_client_t *sse; /* owned; freed by its close */
  mx_state_t state;
  mx_canvas_t canvas;
  mx_line_t *lines; /* owned, MAX_LINES */
  uv_timer_t frame_timer;
  int timer_on;
  uint64_t tick;
  uint64_t frames;
  unsigned printed_version; /* plain mode: what was printed last */
  mx_status_t printed_status;
  int printed_any;
  int ever_synced;
  mx_sse_state_t sse_state;
  char why[64];       /* last reason the stream went down */
  uint64_t stale_since; /* uv_now() when it did */
  char url[256];
  unsigned pending_closes;
  mx_app_closed_cb closed_cb;
};

static void on_sse_event_state(void *arg, mx_sse_state_t st, const char *why);
static int on_sse_event(void *arg, const mx_sse_event_t *ev);
static void on_frame_timer(uv_timer_t *t);
static void on_sse_closed(void *arg);
static void on_timer_closed(uv_handle_t *h);

int mx_events_path(const char *base_path, const char *const *topics, size_t n, char *out, size_t cap) {
  size_t k = 0;
  size_t blen = strcspn(base_path, "?");
  while (blen > 0 && base_path[blen - 1] == '/') blen--;
  int w = snprintf(out, cap, "%.*s/events", (int)blen, base_path);
  if (w < 0 || (size_t)w >= cap) return SC_EINVAL;
  k = (size_t)w;
  for (size_t i = 0; i < n; i++) {
    const char *pre = i == 0 ? "?topic=" : "&topic=";
    if (k + strlen(pre) + 3 * strlen(topics[i]) + 1 > cap) return SC_EINVAL;
    memcpy(out + k, pre, strlen(pre));
    k += strlen(pre);
    for (const unsigned char *p = (const unsigned char *)topics[i]; *p; p++) {
      if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~*/:@", *p))
        out[k++] = (char)*p;
      else
        k += (size_t)sprintf(out + k, "%%%02X", *p);
    }
  }
  out[k] = '\0';
  return 0;
}

mx_status_t mx_app_status(const mx_app_t *a) {
  if (a->sse_state == MX_SSE_LIVE && a->state.synced) return MX_STATUS_LIVE;
  return a->ever_synced ? MX_STATUS_STALE : MX_STATUS_CONNECTING;
}

const mx_state_t *mx_app_state(const mx_app_t *a) { return &a->state; }
const char *mx_app_last_id(const mx_app_t *a) { return a->sse ? mx_sse_client_last_id(a->sse) : ""; }
unsigned mx_app_connects(const mx_app_t *a) { return a->sse ? mx_sse_client_connects(a->sse) : 0; }

size_t mx_app_lines(const mx_app_t *a, mx_line_t *lines, size_t max) {
  return a->o.layout ? mx_layout_eval(a->o.layout, &a->state, lines, max) : mx_default_eval(&a->state, lines, max);
}

static void print_plain(mx_app_t *a) {
  FILE *f = a->o.out;
  mx_status_t st = mx_app_status(a);
  size_t n = mx_app_lines(a, a->lines, MAX_LINES);
  if (st == MX_STATUS_CONNECTING) fprintf(f, "[connecting]\n");
  else if (st == MX_STATUS_STALE) fprintf(f, "[stale] %s\n", a->why);
  for (size_t i = 0; i < n; i++) fprintf(f, "%s\n", a->lines[i].text);
  fputc('\n', f);
  fflush(f);
}

static void print_pixels(mx_app_t *a) {
  FILE *f = a->o.out;
  mx_status_t st = mx_app_status(a);
  size_t n = mx_app_lines(a, a->lines, MAX_LINES);
  size_t per_page = (size_t)(a->canvas.h / MX_ROW_H);
  if (per_page == 0) per_page = 1;
  size_t pages = (n + per_page - 1) / per_page;
  size_t first = 0;
  if (pages > 1) first = (size_t)((uv_now(a->loop) / PAGE_MS) % pages) * per_page;
  mx_render(&a->canvas, a->lines + first, n - first, a->tick, st);
  char status[512];
  if (st == MX_STATUS_LIVE)
    snprintf(status, sizeof status, "\033[38;5;46m\u25cf live\033[0m  %s  %zu topic%s  page %zu/%zu", a->url,
             a->state.n, a->state.n == 1 ? "" : "s", pages ? first / per_page + 1 : 0, pages);
  else if (st == MX_STATUS_CONNECTING)
    snprintf(status, sizeof status, "\033[38;5;226m\u25cc connecting\033[0m to %s %s", a->url, a->why);
  else
    snprintf(status, sizeof status, "\033[38;5;196m\u2716 stale\033[0m for %llus: %s (showing the last known state)",
             (unsigned long long)((uv_now(a->loop) - a->stale_since) / 1000), a->why);
  if (!a->o.manual) fputs("\033[H", f); /* redraw in place */
  mx_canvas_print_ansi(&a->canvas, status, f);
  fflush(f);
}

void mx_app_print(mx_app_t *a) {
  if (!a->o.out) return;
  if (a->o.plain) {
    print_plain(a);
  } else {
    print_pixels(a);
  }
  a->printed_version = a->state.version;
  a->printed_status = mx_app_status(a);
  a->printed_any = 1;
  a->frames++;
  if (a->o.on_frame) a->o.on_frame(a->o.arg, a, a->frames);
}

/* Plain mode prints on change only. */
static void maybe_print_plain(mx_app_t *a) {
  if (!a->o.out || !a->o.plain || a->o.manual) return;
  if (a->printed_any && a->printed_version == a->state.version && a->printed_status == mx_app_status(a)) return;
  mx_app_print(a);
}

static void on_sse_event_state(void *arg, mx_sse_state_t st, const char *why) {
  mx_app_t *a = arg;
  mx_sse_state_t old = a->sse_state;
  a->sse_state = st;
  if (st == MX_SSE_LIVE) mx_state_begin(&a->state);
  if (st == MX_SSE_STALE) {
    snprintf(a->why, sizeof a->why, "%s", why);
    if (old == MX_SSE_LIVE || a->stale_since == 0) a->stale_since = uv_now(a->loop);
    SC_INFO("stream down: %s", why);
  }
  if (st == MX_SSE_LIVE) SC_INFO("stream open; last id '%s'", mx_sse_client_last_id(a->sse));
  maybe_print_plain(a);
}

static int on_sse_event(void *arg, const mx_sse_event_t *ev) {
  mx_app_t *a = arg;
  int rc = mx_state_event(&a->state, ev->type, ev->data, ev->data_len);
  if (rc == SC_EJSON) SC_WARN("ignored a malformed '%s' event", ev->type);
  if (rc == SC_ENOMEM) SC_ERROR("out of memory applying an event");
  if (a->state.synced) {
    a->ever_synced = 1;
    maybe_print_plain(a);
  }
  return 0;
}

static void on_frame_timer(uv_timer_t *t) {
  mx_app_t *a = t->data;
  a->tick++;
  mx_app_print(a);
}

int mx_app_new(mx_app_t **out, uv_loop_t *loop, const mx_app_opts_t *opts, char *err, size_t errlen) {
  *out = NULL;
  char host[200], base[256], path[4096];
  int port;
  if (!opts->url || mx_url_parse(opts->url, host, sizeof host, &port, base, sizeof base) != 0) {
    snprintf(err, errlen, "bad --url '%s': want http://HOST:PORT", opts->url ? opts->url : "");
    return SC_EINVAL;
  }
  if (mx_events_path(base, opts->topics, opts->ntopics, path, sizeof path) != 0) {
    snprintf(err, errlen, "too many or too long --topic patterns");
    return SC_EINVAL;
  }
  mx_app_t *a = calloc(1, sizeof *a);
  if (!a) goto nomem;
  a->loop = loop;
  a->o = *opts;
  snprintf(a->url, sizeof a->url, "%s", opts->url);
  mx_state_init(&a->state);
  int w = opts->width ? opts->width : opts->layout && opts->layout->width ? opts->layout->width : 64;
  int h = opts->height ? opts->height : opts->layout && opts->layout->height ? opts->layout->height : 32;
  if (mx_canvas_init(&a->canvas, w, h) != 0) {
    snprintf(err, errlen, "bad matrix size %dx%d (1..1024 each)", w, h);
    free(a);
    return SC_EINVAL;
  }
  a->lines = calloc(MAX_LINES, sizeof *a->lines);
  if (!a->lines) goto nomem_a;
  mx_sse_client_opts_t so = {.host = host,
                             .port = port,
                             .path = path,
                             .read_timeout_ms = opts->read_timeout_ms,
                             .retry_base_ms = opts->retry_base_ms,
                             .on_event = on_sse_event,
                             .on_state = on_sse_event_state,
                             .arg = a};
  a->sse_state = MX_SSE_CONNECTING;
  if (mx_sse_client_new(&a->sse, loop, &so) != 0) goto nomem_a;
  uv_timer_init(loop, &a->frame_timer);
  a->frame_timer.data = a;
  a->pending_closes = 2; /* the SSE client and the frame timer */
  if (opts->out && !opts->plain && !opts->manual) {
    uint64_t ms = opts->frame_ms ? opts->frame_ms : 50;
    fputs("\033[2J\033[?25l", opts->out); /* clear, hide the cursor */
    uv_timer_start(&a->frame_timer, on_frame_timer, 0, ms);
    a->timer_on = 1;
  }
  *out = a;
  if (opts->out && opts->plain) maybe_print_plain(a);
  return 0;
nomem_a:
  free(a->lines);
  mx_canvas_dispose(&a->canvas);
  mx_state_dispose(&a->state);
  free(a);
nomem:
  snprintf(err, errlen, "out of memory");
  return SC_ENOMEM;
}

static void finish(mx_app_t *a) {
  if (--a->pending_closes) return;
  mx_app_closed_cb cb = a->closed_cb;
  void *arg = a->o.arg;
  if (a->timer_on) {
    fputs("\033[?25h", a->o.out); /* show the cursor again */
    fflush(a->o.out);
  }
  free(a->lines);
  mx_canvas_dispose(&a->canvas);
  mx_state_dispose(&a->state);
  free(a);
  if (cb) cb(arg);
}

static void on_sse_closed(void *arg) {
  mx_app_t *a = arg;
  a->sse = NULL;
  finish(a);
}

static void on_timer_closed(uv_handle_t *h) { finish(h->data); }

void mx_app_close(mx_app_t *a, mx_app_closed_cb closed_cb) {
  a->closed_cb = closed_cb;
  a->o.on_frame = NULL;
  mx_sse_client_close(a->sse, on_sse_closed);
  uv_close((uv_handle_t *)&a->frame_timer, on_timer_closed);
}
