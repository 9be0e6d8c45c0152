/*
 * redis_uv: the hiredis <-> libuv adapter (see redis_uv.h).
 *
 * One uv_poll_t per redisAsyncContext. It differs from
 * hiredis/adapters/libuv.h in one point that matters: when libuv reports a
 * poll error (status != 0, events 0, handle stopped) we hand hiredis the
 * events it asked for, so it reads or writes, sees the socket error and runs
 * its connect/disconnect path. Without that a refused connect is never
 * noticed and reconnecting hangs. It also frees its state when uv_poll_init
 * fails (the 0.14 adapter leaks it).
 *
 * Ownership: the uvglue_t belongs to the context's ev.data. hiredis calls
 * ev.cleanup when it is done with the fd; from then on the glue forgets the
 * context and closes the poll handle, and the struct is freed only in
 * on_poll_closed.
 */
#include "redis_uv.h"

#include "err.h"

#include <hiredis/async.h>
#include <stdlib.h>

typedef struct uvglue {
  redisAsyncContext *ac; /* borrowed; NULL once hiredis called cleanup */
  uv_poll_t poll;
  int events;  /* UV_READABLE | UV_WRITABLE that hiredis asked for */
  int closing; /* uv_close called; the struct is freed only in on_poll_closed */
} uvglue_t;

static void on_poll(uv_poll_t *handle, int status, int events) {
  uvglue_t *g = handle->data;
  /* libuv 1.44 reports POLLERR as status UV_EBADF with events 0 (and stops
   * the handle): let hiredis do what it wanted so it sees the socket error. */
  if (status != 0) events = g->events;
  if (g->ac != NULL && (events & UV_READABLE)) redisAsyncHandleRead(g->ac);
  if (g->ac != NULL && (events & UV_WRITABLE)) redisAsyncHandleWrite(g->ac);
}

static void glue_set(uvglue_t *g, int events) {
  if (g->closing) return;
  g->events = events;
  if (events != 0) uv_poll_start(&g->poll, events, on_poll);
  else uv_poll_stop(&g->poll);
}

static void glue_add_read(void *privdata) {
  uvglue_t *g = privdata;
  glue_set(g, g->events | UV_READABLE);
}

static void glue_del_read(void *privdata) {
  uvglue_t *g = privdata;
  glue_set(g, g->events & ~UV_READABLE);
}

static void glue_add_write(void *privdata) {
  uvglue_t *g = privdata;
  glue_set(g, g->events | UV_WRITABLE);
}

static void glue_del_write(void *privdata) {
  uvglue_t *g = privdata;
  glue_set(g, g->events & ~UV_WRITABLE);
}

static void on_poll_closed(uv_handle_t *handle) { free(handle->data); }

/* hiredis is done with the fd. May be called more than once; the context
 * may be gone right after, so forget it. */
static void glue_cleanup(void *privdata) {
  uvglue_t *g = privdata;
  g->ac = NULL;
  if (g->closing) return;
  g->closing = 1;
  uv_close((uv_handle_t *)&g->poll, on_poll_closed);
}

int sc_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  if (ac->ev.data != NULL) return SC_EINVAL;
  uvglue_t *g = calloc(1, sizeof *g);
  if (g == NULL) return SC_ENOMEM;
  if (uv_poll_init(loop, &g->poll, ac->c.fd) != 0) {
    free(g); /* never registered with the loop, so no uv_close needed */
    return SC_EIO;
  }
  g->poll.data = g;
  g->ac = ac;
  ac->ev.addRead = glue_add_read;
  ac->ev.delRead = glue_del_read;
  ac->ev.addWrite = glue_add_write;
  ac->ev.delWrite = glue_del_write;
  ac->ev.cleanup = glue_cleanup;
  ac->ev.data = g;
  return 0;
}
