// SPDX-License-Identifier: GPL-2.0
/*
 * evq-echo: an echo load over many TCP connections on 127.0.0.1, in one
 * process with two threads, each a single-threaded event loop on its own
 * libevq queue (edge-triggered):
 *
 *   server  accepts (adding each accepted burst with one evq_ctl() batch)
 *           and echoes what it reads;
 *   client  opens -c connections in batches, then runs -n rounds: send a
 *           small message on every connection, wait for every echo.
 *
 * -b kmod|epoll|both picks libevq's backend; "both" runs the module, then
 * epoll, and prints the two side by side.  Figures are "name: value"
 * lines prefixed with the backend.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "libevq.h"

#define EXIT_SKIP	4
#define RING_ENTRIES	16384
#define HARVEST_MAX	256
#define ACCEPT_BATCH	256
#define MSG_MAX		1024
/* Ask for the most; the kernel caps it at net.core.somaxconn. */
#define LISTEN_BACKLOG	65535
/* No progress for this long is a hang, not a slow VM. */
#define STALL_NS	(20LL * 1000000000)
#define WAIT_NS		(200LL * 1000000)

#define TAG_LISTEN	(1ULL << 40)
#define TAG_STOP	((1ULL << 40) + 1)

struct opts {
	unsigned int conns;
	unsigned int rounds;
	unsigned int msg_len;
	unsigned int connect_batch;
	const char *backend;
};

static struct opts opt = {
	.conns = 10000,
	.rounds = 8,
	.msg_len = 32,
	.connect_batch = 256,
	.backend = "both",
};

/* Loop counters; the other thread reads them, hence relaxed atomics. */
struct loop_stats {
	uint64_t events;	/* entries harvested */
	uint64_t harvests;	/* evq_harvest() calls that returned some */
	uint64_t waits;		/* evq_wait() calls */
};

#define STAT_INC(p, n) __atomic_store_n((p), *(p) + (n), __ATOMIC_RELAXED)
#define STAT_GET(p)    __atomic_load_n((p), __ATOMIC_RELAXED)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
	       1000000000ULL +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ULL;
}

/*
 * Harvest what is there; sleep (bounded, so callers can notice stalls
 * and stop requests) only when the ring is empty.  Returns the count,
 * 0 after an empty wait, or -errno.
 */
static int loop_next(struct evq *q, struct evq_cqe *cqe,
		     struct loop_stats *st)
{
	int n = evq_harvest(q, cqe, HARVEST_MAX);

	if (n > 0) {
		STAT_INC(&st->events, (uint64_t)n);
		STAT_INC(&st->harvests, 1);
		return n;
	}
	if (n < 0)
		return n;
	STAT_INC(&st->waits, 1);
	n = evq_wait(q, 1, WAIT_NS);
	return n < 0 && n != -EINTR ? n : 0;
}

/* ---- server ---- */

struct server {
	struct evq q;
	int lfd;
	int stop_rfd;
	unsigned int accepted;	/* read by the client: atomics */
	unsigned int open;
	unsigned char *live;	/* [fd]: accepted, not closed */
	unsigned int live_max;
	bool stopping;
	int err;
	struct loop_stats st;
};

/*
 * Accept until the backlog is empty and watch the new connections with
 * one batch per ACCEPT_BATCH: the listening socket is edge-triggered, so
 * everything queued must be taken now.
 */
static int srv_accept(struct server *s)
{
	struct evq_ctl v[ACCEPT_BATCH];
	unsigned int n, i;
	int fd, ret, err = 0;

	for (;;) {
		memset(v, 0, sizeof(v));
		for (n = 0; n < ACCEPT_BATCH; n++) {
			fd = accept4(s->lfd, NULL, NULL,
				     SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd < 0) {
				err = errno;
				break;
			}
			v[n].op = EVQ_CTL_ADD;
			v[n].fd = fd;
			v[n].events = EPOLLIN | EPOLLRDHUP;
			v[n].flags = EVQ_WATCH_EDGE;
			v[n].user_data = (uint64_t)fd;
		}
		if (n) {
			ret = evq_ctl(&s->q, v, n);
			if (ret != (int)n) {
				fprintf(stderr, "evq-echo: server evq_ctl: %s\n",
					strerror(ret < 0 ? -ret : EIO));
				return -1;
			}
			for (i = 0; i < n; i++) {
				if (v[i].res) {
					fprintf(stderr, "evq-echo: server add "
						"fd %d: %s\n", v[i].fd,
						strerror(-v[i].res));
					return -1;
				}
			}
			for (i = 0; i < n; i++)
				if ((unsigned int)v[i].fd < s->live_max)
					s->live[v[i].fd] = 1;
			s->open += n;
			__atomic_add_fetch(&s->accepted, n, __ATOMIC_RELEASE);
		}
		if (n < ACCEPT_BATCH)
			break;
	}
	if (err == EAGAIN || err == ECONNABORTED || err == EINTR)
		return 0;
	fprintf(stderr, "evq-echo: accept: %s\n", strerror(err));
	return -1;
}

