// SPDX-License-Identifier: GPL-2.0
/*
 * evq_fuzz: the operations, and what each may return.
 *
 * Each operation builds mostly valid arguments, so calls get past the
 * first check and into the queue, and now and then an invalid one: bad
 * sizes, flags, reserved fields, fds and pointers (NULL, unmapped,
 * kernel, misaligned, read-only, running into an unmapped page).  Every
 * result is judged against Documentation/evq.rst: an errno outside an
 * ioctl's documented set, a count out of range or a broken promise (a
 * batch that does not stop at the faulting entry, a private mapping that
 * succeeds) is a failure.  When the fd changed under the call (another
 * thread closed or replaced it: the slot's generation moved, or was odd,
 * see fz_slot_begin()), anything goes and the result only counts as
 * raced.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include "evq_fuzz.h"

#define FZ_EVENTS (EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLERR | EPOLLHUP | \
		   EPOLLRDNORM | EPOLLRDBAND | EPOLLWRNORM | EPOLLWRBAND | \
		   EPOLLMSG | EPOLLRDHUP)
#define FZ_KERNEL_PTR	((void *)0xffffffff81000000UL)
#define FZ_MAX_ENTRIES	4096	/* the largest batch we build */
#define FZ_MAX_CHILDREN	4

/* Documented errno sets, zero-terminated. */
#define FZ_SET(...)	((const int[]){ __VA_ARGS__, 0 })
#define E_INFO		FZ_SET(EFAULT)
#define E_SETUP		FZ_SET(EINVAL, EBUSY, ENOMEM, EFAULT)
#define E_CTL		FZ_SET(EINVAL, EFAULT, EBADFD)
#define E_CTL_ENTRY	FZ_SET(EINVAL, EBADF, EPERM, EEXIST, ENOENT, ENOSPC, \
			       ENOMEM)
#define E_WAIT		FZ_SET(EINVAL, EINTR, EBADFD, EFAULT)
/* The socket's own errors a send may meet, with nothing sent. */
#define E_SOCK		EPIPE, ECONNRESET, ENOTCONN, ETIMEDOUT, ECONNABORTED
#define E_SENDFILE	FZ_SET(EBADF, ENOTSOCK, EOPNOTSUPP, EINVAL, EBUSY, \
			       ENOMEM, EBADFD, EFAULT, E_SOCK)
#define E_SF_ERROR	FZ_SET(ENOMEM, EFAULT, EIO, E_SOCK)
#define E_CQE_OP	FZ_SET(ECANCELED, ENODATA, EIO, ENOMEM, E_SOCK)
#define E_CANCEL	FZ_SET(ENOENT, EBADFD, EFAULT)
#define E_MMAP		FZ_SET(EINVAL, EBADFD, ENOMEM, EPERM, EACCES)

static bool fz_in(int e, const int *set)
{
	for (; *set; set++)
		if (*set == e)
			return true;
	return false;
}

/* Thread-local buffers: the batch, and room to misalign a struct. */
static __thread struct evq_ctl *fz_ents;
static __thread unsigned char fz_scratch_buf[256] __attribute__((aligned(16)));

static long fz_pagesize(void)
{
	static long pg;

	if (!pg)
		pg = sysconf(_SC_PAGESIZE);
	return pg;
}

/* Where an argument struct goes. */
enum fz_where { W_GOOD, W_MISALIGNED, W_NULL, W_NONE, W_KERNEL, W_RO,
		W_STRADDLE };

static const char *const fz_where_name[] = {
	"good", "misaligned", "NULL", "unmapped", "kernel", "read-only",
	"straddling",
};

static enum fz_where fz_pick_where(struct fz_thread *t)
{
	uint32_t r = fz_below(&t->rng, 100);

	if (r < 84)
		return W_GOOD;
	if (r < 88)
		return W_MISALIGNED;
	return (enum fz_where)(W_NULL + fz_below(&t->rng, 5));
}

/*
 * Put @len bytes of @arg where @w says and return the pointer to pass.
 * A bad place must make the copy fault: the struct runs into the
 * unmapped page by at least one byte.
 */
/*
 * This thread's RW page followed by a PROT_NONE one.  One page shared by
 * every thread let another thread's copy land in the middle of a call's
 * argument, which the checks then blamed on the module.
 */
static __thread unsigned char *fz_guard;

static unsigned char *fz_guard_page(void)
{
	long pg = fz_pagesize();
	unsigned char *g;

	if (fz_guard)
		return fz_guard;
	g = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g == MAP_FAILED || mprotect(g + pg, pg, PROT_NONE)) {
		perror("evq_fuzz: guard page");
		exit(2);
	}
	fz_guard = g;
	return g;
}

static void *fz_place(struct fz_thread *t, enum fz_where w, void *arg,
		      size_t len)
{
	unsigned char *g;
	size_t in;

	switch (w) {
	case W_GOOD:
		return arg;
	case W_MISALIGNED:
		g = fz_scratch_buf + 1 + fz_below(&t->rng, 7);
		memcpy(g, arg, len);
		return g;
	case W_NULL:
		return NULL;
	case W_NONE:
		return fz.page_none;
	case W_KERNEL:
		return FZ_KERNEL_PTR;
	case W_RO:
		return fz.page_ro;
	case W_STRADDLE:
		in = fz_below(&t->rng, len);	/* bytes that fit */
		g = fz_guard_page() + fz_pagesize() - in;
		memcpy(g, arg, in);
		return g;
	}
	return arg;
}

/* Bring a struct placed by fz_place() back for the checks. */
static void fz_unplace(enum fz_where w, void *arg, const void *p, size_t len)
{
	if (w == W_MISALIGNED)
		memcpy(arg, p, len);
}

static bool fz_bad_place(enum fz_where w)
{
	return w == W_NULL || w == W_NONE || w == W_KERNEL ||
	       w == W_STRADDLE;
}

/* Is slot @i a queue whose ring is set up, as far as we know? */
static bool fz_known_ready(int i)
{
	struct fz_slot *s = &fz.slot[i];
	bool ready = false;

	pthread_rwlock_rdlock(&s->lock);
	if (s->kind == FZ_QUEUE && s->qf)
		ready = __atomic_load_n(&s->qf->ready, __ATOMIC_ACQUIRE);
	pthread_rwlock_unlock(&s->lock);
	return ready;
}

static uint32_t fz_known_entries(int i)
{
	struct fz_slot *s = &fz.slot[i];
	uint32_t n = 0;

	pthread_rwlock_rdlock(&s->lock);
	if (s->kind == FZ_QUEUE && s->qf &&
	    __atomic_load_n(&s->qf->ready, __ATOMIC_ACQUIRE))
		n = s->qf->entries;
	pthread_rwlock_unlock(&s->lock);
	return n;
}

