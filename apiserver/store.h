/*
 * store: the apiserver's in-memory copy of the committed state, the single
 * source every stream and /state reads from.
 *
 * One entry per topic (live, or a recent tombstone) in a hash map, and all
 * entries in ONE doubly-linked list ordered by seq: a commit moves its
 * topic's entry to the tail with the new seq. "Everything a client with
 * cursor C is missing" is therefore the list suffix after the last entry with
 * seq <= C, bounded by the number of topics, not by history.
 *
 * Each entry owns a reference to an api_frame_t: the pre-framed SSE bytes
 * ("id: <epoch>-<seq>\nevent: update|delete\ndata: <envelope>\n\n"), built
 * once per commit and shared (never copied) by every stream that sends it; a
 * stream holds its own reference while the bytes are in an h2o_send.
 *
 * Tombstones (deletes applied since load, and those loaded from
 * statecast:deleted) are capped; trimming one raises the resume floor. A
 * resume id (epoch, seq) is placeable when epoch is the store's epoch and
 * floor <= seq <= last_seq.
 *
 * Single-threaded: a store belongs to one loop. The apiserver keeps a master
 * store on its Redis thread and one replica per worker thread, made with
 * api_store_clone() and kept equal by replaying every applied commit with
 * api_store_apply_frame() in the same order (frames are shared, not copied).
 */
#ifndef API_STORE_H
#define API_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "sse.h"

/* Shared, immutable SSE bytes of one event plus a view of its envelope JSON.
 * Framed once per commit on the Redis thread and shared by the replica
 * stores of every worker thread and every stream that sends it, so the
 * count is atomic (the bytes never change once published). */
typedef struct api_frame {
  _Atomic uint32_t refs;
  uint32_t len;     /* bytes of the SSE frame */
  uint32_t env_off; /* envelope JSON = bytes[env_off .. env_off+env_len) */
  uint32_t env_len;
  int64_t ts;       /* commit time (ms), for the commit-to-send histogram */
  uint16_t topic_len; /* the topic is the envelope's first value: bytes[env_off + 10 ..) */
  char bytes[];
} api_frame_t;

/* The topic of a store frame (not NUL-terminated; length f->topic_len). */
static inline const char *api_frame_topic(const api_frame_t *f) { return f->bytes + f->env_off + 10; }

/* Take a reference (returns f). */
api_frame_t *api_frame_ref(api_frame_t *f);
/* Drop a reference; frees at zero. NULL is a no-op. */
void api_frame_unref(api_frame_t *f);

/* Read-only for everything but store.c. */
typedef struct api_entry {
  struct api_entry *prev, *next;   /* seq list */
  struct api_entry *tprev, *tnext; /* tombstone list (seq order), only when deleted */
  struct api_entry *hnext;         /* hash chain */
  uint64_t seq;
  int64_t ts;
  uint32_t hash;
  uint8_t deleted;
  api_frame_t *frame; /* owned reference */
  uint16_t topic_len;
  char topic[]; /* NUL-terminated */
} api_entry_t;

typedef struct api_store api_store_t;

/* One event a stream may send: an entry's latest state, or a commit kept in
 * the history. Borrowed views. */
typedef struct api_item {
  uint64_t seq;
  api_frame_t *frame;
  const char *topic;
  uint16_t topic_len;
  uint8_t deleted;
} api_item_t;

/* A stream's position hint for api_store_first_after(); zero-initialise. */
typedef struct api_store_hint {
  const api_store_t *store;
  const api_entry_t *entry;
  uint64_t seq;
  uint64_t gen;
} api_store_hint_t;

/* tomb_cap 0 means SC_KEYS_DELETED_CAP. Caller frees with api_store_free(). */
__attribute__((warn_unused_result)) int api_store_new(api_store_t **out, size_t tomb_cap);
void api_store_free(api_store_t *s);

/* The epoch (16 hex chars, NUL-terminated, borrowed) or NULL when unknown. */
const char *api_store_epoch(const api_store_t *s);
/* Set the epoch; epoch must be SC_SSE_EPOCH_LEN hex chars. Frames already
 * built keep their old ids, so only call this on an empty or loading store. */
