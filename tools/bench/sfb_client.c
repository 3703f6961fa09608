// SPDX-License-Identifier: GPL-2.0
/*
 * sendfile_bench: the loopback connections and the load generator.
 *
 * The client is one thread with plain epoll, the same for every design,
 * so it costs every design alike.  Each connection carries one request at
 * a time (16 bytes naming a file); the reply is the whole file.  The
 * header is read and checked, and the rest is discarded with MSG_TRUNC
 * (TCP supports it since Linux 4.4), so the client does not copy the
 * bulk of the data it receives.
 *
 * Open loop: request i becomes due at plan->at_ns[i] after the start
 * whatever the server is doing.  When every connection is busy at that
 * moment (the server is behind) its latency counts from the moment it was
 * due, so a stalled server cannot slow down the stream that measures it.
 * Otherwise it counts from the moment the request was written: then any
 * delay before the write is the generator's own wake-up, which under
 * QEMU's icount includes the host's lateness in waking an idle guest,
 * noise common to all designs.  That delay is kept per request
 * (r->late_ns) and reported, so a design that starves the generator of
 * CPU still shows.  Closed loop: every connection sends its next request
 * as soon as its reply is in; that gives the throughput a design
 * sustains.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "sfb.h"

uint64_t sfb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t sfb_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest value with at least q of them at or below. */
double sfb_quantile(uint64_t *v, unsigned int n, double q)
{
	unsigned int k;

	if (!n)
		return 0.0 / 0.0;
	qsort(v, n, sizeof(*v), cmp_u64);
	k = (unsigned int)(q * n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (double)v[k - 1];
}

static void nodelay(int fd)
{
	int one = 1;

	/*
	 * Every reply ends with a short segment; with Nagle it could wait
	 * for the ACK of the previous one.  Servers that send files set it.
	 */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/*
 * n connected pairs over 127.0.0.1: cfd[] the client ends (non-blocking),
 * sfd[] the server ends (non-blocking; a design that wants blocking
 * sockets clears the flag).  Connect and accept alternate, so the listen
 * backlog never holds more than one.
 */
int sfb_connect(unsigned int n, int *cfd, int *sfd)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	unsigned int i;
	int l, err = 0;

	for (i = 0; i < n; i++)
		cfd[i] = sfd[i] = -1;
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) < 0 ||
	    listen(l, 16) < 0) {
		err = -errno;
		goto out;
	}
	for (i = 0; i < n; i++) {
		cfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (cfd[i] < 0 ||
		    connect(cfd[i], (struct sockaddr *)&a, sizeof(a)) < 0) {
			err = -errno;
			goto out;
		}
		sfd[i] = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (sfd[i] < 0 ||
		    fcntl(cfd[i], F_SETFL, O_NONBLOCK) < 0) {
			err = -errno;
			goto out;
		}
		nodelay(cfd[i]);
		nodelay(sfd[i]);
	}
out:
	close(l);
	if (err) {
		for (i = 0; i < n; i++) {
			if (cfd[i] >= 0)
				close(cfd[i]);
			if (sfd[i] >= 0)
				close(sfd[i]);
			cfd[i] = sfd[i] = -1;
		}
	}
	return err;
}

/* ---- the generator ---- */

struct cconn {
	int fd;
	int req;		/* plan index in flight, or -1 */
	uint32_t want;		/* bytes of the reply */
	uint32_t got;
	uint64_t sent_ns;
	struct sfb_hdr hdr;
};

struct client {
	const struct sfb_fileset *fs;
	const struct sfb_plan *p;
	struct sfb_result *r;
	struct cconn *c;
	unsigned int nr_conns;
	unsigned int *freeq;	/* FIFO of idle connections */
	uint8_t *queued;	/* open loop: waited for a connection */
	unsigned int fq_head, fq_len;
	uint64_t t0;
};

