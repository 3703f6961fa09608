// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The epoll backend's emulation of evq_sendfile() and evq_cancel().
 *
 * The module hands page-cache pages to the socket without waiting for the
 * disk or for socket space.  Userspace cannot look at the page cache, but
 * preadv2(RWF_NOWAIT) reads only what is there, so it serves as both the
 * residency probe and the read: the bytes go through a bounce buffer to
 * send(MSG_DONTWAIT).  What the module does with readahead and page-unlock
 * callbacks, a small pool of helper threads does here by reading the
 * missing window with a plain, blocking pread().
 *
 * Asynchronous sends continue when a dup() of their socket turns writable
 * or when a helper has read their window.  Both wake the queue through one
 * internal epoll fd nested in the queue's epoll set under EVQ__EP_SF_DATA;
 * the work is then done inside the caller's own evq_wait() and
 * evq_harvest() (evq__ep_sf_drive()), so no thread of ours ever touches
 * the caller's socket.  Each socket is watched once, however many sends
 * use it: the kernel refuses a file more than a few hundred wake-up paths
 * through nested epoll sets (EINVAL from EPOLL_CTL_ADD).
 *
 * Finished operations are kept as they are, with their one or two
 * completion entries, until evq_harvest() takes them: posting never
 * allocates, so it cannot fail.
 *
 * Locking: sf->run is held by whoever sends or touches the socket watches
 * (evq_sendfile(), the driver, evq_cancel()); it also owns the bounce
 * buffer and sf->socks.  sf->lock guards what the helpers share: the
 * lists, the counts, and each operation's where and cancelled.  Order:
 * run, then lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "evq_private.h"

/* Bytes read and sent per step: a few steps fill a socket buffer. */
#define EVQ__SF_BUF		(256U * 1024)
/* A helper's buffer: page-in reads are thrown away, only the cache counts. */
#define EVQ__SF_SCRATCH		(128U * 1024)
#define EVQ__SF_MIN_THREADS	2U
#define EVQ__SF_MAX_THREADS	4U
/* Internal events taken per epoll_wait() on the nested epoll fd. */
#define EVQ__SF_EVENTS		64

struct evq__link {
	struct evq__link *prev, *next;
};

static void evq__list_init(struct evq__link *h)
{
	h->prev = h;
	h->next = h;
}

static bool evq__list_empty(const struct evq__link *h)
{
	return h->next == h;
}

static void evq__list_add(struct evq__link *h, struct evq__link *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

/* Unlink n; it stays a valid empty list so that a second delete is safe. */
static void evq__list_del(struct evq__link *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	evq__list_init(n);
}

/* Move everything on from to the empty list to; from ends up empty. */
static void evq__list_move_all(struct evq__link *from, struct evq__link *to)
{
	evq__list_init(to);
	if (evq__list_empty(from))
		return;
	to->next = from->next;
	to->prev = from->prev;
	to->next->prev = to;
	to->prev->next = to;
	evq__list_init(from);
}

enum evq__op_kind {
	EVQ__OP_PAGEIN,		/* EVQ_SF_NOTIFY: posts PAGES_READY */
	EVQ__OP_SEND,		/* EVQ_SF_ASYNC: posts SENDFILE */
};

/* A socket that asynchronous sends write to, watched once for all of them. */
struct evq__sock {
	struct evq__link link;		/* sf->socks */
	struct evq__link waiters;	/* sends waiting for EPOLLOUT (qlink) */
	dev_t dev;
	ino_t ino;
	int fd;				/* our dup: the caller's may close */
	unsigned int refs;		/* sends that use it */
	bool added;			/* registered in sf->iep */
};

/* Where an operation is; decides who may touch it and how to cancel it. */
enum evq__op_where {
	EVQ__AT_START,		/* reserved by evq_sendfile(), not started */
	EVQ__AT_RUN,		/* being stepped under sf->run */
	EVQ__AT_JOBQ,		/* on sf->jobs, waiting for a helper */
	EVQ__AT_HELPER,		/* a helper is reading its window */
	EVQ__AT_READY,		/* on sf->ready: window read, step it again */
	EVQ__AT_SOCK,		/* on its socket's waiters, for EPOLLOUT */
	EVQ__AT_DONE,		/* finishing or finished: not cancellable */
};

struct evq__op {
	struct evq__link link;		/* sf->active, then sf->done */
	struct evq__link qlink;		/* sf->jobs, sf->ready or waiters */
	uint64_t user_data;
	enum evq__op_kind kind;
	enum evq__op_where where;
	bool cancelled;
	bool more;			/* EVQ_SF_MORE */
	int in_fd;			/* our dup: the caller's may close */
	struct evq__sock *sock;		/* asynchronous: where to send */
	uint64_t off, end;		/* asynchronous: what is left to send */
	uint64_t sent;
	uint64_t pin_off, pin_len;	/* the window to page in */
	int pin_res;			/* the page-in's bytes or -errno */
	unsigned int ncqe, cqe_pos;
	struct evq_cqe cqe[2];
};

#define evq__op_of(ptr, member) \
	((struct evq__op *)((char *)(ptr) - offsetof(struct evq__op, member)))
#define evq__sock_of(ptr) \
	((struct evq__sock *)((char *)(ptr) - offsetof(struct evq__sock, link)))

struct evq__sf {
	pthread_mutex_t run;
	pthread_mutex_t lock;
	pthread_cond_t work;		/* helpers sleep here for jobs */
	int iep;			/* nested epoll: efd and socket dups */
	int efd;			/* eventfd: a post or a page-in ended */
	unsigned char *buf;		/* bounce buffer, under run */
	struct evq__link active;	/* operations not finished */
	struct evq__link done;		/* finished, entries not harvested */
	struct evq__link jobs;		/* page-ins no helper has taken */
	struct evq__link ready;		/* sends whose page-in ended */
	struct evq__link socks;		/* sockets of sends, under run */
	unsigned int nops;		/* operations in flight (max_ops) */
	unsigned int pending;		/* entries on done; read unlocked */
	unsigned int njobs, idle, nthreads;
	bool stop;
	pthread_t threads[EVQ__SF_MAX_THREADS];
};

/* ---------------------------------------------------------------------
 * State: created at the first evq_sendfile(), freed by evq_close()
 */

static void evq__sf_free(struct evq__sf *s)
{
	if (s->iep >= 0)
		close(s->iep);
	if (s->efd >= 0)
		close(s->efd);
	free(s->buf);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->run);
	free(s);
}

