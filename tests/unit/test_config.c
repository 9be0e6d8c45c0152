/*
 * config: precedence (default < file < env < flag), per-binary YAML sections,
 * typed values, secrets from *_file paths, argv handling and the printed forms.
 * envp is always a small array here; the real environment is never read.
 */
#include "config.h"
#include "err.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const sc_conf_spec_t specs[] = {
    SC_CONF_COMMON_SPECS,
    {"listen", SC_CONF_STRING, "127.0.0.1:8080", "address to listen on", 0, 0, 0, NULL},
    {"verbose", SC_CONF_BOOL, "false", "say more", 0, 0, 0, NULL},
    {"workers", SC_CONF_INT, "2", "worker threads", 0, 1, 64, NULL},
    {"offset", SC_CONF_INT, "0", "any integer", 0, 0, 0, NULL},
    {"api_token", SC_CONF_STRING, NULL, "token for the API", SC_CONF_SECRET, 0, 0, NULL},
    {"pin", SC_CONF_INT, NULL, "a secret number", SC_CONF_SECRET, 0, 9999, NULL},
};
#define NSPECS (sizeof specs / sizeof specs[0])

/* Temporary files made by a test; removed in fini. */
static char tmp_paths[8][64];
static int ntmp;

static void remove_tmp(void) {
  for (int i = 0; i < ntmp; i++) unlink(tmp_paths[i]);
  ntmp = 0;
}

TestSuite(config, .fini = remove_tmp);

/* A file under /tmp holding content; the path stays valid for the test. */
static const char *tmp_file(const char *content) {
  cr_assert_lt(ntmp, 8);
  char *path = tmp_paths[ntmp++];
  snprintf(path, 64, "/tmp/sc_test_config_XXXXXX");
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  size_t len = strlen(content);
  cr_assert_eq(write(fd, content, len), (ssize_t)len);
  close(fd);
  return path;
}

static char errbuf[512];

/* argv and envp are NULL-terminated; argv[0] is the program name. */
static int load(sc_conf_t **c, char **argv, char **envp) {
  int argc = 0;
  while (argv[argc] != NULL) argc++;
  errbuf[0] = '\0';
  return sc_conf_load(c, "statecast-apiserver", "apiserver", specs, NSPECS, argc, argv, envp, errbuf,
                      sizeof errbuf);
}

static sc_conf_t *load_ok(char **argv, char **envp) {
  sc_conf_t *c = NULL;
  int rc = load(&c, argv, envp);
  cr_assert_eq(rc, 0, "load failed: %s", errbuf);
  cr_assert_not_null(c);
  return c;
}

static void load_fails(char **argv, char **envp) {
  sc_conf_t *c = (sc_conf_t *)1;
  int rc = load(&c, argv, envp);
  cr_assert_eq(rc, SC_ECONFIG, "expected SC_ECONFIG, got %d", rc);
  cr_assert_null(c);
  cr_assert_neq(errbuf[0], '\0');
}

#define ARGV(...) ((char *[]){"prog", __VA_ARGS__, NULL})
#define NOARGS ((char *[]){"prog", NULL})
#define ENV(...) ((char *[]){__VA_ARGS__, NULL})
#define NOENV ((char *[]){NULL})

static char *cat(char *buf, size_t len, const char *a, const char *b) {
  snprintf(buf, len, "%s%s", a, b);
  return buf;
}

Test(config, uses_defaults_when_nothing_is_set) {
  sc_conf_t *c = load_ok(NOARGS, NOENV);
  cr_assert_str_eq(sc_conf_str(c, "redis_url"), "redis://127.0.0.1:6379");
  cr_assert_str_eq(sc_conf_source(c, "redis_url"), "default");
  cr_assert_eq(sc_conf_int(c, "max_message_bytes"), 262144);
  cr_assert_eq(sc_conf_bool(c, "verbose"), 0);
  cr_assert_null(sc_conf_str(c, "config"));
  cr_assert_null(sc_conf_str(c, "redis_password"));
  cr_assert_str_eq(sc_conf_source(c, "redis_password"), "default");
  cr_assert_eq(sc_conf_help_wanted(c), 0);
  cr_assert_eq(sc_conf_check_wanted(c), 0);
  int n = -1;
  char **args = sc_conf_args(c, &n);
  cr_assert_eq(n, 0);
  cr_assert_null(args[0]);
  sc_conf_free(c);
}

