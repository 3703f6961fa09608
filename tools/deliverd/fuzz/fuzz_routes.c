// SPDX-License-Identifier: GPL-2.0
/*
 * The routes file (dd_routes.c): "domain host:port" lines, IPv4, [IPv6]
 * and host names.  Names are not looked up here: getaddrinfo() below
 * knows only "localhost", so the harness never waits on a resolver.
 *
 * Input: the file.
 *
 * Checked: a refused file says where; every route found for a domain
 * has an address of the family its length says and a printable name;
 * the routes counted are at most the lines.
 */
#include "fuzz.h"

#include <netdb.h>
#include <netinet/in.h>

#include "dd_routes.h"

/* Our own resolver for the harness: "localhost" and nothing else. */
int getaddrinfo(const char *node, const char *service,
		const struct addrinfo *hints, struct addrinfo **res)
{
	struct {
		struct addrinfo ai;
		struct sockaddr_in sin;
	} *r;

	(void)service;
	(void)hints;
	if (!node || strcmp(node, "localhost"))
		return EAI_NONAME;
	r = calloc(1, sizeof(*r));
	if (!r)
		return EAI_MEMORY;
	r->sin.sin_family = AF_INET;
	r->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->ai.ai_family = AF_INET;
	r->ai.ai_addr = (struct sockaddr *)&r->sin;
	r->ai.ai_addrlen = sizeof(r->sin);
	*res = &r->ai;
	return 0;
}

void freeaddrinfo(struct addrinfo *ai)
{
	free(ai);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const probe[] = { "example.com", "a.example.com",
		"EXAMPLE.ORG", "localhost", "x", "sub.sub.example.net.", NULL };
	struct dd_routes *r = NULL;
	char path[64], err[1024];
	int fd = fuzz_file(data, size, path, sizeof(path));
	unsigned int lines = 1;

	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	if (dd_routes_load(&r, path, err, sizeof(err))) {
		FUZZ_CHECK(!strncmp(err, path, strlen(path)),
			   "error without the file: %s", err);
		close(fd);
		return 0;
	}
	FUZZ_CHECK(dd_routes_count(r) <= lines, "%u routes in %u lines",
		   dd_routes_count(r), lines);
	for (int i = 0; probe[i]; i++) {
		const struct dd_route *rt = dd_routes_lookup(r, probe[i]);

		if (!rt)
			continue;
		FUZZ_CHECK((rt->addr.ss_family == AF_INET &&
			    rt->addrlen == sizeof(struct sockaddr_in)) ||
			   (rt->addr.ss_family == AF_INET6 &&
			    rt->addrlen == sizeof(struct sockaddr_in6)),
			   "route for %s", probe[i]);
		FUZZ_CHECK(rt->name[0] && strnlen(rt->name, sizeof(rt->name)) <
			   sizeof(rt->name), "route name");
	}
	dd_routes_free(r);
	close(fd);
	return 0;
}
