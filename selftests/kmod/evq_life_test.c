// SPDX-License-Identifier: GPL-2.0
/*
 * evq selftests: the life of queues and watched files.  fork(), closing a
 * watched fd without DEL (EVQ_CQE_CLOSED, the file really released, also
 * when several watches hold it), a queue in flight in a socket it
 * watches, watched sockets that only unreachable messages hold, fd
 * number reuse, releasing a queue with live watches,
 * poll()/epoll on the queue fd, and the module refusing to unload while a
 * queue is open.
 */
#include "evq_util.h"
#include <sched.h>
#include <sys/wait.h>

FIXTURE(life) {
	struct evq_q q;
	int sv[2];
	int p[2];
};

FIXTURE_SETUP(life)
{
	self->q.fd = -1;
	self->sv[0] = self->sv[1] = self->p[0] = self->p[1] = -1;
	EVQ_REQUIRE_DEVICE();
	signal(SIGPIPE, SIG_IGN);
	ASSERT_EQ(0, evq_q_open(&self->q, 32));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, self->sv));
	ASSERT_EQ(0, pipe2(self->p, O_CLOEXEC | O_NONBLOCK));
}

FIXTURE_TEARDOWN(life)
{
	evq_q_close(&self->q);
	for (int i = 0; i < 2; i++) {
		if (self->sv[i] >= 0)
			close(self->sv[i]);
		if (self->p[i] >= 0)
			close(self->p[i]);
	}
}

/*
 * Close @q2 and check it let go of everything: its module reference, and
 * the socket it watched (the peer sees EOF once the test closes its end).
 */
static void expect_released(struct __test_metadata *_metadata,
			    FIXTURE_DATA(life) *self, struct evq_q *q2,
			    int base)
{
	evq_q_close(q2);
	EXPECT_EQ(base, evq_refcnt_settles(base, 2000));
	close(self->sv[0]);
	self->sv[0] = -1;
	EXPECT_TRUE(!!evq_sees_eof(self->sv[1], 3000));
}

/* Collect until an entry of @type with @ud shows up; its res, or -1. */
static int64_t wait_for_entry(struct evq_q *q, uint32_t type, uint64_t ud,
			      int timeout_ms, int *others)
{
	int64_t deadline = evq_now_ns() + (int64_t)timeout_ms * NSEC_PER_MSEC;
	struct evq_cqe c[32];

	while (evq_now_ns() < deadline) {
		uint32_t n = evq_collect(q, c, 32, 1, 100);

		for (uint32_t k = 0; k < n; k++) {
			if (evq_cqe_type(&c[k]) == type && c[k].user_data == ud)
				return c[k].res;
			if (others)
				(*others)++;
		}
	}
	return -1;
}

/* Wait up to @ms for writes to the pipe to fail with EPIPE (reader gone). */
static int writer_gets_epipe(int wfd, int ms)
{
	for (int i = 0; i <= ms / 10; i++) {
		if (write(wfd, "x", 1) < 0 && errno == EPIPE)
			return 1;
		evq_sleep_ms(10);
	}
	return 0;
}

TEST_F(life, fork_child_event_seen_by_parent)
{
	struct evq_cqe c[4];
	int status;
	pid_t pid;

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->p[0], EPOLLIN,
			      EVQ_WATCH_EDGE, 0xc0ffee));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		evq_sleep_ms(50);
		_exit(write(self->p[1], "k", 1) == 1 ? 0 : 1);
	}
	ASSERT_EQ(1U, evq_collect(&self->q, c, 4, 1, 3000));
	EXPECT_EQ(0xc0ffeeULL, c[0].user_data);
	EXPECT_TRUE(!!(c[0].res & EPOLLIN));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST_F(life, fork_child_adds_watch_on_shared_queue)
{
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			_exit(1);
		if (evq_ctl1(self->q.fd, EVQ_CTL_ADD, sv[0], EPOLLIN, EVQ_WATCH_EDGE,
			     0xc41d))
			_exit(2);
		if (write(sv[1], "c", 1) != 1)
			_exit(3);
		_exit(0);	/* the queue now holds sv[0]'s last reference */
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));
	EXPECT_LE(0, wait_for_entry(&self->q, EVQ_CQE_READY, 0xc41d, 3000, NULL));
	/* The child is gone: the queue alone holds the socket. */
	/* (A READY for the peer's hang-up may come first.) */
	EXPECT_EQ(0, wait_for_entry(&self->q, EVQ_CQE_CLOSED, 0xc41d, 5000, NULL));
}

