/*
 * lg_common: what the parts of statecast-loadgen share. loadgen.c is the
 * driver (options, forking, aggregation, the report), lg_stream.c runs in
 * each forked load process (the SSE streams), lg_pub.c is the publisher
 * (Redis XADD or HTTP POST, and fill mode). This header holds the parsed
 * options, the framed messages parent and load processes exchange over
 * their pipes, clocks, the die-on-error helpers and the key=value result
 * output. Internal to the one binary: no library, no stable interface.
 */
#ifndef STATECAST_BENCH_LG_COMMON_H
#define STATECAST_BENCH_LG_COMMON_H

#include "hist.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define LG_MAX_LABELS 8
#define LG_MAX_PIDS 16

/* ---- options (parsed once by the driver, read-only afterwards) ----------- */

typedef struct lg_proc_label {
  char name[32];
  int npids;
  pid_t pids[LG_MAX_PIDS];
} lg_proc_label_t;

typedef struct lg_opts {
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
  lg_proc_label_t labels[LG_MAX_LABELS];
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
} lg_opts_t;

/* ---- parent/child messages ---------------------------------------------- */

/*
 * Every message is an lg_msg_hdr_t then len payload bytes, except that an
 * LG_M_RESULT is followed by nfan int64_t fan_max and nfan uint32_t fan_cnt
 * beyond its len. LG_C_FINAL's payload is topics uint32_t newest versions
 * then topics int64_t publish times. All structs are plain values (no
 * pointers): they go through the pipe as they are.
 */
enum { LG_C_START = 1, LG_C_FINAL, LG_C_STOP };        /* parent -> child */
enum { LG_M_STATUS = 1, LG_M_CAUGHT_UP, LG_M_RESULT }; /* child -> parent */

typedef struct lg_msg_hdr {
  uint32_t type, len;
} lg_msg_hdr_t;

typedef struct lg_status_msg {
  uint64_t connected, failed, synced, disconnected, resolved;
  uint64_t st_non200;
} lg_status_msg_t;

typedef struct lg_start_msg {
  int64_t t_start_us;
  int64_t period_us;
  uint32_t topics;
  uint32_t fan_cap;
} lg_start_msg_t;

typedef struct lg_stop_msg {
  int64_t t_end_us;
} lg_stop_msg_t;

typedef struct lg_result_msg {
  uint64_t streams_measured; /* streaming when the window started */
  uint64_t connected, failed, disconnected, disconnected_window, non200;
  uint64_t events, dups, seen_versions, old_events, unparsed, bytes;
  uint64_t open_stale; /* stream/topic pairs not at the newest version at the end */
  uint64_t syncs_window; /* `event: sync` seen during the window (a server-side resync) */
  int64_t cpu_us;      /* this child's user+system CPU over the window */
  uint32_t nfan;
  uint32_t pad_;
  bench_hist_t delay, stale;
} lg_result_msg_t;

/* Write one message (header, then a[0..alen) and b[0..blen)) to fd; 0 or -1.
 * a and b are borrowed for the call. */
__attribute__((warn_unused_result)) int lg_send_msg(int fd, uint32_t type, const void *a, size_t alen,
                                                    const void *b, size_t blen);
/* Write or read exactly len bytes, retrying on EINTR; 0, or -1 on an error
 * (lg_read_all also on end of file). */
__attribute__((warn_unused_result)) int lg_write_all(int fd, const void *buf, size_t len);
__attribute__((warn_unused_result)) int lg_read_all(int fd, void *buf, size_t len);

/* ---- small helpers ------------------------------------------------------ */

/* Now in microseconds: CLOCK_REALTIME (comparable across processes, the
 * "bt" of a message) and CLOCK_MONOTONIC (deadlines and intervals). */
int64_t lg_realtime_us(void);
int64_t lg_mono_us(void);
/* User+system CPU of this process in microseconds. */
int64_t lg_self_cpu_us(void);

/* "statecast-loadgen: <message>" on stderr, then exit(2). */
__attribute__((format(printf, 1, 2), noreturn)) void lg_die(const char *fmt, ...);
/* calloc that never returns NULL (dies instead) and accepts zero sizes;
 * caller frees with free(). */
void *lg_xcalloc(size_t n, size_t sz);

/* The --out file or NULL. Opened and closed by the driver's main(); a
 * forked load process closes its copy before it runs. */
extern FILE *lg_out_file;
/* One key=value result line on stdout and in lg_out_file. */
__attribute__((format(printf, 1, 2))) void lg_result(const char *fmt, ...);

#endif
