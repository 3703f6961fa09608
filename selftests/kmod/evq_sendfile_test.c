// SPDX-License-Identifier: GPL-2.0
/*
 * EVQ_IOC_SENDFILE and EVQ_IOC_CANCEL through the raw uapi.
 *
 * Files live on $EVQ_SCRATCH (an ext4 virtio-blk disk in the VM, see
 * tools/vm/run --disk): on tmpfs every page is always resident, so no
 * page-cache miss could be tested.  A file is made cold with fsync and
 * POSIX_FADV_DONTNEED, and checked cold with preadv2(RWF_NOWAIT).
 *
 * Every byte sent is checked at the receiver: file contents come from a
 * generator, and the receiver hashes what it reads and compares with the
 * generator's hash of the same range.
 */
#include "evq_util.h"

#include <pthread.h>
#include <sys/stat.h>
#include <sys/uio.h>

/* The 6.1 harness's TEST() passes a variant that plain tests never use. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define MiB		(1024 * 1024)
#define SF_UD		0x5eedf11eULL

/* ---- file contents ---- */

static uint8_t sf_byte(uint64_t i)
{
	uint64_t x = (i >> 3) * 0x9e3779b97f4a7c15ULL;

	return (uint8_t)((x >> 29) ^ (x >> (8 * (i & 7))));
}

