/*
 * The web display end to end: a real redis-server, kv-updater and apiserver
 * (serving apiserver/web from the source tree), and Debian's headless
 * chromium driven by tests/e2e/display.mjs. The page is loaded first, then a
 * new value is published, and the card must show it without a reload.
 *
 * Needs chromium and node: scripts/install-browser-deps.sh installs them. A
 * missing browser is a failure with that hint, never a silent pass.
 */
#include "support.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SELF_SUFFIX "/tests/integration/test_web_display.c"
#define INSTALL_HINT "run scripts/install-browser-deps.sh (as root) to install chromium and node"

static sc_test_redis_t g_redis;
static pid_t g_kvu = -1;
static pid_t g_api = -1;
static int g_api_port;
static char g_src[PATH_MAX];   /* source tree root, from __FILE__ */
static char g_build[PATH_MAX]; /* build dir: SC_TEST_BIN_DIR without /bin */
static char g_kvu_log[PATH_MAX + 64];
static char g_api_log[PATH_MAX + 64];

/* The first executable named name on PATH, into out; 0 or -1. */
static int find_on_path(const char *name, char *out, size_t cap) {
  const char *path = getenv("PATH");
  if (path == NULL || *path == '\0') path = "/usr/local/bin:/usr/bin:/bin";
  while (*path != '\0') {
    size_t len = strcspn(path, ":");
    if (len > 0 && (size_t)snprintf(out, cap, "%.*s/%s", (int)len, path, name) < cap && access(out, X_OK) == 0)
      return 0;
    path += len;
    if (*path == ':') path++;
  }
  return -1;
}

static int is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void locate_trees(void) {
  const char *self = __FILE__;
  size_t n = strlen(self), s = strlen(SELF_SUFFIX);
  cr_assert(self[0] == '/' && n > s && strcmp(self + n - s, SELF_SUFFIX) == 0,
            "cannot find the source tree from __FILE__ (%s)", self);
  snprintf(g_src, sizeof g_src, "%.*s", (int)(n - s), self);
  const char *bin = SC_TEST_BIN_DIR;
  size_t b = strlen(bin);
  if (b > 4 && strcmp(bin + b - 4, "/bin") == 0) b -= 4;
  snprintf(g_build, sizeof g_build, "%.*s", (int)b, bin);
}

static char g_redis_url[64];
static char g_webroot[PATH_MAX + 64];

/* Start statecast-apiserver on g_api_port and wait for /readyz 200. */
static void start_apiserver(void) {
  char listen[64];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", g_api_port);
  char *api_bin = sc_test_bin("statecast-apiserver");
  cr_assert_not_null(api_bin);
  char *api_argv[] = {"statecast-apiserver", "--redis-url", g_redis_url, "--listen", listen, "--web-root", g_webroot, NULL};
  g_api = sc_test_spawn(api_bin, api_argv, NULL, g_api_log);
  free(api_bin);
  cr_assert_gt(g_api, 0, "cannot spawn statecast-apiserver");
  cr_assert(sc_test_wait_http(g_api_port, "/readyz", 200, 15000), "apiserver not ready; see %s", g_api_log);
}

static void setup(void) {
  locate_trees();
  cr_assert_eq(sc_test_redis_start(&g_redis, NULL), 0, "redis-server did not start");
  char health[64];
  sc_test_redis_url(&g_redis, g_redis_url, sizeof g_redis_url);
  snprintf(g_webroot, sizeof g_webroot, "%s/apiserver/web", g_src);
  snprintf(g_kvu_log, sizeof g_kvu_log, "%s/tests/web_display-kv-updater.log", g_build);
  snprintf(g_api_log, sizeof g_api_log, "%s/tests/web_display-apiserver.log", g_build);
  unlink(g_kvu_log);
  unlink(g_api_log);

  int health_port = sc_test_free_port();
  snprintf(health, sizeof health, "127.0.0.1:%d", health_port);
  char *kvu_bin = sc_test_bin("statecast-kv-updater");
  cr_assert_not_null(kvu_bin);
  char *kvu_argv[] = {"statecast-kv-updater", "--redis-url", g_redis_url, "--health-listen", health, NULL};
  g_kvu = sc_test_spawn(kvu_bin, kvu_argv, NULL, g_kvu_log);
  free(kvu_bin);
  cr_assert_gt(g_kvu, 0, "cannot spawn statecast-kv-updater");
  cr_assert(sc_test_wait_http(health_port, "/readyz", 200, 15000), "kv-updater not ready; see %s", g_kvu_log);

  g_api_port = sc_test_free_port();
  start_apiserver();
}

static void teardown(void) {
  if (g_api > 0) sc_test_stop(g_api, SIGTERM, 10000);
  if (g_kvu > 0) sc_test_stop(g_kvu, SIGTERM, 10000);
  g_api = g_kvu = -1;
  sc_test_redis_stop(&g_redis, 0);
}

TestSuite(web_display, .init = setup, .fini = teardown, .timeout = 180);

/* PUBLISH update:{topic} json, then wait until kv-updater committed it. */
static void publish_committed(redisContext *c, const char *topic, const char *json) {
  redisReply *r = redisCommand(c, "PUBLISH update:{%s} %s", topic, json);
  cr_assert_not_null(r, "PUBLISH failed: %s", c->errstr);
  cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
  cr_assert_geq(r->integer, 1, "nobody subscribed to update:{%s}", topic);
  freeReplyObject(r);
  for (int i = 0; i < 750; i++) {
    r = redisCommand(c, "HGET state:{%s} data", topic);
    cr_assert_not_null(r, "HGET failed: %s", c->errstr);
    int done = r->type == REDIS_REPLY_STRING && strcmp(r->str, json) == 0;
    freeReplyObject(r);
    if (done) return;
    usleep(20 * 1000);
  }
  cr_assert_fail("%s was not committed within 15 s; see %s", topic, g_kvu_log);
}

