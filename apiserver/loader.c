/*
 * loader: snapshot + pipelined HMGETs into a fresh store (see loader.h).
 * The loader frees itself when no reply is outstanding and it is finished
 * (done fired, failed or cancelled), since sc_redis fires every reply
 * callback exactly once, also at shutdown. A catch-up loader (since mode)
 * runs the same steps with score ranges and collects an api_delta_t instead
 * of filling a store.
 */
#include "loader.h"

#include "envelope.h"
#include "err.h"
#include "keys.h"
#include "log.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct api_loader {
  sc_redis_t *cmd; /* borrowed */
  api_store_t *store; /* owned until handed to cb; NULL in since mode */
  api_loader_done_cb cb;
  api_catchup_done_cb since_cb; /* set in since mode */
  api_delta_t delta;            /* since mode: changes owned here */
  size_t cap_changes;
  void *data;
  size_t outstanding;
  size_t max_in_flight;
  int finished; /* done fired, failed or cancelled */
  uint64_t snap_seq;
  char **topics; /* owned copies of the indexed topics */
  size_t ntopics, next; /* next: first topic not yet asked for */
  size_t answered;       /* HMGET replies seen (they come back in order) */
};

static void on_queued(sc_redis_t *r, int status, redisReply *reply, void *privdata);
static void on_snapshot(sc_redis_t *r, int status, redisReply *reply, void *privdata);
static void on_hmget(sc_redis_t *r, int status, redisReply *reply, void *privdata);

static void loader_free(api_loader_t *l) {
  for (size_t i = 0; i < l->ntopics; i++) free(l->topics[i]);
  free(l->topics);
  for (size_t i = 0; i < l->delta.n; i++) {
    free(l->delta.changes[i].topic);
    free(l->delta.changes[i].data);
  }
  free(l->delta.changes);
  api_store_free(l->store);
  free(l);
}

/* Called after every reply: free when idle and finished. */
static void maybe_free(api_loader_t *l) {
  if (l->outstanding == 0 && l->finished) loader_free(l);
}

static void fail(api_loader_t *l, int status, const char *why) {
  if (l->finished) return;
  l->finished = 1;
  SC_WARN("%s failed: %s (%s)", l->since_cb ? "catch-up" : "state load", why, sc_strerror(status));
  if (l->since_cb)
    l->since_cb(l, status, NULL, l->data);
  else
    l->cb(l, status, NULL, 0, l->data);
}

static int cmp_change(const void *a, const void *b) {
  uint64_t x = ((const api_change_t *)a)->seq, y = ((const api_change_t *)b)->seq;
  return x < y ? -1 : x > y;
}

static void finish(api_loader_t *l) {
  l->finished = 1;
  if (l->since_cb) {
    if (l->delta.n > 1) qsort(l->delta.changes, l->delta.n, sizeof *l->delta.changes, cmp_change);
    l->since_cb(l, 0, &l->delta, l->data);
    return;
  }
  int rc = api_store_end_load(l->store);
  if (rc != 0) {
    l->finished = 0;
    fail(l, rc, "sorting the store");
    return;
  }
  api_store_t *st = l->store;
  l->store = NULL;
  l->cb(l, 0, st, l->snap_seq, l->data);
}

static int send_cmd(api_loader_t *l, sc_redis_reply_cb cb, int argc, const char **argv, const size_t *lens) {
  int rc = sc_redis_command_argv(l->cmd, cb, l, argc, argv, lens);
  if (rc == 0) l->outstanding++;
  return rc;
}

/* Send the snapshot transaction. from: "0" (everything, by rank) or
 * "(N" (by score, after seq N). Frees l on failure. */
static int send_snapshot(api_loader_t *l, const char *from) {
  int by_score = from[0] == '(';
  const char *lo = from, *hi = by_score ? "+inf" : "-1";
  const char *cmds[][6] = {
      {"MULTI"},
      {"GET", SC_KEYS_EPOCH},
      {"GET", SC_KEYS_SEQ},
      {"ZRANGE", SC_KEYS_INDEX, lo, hi, by_score ? "BYSCORE" : "WITHSCORES", "WITHSCORES"},
      {"ZRANGE", SC_KEYS_DELETED, lo, hi, by_score ? "BYSCORE" : "WITHSCORES", "WITHSCORES"},
      {"GET", SC_KEYS_DELETED_FLOOR},
      {"EXEC"},
  };
  const int z = by_score ? 6 : 5;
  const int argcs[] = {1, 2, 2, z, z, 2, 1};
  for (size_t i = 0; i < sizeof argcs / sizeof argcs[0]; i++) {
    size_t lens[6];
    for (int j = 0; j < argcs[i]; j++) lens[j] = strlen(cmds[i][j]);
    int rc = send_cmd(l, i + 1 == sizeof argcs / sizeof argcs[0] ? on_snapshot : on_queued, argcs[i], cmds[i], lens);
    if (rc != 0) {
      /* Commands already sent will still call back: let them free us. */
      l->finished = 1;
      if (l->outstanding == 0) loader_free(l);
      return rc;
    }
  }
  return 0;
}

