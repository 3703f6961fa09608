// SPDX-License-Identifier: GPL-2.0
/*
 * The Prometheus endpoint: a small HTTP/1.1 server on metrics_listen,
 * run by worker 0's event loop.  Each GET /metrics gathers the figures
 * from every worker with the control request XSTATS uses (each worker
 * reads its own state on its own thread; none waits for another), and
 * answers once the last worker has, in the text format of dd_prom.c.
 *
 * One request per connection (Connection: close), a deadline for the
 * whole exchange, and a bound on the clients at once: the endpoint is for
 * a scraper on loopback, and must not cost the delivery loop much
 * whatever a client does.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dd_core.h"
#include "dd_log.h"

#define DD_HTTP_CLIENTS		8	/* at once; more get 503 */
#define DD_HTTP_TIMEOUT_NS	(10 * 1000000000ULL)	/* accept to answer sent */
#define DD_HTTP_LINGER_NS	(2 * 1000000000ULL)	/* for the client's close */

enum http_state {
	H_READ,		/* reading the request */
	H_WAIT,		/* the workers are gathering the figures */
	H_WRITE,	/* sending the answer */
	H_LINGER,	/* answer sent and our side shut: wait for theirs */
};

struct dd_http {
	struct dd_io io;		/* first: user_data points here */
	struct dd_worker *w;
	struct dd_http *next;		/* all clients until freed */
	struct dd_timer timer;
	uint8_t state;			/* enum http_state */
	bool closed;			/* fd closed; freed once not H_WAIT */
	char *out;
	size_t outlen, outoff;
	size_t inlen;
	char in[DD_HTTP_REQ_MAX];
};

static struct dd_io listen_io = { .fd = -1, .kind = DD_IO_HTTP };
static unsigned int nclients;		/* open; worker 0 only */
/*
 * Every client until freed, open, closing or buried: so a daemon stopped
 * while one is still connected has not lost track of it.
 */
static struct dd_http *clients;

static bool loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(
			&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >>
		24) == 127;
}

int dd_metrics_open(void)
{
	const struct sockaddr_storage *ss = &dd_d.conf.metrics_addr;
	socklen_t len = ss->ss_family == AF_INET6 ?
			sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	char name[80];
	int fd, one = 1, err;

	if (ss->ss_family == AF_UNSPEC)
		return 0;
	dd_sockaddr_name(ss, name, sizeof(name));
	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0) {
		err = -errno;
		dd_err("metrics_listen %s: %s", name, strerror(errno));
		return err;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, len) || listen(fd, 64)) {
		err = -errno;
		dd_err("metrics_listen %s: %s", name, strerror(errno));
		close(fd);
		return err;
	}
	listen_io.fd = fd;
	err = dd_worker_watch(&dd_d.w[0], &listen_io, EPOLLIN);
	if (err) {
		dd_err("metrics_listen %s: cannot watch: %s", name,
		       strerror(-err));
		close(fd);
		listen_io.fd = -1;
		return err;
	}
	if (!loopback(ss))
		dd_warn("metrics_listen %s is not a loopback address: anyone "
			"who reaches it reads the figures", name);
	dd_info("metrics on http://%s%s", name, DD_HTTP_PATH);
	return 0;
}

static void http_close(struct dd_http *h)
{
	if (h->closed)
		return;
	dd_timer_del(h->w, &h->timer);
	dd_worker_unwatch(h->w, &h->io);
	close(h->io.fd);
	h->closed = true;
	nclients--;
	/* A request the workers still answer names h: it frees h then. */
	if (h->state != H_WAIT)
		dd_bury(h->w, &h->io);
}

void dd_http_free(struct dd_io *io)
{
	struct dd_http *h = (struct dd_http *)io, **p;

	for (p = &clients; *p; p = &(*p)->next) {
		if (*p == h) {
			*p = h->next;
			break;
		}
	}
	free(h->out);
	free(h);
}

static void http_timeout(struct dd_worker *w, struct dd_timer *t)
{
	struct dd_http *h = (struct dd_http *)((char *)t -
					       offsetof(struct dd_http, timer));

	(void)w;
	if (h->state != H_LINGER)
		dd_debug("metrics client: no request or answer within %llu s: "
			 "closed", DD_HTTP_TIMEOUT_NS / 1000000000ULL);
	http_close(h);
}

