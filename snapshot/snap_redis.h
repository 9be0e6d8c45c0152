/*
 * snap_redis: the Redis side of statecast-snapshot (blocking hiredis; this is
 * a batch tool, not a server).
 *
 * - snap_redis_read: one read-only script returns statecast:seq, the epoch
 *   and every live topic at once, so the copy is one atomic point in time:
 *   no topic in it is newer than its seq and none committed before is missing.
 * - snap_plan / snap_load: decide per topic what a load changes, and restore
 *   through the commit script (common/commit.c), so displays update live.
 *   Each batch runs WATCH state keys -> re-read -> decide -> MULTI/EVALSHA.../
 *   EXEC; a concurrent publish to one of the batch's topics aborts the EXEC and
 *   the batch is decided again, so "only where the snapshot is newer" holds
 *   even while publishers keep going.
 */
#ifndef SNAP_REDIS_H
#define SNAP_REDIS_H

#include "snap_format.h"

#include <hiredis/hiredis.h>
#include <stddef.h>

struct sc_redis_addr;

/* Connect (TCP or unix), AUTH, SELECT. timeout_ms applies to connect and to
 * every command. Returns 0 and *out (caller frees with redisFree), or
 * SC_ECONN/SC_EREDIS with a reason in err. */
__attribute__((warn_unused_result)) int snap_redis_connect(redisContext **out, const struct sc_redis_addr *addr,
                                                          int timeout_ms, char *err, size_t errlen);

/* Read the whole committed state into *out (topics ascending by seq, created
 * = now). *out owns the reply its strings point into; release with
 * snap_dispose(). Returns 0 or SC_EREDIS/SC_ECONN/SC_EINVAL/SC_ENOMEM with a
 * reason in err. */
__attribute__((warn_unused_result)) int snap_redis_read(redisContext *c, snap_t *out, char *err, size_t errlen);

typedef enum {
  SNAP_UNCHANGED = 0, /* Redis already holds exactly this data (or, --replace, absent topic stays absent) */
  SNAP_ADD,           /* topic absent in Redis */
  SNAP_UPDATE,        /* different data; the snapshot's is newer (or --replace) */
  SNAP_DELETE,        /* --replace: topic in Redis but not in the snapshot */
  SNAP_KEEP,          /* different data, but Redis's is newer: left alone */
} snap_action_t;

const char *snap_action_name(snap_action_t a);

typedef struct snap_stats {
  size_t added, updated, deleted, unchanged, kept;
} snap_stats_t;

/* What a load of file into a Redis holding current would do. want is the
 * file's entry (NULL for a topic only in Redis); cur is Redis's (NULL when
 * absent). */
snap_action_t snap_decide(const snap_topic_t *want, const snap_topic_t *cur, int replace);

/* One line per topic (borrowed for the call). */
typedef void (*snap_plan_cb)(snap_action_t a, const snap_topic_t *t, void *data);

/* Diff without touching Redis: call cb for every topic of file (in file
 * order) and, with replace, every topic only in current; fill *st.
 * Returns 0 or SC_ENOMEM. */
__attribute__((warn_unused_result)) int snap_plan(const snap_t *file, const snap_t *current, int replace,
                                                 snap_plan_cb cb, void *data, snap_stats_t *st);

/* Progress: done of total topics handled so far. */
typedef void (*snap_progress_cb)(size_t done, size_t total, void *data);

/*
 * Restore file (already verified) into Redis through the commit script.
 * batch topics per transaction (0: 500). Fills *st with what was actually
 * changed. Returns 0 or SC_EREDIS/SC_ECONN/SC_ENOMEM with a reason in err
 * (topics committed before an error stay committed; a rerun finishes the job).
 */
__attribute__((warn_unused_result)) int snap_load(redisContext *c, const snap_t *file, int replace, size_t batch,
                                                 snap_progress_cb progress, void *pdata, snap_stats_t *st, char *err,
                                                 size_t errlen);

#endif
