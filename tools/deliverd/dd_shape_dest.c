// SPDX-License-Identifier: GPL-2.0
/*
 * Shaping, the event-loop half: what dd_dest.c and dd_out.c ask before
 * they open a connection or send a message, and what they tell it about
 * replies and closed sessions.
 *
 * A destination's limits are the settings (dest_concurrency,
 * dest_conn_rate, dest_rate, conn_max_msgs) overlaid with its
 * shaping_file line, looked up once; a throttle lowers concurrency and
 * message rate for a while.  An MX host's limits are mx_concurrency and
 * its "mx:" line.  Hosts are counted per worker thread: the domains an
 * MX host serves may be owned by different threads, each with its own
 * count, which keeps this lock-free (so with N threads a host may see up
 * to N times its limit when its domains hash to all of them).
 *
 * Rates are token buckets.  When one is empty the destination's timer is
 * armed for the moment a token will be there; when a host is full the
 * destination waits on the host's list and is woken when a session to
 * that host ends.  Nothing polls.
 *
 * Sessions over a lowered limit finish their transaction and close: they
 * are counted as leaving (nleaving) from the moment they are told, so
 * not all of them go at once.  A close takes one off the count, whichever
 * session it was; the count can only err low, never high, which keeps
 * more sessions than needed at worst for the time it takes one to close.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dd_dest.h"
#include "dd_log.h"
#include "dd_shape.h"

struct dd_shape_table *dd_shape_tab;

/* A host unused this long, with no session, is forgotten. */
#define HOST_IDLE_NS	(600 * 1000000000ULL)

struct dd_shape_host {
	struct dd_shape_host *hnext;
	struct dd_shape_limits lim;
	unsigned int nconns, nleaving;
	uint64_t used_ns;		/* last asked for a connection */
	struct dd_bucket conn_b, msg_b;
	struct dd_dest *waiters;	/* destinations waiting for a slot */
	char name[];
};

struct dd_shape_hosts {
	struct dd_shape_host **b;
	unsigned int nb, n;
	unsigned int sweep;		/* next bucket to look for idle hosts */
};

static uint32_t host_hash(const char *name)
{
	return dd_hash_name(name, DD_HASH_SEED);
}

static void hosts_rehash(struct dd_shape_hosts *hs)
{
	unsigned int nb = hs->nb ? hs->nb * 2 : 64, i;
	struct dd_shape_host **b = calloc(nb, sizeof(*b));

	if (!b)
		return;	/* longer chains, still right */
	for (i = 0; i < hs->nb; i++) {
		struct dd_shape_host *h, *next;

		for (h = hs->b[i]; h; h = next) {
			unsigned int k = host_hash(h->name) % nb;

			next = h->hnext;
			h->hnext = b[k];
			b[k] = h;
		}
	}
	free(hs->b);
	hs->b = b;
	hs->nb = nb;
}

/*
 * Forget the idle hosts of one bucket, a different one each time a host
 * is added, so that MX hosts seen once do not pile up over weeks.  Only
 * hosts nothing points to go: no session (its ref), no waiter.
 */
static void hosts_sweep(struct dd_shape_hosts *hs, uint64_t now)
{
	struct dd_shape_host **pp, *h;

	if (!hs->nb)
		return;
	pp = &hs->b[hs->sweep++ % hs->nb];
	while ((h = *pp)) {
		if (!h->nconns && !h->waiters && now - h->used_ns > HOST_IDLE_NS) {
			*pp = h->hnext;
			hs->n--;
			free(h);
			continue;
		}
		pp = &h->hnext;
	}
}

/*
 * This worker's state for host name, made on first use.  NULL without
 * memory: the host is then not limited, which beats not delivering.
 */
static struct dd_shape_host *host_get(struct dd_worker *w, const char *name)
{
	struct dd_shape_hosts *hs = w->shape_hosts;
	struct dd_shape_limits def = {
		.concurrency = dd_d.conf.mx_concurrency,
	};
	struct dd_shape_host *h;
	unsigned int k;

	if (!name || !*name)
		return NULL;
	if (!hs) {
		hs = calloc(1, sizeof(*hs));
		if (!hs)
			return NULL;
		w->shape_hosts = hs;
	}
	if (hs->nb) {
		for (h = hs->b[host_hash(name) % hs->nb]; h; h = h->hnext)
			if (!strcasecmp(h->name, name))
				return h;
	}
	hosts_sweep(hs, dd_mono_ns());
	if (hs->n >= hs->nb)
		hosts_rehash(hs);
	if (!hs->nb)
		return NULL;
	h = calloc(1, sizeof(*h) + strlen(name) + 1);
	if (!h)
		return NULL;
	strcpy(h->name, name);
	dd_shape_lookup_mx(dd_shape_tab, name, &def, &h->lim);
	k = host_hash(name) % hs->nb;
	h->hnext = hs->b[k];
	hs->b[k] = h;
	hs->n++;
	return h;
}

