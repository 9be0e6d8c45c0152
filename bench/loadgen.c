/*
 * statecast-loadgen: the benchmark's load generator and publisher; this file
 * is its driver.
 *
 * The parent process forks -P children that each open their share of N SSE
 * streams (lg_stream.c). The parent is the coordinator and the publisher: it
 * waits until every stream answered 200 (and, with --expect-sync, saw
 * statecast's `event: sync`), measures the server's idle memory, then
 * publishes M messages on an absolute schedule (R per second, round-robin
 * over T topics, so each topic has the period T/R) through Redis (XADD
 * statecast:inbox, the durable path) or an HTTP POST (Nchan,
 * statecast-floor) (lg_pub.c).
 *
 * Every message's data carries "bt" (publish time, us since the epoch,
 * CLOCK_REALTIME), "bk" (topic index) and "bv" (per-topic version 1, 2,
 * ...). Per stream and topic a child keeps the last version seen and how
 * many versions it saw: loss, duplicates and staleness follow from those
 * (see bench/README.md for the definitions).
 *
 * Parent and children talk over two pipes per child with small framed
 * messages (lg_common.h); each child sends its counters and histograms up
 * at the end, and this file adds them up and prints the key=value report.
 * With --fill the binary instead writes N topics straight into Redis, laid
 * out as kv-updater commits them (docs/key-schema.md), for the start-up
 * scenario (lg_pub.c).
 */
#include "lg_common.h"
#include "lg_pub.h"
#include "lg_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 64

static void sleep_until_mono(int64_t t_us) {
  struct timespec ts = {(time_t)(t_us / 1000000), (long)(t_us % 1000000) * 1000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* ---- options ------------------------------------------------------------ */

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
  if (errno || *end || end == v || x < lo || x > hi) lg_die("%s: bad value '%s' (%ld..%ld)", opt, v, lo, hi);
  return x;
}

static double parse_double(const char *opt, const char *v, double lo, double hi) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (errno || *end || end == v || !(x >= lo && x <= hi)) lg_die("%s: bad value '%s'", opt, v);
  return x;
}

static void parse_proc(lg_opts_t *o, const char *v) {
  if (o->nlabels == LG_MAX_LABELS) lg_die("too many --proc");
  lg_proc_label_t *l = &o->labels[o->nlabels];
  const char *eq = strchr(v, '=');
  if (eq == NULL || eq == v || (size_t)(eq - v) >= sizeof l->name) lg_die("--proc: expected LABEL=PID[,PID...]");
  memcpy(l->name, v, (size_t)(eq - v));
  l->name[eq - v] = '\0';
  const char *p = eq + 1;
  while (*p) {
    char *end;
    long pid = strtol(p, &end, 10);
    if (end == p || pid <= 0 || l->npids == LG_MAX_PIDS) lg_die("--proc: bad pid list '%s'", eq + 1);
    l->pids[l->npids++] = (pid_t)pid;
    p = *end == ',' ? end + 1 : end;
    if (*end && *end != ',') lg_die("--proc: bad pid list '%s'", eq + 1);
  }
  if (l->npids == 0) lg_die("--proc: no pid");
  o->nlabels++;
}

static void parse_opts(lg_opts_t *o, int argc, char **argv) {
  *o = (lg_opts_t){.host = "127.0.0.1",
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
    if (i + 1 >= argc) lg_die("%s needs a value (see --help)", a);
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
    else lg_die("unknown option %s (see --help)", a);
  }
  if (o->fill == 0 && o->port == 0) lg_die("--port is required");
  if (o->procs == 0) o->procs = (int)((o->streams + 15999) / 16000);
  if (o->procs < 1) o->procs = 1;
  if (o->procs > o->streams && o->streams > 0) o->procs = (int)o->streams;
}

/* ---- /proc ---------------------------------------------------------------- */

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

static long label_rss_kb(const lg_proc_label_t *l) {
  long sum = 0;
  for (int i = 0; i < l->npids; i++) {
    long kb = proc_rss_kb(l->pids[i]);
    if (kb > 0) sum += kb;
  }
  return sum;
}

