/*
 * statecast-loadgen: the benchmark's load generator and publisher.
 *
 * The parent process forks -P children that each open their share of N SSE
 * streams (GET <path> HTTP/1.1) with non-blocking sockets on one epoll,
 * bound to source addresses 127.0.0.2, .3, ... (10,000 streams per address,
 * IP_BIND_ADDRESS_NO_PORT) so ephemeral ports never run out. The parent is
 * the coordinator and the publisher: it waits until every stream answered
 * 200 (and, with --expect-sync, saw statecast's `event: sync`), measures the
 * server's idle memory, then publishes M messages on an absolute schedule
 * (R per second, round-robin over T topics, so each topic has the period
 * T/R) through Redis (XADD statecast:inbox, the durable path) or an HTTP
 * POST (Nchan, statecast-floor).
 *
 * Every message's data carries "bt" (publish time, us since the epoch,
 * CLOCK_REALTIME), "bk" (topic index) and "bv" (per-topic version 1, 2,
 * ...). A child de-chunks HTTP/1.1 chunked bodies in place, cuts SSE events
 * at "\n\n", and looks for the literal keys "bt":, "bk":, "bv": in each, so
 * statecast's envelope and Nchan's raw message parse alike. Events with
 * bt before the window started (the initial state statecast sends on
 * connect) are ignored. Per stream and topic a child keeps the last version
 * seen and how many versions it saw: loss, duplicates and staleness follow
 * from those (see bench/README.md for the definitions). No allocation per
 * event, no JSON library.
 *
 * Parent and children talk over two pipes per child with small framed
 * messages; each child sends its counters and histograms up at the end.
 * With --fill the binary instead writes N topics straight into Redis, laid
 * out as kv-updater commits them (docs/key-schema.md), for the start-up
 * scenario.
 */
#include "hist.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE (256 * 1024)
#define MAX_PROCS 64
#define MAX_LABELS 8
#define MAX_PIDS 16
#define STREAMS_PER_SRC 10000
#define HDR_MAX 16384
#define CTRL_TAG UINT32_MAX

/* ---- small helpers ------------------------------------------------------ */

static int64_t realtime_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_mono(int64_t t_us) {
  struct timespec ts = {(time_t)(t_us / 1000000), (long)(t_us % 1000000) * 1000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "statecast-loadgen: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static void *xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (p == NULL) die("out of memory");
  return p;
}

static int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int read_all(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* ---- parent/child messages ---------------------------------------------- */

enum { C_START = 1, C_FINAL, C_STOP };            /* parent -> child */
enum { M_STATUS = 1, M_CAUGHT_UP, M_RESULT };     /* child -> parent */

typedef struct msg_hdr {
  uint32_t type, len;
} msg_hdr_t;

typedef struct status_msg {
  uint64_t connected, failed, synced, disconnected, resolved;
  uint64_t st_non200;
} status_msg_t;

typedef struct start_msg {
  int64_t t_start_us;
  int64_t period_us;
  uint32_t topics;
  uint32_t fan_cap;
} start_msg_t;

typedef struct stop_msg {
  int64_t t_end_us;
} stop_msg_t;

typedef struct result_msg {
  uint64_t streams_measured; /* streaming when the window started */
  uint64_t connected, failed, disconnected, disconnected_window, non200;
  uint64_t events, dups, seen_versions, old_events, unparsed, bytes;
  uint64_t open_stale; /* stream/topic pairs not at the newest version at the end */
  uint64_t syncs_window; /* `event: sync` seen during the window (a server-side resync) */
  int64_t cpu_us;      /* this child's user+system CPU over the window */
  uint32_t nfan;
  uint32_t pad_;
  bench_hist_t delay, stale;
} result_msg_t;

static int send_msg(int fd, uint32_t type, const void *a, size_t alen, const void *b, size_t blen) {
  msg_hdr_t h = {type, (uint32_t)(alen + blen)};
  if (write_all(fd, &h, sizeof h) != 0) return -1;
  if (alen && write_all(fd, a, alen) != 0) return -1;
  if (blen && write_all(fd, b, blen) != 0) return -1;
  return 0;
}

/* ---- options ------------------------------------------------------------ */

typedef struct proc_label {
  char name[32];
  int npids;
  pid_t pids[MAX_PIDS];
} proc_label_t;

typedef struct opts {
  const char *host;
  int port;
  const char *path;
  long streams;
  int procs;
  const char *src;
  int connect_window;
  int connect_timeout_s;
  int settle_ms;
  int expect_sync;
  int idle_rss;
  proc_label_t labels[MAX_LABELS];
  int nlabels;
  const char *pub; /* redis://host:port, http://host:port/prefix or NULL */
  double rate;
  long size;
  long topics;
  double duration;
  long count;
  const char *topic_prefix;
  int drain_ms;
  int max_late_ms;
  int hold_ms;
  long fan_cap;
  const char *out;
  long fill;
  long fill_bytes;
  const char *fill_prefix;
} opts_t;

static void usage(FILE *f) {
  fprintf(f,
          "usage: statecast-loadgen [options]\n"
          "streams:\n"
          "  --host ADDR            server address (default 127.0.0.1)\n"
          "  --port N               server port (required unless --fill)\n"
          "  --path PATH            request path (default /events)\n"
          "  -n, --streams N        SSE streams to open (default 100)\n"
          "  -P, --procs N          load processes (default: one per 16,000 streams)\n"
          "  --src ADDR             first source address (default 127.0.0.2); +1 per 10,000 streams\n"
          "  --connect-window N     connects in flight per process (default 256)\n"
          "  --connect-timeout S    give up on streams not up after S seconds (default 120)\n"
          "  --settle-ms N          wait after all streams are up (default 1000)\n"
          "  --expect-sync          a stream is up once it saw `event: sync` (statecast)\n"
          "  --proc LABEL=PID[,PID] server processes to watch (CPU, RSS); repeatable; the first is the server\n"
          "  --idle-rss             report the first --proc's RSS per idle stream\n"
          "  --hold-ms N            stay idle this long after settling (default 0)\n"
          "publishing (none without --pub):\n"
          "  --pub URL              redis://HOST:PORT (XADD statecast:inbox) or http://HOST:PORT/PREFIX (POST PREFIX<topic>)\n"
          "  --rate R               messages per second (default 10)\n"
          "  --size S               bytes of each message's data (default 200)\n"
          "  --topics T             topics, published round-robin (default 1)\n"
          "  --topic-prefix P       topic names P0..P{T-1} (default bench/t)\n"
          "  --duration S           publishing window in seconds (default 10)\n"
          "  --count M              publish exactly M messages instead (at --rate)\n"
          "  --drain-ms N           wait up to N ms after the last publish for streams to catch up (default 5000)\n"
          "  --max-late-ms N        stop publishing once N ms behind the end of the schedule (a publisher\n"
          "                         back-pressured by the server); the rest is judged on what was sent (default 10000)\n"
          "  --fan-cap N            messages tracked for the fan-out figure (default 200000)\n"
          "output:\n"
          "  --out FILE             also write the key=value results to FILE\n"
          "fill mode (start-up scenario):\n"
          "  --fill N --fill-bytes B --pub redis://HOST:PORT [--fill-prefix fill/]\n"
          "                         write N topics of B bytes as kv-updater commits them\n");
}

static long parse_long(const char *opt, const char *v, long lo, long hi) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || *end || end == v || x < lo || x > hi) die("%s: bad value '%s' (%ld..%ld)", opt, v, lo, hi);
  return x;
}

static double parse_double(const char *opt, const char *v, double lo, double hi) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (errno || *end || end == v || !(x >= lo && x <= hi)) die("%s: bad value '%s'", opt, v);
  return x;
}

