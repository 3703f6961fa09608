// SPDX-License-Identifier: GPL-2.0
/*
 * The parts of DNS that do not need the event loop: reading answers,
 * caching them, parsing dns_servers and ordering MX records.
 *
 * c-ares 1.18 parses MX and address answers but drops their TTLs, and the
 * cache needs them, so answers are read here from the raw message.  The
 * message comes from the network: every length and offset is checked
 * against the buffer before it is used, compression pointers are followed
 * a bounded number of times, and nothing is trusted to be terminated.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "dd.h"
#include "dd_dns.h"
#include "dd_log.h"

#define HDR_LEN		12
#define CLASS_IN	1
#define RCODE_NOERROR	0
#define RCODE_NXDOMAIN	3
#define MAX_HOPS	32	/* compression pointers followed in one name */
#define MAX_CNAMES	8

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/*
 * The name at *off as lowercase dotted text without the final dot ("" for
 * the root) into out (DD_DNS_NAME_MAX + 1 bytes); *off moves past the
 * name where it starts (not where its pointers lead).
 */
static int read_name(const uint8_t *p, size_t len, size_t *off, char *out)
{
	size_t pos = *off, end = 0, n = 0;
	unsigned int hops = 0;
	bool jumped = false;

	for (;;) {
		unsigned int l, i;

		if (pos >= len)
			return -EBADMSG;
		l = p[pos];
		if ((l & 0xc0) == 0xc0) {
			if (pos + 1 >= len || ++hops > MAX_HOPS)
				return -EBADMSG;
			if (!jumped) {
				end = pos + 2;
				jumped = true;
			}
			pos = (size_t)(l & 0x3f) << 8 | p[pos + 1];
			continue;
		}
		if (l & 0xc0)		/* 0x40, 0x80: label types never used */
			return -EBADMSG;
		pos++;
		if (!l)
			break;
		if (l > len - pos || n + !!n + l > DD_DNS_NAME_MAX)
			return -EBADMSG;
		if (n)
			out[n++] = '.';
		for (i = 0; i < l; i++) {
			char c = (char)p[pos + i];

			/* Would change the name's meaning as text. */
			if (c == '.' || c == '\0' || c == '\\')
				return -EBADMSG;
			if (c >= 'A' && c <= 'Z')
				c += 'a' - 'A';
			out[n++] = c;
		}
		pos += l;
	}
	out[n] = '\0';
	*off = jumped ? end : pos;
	return 0;
}

/* One resource record's header; rdata is at rd, rdlen bytes, in bounds. */
struct rr_hdr {
	char owner[DD_DNS_NAME_MAX + 1];
	uint16_t type, class;
	uint32_t ttl;
	size_t rd, rdlen;
};

static int read_rr(const uint8_t *p, size_t len, size_t *off,
		   struct rr_hdr *h)
{
	size_t pos = *off;

	if (read_name(p, len, &pos, h->owner))
		return -EBADMSG;
	if (len - pos < 10)
		return -EBADMSG;
	h->type = get16(p + pos);
	h->class = get16(p + pos + 2);
	h->ttl = get32(p + pos + 4);
	/* RFC 2181 8: a TTL with the top bit set means zero. */
	if (h->ttl & 0x80000000u)
		h->ttl = 0;
	h->rdlen = get16(p + pos + 8);
	h->rd = pos + 10;
	if (h->rdlen > len - h->rd)
		return -EBADMSG;
	*off = h->rd + h->rdlen;
	return 0;
}

/* The name as it would be read: lowercase, no final dot. */
static bool same_name(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la && a[la - 1] == '.')
		la--;
	if (lb && b[lb - 1] == '.')
		lb--;
	return la == lb && !strncasecmp(a, b, la);
}

