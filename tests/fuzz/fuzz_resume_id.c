/*
 * fuzz_resume_id: the Last-Event-ID / ?last_event_id= parser (sc_sse_id_parse).
 * Invariant: an accepted id formats back (sc_sse_id_format) to an id that
 * parses to the same epoch and sequence.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char epoch[SC_SSE_EPOCH_LEN + 1], epoch2[SC_SSE_EPOCH_LEN + 1];
  uint64_t seq = 0, seq2 = 0;
  if (sc_sse_id_parse((const char *)data, size, epoch, &seq) != 0) return 0;
  if (strlen(epoch) != SC_SSE_EPOCH_LEN) abort();
  char id[SC_SSE_ID_MAX];
  size_t n = sc_sse_id_format(id, epoch, seq);
  if (n == 0 || n >= SC_SSE_ID_MAX) abort();
  if (sc_sse_id_parse(id, n, epoch2, &seq2) != 0) abort();
  if (seq2 != seq || strcmp(epoch, epoch2) != 0) abort();
  return 0;
}
