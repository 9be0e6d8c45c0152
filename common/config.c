/*
 * config: resolve one binary's option table from four layers,
 *   defaults < YAML config file < environment < command-line flags.
 *
 * Loading works in a fixed order. argv is scanned first (it may name the
 * config file and may ask for --help), then the defaults are applied, the
 * YAML file (top level, then the binary's own section), the STATECAST_*
 * variables, and finally the flags in argv order. Each layer overwrites the
 * one below. Direct values are checked as soon as they are seen, so a bad
 * value is reported even when a higher layer overrides it. A secret's
 * <name>_file form only records the path; the file is read once, at the end,
 * for the layer that won, so an overridden path that does not exist on this
 * machine is harmless.
 *
 * Error texts are built from a "label" naming the key and where it came from
 * ("config file F:L: name", "STATECAST_NAME", "--name"); values of secret
 * options are never copied into them.
 */
#include "config.h"

#include "err.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* YAML sections, one per binary; only the caller's own one is applied. */
static const char *const known_sections[] = {"kv-updater", "apiserver", "publisher", "snapshot", "matrix"};

#define SECRET_FILE_MAX (1024 * 1024)
#define LABEL_MAX 512

enum { SEEN_DIRECT = 1, SEEN_FILE = 2 };

typedef struct conf_val {
  char *text;       /* owned; NULL when unset; a path while pending_file */
  int pending_file; /* text names a file to read once all layers are applied */
  char *file_label; /* owned; the label of the pending _file form, for errors */
  long long num;    /* SC_CONF_INT value, or 0/1 for SC_CONF_BOOL */
  char src[40];     /* what sc_conf_source() returns */
} conf_val_t;

struct sc_conf {
  const sc_conf_spec_t *specs; /* borrowed for the life of conf */
  size_t nspecs;
  conf_val_t *vals; /* owned, nspecs entries */
  char **args;      /* owned array of nargs + 1 pointers; the strings are borrowed from argv */
  int nargs;
  int help, check;
};

/* One option assignment found in argv; value borrowed from argv. */
typedef struct flag_set {
  size_t idx;
  int is_file;
  const char *value;
} flag_set_t;

typedef struct load {
  sc_conf_t *conf;       /* borrowed; being filled */
  char *err;             /* borrowed caller buffer, may be NULL */
  size_t errlen;
  unsigned char *seen;   /* owned; SEEN_* per spec within one layer or YAML mapping */
  unsigned *seen_line;   /* owned; YAML line of the first key setting each spec in one mapping */
  const char *path;      /* config file path (borrowed from argv/envp/specs), or NULL */
  const char *section;   /* borrowed; may be NULL */
} load_t;

