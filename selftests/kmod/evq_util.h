/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared helpers for the evq kselftests.  Everything goes through the raw
 * uapi (open/ioctl/mmap of /dev/evq), never through libevq.
 *
 * Includes kselftest_harness.h itself (EVQ_REQUIRE_DEVICE() uses SKIP()).
 */
#ifndef EVQ_SELFTEST_UTIL_H
#define EVQ_SELFTEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/epoll.h>

#include <linux/evq.h>

/* kselftest_harness.h (6.1) trips -Wextra's unused-parameter on its own. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "kselftest_harness.h"
#pragma GCC diagnostic pop

#define EVQ_DEV		"/dev/evq"
#define EVQ_MODNAME	"evq"
#define NSEC_PER_MSEC	1000000LL
#define NSEC_PER_SEC	1000000000LL

/*
 * Skip the current test when the device is absent.  The 6.1 harness runs
 * the test body even after SKIP() in a fixture setup, so leave the test
 * process right here with the harness's "skip" exit code (255); the reason
 * is already in the shared results page.
 */
#define EVQ_REQUIRE_DEVICE() do {					\
	if (access(EVQ_DEV, F_OK) != 0)					\
		SKIP(_exit(255), EVQ_DEV " absent (evq module not loaded)"); \
} while (0)

/* A queue: the fd, what SETUP returned, and the mapped ring. */
struct evq_q {
	int fd;
	struct evq_setup p;
	unsigned char *map;
	size_t map_len;
	uint32_t *head;
	uint32_t *tail;
	uint32_t *mask;
	uint32_t *entries;
	uint32_t *overflow;
	uint32_t *flags;
	struct evq_cqe *cqes;
};

static inline int64_t evq_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static inline int evq_open_dev(void)
{
	return open(EVQ_DEV, O_RDWR | O_CLOEXEC);
}

static inline int evq_do_setup(int fd, struct evq_setup *p, uint32_t entries)
{
	memset(p, 0, sizeof(*p));
	p->cq_entries = entries;
	return ioctl(fd, EVQ_IOC_SETUP, p) ? -errno : 0;
}

static inline int evq_get_info(int fd, struct evq_info *info)
{
	memset(info, 0, sizeof(*info));
	return ioctl(fd, EVQ_IOC_INFO, info) ? -errno : 0;
}

/* Point the helper fields at a mapping of the ring. */
static inline void evq_q_bind(struct evq_q *q, void *map, size_t len)
{
	q->map = map;
	q->map_len = len;
	q->head = (uint32_t *)(q->map + q->p.off.head);
	q->tail = (uint32_t *)(q->map + q->p.off.tail);
	q->mask = (uint32_t *)(q->map + q->p.off.ring_mask);
	q->entries = (uint32_t *)(q->map + q->p.off.ring_entries);
	q->overflow = (uint32_t *)(q->map + q->p.off.overflow);
	q->flags = (uint32_t *)(q->map + q->p.off.flags);
	q->cqes = (struct evq_cqe *)(q->map + q->p.off.cqes);
}

/* open + SETUP + mmap.  Returns 0 or -errno; on error nothing is left open. */
static inline int evq_q_open(struct evq_q *q, uint32_t entries)
{
	void *map;
	int ret;

	memset(q, 0, sizeof(*q));
	q->fd = evq_open_dev();
	if (q->fd < 0)
		return -errno;
	ret = evq_do_setup(q->fd, &q->p, entries);
	if (ret)
		goto fail;
	map = mmap(NULL, q->p.ring_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   q->fd, EVQ_OFF_RING);
	if (map == MAP_FAILED) {
		ret = -errno;
		goto fail;
	}
	evq_q_bind(q, map, q->p.ring_size);
	return 0;
fail:
	close(q->fd);
	q->fd = -1;
	return ret;
}

static inline void evq_q_close(struct evq_q *q)
{
	if (q->map)
		munmap(q->map, q->map_len);
	q->map = NULL;
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
}

/* One EVQ_IOC_CTL call; returns its return value or -errno. */
static inline int evq_ctl_batch(int fd, struct evq_ctl *e, uint32_t nr)
{
	struct evq_ctl_batch b = {
		.entries = (uintptr_t)e,
		.nr = nr,
	};
	int ret = ioctl(fd, EVQ_IOC_CTL, &b);

	return ret < 0 ? -errno : ret;
}

