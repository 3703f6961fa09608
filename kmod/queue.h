/* SPDX-License-Identifier: GPL-2.0 */
/*
 * evq internals: the queue, its watches and its completion ring.
 *
 * Locking:
 *   evq_queue.mtx   the watch table and everything that sleeps (vfs_poll,
 *                   fget/fput, allocations); held by CTL, by the level
 *                   re-check in WAIT and by the poll and reap workers, so
 *                   a watch is only freed with it held.  Also the list of
 *                   operations in flight, so cancel can reach them.
 *   evq_queue.lock  the producer side of the ring and every watch's post
 *                   state and list membership; taken from wake-up
 *                   callbacks (any context, under the watched file's
 *                   wait-queue lock), so always with interrupts off.
 * Order: mtx, then a wait-queue head's lock, then lock.
 */
#ifndef EVQ_QUEUE_H
#define EVQ_QUEUE_H

#include <linux/types.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include <linux/refcount.h>
#include <linux/pagemap.h>
#include <linux/poll.h>
#include <linux/fs.h>
#include <linux/evq.h>

#define EVQ_RING_HDR_HEAD	0
#define EVQ_RING_HDR_TAIL	64	/* own cache line: producer vs consumer */
#define EVQ_RING_HDR_MASK	128
#define EVQ_RING_HDR_ENTRIES	132
#define EVQ_RING_HDR_OVERFLOW	136
#define EVQ_RING_HDR_FLAGS	140
#define EVQ_RING_HDR_CQES	192

struct evq_user;

/*
 * Every allocation a queue makes for its user: charged to the caller's
 * memory cgroup, and refused with -ENOMEM at the cgroup's limit rather
 * than retried through the OOM killer, which would kill a task of that
 * cgroup (often the caller) for a request the caller can handle failing.
 * Quiet: a user choosing a large ring must not fill the kernel log.
 */
#define EVQ_GFP		(GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN)

/**
 * struct evq_stats - a queue's counters, read over generic netlink
 * @posted: entries written to the ring (q->lock)
 * @overflows: completions that found the ring full (q->lock)
 * @pageins: page-in windows read to the end (q->lock)
 * @pagein_ns: their total latency (q->lock)
 * @pagein_max_ns: the longest (q->lock)
 * @waits: EVQ_IOC_WAIT calls
 * @waits_slept: of those, calls that slept
 * @ctl_calls: EVQ_IOC_CTL calls
 * @ctl_changes: changes they applied
 * @sf_calls: EVQ_IOC_SENDFILE calls that started a send
 * @sf_bytes: bytes handed to sockets
 * @sf_not_resident: sends stopped by a page not in memory
 *
 * The first five change only under q->lock, which posting holds anyway;
 * the others come from ioctls and workers that share no lock, so they are
 * atomic.
 */
struct evq_stats {
	u64 posted;
	u64 overflows;
	u64 pageins;
	u64 pagein_ns;
	u64 pagein_max_ns;
	atomic64_t waits;
	atomic64_t waits_slept;
	atomic64_t ctl_calls;
	atomic64_t ctl_changes;
	atomic64_t sf_calls;
	atomic64_t sf_bytes;
	atomic64_t sf_not_resident;
};

/**
 * struct evq_ring - the completion ring shared with userspace
 * @pages: the ring's pages, inserted into the user's mapping
 * @nr_pages: number of @pages
 * @vaddr: kernel mapping of @pages
 * @head: consumer index, written by userspace: never trusted
 * @tail: producer index as published to userspace
 * @flags: EVQ_RING_* bits
 * @overflow: posts that went to the ready list
 * @cqes: the entries
 * @entries: number of entries, a power of two
 * @mask: @entries - 1
 */
struct evq_ring {
	struct page **pages;
	unsigned int nr_pages;
	void *vaddr;
	u32 *head;
	u32 *tail;
	u32 *flags;
	u32 *overflow;
	struct evq_cqe *cqes;
	u32 entries;
	u32 mask;
};

