/*
 * redis: statecast's Redis connection on a libuv loop (see redis.h).
 *
 * Two neighbours do the rest of redis.h: redis_addr.c parses and describes
 * addresses (pure), and redis_uv.c is our hiredis <-> libuv adapter (it
 * fixes the POLLERR bug of the one hiredis 0.14 ships; see redis_uv.h).
 *
 * This file is sc_redis_t: a state machine
 *   DISCONNECTED -> CONNECTING -> HANDSHAKE -> UP -> DISCONNECTED ...
 *   any state -> CLOSING (sc_redis_close, terminal)
 * with three uv timers: conn_timer (connect + handshake deadline, and a
 * "fail on the next loop turn" when we must not free the context from
 * inside a hiredis callback), retry_timer (backoff) and cmd_timer (the
 * deadline of the oldest pending command; replies arrive in order, so
 * one timer over a FIFO is enough).
 *
 * Ownership of hiredis callbacks: every command we queue carries a req_t as
 * privdata. hiredis calls the callback exactly once per accepted command
 * (with the reply, or NULL when the context goes away), and that call frees
 * the req_t. The user's callback may have fired earlier (timeout, disconnect,
 * close); then req->done is set and the late call only frees the record.
 * Subscriptions carry a sub_t owned by the sc_redis_t.
 *
 * Reentrancy rules: we never free a context from inside its connect or
 * disconnect callback; from inside a reply callback redisAsyncFree() is
 * deferred by hiredis until the callback returns. We always forget r->ac
 * before a context starts going away, so callbacks for an old context are
 * recognised (ac != r->ac) and ignored. After any user callback we check for
 * CLOSING, because the user may have called sc_redis_close() in it; r itself
 * is only freed from the last timer close callback, never on a stack that
 * still uses it.
 */
#include "redis.h"

#include "err.h"
#include "log.h"
#include "redis_uv.h"
#include "sentinel.h"

#include <assert.h>
#include <ctype.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef enum { ST_DISCONNECTED, ST_CONNECTING, ST_HANDSHAKE, ST_UP, ST_CLOSING } conn_state_t;

typedef struct req {
  struct req *prev, *next; /* in r->pending while the user waits (user requests only) */
  sc_redis_t *r;           /* borrowed: r outlives every context it created */
  sc_redis_reply_cb cb;    /* NULL for handshake commands */
  int role_check;          /* handshake ROLE: the reply must say "master" */
  void *privdata;          /* the user's, passed back untouched */
  uint64_t deadline;       /* uv_now() ms */
  int done;                /* the user has been answered; hiredis still owns the record */
} req_t;

typedef struct sub {
  struct sub *next;
  sc_redis_t *r;   /* borrowed: the owner */
  char *channel;   /* owned */
  int pattern;
  uint64_t gen;    /* connection generation of the last confirmation */
} sub_t;

struct sc_redis {
  uv_loop_t *loop;        /* borrowed, outlives r */
  sc_redis_addr_t addr;   /* owned copy */
  sc_redis_opts_t opts;   /* copy; opts.name points at name */
  char *name;             /* owned, sanitised for CLIENT SETNAME */
  char desc[300];         /* addr without credentials, for logs */
  conn_state_t state;
  redisAsyncContext *ac;  /* owned by hiredis; NULL whenever not the live context */
  uint64_t gen;           /* bumped per connect attempt */
  int hs_pending;         /* handshake replies still expected */
  int subs_pending;       /* subscription confirmations still expected */
  int ever_up;
  _Atomic uint64_t reconnects; /* read by other threads (metrics) */
  unsigned attempt;       /* failed attempts since the last UP, drives backoff */
  uint64_t rng;
  const char *fail_why;   /* static text for the deferred failure on conn_timer */
  char why[256];          /* last failure text, borrowed by on_state */
  struct {
    req_t *head, *tail;
  } pending;              /* user requests, oldest first */
  sub_t *subs;            /* owned list */
  uv_timer_t conn_timer, retry_timer, cmd_timer;
  int timers_open;        /* handles not yet closed; r is freed when 0 after close */
};

static void on_connect(const redisAsyncContext *ac, int status);
static void on_disconnect(const redisAsyncContext *ac, int status);
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata);
static void on_conn_timer(uv_timer_t *t);
static void on_retry_timer(uv_timer_t *t);
static void on_cmd_timer(uv_timer_t *t);
static void on_timer_closed(uv_handle_t *h);

static void start_connect(sc_redis_t *r);