static inline void evq_ctl_fill(struct evq_ctl *e, uint32_t op, int fd,
				uint32_t events, uint32_t flags, uint64_t ud)
{
	memset(e, 0, sizeof(*e));
	e->op = op;
	e->fd = fd;
	e->events = events;
	e->flags = flags;
	e->user_data = ud;
	e->res = 0x7eadbeef;	/* must be overwritten */
}

#define EVQ_CTL1_CALL_FAILED	(-100000)
/*
 * One change.  Returns the entry's res (0 or -errno).  A failure of the call
 * itself, or a count other than 1, returns EVQ_CTL1_CALL_FAILED - errno.
 */
static inline int evq_ctl1(int fd, uint32_t op, int tfd, uint32_t events,
			   uint32_t flags, uint64_t ud)
{
	struct evq_ctl e;
	int ret;

	evq_ctl_fill(&e, op, tfd, events, flags, ud);
	ret = evq_ctl_batch(fd, &e, 1);
	if (ret < 0)
		return EVQ_CTL1_CALL_FAILED + ret;
	if (ret != 1)
		return EVQ_CTL1_CALL_FAILED;
	return e.res;
}

/*
 * EVQ_IOC_SENDFILE of [@off, @off + @count) of @in to @out, with @ud and
 * @flags; @sf gets the results.  Returns the ioctl's value or -errno.
 */
static inline long evq_sf_ioctl(int qfd, struct evq_sendfile *sf, int out,
				int in, uint64_t off, uint64_t count,
				uint64_t ud, uint32_t flags)
{
	long ret;

	memset(sf, 0, sizeof(*sf));
	sf->out_fd = out;
	sf->in_fd = in;
	sf->offset = off;
	sf->count = count;
	sf->user_data = ud;
	sf->flags = flags;
	ret = ioctl(qfd, EVQ_IOC_SENDFILE, sf);
	return ret < 0 ? -errno : ret;
}

/* EVQ_IOC_WAIT; returns its return value or -errno. */
static inline int evq_wait(int fd, int64_t timeout_ns, uint32_t min_events,
			   uint32_t flags)
{
	struct evq_wait w = {
		.timeout_ns = timeout_ns,
		.min_events = min_events,
		.flags = flags,
	};
	int ret = ioctl(fd, EVQ_IOC_WAIT, &w);

	return ret < 0 ? -errno : ret;
}

/* Entries currently between head and tail. */
static inline uint32_t evq_ring_count(struct evq_q *q)
{
	uint32_t tail = __atomic_load_n(q->tail, __ATOMIC_ACQUIRE);
	uint32_t head = __atomic_load_n(q->head, __ATOMIC_RELAXED);

	return tail - head;
}

/*
 * Copy up to @max entries out of the ring and consume them: load-acquire
 * tail, read the entries, store-release the new head.
 */
static inline uint32_t evq_harvest(struct evq_q *q, struct evq_cqe *out,
				   uint32_t max)
{
	uint32_t tail = __atomic_load_n(q->tail, __ATOMIC_ACQUIRE);
	uint32_t head = __atomic_load_n(q->head, __ATOMIC_RELAXED);
	uint32_t mask = q->p.cq_entries - 1;	/* SETUP's answer */
	uint32_t n = 0;

	while (head != tail && n < max) {
		if (out)
			out[n] = q->cqes[head & mask];
		head++;
		n++;
	}
	__atomic_store_n(q->head, head, __ATOMIC_RELEASE);
	return n;
}

/*
 * Harvest until @want entries were collected or @timeout_ms passed,
 * sleeping in EVQ_IOC_WAIT between.  Returns the number collected.
 */
static inline uint32_t evq_collect(struct evq_q *q, struct evq_cqe *out,
				   uint32_t max, uint32_t want, int timeout_ms)
{
	int64_t deadline = evq_now_ns() + (int64_t)timeout_ms * NSEC_PER_MSEC;
	uint32_t got = 0;

	for (;;) {
		got += evq_harvest(q, out ? out + got : NULL, max - got);
		if (got >= want || got >= max)
			break;
		int64_t left = deadline - evq_now_ns();

		if (left <= 0)
			break;
		if (evq_wait(q->fd, left, 1, 0) < 0 && errno != EINTR)
			break;
	}
	return got;
}