static int fail(load_t *l, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(load_t *l, int code, const char *fmt, ...) {
  if (l->err != NULL && l->errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->err, l->errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

static long find_spec(const sc_conf_spec_t *specs, size_t nspecs, const char *name, size_t len) {
  for (size_t i = 0; i < nspecs; i++)
    if (strlen(specs[i].name) == len && memcmp(specs[i].name, name, len) == 0) return (long)i;
  return -1;
}

static int name_eq(const char *name, const char *key, size_t len, char sep) {
  if (strlen(name) != len) return 0;
  for (size_t j = 0; j < len; j++)
    if (key[j] != (name[j] == '_' ? sep : name[j])) return 0;
  return 1;
}

/* Find key as an option, or as the "<name><sep>file" form of a secret option;
 * sep is the word separator of the source ('_' for YAML, '-' for flags). An
 * option whose own name ends in _file wins over the secret form. */
static long find_key(const sc_conf_spec_t *specs, size_t nspecs, const char *key, size_t len, char sep,
                     int *is_file) {
  *is_file = 0;
  for (size_t i = 0; i < nspecs; i++)
    if (name_eq(specs[i].name, key, len, sep)) return (long)i;
  if (len <= 5 || key[len - 5] != sep || memcmp(key + len - 4, "file", 4) != 0) return -1;
  for (size_t i = 0; i < nspecs; i++)
    if ((specs[i].flags & SC_CONF_SECRET) && name_eq(specs[i].name, key, len - 5, sep)) {
      *is_file = 1;
      return (long)i;
    }
  return -1;
}

static void env_name(char *buf, size_t len, const char *name, int is_file) {
  size_t o = 0;
  o += (size_t)snprintf(buf, len, "STATECAST_");
  for (const char *p = name; *p != '\0' && o + 1 < len; p++)
    buf[o++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
  buf[o < len ? o : len - 1] = '\0';
  if (is_file) snprintf(buf + strlen(buf), len - strlen(buf), "_FILE");
}

static void flag_name(char *buf, size_t len, const char *name, int is_file) {
  size_t o = 0;
  o += (size_t)snprintf(buf, len, "--");
  for (const char *p = name; *p != '\0' && o + 1 < len; p++) buf[o++] = *p == '_' ? '-' : *p;
  buf[o < len ? o : len - 1] = '\0';
  if (is_file) snprintf(buf + strlen(buf), len - strlen(buf), "-file");
}

static const char *env_lookup(char **envp, const char *var) {
  size_t vl = strlen(var);
  if (envp == NULL) return NULL;
  for (char **e = envp; *e != NULL; e++)
    if (strncmp(*e, var, vl) == 0 && (*e)[vl] == '=') return *e + vl + 1;
  return NULL;
}

static int parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < 4; i++) {
    if (strcmp(s, yes[i]) == 0) return *out = 1, 0;
    if (strcmp(s, no[i]) == 0) return *out = 0, 0;
  }
  return -1;
}

/* A full decimal integer: optional '-', digits, nothing else. *overflow set
 * when it does not fit a long long. */
static int parse_int(const char *s, long long *out, int *overflow) {
  const char *p = s;
  *overflow = 0;
  if (*p == '-') p++;
  if (*p == '\0') return -1;
  for (const char *q = p; *q != '\0'; q++)
    if (*q < '0' || *q > '9') return -1;
  errno = 0;
  *out = strtoll(s, NULL, 10);
  if (errno == ERANGE) *overflow = 1;
  return 0;
}

static int choice_ok(const char *choices, const char *s) {
  size_t sl = strlen(s);
  const char *p = choices;
  for (;;) {
    const char *bar = strchr(p, '|');
    size_t n = bar != NULL ? (size_t)(bar - p) : strlen(p);
    if (n == sl && memcmp(p, s, n) == 0) return 1;
    if (bar == NULL) return 0;
    p = bar + 1;
  }
}

/* Check text against spec idx; on success *num holds its number (if any). */
static int check_value(load_t *l, size_t idx, const char *text, const char *label, long long *num) {
  const sc_conf_spec_t *s = &l->conf->specs[idx];
  int secret = (s->flags & SC_CONF_SECRET) != 0;
  char shown[LABEL_MAX];
  if (secret)
    snprintf(shown, sizeof shown, "the value");
  else
    snprintf(shown, sizeof shown, "'%s'", text);
  *num = 0;
  switch (s->type) {
  case SC_CONF_INT: {
    int overflow;
    if (parse_int(text, num, &overflow) != 0) return fail(l, SC_ECONFIG, "%s: %s is not an integer", label, shown);
    if (overflow || ((s->min != 0 || s->max != 0) && (*num < s->min || *num > s->max))) {
      if (secret) snprintf(shown, sizeof shown, "the value");
      else snprintf(shown, sizeof shown, "%s", text);
      if (s->min != 0 || s->max != 0)
        return fail(l, SC_ECONFIG, "%s: %s is out of range %lld..%lld", label, shown, s->min, s->max);
      return fail(l, SC_ECONFIG, "%s: %s is out of range", label, shown);
    }
    return 0;
  }
  case SC_CONF_BOOL: {
    int b;
    if (parse_bool(text, &b) != 0)
      return fail(l, SC_ECONFIG, "%s: %s is not a boolean (true|false|yes|no|on|off|1|0)", label, shown);
    *num = b;
    return 0;
  }
  case SC_CONF_STRING:
    if (s->choices != NULL && !choice_ok(s->choices, text))
      return fail(l, SC_ECONFIG, "%s: %s is not one of %s", label, shown, s->choices);
    return 0;
  }
  return fail(l, SC_ECONFIG, "%s: option has an unknown type", label);
}

/* Store one layer's assignment; text is copied. src is the source name. */
static int assign(load_t *l, size_t idx, int is_file, const char *text, const char *label, const char *src) {
  conf_val_t *v = &l->conf->vals[idx];
  long long num = 0;
  char *copy, *lcopy = NULL;
  if (!is_file) {
    int rc = check_value(l, idx, text, label, &num);
    if (rc != 0) return rc;
  }
  copy = strdup(text);
  if (is_file) lcopy = strdup(label);
  if (copy == NULL || (is_file && lcopy == NULL)) {
    free(copy);
    free(lcopy);
    return fail(l, SC_ENOMEM, "out of memory");
  }
  free(v->text);
  free(v->file_label);
  v->text = copy;
  v->file_label = lcopy;
  v->pending_file = is_file;
  v->num = num;
  snprintf(v->src, sizeof v->src, "%s", src);
  return 0;
}

/* Within one layer (or one YAML mapping) a secret may come from its value or
 * its file, not both. */
static int mark_seen(load_t *l, size_t idx, int is_file, const char *where) {
  unsigned char bit = is_file ? SEEN_FILE : SEEN_DIRECT, other = is_file ? SEEN_DIRECT : SEEN_FILE;
  if (l->seen[idx] & other) {
    const char *n = l->conf->specs[idx].name;
    return fail(l, SC_ECONFIG, "%s: both %s and %s_file are set; use one", where, n, n);
  }
  l->seen[idx] |= bit;
  return 0;
}

/* ---- YAML ---------------------------------------------------------------- */

static int is_section_name(const char *k) {
  for (size_t i = 0; i < sizeof known_sections / sizeof known_sections[0]; i++)
    if (strcmp(known_sections[i], k) == 0) return 1;
  return 0;
}

static int yaml_is_null(const yaml_node_t *n) {
  if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
  const char *s = (const char *)n->data.scalar.value;
  return strcmp(s, "") == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
         strcmp(s, "NULL") == 0;
}

static const char *node_kind(const yaml_node_t *n) {
  return n->type == YAML_MAPPING_NODE ? "a mapping" : n->type == YAML_SEQUENCE_NODE ? "a list" : "a scalar";
}

/* Apply the scalar keys of one mapping. With own_section NULL this is the
 * top level: section mappings are skipped and the binary's own one is
 * returned through *own_section for the caller to apply afterwards. */
static int apply_mapping(load_t *l, yaml_document_t *doc, yaml_node_t *map, yaml_node_t **own_section) {
  const sc_conf_spec_t *specs = l->conf->specs;
  size_t nspecs = l->conf->nspecs;
  unsigned own_line = 0;
  memset(l->seen, 0, nspecs);
  memset(l->seen_line, 0, nspecs * sizeof *l->seen_line);
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key);
    yaml_node_t *v = yaml_document_get_node(doc, p->value);
    if (k == NULL || v == NULL) continue;
    unsigned kline = (unsigned)k->start_mark.line + 1, vline = (unsigned)v->start_mark.line + 1;
    if (k->type != YAML_SCALAR_NODE)
      return fail(l, SC_ECONFIG, "config file %s:%u: a key must be a plain name, not %s", l->path, kline,
                  node_kind(k));
    const char *key = (const char *)k->data.scalar.value;
    int is_file;
    long idx = find_key(specs, nspecs, key, strlen(key), '_', &is_file);
    if (own_section != NULL && is_section_name(key) && (idx < 0 || v->type == YAML_MAPPING_NODE)) {
      if (v->type != YAML_MAPPING_NODE && !yaml_is_null(v))
        return fail(l, SC_ECONFIG, "config file %s:%u: section '%s' must be a mapping, not %s", l->path, vline, key,
                    node_kind(v));
      if (l->section != NULL && strcmp(key, l->section) == 0) {
        if (*own_section != NULL)
          return fail(l, SC_ECONFIG, "config file %s:%u: duplicate section '%s' (first at line %u)", l->path, kline,
                      key, own_line);
        own_line = kline;
        *own_section = v->type == YAML_MAPPING_NODE ? v : NULL;
        if (*own_section == NULL) own_line = 0;
      }
      continue; /* other binaries' sections are theirs alone */
    }
    if (idx < 0) return fail(l, SC_ECONFIG, "config file %s:%u: unknown key '%s'", l->path, kline, key);
    /* The file cannot choose itself; accepting the key lets --check-config
     * output be fed back as a config file. */
    if (strcmp(specs[idx].name, "config") == 0) continue;
    if (v->type != YAML_SCALAR_NODE)
      return fail(l, SC_ECONFIG, "config file %s:%u: %s: expected a single value, not %s", l->path, vline, key,
                  node_kind(v));
    if (l->seen_line[idx] != 0 && (l->seen[idx] & (is_file ? SEEN_FILE : SEEN_DIRECT)))
      return fail(l, SC_ECONFIG, "config file %s:%u: duplicate key '%s' (first at line %u)", l->path, kline, key,
                  l->seen_line[idx]);
    if (yaml_is_null(v)) continue; /* "key:" or "key: ~" leaves the lower layer alone */
    char where[LABEL_MAX], label[LABEL_MAX], src[40];
    snprintf(where, sizeof where, "config file %s:%u", l->path, kline);
    int rc = mark_seen(l, (size_t)idx, is_file, where);
    if (rc != 0) return rc;
    if (l->seen_line[idx] == 0) l->seen_line[idx] = kline;
    snprintf(label, sizeof label, "config file %s:%u: %s", l->path, vline, key);
    snprintf(src, sizeof src, "%s:%u", is_file ? "file-file" : "file", vline);
    rc = assign(l, (size_t)idx, is_file, (const char *)v->data.scalar.value, label, src);
    if (rc != 0) return rc;
  }
  return 0;
}

