// SPDX-License-Identifier: GPL-2.0
/*
 * queue_bench: evq (libevq on /dev/evq, harvesting from the mapped ring)
 * against raw epoll, side by side in one process, with the repetitions of
 * the two interleaved so that drift of the machine hits both alike.
 *
 * Workloads:
 *   harvest   10,000 watched pipes, 100 made ready per round, harvested
 *             and drained; edge-triggered, then level-triggered.  A third
 *             side, "none", does the same writes and reads on 10,000
 *             pipes nothing watches: the baseline subtracted to give
 *             each queue's own cost per event.
 *   register  10,000 adds: one evq_ctl() batch against 10,000 epoll_ctl()
 *             calls; the removal of all of them is a second figure.
 *
 * CPU is counted guest-wide from /proc/stat (every CPU, all but idle and
 * iowait), so the writer's wake-ups, the kernel's posting and any kernel
 * worker are charged to the side that caused them; getrusage() of this
 * process is printed beside it as a cross-check.  Figures go to stdout
 * as "name: value" lines and to a JSON file (-o).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "libevq.h"
#include <math.h>

#include "bench_fig.h"
#include "bench_util.h"

#define EXIT_SKIP		4
#define HARVEST_BATCH		256
#define RING_ENTRIES		1024
/* The module's documented default max_batch. */
#define CTL_CHUNK		65536
/* A wait this long in a round means events were lost, not slow. */
#define HANG_TIMEOUT_MS		10000
/* Below this many /proc/stat ticks per repetition the error is > 2%. */
#define MIN_TICKS_PER_REP	50

struct opts {
	unsigned int nr_fds;		/* watched pipes per side */
	unsigned int active;		/* fds made ready per round */
	unsigned int reps;		/* harvest repetitions per side */
	unsigned int reg_reps;		/* register repetitions per side */
	unsigned int target_ms;		/* CPU per harvest repetition */
	const char *out;
	const char *cpu_source;		/* auto, procstat, rusage */
	bool epoll_only;
};

static struct opts opt = {
	.nr_fds = 10000,
	.active = 100,
	.reps = 7,
	.reg_reps = 21,
	.target_ms = 1000,
	.out = "build/bench/queue.json",
	.cpu_source = "auto",
};

/* ---- CPU accounting ---- */

struct sample {
	uint64_t busy_ticks;	/* /proc/stat "cpu" line, not idle/iowait */
	uint64_t proc_ns;	/* getrusage(RUSAGE_SELF) user + sys */
	uint64_t wall_ns;
};

/* One repetition's cost, already divided per event (or per fd). */
struct cost {
	double guest;		/* /proc/stat */
	double proc;		/* rusage */
	double wall;
	uint64_t ticks;
};

static long clk_tck;

static uint64_t ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000ULL + (uint64_t)ts->tv_nsec;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts_ns(&ts);
}

/*
 * guest and guest_nice are already inside user and nice, so they are not
 * added again; idle and iowait are the only non-busy states.
 */
static uint64_t procstat_busy(void)
{
	unsigned long long v[8] = { 0 };
	char line[512];
	FILE *f;

	f = fopen("/proc/stat", "r");
	if (!f)
		return 0;
	if (!fgets(line, sizeof(line), f) ||
	    sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
		   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
		   &v[7]) < 7)
		memset(v, 0, sizeof(v));
	fclose(f);
	return v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
}

static uint64_t rusage_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
	       1000000000ULL +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ULL;
}

static void sample_take(struct sample *s)
{
	s->busy_ticks = procstat_busy();
	s->proc_ns = rusage_ns();
	s->wall_ns = clock_ns(CLOCK_MONOTONIC);
}

static void cost_of(const struct sample *a, const struct sample *b,
		    double units, struct cost *c)
{
	c->ticks = b->busy_ticks - a->busy_ticks;
	c->guest = (double)c->ticks * 1e9 / (double)clk_tck / units;
	c->proc = (double)(b->proc_ns - a->proc_ns) / units;
	c->wall = (double)(b->wall_ns - a->wall_ns) / units;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stat3 {
	double med, min, max;
};

static struct stat3 stat3_of(const double *v, unsigned int n)
{
	double s[n];
	struct stat3 r;

	memcpy(s, v, sizeof(s));
	qsort(s, n, sizeof(*s), cmp_double);
	r.min = s[0];
	r.max = s[n - 1];
	r.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	return r;
}

/* name, name_min, name_max */
static void fig_stat(const char *name, const double *v, unsigned int n,
		     int prec)
{
	struct stat3 s = stat3_of(v, n);
	char buf[128];

	bench_fig_num(name, s.med, prec);
	snprintf(buf, sizeof(buf), "%s_min", name);
	bench_fig_num(buf, s.min, prec);
	snprintf(buf, sizeof(buf), "%s_max", name);
	bench_fig_num(buf, s.max, prec);
}

static double median(const double *v, unsigned int n)
{
	return stat3_of(v, n).med;
}

/* ---- pipes ---- */

struct pipes {
	unsigned int n;
	int *rfd;
	int *wfd;
};

static int pipes_open(struct pipes *p, unsigned int n)
{
	unsigned int i;
	int fds[2];

	p->n = 0;
	p->rfd = calloc(n, sizeof(int));
	p->wfd = calloc(n, sizeof(int));
	if (!p->rfd || !p->wfd)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
			return -errno;
		p->rfd[i] = fds[0];
		p->wfd[i] = fds[1];
		p->n++;
	}
	return 0;
}

