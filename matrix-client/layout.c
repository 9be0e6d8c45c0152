/*
 * layout: YAML layout loading, format strings and colour rules (see layout.h).
 */
#include "layout.h"

#include "err.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ------------------------------------------------------------- formatting */

const cJSON *mx_json_path(const cJSON *root, const char *path) {
  const cJSON *cur = root;
  const char *p = path;
  if (!cur) return NULL;
  if (p[0] == '.' && p[1] == '\0') return cur;
  while (*p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    char key[256];
    if (n == 0 || n >= sizeof key) return NULL;
    memcpy(key, p, n);
    key[n] = '\0';
    if (cJSON_IsArray(cur)) {
      char *end;
      long idx = strtol(key, &end, 10);
      if (*end || idx < 0) return NULL;
      cur = cJSON_GetArrayItem(cur, (int)idx);
    } else if (cJSON_IsObject(cur)) {
      cur = cJSON_GetObjectItemCaseSensitive(cur, key);
    } else {
      return NULL;
    }
    if (!cur) return NULL;
    p += n;
    if (*p == '.') p++;
  }
  return cur;
}

/* Accept [-+ 0#]*[0-9]*(.[0-9]+)?[diouxXfFeEgGs]; returns the conversion or 0. */
static char spec_conv(const char *spec) {
  const char *s = spec;
  while (*s && strchr("-+ 0#", *s)) s++;
  while (*s >= '0' && *s <= '9') s++;
  if (*s == '.') {
    s++;
    while (*s >= '0' && *s <= '9') s++;
  }
  if (!*s || s[1] || !strchr("difgeExXs", *s)) return 0;
  if (s - spec > 12) return 0;
  return *s;
}

/* Append to out[*k..cap-1), keeping room for the NUL; stops on a UTF-8 boundary. */
static void put(char *out, size_t cap, size_t *k, const char *s, size_t n) {
  if (*k + 1 >= cap) return;
  if (*k + n + 1 > cap) {
    n = cap - 1 - *k;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--; /* do not split a character */
  }
  memcpy(out + *k, s, n);
  *k += n;
  out[*k] = '\0';
}

static void put_value(char *out, size_t cap, size_t *k, const cJSON *v, const char *spec) {
  char buf[MX_TEXT_MAX];
  char f[24];
  char conv = spec ? spec_conv(spec) : 0;
  if (!v || cJSON_IsNull(v)) {
    put(out, cap, k, "--", 2);
    return;
  }
  if (conv && cJSON_IsNumber(v)) {
    snprintf(f, sizeof f, "%%%s", spec);
    if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X') {
      f[strlen(f) - 1] = '\0';
      size_t fl = strlen(f);
      snprintf(f + fl, sizeof f - fl, "ll%c", conv);
      double d = v->valuedouble;
      long long ll = isfinite(d) && fabs(d) < 9e18 ? llround(d) : 0;
      snprintf(buf, sizeof buf, f, ll);
    } else if (conv == 's') {
      char *txt = cJSON_PrintUnformatted(v);
      snprintf(buf, sizeof buf, f, txt ? txt : "--");
      cJSON_free(txt);
    } else {
      snprintf(buf, sizeof buf, f, v->valuedouble);
    }
    put(out, cap, k, buf, strlen(buf));
    return;
  }
  if (cJSON_IsString(v)) {
    if (conv == 's') {
      snprintf(f, sizeof f, "%%%s", spec);
      snprintf(buf, sizeof buf, f, v->valuestring);
      put(out, cap, k, buf, strlen(buf));
    } else {
      put(out, cap, k, v->valuestring, strlen(v->valuestring));
    }
    return;
  }
  char *txt = cJSON_PrintUnformatted(v);
  if (txt) put(out, cap, k, txt, strlen(txt));
  else put(out, cap, k, "--", 2);
  cJSON_free(txt);
}

