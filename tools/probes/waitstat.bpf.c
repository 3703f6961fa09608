// SPDX-License-Identifier: GPL-2.0
/*
 * waitstat.bpf.c: the kernel half of waitstat.  Counts, per thread,
 * context switches (voluntary or not) and on-CPU time from sched_switch,
 * and splits each event-wait system call into the time it spent on the
 * CPU and the time it slept, by combining sys_enter/sys_exit with
 * sched_switch:
 *
 *   sys_enter         mark = now
 *   switch-out        on += now - mark, mark = 0
 *   switch-in         mark = now
 *   sys_exit          on += now - mark; off = (exit - enter) - on
 *
 * Everything is aggregated here; userspace reads the maps at print time.
 * tp_btf programs need no tracefs and read their arguments directly.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "waitstat.h"

#define TASK_RUNNING	0
#define TASK_DEAD	0x80

/* Set by userspace before load. */
const volatile __u32 target_tgid;	/* 0: every process */
const volatile __u32 evq_wait_cmd;	/* EVQ_IOC_WAIT, from the uapi header */
/* System call number -> enum ws_kind (or WS_KIND_IOCTL), from SYS_*. */
const volatile __u8 syscall_kind[WS_NR_SYSCALLS];

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_MAX_THREADS);
	__type(key, __u32);			/* tid */
	__type(value, struct ws_thread);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_MAX_THREADS);
	__type(key, struct ws_wait_key);
	__type(value, struct ws_wait);
} waits SEC(".maps");

/* Before 5.14 the field was "long state". */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___pre514 *)t, state);
}

/* tgid 0 is the idle tasks: never ours. */
static __always_inline bool traced(__u32 tgid)
{
	return tgid && (!target_tgid || tgid == target_tgid);
}

/* The thread's entry; a tid now in another process starts afresh. */
static struct ws_thread *thread_get(struct task_struct *t, __u32 tid,
				    __u32 tgid)
{
	struct ws_thread *th = bpf_map_lookup_elem(&threads, &tid);
	struct ws_thread fresh = { .tgid = tgid };

	if (th && th->tgid == tgid)
		return th;
	bpf_probe_read_kernel_str(fresh.comm, sizeof(fresh.comm), t->comm);
	bpf_map_update_elem(&threads, &tid, &fresh, BPF_ANY);
	return bpf_map_lookup_elem(&threads, &tid);
}

static __always_inline void switch_out(struct task_struct *p, bool preempt,
				       __u64 now)
{
	struct ws_thread *th = thread_get(p, p->pid, p->tgid);
	long state;

	if (!th)
		return;
	/*
	 * The kernel's own rule (nvcsw/nivcsw): a task that leaves the CPU
	 * still runnable was pushed off it.  (A task woken by a signal on
	 * its way to sleep counts voluntary there, involuntary here.)
	 */
	state = task_state(p);
	if (preempt || state == TASK_RUNNING)
		th->ivcsw++;
	else
		th->vcsw++;
	/* Userspace waits for this before its last report. */
	if (state & TASK_DEAD)
		th->exited = 1;
	if (th->oncpu_since)
		th->oncpu_ns += now - th->oncpu_since;
	th->oncpu_since = 0;
	if (th->wait_enter && th->wait_mark)
		th->wait_oncpu += now - th->wait_mark;
	th->wait_mark = 0;
	/* exec and prctl(PR_SET_NAME) rename; keep the latest name. */
	bpf_probe_read_kernel_str(th->comm, sizeof(th->comm), p->comm);
}

static __always_inline void switch_in(struct task_struct *n, __u64 now)
{
	struct ws_thread *th = thread_get(n, n->pid, n->tgid);

	if (!th)
		return;
	th->oncpu_since = now;
	if (th->wait_enter)
		th->wait_mark = now;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns();

	if (traced(prev->tgid))
		switch_out(prev, preempt, now);
	if (traced(next->tgid))
		switch_in(next, now);
	return 0;
}

