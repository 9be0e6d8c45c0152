/*
 * fuzz_config: the YAML config loader (sc_conf_load). The input is the
 * config file, handed over as /proc/self/fd/N of a memfd so the loader runs
 * unchanged (same fopen path as in production). Invariant: a rejected file
 * always comes with a message; an accepted one prints (--check-config).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const sc_conf_spec_t specs[] = {
    SC_CONF_COMMON_SPECS,
    {"listen", SC_CONF_STRING, "127.0.0.1:8080", "address", 0, 0, 0, NULL},
    {"heartbeat_ms", SC_CONF_INT, "15000", "heartbeat", 0, 100, 3600000, NULL},
    {"verbose", SC_CONF_BOOL, "false", "more logs", 0, 0, 0, NULL},
    {"mode", SC_CONF_STRING, "a", "a mode", 0, 0, 0, "a|b|c"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static FILE *devnull;
  if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL) abort();
  int fd = memfd_create("fuzz-config", 0);
  if (fd < 0) abort();
  size_t off = 0;
  while (off < size) {
    ssize_t w = write(fd, data + off, size - off);
    if (w <= 0) abort();
    off += (size_t)w;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  char *argv[] = {"statecast-fuzz", "--config", path, NULL};
  char *envp[] = {NULL};
  char err[512];
  err[0] = '\0';
  sc_conf_t *conf = NULL;
  int rc = sc_conf_load(&conf, "statecast-fuzz", "apiserver", specs, sizeof specs / sizeof specs[0], 3, argv, envp,
                        err, sizeof err);
  if (rc != 0) {
    if (conf != NULL || err[0] == '\0') abort();
  } else {
    if (conf == NULL) abort();
    sc_conf_print(conf, devnull);
    sc_conf_free(conf);
  }
  close(fd);
  return 0;
}
