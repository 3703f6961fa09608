// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Behaviour tests of evq_sendfile() and evq_cancel() through libevq's
 * public API, on whichever backend evq_open() picks (EVQ_BACKEND=epoll
 * on the host tests the userspace emulation, EVQ_BACKEND=kmod in the VM
 * tests evq.ko): both must behave the same.
 *
 * Every byte that reaches the receiver is compared with the file.  Tests
 * that need pages missing from the page cache make a file cold with
 * POSIX_FADV_DONTNEED in $EVQ_SCRATCH (tools/vm/run --disk sets it),
 * else /var/tmp, and SKIP where the filesystem keeps its pages (tmpfs).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "libevq.h"
#include "kselftest_harness.h"
#include "evq_test_util.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP	262
#endif

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
#define KIB		1024ULL
#define MIB		(1024 * KIB)

/* user_data of the sender socket's EPOLLOUT watch. */
#define UD_OUT		0x5eed0001ULL

/* Socket buffer size that a non-reading receiver fills with little data. */
#define SMALL_BUF	(16 * 1024)

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static bool is_kmod(const struct evq *q)
{
	return q->backend == EVQ_BACKEND_KMOD;
}

/*
 * The limits the backend applies: the module reports its parameters;
 * the emulation keeps the module's defaults.
 */
static void backend_limits(struct evq *q, unsigned int *max_ops,
			   unsigned int *window)
{
	struct evq_info info;

	*max_ops = 4096;
	*window = 512 * 1024;
	memset(&info, 0, sizeof(info));
	if (is_kmod(q) && ioctl(q->fd, EVQ_IOC_INFO, &info) == 0) {
		*max_ops = info.max_ops;
		*window = info.sendfile_window;
	}
}

/*
 * The file's byte at off: depends on every bit of the offset, so a byte
 * sent twice, dropped or shifted shows.
 */
static uint8_t pat(uint64_t off)
{
	uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ULL;

	return (uint8_t)(x >> 56) ^ (uint8_t)(off >> 16);
}

static const char *file_dir(void)
{
	const char *d = getenv("EVQ_SCRATCH");

	if (d && *d)
		return d;
	return access("/var/tmp", W_OK) == 0 ? "/var/tmp" : "/tmp";
}

/* An unlinked regular file of size bytes of pat(), open read-write. */
static int make_file(uint64_t size)
{
	static uint8_t buf[64 * 1024];
	char path[PATH_MAX];
	uint64_t off, i, n;
	int fd;

	snprintf(path, sizeof(path), "%s/evq_sf_test_XXXXXX", file_dir());
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	for (off = 0; off < size; off += n) {
		n = size - off < sizeof(buf) ? size - off : sizeof(buf);
		for (i = 0; i < n; i++)
			buf[i] = pat(off + i);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			close(fd);
			return -EIO;
		}
	}
	return fd;
}

/* Pages of the file's first size bytes that are in the page cache. */
static long resident_pages(int fd, uint64_t size)
{
	long page = sysconf(_SC_PAGESIZE), n = 0, i, pages;
	unsigned char *vec;
	void *map;

	pages = (long)((size + page - 1) / page);
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -1;
	vec = calloc(pages, 1);
	if (vec && mincore(map, size, vec) == 0) {
		for (i = 0; i < pages; i++)
			n += vec[i] & 1;
	} else {
		n = -1;
	}
	free(vec);
	munmap(map, size);
	return n;
}

/*
 * Drop the file's pages from the cache.  False when some stay: tmpfs and
 * an initramfs have no disk to drop them to.
 */
static bool make_cold(int fd, uint64_t size)
{
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	return resident_pages(fd, size) == 0;
}

struct conn {
	int tx;		/* ours: the sendfile socket */
	int rx;		/* the receiver */
};

static void set_buf(int fd, int opt, int size)
{
	setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size));
}

/*
 * A loopback TCP connection.  buf > 0 fixes both socket buffers that
 * small, so that a receiver that does not read fills them with little
 * data.
 */
static int tcp_conn(struct conn *c, int family, int buf)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	socklen_t len = sizeof(ss);
	int l, one = 1, err = -1;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = family;
	if (family == AF_INET)
		a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		a6->sin6_addr = in6addr_loopback;
	c->tx = c->rx = -1;
	l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	if (buf)
		set_buf(l, SO_RCVBUF, buf);	/* accept() inherits it */
	if (bind(l, (struct sockaddr *)&ss, len) ||
	    getsockname(l, (struct sockaddr *)&ss, &len) || listen(l, 1))
		goto out;
	c->tx = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->tx < 0)
		goto out;
	if (buf)
		set_buf(c->tx, SO_SNDBUF, buf);
	if (connect(c->tx, (struct sockaddr *)&ss, len))
		goto out;
	c->rx = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (c->rx < 0)
		goto out;
	/* Small sends must leave at once, not wait for an ACK. */
	setsockopt(c->tx, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	err = 0;
out:
	if (err) {
		err = -errno;
		if (c->tx >= 0)
			close(c->tx);
		c->tx = -1;
	}
	close(l);
	return err;
}

static void conn_close(struct conn *c)
{
	if (c->tx >= 0)
		close(c->tx);
	if (c->rx >= 0)
		close(c->rx);
	c->tx = c->rx = -1;
}

/* A thread that reads the receiver to EOF and checks every byte. */
struct rx {
	int fd;
	uint64_t base;		/* file offset of the first byte expected */
	uint64_t got;
	uint64_t bad;		/* bytes that differ from the file */
	uint64_t first_bad;
	int err;
	bool running;
	pthread_t t;
};

static void rx_check(struct rx *r, const uint8_t *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (buf[i] == pat(r->base + r->got + i))
			continue;
		if (!r->bad)
			r->first_bad = r->got + i;
		r->bad++;
	}
	r->got += n;
}

static void *rx_fn(void *arg)
{
	struct rx *r = arg;
	uint8_t buf[64 * 1024];
	ssize_t n;

	for (;;) {
		n = read(r->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r->err = n ? -errno : 0;
			return NULL;
		}
		rx_check(r, buf, (size_t)n);
	}
}

static int rx_start(struct rx *r, int fd, uint64_t base)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->base = base;
	r->running = pthread_create(&r->t, NULL, rx_fn, r) == 0;
	return r->running ? 0 : -1;
}

/* Wait for the receiver to see EOF: the sender must have shut down. */
static void rx_join(struct rx *r)
{
	if (r->running)
		pthread_join(r->t, NULL);
	r->running = false;
}

