// SPDX-License-Identifier: GPL-2.0
/*
 * MX resolution for destinations without a static route (dd_mx.h).
 *
 * A resolution looks up the domain's MX records, then each host's AAAA
 * (ipv6 on) and A records, all through the worker's cached resolver, and
 * makes one flat list of targets: hosts in preference order, each host's
 * IPv6 addresses before its IPv4 ones.  Sessions connect to the first
 * target that has not failed; one that could not connect or was not
 * greeted marks its target failed and the next session tries the next,
 * so the destination is suspended only once every address has failed.
 *
 * A list lives until the shortest TTL among the answers it was made from;
 * then the next need resolves again, and the old list stays allocated
 * (sessions point at its names and targets) until the destination has no
 * session left.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dd_dns.h"
#include "dd_log.h"
#include "dd_mx.h"

#define MX_HOSTS	10	/* MX hosts tried, the preferred ones */
#define MX_ADDRS	8	/* addresses per host and family */
#define MX_PARTIAL_TTL	30	/* s: a list made despite failed lookups */

struct mx_list;

struct mx_target {
	struct dd_route r;
	struct mx_list *list;
	const char *mx;			/* the list's name of the host */
	bool failed;			/* this round */
};

struct mx_list {
	struct mx_list *next;		/* retired ones */
	uint64_t expires;		/* CLOCK_MONOTONIC ns */
	unsigned int n, nnames;
	char *names[MX_HOSTS];
	struct mx_target t[];
};

struct mx_res;

struct res_host {
	struct mx_res *res;
	char name[DD_DNS_NAME_MAX + 1];
	unsigned int n4, n6;
	uint8_t a4[MX_ADDRS][4];
	uint8_t a6[MX_ADDRS][16];
	bool temp;			/* a lookup failed for now */
};

/* One resolution on its way. */
struct mx_res {
	struct dd_mx *mx;
	unsigned int pending;		/* lookups not answered, + 1 while issuing */
	uint8_t fail;			/* DD_MX_PERM, DD_MX_TEMP, 0 */
	bool implicit;			/* no MX: the domain is its own host */
	uint64_t expires;
	unsigned int nhost;
	struct dd_smtp_reply why;
	char temp_why[160];
	struct res_host host[MX_HOSTS];
};

struct dd_mx {
	struct dd_dest *d;
	struct mx_list *cur, *retired;
	struct mx_res *res;
	uint8_t fail;			/* a failure not reported yet */
	struct dd_smtp_reply why;
	uint64_t seed;			/* for shuffling equal MXes */
};

static void reply(struct dd_smtp_reply *rp, int code, const char *enh,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void reply(struct dd_smtp_reply *rp, int code, const char *enh,
		  const char *fmt, ...)
{
	va_list ap;

	rp->code = code;
	snprintf(rp->enh, sizeof(rp->enh), "%s", enh);
	va_start(ap, fmt);
	vsnprintf(rp->text, sizeof(rp->text), fmt, ap);
	va_end(ap);
}

static void list_free(struct mx_list *l)
{
	unsigned int i;

	if (!l)
		return;
	for (i = 0; i < l->nnames; i++)
		free(l->names[i]);
	free(l);
}

static void free_retired(struct dd_mx *mx)
{
	while (mx->retired) {
		struct mx_list *l = mx->retired;

		mx->retired = l->next;
		list_free(l);
	}
}

static void retire(struct dd_mx *mx)
{
	if (!mx->cur)
		return;
	if (mx->d->nconns) {
		mx->cur->next = mx->retired;
		mx->retired = mx->cur;
	} else {
		list_free(mx->cur);
	}
	mx->cur = NULL;
}

static void set_target(struct mx_target *t, struct mx_list *l, int family,
		       const uint8_t *addr, unsigned int port, const char *mx)
{
	memset(&t->r, 0, sizeof(t->r));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&t->r.addr;

		s->sin_family = AF_INET;
		s->sin_port = htons((uint16_t)port);
		memcpy(&s->sin_addr, addr, 4);
		t->r.addrlen = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&t->r.addr;

		s->sin6_family = AF_INET6;
		s->sin6_port = htons((uint16_t)port);
		memcpy(&s->sin6_addr, addr, 16);
		t->r.addrlen = sizeof(*s);
	}
	dd_sockaddr_name(&t->r.addr, t->r.name, sizeof(t->r.name));
	t->list = l;
	t->mx = mx;
	t->failed = false;
}