static void parse_proc(opts_t *o, const char *v) {
  if (o->nlabels == MAX_LABELS) die("too many --proc");
  proc_label_t *l = &o->labels[o->nlabels];
  const char *eq = strchr(v, '=');
  if (eq == NULL || eq == v || (size_t)(eq - v) >= sizeof l->name) die("--proc: expected LABEL=PID[,PID...]");
  memcpy(l->name, v, (size_t)(eq - v));
  l->name[eq - v] = '\0';
  const char *p = eq + 1;
  while (*p) {
    char *end;
    long pid = strtol(p, &end, 10);
    if (end == p || pid <= 0 || l->npids == MAX_PIDS) die("--proc: bad pid list '%s'", eq + 1);
    l->pids[l->npids++] = (pid_t)pid;
    p = *end == ',' ? end + 1 : end;
    if (*end && *end != ',') die("--proc: bad pid list '%s'", eq + 1);
  }
  if (l->npids == 0) die("--proc: no pid");
  o->nlabels++;
}

static void parse_opts(opts_t *o, int argc, char **argv) {
  *o = (opts_t){.host = "127.0.0.1",
                .path = "/events",
                .streams = 100,
                .src = "127.0.0.2",
                .connect_window = 256,
                .connect_timeout_s = 120,
                .settle_ms = 1000,
                .rate = 10,
                .size = 200,
                .topics = 1,
                .duration = 10,
                .topic_prefix = "bench/t",
                .drain_ms = 5000,
                .max_late_ms = 10000,
                .fan_cap = 200000,
                .fill_bytes = 1024,
                .fill_prefix = "fill/"};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      exit(0);
    }
    if (!strcmp(a, "--expect-sync")) {
      o->expect_sync = 1;
      continue;
    }
    if (!strcmp(a, "--idle-rss")) {
      o->idle_rss = 1;
      continue;
    }
    if (i + 1 >= argc) die("%s needs a value (see --help)", a);
    const char *v = argv[++i];
    if (!strcmp(a, "--host")) o->host = v;
    else if (!strcmp(a, "--port")) o->port = (int)parse_long(a, v, 1, 65535);
    else if (!strcmp(a, "--path")) o->path = v;
    else if (!strcmp(a, "-n") || !strcmp(a, "--streams")) o->streams = parse_long(a, v, 0, 10000000);
    else if (!strcmp(a, "-P") || !strcmp(a, "--procs")) o->procs = (int)parse_long(a, v, 1, MAX_PROCS);
    else if (!strcmp(a, "--src")) o->src = v;
    else if (!strcmp(a, "--connect-window")) o->connect_window = (int)parse_long(a, v, 1, 100000);
    else if (!strcmp(a, "--connect-timeout")) o->connect_timeout_s = (int)parse_long(a, v, 1, 3600);
    else if (!strcmp(a, "--settle-ms")) o->settle_ms = (int)parse_long(a, v, 0, 3600000);
    else if (!strcmp(a, "--proc")) parse_proc(o, v);
    else if (!strcmp(a, "--hold-ms")) o->hold_ms = (int)parse_long(a, v, 0, 3600000);
    else if (!strcmp(a, "--pub")) o->pub = v;
    else if (!strcmp(a, "--rate")) o->rate = parse_double(a, v, 0.001, 1e6);
    else if (!strcmp(a, "--size")) o->size = parse_long(a, v, 1, 64 * 1024 * 1024);
    else if (!strcmp(a, "--topics")) o->topics = parse_long(a, v, 1, 1000000);
    else if (!strcmp(a, "--topic-prefix")) o->topic_prefix = v;
    else if (!strcmp(a, "--duration")) o->duration = parse_double(a, v, 0, 86400);
    else if (!strcmp(a, "--count")) o->count = parse_long(a, v, 1, 100000000);
    else if (!strcmp(a, "--drain-ms")) o->drain_ms = (int)parse_long(a, v, 0, 3600000);
    else if (!strcmp(a, "--max-late-ms")) o->max_late_ms = (int)parse_long(a, v, 0, 3600000);
    else if (!strcmp(a, "--fan-cap")) o->fan_cap = parse_long(a, v, 0, 100000000);
    else if (!strcmp(a, "--out")) o->out = v;
    else if (!strcmp(a, "--fill")) o->fill = parse_long(a, v, 1, 100000000);
    else if (!strcmp(a, "--fill-bytes")) o->fill_bytes = parse_long(a, v, 32, 64 * 1024 * 1024);
    else if (!strcmp(a, "--fill-prefix")) o->fill_prefix = v;
    else die("unknown option %s (see --help)", a);
  }
  if (o->fill == 0 && o->port == 0) die("--port is required");
  if (o->procs == 0) o->procs = (int)((o->streams + 15999) / 16000);
  if (o->procs < 1) o->procs = 1;
  if (o->procs > o->streams && o->streams > 0) o->procs = (int)o->streams;
}

/* ---- /proc ---------------------------------------------------------------- */

/* VmRSS in KiB of pid, -1 if gone. */
static long proc_rss_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

/* utime+stime of pid (all threads) in microseconds, -1 if gone. */
static int64_t proc_cpu_us(pid_t pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* comm may contain spaces */
  if (p == NULL) return -1;
  p += 2; /* field 3 (state) */
  unsigned long long ut = 0, st = 0;
  for (int field = 3; field <= 15 && *p; field++) {
    if (field == 14) ut = strtoull(p, NULL, 10);
    if (field == 15) st = strtoull(p, NULL, 10);
    p = strchr(p, ' ');
    if (p == NULL) break;
    p++;
  }
  long hz = sysconf(_SC_CLK_TCK);
  return (int64_t)((ut + st) * 1000000ULL / (unsigned long long)hz);
}

static long label_rss_kb(const proc_label_t *l) {
  long sum = 0;
  for (int i = 0; i < l->npids; i++) {
    long kb = proc_rss_kb(l->pids[i]);
    if (kb > 0) sum += kb;
  }
  return sum;
}

static int64_t label_cpu_us(const proc_label_t *l) {
  int64_t sum = 0;
  for (int i = 0; i < l->npids; i++) {
    int64_t us = proc_cpu_us(l->pids[i]);
    if (us > 0) sum += us;
  }
  return sum;
}

/* Machine-wide CPU from /proc/stat in microseconds: user+nice+system into
 * *task, irq+softirq into *irq (loopback TCP does much of its work there). */
static void machine_cpu_us(int64_t *task, int64_t *irq) {
  *task = *irq = 0;
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL) return;
  unsigned long long v[8] = {0};
  if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
             &v[7]) == 8) {
    long hz = sysconf(_SC_CLK_TCK);
    *task = (int64_t)((v[0] + v[1] + v[2]) * 1000000ULL / (unsigned long long)hz);
    *irq = (int64_t)((v[5] + v[6]) * 1000000ULL / (unsigned long long)hz);
  }
  fclose(f);
}

static int64_t self_cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec + (int64_t)ru.ru_stime.tv_sec * 1000000 +
         ru.ru_stime.tv_usec;
}

/* ---- child: the streams ----------------------------------------------------- */

enum { ST_IDLE, ST_CONNECTING, ST_HEADERS, ST_STREAMING, ST_CLOSED };
enum { CS_SIZE, CS_EXT, CS_SIZE_LF, CS_DATA, CS_DATA_CR, CS_DATA_LF, CS_DONE };

typedef struct conn {
  int fd;
  uint8_t state;
  uint8_t cst;      /* chunked decoder state */
  uint8_t chunked;
  uint8_t synced;
  uint8_t measured; /* streaming when the window started */
  uint8_t counted_up;
  uint32_t crem;    /* bytes left in the current chunk (or its size being parsed) */
  uint32_t clen, ccap;
  char *cbuf;       /* carry: partial headers or a partial SSE event */
} conn_t;

