/*
 * publisher: the library behind statecast_publisher.h.
 *
 * One blocking hiredis context, made on first use and dropped on any I/O
 * error. A durable publish is: local check (sc_message_check, the same
 * contract kv-updater enforces) -> XADD statecast:inbox * topic T data
 * <compact JSON> -> entry id (then EXISTS statecast:leader, if asked).
 * The pub/sub publish is: local check -> PUBLISH update:{T} <body> ->
 * receiver count.
 * A broken connection gets one reconnect and one resend; that is safe
 * because a message is the whole state of its topic.
 */
#include "statecast_publisher.h"

#include "envelope.h"
#include "err.h"
#include "keys.h"
#include "redis.h"
#include "sentinel.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PUB_DEFAULT_CONNECT_TIMEOUT_MS 2000
#define PUB_DEFAULT_COMMAND_TIMEOUT_MS 5000

struct sc_publisher {
  sc_redis_addr_t addr; /* owned; strings freed by sc_redis_addr_dispose() */
  char where[300];      /* addr without credentials, for messages */
  int connect_timeout_ms;
  int command_timeout_ms;
  size_t max_message_bytes;
  redisContext *ctx; /* owned; NULL while disconnected */
  char last_error[512];
};

static void set_error(sc_publisher_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(sc_publisher_t *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->last_error, sizeof p->last_error, fmt, ap);
  va_end(ap);
}

static struct timeval ms_to_tv(int ms) {
  struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000L};
  return tv;
}

int sc_publisher_new(sc_publisher_t **out, const char *redis_url, const sc_publisher_opts_t *opts) {
  static const sc_publisher_opts_t defaults = {0};
  char err[256];
  sc_publisher_t *p = NULL;
  int rc;
  if (out == NULL) return SC_EINVAL;
  *out = NULL;
  if (redis_url == NULL) return SC_EURL;
  if (opts == NULL) opts = &defaults;
  if (opts->connect_timeout_ms < 0 || opts->command_timeout_ms < 0) return SC_EINVAL;
  p = calloc(1, sizeof *p);
  if (p == NULL) return SC_ENOMEM;
  rc = sc_redis_url_parse(redis_url, &p->addr, err, sizeof err);
  if (rc != 0) {
    free(p);
    return rc < 0 ? rc : SC_EURL;
  }
  if (opts->password != NULL) {
    char *pw = strdup(opts->password);
    if (pw == NULL) {
      rc = SC_ENOMEM;
      goto fail;
    }
    free(p->addr.password);
    p->addr.password = pw;
  }
  rc = sc_redis_addr_set_sentinels(&p->addr, opts->sentinels, opts->master_name, err, sizeof err);
  if (rc != 0) goto fail;
  p->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : PUB_DEFAULT_CONNECT_TIMEOUT_MS;
  p->command_timeout_ms = opts->command_timeout_ms > 0 ? opts->command_timeout_ms : PUB_DEFAULT_COMMAND_TIMEOUT_MS;
  p->max_message_bytes = opts->max_message_bytes > 0 ? opts->max_message_bytes : SC_DEFAULT_MAX_MESSAGE_BYTES;
  sc_redis_addr_describe(&p->addr, p->where, sizeof p->where);
  *out = p;
  return 0;

fail:
  sc_redis_addr_dispose(&p->addr);
  free(p);
  return rc;
}

static void drop_connection(sc_publisher_t *p) {
  if (p->ctx != NULL) redisFree(p->ctx);
  p->ctx = NULL;
}

/* Classify a hiredis context error; errno_at_fail is errno right after the
 * failing call (hiredis keeps it for REDIS_ERR_IO). */
static int ctx_error_code(const redisContext *c, int errno_at_fail) {
  if (c->err == REDIS_ERR_OOM) return SC_ENOMEM;
  if (c->err == REDIS_ERR_IO &&
      (errno_at_fail == EAGAIN || errno_at_fail == EWOULDBLOCK || errno_at_fail == ETIMEDOUT ||
       strstr(c->errstr, "timed out") != NULL || strstr(c->errstr, "temporarily unavailable") != NULL))
    return SC_ETIMEOUT;
  return SC_ECONN;
}

