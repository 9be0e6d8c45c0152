/* The commit script against a real redis-server: what it stores, what it
 * publishes, what it refuses to do twice. */
#include "commit.h"
#include "keys.h"
#include "support.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static sc_test_redis_t srv;
static redisContext *c;   /* commands */
static redisContext *sub; /* SUBSCRIBEd to statecast:notify */

static void setup(void) {
  cr_assert_eq(sc_test_redis_start(&srv, NULL), 0, "redis-server did not start");
  c = sc_test_redis_connect(&srv);
  sub = sc_test_redis_connect(&srv);
  cr_assert(c != NULL && sub != NULL);
  redisReply *r = redisCommand(sub, "SUBSCRIBE %s", SC_KEYS_NOTIFY);
  cr_assert_not_null(r);
  freeReplyObject(r);
  redisSetTimeout(sub, (struct timeval){0, 300000});
}

static void teardown(void) {
  if (c) redisFree(c);
  if (sub) redisFree(sub);
  sc_test_redis_stop(&srv, 0);
}

TestSuite(commit_script, .init = setup, .fini = teardown, .timeout = 30);

typedef struct result {
  long long committed, seq, ts;
  char epoch[64];
} result_t;

/* Runs the script; cap_override NULL keeps the real tombstone cap. */
static result_t commit(const char *topic, const char *data, const char *cap_override) {
  sc_commit_cmd_t cmd;
  cr_assert_eq(sc_commit_argv(&cmd, 1, topic, strlen(topic), data, data ? strlen(data) : 0), 0);
  if (cap_override != NULL) {
    cmd.argv[3 + SC_COMMIT_NKEYS + 4] = cap_override;
    cmd.argvlen[3 + SC_COMMIT_NKEYS + 4] = strlen(cap_override);
  }
  redisReply *r = redisCommandArgv(c, SC_COMMIT_ARGC, cmd.argv, cmd.argvlen);
  cr_assert_not_null(r);
  cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "script error: %s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
  cr_assert_eq(r->elements, 4);
  result_t res = {r->element[0]->integer, r->element[1]->integer, r->element[2]->integer, ""};
  snprintf(res.epoch, sizeof res.epoch, "%s", r->element[3]->str);
  freeReplyObject(r);
  return res;
}

/* Next notification payload, or "" when none arrives within 300 ms. */
static void next_notify(char *buf, size_t cap) {
  redisReply *r = NULL;
  buf[0] = '\0';
  if (redisGetReply(sub, (void **)&r) != REDIS_OK || r == NULL) {
    /* A read timeout leaves the context in error: reconnect for the next call. */
    redisFree(sub);
    sub = sc_test_redis_connect(&srv);
    redisReply *s = redisCommand(sub, "SUBSCRIBE %s", SC_KEYS_NOTIFY);
    freeReplyObject(s);
    redisSetTimeout(sub, (struct timeval){0, 300000});
    return;
  }
  if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) snprintf(buf, cap, "%s", r->element[2]->str);
  freeReplyObject(r);
}

static char *get(const char *fmt, const char *arg) {
  redisReply *r = redisCommand(c, fmt, arg);
  cr_assert_not_null(r);
  char *s = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
  freeReplyObject(r);
  return s;
}

Test(commit_script, first_commit_stores_state_index_and_notifies) {
  result_t r = commit("a/b", "{\"x\":1}", NULL);
  cr_assert_eq(r.committed, 1);
  cr_assert_eq(r.seq, 1);
  cr_assert_eq(strlen(r.epoch), 16);
  cr_assert(r.ts > 1600000000000LL);
  char *data = get("HGET %s data", "state:{a/b}");
  cr_assert_str_eq(data, "{\"x\":1}");
  free(data);
  char *seq = get("HGET %s seq", "state:{a/b}");
  cr_assert_str_eq(seq, "1");
  free(seq);
  char *score = get("ZSCORE statecast:index %s", "a/b");
  cr_assert_str_eq(score, "1");
  free(score);
  char want[256], got[512];
  snprintf(want, sizeof want, "u %s 1 %lld a/b {\"x\":1}", r.epoch, r.ts);
  next_notify(got, sizeof got);
  cr_assert_str_eq(got, want);
}

Test(commit_script, identical_state_commits_and_notifies_nothing) {
  result_t a = commit("t", "[1]", NULL);
  char got[256];
  next_notify(got, sizeof got);
  result_t b = commit("t", "[1]", NULL);
  cr_assert_eq(b.committed, 0);
  cr_assert_eq(b.seq, a.seq);
  next_notify(got, sizeof got);
  cr_assert_str_eq(got, "");
  char *seq = get("GET %s", SC_KEYS_SEQ);
  cr_assert_str_eq(seq, "1");
  free(seq);
}