static int load_file(load_t *l, const char *origin) {
  yaml_parser_t parser;
  yaml_document_t doc, extra;
  int have_doc = 0, rc = 0;
  FILE *f = fopen(l->path, "rb");
  if (f == NULL) return fail(l, SC_ECONFIG, "config file %s (from %s): %s", l->path, origin, strerror(errno));
  if (!yaml_parser_initialize(&parser)) {
    fclose(f);
    return fail(l, SC_ENOMEM, "out of memory");
  }
  yaml_parser_set_input_file(&parser, f);
  if (!yaml_parser_load(&parser, &doc)) goto parse_error;
  have_doc = 1;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (root != NULL) {
    /* A second document would be silently ignored; refuse it instead. */
    if (!yaml_parser_load(&parser, &extra)) goto parse_error;
    yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
    unsigned extra_line = extra_root != NULL ? (unsigned)extra_root->start_mark.line + 1 : 0;
    yaml_document_delete(&extra);
    if (extra_root != NULL) {
      rc = fail(l, SC_ECONFIG, "config file %s:%u: only one YAML document is allowed", l->path, extra_line);
      goto done;
    }
  }
  if (root == NULL || yaml_is_null(root)) goto done; /* empty file: nothing to apply */
  if (root->type != YAML_MAPPING_NODE) {
    rc = fail(l, SC_ECONFIG, "config file %s:%u: the top level must be a mapping of keys to values, not %s",
              l->path, (unsigned)root->start_mark.line + 1, node_kind(root));
    goto done;
  }
  yaml_node_t *own = NULL;
  rc = apply_mapping(l, &doc, root, &own);
  if (rc == 0 && own != NULL) rc = apply_mapping(l, &doc, own, NULL);
  goto done;

parse_error:
  if (parser.error == YAML_MEMORY_ERROR)
    rc = fail(l, SC_ENOMEM, "out of memory");
  else if (parser.error == YAML_READER_ERROR) {
    /* Reader errors (bad encoding) only carry a byte offset; count lines. */
    size_t line = 1;
    int ch;
    rewind(f);
    for (size_t off = 0; off < parser.problem_offset && (ch = fgetc(f)) != EOF; off++)
      if (ch == '\n') line++;
    rc = fail(l, SC_ECONFIG, "config file %s:%zu: %s (byte %zu)", l->path, line,
              parser.problem != NULL ? parser.problem : "unreadable", parser.problem_offset);
  }
  else
    rc = fail(l, SC_ECONFIG, "config file %s:%zu: %s%s%s", l->path, parser.problem_mark.line + 1,
              parser.problem != NULL ? parser.problem : "invalid YAML", parser.context != NULL ? " " : "",
              parser.context != NULL ? parser.context : "");
done:
  if (have_doc) yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  fclose(f);
  return rc;
}

