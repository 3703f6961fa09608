// SPDX-License-Identifier: GPL-2.0
/*
 * Security checks of the module (Documentation/reliability.rst, "Security
 * checks"):
 *
 *   - an unprivileged user reaches only its own queues and its own fds;
 *   - structures copied to userspace carry no byte the kernel did not mean
 *     to write, even after churn has left freed evq objects behind;
 *   - limits (max_user_watches, max_ops, max_cq_entries, the memory
 *     cgroup's memory.max) fail cleanly, charge the right user and cgroup,
 *     and leak nothing.
 *
 * Runs as root in the VM; the unprivileged side is a child that drops to
 * nobody (65534) with no capabilities.
 */

#define _GNU_SOURCE
#include <grp.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "evq_util.h"
#include "evq_genl.h"
#include "evq_cgroup.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#define NOBODY		65534
#define PAT		0xA5
#define PAT32		0xA5A5A5A5U
#define PAT64		0xA5A5A5A5A5A5A5A5ULL

/* Fixed fd numbers the root side uses, so a child cannot hold them by chance. */
#define ROOT_EVENT_FD	700
#define ROOT_QUEUE_FD	701

/*
 * Checks inside a forked child, where the harness's ASSERTs cannot
 * report: say what failed on stderr and make the child exit non-zero.
 */
#define CHK(cond) do {							\
	if (!(cond)) {							\
		fprintf(stderr, "# child %d: line %d: %s (errno %d: %s)\n", \
			(int)getpid(), __LINE__, #cond, errno,		\
			strerror(errno));				\
		return 1;						\
	}								\
} while (0)

FIXTURE(sec) {
	long max_user_watches;
	long max_ops;
	long max_cq_entries;
	long sendfile_window;
	struct evq_cg cg;
	pid_t child;
};

FIXTURE_SETUP(sec)
{
	EVQ_REQUIRE_DEVICE();
	self->max_user_watches = evq_param_get("max_user_watches");
	self->max_ops = evq_param_get("max_ops");
	self->max_cq_entries = evq_param_get("max_cq_entries");
	self->sendfile_window = evq_param_get("sendfile_window");
	ASSERT_LT(0, self->max_user_watches);
	ASSERT_LT(0, self->max_ops);
	ASSERT_LT(0, self->max_cq_entries);
	ASSERT_LT(0, self->sendfile_window);
	ASSERT_EQ(0, evq_raise_nofile(4096));
}

/* Runs after a failed ASSERT too: never leave the limits changed. */
FIXTURE_TEARDOWN(sec)
{
	if (self->child > 0) {
		kill(self->child, SIGKILL);
		waitpid(self->child, NULL, 0);
	}
	evq_param_set("max_user_watches", self->max_user_watches);
	evq_param_set("max_ops", self->max_ops);
	evq_param_set("max_cq_entries", self->max_cq_entries);
	evq_param_set("sendfile_window", self->sendfile_window);
	evq_cg_fini(&self->cg);
}

/* ---- helpers ---- */

static int sec_all(const void *p, int byte, size_t len)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != byte)
			return 0;
	return 1;
}

/* Wait for a child: its exit code, or 128 + the signal that killed it. */
static int sec_wait(pid_t *pid)
{
	int st;

	if (waitpid(*pid, &st, 0) != *pid)
		return -1;
	*pid = 0;
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

/* Become nobody with no capabilities; 0 or -1. */
static int sec_become_nobody(void)
{
	char line[256];
	int ok = 0;
	FILE *f;

	if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
	    setresuid(NOBODY, NOBODY, NOBODY))
		return -1;
	f = fopen("/proc/self/status", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strcmp(line, "CapEff:\t0000000000000000\n"))
			ok = 1;
	fclose(f);
	return ok ? 0 : -1;
}

