/*
 * publish: HTTP publishing through the durable inbox (see publish.h).
 *
 * One op per request (malloc'd): its messages, one command in flight at a
 * time per message state machine (XADD -> XRANGE polls -> seq read), a poll
 * timer, and a guard in the request pool that forgets the request when h2o
 * disposes it (client gone), so a late Redis answer never touches it.
 */
#include "publish.h"

#include "envelope.h"
#include "err.h"
#include "httpd.h"
#include "json.h"
#include "keys.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { M_XADD, M_WAIT, M_SEQ_LIVE, M_SEQ_DEL, M_DONE } mstate_t;

typedef struct pub_op pub_op_t;

typedef struct pmsg {
  pub_op_t *op; /* back pointer */
  char topic[SC_TOPIC_MAX + 1];
  size_t topic_len;
  char *data; /* owned compact JSON; NULL: a delete */
  size_t data_len;
  char id[48]; /* inbox entry id */
  unsigned long long seq;
  mstate_t st;
  int busy; /* a command is in flight */
} pmsg_t;

typedef struct guard {
  pub_op_t *op;
} guard_t;

struct pub_op {
  const api_publish_cfg_t *cfg; /* borrowed */
  h2o_req_t *req;               /* borrowed; NULL once h2o disposed it */
  guard_t *guard;               /* in req's pool */
  uv_timer_t timer;
  int batch, finished, timer_closed;
  unsigned inflight; /* Redis commands not yet answered */
  uint64_t started_ms;
  size_t n;
  pmsg_t msgs[]; /* n */
};

static void on_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata);
static void on_poll(uv_timer_t *t);
static void on_timer_closed(uv_handle_t *h);

static void op_free_if_done(pub_op_t *op) {
  if (!op->finished || op->inflight > 0 || !op->timer_closed) return;
  for (size_t i = 0; i < op->n; i++) free(op->msgs[i].data);
  free(op);
}

static void on_req_disposed(void *p) {
  guard_t *g = p;
  if (g->op != NULL) g->op->req = NULL;
}

/* Answer (if the request still exists) and wind down. */
static void op_finish(pub_op_t *op, int status, const char *reason, const char *err_msg) {
  if (op->finished) return;
  op->finished = 1;
  if (op->req != NULL) {
    op->guard->op = NULL;
    h2o_req_t *req = op->req;
    op->req = NULL;
    if (err_msg != NULL) {
      sc_httpd_respond_error(req, status, reason, err_msg);
    } else {
      size_t cap = 32 + op->n * (SC_TOPIC_MAX + 120);
      char *body = h2o_mem_alloc_pool(&req->pool, cap);
      size_t len = 0;
      if (op->batch) len += (size_t)snprintf(body + len, cap - len, "{\"results\":[");
      for (size_t i = 0; i < op->n; i++) {
        const pmsg_t *m = &op->msgs[i];
        len += (size_t)snprintf(body + len, cap - len, "%s{\"topic\":\"%s\",\"seq\":%llu,\"id\":\"%s\"}",
                                i ? "," : "", m->topic, m->seq, m->id);
      }
      if (op->batch) len += (size_t)snprintf(body + len, cap - len, "]}");
      sc_httpd_respond(req, 200, "OK", "application/json", body, len);
    }
  }
  uv_timer_stop(&op->timer);
  uv_close((uv_handle_t *)&op->timer, on_timer_closed);
}

static void on_timer_closed(uv_handle_t *h) {
  pub_op_t *op = h->data;
  op->timer_closed = 1;
  op_free_if_done(op);
}

static int send_cmd(pub_op_t *op, pmsg_t *m, int argc, const char **argv, const size_t *lens) {
  int rc = sc_redis_command_argv(op->cfg->cmd, on_reply, m, argc, argv, lens);
  if (rc == 0) {
    op->inflight++;
    m->busy = 1;
  }
  return rc;
}

/* Issue the next command of m (when idle). 0 or an SC_E* error. */
static int step(pub_op_t *op, pmsg_t *m) {
  char key[SC_KEYS_MAX];
  if (m->busy || m->st == M_DONE) return 0;
  switch (m->st) {
  case M_XADD: {
    const char *argv[7] = {"XADD", SC_KEYS_INBOX, "*", "topic", m->topic, "data", m->data ? m->data : "null"};
    size_t lens[7] = {4, strlen(SC_KEYS_INBOX), 1, 5, m->topic_len, 4, m->data ? m->data_len : 4};
    return send_cmd(op, m, 7, argv, lens);
  }
  case M_WAIT: {
    const char *argv[4] = {"XRANGE", SC_KEYS_INBOX, m->id, m->id};
    size_t lens[4] = {6, strlen(SC_KEYS_INBOX), strlen(m->id), strlen(m->id)};
    return send_cmd(op, m, 4, argv, lens);
  }
  case M_SEQ_LIVE: {
    int kl = sc_keys_state(key, sizeof key, m->topic, m->topic_len);
    if (kl < 0) return kl;
    const char *argv[3] = {"HGET", key, "seq"};
    size_t lens[3] = {4, (size_t)kl, 3};
    return send_cmd(op, m, 3, argv, lens);
  }
  case M_SEQ_DEL: {
    const char *argv[3] = {"ZSCORE", SC_KEYS_DELETED, m->topic};
    size_t lens[3] = {6, strlen(SC_KEYS_DELETED), m->topic_len};
    return send_cmd(op, m, 3, argv, lens);
  }
  case M_DONE:
    break;
  }
  return 0;
}