/* The next entry, harvested one at a time so order shows; false if none. */
static bool next_cqe(struct evq *q, struct evq_cqe *c, int64_t timeout)
{
	int64_t deadline = now_ns() + timeout, left;

	for (;;) {
		if (evq_harvest(q, c, 1) == 1)
			return true;
		left = deadline - now_ns();
		if (left <= 0 || evq_wait(q, 1, left) < 0)
			return false;
	}
}

/* Nothing to harvest, even after a short wait. */
static bool quiet(struct evq *q)
{
	struct evq_cqe c;

	return !next_cqe(q, &c, QUIET_WAIT);
}

static void sf_init(struct evq_sendfile *sf, int out, int in, uint64_t off,
		    uint64_t count, uint64_t user_data, uint32_t flags)
{
	memset(sf, 0, sizeof(*sf));
	sf->out_fd = out;
	sf->in_fd = in;
	sf->offset = off;
	sf->count = count;
	sf->user_data = user_data;
	sf->flags = flags;
}

/* One synchronous call's result, checked for consistency. */
static int64_t sf_call(struct evq *q, struct evq_sendfile *sf)
{
	int ret;

	sf->stop = 0xdead;
	sf->error = 0x5a5a;
	sf->sent = ~0ULL;
	ret = evq_sendfile(q, sf);
	if (ret < 0)
		return ret;
	if (sf->sent != (uint64_t)ret || !sf->stop ||
	    sf->stop > EVQ_SF_STOP_ERROR ||
	    (sf->stop == EVQ_SF_STOP_ERROR) != (sf->error != 0) ||
	    (sf->stop == EVQ_SF_STOP_ERROR && (sf->error >= 0 || !ret)))
		return -EPROTO;
	return ret;
}

/* A sender's socket, its EPOLLOUT watch, and what it has seen. */
struct sender {
	struct evq *q;
	int tx;
	bool watched;
	unsigned int notes;	/* PAGES_READY entries seen */
	unsigned int fulls;	/* SOCK_FULL stops seen */
	int note_res;		/* the last PAGES_READY's res */
};

static int wait_out(struct sender *s)
{
	struct evq_cqe c;
	int err;

	if (s->watched)
		err = evq_mod(s->q, s->tx, EPOLLOUT, EVQ_WATCH_ONESHOT, UD_OUT);
	else
		err = evq_add(s->q, s->tx, EPOLLOUT, EVQ_WATCH_ONESHOT, UD_OUT);
	if (err)
		return err;
	s->watched = true;
	if (!next_cqe(s->q, &c, LONG_WAIT))
		return -ETIMEDOUT;
	if (c.user_data != UD_OUT || c.flags != EVQ_CQE_READY ||
	    !(c.res & EPOLLOUT))
		return -EPROTO;
	return 0;
}

static int wait_pages(struct sender *s, uint64_t user_data)
{
	struct evq_cqe c;

	if (!next_cqe(s->q, &c, LONG_WAIT))
		return -ETIMEDOUT;
	if (c.user_data != user_data || c.flags != EVQ_CQE_PAGES_READY)
		return -EPROTO;
	s->notes++;
	s->note_res = c.res;
	return c.res < 0 ? c.res : 0;
}

/*
 * Synchronous sends until the range or the file ends.  SOCK_FULL waits
 * for EPOLLOUT on a oneshot watch of the socket; NOT_RESIDENT waits for
 * the PAGES_READY entry when NOTIFY is set, else asks for one on the next
 * call.  Returns the bytes sent or -errno.
 */
static int64_t send_sync_all(struct sender *s, int fd, uint64_t off,
			     uint64_t count, uint32_t flags, uint64_t ud)
{
	struct evq_sendfile sf;
	uint32_t fl = flags;
	uint64_t total = 0;
	int64_t ret;
	int err;

	for (;;) {
		sf_init(&sf, s->tx, fd, off + total, count - total, ud, fl);
		ret = sf_call(s->q, &sf);
		if (ret < 0)
			return ret;
		total += (uint64_t)ret;
		switch (sf.stop) {
		case EVQ_SF_STOP_DONE:
			return (int64_t)total;
		case EVQ_SF_STOP_SOCK_FULL:
			s->fulls++;
			err = wait_out(s);
			break;
		case EVQ_SF_STOP_NOT_RESIDENT:
			/* Without NOTIFY nothing would come: ask once. */
			if (!(fl & EVQ_SF_NOTIFY)) {
				fl |= EVQ_SF_NOTIFY;
				continue;
			}
			err = wait_pages(s, ud);
			break;
		default:
			return sf.error;
		}
		if (err)
			return err;
		fl = flags;
	}
}

/*
 * One completed asynchronous send: the count, or the count with MORE
 * then the error.  Returns the final res; *sent is the bytes reported.
 */
static int async_result(struct evq *q, uint64_t ud, int64_t *sent,
			int64_t timeout)
{
	struct evq_cqe c;

	*sent = 0;
	if (!next_cqe(q, &c, timeout))
		return -ETIMEDOUT;
	if (c.user_data != ud)
		return -EPROTO;
	if (c.flags == (EVQ_CQE_SENDFILE | EVQ_CQEF_MORE)) {
		if (c.res <= 0)
			return -EPROTO;
		*sent = c.res;
		if (!next_cqe(q, &c, LONG_WAIT))
			return -ETIMEDOUT;
		if (c.user_data != ud || c.flags != EVQ_CQE_SENDFILE ||
		    c.res >= 0)
			return -EPROTO;
		return c.res;
	}
	if (c.flags != EVQ_CQE_SENDFILE)
		return -EPROTO;
	if (c.res >= 0)
		*sent = c.res;
	return c.res;
}