static int64_t label_cpu_us(const lg_proc_label_t *l) {
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

/* ---- parent ------------------------------------------------------------------ */

typedef struct kid {
  pid_t pid;
  int ctl_out, up_in;
  lg_status_msg_t st;
  int caught_up, done;
  lg_result_msg_t r;
  int64_t *fan_max;
  uint32_t *fan_cnt;
} kid_t;

/* Read one message from a child into kid; 0 ok, -1 closed. */
static int kid_read(kid_t *k) {
  lg_msg_hdr_t h;
  if (lg_read_all(k->up_in, &h, sizeof h) != 0) return -1;
  if (h.type == LG_M_STATUS && h.len == sizeof(lg_status_msg_t)) return lg_read_all(k->up_in, &k->st, sizeof k->st);
  if (h.type == LG_M_CAUGHT_UP && h.len == 0) {
    k->caught_up = 1;
    return 0;
  }
  if (h.type == LG_M_RESULT && h.len == sizeof(lg_result_msg_t)) {
    if (lg_read_all(k->up_in, &k->r, sizeof k->r) != 0) return -1;
    k->fan_max = lg_xcalloc(k->r.nfan, sizeof *k->fan_max);
    k->fan_cnt = lg_xcalloc(k->r.nfan, sizeof *k->fan_cnt);
    if (k->r.nfan && (lg_read_all(k->up_in, k->fan_max, k->r.nfan * sizeof(int64_t)) != 0 ||
                      lg_read_all(k->up_in, k->fan_cnt, k->r.nfan * sizeof(uint32_t)) != 0))
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
    int64_t left = until_mono - lg_mono_us();
    if (left <= 0) return;
    for (int i = 0; i < nk; i++) pf[i] = (struct pollfd){.fd = kids[i].done ? -1 : kids[i].up_in, .events = POLLIN};
    int n = poll(pf, (nfds_t)nk, (int)(left / 1000 + 1));
    if (n < 0 && errno != EINTR) lg_die("poll: %s", strerror(errno));
    for (int i = 0; i < nk; i++)
      if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        if (kid_read(&kids[i]) != 0) lg_die("load process %d died", (int)kids[i].pid);
      }
  }
}

static long g_streams;
static int g_expect_sync;

