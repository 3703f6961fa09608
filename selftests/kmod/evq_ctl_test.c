// SPDX-License-Identifier: GPL-2.0
/*
 * evq selftests: EVQ_IOC_CTL batches.  Per-entry results (each reason for
 * each errno), good entries applying around bad ones, and the errors of the
 * call itself.
 */
#include "evq_util.h"

#define CLOSED_FD	100000	/* a descriptor number nobody opens */

FIXTURE(ctl) {
	struct evq_q q;
	int pipe[2];
	int sp[2];
	int file;
	struct evq_info info;
};

FIXTURE_SETUP(ctl)
{
	char name[] = "/tmp/evq_ctl_XXXXXX";

	self->q.fd = -1;
	self->pipe[0] = self->pipe[1] = self->sp[0] = self->sp[1] = -1;
	self->file = -1;
	EVQ_REQUIRE_DEVICE();
	ASSERT_EQ(0, evq_q_open(&self->q, 64));
	ASSERT_EQ(0, evq_get_info(self->q.fd, &self->info));
	ASSERT_EQ(0, pipe2(self->pipe, O_NONBLOCK | O_CLOEXEC));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
				SOCK_CLOEXEC, 0, self->sp));
	self->file = mkstemp(name);
	ASSERT_LE(0, self->file);
	unlink(name);
	ASSERT_EQ(-1, fcntl(CLOSED_FD, F_GETFD));
}

FIXTURE_TEARDOWN(ctl)
{
	evq_q_close(&self->q);
	for (int i = 0; i < 2; i++) {
		if (self->pipe[i] >= 0)
			close(self->pipe[i]);
		if (self->sp[i] >= 0)
			close(self->sp[i]);
	}
	if (self->file >= 0)
		close(self->file);
}

TEST_F(ctl, add_mod_del)
{
	int fd = self->q.fd;

	EXPECT_EQ(0, evq_ctl1(fd, EVQ_CTL_ADD, self->pipe[0], EPOLLIN, 0, 1));
	EXPECT_EQ(0, evq_ctl1(fd, EVQ_CTL_MOD, self->pipe[0], EPOLLIN, EVQ_WATCH_EDGE, 2));
	EXPECT_EQ(0, evq_ctl1(fd, EVQ_CTL_MOD, self->pipe[0], EPOLLIN | EPOLLRDHUP,
			      EVQ_WATCH_ONESHOT, 3));
	EXPECT_EQ(0, evq_ctl1(fd, EVQ_CTL_DEL, self->pipe[0], 0, 0, 0));
	/* Gone: a second DEL and a MOD find nothing, an ADD works again. */
	EXPECT_EQ(-ENOENT, evq_ctl1(fd, EVQ_CTL_DEL, self->pipe[0], 0, 0, 0));
	EXPECT_EQ(-ENOENT, evq_ctl1(fd, EVQ_CTL_MOD, self->pipe[0], EPOLLIN, 0, 0));
	EXPECT_EQ(0, evq_ctl1(fd, EVQ_CTL_ADD, self->pipe[0], EPOLLIN,
			      EVQ_WATCH_EXCLUSIVE, 4));
	EXPECT_EQ(0, evq_ctl1(fd, EVQ_CTL_ADD, self->pipe[1], EPOLLOUT,
			      EVQ_WATCH_EDGE | EVQ_WATCH_ONESHOT, 5));
}

TEST_F(ctl, add_existing_eexist)
{
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1));
	EXPECT_EQ(-EEXIST, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 2));
	EXPECT_EQ(-EEXIST, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLOUT,
				    EVQ_WATCH_EDGE, 3));
}

TEST_F(ctl, mod_del_missing_enoent)
{
	EXPECT_EQ(-ENOENT, evq_ctl1(self->q.fd, EVQ_CTL_MOD, self->sp[0], EPOLLIN, 0, 1));
	EXPECT_EQ(-ENOENT, evq_ctl1(self->q.fd, EVQ_CTL_DEL, self->sp[0], 0, 0, 0));
	/* Watching one end does not create a watch on the other. */
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1));
	EXPECT_EQ(-ENOENT, evq_ctl1(self->q.fd, EVQ_CTL_DEL, self->sp[1], 0, 0, 0));
}

