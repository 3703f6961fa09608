// SPDX-License-Identifier: GPL-2.0
/*
 * sendfile_bench: io_uring (liburing), one thread, the closest thing to a
 * sendfile io_uring has.  There is no sendfile opcode; a file reaches a
 * socket through a pipe, file -> pipe -> socket, as two IORING_OP_SPLICE
 * linked so that one submission moves one chunk.  Requests are read with
 * IORING_OP_RECV.
 *
 * The kernel never runs a splice inline from io_uring_enter: every splice
 * is handed to an io-wq worker thread, which blocks on the disk or the
 * socket as sendfile(2) would.  Those workers are threads of this process,
 * so their CPU counts for this design.  Sockets are blocking here: the
 * worker's splice to a non-blocking socket could fail with EAGAIN when it
 * fills, which would turn into a retry loop; a blocking one just waits, as
 * a worker is meant to.
 *
 * A short first splice fails the link (io_uring treats a short splice as
 * an error for linking), so the second comes back -ECANCELED; the state
 * below tracks what is in the pipe, not what was asked for, and resumes
 * from there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <liburing.h>

#include "sfb.h"

/* A pipe this large takes a cold file in one chunk. */
#define PIPE_BYTES	(256U << 10)

enum { OP_RECV = 1, OP_IN, OP_OUT };

struct uconn {
	int fd;
	int pr, pw;		/* the pipe: read end, write end */
	unsigned int inflight;	/* splices not completed yet */
	uint32_t file;
	uint64_t off;		/* next file byte to go into the pipe */
	uint64_t end;
	uint64_t sent;		/* bytes that reached the socket */
	uint32_t in_pipe;
	bool sending;
	struct sfb_rbuf rb;
};

struct usrv {
	struct sfb_server *s;
	struct io_uring ring;
	struct uconn *c;
	unsigned int live;
	uint32_t pipe_sz;
};

static uint64_t ud(unsigned int i, unsigned int op)
{
	return (uint64_t)i << 8 | op;
}

