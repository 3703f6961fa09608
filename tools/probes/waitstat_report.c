// SPDX-License-Identifier: GPL-2.0
/*
 * waitstat_report.c: waitstat's reports, a table or with -j one JSON
 * object per line (schema in Documentation/probes.rst), from the
 * intervals waitstat_interval.c computes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <json-c/json.h>

#include "waitstat_interval.h"
#include "waitstat_report.h"

static const char *const kind_names[WS_KIND_MAX] = {
	[WS_KIND_NONE] = "none",
	[WS_KIND_POLL] = "poll",
	[WS_KIND_SELECT] = "select",
	[WS_KIND_EPOLL] = "epoll",
	[WS_KIND_URING] = "io_uring",
	[WS_KIND_EVQ] = "evq",
};

const char *ws_kind_name(unsigned int kind)
{
	return kind < WS_KIND_MAX ? kind_names[kind] : "?";
}

static double ms(__u64 ns)
{
	return ns / 1e6;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

/* ---- table ---- */

static void print_hist(FILE *f, const __u64 *hist)
{
	__u64 max = 0;
	int i, last = 0;

	for (i = 0; i < WS_HIST_SLOTS; i++) {
		if (hist[i] > max)
			max = hist[i];
		if (hist[i])
			last = i;
	}
	if (!max)
		return;
	fprintf(f, "%24s : %-10s %s\n", "events per wait", "waits", "distribution");
	for (i = 0; i <= last; i++) {
		int bar = (int)(hist[i] * 40 / max);
		__u64 lo = i ? 1ULL << (i - 1) : 0, hi = i ? (1ULL << i) - 1 : 0;
		char range[48];

		if (i == WS_HIST_SLOTS - 1)
			snprintf(range, sizeof(range), "%llu ->", (unsigned long long)lo);
		else if (lo == hi)
			snprintf(range, sizeof(range), "%llu", (unsigned long long)lo);
		else
			snprintf(range, sizeof(range), "%llu -> %llu",
				 (unsigned long long)lo, (unsigned long long)hi);
		fprintf(f, "%24s : %-10llu |%-40.*s|\n", range,
			(unsigned long long)hist[i], bar,
			"****************************************");
	}
}

static void print_waits(FILE *f, const struct ws_row *r, double secs, bool hists)
{
	bool header = false;
	int k;

	for (k = 1; k < WS_KIND_MAX; k++) {
		const struct ws_wait_sum *w = &r->wait[k];

		if (!w->calls)
			continue;
		if (!header) {
			fprintf(f, "%16s %-8s %10s %9s %6s %10s %11s %10s %8s\n",
				"", "WAIT", "CALLS", "CALLS/s", "ERR",
				"ON-CPU-ms", "OFF-CPU-ms", "EVENTS", "EV/CALL");
			header = true;
		}
		fprintf(f, "%16s %-8s %10llu %9.1f %6llu %10.2f %11.2f %10llu %8.2f\n",
			"", ws_kind_name(k), (unsigned long long)w->calls,
			ratio(w->calls, secs), (unsigned long long)w->errors,
			ms(w->oncpu_ns), ms(w->offcpu_ns),
			(unsigned long long)w->events,
			ratio(w->events, w->calls - w->errors));
		if (hists)
			print_hist(f, w->hist);
	}
}

static void print_row(FILE *f, const struct ws_row *r, double secs)
{
	char tid[16] = "-";

	if (r->tid)
		snprintf(tid, sizeof(tid), "%u", r->tid);
	fprintf(f, "%7u %7s %-16s %9.1f %9.1f %10llu %10llu %9.2f %8.2f\n",
		r->pid, tid, r->comm, ratio(r->vcsw, secs),
		ratio(r->ivcsw, secs), (unsigned long long)r->vcsw_total,
		(unsigned long long)r->ivcsw_total, ms(r->oncpu_ns),
		100 * ratio(ws_row_wait_oncpu(r), r->oncpu_ns));
}

static void print_overhead(FILE *f, const struct ws_report_info *info,
			   __u64 cnt, __u64 ns)
{
	if (!info->stats_ok) {
		fprintf(f, "probes: run-time stats unavailable\n");
		return;
	}
	fprintf(f, "probes: %d programs, %llu runs, %.3f ms (%.0f ns/run), "
		"%.3f%% of one CPU\n", info->nprogs, (unsigned long long)cnt,
		ms(ns), ratio(ns, cnt), 100 * ratio(ns, info->interval_s * 1e9));
}