static int count_dir(const char *path)
{
	struct dirent *d;
	DIR *dir = opendir(path);
	int n = 0;

	if (!dir)
		return -1;
	while ((d = readdir(dir)))
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

/*
 * Test children leave with _exit(), so LeakSanitizer's exit check never
 * runs: ask for it where a test has released everything.
 */
#if defined(__SANITIZE_ADDRESS__)
#define ASSERT_NO_LEAKS() ASSERT_EQ(0, __lsan_do_recoverable_leak_check())
#else
#define ASSERT_NO_LEAKS() do { } while (0)
#endif

/*
 * Fill the connection from file offset off on, until it stays full: a
 * delayed ACK (up to 200 ms) of bytes in flight can still make room after
 * a send found the socket full, so send again whenever EPOLLOUT comes
 * within SETTLE.  Returns the offset reached, or -errno.
 */
#define SETTLE		(300 * MS)

static int64_t fill_conn(struct evq *q, int tx, int fd, uint64_t size,
			 uint64_t off)
{
	struct evq_sendfile sf;
	bool watched = false;
	struct evq_cqe c;
	int64_t ret;
	int i, err;

	for (i = 0; i < 100; i++) {
		do {
			sf_init(&sf, tx, fd, off, size - off, 0, 0);
			ret = sf_call(q, &sf);
			if (ret < 0)
				return ret;
			off += (uint64_t)ret;
		} while (sf.stop == EVQ_SF_STOP_DONE && off < size);
		if (sf.stop != EVQ_SF_STOP_SOCK_FULL)
			return -ENOSPC;
		if (watched)
			err = evq_mod(q, tx, EPOLLOUT, EVQ_WATCH_ONESHOT,
				      UD_OUT);
		else
			err = evq_add(q, tx, EPOLLOUT, EVQ_WATCH_ONESHOT,
				      UD_OUT);
		if (err)
			return err;
		watched = true;
		if (!next_cqe(q, &c, SETTLE)) {
			err = evq_del(q, tx);
			return err ? err : (int64_t)off;
		}
		if (c.user_data != UD_OUT)
			return -EPROTO;
	}
	return -ENOSPC;
}

/* ---------------------------------------------------------------------
 * Synchronous sends of resident files
 */

/*
 * One fixture for both forms: a resident file of variant->size bytes and
 * a connection.  Each form sends every range, with what the file holds
 * of it as the expected count.
 */
FIXTURE(range) {
	struct evq q;
	struct conn c;
	struct rx rx;
	int fd;
};

FIXTURE_VARIANT(range) {
	uint64_t size, off, count;
};

FIXTURE_VARIANT_ADD(range, empty) { .size = 0, .count = 0 };
FIXTURE_VARIANT_ADD(range, one) { .size = 1, .count = 1 };
FIXTURE_VARIANT_ADD(range, page_minus_1) { .size = 4095, .count = 4095 };
FIXTURE_VARIANT_ADD(range, page) { .size = 4096, .count = 4096 };
FIXTURE_VARIANT_ADD(range, page_plus_1) { .size = 4097, .count = 4097 };
FIXTURE_VARIANT_ADD(range, mib_plus_3) {
	.size = MIB + 3, .count = MIB + 3
};
FIXTURE_VARIANT_ADD(range, unaligned) {
	.size = 300000, .off = 4093, .count = 200001
};
FIXTURE_VARIANT_ADD(range, big_unaligned) {
	.size = 3 * MIB + 5, .off = 7, .count = 3 * MIB - 2
};
/* The range ends where the file does (for EVQ_SF_ASYNC: did at the start). */
FIXTURE_VARIANT_ADD(range, past_eof) {
	.size = 70000, .off = 1000, .count = 1000000
};
FIXTURE_VARIANT_ADD(range, at_eof) {
	.size = 70000, .off = 70000, .count = 100
};
FIXTURE_VARIANT_ADD(range, count_zero) {
	.size = 70000, .off = 5, .count = 0
};

FIXTURE_SETUP(range)
{
	self->c.tx = self->c.rx = self->fd = -1;
	ASSERT_EQ(0, evq_open(&self->q, 64, 0));
	ASSERT_EQ(0, tcp_conn(&self->c, AF_INET, 0));
	self->fd = make_file(variant->size);
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(range)
{
	conn_close(&self->c);
	if (self->fd >= 0)
		close(self->fd);
	evq_close(&self->q);
}

/* The bytes of [off, off + count) the file holds. */
static uint64_t range_expect(uint64_t size, uint64_t off, uint64_t count)
{
	if (off >= size)
		return 0;
	return count < size - off ? count : size - off;
}

TEST_F(range, sync_bytes_arrive_exact)
{
	uint64_t want = range_expect(variant->size, variant->off,
				     variant->count);
	struct sender s = { .q = &self->q, .tx = self->c.tx };
	struct evq_sendfile sf;
	int64_t ret;

	ASSERT_EQ(0, rx_start(&self->rx, self->c.rx, variant->off));
	/* The first call alone: it must account for itself. */
	sf_init(&sf, self->c.tx, self->fd, variant->off, variant->count, 1, 0);
	ret = sf_call(&self->q, &sf);
	ASSERT_LE(0, ret);
	ASSERT_TRUE(sf.stop == EVQ_SF_STOP_DONE ||
		    sf.stop == EVQ_SF_STOP_SOCK_FULL);
	ASSERT_EQ(0, sf.error);
	if (sf.stop == EVQ_SF_STOP_SOCK_FULL) {
		ASSERT_EQ((int64_t)(want - ret),
			  send_sync_all(&s, self->fd, variant->off + ret,
					variant->count - ret, 0, 1));
	} else {
		ASSERT_EQ(want, (uint64_t)ret);
	}
	/* A synchronous send without NOTIFY posts nothing. */
	ASSERT_TRUE(quiet(&self->q));
	ASSERT_EQ(0, shutdown(self->c.tx, SHUT_WR));
	rx_join(&self->rx);
	ASSERT_EQ(0, self->rx.err);
	ASSERT_EQ(want, self->rx.got);
	EXPECT_EQ(0, self->rx.bad) {
		TH_LOG("first bad byte at %llu",
		       (unsigned long long)self->rx.first_bad);
	}
}

TEST(sync_stops_done_at_end_of_file)
{
	struct evq_sendfile sf;
	struct conn c;
	struct evq q;
	struct rx rx;
	int fd;

	ASSERT_EQ(0, evq_open(&q, 8, 0));
	ASSERT_EQ(0, tcp_conn(&c, AF_INET, 0));
	fd = make_file(1000);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, rx_start(&rx, c.rx, 0));

	/* The file is shorter than the range: what it has, then DONE. */
	sf_init(&sf, c.tx, fd, 0, 5000, 1, 0);
	ASSERT_EQ(1000, sf_call(&q, &sf));
	ASSERT_EQ(EVQ_SF_STOP_DONE, sf.stop);
	ASSERT_EQ(0, sf.error);
	/* At and after the end, and an empty range: 0 bytes, DONE. */
	sf_init(&sf, c.tx, fd, 1000, 10, 1, 0);
	ASSERT_EQ(0, sf_call(&q, &sf));
	ASSERT_EQ(EVQ_SF_STOP_DONE, sf.stop);
	sf_init(&sf, c.tx, fd, 1 << 20, 10, 1, 0);
	ASSERT_EQ(0, sf_call(&q, &sf));
	ASSERT_EQ(EVQ_SF_STOP_DONE, sf.stop);
	sf_init(&sf, c.tx, fd, 10, 0, 1, 0);
	ASSERT_EQ(0, sf_call(&q, &sf));
	ASSERT_EQ(EVQ_SF_STOP_DONE, sf.stop);
	/* The largest offset the range check lets through. */
	sf_init(&sf, c.tx, fd, INT64_MAX - 10, 10, 1, 0);
	ASSERT_EQ(0, sf_call(&q, &sf));
	ASSERT_EQ(EVQ_SF_STOP_DONE, sf.stop);

	ASSERT_EQ(0, shutdown(c.tx, SHUT_WR));
	rx_join(&rx);
	ASSERT_EQ(1000, rx.got);
	ASSERT_EQ(0, rx.bad);
	close(fd);
	conn_close(&c);
	evq_close(&q);
}

TEST(sync_more_flag_keeps_stream_whole)
{
	struct sender s;
	struct conn c;
	struct evq q;
	struct rx rx;
	int fd;

	ASSERT_EQ(0, evq_open(&q, 8, 0));
	ASSERT_EQ(0, tcp_conn(&c, AF_INET, 0));
	fd = make_file(20000);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, rx_start(&rx, c.rx, 0));
	s = (struct sender){ .q = &q, .tx = c.tx };
	/* MSG_MORE on the first part; the second, without, pushes both. */
	ASSERT_EQ(7001, send_sync_all(&s, fd, 0, 7001, EVQ_SF_MORE, 1));
	ASSERT_EQ(12999, send_sync_all(&s, fd, 7001, 12999, 0, 1));
	ASSERT_EQ(0, shutdown(c.tx, SHUT_WR));
	rx_join(&rx);
	ASSERT_EQ(20000, rx.got);
	ASSERT_EQ(0, rx.bad);
	close(fd);
	conn_close(&c);
	evq_close(&q);
}