static uint64_t sf_hash_add(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

#define SF_HASH_INIT	0xcbf29ce484222325ULL

static uint64_t sf_hash_range(uint64_t off, uint64_t len)
{
	uint64_t h = SF_HASH_INIT;

	for (uint64_t i = 0; i < len; i++)
		h = (h ^ sf_byte(off + i)) * 0x100000001b3ULL;
	return h;
}

static const char *sf_dir(void)
{
	const char *d = getenv("EVQ_SCRATCH");

	return d && *d ? d : NULL;
}

/* Create @name of @size bytes from the generator; returns an O_RDONLY fd. */
static int sf_make_file(const char *name, uint64_t size, char *path,
			size_t pathlen)
{
	static uint8_t buf[1 << 16];
	uint64_t off = 0;
	int fd, rfd;

	snprintf(path, pathlen, "%s/%s", sf_dir(), name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	while (off < size) {
		size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = sf_byte(off + i);
		if (write(fd, buf, n) != (ssize_t)n) {
			close(fd);
			return -1;
		}
		off += n;
	}
	if (fsync(fd)) {
		close(fd);
		return -1;
	}
	close(fd);
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	return rfd;
}

/* Is the byte at @off in the page cache? */
static int sf_resident(int fd, uint64_t off)
{
	char c;
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };

	return preadv2(fd, &iov, 1, off, RWF_NOWAIT) == 1;
}

/* ---- receiver ---- */

struct sf_rx {
	pthread_t th;
	int fd;
	uint64_t want;		/* stop after this many bytes */
	int start_ms;		/* sleep before reading (a full socket) */
	uint64_t got;
	uint64_t hash;
	int done;
};

static void *sf_rx_main(void *arg)
{
	struct sf_rx *rx = arg;
	static __thread uint8_t buf[1 << 16];

	if (rx->start_ms)
		usleep(rx->start_ms * 1000);
	rx->hash = SF_HASH_INIT;
	while (rx->got < rx->want) {
		struct pollfd p = { .fd = rx->fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 20000) <= 0)
			break;
		n = recv(rx->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			break;
		rx->hash = sf_hash_add(rx->hash, buf, n);
		rx->got += n;
	}
	__atomic_store_n(&rx->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int sf_rx_start(struct sf_rx *rx, int fd, uint64_t want, int start_ms)
{
	memset(rx, 0, sizeof(*rx));
	rx->fd = fd;
	rx->want = want;
	rx->start_ms = start_ms;
	return pthread_create(&rx->th, NULL, sf_rx_main, rx);
}

static void sf_rx_join(struct sf_rx *rx)
{
	pthread_join(rx->th, NULL);
}

/* Read until EOF; returns the byte count. */
static int64_t sf_recv_all(int fd)
{
	char buf[4096];
	int64_t got = 0;
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		got += n;
	return n < 0 ? -1 : got;
}

/* ---- calls ---- */

static int sf_call(int qfd, struct evq_sendfile *sf, int out, int in,
		   uint64_t off, uint64_t count, uint32_t flags)
{
	long ret = evq_sf_ioctl(qfd, sf, out, in, off, count, SF_UD, flags);

	return ret < 0 ? ret : 0;
}

static int sf_cancel(int qfd, uint64_t ud)
{
	int ret = ioctl(qfd, EVQ_IOC_CANCEL, &ud);

	return ret < 0 ? -errno : ret;
}

/* Wait for one entry of @type and @ud; returns 1 and fills *c if found. */
static int sf_wait_entry(struct evq_q *q, uint32_t type, uint64_t ud,
			 struct evq_cqe *c, int timeout_ms)
{
	int64_t deadline = evq_now_ns() + (int64_t)timeout_ms * NSEC_PER_MSEC;

	for (;;) {
		struct evq_cqe e;

		while (evq_harvest(q, &e, 1) == 1)
			if (evq_cqe_type(&e) == type && e.user_data == ud) {
				*c = e;
				return 1;
			}
		int64_t left = deadline - evq_now_ns();

		if (left <= 0)
			return 0;
		evq_wait(q->fd, left, 1, 0);
	}
}

/*
 * Send [off, off+count) with synchronous calls, as a one-thread server
 * would: on SOCK_FULL wait for the socket, on NOT_RESIDENT wait for the
 * PAGES_READY entry.  Returns bytes sent, or -1 on an unexpected stop.
 */
static int64_t sf_sync_all(struct evq_q *q, int out, int in, uint64_t off,
			   uint64_t count, int *pages_ready)
{
	uint64_t done = 0;

	while (done < count) {
		struct evq_sendfile sf;
		struct evq_cqe c;
		int ret = sf_call(q->fd, &sf, out, in, off + done,
				  count - done, EVQ_SF_NOTIFY);

		if (ret)
			return -1;
		done += sf.sent;
		switch (sf.stop) {
		case EVQ_SF_STOP_DONE:
			return done;
		case EVQ_SF_STOP_SOCK_FULL: {
			struct pollfd p = { .fd = out, .events = POLLOUT };

			if (poll(&p, 1, 20000) != 1)
				return -1;
			break;
		}
		case EVQ_SF_STOP_NOT_RESIDENT:
			if (!sf_wait_entry(q, EVQ_CQE_PAGES_READY, SF_UD, &c,
					   20000) || c.res <= 0)
				return -1;
			if (pages_ready)
				(*pages_ready)++;
			break;
		default:
			return -1;
		}
	}
	return done;
}

static int sf_param_rw(const char *name, const char *set, char *old,
		       size_t oldlen)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/module/evq/parameters/%s", name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (old) {
		n = read(fd, old, oldlen - 1);
		old[n > 0 ? n : 0] = 0;
	}
	n = set ? pwrite(fd, set, strlen(set), 0) : 0;
	close(fd);
	return n < 0 ? -1 : 0;
}

/* ---- fixture: a queue, a TCP pair, the scratch directory ---- */

FIXTURE(sf) {
	struct evq_q q;
	int sv[2];		/* sv[0]: the sending side, sv[1]: the receiver */
	char path[256];
};

FIXTURE_VARIANT(sf) {
	int v6;
};

FIXTURE_VARIANT_ADD(sf, ipv4) { .v6 = 0 };
FIXTURE_VARIANT_ADD(sf, ipv6) { .v6 = 1 };

FIXTURE_SETUP(sf)
{
	EVQ_REQUIRE_DEVICE();
	if (!sf_dir()) {
		SKIP(_exit(255), "no $EVQ_SCRATCH (run with tools/vm/run --disk)");
	}
	ASSERT_EQ(0, evq_q_open(&self->q, 256));
	ASSERT_EQ(0, evq_tcp_pair_af(variant->v6 ? AF_INET6 : AF_INET,
				     self->sv));
	self->path[0] = 0;
}

FIXTURE_TEARDOWN(sf)
{
	evq_q_close(&self->q);
	if (self->sv[0] >= 0)
		close(self->sv[0]);
	close(self->sv[1]);
	if (self->path[0])
		unlink(self->path);
}

/*
 * Hot files of awkward sizes arrive whole and exact.  100 MiB over
 * loopback takes longer than the harness's default 30 s on the debug
 * kernel (KASAN checks every byte the kernel copies) under TCG.
 */
TEST_F_TIMEOUT(sf, sync_sizes_checksum, 300)
{
	static const uint64_t sizes[] = { 0, 1, 4095, 4096, 4097,
					  MiB + 3, 100ULL * MiB };
	uint64_t total = 0, hash = SF_HASH_INIT;
	struct sf_rx rx;
	int fds[7];

	for (unsigned int i = 0; i < 7; i++) {
		char name[32];

		snprintf(name, sizeof(name), "sizes.%u", i);
		fds[i] = sf_make_file(name, sizes[i], self->path,
				      sizeof(self->path));
		ASSERT_LE(0, fds[i]);
		unlink(self->path);
		total += sizes[i];
	}
	self->path[0] = 0;
	ASSERT_EQ(0, sf_rx_start(&rx, self->sv[1], total, 0));
	for (unsigned int i = 0; i < 7; i++) {
		EXPECT_EQ((int64_t)sizes[i],
			  sf_sync_all(&self->q, self->sv[0], fds[i], 0,
				      sizes[i], NULL));
		/* The receiver's hash runs over the concatenation. */
		for (uint64_t o = 0; o < sizes[i]; o += MiB) {
			uint64_t n = sizes[i] - o < MiB ? sizes[i] - o : MiB;
			uint8_t *b = malloc(n);

			ASSERT_NE(NULL, b);
			for (uint64_t k = 0; k < n; k++)
				b[k] = sf_byte(o + k);
			hash = sf_hash_add(hash, b, n);
			free(b);
		}
		close(fds[i]);
	}
	sf_rx_join(&rx);
	EXPECT_EQ(total, rx.got);
	EXPECT_EQ(hash, rx.hash);
}

/* Unaligned offsets and counts, across page boundaries. */
TEST_F(sf, sync_unaligned_offsets)
{
	static const uint64_t offs[] = { 1, 4095, 4097, 12345, 65537 };
	static const uint64_t cnts[] = { 4096, 1, 8191, 100000, 300001 };
	uint64_t total = 0, hash = SF_HASH_INIT;
	struct sf_rx rx;
	int fd = sf_make_file("unaligned", MiB, self->path,
			      sizeof(self->path));

	ASSERT_LE(0, fd);
	for (unsigned int i = 0; i < 5; i++)
		total += cnts[i];
	ASSERT_EQ(0, sf_rx_start(&rx, self->sv[1], total, 0));
	for (unsigned int i = 0; i < 5; i++) {
		uint8_t *b = malloc(cnts[i]);

		EXPECT_EQ((int64_t)cnts[i],
			  sf_sync_all(&self->q, self->sv[0], fd, offs[i],
				      cnts[i], NULL));
		ASSERT_NE(NULL, b);
		for (uint64_t k = 0; k < cnts[i]; k++)
			b[k] = sf_byte(offs[i] + k);
		hash = sf_hash_add(hash, b, cnts[i]);
		free(b);
	}
	sf_rx_join(&rx);
	EXPECT_EQ(total, rx.got);
	EXPECT_EQ(hash, rx.hash);
	close(fd);
}

/*
 * Zero copy: the socket queues references to the page-cache pages, not a
 * copy of them.  Rewrite the file while the bytes sit unread in the
 * socket and the receiver reads the new contents: a copying send would
 * deliver the old ones.
 */
TEST_F(sf, zero_copy_shares_page_cache)
{
	static uint8_t buf[65536];
	struct evq_sendfile sf;
	size_t got = 0;
	int wfd;
	int fd = sf_make_file("zc", sizeof(buf), self->path,
			      sizeof(self->path));

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 0, sizeof(buf),
			     0));
	ASSERT_EQ(EVQ_SF_STOP_DONE, sf.stop);
	ASSERT_EQ(sizeof(buf), sf.sent);
	wfd = open(self->path, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, wfd);
	memset(buf, 'Z', sizeof(buf));
	ASSERT_EQ((ssize_t)sizeof(buf), pwrite(wfd, buf, sizeof(buf), 0));
	close(wfd);
	memset(buf, 0, sizeof(buf));
	while (got < sizeof(buf)) {
		ssize_t n = recv(self->sv[1], buf + got, sizeof(buf) - got, 0);

		ASSERT_LT(0, n);
		got += n;
	}
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != 'Z') {
			TH_LOG("byte %zu is the file's old contents", i);
			ASSERT_EQ('Z', buf[i]);
		}
	close(fd);
}

