/*
 * statecast-publisher: publish the full JSON state of a topic from the shell.
 *
 *   statecast-publisher [options] TOPIC [JSON]     JSON from the argument, else stdin
 *   statecast-publisher [options] --lines          {"topic":..,"data":..} lines on stdin
 *   statecast-publisher [options] --every S --exec CMD TOPIC
 *                                                  run CMD (/bin/sh -c) every S seconds
 *                                                  and publish its stdout as TOPIC's state;
 *                                                  a failing run, invalid output or a run
 *                                                  longer than S seconds (killed) is logged
 *                                                  and skipped; SIGINT/SIGTERM stop cleanly
 *   statecast-publisher --check-config | --help
 *
 * A publish goes through the durable inbox (XADD statecast:inbox, see
 * statecast_publisher.h); --pubsub uses plain PUBLISH update:{T} instead.
 *
 * Exit codes (also in --help):
 *   0  accepted, and a kv-updater is running (--every: stopped by SIGINT/SIGTERM);
 *      with --pubsub: published and received by a kv-updater
 *   1  usage or configuration error
 *   2  invalid message: rejected locally, nothing sent (or --exec without --every failed)
 *   3  Redis unreachable, timed out, or answered an error: NOT accepted
 *   4  accepted, but no kv-updater is running right now: it will be committed
 *      when one starts; with --pubsub: published but no kv-updater is
 *      subscribed, so the state was NOT committed
 * --lines goes on past bad lines, prints counts at the end and exits with the
 * worst code seen, worst first: 3, 2, 4, 0.
 *
 * All the Redis and validation work is in the library (statecast_publisher.h);
 * this file is option handling and the three input modes.
 */
#include "binconf.h"
#include "config.h"
#include "envelope.h"
#include "err.h"
#include "log.h"
#include "pub_lines.h"
#include "redis.h"
#include "statecast_publisher.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PROGRAM "statecast-publisher"

enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_INVALID = 2, EXIT_REDIS = 3, EXIT_NORECEIVER = 4 };

static const sc_conf_spec_t specs[] = {
    SC_CONF_COMMON_SPECS,
    {"pubsub", SC_CONF_BOOL, "false",
     "publish with plain PUBLISH update:{T} (at-most-once: lost when no kv-updater runs) instead of the durable inbox",
     0, 0, 0, NULL},
    {"lines", SC_CONF_BOOL, "false", "read {\"topic\":T,\"data\":JSON} lines from stdin, one publish each", 0, 0, 0,
     NULL},
    {"every", SC_CONF_INT, "0", "with --exec: run the command every SECONDS, killing a run that takes longer (0: once)", 0, 0, 86400, NULL},
    {"exec", SC_CONF_STRING, NULL, "shell command (/bin/sh -c) whose stdout is TOPIC's state", 0, 0, 0, NULL},
    {"connect_timeout_ms", SC_CONF_INT, "2000", "Redis connect timeout", 0, 1, 600000, NULL},
    {"command_timeout_ms", SC_CONF_INT, "5000", "Redis command timeout", 0, 1, 600000, NULL},
};
#define NSPECS (sizeof specs / sizeof specs[0])

static volatile sig_atomic_t g_stop;
static int g_pubsub; /* --pubsub: PUBLISH instead of the durable inbox */

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static void usage(FILE *f) {
  sc_conf_usage(f, PROGRAM, "TOPIC [JSON] | --lines | --every SECONDS --exec CMD TOPIC", specs, NSPECS);
  fputs("\nJSON comes from the argument, else from stdin. The JSON value null deletes the topic.\n"
        "\nExit codes:\n"
        "  0  accepted, and a kv-updater is running (--every: stopped by SIGINT/SIGTERM)\n"
        "  1  usage or configuration error\n"
        "  2  invalid message: rejected locally, nothing sent\n"
        "  3  Redis unreachable, timed out, or answered an error: NOT accepted\n"
        "  4  accepted, but no kv-updater is running right now: it will be committed when one starts\n"
        "With --pubsub (plain PUBLISH, at-most-once) 0 means a kv-updater received it and 4 that\n"
        "none is subscribed, so the state was NOT committed.\n"
        "--lines continues past bad lines, prints counts and exits with the worst code (3, 2, 4, 0).\n",
        f);
}

