// SPDX-License-Identifier: GPL-2.0
/*
 * dd_dns_test: what the resolver does without the event loop -- reading
 * DNS answers (TTLs, CNAME chains, negative answers, and malformed or
 * truncated messages, which must fail cleanly), the answer cache, the
 * dns_servers parser and MX ordering.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "kselftest_harness.h"

#include "../dd_dns.h"

/* A DNS message under construction. */
struct mb {
	uint8_t b[2048];
	size_t n;
};

static void put8(struct mb *m, unsigned int v)
{
	m->b[m->n++] = (uint8_t)v;
}

static void put16(struct mb *m, unsigned int v)
{
	put8(m, v >> 8);
	put8(m, v & 0xff);
}

static void put32(struct mb *m, uint32_t v)
{
	put16(m, v >> 16);
	put16(m, v & 0xffff);
}

/* A name in labels; "@N" alone is a pointer to offset N. */
static void putname(struct mb *m, const char *s)
{
	if (s[0] == '@') {
		put16(m, 0xc000 | atoi(s + 1));
		return;
	}
	while (*s) {
		size_t l = strcspn(s, ".");

		put8(m, l);
		memcpy(m->b + m->n, s, l);
		m->n += l;
		s += l;
		if (*s == '.')
			s++;
	}
	put8(m, 0);
}

static void header(struct mb *m, unsigned int rcode, unsigned int an,
		   unsigned int ns)
{
	m->n = 0;
	put16(m, 0x1234);
	put16(m, 0x8180 | rcode);
	put16(m, 1);
	put16(m, an);
	put16(m, ns);
	put16(m, 0);
}

static void question(struct mb *m, const char *name, unsigned int type)
{
	putname(m, name);
	put16(m, type);
	put16(m, 1);
}

/* A record's header; returns where its rdlength is, to patch. */
static size_t rr(struct mb *m, const char *owner, unsigned int type,
		 uint32_t ttl)
{
	size_t at;

	putname(m, owner);
	put16(m, type);
	put16(m, 1);
	put32(m, ttl);
	at = m->n;
	put16(m, 0);
	return at;
}

static void rdend(struct mb *m, size_t at)
{
	size_t l = m->n - at - 2;

	m->b[at] = l >> 8;
	m->b[at + 1] = l & 0xff;
}

static void mx(struct mb *m, const char *owner, uint32_t ttl,
	       unsigned int pref, const char *host)
{
	size_t at = rr(m, owner, DD_DNS_T_MX, ttl);

	put16(m, pref);
	putname(m, host);
	rdend(m, at);
}

static void a(struct mb *m, const char *owner, uint32_t ttl, const char *ip)
{
	size_t at = rr(m, owner, DD_DNS_T_A, ttl);

	inet_pton(AF_INET, ip, m->b + m->n);
	m->n += 4;
	rdend(m, at);
}

static void soa(struct mb *m, const char *owner, uint32_t ttl, uint32_t min)
{
	size_t at = rr(m, owner, DD_DNS_T_SOA, ttl);

	putname(m, "ns.example");
	putname(m, "admin.example");
	put32(m, 1);
	put32(m, 3600);
	put32(m, 600);
	put32(m, 86400);
	put32(m, min);
	rdend(m, at);
}

/* Offset 12: the question's name, where compression points. */
static void mx_message(struct mb *m)
{
	header(m, 0, 3, 0);
	question(m, "Example.COM", DD_DNS_T_MX);
	mx(m, "@12", 300, 20, "MX2.example.com");
	mx(m, "@12", 120, 10, "mx1.example.com");
	a(m, "mx1.example.com", 5, "192.0.2.1");	/* another owner, ignored */
}

static int parse(struct mb *m, const char *name, uint16_t type,
		 struct dd_dns_rrset **rs)
{
	int rcode;

	return dd_dns_parse(m->b, m->n, name, type, rs, &rcode);
}

