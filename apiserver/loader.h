/*
 * loader: read the whole committed state from Redis into a fresh store.
 *
 * One MULTI/EXEC snapshot of statecast:epoch, statecast:seq,
 * statecast:index, statecast:deleted and statecast:deleted_floor, then
 * HMGET state:{T} seq ts data for every indexed topic, pipelined with a
 * bounded number in flight. A topic changed after the snapshot is read at
 * its newer seq (its notification is then skipped by the seq guard); one
 * deleted after the snapshot is skipped (its notification applies the delete).
 *
 * The same machinery, started with api_loader_start_since(), reads only
 * what changed after a given seq (a catch-up) into an api_delta_t.
 */
#ifndef API_LOADER_H
#define API_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "redis.h"
#include "store.h"

typedef struct api_loader api_loader_t;

/* status 0: store is the loaded state (ownership passes to the callback;
 * it is sorted, not in loading mode) and snap_seq the statecast:seq of the
 * snapshot. Otherwise store is NULL. Fires exactly once unless cancelled. */
typedef void (*api_loader_done_cb)(api_loader_t *l, int status, api_store_t *store, uint64_t snap_seq, void *data);

/* Start loading over cmd (borrowed; must outlive the loader's commands).
 * Caller must not free the loader: it frees itself after done fires or,
 * after api_loader_cancel(), when its last reply has come back. */
__attribute__((warn_unused_result)) int api_loader_start(api_loader_t **out, sc_redis_t *cmd, size_t tomb_cap,
                                                        size_t max_in_flight, api_loader_done_cb cb, void *data);
/* The callback will not fire; the loader frees itself once idle. */
void api_loader_cancel(api_loader_t *l);

/*
 * Catch-up: what was committed after seq `since` (used after a Redis
 * reconnect and when a notification reveals a gap). One MULTI/EXEC of
 * statecast:epoch, statecast:seq, ZRANGE statecast:index (since +inf BYSCORE
 * WITHSCORES, ZRANGE statecast:deleted (since +inf BYSCORE WITHSCORES and
 * statecast:deleted_floor, then HMGET state:{T} seq ts data per changed
 * topic. A topic changed again after the snapshot is read at its newer seq;
 * one deleted after it is left out (its delete notification follows).
 */
typedef struct api_change {
  uint64_t seq;
  int64_t ts;
  char *topic;     /* owned by the delta, NUL-terminated */
  char *data;      /* owned by the delta; NULL: a delete */
  size_t topic_len, data_len;
} api_change_t;

typedef struct api_delta {
  int has_epoch;                      /* 0: Redis has no statecast:epoch (empty) */
  char epoch[SC_SSE_EPOCH_LEN + 1];   /* when has_epoch */
  uint64_t snap_seq;                  /* statecast:seq at the snapshot */
  uint64_t deleted_floor;             /* statecast:deleted_floor at the snapshot */
  uint64_t since;
  api_change_t *changes;              /* owned by the loader, sorted by seq */
  size_t n;
} api_delta_t;

/* status 0: delta is set (borrowed until the callback returns); otherwise NULL. */
typedef void (*api_catchup_done_cb)(api_loader_t *l, int status, const api_delta_t *delta, void *data);

/* Start a catch-up over cmd (borrowed). Same lifetime rules as
 * api_loader_start(); cancel with api_loader_cancel(). */
__attribute__((warn_unused_result)) int api_loader_start_since(api_loader_t **out, sc_redis_t *cmd, uint64_t since,
                                                              size_t max_in_flight, api_catchup_done_cb cb,
                                                              void *data);

#endif