TEST_F(life, close_without_del_posts_closed)
{
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sv[0], EPOLLIN, 0, 55));
	close(self->sv[0]);
	self->sv[0] = -1;
	EXPECT_EQ(0, wait_for_entry(&self->q, EVQ_CQE_CLOSED, 55, 5000, NULL));
	/* The file really got released: the peer reads EOF. */
	EXPECT_TRUE(!!evq_sees_eof(self->sv[1], 3000));
	/* And the watch is gone. */
	EXPECT_EQ(0, evq_wait(self->q.fd, 200 * NSEC_PER_MSEC, 1, 0));
}

TEST_F(life, reaper_posts_closed_without_wait)
{
	struct evq_cqe c[4];
	uint32_t n = 0;

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sv[0], EPOLLIN,
			      EVQ_WATCH_EDGE, 56));
	close(self->sv[0]);
	self->sv[0] = -1;
	/* No ioctl: the periodic reap (100 ms) posts straight to the ring. */
	for (int i = 0; i < 500 && !n; i++) {
		evq_sleep_ms(10);
		n = evq_harvest(&self->q, c, 4);
	}
	ASSERT_EQ(1U, n);
	EXPECT_EQ(EVQ_CQE_CLOSED, evq_cqe_type(&c[0]));
	EXPECT_EQ(56ULL, c[0].user_data);
	EXPECT_EQ(0, c[0].res);
	EXPECT_TRUE(!!evq_sees_eof(self->sv[1], 3000));
}

/*
 * A reap pass looks through reap_batch watches and the next resumes after
 * them: with a batch of 64, each of 300 closed fds is still found, once,
 * wherever it sits in the table.
 */
#define LIFE_REAP_FDS	300

TEST_F(life, reaper_resumes_in_batches)
{
	long old = evq_param_get("reap_batch");
	static int pipes[LIFE_REAP_FDS][2];
	static struct evq_cqe c[LIFE_REAP_FDS + 16];
	static bool seen[LIFE_REAP_FDS];
	struct evq_q q;
	uint32_t n;

	if (old < 0 || evq_param_set("reap_batch", old))
		SKIP(return, "reap_batch parameter not writable");
	ASSERT_EQ(0, evq_q_open(&q, 512));
	for (int i = 0; i < LIFE_REAP_FDS; i++) {
		ASSERT_EQ(0, pipe2(pipes[i], O_CLOEXEC | O_NONBLOCK));
		ASSERT_EQ(0, evq_ctl1(q.fd, EVQ_CTL_ADD, pipes[i][0], EPOLLIN,
				      EVQ_WATCH_EDGE, i));
	}
	ASSERT_EQ(0, evq_param_set("reap_batch", 64));
	for (int i = 0; i < LIFE_REAP_FDS; i++)
		close(pipes[i][0]);
	/* 5 passes of 100 ms; the guest is emulated, so allow far more. */
	n = evq_collect(&q, c, LIFE_REAP_FDS + 16, LIFE_REAP_FDS, 30000);
	ASSERT_EQ(0, evq_param_set("reap_batch", old));
	EXPECT_EQ(0U, evq_collect(&q, NULL, 16, 1, 300));
	for (int i = 0; i < LIFE_REAP_FDS; i++)
		close(pipes[i][1]);
	evq_q_close(&q);

	ASSERT_EQ((uint32_t)LIFE_REAP_FDS, n);
	for (uint32_t i = 0; i < n; i++) {
		EXPECT_EQ(EVQ_CQE_CLOSED, evq_cqe_type(&c[i]));
		ASSERT_GT((uint64_t)LIFE_REAP_FDS, c[i].user_data);
		EXPECT_FALSE(seen[c[i].user_data]) TH_LOG("fd %llu reaped twice",
			(unsigned long long)c[i].user_data);
		seen[c[i].user_data] = true;
	}
}

/* The queue does not hold the last reference while another fd does. */
TEST_F(life, child_close_keeps_watch)
{
	struct evq_cqe c[4];
	int status;
	pid_t pid;

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->p[0], EPOLLIN,
			      EVQ_WATCH_EDGE, 60));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(self->p[0]);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	/* Several reap intervals: still no CLOSED entry. */
	EXPECT_NO_ENTRIES(&self->q, 400);
	ASSERT_EQ(1, write(self->p[1], "k", 1));
	ASSERT_EQ(1U, evq_collect(&self->q, c, 4, 1, 2000));
	EXPECT_EQ(EVQ_CQE_READY, evq_cqe_type(&c[0]));
	EXPECT_EQ(60ULL, c[0].user_data);
}

