/*
 * hist: a fixed log-linear histogram of microsecond values, shared by the
 * load generator's processes. 64 exact buckets below 64 us, then 32
 * sub-buckets per power of two (about 3 % resolution), up to 2^63 us. It is
 * a plain value (no pointers), so a child process can write it into a pipe
 * as is and the parent can add it to its own.
 */
#ifndef STATECAST_BENCH_HIST_H
#define STATECAST_BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_BUCKETS (64 + 58 * 32)

typedef struct bench_hist {
  uint64_t n;
  uint64_t max;
  uint64_t sum;
  uint64_t b[BENCH_HIST_BUCKETS];
} bench_hist_t;

static inline unsigned bench_hist_bucket(uint64_t v) {
  if (v < 64) return (unsigned)v;
  unsigned e = 63u - (unsigned)__builtin_clzll(v); /* 6..63 */
  return 64u + (e - 6u) * 32u + (unsigned)((v >> (e - 5u)) & 31u);
}

/* Largest value that falls into bucket b. */
static inline uint64_t bench_hist_upper(unsigned b) {
  if (b < 64) return b;
  unsigned e = (b - 64u) / 32u + 6u, s = (b - 64u) % 32u;
  return ((uint64_t)(33u + s) << (e - 5u)) - 1u;
}

static inline void bench_hist_add(bench_hist_t *h, int64_t v) {
  uint64_t u = v < 0 ? 0 : (uint64_t)v;
  h->b[bench_hist_bucket(u)]++;
  h->n++;
  h->sum += u;
  if (u > h->max) h->max = u;
}

static inline void bench_hist_merge(bench_hist_t *into, const bench_hist_t *h) {
  into->n += h->n;
  into->sum += h->sum;
  if (h->max > into->max) into->max = h->max;
  for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) into->b[i] += h->b[i];
}

/* The value at quantile q (0..1): the upper bound of the bucket holding
 * the ceil(q*n)-th smallest sample, never above the exact maximum; 0 when
 * empty. */
static inline uint64_t bench_hist_quantile(const bench_hist_t *h, double q) {
  if (h->n == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)h->n);
  if ((double)rank < q * (double)h->n) rank++;
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
    seen += h->b[i];
    if (seen >= rank) {
      uint64_t u = bench_hist_upper(i);
      return u < h->max ? u : h->max;
    }
  }
  return h->max;
}

#endif