/*
 * The call's result in @ret (-errno on failure): in @errs or a count in
 * [@lo, @hi].  Returns true when the result may be judged further.
 */
/* What the fd named when an ioctl said it was no queue, for the report. */
static __thread char fz_badfd[160];

static bool fz_judge(struct fz_thread *t, const char *op, int i,
		     unsigned int gen, long ret, const int *errs, long lo,
		     long hi, const char *what)
{
	if ((gen & 1) || fz_gen_of(i) != gen ||
	    __atomic_load_n(&fz.slot[i].kind, __ATOMIC_RELAXED) != FZ_QUEUE) {
		__atomic_add_fetch(&fz.sh->raced, 1, __ATOMIC_RELAXED);
		return false;
	}
	if (ret < 0 && !fz_in((int)-ret, errs)) {
		fz_fail(t, op, "%s: unexpected errno %ld (%s)%s%s, gen %u", what,
			-ret, strerror((int)-ret),
			ret == -EBADF || ret == -ENOTTY ? " on " : "",
			ret == -EBADF || ret == -ENOTTY ? fz_badfd : "", gen);
		return false;
	}
	if (ret >= 0 && (ret < lo || ret > hi)) {
		fz_fail(t, op, "%s: returned %ld, outside [%ld, %ld]", what,
			ret, lo, hi);
		return false;
	}
	return true;
}

static long fz_ioctl(int fd, unsigned long cmd, void *arg)
{
	long r = ioctl(fd, cmd, arg);

	if (r < 0 && (errno == EBADF || errno == ENOTTY)) {
		char path[32], link[96] = "";
		int e = errno;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		(void)!readlink(path, link, sizeof(link) - 1);
		snprintf(fz_badfd, sizeof(fz_badfd), "fd %d (%s)", fd, link);
		errno = e;
	}
	return r < 0 ? -errno : r;
}

/* ---- EVQ_IOC_INFO, EVQ_IOC_SETUP ---- */

static void op_info(struct fz_thread *t)
{
	struct evq_info info;
	enum fz_where w = fz_pick_where(t);
	int i = fz_pick(t, FZ_QUEUE);
	unsigned int gen = fz_gen_of(i);
	void *p;
	long r;

	memset(&info, 0xa5, sizeof(info));
	p = fz_place(t, w, &info, sizeof(info));
	r = fz_ioctl(fz_fd_of(i), EVQ_IOC_INFO, p);
	if (!fz_judge(t, "info", i, gen, r, E_INFO, 0, 0, fz_where_name[w]))
		return;
	if ((fz_bad_place(w) || w == W_RO) && r != -EFAULT)
		fz_fail(t, "info", "%s pointer: %ld, want -EFAULT",
			fz_where_name[w], r);
	if (r)
		return;
	fz_unplace(w, &info, p, sizeof(info));
	if (info.abi_version != EVQ_ABI_VERSION ||
	    !(info.features & EVQ_FEAT_RING) || !info.max_batch ||
	    info.resv0 || info.resv[0] || info.resv[6])
		fz_fail(t, "info", "abi %u features %#llx max_batch %u",
			info.abi_version, (unsigned long long)info.features,
			info.max_batch);
}

static void op_setup(struct fz_thread *t)
{
	struct evq_setup p, *up;
	enum fz_where w = fz_pick_where(t);
	int i = fz_pick(t, FZ_QUEUE);
	unsigned int gen = fz_gen_of(i);
	bool was_ready = fz_known_ready(i);
	bool invalid = true;
	long r, pg = fz_pagesize();
	uint32_t want;

	memset(&p, 0, sizeof(p));
	want = 1 + fz_below(&t->rng, fz_one_in(&t->rng, 8) ? 8192 : 256);
	p.cq_entries = want;
	switch (fz_below(&t->rng, 12)) {
	case 0:
		p.cq_entries = 0;
		break;
	case 1:
		p.cq_entries = fz_one_in(&t->rng, 2) ?
			       fz.info.max_cq_entries + 1 : 0x80000001U;
		break;
	case 2:
		p.flags = 1U << fz_below(&t->rng, 32);
		break;
	case 3:
		p.resv[fz_below(&t->rng, 4)] = fz_next(&t->rng) | 1;
		break;
	case 4:
		p.ring_size = fz_next(&t->rng) | 1;
		break;
	case 5:
		p.off.cqes = 192;
		break;
	default:
		invalid = false;
	}
	up = fz_place(t, w, &p, sizeof(p));
	r = fz_ioctl(fz_fd_of(i), EVQ_IOC_SETUP, up);
	if (!fz_judge(t, "setup", i, gen, r, E_SETUP, 0, 0, fz_where_name[w]))
		return;
	if (fz_bad_place(w) && r != -EFAULT) {
		fz_fail(t, "setup", "%s pointer: %ld, want -EFAULT",
			fz_where_name[w], r);
		return;
	}
	/* Read-only memory reads as zeroes: cq_entries 0 fails first. */
	if (w == W_RO && r != -EINVAL)
		fz_fail(t, "setup", "read-only pointer: %ld, want -EINVAL", r);
	if (fz_bad_place(w) || w == W_RO)
		return;
	if (invalid && r != -EINVAL) {
		fz_fail(t, "setup", "invalid request: %ld, want -EINVAL", r);
		return;
	}
	if (!invalid && was_ready && r != -EBUSY && r != -EFAULT) {
		fz_fail(t, "setup", "second setup: %ld, want -EBUSY", r);
		return;
	}
	if (r)
		return;
	fz_unplace(w, &p, up, sizeof(p));
	{
		uint32_t n = p.cq_entries;
		uint64_t need = p.off.cqes + (uint64_t)n * sizeof(struct evq_cqe);

		if (n < want || (n & (n - 1)) || p.ring_size % pg ||
		    p.ring_size < need || p.ring_size >= need + pg ||
		    p.off.tail == p.off.head || p.off.cqes < 24)
			fz_fail(t, "setup", "asked %u: got %u entries, %llu bytes, cqes at %u",
				want, n, (unsigned long long)p.ring_size,
				p.off.cqes);
	}
	pthread_rwlock_wrlock(&fz.slot[i].lock);
	if (fz.slot[i].gen == gen && fz.slot[i].qf &&
	    !fz.slot[i].qf->ready) {
		fz.slot[i].qf->entries = p.cq_entries;
		fz.slot[i].qf->ring_size = p.ring_size;
		__atomic_store_n(&fz.slot[i].qf->ready, 1, __ATOMIC_RELEASE);
	}
	pthread_rwlock_unlock(&fz.slot[i].lock);
}

/* ---- EVQ_IOC_CTL ---- */

