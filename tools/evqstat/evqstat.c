// SPDX-License-Identifier: GPL-2.0
/*
 * evqstat: show the evq module's counters, global and per queue, read
 * over its generic netlink family "evq".
 *
 * Once by default; with -i, every interval, showing after the first
 * sample what changed in each interval, queue by queue (matched by id).
 * Documentation/probes.rst, "evqstat", is the manual.
 *
 * Exit status: 0; 1 when the module is not loaded or netlink fails; 2 on
 * a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "evqstat.h"

#define EVQSTAT_NAME	"evqstat"
#define EVQSTAT_SYNOPSIS \
	EVQSTAT_NAME " [-j] [-p PID[,PID...]]... [-i SECONDS [-c COUNT]]"

struct evqstat_opts {
	uint32_t *pids;
	size_t nr_pids;
	bool json;
	bool interval_set;
	double interval;
	unsigned long count;	/* samples; 0: no end */
};

static void evqstat_usage(FILE *f)
{
	fputs(
"usage: " EVQSTAT_SYNOPSIS "\n"
"\n"
"Show the evq module's counters: the totals of every queue since the\n"
"module loaded (row \"all\"), then one row per open queue.  You see the\n"
"queues opened under your effective uid; with CAP_NET_ADMIN, all of them.\n"
"\n"
"  -p, --pid PID[,PID...]  only the queues these processes opened; may be\n"
"                          given more than once\n"
"  -j, --json              one JSON object per sample, on one line\n"
"  -i, --interval SECONDS  sample every SECONDS (decimals allowed); from the\n"
"                          second sample on, show the increase over each\n"
"                          interval, queue by queue\n"
"  -c, --count COUNT       stop after COUNT samples (without -i: every 1 s)\n"
"  -h, --help              this text\n"
"\n"
"examples:\n"
"  evqstat                     the counters now, every queue you may see\n"
"  evqstat -p 1234 -i 1        process 1234's queues, changes every second\n"
"  evqstat -j -i 5 -c 12       a minute of JSON lines, one every 5 s\n"
"  sudo evqstat -j | jq '.queues[] | select(.overflows > 0)'\n"
"\n"
"exit status: 0 done; 1 module not loaded or netlink error; 2 bad usage\n",
	      f);
}

static void __attribute__((format(printf, 1, 2), noreturn))
evqstat_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(EVQSTAT_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	/* The synopsis and where to read more, not a screenful. */
	fputs("\nusage: " EVQSTAT_SYNOPSIS "\n"
	      "Try '" EVQSTAT_NAME " -h' for the options and examples.\n",
	      stderr);
	exit(2);
}