Test(config, file_beats_default_env_beats_file_flag_beats_env) {
  const char *path = tmp_file("# shared file\n"
                              "redis_url: redis://file:1\n"
                              "log_level: debug\n"
                              "workers: 3\n"
                              "listen: file-listen\n");
  char cfg[128];
  char *env[] = {cat(cfg, sizeof cfg, "STATECAST_CONFIG=", path), "STATECAST_LOG_LEVEL=warn",
                 "STATECAST_WORKERS=4", "STATECAST_LISTEN=env-listen", "HOME=/root", NULL};
  sc_conf_t *c = load_ok(ARGV("--workers", "5", "--listen=flag-listen"), env);
  cr_assert_str_eq(sc_conf_str(c, "redis_url"), "redis://file:1");
  cr_assert_str_eq(sc_conf_source(c, "redis_url"), "file:2");
  cr_assert_str_eq(sc_conf_str(c, "log_level"), "warn");
  cr_assert_str_eq(sc_conf_source(c, "log_level"), "env");
  cr_assert_eq(sc_conf_int(c, "workers"), 5);
  cr_assert_str_eq(sc_conf_source(c, "workers"), "flag");
  cr_assert_str_eq(sc_conf_str(c, "listen"), "flag-listen");
  cr_assert_str_eq(sc_conf_source(c, "listen"), "flag");
  cr_assert_str_eq(sc_conf_str(c, "log_format"), "plain");
  cr_assert_str_eq(sc_conf_source(c, "log_format"), "default");
  cr_assert_str_eq(sc_conf_str(c, "config"), path);
  cr_assert_str_eq(sc_conf_source(c, "config"), "env");
  sc_conf_free(c);
}

Test(config, config_flag_beats_config_variable) {
  const char *a = tmp_file("listen: from-a\n");
  const char *b = tmp_file("listen: from-b\n");
  char cfg[128];
  sc_conf_t *c = load_ok(ARGV("--config", (char *)b), ENV(cat(cfg, sizeof cfg, "STATECAST_CONFIG=", a)));
  cr_assert_str_eq(sc_conf_str(c, "listen"), "from-b");
  cr_assert_str_eq(sc_conf_source(c, "config"), "flag");
  sc_conf_free(c);
}

Test(config, missing_config_file_is_an_error_naming_it) {
  load_fails(ARGV("--config=/tmp/sc-test-config-does-not-exist.yaml"), NOENV);
  cr_assert(strstr(errbuf, "/tmp/sc-test-config-does-not-exist.yaml") != NULL, "%s", errbuf);
}

Test(config, own_section_overrides_top_level_and_other_sections_are_ignored) {
  const char *path = tmp_file("apiserver:\n"
                              "  workers: 7\n"
                              "  log_level: error\n"
                              "workers: 3\n"
                              "listen: top\n"
                              "kv-updater:\n"
                              "  workers: 9\n"
                              "  something_only_kvu_knows: 1\n"
                              "  nested: {a: [1, 2]}\n"
                              "matrix: {room: x}\n"
                              "publisher:\n");
  sc_conf_t *c = load_ok(ARGV("--config", (char *)path), NOENV);
  cr_assert_eq(sc_conf_int(c, "workers"), 7);
  cr_assert_str_eq(sc_conf_source(c, "workers"), "file:2");
  cr_assert_str_eq(sc_conf_str(c, "log_level"), "error");
  cr_assert_str_eq(sc_conf_str(c, "listen"), "top");
  cr_assert_str_eq(sc_conf_source(c, "listen"), "file:5");
  sc_conf_free(c);
}

