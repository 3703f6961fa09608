// SPDX-License-Identifier: GPL-2.0
/*
 * sendfile_bench: the evq designs, one thread and one queue each.
 *
 * Synchronous (design "evq"): the event loop of the one-thread blocking
 * design with sendfile(2) replaced by evq_sendfile(EVQ_SF_NOTIFY).  The
 * call sends what is resident and says why it stopped: a full socket (an
 * EPOLLOUT edge on the connection's watch follows) or a page-cache miss
 * (the kernel reads the missing window in and posts EVQ_CQE_PAGES_READY
 * with the connection's index); the loop serves other connections
 * meanwhile and resumes the send when either entry arrives.  Design
 * "evq_chunk" is the same loop asking each call for at most --chunk
 * bytes, the rest going out on the connection's next turn: a smaller
 * send per turn, and a smaller window to read in on a miss.
 *
 * Asynchronous (design "evq_async"): one evq_sendfile(EVQ_SF_ASYNC) per
 * reply; the kernel sends the whole file, waiting for pages and for
 * socket space itself, and posts one EVQ_CQE_SENDFILE entry with the
 * byte count.  The loop only reads requests.
 *
 * Both watch each connection edge-triggered, added in one evq_ctl()
 * batch, and harvest completions from the ring; the thread sleeps in
 * evq_wait() only when the ring is empty and no connection is waiting for
 * its turn.
 *
 * A connection gets one reply per turn: when a reply is done it goes to
 * the back of a run queue, and its next request is read on its next turn.
 * Reading it at once would let a client that answers fast keep the loop
 * to itself while the other connections' requests wait.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "libevq.h"
#include "sfb.h"

#define HARVEST_MAX	256

struct vconn {
	int fd;
	bool queued;		/* on the run queue */
	bool sending;
	bool wait_pages;	/* synchronous: a PAGES_READY will come */
	uint32_t file;
	uint64_t off, end;
	struct sfb_rbuf rb;
};

struct vsrv {
	struct sfb_server *s;
	struct evq q;
	struct vconn *c;
	unsigned int live;
	bool async;
	unsigned int *runq;	/* connections waiting for their turn */
	unsigned int rq_head, rq_len;
};

static void v_defer(struct vsrv *v, unsigned int i)
{
	if (v->c[i].queued)
		return;
	v->c[i].queued = true;
	v->runq[(v->rq_head + v->rq_len++) % v->s->nr] = i;
}

static void v_close(struct vsrv *v, unsigned int i)
{
	evq_unwatch_close(&v->q, v->c[i].fd);
	v->s->fds[i] = -1;
	v->c[i].fd = -1;
	v->live--;
}

/* Hand the whole reply to the kernel; 0 or -1. */
static int v_start_async(struct vsrv *v, unsigned int i)
{
	struct vconn *c = &v->c[i];
	struct sfb_server *s = v->s;
	struct evq_sendfile sf = {
		.out_fd = c->fd,
		.in_fd = s->fs->files[c->file].fd,
		.count = c->end,
		.user_data = i,
		.flags = EVQ_SF_ASYNC,
	};
	int r;

	if (s->time_calls) {
		unsigned int k = !sfb_is_hot(s->fs, c->file);
		uint64_t t0 = sfb_now_ns(), dt;

		r = evq_sendfile(&v->q, &sf);
		dt = sfb_now_ns() - t0;
		s->st.start_n[k]++;
		s->st.start_ns[k] += dt;
		if (dt > s->st.start_max_ns[k])
			s->st.start_max_ns[k] = dt;
	} else {
		r = evq_sendfile(&v->q, &sf);
	}
	s->st.sends++;
	if (r < 0) {
		sfb_srv_error(s, "evq_sendfile(ASYNC): %s", strerror(-r));
		return -1;
	}
	return 0;
}

/* Start the reply to the request just read; 0 or -1. */
static int v_start(struct vsrv *v, unsigned int i)
{
	struct vconn *c = &v->c[i];
	struct sfb_server *s = v->s;

	if (sfb_check_req(s, &c->rb.req))
		return -1;
	c->file = c->rb.req.file;
	c->off = 0;
	c->end = s->fs->files[c->file].size;
	c->sending = true;
	return v->async ? v_start_async(v, i) : 0;
}