static void srv_close(struct server *s, int fd)
{
	if ((unsigned int)fd < s->live_max)
		s->live[fd] = 0;
	evq_unwatch_close(&s->q, fd);
	s->open--;
}

/*
 * Connections the server never saw end: show what poll() says of them,
 * so a missing event can be told from a peer that never closed.
 */
static void srv_report_open(struct server *s)
{
	unsigned int fd, shown = 0;
	struct pollfd p;

	for (fd = 0; fd < s->live_max && shown < 8; fd++) {
		if (!s->live[fd])
			continue;
		p.fd = (int)fd;
		p.events = POLLIN | POLLRDHUP;
		p.revents = 0;
		poll(&p, 1, 0);
		fprintf(stderr, "evq-echo: server: fd %u still open, poll() "
			"revents %#x\n", fd, (unsigned int)p.revents);
		shown++;
	}
}

/* Write everything back; messages are small, so a full buffer is a bug. */
static int echo_back(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Edge-triggered: read until the socket is drained.  A short read means
 * it was empty at that moment, and anything arriving later brings a new
 * entry, so no extra read for EAGAIN is needed unless the peer hung up
 * (then read on to the end of the stream).
 */
static void srv_conn(struct server *s, int fd, uint32_t res)
{
	bool hup = res & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			if (echo_back(fd, buf, (size_t)n)) {
				srv_close(s, fd);
				return;
			}
			if ((size_t)n < sizeof(buf) && !hup)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		/* End of stream or reset: the client is done with it. */
		srv_close(s, fd);
		return;
	}
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	struct evq_cqe cqe[HARVEST_MAX];
	uint64_t idle_since = 0;
	char c;
	int i, n;

	while (!(s->stopping && !s->open)) {
		n = loop_next(&s->q, cqe, &s->st);
		if (n < 0) {
			fprintf(stderr, "evq-echo: server: %s\n", strerror(-n));
			goto fail;
		}
		if (!n) {
			/* Stopping, yet connections stay open: report it. */
			if (!s->stopping)
				continue;
			if (!idle_since)
				idle_since = now_ns();
			if (now_ns() - idle_since > STALL_NS) {
				fprintf(stderr, "evq-echo: server: %u "
					"connections never closed\n", s->open);
				srv_report_open(s);
				goto fail;
			}
			continue;
		}
		idle_since = 0;
		for (i = 0; i < n; i++) {
			uint64_t ud = cqe[i].user_data;

			if ((cqe[i].flags & EVQ_CQE_TYPE_MASK) != EVQ_CQE_READY)
				continue;
			if (ud == TAG_LISTEN) {
				if (srv_accept(s))
					goto fail;
			} else if (ud == TAG_STOP) {
				if (read(s->stop_rfd, &c, 1) == 1)
					s->stopping = true;
			} else if (ud < s->live_max && s->live[ud]) {
				srv_conn(s, (int)ud, (uint32_t)cqe[i].res);
			}
			/*
			 * Else a stale entry: it was in the ring when its
			 * connection was closed (a reset wakes the socket
			 * more than once).
			 */
		}
	}
	return NULL;
fail:
	s->err = -1;
	return NULL;
}

