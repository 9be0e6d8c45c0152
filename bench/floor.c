/*
 * statecast-floor: the physical floor of SSE fan-out on this machine.
 *
 * A deliberately minimal server with the same wire format as statecast:
 * `GET /events...` answers 200 with text/event-stream and chunked transfer
 * encoding, then stays silent until a message arrives; `POST /pub/<topic>`
 * with a body (what the load generator's HTTP publisher sends) frames the
 * body exactly as statecast does (one chunk holding `id: <epoch>-<seq>`,
 * `event: update` and `data: {"topic":..,"seq":..,"ts":..,"data":<body>}`)
 * and writes that chunk to every stream as fast as the kernel takes it.
 *
 * -t threads (default 2, one per core) each own a SO_REUSEPORT listener and
 * an epoll; the kernel splits the connections between them. A published
 * frame goes into a shared ring (one writer at a time, under a mutex; the
 * sequence number is published with release order) and every thread is woken
 * through its eventfd, then walks its own streams with one write (or writev
 * when a stream is behind) each. Per client there is only a fixed slot in an
 * array indexed by fd, sized to the open-file limit at start: no h2o, no
 * allocation per client or per event.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RING 65536u          /* frames kept; a stream further behind is cut */
#define RING_MARGIN 4096u    /* frames a thread may be overtaken by during one pass */
#define REQ_MAX 480
#define MAX_THREADS 64
#define IOV_BATCH 64
#define LISTEN_TAG UINT32_MAX
#define WAKE_TAG (UINT32_MAX - 1)
#define EPOCH "00000000f100f100"

static const char stream_head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n"
                                  "d\r\nretry: 2000\n\n\r\n";

typedef struct frame {
  char *buf;
  size_t len, cap;
} frame_t;

enum { K_NONE, K_REQ, K_STREAM, K_PUB };

/* One fd's state; the array is allocated once, indexed by fd. */
typedef struct slot {
  uint8_t kind;
  uint8_t want_out;
  uint16_t rlen;
  int32_t list_idx;  /* position in its thread's stream list */
  uint32_t off;      /* bytes of frame `next` already written */
  uint64_t next;     /* first frame not completely written */
  char *body;        /* publishers only */
  size_t body_len, body_need;
  char req[REQ_MAX];
} slot_t;

typedef struct worker {
  int idx;
  int pub_only; /* the publish thread: takes POST /pub, never streams */
  int ep, lfd, wake;
  int *list;
  size_t n;
  uint64_t cut, wrote, eagain;
  pthread_t tid;
} worker_t;

static slot_t *slots;
static size_t nslots;
static frame_t ring[RING];
static _Atomic uint64_t pub_seq;
static pthread_mutex_t pub_lock = PTHREAD_MUTEX_INITIALIZER;
static worker_t workers[MAX_THREADS];
static worker_t pub_worker;
static int nworkers = 2;
static struct sockaddr_in listen_addr, pub_addr;

static void die(const char *what) {
  fprintf(stderr, "statecast-floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ep_set(worker_t *w, int fd, uint32_t events, int op) {
  struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)fd};
  if (epoll_ctl(w->ep, op, fd, &ev) != 0 && op != EPOLL_CTL_DEL) die("epoll_ctl");
}

static void drop(worker_t *w, int fd) {
  slot_t *s = &slots[fd];
  if (s->kind == K_STREAM) {
    int32_t i = s->list_idx;
    int last = w->list[--w->n];
    w->list[i] = last;
    slots[last].list_idx = i;
  }
  free(s->body);
  s->body = NULL;
  s->kind = K_NONE;
  close(fd);
}

