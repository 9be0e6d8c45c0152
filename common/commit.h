/*
 * commit: the one atomic step that turns a checked message into committed
 * state ("commit, then notify" inside a single Lua script, so no crash can
 * leave one without the other and nobody hears of state that is not stored).
 *
 * kv-updater runs it for every message; the snapshot loader reuses it.
 * The script (EVALSHA with EVAL fallback on NOSCRIPT) takes
 *   KEYS: state:{T} statecast:seq statecast:index statecast:deleted
 *         statecast:epoch statecast:deleted_floor statecast:inbox
 *         statecast:leader statecast:deleted_src
 *   ARGV: topic, "u"|"d", compact data ("" for a delete), candidate epoch,
 *         tombstone cap, notify channel, source inbox entry id ("" for a
 *         pub/sub message or the snapshot loader), lease token ("": no
 *         fencing), consumer group of statecast:inbox
 * and answers an array {committed (0|1), seq, ts_ms, epoch} and, only when
 * an entry id was given, a fifth element stale (0|1).
 * An update equal to the stored data, or a delete of an absent topic,
 * commits nothing (committed = 0, seq = the topic's current seq or 0).
 *
 * Fencing: with a token, the script first checks that statecast:leader
 * still holds exactly that token and otherwise answers the error
 * "NOTLEADER ..." having changed nothing, so a kv-updater that lost its
 * lease (paused, partitioned) can never commit.
 *
 * Ordering of inbox entries: the topic remembers the id of the last inbox
 * entry applied to it (field src of state:{T}; for a deleted topic the
 * hash statecast:deleted_src). An entry whose id is <= that is stale
 * (already applied, or superseded by a later one): nothing is committed
 * (stale = 1). Whatever the outcome, an inbox entry is XACKed and XDELed in
 * the same script, atomically with its commit.
 */
#ifndef SC_COMMIT_H
#define SC_COMMIT_H

#include <stddef.h>
#include <stdint.h>

extern const char sc_commit_script[];

#define SC_COMMIT_NKEYS 9
#define SC_COMMIT_NARGS 9
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
  char entry_id[48];
  char token[48];
} sc_commit_cmd_t;

/* SHA1 hex of sc_commit_script (for EVALSHA), computed once. */
const char *sc_commit_sha(void);

/*
 * Fill cmd for EVALSHA (use_eval 0) or EVAL (use_eval 1), without an inbox
 * entry and without fencing (the snapshot loader's use). topic must be valid;
 * data NULL means delete. topic and data are borrowed: they must outlive the
 * command's send. A fresh random candidate epoch is drawn on every call, so a
 * Redis that lost its data never gets an old epoch back.
 */
__attribute__((warn_unused_result)) int sc_commit_argv(sc_commit_cmd_t *cmd, int use_eval, const char *topic,
                                                      size_t topic_len, const char *data, size_t data_len);

/*
 * The same for the durable path: entry_id is the statecast:inbox id the
 * message came from (NULL or "": none) and token the kv-updater's lease
 * token (NULL or "": no fencing). Both are copied into cmd. SC_EINVAL when
 * either is longer than 47 bytes.
 */
__attribute__((warn_unused_result)) int sc_commit_argv_src(sc_commit_cmd_t *cmd, int use_eval, const char *topic,
                                                          size_t topic_len, const char *data, size_t data_len,
                                                          const char *entry_id, const char *token);

/* Random lower-case hex string of n chars (n even) into out (n+1 bytes). */
void sc_random_hex(char *out, size_t n);

#endif