TEST(mx_ttls_and_compression)
{
	struct dd_dns_rrset *rs;
	struct mb m;
	size_t at;

	header(&m, 0, 2, 0);
	question(&m, "Example.COM", DD_DNS_T_MX);
	mx(&m, "@12", 300, 20, "MX2.example.com");
	/* "mx1" then a pointer to the question's name */
	at = rr(&m, "@12", DD_DNS_T_MX, 120);
	put16(&m, 10);
	put8(&m, 3);
	memcpy(m.b + m.n, "mx1", 3);
	m.n += 3;
	put16(&m, 0xc00c);
	rdend(&m, at);
	ASSERT_EQ(0, parse(&m, "example.com", DD_DNS_T_MX, &rs));
	EXPECT_EQ(DD_DNS_OK, rs->status);
	EXPECT_EQ(2, rs->n);
	EXPECT_EQ(120, rs->ttl);
	EXPECT_STREQ("example.com", rs->name);
	EXPECT_STREQ("mx2.example.com", rs->rr[0].host);
	EXPECT_EQ(20, rs->rr[0].pref);
	EXPECT_STREQ("mx1.example.com", rs->rr[1].host);
	EXPECT_EQ(10, rs->rr[1].pref);
	dd_dns_rrset_free(rs);
	/* The question with a final dot is the same question. */
	ASSERT_EQ(0, parse(&m, "EXAMPLE.com.", DD_DNS_T_MX, &rs));
	dd_dns_rrset_free(rs);
}

TEST(other_owners_ignored)
{
	struct dd_dns_rrset *rs;
	struct mb m;

	mx_message(&m);
	ASSERT_EQ(0, parse(&m, "example.com", DD_DNS_T_MX, &rs));
	EXPECT_EQ(2, rs->n);
	dd_dns_rrset_free(rs);
}

TEST(addresses_and_cname_chain)
{
	struct dd_dns_rrset *rs;
	struct mb m;
	size_t at;

	header(&m, 0, 4, 0);
	question(&m, "www.example.com", DD_DNS_T_A);
	at = rr(&m, "@12", DD_DNS_T_CNAME, 50);
	putname(&m, "host.example.net");
	rdend(&m, at);
	a(&m, "host.example.net", 600, "192.0.2.7");
	a(&m, "HOST.example.net", 900, "192.0.2.8");
	a(&m, "elsewhere.example.net", 10, "192.0.2.9");
	ASSERT_EQ(0, parse(&m, "www.example.com", DD_DNS_T_A, &rs));
	EXPECT_EQ(DD_DNS_OK, rs->status);
	ASSERT_EQ(2, rs->n);
	EXPECT_EQ(0, memcmp(rs->rr[0].addr, "\xc0\x00\x02\x07", 4));
	EXPECT_EQ(0, memcmp(rs->rr[1].addr, "\xc0\x00\x02\x08", 4));
	/* The chain's CNAME TTL counts too. */
	EXPECT_EQ(50, rs->ttl);
	dd_dns_rrset_free(rs);
}

TEST(aaaa)
{
	struct dd_dns_rrset *rs;
	struct mb m;
	size_t at;

	header(&m, 0, 1, 0);
	question(&m, "v6.example", DD_DNS_T_AAAA);
	at = rr(&m, "@12", DD_DNS_T_AAAA, 77);
	inet_pton(AF_INET6, "2001:db8::25", m.b + m.n);
	m.n += 16;
	rdend(&m, at);
	ASSERT_EQ(0, parse(&m, "v6.example", DD_DNS_T_AAAA, &rs));
	ASSERT_EQ(1, rs->n);
	EXPECT_EQ(0x20, rs->rr[0].addr[0]);
	EXPECT_EQ(0x25, rs->rr[0].addr[15]);
	EXPECT_EQ(77, rs->ttl);
	dd_dns_rrset_free(rs);
}

