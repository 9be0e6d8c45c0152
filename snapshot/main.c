/*
 * statecast-snapshot: save, load, verify and diff statecast state.
 * This file only wires things: arguments, config, the Redis connection and
 * the output; the format lives in snap_format.c, the Redis side in
 * snap_redis.c.
 */
#include "binconf.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "redis.h"
#include "snap_format.h"
#include "snap_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROGRAM "statecast-snapshot"

/* Exit codes (documented in --help and docs/snapshot.md). */
enum {
  EXIT_OK = 0,
  EXIT_USAGE = 1,   /* bad command line or configuration */
  EXIT_BADFILE = 2, /* the snapshot file is corrupt, truncated, of another version, or fails its checksum */
  EXIT_REDIS = 3,   /* cannot connect to or talk to Redis, or Redis holds inconsistent state */
  EXIT_IO = 4,      /* cannot read or write a file */
  EXIT_DIFF = 5,    /* diff only: a load would change something */
};

static const sc_conf_spec_t specs[] = {
    SC_CONF_COMMON_SPECS,
    {"timeout_ms", SC_CONF_INT, "60000", "connect and command timeout (a save of a large state is one command)", 0, 100,
     3600000, NULL},
    {"batch_size", SC_CONF_INT, "500", "topics restored per Redis transaction by load", 0, 1, 100000, NULL},
    {"progress", SC_CONF_BOOL, "true", "report progress on stderr for snapshots of 10,000 topics or more", 0, 0, 0,
     NULL},
};
#define NSPECS (sizeof specs / sizeof specs[0])

#define PROGRESS_MIN 10000

static void usage(FILE *f) {
  fprintf(f,
          "usage: %s COMMAND [arguments] [options]\n"
          "\n"
          "commands:\n"
          "  save [-o FILE|-]        write a consistent snapshot of every topic (default: to stdout);\n"
          "                          a FILE is written atomically (temporary file, fsync, rename)\n"
          "  load FILE [--replace]   verify FILE, then restore it through the commit script: a topic is\n"
          "                          written where it is absent or the snapshot's copy is newer (commit\n"
          "                          time); --replace makes Redis equal the snapshot (other topics deleted)\n"
          "  verify FILE             check format, version and checksum; print a summary\n"
          "  diff FILE [--replace]   show what load would change, per topic and in total\n"
          "FILE may be - for stdin (load, verify, diff).\n"
          "\n"
          "exit codes:\n"
          "  0  success (diff: a load would change nothing)\n"
          "  1  bad command line or configuration\n"
          "  2  bad snapshot file: corrupt, truncated, wrong version or checksum (Redis untouched)\n"
          "  3  Redis error (connect, auth, command, inconsistent state)\n"
          "  4  cannot read or write a file\n"
          "  5  diff: a load would change something\n"
          "\n",
          PROGRAM);
  sc_conf_usage(f, PROGRAM, "COMMAND [arguments]", specs, NSPECS);
}

typedef struct opts {
  const char *output; /* save -o; NULL = stdout */
  int replace;
} opts_t;

/* Pull the command-specific flags (-o, --output, --replace) out of argv so
 * the rest goes to sc_conf_load; they belong to one run, not to a config file. */
static int take_flags(int *argc, char **argv, opts_t *o, char *err, size_t errlen) {
  int w = 1;
  for (int i = 1; i < *argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      while (i < *argc) argv[w++] = argv[i++];
      break;
    }
    if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
      if (i + 1 >= *argc) {
        snprintf(err, errlen, "%s: missing value", a);
        return -1;
      }
      o->output = argv[++i];
    } else if (strncmp(a, "--output=", 9) == 0) {
      o->output = a + 9;
    } else if (strcmp(a, "--replace") == 0) {
      o->replace = 1;
    } else {
      argv[w++] = argv[i];
    }
  }
  argv[w] = NULL;
  *argc = w;
  return 0;
}

typedef struct progress {
  const char *what;
  size_t next;
} progress_t;

static void on_progress(size_t done, size_t total, void *data) {
  progress_t *p = data;
  if (total < PROGRESS_MIN) return;
  if (done >= p->next || done == total) {
    fprintf(stderr, "%s: %s %zu/%zu topics (%zu%%)\n", PROGRAM, p->what, done, total, done * 100 / total);
    while (p->next <= done) p->next += total / 20 > 0 ? total / 20 : 1;
  }
}

