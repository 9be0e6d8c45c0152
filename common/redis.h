/*
 * redis: statecast's own hiredis <-> libuv glue and a connection that keeps
 * itself alive.
 *
 * Why not hiredis/adapters/libuv.h: in hiredis 0.14 it drops poll errors
 * (libuv 1.44 reports POLLERR as status UV_EBADF with events 0), so a failed
 * connect is never delivered and a reconnect hangs forever. Our adapter
 * passes the handle's requested events through on error instead.
 *
 * sc_redis_t is one async connection that
 *   - connects (AUTH user/password, SELECT db, CLIENT SETNAME), and on any
 *     failure reconnects with capped exponential backoff plus jitter;
 *   - times out commands itself (hiredis 0.14 has no timeouts): a command
 *     not answered within command_timeout_ms fails with SC_ETIMEOUT and the
 *     connection is dropped and re-made, since its replies can no longer be
 *     matched to requests;
 *   - re-issues its (P)SUBSCRIBEs after every reconnect; on_state(up=1) fires
 *     once the handshake (and the subscriptions, if any) are confirmed.
 * A connection that subscribes carries only subscriptions; use a second
 * sc_redis_t for commands.
 */
#ifndef SC_REDIS_H
#define SC_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct redisReply;

typedef struct sc_redis_addr {
  char *host;      /* NULL for a unix socket */
  int port;
  char *unix_path; /* NULL for TCP */
  char *user;      /* NULL: AUTH password only */
  char *password;  /* NULL: no AUTH */
  int db;
  /* Sentinel mode (both NULL: off). With sentinels set, host/port are
   * replaced on every connect attempt by what the sentinels say the primary
   * of master_name is, and the node must answer ROLE with "master". */
  char *sentinels;   /* "host:port,host:port" */
  char *master_name;
} sc_redis_addr_t;

/*
 * Parse redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]
 * (IPv6 hosts in brackets). Strings in *out are malloc'd; release them with
 * sc_redis_addr_dispose(). Returns 0 or SC_EURL with a reason in err.
 */
__attribute__((warn_unused_result)) int sc_redis_url_parse(const char *url, sc_redis_addr_t *out, char *err,
                                                          size_t errlen);
void sc_redis_addr_dispose(sc_redis_addr_t *addr);
/*
 * Turn on sentinel mode: copies sentinels ("host:port,...", checked) and
 * master_name (NULL: "statecast") into addr. sentinels NULL or "" leaves
 * addr unchanged and returns 0. Returns 0, SC_EINVAL (reason in err) or
 * SC_ENOMEM. A unix-socket addr cannot use sentinels (SC_EINVAL).
 */
__attribute__((warn_unused_result)) int sc_redis_addr_set_sentinels(sc_redis_addr_t *addr, const char *sentinels,
                                                                   const char *master_name, char *err,
                                                                   size_t errlen);
/* "host:port/db" or "unix:/path" without credentials, for logs. */
void sc_redis_addr_describe(const sc_redis_addr_t *addr, char *buf, size_t cap);

typedef struct sc_redis sc_redis_t;

/* Connection came up (1) or went down (0); why is a static or short-lived
 * text, borrowed for the call. */
typedef void (*sc_redis_state_cb)(sc_redis_t *r, int up, const char *why, void *data);
/*
 * A command's answer. status 0: reply is set (it may be a REDIS_REPLY_ERROR).
 * status SC_ETIMEOUT, SC_ECONN (connection lost before the answer) or
 * SC_ECLOSED (sc_redis_close): reply is NULL. reply is borrowed until the
 * callback returns. Fires exactly once for every command that returned 0.
 */
typedef void (*sc_redis_reply_cb)(sc_redis_t *r, int status, struct redisReply *reply, void *privdata);
/* A pub/sub message; pattern is NULL for a plain SUBSCRIBE. All borrowed for the call. */
typedef void (*sc_redis_message_cb)(sc_redis_t *r, const char *pattern, const char *channel, size_t channel_len,
                                    const char *msg, size_t msg_len, void *data);

typedef struct sc_redis_opts {
  const char *name;          /* label for logs and CLIENT SETNAME, e.g. "kvu-sub"; copied */
  int connect_timeout_ms;    /* 0: 2000 */
  int command_timeout_ms;    /* 0: 5000 */
  int backoff_min_ms;        /* 0: 100 */
  int backoff_max_ms;        /* 0: 5000 */
  sc_redis_state_cb on_state;     /* may be NULL */
  sc_redis_message_cb on_message; /* required if you subscribe */
  void *data;                     /* passed to the callbacks */
} sc_redis_opts_t;

/* Create and start connecting. addr and opts are copied. The connection
 * lives on loop until sc_redis_close(). Caller frees with sc_redis_close(). */
__attribute__((warn_unused_result)) int sc_redis_new(sc_redis_t **out, uv_loop_t *loop, const sc_redis_addr_t *addr,
                                                    const sc_redis_opts_t *opts);
/* Remember a subscription (pattern 1: PSUBSCRIBE) and send it now if up.
 * Call before any command on this connection. channel is copied. */
__attribute__((warn_unused_result)) int sc_redis_subscribe(sc_redis_t *r, const char *channel, int pattern);
/* Send a command (printf-style like redisAsyncCommand, or argv form). Returns
 * 0 (cb will fire exactly once) or SC_ECONN when not connected right now (cb
 * will not fire). Arguments are copied by hiredis before returning. */
__attribute__((warn_unused_result)) int sc_redis_command(sc_redis_t *r, sc_redis_reply_cb cb, void *privdata,
                                                        const char *fmt, ...);
__attribute__((warn_unused_result)) int sc_redis_command_argv(sc_redis_t *r, sc_redis_reply_cb cb, void *privdata,
                                                             int argc, const char **argv, const size_t *argvlen);
int sc_redis_is_up(const sc_redis_t *r);
/* Successful connects after the first one. */
uint64_t sc_redis_reconnects(const sc_redis_t *r);
/* Drop the current connection now and reconnect after backoff (used when a
 * caller sees something that makes the stream untrustworthy). */
void sc_redis_reset(sc_redis_t *r, const char *why);
/* Disconnect for good: pending commands get SC_ECLOSED (synchronously or on
 * a later loop turn), no callback of any kind fires after they have, and the
 * memory is freed once its libuv handles have closed (keep running the loop). */
void sc_redis_close(sc_redis_t *r);

#endif
