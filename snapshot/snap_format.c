/*
 * snap_format: write, read and verify snapshot files (see snap_format.h and
 * docs/snapshot.md). The reader is strict on purpose: a file that is not
 * exactly a version-1 snapshot is refused before anything touches Redis.
 */
#include "snap_format.h"

#include "envelope.h"
#include "err.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void snap_dispose(snap_t *s) {
  if (s == NULL) return;
  free(s->topics);
  if (s->release != NULL) s->release(s->owner);
  memset(s, 0, sizeof *s);
}

/* ---- checksum ------------------------------------------------------------ */

static int md_put(EVP_MD_CTX *md, const char *p, size_t n) { return EVP_DigestUpdate(md, p, n) == 1 ? 0 : -1; }

static int md_num(EVP_MD_CTX *md, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int md_num(EVP_MD_CTX *md, const char *fmt, ...) {
  char buf[256]; /* the longest piece (the header) is under 140 bytes */
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof buf) return -1;
  return md_put(md, buf, (size_t)n);
}

int snap_checksum(const snap_t *s, char hex[65]) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (md == NULL) return SC_ENOMEM;
  int bad = EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1;
  bad |= md_num(md, "%s\n%d\n%" PRId64 "\n%s\n%" PRIu64 "\n%zu\n", SNAP_FORMAT_NAME, s->version, s->created, s->epoch,
                s->seq, s->count);
  for (size_t i = 0; i < s->count && !bad; i++) {
    const snap_topic_t *t = &s->topics[i];
    bad |= md_put(md, t->topic, t->topic_len);
    bad |= md_num(md, "\n%" PRIu64 "\n%" PRId64 "\n", t->seq, t->ts);
    bad |= md_put(md, t->data, t->data_len);
    bad |= md_put(md, "\n", 1);
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int outlen = 0;
  if (!bad) bad = EVP_DigestFinal_ex(md, out, &outlen) != 1 || outlen != 32;
  EVP_MD_CTX_free(md);
  if (bad) return SC_ENOMEM;
  static const char digits[] = "0123456789abcdef";
  for (unsigned i = 0; i < 32; i++) {
    hex[2 * i] = digits[out[i] >> 4];
    hex[2 * i + 1] = digits[out[i] & 15];
  }
  hex[64] = '\0';
  return 0;
}

/* ---- writing ------------------------------------------------------------- */

int snap_write(FILE *f, snap_t *s) {
  s->version = SNAP_FORMAT_VERSION;
  int rc = snap_checksum(s, s->sha256);
  if (rc != 0) return rc;
  if (fprintf(f,
              "{\"format\":\"%s\",\"version\":%d,\"created\":%" PRId64 ",\"epoch\":\"%s\",\"seq\":%" PRIu64
              ",\"count\":%zu,\n\"topics\":[\n",
              SNAP_FORMAT_NAME, s->version, s->created, s->epoch, s->seq, s->count) < 0)
    return SC_EIO;
  for (size_t i = 0; i < s->count; i++) {
    const snap_topic_t *t = &s->topics[i];
    if (fprintf(f, "{\"topic\":\"%.*s\",\"seq\":%" PRIu64 ",\"ts\":%" PRId64 ",\"data\":", (int)t->topic_len,
                t->topic, t->seq, t->ts) < 0 ||
        fwrite(t->data, 1, t->data_len, f) != t->data_len || fputs(i + 1 < s->count ? "},\n" : "}\n", f) < 0)
      return SC_EIO;
  }
  if (fprintf(f, "],\n\"sha256\":\"%s\"}\n", s->sha256) < 0) return SC_EIO;
  return 0;
}