static int listen_socket(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0 ||
	    getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- client ---- */

struct client {
	struct evq q;
	struct sockaddr_in addr;
	struct server *srv;
	int *fd;
	unsigned int *got;	/* bytes of this round's echo so far */
	bool *done;
	unsigned int nr;	/* connections open */
	struct loop_stats st;
};

static int cli_add_batch(struct client *c, unsigned int first,
			 unsigned int n, uint32_t op, uint32_t events)
{
	struct evq_ctl *v = calloc(n, sizeof(*v));
	unsigned int i;
	int ret = 0;

	if (!v)
		return -1;
	for (i = 0; i < n; i++) {
		v[i].op = op;
		v[i].fd = c->fd[first + i];
		v[i].events = events;
		v[i].flags = EVQ_WATCH_EDGE;
		v[i].user_data = first + i;
	}
	ret = evq_ctl(&c->q, v, n);
	if (ret == (int)n) {
		ret = 0;
		for (i = 0; !ret && i < n; i++)
			ret = v[i].res;
	} else if (ret >= 0) {
		ret = -EIO;
	}
	if (ret)
		fprintf(stderr, "evq-echo: client evq_ctl of %u: %s\n", n,
			strerror(-ret));
	free(v);
	return ret;
}

/* Wait until the server has accepted at least want connections. */
static int cli_wait_accepted(struct client *c, unsigned int want)
{
	uint64_t start = now_ns();
	struct timespec ms = { 0, 1000000 };

	while (__atomic_load_n(&c->srv->accepted, __ATOMIC_ACQUIRE) < want) {
		if (c->srv->err || now_ns() - start > STALL_NS) {
			fprintf(stderr, "evq-echo: server accepted %u of %u\n",
				c->srv->accepted, want);
			return -1;
		}
		nanosleep(&ms, NULL);
	}
	return 0;
}

/* Start n non-blocking connects; completion shows up as EPOLLOUT. */
static int cli_connect_start(struct client *c, unsigned int first,
			     unsigned int n)
{
	unsigned int i;
	int fd, one = 1;

	for (i = first; i < first + n; i++) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    0);
		if (fd < 0) {
			perror("evq-echo: socket");
			return -1;
		}
		c->fd[i] = fd;
		c->nr++;
		/* One small message at a time: do not let Nagle hold it. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, (struct sockaddr *)&c->addr,
			    sizeof(c->addr)) < 0 && errno != EINPROGRESS) {
			perror("evq-echo: connect");
			return -1;
		}
		c->done[i] = false;
	}
	return cli_add_batch(c, first, n, EVQ_CTL_ADD, EPOLLOUT);
}

static int cli_connect_finish(struct client *c, unsigned int pending)
{
	struct evq_cqe cqe[HARVEST_MAX];
	uint64_t last = now_ns();
	socklen_t len;
	int i, n, err;

	while (pending) {
		n = loop_next(&c->q, cqe, &c->st);
		if (n < 0)
			return -1;
		if (!n) {
			if (now_ns() - last > STALL_NS) {
				fprintf(stderr, "evq-echo: %u connects "
					"stalled\n", pending);
				return -1;
			}
			continue;
		}
		last = now_ns();
		for (i = 0; i < n; i++) {
			uint64_t idx = cqe[i].user_data;

			if (idx >= c->nr || c->done[idx])
				continue;
			len = sizeof(err);
			if (getsockopt(c->fd[idx], SOL_SOCKET, SO_ERROR, &err,
				       &len) < 0 || err) {
				fprintf(stderr, "evq-echo: connect: %s\n",
					strerror(err ? err : errno));
				return -1;
			}
			c->done[idx] = true;
			pending--;
		}
	}
	return 0;
}

/*
 * Connect in batches, keeping the server's accept queue short: a full
 * backlog drops SYNs and costs a 1 s retransmit each, which under TCG
 * would dominate the run.
 */
static int cli_connect_all(struct client *c)
{
	unsigned int first, n, lag = opt.connect_batch * 4;

	for (first = 0; first < opt.conns; first += n) {
		n = opt.conns - first;
		if (n > opt.connect_batch)
			n = opt.connect_batch;
		if (cli_connect_start(c, first, n) ||
		    cli_connect_finish(c, n))
			return -1;
		if (first + n > lag && cli_wait_accepted(c, first + n - lag))
			return -1;
	}
	if (cli_wait_accepted(c, opt.conns))
		return -1;
	/* Connected: from now on only echoes matter.  One batch for all. */
	return cli_add_batch(c, 0, opt.conns, EVQ_CTL_MOD,
			     EPOLLIN | EPOLLRDHUP);
}

static void msg_fill(char *m, unsigned int round, unsigned int idx)
{
	unsigned int i;

	memcpy(m, &round, 4);
	memcpy(m + 4, &idx, 4);
	for (i = 8; i < opt.msg_len; i++)
		m[i] = (char)('a' + (i + round + idx) % 26);
}

/* Read this connection's echo; returns 1 when complete, -1 on error. */
static int cli_read(struct client *c, unsigned int idx, unsigned int round)
{
	char want[MSG_MAX], buf[MSG_MAX];
	unsigned int need;
	ssize_t n;

	need = opt.msg_len - c->got[idx];
	n = read(c->fd[idx], buf, need);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n <= 0) {
		fprintf(stderr, "evq-echo: connection %u: %s\n", idx,
			n ? strerror(errno) : "closed by the server");
		return -1;
	}
	msg_fill(want, round, idx);
	if (memcmp(buf, want + c->got[idx], (size_t)n)) {
		fprintf(stderr, "evq-echo: connection %u: wrong echo\n", idx);
		return -1;
	}
	c->got[idx] += (unsigned int)n;
	return c->got[idx] == opt.msg_len;
}