/*
 * Run one command on p->ctx with SIGPIPE held off: hiredis 0.14 uses plain
 * write(), and a library must neither die of SIGPIPE nor change the
 * process's handlers. A SIGPIPE we caused is consumed before unblocking,
 * unless one was already pending before we started.
 * Returns the reply (caller frees) or NULL with *errno_out set.
 */
static redisReply *command_nosigpipe(redisContext *c, int argc, const char **argv, const size_t *argvlen,
                                     int *errno_out) {
  sigset_t pipe_set, old_set, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigemptyset(&pending);
  sigpending(&pending);
  int was_pending = sigismember(&pending, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  errno = 0;
  redisReply *reply = redisCommandArgv(c, argc, argv, argvlen);
  *errno_out = errno;
  if (!was_pending) {
    sigemptyset(&pending);
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE)) {
      struct timespec zero = {0, 0};
      while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
      }
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_set, NULL);
  return reply;
}

/* One command on the live context. 0 and *out (caller frees), or an error
 * with the connection dropped (I/O) or kept (Redis error reply). */
static int run_command(sc_publisher_t *p, const char *what, int argc, const char **argv, const size_t *argvlen,
                       redisReply **out) {
  int err_no = 0;
  *out = NULL;
  redisReply *reply = command_nosigpipe(p->ctx, argc, argv, argvlen, &err_no);
  if (reply == NULL) {
    int rc = ctx_error_code(p->ctx, err_no);
    set_error(p, "%s on %s: %s", what, p->where, p->ctx->errstr[0] != '\0' ? p->ctx->errstr : sc_strerror(rc));
    drop_connection(p);
    return rc;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    set_error(p, "%s on %s: Redis answered: %.*s", what, p->where, (int)reply->len, reply->str);
    freeReplyObject(reply);
    return SC_EREDIS;
  }
  *out = reply;
  return 0;
}

/* Connect, AUTH, SELECT. 0 with p->ctx set, or an error with p->ctx NULL. */
static int connect_redis(sc_publisher_t *p) {
  redisContext *c;
  redisReply *reply = NULL;
  int rc;
  if (p->addr.sentinels != NULL) {
    /* Ask on every connect: after a failover the primary has moved. */
    char *host = NULL, serr[400];
    int port = 0;
    rc = sc_sentinel_resolve(p->addr.sentinels, p->addr.master_name, p->connect_timeout_ms, &host, &port, serr,
                             sizeof serr);
    if (rc != 0) {
      set_error(p, "connect: %s", serr);
      return rc == SC_ENOMEM ? rc : SC_ECONN;
    }
    free(p->addr.host);
    p->addr.host = host;
    p->addr.port = port;
    sc_redis_addr_describe(&p->addr, p->where, sizeof p->where);
  }
  errno = 0;
  if (p->addr.unix_path != NULL)
    c = redisConnectUnixWithTimeout(p->addr.unix_path, ms_to_tv(p->connect_timeout_ms));
  else
    c = redisConnectWithTimeout(p->addr.host, p->addr.port, ms_to_tv(p->connect_timeout_ms));
  int err_no = errno;
  if (c == NULL) {
    set_error(p, "connect to %s: out of memory", p->where);
    return SC_ENOMEM;
  }
  if (c->err) {
    rc = ctx_error_code(c, err_no);
    set_error(p, "connect to %s: %s", p->where, c->errstr);
    redisFree(c);
    return rc;
  }
  if (redisSetTimeout(c, ms_to_tv(p->command_timeout_ms)) != REDIS_OK) {
    set_error(p, "connect to %s: cannot set the command timeout", p->where);
    redisFree(c);
    return SC_ECONN;
  }
  p->ctx = c;
  if (p->addr.password != NULL) {
    const char *argv[3] = {"AUTH", p->addr.user, p->addr.password};
    size_t argvlen[3] = {4, 0, strlen(p->addr.password)};
    if (p->addr.user != NULL) {
      argvlen[1] = strlen(p->addr.user);
      rc = run_command(p, "AUTH", 3, argv, argvlen, &reply);
    } else {
      argv[1] = p->addr.password;
      argvlen[1] = argvlen[2];
      rc = run_command(p, "AUTH", 2, argv, argvlen, &reply);
    }
    if (rc != 0) goto fail;
    freeReplyObject(reply);
  }
  if (p->addr.db != 0) {
    char db[16];
    int n = snprintf(db, sizeof db, "%d", p->addr.db);
    const char *argv[2] = {"SELECT", db};
    size_t argvlen[2] = {6, (size_t)n};
    rc = run_command(p, "SELECT", 2, argv, argvlen, &reply);
    if (rc != 0) goto fail;
    freeReplyObject(reply);
  }
  if (p->addr.sentinels != NULL) {
    char serr[300];
    rc = sc_sentinel_check_master(p->ctx, serr, sizeof serr);
    if (rc != 0) {
      set_error(p, "connect to %s: %s", p->where, serr);
      rc = SC_ECONN;
      goto fail;
    }
  }
  return 0;

fail:
  drop_connection(p);
  return rc;
}

