/*
 * sc_redis_t against a real redis-server: connect, commands, pub/sub,
 * reconnect after a restart or a refused first connect, command timeouts,
 * AUTH, and a clean close. Each test drives its own uv loop; a repeating
 * tick timer keeps uv_run(ONCE) short so run_until() can watch a deadline.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "err.h"
#include "redis.h"
#include "support.h"

typedef struct ctx {
  uv_loop_t loop;
  uv_timer_t tick;
  sc_test_redis_t srv;
  sc_redis_t *r;
  int ups, downs;
  int msgs;
  char channel[64], payload[64], pattern[64];
  /* command callbacks, by status */
  int ok, timeouts, conns, closeds, others;
  char last[64];
  int close_in_reply; /* close r from inside the next reply callback */
  int loop_closed;    /* the test already closed the loop itself */
} ctx_t;

static ctx_t c;

static void on_tick(uv_timer_t *t) { (void)t; }

static void on_state(sc_redis_t *r, int up, const char *why, void *data) {
  (void)r;
  (void)data;
  cr_assert_not_null(why);
  if (up) c.ups++;
  else c.downs++;
}

static void on_message(sc_redis_t *r, const char *pattern, const char *channel, size_t channel_len, const char *msg,
                       size_t msg_len, void *data) {
  (void)r;
  cr_assert_eq(data, &c);
  c.msgs++;
  snprintf(c.channel, sizeof c.channel, "%.*s", (int)channel_len, channel);
  snprintf(c.payload, sizeof c.payload, "%.*s", (int)msg_len, msg);
  snprintf(c.pattern, sizeof c.pattern, "%s", pattern != NULL ? pattern : "");
}

static void on_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata) {
  cr_assert_eq(privdata, &c);
  switch (status) {
  case 0:
    cr_assert_not_null(reply);
    c.ok++;
    if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_ERROR)
      snprintf(c.last, sizeof c.last, "%s", reply->str);
    else if (reply->type == REDIS_REPLY_NIL)
      snprintf(c.last, sizeof c.last, "(nil)");
    break;
  case SC_ETIMEOUT: cr_assert_null(reply); c.timeouts++; break;
  case SC_ECONN: cr_assert_null(reply); c.conns++; break;
  case SC_ECLOSED: cr_assert_null(reply); c.closeds++; break;
  default: c.others++; break;
  }
  if (c.close_in_reply) {
    c.close_in_reply = 0;
    sc_redis_close(r);
    c.r = NULL;
  }
}

static void setup(void) {
  memset(&c, 0, sizeof c);
  cr_assert_eq(uv_loop_init(&c.loop), 0);
  uv_timer_init(&c.loop, &c.tick);
  uv_timer_start(&c.tick, on_tick, 10, 10);
}

static void teardown(void) {
  if (c.loop_closed) {
    sc_test_redis_stop(&c.srv, 0);
    return;
  }
  if (c.r != NULL) sc_redis_close(c.r);
  c.r = NULL;
  uv_close((uv_handle_t *)&c.tick, NULL);
  uv_run(&c.loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&c.loop), 0, "handles left open after close");
  sc_test_redis_stop(&c.srv, 0);
}

/* Runs the loop until pred holds or timeout_ms passes; returns pred. */
static int run_until(int (*pred)(void), int timeout_ms) {
  uv_update_time(&c.loop);
  uint64_t deadline = uv_now(&c.loop) + (uint64_t)timeout_ms;
  while (!pred() && uv_now(&c.loop) < deadline) uv_run(&c.loop, UV_RUN_ONCE);
  return pred();
}

static int never(void) { return 0; }
static int is_up(void) { return c.r != NULL && sc_redis_is_up(c.r); }
static int two_ups(void) { return c.ups >= 2 && is_up(); }
static int one_down(void) { return c.downs >= 1; }
static int answered_1(void) { return c.ok + c.timeouts + c.conns + c.closeds + c.others >= 1; }
static int answered_2(void) { return c.ok + c.timeouts + c.conns + c.closeds + c.others >= 2; }
static int answered_4(void) { return c.ok + c.timeouts + c.conns + c.closeds + c.others >= 4; }
static int got_1_msg(void) { return c.msgs >= 1; }
static int got_2_msgs(void) { return c.msgs >= 2; }
static int ok_wanted;
static int ok_reached(void) { return c.ok >= ok_wanted; }

static void open_redis(const char *url, const sc_redis_opts_t *extra) {
  sc_redis_addr_t addr;
  char err[256];
  cr_assert_eq(sc_redis_url_parse(url, &addr, err, sizeof err), 0, "%s", err);
  sc_redis_opts_t o = {.name = "glue test", .backoff_min_ms = 50, .backoff_max_ms = 400};
  if (extra != NULL) o = *extra;
  o.on_state = on_state;
  o.on_message = on_message;
  o.data = &c;
  cr_assert_eq(sc_redis_new(&c.r, &c.loop, &addr, &o), 0);
  sc_redis_addr_dispose(&addr);
}

