/*
 * inbox: kv-updater's consumer of the durable stream statecast:inbox
 * (consumer group "kv-updater", consumer name = the lease token).
 *
 * Only the leader reads, one command at a time, on a connection of its own
 * (XREADGROUP blocks for KVU_BLOCK_MS and would stall anything queued
 * behind it). A new term first creates the group (XGROUP CREATE ...
 * MKSTREAM; BUSYGROUP means it exists), then claims every entry pending in
 * the group (XAUTOCLAIM from 0-0, idle 0), then reads new ones (">"), and
 * only while the commit queue is shorter than max_inflight, so entries wait
 * in the stream rather than in memory. The lease timer re-claims entries
 * idle for 2*lease_ms (a consumer that died or paused); a reconnect of this
 * connection re-claims our own pending entries, since a read answered on
 * the lost connection may have delivered entries we never saw.
 *
 * Valid entries are queued for commit with their id; the commit script
 * acknowledges and deletes them with the commit. Entries refused by the
 * message contract are recorded (reject.c) and XACKed + XDELed here.
 * Replies for an earlier term are ignored: the entries stay pending in the
 * group for the current leader's claim.
 */
#include "updater_internal.h"

#include "envelope.h"
#include "err.h"
#include "keys.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_inbox_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata);

/* Inbox commands (ticket->renew). */
enum { INBOX_GROUP = 10, INBOX_CLAIM = 11, INBOX_READ = 12 };

void kvu_on_inbox_state(sc_redis_t *r, int up, const char *why, void *data) {
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
  kvu_inbox_next(k);
}

static int inbox_send(kvu_t *k, int kind, int argc, const char **argv) {
  ticket_t *t = kvu_ticket_new(k, kind);
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

void kvu_inbox_next(kvu_t *k) {
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

/* Acknowledge and delete a refused entry (fire and forget, on the command
 * connection; if that is down the entry stays pending and is claimed again). */
static void ack_entry(kvu_t *k, const char *id) {
  const char *cmds[2][4] = {{"XACK", SC_KEYS_INBOX, SC_KEYS_INBOX_GROUP, id}, {"XDEL", SC_KEYS_INBOX, id, NULL}};
  for (int c = 0; c < 2; c++) {
    int argc = c == 0 ? 4 : 3;
    size_t argvlen[4];
    for (int i = 0; i < argc; i++) argvlen[i] = strlen(cmds[c][i]);
    ticket_t *t = kvu_ticket_new(k, 0);
    if (t == NULL) return;
    if (k->cmd != NULL && sc_redis_command_argv(k->cmd, kvu_on_aux_reply, t, argc, cmds[c], argvlen) == 0) k->tickets++;
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
    kvu_reject(k, SC_KEYS_INBOX, strlen(SC_KEYS_INBOX), topic != NULL ? topic : "", topic_len, SC_EJSON, &why,
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
    kvu_reject(k, SC_KEYS_INBOX, strlen(SC_KEYS_INBOX), topic, topic_len, rc, &why, msg, msg_len);
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
  kvu_make_room(k, kvu_item_bytes(it));
  kvu_list_push_back(&k->pending, it);
}

static void take_entries(kvu_t *k, const redisReply *entries) {
  if (entries == NULL || entries->type != REDIS_REPLY_ARRAY) return;
  for (size_t i = 0; i < entries->elements; i++) take_entry(k, entries->element[i]);
  kvu_flush(k);
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
    kvu_maybe_free(k);
    return;
  }
  k->inbox_busy--;
  /* Entries answered to an earlier term stay pending in the group; the
   * current leader's claim picks them up. */
  if (gen != k->gen || !k->leader || k->state != KVU_RUNNING) {
    kvu_inbox_next(k);
    return;
  }
  if (status != 0) return; /* the connection is re-made; kvu_on_inbox_state resumes */
  if (reply->type == REDIS_REPLY_ERROR) {
    if (kvu_error_is(reply, "BUSYGROUP")) {
      k->group_ready = 1;
      kvu_inbox_next(k);
    } else if (kvu_error_is(reply, "NOGROUP")) {
      k->group_ready = 0; /* Redis lost the stream: create it again */
      kvu_inbox_next(k);
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
  kvu_inbox_next(k);
}
