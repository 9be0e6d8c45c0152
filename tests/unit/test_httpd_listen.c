#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "httpd.h"

static int parse(const char *s, struct sockaddr_storage *ss) {
  socklen_t len = 0;
  char err[256] = "";
  int rc = sc_httpd_parse_listen(s, ss, &len, err, sizeof err);
  if (rc == 0) {
    cr_assert(len == sizeof(struct sockaddr_in) || len == sizeof(struct sockaddr_in6));
  } else {
    cr_assert_neq(err[0], '\0', "an error must say why (%s)", s);
  }
  return rc;
}

static int port_of(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
  return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

Test(httpd_listen, parses_ipv4_host_and_port) {
  struct sockaddr_storage ss;
  cr_assert_eq(parse("127.0.0.1:8081", &ss), 0);
  cr_assert_eq(ss.ss_family, AF_INET);
  cr_assert_eq(port_of(&ss), 8081);
  cr_assert_eq(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
}

Test(httpd_listen, empty_host_means_all_interfaces) {
  struct sockaddr_storage ss;
  cr_assert_eq(parse(":9000", &ss), 0);
  cr_assert_eq(ss.ss_family, AF_INET);
  cr_assert_eq(port_of(&ss), 9000);
  cr_assert_eq(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_ANY));
  cr_assert_eq(parse("0.0.0.0:8081", &ss), 0);
  cr_assert_eq(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_ANY));
}

Test(httpd_listen, parses_bracketed_ipv6) {
  struct sockaddr_storage ss;
  cr_assert_eq(parse("[::1]:443", &ss), 0);
  cr_assert_eq(ss.ss_family, AF_INET6);
  cr_assert_eq(port_of(&ss), 443);
  cr_assert(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr));
  cr_assert_eq(parse("[::]:1", &ss), 0);
}

Test(httpd_listen, accepts_port_zero_and_localhost) {
  struct sockaddr_storage ss;
  cr_assert_eq(parse("127.0.0.1:0", &ss), 0);
  cr_assert_eq(port_of(&ss), 0);
  cr_assert_eq(parse("localhost:65535", &ss), 0);
  cr_assert_eq(port_of(&ss), 65535);
}

Test(httpd_listen, rejects_malformed_addresses) {
  static const char *const bad[] = {
      "",            /* empty */
      "8081",        /* no colon */
      "127.0.0.1",   /* no port */
      "127.0.0.1:",  /* empty port */
      "127.0.0.1:65536", /* out of range */
      "127.0.0.1:123456",
      "127.0.0.1:80x",
      "127.0.0.1:-1",
      "127.0.0.1: 80",
      "300.1.1.1:80", /* not an IPv4 address */
      "example.com:80", /* names other than localhost are not resolved */
      "::1:80",      /* IPv6 without brackets */
      "[::1]80",
      "[::1]",
      "[]:80",
      "[zz::1]:80",
      "[::1:80",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct sockaddr_storage ss;
    cr_expect_eq(parse(bad[i], &ss), SC_ECONFIG, "\"%s\" should be refused", bad[i]);
  }
}

Test(httpd_listen, null_is_refused) {
  struct sockaddr_storage ss;
  socklen_t len;
  char err[64];
  cr_assert_eq(sc_httpd_parse_listen(NULL, &ss, &len, err, sizeof err), SC_ECONFIG);
}

/* ---- lifecycle on a real loop (loopback only) ---------------------------- */
static int on_hello(sc_httpd_handler_t *self, h2o_req_t *req) {
  sc_httpd_respond(req, 200, "OK", NULL, self->data, strlen(self->data));
  return 0;
}