TEST_F(ctl, bad_fd_ebadf)
{
	EXPECT_EQ(-EBADF, evq_ctl1(self->q.fd, EVQ_CTL_ADD, -1, EPOLLIN, 0, 1));
	EXPECT_EQ(-EBADF, evq_ctl1(self->q.fd, EVQ_CTL_ADD, CLOSED_FD, EPOLLIN, 0, 1));
	EXPECT_EQ(-EBADF, evq_ctl1(self->q.fd, EVQ_CTL_MOD, CLOSED_FD, EPOLLIN, 0, 1));
	EXPECT_EQ(-EBADF, evq_ctl1(self->q.fd, EVQ_CTL_DEL, CLOSED_FD, 0, 0, 0));
	EXPECT_EQ(-EBADF, evq_ctl1(self->q.fd, EVQ_CTL_ADD, INT32_MAX, EPOLLIN, 0, 1));
}

TEST_F(ctl, regular_file_eperm)
{
	EXPECT_EQ(-EPERM, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->file, EPOLLIN, 0, 1));
	EXPECT_EQ(-EPERM, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->file, EPOLLOUT,
				   EVQ_WATCH_EDGE, 1));
	/* Nothing was added. */
	EXPECT_NE(0, evq_ctl1(self->q.fd, EVQ_CTL_DEL, self->file, 0, 0, 0));
}

TEST_F(ctl, unknown_op_einval)
{
	static const uint32_t ops[] = { 0, 4, 5, 0x100, 0xffffffffu };

	for (unsigned int k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
		EXPECT_EQ(-EINVAL, evq_ctl1(self->q.fd, ops[k], self->sp[0],
					    EPOLLIN, 0, 1)) TH_LOG("op %#x", ops[k]);
	}
	/* None of them added a watch. */
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1));
}

TEST_F(ctl, unknown_flag_einval)
{
	static const uint32_t flags[] = { 1U << 3, 1U << 8, 1U << 31,
					  EVQ_WATCH_EDGE | (1U << 4) };

	for (unsigned int k = 0; k < sizeof(flags) / sizeof(flags[0]); k++) {
		EXPECT_EQ(-EINVAL, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0],
					    EPOLLIN, flags[k], 1)) TH_LOG("flags %#x", flags[k]);
	}
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1));
	EXPECT_EQ(-EINVAL, evq_ctl1(self->q.fd, EVQ_CTL_MOD, self->sp[0], EPOLLIN,
				    1U << 9, 1));
}

TEST_F(ctl, unknown_events_einval)
{
	static const uint32_t ev[] = { 1U << 16, 1U << 20, 1U << 24,
				       EPOLLIN | (1U << 17) };

	for (unsigned int k = 0; k < sizeof(ev) / sizeof(ev[0]); k++) {
		EXPECT_EQ(-EINVAL, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0],
					    ev[k], 0, 1)) TH_LOG("events %#x", ev[k]);
	}
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1));
	EXPECT_EQ(-EINVAL, evq_ctl1(self->q.fd, EVQ_CTL_MOD, self->sp[0],
				    1U << 22, 0, 1));
}

TEST_F(ctl, reserved_nonzero_einval)
{
	struct evq_ctl e;

	evq_ctl_fill(&e, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1);
	e.resv = 1;
	ASSERT_EQ(1, evq_ctl_batch(self->q.fd, &e, 1));
	EXPECT_EQ(-EINVAL, e.res);
	evq_ctl_fill(&e, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1);
	e.resv = 0x80000000u;
	ASSERT_EQ(1, evq_ctl_batch(self->q.fd, &e, 1));
	EXPECT_EQ(-EINVAL, e.res);
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1));
}