TEST_F(life, dup_keeps_watch_alive)
{
	struct evq_cqe c[4];
	int d = dup(self->sv[0]);

	ASSERT_LE(0, d);
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sv[0], EPOLLIN,
			      EVQ_WATCH_EDGE, 61));
	close(self->sv[0]);
	self->sv[0] = -1;
	EXPECT_NO_ENTRIES(&self->q, 400);
	ASSERT_EQ(1, write(self->sv[1], "d", 1));
	ASSERT_EQ(1U, evq_collect(&self->q, c, 4, 1, 2000));
	EXPECT_EQ(EVQ_CQE_READY, evq_cqe_type(&c[0]));
	EXPECT_EQ(61ULL, c[0].user_data);
	/* The last other reference goes: now CLOSED, and the peer sees EOF. */
	close(d);
	EXPECT_EQ(0, wait_for_entry(&self->q, EVQ_CQE_CLOSED, 61, 5000, NULL));
	EXPECT_TRUE(!!evq_sees_eof(self->sv[1], 3000));
}

/*
 * One file watched through two fds (dup): once both fds are closed only
 * the two watches hold it, and both must go.  The reaper once compared
 * the file's count with 1 and kept such a file open for the queue's life.
 */
TEST_F(life, file_watched_twice_is_reaped)
{
	int64_t deadline = evq_now_ns() + 5000 * NSEC_PER_MSEC;
	int d = dup(self->sv[0]), closed[2] = { 0, 0 }, others = 0;
	struct evq_cqe c[8];

	ASSERT_LE(0, d);
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sv[0], EPOLLIN, 0, 62));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, d, EPOLLIN, 0, 63));
	close(d);
	/* One fd still open: no CLOSED for either. */
	EXPECT_NO_ENTRIES(&self->q, 400);
	close(self->sv[0]);
	self->sv[0] = -1;
	/* Both, once each, in whichever order the reaper walks them. */
	while (closed[0] + closed[1] < 2 && evq_now_ns() < deadline) {
		uint32_t n = evq_collect(&self->q, c, 8, 1, 100);

		for (uint32_t k = 0; k < n; k++) {
			if (evq_cqe_type(&c[k]) == EVQ_CQE_CLOSED &&
			    (c[k].user_data == 62 || c[k].user_data == 63))
				closed[c[k].user_data - 62]++;
			else
				others++;
		}
	}
	EXPECT_EQ(1, closed[0]);
	EXPECT_EQ(1, closed[1]);
	EXPECT_EQ(0, others);
	EXPECT_TRUE(!!evq_sees_eof(self->sv[1], 3000));
}

/* The same file watched by two queues: each reaps its own watch. */
TEST_F(life, file_watched_by_two_queues_is_reaped)
{
	struct evq_q q2;

	ASSERT_EQ(0, evq_q_open(&q2, 8));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sv[0], EPOLLIN, 0, 64));
	ASSERT_EQ(0, evq_ctl1(q2.fd, EVQ_CTL_ADD, self->sv[0], EPOLLIN, 0, 65));
	EXPECT_NO_ENTRIES(&self->q, 300);
	close(self->sv[0]);
	self->sv[0] = -1;
	EXPECT_EQ(0, wait_for_entry(&self->q, EVQ_CQE_CLOSED, 64, 5000, NULL));
	EXPECT_EQ(0, wait_for_entry(&q2, EVQ_CQE_CLOSED, 65, 5000, NULL));
	EXPECT_TRUE(!!evq_sees_eof(self->sv[1], 3000));
	evq_q_close(&q2);
}

/*
 * A queue's own fd in flight (SCM_RIGHTS, never received) in a UNIX
 * socket that only the queue's watches hold, twice over.  Once every fd
 * is closed, nothing outside holds either file, and the UNIX garbage
 * collector cannot see the cycle through the queue: the reaper must drop
 * the watches, which frees the socket, its message, then the queue.
 */
/* Send @fd over @sock in an SCM_RIGHTS message: 1 when sent. */
static ssize_t send_fd(int sock, int fd)
{
	char byte = 'q', cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	memset(cbuf, 0, sizeof(cbuf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0);
}

/* Receive one fd sent by send_fd(), or -1. */
static int recv_fd(int sock)
{
	char byte, cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c;
	int fd;

	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/* A queue, set up but not mapped: a mapping would hold the file too. */
static int unmapped_queue(void)
{
	struct evq_setup p;
	int q = evq_open_dev();

	if (q >= 0 && evq_do_setup(q, &p, 8)) {
		close(q);
		q = -1;
	}
	return q;
}

TEST_F(life, queue_in_flight_in_its_watched_socket_is_freed)
{
	int base = evq_module_refcnt(), u[2], d, q2;

	ASSERT_LE(0, base);
	q2 = unmapped_queue();
	ASSERT_LE(0, q2);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, u));
	d = dup(u[1]);
	ASSERT_LE(0, d);
	ASSERT_EQ(0, evq_ctl1(q2, EVQ_CTL_ADD, u[1], EPOLLIN, 0, 1));
	ASSERT_EQ(0, evq_ctl1(q2, EVQ_CTL_ADD, d, EPOLLIN, 0, 2));
	ASSERT_EQ(1, send_fd(u[0], q2));
	EXPECT_EQ(base + 1, evq_module_refcnt());
	close(q2);
	close(d);
	close(u[1]);
	close(u[0]);
	/* A few reap intervals (100 ms each) and a deferred fput or two. */
	EXPECT_EQ(base, evq_refcnt_settles(base, 5000));
}

