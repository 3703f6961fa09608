/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The daemon's core: event-loop threads ("workers"), their mailboxes and
 * timers, inbound sessions, destinations and outbound sessions.
 *
 * Each worker owns one libevq queue, pinned to one CPU.  A destination
 * (a recipient domain) belongs to worker hash(domain) % nworkers, so its
 * queue, its connections and its recipients' states are only touched by
 * that thread.  Threads talk through mailboxes: a locked list plus an
 * eventfd the owner watches.
 */
#ifndef DD_CORE_H
#define DD_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "libevq.h"
#include "dd.h"
#include "dd_conf.h"
#include "dd_ctl_parse.h"
#include "dd_prom.h"
#include "dd_routes.h"
#include "dd_spool.h"
#include "dd_smtpc.h"
#include "dd_smtpd.h"

struct dd_worker;

/* What a watch's user_data points to. */
enum dd_io_kind {
	DD_IO_LISTEN = 1, DD_IO_MBOX, DD_IO_IN, DD_IO_OUT,
	DD_IO_DNS,		/* a c-ares socket (dd_dns.c) */
	DD_IO_HTTP,		/* the metrics listener or one of its clients */
};

struct dd_io {
	int fd;
	uint8_t kind;		/* enum dd_io_kind */
	bool ctl;		/* DD_IO_LISTEN: the control socket */
	bool dead;		/* closed: ignore its entries */
	struct dd_io *gnext;	/* on the worker's grave list */
};

/* A min-heap timer; the owner embeds it and sets fire. */
struct dd_timer {
	uint64_t when;		/* CLOCK_MONOTONIC ns; 0: not armed */
	unsigned int slot;	/* index in the heap + 1; 0: not in it */
	void (*fire)(struct dd_worker *w, struct dd_timer *t);
};

enum dd_mail_type {
	DD_MAIL_MSG = 1,	/* a message with recipients for this worker */
	DD_MAIL_INJECTED,	/* a submission's outcome, for its session */
	DD_MAIL_CTL,		/* a control request, for every worker */
	DD_MAIL_CTL_DONE,	/* all workers answered: reply (worker 0) */
};

/* A control command, answered by every worker in turn (dd_ctl.c). */
struct dd_ctl_req {
	uint8_t op;
	bool by_qid;
	uint64_t qid;
	char arg[DD_DOMAIN_MAX + 1];	/* domain, lowercased; "" for all */
	struct dd_in *in;
	struct dd_worker *origin;
	pthread_mutex_t lock;		/* the rest */
	char *out;			/* JSON lines from the workers */
	size_t len, cap;
	uint64_t n;			/* flushed, held or released */
	uint64_t queued, deferred, active, held, dests, conns;
	uint64_t delivered, deferrals, bounced, attempts, events, waits;
	atomic_uint left;		/* workers still to answer */
	/* DD_CTL_STATS: the figures, by worker and destination too */
	struct dd_stats *st;
	/* Not NULL: called on origin with the figures instead of a reply */
	void (*done)(struct dd_worker *w, struct dd_stats *st, void *arg);
	void *done_arg;
};

struct dd_mail {
	struct dd_mail *next;
	uint8_t type;
	int err;
	struct dd_msg *msg;
	struct dd_in *in;		/* DD_MAIL_INJECTED */
	uint64_t in_gen;
	const struct dd_smtpd_msg *smsg;
	struct dd_ctl_req *ctl;		/* DD_MAIL_CTL(_DONE) */
};

struct dd_dest;
struct dd_dns;
struct dd_shape_hosts;

struct dd_worker {
	unsigned int idx;
	int cpu;
	pthread_t thread;
	struct evq q;
	char name[16];

	/* mailbox */
	struct dd_io mbox_io;
	pthread_mutex_t mbox_lock;
	struct dd_mail *mbox_head, **mbox_tail;
	atomic_bool mbox_armed;

	/* timers */
	struct dd_timer **heap;
	unsigned int nheap, heap_cap;
	struct dd_timer retry_timer;	/* deferred recipients, each second */

	/* destinations, hashed by domain */
	struct dd_dest **dests;
	unsigned int ndest_buckets, ndests;
	struct dd_dest *runnable;	/* destinations with work and room */

	/* this thread's resolver and its cache (dd_dns.c) */
	struct dd_dns *dns;

	/* MX hosts' connection counts and buckets (dd_shape_dest.c) */
	struct dd_shape_hosts *shape_hosts;

	/* listeners this worker accepts on */
	struct dd_io listen_io[DD_LISTEN_MAX + 1];
	unsigned int nlisten;

	/*
	 * Closed sessions wait here until the ring has been drained once:
	 * entries posted before their watch was removed may still name them.
	 */
	struct dd_io *grave;

