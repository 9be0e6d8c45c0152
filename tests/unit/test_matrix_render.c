/*
 * The matrix client's renderer and layout: golden pixel and text frames,
 * scrolling offsets, colour rule selection, format strings, layout errors.
 */
#include "../../matrix-client/layout.h"
#include "../../matrix-client/render.h"
#include "../../matrix-client/state.h"
#include "err.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <string.h>

static void frame(int w, int h, const char *text, uint64_t tick, mx_status_t st, char *out, size_t cap) {
  mx_canvas_t c;
  cr_assert_eq(mx_canvas_init(&c, w, h), 0);
  mx_line_t l = {.color = MX_COLOR_GREEN};
  snprintf(l.text, sizeof l.text, "%s", text);
  mx_render(&c, &l, 1, tick, st);
  cr_assert_neq(mx_canvas_ascii(&c, out, cap), 0);
  mx_canvas_dispose(&c);
}

Test(matrix_render, draws_golden_frame_for_short_text) {
  char out[256];
  frame(12, 8, "HI", 0, MX_STATUS_LIVE, out, sizeof out);
  cr_assert_str_eq(out, "#...#..###..\n"
                        "#...#...#...\n"
                        "#...#...#...\n"
                        "#####...#...\n"
                        "#...#...#...\n"
                        "#...#...#...\n"
                        "#...#..###..\n"
                        "............\n");
}

Test(matrix_render, scrolls_long_text_one_pixel_per_tick) {
  char out[256];
  /* "HI" is 11 px wide; on 8 px it scrolls with a period of 11 + gap. */
  frame(8, 8, "HI", 6, MX_STATUS_LIVE, out, sizeof out);
  cr_assert_str_eq(out, ".###....\n"
                        "..#.....\n"
                        "..#.....\n"
                        "..#.....\n"
                        "..#.....\n"
                        "..#.....\n"
                        ".###....\n"
                        "........\n");
}

Test(matrix_render, wraps_scrolling_text_in_from_the_right) {
  char out[256];
  frame(8, 8, "HI", 20, MX_STATUS_LIVE, out, sizeof out);
  cr_assert_str_eq(out, "...#...#\n"
                        "...#...#\n"
                        "...#...#\n"
                        "...#####\n"
                        "...#...#\n"
                        "...#...#\n"
                        "...#...#\n"
                        "........\n");
}

Test(matrix_render, computes_scroll_offsets) {
  cr_assert_eq(mx_text_width(""), 0);
  cr_assert_eq(mx_text_width("A"), 5);
  cr_assert_eq(mx_text_width("12\xC2\xB0"), 17, "the degree sign is one glyph");
  cr_assert_eq(mx_scroll_offset(64, 64, 123), 0, "text that fits does not scroll");
  cr_assert_eq(mx_scroll_offset(65, 64, 0), 0);
  cr_assert_eq(mx_scroll_offset(65, 64, 76), 76);
  cr_assert_eq(mx_scroll_offset(65, 64, 65 + MX_SCROLL_GAP), 0);
  cr_assert_eq(mx_scroll_offset(65, 64, 65 + MX_SCROLL_GAP + 3), 3);
}

Test(matrix_render, marks_connecting_and_stale_in_top_right_corner) {
  mx_canvas_t c;
  cr_assert_eq(mx_canvas_init(&c, 10, 8), 0);
  mx_line_t l = {.text = "1", .color = MX_COLOR_GREEN};
  mx_render(&c, &l, 1, 0, MX_STATUS_CONNECTING);
  cr_assert_eq(c.px[8], MX_COLOR_YELLOW);
  cr_assert_eq(c.px[9 + 10], MX_COLOR_YELLOW);
  cr_assert_eq(c.px[2], MX_COLOR_GREEN, "'1' top row is lit at x=2");
  mx_render(&c, &l, 1, 0, MX_STATUS_STALE);
  cr_assert_eq(c.px[9], MX_COLOR_RED);
  cr_assert_eq(c.px[2], MX_COLOR_GREY, "stale data is drawn grey");
  mx_render(&c, &l, 1, 0, MX_STATUS_LIVE);
  cr_assert_eq(c.px[9], MX_COLOR_OFF);
  mx_canvas_dispose(&c);
}

Test(matrix_render, draws_one_row_per_line_and_clips_extra_lines) {
  mx_canvas_t c;
  cr_assert_eq(mx_canvas_init(&c, 6, 12), 0);
  mx_line_t l[2] = {{.text = "_", .color = MX_COLOR_RED}, {.text = "-", .color = MX_COLOR_BLUE}};
  mx_render(&c, l, 2, 0, MX_STATUS_LIVE);
  cr_assert_eq(c.px[6 * 6 + 0], MX_COLOR_RED, "'_' is on row 6 of line 0");
  cr_assert_eq(c.px[(8 + 3) * 6 + 0], MX_COLOR_BLUE, "'-' is on row 3 of line 1, at y=11");
  mx_canvas_dispose(&c);
}

