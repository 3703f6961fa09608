// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Behaviour tests of libevq through its public API.  They run on whichever
 * backend evq_open() picks (EVQ_BACKEND=epoll|kmod chooses), so the same
 * binary checks the epoll fallback on the host and evq.ko in the VM; a
 * test that only means something on one backend SKIPs on the other.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "libevq.h"
#include "kselftest_harness.h"
#include "evq_test_util.h"

/*
 * The harness's ASSERT_*() expand to more than one statement: keep them
 * in braces when they are the body of an if, else or for.
 */

#define MS		1000000LL
#define SEC		(1000 * MS)
/* Long enough never to race on a loaded machine, short enough to fail. */
#define LONG_WAIT	(5 * SEC)
/* How long "nothing happens" is watched for. */
#define QUIET_WAIT	(100 * MS)

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static int open_q(struct evq *q, unsigned int entries)
{
	return evq_open(q, entries, 0);
}

static bool is_kmod(const struct evq *q)
{
	return q->backend == EVQ_BACKEND_KMOD;
}

/* Wait for at least one entry, then harvest up to max. */
static int get_events(struct evq *q, struct evq_cqe *out, unsigned int max,
		      int64_t timeout_ns)
{
	int ret = evq_wait(q, 1, timeout_ns);

	if (ret <= 0)
		return ret;
	return evq_harvest(q, out, max);
}

/* Nothing to harvest, even after a short wait. */
static bool quiet(struct evq *q)
{
	struct evq_cqe c[4];

	return evq_wait(q, 1, QUIET_WAIT) == 0 && evq_harvest(q, c, 4) == 0;
}

static int put(int fd)
{
	return write(fd, "x", 1) == 1 ? 0 : -errno;
}

static void drain(int fd)
{
	char buf[256];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static bool dev_evq_present(void)
{
	return access("/dev/evq", F_OK) == 0;
}

static int fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static int tcp_pair(int sv[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int l, c, s, one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(l, (struct sockaddr *)&a, &len) || listen(l, 1))
		goto fail_l;
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0)
		goto fail_l;
	if (connect(c, (struct sockaddr *)&a, sizeof(a)))
		goto fail_c;
	s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0)
		goto fail_c;
	/* Small writes must leave at once, not wait for an ACK. */
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	close(l);
	sv[0] = s;
	sv[1] = c;
	return 0;
fail_c:
	close(c);
fail_l:
	close(l);
	return -1;
}

/* ---------------------------------------------------------------------
 * Opening and closing
 */

TEST(open_close_basics)
{
	const char *env = getenv("EVQ_BACKEND");
	struct evq q;
	int fd;

	ASSERT_EQ(0, open_q(&q, 64));
	fd = evq_fd(&q);
	ASSERT_GE(fd, 0);
	/* The queue fd must not leak into exec'd children. */
	ASSERT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ASSERT_STREQ(is_kmod(&q) ? "kmod" : "epoll", evq_backend_name(&q));
	if (env && (!strcmp(env, "epoll") || !strcmp(env, "kmod"))) {
		ASSERT_STREQ(env, evq_backend_name(&q));
	}
	/* Both backends size the ring as a power of two. */
	ASSERT_EQ(64, q.ring_entries);
	evq_close(&q);
	ASSERT_FALSE(fd_open(fd));
}

TEST(open_rounds_entries_up)
{
	struct evq q;

	ASSERT_EQ(0, open_q(&q, 100));
	ASSERT_EQ(128, q.ring_entries);
	evq_close(&q);
	ASSERT_EQ(0, open_q(&q, 1));
	ASSERT_EQ(1, q.ring_entries);
	evq_close(&q);
}

TEST(open_rejects_bad_args)
{
	struct evq q;

	ASSERT_EQ(-EINVAL, evq_open(NULL, 64, 0));
	ASSERT_EQ(-EINVAL, evq_open(&q, 0, 0));
	ASSERT_EQ(-1, evq_fd(&q));
	ASSERT_EQ(-EINVAL, evq_open(&q, UINT_MAX, 0));
	ASSERT_EQ(-EINVAL, evq_open(&q, 64, EVQ_OPEN_KMOD | EVQ_OPEN_EPOLL));
	ASSERT_EQ(-EINVAL, evq_open(&q, 64, 1U << 7));
	/* A failed open leaves a queue evq_close() may safely be given. */
	evq_close(&q);
}

TEST(open_forced_epoll)
{
	struct evq q;

	/* The flag wins over the environment. */
	ASSERT_EQ(0, setenv("EVQ_BACKEND", "kmod", 1));
	ASSERT_EQ(0, evq_open(&q, 8, EVQ_OPEN_EPOLL));
	ASSERT_EQ(EVQ_BACKEND_EPOLL, q.backend);
	ASSERT_STREQ("epoll", evq_backend_name(&q));
	evq_close(&q);
}

TEST(open_forced_kmod)
{
	struct evq q;
	int ret;

	ASSERT_EQ(0, setenv("EVQ_BACKEND", "epoll", 1));
	ret = evq_open(&q, 8, EVQ_OPEN_KMOD);
	if (!dev_evq_present()) {
		ASSERT_EQ(-ENOENT, ret);
		return;
	}
	ASSERT_EQ(0, ret);
	ASSERT_STREQ("kmod", evq_backend_name(&q));
	evq_close(&q);
}

