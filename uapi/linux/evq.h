/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * evq: an event queue with batched changes and a completion ring mapped
 * into userspace.  One open of /dev/evq is one queue.
 *
 * This header is the ABI and nothing else.  Documentation/evq.rst is the
 * reference for every ioctl, structure, flag and errno.
 */
#ifndef _UAPI_LINUX_EVQ_H
#define _UAPI_LINUX_EVQ_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define EVQ_ABI_VERSION		1

/* Feature bits reported by EVQ_IOC_INFO. */
#define EVQ_FEAT_RING		(1ULL << 0)	/* mapped completion ring */
#define EVQ_FEAT_BATCH_CTL	(1ULL << 1)	/* EVQ_IOC_CTL batches */
#define EVQ_FEAT_EXCL_WAIT	(1ULL << 2)	/* EVQ_WAIT_EXCLUSIVE */
#define EVQ_FEAT_EXCL_WATCH	(1ULL << 3)	/* EVQ_WATCH_EXCLUSIVE */
#define EVQ_FEAT_CLOSED_EVENT	(1ULL << 4)	/* EVQ_CQE_CLOSED */
#define EVQ_FEAT_SENDFILE	(1ULL << 5)	/* EVQ_IOC_SENDFILE, EVQ_IOC_CANCEL */

/**
 * struct evq_info - what this module offers (EVQ_IOC_INFO, out)
 * @abi_version: EVQ_ABI_VERSION of the module
 * @resv0: reserved, zero
 * @features: EVQ_FEAT_* bits
 * @max_cq_entries: largest ring EVQ_IOC_SETUP accepts
 * @max_batch: most entries one EVQ_IOC_CTL call accepts
 * @max_user_watches: watches one user may hold across all its queues
 * @max_ops: operations (asynchronous sends, page-in notifications) one
 *	queue may have in flight
 * @sendfile_window: bytes a page-in reads (the sendfile_window
 *	parameter rounded to whole pages)
 * @resv: reserved, zero
 */
struct evq_info {
	__u32 abi_version;
	__u32 resv0;
	__u64 features;
	__u32 max_cq_entries;
	__u32 max_batch;
	__u32 max_user_watches;
	__u32 max_ops;
	__u32 sendfile_window;
	__u32 resv[7];
};

/**
 * struct evq_cqe - one completion ring entry (16 bytes)
 * @user_data: the caller's value from the watch or operation
 * @res: for EVQ_CQE_READY the EPOLL* mask of ready events; for
 *	EVQ_CQE_CLOSED zero; for operations a count or -errno
 * @flags: the entry type (EVQ_CQE_TYPE_MASK) and EVQ_CQEF_* bits
 */
struct evq_cqe {
	__u64 user_data;
	__s32 res;
	__u32 flags;
};

#define EVQ_CQE_TYPE_MASK	0xffU
#define EVQ_CQE_READY		1U	/* readiness of a watched fd */
#define EVQ_CQE_CLOSED		2U	/* watch dropped: nothing else could reach the file */
#define EVQ_CQE_PAGES_READY	3U	/* res: bytes now in the page cache, or -errno */
#define EVQ_CQE_SENDFILE	4U	/* res: bytes sent, or -errno */

/*
 * Another entry with the same user_data follows for this operation: an
 * asynchronous send that stopped on an error after sending some bytes
 * posts the count with this flag, then the -errno.
 */
#define EVQ_CQEF_MORE		(1U << 8)

/**
 * struct evq_ring_offsets - where the ring's fields sit in the mapping
 * @head: __u32 consumer index, written by userspace (store-release)
 * @tail: __u32 producer index, written by the kernel (load-acquire it)
 * @ring_mask: __u32, ring_entries - 1
 * @ring_entries: __u32, a power of two
 * @overflow: __u32 count of posts that found the ring full and were
 *	kept on the queue's ready list instead (nothing is lost)
 * @flags: __u32 EVQ_RING_* bits
 * @cqes: array of struct evq_cqe
 * @resv: reserved, zero
 */