static uint64_t next_rand(sc_redis_t *r) {
  /* xorshift64: jitter only, no need for quality. */
  uint64_t x = r->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  r->rng = x;
  return x;
}

/* Backoff min*2^attempt capped at max, with "equal jitter" (half fixed,
 * half random) so retries never become a tight loop. */
static uint64_t backoff_ms(sc_redis_t *r) {
  uint64_t d = (uint64_t)r->opts.backoff_min_ms, max = (uint64_t)r->opts.backoff_max_ms;
  for (unsigned i = 0; i < r->attempt && d < max; i++) d *= 2;
  if (d > max) d = max;
  uint64_t half = d / 2;
  return d - half + (half > 0 ? next_rand(r) % (half + 1) : 0);
}

static void pending_unlink(sc_redis_t *r, req_t *q) {
  if (q->prev != NULL) q->prev->next = q->next;
  else r->pending.head = q->next;
  if (q->next != NULL) q->next->prev = q->prev;
  else r->pending.tail = q->prev;
  q->prev = q->next = NULL;
}

/* Answers every pending user request with status, oldest first. The user
 * may call anything from the callback, including sc_redis_close(). */
static void fail_pending(sc_redis_t *r, int status) {
  req_t *q;
  while ((q = r->pending.head) != NULL) {
    pending_unlink(r, q);
    q->done = 1;
    q->cb(r, status, NULL, q->privdata);
  }
}

static void schedule_retry(sc_redis_t *r) {
  uint64_t d = backoff_ms(r);
  r->attempt++;
  uv_timer_start(&r->retry_timer, on_retry_timer, d, 0);
}

/* The live context is gone (r->ac already NULL): report and retry. */
static void go_down(sc_redis_t *r, const char *why) {
  if (r->state == ST_CLOSING) return;
  int was_up = r->state == ST_UP;
  r->state = ST_DISCONNECTED;
  uv_timer_stop(&r->conn_timer);
  uv_timer_stop(&r->cmd_timer);
  if (why != r->why) snprintf(r->why, sizeof r->why, "%s", why);
  SC_WARN("redis %s (%s): %s: %s", r->name, r->desc, was_up ? "connection lost" : "connect failed", r->why);
  fail_pending(r, SC_ECONN);
  if (r->state == ST_CLOSING) return;
  if (was_up && r->opts.on_state != NULL) {
    r->opts.on_state(r, 0, r->why, r->opts.data);
    if (r->state == ST_CLOSING) return;
  }
  if (r->ac == NULL && !uv_is_active((uv_handle_t *)&r->retry_timer)) schedule_retry(r);
}

/* hiredis is already tearing the context down: forget it, do not free it. */
static void conn_lost(sc_redis_t *r, const redisAsyncContext *ac) {
  char why[200];
  /* In the connect callback only c.err is set yet; hiredis copies it to
   * ac->err later. */
  if (ac->c.err != 0) snprintf(why, sizeof why, "%s", ac->c.errstr);
  else if (ac->err != 0 && ac->errstr != NULL) snprintf(why, sizeof why, "%s", ac->errstr);
  else snprintf(why, sizeof why, "connection closed");
  r->ac = NULL;
  go_down(r, why);
}

/* We tear the live context down. From a timer this frees it now; from inside
 * one of its reply callbacks hiredis defers the free until that returns. */
static void drop(sc_redis_t *r, const char *why) {
  redisAsyncContext *ac = r->ac;
  r->ac = NULL;
  go_down(r, why);
  if (ac != NULL) redisAsyncFree(ac);
}

/* Fail on the next loop turn: used where freeing the context now would pull
 * it out from under hiredis (its connect callback). */
static void fail_soon(sc_redis_t *r, const char *why) {
  r->fail_why = why;
  uv_timer_start(&r->conn_timer, on_conn_timer, 0, 0);
}

static void maybe_up(sc_redis_t *r) {
  if (r->state != ST_HANDSHAKE || r->hs_pending > 0 || r->subs_pending > 0) return;
  assert(r->ac != NULL);
  r->state = ST_UP;
  uv_timer_stop(&r->conn_timer);
  r->attempt = 0;
  if (r->ever_up) atomic_fetch_add_explicit(&r->reconnects, 1, memory_order_relaxed);
  r->ever_up = 1;
  SC_INFO("redis %s (%s): connected", r->name, r->desc);
  if (r->opts.on_state != NULL) r->opts.on_state(r, 1, "connected", r->opts.data);
}

