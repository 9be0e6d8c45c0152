/*
 * snap_redis: read the committed state atomically, and restore a snapshot
 * through the commit script under optimistic locking (see snap_redis.h).
 */
#include "snap_redis.h"

#include "commit.h"
#include "envelope.h"
#include "err.h"
#include "json.h"
#include "keys.h"
#include "redis.h"
#include "sentinel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A conflicting publish aborts a batch's EXEC; it is re-decided this many
 * times (halving its size each time) before the load gives up. */
#define SNAP_MAX_RETRIES 64

/* Every live topic with seq, ts, data, plus the position, in one atomic read.
 * KEYS: statecast:seq statecast:epoch statecast:index; ARGV: the state key's
 * prefix and suffix around the topic (built by sc_keys_state). */
static const char read_script[] =
    "local out = {redis.call('GET', KEYS[1]) or '0', redis.call('GET', KEYS[2]) or ''}\n"
    "local topics = redis.call('ZRANGE', KEYS[3], 0, -1)\n"
    "for _, t in ipairs(topics) do\n"
    "  local h = redis.call('HMGET', ARGV[1] .. t .. ARGV[2], 'seq', 'ts', 'data')\n"
    "  if h[1] and h[2] and h[3] then\n"
    "    out[#out + 1] = t\n"
    "    out[#out + 1] = h[1]\n"
    "    out[#out + 1] = h[2]\n"
    "    out[#out + 1] = h[3]\n"
    "  end\n"
    "end\n"
    "return out\n";