TEST(sync_ipv6)
{
	struct sender s;
	struct conn c;
	struct evq q;
	struct rx rx;
	int fd;

	if (tcp_conn(&c, AF_INET6, 0))
		SKIP(return, "no IPv6 loopback");
	ASSERT_EQ(0, evq_open(&q, 8, 0));
	fd = make_file(100000);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, rx_start(&rx, c.rx, 0));
	s = (struct sender){ .q = &q, .tx = c.tx };
	ASSERT_EQ(100000, send_sync_all(&s, fd, 0, 100000, 0, 1));
	ASSERT_EQ(0, shutdown(c.tx, SHUT_WR));
	rx_join(&rx);
	ASSERT_EQ(100000, rx.got);
	ASSERT_EQ(0, rx.bad);
	close(fd);
	conn_close(&c);
	evq_close(&q);
}

TEST(sync_sock_full_then_epollout)
{
	const uint64_t size = 4 * MIB;
	struct evq_sendfile sf;
	struct evq_cqe e;
	struct sender s;
	struct conn c;
	struct evq q;
	struct rx rx;
	int64_t first, ret;
	int fd;

	ASSERT_EQ(0, evq_open(&q, 8, 0));
	ASSERT_EQ(0, tcp_conn(&c, AF_INET, SMALL_BUF));
	fd = make_file(size);
	ASSERT_LE(0, fd);

	/* Nobody reads: the send stops when the socket is full. */
	sf_init(&sf, c.tx, fd, 0, size, 1, 0);
	first = sf_call(&q, &sf);
	ASSERT_LT(0, first);
	ASSERT_GT(size, first);
	ASSERT_EQ(EVQ_SF_STOP_SOCK_FULL, sf.stop);
	ASSERT_EQ(0, sf.error);
	/*
	 * Not writable while the receiver does not read (fill_conn() checks
	 * it stays so), and then EPOLLOUT comes once it reads.
	 */
	ret = fill_conn(&q, c.tx, fd, size, first);
	ASSERT_LE(first, ret);
	first = ret;
	ASSERT_EQ(0, evq_add(&q, c.tx, EPOLLOUT, EVQ_WATCH_ONESHOT, UD_OUT));
	ASSERT_TRUE(quiet(&q));
	ASSERT_EQ(0, rx_start(&rx, c.rx, 0));
	ASSERT_TRUE(next_cqe(&q, &e, LONG_WAIT));
	ASSERT_EQ(UD_OUT, e.user_data);
	ASSERT_EQ(EVQ_CQE_READY, e.flags);
	ASSERT_TRUE(e.res & EPOLLOUT);

	s = (struct sender){ .q = &q, .tx = c.tx, .watched = true };
	ASSERT_EQ(size - first,
		  send_sync_all(&s, fd, first, size - first, 0, 1));
	ASSERT_EQ(0, shutdown(c.tx, SHUT_WR));
	rx_join(&rx);
	ASSERT_EQ(size, rx.got);
	ASSERT_EQ(0, rx.bad);
	close(fd);
	conn_close(&c);
	evq_close(&q);
}

/* Our own side shut down: EPIPE comes back, and no SIGPIPE kills us. */
TEST(sync_and_async_epipe_without_sigpipe)
{
	struct evq_sendfile sf;
	struct conn c;
	struct evq q;
	int64_t sent;
	int fd;

	ASSERT_EQ(0, evq_open(&q, 8, 0));
	ASSERT_EQ(0, tcp_conn(&c, AF_INET, 0));
	fd = make_file(10000);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, shutdown(c.tx, SHUT_WR));

	sf_init(&sf, c.tx, fd, 0, 10000, 1, 0);
	ASSERT_EQ(-EPIPE, evq_sendfile(&q, &sf));
	sf_init(&sf, c.tx, fd, 0, 10000, 2, EVQ_SF_ASYNC);
	ASSERT_EQ(0, evq_sendfile(&q, &sf));
	/* Nothing went: one entry, the error. */
	ASSERT_EQ(-EPIPE, async_result(&q, 2, &sent, LONG_WAIT));
	ASSERT_EQ(0, sent);
	ASSERT_TRUE(quiet(&q));
	close(fd);
	conn_close(&c);
	evq_close(&q);
}

/* ---------------------------------------------------------------------
 * Asynchronous sends
 */

TEST_F(range, async_completes_with_exact_count)
{
	uint64_t want = range_expect(variant->size, variant->off,
				     variant->count);
	struct evq_sendfile sf;
	int64_t sent;

	ASSERT_EQ(0, rx_start(&self->rx, self->c.rx, variant->off));
	sf_init(&sf, self->c.tx, self->fd, variant->off, variant->count, 42,
		EVQ_SF_ASYNC);
	ASSERT_EQ(0, evq_sendfile(&self->q, &sf));
	/* The caller may close its descriptors: the queue holds its own. */
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ((int)want,
		  async_result(&self->q, 42, &sent, 4 * LONG_WAIT));
	ASSERT_TRUE(quiet(&self->q));
	ASSERT_EQ(-ENOENT, evq_cancel(&self->q, 42));
	ASSERT_EQ(0, shutdown(self->c.tx, SHUT_WR));
	rx_join(&self->rx);
	ASSERT_EQ(want, self->rx.got);
	EXPECT_EQ(0, self->rx.bad) {
		TH_LOG("first bad byte at %llu",
		       (unsigned long long)self->rx.first_bad);
	}
}

