// SPDX-License-Identifier: GPL-2.0
/*
 * Outbound sessions: a non-blocking TCP connection driven by the SMTP
 * client state machine (dd_smtpc.c).  Commands go out from its buffer;
 * bodies go from the spool segment to the socket without a userspace
 * copy: with evq's sendfile on the evq backend (one ioctl when the pages
 * are in and the socket has room, else the module finishes the transfer
 * itself and posts one completion), with sendfile(2) on epoll.
 *
 * STARTTLS (dd_tls.c) changes the socket's I/O, not the session: commands
 * and replies go through the session's SSL; the handshake is stepped on
 * each event like the rest (edge-triggered: every step runs until
 * OpenSSL hits EAGAIN).  A body goes with sendfile when the kernel
 * encrypts (kTLS TX), else in chunks read from the segment and written
 * with SSL_write, whose buffer exists only while a body is on its way.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "dd_dest.h"
#include "dd_log.h"
#include "dd_reply.h"
#include "dd_tls.h"

#define BODY_CHUNK	65536	/* read from the segment per SSL_write round */

enum { OUT_CONNECTING = 1, OUT_OPEN, OUT_CLOSED };

struct dd_out {
	struct dd_io io;		/* first: user_data points here */
	struct dd_worker *w;
	struct dd_dest *d;
	struct dd_out *next_idle;
	struct dd_smtpc *c;
	struct dd_timer timer;
	/* what the timer was armed for in a reply wait (arm_reply()) */
	enum dd_smtpc_stage armed_stage;
	unsigned long armed_replies;
	uint8_t state;
	bool want_out;			/* output waits for EPOLLOUT */
	bool body_wait;			/* body goes once output is flushed */
	bool sf_on;			/* body on its way */
	bool sf_async;			/* ... by the module, completion due */
	bool idle;
	bool timed_out;
	bool greeted;			/* a transaction was possible */
	bool leaving;			/* shaping: close after this transaction */
	int sf_fd;
	uint64_t sf_off, sf_left;
	struct dd_tx *tx;		/* while busy; idle sessions hold none */
	const char *mx;			/* the target's, kept alive by dd_dest.c */
	void *ref;
	void *shape;
	struct dd_smtpc_msg m;
	unsigned int nmsgs;
	uint64_t t_conn, t_tx;
	char host[64];
	/* TLS: policy, name for SNI and the certificate, session, body buffer */
	uint8_t tls_pol;
	bool hs;			/* handshake in progress */
	char *tls_name;
	struct dd_tls *tls;
	char *bbuf;
	size_t bb_off, bb_len;
};

static void out_pump(struct dd_out *o);
static void unidle(struct dd_out *o);

static uint64_t secs(unsigned int s)
{
	return (uint64_t)s * 1000000000ULL;
}

void *dd_out_ref(const struct dd_out *o)
{
	return o->ref;
}

void *dd_out_shape(const struct dd_out *o)
{
	return o->shape;
}

const char *dd_out_mx(const struct dd_out *o)
{
	return o->mx;
}

/* What the delivery log says about this session's transaction. */
static void conn_info(const struct dd_out *o, struct dd_conn_info *ci,
		      bool tx_started)
{
	*ci = (struct dd_conn_info){ .host = o->host, .mx = o->mx };
	if (tx_started) {
		ci->transport = dd_smtpc_extensions(o->c, NULL) &
				DD_EXT_CHUNKING && dd_d.conf.chunking ?
				"bdat" : "data";
		ci->body_io = dd_kmod_sendfile() ? "evq-sendfile" : "sendfile";
	}
	if (o->tls && !o->hs) {
		ci->tls = dd_tls_version(o->tls);
		ci->tls_cipher = dd_tls_cipher(o->tls);
		ci->tls_verify = dd_tls_verified(o->tls);
		if (tx_started && !dd_tls_ktls_send(o->tls))
			ci->body_io = "buffered";
		else if (tx_started)
			ci->body_io = dd_kmod_sendfile() ? "ktls-evq-sendfile" :
				      "ktls-sendfile";
	}
}

