/*
 * sentinel: find the Redis primary through Redis Sentinel.
 *
 * A sentinel list is "host:port,host:port" (IPv6 hosts in brackets, blanks
 * around entries allowed). Discovery asks each sentinel in turn
 * "SENTINEL get-master-addr-by-name <name>" and takes the first answer; the
 * caller must then check with ROLE that the node it reached really is the
 * master (a sentinel may answer with a stale address during a failover).
 * Sentinels are assumed to need no AUTH (bind them to a private network);
 * the data nodes use the normal redis_password.
 *
 * Everything here is blocking with short timeouts: the async connection
 * (redis.c) calls it once per connect attempt, the publisher library and
 * the snapshot tool before they connect.
 */
#ifndef SC_SENTINEL_H
#define SC_SENTINEL_H

#include <stddef.h>

struct redisContext;

/* Largest number of sentinels in a list. */
#define SC_SENTINEL_MAX 16

/* 0 when list is a well-formed sentinel list, else SC_EINVAL with a reason
 * naming the bad entry in err. */
__attribute__((warn_unused_result)) int sc_sentinel_list_check(const char *list, char *err, size_t errlen);

/*
 * Ask the sentinels in list (in order) for master name's address, spending at
 * most timeout_ms on each (connect + answer). Returns 0 with *host (caller
 * frees) and *port, or SC_EINVAL (bad list), SC_ENOENT (every reachable
 * sentinel says it does not know name), SC_ECONN (no sentinel answered) or
 * SC_ENOMEM, with the reason in err (may be NULL).
 */
__attribute__((warn_unused_result)) int sc_sentinel_resolve(const char *list, const char *name, int timeout_ms,
                                                           char **host, int *port, char *err, size_t errlen);

/* Run ROLE on a connected (and authenticated) blocking context: 0 when the
 * node is a master, SC_EREDIS when it is something else or ROLE failed,
 * SC_ECONN when the connection broke. Reason in err. */
__attribute__((warn_unused_result)) int sc_sentinel_check_master(struct redisContext *c, char *err, size_t errlen);

#endif