/* Write every frame below `target` that fd still lacks; 0, or -1 when dropped. */
static int flush(worker_t *w, int fd, uint64_t target) {
  slot_t *s = &slots[fd];
  while (s->next < target) {
    if (target - s->next > RING - RING_MARGIN) {
      w->cut++;
      drop(w, fd);
      return -1;
    }
    struct iovec iov[IOV_BATCH];
    int n = 0;
    size_t total = 0;
    for (uint64_t q = s->next; q < target && n < IOV_BATCH; q++, n++) {
      const frame_t *f = &ring[q % RING];
      size_t skip = q == s->next ? s->off : 0;
      iov[n].iov_base = f->buf + skip;
      iov[n].iov_len = f->len - skip;
      total += iov[n].iov_len;
    }
    ssize_t wr = n == 1 ? write(fd, iov[0].iov_base, iov[0].iov_len) : writev(fd, iov, n);
    if (wr < 0) {
      if (errno == EAGAIN) {
        w->eagain++;
        break;
      }
      drop(w, fd);
      return -1;
    }
    w->wrote++;
    size_t adv = (size_t)wr;
    while (adv > 0) {
      const frame_t *f = &ring[s->next % RING];
      size_t left = f->len - s->off;
      if (adv >= left) {
        adv -= left;
        s->next++;
        s->off = 0;
      } else {
        s->off += (uint32_t)adv;
        adv = 0;
      }
    }
    if ((size_t)wr < total) break;
  }
  int want = s->next < target;
  if (want != s->want_out) {
    s->want_out = (uint8_t)want;
    ep_set(w, fd, EPOLLRDHUP | (want ? EPOLLOUT : 0), EPOLL_CTL_MOD);
  }
  return 0;
}

/* Frame body[0..len) for topic, publish it, wake every worker. */
static void publish(const char *topic, size_t tlen, const char *body, size_t blen) {
  pthread_mutex_lock(&pub_lock);
  uint64_t seq = atomic_load_explicit(&pub_seq, memory_order_relaxed);
  frame_t *f = &ring[seq % RING];
  size_t need = blen + tlen + 256;
  if (f->cap < need) {
    char *nb = realloc(f->buf, need);
    if (nb == NULL) die("realloc");
    f->buf = nb;
    f->cap = need;
  }
  /* The chunk: hex size, CRLF, event, CRLF. Write the event at a fixed
   * offset first, then put its size in front. */
  char *ev = f->buf + 16;
  int n = snprintf(ev, f->cap - 16,
                   "id: " EPOCH "-%" PRIu64 "\nevent: update\ndata: {\"topic\":\"%.*s\",\"seq\":%" PRIu64
                   ",\"ts\":%" PRId64 ",\"data\":",
                   seq + 1, (int)tlen, topic, seq + 1, now_ms());
  memcpy(ev + n, body, blen);
  memcpy(ev + n + blen, "}\n\n\r\n", 5);
  size_t evlen = (size_t)n + blen + 3;
  char hex[16];
  int hl = snprintf(hex, sizeof hex, "%zx\r\n", evlen);
  char *start = ev - hl;
  memcpy(start, hex, (size_t)hl);
  if (start != f->buf) memmove(f->buf, start, (size_t)hl + evlen + 2);
  f->len = (size_t)hl + evlen + 2;
  atomic_store_explicit(&pub_seq, seq + 1, memory_order_release);
  pthread_mutex_unlock(&pub_lock);
  uint64_t one = 1;
  for (int i = 0; i < nworkers; i++)
    if (write(workers[i].wake, &one, sizeof one) < 0 && errno != EAGAIN) die("eventfd write");
}

static void respond_close(worker_t *w, int fd, const char *msg) {
  if (write(fd, msg, strlen(msg)) < 0) {
  }
  drop(w, fd);
}

