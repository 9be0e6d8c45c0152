#include "commit.h"

#include "err.h"
#include "keys.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* The acknowledgement uses pcall: it runs after the writes (a script is not
 * rolled back on error), and a failed XACK/XDEL (statecast:inbox of another
 * type) must not leave a commit without its notification; the entry then
 * stays pending and is skipped as stale when it comes back. */
const char sc_commit_script[] =
    "if ARGV[8] ~= '' and redis.call('GET', KEYS[8]) ~= ARGV[8] then\n"
    "  return redis.error_reply('NOTLEADER this kv-updater does not hold the statecast:leader lease')\n"
    "end\n"
    "local epoch = redis.call('GET', KEYS[5])\n"
    "if not epoch then\n"
    "  epoch = ARGV[4]\n"
    "  redis.call('SET', KEYS[5], epoch)\n"
    "end\n"
    "local topic = ARGV[1]\n"
    "local upd = ARGV[2] == 'u'\n"
    "local id = ARGV[7]\n"
    "local function ack()\n"
    "  if id ~= '' then\n"
    "    redis.pcall('XACK', KEYS[7], ARGV[9], id)\n"
    "    redis.pcall('XDEL', KEYS[7], id)\n"
    "  end\n"
    "end\n"
    "local function res(c, s, ts, stale)\n"
    "  if id == '' then return {c, s, ts, epoch} end\n"
    "  return {c, s, ts, epoch, stale}\n"
    "end\n"
    "local function curseq()\n"
    "  return tonumber(redis.call('HGET', KEYS[1], 'seq')) or 0\n"
    "end\n"
    "local exists = redis.call('EXISTS', KEYS[1]) == 1\n"
    "local src\n"
    "if exists then src = redis.call('HGET', KEYS[1], 'src') else src = redis.call('HGET', KEYS[9], topic) end\n"
    "if id ~= '' and src then\n"
    "  local a1, a2 = string.match(id, '^(%d+)-(%d+)$')\n"
    "  local b1, b2 = string.match(src, '^(%d+)-(%d+)$')\n"
    "  if a1 and b1 then\n"
    "    a1, a2, b1, b2 = tonumber(a1), tonumber(a2), tonumber(b1), tonumber(b2)\n"
    "    if a1 < b1 or (a1 == b1 and a2 <= b2) then\n"
    "      ack()\n"
    "      return res(0, curseq(), 0, 1)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local newsrc = src\n"
    "if id ~= '' then newsrc = id end\n"
    "if upd then\n"
    "  if exists and redis.call('HGET', KEYS[1], 'data') == ARGV[3] then\n"
    "    if newsrc then redis.call('HSET', KEYS[1], 'src', newsrc) end\n"
    "    ack()\n"
    "    return res(0, curseq(), 0, 0)\n"
    "  end\n"
    "elseif not exists then\n"
    "  if id ~= '' and redis.call('ZSCORE', KEYS[4], topic) then redis.call('HSET', KEYS[9], topic, id) end\n"
    "  ack()\n"
    "  return res(0, 0, 0, 0)\n"
    "end\n"
    "local seq = redis.call('INCR', KEYS[2])\n"
    "local t = redis.call('TIME')\n"
    "local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local head = ' ' .. epoch .. ' ' .. seq .. ' ' .. string.format('%d', ts) .. ' ' .. topic\n"
    "if upd then\n"
    "  redis.call('HSET', KEYS[1], 'seq', seq, 'ts', ts, 'data', ARGV[3])\n"
    "  if newsrc then redis.call('HSET', KEYS[1], 'src', newsrc) end\n"
    "  redis.call('HDEL', KEYS[9], topic)\n"
    "  redis.call('ZADD', KEYS[3], seq, topic)\n"
    "  redis.call('ZREM', KEYS[4], topic)\n"
    "  redis.call('PUBLISH', ARGV[6], 'u' .. head .. ' ' .. ARGV[3])\n"
    "else\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('ZREM', KEYS[3], topic)\n"
    "  redis.call('ZADD', KEYS[4], seq, topic)\n"
    "  if newsrc then redis.call('HSET', KEYS[9], topic, newsrc) end\n"
    "  local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[5])\n"
    "  if over > 0 then\n"
    "    local gone = redis.call('ZPOPMIN', KEYS[4], over)\n"
    "    for i = 1, #gone, 2 do redis.call('HDEL', KEYS[9], gone[i]) end\n"
    "    redis.call('SET', KEYS[6], gone[#gone])\n"
    "  end\n"
    "  redis.call('PUBLISH', ARGV[6], 'd' .. head)\n"
    "end\n"
    "ack()\n"
    "return res(1, seq, ts, 0)\n";