typedef struct child {
  const opts_t *o;
  int idx;
  long first, n; /* global index of the first stream, and how many */
  int ctl_in, up_out;
  int ep;
  conn_t *conns;
  long next_connect, inflight;
  int64_t deadline_mono;
  status_msg_t st;
  int status_dirty;
  int64_t last_status_mono;
  /* window */
  int measuring;
  int64_t t_start, period_us;
  uint32_t topics, fan_cap;
  uint32_t *last_v;   /* [n * topics] */
  uint32_t *seen;     /* [n * topics] */
  int64_t *fan_max;   /* [fan_cap] */
  uint32_t *fan_cnt;  /* [fan_cap] */
  uint32_t *vfinal;   /* [topics], after C_FINAL */
  int64_t *btfinal;   /* [topics] */
  int final_known, caught_up_sent;
  uint64_t behind;    /* measured stream/topic pairs below vfinal */
  int64_t cpu_start;
  result_msg_t r;
  char *rbuf;
} child_t;

static void child_status(child_t *c, int force) {
  int64_t now = mono_us();
  if (!c->status_dirty && !force) return;
  if (!force && now - c->last_status_mono < 100000) return;
  c->last_status_mono = now;
  c->status_dirty = 0;
  if (send_msg(c->up_out, M_STATUS, &c->st, sizeof c->st, NULL, 0) != 0) exit(3);
}

static void conn_close(child_t *c, conn_t *k, int failed) {
  if (k->state == ST_CLOSED || k->state == ST_IDLE) return;
  if (!k->counted_up) { /* still counted as a connect in flight */
    k->counted_up = 1;
    c->inflight--;
    c->st.resolved++;
  }
  if (k->state == ST_CONNECTING || k->state == ST_HEADERS) {
    c->st.failed++;
  } else if (k->state == ST_STREAMING) {
    c->st.disconnected++;
    if (c->measuring) c->r.disconnected_window++;
  }
  (void)failed;
  close(k->fd);
  k->fd = -1;
  k->state = ST_CLOSED;
  free(k->cbuf);
  k->cbuf = NULL;
  k->clen = k->ccap = 0;
  c->status_dirty = 1;
}

static void carry_append(conn_t *k, const char *p, size_t n) {
  if (k->clen + n > k->ccap) {
    size_t cap = k->ccap ? k->ccap : 1024;
    while (cap < k->clen + n) cap *= 2;
    char *nb = realloc(k->cbuf, cap);
    if (nb == NULL) die("out of memory");
    k->cbuf = nb;
    k->ccap = (uint32_t)cap;
  }
  memcpy(k->cbuf + k->clen, p, n);
  k->clen += (uint32_t)n;
}

static void start_connect(child_t *c, long i) {
  conn_t *k = &c->conns[i];
  const opts_t *o = c->o;
  long g = c->first + i;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    k->state = ST_CLOSED;
    c->st.failed++;
    c->st.resolved++;
    c->status_dirty = 1;
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in src = {.sin_family = AF_INET};
  inet_pton(AF_INET, o->src, &src.sin_addr);
  src.sin_addr.s_addr = htonl(ntohl(src.sin_addr.s_addr) + (uint32_t)(g / STREAMS_PER_SRC));
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
  inet_pton(AF_INET, o->host, &dst.sin_addr);
  k->fd = fd;
  k->state = ST_CONNECTING;
  c->inflight++;
  if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
      (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS)) {
    conn_close(c, k, 1);
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
  if (epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &ev) != 0) conn_close(c, k, 1);
}

static void on_connected(child_t *c, conn_t *k, uint32_t i) {
  int err = 0;
  socklen_t el = sizeof err;
  if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
    conn_close(c, k, 1);
    return;
  }
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
                   "User-Agent: statecast-loadgen\r\n\r\n",
                   c->o->path, c->o->host, c->o->port);
  if (n <= 0 || (size_t)n >= sizeof req || write(k->fd, req, (size_t)n) != n) {
    conn_close(c, k, 1);
    return;
  }
  k->state = ST_HEADERS;
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
  if (epoll_ctl(c->ep, EPOLL_CTL_MOD, k->fd, &ev) != 0) conn_close(c, k, 1);
}

static void stream_up(child_t *c, conn_t *k) {
  if (k->counted_up) return;
  k->counted_up = 1;
  c->inflight--;
  c->st.resolved++;
  c->status_dirty = 1;
}

/* Digits at p (up to end) as an unsigned number; *ok = 0 if none. */
static uint64_t parse_uint(const char *p, const char *end, int *ok) {
  uint64_t v = 0;
  const char *s = p;
  while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
  *ok = p > s;
  return v;
}

/* Value of key (e.g. "\"bk\":") expected right at p, else searched in [from, end). */
static uint64_t find_field(const char **pp, const char *from, const char *end, const char *key, size_t klen,
                           int *ok) {
  const char *p = *pp;
  if (!(p + klen <= end && *p == ',' && memcmp(p + 1, key, klen) == 0)) {
    p = memmem(from, (size_t)(end - from), key, klen);
    if (p == NULL) {
      *ok = 0;
      return 0;
    }
    p -= 1; /* pretend there was a comma before it */
  }
  p += 1 + klen;
  uint64_t v = parse_uint(p, end, ok);
  while (p < end && *p >= '0' && *p <= '9') p++;
  *pp = p;
  return v;
}

static void on_sample(child_t *c, uint32_t ci, uint64_t k, uint64_t v, int64_t bt, int64_t now) {
  if (!c->measuring || bt < c->t_start) {
    c->r.old_events++;
    return;
  }
  conn_t *kc = &c->conns[ci];
  if (!kc->measured || k >= c->topics || v == 0) {
    c->r.unparsed++;
    return;
  }
  c->r.events++;
  bench_hist_add(&c->r.delay, now - bt);
  size_t slot = (size_t)ci * c->topics + (size_t)k;
  uint32_t u = c->last_v[slot];
  if (v <= u) {
    c->r.dups++;
    return;
  }
  /* Stale since version u+1 was published (the schedule is fixed per topic). */
  int64_t t_pub = bt - (int64_t)(v - u - 1) * c->period_us;
  bench_hist_add(&c->r.stale, now - t_pub);
  c->last_v[slot] = (uint32_t)v;
  c->seen[slot]++;
  uint64_t m = (v - 1) * c->topics + k;
  if (m < c->fan_cap) {
    if (now - bt > c->fan_max[m]) c->fan_max[m] = now - bt;
    c->fan_cnt[m]++;
  }
  if (c->final_known && u < c->vfinal[k] && v >= c->vfinal[k] && c->behind > 0) c->behind--;
}

/* One complete SSE event e[0..len), ending in "\n\n". */
static void on_event(child_t *c, uint32_t ci, const char *e, size_t len, int64_t now) {
  conn_t *k = &c->conns[ci];
  if (len == 0 || e[0] == ':') return; /* comment (heartbeat, Nchan's ": hi") */
  const char *end = e + len;
  const char *bt = memmem(e, len, "\"bt\":", 5);
  if (bt == NULL) {
    if (c->measuring && memmem(e, len, "event: sync", 11) != NULL) c->r.syncs_window++;
    if (!k->synced && memmem(e, len, "event: sync", 11) != NULL) {
      k->synced = 1;
      c->st.synced++;
      c->status_dirty = 1;
      if (c->o->expect_sync) stream_up(c, k);
    }
    return;
  }
  int ok1, ok2, ok3;
  const char *p = bt + 5;
  uint64_t t = parse_uint(p, end, &ok1);
  while (p < end && *p >= '0' && *p <= '9') p++;
  uint64_t tk = find_field(&p, e, end, "\"bk\":", 5, &ok2);
  uint64_t tv = find_field(&p, e, end, "\"bv\":", 5, &ok3);
  if (!(ok1 && ok2 && ok3)) {
    c->r.unparsed++;
    return;
  }
  on_sample(c, ci, tk, tv, (int64_t)t, now);
}

