// SPDX-License-Identifier: GPL-2.0
/*
 * evq_fuzz: the pool of resources the operations aim at.
 *
 * Slots are filled with fresh resources of a random kind, closed, dup'd
 * over and refilled while other threads use their fd numbers.  Pairs
 * (sockets, pipes) put each end in its own slot, so writing to one slot
 * makes another readable: events happen without bookkeeping.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include "evq_fuzz.h"

#define FZ_TMP_SIZE	(256 << 10)
#define FZ_SCRATCH_SIZE	(2 << 20)

struct fz_qfile *fz_qfile_new(void)
{
	struct fz_qfile *qf = calloc(1, sizeof(*qf));

	if (qf) {
		qf->refs = 1;
		pthread_mutex_init(&qf->consumer, NULL);
	}
	return qf;
}

/* Drop a slot's hold on its queue file; call with fz.pool_lock held. */
void fz_qfile_put_locked(struct fz_qfile *qf)
{
	if (qf && --qf->refs == 0)
		free(qf);
}

int fz_fd_of(int i)
{
	return __atomic_load_n(&fz.slot[i].fd, __ATOMIC_RELAXED);
}

unsigned int fz_gen_of(int i)
{
	return __atomic_load_n(&fz.slot[i].gen, __ATOMIC_ACQUIRE);
}

/*
 * A change of a slot's fd, kind or file begins and ends here, slot
 * write-locked.  The generation is odd in between: a call that read the
 * fd number meanwhile may have run on a number already closed (or given
 * to another file) while the slot still names it, and must not be judged.
 * Comparing generations alone missed that: a call could read the fd
 * after the first bump and finish before the second.
 */
void fz_slot_begin(struct fz_slot *s)
{
	__atomic_add_fetch(&s->gen, 1, __ATOMIC_RELEASE);
}

void fz_slot_end(struct fz_slot *s)
{
	__atomic_add_fetch(&s->gen, 1, __ATOMIC_RELEASE);
}

/* Unmap, close, forget, inside a change begun by fz_slot_begin(). */
static void fz_slot_clear(struct fz_slot *s)
{
	if (s->map)
		munmap(s->map, s->map_len);
	s->map = NULL;
	s->map_len = 0;
	if (s->fd >= 0)
		close(s->fd);
	pthread_mutex_lock(&fz.pool_lock);
	fz_qfile_put_locked(s->qf);
	pthread_mutex_unlock(&fz.pool_lock);
	s->qf = NULL;
	__atomic_store_n(&s->fd, -1, __ATOMIC_RELAXED);
	s->kind = FZ_EMPTY;
}

/* Empty a slot.  Slot write-locked. */
void fz_slot_close_locked(struct fz_slot *s)
{
	fz_slot_begin(s);
	fz_slot_clear(s);
	fz_slot_end(s);
}

/*
 * A connected loopback TCP pair.  Another thread may close or reuse the
 * new fds by number at random before the handshake is done (a reset
 * then drops the pending connection), so the accept never blocks.
 */
static int fz_tcp_pair(int family, int sv[2])
{
	struct sockaddr_storage a = { .ss_family = family };
	struct pollfd pl;
	socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) :
					     sizeof(struct sockaddr_in);
	int l, c, s, one = 1;

	if (family == AF_INET6)
		((struct sockaddr_in6 *)&a)->sin6_addr = in6addr_loopback;
	else
		((struct sockaddr_in *)&a)->sin_addr.s_addr =
			htonl(INADDR_LOOPBACK);
	l = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l < 0)
		return -1;
	if (bind(l, (struct sockaddr *)&a, len) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len)) {
		close(l);
		return -1;
	}
	c = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c < 0) {
		close(l);
		return -1;
	}
	if (connect(c, (struct sockaddr *)&a, len) && errno != EINPROGRESS) {
		close(c);
		close(l);
		return -1;
	}
	pl = (struct pollfd){ .fd = l, .events = POLLIN };
	s = poll(&pl, 1, 1000) == 1 ?
	    accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK) : -1;
	close(l);
	if (s < 0) {
		close(c);
		return -1;
	}
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sv[0] = s;
	sv[1] = c;
	return 0;
}