/*
 * Move everything the kernel holds into the ring and harvest it, without
 * sleeping: harvest, EVQ_IOC_WAIT(timeout 0), repeat until both are empty.
 */
static inline uint32_t evq_drain(struct evq_q *q, struct evq_cqe *out,
				 uint32_t max)
{
	uint32_t got = 0;
	int rounds = 0;

	for (;;) {
		got += evq_harvest(q, out ? out + got : NULL, max - got);
		if (got >= max || ++rounds > 100000)
			break;
		if (evq_wait(q->fd, 0, 0, 0) <= 0 && evq_ring_count(q) == 0)
			break;
	}
	return got;
}

static inline uint32_t evq_cqe_type(const struct evq_cqe *c)
{
	return c->flags & EVQ_CQE_TYPE_MASK;
}

/* Expect no entry within @ms milliseconds; log any that come. */
#define EXPECT_NO_ENTRIES(q, ms) do {					\
	struct evq_cqe __c[16];						\
	uint32_t __n = evq_collect((q), __c, 16, 16, (ms));		\
	EXPECT_EQ(0U, __n);						\
	for (uint32_t __k = 0; __k < __n; __k++) {			\
		TH_LOG("unexpected entry: user_data %llu res %#x flags %#x", \
		       (unsigned long long)__c[__k].user_data,		\
		       (unsigned int)__c[__k].res, __c[__k].flags);	\
	}								\
} while (0)

/* Count entries of @type with @ud in an array. */
static inline int evq_count_ud(const struct evq_cqe *c, uint32_t n,
			       uint32_t type, uint64_t ud)
{
	int cnt = 0;

	for (uint32_t i = 0; i < n; i++)
		if (evq_cqe_type(&c[i]) == type && c[i].user_data == ud)
			cnt++;
	return cnt;
}

/* ---- file descriptor helpers ---- */

static inline int evq_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* The VM's init may leave lo down; bring it up (harmless if it is up). */
static inline void evq_lo_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
	if (!ioctl(s, SIOCGIFFLAGS, &ifr) && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
}

/*
 * A connected TCP loopback pair of @family (AF_INET or AF_INET6): sv[0]
 * the accepted side, sv[1] the client side.
 */
static inline int evq_tcp_pair_af(int family, int sv[2])
{
	struct sockaddr_storage a = { .ss_family = family };
	socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) :
					     sizeof(struct sockaddr_in);
	int one = 1;
	int l, c, s;

	evq_lo_up();
	if (family == AF_INET6)
		((struct sockaddr_in6 *)&a)->sin6_addr = in6addr_loopback;
	else
		((struct sockaddr_in *)&a)->sin_addr.s_addr =
			htonl(INADDR_LOOPBACK);
	l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -1;
	if (bind(l, (struct sockaddr *)&a, len) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len)) {
		close(l);
		return -1;
	}
	c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, len)) {
		if (c >= 0)
			close(c);
		close(l);
		return -1;
	}
	s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	close(l);
	if (s < 0) {
		close(c);
		return -1;
	}
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sv[0] = s;
	sv[1] = c;
	return 0;
}

/* The IPv4 pair most tests use. */
static inline int evq_tcp_pair(int sv[2])
{
	return evq_tcp_pair_af(AF_INET, sv);
}

/*
 * Wait up to @timeout_ms for the other end of @fd to be gone: read() gives
 * EOF, or ECONNRESET (an AF_UNIX stream closed with unread data).
 */
static inline int evq_sees_eof(int fd, int timeout_ms)
{
	int64_t deadline = evq_now_ns() + (int64_t)timeout_ms * NSEC_PER_MSEC;
	char buf[256];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = (deadline - evq_now_ns()) / NSEC_PER_MSEC;
		ssize_t n;

		if (left < 0)
			return 0;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 1;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return 0;
	}
}

/* Read and discard everything readable now. */
static inline void evq_drain_fd(int fd)
{
	char buf[4096];
	int fl = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	fcntl(fd, F_SETFL, fl);
}

