/*
 * lg_pub: statecast-loadgen's publisher, run by the parent process. It
 * publishes one message at a time, synchronously, through Redis (XADD
 * statecast:inbox, statecast's durable path) or an HTTP POST to
 * PREFIX<topic> (Nchan, statecast-floor), and builds the message data the
 * load processes measure: "bt" (publish time, us since the epoch,
 * CLOCK_REALTIME), "bk" (topic index) and "bv" (per-topic version 1, 2,
 * ...). Fill mode (--fill) writes N topics straight into Redis instead.
 */
#ifndef STATECAST_BENCH_LG_PUB_H
#define STATECAST_BENCH_LG_PUB_H

#include "lg_common.h"

struct redisContext;

/* Caller-allocated; lg_pub_init() then lg_pub_dispose(). kind is the only
 * field the caller reads. */
typedef struct lg_publisher {
  int kind; /* 0 none, 1 redis, 2 http */
  char host[128];
  int port;
  char prefix[512];
  struct redisContext *rc; /* owned; NULL until connected */
  int fd;                  /* owned HTTP keep-alive connection; -1 until connected */
  char rbuf[8192];
} lg_publisher_t;

/* Parse --pub (url may be NULL: kind 0, nothing to publish to); dies on a
 * malformed URL. Connects lazily, on the first send. url is borrowed. */
void lg_pub_init(lg_publisher_t *p, const char *url);
/* Publish body[0..blen) as topic's state; 0, or -1 on an error (retries
 * once after a broken connection). topic and body are borrowed. */
__attribute__((warn_unused_result)) int lg_pub_send(lg_publisher_t *p, const char *topic, const char *body,
                                                    size_t blen);
/* Close the connection p holds, if any. */
void lg_pub_dispose(lg_publisher_t *p);

/* Write one message's data into buf (cap bytes): {"bt":..,"bk":..,"bv":..,
 * "pad":"xxx"}, exactly `size` bytes when size allows. Returns its length
 * (buf is also NUL-terminated). */
size_t lg_make_body(char *buf, size_t cap, long size, int64_t bt, long k, long v);

/* --fill: write o->fill topics of o->fill_bytes into the Redis at o->pub,
 * laid out as kv-updater commits them (docs/key-schema.md), for the
 * start-up scenario; reports fill_* results. Returns 0; dies on any error. */
int lg_run_fill(const lg_opts_t *o);

#endif
