/*
 * The publisher library and the statecast-publisher CLI against a real
 * redis-server. The kv-updater is simulated by a blocking SUBSCRIBE
 * connection of the test itself; "nothing was sent" is shown by the next
 * message on that subscription being a later, valid sentinel.
 */
#include "err.h"
#include "statecast_publisher.h"
#include "support.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static sc_test_redis_t g_redis;
static char g_url[64];

static void setup(void) {
  cr_assert_eq(sc_test_redis_start(&g_redis, NULL), 0, "redis-server did not start");
  sc_test_redis_url(&g_redis, g_url, sizeof g_url);
}

static void teardown(void) { sc_test_redis_stop(&g_redis, 0); }

TestSuite(publisher, .init = setup, .fini = teardown, .timeout = 90);

/* ---- helpers --------------------------------------------------------------- */

/* A connection SUBSCRIBEd to update:{t} for each topic (NULL-terminated). */
static redisContext *subscribe(const char *const *topics) {
  redisContext *c = sc_test_redis_connect(&g_redis);
  cr_assert_not_null(c);
  redisSetTimeout(c, (struct timeval){20, 0});
  for (size_t i = 0; topics[i] != NULL; i++) {
    redisReply *r = redisCommand(c, "SUBSCRIBE update:{%s}", topics[i]);
    cr_assert_not_null(r, "SUBSCRIBE failed");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
  }
  return c;
}

static redisContext *subscribe1(const char *topic) {
  const char *topics[] = {topic, NULL};
  return subscribe(topics);
}

/* Wait (up to 20 s) for the next message and check its channel and exact bytes. */
static void expect_message(redisContext *c, const char *topic, const char *body, size_t body_len) {
  redisReply *r = NULL;
  cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK, "no message for %s: %s", topic, c->errstr);
  cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
  cr_assert_eq(r->elements, 3);
  cr_assert_str_eq(r->element[0]->str, "message");
  char channel[300];
  snprintf(channel, sizeof channel, "update:{%s}", topic);
  cr_assert_str_eq(r->element[1]->str, channel);
  cr_assert_eq(r->element[2]->len, body_len, "payload %.*s, want %.*s", (int)r->element[2]->len,
               r->element[2]->str, (int)body_len, body);
  cr_assert(memcmp(r->element[2]->str, body, body_len) == 0, "payload %.*s, want %.*s", (int)r->element[2]->len,
            r->element[2]->str, (int)body_len, body);
  freeReplyObject(r);
}

static void expect_message_str(redisContext *c, const char *topic, const char *body) {
  expect_message(c, topic, body, strlen(body));
}

static sc_publisher_t *new_publisher(const sc_publisher_opts_t *opts) {
  sc_publisher_t *p = NULL;
  cr_assert_eq(sc_publisher_new(&p, g_url, opts), 0);
  cr_assert_not_null(p);
  return p;
}

/* A URL on a loopback port nobody listens on. */
static void dead_url(char *buf, size_t cap) {
  snprintf(buf, cap, "redis://127.0.0.1:%d", sc_test_free_port());
}

typedef struct run_result {
  int code;
  char out[16384];
  char err[16384];
} run_result_t;

/* Run statecast-publisher with args (NULL-terminated, without argv[0]).
 * These tests play the kv-updater with a plain SUBSCRIBE, so they use the
 * pub/sub path (--pubsub); the durable inbox path is covered by
 * test_failover.c. */
static void run_cli(run_result_t *res, const char *const *args, char *const *env, const char *stdin_data) {
  char *bin = sc_test_bin("statecast-publisher");
  const char *argv[32] = {bin, "--pubsub"};
  size_t n = 2;
  for (size_t i = 0; args[i] != NULL && n < 31; i++) argv[n++] = args[i];
  argv[n] = NULL;
  res->code = sc_test_run(bin, (char *const *)argv, env, stdin_data, res->out, sizeof res->out, res->err,
                          sizeof res->err);
  free(bin);
}

/* ---- library --------------------------------------------------------------- */

