// SPDX-License-Identifier: GPL-2.0
/*
 * evq selftests: readiness in each watch mode (level, edge, oneshot) on
 * pipes, AF_UNIX socketpairs and TCP loopback sockets; EPOLLOUT; hang-ups
 * on peer close; res limited to the requested events plus ERR/HUP.
 */
#include "evq_util.h"

enum kind { K_PIPE, K_UNIX, K_TCP };

FIXTURE(ready) {
	struct evq_q q;
	int r;		/* the end we read from (and mostly watch) */
	int w;		/* the end we write to */
};

FIXTURE_VARIANT(ready) {
	enum kind kind;
};

FIXTURE_VARIANT_ADD(ready, pipe) { .kind = K_PIPE };
FIXTURE_VARIANT_ADD(ready, socketpair) { .kind = K_UNIX };
FIXTURE_VARIANT_ADD(ready, tcp) { .kind = K_TCP };

FIXTURE_SETUP(ready)
{
	int fds[2];

	self->q.fd = self->r = self->w = -1;
	EVQ_REQUIRE_DEVICE();
	switch (variant->kind) {
	case K_PIPE:
		ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
		break;
	case K_UNIX:
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
		break;
	case K_TCP:
		if (evq_tcp_pair(fds))
			SKIP(_exit(255), "no TCP loopback: %s", strerror(errno));
		break;
	}
	self->r = fds[0];
	self->w = fds[1];
	ASSERT_EQ(0, evq_set_nonblock(self->r));
	ASSERT_EQ(0, evq_set_nonblock(self->w));
	ASSERT_EQ(0, evq_q_open(&self->q, 64));
}

FIXTURE_TEARDOWN(ready)
{
	evq_q_close(&self->q);
	if (self->r >= 0)
		close(self->r);
	if (self->w >= 0)
		close(self->w);
}

static int send1(int fd)
{
	return write(fd, "e", 1) == 1 ? 0 : -1;
}

TEST_F(ready, level_reposted_while_ready)
{
	struct evq_cqe c[8];

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->r, EPOLLIN, 0, 11));
	ASSERT_EQ(0, send1(self->w));
	ASSERT_LE(1, evq_wait(self->q.fd, 2 * NSEC_PER_SEC, 1, 0));
	/* While the entry is unconsumed, a WAIT does not duplicate it. */
	EXPECT_EQ(1, evq_wait(self->q.fd, 0, 0, 0));
	ASSERT_EQ(1U, evq_harvest(&self->q, c, 8));
	EXPECT_EQ(EVQ_CQE_READY, evq_cqe_type(&c[0]));
	EXPECT_EQ(11ULL, c[0].user_data);
	EXPECT_TRUE(!!(c[0].res & EPOLLIN));

	/* Consumed, still readable: the next WAIT posts it again. */
	for (int round = 0; round < 3; round++) {
		EXPECT_EQ(1, evq_wait(self->q.fd, 0, 0, 0)) TH_LOG("round %d", round);
		ASSERT_EQ(1U, evq_harvest(&self->q, c, 8));
		EXPECT_EQ(11ULL, c[0].user_data);
		EXPECT_TRUE(!!(c[0].res & EPOLLIN));
	}

	/* Drained: nothing more. */
	evq_drain_fd(self->r);
	EXPECT_EQ(0, evq_wait(self->q.fd, 0, 0, 0));
	EXPECT_EQ(0U, evq_ring_count(&self->q));
	EXPECT_NO_ENTRIES(&self->q, 150);
}

TEST_F(ready, edge_one_entry_per_write)
{
	struct evq_cqe c[8];

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->r, EPOLLIN,
			      EVQ_WATCH_EDGE, 22));
	for (int round = 0; round < 4; round++) {
		ASSERT_EQ(0, send1(self->w));
		ASSERT_EQ(1U, evq_collect(&self->q, c, 8, 1, 2000))
			TH_LOG("round %d", round);
		EXPECT_EQ(EVQ_CQE_READY, evq_cqe_type(&c[0]));
		EXPECT_EQ(22ULL, c[0].user_data);
		EXPECT_TRUE(!!(c[0].res & EPOLLIN));
		/* Data is still unread, but edge mode does not repeat. */
		EXPECT_EQ(0, evq_wait(self->q.fd, 0, 0, 0)) TH_LOG("round %d", round);
		EXPECT_NO_ENTRIES(&self->q, 100);
	}
}