static int fz_udp_pair(int sv[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct sockaddr_in b;
	socklen_t len = sizeof(b);
	int x, y;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	x = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	y = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (x < 0 || y < 0)
		goto fail;
	if (bind(x, (struct sockaddr *)&a, sizeof(a)) ||
	    bind(y, (struct sockaddr *)&a, sizeof(a)))
		goto fail;
	if (getsockname(y, (struct sockaddr *)&b, &len) ||
	    connect(x, (struct sockaddr *)&b, len))
		goto fail;
	len = sizeof(b);
	if (getsockname(x, (struct sockaddr *)&b, &len) ||
	    connect(y, (struct sockaddr *)&b, len))
		goto fail;
	sv[0] = x;
	sv[1] = y;
	return 0;
fail:
	if (x >= 0)
		close(x);
	if (y >= 0)
		close(y);
	return -1;
}

/* A queue, set up and mapped with some probability.  Slot write-locked. */
static int fz_open_queue(struct fz_thread *t, struct fz_slot *s)
{
	struct evq_setup p = { 0 };
	int fd = open("/dev/evq", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -1;
	s->qf = fz_qfile_new();
	if (!s->qf) {
		close(fd);
		return -1;
	}
	s->fd = fd;
	if (fz_one_in(&t->rng, 5))
		return 0;
	p.cq_entries = 1 + fz_below(&t->rng, fz_one_in(&t->rng, 4) ? 4096 : 64);
	if (ioctl(fd, EVQ_IOC_SETUP, &p))
		return 0;
	s->qf->entries = p.cq_entries;
	s->qf->ring_size = p.ring_size;
	__atomic_store_n(&s->qf->ready, 1, __ATOMIC_RELEASE);
	if (fz_one_in(&t->rng, 4))
		return 0;
	s->map = mmap(NULL, p.ring_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      fd, EVQ_OFF_RING);
	if (s->map == MAP_FAILED) {
		s->map = NULL;
		return 0;
	}
	s->map_len = p.ring_size;
	return 0;
}

static int fz_open_file(struct fz_thread *t, const char *path)
{
	return open(path, (fz_one_in(&t->rng, 2) ? O_RDONLY : O_RDWR) |
		    O_CLOEXEC);
}

/* Make one fd of @kind (the single-ended kinds). */
static int fz_open_single(struct fz_thread *t, int kind)
{
	sigset_t m;

	switch (kind) {
	case FZ_EVENTFD:
		return eventfd(fz_below(&t->rng, 2), EFD_CLOEXEC | EFD_NONBLOCK |
			       (fz_one_in(&t->rng, 2) ? EFD_SEMAPHORE : 0));
	case FZ_EPOLL:
		return epoll_create1(EPOLL_CLOEXEC);
	case FZ_SIGNALFD:
		sigemptyset(&m);
		sigaddset(&m, SIGUSR2);
		return signalfd(-1, &m, SFD_CLOEXEC | SFD_NONBLOCK);
	case FZ_FILE_TMP:
		return fz_open_file(t, fz.tmp_path);
	case FZ_FILE_SCRATCH:
		return fz_open_file(t, fz.scratch ? fz.scratch_path :
					  fz.tmp_path);
	}
	return -1;
}

static bool fz_is_pair(int kind)
{
	return kind == FZ_TCP || kind == FZ_UNIX || kind == FZ_UDP ||
	       kind == FZ_PIPE_R;
}

/*
 * Fill slot @i with a new resource of @kind (FZ_EMPTY: a random one),
 * closing what it held.  A pair takes a second, random slot too.
 * Returns 0 or -1 (the slot is left empty).
 */
int fz_slot_open(struct fz_thread *t, int i, int kind)
{
	int j = -1, a, b, sv[2] = { -1, -1 }, ret = 0;
	struct fz_slot *s = &fz.slot[i];

	if (kind == FZ_EMPTY) {
		/* Queues and sockets matter most: weigh them up. */
		static const int pick[] = {
			FZ_QUEUE, FZ_QUEUE, FZ_QUEUE, FZ_QUEUE, FZ_TCP, FZ_TCP,
			FZ_TCP, FZ_UNIX, FZ_UDP, FZ_PIPE_R, FZ_EVENTFD,
			FZ_EPOLL, FZ_SIGNALFD, FZ_FILE_TMP, FZ_FILE_SCRATCH,
			FZ_FILE_SCRATCH,
		};
		kind = pick[fz_below(&t->rng, sizeof(pick) / sizeof(pick[0]))];
	}
	if (fz_is_pair(kind)) {
		j = fz_below(&t->rng, FZ_SLOTS - 1);
		j += j >= i;
	}
	a = j < 0 || i < j ? i : j;
	b = j < 0 ? -1 : (i < j ? j : i);
	pthread_rwlock_wrlock(&fz.slot[a].lock);
	if (b >= 0)
		pthread_rwlock_wrlock(&fz.slot[b].lock);
	fz_slot_begin(s);
	fz_slot_clear(s);
	if (j >= 0) {
		fz_slot_begin(&fz.slot[j]);
		fz_slot_clear(&fz.slot[j]);
	}

	switch (kind) {
	case FZ_QUEUE:
		ret = fz_open_queue(t, s);
		break;
	case FZ_TCP:
		ret = fz_tcp_pair(fz_one_in(&t->rng, 4) ? AF_INET6 : AF_INET, sv);
		if (ret)	/* no IPv6 on lo: IPv4 then */
			ret = fz_tcp_pair(AF_INET, sv);
		break;
	case FZ_UNIX:
		ret = socketpair(AF_UNIX, (fz_one_in(&t->rng, 3) ?
					   SOCK_DGRAM : SOCK_STREAM) |
				 SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv);
		break;
	case FZ_UDP:
		ret = fz_udp_pair(sv);
		break;
	case FZ_PIPE_R:
		ret = pipe2(sv, O_CLOEXEC | O_NONBLOCK);
		break;
	default:
		s->fd = fz_open_single(t, kind);
		ret = s->fd < 0 ? -1 : 0;
		break;
	}
	if (!ret && j >= 0) {
		s->fd = sv[0];
		fz.slot[j].fd = sv[1];
		fz.slot[j].kind = kind == FZ_PIPE_R ? FZ_PIPE_W : kind;
	}
	if (ret)
		fz_slot_clear(s);
	else
		s->kind = kind;
	if (j >= 0)
		fz_slot_end(&fz.slot[j]);
	fz_slot_end(s);
	if (b >= 0)
		pthread_rwlock_unlock(&fz.slot[b].lock);
	pthread_rwlock_unlock(&fz.slot[a].lock);
	return ret;
}

/* A random slot, preferring @kind: falls back on any slot. */
int fz_pick(struct fz_thread *t, int kind)
{
	int start = fz_below(&t->rng, FZ_SLOTS);

	for (int n = 0; n < FZ_SLOTS; n++) {
		int i = (start + n) % FZ_SLOTS;
		int k = __atomic_load_n(&fz.slot[i].kind, __ATOMIC_RELAXED);

		if (k == kind || (kind == FZ_FILE_TMP && k == FZ_FILE_SCRATCH))
			return i;
	}
	return start;
}

int fz_pick_any(struct fz_thread *t)
{
	return fz_below(&t->rng, FZ_SLOTS);
}

/*
 * An fd number for a CTL entry or a sendfile: mostly a pool member, some
 * closed or never-opened numbers, negative and huge ones.
 */
int fz_random_fd(struct fz_thread *t)
{
	switch (fz_below(&t->rng, 16)) {
	case 0:
		return -1;
	case 1:
		return (int)fz_next(&t->rng);
	case 2:
		return 3 + fz_below(&t->rng, 200);	/* maybe closed */
	case 3:
		return 0x7fffffff;
	default:
		return fz_fd_of(fz_pick_any(t));
	}
}

static int fz_make_file(const char *path, size_t size)
{
	static char buf[65536];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = 'a' + i % 26;
	for (size_t off = 0; off < size; off += sizeof(buf))
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
			close(fd);
			return -1;
		}
	close(fd);
	return 0;
}

/* The files, the bad-pointer pages, empty slots.  Returns 0 or -1. */
int fz_pool_init(void)
{
	long pg = sysconf(_SC_PAGESIZE);

	pthread_mutex_init(&fz.pool_lock, NULL);
	for (int i = 0; i < FZ_SLOTS; i++) {
		pthread_rwlock_init(&fz.slot[i].lock, NULL);
		fz.slot[i].fd = -1;
	}
	snprintf(fz.tmp_path, sizeof(fz.tmp_path), "/dev/shm/evq_fuzz.%d",
		 (int)getpid());
	if (fz_make_file(fz.tmp_path, FZ_TMP_SIZE)) {
		perror("evq_fuzz: /dev/shm file");
		return -1;
	}
	if (fz.scratch) {
		snprintf(fz.scratch_path, sizeof(fz.scratch_path),
			 "%s/evq_fuzz.%d", fz.scratch, (int)getpid());
		if (fz_make_file(fz.scratch_path, FZ_SCRATCH_SIZE)) {
			perror("evq_fuzz: scratch file");
			return -1;
		}
	}
	fz.page_none = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	fz.page_ro = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	if (fz.page_none == MAP_FAILED || fz.page_ro == MAP_FAILED) {
		perror("evq_fuzz: mmap");
		return -1;
	}
	return 0;
}

/* Fill every empty slot. */
void fz_pool_fill(struct fz_thread *t)
{
	for (int i = 0; i < FZ_SLOTS; i++)
		if (__atomic_load_n(&fz.slot[i].kind, __ATOMIC_RELAXED) ==
		    FZ_EMPTY)
			fz_slot_open(t, i, FZ_EMPTY);
}

/* Close everything the pool holds and remove the files. */
void fz_pool_destroy(void)
{
	long pg = sysconf(_SC_PAGESIZE);

	for (int i = 0; i < FZ_SLOTS; i++) {
		pthread_rwlock_wrlock(&fz.slot[i].lock);
		fz_slot_close_locked(&fz.slot[i]);
		pthread_rwlock_unlock(&fz.slot[i].lock);
	}
	unlink(fz.tmp_path);
	if (fz.scratch)
		unlink(fz.scratch_path);
	munmap(fz.page_none, pg);
	munmap(fz.page_ro, pg);
}