static int send_sub(sc_redis_t *r, sub_t *s) {
  const char *argv[2] = {s->pattern ? "PSUBSCRIBE" : "SUBSCRIBE", s->channel};
  if (redisAsyncCommandArgv(r->ac, on_sub_reply, s, 2, argv, NULL) != REDIS_OK) return SC_ECONN;
  return 0;
}

/* Queues an internal handshake command; its reply goes to on_reply. */
static int send_hs(sc_redis_t *r, int argc, const char **argv) {
  req_t *q = calloc(1, sizeof *q);
  if (q == NULL) return SC_ENOMEM;
  q->r = r;
  q->role_check = argc == 1 && strcmp(argv[0], "ROLE") == 0;
  if (redisAsyncCommandArgv(r->ac, on_reply, q, argc, argv, NULL) != REDIS_OK) {
    free(q);
    return SC_ECONN;
  }
  r->hs_pending++;
  return 0;
}

/* Sentinel mode: point r->addr at the primary the sentinels name now. */
static int discover(sc_redis_t *r) {
  char *host = NULL;
  int port = 0;
  char err[200];
  int tmo = r->opts.connect_timeout_ms < 1000 ? r->opts.connect_timeout_ms : 1000;
  int rc = sc_sentinel_resolve(r->addr.sentinels, r->addr.master_name, tmo, &host, &port, err, sizeof err);
  if (rc != 0) {
    snprintf(r->why, sizeof r->why, "sentinel discovery: %s", err);
    return rc;
  }
  if (r->addr.host == NULL || strcmp(r->addr.host, host) != 0 || r->addr.port != port)
    SC_INFO("redis %s: sentinels name %s:%d as the primary of '%s'", r->name, host, port, r->addr.master_name);
  free(r->addr.host);
  r->addr.host = host;
  r->addr.port = port;
  char d[280];
  sc_redis_addr_describe(&r->addr, d, sizeof d);
  snprintf(r->desc, sizeof r->desc, "%.200s, master '%.64s'", d, r->addr.master_name);
  return 0;
}

static void start_connect(sc_redis_t *r) {
  assert(r->state == ST_DISCONNECTED && r->ac == NULL);
  const char *why = NULL;
  if (r->addr.sentinels != NULL && discover(r) != 0) {
    r->gen++;
    r->state = ST_CONNECTING;
    why = r->why;
    go_down(r, why);
    return;
  }
  redisAsyncContext *ac =
      r->addr.unix_path != NULL ? redisAsyncConnectUnix(r->addr.unix_path) : redisAsyncConnect(r->addr.host, r->addr.port);
  r->gen++;
  r->state = ST_CONNECTING;
  if (ac == NULL) {
    why = "out of memory";
    goto fail;
  }
  if (ac->err != 0) {
    snprintf(r->why, sizeof r->why, "%s", ac->errstr);
    why = r->why;
    redisAsyncFree(ac);
    goto fail;
  }
  if (sc_redis_uv_attach(ac, r->loop) != 0) {
    why = "could not watch the socket";
    redisAsyncFree(ac);
    goto fail;
  }
  ac->data = r;
  /* Attach before setting the connect callback: setting it asks for a write
   * event, which is lost without an adapter. */
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  r->ac = ac;
  r->fail_why = NULL;
  uv_timer_start(&r->conn_timer, on_conn_timer, (uint64_t)r->opts.connect_timeout_ms, 0);
  return;
fail:
  go_down(r, why);
}

static void on_retry_timer(uv_timer_t *t) {
  sc_redis_t *r = t->data;
  if (r->state == ST_DISCONNECTED && r->ac == NULL) start_connect(r);
}