/* A reply is complete: the connection's next request waits its turn. */
static void v_done(struct vsrv *v, unsigned int i)
{
	struct vconn *c = &v->c[i];

	c->sending = false;
	v->s->st.requests++;
	v->s->st.bytes += c->end;
	v_defer(v, i);
}

/*
 * Serve connection i until it must wait: for its socket, for pages, or
 * (asynchronous) for the kernel to finish the send.  0 or -1.
 */
static int v_advance(struct vsrv *v, unsigned int i)
{
	struct sfb_server *s = v->s;
	struct vconn *c = &v->c[i];

	if (c->fd < 0 || c->wait_pages || (c->sending && v->async))
		return 0;
	for (;;) {
		int r;

		if (c->sending) {
			struct evq_sendfile sf = {
				.out_fd = c->fd,
				.in_fd = s->fs->files[c->file].fd,
				.offset = c->off,
				.count = c->end - c->off,
				.user_data = i,
				.flags = EVQ_SF_NOTIFY,
			};

			if (s->chunk && sf.count > s->chunk)
				sf.count = s->chunk;

			if (s->time_calls) {
				uint64_t t0 = sfb_now_ns(), dt;

				r = evq_sendfile(&v->q, &sf);
				dt = sfb_now_ns() - t0;
				if (r >= 0 && sf.stop < 5) {
					s->st.call_n[sf.stop]++;
					s->st.call_ns[sf.stop] += dt;
					if (dt > s->st.call_max_ns[sf.stop])
						s->st.call_max_ns[sf.stop] = dt;
				}
			} else {
				r = evq_sendfile(&v->q, &sf);
			}
			s->st.sends++;
			if (r < 0) {
				sfb_srv_error(s, "evq_sendfile: %s",
					      strerror(-r));
				return -1;
			}
			c->off += sf.sent;
			switch (sf.stop) {
			case EVQ_SF_STOP_DONE:
				if (c->off < c->end &&
				    sf.sent == sf.count) {
					/* A chunk: the rest on the next turn. */
					v_defer(v, i);
					return 0;
				}
				if (c->off != c->end) {
					sfb_srv_error(s, "evq_sendfile: done "
						      "at %llu of %llu",
						      (unsigned long long)c->off,
						      (unsigned long long)c->end);
					return -1;
				}
				v_done(v, i);
				return 0;
			case EVQ_SF_STOP_SOCK_FULL:
				s->st.sock_full++;
				return 0;
			case EVQ_SF_STOP_NOT_RESIDENT:
				s->st.not_resident++;
				c->wait_pages = true;
				return 0;
			case EVQ_SF_STOP_ERROR:
				sfb_srv_error(s, "evq_sendfile: stopped on %s",
					      strerror(-sf.error));
				return -1;
			default:
				sfb_srv_error(s, "evq_sendfile: stop %u",
					      sf.stop);
				return -1;
			}
		}
		r = sfb_read_req(s, c->fd, &c->rb);
		if (r == 0)
			return 0;
		if (r == -1) {
			v_close(v, i);
			return 0;
		}
		if (r < 0 || v_start(v, i))
			return -1;
		if (v->async)
			return 0;	/* the kernel has it now */
	}
}

static int v_entry(struct vsrv *v, const struct evq_cqe *e)
{
	struct sfb_server *s = v->s;
	unsigned int i = (unsigned int)e->user_data;
	struct vconn *c;

	if (e->user_data >= s->nr) {
		sfb_srv_error(s, "entry for unknown user_data %llu",
			      (unsigned long long)e->user_data);
		return -1;
	}
	c = &v->c[i];
	switch (e->flags & EVQ_CQE_TYPE_MASK) {
	case EVQ_CQE_READY:
		/* v_advance() skips a closed or a page-waiting connection. */
		return v_advance(v, i);
	case EVQ_CQE_PAGES_READY:
		s->st.pages_ready++;
		if (e->res < 0) {
			sfb_srv_error(s, "PAGES_READY: %s", strerror(-e->res));
			return -1;
		}
		if (!c->wait_pages) {
			sfb_srv_error(s, "PAGES_READY for connection %u, "
				      "which asked for none", i);
			return -1;
		}
		c->wait_pages = false;
		return v_advance(v, i);
	case EVQ_CQE_SENDFILE:
		if (!c->sending || !v->async) {
			sfb_srv_error(s, "SENDFILE entry for connection %u, "
				      "which has no send running", i);
			return -1;
		}
		if (e->flags & EVQ_CQEF_MORE) {
			/* Bytes before an error; the -errno follows. */
			c->off += (uint32_t)e->res;
			return 0;
		}
		if (e->res < 0 || c->off + (uint64_t)e->res != c->end) {
			sfb_srv_error(s, "SENDFILE: %s (%d of %llu bytes)",
				      e->res < 0 ? strerror(-e->res) : "short",
				      e->res, (unsigned long long)c->end);
			return -1;
		}
		v_done(v, i);
		return 0;
	default:
		sfb_srv_error(s, "unexpected entry type %u for connection %u",
			      e->flags & EVQ_CQE_TYPE_MASK, i);
		return -1;
	}
}