static void start_and_open(const char *const *extra_args, const sc_redis_opts_t *opts) {
  cr_assert_eq(sc_test_redis_start(&c.srv, extra_args), 0, "redis-server did not start");
  char url[128];
  sc_test_redis_url(&c.srv, url, sizeof url);
  open_redis(url, opts);
}

static long long publish(const char *channel, const char *msg) {
  redisContext *rc = sc_test_redis_connect(&c.srv);
  cr_assert_not_null(rc);
  redisReply *rep = redisCommand(rc, "PUBLISH %s %s", channel, msg);
  cr_assert_not_null(rep);
  cr_assert_eq(rep->type, REDIS_REPLY_INTEGER);
  long long n = rep->integer;
  freeReplyObject(rep);
  redisFree(rc);
  return n;
}

/* SET then GET through r; asserts the value came back. */
static void set_get_roundtrip(const char *value) {
  int before = c.ok;
  cr_assert_eq(sc_redis_command(c.r, on_reply, &c, "SET glue:key %s", value), 0);
  const char *argv[2] = {"GET", "glue:key"};
  cr_assert_eq(sc_redis_command_argv(c.r, on_reply, &c, 2, argv, NULL), 0);
  ok_wanted = before + 2;
  cr_assert(run_until(ok_reached, 5000), "no reply to SET/GET");
  cr_assert_eq(c.ok, ok_wanted);
  cr_assert_str_eq(c.last, value);
}

TestSuite(redis_glue, .init = setup, .fini = teardown, .timeout = 60);

Test(redis_glue, connects_and_runs_set_and_get) {
  start_and_open(NULL, NULL);
  cr_assert(run_until(is_up, 10000), "never came up");
  cr_assert_eq(c.ups, 1);
  set_get_roundtrip("hello");
  cr_assert_eq(c.downs, 0);
  cr_assert_eq(c.timeouts + c.conns + c.closeds + c.others, 0);
  cr_assert_eq(sc_redis_reconnects(c.r), 0);
}

Test(redis_glue, sets_client_name_and_selects_db) {
  cr_assert_eq(sc_test_redis_start(&c.srv, NULL), 0);
  char url[128];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", c.srv.port);
  open_redis(url, NULL);
  cr_assert(run_until(is_up, 10000));
  cr_assert_eq(sc_redis_command(c.r, on_reply, &c, "CLIENT GETNAME"), 0);
  cr_assert(run_until(answered_1, 5000));
  cr_assert_str_eq(c.last, "glue-test"); /* spaces are not allowed in names */
  set_get_roundtrip("in-db-3");
  redisContext *rc = sc_test_redis_connect(&c.srv);
  cr_assert_not_null(rc);
  redisReply *rep = redisCommand(rc, "SELECT 3");
  freeReplyObject(rep);
  rep = redisCommand(rc, "GET glue:key");
  cr_assert_eq(rep->type, REDIS_REPLY_STRING);
  cr_assert_str_eq(rep->str, "in-db-3");
  freeReplyObject(rep);
  redisFree(rc);
}

Test(redis_glue, commands_fail_fast_when_not_connected) {
  start_and_open(NULL, NULL);
  /* Nothing has run on the loop yet, so the connect cannot have finished. */
  cr_assert_eq(sc_redis_is_up(c.r), 0);
  cr_assert_eq(sc_redis_command(c.r, on_reply, &c, "PING"), SC_ECONN);
  cr_assert(run_until(is_up, 10000));
  cr_assert_eq(c.ok + c.timeouts + c.conns + c.closeds + c.others, 0, "a refused command must not call back");
}

Test(redis_glue, subscribe_and_psubscribe_deliver_messages) {
  start_and_open(NULL, NULL);
  cr_assert_eq(sc_redis_subscribe(c.r, "glue:chan", 0), 0);
  cr_assert_eq(sc_redis_subscribe(c.r, "glue:pat:*", 1), 0);
  cr_assert(run_until(is_up, 10000));
  cr_assert_eq(c.ups, 1);
  cr_assert_eq(publish("glue:chan", "payload-1"), 1);
  cr_assert(run_until(got_1_msg, 5000));
  cr_assert_str_eq(c.channel, "glue:chan");
  cr_assert_str_eq(c.payload, "payload-1");
  cr_assert_str_eq(c.pattern, "");
  cr_assert_eq(publish("glue:pat:x", "payload-2"), 1);
  cr_assert(run_until(got_2_msgs, 5000));
  cr_assert_str_eq(c.channel, "glue:pat:x");
  cr_assert_str_eq(c.payload, "payload-2");
  cr_assert_str_eq(c.pattern, "glue:pat:*");
  cr_assert_eq(c.msgs, 2);
}