static int describe_reject(sc_publisher_t *p, int rc, const sc_reject_t *why) {
  switch (rc) {
  case SC_EJSON:
  case SC_EUTF8:
    set_error(p, "%s at byte %zu: %s", sc_strerror(rc), why->offset, why->reason);
    break;
  default:
    set_error(p, "%s: %s", sc_strerror(rc), why->reason != NULL ? why->reason : "rejected");
    break;
  }
  return rc;
}

int sc_publisher_publish(sc_publisher_t *p, const char *topic, size_t topic_len, const char *json, size_t json_len,
                         long long *receivers) {
  char channel[SC_KEYS_MAX];
  char *compact = NULL;
  size_t compact_len = 0;
  int is_delete = 0;
  sc_reject_t why = {0};
  redisReply *reply = NULL;
  int rc;

  if (receivers != NULL) *receivers = -1;
  if (p == NULL) return SC_EINVAL;
  p->last_error[0] = '\0';
  if (topic == NULL || json == NULL) {
    set_error(p, "topic and json must not be NULL");
    return SC_EINVAL;
  }
  rc = sc_message_check(topic, topic_len, json, json_len, p->max_message_bytes, &compact, &compact_len, &is_delete,
                        &why);
  if (rc != 0) return describe_reject(p, rc, &why);
  free(compact); /* only the verdict matters: the original bytes are sent */
  int clen = sc_keys_update_channel(channel, sizeof channel, topic, topic_len);
  if (clen < 0) {
    set_error(p, "topic too long for a channel name");
    return SC_ETOPIC;
  }

  const char *argv[3] = {"PUBLISH", channel, json};
  size_t argvlen[3] = {7, (size_t)clen, json_len};
  for (int attempt = 0; attempt < 2; attempt++) {
    if (p->ctx == NULL) {
      rc = connect_redis(p);
      if (rc == SC_ECONN || rc == SC_ETIMEOUT) continue;
      if (rc != 0) return rc;
    }
    rc = run_command(p, "PUBLISH", 3, argv, argvlen, &reply);
    if (rc == SC_ECONN || rc == SC_ETIMEOUT) continue;
    if (rc != 0) return rc;
    break;
  }
  if (rc != 0) return rc;
  if (reply->type != REDIS_REPLY_INTEGER) {
    set_error(p, "PUBLISH on %s: unexpected reply type %d", p->where, reply->type);
    freeReplyObject(reply);
    drop_connection(p); /* replies can no longer be trusted to match requests */
    return SC_EREDIS;
  }
  long long n = reply->integer;
  freeReplyObject(reply);
  if (receivers != NULL) *receivers = n;
  if (n == 0) {
    set_error(p, "published to %.*s but no kv-updater is subscribed: the state was not committed", clen, channel);
    return SC_ENORECEIVER;
  }
  return 0;
}

