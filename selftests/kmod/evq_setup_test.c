// SPDX-License-Identifier: GPL-2.0
/*
 * evq selftests: EVQ_IOC_INFO, EVQ_IOC_SETUP, mmap() of the ring, and bad
 * input to every ioctl (unknown numbers, wrong sizes, bad pointers).
 */
#define _GNU_SOURCE
#include "evq_util.h"

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t page_align(size_t n)
{
	return (n + page_size() - 1) & ~(page_size() - 1);
}

/* An open queue, not set up. */
FIXTURE(raw) {
	int fd;
	struct evq_info info;
};

FIXTURE_SETUP(raw)
{
	EVQ_REQUIRE_DEVICE();
	self->fd = evq_open_dev();
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", EVQ_DEV, strerror(errno));
	ASSERT_EQ(0, evq_get_info(self->fd, &self->info));
}

FIXTURE_TEARDOWN(raw)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F(raw, info_reports_abi_and_limits)
{
	struct evq_info *i = &self->info;
	uint64_t all = EVQ_FEAT_RING | EVQ_FEAT_BATCH_CTL | EVQ_FEAT_EXCL_WAIT |
		       EVQ_FEAT_EXCL_WATCH | EVQ_FEAT_CLOSED_EVENT |
		       EVQ_FEAT_SENDFILE;

	EXPECT_EQ((uint32_t)EVQ_ABI_VERSION, i->abi_version);
	EXPECT_EQ(0U, i->resv0);
	EXPECT_EQ(all, i->features & all);
	EXPECT_LE(1U, i->max_cq_entries);
	EXPECT_LE(1U, i->max_batch);
	EXPECT_LE(1U, i->max_user_watches);
	/* The limits in force: the module parameters (documented defaults). */
	long cq = evq_param_get("max_cq_entries");
	long batch = evq_param_get("max_batch");
	long watches = evq_param_get("max_user_watches");

	EXPECT_EQ(cq >= 0 ? (uint32_t)cq : 65536U, i->max_cq_entries);
	EXPECT_EQ(batch >= 0 ? (uint32_t)batch : 65536U, i->max_batch);
	EXPECT_EQ(watches >= 0 ? (uint32_t)watches : 1048576U, i->max_user_watches);
	long ops = evq_param_get("max_ops");
	long window = evq_param_get("sendfile_window");

	EXPECT_EQ(ops >= 0 ? (uint32_t)ops : 4096U, i->max_ops);
	/* The window in force: whole pages, 4 KiB to 64 MiB. */
	if (window < 0)
		window = 524288;
	window = (window + 4095) / 4096 * 4096;
	window = window < 4096 ? 4096 : window > (64 << 20) ? (64 << 20) : window;
	EXPECT_EQ((uint32_t)window, i->sendfile_window);
	for (unsigned int k = 0; k < sizeof(i->resv) / sizeof(i->resv[0]); k++)
		EXPECT_EQ(0U, i->resv[k]);
}

TEST_F(raw, info_bad_pointer_efault)
{
	EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_INFO, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_INFO, (void *)8));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(raw, setup_rounds_to_power_of_two)
{
	static const uint32_t in[] = { 1, 2, 3, 5, 8, 100, 1000, 4097 };
	static const uint32_t out[] = { 1, 2, 4, 8, 8, 128, 1024, 8192 };

	for (unsigned int k = 0; k < sizeof(in) / sizeof(in[0]); k++) {
		struct evq_setup p;
		int fd = evq_open_dev();

		ASSERT_LE(0, fd);
		ASSERT_EQ(0, evq_do_setup(fd, &p, in[k]));
		EXPECT_EQ(out[k], p.cq_entries) TH_LOG("asked %u", in[k]);
		EXPECT_LE(p.off.cqes + (uint64_t)p.cq_entries * 16, p.ring_size);
		EXPECT_EQ(0U, p.off.cqes % 8);
		for (int r = 0; r < 4; r++)
			EXPECT_EQ(0ULL, p.resv[r]);
		close(fd);
	}
}