/* A consumed level entry leaves a watch to re-check: NEED_ENTER says so. */
TEST_F(ready, level_sets_need_enter)
{
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->r, EPOLLIN, 0, 12));
	EXPECT_EQ(0U, *self->q.flags & EVQ_RING_NEED_ENTER);
	ASSERT_EQ(0, send1(self->w));
	ASSERT_EQ(1U, evq_collect(&self->q, NULL, 8, 1, 2000));
	EXPECT_TRUE(!!(__atomic_load_n(self->q.flags, __ATOMIC_ACQUIRE) &
		       EVQ_RING_NEED_ENTER));
	/* Drained and re-checked: nothing held any more. */
	evq_drain_fd(self->r);
	EXPECT_EQ(0, evq_wait(self->q.fd, 0, 0, 0));
	EXPECT_EQ(0U, __atomic_load_n(self->q.flags, __ATOMIC_ACQUIRE) &
		  EVQ_RING_NEED_ENTER);
}

/* Edge: wake-ups with nothing new coalesce while the entry is unconsumed. */
TEST_F(ready, edge_coalesced_until_consumed)
{
	struct evq_cqe c[8];

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->r, EPOLLIN,
			      EVQ_WATCH_EDGE, 23));
	ASSERT_EQ(0, send1(self->w));
	ASSERT_EQ(1, evq_wait(self->q.fd, 2 * NSEC_PER_SEC, 1, 0));
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(0, send1(self->w));
	evq_sleep_ms(100);
	EXPECT_EQ(1, evq_wait(self->q.fd, 0, 0, 0));
	EXPECT_EQ(1U, evq_ring_count(&self->q));
	ASSERT_EQ(1U, evq_harvest(&self->q, c, 8));
	EXPECT_EQ(23ULL, c[0].user_data);
	/* Consumed: the next wake-up gets a new entry. */
	ASSERT_EQ(0, send1(self->w));
	ASSERT_EQ(1U, evq_collect(&self->q, c, 8, 1, 2000));
	EXPECT_EQ(23ULL, c[0].user_data);
}

/* Edge: an event the unconsumed entry does not carry gets its own entry. */
TEST_F(ready, edge_new_events_not_coalesced)
{
	struct evq_cqe c[8];
	uint32_t n, res = 0;

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->r,
			      EPOLLIN | EPOLLRDHUP, EVQ_WATCH_EDGE, 24));
	ASSERT_EQ(0, send1(self->w));
	ASSERT_EQ(1, evq_wait(self->q.fd, 2 * NSEC_PER_SEC, 1, 0));
	/* Not consumed; now the peer goes away (RDHUP / HUP are new). */
	close(self->w);
	self->w = -1;
	for (int i = 0; i < 200 && evq_ring_count(&self->q) < 2; i++) {
		evq_wait(self->q.fd, 10 * NSEC_PER_MSEC, 2, 0);
	}
	n = evq_harvest(&self->q, c, 8);
	ASSERT_LE(2U, n);
	EXPECT_TRUE(!!(c[0].res & EPOLLIN));
	for (uint32_t j = 1; j < n; j++) {
		EXPECT_EQ(24ULL, c[j].user_data);
		res |= c[j].res;
	}
	EXPECT_TRUE(!!(res & (EPOLLRDHUP | EPOLLHUP))) TH_LOG("res %#x", res);
}

TEST_F(ready, oneshot_disarmed_until_mod)
{
	struct evq_cqe c[8];

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->r, EPOLLIN,
			      EVQ_WATCH_ONESHOT, 33));
	ASSERT_EQ(0, send1(self->w));
	ASSERT_EQ(1U, evq_collect(&self->q, c, 8, 1, 2000));
	EXPECT_EQ(33ULL, c[0].user_data);
	EXPECT_TRUE(!!(c[0].res & EPOLLIN));
	/* Disarmed: still readable, more input, still nothing. */
	EXPECT_EQ(0, evq_wait(self->q.fd, 0, 0, 0));
	ASSERT_EQ(0, send1(self->w));
	EXPECT_NO_ENTRIES(&self->q, 200);

	/* Re-arm: exactly one more entry (from the MOD or the next write). */
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_MOD, self->r, EPOLLIN,
			      EVQ_WATCH_ONESHOT, 34));
	ASSERT_EQ(0, send1(self->w));
	ASSERT_EQ(1U, evq_collect(&self->q, c, 8, 1, 2000));
	EXPECT_EQ(34ULL, c[0].user_data);
	EXPECT_TRUE(!!(c[0].res & EPOLLIN));
	EXPECT_NO_ENTRIES(&self->q, 200);
	ASSERT_EQ(0, send1(self->w));
	EXPECT_NO_ENTRIES(&self->q, 200);
}