static __always_inline __u32 wait_kind(struct pt_regs *regs, long id)
{
	__u32 kind;

	if (id < 0 || id >= WS_NR_SYSCALLS)
		return WS_KIND_NONE;
	kind = syscall_kind[id];
	if (kind != WS_KIND_IOCTL)
		return kind;
	/* ioctl(fd, cmd, arg): only the evq wait command is a wait. */
	if ((__u32)PT_REGS_PARM2_CORE_SYSCALL(regs) == evq_wait_cmd)
		return WS_KIND_EVQ;
	return WS_KIND_NONE;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(on_sys_enter, struct pt_regs *regs, long id)
{
	__u64 id_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = id_tgid >> 32, tid = (__u32)id_tgid;
	struct ws_thread *th;
	__u32 kind;
	__u64 now;

	if (!traced(tgid))
		return 0;
	kind = wait_kind(regs, id);
	if (kind == WS_KIND_NONE)
		return 0;
	th = thread_get(bpf_get_current_task_btf(), tid, tgid);
	if (!th)
		return 0;
	now = bpf_ktime_get_ns();
	th->wait_kind = kind;
	th->wait_enter = now;
	th->wait_mark = now;
	th->wait_oncpu = 0;
	/*
	 * It runs, so it was switched in.  Seldom no switch-in is seen (on
	 * a 6.18 host, about 1 in 500 switch-ins, always from a QEMU vCPU
	 * thread): count from here on.
	 */
	if (!th->oncpu_since)
		th->oncpu_since = now;
	return 0;
}

/* Slot 0 holds zero, slot i the values in [2^(i-1), 2^i); the last, more. */
static __always_inline __u32 hist_slot(__u64 v)
{
	__u32 slot;

	for (slot = 0; slot < WS_HIST_SLOTS - 1 && v; slot++)
		v >>= 1;
	return slot;
}

static __always_inline void record_wait(__u32 tid, __u32 tgid, __u32 kind,
					__u64 oncpu, __u64 offcpu, long ret)
{
	struct ws_wait_key key = { .tid = tid, .kind = kind };
	struct ws_wait *w = bpf_map_lookup_elem(&waits, &key);

	if (!w || w->tgid != tgid) {
		struct ws_wait fresh = { .tgid = tgid };

		bpf_map_update_elem(&waits, &key, &fresh, BPF_ANY);
		w = bpf_map_lookup_elem(&waits, &key);
		if (!w)
			return;
	}
	w->calls++;
	w->oncpu_ns += oncpu;
	w->offcpu_ns += offcpu;
	if (ret < 0) {
		w->errors++;
		return;
	}
	w->events += ret;
	w->hist[hist_slot(ret)]++;
}

/*
 * Whether the call ending may be a wait.  On x86 the number is still in
 * orig_ax: checking it spares a map lookup on every other exit.
 */
static __always_inline bool may_be_wait(struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	long id = BPF_CORE_READ(regs, orig_ax);

	return id >= 0 && id < WS_NR_SYSCALLS && syscall_kind[id];
#else
	return true;
#endif
}

SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	__u64 id_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = id_tgid >> 32, tid = (__u32)id_tgid;
	__u64 now, oncpu, wall;
	struct ws_thread *th;

	if (!traced(tgid) || !may_be_wait(regs))
		return 0;
	th = bpf_map_lookup_elem(&threads, &tid);
	if (!th || !th->wait_enter || th->tgid != tgid)
		return 0;
	now = bpf_ktime_get_ns();
	oncpu = th->wait_oncpu;
	if (th->wait_mark)
		oncpu += now - th->wait_mark;
	/*
	 * Close the thread's current spell here too, so that a report never
	 * holds a wait's on-CPU time without the CPU time around it.
	 */
	if (th->oncpu_since)
		th->oncpu_ns += now - th->oncpu_since;
	th->oncpu_since = now;	/* also repairs a missed switch-in */
	wall = now - th->wait_enter;
	th->wait_enter = 0;
	th->wait_mark = 0;
	record_wait(tid, tgid, th->wait_kind, oncpu,
		    wall > oncpu ? wall - oncpu : 0, ret);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
