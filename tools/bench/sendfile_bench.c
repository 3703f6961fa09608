// SPDX-License-Identifier: GPL-2.0
/*
 * sendfile_bench: the head-of-line benchmark for evq's sendfile.
 *
 * One request stream mixing hot files (resident) and cold files (on a
 * throttled disk, evicted before every run) is served over loopback TCP
 * by each server design in turn, in one process run:
 *
 *   evq        evq_sendfile(EVQ_SF_NOTIFY), one thread
 *   evq_chunk  the same, sending at most 64 KiB a turn
 *   evq_async  evq_sendfile(EVQ_SF_ASYNC), one thread
 *   blocking   sendfile(2) from an epoll loop, one thread
 *   pool16     sendfile(2), 16 threads sharing one epoll set
 *   pool64     the same with 64 threads
 *   uring      io_uring splice file -> pipe -> socket, one thread
 *
 * Each run has two phases, each on fresh connections warmed by one hot
 * reply apiece.  Open loop: requests arrive at a fixed mean rate
 * (Poisson), the same for every design: half (-l) of what one blocking
 * thread sustains on this mix, measured first, so the peer runs at a load
 * it can carry.  Its hot-file latencies give the headline ratios, since a
 * design that blocks makes hot requests wait behind cold ones.  Closed
 * loop: every connection asks again as soon as its reply is in, which
 * gives the throughput each design sustains.
 *
 * The designs alternate, in an order that rotates every repetition; the
 * page cache is dropped (then the hot set read back in) and the guest
 * left to go idle before each.  Latency percentiles pool the samples of
 * all repetitions.  CPU is the whole guest's busy time (CPUs x wall minus
 * idle, from /proc/stat) minus the load generator's own thread, so kernel
 * workers, io-wq threads and helper threads are charged to the design
 * that caused them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include "libevq.h"
#include "sfb.h"
#include "bench_util.h"

#define EXIT_USAGE	2
#define EXIT_SKIP	4
#define MAX_DESIGNS	8
#define MAX_REPS	31

static const struct sfb_design all_designs[] = {
	{ "evq", "evq_sendfile(EVQ_SF_NOTIFY) from an evq loop, 1 thread",
	  sfb_serve_evq_sync, 1, true, false, false },
	{ "evq_chunk", "evq_sendfile(EVQ_SF_NOTIFY), --chunk bytes a turn, "
	  "1 thread", sfb_serve_evq_sync, 1, true, false, true },
	{ "evq_async", "evq_sendfile(EVQ_SF_ASYNC) from an evq loop, 1 thread",
	  sfb_serve_evq_async, 1, true, true, false },
	{ "blocking", "sendfile(2) from an epoll loop, 1 thread",
	  sfb_serve_epoll, 1, false, false, false },
	{ "pool16", "sendfile(2), 16 threads on one epoll set",
	  sfb_serve_epoll, 16, false, false, false },
	{ "pool64", "sendfile(2), 64 threads on one epoll set",
	  sfb_serve_epoll, 64, false, false, false },
	{ "uring", "io_uring splice file->pipe->socket, 1 thread",
	  sfb_serve_uring, 1, false, false, false },
};
#define NR_ALL	(sizeof(all_designs) / sizeof(all_designs[0]))

static struct {
	const char *dir;
	const char *out;
	const char *designs;
	const char *backend;
	const char *evict;
	const char *headline;
	unsigned int reps;
	unsigned int conns;
	unsigned int open_nr;
	unsigned int closed_nr;
	unsigned int calib_nr;
	double cold_frac;
	double load;
	double rate;		/* fixed offered rate, 0: calibrate */
	unsigned int nr_hot;
	uint32_t hot_size;
	uint32_t cold_size;
	uint64_t cold_set;	/* bytes, 0: from MemTotal */
	double cold_set_mem;	/* cold set / MemTotal when cold_set is 0 */
	uint64_t disk_rate;	/* bytes/s of the scratch disk, 0: unknown */
	double disk_util;	/* share of disk_rate the open loop may use */
	uint64_t seed;
	unsigned int timeout_s;
	bool keep;
	bool verbose;
	bool time_calls;
	uint32_t chunk;		/* design evq_chunk's turn */
} opt = {
	.out = "build/bench/sendfile.json",
	.designs = "evq,evq_chunk,evq_async,blocking,pool16,pool64,uring",
	.backend = "kmod",
	.evict = "drop",
	.headline = "evq_async",
	.reps = 3,
	.conns = 64,
	.open_nr = 1500,
	.closed_nr = 600,
	.calib_nr = 600,
	.cold_frac = 0.05,
	.load = 0.5,
	.nr_hot = 32,
	.hot_size = 64 << 10,
	.cold_size = 256 << 10,
	.cold_set_mem = 1.25,
	.disk_util = 0.5,
	.seed = 1,
	.timeout_s = 180,
	.chunk = 64 << 10,
};

static struct sfb_fileset fs;
static long clk_tck;