Test(commit_script, sequence_grows_across_topics) {
  cr_assert_eq(commit("a", "1", NULL).seq, 1);
  cr_assert_eq(commit("b", "1", NULL).seq, 2);
  cr_assert_eq(commit("a", "2", NULL).seq, 3);
  char *score = get("ZSCORE statecast:index %s", "a");
  cr_assert_str_eq(score, "3");
  free(score);
}

Test(commit_script, delete_removes_state_and_leaves_a_tombstone) {
  result_t a = commit("t", "{}", NULL);
  result_t d = commit("t", NULL, NULL);
  cr_assert_eq(d.committed, 1);
  cr_assert_eq(d.seq, a.seq + 1);
  redisReply *r = redisCommand(c, "EXISTS state:{t}");
  cr_assert_eq(r->integer, 0);
  freeReplyObject(r);
  char *idx = get("ZSCORE statecast:index %s", "t");
  cr_assert_null(idx);
  char *tomb = get("ZSCORE statecast:deleted %s", "t");
  cr_assert_str_eq(tomb, "2");
  free(tomb);
  char got[256], want[256];
  next_notify(got, sizeof got);
  next_notify(got, sizeof got);
  snprintf(want, sizeof want, "d %s 2 %lld t", d.epoch, d.ts);
  cr_assert_str_eq(got, want);
}

Test(commit_script, deleting_an_absent_topic_does_nothing) {
  result_t d = commit("nope", NULL, NULL);
  cr_assert_eq(d.committed, 0);
  char *seq = get("GET %s", SC_KEYS_SEQ);
  cr_assert_null(seq);
}

Test(commit_script, update_after_delete_clears_the_tombstone) {
  commit("t", "1", NULL);
  commit("t", NULL, NULL);
  commit("t", "2", NULL);
  cr_assert_null(get("ZSCORE statecast:deleted %s", "t"));
  char *score = get("ZSCORE statecast:index %s", "t");
  cr_assert_str_eq(score, "3");
  free(score);
}

Test(commit_script, tombstones_are_capped_and_the_floor_recorded) {
  const char *topics[] = {"a", "b", "c", "d", "e"};
  for (int i = 0; i < 5; i++) commit(topics[i], "1", NULL);      /* seq 1..5 */
  for (int i = 0; i < 5; i++) commit(topics[i], NULL, "3");      /* seq 6..10 */
  redisReply *r = redisCommand(c, "ZCARD statecast:deleted");
  cr_assert_eq(r->integer, 3);
  freeReplyObject(r);
  char *floor = get("GET %s", SC_KEYS_DELETED_FLOOR);
  cr_assert_str_eq(floor, "7");
  free(floor);
}

Test(commit_script, epoch_is_kept_until_redis_loses_its_data) {
  result_t a = commit("t", "1", NULL);
  result_t b = commit("t", "2", NULL);
  cr_assert_str_eq(a.epoch, b.epoch);
  redisReply *r = redisCommand(c, "FLUSHALL");
  freeReplyObject(r);
  result_t d = commit("t", "3", NULL);
  cr_assert_str_neq(d.epoch, a.epoch);
  cr_assert_eq(d.seq, 1);
}

/* ---- the durable path: inbox entry ids and lease fencing ---- */

/* XADD an inbox entry; its id into id (cap 64). */
static void xadd(const char *topic, const char *data, char *id) {
  redisReply *r = redisCommand(c, "XADD %s * topic %s data %s", SC_KEYS_INBOX, topic, data);
  cr_assert(r != NULL && r->type == REDIS_REPLY_STRING);
  snprintf(id, 64, "%s", r->str);
  freeReplyObject(r);
}

/* Runs the script for an inbox entry with a lease token; the raw reply
 * (caller frees). */
static redisReply *commit_src(const char *topic, const char *data, const char *id, const char *token) {
  sc_commit_cmd_t cmd;
  cr_assert_eq(
      sc_commit_argv_src(&cmd, 1, topic, strlen(topic), data, data ? strlen(data) : 0, id, token), 0);
  redisReply *r = redisCommandArgv(c, SC_COMMIT_ARGC, cmd.argv, cmd.argvlen);
  cr_assert_not_null(r);
  return r;
}

static long long inbox_len(void) {
  redisReply *r = redisCommand(c, "XLEN %s", SC_KEYS_INBOX);
  long long n = r->integer;
  freeReplyObject(r);
  return n;
}

static long long inbox_pending(void) {
  redisReply *r = redisCommand(c, "XPENDING %s %s", SC_KEYS_INBOX, SC_KEYS_INBOX_GROUP);
  cr_assert(r != NULL && r->type == REDIS_REPLY_ARRAY);
  long long n = r->element[0]->integer;
  freeReplyObject(r);
  return n;
}