static int serve(struct sfb_server *s, bool async)
{
	struct vsrv v = { .s = s, .live = s->nr, .async = async };
	struct evq_cqe cqe[HARVEST_MAX];
	struct evq_ctl *ctl = NULL;
	unsigned int i, entries = 64;
	int r, ret = -1;

	/*
	 * Room for one readiness entry and one operation entry per
	 * connection: the ring never overflows, though readiness would
	 * survive it.
	 */
	while (entries < 2 * s->nr + 16)
		entries *= 2;
	r = evq_open(&v.q, entries, s->evq_flags);
	if (r < 0) {
		sfb_srv_error(s, "evq_open: %s", strerror(-r));
		return -1;
	}
	v.c = calloc(s->nr, sizeof(*v.c));
	v.runq = calloc(s->nr, sizeof(*v.runq));
	ctl = calloc(s->nr, sizeof(*ctl));
	if (!v.c || !v.runq || !ctl) {
		sfb_srv_error(s, "no memory");
		goto out;
	}
	for (i = 0; i < s->nr; i++) {
		v.c[i].fd = s->fds[i];
		ctl[i] = (struct evq_ctl){
			.op = EVQ_CTL_ADD,
			.fd = s->fds[i],
			.events = EPOLLIN | EPOLLRDHUP | (async ? 0 : EPOLLOUT),
			.flags = EVQ_WATCH_EDGE,
			.user_data = i,
		};
	}
	r = evq_ctl(&v.q, ctl, s->nr);
	for (i = 0; r >= 0 && i < s->nr; i++)
		if (ctl[i].res)
			r = ctl[i].res;
	if (r < 0) {
		sfb_srv_error(s, "evq_ctl: %s", strerror(-r));
		goto out;
	}
	s->ready(s);
	while (v.live) {
		unsigned int k, turns = v.rq_len;
		int n = evq_harvest(&v.q, cqe, HARVEST_MAX);

		if (n < 0) {
			sfb_srv_error(s, "evq_harvest: %s", strerror(-n));
			goto out;
		}
		if (n == 0 && !turns) {
			s->st.waits++;
			r = evq_wait(&v.q, 1, -1);
			if (r < 0 && r != -EINTR) {
				sfb_srv_error(s, "evq_wait: %s", strerror(-r));
				goto out;
			}
			continue;
		}
		s->st.harvested += (unsigned int)n;
		for (i = 0; i < (unsigned int)n; i++)
			if (v_entry(&v, &cqe[i]))
				goto out;
		/* Then one turn each for those queued before this round. */
		for (k = 0; k < turns && v.rq_len; k++) {
			i = v.runq[v.rq_head];
			v.rq_head = (v.rq_head + 1) % s->nr;
			v.rq_len--;
			v.c[i].queued = false;
			if (v_advance(&v, i))
				goto out;
		}
	}
	ret = 0;
out:
	for (i = 0; v.c && i < s->nr; i++)
		if (v.c[i].fd >= 0)
			v_close(&v, i);
	free(ctl);
	free(v.runq);
	free(v.c);
	evq_close(&v.q);
	return ret;
}

int sfb_serve_evq_sync(struct sfb_server *s)
{
	return serve(s, false);
}

int sfb_serve_evq_async(struct sfb_server *s)
{
	return serve(s, true);
}
