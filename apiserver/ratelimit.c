/*
 * ratelimit: an open hash of buckets plus an LRU list (see ratelimit.h).
 */
#include "ratelimit.h"

#include "err.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct bucket {
  struct bucket *hnext;       /* hash chain */
  struct bucket *prev, *next; /* LRU: head is the most recent */
  double tokens;
  uint64_t at_ms;
  char key[API_RL_KEY_MAX + 1];
} bucket_t;

struct api_rl {
  pthread_mutex_t mu; /* every worker thread takes tokens from the same buckets */
  double rate, burst;
  size_t max_keys, count, nbuckets;
  bucket_t **table; /* owned array of chains */
  bucket_t *head, *tail;
};

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

int api_rl_new(api_rl_t **out, double rate, double burst, size_t max_keys) {
  *out = NULL;
  if (rate <= 0) return 0;
  api_rl_t *rl = calloc(1, sizeof *rl);
  if (rl == NULL) return SC_ENOMEM;
  pthread_mutex_init(&rl->mu, NULL);
  rl->rate = rate;
  rl->burst = burst < 1 ? 1 : burst;
  rl->max_keys = max_keys < 1 ? 1 : max_keys;
  rl->nbuckets = 64;
  while (rl->nbuckets < rl->max_keys) rl->nbuckets *= 2;
  rl->table = calloc(rl->nbuckets, sizeof *rl->table);
  if (rl->table == NULL) {
    free(rl);
    return SC_ENOMEM;
  }
  *out = rl;
  return 0;
}

void api_rl_free(api_rl_t *rl) {
  if (rl == NULL) return;
  for (bucket_t *b = rl->head, *n; b != NULL; b = n) {
    n = b->next;
    free(b);
  }
  free(rl->table);
  pthread_mutex_destroy(&rl->mu);
  free(rl);
}

size_t api_rl_count(api_rl_t *rl) {
  if (rl == NULL) return 0;
  pthread_mutex_lock(&rl->mu);
  size_t n = rl->count;
  pthread_mutex_unlock(&rl->mu);
  return n;
}

static void lru_unlink(api_rl_t *rl, bucket_t *b) {
  if (b->prev) b->prev->next = b->next; else rl->head = b->next;
  if (b->next) b->next->prev = b->prev; else rl->tail = b->prev;
  b->prev = b->next = NULL;
}

static void lru_push(api_rl_t *rl, bucket_t *b) {
  b->prev = NULL;
  b->next = rl->head;
  if (rl->head) rl->head->prev = b;
  rl->head = b;
  if (rl->tail == NULL) rl->tail = b;
}

static void hash_remove(api_rl_t *rl, bucket_t *b) {
  bucket_t **pp = &rl->table[hash_str(b->key) & (rl->nbuckets - 1)];
  while (*pp != b) pp = &(*pp)->hnext;
  *pp = b->hnext;
}

static unsigned take_locked(api_rl_t *rl, const char *key, uint64_t now_ms) {
  char k[API_RL_KEY_MAX + 1];
  size_t kl = strlen(key);
  if (kl > API_RL_KEY_MAX) kl = API_RL_KEY_MAX;
  memcpy(k, key, kl);
  k[kl] = '\0';
  size_t slot = hash_str(k) & (rl->nbuckets - 1);
  bucket_t *b = rl->table[slot];
  while (b != NULL && strcmp(b->key, k) != 0) b = b->hnext;
  if (b == NULL) {
    if (rl->count >= rl->max_keys) {
      b = rl->tail; /* reuse the least recently used bucket */
      lru_unlink(rl, b);
      hash_remove(rl, b);
    } else {
      b = malloc(sizeof *b);
      if (b == NULL) return 0; /* out of memory: let it through rather than refuse everyone */
      rl->count++;
    }
    memcpy(b->key, k, kl + 1);
    b->tokens = rl->burst;
    b->at_ms = now_ms;
    b->hnext = rl->table[slot];
    rl->table[slot] = b;
  } else {
    lru_unlink(rl, b);
  }
  lru_push(rl, b);
  if (now_ms > b->at_ms) {
    b->tokens += (double)(now_ms - b->at_ms) / 1000.0 * rl->rate;
    if (b->tokens > rl->burst) b->tokens = rl->burst;
    b->at_ms = now_ms;
  }
  if (b->tokens >= 1.0) {
    b->tokens -= 1.0;
    return 0;
  }
  double wait = ceil((1.0 - b->tokens) / rl->rate);
  return wait < 1 ? 1u : wait > 86400 ? 86400u : (unsigned)wait;
}

unsigned api_rl_take(api_rl_t *rl, const char *key, uint64_t now_ms) {
  if (rl == NULL) return 0;
  pthread_mutex_lock(&rl->mu);
  unsigned wait = take_locked(rl, key, now_ms);
  pthread_mutex_unlock(&rl->mu);
  return wait;
}