/*
 * The watched socket is in flight too, in its own receive queue: only a
 * receive from it could reach it, and nothing can receive from it.  The
 * kernel's collector took the watch for a reference from outside.
 */
TEST_F(life, socket_in_flight_in_itself_is_freed)
{
	int base = evq_module_refcnt(), u[2], q2;

	ASSERT_LE(0, base);
	q2 = unmapped_queue();
	ASSERT_LE(0, q2);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, u));
	ASSERT_EQ(0, evq_ctl1(q2, EVQ_CTL_ADD, u[1], EPOLLIN, 0, 1));
	ASSERT_EQ(1, send_fd(u[0], u[1]));
	ASSERT_EQ(1, send_fd(u[0], q2));
	close(q2);
	close(u[1]);
	close(u[0]);
	EXPECT_EQ(base, evq_refcnt_settles(base, 5000));
}

/*
 * Two pairs, each watched end in flight in the other's queue, and an
 * unwatched socket in flight between them: a cycle of three sockets.
 */
TEST_F(life, sockets_in_flight_in_each_other_are_freed)
{
	int base = evq_module_refcnt(), a[2], b[2], c[2], q2;

	ASSERT_LE(0, base);
	q2 = unmapped_queue();
	ASSERT_LE(0, q2);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, b));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c));
	ASSERT_EQ(0, evq_ctl1(q2, EVQ_CTL_ADD, a[1], EPOLLIN, 0, 1));
	ASSERT_EQ(0, evq_ctl1(q2, EVQ_CTL_ADD, b[1], EPOLLIN, 0, 2));
	ASSERT_EQ(1, send_fd(b[0], a[1]));	/* a[1] in b[1] */
	ASSERT_EQ(1, send_fd(c[0], b[1]));	/* b[1] in c[1] */
	ASSERT_EQ(1, send_fd(a[0], c[1]));	/* c[1] in a[1] */
	ASSERT_EQ(1, send_fd(a[0], q2));
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
		close(c[i]);
	}
	close(q2);
	EXPECT_EQ(base, evq_refcnt_settles(base, 5000));
}

/*
 * The same, but a socket still open holds the message: the watched one
 * can be received and used, so its watch stays, and goes only when the
 * received fd is closed.
 */
TEST_F(life, socket_in_flight_to_open_socket_stays_watched)
{
	int r[2], fd, others = 0;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sv[1], EPOLLIN,
			      EVQ_WATCH_EDGE, 7));
	ASSERT_EQ(1, send_fd(r[0], self->sv[1]));	/* in r[1]'s queue */
	ASSERT_EQ(1, send_fd(self->sv[0], self->sv[1]));	/* and its own */
	close(self->sv[1]);
	self->sv[1] = -1;
	/* Several reap intervals and passes over the sockets in flight. */
	EXPECT_EQ(-1, wait_for_entry(&self->q, EVQ_CQE_CLOSED, 7, 1000, &others));
	fd = recv_fd(r[1]);
	ASSERT_LE(0, fd);
	/* The watch still reports: the first message is there to read. */
	EXPECT_EQ(1, others);
	close(fd);
	close(r[0]);
	close(r[1]);
	/* Its own queue still holds it, but only that: now it is unreachable. */
	close(self->sv[0]);
	self->sv[0] = -1;
	EXPECT_EQ(0, wait_for_entry(&self->q, EVQ_CQE_CLOSED, 7, 5000, NULL));
}

TEST_F(life, closed_pipe_read_end_really_released)
{
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->p[0], EPOLLIN, 0, 57));
	close(self->p[0]);
	self->p[0] = -1;
	EXPECT_EQ(0, wait_for_entry(&self->q, EVQ_CQE_CLOSED, 57, 5000, NULL));
	/* No reader left: EPIPE (allow for a deferred final fput). */
	EXPECT_TRUE(!!writer_gets_epipe(self->p[1], 3000));
}