static inline int evq_raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -1;
	if (rl.rlim_cur >= want)
		return 0;
	if (rl.rlim_max < want)
		rl.rlim_max = want;
	rl.rlim_cur = want;
	return setrlimit(RLIMIT_NOFILE, &rl);
}

static inline void evq_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Is the module loaded under its usual name? */
static inline int evq_module_loaded(void)
{
	return access("/sys/module/" EVQ_MODNAME, F_OK) == 0;
}

/* /sys/module/evq/refcnt: one per open queue file; -1 if unknown. */
static inline int evq_module_refcnt(void)
{
	char buf[32] = { 0 };
	int fd = open("/sys/module/" EVQ_MODNAME "/refcnt", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoi(buf) : -1;
}

/* Wait up to @ms for the refcnt to come to @want (fput may be deferred). */
static inline int evq_refcnt_settles(int want, int ms)
{
	int v = evq_module_refcnt();

	for (int i = 0; i < ms / 10 && v != want; i++) {
		evq_sleep_ms(10);
		v = evq_module_refcnt();
	}
	return v;
}

/* Read / write a module parameter; -1 if absent. */
static inline long evq_param_get(const char *name)
{
	char path[128], buf[32] = { 0 };
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/module/" EVQ_MODNAME "/parameters/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atol(buf) : -1;
}

static inline int evq_param_set(const char *name, long val)
{
	char path[128], buf[32];
	int fd, len, ok;

	snprintf(path, sizeof(path), "/sys/module/" EVQ_MODNAME "/parameters/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	len = snprintf(buf, sizeof(buf), "%ld\n", val);
	ok = write(fd, buf, len) == len;
	close(fd);
	return ok ? 0 : -1;
}

static inline int evq_delete_module(unsigned int flags)
{
	return syscall(SYS_delete_module, EVQ_MODNAME, flags) ? -errno : 0;
}

/* Load the module from $EVQ_MODULE; returns 0, or -errno, or 1 if unset. */
static inline int evq_load_module_from_env(void)
{
	const char *path = getenv("EVQ_MODULE");
	int fd, ret;

	if (!path || !*path)
		return 1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, "", 0) ? -errno : 0;
	close(fd);
	if (ret && ret != -EEXIST) {
		char cmd[4200];

		/* Fall back on insmod(8), e.g. for a compressed module. */
		snprintf(cmd, sizeof(cmd), "insmod '%s'", path);
		if (system(cmd) == 0)
			ret = 0;
	}
	if (ret == -EEXIST)
		ret = 0;
	/* Give devtmpfs a moment to create the node. */
	for (int i = 0; !ret && i < 100 && access(EVQ_DEV, F_OK); i++)
		evq_sleep_ms(20);
	return ret;
}

/* ---- page cache ---- */

/* Pages of @fd in the page cache, by mincore() on a mapping; -1 on error. */
static inline long evq_resident_pages(int fd)
{
	struct stat st;
	unsigned char *vec;
	long pages, n = 0;
	void *map;

	if (fstat(fd, &st) || !st.st_size)
		return st.st_size ? -1 : 0;
	pages = (st.st_size + 4095) / 4096;
	map = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -1;
	vec = malloc(pages);
	if (vec && !mincore(map, st.st_size, vec))
		for (long i = 0; i < pages; i++)
			n += vec[i] & 1;
	else
		n = -1;
	free(vec);
	munmap(map, st.st_size);
	return n;
}

/*
 * Drop every page of the file; returns 0 once none is resident.
 * POSIX_FADV_DONTNEED skips pages still sitting in another CPU's LRU
 * batch, so fall back on dropping the clean page cache (we are root in
 * the VM) and look again.
 */
static inline int evq_make_cold(int fd)
{
	long left = -1;

	fdatasync(fd);
	for (int i = 0; i < 300; i++) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		left = evq_resident_pages(fd);
		if (!left) {
			if (i)
				fprintf(stderr, "# cold after %d tries\n", i);
			return 0;
		}
		int d = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);

		if (d >= 0) {
			/* Best effort: the loop checks the result. */
			if (write(d, "1", 1) < 0)
				d = -d - 1;
			close(d < 0 ? -d - 1 : d);
		}
		usleep(10000);
	}
	fprintf(stderr, "# %ld pages stay resident\n", left);
	return -1;
}

#endif /* EVQ_SELFTEST_UTIL_H */