int api_loader_start(api_loader_t **out, sc_redis_t *cmd, size_t tomb_cap, size_t max_in_flight,
                     api_loader_done_cb cb, void *data) {
  api_loader_t *l = calloc(1, sizeof *l);
  if (l == NULL) return SC_ENOMEM;
  int rc = api_store_new(&l->store, tomb_cap);
  if (rc != 0) {
    free(l);
    return rc;
  }
  api_store_begin_load(l->store);
  l->cmd = cmd;
  l->cb = cb;
  l->data = data;
  l->max_in_flight = max_in_flight ? max_in_flight : 1000;
  rc = send_snapshot(l, "0");
  if (rc != 0) return rc;
  *out = l;
  return 0;
}

int api_loader_start_since(api_loader_t **out, sc_redis_t *cmd, uint64_t since, size_t max_in_flight,
                           api_catchup_done_cb cb, void *data) {
  api_loader_t *l = calloc(1, sizeof *l);
  if (l == NULL) return SC_ENOMEM;
  l->cmd = cmd;
  l->since_cb = cb;
  l->data = data;
  l->delta.since = since;
  l->max_in_flight = max_in_flight ? max_in_flight : 1000;
  char from[24];
  snprintf(from, sizeof from, "(%llu", (unsigned long long)since);
  int rc = send_snapshot(l, from);
  if (rc != 0) return rc;
  *out = l;
  return 0;
}

/* Since mode: record one change (copies topic and data; data NULL: delete). */
static int add_change(api_loader_t *l, uint64_t seq, int64_t ts, const char *topic, size_t topic_len,
                      const char *data, size_t data_len) {
  if (l->delta.n == l->cap_changes) {
    size_t nc = l->cap_changes ? l->cap_changes * 2 : 16;
    api_change_t *np = realloc(l->delta.changes, nc * sizeof *np);
    if (np == NULL) return SC_ENOMEM;
    l->delta.changes = np;
    l->cap_changes = nc;
  }
  api_change_t *c = &l->delta.changes[l->delta.n];
  c->seq = seq;
  c->ts = ts;
  c->topic = strndup(topic, topic_len);
  c->topic_len = topic_len;
  c->data = NULL;
  c->data_len = 0;
  if (c->topic == NULL) return SC_ENOMEM;
  if (data != NULL) {
    c->data = malloc(data_len + 1);
    if (c->data == NULL) {
      free(c->topic);
      return SC_ENOMEM;
    }
    memcpy(c->data, data, data_len);
    c->data[data_len] = '\0';
    c->data_len = data_len;
  }
  l->delta.n++;
  return 0;
}

void api_loader_cancel(api_loader_t *l) {
  if (l == NULL) return;
  l->finished = 1;
  maybe_free(l);
}

static void on_queued(sc_redis_t *r, int status, redisReply *reply, void *privdata) {
  (void)r;
  api_loader_t *l = privdata;
  l->outstanding--;
  if (status != 0)
    fail(l, status, "snapshot command");
  else if (reply->type == REDIS_REPLY_ERROR)
    fail(l, SC_EREDIS, reply->str);
  maybe_free(l);
}

static uint64_t parse_u64(const char *s, size_t len) {
  uint64_t v = 0;
  for (size_t i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) v = v * 10 + (uint64_t)(s[i] - '0');
  return v;
}

