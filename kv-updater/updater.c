/*
 * updater: subscribe, check, commit (see updater.h for the contract).
 *
 * Items (one per message to send) live in exactly one of two FIFOs:
 *   pending  - waiting for the command connection (bounded);
 *   inflight - sent, reply not yet seen, in send order.
 * Every send carries a ticket (the command's privdata) pointing at its item.
 * When the connection fails, all in-flight items are detached from their
 * tickets and spliced back at the front of pending in their order; a reply
 * arriving later on a detached ticket is ignored. Tickets are counted so the
 * kvu_t outlives every callback sc_redis may still fire after kvu_close().
 */
#include "updater.h"

#include "commit.h"
#include "envelope.h"
#include "err.h"
#include "json.h"
#include "keys.h"
#include "log.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

typedef enum { ITEM_COMMIT, ITEM_REJECT } item_kind_t;

typedef struct item item_t;
typedef struct ticket ticket_t;

struct item {
  item_t *prev, *next;
  item_kind_t kind;
  char *topic;      /* owned; ITEM_COMMIT */
  size_t topic_len;
  char *data;       /* owned; compact JSON, NULL for a delete; the record for ITEM_REJECT */
  size_t data_len;
  int use_eval;     /* 1 after a NOSCRIPT answer */
  ticket_t *ticket; /* the current send, NULL while pending */
};

typedef struct item_list {
  item_t *head, *tail;
  size_t n;
  size_t bytes;
} item_list_t;

/* privdata of one command; freed in its reply callback. */
struct ticket {
  kvu_t *k;
  item_t *item; /* borrowed; NULL once detached or for aux commands */
};

typedef enum { KVU_RUNNING, KVU_DRAINING, KVU_CLOSED } kvu_state_t;

struct kvu {
  uv_loop_t *loop; /* borrowed */
  kvu_opts_t opts;
  kvu_state_t state;
  sc_redis_t *sub; /* owned; NULL once closed */
  sc_redis_t *cmd; /* owned; NULL once closed */
  int sub_up, cmd_up;
  uint64_t reconnects_closed; /* reconnect counts of closed connections */
  item_list_t pending, inflight;
  size_t tickets; /* outstanding command callbacks */
  kvu_stats_t st;
  /* draining */
  uv_timer_t drain_timer;
  int drain_timer_open;
  int drain_done;
  kvu_drained_cb drained_cb;
  void *drained_data;
};

static void on_sub_state(sc_redis_t *r, int up, const char *why, void *data);
static void on_cmd_state(sc_redis_t *r, int up, const char *why, void *data);
static void on_message(sc_redis_t *r, const char *pattern, const char *channel, size_t channel_len, const char *msg,
                       size_t msg_len, void *data);
static void on_commit_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata);
static void on_aux_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata);
static void on_drain_timeout(uv_timer_t *t);
static void on_drain_timer_closed(uv_handle_t *h);
static void flush(kvu_t *k);
static void requeue_inflight(kvu_t *k, int use_eval);
static void maybe_free(kvu_t *k);

static int64_t now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- lists ------------------------------------------------------------ */

static size_t item_bytes(const item_t *it) { return sizeof *it + it->topic_len + it->data_len; }

static void list_push_back(item_list_t *l, item_t *it) {
  it->next = NULL;
  it->prev = l->tail;
  if (l->tail != NULL) l->tail->next = it;
  else l->head = it;
  l->tail = it;
  l->n++;
  l->bytes += item_bytes(it);
}

static item_t *list_pop_front(item_list_t *l) {
  item_t *it = l->head;
  if (it == NULL) return NULL;
  l->head = it->next;
  if (l->head != NULL) l->head->prev = NULL;
  else l->tail = NULL;
  l->n--;
  l->bytes -= item_bytes(it);
  it->next = it->prev = NULL;
  return it;
}

static void list_remove(item_list_t *l, item_t *it) {
  if (it->prev != NULL) it->prev->next = it->next;
  else l->head = it->next;
  if (it->next != NULL) it->next->prev = it->prev;
  else l->tail = it->prev;
  l->n--;
  l->bytes -= item_bytes(it);
  it->next = it->prev = NULL;
}