static int sec_read_full(int fd, void *buf, size_t len)
{
	return read(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

static int sec_write_full(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

/* A regular file in memory (shmem): sendable, never a page-cache miss. */
static int sec_memfd(size_t size)
{
	static char page[4096];
	int fd = memfd_create("evq-sec", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	for (size_t i = 0; i < sizeof(page); i++)
		page[i] = (char)(i * 7 + 1);
	for (size_t off = 0; off < size; off += sizeof(page))
		if (write(fd, page, sizeof(page)) != sizeof(page)) {
			close(fd);
			return -1;
		}
	return fd;
}

/*
 * A loopback TCP pair whose receiver never reads and whose buffers are
 * small, so an asynchronous send of a few MiB stays in flight.
 */
static int sec_stuck_pair(int sv[2])
{
	int small = 65536;

	if (evq_tcp_pair(sv))
		return -1;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	return 0;
}

/*
 * Leave freed evq objects behind, full of a recognisable pattern: a ring
 * whose entries all carry PAT64, watches whose user_data is PAT64, then
 * everything freed.  A copy-out that forgot to clear a field would show
 * PAT bytes in a structure allocated afterwards.
 */
#define SEC_CHURN_WATCHES 1024

static void sec_churn(struct __test_metadata *_metadata)
{
	static struct evq_ctl c[SEC_CHURN_WATCHES];
	int fds[SEC_CHURN_WATCHES];
	uint64_t one = 1;
	struct evq_q q;
	int efd;

	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ASSERT_LE(0, efd);
	ASSERT_EQ(0, evq_q_open(&q, SEC_CHURN_WATCHES));
	for (int i = 0; i < SEC_CHURN_WATCHES; i++) {
		fds[i] = dup(efd);
		ASSERT_LE(0, fds[i]);
		evq_ctl_fill(&c[i], EVQ_CTL_ADD, fds[i], EPOLLIN, EVQ_WATCH_EDGE,
			     PAT64);
	}
	ASSERT_EQ(SEC_CHURN_WATCHES, evq_ctl_batch(q.fd, c, SEC_CHURN_WATCHES));
	ASSERT_EQ(1, write(efd, &one, sizeof(one)) == sizeof(one));
	EXPECT_EQ(SEC_CHURN_WATCHES,
		  (int)evq_collect(&q, NULL, SEC_CHURN_WATCHES,
				   SEC_CHURN_WATCHES, 10000));
	for (int i = 0; i < SEC_CHURN_WATCHES; i++)
		evq_ctl_fill(&c[i], EVQ_CTL_DEL, fds[i], 0, 0, 0);
	ASSERT_EQ(SEC_CHURN_WATCHES, evq_ctl_batch(q.fd, c, SEC_CHURN_WATCHES));
	evq_q_close(&q);
	for (int i = 0; i < SEC_CHURN_WATCHES; i++)
		close(fds[i]);
	close(efd);
}

/* ---- generic netlink: who sees which queue ---- */

struct sec_queue_seen {
	uint32_t id, pid, uid;
};

struct sec_dump {
	struct sec_queue_seen q[64];
	int n;
	int bad;	/* malformed or unclean messages */
};

/*
 * Check one reply of the family: the header's reserved byte, every
 * attribute's type and exact size, and the alignment padding after each
 * attribute, all written by the kernel and zero.
 */
static int sec_genl_clean(const struct nlmsghdr *nlh, uint8_t cmd)
{
	const struct genlmsghdr *gh = NLMSG_DATA(nlh);
	struct nlattr *nla;
	int len;

	if (nlh->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN) || gh->cmd != cmd ||
	    gh->version != EVQ_GENL_VERSION || gh->reserved)
		return 0;
	for (nla = evq_genl_attrs(nlh, &len); evq_nla_ok(nla, len);
	     nla = evq_nla_next(nla, len)) {
		int type = nla->nla_type & NLA_TYPE_MASK;
		int size = nla->nla_len - NLA_HDRLEN;
		int want;

		switch (type) {
		case EVQ_A_PAD:
			want = 0;
			break;
		case EVQ_A_QUEUE_ID: case EVQ_A_OWNER_PID:
		case EVQ_A_OWNER_UID: case EVQ_A_RING_ENTRIES:
		case EVQ_A_WATCHES: case EVQ_A_OPS: case EVQ_A_QUEUES:
			want = 4;
			break;
		default:
			want = type > EVQ_A_UNSPEC && type <= EVQ_A_MAX ? 8 : -1;
		}
		if (size != want)
			return 0;
		if (!sec_all((char *)nla + nla->nla_len, 0,
			     NLA_ALIGN(nla->nla_len) - nla->nla_len))
			return 0;
	}
	return len == 0;
}

static int sec_dump_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct sec_dump *d = arg;
	struct sec_queue_seen s = { 0 };
	struct nlattr *nla;
	int len;

	if (!sec_genl_clean(nlh, EVQ_CMD_GET_QUEUE))
		d->bad++;
	for (nla = evq_genl_attrs(nlh, &len); evq_nla_ok(nla, len);
	     nla = evq_nla_next(nla, len)) {
		uint32_t v;

		memcpy(&v, evq_nla_data(nla), sizeof(v));
		switch (nla->nla_type & NLA_TYPE_MASK) {
		case EVQ_A_QUEUE_ID:
			s.id = v;
			break;
		case EVQ_A_OWNER_PID:
			s.pid = v;
			break;
		case EVQ_A_OWNER_UID:
			s.uid = v;
			break;
		}
	}
	if (d->n < (int)(sizeof(d->q) / sizeof(d->q[0])))
		d->q[d->n++] = s;
	return 0;
}

/* The queues a GET_QUEUE dump shows the caller. */
static int sec_dump_queues(struct sec_dump *d)
{
	struct evq_genl g;
	int ret;

	memset(d, 0, sizeof(*d));
	ret = evq_genl_open(&g);
	if (ret)
		return ret;
	ret = evq_genl_call(&g, EVQ_CMD_GET_QUEUE, 1, sec_dump_cb, d);
	evq_genl_close(&g);
	return ret;
}

/* The id of the queue opened by @pid, or 0. */
static uint32_t sec_queue_of(const struct sec_dump *d, pid_t pid)
{
	for (int i = 0; i < d->n; i++)
		if (d->q[i].pid == (uint32_t)pid)
			return d->q[i].id;
	return 0;
}

/* ==== An unprivileged user reaches only its own queues and fds ==== */

/* What the root side tells the unprivileged child about its queue. */
struct sec_root_info {
	pid_t pid;
	uint32_t queue_id;
	unsigned long ring_start, ring_end;
	uint64_t op_user_data;
};

static int sec_nobody_side(int rfd)
{
	struct sec_root_info ri;
	struct sec_dump d;
	struct evq_q q;
	char path[128];
	struct iovec local, remote;
	char byte;
	int fd, pidfd;

	CHK(sec_become_nobody() == 0);
	CHK(sec_read_full(rfd, &ri, sizeof(ri)) == 0);

	/* Reopening root's queue through /proc is refused... */
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", ri.pid, ROOT_QUEUE_FD);
	fd = open(path, O_RDWR | O_CLOEXEC);
	CHK(fd < 0 && (errno == EACCES || errno == EPERM));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHK(fd < 0 && (errno == EACCES || errno == EPERM));

	/* ...and so is taking a copy of the fd with pidfd_getfd(). */
	pidfd = syscall(SYS_pidfd_open, ri.pid, 0);
	CHK(pidfd >= 0);
	fd = syscall(SYS_pidfd_getfd, pidfd, ROOT_QUEUE_FD, 0);
	CHK(fd < 0 && errno == EPERM);
	close(pidfd);

	/* Root's ring: not through map_files, /proc/PID/mem or process_vm_readv(). */
	snprintf(path, sizeof(path), "/proc/%d/map_files/%lx-%lx", ri.pid,
		 ri.ring_start, ri.ring_end);
	fd = open(path, O_RDWR | O_CLOEXEC);
	CHK(fd < 0 && (errno == EACCES || errno == EPERM));
	snprintf(path, sizeof(path), "/proc/%d/mem", ri.pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHK(fd < 0 && (errno == EACCES || errno == EPERM));
	local.iov_base = &byte;
	local.iov_len = 1;
	remote.iov_base = (void *)ri.ring_start;
	remote.iov_len = 1;
	CHK(process_vm_readv(ri.pid, &local, 1, &remote, 1, 0) < 0 &&
	    errno == EPERM);

	/* A queue of our own (the device is open to everyone). */
	CHK(evq_q_open(&q, 64) == 0);

	/* Watches name fds of the caller: root's fd numbers are not ours. */
	CHK(fcntl(ROOT_EVENT_FD, F_GETFD) < 0 && errno == EBADF);
	CHK(fcntl(ROOT_QUEUE_FD, F_GETFD) < 0 && errno == EBADF);
	CHK(evq_ctl1(q.fd, EVQ_CTL_ADD, ROOT_EVENT_FD, EPOLLIN, 0, 1) == -EBADF);
	CHK(evq_ctl1(q.fd, EVQ_CTL_ADD, ROOT_QUEUE_FD, EPOLLIN, 0, 1) == -EBADF);
	CHK(evq_ctl1(q.fd, EVQ_CTL_DEL, ROOT_EVENT_FD, 0, 0, 0) == -EBADF);

	/* Our mapping is our ring and no more. */
	CHK(mmap(NULL, q.p.ring_size + 4096, PROT_READ, MAP_SHARED, q.fd,
		 EVQ_OFF_RING) == MAP_FAILED && errno == EINVAL);
	CHK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, q.fd, 4096) ==
	    MAP_FAILED && errno == EINVAL);

	/* Cancel finds only our own operations. */
	errno = 0;
	CHK(ioctl(q.fd, EVQ_IOC_CANCEL, &ri.op_user_data) < 0 &&
	    errno == ENOENT);

	/* The netlink dump shows our queue, and none of root's. */
	CHK(sec_dump_queues(&d) == 0);
	CHK(d.bad == 0);
	CHK(sec_queue_of(&d, getpid()) != 0);
	for (int i = 0; i < d.n; i++) {
		CHK(d.q[i].uid == NOBODY);
		CHK(d.q[i].id != ri.queue_id);
	}
	evq_q_close(&q);
	return 0;
}

/*
 * Root holds a queue with a watch and an asynchronous send in flight; a
 * process of another user, with no capabilities, cannot open it, copy
 * its fd, read its ring, watch root's fds, cancel root's send or see the
 * queue in the statistics.  Afterwards root's queue is untouched.
 */
TEST_F_TIMEOUT(sec, nobody_cannot_reach_root_queue, 120)
{
	struct sec_root_info ri = { .op_user_data = 0x5ec0 };
	struct evq_sendfile sf;
	struct sec_dump d;
	struct evq_cqe c[8];
	struct evq_q q;
	int pfd[2], sv[2], efd, mfd;
	uint32_t n;

	ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
	/* The child exists before any of root's fds: it inherits none. */
	self->child = fork();
	ASSERT_LE(0, self->child);
	if (!self->child) {
		close(pfd[1]);
		_exit(sec_nobody_side(pfd[0]));
	}
	close(pfd[0]);

	ASSERT_EQ(0, evq_q_open(&q, 64));
	ASSERT_EQ(ROOT_QUEUE_FD, dup2(q.fd, ROOT_QUEUE_FD));
	efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_EQ(ROOT_EVENT_FD, dup2(efd, ROOT_EVENT_FD));
	ASSERT_EQ(0, evq_ctl1(ROOT_QUEUE_FD, EVQ_CTL_ADD, ROOT_EVENT_FD,
			      EPOLLIN, 0, 7));
	ASSERT_EQ(0, sec_stuck_pair(sv));
	mfd = sec_memfd(8 << 20);
	ASSERT_LE(0, mfd);
	ASSERT_EQ(0, evq_sf_ioctl(ROOT_QUEUE_FD, &sf, sv[0], mfd, 0, 8 << 20,
				  ri.op_user_data, EVQ_SF_ASYNC));

	ASSERT_EQ(0, sec_dump_queues(&d));
	ri.pid = getpid();
	ri.queue_id = sec_queue_of(&d, getpid());
	ASSERT_NE(0U, ri.queue_id);
	ri.ring_start = (unsigned long)q.map;
	ri.ring_end = ri.ring_start + q.map_len;
	ASSERT_EQ(0, sec_write_full(pfd[1], &ri, sizeof(ri)));
	close(pfd[1]);
	ASSERT_EQ(0, sec_wait(&self->child));

	/* The send was still root's to cancel, and the watch still there. */
	EXPECT_EQ(1, ioctl(ROOT_QUEUE_FD, EVQ_IOC_CANCEL, &ri.op_user_data));
	n = evq_collect(&q, c, 8, 2, 10000);
	ASSERT_LE(1U, n);
	EXPECT_EQ(EVQ_CQE_SENDFILE, c[n - 1].flags);
	EXPECT_EQ(-ECANCELED, c[n - 1].res);
	EXPECT_EQ(ri.op_user_data, c[n - 1].user_data);
	EXPECT_EQ(0, evq_ctl1(ROOT_QUEUE_FD, EVQ_CTL_MOD, ROOT_EVENT_FD,
			      EPOLLIN, 0, 8));
	close(ROOT_QUEUE_FD);
	close(ROOT_EVENT_FD);
	evq_q_close(&q);
	close(efd);
	close(mfd);
	close(sv[0]);
	close(sv[1]);
}

/*
 * Opening /proc/self/fd/N of a queue (what a process with the right to
 * do so would do) opens a new, empty queue: it never aliases the first.
 */
TEST_F(sec, proc_reopen_is_a_new_queue)
{
	struct evq_wait w = { .timeout_ns = 0 };
	struct evq_q q;
	char path[64];
	int fd;

	ASSERT_EQ(0, evq_q_open(&q, 64));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", q.fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, ioctl(fd, EVQ_IOC_WAIT, &w));
	EXPECT_EQ(EBADFD, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0));
	EXPECT_EQ(EBADFD, errno);
	close(fd);
	evq_q_close(&q);
}