static void fz_fill_entry(struct fz_thread *t, struct evq_ctl *e)
{
	memset(e, 0, sizeof(*e));
	e->op = fz_one_in(&t->rng, 12) ? (uint32_t)fz_next(&t->rng) % 6 :
		EVQ_CTL_ADD + fz_below(&t->rng, 3);
	e->fd = fz_random_fd(t);
	e->events = fz_one_in(&t->rng, 16) ? (uint32_t)fz_next(&t->rng) :
		    (uint32_t)fz_next(&t->rng) & FZ_EVENTS;
	e->flags = fz_one_in(&t->rng, 16) ? (uint32_t)fz_next(&t->rng) :
		   (uint32_t)fz_next(&t->rng) & EVQ_WATCH_MODES;
	e->user_data = fz_next(&t->rng);
	e->res = 0x7eadbeef;
	if (fz_one_in(&t->rng, 32))
		e->resv = (uint32_t)fz_next(&t->rng) | 1;
}

/* What one entry's res must be, where it is certain; 1 if not certain. */
static int fz_entry_expect(const struct evq_ctl *e)
{
	if (e->resv)
		return -EINVAL;
	if (e->op < EVQ_CTL_ADD || e->op > EVQ_CTL_DEL)
		return -EINVAL;
	if (e->op != EVQ_CTL_DEL && (e->flags & ~EVQ_WATCH_MODES))
		return -EINVAL;
	if (e->op != EVQ_CTL_DEL && (e->events & ~FZ_EVENTS))
		return -EINVAL;
	/* As EPOLLEXCLUSIVE: fixed at ADD, and not with ONESHOT. */
	if (e->op == EVQ_CTL_MOD && (e->flags & EVQ_WATCH_EXCLUSIVE))
		return -EINVAL;
	if (e->op == EVQ_CTL_ADD && (e->flags & EVQ_WATCH_EXCLUSIVE) &&
	    (e->flags & EVQ_WATCH_ONESHOT))
		return -EINVAL;
	if (e->fd < 0)
		return -EBADF;
	return 1;
}

/*
 * @entries may be misaligned (a batch placed off its alignment on
 * purpose): each entry is copied out before it is read, which UBSan
 * otherwise reports as a misaligned member access.
 */
static void fz_check_entries(struct fz_thread *t, const void *entries,
			     uint32_t n)
{
	for (uint32_t k = 0; k < n; k++) {
		struct evq_ctl e;
		int want;

		memcpy(&e, (const char *)entries + k * sizeof(e), sizeof(e));
		want = fz_entry_expect(&e);
		if (e.res > 0 || (e.res < 0 && !fz_in(-e.res, E_CTL_ENTRY))) {
			fz_fail(t, "ctl", "entry %u (op %u fd %d events %#x flags %#x): res %d",
				k, e.op, e.fd, e.events, e.flags, e.res);
			return;
		}
		if (want <= 0 && e.res != want) {
			fz_fail(t, "ctl", "entry %u (op %u fd %d events %#x flags %#x resv %u): res %d, want %d",
				k, e.op, e.fd, e.events, e.flags, e.resv, e.res,
				want);
			return;
		}
	}
}

static void op_ctl(struct fz_thread *t)
{
	struct evq_ctl_batch b = { 0 }, *bp = &b;
	struct evq_ctl *e = fz_ents;
	int i = fz_pick(t, FZ_QUEUE);
	unsigned int gen = fz_gen_of(i);
	bool ready = fz_known_ready(i);
	uint32_t nr, r100 = fz_below(&t->rng, 100), fit = 0;
	long ret, pg = fz_pagesize();
	/* 0 good, 1 bad pointer, 2 read-only, 3 straddle, 4 overlap, 5 misaligned */
	int how = 0;
	char what[64];

	if (r100 < 70)
		nr = 1 + fz_below(&t->rng, 16);
	else if (r100 < 90)
		nr = 17 + fz_below(&t->rng, 200);
	else if (r100 < 93)
		nr = FZ_MAX_ENTRIES - fz_below(&t->rng, 64);
	else if (r100 < 96)
		nr = 0;
	else
		nr = fz.info.max_batch + 1 + fz_below(&t->rng, 3);
	for (uint32_t k = 0; k < nr && k < FZ_MAX_ENTRIES; k++)
		fz_fill_entry(t, &e[k]);
	b.entries = (uintptr_t)e;
	b.nr = nr;
	if (fz_one_in(&t->rng, 40))
		b.flags = (uint32_t)fz_next(&t->rng) | 1;

	switch (fz_below(&t->rng, 40)) {
	case 0:
		b.entries = 0;
		how = 1;
		break;
	case 1:
		b.entries = (uintptr_t)fz.page_none;
		how = 1;
		break;
	case 2:
		b.entries = (uintptr_t)FZ_KERNEL_PTR;
		how = 1;
		break;
	case 3:
		b.entries = (uintptr_t)fz.page_ro;
		how = 2;
		break;
	case 4:
		/* @fit whole entries, then one running into the hole. */
		if (nr > 1 && nr <= FZ_MAX_ENTRIES) {
			fit = fz_below(&t->rng, nr < 64 ? nr : 64);
			unsigned char *g = fz_guard_page() + pg -
				fit * sizeof(*e) - fz_below(&t->rng, sizeof(*e));

			memcpy(g, e, fit * sizeof(*e));
			b.entries = (uintptr_t)g;
			how = 3;
		}
		break;
	case 5:
		/* The batch header lies inside the array it describes. */
		if (nr && nr <= FZ_MAX_ENTRIES) {
			memcpy(&e[0], &b, sizeof(b));
			bp = (struct evq_ctl_batch *)&e[0];
			how = 4;
		}
		break;
	case 6:
		b.entries += 1 + fz_below(&t->rng, 7);	/* misaligned */
		if (nr <= FZ_MAX_ENTRIES - 1) {
			memmove((char *)e + (b.entries - (uintptr_t)e), e,
				nr * sizeof(*e));
			how = 5;
		} else {
			how = -1;
		}
		break;
	}
	snprintf(what, sizeof(what), "nr %u flags %#x how %d", nr, b.flags, how);
	ret = fz_ioctl(fz_fd_of(i), EVQ_IOC_CTL, bp);
	if (!fz_judge(t, "ctl", i, gen, ret, E_CTL, 1, nr, what))
		return;
	if (ret == -EBADFD && ready)
		fz_fail(t, "ctl", "%s: EBADFD on a set-up queue", what);
	if (ret == -EBADFD)
		return;
	if (b.flags || !nr || nr > fz.info.max_batch) {
		if (ret != -EINVAL)
			fz_fail(t, "ctl", "%s: %ld, want -EINVAL", what, ret);
		return;
	}
	if (how == 1 || how == 2) {
		if (ret != -EFAULT)
			fz_fail(t, "ctl", "%s: %ld, want -EFAULT", what, ret);
		return;
	}
	if (how == 3) {
		/* A fault stops the batch exactly at the entry. */
		if (ret != (fit ? (long)fit : -EFAULT))
			fz_fail(t, "ctl", "%s: %ld with %u entries readable",
				what, ret, fit);
		else
			fz_check_entries(t, (void *)(uintptr_t)b.entries, fit);
		return;
	}
	if (how < 0)
		return;
	if (ret != nr) {
		fz_fail(t, "ctl", "%s: applied %ld of a readable batch", what,
			ret);
		return;
	}
	if (how == 0)
		fz_check_entries(t, e, nr);
	else if (how != 4)
		fz_check_entries(t, (void *)(uintptr_t)b.entries, nr);
}