void mx_format(const char *fmt, const char *topic, const cJSON *data, char *out, size_t cap) {
  size_t k = 0;
  if (cap == 0) return;
  out[0] = '\0';
  for (const char *p = fmt; *p;) {
    if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
      put(out, cap, &k, p, 1);
      p += 2;
      continue;
    }
    const char *close = p[0] == '{' ? strchr(p, '}') : NULL;
    if (!close) {
      put(out, cap, &k, p, 1);
      p++;
      continue;
    }
    char ph[256];
    size_t n = (size_t)(close - p - 1);
    if (n >= sizeof ph) n = sizeof ph - 1;
    memcpy(ph, p + 1, n);
    ph[n] = '\0';
    p = close + 1;
    char *spec = strchr(ph, ':');
    if (spec) *spec++ = '\0';
    if (strcmp(ph, "$topic") == 0) {
      put(out, cap, &k, topic ? topic : "--", strlen(topic ? topic : "--"));
      continue;
    }
    put_value(out, cap, &k, data ? mx_json_path(data, ph[0] ? ph : ".") : NULL, spec);
  }
}

static int rule_matches(const mx_rule_t *r, const cJSON *data) {
  const cJSON *v = data ? mx_json_path(data, r->path) : NULL;
  if (!v) return 0;
  if (cJSON_IsNumber(v) && r->is_num) {
    double a = v->valuedouble, b = r->num;
    switch (r->op) {
    case MX_OP_LT: return a < b;
    case MX_OP_LE: return a <= b;
    case MX_OP_GT: return a > b;
    case MX_OP_GE: return a >= b;
    case MX_OP_EQ: return a == b;
    case MX_OP_NE: return a != b;
    }
    return 0;
  }
  const char *s = cJSON_IsString(v) ? v->valuestring : cJSON_IsTrue(v) ? "true" : cJSON_IsFalse(v) ? "false" : NULL;
  if (!s) return r->op == MX_OP_NE;
  int c = strcmp(s, r->str);
  switch (r->op) {
  case MX_OP_EQ: return c == 0;
  case MX_OP_NE: return c != 0;
  case MX_OP_LT: return !r->is_num && c < 0;
  case MX_OP_LE: return !r->is_num && c <= 0;
  case MX_OP_GT: return !r->is_num && c > 0;
  case MX_OP_GE: return !r->is_num && c >= 0;
  }
  return 0;
}

mx_color_t mx_row_color(const mx_row_t *row, const cJSON *data) {
  for (size_t i = 0; i < row->nrules; i++)
    if (rule_matches(&row->rules[i], data)) return row->rules[i].color;
  return row->color ? row->color : MX_COLOR_WHITE;
}

size_t mx_layout_eval(const mx_layout_t *l, const mx_state_t *s, mx_line_t *lines, size_t max) {
  size_t n = 0;
  for (; n < l->nrows && n < max; n++) {
    const mx_row_t *row = &l->rows[n];
    const mx_topic_t *t = row->topic ? mx_state_find(s, row->topic) : NULL;
    const cJSON *data = t ? t->data : NULL;
    mx_format(row->text, row->topic, data, lines[n].text, sizeof lines[n].text);
    lines[n].color = mx_row_color(row, data);
  }
  return n;
}

size_t mx_default_eval(const mx_state_t *s, mx_line_t *lines, size_t max) {
  size_t n = 0;
  for (; n < s->n && n < max; n++) {
    mx_format("{$topic} {.}", s->topics[n].name, s->topics[n].data, lines[n].text, sizeof lines[n].text);
    lines[n].color = MX_COLOR_WHITE;
  }
  return n;
}

/* ------------------------------------------------------------------- YAML */

typedef struct ctx {
  yaml_document_t *doc;
  char *err;
  size_t errlen;
} ctx_t;

__attribute__((format(printf, 3, 4))) static int fail_at(ctx_t *c, const yaml_node_t *n, const char *fmt, ...) {
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(c->err, c->errlen, "line %lu: %s", n ? (unsigned long)n->start_mark.line + 1 : 0ul, msg);
  return SC_ECONFIG;
}