static int errf(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int errf(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* hiredis context error -> our code and message */
static int ctx_fail(redisContext *c, char *err, size_t errlen, const char *what) {
  return errf(err, errlen, c->err == REDIS_ERR_IO || c->err == REDIS_ERR_EOF ? SC_ECONN : SC_EREDIS, "%s: %s", what,
              c->errstr[0] != '\0' ? c->errstr : "connection lost");
}

int snap_redis_connect(redisContext **out, const struct sc_redis_addr *addr, int timeout_ms, char *err,
                       size_t errlen) {
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  redisReply *r = NULL;
  int rc;
  /* Sentinel mode: connect to the primary the sentinels name (a shallow
   * copy of addr with host/port replaced; master_host is ours). */
  sc_redis_addr_t resolved;
  char *master_host = NULL;
  if (addr->sentinels != NULL) {
    char serr[400];
    int port = 0;
    rc = sc_sentinel_resolve(addr->sentinels, addr->master_name, timeout_ms, &master_host, &port, serr, sizeof serr);
    if (rc != 0) return errf(err, errlen, rc == SC_ENOMEM ? rc : SC_ECONN, "%s", serr);
    resolved = *addr;
    resolved.host = master_host;
    resolved.port = port;
    addr = &resolved;
  }
  redisContext *c = addr->unix_path != NULL ? redisConnectUnixWithTimeout(addr->unix_path, tv)
                                            : redisConnectWithTimeout(addr->host, addr->port, tv);
  if (c == NULL) {
    free(master_host);
    return errf(err, errlen, SC_ENOMEM, "out of memory");
  }
  char where[300];
  sc_redis_addr_describe(addr, where, sizeof where);
  if (c->err) {
    rc = errf(err, errlen, SC_ECONN, "cannot connect to Redis at %s: %s", where, c->errstr);
    goto fail;
  }
  if (redisSetTimeout(c, tv) != REDIS_OK) {
    rc = ctx_fail(c, err, errlen, "setting the timeout");
    goto fail;
  }
  if (addr->password != NULL) {
    r = addr->user != NULL ? redisCommand(c, "AUTH %s %s", addr->user, addr->password)
                           : redisCommand(c, "AUTH %s", addr->password);
    if (r == NULL) {
      rc = ctx_fail(c, err, errlen, "AUTH");
      goto fail;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      rc = errf(err, errlen, SC_EREDIS, "Redis at %s refused AUTH: %s", where, r->str);
      goto fail;
    }
    freeReplyObject(r);
    r = NULL;
  }
  if (addr->db != 0) {
    r = redisCommand(c, "SELECT %d", addr->db);
    if (r == NULL) {
      rc = ctx_fail(c, err, errlen, "SELECT");
      goto fail;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      rc = errf(err, errlen, SC_EREDIS, "SELECT %d: %s", addr->db, r->str);
      goto fail;
    }
    freeReplyObject(r);
    r = NULL;
  }
  if (master_host != NULL) {
    char serr[300];
    rc = sc_sentinel_check_master(c, serr, sizeof serr);
    if (rc != 0) {
      rc = errf(err, errlen, rc, "Redis at %s: %s", where, serr);
      goto fail;
    }
  }
  r = redisCommand(c, "CLIENT SETNAME statecast-snapshot");
  if (r == NULL) {
    rc = ctx_fail(c, err, errlen, "CLIENT SETNAME");
    goto fail;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    rc = errf(err, errlen, SC_EREDIS, "Redis at %s: %s", where, r->str);
    goto fail;
  }
  freeReplyObject(r);
  free(master_host);
  *out = c;
  return 0;
fail:
  if (r != NULL) freeReplyObject(r);
  redisFree(c);
  free(master_host);
  return rc;
}

/* ---- reading ------------------------------------------------------------- */

static void release_reply(void *reply) {
  if (reply != NULL) freeReplyObject(reply);
}

static int parse_u64(const char *s, size_t n, uint64_t *v) {
  if (n == 0 || n > 20) return -1;
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (x > (UINT64_MAX - d) / 10) return -1;
    x = x * 10 + d;
  }
  *v = x;
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int snap_redis_read(redisContext *c, snap_t *out, char *err, size_t errlen) {
  char key[SC_KEYS_MAX];
  int klen = sc_keys_state(key, sizeof key, "", 0); /* "state:{}": prefix + suffix around the topic */
  if (klen < 1) return errf(err, errlen, SC_EINVAL, "cannot build the state key");
  const char *argv[] = {"EVAL_RO", read_script, "3", SC_KEYS_SEQ, SC_KEYS_EPOCH, SC_KEYS_INDEX, key, key + klen - 1};
  size_t argvlen[] = {7, strlen(read_script), 1, strlen(SC_KEYS_SEQ), strlen(SC_KEYS_EPOCH), strlen(SC_KEYS_INDEX),
                      (size_t)klen - 1, 1};
  snap_t s;
  memset(&s, 0, sizeof s);
  int rc;
  char *scratch = NULL;
  redisReply *r = redisCommandArgv(c, 8, argv, argvlen);
  if (r != NULL && r->type == REDIS_REPLY_ERROR && strstr(r->str, "unknown command") != NULL) {
    /* Redis < 7 has no EVAL_RO; a plain EVAL of the same read-only script. */
    freeReplyObject(r);
    argv[0] = "EVAL";
    argvlen[0] = 4;
    r = redisCommandArgv(c, 8, argv, argvlen);
  }
  if (r == NULL) return ctx_fail(c, err, errlen, "reading the state");
  if (r->type == REDIS_REPLY_ERROR) {
    rc = errf(err, errlen, SC_EREDIS, "reading the state: %s", r->str);
    goto fail;
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || (r->elements - 2) % 4 != 0) {
    rc = errf(err, errlen, SC_EREDIS, "reading the state: unexpected reply shape");
    goto fail;
  }
  for (size_t i = 0; i < r->elements; i++) {
    if (r->element[i]->type != REDIS_REPLY_STRING) {
      rc = errf(err, errlen, SC_EREDIS, "reading the state: unexpected reply element %zu", i);
      goto fail;
    }
  }
  s.version = SNAP_FORMAT_VERSION;
  s.created = now_ms();
  if (parse_u64(r->element[0]->str, r->element[0]->len, &s.seq) != 0) {
    rc = errf(err, errlen, SC_EINVAL, "%s is not a number: '%.40s'", SC_KEYS_SEQ, r->element[0]->str);
    goto fail;
  }
  size_t elen = r->element[1]->len;
  if (elen > SNAP_EPOCH_MAX || strspn(r->element[1]->str, "0123456789abcdef") != elen) {
    rc = errf(err, errlen, SC_EINVAL, "%s is not a hex id: '%.40s'", SC_KEYS_EPOCH, r->element[1]->str);
    goto fail;
  }
  memcpy(s.epoch, r->element[1]->str, elen);
  s.epoch[elen] = '\0';
  s.count = (r->elements - 2) / 4;
  if (s.count > 0 && (s.topics = calloc(s.count, sizeof *s.topics)) == NULL) {
    rc = errf(err, errlen, SC_ENOMEM, "out of memory");
    goto fail;
  }
  size_t scap = 0;
  for (size_t i = 0; i < s.count; i++) {
    redisReply **e = &r->element[2 + 4 * i];
    snap_topic_t *t = &s.topics[i];
    uint64_t ts = 0;
    t->topic = e[0]->str;
    t->topic_len = e[0]->len;
    t->data = e[3]->str;
    t->data_len = e[3]->len;
    if (sc_topic_validate(t->topic, t->topic_len) != 0 || parse_u64(e[1]->str, e[1]->len, &t->seq) != 0 ||
        parse_u64(e[2]->str, e[2]->len, &ts) != 0 || ts > INT64_MAX || t->seq > s.seq) {
      rc = errf(err, errlen, SC_EINVAL, "Redis holds an inconsistent entry for topic '%.*s' (seq '%.20s', ts '%.20s')",
                (int)(t->topic_len > 200 ? 200 : t->topic_len), t->topic, e[1]->str, e[2]->str);
      goto fail;
    }
    t->ts = (int64_t)ts;
    /* Only the commit script writes state, and it stores compact JSON; check
     * anyway so a save never produces a file that verify would refuse. */
    if (t->data_len > scap) {
      char *ns = realloc(scratch, t->data_len);
      if (ns == NULL) {
        rc = errf(err, errlen, SC_ENOMEM, "out of memory");
        goto fail;
      }
      scratch = ns;
      scap = t->data_len;
    }
    size_t olen = 0;
    if (sc_json_compact(t->data, t->data_len, scratch, &olen, NULL) != 0 || olen != t->data_len ||
        memcmp(scratch, t->data, olen) != 0) {
      rc = errf(err, errlen, SC_EINVAL, "Redis holds data for topic '%.*s' that is not compact JSON",
                (int)t->topic_len, t->topic);
      goto fail;
    }
  }
  free(scratch);
  s.owner = r;
  s.release = release_reply;
  *out = s;
  return 0;
fail:
  free(scratch);
  free(s.topics);
  freeReplyObject(r);
  memset(out, 0, sizeof *out);
  return rc;
}

/* ---- planning ------------------------------------------------------------ */

const char *snap_action_name(snap_action_t a) {
  switch (a) {
    case SNAP_ADD: return "added";
    case SNAP_UPDATE: return "updated";
    case SNAP_DELETE: return "deleted";
    case SNAP_KEEP: return "kept";
    default: return "unchanged";
  }
}

snap_action_t snap_decide(const snap_topic_t *want, const snap_topic_t *cur, int replace) {
  if (want == NULL) return cur != NULL && replace ? SNAP_DELETE : SNAP_UNCHANGED;
  if (cur == NULL) return SNAP_ADD;
  if (cur->data_len == want->data_len && memcmp(cur->data, want->data, want->data_len) == 0) return SNAP_UNCHANGED;
  if (replace || want->ts > cur->ts) return SNAP_UPDATE;
  return SNAP_KEEP;
}

static void count(snap_stats_t *st, snap_action_t a) {
  switch (a) {
    case SNAP_ADD: st->added++; break;
    case SNAP_UPDATE: st->updated++; break;
    case SNAP_DELETE: st->deleted++; break;
    case SNAP_KEEP: st->kept++; break;
    default: st->unchanged++; break;
  }
}

static int cmp_topic_ptr(const void *a, const void *b) {
  const snap_topic_t *x = *(const snap_topic_t *const *)a, *y = *(const snap_topic_t *const *)b;
  size_t n = x->topic_len < y->topic_len ? x->topic_len : y->topic_len;
  int c = memcmp(x->topic, y->topic, n);
  return c != 0 ? c : (x->topic_len > y->topic_len) - (x->topic_len < y->topic_len);
}

/* Sorted array of pointers into s->topics, for lookups by name; caller frees. */
static const snap_topic_t **sorted_index(const snap_t *s) {
  const snap_topic_t **idx = malloc((s->count ? s->count : 1) * sizeof *idx);
  if (idx == NULL) return NULL;
  for (size_t i = 0; i < s->count; i++) idx[i] = &s->topics[i];
  qsort(idx, s->count, sizeof *idx, cmp_topic_ptr);
  return idx;
}

static const snap_topic_t *lookup(const snap_topic_t **idx, size_t n, const snap_topic_t *key) {
  const snap_topic_t **hit = bsearch(&key, idx, n, sizeof *idx, cmp_topic_ptr);
  return hit != NULL ? *hit : NULL;
}

int snap_plan(const snap_t *file, const snap_t *current, int replace, snap_plan_cb cb, void *data,
              snap_stats_t *st) {
  memset(st, 0, sizeof *st);
  const snap_topic_t **cur_idx = sorted_index(current);
  const snap_topic_t **file_idx = replace ? sorted_index(file) : NULL;
  if (cur_idx == NULL || (replace && file_idx == NULL)) {
    free(cur_idx);
    free(file_idx);
    return SC_ENOMEM;
  }
  for (size_t i = 0; i < file->count; i++) {
    const snap_topic_t *t = &file->topics[i];
    snap_action_t a = snap_decide(t, lookup(cur_idx, current->count, t), replace);
    count(st, a);
    if (cb != NULL) cb(a, t, data);
  }
  if (replace) {
    for (size_t i = 0; i < current->count; i++) {
      const snap_topic_t *t = &current->topics[i];
      if (lookup(file_idx, file->count, t) != NULL) continue;
      count(st, SNAP_DELETE);
      if (cb != NULL) cb(SNAP_DELETE, t, data);
    }
  }
  free(cur_idx);
  free(file_idx);
  return 0;
}

/* ---- loading ------------------------------------------------------------- */

/* One topic to restore: want is the file's entry, or NULL to delete topic. */
typedef struct item {
  const snap_topic_t *want;
  const snap_topic_t *topic; /* the name (want, or the Redis entry to delete) */
} item_t;

/* Per-batch working storage, sized for the largest batch. */
typedef struct batch {
  sc_commit_cmd_t *cmds;  /* owned; cmds[i].state_key doubles as the WATCH key */
  snap_action_t *actions; /* owned */
  const char **argv;      /* owned; WATCH argv */
  size_t *argvlen;        /* owned */
} batch_t;

/* Pipelined replies: read n of them, freeing each; returns 0 or an error. */
static int drain(redisContext *c, size_t n, char *err, size_t errlen) {
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    redisReply *r = NULL;
    if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) return ctx_fail(c, err, errlen, "reading replies");
    if (r->type == REDIS_REPLY_ERROR && rc == 0) rc = errf(err, errlen, SC_EREDIS, "Redis: %s", r->str);
    freeReplyObject(r);
  }
  return rc;
}