TEST(negative_ttls)
{
	struct dd_dns_rrset *rs;
	struct mb m;

	/* NXDOMAIN: the SOA's TTL, capped by its minimum (RFC 2308 5). */
	header(&m, 3, 0, 1);
	question(&m, "nx.example", DD_DNS_T_MX);
	soa(&m, "example", 900, 300);
	ASSERT_EQ(0, parse(&m, "nx.example", DD_DNS_T_MX, &rs));
	EXPECT_EQ(DD_DNS_NXDOMAIN, rs->status);
	EXPECT_EQ(0, rs->n);
	EXPECT_EQ(300, rs->ttl);
	dd_dns_rrset_free(rs);

	header(&m, 0, 0, 1);
	question(&m, "nodata.example", DD_DNS_T_MX);
	soa(&m, "example", 45, 300);
	ASSERT_EQ(0, parse(&m, "nodata.example", DD_DNS_T_MX, &rs));
	EXPECT_EQ(DD_DNS_NODATA, rs->status);
	EXPECT_EQ(45, rs->ttl);
	dd_dns_rrset_free(rs);

	/* No SOA: the fixed time; a huge one is capped. */
	header(&m, 0, 0, 0);
	question(&m, "nodata.example", DD_DNS_T_MX);
	ASSERT_EQ(0, parse(&m, "nodata.example", DD_DNS_T_MX, &rs));
	EXPECT_EQ(DD_DNS_NEG_TTL, rs->ttl);
	dd_dns_rrset_free(rs);
	header(&m, 3, 0, 1);
	question(&m, "nx.example", DD_DNS_T_MX);
	soa(&m, "example", 999999, 999999);
	ASSERT_EQ(0, parse(&m, "nx.example", DD_DNS_T_MX, &rs));
	EXPECT_EQ(DD_DNS_NEG_TTL_MAX, rs->ttl);
	dd_dns_rrset_free(rs);
}

TEST(ttl_bounds)
{
	struct dd_dns_rrset *rs;
	struct mb m;

	header(&m, 0, 1, 0);
	question(&m, "t.example", DD_DNS_T_A);
	a(&m, "@12", 0, "192.0.2.1");
	ASSERT_EQ(0, parse(&m, "t.example", DD_DNS_T_A, &rs));
	EXPECT_EQ(DD_DNS_TTL_MIN, rs->ttl);
	dd_dns_rrset_free(rs);
	header(&m, 0, 1, 0);
	question(&m, "t.example", DD_DNS_T_A);
	a(&m, "@12", 7 * 86400, "192.0.2.1");
	ASSERT_EQ(0, parse(&m, "t.example", DD_DNS_T_A, &rs));
	EXPECT_EQ(DD_DNS_TTL_MAX, rs->ttl);
	dd_dns_rrset_free(rs);
	/* Top bit set: zero (RFC 2181 8), then the minimum. */
	header(&m, 0, 1, 0);
	question(&m, "t.example", DD_DNS_T_A);
	a(&m, "@12", 0x80000005u, "192.0.2.1");
	ASSERT_EQ(0, parse(&m, "t.example", DD_DNS_T_A, &rs));
	EXPECT_EQ(DD_DNS_TTL_MIN, rs->ttl);
	dd_dns_rrset_free(rs);
}

TEST(null_mx)
{
	struct dd_dns_rrset *rs;
	struct mb m;

	header(&m, 0, 1, 0);
	question(&m, "null.example", DD_DNS_T_MX);
	mx(&m, "@12", 300, 0, "");
	ASSERT_EQ(0, parse(&m, "null.example", DD_DNS_T_MX, &rs));
	ASSERT_EQ(1, rs->n);
	EXPECT_STREQ("", rs->rr[0].host);
	EXPECT_EQ(0, rs->rr[0].pref);
	dd_dns_rrset_free(rs);
}

TEST(servfail_is_temporary)
{
	struct dd_dns_rrset *rs = (void *)1;
	struct mb m;
	int rcode;

	header(&m, 2, 0, 0);
	question(&m, "x.example", DD_DNS_T_MX);
	EXPECT_EQ(-EAGAIN, dd_dns_parse(m.b, m.n, "x.example", DD_DNS_T_MX,
					&rs, &rcode));
	EXPECT_EQ(2, rcode);
	EXPECT_EQ(NULL, rs);
	header(&m, 5, 0, 0);
	question(&m, "x.example", DD_DNS_T_MX);
	EXPECT_EQ(-EAGAIN, dd_dns_parse(m.b, m.n, "x.example", DD_DNS_T_MX,
					&rs, &rcode));
	EXPECT_EQ(5, rcode);
}