/* ---- secrets from files -------------------------------------------------- */

static int read_secret(load_t *l, size_t idx) {
  conf_val_t *v = &l->conf->vals[idx];
  const char *label = v->file_label;
  char *buf = NULL;
  size_t len = 0;
  long long num;
  int rc;
  FILE *f = fopen(v->text, "rb");
  if (f == NULL) return fail(l, SC_ECONFIG, "%s: cannot read '%s': %s", label, v->text, strerror(errno));
  buf = malloc(SECRET_FILE_MAX + 1);
  if (buf == NULL) {
    fclose(f);
    return fail(l, SC_ENOMEM, "out of memory");
  }
  len = fread(buf, 1, SECRET_FILE_MAX + 1, f);
  if (ferror(f)) {
    rc = fail(l, SC_ECONFIG, "%s: cannot read '%s': %s", label, v->text, strerror(errno ? errno : EIO));
    goto fail;
  }
  if (len > SECRET_FILE_MAX) {
    rc = fail(l, SC_ECONFIG, "%s: '%s' is larger than %d bytes", label, v->text, SECRET_FILE_MAX);
    goto fail;
  }
  if (len > 0 && buf[len - 1] == '\n') {
    len--;
    if (len > 0 && buf[len - 1] == '\r') len--;
  }
  buf[len] = '\0';
  if (memchr(buf, '\0', len) != NULL) {
    rc = fail(l, SC_ECONFIG, "%s: '%s' contains a NUL byte", label, v->text);
    goto fail;
  }
  rc = check_value(l, idx, buf, label, &num);
  if (rc != 0) goto fail;
  fclose(f);
  free(v->text);
  free(v->file_label);
  v->text = buf;
  v->file_label = NULL;
  v->pending_file = 0;
  v->num = num;
  return 0;

fail:
  free(buf);
  fclose(f);
  return rc;
}