TEST(env_selects_backend)
{
	struct evq q;
	int ret;

	ASSERT_EQ(0, setenv("EVQ_BACKEND", "epoll", 1));
	ASSERT_EQ(0, evq_open(&q, 8, 0));
	ASSERT_STREQ("epoll", evq_backend_name(&q));
	evq_close(&q);

	/* kmod through the environment does not fall back either. */
	ASSERT_EQ(0, setenv("EVQ_BACKEND", "kmod", 1));
	ret = evq_open(&q, 8, 0);
	if (dev_evq_present()) {
		ASSERT_EQ(0, ret);
		ASSERT_STREQ("kmod", evq_backend_name(&q));
		evq_close(&q);
	} else {
		ASSERT_EQ(-ENOENT, ret);
	}

	ASSERT_EQ(0, setenv("EVQ_BACKEND", "bogus", 1));
	ASSERT_EQ(-EINVAL, evq_open(&q, 8, 0));
}

TEST(close_twice_is_harmless)
{
	struct evq q;
	int p[2];

	ASSERT_EQ(0, open_q(&q, 8));
	evq_close(&q);
	/* Likely reuses the queue's fd number: a second close must not. */
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	evq_close(&q);
	ASSERT_TRUE(fd_open(p[0]));
	ASSERT_TRUE(fd_open(p[1]));
	close(p[0]);
	close(p[1]);
}

TEST(queue_fd_is_pollable)
{
	struct pollfd pfd;
	struct evq q;
	int p[2];

	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC | O_NONBLOCK));
	ASSERT_EQ(0, evq_add(&q, p[0], EPOLLIN, EVQ_WATCH_EDGE, 7));
	pfd.fd = evq_fd(&q);
	pfd.events = POLLIN;
	ASSERT_EQ(0, poll(&pfd, 1, 0));
	ASSERT_EQ(0, put(p[1]));
	ASSERT_EQ(1, poll(&pfd, 1, LONG_WAIT / MS));
	ASSERT_TRUE(pfd.revents & POLLIN);
	close(p[0]);
	close(p[1]);
	evq_close(&q);
}

/* ---------------------------------------------------------------------
 * Changing watches
 */

static int ctl_entry(struct evq *q, uint32_t op, int fd, uint32_t events,
		     uint32_t flags, uint32_t resv)
{
	struct evq_ctl c = {
		.op = op, .fd = fd, .events = events, .flags = flags,
		.user_data = 1, .resv = resv,
	};
	int ret = evq_ctl(q, &c, 1);

	return ret == 1 ? c.res : (ret < 0 ? ret : -EIO);
}

TEST(ctl_rejects_malformed_entries)
{
	struct evq_ctl c = { .op = EVQ_CTL_ADD };
	struct evq q;
	int p[2];

	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ASSERT_EQ(-EINVAL, evq_ctl(&q, &c, 0));
	ASSERT_EQ(-EINVAL, ctl_entry(&q, 0, p[0], EPOLLIN, 0, 0));
	ASSERT_EQ(-EINVAL, ctl_entry(&q, 99, p[0], EPOLLIN, 0, 0));
	ASSERT_EQ(-EINVAL,
		  ctl_entry(&q, EVQ_CTL_ADD, p[0], EPOLLIN, 1U << 9, 0));
	ASSERT_EQ(-EINVAL, ctl_entry(&q, EVQ_CTL_ADD, p[0], 1U << 20, 0, 0));
	ASSERT_EQ(-EINVAL, ctl_entry(&q, EVQ_CTL_ADD, p[0], EPOLLIN, 0, 1));
	/* None of those may have created the watch. */
	ASSERT_EQ(-ENOENT, evq_del(&q, p[0]));
	ASSERT_EQ(0, evq_add(&q, p[0], EPOLLIN, 0, 1));
	ASSERT_EQ(-EINVAL, evq_mod(&q, p[0], EPOLLIN, EVQ_WATCH_EXCLUSIVE, 1));
	close(p[0]);
	close(p[1]);
	evq_close(&q);
}

TEST(ctl_reports_errors)
{
	struct evq q;
	int p[2], file;

	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ASSERT_EQ(-EBADF, evq_add(&q, -1, EPOLLIN, 0, 1));
	ASSERT_EQ(0, evq_add(&q, p[0], EPOLLIN, 0, 1));
	ASSERT_EQ(-EEXIST, evq_add(&q, p[0], EPOLLIN, 0, 1));
	ASSERT_EQ(-ENOENT, evq_mod(&q, p[1], EPOLLOUT, 0, 2));
	ASSERT_EQ(-ENOENT, evq_del(&q, p[1]));
	ASSERT_EQ(0, evq_mod(&q, p[0], EPOLLIN, EVQ_WATCH_EDGE, 3));
	ASSERT_EQ(0, evq_del(&q, p[0]));
	ASSERT_EQ(-ENOENT, evq_del(&q, p[0]));

	/* Regular files do not poll. */
	file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(file, 0);
	ASSERT_EQ(-EPERM, evq_add(&q, file, EPOLLIN, 0, 1));
	close(file);

	/* A queue cannot watch itself. */
	ASSERT_EQ(-EINVAL, evq_add(&q, evq_fd(&q), EPOLLIN, 0, 1));
	close(p[0]);
	close(p[1]);
	evq_close(&q);
}