static void pipes_close(struct pipes *p)
{
	unsigned int i;

	for (i = 0; i < p->n; i++) {
		close(p->rfd[i]);
		close(p->wfd[i]);
	}
	free(p->rfd);
	free(p->wfd);
	p->n = 0;
}

/* ---- syscall counts, kept by our own loops ---- */

struct counts {
	uint64_t writes;
	uint64_t reads;
	uint64_t waits;		/* evq_wait() / epoll_wait() */
	uint64_t enters;	/* evq_harvest() falling into the kernel */
	uint64_t events;	/* entries harvested */
	uint64_t spurious;	/* entries whose fd had nothing to read */
};

static uint64_t counts_syscalls(const struct counts *c)
{
	return c->writes + c->reads + c->waits + c->enters;
}

/*
 * evq_harvest() enters the kernel (a zero-timeout EVQ_IOC_WAIT) only when
 * the ring is empty and the kernel flags events it still holds.  Look at
 * the same two words first, so the hidden system call is counted too.
 */
static int harvest_counted(struct evq *q, struct evq_cqe *out,
			   unsigned int max, struct counts *c)
{
	unsigned int tail = __atomic_load_n(q->ktail, __ATOMIC_ACQUIRE);

	if (tail == *q->khead &&
	    (__atomic_load_n(q->kflags, __ATOMIC_ACQUIRE) &
	     EVQ_RING_NEED_ENTER))
		c->enters++;
	return evq_harvest(q, out, max);
}

/* ---- harvest workload ---- */

/*
 * SIDE_NONE is the baseline: its own pipes, watched by nothing, written
 * and read back by the same code, so it pays the pipe I/O and no queue.
 */
enum side_kind { SIDE_EVQ, SIDE_EPOLL, SIDE_NONE };

struct side {
	enum side_kind kind;
	const char *name;
	struct pipes p;
	struct evq q;
	int epfd;
	unsigned int next;	/* first fd of the next round */
	struct counts cnt;
};

static int fill_round(struct side *s)
{
	unsigned int i, idx;

	for (i = 0; i < opt.active; i++) {
		idx = (s->next + i) % s->p.n;
		if (write(s->p.wfd[idx], "x", 1) != 1) {
			fprintf(stderr, "queue_bench: %s: write: %s\n",
				s->name, strerror(errno));
			return -1;
		}
	}
	s->cnt.writes += opt.active;
	return 0;
}

/* Returns 1 when the byte was there, 0 for a spurious event, -1 on error. */
static int drain_one(struct side *s, uint64_t idx)
{
	char buf[16];
	ssize_t n;

	if (idx >= s->p.n) {
		fprintf(stderr, "queue_bench: %s: bad user_data %" PRIu64 "\n",
			s->name, idx);
		return -1;
	}
	s->cnt.reads++;
	n = read(s->p.rfd[idx], buf, sizeof(buf));
	if (n == 1)
		return 1;
	if (n < 0 && errno == EAGAIN) {
		s->cnt.spurious++;
		return 0;
	}
	fprintf(stderr, "queue_bench: %s: read fd index %" PRIu64 ": %zd %s\n",
		s->name, idx, n, n < 0 ? strerror(errno) : "bytes");
	return -1;
}

static void report_hang(struct side *s, unsigned int got)
{
	fprintf(stderr,
		"queue_bench: %s: no event for %d ms with %u of %u harvested "
		"(round starting at fd index %u)\n",
		s->name, HANG_TIMEOUT_MS, got, opt.active, s->next);
	if (s->kind == SIDE_EVQ)
		fprintf(stderr,
			"queue_bench: evq ring: head %u tail %u flags %#x "
			"overflow %u\n", *s->q.khead,
			__atomic_load_n(s->q.ktail, __ATOMIC_ACQUIRE),
			__atomic_load_n(s->q.kflags, __ATOMIC_ACQUIRE),
			__atomic_load_n(s->q.koverflow, __ATOMIC_ACQUIRE));
}