static uint32_t clamp(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static struct dd_dns_rrset *rrset_new(const char *name, uint16_t type,
				      unsigned int n)
{
	struct dd_dns_rrset *rs = calloc(1, sizeof(*rs) + n * sizeof(rs->rr[0]));
	size_t i, l;

	if (!rs)
		return NULL;
	l = strlen(name);
	if (l && name[l - 1] == '.')
		l--;
	rs->name = strndup(name, l);
	if (!rs->name) {
		free(rs);
		return NULL;
	}
	for (i = 0; i < l; i++)
		if (rs->name[i] >= 'A' && rs->name[i] <= 'Z')
			rs->name[i] += 'a' - 'A';
	rs->type = type;
	return rs;
}

void dd_dns_rrset_free(struct dd_dns_rrset *rs)
{
	unsigned int i;

	if (!rs)
		return;
	for (i = 0; i < rs->n; i++)
		free(rs->rr[i].host);
	free(rs->name);
	free(rs);
}

struct dd_dns_rrset *dd_dns_negative(const char *name, uint16_t type,
				     enum dd_dns_status status)
{
	struct dd_dns_rrset *rs = rrset_new(name, type, 0);

	if (rs) {
		rs->status = status;
		rs->ttl = DD_DNS_NEG_TTL;
	}
	return rs;
}

/* The rdata of one record of qtype into rr; MX names must end in it. */
static int read_rdata(const uint8_t *p, const struct rr_hdr *h,
		      struct dd_dns_rr *rr)
{
	char host[DD_DNS_NAME_MAX + 1];
	size_t pos;

	rr->ttl = h->ttl;
	switch (h->type) {
	case DD_DNS_T_A:
		if (h->rdlen != 4)
			return -EBADMSG;
		memcpy(rr->addr, p + h->rd, 4);
		return 0;
	case DD_DNS_T_AAAA:
		if (h->rdlen != 16)
			return -EBADMSG;
		memcpy(rr->addr, p + h->rd, 16);
		return 0;
	case DD_DNS_T_MX:
		if (h->rdlen < 3)
			return -EBADMSG;
		rr->pref = get16(p + h->rd);
		pos = h->rd + 2;
		/* Bounded by the record, not the message. */
		if (read_name(p, h->rd + h->rdlen, &pos, host) ||
		    pos != h->rd + h->rdlen)
			return -EBADMSG;
		rr->host = strdup(host);
		return rr->host ? 0 : -ENOMEM;
	}
	return -EBADMSG;
}

int dd_dns_parse(const uint8_t *p, size_t len, const char *name,
		 uint16_t qtype, struct dd_dns_rrset **out, int *rcode)
{
	char qname[DD_DNS_NAME_MAX + 1], cur[DD_DNS_NAME_MAX + 1];
	struct dd_dns_rr rr[DD_DNS_RRS_MAX];
	unsigned int qd, an, ns, i, k, n = 0, hops;
	uint32_t ttl = UINT32_MAX, negttl = DD_DNS_NEG_TTL;
	struct dd_dns_rrset *rs;
	size_t off = HDR_LEN, ans, pos;
	struct rr_hdr h;
	uint16_t flags;
	int err = -EBADMSG;

	*out = NULL;
	*rcode = -1;
	if (!p || len < HDR_LEN)
		return -EBADMSG;
	flags = get16(p + 2);
	qd = get16(p + 4);
	an = get16(p + 6);
	ns = get16(p + 8);
	if (!(flags & 0x8000) || qd != 1)	/* not a response to one question */
		return -EBADMSG;
	*rcode = flags & 0xf;
	if (read_name(p, len, &off, qname) || len - off < 4 ||
	    get16(p + off) != qtype || get16(p + off + 2) != CLASS_IN ||
	    !same_name(qname, name))
		return -EBADMSG;
	off += 4;
	if (*rcode != RCODE_NOERROR && *rcode != RCODE_NXDOMAIN)
		return -EAGAIN;
	ans = off;

	/* Where the CNAME chain from the question ends (RFC 1034 3.6.2). */
	strcpy(cur, qname);
	for (hops = 0; hops < MAX_CNAMES; hops++) {
		bool moved = false;

		for (pos = ans, i = 0; i < an; i++) {
			if (read_rr(p, len, &pos, &h))
				return -EBADMSG;
			if (h.type == DD_DNS_T_CNAME && h.class == CLASS_IN &&
			    !strcmp(h.owner, cur)) {
				size_t t = h.rd;

				if (read_name(p, h.rd + h.rdlen, &t, cur) ||
				    t != h.rd + h.rdlen)
					return -EBADMSG;
				if (h.ttl < ttl)
					ttl = h.ttl;
				moved = true;
				break;
			}
		}
		if (!moved)
			break;
	}

	/* The records of the type asked for, at the end of the chain. */
	memset(rr, 0, sizeof(rr));
	for (pos = ans, i = 0; i < an; i++) {
		if (read_rr(p, len, &pos, &h))
			goto out;
		if (h.type != qtype || h.class != CLASS_IN ||
		    strcmp(h.owner, cur) || n == DD_DNS_RRS_MAX)
			continue;
		err = read_rdata(p, &h, &rr[n]);
		if (err)
			goto out;
		if (rr[n].ttl < ttl)
			ttl = rr[n].ttl;
		n++;
	}
	err = -EBADMSG;

	/* A negative answer's TTL: the SOA's, capped by its minimum. */
	for (i = 0; i < ns; i++) {
		if (read_rr(p, len, &pos, &h))
			goto out;
		if (h.type == DD_DNS_T_SOA && h.class == CLASS_IN && !n) {
			char skip[DD_DNS_NAME_MAX + 1];
			size_t t = h.rd, end = h.rd + h.rdlen;
			uint32_t min;

			if (read_name(p, end, &t, skip) ||
			    read_name(p, end, &t, skip) || end - t != 20)
				goto out;
			min = get32(p + t + 16);
			negttl = min < h.ttl ? min : h.ttl;
		}
	}

	rs = rrset_new(qname, qtype, n);
	if (!rs) {
		err = -ENOMEM;
		goto out;
	}
	if (*rcode == RCODE_NXDOMAIN) {
		rs->status = DD_DNS_NXDOMAIN;
		/* An NXDOMAIN's records (a CNAME's target vanished) do not count. */
		for (k = 0; k < n; k++)
			free(rr[k].host);
		n = 0;
	} else {
		rs->status = n ? DD_DNS_OK : DD_DNS_NODATA;
	}
	if (n)
		rs->ttl = clamp(ttl, DD_DNS_TTL_MIN, DD_DNS_TTL_MAX);
	else
		rs->ttl = clamp(negttl, DD_DNS_TTL_MIN, DD_DNS_NEG_TTL_MAX);
	memcpy(rs->rr, rr, n * sizeof(rr[0]));
	rs->n = n;
	*out = rs;
	return 0;
out:
	for (k = 0; k < n; k++)
		free(rr[k].host);
	return err;
}

/* The cache: a hash table of answers and a list, least recently used first. */
struct dd_dns_cache {
	struct dd_dns_rrset **b;
	unsigned int nb, n, max;
	struct dd_dns_rrset *lru, *mru;
};

static unsigned int cache_slot(const struct dd_dns_cache *c, const char *name,
			       uint16_t type)
{
	/* seeded apart from dd_worker_of's hash, which chose this worker */
	return dd_hash_name(name, DD_HASH_SEED ^ type) & (c->nb - 1);
}

struct dd_dns_cache *dd_dns_cache_new(unsigned int max)
{
	struct dd_dns_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->max = max ? max : 1;
	for (c->nb = 16; c->nb < c->max && c->nb < 65536; c->nb *= 2)
		;
	c->b = calloc(c->nb, sizeof(*c->b));
	if (!c->b) {
		free(c);
		return NULL;
	}
	return c;
}

static void lru_unlink(struct dd_dns_cache *c, struct dd_dns_rrset *rs)
{
	if (rs->lprev)
		rs->lprev->lnext = rs->lnext;
	else
		c->lru = rs->lnext;
	if (rs->lnext)
		rs->lnext->lprev = rs->lprev;
	else
		c->mru = rs->lprev;
	rs->lprev = rs->lnext = NULL;
}

static void lru_append(struct dd_dns_cache *c, struct dd_dns_rrset *rs)
{
	rs->lnext = NULL;
	rs->lprev = c->mru;
	if (c->mru)
		c->mru->lnext = rs;
	else
		c->lru = rs;
	c->mru = rs;
}

static void cache_drop(struct dd_dns_cache *c, struct dd_dns_rrset *rs)
{
	struct dd_dns_rrset **pp = &c->b[cache_slot(c, rs->name, rs->type)];

	while (*pp && *pp != rs)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = rs->hnext;
	lru_unlink(c, rs);
	c->n--;
	dd_dns_rrset_free(rs);
}

void dd_dns_cache_free(struct dd_dns_cache *c)
{
	if (!c)
		return;
	while (c->lru)
		cache_drop(c, c->lru);
	free(c->b);
	free(c);
}

static struct dd_dns_rrset *cache_find(struct dd_dns_cache *c,
				       const char *name, uint16_t type)
{
	struct dd_dns_rrset *rs;

	for (rs = c->b[cache_slot(c, name, type)]; rs; rs = rs->hnext)
		if (rs->type == type && same_name(rs->name, name))
			return rs;
	return NULL;
}

const struct dd_dns_rrset *dd_dns_cache_get(struct dd_dns_cache *c,
					    const char *name, uint16_t type,
					    uint64_t now)
{
	struct dd_dns_rrset *rs = cache_find(c, name, type);

	if (!rs)
		return NULL;
	if (rs->expires <= now) {
		cache_drop(c, rs);
		return NULL;
	}
	lru_unlink(c, rs);
	lru_append(c, rs);
	return rs;
}

void dd_dns_cache_put(struct dd_dns_cache *c, struct dd_dns_rrset *rs,
		      uint64_t now)
{
	struct dd_dns_rrset *old = cache_find(c, rs->name, rs->type);
	unsigned int k;

	if (old)
		cache_drop(c, old);
	rs->expires = now + (uint64_t)rs->ttl * 1000000000ULL;
	k = cache_slot(c, rs->name, rs->type);
	rs->hnext = c->b[k];
	c->b[k] = rs;
	lru_append(c, rs);
	c->n++;
	while (c->n > c->max)
		cache_drop(c, c->lru);
}

unsigned int dd_dns_cache_count(const struct dd_dns_cache *c)
{
	return c->n;
}

static int parse_port(const char *s, uint16_t *port)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	v = strtoul(s, &end, 10);
	if (*end || !v || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

static int parse_server(const char *tok, struct dd_dns_server *sv)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *colon, *rest = "";
	size_t l;

	sv->port = 53;
	if (*tok == '[') {
		const char *close = strchr(tok, ']');

		if (!close)
			return -EINVAL;
		l = (size_t)(close - tok - 1);
		if (l >= sizeof(addr))
			return -EINVAL;
		memcpy(addr, tok + 1, l);
		addr[l] = '\0';
		rest = close + 1;
		if (*rest && *rest != ':')
			return -EINVAL;
		sv->family = AF_INET6;
	} else {
		colon = strchr(tok, ':');
		/* Two colons or more: a bare IPv6 address, no port. */
		if (colon && strchr(colon + 1, ':')) {
			colon = NULL;
			sv->family = AF_INET6;
		} else {
			sv->family = AF_INET;
		}
		l = colon ? (size_t)(colon - tok) : strlen(tok);
		if (l >= sizeof(addr))
			return -EINVAL;
		memcpy(addr, tok, l);
		addr[l] = '\0';
		rest = colon ? colon : "";
	}
	if (inet_pton(sv->family, addr, sv->addr) != 1)
		return -EINVAL;
	if (*rest)
		return parse_port(rest + 1, &sv->port);
	return 0;
}

int dd_dns_servers_parse(const char *s, struct dd_dns_server *out,
			 unsigned int max, char *err, size_t errlen)
{
	unsigned int n = 0;

	while (s && *s) {
		char tok[80];
		size_t l;

		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		l = strcspn(s, ",");
		while (l && (s[l - 1] == ' ' || s[l - 1] == '\t'))
			l--;
		if (!l)
			break;
		if (l >= sizeof(tok)) {
			dd_errf(err, errlen, "dns_servers: entry too long");
			return -EINVAL;
		}
		memcpy(tok, s, l);
		tok[l] = '\0';
		if (n == max) {
			dd_errf(err, errlen, "dns_servers: more than %u servers",
				max);
			return -EINVAL;
		}
		if (parse_server(tok, &out[n])) {
			dd_errf(err, errlen, "dns_servers: \"%s\" is not "
				"address[:port] or [IPv6-address]:port", tok);
			return -EINVAL;
		}
		n++;
		s += strcspn(s, ",");
	}
	return (int)n;
}

/* splitmix64: cheap, and good enough to spread load over equal MXes. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void dd_dns_mx_sort(struct dd_dns_rr *rr, unsigned int n, uint64_t *seed)
{
	unsigned int i, j;

	/* Shuffle, then a stable sort by preference keeps ties shuffled. */
	for (i = n; i > 1; i--) {
		struct dd_dns_rr t;

		j = (unsigned int)(next_rand(seed) % i);
		t = rr[i - 1];
		rr[i - 1] = rr[j];
		rr[j] = t;
	}
	for (i = 1; i < n; i++) {
		struct dd_dns_rr t = rr[i];

		for (j = i; j > 0 && rr[j - 1].pref > t.pref; j--)
			rr[j] = rr[j - 1];
		rr[j] = t;
	}
}
