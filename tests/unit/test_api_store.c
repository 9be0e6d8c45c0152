/* The apiserver store: apply, seq ordering, tombstones, resume selection. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "store.h"

#define EPOCH "00112233445566ff"

static api_store_t *st;

static void setup(void) {
  cr_assert_eq(api_store_new(&st, 3), 0);
  api_store_set_epoch(st, EPOCH);
}
static void teardown(void) { api_store_free(st); }

static int upd(uint64_t seq, const char *t, const char *d) {
  return api_store_apply(st, seq, 1000 + (int64_t)seq, t, strlen(t), d, d ? strlen(d) : 0);
}

/* Topics in list order, "a,b,c" (tombstones prefixed with '-'). */
static const char *order(void) {
  static char out[512];
  out[0] = '\0';
  for (const api_entry_t *e = api_store_head(st); e != NULL; e = e->next) {
    if (out[0]) strcat(out, ",");
    if (e->deleted) strcat(out, "-");
    strcat(out, e->topic);
  }
  return out;
}

static const char *frame(const api_entry_t *e) {
  static char out[1024];
  memcpy(out, e->frame->bytes, e->frame->len);
  out[e->frame->len] = '\0';
  return out;
}

TestSuite(api_store, .init = setup, .fini = teardown);

Test(api_store, frames_updates_once_with_id_and_envelope) {
  cr_assert_eq(upd(7, "room1", "{\"t\":1}"), 1);
  const api_entry_t *e = api_store_find(st, "room1", 5);
  cr_assert_not_null(e);
  cr_assert_str_eq(frame(e), "id: " EPOCH "-7\nevent: update\ndata: {\"topic\":\"room1\",\"seq\":7,\"ts\":1007,\"data\":{\"t\":1}}\n\n");
  char env[256];
  memcpy(env, e->frame->bytes + e->frame->env_off, e->frame->env_len);
  env[e->frame->env_len] = '\0';
  cr_assert_str_eq(env, "{\"topic\":\"room1\",\"seq\":7,\"ts\":1007,\"data\":{\"t\":1}}");
  cr_assert_eq(api_store_last_seq(st), 7);
}

Test(api_store, frames_deletes_without_data) {
  cr_assert_eq(upd(1, "a", "1"), 1);
  cr_assert_eq(upd(2, "a", NULL), 1);
  const api_entry_t *e = api_store_find(st, "a", 1);
  cr_assert(e->deleted);
  cr_assert_str_eq(frame(e), "id: " EPOCH "-2\nevent: delete\ndata: {\"topic\":\"a\",\"seq\":2,\"ts\":1002}\n\n");
  cr_assert_eq(api_store_live_count(st), 0);
  cr_assert_eq(api_store_tomb_count(st), 1);
}

Test(api_store, moves_an_updated_topic_to_the_tail) {
  upd(1, "a", "1");
  upd(2, "b", "1");
  upd(3, "c", "1");
  cr_assert_str_eq(order(), "a,b,c");
  upd(4, "a", "2");
  cr_assert_str_eq(order(), "b,c,a");
  upd(5, "b", NULL);
  cr_assert_str_eq(order(), "c,a,-b");
  upd(6, "b", "3");
  cr_assert_str_eq(order(), "c,a,b");
  cr_assert_eq(api_store_tomb_count(st), 0);
}

Test(api_store, ignores_stale_and_duplicate_commits) {
  cr_assert_eq(upd(5, "a", "new"), 1);
  cr_assert_eq(upd(5, "a", "dup"), 0);
  cr_assert_eq(upd(3, "a", "old"), 0);
  cr_assert_eq(upd(4, "a", NULL), 0);
  const api_entry_t *e = api_store_find(st, "a", 1);
  cr_assert_eq(e->seq, 5);
  cr_assert_not(e->deleted);
}

Test(api_store, keeps_a_frame_alive_while_a_stream_holds_it) {
  upd(1, "a", "\"first\"");
  api_frame_t *f = api_frame_ref(api_store_find(st, "a", 1)->frame);
  upd(2, "a", "\"second\"");
  cr_assert(strstr(f->bytes, "first") != NULL);
  api_frame_unref(f);
}

