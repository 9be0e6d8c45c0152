/*
 * redis_uv: statecast's own hiredis <-> libuv adapter (internal to
 * libstatecast; used by redis.c).
 *
 * Replaces hiredis/adapters/libuv.h, which in hiredis 0.14 drops poll errors:
 * libuv 1.44 reports POLLERR as status UV_EBADF with events 0 (and stops the
 * handle), the shipped adapter returns early, so a failed connect is never
 * delivered to hiredis and a reconnect hangs forever. Do not include the
 * shipped header next to this one: it also defines a static on_close.
 */
#ifndef SC_REDIS_UV_H
#define SC_REDIS_UV_H

#include <uv.h>

struct redisAsyncContext;

/*
 * Watch ac's socket on loop: one uv_poll_t per context, driving
 * redisAsyncHandleRead/Write. Call it before redisAsyncSetConnectCallback
 * (setting that callback asks for a write event, which is lost without an
 * adapter). The adapter state belongs to the context: hiredis releases it
 * through ev.cleanup when the context goes away, and it is freed only in the
 * poll handle's close callback (keep running the loop). ac stays owned by
 * the caller / hiredis. Returns 0, SC_EINVAL (ac already has an adapter),
 * SC_ENOMEM or SC_EIO (uv_poll_init failed); on error nothing is attached.
 */
__attribute__((warn_unused_result)) int sc_redis_uv_attach(struct redisAsyncContext *ac, uv_loop_t *loop);

#endif
