#include "json.h"

#include "err.h"

#include <stdint.h>
#include <stdio.h>

typedef struct parser {
  const unsigned char *p, *start, *end;
  char *o;
  int depth;
  int code;
  const char *reason;
} parser_t;

static int fail(parser_t *j, int code, const char *reason) {
  if (j->code == 0) {
    j->code = code;
    j->reason = reason;
  }
  return -1;
}

static void skip_ws(parser_t *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Reads \uXXXX at j->p (pointing at 'u'); copies it; returns the code unit or -1. */
static long read_u_escape(parser_t *j) {
  if (j->end - j->p < 5) return fail(j, SC_EJSON, "truncated \\u escape");
  long v = 0;
  for (int i = 1; i <= 4; i++) {
    int h = hexval(j->p[i]);
    if (h < 0) return fail(j, SC_EJSON, "bad hex digit in \\u escape");
    v = v * 16 + h;
  }
  for (int i = 0; i < 5; i++) *j->o++ = (char)*j->p++;
  return v;
}

/* One UTF-8 sequence starting at j->p (first byte >= 0x80), strictly: no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_seq(parser_t *j) {
  const unsigned char *s = j->p;
  size_t avail = (size_t)(j->end - s);
  unsigned char c = s[0];
  int n;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
  else return fail(j, SC_EUTF8, "invalid UTF-8 lead byte");
  if (avail < (size_t)n) return fail(j, SC_EUTF8, "truncated UTF-8 sequence");
  for (int i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return fail(j, SC_EUTF8, "invalid UTF-8 continuation byte");
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return fail(j, SC_EUTF8, "overlong UTF-8 sequence");
  if (cp >= 0xD800 && cp <= 0xDFFF) return fail(j, SC_EUTF8, "UTF-8 encoded surrogate");
  if (cp > 0x10FFFF) return fail(j, SC_EUTF8, "code point above U+10FFFF");
  for (int i = 0; i < n; i++) *j->o++ = (char)*j->p++;
  return 0;
}

static int parse_string(parser_t *j) {
  *j->o++ = (char)*j->p++; /* opening quote */
  for (;;) {
    if (j->p >= j->end) return fail(j, SC_EJSON, "unterminated string");
    unsigned char c = *j->p;
    if (c == '"') {
      *j->o++ = (char)*j->p++;
      return 0;
    }
    if (c < 0x20) return fail(j, SC_EJSON, "control character in string");
    if (c >= 0x80) {
      if (utf8_seq(j) < 0) return -1;
      continue;
    }
    if (c != '\\') {
      *j->o++ = (char)*j->p++;
      continue;
    }
    if (j->end - j->p < 2) return fail(j, SC_EJSON, "unterminated string");
    unsigned char e = j->p[1];
    if (e == 'u') {
      *j->o++ = (char)*j->p++;
      long u = read_u_escape(j);
      if (u < 0) return -1;
      if (u >= 0xDC00 && u <= 0xDFFF) return fail(j, SC_EUTF8, "lone low surrogate escape");
      if (u >= 0xD800 && u <= 0xDBFF) {
        if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
          return fail(j, SC_EUTF8, "high surrogate escape without its low half");
        *j->o++ = (char)*j->p++;
        long lo = read_u_escape(j);
        if (lo < 0) return -1;
        if (lo < 0xDC00 || lo > 0xDFFF) return fail(j, SC_EUTF8, "high surrogate escape without its low half");
      }
      continue;
    }
    if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't')
      return fail(j, SC_EJSON, "invalid escape in string");
    *j->o++ = (char)*j->p++;
    *j->o++ = (char)*j->p++;
  }
}

static int digits(parser_t *j) {
  const unsigned char *s = j->p;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') *j->o++ = (char)*j->p++;
  return j->p > s ? 0 : -1;
}

static int parse_number(parser_t *j) {
  if (*j->p == '-') *j->o++ = (char)*j->p++;
  if (j->p >= j->end) return fail(j, SC_EJSON, "truncated number");
  if (*j->p == '0') {
    *j->o++ = (char)*j->p++;
    if (j->p < j->end && *j->p >= '0' && *j->p <= '9') return fail(j, SC_EJSON, "leading zero in number");
  } else if (digits(j) < 0) {
    return fail(j, SC_EJSON, "invalid number");
  }
  if (j->p < j->end && *j->p == '.') {
    *j->o++ = (char)*j->p++;
    if (digits(j) < 0) return fail(j, SC_EJSON, "digit expected after decimal point");
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    *j->o++ = (char)*j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-')) *j->o++ = (char)*j->p++;
    if (digits(j) < 0) return fail(j, SC_EJSON, "digit expected in exponent");
  }
  return 0;
}