static void pub_complete(worker_t *w, int fd) {
  slot_t *s = &slots[fd];
  /* s->req holds "POST /pub/<topic> HTTP/1.1..." */
  const char *t = s->req + 10, *sp = memchr(t, ' ', s->rlen - 10);
  if (sp == NULL) {
    respond_close(w, fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  publish(t, (size_t)(sp - t), s->body, s->body_len);
  static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  if (write(fd, ok, sizeof ok - 1) < 0) {
    drop(w, fd);
    return;
  }
  free(s->body);
  s->body = NULL;
  s->kind = K_REQ;
  s->rlen = 0;
}

static void on_request_bytes(worker_t *w, int fd) {
  slot_t *s = &slots[fd];
  if (s->kind == K_PUB) {
    ssize_t n = read(fd, s->body + s->body_len, s->body_need - s->body_len);
    if (n <= 0) {
      if (n < 0 && errno == EAGAIN) return;
      drop(w, fd);
      return;
    }
    s->body_len += (size_t)n;
    if (s->body_len == s->body_need) pub_complete(w, fd);
    return;
  }
  ssize_t n = read(fd, s->req + s->rlen, REQ_MAX - 1 - s->rlen);
  if (n <= 0) {
    if (n < 0 && errno == EAGAIN) return;
    drop(w, fd);
    return;
  }
  s->rlen += (uint16_t)n;
  s->req[s->rlen] = '\0';
  char *end = strstr(s->req, "\r\n\r\n");
  if (end == NULL) {
    if (s->rlen >= REQ_MAX - 1) respond_close(w, fd, "HTTP/1.1 431 Too Large\r\nConnection: close\r\n\r\n");
    return;
  }
  size_t head = (size_t)(end + 4 - s->req);
  if (strncmp(s->req, "GET /events", 11) == 0 && !w->pub_only) {
    if (write(fd, stream_head, sizeof stream_head - 1) != (ssize_t)(sizeof stream_head - 1)) {
      drop(w, fd);
      return;
    }
    s->kind = K_STREAM;
    s->next = atomic_load_explicit(&pub_seq, memory_order_acquire);
    s->off = 0;
    s->want_out = 0;
    s->list_idx = (int32_t)w->n;
    w->list[w->n++] = fd;
    ep_set(w, fd, EPOLLRDHUP, EPOLL_CTL_MOD);
    return;
  }
  if (strncmp(s->req, "POST /pub/", 10) == 0) {
    const char *cl = strcasestr(s->req, "\r\ncontent-length:");
    size_t need = cl ? strtoul(cl + 17, NULL, 10) : 0;
    if (need == 0 || need > 64u * 1024 * 1024) {
      respond_close(w, fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
    s->body = malloc(need);
    if (s->body == NULL) die("malloc");
    s->body_need = need;
    s->body_len = s->rlen - head;
    if (s->body_len > need) s->body_len = need; /* no pipelining */
    memcpy(s->body, s->req + head, s->body_len);
    s->kind = K_PUB;
    s->req[head] = '\0';
    s->rlen = (uint16_t)head;
    if (s->body_len == need) pub_complete(w, fd);
    return;
  }
  respond_close(w, fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

static void on_accept(worker_t *w) {
  for (;;) {
    int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
      if (errno == EMFILE || errno == ENFILE) return;
      die("accept");
    }
    if ((size_t)fd >= nslots) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    slot_t *s = &slots[fd];
    s->kind = K_REQ;
    s->rlen = 0;
    ep_set(w, fd, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
  }
}

static void *worker_run(void *arg) {
  worker_t *w = arg;
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(w->ep, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      uint32_t tag = evs[i].data.u32;
      if (tag == LISTEN_TAG) {
        on_accept(w);
        continue;
      }
      if (tag == WAKE_TAG) {
        uint64_t cnt;
        if (read(w->wake, &cnt, sizeof cnt) < 0 && errno != EAGAIN) die("eventfd read");
        uint64_t target = atomic_load_explicit(&pub_seq, memory_order_acquire);
        for (size_t j = 0; j < w->n;) {
          int fd = w->list[j];
          if (slots[fd].want_out || flush(w, fd, target) == 0) j++; /* a dropped fd was replaced at j */
        }
        continue;
      }
      int fd = (int)tag;
      slot_t *s = &slots[fd];
      if (s->kind == K_NONE) continue;
      if (s->kind == K_STREAM) {
        if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
          drop(w, fd);
          continue;
        }
        if (evs[i].events & EPOLLOUT)
          (void)flush(w, fd, atomic_load_explicit(&pub_seq, memory_order_acquire));
        continue;
      }
      if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_request_bytes(w, fd);
    }
  }
  return NULL;
}

static void worker_init(worker_t *w, int idx, const struct sockaddr_in *addr, int pub_only) {
  w->idx = idx;
  w->pub_only = pub_only;
  w->ep = epoll_create1(EPOLL_CLOEXEC);
  if (w->ep < 0) die("epoll_create1");
  w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->wake < 0) die("eventfd");
  w->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (w->lfd < 0) die("socket");
  int one = 1;
  setsockopt(w->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (setsockopt(w->lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) die("SO_REUSEPORT");
  if (bind(w->lfd, (struct sockaddr *)addr, sizeof *addr) != 0) die("bind");
  if (listen(w->lfd, 4096) != 0) die("listen");
  w->list = calloc(nslots, sizeof *w->list);
  if (w->list == NULL) die("calloc");
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = LISTEN_TAG};
  if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ev) != 0) die("epoll_ctl");
  ev.data.u32 = WAKE_TAG;
  if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake, &ev) != 0) die("epoll_ctl");
}

