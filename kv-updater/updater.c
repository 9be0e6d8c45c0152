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
 *
 * Four connections: sub (PSUBSCRIBE), cmd (commits, in order), lease (the
 * lease, so renewals never queue behind commits) and inbox (XGROUP,
 * XAUTOCLAIM and the blocking XREADGROUP, which would stall anything queued
 * behind it). Leadership terms are numbered (gen); a stream reply from an
 * earlier term is ignored. Only items of the current term are ever sent:
 * stepping down drops every queued and in-flight item.
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

/* How long one XREADGROUP blocks, and how many entries it takes. */
#define KVU_BLOCK_MS 1000
#define KVU_READ_COUNT 100

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
  char *entry_id;   /* owned; statecast:inbox id, NULL for a pub/sub message */
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
  uint64_t gen; /* leadership term (lease and inbox commands) */
  uint64_t sent_ms; /* when a lease command was sent (monotonic) */
  int renew;        /* lease command: 1 renew, 0 acquire, 2 release */
};

typedef enum { KVU_RUNNING, KVU_DRAINING, KVU_CLOSED } kvu_state_t;

struct kvu {
  uv_loop_t *loop; /* borrowed */
  kvu_opts_t opts;
  kvu_state_t state;
  sc_redis_t *sub; /* owned; NULL once closed */
  sc_redis_t *cmd; /* owned; NULL once closed */
  sc_redis_t *lease; /* owned; NULL once closed */
  sc_redis_t *inbox; /* owned; NULL once closed */
  int sub_up, cmd_up, lease_up, inbox_up;
  char token[33]; /* lease token and consumer name */
  int leader, role_known;
  uint64_t gen;         /* leadership term; bumped on every change */
  uint64_t valid_until; /* monotonic ms until which the lease is surely ours */
  uint64_t last_renew_sent;
  int lease_busy;        /* a lease command is in flight */
  uv_timer_t lease_timer;
  int lease_timer_open;
  int group_ready;       /* XGROUP CREATE answered in this term */
  int inbox_busy;        /* an inbox command is in flight */
  int claiming;          /* claiming pending entries; cursor below */
  char claim_cursor[48];
  uint64_t claim_min_idle;
  uint64_t last_reclaim;
  int releasing;         /* lease release sent while draining */
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
static void on_lease_state(sc_redis_t *r, int up, const char *why, void *data);
static void on_inbox_state(sc_redis_t *r, int up, const char *why, void *data);
static void on_lease_tick(uv_timer_t *t);
static void on_lease_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata);
static void on_inbox_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata);
static void on_lease_timer_closed(uv_handle_t *h);
static void step_down(kvu_t *k, const char *why);
static void inbox_next(kvu_t *k);
static void release_lease(kvu_t *k);
static void check_drained(kvu_t *k);
static void finish_drain(kvu_t *k);
static int error_is(const redisReply *reply, const char *prefix);
static void on_drain_timeout(uv_timer_t *t);
static void on_drain_timer_closed(uv_handle_t *h);
static void flush(kvu_t *k);
static void requeue_inflight(kvu_t *k, int use_eval);
static void maybe_free(kvu_t *k);