TEST(ctl_batch_mixed_results)
{
	struct evq_cqe c[8];
	struct evq_ctl v[8];
	int a[2], b[2], d[2], closed[2];
	unsigned int seen = 0;
	struct evq q;
	int i, n;

	ASSERT_EQ(0, open_q(&q, 16));
	ASSERT_EQ(0, pipe2(a, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(b, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(d, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(closed, O_CLOEXEC));
	close(closed[0]);
	close(closed[1]);

	memset(v, 0, sizeof(v));
	for (i = 0; i < 8; i++) {
		v[i].op = EVQ_CTL_ADD;
		v[i].events = EPOLLIN;
		v[i].res = 12345;
	}
	v[0].fd = a[0];		v[0].user_data = 0xa;
	v[1].fd = closed[0];	v[1].user_data = 0xbad;
	v[2].fd = a[0];		v[2].user_data = 0xa2;	/* again */
	v[3].op = EVQ_CTL_MOD;	v[3].fd = b[0];		/* not watched */
	v[4].op = 42;		v[4].fd = b[0];
	v[5].fd = b[0];		v[5].user_data = 0xb;
	v[6].op = EVQ_CTL_DEL;	v[6].fd = d[0];		/* not watched */
	v[7].fd = d[0];		v[7].user_data = 0xd;
	v[7].flags = EVQ_WATCH_EDGE;

	ASSERT_EQ(8, evq_ctl(&q, v, 8));
	EXPECT_EQ(0, v[0].res);
	EXPECT_EQ(-EBADF, v[1].res);
	EXPECT_EQ(-EEXIST, v[2].res);
	EXPECT_EQ(-ENOENT, v[3].res);
	EXPECT_EQ(-EINVAL, v[4].res);
	EXPECT_EQ(0, v[5].res);
	EXPECT_EQ(-ENOENT, v[6].res);
	EXPECT_EQ(0, v[7].res);

	/* The good entries took effect, with their own user_data. */
	ASSERT_EQ(0, put(a[1]));
	ASSERT_EQ(0, put(b[1]));
	ASSERT_EQ(0, put(d[1]));
	while ((seen & 7) != 7) {
		n = get_events(&q, c, 8, LONG_WAIT);
		ASSERT_GT(n, 0);
		for (i = 0; i < n; i++) {
			if (c[i].user_data == 0xa)
				seen |= 1;
			else if (c[i].user_data == 0xb)
				seen |= 2;
			else if (c[i].user_data == 0xd)
				seen |= 4;
			else
				seen |= 8;	/* nobody's user_data */
		}
	}
	ASSERT_EQ(7, seen);
	close(a[0]); close(a[1]);
	close(b[0]); close(b[1]);
	close(d[0]); close(d[1]);
	evq_close(&q);
}

/* ---------------------------------------------------------------------
 * Readiness on each transport
 */

enum { XP_PIPE, XP_UNIX, XP_TCP };

FIXTURE(xport) {
	struct evq q;
	int rd, wr;
};

FIXTURE_VARIANT(xport) {
	int kind;
};

FIXTURE_VARIANT_ADD(xport, pipe) { .kind = XP_PIPE };
FIXTURE_VARIANT_ADD(xport, unix_stream) { .kind = XP_UNIX };
FIXTURE_VARIANT_ADD(xport, tcp) { .kind = XP_TCP };

FIXTURE_SETUP(xport)
{
	int fds[2];

	signal(SIGPIPE, SIG_IGN);
	switch (variant->kind) {
	case XP_PIPE:
		ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
		break;
	case XP_UNIX:
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
					0, fds));
		break;
	case XP_TCP:
		ASSERT_EQ(0, tcp_pair(fds));
		break;
	}
	self->rd = fds[0];
	self->wr = fds[1];
	ASSERT_EQ(0, fcntl(self->rd, F_SETFL, O_NONBLOCK));
	ASSERT_EQ(0, open_q(&self->q, 64));
}

FIXTURE_TEARDOWN(xport)
{
	if (self->rd >= 0)
		close(self->rd);
	if (self->wr >= 0)
		close(self->wr);
	evq_close(&self->q);
}

TEST_F(xport, level_repeats_while_readable)
{
	const uint64_t ud = 0xfeedfacecafef00dULL;
	struct evq_cqe c[4];

	ASSERT_EQ(0, evq_add(&self->q, self->rd, EPOLLIN, 0, ud));
	ASSERT_TRUE(quiet(&self->q));
	ASSERT_EQ(0, put(self->wr));
	ASSERT_EQ(1, get_events(&self->q, c, 4, LONG_WAIT));
	ASSERT_EQ(ud, c[0].user_data);
	ASSERT_EQ(EVQ_CQE_READY, c[0].flags & EVQ_CQE_TYPE_MASK);
	ASSERT_TRUE(c[0].res & EPOLLIN);
	/* Only what was asked for (plus ERR/HUP) is reported. */
	ASSERT_FALSE(c[0].res & EPOLLOUT);
	/* Not read yet: the next wait reports it again. */
	ASSERT_EQ(1, get_events(&self->q, c, 4, LONG_WAIT));
	ASSERT_EQ(ud, c[0].user_data);
	ASSERT_EQ(1, get_events(&self->q, c, 4, LONG_WAIT));
	ASSERT_EQ(ud, c[0].user_data);
}

TEST_F(xport, level_quiet_once_drained)
{
	struct evq_cqe c[4];

	ASSERT_EQ(0, evq_add(&self->q, self->rd, EPOLLIN, 0, 5));
	ASSERT_EQ(0, put(self->wr));
	ASSERT_EQ(1, get_events(&self->q, c, 4, LONG_WAIT));
	drain(self->rd);
	ASSERT_TRUE(quiet(&self->q));
	ASSERT_EQ(0, put(self->wr));
	ASSERT_EQ(1, get_events(&self->q, c, 4, LONG_WAIT));
	ASSERT_EQ(5, c[0].user_data);
}

TEST_F(xport, edge_once_per_write)
{
	struct evq_cqe c[4];

	ASSERT_EQ(0, evq_add(&self->q, self->rd, EPOLLIN, EVQ_WATCH_EDGE, 9));
	ASSERT_EQ(0, put(self->wr));
	ASSERT_EQ(1, get_events(&self->q, c, 4, LONG_WAIT));
	ASSERT_EQ(9, c[0].user_data);
	ASSERT_TRUE(c[0].res & EPOLLIN);
	/* Still readable, but no new edge: nothing more. */
	ASSERT_TRUE(quiet(&self->q));
	drain(self->rd);
	ASSERT_EQ(0, put(self->wr));
	ASSERT_EQ(1, get_events(&self->q, c, 4, LONG_WAIT));
	ASSERT_EQ(9, c[0].user_data);
	ASSERT_TRUE(quiet(&self->q));
}

TEST_F(xport, oneshot_needs_rearm)
{
	struct evq_cqe c[4];

	ASSERT_EQ(0, evq_add(&self->q, self->rd, EPOLLIN, EVQ_WATCH_ONESHOT,
			     11));
	ASSERT_EQ(0, put(self->wr));
	ASSERT_EQ(1, get_events(&self->q, c, 4, LONG_WAIT));
	ASSERT_EQ(11, c[0].user_data);
	/* Disarmed: neither the unread byte nor a new write reports. */
	ASSERT_EQ(0, put(self->wr));
	ASSERT_TRUE(quiet(&self->q));
	/* Re-armed, with a new user_data, and still readable. */
	ASSERT_EQ(0, evq_mod(&self->q, self->rd, EPOLLIN, EVQ_WATCH_ONESHOT,
			     12));
	ASSERT_EQ(1, get_events(&self->q, c, 4, LONG_WAIT));
	ASSERT_EQ(12, c[0].user_data);
	ASSERT_TRUE(quiet(&self->q));
}

TEST_F(xport, writable_reports_epollout)
{
	struct evq_cqe c[4];

	ASSERT_EQ(0, evq_add(&self->q, self->wr, EPOLLOUT, EVQ_WATCH_EDGE,
			     21));
	ASSERT_EQ(1, get_events(&self->q, c, 4, LONG_WAIT));
	ASSERT_EQ(21, c[0].user_data);
	ASSERT_TRUE(c[0].res & EPOLLOUT);
	ASSERT_FALSE(c[0].res & EPOLLIN);
}

TEST_F(xport, peer_close_reports_hangup)
{
	__u32 want = variant->kind == XP_PIPE ? EPOLLHUP : EPOLLRDHUP;
	struct evq_cqe c[4];
	unsigned int seen = 0, total = 0;
	int i, n;

	ASSERT_EQ(0, evq_add(&self->q, self->rd, EPOLLIN | EPOLLRDHUP,
			     EVQ_WATCH_EDGE, 31));
	close(self->wr);
	self->wr = -1;
	/*
	 * A TCP close wakes the reader more than once (data-ready, then the
	 * state change that brings RDHUP): epoll folds them into one report
	 * at epoll_wait, evq posts an entry for each wake-up with new bits,
	 * the later one from a kernel worker.  What matters is that the
	 * hang-up is reported, only for 31, and in at most two entries.
	 */
	while (!(seen & want) && total < 2) {
		n = get_events(&self->q, c, 4, LONG_WAIT);
		ASSERT_LE(1, n);
		for (i = 0; i < n; i++) {
			ASSERT_EQ(31, c[i].user_data);
			seen |= c[i].res;
		}
		total += n;
	}
	ASSERT_GE(2, total);
	ASSERT_TRUE(seen & want);
}

TEST_F(xport, mod_changes_events_and_user_data)
{
	struct evq_cqe c[4];

	/* Nobody writes towards wr, so EPOLLIN never comes. */
	ASSERT_EQ(0, evq_add(&self->q, self->wr, EPOLLIN, 0, 41));
	ASSERT_TRUE(quiet(&self->q));
	ASSERT_EQ(0, evq_mod(&self->q, self->wr, EPOLLOUT, 0, 42));
	ASSERT_EQ(1, get_events(&self->q, c, 4, LONG_WAIT));
	ASSERT_EQ(42, c[0].user_data);
	ASSERT_TRUE(c[0].res & EPOLLOUT);
}

TEST_F(xport, del_stops_reports)
{
	ASSERT_EQ(0, evq_add(&self->q, self->rd, EPOLLIN, 0, 51));
	ASSERT_EQ(0, evq_del(&self->q, self->rd));
	ASSERT_EQ(0, put(self->wr));
	ASSERT_TRUE(quiet(&self->q));
}

/* ---------------------------------------------------------------------
 * Many watches and a small ring
 */

#define MANY		10000
#define MANY_READY	100
#define PARK_BATCH	250	/* below SCM_MAX_FD */

/*
 * Keep fds open without holding descriptor slots: in flight on an
 * AF_UNIX socket, a file stays referenced until the socket is closed.
 */
static int park_fds(int sock, const int *fds, int n)
{
	char cbuf[CMSG_SPACE(PARK_BATCH * sizeof(int))] = { 0 };
	char byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf,
		.msg_controllen = CMSG_SPACE(n * sizeof(int)),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int i;

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	if (sendmsg(sock, &mh, 0) != 1)
		return -errno;
	for (i = 0; i < n; i++)
		close(fds[i]);
	return 0;
}

TEST(ten_thousand_watches)
{
	int (*p)[2] = calloc(MANY, sizeof(*p));
	struct evq_ctl *v = calloc(MANY, sizeof(*v));
	unsigned char *seen = calloc(MANY, 1);
	int park[2] = { -1, -1 }, parked[PARK_BATCH], nparked = 0;
	struct evq_cqe c[256];
	struct evq q;
	int i, n;

	ASSERT_TRUE(p && v && seen);
	/*
	 * Both ends of 10,000 pipes need 20,000 descriptors.  Where the hard
	 * limit is lower and cannot be raised, the write ends that are never
	 * written are parked in a socket instead (see park_fds()).
	 */
	if (!raise_nofile(2 * MANY + 64)) {
		if (!raise_nofile(MANY + MANY_READY + 64))
			SKIP(return, "cannot raise RLIMIT_NOFILE to %d",
			     MANY + MANY_READY + 64);
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
					0, park));
	}

	ASSERT_EQ(0, open_q(&q, 256));
	for (i = 0; i < MANY; i++) {
		ASSERT_EQ(0, pipe2(p[i], O_CLOEXEC | O_NONBLOCK));
		v[i].op = EVQ_CTL_ADD;
		v[i].fd = p[i][0];
		v[i].events = EPOLLIN;
		v[i].user_data = 1000000 + i;
		v[i].res = 1;
		if (park[0] >= 0 && i % (MANY / MANY_READY)) {
			parked[nparked++] = p[i][1];
			p[i][1] = -1;
			if (nparked == PARK_BATCH) {
				ASSERT_EQ(0, park_fds(park[0], parked,
						      nparked));
				nparked = 0;
			}
		}
	}
	if (nparked)
		ASSERT_EQ(0, park_fds(park[0], parked, nparked));
	ASSERT_EQ(MANY, evq_ctl(&q, v, MANY));
	for (i = 0; i < MANY; i++) {
		ASSERT_EQ(0, v[i].res);
	}

	for (i = 0; i < MANY; i += MANY / MANY_READY) {
		ASSERT_EQ(0, put(p[i][1]));
	}

	ASSERT_GE(evq_wait(&q, MANY_READY, LONG_WAIT), MANY_READY);
	n = evq_harvest(&q, c, 256);
	ASSERT_EQ(MANY_READY, n);
	for (i = 0; i < n; i++) {
		uint64_t k = c[i].user_data - 1000000;

		ASSERT_LT(k, MANY);
		ASSERT_EQ(0, k % (MANY / MANY_READY));
		ASSERT_EQ(0, seen[k]);
		ASSERT_TRUE(c[i].res & EPOLLIN);
		seen[k] = 1;
	}
	/* Once drained, nothing else reports: parked ends did not hang up. */
	for (i = 0; i < MANY; i += MANY / MANY_READY)
		drain(p[i][0]);
	ASSERT_TRUE(quiet(&q));

	for (i = 0; i < MANY; i++) {
		close(p[i][0]);
		if (p[i][1] >= 0)
			close(p[i][1]);
	}
	if (park[0] >= 0) {
		close(park[0]);
		close(park[1]);
	}
	evq_close(&q);
	free(p);
	free(v);
	free(seen);
}