/* De-chunked body bytes p[0..n): cut events at "\n\n", carrying a partial one. */
static void on_body(child_t *c, uint32_t ci, const char *p, size_t n, int64_t now) {
  conn_t *k = &c->conns[ci];
  if (n == 0) return;
  if (k->clen > 0) {
    const char *nn;
    size_t take;
    if (k->cbuf[k->clen - 1] == '\n' && p[0] == '\n') {
      take = 1;
    } else {
      nn = memmem(p, n, "\n\n", 2);
      if (nn == NULL) {
        carry_append(k, p, n);
        return;
      }
      take = (size_t)(nn - p) + 2;
    }
    carry_append(k, p, take);
    on_event(c, ci, k->cbuf, k->clen, now);
    if (k->state != ST_STREAMING) return;
    k->clen = 0;
    p += take;
    n -= take;
  }
  while (n > 0) {
    const char *nn = memmem(p, n, "\n\n", 2);
    if (nn == NULL) {
      carry_append(k, p, n);
      return;
    }
    size_t len = (size_t)(nn - p) + 2;
    on_event(c, ci, p, len, now);
    p += len;
    n -= len;
  }
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Remove the chunk framing of p[0..n) in place; returns the body length or
 * -1 on a framing error. The end chunk closes the stream (returns -2 after
 * the body before it was handed on... simplified: marks CS_DONE). */
static long dechunk(conn_t *k, char *p, size_t n) {
  char *in = p, *end = p + n, *out = p;
  while (in < end) {
    switch (k->cst) {
    case CS_SIZE: {
      char ch = *in++;
      int h = hexval(ch);
      if (h >= 0) {
        if (k->crem > (UINT32_MAX >> 4)) return -1;
        k->crem = k->crem * 16 + (uint32_t)h;
      } else if (ch == '\r') {
        k->cst = CS_SIZE_LF;
      } else if (ch == ';') {
        k->cst = CS_EXT;
      } else {
        return -1;
      }
      break;
    }
    case CS_EXT:
      if (*in++ == '\r') k->cst = CS_SIZE_LF;
      break;
    case CS_SIZE_LF:
      if (*in++ != '\n') return -1;
      k->cst = k->crem == 0 ? CS_DONE : CS_DATA;
      break;
    case CS_DATA: {
      size_t take = (size_t)(end - in);
      if (take > k->crem) take = k->crem;
      if (out != in) memmove(out, in, take);
      out += take;
      in += take;
      k->crem -= (uint32_t)take;
      if (k->crem == 0) k->cst = CS_DATA_CR;
      break;
    }
    case CS_DATA_CR:
      if (*in++ != '\r') return -1;
      k->cst = CS_DATA_LF;
      break;
    case CS_DATA_LF:
      if (*in++ != '\n') return -1;
      k->cst = CS_SIZE;
      k->crem = 0;
      break;
    case CS_DONE:
      return out - p;
    }
  }
  return out - p;
}

static void on_stream_bytes(child_t *c, uint32_t ci, char *p, size_t n, int64_t now) {
  conn_t *k = &c->conns[ci];
  if (k->chunked) {
    long m = dechunk(k, p, n);
    if (m < 0) {
      c->r.unparsed++;
      conn_close(c, k, 1);
      return;
    }
    on_body(c, ci, p, (size_t)m, now);
    if (k->state == ST_STREAMING && k->cst == CS_DONE) conn_close(c, k, 0);
  } else {
    on_body(c, ci, p, n, now);
  }
}

static void on_header_bytes(child_t *c, uint32_t ci, char *p, size_t n, int64_t now) {
  conn_t *k = &c->conns[ci];
  uint32_t before = k->clen;
  carry_append(k, p, n);
  char *h = memmem(k->cbuf, k->clen, "\r\n\r\n", 4);
  if (h == NULL) {
    if (k->clen > HDR_MAX) conn_close(c, k, 1);
    return;
  }
  size_t hlen = (size_t)(h - k->cbuf) + 4;
  int status = 0;
  if (k->clen >= 12 && memcmp(k->cbuf, "HTTP/1.", 7) == 0) status = atoi(k->cbuf + 9);
  if (status != 200) {
    c->st.st_non200++;
    conn_close(c, k, 1);
    return;
  }
  /* Transfer-Encoding: chunked, case-insensitively, within the head. */
  k->chunked = 0;
  for (char *q = k->cbuf; q + 26 <= k->cbuf + hlen; q++) {
    if ((*q == 'T' || *q == 't') && strncasecmp(q, "transfer-encoding:", 18) == 0) {
      char *eol = memmem(q, hlen - (size_t)(q - k->cbuf), "\r\n", 2);
      for (char *r = q + 18; eol && r + 7 <= eol; r++)
        if (strncasecmp(r, "chunked", 7) == 0) k->chunked = 1;
      break;
    }
  }
  k->state = ST_STREAMING;
  k->cst = CS_SIZE;
  k->crem = 0;
  k->clen = 0;
  c->st.connected++;
  c->status_dirty = 1;
  if (!c->o->expect_sync) stream_up(c, k);
  size_t off = hlen - before; /* the head ended inside this read */
  if (off < n) on_stream_bytes(c, ci, p + off, n - off, now);
}

static void on_readable(child_t *c, uint32_t ci) {
  conn_t *k = &c->conns[ci];
  ssize_t n = read(k->fd, c->rbuf, RBUF_SIZE);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    conn_close(c, k, 1);
    return;
  }
  if (n == 0) {
    conn_close(c, k, 0);
    return;
  }
  c->r.bytes += (uint64_t)n;
  int64_t now = realtime_us();
  if (k->state == ST_HEADERS) on_header_bytes(c, ci, c->rbuf, (size_t)n, now);
  else on_stream_bytes(c, ci, c->rbuf, (size_t)n, now);
}

static void child_start(child_t *c, const start_msg_t *s) {
  c->t_start = s->t_start_us;
  c->period_us = s->period_us;
  c->topics = s->topics;
  c->fan_cap = s->fan_cap;
  c->last_v = xcalloc((size_t)c->n * c->topics, sizeof *c->last_v);
  c->seen = xcalloc((size_t)c->n * c->topics, sizeof *c->seen);
  c->fan_max = xcalloc(c->fan_cap, sizeof *c->fan_max);
  c->fan_cnt = xcalloc(c->fan_cap, sizeof *c->fan_cnt);
  for (long i = 0; i < c->n; i++)
    if (c->conns[i].state == ST_STREAMING) {
      c->conns[i].measured = 1;
      c->r.streams_measured++;
    }
  /* Streams still connecting now are given up: they would not be measured. */
  for (long i = 0; i < c->n; i++)
    if (c->conns[i].state == ST_CONNECTING || c->conns[i].state == ST_HEADERS) conn_close(c, &c->conns[i], 1);
  c->next_connect = c->n;
  c->cpu_start = self_cpu_us();
  c->measuring = 1;
}

static void child_final(child_t *c, const char *payload, size_t len) {
  if (len != (size_t)c->topics * (sizeof(uint32_t) + sizeof(int64_t))) exit(4);
  c->vfinal = xcalloc(c->topics, sizeof *c->vfinal);
  c->btfinal = xcalloc(c->topics, sizeof *c->btfinal);
  memcpy(c->vfinal, payload, c->topics * sizeof(uint32_t));
  memcpy(c->btfinal, payload + c->topics * sizeof(uint32_t), c->topics * sizeof(int64_t));
  c->behind = 0;
  for (long i = 0; i < c->n; i++) {
    if (!c->conns[i].measured) continue;
    for (uint32_t k = 0; k < c->topics; k++)
      if (c->last_v[(size_t)i * c->topics + k] < c->vfinal[k]) c->behind++;
  }
  c->final_known = 1;
}