static int parse_addr(const char *at, struct sockaddr_in *out) {
  char host[64];
  const char *colon = strrchr(at, ':');
  if (colon == NULL || (size_t)(colon - at) >= sizeof host) return -1;
  memcpy(host, at, (size_t)(colon - at));
  host[colon - at] = '\0';
  *out = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
  return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

static void usage(FILE *f) {
  fprintf(f, "usage: statecast-floor --listen 127.0.0.1:PORT [--pub-listen 127.0.0.1:PORT] [-t THREADS]\n"
             "  --listen ADDR:PORT      SSE streams (GET /events...) (default 127.0.0.1:8090)\n"
             "  --pub-listen ADDR:PORT  POST /pub/<topic> on a thread of its own, so a publish is never held\n"
             "                          up by a fan-out pass (default: only on --listen)\n"
             "  -t, --threads N         fan-out threads, one per core (default 2)\n"
             "POST /pub/<topic> with a body sends it to every stream.\n");
}

int main(int argc, char **argv) {
  const char *listen_at = "127.0.0.1:8090", *pub_at = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      usage(stderr);
      return 2;
    }
    if (!strcmp(argv[i], "--listen")) listen_at = argv[++i];
    else if (!strcmp(argv[i], "--pub-listen")) pub_at = argv[++i];
    else if (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads")) nworkers = atoi(argv[++i]);
    else {
      usage(stderr);
      return 2;
    }
  }
  if (nworkers < 1 || nworkers > MAX_THREADS) {
    fprintf(stderr, "statecast-floor: threads must be 1..%d\n", MAX_THREADS);
    return 2;
  }
  if (parse_addr(listen_at, &listen_addr) != 0 || (pub_at && parse_addr(pub_at, &pub_addr) != 0)) {
    fprintf(stderr, "statecast-floor: bad address\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) die("getrlimit");
  nslots = rl.rlim_cur == RLIM_INFINITY ? 1048576 : (size_t)rl.rlim_cur;
  slots = calloc(nslots, sizeof *slots);
  if (slots == NULL) die("calloc");
  for (int i = 0; i < nworkers; i++) worker_init(&workers[i], i, &listen_addr, 0);
  if (pub_at) {
    worker_init(&pub_worker, nworkers, &pub_addr, 1);
    if (pthread_create(&pub_worker.tid, NULL, worker_run, &pub_worker) != 0) die("pthread_create");
  }
  fprintf(stderr, "statecast-floor: streams on %s with %d threads, publish on %s\n", listen_at, nworkers,
          pub_at ? pub_at : listen_at);
  for (int i = 1; i < nworkers; i++)
    if (pthread_create(&workers[i].tid, NULL, worker_run, &workers[i]) != 0) die("pthread_create");
  worker_run(&workers[0]);
  return 0;
}
