/*
 * lease: kv-updater's leadership, on a connection of its own so renewals
 * never wait behind commits.
 *
 * Only the holder of statecast:leader commits. The lease is taken with a
 * random token (k->token, also the commit script's fencing token and the
 * inbox consumer name) for lease_ms; the lease timer fires every
 * lease_ms/5: a standby tries to take the lease, the leader renews it every
 * lease_ms/3 and re-claims idle inbox entries every lease_ms. A leader that
 * cannot renew in time (valid_until, counted from when the renewal was
 * sent) steps down at once and drops everything queued; inbox entries stay
 * pending in the group for the next leader. At shutdown the lease is handed
 * back (release) so a standby takes over without waiting for it to expire.
 *
 * Every change of role bumps k->gen (the term), so replies for an earlier
 * term are recognised and ignored.
 */
#include "updater_internal.h"

#include "err.h"
#include "keys.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_lease_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata);

/* Lease commands (ticket->renew). */
enum { LEASE_ACQUIRE = 0, LEASE_RENEW = 1, LEASE_RELEASE = 2 };

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

static int lease_send(kvu_t *k, int kind) {
  if (k->lease == NULL || !k->lease_up) return SC_ECONN;
  ticket_t *t = kvu_ticket_new(k, kind);
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
  k->last_reclaim = kvu_mono_ms();
  SC_INFO("became the leader (lease %d ms): committing; claiming pending %s entries first", k->opts.lease_ms,
          SC_KEYS_INBOX);
  kvu_inbox_next(k);
  kvu_flush(k);
}

/* Stop committing now. Queued and in-flight items are dropped: inbox
 * entries stay pending in the group for the next leader; pub/sub messages
 * are lost (at-most-once). A commit already sent is fenced by the script if
 * someone else holds the lease by the time it runs. */
void kvu_step_down(kvu_t *k, const char *why) {
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
  kvu_list_free_all(&k->inflight);
  kvu_list_free_all(&k->pending);
  /* Cancel a blocking read so no new entry is delivered to us. */
  if (k->inbox != NULL && k->inbox_busy > 0) sc_redis_reset(k->inbox, "stepped down");
}

void kvu_on_lease_tick(uv_timer_t *tm) {
  kvu_t *k = tm->data;
  if (k->state == KVU_CLOSED) return;
  uint64_t now = kvu_mono_ms();
  if (k->leader && now >= k->valid_until) {
    kvu_step_down(k, "lease not renewed in time");
    kvu_check_drained(k);
  }
  if (k->leader && !k->claiming && now - k->last_reclaim >= (uint64_t)k->opts.lease_ms) {
    /* Entries delivered to a consumer that died or was paused. */
    k->claiming = 1;
    snprintf(k->claim_cursor, sizeof k->claim_cursor, "0-0");
    k->claim_min_idle = 2 * (uint64_t)k->opts.lease_ms;
    k->last_reclaim = now;
  }
  if (k->leader) kvu_inbox_next(k);
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
    kvu_maybe_free(k);
    return;
  }
  k->lease_busy = 0;
  if (kind == LEASE_RELEASE) {
    k->releasing = 0;
    if (status == 0 && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
      SC_INFO("released the lease");
    kvu_finish_drain(k);
    return;
  }
  if (status != 0 || reply->type == REDIS_REPLY_ERROR) {
    const char *what = status != 0 ? sc_strerror(status) : reply->str;
    if (k->leader) {
      SC_WARN("lease %s failed: %s", kind == LEASE_RENEW ? "renewal" : "command", what);
      kvu_step_down(k, "lease renewal failed");
      kvu_check_drained(k);
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
    kvu_step_down(k, "the lease is gone or held by another kv-updater");
    kvu_check_drained(k);
    /* Redis may have lost its data (and the lease with it): try at once. */
    if (k->state == KVU_RUNNING && lease_send(k, LEASE_ACQUIRE) == SC_ENOMEM)
      SC_ERROR("out of memory sending a lease command");
  }
}

void kvu_on_lease_timer_closed(uv_handle_t *h) {
  kvu_t *k = h->data;
  k->lease_timer_open = 0;
  kvu_maybe_free(k);
}

void kvu_on_lease_state(sc_redis_t *r, int up, const char *why, void *data) {
  (void)r;
  kvu_t *k = data;
  k->lease_up = up;
  if (!up) {
    /* Not ready again until a lease attempt on the new connection answers. */
    k->role_known = 0;
    if (k->state == KVU_RUNNING) SC_WARN("lease connection down (%s)", why != NULL ? why : "?");
    return;
  }
  if (k->lease_timer_open) kvu_on_lease_tick(&k->lease_timer);
}

void kvu_release_lease(kvu_t *k) {
  if (k->leader) {
    k->leader = 0;
    k->gen++;
  }
  k->releasing = 1;
  if (lease_send(k, LEASE_RELEASE) != 0) {
    k->releasing = 0;
    kvu_finish_drain(k);
  }
}