/* ---- argv ---------------------------------------------------------------- */

/* Split argv into option assignments, positional arguments and the
 * --help/--check-config switches. An error is remembered (first one wins)
 * but scanning goes on, so "--help" still works next to a bad flag. */
static int scan_argv(load_t *l, int argc, char **argv, flag_set_t *sets, size_t *nsets) {
  sc_conf_t *c = l->conf;
  int rc = 0, after_dd = 0;
  *nsets = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a == NULL) break;
    if (after_dd || a[0] != '-' || a[1] == '\0') {
      c->args[c->nargs++] = argv[i];
      continue;
    }
    if (strcmp(a, "--") == 0) {
      after_dd = 1;
      continue;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      c->help = 1;
      continue;
    }
    if (strcmp(a, "--check-config") == 0) {
      c->check = 1;
      continue;
    }
    const char *name = a + 2, *eq = strchr(a, '=');
    size_t nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
    int is_file;
    long idx = a[1] == '-' ? find_key(c->specs, c->nspecs, name, nlen, '-', &is_file) : -1;
    if (idx < 0) {
      int shown = eq != NULL ? (int)(eq - a) : (int)strlen(a);
      if (rc == 0) {
        if ((nlen == 4 && memcmp(name, "help", 4) == 0) || (nlen == 12 && memcmp(name, "check-config", 12) == 0))
          rc = fail(l, SC_ECONFIG, "%.*s takes no value", shown, a);
        else
          rc = fail(l, SC_ECONFIG, "unknown flag '%.*s'", shown, a);
      }
      continue;
    }
    const char *value;
    if (eq != NULL) {
      value = eq + 1;
    } else if (c->specs[idx].type == SC_CONF_BOOL && !is_file) {
      value = "true";
    } else if (i + 1 < argc && argv[i + 1] != NULL) {
      value = argv[++i];
    } else {
      if (rc == 0) rc = fail(l, SC_ECONFIG, "%s: missing value", a);
      continue;
    }
    sets[*nsets].idx = (size_t)idx;
    sets[*nsets].is_file = is_file;
    sets[*nsets].value = value;
    (*nsets)++;
  }
  c->args[c->nargs] = NULL;
  return rc;
}