static void __attribute__((format(printf, 1, 2), noreturn))
evqstat_fatal(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(EVQSTAT_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void evqstat_no_module(void)
{
	evqstat_fatal("the evq module is not loaded (no generic netlink family \"%s\")",
		      EVQ_GENL_NAME);
}

/* "123" or "12,34,56": every element a whole positive pid. */
static void evqstat_add_pids(struct evqstat_opts *o, const char *arg)
{
	const char *p = arg;

	for (;;) {
		char *end;
		long v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno || v <= 0 || v > INT_MAX ||
		    (*end && *end != ','))
			evqstat_usage_error("bad process id list '%s'", arg);
		o->pids = realloc(o->pids, (o->nr_pids + 1) * sizeof(*o->pids));
		if (!o->pids)
			evqstat_fatal("out of memory");
		o->pids[o->nr_pids++] = (uint32_t)v;
		if (!*end)
			return;
		p = end + 1;
	}
}

static void evqstat_parse_opts(struct evqstat_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid",	required_argument,	NULL, 'p' },
		{ "json",	no_argument,		NULL, 'j' },
		{ "interval",	required_argument,	NULL, 'i' },
		{ "count",	required_argument,	NULL, 'c' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	opterr = 0;	/* our own messages, with the usage */
	while ((c = getopt_long(argc, argv, ":p:ji:c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			evqstat_add_pids(o, optarg);
			break;
		case 'j':
			o->json = true;
			break;
		case 'i':
			errno = 0;
			o->interval = strtod(optarg, &end);
			/* Below 10 ms the samples would mostly measure us. */
			if (end == optarg || *end || errno ||
			    !isfinite(o->interval) || o->interval < 0.01 ||
			    o->interval > 1e6)
				evqstat_usage_error("bad interval '%s' (seconds, 0.01 to 1000000)",
						    optarg);
			o->interval_set = true;
			break;
		case 'c': {
			unsigned long long v;

			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (end == optarg || *end || errno || !v ||
			    v > ULONG_MAX || optarg[0] == '-')
				evqstat_usage_error("bad count '%s' (a whole number above 0)",
						    optarg);
			o->count = v;
			break;
		}
		case 'h':
			evqstat_usage(stdout);
			exit(0);
		case ':':
			evqstat_usage_error("option '%s' needs a value",
					    argv[optind - 1]);
		default:
			evqstat_usage_error("unknown option '%s'",
					    argv[optind - 1]);
		}
	}
	if (optind < argc)
		evqstat_usage_error("unexpected argument '%s'", argv[optind]);
	if (o->count && !o->interval_set) {
		o->interval = 1;
		o->interval_set = true;
	}
	if (!o->interval_set)
		o->count = 1;
}

/* Keep the queues opened by one of the pids asked for. */
static void evqstat_filter(struct evqstat_sample *s,
			   const struct evqstat_opts *o)
{
	size_t n = 0;

	if (!o->nr_pids)
		return;
	for (size_t i = 0; i < s->nr; i++) {
		const struct evqstat_vals *q = &s->queues[i];

		if (!evqstat_has(q, EVQ_A_OWNER_PID))
			continue;
		for (size_t k = 0; k < o->nr_pids; k++)
			if (q->v[EVQ_A_OWNER_PID] == o->pids[k]) {
				s->queues[n++] = *q;
				break;
			}
	}
	s->nr = n;
}

/*
 * Is @cur the queue @old was?  An id may be reused once its queue is gone
 * (the module hands them out cyclically, so only after a wrap), so the id
 * alone cannot say: another owner uid, a ring resized (it is set up once)
 * or a counter going back means a new queue took the id.  The owner pid
 * turns to 0 when the opener exits and the queue lives on, passed to
 * another process: that is still the same queue.
 */
static bool evqstat_same_queue(const struct evqstat_vals *old,
			       const struct evqstat_vals *cur)
{
	for (size_t i = 0; i < evqstat_nr_fields; i++) {
		const struct evqstat_field *f = &evqstat_fields[i];
		unsigned int a = f->attr;

		if (!evqstat_has(old, a) || !evqstat_has(cur, a))
			continue;
		if (f->kind == EVQSTAT_KEY && old->v[a] != cur->v[a] &&
		    !(a == EVQ_A_OWNER_PID && !cur->v[a]))
			return false;
		if (f->kind == EVQSTAT_COUNT && cur->v[a] < old->v[a])
			return false;
		if (a == EVQ_A_RING_ENTRIES && old->v[a] &&
		    old->v[a] != cur->v[a])
			return false;
	}
	return true;
}

/* Counters go back only if the module was reloaded in between. */
static bool evqstat_went_back(const struct evqstat_vals *old,
			      const struct evqstat_vals *cur)
{
	for (size_t i = 0; i < evqstat_nr_fields; i++) {
		const struct evqstat_field *f = &evqstat_fields[i];

		if (f->kind == EVQSTAT_COUNT && evqstat_has(old, f->attr) &&
		    evqstat_has(cur, f->attr) && cur->v[f->attr] < old->v[f->attr])
			return true;
	}
	return false;
}

/* @cur with its counters turned into their increase since @old. */
static void evqstat_diff(struct evqstat_vals *out,
			 const struct evqstat_vals *old,
			 const struct evqstat_vals *cur)
{
	*out = *cur;
	for (size_t i = 0; i < evqstat_nr_fields; i++) {
		const struct evqstat_field *f = &evqstat_fields[i];

		if (f->kind == EVQSTAT_COUNT && evqstat_has(old, f->attr))
			out->v[f->attr] -= old->v[f->attr];
	}
}

static void evqstat_add_closed(struct evqstat_sample *d, uint64_t id)
{
	d->closed[d->nr_closed++] = (uint32_t)id;
}

/*
 * What changed from @prev to @cur, into @d: counters as increases, levels
 * as they are now; queues matched by id, a queue new in @cur marked fresh
 * (its counters are since it opened, all within the interval), and the
 * ids of @prev's queues that are gone listed in @d->closed.
 */
static void evqstat_delta(struct evqstat_sample *d,
			  const struct evqstat_sample *prev,
			  const struct evqstat_sample *cur)
{
	size_t i = 0, j = 0;

	d->time = cur->time;
	d->mono = cur->mono;
	d->interval = (cur->mono.tv_sec - prev->mono.tv_sec) +
		      (cur->mono.tv_nsec - prev->mono.tv_nsec) / 1e9;
	if (evqstat_went_back(&prev->global, &cur->global))
		d->global = cur->global;	/* reloaded: all since then */
	else
		evqstat_diff(&d->global, &prev->global, &cur->global);

	d->nr = 0;
	d->nr_closed = 0;
	if (d->cap < cur->nr) {
		free(d->queues);
		d->queues = malloc(cur->nr * sizeof(*d->queues));
		if (!d->queues)
			evqstat_fatal("out of memory");
		d->cap = cur->nr;
	}
	free(d->closed);
	d->closed = malloc((prev->nr + 1) * sizeof(*d->closed));
	if (!d->closed)
		evqstat_fatal("out of memory");

	/* Both are sorted by id: one merge pass. */
	while (i < prev->nr || j < cur->nr) {
		const struct evqstat_vals *o = i < prev->nr ? &prev->queues[i] : NULL;
		const struct evqstat_vals *c = j < cur->nr ? &cur->queues[j] : NULL;
		struct evqstat_vals *out;

		if (!c || (o && o->v[EVQ_A_QUEUE_ID] < c->v[EVQ_A_QUEUE_ID])) {
			evqstat_add_closed(d, o->v[EVQ_A_QUEUE_ID]);
			i++;
			continue;
		}
		out = &d->queues[d->nr];
		if (!o || c->v[EVQ_A_QUEUE_ID] < o->v[EVQ_A_QUEUE_ID]) {
			*out = *c;
			out->fresh = true;
		} else if (evqstat_same_queue(o, c)) {
			evqstat_diff(out, o, c);
			out->fresh = false;
			i++;
		} else {
			evqstat_add_closed(d, o->v[EVQ_A_QUEUE_ID]);
			*out = *c;
			out->fresh = true;
			i++;
		}
		d->nr++;
		j++;
	}
}

static void evqstat_sleep_until(const struct timespec *t)
{
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) == EINTR)
		;
}

static void evqstat_ts_add(struct timespec *t, double sec)
{
	long long ns = t->tv_nsec + llround((sec - floor(sec)) * 1e9);

	t->tv_sec += (time_t)floor(sec) + ns / 1000000000;
	t->tv_nsec = ns % 1000000000;
}

static void evqstat_print(const struct evqstat_opts *o,
			  const struct evqstat_sample *s,
			  struct evqstat_table *t)
{
	if (o->json)
		evqstat_print_json(stdout, s);
	else
		evqstat_print_table(stdout, s, t);
	/* Each sample whole and at once, also into a pipe. */
	if (fflush(stdout) || ferror(stdout))
		evqstat_fatal("cannot write the output: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	struct evqstat_sample a = { 0 }, b = { 0 }, d = { 0 };
	struct evqstat_sample *prev = &a, *cur = &b, *tmp;
	struct evqstat_opts o = { 0 };
	struct evqstat_table t = { { 0 } };
	struct evqstat_nl *nl;
	struct timespec next;
	char err[256];
	int ret;

	evqstat_parse_opts(&o, argc, argv);

	ret = evqstat_nl_open(&nl, err, sizeof(err));
	if (ret == EVQSTAT_NL_NOFAMILY)
		evqstat_no_module();
	if (ret)
		evqstat_fatal("%s", err);

	clock_gettime(CLOCK_MONOTONIC, &next);
	for (unsigned long n = 0; !o.count || n < o.count; n++) {
		if (n) {
			struct timespec now;

			/* Deadlines from the start: no drift over a long run. */
			evqstat_ts_add(&next, o.interval);
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > next.tv_sec ||
			    (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
				next = now;	/* fell behind: do not burst */
			evqstat_sleep_until(&next);
		}
		if (evqstat_nl_sample(nl, cur, err, sizeof(err))) {
			/* Unloaded while we watched?  Say that, not ENOENT. */
			struct evqstat_nl *again = NULL;
			char err2[256];

			evqstat_nl_close(nl);
			if (evqstat_nl_open(&again, err2, sizeof(err2)) ==
			    EVQSTAT_NL_NOFAMILY)
				evqstat_no_module();
			evqstat_nl_close(again);
			evqstat_fatal("%s", err);
		}
		evqstat_filter(cur, &o);
		if (n) {
			evqstat_delta(&d, prev, cur);
			evqstat_print(&o, &d, &t);
		} else {
			evqstat_print(&o, cur, &t);
		}
		tmp = prev;
		prev = cur;
		cur = tmp;
	}
	evqstat_nl_close(nl);
	evqstat_sample_free(&a);
	evqstat_sample_free(&b);
	evqstat_sample_free(&d);
	free(o.pids);
	return 0;
}
