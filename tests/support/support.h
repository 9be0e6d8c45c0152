/*
 * Test support: start/stop a real redis-server and the real binaries by pid,
 * and small blocking helpers (HTTP GET over loopback, waiting for a condition).
 * Everything binds to 127.0.0.1 on ports picked free at run time.
 */
#ifndef SC_TEST_SUPPORT_H
#define SC_TEST_SUPPORT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct sc_test_redis {
  pid_t pid;
  int port;
  char dir[256]; /* its working directory (data, log) */
  char pass[64]; /* --requirepass of the last start, "" for none (readiness checks AUTH with it) */
} sc_test_redis_t;

/* Start statecast-kv-updater against r with its health endpoint on a free
 * port (*health_port), extra flags (NULL-terminated, may be NULL), output
 * appended to log_path, and wait up to timeout_ms for /readyz 200. Returns
 * its pid, or -1 (spawn failed or never ready; a started one is stopped). */
pid_t sc_test_start_kvu(const sc_test_redis_t *r, const char *const *extra, const char *log_path, int *health_port,
                        int timeout_ms);
/* Copy a log file to stderr under a "---- path ----" line (nothing if missing). */
void sc_test_dump(const char *path);

/* Pick a port that is free on 127.0.0.1 right now. */
int sc_test_free_port(void);

/* Start redis-server --port P --bind 127.0.0.1 --save '' (plus extra args,
 * NULL-terminated, may be NULL) in a fresh temporary dir and wait until it
 * answers PING. 0 or -1. */
int sc_test_redis_start(sc_test_redis_t *r, const char *const *extra);
/* Start again on the same port and dir (e.g. after a stop, to test restarts). */
int sc_test_redis_restart(sc_test_redis_t *r, const char *const *extra);
/* SIGTERM by pid, wait for it; dir removed unless keep_dir. */
void sc_test_redis_stop(sc_test_redis_t *r, int keep_dir);
/* A blocking connection (caller frees with redisFree), NULL on failure. */
redisContext *sc_test_redis_connect(const sc_test_redis_t *r);
/* "redis://127.0.0.1:PORT" into buf. */
void sc_test_redis_url(const sc_test_redis_t *r, char *buf, size_t cap);

/* Absolute path of a built binary: $STATECAST_TEST_BIN_DIR/NAME, else build/bin/NAME; malloc'd. */
char *sc_test_bin(const char *name);

/* fork+exec bin with argv (argv[0] included, NULL-terminated), environment =
 * current environment plus env (NULL-terminated "K=V" list, may be NULL);
 * stdout/stderr go to log_path (append) when not NULL. Returns pid or -1. */
pid_t sc_test_spawn(const char *bin, char *const argv[], char *const env[], const char *log_path);
/* Send sig (if > 0), wait up to timeout_ms for exit (SIGKILL after that).
 * Returns the exit status as from waitpid, or -1. */
int sc_test_stop(pid_t pid, int sig, int timeout_ms);
/* Run a binary to completion, feeding stdin_data (may be NULL), capturing
 * stdout and stderr (each NUL-terminated, truncated to cap). Returns the
 * exit code (0-255), 128+signal, or -1. */
int sc_test_run(const char *bin, char *const argv[], char *const env[], const char *stdin_data, char *out,
                size_t out_cap, char *err, size_t err_cap);

/* Blocking HTTP/1.0 request to 127.0.0.1:port. Returns the status code, body
 * copied into body (NUL-terminated). -1 on connection failure. */
int sc_test_http(int port, const char *method, const char *path, char *body, size_t cap);

/* Poll pred every 20 ms up to timeout_ms. Returns 1 when it held, 0 otherwise. */
int sc_test_wait(int (*pred)(void *), void *arg, int timeout_ms);
/* Wait until GET path on port answers want_status. */
int sc_test_wait_http(int port, const char *path, int want_status, int timeout_ms);

#endif