Test(config, unknown_top_level_key_is_rejected_with_its_name_and_line) {
  const char *path = tmp_file("workers: 3\nworkerz: 4\n");
  load_fails(ARGV("--config", (char *)path), NOENV);
  char want[256];
  snprintf(want, sizeof want, "config file %s:2: unknown key 'workerz'", path);
  cr_assert_str_eq(errbuf, want);
}

Test(config, unknown_key_in_own_section_is_rejected) {
  const char *path = tmp_file("apiserver:\n  listen: x\n  bogus_key: 1\n");
  load_fails(ARGV("--config", (char *)path), NOENV);
  cr_assert(strstr(errbuf, ":3: unknown key 'bogus_key'") != NULL, "%s", errbuf);
}

Test(config, non_scalar_value_is_rejected_with_line) {
  const char *path = tmp_file("listen: x\nworkers:\n  - 1\n  - 2\n");
  load_fails(ARGV("--config", (char *)path), NOENV);
  cr_assert(strstr(errbuf, ":3: workers: expected a single value") != NULL, "%s", errbuf);
}

Test(config, duplicate_key_is_rejected) {
  const char *path = tmp_file("workers: 3\nworkers: 4\n");
  load_fails(ARGV("--config", (char *)path), NOENV);
  cr_assert(strstr(errbuf, ":2: duplicate key 'workers' (first at line 1)") != NULL, "%s", errbuf);
}

Test(config, top_level_must_be_a_mapping) {
  const char *path = tmp_file("- a\n- b\n");
  load_fails(ARGV("--config", (char *)path), NOENV);
  cr_assert(strstr(errbuf, ":1: the top level must be a mapping") != NULL, "%s", errbuf);
}

Test(config, empty_and_comment_only_files_are_fine) {
  const char *empty = tmp_file("");
  const char *comments = tmp_file("# nothing here\n\n# still nothing\n");
  const char *nulls = tmp_file("listen:\nworkers: ~\n");
  sc_conf_t *c = load_ok(ARGV("--config", (char *)empty), NOENV);
  sc_conf_free(c);
  c = load_ok(ARGV("--config", (char *)comments), NOENV);
  sc_conf_free(c);
  c = load_ok(ARGV("--config", (char *)nulls), NOENV);
  cr_assert_str_eq(sc_conf_str(c, "listen"), "127.0.0.1:8080");
  cr_assert_eq(sc_conf_int(c, "workers"), 2);
  sc_conf_free(c);
}

Test(config, malformed_yaml_error_has_line_and_problem) {
  const char *path = tmp_file("listen: x\nworkers: 3\nlog_level: [debug, info\nlog_format: plain\n");
  load_fails(ARGV("--config", (char *)path), NOENV);
  char want[128];
  snprintf(want, sizeof want, "config file %s:", path);
  cr_assert(strncmp(errbuf, want, strlen(want)) == 0, "%s", errbuf);
  int line = atoi(errbuf + strlen(want));
  cr_assert_geq(line, 3, "%s", errbuf);
  cr_assert(strstr(errbuf, "expected") != NULL || strstr(errbuf, "did not find") != NULL, "%s", errbuf);
}

Test(config, invalid_utf8_error_has_line) {
  const char *path = tmp_file("listen: x\nworkers: 3\nlog_format: a\xc3" "(b\n");
  load_fails(ARGV("--config", (char *)path), NOENV);
  char want[128];
  snprintf(want, sizeof want, "config file %s:3: ", path);
  cr_assert(strncmp(errbuf, want, strlen(want)) == 0, "%s", errbuf);
  cr_assert(strstr(errbuf, "UTF-8") != NULL, "%s", errbuf);
}

Test(config, second_yaml_document_is_rejected) {
  const char *path = tmp_file("workers: 3\n---\nworkers: 4\n");
  load_fails(ARGV("--config", (char *)path), NOENV);
  cr_assert(strstr(errbuf, ":3: only one YAML document is allowed") != NULL, "%s", errbuf);
}

