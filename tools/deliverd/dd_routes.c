// SPDX-License-Identifier: GPL-2.0
/*
 * Static routes.
 *
 * File: "domain host[:port]" lines, '#' to the end of the line is a
 * comment.  domain is a name ("example.com"), a name with a leading dot
 * (".example.com": every subdomain of example.com, not example.com
 * itself), or "*".  host is an IPv4 address, an IPv6 address in brackets
 * ("[2001:db8::1]:25"), or a name, resolved once here (the first address
 * getaddrinfo gives).  port defaults to 25.  Domains are compared without
 * case (ASCII letters only) and without a trailing dot; a UTF-8 domain
 * (SMTPUTF8) is compared octet for octet as given, without IDNA
 * conversion.  A domain given twice is an error.
 *
 * Lookup is one hash probe for the domain itself, then one per dot in it
 * (the longest ".suffix" first, so ".b.example.com" beats ".example.com"
 * for a.b.example.com), then "*": O(labels), independent of the number
 * of routes.  All keys live in one open-addressing table; the subdomain
 * keys keep their leading dot, so they never collide with exact ones.
 */
#include "dd_routes.h"
#include "dd_log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOMAIN_BUF	257	/* 255 octets, a trailing dot, NUL */

struct rent {
	char *key;		/* NULL: empty slot */
	uint64_t hash;
	unsigned int line;	/* where it was defined */
	struct dd_route route;
};

struct rtable {
	struct rent *v;
	size_t cap;		/* power of two */
	size_t n;
};

struct dd_routes {
	struct rtable t;
	bool have_star;
	struct dd_route star;
};

static uint64_t hash_str(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 32);
}

static struct rent *rt_find(const struct rtable *t, const char *key,
			    size_t len, uint64_t h)
{
	size_t mask = t->cap - 1;

	if (!t->cap)
		return NULL;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct rent *e = &t->v[i];

		if (!e->key)
			return NULL;
		if (e->hash == h && !strncmp(e->key, key, len) && !e->key[len])
			return e;
	}
}

static int rt_grow(struct rtable *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct rent *v = calloc(cap, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		struct rent *e = &t->v[i];
		size_t j;

		if (!e->key)
			continue;
		for (j = e->hash & (cap - 1); v[j].key; j = (j + 1) & (cap - 1))
			;
		v[j] = *e;
	}
	free(t->v);
	t->v = v;
	t->cap = cap;
	return 0;
}

/* A new slot for key (not present), load factor kept <= 1/2. */
static struct rent *rt_insert(struct rtable *t, const char *key, uint64_t h)
{
	size_t i;

	if ((t->n + 1) * 2 > t->cap && rt_grow(t))
		return NULL;
	for (i = h & (t->cap - 1); t->v[i].key; i = (i + 1) & (t->cap - 1))
		;
	t->v[i].key = strdup(key);
	if (!t->v[i].key)
		return NULL;
	t->v[i].hash = h;
	t->n++;
	return &t->v[i];
}

