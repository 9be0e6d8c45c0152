/*
 * store: topic -> latest committed state, one seq-ordered list, bounded
 * tombstones, shared pre-framed SSE bytes (see store.h).
 */
#include "store.h"

#include "envelope.h"
#include "err.h"
#include "keys.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct api_store {
  api_entry_t **buckets; /* owned array; entries owned through it */
  size_t nbuckets;
  size_t count; /* all entries */
  size_t ntomb;
  api_entry_t *head, *tail;
  api_entry_t *thead, *ttail;
  uint64_t last_seq;
  uint64_t floor;
  uint64_t gen; /* bumped whenever an entry is freed (invalidates hints) */
  size_t tomb_cap;
  int loading;
  int has_epoch;
  char epoch[SC_SSE_EPOCH_LEN + 1];
  /* history ring (see api_store_keep_history) */
  struct hist_slot {
    uint64_t seq;
    api_frame_t *frame; /* owned reference */
    uint8_t deleted;
  } *ring;
  size_t ring_cap, ring_first, ring_n, ring_bytes, ring_max_bytes;
  uint64_t ring_base; /* every commit after this seq is in the ring */
};

api_frame_t *api_frame_ref(api_frame_t *f) {
  atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
  return f;
}

void api_frame_unref(api_frame_t *f) {
  if (f != NULL && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) free(f);
}

static uint32_t hash_topic(const char *t, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)t[i]) * 16777619u;
  return h;
}

int api_store_new(api_store_t **out, size_t tomb_cap) {
  api_store_t *s = calloc(1, sizeof *s);
  if (s == NULL) return SC_ENOMEM;
  s->nbuckets = 1024;
  s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
  if (s->buckets == NULL) {
    free(s);
    return SC_ENOMEM;
  }
  s->tomb_cap = tomb_cap ? tomb_cap : SC_KEYS_DELETED_CAP;
  *out = s;
  return 0;
}

static void ring_drop_oldest(api_store_t *s) {
  struct hist_slot *h = &s->ring[s->ring_first];
  s->ring_base = h->seq;
  s->ring_bytes -= h->frame->len;
  api_frame_unref(h->frame);
  s->ring_first = (s->ring_first + 1) % s->ring_cap;
  s->ring_n--;
}

/* Forget the history: it covers commits after the current last seq again. */
static void ring_reset(api_store_t *s) {
  while (s->ring_n > 0) ring_drop_oldest(s);
  s->ring_base = s->last_seq;
}

static void ring_push(api_store_t *s, uint64_t seq, api_frame_t *f, int deleted) {
  if (s->ring_n > 0 && s->ring[(s->ring_first + s->ring_n - 1) % s->ring_cap].seq >= seq) ring_reset(s);
  while (s->ring_n > 0 && (s->ring_n == s->ring_cap || s->ring_bytes + f->len > s->ring_max_bytes))
    ring_drop_oldest(s);
  struct hist_slot *h = &s->ring[(s->ring_first + s->ring_n) % s->ring_cap];
  h->seq = seq;
  h->frame = api_frame_ref(f);
  h->deleted = deleted != 0;
  s->ring_n++;
  s->ring_bytes += f->len;
}

void api_store_keep_history(api_store_t *s, size_t max_events, size_t max_bytes) {
  if (s->ring != NULL || max_events == 0) return;
  s->ring = calloc(max_events, sizeof *s->ring);
  if (s->ring == NULL) return; /* no history: streams catch up from the latest states */
  s->ring_cap = max_events;
  s->ring_max_bytes = max_bytes;
  s->ring_base = s->last_seq;
}

int api_store_history_covers(const api_store_t *s, uint64_t cursor) { return s->ring != NULL && cursor >= s->ring_base; }

size_t api_store_history_find(const api_store_t *s, uint64_t cursor) {
  size_t lo = 0, hi = s->ring_n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->ring[(s->ring_first + mid) % s->ring_cap].seq <= cursor)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

int api_store_history_at(const api_store_t *s, size_t i, api_item_t *out) {
  if (i >= s->ring_n) return 0;
  const struct hist_slot *h = &s->ring[(s->ring_first + i) % s->ring_cap];
  out->seq = h->seq;
  out->frame = h->frame;
  out->topic = api_frame_topic(h->frame);
  out->topic_len = h->frame->topic_len;
  out->deleted = h->deleted;
  return 1;
}