Test(config, unknown_flag_is_rejected_naming_it_but_not_its_value) {
  load_fails(ARGV("--no-such-flag=hunter2"), NOENV);
  cr_assert_str_eq(errbuf, "unknown flag '--no-such-flag'");
  load_fails(ARGV("-x"), NOENV);
  cr_assert_str_eq(errbuf, "unknown flag '-x'");
  load_fails(ARGV("--redis_url", "x"), NOENV); /* flags use dashes */
  cr_assert_str_eq(errbuf, "unknown flag '--redis_url'");
}

Test(config, flag_without_value_is_rejected) {
  load_fails(ARGV("--workers"), NOENV);
  cr_assert_str_eq(errbuf, "--workers: missing value");
}

Test(config, unknown_statecast_variables_are_ignored) {
  sc_conf_t *c = load_ok(NOARGS, ENV("STATECAST_SOMETHING_ELSE=1", "STATECAST_=2"));
  sc_conf_free(c);
}

Test(config, bad_integer_is_rejected) {
  load_fails(NOARGS, ENV("STATECAST_MAX_MESSAGE_BYTES=abc"));
  cr_assert_str_eq(errbuf, "STATECAST_MAX_MESSAGE_BYTES: 'abc' is not an integer");
  load_fails(ARGV("--workers=12x"), NOENV);
  cr_assert_str_eq(errbuf, "--workers: '12x' is not an integer");
  load_fails(ARGV("--workers= 12"), NOENV);
  load_fails(ARGV("--workers="), NOENV);
  load_fails(ARGV("--workers=+3"), NOENV);
  load_fails(ARGV("--offset=99999999999999999999999"), NOENV);
}

Test(config, integer_out_of_range_is_rejected_with_bounds) {
  const char *path = tmp_file("listen: x\n\nmax_message_bytes: 99999999999\n");
  load_fails(ARGV("--config", (char *)path), NOENV);
  char want[256];
  snprintf(want, sizeof want, "config file %s:3: max_message_bytes: 99999999999 is out of range 2..536870912",
           path);
  cr_assert_str_eq(errbuf, want);
  load_fails(ARGV("--workers", "0"), NOENV);
  cr_assert_str_eq(errbuf, "--workers: 0 is out of range 1..64");
}

Test(config, unbounded_integer_accepts_negative_values) {
  sc_conf_t *c = load_ok(ARGV("--offset", "-42"), NOENV);
  cr_assert_eq(sc_conf_int(c, "offset"), -42);
  sc_conf_free(c);
}

Test(config, string_outside_choices_is_rejected) {
  load_fails(ARGV("--log-level", "loud"), NOENV);
  cr_assert_str_eq(errbuf, "--log-level: 'loud' is not one of debug|info|warn|error");
}

Test(config, booleans_accept_the_usual_spellings) {
  static const char *yes[] = {"true", "yes", "on", "1"};
  static const char *no[] = {"false", "no", "off", "0"};
  char buf[64];
  for (int i = 0; i < 4; i++) {
    sc_conf_t *c = load_ok(ARGV(cat(buf, sizeof buf, "--verbose=", yes[i])), NOENV);
    cr_assert_eq(sc_conf_bool(c, "verbose"), 1, "%s", yes[i]);
    sc_conf_free(c);
    c = load_ok(NOARGS, ENV(cat(buf, sizeof buf, "STATECAST_VERBOSE=", no[i])));
    cr_assert_eq(sc_conf_bool(c, "verbose"), 0, "%s", no[i]);
    sc_conf_free(c);
  }
}

Test(config, bare_bool_flag_means_true_and_does_not_take_the_next_argument) {
  sc_conf_t *c = load_ok(ARGV("--verbose", "false"), ENV("STATECAST_VERBOSE=no"));
  cr_assert_eq(sc_conf_bool(c, "verbose"), 1);
  int n;
  char **args = sc_conf_args(c, &n);
  cr_assert_eq(n, 1);
  cr_assert_str_eq(args[0], "false");
  sc_conf_free(c);
}

