/*
 * The matrix client's SSE parser against the WHATWG event-stream rules,
 * fed byte by byte and in arbitrary splits; plus the HTTP response decoder,
 * the backoff and URL helpers.
 */
#include "err.h"
#include "../../matrix-client/sse_client.h" /* not tests/support/sse_client.h */

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define MAXEV 16

typedef struct rec {
  int n;
  char type[MAXEV][64];
  char data[MAXEV][256];
  size_t data_len[MAXEV];
  char id[MAXEV][64];
  int retries;
  uint64_t retry_ms;
} rec_t;

static int on_event(void *arg, const mx_sse_event_t *ev) {
  rec_t *r = arg;
  cr_assert_lt(r->n, MAXEV);
  snprintf(r->type[r->n], sizeof r->type[0], "%s", ev->type);
  cr_assert_lt(ev->data_len, sizeof r->data[0]);
  memcpy(r->data[r->n], ev->data, ev->data_len);
  r->data_len[r->n] = ev->data_len;
  snprintf(r->id[r->n], sizeof r->id[0], "%s", ev->last_id);
  r->n++;
  return 0;
}

static void on_retry(void *arg, uint64_t ms) {
  rec_t *r = arg;
  r->retries++;
  r->retry_ms = ms;
}

static void init(mx_sse_parser_t *p, rec_t *r, size_t max) {
  memset(r, 0, sizeof *r);
  mx_sse_parser_opts_t o = {.max_line = max, .max_event = max, .on_event = on_event, .on_retry = on_retry, .arg = r};
  cr_assert_eq(mx_sse_parser_init(p, &o), 0);
}

/* Parse s (len bytes) in one feed, then again one byte per feed, and check
 * both give the same events; leaves the one-byte run's result in r. */
static void parse_both(const char *s, size_t len, rec_t *r) {
  mx_sse_parser_t p;
  rec_t whole;
  init(&p, &whole, 0);
  cr_assert_eq(mx_sse_parser_feed(&p, s, len), 0);
  mx_sse_parser_dispose(&p);
  init(&p, r, 0);
  for (size_t i = 0; i < len; i++) cr_assert_eq(mx_sse_parser_feed(&p, s + i, 1), 0);
  mx_sse_parser_dispose(&p);
  cr_assert_eq(whole.n, r->n, "whole feed gave %d events, byte feed %d", whole.n, r->n);
  for (int i = 0; i < r->n; i++) {
    cr_assert_str_eq(whole.type[i], r->type[i]);
    cr_assert_eq(whole.data_len[i], r->data_len[i]);
    cr_assert_eq(memcmp(whole.data[i], r->data[i], r->data_len[i]), 0);
    cr_assert_str_eq(whole.id[i], r->id[i]);
  }
}
#define PARSE(lit, r) parse_both(lit, sizeof(lit) - 1, r)

Test(matrix_sse_parser, dispatches_lf_terminated_event_with_type_and_id) {
  rec_t r;
  PARSE("id: 1\nevent: update\ndata: hello\n\n", &r);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.type[0], "update");
  cr_assert_str_eq(r.data[0], "hello");
  cr_assert_str_eq(r.id[0], "1");
}

Test(matrix_sse_parser, accepts_cr_only_line_endings) {
  rec_t r;
  PARSE("data: a\rdata: b\r\revent: x\rdata: c\r\r", &r);
  cr_assert_eq(r.n, 2);
  cr_assert_str_eq(r.data[0], "a\nb");
  cr_assert_str_eq(r.type[0], "message");
  cr_assert_str_eq(r.type[1], "x");
  cr_assert_str_eq(r.data[1], "c");
}

Test(matrix_sse_parser, accepts_crlf_line_endings_without_empty_lines_between) {
  rec_t r;
  PARSE("data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n", &r);
  cr_assert_eq(r.n, 2);
  cr_assert_str_eq(r.data[0], "a\nb");
  cr_assert_str_eq(r.data[1], "c");
}

Test(matrix_sse_parser, mixes_line_endings_in_one_stream) {
  rec_t r;
  PARSE("data: 1\r\ndata: 2\rdata: 3\n\r\n", &r);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.data[0], "1\n2\n3");
}