static const char *scalar(const yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int parse_int(ctx_t *c, const yaml_node_t *n, const char *key, int *out) {
  const char *s = scalar(n);
  char *end;
  long v = s ? strtol(s, &end, 10) : 0;
  if (!s || !*s || *end || v < 1 || v > 1024) return fail_at(c, n, "%s must be a number from 1 to 1024", key);
  *out = (int)v;
  return 0;
}

static int parse_color(ctx_t *c, const yaml_node_t *n, mx_color_t *out) {
  const char *s = scalar(n);
  if (!s || mx_color_parse(s, out) != 0)
    return fail_at(c, n, "unknown color '%s' (white red green yellow blue magenta cyan orange grey)",
                   s ? s : "?");
  return 0;
}

/* "path OP value" */
static int parse_cond(ctx_t *c, const yaml_node_t *n, mx_rule_t *r) {
  static const struct {
    const char *txt;
    mx_op_t op;
  } ops[] = {{"<=", MX_OP_LE}, {">=", MX_OP_GE}, {"==", MX_OP_EQ}, {"!=", MX_OP_NE}, {"<", MX_OP_LT}, {">", MX_OP_GT}};
  const char *s = scalar(n);
  if (!s) return fail_at(c, n, "'if' must be a text like \"celsius < 0\"");
  const char *p = s + strspn(s, " ");
  size_t plen = strcspn(p, " <>=!");
  const char *q = p + plen;
  q += strspn(q, " ");
  size_t i = 0;
  for (; i < sizeof ops / sizeof ops[0]; i++)
    if (strncmp(q, ops[i].txt, strlen(ops[i].txt)) == 0) break;
  if (plen == 0 || i == sizeof ops / sizeof ops[0])
    return fail_at(c, n, "bad condition '%s': want FIELD OP VALUE with OP one of < <= > >= == !=", s);
  q += strlen(ops[i].txt);
  q += strspn(q, " ");
  size_t vlen = strlen(q);
  while (vlen && q[vlen - 1] == ' ') vlen--;
  if (vlen >= 2 && (q[0] == '"' || q[0] == '\'') && q[vlen - 1] == q[0]) {
    q++;
    vlen -= 2;
  } else if (vlen == 0) {
    return fail_at(c, n, "bad condition '%s': missing value", s);
  }
  r->path = strndup(p, plen);
  r->str = strndup(q, vlen);
  if (!r->path || !r->str) return SC_ENOMEM;
  r->op = ops[i].op;
  char *end;
  errno = 0;
  r->num = strtod(r->str, &end);
  r->is_num = *r->str && !*end && errno == 0 && q[-1] != '"' && q[-1] != '\'';
  return 0;
}

static int parse_rules(ctx_t *c, const yaml_node_t *n, mx_row_t *row) {
  if (n->type != YAML_SEQUENCE_NODE) return fail_at(c, n, "rules must be a list");
  size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
  row->rules = calloc(cnt ? cnt : 1, sizeof *row->rules);
  if (!row->rules) return SC_ENOMEM;
  for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
    yaml_node_t *rn = yaml_document_get_node(c->doc, *it);
    mx_rule_t *r = &row->rules[row->nrules++];
    if (!rn || rn->type != YAML_MAPPING_NODE) return fail_at(c, rn, "a rule is a mapping with 'if' and 'color'");
    int has_if = 0, has_color = 0, rc;
    for (yaml_node_pair_t *pr = rn->data.mapping.pairs.start; pr < rn->data.mapping.pairs.top; pr++) {
      yaml_node_t *k = yaml_document_get_node(c->doc, pr->key), *v = yaml_document_get_node(c->doc, pr->value);
      const char *key = scalar(k);
      if (key && strcmp(key, "if") == 0) {
        if ((rc = parse_cond(c, v, r)) != 0) return rc;
        has_if = 1;
      } else if (key && strcmp(key, "color") == 0) {
        if ((rc = parse_color(c, v, &r->color)) != 0) return rc;
        has_color = 1;
      } else {
        return fail_at(c, k, "unknown key '%s' in a rule (if, color)", key ? key : "?");
      }
    }
    if (!has_if || !has_color) return fail_at(c, rn, "a rule needs both 'if' and 'color'");
  }
  return 0;
}

static int parse_row(ctx_t *c, const yaml_node_t *n, mx_row_t *row) {
  if (n->type != YAML_MAPPING_NODE) return fail_at(c, n, "a row is a mapping (topic, text, color, rules)");
  int rc;
  for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
    yaml_node_t *k = yaml_document_get_node(c->doc, pr->key), *v = yaml_document_get_node(c->doc, pr->value);
    const char *key = scalar(k);
    if (key && (strcmp(key, "topic") == 0 || strcmp(key, "text") == 0)) {
      const char *s = scalar(v);
      if (!s || !*s) return fail_at(c, v, "%s must be a non-empty text", key);
      char **dst = key[1] == 'o' ? &row->topic : &row->text;
      free(*dst);
      if (!(*dst = strdup(s))) return SC_ENOMEM;
    } else if (key && strcmp(key, "color") == 0) {
      if ((rc = parse_color(c, v, &row->color)) != 0) return rc;
    } else if (key && strcmp(key, "rules") == 0) {
      if (row->rules) return fail_at(c, k, "rules given twice");
      if ((rc = parse_rules(c, v, row)) != 0) return rc;
    } else {
      return fail_at(c, k, "unknown key '%s' in a row (topic, text, color, rules)", key ? key : "?");
    }
  }
  if (!row->text && !(row->text = strdup(row->topic ? "{.}" : ""))) return SC_ENOMEM;
  return 0;
}