TEST_F(ctl, exclusive_with_mod_einval)
{
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN,
			      EVQ_WATCH_EXCLUSIVE, 1));
	EXPECT_EQ(-EINVAL, evq_ctl1(self->q.fd, EVQ_CTL_MOD, self->sp[0], EPOLLIN,
				    EVQ_WATCH_EXCLUSIVE, 1));
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[1], EPOLLIN, 0, 2));
	EXPECT_EQ(-EINVAL, evq_ctl1(self->q.fd, EVQ_CTL_MOD, self->sp[1], EPOLLIN,
				    EVQ_WATCH_EXCLUSIVE | EVQ_WATCH_EDGE, 2));
}

TEST_F(ctl, watch_evq_fd_einval)
{
	struct evq_q other;

	EXPECT_EQ(-EINVAL, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->q.fd, EPOLLIN, 0, 1));
	ASSERT_EQ(0, evq_q_open(&other, 8));
	EXPECT_EQ(-EINVAL, evq_ctl1(self->q.fd, EVQ_CTL_ADD, other.fd, EPOLLIN, 0, 1));
	EXPECT_EQ(-EINVAL, evq_ctl1(other.fd, EVQ_CTL_ADD, self->q.fd, EPOLLIN,
				    EVQ_WATCH_EDGE, 1));
	/* An evq that is not set up is still an evq. */
	int raw = evq_open_dev();

	ASSERT_LE(0, raw);
	EXPECT_EQ(-EINVAL, evq_ctl1(self->q.fd, EVQ_CTL_ADD, raw, EPOLLIN, 0, 1));
	close(raw);
	evq_q_close(&other);
}

TEST_F(ctl, mixed_batch_good_entries_apply)
{
	struct evq_ctl e[15];
	struct evq_cqe c[64];
	int fd = self->q.fd;
	uint32_t n;
	static const int want[15] = {
		0, -EBADF, 0, -EEXIST, -ENOENT, -EINVAL, -EPERM, -EINVAL,
		-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EBADF, 0, 0,
	};

	evq_ctl_fill(&e[0], EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 100);
	evq_ctl_fill(&e[1], EVQ_CTL_ADD, -1, EPOLLIN, 0, 101);
	evq_ctl_fill(&e[2], EVQ_CTL_ADD, self->pipe[0], EPOLLIN, 0, 102);
	evq_ctl_fill(&e[3], EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 103);
	evq_ctl_fill(&e[4], EVQ_CTL_MOD, self->sp[1], EPOLLIN, 0, 104);
	evq_ctl_fill(&e[5], 77, self->sp[1], EPOLLIN, 0, 105);
	evq_ctl_fill(&e[6], EVQ_CTL_ADD, self->file, EPOLLIN, 0, 106);
	evq_ctl_fill(&e[7], EVQ_CTL_ADD, self->sp[1], EPOLLOUT, 1U << 5, 107);
	evq_ctl_fill(&e[8], EVQ_CTL_ADD, self->sp[1], 1U << 20, 0, 108);
	evq_ctl_fill(&e[9], EVQ_CTL_ADD, self->sp[1], EPOLLOUT, 0, 109);
	e[9].resv = 7;
	evq_ctl_fill(&e[10], EVQ_CTL_MOD, self->pipe[0], EPOLLIN,
		     EVQ_WATCH_EXCLUSIVE, 110);
	evq_ctl_fill(&e[11], EVQ_CTL_ADD, fd, EPOLLIN, 0, 111);
	evq_ctl_fill(&e[12], EVQ_CTL_DEL, CLOSED_FD, 0, 0, 112);
	/* The bad entries on sp[1] left nothing behind: this ADD works. */
	evq_ctl_fill(&e[13], EVQ_CTL_ADD, self->sp[1], EPOLLOUT, EVQ_WATCH_EDGE, 113);
	/* And the good ADD of pipe[0] (entry 2) did apply: MOD finds it. */
	evq_ctl_fill(&e[14], EVQ_CTL_MOD, self->pipe[0], EPOLLIN, EVQ_WATCH_EDGE, 114);

	ASSERT_EQ(15, evq_ctl_batch(fd, e, 15));
	for (int k = 0; k < 15; k++) {
		EXPECT_EQ(want[k], e[k].res) TH_LOG("entry %d", k);
	}

	/* The watches that were added report with the right user_data. */
	ASSERT_EQ(1, write(self->sp[1], "x", 1));
	ASSERT_EQ(1, write(self->pipe[1], "y", 1));
	n = evq_collect(&self->q, c, 64, 3, 3000);
	n += evq_drain(&self->q, c + n, 64 - n);
	EXPECT_LE(1, evq_count_ud(c, n, EVQ_CQE_READY, 100));
	EXPECT_EQ(1, evq_count_ud(c, n, EVQ_CQE_READY, 113));
	EXPECT_EQ(1, evq_count_ud(c, n, EVQ_CQE_READY, 114));
	for (uint32_t i = 0; i < n; i++) {
		uint64_t ud = c[i].user_data;

		EXPECT_TRUE(!!(ud == 100 || ud == 113 || ud == 114))
			TH_LOG("unexpected user_data %llu", (unsigned long long)ud);
	}
}

