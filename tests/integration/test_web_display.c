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

static void setup(void) {
  locate_trees();
  cr_assert_eq(sc_test_redis_start(&g_redis, NULL), 0, "redis-server did not start");
  char url[64], listen[64], health[64], webroot[PATH_MAX + 64];
  sc_test_redis_url(&g_redis, url, sizeof url);
  snprintf(webroot, sizeof webroot, "%s/apiserver/web", g_src);
  snprintf(g_kvu_log, sizeof g_kvu_log, "%s/tests/web_display-kv-updater.log", g_build);
  snprintf(g_api_log, sizeof g_api_log, "%s/tests/web_display-apiserver.log", g_build);
  unlink(g_kvu_log);
  unlink(g_api_log);

  int health_port = sc_test_free_port();
  snprintf(health, sizeof health, "127.0.0.1:%d", health_port);
  char *kvu_bin = sc_test_bin("statecast-kv-updater");
  cr_assert_not_null(kvu_bin);
  char *kvu_argv[] = {"statecast-kv-updater", "--redis-url", url, "--health-listen", health, NULL};
  g_kvu = sc_test_spawn(kvu_bin, kvu_argv, NULL, g_kvu_log);
  free(kvu_bin);
  cr_assert_gt(g_kvu, 0, "cannot spawn statecast-kv-updater");
  cr_assert(sc_test_wait_http(health_port, "/readyz", 200, 15000), "kv-updater not ready; see %s", g_kvu_log);

  g_api_port = sc_test_free_port();
  snprintf(listen, sizeof listen, "127.0.0.1:%d", g_api_port);
  char *api_bin = sc_test_bin("statecast-apiserver");
  cr_assert_not_null(api_bin);
  char *api_argv[] = {"statecast-apiserver", "--redis-url", url, "--listen", listen, "--web-root", webroot, NULL};
  g_api = sc_test_spawn(api_bin, api_argv, NULL, g_api_log);
  free(api_bin);
  cr_assert_gt(g_api, 0, "cannot spawn statecast-apiserver");
  cr_assert(sc_test_wait_http(g_api_port, "/readyz", 200, 15000), "apiserver not ready; see %s", g_api_log);
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

Test(web_display, shows_a_publish_live_on_the_loaded_page) {
  char node[PATH_MAX], chromium[PATH_MAX], script[PATH_MAX + 64], shot[PATH_MAX + 64];
  const char *env_chromium = getenv("CHROMIUM");
  snprintf(chromium, sizeof chromium, "%s", env_chromium != NULL ? env_chromium : "/usr/bin/chromium");
  cr_assert(access(chromium, X_OK) == 0, "no browser at %s: %s", chromium, INSTALL_HINT);
  cr_assert(find_on_path("node", node, sizeof node) == 0 || find_on_path("nodejs", node, sizeof node) == 0,
            "node not found on PATH: %s", INSTALL_HINT);
  snprintf(script, sizeof script, "%s/tests/e2e/display.mjs", g_src);
  cr_assert(is_file(script), "missing %s", script);
  snprintf(shot, sizeof shot, "%s/tests/web_display.png", g_build);

  redisContext *c = sc_test_redis_connect(&g_redis);
  cr_assert_not_null(c);
  publish_committed(c, "demo/temp", "{\"value\":21.5}");
  publish_committed(c, "other/noise", "{\"value\":99}");
  redisFree(c);

  char url[128], port[16];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/?topic=demo/*", g_api_port);
  snprintf(port, sizeof port, "%d", g_redis.port);
  char *argv[] = {node,       script,         "--url",        url,          "--topic",   "demo/temp",
                  "--initial", "21.5",         "--expect",     "22.75",      "--absent",  "other/noise",
                  "--chromium", chromium,      "--screenshot", shot,         "--timeout-ms", "90000",
                  "--wait-ms", "10000",        "--",           "redis-cli",  "-h",        "127.0.0.1",
                  "-p",        port,           "PUBLISH",      "update:{demo/temp}", "{\"value\":22.75}", NULL};
  static char out[16384], err[16384];
  int code = sc_test_run(node, argv, NULL, NULL, out, sizeof out, err, sizeof err);
  cr_log_info("display.mjs stdout:\n%s", out);
  if (code != 0) cr_log_error("display.mjs stderr:\n%s", err);
  cr_assert_eq(code, 0, "browser check failed (exit %d): %s\nlogs: %s, %s", code, err, g_api_log, g_kvu_log);
  cr_assert(strstr(out, "PASS") != NULL, "display.mjs did not report PASS:\n%s", out);
  cr_assert(is_file(shot), "no screenshot at %s", shot);
}