Test(publisher, library_publish_delivers_the_exact_bytes) {
  redisContext *sub = subscribe1("lib.exact");
  sc_publisher_t *p = new_publisher(NULL);
  static const char body[] = " {\"n\": 9007199254740993, \"f\":1.10, \"s\":\"\xc3\xa9\"}\n";
  long long receivers = -1;
  cr_assert_eq(sc_publisher_publish(p, "lib.exact", 9, body, sizeof body - 1, &receivers), 0, "%s",
               sc_publisher_last_error(p));
  cr_assert_eq(receivers, 1);
  cr_assert_str_eq(sc_publisher_last_error(p), "");
  expect_message(sub, "lib.exact", body, sizeof body - 1);
  /* the same connection serves later publishes */
  cr_assert_eq(sc_publisher_publish(p, "lib.exact", 9, "[1]", 3, NULL), 0);
  expect_message_str(sub, "lib.exact", "[1]");
  sc_publisher_free(p);
  redisFree(sub);
}

Test(publisher, publish_without_subscriber_returns_noreceiver) {
  sc_publisher_t *p = new_publisher(NULL);
  long long receivers = -1;
  cr_assert_eq(sc_publisher_publish(p, "nobody", 6, "{}", 2, &receivers), SC_ENORECEIVER);
  cr_assert_eq(receivers, 0);
  cr_assert_neq(strstr(sc_publisher_last_error(p), "not committed"), NULL, "%s", sc_publisher_last_error(p));
  sc_publisher_free(p);
}

Test(publisher, delete_publishes_json_null) {
  redisContext *sub = subscribe1("gone");
  sc_publisher_t *p = new_publisher(NULL);
  long long receivers = -1;
  cr_assert_eq(sc_publisher_delete(p, "gone", 4, &receivers), 0);
  cr_assert_eq(receivers, 1);
  expect_message_str(sub, "gone", "null");
  sc_publisher_free(p);
  redisFree(sub);
}

Test(publisher, invalid_messages_are_rejected_locally_and_nothing_is_sent) {
  redisContext *sub = subscribe1("v");
  sc_publisher_opts_t opts = {.max_message_bytes = 16};
  sc_publisher_t *p = new_publisher(&opts);
  long long receivers = 7;

  cr_assert_eq(sc_publisher_publish(p, "v", 1, "{\"a\":01}", 8, &receivers), SC_EJSON);
  cr_assert_eq(receivers, -1);
  cr_assert_neq(strstr(sc_publisher_last_error(p), "at byte"), NULL, "%s", sc_publisher_last_error(p));
  cr_assert_eq(sc_publisher_publish(p, "v", 1, "{\"a\":", 5, NULL), SC_EJSON);
  cr_assert_eq(sc_publisher_publish(p, "v", 1, "\"\xff\"", 3, NULL), SC_EUTF8);
  cr_assert_eq(sc_publisher_publish(p, "v", 1, "\"\xed\xa0\x80\"", 5, NULL), SC_EUTF8);
  cr_assert_eq(sc_publisher_publish(p, "v", 1, "\"0123456789abcdef\"", 18, NULL), SC_ETOOBIG);
  cr_assert_eq(sc_publisher_publish(p, "v", 1, "", 0, NULL), SC_EJSON);
  cr_assert_eq(sc_publisher_publish(p, "v x", 3, "1", 1, NULL), SC_ETOPIC);
  cr_assert_eq(sc_publisher_publish(p, "", 0, "1", 1, NULL), SC_ETOPIC);
  cr_assert_eq(sc_publisher_publish(p, "v}", 2, "1", 1, NULL), SC_ETOPIC);
  cr_assert_eq(sc_publisher_publish(NULL, "v", 1, "1", 1, NULL), SC_EINVAL);

  cr_assert_eq(sc_publisher_publish(p, "v", 1, "\"sentinel\"", 10, NULL), 0);
  expect_message_str(sub, "v", "\"sentinel\"");
  sc_publisher_free(p);
  redisFree(sub);
}

Test(publisher, bad_url_is_refused_at_creation) {
  sc_publisher_t *p = (sc_publisher_t *)1;
  cr_assert_eq(sc_publisher_new(&p, "http://x", NULL), SC_EURL);
  cr_assert_null(p);
  sc_publisher_free(NULL);
}

