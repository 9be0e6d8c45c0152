#include "support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SC_TEST_BIN_DIR
#error "SC_TEST_BIN_DIR must be defined by the build"
#endif

extern char **environ;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int sc_test_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

char *sc_test_bin(const char *name) {
  /* STATECAST_TEST_BIN_DIR runs the suites against other builds of the
   * binaries (scripts/test.sh: the ThreadSanitizer build). */
  const char *dir = getenv("STATECAST_TEST_BIN_DIR");
  if (dir == NULL || dir[0] == '\0') dir = SC_TEST_BIN_DIR;
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (p != NULL) snprintf(p, n, "%s/%s", dir, name);
  return p;
}

pid_t sc_test_spawn(const char *bin, char *const argv[], char *const env[], const char *log_path) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  setpgid(0, 0);
  if (log_path != NULL) {
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
  }
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, 0);
  for (size_t i = 0; env != NULL && env[i] != NULL; i++) putenv(env[i]);
  execv(bin, argv);
  fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
  _exit(127);
}

int sc_test_stop(pid_t pid, int sig, int timeout_ms) {
  if (pid <= 0) return -1;
  if (sig > 0) kill(pid, sig);
  int status;
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) return status;
    if (w < 0) return -1;
    sleep_ms(10);
  }
  kill(pid, SIGKILL);
  return waitpid(pid, &status, 0) == pid ? status : -1;
}

/* Reads everything from fd into buf (cap incl. NUL). */

int sc_test_run(const char *bin, char *const argv[], char *const env[], const char *stdin_data, char *out,
                size_t out_cap, char *err, size_t err_cap) {
  int pin[2], pout[2], perr[2];
  if (pipe(pin) < 0 || pipe(pout) < 0 || pipe(perr) < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(pin[0], 0);
    dup2(pout[1], 1);
    dup2(perr[1], 2);
    close(pin[0]), close(pin[1]), close(pout[0]), close(pout[1]), close(perr[0]), close(perr[1]);
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) putenv(env[i]);
    execv(bin, argv);
    _exit(127);
  }
  close(pin[0]), close(pout[1]), close(perr[1]);
  signal(SIGPIPE, SIG_IGN);
  if (stdin_data != NULL) {
    size_t len = strlen(stdin_data), off = 0;
    while (off < len) {
      ssize_t w = write(pin[1], stdin_data + off, len - off);
      if (w <= 0) break;
      off += (size_t)w;
    }
  }
  close(pin[1]);
  size_t olen = 0, elen = 0;
  fcntl(pout[0], F_SETFL, O_NONBLOCK);
  fcntl(perr[0], F_SETFL, O_NONBLOCK);
  struct pollfd fds[2] = {{pout[0], POLLIN, 0}, {perr[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, 30000) <= 0) break;
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char tmp[4096];
      ssize_t n = read(fds[i].fd, tmp, sizeof tmp);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        open_fds--;
        continue;
      }
      char *buf = i == 0 ? out : err;
      size_t cap = i == 0 ? out_cap : err_cap;
      size_t *len = i == 0 ? &olen : &elen;
      if (buf != NULL && *len + 1 < cap) {
        size_t take = (size_t)n < cap - 1 - *len ? (size_t)n : cap - 1 - *len;
        memcpy(buf + *len, tmp, take);
        *len += take;
      }
    }
  }
  for (int i = 0; i < 2; i++)
    if (fds[i].fd >= 0) close(fds[i].fd);
  if (out != NULL && out_cap > 0) out[olen] = '\0';
  if (err != NULL && err_cap > 0) err[elen] = '\0';
  int status;
  if (waitpid(pid, &status, 0) != pid) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

redisContext *sc_test_redis_connect(const sc_test_redis_t *r) {
  struct timeval tv = {2, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
  if (c == NULL) return NULL;
  if (c->err) {
    redisFree(c);
    return NULL;
  }
  redisSetTimeout(c, (struct timeval){5, 0});
  return c;
}

void sc_test_redis_url(const sc_test_redis_t *r, char *buf, size_t cap) {
  snprintf(buf, cap, "redis://127.0.0.1:%d", r->port);
}

/* Up and done loading its data: PING answers even while an AOF or RDB is
 * still loading, so ask for a key (-LOADING until the data is in). */
static int redis_ready(void *arg) {
  const sc_test_redis_t *r = arg;
  redisContext *c = sc_test_redis_connect(r);
  if (c == NULL) return 0;
  redisReply *rep = r->pass[0] ? redisCommand(c, "AUTH %s", r->pass) : NULL;
  int ok = r->pass[0] == '\0' || (rep != NULL && rep->type == REDIS_REPLY_STATUS);
  if (rep != NULL) freeReplyObject(rep);
  rep = ok ? redisCommand(c, "EXISTS statecast:readiness-probe") : NULL;
  ok = rep != NULL && rep->type == REDIS_REPLY_INTEGER;
  if (rep != NULL) freeReplyObject(rep);
  redisFree(c);
  return ok;
}

static int spawn_redis(sc_test_redis_t *r, const char *const *extra) {
  char port[16];
  snprintf(port, sizeof port, "%d", r->port);
  const char *argv[64] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", r->dir, "--logfile", "redis.log"};
  size_t n = 13;
  r->pass[0] = '\0';
  for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 62; i++) {
    if (strcmp(extra[i], "--requirepass") == 0 && extra[i + 1] != NULL)
      snprintf(r->pass, sizeof r->pass, "%s", extra[i + 1]);
    argv[n++] = extra[i];
  }
  argv[n] = NULL;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    setpgid(0, 0);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) dup2(devnull, 0), dup2(devnull, 1), dup2(devnull, 2);
    execvp("redis-server", (char *const *)argv);
    _exit(127);
  }
  r->pid = pid;
  if (!sc_test_wait(redis_ready, r, 5000)) {
    sc_test_stop(pid, SIGKILL, 1000);
    r->pid = 0;
    return -1;
  }
  return 0;
}