static char g_sha[41];
static pthread_once_t g_sha_once = PTHREAD_ONCE_INIT;

static void compute_sha(void) {
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)sc_commit_script, strlen(sc_commit_script), md);
  for (int i = 0; i < SHA_DIGEST_LENGTH; i++) snprintf(g_sha + 2 * i, 3, "%02x", md[i]);
}

const char *sc_commit_sha(void) {
  pthread_once(&g_sha_once, compute_sha);
  return g_sha;
}

void sc_random_hex(char *out, size_t n) {
  static const char hex[] = "0123456789abcdef";
  unsigned char raw[64];
  size_t bytes = n / 2 > sizeof raw ? sizeof raw : n / 2;
  if (getrandom(raw, bytes, 0) != (ssize_t)bytes) {
    /* getrandom cannot fail for <= 256 bytes once the pool is initialised;
     * fall back to something still unique per call. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (size_t i = 0; i < bytes; i++) raw[i] = (unsigned char)((ts.tv_nsec >> (i % 4 * 8)) ^ (i * 131));
  }
  for (size_t i = 0; i < bytes; i++) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 15];
  }
  out[2 * bytes] = '\0';
}

int sc_commit_argv(sc_commit_cmd_t *cmd, int use_eval, const char *topic, size_t topic_len, const char *data,
                   size_t data_len) {
  return sc_commit_argv_src(cmd, use_eval, topic, topic_len, data, data_len, NULL, NULL);
}

int sc_commit_argv_src(sc_commit_cmd_t *cmd, int use_eval, const char *topic, size_t topic_len, const char *data,
                       size_t data_len, const char *entry_id, const char *token) {
  int klen = sc_keys_state(cmd->state_key, sizeof cmd->state_key, topic, topic_len);
  if (klen < 0) return klen;
  if (entry_id == NULL) entry_id = "";
  if (token == NULL) token = "";
  if (strlen(entry_id) >= sizeof cmd->entry_id || strlen(token) >= sizeof cmd->token) return SC_EINVAL;
  snprintf(cmd->entry_id, sizeof cmd->entry_id, "%s", entry_id);
  snprintf(cmd->token, sizeof cmd->token, "%s", token);
  sc_random_hex(cmd->epoch, 16);
  snprintf(cmd->cap, sizeof cmd->cap, "%d", SC_KEYS_DELETED_CAP);
  size_t i = 0;
#define ARG(s, l) (cmd->argv[i] = (s), cmd->argvlen[i] = (l), i++)
#define ARGS(s) ARG(s, strlen(s))
  if (use_eval) {
    ARGS("EVAL");
    ARGS(sc_commit_script);
  } else {
    ARGS("EVALSHA");
    memcpy(cmd->sha, sc_commit_sha(), sizeof cmd->sha);
    ARGS(cmd->sha);
  }
  ARGS("9");
  ARG(cmd->state_key, (size_t)klen);
  ARGS(SC_KEYS_SEQ);
  ARGS(SC_KEYS_INDEX);
  ARGS(SC_KEYS_DELETED);
  ARGS(SC_KEYS_EPOCH);
  ARGS(SC_KEYS_DELETED_FLOOR);
  ARGS(SC_KEYS_INBOX);
  ARGS(SC_KEYS_LEADER);
  ARGS(SC_KEYS_DELETED_SRC);
  ARG(topic, topic_len);
  ARGS(data != NULL ? "u" : "d");
  ARG(data != NULL ? data : "", data != NULL ? data_len : 0);
  ARGS(cmd->epoch);
  ARGS(cmd->cap);
  ARGS(SC_KEYS_NOTIFY);
  ARGS(cmd->entry_id);
  ARGS(cmd->token);
  ARGS(SC_KEYS_INBOX_GROUP);
#undef ARGS
#undef ARG
  return i == SC_COMMIT_ARGC ? 0 : SC_EINVAL;
}