static int evq_round(struct side *s)
{
	struct evq_cqe cqe[HARVEST_BATCH];
	unsigned int got = 0;
	int i, n, r;

	if (fill_round(s))
		return -1;
	while (got < opt.active) {
		n = harvest_counted(&s->q, cqe, HARVEST_BATCH, &s->cnt);
		if (n < 0) {
			fprintf(stderr, "queue_bench: evq_harvest: %s\n",
				strerror(-n));
			return -1;
		}
		if (!n) {
			s->cnt.waits++;
			n = evq_wait(&s->q, 1,
				     (int64_t)HANG_TIMEOUT_MS * 1000000);
			if (n < 0 && n != -EINTR) {
				fprintf(stderr, "queue_bench: evq_wait: %s\n",
					strerror(-n));
				return -1;
			}
			if (!n) {
				report_hang(s, got);
				return -1;
			}
			continue;
		}
		s->cnt.events += n;
		for (i = 0; i < n; i++) {
			if ((cqe[i].flags & EVQ_CQE_TYPE_MASK) != EVQ_CQE_READY) {
				s->cnt.spurious++;
				continue;
			}
			r = drain_one(s, cqe[i].user_data);
			if (r < 0)
				return -1;
			got += r;
		}
	}
	s->next = (s->next + opt.active) % s->p.n;
	return 0;
}

static int epoll_round(struct side *s)
{
	struct epoll_event ev[HARVEST_BATCH];
	unsigned int got = 0;
	int i, n, r;

	if (fill_round(s))
		return -1;
	while (got < opt.active) {
		s->cnt.waits++;
		n = epoll_wait(s->epfd, ev, HARVEST_BATCH, HANG_TIMEOUT_MS);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("queue_bench: epoll_wait");
			return -1;
		}
		if (!n) {
			report_hang(s, got);
			return -1;
		}
		s->cnt.events += n;
		for (i = 0; i < n; i++) {
			r = drain_one(s, ev[i].data.u64);
			if (r < 0)
				return -1;
			got += r;
		}
	}
	s->next = (s->next + opt.active) % s->p.n;
	return 0;
}

/* The baseline: the same writes, each byte read straight back. */
static int none_round(struct side *s)
{
	unsigned int i;

	if (fill_round(s))
		return -1;
	for (i = 0; i < opt.active; i++) {
		if (drain_one(s, (s->next + i) % s->p.n) != 1) {
			fprintf(stderr, "queue_bench: none: fd index %u: the "
				"byte just written is not there\n",
				(s->next + i) % s->p.n);
			return -1;
		}
	}
	s->next = (s->next + opt.active) % s->p.n;
	return 0;
}

static int side_rounds(struct side *s, unsigned int rounds)
{
	unsigned int i;
	int ret;

	for (i = 0; i < rounds; i++) {
		switch (s->kind) {
		case SIDE_EVQ:
			ret = evq_round(s);
			break;
		case SIDE_EPOLL:
			ret = epoll_round(s);
			break;
		default:
			ret = none_round(s);
			break;
		}
		if (ret)
			return -1;
	}
	return 0;
}

/* Apply a long change list in chunks the module accepts. */
static int evq_ctl_all(struct evq *q, struct evq_ctl *v, unsigned int nr)
{
	unsigned int done = 0, i, chunk;
	int ret;

	while (done < nr) {
		chunk = nr - done < CTL_CHUNK ? nr - done : CTL_CHUNK;
		ret = evq_ctl(q, v + done, chunk);
		if (ret < 0)
			return ret;
		if ((unsigned int)ret != chunk)
			return -EIO;
		done += chunk;
	}
	for (i = 0; i < nr; i++)
		if (v[i].res)
			return v[i].res;
	return 0;
}

static void ctl_fill(struct evq_ctl *v, const struct pipes *p, uint32_t op,
		     uint32_t flags)
{
	unsigned int i;

	memset(v, 0, sizeof(*v) * p->n);
	for (i = 0; i < p->n; i++) {
		v[i].op = op;
		v[i].fd = p->rfd[i];
		v[i].events = op == EVQ_CTL_DEL ? 0 : EPOLLIN;
		v[i].flags = op == EVQ_CTL_DEL ? 0 : flags;
		v[i].user_data = i;
	}
}

static int side_watch(struct side *s, bool edge)
{
	struct epoll_event ev;
	struct evq_ctl *v;
	unsigned int i;
	int ret;

	if (s->kind == SIDE_NONE)
		return 0;
	if (s->kind == SIDE_EVQ) {
		ret = evq_open(&s->q, RING_ENTRIES, EVQ_OPEN_KMOD);
		if (ret)
			return ret;
		v = malloc(sizeof(*v) * s->p.n);
		if (!v)
			return -ENOMEM;
		ctl_fill(v, &s->p, EVQ_CTL_ADD, edge ? EVQ_WATCH_EDGE : 0);
		ret = evq_ctl_all(&s->q, v, s->p.n);
		free(v);
		return ret;
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0)
		return -errno;
	for (i = 0; i < s->p.n; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | (edge ? EPOLLET : 0);
		ev.data.u64 = i;
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->p.rfd[i], &ev) < 0)
			return -errno;
	}
	return 0;
}

/* Closing the queue drops every watch: nothing is left behind on a pipe. */
static void side_unwatch(struct side *s)
{
	if (s->kind == SIDE_EVQ)
		evq_close(&s->q);
	else if (s->kind == SIDE_EPOLL && s->epfd >= 0)
		close(s->epfd);
	s->epfd = -1;
}