/* ---- load ---------------------------------------------------------------- */

int sc_conf_load(sc_conf_t **out, const char *program, const char *section, const sc_conf_spec_t *specs,
                 size_t nspecs, int argc, char **argv, char **envp, char *err, size_t errlen) {
  load_t l = {.err = err, .errlen = errlen, .section = section};
  flag_set_t *sets = NULL;
  size_t nsets = 0;
  char label[LABEL_MAX];
  int rc;
  (void)program;
  if (err != NULL && errlen > 0) err[0] = '\0';
  *out = NULL;
  if (argc < 0) argc = 0;

  sc_conf_t *c = calloc(1, sizeof *c);
  if (c == NULL) return fail(&l, SC_ENOMEM, "out of memory");
  l.conf = c;
  c->specs = specs;
  c->nspecs = nspecs;
  c->vals = calloc(nspecs > 0 ? nspecs : 1, sizeof *c->vals);
  c->args = calloc((size_t)argc + 1, sizeof *c->args);
  sets = calloc((size_t)argc + 1, sizeof *sets);
  l.seen = calloc(nspecs > 0 ? nspecs : 1, 1);
  l.seen_line = calloc(nspecs > 0 ? nspecs : 1, sizeof *l.seen_line);
  if (c->vals == NULL || c->args == NULL || sets == NULL || l.seen == NULL || l.seen_line == NULL) {
    rc = fail(&l, SC_ENOMEM, "out of memory");
    goto fail;
  }

  int argv_rc = scan_argv(&l, argc, argv, sets, &nsets);

  for (size_t i = 0; i < nspecs; i++) {
    snprintf(c->vals[i].src, sizeof c->vals[i].src, "default");
    if (specs[i].def == NULL) continue;
    snprintf(label, sizeof label, "default for %s", specs[i].name);
    rc = assign(&l, i, 0, specs[i].def, label, "default");
    if (rc != 0) goto fail;
  }
  if (c->help) { /* the defaults are enough to print usage; ignore the rest */
    if (err != NULL && errlen > 0) err[0] = '\0';
    goto done;
  }
  if (argv_rc != 0) {
    rc = argv_rc;
    goto fail;
  }

  /* The config file's path is itself an option: flag, else env, else default. */
  long cidx = find_spec(specs, nspecs, "config", 6);
  if (cidx >= 0) {
    const char *origin = "the default";
    char var[LABEL_MAX];
    env_name(var, sizeof var, "config", 0);
    l.path = specs[cidx].def;
    if (env_lookup(envp, var) != NULL) l.path = env_lookup(envp, var), origin = var;
    for (size_t i = 0; i < nsets; i++)
      if (sets[i].idx == (size_t)cidx) l.path = sets[i].value, origin = "--config";
    if (l.path != NULL && l.path[0] != '\0') {
      rc = load_file(&l, origin);
      if (rc != 0) goto fail;
    }
  }

  memset(l.seen, 0, nspecs);
  for (size_t i = 0; i < nspecs; i++) {
    char var[LABEL_MAX], fvar[LABEL_MAX];
    env_name(var, sizeof var, specs[i].name, 0);
    const char *v = env_lookup(envp, var);
    if (v != NULL) {
      rc = assign(&l, i, 0, v, var, "env");
      if (rc != 0) goto fail;
    }
    if (!(specs[i].flags & SC_CONF_SECRET)) continue;
    env_name(fvar, sizeof fvar, specs[i].name, 1);
    const char *fv = env_lookup(envp, fvar);
    if (fv == NULL) continue;
    if (v != NULL) {
      rc = fail(&l, SC_ECONFIG, "environment: both %s and %s are set; use one", var, fvar);
      goto fail;
    }
    rc = assign(&l, i, 1, fv, fvar, "env-file");
    if (rc != 0) goto fail;
  }

  memset(l.seen, 0, nspecs);
  for (size_t i = 0; i < nsets; i++) {
    flag_name(label, sizeof label, specs[sets[i].idx].name, sets[i].is_file);
    rc = mark_seen(&l, sets[i].idx, sets[i].is_file, "flags");
    if (rc != 0) goto fail;
    rc = assign(&l, sets[i].idx, sets[i].is_file, sets[i].value, label, sets[i].is_file ? "flag-file" : "flag");
    if (rc != 0) goto fail;
  }

  for (size_t i = 0; i < nspecs; i++) {
    if (!c->vals[i].pending_file) continue;
    rc = read_secret(&l, i);
    if (rc != 0) goto fail;
  }

done:
  free(sets);
  free(l.seen);
  free(l.seen_line);
  *out = c;
  return 0;

fail:
  free(sets);
  free(l.seen);
  free(l.seen_line);
  sc_conf_free(c);
  return rc;
}