int sc_test_redis_start(sc_test_redis_t *r, const char *const *extra) {
  memset(r, 0, sizeof *r);
  snprintf(r->dir, sizeof r->dir, "/tmp/statecast-test-redis-XXXXXX");
  if (mkdtemp(r->dir) == NULL) return -1;
  for (int attempt = 0; attempt < 5; attempt++) {
    r->port = sc_test_free_port();
    if (r->port > 0 && spawn_redis(r, extra) == 0) return 0;
  }
  return -1;
}

int sc_test_redis_restart(sc_test_redis_t *r, const char *const *extra) {
  for (int attempt = 0; attempt < 50; attempt++) {
    if (spawn_redis(r, extra) == 0) return 0;
    sleep_ms(100); /* the port may still be in TIME_WAIT-free close */
  }
  return -1;
}

void sc_test_redis_stop(sc_test_redis_t *r, int keep_dir) {
  if (r->pid > 0) sc_test_stop(r->pid, SIGTERM, 5000);
  r->pid = 0;
  if (!keep_dir && r->dir[0] != '\0') {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", r->dir);
  }
}

int sc_test_http(int port, const char *method, const char *path, char *body, size_t cap) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  char req[1024];
  int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return -1;
  }
  size_t rcap = 1 << 20, len = 0;
  char *resp = malloc(rcap + 1);
  if (resp == NULL) {
    close(fd);
    return -1;
  }
  ssize_t r;
  while (len < rcap && (r = read(fd, resp + len, rcap - len)) > 0) len += (size_t)r;
  close(fd);
  resp[len] = '\0';
  int status = -1;
  if (sscanf(resp, "HTTP/%*d.%*d %d", &status) != 1) status = -1;
  char *b = strstr(resp, "\r\n\r\n");
  if (body != NULL && cap > 0) {
    body[0] = '\0';
    if (b != NULL) snprintf(body, cap, "%s", b + 4);
  }
  free(resp);
  return status;
}

int sc_test_wait(int (*pred)(void *), void *arg, int timeout_ms) {
  for (int waited = 0;; waited += 20) {
    if (pred(arg)) return 1;
    if (waited >= timeout_ms) return 0;
    sleep_ms(20);
  }
}

typedef struct http_wait {
  int port;
  const char *path;
  int want;
} http_wait_t;

static int http_is(void *arg) {
  http_wait_t *w = arg;
  return sc_test_http(w->port, "GET", w->path, NULL, 0) == w->want;
}

int sc_test_wait_http(int port, const char *path, int want_status, int timeout_ms) {
  http_wait_t w = {port, path, want_status};
  return sc_test_wait(http_is, &w, timeout_ms);
}

pid_t sc_test_start_kvu(const sc_test_redis_t *r, const char *const *extra, const char *log_path, int *health_port,
                        int timeout_ms) {
  char url[128], listen[64];
  sc_test_redis_url(r, url, sizeof url);
  *health_port = sc_test_free_port();
  snprintf(listen, sizeof listen, "127.0.0.1:%d", *health_port);
  char *bin = sc_test_bin("statecast-kv-updater");
  if (bin == NULL) return -1;
  char *argv[32] = {bin, "--redis-url", url, "--health-listen", listen, NULL};
  int n = 5;
  for (int i = 0; extra != NULL && extra[i] != NULL && n < 31; i++) argv[n++] = (char *)extra[i];
  argv[n] = NULL;
  pid_t pid = sc_test_spawn(bin, argv, NULL, log_path);
  free(bin);
  if (pid <= 0) return -1;
  if (!sc_test_wait_http(*health_port, "/readyz", 200, timeout_ms)) {
    sc_test_stop(pid, SIGTERM, 5000);
    return -1;
  }
  return pid;
}

void sc_test_dump(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return;
  char line[2048];
  fprintf(stderr, "---- %s ----\n", path);
  while (fgets(line, sizeof line, f) != NULL) fputs(line, stderr);
  fclose(f);
}
