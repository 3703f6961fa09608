// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * evq_sendfile() and evq_cancel(): thin wrappers over EVQ_IOC_SENDFILE and
 * EVQ_IOC_CANCEL, or the epoll backend's emulation of both.
 */
#include <errno.h>
#include <sys/ioctl.h>

#include "evq_private.h"

static int evq__km_sendfile(struct evq *q, struct evq_sendfile *sf)
{
	int ret = ioctl(q->fd, EVQ_IOC_SENDFILE, sf);

	return ret < 0 ? -errno : ret;
}

int evq_sendfile(struct evq *q, struct evq_sendfile *sf)
{
	switch (q->backend) {
	case EVQ_BACKEND_KMOD:
		return evq__km_sendfile(q, sf);
	case EVQ_BACKEND_EPOLL:
		return evq__ep_sendfile(q, sf);
	}
	return -EBADF;
}

int evq_cancel(struct evq *q, uint64_t user_data)
{
	__u64 ud = user_data;
	int ret;

	switch (q->backend) {
	case EVQ_BACKEND_KMOD:
		ret = ioctl(q->fd, EVQ_IOC_CANCEL, &ud);
		return ret < 0 ? -errno : ret;
	case EVQ_BACKEND_EPOLL:
		return evq__ep_cancel(q, user_data);
	}
	return -EBADF;
}