/**
 * struct evq_queue - one open of /dev/evq
 * @mtx: see the locking note at the top of this file
 * @lock: see the locking note at the top of this file
 * @wq: EVQ_IOC_WAIT sleepers
 * @poll_wq: poll() and epoll on the queue fd
 * @ring: the completion ring, valid once @ready is set
 * @ready: set (release) once the ring exists
 * @tail: our own producer index; the shared one is only written
 * @ovf_list: watches whose event did not fit in the ring (the ready list)
 * @level_list: level watches posted, to re-check once consumed
 * @pollq_list: watches woken without a usable event mask: the next
 *	EVQ_IOC_WAIT polls them
 * @reap_work: looks for watched files only this queue still holds
 * @reap_next: the fd the next reap pass starts from (under @mtx)
 * @wake_work: wakes @poll_wq when that was not safe in place
 * @watches: fd -> struct evq_watch
 * @nr_watches: entries in @watches
 * @user: the opener's accounting
 * @refs: one for the open file, one per operation in flight
 * @dead: the file is released: completions that do not fit are dropped
 * @ops: operations in flight (under @mtx)
 * @op_ovf: finished operations whose entries did not fit in the ring
 * @nr_ops: operations counted against max_ops, until their last entry
 *	is in the ring
 * @id: key in the registry of queues (evq_queues), for netlink
 * @owner_pid: the opener's thread group
 * @owner_uid: the opener's effective uid: who may read the counters
 * @wait_head: the ring head at the last EVQ_IOC_WAIT, for tracing
 * @stats: counters
 */
struct evq_queue {
	struct mutex mtx;	/* watch table, sleeping work */
	spinlock_t lock;	/* ring producer, post state */
	wait_queue_head_t wq;
	wait_queue_head_t poll_wq;
	struct evq_ring ring;
	bool ready;
	u32 tail;
	struct list_head ovf_list;
	struct list_head level_list;
	struct list_head pollq_list;
	struct delayed_work reap_work;
	unsigned long reap_next;
	struct work_struct wake_work;
	struct xarray watches;
	unsigned int nr_watches;
	struct evq_user *user;
	refcount_t refs;
	bool dead;
	struct list_head ops;
	struct list_head op_ovf;
	atomic_t nr_ops;
	u32 id;
	struct pid *owner_pid;
	kuid_t owner_uid;
	u32 wait_head;
	struct evq_stats stats;
};

/* One wait-queue head a watch is hooked on (most files have one). */
struct evq_pwq {
	wait_queue_entry_t wait;
	wait_queue_head_t *whead;
	struct evq_watch *w;
	struct evq_pwq *next;
};

/**
 * struct evq_watch - interest in one file
 * @q: the queue
 * @file: the watched file; the watch holds a reference
 * @pin: counts the watches, of every queue, holding @file (kmod/pin.c)
 * @fd: the fd number it was added under (key in @q->watches)
 * @events: interest, always with EPOLLERR and EPOLLHUP
 * @mode: EVQ_WATCH_* bits
 * @user_data: returned in every entry
 * @pwq: wait-queue hooks
 * @pwq0: the first hook, kept here: most files have one wait queue
 * @nwait: hooks made, or -1 when one could not be allocated
 * @armed: cleared after a oneshot event until MOD
 * @closed: dropped; a CLOSED entry is pending on @q->ovf_list
 * @on_ovf: on @q->ovf_list, with @ovf_events merged
 * @on_level: on @q->level_list
 * @on_pollq: on @q->pollq_list
 * @posted: @posted_seq and @posted_events describe an entry in the ring
 * @nests: @file is an epoll file, which may hold @q: its wake-ups must
 *	not wake @q's pollers in place (see evq_wake_nested())
 * @ovf_events: events waiting on the ready list
 * @posted_seq: ring index of the last entry posted
 * @posted_events: its events
 * @ovf_node: link in @q->ovf_list
 * @level_node: link in @q->level_list
 * @pollq_node: link in @q->pollq_list
 */
struct evq_watch {
	struct evq_queue *q;
	struct file *file;
	struct evq_pin *pin;
	int fd;
	__poll_t events;
	u32 mode;
	u64 user_data;
	struct evq_pwq *pwq;
	struct evq_pwq pwq0;
	int nwait;
	bool armed;
	bool closed;
	bool on_ovf;
	bool on_level;
	bool on_pollq;
	bool posted;
	bool nests;
	__poll_t ovf_events;
	u32 posted_seq;
	__poll_t posted_events;
	struct list_head ovf_node;
	struct list_head level_node;
	struct list_head pollq_node;
};

/* What an operation is waiting for (evq_op.state). */
enum {
	EVQ_OP_RUNNING,		/* its executor owns it */
	EVQ_OP_ARMED_SOCK,	/* hooked on the socket until writable */
	EVQ_OP_ARMED_PAGE,	/* hooked on a folio until it unlocks */
	EVQ_OP_QUEUED,		/* its work item is queued */
};