static void print_table(struct ws_reporter *r, const struct ws_interval *iv,
			const struct ws_report_info *info, __u64 cnt, __u64 ns)
{
	FILE *f = r->out;
	char when[16], who[32] = "all processes";
	time_t now = time(NULL);
	size_t i, j;

	strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
	if (r->opts.pid)
		snprintf(who, sizeof(who), "pid %u", r->opts.pid);
	fprintf(f, "%s  %s, %.3f s%s\n", when, who, info->interval_s,
		info->final ? " (final)" : "");
	fprintf(f, "%7s %7s %-16s %9s %9s %10s %10s %9s %8s\n", "PID", "TID",
		"COMM", "VCSW/s", "IVCSW/s", "VCSW-TOT", "IVCSW-TOT", "CPU-ms",
		"WAIT%CPU");
	for (i = 0; i < iv->nprocs; i++) {
		const struct ws_row *p = &iv->procs[i];

		print_row(f, p, info->interval_s);
		print_waits(f, p, info->interval_s, r->opts.hists);
		if (!r->opts.threads)
			continue;
		for (j = iv->procs[i].first;
		     j < iv->nthreads && iv->threads[j].pid == p->pid; j++) {
			if (!ws_row_active(&iv->threads[j]))
				continue;
			print_row(f, &iv->threads[j], info->interval_s);
			print_waits(f, &iv->threads[j], info->interval_s, false);
		}
	}
	if (!iv->nprocs)
		fprintf(f, "(no activity)\n");
	print_overhead(f, info, cnt, ns);
	if (info->final && info->exit_status >= 0)
		fprintf(f, "command exit status: %d; the kernel counted %ld "
			"voluntary, %ld involuntary switches over its life\n",
			info->exit_status, info->cmd_nvcsw, info->cmd_nivcsw);
	fputc('\n', f);
	fflush(f);
}

/* ---- JSON ---- */

/* A number with a fixed number of decimals, not %.17g noise. */
static json_object *jdouble(double v, int decimals)
{
	char s[64];

	snprintf(s, sizeof(s), "%.*f", decimals, v);
	return json_object_new_double_s(v, s);
}

static json_object *juint(__u64 v)
{
	return json_object_new_uint64(v);
}

static void jadd(json_object *o, const char *k, json_object *v)
{
	json_object_object_add(o, k, v);
}

static json_object *json_waits(const struct ws_row *r)
{
	json_object *o = json_object_new_object();
	int k, j, last;

	for (k = 1; k < WS_KIND_MAX; k++) {
		const struct ws_wait_sum *w = &r->wait[k];
		json_object *wo, *h;

		if (!w->calls)
			continue;
		wo = json_object_new_object();
		jadd(wo, "calls", juint(w->calls));
		jadd(wo, "errors", juint(w->errors));
		jadd(wo, "oncpu_ns", juint(w->oncpu_ns));
		jadd(wo, "offcpu_ns", juint(w->offcpu_ns));
		jadd(wo, "events", juint(w->events));
		h = json_object_new_array();
		for (last = WS_HIST_SLOTS - 1; last > 0 && !w->hist[last]; last--)
			;
		for (j = 0; j <= last; j++)
			json_object_array_add(h, juint(w->hist[j]));
		jadd(wo, "hist", h);
		jadd(o, ws_kind_name(k), wo);
	}
	return o;
}

static json_object *json_row(const struct ws_row *r, double secs)
{
	json_object *o = json_object_new_object();
	__u64 won = ws_row_wait_oncpu(r);

	if (r->tid)
		jadd(o, "tid", juint(r->tid));
	else
		jadd(o, "pid", juint(r->pid));
	jadd(o, "comm", json_object_new_string(r->comm));
	if (!r->tid)
		jadd(o, "threads", juint(r->nthreads));
	jadd(o, "vcsw", juint(r->vcsw));
	jadd(o, "ivcsw", juint(r->ivcsw));
	jadd(o, "vcsw_per_s", jdouble(ratio(r->vcsw, secs), 1));
	jadd(o, "ivcsw_per_s", jdouble(ratio(r->ivcsw, secs), 1));
	jadd(o, "vcsw_total", juint(r->vcsw_total));
	jadd(o, "ivcsw_total", juint(r->ivcsw_total));
	jadd(o, "oncpu_ns", juint(r->oncpu_ns));
	jadd(o, "oncpu_total_ns", juint(r->oncpu_total_ns));
	jadd(o, "wait_oncpu_ns", juint(won));
	jadd(o, "wait_cpu_share", jdouble(ratio(won, r->oncpu_ns), 4));
	jadd(o, "waits", json_waits(r));
	return o;
}