Test(publisher, unreachable_redis_fails_with_conn) {
  char url[64];
  dead_url(url, sizeof url);
  sc_publisher_t *p = NULL;
  cr_assert_eq(sc_publisher_new(&p, url, NULL), 0);
  cr_assert_eq(sc_publisher_publish(p, "t", 1, "1", 1, NULL), SC_ECONN);
  cr_assert_neq(sc_publisher_last_error(p)[0], '\0');
  sc_publisher_free(p);
}

/* A listener that never accepts: connects succeed (backlog), replies never come. */
static int silent_listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  cr_assert_eq(listen(fd, 16), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  *port = ntohs(sa.sin_port);
  return fd;
}

Test(publisher, unresponsive_redis_times_out) {
  int port;
  int fd = silent_listener(&port);
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  sc_publisher_opts_t opts = {.command_timeout_ms = 200};
  sc_publisher_t *p = NULL;
  cr_assert_eq(sc_publisher_new(&p, url, &opts), 0);
  cr_assert_eq(sc_publisher_publish(p, "t", 1, "1", 1, NULL), SC_ETIMEOUT, "%s", sc_publisher_last_error(p));
  sc_publisher_free(p);
  close(fd);
}

Test(publisher, reconnects_after_redis_restart) {
  sc_publisher_t *p = new_publisher(NULL);
  cr_assert_eq(sc_publisher_publish(p, "r", 1, "1", 1, NULL), SC_ENORECEIVER);
  sc_test_redis_stop(&g_redis, 1);
  cr_assert_eq(sc_test_redis_restart(&g_redis, NULL), 0);
  redisContext *sub = subscribe1("r");
  /* the old connection is dead; one reconnect and resend makes it through */
  cr_assert_eq(sc_publisher_publish(p, "r", 1, "2", 1, NULL), 0, "%s", sc_publisher_last_error(p));
  expect_message_str(sub, "r", "2");
  sc_publisher_free(p);
  redisFree(sub);
}

Test(publisher, authenticates_with_password_option_and_selects_db) {
  /* set at run time: the test support's readiness PING has no AUTH */
  redisContext *admin = sc_test_redis_connect(&g_redis);
  cr_assert_not_null(admin);
  redisReply *r = redisCommand(admin, "CONFIG SET requirepass s3cret");
  cr_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
  freeReplyObject(r);
  redisFree(admin);
  char url[96];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/2", g_redis.port);
  sc_publisher_t *p = NULL;
  cr_assert_eq(sc_publisher_new(&p, url, NULL), 0);
  cr_assert_eq(sc_publisher_publish(p, "a", 1, "1", 1, NULL), SC_EREDIS);
  cr_assert_neq(strstr(sc_publisher_last_error(p), "NOAUTH"), NULL, "%s", sc_publisher_last_error(p));
  sc_publisher_free(p);

  sc_publisher_opts_t opts = {.password = "s3cret"};
  cr_assert_eq(sc_publisher_new(&p, url, &opts), 0);
  cr_assert_eq(sc_publisher_publish(p, "a", 1, "1", 1, NULL), SC_ENORECEIVER, "%s", sc_publisher_last_error(p));
  sc_publisher_free(p);

  snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", g_redis.port);
  cr_assert_eq(sc_publisher_new(&p, url, &opts), 0); /* the option overrides the URL's password */
  cr_assert_eq(sc_publisher_publish(p, "a", 1, "1", 1, NULL), SC_ENORECEIVER, "%s", sc_publisher_last_error(p));
  sc_publisher_free(p);
}

/* ---- CLI ------------------------------------------------------------------- */

Test(publisher, cli_publishes_json_argument) {
  redisContext *sub = subscribe1("cli.arg");
  run_result_t res;
  const char *args[] = {"--redis-url", g_url, "cli.arg", "{\"n\":1.10}", NULL};
  run_cli(&res, args, NULL, NULL);
  cr_assert_eq(res.code, 0, "exit %d, stderr: %s", res.code, res.err);
  expect_message_str(sub, "cli.arg", "{\"n\":1.10}");
  redisFree(sub);
}

Test(publisher, cli_reads_json_from_stdin) {
  redisContext *sub = subscribe1("cli.stdin");
  run_result_t res;
  const char *args[] = {"--redis-url", g_url, "cli.stdin", NULL};
  run_cli(&res, args, NULL, "{\"big\": 9007199254740993}\n");
  cr_assert_eq(res.code, 0, "exit %d, stderr: %s", res.code, res.err);
  expect_message_str(sub, "cli.stdin", "{\"big\": 9007199254740993}\n");
  redisFree(sub);
}