/**
 * struct evq_op - an operation in flight: an asynchronous send, or the
 *	page-in behind an EVQ_SF_NOTIFY
 * @q: the queue; the operation holds a reference
 * @node: link in @q->ops
 * @ovf_node: link in @q->op_ovf once finished, if the ring was full
 * @work: runs the operation in process context
 * @state: EVQ_OP_* (atomic: wake callbacks and cancel race the executor)
 * @cancelled: finish with -ECANCELED at the next step
 * @async: an asynchronous send (else a page-in notification)
 * @flags: EVQ_SF_* bits of the request
 * @user_data: the caller's value for the completion
 * @memcg: the memory cgroup of the task that started the operation: the
 *	work item charges the page cache it reads in to it, not to the
 *	root cgroup a kernel worker belongs to
 * @in: the file being sent or paged in
 * @out: the socket (asynchronous sends)
 * @sock: @out's socket
 * @pos: next byte to send
 * @end: end of the range, fixed when the send starts
 * @sent: bytes sent so far
 * @pg_start: start of the window being paged in
 * @pg_pos: next byte of the window to read
 * @pg_end: end of the window (@pg_pos == @pg_end: no page-in pending)
 * @pg_t0: when the window's page-in started (ktime_get_ns())
 * @wpq: hooked on a folio's wait queue through IOCB_WAITQ
 * @pt: poll table that hooks @sock_wait on the socket
 * @sock_head: the socket's wait-queue head
 * @sock_wait: hooked there while EVQ_OP_ARMED_SOCK
 * @sock_queued: @sock_wait was added by the current arm
 * @ncqe: entries to post at the end
 * @cqe_done: entries of @cqe already in the ring
 * @cqe: the entries
 */
struct evq_op {
	struct evq_queue *q;
	struct list_head node;
	struct list_head ovf_node;
	struct work_struct work;
	atomic_t state;
	bool cancelled;
	bool async;
	u32 flags;
	u64 user_data;
	struct mem_cgroup *memcg;
	struct file *in;
	struct file *out;
	struct socket *sock;
	loff_t pos;
	loff_t end;
	u64 sent;
	loff_t pg_start;
	loff_t pg_pos;
	loff_t pg_end;
	u64 pg_t0;
	struct wait_page_queue wpq;
	poll_table pt;
	wait_queue_head_t *sock_head;
	wait_queue_entry_t sock_wait;
	bool sock_queued;
	u8 ncqe;
	u8 cqe_done;
	struct {
		s32 res;
		u32 flags;
	} cqe[2];
};

/* module parameters */
extern unsigned int evq_max_user_watches;
extern unsigned int evq_max_cq_entries;
extern unsigned int evq_max_batch;
extern unsigned int evq_reap_interval_ms;
extern unsigned int evq_reap_batch;
extern unsigned int evq_max_ops;
extern unsigned int evq_sendfile_window;
extern struct workqueue_struct *evq_wq;

extern const struct file_operations evq_fops;

/* queue.c */
struct evq_queue *evq_queue_create(void);
void evq_queue_release(struct evq_queue *q);
void evq_queue_put(struct evq_queue *q);
extern atomic_t evq_nr_queues;
void evq_queue_update_flags(struct evq_queue *q);
__poll_t evq_queue_poll(struct evq_queue *q, struct file *file,
			poll_table *pt);

/* ring.c */
int evq_ring_setup(struct evq_queue *q, struct evq_setup __user *arg);
void evq_ring_free(struct evq_ring *ring);
int evq_ring_mmap(struct evq_queue *q, struct vm_area_struct *vma);
u32 evq_ring_count(struct evq_queue *q);
bool evq_ring_room(struct evq_queue *q);
bool evq_ring_consumed(struct evq_queue *q, u32 seq);
void evq_ring_write(struct evq_queue *q, u64 user_data, s32 res, u32 flags);
void evq_ring_overflow(struct evq_queue *q, u64 user_data);

/* watch.c */
int evq_watch_add(struct evq_queue *q, const struct evq_ctl *c);
int evq_watch_mod(struct evq_queue *q, const struct evq_ctl *c);
int evq_watch_del(struct evq_queue *q, const struct evq_ctl *c);
void evq_watch_unhook(struct evq_watch *w);
void evq_watch_free(struct evq_watch *w);
void evq_watch_close(struct evq_watch *w);
bool evq_watch_post(struct evq_watch *w, __poll_t events);
void evq_watch_emit(struct evq_watch *w, __poll_t events);
void evq_watch_repoll(struct evq_watch *w);
void evq_watch_poll_queued(struct evq_queue *q);
void evq_reap_work(struct work_struct *work);
void evq_reap_schedule(struct evq_queue *q);
int evq_watch_cache_init(void);
void evq_watch_cache_exit(void);