void sc_conf_free(sc_conf_t *conf) {
  if (conf == NULL) return;
  if (conf->vals != NULL)
    for (size_t i = 0; i < conf->nspecs; i++) {
      free(conf->vals[i].text);
      free(conf->vals[i].file_label);
    }
  free(conf->vals);
  free(conf->args);
  free(conf);
}

/* ---- accessors ----------------------------------------------------------- */

static size_t must_find(const sc_conf_t *conf, const char *name, const char *fn) {
  long idx = find_spec(conf->specs, conf->nspecs, name, strlen(name));
  if (idx < 0) {
    fprintf(stderr, "%s: no option named '%s' in this binary's table (programming error)\n", fn, name);
    abort();
  }
  return (size_t)idx;
}

const char *sc_conf_str(const sc_conf_t *conf, const char *name) {
  return conf->vals[must_find(conf, name, "sc_conf_str")].text;
}

long long sc_conf_int(const sc_conf_t *conf, const char *name) {
  size_t i = must_find(conf, name, "sc_conf_int");
  if (conf->specs[i].type != SC_CONF_INT) {
    fprintf(stderr, "sc_conf_int: option '%s' is not an integer (programming error)\n", name);
    abort();
  }
  return conf->vals[i].num;
}

int sc_conf_bool(const sc_conf_t *conf, const char *name) {
  size_t i = must_find(conf, name, "sc_conf_bool");
  if (conf->specs[i].type != SC_CONF_BOOL) {
    fprintf(stderr, "sc_conf_bool: option '%s' is not a boolean (programming error)\n", name);
    abort();
  }
  return (int)conf->vals[i].num;
}

const char *sc_conf_source(const sc_conf_t *conf, const char *name) {
  return conf->vals[must_find(conf, name, "sc_conf_source")].src;
}

int sc_conf_help_wanted(const sc_conf_t *conf) { return conf->help; }
int sc_conf_check_wanted(const sc_conf_t *conf) { return conf->check; }

