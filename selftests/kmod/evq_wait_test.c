// SPDX-License-Identifier: GPL-2.0
/*
 * evq selftests: EVQ_IOC_WAIT.  Timeouts (never asserting tight timings),
 * min_events, the return count, EINTR, wake-ups from other threads, and
 * exclusive waiters.
 */
#include "evq_util.h"
#include <pthread.h>
#include <sched.h>

#define NTHREADS	3

FIXTURE(wait) {
	struct evq_q q;
	int p[4][2];
};

FIXTURE_SETUP(wait)
{
	self->q.fd = -1;
	for (int i = 0; i < 4; i++)
		self->p[i][0] = self->p[i][1] = -1;
	EVQ_REQUIRE_DEVICE();
	ASSERT_EQ(0, evq_q_open(&self->q, 16));
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(0, pipe2(self->p[i], O_NONBLOCK | O_CLOEXEC));
		ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->p[i][0], EPOLLIN,
				      EVQ_WATCH_EDGE, 100 + i));
	}
}

FIXTURE_TEARDOWN(wait)
{
	evq_q_close(&self->q);
	for (int i = 0; i < 4; i++) {
		if (self->p[i][0] >= 0)
			close(self->p[i][0]);
		if (self->p[i][1] >= 0)
			close(self->p[i][1]);
	}
}

TEST_F(wait, timeout_returns_zero)
{
	int64_t t0 = evq_now_ns();

	EXPECT_EQ(0, evq_wait(self->q.fd, 50 * NSEC_PER_MSEC, 1, 0));
	/* Returned, and not before the timeout. */
	EXPECT_LE(50 * NSEC_PER_MSEC, evq_now_ns() - t0);
	t0 = evq_now_ns();
	EXPECT_EQ(0, evq_wait(self->q.fd, 1, 1, 0));
	EXPECT_LE(1, evq_now_ns() - t0);
}

TEST_F(wait, zero_timeout_does_not_sleep)
{
	/* min_events is not reached and the call still returns. */
	EXPECT_EQ(0, evq_wait(self->q.fd, 0, 1, 0));
	EXPECT_EQ(0, evq_wait(self->q.fd, 0, 16, 0));
}

TEST_F(wait, min_zero_returns_at_once)
{
	/* No limit, but min_events 0 is already met (harness timeout guards). */
	EXPECT_EQ(0, evq_wait(self->q.fd, -1, 0, 0));
}

TEST_F(wait, returns_ring_count)
{
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(1, write(self->p[i][1], "c", 1));
	EXPECT_EQ(3, evq_wait(self->q.fd, -1, 1, 0));
	EXPECT_EQ(3, evq_wait(self->q.fd, 0, 3, 0));
	EXPECT_EQ(3U, evq_ring_count(&self->q));
	/* Above what is there: the timeout passes, the count is returned. */
	EXPECT_EQ(3, evq_wait(self->q.fd, 20 * NSEC_PER_MSEC, 4, 0));
	EXPECT_EQ(1U, evq_harvest(&self->q, NULL, 1));
	EXPECT_EQ(2, evq_wait(self->q.fd, 0, 0, 0));
}

struct writer {
	int fd;
	int delay_ms;
	int count;
};

static void *writer_fn(void *arg)
{
	struct writer *w = arg;

	for (int i = 0; i < w->count; i++) {
		evq_sleep_ms(w->delay_ms);
		if (write(w->fd, "t", 1) != 1)
			break;
	}
	return NULL;
}

TEST_F(wait, woken_by_event_from_thread)
{
	struct writer w = { .fd = self->p[0][1], .delay_ms = 100, .count = 1 };
	pthread_t t;

	ASSERT_EQ(0, pthread_create(&t, NULL, writer_fn, &w));
	EXPECT_EQ(1, evq_wait(self->q.fd, 10 * NSEC_PER_SEC, 1, 0));
	pthread_join(t, NULL);
	EXPECT_EQ(1U, evq_ring_count(&self->q));
}

/* Short sleeps on the waiter's CPU: an hrtimer expires every millisecond. */
static void *ticker_fn(void *arg)
{
	volatile int *stop = arg;

	while (!*stop)
		evq_sleep_ms(1);
	return NULL;
}