static struct dd_shape_dest *sd(struct dd_dest *d)
{
	struct dd_shape_dest *s = &d->shape;

	if (!s->init) {
		struct dd_shape_limits def = {
			.concurrency = dd_d.conf.dest_concurrency,
			.conn_rate = dd_d.conf.dest_conn_rate,
			.msg_rate = dd_d.conf.dest_rate,
			.max_msgs = dd_d.conf.conn_max_msgs,
		};

		dd_shape_lookup_dest(dd_shape_tab, d->domain, &def, &s->cfg);
		s->init = true;
	}
	return s;
}

static void shape_wake(struct dd_worker *w, struct dd_timer *t)
{
	struct dd_dest *d = (struct dd_dest *)((char *)t -
		offsetof(struct dd_dest, shape) -
		offsetof(struct dd_shape_dest, timer));

	(void)w;
	dd_dest_kick(d);
}

/* Wake d in wait_ns, unless it is to wake sooner already. */
static void wake_in(struct dd_dest *d, uint64_t wait_ns)
{
	struct dd_shape_dest *s = &d->shape;
	uint64_t when = dd_mono_ns() + wait_ns;

	if (s->timer.slot && s->timer.when <= when)
		return;
	s->timer.fire = shape_wake;
	dd_timer_set(d->w, &s->timer, when);
}

/* Is a message token there at the destination and host h?  If not, wake d then. */
static bool msg_ready(struct dd_dest *d, struct dd_shape_host *h, uint64_t now)
{
	struct dd_shape_dest *s = sd(d);
	double rate = dd_throttle_rate(&s->th, &s->cfg);
	uint64_t wait = dd_bucket_wait(&s->msg_b, rate, now);

	if (h) {
		uint64_t hw = dd_bucket_wait(&h->msg_b, h->lim.msg_rate, now);

		if (hw > wait)
			wait = hw;
	}
	if (!wait)
		return true;
	wake_in(d, wait);
	return false;
}

unsigned int dd_shape_concurrency(struct dd_dest *d)
{
	struct dd_shape_dest *s = sd(d);
	unsigned int c = dd_throttle_conc(&s->th, &s->cfg);

	return c ? c : UINT_MAX;
}

bool dd_shape_may_resume(struct dd_dest *d, struct dd_out *o)
{
	return msg_ready(d, dd_out_shape(o), dd_mono_ns());
}

bool dd_shape_may_open(struct dd_dest *d, struct dd_target *t)
{
	struct dd_shape_dest *s = sd(d);
	struct dd_shape_host *h = host_get(d->w, t->mx ? t->mx : t->r.name);
	uint64_t now = dd_mono_ns(), wait;

	if (h)
		h->used_ns = now;
	/* No point in a session that would wait for its first message. */
	if (!msg_ready(d, h, now))
		return false;
	if (h && h->lim.concurrency && h->nconns >= h->lim.concurrency) {
		if (!s->waiting) {
			s->waiting = h;
			s->wnext = h->waiters;
			h->waiters = d;
		}
		return false;
	}
	wait = dd_bucket_wait(&s->conn_b, s->cfg.conn_rate, now);
	if (h) {
		uint64_t hw = dd_bucket_wait(&h->conn_b, h->lim.conn_rate, now);

		if (hw > wait)
			wait = hw;
	}
	if (wait) {
		wake_in(d, wait);
		return false;
	}
	dd_bucket_take(&s->conn_b, s->cfg.conn_rate, now);
	if (h)
		dd_bucket_take(&h->conn_b, h->lim.conn_rate, now);
	t->shape = h;
	return true;
}

void dd_shape_opened(struct dd_dest *d, void *ref)
{
	struct dd_shape_host *h = ref;

	(void)d;
	if (h)
		h->nconns++;
}

bool dd_shape_may_send(struct dd_dest *d)
{
	struct dd_shape_dest *s = sd(d);
	struct dd_shape_host *h = s->cur_host;
	uint64_t now = dd_mono_ns();

	s->cur_host = NULL;
	if (!msg_ready(d, h, now))
		return false;
	dd_bucket_take(&s->msg_b, dd_throttle_rate(&s->th, &s->cfg), now);
	if (h)
		dd_bucket_take(&h->msg_b, h->lim.msg_rate, now);
	dd_obs_note(&s->obs, now);
	return true;
}