Test(matrix_sse_parser, joins_crlf_split_across_two_feeds) {
  mx_sse_parser_t p;
  rec_t r;
  init(&p, &r, 0);
  cr_assert_eq(mx_sse_parser_feed(&p, "data: x\r", 8), 0);
  cr_assert_eq(mx_sse_parser_feed(&p, "\n", 1), 0);
  cr_assert_eq(r.n, 0, "the LF after a CR must not count as an empty line");
  cr_assert_eq(mx_sse_parser_feed(&p, "\r", 1), 0);
  cr_assert_eq(r.n, 1);
  cr_assert_eq(mx_sse_parser_feed(&p, "\ndata: y\n\n", 10), 0);
  cr_assert_eq(r.n, 2);
  cr_assert_str_eq(r.data[0], "x");
  cr_assert_str_eq(r.data[1], "y");
  mx_sse_parser_dispose(&p);
}

Test(matrix_sse_parser, treats_field_without_colon_as_empty_value) {
  rec_t r;
  /* "data" alone appends an empty line; two of them make "\n". */
  PARSE("data\ndata\n\ndata\n\n", &r);
  cr_assert_eq(r.n, 2);
  cr_assert_eq(r.data_len[0], 1);
  cr_assert_str_eq(r.data[0], "\n");
  cr_assert_eq(r.data_len[1], 0, "one empty data line is an event with empty data");
}

Test(matrix_sse_parser, field_without_colon_resets_event_type) {
  rec_t r;
  PARSE("event: x\nevent\ndata: d\n\n", &r);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.type[0], "message");
}

Test(matrix_sse_parser, ignores_one_leading_bom_only) {
  rec_t r;
  PARSE("\xEF\xBB\xBF" "data: a\n\n\xEF\xBB\xBF" "data: b\n\n", &r);
  cr_assert_eq(r.n, 1, "a BOM in the middle makes the line's field name unknown");
  cr_assert_str_eq(r.data[0], "a");
}

Test(matrix_sse_parser, second_bom_at_start_is_part_of_field_name) {
  rec_t r;
  PARSE("\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\ndata: b\n\n", &r);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.data[0], "b");
}

Test(matrix_sse_parser, partial_bom_prefix_is_kept_as_data) {
  rec_t r;
  PARSE("\xEF\xBB" "x\ndata: \xEF\xBB\n\n", &r);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.data[0], "\xEF\xBB");
}

Test(matrix_sse_parser, strips_exactly_one_space_after_colon) {
  rec_t r;
  PARSE("data:no-space\n\ndata:  two\n\n", &r);
  cr_assert_eq(r.n, 2);
  cr_assert_str_eq(r.data[0], "no-space");
  cr_assert_str_eq(r.data[1], " two");
}

Test(matrix_sse_parser, joins_multiline_data_with_lf_and_drops_last_lf) {
  rec_t r;
  PARSE("data: {\"a\":\ndata: 1}\ndata:\n\n", &r);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.data[0], "{\"a\":\n1}\n");
}

Test(matrix_sse_parser, ignores_id_containing_nul) {
  rec_t r;
  static const char s[] = "id: good\ndata: 1\n\nid: b\0d\ndata: 2\n\n";
  parse_both(s, sizeof s - 1, &r);
  cr_assert_eq(r.n, 2);
  cr_assert_str_eq(r.id[0], "good");
  cr_assert_str_eq(r.id[1], "good");
}

Test(matrix_sse_parser, keeps_nul_bytes_in_data) {
  rec_t r;
  static const char s[] = "data: a\0b\n\n";
  parse_both(s, sizeof s - 1, &r);
  cr_assert_eq(r.n, 1);
  cr_assert_eq(r.data_len[0], 3);
  cr_assert_eq(memcmp(r.data[0], "a\0b", 3), 0);
}

Test(matrix_sse_parser, empty_id_resets_last_event_id) {
  rec_t r;
  PARSE("id: 7\ndata: a\n\nid\ndata: b\n\n", &r);
  cr_assert_eq(r.n, 2);
  cr_assert_str_eq(r.id[0], "7");
  cr_assert_str_eq(r.id[1], "");
}

Test(matrix_sse_parser, id_without_data_still_sets_last_event_id) {
  mx_sse_parser_t p;
  rec_t r;
  init(&p, &r, 0);
  cr_assert_eq(mx_sse_parser_feed(&p, "id: 42\n\n", 8), 0);
  cr_assert_eq(r.n, 0);
  cr_assert_str_eq(mx_sse_parser_last_id(&p), "42");
  mx_sse_parser_dispose(&p);
}

