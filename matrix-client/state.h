/*
 * state: the client's copy of the followed topics, fed with whole SSE
 * events and read by the renderer.
 *
 * Nothing is ever half-applied: each event is applied in one call, and the
 * events of a (re)connection up to its "sync" are held back and applied
 * together when the sync arrives, so the display goes from one complete
 * picture to the next. A sync with "full":true then drops every topic not
 * received since the connection began (deleted while we were away).
 * Updates that are not newer than what we hold (same epoch, seq not
 * greater) are ignored, so a duplicate never counts as a change.
 */
#ifndef MX_STATE_H
#define MX_STATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct cJSON cJSON;

typedef struct mx_topic {
  char *name;   /* owned */
  cJSON *data;  /* owned */
  uint64_t seq;
  int64_t ts;
  unsigned gen; /* connection generation that last sent it */
} mx_topic_t;

typedef struct mx_pending mx_pending_t;

typedef struct mx_state {
  mx_topic_t *topics; /* owned, sorted by name */
  size_t n, cap;
  mx_pending_t *pending; /* owned: events of this connection before its sync */
  size_t npending, cappending;
  unsigned gen;    /* bumped by mx_state_begin() */
  int synced;      /* this connection's sync arrived */
  char epoch[40];  /* epoch of the held state ("" before the first sync) */
  uint64_t seq;    /* highest seq seen */
  unsigned version; /* bumped on every visible change (redraw hint) */
  /* Counters for tests and logs. */
  uint64_t events;    /* update/delete/sync events received */
  uint64_t applied;   /* updates/deletes that changed a topic */
  uint64_t ignored;   /* duplicates (not newer) */
  uint64_t dropped;   /* topics removed by a full sync */
  uint64_t rejected;  /* events that were not valid JSON envelopes */
  uint64_t syncs;
} mx_state_t;

void mx_state_init(mx_state_t *s);
void mx_state_dispose(mx_state_t *s);
/* A new connection starts: forget held-back events, wait for a sync. */
void mx_state_begin(mx_state_t *s);
/*
 * One dispatched SSE event (type, data borrowed). "update", "delete" and
 * "sync" are understood, other types ignored. Returns 0, SC_EJSON for a
 * malformed envelope (counted in rejected, state untouched) or SC_ENOMEM.
 */
__attribute__((warn_unused_result)) int mx_state_event(mx_state_t *s, const char *type, const char *data,
                                                       size_t len);
/* The topic, or NULL; borrowed until the next mx_state_event(). */
const mx_topic_t *mx_state_find(const mx_state_t *s, const char *name);

#endif