/* ---- small things ---- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: sendfile_bench [options]\n"
"  -d DIR          where to create the file set (default $EVQ_SCRATCH/sfb)\n"
"  -o FILE         JSON output (default build/bench/sendfile.json)\n"
"  -r N            repetitions of every design (default 3)\n"
"  -D LIST         designs, comma-separated (default %s)\n"
"  -b kmod|epoll|auto  libevq backend of the evq designs (default kmod)\n"
"  -c N            client connections (default 64)\n"
"  -n N            requests per open-loop run (default 1500)\n"
"  -N N            requests per closed-loop run (default 600)\n"
"  -f FRAC         share of requests for cold files (default 0.05)\n"
"  -l LOAD         open-loop rate as a share of what one blocking thread\n"
"                  sustains on the same mix, measured first (default 0.5)\n"
"  -R RATE         open-loop rate in requests/s (instead of -l)\n"
"  --hot N:SIZE    hot files and their size (default 32:64K)\n"
"  --cold-size SIZE  size of a cold file (default 256K)\n"
"  --cold-set SIZE cold set size (default 1.25 x MemTotal)\n"
"  --disk-rate BPS the scratch disk's read rate: caps the open-loop rate\n"
"                  so cold reads use at most half of it\n"
"  --evict drop|fadvise  evict with drop_caches (default) or\n"
"                  POSIX_FADV_DONTNEED on the cold files only\n"
"  --headline evq|evq_chunk|evq_async  the evq design of the headline\n"
"                  ratios\n"
"                  (default evq_async)\n"
"  --keep          keep the file set, and reuse one that is there\n"
"  --seed N        seed of the request streams (default 1)\n"
"  --timeout S     a run taking longer fails (default 180)\n"
"  -v              a line on stderr after every run\n"
"  --chunk SIZE    bytes design evq_chunk sends a turn (default 64K)\n"
"  --time-calls    time every evq_sendfile() of the evq designs, by stop\n"
"                  reason or by hot/cold start (a diagnostic: it adds two\n"
"                  clock reads a call)\n"
"exit status: 0 done, 1 error, 2 usage, 4 evq designs skipped (module\n"
"without sendfile); the other designs' figures are written then.\n",
		opt.designs);
}

static uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	switch (*end) {
	case 'k': case 'K': v *= 1024; end++; break;
	case 'm': case 'M': v *= 1024 * 1024; end++; break;
	case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
	}
	if (end == s || *end || v <= 0) {
		fprintf(stderr, "sendfile_bench: bad size '%s'\n", s);
		exit(EXIT_USAGE);
	}
	return (uint64_t)v;
}

static unsigned long parse_uint(const char *s, unsigned long max)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);

	if (end == s || *end || v > max) {
		fprintf(stderr, "sendfile_bench: bad number '%s'\n", s);
		exit(EXIT_USAGE);
	}
	return v;
}

static double parse_frac(const char *s, double max)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v >= 0 && v <= max)) {
		fprintf(stderr, "sendfile_bench: bad value '%s'\n", s);
		exit(EXIT_USAGE);
	}
	return v;
}

static void parse_opts(int argc, char **argv)
{
	enum { O_HOT = 256, O_COLD_SIZE, O_COLD_SET, O_DISK_RATE, O_EVICT,
	       O_HEADLINE, O_KEEP, O_SEED, O_TIMEOUT, O_TIME_CALLS, O_CHUNK };
	static const struct option lo[] = {
		{ "hot", required_argument, NULL, O_HOT },
		{ "cold-size", required_argument, NULL, O_COLD_SIZE },
		{ "cold-set", required_argument, NULL, O_COLD_SET },
		{ "disk-rate", required_argument, NULL, O_DISK_RATE },
		{ "evict", required_argument, NULL, O_EVICT },
		{ "headline", required_argument, NULL, O_HEADLINE },
		{ "keep", no_argument, NULL, O_KEEP },
		{ "seed", required_argument, NULL, O_SEED },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "time-calls", no_argument, NULL, O_TIME_CALLS },
		{ "chunk", required_argument, NULL, O_CHUNK },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "d:o:r:D:b:c:n:N:f:l:R:vh", lo,
				NULL)) != -1) {
		switch (c) {
		case 'd': opt.dir = optarg; break;
		case 'o': opt.out = optarg; break;
		case 'r': opt.reps = parse_uint(optarg, MAX_REPS); break;
		case 'D': opt.designs = optarg; break;
		case 'b': opt.backend = optarg; break;
		case 'c': opt.conns = parse_uint(optarg, 4096); break;
		case 'n': opt.open_nr = parse_uint(optarg, 10000000); break;
		case 'N': opt.closed_nr = parse_uint(optarg, 10000000); break;
		case 'f': opt.cold_frac = parse_frac(optarg, 1); break;
		case 'l': opt.load = parse_frac(optarg, 10); break;
		case 'R': opt.rate = parse_frac(optarg, 1e9); break;
		case O_HOT: {
			char *colon = strchr(optarg, ':');

			if (!colon) {
				usage(stderr);
				exit(EXIT_USAGE);
			}
			*colon = '\0';
			opt.nr_hot = parse_uint(optarg, 100000);
			opt.hot_size = (uint32_t)parse_size(colon + 1);
			break;
		}
		case O_COLD_SIZE:
			opt.cold_size = (uint32_t)parse_size(optarg);
			break;
		case O_COLD_SET: opt.cold_set = parse_size(optarg); break;
		case O_DISK_RATE: opt.disk_rate = parse_size(optarg); break;
		case O_EVICT: opt.evict = optarg; break;
		case O_HEADLINE: opt.headline = optarg; break;
		case O_KEEP: opt.keep = true; break;
		case O_SEED: opt.seed = parse_uint(optarg, ~0UL); break;
		case O_TIMEOUT:
			opt.timeout_s = parse_uint(optarg, 86400);
			break;
		case 'v': opt.verbose = true; break;
		case O_TIME_CALLS: opt.time_calls = true; break;
		case O_CHUNK: opt.chunk = (uint32_t)parse_size(optarg); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(EXIT_USAGE);
		}
	}
	if (optind != argc || !opt.reps || !opt.conns || !opt.open_nr ||
	    !opt.closed_nr || !opt.nr_hot ||
	    opt.hot_size < sizeof(struct sfb_hdr) ||
	    opt.cold_size < sizeof(struct sfb_hdr) ||
	    opt.hot_size > (4U << 20) || opt.cold_size > (4U << 20) ||
	    (strcmp(opt.evict, "drop") && strcmp(opt.evict, "fadvise")) ||
	    (strcmp(opt.backend, "kmod") && strcmp(opt.backend, "epoll") &&
	     strcmp(opt.backend, "auto")) ||
	    (strcmp(opt.headline, "evq") && strcmp(opt.headline, "evq_async") &&
	     strcmp(opt.headline, "evq_chunk")) ||
	    opt.chunk < 4096) {
		usage(stderr);
		exit(EXIT_USAGE);
	}
}

/* splitmix64: small, seedable, and good enough to pick files and gaps. */
static uint64_t rnd_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double rnd_unit(uint64_t *s)	/* (0, 1] */
{
	return ((double)(rnd_next(s) >> 11) + 1.0) / 9007199254740992.0;
}

/* ---- CPU accounting ---- */

struct cpu_sample {
	uint64_t idle_ns;	/* all CPUs, idle + iowait */
	uint64_t wall_ns;	/* on the clock idle_ns is measured with */
	uint64_t proc_ns;	/* this process, all its threads */
	uint64_t self_ns;	/* this (the client's) thread */
};

static long nr_cpus;
static bool idle_from_timer_list;

/*
 * Busy time is taken as CPUs x wall time minus idle and iowait, not from
 * the user/system columns of /proc/stat: those are sampled at the tick,
 * and under TCG late ticks are not charged, so they undercount (on two
 * plain-TCG CPUs, a thread busy for 3 s showed 1.35 s there against
 * 1.92 s of rusage, and 1.93 s as computed here).  Idle and iowait come
 * from clock reads at idle entry and exit (NO_HZ).  /proc/stat rounds
 * them to 10 ms, a tenth of what the open-loop phase costs in all; with
 * one CPU, the nanosecond sums of /proc/timer_list are used instead.
 * They lack the idle period in progress, but with one CPU there is none:
 * the CPU is running this thread.
 */
static bool timer_list_idle(uint64_t *now, uint64_t *idle)
{
	unsigned long long v;
	bool got_now = false;
	unsigned int got = 0;
	char line[256];
	FILE *f = fopen("/proc/timer_list", "r");

	if (!f)
		return false;
	*idle = 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "now at %llu nsecs", &v) == 1) {
			*now = v;
			got_now = true;
		} else if (sscanf(line, " .idle_sleeptime : %llu nsecs",
				  &v) == 1 ||
			   sscanf(line, " .iowait_sleeptime: %llu nsecs",
				  &v) == 1) {
			*idle += v;
			got++;
		}
	}
	fclose(f);
	return got_now && got == 2;
}