static uint64_t mono_ms(void) { return uv_hrtime() / 1000000u; }

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
  free(it->entry_id);
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
  if (k->opts.lease_ms <= 0) k->opts.lease_ms = 5000;
  if (k->opts.lease_ms < 50) k->opts.lease_ms = 50;
  k->state = KVU_RUNNING;
  sc_random_hex(k->token, 32);

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

  sc_redis_opts_t lo = {0};
  lo.name = "kvu-lease";
  lo.command_timeout_ms = k->opts.lease_ms;
  lo.backoff_max_ms = k->opts.lease_ms / 5 > 100 ? k->opts.lease_ms / 5 : 100;
  lo.on_state = on_lease_state;
  lo.data = k;
  rc = sc_redis_new(&k->lease, loop, addr, &lo);
  if (rc != 0) goto fail;

  sc_redis_opts_t io = {0};
  io.name = "kvu-inbox";
  io.command_timeout_ms = KVU_BLOCK_MS + k->opts.commit_timeout_ms;
  io.on_state = on_inbox_state;
  io.data = k;
  rc = sc_redis_new(&k->inbox, loop, addr, &io);
  if (rc != 0) goto fail;

  uv_timer_init(loop, &k->lease_timer);
  k->lease_timer.data = k;
  k->lease_timer_open = 1;
  uint64_t every = (uint64_t)k->opts.lease_ms / 5;
  uv_timer_start(&k->lease_timer, on_lease_tick, every, every);
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
  if (k->lease_timer_open) {
    uv_timer_stop(&k->lease_timer);
    uv_close((uv_handle_t *)&k->lease_timer, on_lease_timer_closed);
  }
  if (k->lease != NULL) {
    k->reconnects_closed += sc_redis_reconnects(k->lease);
    sc_redis_t *l = k->lease;
    k->lease = NULL;
    sc_redis_close(l);
  }
  if (k->inbox != NULL) {
    k->reconnects_closed += sc_redis_reconnects(k->inbox);
    sc_redis_t *ib = k->inbox;
    k->inbox = NULL;
    sc_redis_close(ib);
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
  k->sub_up = k->cmd_up = k->lease_up = k->inbox_up = 0;
  if (k->pending.n + k->inflight.n > 0)
    SC_ERROR("shutting down with %zu message(s) not committed", k->pending.n + k->inflight.n);
  maybe_free(k);
}

