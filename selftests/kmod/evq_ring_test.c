// SPDX-License-Identifier: GPL-2.0
/*
 * evq selftests: the completion ring.  10,000 watches on one queue, ring
 * overflow into the ready list (nothing lost, nothing doubled, in order),
 * coalescing on the ready list, wrap-around, and a garbage head.
 */
#include "evq_util.h"

#define NWATCH		10000
#define NREADY		100

struct pipes {
	int n;
	int (*fd)[2];
};

static int pipes_open(struct pipes *p, int n)
{
	p->fd = calloc(n, sizeof(*p->fd));
	p->n = 0;
	if (!p->fd)
		return -1;
	for (; p->n < n; p->n++)
		if (pipe2(p->fd[p->n], O_NONBLOCK | O_CLOEXEC))
			return -1;
	return 0;
}

static void pipes_close(struct pipes *p)
{
	for (int i = 0; i < p->n; i++) {
		close(p->fd[i][0]);
		close(p->fd[i][1]);
	}
	free(p->fd);
	p->fd = NULL;
	p->n = 0;
}

/* ADD the read end of every pipe, user_data = base + index, in batches. */
static int add_all(int qfd, struct pipes *p, uint32_t flags, uint64_t base,
		   uint32_t max_batch)
{
	struct evq_ctl *e = calloc(p->n, sizeof(*e));
	int done = 0, ret = 0;

	if (!e)
		return -ENOMEM;
	for (int i = 0; i < p->n; i++)
		evq_ctl_fill(&e[i], EVQ_CTL_ADD, p->fd[i][0], EPOLLIN, flags,
			     base + i);
	while (done < p->n && !ret) {
		uint32_t nr = p->n - done;

		if (nr > max_batch)
			nr = max_batch;
		int r = evq_ctl_batch(qfd, e + done, nr);

		if (r != (int)nr) {
			ret = r < 0 ? r : -EIO;
			break;
		}
		for (uint32_t k = 0; k < nr; k++)
			if (e[done + k].res)
				ret = e[done + k].res;
		done += nr;
	}
	free(e);
	return ret;
}

FIXTURE(ring) {
	struct evq_q q;
	struct pipes p;
	struct evq_info info;
};

FIXTURE_SETUP(ring)
{
	self->q.fd = -1;
	EVQ_REQUIRE_DEVICE();
	ASSERT_EQ(0, evq_raise_nofile(2 * NWATCH + 256))
		TH_LOG("RLIMIT_NOFILE: %s", strerror(errno));
	self->q.fd = evq_open_dev();
	ASSERT_LE(0, self->q.fd);
	ASSERT_EQ(0, evq_get_info(self->q.fd, &self->info));
	close(self->q.fd);
	self->q.fd = -1;
}

FIXTURE_TEARDOWN(ring)
{
	evq_q_close(&self->q);
	pipes_close(&self->p);
}

TEST_F_TIMEOUT(ring, ten_thousand_watches, 120)
{
	static struct evq_cqe c[4 * NREADY];
	static int seen[NWATCH];
	uint32_t n;

	ASSERT_EQ(0, evq_q_open(&self->q, 256));
	ASSERT_EQ(0, pipes_open(&self->p, NWATCH)) TH_LOG("pipe %d: %s",
							   self->p.n, strerror(errno));
	ASSERT_EQ(0, add_all(self->q.fd, &self->p, EVQ_WATCH_EDGE, 1000000,
			     self->info.max_batch));
	/* Nothing is ready yet. */
	EXPECT_EQ(0, evq_wait(self->q.fd, 0, 0, 0));

	for (int i = 0; i < NREADY; i++)
		ASSERT_EQ(1, write(self->p.fd[i * (NWATCH / NREADY) + 37][1], "r", 1));
	n = evq_collect(&self->q, c, 4 * NREADY, NREADY, 5000);
	n += evq_drain(&self->q, c + n, 4 * NREADY - n);
	EXPECT_EQ((uint32_t)NREADY, n);
	for (uint32_t k = 0; k < n; k++) {
		uint64_t ud = c[k].user_data;

		EXPECT_EQ(EVQ_CQE_READY, evq_cqe_type(&c[k]));
		EXPECT_TRUE(!!(c[k].res & EPOLLIN));
		ASSERT_TRUE(ud >= 1000000 && ud < 1000000 + NWATCH)
			TH_LOG("user_data %llu", (unsigned long long)ud);
		seen[ud - 1000000]++;
	}
	for (int i = 0; i < NWATCH; i++) {
		int want = (i % (NWATCH / NREADY)) == 37;

		EXPECT_EQ(want, seen[i]) TH_LOG("watch %d", i);
	}
}

