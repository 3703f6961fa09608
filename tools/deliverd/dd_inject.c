// SPDX-License-Identifier: GPL-2.0
/*
 * Injection: the SMTP listener's and the control socket's sessions.  Each
 * complete message goes to the spool; its 250 leaves only when the
 * spool's committer says it is durable, through the session's worker's
 * mailbox.  A session closed by its client with messages still in the
 * spool's hands stays allocated (dead) until the last outcome comes back.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dd_core.h"
#include "dd_dkim.h"
#include "dd_log.h"

/*
 * Unprocessed input a session may hold.  Past it we stop reading (TCP
 * pushes back on the client) until the session has caught up, e.g. once
 * the spool has answered for the messages it waits on.
 */
#define DD_IN_BACKLOG	(256U * 1024U)

struct dd_in {
	struct dd_io io;		/* first: user_data points here */
	struct dd_worker *w;
	struct dd_smtpd *s;
	struct dd_timer timer;		/* smtpd_timeout, per record */
	uint64_t progress;		/* dd_smtpd_progress() when armed */
	uint64_t gen;
	unsigned int submitted;		/* in the spool's hands */
	bool ctl;			/* control socket session */
	bool ctl_wait;			/* an X-command is being answered */
	bool closing;			/* CLOSE seen: flush, then close */
	bool closed;			/* fd closed, waiting for outcomes */
	bool counted;			/* holds a connection_limit slot */
	bool want_out;
	bool rd_paused;			/* DD_IN_BACKLOG reached: not reading */
	bool wrote;			/* reply bytes left since the last arm */
	char peer[INET6_ADDRSTRLEN + 8];
};

struct dd_sub {
	struct dd_worker *w;
	struct dd_in *in;
	const struct dd_smtpd_msg *smsg;
};

static void in_pump(struct dd_in *in);

/* Free once closed and nothing that names it (spool, control) is due. */
static void in_maybe_bury(struct dd_in *in)
{
	if (in->closed && !in->submitted && !in->ctl_wait && !in->io.dead)
		dd_bury(in->w, &in->io);
}

static void in_release(struct dd_in *in)
{
	if (!in->closed) {
		dd_timer_del(in->w, &in->timer);
		dd_worker_unwatch(in->w, &in->io);
		close(in->io.fd);
		in->closed = true;
		if (in->counted)
			atomic_fetch_sub(&dd_d.in_conns, 1);
		in->w->in_conns--;
	}
	in_maybe_bury(in);
}

void dd_in_free(struct dd_io *io)
{
	struct dd_in *in = (struct dd_in *)io;

	dd_smtpd_free(in->s);
	free(in);
}

static bool in_flush(struct dd_in *in);

static void in_timeout(struct dd_worker *w, struct dd_timer *t)
{
	struct dd_in *in = (struct dd_in *)((char *)t -
					    offsetof(struct dd_in, timer));

	(void)w;
	dd_info("inbound session from %s: no complete command or line in "
		"%u s (smtpd_timeout): 421, closed", in->peer,
		dd_d.conf.smtpd_timeout);
	dd_smtpd_timeout(in->s);
	in_flush(in);		/* best effort: it is not reading, maybe */
	in_release(in);
}

/*
 * The timeout runs from the last record the client completed (or reply
 * bytes it took), not from its last byte: a client dribbling one byte at
 * a time still has smtpd_timeout seconds per line, as Postfix's
 * smtpd_per_record_deadline, so it cannot hold a slot for ever.
 */
static void in_arm(struct dd_in *in)
{
	uint64_t p = dd_smtpd_progress(in->s);

	if (!in->wrote && p == in->progress && in->timer.slot)
		return;
	in->progress = p;
	in->wrote = false;
	dd_timer_set(in->w, &in->timer, dd_mono_ns() +
		     (uint64_t)dd_d.conf.smtpd_timeout * 1000000000ULL);
}

/* Write what the session has; false when the connection failed. */
static bool in_flush(struct dd_in *in)
{
	const char *buf;
	size_t len;

	for (;;) {
		ssize_t n;

		dd_smtpd_output(in->s, &buf, &len);
		if (!len) {
			in->want_out = false;
			return true;
		}
		n = send(in->io.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN) {
				in->want_out = true;
				return true;
			}
			if (errno == EINTR)
				continue;
			return false;
		}
		dd_smtpd_written(in->s, (size_t)n);
		in->wrote = true;
	}
}