TEST_F(life, add_on_reused_fd_drops_stale_watch)
{
	struct evq_cqe c[8];
	int nsv[2], num = self->sv[0];
	int closed = 0, ready = 0;

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, num, EPOLLIN, EVQ_WATCH_EDGE, 1));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, nsv));
	/* The old file goes, another takes its number. */
	ASSERT_EQ(num, dup2(nsv[0], num));
	close(nsv[0]);
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, num, EPOLLIN, EVQ_WATCH_EDGE, 2));
	ASSERT_EQ(1, write(nsv[1], "n", 1));
	for (int i = 0; i < 50 && !(closed && ready); i++) {
		uint32_t n = evq_collect(&self->q, c, 8, 1, 100);

		for (uint32_t k = 0; k < n; k++) {
			if (evq_cqe_type(&c[k]) == EVQ_CQE_CLOSED) {
				EXPECT_EQ(1ULL, c[k].user_data);
				EXPECT_EQ(0, c[k].res);
				closed++;
			} else {
				EXPECT_EQ(EVQ_CQE_READY, evq_cqe_type(&c[k]));
				EXPECT_EQ(2ULL, c[k].user_data);
				ready++;
			}
		}
	}
	EXPECT_EQ(1, closed);
	EXPECT_EQ(1, ready);
	/* The old socket is released: its peer sees EOF. */
	EXPECT_TRUE(!!evq_sees_eof(self->sv[1], 3000));
	/* The new watch is the live one. */
	EXPECT_EQ(-EEXIST, evq_ctl1(self->q.fd, EVQ_CTL_ADD, num, EPOLLIN, 0, 3));
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_DEL, num, 0, 0, 0));
	close(nsv[1]);
}

TEST_F(life, del_then_close_releases_at_once)
{
	struct evq_cqe c[4];

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sv[0], EPOLLIN, 0, 58));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_DEL, self->sv[0], 0, 0, 0));
	close(self->sv[0]);
	self->sv[0] = -1;
	EXPECT_TRUE(!!evq_sees_eof(self->sv[1], 1000));
	/* No CLOSED entry for a watch that was deleted. */
	EXPECT_EQ(0U, evq_collect(&self->q, c, 4, 1, 400));
}

TEST_F(life, release_with_live_watches)
{
	struct evq_q q2;
	int tsv[2] = { -1, -1 };
	int sv2[2];

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2));
	int base = evq_module_refcnt();

	ASSERT_EQ(0, evq_q_open(&q2, 2));
	ASSERT_EQ(0, evq_ctl1(q2.fd, EVQ_CTL_ADD, self->sv[0], EPOLLIN, 0, 1));
	ASSERT_EQ(0, evq_ctl1(q2.fd, EVQ_CTL_ADD, self->p[0], EPOLLIN, EVQ_WATCH_EDGE, 2));
	ASSERT_EQ(0, evq_ctl1(q2.fd, EVQ_CTL_ADD, sv2[0], EPOLLOUT | EPOLLIN, 0, 3));
	ASSERT_EQ(0, evq_ctl1(q2.fd, EVQ_CTL_ADD, self->p[1], EPOLLOUT,
			      EVQ_WATCH_ONESHOT, 4));
	if (!evq_tcp_pair(tsv))
		ASSERT_EQ(0, evq_ctl1(q2.fd, EVQ_CTL_ADD, tsv[0], EPOLLIN,
				      EVQ_WATCH_EXCLUSIVE, 5));
	/* Pending events, some beyond the ring (2 entries): ready list too. */
	ASSERT_EQ(1, write(self->sv[1], "a", 1));
	ASSERT_EQ(1, write(self->p[1], "b", 1));
	ASSERT_EQ(1, write(sv2[1], "c", 1));
	evq_wait(q2.fd, 0, 0, 0);
	evq_q_close(&q2);
	/* The queue itself is gone (no module reference left behind). */
	EXPECT_EQ(base, evq_refcnt_settles(base, 2000));

	/* Every watched file is released along with the queue. */
	close(self->sv[0]);
	self->sv[0] = -1;
	EXPECT_TRUE(!!evq_sees_eof(self->sv[1], 3000));
	close(sv2[0]);
	EXPECT_TRUE(!!evq_sees_eof(sv2[1], 3000));
	close(sv2[1]);
	close(self->p[0]);
	self->p[0] = -1;
	EXPECT_TRUE(!!writer_gets_epipe(self->p[1], 3000));
	if (tsv[0] >= 0) {
		close(tsv[0]);
		EXPECT_TRUE(!!evq_sees_eof(tsv[1], 3000));
		close(tsv[1]);
	}
}