/* ---------------------------------------------------------------- layout */

static const char demo_yaml[] = "width: 64\n"
                                "height: 32\n"
                                "rows:\n"
                                "  - topic: demo/clock\n"
                                "    text: \"{time}\"\n"
                                "  - topic: demo/sensors/outside\n"
                                "    text: \"OUT {celsius:.1f}\xC2\xB0 {wind.speed}km/h {wind.dir}\"\n"
                                "    color: green\n"
                                "    rules:\n"
                                "      - if: \"celsius < 0\"\n"
                                "        color: blue\n"
                                "      - if: \"celsius >= 26\"\n"
                                "        color: red\n"
                                "      - if: \"wind.dir == 'N'\"\n"
                                "        color: cyan\n"
                                "  - text: \"{{static}} {$topic}\"\n"
                                "    color: grey\n"
                                "  - topic: demo/host/load\n"
                                "    text: \"LOAD {load1:.2f} {load5:d} {missing}\"\n";

static void feed(mx_state_t *s, const char *type, const char *json) {
  cr_assert_eq(mx_state_event(s, type, json, strlen(json)), 0, "%s %s", type, json);
}

Test(matrix_layout, renders_golden_plain_lines_with_formats) {
  char err[200];
  mx_layout_t *l;
  cr_assert_eq(mx_layout_parse(demo_yaml, sizeof demo_yaml - 1, &l, err, sizeof err), 0, "%s", err);
  cr_assert_eq(l->width, 64);
  cr_assert_eq(l->nrows, 4);
  mx_state_t s;
  mx_state_init(&s);
  mx_state_begin(&s);
  feed(&s, "update", "{\"topic\":\"demo/clock\",\"seq\":1,\"ts\":1,\"data\":{\"time\":\"14:05:01\",\"date\":\"x\"}}");
  feed(&s, "update",
       "{\"topic\":\"demo/sensors/outside\",\"seq\":2,\"ts\":1,\"data\":{\"celsius\":-3.45,\"wind\":{\"speed\":12,\"dir\":\"NW\"}}}");
  feed(&s, "update", "{\"topic\":\"demo/host/load\",\"seq\":3,\"ts\":1,\"data\":{\"load1\":0.5,\"load5\":1.6}}");
  feed(&s, "sync", "{\"seq\":3,\"epoch\":\"00000000000000ab\",\"full\":true}");
  mx_line_t lines[8];
  size_t n = mx_layout_eval(l, &s, lines, 8);
  cr_assert_eq(n, 4);
  cr_assert_str_eq(lines[0].text, "14:05:01");
  cr_assert_eq(lines[0].color, MX_COLOR_WHITE);
  cr_assert_str_eq(lines[1].text, "OUT -3.5\xC2\xB0 12km/h NW");
  cr_assert_eq(lines[1].color, MX_COLOR_BLUE);
  cr_assert_str_eq(lines[2].text, "{static} --");
  cr_assert_eq(lines[2].color, MX_COLOR_GREY);
  cr_assert_str_eq(lines[3].text, "LOAD 0.50 2 --");
  mx_state_dispose(&s);
  mx_layout_free(l);
}

Test(matrix_layout, shows_dashes_for_topics_not_received) {
  char err[200];
  mx_layout_t *l;
  cr_assert_eq(mx_layout_parse(demo_yaml, sizeof demo_yaml - 1, &l, err, sizeof err), 0, "%s", err);
  mx_state_t s;
  mx_state_init(&s);
  mx_line_t lines[8];
  cr_assert_eq(mx_layout_eval(l, &s, lines, 8), 4);
  cr_assert_str_eq(lines[0].text, "--");
  cr_assert_str_eq(lines[1].text, "OUT --\xC2\xB0 --km/h --");
  cr_assert_eq(lines[1].color, MX_COLOR_GREEN, "no rule matches missing data");
  mx_state_dispose(&s);
  mx_layout_free(l);
}