void api_store_free(api_store_t *s) {
  if (s == NULL) return;
  if (s->ring != NULL) ring_reset(s);
  free(s->ring);
  api_entry_t *e = s->head;
  while (e != NULL) {
    api_entry_t *n = e->next;
    api_frame_unref(e->frame);
    free(e);
    e = n;
  }
  free(s->buckets);
  free(s);
}

const char *api_store_epoch(const api_store_t *s) { return s->has_epoch ? s->epoch : NULL; }

void api_store_set_epoch(api_store_t *s, const char *epoch) {
  memcpy(s->epoch, epoch, SC_SSE_EPOCH_LEN);
  s->epoch[SC_SSE_EPOCH_LEN] = '\0';
  s->has_epoch = 1;
}

void api_store_raise_floor(api_store_t *s, uint64_t v) {
  if (v > s->floor) s->floor = v;
}
void api_store_raise_last_seq(api_store_t *s, uint64_t v) {
  if (v > s->last_seq) s->last_seq = v;
}
uint64_t api_store_last_seq(const api_store_t *s) { return s->last_seq; }
uint64_t api_store_floor(const api_store_t *s) { return s->floor; }
size_t api_store_live_count(const api_store_t *s) { return s->count - s->ntomb; }
size_t api_store_tomb_count(const api_store_t *s) { return s->ntomb; }
const api_entry_t *api_store_head(const api_store_t *s) { return s->head; }
const api_entry_t *api_store_tail(const api_store_t *s) { return s->tail; }

static api_entry_t *find(const api_store_t *s, const char *topic, size_t len, uint32_t h) {
  for (api_entry_t *e = s->buckets[h & (s->nbuckets - 1)]; e != NULL; e = e->hnext)
    if (e->hash == h && e->topic_len == len && memcmp(e->topic, topic, len) == 0) return e;
  return NULL;
}

const api_entry_t *api_store_find(const api_store_t *s, const char *topic, size_t len) {
  return find(s, topic, len, hash_topic(topic, len));
}

static void grow(api_store_t *s) {
  size_t nb = s->nbuckets * 2;
  api_entry_t **b = calloc(nb, sizeof *b);
  if (b == NULL) return; /* keep the longer chains; still correct */
  for (size_t i = 0; i < s->nbuckets; i++) {
    api_entry_t *e = s->buckets[i];
    while (e != NULL) {
      api_entry_t *n = e->hnext;
      e->hnext = b[e->hash & (nb - 1)];
      b[e->hash & (nb - 1)] = e;
      e = n;
    }
  }
  free(s->buckets);
  s->buckets = b;
  s->nbuckets = nb;
}

static void list_unlink(api_store_t *s, api_entry_t *e) {
  if (e->prev) e->prev->next = e->next; else s->head = e->next;
  if (e->next) e->next->prev = e->prev; else s->tail = e->prev;
  e->prev = e->next = NULL;
}

/* Insert in seq order, searching from the tail (commits arrive in order, so
 * this is O(1) outside loading). */
static void list_insert(api_store_t *s, api_entry_t *e) {
  api_entry_t *after = s->tail;
  if (!s->loading)
    while (after != NULL && after->seq > e->seq) after = after->prev;
  e->prev = after;
  e->next = after ? after->next : s->head;
  if (e->next) e->next->prev = e; else s->tail = e;
  if (after) after->next = e; else s->head = e;
}

static void tomb_unlink(api_store_t *s, api_entry_t *e) {
  if (e->tprev) e->tprev->tnext = e->tnext; else s->thead = e->tnext;
  if (e->tnext) e->tnext->tprev = e->tprev; else s->ttail = e->tprev;
  e->tprev = e->tnext = NULL;
  s->ntomb--;
}

static void tomb_insert(api_store_t *s, api_entry_t *e) {
  api_entry_t *after = s->ttail;
  while (after != NULL && after->seq > e->seq) after = after->tprev;
  e->tprev = after;
  e->tnext = after ? after->tnext : s->thead;
  if (e->tnext) e->tnext->tprev = e; else s->ttail = e;
  if (after) after->tnext = e; else s->thead = e;
  s->ntomb++;
}