/* Read until the client closes (the answer is out); then close. */
static void http_drain(struct dd_http *h)
{
	char buf[1024];

	for (;;) {
		ssize_t n = recv(h->io.fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		http_close(h);
		return;
	}
}

static void http_write(struct dd_http *h)
{
	while (h->outoff < h->outlen) {
		ssize_t n = send(h->io.fd, h->out + h->outoff,
				 h->outlen - h->outoff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				http_close(h);
			return;		/* EAGAIN: EPOLLOUT resumes */
		}
		h->outoff += (size_t)n;
	}
	free(h->out);
	h->out = NULL;
	/*
	 * Shut our side and read what the client still sends until it
	 * closes: closing with unread bytes would reset the connection and
	 * could destroy the answer before the client read it.
	 */
	shutdown(h->io.fd, SHUT_WR);
	h->state = H_LINGER;
	dd_timer_set(h->w, &h->timer, dd_mono_ns() + DD_HTTP_LINGER_NS);
	http_drain(h);
}

static void http_answer(struct dd_http *h, int status, const char *type,
			const char *body, size_t len)
{
	struct dd_buf b = DD_BUF_INIT;

	if (dd_buf_addf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
			"Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
			status, dd_http_reason(status), type, len,
			status == 405 ? "Allow: GET\r\n" : "") ||
	    dd_buf_add(&b, body, len)) {
		dd_buf_free(&b);
		http_close(h);
		return;
	}
	h->out = dd_buf_detach(&b, &h->outlen);
	h->outoff = 0;
	h->state = H_WRITE;
	http_write(h);
}

static void http_error(struct dd_http *h, int status)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status,
			 dd_http_reason(status));

	http_answer(h, status, "text/plain; charset=utf-8", body, (size_t)n);
}

static void http_stats_done(struct dd_worker *w, struct dd_stats *st,
			    void *arg)
{
	struct dd_http *h = arg;
	struct dd_buf b = DD_BUF_INIT;

	if (h->closed) {
		/* Timed out while the workers answered. */
		dd_bury(w, &h->io);
		return;
	}
	h->state = H_WRITE;
	dd_top_sort(&st->top);
	if (dd_prom_format(&b, st)) {
		dd_buf_free(&b);
		http_error(h, 500);
		return;
	}
	http_answer(h, 200, "text/plain; version=0.0.4; charset=utf-8", b.p,
		    b.len);
	dd_buf_free(&b);
}

static void http_read(struct dd_http *h)
{
	bool eof = false;
	int status;

	while (h->inlen < sizeof(h->in)) {
		ssize_t n = recv(h->io.fd, h->in + h->inlen,
				 sizeof(h->in) - h->inlen, MSG_DONTWAIT);

		if (n > 0) {
			h->inlen += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			http_close(h);
			return;
		}
		eof = true;
		break;
	}
	status = dd_http_parse(h->in, h->inlen, sizeof(h->in));
	if (!status) {
		/* Gone before a whole request: nobody to answer. */
		if (eof)
			http_close(h);
		return;
	}
	if (status != 200) {
		dd_debug("metrics client: answered %d", status);
		http_error(h, status);
		return;
	}
	h->state = H_WAIT;
	if (dd_ctl_stats(h->w, http_stats_done, h)) {
		h->state = H_READ;
		http_error(h, 503);
	}
}

static void http_accept(struct dd_worker *w)
{
	static const char busy[] =
		"HTTP/1.1 503 Service Unavailable\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Length: 24\r\nConnection: close\r\n\r\n"
		"503 Service Unavailable\n";

	for (;;) {
		struct dd_http *h;
		int fd = accept4(listen_io.fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				dd_warn("metrics accept: %s", strerror(errno));
			return;
		}
		if (nclients >= DD_HTTP_CLIENTS) {
			/* Best effort, never waiting: the client is told why. */
			if (send(fd, busy, sizeof(busy) - 1,
				 MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				dd_debug("metrics: 503: %s", strerror(errno));
			shutdown(fd, SHUT_WR);
			close(fd);
			continue;
		}
		h = calloc(1, sizeof(*h));
		if (!h) {
			close(fd);
			continue;
		}
		h->io.fd = fd;
		h->io.kind = DD_IO_HTTP;
		h->w = w;
		h->state = H_READ;
		h->timer.fire = http_timeout;
		if (dd_worker_watch(w, &h->io,
				    EPOLLIN | EPOLLOUT | EPOLLRDHUP)) {
			dd_warn("cannot watch a metrics client");
			close(fd);
			free(h);
			continue;
		}
		nclients++;
		h->next = clients;
		clients = h;
		dd_timer_set(w, &h->timer, dd_mono_ns() + DD_HTTP_TIMEOUT_NS);
		http_read(h);
	}
}

void dd_http_event(struct dd_worker *w, struct dd_io *io, uint32_t events)
{
	struct dd_http *h = (struct dd_http *)io;

	(void)events;
	if (io == &listen_io) {
		http_accept(w);
		return;
	}
	if (h->closed)
		return;
	switch (h->state) {
	case H_READ:
		http_read(h);
		break;
	case H_WAIT:
		break;		/* anything more is read while lingering */
	case H_WRITE:
		http_write(h);
		break;
	case H_LINGER:
		http_drain(h);
		break;
	}
}