struct dd_out *dd_out_next_idle(struct dd_out *o)
{
	return o->next_idle;
}

void dd_out_set_next_idle(struct dd_out *o, struct dd_out *next)
{
	o->next_idle = next;
}

void dd_out_free(struct dd_io *io)
{
	struct dd_out *o = (struct dd_out *)io;

	dd_smtpc_free(o->c);
	dd_tls_free(o->tls);
	free(o->bbuf);
	free(o->tls_name);
	free(o->tx);
	free(o);
}

static const char *stage_name(enum dd_smtpc_stage st)
{
	static const char *const n[DD_STAGE_NR] = {
		"connect", "greeting", "EHLO", "MAIL", "RCPT", "DATA",
		"body", "end of data", "RSET", "QUIT", "idle",
	};

	return st < DD_STAGE_NR ? n[st] : "?";
}

/* Drop the session; the destination decides what its failure means. */
static void out_close(struct dd_out *o, const char *why,
		      const struct dd_smtp_reply *rp)
{
	struct dd_worker *w = o->w;
	bool connected = o->state != OUT_CONNECTING;

	if (o->state == OUT_CLOSED)
		return;
	if (o->idle)
		unidle(o);
	if (o->sf_async) {
		/* The module owns the socket until it posts the completion. */
		evq_cancel(&w->q, (uint64_t)(uintptr_t)&o->io | 1);
	}
	dd_timer_del(w, &o->timer);
	dd_worker_unwatch(w, &o->io);
	if (o->tls) {
		/* close_notify unless the module may still be writing. */
		if (!o->sf_async && !o->hs)
			dd_tls_shutdown(o->tls);
		dd_tls_free(o->tls);
		o->tls = NULL;
	}
	free(o->bbuf);
	o->bbuf = NULL;
	close(o->io.fd);
	o->state = OUT_CLOSED;
	w->out_conns--;
	atomic_fetch_sub(&dd_d.out_conns_total, 1);
	dd_dest_closed(o->d, o, !o->greeted, rp, connected ? o->host : NULL,
		       why);
	if (!o->sf_async)
		dd_bury(w, &o->io);
}

static void out_fail(struct dd_out *o, const char *why)
{
	/* A transaction in progress ends as "connection lost" first. */
	dd_smtpc_eof(o->c);
	while (o->tx && o->tx->n) {
		struct dd_smtpc_result r = { .nrcpt = 0 };
		struct dd_conn_info ci;
		bool done = dd_smtpc_run(o->c) == DD_SMTPC_DONE;

		if (done)
			r = *dd_smtpc_result(o->c);
		conn_info(o, &ci, done);
		if (!r.msg.code)
			snprintf(r.msg.text, sizeof(r.msg.text), "%s", why);
		dd_dest_result(o->d, o->tx, &r, &ci, dd_mono_ns() - o->t_tx);
		o->tx->n = 0;
	}
	out_close(o, why, NULL);
}

/*
 * The handshake failed.  "may": the destination goes without TLS for a
 * while and the session ends as if it had worked, so the next one comes
 * at once, in plain text.  Otherwise the destination waits as after a
 * failed greeting, the reason (ours, 4.7.5) going to what it defers.
 */
static void tls_failed(struct dd_out *o, const char *err)
{
	struct dd_smtp_reply rp;
	char why[400];

	snprintf(why, sizeof(why), "TLS handshake with %s failed: %s", o->host,
		 err);
	o->hs = false;
	if (o->tls_pol == DD_TLS_MAY) {
		dd_info("%s: %s; no TLS for it in the next %d s", o->d->domain,
			why, DD_TLS_PLAIN_HOLD);
		dd_tls_plain_note(o->d->domain);
		if (!o->greeted) {
			o->greeted = true;
			o->d->nopening--;
		}
		out_close(o, why, NULL);
		return;
	}
	dd_reply_set(&rp, 0, "4.7.5", "%s", why);
	out_close(o, why, &rp);
}