TEST(every_truncation_fails)
{
	struct dd_dns_rrset *rs;
	struct mb m;
	size_t len, full;

	header(&m, 3, 2, 1);
	question(&m, "example.com", DD_DNS_T_MX);
	mx(&m, "@12", 300, 20, "mx2.example.com");
	mx(&m, "@12", 120, 10, "mx1.example.com");
	soa(&m, "example.com", 60, 60);
	full = m.n;
	ASSERT_EQ(0, parse(&m, "example.com", DD_DNS_T_MX, &rs));
	dd_dns_rrset_free(rs);
	for (len = 0; len < full; len++) {
		/* A copy of exactly len bytes, so ASan sees any overread. */
		uint8_t *p = malloc(len ? len : 1);
		int rcode;

		ASSERT_NE(NULL, p);
		memcpy(p, m.b, len);
		rs = NULL;
		EXPECT_EQ(-EBADMSG, dd_dns_parse(p, len, "example.com",
						 DD_DNS_T_MX, &rs, &rcode))
			TH_LOG("length %zu of %zu", len, full);
		EXPECT_EQ(NULL, rs);
		free(p);
	}
}

TEST(malformed)
{
	struct dd_dns_rrset *rs = NULL;
	struct mb m;
	size_t at;

	/* A pointer to itself. */
	header(&m, 0, 1, 0);
	question(&m, "l.example", DD_DNS_T_A);
	a(&m, "@23", 60, "192.0.2.1");
	m.b[23] = 0xc0;
	m.b[24] = 23;
	EXPECT_EQ(-EBADMSG, parse(&m, "l.example", DD_DNS_T_A, &rs));
	/* A pointer past the end. */
	header(&m, 0, 1, 0);
	question(&m, "l.example", DD_DNS_T_A);
	a(&m, "@2000", 60, "192.0.2.1");
	EXPECT_EQ(-EBADMSG, parse(&m, "l.example", DD_DNS_T_A, &rs));
	/* rdlength past the end. */
	header(&m, 0, 1, 0);
	question(&m, "l.example", DD_DNS_T_A);
	at = rr(&m, "@12", DD_DNS_T_A, 60);
	put32(&m, 0xc0000201);
	m.b[at + 1] = 40;
	EXPECT_EQ(-EBADMSG, parse(&m, "l.example", DD_DNS_T_A, &rs));
	/* An A record of 5 bytes. */
	header(&m, 0, 1, 0);
	question(&m, "l.example", DD_DNS_T_A);
	at = rr(&m, "@12", DD_DNS_T_A, 60);
	put32(&m, 0xc0000201);
	put8(&m, 0);
	rdend(&m, at);
	EXPECT_EQ(-EBADMSG, parse(&m, "l.example", DD_DNS_T_A, &rs));
	/* An MX whose exchange runs past its rdlength. */
	header(&m, 0, 1, 0);
	question(&m, "l.example", DD_DNS_T_MX);
	at = rr(&m, "@12", DD_DNS_T_MX, 60);
	put16(&m, 10);
	putname(&m, "mx.l.example");
	rdend(&m, at);
	m.b[at + 1] -= 3;
	EXPECT_EQ(-EBADMSG, parse(&m, "l.example", DD_DNS_T_MX, &rs));
	/* The answer to another question, or a query. */
	mx_message(&m);
	EXPECT_EQ(-EBADMSG, parse(&m, "other.example", DD_DNS_T_MX, &rs));
	EXPECT_EQ(-EBADMSG, parse(&m, "example.com", DD_DNS_T_A, &rs));
	m.b[2] &= 0x7f;
	EXPECT_EQ(-EBADMSG, parse(&m, "example.com", DD_DNS_T_MX, &rs));
	/* A name longer than 253 characters. */
	header(&m, 0, 0, 0);
	for (at = 0; at < 5; at++) {
		put8(&m, 63);
		memset(m.b + m.n, 'a', 63);
		m.n += 63;
	}
	put8(&m, 0);
	put16(&m, DD_DNS_T_A);
	put16(&m, 1);
	EXPECT_EQ(-EBADMSG, parse(&m, "a.example", DD_DNS_T_A, &rs));
	/* A label with a dot in it would read as two. */
	header(&m, 0, 0, 0);
	put8(&m, 3);
	memcpy(m.b + m.n, "a.b", 3);
	m.n += 3;
	put8(&m, 0);
	put16(&m, DD_DNS_T_A);
	put16(&m, 1);
	EXPECT_EQ(-EBADMSG, parse(&m, "a.b", DD_DNS_T_A, &rs));
	EXPECT_EQ(NULL, rs);
}