Test(redis_glue, subscribing_while_up_delivers_messages) {
  start_and_open(NULL, NULL);
  cr_assert_eq(sc_redis_subscribe(c.r, "glue:first", 0), 0);
  cr_assert(run_until(is_up, 10000));
  cr_assert_eq(sc_redis_subscribe(c.r, "glue:later", 0), 0);
  /* Wait for the server to count the new subscriber. */
  for (int i = 0; i < 250 && publish("glue:later", "x") == 0; i++) run_until(never, 20);
  cr_assert(run_until(got_1_msg, 5000));
  cr_assert_str_eq(c.channel, "glue:later");
  cr_assert_eq(c.ups, 1);
}

Test(redis_glue, reconnects_and_resubscribes_after_redis_restart) {
  start_and_open(NULL, NULL);
  cr_assert_eq(sc_redis_subscribe(c.r, "glue:chan", 0), 0);
  cr_assert(run_until(is_up, 10000));
  sc_test_redis_stop(&c.srv, 1);
  cr_assert(run_until(one_down, 10000), "no down event after redis stopped");
  cr_assert_eq(c.downs, 1);
  cr_assert_eq(sc_redis_is_up(c.r), 0);
  run_until(never, 300); /* a few refused retries */
  cr_assert_eq(c.downs, 1, "down is reported once per up->down transition");
  cr_assert_eq(sc_test_redis_restart(&c.srv, NULL), 0);
  cr_assert(run_until(two_ups, 15000), "did not come back after restart");
  cr_assert_eq(c.ups, 2);
  cr_assert_eq(sc_redis_reconnects(c.r), 1);
  cr_assert_eq(publish("glue:chan", "after-restart"), 1);
  cr_assert(run_until(got_1_msg, 5000));
  cr_assert_str_eq(c.payload, "after-restart");
}

Test(redis_glue, retries_refused_connect_until_server_starts) {
  /* Nobody listens on the port yet: every connect is refused. */
  memset(&c.srv, 0, sizeof c.srv);
  snprintf(c.srv.dir, sizeof c.srv.dir, "/tmp/statecast-test-redis-XXXXXX");
  cr_assert_not_null(mkdtemp(c.srv.dir));
  c.srv.port = sc_test_free_port();
  char url[128];
  sc_test_redis_url(&c.srv, url, sizeof url);
  open_redis(url, NULL);
  run_until(never, 700);
  cr_assert_eq(c.ups, 0);
  cr_assert_eq(c.downs, 0, "never up, so no down event");
  cr_assert_eq(sc_test_redis_restart(&c.srv, NULL), 0);
  cr_assert(run_until(is_up, 15000), "kept failing after the server started");
  cr_assert_eq(c.ups, 1);
  cr_assert_eq(sc_redis_reconnects(c.r), 0);
  set_get_roundtrip("late");
}

Test(redis_glue, command_timeout_fails_once_and_reconnects) {
  const char *args[] = {"--enable-debug-command", "yes", NULL};
  sc_redis_opts_t o = {.name = "timeout", .command_timeout_ms = 300, .connect_timeout_ms = 10000,
                       .backoff_min_ms = 50, .backoff_max_ms = 200};
  start_and_open(args, &o);
  cr_assert(run_until(is_up, 10000));
  cr_assert_eq(sc_redis_command(c.r, on_reply, &c, "DEBUG SLEEP 2"), 0);
  cr_assert_eq(sc_redis_command(c.r, on_reply, &c, "GET glue:key"), 0);
  cr_assert(run_until(answered_2, 5000));
  cr_assert_eq(c.timeouts, 1);
  cr_assert_eq(c.conns, 1, "the command queued behind it fails with SC_ECONN");
  cr_assert_eq(c.ok, 0);
  cr_assert(run_until(one_down, 5000));
  cr_assert(run_until(two_ups, 15000), "did not reconnect after the timeout");
  run_until(never, 500); /* any late reply would show up here */
  cr_assert_eq(c.timeouts, 1);
  cr_assert_eq(c.conns, 1);
  cr_assert_eq(c.ok + c.closeds + c.others, 0);
  cr_assert_eq(c.downs, 1);
  set_get_roundtrip("after-timeout");
}

/* The support code waits for an unauthenticated PING, so a server started
 * with --requirepass never looks ready: set the password once it runs. */