static int parse_literal(parser_t *j, const char *lit, size_t n) {
  if ((size_t)(j->end - j->p) < n) return fail(j, SC_EJSON, "invalid literal");
  for (size_t i = 0; i < n; i++)
    if (j->p[i] != (unsigned char)lit[i]) return fail(j, SC_EJSON, "invalid literal");
  for (size_t i = 0; i < n; i++) *j->o++ = (char)*j->p++;
  return 0;
}

static int parse_value(parser_t *j);

/* Object or array: open is '{' or '['. */
static int parse_container(parser_t *j, unsigned char open) {
  unsigned char close = open == '{' ? '}' : ']';
  if (++j->depth > SC_JSON_MAX_DEPTH) return fail(j, SC_EJSON, "nesting too deep");
  *j->o++ = (char)*j->p++;
  skip_ws(j);
  if (j->p < j->end && *j->p == close) {
    *j->o++ = (char)*j->p++;
    j->depth--;
    return 0;
  }
  for (;;) {
    skip_ws(j);
    if (open == '{') {
      if (j->p >= j->end || *j->p != '"') return fail(j, SC_EJSON, "object key expected");
      if (parse_string(j) < 0) return -1;
      skip_ws(j);
      if (j->p >= j->end || *j->p != ':') return fail(j, SC_EJSON, "':' expected after object key");
      *j->o++ = (char)*j->p++;
      skip_ws(j);
    }
    if (parse_value(j) < 0) return -1;
    skip_ws(j);
    if (j->p >= j->end) return fail(j, SC_EJSON, open == '{' ? "unterminated object" : "unterminated array");
    if (*j->p == ',') {
      *j->o++ = (char)*j->p++;
      continue;
    }
    if (*j->p == close) {
      *j->o++ = (char)*j->p++;
      j->depth--;
      return 0;
    }
    return fail(j, SC_EJSON, open == '{' ? "',' or '}' expected in object" : "',' or ']' expected in array");
  }
}

static int parse_value(parser_t *j) {
  if (j->p >= j->end) return fail(j, SC_EJSON, "value expected");
  switch (*j->p) {
  case '{':
  case '[':
    return parse_container(j, *j->p);
  case '"':
    return parse_string(j);
  case 't':
    return parse_literal(j, "true", 4);
  case 'f':
    return parse_literal(j, "false", 5);
  case 'n':
    return parse_literal(j, "null", 4);
  default:
    if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) return parse_number(j);
    if (*j->p >= 0x80) return fail(j, SC_EJSON, "value expected, found a non-ASCII byte");
    return fail(j, SC_EJSON, "value expected");
  }
}

int sc_json_compact(const char *in, size_t len, char *out, size_t *outlen, sc_json_error_t *err) {
  parser_t j = {.p = (const unsigned char *)in, .start = (const unsigned char *)in,
                .end = (const unsigned char *)in + len, .o = out};
  skip_ws(&j);
  if (j.p >= j.end) fail(&j, SC_EJSON, "empty message");
  else if (parse_value(&j) == 0) {
    skip_ws(&j);
    if (j.p != j.end) fail(&j, SC_EJSON, "trailing data after the JSON value");
  }
  if (j.code != 0) {
    if (err != NULL) {
      err->offset = (size_t)(j.p - j.start);
      err->reason = j.reason;
    }
    return j.code;
  }
  *outlen = (size_t)(j.o - out);
  return 0;
}

size_t sc_json_escape(char *out, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  char *o = out;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"': *o++ = '\\'; *o++ = '"'; break;
    case '\\': *o++ = '\\'; *o++ = '\\'; break;
    case '\n': *o++ = '\\'; *o++ = 'n'; break;
    case '\r': *o++ = '\\'; *o++ = 'r'; break;
    case '\t': *o++ = '\\'; *o++ = 't'; break;
    default:
      if (c < 0x20) {
        *o++ = '\\'; *o++ = 'u'; *o++ = '0'; *o++ = '0';
        *o++ = hex[c >> 4]; *o++ = hex[c & 15];
      } else {
        *o++ = (char)c;
      }
    }
  }
  return (size_t)(o - out);
}