static void maybe_free(kvu_t *k) {
  if (k->state != KVU_CLOSED || k->tickets != 0 || k->drain_timer_open || k->lease_timer_open) return;
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

/* Drop the oldest pending pub/sub items until one more of `bytes` fits.
 * Inbox entries are never dropped here: their number is bounded by reading
 * only while the queue is short, and they are durable in the stream. */
static void make_room(kvu_t *k, size_t bytes) {
  while (k->pending.n > 0 && (k->pending.n + 1 > k->opts.pending_max_messages ||
                              k->pending.bytes + bytes > k->opts.pending_max_bytes)) {
    item_t *old = k->pending.head;
    while (old != NULL && old->entry_id != NULL) old = old->next;
    if (old == NULL) return;
    list_remove(&k->pending, old);
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
  if (!k->leader) {
    /* Only the leader commits; a raw PUBLISH during a failover is lost (at-most-once). */
    k->st.standby_ignored++;
    return;
  }
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
    rc = sc_commit_argv_src(&cmd, it->use_eval, it->topic, it->topic_len, it->data, it->data_len, it->entry_id,
                            k->token);
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
  if (k->leader && mono_ms() >= k->valid_until) step_down(k, "lease not renewed in time");
  if (!k->leader) return;
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
  inbox_next(k);
}

/* Is there an item for it's topic after it in its list? (Only asked of
 * pub/sub items: an inbox entry must reach the script to be acknowledged,
 * and the script skips it if a later one was applied.) */
static int superseded(const item_t *it) {
  if (it->entry_id != NULL) return 0;
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
    if (error_is(reply, "NOTLEADER")) {
      k->st.fenced++;
      step_down(k, "the commit script says another kv-updater holds the lease");
      check_drained(k);
      return;
    }
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
        if (it->entry_id != NULL) k->st.stream_committed++;
        k->st.last_seq = (uint64_t)reply->element[1]->integer;
        SC_DEBUG("committed topic %s seq %lld", it->topic, reply->element[1]->integer);
      } else {
        k->st.unchanged++;
        if (reply->elements >= 5 && reply->element[4]->type == REDIS_REPLY_INTEGER && reply->element[4]->integer == 1)
          k->st.stream_stale++;
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

/* ---- leadership ------------------------------------------------------- */

/* Lease commands (ticket->renew). */
enum { LEASE_ACQUIRE = 0, LEASE_RENEW = 1, LEASE_RELEASE = 2 };
/* Inbox commands (ticket->renew). */
enum { INBOX_GROUP = 10, INBOX_CLAIM = 11, INBOX_READ = 12 };

/* Take the lease, or keep our own if it is still there. */
static const char acquire_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end\n"
    "return 0\n";
/* Extend the lease only while it is still ours. */
static const char renew_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                   "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                   "  return 1\n"
                                   "end\n"
                                   "return 0\n";
static const char release_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                     "  redis.call('DEL', KEYS[1])\n"
                                     "  return 1\n"
                                     "end\n"
                                     "return 0\n";

static ticket_t *ticket_new(kvu_t *k, int kind) {
  ticket_t *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  t->k = k;
  t->gen = k->gen;
  t->sent_ms = mono_ms();
  t->renew = kind;
  return t;
}

static int lease_send(kvu_t *k, int kind) {
  if (k->lease == NULL || !k->lease_up) return SC_ECONN;
  ticket_t *t = ticket_new(k, kind);
  if (t == NULL) return SC_ENOMEM;
  char ms[24];
  snprintf(ms, sizeof ms, "%d", k->opts.lease_ms);
  const char *script = kind == LEASE_ACQUIRE ? acquire_script : kind == LEASE_RENEW ? renew_script : release_script;
  const char *argv[6] = {"EVAL", script, "1", SC_KEYS_LEADER, k->token, ms};
  size_t argvlen[6];
  for (int i = 0; i < 6; i++) argvlen[i] = strlen(argv[i]);
  int rc = sc_redis_command_argv(k->lease, on_lease_reply, t, 6, argv, argvlen);
  if (rc != 0) {
    free(t);
    return rc;
  }
  k->tickets++;
  k->lease_busy = 1;
  if (kind == LEASE_RENEW) k->last_renew_sent = t->sent_ms;
  return 0;
}

static void become_leader(kvu_t *k, uint64_t sent_ms) {
  k->leader = 1;
  k->gen++;
  k->st.leader_changes++;
  k->valid_until = sent_ms + (uint64_t)k->opts.lease_ms;
  k->last_renew_sent = sent_ms;
  k->group_ready = 0;
  k->claiming = 1;
  snprintf(k->claim_cursor, sizeof k->claim_cursor, "0-0");
  k->claim_min_idle = 0;
  k->last_reclaim = mono_ms();
  SC_INFO("became the leader (lease %d ms): committing; claiming pending %s entries first", k->opts.lease_ms,
          SC_KEYS_INBOX);
  inbox_next(k);
  flush(k);
}

/* Stop committing now. Queued and in-flight items are dropped: inbox
 * entries stay pending in the group for the next leader; pub/sub messages
 * are lost (at-most-once). A commit already sent is fenced by the script if
 * someone else holds the lease by the time it runs. */
static void step_down(kvu_t *k, const char *why) {
  if (!k->leader) return;
  size_t n = k->pending.n + k->inflight.n;
  k->leader = 0;
  k->gen++;
  k->st.leader_changes++;
  k->group_ready = 0;
  k->claiming = 0;
  SC_WARN("stepping down as leader: %s; dropping %zu queued commit(s)", why, n);
  for (item_t *it = k->inflight.head; it != NULL; it = it->next) {
    if (it->ticket != NULL) it->ticket->item = NULL;
    it->ticket = NULL;
  }
  list_free_all(&k->inflight);
  list_free_all(&k->pending);
  /* Cancel a blocking read so no new entry is delivered to us. */
  if (k->inbox != NULL && k->inbox_busy > 0) sc_redis_reset(k->inbox, "stepped down");
}

static void on_lease_tick(uv_timer_t *tm) {
  kvu_t *k = tm->data;
  if (k->state == KVU_CLOSED) return;
  uint64_t now = mono_ms();
  if (k->leader && now >= k->valid_until) {
    step_down(k, "lease not renewed in time");
    check_drained(k);
  }
  if (k->leader && !k->claiming && now - k->last_reclaim >= (uint64_t)k->opts.lease_ms) {
    /* Entries delivered to a consumer that died or was paused. */
    k->claiming = 1;
    snprintf(k->claim_cursor, sizeof k->claim_cursor, "0-0");
    k->claim_min_idle = 2 * (uint64_t)k->opts.lease_ms;
    k->last_reclaim = now;
  }
  if (k->leader) inbox_next(k);
  if (k->lease_busy || k->releasing) return;
  int rc = 0;
  if (k->leader) {
    if (now - k->last_renew_sent >= (uint64_t)k->opts.lease_ms / 3) rc = lease_send(k, LEASE_RENEW);
  } else if (k->state == KVU_RUNNING) {
    rc = lease_send(k, LEASE_ACQUIRE);
  }
  if (rc == SC_ENOMEM) SC_ERROR("out of memory sending a lease command");
}

static void on_lease_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata) {
  (void)r;
  ticket_t *t = privdata;
  kvu_t *k = t->k;
  int kind = t->renew;
  uint64_t sent = t->sent_ms, gen = t->gen;
  free(t);
  k->tickets--;
  if (k->state == KVU_CLOSED) {
    maybe_free(k);
    return;
  }
  k->lease_busy = 0;
  if (kind == LEASE_RELEASE) {
    k->releasing = 0;
    if (status == 0 && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
      SC_INFO("released the lease");
    finish_drain(k);
    return;
  }
  if (status != 0 || reply->type == REDIS_REPLY_ERROR) {
    const char *what = status != 0 ? sc_strerror(status) : reply->str;
    if (k->leader) {
      SC_WARN("lease %s failed: %s", kind == LEASE_RENEW ? "renewal" : "command", what);
      step_down(k, "lease renewal failed");
      check_drained(k);
    } else {
      SC_DEBUG("lease attempt failed: %s", what);
    }
    return;
  }
  int ok = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
  if (kind == LEASE_ACQUIRE) {
    if (!k->role_known && !ok) SC_INFO("another kv-updater holds the lease: standing by");
    k->role_known = 1;
    if (ok && !k->leader && k->state == KVU_RUNNING) become_leader(k, sent);
    return;
  }
  if (!k->leader || gen != k->gen) return;
  if (ok) {
    k->valid_until = sent + (uint64_t)k->opts.lease_ms;
  } else {
    step_down(k, "the lease is gone or held by another kv-updater");
    check_drained(k);
    /* Redis may have lost its data (and the lease with it): try at once. */
    if (k->state == KVU_RUNNING && lease_send(k, LEASE_ACQUIRE) == SC_ENOMEM)
      SC_ERROR("out of memory sending a lease command");
  }
}

static void on_lease_timer_closed(uv_handle_t *h) {
  kvu_t *k = h->data;
  k->lease_timer_open = 0;
  maybe_free(k);
}

static void on_lease_state(sc_redis_t *r, int up, const char *why, void *data) {
  (void)r;
  kvu_t *k = data;
  k->lease_up = up;
  if (!up) {
    /* Not ready again until a lease attempt on the new connection answers. */
    k->role_known = 0;
    if (k->state == KVU_RUNNING) SC_WARN("lease connection down (%s)", why != NULL ? why : "?");
    return;
  }
  if (k->lease_timer_open) on_lease_tick(&k->lease_timer);
}

static void release_lease(kvu_t *k) {
  if (k->leader) {
    k->leader = 0;
    k->gen++;
  }
  k->releasing = 1;
  if (lease_send(k, LEASE_RELEASE) != 0) {
    k->releasing = 0;
    finish_drain(k);
  }
}

/* ---- the inbox stream ------------------------------------------------- */

static void on_inbox_state(sc_redis_t *r, int up, const char *why, void *data) {
  (void)r;
  kvu_t *k = data;
  k->inbox_up = up;
  if (!up) {
    if (k->state == KVU_RUNNING && k->leader) SC_WARN("inbox connection down (%s)", why != NULL ? why : "?");
    return;
  }
  if (k->leader) {
    /* A read answered on the lost connection delivered entries to us that
     * we never saw: claim our own pending entries again. */
    k->claiming = 1;
    snprintf(k->claim_cursor, sizeof k->claim_cursor, "0-0");
    k->claim_min_idle = 0;
  }
  inbox_next(k);
}

static int inbox_send(kvu_t *k, int kind, int argc, const char **argv) {
  ticket_t *t = ticket_new(k, kind);
  if (t == NULL) return SC_ENOMEM;
  size_t argvlen[16];
  for (int i = 0; i < argc; i++) argvlen[i] = strlen(argv[i]);
  int rc = sc_redis_command_argv(k->inbox, on_inbox_reply, t, argc, argv, argvlen);
  if (rc != 0) {
    free(t);
    return rc;
  }
  k->tickets++;
  k->inbox_busy++;
  return 0;
}

/* Issue the next inbox command of this term, if none is in flight. */
static void inbox_next(kvu_t *k) {
  if (!k->leader || k->state != KVU_RUNNING || k->inbox == NULL || !k->inbox_up || k->inbox_busy > 0) return;
  char count[16], block[16], idle[24];
  snprintf(count, sizeof count, "%d", KVU_READ_COUNT);
  snprintf(block, sizeof block, "%d", KVU_BLOCK_MS);
  snprintf(idle, sizeof idle, "%llu", (unsigned long long)k->claim_min_idle);
  int rc;
  if (!k->group_ready) {
    const char *argv[] = {"XGROUP", "CREATE", SC_KEYS_INBOX, SC_KEYS_INBOX_GROUP, "0", "MKSTREAM"};
    rc = inbox_send(k, INBOX_GROUP, 6, argv);
  } else if (k->claiming) {
    const char *argv[] = {"XAUTOCLAIM",     SC_KEYS_INBOX, SC_KEYS_INBOX_GROUP, k->token, idle, k->claim_cursor,
                          "COUNT",          count};
    rc = inbox_send(k, INBOX_CLAIM, 8, argv);
  } else {
    /* Read only while the queue is short: entries wait in the stream, not in memory. */
    if (k->pending.n + k->inflight.n >= k->opts.max_inflight) return;
    const char *argv[] = {"XREADGROUP", "GROUP", SC_KEYS_INBOX_GROUP, k->token, "COUNT", count,
                          "BLOCK",      block,   "STREAMS",           SC_KEYS_INBOX, ">"};
    rc = inbox_send(k, INBOX_READ, 11, argv);
  }
  if (rc == SC_ENOMEM) SC_ERROR("out of memory sending an inbox command");
}

static void ack_entry(kvu_t *k, const char *id) {
  const char *cmds[2][4] = {{"XACK", SC_KEYS_INBOX, SC_KEYS_INBOX_GROUP, id}, {"XDEL", SC_KEYS_INBOX, id, NULL}};
  for (int c = 0; c < 2; c++) {
    int argc = c == 0 ? 4 : 3;
    size_t argvlen[4];
    for (int i = 0; i < argc; i++) argvlen[i] = strlen(cmds[c][i]);
    ticket_t *t = ticket_new(k, 0);
    if (t == NULL) return;
    if (k->cmd != NULL && sc_redis_command_argv(k->cmd, on_aux_reply, t, argc, cmds[c], argvlen) == 0) k->tickets++;
    else free(t);
  }
}

/* Queue one entry [id, [field, value, ...]] for commit (or reject it). */
static void take_entry(kvu_t *k, const redisReply *e) {
  if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING) return;
  const char *id = e->element[0]->str;
  const redisReply *f = e->element[1];
  const char *topic = NULL, *msg = NULL;
  size_t topic_len = 0, msg_len = 0;
  if (f->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
      const redisReply *name = f->element[i], *val = f->element[i + 1];
      if (name->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING) continue;
      if (name->len == 5 && memcmp(name->str, "topic", 5) == 0) topic = val->str, topic_len = val->len;
      if (name->len == 4 && memcmp(name->str, "data", 4) == 0) msg = val->str, msg_len = val->len;
    }
  }
  if (topic == NULL || msg == NULL) {
    sc_reject_t why = {"inbox entry without topic and data fields", 0};
    reject(k, SC_KEYS_INBOX, strlen(SC_KEYS_INBOX), topic != NULL ? topic : "", topic_len, SC_EJSON, &why,
           msg != NULL ? msg : "", msg_len);
    ack_entry(k, id);
    return;
  }
  char *compact = NULL;
  size_t compact_len = 0;
  int is_delete = 0;
  sc_reject_t why = {NULL, 0};
  int rc = sc_message_check(topic, topic_len, msg, msg_len, k->opts.max_message_bytes, &compact, &compact_len,
                            &is_delete, &why);
  if (rc == SC_ENOMEM) {
    SC_ERROR("out of memory checking inbox entry %s: left pending", id);
    return;
  }
  if (rc != 0) {
    reject(k, SC_KEYS_INBOX, strlen(SC_KEYS_INBOX), topic, topic_len, rc, &why, msg, msg_len);
    ack_entry(k, id);
    return;
  }
  item_t *it = calloc(1, sizeof *it);
  char *t = strndup(topic, topic_len);
  char *eid = strdup(id);
  if (it == NULL || t == NULL || eid == NULL) {
    free(it);
    free(t);
    free(eid);
    free(compact);
    SC_ERROR("out of memory queueing inbox entry %s: left pending", id);
    return;
  }
  it->kind = ITEM_COMMIT;
  it->topic = t;
  it->topic_len = topic_len;
  it->entry_id = eid;
  if (is_delete) free(compact);
  it->data = is_delete ? NULL : compact;
  it->data_len = is_delete ? 0 : compact_len;
  make_room(k, item_bytes(it));
  list_push_back(&k->pending, it);
}

static void take_entries(kvu_t *k, const redisReply *entries) {
  if (entries == NULL || entries->type != REDIS_REPLY_ARRAY) return;
  for (size_t i = 0; i < entries->elements; i++) take_entry(k, entries->element[i]);
  flush(k);
}

static void on_inbox_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata) {
  (void)r;
  ticket_t *t = privdata;
  kvu_t *k = t->k;
  int kind = t->renew;
  uint64_t gen = t->gen;
  free(t);
  k->tickets--;
  if (k->state == KVU_CLOSED) {
    maybe_free(k);
    return;
  }
  k->inbox_busy--;
  /* Entries answered to an earlier term stay pending in the group; the
   * current leader's claim picks them up. */
  if (gen != k->gen || !k->leader || k->state != KVU_RUNNING) {
    inbox_next(k);
    return;
  }
  if (status != 0) return; /* the connection is re-made; on_inbox_state resumes */
  if (reply->type == REDIS_REPLY_ERROR) {
    if (error_is(reply, "BUSYGROUP")) {
      k->group_ready = 1;
      inbox_next(k);
    } else if (error_is(reply, "NOGROUP")) {
      k->group_ready = 0; /* Redis lost the stream: create it again */
      inbox_next(k);
    } else {
      SC_WARN("%s: Redis answered %.*s (retrying)", SC_KEYS_INBOX, (int)reply->len, reply->str);
      /* the lease tick retries */
    }
    return;
  }
  switch (kind) {
  case INBOX_GROUP:
    k->group_ready = 1;
    break;
  case INBOX_CLAIM:
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 && reply->element[0]->type == REDIS_REPLY_STRING) {
      snprintf(k->claim_cursor, sizeof k->claim_cursor, "%s", reply->element[0]->str);
      if (reply->element[1]->type == REDIS_REPLY_ARRAY && reply->element[1]->elements > 0)
        SC_INFO("claimed %zu pending %s entr%s (idle >= %llu ms)", reply->element[1]->elements, SC_KEYS_INBOX,
                reply->element[1]->elements == 1 ? "y" : "ies", (unsigned long long)k->claim_min_idle);
      take_entries(k, reply->element[1]);
      if (strcmp(k->claim_cursor, "0-0") == 0) k->claiming = 0;
    } else {
      k->claiming = 0;
    }
    break;
  case INBOX_READ:
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 && reply->element[0]->type == REDIS_REPLY_ARRAY &&
        reply->element[0]->elements >= 2)
      take_entries(k, reply->element[0]->element[1]);
    break;
  default:
    break;
  }
  inbox_next(k);
}

