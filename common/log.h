/*
 * log: one line per event on stderr, plain text or JSON.
 *
 * Plain:  2026-11-23T14:05:01.123Z warn kv-updater: rejected channel=... reason=json
 * JSON:   {"ts":"2026-11-23T14:05:01.123Z","level":"warn","component":"kv-updater","msg":"..."}
 * The level filter and format are process-wide, set once by main() before any
 * thread starts; writing a line is a single fwrite of a prepared buffer, so
 * lines from several threads never interleave.
 */
#ifndef SC_LOG_H
#define SC_LOG_H

typedef enum { SC_LOG_DEBUG = 0, SC_LOG_INFO, SC_LOG_WARN, SC_LOG_ERROR } sc_log_level_t;
typedef enum { SC_LOG_PLAIN = 0, SC_LOG_JSON } sc_log_format_t;

/* component is borrowed for the life of the process (a string literal). */
void sc_log_init(const char *component, sc_log_level_t level, sc_log_format_t format);
/* Parse "debug|info|warn|error" / "plain|json"; 0 or SC_EINVAL. */
__attribute__((warn_unused_result)) int sc_log_parse_level(const char *s, sc_log_level_t *out);
__attribute__((warn_unused_result)) int sc_log_parse_format(const char *s, sc_log_format_t *out);
int sc_log_enabled(sc_log_level_t level);

void sc_log(sc_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define SC_DEBUG(...) do { if (sc_log_enabled(SC_LOG_DEBUG)) sc_log(SC_LOG_DEBUG, __VA_ARGS__); } while (0)
#define SC_INFO(...) sc_log(SC_LOG_INFO, __VA_ARGS__)
#define SC_WARN(...) sc_log(SC_LOG_WARN, __VA_ARGS__)
#define SC_ERROR(...) sc_log(SC_LOG_ERROR, __VA_ARGS__)

#endif