static void lease(const char *token) {
  redisReply *r = redisCommand(c, "SET %s %s", SC_KEYS_LEADER, token);
  freeReplyObject(r);
}

static void group_read_all(void) {
  redisReply *r = redisCommand(c, "XGROUP CREATE %s %s 0 MKSTREAM", SC_KEYS_INBOX, SC_KEYS_INBOX_GROUP);
  freeReplyObject(r);
  r = redisCommand(c, "XREADGROUP GROUP %s me STREAMS %s >", SC_KEYS_INBOX_GROUP, SC_KEYS_INBOX);
  freeReplyObject(r);
}

Test(commit_script, inbox_entry_commits_records_src_and_leaves_the_stream) {
  char id[64];
  lease("tok");
  xadd("s", "{\"v\":1}", id);
  group_read_all();
  cr_assert_eq(inbox_pending(), 1);
  redisReply *r = commit_src("s", "{\"v\":1}", id, "tok");
  cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
  cr_assert_eq(r->elements, 5);
  cr_assert_eq(r->element[0]->integer, 1);
  cr_assert_eq(r->element[4]->integer, 0);
  freeReplyObject(r);
  char *src = get("HGET %s src", "state:{s}");
  cr_assert_str_eq(src, id);
  free(src);
  cr_assert_eq(inbox_len(), 0, "the committed entry is XDELed");
  cr_assert_eq(inbox_pending(), 0, "the committed entry is XACKed");
}

Test(commit_script, an_older_inbox_entry_is_stale_but_still_acknowledged) {
  char old_id[64], new_id[64];
  lease("tok");
  xadd("s", "\"old\"", old_id);
  xadd("s", "\"new\"", new_id);
  group_read_all();
  freeReplyObject(commit_src("s", "\"new\"", new_id, "tok"));
  char got[256];
  next_notify(got, sizeof got);
  redisReply *r = commit_src("s", "\"old\"", old_id, "tok");
  cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
  cr_assert_eq(r->element[0]->integer, 0);
  cr_assert_eq(r->element[4]->integer, 1, "stale");
  freeReplyObject(r);
  char *data = get("HGET %s data", "state:{s}");
  cr_assert_str_eq(data, "\"new\"");
  free(data);
  next_notify(got, sizeof got);
  cr_assert_str_eq(got, "", "a stale entry notifies nobody");
  cr_assert_eq(inbox_len(), 0);
  cr_assert_eq(inbox_pending(), 0);
  /* The same entry again (re-delivered after a crash) is stale too. */
  r = commit_src("s", "\"new\"", new_id, "tok");
  cr_assert_eq(r->element[4]->integer, 1);
  freeReplyObject(r);
}

Test(commit_script, a_deleted_topic_keeps_its_last_entry_id) {
  char a[64], d[64];
  lease("tok");
  xadd("s", "1", a);
  xadd("s", "null", d);
  freeReplyObject(commit_src("s", "1", a, "tok"));
  freeReplyObject(commit_src("s", NULL, d, "tok"));
  char *src = get("HGET %s s", SC_KEYS_DELETED_SRC);
  cr_assert_str_eq(src, d);
  free(src);
  redisReply *r = commit_src("s", "1", a, "tok");
  cr_assert_eq(r->element[4]->integer, 1, "an entry older than the delete must not resurrect the topic");
  freeReplyObject(r);
  r = redisCommand(c, "EXISTS state:{s}");
  cr_assert_eq(r->integer, 0);
  freeReplyObject(r);
}

Test(commit_script, a_wrong_or_missing_lease_token_is_refused_with_notleader) {
  char id[64];
  xadd("f", "1", id);
  redisReply *r = commit_src("f", "1", id, "tok");
  cr_assert_eq(r->type, REDIS_REPLY_ERROR);
  cr_assert(strncmp(r->str, "NOTLEADER", 9) == 0, "%s", r->str);
  freeReplyObject(r);
  lease("other");
  r = commit_src("f", "1", "", "tok");
  cr_assert_eq(r->type, REDIS_REPLY_ERROR);
  cr_assert(strncmp(r->str, "NOTLEADER", 9) == 0, "%s", r->str);
  freeReplyObject(r);
  r = redisCommand(c, "EXISTS state:{f}");
  cr_assert_eq(r->integer, 0, "a fenced commit changes nothing");
  freeReplyObject(r);
  cr_assert_eq(inbox_len(), 1, "a fenced commit leaves the entry in the stream");
  cr_assert_null(get("GET %s", SC_KEYS_SEQ));
}
