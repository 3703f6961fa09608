// SPDX-License-Identifier: GPL-2.0
/*
 * queue_bench: evq (libevq on /dev/evq, harvesting from the mapped ring)
 * against epoll, poll and io_uring multishot poll, side by side in one
 * process, with the repetitions of the sides interleaved so that drift
 * of the machine hits all alike.
 *
 * Workloads:
 *   register  n fds watched and unwatched per side, for each n of the
 *             sweep: one evq_ctl() batch, an epoll_ctl() per fd, n poll
 *             SQEs submitted in batches, a pollfd array filled.
 *   harvest   for each n of the sweep (100 .. 100,000) and each share of
 *             the fds made ready per round (1%, 10%): write a byte to
 *             each, harvest the events, read the bytes back.
 *             Edge-triggered where the queue has a choice (poll is
 *             level by nature, io_uring's multishot poll edge-like); a
 *             side "none" does the same writes and reads with nothing
 *             watching: the baseline that separates each queue's own
 *             cost.  evq and epoll run level-triggered too, at -n.
 *   probe     a writer thread makes fds ready while the harvesting
 *             thread blocks in its wait, under tools/probes/waitstat:
 *             context switches and on-CPU wait time per event.
 *
 * CPU is counted guest-wide from /proc/stat (every CPU, all but idle and
 * iowait), so the writer's wake-ups, the kernel's posting and any kernel
 * worker are charged to the side that caused them; getrusage() of this
 * process is printed beside it as a cross-check.  Figures go to stdout
 * as "name: value" lines and to a JSON file (-o) with the plots to draw.
 *
 * Files: qb_side.c (pipes, the baseline), qb_evq.c, qb_epoll.c,
 * qb_poll.c, qb_uring.c (the sides), qb_cpu.c (CPU accounting),
 * qb_sweep.c (the repetitions), qb_probe.c (the wake-up probe),
 * qb_report.c (figures), qb_plot.c (plots).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/utsname.h>

#include "libevq.h"
#include "bench_fig.h"
#include "bench_util.h"
#include "qb.h"

struct qb_opts qb_opt = {
	.nr_n = 4,
	.n = { 100, 1000, 10000, 100000 },
	.nr_pct = 2,
	.pct = { 1, 10 },
	.head_n = 10000,
	.reps = 5,
	.sweep_reps = 3,
	.reg_reps = 21,
	.target_ms = 500,
	.out = "build/bench/queue.json",
	.cpu_source = "auto",
};

/* The rotation's order at the first repetition. */
static const enum qb_kind all_kinds[] = {
	QB_EVQ, QB_EPOLL, QB_POLL, QB_URING, QB_NONE,
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: queue_bench [-N LIST] [-P LIST] [-n FDS] [-r REPS] [-s REPS]\n"
"                   [-R REPS] [-t MS] [-c auto|procstat|rusage] [-e] [-p]\n"
"                   [-W WAITSTAT] [-o FILE]\n"
"  -N LIST    watched fds of the sweep (default 100,1000,10000,100000)\n"
"  -P LIST    %% of them made ready per round (default 1,10); must hold 1\n"
"  -n FDS     the headline point, one of -N (default 10000): the ratios,\n"
"             the targets, the level-triggered run and the register\n"
"             figures without a count in their name are taken there\n"
"  -r REPS    harvest repetitions per side and point at -n, and of the\n"
"             level-triggered run (default 5)\n"
"  -s REPS    the same at the other counts of the sweep (default 3)\n"
"  -R REPS    register repetitions per side up to 10,000 fds, fewer\n"
"             above (default 21)\n"
"  -t MS      CPU per harvest repetition and side, at least; the\n"
"             calibration aims 20%% above (default 500)\n"
"  -c SRC     CPU source for the harvest figures (default auto:\n"
"             /proc/stat if every repetition has >= %d ticks)\n"
"  -e         no evq side (hosts without /dev/evq; no evq ratios)\n"
"  -p         no wake-up probe\n"
"  -W PATH    waitstat for the probe (default: ../probes/waitstat\n"
"             beside this program)\n"
"  -o FILE    JSON output (default build/bench/queue.json)\n"
"exit: 0 done, 1 error, 2 usage, 4 skipped (/dev/evq absent)\n",
		QB_MIN_TICKS_PER_REP);
}

static void bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "queue_bench: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	usage(stderr);
	exit(2);
}

static unsigned int parse_uint(const char *s, unsigned int min,
			       unsigned int max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		bad_usage("bad number '%s'", s);
	return (unsigned int)v;
}

