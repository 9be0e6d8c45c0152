/*
 * lg_common: statecast-loadgen's shared helpers (see lg_common.h): clocks,
 * dying on errors, whole reads and writes on the parent/child pipes, the
 * framed message writer and the key=value result output.
 */
#include "lg_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int64_t lg_realtime_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t lg_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

__attribute__((format(printf, 1, 2), noreturn)) void lg_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "statecast-loadgen: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

void *lg_xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (p == NULL) lg_die("out of memory");
  return p;
}

int lg_write_all(int fd, const void *buf, size_t len) {
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

int lg_read_all(int fd, void *buf, size_t len) {
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

int lg_send_msg(int fd, uint32_t type, const void *a, size_t alen, const void *b, size_t blen) {
  lg_msg_hdr_t h = {type, (uint32_t)(alen + blen)};
  if (lg_write_all(fd, &h, sizeof h) != 0) return -1;
  if (alen && lg_write_all(fd, a, alen) != 0) return -1;
  if (blen && lg_write_all(fd, b, blen) != 0) return -1;
  return 0;
}

int64_t lg_self_cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec + (int64_t)ru.ru_stime.tv_sec * 1000000 +
         ru.ru_stime.tv_usec;
}

FILE *lg_out_file;

/* One key=value result line on stdout and in --out. */
__attribute__((format(printf, 1, 2))) void lg_result(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  if (lg_out_file) {
    va_start(ap, fmt);
    vfprintf(lg_out_file, fmt, ap);
    va_end(ap);
  }
}