static void finish(struct mx_res *res)
{
	struct dd_mx *mx = res->mx;
	struct dd_dest *d = mx->d;
	unsigned int i, j, n = 0, port = dd_d.conf.mx_port;
	uint64_t now = dd_mono_ns();
	bool temp = false;
	struct mx_list *l;

	mx->res = NULL;
	for (i = 0; i < res->nhost; i++) {
		n += res->host[i].n4 + res->host[i].n6;
		temp |= res->host[i].temp;
	}
	if (res->fail)
		goto out;
	if (!n) {
		if (temp)
			res->fail = DD_MX_TEMP, reply(&res->why, 451, "4.4.3",
				"cannot resolve the mail hosts of %s: %s",
				d->domain, res->temp_why);
		else if (res->implicit)
			res->fail = DD_MX_PERM, reply(&res->why, 550, "5.4.4",
				"%s has no MX and no address record",
				d->domain);
		else
			res->fail = DD_MX_PERM, reply(&res->why, 550, "5.4.4",
				"no MX host of %s has an address (%s%s)",
				d->domain, res->host[0].name,
				res->nhost > 1 ? ", ..." : "");
		goto out;
	}
	l = calloc(1, sizeof(*l) + n * sizeof(l->t[0]));
	if (!l) {
		res->fail = DD_MX_TEMP;
		reply(&res->why, 451, "4.3.0", "out of memory resolving %s",
		      d->domain);
		goto out;
	}
	n = 0;
	for (i = 0; i < res->nhost; i++) {
		struct res_host *h = &res->host[i];
		char *name;

		if (!h->n4 && !h->n6)
			continue;
		name = strdup(h->name);
		if (!name) {
			list_free(l);
			res->fail = DD_MX_TEMP;
			reply(&res->why, 451, "4.3.0",
			      "out of memory resolving %s", d->domain);
			goto out;
		}
		l->names[l->nnames++] = name;
		for (j = 0; j < h->n6; j++)
			set_target(&l->t[n++], l, AF_INET6, h->a6[j], port, name);
		for (j = 0; j < h->n4; j++)
			set_target(&l->t[n++], l, AF_INET, h->a4[j], port, name);
	}
	l->n = n;
	if (temp && res->expires > now + MX_PARTIAL_TTL * 1000000000ULL)
		res->expires = now + MX_PARTIAL_TTL * 1000000000ULL;
	l->expires = res->expires;
	if (l->expires < now + DD_DNS_TTL_MIN * 1000000000ULL)
		l->expires = now + DD_DNS_TTL_MIN * 1000000000ULL;
	mx->cur = l;
	dd_debug("%s: %u address%s, first %s (%s), for %llu s", d->domain, n,
		 n == 1 ? "" : "es", l->t[0].r.name, l->t[0].mx,
		 (unsigned long long)((l->expires - now) / 1000000000ULL));
out:
	if (res->fail) {
		mx->fail = res->fail;
		mx->why = res->why;
	}
	free(res);
	dd_dest_wake(d);
}

static void res_put(struct mx_res *res)
{
	if (!--res->pending)
		finish(res);
}

static void set_fail(struct mx_res *res, uint8_t kind, int code,
		     const char *enh, const char *text)
{
	if (res->fail)
		return;
	res->fail = kind;
	reply(&res->why, code, enh, "%s", text);
}

static void took(struct mx_res *res, const struct dd_dns_rrset *rs)
{
	if (rs->expires < res->expires)
		res->expires = rs->expires;
}