static int script_load(redisContext *c, char *err, size_t errlen) {
  redisReply *r = redisCommand(c, "SCRIPT LOAD %s", sc_commit_script);
  if (r == NULL) return ctx_fail(c, err, errlen, "SCRIPT LOAD");
  int ok = r->type == REDIS_REPLY_STRING && strcmp(r->str, sc_commit_sha()) == 0;
  int rc = ok ? 0
              : errf(err, errlen, SC_EREDIS, "SCRIPT LOAD of the commit script failed: %s",
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected answer");
  freeReplyObject(r);
  return rc;
}

/*
 * One optimistic transaction over items[0..n). Returns 1 when it committed
 * (stats updated), 0 when a concurrent change aborted it (nothing changed,
 * retry), 2 when the commit script had vanished from the cache (reload,
 * retry), or a negative error.
 */
static int run_batch(redisContext *c, batch_t *b, const item_t *items, size_t n, int replace, snap_stats_t *st,
                     char *err, size_t errlen) {
  int rc;
  redisReply *r = NULL;
  b->argv[0] = "WATCH";
  b->argvlen[0] = 5;
  for (size_t i = 0; i < n; i++) {
    const snap_topic_t *t = items[i].topic;
    int klen = sc_keys_state(b->cmds[i].state_key, sizeof b->cmds[i].state_key, t->topic, t->topic_len);
    if (klen < 0) return errf(err, errlen, klen, "topic '%.*s': key too long", (int)t->topic_len, t->topic);
    b->argv[1 + i] = b->cmds[i].state_key;
    b->argvlen[1 + i] = (size_t)klen;
  }
  /* WATCH first, then read: any commit to these keys after this point makes EXEC fail. */
  redisAppendCommandArgv(c, (int)n + 1, b->argv, b->argvlen);
  for (size_t i = 0; i < n; i++) {
    const char *hargv[] = {"HMGET", b->argv[1 + i], "seq", "ts", "data"};
    size_t hlen[] = {5, b->argvlen[1 + i], 3, 2, 4};
    redisAppendCommandArgv(c, 5, hargv, hlen);
  }
  if ((rc = drain(c, 1, err, errlen)) != 0) return rc;
  size_t ncommit = 0;
  for (size_t i = 0; i < n; i++) {
    if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) return ctx_fail(c, err, errlen, "HMGET");
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
      rc = errf(err, errlen, SC_EREDIS, "HMGET %s: %s", b->argv[1 + i],
                r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
      freeReplyObject(r);
      drain(c, n - i - 1, NULL, 0);
      return rc;
    }
    snap_topic_t cur = {0};
    int exists = r->element[2]->type == REDIS_REPLY_STRING;
    if (exists) {
      uint64_t ts = 0;
      if (r->element[1]->type == REDIS_REPLY_STRING) (void)parse_u64(r->element[1]->str, r->element[1]->len, &ts);
      cur.ts = ts > INT64_MAX ? INT64_MAX : (int64_t)ts;
      cur.data = r->element[2]->str;
      cur.data_len = r->element[2]->len;
    }
    b->actions[i] = snap_decide(items[i].want, exists ? &cur : NULL, replace);
    freeReplyObject(r);
    r = NULL;
    if (b->actions[i] == SNAP_ADD || b->actions[i] == SNAP_UPDATE || b->actions[i] == SNAP_DELETE) ncommit++;
  }
  if (ncommit == 0) {
    r = redisCommand(c, "UNWATCH");
    if (r == NULL) return ctx_fail(c, err, errlen, "UNWATCH");
    freeReplyObject(r);
    for (size_t i = 0; i < n; i++) count(st, b->actions[i]);
    return 1;
  }
  redisAppendCommand(c, "MULTI");
  for (size_t i = 0; i < n; i++) {
    snap_action_t a = b->actions[i];
    if (a != SNAP_ADD && a != SNAP_UPDATE && a != SNAP_DELETE) continue;
    const snap_topic_t *t = items[i].topic;
    const snap_topic_t *w = a == SNAP_DELETE ? NULL : items[i].want;
    if ((rc = sc_commit_argv(&b->cmds[i], 0, t->topic, t->topic_len, w ? w->data : NULL, w ? w->data_len : 0)) != 0)
      return errf(err, errlen, rc, "topic '%.*s': %s", (int)t->topic_len, t->topic, sc_strerror(rc));
    redisAppendCommandArgv(c, SC_COMMIT_ARGC, b->cmds[i].argv, b->cmds[i].argvlen);
  }
  redisAppendCommand(c, "EXEC");
  if ((rc = drain(c, 1 + ncommit, err, errlen)) != 0) {
    drain(c, 1, NULL, 0); /* the EXEC answer (EXECABORT) */
    return rc;
  }
  if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) return ctx_fail(c, err, errlen, "EXEC");
  if (r->type == REDIS_REPLY_NIL) {
    freeReplyObject(r);
    return 0;
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements != ncommit) {
    rc = errf(err, errlen, SC_EREDIS, "EXEC: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return rc;
  }
  /* Check every answer before counting, so a retried batch is not counted twice. */
  for (size_t j = 0; j < ncommit; j++) {
    redisReply *e = r->element[j];
    if (e->type == REDIS_REPLY_ERROR) {
      int noscript = strncmp(e->str, "NOSCRIPT", 8) == 0;
      rc = noscript ? 2 : errf(err, errlen, SC_EREDIS, "commit script: %s", e->str);
      freeReplyObject(r);
      return rc;
    }
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 4 || e->element[0]->type != REDIS_REPLY_INTEGER) {
      freeReplyObject(r);
      return errf(err, errlen, SC_EREDIS, "commit script: unexpected answer");
    }
  }
  size_t j = 0;
  for (size_t i = 0; i < n; i++) {
    snap_action_t a = b->actions[i];
    if (a == SNAP_ADD || a == SNAP_UPDATE || a == SNAP_DELETE) {
      /* committed 0: identical after all (cannot happen under WATCH, but count truthfully) */
      if (r->element[j++]->element[0]->integer == 0) a = SNAP_UNCHANGED;
    }
    count(st, a);
  }
  freeReplyObject(r);
  return 1;
}