/* Release with one level watch whose entry sits unconsumed in the ring. */
TEST_F(life, release_with_unconsumed_level_entry)
{
	struct evq_q q2;

	int base = evq_module_refcnt();

	ASSERT_EQ(0, evq_q_open(&q2, 8));
	ASSERT_EQ(0, evq_ctl1(q2.fd, EVQ_CTL_ADD, self->sv[0], EPOLLIN, 0, 1));
	ASSERT_EQ(1, write(self->sv[1], "a", 1));
	ASSERT_EQ(1, evq_wait(q2.fd, 2 * NSEC_PER_SEC, 1, 0));
	expect_released(_metadata, self, &q2, base);
}

/* Release with a level watch whose entry was consumed (due a re-check). */
TEST_F(life, release_with_consumed_level_entry)
{
	struct evq_q q2;

	int base = evq_module_refcnt();

	ASSERT_EQ(0, evq_q_open(&q2, 8));
	ASSERT_EQ(0, evq_ctl1(q2.fd, EVQ_CTL_ADD, self->sv[0], EPOLLIN, 0, 1));
	ASSERT_EQ(1, write(self->sv[1], "a", 1));
	ASSERT_EQ(1, evq_wait(q2.fd, 2 * NSEC_PER_SEC, 1, 0));
	ASSERT_EQ(1U, evq_harvest(&q2, NULL, 8));
	expect_released(_metadata, self, &q2, base);
}

/* Release with an edge watch held on the ready list (ring full). */
TEST_F(life, release_with_overflowed_edge_watch)
{
	struct evq_q q2;

	int base = evq_module_refcnt();

	ASSERT_EQ(0, evq_q_open(&q2, 1));
	ASSERT_EQ(0, evq_ctl1(q2.fd, EVQ_CTL_ADD, self->p[0], EPOLLIN, EVQ_WATCH_EDGE, 1));
	ASSERT_EQ(0, evq_ctl1(q2.fd, EVQ_CTL_ADD, self->sv[0], EPOLLIN, EVQ_WATCH_EDGE, 2));
	ASSERT_EQ(1, write(self->p[1], "a", 1));
	ASSERT_EQ(1, write(self->sv[1], "b", 1));
	EXPECT_LT(0U, *q2.overflow);
	expect_released(_metadata, self, &q2, base);
}

/* Release with an idle watch: nothing ever happened on it. */
TEST_F(life, release_with_idle_watch)
{
	struct evq_q q2;

	int base = evq_module_refcnt();

	ASSERT_EQ(0, evq_q_open(&q2, 8));
	ASSERT_EQ(0, evq_ctl1(q2.fd, EVQ_CTL_ADD, self->sv[0], EPOLLIN, EVQ_WATCH_EDGE, 1));
	expect_released(_metadata, self, &q2, base);
}

TEST_F(life, poll_on_queue_fd)
{
	struct pollfd pfd = { .fd = self->q.fd, .events = POLLIN };

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->p[0], EPOLLIN,
			      EVQ_WATCH_EDGE, 9));
	EXPECT_EQ(0, poll(&pfd, 1, 0));
	ASSERT_EQ(1, write(self->p[1], "p", 1));
	EXPECT_EQ(1, poll(&pfd, 1, 3000));
	EXPECT_TRUE(!!(pfd.revents & POLLIN));
	/* Consumed: not readable any more. */
	EXPECT_EQ(1U, evq_harvest(&self->q, NULL, 8));
	pfd.revents = 0;
	EXPECT_EQ(0, poll(&pfd, 1, 0)) TH_LOG("revents %#x", pfd.revents);
	/* A sleeping poll() is woken by a new post. */
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (pid == 0) {
		evq_sleep_ms(100);
		_exit(write(self->p[1], "q", 1) == 1 ? 0 : 1);
	}
	EXPECT_EQ(1, poll(&pfd, 1, 5000));
	EXPECT_TRUE(!!(pfd.revents & POLLIN));
	waitpid(pid, NULL, 0);
}

/* EPOLLIN also while the kernel holds events not yet in the ring. */
TEST_F(life, poll_sees_held_events)
{
	struct pollfd pfd;
	struct evq_q q1;
	int p2[2];

	ASSERT_EQ(0, evq_q_open(&q1, 1));
	ASSERT_EQ(0, pipe2(p2, O_CLOEXEC | O_NONBLOCK));
	ASSERT_EQ(0, evq_ctl1(q1.fd, EVQ_CTL_ADD, self->p[0], EPOLLIN, EVQ_WATCH_EDGE, 1));
	ASSERT_EQ(0, evq_ctl1(q1.fd, EVQ_CTL_ADD, p2[0], EPOLLIN, EVQ_WATCH_EDGE, 2));
	ASSERT_EQ(1, write(self->p[1], "1", 1));
	ASSERT_EQ(1, write(p2[1], "2", 1));
	ASSERT_EQ(1U, evq_harvest(&q1, NULL, 1));
	EXPECT_EQ(0U, evq_ring_count(&q1));
	EXPECT_TRUE(!!(*q1.flags & EVQ_RING_NEED_ENTER));
	pfd = (struct pollfd){ .fd = q1.fd, .events = POLLIN };
	EXPECT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_TRUE(!!(pfd.revents & POLLIN));
	EXPECT_EQ(1, evq_wait(q1.fd, 0, 0, 0));
	EXPECT_EQ(1U, evq_harvest(&q1, NULL, 1));
	pfd.revents = 0;
	EXPECT_EQ(0, poll(&pfd, 1, 0));
	evq_q_close(&q1);
	close(p2[0]);
	close(p2[1]);
}

