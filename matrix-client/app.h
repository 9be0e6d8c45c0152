/*
 * app: statecast-matrix without main(): one SSE client, the topic state and
 * the renderer wired together on a caller's loop. Tests drive it in
 * process; main.c only parses flags and runs it.
 *
 * Status: CONNECTING until the first sync of the first connection, LIVE
 * while a synced stream is up, STALE from a lost connection until the next
 * connection's sync (the old picture stays on screen, marked stale).
 */
#ifndef MX_APP_H
#define MX_APP_H

#include "layout.h"
#include "render.h"
#include "state.h"

#include <stdint.h>
#include <stdio.h>

typedef struct uv_loop_s uv_loop_t;
typedef struct mx_app mx_app_t;

/* Called after each printed frame with its number (1, 2, ...). */
typedef void (*mx_app_frame_cb)(void *arg, mx_app_t *app, uint64_t frame);
typedef void (*mx_app_closed_cb)(void *arg);

typedef struct mx_app_opts {
  const char *url;            /* borrowed during mx_app_new: http://HOST:PORT[/prefix] */
  const char *const *topics;  /* borrowed during mx_app_new: patterns, may be NULL */
  size_t ntopics;
  const mx_layout_t *layout;  /* borrowed for the app's life; NULL: one line per topic */
  int width, height;          /* pixels; 0: layout's, else 64 x 32 */
  int plain;                  /* print text lines when something changed instead of pixels */
  FILE *out;                  /* borrowed; NULL: render nothing (tests read the state) */
  int manual;                 /* print only when mx_app_print() is called (--once) */
  uint64_t frame_ms;          /* pixel mode frame interval; 0: 50 */
  uint64_t read_timeout_ms;   /* see mx_sse_client_opts; 0: default */
  uint64_t retry_base_ms;     /* 0: default */
  mx_app_frame_cb on_frame;   /* may be NULL */
  void *arg;                  /* borrowed */
} mx_app_opts_t;

/* 0 and *out (release with mx_app_close()), or SC_EINVAL / SC_ENOMEM with
 * a reason in err. Starts connecting at once. */
__attribute__((warn_unused_result)) int mx_app_new(mx_app_t **out, uv_loop_t *loop, const mx_app_opts_t *opts,
                                                   char *err, size_t errlen);
/* Close everything; closed_cb (may be NULL) runs from the loop when all
 * handles are closed, the app is freed after it. */
void mx_app_close(mx_app_t *a, mx_app_closed_cb closed_cb);

mx_status_t mx_app_status(const mx_app_t *a);
const mx_state_t *mx_app_state(const mx_app_t *a); /* borrowed from a */
const char *mx_app_last_id(const mx_app_t *a);      /* borrowed from a */
unsigned mx_app_connects(const mx_app_t *a);        /* connections that reached LIVE */
/* The lines the matrix shows now (layout or default); returns the count. */
size_t mx_app_lines(const mx_app_t *a, mx_line_t *lines, size_t max);
/* Print the current frame now, in the app's mode. */
void mx_app_print(mx_app_t *a);

/* Build "/events?topic=..." under base_path (URL-encoding the patterns) into
 * out. 0 or SC_EINVAL when it does not fit. */
__attribute__((warn_unused_result)) int mx_events_path(const char *base_path, const char *const *topics, size_t n,
                                                       char *out, size_t cap);

#endif