/* ==== Per-user limits charge the right user ==== */

#define SEC_USER_LIMIT 8

/* Add watches on dups of @efd until one fails; returns how many succeeded. */
static int sec_fill_watches(int qfd, int efd, int max, int *err, int *fds)
{
	int n;

	*err = 0;
	for (n = 0; n < max; n++) {
		fds[n] = dup(efd);
		if (fds[n] < 0) {
			*err = -errno;
			break;
		}
		*err = evq_ctl1(qfd, EVQ_CTL_ADD, fds[n], EPOLLIN, 0, n);
		if (*err) {
			close(fds[n]);
			break;
		}
	}
	return n;
}

static int sec_nobody_watches(int rfd, int wfd, int efd, int root_qfd)
{
	int fds[SEC_USER_LIMIT + 2], err, qfd, fd;
	char token;

	CHK(sec_become_nobody() == 0);
	/*
	 * Root's queue, inherited: its watches count against root, its
	 * opener, which is at the limit, whoever adds them.
	 */
	fd = dup(efd);
	CHK(evq_ctl1(root_qfd, EVQ_CTL_ADD, fd, EPOLLIN, 0, 98) == -ENOSPC);
	close(fd);
	qfd = evq_open_dev();
	CHK(qfd >= 0);
	CHK(evq_do_setup(qfd, &(struct evq_setup){ 0 }, 64) == 0);
	/* Root's watches do not count against nobody... */
	CHK(sec_fill_watches(qfd, efd, SEC_USER_LIMIT + 1, &err, fds) ==
	    SEC_USER_LIMIT);
	CHK(err == -ENOSPC);
	CHK(sec_write_full(wfd, "x", 1) == 0);
	/* ...and root freeing one of its own frees nothing for nobody. */
	CHK(sec_read_full(rfd, &token, 1) == 0);
	fd = dup(efd);
	CHK(evq_ctl1(qfd, EVQ_CTL_ADD, fd, EPOLLIN, 0, 99) == -ENOSPC);
	return 0;
}

/*
 * max_user_watches counts per user (the queue's opener): root and nobody
 * each get the full limit, one's changes never move the other's count,
 * a queue passed to another user still charges its opener, and a
 * process's exit gives its user's watches back.
 */