Test(api_store, trims_oldest_tombstones_and_raises_the_floor) {
  upd(1, "keep", "1");
  for (int i = 0; i < 5; i++) {
    char t[8];
    snprintf(t, sizeof t, "t%d", i);
    upd((uint64_t)(2 + 2 * i), t, "1");
    upd((uint64_t)(3 + 2 * i), t, NULL);
  }
  /* Deletes at 3,5,7,9,11; cap 3 keeps 7,9,11. */
  cr_assert_eq(api_store_tomb_count(st), 3);
  cr_assert_eq(api_store_floor(st), 5);
  cr_assert_null(api_store_find(st, "t0", 2));
  cr_assert_not_null(api_store_find(st, "t2", 2));
  cr_assert_str_eq(order(), "keep,-t2,-t3,-t4");
}

Test(api_store, places_ids_between_floor_and_last_seq_of_its_epoch) {
  upd(1, "a", "1");
  upd(10, "b", "1");
  api_store_raise_floor(st, 4);
  cr_assert(api_store_placeable(st, EPOCH, 4));
  cr_assert(api_store_placeable(st, EPOCH, 10));
  cr_assert_not(api_store_placeable(st, EPOCH, 3), "below the floor a delete may be lost");
  cr_assert_not(api_store_placeable(st, EPOCH, 11), "ahead of us");
  cr_assert_not(api_store_placeable(st, "ffffffffffffffff", 5), "another epoch");
}

Test(api_store, selects_everything_after_a_cursor_in_seq_order) {
  upd(1, "a", "1");
  upd(2, "b", "1");
  upd(3, "c", "1");
  upd(4, "a", "2");
  upd(5, "b", NULL);
  const api_entry_t *e = api_store_first_after(st, 2, NULL);
  cr_assert_str_eq(e->topic, "c");
  cr_assert_str_eq(e->next->topic, "a");
  cr_assert_str_eq(e->next->next->topic, "b");
  cr_assert(e->next->next->deleted, "resume includes deletes");
  cr_assert_null(api_store_first_after(st, 5, NULL));
  cr_assert_str_eq(api_store_first_after(st, 0, NULL)->topic, "c");
}

Test(api_store, a_hint_continues_where_a_stream_stopped_and_survives_moves) {
  upd(1, "a", "1");
  upd(2, "b", "1");
  upd(3, "c", "1");
  api_store_hint_t h = {0};
  const api_entry_t *b = api_store_find(st, "b", 1);
  api_store_hint_set(st, &h, b);
  cr_assert_str_eq(api_store_first_after(st, 2, &h)->topic, "c");
  upd(4, "b", "2"); /* the hinted entry moves: the hint must not be trusted */
  const api_entry_t *e = api_store_first_after(st, 2, &h);
  cr_assert_str_eq(e->topic, "c");
  cr_assert_str_eq(e->next->topic, "b");
}

Test(api_store, loading_sorts_out_of_order_input_once) {
  api_store_t *s2;
  cr_assert_eq(api_store_new(&s2, 2), 0);
  api_store_set_epoch(s2, EPOCH);
  api_store_begin_load(s2);
  cr_assert_eq(api_store_apply(s2, 9, 0, "x", 1, "1", 1), 1);
  cr_assert_eq(api_store_apply(s2, 3, 0, "d1", 2, NULL, 0), 1);
  cr_assert_eq(api_store_apply(s2, 5, 0, "y", 1, "1", 1), 1);
  cr_assert_eq(api_store_apply(s2, 4, 0, "d2", 2, NULL, 0), 1);
  cr_assert_eq(api_store_apply(s2, 6, 0, "d3", 2, NULL, 0), 1);
  cr_assert_eq(api_store_apply(s2, 8, 0, "d3", 2, "2", 1), 1); /* re-created later */
  cr_assert_eq(api_store_end_load(s2), 0);
  const api_entry_t *e = api_store_head(s2);
  uint64_t want[] = {3, 4, 5, 8, 9};
  for (size_t i = 0; i < 5; i++, e = e->next) cr_assert_eq(e->seq, want[i]);
  cr_assert_null(e);
  cr_assert_eq(api_store_tomb_count(s2), 2);
  cr_assert_eq(api_store_floor(s2), 0);
  cr_assert_eq(api_store_apply(s2, 10, 0, "x", 1, NULL, 0), 1);
  cr_assert_eq(api_store_tomb_count(s2), 2);
  cr_assert_eq(api_store_floor(s2), 3);
  api_store_free(s2);
}