TEST_F(ctl, batch_nr_zero_einval)
{
	struct evq_ctl e;

	evq_ctl_fill(&e, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1);
	EXPECT_EQ(-EINVAL, evq_ctl_batch(self->q.fd, &e, 0));
	EXPECT_EQ(0x7eadbeef, e.res);
	/* Not applied: ADD now succeeds. */
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1));
}

TEST_F(ctl, batch_nr_above_max_einval)
{
	uint32_t nr = self->info.max_batch + 1;
	struct evq_ctl *e = calloc(nr, sizeof(*e));

	ASSERT_NE(NULL, e);
	evq_ctl_fill(&e[0], EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1);
	EXPECT_EQ(-EINVAL, evq_ctl_batch(self->q.fd, e, nr));
	EXPECT_EQ(-EINVAL, evq_ctl_batch(self->q.fd, e, 0xffffffffu));
	EXPECT_EQ(0x7eadbeef, e[0].res);
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1));
	free(e);
}

TEST_F(ctl, batch_flags_nonzero_einval)
{
	struct evq_ctl e;
	struct evq_ctl_batch b = { .nr = 1, .flags = 1 };

	evq_ctl_fill(&e, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1);
	b.entries = (uintptr_t)&e;
	EXPECT_EQ(-1, ioctl(self->q.fd, EVQ_IOC_CTL, &b));
	EXPECT_EQ(EINVAL, errno);
	b.flags = 0x80000000u;
	EXPECT_EQ(-1, ioctl(self->q.fd, EVQ_IOC_CTL, &b));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1));
}

TEST_F(ctl, batch_bad_entries_efault)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *none = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(MAP_FAILED, none);
	EXPECT_EQ(-EFAULT, evq_ctl_batch(self->q.fd, NULL, 1));
	EXPECT_EQ(-EFAULT, evq_ctl_batch(self->q.fd, (struct evq_ctl *)8, 4));
	EXPECT_EQ(-EFAULT, evq_ctl_batch(self->q.fd, none, 1));
	EXPECT_EQ(-1, ioctl(self->q.fd, EVQ_IOC_CTL, NULL));
	EXPECT_EQ(EFAULT, errno);
	munmap(none, pg);
}

/* Entries that can be read but whose res cannot be written back. */
TEST_F(ctl, batch_readonly_entries_efault)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct evq_ctl *e = mmap(NULL, pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(MAP_FAILED, e);
	evq_ctl_fill(&e[0], EVQ_CTL_ADD, -1, EPOLLIN, 0, 1);
	ASSERT_EQ(0, mprotect(e, pg, PROT_READ));
	EXPECT_EQ(-EFAULT, evq_ctl_batch(self->q.fd, e, 1));
	munmap(e, pg);
}

/* A read-only array fails before anything in it is applied. */
TEST_F(ctl, batch_readonly_applies_nothing)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct evq_ctl *e = mmap(NULL, pg, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int i;

	ASSERT_NE(MAP_FAILED, e);
	/* Valid entries, more than one group of 16. */
	for (i = 0; i < 20; i++)
		evq_ctl_fill(&e[i], i ? EVQ_CTL_MOD : EVQ_CTL_ADD,
			     self->sp[0], EPOLLIN, 0, i + 1);
	ASSERT_EQ(0, mprotect(e, pg, PROT_READ));
	EXPECT_EQ(-EFAULT, evq_ctl_batch(self->q.fd, e, 20));
	/* The ADD was not applied: it can be made now, once. */
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN,
			      0, 1));
	munmap(e, pg);
}