/*
 * Rounds per repetition: enough that the cheaper side still spends
 * target_ms of CPU, so /proc/stat's 10 ms ticks stay a small error.
 */
/* Rounds of s that cost about ms of process CPU, estimated from n. */
static int scale_rounds(struct side *s, unsigned int n, double ms,
			unsigned int *out)
{
	uint64_t t0, dt;

	t0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	if (side_rounds(s, n))
		return -1;
	dt = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - t0;
	*out = (unsigned int)((double)n * ms * 1e6 / (double)(dt ? dt : 1)) + 1;
	return 0;
}

/*
 * Rounds per repetition: enough that the cheaper side still spends
 * target_ms of CPU, so /proc/stat's 10 ms ticks stay a small error.  A
 * first estimate from a short run, checked by a run of a quarter of the
 * target: short runs overestimate the cost per round (under TCG, code
 * being translated for the first time).
 */
static int calibrate(struct side *sides, unsigned int nr_sides,
		     unsigned int *rounds)
{
	unsigned int i, n, best = 1;

	for (i = 0; i < nr_sides; i++) {
		if (scale_rounds(&sides[i], 32, 50, &n) ||
		    scale_rounds(&sides[i], n, opt.target_ms / 4.0, &n) ||
		    scale_rounds(&sides[i], n, opt.target_ms / 4.0, &n))
			return -1;
		n *= 4;
		if (n > best)
			best = n;
	}
	*rounds = best;
	return 0;
}

struct harvest_res {
	struct cost *cost;	/* [reps] */
	struct counts cnt;	/* over the timed repetitions */
};

static int run_rep(struct side *s, unsigned int rounds, struct cost *c)
{
	struct sample a, b;

	sample_take(&a);
	if (side_rounds(s, rounds))
		return -1;
	sample_take(&b);
	cost_of(&a, &b, (double)rounds * opt.active, c);
	return 0;
}

/* Beyond this, /proc/stat is measuring some other program's work. */
#define MAX_GUEST_OVER_RUSAGE	2.0

/*
 * /proc/stat unless a repetition had too few ticks to resolve, or (auto
 * only) the epoll side, which defers no work of its own, shows far more
 * guest-wide CPU than its own: then other load pollutes the count.
 */
static bool use_procstat(struct harvest_res *res, unsigned int nr_sides,
			 const struct harvest_res *ep, const char **why)
{
	uint64_t min_ticks = UINT64_MAX;
	double g[opt.reps], p[opt.reps];
	unsigned int i, r;

	*why = "forced by -c";
	if (!strcmp(opt.cpu_source, "procstat"))
		return true;
	if (!strcmp(opt.cpu_source, "rusage"))
		return false;
	for (i = 0; i < nr_sides; i++)
		for (r = 0; r < opt.reps; r++)
			if (res[i].cost[r].ticks < min_ticks)
				min_ticks = res[i].cost[r].ticks;
	if (min_ticks < MIN_TICKS_PER_REP) {
		*why = "too few /proc/stat ticks per repetition";
		return false;
	}
	for (r = 0; r < opt.reps; r++) {
		g[r] = ep->cost[r].guest;
		p[r] = ep->cost[r].proc;
	}
	if (median(g, opt.reps) > MAX_GUEST_OVER_RUSAGE * median(p, opt.reps)) {
		*why = "other load on the machine: /proc/stat > 2x own CPU";
		return false;
	}
	*why = "enough ticks per repetition";
	return true;
}

static void report_side(const char *prefix, const struct harvest_res *r,
			bool procstat)
{
	const struct counts *c = &r->cnt;
	/* Per event the workload asked for: each write makes one. */
	double v[opt.reps], ev = (double)c->writes;
	unsigned int i;
	char name[128];

	for (i = 0; i < opt.reps; i++)
		v[i] = procstat ? r->cost[i].guest : r->cost[i].proc;
	snprintf(name, sizeof(name), "%s_ns_per_event", prefix);
	fig_stat(name, v, opt.reps, 0);
	for (i = 0; i < opt.reps; i++)
		v[i] = r->cost[i].guest;
	snprintf(name, sizeof(name), "%s_guest_ns_per_event", prefix);
	bench_fig_num(name, median(v, opt.reps), 0);
	for (i = 0; i < opt.reps; i++)
		v[i] = r->cost[i].proc;
	snprintf(name, sizeof(name), "%s_rusage_ns_per_event", prefix);
	bench_fig_num(name, median(v, opt.reps), 0);
	for (i = 0; i < opt.reps; i++)
		v[i] = r->cost[i].wall;
	snprintf(name, sizeof(name), "%s_wall_ns_per_event", prefix);
	bench_fig_num(name, median(v, opt.reps), 0);

	snprintf(name, sizeof(name), "%s_syscalls_per_event", prefix);
	bench_fig_num(name, (double)counts_syscalls(c) / ev, 3);
	snprintf(name, sizeof(name), "%s_waits_per_event", prefix);
	bench_fig_num(name, (double)c->waits / ev, 4);
	snprintf(name, sizeof(name), "%s_enters_per_event", prefix);
	bench_fig_num(name, (double)c->enters / ev, 4);
	snprintf(name, sizeof(name), "%s_writes_per_event", prefix);
	bench_fig_num(name, (double)c->writes / ev, 3);
	snprintf(name, sizeof(name), "%s_reads_per_event", prefix);
	bench_fig_num(name, (double)c->reads / ev, 3);
	snprintf(name, sizeof(name), "%s_entries_per_event", prefix);
	bench_fig_num(name, (double)c->events / ev, 3);
	snprintf(name, sizeof(name), "%s_spurious_events", prefix);
	bench_fig_num(name, (double)c->spurious, 0);
}