Test(publisher, cli_exit_codes) {
  redisContext *sub = subscribe1("cli.codes");
  run_result_t res;

  const char *none[] = {"--redis-url", g_url, NULL};
  run_cli(&res, none, NULL, NULL);
  cr_assert_eq(res.code, 1, "no TOPIC: exit %d", res.code);

  const char *unknown[] = {"--no-such-option", "x", "cli.codes", "1", NULL};
  run_cli(&res, unknown, NULL, NULL);
  cr_assert_eq(res.code, 1, "unknown option: exit %d", res.code);

  const char *badurl[] = {"--redis-url", "http://nope", "cli.codes", "1", NULL};
  run_cli(&res, badurl, NULL, NULL);
  cr_assert_eq(res.code, 1, "bad URL: exit %d", res.code);

  const char *invalid[] = {"--redis-url", g_url, "cli.codes", "{\"a\":}", NULL};
  run_cli(&res, invalid, NULL, NULL);
  cr_assert_eq(res.code, 2, "invalid JSON: exit %d", res.code);
  cr_assert_neq(strstr(res.err, "at byte"), NULL, "stderr: %s", res.err);

  const char *badtopic[] = {"--redis-url", g_url, "cli codes", "1", NULL};
  run_cli(&res, badtopic, NULL, NULL);
  cr_assert_eq(res.code, 2, "invalid topic: exit %d", res.code);

  const char *toobig[] = {"--redis-url", g_url, "--max-message-bytes", "4", "cli.codes", "12345", NULL};
  run_cli(&res, toobig, NULL, NULL);
  cr_assert_eq(res.code, 2, "too big: exit %d", res.code);

  const char *norecv[] = {"--redis-url", g_url, "cli.nobody", "1", NULL};
  run_cli(&res, norecv, NULL, NULL);
  cr_assert_eq(res.code, 4, "no receiver: exit %d", res.code);
  cr_assert_neq(strstr(res.err, "NOT committed"), NULL, "stderr: %s", res.err);

  char dead[64];
  dead_url(dead, sizeof dead);
  const char *unreachable[] = {"--redis-url", dead, "cli.codes", "1", NULL};
  run_cli(&res, unreachable, NULL, NULL);
  cr_assert_eq(res.code, 3, "unreachable: exit %d", res.code);

  int port;
  int fd = silent_listener(&port);
  char silent[64];
  snprintf(silent, sizeof silent, "redis://127.0.0.1:%d", port);
  const char *timeout[] = {"--redis-url", silent, "--command-timeout-ms", "200", "cli.codes", "1", NULL};
  run_cli(&res, timeout, NULL, NULL);
  cr_assert_eq(res.code, 3, "timeout: exit %d", res.code);
  close(fd);

  /* none of the refused messages reached the channel */
  const char *ok[] = {"--redis-url", g_url, "cli.codes", "\"sentinel\"", NULL};
  run_cli(&res, ok, NULL, NULL);
  cr_assert_eq(res.code, 0, "exit %d, stderr: %s", res.code, res.err);
  expect_message_str(sub, "cli.codes", "\"sentinel\"");
  redisFree(sub);
}

Test(publisher, cli_lines_publishes_good_lines_and_reports_bad_ones) {
  const char *topics[] = {"l1", "l2", NULL};
  redisContext *sub = subscribe(topics);
  run_result_t res;
  const char *args[] = {"--redis-url", g_url, "--lines", NULL};
  const char *input = "{\"topic\":\"l1\",\"data\":{\"a\": 1.10}}\n"
                      "{\"topic\":\"l1\",\"data\":{\"a\":}}\n"
                      "\n"
                      "{\"topic\":\"l2\",\"data\":[9007199254740993, \"x\"]}\n"
                      "{\"topic\":\"l2\"}\n"
                      "{\"topic\":\"bad topic\",\"data\":1}\n"
                      "{\"data\":null,\"topic\":\"l1\"}"; /* no trailing newline */
  run_cli(&res, args, NULL, input);
  cr_assert_eq(res.code, 2, "exit %d, stderr: %s", res.code, res.err);
  cr_assert_neq(strstr(res.err, "3 published"), NULL, "stderr: %s", res.err);
  cr_assert_neq(strstr(res.err, "3 rejected"), NULL, "stderr: %s", res.err);
  cr_assert_neq(strstr(res.err, "line 2"), NULL, "stderr: %s", res.err);
  expect_message_str(sub, "l1", "{\"a\":1.10}");
  expect_message_str(sub, "l2", "[9007199254740993,\"x\"]");
  expect_message_str(sub, "l1", "null");
  redisFree(sub);
}