struct evq_ring_offsets {
	__u32 head;
	__u32 tail;
	__u32 ring_mask;
	__u32 ring_entries;
	__u32 overflow;
	__u32 flags;
	__u32 cqes;
	__u32 resv;
};

/*
 * Ring flag: the kernel holds events that are not in the ring yet (ready
 * list overflow, level-mode watches to re-check, or watches woken without
 * an event mask, to poll).  Call EVQ_IOC_WAIT, with a zero timeout if you
 * do not want to sleep, to move them in.
 */
#define EVQ_RING_NEED_ENTER	(1U << 0)

/**
 * struct evq_setup - size the completion ring (EVQ_IOC_SETUP, in/out)
 * @cq_entries: in: entries wanted (1..max_cq_entries); out: the power of
 *	two actually allocated
 * @flags: in: must be zero
 * @ring_size: out: bytes to mmap() at offset EVQ_OFF_RING
 * @off: out: field offsets inside the mapping
 * @resv: reserved, zero in and out
 */
struct evq_setup {
	__u32 cq_entries;
	__u32 flags;
	__u64 ring_size;
	struct evq_ring_offsets off;
	__u64 resv[4];
};

/* mmap() offset of the completion ring. */
#define EVQ_OFF_RING		0ULL

/* evq_ctl.op */
#define EVQ_CTL_ADD		1
#define EVQ_CTL_MOD		2
#define EVQ_CTL_DEL		3

/* evq_ctl.flags: the watch's mode.  No flag: level-triggered. */
#define EVQ_WATCH_EDGE		(1U << 0)	/* report transitions only */
#define EVQ_WATCH_ONESHOT	(1U << 1)	/* disarm after one event */
#define EVQ_WATCH_EXCLUSIVE	(1U << 2)	/* ADD only: exclusive waiter on the fd */
#define EVQ_WATCH_MODES		(EVQ_WATCH_EDGE | EVQ_WATCH_ONESHOT | \
				 EVQ_WATCH_EXCLUSIVE)

/**
 * struct evq_ctl - one change in a batch (32 bytes)
 * @op: EVQ_CTL_ADD, EVQ_CTL_MOD or EVQ_CTL_DEL
 * @fd: the watched file descriptor
 * @events: EPOLLIN, EPOLLOUT, EPOLLPRI, EPOLLRDHUP, ... (poll bits);
 *	EPOLLERR and EPOLLHUP are always reported
 * @flags: EVQ_WATCH_* mode bits
 * @user_data: returned in every completion of this watch
 * @res: out: 0 or -errno for this entry alone
 * @resv: reserved, zero
 */
struct evq_ctl {
	__u32 op;
	__s32 fd;
	__u32 events;
	__u32 flags;
	__u64 user_data;
	__s32 res;
	__u32 resv;
};

/**
 * struct evq_ctl_batch - a batch of changes (EVQ_IOC_CTL, in)
 * @entries: user pointer to an array of struct evq_ctl
 * @nr: number of entries (1..max_batch)
 * @flags: must be zero
 */
struct evq_ctl_batch {
	__u64 entries;
	__u32 nr;
	__u32 flags;
};

/* evq_wait.flags */
#define EVQ_WAIT_EXCLUSIVE	(1U << 0)	/* one exclusive waiter woken per post */

/**
 * struct evq_wait - wait for completions (EVQ_IOC_WAIT, in)
 * @timeout_ns: negative: no limit; zero: do not sleep; else nanoseconds
 * @min_events: return as soon as the ring holds at least this many
 *	entries (0..ring_entries)
 * @flags: EVQ_WAIT_* bits
 * @resv: reserved, zero
 */
struct evq_wait {
	__s64 timeout_ns;
	__u32 min_events;
	__u32 flags;
	__u64 resv[2];
};

/* Largest count one EVQ_IOC_SENDFILE accepts: a result must fit in res. */
#define EVQ_SENDFILE_MAX	0x7ffff000U