static void rt_free(struct rtable *t)
{
	for (size_t i = 0; i < t->cap; i++)
		free(t->v[i].key);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

/* Lowercase and check a domain pattern in place; false if malformed. */
static bool norm_domain(char *d)
{
	size_t len = strlen(d);
	char *p = d;

	if (!strcmp(d, "*"))
		return true;
	if (len && d[len - 1] == '.')
		d[--len] = '\0';
	if (*p == '.')
		p++;
	if (!*p || len > 255)
		return false;
	for (char *q = p; *q; q++) {
		unsigned char c = (unsigned char)*q;

		if (c == '.') {
			if (q == p || q[1] == '.' || !q[1])
				return false;
			continue;
		}
		/* UTF-8 (SMTPUTF8 domains) is kept as is: no IDNA here */
		if (!isalnum(c) && c != '-' && c != '_' && c < 0x80)
			return false;
		*q = (char)tolower(c);
	}
	return true;
}

static void route_name(struct dd_route *r)
{
	char a[INET6_ADDRSTRLEN];

	if (r->addr.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&r->addr;

		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		snprintf(r->name, sizeof(r->name), "%s:%u", a, ntohs(s->sin_port));
	} else {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&r->addr;

		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		snprintf(r->name, sizeof(r->name), "[%s]:%u", a,
			 ntohs(s->sin6_port));
	}
}

/* host[:port] into r; msg on failure. */
static int parse_target(char *spec, struct dd_route *r, char *msg,
			size_t msglen)
{
	char *host = spec, *port = NULL;
	struct sockaddr_in *sin = (struct sockaddr_in *)&r->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r->addr;
	unsigned long pn = 25;

	memset(r, 0, sizeof(*r));
	if (*host == '[') {
		char *close = strchr(host, ']');

		if (!close || (close[1] && close[1] != ':')) {
			dd_errf(msg, msglen, "bad host '%s' (expected [ipv6]:port)", spec);
			return -EINVAL;
		}
		*close = '\0';
		host++;
		if (close[1] == ':')
			port = close + 2;
	} else {
		char *colon = strchr(host, ':');

		if (colon && strchr(colon + 1, ':')) {
			dd_errf(msg, msglen, "bad host '%s' (an IPv6 address goes in "
			     "brackets: [address]:port)", spec);
			return -EINVAL;
		}
		if (colon) {
			*colon = '\0';
			port = colon + 1;
		}
	}
	if (port) {
		char *end;

		errno = 0;
		pn = isdigit((unsigned char)*port) ? strtoul(port, &end, 10) : 0;
		if (!isdigit((unsigned char)*port) || *end || errno || pn < 1 ||
		    pn > 65535) {
			dd_errf(msg, msglen, "bad port '%s'", port);
			return -EINVAL;
		}
	}
	if (!*host) {
		dd_errf(msg, msglen, "missing host");
		return -EINVAL;
	}
	if (spec[0] == '[') {
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			dd_errf(msg, msglen, "bad IPv6 address '%s'", host);
			return -EINVAL;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)pn);
		r->addrlen = sizeof(*sin6);
	} else if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)pn);
		r->addrlen = sizeof(*sin);
	} else {
		struct addrinfo hints = {
			.ai_family = AF_UNSPEC,
			.ai_socktype = SOCK_STREAM,
		};
		struct addrinfo *ai;
		int e = getaddrinfo(host, NULL, &hints, &ai);

		if (e) {
			dd_errf(msg, msglen, "cannot resolve '%s': %s", host,
			     gai_strerror(e));
			return -EHOSTUNREACH;
		}
		memcpy(&r->addr, ai->ai_addr, ai->ai_addrlen);
		r->addrlen = ai->ai_addrlen;
		freeaddrinfo(ai);
		snprintf(r->host, sizeof(r->host), "%s", host);
		if (r->addr.ss_family == AF_INET)
			sin->sin_port = htons((uint16_t)pn);
		else
			sin6->sin6_port = htons((uint16_t)pn);
	}
	route_name(r);
	return 0;
}

void dd_routes_free(struct dd_routes *r)
{
	if (!r)
		return;
	rt_free(&r->t);
	free(r);
}

