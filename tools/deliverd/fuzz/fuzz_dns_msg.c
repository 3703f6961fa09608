// SPDX-License-Identifier: GPL-2.0
/*
 * DNS answers as they come off the network (dd_dns_msg.c): compression
 * pointers, CNAME chains, truncated records, SOA minimums; and the
 * dns_servers setting.
 *
 * Input: one byte choosing the question's type (MX, A, AAAA; the name is
 * always "example.com"), or with bit 7 the dns_servers parser, then the
 * message (or the setting).
 *
 * Checked: an answer holds at most DD_DNS_RRS_MAX records of the type
 * asked, its TTL within the bounds, MX hosts lowercase names without a
 * final dot; it goes into a cache and comes out again; servers parsed
 * are at most the maximum, each with a port.
 */
#include "fuzz.h"

#include <sys/socket.h>

#include "dd_dns.h"

static void servers(const uint8_t *data, size_t size)
{
	struct dd_dns_server sv[DD_DNS_SERVERS_MAX];
	char *s = fuzz_str(data, size), err[256];
	int n = dd_dns_servers_parse(s, sv, DD_DNS_SERVERS_MAX, err, sizeof(err));

	FUZZ_CHECK(n <= DD_DNS_SERVERS_MAX, "%d servers", n);
	for (int i = 0; i < n; i++)
		FUZZ_CHECK((sv[i].family == AF_INET || sv[i].family == AF_INET6) &&
			   sv[i].port, "server %d", i);
	if (n < 0)
		FUZZ_CHECK(err[0] && memchr(err, 0, sizeof(err)), "no message");
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t types[] = { DD_DNS_T_MX, DD_DNS_T_A, DD_DNS_T_AAAA };
	unsigned int sel = (unsigned int)fuzz_take(&data, &size, 1);
	uint16_t qtype = types[sel % 3];
	struct dd_dns_rrset *rs = NULL;
	struct dd_dns_cache *c;
	uint8_t *copy;
	int rcode = -1, err;

	if (sel & 0x80) {
		servers(data, size);
		return 0;
	}
	/* An exact-size copy: ASan sees any read past the message. */
	copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	err = dd_dns_parse(copy, size, "example.com", qtype, &rs, &rcode);
	free(copy);
	FUZZ_CHECK(err == 0 || err == -EBADMSG || err == -EAGAIN, "error %d", err);
	if (err)
		return 0;
	FUZZ_CHECK(rs && rs->n <= DD_DNS_RRS_MAX && rs->type == qtype &&
		   rs->status <= DD_DNS_NODATA && !strcmp(rs->name, "example.com"),
		   "answer set");
	FUZZ_CHECK(rs->ttl >= DD_DNS_TTL_MIN && rs->ttl <= DD_DNS_TTL_MAX,
		   "ttl %u", rs->ttl);
	FUZZ_CHECK(rs->status == DD_DNS_OK || rs->n == 0, "negative with records");
	for (unsigned int i = 0; i < rs->n; i++) {
		const char *h = rs->rr[i].host;

		if (qtype != DD_DNS_T_MX)
			continue;
		FUZZ_CHECK(h && strlen(h) <= DD_DNS_NAME_MAX, "MX host");
		for (const char *p = h; *p; p++)
			FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'), "host %s", h);
		FUZZ_CHECK(!*h || h[strlen(h) - 1] != '.', "final dot in %s", h);
	}
	c = dd_dns_cache_new(4);
	if (!c)
		abort();
	dd_dns_cache_put(c, rs, 1000);
	FUZZ_CHECK(dd_dns_cache_get(c, "EXAMPLE.com", qtype, 1000) == rs,
		   "not found in the cache");
	dd_dns_cache_free(c);
	return 0;
}