Test(config, bad_boolean_is_rejected) {
  load_fails(ARGV("--verbose=maybe"), NOENV);
  cr_assert(strstr(errbuf, "--verbose: 'maybe' is not a boolean") == errbuf, "%s", errbuf);
}

Test(config, secret_from_env_file_has_trailing_newline_stripped) {
  const char *s = tmp_file("s3cret\n");
  char v[128];
  sc_conf_t *c = load_ok(NOARGS, ENV(cat(v, sizeof v, "STATECAST_REDIS_PASSWORD_FILE=", s)));
  cr_assert_str_eq(sc_conf_str(c, "redis_password"), "s3cret");
  cr_assert_str_eq(sc_conf_source(c, "redis_password"), "env-file");
  sc_conf_free(c);
}

Test(config, secret_file_strips_only_one_line_ending) {
  const char *crlf = tmp_file("tok\r\n");
  const char *two = tmp_file("tok\n\n");
  const char *none = tmp_file("tok");
  sc_conf_t *c = load_ok(ARGV("--api-token-file", (char *)crlf), NOENV);
  cr_assert_str_eq(sc_conf_str(c, "api_token"), "tok");
  cr_assert_str_eq(sc_conf_source(c, "api_token"), "flag-file");
  sc_conf_free(c);
  c = load_ok(ARGV("--api-token-file", (char *)two), NOENV);
  cr_assert_str_eq(sc_conf_str(c, "api_token"), "tok\n");
  sc_conf_free(c);
  c = load_ok(ARGV("--api-token-file=" "/dev/null"), NOENV);
  cr_assert_str_eq(sc_conf_str(c, "api_token"), "");
  sc_conf_free(c);
  c = load_ok(ARGV("--api-token-file", (char *)none), NOENV);
  cr_assert_str_eq(sc_conf_str(c, "api_token"), "tok");
  sc_conf_free(c);
}

Test(config, secret_from_yaml_file_key_in_own_section) {
  const char *s = tmp_file("yaml-secret\n");
  char yaml[256];
  snprintf(yaml, sizeof yaml, "listen: x\napiserver:\n  api_token_file: %s\n", s);
  const char *path = tmp_file(yaml);
  sc_conf_t *c = load_ok(ARGV("--config", (char *)path), NOENV);
  cr_assert_str_eq(sc_conf_str(c, "api_token"), "yaml-secret");
  cr_assert_str_eq(sc_conf_source(c, "api_token"), "file-file:3");
  sc_conf_free(c);
}

Test(config, unreadable_secret_file_is_an_error_naming_key_and_path) {
  load_fails(NOARGS, ENV("STATECAST_REDIS_PASSWORD_FILE=/tmp/sc-test-no-such-secret"));
  cr_assert(strstr(errbuf, "STATECAST_REDIS_PASSWORD_FILE") != NULL, "%s", errbuf);
  cr_assert(strstr(errbuf, "/tmp/sc-test-no-such-secret") != NULL, "%s", errbuf);
  const char *path = tmp_file("api_token_file: /tmp/sc-test-no-such-secret\n");
  load_fails(ARGV("--config", (char *)path), NOENV);
  cr_assert(strstr(errbuf, ":1: api_token_file: cannot read '/tmp/sc-test-no-such-secret'") != NULL, "%s",
            errbuf);
}

Test(config, overridden_secret_file_is_never_read) {
  const char *path = tmp_file("api_token_file: /tmp/sc-test-no-such-secret\n");
  sc_conf_t *c = load_ok(ARGV("--config", (char *)path), ENV("STATECAST_API_TOKEN=from-env"));
  cr_assert_str_eq(sc_conf_str(c, "api_token"), "from-env");
  cr_assert_str_eq(sc_conf_source(c, "api_token"), "env");
  sc_conf_free(c);
}