static void on_connect(const redisAsyncContext *cac, int status) {
  sc_redis_t *r = cac->data;
  if (cac != r->ac) return;
  if (status != REDIS_OK) {
    conn_lost(r, cac); /* hiredis frees the context after we return */
    return;
  }
  assert(r->state == ST_CONNECTING);
  r->state = ST_HANDSHAKE;
  r->hs_pending = 0;
  r->subs_pending = 0;
  int rc = 0;
  if (r->addr.password != NULL) {
    const char *argv[3] = {"AUTH", r->addr.user != NULL ? r->addr.user : r->addr.password, r->addr.password};
    rc = send_hs(r, r->addr.user != NULL ? 3 : 2, argv);
  }
  if (rc == 0 && r->addr.db != 0) {
    char db[16];
    snprintf(db, sizeof db, "%d", r->addr.db);
    const char *argv[2] = {"SELECT", db};
    rc = send_hs(r, 2, argv);
  }
  /* A sentinel may still name the old primary right after a failover. */
  if (rc == 0 && r->addr.sentinels != NULL) {
    const char *argv[1] = {"ROLE"};
    rc = send_hs(r, 1, argv);
  }
  /* Always at least this one, so UP is only ever declared from a reply
   * callback, where user code may safely reset or close. */
  if (rc == 0) {
    const char *argv[3] = {"CLIENT", "SETNAME", r->name};
    rc = send_hs(r, 3, argv);
  }
  for (sub_t *s = r->subs; rc == 0 && s != NULL; s = s->next) {
    rc = send_sub(r, s);
    if (rc == 0) r->subs_pending++;
  }
  if (rc != 0) fail_soon(r, "could not queue the handshake");
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  (void)status;
  sc_redis_t *r = ac->data;
  if (ac == r->ac) conn_lost(r, ac);
}

static void on_conn_timer(uv_timer_t *t) {
  sc_redis_t *r = t->data;
  if (r->ac == NULL) return;
  const char *why = r->fail_why;
  if (why == NULL) why = r->state == ST_CONNECTING ? "connect timed out" : "handshake timed out";
  r->fail_why = NULL;
  drop(r, why);
}

static void on_reply(redisAsyncContext *ac, void *vreply, void *privdata) {
  redisReply *reply = vreply;
  req_t *q = privdata;
  sc_redis_t *r = q->r;
  if (q->done) goto out;
  if (reply == NULL && ac == r->ac) conn_lost(r, ac); /* answers q too if it is a user request */
  if (q->done) goto out;
  if (q->cb == NULL) {
    /* handshake command */
    q->done = 1;
    if (reply == NULL || ac != r->ac || r->state != ST_HANDSHAKE) goto out;
    if (reply->type == REDIS_REPLY_ERROR) {
      snprintf(r->why, sizeof r->why, "handshake failed: %s", reply->str);
      drop(r, r->why);
      goto out;
    }
    if (q->role_check && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
                          reply->element[0]->type != REDIS_REPLY_STRING ||
                          strcmp(reply->element[0]->str, "master") != 0)) {
      snprintf(r->why, sizeof r->why, "%.200s is not the master (ROLE), asking the sentinels again", r->desc);
      drop(r, r->why);
      goto out;
    }
    r->hs_pending--;
    maybe_up(r);
    goto out;
  }
  pending_unlink(r, q);
  q->done = 1;
  q->cb(r, reply != NULL ? 0 : (r->state == ST_CLOSING ? SC_ECLOSED : SC_ECONN), reply, q->privdata);
out:
  free(q);
}

static void on_sub_reply(redisAsyncContext *ac, void *vreply, void *privdata) {
  redisReply *reply = vreply;
  sub_t *s = privdata;
  sc_redis_t *r = s->r;
  if (ac != r->ac) return;
  if (reply == NULL) {
    conn_lost(r, ac);
    return;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 || reply->element[0]->type != REDIS_REPLY_STRING)
    return;
  const char *kind = reply->element[0]->str;
  redisReply **el = reply->element;
  if (strcasecmp(kind, "message") == 0) {
    if (r->opts.on_message != NULL && el[1]->type == REDIS_REPLY_STRING && el[2]->type == REDIS_REPLY_STRING)
      r->opts.on_message(r, NULL, el[1]->str, el[1]->len, el[2]->str, el[2]->len, r->opts.data);
  } else if (strcasecmp(kind, "pmessage") == 0) {
    if (r->opts.on_message != NULL && reply->elements >= 4 && el[1]->type == REDIS_REPLY_STRING &&
        el[2]->type == REDIS_REPLY_STRING && el[3]->type == REDIS_REPLY_STRING)
      r->opts.on_message(r, el[1]->str, el[2]->str, el[2]->len, el[3]->str, el[3]->len, r->opts.data);
  } else if (strcasecmp(kind, "subscribe") == 0 || strcasecmp(kind, "psubscribe") == 0) {
    if (s->gen != r->gen) {
      s->gen = r->gen;
      if (r->state == ST_HANDSHAKE && r->subs_pending > 0) {
        r->subs_pending--;
        maybe_up(r);
      }
    }
  }
}