static void entry_remove(api_store_t *s, api_entry_t *e) {
  api_entry_t **pp = &s->buckets[e->hash & (s->nbuckets - 1)];
  while (*pp != e) pp = &(*pp)->hnext;
  *pp = e->hnext;
  list_unlink(s, e);
  if (e->deleted) tomb_unlink(s, e);
  s->count--;
  s->gen++;
  api_frame_unref(e->frame);
  free(e);
}

static void trim_tombs(api_store_t *s) {
  while (s->ntomb > s->tomb_cap) {
    api_entry_t *old = s->thead;
    api_store_raise_floor(s, old->seq);
    entry_remove(s, old);
  }
}

static api_frame_t *make_frame(const api_store_t *s, uint64_t seq, int64_t ts, const char *topic, size_t topic_len,
                               const char *data, size_t data_len) {
  char env_stack[16384]; /* no heap round trip for common sizes (it fragments the heap during a load) */
  size_t cap = sc_envelope_size(topic_len, data_len);
  char *env = cap <= sizeof env_stack ? env_stack : malloc(cap);
  if (env == NULL) return NULL;
  size_t elen = sc_envelope_write(env, topic, topic_len, seq, ts, data, data_len);
  char id[SC_SSE_ID_MAX];
  size_t idlen = sc_sse_id_format(id, s->has_epoch ? s->epoch : "0000000000000000", seq);
  const char *event = data != NULL ? "update" : "delete";
  size_t fcap = sc_sse_frame_size_line(idlen, strlen(event), elen); /* the envelope is compact JSON: one line */
  api_frame_t *f = malloc(sizeof *f + fcap);
  if (f != NULL) {
    atomic_init(&f->refs, 1);
    f->len = (uint32_t)sc_sse_frame(f->bytes, id, idlen, event, env, elen);
    /* The envelope is one line, so it sits right after "data: " and before "\n\n". */
    f->env_len = (uint32_t)elen;
    f->env_off = f->len - 2 - (uint32_t)elen;
    f->ts = ts;
    f->topic_len = (uint16_t)topic_len;
  }
  if (env != env_stack) free(env);
  return f;
}

/* Move (or add) topic's entry to seq with frame f (reference taken over). */
static int apply_frame(api_store_t *s, api_entry_t *e, uint32_t h, uint64_t seq, int64_t ts, const char *topic,
                       size_t topic_len, api_frame_t *f, int deleted) {
  if (e == NULL) {
    e = calloc(1, sizeof *e + topic_len + 1);
    if (e == NULL) {
      api_frame_unref(f);
      return SC_ENOMEM;
    }
    memcpy(e->topic, topic, topic_len);
    e->topic_len = (uint16_t)topic_len;
    e->hash = h;
    e->hnext = s->buckets[h & (s->nbuckets - 1)];
    s->buckets[h & (s->nbuckets - 1)] = e;
    s->count++;
    if (s->count > s->nbuckets) grow(s);
  } else {
    list_unlink(s, e);
    if (e->deleted && !s->loading) tomb_unlink(s, e);
    api_frame_unref(e->frame);
  }
  e->seq = seq;
  e->ts = ts;
  e->frame = f;
  e->deleted = deleted != 0;
  list_insert(s, e);
  api_store_raise_last_seq(s, seq);
  if (s->ring != NULL && !s->loading) ring_push(s, seq, f, deleted);
  if (e->deleted && !s->loading) {
    tomb_insert(s, e);
    trim_tombs(s);
  }
  return 1;
}

int api_store_apply(api_store_t *s, uint64_t seq, int64_t ts, const char *topic, size_t topic_len, const char *data,
                    size_t data_len) {
  uint32_t h = hash_topic(topic, topic_len);
  api_entry_t *e = find(s, topic, topic_len, h);
  if (e != NULL && e->seq >= seq) return 0;
  api_frame_t *f = make_frame(s, seq, ts, topic, topic_len, data, data_len);
  if (f == NULL) return SC_ENOMEM;
  return apply_frame(s, e, h, seq, ts, topic, topic_len, f, data == NULL);
}