Test(publisher, cli_lines_exit_code_is_the_worst_seen) {
  redisContext *sub = subscribe1("w1");
  run_result_t res;
  const char *args[] = {"--redis-url", g_url, "--lines", NULL};
  run_cli(&res, args, NULL, "{\"topic\":\"w1\",\"data\":1}\n{\"topic\":\"w.nobody\",\"data\":2}\n");
  cr_assert_eq(res.code, 4, "exit %d, stderr: %s", res.code, res.err);
  expect_message_str(sub, "w1", "1");

  run_cli(&res, args, NULL, "{\"topic\":\"w1\",\"data\":3}\n");
  cr_assert_eq(res.code, 0, "exit %d, stderr: %s", res.code, res.err);
  expect_message_str(sub, "w1", "3");

  const char *bad[] = {"--redis-url", g_url, "--lines", "w1", NULL};
  run_cli(&res, bad, NULL, "");
  cr_assert_eq(res.code, 1, "--lines with TOPIC: exit %d", res.code);
  redisFree(sub);
}

Test(publisher, cli_every_exec_publishes_repeatedly_and_stops_on_sigterm) {
  redisContext *sub = subscribe1("ticker");
  char *bin = sc_test_bin("statecast-publisher");
  char log[] = "/tmp/statecast-pub-every-XXXXXX";
  int lfd = mkstemp(log);
  cr_assert_geq(lfd, 0);
  close(lfd);
  /* every other run fails or prints invalid JSON; the loop must carry on */
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "n=$(cat %s.n 2>/dev/null || echo 0); echo $((n+1)) > %s.n; "
           "case $((n %% 3)) in 0) echo '{\"tick\": true}';; 1) exit 3;; *) echo 'not json';; esac",
           log, log);
  char *argv[] = {bin, "--pubsub", "--redis-url", g_url, "--every", "1", "--exec", cmd, "ticker", NULL};
  pid_t pid = sc_test_spawn(bin, argv, NULL, log);
  cr_assert_gt(pid, 0);
  expect_message_str(sub, "ticker", "{\"tick\": true}\n");
  expect_message_str(sub, "ticker", "{\"tick\": true}\n");
  int status = sc_test_stop(pid, SIGTERM, 20000);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
  FILE *f = fopen(log, "r");
  cr_assert_not_null(f);
  char text[8192];
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  fclose(f);
  cr_assert_neq(strstr(text, "non-zero"), NULL, "log: %s", text);
  cr_assert_neq(strstr(text, "JSON"), NULL, "log: %s", text);
  char path[300];
  snprintf(path, sizeof path, "%s.n", log);
  unlink(path);
  unlink(log);
  free(bin);
  redisFree(sub);
}

Test(publisher, cli_help_exits_0) {
  run_result_t res;
  const char *args[] = {"--help", NULL};
  run_cli(&res, args, NULL, NULL);
  cr_assert_eq(res.code, 0);
  cr_assert_neq(strstr(res.out, "Exit codes"), NULL, "stdout: %s", res.out);
  cr_assert_neq(strstr(res.out, "--lines"), NULL, "stdout: %s", res.out);
}

Test(publisher, cli_check_config_prints_the_effective_redis_url) {
  run_result_t res;
  char env_url[] = "STATECAST_REDIS_URL=redis://127.0.0.1:1111";
  char *env[] = {env_url, NULL};
  const char *plain[] = {"--check-config", NULL};
  run_cli(&res, plain, env, NULL);
  cr_assert_eq(res.code, 0, "stderr: %s", res.err);
  cr_assert_neq(strstr(res.out, "redis://127.0.0.1:1111"), NULL, "stdout: %s", res.out);

  const char *flag[] = {"--check-config", "--redis-url", "redis://127.0.0.1:2222", NULL};
  run_cli(&res, flag, env, NULL);
  cr_assert_eq(res.code, 0, "stderr: %s", res.err);
  cr_assert_neq(strstr(res.out, "redis://127.0.0.1:2222"), NULL, "stdout: %s", res.out);
  cr_assert_eq(strstr(res.out, "1111"), NULL, "stdout: %s", res.out);
}

