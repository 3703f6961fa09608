/* SPDX-License-Identifier: GPL-2.0 */
/*
 * waitstat.h: what waitstat's BPF programs (waitstat.bpf.c) and its
 * userspace (waitstat.c, waitstat_interval.c, waitstat_report.c) share:
 * the kinds of event wait, the map keys and the counters they hold.
 *
 * Fixed-width __u32/__u64 only: the BPF side gets them from vmlinux.h,
 * userspace from <linux/types.h>, which must come first.
 */
#ifndef WAITSTAT_H
#define WAITSTAT_H

#define WS_COMM_LEN	16
/* Syscall numbers the kind table covers; x86_64 is below 500 in 6.18. */
#define WS_NR_SYSCALLS	1024
/* Events per wait, log2: slot 0 is "none", slot i >= 1 is [2^(i-1), 2^i). */
#define WS_HIST_SLOTS	24
#define WS_MAX_THREADS	10240

/* What a system call is, for waitstat. */
enum ws_kind {
	WS_KIND_NONE = 0,	/* not an event wait */
	WS_KIND_POLL,		/* poll, ppoll */
	WS_KIND_SELECT,		/* select, pselect6 */
	WS_KIND_EPOLL,		/* epoll_wait, epoll_pwait, epoll_pwait2 */
	WS_KIND_URING,		/* io_uring_enter (returns submissions) */
	WS_KIND_EVQ,		/* ioctl(EVQ_IOC_WAIT) */
	WS_KIND_MAX,
	/* Table value for ioctl: a wait only if the command is evq_wait_cmd. */
	WS_KIND_IOCTL = 0xff,
};

/*
 * One thread's context switches and CPU time.  The counters only grow
 * while the entry lives (an LRU map may evict it, a new thread reusing
 * the tid of another process resets it); userspace reports differences.
 */
struct ws_thread {
	__u32 tgid;
	__u32 exited;		/* left the CPU for the last time (TASK_DEAD) */
	__u64 vcsw;		/* switched out to sleep */
	__u64 ivcsw;		/* switched out while runnable (preempted, yield) */
	__u64 oncpu_ns;		/* completed on-CPU spells, switch-in to switch-out */
	char comm[WS_COMM_LEN];

	/* Tracking state, private to the BPF side. */
	__u64 oncpu_since;	/* last switch-in, 0 if not seen */
	__u64 wait_enter;	/* sys_enter of the wait in progress, 0 if none */
	__u64 wait_mark;	/* start of the current on-CPU spell in it, 0 if off */
	__u64 wait_oncpu;	/* on-CPU time in it so far */
	__u32 wait_kind;
	__u32 pad2;
};

struct ws_wait_key {
	__u32 tid;
	__u32 kind;		/* enum ws_kind */
};

/* One thread's waits of one kind. */
struct ws_wait {
	__u32 tgid;
	__u32 pad;
	__u64 calls;		/* completed calls */
	__u64 errors;		/* calls that returned an error (EINTR...) */
	__u64 oncpu_ns;		/* time on CPU inside the calls */
	__u64 offcpu_ns;	/* wall time inside the calls minus the above */
	__u64 events;		/* sum of the positive return values */
	__u64 hist[WS_HIST_SLOTS];	/* calls by events returned, log2 */
};

#endif /* WAITSTAT_H */