static int cli_round(struct client *c, unsigned int round)
{
	struct evq_cqe cqe[HARVEST_MAX];
	unsigned int i, left = opt.conns;
	char m[MSG_MAX];
	uint64_t last;
	int j, n, r;

	for (i = 0; i < opt.conns; i++) {
		msg_fill(m, round, i);
		c->got[i] = 0;
		if (write(c->fd[i], m, opt.msg_len) != (ssize_t)opt.msg_len) {
			fprintf(stderr, "evq-echo: send on %u: %s\n", i,
				strerror(errno));
			return -1;
		}
	}
	last = now_ns();
	while (left) {
		n = loop_next(&c->q, cqe, &c->st);
		if (n < 0)
			return -1;
		if (!n) {
			if (c->srv->err || now_ns() - last > STALL_NS) {
				fprintf(stderr, "evq-echo: round %u: %u echoes "
					"missing\n", round, left);
				return -1;
			}
			continue;
		}
		last = now_ns();
		for (j = 0; j < n; j++) {
			uint64_t idx = cqe[j].user_data;

			if (idx >= opt.conns || c->got[idx] == opt.msg_len)
				continue;
			r = cli_read(c, (unsigned int)idx, round);
			if (r < 0)
				return -1;
			left -= (unsigned int)r;
		}
	}
	return 0;
}

/*
 * Reset rather than FIN: a load generator that leaves thousands of
 * TIME_WAIT sockets behind runs out of ephemeral ports on the next run.
 */
static void cli_close_all(struct client *c)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	unsigned int i, bad = 0;
	int err, first = 0;

	for (i = 0; i < c->nr; i++) {
		setsockopt(c->fd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		err = evq_unwatch_close(&c->q, c->fd[i]);
		if (err && !bad++)
			first = err;
	}
	if (bad)
		fprintf(stderr, "evq-echo: client: %u unwatch/close failed, "
			"first: %s\n", bad, strerror(-first));
	c->nr = 0;
}

/* ---- one run ---- */

struct result {
	const char *backend;
	unsigned int conns;
	uint64_t msgs;
	double connect_s;
	double msgs_per_s;
	double cpu_ns_per_msg;
	double events_per_harvest;
	double events_per_wait;
	double waits_per_msg;
};

struct phase {
	uint64_t wall, cpu;
	struct loop_stats cli, srv;
};

static void phase_mark(struct phase *p, struct client *c, struct server *s)
{
	p->wall = now_ns();
	p->cpu = cpu_ns();
	p->cli = c->st;
	p->srv.events = STAT_GET(&s->st.events);
	p->srv.harvests = STAT_GET(&s->st.harvests);
	p->srv.waits = STAT_GET(&s->st.waits);
}

static void result_of(const struct phase *a, const struct phase *b,
		      struct result *r)
{
	uint64_t ev, hv, wt;

	ev = b->cli.events - a->cli.events + b->srv.events - a->srv.events;
	hv = b->cli.harvests - a->cli.harvests +
	     b->srv.harvests - a->srv.harvests;
	wt = b->cli.waits - a->cli.waits + b->srv.waits - a->srv.waits;
	r->msgs = (uint64_t)opt.conns * opt.rounds;
	r->msgs_per_s = (double)r->msgs * 1e9 / (double)(b->wall - a->wall);
	r->cpu_ns_per_msg = (double)(b->cpu - a->cpu) / (double)r->msgs;
	r->events_per_harvest = hv ? (double)ev / (double)hv : 0;
	r->events_per_wait = wt ? (double)ev / (double)wt : 0;
	r->waits_per_msg = (double)wt / (double)r->msgs;
}

static int server_setup(struct server *s, unsigned int flags,
			struct sockaddr_in *addr, int stop_rfd)
{
	int ret;