static int exit_code_of(int rc) {
  switch (rc) {
  case 0:
    return EXIT_OK;
  case SC_ENORECEIVER:
    return EXIT_NORECEIVER;
  case SC_ETOPIC:
  case SC_EJSON:
  case SC_EUTF8:
  case SC_ETOOBIG:
  case SC_EINVAL:
    return EXIT_INVALID;
  default:
    return EXIT_REDIS;
  }
}

/* Rank exit codes for --lines: higher is worse. */
static int severity(int code) {
  switch (code) {
  case EXIT_OK:
    return 0;
  case EXIT_NORECEIVER:
    return 1;
  case EXIT_INVALID:
    return 2;
  case EXIT_REDIS:
    return 3;
  default:
    return 4;
  }
}

/* Publish and log the outcome; returns the library's code. */
static int publish_logged(sc_publisher_t *pub, const char *topic, size_t topic_len, const char *json,
                          size_t json_len, const char *where) {
  if (!g_pubsub) {
    char id[SC_PUBLISHER_ID_MAX];
    int running = -1;
    int rc = sc_publisher_publish_durable(pub, topic, topic_len, json, json_len, id, &running);
    if (rc == 0 && running == 0) {
      SC_WARN("%stopic %.*s accepted (inbox entry %s); no kv-updater is running right now, it will be committed "
              "when one starts",
              where, (int)topic_len, topic, id);
      return SC_ENORECEIVER;
    }
    if (rc == 0) {
      SC_DEBUG("%saccepted topic=%.*s entry=%s", where, (int)topic_len, topic, id);
    } else if (exit_code_of(rc) == EXIT_INVALID) {
      SC_ERROR("%srejected topic=%.*s (nothing sent): %s", where, (int)topic_len, topic,
               sc_publisher_last_error(pub));
    } else {
      SC_ERROR("%spublish topic=%.*s failed (NOT accepted): %s", where, (int)topic_len, topic,
               sc_publisher_last_error(pub));
    }
    return rc;
  }
  long long receivers = -1;
  int rc = sc_publisher_publish(pub, topic, topic_len, json, json_len, &receivers);
  if (rc == 0) {
    SC_DEBUG("%spublished topic=%.*s receivers=%lld", where, (int)topic_len, topic, receivers);
  } else if (rc == SC_ENORECEIVER) {
    SC_WARN("%swarning: topic %.*s was published but no kv-updater is subscribed, so it was NOT committed", where,
            (int)topic_len, topic);
  } else if (exit_code_of(rc) == EXIT_INVALID) {
    SC_ERROR("%srejected topic=%.*s (nothing sent): %s", where, (int)topic_len, topic,
             sc_publisher_last_error(pub));
  } else {
    SC_ERROR("%spublish topic=%.*s failed: %s", where, (int)topic_len, topic, sc_publisher_last_error(pub));
  }
  return rc;
}

/* Read all of fd, keeping at most cap bytes (the rest is drained and
 * dropped, *truncated set). Caller frees *out. 0 or -1 (errno). */
static int read_all(FILE *f, size_t cap, char **out, size_t *len, int *truncated) {
  size_t size = 4096, n = 0;
  char *buf = malloc(size);
  *truncated = 0;
  if (buf == NULL) return -1;
  for (;;) {
    if (n == size) {
      if (size >= cap) {
        char sink[4096];
        while (fread(sink, 1, sizeof sink, f) > 0) *truncated = 1;
        break;
      }
      size_t want = size * 2 < cap ? size * 2 : cap;
      char *bigger = realloc(buf, want);
      if (bigger == NULL) {
        free(buf);
        return -1;
      }
      buf = bigger;
      size = want;
    }
    size_t r = fread(buf + n, 1, size - n, f);
    n += r;
    if (r == 0) break;
  }
  if (ferror(f)) {
    free(buf);
    return -1;
  }
  *out = buf;
  *len = n;
  return 0;
}