#define SMALL_RING	16
#define OVER		200

/* More ready watches than ring slots: nothing is lost, nothing doubled. */
TEST(ring_smaller_than_ready_set)
{
	int p[OVER][2];
	unsigned char seen[OVER] = { 0 };
	struct evq_cqe c[SMALL_RING];
	int i, n, total = 0;
	struct evq q;

	ASSERT_EQ(0, open_q(&q, SMALL_RING));
	ASSERT_EQ(SMALL_RING, q.ring_entries);
	for (i = 0; i < OVER; i++) {
		ASSERT_EQ(0, pipe2(p[i], O_CLOEXEC));
		ASSERT_EQ(0, evq_add(&q, p[i][0], EPOLLIN, EVQ_WATCH_EDGE, i));
	}
	for (i = 0; i < OVER; i++) {
		ASSERT_EQ(0, put(p[i][1]));
	}

	while (total < OVER) {
		n = get_events(&q, c, SMALL_RING, LONG_WAIT);
		ASSERT_GT(n, 0);
		ASSERT_LE(n, SMALL_RING);
		for (i = 0; i < n; i++) {
			ASSERT_LT(c[i].user_data, OVER);
			ASSERT_EQ(0, seen[c[i].user_data]);
			seen[c[i].user_data] = 1;
		}
		total += n;
	}
	ASSERT_TRUE(quiet(&q));
	for (i = 0; i < OVER; i++) {
		close(p[i][0]);
		close(p[i][1]);
	}
	evq_close(&q);
}