static uint64_t procstat_idle_ns(void)
{
	unsigned long long v[5] = { 0 };
	char line[512];
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		return 0;
	if (!fgets(line, sizeof(line), f) ||
	    sscanf(line, "cpu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		   &v[3], &v[4]) < 5)
		memset(v, 0, sizeof(v));
	fclose(f);
	return (uint64_t)((double)(v[3] + v[4]) * 1e9 / clk_tck);
}

static void cpu_take(struct cpu_sample *c)
{
	if (!idle_from_timer_list ||
	    !timer_list_idle(&c->wall_ns, &c->idle_ns)) {
		c->idle_ns = procstat_idle_ns();
		c->wall_ns = sfb_now_ns();
	}
	c->proc_ns = bench_rusage_ns();
	c->self_ns = sfb_thread_cpu_ns();
}

static double busy_ns(const struct cpu_sample *a, const struct cpu_sample *b)
{
	return (double)nr_cpus * (double)(b->wall_ns - a->wall_ns) -
	       (double)(b->idle_ns - a->idle_ns);
}

/* Pick the idle source once: the precise one where it is exact. */
static void cpu_source_pick(void)
{
	uint64_t now, idle;

	idle_from_timer_list = nr_cpus == 1 && timer_list_idle(&now, &idle);
	bench_fig_str("cpu_idle_source", idle_from_timer_list ?
		    "timer_list" : "procstat");
}

/* ---- request streams ---- */

struct rep_plans {
	struct sfb_plan open, closed;
	uint32_t *cold_used;	/* the cold files this repetition reads */
	unsigned int nr_cold_used;
};

static uint32_t *cold_perm;	/* a shuffled order of the cold files */
static unsigned int cold_next;

static uint32_t next_cold(void)
{
	uint32_t f = cold_perm[cold_next];

	cold_next = (cold_next + 1) % fs.nr_cold;
	return f;
}

/*
 * A stream of nr requests: hot files uniformly, cold ones each at most
 * once per repetition (unless the cold set is smaller than the cold
 * requests), so every cold request is a miss.
 */
static int plan_make(struct sfb_plan *p, unsigned int nr, double rate,
		     double cold_frac, uint64_t *rs, struct rep_plans *rp)
{
	double t = 0;
	unsigned int i;

	p->nr = nr;
	p->file = calloc(nr, sizeof(*p->file));
	p->at_ns = rate > 0 ? calloc(nr, sizeof(*p->at_ns)) : NULL;
	if (!p->file || (rate > 0 && !p->at_ns))
		return -ENOMEM;
	for (i = 0; i < nr; i++) {
		if (rnd_unit(rs) <= cold_frac && fs.nr_cold) {
			p->file[i] = next_cold();
			rp->cold_used[rp->nr_cold_used++] = p->file[i];
		} else {
			p->file[i] = (uint32_t)(rnd_next(rs) % fs.nr_hot);
		}
		if (rate > 0) {
			/* Poisson arrivals: exponential gaps. */
			p->at_ns[i] = (uint64_t)(t * 1e9);
			t += -log(rnd_unit(rs)) / rate;
		}
	}
	return 0;
}

static void plan_free(struct sfb_plan *p)
{
	free(p->file);
	free(p->at_ns);
	p->file = NULL;
	p->at_ns = NULL;
}

/* ---- one run of one design ---- */

struct srv_thread {
	struct sfb_server srv;
	const struct sfb_design *d;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool ready, done;
	int ret;
};

static void srv_ready(struct sfb_server *s)
{
	struct srv_thread *t = s->ready_arg;

	pthread_mutex_lock(&t->lock);
	t->ready = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void *srv_main(void *arg)
{
	struct srv_thread *t = arg;
	char name[16];
	int ret;

	/* Named by design (threads of a pool inherit it): for tracing. */
	snprintf(name, sizeof(name), "sfb-%s", t->d->name);
	prctl(PR_SET_NAME, name);
	ret = t->d->serve(&t->srv);

	pthread_mutex_lock(&t->lock);
	t->ret = ret;
	t->done = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

struct run_out {
	double hot_p50_us, hot_p99_us, hot_max_us;
	double cold_p50_us, cold_p99_us;
	double late_p99_us;	/* the generator's own delay in writing */
	double rps, mbs;
	double cpu_s, proc_cpu_s, client_cpu_s;
	double cpu_us_per_req;
	double wall_s;
	unsigned int queued;
	struct sfb_srv_stats st;
};

static unsigned int evq_open_flags(void)
{
	if (!strcmp(opt.backend, "kmod"))
		return EVQ_OPEN_KMOD;
	if (!strcmp(opt.backend, "epoll"))
		return EVQ_OPEN_EPOLL;
	return 0;
}

/* Latencies of every repetition together, for pooled percentiles. */
struct pool_lat {
	uint64_t *hot, *cold;
	unsigned int nhot, ncold;
};

static int run_one(const struct sfb_design *d, const struct sfb_plan *p,
		   struct run_out *o, struct pool_lat *keep)
{
	unsigned int n = opt.conns, i, nh = 0, nc = 0;
	int *cfd = calloc(n, sizeof(int)), *sfd = calloc(n, sizeof(int));
	uint64_t *lat = calloc(p->nr, sizeof(uint64_t));
	uint64_t *hot = calloc(p->nr, sizeof(uint64_t));
	uint64_t *cold = calloc(p->nr, sizeof(uint64_t));
	uint64_t *late = calloc(p->nr, sizeof(uint64_t));
	struct sfb_result res = { .lat_ns = lat, .late_ns = late };
	struct srv_thread t = { .d = d };
	struct cpu_sample c0, c1;
	pthread_t th;
	double busy, client_ns;
	int err, ret = -1;

	if (!cfd || !sfd || !lat || !hot || !cold || !late) {
		fprintf(stderr, "sendfile_bench: no memory\n");
		goto out_free;
	}
	err = sfb_connect(n, cfd, sfd);
	if (err) {
		fprintf(stderr, "sendfile_bench: %u loopback connections: "
			"%s\n", n, strerror(-err));
		goto out_free;
	}
	pthread_mutex_init(&t.lock, NULL);
	pthread_cond_init(&t.cond, NULL);
	t.srv = (struct sfb_server){
		.fs = &fs, .fds = sfd, .nr = n, .threads = d->threads,
		.evq_flags = evq_open_flags(), .ready = srv_ready,
		.time_calls = opt.time_calls,
		.chunk = d->chunked ? opt.chunk : 0,
		.ready_arg = &t,
	};
	err = pthread_create(&th, NULL, srv_main, &t);
	if (err) {
		fprintf(stderr, "sendfile_bench: pthread_create: %s\n",
			strerror(err));
		goto out_close;
	}
	pthread_mutex_lock(&t.lock);
	while (!t.ready && !t.done)
		pthread_cond_wait(&t.cond, &t.lock);
	pthread_mutex_unlock(&t.lock);

	/*
	 * One hot file per connection first, untimed: fresh connections
	 * start with small socket buffers that grow with use, which would
	 * put a start-up transient into the figures; a server keeps its
	 * connections (keep-alive), so the steady state is what counts.
	 */
	if (!t.done) {
		struct sfb_plan warm = { .nr = n, .file = calloc(n, 4) };
		struct sfb_result wres = { .lat_ns = calloc(n, 8) };

		for (i = 0; warm.file && i < n; i++)
			warm.file[i] = i % fs.nr_hot;
		if (!warm.file || !wres.lat_ns)
			snprintf(res.err, sizeof(res.err), "no memory");
		else if (sfb_client_run(&fs, cfd, n, &warm, &wres,
					(uint64_t)opt.timeout_s * 1000000000ULL))
			snprintf(res.err, sizeof(res.err), "warm-up: %.180s",
				 wres.err);
		free(warm.file);
		free(wres.lat_ns);
	}
	cpu_take(&c0);
	if (!t.done && !res.err[0])
		sfb_client_run(&fs, cfd, n, p, &res,
			       (uint64_t)opt.timeout_s * 1000000000ULL);
	/* The server leaves once it has seen every connection close. */
	for (i = 0; i < n; i++) {
		close(cfd[i]);
		cfd[i] = -1;
	}
	pthread_join(th, NULL);
	cpu_take(&c1);

	if (t.srv.err[0] || res.err[0] || t.ret) {
		fprintf(stderr, "sendfile_bench: %s: %s%s%s\n", d->name,
			t.srv.err[0] ? t.srv.err : "",
			t.srv.err[0] && res.err[0] ? "; client: " : "",
			res.err);
		goto out_close;
	}
	if (t.srv.st.requests != p->nr + n) {
		fprintf(stderr, "sendfile_bench: %s: served %llu of %u "
			"requests\n", d->name,
			(unsigned long long)t.srv.st.requests, p->nr + n);
		goto out_close;
	}

	for (i = 0; i < p->nr; i++) {
		if (sfb_is_hot(&fs, p->file[i]))
			hot[nh++] = lat[i];
		else
			cold[nc++] = lat[i];
	}
	if (keep) {
		memcpy(keep->hot + keep->nhot, hot, nh * sizeof(*hot));
		memcpy(keep->cold + keep->ncold, cold, nc * sizeof(*cold));
		keep->nhot += nh;
		keep->ncold += nc;
	}
	o->hot_p50_us = sfb_quantile(hot, nh, 0.50) / 1e3;
	o->hot_p99_us = sfb_quantile(hot, nh, 0.99) / 1e3;
	o->hot_max_us = sfb_quantile(hot, nh, 1.0) / 1e3;
	o->cold_p50_us = sfb_quantile(cold, nc, 0.50) / 1e3;
	o->cold_p99_us = sfb_quantile(cold, nc, 0.99) / 1e3;
	o->late_p99_us = sfb_quantile(late, p->nr, 0.99) / 1e3;
	o->wall_s = (double)res.wall_ns / 1e9;
	o->rps = p->nr / o->wall_s;
	o->mbs = (double)res.bytes / 1e6 / o->wall_s;
	busy = busy_ns(&c0, &c1);
	client_ns = (double)(c1.self_ns - c0.self_ns);
	o->client_cpu_s = client_ns / 1e9;
	/* What the guest spent, but for the load generator's thread. */
	o->cpu_s = (busy - client_ns) / 1e9;
	o->proc_cpu_s = ((double)(c1.proc_ns - c0.proc_ns) - client_ns) / 1e9;
	o->cpu_us_per_req = o->cpu_s * 1e6 / p->nr;
	o->queued = res.queued;
	o->st = t.srv.st;
	ret = 0;
out_close:
	for (i = 0; i < n; i++) {
		if (cfd[i] >= 0)
			close(cfd[i]);
		if (sfd[i] >= 0)
			close(sfd[i]);
	}
	pthread_cond_destroy(&t.cond);
	pthread_mutex_destroy(&t.lock);
out_free:
	free(cfd);
	free(sfd);
	free(lat);
	free(hot);
	free(cold);
	free(late);
	return ret;
}

/* ---- cache state before each run ---- */

static uint32_t *hot_list;

static int evict_and_warm(const struct rep_plans *rp, double *hot_share,
			  uint64_t *cold_res)
{
	uint64_t r, tot;
	unsigned int i;
	int err;

	if (!strcmp(opt.evict, "drop")) {
		err = sfb_drop_caches();
	} else {
		err = 0;
		for (i = 0; i < fs.nr_cold && !err; i++)
			err = -posix_fadvise(fs.files[fs.nr_hot + i].fd, 0, 0,
					     POSIX_FADV_DONTNEED);
	}
	if (err) {
		fprintf(stderr, "sendfile_bench: evicting (%s): %s\n",
			opt.evict, strerror(-err));
		return -1;
	}
	err = sfb_warm(&fs, hot_list, fs.nr_hot);
	if (!err)
		err = sfb_resident(&fs, hot_list, fs.nr_hot, &r, &tot);
	if (!err) {
		*hot_share = tot ? (double)r / tot : 1;
		err = sfb_resident(&fs, rp->cold_used, rp->nr_cold_used,
				   cold_res, &tot);
	}
	if (err) {
		fprintf(stderr, "sendfile_bench: warming: %s\n",
			strerror(-err));
		return -1;
	}
	return 0;
}

/*
 * Wait until the guest is idle before a run: the previous design's
 * teardown (io_uring's exit work, a pool's threads leaving, sockets
 * closing) and the cache drop leave kernel work behind, which on one CPU
 * would land in the next design's latencies.  Idle means under 5% busy
 * over two 50 ms windows in a row; returns how long it took.
 */
static double settle(void)
{
	uint64_t t0 = sfb_now_ns();
	unsigned int quiet = 0;

	while (quiet < 2 && sfb_now_ns() - t0 < 3000000000ULL) {
		struct cpu_sample a, b;

		cpu_take(&a);
		usleep(50000);
		cpu_take(&b);
		if (busy_ns(&a, &b) < 0.05 * (double)(b.wall_ns - a.wall_ns))
			quiet++;
		else
			quiet = 0;
	}
	return (double)(sfb_now_ns() - t0) / 1e9;
}

/* ---- evq availability ---- */

/*
 * Can this design run here?  A 4 KiB send of a resident file over a fresh
 * connection, synchronous or asynchronous.  0, or -1 with why.
 */
static int probe_evq(const struct sfb_design *d, char *why, size_t len)
{
	struct evq q;
	int cfd, sfd, r;

	r = evq_open(&q, 64, evq_open_flags());
	if (r < 0) {
		snprintf(why, len, "evq_open(%s): %s", opt.backend,
			 strerror(-r));
		return -1;
	}
	if (sfb_connect(1, &cfd, &sfd)) {
		snprintf(why, len, "loopback connection failed");
		evq_close(&q);
		return -1;
	}
	{
		struct evq_sendfile sf = {
			.out_fd = sfd, .in_fd = fs.files[0].fd,
			.count = 4096, .user_data = 7,
			.flags = d->async ? EVQ_SF_ASYNC : EVQ_SF_NOTIFY,
		};
		struct evq_cqe e;

		r = evq_sendfile(&q, &sf);
		if (r < 0) {
			snprintf(why, len, "evq_sendfile on the %s backend: "
				 "%s", evq_backend_name(&q), strerror(-r));
		} else if (!d->async && (sf.stop != EVQ_SF_STOP_DONE ||
					 sf.sent != 4096)) {
			snprintf(why, len, "evq_sendfile of 4 KiB resident: "
				 "sent %llu, stop %u", (unsigned long long)
				 sf.sent, sf.stop);
			r = -1;
		} else if (d->async) {
			r = evq_wait(&q, 1, 5000000000LL);
			if (r >= 0)
				r = evq_harvest(&q, &e, 1);
			if (r != 1 || (e.flags & EVQ_CQE_TYPE_MASK) !=
			    EVQ_CQE_SENDFILE || e.res != 4096) {
				snprintf(why, len, "asynchronous 4 KiB send: "
					 "%s", r == 1 ? "wrong completion" :
					 r < 0 ? strerror(-r) :
					 "no completion in 5 s");
				r = -1;
			}
		}
	}
	close(cfd);
	close(sfd);
	evq_close(&q);
	return r < 0 ? -1 : 0;
}

/* ---- figures ---- */

struct series {
	double hot_p50, hot_p99, hot_max, cold_p50, cold_p99;
	double open_rps, open_mbs, open_cpu_s, open_proc_cpu_s;
	double open_cpu_us, open_queued, open_client_cpu_s, open_late_p99;
	double closed_rps, closed_mbs, closed_cpu_us, closed_hot_p99;
	double sends_per_req, waits_per_req, not_resident, pages_ready;
	double entries_per_req;
	double call_us[5], call_max_us[5];	/* --time-calls */
	double start_us[2], start_max_us[2];
};

struct dstate {
	const struct sfb_design *d;
	char skipped[200];
	struct series v[MAX_REPS];
	unsigned int n;
	struct pool_lat lat;	/* open loop, all repetitions */
	double hot_p50, hot_p99, cold_p50, cold_p99;	/* pooled */
};

static struct dstate ds[MAX_DESIGNS];
static unsigned int nr_ds;

static struct dstate *find_ds(const char *name)
{
	unsigned int i;

	for (i = 0; i < nr_ds; i++)
		if (!strcmp(ds[i].d->name, name) && !ds[i].skipped[0])
			return &ds[i];
	return NULL;
}

#define FIELD(f)	offsetof(struct series, f)

static void col(const struct dstate *x, size_t off, double *v)
{
	unsigned int i;

	for (i = 0; i < x->n; i++)
		v[i] = *(const double *)((const char *)&x->v[i] + off);
}

static void fig_series(const struct dstate *x, const char *what, size_t off,
		       int prec)
{
	double v[MAX_REPS];
	char name[96];

	col(x, off, v);
	snprintf(name, sizeof(name), "%s_%s", x->d->name, what);
	sfb_fig_stat(name, v, x->n, prec);
}

/*
 * A latency percentile over the samples of all repetitions together (a
 * p99 of one run rests on its 15 slowest hot requests; pooled, on 45 or
 * more), then the lowest and highest of the per-repetition values.
 */
static void fig_pooled(const struct dstate *x, const char *what,
		       double pooled, size_t off)
{
	double v[MAX_REPS], lo, hi;
	char name[96];

	col(x, off, v);
	sfb_minmax(v, x->n, &lo, &hi);
	snprintf(name, sizeof(name), "%s_%s", x->d->name, what);
	bench_fig_num(name, pooled, 0);
	snprintf(name, sizeof(name), "%s_%s_min", x->d->name, what);
	bench_fig_num(name, lo, 0);
	snprintf(name, sizeof(name), "%s_%s_max", x->d->name, what);
	bench_fig_num(name, hi, 0);
}

static void pool_quantiles(struct dstate *x)
{
	x->hot_p50 = sfb_quantile(x->lat.hot, x->lat.nhot, 0.50) / 1e3;
	x->hot_p99 = sfb_quantile(x->lat.hot, x->lat.nhot, 0.99) / 1e3;
	x->cold_p50 = sfb_quantile(x->lat.cold, x->lat.ncold, 0.50) / 1e3;
	x->cold_p99 = sfb_quantile(x->lat.cold, x->lat.ncold, 0.99) / 1e3;
}

/*
 * Ratio a/b of one figure: the headline value from the pooled (or
 * median) figures, and beside it the lowest and highest of the ratios of
 * single repetitions (the two ran next to each other in the rotation).
 * With b2, the better (lower) of b and b2 is the denominator.
 */
static void fig_ratio(const char *name, const struct dstate *a,
		      const struct dstate *b, const struct dstate *b2,
		      size_t off, bool pooled_p99)
{
	double va[MAX_REPS], vb[MAX_REPS], vb2[MAX_REPS], r[MAX_REPS];
	double head, den, lo, hi;
	char buf[128];
	unsigned int i, n;

	if (!a || !b) {
		bench_fig_num(name, NAN, 3);
		return;
	}
	col(a, off, va);
	col(b, off, vb);
	if (b2)
		col(b2, off, vb2);
	n = a->n < b->n ? a->n : b->n;
	if (b2 && b2->n < n)
		n = b2->n;
	for (i = 0; i < n; i++) {
		den = b2 && vb2[i] < vb[i] ? vb2[i] : vb[i];
		r[i] = va[i] / den;
	}
	if (pooled_p99) {
		den = b2 && b2->hot_p99 < b->hot_p99 ? b2->hot_p99 : b->hot_p99;
		head = a->hot_p99 / den;
	} else {
		den = sfb_median(vb, b->n);
		if (b2 && sfb_median(vb2, b2->n) < den)
			den = sfb_median(vb2, b2->n);
		head = sfb_median(va, a->n) / den;
	}
	sfb_minmax(r, n, &lo, &hi);
	bench_fig_num(name, head, 3);
	snprintf(buf, sizeof(buf), "%s_min", name);
	bench_fig_num(buf, lo, 3);
	snprintf(buf, sizeof(buf), "%s_max", name);
	bench_fig_num(buf, hi, 3);
}

/*
 * The latency distributions, for the JSON and its plot: each design's
 * open-loop latencies at fixed percentiles, from the samples of all
 * repetitions pooled (as the _p50_us and _p99_us figures are), hot and
 * cold files apart.  "latency_percentiles" holds the numbers; "plots"
 * draws them as CDFs (bench_plot).
 */
static const double lat_pct[] = {
	1, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95,
	97, 98, 99, 99.5, 99.8, 99.9,
};
#define NR_LAT_PCT	(sizeof(lat_pct) / sizeof(lat_pct[0]))

static void lat_us(struct dstate *x, bool hot, double *v)
{
	uint64_t *s = hot ? x->lat.hot : x->lat.cold;
	unsigned int n = hot ? x->lat.nhot : x->lat.ncold, i;

	for (i = 0; i < NR_LAT_PCT; i++)
		v[i] = sfb_quantile(s, n, lat_pct[i] / 100) / 1e3;
}

/* A JSON array of numbers; NaN (no samples) as null. */
static void json_nums(FILE *f, const double *v, unsigned int n, int prec)
{
	unsigned int i;

	fputc('[', f);
	for (i = 0; i < n; i++) {
		if (i)
			fputs(", ", f);
		if (isnan(v[i]) || isinf(v[i]))
			fputs("null", f);
		else
			fprintf(f, "%.*f", prec, v[i]);
	}
	fputc(']', f);
}

static void report_latency(void)
{
	static const char *const kind[2] = { "hot", "cold" };
	double v[NR_LAT_PCT];
	char *buf = NULL;
	size_t len = 0;
	unsigned int i, k;
	bool first;
	FILE *f;

	f = open_memstream(&buf, &len);
	if (!f)
		return;
	fputs("{\"source\": \"open loop, samples of all repetitions "
	      "pooled\", \"percent\": ", f);
	json_nums(f, lat_pct, NR_LAT_PCT, 1);
	for (k = 0; k < 2; k++) {
		fprintf(f, ", \"%s_samples\": {", kind[k]);
		for (i = 0, first = true; i < nr_ds; i++) {
			if (ds[i].skipped[0])
				continue;
			fprintf(f, "%s\"%s\": %u", first ? "" : ", ",
				ds[i].d->name, k ? ds[i].lat.ncold :
				ds[i].lat.nhot);
			first = false;
		}
		fprintf(f, "}, \"%s_us\": {", kind[k]);
		for (i = 0, first = true; i < nr_ds; i++) {
			if (ds[i].skipped[0])
				continue;
			lat_us(&ds[i], !k, v);
			fprintf(f, "%s\"%s\": ", first ? "" : ", ",
				ds[i].d->name);
			json_nums(f, v, NR_LAT_PCT, 1);
			first = false;
		}
		fputc('}', f);
	}
	fputc('}', f);
	if (fclose(f))
		return;
	bench_fig_raw("latency_percentiles", buf);
	free(buf);

	buf = NULL;
	f = open_memstream(&buf, &len);
	if (!f)
		return;
	fprintf(f, "[{\"file\": \"sendfile-hot-latency.png\", \"title\": "
		"\"sendfile bench: open-loop latency by design (%.0f%% cold "
		"requests, all repetitions pooled)\", \"panels\": [",
		opt.cold_frac * 100);
	for (k = 0; k < 2; k++) {
		fprintf(f, "%s{\"title\": \"%s-file requests\", "
			"\"xlabel\": \"latency (µs)\", \"ylabel\": "
			"\"requests at or below it (%%)\", \"logx\": true, "
			"\"key\": \"bottom right\", "
			"\"series\": [", k ? ", " : "", kind[k]);
		for (i = 0, first = true; i < nr_ds; i++) {
			if (ds[i].skipped[0])
				continue;
			lat_us(&ds[i], !k, v);
			fprintf(f, "%s{\"title\": \"%s\", \"x\": ",
				first ? "" : ", ", ds[i].d->name);
			json_nums(f, v, NR_LAT_PCT, 1);
			fputs(", \"y\": ", f);
			json_nums(f, lat_pct, NR_LAT_PCT, 1);
			fputc('}', f);
			first = false;
		}
		fputs("]}", f);
	}
	fputs("]}]", f);
	if (fclose(f))
		return;
	bench_fig_raw("plots", buf);
	free(buf);
}

static void report(void)
{
	const struct dstate *ev = find_ds(opt.headline);
	const struct dstate *eva = find_ds("evq_async");
	const struct dstate *evs = find_ds("evq");
	const struct dstate *evc = find_ds("evq_chunk");
	const struct dstate *bl = find_ds("blocking");
	const struct dstate *p16 = find_ds("pool16");
	const struct dstate *p64 = find_ds("pool64");
	const struct dstate *ur = find_ds("uring");
	const struct dstate *pool_a = p16 ? p16 : p64;
	const struct dstate *pool_b = p16 ? p64 : NULL;
	unsigned int i;

	for (i = 0; i < nr_ds; i++) {
		struct dstate *x = &ds[i];
		char name[96];

		snprintf(name, sizeof(name), "%s_design", x->d->name);
		bench_fig_str(name, x->d->what);
		if (x->skipped[0]) {
			snprintf(name, sizeof(name), "%s_status", x->d->name);
			bench_fig_str(name, x->skipped);
			continue;
		}
		pool_quantiles(x);
		fig_pooled(x, "hot_p50_us", x->hot_p50, FIELD(hot_p50));
		fig_pooled(x, "hot_p99_us", x->hot_p99, FIELD(hot_p99));
		fig_series(x, "hot_max_us", FIELD(hot_max), 0);
		fig_pooled(x, "cold_p50_us", x->cold_p50, FIELD(cold_p50));
		fig_pooled(x, "cold_p99_us", x->cold_p99, FIELD(cold_p99));
		fig_series(x, "open_rps", FIELD(open_rps), 1);
		fig_series(x, "open_queued", FIELD(open_queued), 0);
		fig_series(x, "open_client_late_p99_us", FIELD(open_late_p99),
			   0);
		fig_series(x, "open_cpu_s", FIELD(open_cpu_s), 3);
		fig_series(x, "open_proc_cpu_s", FIELD(open_proc_cpu_s), 3);
		fig_series(x, "open_client_cpu_s", FIELD(open_client_cpu_s), 3);
		fig_series(x, "open_cpu_us_per_req", FIELD(open_cpu_us), 0);
		fig_series(x, "throughput_rps", FIELD(closed_rps), 1);
		fig_series(x, "throughput_mbs", FIELD(closed_mbs), 2);
		fig_series(x, "closed_cpu_us_per_req", FIELD(closed_cpu_us),
			   0);
		fig_series(x, "closed_hot_p99_us", FIELD(closed_hot_p99), 0);
		fig_series(x, "sends_per_req", FIELD(sends_per_req), 2);
		fig_series(x, "waits_per_req", FIELD(waits_per_req), 2);
		if (x->d->evq)
			fig_series(x, "entries_per_req",
				   FIELD(entries_per_req), 2);
		if (x->d->evq && !x->d->async) {
			fig_series(x, "not_resident_stops",
				   FIELD(not_resident), 0);
			fig_series(x, "pages_ready_entries",
				   FIELD(pages_ready), 0);
		}
		if (x->d->evq && !x->d->async && opt.time_calls) {
			static const char *const stop[5] = {
				NULL, "done", "sock_full", "not_resident",
				"error" };
			unsigned int k;

			for (k = 1; k < 5; k++) {
				snprintf(name, sizeof(name), "call_%s_us",
					 stop[k]);
				fig_series(x, name, FIELD(call_us[k]), 1);
				snprintf(name, sizeof(name), "call_%s_max_us",
					 stop[k]);
				fig_series(x, name, FIELD(call_max_us[k]), 1);
			}
		}
		if (x->d->evq && x->d->async && opt.time_calls) {
			fig_series(x, "start_hot_us", FIELD(start_us[0]), 1);
			fig_series(x, "start_hot_max_us", FIELD(start_max_us[0]),
				   1);
			fig_series(x, "start_cold_us", FIELD(start_us[1]), 1);
			fig_series(x, "start_cold_max_us",
				   FIELD(start_max_us[1]), 1);
		}
	}

	/* The headline: hot-file p99 under the same open-loop stream. */
	bench_fig_str("hot_p99_evq_design", ev ? ev->d->name : "none");
	fig_ratio("hot_p99_evq_vs_blocking_ratio", ev, bl, NULL,
		  FIELD(hot_p99), true);
	fig_ratio("hot_p99_evq_vs_threadpool_ratio", ev, pool_a, pool_b,
		  FIELD(hot_p99), true);
	if (pool_a)
		bench_fig_str("threadpool_best", !pool_b ||
			    pool_a->hot_p99 <= pool_b->hot_p99 ?
			    pool_a->d->name : pool_b->d->name);
	bench_fig_num("hot_p99_evq_vs_blocking_target", 0.1, 1);
	bench_fig_num("hot_p99_evq_vs_threadpool_target", 1.0, 1);
	fig_ratio("hot_p99_evq_vs_pool16_ratio", ev, p16, NULL,
		  FIELD(hot_p99), true);
	fig_ratio("hot_p99_evq_vs_pool64_ratio", ev, p64, NULL,
		  FIELD(hot_p99), true);
	fig_ratio("hot_p99_evq_vs_uring_ratio", ev, ur, NULL,
		  FIELD(hot_p99), true);
	/* The other evq form against the same peers. */
	if (ev != eva && eva) {
		fig_ratio("hot_p99_evq_async_vs_blocking_ratio", eva, bl, NULL,
			  FIELD(hot_p99), true);
		fig_ratio("hot_p99_evq_async_vs_threadpool_ratio", eva, pool_a,
			  pool_b, FIELD(hot_p99), true);
	}
	if (ev != evs && evs) {
		fig_ratio("hot_p99_evq_sync_vs_blocking_ratio", evs, bl, NULL,
			  FIELD(hot_p99), true);
		fig_ratio("hot_p99_evq_sync_vs_threadpool_ratio", evs, pool_a,
			  pool_b, FIELD(hot_p99), true);
	}
	if (ev != evc && evc) {
		fig_ratio("hot_p99_evq_chunk_vs_blocking_ratio", evc, bl, NULL,
			  FIELD(hot_p99), true);
		fig_ratio("hot_p99_evq_chunk_vs_threadpool_ratio", evc, pool_a,
			  pool_b, FIELD(hot_p99), true);
	}
	fig_ratio("throughput_evq_vs_blocking_ratio", ev, bl, NULL,
		  FIELD(closed_rps), false);
	fig_ratio("throughput_evq_vs_pool16_ratio", ev, p16, NULL,
		  FIELD(closed_rps), false);
	fig_ratio("throughput_evq_vs_pool64_ratio", ev, p64, NULL,
		  FIELD(closed_rps), false);
	fig_ratio("throughput_evq_vs_uring_ratio", ev, ur, NULL,
		  FIELD(closed_rps), false);
	fig_ratio("cpu_per_req_evq_vs_blocking_ratio", ev, bl, NULL,
		  FIELD(open_cpu_us), false);
	fig_ratio("cpu_per_req_evq_vs_pool16_ratio", ev, p16, NULL,
		  FIELD(open_cpu_us), false);
	fig_ratio("cpu_per_req_evq_vs_pool64_ratio", ev, p64, NULL,
		  FIELD(open_cpu_us), false);
	fig_ratio("cpu_per_req_evq_vs_uring_ratio", ev, ur, NULL,
		  FIELD(open_cpu_us), false);
	report_latency();
}

/* ---- main ---- */

static void remove_fileset(void)
{
	if (!opt.keep && fs.files)
		sfb_fileset_remove(&fs);
}

static void pick_designs(void)
{
	char *list = strdup(opt.designs), *tok, *save = NULL;
	unsigned int i;

	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < NR_ALL; i++)
			if (!strcmp(all_designs[i].name, tok))
				break;
		if (i == NR_ALL || nr_ds == MAX_DESIGNS) {
			fprintf(stderr, "sendfile_bench: unknown design '%s' "
				"(or too many)\n", tok);
			exit(EXIT_USAGE);
		}
		ds[nr_ds++].d = &all_designs[i];
	}
	free(list);
	if (!nr_ds) {
		usage(stderr);
		exit(EXIT_USAGE);
	}
}

/*
 * What one blocking thread sustains on this mix (closed loop, cold files
 * evicted first).  The open-loop rate is a share of it (-l), so the
 * comparison runs at a load the peer can carry, where its latency is
 * finite and its head-of-line waits show, and the rate does not depend
 * on any evq figure.
 */
static double calibrate(void)
{
	const struct sfb_design *bl = NULL;
	struct rep_plans rp = { 0 };
	struct run_out o;
	uint64_t rs = opt.seed ^ 0xca11b8a7eULL;
	double hot_share;
	uint64_t cold_res;
	unsigned int i;

	for (i = 0; i < NR_ALL; i++)
		if (!strcmp(all_designs[i].name, "blocking"))
			bl = &all_designs[i];
	rp.cold_used = calloc(opt.calib_nr, sizeof(uint32_t));
	if (!rp.cold_used ||
	    plan_make(&rp.closed, opt.calib_nr, 0, opt.cold_frac, &rs, &rp) ||
	    evict_and_warm(&rp, &hot_share, &cold_res) ||
	    run_one(bl, &rp.closed, &o, NULL))
		o.rps = 0;
	plan_free(&rp.closed);
	free(rp.cold_used);
	return o.rps;
}

static void store(struct series *v, const struct run_out *op,
		  const struct run_out *cl)
{
	unsigned int i;

	v->hot_p50 = op->hot_p50_us;
	v->hot_p99 = op->hot_p99_us;
	v->hot_max = op->hot_max_us;
	v->cold_p50 = op->cold_p50_us;
	v->cold_p99 = op->cold_p99_us;
	v->open_rps = op->rps;
	v->open_mbs = op->mbs;
	v->open_cpu_s = op->cpu_s;
	v->open_proc_cpu_s = op->proc_cpu_s;
	v->open_cpu_us = op->cpu_us_per_req;
	v->open_client_cpu_s = op->client_cpu_s;
	v->open_late_p99 = op->late_p99_us;
	v->open_queued = op->queued;
	v->closed_rps = cl->rps;
	v->closed_mbs = cl->mbs;
	v->closed_cpu_us = cl->cpu_us_per_req;
	v->closed_hot_p99 = cl->hot_p99_us;
	/* Server counters include the warm-up requests (one a connection). */
	v->sends_per_req = (double)op->st.sends / op->st.requests;
	v->waits_per_req = (double)op->st.waits / op->st.requests;
	v->not_resident = (double)op->st.not_resident;
	v->pages_ready = (double)op->st.pages_ready;
	v->entries_per_req = (double)op->st.harvested / op->st.requests;
	for (i = 1; i < 5; i++) {
		v->call_us[i] = op->st.call_n[i] ? (double)op->st.call_ns[i] /
				op->st.call_n[i] / 1e3 : NAN;
		v->call_max_us[i] = (double)op->st.call_max_ns[i] / 1e3;
	}
	for (i = 0; i < 2; i++) {
		v->start_us[i] = op->st.start_n[i] ? (double)op->st.start_ns[i] /
				 op->st.start_n[i] / 1e3 : NAN;
		v->start_max_us[i] = (double)op->st.start_max_ns[i] / 1e3;
	}
}

int main(int argc, char **argv)
{
	unsigned int i, rep, nr_active = 0, skipped = 0;
	uint64_t mem, cold_bytes, rs, t_start = sfb_now_ns(), t;
	double rate, cap = 0, disk_cap = 0, hot_share_min = 1;
	double st, settle_max = 0;
	uint64_t cold_res_max = 0;
	struct dstate *active[MAX_DESIGNS];
	const char *scratch = getenv("EVQ_SCRATCH");
	char dirbuf[256], why[180];
	struct utsname u;
	int err;

	parse_opts(argc, argv);
	pick_designs();
	clk_tck = sysconf(_SC_CLK_TCK);
	nr_cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (!opt.dir) {
		if (!scratch || !*scratch) {
			fprintf(stderr, "sendfile_bench: no scratch disk: run "
				"in the VM with tools/vm/run --disk SIZE, or "
				"give -d DIR on a disk\n");
			return EXIT_USAGE;
		}
		snprintf(dirbuf, sizeof(dirbuf), "%s/sfb", scratch);
		opt.dir = dirbuf;
	}
	snprintf(fs.dir, sizeof(fs.dir), "%s", opt.dir);
	mem = sfb_mem_total();
	cold_bytes = opt.cold_set ? opt.cold_set :
		     (uint64_t)(opt.cold_set_mem * (double)mem);
	fs.nr_hot = opt.nr_hot;
	fs.hot_size = opt.hot_size;
	fs.cold_size = opt.cold_size;
	fs.nr_cold = (unsigned int)((cold_bytes + opt.cold_size - 1) /
				    opt.cold_size);
	if (!fs.nr_cold)
		fs.nr_cold = 1;
	err = bench_raise_nofile(fs.nr_hot + fs.nr_cold + 8 * opt.conns + 256);
	if (err) {
		fprintf(stderr, "sendfile_bench: RLIMIT_NOFILE: %s\n",
			strerror(-err));
		return 1;
	}

	uname(&u);
	bench_fig_str("kernel", u.release);
	cpu_source_pick();
	bench_fig_num("nr_cpus", (double)sysconf(_SC_NPROCESSORS_ONLN), 0);
	bench_fig_num("mem_total_mib", (double)mem / (1 << 20), 0);
	bench_fig_str("evq_backend", opt.backend);
	bench_fig_str("evict", opt.evict);
	bench_fig_num("hot_files", fs.nr_hot, 0);
	bench_fig_num("hot_file_kib", fs.hot_size >> 10, 0);
	bench_fig_num("cold_files", fs.nr_cold, 0);
	bench_fig_num("cold_file_kib", fs.cold_size >> 10, 0);
	bench_fig_num("cold_set_mib", (double)fs.nr_cold * fs.cold_size /
		    (1 << 20), 0);
	bench_fig_num("cold_share", opt.cold_frac, 3);
	bench_fig_num("connections", opt.conns, 0);
	bench_fig_num("open_loop_requests", opt.open_nr, 0);
	bench_fig_num("closed_loop_requests", opt.closed_nr, 0);
	bench_fig_num("reps", opt.reps, 0);
	if (opt.disk_rate)
		bench_fig_num("disk_rate_mbs", (double)opt.disk_rate / 1e6, 1);
	/* Set by sfb-slowdisk: every read I/O of the disk waits this long. */
	if (getenv("EVQ_SFB_READ_DELAY_MS"))
		bench_fig_num("disk_read_delay_ms",
			    atof(getenv("EVQ_SFB_READ_DELAY_MS")), 0);
	else
		bench_fig_str("disk_read_delay_ms", "none");

	t = sfb_now_ns();
	/* Whatever way the run ends, a file set we made goes (not -k). */
	atexit(remove_fileset);
	err = sfb_fileset_create(&fs, opt.keep);
	if (err) {
		fprintf(stderr, "sendfile_bench: file set in %s: %s\n",
			fs.dir, strerror(-err));
		return 1;
	}
	bench_fig_num("fileset_create_s", (double)(sfb_now_ns() - t) / 1e9, 1);

	hot_list = calloc(fs.nr_hot, sizeof(*hot_list));
	cold_perm = calloc(fs.nr_cold, sizeof(*cold_perm));
	if (!hot_list || !cold_perm)
		return 1;
	for (i = 0; i < fs.nr_hot; i++)
		hot_list[i] = i;
	rs = opt.seed;
	for (i = 0; i < fs.nr_cold; i++)
		cold_perm[i] = fs.nr_hot + i;
	for (i = fs.nr_cold; i > 1; i--) {	/* Fisher-Yates */
		unsigned int j = (unsigned int)(rnd_next(&rs) % i);
		uint32_t x = cold_perm[i - 1];

		cold_perm[i - 1] = cold_perm[j];
		cold_perm[j] = x;
	}
	if (sfb_warm(&fs, hot_list, fs.nr_hot))
		return 1;

	for (i = 0; i < nr_ds; i++) {
		if (ds[i].d->evq && probe_evq(ds[i].d, why, sizeof(why))) {
			snprintf(ds[i].skipped, sizeof(ds[i].skipped),
				 "skipped: %s", why);
			fprintf(stderr, "sendfile_bench: %s %s\n",
				ds[i].d->name, ds[i].skipped);
			skipped++;
			continue;
		}
		ds[i].lat.hot = calloc((size_t)opt.reps * opt.open_nr,
				       sizeof(uint64_t));
		ds[i].lat.cold = calloc((size_t)opt.reps * opt.open_nr,
					sizeof(uint64_t));
		if (!ds[i].lat.hot || !ds[i].lat.cold)
			return 1;
		active[nr_active++] = &ds[i];
	}

	rate = opt.rate;
	if (!rate) {
		cap = calibrate();
		if (!cap) {
			fprintf(stderr, "sendfile_bench: calibration failed\n");
			return 1;
		}
		rate = opt.load * cap;
		bench_fig_num("blocking_capacity_rps", cap, 1);
		bench_fig_num("load", opt.load, 2);
	}
	if (opt.disk_rate && opt.cold_frac > 0) {
		/* Keep the disk below saturation, or every design queues. */
		disk_cap = opt.disk_util * (double)opt.disk_rate /
			   (opt.cold_frac * fs.cold_size);
		if (disk_cap < rate)
			rate = disk_cap;
	}
	bench_fig_num("offered_rps", rate, 1);
	bench_fig_str("offered_rps_bound", opt.rate ? "fixed (-R)" :
		    disk_cap && rate == disk_cap ? "disk" : "cpu");

	for (rep = 0; rep < opt.reps; rep++) {
		struct rep_plans rp = { 0 };
		uint64_t prs = opt.seed * 1000003ULL + rep;

		rp.cold_used = calloc(opt.open_nr + opt.closed_nr,
				      sizeof(uint32_t));
		if (!rp.cold_used ||
		    plan_make(&rp.open, opt.open_nr, rate, opt.cold_frac, &prs,
			      &rp) ||
		    plan_make(&rp.closed, opt.closed_nr, 0, opt.cold_frac,
			      &prs, &rp))
			return 1;
		/* The order rotates: each design runs first once in a while. */
		for (i = 0; i < nr_active; i++) {
			struct dstate *x = active[(rep + i) % nr_active];
			struct run_out op, cl;
			double hot_share;
			uint64_t cold_res;

			if (evict_and_warm(&rp, &hot_share, &cold_res))
				return 1;
			if (hot_share < hot_share_min)
				hot_share_min = hot_share;
			if (cold_res > cold_res_max)
				cold_res_max = cold_res;
			st = settle();
			if (st > settle_max)
				settle_max = st;
			if (run_one(x->d, &rp.open, &op, &x->lat) ||
			    run_one(x->d, &rp.closed, &cl, NULL))
				return 1;
			store(&x->v[x->n++], &op, &cl);
			if (opt.verbose)
				fprintf(stderr, "sendfile_bench: rep %u/%u %-9s hot "
				"p50 %.0f p99 %.0f us, cold p50 %.0f us, "
				"cpu %.2f s; closed %.0f req/s\n", rep + 1,
				opt.reps, x->d->name, op.hot_p50_us,
				op.hot_p99_us, op.cold_p50_us, op.cpu_s,
				cl.rps);
		}
		plan_free(&rp.open);
		plan_free(&rp.closed);
		free(rp.cold_used);
	}

	bench_fig_num("hot_resident_share_at_start_min", hot_share_min, 3);
	bench_fig_num("cold_resident_pages_at_start_max", (double)cold_res_max,
		    0);
	bench_fig_num("settle_s_max", settle_max, 2);
	report();
	bench_fig_num("bench_wall_s", (double)(sfb_now_ns() - t_start) / 1e9, 1);
	if (bench_fig_json(opt.out, "sendfile_bench"))
		return 1;
	return skipped ? EXIT_SKIP : 0;
}