/* Move all of src in front of dst, keeping src's order; src ends empty. */
static void list_splice_front(item_list_t *dst, item_list_t *src) {
  if (src->head == NULL) return;
  src->tail->next = dst->head;
  if (dst->head != NULL) dst->head->prev = src->tail;
  else dst->tail = src->tail;
  dst->head = src->head;
  dst->n += src->n;
  dst->bytes += src->bytes;
  memset(src, 0, sizeof *src);
}

static void item_free(item_t *it) {
  if (it == NULL) return;
  free(it->topic);
  free(it->data);
  free(it);
}

static void list_free_all(item_list_t *l) {
  item_t *it;
  while ((it = list_pop_front(l)) != NULL) item_free(it);
}

/* ---- lifecycle -------------------------------------------------------- */

int kvu_new(kvu_t **out, uv_loop_t *loop, const sc_redis_addr_t *addr, const kvu_opts_t *opts) {
  *out = NULL;
  kvu_t *k = calloc(1, sizeof *k);
  if (k == NULL) return SC_ENOMEM;
  k->loop = loop;
  if (opts != NULL) k->opts = *opts;
  if (k->opts.max_message_bytes == 0) k->opts.max_message_bytes = SC_DEFAULT_MAX_MESSAGE_BYTES;
  if (k->opts.commit_timeout_ms <= 0) k->opts.commit_timeout_ms = 5000;
  if (k->opts.pending_max_messages == 0) k->opts.pending_max_messages = 100000;
  if (k->opts.pending_max_bytes == 0) k->opts.pending_max_bytes = (size_t)256 * 1024 * 1024;
  if (k->opts.max_inflight == 0) k->opts.max_inflight = 1024;
  k->state = KVU_RUNNING;

  sc_redis_opts_t ro = {0};
  ro.name = "kvu-sub";
  ro.on_state = on_sub_state;
  ro.on_message = on_message;
  ro.data = k;
  int rc = sc_redis_new(&k->sub, loop, addr, &ro);
  if (rc != 0) goto fail;
  rc = sc_redis_subscribe(k->sub, SC_KEYS_UPDATE_PATTERN, 1);
  if (rc != 0) goto fail;

  sc_redis_opts_t co = {0};
  co.name = "kvu-cmd";
  co.command_timeout_ms = k->opts.commit_timeout_ms;
  co.on_state = on_cmd_state;
  co.data = k;
  rc = sc_redis_new(&k->cmd, loop, addr, &co);
  if (rc != 0) goto fail;
  *out = k;
  return 0;

fail:
  kvu_close(k);
  return rc;
}

void kvu_close(kvu_t *k) {
  if (k == NULL || k->state == KVU_CLOSED) return;
  k->state = KVU_CLOSED;
  if (k->drain_timer_open) {
    uv_timer_stop(&k->drain_timer);
    uv_close((uv_handle_t *)&k->drain_timer, on_drain_timer_closed);
  }
  if (k->sub != NULL) {
    k->reconnects_closed += sc_redis_reconnects(k->sub);
    sc_redis_t *s = k->sub;
    k->sub = NULL;
    sc_redis_close(s);
  }
  if (k->cmd != NULL) {
    k->reconnects_closed += sc_redis_reconnects(k->cmd);
    sc_redis_t *c = k->cmd;
    k->cmd = NULL;
    sc_redis_close(c);
  }
  k->sub_up = k->cmd_up = 0;
  if (k->pending.n + k->inflight.n > 0)
    SC_ERROR("shutting down with %zu message(s) not committed", k->pending.n + k->inflight.n);
  maybe_free(k);
}

static void maybe_free(kvu_t *k) {
  if (k->state != KVU_CLOSED || k->tickets != 0 || k->drain_timer_open) return;
  /* In-flight items still attached to tickets are gone with their callbacks. */
  list_free_all(&k->inflight);
  list_free_all(&k->pending);
  free(k);
}

/* ---- connection state ------------------------------------------------- */

static void on_sub_state(sc_redis_t *r, int up, const char *why, void *data) {
  (void)r;
  kvu_t *k = data;
  k->sub_up = up;
  if (up) {
    SC_INFO("subscribed to %s", SC_KEYS_UPDATE_PATTERN);
  } else if (k->state == KVU_RUNNING) {
    SC_WARN("subscription down (%s): messages published until it is back are lost", why != NULL ? why : "?");
  }
}