static void cl_error(struct client *cl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void cl_error(struct client *cl, const char *fmt, ...)
{
	va_list ap;

	if (cl->r->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(cl->r->err, sizeof(cl->r->err), fmt, ap);
	va_end(ap);
}

static void free_push(struct client *cl, unsigned int i)
{
	cl->freeq[(cl->fq_head + cl->fq_len++) % cl->nr_conns] = i;
}

static unsigned int free_pop(struct client *cl)
{
	unsigned int i = cl->freeq[cl->fq_head];

	cl->fq_head = (cl->fq_head + 1) % cl->nr_conns;
	cl->fq_len--;
	return i;
}

static int send_req(struct client *cl, unsigned int ci, unsigned int req)
{
	struct cconn *c = &cl->c[ci];
	struct sfb_req rq = {
		.magic = SFB_REQ_MAGIC,
		.file = cl->p->file[req],
		.seq = req,
	};
	ssize_t n;

	c->req = (int)req;
	c->want = cl->fs->files[rq.file].size;
	c->got = 0;
	c->sent_ns = sfb_now_ns();
	n = send(c->fd, &rq, sizeof(rq), MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n != (ssize_t)sizeof(rq)) {
		cl_error(cl, "send request %u: %s", req,
			 n < 0 ? strerror(errno) : "short");
		return -1;
	}
	return 0;
}

/* Read what there is on connection ci; 1 when its reply is complete. */
static int read_reply(struct client *cl, unsigned int ci)
{
	static char sink[1 << 16];
	struct cconn *c = &cl->c[ci];

	if (c->req < 0) {
		char b;
		ssize_t n = recv(c->fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);

		if (n < 0 && errno == EAGAIN)
			return 0;
		cl_error(cl, "connection %u: %s with no request in flight",
			 ci, n > 0 ? "data" : n == 0 ? "EOF" : strerror(errno));
		return -1;
	}
	while (c->got < c->want) {
		uint32_t left = c->want - c->got;
		ssize_t n;

		if (c->got < sizeof(c->hdr)) {
			n = recv(c->fd, (char *)&c->hdr + c->got,
				 sizeof(c->hdr) - c->got, MSG_DONTWAIT);
		} else {
			/* Discard in the kernel: sink is never written. */
			n = recv(c->fd, sink, left < sizeof(sink) ? left :
				 sizeof(sink), MSG_DONTWAIT | MSG_TRUNC);
		}
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			cl_error(cl, "request %d (file %u): %s after %u of %u "
				 "bytes", c->req, cl->p->file[c->req],
				 n ? strerror(errno) : "EOF", c->got, c->want);
			return -1;
		}
		c->got += (uint32_t)n;
	}
	if (c->hdr.magic != SFB_FILE_MAGIC ||
	    c->hdr.file != cl->p->file[c->req] || c->hdr.size != c->want ||
	    c->hdr.check != sfb_hdr_check(c->hdr.file, c->hdr.size)) {
		cl_error(cl, "request %d: reply is not file %u (header says "
			 "file %u, %u bytes)", c->req, cl->p->file[c->req],
			 c->hdr.file, c->hdr.size);
		return -1;
	}
	return 1;
}

int sfb_client_run(const struct sfb_fileset *fs, const int *fds,
		   unsigned int nr_conns, const struct sfb_plan *p,
		   struct sfb_result *r, uint64_t timeout_ns)
{
	struct client cl = { .fs = fs, .p = p, .r = r, .nr_conns = nr_conns };
	struct epoll_event *ev;
	unsigned int i, next = 0, done = 0, late = 0;
	uint64_t cpu0 = sfb_thread_cpu_ns(), last = 0, deadline;
	int ep, ret = -1;

	memset(r->lat_ns, 0, (size_t)p->nr * sizeof(*r->lat_ns));
	if (r->late_ns)
		memset(r->late_ns, 0, (size_t)p->nr * sizeof(*r->late_ns));
	r->nr = p->nr;
	r->bytes = 0;
	r->queued = 0;
	r->err[0] = '\0';
	cl.c = calloc(nr_conns, sizeof(*cl.c));
	cl.queued = calloc(p->nr, 1);
	cl.freeq = calloc(nr_conns, sizeof(*cl.freeq));
	ev = calloc(nr_conns, sizeof(*ev));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!cl.c || !cl.freeq || !cl.queued || !ev || ep < 0) {
		cl_error(&cl, "client setup: %s", strerror(errno));
		goto out;
	}
	for (i = 0; i < nr_conns; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = i };

		cl.c[i].fd = fds[i];
		cl.c[i].req = -1;
		free_push(&cl, i);
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e) < 0) {
			cl_error(&cl, "epoll_ctl: %s", strerror(errno));
			goto out;
		}
	}

	cl.t0 = sfb_now_ns();
	deadline = cl.t0 + timeout_ns;
	while (done < p->nr) {
		uint64_t now = sfb_now_ns();
		struct timespec ts, *tsp = NULL;
		int n;

		while (next < p->nr && cl.fq_len &&
		       (!p->at_ns || cl.t0 + p->at_ns[next] <= now)) {
			if (send_req(&cl, free_pop(&cl), next))
				goto out;
			next++;
		}
		/*
		 * Due, but every connection is busy: the server is behind.
		 * Requests up to late have been looked at; each is counted
		 * at most once.
		 */
		if (p->at_ns) {
			if (late < next)
				late = next;
			while (!cl.fq_len && late < p->nr &&
			       cl.t0 + p->at_ns[late] <= now) {
				r->queued++;
				cl.queued[late++] = 1;
			}
		}
		if (now >= deadline) {
			cl_error(&cl, "timeout: %u of %u replies in after %.1f "
				 "s (server stalled?)", done, p->nr,
				 (double)(now - cl.t0) / 1e9);
			goto out;
		}
		/* Sleep until the next arrival, a reply or the deadline. */
		{
			uint64_t until = deadline;

			if (p->at_ns && next < p->nr && cl.fq_len &&
			    cl.t0 + p->at_ns[next] < until)
				until = cl.t0 + p->at_ns[next];
			until = until > now ? until - now : 0;
			ts.tv_sec = (time_t)(until / 1000000000ULL);
			ts.tv_nsec = (long)(until % 1000000000ULL);
			tsp = &ts;
		}
		n = epoll_pwait2(ep, ev, (int)nr_conns, tsp, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			cl_error(&cl, "epoll_pwait2: %s", strerror(errno));
			goto out;
		}
		for (i = 0; i < (unsigned int)n; i++) {
			unsigned int ci = ev[i].data.u32;
			struct cconn *c = &cl.c[ci];
			int rr = read_reply(&cl, ci);

			if (rr < 0)
				goto out;
			if (!rr)
				continue;
			last = sfb_now_ns();
			if (p->at_ns && cl.queued[c->req]) {
				r->lat_ns[c->req] = last - cl.t0 -
						    p->at_ns[c->req];
			} else {
				r->lat_ns[c->req] = last - c->sent_ns;
			}
			if (p->at_ns && !cl.queued[c->req] && r->late_ns)
				r->late_ns[c->req] = c->sent_ns - cl.t0 -
						     p->at_ns[c->req];
			r->bytes += c->want;
			c->req = -1;
			done++;
			if (!p->at_ns && next < p->nr) {
				if (send_req(&cl, ci, next))
					goto out;
				next++;
			} else {
				free_push(&cl, ci);
			}
		}
	}
	r->wall_ns = last - cl.t0;
	ret = 0;
out:
	r->cpu_ns = sfb_thread_cpu_ns() - cpu0;
	if (ep >= 0)
		close(ep);
	free(ev);
	free(cl.freeq);
	free(cl.queued);
	free(cl.c);
	return ret;
}