/* "a,b,c" into v[], ascending and without repeats. */
static unsigned int parse_list(const char *s, unsigned int *v,
			       unsigned int max_nr, unsigned int min,
			       unsigned int max)
{
	char buf[128], *tok, *save = NULL;
	unsigned int nr = 0;

	if (strlen(s) >= sizeof(buf))
		bad_usage("list too long: '%s'", s);
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (nr == max_nr)
			bad_usage("too many values in '%s'", s);
		v[nr] = parse_uint(tok, min, max);
		if (nr && v[nr] <= v[nr - 1])
			bad_usage("values must ascend: '%s'", s);
		nr++;
	}
	if (!nr)
		bad_usage("empty list '%s'", s);
	return nr;
}

static int index_of(const unsigned int *v, unsigned int nr, unsigned int x)
{
	unsigned int i;

	for (i = 0; i < nr; i++)
		if (v[i] == x)
			return (int)i;
	return -1;
}

static void parse_opts(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "N:P:n:r:s:R:t:c:epW:o:h")) != -1) {
		switch (c) {
		case 'N':
			qb_opt.nr_n = parse_list(optarg, qb_opt.n,
						 QB_MAX_POINTS, 1, 1000000);
			break;
		case 'P':
			qb_opt.nr_pct = parse_list(optarg, qb_opt.pct,
						   QB_MAX_PCTS, 1, 100);
			break;
		case 'n': qb_opt.head_n = parse_uint(optarg, 1, 1000000); break;
		case 'r': qb_opt.reps = parse_uint(optarg, 1, 1000); break;
		case 's': qb_opt.sweep_reps = parse_uint(optarg, 1, 1000); break;
		case 'R': qb_opt.reg_reps = parse_uint(optarg, 1, 1000); break;
		case 't': qb_opt.target_ms = parse_uint(optarg, 1, 600000); break;
		case 'c': qb_opt.cpu_source = optarg; break;
		case 'e': qb_opt.no_evq = true; break;
		case 'p': qb_opt.no_probe = true; break;
		case 'W': qb_opt.waitstat = optarg; break;
		case 'o': qb_opt.out = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc)
		bad_usage("unexpected argument '%s'", argv[optind]);
	if (strcmp(qb_opt.cpu_source, "auto") &&
	    strcmp(qb_opt.cpu_source, "procstat") &&
	    strcmp(qb_opt.cpu_source, "rusage"))
		bad_usage("-c wants auto, procstat or rusage, not '%s'",
			  qb_opt.cpu_source);
	if (index_of(qb_opt.n, qb_opt.nr_n, qb_opt.head_n) < 0)
		bad_usage("-n must be one of the -N counts%s", "");
	if (index_of(qb_opt.pct, qb_opt.nr_pct, 1) < 0)
		bad_usage("-P must hold 1 (the headline point's share)%s", "");
}