/* The queue fd polls readable once an operation has posted. */
TEST(async_completion_makes_queue_fd_readable)
{
	struct evq_sendfile sf;
	struct pollfd p;
	struct conn c;
	struct evq q;
	int64_t sent;
	int fd;

	ASSERT_EQ(0, evq_open(&q, 8, 0));
	ASSERT_EQ(0, tcp_conn(&c, AF_INET, 0));
	fd = make_file(3000);
	ASSERT_LE(0, fd);
	sf_init(&sf, c.tx, fd, 0, 3000, 5, EVQ_SF_ASYNC);
	ASSERT_EQ(0, evq_sendfile(&q, &sf));
	p = (struct pollfd){ .fd = evq_fd(&q), .events = POLLIN };
	ASSERT_EQ(1, poll(&p, 1, (int)(LONG_WAIT / MS)));
	ASSERT_TRUE(p.revents & POLLIN);
	ASSERT_EQ(3000, async_result(&q, 5, &sent, LONG_WAIT));
	close(fd);
	conn_close(&c);
	evq_close(&q);
}

/* Readiness and completions arrive side by side, each as itself. */
TEST(async_and_watch_entries_kept_apart)
{
	bool got_ready = false, got_send = false;
	struct evq_sendfile sf;
	struct evq_cqe e;
	struct conn c;
	struct evq q;
	struct rx rx;
	int fd, p[2], i;

	ASSERT_EQ(0, evq_open(&q, 8, 0));
	ASSERT_EQ(0, tcp_conn(&c, AF_INET, 0));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	fd = make_file(2 * MIB);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, rx_start(&rx, c.rx, 0));
	ASSERT_EQ(0, evq_add(&q, p[0], EPOLLIN, EVQ_WATCH_EDGE, 1));
	sf_init(&sf, c.tx, fd, 0, 2 * MIB, 2, EVQ_SF_ASYNC);
	ASSERT_EQ(0, evq_sendfile(&q, &sf));
	ASSERT_EQ(1, write(p[1], "x", 1));
	for (i = 0; i < 2; i++) {
		ASSERT_TRUE(next_cqe(&q, &e, 4 * LONG_WAIT));
		if (e.user_data == 1) {
			ASSERT_FALSE(got_ready);
			ASSERT_EQ(EVQ_CQE_READY, e.flags);
			ASSERT_EQ(EPOLLIN, e.res);
			got_ready = true;
		} else {
			ASSERT_EQ(2, e.user_data);
			ASSERT_FALSE(got_send);
			ASSERT_EQ(EVQ_CQE_SENDFILE, e.flags);
			ASSERT_EQ(2 * MIB, e.res);
			got_send = true;
		}
	}
	ASSERT_TRUE(quiet(&q));
	ASSERT_EQ(0, shutdown(c.tx, SHUT_WR));
	rx_join(&rx);
	ASSERT_EQ(2 * MIB, rx.got);
	ASSERT_EQ(0, rx.bad);
	close(p[0]);
	close(p[1]);
	close(fd);
	conn_close(&c);
	evq_close(&q);
}

TEST(async_cancel_on_full_socket)
{
	const uint64_t size = 8 * MIB;
	struct evq_sendfile sf;
	struct conn c;
	struct evq q;
	struct rx rx;
	int64_t sent;
	int fd;

	ASSERT_EQ(0, evq_open(&q, 8, 0));
	ASSERT_EQ(0, tcp_conn(&c, AF_INET, SMALL_BUF));
	fd = make_file(size);
	ASSERT_LE(0, fd);
	sf_init(&sf, c.tx, fd, 0, size, 9, EVQ_SF_ASYNC);
	ASSERT_EQ(0, evq_sendfile(&q, &sf));
	/* The receiver does not read: it cannot finish. */
	ASSERT_TRUE(quiet(&q));
	ASSERT_EQ(-ENOENT, evq_cancel(&q, 10));
	ASSERT_EQ(1, evq_cancel(&q, 9));
	ASSERT_EQ(-ECANCELED, async_result(&q, 9, &sent, LONG_WAIT));
	ASSERT_TRUE(quiet(&q));
	ASSERT_EQ(-ENOENT, evq_cancel(&q, 9));

	/* The count reported is what the receiver gets, byte for byte. */
	ASSERT_EQ(0, rx_start(&rx, c.rx, 0));
	ASSERT_EQ(0, shutdown(c.tx, SHUT_WR));
	rx_join(&rx);
	ASSERT_EQ(sent, rx.got);
	ASSERT_EQ(0, rx.bad);
	close(fd);
	conn_close(&c);
	evq_close(&q);
	ASSERT_NO_LEAKS();
}

TEST(cancel_without_operations)
{
	struct evq q;

	ASSERT_EQ(0, evq_open(&q, 8, 0));
	ASSERT_EQ(-ENOENT, evq_cancel(&q, 0));
	ASSERT_EQ(-ENOENT, evq_cancel(&q, 77));
	evq_close(&q);
}

/* Cut the file under a send: the count up to the new end, then ENODATA. */
TEST(async_truncated_file)
{
	const uint64_t size = 8 * MIB, cut = 2 * MIB;
	struct evq_sendfile sf;
	struct conn c;
	struct evq q;
	struct rx rx;
	int64_t sent;
	int fd;

	ASSERT_EQ(0, evq_open(&q, 8, 0));
	ASSERT_EQ(0, tcp_conn(&c, AF_INET, SMALL_BUF));
	fd = make_file(size);
	ASSERT_LE(0, fd);
	sf_init(&sf, c.tx, fd, 0, size, 3, EVQ_SF_ASYNC);
	ASSERT_EQ(0, evq_sendfile(&q, &sf));
	ASSERT_TRUE(quiet(&q));
	ASSERT_EQ(0, ftruncate(fd, cut));
	ASSERT_EQ(0, rx_start(&rx, c.rx, 0));
	ASSERT_EQ(-ENODATA, async_result(&q, 3, &sent, 4 * LONG_WAIT));
	ASSERT_EQ(cut, sent);
	ASSERT_EQ(0, shutdown(c.tx, SHUT_WR));
	rx_join(&rx);
	ASSERT_EQ(cut, rx.got);
	ASSERT_EQ(0, rx.bad);
	close(fd);
	conn_close(&c);
	evq_close(&q);
}

/*
 * max_ops operations in flight, all waiting on one full socket; the next
 * one is refused with EBUSY, before it sends anything.
 */