Test(httpd_listen, close_without_connections_leaves_a_closable_loop) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  sc_httpd_route_t routes[] = {{"/", on_hello}};
  sc_httpd_t *h = NULL;
  char err[256];
  cr_assert_eq(sc_httpd_new(&h, &loop, "127.0.0.1:0", routes, 1, "hi", err, sizeof err), 0, "%s", err);
  cr_assert_gt(sc_httpd_port(h), 0);
  cr_assert_not_null(sc_httpd_context(h));
  sc_httpd_close(h);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(httpd_listen, close_after_stop_accepting_with_no_connections_finishes) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  sc_httpd_route_t routes[] = {{"/", on_hello}};
  sc_httpd_t *h = NULL;
  char err[256];
  cr_assert_eq(sc_httpd_new(&h, &loop, "127.0.0.1:0", routes, 1, "hi", err, sizeof err), 0, "%s", err);
  sc_httpd_stop_accepting(h);
  uv_run(&loop, UV_RUN_NOWAIT); /* the listener's close callback runs; h2o's own handles stay */
  sc_httpd_close(h); /* nothing left to wait for: it must finish by itself */
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(httpd_listen, a_port_taken_by_another_socket_is_reported) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  cr_assert_eq(listen(fd, 1), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  char listen_at[64];
  snprintf(listen_at, sizeof listen_at, "127.0.0.1:%d", ntohs(sa.sin_port));

  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  sc_httpd_route_t routes[] = {{"/", on_hello}};
  sc_httpd_t *h = NULL;
  char err[256] = "";
  cr_assert_eq(sc_httpd_new(&h, &loop, listen_at, routes, 1, "hi", err, sizeof err), SC_EIO);
  cr_assert_null(h);
  cr_assert_not_null(strstr(err, "address in use"), "%s", err);
  cr_assert_eq(sc_httpd_new(&h, &loop, "nowhere", routes, 1, "hi", err, sizeof err), SC_ECONFIG);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert_eq(uv_loop_close(&loop), 0);
  close(fd);
}

/* A keep-alive client on the same loop: it gets its answer, then
 * sc_httpd_close cuts the idle connection and the loop can close. */
typedef struct client {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  sc_httpd_t *httpd;
  char buf[4096];
  size_t len;
  int answered, eof, closed;
} client_t;

static void on_client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  client_t *c = h->data;
  *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - 1 - c->len));
}

static void on_client_closed(uv_handle_t *h) {
  client_t *c = h->data;
  c->closed = 1;
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)b;
  client_t *c = s->data;
  if (n > 0) {
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (!c->answered && strstr(c->buf, "\r\n\r\nhello") != NULL) {
      c->answered = 1;
      /* The connection stays open (keep-alive): closing the server must cut it. */
      sc_httpd_close(c->httpd);
    }
  } else if (n < 0) {
    c->eof = 1;
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
  }
}

static void on_client_written(uv_write_t *w, int status) {
  cr_assert_eq(status, 0);
  client_t *c = w->data;
  uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read);
}

static void on_client_connected(uv_connect_t *req, int status) {
  cr_assert_eq(status, 0);
  client_t *c = req->data;
  static const char get[] = "GET /x HTTP/1.1\r\nHost: t\r\n\r\n";
  uv_buf_t b = uv_buf_init((char *)get, sizeof get - 1);
  c->write.data = c;
  uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_client_written);
}

Test(httpd_listen, close_cuts_an_idle_keepalive_connection) {
  uv_loop_t loop;
  cr_assert_eq(uv_loop_init(&loop), 0);
  sc_httpd_route_t routes[] = {{"/", on_hello}};
  client_t c;
  memset(&c, 0, sizeof c);
  char err[256];
  cr_assert_eq(sc_httpd_new(&c.httpd, &loop, "127.0.0.1:0", routes, 1, "hello", err, sizeof err), 0, "%s", err);
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", sc_httpd_port(c.httpd), &sa);
  uv_tcp_init(&loop, &c.tcp);
  c.tcp.data = &c;
  c.connect.data = &c;
  cr_assert_eq(uv_tcp_connect(&c.connect, &c.tcp, (struct sockaddr *)&sa, on_client_connected), 0);
  cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  cr_assert(c.answered, "no answer: %s", c.buf);
  cr_assert_not_null(strstr(c.buf, "Content-Length: 5"), "%s", c.buf);
  cr_assert_null(strstr(c.buf, "chunked"), "%s", c.buf);
  cr_assert(c.eof && c.closed);
  cr_assert_eq(uv_loop_close(&loop), 0);
}
