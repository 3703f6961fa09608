/* SPDX-License-Identifier: GPL-2.0 */
/*
 * waitstat_report.h: waitstat's reports.  A reporter keeps the previous
 * snapshot of the maps, takes one at each report, and prints the
 * interval between them (waitstat_interval.h) as a table or as one JSON
 * object per line.
 */
#ifndef WAITSTAT_REPORT_H
#define WAITSTAT_REPORT_H

#include <stdbool.h>
#include <stdio.h>
#include <linux/types.h>

#include "waitstat.h"

struct ws_report_opts {
	bool threads;		/* -t: a row per thread */
	bool hists;		/* -H: histograms in the table */
	bool json;		/* -j: JSON lines */
	__u32 pid;		/* the process measured, 0 for all */
};

/* A BPF program's run-time statistics, since it was loaded. */
struct ws_prog_stats {
	const char *name;
	__u64 run_cnt;
	__u64 run_time_ns;
};

#define WS_MAX_PROGS	4

/* What one report covers, filled by the caller. */
struct ws_report_info {
	bool final;			/* the last report */
	double interval_s;		/* wall time since the previous report */
	double elapsed_s;		/* since the probes were attached */
	int exit_status;		/* the command's, or -1 */
	/* The kernel's count for the command's whole life (wait4), or -1. */
	long cmd_nvcsw, cmd_nivcsw;
	bool stats_ok;			/* BPF run-time stats are enabled */
	int nprogs;
	struct ws_prog_stats progs[WS_MAX_PROGS];
};

struct ws_snapshot;

struct ws_reporter {
	struct ws_report_opts opts;
	int threads_fd;
	int waits_fd;
	FILE *out;
	unsigned int seq;
	struct ws_snapshot *prev;
	struct ws_prog_stats prev_progs[WS_MAX_PROGS];
};

const char *ws_kind_name(unsigned int kind);

void ws_reporter_init(struct ws_reporter *r, const struct ws_report_opts *o,
		      int threads_fd, int waits_fd, FILE *out);
/* Returns 0, or -errno when the maps cannot be read. */
int ws_report(struct ws_reporter *r, const struct ws_report_info *info);
void ws_reporter_fini(struct ws_reporter *r);

#endif /* WAITSTAT_REPORT_H */