/*
 * A timeout of centuries is as good as none: the wait must not end
 * before the event.  Regression: the deadline was now + timeout_ns, which
 * wraps negative for timeouts near INT64_MAX; the hrtimer then kept a
 * far hard expiry but a soft one in the past, so the next timer to fire
 * on that CPU (the ticker's) ended the wait with nothing.
 */
TEST_F(wait, huge_timeout_does_not_wrap)
{
	struct writer w = { .fd = self->p[0][1], .delay_ms = 300, .count = 1 };
	int64_t huge[] = { INT64_MAX, INT64_MAX - 1, INT64_MAX / 2 + 1 };
	volatile int stop = 0;
	pthread_t t, tick;
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(0, &one);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(one), &one));
	/* Created after the call above: the ticker inherits CPU 0. */
	ASSERT_EQ(0, pthread_create(&tick, NULL, ticker_fn, (void *)&stop));
	for (unsigned int i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		ASSERT_EQ(0, pthread_create(&t, NULL, writer_fn, &w));
		EXPECT_EQ(1, evq_wait(self->q.fd, huge[i], 1, 0))
			TH_LOG("timeout %lld ns", (long long)huge[i]);
		pthread_join(t, NULL);
		evq_harvest(&self->q, NULL, 16);
		evq_drain_fd(self->p[0][0]);
	}
	stop = 1;
	pthread_join(tick, NULL);
}

TEST_F(wait, min_events_waits_for_enough)
{
	struct writer w = { .fd = self->p[1][1], .delay_ms = 50, .count = 1 };
	struct writer w2 = { .fd = self->p[2][1], .delay_ms = 150, .count = 1 };
	pthread_t t, t2;
	int r;

	ASSERT_EQ(1, write(self->p[0][1], "m", 1));
	ASSERT_EQ(0, pthread_create(&t, NULL, writer_fn, &w));
	ASSERT_EQ(0, pthread_create(&t2, NULL, writer_fn, &w2));
	r = evq_wait(self->q.fd, 10 * NSEC_PER_SEC, 3, 0);
	EXPECT_EQ(3, r);
	pthread_join(t, NULL);
	pthread_join(t2, NULL);
}

static void on_usr1(int sig)
{
	(void)sig;
}

struct killer {
	pthread_t target;
	int delay_ms;
};

static void *killer_fn(void *arg)
{
	struct killer *k = arg;

	evq_sleep_ms(k->delay_ms);
	pthread_kill(k->target, SIGUSR1);
	return NULL;
}

TEST_F(wait, signal_gives_eintr)
{
	struct sigaction sa = { .sa_handler = on_usr1 };	/* no SA_RESTART */
	struct killer k = { .target = pthread_self(), .delay_ms = 100 };
	pthread_t t;

	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	ASSERT_EQ(0, pthread_create(&t, NULL, killer_fn, &k));
	EXPECT_EQ(-EINTR, evq_wait(self->q.fd, -1, 1, 0));
	pthread_join(t, NULL);

	/* The same with a finite timeout and as an exclusive waiter. */
	ASSERT_EQ(0, pthread_create(&t, NULL, killer_fn, &k));
	EXPECT_EQ(-EINTR, evq_wait(self->q.fd, 20 * NSEC_PER_SEC, 1,
				   EVQ_WAIT_EXCLUSIVE));
	pthread_join(t, NULL);
}

/* ---- several threads waiting on one queue ---- */

struct waiter {
	int qfd;
	uint32_t flags;
	int64_t timeout;
	pid_t tid;
	int ret;
	int *returned;		/* shared counter */
	pthread_mutex_t *lock;
	pthread_barrier_t *bar;
};

static void *waiter_fn(void *arg)
{
	struct waiter *w = arg;

	w->tid = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(w->bar);
	w->ret = evq_wait(w->qfd, w->timeout, 1, w->flags);
	pthread_mutex_lock(w->lock);
	(*w->returned)++;
	pthread_mutex_unlock(w->lock);
	return NULL;
}

/* Is the thread asleep (state S) right now? */
static int task_sleeping(pid_t tid)
{
	char path[64], buf[512], *p;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'S';
}

static int all_sleeping(struct waiter *w, int n)
{
	for (int i = 0; i < n; i++)
		if (!w[i].tid || !task_sleeping(w[i].tid))
			return 0;
	return 1;
}