TEST_F(life, nested_in_epoll)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xabc };
	struct epoll_event out[2];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	ASSERT_LE(0, ep);
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->p[0], EPOLLIN,
			      EVQ_WATCH_EDGE, 10));
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->q.fd, &ev));
	/* Not before an entry is pending. */
	EXPECT_EQ(0, epoll_wait(ep, out, 2, 0));
	EXPECT_EQ(0, epoll_wait(ep, out, 2, 100));
	ASSERT_EQ(1, write(self->p[1], "e", 1));
	ASSERT_EQ(1, epoll_wait(ep, out, 2, 3000));
	EXPECT_EQ(0xabcULL, out[0].data.u64);
	EXPECT_TRUE(!!(out[0].events & EPOLLIN));
	EXPECT_EQ(1U, evq_harvest(&self->q, NULL, 8));
	EXPECT_EQ(0, epoll_wait(ep, out, 2, 0));
	/* And it wakes a sleeping epoll_wait(). */
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (pid == 0) {
		evq_sleep_ms(100);
		_exit(write(self->p[1], "f", 1) == 1 ? 0 : 1);
	}
	EXPECT_EQ(1, epoll_wait(ep, out, 2, 5000));
	waitpid(pid, NULL, 0);
	close(ep);
}

/*
 * A queue watching an epoll fd that watches the queue: each post wakes
 * epoll, which wakes the queue's watch on it, which must not wake the
 * queue's poll wait queue again under the lock the first wake-up holds.
 * The module defers such nested wake-ups; without that this deadlocks.
 */
TEST_F(life, wakeup_cycle_through_epoll)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct evq_cqe c[64];
	uint32_t got = 0, from_ep = 0, from_pipe = 0, i, n;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int k;

	ASSERT_LE(0, ep);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->q.fd, &ev));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, ep, EPOLLIN,
			      EVQ_WATCH_EDGE, 0xe9));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->p[0], EPOLLIN,
			      EVQ_WATCH_EDGE, 0x91));
	for (k = 0; k < 20; k++) {
		ASSERT_EQ(1, write(self->p[1], "c", 1));
		n = evq_collect(&self->q, c, 64, 1, 3000);
		ASSERT_LE(1U, n);
		for (i = 0; i < n; i++) {
			from_ep += c[i].user_data == 0xe9;
			from_pipe += c[i].user_data == 0x91;
		}
		got += n;
	}
	/* Every write was reported; the queue kept working. */
	EXPECT_EQ(20U, from_pipe);
	EXPECT_EQ(got, from_ep + from_pipe);
	close(ep);
}

/*
 * The same cycle, with the deferred wake-up running after userspace has
 * consumed the epoll watch's entry: the worker's wake-up of the queue's
 * poll wait queue reaches the epoll watch again, which posts and wakes
 * the queue once more, from inside the worker's wake-up.  Regression:
 * the worker did not count itself as a wake-up in progress, so that
 * nested wake-up took the poll wait queue's lock again and the CPU
 * spun forever with interrupts off (found by evq_fuzz).  One CPU for
 * the test and its worker, harvest before anything can sleep, then
 * yield: the worker runs with the entry consumed.
 */
TEST_F(life, wakeup_cycle_from_worker)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct evq_cqe c[64];
	cpu_set_t one;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	char buf[16];

	ASSERT_LE(0, ep);
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(one), &one));
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->q.fd, &ev));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, ep, EPOLLIN,
			      EVQ_WATCH_EDGE, 0xe9));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->p[0], EPOLLIN,
			      EVQ_WATCH_EDGE, 0x91));
	for (int k = 0; k < 200; k++) {
		ASSERT_EQ(1, write(self->p[1], "c", 1));
		evq_harvest(&self->q, c, 64);
		sched_yield();
		evq_sleep_ms(1);
		evq_harvest(&self->q, c, 64);
		while (read(self->p[0], buf, sizeof(buf)) > 0)
			;
	}
	/* Still alive, and the queue still reports a write. */
	ASSERT_EQ(1, write(self->p[1], "d", 1));
	EXPECT_LE(1U, evq_collect(&self->q, c, 64, 1, 3000));
	close(ep);
}