Test(config, higher_layer_file_form_beats_lower_layer_value) {
  const char *s = tmp_file("from-file\n");
  char v[128];
  sc_conf_t *c = load_ok(ARGV("--redis-password-file", (char *)s), ENV("STATECAST_REDIS_PASSWORD=from-env"));
  cr_assert_str_eq(sc_conf_str(c, "redis_password"), "from-file");
  sc_conf_free(c);
  c = load_ok(ARGV("--redis-password", "from-flag"), ENV(cat(v, sizeof v, "STATECAST_REDIS_PASSWORD_FILE=", s)));
  cr_assert_str_eq(sc_conf_str(c, "redis_password"), "from-flag");
  cr_assert_str_eq(sc_conf_source(c, "redis_password"), "flag");
  sc_conf_free(c);
}

Test(config, value_and_file_at_the_same_level_are_rejected) {
  const char *s = tmp_file("x\n");
  char v[128];
  load_fails(NOARGS, ENV("STATECAST_REDIS_PASSWORD=a", cat(v, sizeof v, "STATECAST_REDIS_PASSWORD_FILE=", s)));
  cr_assert(strstr(errbuf, "STATECAST_REDIS_PASSWORD and STATECAST_REDIS_PASSWORD_FILE") != NULL, "%s", errbuf);
  cr_assert(strstr(errbuf, "=a") == NULL);
  load_fails(ARGV("--api-token", "a", "--api-token-file", (char *)s), NOENV);
  cr_assert(strstr(errbuf, "api_token and api_token_file") != NULL, "%s", errbuf);
  char yaml[256];
  snprintf(yaml, sizeof yaml, "api_token: a\napi_token_file: %s\n", s);
  const char *path = tmp_file(yaml);
  load_fails(ARGV("--config", (char *)path), NOENV);
  cr_assert(strstr(errbuf, ":2: both api_token and api_token_file") != NULL, "%s", errbuf);
}

Test(config, secret_values_never_appear_in_errors) {
  const char *s = tmp_file("hunter2\n");
  load_fails(NOARGS, ENV("STATECAST_PIN=hunter2"));
  cr_assert(strstr(errbuf, "STATECAST_PIN") != NULL, "%s", errbuf);
  cr_assert(strstr(errbuf, "hunter2") == NULL, "%s", errbuf);
  load_fails(ARGV("--pin-file", (char *)s), NOENV);
  cr_assert(strstr(errbuf, "--pin-file") != NULL, "%s", errbuf);
  cr_assert(strstr(errbuf, "hunter2") == NULL, "%s", errbuf);
  load_fails(ARGV("--pin=123456"), NOENV);
  cr_assert(strstr(errbuf, "123456") == NULL, "%s", errbuf);
}

Test(config, positional_arguments_are_kept_and_double_dash_ends_options) {
  sc_conf_t *c = load_ok(ARGV("a", "--workers", "3", "b", "-", "--", "--verbose", "c"), NOENV);
  int n;
  char **args = sc_conf_args(c, &n);
  cr_assert_eq(n, 5);
  cr_assert_str_eq(args[0], "a");
  cr_assert_str_eq(args[1], "b");
  cr_assert_str_eq(args[2], "-");
  cr_assert_str_eq(args[3], "--verbose");
  cr_assert_str_eq(args[4], "c");
  cr_assert_null(args[5]);
  cr_assert_eq(sc_conf_bool(c, "verbose"), 0);
  cr_assert_eq(sc_conf_int(c, "workers"), 3);
  sc_conf_free(c);
}

Test(config, help_and_check_config_are_recorded) {
  sc_conf_t *c = load_ok(ARGV("--check-config"), NOENV);
  cr_assert_eq(sc_conf_check_wanted(c), 1);
  cr_assert_eq(sc_conf_help_wanted(c), 0);
  sc_conf_free(c);
  c = load_ok(ARGV("-h"), NOENV);
  cr_assert_eq(sc_conf_help_wanted(c), 1);
  sc_conf_free(c);
  c = load_ok(ARGV("--help"), NOENV);
  cr_assert_eq(sc_conf_help_wanted(c), 1);
  sc_conf_free(c);
}

Test(config, help_wins_over_bad_flags_and_a_bad_environment) {
  sc_conf_t *c = load_ok(ARGV("--bogus", "--help", "--workers=x"), ENV("STATECAST_WORKERS=oops"));
  cr_assert_eq(sc_conf_help_wanted(c), 1);
  cr_assert_eq(sc_conf_int(c, "workers"), 2);
  sc_conf_free(c);
}