static json_object *json_overhead(const struct ws_reporter *r,
				  const struct ws_report_info *info,
				  __u64 cnt, __u64 ns)
{
	json_object *o = json_object_new_object(), *progs;
	int i;

	jadd(o, "stats", json_object_new_boolean(info->stats_ok));
	jadd(o, "run_cnt", juint(cnt));
	jadd(o, "run_time_ns", juint(ns));
	jadd(o, "cpu_share", jdouble(ratio(ns, info->interval_s * 1e9), 6));
	progs = json_object_new_object();
	for (i = 0; i < info->nprogs; i++) {
		const struct ws_prog_stats *p = &info->progs[i];
		json_object *po = json_object_new_object();

		jadd(po, "run_cnt", juint(p->run_cnt - r->prev_progs[i].run_cnt));
		jadd(po, "run_time_ns",
		     juint(p->run_time_ns - r->prev_progs[i].run_time_ns));
		jadd(po, "run_cnt_total", juint(p->run_cnt));
		jadd(po, "run_time_total_ns", juint(p->run_time_ns));
		jadd(progs, p->name, po);
	}
	jadd(o, "programs", progs);
	return o;
}

static void print_json(struct ws_reporter *r, const struct ws_interval *iv,
		       const struct ws_report_info *info, __u64 cnt, __u64 ns)
{
	json_object *o = json_object_new_object(), *procs;
	struct timespec ts;
	size_t i, j;

	clock_gettime(CLOCK_REALTIME, &ts);
	jadd(o, "report", juint(r->seq));
	jadd(o, "final", json_object_new_boolean(info->final));
	jadd(o, "time", jdouble(ts.tv_sec + ts.tv_nsec / 1e9, 3));
	jadd(o, "interval_s", jdouble(info->interval_s, 6));
	jadd(o, "elapsed_s", jdouble(info->elapsed_s, 6));
	jadd(o, "pid", juint(r->opts.pid));
	if (info->final && info->exit_status >= 0) {
		json_object *ru = json_object_new_object();

		jadd(o, "exit_status", json_object_new_int(info->exit_status));
		jadd(ru, "nvcsw", json_object_new_int64(info->cmd_nvcsw));
		jadd(ru, "nivcsw", json_object_new_int64(info->cmd_nivcsw));
		jadd(o, "rusage", ru);
	}
	procs = json_object_new_array();
	for (i = 0; i < iv->nprocs; i++) {
		json_object *p = json_row(&iv->procs[i], info->interval_s), *th;

		if (r->opts.threads) {
			th = json_object_new_array();
			for (j = iv->procs[i].first; j < iv->nthreads &&
			     iv->threads[j].pid == iv->procs[i].pid; j++)
				if (ws_row_active(&iv->threads[j]))
					json_object_array_add(th,
						json_row(&iv->threads[j],
							 info->interval_s));
			jadd(p, "thread_rows", th);
		}
		json_object_array_add(procs, p);
	}
	jadd(o, "processes", procs);
	jadd(o, "overhead", json_overhead(r, info, cnt, ns));
	fprintf(r->out, "%s\n",
		json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	fflush(r->out);
	json_object_put(o);
}

void ws_reporter_init(struct ws_reporter *r, const struct ws_report_opts *o,
		      int threads_fd, int waits_fd, FILE *out)
{
	memset(r, 0, sizeof(*r));
	r->opts = *o;
	r->threads_fd = threads_fd;
	r->waits_fd = waits_fd;
	r->out = out;
}

int ws_report(struct ws_reporter *r, const struct ws_report_info *info)
{
	struct ws_snapshot *cur;
	struct ws_interval iv;
	__u64 cnt = 0, ns = 0;
	int err, i;

	cur = ws_snapshot_take(r->threads_fd, r->waits_fd, &err);
	if (!cur)
		return err;
	err = ws_interval_build(&iv, cur, r->prev, r->opts.pid);
	if (err) {
		ws_interval_free(&iv);
		ws_snapshot_free(cur);
		return err;
	}
	for (i = 0; i < info->nprogs; i++) {
		cnt += info->progs[i].run_cnt - r->prev_progs[i].run_cnt;
		ns += info->progs[i].run_time_ns - r->prev_progs[i].run_time_ns;
	}
	r->seq++;
	if (r->opts.json)
		print_json(r, &iv, info, cnt, ns);
	else
		print_table(r, &iv, info, cnt, ns);
	ws_interval_free(&iv);
	memcpy(r->prev_progs, info->progs, sizeof(r->prev_progs));
	ws_snapshot_free(r->prev);
	r->prev = cur;
	return 0;
}

void ws_reporter_fini(struct ws_reporter *r)
{
	ws_snapshot_free(r->prev);
	r->prev = NULL;
}