/*
 * The eventfd sits in the nested epoll fd, and that one in the queue's
 * epoll set: a helper's write then wakes evq_wait() and makes the queue
 * fd readable to a caller who polls it from outside.
 */
static int evq__sf_nest(struct evq__sf *s, int qfd)
{
	struct epoll_event ev = { .events = EPOLLIN };

	s->iep = epoll_create1(EPOLL_CLOEXEC);
	if (s->iep < 0)
		return -errno;
	s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->efd < 0)
		return -errno;
	ev.data.ptr = NULL;
	if (epoll_ctl(s->iep, EPOLL_CTL_ADD, s->efd, &ev) < 0)
		return -errno;
	ev.data.u64 = EVQ__EP_SF_DATA;
	if (epoll_ctl(qfd, EPOLL_CTL_ADD, s->iep, &ev) < 0)
		return -errno;
	return 0;
}

static int evq__sf_new(int qfd, struct evq__sf **out)
{
	struct evq__sf *s;
	void *buf;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->iep = -1;
	s->efd = -1;
	pthread_mutex_init(&s->run, NULL);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	evq__list_init(&s->active);
	evq__list_init(&s->done);
	evq__list_init(&s->jobs);
	evq__list_init(&s->ready);
	evq__list_init(&s->socks);
	/* Page-aligned: reads into it copy whole pages where they can. */
	if (posix_memalign(&buf, 4096, EVQ__SF_BUF)) {
		evq__sf_free(s);
		return -ENOMEM;
	}
	s->buf = buf;
	err = evq__sf_nest(s, qfd);
	if (err) {
		evq__sf_free(s);
		return err;
	}
	*out = s;
	return 0;
}

static struct evq__sf *evq__sf_peek(struct evq *q)
{
	return __atomic_load_n(&q->ep_sf, __ATOMIC_ACQUIRE);
}

/*
 * Exclusive waiters may look at q->ep_sf while the queue's thread creates
 * it: publish it only once it is complete.
 */
static int evq__sf_get(struct evq *q, struct evq__sf **out)
{
	struct evq__sf *s = evq__sf_peek(q);
	int err;

	if (!s) {
		err = evq__sf_new(q->fd, &s);
		if (err)
			return err;
		__atomic_store_n(&q->ep_sf, (void *)s, __ATOMIC_RELEASE);
	}
	*out = s;
	return 0;
}

/* ---------------------------------------------------------------------
 * Validation: the module's checks, in the module's errnos
 */