static void addr_answer(void *arg, const struct dd_dns_rrset *rs,
			const char *why)
{
	struct res_host *h = arg;
	struct mx_res *res = h->res;
	unsigned int i;

	if (!rs) {
		h->temp = true;
		if (!res->temp_why[0])
			snprintf(res->temp_why, sizeof(res->temp_why), "%.60s: %.90s",
				 h->name, why);
	} else {
		took(res, rs);
		for (i = 0; rs->status == DD_DNS_OK && i < rs->n; i++) {
			if (rs->type == DD_DNS_T_A && h->n4 < MX_ADDRS)
				memcpy(h->a4[h->n4++], rs->rr[i].addr, 4);
			else if (rs->type == DD_DNS_T_AAAA && h->n6 < MX_ADDRS)
				memcpy(h->a6[h->n6++], rs->rr[i].addr, 16);
		}
	}
	res_put(res);
}

static bool have_host(const struct mx_res *res, const char *name)
{
	unsigned int i;

	for (i = 0; i < res->nhost; i++)
		if (!strcmp(res->host[i].name, name))
			return true;
	return false;
}

static void mx_answer(void *arg, const struct dd_dns_rrset *rs,
		      const char *why)
{
	struct mx_res *res = arg;
	struct dd_dest *d = res->mx->d;
	struct dd_dns_rr rr[DD_DNS_RRS_MAX];
	char text[sizeof(res->why.text)];
	bool null_mx = false;
	unsigned int i, n;

	if (!rs) {
		snprintf(text, sizeof(text), "MX lookup for %s failed: %s",
			 d->domain, why);
		set_fail(res, DD_MX_TEMP, 451, "4.4.3", text);
		goto out;
	}
	took(res, rs);
	if (rs->status == DD_DNS_NXDOMAIN) {
		snprintf(text, sizeof(text), "domain %s does not exist "
			 "(DNS: NXDOMAIN)", d->domain);
		set_fail(res, DD_MX_PERM, 550, "5.1.2", text);
		goto out;
	}
	n = rs->status == DD_DNS_OK ? rs->n : 0;
	memcpy(rr, rs->rr, n * sizeof(rr[0]));
	dd_dns_mx_sort(rr, n, &res->mx->seed);
	for (i = 0; i < n; i++) {
		if (!rr[i].host[0]) {
			null_mx = true;
			continue;
		}
		if (res->nhost == MX_HOSTS || have_host(res, rr[i].host))
			continue;
		snprintf(res->host[res->nhost++].name, DD_DNS_NAME_MAX + 1,
			 "%s", rr[i].host);
	}
	if (null_mx && !res->nhost) {
		/* RFC 7505 3: the domain says it accepts no mail. */
		snprintf(text, sizeof(text), "%s does not accept mail "
			 "(null MX)", d->domain);
		set_fail(res, DD_MX_PERM, 556, "5.1.10", text);
		goto out;
	}
	if (!res->nhost && !null_mx) {
		/* No MX: the domain is its own mail host (RFC 5321 5.1). */
		res->implicit = true;
		snprintf(res->host[0].name, DD_DNS_NAME_MAX + 1, "%s",
			 d->domain);
		res->nhost = 1;
	}
	for (i = 0; i < res->nhost; i++) {
		struct res_host *h = &res->host[i];

		h->res = res;
		if (dd_d.conf.ipv6) {
			res->pending++;
			dd_dns_lookup(d->w, h->name, DD_DNS_T_AAAA, addr_answer,
				      h);
		}
		res->pending++;
		dd_dns_lookup(d->w, h->name, DD_DNS_T_A, addr_answer, h);
	}
out:
	res_put(res);
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]": no lookup (RFC 5321 4.1.3). */
static bool literal(struct dd_mx *mx)
{
	const char *dom = mx->d->domain;
	char a[INET6_ADDRSTRLEN + 1];
	uint8_t addr[16];
	size_t len = strlen(dom);
	int family = AF_INET;
	struct mx_list *l;

	if (dom[0] != '[' || len < 3 || dom[len - 1] != ']')
		return false;
	dom++;
	len -= 2;
	if (len > 5 && !strncasecmp(dom, "ipv6:", 5)) {
		family = AF_INET6;
		dom += 5;
		len -= 5;
	}
	if (len >= sizeof(a))
		goto bad;
	memcpy(a, dom, len);
	a[len] = '\0';
	if (inet_pton(family, a, addr) != 1)
		goto bad;
	l = calloc(1, sizeof(*l) + sizeof(l->t[0]));
	if (!l) {
		mx->fail = DD_MX_TEMP;
		reply(&mx->why, 451, "4.3.0", "out of memory");
		return true;
	}
	set_target(&l->t[0], l, family, addr, dd_d.conf.mx_port, NULL);
	l->n = 1;
	l->expires = UINT64_MAX;
	mx->cur = l;
	return true;
bad:
	mx->fail = DD_MX_PERM;
	reply(&mx->why, 550, "5.1.2", "bad address literal %s",
	      mx->d->domain);
	return true;
}