Test(matrix_layout, selects_first_matching_colour_rule) {
  char err[200];
  mx_layout_t *l;
  cr_assert_eq(mx_layout_parse(demo_yaml, sizeof demo_yaml - 1, &l, err, sizeof err), 0, "%s", err);
  const mx_row_t *row = &l->rows[1];
  struct {
    const char *json;
    mx_color_t want;
  } cases[] = {
      {"{\"celsius\":-0.1}", MX_COLOR_BLUE},
      {"{\"celsius\":0}", MX_COLOR_GREEN},
      {"{\"celsius\":25.9}", MX_COLOR_GREEN},
      {"{\"celsius\":26}", MX_COLOR_RED},
      {"{\"celsius\":30,\"wind\":{\"dir\":\"N\"}}", MX_COLOR_RED},
      {"{\"celsius\":10,\"wind\":{\"dir\":\"N\"}}", MX_COLOR_CYAN},
      {"{\"celsius\":\"cold\"}", MX_COLOR_GREEN},
      {"{}", MX_COLOR_GREEN},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cJSON *d = cJSON_Parse(cases[i].json);
    cr_assert_eq(mx_row_color(row, d), cases[i].want, "%s gave %s", cases[i].json,
                 mx_color_name(mx_row_color(row, d)));
    cJSON_Delete(d);
  }
  mx_layout_free(l);
}

Test(matrix_layout, formats_paths_specs_and_whole_data) {
  cJSON *d = cJSON_Parse("{\"a\":{\"b\":[10,20.25,\"x\"]},\"s\":\"hi\",\"t\":true,\"n\":null}");
  char out[128];
  mx_format("{a.b.1:.1f}|{a.b.0:04d}|{a.b.2}|{s:>5s}|{t}|{n}|{a.b.9}", "top", d, out, sizeof out);
  cr_assert_str_eq(out, "20.2|0010|x|hi|true|--|--", "an unusable spec shows the plain value; got %s", out);
  mx_format("{s:5s}!{$topic}!{.}", "top", d, out, sizeof out);
  cr_assert_str_eq(out, "   hi!top!{\"a\":{\"b\":[10,20.25,\"x\"]},\"s\":\"hi\",\"t\":true,\"n\":null}");
  mx_format("abc{unclosed", NULL, NULL, out, sizeof out);
  cr_assert_str_eq(out, "abc{unclosed");
  mx_format("\xC2\xB0\xC2\xB0\xC2\xB0", NULL, NULL, out, 5);
  cr_assert_str_eq(out, "\xC2\xB0\xC2\xB0", "truncation keeps whole characters");
  cJSON_Delete(d);
}

Test(matrix_layout, default_layout_shows_topic_and_compact_data) {
  mx_state_t s;
  mx_state_init(&s);
  mx_state_begin(&s);
  feed(&s, "update", "{\"topic\":\"b\",\"seq\":2,\"ts\":1,\"data\":{\"x\": 1}}");
  feed(&s, "update", "{\"topic\":\"a\",\"seq\":1,\"ts\":1,\"data\":[1, 2]}");
  feed(&s, "sync", "{\"seq\":2,\"epoch\":\"e\",\"full\":true}");
  mx_line_t lines[4];
  cr_assert_eq(mx_default_eval(&s, lines, 4), 2);
  cr_assert_str_eq(lines[0].text, "a [1,2]");
  cr_assert_str_eq(lines[1].text, "b {\"x\":1}");
  mx_state_dispose(&s);
}

Test(matrix_layout, reports_errors_with_line_numbers) {
  struct {
    const char *yaml;
    const char *want;
  } cases[] = {
      {"rows:\n  - topic: a\n    colour: red\n", "line 3: unknown key 'colour'"},
      {"rows:\n  - topic: a\n    color: pink\n", "line 3: unknown color 'pink'"},
      {"width: 0\nrows: []\n", "line 1: width must be"},
      {"rows:\n  - topic: a\n    rules:\n      - if: \"x ~ 1\"\n        color: red\n", "line 4: bad condition"},
      {"rows:\n  - topic: a\n    rules:\n      - color: red\n", "line 4: a rule needs both"},
      {"height: 8\n", "no 'rows' list"},
      {"rows: [\n", "line"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char err[200] = "";
    mx_layout_t *l = NULL;
    cr_assert_eq(mx_layout_parse(cases[i].yaml, strlen(cases[i].yaml), &l, err, sizeof err), SC_ECONFIG, "%s",
                 cases[i].yaml);
    cr_assert_null(l);
    cr_assert(strstr(err, cases[i].want), "got '%s', want '%s'", err, cases[i].want);
  }
}

Test(matrix_layout, loads_the_shipped_demo_layout) {
  char err[300], path[1024];
  mx_layout_t *l;
  /* __FILE__ is tests/unit/test_matrix_render.c with CMake's absolute paths. */
  snprintf(path, sizeof path, "%s", __FILE__);
  *strrchr(path, '/') = '\0';
  strncat(path, "/../../matrix-client/examples/demo-layout.yaml", sizeof path - strlen(path) - 1);
  cr_assert_eq(mx_layout_load(path, &l, err, sizeof err), 0, "%s", err);
  cr_assert_eq(l->nrows, 4);
  cr_assert_str_eq(l->rows[0].topic, "demo/clock");
  mx_layout_free(l);
}