/* Is the module there?  Exit 4 (skip) rather than fall back to epoll. */
static void check_evq(void)
{
	struct evq q;
	int ret = evq_open(&q, 1024, EVQ_OPEN_KMOD);

	if (ret == -ENOENT) {
		fprintf(stderr, "queue_bench: /dev/evq absent (evq.ko not "
			"loaded): skipping; -e runs the other sides alone\n");
		exit(QB_EXIT_SKIP);
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
	char list[128];
	unsigned int i;
	int len = 0;

	uname(&u);
	bench_fig_str("kernel", u.release);
	bench_fig_num("nr_cpus", (double)sysconf(_SC_NPROCESSORS_ONLN), 0);
	bench_fig_num("clk_tck", (double)qb_clk_tck, 0);
	bench_fig_num("watched_fds", qb_opt.head_n, 0);
	bench_fig_num("active_per_round", qb_opt.head_n / 100 ?
		      qb_opt.head_n / 100 : 1, 0);
	bench_fig_num("reps", qb_opt.reps, 0);
	bench_fig_num("sweep_reps", qb_opt.sweep_reps, 0);
	bench_fig_num("target_ms", qb_opt.target_ms, 0);
	for (i = 0; i < qb_opt.nr_n; i++)
		len += snprintf(list + len, sizeof(list) - len, "%s%u",
				i ? "," : "", qb_opt.n[i]);
	bench_fig_str("sweep_fds", list);
	for (i = 0, len = 0; i < qb_opt.nr_pct; i++)
		len += snprintf(list + len, sizeof(list) - len, "%s%u",
				i ? "," : "", qb_opt.pct[i]);
	bench_fig_str("sweep_active_pct", list);
	bench_fig_str("evq_backend", qb_opt.no_evq ? "none" : "kmod");
	bench_fig_str("harvest_baseline", "on");
}

/*
 * One cycle over every pipe: the first write to a pipe allocates its
 * buffer page, which is not what is being measured and would make the
 * calibration pick too few rounds.
 */
static int warm_pipes(struct qb_pipes *p)
{
	struct qb_side none;
	unsigned int active = p->n < 1000 ? p->n : 1000;
	int ret = 0;

	qb_side_init(&none, QB_NONE, p);
	if (qb_side_open(&none, p->n, true))
		return -1;
	while (!ret && none.cnt.writes < p->n)
		ret = qb_round(&none, active);
	none.ops->close(&none);
	return ret;
}

static void sides_init(struct qb_results *res, struct qb_side *sides,
		       struct qb_pipes *p)
{
	unsigned int i;

	res->nr_sides = 0;
	for (i = 0; i < sizeof(all_kinds) / sizeof(all_kinds[0]); i++) {
		if (all_kinds[i] == QB_EVQ && qb_opt.no_evq)
			continue;
		res->kinds[res->nr_sides] = all_kinds[i];
		qb_side_init(&sides[res->nr_sides++], all_kinds[i], p);
	}
}

static int run_register(struct qb_results *res, struct qb_side *sides,
			unsigned int head)
{
	unsigned int i;

	for (i = 0; i < qb_opt.nr_n; i++) {
		if (qb_register_run(sides, res->nr_sides, qb_opt.n[i],
				    res->reg[i]))
			return -1;
		qb_report_register_sweep(res->reg[i], qb_opt.n[i], sides,
					 res->nr_sides);
	}
	qb_report_register(res->reg[head], qb_opt.n[head], sides,
			   res->nr_sides);
	return 0;
}

static int run_sweep(struct qb_results *res, struct qb_side *sides)
{
	unsigned int i;

	for (i = 0; i < qb_opt.nr_n; i++) {
		struct qb_block *b = &res->sweep[i];

		b->n = qb_opt.n[i];
		/*
		 * The headline count carries the ratios and the targets: the
		 * full -r there, fewer elsewhere to fit the time budget.
		 */
		b->reps = b->n == qb_opt.head_n ? qb_opt.reps :
			  qb_opt.sweep_reps;
		b->edge = true;
		b->nr_pct = qb_opt.nr_pct;
		b->pct = qb_opt.pct;
		b->nr_sides = res->nr_sides;
		b->sides = sides;
		if (qb_block_run(b))
			return -1;
		qb_report_sweep(b);
	}
	return 0;
}

/* evq and epoll level-triggered at the headline point, as before. */
static int run_level(struct qb_pipes *p)
{
	static const unsigned int one = 1;
	struct qb_side sides[3];
	struct qb_block b;
	unsigned int nr = 0;
	int ret;

	memset(&b, 0, sizeof(b));
	if (!qb_opt.no_evq)
		qb_side_init(&sides[nr++], QB_EVQ, p);
	qb_side_init(&sides[nr++], QB_EPOLL, p);
	qb_side_init(&sides[nr++], QB_NONE, p);
	b.n = qb_opt.head_n;
	b.reps = qb_opt.reps;
	b.edge = false;
	b.nr_pct = 1;
	b.pct = &one;
	b.nr_sides = nr;
	b.sides = sides;
	ret = qb_block_run(&b);
	if (!ret)
		qb_report_headline(&b, 0, "_level");
	qb_block_free(&b);
	return ret;
}

/* waitstat beside us: build/bench/queue_bench -> build/probes/waitstat. */
static const char *default_waitstat(const char *self)
{
	static char path[PATH_MAX];
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", self);
	snprintf(path, sizeof(path), "%s/../probes/waitstat", dirname(dir));
	return path;
}

static void run_probes(struct qb_results *res, const char *self)
{
	char err[256];
	unsigned int i;

	if (qb_opt.no_probe) {
		bench_fig_str("probe", "skipped: -p");
		return;
	}
	if (!qb_opt.waitstat)
		qb_opt.waitstat = default_waitstat(self);
	if (access(qb_opt.waitstat, X_OK)) {
		snprintf(err, sizeof(err), "skipped: %s: %s (make -C "
			 "tools/probes prog)", qb_opt.waitstat,
			 strerror(errno));
		bench_fig_str("probe", err);
		return;
	}
	bench_fig_str("probe", "on");
	bench_fig_num("probe_watched_fds", QB_PROBE_FDS, 0);
	bench_fig_num("probe_active_per_round", QB_PROBE_ACTIVE, 0);
	bench_fig_num("probe_rounds", QB_PROBE_ROUNDS, 0);
	for (i = 0; i < res->nr_sides; i++) {
		enum qb_kind k = res->kinds[i];
		char name[64];

		if (k == QB_NONE)
			continue;
		if (qb_probe_run(self, k, &res->probe[k], err, sizeof(err))) {
			snprintf(name, sizeof(name), "%s_probe_note",
				 qb_kind_name(k));
			bench_fig_str(name, err);
			continue;
		}
		qb_report_probe(k, &res->probe[k]);
	}
}

static enum qb_kind kind_by_name(const char *name)
{
	unsigned int k;

	for (k = 0; k < QB_NR_KINDS; k++)
		if (!strcmp(name, qb_kind_name(k)) && k != QB_NONE)
			return k;
	fprintf(stderr, "queue_bench: --probe-child: no side '%s'\n", name);
	exit(2);
}

/* Guest time per phase, for fitting the run into make bench's budget. */
static uint64_t phase_start(void)
{
	return qb_clock_ns(CLOCK_MONOTONIC);
}

static void phase_end(const char *phase, uint64_t t0)
{
	char name[64];

	snprintf(name, sizeof(name), "time_%s_s", phase);
	bench_fig_num(name, (double)(qb_clock_ns(CLOCK_MONOTONIC) - t0) / 1e9,
		      1);
}

static int run_all(struct qb_results *res, const char *self)
{
	static struct qb_side sides[QB_NR_KINDS];
	unsigned int head = (unsigned int)index_of(qb_opt.n, qb_opt.nr_n,
						   qb_opt.head_n);
	unsigned int pi = (unsigned int)index_of(qb_opt.pct, qb_opt.nr_pct, 1);
	struct qb_pipes p;
	unsigned int maxn = qb_opt.n[qb_opt.nr_n - 1];
	uint64_t t;
	int err;

	/*
	 * Two fds per pipe, one pipe set for all sides, plus queues.  The
	 * probe's children inherit the limit and, without
	 * CAP_SYS_RESOURCE, could not raise it past ours: ask for their
	 * 10,000 pipes too, where we may (else their note says so).
	 */
	if (maxn < QB_PROBE_FDS)
		bench_raise_nofile(2 * QB_PROBE_FDS + 64);
	err = bench_raise_nofile(2 * maxn + 64);
	if (!err)
		err = qb_pipes_open(&p, maxn);
	if (err) {
		fprintf(stderr, "queue_bench: %u pipes (%u fds): %s (try a "
			"smaller -N)\n", maxn, 2 * maxn + 64, strerror(-err));
		return -1;
	}
	report_env();
	sides_init(res, sides, &p);
	if (warm_pipes(&p))
		return -1;
	t = phase_start();
	if (run_register(res, sides, head))
		return -1;
	phase_end("register", t);
	if (run_sweep(res, sides))
		return -1;
	qb_report_headline(&res->sweep[head], pi, "");
	qb_report_targets(&res->sweep[head], pi);
	t = phase_start();
	if (run_level(&p))
		return -1;
	phase_end("level", t);
	qb_pipes_close(&p);
	t = phase_start();
	run_probes(res, self);
	phase_end("probe", t);
	return 0;
}

int main(int argc, char **argv)
{
	static struct qb_results res;
	char self[PATH_MAX];
	uint64_t t0 = qb_clock_ns(CLOCK_MONOTONIC);
	ssize_t len;
	char *plots;

	qb_clk_tck = sysconf(_SC_CLK_TCK);
	if (argc == 3 && !strcmp(argv[1], "--probe-child"))
		return qb_probe_child(kind_by_name(argv[2]));
	parse_opts(argc, argv);
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len < 0) {
		perror("queue_bench: /proc/self/exe");
		return 1;
	}
	self[len] = '\0';
	if (!qb_opt.no_evq)
		check_evq();
	if (run_all(&res, self))
		return 1;
	plots = qb_plots_json(&res);
	if (plots) {
		bench_fig_raw("plots", plots);	/* keeps a copy */
		free(plots);
	}
	bench_fig_num("run_wall_s", (qb_clock_ns(CLOCK_MONOTONIC) - t0) / 1e9,
		      1);
	return bench_fig_json(qb_opt.out, "queue_bench") ? 1 : 0;
}