Test(publisher, cli_redis_url_from_env_and_flag_precedence) {
  redisContext *sub = subscribe1("prec");
  run_result_t res;
  char env_good[96];
  snprintf(env_good, sizeof env_good, "STATECAST_REDIS_URL=%s", g_url);
  char *env1[] = {env_good, NULL};
  const char *args[] = {"prec", "1", NULL};
  run_cli(&res, args, env1, NULL);
  cr_assert_eq(res.code, 0, "env URL: exit %d, stderr: %s", res.code, res.err);
  expect_message_str(sub, "prec", "1");

  char dead[64], env_dead[96];
  dead_url(dead, sizeof dead);
  snprintf(env_dead, sizeof env_dead, "STATECAST_REDIS_URL=%s", dead);
  char *env2[] = {env_dead, NULL};
  run_cli(&res, args, env2, NULL);
  cr_assert_eq(res.code, 3, "dead env URL: exit %d", res.code);

  const char *flag_args[] = {"--redis-url", g_url, "prec", "2", NULL};
  run_cli(&res, flag_args, env2, NULL);
  cr_assert_eq(res.code, 0, "flag beats env: exit %d, stderr: %s", res.code, res.err);
  expect_message_str(sub, "prec", "2");
  redisFree(sub);
}

Test(publisher, connects_over_a_unix_socket) {
  char sock[400], url[420];
  snprintf(sock, sizeof sock, "%s/redis.sock", g_redis.dir);
  sc_test_redis_stop(&g_redis, 1);
  const char *extra[] = {"--unixsocket", sock, NULL};
  cr_assert_eq(sc_test_redis_restart(&g_redis, extra), 0);
  redisContext *sub = subscribe1("unix");
  snprintf(url, sizeof url, "unix://%s?db=1", sock);
  sc_publisher_t *p = NULL;
  cr_assert_eq(sc_publisher_new(&p, url, NULL), 0);
  cr_assert_eq(sc_publisher_publish(p, "unix", 4, "{\"via\":\"socket\"}", 16, NULL), 0, "%s",
               sc_publisher_last_error(p));
  expect_message_str(sub, "unix", "{\"via\":\"socket\"}");
  sc_publisher_free(p);
  redisFree(sub);
}

Test(publisher, survives_a_connection_killed_by_redis_without_sigpipe) {
  redisContext *sub = subscribe1("killed");
  sc_publisher_opts_t opts = {.max_message_bytes = 32 * 1024 * 1024};
  sc_publisher_t *p = new_publisher(&opts);
  cr_assert_eq(sc_publisher_publish(p, "killed", 6, "1", 1, NULL), 0);
  expect_message_str(sub, "killed", "1");
  redisContext *admin = sc_test_redis_connect(&g_redis);
  cr_assert_not_null(admin);
  redisReply *r = redisCommand(admin, "CLIENT KILL TYPE normal");
  cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= 1);
  freeReplyObject(r);
  redisFree(admin);
  /* a body larger than the socket buffers makes a later write() of the same
   * command hit the reset socket (EPIPE) */
  size_t len = 16 * 1024 * 1024;
  char *big = malloc(len);
  cr_assert_not_null(big);
  memset(big, 'x', len);
  big[0] = '"';
  big[len - 1] = '"';
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(sc_publisher_publish(p, "killed", 6, big, len, NULL), 0, "%s", sc_publisher_last_error(p));
    expect_message(sub, "killed", big, len);
    admin = sc_test_redis_connect(&g_redis);
    r = redisCommand(admin, "CLIENT KILL TYPE normal");
    freeReplyObject(r);
    redisFree(admin);
  }
  sigset_t pending;
  sigpending(&pending);
  cr_assert_not(sigismember(&pending, SIGPIPE));
  free(big);
  sc_publisher_free(p);
  redisFree(sub);
}