/*
 * On a file system with 1 KiB blocks the last page of a file is only
 * partly up to date: the blocks past the end were never read.  Its bytes
 * before the end are valid and must be sent, not reported as a miss that
 * no page-in could ever fix.  Built on a loop-mounted ext4 image.
 */
TEST_F(sf, partial_page_at_eof_small_blocks)
{
	static const uint64_t size = 3 * 4096 + 5;
	char img[300], cmd[1024], file[300];
	const char *mnt = "/tmp/evq-1k";
	struct evq_sendfile sf;
	struct evq_cqe c;
	struct sf_rx rx;
	uint8_t b[size];
	int fd, wfd, ret;

	snprintf(img, sizeof(img), "%s/1k.img", sf_dir());
	snprintf(cmd, sizeof(cmd),
		 "modprobe -q loop; truncate -s 16M %s && "
		 "mkfs.ext4 -q -F -b 1024 %s && "
		 "mkdir -p %s && mount -o loop %s %s", img, img, mnt, img, mnt);
	if (system(cmd)) {
		unlink(img);
		SKIP(return, "cannot loop-mount a 1 KiB-block ext4 image");
	}
	snprintf(file, sizeof(file), "%s/f", mnt);
	wfd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ASSERT_LE(0, wfd);
	for (uint64_t i = 0; i < size; i++)
		b[i] = sf_byte(i);
	ASSERT_EQ((ssize_t)size, write(wfd, b, size));
	ASSERT_EQ(0, fsync(wfd));
	close(wfd);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);

	ASSERT_EQ(0, sf_rx_start(&rx, self->sv[1], 2 * size, 0));
	ret = sf_call(self->q.fd, &sf, self->sv[0], fd, 0, size, 0);
	EXPECT_EQ(0, ret);
	EXPECT_EQ(EVQ_SF_STOP_DONE, sf.stop);
	EXPECT_EQ(size, sf.sent);
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 0, size,
			     EVQ_SF_ASYNC));
	ASSERT_EQ(1, sf_wait_entry(&self->q, EVQ_CQE_SENDFILE, SF_UD, &c,
				   10000));
	EXPECT_EQ((int32_t)size, c.res);
	sf_rx_join(&rx);
	EXPECT_EQ(2 * size, rx.got);
	EXPECT_EQ(sf_hash_add(sf_hash_add(SF_HASH_INIT, b, size), b, size),
		  rx.hash);
	close(fd);
	snprintf(cmd, sizeof(cmd), "umount %s", mnt);
	EXPECT_EQ(0, system(cmd));
	unlink(img);
}