TEST(harvest_in_parts)
{
	struct evq_cqe c[4];
	int p[3][2], i;
	struct evq q;

	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(0, evq_harvest(&q, c, 4));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, pipe2(p[i], O_CLOEXEC));
		ASSERT_EQ(0, evq_add(&q, p[i][0], EPOLLIN, EVQ_WATCH_EDGE, i));
		ASSERT_EQ(0, put(p[i][1]));
	}
	ASSERT_EQ(3, evq_wait(&q, 3, LONG_WAIT));
	ASSERT_EQ(0, evq_harvest(&q, c, 0));
	ASSERT_EQ(1, evq_harvest(&q, c, 1));
	ASSERT_EQ(2, evq_harvest(&q, c + 1, 3));
	/* Each watch once: the set is {0, 1, 2}. */
	ASSERT_EQ(3, c[0].user_data + c[1].user_data + c[2].user_data);
	ASSERT_NE(c[0].user_data, c[1].user_data);
	ASSERT_NE(c[1].user_data, c[2].user_data);
	ASSERT_NE(c[0].user_data, c[2].user_data);
	ASSERT_EQ(0, evq_harvest(&q, c, 4));
	for (i = 0; i < 3; i++) {
		close(p[i][0]);
		close(p[i][1]);
	}
	evq_close(&q);
}

