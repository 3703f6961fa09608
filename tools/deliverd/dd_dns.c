// SPDX-License-Identifier: GPL-2.0
/*
 * Each worker's resolver: a c-ares channel driven by the worker's own
 * event loop, so a lookup never blocks the thread and needs no lock.
 * c-ares tells us which sockets it wants watched (ARES_OPT_SOCK_STATE_CB);
 * each gets a struct dd_io of kind DD_IO_DNS on the worker's queue, and
 * the channel's next timeout is a timer in the worker's heap.  Answers go
 * into the worker's cache (dd_dns_msg.c) with their TTLs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ares.h>

#include "dd_core.h"
#include "dd_dns.h"
#include "dd_log.h"

/*
 * A c-ares socket.  The structure outlives the socket: entries posted for
 * it may still be in the ring after the socket is closed, so it goes back
 * on the free list (live false, such entries are ignored) rather than
 * being freed; a later socket may reuse it, and a stale entry then only
 * makes c-ares look at a socket with nothing to read.
 */
struct dns_sock {
	struct dd_io io;		/* first: user_data points here */
	struct dns_sock *next;
	bool live;
};

struct dd_dns {
	struct dd_worker *w;
	ares_channel ch;		/* NULL: could not be set up */
	char err[128];			/* why not */
	struct dd_dns_cache *cache;
	struct dns_sock *socks;
	struct dd_timer timer;
};

struct dns_query {
	struct dd_dns *dns;
	dd_dns_cb cb;
	void *arg;
	uint16_t type;
	char name[];
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_err;

static void lib_init(void)
{
	lib_err = ares_library_init(ARES_LIB_INIT_ALL);
}

static void dns_rearm(struct dd_dns *dns)
{
	struct timeval tv, *tvp = ares_timeout(dns->ch, NULL, &tv);

	if (!tvp) {
		dd_timer_del(dns->w, &dns->timer);
		return;
	}
	dd_timer_set(dns->w, &dns->timer, dd_mono_ns() +
		     (uint64_t)tvp->tv_sec * 1000000000ULL +
		     (uint64_t)tvp->tv_usec * 1000ULL + 1);
}

static void dns_timeout(struct dd_worker *w, struct dd_timer *t)
{
	struct dd_dns *dns = w->dns;

	(void)t;
	ares_process_fd(dns->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_rearm(dns);
}

static struct dns_sock *sock_find(struct dd_dns *dns, int fd)
{
	struct dns_sock *s;

	for (s = dns->socks; s; s = s->next)
		if (s->live && s->io.fd == fd)
			return s;
	return NULL;
}

/* c-ares opened, changed or (neither readable nor writable) closes fd. */
static void sock_state(void *data, ares_socket_t fd, int readable,
		       int writable)
{
	struct dd_dns *dns = data;
	struct dns_sock *s = sock_find(dns, fd);

	if (!readable && !writable) {
		if (s) {
			dd_worker_unwatch(dns->w, &s->io);
			s->live = false;
		}
		return;
	}
	if (s)
		return;		/* watched for both already, edge-triggered */
	for (s = dns->socks; s && s->live; s = s->next)
		;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s) {
			/* Its queries time out: c-ares retries on its own. */
			dd_err("DNS socket: out of memory");
			return;
		}
		s->io.kind = DD_IO_DNS;
		s->next = dns->socks;
		dns->socks = s;
	}
	s->io.fd = fd;
	s->live = true;
	if (dd_worker_watch(dns->w, &s->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP)) {
		dd_err("DNS socket: cannot watch it");
		s->live = false;
	}
}

void dd_dns_event(struct dd_worker *w, struct dd_io *io, uint32_t events)
{
	struct dns_sock *s = (struct dns_sock *)io;
	struct dd_dns *dns = w->dns;
	int fd = io->fd, i;

	if (!dns || !s->live)
		return;
	ares_process_fd(dns->ch,
			events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP) ?
			fd : ARES_SOCKET_BAD,
			events & EPOLLOUT ? fd : ARES_SOCKET_BAD);
	/*
	 * The watch is edge-triggered and c-ares reads a TCP answer a piece
	 * per call: while the socket still has data, call again, or the
	 * rest would wait for an edge that does not come.
	 */
	for (i = 0; i < 64 && s->live && s->io.fd == fd; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP |
							   POLLERR)))
			break;
		ares_process_fd(dns->ch, fd, ARES_SOCKET_BAD);
	}
	dns_rearm(dns);
}

static int set_servers(ares_channel ch, char *err, size_t errlen)
{
	struct dd_dns_server sv[DD_DNS_SERVERS_MAX];
	struct ares_addr_port_node node[DD_DNS_SERVERS_MAX];
	int i, n, r;

	n = dd_dns_servers_parse(dd_d.conf.dns_servers, sv, DD_DNS_SERVERS_MAX,
				 err, errlen);
	if (n <= 0)
		return n;	/* none: c-ares read /etc/resolv.conf */
	memset(node, 0, sizeof(node));
	for (i = 0; i < n; i++) {
		node[i].next = i + 1 < n ? &node[i + 1] : NULL;
		node[i].family = sv[i].family;
		if (sv[i].family == AF_INET)
			memcpy(&node[i].addr.addr4, sv[i].addr, 4);
		else
			memcpy(&node[i].addr.addr6, sv[i].addr, 16);
		node[i].udp_port = sv[i].port;
		node[i].tcp_port = sv[i].port;
	}
	r = ares_set_servers_ports(ch, node);
	if (r != ARES_SUCCESS) {
		snprintf(err, errlen, "dns_servers: %s", ares_strerror(r));
		return -EINVAL;
	}
	return 0;
}