void api_store_set_epoch(api_store_t *s, const char *epoch);
/* Raise the resume floor / the last seq to at least v. */
void api_store_raise_floor(api_store_t *s, uint64_t v);
void api_store_raise_last_seq(api_store_t *s, uint64_t v);
uint64_t api_store_last_seq(const api_store_t *s);
uint64_t api_store_floor(const api_store_t *s);
size_t api_store_live_count(const api_store_t *s);
size_t api_store_tomb_count(const api_store_t *s);

/* Loading mode: apply() appends without keeping seq order; end_load()
 * sorts the list once and trims tombstones. */
void api_store_begin_load(api_store_t *s);
__attribute__((warn_unused_result)) int api_store_end_load(api_store_t *s);

/*
 * Apply one commit: data NULL means delete. topic must be valid and data
 * compact JSON (both copied). Returns 1 when applied, 0 when stale (the
 * topic already has seq >= this one), SC_ENOMEM. Raises last_seq.
 */
__attribute__((warn_unused_result)) int api_store_apply(api_store_t *s, uint64_t seq, int64_t ts, const char *topic,
                                                       size_t topic_len, const char *data, size_t data_len);

/* api_store_apply() with a frame already built (by another store with the
 * same epoch): takes a new reference to f. deleted: f is a delete. */
__attribute__((warn_unused_result)) int api_store_apply_frame(api_store_t *s, uint64_t seq, int64_t ts,
                                                             const char *topic, size_t topic_len, api_frame_t *f,
                                                             int deleted);

/* A copy of s (entries, order, tombstones, epoch, floor, last seq) sharing
 * its frames. s must not be loading. Caller frees with api_store_free(). */
__attribute__((warn_unused_result)) int api_store_clone(const api_store_t *s, api_store_t **out);

/* The entry of topic (live or tombstone), or NULL. Borrowed until the next apply. */
const api_entry_t *api_store_find(const api_store_t *s, const char *topic, size_t len);
/* Oldest / newest entry in seq order (NULL when empty). */
const api_entry_t *api_store_head(const api_store_t *s);
const api_entry_t *api_store_tail(const api_store_t *s);

/* The first entry with seq > cursor, or NULL. hint (may be NULL) makes the
 * common "continue where I stopped" case O(1); update it with
 * api_store_hint_set() after consuming entries. */
const api_entry_t *api_store_first_after(const api_store_t *s, uint64_t cursor, const api_store_hint_t *hint);
void api_store_hint_set(const api_store_t *s, api_store_hint_t *hint, const api_entry_t *e);

/* Bytes of the SSE frames of the entries after cursor that match f (NULL:
 * all), i.e. what a stream at cursor would still have to send; counting
 * stops once the sum exceeds cap (the result is then > cap). Walks from the
 * tail, so it costs the number of entries after cursor at most. */
size_t api_store_bytes_after(const api_store_t *s, uint64_t cursor, const sc_sse_filter_t *f, size_t cap);

/*
 * History: the most recent commits in commit order, every version (not
 * just each topic's latest), so a stream that is only a little behind gets
 * every event, many per write. A stream further behind than the history
 * falls back to the latest state per topic (bounded by topics). Off until
 * api_store_keep_history(); it then covers every commit after the last seq
 * at that moment, up to max_events commits and max_bytes of frames.
 */
void api_store_keep_history(api_store_t *s, size_t max_events, size_t max_bytes);
/* 1 when the history holds every commit after cursor. */
int api_store_history_covers(const api_store_t *s, uint64_t cursor);
/* Index of the first commit after cursor (== the count when none), and the
 * commit at an index (NULL past the end). Indexes are valid until the next apply. */
size_t api_store_history_find(const api_store_t *s, uint64_t cursor);
int api_store_history_at(const api_store_t *s, size_t i, api_item_t *out);

/* 1 when a client that has everything up to (epoch, seq) can be brought up
 * to date exactly from this store, else 0. */
int api_store_placeable(const api_store_t *s, const char *epoch, uint64_t seq);

#endif