TEST_F_TIMEOUT(sec, user_watches_charged_per_user, 120)
{
	int fds[SEC_USER_LIMIT + 2], up[2], down[2], err, efd, qfd, fd;
	char token;

	ASSERT_EQ(0, evq_param_set("max_user_watches", SEC_USER_LIMIT));
	efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_LE(0, efd);
	qfd = evq_open_dev();
	ASSERT_LE(0, qfd);
	ASSERT_EQ(0, evq_do_setup(qfd, &(struct evq_setup){ 0 }, 64));
	ASSERT_EQ(SEC_USER_LIMIT,
		  sec_fill_watches(qfd, efd, SEC_USER_LIMIT + 1, &err, fds));
	ASSERT_EQ(-ENOSPC, err);

	ASSERT_EQ(0, pipe2(up, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(down, O_CLOEXEC));
	self->child = fork();
	ASSERT_LE(0, self->child);
	if (!self->child)
		_exit(sec_nobody_watches(down[0], up[1], efd, qfd));
	ASSERT_EQ(0, sec_read_full(up[0], &token, 1));
	/* nobody is at its limit: root's count did not move. */
	fd = dup(efd);
	EXPECT_EQ(-ENOSPC, evq_ctl1(qfd, EVQ_CTL_ADD, fd, EPOLLIN, 0, 50));
	EXPECT_EQ(0, evq_ctl1(qfd, EVQ_CTL_DEL, fds[0], 0, 0, 0));
	EXPECT_EQ(0, evq_ctl1(qfd, EVQ_CTL_ADD, fd, EPOLLIN, 0, 51));
	ASSERT_EQ(0, sec_write_full(down[1], "x", 1));
	ASSERT_EQ(0, sec_wait(&self->child));

	/* nobody's exit gave back nobody's watches, not root's. */
	close(fds[0]);
	fds[0] = dup(efd);
	EXPECT_EQ(-ENOSPC, evq_ctl1(qfd, EVQ_CTL_ADD, fds[0], EPOLLIN, 0, 52));
	self->child = fork();
	ASSERT_LE(0, self->child);
	if (!self->child)
		_exit(sec_nobody_watches(down[0], up[1], efd, qfd));
	ASSERT_EQ(0, sec_read_full(up[0], &token, 1));
	ASSERT_EQ(0, sec_write_full(down[1], "x", 1));
	ASSERT_EQ(0, sec_wait(&self->child));
	close(qfd);
	close(fd);
	for (int i = 0; i < SEC_USER_LIMIT; i++)
		close(fds[i]);
	close(efd);
}

/*
 * The change that crosses max_user_watches fails alone with ENOSPC: the
 * batch's other entries keep their own results, a refused watch posts
 * nothing and keeps no reference to its file, and closing the queue
 * gives the user's count back.
 */
TEST_F(sec, user_watches_enospc_in_batch)
{
	enum { L = 10 };
	struct evq_ctl c[17];
	int expect[17], w[L + 2], p[2], efd, fds[L + 1], err, i = 0;
	struct evq_cqe cqe[64];
	struct evq_q q;
	uint32_t n;
	char b;

	ASSERT_EQ(0, evq_param_set("max_user_watches", L));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC | O_NONBLOCK));
	for (int k = 0; k < L + 2; k++) {
		w[k] = dup(p[1]);
		ASSERT_LE(0, w[k]);
	}
	ASSERT_EQ(0, evq_q_open(&q, 64));
	for (; i < L; i++) {
		evq_ctl_fill(&c[i], EVQ_CTL_ADD, w[i], EPOLLOUT, EVQ_WATCH_EDGE, 1000 + i);
		expect[i] = 0;
	}
	evq_ctl_fill(&c[i], EVQ_CTL_ADD, w[L], EPOLLOUT, EVQ_WATCH_EDGE, 1000 + i);
	expect[i++] = -ENOSPC;
	evq_ctl_fill(&c[i], EVQ_CTL_DEL, w[0], 0, 0, 0);
	expect[i++] = 0;
	evq_ctl_fill(&c[i], EVQ_CTL_ADD, w[L], EPOLLOUT, EVQ_WATCH_EDGE, 1000 + i);
	expect[i++] = 0;
	evq_ctl_fill(&c[i], EVQ_CTL_ADD, w[L + 1], EPOLLOUT, EVQ_WATCH_EDGE, 1000 + i);
	expect[i++] = -ENOSPC;
	evq_ctl_fill(&c[i], EVQ_CTL_MOD, w[1], EPOLLOUT, EVQ_WATCH_EDGE, 2000);
	expect[i++] = 0;
	evq_ctl_fill(&c[i], EVQ_CTL_ADD, w[2], EPOLLOUT, EVQ_WATCH_EDGE, 1000 + i);
	expect[i++] = -EEXIST;
	evq_ctl_fill(&c[i], EVQ_CTL_ADD, w[L + 1], EPOLLOUT, 0x80, 1000 + i);
	expect[i++] = -EINVAL;
	ASSERT_EQ(17, i);
	ASSERT_EQ(17, evq_ctl_batch(q.fd, c, 17));
	for (int k = 0; k < 17; k++) {
		EXPECT_EQ(expect[k], c[k].res) {
			TH_LOG("entry %d", k);
		}
	}
	/* Refused watches (entries 10 and 13) post nothing; edge: one entry each. */
	n = evq_drain(&q, cqe, 64);
	EXPECT_EQ(0, evq_count_ud(cqe, n, EVQ_CQE_READY, 1010));
	EXPECT_EQ(0, evq_count_ud(cqe, n, EVQ_CQE_READY, 1013));
	EXPECT_EQ(1, evq_count_ud(cqe, n, EVQ_CQE_READY, 1012));

	/* No reference left anywhere: with every write end closed, EOF. */
	evq_q_close(&q);
	for (int k = 0; k < L + 2; k++)
		close(w[k]);
	close(p[1]);
	EXPECT_EQ(0, read(p[0], &b, 1));
	close(p[0]);

	/* And the user's count is back to zero. */
	efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_EQ(0, evq_q_open(&q, 64));
	EXPECT_EQ(L, sec_fill_watches(q.fd, efd, L + 1, &err, fds));
	EXPECT_EQ(-ENOSPC, err);
	evq_q_close(&q);
	for (int k = 0; k < L; k++)
		close(fds[k]);
	close(efd);
}

/*
 * max_ops reached: EBUSY (Documentation/evq.rst), with nothing sent and
 * nothing written back; the operations' end gives the slots back.
 */
TEST_F_TIMEOUT(sec, max_ops_ebusy_does_nothing, 60)
{
	struct evq_sendfile sf, before;
	struct evq_cqe c[8];
	int sv[2], mfd, finals = 0;
	struct evq_q q;
	uint64_t ud;

	ASSERT_EQ(0, evq_param_set("max_ops", 2));
	ASSERT_EQ(0, evq_q_open(&q, 64));
	ASSERT_EQ(0, sec_stuck_pair(sv));
	mfd = sec_memfd(8 << 20);
	ASSERT_LE(0, mfd);
	ASSERT_EQ(0, evq_sf_ioctl(q.fd, &sf, sv[0], mfd, 0, 8 << 20, 1,
				  EVQ_SF_ASYNC));
	ASSERT_EQ(0, evq_sf_ioctl(q.fd, &sf, sv[0], mfd, 0, 8 << 20, 2,
				  EVQ_SF_ASYNC));

	for (int form = 0; form < 2; form++) {
		memset(&sf, 0, sizeof(sf));
		sf.out_fd = sv[0];
		sf.in_fd = mfd;
		sf.count = 4096;
		sf.user_data = 3;
		sf.flags = form ? EVQ_SF_NOTIFY : EVQ_SF_ASYNC;
		sf.stop = PAT32;
		sf.error = (int32_t)PAT32;
		sf.sent = PAT64;
		before = sf;
		EXPECT_EQ(-1, ioctl(q.fd, EVQ_IOC_SENDFILE, &sf));
		EXPECT_EQ(EBUSY, errno);
		EXPECT_EQ(0, memcmp(&before, &sf, sizeof(sf)));
	}
	ud = 1;
	EXPECT_EQ(1, ioctl(q.fd, EVQ_IOC_CANCEL, &ud));
	ud = 2;
	EXPECT_EQ(1, ioctl(q.fd, EVQ_IOC_CANCEL, &ud));
	while (finals < 2) {
		uint32_t n = evq_collect(&q, c, 8, 1, 10000);

		ASSERT_LT(0U, n);
		for (uint32_t k = 0; k < n; k++)
			finals += !(c[k].flags & EVQ_CQEF_MORE);
	}
	/* Both slots are free again. */
	ASSERT_EQ(0, evq_sf_ioctl(q.fd, &sf, sv[0], mfd, 0, 4096, 4,
				  EVQ_SF_ASYNC));
	evq_q_close(&q);
	close(mfd);
	close(sv[0]);
	close(sv[1]);
}

/*
 * max_cq_entries: a request of 0 or above the limit is EINVAL, the limit
 * itself is accepted, INFO reports it, and the request is rounded up to
 * a power of two after the check (Documentation/evq.rst).
 */
