/*
 * statecast_publisher: the C client library microservices use to publish
 * the full JSON state of a topic.
 *
 * Two ways to publish:
 *   - durable (sc_publisher_publish_durable, what the CLI uses): XADD
 *     statecast:inbox * topic T data <compact JSON>. Success means Redis
 *     stored the entry: it WILL be committed, now if a kv-updater runs, or
 *     when one starts (or takes over after the leader died). It is exactly
 *     as durable as Redis's own persistence: with appendfsync everysec a
 *     Redis crash can lose about the last second of writes.
 *   - pub/sub (sc_publisher_publish): PUBLISH update:{T} <body>, what any
 *     Redis client can do. At-most-once: lost when no kv-updater leader is
 *     subscribed at that moment (the receiver count tells you).
 * The library checks every message locally first with the same code
 * kv-updater uses (sc_message_check in common/envelope.h), so a message it
 * accepts is one kv-updater accepts, and an invalid one is never sent.
 *
 * Because every message carries the whole state of its topic, publishing
 * the same message twice is harmless: on a lost connection the library
 * reconnects once and sends once more before giving up.
 *
 * The connection is blocking (hiredis) and made lazily on the first publish.
 * A publisher is not thread-safe: use one per thread, or lock around it.
 * SIGPIPE is suppressed inside the library's writes; the process's signal
 * dispositions are not changed.
 *
 * Errors are the negative SC_E* codes of common/err.h; sc_strerror() gives
 * the generic text and sc_publisher_last_error() the specific one.
 */
#ifndef STATECAST_PUBLISHER_H
#define STATECAST_PUBLISHER_H

#include "err.h" /* SC_E* codes, sc_strerror() */

#include <stddef.h>

typedef struct sc_publisher sc_publisher_t;

/* Options; zero-initialise and set what you need. Every field is copied. */
typedef struct sc_publisher_opts {
  const char *password;     /* overrides a password in the URL; NULL: the URL's (if any) */
  int connect_timeout_ms;   /* 0: 2000 */
  int command_timeout_ms;   /* 0: 5000; also bounds each read/write of a publish */
  size_t max_message_bytes; /* 0: SC_DEFAULT_MAX_MESSAGE_BYTES (256 KiB); use kv-updater's value */
  const char *sentinels;    /* "host:port,..." of Redis Sentinels: each connect asks them for the primary
                               (the URL then only gives db and credentials); NULL: connect to the URL's host */
  const char *master_name;  /* name the sentinels monitor; NULL: "statecast" */
} sc_publisher_opts_t;

/*
 * Create a publisher for redis_url (redis://[[user]:password@]host[:port][/db]
 * or unix:///path[?db=N]). Does not connect yet. redis_url and opts (may be
 * NULL: defaults) are borrowed for the call only.
 * Returns 0 and *out (caller frees with sc_publisher_free()), or SC_EURL,
 * SC_EINVAL (negative timeout) or SC_ENOMEM with *out NULL. For SC_EURL the
 * reason is lost with the object; check URLs with sc_redis_url_parse().
 */
__attribute__((warn_unused_result)) int sc_publisher_new(sc_publisher_t **out, const char *redis_url,
                                                        const sc_publisher_opts_t *opts);

/*
 * Pub/sub publish (at-most-once; see above): PUBLISH update:{T} json.
 * Publish json[0..json_len) as the full state of topic[0..topic_len).
 * The JSON value null deletes the topic. Bytes are sent exactly as given
 * (kv-updater compacts them). Both buffers are borrowed for the call.
 *
 * receivers (may be NULL) gets the number of subscribers that received the
 * message (-1 unless it was sent). Returns:
 *   0                 sent, and at least one kv-updater received it
 *   SC_ENORECEIVER    sent, but no kv-updater is subscribed: it was NOT
 *                     committed (*receivers == 0)
 *   SC_ETOPIC, SC_EJSON, SC_EUTF8, SC_ETOOBIG
 *                     rejected locally, nothing sent; last_error says why
 *                     and, for JSON/UTF-8, at which byte offset
 *   SC_ECONN          Redis unreachable or the connection broke (after one
 *                     reconnect and one retry)
 *   SC_ETIMEOUT       connect or command timed out (after one retry)
 *   SC_EREDIS         Redis answered an error (e.g. wrong password,
 *                     NOAUTH); last_error has Redis's text
 *   SC_EINVAL         NULL publisher/topic/json
 *   SC_ENOMEM
 */
__attribute__((warn_unused_result)) int sc_publisher_publish(sc_publisher_t *p, const char *topic, size_t topic_len,
                                                            const char *json, size_t json_len, long long *receivers);

/* Size of the buffer for an inbox entry id ("1700000000000-12"). */
#define SC_PUBLISHER_ID_MAX 48

/*
 * Durable publish of json[0..json_len) as the full state of
 * topic[0..topic_len) (null deletes): XADD to statecast:inbox after the
 * local check. Both buffers are borrowed for the call.
 *
 * entry_id (may be NULL): a buffer of SC_PUBLISHER_ID_MAX bytes that gets
 * the inbox entry id ("" unless accepted). kv-updater commits entries in id
 * order per topic, and the entry leaves the stream with its commit.
 * kvu_running (may be NULL): set to 1 when a kv-updater holds the lease
 * right now, 0 when none does (the publish is still accepted and will be
 * committed when one starts), -1 when unknown. Asking costs one more round
 * trip; pass NULL to skip it.
 *
 * Returns 0 (accepted), or the errors of sc_publisher_publish() except
 * SC_ENORECEIVER: SC_ETOPIC/SC_EJSON/SC_EUTF8/SC_ETOOBIG (nothing sent),
 * SC_ECONN, SC_ETIMEOUT, SC_EREDIS (not accepted; e.g. Redis out of memory,
 * or READONLY on a replica), SC_EINVAL, SC_ENOMEM. After SC_ECONN or
 * SC_ETIMEOUT the entry may or may not have been stored; publishing again
 * is safe.
 */
__attribute__((warn_unused_result)) int sc_publisher_publish_durable(sc_publisher_t *p, const char *topic,
                                                                    size_t topic_len, const char *json,
                                                                    size_t json_len, char *entry_id,
                                                                    int *kvu_running);
/* Durable delete: sc_publisher_publish_durable() with the JSON value null. */
__attribute__((warn_unused_result)) int sc_publisher_delete_durable(sc_publisher_t *p, const char *topic,
                                                                   size_t topic_len, char *entry_id,
                                                                   int *kvu_running);

/* Delete a topic: publishes the JSON value null. Same results as
 * sc_publisher_publish(). */
__attribute__((warn_unused_result)) int sc_publisher_delete(sc_publisher_t *p, const char *topic, size_t topic_len,
                                                           long long *receivers);

/* Detailed text about the last failed call on p (e.g. "invalid JSON at byte
 * 7: expected ':'", "connect to 127.0.0.1:6379/0: Connection refused" or a
 * Redis error); "" after a success. Borrowed: valid until the next call on p. */
const char *sc_publisher_last_error(const sc_publisher_t *p);

/* Close the connection (if any) and free everything. NULL is a no-op. */
void sc_publisher_free(sc_publisher_t *p);

#endif