static int evq__sf_check_args(const struct evq_sendfile *sf)
{
	if (sf->resv0 || sf->resv || (sf->flags & ~EVQ_SF_FLAGS))
		return -EINVAL;
	/* A notification is for the caller's next try; async has none. */
	if ((sf->flags & EVQ_SF_NOTIFY) && (sf->flags & EVQ_SF_ASYNC))
		return -EINVAL;
	return 0;
}

static int evq__sockopt(int fd, int opt, int *val)
{
	socklen_t len = sizeof(*val);

	return getsockopt(fd, SOL_SOCKET, opt, val, &len) < 0 ? -errno : 0;
}

/* Only TCP is promised: MSG_MORE, EPOLLOUT and short sends mean the same. */
static int evq__sf_check_sock(int fd)
{
	int type, proto, dom, err;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	err = evq__sockopt(fd, SO_TYPE, &type);
	if (!err)
		err = evq__sockopt(fd, SO_PROTOCOL, &proto);
	if (!err)
		err = evq__sockopt(fd, SO_DOMAIN, &dom);
	if (err)
		return err;
	if (type != SOCK_STREAM || proto != IPPROTO_TCP ||
	    (dom != AF_INET && dom != AF_INET6))
		return -EOPNOTSUPP;
	return 0;
}