/* Random damage to a good answer: fails or parses, never reads outside. */
TEST(mutations)
{
	struct mb m, good;
	unsigned int seed = 1, i, ok = 0;

	mx_message(&good);
	for (i = 0; i < 20000; i++) {
		struct dd_dns_rrset *rs = NULL;
		unsigned int k, nflip = 1 + rand_r(&seed) % 4;
		uint8_t *p;
		int rcode, r;

		m = good;
		for (k = 0; k < nflip; k++)
			m.b[rand_r(&seed) % m.n] = (uint8_t)rand_r(&seed);
		m.n -= rand_r(&seed) % 3 == 0 ? rand_r(&seed) % m.n : 0;
		p = malloc(m.n ? m.n : 1);
		ASSERT_NE(NULL, p);
		memcpy(p, m.b, m.n);
		r = dd_dns_parse(p, m.n, "example.com", DD_DNS_T_MX, &rs,
				 &rcode);
		free(p);
		if (!r) {
			ASSERT_NE(NULL, rs);
			ASSERT_LE(rs->n, DD_DNS_RRS_MAX);
			ok++;
			dd_dns_rrset_free(rs);
		} else {
			ASSERT_TRUE(r == -EBADMSG || r == -EAGAIN);
		}
	}
	TH_LOG("%u of 20000 damaged answers still parsed", ok);
}

static struct dd_dns_rrset *answer(const char *name, uint16_t type,
				   uint32_t ttl)
{
	struct dd_dns_rrset *rs = dd_dns_negative(name, type, DD_DNS_NODATA);

	if (rs)
		rs->ttl = ttl;
	return rs;
}

#define S 1000000000ULL

TEST(cache)
{
	struct dd_dns_cache *c = dd_dns_cache_new(2);
	const struct dd_dns_rrset *got;

	ASSERT_NE(NULL, c);
	dd_dns_cache_put(c, answer("a.example", DD_DNS_T_MX, 10), 100 * S);
	dd_dns_cache_put(c, answer("a.example", DD_DNS_T_A, 5), 100 * S);
	EXPECT_EQ(2, dd_dns_cache_count(c));
	got = dd_dns_cache_get(c, "A.Example", DD_DNS_T_MX, 109 * S);
	ASSERT_NE(NULL, got);
	EXPECT_EQ(110 * S, got->expires);
	/* Expired: gone. */
	EXPECT_EQ(NULL, dd_dns_cache_get(c, "a.example", DD_DNS_T_A, 105 * S));
	EXPECT_EQ(1, dd_dns_cache_count(c));
	/* A newer answer replaces the older. */
	dd_dns_cache_put(c, answer("a.example", DD_DNS_T_MX, 60), 101 * S);
	EXPECT_EQ(1, dd_dns_cache_count(c));
	got = dd_dns_cache_get(c, "a.example", DD_DNS_T_MX, 150 * S);
	ASSERT_NE(NULL, got);
	EXPECT_EQ(60, got->ttl);
	/* Beyond the bound the least recently used goes. */
	dd_dns_cache_put(c, answer("b.example", DD_DNS_T_MX, 60), 102 * S);
	EXPECT_NE(NULL, dd_dns_cache_get(c, "a.example", DD_DNS_T_MX, 103 * S));
	dd_dns_cache_put(c, answer("c.example", DD_DNS_T_MX, 60), 103 * S);
	EXPECT_EQ(2, dd_dns_cache_count(c));
	EXPECT_EQ(NULL, dd_dns_cache_get(c, "b.example", DD_DNS_T_MX, 104 * S));
	EXPECT_NE(NULL, dd_dns_cache_get(c, "a.example", DD_DNS_T_MX, 104 * S));
	EXPECT_NE(NULL, dd_dns_cache_get(c, "c.example", DD_DNS_T_MX, 104 * S));
	dd_dns_cache_free(c);
}