int snap_load(redisContext *c, const snap_t *file, int replace, size_t batch, snap_progress_cb progress,
              void *pdata, snap_stats_t *st, char *err, size_t errlen) {
  snap_t current;
  memset(&current, 0, sizeof current);
  memset(st, 0, sizeof *st);
  item_t *items = NULL;
  const snap_topic_t **file_idx = NULL;
  batch_t b = {NULL, NULL, NULL, NULL};
  size_t nitems = 0;
  int rc;
  if (batch == 0) batch = 500;

  if ((rc = script_load(c, err, errlen)) != 0) goto done;
  if (replace) {
    /* Topics in Redis but not in the file get deleted; only --replace needs the list. */
    if ((rc = snap_redis_read(c, &current, err, errlen)) != 0) goto done;
    if ((file_idx = sorted_index(file)) == NULL) goto nomem;
  }
  items = malloc((file->count + current.count + 1) * sizeof *items);
  b.cmds = malloc(batch * sizeof *b.cmds);
  b.actions = malloc(batch * sizeof *b.actions);
  b.argv = malloc((batch + 1) * sizeof *b.argv);
  b.argvlen = malloc((batch + 1) * sizeof *b.argvlen);
  if (items == NULL || b.cmds == NULL || b.actions == NULL || b.argv == NULL || b.argvlen == NULL) goto nomem;
  for (size_t i = 0; i < current.count; i++)
    if (lookup(file_idx, file->count, &current.topics[i]) == NULL)
      items[nitems++] = (item_t){NULL, &current.topics[i]};
  /* file order is ascending seq: the restored topics keep their relative order */
  for (size_t i = 0; i < file->count; i++) items[nitems++] = (item_t){&file->topics[i], &file->topics[i]};

  size_t done = 0;
  while (done < nitems) {
    size_t n = nitems - done < batch ? nitems - done : batch;
    int tries = 0;
    for (;;) {
      rc = run_batch(c, &b, items + done, n, replace, st, err, errlen);
      if (rc < 0) goto done;
      if (rc == 1) break;
      if (rc == 2 && (rc = script_load(c, err, errlen)) != 0) goto done;
      if (++tries > SNAP_MAX_RETRIES) {
        rc = errf(err, errlen, SC_EREDIS, "gave up after %d conflicting concurrent commits (topic '%.*s')", tries,
                  (int)items[done].topic->topic_len, items[done].topic->topic);
        goto done;
      }
      if (n > 1) n /= 2; /* a hot topic conflicts less in a smaller batch */
    }
    done += n;
    if (progress != NULL) progress(done, nitems, pdata);
  }
  rc = 0;
  goto done;
nomem:
  rc = errf(err, errlen, SC_ENOMEM, "out of memory");
done:
  free(items);
  free(file_idx);
  free(b.cmds);
  free(b.actions);
  free(b.argv);
  free(b.argvlen);
  snap_dispose(&current);
  return rc;
}