/* A range past the end stops at the end; an offset past it sends nothing. */
TEST_F(sf, sync_end_of_file)
{
	struct evq_sendfile sf;
	int fd = sf_make_file("eof", 10000, self->path, sizeof(self->path));

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 5000, 1 << 20,
			     0));
	EXPECT_EQ(5000U, sf.sent);
	EXPECT_EQ(EVQ_SF_STOP_DONE, sf.stop);
	EXPECT_EQ(0, sf.error);

	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 10000, 10, 0));
	EXPECT_EQ(0U, sf.sent);
	EXPECT_EQ(EVQ_SF_STOP_DONE, sf.stop);
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 1ULL << 40, 10,
			     0));
	EXPECT_EQ(0U, sf.sent);
	EXPECT_EQ(EVQ_SF_STOP_DONE, sf.stop);
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 0, 0, 0));
	EXPECT_EQ(0U, sf.sent);
	EXPECT_EQ(EVQ_SF_STOP_DONE, sf.stop);
	/* Nothing else was sent, and no entry was posted. */
	shutdown(self->sv[0], SHUT_WR);
	EXPECT_EQ(5000, sf_recv_all(self->sv[1]));
	EXPECT_NO_ENTRIES(&self->q, 50);
	close(fd);
}

/* A receiver that does not read: SOCK_FULL, then EPOLLOUT once it does. */
TEST_F(sf, sync_sock_full_then_epollout)
{
	struct evq_sendfile sf;
	struct evq_cqe c;
	struct sf_rx rx;
	uint64_t sent;
	int fd = sf_make_file("full", 32 * MiB, self->path,
			      sizeof(self->path));

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 0, 32 * MiB, 0));
	EXPECT_EQ(EVQ_SF_STOP_SOCK_FULL, sf.stop);
	EXPECT_LT(0U, sf.sent);
	EXPECT_GT(32ULL * MiB, sf.sent);
	sent = sf.sent;
	/* Full right now: the next call sends nothing and says so again. */
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, sent,
			     32 * MiB - sent, 0));
	EXPECT_EQ(EVQ_SF_STOP_SOCK_FULL, sf.stop);
	sent += sf.sent;

	ASSERT_EQ(0, evq_ctl1(self->q.fd, EVQ_CTL_ADD, self->sv[0], EPOLLOUT,
			      EVQ_WATCH_EDGE, 77));
	evq_drain(&self->q, NULL, 256);	/* an initial EPOLLOUT, if any */
	ASSERT_EQ(0, sf_rx_start(&rx, self->sv[1], sent, 0));
	ASSERT_EQ(1, sf_wait_entry(&self->q, EVQ_CQE_READY, 77, &c, 20000));
	EXPECT_TRUE(c.res & EPOLLOUT);
	sf_rx_join(&rx);
	EXPECT_EQ(sent, rx.got);
	EXPECT_EQ(sf_hash_range(0, sent), rx.hash);
	close(fd);
}

