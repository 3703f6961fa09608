/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Destinations (one per recipient domain, owned by one worker) and the
 * outbound sessions that serve them.  Private to dd_dest.c and dd_out.c.
 */
#ifndef DD_DEST_H
#define DD_DEST_H

#include "dd_core.h"
#include "dd_shape.h"

#define DD_TX_RCPTS	100	/* recipients per transaction (RFC 5321 4.5.3.1.8) */

/* One transaction: recipients of one message for one destination. */
struct dd_tx {
	struct dd_msg *msg;
	struct dd_rcpt *rcpt[DD_TX_RCPTS];
	const char *addr[DD_TX_RCPTS];
	const char *orcpt[DD_TX_RCPTS];
	uint8_t notify[DD_TX_RCPTS];
	unsigned int n;
};

struct dd_out;
struct dd_mx;

/* Where and how a transaction went, for the delivery log. */
struct dd_conn_info {
	const char *host;		/* "127.0.0.1:25", NULL: never connected */
	const char *mx;			/* MX host name, NULL for a static route */
	const char *transport;		/* "bdat" | "data" | NULL */
	const char *tls;		/* protocol ("TLSv1.3"), NULL: plain text */
	const char *tls_cipher;
	const char *tls_verify;		/* "verified" | "unverified" | ... */
	const char *body_io;		/* how the body went: "evq-sendfile", ... */
};

/*
 * One address to connect to, chosen by dd_dest.c.  The session copies
 * addr and keeps mx and ref: dd_dest.c keeps both alive until it has
 * seen dd_dest_closed() for that session.
 */
struct dd_target {
	struct dd_route r;		/* address and its "host:port" name */
	const char *mx;			/* MX host name, NULL for a static route */
	void *ref;			/* dd_mx.c's (the address's state) */
	void *shape;			/* dd_shape_dest.c's (the host's limits) */
};

struct dd_dest {
	struct dd_dest *hnext;		/* hash bucket */
	struct dd_dest *rnext;		/* worker's runnable list */
	char *domain;
	const struct dd_route *route;	/* NULL: no route */
	struct dd_mx *mx;		/* no route: its MX targets (dd_mx.c) */
	struct dd_rcpt *qhead, **qtail;	/* ready now, FIFO */
	struct dd_rcpt *deferred;	/* waiting for next_try */
	struct dd_rcpt *heldq;		/* held by deliverctl */
	unsigned int nqueued, ndeferred, nactive, nheld;
	unsigned int nruns;		/* queued transactions (message runs) */
	unsigned int nconns;		/* open or opening */
	unsigned int nopening;		/* of those, not greeted yet */
	struct dd_out *idle;		/* sessions waiting for work */
	int64_t backoff_until;		/* unreachable: no connection before */
	unsigned int backoff_n;
	bool held;			/* the whole destination is held */
	bool runnable;
	struct dd_shape_dest shape;	/* limits and throttle (dd_shape_dest.c) */
	struct dd_worker *w;
	uint64_t delivered, failed, deferrals;
};

/* dd_dest.c, for dd_out.c */
bool dd_dest_take(struct dd_dest *d, struct dd_tx *tx);
void dd_dest_result(struct dd_dest *d, struct dd_tx *tx,
		    const struct dd_smtpc_result *r,
		    const struct dd_conn_info *ci, uint64_t dur_ns);
/*
 * A session ended; failed: it could not connect or greet.  rp is the
 * server's reply that ended it (or NULL), host where it connected.
 */
void dd_dest_closed(struct dd_dest *d, struct dd_out *o, bool failed,
		    const struct dd_smtp_reply *rp, const char *host,
		    const char *why);
void dd_dest_kick(struct dd_dest *d);
/* Kick d from the loop soon (an answer it waited for came). */
void dd_dest_wake(struct dd_dest *d);

/* dd_out.c, for dd_dest.c */
struct dd_out *dd_out_open(struct dd_dest *d, const struct dd_target *t);
/* The target's ref and mx the session was opened with. */
void *dd_out_ref(const struct dd_out *o);
void *dd_out_shape(const struct dd_out *o);
const char *dd_out_mx(const struct dd_out *o);
/* An idle session: take work now, or QUIT if there is none. */
void dd_out_resume(struct dd_out *o);
struct dd_out *dd_out_next_idle(struct dd_out *o);
void dd_out_set_next_idle(struct dd_out *o, struct dd_out *next);

#endif /* DD_DEST_H */