/* An entry that cannot be read ends the batch: the count done so far. */
TEST_F(ctl, batch_fault_midway_returns_count)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct evq_ctl *e;

	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, mprotect(m + pg, pg, PROT_NONE));
	e = (struct evq_ctl *)(m + pg - 2 * sizeof(*e));
	evq_ctl_fill(&e[0], EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1);
	evq_ctl_fill(&e[1], EVQ_CTL_ADD, -1, EPOLLIN, 0, 2);
	EXPECT_EQ(2, evq_ctl_batch(self->q.fd, e, 4));
	EXPECT_EQ(0, e[0].res);
	EXPECT_EQ(-EBADF, e[1].res);
	/* Entry 0 applied. */
	EXPECT_EQ(-EEXIST, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN, 0, 1));
	munmap(m, 2 * pg);
}

TEST_F(ctl, mod_changes_events_and_user_data)
{
	struct evq_cqe c[8];
	uint32_t n;

	/* A pipe's read end is never writable: watching EPOLLOUT, input is silent. */
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->pipe[0], EPOLLOUT,
			      0, 0x1111));
	ASSERT_EQ(1, write(self->pipe[1], "a", 1));
	EXPECT_NO_ENTRIES(&self->q, 200);
	evq_drain_fd(self->pipe[0]);
	/* MOD to EPOLLIN with new user_data; then input arrives. */
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_MOD, self->pipe[0], EPOLLIN,
			      EVQ_WATCH_EDGE, 0xfeedfacecafebeefULL));
	EXPECT_NO_ENTRIES(&self->q, 100);
	ASSERT_EQ(1, write(self->pipe[1], "b", 1));
	n = evq_collect(&self->q, c, 8, 1, 2000);
	ASSERT_LE(1U, n);
	EXPECT_EQ(0xfeedfacecafebeefULL, c[0].user_data);
	EXPECT_EQ(EVQ_CQE_READY, evq_cqe_type(&c[0]));
	EXPECT_TRUE(!!(c[0].res & EPOLLIN));
	EXPECT_FALSE(!!(c[0].res & EPOLLOUT));
	EXPECT_EQ(0, evq_count_ud(c, n, EVQ_CQE_READY, 0x1111));
}

TEST_F(ctl, del_stops_events)
{
	struct evq_cqe c[8];

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->pipe[0], EPOLLIN,
			      EVQ_WATCH_EDGE, 9));
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_DEL, self->pipe[0], 0, 0, 0));
	ASSERT_EQ(1, write(self->pipe[1], "z", 1));
	EXPECT_EQ(0U, evq_collect(&self->q, c, 8, 1, 300));
	EXPECT_EQ(0, evq_wait(self->q.fd, 0, 0, 0));
}

/*
 * DEL names the watch by its fd: the documented EINVAL reasons (unknown
 * bits, reserved fields) do not cover valid events or mode flags, so a DEL
 * carrying the ADD's own events and flags must work.
 */
TEST_F(ctl, del_with_valid_events_and_flags)
{
	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sp[0], EPOLLIN,
			      EVQ_WATCH_EDGE, 1));
	EXPECT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_DEL, self->sp[0], EPOLLIN,
			      EVQ_WATCH_EDGE, 1));
	/* Either way the watch must not be left half there. */
	EXPECT_EQ(-ENOENT, evq_ctl1(self->q.fd, EVQ_CTL_DEL, self->sp[0], 0, 0, 0));
}