static void on_cmd_state(sc_redis_t *r, int up, const char *why, void *data) {
  (void)r;
  kvu_t *k = data;
  k->cmd_up = up;
  if (!up) {
    /* Whatever is in flight may or may not have run: send it all again,
     * in order, once the connection is back (replies still on their way
     * for the old connection find their tickets detached). */
    requeue_inflight(k, 0);
    if (k->state == KVU_RUNNING || k->pending.n > 0)
      SC_WARN("command connection down (%s): %zu commit(s) wait for it", why != NULL ? why : "?", k->pending.n);
    return;
  }
  SC_INFO("command connection up; %zu commit(s) pending", k->pending.n + k->inflight.n);
  /* Load the script so EVALSHA works from the first commit on. */
  ticket_t *t = malloc(sizeof *t);
  if (t != NULL) {
    t->k = k;
    t->item = NULL;
    if (sc_redis_command(k->cmd, on_aux_reply, t, "SCRIPT LOAD %s", sc_commit_script) == 0) k->tickets++;
    else free(t);
  }
  flush(k);
}

/* ---- incoming messages ------------------------------------------------ */

/* Drop the oldest pending items until one more of `bytes` fits. */
static void make_room(kvu_t *k, size_t bytes) {
  while (k->pending.n > 0 && (k->pending.n + 1 > k->opts.pending_max_messages ||
                              k->pending.bytes + bytes > k->opts.pending_max_bytes)) {
    item_t *old = list_pop_front(&k->pending);
    k->st.dropped++;
    SC_ERROR("pending queue full (%zu messages, %zu bytes): dropped the oldest message%s%.*s", k->pending.n + 1,
             k->pending.bytes, old->kind == ITEM_COMMIT ? " for topic " : " (a rejected-message record)",
             old->kind == ITEM_COMMIT ? (int)old->topic_len : 0, old->kind == ITEM_COMMIT ? old->topic : "");
    item_free(old);
  }
}

static void enqueue(kvu_t *k, item_t *it) {
  make_room(k, item_bytes(it));
  list_push_back(&k->pending, it);
  flush(k);
}

static void reject(kvu_t *k, const char *channel, size_t channel_len, const char *topic, size_t topic_len, int code,
                   const sc_reject_t *why, const char *msg, size_t msg_len) {
  switch (code) {
  case SC_ETOPIC: k->st.rejected_topic++; break;
  case SC_EJSON: k->st.rejected_json++; break;
  case SC_EUTF8: k->st.rejected_utf8++; break;
  case SC_ETOOBIG: k->st.rejected_toobig++; break;
  default: break;
  }
  const char *detail = why != NULL && why->reason != NULL ? why->reason : sc_strerror(code);
  size_t offset = why != NULL ? why->offset : 0;
  /* The channel and topic can hold anything; log them escaped and bounded. */
  char ch_esc[6 * 256 + 1], tp_esc[6 * 256 + 1];
  size_t cl = channel_len > 256 ? 256 : channel_len, tl = topic_len > 256 ? 256 : topic_len;
  ch_esc[sc_json_escape(ch_esc, channel, cl)] = '\0';
  tp_esc[sc_json_escape(tp_esc, topic, tl)] = '\0';
  SC_WARN("rejected message channel=\"%s\" topic=\"%s\" reason=%s (%s) offset=%zu bytes=%zu", ch_esc, tp_esc,
          sc_errname(code), detail, offset, msg_len);

  item_t *it = calloc(1, sizeof *it);
  char *rec = kvu_reject_record(now_ms(), channel, channel_len, topic, topic_len, code, detail, offset, msg, msg_len);
  if (it == NULL || rec == NULL) {
    free(it);
    free(rec);
    SC_ERROR("out of memory keeping a rejected message");
    return;
  }
  it->kind = ITEM_REJECT;
  it->data = rec;
  it->data_len = strlen(rec);
  enqueue(k, it);
}