TEST_F(raw, setup_max_entries_accepted)
{
	struct evq_setup p;

	ASSERT_EQ(0, evq_do_setup(self->fd, &p, self->info.max_cq_entries));
	EXPECT_EQ(self->info.max_cq_entries, p.cq_entries);
}

TEST_F(raw, setup_zero_entries_einval)
{
	struct evq_setup p;

	EXPECT_EQ(-EINVAL, evq_do_setup(self->fd, &p, 0));
	/* A failed SETUP leaves the queue usable. */
	EXPECT_EQ(0, evq_do_setup(self->fd, &p, 4));
}

TEST_F(raw, setup_above_max_einval)
{
	struct evq_setup p;

	EXPECT_EQ(-EINVAL, evq_do_setup(self->fd, &p,
					self->info.max_cq_entries + 1));
	EXPECT_EQ(-EINVAL, evq_do_setup(self->fd, &p, 0x80000001u));
	EXPECT_EQ(-EINVAL, evq_do_setup(self->fd, &p, 0xffffffffu));
	EXPECT_EQ(0, evq_do_setup(self->fd, &p, 4));
}

TEST_F(raw, setup_flags_nonzero_einval)
{
	struct evq_setup p = { .cq_entries = 8, .flags = 1 };

	EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_SETUP, &p));
	EXPECT_EQ(EINVAL, errno);
	p.flags = 0x80000000u;
	EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_SETUP, &p));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(raw, setup_resv_nonzero_einval)
{
	struct evq_setup p;

	for (int r = 0; r < 4; r++) {
		memset(&p, 0, sizeof(p));
		p.cq_entries = 8;
		p.resv[r] = 1;
		EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_SETUP, &p))
			TH_LOG("resv[%d] accepted", r);
		EXPECT_EQ(EINVAL, errno);
	}
	EXPECT_EQ(0, evq_do_setup(self->fd, &p, 8));
}

TEST_F(raw, setup_twice_ebusy)
{
	struct evq_setup p;

	ASSERT_EQ(0, evq_do_setup(self->fd, &p, 8));
	EXPECT_EQ(-EBUSY, evq_do_setup(self->fd, &p, 8));
	EXPECT_EQ(-EBUSY, evq_do_setup(self->fd, &p, 16));
}

TEST_F(raw, setup_bad_pointer_efault)
{
	struct evq_setup p;

	EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_SETUP, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_SETUP, (void *)8));
	EXPECT_EQ(EFAULT, errno);
	/* Still not set up. */
	EXPECT_EQ(0, evq_do_setup(self->fd, &p, 8));
}

TEST_F(raw, ops_before_setup_ebadfd)
{
	struct evq_ctl e;
	int p[2];
	void *m;

	ASSERT_EQ(0, pipe(p));
	evq_ctl_fill(&e, EVQ_CTL_ADD, p[0], EPOLLIN, 0, 1);
	EXPECT_EQ(-EBADFD, evq_ctl_batch(self->fd, &e, 1));
	EXPECT_EQ(-EBADFD, evq_wait(self->fd, 0, 0, 0));
	EXPECT_EQ(-EBADFD, evq_wait(self->fd, 1000, 1, 0));
	m = mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED,
		 self->fd, EVQ_OFF_RING);
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EBADFD, errno);
	if (m != MAP_FAILED)
		munmap(m, page_size());
	close(p[0]);
	close(p[1]);
}

TEST_F(raw, unknown_ioctl_enotty)
{
	char buf[256] = { 0 };
	static const unsigned long bad[] = {
		_IO(EVQ_IOC_MAGIC, 0x04),
		_IOW(EVQ_IOC_MAGIC, 0x04, struct evq_wait),
		_IOWR(EVQ_IOC_MAGIC, 0x7f, struct evq_setup),
		_IOR(EVQ_IOC_MAGIC, 0xff, struct evq_info),
		_IOR('E', 0x00, struct evq_info),
		_IO(0, 0),
	};

	for (unsigned int k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		EXPECT_EQ(-1, ioctl(self->fd, bad[k], buf))
			TH_LOG("ioctl %#lx accepted", bad[k]);
		EXPECT_EQ(ENOTTY, errno) TH_LOG("ioctl %#lx", bad[k]);
	}
}

