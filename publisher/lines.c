/*
 * lines: the --lines input format of statecast-publisher (see pub_lines.h).
 */
#include "pub_lines.h"

#include "envelope.h"
#include "err.h"
#include "json.h"

#include <string.h>

/* End (one past) of the compact JSON value starting at c[i]; c is valid compact JSON. */
static size_t skip_value(const char *c, size_t i, size_t n) {
  if (c[i] == '"') {
    for (i++; i < n && c[i] != '"'; i++)
      if (c[i] == '\\') i++;
    return i + 1;
  }
  if (c[i] == '{' || c[i] == '[') {
    int depth = 0;
    for (; i < n; i++) {
      if (c[i] == '"') {
        i = skip_value(c, i, n) - 1;
      } else if (c[i] == '{' || c[i] == '[') {
        depth++;
      } else if (c[i] == '}' || c[i] == ']') {
        if (--depth == 0) return i + 1;
      }
    }
    return n;
  }
  while (i < n && c[i] != ',' && c[i] != '}' && c[i] != ']') i++;
  return i;
}

static int refuse(pub_line_t *out, int rc, const char *why) {
  out->why = why;
  return rc;
}

int pub_line_parse(const char *line, size_t len, char *scratch, pub_line_t *out) {
  size_t n = 0;
  sc_json_error_t jerr;
  memset(out, 0, sizeof *out);
  size_t k = 0;
  while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' || line[k] == '\n')) k++;
  if (k == len) return refuse(out, SC_ENOENT, "empty line");
  int rc = sc_json_compact(line, len, scratch, &n, &jerr);
  if (rc != 0) {
    out->offset = jerr.offset;
    return refuse(out, rc, jerr.reason);
  }
  const char *c = scratch;
  if (c[0] != '{') return refuse(out, SC_EINVAL, "line is not a JSON object");
  int have_topic = 0, have_data = 0;
  size_t i = 1;
  while (i < n && c[i] != '}') {
    size_t ks = i + 1, ke = skip_value(c, i, n) - 1; /* key without quotes: c[ks..ke) */
    size_t vs = ke + 2;                            /* past '"' and ':' */
    size_t ve = skip_value(c, vs, n);
    size_t klen = ke - ks;
    if (klen == 5 && memcmp(c + ks, "topic", 5) == 0) {
      if (have_topic) return refuse(out, SC_EINVAL, "duplicate key \"topic\"");
      if (c[vs] != '"') return refuse(out, SC_EINVAL, "\"topic\" is not a string");
      have_topic = 1;
      out->topic = c + vs + 1;
      out->topic_len = ve - vs - 2;
    } else if (klen == 4 && memcmp(c + ks, "data", 4) == 0) {
      if (have_data) return refuse(out, SC_EINVAL, "duplicate key \"data\"");
      have_data = 1;
      out->data = c + vs;
      out->data_len = ve - vs;
    } else {
      return refuse(out, SC_EINVAL, "unexpected key (only \"topic\" and \"data\" are allowed)");
    }
    i = c[ve] == ',' ? ve + 1 : ve;
  }
  if (!have_topic) return refuse(out, SC_EINVAL, "missing key \"topic\"");
  if (!have_data) return refuse(out, SC_EINVAL, "missing key \"data\"");
  if (sc_topic_validate(out->topic, out->topic_len) != 0)
    return refuse(out, SC_ETOPIC, "topic has a character outside A-Z a-z 0-9 . _ - : / @ or a bad length");
  return 0;
}
