// SPDX-License-Identifier: GPL-2.0
/*
 * Destinations: the recipients waiting for one domain, the sessions that
 * serve it, its limits (concurrency, message rate) and its back-off.  All
 * of it belongs to one worker, so nothing here takes a lock.
 *
 * A reply decides each recipient: 2xx to RCPT and to the body delivers;
 * 5xx fails it for good and the sender gets an RFC 3464 bounce (unless
 * the message is itself a bounce); anything else (4xx, no reply, a
 * timeout) defers it by retry_min * 2^(attempts-1), at most retry_max,
 * until max_age has passed since arrival, which fails it too.  A
 * destination that cannot be connected to or that refuses the session is
 * suspended as a whole, its waiting recipients deferred together.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dd_bounce.h"
#include "dd_dest.h"
#include "dd_log.h"
#include "dd_mx.h"

static uint32_t hash_domain(const char *s)
{
	uint32_t h = 5381;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		h = h * 33 + c;
	}
	return h;
}

static void dest_rehash(struct dd_worker *w)
{
	unsigned int nb = w->ndest_buckets ? w->ndest_buckets * 2 : 256, i;
	struct dd_dest **b = calloc(nb, sizeof(*b));

	if (!b)
		return;	/* keep the old table: longer chains, still right */
	for (i = 0; i < w->ndest_buckets; i++) {
		struct dd_dest *d, *next;

		for (d = w->dests[i]; d; d = next) {
			unsigned int k = hash_domain(d->domain) % nb;

			next = d->hnext;
			d->hnext = b[k];
			b[k] = d;
		}
	}
	free(w->dests);
	w->dests = b;
	w->ndest_buckets = nb;
}

static struct dd_dest *dest_find(struct dd_worker *w, const char *domain)
{
	struct dd_dest *d;

	if (!w->ndest_buckets)
		return NULL;
	for (d = w->dests[hash_domain(domain) % w->ndest_buckets]; d;
	     d = d->hnext)
		if (!strcasecmp(d->domain, domain))
			return d;
	return NULL;
}

static struct dd_dest *dest_get(struct dd_worker *w, const char *domain)
{
	struct dd_dest *d = dest_find(w, domain);
	char *p;
	unsigned int k;