static void out_timeout(struct dd_worker *w, struct dd_timer *t)
{
	struct dd_out *o = (struct dd_out *)((char *)t -
					     offsetof(struct dd_out, timer));
	char why[96];

	(void)w;
	if (o->idle) {
		/* Nobody needed it for conn_idle: say goodbye. */
		dd_dest_kick(o->d);
		if (o->idle)
			dd_out_resume(o);
		return;
	}
	if (o->hs) {
		tls_failed(o, "timed out");
		return;
	}
	if (o->state == OUT_CONNECTING)
		snprintf(why, sizeof(why), "connect to %s: timed out", o->host);
	else
		snprintf(why, sizeof(why), "timed out waiting for the %s reply",
			 stage_name(dd_smtpc_stage(o->c)));
	o->timed_out = true;
	out_fail(o, why);
}

static bool out_flush(struct dd_out *o)
{
	const char *buf;
	size_t len;

	for (;;) {
		ssize_t n;

		dd_smtpc_output(o->c, &buf, &len);
		if (!len) {
			o->want_out = false;
			return true;
		}
		if (o->tls) {
			char err[256];

			n = dd_tls_write(o->tls, buf, len, err, sizeof(err));
			if (n == -EAGAIN) {
				o->want_out = true;
				return true;
			}
			if (n < 0)
				return false;
			dd_smtpc_written(o->c, (size_t)n);
			continue;
		}
		n = send(o->io.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN) {
				o->want_out = true;
				return true;
			}
			if (errno == EINTR)
				continue;
			return false;
		}
		dd_smtpc_written(o->c, (size_t)n);
	}
}

static void body_done(struct dd_out *o)
{
	free(o->bbuf);
	o->bbuf = NULL;
	o->sf_on = false;
	o->sf_async = false;
	dd_smtpc_body_sent(o->c);
}

