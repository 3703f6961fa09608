// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Queue life cycle: evq_open() (backend choice, /dev/evq setup and ring
 * mapping), evq_close(), evq_fd() and evq_backend_name().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "evq_private.h"

#define EVQ__DEV	"/dev/evq"

/*
 * EVQ_BACKEND picks the backend when the caller's flags do not.  "kmod"
 * means the module and nothing else, so a test run that asked for it
 * cannot silently measure epoll instead.  An unknown value is an error
 * for the same reason.
 */
static int evq__env_flags(unsigned int *flags)
{
	const char *v = secure_getenv("EVQ_BACKEND");

	if (!v || !*v || !strcmp(v, "auto"))
		return 0;
	if (!strcmp(v, "kmod"))
		*flags |= EVQ_OPEN_KMOD;
	else if (!strcmp(v, "epoll"))
		*flags |= EVQ_OPEN_EPOLL;
	else
		return -EINVAL;
	return 0;
}

/* The mapping is the kernel's; still, never index outside it. */
static int evq__off_ok(const struct evq_setup *s, __u32 off, size_t len)
{
	return off % 4 == 0 && off <= s->ring_size &&
	       len <= s->ring_size - off;
}

static int evq__km_setup(struct evq *q, int fd, unsigned int entries)
{
	struct evq_setup s;
	const struct evq_ring_offsets *o = &s.off;
	unsigned char *ring;
	unsigned int n;

	memset(&s, 0, sizeof(s));
	s.cq_entries = entries;
	if (ioctl(fd, EVQ_IOC_SETUP, &s) < 0)
		return -errno;
	n = s.cq_entries;
	if (!n || (n & (n - 1)) || s.ring_size > SIZE_MAX ||
	    !evq__off_ok(&s, o->head, 4) || !evq__off_ok(&s, o->tail, 4) ||
	    !evq__off_ok(&s, o->ring_mask, 4) ||
	    !evq__off_ok(&s, o->ring_entries, 4) ||
	    !evq__off_ok(&s, o->overflow, 4) ||
	    !evq__off_ok(&s, o->flags, 4) ||
	    !evq__off_ok(&s, o->cqes, (size_t)n * sizeof(struct evq_cqe)))
		return -EPROTO;

	ring = mmap(NULL, s.ring_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, EVQ_OFF_RING);
	if (ring == MAP_FAILED)
		return -errno;
	if (*(unsigned int *)(ring + o->ring_entries) != n ||
	    *(unsigned int *)(ring + o->ring_mask) != n - 1) {
		munmap(ring, s.ring_size);
		return -EPROTO;
	}

	q->ring = ring;
	q->ring_size = s.ring_size;
	q->khead = (unsigned int *)(ring + o->head);
	q->ktail = (const unsigned int *)(ring + o->tail);
	q->kflags = (const unsigned int *)(ring + o->flags);
	q->koverflow = (const unsigned int *)(ring + o->overflow);
	q->cqes = (const struct evq_cqe *)(ring + o->cqes);
	q->ring_entries = n;
	q->ring_mask = n - 1;
	return 0;
}

/*
 * Returns 1 when the module is absent and the caller may fall back,
 * 0 on success, -errno otherwise.
 */
static int evq__km_open(struct evq *q, unsigned int entries, int must)
{
	int fd, err;

	fd = open(EVQ__DEV, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		if (!must)
			return 1;
		/* A node without a driver behind it is an absent module too. */
		if (err == ENOENT || err == ENODEV || err == ENXIO)
			return -ENOENT;
		return -err;
	}
	err = evq__km_setup(q, fd, entries);
	if (err) {
		close(fd);
		return err;
	}
	q->fd = fd;
	q->backend = EVQ_BACKEND_KMOD;
	return 0;
}

int evq_open(struct evq *q, unsigned int entries, unsigned int flags)
{
	int err;

	if (!q)
		return -EINVAL;
	memset(q, 0, sizeof(*q));
	q->fd = -1;

	if (!entries || (flags & ~(EVQ_OPEN_KMOD | EVQ_OPEN_EPOLL)) ||
	    (flags & EVQ_OPEN_KMOD && flags & EVQ_OPEN_EPOLL))
		return -EINVAL;
	if (!flags) {
		err = evq__env_flags(&flags);
		if (err)
			return err;
	}

	if (!(flags & EVQ_OPEN_EPOLL)) {
		err = evq__km_open(q, entries, !!(flags & EVQ_OPEN_KMOD));
		if (err <= 0)
			return err;
	}
	return evq__ep_open(q, entries);
}

void evq_close(struct evq *q)
{
	if (!q || q->fd < 0)
		return;
	if (q->backend == EVQ_BACKEND_KMOD)
		munmap(q->ring, q->ring_size);
	else
		evq__ep_close(q);
	close(q->fd);
	memset(q, 0, sizeof(*q));
	/* A second evq_close() must not close whatever now owns fd 0. */
	q->fd = -1;
}

int evq_fd(const struct evq *q)
{
	return q->fd;
}

const char *evq_backend_name(const struct evq *q)
{
	switch (q->backend) {
	case EVQ_BACKEND_KMOD:
		return "kmod";
	case EVQ_BACKEND_EPOLL:
		return "epoll";
	}
	return "none";
}