static int errf(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int errf(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

int snap_write_file(const char *path, snap_t *s, char *err, size_t errlen) {
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  char *dir = strdup(path);
  FILE *f = NULL;
  int fd = -1, rc = SC_EIO;
  if (tmp == NULL || dir == NULL) {
    rc = errf(err, errlen, SC_ENOMEM, "out of memory");
    goto fail;
  }
  snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
  char *slash = strrchr(dir, '/');
  if (slash == NULL) {
    strcpy(dir, ".");
  } else if (slash == dir) {
    dir[1] = '\0';
  } else {
    *slash = '\0';
  }
  fd = mkstemp(tmp);
  if (fd < 0) {
    errf(err, errlen, SC_EIO, "cannot create a temporary file next to %s: %s", path, strerror(errno));
    tmp[0] = '\0';
    goto fail;
  }
  (void)fchmod(fd, 0640);
  f = fdopen(fd, "w");
  if (f == NULL) {
    errf(err, errlen, SC_EIO, "%s: %s", tmp, strerror(errno));
    goto fail;
  }
  fd = -1; /* owned by f now */
  rc = snap_write(f, s);
  if (rc == 0 && fflush(f) != 0) rc = SC_EIO;
  if (rc == 0 && fsync(fileno(f)) != 0) rc = SC_EIO;
  if (rc != 0) {
    errf(err, errlen, rc, "writing %s: %s", tmp, rc == SC_EIO ? strerror(errno) : sc_strerror(rc));
    goto fail;
  }
  if (fclose(f) != 0) {
    f = NULL;
    rc = errf(err, errlen, SC_EIO, "closing %s: %s", tmp, strerror(errno));
    goto fail;
  }
  f = NULL;
  if (rename(tmp, path) != 0) {
    rc = errf(err, errlen, SC_EIO, "renaming %s to %s: %s", tmp, path, strerror(errno));
    goto fail;
  }
  tmp[0] = '\0';
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) {
    rc = errf(err, errlen, SC_EIO, "syncing directory %s: %s", dir, strerror(errno));
    if (dfd >= 0) close(dfd);
    goto fail;
  }
  close(dfd);
  free(tmp);
  free(dir);
  return 0;

fail:
  if (f != NULL) fclose(f);
  if (fd >= 0) close(fd);
  if (tmp != NULL && tmp[0] != '\0') unlink(tmp);
  free(tmp);
  free(dir);
  return rc == 0 ? SC_EIO : rc;
}

int snap_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen) {
  int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errf(err, errlen, SC_EIO, "cannot open %s: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) cap = (size_t)st.st_size + 1;
  char *b = malloc(cap);
  if (b == NULL) goto nomem;
  for (;;) {
    if (n == cap) {
      char *nb = realloc(b, cap * 2);
      if (nb == NULL) goto nomem;
      b = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, b + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      free(b);
      if (fd != STDIN_FILENO) close(fd);
      return errf(err, errlen, SC_EIO, "reading %s: %s", path, strerror(e));
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  if (fd != STDIN_FILENO) close(fd);
  *buf = b;
  *len = n;
  return 0;
nomem:
  free(b);
  if (fd != STDIN_FILENO) close(fd);
  return errf(err, errlen, SC_ENOMEM, "out of memory reading %s", path);
}

/* ---- reading ------------------------------------------------------------- */

typedef struct rd {
  const char *start, *p, *end;
  char *err;
  size_t errlen;
  char *scratch; /* owned; room for the largest data value seen */
  size_t scap;
} rd_t;

static int fail_at(rd_t *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_at(rd_t *r, int code, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return errf(r->err, r->errlen, code, "byte %zu: %s", (size_t)(r->p - r->start), msg);
}

static int truncated(rd_t *r, const char *what) {
  return errf(r->err, r->errlen, SC_EJSON, "truncated: the file ends at byte %zu while reading %s",
              (size_t)(r->end - r->start), what);
}

static void skip_ws(rd_t *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static int show(char c) { return c >= 0x20 && c < 0x7f ? c : '?'; }

static int expect(rd_t *r, char c, const char *what) {
  skip_ws(r);
  if (r->p == r->end) return truncated(r, what);
  if (*r->p != c) return fail_at(r, SC_EJSON, "expected '%c' in %s, found '%c'", c, what, show(*r->p));
  r->p++;
  return 0;
}

/* A string without escapes: every string in a snapshot besides data is plain ASCII. */
static int read_str(rd_t *r, const char **s, size_t *len, const char *what) {
  int rc = expect(r, '"', what);
  if (rc != 0) return rc;
  const char *b = r->p;
  while (r->p < r->end && *r->p != '"') {
    if (*r->p == '\\' || (unsigned char)*r->p < 0x20)
      return fail_at(r, SC_EJSON, "unexpected escape or control character in %s", what);
    r->p++;
  }
  if (r->p == r->end) return truncated(r, what);
  *s = b;
  *len = (size_t)(r->p - b);
  r->p++;
  return 0;
}

static int read_uint(rd_t *r, uint64_t *v, uint64_t max, const char *what) {
  skip_ws(r);
  if (r->p == r->end) return truncated(r, what);
  if (*r->p < '0' || *r->p > '9') return fail_at(r, SC_EJSON, "%s must be a whole number >= 0", what);
  if (*r->p == '0' && r->p + 1 < r->end && r->p[1] >= '0' && r->p[1] <= '9')
    return fail_at(r, SC_EJSON, "%s has a leading zero", what);
  uint64_t x = 0;
  while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
    unsigned d = (unsigned)(*r->p - '0');
    if (x > (max - d) / 10) return fail_at(r, SC_EJSON, "%s is too large", what);
    x = x * 10 + d;
    r->p++;
  }
  if (r->p == r->end) return truncated(r, what);
  if (*r->p == '.' || *r->p == 'e' || *r->p == 'E') return fail_at(r, SC_EJSON, "%s must be a whole number", what);
  *v = x;
  return 0;
}

/* The extent of one JSON value (brackets and strings counted, content checked
 * afterwards by sc_json_compact). */
static int skip_value(rd_t *r, const char **v, size_t *len, const char *what) {
  skip_ws(r);
  if (r->p == r->end) return truncated(r, what);
  const char *b = r->p;
  int depth = 0;
  do {
    if (r->p == r->end) return truncated(r, what);
    char c = *r->p;
    if (c == '"') {
      r->p++;
      while (r->p < r->end && *r->p != '"') r->p += *r->p == '\\' ? 2 : 1;
      if (r->p >= r->end) {
        r->p = r->end;
        return truncated(r, what);
      }
      r->p++;
    } else if (c == '{' || c == '[') {
      depth++;
      r->p++;
    } else if (c == '}' || c == ']') {
      if (depth == 0) break; /* a primitive that ended right before a closer */
      depth--;
      r->p++;
    } else if (depth == 0) {
      while (r->p < r->end && strchr(",}] \t\r\n", *r->p) == NULL) r->p++;
      if (r->p == r->end) return truncated(r, what);
      break;
    } else {
      r->p++;
    }
  } while (depth > 0);
  *v = b;
  *len = (size_t)(r->p - b);
  if (*len == 0) return fail_at(r, SC_EJSON, "expected a JSON value in %s", what);
  return 0;
}

static int read_data(rd_t *r, const char **v, size_t *len, const char *topic, size_t tlen) {
  const char *b = NULL;
  size_t n = 0;
  int rc = skip_value(r, &b, &n, "data");
  if (rc != 0) return rc;
  if (n > r->scap) {
    char *s = realloc(r->scratch, n);
    if (s == NULL) return errf(r->err, r->errlen, SC_ENOMEM, "out of memory");
    r->scratch = s;
    r->scap = n;
  }
  size_t outlen = 0;
  sc_json_error_t je = {0, NULL};
  if (sc_json_compact(b, n, r->scratch, &outlen, &je) != 0)
    return errf(r->err, r->errlen, SC_EJSON, "byte %zu: data of topic '%.*s' is not valid JSON: %s",
                (size_t)(b - r->start) + je.offset, (int)tlen, topic, je.reason != NULL ? je.reason : "?");
  if (outlen != n || memcmp(b, r->scratch, n) != 0)
    return errf(r->err, r->errlen, SC_EJSON, "byte %zu: data of topic '%.*s' is not in compact form",
                (size_t)(b - r->start), (int)tlen, topic);
  *v = b;
  *len = n;
  return 0;
}

static int key_is(const char *k, size_t n, const char *want) { return strlen(want) == n && memcmp(k, want, n) == 0; }

/* Member separator: ',' (returns 1) or the closer (returns 0); < 0 on error. */
static int next_member(rd_t *r, char closer, const char *what) {
  skip_ws(r);
  if (r->p == r->end) return truncated(r, what);
  if (*r->p == ',') {
    r->p++;
    return 1;
  }
  if (*r->p == closer) {
    r->p++;
    return 0;
  }
  return fail_at(r, SC_EJSON, "expected ',' or '%c' in %s, found '%c'", closer, what, show(*r->p));
}

static int read_topic(rd_t *r, snap_topic_t *t) {
  enum { HAVE_TOPIC = 1, HAVE_SEQ = 2, HAVE_TS = 4, HAVE_DATA = 8 };
  unsigned have = 0;
  int rc = expect(r, '{', "a topic entry");
  if (rc != 0) return rc;
  for (;;) {
    const char *k;
    size_t kn;
    const char *at = r->p;
    if ((rc = read_str(r, &k, &kn, "a topic entry")) != 0 || (rc = expect(r, ':', "a topic entry")) != 0) return rc;
    unsigned bit = key_is(k, kn, "topic") ? HAVE_TOPIC
                   : key_is(k, kn, "seq") ? HAVE_SEQ
                   : key_is(k, kn, "ts")  ? HAVE_TS
                   : key_is(k, kn, "data") ? HAVE_DATA
                                           : 0;
    if (bit == 0 || (have & bit)) {
      r->p = at;
      return fail_at(r, SC_EJSON, "%s member '%.*s' in a topic entry", bit == 0 ? "unknown" : "duplicate",
                     (int)(kn > 40 ? 40 : kn), k);
    }
    have |= bit;
    uint64_t v = 0;
    switch (bit) {
      case HAVE_TOPIC:
        if ((rc = read_str(r, &t->topic, &t->topic_len, "a topic name")) != 0) return rc;
        if (sc_topic_validate(t->topic, t->topic_len) != 0)
          return fail_at(r, SC_EINVAL, "invalid topic name '%.*s'", (int)(t->topic_len > 60 ? 60 : t->topic_len),
                         t->topic);
        break;
      case HAVE_SEQ:
        if ((rc = read_uint(r, &t->seq, UINT64_MAX, "a topic's seq")) != 0) return rc;
        break;
      case HAVE_TS:
        if ((rc = read_uint(r, &v, INT64_MAX, "a topic's ts")) != 0) return rc;
        t->ts = (int64_t)v;
        break;
      default:
        /* topic may come after data in a hand-edited file; name it if known */
        if ((rc = read_data(r, &t->data, &t->data_len, (have & HAVE_TOPIC) ? t->topic : "?",
                            (have & HAVE_TOPIC) ? t->topic_len : 1)) != 0)
          return rc;
        break;
    }
    rc = next_member(r, '}', "a topic entry");
    if (rc < 0) return rc;
    if (rc == 0) break;
  }
  if (have != (HAVE_TOPIC | HAVE_SEQ | HAVE_TS | HAVE_DATA))
    return fail_at(r, SC_EJSON, "a topic entry lacks %s",
                   !(have & HAVE_TOPIC) ? "\"topic\""
                   : !(have & HAVE_SEQ) ? "\"seq\""
                   : !(have & HAVE_TS)  ? "\"ts\""
                                        : "\"data\"");
  return 0;
}

static int read_topics(rd_t *r, snap_t *s) {
  size_t cap = 0;
  int rc = expect(r, '[', "topics");
  if (rc != 0) return rc;
  skip_ws(r);
  if (r->p < r->end && *r->p == ']') {
    r->p++;
    return 0;
  }
  for (;;) {
    if (s->count == cap) {
      size_t ncap = cap ? cap * 2 : 1024;
      snap_topic_t *nt = realloc(s->topics, ncap * sizeof *nt);
      if (nt == NULL) return errf(r->err, r->errlen, SC_ENOMEM, "out of memory");
      s->topics = nt;
      cap = ncap;
    }
    snap_topic_t *t = &s->topics[s->count];
    memset(t, 0, sizeof *t);
    if ((rc = read_topic(r, t)) != 0) return rc;
    s->count++;
    rc = next_member(r, ']', "topics");
    if (rc < 0) return rc;
    if (rc == 0) return 0;
  }
}

static int cmp_topic(const void *a, const void *b) {
  const snap_topic_t *x = *(const snap_topic_t *const *)a, *y = *(const snap_topic_t *const *)b;
  size_t n = x->topic_len < y->topic_len ? x->topic_len : y->topic_len;
  int c = memcmp(x->topic, y->topic, n);
  return c != 0 ? c : (x->topic_len > y->topic_len) - (x->topic_len < y->topic_len);
}

static int is_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}

/* Everything after the structure: count, positions, uniqueness, checksum. */
static int check_content(rd_t *r, snap_t *s, uint64_t count) {
  if (count != s->count)
    return errf(r->err, r->errlen, SC_EINVAL, "count says %" PRIu64 " topics but the file holds %zu", count, s->count);
  for (size_t i = 0; i < s->count; i++)
    if (s->topics[i].seq > s->seq)
      return errf(r->err, r->errlen, SC_EINVAL, "topic '%.*s' has seq %" PRIu64 ", newer than the snapshot (%" PRIu64 ")",
                  (int)s->topics[i].topic_len, s->topics[i].topic, s->topics[i].seq, s->seq);
  if (s->count > 1) {
    const snap_topic_t **idx = malloc(s->count * sizeof *idx);
    if (idx == NULL) return errf(r->err, r->errlen, SC_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->count; i++) idx[i] = &s->topics[i];
    qsort(idx, s->count, sizeof *idx, cmp_topic);
    for (size_t i = 1; i < s->count; i++) {
      if (cmp_topic(&idx[i - 1], &idx[i]) == 0) {
        int rc = errf(r->err, r->errlen, SC_EINVAL, "topic '%.*s' appears more than once", (int)idx[i]->topic_len,
                      idx[i]->topic);
        free(idx);
        return rc;
      }
    }
    free(idx);
  }
  char hex[65];
  int rc = snap_checksum(s, hex);
  if (rc != 0) return errf(r->err, r->errlen, rc, "out of memory");
  if (strcmp(hex, s->sha256) != 0)
    return errf(r->err, r->errlen, SC_EINVAL,
                "checksum mismatch: the file says %.12s..., its content hashes to %.12s... (modified or damaged)",
                s->sha256, hex);
  return 0;
}

int snap_parse(const char *buf, size_t len, snap_t *out, char *err, size_t errlen) {
  enum { F_FORMAT = 1, F_VERSION = 2, F_CREATED = 4, F_EPOCH = 8, F_SEQ = 16, F_COUNT = 32, F_TOPICS = 64, F_SHA = 128 };
  static const char *const names[] = {"format", "version", "created", "epoch", "seq", "count", "topics", "sha256"};
  rd_t r = {buf, buf, buf + len, err, errlen, NULL, 0};
  snap_t s;
  memset(&s, 0, sizeof s);
  unsigned have = 0;
  uint64_t count = 0, v = 0;
  int rc;
  skip_ws(&r);
  if (r.p == r.end) {
    rc = errf(err, errlen, SC_EJSON, "the file is empty");
    goto fail;
  }
  if ((rc = expect(&r, '{', "the snapshot")) != 0) goto fail;
  for (;;) {
    const char *k;
    size_t kn;
    const char *at = r.p;
    if ((rc = read_str(&r, &k, &kn, "the snapshot")) != 0 || (rc = expect(&r, ':', "the snapshot")) != 0) goto fail;
    unsigned bit = 0;
    for (unsigned i = 0; i < 8; i++)
      if (key_is(k, kn, names[i])) bit = 1u << i;
    if (bit == 0 || (have & bit)) {
      r.p = at;
      rc = fail_at(&r, SC_EJSON, "%s member '%.*s'", bit == 0 ? "unknown" : "duplicate", (int)(kn > 40 ? 40 : kn), k);
      goto fail;
    }
    if (bit == F_TOPICS && !(have & F_VERSION)) {
      rc = fail_at(&r, SC_EINVAL, "\"version\" must come before \"topics\"");
      goto fail;
    }
    have |= bit;
    const char *sv;
    size_t sn;
    switch (bit) {
      case F_FORMAT:
        if ((rc = read_str(&r, &sv, &sn, "format")) != 0) goto fail;
        if (!key_is(sv, sn, SNAP_FORMAT_NAME)) {
          rc = errf(err, errlen, SC_EINVAL, "not a statecast snapshot (format \"%.*s\")", (int)(sn > 40 ? 40 : sn), sv);
          goto fail;
        }
        break;
      case F_VERSION:
        if ((rc = read_uint(&r, &v, INT_MAX, "version")) != 0) goto fail;
        if (v != SNAP_FORMAT_VERSION) {
          rc = errf(err, errlen, SC_EINVAL, "unsupported snapshot version %" PRIu64 " (this tool reads version %d)", v,
                    SNAP_FORMAT_VERSION);
          goto fail;
        }
        s.version = (int)v;
        break;
      case F_CREATED:
        if ((rc = read_uint(&r, &v, INT64_MAX, "created")) != 0) goto fail;
        s.created = (int64_t)v;
        break;
      case F_EPOCH:
        if ((rc = read_str(&r, &sv, &sn, "epoch")) != 0) goto fail;
        if (sn > SNAP_EPOCH_MAX || !is_hex(sv, sn)) {
          rc = fail_at(&r, SC_EINVAL, "epoch must be at most %d lower-case hex digits", SNAP_EPOCH_MAX);
          goto fail;
        }
        memcpy(s.epoch, sv, sn);
        s.epoch[sn] = '\0';
        break;
      case F_SEQ:
        if ((rc = read_uint(&r, &s.seq, UINT64_MAX, "seq")) != 0) goto fail;
        break;
      case F_COUNT:
        if ((rc = read_uint(&r, &count, UINT64_MAX, "count")) != 0) goto fail;
        break;
      case F_TOPICS:
        if ((rc = read_topics(&r, &s)) != 0) goto fail;
        break;
      default:
        if ((rc = read_str(&r, &sv, &sn, "sha256")) != 0) goto fail;
        if (sn != 64 || !is_hex(sv, sn)) {
          rc = fail_at(&r, SC_EINVAL, "sha256 must be 64 lower-case hex digits");
          goto fail;
        }
        memcpy(s.sha256, sv, 64);
        s.sha256[64] = '\0';
        break;
    }
    rc = next_member(&r, '}', "the snapshot");
    if (rc < 0) goto fail;
    if (rc == 0) break;
  }
  skip_ws(&r);
  if (r.p != r.end) {
    rc = fail_at(&r, SC_EJSON, "unexpected data after the end of the snapshot");
    goto fail;
  }
  for (unsigned i = 0; i < 8; i++) {
    if (!(have & (1u << i))) {
      rc = errf(err, errlen, SC_EJSON, "the snapshot lacks \"%s\"", names[i]);
      goto fail;
    }
  }
  if ((rc = check_content(&r, &s, count)) != 0) goto fail;
  free(r.scratch);
  *out = s;
  return 0;

fail:
  free(r.scratch);
  free(s.topics);
  memset(out, 0, sizeof *out);
  return rc;
}