/* The body through SSL_write, read from the segment chunk by chunk. */
static bool body_send_tls(struct dd_out *o)
{
	char err[256];

	while (o->sf_left || o->bb_off < o->bb_len) {
		ssize_t n;

		if (o->bb_off == o->bb_len) {
			size_t want = o->sf_left < BODY_CHUNK ? o->sf_left :
				      BODY_CHUNK;

			n = pread(o->sf_fd, o->bbuf, want, (off_t)o->sf_off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return false;	/* shorter than the index says */
			o->sf_off += (uint64_t)n;
			o->sf_left -= (uint64_t)n;
			o->bb_off = 0;
			o->bb_len = (size_t)n;
		}
		n = dd_tls_write(o->tls, o->bbuf + o->bb_off,
				 o->bb_len - o->bb_off, err, sizeof(err));
		if (n == -EAGAIN) {
			o->want_out = true;
			return true;
		}
		if (n < 0)
			return false;
		o->bb_off += (size_t)n;
	}
	body_done(o);
	return true;
}

/*
 * EINVAL from the module for a range that is valid: the spool's file
 * system is one the module cannot send from.  Say so once and send every
 * body with sendfile(2) from then on, rather than fail every delivery.
 */
static bool sf_refused_file(int fd, uint64_t count)
{
	struct statfs st;

	if (count > EVQ_SENDFILE_MAX)
		return false;
	if (atomic_exchange(&dd_d.sf_plain, true))
		return true;
	if (fstatfs(fd, &st))
		st.f_type = 0;
	dd_warn("the evq module cannot send from the spool's file system "
		"(type 0x%lx; overlayfs is 0x794c7630): bodies go with "
		"sendfile(2)", (unsigned long)st.f_type);
	return true;
}

/* Push the body; false on a socket or file error. */
static bool body_send(struct dd_out *o)
{
	if (o->tls && !dd_tls_ktls_send(o->tls))
		return body_send_tls(o);
	if (dd_kmod_sendfile()) {
		struct evq_sendfile sf = {
			.out_fd = o->io.fd, .in_fd = o->sf_fd,
			.offset = o->sf_off, .count = o->sf_left,
			.user_data = (uint64_t)(uintptr_t)&o->io | 1,
		};
		int r = evq_sendfile(&o->w->q, &sf);

		if (r == -EINVAL && sf_refused_file(o->sf_fd, sf.count))
			return body_send(o);
		if (r < 0)
			return false;
		o->sf_off += sf.sent;
		o->sf_left -= sf.sent;
		if (!o->sf_left) {
			body_done(o);
			return true;
		}
		if (sf.stop == EVQ_SF_STOP_ERROR)
			return false;
		/* Socket full or pages not in: the module finishes it. */
		sf.offset = o->sf_off;
		sf.count = o->sf_left;
		sf.flags = EVQ_SF_ASYNC;
		sf.sent = 0;
		sf.stop = 0;
		r = evq_sendfile(&o->w->q, &sf);
		if (r < 0)
			return false;
		o->sf_async = true;
		return true;
	}
	while (o->sf_left) {
		off_t off = (off_t)o->sf_off;
		ssize_t n = sendfile(o->io.fd, o->sf_fd, &off, o->sf_left);

		if (n < 0) {
			if (errno == EAGAIN) {
				o->want_out = true;
				return true;
			}
			if (errno == EINTR)
				continue;
			return false;
		}
		if (n == 0)
			return false;	/* the segment is shorter than the index says */
		o->sf_off += (uint64_t)n;
		o->sf_left -= (uint64_t)n;
	}
	body_done(o);
	return true;
}

void dd_out_sendfile_done(struct dd_worker *w, struct dd_io *io, int res)
{
	struct dd_out *o = (struct dd_out *)io;

	o->sf_async = false;
	if (o->state == OUT_CLOSED) {
		/* Closed while the module still had it: free it now. */
		dd_bury(w, &o->io);
		return;
	}
	if (res < 0 || (uint64_t)res != o->sf_left) {
		out_fail(o, "sending the body failed");
		return;
	}
	o->sf_left = 0;
	body_done(o);
	out_pump(o);
}

static void start_body(struct dd_out *o)
{
	bool stuffed = dd_smtpc_body_stuffed(o->c);
	struct dd_msg *msg = o->tx->msg;

	o->body_wait = false;
	o->sf_on = true;
	o->sf_fd = dd_spool_seg_fd(dd_d.spool, msg->seg);
	o->sf_off = stuffed ? msg->stuffed_off : msg->raw_off;
	o->sf_left = stuffed ? msg->stuffed_len : msg->raw_len;
	if (o->tls && !dd_tls_ktls_send(o->tls)) {
		o->bb_off = o->bb_len = 0;
		o->bbuf = malloc(BODY_CHUNK);
		if (!o->bbuf) {
			out_fail(o, "out of memory");
			return;
		}
	}
	if (o->sf_fd < 0 || !body_send(o))
		out_fail(o, "sending the body failed");
}

static void arm(struct dd_out *o, unsigned int s)
{
	dd_timer_set(o->w, &o->timer, dd_mono_ns() + secs(s ? s : 1));
}

/*
 * Waiting for replies: the stage's timeout runs from the stage's start
 * or the last complete reply, not from the last byte read, so a reply
 * trickled in a line at a time (an endless multiline reply) times out.
 */
static void arm_reply(struct dd_out *o)
{
	enum dd_smtpc_stage st = dd_smtpc_stage(o->c);
	unsigned long n = dd_smtpc_replies(o->c);

	if (o->timer.slot && st == o->armed_stage && n == o->armed_replies)
		return;
	o->armed_stage = st;
	o->armed_replies = n;
	arm(o, dd_d.conf.timeout[st]);
}

static void go_idle(struct dd_out *o)
{
	struct dd_dest *d = o->d;

	/* Thousands may idle: keep them small. */
	free(o->tx);
	o->tx = NULL;
	o->idle = true;
	o->next_idle = d->idle;
	d->idle = o;
	arm(o, dd_d.conf.conn_idle);
}

static void unidle(struct dd_out *o)
{
	struct dd_out **pp;

	for (pp = &o->d->idle; *pp; pp = &(*pp)->next_idle)
		if (*pp == o) {
			*pp = o->next_idle;
			break;
		}
	o->idle = false;
}

static bool start_tx(struct dd_out *o)
{
	unsigned int i;

	/* shaping: max_msgs, or over a lowered limit (dd_shape_dest.c) */
	if (!o->leaving && !dd_shape_conn_more(o->d, o->shape, o->nmsgs))
		o->leaving = true;
	if (o->leaving)
		return false;
	if (!o->tx) {
		o->tx = malloc(sizeof(*o->tx));
		if (!o->tx)
			return false;
	}
	if (!dd_dest_take(o->d, o->tx))
		return false;
	for (i = 0; i < o->tx->n; i++) {
		o->tx->addr[i] = o->tx->rcpt[i]->addr;
		o->tx->notify[i] = o->tx->rcpt[i]->notify;
		o->tx->orcpt[i] = o->tx->rcpt[i]->orcpt;
	}
	o->m = (struct dd_smtpc_msg){
		.sender = o->tx->msg->sender, .rcpts = o->tx->addr,
		.nrcpt = o->tx->n,
		.flags = o->tx->msg->flags & (DD_MSG_8BIT | DD_MSG_SMTPUTF8),
		.envid = o->tx->msg->envid, .ret = o->tx->msg->ret,
		.notify = o->tx->notify, .orcpt = o->tx->orcpt,
		.raw_len = o->tx->msg->raw_len,
		.stuffed_len = o->tx->msg->stuffed_len,
	};
	if (dd_smtpc_start(o->c, &o->m)) {
		struct dd_smtpc_result r = { .nrcpt = 0 };
		struct dd_conn_info ci;

		conn_info(o, &ci, false);
		snprintf(r.msg.text, sizeof(r.msg.text), "internal error");
		dd_dest_result(o->d, o->tx, &r, &ci, 0);
		o->tx->n = 0;
		return false;
	}
	o->nmsgs++;
	o->t_tx = dd_mono_ns();
	return true;
}

/* One handshake step: true when it is over, well or not. */
static bool tls_step(struct dd_out *o)
{
	char err[300];
	int r = dd_tls_handshake(o->tls, err, sizeof(err));

	if (!r)
		return false;
	if (r < 0) {
		tls_failed(o, err);
		return true;
	}
	o->hs = false;
	dd_smtpc_tls_done(o->c, true, NULL);
	return true;
}

/* 220 to STARTTLS: the handshake begins. */
static void tls_start(struct dd_out *o)
{
	char err[300];

	o->tls = dd_tls_new(o->io.fd, o->tls_name, o->tls_pol, err,
			    sizeof(err));
	o->hs = true;
	if (!o->tls) {
		tls_failed(o, err);
		return;
	}
	arm(o, dd_d.conf.timeout[DD_STAGE_EHLO]);
	tls_step(o);
}

static void out_pump(struct dd_out *o)
{
	while (o->state == OUT_OPEN && !o->sf_on && !o->body_wait && !o->hs) {
		enum dd_smtpc_act act = dd_smtpc_run(o->c);

		switch (act) {
		case DD_SMTPC_READ:
			if (!out_flush(o))
				goto fail;
			arm_reply(o);
			return;
		case DD_SMTPC_IDLE:
			if (!o->greeted) {
				o->greeted = true;
				o->d->nopening--;
			}
			if (start_tx(o))
				break;
			if (!o->leaving && !dd_d.stop) {
				go_idle(o);
				return;
			}
			dd_smtpc_quit(o->c);
			break;
		case DD_SMTPC_BODY:
			if (!out_flush(o))
				goto fail;
			arm(o, dd_d.conf.timeout[DD_STAGE_BODY]);
			if (o->want_out) {
				o->body_wait = true;
				return;
			}
			start_body(o);
			break;
		case DD_SMTPC_TLS:
			if (!out_flush(o))
				goto fail;
			tls_start(o);
			break;
		case DD_SMTPC_DONE: {
			const struct dd_smtpc_result *r = dd_smtpc_result(o->c);
			struct dd_conn_info ci;

			conn_info(o, &ci, true);
			dd_dest_result(o->d, o->tx, r, &ci,
				       dd_mono_ns() - o->t_tx);
			o->tx->n = 0;
			break;
		}
		case DD_SMTPC_CLOSE: {
			const struct dd_smtp_reply *rp =
				dd_smtpc_session_reply(o->c);
			char why[400];

			out_flush(o);
			if (rp && rp->code)
				snprintf(why, sizeof(why), "%s said: %d %s",
					 o->host, rp->code, rp->text);
			else if (rp && (rp->enh[0] || rp->text[0]))
				/* ours: TLS required, a protocol error */
				snprintf(why, sizeof(why), "%s: %s", o->host,
					 rp->text);
			else
				snprintf(why, sizeof(why), "%s closed the session",
					 o->host);
			out_close(o, why, rp);
			return;
		}
		}
	}
	return;
fail:
	out_fail(o, "connection lost");
}

void dd_out_resume(struct dd_out *o)
{
	if (o->state != OUT_OPEN || !o->idle)
		return;
	unidle(o);
	dd_timer_del(o->w, &o->timer);
	if (!start_tx(o))
		dd_smtpc_quit(o->c);
	out_pump(o);
}

static void out_connected(struct dd_out *o)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(o->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
		char why[128];

		snprintf(why, sizeof(why), "connect to %s: %s", o->host,
			 strerror(err ? err : errno));
		out_close(o, why, NULL);
		return;
	}
	o->state = OUT_OPEN;
	arm(o, dd_d.conf.timeout[DD_STAGE_GREETING]);
}

