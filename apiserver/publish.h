/*
 * publish: POST /publish/<topic> and POST /publish over HTTP, for
 * publishers without a Redis connection.
 *
 * - POST /publish/<topic>: the body is the message (one JSON value; null
 *   deletes the topic). Answer: {"topic":T,"seq":N,"id":"<inbox entry id>"}.
 * - POST /publish: {"messages":[{"topic":T,"data":<JSON>},...]} (1..64
 *   messages; every one is checked and authorised before any is queued).
 *   Answer: {"results":[{"topic":..,"seq":..,"id":..},...]} in request order.
 * Validation is sc_message_check() with max_message_bytes, the same as the
 * publisher library and kv-updater; the body as a whole is also limited to
 * max_message_bytes (413 past it, from h2o before the handler runs).
 * The durable path is the publisher library's: XADD statecast:inbox *
 * topic T data <compact JSON or null> on the apiserver's command connection.
 * The answer waits until kv-updater has committed the entry (its commit
 * script XDELs it, so XRANGE <id> <id> turns empty), then reads the topic's
 * seq (HGET state:{T} seq, or ZSCORE statecast:deleted T for a delete).
 * Past timeout_ms: 504 {"error":"not committed within N ms; it is queued and
 * will be committed when a kv-updater runs"}.
 * Auth: a valid token whose "publish" patterns cover each topic (401/403);
 * without a configured JWT key the endpoint answers 403 "publishing over
 * HTTP needs STATECAST_JWT_* configured".
 */
#ifndef API_PUBLISH_H
#define API_PUBLISH_H

#include <h2o.h>
#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>

#include "auth.h"
#include "redis.h"

#define API_PUBLISH_MAX_BATCH 64
#define API_PUBLISH_POLL_MS 20

typedef struct api_publish_cfg {
  uv_loop_t *loop;      /* borrowed */
  sc_redis_t *cmd;      /* borrowed: the command connection */
  size_t max_bytes;     /* per message and per body */
  unsigned timeout_ms;
  _Atomic uint64_t *published; /* borrowed counter (metrics, shared by the workers), may be NULL */
} api_publish_cfg_t;

/* Handle a POST to /publish or /publish/<topic> from a caller whose token
 * was verified into c (publish scope checked here). Answers every outcome
 * itself, possibly later (after the commit). Borrowed: cfg must outlive
 * every request in progress (each ends by itself: a closed Redis
 * connection fails its commands, and the timeout bounds the wait). */
void api_publish_handle(const api_publish_cfg_t *cfg, h2o_req_t *req, const api_claims_t *c);

#endif