TEST_F(sec, max_cq_entries_einval)
{
	struct evq_setup s;
	struct evq_info info;
	int fd = evq_open_dev();

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, evq_param_set("max_cq_entries", 64));
	ASSERT_EQ(0, evq_get_info(fd, &info));
	EXPECT_EQ(64U, info.max_cq_entries);
	EXPECT_EQ(-EINVAL, evq_do_setup(fd, &s, 0));
	EXPECT_EQ(-EINVAL, evq_do_setup(fd, &s, 65));
	EXPECT_EQ(-EINVAL, evq_do_setup(fd, &s, 0x80000001U));
	EXPECT_EQ(-EINVAL, evq_do_setup(fd, &s, UINT32_MAX));
	ASSERT_EQ(0, evq_do_setup(fd, &s, 64));
	EXPECT_EQ(64U, s.cq_entries);
	close(fd);

	fd = evq_open_dev();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, evq_param_set("max_cq_entries", 100));
	ASSERT_EQ(0, evq_do_setup(fd, &s, 100));
	EXPECT_EQ(128U, s.cq_entries);
	close(fd);
}

/* ==== Structures copied to userspace carry no stale bytes ==== */

#define SEC_TAIL 64

TEST_F(sec, info_no_stale_bytes)
{
	unsigned char buf[sizeof(struct evq_info) + SEC_TAIL];
	struct evq_info info;
	int fd;

	sec_churn(_metadata);
	fd = evq_open_dev();
	ASSERT_LE(0, fd);
	memset(buf, PAT, sizeof(buf));
	ASSERT_EQ(0, ioctl(fd, EVQ_IOC_INFO, buf));
	memcpy(&info, buf, sizeof(info));
	EXPECT_EQ((uint32_t)EVQ_ABI_VERSION, info.abi_version);
	EXPECT_EQ(0U, info.resv0);
	EXPECT_EQ(0ULL, info.features & ~0x3fULL);
	for (unsigned int i = 0; i < sizeof(info.resv) / sizeof(info.resv[0]); i++)
		EXPECT_EQ(0U, info.resv[i]);
	EXPECT_TRUE(sec_all(buf + sizeof(info), PAT, SEC_TAIL));
	close(fd);
}

/*
 * Every byte of a fresh mapping that is not a header field or a written
 * entry is zero: the header's gaps, unwritten slots, the page's tail.
 */
static void sec_check_ring_bytes(struct __test_metadata *_metadata,
				 const struct evq_q *q, uint32_t written)
{
	const struct evq_ring_offsets *o = &q->p.off;
	const uint32_t fields[] = { o->head, o->tail, o->ring_mask,
				    o->ring_entries, o->overflow, o->flags };
	size_t cq_end = o->cqes + (size_t)q->p.cq_entries * sizeof(struct evq_cqe);

	for (uint32_t off = 0; off < o->cqes; off++) {
		int field = 0;

		for (unsigned int f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
			field |= off >= fields[f] && off < fields[f] + 4;
		if (!field && q->map[off]) {
			TH_LOG("header byte %u is %#x", off, q->map[off]);
			EXPECT_EQ(0, q->map[off]);
			return;
		}
	}
	EXPECT_TRUE(sec_all(q->map + o->cqes + written * sizeof(struct evq_cqe),
			    0, (q->p.cq_entries - written) *
			    sizeof(struct evq_cqe)));
	EXPECT_TRUE(sec_all(q->map + cq_end, 0, q->p.ring_size - cq_end));
}

TEST_F(sec, setup_and_ring_no_stale_bytes)
{
	unsigned char buf[sizeof(struct evq_setup) + SEC_TAIL];
	struct evq_setup *s = (struct evq_setup *)buf;
	struct evq_q q;
	void *map;

	sec_churn(_metadata);
	memset(&q, 0, sizeof(q));
	q.fd = evq_open_dev();
	ASSERT_LE(0, q.fd);
	/* In, every field but cq_entries must be zero; the tail is ours. */
	memset(buf, PAT, sizeof(buf));
	memset(s, 0, sizeof(*s));
	s->cq_entries = 1000;
	ASSERT_EQ(0, ioctl(q.fd, EVQ_IOC_SETUP, buf));
	EXPECT_TRUE(sec_all(buf + sizeof(*s), PAT, SEC_TAIL));
	EXPECT_EQ(1024U, s->cq_entries);
	EXPECT_EQ(0U, s->flags);
	EXPECT_EQ(0U, s->off.resv);
	for (unsigned int i = 0; i < sizeof(s->resv) / sizeof(s->resv[0]); i++)
		EXPECT_EQ(0ULL, s->resv[i]);
	EXPECT_EQ(0ULL, s->ring_size % 4096);
	EXPECT_LE((uint64_t)s->off.cqes + 1024 * sizeof(struct evq_cqe),
		  s->ring_size);
	q.p = *s;
	map = mmap(NULL, q.p.ring_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   q.fd, EVQ_OFF_RING);
	ASSERT_NE(MAP_FAILED, map);
	evq_q_bind(&q, map, q.p.ring_size);
	EXPECT_EQ(1023U, *q.mask);
	EXPECT_EQ(1024U, *q.entries);
	EXPECT_EQ(0U, *q.head);
	EXPECT_EQ(0U, *q.tail);
	EXPECT_EQ(0U, *q.overflow);
	EXPECT_EQ(0U, *q.flags);
	sec_check_ring_bytes(_metadata, &q, 0);
	evq_q_close(&q);
}

/*
 * Entries of every kind (READY, CLOSED, SENDFILE) hold exactly what was
 * posted; slots never written stay zero.
 */
TEST_F_TIMEOUT(sec, ring_entries_no_stale_bytes, 60)
{
	struct evq_cqe c[64];
	struct evq_sendfile sf;
	int efd, p[2], sv[2], mfd, fd;
	uint64_t one = 1;
	struct evq_q q;
	uint32_t n;

	sec_churn(_metadata);
	ASSERT_EQ(0, evq_q_open(&q, 64));
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC | O_NONBLOCK));
	ASSERT_EQ(0, evq_tcp_pair(sv));
	mfd = sec_memfd(16384);
	ASSERT_LE(0, mfd);

	/* Edge: a level watch would be posted again at every wait. */
	ASSERT_EQ(0, evq_ctl1(q.fd, EVQ_CTL_ADD, efd, EPOLLIN, EVQ_WATCH_EDGE,
			      0x11));
	ASSERT_EQ(1, write(efd, &one, sizeof(one)) == sizeof(one));
	/* A stale watch: its fd closed and reused, dropped with CLOSED. */
	fd = p[1];
	ASSERT_EQ(0, evq_ctl1(q.fd, EVQ_CTL_ADD, fd, EPOLLOUT, EVQ_WATCH_EDGE,
			      0x22));
	close(fd);
	ASSERT_EQ(fd, dup2(efd, fd));
	ASSERT_EQ(0, evq_ctl1(q.fd, EVQ_CTL_ADD, fd, EPOLLIN, EVQ_WATCH_ONESHOT,
			      0x33));
	ASSERT_EQ(0, evq_sf_ioctl(q.fd, &sf, sv[0], mfd, 0, 16384, 0x44,
				  EVQ_SF_ASYNC));

	/* Harvest until the send's completion is in. */
	n = 0;
	for (int tries = 0; tries < 100 &&
	     !evq_count_ud(c, n, EVQ_CQE_SENDFILE, 0x44); tries++)
		n += evq_collect(&q, c + n, 64 - n, 1, 100);
	ASSERT_EQ(1, evq_count_ud(c, n, EVQ_CQE_SENDFILE, 0x44));
	for (uint32_t i = 0; i < n; i++) {
		uint32_t type = evq_cqe_type(&c[i]);

		EXPECT_EQ(0U, c[i].flags & ~(EVQ_CQE_TYPE_MASK | EVQ_CQEF_MORE));
		switch (type) {
		case EVQ_CQE_READY:
			EXPECT_TRUE(c[i].user_data == 0x11 ||
				    c[i].user_data == 0x22 ||
				    c[i].user_data == 0x33);
			EXPECT_NE(0, c[i].res);
			EXPECT_EQ(0, c[i].res & ~(EPOLLIN | EPOLLOUT | EPOLLERR |
						  EPOLLHUP | EPOLLRDNORM |
						  EPOLLWRNORM));
			break;
		case EVQ_CQE_CLOSED:
			EXPECT_EQ(0x22ULL, c[i].user_data);
			EXPECT_EQ(0, c[i].res);
			break;
		case EVQ_CQE_SENDFILE:
			EXPECT_EQ(0x44ULL, c[i].user_data);
			EXPECT_EQ(16384, c[i].res);
			EXPECT_EQ(EVQ_CQE_SENDFILE, c[i].flags);
			break;
		default:
			TH_LOG("entry %u: type %u", i, type);
			EXPECT_TRUE(0);
		}
	}
	EXPECT_EQ(1, evq_count_ud(c, n, EVQ_CQE_CLOSED, 0x22));
	EXPECT_EQ(1, evq_count_ud(c, n, EVQ_CQE_READY, 0x11));
	/* The ring was never wrapped: all after tail is untouched zero. */
	ASSERT_GT(64U, *q.tail);
	sec_check_ring_bytes(_metadata, &q, *q.tail);
	evq_q_close(&q);
	close(efd);
	close(fd);
	close(p[0]);
	close(mfd);
	close(sv[0]);
	close(sv[1]);
}