static void child_stop(child_t *c, const stop_msg_t *s) {
  result_msg_t *r = &c->r;
  int debug_left = 20;
  r->cpu_us = self_cpu_us() - c->cpu_start;
  r->connected = c->st.connected;
  r->failed = c->st.failed;
  r->disconnected = c->st.disconnected;
  r->non200 = c->st.st_non200;
  for (long i = 0; i < c->n; i++) {
    if (!c->conns[i].measured) continue;
    for (uint32_t k = 0; k < c->topics; k++) {
      size_t slot = (size_t)i * c->topics + k;
      r->seen_versions += c->seen[slot];
      uint32_t u = c->last_v[slot];
      if (c->vfinal && c->seen[slot] < c->vfinal[k] && getenv("STATECAST_LOADGEN_DEBUG") && debug_left-- > 0)
        fprintf(stderr, "loadgen: stream %ld topic %u: saw %u of %u versions, last %u, state %d\n", c->first + i, k,
                c->seen[slot], c->vfinal[k], u, c->conns[i].state);
      if (c->vfinal && u < c->vfinal[k]) {
        /* Still stale at the end: open since u+1 was published. */
        int64_t t_pub = c->btfinal[k] - (int64_t)(c->vfinal[k] - u - 1) * c->period_us;
        bench_hist_add(&r->stale, s->t_end_us - t_pub);
        r->open_stale++;
      }
    }
  }
  uint32_t nfan = c->fan_cap;
  while (nfan > 0 && c->fan_cnt[nfan - 1] == 0) nfan--;
  r->nfan = nfan;
  if (send_msg(c->up_out, M_RESULT, r, sizeof *r, NULL, 0) != 0) exit(3);
  if (nfan && (write_all(c->up_out, c->fan_max, nfan * sizeof(int64_t)) != 0 ||
               write_all(c->up_out, c->fan_cnt, nfan * sizeof(uint32_t)) != 0))
    exit(3);
}

static int child_ctl(child_t *c) {
  msg_hdr_t h;
  if (read_all(c->ctl_in, &h, sizeof h) != 0) exit(0); /* parent gone */
  char *payload = xcalloc(h.len + 1, 1);
  if (h.len && read_all(c->ctl_in, payload, h.len) != 0) exit(0);
  int done = 0;
  if (h.type == C_START && h.len == sizeof(start_msg_t)) child_start(c, (const start_msg_t *)payload);
  else if (h.type == C_FINAL) child_final(c, payload, h.len);
  else if (h.type == C_STOP && h.len == sizeof(stop_msg_t)) {
    child_stop(c, (const stop_msg_t *)payload);
    done = 1;
  }
  free(payload);
  return done;
}

static void child_run(const opts_t *o, int idx, long first, long n, int ctl_in, int up_out) {
  child_t c0 = {0}, *c = &c0;
  c->o = o;
  c->idx = idx;
  c->first = first;
  c->n = n;
  c->ctl_in = ctl_in;
  c->up_out = up_out;
  c->conns = xcalloc((size_t)n, sizeof *c->conns);
  c->rbuf = malloc(RBUF_SIZE);
  if (c->rbuf == NULL) die("out of memory");
  c->ep = epoll_create1(EPOLL_CLOEXEC);
  if (c->ep < 0) die("epoll_create1: %s", strerror(errno));
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = CTRL_TAG};
  if (epoll_ctl(c->ep, EPOLL_CTL_ADD, ctl_in, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
  c->deadline_mono = mono_us() + (int64_t)o->connect_timeout_s * 1000000;
  struct epoll_event evs[512];
  child_status(c, 1);
  for (;;) {
    while (c->next_connect < c->n && c->inflight < o->connect_window) start_connect(c, c->next_connect++);
    int timeout = c->measuring ? 100 : 20;
    int ne = epoll_wait(c->ep, evs, 512, timeout);
    if (ne < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < ne; i++) {
      uint32_t ci = evs[i].data.u32;
      if (ci == CTRL_TAG) {
        if (child_ctl(c)) return;
        continue;
      }
      conn_t *k = &c->conns[ci];
      if (k->state == ST_CONNECTING) {
        if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c, k, ci);
      } else if (k->state == ST_HEADERS || k->state == ST_STREAMING) {
        on_readable(c, ci);
      }
    }
    if (!c->measuring && mono_us() > c->deadline_mono) {
      for (long i = 0; i < c->n; i++) {
        conn_t *k = &c->conns[i];
        if (k->state == ST_IDLE) {
          k->state = ST_CLOSED;
          c->st.failed++;
          c->st.resolved++;
          c->status_dirty = 1;
        } else if (k->state == ST_CONNECTING || k->state == ST_HEADERS) {
          conn_close(c, k, 1);
        } else if (k->state == ST_STREAMING && !k->counted_up) {
          stream_up(c, k); /* connected but never synced: counts as up, not synced */
        }
      }
      c->next_connect = c->n;
    }
    if (!c->measuring) child_status(c, 0);
    if (c->final_known && !c->caught_up_sent && c->behind == 0) {
      c->caught_up_sent = 1;
      if (send_msg(c->up_out, M_CAUGHT_UP, NULL, 0, NULL, 0) != 0) exit(3);
    }
  }
}

/* ---- publishers ------------------------------------------------------------ */

typedef struct publisher {
  int kind; /* 0 none, 1 redis, 2 http */
  char host[128];
  int port;
  char prefix[512];
  redisContext *rc;
  int fd;
  char rbuf[8192];
} publisher_t;

static void pub_init(publisher_t *p, const char *url) {
  memset(p, 0, sizeof *p);
  p->fd = -1;
  if (url == NULL) return;
  const char *rest;
  if (strncmp(url, "redis://", 8) == 0) {
    p->kind = 1;
    rest = url + 8;
  } else if (strncmp(url, "http://", 7) == 0) {
    p->kind = 2;
    rest = url + 7;
  } else {
    die("--pub: expected redis://HOST:PORT or http://HOST:PORT/PREFIX");
  }
  const char *colon = strchr(rest, ':');
  if (colon == NULL || (size_t)(colon - rest) >= sizeof p->host) die("--pub: no port in %s", url);
  memcpy(p->host, rest, (size_t)(colon - rest));
  p->port = atoi(colon + 1);
  const char *slash = strchr(colon, '/');
  snprintf(p->prefix, sizeof p->prefix, "%s", slash ? slash : "/");
  if (p->port <= 0) die("--pub: bad port in %s", url);
}

static int http_connect(publisher_t *p) {
  if (p->fd >= 0) return 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
  inet_pton(AF_INET, p->host, &a.sin_addr);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  p->fd = fd;
  return 0;
}

/* One POST with keep-alive; reads the whole answer. 0 on 2xx. */
static int http_post_once(publisher_t *p, const char *topic, const char *body, size_t blen) {
  if (http_connect(p) != 0) return -1;
  char head[1024];
  int hn = snprintf(head, sizeof head,
                    "POST %s%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nAccept: text/plain\r\n"
                    "Content-Length: %zu\r\n\r\n",
                    p->prefix, topic, p->host, p->port, blen);
  struct iovec iov[2] = {{head, (size_t)hn}, {(void *)body, blen}};
  size_t total = (size_t)hn + blen, done = 0;
  while (done < total) {
    ssize_t n = writev(p->fd, iov, 2);
    if (n <= 0) return -1;
    done += (size_t)n;
    size_t adv = (size_t)n;
    for (int i = 0; i < 2 && adv; i++) {
      size_t t = adv < iov[i].iov_len ? adv : iov[i].iov_len;
      iov[i].iov_base = (char *)iov[i].iov_base + t;
      iov[i].iov_len -= t;
      adv -= t;
    }
  }
  size_t have = 0;
  char *h = NULL;
  while (h == NULL) {
    if (have == sizeof p->rbuf - 1) return -1;
    ssize_t n = read(p->fd, p->rbuf + have, sizeof p->rbuf - 1 - have);
    if (n <= 0) return -1;
    have += (size_t)n;
    p->rbuf[have] = '\0';
    h = strstr(p->rbuf, "\r\n\r\n");
  }
  int status = atoi(p->rbuf + 9);
  long clen = 0;
  for (char *q = p->rbuf; q < h; q++)
    if ((*q == 'C' || *q == 'c') && strncasecmp(q, "content-length:", 15) == 0) clen = atol(q + 15);
  size_t body_have = have - (size_t)(h + 4 - p->rbuf);
  while ((long)body_have < clen) {
    ssize_t n = read(p->fd, p->rbuf, sizeof p->rbuf);
    if (n <= 0) return -1;
    body_have += (size_t)n;
  }
  if (strcasestr(p->rbuf, "connection: close") != NULL) {
    close(p->fd);
    p->fd = -1;
  }
  return status >= 200 && status < 300 ? 0 : -2;
}

