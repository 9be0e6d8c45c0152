/*
 * sse: SSE framing, event ids and topic patterns (see sse.h). Pure code:
 * the apiserver frames every committed state once into a shared buffer with
 * sc_sse_frame() and hands the same bytes to every stream.
 */
#include "sse.h"

#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t sc_sse_frame_size(size_t id_len, size_t event_len, size_t data_len) {
  /* "id: " + "\n", "event: " + "\n", and at worst one "data: " + "\n" per
   * input byte (a data of only newlines), plus the final "\n". */
  return 4 + id_len + 1 + 7 + event_len + 1 + 7 * (data_len + 1) + data_len + 1;
}

size_t sc_sse_frame_size_line(size_t id_len, size_t event_len, size_t data_len) {
  return 4 + id_len + 1 + 7 + event_len + 1 + 6 + data_len + 2;
}

size_t sc_sse_frame(char *out, const char *id, size_t id_len, const char *event, const char *data, size_t data_len) {
  char *o = out;
  if (id != NULL) {
    memcpy(o, "id: ", 4);
    o += 4;
    memcpy(o, id, id_len);
    o += id_len;
    *o++ = '\n';
  }
  if (event != NULL) {
    size_t el = strlen(event);
    memcpy(o, "event: ", 7);
    o += 7;
    memcpy(o, event, el);
    o += el;
    *o++ = '\n';
  }
  memcpy(o, "data: ", 6);
  o += 6;
  for (size_t i = 0; i < data_len; i++) {
    char c = data[i];
    if (c == '\r') continue;
    if (c == '\n') {
      memcpy(o, "\ndata: ", 7);
      o += 7;
      continue;
    }
    *o++ = c;
  }
  *o++ = '\n';
  *o++ = '\n';
  return (size_t)(o - out);
}

size_t sc_sse_comment(char *out, size_t cap, const char *text) {
  int n = snprintf(out, cap, ": %s\n\n", text);
  return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

size_t sc_sse_retry(char *out, size_t cap, unsigned ms) {
  int n = snprintf(out, cap, "retry: %u\n\n", ms);
  return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

size_t sc_sse_id_format(char *out, const char *epoch, uint64_t seq) {
  int n = snprintf(out, SC_SSE_ID_MAX, "%.*s-%llu", SC_SSE_EPOCH_LEN, epoch, (unsigned long long)seq);
  return n < 0 ? 0 : (size_t)n;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

int sc_sse_id_parse(const char *s, size_t len, char *epoch_out, uint64_t *seq_out) {
  while (len > 0 && is_blank(*s)) s++, len--;
  while (len > 0 && is_blank(s[len - 1])) len--;
  if (len < SC_SSE_EPOCH_LEN + 2 || s[SC_SSE_EPOCH_LEN] != '-') return SC_EINVAL;
  for (size_t i = 0; i < SC_SSE_EPOCH_LEN; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return SC_EINVAL;
  }
  const char *d = s + SC_SSE_EPOCH_LEN + 1;
  size_t dl = len - SC_SSE_EPOCH_LEN - 1;
  if (dl > 20 || (dl > 1 && d[0] == '0')) return SC_EINVAL;
  uint64_t v = 0;
  for (size_t i = 0; i < dl; i++) {
    if (d[i] < '0' || d[i] > '9') return SC_EINVAL;
    uint64_t digit = (uint64_t)(d[i] - '0');
    if (v > (UINT64_MAX - digit) / 10) return SC_EINVAL;
    v = v * 10 + digit;
  }
  memcpy(epoch_out, s, SC_SSE_EPOCH_LEN);
  epoch_out[SC_SSE_EPOCH_LEN] = '\0';
  *seq_out = v;
  return 0;
}

static int is_topic_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-' || c == ':' || c == '/' || c == '@';
}

int sc_sse_pattern_check(const char *p, size_t len, const char **reason) {
  const char *why = NULL;
  if (len == 0)
    why = "empty topic pattern";
  else if (len > SC_SSE_PATTERN_MAX)
    why = "topic pattern longer than 200 bytes";
  else
    for (size_t i = 0; i < len; i++)
      if (!is_topic_char(p[i]) && p[i] != '*') {
        why = "topic pattern may only contain A-Z a-z 0-9 . _ - : / @ and *";
        break;
      }
  if (why == NULL) return 0;
  if (reason != NULL) *reason = why;
  return SC_EINVAL;
}

int sc_sse_filter_add(sc_sse_filter_t *f, const char *p, size_t len, const char **reason) {
  int rc = sc_sse_pattern_check(p, len, reason);
  if (rc != 0) return rc;
  for (unsigned i = 0; i < f->n; i++)
    if (f->pats[i].len == len && memcmp(f->pats[i].text, p, len) == 0) return 0;
  if (f->n >= SC_SSE_MAX_PATTERNS) {
    if (reason != NULL) *reason = "too many topic patterns (at most 32)";
    return SC_EINVAL;
  }
  sc_sse_pattern_t *np = realloc(f->pats, (f->n + 1) * sizeof *np);
  if (np == NULL) return SC_ENOMEM;
  f->pats = np;
  char *t = malloc(len + 1);
  if (t == NULL) return SC_ENOMEM;
  memcpy(t, p, len);
  t[len] = '\0';
  np[f->n].text = t;
  np[f->n].len = (uint16_t)len;
  np[f->n].has_star = memchr(p, '*', len) != NULL;
  f->n++;
  return 0;
}

/* Iterative glob with single-star backtracking: linear in practice, and
 * O(plen * slen) at worst, both bounded by 200 bytes. */
int sc_sse_glob_match(const char *pat, size_t plen, const char *s, size_t slen) {
  size_t pi = 0, si = 0, star = (size_t)-1, mark = 0;
  while (si < slen) {
    if (pi < plen && pat[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (pi < plen && pat[pi] == s[si]) {
      pi++;
      si++;
    } else if (star != (size_t)-1) {
      pi = star + 1;
      si = ++mark;
    } else {
      return 0;
    }
  }
  while (pi < plen && pat[pi] == '*') pi++;
  return pi == plen;
}

int sc_sse_filter_match(const sc_sse_filter_t *f, const char *topic, size_t len) {
  if (f == NULL || f->n == 0) return 1;
  for (unsigned i = 0; i < f->n; i++) {
    const sc_sse_pattern_t *p = &f->pats[i];
    if (!p->has_star) {
      if (p->len == len && memcmp(p->text, topic, len) == 0) return 1;
    } else if (sc_sse_glob_match(p->text, p->len, topic, len)) {
      return 1;
    }
  }
  return 0;
}

void sc_sse_filter_dispose(sc_sse_filter_t *f) {
  if (f == NULL) return;
  for (unsigned i = 0; i < f->n; i++) free(f->pats[i].text);
  free(f->pats);
  f->pats = NULL;
  f->n = 0;
}
