/*
 * queue: kv-updater's commit queue on the command connection.
 *
 * Items wait in pending (bounded: the oldest pub/sub item is dropped when
 * it is full) and move to inflight when sent; Redis answers in order, so
 * commits land in arrival order and per-topic order is publish order. Each
 * send is an EVALSHA of the commit script (EVAL after NOSCRIPT) carrying
 * the lease token, so a stale leader is fenced ("NOTLEADER"); a refused
 * message is an LPUSH + LTRIM of statecast:rejected instead.
 *
 * When the command connection fails (or Redis answers a transient error)
 * every in-flight item goes back to the front of pending, in order, and is
 * sent again once the connection is back; a commit that did land is
 * harmless to repeat (the script finds it identical or already applied).
 * Only the leader sends: flush() steps down first if the lease ran out.
 *
 * Ownership: an item belongs to the list it is in; its ticket is the
 * command's privdata, freed in the reply callback (see updater_internal.h).
 */
#include "updater_internal.h"

#include "commit.h"
#include "err.h"
#include "keys.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

static void on_commit_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata);

/* ---- lists ------------------------------------------------------------ */

void kvu_list_push_back(item_list_t *l, item_t *it) {
  it->next = NULL;
  it->prev = l->tail;
  if (l->tail != NULL) l->tail->next = it;
  else l->head = it;
  l->tail = it;
  l->n++;
  l->bytes += kvu_item_bytes(it);
}

static item_t *list_pop_front(item_list_t *l) {
  item_t *it = l->head;
  if (it == NULL) return NULL;
  l->head = it->next;
  if (l->head != NULL) l->head->prev = NULL;
  else l->tail = NULL;
  l->n--;
  l->bytes -= kvu_item_bytes(it);
  it->next = it->prev = NULL;
  return it;
}

static void list_remove(item_list_t *l, item_t *it) {
  if (it->prev != NULL) it->prev->next = it->next;
  else l->head = it->next;
  if (it->next != NULL) it->next->prev = it->prev;
  else l->tail = it->prev;
  l->n--;
  l->bytes -= kvu_item_bytes(it);
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

void kvu_item_free(item_t *it) {
  if (it == NULL) return;
  free(it->entry_id);
  free(it->topic);
  free(it->data);
  free(it);
}

void kvu_list_free_all(item_list_t *l) {
  item_t *it;
  while ((it = list_pop_front(l)) != NULL) kvu_item_free(it);
}

/* ---- connection state ------------------------------------------------- */

void kvu_on_cmd_state(sc_redis_t *r, int up, const char *why, void *data) {
  (void)r;
  kvu_t *k = data;
  k->cmd_up = up;
  if (!up) {
    /* Whatever is in flight may or may not have run: send it all again,
     * in order, once the connection is back (replies still on their way
     * for the old connection find their tickets detached). */
    kvu_requeue_inflight(k, 0);
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
    if (sc_redis_command(k->cmd, kvu_on_aux_reply, t, "SCRIPT LOAD %s", sc_commit_script) == 0) k->tickets++;
    else free(t);
  }
  kvu_flush(k);
}

/* ---- queueing --------------------------------------------------------- */

/* Drop the oldest pending pub/sub items until one more of `bytes` fits.
 * Inbox entries are never dropped here: their number is bounded by reading
 * only while the queue is short, and they are durable in the stream. */
void kvu_make_room(kvu_t *k, size_t bytes) {
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
    kvu_item_free(old);
  }
}

void kvu_enqueue(kvu_t *k, item_t *it) {
  kvu_make_room(k, kvu_item_bytes(it));
  kvu_list_push_back(&k->pending, it);
  kvu_flush(k);
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
        if (sc_redis_command(k->cmd, kvu_on_aux_reply, aux, "LTRIM %s 0 %d", SC_KEYS_REJECTED,
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

void kvu_flush(kvu_t *k) {
  if (k->cmd == NULL || !k->cmd_up) return;
  if (k->leader && kvu_mono_ms() >= k->valid_until) kvu_step_down(k, "lease not renewed in time");
  if (!k->leader) return;
  while (k->pending.head != NULL && k->inflight.n < k->opts.max_inflight) {
    item_t *it = list_pop_front(&k->pending);
    int rc = send_item(k, it);
    if (rc != 0) {
      /* Not connected after all (or no memory): put it back, wait for the next up. */
      item_list_t one = {it, it, 1, kvu_item_bytes(it)};
      list_splice_front(&k->pending, &one);
      if (rc == SC_ENOMEM) SC_ERROR("out of memory sending a commit; will retry");
      return;
    }
    kvu_list_push_back(&k->inflight, it);
  }
  kvu_inbox_next(k);
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
void kvu_requeue_inflight(kvu_t *k, int use_eval) {
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
      kvu_item_free(it);
      k->st.superseded++;
    }
    it = next;
  }
}

/* ---- replies ---------------------------------------------------------- */

static void on_commit_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata) {
  (void)r;
  ticket_t *t = privdata;
  kvu_t *k = t->k;
  item_t *it = t->item;
  free(t);
  k->tickets--;
  if (it == NULL || k->state == KVU_CLOSED) {
    /* Detached (already re-queued) or shutting down. */
    if (k->state == KVU_CLOSED) kvu_maybe_free(k);
    return;
  }
  it->ticket = NULL;
  if (status != 0) {
    /* SC_ECONN / SC_ETIMEOUT: the connection is being re-made; resend all later. */
    SC_WARN("commit not answered (%s): re-queueing %zu in-flight message(s)", sc_strerror(status), k->inflight.n);
    kvu_requeue_inflight(k, 0);
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    if (kvu_error_is(reply, "NOTLEADER")) {
      k->st.fenced++;
      kvu_step_down(k, "the commit script says another kv-updater holds the lease");
      kvu_check_drained(k);
      return;
    }
    if (kvu_error_is(reply, "NOSCRIPT")) {
      /* The script cache was flushed: this and everything behind it go
       * again, in order, with EVAL (which also reloads the script). */
      SC_WARN("commit script not loaded in Redis; resending %zu message(s) with EVAL", k->inflight.n);
      kvu_requeue_inflight(k, 1);
      kvu_flush(k);
      return;
    }
    if (kvu_error_is(reply, "LOADING") || kvu_error_is(reply, "BUSY") || kvu_error_is(reply, "TRYAGAIN") ||
        kvu_error_is(reply, "MASTERDOWN") || kvu_error_is(reply, "READONLY") || kvu_error_is(reply, "OOM")) {
      SC_WARN("Redis cannot commit right now (%.*s); reconnecting and retrying", (int)reply->len, reply->str);
      kvu_requeue_inflight(k, 0);
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
    kvu_item_free(it);
    kvu_flush(k);
    kvu_check_drained(k);
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
  kvu_item_free(it);
  kvu_flush(k);
  kvu_check_drained(k);
}

void kvu_on_aux_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata) {
  (void)r;
  ticket_t *t = privdata;
  kvu_t *k = t->k;
  free(t);
  k->tickets--;
  if (k->state == KVU_CLOSED) {
    kvu_maybe_free(k);
    return;
  }
  if (status == 0 && reply != NULL && reply->type == REDIS_REPLY_ERROR)
    SC_WARN("Redis answered %.*s", (int)reply->len, reply->str);
}