static void on_message(sc_redis_t *r, const char *pattern, const char *channel, size_t channel_len, const char *msg,
                       size_t msg_len, void *data) {
  (void)r;
  (void)pattern;
  kvu_t *k = data;
  if (k->state != KVU_RUNNING) return;
  const char *topic = "";
  size_t topic_len = 0;
  if (sc_keys_topic_of_channel(channel, channel_len, &topic, &topic_len) != 0) {
    sc_reject_t why = {"channel is not update:{topic}", 0};
    reject(k, channel, channel_len, "", 0, SC_ETOPIC, &why, msg, msg_len);
    return;
  }
  char *compact = NULL;
  size_t compact_len = 0;
  int is_delete = 0;
  sc_reject_t why = {NULL, 0};
  int rc = sc_message_check(topic, topic_len, msg, msg_len, k->opts.max_message_bytes, &compact, &compact_len,
                            &is_delete, &why);
  if (rc == SC_ENOMEM) {
    k->st.dropped++;
    SC_ERROR("out of memory checking a message for topic %.*s: dropped", (int)topic_len, topic);
    return;
  }
  if (rc != 0) {
    reject(k, channel, channel_len, topic, topic_len, rc, &why, msg, msg_len);
    return;
  }
  item_t *it = calloc(1, sizeof *it);
  char *t = malloc(topic_len + 1);
  if (it == NULL || t == NULL) {
    free(it);
    free(t);
    free(compact);
    k->st.dropped++;
    SC_ERROR("out of memory queueing a message for topic %.*s: dropped", (int)topic_len, topic);
    return;
  }
  memcpy(t, topic, topic_len);
  t[topic_len] = '\0';
  it->kind = ITEM_COMMIT;
  it->topic = t;
  it->topic_len = topic_len;
  it->data = is_delete ? NULL : compact;
  it->data_len = is_delete ? 0 : compact_len;
  enqueue(k, it);
}

/* ---- sending ---------------------------------------------------------- */

/* Send one item; 0, or SC_ECONN (not sent, nothing changed). */
static int send_item(kvu_t *k, item_t *it) {
  ticket_t *t = malloc(sizeof *t);
  if (t == NULL) return SC_ENOMEM;
  t->k = k;
  t->item = it;
  int rc;
  if (it->kind == ITEM_COMMIT) {
    sc_commit_cmd_t cmd;
    rc = sc_commit_argv(&cmd, it->use_eval, it->topic, it->topic_len, it->data, it->data_len);
    if (rc == 0) rc = sc_redis_command_argv(k->cmd, on_commit_reply, t, SC_COMMIT_ARGC, cmd.argv, cmd.argvlen);
  } else {
    const char *argv[3] = {"LPUSH", SC_KEYS_REJECTED, it->data};
    size_t argvlen[3] = {5, strlen(SC_KEYS_REJECTED), it->data_len};
    rc = sc_redis_command_argv(k->cmd, on_commit_reply, t, 3, argv, argvlen);
    if (rc == 0) {
      ticket_t *aux = malloc(sizeof *aux);
      if (aux != NULL) {
        aux->k = k;
        aux->item = NULL;
        if (sc_redis_command(k->cmd, on_aux_reply, aux, "LTRIM %s 0 %d", SC_KEYS_REJECTED,
                             SC_KEYS_REJECTED_CAP - 1) == 0)
          k->tickets++;
        else
          free(aux);
      }
    }
  }
  if (rc != 0) {
    free(t);
    return rc;
  }
  k->tickets++;
  it->ticket = t;
  return 0;
}

static void flush(kvu_t *k) {
  if (k->cmd == NULL || !k->cmd_up) return;
  while (k->pending.head != NULL && k->inflight.n < k->opts.max_inflight) {
    item_t *it = list_pop_front(&k->pending);
    int rc = send_item(k, it);
    if (rc != 0) {
      /* Not connected after all (or no memory): put it back, wait for the next up. */
      item_list_t one = {it, it, 1, item_bytes(it)};
      list_splice_front(&k->pending, &one);
      if (rc == SC_ENOMEM) SC_ERROR("out of memory sending a commit; will retry");
      return;
    }
    list_push_back(&k->inflight, it);
  }
}

/* Is there an item for it's topic after it in its list? */
static int superseded(const item_t *it) {
  for (const item_t *later = it->next; later != NULL; later = later->next)
    if (later->kind == ITEM_COMMIT && later->topic_len == it->topic_len &&
        memcmp(later->topic, it->topic, it->topic_len) == 0)
      return 1;
  return 0;
}