static int is_hex16(const redisReply *r) {
  if (r->type != REDIS_REPLY_STRING || r->len != SC_SSE_EPOCH_LEN) return 0;
  for (size_t i = 0; i < r->len; i++) {
    char c = r->str[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
  }
  return 1;
}

static void pump_hmget(api_loader_t *l) {
  while (!l->finished && l->next < l->ntopics && l->outstanding < l->max_in_flight) {
    const char *t = l->topics[l->next];
    char key[SC_KEYS_MAX];
    int kl = sc_keys_state(key, sizeof key, t, strlen(t));
    if (kl < 0) {
      fail(l, kl, "state key");
      return;
    }
    const char *argv[] = {"HMGET", key, "seq", "ts", "data"};
    size_t lens[] = {5, (size_t)kl, 3, 2, 4};
    int rc = send_cmd(l, on_hmget, 5, argv, lens);
    if (rc != 0) {
      fail(l, rc, "HMGET");
      return;
    }
    l->next++;
  }
  if (!l->finished && l->next == l->ntopics && l->outstanding == 0) finish(l);
}

static void on_snapshot(sc_redis_t *r, int status, redisReply *reply, void *privdata) {
  (void)r;
  api_loader_t *l = privdata;
  l->outstanding--;
  if (l->finished) goto out;
  if (status != 0) {
    fail(l, status, "EXEC");
    goto out;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5) {
    fail(l, SC_EREDIS, reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected EXEC reply");
    goto out;
  }
  redisReply **el = reply->element;
  if (el[1]->type == REDIS_REPLY_STRING) l->snap_seq = parse_u64(el[1]->str, el[1]->len);
  uint64_t floor = el[4]->type == REDIS_REPLY_STRING ? parse_u64(el[4]->str, el[4]->len) : 0;
  if (l->since_cb) {
    if (is_hex16(el[0])) {
      l->delta.has_epoch = 1;
      memcpy(l->delta.epoch, el[0]->str, SC_SSE_EPOCH_LEN);
      l->delta.epoch[SC_SSE_EPOCH_LEN] = '\0';
    }
    l->delta.snap_seq = l->snap_seq;
    l->delta.deleted_floor = floor;
  } else {
    if (is_hex16(el[0])) api_store_set_epoch(l->store, el[0]->str);
    api_store_raise_last_seq(l->store, l->snap_seq);
    api_store_raise_floor(l->store, floor);
  }
  if (el[3]->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i + 1 < el[3]->elements; i += 2) {
      redisReply *m = el[3]->element[i], *sc = el[3]->element[i + 1];
      if (m->type != REDIS_REPLY_STRING || sc->type != REDIS_REPLY_STRING) continue;
      if (sc_topic_validate(m->str, m->len) != 0) continue;
      uint64_t seq = parse_u64(sc->str, sc->len);
      int rc = l->since_cb ? add_change(l, seq, 0, m->str, m->len, NULL, 0)
                           : api_store_apply(l->store, seq, 0, m->str, m->len, NULL, 0);
      if (rc < 0) {
        fail(l, rc, "tombstones");
        goto out;
      }
    }
  }
  if (el[2]->type == REDIS_REPLY_ARRAY) {
    size_t n = el[2]->elements / 2;
    l->topics = calloc(n ? n : 1, sizeof *l->topics);
    if (l->topics == NULL) {
      fail(l, SC_ENOMEM, "topic list");
      goto out;
    }
    for (size_t i = 0; i < n; i++) {
      redisReply *m = el[2]->element[2 * i];
      if (m->type != REDIS_REPLY_STRING || sc_topic_validate(m->str, m->len) != 0) continue;
      l->topics[l->ntopics] = strndup(m->str, m->len);
      if (l->topics[l->ntopics] == NULL) {
        fail(l, SC_ENOMEM, "topic list");
        goto out;
      }
      l->ntopics++;
    }
  }
  pump_hmget(l);
out:
  maybe_free(l);
}

static void on_hmget(sc_redis_t *r, int status, redisReply *reply, void *privdata) {
  (void)r;
  api_loader_t *l = privdata;
  l->outstanding--;
  if (l->finished) goto out;
  if (status != 0) {
    fail(l, status, "HMGET");
    goto out;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    fail(l, SC_EREDIS, reply->str);
    goto out;
  }
  /* Replies come back in command order, so this one is for topics[answered]. */
  size_t idx = l->answered++;
  if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 && reply->element[0]->type == REDIS_REPLY_STRING &&
      reply->element[2]->type == REDIS_REPLY_STRING) {
    const char *t = l->topics[idx];
    redisReply **e = reply->element;
    uint64_t seq = parse_u64(e[0]->str, e[0]->len);
    int64_t ts = e[1]->type == REDIS_REPLY_STRING ? (int64_t)parse_u64(e[1]->str, e[1]->len) : 0;
    int rc = l->since_cb ? add_change(l, seq, ts, t, strlen(t), e[2]->str, e[2]->len)
                         : api_store_apply(l->store, seq, ts, t, strlen(t), e[2]->str, e[2]->len);
    if (rc < 0) {
      fail(l, rc, "applying state");
      goto out;
    }
  }
  pump_hmget(l);
out:
  maybe_free(l);
}
