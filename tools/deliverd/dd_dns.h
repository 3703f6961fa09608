/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DNS for destinations without a static route: MX and address lookups
 * with c-ares inside each event-loop thread, and a per-thread cache that
 * honours the answers' TTLs (negative answers included).
 *
 * dd_dns_msg.c is what does not need the event loop (the answer parser,
 * the cache, the dns_servers parser, MX ordering), so the unit tests link
 * it; dd_dns.c is the resolver each worker runs; dd_mx.c turns a domain
 * into the list of addresses its sessions try.
 */
#ifndef DD_DNS_H
#define DD_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DD_DNS_T_A	1
#define DD_DNS_T_CNAME	5
#define DD_DNS_T_SOA	6
#define DD_DNS_T_MX	15
#define DD_DNS_T_AAAA	28

#define DD_DNS_NAME_MAX	253	/* text form, without the final dot */
#define DD_DNS_RRS_MAX	64	/* records kept from one answer */

/*
 * TTLs are kept within these bounds: at least a second, so a destination
 * can use the answer it just waited for even if its TTL is 0; at most a
 * day (RFC 8767's cap), negative answers at most an hour (RFC 2308
 * allows three; an hour keeps a fixed typo from bouncing long).
 */
#define DD_DNS_TTL_MIN		1
#define DD_DNS_TTL_MAX		86400
#define DD_DNS_NEG_TTL		60	/* a negative answer without an SOA */
#define DD_DNS_NEG_TTL_MAX	3600
#define DD_DNS_CACHE_MAX	10000	/* answers per thread */

enum dd_dns_status { DD_DNS_OK = 0, DD_DNS_NXDOMAIN, DD_DNS_NODATA };

struct dd_dns_rr {
	uint32_t ttl;
	uint16_t pref;			/* MX */
	uint8_t addr[16];		/* A (first 4 bytes) or AAAA */
	char *host;			/* MX exchange, lowercase, no final dot;
					 * "" for the root (null MX) */
};

/* The answer to one question, as the cache keeps it. */
struct dd_dns_rrset {
	struct dd_dns_rrset *hnext;	/* the cache's hash chain */
	struct dd_dns_rrset *lprev, *lnext;	/* the cache's LRU list */
	char *name;			/* the question, lowercase */
	uint16_t type;
	uint8_t status;			/* enum dd_dns_status */
	uint32_t ttl;			/* seconds it may be used */
	uint64_t expires;		/* CLOCK_MONOTONIC ns, set when cached */
	unsigned int n;
	struct dd_dns_rr rr[];
};

/*
 * Parse the answer to the question (name, qtype): its records of qtype
 * (following CNAMEs from name), the smallest of their TTLs, or for a
 * negative answer the SOA's negative TTL (RFC 2308 5).  Every read is
 * bounds-checked.  0 and *out (free with dd_dns_rrset_free), -EBADMSG for
 * a malformed answer or one to another question, -EAGAIN for an rcode
 * that is neither NOERROR nor NXDOMAIN (*rcode says which), -ENOMEM.
 */
int dd_dns_parse(const uint8_t *buf, size_t len, const char *name,
		 uint16_t qtype, struct dd_dns_rrset **out, int *rcode);
/* A negative answer without a message (the resolver gave none). */
struct dd_dns_rrset *dd_dns_negative(const char *name, uint16_t type,
				     enum dd_dns_status status);
void dd_dns_rrset_free(struct dd_dns_rrset *rs);

/* The per-thread cache: answers by (name, type), at most max of them. */
struct dd_dns_cache;
struct dd_dns_cache *dd_dns_cache_new(unsigned int max);
void dd_dns_cache_free(struct dd_dns_cache *c);
/*
 * The answer for (name, type) if it has not expired at now (monotonic ns),
 * or NULL; an expired one is dropped.  The pointer is valid until the next
 * dd_dns_cache_put().
 */
const struct dd_dns_rrset *dd_dns_cache_get(struct dd_dns_cache *c,
					    const char *name, uint16_t type,
					    uint64_t now);
/* Keep rs (the cache owns it) until now + its TTL; drops an older answer
 * to the same question and, beyond max, the least recently used. */
void dd_dns_cache_put(struct dd_dns_cache *c, struct dd_dns_rrset *rs,
		      uint64_t now);
unsigned int dd_dns_cache_count(const struct dd_dns_cache *c);

/* dns_servers: "addr[:port]" or "[v6addr][:port]", comma-separated. */
struct dd_dns_server {
	int family;			/* AF_INET, AF_INET6 */
	uint8_t addr[16];
	uint16_t port;			/* 53 when not given */
};
#define DD_DNS_SERVERS_MAX	8
/* The count (0 for an empty list), or -EINVAL with a message in err. */
int dd_dns_servers_parse(const char *s, struct dd_dns_server *out,
			 unsigned int max, char *err, size_t errlen);

/*
 * MX records in the order to try them: by preference, those of equal
 * preference shuffled (RFC 5321 5.1) with the generator state *seed.
 */
void dd_dns_mx_sort(struct dd_dns_rr *rr, unsigned int n, uint64_t *seed);

/* dd_dns.c: the worker's resolver (event-loop thread only) */
struct dd_worker;
struct dd_io;
/*
 * The answer, or rs NULL and why for a temporary failure (no server
 * answered, SERVFAIL, REFUSED, a malformed answer).  rs is valid during
 * the call only.
 */
typedef void (*dd_dns_cb)(void *arg, const struct dd_dns_rrset *rs,
			  const char *why);
/* Look (name, type) up, from the cache if it can; cb may run before this
 * returns. */
void dd_dns_lookup(struct dd_worker *w, const char *name, uint16_t type,
		   dd_dns_cb cb, void *arg);
void dd_dns_event(struct dd_worker *w, struct dd_io *io, uint32_t events);

#endif /* DD_DNS_H */
