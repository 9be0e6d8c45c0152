/*
 * The matrix client's topic state: events before a sync are applied all at
 * once, a full sync drops topics not re-sent, duplicates are not changes.
 */
#include "../../matrix-client/state.h"
#include "err.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static void ev(mx_state_t *s, const char *type, const char *json) {
  cr_assert_eq(mx_state_event(s, type, json, strlen(json)), 0, "%s %s", type, json);
}

static void upd(mx_state_t *s, const char *topic, unsigned seq, int value) {
  char buf[200];
  snprintf(buf, sizeof buf, "{\"topic\":\"%s\",\"seq\":%u,\"ts\":5,\"data\":{\"v\":%d}}", topic, seq, value);
  ev(s, "update", buf);
}

static void sync(mx_state_t *s, const char *epoch, unsigned seq, int full) {
  char buf[200];
  snprintf(buf, sizeof buf, "{\"seq\":%u,\"epoch\":\"%s\",\"full\":%s}", seq, epoch, full ? "true" : "false");
  ev(s, "sync", buf);
}

static int value_of(const mx_state_t *s, const char *topic) {
  const mx_topic_t *t = mx_state_find(s, topic);
  cr_assert_not_null(t, "topic %s missing", topic);
  return cJSON_GetObjectItem(t->data, "v")->valueint;
}

Test(matrix_state, holds_events_back_until_sync) {
  mx_state_t s;
  mx_state_init(&s);
  mx_state_begin(&s);
  upd(&s, "a", 1, 10);
  upd(&s, "b", 2, 20);
  cr_assert_eq(s.n, 0, "nothing visible before the sync");
  cr_assert_eq(s.version, 0);
  sync(&s, "e1", 2, 1);
  cr_assert_eq(s.n, 2);
  cr_assert_eq(value_of(&s, "a"), 10);
  cr_assert_eq(s.applied, 2);
  cr_assert(s.synced);
  upd(&s, "a", 3, 11);
  cr_assert_eq(value_of(&s, "a"), 11, "after the sync events apply at once");
  mx_state_dispose(&s);
}

Test(matrix_state, full_sync_drops_topics_not_resent) {
  mx_state_t s;
  mx_state_init(&s);
  mx_state_begin(&s);
  upd(&s, "a", 1, 10);
  upd(&s, "b", 2, 20);
  sync(&s, "e1", 2, 1);
  mx_state_begin(&s); /* reconnect; the server could not place our id */
  upd(&s, "a", 1, 10);
  cr_assert_eq(s.n, 2, "b stays on screen until the sync");
  sync(&s, "e1", 3, 1);
  cr_assert_eq(s.n, 1);
  cr_assert_null(mx_state_find(&s, "b"));
  cr_assert_eq(s.dropped, 1);
  cr_assert_eq(s.ignored, 1, "the re-sent a is not a change");
  mx_state_dispose(&s);
}

Test(matrix_state, resume_sync_keeps_topics_and_applies_only_missed) {
  mx_state_t s;
  mx_state_init(&s);
  mx_state_begin(&s);
  upd(&s, "a", 1, 10);
  upd(&s, "b", 2, 20);
  sync(&s, "e1", 2, 1);
  uint64_t before = s.applied;
  mx_state_begin(&s);
  upd(&s, "b", 3, 21);
  sync(&s, "e1", 3, 0);
  cr_assert_eq(s.n, 2);
  cr_assert_eq(value_of(&s, "a"), 10);
  cr_assert_eq(value_of(&s, "b"), 21);
  cr_assert_eq(s.applied - before, 1);
  mx_state_dispose(&s);
}

Test(matrix_state, ignores_updates_that_are_not_newer) {
  mx_state_t s;
  mx_state_init(&s);
  mx_state_begin(&s);
  upd(&s, "a", 5, 50);
  sync(&s, "e1", 5, 1);
  unsigned v = s.version;
  upd(&s, "a", 4, 40);
  upd(&s, "a", 5, 41);
  cr_assert_eq(value_of(&s, "a"), 50);
  cr_assert_eq(s.ignored, 2);
  cr_assert_eq(s.version, v, "a duplicate is no redraw");
  mx_state_dispose(&s);
}

Test(matrix_state, new_epoch_replaces_state_even_with_lower_seqs) {
  mx_state_t s;
  mx_state_init(&s);
  mx_state_begin(&s);
  upd(&s, "a", 50, 1);
  upd(&s, "b", 51, 1);
  sync(&s, "e1", 51, 1);
  mx_state_begin(&s); /* Redis lost its data: a new epoch, seqs restart */
  upd(&s, "a", 1, 2);
  sync(&s, "e2", 1, 1);
  cr_assert_eq(value_of(&s, "a"), 2);
  cr_assert_null(mx_state_find(&s, "b"));
  cr_assert_str_eq(s.epoch, "e2");
  mx_state_dispose(&s);
}

Test(matrix_state, applies_deletes) {
  mx_state_t s;
  mx_state_init(&s);
  mx_state_begin(&s);
  upd(&s, "a", 1, 1);
  sync(&s, "e1", 1, 1);
  ev(&s, "delete", "{\"topic\":\"a\",\"seq\":2,\"ts\":9}");
  cr_assert_eq(s.n, 0);
  cr_assert_eq(s.applied, 2);
  mx_state_dispose(&s);
}

Test(matrix_state, drops_events_of_a_connection_lost_before_its_sync) {
  mx_state_t s;
  mx_state_init(&s);
  mx_state_begin(&s);
  upd(&s, "a", 1, 1);
  mx_state_begin(&s); /* lost before sync: nothing of it may show */
  upd(&s, "b", 2, 1);
  sync(&s, "e1", 2, 1);
  cr_assert_null(mx_state_find(&s, "a"));
  cr_assert_not_null(mx_state_find(&s, "b"));
  mx_state_dispose(&s);
}

Test(matrix_state, rejects_malformed_envelopes_without_damage) {
  mx_state_t s;
  mx_state_init(&s);
  mx_state_begin(&s);
  upd(&s, "a", 1, 1);
  sync(&s, "e1", 1, 1);
  const char *bad[] = {"not json", "[]", "{\"seq\":2,\"data\":1}", "{\"topic\":\"a\",\"seq\":2}",
                       "{\"topic\":5,\"seq\":2,\"data\":1}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(mx_state_event(&s, "update", bad[i], strlen(bad[i])), SC_EJSON, "%s", bad[i]);
  cr_assert_eq(mx_state_event(&s, "sync", "{\"full\":true}", 13), SC_EJSON);
  cr_assert_eq(mx_state_event(&s, "whatever", "x", 1), 0, "unknown types are ignored");
  cr_assert_eq(s.rejected, 6);
  cr_assert_eq(value_of(&s, "a"), 1);
  mx_state_dispose(&s);
}