/* CTL writes each entry's res and nothing else, nowhere past nr. */
TEST_F(sec, ctl_writes_only_res)
{
	enum { NR = 40, ALLOC = 48 };
	static struct evq_ctl c[ALLOC], orig[ALLOC];
	int expect[NR], efd, mfd, fds[NR];
	struct evq_q q;

	sec_churn(_metadata);
	ASSERT_EQ(0, evq_q_open(&q, 256));
	efd = eventfd(0, EFD_CLOEXEC);
	mfd = sec_memfd(4096);
	ASSERT_LE(0, mfd);
	memset(c, PAT, sizeof(c));
	for (int i = 0; i < NR; i++) {
		fds[i] = dup(efd);
		ASSERT_LE(0, fds[i]);
		evq_ctl_fill(&c[i], EVQ_CTL_ADD, fds[i], EPOLLIN, 0, PAT64 - i);
		expect[i] = 0;
		switch (i % 8) {
		case 1:
			c[i].fd = 9999;
			expect[i] = -EBADF;
			break;
		case 2:
			c[i].flags = 0x40;
			expect[i] = -EINVAL;
			break;
		case 3:
			c[i].fd = fds[i - 3];
			expect[i] = -EEXIST;
			break;
		case 4:
			c[i].op = EVQ_CTL_MOD;
			expect[i] = -ENOENT;
			break;
		case 5:
			c[i].op = EVQ_CTL_DEL;
			c[i].fd = fds[i - 5];
			break;
		case 6:
			c[i].op = 99;
			expect[i] = -EINVAL;
			break;
		case 7:
			c[i].fd = mfd;
			expect[i] = -EPERM;
			break;
		}
		c[i].res = (int32_t)PAT32;
	}
	memcpy(orig, c, sizeof(c));
	ASSERT_EQ(NR, evq_ctl_batch(q.fd, c, NR));
	for (int i = 0; i < NR; i++) {
		EXPECT_EQ(expect[i], c[i].res) {
			TH_LOG("entry %d", i);
		}
		orig[i].res = c[i].res;
		EXPECT_EQ(0, memcmp(&orig[i], &c[i], sizeof(c[i])));
	}
	EXPECT_TRUE(sec_all(&c[NR], PAT, (ALLOC - NR) * sizeof(c[0])));
	evq_q_close(&q);
	for (int i = 0; i < NR; i++)
		close(fds[i]);
	close(efd);
	close(mfd);
}

/*
 * SENDFILE writes stop, error, resv0 (zero) and sent in the synchronous
 * form, on success and on error, and nothing in the asynchronous form.
 */
TEST_F(sec, sendfile_writes_only_out_fields)
{
	unsigned char buf[sizeof(struct evq_sendfile) + SEC_TAIL];
	struct evq_sendfile *sf = (struct evq_sendfile *)buf, in;
	struct evq_cqe c[4];
	int sv[2], mfd, lone;
	struct evq_q q;

	sec_churn(_metadata);
	ASSERT_EQ(0, evq_q_open(&q, 64));
	ASSERT_EQ(0, evq_tcp_pair(sv));
	mfd = sec_memfd(8192);
	ASSERT_LE(0, mfd);
	lone = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, lone);

	for (int form = 0; form < 3; form++) {
		memset(buf, PAT, sizeof(buf));
		memset(sf, 0, sizeof(*sf));
		sf->out_fd = form == 2 ? lone : sv[0];
		sf->in_fd = mfd;
		sf->count = 8192;
		sf->user_data = 0x77;
		sf->flags = form == 1 ? EVQ_SF_ASYNC : 0;
		sf->stop = PAT32;
		sf->error = (int32_t)PAT32;
		sf->sent = PAT64;
		in = *sf;
		errno = 0;
		long ret = ioctl(q.fd, EVQ_IOC_SENDFILE, buf);

		EXPECT_TRUE(sec_all(buf + sizeof(*sf), PAT, SEC_TAIL));
		EXPECT_EQ(in.out_fd, sf->out_fd);
		EXPECT_EQ(in.in_fd, sf->in_fd);
		EXPECT_EQ(in.offset, sf->offset);
		EXPECT_EQ(in.count, sf->count);
		EXPECT_EQ(in.user_data, sf->user_data);
		EXPECT_EQ(in.flags, sf->flags);
		EXPECT_EQ(0U, sf->resv0);
		EXPECT_EQ(0ULL, sf->resv);
		if (form == 0) {
			EXPECT_EQ(8192, ret);
			EXPECT_EQ(EVQ_SF_STOP_DONE, sf->stop);
			EXPECT_EQ(0, sf->error);
			EXPECT_EQ(8192ULL, sf->sent);
		} else if (form == 1) {
			EXPECT_EQ(0, ret);
			EXPECT_EQ(0, memcmp(&in, sf, sizeof(in)));
			EXPECT_EQ(1U, evq_collect(&q, c, 4, 1, 10000));
			EXPECT_EQ(8192, c[0].res);
		} else {
			EXPECT_EQ(-1, ret);
			EXPECT_EQ(EPIPE, errno);
			EXPECT_EQ(EVQ_SF_STOP_ERROR, sf->stop);
			EXPECT_EQ(-EPIPE, sf->error);
			EXPECT_EQ(0ULL, sf->sent);
		}
	}
	evq_q_close(&q);
	close(lone);
	close(mfd);
	close(sv[0]);
	close(sv[1]);
}

/* WAIT and CANCEL only read their argument. */
TEST_F(sec, wait_and_cancel_write_nothing)
{
	unsigned char buf[sizeof(struct evq_wait) + SEC_TAIL], before[sizeof(buf)];
	struct evq_wait *w = (struct evq_wait *)buf;
	struct evq_q q;

	sec_churn(_metadata);
	ASSERT_EQ(0, evq_q_open(&q, 64));
	memset(buf, PAT, sizeof(buf));
	memset(w, 0, sizeof(*w));
	w->timeout_ns = 1000;
	memcpy(before, buf, sizeof(buf));
	EXPECT_EQ(0, ioctl(q.fd, EVQ_IOC_WAIT, buf));
	EXPECT_EQ(0, memcmp(before, buf, sizeof(buf)));

	memset(buf, PAT, sizeof(buf));
	memcpy(before, buf, sizeof(buf));
	EXPECT_EQ(-1, ioctl(q.fd, EVQ_IOC_CANCEL, buf));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(0, memcmp(before, buf, sizeof(buf)));
	evq_q_close(&q);
}