/* ---------------------------------------------------------------------
 * Waiting
 */

TEST(wait_times_out)
{
	struct evq q;
	int64_t t0, dt;
	int p[2];

	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ASSERT_EQ(0, evq_add(&q, p[0], EPOLLIN, 0, 1));
	t0 = now_ns();
	ASSERT_EQ(0, evq_wait(&q, 1, 150 * MS));
	dt = now_ns() - t0;
	/* Only a lower bound: the machines are noisy. */
	ASSERT_GE(dt, 150 * MS);
	close(p[0]);
	close(p[1]);
	evq_close(&q);
}

TEST(wait_zero_timeout_does_not_sleep)
{
	struct evq q;
	int64_t t0;
	int p[2];

	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ASSERT_EQ(0, evq_add(&q, p[0], EPOLLIN, EVQ_WATCH_EDGE, 1));
	t0 = now_ns();
	ASSERT_EQ(0, evq_wait(&q, 1, 0));
	/* Generous: "did not sleep for the LONG_WAIT it could have". */
	ASSERT_LT(now_ns() - t0, LONG_WAIT);
	ASSERT_EQ(0, put(p[1]));
	/* The event lands at once for a pipe; give it a few polls. */
	for (t0 = now_ns(); now_ns() - t0 < LONG_WAIT;)
		if (evq_wait(&q, 1, 0) == 1)
			break;
	ASSERT_EQ(1, evq_wait(&q, 1, 0));
	ASSERT_EQ(1, evq_wait(&q, 0, 0));
	close(p[0]);
	close(p[1]);
	evq_close(&q);
}

TEST(wait_rejects_min_above_ring)
{
	struct evq q;

	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(-EINVAL, evq_wait(&q, 9, 0));
	ASSERT_EQ(-EINVAL, evq_wait_exclusive(&q, 9, 0));
	evq_close(&q);
}

struct later_write {
	int fd;
	int64_t delay_ns;
};

static void *write_later(void *arg)
{
	struct later_write *lw = arg;
	struct timespec ts = {
		.tv_sec = lw->delay_ns / SEC,
		.tv_nsec = lw->delay_ns % SEC,
	};

	nanosleep(&ts, NULL);
	if (write(lw->fd, "y", 1) != 1)
		return (void *)1;
	return NULL;
}