static int parse_doc(ctx_t *c, mx_layout_t *l) {
  yaml_node_t *root = yaml_document_get_root_node(c->doc);
  if (!root || root->type != YAML_MAPPING_NODE) return fail_at(c, root, "a layout is a mapping with 'rows'");
  int rc, has_rows = 0;
  for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
    yaml_node_t *k = yaml_document_get_node(c->doc, pr->key), *v = yaml_document_get_node(c->doc, pr->value);
    const char *key = scalar(k);
    if (key && strcmp(key, "width") == 0) {
      if ((rc = parse_int(c, v, key, &l->width)) != 0) return rc;
    } else if (key && strcmp(key, "height") == 0) {
      if ((rc = parse_int(c, v, key, &l->height)) != 0) return rc;
    } else if (key && strcmp(key, "rows") == 0) {
      if (v->type != YAML_SEQUENCE_NODE || has_rows) return fail_at(c, v, "rows must be one list");
      has_rows = 1;
      size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
      l->rows = calloc(cnt ? cnt : 1, sizeof *l->rows);
      if (!l->rows) return SC_ENOMEM;
      for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *rn = yaml_document_get_node(c->doc, *it);
        if ((rc = parse_row(c, rn, &l->rows[l->nrows++])) != 0) return rc;
      }
    } else {
      return fail_at(c, k, "unknown key '%s' (width, height, rows)", key ? key : "?");
    }
  }
  if (!has_rows) return fail_at(c, root, "no 'rows' list");
  return 0;
}

int mx_layout_parse(const char *yaml, size_t len, mx_layout_t **out, char *err, size_t errlen) {
  *out = NULL;
  yaml_parser_t parser;
  yaml_document_t doc;
  int have_doc = 0, rc;
  mx_layout_t *l = calloc(1, sizeof *l);
  if (!l || !yaml_parser_initialize(&parser)) {
    free(l);
    return SC_ENOMEM;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
  if (!yaml_parser_load(&parser, &doc)) {
    snprintf(err, errlen, "line %lu: %s", (unsigned long)parser.problem_mark.line + 1,
             parser.problem ? parser.problem : "YAML syntax error");
    rc = SC_ECONFIG;
    goto fail;
  }
  have_doc = 1;
  ctx_t c = {.doc = &doc, .err = err, .errlen = errlen};
  if ((rc = parse_doc(&c, l)) != 0) goto fail;
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  *out = l;
  return 0;
fail:
  if (have_doc) yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  mx_layout_free(l);
  if (rc == SC_ENOMEM) snprintf(err, errlen, "out of memory");
  return rc;
}

int mx_layout_load(const char *path, mx_layout_t **out, char *err, size_t errlen) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return SC_EIO;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 4096;
      if (cap > 1024 * 1024) {
        fclose(f);
        free(buf);
        snprintf(err, errlen, "%s: larger than 1 MiB", path);
        return SC_ECONFIG;
      }
      char *nb = realloc(buf, cap);
      if (!nb) {
        fclose(f);
        free(buf);
        return SC_ENOMEM;
      }
      buf = nb;
    }
    size_t r = fread(buf + len, 1, cap - len, f);
    len += r;
    if (r == 0) break;
  }
  fclose(f);
  char inner[200];
  int rc = mx_layout_parse(buf, len, out, inner, sizeof inner);
  free(buf);
  if (rc) snprintf(err, errlen, "%s: %s", path, inner);
  return rc;
}

void mx_layout_free(mx_layout_t *l) {
  if (!l) return;
  for (size_t i = 0; i < l->nrows; i++) {
    mx_row_t *r = &l->rows[i];
    free(r->topic);
    free(r->text);
    for (size_t k = 0; k < r->nrules; k++) {
      free(r->rules[k].path);
      free(r->rules[k].str);
    }
    free(r->rules);
  }
  free(l->rows);
  free(l);
}
