/*
 * fields: dot-path projection over compact JSON and the per-stream
 * "last projection sent" map (see fields.h).
 */
#include "fields.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SEGS (API_FIELDS_PATH_MAX / 2 + 1)

struct api_fields_seen_slot {
  uint64_t key; /* topic hash, never 0; 0 = empty slot */
  uint64_t val; /* projection hash, never 0; 0 = forgotten */
};

static int seg_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '$' || c == '@';
}

static const char *check_path(const char *p, size_t len) {
  if (len == 0) return "empty field path";
  if (len > API_FIELDS_PATH_MAX) return "field path longer than 64 bytes";
  size_t seg = 0;
  for (size_t i = 0; i < len; i++) {
    if (p[i] == '.') {
      if (seg == 0) return "empty segment in field path";
      seg = 0;
    } else if (!seg_char(p[i])) {
      return "field path characters must be A-Z a-z 0-9 _ - $ @ and '.' between names";
    } else {
      seg++;
    }
  }
  return seg == 0 ? "empty segment in field path" : NULL;
}

int api_fields_add(api_fields_t *f, const char *s, size_t len, const char **reason) {
  size_t i = 0;
  for (;;) {
    size_t j = i;
    while (j < len && s[j] != ',') j++;
    const char *why = check_path(s + i, j - i);
    if (why != NULL) {
      if (reason) *reason = why;
      return SC_EINVAL;
    }
    int dup = 0;
    for (unsigned k = 0; k < f->n && !dup; k++) dup = f->len[k] == j - i && memcmp(f->path[k], s + i, j - i) == 0;
    if (!dup) {
      if (f->n == API_FIELDS_MAX) {
        if (reason) *reason = "more than 16 field paths";
        return SC_EINVAL;
      }
      memcpy(f->path[f->n], s + i, j - i);
      f->path[f->n][j - i] = '\0';
      f->len[f->n] = (uint8_t)(j - i);
      f->n++;
    }
    if (j == len) return 0;
    i = j + 1;
  }
}

void api_fields_finish(api_fields_t *f) {
  /* Insertion sort: at most 16 paths. */
  for (unsigned i = 1; i < f->n; i++) {
    for (unsigned k = i; k > 0 && strcmp(f->path[k - 1], f->path[k]) > 0; k--) {
      char tmp[API_FIELDS_PATH_MAX + 1];
      uint8_t tl = f->len[k];
      memcpy(tmp, f->path[k], sizeof tmp);
      memcpy(f->path[k], f->path[k - 1], sizeof tmp);
      memcpy(f->path[k - 1], tmp, sizeof tmp);
      f->len[k] = f->len[k - 1];
      f->len[k - 1] = tl;
    }
  }
  size_t o = 0;
  for (unsigned i = 0; i < f->n; i++) {
    if (i > 0) f->canon[o++] = ',';
    memcpy(f->canon + o, f->path[i], f->len[i]);
    o += f->len[i];
  }
  f->canon[o] = '\0';
  f->canon_len = o;
}

size_t api_fields_project_size(size_t data_len) {
  /* Everything written is copied from the input (keys, values, the commas,
   * colons and braces that held them), except the outer "{}" when data is
   * not an object. */
  return data_len + 2;
}

/* Pointer just past the JSON value starting at p, or NULL if malformed. */
static const char *skip_value(const char *p, const char *end) {
  if (p >= end) return NULL;
  if (*p == '"') {
    for (p++; p < end; p++) {
      if (*p == '\\') p++;
      else if (*p == '"') return p + 1;
    }
    return NULL;
  }
  if (*p == '{' || *p == '[') {
    int depth = 0;
    for (; p < end; p++) {
      if (*p == '"') {
        p = skip_value(p, end);
        if (p == NULL) return NULL;
        p--;
      } else if (*p == '{' || *p == '[') {
        depth++;
      } else if (*p == '}' || *p == ']') {
        if (--depth == 0) return p + 1;
      }
    }
    return NULL;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']') p++;
  return p;
}

typedef struct segs {
  uint8_t n[API_FIELDS_MAX];
  uint8_t off[API_FIELDS_MAX][MAX_SEGS];
  uint8_t len[API_FIELDS_MAX][MAX_SEGS];
} segs_t;

/* Project the object at p (*p == '{') for the paths in mask at segment
 * depth into out. Returns bytes written ("{...}"), or 0 if malformed. */
