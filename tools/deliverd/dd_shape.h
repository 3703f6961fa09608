/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Traffic shaping: limits per destination (recipient domain) and per MX
 * host, and the adaptive back-off ("throttle") a destination enters when
 * its servers say "slow down".
 *
 * Two halves.  The first is pure (dd_shape.c, in libdd.a, unit-tested):
 * the shaping_file table, token buckets, the reply patterns and the
 * throttle's state machine, all taking the time as an argument.  The
 * second (dd_shape_dest.c) ties them to destinations, sessions and the
 * worker's timers; dd_dest.c and dd_out.c call it from a few marked hooks.
 */
#ifndef DD_SHAPE_H
#define DD_SHAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One set of limits; 0 means no limit for every field. */
struct dd_shape_limits {
	unsigned int concurrency;	/* connections open at once */
	unsigned int conn_rate;		/* new connections per second */
	unsigned int msg_rate;		/* messages per second */
	unsigned int max_msgs;		/* messages per connection */
};

/* --- shaping_file ------------------------------------------------------ */

struct dd_shape_table;

/*
 * Load "domain key=value ..." and "mx:host key=value ..." lines; keys
 * concurrency, conn_rate, msg_rate, max_msgs; '#' comments.  path NULL
 * or "" gives an empty table.  0, or -errno with "FILE:LINE: message"
 * in err (unknown key, bad number, duplicate entry or key).
 */
int dd_shape_load(struct dd_shape_table **t, const char *path, char *err,
		  size_t errlen);
void dd_shape_free(struct dd_shape_table *t);
unsigned int dd_shape_count(const struct dd_shape_table *t);

/*
 * def overlaid with the keys the best line for domain sets: the domain
 * itself, else the longest ".suffix", else "*" (as in routes_file).
 * Keys the line does not set keep def's value.  t may be NULL.
 */
void dd_shape_lookup_dest(const struct dd_shape_table *t, const char *domain,
			  const struct dd_shape_limits *def,
			  struct dd_shape_limits *out);
/* The same for an "mx:host" line, host compared without case. */
void dd_shape_lookup_mx(const struct dd_shape_table *t, const char *host,
			const struct dd_shape_limits *def,
			struct dd_shape_limits *out);

/* --- token buckets -------------------------------------------------- */

/*
 * rate tokens a second, holding at most max(1, rate): a second's worth
 * of burst.  A new bucket (t_ns 0) starts with one token.  rate <= 0
 * means no limit: always ready.
 */
struct dd_bucket {
	double tokens;
	uint64_t t_ns;			/* last refill, CLOCK_MONOTONIC */
};

bool dd_bucket_ready(struct dd_bucket *b, double rate, uint64_t now_ns);
/* ready, then spend a token */
bool dd_bucket_take(struct dd_bucket *b, double rate, uint64_t now_ns);
/* Nanoseconds until a token is there (0: now). */
uint64_t dd_bucket_wait(struct dd_bucket *b, double rate, uint64_t now_ns);

/* Messages a second over the last one to two seconds. */
struct dd_rate_obs {
	uint64_t t0;			/* start of the current second */
	unsigned int cur, prev;		/* counts this and the previous second */
};

void dd_obs_note(struct dd_rate_obs *o, uint64_t now_ns);
double dd_obs_rate(struct dd_rate_obs *o, uint64_t now_ns);

/* --- replies that mean "slow down" --------------------------------- */

/*
 * Does "CODE ENH TEXT" (ENH "-" when empty) match one of patterns,
 * '|'-separated shell globs compared without case?  Only 4xx replies
 * can match.
 */
bool dd_shape_match(const char *patterns, int code, const char *enh,
		    const char *text);

/* --- throttle --------------------------------------------------------- */

/*
 * A throttled destination runs at reduced limits: a matching reply
 * halves its concurrency (from the lower of the limit and the sessions
 * open, at least 1) and its message rate (from the lower of the limit
 * and the rate observed, at least DD_THROTTLE_RATE_MIN).  Replies within
 * DD_THROTTLE_SETTLE_NS of a cut only prolong it: sessions busy before
 * the cut still answer for the old load.  hold after the last matching
 * reply and after each step, the limits grow back: concurrency by half
 * (at least one), the rate by half, until both are back at the
 * configured limits (or, where there was none, at the level the first
 * cut started from), which lifts the throttle.
 */
#define DD_THROTTLE_SETTLE_NS	1000000000ULL
#define DD_THROTTLE_RATE_MIN	0.1	/* messages/s, the lowest cut */
#define DD_THROTTLE_RATE_BASE	2.0	/* cut from here when nothing was observed */

