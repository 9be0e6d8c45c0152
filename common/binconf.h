/*
 * binconf: what every binary derives from the common options, in one place:
 * the log settings and the Redis address (URL, password override, Sentinel).
 */
#ifndef SC_BINCONF_H
#define SC_BINCONF_H

#include "config.h"
#include "log.h"
#include "redis.h"

#include <stddef.h>

/* Parse log_level and log_format. 0, or SC_ECONFIG with a message in err. */
__attribute__((warn_unused_result)) int sc_binconf_log(const sc_conf_t *conf, sc_log_level_t *level,
                                                      sc_log_format_t *format, char *err, size_t errlen);

/* Build the Redis address from redis_url, redis_password (overrides a password
 * in the URL) and redis_sentinels/redis_master_name. On success *addr holds
 * malloc'd strings (release with sc_redis_addr_dispose()). On failure returns
 * SC_ECONFIG or SC_ENOMEM with a message naming the key and its source in
 * err, and *addr is empty. */
__attribute__((warn_unused_result)) int sc_binconf_redis_addr(const sc_conf_t *conf, sc_redis_addr_t *addr, char *err,
                                                             size_t errlen);

/* The start both daemons (apiserver, kv-updater) share: load the
 * configuration of `section`, answer --help (usage on stdout), derive the
 * log settings and the Redis address, check the listen address in option
 * listen_key, and answer --check-config (the effective configuration on
 * stdout). Returns SC_BINCONF_RUN with *conf and *addr owned by the caller
 * (sc_conf_free(), sc_redis_addr_dispose()), or the exit status to return at
 * once, with any message printed as "program: ..." and nothing left to free. */
#define SC_BINCONF_RUN (-1)
int sc_binconf_daemon(const char *program, const char *section, const sc_conf_spec_t *specs, size_t nspecs,
                      const char *listen_key, int argc, char **argv, char **envp, sc_conf_t **conf,
                      sc_redis_addr_t *addr, sc_log_level_t *level, sc_log_format_t *format);

#endif
