/*
 * keys: every Redis key and channel name statecast uses, built here and
 * nowhere else. docs/key-schema.md describes them for humans.
 *
 *   update:{T}          channel   microservices PUBLISH the full JSON state of topic T
 *   state:{T}           hash      committed state of T: seq, ts (ms), data (compact JSON)
 *   statecast:seq       string    the one sequence counter (INCR only; never reused)
 *   statecast:epoch     string    random id of this Redis data set; changes if Redis loses it
 *   statecast:index     zset      live topics, score = seq of their last commit
 *   statecast:deleted   zset      tombstones, score = seq of the delete (capped)
 *   statecast:deleted_floor string highest seq of a tombstone trimmed from the cap
 *   statecast:notify    channel   one message per commit (see envelope.h, sc_notify_*)
 *   statecast:rejected  list      the last 1000 rejected messages, newest first
 *   statecast:inbox     stream    durable publishes (fields topic, data); consumer group
 *                                 "kv-updater"; entries are XDELed once committed
 *   statecast:leader    string    lease of the committing kv-updater: its random token, PX lease_ms
 *   statecast:deleted_src hash    topic -> id of the last inbox entry applied, for deleted topics
 *
 * The braces in update:{T} and state:{T} are literal Redis Cluster hash tags:
 * a topic's channel and key hash to one slot.
 */
#ifndef SC_KEYS_H
#define SC_KEYS_H

#include <stddef.h>

#define SC_KEYS_UPDATE_PATTERN "update:{*}"
#define SC_KEYS_SEQ "statecast:seq"
#define SC_KEYS_EPOCH "statecast:epoch"
#define SC_KEYS_INDEX "statecast:index"
#define SC_KEYS_DELETED "statecast:deleted"
#define SC_KEYS_DELETED_FLOOR "statecast:deleted_floor"
#define SC_KEYS_NOTIFY "statecast:notify"
#define SC_KEYS_REJECTED "statecast:rejected"
#define SC_KEYS_INBOX "statecast:inbox"
#define SC_KEYS_INBOX_GROUP "kv-updater"
#define SC_KEYS_LEADER "statecast:leader"
#define SC_KEYS_DELETED_SRC "statecast:deleted_src"

/* How many rejected messages statecast:rejected keeps, and tombstones statecast:deleted keeps. */
#define SC_KEYS_REJECTED_CAP 1000
#define SC_KEYS_DELETED_CAP 10000

/* Big enough for any key or channel built from a valid topic. */
#define SC_KEYS_MAX 256

/* Write "state:{topic}" / "update:{topic}" NUL-terminated into buf.
 * Return the length, or SC_ETOOBIG when it does not fit in cap. */
__attribute__((warn_unused_result)) int sc_keys_state(char *buf, size_t cap, const char *topic, size_t len);
__attribute__((warn_unused_result)) int sc_keys_update_channel(char *buf, size_t cap, const char *topic, size_t len);

/* Extract T from a channel "update:{T}". *topic points into ch (borrowed).
 * Returns 0, or SC_ETOPIC when the channel does not have that shape. T itself
 * is not validated here (see sc_topic_validate). */
__attribute__((warn_unused_result)) int sc_keys_topic_of_channel(const char *ch, size_t len, const char **topic,
                                                                size_t *tlen);

#endif