/* A ring of 8, 100 edge watches ready at once: all delivered once, in order. */
TEST_F(ring, overflow_delivers_all_once_in_order)
{
	struct evq_cqe c[8], all[2 * NREADY];
	uint32_t total = 0, overflow, flags;
	int seen[NREADY] = { 0 };
	int rounds = 0;

	ASSERT_EQ(0, evq_q_open(&self->q, 8));
	ASSERT_EQ(8U, self->q.p.cq_entries);
	ASSERT_EQ(0, pipes_open(&self->p, NREADY));
	ASSERT_EQ(0, add_all(self->q.fd, &self->p, EVQ_WATCH_EDGE, 0, 1024));

	for (int i = 0; i < NREADY; i++)
		ASSERT_EQ(1, write(self->p.fd[i][1], "o", 1));
	EXPECT_EQ(8U, evq_ring_count(&self->q));
	overflow = __atomic_load_n(self->q.overflow, __ATOMIC_ACQUIRE);
	flags = __atomic_load_n(self->q.flags, __ATOMIC_ACQUIRE);
	EXPECT_LT(0U, overflow);
	EXPECT_LE((uint32_t)(NREADY - 8), overflow);
	EXPECT_TRUE(!!(flags & EVQ_RING_NEED_ENTER)) TH_LOG("flags %#x", flags);

	/* Consume, then EVQ_IOC_WAIT(0) to move the ready list in. */
	while (rounds++ < 1000) {
		uint32_t n = evq_harvest(&self->q, c, 8);

		for (uint32_t k = 0; k < n && total < 2 * NREADY; k++)
			all[total++] = c[k];
		int r = evq_wait(self->q.fd, 0, 0, 0);

		ASSERT_LE(0, r);
		if (r == 0 && n == 0)
			break;
	}
	EXPECT_EQ((uint32_t)NREADY, total);
	for (uint32_t k = 0; k < total; k++) {
		ASSERT_GT((uint64_t)NREADY, all[k].user_data);
		EXPECT_EQ(EVQ_CQE_READY, evq_cqe_type(&all[k]));
		seen[all[k].user_data]++;
	}
	for (int i = 0; i < NREADY; i++) {
		EXPECT_EQ(1, seen[i]) TH_LOG("watch %d delivered %d times", i, seen[i]);
	}
	/* In the order they became ready. */
	for (uint32_t k = 0; k < total; k++) {
		EXPECT_EQ((uint64_t)k, all[k].user_data) TH_LOG("position %u", k);
	}
	flags = __atomic_load_n(self->q.flags, __ATOMIC_ACQUIRE);
	EXPECT_EQ(0U, flags & EVQ_RING_NEED_ENTER);
	EXPECT_EQ(0, evq_wait(self->q.fd, 0, 0, 0));
}