static int read_count(pthread_mutex_t *lock, int *cnt)
{
	int v;

	pthread_mutex_lock(lock);
	v = *cnt;
	pthread_mutex_unlock(lock);
	return v;
}

static int wait_count(pthread_mutex_t *lock, int *cnt, int want, int ms)
{
	int v = 0;

	for (int i = 0; i < ms / 10; i++) {
		v = read_count(lock, cnt);
		if (v >= want)
			break;
		evq_sleep_ms(10);
	}
	return v;
}

static void start_waiters(struct waiter *w, pthread_t *t, int n, int qfd,
			  uint32_t flags, pthread_mutex_t *lock, int *returned,
			  pthread_barrier_t *bar)
{
	for (int i = 0; i < n; i++) {
		w[i] = (struct waiter){
			.qfd = qfd, .flags = flags, .timeout = 15 * NSEC_PER_SEC,
			.returned = returned, .lock = lock, .bar = bar,
		};
		pthread_create(&t[i], NULL, waiter_fn, &w[i]);
	}
	pthread_barrier_wait(bar);
	/* Until every one of them sleeps in the ioctl. */
	for (int i = 0; i < 500 && !all_sleeping(w, n); i++)
		evq_sleep_ms(10);
	evq_sleep_ms(100);
}

TEST_F_TIMEOUT(wait, exclusive_wakes_one_per_post, 60)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_barrier_t bar;
	struct waiter w[NTHREADS];
	pthread_t t[NTHREADS];
	int returned = 0;

	ASSERT_EQ(0, pthread_barrier_init(&bar, NULL, NTHREADS + 1));
	start_waiters(w, t, NTHREADS, self->q.fd, EVQ_WAIT_EXCLUSIVE, &lock,
		      &returned, &bar);
	ASSERT_TRUE(!!all_sleeping(w, NTHREADS));
	ASSERT_EQ(0, read_count(&lock, &returned));

	/* One post: one thread. */
	ASSERT_EQ(1, write(self->p[0][1], "1", 1));
	EXPECT_EQ(1, wait_count(&lock, &returned, 1, 5000));
	evq_sleep_ms(500);	/* grace: nobody else wakes */
	EXPECT_EQ(1, read_count(&lock, &returned));

	/* A second post: a second thread. */
	ASSERT_EQ(1, write(self->p[1][1], "2", 1));
	EXPECT_EQ(2, wait_count(&lock, &returned, 2, 5000));
	evq_sleep_ms(500);
	EXPECT_EQ(2, read_count(&lock, &returned));

	/* Third: the last one. */
	ASSERT_EQ(1, write(self->p[2][1], "3", 1));
	EXPECT_EQ(NTHREADS, wait_count(&lock, &returned, NTHREADS, 5000));
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		EXPECT_LE(1, w[i].ret) TH_LOG("thread %d ret %d", i, w[i].ret);
	}
	pthread_barrier_destroy(&bar);
}

TEST_F_TIMEOUT(wait, nonexclusive_wakes_all, 60)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_barrier_t bar;
	struct waiter w[NTHREADS];
	pthread_t t[NTHREADS];
	int returned = 0;

	ASSERT_EQ(0, pthread_barrier_init(&bar, NULL, NTHREADS + 1));
	start_waiters(w, t, NTHREADS, self->q.fd, 0, &lock, &returned, &bar);
	ASSERT_EQ(0, read_count(&lock, &returned));
	ASSERT_EQ(1, write(self->p[0][1], "1", 1));
	EXPECT_EQ(NTHREADS, wait_count(&lock, &returned, NTHREADS, 5000));
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(1, w[i].ret) TH_LOG("thread %d", i);
	}
	pthread_barrier_destroy(&bar);
}