static int sec_stats_cb(const struct nlmsghdr *nlh, void *arg)
{
	int *clean = arg;

	*clean = sec_genl_clean(nlh, EVQ_CMD_GET_STATS);
	return 0;
}

/*
 * The netlink replies: header reserved byte zero, every attribute its
 * exact size, alignment padding zero, nothing after the last attribute.
 */
TEST_F(sec, genl_replies_no_stale_bytes)
{
	struct evq_genl g;
	struct sec_dump d;
	struct evq_q q;
	int clean = -1;

	sec_churn(_metadata);
	ASSERT_EQ(0, evq_q_open(&q, 64));
	ASSERT_EQ(0, evq_genl_open(&g));
	ASSERT_EQ(0, evq_genl_call(&g, EVQ_CMD_GET_STATS, 0, sec_stats_cb,
				   &clean));
	EXPECT_EQ(1, clean);
	evq_genl_close(&g);
	ASSERT_EQ(0, sec_dump_queues(&d));
	EXPECT_LE(1, d.n);
	EXPECT_EQ(0, d.bad);
	EXPECT_NE(0U, sec_queue_of(&d, getpid()));
	evq_q_close(&q);
}

/* ==== Memory cgroup: charged to the caller, ENOMEM at memory.max ==== */

#define SEC_BIG_RING	(1U << 20)	/* entries: a 16 MiB ring */

/* Make the group, or skip the test with the reason the kernel gives. */
#define SEC_CGROUP() do {						\
	char __why[256];						\
	int __r = evq_cg_init(&self->cg, __why, sizeof(__why));		\
									\
	if (__r == 1)							\
		SKIP(return, "%s", __why);				\
	ASSERT_EQ(0, __r);						\
} while (0)

static int sec_ring_charge_child(const struct evq_cg *cg)
{
	int64_t c0, c1, c2;
	struct evq_setup s;
	int fd = evq_open_dev();

	CHK(fd >= 0);
	CHK(evq_cg_enter(cg) == 0);
	c0 = evq_cg_u64(cg, "memory.current");
	CHK(c0 >= 0);
	CHK(evq_do_setup(fd, &s, SEC_BIG_RING) == 0);
	c1 = evq_cg_u64(cg, "memory.current");
	fprintf(stderr, "# ring of %llu bytes: memory.current %lld -> %lld (+%lld bytes)\n",
		(unsigned long long)s.ring_size, (long long)c0, (long long)c1,
		(long long)(c1 - c0));
	/* Per-CPU charge batches make it inexact by up to 64 pages a CPU. */
	CHK(c1 - c0 >= (int64_t)s.ring_size - (1 << 20));
	CHK(c1 - c0 <= (int64_t)s.ring_size + (2 << 20));
	close(fd);
	c2 = evq_cg_u64(cg, "memory.current");
	fprintf(stderr, "# closed: memory.current %lld\n", (long long)c2);
	CHK(c2 <= c1 - (int64_t)s.ring_size / 2);
	return 0;
}

/* The ring's pages are charged to the memory cgroup of the caller. */
TEST_F_TIMEOUT(sec, memcg_charges_ring, 120)
{
	SEC_CGROUP();
	ASSERT_EQ(0, evq_param_set("max_cq_entries", SEC_BIG_RING));
	self->child = fork();
	ASSERT_LE(0, self->child);
	if (!self->child)
		_exit(sec_ring_charge_child(&self->cg));
	EXPECT_EQ(0, sec_wait(&self->child));
	EXPECT_EQ(0, evq_cg_key(&self->cg, "memory.events", "oom_kill"));
}

static int sec_ring_enomem_child(const struct evq_cg *cg)
{
	struct evq_setup s;
	int64_t c0, c1;
	char max[32];
	int fd = evq_open_dev();

	CHK(fd >= 0);
	CHK(evq_cg_enter(cg) == 0);
	c0 = evq_cg_u64(cg, "memory.current");
	CHK(c0 >= 0);
	snprintf(max, sizeof(max), "%lld", (long long)(c0 + (4 << 20)));
	CHK(evq_cg_write(cg->dir, "memory.max", max) == 0);
	CHK(evq_do_setup(fd, &s, SEC_BIG_RING) == -ENOMEM);
	c1 = evq_cg_u64(cg, "memory.current");
	fprintf(stderr, "# 16 MiB ring under memory.max %s: ENOMEM, memory.current %lld -> %lld\n",
		max, (long long)c0, (long long)c1);
	/* What the failed setup allocated is given back. */
	CHK(c1 <= c0 + (1 << 20));
	/* The queue is still whole: a ring that fits can be set up. */
	CHK(evq_do_setup(fd, &s, 64) == 0);
	close(fd);
	return 0;
}

/*
 * A ring larger than the cgroup allows fails with ENOMEM: no OOM kill in
 * the group (the caller would be the victim), no warning, nothing kept.
 */
TEST_F_TIMEOUT(sec, memcg_ring_enomem, 120)
{
	SEC_CGROUP();
	ASSERT_EQ(0, evq_param_set("max_cq_entries", SEC_BIG_RING));
	self->child = fork();
	ASSERT_LE(0, self->child);
	if (!self->child)
		_exit(sec_ring_enomem_child(&self->cg));
	EXPECT_EQ(0, sec_wait(&self->child));
	EXPECT_LT(0, evq_cg_key(&self->cg, "memory.events", "max"));
	EXPECT_EQ(0, evq_cg_key(&self->cg, "memory.events", "oom"));
	EXPECT_EQ(0, evq_cg_key(&self->cg, "memory.events", "oom_kill"));
}

#define SEC_CG_FDS	30000
#define SEC_CG_BATCH	64

/*
 * At memory.max the child must not allocate anything but what it tests:
 * even opening or reading a cgroup file, or writing to a pipe, would be
 * charged and wake the OOM killer.  So the parent, outside the group,
 * reads and sets the limits, and the two meet on a word of shared memory
 * faulted in before the child enters the group.
 */
enum { SEC_HS_START, SEC_HS_ENTERED, SEC_HS_LIMITED, SEC_HS_FULL,
	SEC_HS_LIFTED };

struct sec_handshake {
	volatile int step;
	int64_t peak;
};

static int sec_hs_wait(struct sec_handshake *hs, int step, pid_t peer)
{
	for (int i = 0; i < 60000; i++) {
		if (__atomic_load_n(&hs->step, __ATOMIC_ACQUIRE) >= step)
			return 0;
		if (peer && waitpid(peer, NULL, WNOHANG) == peer)
			return -1;	/* the child is gone */
		usleep(5000);
	}
	return -1;
}

static void sec_hs_set(struct sec_handshake *hs, int step)
{
	__atomic_store_n(&hs->step, step, __ATOMIC_RELEASE);
}

static int sec_watch_enomem_child(const struct evq_cg *cg,
				  struct sec_handshake *hs)
{
	static struct evq_ctl c[SEC_CG_BATCH];
	static int fds[SEC_CG_FDS];
	int added = 0, nomem = 0, efd, qfd;
	int64_t after;