void dd_out_event(struct dd_worker *w, struct dd_io *io, uint32_t events)
{
	struct dd_out *o = (struct dd_out *)io;
	char buf[8192];

	(void)w;
	if (o->state == OUT_CONNECTING) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		out_connected(o);
		if (o->state != OUT_OPEN)
			return;
	}
	if (o->state != OUT_OPEN)
		return;
	if (o->hs) {
		if (tls_step(o))
			out_pump(o);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
		for (;;) {
			ssize_t n;

			if (o->tls) {
				char err[256];

				n = dd_tls_read(o->tls, buf, sizeof(buf), err,
						sizeof(err));
				if (n == -EAGAIN) {
					n = -1;
					errno = EAGAIN;
				} else if (n < 0) {
					n = 0;	/* lost, as on EOF */
				}
			} else {
				n = recv(io->fd, buf, sizeof(buf), MSG_DONTWAIT);
			}

			if (n > 0) {
				if (dd_smtpc_feed(o->c, buf, (size_t)n)) {
					out_fail(o, "out of memory");
					return;
				}
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			/* EOF or error: the state machine says what was lost. */
			if (o->sf_on) {
				out_fail(o, "connection lost while sending the body");
				return;
			}
			dd_smtpc_eof(o->c);
			break;
		}
	}
	/* TLS may need to read before it can write. */
	if ((events & EPOLLOUT) || (o->tls && o->want_out)) {
		if (o->want_out && !out_flush(o)) {
			out_fail(o, "connection lost");
			return;
		}
		if (o->body_wait && !o->want_out) {
			start_body(o);
		} else if (o->sf_on && !o->sf_async) {
			uint64_t left = o->sf_left;
			size_t boff = o->bb_off;

			if (!body_send(o)) {
				out_fail(o, "sending the body failed");
				return;
			}
			/*
			 * body_timeout is for a write that makes no progress,
			 * not for the whole body: a big message to a slow
			 * server is no failure while it moves.
			 */
			if (o->sf_on && (o->sf_left != left || o->bb_off != boff))
				arm(o, dd_d.conf.timeout[DD_STAGE_BODY]);
		}
	}
	if (o->state == OUT_OPEN && o->idle) {
		/* The server spoke while we were idle (421, close). */
		unidle(o);
		dd_timer_del(o->w, &o->timer);
	}
	out_pump(o);
}

