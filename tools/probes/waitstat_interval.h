/* SPDX-License-Identifier: GPL-2.0 */
/*
 * waitstat_interval.h: the figures of one report.  A snapshot is both BPF
 * maps copied whole; an interval is the difference between two, as a row
 * per thread and a row per process.
 */
#ifndef WAITSTAT_INTERVAL_H
#define WAITSTAT_INTERVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "waitstat.h"

/* One kind of wait of a thread or process, in the interval. */
struct ws_wait_sum {
	__u64 calls, errors, oncpu_ns, offcpu_ns, events;
	__u64 hist[WS_HIST_SLOTS];
};

/* A thread, or a process (tid 0): interval figures and totals. */
struct ws_row {
	__u32 pid, tid;
	char comm[WS_COMM_LEN];
	unsigned int nthreads;
	size_t first;		/* a process's first thread in threads[] */
	__u64 vcsw, ivcsw, oncpu_ns;
	__u64 vcsw_total, ivcsw_total, oncpu_total_ns;
	struct ws_wait_sum wait[WS_KIND_MAX];
};

struct ws_interval {
	struct ws_row *threads;	/* sorted by pid, tid */
	size_t nthreads;
	struct ws_row *procs;	/* busiest first; idle ones left out */
	size_t nprocs;
};

struct ws_snapshot;

/* NULL with *err = -errno when the maps cannot be read. */
struct ws_snapshot *ws_snapshot_take(int threads_fd, int waits_fd, int *err);
void ws_snapshot_free(struct ws_snapshot *s);

/*
 * cur minus prev (NULL: since the start).  Keeps the processes that did
 * something, and target (a pid, or 0) even if it did not.  0 or -ENOMEM;
 * ws_interval_free() in both cases.
 */
int ws_interval_build(struct ws_interval *iv, const struct ws_snapshot *cur,
		      const struct ws_snapshot *prev, __u32 target);
void ws_interval_free(struct ws_interval *iv);

bool ws_row_active(const struct ws_row *r);
__u64 ws_row_wait_oncpu(const struct ws_row *r);

#endif /* WAITSTAT_INTERVAL_H */