/* Cold: NOT_RESIDENT, then PAGES_READY with the user_data, then the send. */
TEST_F(sf, sync_cold_notify)
{
	struct evq_sendfile sf;
	struct evq_cqe c;
	struct evq_info info;
	struct sf_rx rx;
	int ready = 0;
	int fd = sf_make_file("cold", 3 * MiB + 17, self->path,
			      sizeof(self->path));

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, evq_get_info(self->q.fd, &info));
	ASSERT_EQ(0, evq_make_cold(fd));
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 0,
			     3 * MiB + 17, EVQ_SF_NOTIFY));
	EXPECT_EQ(EVQ_SF_STOP_NOT_RESIDENT, sf.stop);
	EXPECT_EQ(0U, sf.sent);
	ASSERT_EQ(1, sf_wait_entry(&self->q, EVQ_CQE_PAGES_READY, SF_UD, &c,
				   20000));
	EXPECT_EQ((int32_t)info.sendfile_window, c.res);
	EXPECT_TRUE(sf_resident(fd, 0));
	EXPECT_TRUE(sf_resident(fd, info.sendfile_window - 1));

	ASSERT_EQ(0, sf_rx_start(&rx, self->sv[1], 3 * MiB + 17, 0));
	EXPECT_EQ(3 * MiB + 17, sf_sync_all(&self->q, self->sv[0], fd, 0,
					    3 * MiB + 17, &ready));
	sf_rx_join(&rx);
	EXPECT_EQ(3ULL * MiB + 17, rx.got);
	EXPECT_EQ(sf_hash_range(0, 3 * MiB + 17), rx.hash);
	close(fd);
}

/* Without EVQ_SF_NOTIFY a miss only stops the send: no entry, no read. */
TEST_F(sf, sync_cold_no_notify)
{
	struct evq_sendfile sf;
	int fd = sf_make_file("cold2", MiB, self->path, sizeof(self->path));

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, evq_make_cold(fd));
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 0, MiB, 0));
	EXPECT_EQ(EVQ_SF_STOP_NOT_RESIDENT, sf.stop);
	EXPECT_EQ(0U, sf.sent);
	EXPECT_NO_ENTRIES(&self->q, 200);
	close(fd);
}

/*
 * The asynchronous form completes with the exact count, hot or cold.  The
 * cold pass uses a file no socket has touched: the receiving side frees
 * the pages of a send lazily (deferred skb freeing on another CPU), and
 * pages still referenced cannot be dropped from the cache.
 */
TEST_F(sf, async_exact_count)
{
	static const uint64_t n = 8 * MiB + 5;
	struct evq_sendfile sf;
	struct evq_cqe c;
	struct sf_rx rx;

	for (int cold = 0; cold < 2; cold++) {
		int fd = sf_make_file(cold ? "async.cold" : "async.hot", n,
				      self->path, sizeof(self->path));

		ASSERT_LE(0, fd);
		unlink(self->path);
		self->path[0] = 0;
		if (cold) {
			ASSERT_EQ(0, evq_make_cold(fd));
		}
		ASSERT_EQ(0, sf_rx_start(&rx, self->sv[1], n - 3, 0));
		ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 3, n,
				     EVQ_SF_ASYNC));
		ASSERT_EQ(1, sf_wait_entry(&self->q, EVQ_CQE_SENDFILE, SF_UD,
					   &c, 30000));
		EXPECT_EQ((int32_t)(n - 3), c.res);
		EXPECT_EQ(EVQ_CQE_SENDFILE, c.flags);
		sf_rx_join(&rx);
		EXPECT_EQ(n - 3, rx.got);
		EXPECT_EQ(sf_hash_range(3, n - 3), rx.hash);
		close(fd);
	}
}

