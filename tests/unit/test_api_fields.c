/*
 * fields: the fields= spec parser, the byte-exact projection over compact
 * JSON and the per-stream "unchanged projection" map.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fields.h"

static api_fields_t spec(const char *s) {
  api_fields_t f = {0};
  const char *reason = NULL;
  cr_assert_eq(api_fields_add(&f, s, strlen(s), &reason), 0, "spec %s: %s", s, reason ? reason : "");
  api_fields_finish(&f);
  return f;
}

/* Project data with spec s; returns a static NUL-terminated copy. */
static const char *project(const char *s, const char *data) {
  static char out[4096];
  api_fields_t f = spec(s);
  size_t len = strlen(data);
  cr_assert_lt(api_fields_project_size(len), sizeof out);
  size_t n = api_fields_project(&f, data, len, out);
  cr_assert_leq(n, api_fields_project_size(len));
  out[n] = '\0';
  return out;
}

Test(api_fields, keeps_only_the_selected_top_level_fields) {
  cr_assert_str_eq(project("temp", "{\"temp\":21,\"hum\":40}"), "{\"temp\":21}");
  cr_assert_str_eq(project("hum,temp", "{\"temp\":21,\"x\":[1,{\"a\":2}],\"hum\":40}"), "{\"temp\":21,\"hum\":40}");
}

Test(api_fields, nested_paths_keep_their_nesting) {
  const char *d = "{\"temp\":21,\"wind\":{\"speed\":3,\"dir\":\"N\",\"gust\":{\"max\":9,\"min\":1}}}";
  cr_assert_str_eq(project("temp,wind.speed", d), "{\"temp\":21,\"wind\":{\"speed\":3}}");
  cr_assert_str_eq(project("wind.gust.max,wind.dir", d), "{\"wind\":{\"dir\":\"N\",\"gust\":{\"max\":9}}}");
  /* A path naming an object selects it whole, also with a deeper path under it. */
  cr_assert_str_eq(project("wind.gust,wind.gust.max", d), "{\"wind\":{\"gust\":{\"max\":9,\"min\":1}}}");
}

Test(api_fields, missing_fields_are_omitted) {
  cr_assert_str_eq(project("nope", "{\"temp\":21}"), "{}");
  cr_assert_str_eq(project("temp,nope.deep", "{\"temp\":21,\"nope\":5}"), "{\"temp\":21}");
  cr_assert_str_eq(project("wind.speed", "{\"wind\":{\"dir\":\"N\"}}"), "{}");
  cr_assert_str_eq(project("a.b", "{\"a\":[{\"b\":1}]}"), "{}");
}

Test(api_fields, data_that_is_not_an_object_projects_to_empty) {
  cr_assert_str_eq(project("temp", "[1,2]"), "{}");
  cr_assert_str_eq(project("temp", "21.5"), "{}");
  cr_assert_str_eq(project("temp", "\"temp\""), "{}");
  cr_assert_str_eq(project("temp", "null"), "{}");
  cr_assert_str_eq(project("temp", "{}"), "{}");
}

Test(api_fields, values_keep_their_exact_bytes) {
  cr_assert_str_eq(project("a,b,c", "{\"a\":1.10,\"b\":9007199254740993,\"c\":-0.0e+10}"),
                   "{\"a\":1.10,\"b\":9007199254740993,\"c\":-0.0e+10}");
  cr_assert_str_eq(project("s", "{\"s\":\"a,\\\"}{b\\u00e9\",\"t\":1}"), "{\"s\":\"a,\\\"}{b\\u00e9\"}");
  cr_assert_str_eq(project("o", "{\"x\":\"}\",\"o\":{\"k\":[1,\"]\",{}]},\"y\":2}"), "{\"o\":{\"k\":[1,\"]\",{}]}}");
}

Test(api_fields, keys_that_only_look_alike_do_not_match) {
  cr_assert_str_eq(project("temp", "{\"temperature\":1,\"tem\":2,\"x\":{\"temp\":3}}"), "{}");
  /* A duplicate key: the first one wins. */
  cr_assert_str_eq(project("a", "{\"a\":1,\"a\":2}"), "{\"a\":1}");
}