struct dd_throttle {
	bool on;
	unsigned int conc;		/* effective concurrency while on */
	double rate;			/* effective message rate while on */
	unsigned int conc_top;		/* recovery ends here ... */
	double rate_top;		/* ... and here */
	uint64_t last_hit;		/* last matching reply */
	uint64_t last_cut;		/* last halving */
	uint64_t last_step;		/* last halving or recovery step */
	unsigned int cuts;		/* halvings so far (figures) */
};

/*
 * A matching reply at now_ns; cfg the configured limits, nconns the
 * sessions open (counting the one that got the reply), observed the
 * recent message rate.  force: cut even within the settle time (a
 * refused connection).  True if the limits were cut.
 */
bool dd_throttle_hit(struct dd_throttle *t, const struct dd_shape_limits *cfg,
		     unsigned int nconns, double observed, bool force,
		     uint64_t now_ns);

enum dd_throttle_step { DD_THROTTLE_SAME = 0, DD_THROTTLE_UP, DD_THROTTLE_LIFTED };

/* Recovery, called now and then (each second). */
enum dd_throttle_step dd_throttle_tick(struct dd_throttle *t,
				       uint64_t hold_ns, uint64_t now_ns);
/* The limits in force: cfg's, or the throttle's while on (0: none). */
unsigned int dd_throttle_conc(const struct dd_throttle *t,
			      const struct dd_shape_limits *cfg);
double dd_throttle_rate(const struct dd_throttle *t,
			const struct dd_shape_limits *cfg);

/* --- the event-loop side (dd_shape_dest.c), for dd_dest.c/dd_out.c --- */

#include "dd_core.h"

struct dd_dest;
struct dd_target;
struct dd_out;
struct dd_shape_host;

/* shaping_file, loaded by main() before the workers start */
extern struct dd_shape_table *dd_shape_tab;

/* Embedded in struct dd_dest; zero is a valid start. */
struct dd_shape_dest {
	bool init;			/* cfg looked up */
	struct dd_shape_limits cfg;	/* settings overlaid with shaping_file */
	struct dd_throttle th;
	struct dd_bucket conn_b, msg_b;
	struct dd_rate_obs obs;
	unsigned int nleaving;		/* sessions told to close */
	struct dd_shape_host *cur_host;	/* dd_shape_conn_more() -> may_send() */
	struct dd_shape_host *waiting;	/* waits for a slot at this host */
	struct dd_dest *wnext;		/* on that host's list */
	struct dd_timer timer;		/* wakes the destination */
};

/* dd_dest_kick: connections allowed now (UINT_MAX: no limit). */
unsigned int dd_shape_concurrency(struct dd_dest *d);
/* dd_dest_kick: may idle session o take work (a message token)? */
bool dd_shape_may_resume(struct dd_dest *d, struct dd_out *o);
/*
 * dd_dest_kick: may a connection to t open now?  Checks the message and
 * connection rates and the host's concurrency, spends the connection
 * tokens and sets t->shape to the host's state.  False: the destination
 * is woken when it may.
 */
bool dd_shape_may_open(struct dd_dest *d, struct dd_target *t);
/* dd_out_open: a session to host ref (t->shape) counts from now. */
void dd_shape_opened(struct dd_dest *d, void *ref);
/* dd_dest_take: may a message go now?  Spends the message tokens. */
bool dd_shape_may_send(struct dd_dest *d);
/*
 * dd_out.c start_tx: may session o (host ref, nmsgs sent) carry another
 * message?  False: it has sent max_msgs or is over a lowered limit, and
 * must close (counted as leaving from now).
 */
bool dd_shape_conn_more(struct dd_dest *d, void *ref, unsigned int nmsgs);
/* dd_dest_result: learn from the replies. */
void dd_shape_result(struct dd_dest *d, const struct dd_smtpc_result *res);
/*
 * dd_dest_closed: session o ended (after d->nconns--).  True when a
 * refusal (failed) only throttled the destination: sessions of it are
 * still open, so it is not suspended.
 */
bool dd_shape_closed(struct dd_dest *d, struct dd_out *o, bool failed,
		     const struct dd_smtp_reply *rp);
/* dd_dest_retry, each second: the throttle's recovery. */
void dd_shape_tick(struct dd_dest *d);
bool dd_shape_throttled(const struct dd_dest *d);
/*
 * dd_dest_ctl: ",\"throttled\":...,\"eff_rate\":..." for the destination's
 * line, which must go out in one dd_ctl_append(): workers answer at once.
 */
void dd_shape_ctl(struct dd_dest *d, char *buf, size_t len);

#endif /* DD_SHAPE_H */
