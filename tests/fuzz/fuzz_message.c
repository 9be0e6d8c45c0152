/*
 * fuzz_message: the message contract checker (sc_message_check) and the JSON
 * compactor behind it (sc_json_compact).
 * Input: "<topic>\n<body>" (no newline: the whole input is the body of topic
 * "fuzz"). Invariants beyond "no crash, no leak":
 *   - compact output is never longer than the input, re-validates, and
 *     compacting it again gives the same bytes (idempotent);
 *   - sc_message_check accepts a body exactly when the compactor does (for a
 *     valid topic, within the size limit), and returns the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "err.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  const char *nl = memchr(in, '\n', size);
  const char *topic = "fuzz", *body = in;
  size_t topic_len = 4, body_len = size;
  if (nl != NULL) {
    topic = in;
    topic_len = (size_t)(nl - in);
    body = nl + 1;
    body_len = size - topic_len - 1;
  }

  /* The compactor on its own. */
  char *out = malloc(body_len + 1), *again = malloc(body_len + 1);
  if (out == NULL || again == NULL) abort();
  size_t out_len = 0, again_len = 0;
  sc_json_error_t jerr = {0};
  int jrc = sc_json_compact(body, body_len, out, &out_len, &jerr);
  if (jrc == 0) {
    if (out_len > body_len) abort();
    if (sc_json_compact(out, out_len, again, &again_len, NULL) != 0) abort();
    if (again_len != out_len || memcmp(out, again, out_len) != 0) abort();
  } else {
    if (jrc != SC_EJSON && jrc != SC_EUTF8) abort();
    if (jerr.reason == NULL || jerr.offset > body_len) abort();
  }

  /* The whole contract check. */
  char *compact = NULL;
  size_t compact_len = 0;
  int is_delete = 0;
  sc_reject_t why = {0};
  int mrc = sc_message_check(topic, topic_len, body, body_len, 0, &compact, &compact_len, &is_delete, &why);
  if (mrc == 0) {
    if (sc_topic_validate(topic, topic_len) != 0) abort();
    if (!is_delete) {
      if (compact == NULL || jrc != 0) abort();
      if (compact_len != out_len || memcmp(compact, out, out_len) != 0) abort();
    } else if (compact != NULL) {
      abort();
    }
  } else {
    if (compact != NULL || why.reason == NULL) abort();
    if (mrc == SC_ETOPIC && sc_topic_validate(topic, topic_len) == 0) abort();
  }
  free(compact);
  free(out);
  free(again);
  return 0;
}
