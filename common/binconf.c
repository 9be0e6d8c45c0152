#include "binconf.h"

#include "err.h"
#include "httpd.h"

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

int sc_binconf_daemon(const char *program, const char *section, const sc_conf_spec_t *specs, size_t nspecs,
                      const char *listen_key, int argc, char **argv, char **envp, sc_conf_t **conf,
                      sc_redis_addr_t *addr, sc_log_level_t *level, sc_log_format_t *format) {
  char err[512];
  memset(addr, 0, sizeof *addr);
  *conf = NULL;
  if (sc_conf_load(conf, program, section, specs, nspecs, argc, argv, envp, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", program, err);
    return 1;
  }
  int code = 1;
  if (sc_conf_help_wanted(*conf)) {
    sc_conf_usage(stdout, program, "", specs, nspecs);
    code = 0;
    goto out;
  }
  if (sc_binconf_log(*conf, level, format, err, sizeof err) != 0 ||
      sc_binconf_redis_addr(*conf, addr, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", program, err);
    goto out;
  }
  struct sockaddr_storage ss;
  socklen_t sslen;
  if (sc_httpd_parse_listen(sc_conf_str(*conf, listen_key), &ss, &sslen, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s (%s): %s\n", program, listen_key, sc_conf_source(*conf, listen_key), err);
    goto out;
  }
  if (sc_conf_check_wanted(*conf)) {
    sc_conf_print(*conf, stdout);
    code = 0;
    goto out;
  }
  return SC_BINCONF_RUN;
out:
  sc_redis_addr_dispose(addr);
  sc_conf_free(*conf);
  *conf = NULL;
  return code;
}