static void start_with_password(const char *password) {
  cr_assert_eq(sc_test_redis_start(&c.srv, NULL), 0);
  redisContext *rc = sc_test_redis_connect(&c.srv);
  cr_assert_not_null(rc);
  redisReply *rep = redisCommand(rc, "CONFIG SET requirepass %s", password);
  cr_assert_not_null(rep);
  cr_assert_eq(rep->type, REDIS_REPLY_STATUS, "%s", rep->str);
  freeReplyObject(rep);
  redisFree(rc);
}

Test(redis_glue, authenticates_with_password_and_with_user) {
  start_with_password("secret");
  char url[160];
  snprintf(url, sizeof url, "redis://:secret@127.0.0.1:%d", c.srv.port);
  open_redis(url, NULL);
  cr_assert(run_until(is_up, 10000));
  set_get_roundtrip("authed");
  sc_redis_close(c.r);
  c.r = NULL;

  snprintf(url, sizeof url, "redis://default:secret@127.0.0.1:%d/1", c.srv.port);
  open_redis(url, NULL);
  cr_assert(run_until(is_up, 10000));
  set_get_roundtrip("authed-user");
  cr_assert_eq(c.downs, 0);
}

Test(redis_glue, wrong_password_stays_down_without_crashing) {
  start_with_password("secret");
  char url[160];
  snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", c.srv.port);
  open_redis(url, NULL);
  cr_assert_eq(sc_redis_subscribe(c.r, "glue:chan", 0), 0);
  run_until(never, 1500); /* several failed handshakes */
  cr_assert_eq(c.ups, 0);
  cr_assert_eq(c.downs, 0);
  cr_assert_eq(sc_redis_is_up(c.r), 0);
  cr_assert_eq(sc_redis_command(c.r, on_reply, &c, "PING"), SC_ECONN);
}

Test(redis_glue, reset_drops_and_reconnects) {
  start_and_open(NULL, NULL);
  cr_assert_eq(sc_redis_subscribe(c.r, "glue:chan", 0), 0);
  cr_assert(run_until(is_up, 10000));
  sc_redis_reset(c.r, "test");
  cr_assert_eq(c.downs, 1);
  cr_assert_eq(sc_redis_is_up(c.r), 0);
  cr_assert(run_until(two_ups, 10000));
  cr_assert_eq(sc_redis_reconnects(c.r), 1);
  cr_assert_eq(publish("glue:chan", "after-reset"), 1);
  cr_assert(run_until(got_1_msg, 5000));
}

Test(redis_glue, close_with_pending_commands_answers_each_with_eclosed) {
  start_and_open(NULL, NULL);
  cr_assert(run_until(is_up, 10000));
  for (int i = 0; i < 3; i++) cr_assert_eq(sc_redis_command(c.r, on_reply, &c, "INCR glue:n"), 0);
  sc_redis_close(c.r);
  c.r = NULL;
  cr_assert_eq(c.closeds, 3);
  uv_close((uv_handle_t *)&c.tick, NULL);
  uv_run(&c.loop, UV_RUN_DEFAULT);
  cr_assert_eq(c.closeds, 3);
  cr_assert_eq(c.ok + c.timeouts + c.conns + c.others, 0);
  cr_assert_eq(c.downs, 0, "no state callback after close");
  cr_assert_eq(uv_loop_close(&c.loop), 0);
  c.loop_closed = 1;
}

Test(redis_glue, close_from_inside_a_reply_callback_is_safe) {
  start_and_open(NULL, NULL);
  cr_assert(run_until(is_up, 10000));
  for (int i = 0; i < 4; i++) cr_assert_eq(sc_redis_command(c.r, on_reply, &c, "PING"), 0);
  c.close_in_reply = 1;
  cr_assert(run_until(answered_4, 5000));
  cr_assert_null(c.r);
  cr_assert_eq(c.ok, 1);
  cr_assert_eq(c.closeds, 3);
  run_until(never, 200);
  cr_assert_eq(c.ok + c.closeds, 4);
  cr_assert_eq(c.timeouts + c.conns + c.others + c.downs, 0);
}

Test(redis_glue, connects_over_a_unix_socket_and_selects_db) {
  char dir[] = "/tmp/sc-glue-sock-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char sock[128], url[160];
  snprintf(sock, sizeof sock, "%s/redis.sock", dir);
  const char *args[] = {"--unixsocket", sock, "--unixsocketperm", "700", NULL};
  cr_assert_eq(sc_test_redis_start(&c.srv, args), 0);
  snprintf(url, sizeof url, "unix://%s?db=2", sock);
  open_redis(url, NULL);
  cr_assert(run_until(is_up, 10000));
  set_get_roundtrip("over-unix");
  sc_redis_close(c.r);
  c.r = NULL;
  sc_test_redis_stop(&c.srv, 0);
  rmdir(dir);
}