static int run_single(sc_publisher_t *pub, const char *topic, const char *json_arg, size_t max_bytes) {
  if (json_arg != NULL) return exit_code_of(publish_logged(pub, topic, strlen(topic), json_arg, strlen(json_arg), ""));
  char *body = NULL;
  size_t len = 0;
  int truncated = 0;
  /* max_bytes + 1 so an oversized body is refused as too big rather than cut. */
  if (read_all(stdin, max_bytes + 1, &body, &len, &truncated) != 0) {
    SC_ERROR("reading stdin: %s", strerror(errno));
    return EXIT_USAGE;
  }
  int rc = publish_logged(pub, topic, strlen(topic), body, len, "");
  free(body);
  return exit_code_of(rc);
}

static int run_lines(sc_publisher_t *pub, size_t max_bytes) {
  char *line = NULL, *scratch = NULL;
  size_t line_cap = 0, scratch_cap = 0;
  size_t lineno = 0, published = 0, unreceived = 0, rejected = 0, failed = 0;
  int worst = EXIT_OK;
  ssize_t len;
  while ((len = getline(&line, &line_cap, stdin)) >= 0) {
    lineno++;
    int code;
    char where[48];
    snprintf(where, sizeof where, "line %zu: ", lineno);
    if ((size_t)len > 2 * max_bytes + 1024) {
      SC_ERROR("%srejected (nothing sent): line longer than %zu bytes", where, 2 * max_bytes + 1024);
      code = EXIT_INVALID;
    } else {
      if (scratch_cap < (size_t)len + 1) {
        char *s = realloc(scratch, (size_t)len + 1);
        if (s == NULL) {
          SC_ERROR("out of memory");
          worst = EXIT_REDIS;
          break;
        }
        scratch = s;
        scratch_cap = (size_t)len + 1;
      }
      pub_line_t pl;
      int rc = pub_line_parse(line, (size_t)len, scratch, &pl);
      if (rc == SC_ENOENT) continue;
      if (rc == SC_EJSON || rc == SC_EUTF8) {
        SC_ERROR("%srejected (nothing sent): %s at byte %zu: %s", where, sc_strerror(rc), pl.offset, pl.why);
        code = EXIT_INVALID;
      } else if (rc != 0) {
        SC_ERROR("%srejected (nothing sent): %s", where, pl.why);
        code = EXIT_INVALID;
      } else {
        code = exit_code_of(publish_logged(pub, pl.topic, pl.topic_len, pl.data, pl.data_len, where));
      }
    }
    switch (code) {
    case EXIT_OK:
      published++;
      break;
    case EXIT_NORECEIVER:
      unreceived++;
      break;
    case EXIT_INVALID:
      rejected++;
      break;
    default:
      failed++;
      break;
    }
    if (severity(code) > severity(worst)) worst = code;
  }
  free(line);
  free(scratch);
  fprintf(stderr, "%s: %zu lines: %zu published, %zu %s, %zu rejected, %zu failed\n", PROGRAM, lineno, published,
          unreceived, g_pubsub ? "published without a receiver" : "accepted while no kv-updater runs", rejected,
          failed);
  return worst;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timespec ms_to_ts(int64_t ms) {
  if (ms < 0) ms = 0;
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  return ts;
}

/*
 * Run cmd with /bin/sh -c in its own process group and collect up to cap
 * bytes of its stdout. SIGINT/SIGTERM are blocked in this process except
 * inside ppoll (unblock = the mask to wait with), so a stop request is seen
 * without races; it kills the command. deadline_ms 0: no time limit, else
 * the command is killed at that monotonic time.
 * Returns 0 (command exited 0), 1 (it failed, was killed, or output too big:
 * *why says which) or -1 (stop requested / system error). Caller frees *out.
 */
static int run_command(const char *cmd, size_t cap, const sigset_t *unblock, int64_t deadline_ms, char **out,
                       size_t *len, const char **why) {
  int fds[2];
  *out = NULL;
  *len = 0;
  if (pipe2(fds, O_CLOEXEC) != 0) {
    *why = "pipe failed";
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    *why = "fork failed";
    return -1;
  }
  if (pid == 0) {
    setpgid(0, 0);
    sigprocmask(SIG_SETMASK, unblock, NULL);
    signal(SIGPIPE, SIG_DFL);
    dup2(fds[1], 1);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  setpgid(pid, pid); /* also here, so the kill below cannot race the child's own call */
  close(fds[1]);
  char *buf = malloc(cap > 0 ? cap : 1);
  size_t n = 0;
  int too_big = 0, killed = 0, stopped = 0;
  while (buf != NULL) {
    struct pollfd pfd = {fds[0], POLLIN, 0};
    struct timespec ts, *tsp = NULL;
    if (deadline_ms > 0) {
      ts = ms_to_ts(deadline_ms - now_ms());
      tsp = &ts;
    }
    int pr = ppoll(&pfd, 1, tsp, unblock);
    if (g_stop) {
      stopped = 1;
      break;
    }
    if (pr < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pr == 0) {
      killed = 1;
      break;
    }
    char tmp[4096];
    ssize_t r = read(fds[0], tmp, sizeof tmp);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    size_t take = (size_t)r <= cap - n ? (size_t)r : cap - n;
    if (take < (size_t)r) too_big = 1;
    memcpy(buf + n, tmp, take);
    n += take;
  }
  close(fds[0]);
  if (buf == NULL || stopped || killed) kill(-pid, stopped ? SIGTERM : SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (buf == NULL) {
    *why = "out of memory";
    return -1;
  }
  if (stopped) {
    free(buf);
    *why = "stopped";
    return -1;
  }
  *out = buf;
  *len = n;
  if (killed) *why = "command ran past its time limit and was killed";
  else if (too_big) *why = "command output larger than max_message_bytes";
  else if (!WIFEXITED(status)) *why = "command killed by a signal";
  else if (WEXITSTATUS(status) != 0) *why = "command exited with a non-zero status";
  else return 0;
  return 1;
}

static int run_exec(sc_publisher_t *pub, const char *topic, const char *cmd, int every_s, size_t max_bytes) {
  sigset_t block, unblock;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: waits must end on a stop request */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  sigprocmask(SIG_BLOCK, &block, &unblock);
  sigdelset(&unblock, SIGINT);
  sigdelset(&unblock, SIGTERM);

  int last = EXIT_OK;
  size_t runs = 0, published = 0;
  int64_t next = now_ms();
  while (!g_stop) {
    int64_t start = now_ms();
    char *out = NULL;
    size_t len = 0;
    const char *why = NULL;
    int64_t deadline = every_s > 0 ? start + (int64_t)every_s * 1000 : 0;
    int rc = run_command(cmd, max_bytes + 1, &unblock, deadline, &out, &len, &why);
    runs++;
    if (rc < 0) {
      if (!g_stop) SC_ERROR("exec: %s", why);
      last = g_stop ? EXIT_OK : EXIT_INVALID;
    } else if (rc > 0) {
      SC_WARN("exec run %zu: %s; skipped (nothing sent)", runs, why);
      last = EXIT_INVALID;
    } else {
      char where[48];
      snprintf(where, sizeof where, "exec run %zu: ", runs);
      int prc = publish_logged(pub, topic, strlen(topic), out, len, where);
      if (prc == 0) published++;
      last = exit_code_of(prc);
    }
    free(out);
    if (every_s == 0) return last;
    next += (int64_t)every_s * 1000;
    if (next < now_ms()) next = now_ms(); /* a run overran: do not try to catch up */
    while (!g_stop && now_ms() < next) {
      struct timespec ts = ms_to_ts(next - now_ms());
      ppoll(NULL, 0, &ts, &unblock);
    }
  }
  SC_INFO("stopping after %zu runs, %zu published and received", runs, published);
  return EXIT_OK;
}

int main(int argc, char **argv) {
  sc_conf_t *conf = NULL;
  sc_publisher_t *pub = NULL;
  char err[512];
  int code = EXIT_USAGE;

  signal(SIGPIPE, SIG_IGN);
  if (sc_conf_load(&conf, PROGRAM, "publisher", specs, NSPECS, argc, argv, environ, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n(see %s --help)\n", PROGRAM, err, PROGRAM);
    return EXIT_USAGE;
  }
  if (sc_conf_help_wanted(conf)) {
    usage(stdout);
    code = EXIT_OK;
    goto done;
  }
  sc_log_level_t level;
  sc_log_format_t format;
  if (sc_binconf_log(conf, &level, &format, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", PROGRAM, err);
    goto done;
  }
  sc_log_init("publisher", level, format);

  const char *url = sc_conf_str(conf, "redis_url");
  sc_redis_addr_t addr;
  if (url == NULL || sc_redis_url_parse(url, &addr, err, sizeof err) != 0) {
    fprintf(stderr, "%s: invalid redis_url (%s): %s\n", PROGRAM, sc_conf_source(conf, "redis_url"),
            url == NULL ? "not set" : err);
    goto done;
  }
  sc_redis_addr_dispose(&addr);
  if (sc_conf_check_wanted(conf)) {
    sc_conf_print(conf, stdout);
    code = EXIT_OK;
    goto done;
  }

  int nargs = 0;
  char **args = sc_conf_args(conf, &nargs);
  int lines = sc_conf_bool(conf, "lines");
  g_pubsub = sc_conf_bool(conf, "pubsub");
  int every = (int)sc_conf_int(conf, "every");
  const char *cmd = sc_conf_str(conf, "exec");
  size_t max_bytes = (size_t)sc_conf_int(conf, "max_message_bytes");
  const char *problem = NULL;
  if (lines && (nargs != 0 || cmd != NULL || every != 0))
    problem = "--lines takes no TOPIC and cannot be combined with --exec/--every";
  else if (!lines && cmd == NULL && every != 0)
    problem = "--every needs --exec";
  else if (!lines && cmd != NULL && nargs != 1)
    problem = "--exec needs exactly one TOPIC (and no JSON argument)";
  else if (!lines && cmd == NULL && (nargs < 1 || nargs > 2))
    problem = "expected TOPIC [JSON]";
  if (problem != NULL) {
    fprintf(stderr, "%s: %s\n(see %s --help)\n", PROGRAM, problem, PROGRAM);
    goto done;
  }

  sc_publisher_opts_t opts = {
      .password = sc_conf_str(conf, "redis_password"),
      .connect_timeout_ms = (int)sc_conf_int(conf, "connect_timeout_ms"),
      .command_timeout_ms = (int)sc_conf_int(conf, "command_timeout_ms"),
      .max_message_bytes = max_bytes,
      .sentinels = sc_conf_str(conf, "redis_sentinels"),
      .master_name = sc_conf_str(conf, "redis_master_name"),
  };
  int rc = sc_publisher_new(&pub, url, &opts);
  if (rc != 0) {
    fprintf(stderr, "%s: cannot create the publisher: %s\n", PROGRAM, sc_strerror(rc));
    goto done;
  }
  if (lines)
    code = run_lines(pub, max_bytes);
  else if (cmd != NULL)
    code = run_exec(pub, args[0], cmd, every, max_bytes);
  else
    code = run_single(pub, args[0], nargs == 2 ? args[1] : NULL, max_bytes);

done:
  sc_publisher_free(pub);
  sc_conf_free(conf);
  return code;
}