	memset(s, 0, sizeof(*s));
	/* Not open yet: keep the error path from closing fd 0. */
	s->q.fd = -1;
	s->live_max = opt.conns * 2 + 256;
	s->live = calloc(s->live_max, 1);
	if (!s->live)
		return -ENOMEM;
	s->stop_rfd = stop_rfd;
	s->lfd = listen_socket(addr);
	if (s->lfd < 0) {
		perror("evq-echo: listen");
		return -1;
	}
	ret = evq_open(&s->q, RING_ENTRIES, flags);
	if (!ret)
		ret = evq_add(&s->q, s->lfd, EPOLLIN, EVQ_WATCH_EDGE,
			      TAG_LISTEN);
	if (!ret)
		ret = evq_add(&s->q, stop_rfd, EPOLLIN, EVQ_WATCH_EDGE,
			      TAG_STOP);
	if (ret) {
		fprintf(stderr, "evq-echo: server queue: %s\n", strerror(-ret));
		return ret;
	}
	return 0;
}

static int client_setup(struct client *c, unsigned int flags)
{
	int ret;

	c->fd = calloc(opt.conns, sizeof(*c->fd));
	c->got = calloc(opt.conns, sizeof(*c->got));
	c->done = calloc(opt.conns, sizeof(*c->done));
	if (!c->fd || !c->got || !c->done)
		return -ENOMEM;
	ret = evq_open(&c->q, RING_ENTRIES, flags);
	if (ret)
		fprintf(stderr, "evq-echo: client queue: %s\n", strerror(-ret));
	return ret;
}

static int client_run(struct client *c, struct server *s, struct result *r)
{
	struct phase a, b;
	uint64_t t0 = now_ns();
	unsigned int i;

	if (cli_connect_all(c))
		return -1;
	r->conns = c->nr;
	r->connect_s = (double)(now_ns() - t0) / 1e9;
	phase_mark(&a, c, s);
	for (i = 0; i < opt.rounds; i++)
		if (cli_round(c, i))
			return -1;
	phase_mark(&b, c, s);
	result_of(&a, &b, r);
	return 0;
}

static int run_backend(const char *name, struct result *r)
{
	unsigned int flags = strcmp(name, "kmod") ? EVQ_OPEN_EPOLL :
						     EVQ_OPEN_KMOD;
	struct server s;
	struct client c;
	pthread_t th;
	int stop[2], ret;

	memset(&c, 0, sizeof(c));
	c.q.fd = -1;
	memset(r, 0, sizeof(*r));
	r->backend = name;
	if (pipe2(stop, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	ret = server_setup(&s, flags, &c.addr, stop[0]);
	if (ret)
		goto out_srv;
	c.srv = &s;
	ret = client_setup(&c, flags);
	if (ret)
		goto out_srv;
	ret = pthread_create(&th, NULL, server_main, &s);
	if (ret) {
		ret = -ret;
		goto out_cli;
	}

	ret = client_run(&c, &s, r);
	cli_close_all(&c);
	if (write(stop[1], "x", 1) != 1)
		ret = -1;
	pthread_join(th, NULL);
	if (s.err)
		ret = -1;
out_cli:
	evq_close(&c.q);
	free(c.fd);
	free(c.got);
	free(c.done);
out_srv:
	free(s.live);
	evq_close(&s.q);
	if (s.lfd >= 0)
		close(s.lfd);
	close(stop[0]);
	close(stop[1]);
	return ret;
}

/* ---- output ---- */

static void print_result(const struct result *r)
{
	const char *b = r->backend;

	printf("%s_backend: %s\n", b, b);
	printf("%s_connections: %u\n", b, r->conns);
	printf("%s_connect_seconds: %.2f\n", b, r->connect_s);
	printf("%s_messages_echoed: %" PRIu64 "\n", b, r->msgs);
	printf("%s_messages_per_sec: %.0f\n", b, r->msgs_per_s);
	printf("%s_events_per_harvest: %.2f\n", b, r->events_per_harvest);
	printf("%s_events_per_wait: %.2f\n", b, r->events_per_wait);
	printf("%s_waits_per_message: %.4f\n", b, r->waits_per_msg);
	printf("%s_cpu_ns_per_message: %.0f\n", b, r->cpu_ns_per_msg);
	fflush(stdout);
}

static void print_side_by_side(const struct result *k, const struct result *e)
{
	printf("# %-22s %14s %14s\n", "figure", "kmod", "epoll");
	printf("# %-22s %14u %14u\n", "connections", k->conns, e->conns);
	printf("# %-22s %14" PRIu64 " %14" PRIu64 "\n", "messages_echoed",
	       k->msgs, e->msgs);
	printf("# %-22s %14.0f %14.0f\n", "messages_per_sec",
	       k->msgs_per_s, e->msgs_per_s);
	printf("# %-22s %14.2f %14.2f\n", "events_per_harvest",
	       k->events_per_harvest, e->events_per_harvest);
	printf("# %-22s %14.2f %14.2f\n", "events_per_wait",
	       k->events_per_wait, e->events_per_wait);
	printf("# %-22s %14.4f %14.4f\n", "waits_per_message",
	       k->waits_per_msg, e->waits_per_msg);
	printf("# %-22s %14.0f %14.0f\n", "cpu_ns_per_message",
	       k->cpu_ns_per_msg, e->cpu_ns_per_msg);
	printf("kmod_vs_epoll_cpu_per_message_ratio: %.3f\n",
	       k->cpu_ns_per_msg / e->cpu_ns_per_msg);
	printf("kmod_vs_epoll_messages_per_sec_ratio: %.3f\n",
	       k->msgs_per_s / e->msgs_per_s);
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: evq-echo [-b kmod|epoll|both] [-c CONNS] [-n ROUNDS] [-s BYTES]\n"
"                [-B BATCH]\n"
"  -b   libevq backend (default both: kmod, then epoll)\n"
"  -c   connections (default 10000)\n"
"  -n   rounds: one message per connection each (default 8)\n"
"  -s   message size, 8..%d bytes (default 32)\n"
"  -B   connects in flight at once (default 256)\n"
"exit: 0 done, 1 error, 2 usage, 4 skipped (-b kmod without /dev/evq)\n",
		MSG_MAX);
}

static unsigned int parse_uint(const char *s, unsigned int min,
			       unsigned int max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max) {
		fprintf(stderr, "evq-echo: bad number '%s' (%u..%u)\n", s, min,
			max);
		exit(2);
	}
	return (unsigned int)v;
}

