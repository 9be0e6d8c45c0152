#include "err.h"

static const char *const texts[] = {
#define SC_ERR_TEXT_(name, lname, text) text,
    SC_ERRNO_MAP(SC_ERR_TEXT_)
#undef SC_ERR_TEXT_
};

static const char *const names[] = {
#define SC_ERR_NAME_(name, lname, text) lname,
    SC_ERRNO_MAP(SC_ERR_NAME_)
#undef SC_ERR_NAME_
};

const char *sc_strerror(int err) {
  if (err == 0) return "success";
  int idx = -err - 1;
  if (idx < 0 || idx >= SC_E_INDEX_MAX_) return "unknown error";
  return texts[idx];
}

const char *sc_errname(int err) {
  if (err == 0) return "ok";
  int idx = -err - 1;
  if (idx < 0 || idx >= SC_E_INDEX_MAX_) return "unknown";
  return names[idx];
}