/* Paths the browser check needs; fails with the install hint when missing. */
typedef struct browser {
  char node[PATH_MAX];
  char chromium[PATH_MAX];
  char script[PATH_MAX + 64];
} browser_t;

static void find_browser(browser_t *b) {
  const char *env_chromium = getenv("CHROMIUM");
  snprintf(b->chromium, sizeof b->chromium, "%s", env_chromium != NULL ? env_chromium : "/usr/bin/chromium");
  cr_assert(access(b->chromium, X_OK) == 0, "no browser at %s: %s", b->chromium, INSTALL_HINT);
  cr_assert(find_on_path("node", b->node, sizeof b->node) == 0 || find_on_path("nodejs", b->node, sizeof b->node) == 0,
            "node not found on PATH: %s", INSTALL_HINT);
  snprintf(b->script, sizeof b->script, "%s/tests/e2e/display.mjs", g_src);
  cr_assert(is_file(b->script), "missing %s", b->script);
}

Test(web_display, shows_a_publish_live_on_the_loaded_page) {
  browser_t b;
  find_browser(&b);
  char shot[PATH_MAX + 64];
  snprintf(shot, sizeof shot, "%s/tests/web_display.png", g_build);
  unlink(shot);

  redisContext *c = sc_test_redis_connect(&g_redis);
  cr_assert_not_null(c);
  publish_committed(c, "demo/temp", "{\"value\":21.5}");
  publish_committed(c, "other/noise", "{\"value\":99}");
  redisFree(c);

  char url[128], port[16];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/?topic=demo/*", g_api_port);
  snprintf(port, sizeof port, "%d", g_redis.port);
  char *argv[] = {b.node,       b.script,   "--url",        url,         "--topic",      "demo/temp",
                  "--initial",  "21.5",     "--expect",     "22.75",     "--absent",     "other/noise",
                  "--chromium", b.chromium, "--screenshot", shot,        "--timeout-ms", "90000",
                  "--wait-ms",  "10000",    "--",           "redis-cli", "-h",           "127.0.0.1",
                  "-p",         port,       "PUBLISH",      "update:{demo/temp}",        "{\"value\":22.75}",
                  NULL};
  static char out[16384], err[16384];
  int code = sc_test_run(b.node, argv, NULL, NULL, out, sizeof out, err, sizeof err);
  cr_log_info("display.mjs stdout:\n%s", out);
  cr_assert_eq(code, 0, "browser check failed (exit %d): %s\nlogs: %s, %s", code, err, g_api_log, g_kvu_log);
  cr_assert(strstr(out, "PASS") != NULL, "display.mjs did not report PASS:\n%s", out);
  cr_assert(is_file(shot), "no screenshot at %s", shot);
}

typedef struct file_has {
  const char *path;
  const char *needle;
} file_has_t;

static int pred_file_has(void *arg) {
  const file_has_t *f = arg;
  static char buf[65536];
  FILE *fp = fopen(f->path, "r");
  if (fp == NULL) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  return strstr(buf, f->needle) != NULL;
}

/* The page stays loaded while the apiserver restarts; its EventSource
 * reconnects with Last-Event-ID and the value committed meanwhile shows up. */
Test(web_display, catches_up_after_an_apiserver_restart_without_reload) {
  browser_t b;
  find_browser(&b);
  char go[PATH_MAX + 64], log[PATH_MAX + 64];
  snprintf(go, sizeof go, "%s/tests/web_display-restart.go", g_build);
  snprintf(log, sizeof log, "%s/tests/web_display-restart.log", g_build);
  unlink(go);
  unlink(log);

  redisContext *c = sc_test_redis_connect(&g_redis);
  cr_assert_not_null(c);
  publish_committed(c, "demo/temp", "{\"value\":21.5}");

  /* The driver's "publish" step waits for the go file; this test restarts
   * the apiserver and publishes before creating it. */
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", g_api_port);
  char *argv[] = {b.node,     b.script,    "--url",      url,          "--topic",
                  "demo/temp", "--initial", "21.5",       "--expect",   "23.25",
                  "--chromium", b.chromium, "--timeout-ms", "100000",   "--wait-ms",
                  "30000",    "--publish-timeout-ms", "60000", "--expect-reconnect", "yes", "--",     "/bin/sh",
                  "-c",       "while [ ! -e \"$0\" ]; do sleep 0.1; done; echo go", go, NULL};
  pid_t pid = sc_test_spawn(b.node, argv, NULL, log);
  cr_assert_gt(pid, 0);
  file_has_t loaded = {log, "initial card ok"};
  int ok = sc_test_wait(pred_file_has, &loaded, 60000);
  if (!ok) sc_test_stop(pid, SIGTERM, 5000);
  cr_assert(ok, "the page did not show the initial value; see %s", log);

  int st = sc_test_stop(g_api, SIGTERM, 15000);
  g_api = -1;
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "apiserver did not exit cleanly (status %d)", st);
  publish_committed(c, "demo/temp", "{\"value\":23.25}");
  redisFree(c);
  start_apiserver();
  FILE *fp = fopen(go, "w");
  cr_assert_not_null(fp);
  fclose(fp);

  st = sc_test_stop(pid, 0, 130000); /* longer than the driver's own timeout */
  file_has_t passed = {log, "PASS"};
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0 && pred_file_has(&passed),
            "browser check failed (status %d); see %s and %s", st, log, g_api_log);
}