/* Cancel a send the receiver never drains: the count so far, then -ECANCELED. */
TEST_F(sf, async_cancel)
{
	struct evq_sendfile sf;
	struct evq_cqe c[4];
	uint32_t n;
	int fd = sf_make_file("cancel", 32 * MiB, self->path,
			      sizeof(self->path));

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 0, 32 * MiB,
			     EVQ_SF_ASYNC));
	EXPECT_NO_ENTRIES(&self->q, 100);
	EXPECT_EQ(-ENOENT, sf_cancel(self->q.fd, SF_UD + 1));
	EXPECT_EQ(1, sf_cancel(self->q.fd, SF_UD));
	n = evq_collect(&self->q, c, 4, 2, 5000);
	ASSERT_EQ(2U, n);
	EXPECT_EQ(EVQ_CQE_SENDFILE | EVQ_CQEF_MORE, c[0].flags);
	EXPECT_LT(0, c[0].res);
	EXPECT_EQ(EVQ_CQE_SENDFILE, c[1].flags);
	EXPECT_EQ(-ECANCELED, c[1].res);
	EXPECT_EQ(SF_UD, c[1].user_data);
	/* Finished: nothing left to cancel. */
	EXPECT_EQ(-ENOENT, sf_cancel(self->q.fd, SF_UD));
	close(fd);
}

/*
 * Releasing the queue cancels its sends and lets go of their files: once
 * the caller closes its socket fd too, the peer sees the end of the
 * stream.  A send still holding the socket would keep it open.
 */
TEST_F(sf, async_release_cancels)
{
	struct evq_sendfile sf;
	int fd = sf_make_file("release", 32 * MiB, self->path,
			      sizeof(self->path));

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 0, 32 * MiB,
			     EVQ_SF_ASYNC));
	usleep(50000);
	/* The mapping holds the file too: both go before release runs. */
	evq_q_close(&self->q);
	close(self->sv[0]);
	self->sv[0] = -1;
	EXPECT_TRUE(evq_sees_eof(self->sv[1], 10000));
	close(fd);
}

/* Truncated during an asynchronous send: the count, then -ENODATA. */
TEST_F(sf, async_truncated)
{
	struct evq_sendfile sf;
	struct evq_cqe c[4];
	struct sf_rx rx;
	uint32_t n;
	int wfd;
	int fd = sf_make_file("trunc", 16 * MiB, self->path,
			      sizeof(self->path));

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, evq_make_cold(fd));
	ASSERT_EQ(0, sf_rx_start(&rx, self->sv[1], 16 * MiB, 0));
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 0, 16 * MiB,
			     EVQ_SF_ASYNC));
	wfd = open(self->path, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, wfd);
	ASSERT_EQ(0, ftruncate(wfd, MiB));
	close(wfd);
	n = evq_collect(&self->q, c, 4, 2, 30000);
	shutdown(self->sv[0], SHUT_WR);
	sf_rx_join(&rx);
	ASSERT_LE(1U, n);
	if (n == 1 && c[0].flags == EVQ_CQE_SENDFILE &&
	    c[0].res == 16 * MiB) {
		SKIP(goto out, "the send finished before the truncate");
	}
	ASSERT_EQ(2U, n);
	EXPECT_EQ(EVQ_CQE_SENDFILE | EVQ_CQEF_MORE, c[0].flags);
	EXPECT_EQ((int64_t)rx.got, c[0].res);
	EXPECT_GE(MiB, c[0].res);
	EXPECT_EQ(-ENODATA, c[1].res);
	EXPECT_EQ(sf_hash_range(0, rx.got), rx.hash);
out:
	close(fd);
}

/*
 * While a cold file pages in, hot sends on the same thread go on: each
 * returns DONE at once, and many finish before PAGES_READY arrives.
 */
