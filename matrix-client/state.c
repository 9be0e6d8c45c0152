/*
 * state: apply SSE envelopes to the client's topic table (see state.h).
 */
#include "state.h"

#include "err.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

enum { EV_UPDATE, EV_DELETE };

/* A parsed update/delete held until the connection's sync. */
struct mx_pending {
  int kind;
  char *topic;  /* owned */
  cJSON *data;  /* owned; NULL for a delete */
  uint64_t seq;
  int64_t ts;
};

void mx_state_init(mx_state_t *s) { memset(s, 0, sizeof *s); }

static void clear_pending(mx_state_t *s) {
  for (size_t i = 0; i < s->npending; i++) {
    free(s->pending[i].topic);
    cJSON_Delete(s->pending[i].data);
  }
  s->npending = 0;
}

void mx_state_dispose(mx_state_t *s) {
  clear_pending(s);
  free(s->pending);
  for (size_t i = 0; i < s->n; i++) {
    free(s->topics[i].name);
    cJSON_Delete(s->topics[i].data);
  }
  free(s->topics);
  memset(s, 0, sizeof *s);
}

void mx_state_begin(mx_state_t *s) {
  clear_pending(s);
  s->gen++;
  s->synced = 0;
}

/* Index of name, or -(insertion point) - 1. */
static long find(const mx_state_t *s, const char *name) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(s->topics[mid].name, name);
    if (c == 0) return (long)mid;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -(long)lo - 1;
}

const mx_topic_t *mx_state_find(const mx_state_t *s, const char *name) {
  long i = find(s, name);
  return i >= 0 ? &s->topics[i] : NULL;
}

static void remove_at(mx_state_t *s, size_t i) {
  free(s->topics[i].name);
  cJSON_Delete(s->topics[i].data);
  memmove(&s->topics[i], &s->topics[i + 1], (s->n - i - 1) * sizeof *s->topics);
  s->n--;
}

/* Apply one parsed event; takes ownership of topic and data. check_seq is
 * off while applying a new epoch's first batch (its seqs restart). */
static int apply(mx_state_t *s, int kind, char *topic, cJSON *data, uint64_t seq, int64_t ts, int check_seq) {
  long i = find(s, topic);
  if (seq > s->seq) s->seq = seq;
  if (i >= 0) s->topics[i].gen = s->gen; /* received on this connection: keep it at a full sync */
  if (i >= 0 && check_seq && seq <= s->topics[i].seq) {
    s->ignored++;
    goto done;
  }
  if (kind == EV_DELETE) {
    if (i >= 0) {
      remove_at(s, (size_t)i);
      s->applied++;
      s->version++;
    } else {
      s->ignored++;
    }
    goto done;
  }
  if (i < 0) {
    if (s->n == s->cap) {
      size_t cap = s->cap ? s->cap * 2 : 16;
      mx_topic_t *t = realloc(s->topics, cap * sizeof *t);
      if (!t) {
        free(topic);
        cJSON_Delete(data);
        return SC_ENOMEM;
      }
      s->topics = t;
      s->cap = cap;
    }
    i = -i - 1;
    memmove(&s->topics[i + 1], &s->topics[i], (s->n - (size_t)i) * sizeof *s->topics);
    s->n++;
    s->topics[i] = (mx_topic_t){.name = topic, .data = data, .seq = seq, .ts = ts, .gen = s->gen};
    s->applied++;
    s->version++;
    return 0;
  }
  cJSON_Delete(s->topics[i].data);
  s->topics[i].data = data;
  s->topics[i].seq = seq;
  s->topics[i].ts = ts;
  s->applied++;
  s->version++;
  data = NULL;
done:
  free(topic);
  cJSON_Delete(data);
  return 0;
}

static int apply_sync(mx_state_t *s, const cJSON *root) {
  const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(root, "epoch");
  const cJSON *full = cJSON_GetObjectItemCaseSensitive(root, "full");
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(root, "seq");
  if (!cJSON_IsString(epoch) || strlen(epoch->valuestring) >= sizeof s->epoch || !cJSON_IsNumber(seq)) {
    s->rejected++;
    return SC_EJSON;
  }
  int is_full = cJSON_IsTrue(full);
  int new_epoch = strcmp(s->epoch, epoch->valuestring) != 0;
  int rc = 0;
  /* A new epoch means Redis started over: the held seqs mean nothing. */
  for (size_t k = 0; k < s->npending; k++) {
    mx_pending_t *p = &s->pending[k];
    int r = apply(s, p->kind, p->topic, p->data, p->seq, p->ts, !new_epoch);
    p->topic = NULL;
    p->data = NULL;
    if (r && !rc) rc = r;
  }
  s->npending = 0;
  if (is_full) {
    for (size_t k = s->n; k-- > 0;) {
      if (s->topics[k].gen != s->gen) {
        remove_at(s, k);
        s->dropped++;
        s->version++;
      }
    }
  }
  if (new_epoch) {
    strcpy(s->epoch, epoch->valuestring);
    if (!is_full) SC_WARN("sync for a new epoch %s without full state", s->epoch);
  }
  s->synced = 1;
  s->syncs++;
  s->version++; /* "live" is itself a visible change */
  return rc;
}

int mx_state_event(mx_state_t *s, const char *type, const char *data, size_t len) {
  int kind;
  if (strcmp(type, "update") == 0) kind = EV_UPDATE;
  else if (strcmp(type, "delete") == 0) kind = EV_DELETE;
  else if (strcmp(type, "sync") == 0) kind = -1;
  else return 0;
  s->events++;
  cJSON *root = cJSON_ParseWithLength(data, len);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    s->rejected++;
    return SC_EJSON;
  }
  int rc;
  if (kind < 0) {
    rc = apply_sync(s, root);
    cJSON_Delete(root);
    return rc;
  }
  const cJSON *topic = cJSON_GetObjectItemCaseSensitive(root, "topic");
  const cJSON *seq = cJSON_GetObjectItemCaseSensitive(root, "seq");
  const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "ts");
  cJSON *d = cJSON_DetachItemFromObjectCaseSensitive(root, "data");
  if (!cJSON_IsString(topic) || !cJSON_IsNumber(seq) || seq->valuedouble < 0 || (kind == EV_UPDATE && !d)) {
    cJSON_Delete(d);
    cJSON_Delete(root);
    s->rejected++;
    return SC_EJSON;
  }
  if (kind == EV_DELETE) {
    cJSON_Delete(d);
    d = NULL;
  }
  char *name = strdup(topic->valuestring);
  uint64_t sq = (uint64_t)seq->valuedouble;
  int64_t t = cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble : 0;
  cJSON_Delete(root);
  if (!name) {
    cJSON_Delete(d);
    return SC_ENOMEM;
  }
  if (s->synced) return apply(s, kind, name, d, sq, t, 1);
  if (s->npending == s->cappending) {
    size_t cap = s->cappending ? s->cappending * 2 : 16;
    mx_pending_t *p = realloc(s->pending, cap * sizeof *p);
    if (!p) {
      free(name);
      cJSON_Delete(d);
      return SC_ENOMEM;
    }
    s->pending = p;
    s->cappending = cap;
  }
  s->pending[s->npending++] = (mx_pending_t){.kind = kind, .topic = name, .data = d, .seq = sq, .ts = t};
  return 0;
}
