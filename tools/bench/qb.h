/* SPDX-License-Identifier: GPL-2.0 */
/*
 * queue_bench's parts: the pipes every side watches, the sides (evq,
 * epoll, poll, io_uring and the unwatched baseline) behind one set of
 * operations, CPU accounting, the sweep, the wake-up probe and the
 * figures and plots drawn from them.
 */
#ifndef QB_H
#define QB_H

#include <stdbool.h>
#include <stdint.h>

#define QB_EXIT_SKIP		4
/* A wait this long in a round means events were lost, not slow. */
#define QB_HANG_TIMEOUT_MS	10000
#define QB_HARVEST_BATCH	256
/* Below this many /proc/stat ticks per repetition the error is > 2%. */
#define QB_MIN_TICKS_PER_REP	50
#define QB_MAX_POINTS		8	/* watched counts in a sweep */
#define QB_MAX_PCTS		4	/* active percentages in a sweep */

struct qb_opts {
	unsigned int nr_n;			/* -N: watched counts */
	unsigned int n[QB_MAX_POINTS];
	unsigned int nr_pct;			/* -P: % active per round */
	unsigned int pct[QB_MAX_PCTS];
	unsigned int head_n;			/* -n: the headline count */
	unsigned int reps;			/* -r: at the headline count */
	unsigned int sweep_reps;		/* -s: at the other counts */
	unsigned int reg_reps;			/* -R */
	unsigned int target_ms;			/* -t */
	const char *out;
	const char *cpu_source;			/* auto, procstat, rusage */
	const char *waitstat;			/* -W, "" for none */
	bool no_evq;				/* -e */
	bool no_probe;				/* -p */
};

extern struct qb_opts qb_opt;

/* ---- pipes: one set, shared by the sides in turn ---- */

struct qb_pipes {
	unsigned int n;
	int *rfd;
	int *wfd;
};

int qb_pipes_open(struct qb_pipes *p, unsigned int n);
void qb_pipes_close(struct qb_pipes *p);

/* ---- system calls counted by our own loops ---- */

struct qb_counts {
	uint64_t writes;
	uint64_t reads;
	uint64_t waits;		/* evq_wait, epoll_wait, poll, io_uring wait */
	uint64_t enters;	/* evq_harvest() falling into the kernel */
	uint64_t events;	/* entries harvested */
	uint64_t spurious;	/* entries whose fd had nothing to read */
};

static inline uint64_t qb_counts_syscalls(const struct qb_counts *c)
{
	return c->writes + c->reads + c->waits + c->enters;
}

/* ---- sides ---- */

enum qb_kind { QB_NONE, QB_EVQ, QB_EPOLL, QB_POLL, QB_URING, QB_NR_KINDS };

struct qb_side;

struct qb_side_ops {
	/* Make the queue for n pipes, edge or level: 0 or -errno. */
	int (*create)(struct qb_side *s, unsigned int n, bool edge);
	/* Watch the n pipes: what registration is timed over. */
	int (*watch)(struct qb_side *s);
	/* Harvest @want events, reading each fd's byte; 0 or -1. */
	int (*collect)(struct qb_side *s, unsigned int want);
	/*
	 * Remove every watch, timed; NULL: no removal figure (poll has
	 * nothing to remove, io_uring's removal is closing the ring).
	 */
	int (*unwatch)(struct qb_side *s);
	/* Drop the queue, and with it any watch left. */
	void (*close)(struct qb_side *s);
	/* How many system calls registering n fds takes. */
	unsigned int (*reg_syscalls)(unsigned int n);
};

struct qb_side {
	enum qb_kind kind;
	const char *name;		/* in figure names */
	const char *wait_kind;		/* waitstat's kind, NULL: none */
	const struct qb_side_ops *ops;
	struct qb_pipes *p;		/* shared */
	unsigned int n;			/* pipes watched now */
	bool edge;
	unsigned int next;		/* first fd of the next round */
	struct qb_counts cnt;
	void *priv;			/* the side's own state */
	uint64_t reg_enters;		/* io_uring_enter during open() */
	uint64_t reg_enter_ns;		/* thread CPU inside them */
};

extern const struct qb_side_ops qb_none_ops, qb_evq_ops, qb_epoll_ops,
	qb_poll_ops, qb_uring_ops;

const char *qb_kind_name(enum qb_kind k);
void qb_side_init(struct qb_side *s, enum qb_kind k, struct qb_pipes *p);
/* create() and watch(), with a message on failure: 0 or -1. */
int qb_side_open(struct qb_side *s, unsigned int n, bool edge);

/* Shared by the sides' collect(): write one byte each to @active fds. */
int qb_fill(struct qb_side *s, unsigned int active);
/* Read fd index @idx back: 1 byte there, 0 spurious, -1 error. */
int qb_drain_one(struct qb_side *s, uint64_t idx);
void qb_report_hang(struct qb_side *s, unsigned int got, unsigned int want);
/* One round: fill @active fds, collect them, move on. */
int qb_round(struct qb_side *s, unsigned int active);
/* Completion ring size for a queue watching n fds. */
unsigned int qb_ring_entries(unsigned int n);