static void on_cmd_timer(uv_timer_t *t) {
  sc_redis_t *r = t->data;
  req_t *q = r->pending.head;
  if (q == NULL) return;
  uint64_t now = uv_now(r->loop);
  if (q->deadline > now) {
    uv_timer_start(&r->cmd_timer, on_cmd_timer, q->deadline - now, 0);
    return;
  }
  /* Replies can no longer be matched to requests: answer this one, then
   * drop the connection (the others get SC_ECONN) and make a new one. */
  pending_unlink(r, q);
  q->done = 1;
  q->cb(r, SC_ETIMEOUT, NULL, q->privdata);
  if (r->state == ST_CLOSING || r->ac == NULL) return;
  drop(r, "command timed out");
}

static int enqueue(sc_redis_t *r, sc_redis_reply_cb cb, void *privdata, req_t **out) {
  if (r == NULL || cb == NULL) return SC_EINVAL;
  if (r->state != ST_UP || r->ac == NULL) return SC_ECONN;
  req_t *q = calloc(1, sizeof *q);
  if (q == NULL) return SC_ENOMEM;
  q->r = r;
  q->cb = cb;
  q->privdata = privdata;
  q->deadline = uv_now(r->loop) + (uint64_t)r->opts.command_timeout_ms;
  *out = q;
  return 0;
}

static void enqueued(sc_redis_t *r, req_t *q) {
  q->prev = r->pending.tail;
  if (r->pending.tail != NULL) r->pending.tail->next = q;
  else r->pending.head = q;
  r->pending.tail = q;
  if (!uv_is_active((uv_handle_t *)&r->cmd_timer))
    uv_timer_start(&r->cmd_timer, on_cmd_timer, (uint64_t)r->opts.command_timeout_ms, 0);
}

int sc_redis_command(sc_redis_t *r, sc_redis_reply_cb cb, void *privdata, const char *fmt, ...) {
  req_t *q;
  int rc = enqueue(r, cb, privdata, &q);
  if (rc != 0) return rc;
  va_list ap;
  va_start(ap, fmt);
  int st = redisvAsyncCommand(r->ac, on_reply, q, fmt, ap);
  va_end(ap);
  if (st != REDIS_OK) {
    free(q);
    return SC_EINVAL; /* bad format (the context is live, so not a connection problem) */
  }
  enqueued(r, q);
  return 0;
}

int sc_redis_command_argv(sc_redis_t *r, sc_redis_reply_cb cb, void *privdata, int argc, const char **argv,
                          const size_t *argvlen) {
  if (argc <= 0 || argv == NULL) return SC_EINVAL;
  req_t *q;
  int rc = enqueue(r, cb, privdata, &q);
  if (rc != 0) return rc;
  if (redisAsyncCommandArgv(r->ac, on_reply, q, argc, argv, argvlen) != REDIS_OK) {
    free(q);
    return SC_ENOMEM;
  }
  enqueued(r, q);
  return 0;
}

int sc_redis_subscribe(sc_redis_t *r, const char *channel, int pattern) {
  if (r == NULL || channel == NULL || r->state == ST_CLOSING) return SC_EINVAL;
  pattern = pattern != 0;
  for (sub_t *s = r->subs; s != NULL; s = s->next)
    if (s->pattern == pattern && strcmp(s->channel, channel) == 0) return 0;
  sub_t *s = calloc(1, sizeof *s);
  if (s == NULL) return SC_ENOMEM;
  s->channel = strdup(channel);
  if (s->channel == NULL) {
    free(s);
    return SC_ENOMEM;
  }
  s->r = r;
  s->pattern = pattern;
  /* Append: keeps the subscribe order stable across reconnects. */
  sub_t **tail = &r->subs;
  while (*tail != NULL) tail = &(*tail)->next;
  *tail = s;
  /* Connecting: on_connect sends it. Handshake or up: send now. */
  if (r->ac != NULL && (r->state == ST_HANDSHAKE || r->state == ST_UP)) {
    if (send_sub(r, s) != 0) {
      sc_redis_reset(r, "could not queue a subscription");
      return 0; /* remembered; the next connection sends it */
    }
    if (r->state == ST_HANDSHAKE) r->subs_pending++;
  }
  return 0;
}

int sc_redis_is_up(const sc_redis_t *r) { return r != NULL && r->state == ST_UP; }

uint64_t sc_redis_reconnects(const sc_redis_t *r) {
  return r != NULL ? atomic_load_explicit(&r->reconnects, memory_order_relaxed) : 0;
}

void sc_redis_reset(sc_redis_t *r, const char *why) {
  if (r == NULL || r->state == ST_CLOSING || r->ac == NULL) return;
  snprintf(r->why, sizeof r->why, "reset: %s", why != NULL ? why : "requested");
  drop(r, r->why);
}