TEST(ops_limit_ebusy)
{
	unsigned int max_ops, window, i, finals = 0;
	struct evq_sendfile sf;
	struct evq_cqe e;
	struct conn c;
	struct evq q;
	int fd;

	ASSERT_EQ(0, evq_open(&q, 16384, 0));
	backend_limits(&q, &max_ops, &window);
	/* The emulation holds a descriptor per send. */
	if (!raise_nofile(max_ops + 256))
		SKIP(return, "cannot raise RLIMIT_NOFILE to %u", max_ops + 256);
	ASSERT_EQ(0, tcp_conn(&c, AF_INET, SMALL_BUF));
	fd = make_file(MIB);
	ASSERT_LE(0, fd);
	ASSERT_LT(0, fill_conn(&q, c.tx, fd, MIB, 0));

	for (i = 0; i < max_ops; i++) {
		sf_init(&sf, c.tx, fd, 0, 4096, 9, EVQ_SF_ASYNC);
		ASSERT_EQ(0, evq_sendfile(&q, &sf));
	}
	sf_init(&sf, c.tx, fd, 0, 4096, 10, EVQ_SF_ASYNC);
	ASSERT_EQ(-EBUSY, evq_sendfile(&q, &sf));
	sf_init(&sf, c.tx, fd, 0, 4096, 10, EVQ_SF_NOTIFY);
	ASSERT_EQ(-EBUSY, evq_sendfile(&q, &sf));
	/* Without NOTIFY a synchronous send starts no operation. */
	sf_init(&sf, c.tx, fd, 0, 4096, 10, 0);
	ASSERT_LE(0, evq_sendfile(&q, &sf));

	ASSERT_EQ(max_ops, evq_cancel(&q, 9));
	while (finals < max_ops) {
		ASSERT_TRUE(next_cqe(&q, &e, LONG_WAIT));
		ASSERT_EQ(9, e.user_data);
		if (e.flags & EVQ_CQEF_MORE) {
			ASSERT_LT(0, e.res);
			continue;
		}
		ASSERT_EQ(EVQ_CQE_SENDFILE, e.flags);
		ASSERT_EQ(-ECANCELED, e.res);
		finals++;
	}
	ASSERT_TRUE(quiet(&q));
	/* Room again. */
	sf_init(&sf, c.tx, fd, 0, 4096, 11, EVQ_SF_ASYNC);
	ASSERT_EQ(0, evq_sendfile(&q, &sf));
	ASSERT_EQ(1, evq_cancel(&q, 11));
	close(fd);
	conn_close(&c);
	evq_close(&q);
	ASSERT_NO_LEAKS();
}

/* evq_close() with operations in flight lets go of everything. */
TEST(close_with_operations_in_flight)
{
	int fds_before, tasks_before, fd, cold;
	struct evq_sendfile sf;
	struct conn c;
	struct evq q;

	fds_before = count_dir("/proc/self/fd");
	tasks_before = count_dir("/proc/self/task");
	ASSERT_EQ(0, tcp_conn(&c, AF_INET, SMALL_BUF));
	fd = make_file(4 * MIB);
	ASSERT_LE(0, fd);
	cold = make_file(4 * MIB);
	ASSERT_LE(0, cold);
	make_cold(cold, 4 * MIB);

	ASSERT_EQ(0, evq_open(&q, 8, 0));
	sf_init(&sf, c.tx, cold, 0, 4 * MIB, 1, EVQ_SF_NOTIFY);
	ASSERT_LE(0, evq_sendfile(&q, &sf));
	sf_init(&sf, c.tx, fd, 0, 4 * MIB, 2, EVQ_SF_ASYNC);
	ASSERT_EQ(0, evq_sendfile(&q, &sf));
	sf_init(&sf, c.tx, cold, 0, 4 * MIB, 3, EVQ_SF_ASYNC);
	ASSERT_EQ(0, evq_sendfile(&q, &sf));
	evq_close(&q);

	close(fd);
	close(cold);
	conn_close(&c);
	ASSERT_EQ(fds_before, count_dir("/proc/self/fd"));
	ASSERT_EQ(tasks_before, count_dir("/proc/self/task"));
	ASSERT_NO_LEAKS();
}

/* ---------------------------------------------------------------------
 * Pages not in the cache
 */

struct cold {
	struct evq q;
	struct conn c;
	int fd;
	uint64_t size;
};

/* A connection and a cold file; false (and a reason) if none can be had. */
static const char *cold_setup(struct cold *k, uint64_t size)
{
	k->c.tx = k->c.rx = -1;
	k->size = size;
	if (evq_open(&k->q, 64, 0))
		return "evq_open failed";
	if (tcp_conn(&k->c, AF_INET, 0))
		return "no TCP loopback";
	k->fd = make_file(size);
	if (k->fd < 0)
		return "cannot create the file";
	if (!make_cold(k->fd, size))
		return "POSIX_FADV_DONTNEED leaves the pages cached here";
	return NULL;
}

static void cold_teardown(struct cold *k)
{
	conn_close(&k->c);
	if (k->fd >= 0)
		close(k->fd);
	evq_close(&k->q);
}

TEST(notify_cold_file)
{
	const uint64_t size = 2 * MIB + 123;
	unsigned int max_ops, window;
	struct evq_sendfile sf;
	struct sender s;
	const char *why;
	struct cold k;
	struct rx rx;
	int64_t ret;

	why = cold_setup(&k, size);
	if (why) {
		cold_teardown(&k);
		SKIP(return, "%s (%s)", why, file_dir());
	}
	backend_limits(&k.q, &max_ops, &window);
	ASSERT_EQ(0, rx_start(&rx, k.c.rx, 0));

	sf_init(&sf, k.c.tx, k.fd, 0, size, 77, EVQ_SF_NOTIFY);
	ASSERT_EQ(0, sf_call(&k.q, &sf));
	ASSERT_EQ(EVQ_SF_STOP_NOT_RESIDENT, sf.stop);
	ASSERT_EQ(0, sf.error);
	s = (struct sender){ .q = &k.q, .tx = k.c.tx };
	ASSERT_EQ(0, wait_pages(&s, 77));
	ASSERT_LT(0, s.note_res);
	ASSERT_GE(window, s.note_res);
	/* The window is in: a send now gets at least that far. */
	sf_init(&sf, k.c.tx, k.fd, 0, size, 77, EVQ_SF_NOTIFY);
	ret = sf_call(&k.q, &sf);
	ASSERT_LE(0, ret);
	if (sf.stop != EVQ_SF_STOP_SOCK_FULL) {
		ASSERT_LE(s.note_res, ret);
	}
	if (sf.stop == EVQ_SF_STOP_NOT_RESIDENT) {
		ASSERT_EQ(0, wait_pages(&s, 77));
	} else if (sf.stop == EVQ_SF_STOP_SOCK_FULL) {
		ASSERT_EQ(0, wait_out(&s));
	}
	if (sf.stop != EVQ_SF_STOP_DONE) {
		ASSERT_EQ(size - ret, send_sync_all(&s, k.fd, ret, size - ret,
						    EVQ_SF_NOTIFY, 77));
	}
	ASSERT_TRUE(quiet(&k.q));
	ASSERT_EQ(0, shutdown(k.c.tx, SHUT_WR));
	rx_join(&rx);
	ASSERT_EQ(size, rx.got);
	ASSERT_EQ(0, rx.bad);
	cold_teardown(&k);
	ASSERT_NO_LEAKS();
}