/* ---- draining --------------------------------------------------------- */

static void finish_drain(kvu_t *k) {
  if (k->state != KVU_DRAINING || k->drain_done) return;
  k->drain_done = 1;
  size_t left = k->pending.n + k->inflight.n;
  if (k->drain_timer_open) {
    uv_timer_stop(&k->drain_timer);
  }
  k->drained_cb(k, left, k->drained_data);
}

/* Once nothing is left to commit, hand the lease back so a standby (or
 * the next start) takes over at once, then report. */
static void check_drained(kvu_t *k) {
  if (k->state != KVU_DRAINING || k->drain_done || k->releasing) return;
  if (k->pending.n + k->inflight.n > 0) return;
  if (k->leader || k->role_known) release_lease(k);
  else finish_drain(k);
}

static void on_drain_timeout(uv_timer_t *t) {
  kvu_t *k = t->data;
  if (k->drain_done) return;
  if (k->pending.n + k->inflight.n == 0) {
    check_drained(k);
    return;
  }
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
  if (k->inbox != NULL) {
    k->reconnects_closed += sc_redis_reconnects(k->inbox);
    sc_redis_t *ib = k->inbox;
    k->inbox = NULL;
    k->inbox_up = 0;
    sc_redis_close(ib);
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
  if (!k->lease_up || !k->inbox_up) {
    *why = "redis lease or inbox connection down";
    return 0;
  }
  if (!k->role_known && !k->leader) {
    *why = "lease not tried yet";
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
  st->leader = k->leader;
  st->reconnects += (k->lease != NULL ? sc_redis_reconnects(k->lease) : 0) +
                    (k->inbox != NULL ? sc_redis_reconnects(k->inbox) : 0);
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
  metric(&o, "statecast_kvu_leader", "gauge", "1 while this kv-updater holds the lease and commits.");
  out(&o, "statecast_kvu_leader %d\n", st->leader ? 1 : 0);
  metric(&o, "statecast_kvu_leadership_changes_total", "counter", "Times this kv-updater became leader or stepped down.");
  out(&o, "statecast_kvu_leadership_changes_total %" PRIu64 "\n", st->leader_changes);
  metric(&o, "statecast_kvu_stream_committed_total", "counter", "statecast:inbox entries that committed a change.");
  out(&o, "statecast_kvu_stream_committed_total %" PRIu64 "\n", st->stream_committed);
  metric(&o, "statecast_kvu_stream_stale_total", "counter",
         "statecast:inbox entries skipped because they were already applied or superseded.");
  out(&o, "statecast_kvu_stream_stale_total %" PRIu64 "\n", st->stream_stale);
  metric(&o, "statecast_kvu_fenced_total", "counter", "Commits refused because another kv-updater holds the lease.");
  out(&o, "statecast_kvu_fenced_total %" PRIu64 "\n", st->fenced);
  metric(&o, "statecast_kvu_standby_ignored_total", "counter", "Pub/sub messages ignored while standing by.");
  out(&o, "statecast_kvu_standby_ignored_total %" PRIu64 "\n", st->standby_ignored);
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
