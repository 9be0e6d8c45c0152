/*
 * loader: read the whole committed state from Redis into a fresh store.
 *
 * One MULTI/EXEC snapshot of statecast:epoch, statecast:seq,
 * statecast:index, statecast:deleted and statecast:deleted_floor, then
 * HMGET state:{T} seq ts data for every indexed topic, pipelined with a
 * bounded number in flight. A topic changed after the snapshot is read at
 * its newer seq (its notification is then skipped by the seq guard); one
 * deleted after the snapshot is skipped (its notification applies the delete).
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

#endif
