#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

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