static int redis_connect(publisher_t *p) {
  if (p->rc != NULL) return 0;
  struct timeval tv = {5, 0};
  p->rc = redisConnectWithTimeout(p->host, p->port, tv);
  if (p->rc == NULL || p->rc->err) {
    if (p->rc) redisFree(p->rc);
    p->rc = NULL;
    return -1;
  }
  redisSetTimeout(p->rc, tv);
  return 0;
}

/* Publish body as topic's state; retries once after a broken connection. */
static int pub_send(publisher_t *p, const char *topic, const char *body, size_t blen) {
  for (int attempt = 0; attempt < 2; attempt++) {
    if (p->kind == 1) {
      if (redis_connect(p) != 0) continue;
      redisReply *r = redisCommand(p->rc, "XADD statecast:inbox * topic %s data %b", topic, body, blen);
      if (r == NULL) {
        redisFree(p->rc);
        p->rc = NULL;
        continue;
      }
      int ok = r->type == REDIS_REPLY_STRING;
      if (!ok) fprintf(stderr, "statecast-loadgen: XADD: %s\n", r->type == REDIS_REPLY_ERROR ? r->str : "?");
      freeReplyObject(r);
      return ok ? 0 : -1;
    }
    int rc = http_post_once(p, topic, body, blen);
    if (rc == 0) return 0;
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
    if (rc == -2) return -1;
  }
  return -1;
}

/* The data of one message, exactly `size` bytes when size allows. */
static size_t make_body(char *buf, size_t cap, long size, int64_t bt, long k, long v) {
  int n = snprintf(buf, cap, "{\"bt\":%" PRId64 ",\"bk\":%ld,\"bv\":%ld,\"pad\":\"", bt, k, v);
  size_t used = (size_t)n + 2;
  size_t pad = (size_t)size > used ? (size_t)size - used : 0;
  if ((size_t)n + pad + 3 > cap) pad = cap - (size_t)n - 3;
  memset(buf + n, 'x', pad);
  memcpy(buf + n + pad, "\"}", 3);
  return (size_t)n + pad + 2;
}

static FILE *out_file;

/* One key=value result line on stdout and in --out. */
__attribute__((format(printf, 1, 2))) static void result(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  if (out_file) {
    va_start(ap, fmt);
    vfprintf(out_file, fmt, ap);
    va_end(ap);
  }
}

/* ---- fill mode -------------------------------------------------------------- */

static int run_fill(const opts_t *o) {
  publisher_t p;
  pub_init(&p, o->pub);
  if (p.kind != 1 || redis_connect(&p) != 0) die("--fill needs a reachable --pub redis://HOST:PORT");
  redisReply *r = redisCommand(p.rc, "INCRBY statecast:seq %ld", o->fill);
  if (r == NULL || r->type != REDIS_REPLY_INTEGER) die("INCRBY statecast:seq failed");
  long long last = r->integer, base = last - o->fill;
  freeReplyObject(r);
  char epoch[17];
  srand((unsigned)realtime_us());
  for (int i = 0; i < 16; i++) epoch[i] = "0123456789abcdef"[rand() % 16];
  epoch[16] = '\0';
  r = redisCommand(p.rc, "SET statecast:epoch %s NX", epoch);
  freeReplyObject(r);
  size_t cap = (size_t)o->fill_bytes + 256;
  char *body = xcalloc(cap, 1);
  int64_t ts_ms = realtime_us() / 1000;
  int64_t t0 = mono_us();
  const long batch = 1000;
  for (long i = 0; i < o->fill; i += batch) {
    long end = i + batch < o->fill ? i + batch : o->fill;
    for (long j = i; j < end; j++) {
      char topic[256], key[300], seq[32], ts[32];
      snprintf(topic, sizeof topic, "%s%ld", o->fill_prefix, j);
      snprintf(key, sizeof key, "state:{%s}", topic);
      snprintf(seq, sizeof seq, "%lld", base + j + 1);
      snprintf(ts, sizeof ts, "%" PRId64, ts_ms);
      size_t bl = make_body(body, cap, o->fill_bytes, 0, j, 0);
      redisAppendCommand(p.rc, "HSET %s seq %s ts %s data %b", key, seq, ts, body, bl);
      redisAppendCommand(p.rc, "ZADD statecast:index %s %s", seq, topic);
    }
    for (long j = i; j < end; j++)
      for (int q = 0; q < 2; q++) {
        void *rep;
        if (redisGetReply(p.rc, &rep) != REDIS_OK) die("fill: redis: %s", p.rc->errstr);
        redisReply *rr = rep;
        if (rr->type == REDIS_REPLY_ERROR) die("fill: redis: %s", rr->str);
        freeReplyObject(rr);
      }
  }
  double secs = (double)(mono_us() - t0) / 1e6;
  result("fill_topics=%ld\nfill_bytes=%ld\nfill_seconds=%.2f\n", o->fill, o->fill_bytes, secs);
  fprintf(stderr, "filled %ld topics of %ld bytes in %.2f s\n", o->fill, o->fill_bytes, secs);
  redisFree(p.rc);
  free(body);
  return 0;
}

/* ---- parent ------------------------------------------------------------------ */

typedef struct kid {
  pid_t pid;
  int ctl_out, up_in;
  status_msg_t st;
  int caught_up, done;
  result_msg_t r;
  int64_t *fan_max;
  uint32_t *fan_cnt;
} kid_t;

/* Read one message from a child into kid; 0 ok, -1 closed. */
static int kid_read(kid_t *k) {
  msg_hdr_t h;
  if (read_all(k->up_in, &h, sizeof h) != 0) return -1;
  if (h.type == M_STATUS && h.len == sizeof(status_msg_t)) return read_all(k->up_in, &k->st, sizeof k->st);
  if (h.type == M_CAUGHT_UP && h.len == 0) {
    k->caught_up = 1;
    return 0;
  }
  if (h.type == M_RESULT && h.len == sizeof(result_msg_t)) {
    if (read_all(k->up_in, &k->r, sizeof k->r) != 0) return -1;
    k->fan_max = xcalloc(k->r.nfan, sizeof *k->fan_max);
    k->fan_cnt = xcalloc(k->r.nfan, sizeof *k->fan_cnt);
    if (k->r.nfan && (read_all(k->up_in, k->fan_max, k->r.nfan * sizeof(int64_t)) != 0 ||
                      read_all(k->up_in, k->fan_cnt, k->r.nfan * sizeof(uint32_t)) != 0))
      return -1;
    k->done = 1;
    return 0;
  }
  return -1;
}

/* Wait up to timeout_ms for messages from the children; returns when
 * pred() holds or the time is up. */
static void kids_pump(kid_t *kids, int nk, int64_t until_mono, int (*pred)(kid_t *, int)) {
  struct pollfd pf[MAX_PROCS];
  while (!pred(kids, nk)) {
    int64_t left = until_mono - mono_us();
    if (left <= 0) return;
    for (int i = 0; i < nk; i++) pf[i] = (struct pollfd){.fd = kids[i].done ? -1 : kids[i].up_in, .events = POLLIN};
    int n = poll(pf, (nfds_t)nk, (int)(left / 1000 + 1));
    if (n < 0 && errno != EINTR) die("poll: %s", strerror(errno));
    for (int i = 0; i < nk; i++)
      if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        if (kid_read(&kids[i]) != 0) die("load process %d died", (int)kids[i].pid);
      }
  }
}