/* NOTIFY posts only when the send stopped on a missing page. */
TEST(notify_resident_posts_nothing)
{
	struct evq_sendfile sf;
	struct conn c;
	struct evq q;
	int fd;

	ASSERT_EQ(0, evq_open(&q, 8, 0));
	ASSERT_EQ(0, tcp_conn(&c, AF_INET, SMALL_BUF));
	fd = make_file(4 * MIB);
	ASSERT_LE(0, fd);
	sf_init(&sf, c.tx, fd, 0, 1000, 1, EVQ_SF_NOTIFY);
	ASSERT_EQ(1000, sf_call(&q, &sf));
	ASSERT_EQ(EVQ_SF_STOP_DONE, sf.stop);
	sf_init(&sf, c.tx, fd, 1000, 4 * MIB - 1000, 1, EVQ_SF_NOTIFY);
	ASSERT_LT(0, sf_call(&q, &sf));
	ASSERT_EQ(EVQ_SF_STOP_SOCK_FULL, sf.stop);
	ASSERT_TRUE(quiet(&q));
	ASSERT_EQ(-ENOENT, evq_cancel(&q, 1));
	close(fd);
	conn_close(&c);
	evq_close(&q);
}

/*
 * Cancelling a pending page-in: either it is still pending (count 1, then
 * PAGES_READY -ECANCELED) or it has already posted its result (-ENOENT).
 */
TEST(notify_cancel)
{
	struct evq_sendfile sf;
	struct evq_cqe e;
	const char *why;
	struct cold k;
	int ret;

	why = cold_setup(&k, 4 * MIB);
	if (why) {
		cold_teardown(&k);
		SKIP(return, "%s (%s)", why, file_dir());
	}
	sf_init(&sf, k.c.tx, k.fd, 0, 4 * MIB, 5, EVQ_SF_NOTIFY);
	ASSERT_EQ(0, sf_call(&k.q, &sf));
	ASSERT_EQ(EVQ_SF_STOP_NOT_RESIDENT, sf.stop);
	ret = evq_cancel(&k.q, 5);
	ASSERT_TRUE(ret == 1 || ret == -ENOENT);
	ASSERT_TRUE(next_cqe(&k.q, &e, LONG_WAIT));
	ASSERT_EQ(5, e.user_data);
	ASSERT_EQ(EVQ_CQE_PAGES_READY, e.flags);
	if (ret == 1) {
		ASSERT_EQ(-ECANCELED, e.res);
	} else {
		ASSERT_LT(0, e.res);
	}
	ASSERT_TRUE(quiet(&k.q));
	ASSERT_EQ(-ENOENT, evq_cancel(&k.q, 5));
	cold_teardown(&k);
	ASSERT_NO_LEAKS();
}

TEST(async_cold_file)
{
	const uint64_t size = 3 * MIB + 17;
	struct evq_sendfile sf;
	const char *why;
	struct cold k;
	struct rx rx;
	int64_t sent;

	why = cold_setup(&k, size);
	if (why) {
		cold_teardown(&k);
		SKIP(return, "%s (%s)", why, file_dir());
	}
	ASSERT_EQ(0, rx_start(&rx, k.c.rx, 1));
	sf_init(&sf, k.c.tx, k.fd, 1, size - 1, 8, EVQ_SF_ASYNC);
	ASSERT_EQ(0, evq_sendfile(&k.q, &sf));
	ASSERT_EQ(size - 1, async_result(&k.q, 8, &sent, 4 * LONG_WAIT));
	ASSERT_TRUE(quiet(&k.q));
	ASSERT_EQ(0, shutdown(k.c.tx, SHUT_WR));
	rx_join(&rx);
	ASSERT_EQ(size - 1, rx.got);
	ASSERT_EQ(0, rx.bad);
	cold_teardown(&k);
	ASSERT_NO_LEAKS();
}

/* ---------------------------------------------------------------------
 * Bad input: the errno, and nothing else
 */

FIXTURE(bad) {
	struct evq q;
	struct conn c;
	int file;		/* a good in_fd */
	int wronly, opath, dir, pipe_rd, pipe_wr;
	int unix_sock, udp_sock, closed;
};

FIXTURE_SETUP(bad)
{
	char path[PATH_MAX];
	int p[2], u[2];

	ASSERT_EQ(0, evq_open(&self->q, 8, 0));
	ASSERT_EQ(0, tcp_conn(&self->c, AF_INET, 0));
	snprintf(path, sizeof(path), "%s/evq_sf_bad_XXXXXX", file_dir());
	self->file = mkostemp(path, O_CLOEXEC);
	ASSERT_LE(0, self->file);
	ASSERT_EQ(100, write(self->file, path, 100));
	self->wronly = open(path, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, self->wronly);
	self->opath = open(path, O_PATH | O_CLOEXEC);
	ASSERT_LE(0, self->opath);
	unlink(path);
	self->dir = open(file_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_LE(0, self->dir);
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	self->pipe_rd = p[0];
	self->pipe_wr = p[1];
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, u));
	self->unix_sock = u[0];
	close(u[1]);
	self->udp_sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, self->udp_sock);
	/* High, so that descriptors opened meanwhile do not take it. */
	self->closed = fcntl(self->file, F_DUPFD_CLOEXEC, 900);
	ASSERT_LE(0, self->closed);
	close(self->closed);
}

FIXTURE_TEARDOWN(bad)
{
	conn_close(&self->c);
	close(self->file);
	close(self->wronly);
	close(self->opath);
	close(self->dir);
	close(self->pipe_rd);
	close(self->pipe_wr);
	close(self->unix_sock);
	close(self->udp_sock);
	evq_close(&self->q);
}

