#include "log.h"

#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *g_component = "statecast";
static sc_log_level_t g_level = SC_LOG_INFO;
static sc_log_format_t g_format = SC_LOG_PLAIN;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sc_log_init(const char *component, sc_log_level_t level, sc_log_format_t format) {
  g_component = component;
  g_level = level;
  g_format = format;
}

int sc_log_parse_level(const char *s, sc_log_level_t *out) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (sc_log_level_t)i;
      return 0;
    }
  }
  return SC_EINVAL;
}

int sc_log_parse_format(const char *s, sc_log_format_t *out) {
  if (strcmp(s, "plain") == 0) *out = SC_LOG_PLAIN;
  else if (strcmp(s, "json") == 0) *out = SC_LOG_JSON;
  else return SC_EINVAL;
  return 0;
}

int sc_log_enabled(sc_log_level_t level) { return level >= g_level; }

/* Appends s to buf as the inside of a JSON string. */
static size_t json_escape(char *buf, size_t pos, size_t cap, const char *s) {
  for (; *s != '\0' && pos + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      buf[pos++] = '\\';
      buf[pos++] = (char)c;
    } else if (c < 0x20) {
      pos += (size_t)snprintf(buf + pos, cap - pos, "\\u%04x", c);
    } else {
      buf[pos++] = (char)c;
    }
  }
  return pos;
}

void sc_log(sc_log_level_t level, const char *fmt, ...) {
  if (level < g_level) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  /* Keep it one line whatever the caller formatted. */
  for (char *p = msg; *p != '\0'; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';

  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[96];
  snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));

  char line[4096 + 512];
  size_t pos;
  if (g_format == SC_LOG_JSON) {
    pos = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":\"",
                           ts, level_names[level], g_component);
    pos = json_escape(line, pos, sizeof line - 3, msg);
    line[pos++] = '"';
    line[pos++] = '}';
  } else {
    pos = (size_t)snprintf(line, sizeof line, "%s %s %s: %s", ts, level_names[level], g_component, msg);
    if (pos > sizeof line - 2) pos = sizeof line - 2;
  }
  line[pos++] = '\n';
  /* One write(2): lines from several threads or processes never interleave. */
  ssize_t w = write(STDERR_FILENO, line, pos);
  (void)w;
}