TEST_F(ctl, large_batch_all_apply)
{
	enum { NP = 600 };
	static int fds[NP][2];
	static struct evq_ctl e[2 * NP];
	uint32_t nr = 2 * NP;

	ASSERT_EQ(0, evq_raise_nofile(4096));
	for (int i = 0; i < NP; i++) {
		ASSERT_EQ(0, pipe2(fds[i], O_NONBLOCK | O_CLOEXEC));
		evq_ctl_fill(&e[2 * i], EVQ_CTL_ADD, fds[i][0], EPOLLIN, 0, i);
		evq_ctl_fill(&e[2 * i + 1], EVQ_CTL_ADD, fds[i][1], EPOLLOUT,
			     EVQ_WATCH_EDGE, NP + i);
	}
	if (nr > self->info.max_batch)
		nr = self->info.max_batch;
	ASSERT_EQ((int)nr, evq_ctl_batch(self->q.fd, e, nr));
	for (uint32_t k = 0; k < nr; k++) {
		ASSERT_EQ(0, e[k].res) TH_LOG("entry %u", k);
	}
	/* Now DEL them all in one batch. */
	for (uint32_t k = 0; k < nr; k++) {
		e[k].op = EVQ_CTL_DEL;
		e[k].events = 0;
		e[k].flags = 0;
		e[k].res = 1;
	}
	ASSERT_EQ((int)nr, evq_ctl_batch(self->q.fd, e, nr));
	for (uint32_t k = 0; k < nr; k++) {
		ASSERT_EQ(0, e[k].res) TH_LOG("DEL entry %u", k);
	}
	for (int i = 0; i < NP; i++) {
		close(fds[i][0]);
		close(fds[i][1]);
	}
}

/* max_user_watches is a writable module parameter: hit it. */
TEST_F(ctl, enospc_over_max_user_watches)
{
	long old = evq_param_get("max_user_watches");
	int fds[4][2], res[5];
	struct evq_info info;

	if (old < 0 || evq_param_set("max_user_watches", old))
		SKIP(return, "max_user_watches parameter not writable");
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(0, pipe2(fds[i], O_CLOEXEC));
	ASSERT_EQ(0, evq_param_set("max_user_watches", 3));
	evq_get_info(self->q.fd, &info);
	for (int i = 0; i < 4; i++)
		res[i] = evq_ctl1(self->q.fd, EVQ_CTL_ADD, fds[i][0], EPOLLIN, 0, i);
	/* Deleting one frees room for another. */
	evq_ctl1(self->q.fd, EVQ_CTL_DEL, fds[0][0], 0, 0, 0);
	res[4] = evq_ctl1(self->q.fd, EVQ_CTL_ADD, fds[3][0], EPOLLIN, 0, 3);
	ASSERT_EQ(0, evq_param_set("max_user_watches", old));

	EXPECT_EQ(3U, info.max_user_watches);
	EXPECT_EQ(0, res[0]);
	EXPECT_EQ(0, res[1]);
	EXPECT_EQ(0, res[2]);
	EXPECT_EQ(-ENOSPC, res[3]);
	EXPECT_EQ(0, res[4]);
	for (int i = 0; i < 4; i++) {
		close(fds[i][0]);
		close(fds[i][1]);
	}
}

/* max_batch is a writable module parameter: INFO and CTL follow it. */
TEST_F(ctl, max_batch_parameter_in_force)
{
	long old = evq_param_get("max_batch");
	struct evq_ctl e[5];
	struct evq_info info;
	int r5, r4;

	if (old < 0 || evq_param_set("max_batch", old))
		SKIP(return, "max_batch parameter not writable");
	for (int i = 0; i < 5; i++)
		evq_ctl_fill(&e[i], EVQ_CTL_ADD, -1, EPOLLIN, 0, i);
	ASSERT_EQ(0, evq_param_set("max_batch", 4));
	evq_get_info(self->q.fd, &info);
	r5 = evq_ctl_batch(self->q.fd, e, 5);
	r4 = evq_ctl_batch(self->q.fd, e, 4);
	ASSERT_EQ(0, evq_param_set("max_batch", old));
	EXPECT_EQ(4U, info.max_batch);
	EXPECT_EQ(-EINVAL, r5);
	EXPECT_EQ(4, r4);
	EXPECT_EQ(-EBADF, e[3].res);
}

TEST_HARNESS_MAIN