static int evq__sf_check_file(int fd)
{
	struct stat st;
	int fl;

	fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -EBADF;
	/* The module reads through the file: it must be open for reading. */
	if ((fl & O_PATH) || (fl & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	return 0;
}

/* Offsets are loff_t in the kernel, and a count must fit in a cqe's res. */
static int evq__sf_check_range(const struct evq_sendfile *sf)
{
	if (sf->count > EVQ_SENDFILE_MAX || sf->offset > INT64_MAX ||
	    sf->count > INT64_MAX - sf->offset)
		return -EINVAL;
	return 0;
}

static int evq__sf_check(const struct evq_sendfile *sf)
{
	int err;

	err = evq__sf_check_args(sf);
	if (!err)
		err = evq__sf_check_sock(sf->out_fd);
	if (!err)
		err = evq__sf_check_file(sf->in_fd);
	if (!err)
		err = evq__sf_check_range(sf);
	return err;
}

/* ---------------------------------------------------------------------
 * Moving bytes
 */

/*
 * Read what the page cache holds of [off, off + len) without waiting for
 * the disk.  Returns the bytes read (short where the cached part ends, 0
 * at end of file), -EAGAIN when the first page is not cached, or -errno.
 */
static ssize_t evq__sf_probe(int fd, void *buf, size_t len, uint64_t off)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	ssize_t n;

	do
		n = preadv2(fd, &iov, 1, (off_t)off, RWF_NOWAIT);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno != EOPNOTSUPP)
		return -errno;
	/*
	 * The file cannot say what it has cached (a filesystem without
	 * nowait reads): read it anyway, which may wait for the disk.
	 */
	do
		n = pread(fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t evq__sf_send(int fd, const void *buf, size_t len, bool more)
{
	int flags = MSG_DONTWAIT | MSG_NOSIGNAL | (more ? MSG_MORE : 0);
	ssize_t n;

	do
		n = send(fd, buf, len, flags);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* One run of sends from off towards end, and why it stopped. */
struct evq__pump {
	uint64_t off;		/* in: first byte; out: first byte not sent */
	uint64_t end;		/* in: the range's end */
	uint64_t sent;		/* out: bytes sent */
	unsigned int stop;	/* out: EVQ_SF_STOP_* */
	int error;		/* out: -errno for EVQ_SF_STOP_ERROR */
	bool eof;		/* out: the file ended before end */
};

/*
 * Send cached bytes until the range ends, the socket is full, a page is
 * missing or an error: never waits.  A short send loses the unsent rest
 * of the buffer, which the next run reads again.
 */
static void evq__sf_pump(struct evq__sf *s, int in, int out, bool more,
			 struct evq__pump *p)
{
	ssize_t n, w;
	size_t want;

	p->sent = 0;
	p->error = 0;
	p->eof = false;
	while (p->off < p->end) {
		want = p->end - p->off < EVQ__SF_BUF ?
		       (size_t)(p->end - p->off) : EVQ__SF_BUF;
		n = evq__sf_probe(in, s->buf, want, p->off);
		if (n == -EAGAIN) {
			p->stop = EVQ_SF_STOP_NOT_RESIDENT;
			return;
		}
		if (n <= 0) {
			p->eof = !n;
			p->stop = n ? EVQ_SF_STOP_ERROR : EVQ_SF_STOP_DONE;
			p->error = (int)n;
			return;
		}
		/* MSG_MORE only on the range's last bytes, as asked. */
		w = evq__sf_send(out, s->buf, (size_t)n,
				 more && p->off + (uint64_t)n == p->end);
		if (w == -EAGAIN) {
			p->stop = EVQ_SF_STOP_SOCK_FULL;
			return;
		}
		if (w < 0) {
			p->stop = EVQ_SF_STOP_ERROR;
			p->error = (int)w;
			return;
		}
		p->off += (uint64_t)w;
		p->sent += (uint64_t)w;
		if (w < n) {
			p->stop = EVQ_SF_STOP_SOCK_FULL;
			return;
		}
	}
	p->stop = EVQ_SF_STOP_DONE;
}

/*
 * Read [off, off + len) through the page cache, waiting as needed.
 * Returns the bytes now cached (short at end of file) or -errno.
 */
static int evq__sf_pagein(int fd, uint64_t off, uint64_t len, void *scratch)
{
	uint64_t done = 0;
	size_t want;
	ssize_t n;

	/* One hint for the whole window, so the disk sees one large read. */
	posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
	while (done < len) {
		want = len - done < EVQ__SF_SCRATCH ?
		       (size_t)(len - done) : EVQ__SF_SCRATCH;
		n = pread(fd, scratch, want, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return done ? (int)done : -errno;
		if (!n)
			break;
		done += (uint64_t)n;
	}
	return (int)done;
}

/* ---------------------------------------------------------------------
 * Operations: reserve, post, drop
 */

static void evq__sf_kick(struct evq__sf *s)
{
	uint64_t one = 1;

	/* Fails only when the counter is near overflow: it is set then. */
	if (write(s->efd, &one, sizeof(one)) < 0)
		return;
}

static void evq__sf_unkick(struct evq__sf *s)
{
	uint64_t v;

	/* EAGAIN when nobody kicked: the sockets woke us. */
	if (read(s->efd, &v, sizeof(v)) < 0)
		return;
}

/*
 * The socket's shared watch, found by the socket's identity (a dup of
 * the caller's fd is the same socket); created with its own dup.  Run
 * held.  A linear search: max_ops bounds the list.
 */
static int evq__sock_get(struct evq__sf *s, int fd, struct evq__sock **out)
{
	struct evq__sock *k;
	struct evq__link *l;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	for (l = s->socks.next; l != &s->socks; l = l->next) {
		k = evq__sock_of(l);
		if (k->dev == st.st_dev && k->ino == st.st_ino) {
			k->refs++;
			*out = k;
			return 0;
		}
	}
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (k->fd < 0) {
		free(k);
		return -errno;
	}
	k->dev = st.st_dev;
	k->ino = st.st_ino;
	k->refs = 1;
	evq__list_init(&k->waiters);
	evq__list_add(&s->socks, &k->link);
	*out = k;
	return 0;
}

/*
 * Drop a send's reference; the last one deletes the registration, which
 * must be explicit: epoll keeps it while any descriptor of the socket is
 * open, and the caller's is.  Run held.
 */
static void evq__sock_put(struct evq__sf *s, struct evq__sock *k)
{
	if (--k->refs)
		return;
	if (k->added)
		epoll_ctl(s->iep, EPOLL_CTL_DEL, k->fd, NULL);
	close(k->fd);
	evq__list_del(&k->link);
	free(k);
}

/*
 * Reserve an operation against max_ops and take our own references to
 * the files, all before anything is sent, so that a refusal (-EBUSY,
 * -EMFILE, -ENOMEM) has no side effect.  Run held for a send.
 */
static int evq__op_new(struct evq__sf *s, const struct evq_sendfile *sf,
		       enum evq__op_kind kind, struct evq__op **out)
{
	struct evq__op *op;
	int err;

	pthread_mutex_lock(&s->lock);
	if (s->nops >= EVQ__EP_MAX_OPS) {
		pthread_mutex_unlock(&s->lock);
		return -EBUSY;
	}
	s->nops++;
	pthread_mutex_unlock(&s->lock);

	op = calloc(1, sizeof(*op));
	if (!op) {
		err = -ENOMEM;
		goto out_unreserve;
	}
	evq__list_init(&op->link);
	evq__list_init(&op->qlink);
	op->kind = kind;
	op->where = EVQ__AT_START;
	op->user_data = sf->user_data;
	op->more = sf->flags & EVQ_SF_MORE;
	op->in_fd = fcntl(sf->in_fd, F_DUPFD_CLOEXEC, 0);
	if (op->in_fd < 0) {
		err = -errno;
		goto out_free;
	}
	if (kind == EVQ__OP_SEND) {
		err = evq__sock_get(s, sf->out_fd, &op->sock);
		if (err)
			goto out_close;
	}
	pthread_mutex_lock(&s->lock);
	evq__list_add(&s->active, &op->link);
	pthread_mutex_unlock(&s->lock);
	*out = op;
	return 0;
out_close:
	close(op->in_fd);
out_free:
	free(op);
out_unreserve:
	pthread_mutex_lock(&s->lock);
	s->nops--;
	pthread_mutex_unlock(&s->lock);
	return err;
}

/*
 * Let go of the files.  Sends hold a socket and always finish under run;
 * a helper may finish a page-in, which has none.
 */
static void evq__op_release(struct evq__sf *s, struct evq__op *op)
{
	if (op->sock)
		evq__sock_put(s, op->sock);
	op->sock = NULL;
	if (op->in_fd >= 0)
		close(op->in_fd);
	op->in_fd = -1;
}

/* An operation that never started: undo evq__op_new(). */
static void evq__op_drop(struct evq__sf *s, struct evq__op *op)
{
	evq__op_release(s, op);
	pthread_mutex_lock(&s->lock);
	evq__list_del(&op->link);
	s->nops--;
	pthread_mutex_unlock(&s->lock);
	free(op);
}

/* The entries are in op->cqe: hand them to evq_harvest() and wake it. */
static void evq__op_post(struct evq__sf *s, struct evq__op *op)
{
	evq__op_release(s, op);
	pthread_mutex_lock(&s->lock);
	evq__list_del(&op->link);
	op->where = EVQ__AT_DONE;
	s->nops--;
	evq__list_add(&s->done, &op->link);
	__atomic_store_n(&s->pending, s->pending + op->ncqe, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->lock);
	evq__sf_kick(s);
}

static struct evq_cqe evq__cqe(uint64_t user_data, int res, uint32_t flags)
{
	struct evq_cqe c = {
		.user_data = user_data,
		.res = res,
		.flags = flags,
	};

	return c;
}

static void evq__op_finish_pagein(struct evq__sf *s, struct evq__op *op,
				  int res)
{
	op->cqe[0] = evq__cqe(op->user_data, res, EVQ_CQE_PAGES_READY);
	op->ncqe = 1;
	evq__op_post(s, op);
}

/*
 * An error after some bytes went still reports them, flagged MORE, so
 * the caller knows where the stream stands; then the error.
 */
static void evq__op_finish_send(struct evq__sf *s, struct evq__op *op,
				int err)
{
	unsigned int n = 0;

	if (err && op->sent)
		op->cqe[n++] = evq__cqe(op->user_data, (int)op->sent,
					EVQ_CQE_SENDFILE | EVQ_CQEF_MORE);
	op->cqe[n++] = evq__cqe(op->user_data, err ? err : (int)op->sent,
				EVQ_CQE_SENDFILE);
	op->ncqe = n;
	evq__op_post(s, op);
}

static void evq__op_finish(struct evq__sf *s, struct evq__op *op, int err)
{
	if (op->kind == EVQ__OP_PAGEIN)
		evq__op_finish_pagein(s, op, err);
	else
		evq__op_finish_send(s, op, err);
}

/* ---------------------------------------------------------------------
 * The helper pool
 */

/* A helper is done with op's window; lock held on entry and exit. */
static void evq__sf_paged(struct evq__sf *s, struct evq__op *op, int res)
{
	bool cancelled = op->cancelled;

	s->idle++;
	if (op->kind == EVQ__OP_SEND) {
		/* Sending is the driver's: queue it and wake the queue. */
		op->pin_res = res;
		op->where = EVQ__AT_READY;
		evq__list_add(&s->ready, &op->qlink);
		pthread_mutex_unlock(&s->lock);
		evq__sf_kick(s);
	} else {
		/* Not cancellable any more: a late cancel must not count it. */
		op->where = EVQ__AT_DONE;
		pthread_mutex_unlock(&s->lock);
		evq__op_finish_pagein(s, op, cancelled ? -ECANCELED : res);
	}
	pthread_mutex_lock(&s->lock);
}

static void *evq__sf_helper(void *arg)
{
	struct evq__sf *s = arg;
	struct evq__op *op;
	void *scratch;
	int res;

	scratch = malloc(EVQ__SF_SCRATCH);
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->stop && evq__list_empty(&s->jobs))
			pthread_cond_wait(&s->work, &s->lock);
		if (s->stop)
			break;
		op = evq__op_of(s->jobs.next, qlink);
		evq__list_del(&op->qlink);
		s->njobs--;
		s->idle--;
		op->where = EVQ__AT_HELPER;
		pthread_mutex_unlock(&s->lock);

		res = scratch ? evq__sf_pagein(op->in_fd, op->pin_off,
					       op->pin_len, scratch) : -ENOMEM;

		pthread_mutex_lock(&s->lock);
		evq__sf_paged(s, op, res);
	}
	pthread_mutex_unlock(&s->lock);
	free(scratch);
	return NULL;
}

/*
 * Helpers run with every signal blocked: the caller's handlers are meant
 * for the caller's threads, and a helper's pread() must not see EINTR.
 */
static int evq__sf_spawn(struct evq__sf *s)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&s->threads[s->nthreads], NULL, evq__sf_helper,
			     s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		return -err;
	s->nthreads++;
	s->idle++;
	return 0;
}

/*
 * Helpers start with the first page-in, two of them, and grow to four
 * while jobs outnumber idle helpers.  Lock held.
 */
static int evq__sf_grow(struct evq__sf *s)
{
	int err;

	while (s->nthreads < EVQ__SF_MAX_THREADS &&
	       (s->nthreads < EVQ__SF_MIN_THREADS || s->njobs > s->idle)) {
		err = evq__sf_spawn(s);
		if (err)
			return s->nthreads ? 0 : err;
	}
	return 0;
}

/* Page in op's window [pin_off, pin_off + pin_len) on a helper. */
static void evq__sf_submit(struct evq__sf *s, struct evq__op *op)
{
	int err;

	pthread_mutex_lock(&s->lock);
	op->where = EVQ__AT_JOBQ;
	evq__list_add(&s->jobs, &op->qlink);
	s->njobs++;
	err = evq__sf_grow(s);
	if (err) {
		evq__list_del(&op->qlink);
		s->njobs--;
		op->where = EVQ__AT_RUN;
	} else {
		pthread_cond_signal(&s->work);
	}
	pthread_mutex_unlock(&s->lock);
	if (err)
		evq__op_finish(s, op, err);
}

static void evq__op_window(struct evq__op *op, uint64_t off, uint64_t end)
{
	op->pin_off = off;
	op->pin_len = end - off < EVQ__EP_SF_WINDOW ?
		      end - off : EVQ__EP_SF_WINDOW;
}

/* ---------------------------------------------------------------------
 * Synchronous sends
 */

static int evq__sf_sync(struct evq__sf *s, struct evq_sendfile *sf)
{
	struct evq__pump p = {
		.off = sf->offset,
		.end = sf->offset + sf->count,
	};
	struct evq__op *op = NULL;
	int err;

	/* Reserve the notification first: -EBUSY must come before a send. */
	if (sf->flags & EVQ_SF_NOTIFY) {
		err = evq__op_new(s, sf, EVQ__OP_PAGEIN, &op);
		if (err)
			return err;
	}
	pthread_mutex_lock(&s->run);
	evq__sf_pump(s, sf->in_fd, sf->out_fd, sf->flags & EVQ_SF_MORE, &p);
	if (op && p.stop == EVQ_SF_STOP_NOT_RESIDENT) {
		evq__op_window(op, p.off, p.end);
		evq__sf_submit(s, op);
		op = NULL;
	}
	pthread_mutex_unlock(&s->run);
	if (op)
		evq__op_drop(s, op);

	if (p.stop == EVQ_SF_STOP_ERROR && !p.sent)
		return p.error;
	sf->sent = p.sent;
	sf->stop = p.stop;
	sf->error = p.stop == EVQ_SF_STOP_ERROR ? p.error : 0;
	return (int)p.sent;
}

/* ---------------------------------------------------------------------
 * Asynchronous sends
 */

/*
 * Wait for EPOLLOUT on op's socket.  Oneshot: the driver takes all the
 * socket's waiters on one event, and whoever still finds it full arms it
 * again.  Run held.
 */
static int evq__op_arm(struct evq__sf *s, struct evq__op *op)
{
	struct evq__sock *k = op->sock;
	struct epoll_event ev = {
		.events = EPOLLOUT | EPOLLONESHOT,
		.data.ptr = k,
	};
	int err = 0;

	if (epoll_ctl(s->iep, k->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
		      k->fd, &ev) < 0)
		err = -errno;
	else
		k->added = true;
	if (!err) {
		pthread_mutex_lock(&s->lock);
		op->where = EVQ__AT_SOCK;
		evq__list_add(&k->waiters, &op->qlink);
		pthread_mutex_unlock(&s->lock);
	}
	return err;
}

/* Send what can be sent now, then wait for whatever stopped it; run held. */
static void evq__op_step(struct evq__sf *s, struct evq__op *op)
{
	struct evq__pump p = { .off = op->off, .end = op->end };
	int err;

	evq__sf_pump(s, op->in_fd, op->sock->fd, op->more, &p);
	op->off = p.off;
	op->sent += p.sent;
	switch (p.stop) {
	case EVQ_SF_STOP_SOCK_FULL:
		err = evq__op_arm(s, op);
		if (err)
			evq__op_finish_send(s, op, err);
		return;
	case EVQ_SF_STOP_NOT_RESIDENT:
		evq__op_window(op, op->off, op->end);
		evq__sf_submit(s, op);
		return;
	case EVQ_SF_STOP_ERROR:
		evq__op_finish_send(s, op, p.error);
		return;
	}
	/* The end was snapshotted at the start: an early EOF is truncation. */
	evq__op_finish_send(s, op, p.eof ? -ENODATA : 0);
}

static int evq__sf_async(struct evq__sf *s, const struct evq_sendfile *sf)
{
	struct evq__op *op;
	struct stat st;
	uint64_t size;
	int err;

	pthread_mutex_lock(&s->run);
	err = evq__op_new(s, sf, EVQ__OP_SEND, &op);
	if (!err && fstat(op->in_fd, &st) < 0) {
		err = -errno;
		evq__op_drop(s, op);
	}
	if (err) {
		pthread_mutex_unlock(&s->run);
		return err;
	}
	/* The range is what the file holds now; a later growth is not sent. */
	size = (uint64_t)st.st_size;
	op->off = sf->offset;
	op->end = sf->offset + sf->count;
	if (op->end > size)
		op->end = size > op->off ? size : op->off;
	op->where = EVQ__AT_RUN;
	evq__op_step(s, op);
	pthread_mutex_unlock(&s->run);
	return 0;
}

/*
 * A socket turned writable: step each send that waited for it.  They are
 * taken off first, since a step may wait on the socket again; the socket
 * outlives the loop, as every send taken holds a reference.  Run held.
 */
static void evq__sock_ready(struct evq__sf *s, struct evq__sock *k)
{
	struct evq__link todo;
	struct evq__op *op;

	pthread_mutex_lock(&s->lock);
	evq__list_move_all(&k->waiters, &todo);
	pthread_mutex_unlock(&s->lock);

	while (!evq__list_empty(&todo)) {
		op = evq__op_of(todo.next, qlink);
		pthread_mutex_lock(&s->lock);
		evq__list_del(&op->qlink);
		op->where = EVQ__AT_RUN;
		pthread_mutex_unlock(&s->lock);
		evq__op_step(s, op);
	}
}

/* Sockets that turned writable; run held. */
static void evq__sf_run_sockets(struct evq__sf *s)
{
	struct epoll_event ev[EVQ__SF_EVENTS];
	int i, n;

	do {
		n = epoll_wait(s->iep, ev, EVQ__SF_EVENTS, 0);
		for (i = 0; i < n; i++) {
			if (ev[i].data.ptr)	/* else the eventfd */
				evq__sock_ready(s, ev[i].data.ptr);
		}
	} while (n == EVQ__SF_EVENTS);
}

/* Sends whose window a helper has read; run held. */
static void evq__sf_run_ready(struct evq__sf *s)
{
	struct evq__op *op;
	bool cancelled;

	for (;;) {
		pthread_mutex_lock(&s->lock);
		if (evq__list_empty(&s->ready)) {
			pthread_mutex_unlock(&s->lock);
			return;
		}
		op = evq__op_of(s->ready.next, qlink);
		evq__list_del(&op->qlink);
		op->where = EVQ__AT_RUN;
		cancelled = op->cancelled;
		pthread_mutex_unlock(&s->lock);

		if (cancelled)
			evq__op_finish_send(s, op, -ECANCELED);
		else if (op->pin_res < 0)
			evq__op_finish_send(s, op, op->pin_res);
		else
			evq__op_step(s, op);
	}
}

/* ---------------------------------------------------------------------
 * Entry points
 */

int evq__ep_sendfile(struct evq *q, struct evq_sendfile *sf)
{
	struct evq__sf *s;
	int err;

	if (!sf)
		return -EFAULT;
	err = evq__sf_check(sf);
	if (err)
		return err;
	err = evq__sf_get(q, &s);
	if (err)
		return err;
	if (sf->flags & EVQ_SF_ASYNC)
		return evq__sf_async(s, sf);
	return evq__sf_sync(s, sf);
}

/*
 * Take op off whatever it waits on, if it can be cancelled now; lock held.
 * Returns true when op is to be finished by the caller, false when it is
 * only marked (a helper holds it) or not cancellable.
 */
static bool evq__op_unhook(struct evq__sf *s, struct evq__op *op, bool *hit)
{
	*hit = true;
	switch (op->where) {
	case EVQ__AT_JOBQ:
		s->njobs--;
		/* fall through */
	case EVQ__AT_READY:
	case EVQ__AT_SOCK:
		evq__list_del(&op->qlink);
		op->cancelled = true;
		op->where = EVQ__AT_RUN;
		return true;
	case EVQ__AT_HELPER:
		/* The helper finishes it, with -ECANCELED. */
		op->cancelled = true;
		return false;
	default:
		*hit = false;
		return false;
	}
}

int evq__ep_cancel(struct evq *q, uint64_t user_data)
{
	struct evq__sf *s = evq__sf_peek(q);
	struct evq__link victims, *l, *next;
	struct evq__op *op;
	bool hit;
	int n = 0;

	if (!s)
		return -ENOENT;
	evq__list_init(&victims);
	pthread_mutex_lock(&s->run);
	pthread_mutex_lock(&s->lock);
	for (l = s->active.next; l != &s->active; l = next) {
		next = l->next;
		op = evq__op_of(l, link);
		if (op->user_data != user_data || op->cancelled)
			continue;
		if (evq__op_unhook(s, op, &hit))
			evq__list_add(&victims, &op->qlink);
		n += hit;
	}
	pthread_mutex_unlock(&s->lock);
	/* Posting takes the lock and closes files: do it outside. */
	while (!evq__list_empty(&victims)) {
		op = evq__op_of(victims.next, qlink);
		evq__list_del(&op->qlink);
		evq__op_finish(s, op, -ECANCELED);
	}
	pthread_mutex_unlock(&s->run);
	return n ? n : -ENOENT;
}

/*
 * Called when the queue's epoll set reported EVQ__EP_SF_DATA: reset the
 * eventfd first, so that a kick that comes after our look at the lists
 * wakes the queue again, then run what is runnable.
 */
void evq__ep_sf_drive(struct evq *q)
{
	struct evq__sf *s = evq__sf_peek(q);

	if (!s)
		return;
	pthread_mutex_lock(&s->run);
	evq__sf_unkick(s);
	evq__sf_run_sockets(s);
	evq__sf_run_ready(s);
	pthread_mutex_unlock(&s->run);
}

unsigned int evq__ep_sf_pending(struct evq *q)
{
	struct evq__sf *s = evq__sf_peek(q);

	return s ? __atomic_load_n(&s->pending, __ATOMIC_ACQUIRE) : 0;
}

unsigned int evq__ep_sf_take(struct evq *q, struct evq_cqe *out,
			     unsigned int max)
{
	struct evq__sf *s = evq__sf_peek(q);
	struct evq__op *op;
	unsigned int n = 0;

	if (!s || !evq__ep_sf_pending(q))
		return 0;
	pthread_mutex_lock(&s->lock);
	while (n < max && !evq__list_empty(&s->done)) {
		op = evq__op_of(s->done.next, link);
		out[n++] = op->cqe[op->cqe_pos++];
		if (op->cqe_pos == op->ncqe) {
			evq__list_del(&op->link);
			free(op);
		}
	}
	__atomic_store_n(&s->pending, s->pending - n, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void evq__sf_free_list(struct evq__link *h)
{
	struct evq__op *op;

	while (!evq__list_empty(h)) {
		op = evq__op_of(h->next, link);
		evq__list_del(&op->link);
		if (op->in_fd >= 0)
			close(op->in_fd);
		free(op);
	}
}

static void evq__sf_free_socks(struct evq__sf *s)
{
	struct evq__sock *k;

	while (!evq__list_empty(&s->socks)) {
		k = evq__sock_of(s->socks.next);
		evq__list_del(&k->link);
		close(k->fd);
		free(k);
	}
}

/*
 * Stop the helpers (each finishes the read it is in), then free every
 * operation without posting: nobody is left to harvest.
 */
void evq__ep_sf_close(struct evq *q)
{
	struct evq__sf *s = evq__sf_peek(q);
	unsigned int i;

	if (!s)
		return;
	__atomic_store_n(&q->ep_sf, NULL, __ATOMIC_RELEASE);
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->lock);
	for (i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	/* Closing the nested epoll fd drops every socket registration. */
	close(s->iep);
	s->iep = -1;
	evq__sf_free_list(&s->active);
	evq__sf_free_list(&s->done);
	evq__sf_free_socks(s);
	evq__sf_free(s);
}
