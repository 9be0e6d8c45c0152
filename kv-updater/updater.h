/*
 * updater: the heart of statecast-kv-updater.
 *
 * One sc_redis_t PSUBSCRIBEs update:{*}; every message is checked against
 * the message contract (sc_message_check) and then either
 *   - committed with the commit script on a second sc_redis_t (EVALSHA,
 *     EVAL after NOSCRIPT), pipelined in arrival order, or
 *   - rejected: logged, counted, and kept in statecast:rejected.
 * Commits (and rejected records) wait in a bounded pending queue while the
 * command connection is down; in-flight ones are put back at the front of
 * that queue, in order, when it fails, and sent again when it is back
 * (safe: a message is the full state, a repeat commits nothing).
 * Pub/sub is at-most-once: messages published while the subscription is
 * down are lost.
 *
 * Durable publishes arrive through the stream statecast:inbox (consumer
 * group "kv-updater"): they are read, committed, and XACKed + XDELed by the
 * commit script itself, so an entry leaves the stream only with its commit.
 *
 * Several replicas may run; only the holder of the lease statecast:leader
 * (SET NX PX lease_ms with a random token, renewed every lease_ms/3)
 * commits anything. A standby retries every lease_ms/5, stays subscribed
 * but ignores pub/sub messages, and does not read the stream. A leader that
 * cannot renew in time steps down at once and drops what it had queued
 * (stream entries stay pending in the group; the next leader claims them);
 * the commit script refuses a stale token ("NOTLEADER"), which covers
 * commits already in flight. A new leader first claims every entry pending
 * in the group (XAUTOCLAIM from 0-0), then reads new ones with a blocking
 * XREADGROUP on a connection of its own, and every lease_ms re-claims
 * entries idle for 2*lease_ms (delivered to a consumer that died or paused).
 */
#ifndef KVU_UPDATER_H
#define KVU_UPDATER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "redis.h"

typedef struct kvu kvu_t;

typedef struct kvu_opts {
  size_t max_message_bytes;   /* 0: SC_DEFAULT_MAX_MESSAGE_BYTES */
  int commit_timeout_ms;      /* 0: 5000 */
  size_t pending_max_messages; /* 0: 100000 */
  size_t pending_max_bytes;   /* 0: 256 MiB */
  size_t max_inflight;        /* 0: 1024 commits pipelined at most */
  int lease_ms;               /* 0: 5000; leadership lease (see above) */
} kvu_opts_t;

/* Counters and gauges for /metrics (a snapshot). */
typedef struct kvu_stats {
  uint64_t committed, unchanged, dropped, failed;
  uint64_t superseded; /* re-sent commits skipped because a newer one for the topic was queued */
  uint64_t rejected_topic, rejected_json, rejected_utf8, rejected_toobig;
  uint64_t reconnects;
  uint64_t pending; /* queued + in flight */
  uint64_t last_seq;
  int sub_up, cmd_up;
  int leader;                  /* 1 while this replica holds the lease */
  uint64_t leader_changes;     /* times this replica became leader or stepped down */
  uint64_t stream_committed;   /* statecast:inbox entries that committed a change */
  uint64_t stream_stale;       /* inbox entries skipped as already applied or superseded */
  uint64_t fenced;             /* commits refused with NOTLEADER */
  uint64_t standby_ignored;    /* pub/sub messages ignored while standby */
} kvu_stats_t;

/* Create and start connecting both connections on loop. addr and opts are
 * copied. Caller frees with kvu_close(). */
__attribute__((warn_unused_result)) int kvu_new(kvu_t **out, uv_loop_t *loop, const sc_redis_addr_t *addr,
                                               const kvu_opts_t *opts);

typedef void (*kvu_drained_cb)(kvu_t *k, size_t left, void *data);
/* Stop taking messages (the subscription is closed) and call cb once every
 * queued or in-flight commit has been answered, or after timeout_ms with the
 * number left over. cb fires exactly once, from a later loop turn at the
 * earliest. Call at most once. */
void kvu_drain(kvu_t *k, int timeout_ms, kvu_drained_cb cb, void *data);
/* Close both connections; memory is freed once their pending callbacks have
 * run (keep running the loop). NULL is a no-op. */
void kvu_close(kvu_t *k);

/* 1 when ready (connected and the first lease attempt answered: leader or
 * standby); otherwise 0 and *why (static text). */
int kvu_ready(const kvu_t *k, const char **why);
void kvu_get_stats(const kvu_t *k, kvu_stats_t *st);
/* Prometheus text exposition of st into buf; returns the length (truncated
 * at cap-1, always NUL-terminated). */
size_t kvu_metrics_format(const kvu_stats_t *st, char *buf, size_t cap);

/* The statecast:rejected record for one refused message (compact JSON,
 * malloc'd, caller frees; NULL on out of memory). Channel, topic and the
 * first 4096 bytes of the message are made valid UTF-8 (bad bytes become
 * U+FFFD) before escaping. */
char *kvu_reject_record(int64_t ts_ms, const char *channel, size_t channel_len, const char *topic, size_t topic_len,
                        int code, const char *detail, size_t offset, const char *msg, size_t msg_len);

#define KVU_REJECT_SAMPLE_BYTES 4096

#endif