char **sc_conf_args(const sc_conf_t *conf, int *argc) {
  if (argc != NULL) *argc = conf->nargs;
  return conf->args;
}

/* ---- output -------------------------------------------------------------- */

void sc_conf_usage(FILE *f, const char *program, const char *usage_args, const sc_conf_spec_t *specs,
                   size_t nspecs) {
  char flag[LABEL_MAX], var[LABEL_MAX];
  fprintf(f, "usage: %s [options]%s%s\n\noptions:\n", program, usage_args != NULL && usage_args[0] ? " " : "",
          usage_args != NULL ? usage_args : "");
  for (size_t i = 0; i < nspecs; i++) {
    const sc_conf_spec_t *s = &specs[i];
    const char *arg = s->type == SC_CONF_INT ? " N" : s->type == SC_CONF_BOOL ? "[=BOOL]" : " VALUE";
    flag_name(flag, sizeof flag, s->name, 0);
    env_name(var, sizeof var, s->name, 0);
    fprintf(f, "  %s%s   (%s", flag, arg, var);
    if (s->def != NULL) fprintf(f, ", default %s", s->def);
    if (s->type == SC_CONF_INT && (s->min != 0 || s->max != 0)) fprintf(f, ", %lld..%lld", s->min, s->max);
    fprintf(f, ")\n      %s\n", s->help != NULL ? s->help : "");
    if (s->flags & SC_CONF_SECRET) {
      flag_name(flag, sizeof flag, s->name, 1);
      env_name(var, sizeof var, s->name, 1);
      fprintf(f, "  %s PATH   (%s)\n      read %s from this file (trailing newline removed)\n", flag, var,
              s->name);
    }
  }
  fprintf(f, "  --check-config\n      print the resolved configuration with its sources and exit\n");
  fprintf(f, "  -h, --help\n      show this help and exit\n");
}

static int is_plain_safe(const char *s) {
  static const char *const reserved[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null"};
  char low[8];
  size_t n = strlen(s);
  if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '/')) return 0;
  for (const char *p = s; *p != '\0'; p++) {
    char ch = *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("_./:@+=-", ch)))
      return 0;
  }
  if (s[n - 1] == ':') return 0;
  if (n < sizeof low) {
    for (size_t i = 0; i <= n; i++) low[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
      if (strcmp(low, reserved[i]) == 0) return 0;
  }
  return 1;
}

/* A double-quoted scalar that JSON and YAML read the same way. */
static void put_quoted(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
    switch (*p) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    default:
      if (*p < 0x20 || *p == 0x7f)
        fprintf(f, "\\u%04x", *p);
      else
        fputc(*p, f);
    }
  }
  fputc('"', f);
}

static void put_value(FILE *f, const sc_conf_spec_t *s, const conf_val_t *v) {
  if (v->text == NULL)
    fputs("~", f);
  else if (s->flags & SC_CONF_SECRET)
    fputs("\"(secret)\"", f);
  else if (s->type == SC_CONF_INT)
    fprintf(f, "%lld", v->num);
  else if (s->type == SC_CONF_BOOL)
    fputs(v->num ? "true" : "false", f);
  else if (is_plain_safe(v->text))
    fputs(v->text, f);
  else
    put_quoted(f, v->text);
}

void sc_conf_print(const sc_conf_t *conf, FILE *f) {
  enum { ALIGN_MAX = 48 };
  size_t width = 0;
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < conf->nspecs; i++) {
      char *line = NULL;
      size_t len = 0;
      FILE *m = open_memstream(&line, &len);
      if (m == NULL) return;
      fprintf(m, "%s: ", conf->specs[i].name);
      put_value(m, &conf->specs[i], &conf->vals[i]);
      fclose(m);
      if (pass == 0) {
        if (len > width && len <= ALIGN_MAX) width = len;
      } else {
        fprintf(f, "%s%*s   # %s\n", line, len < width ? (int)(width - len) : 0, "", conf->vals[i].src);
      }
      free(line);
    }
}