/* ---- EVQ_IOC_WAIT, EVQ_IOC_CANCEL ---- */

static void op_wait(struct fz_thread *t)
{
	struct evq_wait wt = { 0 }, *wp;
	enum fz_where w = fz_pick_where(t);
	int i = fz_pick(t, FZ_QUEUE);
	unsigned int gen = fz_gen_of(i);
	uint32_t entries = fz_known_entries(i);
	bool invalid = false;
	char what[96];
	long r;

	switch (fz_below(&t->rng, 10)) {
	case 0: case 1: case 2: case 3: case 4: case 5:
		wt.timeout_ns = 0;
		break;
	case 6: case 7: case 8:
		wt.timeout_ns = 1 + fz_below(&t->rng, 200000);
		break;
	default:
		wt.timeout_ns = -1;	/* only with min_events 0, below */
	}
	wt.min_events = fz_below(&t->rng, 4) ? fz_below(&t->rng, 3) :
			fz_below(&t->rng, entries + 3);
	if (wt.timeout_ns < 0)
		wt.min_events = 0;
	if (fz_one_in(&t->rng, 4))
		wt.flags = EVQ_WAIT_EXCLUSIVE;
	if (fz_one_in(&t->rng, 30)) {
		wt.flags = (uint32_t)fz_next(&t->rng) | 2;
		invalid = true;
	}
	if (fz_one_in(&t->rng, 30)) {
		wt.resv[fz_below(&t->rng, 2)] = fz_next(&t->rng) | 1;
		invalid = true;
	}
	/* A bad pointer would read as anything: never an endless sleep. */
	if (w == W_RO)
		w = W_GOOD;
	wp = fz_place(t, w, &wt, sizeof(wt));
	snprintf(what, sizeof(what), "%s timeout %lld min %u flags %#x entries %u",
		 fz_where_name[w], (long long)wt.timeout_ns, wt.min_events,
		 wt.flags, entries);
	r = fz_ioctl(fz_fd_of(i), EVQ_IOC_WAIT, wp);
	if (!fz_judge(t, "wait", i, gen, r, E_WAIT, 0,
		      entries ? entries : 1L << 31, what))
		return;
	if (!entries || r == -EBADFD) {
		if (r == -EBADFD && entries)
			fz_fail(t, "wait", "%s: EBADFD on a set-up queue", what);
		return;
	}
	if (fz_bad_place(w)) {
		if (r != -EFAULT)
			fz_fail(t, "wait", "%s: %ld, want -EFAULT", what, r);
		return;
	}
	if ((invalid || wt.min_events > entries) && r != -EINVAL)
		fz_fail(t, "wait", "%s: %ld, want -EINVAL", what, r);
	if (!invalid && wt.min_events <= entries && r == -EINVAL)
		fz_fail(t, "wait", "%s: -EINVAL for a valid wait", what);
}

static void op_cancel(struct fz_thread *t)
{
	enum fz_where w = fz_pick_where(t);
	int i = fz_pick(t, FZ_QUEUE);
	unsigned int gen = fz_gen_of(i);
	uint64_t ud = fz_one_in(&t->rng, 8) ? fz_next(&t->rng) :
		      1 + fz_below(&t->rng, 8);
	long r;

	if (w == W_STRADDLE)
		w = W_NONE;	/* an 8-byte value: partly readable is no case */
	r = fz_ioctl(fz_fd_of(i), EVQ_IOC_CANCEL, fz_place(t, w, &ud, sizeof(ud)));
	if (!fz_judge(t, "cancel", i, gen, r, E_CANCEL, 1,
		      fz.info.max_ops ? fz.info.max_ops : 1L << 20,
		      fz_where_name[w]))
		return;
	if (fz_bad_place(w) && r != -EFAULT && r != -EBADFD)
		fz_fail(t, "cancel", "%s pointer: %ld, want -EFAULT",
			fz_where_name[w], r);
}

/* ---- EVQ_IOC_SENDFILE ---- */

static uint64_t fz_file_size(int fd)
{
	off_t end = lseek(fd, 0, SEEK_END);

	return end < 0 ? 0 : (uint64_t)end;
}