/* evq_sendfile.flags */
#define EVQ_SF_NOTIFY	(1U << 0)	/* on NOT_RESIDENT, page in and post PAGES_READY */
#define EVQ_SF_ASYNC	(1U << 1)	/* the kernel sends it all, posts EVQ_CQE_SENDFILE */
#define EVQ_SF_MORE	(1U << 2)	/* more data follows the range (MSG_MORE) */
#define EVQ_SF_FLAGS	(EVQ_SF_NOTIFY | EVQ_SF_ASYNC | EVQ_SF_MORE)

/* evq_sendfile.stop: why a synchronous send returned */
#define EVQ_SF_STOP_DONE		1U	/* the range, or the file, ended */
#define EVQ_SF_STOP_SOCK_FULL		2U	/* socket full: wait for EPOLLOUT */
#define EVQ_SF_STOP_NOT_RESIDENT	3U	/* next page not in the page cache */
#define EVQ_SF_STOP_ERROR		4U	/* @error stopped it after @sent bytes */

/**
 * struct evq_sendfile - send part of a file to a socket (EVQ_IOC_SENDFILE)
 * @out_fd: in: a TCP socket, IPv4 or IPv6
 * @in_fd: in: a regular file open for reading
 * @offset: in: first byte of the file to send
 * @count: in: bytes to send, at most EVQ_SENDFILE_MAX
 * @user_data: in: returned in the PAGES_READY or SENDFILE entry
 * @flags: in: EVQ_SF_* bits
 * @stop: out (synchronous form): EVQ_SF_STOP_* reason
 * @error: out (synchronous form): -errno when @stop is EVQ_SF_STOP_ERROR
 * @resv0: reserved, zero
 * @sent: out (synchronous form): bytes sent, also the ioctl's result
 * @resv: reserved, zero
 *
 * Without EVQ_SF_ASYNC the call sends what is in the page cache and never
 * waits for the disk or for socket space.  With EVQ_SF_ASYNC the queue
 * owns the whole range and posts one EVQ_CQE_SENDFILE entry when it is
 * done; the ioctl returns 0 once the operation is started.
 */
struct evq_sendfile {
	__s32 out_fd;
	__s32 in_fd;
	__u64 offset;
	__u64 count;
	__u64 user_data;
	__u32 flags;
	__u32 stop;
	__s32 error;
	__u32 resv0;
	__u64 sent;
	__u64 resv;
};

#define EVQ_IOC_MAGIC		0xE7
#define EVQ_IOC_INFO		_IOR(EVQ_IOC_MAGIC, 0x00, struct evq_info)
#define EVQ_IOC_SETUP		_IOWR(EVQ_IOC_MAGIC, 0x01, struct evq_setup)
#define EVQ_IOC_CTL		_IOW(EVQ_IOC_MAGIC, 0x02, struct evq_ctl_batch)
#define EVQ_IOC_WAIT		_IOW(EVQ_IOC_MAGIC, 0x03, struct evq_wait)
#define EVQ_IOC_SENDFILE	_IOWR(EVQ_IOC_MAGIC, 0x04, struct evq_sendfile)
/* Cancel the operations started with this user_data: returns how many. */
#define EVQ_IOC_CANCEL		_IOW(EVQ_IOC_MAGIC, 0x05, __u64)

/*
 * Statistics over generic netlink: family EVQ_GENL_NAME, version
 * EVQ_GENL_VERSION.  Documentation/evq.rst, "Statistics", has the rules.
 */
#define EVQ_GENL_NAME		"evq"
#define EVQ_GENL_VERSION	1

/**
 * enum evq_genl_cmd - generic netlink commands of the "evq" family
 * @EVQ_CMD_UNSPEC: not a command
 * @EVQ_CMD_GET_STATS: do: one reply with the module's global counters
 *	(every queue since load, closed ones included) and EVQ_A_QUEUES,
 *	EVQ_A_QUEUES_CREATED.  Anyone may ask.
 * @EVQ_CMD_GET_QUEUE: dump: one message per open queue with its
 *	counters.  Queues whose opener had the caller's effective uid; all
 *	of them with CAP_NET_ADMIN.
 * @__EVQ_CMD_MAX: one past the last command
 */