int dd_routes_load(struct dd_routes **rp, const char *path, char *err,
		   size_t errlen)
{
	struct dd_routes *r;
	struct rtable cache = { 0 };	/* target spec -> resolved route */
	char msg[512], *line = NULL;
	unsigned int lineno = 0, star_line = 0;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int ret = 0;

	*rp = NULL;
	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		dd_errf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		fclose(f);
		dd_errf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *dom, *target, *extra, *save = NULL, *hash;
		struct dd_route route;
		struct rent *e;
		uint64_t h;

		lineno++;
		if (strlen(line) != (size_t)n) {
			dd_errf(err, errlen, "%s:%u: NUL byte in line", path, lineno);
			ret = -EINVAL;
			break;
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		dom = strtok_r(line, " \t\r\n", &save);
		if (!dom)
			continue;
		target = strtok_r(NULL, " \t\r\n", &save);
		extra = strtok_r(NULL, " \t\r\n", &save);
		if (!target || extra) {
			dd_errf(err, errlen, "%s:%u: expected 'domain host:port'",
			     path, lineno);
			ret = -EINVAL;
			break;
		}
		snprintf(msg, sizeof(msg), "%s", dom);
		if (!norm_domain(dom)) {
			dd_errf(err, errlen, "%s:%u: bad domain '%s'", path, lineno,
			     msg);
			ret = -EINVAL;
			break;
		}
		/* Resolve each distinct target once. */
		for (char *q = target; *q; q++)
			*q = (char)tolower((unsigned char)*q);
		h = hash_str(target, strlen(target));
		e = rt_find(&cache, target, strlen(target), h);
		if (e) {
			route = e->route;
		} else {
			char *spec = strdup(target);

			if (!spec) {
				ret = -ENOMEM;
				dd_errf(err, errlen, "%s: out of memory", path);
				break;
			}
			ret = parse_target(spec, &route, msg, sizeof(msg));
			free(spec);
			if (ret) {
				dd_errf(err, errlen, "%s:%u: %s", path, lineno, msg);
				break;
			}
			e = rt_insert(&cache, target, h);
			if (!e) {
				ret = -ENOMEM;
				dd_errf(err, errlen, "%s: out of memory", path);
				break;
			}
			e->route = route;
		}
		if (!strcmp(dom, "*")) {
			if (r->have_star) {
				dd_errf(err, errlen, "%s:%u: duplicate route for '*' "
				     "(first at line %u)", path, lineno, star_line);
				ret = -EINVAL;
				break;
			}
			r->have_star = true;
			r->star = route;
			star_line = lineno;
			continue;
		}
		h = hash_str(dom, strlen(dom));
		e = rt_find(&r->t, dom, strlen(dom), h);
		if (e) {
			dd_errf(err, errlen, "%s:%u: duplicate route for '%s' "
			     "(first at line %u)", path, lineno, dom, e->line);
			ret = -EINVAL;
			break;
		}
		e = rt_insert(&r->t, dom, h);
		if (!e) {
			ret = -ENOMEM;
			dd_errf(err, errlen, "%s: out of memory", path);
			break;
		}
		e->route = route;
		e->line = lineno;
	}
	if (!ret && ferror(f)) {
		ret = -EIO;
		dd_errf(err, errlen, "%s: read error", path);
	}
	free(line);
	fclose(f);
	rt_free(&cache);
	if (ret) {
		dd_routes_free(r);
		return ret;
	}
	*rp = r;
	return 0;
}

const struct dd_route *dd_routes_lookup(const struct dd_routes *r,
					const char *domain)
{
	char d[DOMAIN_BUF];
	size_t len;
	const struct rent *e;

	if (!r || !domain)
		return NULL;
	len = strlen(domain);
	if (len && domain[len - 1] == '.')
		len--;
	if (len && len < sizeof(d)) {
		for (size_t i = 0; i < len; i++)
			d[i] = (char)tolower((unsigned char)domain[i]);
		d[len] = '\0';
		e = rt_find(&r->t, d, len, hash_str(d, len));
		if (e)
			return &e->route;
		/* ".suffix" keys, longest first; never the bare ".". */
		for (size_t i = 1; i + 1 < len; i++) {
			if (d[i] != '.')
				continue;
			e = rt_find(&r->t, d + i, len - i,
				    hash_str(d + i, len - i));
			if (e)
				return &e->route;
		}
	}
	return r->have_star ? &r->star : NULL;
}

unsigned int dd_routes_count(const struct dd_routes *r)
{
	if (!r)
		return 0;
	return (unsigned int)(r->t.n + (r->have_star ? 1 : 0));
}