bool dd_shape_conn_more(struct dd_dest *d, void *ref, unsigned int nmsgs)
{
	struct dd_shape_dest *s = sd(d);
	struct dd_shape_host *h = ref;
	unsigned int conc = dd_throttle_conc(&s->th, &s->cfg);
	unsigned int max = s->cfg.max_msgs;

	if (h && h->lim.max_msgs && (!max || h->lim.max_msgs < max))
		max = h->lim.max_msgs;
	if ((max && nmsgs >= max) ||
	    (conc && d->nconns - s->nleaving > conc) ||
	    (h && h->lim.concurrency &&
	     h->nconns - h->nleaving > h->lim.concurrency)) {
		s->nleaving++;
		if (h)
			h->nleaving++;
		return false;
	}
	/* the dd_dest_take() that follows is for a session to h */
	s->cur_host = h;
	return true;
}

/* A matching reply: throttle, and say so when the limits were cut. */
static void hit(struct dd_dest *d, const struct dd_smtp_reply *rp,
		unsigned int nconns, bool force)
{
	struct dd_shape_dest *s = sd(d);
	uint64_t now = dd_mono_ns();
	double obs = dd_obs_rate(&s->obs, now);

	if (!dd_throttle_hit(&s->th, &s->cfg, nconns, obs, force, now))
		return;
	dd_info("%s: throttled by \"%d %s %s\": concurrency %u, rate %.2f/s "
		"for %u s at least", d->domain, rp->code,
		rp->enh[0] ? rp->enh : "-", rp->text, s->th.conc, s->th.rate,
		dd_d.conf.throttle_hold);
}

static bool matches(const struct dd_smtp_reply *rp)
{
	return rp && rp->code / 100 == 4 &&
	       dd_shape_match(dd_d.conf.throttle_patterns, rp->code, rp->enh,
			      rp->text);
}

void dd_shape_result(struct dd_dest *d, const struct dd_smtpc_result *res)
{
	const struct dd_smtp_reply *rp = NULL;
	unsigned int i;

	if (matches(&res->msg))
		rp = &res->msg;
	for (i = 0; !rp && res->rcpt && i < res->nrcpt; i++)
		if (matches(&res->rcpt[i]))
			rp = &res->rcpt[i];
	if (rp)
		hit(d, rp, d->nconns, false);
}

bool dd_shape_closed(struct dd_dest *d, struct dd_out *o, bool failed,
		     const struct dd_smtp_reply *rp)
{
	struct dd_shape_dest *s = sd(d);
	struct dd_shape_host *h = dd_out_shape(o);

	if (s->nleaving)
		s->nleaving--;
	if (h) {
		struct dd_dest *wd;

		if (h->nconns)
			h->nconns--;
		if (h->nleaving)
			h->nleaving--;
		/* a slot is free: whoever waits for one tries again */
		while ((wd = h->waiters)) {
			h->waiters = wd->shape.wnext;
			wd->shape.wnext = NULL;
			wd->shape.waiting = NULL;
			wake_in(wd, 0);
		}
	}
	if (!matches(rp))
		return false;
	/* A refusal cuts at once: the refused session no longer counts. */
	hit(d, rp, d->nconns + 1, failed);
	return failed && d->nconns;
}

void dd_shape_tick(struct dd_dest *d)
{
	struct dd_shape_dest *s = &d->shape;
	uint64_t hold = (uint64_t)dd_d.conf.throttle_hold * 1000000000ULL;
	char rate[32];

	if (!s->th.on)
		return;
	switch (dd_throttle_tick(&s->th, hold, dd_mono_ns())) {
	case DD_THROTTLE_SAME:
		return;
	case DD_THROTTLE_UP:
		dd_info("%s: throttle easing: concurrency %u, rate %.2f/s",
			d->domain, s->th.conc, s->th.rate);
		break;
	case DD_THROTTLE_LIFTED:
		if (s->cfg.msg_rate)
			snprintf(rate, sizeof(rate), "%u/s", s->cfg.msg_rate);
		else
			snprintf(rate, sizeof(rate), "unlimited");
		dd_info("%s: throttle lifted: concurrency %u, rate %s",
			d->domain, s->cfg.concurrency, rate);
		break;
	}
	wake_in(d, 0);
}

bool dd_shape_throttled(const struct dd_dest *d)
{
	return d->shape.th.on;
}

void dd_shape_ctl(struct dd_dest *d, char *buf, size_t len)
{
	struct dd_shape_dest *s = sd(d);

	snprintf(buf, len, ",\"throttled\":%s,\"eff_concurrency\":%u,"
		 "\"eff_rate\":%.3f", s->th.on ? "true" : "false",
		 dd_throttle_conc(&s->th, &s->cfg),
		 dd_throttle_rate(&s->th, &s->cfg));
}
