#include "commit.h"

#include "err.h"
#include "keys.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

const char sc_commit_script[] =
    "local epoch = redis.call('GET', KEYS[5])\n"
    "if not epoch then\n"
    "  epoch = ARGV[4]\n"
    "  redis.call('SET', KEYS[5], epoch)\n"
    "end\n"
    "local topic = ARGV[1]\n"
    "local upd = ARGV[2] == 'u'\n"
    "if upd then\n"
    "  if redis.call('HGET', KEYS[1], 'data') == ARGV[3] then\n"
    "    return {0, tonumber(redis.call('HGET', KEYS[1], 'seq')), 0, epoch}\n"
    "  end\n"
    "elseif redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  return {0, 0, 0, epoch}\n"
    "end\n"
    "local seq = redis.call('INCR', KEYS[2])\n"
    "local t = redis.call('TIME')\n"
    "local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local head = ' ' .. epoch .. ' ' .. seq .. ' ' .. string.format('%d', ts) .. ' ' .. topic\n"
    "if upd then\n"
    "  redis.call('HSET', KEYS[1], 'seq', seq, 'ts', ts, 'data', ARGV[3])\n"
    "  redis.call('ZADD', KEYS[3], seq, topic)\n"
    "  redis.call('ZREM', KEYS[4], topic)\n"
    "  redis.call('PUBLISH', ARGV[6], 'u' .. head .. ' ' .. ARGV[3])\n"
    "else\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('ZREM', KEYS[3], topic)\n"
    "  redis.call('ZADD', KEYS[4], seq, topic)\n"
    "  local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[5])\n"
    "  if over > 0 then\n"
    "    local gone = redis.call('ZPOPMIN', KEYS[4], over)\n"
    "    redis.call('SET', KEYS[6], gone[#gone])\n"
    "  end\n"
    "  redis.call('PUBLISH', ARGV[6], 'd' .. head)\n"
    "end\n"
    "return {1, seq, ts, epoch}\n";

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
  int klen = sc_keys_state(cmd->state_key, sizeof cmd->state_key, topic, topic_len);
  if (klen < 0) return klen;
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
  ARGS("6");
  ARG(cmd->state_key, (size_t)klen);
  ARGS(SC_KEYS_SEQ);
  ARGS(SC_KEYS_INDEX);
  ARGS(SC_KEYS_DELETED);
  ARGS(SC_KEYS_EPOCH);
  ARGS(SC_KEYS_DELETED_FLOOR);
  ARG(topic, topic_len);
  ARGS(data != NULL ? "u" : "d");
  ARG(data != NULL ? data : "", data != NULL ? data_len : 0);
  ARGS(cmd->epoch);
  ARGS(cmd->cap);
  ARGS(SC_KEYS_NOTIFY);
#undef ARGS
#undef ARG
  return i == SC_COMMIT_ARGC ? 0 : SC_EINVAL;
}
