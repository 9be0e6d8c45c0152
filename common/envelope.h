/*
 * envelope: the message contract, in one place.
 *
 * - Topic rules (1-200 bytes of A-Z a-z 0-9 . _ - : / @).
 * - Message rules: one complete JSON value in UTF-8, at most max_bytes;
 *   the JSON value null means "delete the topic". Publisher and kv-updater
 *   both call sc_message_check(), so they can never disagree.
 * - The commit notification kv-updater's script publishes on
 *   statecast:notify, and its parser (used by the apiserver):
 *       "u <epoch> <seq> <ts_ms> <topic> <compact-json>"   an update
 *       "d <epoch> <seq> <ts_ms> <topic>"                  a delete
 * - The envelope clients receive: {"topic":"T","seq":N,"ts":MS,"data":D}
 *   (a delete has no "data").
 */
#ifndef SC_ENVELOPE_H
#define SC_ENVELOPE_H

#include "json.h"

#include <stddef.h>
#include <stdint.h>

#define SC_TOPIC_MAX 200
#define SC_DEFAULT_MAX_MESSAGE_BYTES (256 * 1024)

/* 0, or SC_ETOPIC when t[0..len) breaks the topic rules. */
__attribute__((warn_unused_result)) int sc_topic_validate(const char *t, size_t len);

/* Why a message was refused: a static reason plus, for JSON/UTF-8 errors, the offset. */
typedef struct sc_reject {
  const char *reason;
  size_t offset;
} sc_reject_t;

/*
 * Check topic and body against the contract. On success returns 0 and sets
 * *compact (malloc'd, caller frees; NULL for a delete) / *compact_len and
 * *is_delete. On failure returns SC_ETOPIC, SC_ETOOBIG, SC_EJSON or SC_EUTF8,
 * fills *why, and allocates nothing. max_bytes 0 means the default.
 */
__attribute__((warn_unused_result)) int sc_message_check(const char *topic, size_t topic_len, const char *body,
                                                        size_t body_len, size_t max_bytes, char **compact,
                                                        size_t *compact_len, int *is_delete, sc_reject_t *why);

/* A parsed commit notification: views into the payload (borrowed, valid
 * while the payload is). data is NULL for a delete. */
typedef struct sc_notify {
  int is_delete;
  const char *epoch;
  size_t epoch_len;
  uint64_t seq;
  int64_t ts;
  const char *topic;
  size_t topic_len;
  const char *data;
  size_t data_len;
} sc_notify_t;

/* 0, or SC_EINVAL when payload is not a well-formed notification. */
__attribute__((warn_unused_result)) int sc_notify_parse(const char *payload, size_t len, sc_notify_t *out);

/* Bytes sc_envelope_write() needs at most for this topic/data. */
size_t sc_envelope_size(size_t topic_len, size_t data_len);
/* Write {"topic":..,"seq":..,"ts":..[,"data":..]} into out (room for
 * sc_envelope_size()); data NULL means a delete. Returns bytes written.
 * topic must be valid (it needs no escaping) and data compact JSON. */
size_t sc_envelope_write(char *out, const char *topic, size_t topic_len, uint64_t seq, int64_t ts, const char *data,
                         size_t data_len);

#endif