/* The connection failed or the stream is untrustworthy: every in-flight
 * item goes back to the front of pending, in order, to be sent again.
 * Some of them may have been committed already. Re-sending the newest state
 * of a topic is harmless (the script finds it identical), but re-sending an
 * older one would briefly show displays a state that was already replaced.
 * Messages are full state, so a re-queued commit with a newer message for
 * the same topic behind it is dropped: only the newest one is sent again. */
static void requeue_inflight(kvu_t *k, int use_eval) {
  size_t n = k->inflight.n;
  for (item_t *it = k->inflight.head; it != NULL; it = it->next) {
    if (it->ticket != NULL) it->ticket->item = NULL;
    it->ticket = NULL;
    if (use_eval) it->use_eval = 1;
  }
  list_splice_front(&k->pending, &k->inflight);
  item_t *it = k->pending.head;
  for (size_t i = 0; i < n && it != NULL; i++) {
    item_t *next = it->next;
    if (it->kind == ITEM_COMMIT && superseded(it)) {
      list_remove(&k->pending, it);
      item_free(it);
      k->st.superseded++;
    }
    it = next;
  }
}

static void check_drained(kvu_t *k);

static int error_is(const redisReply *reply, const char *prefix) {
  size_t n = strlen(prefix);
  return reply->len >= n && memcmp(reply->str, prefix, n) == 0;
}

static void on_commit_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata) {
  (void)r;
  ticket_t *t = privdata;
  kvu_t *k = t->k;
  item_t *it = t->item;
  free(t);
  k->tickets--;
  if (it == NULL || k->state == KVU_CLOSED) {
    /* Detached (already re-queued) or shutting down. */
    if (k->state == KVU_CLOSED) maybe_free(k);
    return;
  }
  it->ticket = NULL;
  if (status != 0) {
    /* SC_ECONN / SC_ETIMEOUT: the connection is being re-made; resend all later. */
    SC_WARN("commit not answered (%s): re-queueing %zu in-flight message(s)", sc_strerror(status), k->inflight.n);
    requeue_inflight(k, 0);
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    if (error_is(reply, "NOSCRIPT")) {
      /* The script cache was flushed: this and everything behind it go
       * again, in order, with EVAL (which also reloads the script). */
      SC_WARN("commit script not loaded in Redis; resending %zu message(s) with EVAL", k->inflight.n);
      requeue_inflight(k, 1);
      flush(k);
      return;
    }
    if (error_is(reply, "LOADING") || error_is(reply, "BUSY") || error_is(reply, "TRYAGAIN") ||
        error_is(reply, "MASTERDOWN") || error_is(reply, "READONLY") || error_is(reply, "OOM")) {
      SC_WARN("Redis cannot commit right now (%.*s); reconnecting and retrying", (int)reply->len, reply->str);
      requeue_inflight(k, 0);
      if (k->cmd != NULL) sc_redis_reset(k->cmd, "transient Redis error");
      return;
    }
    list_remove(&k->inflight, it);
    k->st.failed++;
    k->st.dropped++;
    if (it->kind == ITEM_COMMIT)
      SC_ERROR("commit of topic %s failed: %.*s (message dropped)", it->topic, (int)reply->len, reply->str);
    else
      SC_ERROR("storing a rejected message failed: %.*s", (int)reply->len, reply->str);
    item_free(it);
    flush(k);
    check_drained(k);
    return;
  }
  list_remove(&k->inflight, it);
  if (it->kind == ITEM_COMMIT) {
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 && reply->element[0]->type == REDIS_REPLY_INTEGER &&
        reply->element[1]->type == REDIS_REPLY_INTEGER) {
      if (reply->element[0]->integer == 1) {
        k->st.committed++;
        k->st.last_seq = (uint64_t)reply->element[1]->integer;
        SC_DEBUG("committed topic %s seq %lld", it->topic, reply->element[1]->integer);
      } else {
        k->st.unchanged++;
      }
    } else {
      k->st.failed++;
      SC_ERROR("commit of topic %s: unexpected reply type %d", it->topic, reply->type);
    }
  }
  item_free(it);
  flush(k);
  check_drained(k);
}

