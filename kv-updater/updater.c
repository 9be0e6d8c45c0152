/*
 * updater: subscribe, check, commit (see updater.h for the contract).
 *
 * This file wires kvu_t together and runs its lifecycle: it opens the four
 * connections (sub, cmd, lease, inbox) and the lease timer, takes pub/sub
 * messages from the subscription, hands out the tickets that keep kvu_t
 * alive while callbacks are pending, drains at shutdown and frees kvu_t
 * once the last callback has run. The work itself lives next door (see
 * updater_internal.h for the shared struct and who does what):
 * queue.c commits, lease.c leads, inbox.c reads the stream, reject.c
 * records refused messages, metrics.c reports.
 */
#include "updater_internal.h"

#include "commit.h"
#include "envelope.h"
#include "err.h"
#include "keys.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

static void on_sub_state(sc_redis_t *r, int up, const char *why, void *data);
static void on_message(sc_redis_t *r, const char *pattern, const char *channel, size_t channel_len, const char *msg,
                       size_t msg_len, void *data);
static void on_drain_timeout(uv_timer_t *t);
static void on_drain_timer_closed(uv_handle_t *h);

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
  co.on_state = kvu_on_cmd_state;
  co.data = k;
  rc = sc_redis_new(&k->cmd, loop, addr, &co);
  if (rc != 0) goto fail;

  sc_redis_opts_t lo = {0};
  lo.name = "kvu-lease";
  lo.command_timeout_ms = k->opts.lease_ms;
  lo.backoff_max_ms = k->opts.lease_ms / 5 > 100 ? k->opts.lease_ms / 5 : 100;
  lo.on_state = kvu_on_lease_state;
  lo.data = k;
  rc = sc_redis_new(&k->lease, loop, addr, &lo);
  if (rc != 0) goto fail;

  sc_redis_opts_t io = {0};
  io.name = "kvu-inbox";
  io.command_timeout_ms = KVU_BLOCK_MS + k->opts.commit_timeout_ms;
  io.on_state = kvu_on_inbox_state;
  io.data = k;
  rc = sc_redis_new(&k->inbox, loop, addr, &io);
  if (rc != 0) goto fail;

  uv_timer_init(loop, &k->lease_timer);
  k->lease_timer.data = k;
  k->lease_timer_open = 1;
  uint64_t every = (uint64_t)k->opts.lease_ms / 5;
  uv_timer_start(&k->lease_timer, kvu_on_lease_tick, every, every);
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
    uv_close((uv_handle_t *)&k->lease_timer, kvu_on_lease_timer_closed);
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
  kvu_maybe_free(k);
}

void kvu_maybe_free(kvu_t *k) {
  if (k->state != KVU_CLOSED || k->tickets != 0 || k->drain_timer_open || k->lease_timer_open) return;
  /* In-flight items still attached to tickets are gone with their callbacks. */
  kvu_list_free_all(&k->inflight);
  kvu_list_free_all(&k->pending);
  free(k);
}

/* ---- tickets ------------------------------------------------------------ */

ticket_t *kvu_ticket_new(kvu_t *k, int kind) {
  ticket_t *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  t->k = k;
  t->gen = k->gen;
  t->sent_ms = kvu_mono_ms();
  t->renew = kind;
  return t;
}

/* ---- the subscription ---------------------------------------------------- */

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
    kvu_reject(k, channel, channel_len, "", 0, SC_ETOPIC, &why, msg, msg_len);
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
    kvu_reject(k, channel, channel_len, topic, topic_len, rc, &why, msg, msg_len);
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
  kvu_enqueue(k, it);
}

/* ---- draining --------------------------------------------------------- */

void kvu_finish_drain(kvu_t *k) {
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
void kvu_check_drained(kvu_t *k) {
  if (k->state != KVU_DRAINING || k->drain_done || k->releasing) return;
  if (k->pending.n + k->inflight.n > 0) return;
  if (k->leader || k->role_known) kvu_release_lease(k);
  else kvu_finish_drain(k);
}

static void on_drain_timeout(uv_timer_t *t) {
  kvu_t *k = t->data;
  if (k->drain_done) return;
  if (k->pending.n + k->inflight.n == 0) {
    kvu_check_drained(k);
    return;
  }
  SC_WARN("gave up waiting for %zu commit(s) at shutdown", k->pending.n + k->inflight.n);
  kvu_finish_drain(k);
}

static void on_drain_timer_closed(uv_handle_t *h) {
  kvu_t *k = h->data;
  k->drain_timer_open = 0;
  kvu_maybe_free(k);
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