static void check_done(pub_op_t *op) {
  for (size_t i = 0; i < op->n; i++)
    if (op->msgs[i].st != M_DONE) return;
  if (op->cfg->published != NULL) atomic_fetch_add_explicit(op->cfg->published, op->n, memory_order_relaxed);
  op_finish(op, 200, "OK", NULL);
}

static void on_reply(sc_redis_t *r, int status, redisReply *reply, void *privdata) {
  (void)r;
  pmsg_t *m = privdata;
  pub_op_t *op = m->op;
  op->inflight--;
  m->busy = 0;
  if (op->finished) {
    op_free_if_done(op);
    return;
  }
  if (status != 0 || reply == NULL || reply->type == REDIS_REPLY_ERROR) {
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) SC_WARN("publish: %s: %s", m->topic, reply->str);
    op_finish(op, 503, "Service Unavailable", status == SC_ETIMEOUT ? "Redis timed out" : "Redis unavailable");
    return;
  }
  switch (m->st) {
  case M_XADD:
    if (reply->type != REDIS_REPLY_STRING || reply->len >= sizeof m->id) {
      op_finish(op, 503, "Service Unavailable", "unexpected reply from Redis");
      return;
    }
    memcpy(m->id, reply->str, reply->len);
    m->id[reply->len] = '\0';
    m->st = M_WAIT; /* the poll timer asks again */
    break;
  case M_WAIT:
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 0) {
      m->st = m->data != NULL ? M_SEQ_LIVE : M_SEQ_DEL;
      if (step(op, m) != 0) op_finish(op, 503, "Service Unavailable", "Redis unavailable");
    }
    break;
  case M_SEQ_LIVE:
  case M_SEQ_DEL:
    if (reply->type == REDIS_REPLY_STRING) m->seq = strtoull(reply->str, NULL, 10);
    m->st = M_DONE;
    check_done(op);
    break;
  case M_DONE:
    break;
  }
}

static void on_poll(uv_timer_t *t) {
  pub_op_t *op = t->data;
  if (op->finished) return;
  if (uv_now(op->cfg->loop) - op->started_ms >= op->cfg->timeout_ms) {
    char msg[160];
    snprintf(msg, sizeof msg, "not committed within %u ms; it is queued and will be committed when a kv-updater runs",
             op->cfg->timeout_ms);
    op_finish(op, 504, "Gateway Timeout", msg);
    return;
  }
  for (size_t i = 0; i < op->n; i++) {
    if (op->msgs[i].st != M_WAIT) continue;
    if (step(op, &op->msgs[i]) != 0) {
      op_finish(op, 503, "Service Unavailable", "Redis unavailable");
      return;
    }
  }
}

/* ---- request parsing -------------------------------------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void respond_reject(h2o_req_t *req, const char *topic, int rc, const sc_reject_t *why) {
  char msg[300];
  snprintf(msg, sizeof msg, "%s: %s", topic, why->reason ? why->reason : sc_strerror(rc));
  if (rc == SC_ETOOBIG)
    sc_httpd_respond_error(req, 413, "Payload Too Large", msg);
  else
    sc_httpd_respond_error(req, 400, "Bad Request", msg);
}

/* Check and add one message. 0, or -1 when answered. */
static int add_msg(pub_op_t *op, h2o_req_t *req, const api_claims_t *c, const char *topic, size_t tl,
                   const char *body, size_t bl) {
  pmsg_t *m = &op->msgs[op->n];
  memset(m, 0, sizeof *m);
  m->op = op;
  sc_reject_t why = {0};
  int is_delete = 0;
  char tshow[SC_TOPIC_MAX + 1];
  size_t sl = tl > SC_TOPIC_MAX ? SC_TOPIC_MAX : tl;
  memcpy(tshow, topic, sl);
  tshow[sl] = '\0';
  int rc = sc_message_check(topic, tl, body, bl, op->cfg->max_bytes, &m->data, &m->data_len, &is_delete, &why);
  if (rc != 0) {
    respond_reject(req, sc_topic_validate(topic, tl) == 0 ? tshow : "topic", rc, &why);
    return -1;
  }
  memcpy(m->topic, topic, tl);
  m->topic[tl] = '\0';
  m->topic_len = tl;
  op->n++;
  if (!api_auth_covers(&c->publish, NULL, topic, tl)) {
    sc_httpd_respond_error(req, 403, "Forbidden", "topic not allowed for publishing by the token");
    return -1;
  }
  return 0;
}