TEST_F(sf, hot_flows_during_cold_pagein)
{
	char old[32] = "";
	struct evq_sendfile sf;
	struct evq_cqe c;
	struct sf_rx rx;
	int hot_before = 0, got_ready = 0, sends = 0;
	int cold, hot;
	char cpath[256];

	hot = sf_make_file("hot", 64 * 1024, self->path, sizeof(self->path));
	ASSERT_LE(0, hot);
	cold = sf_make_file("coldbig", 8 * MiB, cpath, sizeof(cpath));
	ASSERT_LE(0, cold);
	unlink(cpath);
	ASSERT_EQ(0, evq_make_cold(cold));
	/* A 4 MiB window on a throttled disk: long enough to watch. */
	ASSERT_EQ(0, sf_param_rw("sendfile_window", "4194304", old,
				 sizeof(old)));
	ASSERT_EQ(0, sf_rx_start(&rx, self->sv[1], 1ULL << 40, 0));
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], cold, 0, 8 * MiB,
			     EVQ_SF_NOTIFY));
	EXPECT_EQ(EVQ_SF_STOP_NOT_RESIDENT, sf.stop);
	EXPECT_EQ(0U, sf.sent);
	while (sends < 5000 && !got_ready) {
		struct evq_sendfile h;

		/* A hot file is never NOT_RESIDENT and never waits. */
		ASSERT_EQ(0, sf_call(self->q.fd, &h, self->sv[0], hot, 0,
				     64 * 1024, 0));
		if (h.stop == EVQ_SF_STOP_SOCK_FULL) {
			struct pollfd p = { .fd = self->sv[0],
					    .events = POLLOUT };

			ASSERT_EQ(1, poll(&p, 1, 20000));
			ASSERT_EQ(0, sf_call(self->q.fd, &h, self->sv[0], hot,
					     h.sent, 64 * 1024 - h.sent, 0));
		}
		ASSERT_EQ(EVQ_SF_STOP_DONE, h.stop);
		sends++;
		if (evq_harvest(&self->q, &c, 1) == 1) {
			ASSERT_EQ(EVQ_CQE_PAGES_READY, evq_cqe_type(&c));
			got_ready = 1;
		} else {
			hot_before++;
		}
	}
	if (!got_ready)
		got_ready = sf_wait_entry(&self->q, EVQ_CQE_PAGES_READY,
					  SF_UD, &c, 30000);
	sf_param_rw("sendfile_window", old, NULL, 0);
	EXPECT_TRUE(got_ready);
	EXPECT_EQ(4 * MiB, c.res);
	TH_LOG("%d hot sends of 64 KiB completed while 4 MiB paged in",
	       hot_before);
	EXPECT_LE(10, hot_before);
	shutdown(self->sv[0], SHUT_WR);
	sf_rx_join(&rx);
	EXPECT_EQ((uint64_t)sends * 64 * 1024, rx.got);
	close(hot);
	close(cold);
}

/* max_ops bounds the operations in flight: EBUSY, and nothing is sent. */
TEST_F(sf, max_ops_ebusy)
{
	char old[32] = "";
	struct evq_sendfile sf;
	struct evq_cqe c[8];
	int fd = sf_make_file("busy", 32 * MiB, self->path,
			      sizeof(self->path));

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, sf_param_rw("max_ops", "1", old, sizeof(old)));
	ASSERT_EQ(0, sf_call(self->q.fd, &sf, self->sv[0], fd, 0, 32 * MiB,
			     EVQ_SF_ASYNC));
	EXPECT_EQ(-EBUSY, sf_call(self->q.fd, &sf, self->sv[0], fd, 0, 10,
				  EVQ_SF_ASYNC));
	EXPECT_EQ(-EBUSY, sf_call(self->q.fd, &sf, self->sv[0], fd, 0, 10,
				  EVQ_SF_NOTIFY));
	sf_param_rw("max_ops", old, NULL, 0);
	EXPECT_EQ(1, sf_cancel(self->q.fd, SF_UD));
	EXPECT_EQ(2U, evq_collect(&self->q, c, 8, 2, 5000));
	EXPECT_EQ(-ECANCELED, c[1].res);
	close(fd);
}

/* Errors from the socket itself: EPIPE, never SIGPIPE. */
TEST_F(sf, unconnected_socket_epipe)
{
	struct evq_sendfile sf;
	int s = socket(variant->v6 ? AF_INET6 : AF_INET,
		       SOCK_STREAM | SOCK_CLOEXEC, 0);
	int fd = sf_make_file("epipe", 10, self->path, sizeof(self->path));

	ASSERT_LE(0, s);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-EPIPE, sf_call(self->q.fd, &sf, s, fd, 0, 10, 0));
	close(s);
	close(fd);
}

