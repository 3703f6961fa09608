/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Static routes: "domain host:port" lines.  A domain matches itself; a
 * leading dot (".example.com") matches every subdomain; "*" matches all.
 * host is an IPv4 or IPv6 address ("[::1]:25"), or a name resolved once
 * at load.  Exact beats subdomain beats "*".  '#' comments.
 */
#ifndef DD_ROUTES_H
#define DD_ROUTES_H

#include <stddef.h>
#include <sys/socket.h>

struct dd_routes;

struct dd_route {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char name[64];			/* "127.0.0.1:2601", for logs */
	char host[256];			/* the host if given as a name, for TLS */
};

/* An address as "1.2.3.4:25" or "[2001:db8::1]:25", for names and logs. */
void dd_sockaddr_name(const struct sockaddr_storage *ss, char *out,
		      size_t len);

/* 0, or -errno with "FILE:LINE: message" in err. */
int dd_routes_load(struct dd_routes **r, const char *path, char *err,
		   size_t errlen);
void dd_routes_free(struct dd_routes *r);
/* The route for domain (case-insensitive), or NULL. */
const struct dd_route *dd_routes_lookup(const struct dd_routes *r,
					const char *domain);
unsigned int dd_routes_count(const struct dd_routes *r);

#endif /* DD_ROUTES_H */