static void kids_sum(kid_t *kids, int nk, lg_status_msg_t *s) {
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
  lg_status_msg_t s;
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
  lg_opts_t o;
  parse_opts(&o, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (o.out) {
    lg_out_file = fopen(o.out, "w");
    if (lg_out_file == NULL) lg_die("%s: %s", o.out, strerror(errno));
  }
  if (o.fill) return lg_run_fill(&o);
  g_streams = o.streams;
  g_expect_sync = o.expect_sync;

  const lg_proc_label_t *server = o.nlabels ? &o.labels[0] : NULL;
  long rss0 = server ? label_rss_kb(server) : 0;

  /* Fork the load processes. */
  kid_t kids[MAX_PROCS];
  memset(kids, 0, sizeof kids);
  int nk = o.streams > 0 ? o.procs : 0;
  long per = nk ? (o.streams + nk - 1) / nk : 0;
  for (int i = 0; i < nk; i++) {
    int down[2], up[2];
    if (pipe2(down, O_CLOEXEC) != 0 || pipe2(up, O_CLOEXEC) != 0) lg_die("pipe: %s", strerror(errno));
    long first = (long)i * per, n = first + per <= o.streams ? per : o.streams - first;
    if (n < 0) n = 0;
    pid_t pid = fork();
    if (pid < 0) lg_die("fork: %s", strerror(errno));
    if (pid == 0) {
      close(down[1]);
      close(up[0]);
      for (int j = 0; j < i; j++) {
        close(kids[j].ctl_out);
        close(kids[j].up_in);
      }
      if (lg_out_file) fclose(lg_out_file);
      lg_out_file = NULL;
      lg_child_run(&o, i, first, n, down[0], up[1]);
      _exit(0);
    }
    close(down[0]);
    close(up[1]);
    kids[i] = (kid_t){.pid = pid, .ctl_out = down[1], .up_in = up[0]};
  }

  /* Connect phase. */
  int64_t t_conn0 = lg_mono_us();
  int64_t conn_deadline = t_conn0 + (int64_t)o.connect_timeout_s * 1000000 + 5000000;
  lg_status_msg_t s;
  int64_t last_print = 0;
  while (!all_resolved(kids, nk) && lg_mono_us() < conn_deadline) {
    kids_pump(kids, nk, lg_mono_us() + 1000000, all_resolved);
    kids_sum(kids, nk, &s);
    if (lg_mono_us() - last_print > 2000000) {
      last_print = lg_mono_us();
      fprintf(stderr, "  streams: %" PRIu64 " up, %" PRIu64 " synced, %" PRIu64 " failed of %ld\n", s.connected,
              s.synced, s.failed, o.streams);
    }
  }
  double connect_s = (double)(lg_mono_us() - t_conn0) / 1e6;
  kids_sum(kids, nk, &s);
  fprintf(stderr, "  streams: %" PRIu64 " up (%" PRIu64 " synced), %" PRIu64 " failed of %ld in %.1f s\n", s.connected,
          s.synced, s.failed, o.streams, connect_s);
  if (o.settle_ms + o.hold_ms) usleep((useconds_t)(o.settle_ms + o.hold_ms) * 1000);
  long rss_idle = server ? label_rss_kb(server) : 0;
  kids_pump(kids, nk, lg_mono_us() + 300000, never); /* the latest status of every child */
  kids_sum(kids, nk, &s);
  uint64_t up_streams = s.connected - s.disconnected;

  /* The window. */
  lg_publisher_t pub;
  lg_pub_init(&pub, o.pub);
  long m_total = 0;
  if (pub.kind) m_total = o.count ? o.count : (long)(o.rate * o.duration + 0.5);
  long topics = o.topics;
  int64_t period_us = (int64_t)((double)topics * 1e6 / o.rate + 0.5);
  int64_t *bts = lg_xcalloc((size_t)m_total + 1, sizeof *bts);
  int64_t t_start = lg_realtime_us();
  lg_start_msg_t sm = {t_start, period_us, (uint32_t)topics,
                    (uint32_t)(o.fan_cap < m_total ? o.fan_cap : m_total)};
  for (int i = 0; i < nk; i++)
    if (lg_send_msg(kids[i].ctl_out, LG_C_START, &sm, sizeof sm, NULL, 0) != 0) lg_die("load process %d died", i);
  int64_t cpu0[LG_MAX_LABELS];
  for (int i = 0; i < o.nlabels; i++) cpu0[i] = label_cpu_us(&o.labels[i]);
  int64_t self0 = lg_self_cpu_us();
  int64_t mtask0, mirq0;
  machine_cpu_us(&mtask0, &mirq0);
  long rss_start = server ? label_rss_kb(server) : 0;
  int64_t t0 = lg_mono_us() + 200000;
  int64_t late_max = 0;
  long pub_err = 0;
  size_t bcap = (size_t)o.size + 256;
  char *body = lg_xcalloc(bcap, 1);
  char topic[256];
  long m_planned = m_total;
  int64_t hard_end = t0 + (int64_t)((double)m_total * 1e6 / o.rate) + (int64_t)o.max_late_ms * 1000;
  for (long i = 0; i < m_total; i++) {
    int64_t due = t0 + (int64_t)((double)i * 1e6 / o.rate);
    sleep_until_mono(due);
    if (lg_mono_us() > hard_end) { /* a back-pressured publisher: stop, judge what was sent */
      m_total = i;
      break;
    }
    int64_t late = lg_mono_us() - due;
    if (late > late_max) late_max = late;
    long k = i % topics, v = i / topics + 1;
    snprintf(topic, sizeof topic, "%s%ld", o.topic_prefix, k);
    int64_t bt = lg_realtime_us();
    bts[i] = bt;
    size_t bl = lg_make_body(body, bcap, o.size, bt, k, v);
    if (lg_pub_send(&pub, topic, body, bl) != 0) pub_err++;
  }
  double window_s = (double)(lg_mono_us() - t0) / 1e6;
  /* Tell the children the newest version of every topic and its publish time. */
  if (m_total > 0) {
    size_t fl = (size_t)topics * (sizeof(uint32_t) + sizeof(int64_t));
    char *fin = lg_xcalloc(fl, 1);
    uint32_t *vf = (uint32_t *)fin;
    int64_t *bf = lg_xcalloc((size_t)topics, sizeof *bf);
    for (long k = 0; k < topics; k++) {
      long v = m_total / topics + (k < m_total % topics ? 1 : 0);
      vf[k] = (uint32_t)v;
      bf[k] = v > 0 ? bts[(v - 1) * topics + k] : t_start;
    }
    memcpy(fin + topics * sizeof(uint32_t), bf, (size_t)topics * sizeof(int64_t));
    for (int i = 0; i < nk; i++)
      if (lg_send_msg(kids[i].ctl_out, LG_C_FINAL, fin, fl, NULL, 0) != 0) lg_die("load process %d died", i);
    free(fin);
    free(bf);
    kids_pump(kids, nk, lg_mono_us() + (int64_t)o.drain_ms * 1000, all_caught_up);
  }
  int caught_up = all_caught_up(kids, nk);
  int64_t t_end = lg_realtime_us();
  int64_t cpu1[LG_MAX_LABELS];
  for (int i = 0; i < o.nlabels; i++) cpu1[i] = label_cpu_us(&o.labels[i]);
  int64_t self1 = lg_self_cpu_us();
  int64_t mtask1, mirq1;
  machine_cpu_us(&mtask1, &mirq1);
  long rss_end = server ? label_rss_kb(server) : 0;
  double measured_s = (double)(t_end - t_start) / 1e6;
  lg_stop_msg_t stop = {t_end};
  for (int i = 0; i < nk; i++)
    if (lg_send_msg(kids[i].ctl_out, LG_C_STOP, &stop, sizeof stop, NULL, 0) != 0) lg_die("load process %d died", i);
  kids_pump(kids, nk, lg_mono_us() + 60000000, all_done);
  if (!all_done(kids, nk)) lg_die("load processes did not report");
  for (int i = 0; i < nk; i++) {
    close(kids[i].ctl_out);
    int wst;
    waitpid(kids[i].pid, &wst, 0);
  }

  /* Aggregate. */
  lg_result_msg_t R = {0};
  uint32_t nfan = 0;
  for (int i = 0; i < nk; i++) {
    lg_result_msg_t *r = &kids[i].r;
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
  int64_t *fmax = lg_xcalloc(nfan, sizeof *fmax);
  uint64_t *fcnt = lg_xcalloc(nfan, sizeof *fcnt);
  for (int i = 0; i < nk; i++)
    for (uint32_t m = 0; m < kids[i].r.nfan; m++) {
      if (kids[i].fan_max[m] > fmax[m]) fmax[m] = kids[i].fan_max[m];
      fcnt[m] += kids[i].fan_cnt[m];
    }
  int64_t *complete = lg_xcalloc(nfan, sizeof *complete);
  uint32_t ncomplete = 0;
  for (uint32_t m = 0; m < nfan; m++)
    if (fcnt[m] == R.streams_measured && R.streams_measured > 0) complete[ncomplete++] = fmax[m];
  qsort(complete, ncomplete, sizeof *complete, cmp_i64);
  int64_t fan_med = ncomplete ? complete[ncomplete / 2] : -1;
  if (ncomplete && ncomplete % 2 == 0) fan_med = (complete[ncomplete / 2 - 1] + complete[ncomplete / 2]) / 2;
  int64_t fan_worst = ncomplete ? complete[ncomplete - 1] : -1;
  int64_t gen_cpu = R.cpu_us + (self1 - self0);

  lg_result("streams=%ld\n", o.streams);
  lg_result("procs=%d\n", nk);
  lg_result("connected=%" PRIu64 "\n", R.connected);
  lg_result("failed=%" PRIu64 "\n", R.failed);
  lg_result("non200=%" PRIu64 "\n", R.non200);
  lg_result("connect_seconds=%.2f\n", connect_s);
  lg_result("streams_measured=%" PRIu64 "\n", R.streams_measured);
  lg_result("up_at_start=%" PRIu64 "\n", up_streams);
  lg_result("disconnected=%" PRIu64 "\n", R.disconnected);
  lg_result("disconnected_window=%" PRIu64 "\n", R.disconnected_window);
  lg_result("published=%ld\n", m_total);
  lg_result("publish_planned=%ld\n", m_planned);
  lg_result("publish_errors=%ld\n", pub_err);
  lg_result("publish_late_max_us=%" PRId64 "\n", late_max);
  lg_result("rate=%g\n", o.rate);
  lg_result("size=%ld\n", o.size);
  lg_result("topics=%ld\n", topics);
  lg_result("period_us=%" PRId64 "\n", period_us);
  lg_result("window_seconds=%.2f\n", window_s);
  lg_result("measured_seconds=%.2f\n", measured_s);
  lg_result("caught_up=%d\n", caught_up);
  lg_result("events=%" PRIu64 "\n", R.events);
  lg_result("expected=%" PRIu64 "\n", expected);
  lg_result("lost=%" PRIu64 "\n", lost);
  lg_result("dups=%" PRIu64 "\n", R.dups);
  lg_result("old_events=%" PRIu64 "\n", R.old_events);
  lg_result("unparsed=%" PRIu64 "\n", R.unparsed);
  lg_result("syncs_in_window=%" PRIu64 "\n", R.syncs_window);
  lg_result("bytes=%" PRIu64 "\n", R.bytes);
  lg_result("delay_p50_us=%" PRIu64 "\n", bench_hist_quantile(&R.delay, 0.50));
  lg_result("delay_p99_us=%" PRIu64 "\n", bench_hist_quantile(&R.delay, 0.99));
  lg_result("delay_max_us=%" PRIu64 "\n", R.delay.max);
  lg_result("stale_samples=%" PRIu64 "\n", R.stale.n);
  lg_result("stale_open_at_end=%" PRIu64 "\n", R.open_stale);
  lg_result("stale_p50_us=%" PRIu64 "\n", bench_hist_quantile(&R.stale, 0.50));
  lg_result("stale_p99_us=%" PRIu64 "\n", bench_hist_quantile(&R.stale, 0.99));
  lg_result("stale_max_us=%" PRIu64 "\n", R.stale.max);
  lg_result("fanout_messages=%u\n", nfan);
  lg_result("fanout_complete=%u\n", ncomplete);
  lg_result("fanout_median_us=%" PRId64 "\n", fan_med);
  lg_result("fanout_max_us=%" PRId64 "\n", fan_worst);
  if (server) {
    lg_result("rss_zero_kb=%ld\n", rss0);
    lg_result("rss_idle_kb=%ld\n", rss_idle);
    if (o.idle_rss && up_streams > 0) {
      double per_stream = (double)(rss_idle - rss0) * 1024.0 / (double)up_streams;
      lg_result("rss_per_stream_bytes=%.0f\n", per_stream);
      lg_result("rss_per_stream_kib=%.2f\n", per_stream / 1024.0);
    }
    lg_result("rss_start_kb=%ld\n", rss_start);
    lg_result("rss_end_kb=%ld\n", rss_end);
  }
  for (int i = 0; i < o.nlabels; i++)
    lg_result("cpu_%s_seconds=%.2f\n", o.labels[i].name, (double)(cpu1[i] - cpu0[i]) / 1e6);
  lg_result("cpu_loadgen_seconds=%.2f\n", (double)gen_cpu / 1e6);
  /* Everything else that ran on the machine in the window: other work
   * competing for the cores makes a run untrustworthy. */
  int64_t known = gen_cpu;
  for (int i = 0; i < o.nlabels; i++) known += cpu1[i] - cpu0[i];
  lg_result("cpu_machine_seconds=%.2f\n", (double)(mtask1 - mtask0 + mirq1 - mirq0) / 1e6);
  lg_result("cpu_softirq_seconds=%.2f\n", (double)(mirq1 - mirq0) / 1e6);
  /* The processes' stime already holds the softirq work done on their behalf,
   * /proc/stat counts it apart: the rest is machine total minus known. */
  lg_result("cpu_other_seconds=%.2f\n", (double)(mtask1 - mtask0 + mirq1 - mirq0 - known) / 1e6);
  lg_result("publish_rate_achieved=%.1f\n", m_total > 0 ? (double)m_total / (window_s + 1.0 / o.rate) : 0.0);
  if (lg_out_file) fclose(lg_out_file);
  for (int i = 0; i < nk; i++) {
    free(kids[i].fan_max);
    free(kids[i].fan_cnt);
  }
  free(fmax);
  free(fcnt);
  free(complete);
  free(body);
  free(bts);
  lg_pub_dispose(&pub);
  return 0;
}
