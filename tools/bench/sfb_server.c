// SPDX-License-Identifier: GPL-2.0
/*
 * sendfile_bench: what every server design shares: reading and checking
 * a request, and recording the first error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/socket.h>

#include "sfb.h"

static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Keep the first error, then shut every connection down: the client sees
 * EOF on the requests in flight and stops at once instead of waiting for
 * its timeout, and the other threads of a pool see EOF and leave.
 */
void sfb_srv_error(struct sfb_server *s, const char *fmt, ...)
{
	unsigned int i;
	va_list ap;

	pthread_mutex_lock(&err_lock);
	if (s->err[0]) {
		pthread_mutex_unlock(&err_lock);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&err_lock);
	for (i = 0; i < s->nr; i++)
		shutdown(s->fds[i], SHUT_RDWR);
}

int sfb_read_req(struct sfb_server *s, int fd, struct sfb_rbuf *rb)
{
	ssize_t n = recv(fd, (char *)&rb->req + rb->len,
			 sizeof(rb->req) - rb->len, MSG_DONTWAIT);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		sfb_srv_error(s, "recv: %s", strerror(errno));
		return -2;
	}
	if (n == 0) {
		if (rb->len) {
			sfb_srv_error(s, "EOF inside a request");
			return -2;
		}
		return -1;
	}
	rb->len += (unsigned int)n;
	if (rb->len < sizeof(rb->req))
		return 0;
	rb->len = 0;
	return 1;
}

int sfb_check_req(struct sfb_server *s, const struct sfb_req *rq)
{
	if (rq->magic != SFB_REQ_MAGIC ||
	    rq->file >= s->fs->nr_hot + s->fs->nr_cold) {
		sfb_srv_error(s, "bad request (magic %#x, file %u)",
			      rq->magic, rq->file);
		return -1;
	}
	return 0;
}