/* pin.c */
struct evq_pin *evq_pin_get(struct file *file);
void evq_pin_put(struct evq_pin *p);
bool evq_pin_alone(struct evq_pin *p);
void evq_pin_check(struct evq_pin *p);
unsigned int evq_pin_suspects(struct file **files, unsigned int max);
bool evq_pin_only(struct file *file, long more);
bool evq_pin_kill(struct file *file);
bool evq_pin_dead(struct evq_pin *p);
int evq_pin_init(void);
void evq_pin_exit(void);

/* inflight.c */
void evq_inflight_schedule(void);
void evq_inflight_dropped(void);
void evq_inflight_exit(void);

/* ctl.c */
long evq_ctl_ioctl(struct evq_queue *q, struct evq_ctl_batch __user *arg);

/* wait.c */
long evq_wait_ioctl(struct evq_queue *q, struct evq_wait __user *arg);
void evq_wake(struct evq_queue *q, bool sync);
void evq_wake_nested(struct evq_queue *q, bool sync);
void evq_wake_work(struct work_struct *work);

/* op.c */
int evq_op_reserve(struct evq_queue *q);
void evq_op_unreserve(struct evq_queue *q);
struct evq_op *evq_op_alloc(struct evq_queue *q, const struct evq_sendfile *sf,
			    struct file *in, struct file *out);
void evq_op_start(struct evq_op *op);
void evq_op_window(struct evq_op *op, loff_t pos, loff_t end);
bool evq_op_flush(struct evq_queue *q);
void evq_op_cancel_all(struct evq_queue *q);
long evq_cancel_ioctl(struct evq_queue *q, u64 __user *arg);
int evq_op_cache_init(void);
void evq_op_cache_exit(void);

/* The page-in window: whole pages, one at least, 64 MiB at most. */
static inline loff_t evq_sf_window(void)
{
	unsigned int w = READ_ONCE(evq_sendfile_window);

	return clamp_t(loff_t, round_up((loff_t)w, PAGE_SIZE), PAGE_SIZE,
		       64 << 20);
}

/* sendfile.c */
long evq_sendfile_ioctl(struct evq_queue *q, struct evq_sendfile __user *arg);
int evq_sf_push(struct socket *sock, struct file *in, loff_t *pos, loff_t end,
		u32 flags, int *err);

/**
 * struct evq_counters - a snapshot of counters, one queue's or a sum
 * @posted: see struct evq_stats, and EVQ_A_* in the uapi header
 * @harvested: entries userspace consumed of @posted
 * @overflows: see struct evq_stats
 * @waits: see struct evq_stats
 * @waits_slept: see struct evq_stats
 * @ctl_calls: see struct evq_stats
 * @ctl_changes: see struct evq_stats
 * @sf_calls: see struct evq_stats
 * @sf_bytes: see struct evq_stats
 * @sf_not_resident: see struct evq_stats
 * @pageins: see struct evq_stats
 * @pagein_ns: see struct evq_stats
 * @pagein_max_ns: see struct evq_stats
 */
struct evq_counters {
	u64 posted;
	u64 harvested;
	u64 overflows;
	u64 waits;
	u64 waits_slept;
	u64 ctl_calls;
	u64 ctl_changes;
	u64 sf_calls;
	u64 sf_bytes;
	u64 sf_not_resident;
	u64 pageins;
	u64 pagein_ns;
	u64 pagein_max_ns;
};

/* stats.c: the registry of open queues and their counters */
extern struct xarray evq_queues;
int evq_registry_add(struct evq_queue *q);
void evq_registry_del(struct evq_queue *q);
void evq_queue_counters(struct evq_queue *q, struct evq_counters *c);
void evq_global_counters(struct evq_counters *sum, u32 *open, u64 *created);
void evq_stats_pagein(struct evq_queue *q, u64 t0);

/* netlink.c */
int evq_netlink_init(void);
void evq_netlink_exit(void);

/* user.c */
struct evq_user *evq_user_get(kuid_t uid);
void evq_user_put(struct evq_user *u);
bool evq_user_charge(struct evq_user *u);
void evq_user_uncharge(struct evq_user *u);

#endif /* EVQ_QUEUE_H */