	/* inbound sessions (for generations) */
	uint64_t in_gen;

	/* figures */
	unsigned int out_conns, out_conns_peak, in_conns;
	uint64_t delivered, deferred, bounced, attempts, events, waits;
	uint64_t expired, out_opened;	/* of bounced; connections opened */
};

struct dd_daemon {
	struct dd_conf conf;
	struct dd_spool *spool;
	struct dd_routes *routes;
	struct dd_dkim *dkim;		/* signing keys; NULL: none (dd_dkim.h) */
	struct dd_worker *w;
	unsigned int nworkers;
	bool kmod;			/* the evq backend is in use */
	/*
	 * The module refused a spool file: its file system does not read
	 * through the page cache (overlayfs, as in many containers), so
	 * bodies go with sendfile(2) from then on.
	 */
	atomic_bool sf_plain;
	atomic_uint in_conns;		/* inbound sessions, all workers */
	atomic_bool stop;
	int listen_fd[DD_LISTEN_MAX];
	unsigned int nlisten;
	int ctl_fd;
	uint64_t start_ns;
	/* recovery: messages found before the workers ran */
	atomic_ulong recovered;
	atomic_ulong injected, bounces_sent;
	atomic_uint out_conns_total, out_conns_peak;
};

extern struct dd_daemon dd_d;

/* Bodies go with the module's sendfile (else with sendfile(2)). */
static inline bool dd_kmod_sendfile(void)
{
	return dd_d.kmod &&
	       !atomic_load_explicit(&dd_d.sf_plain, memory_order_relaxed);
}

/* dd_loop.c */
int dd_workers_init(void);
int dd_workers_start(void);
void dd_bury(struct dd_worker *w, struct dd_io *io);
void dd_workers_stop(void);
int dd_worker_watch(struct dd_worker *w, struct dd_io *io, uint32_t events);
int dd_worker_unwatch(struct dd_worker *w, struct dd_io *io);
void dd_post(struct dd_worker *w, struct dd_mail *m);
void dd_timer_set(struct dd_worker *w, struct dd_timer *t, uint64_t when);
void dd_timer_del(struct dd_worker *w, struct dd_timer *t);
struct dd_worker *dd_worker_of(const char *domain);
/* Hand a durable message to the workers that own its domains. */
void dd_dispatch(struct dd_msg *msg);

/* dd_inject.c */
struct dd_in;
void dd_in_accept(struct dd_worker *w, struct dd_io *lio);
void dd_in_event(struct dd_worker *w, struct dd_io *io, uint32_t events);
void dd_in_injected(struct dd_worker *w, struct dd_mail *m);
void dd_in_free(struct dd_io *io);
void dd_in_control_done(struct dd_in *in, int code, const char *text);
/* Submit a message we made ourselves (bounces). */
int dd_inject_local(const char *sender, const char *const *rcpts,
		    unsigned int nrcpt, uint32_t flags, const char *body,
		    size_t len);

/* dd_dest.c */
void dd_dest_msg(struct dd_worker *w, struct dd_msg *msg);
void dd_dest_retry(struct dd_worker *w, struct dd_timer *t);
void dd_dest_run(struct dd_worker *w);
void dd_dest_ctl(struct dd_worker *w, struct dd_ctl_req *r);
void dd_dest_stats(struct dd_worker *w, struct dd_top *top);

/* dd_out.c */
struct dd_out;
void dd_out_event(struct dd_worker *w, struct dd_io *io, uint32_t events);
void dd_out_sendfile_done(struct dd_worker *w, struct dd_io *io, int res);
void dd_out_free(struct dd_io *io);

/* dd_ctl.c */
void dd_ctl_append(struct dd_ctl_req *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void dd_ctl_answered(struct dd_worker *w, struct dd_ctl_req *r);
bool dd_ctl_command(struct dd_worker *w, struct dd_in *in, const char *line);
void dd_ctl_done(struct dd_worker *w, struct dd_ctl_req *r);
/* Gather the figures from every worker without blocking w; done(w, st,
 * arg) gets them on w later.  0 or -ENOMEM (then done is not called). */
int dd_ctl_stats(struct dd_worker *w,
		 void (*done)(struct dd_worker *w, struct dd_stats *st,
			      void *arg), void *arg);
/* A worker's share of DD_CTL_STATS, on its own thread. */
void dd_ctl_stats_worker(struct dd_worker *w, struct dd_ctl_req *r);

/* dd_metrics.c: the Prometheus endpoint, on worker 0 */
/* Bind metrics_listen (if not "none") and watch it on worker 0. */
int dd_metrics_open(void);
void dd_http_event(struct dd_worker *w, struct dd_io *io, uint32_t events);
void dd_http_free(struct dd_io *io);

#endif /* DD_CORE_H */
