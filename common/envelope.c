#include "envelope.h"

#include "err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int topic_char_ok(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-' || c == ':' || c == '/' || c == '@';
}

int sc_topic_validate(const char *t, size_t len) {
  if (t == NULL || len == 0 || len > SC_TOPIC_MAX) return SC_ETOPIC;
  for (size_t i = 0; i < len; i++)
    if (!topic_char_ok((unsigned char)t[i])) return SC_ETOPIC;
  return 0;
}

int sc_message_check(const char *topic, size_t topic_len, const char *body, size_t body_len, size_t max_bytes,
                     char **compact, size_t *compact_len, int *is_delete, sc_reject_t *why) {
  if (max_bytes == 0) max_bytes = SC_DEFAULT_MAX_MESSAGE_BYTES;
  why->offset = 0;
  if (sc_topic_validate(topic, topic_len) != 0) {
    why->reason = topic_len == 0 ? "empty topic"
                  : topic_len > SC_TOPIC_MAX
                      ? "topic longer than 200 bytes"
                      : "topic has a character outside A-Z a-z 0-9 . _ - : / @";
    return SC_ETOPIC;
  }
  if (body_len > max_bytes) {
    why->reason = "message larger than the configured maximum";
    return SC_ETOOBIG;
  }
  char *out = malloc(body_len > 0 ? body_len : 1);
  if (out == NULL) {
    why->reason = "out of memory";
    return SC_ENOMEM;
  }
  size_t n = 0;
  sc_json_error_t jerr;
  int rc = sc_json_compact(body, body_len, out, &n, &jerr);
  if (rc != 0) {
    free(out);
    why->reason = jerr.reason;
    why->offset = jerr.offset;
    return rc;
  }
  if (n == 4 && memcmp(out, "null", 4) == 0) {
    free(out);
    *compact = NULL;
    *compact_len = 0;
    *is_delete = 1;
    return 0;
  }
  *compact = out;
  *compact_len = n;
  *is_delete = 0;
  return 0;
}

/* Reads a space-terminated token starting at *p; advances past the space. */
static int token(const char **p, const char *end, const char **tok, size_t *len, int last) {
  const char *s = *p;
  const char *e = s;
  while (e < end && *e != ' ') e++;
  if (e == s) return -1;
  if (!last && e == end) return -1;
  *tok = s;
  *len = (size_t)(e - s);
  *p = e < end ? e + 1 : e;
  return 0;
}

static int parse_u64(const char *s, size_t len, uint64_t *out) {
  if (len == 0 || len > 19) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  *out = v;
  return 0;
}

int sc_notify_parse(const char *payload, size_t len, sc_notify_t *out) {
  const char *p = payload, *end = payload + len;
  const char *tok;
  size_t tlen;
  uint64_t v;
  memset(out, 0, sizeof *out);
  if (token(&p, end, &tok, &tlen, 0) < 0 || tlen != 1 || (tok[0] != 'u' && tok[0] != 'd')) return SC_EINVAL;
  out->is_delete = tok[0] == 'd';
  if (token(&p, end, &out->epoch, &out->epoch_len, 0) < 0) return SC_EINVAL;
  if (token(&p, end, &tok, &tlen, 0) < 0 || parse_u64(tok, tlen, &out->seq) < 0 || out->seq == 0) return SC_EINVAL;
  if (token(&p, end, &tok, &tlen, 0) < 0 || parse_u64(tok, tlen, &v) < 0) return SC_EINVAL;
  out->ts = (int64_t)v;
  if (token(&p, end, &out->topic, &out->topic_len, out->is_delete) < 0) return SC_EINVAL;
  if (sc_topic_validate(out->topic, out->topic_len) != 0) return SC_EINVAL;
  if (out->is_delete) return p == end ? 0 : SC_EINVAL;
  if (p >= end) return SC_EINVAL;
  out->data = p;
  out->data_len = (size_t)(end - p);
  return 0;
}

size_t sc_envelope_size(size_t topic_len, size_t data_len) {
  /* {"topic":"","seq":,"ts":,"data":} plus two 20-digit numbers. */
  return 40 + 40 + topic_len + data_len;
}

size_t sc_envelope_write(char *out, const char *topic, size_t topic_len, uint64_t seq, int64_t ts, const char *data,
                         size_t data_len) {
  char *o = out;
  memcpy(o, "{\"topic\":\"", 10);
  o += 10;
  memcpy(o, topic, topic_len);
  o += topic_len;
  o += sprintf(o, "\",\"seq\":%" PRIu64 ",\"ts\":%" PRId64, seq, ts);
  if (data != NULL) {
    memcpy(o, ",\"data\":", 8);
    o += 8;
    memcpy(o, data, data_len);
    o += data_len;
  }
  *o++ = '}';
  return (size_t)(o - out);
}