/* The worker's resolver, made on first use (in the worker's thread). */
static struct dd_dns *dns_get(struct dd_worker *w)
{
	struct ares_options o;
	struct dd_dns *dns;
	int r;

	if (w->dns)
		return w->dns;
	dns = calloc(1, sizeof(*dns));
	if (!dns)
		return NULL;
	dns->cache = dd_dns_cache_new(DD_DNS_CACHE_MAX);
	if (!dns->cache) {
		free(dns);
		return NULL;
	}
	dns->w = w;
	dns->timer.fire = dns_timeout;
	w->dns = dns;
	pthread_once(&lib_once, lib_init);
	if (lib_err) {
		snprintf(dns->err, sizeof(dns->err), "c-ares: %s",
			 ares_strerror(lib_err));
		goto fail;
	}
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = sock_state;
	o.sock_state_cb_data = dns;
	o.timeout = (int)dd_d.conf.dns_timeout * 1000;
	o.tries = 2;
	/* Mail domains are absolute: no search list, no HOSTALIASES. */
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	r = ares_init_options(&dns->ch, &o, ARES_OPT_SOCK_STATE_CB |
			      ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
			      ARES_OPT_FLAGS);
	if (r != ARES_SUCCESS) {
		dns->ch = NULL;
		snprintf(dns->err, sizeof(dns->err), "c-ares: %s",
			 ares_strerror(r));
		goto fail;
	}
	if (set_servers(dns->ch, dns->err, sizeof(dns->err))) {
		ares_destroy(dns->ch);
		dns->ch = NULL;
		goto fail;
	}
	return dns;
fail:
	dd_err("DNS resolver: %s", dns->err);
	return dns;
}

static const char *status_text(int status, char *buf, size_t len)
{
	switch (status) {
	case ARES_ETIMEOUT:
		return "no answer from the DNS servers (timeout)";
	case ARES_ECONNREFUSED:
		/* c-ares 1.18 says so for REFUSED answers too. */
		return "DNS servers refused the query or cannot be reached";
	case ARES_ESERVFAIL:
		return "DNS server failure (SERVFAIL)";
	case ARES_EREFUSED:
		return "DNS query refused (REFUSED)";
	}
	snprintf(buf, len, "DNS: %s", ares_strerror(status));
	return buf;
}

static void query_done(void *arg, int status, int timeouts,
		       unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	struct dd_dns *dns = q->dns;
	struct dd_dns_rrset *rs = NULL;
	char buf[96];
	const char *why = NULL;
	int err, rcode;

	(void)timeouts;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
		free(q);	/* shutting down: nobody waits */
		return;
	}
	if (status == ARES_SUCCESS || status == ARES_ENODATA ||
	    status == ARES_ENOTFOUND) {
		err = abuf && alen > 0 ?
			dd_dns_parse(abuf, (size_t)alen, q->name, q->type, &rs,
				     &rcode) : -EBADMSG;
		if (err == -EBADMSG && status != ARES_SUCCESS) {
			/* c-ares judged it; without the message, no SOA TTL. */
			rs = dd_dns_negative(q->name, q->type,
					     status == ARES_ENOTFOUND ?
					     DD_DNS_NXDOMAIN : DD_DNS_NODATA);
			err = rs ? 0 : -ENOMEM;
		}
		if (err == -ENOMEM)
			why = "out of memory";
		else if (err)
			why = "malformed DNS answer";
	} else {
		why = status_text(status, buf, sizeof(buf));
	}
	if (rs)
		dd_dns_cache_put(dns->cache, rs, dd_mono_ns());
	dd_debug("DNS %s/%u: %s", q->name, q->type,
		 rs ? (rs->status == DD_DNS_OK ? "ok" :
		       rs->status == DD_DNS_NXDOMAIN ? "NXDOMAIN" : "NODATA")
		    : why);
	q->cb(q->arg, rs, why);
	free(q);
}

void dd_dns_lookup(struct dd_worker *w, const char *name, uint16_t type,
		   dd_dns_cb cb, void *arg)
{
	struct dd_dns *dns = dns_get(w);
	const struct dd_dns_rrset *rs;
	struct dns_query *q;
	size_t len = strlen(name);

	if (!dns) {
		cb(arg, NULL, "out of memory");
		return;
	}
	if (!dns->ch) {
		cb(arg, NULL, dns->err);
		return;
	}
	rs = dd_dns_cache_get(dns->cache, name, type, dd_mono_ns());
	if (rs) {
		cb(arg, rs, NULL);
		return;
	}
	q = malloc(sizeof(*q) + len + 1);
	if (!q) {
		cb(arg, NULL, "out of memory");
		return;
	}
	q->dns = dns;
	q->cb = cb;
	q->arg = arg;
	q->type = type;
	memcpy(q->name, name, len + 1);
	ares_query(dns->ch, name, 1 /* IN */, type, query_done, q);
	dns_rearm(dns);
}