static void op_abort(pub_op_t *op) {
  for (size_t i = 0; i < op->n; i++) free(op->msgs[i].data);
  free(op);
}

void api_publish_handle(const api_publish_cfg_t *cfg, h2o_req_t *req, const api_claims_t *c) {
  h2o_iovec_t p = req->path_normalized;
  int batch = p.len == 8 && memcmp(p.base, "/publish", 8) == 0;
  if (!batch && !(p.len > 9 && memcmp(p.base, "/publish/", 9) == 0)) {
    sc_httpd_respond_error(req, 404, "Not Found", "not found");
    return;
  }
  if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("POST"));
    sc_httpd_respond_error(req, 405, "Method Not Allowed", "method not allowed");
    return;
  }
  if (req->entity.len > cfg->max_bytes) {
    sc_httpd_respond_error(req, 413, "Payload Too Large", "body larger than max_message_bytes");
    return;
  }
  cJSON *root = NULL;
  size_t cap = 1;
  if (batch) {
    root = cJSON_ParseWithLength(req->entity.base ? req->entity.base : "", req->entity.len);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    int n = cJSON_GetArraySize(msgs);
    if (!cJSON_IsArray(msgs) || n < 1 || n > API_PUBLISH_MAX_BATCH) {
      cJSON_Delete(root);
      sc_httpd_respond_error(req, 400, "Bad Request", "expected {\"messages\":[{\"topic\":..,\"data\":..},...]} with 1-64 messages");
      return;
    }
    cap = (size_t)n;
  }
  pub_op_t *op = calloc(1, sizeof *op + cap * sizeof(pmsg_t));
  if (op == NULL) {
    cJSON_Delete(root);
    sc_httpd_respond_error(req, 503, "Service Unavailable", "out of memory");
    return;
  }
  op->cfg = cfg;
  op->batch = batch;
  if (batch) {
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(root, "messages")) {
      const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "topic");
      const cJSON *d = cJSON_GetObjectItemCaseSensitive(it, "data");
      char *text = d != NULL ? cJSON_PrintUnformatted(d) : NULL;
      int bad = !cJSON_IsString(t) || text == NULL;
      if (bad) {
        free(text);
        sc_httpd_respond_error(req, 400, "Bad Request", "every message needs \"topic\" (string) and \"data\"");
        goto abort;
      }
      int rc = add_msg(op, req, c, t->valuestring, strlen(t->valuestring), text, strlen(text));
      free(text);
      if (rc != 0) goto abort;
    }
    cJSON_Delete(root);
    root = NULL;
  } else {
    char topic[SC_TOPIC_MAX * 3 + 1];
    size_t rl = p.len - 9;
    if (rl > SC_TOPIC_MAX * 3) rl = SC_TOPIC_MAX * 3;
    const char *src = p.base + 9;
    size_t tl = 0;
    for (size_t i = 0; i < rl; i++) { /* percent-decode (":" and "@" may arrive as %3A, %40) */
      int hi = i + 2 < rl ? hexval(src[i + 1]) : -1, lo = i + 2 < rl ? hexval(src[i + 2]) : -1;
      if (src[i] == '%' && hi >= 0 && lo >= 0) {
        topic[tl++] = (char)(hi * 16 + lo);
        i += 2;
      } else {
        topic[tl++] = src[i];
      }
    }
    topic[tl] = '\0';
    rl = tl;
    if (add_msg(op, req, c, topic, rl, req->entity.base ? req->entity.base : "", req->entity.len) != 0) goto abort;
  }
  op->req = req;
  op->guard = h2o_mem_alloc_shared(&req->pool, sizeof *op->guard, on_req_disposed);
  op->guard->op = op;
  uv_timer_init(cfg->loop, &op->timer);
  op->timer.data = op;
  op->started_ms = uv_now(cfg->loop);
  uv_timer_start(&op->timer, on_poll, API_PUBLISH_POLL_MS, API_PUBLISH_POLL_MS);
  for (size_t i = 0; i < op->n; i++) {
    if (step(op, &op->msgs[i]) != 0) {
      op_finish(op, 503, "Service Unavailable", "Redis unavailable");
      return;
    }
  }
  return;
abort:
  cJSON_Delete(root);
  op_abort(op);
}
