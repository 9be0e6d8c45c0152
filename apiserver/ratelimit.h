/*
 * ratelimit: token buckets keyed by a short string (a token's subject or
 * hash, a client address), with bounded memory.
 *
 * Each key has a bucket of `burst` tokens refilled at `rate` per second.
 * At most `max_keys` buckets exist; a new key past that evicts the least
 * recently used one (an evicted key simply starts again with a full bucket,
 * which only ever errs on the generous side). rate 0 turns the limiter off.
 * Thread-safe: the worker threads of one apiserver share the buckets.
 */
#ifndef API_RATELIMIT_H
#define API_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define API_RL_KEY_MAX 80

typedef struct api_rl api_rl_t;

/* Returns 0 and *out (NULL when rate is 0: off), or SC_ENOMEM. Caller frees with api_rl_free(). */
__attribute__((warn_unused_result)) int api_rl_new(api_rl_t **out, double rate, double burst, size_t max_keys);
void api_rl_free(api_rl_t *rl);
/* Take one token for key (truncated to API_RL_KEY_MAX) at time now_ms.
 * Returns 0 (allowed; also when rl is NULL), or the whole seconds (>= 1)
 * until a token is available. */
unsigned api_rl_take(api_rl_t *rl, const char *key, uint64_t now_ms);
/* Buckets currently held. */
size_t api_rl_count(api_rl_t *rl);

#endif