int api_store_apply_frame(api_store_t *s, uint64_t seq, int64_t ts, const char *topic, size_t topic_len,
                          api_frame_t *f, int deleted) {
  uint32_t h = hash_topic(topic, topic_len);
  api_entry_t *e = find(s, topic, topic_len, h);
  if (e != NULL && e->seq >= seq) return 0;
  return apply_frame(s, e, h, seq, ts, topic, topic_len, api_frame_ref(f), deleted);
}

int api_store_clone(const api_store_t *src, api_store_t **out) {
  api_store_t *s;
  int rc = api_store_new(&s, src->tomb_cap);
  if (rc != 0) return rc;
  /* Appending in seq order rebuilds the same list and tombstone order. */
  for (const api_entry_t *e = src->head; e != NULL; e = e->next) {
    rc = api_store_apply_frame(s, e->seq, e->ts, e->topic, e->topic_len, e->frame, e->deleted);
    if (rc < 0) {
      api_store_free(s);
      return rc;
    }
  }
  s->last_seq = src->last_seq;
  s->floor = src->floor;
  s->has_epoch = src->has_epoch;
  memcpy(s->epoch, src->epoch, sizeof s->epoch);
  *out = s;
  return 0;
}

void api_store_begin_load(api_store_t *s) { s->loading = 1; }

static int cmp_seq(const void *a, const void *b) {
  uint64_t x = (*(api_entry_t *const *)a)->seq, y = (*(api_entry_t *const *)b)->seq;
  return x < y ? -1 : x > y;
}

int api_store_end_load(api_store_t *s) {
  s->loading = 0;
  if (s->count == 0) return 0;
  api_entry_t **v = malloc(s->count * sizeof *v);
  if (v == NULL) return SC_ENOMEM;
  size_t n = 0;
  for (api_entry_t *e = s->head; e != NULL; e = e->next) v[n++] = e;
  qsort(v, n, sizeof *v, cmp_seq);
  s->head = s->tail = s->thead = s->ttail = NULL;
  s->ntomb = 0;
  for (size_t i = 0; i < n; i++) {
    api_entry_t *e = v[i];
    e->prev = s->tail;
    e->next = NULL;
    e->tprev = e->tnext = NULL;
    if (s->tail) s->tail->next = e; else s->head = e;
    s->tail = e;
    if (e->deleted) tomb_insert(s, e);
  }
  free(v);
  trim_tombs(s);
  s->gen++;
  return 0;
}

const api_entry_t *api_store_first_after(const api_store_t *s, uint64_t cursor, const api_store_hint_t *hint) {
  if (hint != NULL && hint->store == s && hint->gen == s->gen && hint->entry != NULL &&
      hint->entry->seq == hint->seq && hint->seq <= cursor) {
    const api_entry_t *e = hint->entry->next;
    while (e != NULL && e->seq <= cursor) e = e->next;
    return e;
  }
  if (s->head == NULL || s->head->seq > cursor) return s->head;
  const api_entry_t *e = s->tail;
  if (e == NULL || e->seq <= cursor) return NULL;
  while (e->prev != NULL && e->prev->seq > cursor) e = e->prev;
  return e;
}

void api_store_hint_set(const api_store_t *s, api_store_hint_t *hint, const api_entry_t *e) {
  hint->store = s;
  hint->entry = e;
  hint->seq = e != NULL ? e->seq : 0;
  hint->gen = s->gen;
}

size_t api_store_bytes_after(const api_store_t *s, uint64_t cursor, const sc_sse_filter_t *f, size_t cap) {
  size_t sum = 0;
  for (const api_entry_t *e = s->tail; e != NULL && e->seq > cursor && sum <= cap; e = e->prev)
    if (f == NULL || sc_sse_filter_match(f, e->topic, e->topic_len)) sum += e->frame->len;
  return sum;
}

int api_store_placeable(const api_store_t *s, const char *epoch, uint64_t seq) {
  if (!s->has_epoch || memcmp(epoch, s->epoch, SC_SSE_EPOCH_LEN) != 0) return 0;
  return seq >= s->floor && seq <= s->last_seq;
}