TEST_F(ready, epollout_on_add)
{
	struct evq_cqe c[8];
	uint32_t n;

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->w, EPOLLOUT, 0, 44));
	n = evq_collect(&self->q, c, 8, 1, 2000);
	ASSERT_LE(1U, n) TH_LOG("a writable fd is not reported on ADD");
	EXPECT_EQ(44ULL, c[0].user_data);
	EXPECT_TRUE(!!(c[0].res & EPOLLOUT));
}

TEST_F(ready, epollout_when_space_frees)
{
	static char buf[65536];
	struct evq_cqe c[16];
	uint32_t n, got = 0, res = 0;
	ssize_t k;

	/* Fill the write side until it would block. */
	for (;;) {
		k = write(self->w, buf, sizeof(buf));
		if (k < 0) {
			ASSERT_EQ(EAGAIN, errno);
			break;
		}
	}
	if (variant->kind == K_TCP) {
		/* Let loopback settle, then fill what got freed. */
		evq_sleep_ms(50);
		while (write(self->w, buf, sizeof(buf)) > 0)
			;
	}
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->w, EPOLLOUT,
			      EVQ_WATCH_EDGE, 55));
	evq_collect(&self->q, c, 16, 16, 100);	/* forget anything stale */

	/* Drain the reader: the writer becomes writable again. */
	for (int i = 0; i < 20 && got == 0; i++) {
		evq_drain_fd(self->r);
		n = evq_collect(&self->q, c, 16, 1, 100);
		for (uint32_t j = 0; j < n; j++) {
			if (c[j].user_data == 55) {
				got++;
				res |= c[j].res;
			}
		}
	}
	EXPECT_LE(1U, got);
	EXPECT_TRUE(!!(res & EPOLLOUT));
	EXPECT_EQ(0U, res & ~(uint32_t)(EPOLLOUT | EPOLLERR | EPOLLHUP));
}

/*
 * Collect entries of @ud until their merged res holds all of @want, or
 * @ms pass; returns the merged res.  Later readiness gets a new entry, so
 * a hang-up that follows an earlier entry still shows.
 */
static uint32_t collect_res(struct evq_q *q, uint64_t ud, uint32_t want,
			    int ms, int *foreign)
{
	int64_t deadline = evq_now_ns() + (int64_t)ms * NSEC_PER_MSEC;
	struct evq_cqe c[16];
	uint32_t res = 0;

	while ((res & want) != want && evq_now_ns() < deadline) {
		uint32_t n = evq_collect(q, c, 16, 1, 50);

		for (uint32_t j = 0; j < n; j++) {
			if (c[j].user_data == ud &&
			    evq_cqe_type(&c[j]) == EVQ_CQE_READY)
				res |= c[j].res;
			else
				(*foreign)++;
		}
	}
	return res;
}

TEST_F(ready, peer_close_reports_hangup)
{
	uint32_t want, res;
	int foreign = 0;

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->r,
			      EPOLLIN | EPOLLRDHUP, EVQ_WATCH_EDGE, 66));
	EXPECT_NO_ENTRIES(&self->q, 50);
	close(self->w);
	self->w = -1;
	switch (variant->kind) {
	case K_PIPE:
		want = EPOLLHUP;
		break;
	case K_UNIX:
		want = EPOLLIN | EPOLLRDHUP | EPOLLHUP;
		break;
	default:
		want = EPOLLIN | EPOLLRDHUP;
		break;
	}
	res = collect_res(&self->q, 66, want, 3000, &foreign);
	EXPECT_EQ(want, res & want) TH_LOG("res %#x", res);
	EXPECT_EQ(0, foreign);
	EXPECT_EQ(0U, res & ~(uint32_t)(EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP));
}

/*
 * Readiness the watch did not ask for is not reported: plain input on a
 * watch for EPOLLPRI (no urgent data anywhere) gives no entry.
 */
TEST_F(ready, unrequested_event_not_reported)
{
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->r, EPOLLPRI, 0, 76));
	ASSERT_EQ(0, send1(self->w));
	EXPECT_NO_ENTRIES(&self->q, 200);
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_MOD, self->r, EPOLLPRI,
			      EVQ_WATCH_EDGE, 76));
	ASSERT_EQ(0, send1(self->w));
	EXPECT_NO_ENTRIES(&self->q, 200);
}