static void in_submitted(void *arg, struct dd_msg *msg, int err)
{
	struct dd_sub *sub = arg;
	struct dd_mail *m = calloc(1, sizeof(*m));
	uint64_t qid = msg ? msg->id : 0;

	/* qid first: once dispatched, another thread may finish msg. */
	if (msg)
		dd_dispatch(msg);
	if (!m) {
		dd_err("injected " DD_QID_FMT ": no memory for the reply",
		       (unsigned long long)qid);
		free(sub);
		return;
	}
	m->type = DD_MAIL_INJECTED;
	m->in = sub->in;
	m->smsg = sub->smsg;
	m->err = err;
	m->in_gen = qid;
	if (msg)
		atomic_fetch_add(&dd_d.injected, 1);
	dd_post(sub->w, m);
	free(sub);
}

void dd_in_injected(struct dd_worker *w, struct dd_mail *m)
{
	struct dd_in *in = m->in;

	(void)w;
	in->submitted--;
	if (in->closed) {
		in_maybe_bury(in);
		return;
	}
	dd_smtpd_message_done(in->s, m->smsg, m->err, m->in_gen);
	in_pump(in);
}

/*
 * DKIM: sign before the spool, so the stored message is the signed one
 * (sendfile sends it as it is, a retry sends the same signature).  The
 * signatures go on top, above our Received:, as a signer's fields
 * conventionally do: whatever is added later is added above them.  out
 * holds the signature fields and s->head points to them.  This runs on the
 * event-loop thread: RSA-2048 costs about 1 ms a message.
 */
static int dkim_sign(struct dd_submit *s, struct dd_buf *out)
{
	int r;

	if (!dd_d.dkim)
		return 0;
	r = dd_dkim_sign(dd_d.dkim, s->body, s->body_len, time(NULL), out);
	if (r <= 0) {
		if (r < 0)
			dd_err("DKIM signing failed: %s", strerror(-r));
		return r;
	}
	/* The spool puts the signature before the message as it copies it. */
	s->head = out->p;
	s->head_len = out->len;
	return 0;
}

static int in_submit(struct dd_in *in, const struct dd_smtpd_msg *sm)
{
	struct dd_buf sig = DD_BUF_INIT;
	struct dd_sub *sub = malloc(sizeof(*sub));
	struct dd_submit s = {
		.sender = sm->sender, .rcpts = sm->rcpts, .nrcpt = sm->nrcpt,
		.flags = sm->flags, .body = sm->body, .body_len = sm->body_len,
		.envid = sm->envid, .ret = sm->ret, .notify = sm->notify,
		.orcpt = sm->orcpt,
		.done = in_submitted,
	};
	int err;

	if (!sub)
		return -ENOMEM;
	sub->w = in->w;
	sub->in = in;
	sub->smsg = sm;
	s.arg = sub;
	err = dkim_sign(&s, &sig);
	if (!err)
		err = dd_spool_submit(dd_d.spool, &s);
	dd_buf_free(&sig);
	if (err) {
		free(sub);
		return err;
	}
	in->submitted++;
	return 0;
}

static bool in_read(struct dd_in *in);

static void in_pump(struct dd_in *in)
{
	/*
	 * While the client does not read its replies, process nothing more:
	 * with reading paused at DD_IN_BACKLOG, that bounds the session.
	 */
	while (!in->closed && !in->ctl_wait && !in->want_out) {
		enum dd_smtpd_act act = dd_smtpd_run(in->s);

		switch (act) {
		case DD_SMTPD_READ:
			if (!in_flush(in))
				goto fail;
			/* Caught up: read what the socket held meanwhile. */
			if (in->rd_paused &&
			    dd_smtpd_unread(in->s) < DD_IN_BACKLOG / 2) {
				in->rd_paused = false;
				if (!in_read(in))
					goto fail;
				continue;
			}
			if (in->closing && !in->want_out && !in->submitted)
				goto fail;
			in_arm(in);
			return;
		case DD_SMTPD_MESSAGE: {
			const struct dd_smtpd_msg *sm = dd_smtpd_message(in->s);
			int err = in_submit(in, sm);

			if (err)
				dd_smtpd_message_done(in->s, sm, err, 0);
			break;
		}
		case DD_SMTPD_CONTROL:
			in->ctl_wait = true;
			dd_ctl_command(in->w, in, dd_smtpd_control(in->s));
			break;
		case DD_SMTPD_CLOSE:
			in->closing = true;
			if (!in_flush(in))
				goto fail;
			if (in->want_out || in->submitted)
				return;
			goto fail;
		}
	}
	return;
fail:
	in_release(in);
}

/* An X-command's answer (dd_ctl.c), possibly from another worker's turn. */
void dd_in_control_done(struct dd_in *in, int code, const char *text)
{
	in->ctl_wait = false;
	if (in->closed) {
		in_maybe_bury(in);
		return;
	}
	dd_smtpd_control_done(in->s, code, text);
	in_pump(in);
}