/* One bad call: its errno, the struct untouched, no byte sent. */
static int bad_call(struct evq *q, const struct evq_sendfile *in, int rx)
{
	struct evq_sendfile sf = *in;
	char b;
	int ret;

	ret = evq_sendfile(q, &sf);
	if (memcmp(&sf, in, sizeof(sf)))
		return -EPROTO;
	if (recv(rx, &b, 1, MSG_DONTWAIT) != -1 || errno != EAGAIN)
		return -EPROTO;
	return ret;
}

/* The same bad call, synchronous and asynchronous. */
#define EXPECT_BAD(err, out, in, off, count, flags, field, val) do {	\
	struct evq_sendfile _sf;					\
	uint32_t _fl[2] = { (flags), (flags) | EVQ_SF_ASYNC };		\
	int _i;								\
	for (_i = 0; _i < 2; _i++) {					\
		sf_init(&_sf, (out), (in), (off), (count), 1, _fl[_i]);	\
		_sf.field = (val);					\
		EXPECT_EQ(-(err), bad_call(&self->q, &_sf, self->c.rx)) { \
			TH_LOG("line %d, flags %#x", __LINE__, _fl[_i]); \
		}							\
	}								\
} while (0)

TEST_F(bad, reserved_fields_and_flags)
{
	int tx = self->c.tx, f = self->file;
	struct evq_sendfile sf;

	EXPECT_BAD(EINVAL, tx, f, 0, 10, 0, resv0, 1);
	EXPECT_BAD(EINVAL, tx, f, 0, 10, 0, resv, 1);
	EXPECT_BAD(EINVAL, tx, f, 0, 10, 0, resv, 1ULL << 63);
	EXPECT_BAD(EINVAL, tx, f, 0, 10, 1U << 3, user_data, 1);
	EXPECT_BAD(EINVAL, tx, f, 0, 10, 1U << 31, user_data, 1);
	sf_init(&sf, tx, f, 0, 10, 1, EVQ_SF_NOTIFY | EVQ_SF_ASYNC);
	EXPECT_EQ(-EINVAL, bad_call(&self->q, &sf, self->c.rx));
	ASSERT_TRUE(quiet(&self->q));
}

TEST_F(bad, out_fd)
{
	int f = self->file, mptcp;

	EXPECT_BAD(EBADF, -1, f, 0, 10, 0, user_data, 1);
	EXPECT_BAD(EBADF, self->closed, f, 0, 10, 0, user_data, 1);
	EXPECT_BAD(EBADF, INT_MAX, f, 0, 10, 0, user_data, 1);
	EXPECT_BAD(ENOTSOCK, f, f, 0, 10, 0, user_data, 1);
	EXPECT_BAD(ENOTSOCK, self->pipe_wr, f, 0, 10, 0, user_data, 1);
	EXPECT_BAD(ENOTSOCK, evq_fd(&self->q), f, 0, 10, 0, user_data, 1);
	EXPECT_BAD(EOPNOTSUPP, self->unix_sock, f, 0, 10, 0, user_data, 1);
	EXPECT_BAD(EOPNOTSUPP, self->udp_sock, f, 0, 10, 0, user_data, 1);
	/* A stream socket over IP that is not TCP. */
	mptcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_MPTCP);
	if (mptcp >= 0) {
		EXPECT_BAD(EOPNOTSUPP, mptcp, f, 0, 10, 0, user_data, 1);
		close(mptcp);
	}
	ASSERT_TRUE(quiet(&self->q));
}

TEST_F(bad, in_fd)
{
	int tx = self->c.tx;

	EXPECT_BAD(EBADF, tx, -1, 0, 10, 0, user_data, 1);
	EXPECT_BAD(EBADF, tx, self->closed, 0, 10, 0, user_data, 1);
	EXPECT_BAD(EBADF, tx, self->wronly, 0, 10, 0, user_data, 1);
	EXPECT_BAD(EBADF, tx, self->opath, 0, 10, 0, user_data, 1);
	EXPECT_BAD(EINVAL, tx, self->dir, 0, 10, 0, user_data, 1);
	EXPECT_BAD(EINVAL, tx, self->pipe_rd, 0, 10, 0, user_data, 1);
	EXPECT_BAD(EINVAL, tx, self->c.rx, 0, 10, 0, user_data, 1);
	ASSERT_TRUE(quiet(&self->q));
}

TEST_F(bad, range)
{
	int tx = self->c.tx, f = self->file;

	EXPECT_BAD(EINVAL, tx, f, 0, EVQ_SENDFILE_MAX + 1ULL, 0, user_data, 1);
	EXPECT_BAD(EINVAL, tx, f, 0, UINT64_MAX, 0, user_data, 1);
	EXPECT_BAD(EINVAL, tx, f, (uint64_t)INT64_MAX + 1, 0, 0, user_data, 1);
	EXPECT_BAD(EINVAL, tx, f, UINT64_MAX, 1, 0, user_data, 1);
	EXPECT_BAD(EINVAL, tx, f, INT64_MAX - 10, 11, 0, user_data, 1);
	EXPECT_BAD(EINVAL, tx, f, INT64_MAX, 1, 0, user_data, 1);
	ASSERT_TRUE(quiet(&self->q));
}

/* The largest count is fine: the file ends first. */
TEST_F(bad, largest_count_is_accepted)
{
	struct evq_sendfile sf;
	char buf[200];

	sf_init(&sf, self->c.tx, self->file, 0, EVQ_SENDFILE_MAX, 1, 0);
	ASSERT_EQ(100, sf_call(&self->q, &sf));
	ASSERT_EQ(EVQ_SF_STOP_DONE, sf.stop);
	ASSERT_EQ(100, recv(self->c.rx, buf, 100, MSG_WAITALL));
	ASSERT_EQ(-1, recv(self->c.rx, buf, sizeof(buf), MSG_DONTWAIT));
}

/*
 * The emulation's internal wake-up travels under one reserved user_data
 * value; the module reserves none.
 */
TEST(epoll_reserves_one_user_data)
{
	struct evq q;
	int p[2];

	ASSERT_EQ(0, evq_open(&q, 8, 0));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	if (is_kmod(&q)) {
		ASSERT_EQ(0, evq_add(&q, p[0], EPOLLIN, 0, UINT64_MAX));
	} else {
		ASSERT_EQ(-EINVAL, evq_add(&q, p[0], EPOLLIN, 0, UINT64_MAX));
		ASSERT_EQ(0, evq_add(&q, p[0], EPOLLIN, 0, UINT64_MAX - 1));
		ASSERT_EQ(-EINVAL, evq_mod(&q, p[0], EPOLLIN, 0, UINT64_MAX));
	}
	close(p[0]);
	close(p[1]);
	evq_close(&q);
}

TEST_HARNESS_MAIN