static void on_aux_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata) {
  (void)r;
  ticket_t *t = privdata;
  kvu_t *k = t->k;
  free(t);
  k->tickets--;
  if (k->state == KVU_CLOSED) {
    maybe_free(k);
    return;
  }
  if (status == 0 && reply != NULL && reply->type == REDIS_REPLY_ERROR)
    SC_WARN("Redis answered %.*s", (int)reply->len, reply->str);
}

/* ---- draining --------------------------------------------------------- */

static void finish_drain(kvu_t *k) {
  if (k->drain_done) return;
  k->drain_done = 1;
  size_t left = k->pending.n + k->inflight.n;
  if (k->drain_timer_open) {
    uv_timer_stop(&k->drain_timer);
  }
  k->drained_cb(k, left, k->drained_data);
}

static void check_drained(kvu_t *k) {
  if (k->state != KVU_DRAINING || k->drain_done) return;
  if (k->pending.n + k->inflight.n == 0) finish_drain(k);
}

static void on_drain_timeout(uv_timer_t *t) {
  kvu_t *k = t->data;
  if (k->drain_done) return;
  if (k->pending.n + k->inflight.n > 0)
    SC_WARN("gave up waiting for %zu commit(s) at shutdown", k->pending.n + k->inflight.n);
  finish_drain(k);
}

static void on_drain_timer_closed(uv_handle_t *h) {
  kvu_t *k = h->data;
  k->drain_timer_open = 0;
  maybe_free(k);
}

void kvu_drain(kvu_t *k, int timeout_ms, kvu_drained_cb cb, void *data) {
  if (k->state != KVU_RUNNING) return;
  k->state = KVU_DRAINING;
  k->drained_cb = cb;
  k->drained_data = data;
  if (k->sub != NULL) {
    k->reconnects_closed += sc_redis_reconnects(k->sub);
    sc_redis_t *s = k->sub;
    k->sub = NULL;
    k->sub_up = 0;
    sc_redis_close(s);
  }
  uv_timer_init(k->loop, &k->drain_timer);
  k->drain_timer.data = k;
  k->drain_timer_open = 1;
  /* Even with nothing to wait for, answer from the timer, never synchronously. */
  uv_timer_start(&k->drain_timer, on_drain_timeout, k->pending.n + k->inflight.n == 0 ? 0 : (uint64_t)timeout_ms, 0);
  SC_INFO("shutting down: waiting for %zu commit(s)", k->pending.n + k->inflight.n);
}

/* ---- observation ------------------------------------------------------ */

int kvu_ready(const kvu_t *k, const char **why) {
  if (k->state != KVU_RUNNING) {
    *why = "shutting down";
    return 0;
  }
  if (!k->sub_up) {
    *why = "redis subscription down";
    return 0;
  }
  if (!k->cmd_up) {
    *why = "redis command connection down";
    return 0;
  }
  *why = NULL;
  return 1;
}

void kvu_get_stats(const kvu_t *k, kvu_stats_t *st) {
  *st = k->st;
  st->reconnects = k->reconnects_closed + (k->sub != NULL ? sc_redis_reconnects(k->sub) : 0) +
                   (k->cmd != NULL ? sc_redis_reconnects(k->cmd) : 0);
  st->pending = k->pending.n + k->inflight.n;
  st->sub_up = k->sub_up;
  st->cmd_up = k->cmd_up;
}

typedef struct outbuf {
  char *p;
  size_t cap, len;
} outbuf_t;

__attribute__((format(printf, 2, 3))) static void out(outbuf_t *o, const char *fmt, ...) {
  if (o->len + 1 >= o->cap) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  o->len += (size_t)n;
  if (o->len >= o->cap) o->len = o->cap - 1;
}