/* Read and verify a file; prints the error. */
static int open_snapshot(const char *path, snap_t *s) {
  char err[512];
  char *buf = NULL;
  size_t len = 0;
  if (snap_read_file(path, &buf, &len, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", PROGRAM, err);
    return EXIT_IO;
  }
  if (snap_parse(buf, len, s, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s: bad snapshot: %s\n", PROGRAM, path, err);
    free(buf);
    return EXIT_BADFILE;
  }
  s->owner = buf;
  s->release = free;
  return EXIT_OK;
}

static int connect_redis(const sc_conf_t *conf, redisContext **c) {
  char err[512];
  sc_redis_addr_t addr;
  memset(&addr, 0, sizeof addr);
  int rc = sc_binconf_redis_addr(conf, &addr, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "%s: %s\n", PROGRAM, err);
    return rc == SC_ENOMEM ? EXIT_REDIS : EXIT_USAGE;
  }
  rc = snap_redis_connect(c, &addr, (int)sc_conf_int(conf, "timeout_ms"), err, sizeof err);
  sc_redis_addr_dispose(&addr);
  if (rc != 0) {
    fprintf(stderr, "%s: %s\n", PROGRAM, err);
    return EXIT_REDIS;
  }
  return EXIT_OK;
}

static int cmd_save(const sc_conf_t *conf, const opts_t *o) {
  char err[512];
  redisContext *c = NULL;
  snap_t s;
  memset(&s, 0, sizeof s);
  int code = connect_redis(conf, &c);
  if (code != EXIT_OK) return code;
  if (snap_redis_read(c, &s, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", PROGRAM, err);
    redisFree(c);
    return EXIT_REDIS;
  }
  redisFree(c);
  int to_stdout = o->output == NULL || strcmp(o->output, "-") == 0;
  if (s.count >= PROGRESS_MIN && sc_conf_bool(conf, "progress"))
    fprintf(stderr, "%s: read %zu topics at seq %" PRIu64 ", writing %s\n", PROGRAM, s.count, s.seq,
            to_stdout ? "to stdout" : o->output);
  int rc;
  if (to_stdout) {
    rc = snap_write(stdout, &s);
    if (rc == 0 && fflush(stdout) != 0) rc = SC_EIO;
    if (rc != 0) snprintf(err, sizeof err, "writing to stdout: %s", sc_strerror(rc));
  } else {
    rc = snap_write_file(o->output, &s, err, sizeof err);
  }
  if (rc != 0) {
    fprintf(stderr, "%s: %s\n", PROGRAM, err);
    code = EXIT_IO;
  } else {
    fprintf(stderr, "%s: saved %zu topics at seq %" PRIu64 " (epoch %s)%s%s\n", PROGRAM, s.count, s.seq,
            s.epoch[0] ? s.epoch : "none", to_stdout ? "" : " to ", to_stdout ? "" : o->output);
  }
  snap_dispose(&s);
  return code;
}

static void print_summary(FILE *f, const char *prefix, const snap_stats_t *st) {
  fprintf(f, "%sadded=%zu updated=%zu deleted=%zu unchanged=%zu kept=%zu\n", prefix, st->added, st->updated,
          st->deleted, st->unchanged, st->kept);
}

static int cmd_load(const sc_conf_t *conf, const opts_t *o, const char *path) {
  char err[512];
  redisContext *c = NULL;
  snap_t s;
  memset(&s, 0, sizeof s);
  /* Verify everything before the first byte goes to Redis. */
  int code = open_snapshot(path, &s);
  if (code != EXIT_OK) return code;
  if ((code = connect_redis(conf, &c)) != EXIT_OK) {
    snap_dispose(&s);
    return code;
  }
  progress_t p = {"restored", 0};
  snap_stats_t st;
  int rc = snap_load(c, &s, o->replace, (size_t)sc_conf_int(conf, "batch_size"),
                     sc_conf_bool(conf, "progress") ? on_progress : NULL, &p, &st, err, sizeof err);
  redisFree(c);
  if (rc != 0) {
    fprintf(stderr, "%s: load stopped: %s\n", PROGRAM, err);
    print_summary(stderr, PROGRAM ": before stopping: ", &st);
    code = EXIT_REDIS;
  } else {
    print_summary(stdout, "", &st);
  }
  snap_dispose(&s);
  return code;
}

static int cmd_verify(const char *path) {
  snap_t s;
  memset(&s, 0, sizeof s);
  int code = open_snapshot(path, &s);
  if (code != EXIT_OK) return code;
  printf("ok: %s: version %d, %zu topics, seq %" PRIu64 ", epoch %s, created %" PRId64 ", sha256 %s\n", path,
         s.version, s.count, s.seq, s.epoch[0] ? s.epoch : "none", s.created, s.sha256);
  snap_dispose(&s);
  return EXIT_OK;
}

static void on_plan(snap_action_t a, const snap_topic_t *t, void *data) {
  (void)data;
  printf("%-9s %.*s\n", snap_action_name(a), (int)t->topic_len, t->topic);
}

static int cmd_diff(const sc_conf_t *conf, const opts_t *o, const char *path) {
  char err[512];
  redisContext *c = NULL;
  snap_t s, cur;
  memset(&s, 0, sizeof s);
  memset(&cur, 0, sizeof cur);
  int code = open_snapshot(path, &s);
  if (code != EXIT_OK) return code;
  if ((code = connect_redis(conf, &c)) != EXIT_OK) goto done;
  if (snap_redis_read(c, &cur, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", PROGRAM, err);
    code = EXIT_REDIS;
    goto done;
  }
  snap_stats_t st;
  if (snap_plan(&s, &cur, o->replace, on_plan, NULL, &st) != 0) {
    fprintf(stderr, "%s: out of memory\n", PROGRAM);
    code = EXIT_REDIS;
    goto done;
  }
  print_summary(stdout, o->replace ? "summary (--replace): " : "summary: ", &st);
  code = st.added + st.updated + st.deleted > 0 ? EXIT_DIFF : EXIT_OK;
done:
  if (c != NULL) redisFree(c);
  snap_dispose(&cur);
  snap_dispose(&s);
  return code;
}

int main(int argc, char **argv, char **envp) {
  char err[512];
  opts_t o = {NULL, 0};
  sc_conf_t *conf = NULL;
  int code = EXIT_USAGE;
  if (take_flags(&argc, argv, &o, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", PROGRAM, err);
    return EXIT_USAGE;
  }
  if (sc_conf_load(&conf, PROGRAM, "snapshot", specs, NSPECS, argc, argv, envp, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", PROGRAM, err);
    return EXIT_USAGE;
  }
  if (sc_conf_help_wanted(conf)) {
    usage(stdout);
    sc_conf_free(conf);
    return EXIT_OK;
  }
  sc_log_level_t level;
  sc_log_format_t format;
  if (sc_binconf_log(conf, &level, &format, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", PROGRAM, err);
    goto done;
  }
  sc_log_init("snapshot", level, format);
  if (sc_conf_check_wanted(conf)) {
    sc_redis_addr_t addr;
    memset(&addr, 0, sizeof addr);
    if (sc_binconf_redis_addr(conf, &addr, err, sizeof err) != 0) {
      fprintf(stderr, "%s: %s\n", PROGRAM, err);
      goto done;
    }
    sc_redis_addr_dispose(&addr);
    sc_conf_print(conf, stdout);
    code = EXIT_OK;
    goto done;
  }
  int nargs = 0;
  char **args = sc_conf_args(conf, &nargs);
  const char *cmd = nargs > 0 ? args[0] : NULL;
  int want = cmd == NULL ? -1 : strcmp(cmd, "save") == 0 ? 1 : 2;
  if (cmd == NULL || (strcmp(cmd, "save") != 0 && strcmp(cmd, "load") != 0 && strcmp(cmd, "verify") != 0 &&
                      strcmp(cmd, "diff") != 0)) {
    fprintf(stderr, "%s: %s (try --help)\n", PROGRAM, cmd == NULL ? "missing command" : "unknown command");
    goto done;
  }
  if (nargs != want) {
    fprintf(stderr, "%s %s: %s\n", PROGRAM, cmd, want == 1 ? "takes no FILE argument (use -o FILE)" : "needs one FILE");
    goto done;
  }
  if ((o.output != NULL && want != 1) || (o.replace && strcmp(cmd, "load") != 0 && strcmp(cmd, "diff") != 0)) {
    fprintf(stderr, "%s %s: %s does not apply\n", PROGRAM, cmd, o.output != NULL ? "-o" : "--replace");
    goto done;
  }
  if (strcmp(cmd, "save") == 0) code = cmd_save(conf, &o);
  else if (strcmp(cmd, "load") == 0) code = cmd_load(conf, &o, args[1]);
  else if (strcmp(cmd, "verify") == 0) code = cmd_verify(args[1]);
  else code = cmd_diff(conf, &o, args[1]);
done:
  sc_conf_free(conf);
  return code;
}