/*
 * The same cycle started from the epoll side: the pipe is in the epoll
 * fd, not in the queue.  A write wakes the epoll fd's pollers under its
 * poll_wait lock; the queue's watch posts and would wake the queue's
 * pollers in place, which is the epoll fd again, and its poll_wait lock
 * again: the CPU spun on it for good before evq_wake_nested().
 */
TEST_F(life, wakeup_cycle_from_epoll)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct evq_cqe c[64];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	unsigned int seen = 0;
	char buf[16];

	ASSERT_LE(0, ep);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->q.fd, &ev));
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->p[0], &ev));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, ep, EPOLLIN,
			      EVQ_WATCH_EDGE, 0xe9));
	for (int k = 0; k < 200; k++) {
		ASSERT_EQ(1, write(self->p[1], "c", 1));
		seen += evq_collect(&self->q, c, 64, 1, 3000);
		while (read(self->p[0], buf, sizeof(buf)) > 0)
			;
		/* Drain the epoll fd too, so its next wake-up is an edge. */
		while (epoll_wait(ep, &ev, 1, 0) > 0)
			ev.events = EPOLLIN;
	}
	/* Every write reached the queue through the epoll fd. */
	EXPECT_LE(200U, seen);
	close(ep);
}

TEST_F(life, watches_an_epoll_fd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct evq_cqe c[4];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	ASSERT_LE(0, ep);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->p[0], &ev));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, ep, EPOLLIN, EVQ_WATCH_EDGE, 11));
	ASSERT_EQ(1, write(self->p[1], "g", 1));
	ASSERT_EQ(1U, evq_collect(&self->q, c, 4, 1, 3000));
	EXPECT_EQ(11ULL, c[0].user_data);
	EXPECT_TRUE(!!(c[0].res & EPOLLIN));
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_DEL, ep, 0, 0, 0));
	close(ep);
}

/* Several queues watching one fd with EVQ_WATCH_EXCLUSIVE: one is woken. */
TEST_F(life, exclusive_watch_wakes_one_queue)
{
	struct evq_q qs[3];
	uint32_t total = 0;

	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, evq_q_open(&qs[i], 8));
		ASSERT_EQ(0, evq_ctl1(qs[i].fd, EVQ_CTL_ADD, self->p[0], EPOLLIN,
				      EVQ_WATCH_EXCLUSIVE | EVQ_WATCH_EDGE, i));
	}
	ASSERT_EQ(1, write(self->p[1], "x", 1));
	evq_sleep_ms(200);
	for (int i = 0; i < 3; i++) {
		uint32_t n = evq_drain(&qs[i], NULL, 8);

		TH_LOG("queue %d: %u entries", i, n);
		total += n;
	}
	EXPECT_EQ(1U, total);
	for (int i = 0; i < 3; i++)
		evq_q_close(&qs[i]);
}

static void reload_if_unloaded(void)
{
	if (!evq_module_loaded())
		evq_load_module_from_env();
}

TEST_F(life, rmmod_refused_while_open)
{
	int ret;

	if (!evq_module_loaded())
		SKIP(return, "module not loaded as \"" EVQ_MODNAME "\"");
	ret = evq_delete_module(O_NONBLOCK);
	EXPECT_TRUE(ret == -EBUSY || ret == -EWOULDBLOCK) TH_LOG("delete_module: %d", ret);
	ret = evq_delete_module(0);
	EXPECT_TRUE(ret == -EBUSY || ret == -EWOULDBLOCK) TH_LOG("delete_module: %d", ret);
	EXPECT_TRUE(!!evq_module_loaded());
	/* The queue still works. */
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->p[0], EPOLLIN, 0, 1));
	reload_if_unloaded();
}

TEST_F(life, rmmod_refused_while_only_mapped)
{
	struct evq_q q2;
	int ret;

	if (!evq_module_loaded())
		SKIP(return, "module not loaded as \"" EVQ_MODNAME "\"");
	/* Only a mapping is left of this queue; close the fixture's too. */
	ASSERT_EQ(0, evq_q_open(&q2, 4));
	evq_q_close(&self->q);
	close(q2.fd);
	q2.fd = -1;
	ret = evq_delete_module(O_NONBLOCK);
	EXPECT_TRUE(ret == -EBUSY || ret == -EWOULDBLOCK) TH_LOG("delete_module: %d", ret);
	EXPECT_TRUE(!!evq_module_loaded());
	EXPECT_EQ(0U, *q2.tail);
	evq_q_close(&q2);
	reload_if_unloaded();
}

TEST_HARNESS_MAIN