static void report_ratio(const char *name, const struct harvest_res *e,
			 const struct harvest_res *p, bool procstat)
{
	double ve[opt.reps], vp[opt.reps];
	unsigned int i;

	for (i = 0; i < opt.reps; i++) {
		ve[i] = procstat ? e->cost[i].guest : e->cost[i].proc;
		vp[i] = procstat ? p->cost[i].guest : p->cost[i].proc;
	}
	bench_fig_num(name, median(ve, opt.reps) / median(vp, opt.reps), 3);
}

/* The figure a repetition is judged by: one CPU source for all sides. */
static double rep_cost(const struct harvest_res *r, unsigned int i,
		       bool procstat)
{
	return procstat ? r->cost[i].guest : r->cost[i].proc;
}

/*
 * A queue's own cost per event: its side minus the baseline.  Each
 * repetition is differenced with the baseline repetition of the same
 * rotation (at most one other run between them), and the median of those
 * differences taken, so that drift of the machine over the run cancels
 * out; the difference of the two medians is printed beside it as a
 * check.  Returns the median difference.
 */
static double report_queue(const char *side, const char *mode,
			   const struct harvest_res *q,
			   const struct harvest_res *none, bool procstat)
{
	double d[opt.reps], vq[opt.reps], vn[opt.reps];
	unsigned int i;
	char name[128];

	for (i = 0; i < opt.reps; i++) {
		vq[i] = rep_cost(q, i, procstat);
		vn[i] = rep_cost(none, i, procstat);
		d[i] = vq[i] - vn[i];
	}
	snprintf(name, sizeof(name), "%s_queue%s_ns_per_event", side, mode);
	fig_stat(name, d, opt.reps, 0);
	snprintf(name, sizeof(name), "%s_queue%s_ns_per_event_diff_of_medians",
		 side, mode);
	bench_fig_num(name, median(vq, opt.reps) - median(vn, opt.reps), 0);
	snprintf(name, sizeof(name), "%s_queue%s_share", side, mode);
	bench_fig_num(name, median(d, opt.reps) / median(vq, opt.reps), 3);
	return median(d, opt.reps);
}

/*
 * evq's queue cost over epoll's.  A cost at or below zero is the
 * baseline's noise, not a queue that is free: no ratio then, "nan" (null
 * in the JSON) and a note saying which side it was.
 */
static void report_queue_ratio(const char *mode, double evq, double epoll)
{
	char name[128], note[160];

	snprintf(name, sizeof(name), "evq_vs_epoll_queue_cost%s_ratio", mode);
	if (evq > 0 && epoll > 0) {
		bench_fig_num(name, evq / epoll, 3);
		return;
	}
	bench_fig_num(name, NAN, 3);
	snprintf(name, sizeof(name), "evq_vs_epoll_queue_cost%s_note", mode);
	snprintf(note, sizeof(note),
		 "queue cost <= 0 (evq %.0f ns, epoll %.0f ns per event): "
		 "within the baseline's noise, no ratio", evq, epoll);
	bench_fig_str(name, note);
}

static int side_index(const struct side *sides, unsigned int nr_sides,
		      enum side_kind kind)
{
	unsigned int i;

	for (i = 0; i < nr_sides; i++)
		if (sides[i].kind == kind)
			return (int)i;
	return -1;
}

/*
 * One mode (edge or level): watch the queues' pipe sets, calibrate, then
 * run the repetitions of all sides (evq, epoll, the unwatched baseline)
 * in turn, rotating the order every repetition.
 */