enum evq_genl_cmd {
	EVQ_CMD_UNSPEC,
	EVQ_CMD_GET_STATS,
	EVQ_CMD_GET_QUEUE,
	__EVQ_CMD_MAX,
};
#define EVQ_CMD_MAX		(__EVQ_CMD_MAX - 1)

/**
 * enum evq_genl_attr - attributes of the "evq" family's replies
 * @EVQ_A_UNSPEC: not an attribute
 * @EVQ_A_PAD: padding for 64-bit attributes
 * @EVQ_A_QUEUE_ID: u32, the queue's id, unique while it is open
 * @EVQ_A_OWNER_PID: u32, the opener's process id in the reader's pid
 *	namespace, 0 when not visible there
 * @EVQ_A_OWNER_UID: u32, the opener's effective uid
 * @EVQ_A_RING_ENTRIES: u32, the ring's size, 0 before EVQ_IOC_SETUP
 * @EVQ_A_WATCHES: u32, watches now
 * @EVQ_A_OPS: u32, operations in flight now
 * @EVQ_A_POSTED: u64, entries written to the ring
 * @EVQ_A_HARVESTED: u64, of those, entries userspace has consumed
 * @EVQ_A_OVERFLOWS: u64, completions that found the ring full and waited
 *	on the ready list
 * @EVQ_A_WAITS: u64, EVQ_IOC_WAIT calls
 * @EVQ_A_WAITS_SLEPT: u64, of those, calls that slept
 * @EVQ_A_CTL_CALLS: u64, EVQ_IOC_CTL calls
 * @EVQ_A_CTL_CHANGES: u64, changes they applied (entries whose res was 0)
 * @EVQ_A_SF_CALLS: u64, EVQ_IOC_SENDFILE calls that started a send
 * @EVQ_A_SF_BYTES: u64, bytes sendfile handed to sockets
 * @EVQ_A_SF_NOT_RESIDENT: u64, sends that stopped at a page not in memory
 * @EVQ_A_PAGEINS: u64, page-in windows read to the end
 * @EVQ_A_PAGEIN_NS: u64, their total latency, nanoseconds
 * @EVQ_A_PAGEIN_MAX_NS: u64, the longest of them, nanoseconds
 * @EVQ_A_QUEUES: u32, global: queues open now
 * @EVQ_A_QUEUES_CREATED: u64, global: queues opened since load
 * @__EVQ_A_MAX: one past the last attribute
 */
enum evq_genl_attr {
	EVQ_A_UNSPEC,
	EVQ_A_PAD,
	EVQ_A_QUEUE_ID,
	EVQ_A_OWNER_PID,
	EVQ_A_OWNER_UID,
	EVQ_A_RING_ENTRIES,
	EVQ_A_WATCHES,
	EVQ_A_OPS,
	EVQ_A_POSTED,
	EVQ_A_HARVESTED,
	EVQ_A_OVERFLOWS,
	EVQ_A_WAITS,
	EVQ_A_WAITS_SLEPT,
	EVQ_A_CTL_CALLS,
	EVQ_A_CTL_CHANGES,
	EVQ_A_SF_CALLS,
	EVQ_A_SF_BYTES,
	EVQ_A_SF_NOT_RESIDENT,
	EVQ_A_PAGEINS,
	EVQ_A_PAGEIN_NS,
	EVQ_A_PAGEIN_MAX_NS,
	EVQ_A_QUEUES,
	EVQ_A_QUEUES_CREATED,
	__EVQ_A_MAX,
};
#define EVQ_A_MAX		(__EVQ_A_MAX - 1)

#endif /* _UAPI_LINUX_EVQ_H */
