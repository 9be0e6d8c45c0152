/*
 * updater_internal: the kvu_t shared by the files of kvu_core (not for
 * tests or main.c; the public contract is updater.h).
 *
 *   updater.c  wiring and lifecycle: the four connections, the pub/sub
 *              subscription, tickets, draining and freeing
 *   queue.c    the commit queue: pending/inflight FIFOs, the commit script,
 *              in-order resend after a reconnect
 *   lease.c    leadership: the lease statecast:leader, its token (fencing),
 *              renewals, stepping down
 *   inbox.c    the statecast:inbox consumer: XGROUP, XAUTOCLAIM, XREADGROUP,
 *              XACK/XDEL of refused entries
 *   reject.c   refused messages: counters, log line, statecast:rejected
 *   metrics.c  readiness, the stats snapshot and its Prometheus text
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
 *
 * Everything here runs on the one loop thread of the kvu_t.
 */
#ifndef KVU_UPDATER_INTERNAL_H
#define KVU_UPDATER_INTERNAL_H

#include "updater.h"

#include "envelope.h"

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

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
  int renew;        /* lease command: 1 renew, 0 acquire, 2 release (lease.c); inbox command kinds (inbox.c) */
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

static inline uint64_t kvu_mono_ms(void) { return uv_hrtime() / 1000000u; }

static inline size_t kvu_item_bytes(const item_t *it) { return sizeof *it + it->topic_len + it->data_len; }

/* Does an error reply start with prefix (e.g. "NOTLEADER")? */
static inline int kvu_error_is(const redisReply *reply, const char *prefix) {
  size_t n = strlen(prefix);
  return reply->len >= n && memcmp(reply->str, prefix, n) == 0;
}

/* ---- updater.c: lifecycle ---------------------------------------------- */

/* A ticket of this term for a command of the given kind (ticket->renew),
 * stamped now; NULL on out of memory. The caller counts it in k->tickets
 * once the command is accepted, or frees it. */
ticket_t *kvu_ticket_new(kvu_t *k, int kind);
/* Free k once it is closed and no callback or timer can still reach it.
 * Call after every ticket or handle callback that finds k closed. */
void kvu_maybe_free(kvu_t *k);
/* While draining: release the lease once nothing is left, then report. */
void kvu_check_drained(kvu_t *k);
/* While draining: call the drained callback (once). */
void kvu_finish_drain(kvu_t *k);

/* ---- queue.c: the commit queue ------------------------------------------ */

void kvu_list_push_back(item_list_t *l, item_t *it);
void kvu_list_free_all(item_list_t *l);
/* Frees the item and everything it owns; NULL is a no-op. */
void kvu_item_free(item_t *it);
/* Drop the oldest pending pub/sub items until one more of `bytes` fits. */
void kvu_make_room(kvu_t *k, size_t bytes);
/* Queue it (takes ownership) and send what the connection takes. */
void kvu_enqueue(kvu_t *k, item_t *it);
/* Send pending items while leader and below max_inflight, then let the
 * inbox read more. */
void kvu_flush(kvu_t *k);
/* Put every in-flight item back at the front of pending, in order. */
void kvu_requeue_inflight(kvu_t *k, int use_eval);
void kvu_on_cmd_state(sc_redis_t *r, int up, const char *why, void *data);
/* Reply callback of fire-and-forget commands on cmd (privdata: a ticket). */
void kvu_on_aux_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata);

/* ---- lease.c: leadership ------------------------------------------------ */

void kvu_step_down(kvu_t *k, const char *why);
/* Hand the lease back while draining; kvu_finish_drain() follows. */
void kvu_release_lease(kvu_t *k);
void kvu_on_lease_state(sc_redis_t *r, int up, const char *why, void *data);
void kvu_on_lease_tick(uv_timer_t *t);
void kvu_on_lease_timer_closed(uv_handle_t *h);

/* ---- inbox.c: the statecast:inbox consumer ------------------------------ */

/* Issue the next inbox command of this term, if none is in flight. */
void kvu_inbox_next(kvu_t *k);
void kvu_on_inbox_state(sc_redis_t *r, int up, const char *why, void *data);

/* ---- reject.c: refused messages ------------------------------------------ */

/* Count, log and queue a statecast:rejected record for one refused message
 * (all buffers borrowed for the call). */
void kvu_reject(kvu_t *k, const char *channel, size_t channel_len, const char *topic, size_t topic_len, int code,
                const sc_reject_t *why, const char *msg, size_t msg_len);

#endif