	/* Every fd, and the fd table, exists before entering the group. */
	CHK(evq_raise_nofile(SEC_CG_FDS + 256) == 0);
	efd = eventfd(0, EFD_CLOEXEC);
	CHK(efd >= 0);
	for (int i = 0; i < SEC_CG_FDS; i++) {
		fds[i] = dup(efd);
		CHK(fds[i] >= 0);
	}
	qfd = evq_open_dev();
	CHK(qfd >= 0);
	CHK(evq_do_setup(qfd, &(struct evq_setup){ 0 }, 64) == 0);
	memset(c, 0, sizeof(c));

	CHK(evq_cg_enter(cg) == 0);
	sec_hs_set(hs, SEC_HS_ENTERED);
	CHK(sec_hs_wait(hs, SEC_HS_LIMITED, 0) == 0);
	while (!nomem && added < SEC_CG_FDS) {
		int n = SEC_CG_FDS - added < SEC_CG_BATCH ?
			SEC_CG_FDS - added : SEC_CG_BATCH;

		for (int i = 0; i < n; i++)
			evq_ctl_fill(&c[i], EVQ_CTL_ADD, fds[added + i], EPOLLIN,
				     0, added + i);
		CHK(evq_ctl_batch(qfd, c, n) == n);
		/* Each entry has its own result: success or ENOMEM, no other. */
		for (int i = 0; i < n; i++) {
			CHK(c[i].res == 0 || c[i].res == -ENOMEM);
			if (c[i].res) {
				nomem++;
				fds[added + i] = -fds[added + i] - 1;
			}
		}
		added += n;
	}
	sec_hs_set(hs, SEC_HS_FULL);
	CHK(sec_hs_wait(hs, SEC_HS_LIFTED, 0) == 0);
	fprintf(stderr, "# %d watches added, then %d ENOMEM; memory.current at the limit %lld\n",
		added - nomem, nomem, (long long)hs->peak);
	CHK(nomem > 0);
	/* Every watch that was added is whole: it can be deleted. */
	for (int i = 0; i < added; i++)
		if (fds[i] >= 0)
			CHK(evq_ctl1(qfd, EVQ_CTL_DEL, fds[i], 0, 0, 0) == 0);
		else
			CHK(evq_ctl1(qfd, EVQ_CTL_DEL, -fds[i] - 1, 0, 0, 0) ==
			    -ENOENT);
	close(qfd);
	after = evq_cg_u64(cg, "memory.current");
	fprintf(stderr, "# all deleted, queue closed: memory.current %lld\n",
		(long long)after);
	CHK(after < hs->peak - (1 << 20));
	return 0;
}

/*
 * Watches count against the caller's cgroup: at memory.max an ADD fails
 * with ENOMEM, in its own entry, with no OOM kill and nothing leaked.
 */
TEST_F_TIMEOUT(sec, memcg_watches_enomem, 300)
{
	struct sec_handshake *hs;
	char max[32];
	int64_t c0;

	SEC_CGROUP();
	hs = mmap(NULL, sizeof(*hs), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, hs);
	sec_hs_set(hs, SEC_HS_START);	/* faulted in here, charged here */
	self->child = fork();
	ASSERT_LE(0, self->child);
	if (!self->child)
		_exit(sec_watch_enomem_child(&self->cg, hs));
	ASSERT_EQ(0, sec_hs_wait(hs, SEC_HS_ENTERED, self->child));
	c0 = evq_cg_u64(&self->cg, "memory.current");
	snprintf(max, sizeof(max), "%lld", (long long)(c0 + (2 << 20)));
	ASSERT_EQ(0, evq_cg_write(self->cg.dir, "memory.max", max));
	sec_hs_set(hs, SEC_HS_LIMITED);
	ASSERT_EQ(0, sec_hs_wait(hs, SEC_HS_FULL, self->child));
	hs->peak = evq_cg_u64(&self->cg, "memory.current");
	TH_LOG("memory.current %lld, memory.max %s, at the limit %lld",
	       (long long)c0, max, (long long)hs->peak);
	ASSERT_EQ(0, evq_cg_write(self->cg.dir, "memory.max", "max"));
	sec_hs_set(hs, SEC_HS_LIFTED);
	EXPECT_EQ(0, sec_wait(&self->child));
	EXPECT_LT(0, evq_cg_key(&self->cg, "memory.events", "max"));
	EXPECT_EQ(0, evq_cg_key(&self->cg, "memory.events", "oom"));
	EXPECT_EQ(0, evq_cg_key(&self->cg, "memory.events", "oom_kill"));
	munmap(hs, sizeof(*hs));
}

#define SEC_PAGEIN	(8 << 20)

static int sec_pagein_child(const struct evq_cg *cg, const char *path)
{
	static char buf[1 << 16];
	struct evq_sendfile sf;
	struct evq_cqe c[4];
	int64_t c0, c1;
	struct evq_q q;
	int fd, sv[2];
	uint32_t n;

	/* The file is written, synced and dropped before entering the group. */
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHK(fd >= 0);
	memset(buf, 'e', sizeof(buf));
	for (int i = 0; i < SEC_PAGEIN / (int)sizeof(buf); i++)
		CHK(write(fd, buf, sizeof(buf)) == sizeof(buf));
	CHK(evq_make_cold(fd) == 0);
	CHK(evq_q_open(&q, 64) == 0);
	CHK(evq_tcp_pair(sv) == 0);

	CHK(evq_cg_enter(cg) == 0);
	c0 = evq_cg_u64(cg, "memory.current");
	CHK(evq_sf_ioctl(q.fd, &sf, sv[0], fd, 0, SEC_PAGEIN, 0x99,
			 EVQ_SF_NOTIFY) == 0);
	CHK(sf.stop == EVQ_SF_STOP_NOT_RESIDENT);
	n = evq_collect(&q, c, 4, 1, 60000);
	CHK(n == 1 && evq_cqe_type(&c[0]) == EVQ_CQE_PAGES_READY);
	c1 = evq_cg_u64(cg, "memory.current");
	fprintf(stderr, "# page-in of %d bytes: PAGES_READY res %d, memory.current %lld -> %lld (+%lld bytes)\n",
		SEC_PAGEIN, c[0].res, (long long)c0, (long long)c1,
		(long long)(c1 - c0));
	CHK(c[0].res == SEC_PAGEIN);
	CHK(c1 - c0 >= SEC_PAGEIN / 2);
	evq_q_close(&q);
	close(fd);
	close(sv[0]);
	close(sv[1]);
	unlink(path);
	return 0;
}

/*
 * The page cache a page-in reads (in a kernel worker) is charged to the
 * caller's cgroup, not to the root cgroup the worker belongs to.
 */
TEST_F_TIMEOUT(sec, memcg_charges_pagein, 180)
{
	const char *dir = getenv("EVQ_SCRATCH");
	char path[256];

	if (!dir || !*dir)
		SKIP(return, "no $EVQ_SCRATCH (run with tools/vm/run --disk)");
	SEC_CGROUP();
	snprintf(path, sizeof(path), "%s/evq-sec-pagein", dir);
	ASSERT_EQ(0, evq_param_set("sendfile_window", SEC_PAGEIN));
	self->child = fork();
	ASSERT_LE(0, self->child);
	if (!self->child)
		_exit(sec_pagein_child(&self->cg, path));
	EXPECT_EQ(0, sec_wait(&self->child));
	unlink(path);
}

TEST_HARNESS_MAIN