static void parse_opts(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "b:c:n:s:B:h")) != -1) {
		switch (c) {
		case 'b': opt.backend = optarg; break;
		case 'c': opt.conns = parse_uint(optarg, 1, 1000000); break;
		case 'n': opt.rounds = parse_uint(optarg, 1, 1000000); break;
		case 's': opt.msg_len = parse_uint(optarg, 8, MSG_MAX); break;
		case 'B': opt.connect_batch = parse_uint(optarg, 1, 4096); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc || (strcmp(opt.backend, "kmod") &&
			       strcmp(opt.backend, "epoll") &&
			       strcmp(opt.backend, "both"))) {
		usage(stderr);
		exit(2);
	}
}

/* Both ends of every connection live here, plus queues and stdio. */
static int raise_nofile(unsigned int need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (rl.rlim_cur >= need)
		return 0;
	rl.rlim_cur = need;
	if (rl.rlim_max < need)
		rl.rlim_max = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		fprintf(stderr, "evq-echo: RLIMIT_NOFILE to %u: %s (hard "
			"limit too low without privilege: try a smaller -c)\n",
			need, strerror(errno));
		return -1;
	}
	return 0;
}

static bool have_kmod(void)
{
	struct evq q;

	if (evq_open(&q, 1, EVQ_OPEN_KMOD))
		return false;
	evq_close(&q);
	return true;
}

int main(int argc, char **argv)
{
	struct result k, e;
	bool do_kmod, do_epoll;

	parse_opts(argc, argv);
	if (raise_nofile(opt.conns * 2 + 64))
		return 1;
	do_kmod = strcmp(opt.backend, "epoll");
	do_epoll = strcmp(opt.backend, "kmod");
	if (do_kmod && !have_kmod()) {
		fprintf(stderr, "evq-echo: /dev/evq absent (evq.ko not "
			"loaded): kmod backend skipped\n");
		if (!do_epoll)
			return EXIT_SKIP;
		do_kmod = false;
	}

	printf("connections_wanted: %u\nrounds: %u\nmessage_bytes: %u\n",
	       opt.conns, opt.rounds, opt.msg_len);
	if (do_kmod) {
		if (run_backend("kmod", &k))
			return 1;
		print_result(&k);
	}
	if (do_epoll) {
		if (run_backend("epoll", &e))
			return 1;
		print_result(&e);
	}
	if (do_kmod && do_epoll)
		print_side_by_side(&k, &e);
	return 0;
}