/* Exclusive waiters left sleeping time out on their own, not earlier. */
TEST_F_TIMEOUT(wait, exclusive_rest_time_out, 60)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_barrier_t bar;
	struct waiter w[NTHREADS];
	pthread_t t[NTHREADS];
	int returned = 0;
	int64_t t0;

	ASSERT_EQ(0, pthread_barrier_init(&bar, NULL, NTHREADS + 1));
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct waiter){
			.qfd = self->q.fd, .flags = EVQ_WAIT_EXCLUSIVE,
			.timeout = 3 * NSEC_PER_SEC,
			.returned = &returned, .lock = &lock, .bar = &bar,
		};
		ASSERT_EQ(0, pthread_create(&t[i], NULL, waiter_fn, &w[i]));
	}
	t0 = evq_now_ns();
	pthread_barrier_wait(&bar);
	for (int i = 0; i < 100 && !all_sleeping(w, NTHREADS); i++)
		evq_sleep_ms(5);
	ASSERT_EQ(1, write(self->p[0][1], "1", 1));
	/* One returns at once; the others only when their timeout passes. */
	EXPECT_EQ(1, wait_count(&lock, &returned, 1, 2000));
	EXPECT_EQ(1, read_count(&lock, &returned))
		TH_LOG("more than one exclusive waiter woke");
	EXPECT_EQ(NTHREADS, wait_count(&lock, &returned, NTHREADS, 15000));
	EXPECT_LE(3 * NSEC_PER_SEC, evq_now_ns() - t0);
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		/* The entry is still in the ring: each returns its count. */
		EXPECT_EQ(1, w[i].ret) TH_LOG("thread %d", i);
	}
	pthread_barrier_destroy(&bar);
}

#define NPOLLED	64

struct polled_writer {
	int (*p)[2];
	volatile int stop;
	unsigned long writes;
};

static void *polled_write(void *arg)
{
	struct polled_writer *pw = arg;

	while (!pw->stop)
		for (int i = 0; i < NPOLLED; i++)
			if (write(pw->p[i][1], "w", 1) == 1)
				pw->writes++;
	return NULL;
}

/*
 * Watches woken from another CPU while a wait walks them, with the
 * queue's lock dropped for each poll: 64 pipes written by a thread for
 * 3 s while this one waits and consumes.  Both walks once unmarked their
 * whole batch first, so a wake-up meanwhile linked a watch still in the
 * batch into the queue's list, and the walk went on into the queue
 * itself: list corruption, or an Oops with the queue's mutex held and
 * every later call on the queue stuck.  The fuzzer found both.
 */
static void woken_during_wait(struct __test_metadata *_metadata,
			      uint32_t events, uint32_t flags)
{
	struct polled_writer pw = { 0 };
	int p[NPOLLED][2];
	struct evq_cqe c[64];
	unsigned long got = 0;
	struct evq_q q;
	pthread_t th;
	char buf[64];
	int64_t end;

	ASSERT_EQ(0, evq_q_open(&q, 64));
	for (int i = 0; i < NPOLLED; i++) {
		ASSERT_EQ(0, pipe2(p[i], O_CLOEXEC | O_NONBLOCK));
		ASSERT_EQ(0, evq_ctl1(q.fd, EVQ_CTL_ADD, p[i][0], events,
				      flags, i));
	}
	pw.p = p;
	ASSERT_EQ(0, pthread_create(&th, NULL, polled_write, &pw));
	end = evq_now_ns() + 3 * NSEC_PER_SEC;
	while (evq_now_ns() < end) {
		ASSERT_LE(0, evq_wait(q.fd, 0, 0, 0));
		got += evq_harvest(&q, c, 64);
		for (int i = 0; i < NPOLLED; i++)
			while (read(p[i][0], buf, sizeof(buf)) > 0)
				;
	}
	pw.stop = 1;
	ASSERT_EQ(0, pthread_join(th, NULL));
	/* Still alive, and the watches still report. */
	got += evq_drain(&q, c, 64);
	ASSERT_EQ(1, write(p[7][1], "x", 1));
	ASSERT_LE(1U, evq_collect(&q, c, 64, 1, 3000));
	TH_LOG("%lu writes, %lu entries", pw.writes, got);
	EXPECT_LT(0UL, got);
	for (int i = 0; i < NPOLLED; i++) {
		close(p[i][0]);
		close(p[i][1]);
	}
	evq_q_close(&q);
}

/* EPOLLPRI is not a mask the module trusts: polled at the next wait. */
TEST_F_TIMEOUT(wait, polled_watches_woken_during_wait, 120)
{
	woken_during_wait(_metadata, EPOLLIN | EPOLLPRI, EVQ_WATCH_EDGE);
}

/* Level mode: consumed entries are re-polled at the next wait. */
TEST_F_TIMEOUT(wait, level_watches_woken_during_wait, 120)
{
	woken_during_wait(_metadata, EPOLLIN, 0);
}

TEST_HARNESS_MAIN
