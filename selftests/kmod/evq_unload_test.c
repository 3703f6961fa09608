// SPDX-License-Identifier: GPL-2.0
/*
 * evq selftests: unloading.  Run LAST: this unloads evq and loads it again
 * from $EVQ_MODULE, so that later runs find it.  Skipped when EVQ_MODULE is
 * unset (nothing could load the module back).
 */
#include "evq_util.h"

/* An empty fixture: TEST() trips -Wextra in the 6.1 harness. */
FIXTURE(unload) {
	int unused;
};

FIXTURE_SETUP(unload)
{
	EVQ_REQUIRE_DEVICE();
}

FIXTURE_TEARDOWN(unload)
{
}

/*
 * Unload, allowing three seconds for the last file references to go
 * (deferred fput).  Returns 0 or -errno.
 */
static int evq_unload_retry(void)
{
	int ret = -EBUSY;

	for (int i = 0; i < 300; i++) {
		ret = evq_delete_module(O_NONBLOCK);
		if (ret != -EWOULDBLOCK && ret != -EBUSY)
			break;
		evq_sleep_ms(10);
	}
	return ret;
}

TEST_F(unload, refcount_follows_open_queues)
{
	struct evq_q q;
	int base;

	EVQ_REQUIRE_DEVICE();
	if (evq_module_refcnt() < 0)
		SKIP(return, "no /sys/module/" EVQ_MODNAME "/refcnt");
	base = evq_refcnt_settles(0, 2000);
	EXPECT_EQ(0, base) TH_LOG("module references with no queue open");
	ASSERT_EQ(0, evq_q_open(&q, 8));
	EXPECT_LT(base, evq_module_refcnt());
	evq_q_close(&q);
	EXPECT_EQ(base, evq_refcnt_settles(base, 2000));
}

/*
 * A closed queue lives on while a page-in it started waits for the disk;
 * unloading then waits for that read, and must not leave a wake-up
 * callback pointing into freed module text.  Needs the throttled scratch
 * disk (tools/vm/run --disk --disk-rate) to make the read slow.  Reloads
 * the module, so it runs before unload_and_reload.
 */
TEST_F_TIMEOUT(unload, unload_waits_for_pagein, 60)
{
	static char buf[1 << 16];
	struct evq_sendfile sf = { .count = 8 << 20, .flags = EVQ_SF_NOTIFY };
	const char *dir = getenv("EVQ_SCRATCH");
	char path[256];
	struct evq_q q;
	int sv[2], fd, ret;
	int64_t t0;

	if (!dir || !*dir)
		SKIP(return, "no $EVQ_SCRATCH (run with tools/vm/run --disk)");
	if (!getenv("EVQ_MODULE") || !*getenv("EVQ_MODULE") ||
	    access(getenv("EVQ_MODULE"), R_OK))
		SKIP(return, "EVQ_MODULE unset or unreadable: could not load evq back");
	snprintf(path, sizeof(path), "%s/unload.cold", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ASSERT_LE(0, fd);
	unlink(path);
	for (int i = 0; i < (8 << 20) / (int)sizeof(buf); i++)
		ASSERT_EQ((ssize_t)sizeof(buf), write(fd, buf, sizeof(buf)));
	ASSERT_EQ(0, evq_make_cold(fd));
	ASSERT_EQ(0, evq_q_open(&q, 8));
	ASSERT_EQ(0, evq_tcp_pair(sv));

	/* An 8 MiB page-in: a second of reads at 8 MB/s. */
	sf.out_fd = sv[0];
	sf.in_fd = fd;
	ASSERT_EQ(0, evq_param_set("sendfile_window", 8 << 20));
	ASSERT_EQ(0, ioctl(q.fd, EVQ_IOC_SENDFILE, &sf));
	ASSERT_EQ(EVQ_SF_STOP_NOT_RESIDENT, sf.stop);
	evq_q_close(&q);
	close(sv[0]);
	close(sv[1]);
	close(fd);

	t0 = evq_now_ns();
	ret = evq_unload_retry();
	EXPECT_EQ(0, ret) TH_LOG("delete_module: %s", strerror(-ret));
	TH_LOG("unload took %lld ms", (long long)((evq_now_ns() - t0) / NSEC_PER_MSEC));
	EXPECT_FALSE(!!evq_module_loaded());
	ret = evq_load_module_from_env();
	ASSERT_EQ(0, ret) TH_LOG("loading %s: %s", getenv("EVQ_MODULE"),
				 strerror(-ret));
	ASSERT_TRUE(!!evq_module_loaded());
}

TEST_F_TIMEOUT(unload, unload_and_reload, 60)
{
	struct evq_info info;
	struct evq_cqe c[2];
	struct evq_q q;
	int p[2], ret, fd;

	EVQ_REQUIRE_DEVICE();
	if (!getenv("EVQ_MODULE") || !*getenv("EVQ_MODULE"))
		SKIP(return, "EVQ_MODULE unset: could not load evq back");
	if (!evq_module_loaded())
		SKIP(return, "module not loaded as \"" EVQ_MODNAME "\"");
	if (access(getenv("EVQ_MODULE"), R_OK))
		SKIP(return, "EVQ_MODULE=%s unreadable", getenv("EVQ_MODULE"));

	/* Busy while a queue is open... */
	fd = evq_open_dev();
	ASSERT_LE(0, fd);
	ret = evq_delete_module(O_NONBLOCK);
	EXPECT_TRUE(ret == -EBUSY || ret == -EWOULDBLOCK) TH_LOG("delete_module: %d", ret);
	close(fd);

	/* ...and unloads once none is. */
	ret = evq_unload_retry();
	EXPECT_EQ(0, ret) TH_LOG("delete_module: %s", strerror(-ret));
	if (ret == 0) {
		EXPECT_FALSE(!!evq_module_loaded());
		fd = evq_open_dev();
		EXPECT_GT(0, fd) TH_LOG("/dev/evq still opens after unload");
		if (fd >= 0)
			close(fd);
	}

	/* Load it back; a fresh queue works. */
	ret = evq_load_module_from_env();
	ASSERT_EQ(0, ret) TH_LOG("loading %s: %s", getenv("EVQ_MODULE"),
				 strerror(-ret));
	ASSERT_TRUE(!!evq_module_loaded());
	ASSERT_EQ(0, evq_q_open(&q, 4)) TH_LOG("fresh queue: %s", strerror(errno));
	ASSERT_EQ(0, evq_get_info(q.fd, &info));
	EXPECT_EQ((uint32_t)EVQ_ABI_VERSION, info.abi_version);
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC | O_NONBLOCK));
	ASSERT_EQ(0, evq_ctl1(q.fd, EVQ_CTL_ADD, p[0], EPOLLIN, EVQ_WATCH_EDGE, 42));
	ASSERT_EQ(1, write(p[1], "r", 1));
	ASSERT_EQ(1U, evq_collect(&q, c, 2, 1, 3000));
	EXPECT_EQ(42ULL, c[0].user_data);
	EXPECT_EQ(EVQ_CQE_READY, evq_cqe_type(&c[0]));
	evq_q_close(&q);
	close(p[0]);
	close(p[1]);
}

TEST_HARNESS_MAIN
