/* SPDX-License-Identifier: GPL-2.0 */
/*
 * evq internals: the queue, its watches and its completion ring.
 *
 * Locking:
 *   evq_queue.mtx   the watch table and everything that sleeps (vfs_poll,
 *                   fget/fput, allocations); held by CTL, by the level
 *                   re-check in WAIT and by the poll and reap workers, so
 *                   a watch is only freed with it held.
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
 * @overflow: count mirrored to the ring
 * @ovf_list: watches whose event did not fit in the ring (the ready list)
 * @level_list: level watches posted, to re-check once consumed
 * @pollq_list: watches woken without an event mask: poll them
 * @poll_work: polls @pollq_list in process context
 * @reap_work: looks for watched files only this queue still holds
 * @wake_work: wakes @poll_wq when that was not safe in place
 * @watches: fd -> struct evq_watch
 * @nr_watches: entries in @watches
 * @user: the opener's accounting
 */
struct evq_queue {
	struct mutex mtx;	/* watch table, sleeping work */
	spinlock_t lock;	/* ring producer, post state */
	wait_queue_head_t wq;
	wait_queue_head_t poll_wq;
	struct evq_ring ring;
	bool ready;
	u32 tail;
	u32 overflow;
	struct list_head ovf_list;
	struct list_head level_list;
	struct list_head pollq_list;
	struct work_struct poll_work;
	struct delayed_work reap_work;
	struct work_struct wake_work;
	struct xarray watches;
	unsigned int nr_watches;
	struct evq_user *user;
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
	__poll_t ovf_events;
	u32 posted_seq;
	__poll_t posted_events;
	struct list_head ovf_node;
	struct list_head level_node;
	struct list_head pollq_node;
};

/* module parameters */
extern unsigned int evq_max_user_watches;
extern unsigned int evq_max_cq_entries;
extern unsigned int evq_max_batch;
extern unsigned int evq_reap_interval_ms;

extern const struct file_operations evq_fops;

/* queue.c */
struct evq_queue *evq_queue_create(void);
void evq_queue_destroy(struct evq_queue *q);
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
void evq_poll_work(struct work_struct *work);
void evq_reap_work(struct work_struct *work);
void evq_reap_schedule(struct evq_queue *q);
int evq_watch_cache_init(void);
void evq_watch_cache_exit(void);

/* ctl.c */
long evq_ctl_ioctl(struct evq_queue *q, struct evq_ctl_batch __user *arg);

/* wait.c */
long evq_wait_ioctl(struct evq_queue *q, struct evq_wait __user *arg);
void evq_wake(struct evq_queue *q, bool sync);
void evq_wake_work(struct work_struct *work);

/* user.c */
struct evq_user *evq_user_get(kuid_t uid);
void evq_user_put(struct evq_user *u);
bool evq_user_charge(struct evq_user *u);
void evq_user_uncharge(struct evq_user *u);

#endif /* EVQ_QUEUE_H */