static void resolve(struct dd_mx *mx)
{
	struct mx_res *res;

	if (literal(mx))
		return;
	res = calloc(1, sizeof(*res));
	if (!res) {
		mx->fail = DD_MX_TEMP;
		reply(&mx->why, 451, "4.3.0", "out of memory resolving %s",
		      mx->d->domain);
		return;
	}
	res->mx = mx;
	res->expires = UINT64_MAX;
	res->pending = 2;	/* the MX lookup, and ours while we issue it */
	mx->res = res;
	dd_dns_lookup(mx->d->w, mx->d->domain, DD_DNS_T_MX, mx_answer, res);
	res_put(res);
}

enum dd_mx_state dd_mx_prepare(struct dd_dest *d, struct dd_smtp_reply *rp)
{
	struct dd_mx *mx = d->mx;
	uint8_t fail;

	if (!mx) {
		mx = calloc(1, sizeof(*mx));
		if (!mx) {
			reply(rp, 451, "4.3.0", "out of memory");
			return DD_MX_TEMP;
		}
		mx->d = d;
		mx->seed = (uint64_t)(uintptr_t)d ^ dd_mono_ns();
		d->mx = mx;
	}
	if (mx->res)
		return DD_MX_WAIT;
	if (!d->nconns)
		free_retired(mx);
	if (!mx->fail) {
		if (mx->cur && mx->cur->expires > dd_mono_ns())
			return DD_MX_READY;
		retire(mx);
		resolve(mx);
		if (mx->res)
			return DD_MX_WAIT;
		if (mx->cur)
			return DD_MX_READY;
	}
	fail = mx->fail;
	*rp = mx->why;
	mx->fail = 0;
	return fail;
}

bool dd_mx_target(struct dd_dest *d, struct dd_target *t)
{
	struct mx_list *l = d->mx ? d->mx->cur : NULL;
	struct mx_target *pick = NULL;
	unsigned int i;

	if (!l || !l->n)
		return false;
	for (i = 0; i < l->n && !pick; i++)
		if (!l->t[i].failed)
			pick = &l->t[i];
	if (!pick) {
		/* All failed last round (then came the back-off): again. */
		for (i = 0; i < l->n; i++)
			l->t[i].failed = false;
		pick = &l->t[0];
	}
	t->r = pick->r;
	t->mx = pick->mx;
	t->ref = pick;
	return true;
}

bool dd_mx_closed(struct dd_dest *d, struct dd_out *o, bool failed,
		  const char *why)
{
	struct dd_mx *mx = d->mx;
	struct mx_target *t = dd_out_ref(o);
	bool more = false;
	unsigned int i;

	if (!mx || !t)
		return false;
	if (failed && t->list != mx->cur) {
		/* From a list since replaced: the new one has its own tries. */
		more = true;
	} else if (failed) {
		t->failed = true;
		for (i = 0; i < t->list->n; i++)
			if (!t->list->t[i].failed)
				more = true;
		if (more)
			dd_info("%s: %s; trying the next address", d->domain,
				why);
	}
	if (!d->nconns)
		free_retired(mx);
	return more;
}