/*
 * A watch that asks for a bit wake-up masks cannot be trusted with
 * (EPOLLPRI) is polled by the next wait, in the caller, never by a worker
 * behind its back: until then the ring stays empty, NEED_ENTER is set
 * and the queue fd polls readable.
 */
TEST_F(ready, untrusted_mask_polled_at_wait)
{
	struct pollfd pfd = { .events = POLLIN };
	struct evq_cqe c;

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->r,
			      EPOLLIN | EPOLLPRI, EVQ_WATCH_EDGE, 79));
	EXPECT_EQ(0, evq_wait(self->q.fd, 0, 0, 0));
	ASSERT_EQ(0, send1(self->w));
	evq_sleep_ms(100);
	EXPECT_EQ(0U, evq_ring_count(&self->q));
	EXPECT_TRUE(!!(*self->q.flags & EVQ_RING_NEED_ENTER));
	pfd.fd = self->q.fd;
	EXPECT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_EQ(1, evq_wait(self->q.fd, 0, 0, 0));
	ASSERT_EQ(1U, evq_harvest(&self->q, &c, 1));
	EXPECT_EQ(79ULL, c.user_data);
	EXPECT_EQ((uint32_t)EPOLLIN, (uint32_t)c.res & (EPOLLIN | EPOLLPRI))
		TH_LOG("res %#x", c.res);
	EXPECT_EQ(0U, *self->q.flags & EVQ_RING_NEED_ENTER);
}

TEST_F(ready, hangup_reported_unrequested)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct evq_cqe c[16];
	uint32_t n, res = 0;

	/* Ask for nothing that will happen: ERR and HUP still come. */
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->r, EPOLLPRI, 0, 77));
	EXPECT_NO_ENTRIES(&self->q, 50);
	if (variant->kind == K_TCP)	/* reset, so the reader gets ERR|HUP */
		ASSERT_EQ(0, setsockopt(self->w, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	close(self->w);
	self->w = -1;
	n = evq_collect(&self->q, c, 16, 1, 2000);
	ASSERT_LE(1U, n);
	for (uint32_t j = 0; j < n; j++) {
		res |= c[j].res;
		EXPECT_EQ(77ULL, c[j].user_data);
	}
	EXPECT_TRUE(!!(res & (EPOLLHUP | EPOLLERR))) TH_LOG("res %#x", res);
	EXPECT_EQ(0U, res & ~(uint32_t)(EPOLLPRI | EPOLLERR | EPOLLHUP))
		TH_LOG("res %#x", res);
}

TEST_F(ready, res_limited_to_requested)
{
	struct evq_cqe c[16];
	uint32_t n, seen_r = 0, seen_w = 0;

	/*
	 * Make both ends carry more than they are watched for: a socket's
	 * read end is writable too, its write end gets input as well.
	 */
	if (variant->kind != K_PIPE)
		ASSERT_EQ(0, send1(self->r));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->r, EPOLLIN,
			      EVQ_WATCH_EDGE, 88));
	/* Level: a writable fd is reported (on ADD or at the next WAIT). */
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->w, EPOLLOUT, 0, 99));
	ASSERT_EQ(0, send1(self->w));
	n = evq_collect(&self->q, c, 16, 2, 2000);
	n += evq_collect(&self->q, c + n, 16 - n, 16, 100);
	for (uint32_t j = 0; j < n; j++) {
		EXPECT_EQ(EVQ_CQE_READY, evq_cqe_type(&c[j]));
		if (c[j].user_data == 88) {
			seen_r |= c[j].res;
			EXPECT_EQ(0U, c[j].res & ~(uint32_t)(EPOLLIN | EPOLLERR | EPOLLHUP))
				TH_LOG("read side res %#x", c[j].res);
		} else if (c[j].user_data == 99) {
			seen_w |= c[j].res;
			EXPECT_EQ(0U, c[j].res & ~(uint32_t)(EPOLLOUT | EPOLLERR | EPOLLHUP))
				TH_LOG("write side res %#x", c[j].res);
		} else {
			EXPECT_TRUE(!!(0)) TH_LOG("user_data %llu",
					      (unsigned long long)c[j].user_data);
		}
	}
	EXPECT_TRUE(!!(seen_r & EPOLLIN));
	EXPECT_TRUE(!!(seen_w & EPOLLOUT));
}

TEST_HARNESS_MAIN