static void op_sendfile(struct fz_thread *t)
{
	struct evq_sendfile sf = { 0 }, *up;
	enum fz_where w = fz_pick_where(t);
	int i = fz_pick(t, FZ_QUEUE);
	unsigned int gen = fz_gen_of(i);
	bool ready = fz_known_ready(i);
	int in_i = fz_pick(t, FZ_FILE_TMP);
	uint64_t size;
	bool invalid = false;
	char what[160];
	long r;

	sf.out_fd = fz_one_in(&t->rng, 10) ? fz_random_fd(t) :
		    fz_fd_of(fz_pick(t, FZ_TCP));
	sf.in_fd = fz_one_in(&t->rng, 10) ? fz_random_fd(t) : fz_fd_of(in_i);
	size = fz_file_size(sf.in_fd);
	switch (fz_below(&t->rng, 10)) {
	case 0:
		sf.offset = size ? size - 1 - fz_below(&t->rng, 4096) % size : 0;
		break;
	case 1:
		sf.offset = size + fz_below(&t->rng, 8192);
		break;
	case 2:
		sf.offset = fz_one_in(&t->rng, 2) ? (1ULL << 63) - 1 :
			    fz_next(&t->rng);
		break;
	default:
		sf.offset = size ? fz_below(&t->rng, size) : 0;
	}
	switch (fz_below(&t->rng, 10)) {
	case 0:
		sf.count = EVQ_SENDFILE_MAX;
		break;
	case 1:
		sf.count = fz_one_in(&t->rng, 2) ? EVQ_SENDFILE_MAX + 1ULL :
			   fz_next(&t->rng);
		break;
	case 2:
		sf.count = 0;
		break;
	default:
		sf.count = 1 + fz_below(&t->rng, 256 << 10);
	}
	sf.flags = (uint32_t)fz_next(&t->rng) & EVQ_SF_FLAGS;
	if (fz_one_in(&t->rng, 30))
		sf.flags = (uint32_t)fz_next(&t->rng) | 8;
	sf.user_data = 1 + fz_below(&t->rng, 8);
	if (fz_one_in(&t->rng, 30))
		sf.resv = 1;
	if (fz_one_in(&t->rng, 30))
		sf.resv0 = 1;
	if (sf.flags & ~EVQ_SF_FLAGS || sf.resv || sf.resv0 ||
	    (sf.flags & EVQ_SF_NOTIFY && sf.flags & EVQ_SF_ASYNC) ||
	    sf.count > EVQ_SENDFILE_MAX || sf.offset > INT64_MAX ||
	    sf.count > INT64_MAX - sf.offset)
		invalid = true;
	sf.stop = 0xdead;
	up = fz_place(t, w, &sf, sizeof(sf));
	snprintf(what, sizeof(what), "%s out %d in %d off %llu count %llu flags %#x",
		 fz_where_name[w], sf.out_fd, sf.in_fd,
		 (unsigned long long)sf.offset, (unsigned long long)sf.count,
		 sf.flags);
	r = fz_ioctl(fz_fd_of(i), EVQ_IOC_SENDFILE, up);
	if (!fz_judge(t, "sendfile", i, gen, r, E_SENDFILE, 0,
		      invalid ? 0 : (long)sf.count, what))
		return;
	if (r == -EBADFD) {
		if (ready)
			fz_fail(t, "sendfile", "%s: EBADFD on a set-up queue",
				what);
		return;
	}
	if (fz_bad_place(w) || w == W_RO) {
		if (r != -EFAULT && w != W_RO)
			fz_fail(t, "sendfile", "%s: %ld, want -EFAULT", what, r);
		return;
	}
	if (invalid) {
		if (r != -EINVAL)
			fz_fail(t, "sendfile", "%s: %ld, want -EINVAL", what, r);
		return;
	}
	if (r < 0)
		return;
	fz_unplace(w, &sf, up, sizeof(sf));
	if (sf.flags & EVQ_SF_ASYNC) {
		if (r != 0)
			fz_fail(t, "sendfile", "%s: async returned %ld", what, r);
		return;
	}
	if (sf.sent != (uint64_t)r || sf.stop < EVQ_SF_STOP_DONE ||
	    sf.stop > EVQ_SF_STOP_ERROR ||
	    (sf.stop == EVQ_SF_STOP_ERROR) != (sf.error != 0) ||
	    (sf.error && !fz_in(-sf.error, E_SF_ERROR)))
		fz_fail(t, "sendfile", "%s: ret %ld sent %llu stop %u error %d",
			what, r, (unsigned long long)sf.sent, sf.stop, sf.error);
}

/* ---- unknown ioctls ---- */

static void op_unknown(struct fz_thread *t)
{
	static const unsigned long known[] = {
		EVQ_IOC_INFO, EVQ_IOC_SETUP, EVQ_IOC_CTL, EVQ_IOC_WAIT,
		EVQ_IOC_SENDFILE, EVQ_IOC_CANCEL,
	};
	int i = fz_pick(t, FZ_QUEUE);
	unsigned int gen = fz_gen_of(i);
	unsigned long cmd;
	char what[48];
	long r;

	do {
		cmd = _IOC(fz_below(&t->rng, 4), EVQ_IOC_MAGIC,
			   fz_one_in(&t->rng, 2) ? fz_below(&t->rng, 8) :
			   fz_below(&t->rng, 256),
			   fz_one_in(&t->rng, 2) ? fz_below(&t->rng, 128) :
			   fz_below(&t->rng, 1 << 14));
		for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			if (cmd == known[k])
				cmd = 0;
	} while (!cmd);
	snprintf(what, sizeof(what), "cmd %#lx", cmd);
	r = fz_ioctl(fz_fd_of(i), cmd, fz_scratch_buf);
	if (fz_judge(t, "unknown", i, gen, r, FZ_SET(ENOTTY), 0, -1, what) &&
	    r != -ENOTTY)
		fz_fail(t, "unknown", "%s: %ld, want -ENOTTY", what, r);
}

/* ---- the ring ---- */

static bool fz_cqe_ok(const struct evq_cqe *c)
{
	uint32_t type = c->flags & EVQ_CQE_TYPE_MASK;

	if (c->flags & ~(EVQ_CQE_TYPE_MASK | EVQ_CQEF_MORE))
		return false;
	if ((c->flags & EVQ_CQEF_MORE) && type != EVQ_CQE_SENDFILE)
		return false;
	switch (type) {
	case EVQ_CQE_READY:
		return c->res && !((uint32_t)c->res & ~(uint32_t)FZ_EVENTS);
	case EVQ_CQE_CLOSED:
		return c->res == 0;
	case EVQ_CQE_PAGES_READY:
	case EVQ_CQE_SENDFILE:
		return c->res >= 0 || fz_in(-c->res, E_CQE_OP);
	}
	return false;
}

/*
 * Harvest what a mapped ring holds and check it: header constants, tail
 * only moving forward, no more entries than the ring has, every entry
 * well formed.  Now and then scribble on head: the kernel must not trust
 * it (nothing is checked until head is set straight again).
 */
static void op_ring(struct fz_thread *t)
{
	int i = fz_pick(t, FZ_QUEUE);
	struct fz_slot *s = &fz.slot[i];
	struct fz_qfile *qf;
	uint32_t *head, *tail, mask, entries, h, tl, n;
	struct evq_cqe *cqes;
	unsigned char *m;

	pthread_rwlock_rdlock(&s->lock);
	qf = s->qf;
	if (!s->map || !qf || pthread_mutex_trylock(&qf->consumer)) {
		pthread_rwlock_unlock(&s->lock);
		return;
	}
	m = s->map;
	/* The layout SETUP returned is fixed by the ABI version. */
	head = (uint32_t *)(m + 0);
	tail = (uint32_t *)(m + 64);
	mask = *(volatile uint32_t *)(m + 128);
	entries = *(volatile uint32_t *)(m + 132);
	cqes = (struct evq_cqe *)(m + 192);
	__atomic_add_fetch(&fz.sh->ring_checks, 1, __ATOMIC_RELAXED);
	if (entries != qf->entries || mask != entries - 1 ||
	    192 + (size_t)entries * 16 > s->map_len) {
		fz_fail(t, "ring", "header: entries %u mask %u, set up with %u, mapped %zu",
			entries, mask, qf->entries, s->map_len);
		goto out;
	}
	if (__atomic_load_n((uint32_t *)(m + 140), __ATOMIC_ACQUIRE) &
	    ~EVQ_RING_NEED_ENTER)
		fz_fail(t, "ring", "flags %#x", *(uint32_t *)(m + 140));
	tl = __atomic_load_n(tail, __ATOMIC_ACQUIRE);
	h = __atomic_load_n(head, __ATOMIC_RELAXED);
	if (tl - qf->last_tail > 1U << 31)
		fz_fail(t, "ring", "tail went back from %u to %u",
			qf->last_tail, tl);
	qf->last_tail = tl;
	if (t->in_child)
		goto out;	/* the parent consumes */
	if (qf->chaos) {
		if (fz_one_in(&t->rng, 4)) {
			__atomic_store_n(head, tl, __ATOMIC_RELEASE);
			qf->chaos = false;
		}
		goto out;
	}
	if (fz_one_in(&t->rng, 60)) {
		__atomic_store_n(head, (uint32_t)fz_next(&t->rng),
				 __ATOMIC_RELEASE);
		qf->chaos = true;
		goto out;
	}
	if (tl - h > entries) {
		fz_fail(t, "ring", "head %u tail %u: more than %u entries",
			h, tl, entries);
		goto out;
	}
	n = fz_below(&t->rng, 4) ? tl - h : fz_below(&t->rng, tl - h + 1);
	for (uint32_t k = 0; k < n; k++) {
		const struct evq_cqe *c = &cqes[(h + k) & mask];

		if (!fz_cqe_ok(c)) {
			fz_fail(t, "ring", "entry %u: user_data %llu res %d flags %#x",
				h + k, (unsigned long long)c->user_data, c->res,
				c->flags);
			break;
		}
	}
	__atomic_store_n(head, h + n, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&qf->consumer);
	pthread_rwlock_unlock(&s->lock);
}