static int harvest_mode(struct side *sides, unsigned int nr_sides, bool edge)
{
	const char *mode = edge ? "" : "_level";
	int ie = side_index(sides, nr_sides, SIDE_EVQ);
	int ip = side_index(sides, nr_sides, SIDE_EPOLL);
	int in = side_index(sides, nr_sides, SIDE_NONE);
	double qe = 0, qp = 0;
	struct harvest_res res[3];
	unsigned int i, r, rounds, k;
	bool procstat;
	char name[128], pfx[64];
	uint64_t min_ticks = UINT64_MAX;
	const char *why;
	int ret = -1;

	memset(res, 0, sizeof(res));
	for (i = 0; i < nr_sides; i++) {
		int err = side_watch(&sides[i], edge);

		if (err) {
			fprintf(stderr, "queue_bench: %s: watching %u fds: %s\n",
				sides[i].name, sides[i].p.n, strerror(-err));
			goto out;
		}
		res[i].cost = calloc(opt.reps, sizeof(struct cost));
		if (!res[i].cost)
			goto out;
	}
	/*
	 * One full cycle over every pipe first: the first write to a pipe
	 * allocates its buffer page, which is not what is being measured
	 * and would make the calibration pick too few rounds.
	 */
	for (i = 0; i < nr_sides; i++)
		if (side_rounds(&sides[i],
				(sides[i].p.n + opt.active - 1) / opt.active))
			goto out;
	if (calibrate(sides, nr_sides, &rounds))
		goto out;
	for (i = 0; i < nr_sides; i++)
		memset(&sides[i].cnt, 0, sizeof(sides[i].cnt));

	for (r = 0; r < opt.reps; r++) {
		for (k = 0; k < nr_sides; k++) {
			i = (k + r) % nr_sides;
			if (run_rep(&sides[i], rounds, &res[i].cost[r]))
				goto out;
			if (res[i].cost[r].ticks < min_ticks)
				min_ticks = res[i].cost[r].ticks;
		}
	}
	for (i = 0; i < nr_sides; i++)
		res[i].cnt = sides[i].cnt;

	procstat = use_procstat(res, nr_sides, &res[ip], &why);
	snprintf(name, sizeof(name), "harvest%s_rounds_per_rep", mode);
	bench_fig_num(name, rounds, 0);
	snprintf(name, sizeof(name), "harvest%s_procstat_ticks_min", mode);
	bench_fig_num(name, (double)min_ticks, 0);
	snprintf(name, sizeof(name), "harvest%s_cpu_source", mode);
	bench_fig_str(name, procstat ? "procstat" : "rusage");
	snprintf(name, sizeof(name), "harvest%s_cpu_source_reason", mode);
	bench_fig_str(name, why);
	for (i = 0; i < nr_sides; i++) {
		snprintf(pfx, sizeof(pfx), "%s_harvest%s", sides[i].name, mode);
		report_side(pfx, &res[i], procstat);
	}
	if (ie >= 0) {
		snprintf(name, sizeof(name), "evq_vs_epoll_harvest%s_ratio",
			 mode);
		report_ratio(name, &res[ie], &res[ip], procstat);
	}
	if (in >= 0) {
		if (ie >= 0)
			qe = report_queue("evq", mode, &res[ie], &res[in],
					  procstat);
		qp = report_queue("epoll", mode, &res[ip], &res[in], procstat);
		if (ie >= 0)
			report_queue_ratio(mode, qe, qp);
	}
	ret = 0;
out:
	for (i = 0; i < nr_sides; i++) {
		side_unwatch(&sides[i]);
		free(res[i].cost);
	}
	return ret;
}

/* ---- register workload ---- */

struct reg_res {
	double *add;		/* process CPU ns per fd, [reg_reps] */
	double *del;
	uint64_t ticks;		/* /proc/stat over all repetitions */
	uint64_t cpu_ns;	/* process CPU over all repetitions */
};

/* One batch of adds, one batch of deletes, each timed alone. */
static int reg_evq(const struct pipes *p, struct evq_ctl *add,
		   struct evq_ctl *del, double *t_add, double *t_del)
{
	uint64_t t0, t1, t2;
	struct evq q;
	int ret;

	ret = evq_open(&q, RING_ENTRIES, EVQ_OPEN_KMOD);
	if (ret)
		return ret;
	t0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	ret = evq_ctl_all(&q, add, p->n);
	t1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	if (!ret)
		ret = evq_ctl_all(&q, del, p->n);
	t2 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	evq_close(&q);
	*t_add = (double)(t1 - t0) / p->n;
	*t_del = (double)(t2 - t1) / p->n;
	return ret;
}

static int reg_epoll(const struct pipes *p, double *t_add, double *t_del)
{
	struct epoll_event ev;
	uint64_t t0, t1, t2;
	unsigned int i;
	int epfd, ret = 0;

	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		return -errno;
	t0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	for (i = 0; i < p->n; i++) {
		ev.events = EPOLLIN | EPOLLET;
		ev.data.u64 = i;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, p->rfd[i], &ev) < 0) {
			ret = -errno;
			break;
		}
	}
	t1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	for (i = 0; !ret && i < p->n; i++) {
		if (epoll_ctl(epfd, EPOLL_CTL_DEL, p->rfd[i], &ev) < 0)
			ret = -errno;
	}
	t2 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	close(epfd);
	*t_add = (double)(t1 - t0) / p->n;
	*t_del = (double)(t2 - t1) / p->n;
	return ret;
}

static void report_reg(const char *name, const struct reg_res *r)
{
	char buf[128];

	snprintf(buf, sizeof(buf), "%s_register_ns_per_fd", name);
	fig_stat(buf, r->add, opt.reg_reps, 0);
	snprintf(buf, sizeof(buf), "%s_unregister_ns_per_fd", name);
	fig_stat(buf, r->del, opt.reg_reps, 0);
}

