#include "keys.h"

#include "err.h"

#include <string.h>

static int build(char *buf, size_t cap, const char *prefix, const char *topic, size_t len) {
  size_t plen = strlen(prefix);
  if (plen + len + 2 > cap) return SC_ETOOBIG;
  memcpy(buf, prefix, plen);
  memcpy(buf + plen, topic, len);
  buf[plen + len] = '}';
  buf[plen + len + 1] = '\0';
  return (int)(plen + len + 1);
}

int sc_keys_state(char *buf, size_t cap, const char *topic, size_t len) {
  return build(buf, cap, "state:{", topic, len);
}

int sc_keys_update_channel(char *buf, size_t cap, const char *topic, size_t len) {
  return build(buf, cap, "update:{", topic, len);
}

int sc_keys_topic_of_channel(const char *ch, size_t len, const char **topic, size_t *tlen) {
  static const char prefix[] = "update:{";
  const size_t plen = sizeof prefix - 1;
  if (len < plen + 1 || memcmp(ch, prefix, plen) != 0 || ch[len - 1] != '}') return SC_ETOPIC;
  *topic = ch + plen;
  *tlen = len - plen - 1;
  return 0;
}