static void sanitize_name(char *s) {
  for (; *s != '\0'; s++)
    if (!isgraph((unsigned char)*s)) *s = '-';
}

static int copy_str(char **dst, const char *src) {
  *dst = NULL;
  if (src == NULL) return 0;
  *dst = strdup(src);
  return *dst != NULL ? 0 : SC_ENOMEM;
}

static void redis_free(sc_redis_t *r) {
  sub_t *s = r->subs;
  while (s != NULL) {
    sub_t *next = s->next;
    free(s->channel);
    free(s);
    s = next;
  }
  sc_redis_addr_dispose(&r->addr);
  free(r->name);
  free(r);
}

int sc_redis_new(sc_redis_t **out, uv_loop_t *loop, const sc_redis_addr_t *addr, const sc_redis_opts_t *opts) {
  *out = NULL;
  if (loop == NULL || addr == NULL || opts == NULL) return SC_EINVAL;
  if ((addr->host == NULL) == (addr->unix_path == NULL)) return SC_EINVAL;
  sc_redis_t *r = calloc(1, sizeof *r);
  if (r == NULL) return SC_ENOMEM;
  r->loop = loop;
  r->opts = *opts;
  if (r->opts.connect_timeout_ms <= 0) r->opts.connect_timeout_ms = 2000;
  if (r->opts.command_timeout_ms <= 0) r->opts.command_timeout_ms = 5000;
  if (r->opts.backoff_min_ms <= 0) r->opts.backoff_min_ms = 100;
  if (r->opts.backoff_max_ms <= 0) r->opts.backoff_max_ms = 5000;
  if (r->opts.backoff_max_ms < r->opts.backoff_min_ms) r->opts.backoff_max_ms = r->opts.backoff_min_ms;
  r->addr.port = addr->port;
  r->addr.db = addr->db;
  if (copy_str(&r->addr.host, addr->host) != 0 || copy_str(&r->addr.unix_path, addr->unix_path) != 0 ||
      copy_str(&r->addr.user, addr->user) != 0 || copy_str(&r->addr.password, addr->password) != 0 ||
      copy_str(&r->addr.sentinels, addr->sentinels) != 0 || copy_str(&r->addr.master_name, addr->master_name) != 0 ||
      copy_str(&r->name, opts->name != NULL && opts->name[0] != '\0' ? opts->name : "statecast") != 0)
    goto fail;
  sanitize_name(r->name);
  r->opts.name = r->name;
  sc_redis_addr_describe(&r->addr, r->desc, sizeof r->desc);
  if (r->addr.sentinels != NULL) {
    if (r->addr.master_name == NULL && copy_str(&r->addr.master_name, "statecast") != 0) goto fail;
    snprintf(r->desc, sizeof r->desc, "sentinels %.200s, master '%.64s'", r->addr.sentinels, r->addr.master_name);
  }
  r->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)r ^ 0x9e3779b97f4a7c15ull;
  if (r->rng == 0) r->rng = 1;
  uv_timer_init(loop, &r->conn_timer);
  uv_timer_init(loop, &r->retry_timer);
  uv_timer_init(loop, &r->cmd_timer);
  r->conn_timer.data = r->retry_timer.data = r->cmd_timer.data = r;
  r->timers_open = 3;
  r->state = ST_DISCONNECTED;
  start_connect(r);
  *out = r;
  return 0;
fail:
  redis_free(r);
  return SC_ENOMEM;
}

static void on_timer_closed(uv_handle_t *h) {
  sc_redis_t *r = h->data;
  if (--r->timers_open == 0) redis_free(r);
}

void sc_redis_close(sc_redis_t *r) {
  if (r == NULL || r->state == ST_CLOSING) return;
  r->state = ST_CLOSING;
  redisAsyncContext *ac = r->ac;
  r->ac = NULL;
  uv_timer_stop(&r->conn_timer);
  uv_timer_stop(&r->retry_timer);
  uv_timer_stop(&r->cmd_timer);
  fail_pending(r, SC_ECLOSED);
  /* Callbacks for this context now see ac != r->ac and stay silent. */
  if (ac != NULL) redisAsyncFree(ac);
  uv_close((uv_handle_t *)&r->conn_timer, on_timer_closed);
  uv_close((uv_handle_t *)&r->retry_timer, on_timer_closed);
  uv_close((uv_handle_t *)&r->cmd_timer, on_timer_closed);
}
