/*
 * err: the one list of error codes used by every statecast library call.
 *
 * Library functions return 0 on success or a negative SC_E* code from the
 * X-macro below (the libuv UV_ERRNO_MAP idea). sc_strerror() gives the human
 * text, sc_errname() the short stable name used in logs and metric labels.
 */
#ifndef SC_ERR_H
#define SC_ERR_H

#define SC_ERRNO_MAP(X)                                          \
  X(NOMEM, "nomem", "out of memory")                                      \
  X(INVAL, "inval", "invalid argument")                                   \
  X(TOPIC, "topic", "invalid topic")                                      \
  X(JSON, "json", "invalid JSON")                                        \
  X(UTF8, "utf8", "invalid UTF-8")                                       \
  X(TOOBIG, "toobig", "message too large")                                 \
  X(CONFIG, "config", "invalid configuration")                             \
  X(URL, "url", "invalid Redis URL")                                    \
  X(REDIS, "redis", "Redis error")                                        \
  X(CONN, "conn", "not connected to Redis")                              \
  X(TIMEOUT, "timeout", "timed out")                                        \
  X(IO, "io", "I/O error")                                             \
  X(NOENT, "noent", "not found")                                          \
  X(CLOSED, "closed", "closed")                                            \
  X(NORECEIVER, "noreceiver", "no kv-updater received the message")

enum { SC_OK = 0 };

/* Position of each code in SC_ERRNO_MAP; SC_E<NAME> is -(position + 1). */
enum {
#define SC_ERR_ENUM_(name, lname, text) SC_E_INDEX_##name,
  SC_ERRNO_MAP(SC_ERR_ENUM_)
#undef SC_ERR_ENUM_
  SC_E_INDEX_MAX_
};

#define SC_ERR_DEF_(name) SC_E##name = -(SC_E_INDEX_##name + 1)
enum {
  SC_ERR_DEF_(NOMEM),
  SC_ERR_DEF_(INVAL),
  SC_ERR_DEF_(TOPIC),
  SC_ERR_DEF_(JSON),
  SC_ERR_DEF_(UTF8),
  SC_ERR_DEF_(TOOBIG),
  SC_ERR_DEF_(CONFIG),
  SC_ERR_DEF_(URL),
  SC_ERR_DEF_(REDIS),
  SC_ERR_DEF_(CONN),
  SC_ERR_DEF_(TIMEOUT),
  SC_ERR_DEF_(IO),
  SC_ERR_DEF_(NOENT),
  SC_ERR_DEF_(CLOSED),
  SC_ERR_DEF_(NORECEIVER),
};
#undef SC_ERR_DEF_

/* Static text for an error code; "unknown error" for anything else. */
const char *sc_strerror(int err);
/* Short lower-case name ("topic", "json", ...); "ok" for 0, "unknown" otherwise. */
const char *sc_errname(int err);

#endif
