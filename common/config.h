/*
 * config: one table of options per binary, filled from
 *   defaults < YAML config file < environment < command-line flags.
 *
 * An option named "redis_url" is
 *   - the YAML key   redis_url            (top level, or under the binary's
 *                                          own section, e.g. "kv-updater:")
 *   - the variable   STATECAST_REDIS_URL
 *   - the flag       --redis-url VALUE    (or --redis-url=VALUE)
 * Options marked SC_CONF_SECRET may instead come from a file named by
 * <name>_file / STATECAST_<NAME>_FILE / --<name>-file (Kubernetes secrets);
 * the trailing newline is stripped, and the value prints as "(secret)".
 *
 * A YAML file shared by every binary keeps common keys at the top level and
 * each binary's own keys under a section named after it ("kv-updater",
 * "apiserver", "publisher", "snapshot"). Other binaries' sections are
 * ignored; an unknown key anywhere else is an error naming the key.
 * Every error names the key and its source (file:line, variable or flag).
 *
 * Details: in YAML a null value ("key:", "key: ~") leaves the lower layer's
 * value in place, and a "config" key is ignored (so --check-config output can
 * be read back). Within one layer (one YAML mapping, the environment, the
 * flags) a secret's value and its _file form together are an error; a higher
 * layer overrides either, and only the winning _file is read. A bool flag
 * alone ("--verbose") means true; values need "--verbose=false".
 */
#ifndef SC_CONFIG_H
#define SC_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum { SC_CONF_STRING, SC_CONF_INT, SC_CONF_BOOL } sc_conf_type_t;

#define SC_CONF_SECRET 1u /* may come from <name>_file; never printed */

typedef struct sc_conf_spec {
  const char *name;    /* snake_case, e.g. "redis_url" */
  sc_conf_type_t type;
  const char *def;     /* default as text, NULL for "unset" */
  const char *help;    /* one line for --help */
  unsigned flags;      /* SC_CONF_SECRET */
  long long min, max;  /* SC_CONF_INT bounds, inclusive (both 0: no bounds) */
  const char *choices; /* SC_CONF_STRING: "a|b|c" allowed values, or NULL */
} sc_conf_spec_t;

/* The options every binary has; put SC_CONF_COMMON_SPECS first in its table. */
#define SC_CONF_COMMON_SPECS                                                                                    \
  {"config", SC_CONF_STRING, NULL, "path of the YAML config file", 0, 0, 0, NULL},                              \
      {"redis_url", SC_CONF_STRING, "redis://127.0.0.1:6379",                                                 \
       "redis://[[user]:password@]host:port[/db] or unix:///path[?db=N]", 0, 0, 0, NULL},                      \
      {"redis_password", SC_CONF_STRING, NULL, "Redis password (overrides one in the URL)", SC_CONF_SECRET, 0, 0, \
       NULL},                                                                                                   \
      {"log_level", SC_CONF_STRING, "info", "debug, info, warn or error", 0, 0, 0, "debug|info|warn|error"},   \
      {"log_format", SC_CONF_STRING, "plain", "plain or json", 0, 0, 0, "plain|json"},                         \
      {"max_message_bytes", SC_CONF_INT, "262144", "largest accepted message body", 0, 2, 512 * 1024 * 1024,  \
       NULL},                                                                                                   \
      {"redis_sentinels", SC_CONF_STRING, NULL,                                                                \
       "host:port,host:port of Redis Sentinels; when set they name the primary (redis_url gives db and auth)", 0, \
       0, 0, NULL},                                                                                             \
      {"redis_master_name", SC_CONF_STRING, "statecast", "master name the sentinels monitor", 0, 0, 0, NULL}

typedef struct sc_conf sc_conf_t;

/*
 * Parse everything. program is the binary's name ("statecast-kv-updater")
 * and section its YAML section ("kv-updater"); both borrowed for the life of
 * conf. specs is borrowed for the life of conf. argv/envp are borrowed;
 * values are copied. Non-option arguments are kept as positional arguments
 * ("--" ends the options). --help and --check-config are recognised and
 * reported through sc_conf_help_wanted()/sc_conf_check_wanted().
 * Returns 0 and *out (caller frees with sc_conf_free()), or SC_ECONFIG with
 * a message naming the key and source in err, and *out NULL.
 * With --help (or -h) anywhere before "--", only the defaults are applied
 * and 0 is returned even if other flags, variables or the file are bad, so
 * usage can always be shown.
 */
__attribute__((warn_unused_result)) int sc_conf_load(sc_conf_t **out, const char *program, const char *section,
                                                    const sc_conf_spec_t *specs, size_t nspecs, int argc,
                                                    char **argv, char **envp, char *err, size_t errlen);
void sc_conf_free(sc_conf_t *conf);

/* Values; name must be in the table (a programming error aborts otherwise).
 * Strings are borrowed from conf; NULL when unset. sc_conf_int/sc_conf_bool
 * also abort on an option of another type; sc_conf_str works for any type
 * (the text as given). Unset ints and bools read as 0. */
const char *sc_conf_str(const sc_conf_t *conf, const char *name);
long long sc_conf_int(const sc_conf_t *conf, const char *name);
int sc_conf_bool(const sc_conf_t *conf, const char *name);
/* Where the value came from: "default", "file:LINE", "env", "flag".
 * For a secret read from its _file form: "file-file:LINE", "env-file",
 * "flag-file". Borrowed from conf. */
const char *sc_conf_source(const sc_conf_t *conf, const char *name);

int sc_conf_help_wanted(const sc_conf_t *conf);
int sc_conf_check_wanted(const sc_conf_t *conf);
/* Positional arguments (borrowed from argv). */
char **sc_conf_args(const sc_conf_t *conf, int *argc);

/* --help text: usage line (program + usage_args), then every option with its
 * flag, variable, default and help. */
void sc_conf_usage(FILE *f, const char *program, const char *usage_args, const sc_conf_spec_t *specs, size_t nspecs);
/* --check-config output: one "name: value   # source" line per option, YAML
 * compatible, secrets shown as "(secret)". */
void sc_conf_print(const sc_conf_t *conf, FILE *f);

#endif
