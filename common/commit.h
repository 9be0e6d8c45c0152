/*
 * commit: the one atomic step that turns a checked message into committed
 * state ("commit, then notify" inside a single Lua script, so no crash can
 * leave one without the other and nobody hears of state that is not stored).
 *
 * kv-updater runs it for every message; the snapshot loader will reuse it.
 * The script (EVALSHA with EVAL fallback on NOSCRIPT) takes
 *   KEYS: state:{T} statecast:seq statecast:index statecast:deleted
 *         statecast:epoch statecast:deleted_floor
 *   ARGV: topic, "u"|"d", compact data ("" for a delete), candidate epoch,
 *         tombstone cap, notify channel
 * and answers an array {committed (0|1), seq, ts_ms, epoch}. An update equal
 * to the stored data, or a delete of an absent topic, commits nothing
 * (committed = 0, seq = the topic's current seq or 0).
 */
#ifndef SC_COMMIT_H
#define SC_COMMIT_H

#include <stddef.h>
#include <stdint.h>

extern const char sc_commit_script[];

#define SC_COMMIT_NKEYS 6
#define SC_COMMIT_NARGS 6
/* "EVALSHA sha numkeys" + keys + args */
#define SC_COMMIT_ARGC (3 + SC_COMMIT_NKEYS + SC_COMMIT_NARGS)

/* Storage for one command's argv; filled by sc_commit_argv(). */
typedef struct sc_commit_cmd {
  const char *argv[SC_COMMIT_ARGC];
  size_t argvlen[SC_COMMIT_ARGC];
  char sha[41];
  char state_key[256];
  char epoch[33];
  char cap[24];
} sc_commit_cmd_t;

/* SHA1 hex of sc_commit_script (for EVALSHA), computed once. */
const char *sc_commit_sha(void);

/*
 * Fill cmd for EVALSHA (use_eval 0) or EVAL (use_eval 1). topic must be valid;
 * data NULL means delete. topic and data are borrowed: they must outlive the
 * command's send. A fresh random candidate epoch is drawn on every call, so a
 * Redis that lost its data never gets an old epoch back.
 */
__attribute__((warn_unused_result)) int sc_commit_argv(sc_commit_cmd_t *cmd, int use_eval, const char *topic,
                                                      size_t topic_len, const char *data, size_t data_len);

/* Random lower-case hex string of n chars (n even) into out (n+1 bytes). */
void sc_random_hex(char *out, size_t n);

#endif