TEST(cache_many)
{
	struct dd_dns_cache *c = dd_dns_cache_new(1000);
	char name[32];
	unsigned int i, found = 0;

	ASSERT_NE(NULL, c);
	for (i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "d%u.example", i);
		dd_dns_cache_put(c, answer(name, DD_DNS_T_MX, 60), S);
	}
	EXPECT_EQ(1000, dd_dns_cache_count(c));
	for (i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "d%u.example", i);
		if (dd_dns_cache_get(c, name, DD_DNS_T_MX, 2 * S)) {
			found++;
			EXPECT_GE(i, 4000);
		}
	}
	EXPECT_EQ(1000, found);
	dd_dns_cache_free(c);
}

TEST(servers)
{
	struct dd_dns_server sv[DD_DNS_SERVERS_MAX];
	char err[200];

	EXPECT_EQ(0, dd_dns_servers_parse("", sv, 8, err, sizeof(err)));
	EXPECT_EQ(0, dd_dns_servers_parse(NULL, sv, 8, err, sizeof(err)));
	ASSERT_EQ(4, dd_dns_servers_parse("127.0.0.1:5353, 192.0.2.1,"
					  "[::1]:53000,2001:db8::53",
					  sv, 8, err, sizeof(err)));
	EXPECT_EQ(AF_INET, sv[0].family);
	EXPECT_EQ(5353, sv[0].port);
	EXPECT_EQ(127, sv[0].addr[0]);
	EXPECT_EQ(53, sv[1].port);
	EXPECT_EQ(AF_INET6, sv[2].family);
	EXPECT_EQ(53000, sv[2].port);
	EXPECT_EQ(1, sv[2].addr[15]);
	EXPECT_EQ(AF_INET6, sv[3].family);
	EXPECT_EQ(53, sv[3].port);
	EXPECT_EQ(-EINVAL, dd_dns_servers_parse("127.0.0.1:0", sv, 8, err,
						sizeof(err)));
	EXPECT_EQ(-EINVAL, dd_dns_servers_parse("127.0.0.1:65536", sv, 8, err,
						sizeof(err)));
	EXPECT_EQ(-EINVAL, dd_dns_servers_parse("ns.example", sv, 8, err,
						sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "ns.example"));
	EXPECT_EQ(-EINVAL, dd_dns_servers_parse("[::1", sv, 8, err,
						sizeof(err)));
	EXPECT_EQ(-EINVAL, dd_dns_servers_parse("[::1]x", sv, 8, err,
						sizeof(err)));
	EXPECT_EQ(-EINVAL, dd_dns_servers_parse("1.2.3.4:53x", sv, 8, err,
						sizeof(err)));
	EXPECT_EQ(-EINVAL, dd_dns_servers_parse("1.1.1.1,2.2.2.2,3.3.3.3", sv,
						2, err, sizeof(err)));
}

TEST(mx_order)
{
	unsigned int run, i, first_b = 0;
	uint64_t seed = 42;

	for (run = 0; run < 200; run++) {
		struct dd_dns_rr rr[5] = {
			{ .pref = 30, .host = "e" }, { .pref = 10, .host = "a" },
			{ .pref = 20, .host = "c" }, { .pref = 10, .host = "b" },
			{ .pref = 20, .host = "d" },
		};
		unsigned int seen = 0;

		dd_dns_mx_sort(rr, 5, &seed);
		for (i = 1; i < 5; i++)
			ASSERT_LE(rr[i - 1].pref, rr[i].pref);
		for (i = 0; i < 5; i++)
			seen |= 1u << (rr[i].host[0] - 'a');
		ASSERT_EQ(0x1f, seen);
		EXPECT_STREQ("e", rr[4].host);
		first_b += rr[0].host[0] == 'b';
	}
	/* Equal preferences share the load: each first often enough. */
	EXPECT_GT(first_b, 50);
	EXPECT_LT(first_b, 150);
}

TEST_HARNESS_MAIN