TEST_F(raw, wrong_size_or_direction_enotty)
{
	char buf[512] = { 0 };
	static const unsigned long bad[] = {
		_IOC(_IOC_READ, EVQ_IOC_MAGIC, 0x00, sizeof(struct evq_info) - 4),
		_IOC(_IOC_READ, EVQ_IOC_MAGIC, 0x00, sizeof(struct evq_info) + 8),
		_IOC(_IOC_READ | _IOC_WRITE, EVQ_IOC_MAGIC, 0x01,
		     sizeof(struct evq_setup) + 8),
		_IOC(_IOC_READ | _IOC_WRITE, EVQ_IOC_MAGIC, 0x01,
		     sizeof(struct evq_setup) - 8),
		_IOC(_IOC_WRITE, EVQ_IOC_MAGIC, 0x02,
		     sizeof(struct evq_ctl_batch) + 8),
		_IOC(_IOC_WRITE, EVQ_IOC_MAGIC, 0x02, 8),
		_IOC(_IOC_WRITE, EVQ_IOC_MAGIC, 0x03, sizeof(struct evq_wait) - 8),
		_IOC(_IOC_WRITE, EVQ_IOC_MAGIC, 0x03, sizeof(struct evq_wait) + 8),
		/* Right size, wrong direction. */
		_IOW(EVQ_IOC_MAGIC, 0x00, struct evq_info),
		_IOR(EVQ_IOC_MAGIC, 0x01, struct evq_setup),
	};

	for (unsigned int k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		EXPECT_EQ(-1, ioctl(self->fd, bad[k], buf))
			TH_LOG("ioctl %#lx accepted", bad[k]);
		EXPECT_EQ(ENOTTY, errno) TH_LOG("ioctl %#lx", bad[k]);
	}
	/* None of them set the ring up. */
	struct evq_setup p;

	EXPECT_EQ(0, evq_do_setup(self->fd, &p, 4));
}

/* A queue that is set up but not mapped. */
FIXTURE(ring) {
	int fd;
	struct evq_setup p;
};

FIXTURE_SETUP(ring)
{
	EVQ_REQUIRE_DEVICE();
	self->fd = evq_open_dev();
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, evq_do_setup(self->fd, &self->p, 64));
	ASSERT_EQ(64U, self->p.cq_entries);
}

FIXTURE_TEARDOWN(ring)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F(ring, mmap_header_matches_setup)
{
	struct evq_setup *p = &self->p;
	struct evq_q q = { .fd = self->fd, .p = *p };
	void *m;

	/* All offsets lie inside the mapping and are 4-byte aligned. */
	EXPECT_GT(p->ring_size, p->off.cqes);
	EXPECT_LE(p->off.cqes + 64ULL * sizeof(struct evq_cqe), p->ring_size);
	uint32_t offs[] = { p->off.head, p->off.tail, p->off.ring_mask,
			    p->off.ring_entries, p->off.overflow,
			    p->off.flags };
	for (unsigned int k = 0; k < 6; k++) {
		EXPECT_EQ(0U, offs[k] % 4);
		EXPECT_GE(p->ring_size, offs[k] + 4ULL);
		/* Header words do not overlap each other or the array. */
		EXPECT_TRUE(!!(offs[k] + 4 <= p->off.cqes || offs[k] >= p->off.cqes +
			    64ULL * sizeof(struct evq_cqe)));
		for (unsigned int j = 0; j < k; j++)
			EXPECT_NE(offs[j], offs[k]);
	}

	m = mmap(NULL, p->ring_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 self->fd, EVQ_OFF_RING);
	ASSERT_NE(MAP_FAILED, m) TH_LOG("mmap: %s", strerror(errno));
	evq_q_bind(&q, m, p->ring_size);
	EXPECT_EQ(64U, *q.entries);
	EXPECT_EQ(63U, *q.mask);
	EXPECT_EQ(0U, *q.head);
	EXPECT_EQ(0U, *q.tail);
	EXPECT_EQ(0U, *q.overflow);
	EXPECT_EQ(0U, *q.flags & EVQ_RING_NEED_ENTER);
	munmap(m, p->ring_size);
}