/* ---- CPU accounting ---- */

struct qb_sample {
	uint64_t busy_ticks;	/* /proc/stat "cpu" line, not idle/iowait */
	uint64_t proc_ns;	/* getrusage(RUSAGE_SELF) user + sys */
	uint64_t wall_ns;
};

/* One repetition's cost, already divided per event (or per fd). */
struct qb_cost {
	double guest;		/* /proc/stat */
	double proc;		/* rusage */
	double wall;
	uint64_t ticks;
};

extern long qb_clk_tck;

uint64_t qb_clock_ns(int clockid);
void qb_sample_take(struct qb_sample *s);
void qb_cost_of(const struct qb_sample *a, const struct qb_sample *b,
		double units, struct qb_cost *c);

struct qb_stat3 {
	double med, min, max;
};

struct qb_stat3 qb_stat3_of(const double *v, unsigned int n);
double qb_median(const double *v, unsigned int n);
/* name, name_min, name_max */
void qb_fig_stat(const char *name, const double *v, unsigned int n, int prec);

/* ---- the harvest sweep ---- */

/* One side at one (watched count, % active) point. */
struct qb_point_res {
	struct qb_cost *cost;		/* [reps] */
	struct qb_counts cnt;		/* over the timed repetitions */
	unsigned int rounds;		/* per repetition */
	unsigned int active;		/* fds made ready per round */
	bool done;
};

/* A block: some sides, one watched count, some percentages, one mode. */
struct qb_block {
	unsigned int n;
	unsigned int reps;
	bool edge;
	unsigned int nr_pct;
	const unsigned int *pct;
	unsigned int nr_sides;
	struct qb_side *sides;
	struct qb_point_res res[QB_NR_KINDS][QB_MAX_PCTS];
	bool procstat[QB_MAX_PCTS];	/* the CPU source chosen per point */
	const char *why[QB_MAX_PCTS];
	uint64_t min_ticks[QB_MAX_PCTS];
	double secs;			/* guest time the block took */
};

int qb_block_run(struct qb_block *b);
void qb_block_free(struct qb_block *b);
/* The figure a repetition is judged by. */
double qb_rep_cost(const struct qb_block *b, unsigned int pi,
		   const struct qb_point_res *r, unsigned int rep);
double qb_point_median(const struct qb_block *b, unsigned int pi,
		       enum qb_kind k);

/* ---- registration ---- */

struct qb_reg_res {
	double *add;		/* process CPU ns per fd, [reps] */
	double *del;		/* NAN where the side has no removal */
	unsigned int reps;
	uint64_t ticks;		/* /proc/stat over all repetitions */
	uint64_t cpu_ns;	/* process CPU over all repetitions */
	bool done;
};

unsigned int qb_reg_reps(unsigned int n);
int qb_register_run(struct qb_side *sides, unsigned int nr_sides,
		    unsigned int n, struct qb_reg_res *res);
void qb_reg_free(struct qb_reg_res *res);

/* ---- the wake-up probe under waitstat ---- */

struct qb_probe_res {
	bool done;
	double events;
	double ctxsw;		/* harvesting thread, vcsw + ivcsw */
	double vcsw, ivcsw;
	double proc_ctxsw;	/* both threads */
	double wait_calls;
	double wait_oncpu_ns;
	double wait_offcpu_ns;
	double oncpu_ns;	/* harvesting thread on the CPU */
};

#define QB_PROBE_FDS		10000
#define QB_PROBE_ACTIVE		100
#define QB_PROBE_ROUNDS		200

/* The child: runs under waitstat; exit status 0 or 1. */
int qb_probe_child(enum qb_kind k);
/* The parent: waitstat around the child for side @k. */
int qb_probe_run(const char *self, enum qb_kind k, struct qb_probe_res *r,
		 char *err, unsigned int errlen);

/* ---- everything measured ---- */

struct qb_results {
	unsigned int nr_sides;
	enum qb_kind kinds[QB_NR_KINDS];
	struct qb_block sweep[QB_MAX_POINTS];
	struct qb_reg_res reg[QB_MAX_POINTS][QB_NR_KINDS];
	struct qb_probe_res probe[QB_NR_KINDS];
};

/* ---- plots ---- */

/* The "plots" member of the JSON, as text the caller frees. */
char *qb_plots_json(const struct qb_results *r);

/* ---- figures ---- */

void qb_report_headline(const struct qb_block *b, unsigned int pi,
			const char *mode);
void qb_report_targets(const struct qb_block *b, unsigned int pi);
void qb_report_sweep(const struct qb_block *b);
void qb_report_register_sweep(const struct qb_reg_res *res, unsigned int n,
			      const struct qb_side *sides,
			      unsigned int nr_sides);
void qb_report_register(const struct qb_reg_res *res, unsigned int n,
			const struct qb_side *sides, unsigned int nr_sides);
void qb_report_probe(enum qb_kind k, const struct qb_probe_res *p);

#endif /* QB_H */