TEST(wait_returns_once_min_reached)
{
	struct later_write lw;
	struct evq_cqe c[4];
	int a[2], b[2], n;
	struct evq q;
	pthread_t t;
	int64_t t0;

	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(0, pipe2(a, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(b, O_CLOEXEC));
	/* Level mode on purpose: the first one stays ready all along. */
	ASSERT_EQ(0, evq_add(&q, a[0], EPOLLIN, 0, 0xa));
	ASSERT_EQ(0, evq_add(&q, b[0], EPOLLIN, 0, 0xb));
	ASSERT_EQ(0, put(a[1]));

	lw.fd = b[1];
	lw.delay_ns = 100 * MS;
	ASSERT_EQ(0, pthread_create(&t, NULL, write_later, &lw));
	t0 = now_ns();
	n = evq_wait(&q, 2, 60 * SEC);
	ASSERT_EQ(0, pthread_join(t, NULL));
	ASSERT_GE(n, 2);
	/* Woken by the second write, long before the timeout. */
	ASSERT_LT(now_ns() - t0, 30 * SEC);
	/* One entry per watch, not a stream of repeats of the first. */
	ASSERT_EQ(2, evq_harvest(&q, c, 4));
	ASSERT_EQ(0xa + 0xb, c[0].user_data + c[1].user_data);
	close(a[0]); close(a[1]);
	close(b[0]); close(b[1]);
	evq_close(&q);
}

static void on_signal(int sig)
{
	(void)sig;
}

TEST(wait_interrupted_by_signal)
{
	/* No SA_RESTART: the wait must see the interruption. */
	struct sigaction sa = { .sa_handler = on_signal };
	struct sigevent sev = {
		.sigev_notify = SIGEV_SIGNAL,
		.sigev_signo = SIGUSR1,
	};
	struct itimerspec its = { .it_value.tv_nsec = 50 * MS };
	struct evq q;
	timer_t timer;
	int p[2];

	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	ASSERT_EQ(0, timer_create(CLOCK_MONOTONIC, &sev, &timer));
	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ASSERT_EQ(0, evq_add(&q, p[0], EPOLLIN, 0, 1));
	ASSERT_EQ(0, timer_settime(timer, 0, &its, NULL));
	ASSERT_EQ(-EINTR, evq_wait(&q, 1, 20 * SEC));
	timer_delete(timer);
	close(p[0]);
	close(p[1]);
	evq_close(&q);
}

/* ---------------------------------------------------------------------
 * Closing watched files
 */

TEST(unwatch_close_releases_file_at_once)
{
	struct evq q;
	int sv[2];
	char ch;

	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	ASSERT_EQ(0, evq_add(&q, sv[0], EPOLLIN, 0, 1));
	ASSERT_EQ(0, evq_unwatch_close(&q, sv[0]));
	ASSERT_FALSE(fd_open(sv[0]));
	/* The peer sees EOF now, not after a reap interval. */
	ASSERT_EQ(0, recv(sv[1], &ch, 1, MSG_DONTWAIT));
	close(sv[1]);
	evq_close(&q);
}

TEST(unwatch_close_unwatched_and_bad_fd)
{
	struct evq q;
	int p[2];

	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	/* No watch: still closed, and no error. */
	ASSERT_EQ(0, evq_unwatch_close(&q, p[0]));
	ASSERT_FALSE(fd_open(p[0]));
	ASSERT_EQ(-EBADF, evq_unwatch_close(&q, p[0]));
	close(p[1]);
	evq_close(&q);
}

TEST(close_without_del)
{
	struct evq_cqe c[4];
	struct evq q;
	int sv[2], n;
	char ch;

	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	ASSERT_EQ(0, evq_add(&q, sv[0], EPOLLIN, 0, 0xc105ed));
	close(sv[0]);

	if (!is_kmod(&q)) {
		/* epoll drops the watch with the file, and says nothing. */
		ASSERT_EQ(0, recv(sv[1], &ch, 1, MSG_DONTWAIT));
		ASSERT_TRUE(quiet(&q));
	} else {
		/* The queue reaps the file it alone holds and says so. */
		n = get_events(&q, c, 4, LONG_WAIT);
		ASSERT_EQ(1, n);
		ASSERT_EQ(0xc105ed, c[0].user_data);
		ASSERT_EQ(EVQ_CQE_CLOSED, c[0].flags & EVQ_CQE_TYPE_MASK);
		ASSERT_EQ(0, c[0].res);
		ASSERT_EQ(0, recv(sv[1], &ch, 1, MSG_DONTWAIT));
	}
	close(sv[1]);
	evq_close(&q);
}

/* ---------------------------------------------------------------------
 * Exclusive waits and watches
 */

struct waiter {
	struct evq *q;
	bool exclusive;
	pid_t tid;
	int state;		/* 0 starting, 1 about to wait, 2 returned */
	int ret;
};

static void *waiter_fn(void *arg)
{
	struct waiter *w = arg;

	w->tid = gettid();
	__atomic_store_n(&w->state, 1, __ATOMIC_RELEASE);
	if (w->exclusive)
		w->ret = evq_wait_exclusive(w->q, 1, 3 * SEC);
	else
		w->ret = evq_wait(w->q, 1, 3 * SEC);
	__atomic_store_n(&w->state, 2, __ATOMIC_RELEASE);
	return NULL;
}

/* True once the thread sleeps (state S), i.e. is inside the wait. */
static bool thread_sleeping(pid_t tid)
{
	char path[64], buf[256], *p;
	FILE *f;
	bool s = false;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f)) {
		p = strrchr(buf, ')');
		s = p && p[1] == ' ' && p[2] == 'S';
	}
	fclose(f);
	return s;
}