static void metric(outbuf_t *o, const char *name, const char *type, const char *help) {
  out(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

size_t kvu_metrics_format(const kvu_stats_t *st, char *buf, size_t cap) {
  outbuf_t o = {buf, cap, 0};
  if (cap == 0) return 0;
  buf[0] = '\0';
  metric(&o, "statecast_kvu_messages_committed_total", "counter", "Messages that changed state and were committed.");
  out(&o, "statecast_kvu_messages_committed_total %" PRIu64 "\n", st->committed);
  metric(&o, "statecast_kvu_messages_unchanged_total", "counter",
         "Messages equal to the stored state (nothing committed, nobody notified).");
  out(&o, "statecast_kvu_messages_unchanged_total %" PRIu64 "\n", st->unchanged);
  metric(&o, "statecast_kvu_messages_rejected_total", "counter", "Messages refused by the message contract.");
  out(&o, "statecast_kvu_messages_rejected_total{reason=\"json\"} %" PRIu64 "\n", st->rejected_json);
  out(&o, "statecast_kvu_messages_rejected_total{reason=\"utf8\"} %" PRIu64 "\n", st->rejected_utf8);
  out(&o, "statecast_kvu_messages_rejected_total{reason=\"topic\"} %" PRIu64 "\n", st->rejected_topic);
  out(&o, "statecast_kvu_messages_rejected_total{reason=\"toobig\"} %" PRIu64 "\n", st->rejected_toobig);
  metric(&o, "statecast_kvu_messages_dropped_total", "counter",
         "Messages dropped without a commit (pending queue full, Redis refused the script).");
  out(&o, "statecast_kvu_messages_dropped_total %" PRIu64 "\n", st->dropped);
  metric(&o, "statecast_kvu_messages_superseded_total", "counter",
         "Commits not re-sent after a reconnect because a newer message for the topic was queued.");
  out(&o, "statecast_kvu_messages_superseded_total %" PRIu64 "\n", st->superseded);
  metric(&o, "statecast_kvu_redis_reconnects_total", "counter", "Redis reconnects of both connections.");
  out(&o, "statecast_kvu_redis_reconnects_total %" PRIu64 "\n", st->reconnects);
  metric(&o, "statecast_kvu_pending_commits", "gauge", "Commits waiting for or awaiting an answer from Redis.");
  out(&o, "statecast_kvu_pending_commits %" PRIu64 "\n", st->pending);
  metric(&o, "statecast_kvu_last_seq", "gauge", "Sequence number of the last commit.");
  out(&o, "statecast_kvu_last_seq %" PRIu64 "\n", st->last_seq);
  metric(&o, "statecast_kvu_redis_up", "gauge", "1 when the Redis connection is up.");
  out(&o, "statecast_kvu_redis_up{conn=\"sub\"} %d\n", st->sub_up ? 1 : 0);
  out(&o, "statecast_kvu_redis_up{conn=\"cmd\"} %d\n", st->cmd_up ? 1 : 0);
  return o.len;
}

/* ---- rejected records ------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned min;
  if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
  else return 0;
  if (n < len) return 0;
  unsigned cp = c & (0x3F >> (len - 1));
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

/* Append s as a JSON string (with quotes), invalid UTF-8 bytes as U+FFFD. */
static char *put_string(char *o, const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  *o++ = '"';
  size_t i = 0;
  while (i < len) {
    size_t start = i;
    size_t l;
    while (i < len && (l = utf8_seq(p + i, len - i)) != 0) i += l;
    o += sc_json_escape(o, s + start, i - start);
    if (i < len) {
      memcpy(o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  *o++ = '"';
  return o;
}

char *kvu_reject_record(int64_t ts_ms, const char *channel, size_t channel_len, const char *topic, size_t topic_len,
                        int code, const char *detail, size_t offset, const char *msg, size_t msg_len) {
  size_t sample = msg_len > KVU_REJECT_SAMPLE_BYTES ? KVU_REJECT_SAMPLE_BYTES : msg_len;
  size_t dl = detail != NULL ? strlen(detail) : 0;
  size_t cap = 256 + 6 * (channel_len + topic_len + dl + sample);
  char *buf = malloc(cap);
  if (buf == NULL) return NULL;
  char *o = buf;
  o += sprintf(o, "{\"ts\":%" PRId64 ",\"channel\":", ts_ms);
  o = put_string(o, channel, channel_len);
  o += sprintf(o, ",\"topic\":");
  o = put_string(o, topic, topic_len);
  o += sprintf(o, ",\"reason\":\"%s\",\"detail\":", sc_errname(code));
  o = put_string(o, detail != NULL ? detail : "", dl);
  o += sprintf(o, ",\"offset\":%zu,\"bytes\":%zu,\"message\":", offset, msg_len);
  o = put_string(o, msg, sample);
  *o++ = '}';
  *o = '\0';
  return buf;
}
