/*
 * metrics: what kv-updater tells the outside about itself. kvu_ready()
 * backs /readyz, kvu_get_stats() takes a snapshot of the counters and
 * connection state, and kvu_metrics_format() turns a snapshot into the
 * Prometheus text served on /metrics (health.c does the HTTP).
 */
#include "updater_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

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