TEST_F(ring, mmap_shorter_length_ok)
{
	void *m = mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED,
		       self->fd, EVQ_OFF_RING);

	ASSERT_NE(MAP_FAILED, m) TH_LOG("mmap one page: %s", strerror(errno));
	munmap(m, page_size());
}

TEST_F(ring, mmap_bad_offset_einval)
{
	size_t len = page_size();
	void *m;

	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd,
		 page_size());
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EINVAL, errno);
	if (m != MAP_FAILED)
		munmap(m, len);
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd,
		 1UL << 30);
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EINVAL, errno);
	if (m != MAP_FAILED)
		munmap(m, len);
}

TEST_F(ring, mmap_too_long_einval)
{
	size_t len = page_align(self->p.ring_size) + page_size();
	void *m;

	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd,
		 EVQ_OFF_RING);
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EINVAL, errno);
	if (m != MAP_FAILED)
		munmap(m, len);
	len = 64 * page_size() + page_align(self->p.ring_size);
	m = mmap(NULL, len, PROT_READ, MAP_SHARED, self->fd, EVQ_OFF_RING);
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EINVAL, errno);
	if (m != MAP_FAILED)
		munmap(m, len);
}

TEST_F(ring, mmap_private_einval)
{
	void *m;

	m = mmap(NULL, self->p.ring_size, PROT_READ | PROT_WRITE, MAP_PRIVATE,
		 self->fd, EVQ_OFF_RING);
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EINVAL, errno);
	if (m != MAP_FAILED)
		munmap(m, self->p.ring_size);
	m = mmap(NULL, self->p.ring_size, PROT_READ, MAP_PRIVATE,
		 self->fd, EVQ_OFF_RING);
	EXPECT_EQ(MAP_FAILED, m);
	EXPECT_EQ(EINVAL, errno);
	if (m != MAP_FAILED)
		munmap(m, self->p.ring_size);
}

TEST_F(ring, ioctl_bad_pointers_efault)
{
	struct evq_ctl_batch b = { .entries = 8, .nr = 1 };

	EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_INFO, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_SETUP, NULL));
	/* Already set up: EBUSY would also be a fair answer to a NULL. */
	EXPECT_TRUE(!!(errno == EFAULT || errno == EBUSY)) TH_LOG("%d", errno);
	EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_CTL, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_CTL, (void *)8));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_CTL, &b));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_WAIT, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_WAIT, (void *)8));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(ring, wait_bad_arguments_einval)
{
	struct evq_wait w;

	/* min_events above ring_entries. */
	EXPECT_EQ(-EINVAL, evq_wait(self->fd, 0, 65, 0));
	EXPECT_EQ(-EINVAL, evq_wait(self->fd, -1, 0xffffffffu, 0));
	/* Exactly ring_entries is allowed (times out with 0). */
	EXPECT_EQ(0, evq_wait(self->fd, 0, 64, 0));
	/* Unknown flags. */
	EXPECT_EQ(-EINVAL, evq_wait(self->fd, 0, 0, 1U << 1));
	EXPECT_EQ(-EINVAL, evq_wait(self->fd, 0, 0, 1U << 31));
	/* Reserved fields. */
	for (int r = 0; r < 2; r++) {
		memset(&w, 0, sizeof(w));
		w.resv[r] = 1;
		EXPECT_EQ(-1, ioctl(self->fd, EVQ_IOC_WAIT, &w))
			TH_LOG("resv[%d] accepted", r);
		EXPECT_EQ(EINVAL, errno);
	}
}

TEST_F(ring, release_with_mapping_then_unmap)
{
	void *m = mmap(NULL, self->p.ring_size, PROT_READ | PROT_WRITE,
		       MAP_SHARED, self->fd, EVQ_OFF_RING);
	struct evq_q q = { .p = self->p };

	ASSERT_NE(MAP_FAILED, m);
	/* The mapping outlives the fd and stays readable. */
	close(self->fd);
	self->fd = -1;
	evq_q_bind(&q, m, self->p.ring_size);
	EXPECT_EQ(64U, *q.entries);
	EXPECT_EQ(0, munmap(m, self->p.ring_size));
}

TEST_HARNESS_MAIN