/* mmap a queue fd in every which way; keep a good mapping in its slot. */
static void op_mmap(struct fz_thread *t)
{
	static const int prots[] = {
		PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ,
		PROT_WRITE, PROT_READ | PROT_WRITE | PROT_EXEC, PROT_NONE,
	};
	int i = fz_pick(t, FZ_QUEUE);
	struct fz_slot *s = &fz.slot[i];
	unsigned int gen = fz_gen_of(i);
	bool ready = fz_known_ready(i);
	long pg = fz_pagesize();
	size_t rsz = 0, len;
	off_t off = 0;
	int prot = prots[fz_below(&t->rng, 6)], flags = MAP_SHARED;
	bool must_fail = false;
	char what[96];
	void *m;
	long r;

	pthread_rwlock_rdlock(&s->lock);
	if (s->qf && s->qf->ready)
		rsz = s->qf->ring_size;
	pthread_rwlock_unlock(&s->lock);
	len = rsz ? rsz : (size_t)pg;
	switch (fz_below(&t->rng, 12)) {
	case 0:
		len += pg;
		must_fail = true;
		break;
	case 1:
		off = pg * (1 + fz_below(&t->rng, 4));
		must_fail = true;
		break;
	case 2:
		flags = MAP_PRIVATE;
		must_fail = true;
		break;
	case 3:
		if (len > (size_t)pg)
			len -= pg * (1 + fz_below(&t->rng, len / pg - 1));
		break;
	}
	snprintf(what, sizeof(what), "len %zu off %lld prot %#x flags %#x ring %zu",
		 len, (long long)off, prot, flags, rsz);
	m = mmap(NULL, len, prot, flags, fz_fd_of(i), off);
	r = m == MAP_FAILED ? -errno : 0;
	if (!fz_judge(t, "mmap", i, gen, r, E_MMAP, 0, 0, what))
		goto out;
	if (ready && !r && must_fail)
		fz_fail(t, "mmap", "%s: succeeded", what);
	if (ready && r && !must_fail && r != -EPERM && r != -EACCES)
		fz_fail(t, "mmap", "%s: %ld", what, r);
	if (r)
		return;
	if (prot & PROT_READ) {
		uint32_t entries = *(volatile uint32_t *)((char *)m + 132);

		if (rsz && entries * 16ULL + 192 > rsz)
			fz_fail(t, "mmap", "%s: %u entries", what, entries);
	}
	/* Grow must fail (the ring's size is fixed), shrink and move work. */
	if (fz_one_in(&t->rng, 3)) {
		void *m2 = mremap(m, len, len + pg, MREMAP_MAYMOVE);

		if (m2 != MAP_FAILED) {
			fz_fail(t, "mremap", "%s: grew the ring mapping", what);
			munmap(m2, len + pg);
			return;
		}
	}
	if (fz_one_in(&t->rng, 3)) {
		void *dst = mmap(NULL, len, PROT_NONE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		void *m2 = dst == MAP_FAILED ? MAP_FAILED :
			   mremap(m, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
				  dst);

		if (m2 != MAP_FAILED)
			m = m2;
		else if (dst != MAP_FAILED)
			munmap(dst, len);
	}
	if (prot == (PROT_READ | PROT_WRITE) && len == rsz && !off &&
	    flags == MAP_SHARED) {
		pthread_rwlock_wrlock(&s->lock);
		if (!s->map && s->gen == gen && s->kind == FZ_QUEUE) {
			s->map = m;
			s->map_len = len;
			m = NULL;
		}
		pthread_rwlock_unlock(&s->lock);
	}
out:
	if (m && m != MAP_FAILED)
		munmap(m, len);
}

/* Take a slot's mapping away: munmap, partly or whole, or shrink it. */
static void op_unmap(struct fz_thread *t)
{
	int i = fz_pick(t, FZ_QUEUE);
	struct fz_slot *s = &fz.slot[i];
	long pg = fz_pagesize();

	pthread_rwlock_wrlock(&s->lock);
	if (s->map) {
		/*
		 * Each range is unmapped once: another thread may map
		 * something of its own where a piece was.
		 */
		if (s->map_len > (size_t)pg && fz_one_in(&t->rng, 3)) {
			munmap((char *)s->map + pg, s->map_len - pg);
			munmap(s->map, pg);
		} else if (s->map_len > (size_t)pg && fz_one_in(&t->rng, 2)) {
			if (mremap(s->map, s->map_len, pg, 0) == MAP_FAILED) {
				fz_fail(t, "mremap", "shrinking the ring mapping: %s",
					strerror(errno));
				munmap(s->map, s->map_len);
			} else {
				munmap(s->map, pg);
			}
		} else {
			munmap(s->map, s->map_len);
		}
		s->map = NULL;
		s->map_len = 0;
	}
	pthread_rwlock_unlock(&s->lock);
}

/* ---- fds: close, open, dup, dup2, fork, SCM_RIGHTS, epoll ---- */

static void op_close(struct fz_thread *t)
{
	int i = fz_pick_any(t);

	pthread_rwlock_wrlock(&fz.slot[i].lock);
	fz_slot_close_locked(&fz.slot[i]);
	pthread_rwlock_unlock(&fz.slot[i].lock);
	if (fz_one_in(&t->rng, 2))
		fz_slot_open(t, i, FZ_EMPTY);
}

static void op_open(struct fz_thread *t)
{
	fz_slot_open(t, fz_pick_any(t), FZ_EMPTY);
}

/*
 * dup() a slot's fd into another slot, or dup2() it over the other
 * slot's fd number: a watched number then names another file.
 */
static void op_dup(struct fz_thread *t)
{
	int src = fz_pick_any(t), dst = fz_pick_any(t);
	struct fz_slot *a, *b, *ss = &fz.slot[src], *ds = &fz.slot[dst];
	int fd;

	if (src == dst)
		return;
	a = src < dst ? ss : ds;
	b = src < dst ? ds : ss;
	pthread_rwlock_wrlock(&a->lock);
	pthread_rwlock_wrlock(&b->lock);
	if (ss->fd < 0)
		goto out;
	if (ds->map) {
		munmap(ds->map, ds->map_len);
		ds->map = NULL;
	}
	/* Before the number changes files: see fz_slot_begin(). */
	fz_slot_begin(ds);
	if (ds->fd >= 0 && fz_one_in(&t->rng, 2)) {
		fd = dup2(ss->fd, ds->fd);
	} else {
		fd = fcntl(ss->fd, F_DUPFD_CLOEXEC, 0);
		if (fd >= 0 && ds->fd >= 0)
			close(ds->fd);
	}
	if (fd >= 0) {
		pthread_mutex_lock(&fz.pool_lock);
		fz_qfile_put_locked(ds->qf);
		ds->qf = ss->qf;
		if (ds->qf)
			ds->qf->refs++;
		pthread_mutex_unlock(&fz.pool_lock);
		__atomic_store_n(&ds->fd, fd, __ATOMIC_RELAXED);
		ds->kind = ss->kind;
	}
	fz_slot_end(ds);
out:
	pthread_rwlock_unlock(&b->lock);
	pthread_rwlock_unlock(&a->lock);
}

/* Send a queue fd (mostly) over a UNIX socket: it may be in flight forever. */
static void op_scm(struct fz_thread *t)
{
	int s = fz_fd_of(fz_pick(t, FZ_UNIX));
	int pass = fz_one_in(&t->rng, 4) ? fz_random_fd(t) :
		   fz_fd_of(fz_pick(t, FZ_QUEUE));
	char byte = 'x', cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	memset(cbuf, 0, sizeof(cbuf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &pass, sizeof(int));
	sendmsg(s, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* An epoll fd takes a queue fd (mostly): queues and epoll nest, both ways. */
static void op_epoll(struct fz_thread *t)
{
	int ep = fz_fd_of(fz_pick(t, FZ_EPOLL));
	struct epoll_event ev = {
		.events = EPOLLIN | (fz_one_in(&t->rng, 2) ? EPOLLET : 0),
	};
	struct epoll_event out[8];

	switch (fz_below(&t->rng, 3)) {
	case 0:
		epoll_ctl(ep, EPOLL_CTL_ADD, fz_one_in(&t->rng, 4) ?
			  fz_random_fd(t) : fz_fd_of(fz_pick(t, FZ_QUEUE)), &ev);
		break;
	case 1:
		epoll_ctl(ep, EPOLL_CTL_DEL, fz_random_fd(t), NULL);
		break;
	default:
		epoll_wait(ep, out, 8, 0);
	}
}

/* Make events happen: write, read, fill, shut down, truncate, evict. */
static void op_poke(struct fz_thread *t)
{
	static __thread char buf[16384];
	int i = fz_pick_any(t);
	int fd = fz_fd_of(i);
	int kind = __atomic_load_n(&fz.slot[i].kind, __ATOMIC_RELAXED);
	uint64_t one = 1;
	struct pollfd p;

	switch (kind) {
	case FZ_TCP: case FZ_UNIX: case FZ_UDP: case FZ_PIPE_W:
		if (fz_one_in(&t->rng, 40) && kind == FZ_TCP) {
			shutdown(fd, fz_one_in(&t->rng, 2) ? SHUT_WR : SHUT_RDWR);
		} else if (fz_one_in(&t->rng, 10)) {
			for (int k = 0; k < 256; k++)
				if (send(fd, buf, sizeof(buf),
					 MSG_DONTWAIT | MSG_NOSIGNAL) <= 0 &&
				    write(fd, buf, 1) <= 0)
					break;
		} else if (fz_one_in(&t->rng, 2)) {
			if (write(fd, buf, 1 + fz_below(&t->rng, sizeof(buf))) < 0)
				break;
		} else {
			for (int k = 0; k < 64; k++)
				if (read(fd, buf, sizeof(buf)) <= 0)
					break;
		}
		break;
	case FZ_PIPE_R:
		for (int k = 0; k < 64; k++)
			if (read(fd, buf, sizeof(buf)) <= 0)
				break;
		break;
	case FZ_EVENTFD:
		if (fz_one_in(&t->rng, 2))
			(void)!write(fd, &one, sizeof(one));
		else
			(void)!read(fd, &one, sizeof(one));
		break;
	case FZ_SIGNALFD:
		if (fz_one_in(&t->rng, 2))
			kill(getpid(), SIGUSR2);	/* blocked: only pends */
		else
			(void)!read(fd, buf, sizeof(buf));
		break;
	case FZ_FILE_TMP: case FZ_FILE_SCRATCH:
		switch (fz_below(&t->rng, 4)) {
		case 0:
			/* Shrink under the sends, then grow back. */
			if (!ftruncate(fd, fz_below(&t->rng, 64 << 10)))
				(void)!ftruncate(fd, kind == FZ_FILE_TMP ?
						 256 << 10 : 2 << 20);
			break;
		case 1:
			(void)!pwrite(fd, buf, 1 + fz_below(&t->rng, 4096),
				      fz_below(&t->rng, 256 << 10));
			break;
		default:
			/* Out of the page cache: sends meet NOT_RESIDENT. */
			fdatasync(fd);
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		}
		break;
	case FZ_QUEUE:
		p.fd = fd;
		p.events = POLLIN;
		poll(&p, 1, 0);
		break;
	}
}

/* Interrupt another thread: a sleeping EVQ_IOC_WAIT returns EINTR. */
static void op_signal(struct fz_thread *t)
{
	struct fz_thread *o = &fz.thr[fz_below(&t->rng, fz.nthreads)];

	if (!t->in_child && o != t && o->tid)
		pthread_kill(o->tid, SIGUSR1);
}

/*
 * fork(): the child shares every queue, runs a few operations of its own
 * (no fork, no ring consumption) and exits, or sleeps in a wait and is
 * killed; a signalfd it watches loses its wait queue when it exits.
 */
static void op_fork(struct fz_thread *t)
{
	static int children;
	int status, kill_it = fz_one_in(&t->rng, 3);
	pid_t parent = getpid(), pid;

	if (t->in_child ||
	    __atomic_add_fetch(&children, 1, __ATOMIC_RELAXED) > FZ_MAX_CHILDREN) {
		__atomic_sub_fetch(&children, 1, __ATOMIC_RELAXED);
		return;
	}
	pid = fork();
	if (pid == 0) {
		/*
		 * Die with the worker: a hang kills it, and a child left
		 * behind would keep its queues open.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
			_exit(0);
		_exit(fz_child_main(t, 1 + fz_below(&t->rng, 24)));
	}
	if (pid > 0) {
		if (kill_it) {
			usleep(fz_below(&t->rng, 3000));
			kill(pid, SIGKILL);
		}
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		__atomic_add_fetch(&fz.sh->children, 1, __ATOMIC_RELAXED);
		if ((WIFEXITED(status) && WEXITSTATUS(status)) ||
		    (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)) {
			__atomic_add_fetch(&fz.sh->child_failures, 1,
					   __ATOMIC_RELAXED);
			fz_fail(t, "fork", "child %d: status %#x", (int)pid,
				status);
		}
	}
	__atomic_sub_fetch(&children, 1, __ATOMIC_RELAXED);
}

/* The module's counters over netlink, while queues come and go. */
static void op_stats(struct fz_thread *t)
{
	long q = fz_nl_queues_open(), n = fz_nl_dump_queues();

	if (q < 0 || n < 0)
		fz_fail(t, "stats", "GET_STATS %ld, GET_QUEUE dump %ld", q, n);
}

const struct fz_op fz_ops[] = {
	{ "ctl",	20, op_ctl },
	{ "wait",	12, op_wait },
	{ "ring",	12, op_ring },
	{ "poke",	14, op_poke },
	{ "sendfile",	10, op_sendfile },
	{ "setup",	4, op_setup },
	{ "info",	1, op_info },
	{ "cancel",	3, op_cancel },
	{ "unknown",	2, op_unknown },
	{ "mmap",	5, op_mmap },
	{ "unmap",	2, op_unmap },
	{ "close",	4, op_close },
	{ "open",	4, op_open },
	{ "dup",	3, op_dup },
	{ "scm",	2, op_scm },
	{ "epoll",	2, op_epoll },
	{ "signal",	1, op_signal },
	{ "fork",	1, op_fork },
	{ "stats",	1, op_stats },
};
const unsigned int fz_nops = sizeof(fz_ops) / sizeof(fz_ops[0]);

/* Operations --skip named: weight 0. */
uint64_t fz_skip_mask;

static unsigned int fz_weight(unsigned int k)
{
	return fz_skip_mask & (1ULL << k) ? 0 : fz_ops[k].weight;
}

void fz_run_one(struct fz_thread *t)
{
	static unsigned int total;
	unsigned int r, k;

	if (!total) {
		unsigned int sum = 0;

		for (k = 0; k < fz_nops; k++)
			sum += fz_weight(k);
		__atomic_store_n(&total, sum, __ATOMIC_RELAXED);
	}
	if (!fz_ents) {
		fz_ents = calloc(FZ_MAX_ENTRIES + 1, sizeof(*fz_ents));
		if (!fz_ents) {
			perror("evq_fuzz: calloc");
			exit(2);
		}
	}
	r = fz_below(&t->rng, __atomic_load_n(&total, __ATOMIC_RELAXED));
	for (k = 0; k < fz_nops - 1 && r >= fz_weight(k); k++)
		r -= fz_weight(k);
	t->cur = fz_ops[k].name;
	fz_ops[k].run(t);
	t->cur = NULL;
	__atomic_add_fetch(&fz.sh->op[k].calls, 1, __ATOMIC_RELAXED);
}

/* In a forked child: one thread left, so make the pool's locks usable. */
int fz_child_main(struct fz_thread *t, int nops)
{
	int i, sig;

	t->in_child = true;
	fz.local_failures = 0;
	pthread_mutex_init(&fz.pool_lock, NULL);
	for (i = 0; i < FZ_SLOTS; i++)
		pthread_rwlock_init(&fz.slot[i].lock, NULL);
	/*
	 * fork() caught the other threads wherever they were: a slot may
	 * be half closed (its fd gone, or already reused by another slot),
	 * a mapping half unmapped.  Forget what cannot be trusted: fds that
	 * are not open, "queues" that are not, and every mapping (the child
	 * maps its own; the parent's stay, as fork copied them).
	 */
	for (i = 0; i < FZ_SLOTS; i++) {
		struct fz_slot *s = &fz.slot[i];
		struct evq_info info;
		bool torn;

		s->map = NULL;
		s->map_len = 0;
		/*
		 * A change caught half done (odd generation): the slot may
		 * still name a number it closed, which another slot has
		 * since taken, and a close through either would pull the
		 * file from under the other.  Forget it (without a close).
		 */
		torn = s->gen & 1;
		s->gen += torn;
		if (!torn && s->fd >= 0 && fcntl(s->fd, F_GETFD) >= 0 &&
		    (s->kind != FZ_QUEUE ||
		     !ioctl(s->fd, EVQ_IOC_INFO, &info))) {
			/* What we knew may be another queue's: know nothing. */
			if (s->kind == FZ_QUEUE)
				s->qf = fz_qfile_new();
			continue;
		}
		s->fd = -1;
		s->kind = FZ_EMPTY;
		s->qf = NULL;	/* the parent's to free */
		s->gen += 2;
	}
	/* Other threads are gone: signals to them would hit nothing. */
	fz.nthreads = 1;
	fz.thr[0].tid = 0;
	/* A signalfd watched by a queue, freed with this process's sighand. */
	if (fz_one_in(&t->rng, 2))
		fz_slot_open(t, fz_pick_any(t), FZ_SIGNALFD);
	for (int n = 0; n < nops; n++) {
		fz_run_one(t);
		if (fz_one_in(&t->rng, 4)) {
			int q = fz_pick(t, FZ_QUEUE), sf = fz_pick(t, FZ_SIGNALFD);
			struct evq_ctl e = {
				.op = EVQ_CTL_ADD, .fd = fz_fd_of(sf),
				.events = EPOLLIN, .user_data = 99,
			};
			struct evq_ctl_batch b = { (uintptr_t)&e, 1, 0 };

			ioctl(fz_fd_of(q), EVQ_IOC_CTL, &b);
		}
	}
	sig = fz_one_in(&t->rng, 4);
	if (sig) {
		/* Sleep in a wait until killed (or a bounded while). */
		struct evq_wait wt = { .timeout_ns = 20000000, .min_events = 1 };

		i = fz_pick(t, FZ_QUEUE);
		if (fz_known_entries(i))
			ioctl(fz_fd_of(i), EVQ_IOC_WAIT, &wt);
	}
	return fz.local_failures != 0;
}
