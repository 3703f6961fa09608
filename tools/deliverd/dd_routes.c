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
 * The file is read by dd_lines_read() and the routes kept in a struct
 * dd_dmap: the domain itself, then the longest ".suffix" (".b.example.com"
 * beats ".example.com" for a.b.example.com), then "*", one hash probe per
 * label whatever the number of routes.
 */
#include "dd_routes.h"
#include "dd_lines.h"
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

/* What a domain pattern maps to. */
struct rent {
	unsigned int line;	/* where it was defined */
	struct dd_route route;
};

struct dd_routes {
	struct dd_dmap map;
};

void dd_sockaddr_name(const struct sockaddr_storage *ss, char *out,
		      size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(out, len, "[%s]:%u", a, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const void *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(out, len, "%s:%u", a, ntohs(s4->sin_port));
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
	dd_sockaddr_name(&r->addr, r->name, sizeof(r->name));
	return 0;
}

void dd_routes_free(struct dd_routes *r)
{
	if (!r)
		return;
	dd_dmap_free(&r->map);
	free(r);
}

struct rt_load {
	struct dd_routes *r;
	struct dd_dmap cache;	/* target spec -> resolved route */
};

/* One "domain host[:port]" line. */
static int route_line(void *arg, char *line, unsigned int lineno, char *msg,
		      size_t msglen)
{
	struct rt_load *l = arg;
	struct dd_route route, *cached;
	char *f[2], *dom, *target;
	struct rent *e;
	void *v;
	int ret;

	if (!dd_lines_fields(line, f, 2)) {
		dd_errf(msg, msglen, "expected 'domain host:port'");
		return -EINVAL;
	}
	dom = f[0];
	target = f[1];
	/* The message shows the domain as written, before it is normalized. */
	dd_errf(msg, msglen, "bad domain '%s'", dom);
	if (!dd_domain_pattern(dom))
		return -EINVAL;
	/* Resolve each distinct target once. */
	for (char *q = target; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	cached = dd_dmap_get(&l->cache, target);
	if (cached) {
		route = *cached;
	} else {
		char *spec = strdup(target);

		if (!spec)
			return -ENOMEM;
		ret = parse_target(spec, &route, msg, msglen);
		free(spec);
		if (ret)
			return ret;
		ret = dd_dmap_add(&l->cache, target, sizeof(route), &v);
		if (ret)
			return ret;
		*(struct dd_route *)v = route;
	}
	ret = dd_dmap_add(&l->r->map, dom, sizeof(*e), &v);
	e = v;
	if (ret == -EEXIST) {
		dd_errf(msg, msglen, "duplicate route for '%s' (first at line %u)",
			dom, e->line);
		return -EINVAL;
	}
	if (ret)
		return ret;
	e->route = route;
	e->line = lineno;
	return 0;
}

int dd_routes_load(struct dd_routes **rp, const char *path, char *err,
		   size_t errlen)
{
	struct rt_load l = { 0 };
	int ret;

	*rp = NULL;
	l.r = calloc(1, sizeof(*l.r));
	if (!l.r) {
		dd_errf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	ret = dd_lines_read(path, route_line, &l, err, errlen);
	dd_dmap_free(&l.cache);
	if (ret) {
		dd_routes_free(l.r);
		return ret;
	}
	*rp = l.r;
	return 0;
}

const struct dd_route *dd_routes_lookup(const struct dd_routes *r,
					const char *domain)
{
	const struct rent *e;

	if (!r || !domain)
		return NULL;
	e = dd_dmap_lookup(&r->map, domain);
	return e ? &e->route : NULL;
}

unsigned int dd_routes_count(const struct dd_routes *r)
{
	if (!r)
		return 0;
	return (unsigned int)dd_dmap_count(&r->map);
}