static bool all_sleeping(struct waiter *w, int n)
{
	int64_t t0 = now_ns();
	int i;

	for (i = 0; i < n; i++) {
		while (__atomic_load_n(&w[i].state, __ATOMIC_ACQUIRE) != 1 ||
		       !thread_sleeping(w[i].tid)) {
			if (now_ns() - t0 > LONG_WAIT)
				return false;
			usleep(1000);
		}
	}
	/* Settle: the wait may still be on its way to the sleep proper. */
	usleep(50000);
	for (i = 0; i < n; i++)
		if (!thread_sleeping(w[i].tid))
			return false;
	return true;
}

/* Returns how many waiters returned within a while of the first one. */
static int count_woken(struct waiter *w, int n)
{
	int64_t t0 = now_ns();
	int i, woken = 0;

	while (now_ns() - t0 < LONG_WAIT) {
		for (i = 0; i < n; i++)
			if (__atomic_load_n(&w[i].state, __ATOMIC_ACQUIRE) == 2)
				goto first;
		usleep(1000);
	}
	return 0;
first:
	/* Others woken by the same post would be back well within this. */
	usleep(300000);
	for (i = 0; i < n; i++)
		woken += __atomic_load_n(&w[i].state, __ATOMIC_ACQUIRE) == 2;
	return woken;
}

#define NWAITERS	3

TEST(exclusive_wait_wakes_one_thread)
{
	struct waiter w[NWAITERS];
	pthread_t t[NWAITERS];
	struct evq q;
	int i, p[2];

	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	/* Edge: a level watch stays ready, waking waiter after waiter. */
	ASSERT_EQ(0, evq_add(&q, p[0], EPOLLIN, EVQ_WATCH_EDGE, 1));
	for (i = 0; i < NWAITERS; i++) {
		w[i] = (struct waiter){ .q = &q, .exclusive = true };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, waiter_fn, &w[i]));
	}
	ASSERT_TRUE(all_sleeping(w, NWAITERS));
	ASSERT_EQ(0, put(p[1]));
	ASSERT_EQ(1, count_woken(w, NWAITERS));
	for (i = 0; i < NWAITERS; i++) {
		ASSERT_EQ(0, pthread_join(t[i], NULL));
		ASSERT_GE(w[i].ret, 0);
	}
	close(p[0]);
	close(p[1]);
	evq_close(&q);
}

TEST(shared_wait_wakes_all_threads)
{
	struct waiter w[NWAITERS];
	pthread_t t[NWAITERS];
	struct evq q;
	int i, p[2];

	ASSERT_EQ(0, open_q(&q, 8));
	if (!is_kmod(&q))
		SKIP(return, "epoll: every epoll_wait() sleeper is exclusive");
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ASSERT_EQ(0, evq_add(&q, p[0], EPOLLIN, EVQ_WATCH_EDGE, 1));
	for (i = 0; i < NWAITERS; i++) {
		w[i] = (struct waiter){ .q = &q, .exclusive = false };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, waiter_fn, &w[i]));
	}
	ASSERT_TRUE(all_sleeping(w, NWAITERS));
	ASSERT_EQ(0, put(p[1]));
	ASSERT_EQ(NWAITERS, count_woken(w, NWAITERS));
	for (i = 0; i < NWAITERS; i++) {
		ASSERT_EQ(0, pthread_join(t[i], NULL));
		ASSERT_EQ(1, w[i].ret);
	}
	close(p[0]);
	close(p[1]);
	evq_close(&q);
}

TEST(exclusive_watch_wakes_one_queue)
{
	struct waiter w[2];
	struct evq q[2];
	pthread_t t[2];
	int i, p[2];

	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, open_q(&q[i], 8));
		ASSERT_EQ(0, evq_add(&q[i], p[0], EPOLLIN,
				     EVQ_WATCH_EXCLUSIVE, 100 + i));
	}
	for (i = 0; i < 2; i++) {
		w[i] = (struct waiter){ .q = &q[i] };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, waiter_fn, &w[i]));
	}
	ASSERT_TRUE(all_sleeping(w, 2));
	ASSERT_EQ(0, put(p[1]));
	ASSERT_EQ(1, count_woken(w, 2));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, pthread_join(t[i], NULL));
		evq_close(&q[i]);
	}
	/* One queue got the entry, the other timed out empty. */
	ASSERT_EQ(1, w[0].ret + w[1].ret);
	close(p[0]);
	close(p[1]);
}

TEST(exclusive_watch_reports_readiness)
{
	struct evq_cqe c[4];
	struct evq q;
	int p[2];

	ASSERT_EQ(0, open_q(&q, 8));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ASSERT_EQ(0, evq_add(&q, p[0], EPOLLIN, EVQ_WATCH_EXCLUSIVE, 77));
	ASSERT_EQ(0, put(p[1]));
	ASSERT_EQ(1, get_events(&q, c, 4, LONG_WAIT));
	ASSERT_EQ(77, c[0].user_data);
	ASSERT_TRUE(c[0].res & EPOLLIN);
	close(p[0]);
	close(p[1]);
	evq_close(&q);
}

TEST_HARNESS_MAIN