	if (d)
		return d;
	if (w->ndests >= w->ndest_buckets)
		dest_rehash(w);
	if (!w->ndest_buckets)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->domain = strdup(domain);
	if (!d->domain) {
		free(d);
		return NULL;
	}
	for (p = d->domain; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p += 'a' - 'A';
	d->w = w;
	d->qtail = &d->qhead;
	d->route = dd_routes_lookup(dd_d.routes, d->domain);
	k = hash_domain(d->domain) % w->ndest_buckets;
	d->hnext = w->dests[k];
	w->dests[k] = d;
	w->ndests++;
	return d;
}

static void mark_runnable(struct dd_dest *d)
{
	if (d->runnable)
		return;
	d->runnable = true;
	d->rnext = d->w->runnable;
	d->w->runnable = d;
}

/* The message of the queue's last recipient, to count runs. */
static struct dd_msg *tail_msg(struct dd_dest *d)
{
	if (!d->qhead)
		return NULL;
	return ((struct dd_rcpt *)((char *)d->qtail -
				   offsetof(struct dd_rcpt, next)))->msg;
}

static void recount(struct dd_dest *d)
{
	struct dd_rcpt **pp, *prev = NULL;

	d->nruns = 0;
	for (pp = &d->qhead; *pp; prev = *pp, pp = &(*pp)->next)
		if (!prev || prev->msg != (*pp)->msg)
			d->nruns++;
	d->qtail = pp;
}

static void enqueue(struct dd_dest *d, struct dd_rcpt *r)
{
	if (tail_msg(d) != r->msg)
		d->nruns++;
	r->next = NULL;
	r->state = DD_RCPT_QUEUED;
	*d->qtail = r;
	d->qtail = &r->next;
	d->nqueued++;
	mark_runnable(d);
}

static void defer_list_add(struct dd_dest *d, struct dd_rcpt *r)
{
	r->state = DD_RCPT_DEFERRED;
	r->next = d->deferred;
	d->deferred = r;
	d->ndeferred++;
}

static void hold_add(struct dd_dest *d, struct dd_rcpt *r)
{
	r->held = 1;
	r->next = d->heldq;
	d->heldq = r;
	d->nheld++;
}

void dd_dest_msg(struct dd_worker *w, struct dd_msg *msg)
{
	int64_t now = dd_now();
	uint32_t i;

	for (i = 0; i < msg->nrcpt; i++) {
		struct dd_rcpt *r = &msg->rcpt[i];
		struct dd_dest *d;

		if (dd_rcpt_final(r->state) || dd_worker_of(r->domain) != w)
			continue;
		d = dest_get(w, r->domain);
		if (!d) {
			dd_err(DD_QID_FMT ": no memory for destination %s",
			       DD_QID(msg), r->domain);
			continue;
		}
		if (msg->flags & DD_MSG_HELD)
			hold_add(d, r);
		else if (r->state == DD_RCPT_DEFERRED && r->next_try > now)
			defer_list_add(d, r);
		else
			enqueue(d, r);
	}
}

bool dd_dest_take(struct dd_dest *d, struct dd_tx *tx)
{
	struct dd_rcpt *r = d->qhead;

	tx->n = 0;
	if (!r || d->held || d->backoff_until > dd_now())
		return false;
	/* shaping: the message rate (dd_shape_dest.c) */
	if (!dd_shape_may_send(d))
		return false;
	tx->msg = r->msg;
	/* The message's recipients here arrive together: take the run. */
	while (r && r->msg == tx->msg && tx->n < DD_TX_RCPTS) {
		d->qhead = r->next;
		r->state = DD_RCPT_ACTIVE;
		tx->rcpt[tx->n++] = r;
		r = d->qhead;
	}
	if (!d->qhead)
		d->qtail = &d->qhead;
	if (!r || r->msg != tx->msg)
		d->nruns--;
	d->nqueued -= tx->n;
	d->nactive += tx->n;
	return true;
}

static uint64_t backoff(unsigned int attempts)
{
	uint64_t s = dd_d.conf.retry_min;

	while (attempts-- > 1 && s < dd_d.conf.retry_max)
		s *= 2;
	return s < dd_d.conf.retry_max ? s : dd_d.conf.retry_max;
}

/* RET=FULL returns the whole message up to this size, else its headers. */
#define DD_BOUNCE_FULL_MAX	(1024 * 1024)

/*
 * The original's header block, for the bounce: at most 64 KiB of it; or
 * with full the whole message (the caller checked its size).
 */
static char *orig_headers(const struct dd_msg *msg, size_t *len, bool full)
{
	size_t max = msg->raw_len < 65536 ? msg->raw_len : 65536;
	char *buf, *end;
	ssize_t n;

	if (full)
		max = msg->raw_len;
	buf = malloc(max + 1);
	*len = 0;
	if (!buf)
		return NULL;
	n = pread(dd_spool_seg_fd(dd_d.spool, msg->seg), buf, max,
		  (off_t)msg->raw_off);
	if (n <= 0 || (full && (size_t)n != max)) {
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	if (full) {
		*len = (size_t)n;
		return buf;
	}
	end = memmem(buf, (size_t)n, "\r\n\r\n", 4);
	*len = end ? (size_t)(end - buf) + 2 : (size_t)n;
	return buf;
}

struct dd_fail {
	struct dd_rcpt *r;
	int code;
	char status[16];
	char diag[300];
};

/*
 * A failure notice (bounce) for the recipients in f, or with relayed a
 * success notice for recipients delivered to a server without DSN.
 * RFC 3461 4.1: a recipient's NOTIFY says which it wants (NEVER: none);
 * without NOTIFY, failures only.  RET=FULL sends the whole message back
 * in a bounce when it is small enough.
 */
static void bounce(struct dd_dest *d, struct dd_msg *msg,
		   const struct dd_fail *f, unsigned int n, const char *host,
		   bool relayed)
{
	uint8_t want = relayed ? DD_NOTIFY_SUCCESS : DD_NOTIFY_FAILURE;
	uint32_t flags = DD_MSG_NULLSENDER;
	struct dd_bounce_rcpt br[DD_TX_RCPTS];
	struct dd_bounce b = { 0 };
	const char *to[1] = { msg->sender };
	char *out = NULL, *hdr;
	size_t len = 0, hlen;
	unsigned int i, nb = 0;
	bool full;
	int err;

	if (msg->flags & DD_MSG_NULLSENDER || !*msg->sender)
		return;		/* never a bounce for a bounce */
	for (i = 0; i < n; i++) {
		uint8_t nt = f[i].r->notify;

		if (nt ? !(nt & want) : relayed) {
			dd_info(DD_QID_FMT ": no %s for <%s>: not asked for "
				"(NOTIFY)", DD_QID(msg), relayed ? "success notice"
				: "bounce", f[i].r->addr);
			continue;
		}
		br[nb++] = (struct dd_bounce_rcpt){
			.addr = f[i].r->addr, .status = f[i].status,
			.remote_mta = host, .code = f[i].code,
			.diag = f[i].diag, .last_attempt = dd_now(),
			.orcpt = f[i].r->orcpt,
		};
	}
	if (!nb)
		return;
	full = !relayed && msg->ret == DD_RET_FULL &&
	       msg->raw_len <= DD_BOUNCE_FULL_MAX;
	hdr = orig_headers(msg, &hlen, full);
	if (full && hdr) {
		b.message = hdr;
		b.message_len = hlen;
		b.message_global = msg->flags & DD_MSG_SMTPUTF8;
		for (size_t k = 0; k < hlen && !(flags & DD_MSG_8BIT); k++)
			if ((unsigned char)hdr[k] >= 0x80)
				flags |= DD_MSG_8BIT;
		if (msg->flags & DD_MSG_SMTPUTF8)
			flags |= DD_MSG_SMTPUTF8;
	} else if (!relayed && msg->ret == DD_RET_FULL) {
		b.full_max = DD_BOUNCE_FULL_MAX;
		if (full)	/* could not read it: headers, if we can */
			hdr = orig_headers(msg, &hlen, false);
	}
	b.envid = msg->envid;
	b.relayed = relayed;
	b.reporting_mta = dd_d.conf.hostname;
	b.from = dd_d.conf.bounce_from;
	b.to = msg->sender;
	b.qid = msg->id;
	b.arrival = msg->arrival;
	b.headers = hdr ? hdr : "";
	b.headers_len = hdr ? hlen : 0;
	b.rcpts = br;
	b.nrcpt = nb;
	b.now = dd_now();
	err = dd_bounce_build(&b, &out, &len);
	if (!err)
		err = dd_inject_local("", to, 1, flags, out, len);
	if (err)
		dd_err(DD_QID_FMT ": %s to <%s> failed: %s", DD_QID(msg),
		       relayed ? "success notice" : "bounce", msg->sender,
		       strerror(-err));
	else
		dd_info(DD_QID_FMT ": %s to <%s> for %u recipient%s of %s",
			DD_QID(msg), relayed ? "success notice" : "bounce",
			msg->sender, nb, nb == 1 ? "" : "s", d->domain);
	free(out);
	free(hdr);
}

/* Success notices for tx's delivered NOTIFY=SUCCESS recipients. */
static void relayed(struct dd_dest *d, struct dd_msg *msg,
		    const struct dd_tx *tx, const struct dd_smtpc_result *res,
		    const char *host)
{
	struct dd_fail ok[DD_TX_RCPTS];
	unsigned int i, n = 0;

	for (i = 0; i < tx->n; i++) {
		struct dd_rcpt *r = tx->rcpt[i];

		if (r->state != DD_RCPT_DELIVERED ||
		    !(r->notify & DD_NOTIFY_SUCCESS))
			continue;
		ok[n].r = r;
		ok[n].code = res->msg.code;
		snprintf(ok[n].status, sizeof(ok[n].status), "%s",
			 res->msg.enh[0] == '2' ? res->msg.enh : "2.0.0");
		snprintf(ok[n].diag, sizeof(ok[n].diag), "%s", res->msg.text);
		n++;
	}
	bounce(d, msg, ok, n, host, true);
}

static void status_of(const struct dd_smtp_reply *rp, char *st, size_t len)
{
	if (rp->enh[0])
		snprintf(st, len, "%s", rp->enh);
	else
		snprintf(st, len, "%d.0.0", rp->code >= 500 ? 5 : 4);
}

void dd_dest_result(struct dd_dest *d, struct dd_tx *tx,
		    const struct dd_smtpc_result *res,
		    const struct dd_conn_info *ci, uint64_t dur_ns)
{
	const char *host = ci ? ci->host : NULL;
	struct dd_worker *w = d->w;
	struct dd_msg *msg = tx->msg;
	struct dd_fail fail[DD_TX_RCPTS];
	struct dd_rcpt *fin[DD_TX_RCPTS];
	unsigned int i, nfail = 0, nfin = 0, nrelayed = 0;
	int64_t now = dd_now();

	/* shaping: a "slow down" reply throttles (dd_shape_dest.c) */
	dd_shape_result(d, res);
	for (i = 0; i < tx->n; i++) {
		struct dd_rcpt *r = tx->rcpt[i];
		const struct dd_smtp_reply *rr =
			i < res->nrcpt ? &res->rcpt[i] : NULL;
		const struct dd_smtp_reply *why = &res->msg;
		struct dd_attempt a = {
			.qid = msg->id, .rcpt = r->addr, .sender = msg->sender,
			.dest = d->domain, .host = host,
			.duration_us = dur_ns / 1000,
		};
		int code;

		if (ci) {
			a.mx = ci->mx;
			a.transport = ci->transport;
			a.tls = ci->tls;
			a.tls_cipher = ci->tls_cipher;
			a.tls_verify = ci->tls_verify;
			a.body_io = ci->body_io;
		}
		/* The RCPT reply speaks for the recipient unless it was 2xx. */
		if (rr && rr->code && rr->code / 100 != 2)
			why = rr;
		code = why->code;
		if (rr && rr->code / 100 == 2 && res->msg.code / 100 == 2)
			code = res->msg.code;
		r->attempts++;
		d->nactive--;
		a.attempt = r->attempts;
		a.code = why->code;
		a.enh = why->enh;
		a.reply = why->text;
		w->attempts++;
		if (rr && rr->code / 100 == 2 && res->msg.code / 100 == 2) {
			r->state = DD_RCPT_DELIVERED;
			a.status = "delivered";
			a.code = res->msg.code;
			a.enh = res->msg.enh;
			a.reply = res->msg.text;
			fin[nfin++] = r;
			d->delivered++;
			w->delivered++;
			/* RFC 3461 6.2.2.2: no DSN further on, so we notify */
			if (!res->dsn && (r->notify & DD_NOTIFY_SUCCESS))
				nrelayed++;
		} else if (code / 100 == 5 ||
			   now - msg->arrival >= (int64_t)dd_d.conf.max_age) {
			struct dd_fail *f = &fail[nfail++];

			f->r = r;
			f->code = why->code;
			if (code / 100 == 5) {
				status_of(why, f->status, sizeof(f->status));
				a.status = "bounced";
			} else {
				snprintf(f->status, sizeof(f->status), "4.4.7");
				a.status = "expired";
				w->expired++;
			}
			snprintf(f->diag, sizeof(f->diag), "%s%s",
				 code / 100 == 5 ? "" :
				 "delivery time expired; last error: ",
				 why->text);
			r->state = DD_RCPT_FAILED;
			fin[nfin++] = r;
			d->failed++;
			w->bounced++;
		} else {
			r->next_try = now + (int64_t)backoff(r->attempts);
			defer_list_add(d, r);
			dd_spool_defer(dd_d.spool, msg, r->idx);
			a.status = "deferred";
			d->deferrals++;
			w->deferred++;
		}
		dd_dlog(&a);
	}
	if (nfail)
		bounce(d, msg, fail, nfail, host, false);
	if (nrelayed)
		relayed(d, msg, tx, res, host);
	/* Last: the final one may hand msg to the spool, which frees it. */
	for (i = 0; i < nfin; i++)
		dd_spool_final(dd_d.spool, fin[i]->msg, fin[i]->idx);
	if (d->nqueued)
		mark_runnable(d);
}

/* Fail or defer everything waiting, with one reason (no route, suspended). */
static void drain_queue(struct dd_dest *d, bool permanent,
			const struct dd_smtp_reply *rp, const char *host,
			const char *why)
{
	struct dd_worker *w = d->w;
	int64_t now = dd_now();

	while (d->qhead) {
		struct dd_smtpc_result res = { .nrcpt = 0 };
		struct dd_tx tx = { .n = 0 };
		struct dd_rcpt *r = d->qhead;
		struct dd_conn_info ci = { .host = host };

		tx.msg = r->msg;
		while (r && r->msg == tx.msg && tx.n < DD_TX_RCPTS) {
			d->qhead = r->next;
			r->state = DD_RCPT_ACTIVE;
			tx.rcpt[tx.n++] = r;
			r = d->qhead;
		}
		d->nqueued -= tx.n;
		d->nactive += tx.n;
		if (permanent && rp) {
			res.msg = *rp;	/* a DNS verdict: its own status */
		} else if (permanent) {
			res.msg.code = 550;
			snprintf(res.msg.enh, sizeof(res.msg.enh), "5.4.4");
		} else if (rp && rp->code / 100 == 4) {
			/* A 421 greeting: log the server's own words. */
			res.msg = *rp;
		} else if (rp && !rp->code && rp->enh[0]) {
			/* Our reason with a status (TLS required): keep it. */
			res.msg = *rp;
		}
		if (!res.msg.code || res.msg.code != (rp ? rp->code : 0))
			snprintf(res.msg.text, sizeof(res.msg.text), "%s", why);
		dd_dest_result(d, &tx, &res, &ci, 0);
	}
	d->qtail = &d->qhead;
	d->nruns = 0;
	(void)w;
	(void)now;
}

void dd_dest_closed(struct dd_dest *d, struct dd_out *o, bool failed,
		    const struct dd_smtp_reply *rp, const char *host,
		    const char *why)
{
	bool throttled;

	d->nconns--;
	if (failed)
		d->nopening--;
	/* shaping: count the close; a throttling refusal does not suspend */
	throttled = dd_shape_closed(d, o, failed, rp);
	if (!d->route && dd_mx_closed(d, o, failed, why)) {
		/* Another address or MX host is left: no suspension yet. */
		mark_runnable(d);
		return;
	}
	if (failed && !throttled) {
		int64_t now = dd_now();
		uint64_t s = dd_d.conf.dest_backoff;
		unsigned int n = ++d->backoff_n;

		while (n-- > 1 && s < dd_d.conf.retry_max)
			s *= 2;
		if (s > dd_d.conf.retry_max)
			s = dd_d.conf.retry_max;
		if (d->backoff_until < now + (int64_t)s)
			d->backoff_until = now + (int64_t)s;
		dd_info("%s: %s; destination suspended for %llu s", d->domain,
			why, (unsigned long long)s);
		/* The last session gone: whatever waits is deferred now. */
		if (!d->nconns)
			drain_queue(d, false, rp, host, why);
		return;
	}
	d->backoff_n = 0;
	mark_runnable(d);
}

void dd_dest_wake(struct dd_dest *d)
{
	mark_runnable(d);
}

/*
 * The domain's MX lookup failed: bounce what waits, or defer it and
 * suspend the destination as if it could not be connected to.
 */
static void mx_failed(struct dd_dest *d, bool permanent,
		      const struct dd_smtp_reply *rp)
{
	if (!permanent) {
		uint64_t s = dd_d.conf.dest_backoff;
		unsigned int n = ++d->backoff_n;

		while (n-- > 1 && s < dd_d.conf.retry_max)
			s *= 2;
		if (s > dd_d.conf.retry_max)
			s = dd_d.conf.retry_max;
		d->backoff_until = dd_now() + (int64_t)s;
		dd_info("%s: %s; destination suspended for %llu s", d->domain,
			rp->text, (unsigned long long)s);
	}
	drain_queue(d, permanent, rp, NULL, rp->text);
}

void dd_dest_kick(struct dd_dest *d)
{
	unsigned int want;

	if (!d->qhead || d->held || d->backoff_until > dd_now())
		return;
	if (!d->route) {
		struct dd_smtp_reply rp = { .code = 0 };

		switch (dd_mx_prepare(d, &rp)) {
		case DD_MX_READY:
			break;
		case DD_MX_WAIT:
			return;
		case DD_MX_PERM:
		case DD_MX_TEMP:
			mx_failed(d, rp.code / 100 == 5, &rp);
			return;
		}
	}
	/* Idle sessions first: no handshake to pay. */
	while (d->idle && d->qhead &&
	       dd_shape_may_resume(d, d->idle)) {	/* shaping */
		struct dd_out *o = d->idle;

		d->idle = dd_out_next_idle(o);
		dd_out_set_next_idle(o, NULL);
		dd_out_resume(o);
	}
	/*
	 * A session per waiting message, up to the destination's limit:
	 * sessions still opening will each take one; busy ones may be busy
	 * for long (a slow server), so they are not counted on.
	 */
	want = dd_shape_concurrency(d);		/* shaping */
	while (d->nconns < want && d->nruns > d->nopening && d->qhead &&
	       d->backoff_until <= dd_now()) {
		struct dd_target t = { .mx = NULL };

		if (d->route)
			t.r = *d->route;
		else if (!dd_mx_target(d, &t))
			break;
		if (!dd_shape_may_open(d, &t))		/* shaping */
			break;
		if (!dd_out_open(d, &t))
			break;
	}
}

void dd_dest_run(struct dd_worker *w)
{
	while (w->runnable) {
		struct dd_dest *d = w->runnable;

		w->runnable = d->rnext;
		d->runnable = false;
		dd_dest_kick(d);
	}
}

/* Each second: deferred recipients whose time came, suspended domains. */
void dd_dest_retry(struct dd_worker *w, struct dd_timer *t)
{
	int64_t now = dd_now();
	unsigned int i;

	for (i = 0; i < w->ndest_buckets; i++) {
		struct dd_dest *d;

		for (d = w->dests[i]; d; d = d->hnext) {
			struct dd_rcpt **pp = &d->deferred, *r;

			while ((r = *pp)) {
				if (r->next_try > now) {
					pp = &r->next;
					continue;
				}
				*pp = r->next;
				d->ndeferred--;
				enqueue(d, r);
			}
			dd_shape_tick(d);	/* shaping: throttle recovery */
			if (d->qhead && d->backoff_until <= now)
				mark_runnable(d);
		}
	}
	dd_timer_set(w, t, dd_mono_ns() + 1000000000ULL);
}

static bool ctl_match(const struct dd_ctl_req *q, const struct dd_dest *d)
{
	return !q->arg[0] || !strcasecmp(q->arg, d->domain);
}

/* Move a message's recipients (or all, by domain) between lists. */
static uint64_t hold_msgs(struct dd_dest *d, const struct dd_ctl_req *q)
{
	struct dd_rcpt **lists[2] = { &d->qhead, &d->deferred }, **pp, *r;
	uint64_t n = 0;
	unsigned int l;

	for (l = 0; l < 2; l++) {
		pp = lists[l];
		while ((r = *pp)) {
			if (q->by_qid && r->msg->id != q->qid) {
				pp = &r->next;
				continue;
			}
			*pp = r->next;
			if (l == 0)
				d->nqueued--;
			else
				d->ndeferred--;
			hold_add(d, r);
			if (q->by_qid)
				dd_spool_hold(dd_d.spool, r->msg, true);
			n++;
		}
	}
	/* qtail may point into a removed element: rebuild it. */
	recount(d);
	return n;
}

static uint64_t release_msgs(struct dd_dest *d, const struct dd_ctl_req *q)
{
	struct dd_rcpt **pp = &d->heldq, *r;
	int64_t now = dd_now();
	uint64_t n = 0;

	while ((r = *pp)) {
		if (q->by_qid && r->msg->id != q->qid) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		d->nheld--;
		r->held = 0;
		if (q->by_qid)
			dd_spool_hold(dd_d.spool, r->msg, false);
		if (r->state == DD_RCPT_DEFERRED && r->next_try > now)
			defer_list_add(d, r);
		else
			enqueue(d, r);
		n++;
	}
	return n;
}

/* Every destination with work or connections, for XSTATS and metrics. */
void dd_dest_stats(struct dd_worker *w, struct dd_top *top)
{
	unsigned int i;
	struct dd_dest *d;

	for (i = 0; i < w->ndest_buckets; i++)
		for (d = w->dests[i]; d; d = d->hnext)
			if (d->nqueued || d->ndeferred || d->nactive ||
			    d->nheld || d->nconns)
				dd_top_add(top, d->domain,
					   (uint64_t)d->nqueued + d->ndeferred +
					   d->nactive + d->nheld, d->nconns);
}

void dd_dest_ctl(struct dd_worker *w, struct dd_ctl_req *q)
{
	uint64_t n = 0, queued = 0, deferred = 0, active = 0, held = 0;
	uint64_t dests = 0;
	unsigned int i;

	/* A domain held before any of its mail came: its owner makes it. */
	if ((q->op == DD_CTL_HOLD || q->op == DD_CTL_RELEASE) && !q->by_qid &&
	    q->arg[0] && dd_worker_of(q->arg) == w) {
		struct dd_dest *d = dest_get(w, q->arg);

		if (d)
			d->held = q->op == DD_CTL_HOLD;
	}
	for (i = 0; i < w->ndest_buckets; i++) {
		struct dd_dest *d;

		for (d = w->dests[i]; d; d = d->hnext) {
			char shape[128];	/* shaping's fields */

			switch (q->op) {
			case DD_CTL_QUEUE:
				if (!d->nqueued && !d->ndeferred &&
				    !d->nactive && !d->nheld && !d->nconns &&
				    !dd_shape_throttled(d))
					break;
				dests++;
				dd_shape_ctl(d, shape, sizeof(shape));
				dd_ctl_append(q,
					"{\"dest\":\"%s\",\"queued\":%u,\"deferred\":%u,"
					"\"active\":%u,\"held\":%u,\"conns\":%u,"
					"\"dest_held\":%s,\"backoff_until\":%lld,"
					"\"delivered\":%llu,\"failed\":%llu%s}\n",
					d->domain, d->nqueued, d->ndeferred,
					d->nactive, d->nheld, d->nconns,
					d->held ? "true" : "false",
					(long long)d->backoff_until,
					(unsigned long long)d->delivered,
					(unsigned long long)d->failed, shape);
				break;
			case DD_CTL_FLUSH:
				if (!ctl_match(q, d))
					break;
				for (struct dd_rcpt *r = d->deferred; r; r = r->next)
					r->next_try = 0, n++;
				d->backoff_until = 0;
				d->backoff_n = 0;
				mark_runnable(d);
				break;
			case DD_CTL_HOLD:
				if (q->by_qid) {
					n += hold_msgs(d, q);
				} else if (ctl_match(q, d) && q->arg[0]) {
					d->held = true;
					n += hold_msgs(d, q);
				}
				break;
			case DD_CTL_RELEASE:
				if (!q->by_qid && ctl_match(q, d) && q->arg[0])
					d->held = false;
				if (q->by_qid || (ctl_match(q, d) && q->arg[0]))
					n += release_msgs(d, q);
				mark_runnable(d);
				break;
			}
			queued += d->nqueued;
			deferred += d->ndeferred;
			active += d->nactive;
			held += d->nheld;
		}
	}
	if (q->op == DD_CTL_FLUSH) {
		/* Due now, not at the next tick. */
		dd_dest_retry(w, &w->retry_timer);
	}
	pthread_mutex_lock(&q->lock);
	q->n += n;
	q->queued += queued;
	q->deferred += deferred;
	q->active += active;
	q->held += held;
	q->dests += dests;
	q->conns += w->out_conns;
	q->delivered += w->delivered;
	q->deferrals += w->deferred;
	q->bounced += w->bounced;
	q->attempts += w->attempts;
	q->events += w->events;
	q->waits += w->waits;
	pthread_mutex_unlock(&q->lock);
	if (q->op == DD_CTL_STATS)
		dd_ctl_stats_worker(w, q);
	dd_ctl_answered(w, q);
}