/*
 * Registration is single-threaded and short (tens of ms even under TCG),
 * below what /proc/stat's ticks resolve, so each repetition is timed with
 * CLOCK_PROCESS_CPUTIME_ID; the /proc/stat total over all of them is
 * printed next to the process total as a check that nothing else (kernel
 * workers freeing watches, say) was left out.
 */
static int register_bench(const struct pipes *p, bool with_evq)
{
	struct reg_res res[2];
	struct evq_ctl *add = NULL, *del = NULL;
	unsigned int r, i, k, nr = with_evq ? 2 : 1;
	const char *names[2] = { "evq", "epoll" };
	struct sample a, b;
	char buf[128];
	int ret = -1, err;

	memset(res, 0, sizeof(res));
	for (i = 0; i < 2; i++) {
		res[i].add = calloc(opt.reg_reps, sizeof(double));
		res[i].del = calloc(opt.reg_reps, sizeof(double));
		if (!res[i].add || !res[i].del)
			goto out;
	}
	add = malloc(sizeof(*add) * p->n);
	del = malloc(sizeof(*del) * p->n);
	if (!add || !del)
		goto out;
	/* One untimed round of each warms the allocators' caches. */
	for (r = 0; r <= opt.reg_reps; r++) {
		for (k = 0; k < nr; k++) {
			double ta = 0, td = 0;

			i = with_evq ? (k + r) % 2 : 1;
			ctl_fill(add, p, EVQ_CTL_ADD, EVQ_WATCH_EDGE);
			ctl_fill(del, p, EVQ_CTL_DEL, 0);
			sample_take(&a);
			err = i == 0 ? reg_evq(p, add, del, &ta, &td) :
				       reg_epoll(p, &ta, &td);
			sample_take(&b);
			if (err) {
				fprintf(stderr, "queue_bench: register %s: %s\n",
					names[i], strerror(-err));
				goto out;
			}
			if (!r)
				continue;
			res[i].add[r - 1] = ta;
			res[i].del[r - 1] = td;
			res[i].ticks += b.busy_ticks - a.busy_ticks;
			res[i].cpu_ns += b.proc_ns - a.proc_ns;
		}
	}

	bench_fig_num("register_fds", p->n, 0);
	bench_fig_num("register_reps", opt.reg_reps, 0);
	bench_fig_str("register_cpu_source", "process_cputime");
	for (i = with_evq ? 0 : 1; i < 2; i++) {
		report_reg(names[i], &res[i]);
		snprintf(buf, sizeof(buf), "%s_register_procstat_ms_per_rep",
			 names[i]);
		bench_fig_num(buf, (double)res[i].ticks * 1e3 / clk_tck /
			     opt.reg_reps, 2);
		snprintf(buf, sizeof(buf), "%s_register_rusage_ms_per_rep",
			 names[i]);
		bench_fig_num(buf, (double)res[i].cpu_ns / 1e6 / opt.reg_reps, 2);
	}
	bench_fig_num("epoll_register_syscalls", p->n, 0);
	if (with_evq) {
		bench_fig_num("evq_register_syscalls",
			(p->n + CTL_CHUNK - 1) / CTL_CHUNK, 0);
		bench_fig_num("evq_vs_epoll_register_ratio",
			median(res[0].add, opt.reg_reps) /
			median(res[1].add, opt.reg_reps), 3);
		bench_fig_num("evq_vs_epoll_unregister_ratio",
			median(res[0].del, opt.reg_reps) /
			median(res[1].del, opt.reg_reps), 3);
	}
	ret = 0;
out:
	free(add);
	free(del);
	for (i = 0; i < 2; i++) {
		free(res[i].add);
		free(res[i].del);
	}
	return ret;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: queue_bench [-r REPS] [-R REG_REPS] [-n FDS] [-a ACTIVE] [-t MS]\n"
"                   [-c auto|procstat|rusage] [-e] [-o FILE]\n"
"  -r REPS    harvest repetitions per side and mode (default 7)\n"
"  -R REPS    register repetitions per side (default 21)\n"
"  -n FDS     watched pipes per side (default 10000)\n"
"  -a ACTIVE  pipes made ready per round (default 100)\n"
"  -t MS      CPU per harvest repetition, cheaper side (default 1000)\n"
"  -c SRC     CPU source for the harvest figures (default auto:\n"
"             /proc/stat if every repetition has >= %d ticks)\n"
"  -e         epoll side and baseline only (hosts without /dev/evq;\n"
"             no evq/epoll ratios)\n"
"  -o FILE    JSON output (default build/bench/queue.json)\n"
"exit: 0 done, 1 error, 2 usage, 4 skipped (/dev/evq absent)\n",
		MIN_TICKS_PER_REP);
}

static unsigned int parse_uint(const char *s, unsigned int min)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > 10000000UL) {
		fprintf(stderr, "queue_bench: bad number '%s'\n", s);
		exit(2);
	}
	return (unsigned int)v;
}