static char *print_to_string(const sc_conf_t *c) {
  char *out = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&out, &len);
  cr_assert_not_null(m);
  sc_conf_print(c, m);
  fclose(m);
  return out;
}

Test(config, print_redacts_secrets_and_shows_sources) {
  sc_conf_t *c = load_ok(ARGV("--api-token", "tok-XYZ", "--workers", "9"), ENV("STATECAST_REDIS_PASSWORD=pw-ABC"));
  char *out = print_to_string(c);
  cr_assert(strstr(out, "tok-XYZ") == NULL, "%s", out);
  cr_assert(strstr(out, "pw-ABC") == NULL, "%s", out);
  cr_assert(strstr(out, "redis_password: \"(secret)\"") != NULL, "%s", out);
  cr_assert(strstr(out, "# env\n") != NULL, "%s", out);
  cr_assert(strstr(out, "config: ~") != NULL, "%s", out);
  cr_assert(strstr(out, "pin: ~") != NULL, "%s", out);
  cr_assert(strstr(out, "redis_url: redis://127.0.0.1:6379 ") != NULL, "%s", out);
  cr_assert(strstr(out, "workers: 9 ") != NULL, "%s", out);
  cr_assert(strstr(out, "verbose: false ") != NULL, "%s", out);
  free(out);
  sc_conf_free(c);
}

Test(config, printed_config_reads_back_as_the_same_config) {
  sc_conf_t *c = load_ok(ARGV("--listen", "a: \"b\" #c\\d\ttab", "--log-level", "debug", "--verbose", "--offset=-5",
                              "--redis-url", "yes"),
                         NOENV);
  char *out = print_to_string(c);
  const char *path = tmp_file(out);
  sc_conf_t *back = load_ok(ARGV("--config", (char *)path), NOENV);
  for (size_t i = 0; i < NSPECS; i++) {
    const char *n = specs[i].name;
    if (strcmp(n, "config") == 0) continue;
    const char *a = sc_conf_str(c, n), *b = sc_conf_str(back, n);
    if (a == NULL) {
      cr_assert_null(b, "%s", n);
      continue;
    }
    cr_assert_not_null(b, "%s", n);
    if (specs[i].type == SC_CONF_STRING)
      cr_assert_str_eq(a, b, "%s", n);
  }
  cr_assert_eq(sc_conf_int(back, "offset"), -5);
  cr_assert_eq(sc_conf_bool(back, "verbose"), 1);
  free(out);
  sc_conf_free(back);
  sc_conf_free(c);
}

Test(config, usage_lists_flags_variables_and_defaults) {
  char *out = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&out, &len);
  sc_conf_usage(m, "statecast-apiserver", "[TOPIC...]", specs, NSPECS);
  fclose(m);
  cr_assert(strstr(out, "usage: statecast-apiserver [options] [TOPIC...]\n") == out, "%s", out);
  cr_assert(strstr(out, "  --redis-url VALUE   (STATECAST_REDIS_URL, default redis://127.0.0.1:6379)\n      redis://") !=
                NULL,
            "%s", out);
  cr_assert(strstr(out, "--redis-password-file PATH   (STATECAST_REDIS_PASSWORD_FILE)") != NULL, "%s", out);
  cr_assert(strstr(out, "--workers N   (STATECAST_WORKERS, default 2, 1..64)") != NULL, "%s", out);
  cr_assert(strstr(out, "--help") != NULL, "%s", out);
  cr_assert(strstr(out, "--check-config") != NULL, "%s", out);
  free(out);
}

Test(config, unknown_option_name_in_accessor_aborts, .signal = SIGABRT) {
  sc_conf_t *c = load_ok(NOARGS, NOENV);
  (void)sc_conf_str(c, "no_such_option");
}

Test(config, free_null_is_a_no_op) { sc_conf_free(NULL); }