/* Every bad input gets its errno, and nothing is sent or posted. */
TEST_F(sf, bad_input)
{
	struct evq_sendfile sf;
	int fd = sf_make_file("bad", 8192, self->path, sizeof(self->path));
	int wfd = open(self->path, O_WRONLY | O_CLOEXEC);
	int dfd = open(sf_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int pfd = open(self->path, O_PATH | O_CLOEXEC);
	int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int us[2], pp[2];
	const uint32_t fl[] = { 0, EVQ_SF_ASYNC };

	ASSERT_LE(0, fd);
	ASSERT_LE(0, wfd);
	ASSERT_LE(0, dfd);
	ASSERT_LE(0, pfd);
	ASSERT_LE(0, udp);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, us));
	ASSERT_EQ(0, pipe2(pp, O_CLOEXEC));

	for (int i = 0; i < 2; i++) {
		int s = self->sv[0];
		uint32_t f = fl[i];

		EXPECT_EQ(-ENOTSOCK, sf_call(self->q.fd, &sf, fd, fd, 0, 1, f));
		EXPECT_EQ(-ENOTSOCK, sf_call(self->q.fd, &sf, pp[1], fd, 0, 1, f));
		EXPECT_EQ(-EBADF, sf_call(self->q.fd, &sf, -1, fd, 0, 1, f));
		EXPECT_EQ(-EBADF, sf_call(self->q.fd, &sf, 9999, fd, 0, 1, f));
		EXPECT_EQ(-EOPNOTSUPP, sf_call(self->q.fd, &sf, udp, fd, 0, 1, f));
		EXPECT_EQ(-EOPNOTSUPP, sf_call(self->q.fd, &sf, us[0], fd, 0, 1,
					       f));
		EXPECT_EQ(-EBADF, sf_call(self->q.fd, &sf, s, -1, 0, 1, f));
		EXPECT_EQ(-EBADF, sf_call(self->q.fd, &sf, s, wfd, 0, 1, f));
		EXPECT_EQ(-EBADF, sf_call(self->q.fd, &sf, s, pfd, 0, 1, f));
		EXPECT_EQ(-EINVAL, sf_call(self->q.fd, &sf, s, dfd, 0, 1, f));
		EXPECT_EQ(-EINVAL, sf_call(self->q.fd, &sf, s, pp[0], 0, 1, f));
		EXPECT_EQ(-EINVAL, sf_call(self->q.fd, &sf, s, us[1], 0, 1, f));
		EXPECT_EQ(-EINVAL, sf_call(self->q.fd, &sf, s, fd, 0,
					   (uint64_t)EVQ_SENDFILE_MAX + 1, f));
		EXPECT_EQ(-EINVAL, sf_call(self->q.fd, &sf, s, fd,
					   1ULL << 63, 1, f));
		EXPECT_EQ(-EINVAL, sf_call(self->q.fd, &sf, s, fd,
					   (1ULL << 63) - 10, 11, f));
		EXPECT_EQ(-EINVAL, sf_call(self->q.fd, &sf, s, fd, 0, 1,
					   f | (1U << 31)));
	}
	EXPECT_EQ(-EINVAL, sf_call(self->q.fd, &sf, self->sv[0], fd, 0, 1,
				   EVQ_SF_ASYNC | EVQ_SF_NOTIFY));
	memset(&sf, 0, sizeof(sf));
	sf.out_fd = self->sv[0];
	sf.in_fd = fd;
	sf.count = 1;
	sf.resv = 1;
	EXPECT_EQ(-1, ioctl(self->q.fd, EVQ_IOC_SENDFILE, &sf));
	EXPECT_EQ(EINVAL, errno);
	sf.resv = 0;
	sf.resv0 = 1;
	EXPECT_EQ(-1, ioctl(self->q.fd, EVQ_IOC_SENDFILE, &sf));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->q.fd, EVQ_IOC_SENDFILE, (void *)8));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->q.fd, EVQ_IOC_CANCEL, (void *)8));
	EXPECT_EQ(EFAULT, errno);

	/* Nothing reached the receiver, nothing was posted. */
	EXPECT_EQ(-1, recv(self->sv[1], &sf, 1, MSG_DONTWAIT));
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_NO_ENTRIES(&self->q, 50);
	close(fd);
	close(wfd);
	close(dfd);
	close(pfd);
	close(udp);
	close(us[0]);
	close(us[1]);
	close(pp[0]);
	close(pp[1]);
}

/* Before SETUP there is no ring to report to. */
TEST(sendfile_before_setup)
{
	struct evq_sendfile sf = { .out_fd = -1, .in_fd = -1 };
	uint64_t ud = 1;
	int fd;

	EVQ_REQUIRE_DEVICE();
	fd = evq_open_dev();
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, ioctl(fd, EVQ_IOC_SENDFILE, &sf));
	EXPECT_EQ(EBADFD, errno);
	EXPECT_EQ(-1, ioctl(fd, EVQ_IOC_CANCEL, &ud));
	EXPECT_EQ(EBADFD, errno);
	close(fd);
}

/* INFO advertises the feature and its limits. */
TEST(sendfile_info)
{
	struct evq_info info;
	int fd;

	EVQ_REQUIRE_DEVICE();
	fd = evq_open_dev();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, evq_get_info(fd, &info));
	EXPECT_TRUE(!!(info.features & EVQ_FEAT_SENDFILE));
	EXPECT_LT(0U, info.max_ops);
	EXPECT_LE(4096U, info.sendfile_window);
	close(fd);
}

TEST_HARNESS_MAIN