static void parse_opts(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "r:R:n:a:t:c:eo:h")) != -1) {
		switch (c) {
		case 'r': opt.reps = parse_uint(optarg, 1); break;
		case 'R': opt.reg_reps = parse_uint(optarg, 1); break;
		case 'n': opt.nr_fds = parse_uint(optarg, 1); break;
		case 'a': opt.active = parse_uint(optarg, 1); break;
		case 't': opt.target_ms = parse_uint(optarg, 1); break;
		case 'c': opt.cpu_source = optarg; break;
		case 'e': opt.epoll_only = true; break;
		case 'o': opt.out = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc || opt.active > opt.nr_fds ||
	    (strcmp(opt.cpu_source, "auto") &&
	     strcmp(opt.cpu_source, "procstat") &&
	     strcmp(opt.cpu_source, "rusage"))) {
		usage(stderr);
		exit(2);
	}
}

/* Is the module there?  Exit 4 (skip) rather than fall back to epoll. */
static void check_evq(void)
{
	struct evq q;
	int ret = evq_open(&q, RING_ENTRIES, EVQ_OPEN_KMOD);

	if (ret == -ENOENT) {
		fprintf(stderr, "queue_bench: /dev/evq absent (evq.ko not "
			"loaded): skipping; -e runs the epoll side alone\n");
		exit(EXIT_SKIP);
	}
	if (ret) {
		fprintf(stderr, "queue_bench: evq_open(EVQ_OPEN_KMOD): %s\n",
			strerror(-ret));
		exit(1);
	}
	evq_close(&q);
}

static void report_env(void)
{
	struct utsname u;

	uname(&u);
	bench_fig_str("kernel", u.release);
	bench_fig_num("nr_cpus", (double)sysconf(_SC_NPROCESSORS_ONLN), 0);
	bench_fig_num("clk_tck", (double)clk_tck, 0);
	bench_fig_num("watched_fds", opt.nr_fds, 0);
	bench_fig_num("active_per_round", opt.active, 0);
	bench_fig_num("reps", opt.reps, 0);
	bench_fig_str("evq_backend", opt.epoll_only ? "none" : "kmod");
}

int main(int argc, char **argv)
{
	/* Contiguous, so that -e is the tail: epoll and the baseline. */
	struct side sides[3] = {
		{ .kind = SIDE_EVQ, .name = "evq", .epfd = -1 },
		{ .kind = SIDE_EPOLL, .name = "epoll", .epfd = -1 },
		{ .kind = SIDE_NONE, .name = "none", .epfd = -1 },
	};
	struct side *first;
	unsigned int nr_sides, i, need;
	char skipped[192] = "";
	int err;

	parse_opts(argc, argv);
	first = opt.epoll_only ? &sides[1] : &sides[0];
	nr_sides = opt.epoll_only ? 2 : 3;
	clk_tck = sysconf(_SC_CLK_TCK);
	if (!opt.epoll_only)
		check_evq();

	/* Two fds per pipe, a pipe set per side, plus queues and stdio. */
	need = nr_sides * 2 * opt.nr_fds + 64;
	err = bench_raise_nofile(need);
	if (err == -EMFILE) {
		/*
		 * No room for the baseline's pipes (an unprivileged host):
		 * run the queues without it, loudly, rather than not at all.
		 */
		struct rlimit rl;

		getrlimit(RLIMIT_NOFILE, &rl);
		nr_sides--;
		err = bench_raise_nofile(nr_sides * 2 * opt.nr_fds + 64);
		if (!err) {
			snprintf(skipped, sizeof(skipped),
				 "skipped: RLIMIT_NOFILE %llu < %u for %u pipe "
				 "sets; -n %llu or less fits",
				 (unsigned long long)rl.rlim_max, need,
				 nr_sides + 1,
				 rl.rlim_max > 64 ? (unsigned long long)
				 (rl.rlim_max - 64) / (2 * (nr_sides + 1)) : 0);
			fprintf(stderr, "queue_bench: baseline %s\n",
				skipped);
		}
	}
	if (err) {
		fprintf(stderr, "queue_bench: RLIMIT_NOFILE to %u: %s "
			"(try a smaller -n)\n", nr_sides * 2 * opt.nr_fds + 64,
			strerror(-err));
		return 1;
	}
	for (i = 0; i < nr_sides; i++) {
		err = pipes_open(&first[i].p, opt.nr_fds);
		if (err) {
			fprintf(stderr, "queue_bench: %u pipes: %s\n",
				opt.nr_fds, strerror(-err));
			return 1;
		}
	}

	report_env();
	bench_fig_str("harvest_baseline", skipped[0] ? skipped : "on");
	/* Registration first, while no other watch sits on the pipes. */
	if (register_bench(&first[0].p, !opt.epoll_only))
		return 1;
	if (harvest_mode(first, nr_sides, true))
		return 1;
	if (harvest_mode(first, nr_sides, false))
		return 1;

	for (i = 0; i < nr_sides; i++)
		pipes_close(&first[i].p);
	if (bench_fig_json(opt.out, "queue_bench"))
		return 1;
	return 0;
}