/* Run argv with one reconnect and one resend on a lost connection. */
static int run_with_retry(sc_publisher_t *p, const char *what, int argc, const char **argv, const size_t *argvlen,
                          redisReply **reply) {
  int rc = SC_ECONN;
  for (int attempt = 0; attempt < 2; attempt++) {
    if (p->ctx == NULL) {
      rc = connect_redis(p);
      if (rc == SC_ECONN || rc == SC_ETIMEOUT) continue;
      if (rc != 0) return rc;
    }
    rc = run_command(p, what, argc, argv, argvlen, reply);
    if (rc == SC_ECONN || rc == SC_ETIMEOUT) continue;
    return rc;
  }
  return rc;
}

int sc_publisher_publish_durable(sc_publisher_t *p, const char *topic, size_t topic_len, const char *json,
                                 size_t json_len, char *entry_id, int *kvu_running) {
  char *compact = NULL;
  size_t compact_len = 0;
  int is_delete = 0;
  sc_reject_t why = {0};
  redisReply *reply = NULL;
  int rc;

  if (entry_id != NULL) entry_id[0] = '\0';
  if (kvu_running != NULL) *kvu_running = -1;
  if (p == NULL) return SC_EINVAL;
  p->last_error[0] = '\0';
  if (topic == NULL || json == NULL) {
    set_error(p, "topic and json must not be NULL");
    return SC_EINVAL;
  }
  rc = sc_message_check(topic, topic_len, json, json_len, p->max_message_bytes, &compact, &compact_len, &is_delete,
                        &why);
  if (rc != 0) return describe_reject(p, rc, &why);
  const char *argv[7] = {"XADD", SC_KEYS_INBOX, "*", "topic", topic, "data", is_delete ? "null" : compact};
  size_t argvlen[7] = {4, strlen(SC_KEYS_INBOX), 1, 5, topic_len, 4, is_delete ? 4 : compact_len};
  /* A resend after a lost answer may add the entry twice: harmless, the
   * second one commits nothing (same full state, nothing in between). */
  rc = run_with_retry(p, "XADD", 7, argv, argvlen, &reply);
  free(compact);
  if (rc != 0) return rc;
  if (reply->type != REDIS_REPLY_STRING || reply->len >= SC_PUBLISHER_ID_MAX) {
    set_error(p, "XADD on %s: unexpected reply type %d", p->where, reply->type);
    freeReplyObject(reply);
    drop_connection(p);
    return SC_EREDIS;
  }
  if (entry_id != NULL) memcpy(entry_id, reply->str, reply->len + 1);
  freeReplyObject(reply);
  if (kvu_running != NULL) {
    const char *eargv[2] = {"EXISTS", SC_KEYS_LEADER};
    size_t eargvlen[2] = {6, strlen(SC_KEYS_LEADER)};
    /* The publish is already accepted: a failure here only leaves "unknown". */
    if (run_with_retry(p, "EXISTS", 2, eargv, eargvlen, &reply) == 0) {
      if (reply->type == REDIS_REPLY_INTEGER) *kvu_running = reply->integer > 0;
      freeReplyObject(reply);
    }
    p->last_error[0] = '\0';
  }
  return 0;
}

int sc_publisher_delete_durable(sc_publisher_t *p, const char *topic, size_t topic_len, char *entry_id,
                                int *kvu_running) {
  return sc_publisher_publish_durable(p, topic, topic_len, "null", 4, entry_id, kvu_running);
}

int sc_publisher_delete(sc_publisher_t *p, const char *topic, size_t topic_len, long long *receivers) {
  return sc_publisher_publish(p, topic, topic_len, "null", 4, receivers);
}

const char *sc_publisher_last_error(const sc_publisher_t *p) {
  return p != NULL ? p->last_error : "no publisher";
}

void sc_publisher_free(sc_publisher_t *p) {
  if (p == NULL) return;
  drop_connection(p);
  sc_redis_addr_dispose(&p->addr);
  free(p);
}