static struct io_uring_sqe *get_sqe(struct usrv *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (!sqe) {
		/* Full submission queue: hand it over and take a slot. */
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	if (!sqe)
		sfb_srv_error(u->s, "io_uring: no free SQE");
	return sqe;
}

static int u_recv(struct usrv *u, unsigned int i)
{
	struct uconn *c = &u->c[i];
	struct io_uring_sqe *sqe = get_sqe(u);

	if (!sqe)
		return -1;
	io_uring_prep_recv(sqe, c->fd, (char *)&c->rb.req + c->rb.len,
			   sizeof(c->rb.req) - c->rb.len, 0);
	io_uring_sqe_set_data64(sqe, ud(i, OP_RECV));
	return 0;
}

/* Queue the next step of the reply on connection i. */
static int u_step(struct usrv *u, unsigned int i)
{
	struct uconn *c = &u->c[i];
	struct io_uring_sqe *in, *out;
	uint32_t n;

	if (c->in_pipe) {
		/* Left in the pipe by a short or cancelled send. */
		out = get_sqe(u);
		if (!out)
			return -1;
		io_uring_prep_splice(out, c->pr, -1, c->fd, -1, c->in_pipe, 0);
		io_uring_sqe_set_data64(out, ud(i, OP_OUT));
		c->inflight = 1;
		u->s->st.sends++;
		return 0;
	}
	n = c->end - c->off < u->pipe_sz ? (uint32_t)(c->end - c->off) :
	    u->pipe_sz;
	/* Two SQEs that must stay adjacent: make room for both first. */
	if (io_uring_sq_space_left(&u->ring) < 2)
		io_uring_submit(&u->ring);
	in = get_sqe(u);
	out = in ? get_sqe(u) : NULL;
	if (!out)
		return -1;
	io_uring_prep_splice(in, u->s->fs->files[c->file].fd, (int64_t)c->off,
			     c->pw, -1, n, 0);
	io_uring_sqe_set_data64(in, ud(i, OP_IN));
	in->flags |= IOSQE_IO_LINK;
	io_uring_prep_splice(out, c->pr, -1, c->fd, -1, n, 0);
	io_uring_sqe_set_data64(out, ud(i, OP_OUT));
	c->inflight = 2;
	u->s->st.sends += 2;
	return 0;
}

static void u_close(struct usrv *u, unsigned int i)
{
	struct uconn *c = &u->c[i];

	close(c->fd);
	close(c->pr);
	close(c->pw);
	u->s->fds[i] = -1;
	c->fd = c->pr = c->pw = -1;
	u->live--;
}

static int u_cqe(struct usrv *u, const struct io_uring_cqe *cqe)
{
	struct sfb_server *s = u->s;
	unsigned int i = (unsigned int)(cqe->user_data >> 8);
	unsigned int op = cqe->user_data & 0xff;
	struct uconn *c = &u->c[i];
	int res = cqe->res;

	if (op == OP_RECV) {
		if (res == 0 && !c->rb.len) {
			u_close(u, i);
			return 0;
		}
		if (res <= 0) {
			sfb_srv_error(s, "recv: %s", res ? strerror(-res) :
				      "EOF inside a request");
			return -1;
		}
		c->rb.len += (unsigned int)res;
		if (c->rb.len < sizeof(c->rb.req))
			return u_recv(u, i);
		c->rb.len = 0;
		if (sfb_check_req(s, &c->rb.req))
			return -1;
		c->file = c->rb.req.file;
		c->off = c->sent = 0;
		c->in_pipe = 0;
		c->end = s->fs->files[c->file].size;
		c->sending = true;
		return u_step(u, i);
	}

	c->inflight--;
	if (res > 0 && op == OP_IN) {
		c->in_pipe += (uint32_t)res;
		c->off += (uint32_t)res;
	} else if (res > 0) {
		c->in_pipe -= (uint32_t)res;
		c->sent += (uint32_t)res;
	} else if (res != -ECANCELED) {
		sfb_srv_error(s, "splice %s: %s", op == OP_IN ?
			      "file->pipe" : "pipe->socket",
			      res ? strerror(-res) : "nothing moved");
		return -1;
	}
	if (c->inflight)
		return 0;
	if (c->sent < c->end)
		return u_step(u, i);
	c->sending = false;
	s->st.requests++;
	s->st.bytes += c->end;
	return u_recv(u, i);
}

int sfb_serve_uring(struct sfb_server *s)
{
	struct usrv u = { .s = s, .live = s->nr };
	struct io_uring_params p = { 0 };
	unsigned int i, entries = 64;
	int r, ret = -1;

	while (entries < 2 * s->nr + 16)
		entries *= 2;
	/*
	 * One thread submits and reaps: let the kernel run completion work
	 * only when this thread asks for completions (6.1 has both flags).
	 */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	r = io_uring_queue_init_params(entries, &u.ring, &p);
	if (r == -EINVAL) {
		memset(&p, 0, sizeof(p));
		r = io_uring_queue_init_params(entries, &u.ring, &p);
	}
	if (r < 0) {
		sfb_srv_error(s, "io_uring_queue_init: %s", strerror(-r));
		return -1;
	}
	u.c = calloc(s->nr, sizeof(*u.c));
	if (!u.c) {
		sfb_srv_error(s, "no memory");
		goto out;
	}
	for (i = 0; i < s->nr; i++)
		u.c[i].fd = u.c[i].pr = u.c[i].pw = -1;
	for (i = 0; i < s->nr; i++) {
		struct uconn *c = &u.c[i];
		int pfd[2], sz;

		c->fd = s->fds[i];
		if (pipe2(pfd, O_CLOEXEC) < 0 ||
		    fcntl(c->fd, F_SETFL, 0) < 0) {
			sfb_srv_error(s, "pipe/fcntl: %s", strerror(errno));
			goto out;
		}
		c->pr = pfd[0];
		c->pw = pfd[1];
		sz = fcntl(c->pw, F_SETPIPE_SZ, PIPE_BYTES);
		if (sz <= 0)
			sz = fcntl(c->pw, F_GETPIPE_SZ);
		if (sz <= 0) {
			sfb_srv_error(s, "F_GETPIPE_SZ: %s", strerror(errno));
			goto out;
		}
		u.pipe_sz = (uint32_t)sz;	/* the same for every pipe */
		if (u_recv(&u, i))
			goto out;
	}
	io_uring_submit(&u.ring);
	s->ready(s);
	while (u.live) {
		struct io_uring_cqe *cqe;
		unsigned int head, seen = 0;

		s->st.waits++;
		r = io_uring_submit_and_wait(&u.ring, 1);
		if (r < 0 && r != -EINTR) {
			sfb_srv_error(s, "io_uring_submit_and_wait: %s",
				      strerror(-r));
			goto out;
		}
		io_uring_for_each_cqe(&u.ring, head, cqe) {
			seen++;
			if (u_cqe(&u, cqe)) {
				io_uring_cq_advance(&u.ring, seen);
				goto out;
			}
		}
		io_uring_cq_advance(&u.ring, seen);
	}
	ret = 0;
out:
	/* Tearing the ring down first cancels what is still in flight. */
	io_uring_queue_exit(&u.ring);
	for (i = 0; u.c && i < s->nr; i++)
		if (u.c[i].fd >= 0)
			u_close(&u, i);
	free(u.c);
	return ret;
}