/* The same with level watches: all 100 come out; drained, all go quiet. */
TEST_F(ring, overflow_level_all_delivered)
{
	struct evq_cqe c[8];
	int seen[NREADY] = { 0 };
	int distinct = 0, rounds = 0;

	ASSERT_EQ(0, evq_q_open(&self->q, 8));
	ASSERT_EQ(0, pipes_open(&self->p, NREADY));
	ASSERT_EQ(0, add_all(self->q.fd, &self->p, 0, 0, 1024));
	for (int i = 0; i < NREADY; i++)
		ASSERT_EQ(1, write(self->p.fd[i][1], "l", 1));
	EXPECT_LT(0U, __atomic_load_n(self->q.overflow, __ATOMIC_ACQUIRE));

	/* Read each fd as its entry comes, so level re-checks find it idle. */
	while (rounds++ < 1000) {
		uint32_t n = evq_harvest(&self->q, c, 8);

		for (uint32_t k = 0; k < n; k++) {
			ASSERT_GT((uint64_t)NREADY, c[k].user_data);
			if (!seen[c[k].user_data]++)
				distinct++;
			evq_drain_fd(self->p.fd[c[k].user_data][0]);
		}
		int r = evq_wait(self->q.fd, 0, 0, 0);

		ASSERT_LE(0, r);
		if (r == 0 && n == 0)
			break;
	}
	EXPECT_EQ(NREADY, distinct);
	EXPECT_EQ(0, evq_wait(self->q.fd, 0, 0, 0));
	EXPECT_EQ(0U, __atomic_load_n(self->q.flags, __ATOMIC_ACQUIRE) &
		  EVQ_RING_NEED_ENTER);
}

/* A watch waiting on the ready list is there at most once. */
TEST_F(ring, ready_list_coalesces)
{
	struct evq_cqe c[4];
	int sv[2];

	ASSERT_EQ(0, evq_q_open(&self->q, 1));
	ASSERT_EQ(1U, self->q.p.cq_entries);
	ASSERT_EQ(0, pipes_open(&self->p, 1));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->p.fd[0][0], EPOLLIN,
			      EVQ_WATCH_EDGE, 1));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, sv[0], EPOLLIN,
			      EVQ_WATCH_EDGE, 2));
	/* Fill the one slot, then wake the second watch three times. */
	ASSERT_EQ(1, write(self->p.fd[0][1], "a", 1));
	ASSERT_EQ(1U, evq_ring_count(&self->q));
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(1, write(sv[1], "b", 1));
	EXPECT_LT(0U, *self->q.overflow);

	ASSERT_EQ(1U, evq_harvest(&self->q, c, 4));
	EXPECT_EQ(1ULL, c[0].user_data);
	EXPECT_EQ(1, evq_wait(self->q.fd, 0, 0, 0));
	ASSERT_EQ(1U, evq_harvest(&self->q, c, 4));
	EXPECT_EQ(2ULL, c[0].user_data);
	EXPECT_TRUE(!!(c[0].res & EPOLLIN));
	/* No second copy of watch 2. */
	EXPECT_EQ(0, evq_wait(self->q.fd, 0, 0, 0));
	EXPECT_EQ(0U, evq_ring_count(&self->q));
	close(sv[0]);
	close(sv[1]);
}

/* head and tail run free and index with & ring_mask. */
TEST_F(ring, wraps_around)
{
	struct evq_cqe c[4];

	ASSERT_EQ(0, evq_q_open(&self->q, 4));
	ASSERT_EQ(0, pipes_open(&self->p, 3));
	ASSERT_EQ(0, add_all(self->q.fd, &self->p, EVQ_WATCH_EDGE, 500, 1024));
	for (uint32_t round = 0; round < 50; round++) {
		int i = round % 3;

		ASSERT_EQ(1, write(self->p.fd[i][1], "w", 1));
		ASSERT_EQ(1U, evq_collect(&self->q, c, 4, 1, 2000)) TH_LOG("round %u", round);
		EXPECT_EQ(500ULL + i, c[0].user_data);
		EXPECT_EQ(round + 1, __atomic_load_n(self->q.tail, __ATOMIC_ACQUIRE));
	}
	EXPECT_EQ(0U, *self->q.overflow);
}

/*
 * "The kernel never trusts head": garbage only stops new entries from
 * being written, and nothing is lost.  First without any ioctl while head
 * is bad.
 */