/* Seqs in the history after cursor, "3,4,5". */
static const char *history_after(uint64_t cursor) {
  static char out[512];
  out[0] = '\0';
  api_item_t it;
  for (size_t i = api_store_history_find(st, cursor); api_store_history_at(st, i, &it); i++) {
    char b[64];
    snprintf(b, sizeof b, "%s%llu:%.*s", out[0] ? "," : "", (unsigned long long)it.seq, (int)it.topic_len, it.topic);
    strcat(out, b);
  }
  return out;
}

Test(api_store, history_keeps_every_version_after_it_was_turned_on) {
  cr_assert_eq(upd(1, "a", "1"), 1);
  api_store_keep_history(st, 4, 1 << 20);
  cr_assert(api_store_history_covers(st, 1));
  cr_assert_not(api_store_history_covers(st, 0), "commit 1 came before the history");
  cr_assert_eq(upd(2, "a", "2"), 1);
  cr_assert_eq(upd(3, "b", "3"), 1);
  cr_assert_eq(upd(4, "a", "4"), 1);
  cr_assert_eq(upd(5, "b", NULL), 1);
  cr_assert_str_eq(history_after(1), "2:a,3:b,4:a,5:b");
  cr_assert_str_eq(history_after(3), "4:a,5:b");
  cr_assert_str_eq(history_after(5), "");
  api_item_t it;
  cr_assert(api_store_history_at(st, 3, &it));
  cr_assert(it.deleted);
  /* The store itself still holds only the latest state per topic. */
  cr_assert_str_eq(order(), "a,-b");
}

Test(api_store, history_forgets_the_oldest_and_then_no_longer_covers_them) {
  api_store_keep_history(st, 3, 1 << 20);
  for (uint64_t s = 1; s <= 5; s++) cr_assert_eq(upd(s, "a", "1"), 1);
  cr_assert_str_eq(history_after(0), "3:a,4:a,5:a");
  cr_assert_not(api_store_history_covers(st, 1), "commit 2 was dropped");
  cr_assert(api_store_history_covers(st, 2));
}

Test(api_store, history_is_bounded_by_bytes_too) {
  const api_entry_t *e;
  cr_assert_eq(upd(1, "a", "1"), 1);
  e = api_store_find(st, "a", 1);
  size_t one = e->frame->len; /* every frame below has the same length */
  api_store_keep_history(st, 100, 2 * one + one / 2);
  for (uint64_t s = 2; s <= 6; s++) cr_assert_eq(upd(s, "a", "1"), 1);
  cr_assert_str_eq(history_after(0), "5:a,6:a");
}

Test(api_store, a_clone_shares_frames_and_order) {
  cr_assert_eq(upd(1, "a", "1"), 1);
  cr_assert_eq(upd(2, "b", "2"), 1);
  cr_assert_eq(upd(3, "a", NULL), 1);
  api_store_t *c;
  cr_assert_eq(api_store_clone(st, &c), 0);
  const api_entry_t *x = api_store_head(c);
  cr_assert_str_eq(x->topic, "b");
  cr_assert_eq(x->frame, api_store_find(st, "b", 1)->frame, "frames are shared, not copied");
  cr_assert(x->next->deleted);
  cr_assert_eq(api_store_tomb_count(c), 1);
  cr_assert_str_eq(api_store_epoch(c), EPOCH);
  cr_assert_eq(api_store_last_seq(c), 3);
  /* Replaying the master's frame keeps the replica equal. */
  cr_assert_eq(upd(4, "c", "4"), 1);
  const api_entry_t *m = api_store_find(st, "c", 1);
  cr_assert_eq(api_store_apply_frame(c, m->seq, m->ts, "c", 1, m->frame, 0), 1);
  cr_assert_eq(api_store_apply_frame(c, m->seq, m->ts, "c", 1, m->frame, 0), 0, "a replayed commit is stale");
  cr_assert_eq(api_store_find(c, "c", 1)->frame, m->frame);
  api_store_free(c);
}
