#include "binconf.h"

#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sc_binconf_log(const sc_conf_t *conf, sc_log_level_t *level, sc_log_format_t *format, char *err, size_t errlen) {
  if (sc_log_parse_level(sc_conf_str(conf, "log_level"), level) != 0 ||
      sc_log_parse_format(sc_conf_str(conf, "log_format"), format) != 0) {
    snprintf(err, errlen, "bad log_level or log_format");
    return SC_ECONFIG;
  }
  return 0;
}

int sc_binconf_redis_addr(const sc_conf_t *conf, sc_redis_addr_t *addr, char *err, size_t errlen) {
  char why[256];
  memset(addr, 0, sizeof *addr);
  if (sc_redis_url_parse(sc_conf_str(conf, "redis_url"), addr, why, sizeof why) != 0) {
    snprintf(err, errlen, "redis_url (%s): %s", sc_conf_source(conf, "redis_url"), why);
    return SC_ECONFIG;
  }
  const char *password = sc_conf_str(conf, "redis_password");
  if (password != NULL) {
    free(addr->password);
    addr->password = strdup(password);
    if (addr->password == NULL) {
      sc_redis_addr_dispose(addr);
      snprintf(err, errlen, "out of memory");
      return SC_ENOMEM;
    }
  }
  if (sc_redis_addr_set_sentinels(addr, sc_conf_str(conf, "redis_sentinels"), sc_conf_str(conf, "redis_master_name"),
                                  why, sizeof why) != 0) {
    sc_redis_addr_dispose(addr);
    snprintf(err, errlen, "redis_sentinels (%s): %s", sc_conf_source(conf, "redis_sentinels"), why);
    return SC_ECONFIG;
  }
  return 0;
}