Test(matrix_sse_parser, accepts_retry_only_when_all_digits) {
  rec_t r;
  PARSE("retry: 1500\n\nretry: 15x\n\nretry: -1\n\nretry:\n\nretry: 1.5\n\nretry: 2000 \n\n", &r);
  cr_assert_eq(r.retries, 1);
  cr_assert_eq(r.retry_ms, 1500);
  cr_assert_eq(r.n, 0);
}

Test(matrix_sse_parser, comment_only_input_dispatches_nothing) {
  rec_t r;
  PARSE(": hb\n\n:\n\n: another\r\n\r\n", &r);
  cr_assert_eq(r.n, 0);
}

Test(matrix_sse_parser, event_with_empty_data_buffer_is_not_dispatched) {
  rec_t r;
  PARSE("event: update\n\nid: 3\nevent: x\n\n\n\ndata: real\n\n", &r);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.type[0], "message", "the type of an undispatched event must not leak");
  cr_assert_str_eq(r.data[0], "real");
  cr_assert_str_eq(r.id[0], "3");
}

Test(matrix_sse_parser, ignores_unknown_fields) {
  rec_t r;
  PARSE("foo: bar\nData: x\ndata: y\n\n", &r);
  cr_assert_eq(r.n, 1);
  cr_assert_str_eq(r.data[0], "y");
}

Test(matrix_sse_parser, does_not_dispatch_incomplete_event_at_stream_end) {
  mx_sse_parser_t p;
  rec_t r;
  init(&p, &r, 0);
  cr_assert_eq(mx_sse_parser_feed(&p, "id: 5\ndata: a\n\nid: 6\ndata: half\n", 32), 0);
  cr_assert_eq(r.n, 1);
  mx_sse_parser_restart(&p);
  cr_assert_str_eq(mx_sse_parser_last_id(&p), "5", "last id survives a new stream");
  cr_assert_eq(mx_sse_parser_feed(&p, "data: b\n\n", 9), 0);
  cr_assert_eq(r.n, 2);
  cr_assert_str_eq(r.data[1], "b");
  cr_assert_str_eq(r.id[1], "5");
  mx_sse_parser_dispose(&p);
}

Test(matrix_sse_parser, refuses_line_longer_than_cap) {
  mx_sse_parser_t p;
  rec_t r;
  init(&p, &r, 16);
  cr_assert_eq(mx_sse_parser_feed(&p, "data: 0123456789\n\n", 18), 0, "exactly 16 bytes fit");
  cr_assert_eq(mx_sse_parser_feed(&p, "data: 0123456789A", 17), SC_ETOOBIG);
  mx_sse_parser_dispose(&p);
}

Test(matrix_sse_parser, refuses_event_larger_than_cap) {
  mx_sse_parser_t p;
  rec_t r;
  init(&p, &r, 16);
  /* Each line adds 7 bytes plus the joining '\n': two fit in 16, a third does not. */
  cr_assert_eq(mx_sse_parser_feed(&p, "data: 0123456\ndata: 0123456\n", 28), 0);
  cr_assert_eq(mx_sse_parser_feed(&p, "data: 0123456\n", 14), SC_ETOOBIG);
  mx_sse_parser_dispose(&p);
}

static int stop_cb(void *arg, const mx_sse_event_t *ev) {
  (void)ev;
  (*(int *)arg)++;
  return 7;
}

Test(matrix_sse_parser, stops_feed_when_callback_returns_nonzero) {
  mx_sse_parser_t p;
  int calls = 0;
  mx_sse_parser_opts_t o = {.on_event = stop_cb, .arg = &calls};
  cr_assert_eq(mx_sse_parser_init(&p, &o), 0);
  cr_assert_eq(mx_sse_parser_feed(&p, "data: a\n\ndata: b\n\n", 18), 7);
  cr_assert_eq(calls, 1);
  mx_sse_parser_dispose(&p);
}

/* ---------------------------------------------------------------- HTTP */

typedef struct body {
  int status;
  char ctype[64];
  char buf[256];
  size_t len;
  int heads;
} body_t;

static int on_head(void *arg, int status, const char *ct) {
  body_t *b = arg;
  b->status = status;
  snprintf(b->ctype, sizeof b->ctype, "%s", ct);
  b->heads++;
  return 0;
}

static int on_body(void *arg, const char *buf, size_t len) {
  body_t *b = arg;
  cr_assert_lt(b->len + len, sizeof b->buf);
  memcpy(b->buf + b->len, buf, len);
  b->len += len;
  return 0;
}