static size_t project_obj(const api_fields_t *f, const segs_t *sg, uint32_t mask, unsigned depth, const char *p,
                          const char *end, char *out) {
  char *o = out;
  uint32_t done = 0;
  int first = 1;
  *o++ = '{';
  p++;
  while (p < end && *p != '}') {
    if (*p == ',') p++;
    if (p >= end || *p != '"') return 0;
    const char *ks = p;
    const char *ke = skip_value(p, end); /* past the closing quote */
    if (ke == NULL || ke >= end || *ke != ':') return 0;
    const char *vs = ke + 1;
    const char *ve = skip_value(vs, end);
    if (ve == NULL) return 0;
    const char *key = ks + 1;
    size_t klen = (size_t)(ke - 1 - key);
    uint32_t m = 0, leaf = 0;
    for (unsigned i = 0; i < f->n; i++) {
      uint32_t bit = 1u << i;
      if (!(mask & bit) || (done & bit) || depth >= sg->n[i]) continue;
      if (sg->len[i][depth] == klen && memcmp(f->path[i] + sg->off[i][depth], key, klen) == 0) {
        m |= bit;
        if (sg->n[i] == depth + 1) leaf |= bit;
      }
    }
    if (m != 0) {
      char *mark = o;
      if (!first) *o++ = ',';
      memcpy(o, ks, (size_t)(vs - ks)); /* "key": */
      o += vs - ks;
      if (leaf != 0) {
        memcpy(o, vs, (size_t)(ve - vs));
        o += ve - vs;
        done |= m;
        first = 0;
      } else if (*vs == '{') {
        size_t w = project_obj(f, sg, m, depth + 1, vs, ve, o);
        if (w > 2) {
          o += w;
          done |= m;
          first = 0;
        } else {
          o = mark;
        }
      } else {
        o = mark;
      }
    }
    p = ve;
  }
  *o++ = '}';
  return (size_t)(o - out);
}

size_t api_fields_project(const api_fields_t *f, const char *data, size_t len, char *out) {
  const char *end = data + len;
  if (len > 0 && data[0] == '{' && f->n > 0) {
    segs_t sg;
    for (unsigned i = 0; i < f->n; i++) {
      unsigned n = 0, start = 0;
      for (unsigned k = 0; k <= f->len[i]; k++) {
        if (k == f->len[i] || f->path[i][k] == '.') {
          sg.off[i][n] = (uint8_t)start;
          sg.len[i][n] = (uint8_t)(k - start);
          n++;
          start = k + 1;
        }
      }
      sg.n[i] = (uint8_t)n;
    }
    size_t w = project_obj(f, &sg, (1u << f->n) - 1, 0, data, end, out);
    if (w > 0) return w;
  }
  out[0] = '{';
  out[1] = '}';
  return 2;
}

size_t api_fields_project_envelope(const api_fields_t *f, const char *env, size_t env_len, char *out,
                                   size_t *data_off, size_t *data_len) {
  static const char key[] = ",\"data\":";
  /* Topics never contain '"', so the first match is the envelope's own key. */
  const char *k = env_len > sizeof key ? memmem(env, env_len, key, sizeof key - 1) : NULL;
  if (k == NULL || env[env_len - 1] != '}') {
    memcpy(out, env, env_len);
    *data_off = env_len;
    *data_len = 0;
    return env_len;
  }
  size_t pre = (size_t)(k - env) + sizeof key - 1;
  memcpy(out, env, pre);
  size_t w = api_fields_project(f, env + pre, env_len - pre - 1, out + pre);
  out[pre + w] = '}';
  *data_off = pre;
  *data_len = w;
  return pre + w + 1;
}

uint64_t api_fields_hash(const char *b, size_t len) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)b[i]) * 1099511628211ull;
  return h;
}

static struct api_fields_seen_slot *seen_find(const api_fields_seen_t *s, uint64_t key) {
  size_t i = (size_t)key & (s->cap - 1);
  while (s->slots[i].key != 0 && s->slots[i].key != key) i = (i + 1) & (s->cap - 1);
  return &s->slots[i];
}

static int seen_grow(api_fields_seen_t *s) {
  size_t nc = s->cap ? s->cap * 2 : 8;
  struct api_fields_seen_slot *old = s->slots, *ns = calloc(nc, sizeof *ns);
  if (ns == NULL) return SC_ENOMEM;
  size_t oc = s->cap;
  s->slots = ns;
  s->cap = nc;
  for (size_t i = 0; i < oc; i++)
    if (old[i].key != 0) *seen_find(s, old[i].key) = old[i];
  free(old);
  return 0;
}

int api_fields_seen_update(api_fields_seen_t *s, const char *topic, size_t len, uint64_t proj_hash) {
  uint64_t key = api_fields_hash(topic, len) | 1;
  uint64_t val = proj_hash | 1;
  if ((s->count + 1) * 4 > s->cap * 3 && seen_grow(s) != 0) return SC_ENOMEM;
  struct api_fields_seen_slot *sl = seen_find(s, key);
  if (sl->key == 0) {
    sl->key = key;
    s->count++;
  } else if (sl->val == val) {
    return 0;
  }
  sl->val = val;
  return 1;
}

void api_fields_seen_forget(api_fields_seen_t *s, const char *topic, size_t len) {
  if (s->cap == 0) return;
  struct api_fields_seen_slot *sl = seen_find(s, api_fields_hash(topic, len) | 1);
  if (sl->key != 0) sl->val = 0;
}

void api_fields_seen_dispose(api_fields_seen_t *s) {
  free(s->slots);
  s->slots = NULL;
  s->cap = s->count = 0;
}