Test(api_fields, parses_repeated_and_duplicate_paths_into_a_canonical_spec) {
  api_fields_t f = {0};
  const char *reason = NULL;
  cr_assert_eq(api_fields_add(&f, "wind.speed,temp", 15, &reason), 0);
  cr_assert_eq(api_fields_add(&f, "temp", 4, &reason), 0);
  cr_assert_eq(api_fields_add(&f, "a", 1, &reason), 0);
  api_fields_finish(&f);
  cr_assert_eq(f.n, 3);
  cr_assert_str_eq(f.canon, "a,temp,wind.speed");
  api_fields_t g = spec("temp,a,wind.speed");
  cr_assert_str_eq(g.canon, f.canon);
}

static const char *bad(const char *s) {
  api_fields_t f = {0};
  const char *reason = NULL;
  cr_assert_eq(api_fields_add(&f, s, strlen(s), &reason), SC_EINVAL, "accepted %s", s);
  cr_assert_not_null(reason);
  return reason;
}

Test(api_fields, rejects_bad_paths_with_a_reason) {
  cr_assert(strstr(bad(""), "empty") != NULL);
  cr_assert(strstr(bad("a,,b"), "empty") != NULL);
  cr_assert(strstr(bad("a."), "segment") != NULL);
  cr_assert(strstr(bad(".a"), "segment") != NULL);
  cr_assert(strstr(bad("a..b"), "segment") != NULL);
  bad("a b");
  bad("a\"b");
  bad("a/b");
  char longp[80];
  memset(longp, 'x', 65);
  longp[65] = '\0';
  cr_assert(strstr(bad(longp), "64") != NULL);
  memset(longp, 'x', 64);
  longp[64] = '\0';
  spec(longp);
  cr_assert(strstr(bad("a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"), "16") != NULL);
  spec("a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p");
}

Test(api_fields, projects_the_data_of_an_envelope) {
  api_fields_t f = spec("c");
  const char *env = "{\"topic\":\"t/x\",\"seq\":5,\"ts\":17,\"data\":{\"c\":1.50,\"d\":2}}";
  char out[256];
  size_t off, dl;
  size_t n = api_fields_project_envelope(&f, env, strlen(env), out, &off, &dl);
  out[n] = '\0';
  cr_assert_str_eq(out, "{\"topic\":\"t/x\",\"seq\":5,\"ts\":17,\"data\":{\"c\":1.50}}");
  cr_assert_eq(dl, 10);
  cr_assert_eq(memcmp(out + off, "{\"c\":1.50}", dl), 0);
  const char *del = "{\"topic\":\"t/x\",\"seq\":6,\"ts\":18}";
  n = api_fields_project_envelope(&f, del, strlen(del), out, &off, &dl);
  out[n] = '\0';
  cr_assert_str_eq(out, del);
  cr_assert_eq(dl, 0);
}

Test(api_fields, detects_unchanged_projections_per_topic) {
  api_fields_seen_t s = {0};
  uint64_t h1 = api_fields_hash("{\"a\":1}", 7), h2 = api_fields_hash("{\"a\":2}", 7);
  cr_assert_neq(h1, h2);
  cr_assert_eq(api_fields_seen_update(&s, "t1", 2, h1), 1);
  cr_assert_eq(api_fields_seen_update(&s, "t1", 2, h1), 0);
  cr_assert_eq(api_fields_seen_update(&s, "t2", 2, h1), 1);
  cr_assert_eq(api_fields_seen_update(&s, "t1", 2, h2), 1);
  cr_assert_eq(api_fields_seen_update(&s, "t1", 2, h1), 1);
  api_fields_seen_forget(&s, "t1", 2);
  cr_assert_eq(api_fields_seen_update(&s, "t1", 2, h1), 1);
  /* Many topics (the table grows). */
  char t[32];
  for (int i = 0; i < 1000; i++) {
    int n = snprintf(t, sizeof t, "topic/%d", i);
    cr_assert_eq(api_fields_seen_update(&s, t, (size_t)n, h1), 1);
  }
  for (int i = 0; i < 1000; i++) {
    int n = snprintf(t, sizeof t, "topic/%d", i);
    cr_assert_eq(api_fields_seen_update(&s, t, (size_t)n, h1), 0);
  }
  api_fields_seen_dispose(&s);
}