static long g_streams;
static int g_expect_sync;

static void kids_sum(kid_t *kids, int nk, status_msg_t *s) {
  memset(s, 0, sizeof *s);
  for (int i = 0; i < nk; i++) {
    s->connected += kids[i].st.connected;
    s->failed += kids[i].st.failed;
    s->synced += kids[i].st.synced;
    s->disconnected += kids[i].st.disconnected;
    s->resolved += kids[i].st.resolved;
    s->st_non200 += kids[i].st.st_non200;
  }
}

static int all_resolved(kid_t *kids, int nk) {
  status_msg_t s;
  kids_sum(kids, nk, &s);
  return s.resolved >= (uint64_t)g_streams;
}

static int all_caught_up(kid_t *kids, int nk) {
  for (int i = 0; i < nk; i++)
    if (!kids[i].caught_up) return 0;
  return 1;
}

static int all_done(kid_t *kids, int nk) {
  for (int i = 0; i < nk; i++)
    if (!kids[i].done) return 0;
  return 1;
}

static int never(kid_t *kids, int nk) {
  (void)kids;
  (void)nk;
  return 0;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  opts_t o;
  parse_opts(&o, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (o.out) {
    out_file = fopen(o.out, "w");
    if (out_file == NULL) die("%s: %s", o.out, strerror(errno));
  }
  if (o.fill) return run_fill(&o);
  g_streams = o.streams;
  g_expect_sync = o.expect_sync;

  const proc_label_t *server = o.nlabels ? &o.labels[0] : NULL;
  long rss0 = server ? label_rss_kb(server) : 0;

  /* Fork the load processes. */
  kid_t kids[MAX_PROCS];
  memset(kids, 0, sizeof kids);
  int nk = o.streams > 0 ? o.procs : 0;
  long per = nk ? (o.streams + nk - 1) / nk : 0;
  for (int i = 0; i < nk; i++) {
    int down[2], up[2];
    if (pipe2(down, O_CLOEXEC) != 0 || pipe2(up, O_CLOEXEC) != 0) die("pipe: %s", strerror(errno));
    long first = (long)i * per, n = first + per <= o.streams ? per : o.streams - first;
    if (n < 0) n = 0;
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
      close(down[1]);
      close(up[0]);
      for (int j = 0; j < i; j++) {
        close(kids[j].ctl_out);
        close(kids[j].up_in);
      }
      if (out_file) fclose(out_file);
      out_file = NULL;
      child_run(&o, i, first, n, down[0], up[1]);
      _exit(0);
    }
    close(down[0]);
    close(up[1]);
    kids[i] = (kid_t){.pid = pid, .ctl_out = down[1], .up_in = up[0]};
  }

  /* Connect phase. */
  int64_t t_conn0 = mono_us();
  int64_t conn_deadline = t_conn0 + (int64_t)o.connect_timeout_s * 1000000 + 5000000;
  status_msg_t s;
  int64_t last_print = 0;
  while (!all_resolved(kids, nk) && mono_us() < conn_deadline) {
    kids_pump(kids, nk, mono_us() + 1000000, all_resolved);
    kids_sum(kids, nk, &s);
    if (mono_us() - last_print > 2000000) {
      last_print = mono_us();
      fprintf(stderr, "  streams: %" PRIu64 " up, %" PRIu64 " synced, %" PRIu64 " failed of %ld\n", s.connected,
              s.synced, s.failed, o.streams);
    }
  }
  double connect_s = (double)(mono_us() - t_conn0) / 1e6;
  kids_sum(kids, nk, &s);
  fprintf(stderr, "  streams: %" PRIu64 " up (%" PRIu64 " synced), %" PRIu64 " failed of %ld in %.1f s\n", s.connected,
          s.synced, s.failed, o.streams, connect_s);
  if (o.settle_ms + o.hold_ms) usleep((useconds_t)(o.settle_ms + o.hold_ms) * 1000);
  long rss_idle = server ? label_rss_kb(server) : 0;
  kids_pump(kids, nk, mono_us() + 300000, never); /* the latest status of every child */
  kids_sum(kids, nk, &s);
  uint64_t up_streams = s.connected - s.disconnected;

  /* The window. */
  publisher_t pub;
  pub_init(&pub, o.pub);
  long m_total = 0;
  if (pub.kind) m_total = o.count ? o.count : (long)(o.rate * o.duration + 0.5);
  long topics = o.topics;
  int64_t period_us = (int64_t)((double)topics * 1e6 / o.rate + 0.5);
  int64_t *bts = xcalloc((size_t)m_total + 1, sizeof *bts);
  int64_t t_start = realtime_us();
  start_msg_t sm = {t_start, period_us, (uint32_t)topics,
                    (uint32_t)(o.fan_cap < m_total ? o.fan_cap : m_total)};
  for (int i = 0; i < nk; i++)
    if (send_msg(kids[i].ctl_out, C_START, &sm, sizeof sm, NULL, 0) != 0) die("load process %d died", i);
  int64_t cpu0[MAX_LABELS];
  for (int i = 0; i < o.nlabels; i++) cpu0[i] = label_cpu_us(&o.labels[i]);
  int64_t self0 = self_cpu_us();
  int64_t mtask0, mirq0;
  machine_cpu_us(&mtask0, &mirq0);
  long rss_start = server ? label_rss_kb(server) : 0;
  int64_t t0 = mono_us() + 200000;
  int64_t late_max = 0;
  long pub_err = 0;
  size_t bcap = (size_t)o.size + 256;
  char *body = xcalloc(bcap, 1);
  char topic[256];
  long m_planned = m_total;
  int64_t hard_end = t0 + (int64_t)((double)m_total * 1e6 / o.rate) + (int64_t)o.max_late_ms * 1000;
  for (long i = 0; i < m_total; i++) {
    int64_t due = t0 + (int64_t)((double)i * 1e6 / o.rate);
    sleep_until_mono(due);
    if (mono_us() > hard_end) { /* a back-pressured publisher: stop, judge what was sent */
      m_total = i;
      break;
    }
    int64_t late = mono_us() - due;
    if (late > late_max) late_max = late;
    long k = i % topics, v = i / topics + 1;
    snprintf(topic, sizeof topic, "%s%ld", o.topic_prefix, k);
    int64_t bt = realtime_us();
    bts[i] = bt;
    size_t bl = make_body(body, bcap, o.size, bt, k, v);
    if (pub_send(&pub, topic, body, bl) != 0) pub_err++;
  }
  double window_s = (double)(mono_us() - t0) / 1e6;
  /* Tell the children the newest version of every topic and its publish time. */
  if (m_total > 0) {
    size_t fl = (size_t)topics * (sizeof(uint32_t) + sizeof(int64_t));
    char *fin = xcalloc(fl, 1);
    uint32_t *vf = (uint32_t *)fin;
    int64_t *bf = xcalloc((size_t)topics, sizeof *bf);
    for (long k = 0; k < topics; k++) {
      long v = m_total / topics + (k < m_total % topics ? 1 : 0);
      vf[k] = (uint32_t)v;
      bf[k] = v > 0 ? bts[(v - 1) * topics + k] : t_start;
    }
    memcpy(fin + topics * sizeof(uint32_t), bf, (size_t)topics * sizeof(int64_t));
    for (int i = 0; i < nk; i++)
      if (send_msg(kids[i].ctl_out, C_FINAL, fin, fl, NULL, 0) != 0) die("load process %d died", i);
    free(fin);
    free(bf);
    kids_pump(kids, nk, mono_us() + (int64_t)o.drain_ms * 1000, all_caught_up);
  }
  int caught_up = all_caught_up(kids, nk);
  int64_t t_end = realtime_us();
  int64_t cpu1[MAX_LABELS];
  for (int i = 0; i < o.nlabels; i++) cpu1[i] = label_cpu_us(&o.labels[i]);
  int64_t self1 = self_cpu_us();
  int64_t mtask1, mirq1;
  machine_cpu_us(&mtask1, &mirq1);
  long rss_end = server ? label_rss_kb(server) : 0;
  double measured_s = (double)(t_end - t_start) / 1e6;
  stop_msg_t stop = {t_end};
  for (int i = 0; i < nk; i++)
    if (send_msg(kids[i].ctl_out, C_STOP, &stop, sizeof stop, NULL, 0) != 0) die("load process %d died", i);
  kids_pump(kids, nk, mono_us() + 60000000, all_done);
  if (!all_done(kids, nk)) die("load processes did not report");
  for (int i = 0; i < nk; i++) {
    close(kids[i].ctl_out);
    int wst;
    waitpid(kids[i].pid, &wst, 0);
  }

  /* Aggregate. */
  result_msg_t R = {0};
  uint32_t nfan = 0;
  for (int i = 0; i < nk; i++) {
    result_msg_t *r = &kids[i].r;
    R.streams_measured += r->streams_measured;
    R.connected += r->connected;
    R.failed += r->failed;
    R.disconnected += r->disconnected;
    R.disconnected_window += r->disconnected_window;
    R.non200 += r->non200;
    R.events += r->events;
    R.dups += r->dups;
    R.seen_versions += r->seen_versions;
    R.old_events += r->old_events;
    R.unparsed += r->unparsed;
    R.bytes += r->bytes;
    R.open_stale += r->open_stale;
    R.syncs_window += r->syncs_window;
    R.cpu_us += r->cpu_us;
    bench_hist_merge(&R.delay, &r->delay);
    bench_hist_merge(&R.stale, &r->stale);
    if (r->nfan > nfan) nfan = r->nfan;
  }
  uint64_t expected = R.streams_measured * (uint64_t)m_total;
  uint64_t lost = expected > R.seen_versions ? expected - R.seen_versions : 0;
  /* Fan-out: per message, the latest arrival over all streams. */
  int64_t *fmax = xcalloc(nfan, sizeof *fmax);
  uint64_t *fcnt = xcalloc(nfan, sizeof *fcnt);
  for (int i = 0; i < nk; i++)
    for (uint32_t m = 0; m < kids[i].r.nfan; m++) {
      if (kids[i].fan_max[m] > fmax[m]) fmax[m] = kids[i].fan_max[m];
      fcnt[m] += kids[i].fan_cnt[m];
    }
  int64_t *complete = xcalloc(nfan, sizeof *complete);
  uint32_t ncomplete = 0;
  for (uint32_t m = 0; m < nfan; m++)
    if (fcnt[m] == R.streams_measured && R.streams_measured > 0) complete[ncomplete++] = fmax[m];
  qsort(complete, ncomplete, sizeof *complete, cmp_i64);
  int64_t fan_med = ncomplete ? complete[ncomplete / 2] : -1;
  if (ncomplete && ncomplete % 2 == 0) fan_med = (complete[ncomplete / 2 - 1] + complete[ncomplete / 2]) / 2;
  int64_t fan_worst = ncomplete ? complete[ncomplete - 1] : -1;
  int64_t gen_cpu = R.cpu_us + (self1 - self0);

  result("streams=%ld\n", o.streams);
  result("procs=%d\n", nk);
  result("connected=%" PRIu64 "\n", R.connected);
  result("failed=%" PRIu64 "\n", R.failed);
  result("non200=%" PRIu64 "\n", R.non200);
  result("connect_seconds=%.2f\n", connect_s);
  result("streams_measured=%" PRIu64 "\n", R.streams_measured);
  result("up_at_start=%" PRIu64 "\n", up_streams);
  result("disconnected=%" PRIu64 "\n", R.disconnected);
  result("disconnected_window=%" PRIu64 "\n", R.disconnected_window);
  result("published=%ld\n", m_total);
  result("publish_planned=%ld\n", m_planned);
  result("publish_errors=%ld\n", pub_err);
  result("publish_late_max_us=%" PRId64 "\n", late_max);
  result("rate=%g\n", o.rate);
  result("size=%ld\n", o.size);
  result("topics=%ld\n", topics);
  result("period_us=%" PRId64 "\n", period_us);
  result("window_seconds=%.2f\n", window_s);
  result("measured_seconds=%.2f\n", measured_s);
  result("caught_up=%d\n", caught_up);
  result("events=%" PRIu64 "\n", R.events);
  result("expected=%" PRIu64 "\n", expected);
  result("lost=%" PRIu64 "\n", lost);
  result("dups=%" PRIu64 "\n", R.dups);
  result("old_events=%" PRIu64 "\n", R.old_events);
  result("unparsed=%" PRIu64 "\n", R.unparsed);
  result("syncs_in_window=%" PRIu64 "\n", R.syncs_window);
  result("bytes=%" PRIu64 "\n", R.bytes);
  result("delay_p50_us=%" PRIu64 "\n", bench_hist_quantile(&R.delay, 0.50));
  result("delay_p99_us=%" PRIu64 "\n", bench_hist_quantile(&R.delay, 0.99));
  result("delay_max_us=%" PRIu64 "\n", R.delay.max);
  result("stale_samples=%" PRIu64 "\n", R.stale.n);
  result("stale_open_at_end=%" PRIu64 "\n", R.open_stale);
  result("stale_p50_us=%" PRIu64 "\n", bench_hist_quantile(&R.stale, 0.50));
  result("stale_p99_us=%" PRIu64 "\n", bench_hist_quantile(&R.stale, 0.99));
  result("stale_max_us=%" PRIu64 "\n", R.stale.max);
  result("fanout_messages=%u\n", nfan);
  result("fanout_complete=%u\n", ncomplete);
  result("fanout_median_us=%" PRId64 "\n", fan_med);
  result("fanout_max_us=%" PRId64 "\n", fan_worst);
  if (server) {
    result("rss_zero_kb=%ld\n", rss0);
    result("rss_idle_kb=%ld\n", rss_idle);
    if (o.idle_rss && up_streams > 0) {
      double per_stream = (double)(rss_idle - rss0) * 1024.0 / (double)up_streams;
      result("rss_per_stream_bytes=%.0f\n", per_stream);
      result("rss_per_stream_kib=%.2f\n", per_stream / 1024.0);
    }
    result("rss_start_kb=%ld\n", rss_start);
    result("rss_end_kb=%ld\n", rss_end);
  }
  for (int i = 0; i < o.nlabels; i++)
    result("cpu_%s_seconds=%.2f\n", o.labels[i].name, (double)(cpu1[i] - cpu0[i]) / 1e6);
  result("cpu_loadgen_seconds=%.2f\n", (double)gen_cpu / 1e6);
  /* Everything else that ran on the machine in the window: other work
   * competing for the cores makes a run untrustworthy. */
  int64_t known = gen_cpu;
  for (int i = 0; i < o.nlabels; i++) known += cpu1[i] - cpu0[i];
  result("cpu_machine_seconds=%.2f\n", (double)(mtask1 - mtask0 + mirq1 - mirq0) / 1e6);
  result("cpu_softirq_seconds=%.2f\n", (double)(mirq1 - mirq0) / 1e6);
  /* The processes' stime already holds the softirq work done on their behalf,
   * /proc/stat counts it apart: the rest is machine total minus known. */
  result("cpu_other_seconds=%.2f\n", (double)(mtask1 - mtask0 + mirq1 - mirq0 - known) / 1e6);
  result("publish_rate_achieved=%.1f\n", m_total > 0 ? (double)m_total / (window_s + 1.0 / o.rate) : 0.0);
  if (out_file) fclose(out_file);
  for (int i = 0; i < nk; i++) {
    free(kids[i].fan_max);
    free(kids[i].fan_cnt);
  }
  free(fmax);
  free(fcnt);
  free(complete);
  free(body);
  free(bts);
  if (pub.rc != NULL) redisFree(pub.rc);
  if (pub.fd >= 0) close(pub.fd);
  return 0;
}