TEST_F(ring, bogus_head_only_delays)
{
	struct evq_cqe c[8];
	uint32_t tail;

	ASSERT_EQ(0, evq_q_open(&self->q, 8));
	ASSERT_EQ(0, pipes_open(&self->p, 2));
	ASSERT_EQ(0, add_all(self->q.fd, &self->p, EVQ_WATCH_EDGE, 70, 1024));
	tail = __atomic_load_n(self->q.tail, __ATOMIC_ACQUIRE);
	/* head beyond tail: the ring looks over-full. */
	__atomic_store_n(self->q.head, tail + 1000, __ATOMIC_RELEASE);
	ASSERT_EQ(1, write(self->p.fd[0][1], "x", 1));
	ASSERT_EQ(1, write(self->p.fd[1][1], "y", 1));
	EXPECT_EQ(tail, __atomic_load_n(self->q.tail, __ATOMIC_ACQUIRE));
	EXPECT_TRUE(!!(*self->q.flags & EVQ_RING_NEED_ENTER));
	/* Put head back: both events arrive. */
	__atomic_store_n(self->q.head, tail, __ATOMIC_RELEASE);
	EXPECT_EQ(2, evq_wait(self->q.fd, 0, 0, 0));
	ASSERT_EQ(2U, evq_harvest(&self->q, c, 8));
	EXPECT_EQ(1, evq_count_ud(c, 2, EVQ_CQE_READY, 70));
	EXPECT_EQ(1, evq_count_ud(c, 2, EVQ_CQE_READY, 71));
}

/* The same, with EVQ_IOC_WAIT called while head is bad (both ways). */
TEST_F(ring, bogus_head_survives_wait)
{
	struct evq_cqe c[8];
	uint32_t tail;

	ASSERT_EQ(0, evq_q_open(&self->q, 8));
	ASSERT_EQ(0, pipes_open(&self->p, 2));
	ASSERT_EQ(0, add_all(self->q.fd, &self->p, EVQ_WATCH_EDGE, 70, 1024));
	tail = __atomic_load_n(self->q.tail, __ATOMIC_ACQUIRE);
	__atomic_store_n(self->q.head, tail + 1000, __ATOMIC_RELEASE);
	ASSERT_EQ(1, write(self->p.fd[0][1], "x", 1));
	ASSERT_EQ(1, write(self->p.fd[1][1], "y", 1));
	EXPECT_LE(0, evq_wait(self->q.fd, 0, 0, 0));
	EXPECT_EQ(tail, __atomic_load_n(self->q.tail, __ATOMIC_ACQUIRE));
	TH_LOG("with a bogus head: overflow %u flags %#x", *self->q.overflow,
	       *self->q.flags);
	__atomic_store_n(self->q.head, tail, __ATOMIC_RELEASE);
	EXPECT_EQ(2, evq_wait(self->q.fd, 0, 0, 0));
	ASSERT_EQ(2U, evq_harvest(&self->q, c, 8));
	EXPECT_EQ(1, evq_count_ud(c, 2, EVQ_CQE_READY, 70));
	EXPECT_EQ(1, evq_count_ud(c, 2, EVQ_CQE_READY, 71));
	/* A head far behind tail also only looks full. */
	__atomic_store_n(self->q.head, tail - 1000, __ATOMIC_RELEASE);
	ASSERT_EQ(1, write(self->p.fd[0][1], "z", 1));
	EXPECT_LE(0, evq_wait(self->q.fd, 0, 0, 0));
	EXPECT_EQ(tail + 2, __atomic_load_n(self->q.tail, __ATOMIC_ACQUIRE));
	__atomic_store_n(self->q.head, tail + 2, __ATOMIC_RELEASE);
	EXPECT_EQ(1, evq_wait(self->q.fd, 0, 0, 0));
	ASSERT_EQ(1U, evq_harvest(&self->q, c, 8));
	EXPECT_EQ(70ULL, c[0].user_data);
}

TEST_HARNESS_MAIN