/* Read until EAGAIN (edge-triggered) or the backlog; false: drop it. */
static bool in_read(struct dd_in *in)
{
	char buf[16384];

	for (;;) {
		ssize_t n;

		if (dd_smtpd_unread(in->s) >= DD_IN_BACKLOG) {
			in->rd_paused = true;
			return true;
		}
		n = recv(in->io.fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			if (dd_smtpd_feed(in->s, buf, (size_t)n))
				return false;
			continue;
		}
		if (n == 0) {
			dd_smtpd_eof(in->s);
			return true;
		}
		if (errno == EINTR)
			continue;
		return errno == EAGAIN;
	}
}

void dd_in_event(struct dd_worker *w, struct dd_io *io, uint32_t events)
{
	struct dd_in *in = (struct dd_in *)io;

	(void)w;
	if (in->closed)
		return;
	if (!in->rd_paused &&
	    events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP) &&
	    !in_read(in)) {
		in_release(in);
		return;
	}
	if (events & EPOLLOUT && in->want_out && !in_flush(in)) {
		in_release(in);
		return;
	}
	in_pump(in);
	/* Still not reading its replies: the timer runs, unless it took some. */
	if (!in->closed && in->want_out && in->wrote)
		in_arm(in);
}

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t len)
{
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr,
			  out, len);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)ss)->sin6_addr, out, len);
	else
		snprintf(out, len, "unix");
}

void dd_in_accept(struct dd_worker *w, struct dd_io *lio)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct dd_smtpd_conf sc = {
			.hostname = dd_d.conf.hostname,
			.max_line = dd_d.conf.line_length_limit,
			.max_size = dd_d.conf.message_size_limit,
			.max_rcpts = dd_d.conf.recipient_limit,
			.max_errors = dd_d.conf.error_limit,
			.control = lio->ctl,
		};
		const char *refuse = NULL;
		bool temp = false;
		char peer[INET6_ADDRSTRLEN + 8];
		struct dd_in *in;
		int fd = accept4(lio->fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				dd_warn("accept: %s", strerror(errno));
			return;
		}
		peer_name(&ss, peer, sizeof(peer));
		in = calloc(1, sizeof(*in));
		if (!in) {
			close(fd);
			continue;
		}
		if (!lio->ctl) {
			int one = 1;

			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
			if (!dd_conf_allowed(&dd_d.conf,
					     (struct sockaddr *)&ss)) {
				refuse = "Access denied: network not allowed";
				dd_info("refused %s: not in allow_networks", peer);
			} else if (atomic_fetch_add(&dd_d.in_conns, 1) >=
				   dd_d.conf.connection_limit) {
				atomic_fetch_sub(&dd_d.in_conns, 1);
				refuse = "Too many connections, try again later";
				temp = true;
				dd_info("refused %s: connection_limit %u reached",
					peer, dd_d.conf.connection_limit);
			} else {
				in->counted = true;
			}
		}
		in->s = dd_smtpd_new(&sc, peer, refuse, temp);
		if (!in->s) {
			if (in->counted)
				atomic_fetch_sub(&dd_d.in_conns, 1);
			free(in);
			close(fd);
			continue;
		}
		snprintf(in->peer, sizeof(in->peer), "%s", peer);
		in->io.fd = fd;
		in->io.kind = DD_IO_IN;
		in->w = w;
		in->ctl = lio->ctl;
		in->gen = ++w->in_gen;
		in->timer.fire = in_timeout;
		w->in_conns++;
		if (dd_worker_watch(w, &in->io,
				    EPOLLIN | EPOLLOUT | EPOLLRDHUP)) {
			dd_warn("cannot watch an inbound session");
			in_release(in);
			continue;
		}
		in_pump(in);
	}
}

static void local_submitted(void *arg, struct dd_msg *msg, int err)
{
	(void)arg;
	if (!msg) {
		dd_err("a bounce could not be stored: %s", strerror(-err));
		return;
	}
	atomic_fetch_add(&dd_d.bounces_sent, 1);
	dd_dispatch(msg);
}

int dd_inject_local(const char *sender, const char *const *rcpts,
		    unsigned int nrcpt, uint32_t flags, const char *body,
		    size_t len)
{
	struct dd_submit s = {
		.sender = sender, .rcpts = rcpts, .nrcpt = nrcpt,
		.flags = flags, .body = body, .body_len = len,
		.done = local_submitted,
	};
	struct dd_buf sig = DD_BUF_INIT;
	int err;

	/* Unsigned is better than no bounce at all. */
	if (dkim_sign(&s, &sig))
		dd_warn("a bounce goes out without its DKIM signature");
	err = dd_spool_submit(dd_d.spool, &s);
	dd_buf_free(&sig);
	return err;
}