static void http_both(const char *s, body_t *out, int want_rc) {
  mx_http_resp_t r;
  body_t whole = {0};
  mx_http_resp_reset(&r, on_head, on_body, &whole);
  cr_assert_eq(mx_http_resp_feed(&r, s, strlen(s)), want_rc);
  memset(out, 0, sizeof *out);
  mx_http_resp_reset(&r, on_head, on_body, out);
  int rc = 0;
  for (size_t i = 0; i < strlen(s) && rc == 0; i++) rc = mx_http_resp_feed(&r, s + i, 1);
  cr_assert_eq(rc, want_rc);
  cr_assert_eq(whole.len, out->len);
  cr_assert_eq(memcmp(whole.buf, out->buf, out->len), 0);
}

Test(matrix_http, decodes_chunked_body_with_extensions_and_trailers) {
  body_t b;
  http_both("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\nA;ext=1\r\n, world!!!\r\n0\r\nX-T: 1\r\n\r\nignored",
            &b, 0);
  cr_assert_eq(b.status, 200);
  cr_assert_str_eq(b.ctype, "text/event-stream");
  cr_assert_eq(b.len, 15);
  cr_assert_eq(memcmp(b.buf, "hello, world!!!", 15), 0);
}

Test(matrix_http, passes_identity_body_until_content_length) {
  body_t b;
  http_both("HTTP/1.0 503 Busy\r\ncontent-length: 3\r\n\r\nabcdef", &b, 0);
  cr_assert_eq(b.status, 503);
  cr_assert_eq(b.len, 3);
}

Test(matrix_http, skips_interim_100_continue_head) {
  body_t b;
  http_both("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nxyz", &b, 0);
  cr_assert_eq(b.status, 200);
  cr_assert_eq(b.heads, 1);
  cr_assert_eq(b.len, 3);
}

Test(matrix_http, rejects_garbage_status_line_and_bad_chunk_size) {
  body_t b;
  http_both("SSH-2.0-OpenSSH\r\n\r\n", &b, SC_EIO);
  http_both("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &b, SC_EIO);
}

/* ---------------------------------------------------------------- helpers */

Test(matrix_sse_client, backoff_doubles_caps_and_jitters_into_upper_half) {
  cr_assert_eq(mx_sse_backoff_ms(1000, 30000, 0, 0.0), 500);
  cr_assert_eq(mx_sse_backoff_ms(1000, 30000, 0, 0.9999), 1000);
  cr_assert_eq(mx_sse_backoff_ms(1000, 30000, 3, 0.0), 4000);
  cr_assert_geq(mx_sse_backoff_ms(1000, 30000, 10, 0.9999), 29990);
  cr_assert_leq(mx_sse_backoff_ms(1000, 30000, 10, 0.9999), 30000);
  cr_assert_eq(mx_sse_backoff_ms(1000, 30000, 100, 0.0), 15000);
  for (unsigned a = 0; a < 20; a++)
    for (double r = 0; r < 1; r += 0.1) {
      uint64_t d = mx_sse_backoff_ms(250, 10000, a, r);
      cr_assert(d >= 125 && d <= 10000);
    }
}

Test(matrix_sse_client, parses_http_urls_and_refuses_others) {
  char host[64], path[64];
  int port;
  cr_assert_eq(mx_url_parse("http://127.0.0.1:8080", host, sizeof host, &port, path, sizeof path), 0);
  cr_assert_str_eq(host, "127.0.0.1");
  cr_assert_eq(port, 8080);
  cr_assert_str_eq(path, "/");
  cr_assert_eq(mx_url_parse("http://display.local/api/", host, sizeof host, &port, path, sizeof path), 0);
  cr_assert_str_eq(host, "display.local");
  cr_assert_eq(port, 80);
  cr_assert_str_eq(path, "/api/");
  cr_assert_eq(mx_url_parse("https://x:1", host, sizeof host, &port, path, sizeof path), SC_EINVAL);
  cr_assert_eq(mx_url_parse("http://u@x:1", host, sizeof host, &port, path, sizeof path), SC_EINVAL);
  cr_assert_eq(mx_url_parse("http://x:99999", host, sizeof host, &port, path, sizeof path), SC_EINVAL);
  cr_assert_eq(mx_url_parse("http://x:", host, sizeof host, &port, path, sizeof path), SC_EINVAL);
  cr_assert_eq(mx_url_parse("http://:80", host, sizeof host, &port, path, sizeof path), SC_EINVAL);
}
