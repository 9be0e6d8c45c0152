/*
 * reject: what kv-updater does with a message the contract refuses (from
 * pub/sub or from statecast:inbox): count it by reason, log one line with
 * channel and topic escaped and bounded, and queue a record for the capped
 * list statecast:rejected (sent by the commit queue, LPUSH + LTRIM).
 * kvu_reject_record() builds that record (pure; see updater.h).
 */
#include "updater_internal.h"

#include "err.h"
#include "json.h"
#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static int64_t now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void kvu_reject(kvu_t *k, const char *channel, size_t channel_len, const char *topic, size_t topic_len, int code,
                const sc_reject_t *why, const char *msg, size_t msg_len) {
  switch (code) {
  case SC_ETOPIC: k->st.rejected_topic++; break;
  case SC_EJSON: k->st.rejected_json++; break;
  case SC_EUTF8: k->st.rejected_utf8++; break;
  case SC_ETOOBIG: k->st.rejected_toobig++; break;
  default: break;
  }
  const char *detail = why != NULL && why->reason != NULL ? why->reason : sc_strerror(code);
  size_t offset = why != NULL ? why->offset : 0;
  /* The channel and topic can hold anything; log them escaped and bounded. */
  char ch_esc[6 * 256 + 1], tp_esc[6 * 256 + 1];
  size_t cl = channel_len > 256 ? 256 : channel_len, tl = topic_len > 256 ? 256 : topic_len;
  ch_esc[sc_json_escape(ch_esc, channel, cl)] = '\0';
  tp_esc[sc_json_escape(tp_esc, topic, tl)] = '\0';
  SC_WARN("rejected message channel=\"%s\" topic=\"%s\" reason=%s (%s) offset=%zu bytes=%zu", ch_esc, tp_esc,
          sc_errname(code), detail, offset, msg_len);

  item_t *it = calloc(1, sizeof *it);
  char *rec = kvu_reject_record(now_ms(), channel, channel_len, topic, topic_len, code, detail, offset, msg, msg_len);
  if (it == NULL || rec == NULL) {
    free(it);
    free(rec);
    SC_ERROR("out of memory keeping a rejected message");
    return;
  }
  it->kind = ITEM_REJECT;
  it->data = rec;
  it->data_len = strlen(rec);
  kvu_enqueue(k, it);
}

/* ---- rejected records ------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned min;
  if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
  else return 0;
  if (n < len) return 0;
  unsigned cp = c & (0x3F >> (len - 1));
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

/* Append s as a JSON string (with quotes), invalid UTF-8 bytes as U+FFFD. */
static char *put_string(char *o, const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  *o++ = '"';
  size_t i = 0;
  while (i < len) {
    size_t start = i;
    size_t l;
    while (i < len && (l = utf8_seq(p + i, len - i)) != 0) i += l;
    o += sc_json_escape(o, s + start, i - start);
    if (i < len) {
      memcpy(o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  *o++ = '"';
  return o;
}

char *kvu_reject_record(int64_t ts_ms, const char *channel, size_t channel_len, const char *topic, size_t topic_len,
                        int code, const char *detail, size_t offset, const char *msg, size_t msg_len) {
  size_t sample = msg_len > KVU_REJECT_SAMPLE_BYTES ? KVU_REJECT_SAMPLE_BYTES : msg_len;
  size_t dl = detail != NULL ? strlen(detail) : 0;
  size_t cap = 256 + 6 * (channel_len + topic_len + dl + sample);
  char *buf = malloc(cap);
  if (buf == NULL) return NULL;
  char *o = buf;
  o += sprintf(o, "{\"ts\":%" PRId64 ",\"channel\":", ts_ms);
  o = put_string(o, channel, channel_len);
  o += sprintf(o, ",\"topic\":");
  o = put_string(o, topic, topic_len);
  o += sprintf(o, ",\"reason\":\"%s\",\"detail\":", sc_errname(code));
  o = put_string(o, detail != NULL ? detail : "", dl);
  o += sprintf(o, ",\"offset\":%zu,\"bytes\":%zu,\"message\":", offset, msg_len);
  o = put_string(o, msg, sample);
  *o++ = '}';
  *o = '\0';
  return buf;
}
