// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Changing watches: evq_ctl() for batches, evq_add()/evq_mod()/evq_del()
 * for one change, and evq_unwatch_close().
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "evq_private.h"

static int evq__km_ctl(struct evq *q, struct evq_ctl *v, unsigned int nr)
{
	struct evq_ctl_batch b = {
		.entries = (__u64)(uintptr_t)v,
		.nr = nr,
	};
	int ret;

	ret = ioctl(q->fd, EVQ_IOC_CTL, &b);
	return ret < 0 ? -errno : ret;
}

int evq_ctl(struct evq *q, struct evq_ctl *v, unsigned int nr)
{
	/* The count comes back as an int. */
	if (!nr || nr > INT_MAX)
		return -EINVAL;
	if (!v)
		return -EFAULT;
	switch (q->backend) {
	case EVQ_BACKEND_KMOD:
		return evq__km_ctl(q, v, nr);
	case EVQ_BACKEND_EPOLL:
		return evq__ep_ctl(q, v, nr);
	}
	return -EBADF;
}

static int evq__ctl_one(struct evq *q, uint32_t op, int fd, uint32_t events,
			uint32_t flags, uint64_t user_data)
{
	struct evq_ctl c;
	int ret;

	memset(&c, 0, sizeof(c));
	c.op = op;
	c.fd = fd;
	c.events = events;
	c.flags = flags;
	c.user_data = user_data;
	ret = evq_ctl(q, &c, 1);
	if (ret < 0)
		return ret;
	return ret == 1 ? c.res : -EIO;
}

int evq_add(struct evq *q, int fd, uint32_t events, uint32_t flags,
	    uint64_t user_data)
{
	return evq__ctl_one(q, EVQ_CTL_ADD, fd, events, flags, user_data);
}

int evq_mod(struct evq *q, int fd, uint32_t events, uint32_t flags,
	    uint64_t user_data)
{
	return evq__ctl_one(q, EVQ_CTL_MOD, fd, events, flags, user_data);
}

int evq_del(struct evq *q, int fd)
{
	return evq__ctl_one(q, EVQ_CTL_DEL, fd, 0, 0, 0);
}

/*
 * The module's watch holds a reference to the file, so a plain close()
 * of a watched fd leaves the file open until the queue reaps it; deleting
 * the watch first makes the close take effect at once.  On epoll the
 * delete matters too when the file has other descriptors (dup, fork).
 */
int evq_unwatch_close(struct evq *q, int fd)
{
	int err, ret;

	err = evq_del(q, fd);
	if (err == -ENOENT)
		err = 0;
	/* The caller gave the fd up: close it whatever the delete said. */
	ret = close(fd);
	if (ret < 0 && errno != EINTR && !err)
		err = -errno;
	return err;
}