struct dd_out *dd_out_open(struct dd_dest *d, const struct dd_target *t)
{
	struct dd_worker *w = d->w;
	const struct dd_route *rt = &t->r;
	struct dd_out *o = calloc(1, sizeof(*o));
	unsigned int flags = 0;
	int fd, one = 1;

	if (!o)
		return NULL;
	if (!dd_d.conf.pipelining)
		flags |= DD_SMTPC_NO_PIPELINING;
	if (!dd_d.conf.chunking)
		flags |= DD_SMTPC_NO_CHUNKING;
	o->tls_pol = dd_tls_policy_for(d->domain);
	if (o->tls_pol == DD_TLS_MAY && dd_tls_plain_now(d->domain))
		o->tls_pol = DD_TLS_NONE;
	if (o->tls_pol == DD_TLS_MAY)
		flags |= DD_SMTPC_STARTTLS;
	else if (o->tls_pol != DD_TLS_NONE)
		flags |= DD_SMTPC_TLS_REQUIRED;
	if (o->tls_pol != DD_TLS_NONE) {
		/* The name the certificate should have: the MX's, the route's. */
		char a[INET6_ADDRSTRLEN] = "";

		if (!t->mx && !rt->host[0]) {
			const struct sockaddr_in *s4 = (const void *)&rt->addr;
			const struct sockaddr_in6 *s6 = (const void *)&rt->addr;

			if (rt->addr.ss_family == AF_INET)
				inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
			else
				inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		}
		o->tls_name = strdup(t->mx ? t->mx : rt->host[0] ? rt->host : a);
		if (!o->tls_name) {
			free(o);
			return NULL;
		}
	}
	o->c = dd_smtpc_new(dd_d.conf.helo_name, flags);
	if (!o->c) {
		free(o->tls_name);
		free(o);
		return NULL;
	}
	fd = socket(rt->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
	if (fd < 0) {
		dd_warn("socket: %s", strerror(errno));
		dd_smtpc_free(o->c);
		free(o->tls_name);
		free(o);
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	o->io.fd = fd;
	o->io.kind = DD_IO_OUT;
	o->w = w;
	o->d = d;
	o->mx = t->mx;
	o->ref = t->ref;
	o->shape = t->shape;
	o->state = OUT_CONNECTING;
	o->timer.fire = out_timeout;
	o->t_conn = dd_mono_ns();
	snprintf(o->host, sizeof(o->host), "%s", rt->name);
	d->nconns++;
	d->nopening++;
	dd_shape_opened(d, t->shape);	/* shaping: counts for its host */
	w->out_conns++;
	w->out_opened++;
	if (w->out_conns > w->out_conns_peak)
		w->out_conns_peak = w->out_conns;
	{
		unsigned int now = atomic_fetch_add(&dd_d.out_conns_total, 1) + 1;
		unsigned int peak = atomic_load(&dd_d.out_conns_peak);

		while (now > peak &&
		       !atomic_compare_exchange_weak(&dd_d.out_conns_peak,
						     &peak, now))
			;
	}
	if (connect(fd, (const struct sockaddr *)&rt->addr, rt->addrlen) &&
	    errno != EINPROGRESS) {
		char why[128];

		snprintf(why, sizeof(why), "connect to %s: %s", o->host,
			 strerror(errno));
		/* Not watched yet: out_close's unwatch fails harmlessly. */
		out_close(o, why, NULL);
		return NULL;
	}
	if (dd_worker_watch(w, &o->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP)) {
		out_close(o, "cannot watch the connection", NULL);
		return NULL;
	}
	arm(o, dd_d.conf.timeout[DD_STAGE_CONNECT]);
	return o;
}
