// SPDX-License-Identifier: GPL-2.0
/*
 * Watched UNIX sockets that only messages nobody can receive still hold.
 *
 * The reaper drops a watch once watches hold the only references to its
 * file (kmod/pin.c).  A UNIX socket may also be held by SCM_RIGHTS
 * messages in flight, in its own receive queue or another socket's.
 * With its fds closed it can then be reached only by receiving from a
 * socket that holds it; when those are unreachable too, nothing ever
 * will.  The kernel's collector frees such cycles, but a watch's
 * reference is not in flight, so to the collector it is one from outside
 * and the cycle stays; with a queue's own fd in flight in it, the queue
 * stays as well.
 *
 * This pass finds those sockets.  It starts from the watched UNIX sockets
 * that are in flight and have references besides watches, and follows
 * the messages in their receive queues to the sockets those carry,
 * taking each socket's iolock: every path that takes fds off a message
 * for an fd table holds it, so while the pass holds them no reference in
 * those queues can become an fd.  A socket whose count is its watches
 * plus the references found in those queues has no other: unless a
 * socket with others reaches it through them, nothing can reach it again,
 * and the reaper drops its watches as if its last fd had been closed.
 * What is left is held only in flight, and the kernel's collector frees
 * it the next time it runs, which releasing any UNIX socket starts.
 *
 * Anything not looked at counts as a reference from outside: a socket
 * beyond the first EVQ_INFLIGHT_MAX, one whose iolock is busy, a message
 * on its way.  That may keep an unreachable socket until a later pass;
 * it never drops the watch of one that can still be reached.
 */

#include <linux/bitops.h>
#include <linux/file.h>
#include <linux/workqueue.h>
#include <net/af_unix.h>
#include <net/scm.h>
#include "queue.h"

#define EVQ_INFLIGHT_MAX	32

/**
 * struct evq_inflight_node - one UNIX socket the pass looks at
 * @file: the socket's file, held by the pass
 * @u: the socket
 * @inq: references to @file in the queues of locked nodes
 * @edges: bit j set when this node's queue holds node j
 * @locked: the pass holds @u->iolock
 * @live: referenced from outside the nodes' queues and watches
 */
struct evq_inflight_node {
	struct file *file;
	struct unix_sock *u;
	long inq;
	u32 edges;
	bool locked;
	bool live;
};

/* Only evq_inflight_work() uses these, and a work item never runs twice at once. */
static struct evq_inflight_node evq_inflight_nodes[EVQ_INFLIGHT_MAX];
static unsigned int evq_inflight_n;

/* Make a UNIX socket's file, held by the caller, the next node. */
static void evq_inflight_add(struct file *file)
{
	evq_inflight_nodes[evq_inflight_n++] = (struct evq_inflight_node){
		.file = file,
		.u = evq_unix_sock(file),
	};
}

/* The node of @file, added if it is a UNIX socket and there is room; or -1. */
static int evq_inflight_node(struct file *file)
{
	unsigned int i;

	for (i = 0; i < evq_inflight_n; i++)
		if (evq_inflight_nodes[i].file == file)
			return i;
	if (!evq_unix_sock(file) || evq_inflight_n == EVQ_INFLIGHT_MAX)
		return -1;
	evq_inflight_add(get_file(file));
	return i;
}

/* Lock node @i against receives and count what its queue holds. */
static void evq_inflight_scan(unsigned int i)
{
	struct evq_inflight_node *v = &evq_inflight_nodes[i];
	struct sk_buff_head *queue = &v->u->sk.sk_receive_queue;
	struct sk_buff *skb;

	/* A receive under way may be taking fds: the socket counts as live. */
	if (!mutex_trylock(&v->u->iolock)) {
		v->live = true;
		return;
	}
	v->locked = true;
	spin_lock(&queue->lock);
	skb_queue_walk(queue, skb) {
		struct scm_fp_list *fpl = UNIXCB(skb).fp;
		int k, j;

		for (k = 0; fpl && k < fpl->count; k++) {
			j = evq_inflight_node(fpl->fp[k]);
			if (j < 0)
				continue;
			evq_inflight_nodes[j].inq++;
			v->edges |= BIT(j);
		}
	}
	spin_unlock(&queue->lock);
}

/* Mark the pins of unreachable watched UNIX sockets dead. */
static void evq_inflight_work(struct work_struct *work)
{
	struct file *start[EVQ_INFLIGHT_MAX];
	u32 live = 0, todo = 0;
	unsigned int i, n, dead = 0;

	evq_inflight_n = 0;
	n = evq_pin_suspects(start, EVQ_INFLIGHT_MAX);
	for (i = 0; i < n; i++)
		evq_inflight_add(start[i]);
	/* Nodes found while scanning are appended, and scanned in turn. */
	for (i = 0; i < evq_inflight_n; i++)
		evq_inflight_scan(i);
	/* The pass's own reference is one more besides the watches. */
	for (i = 0; i < evq_inflight_n; i++) {
		struct evq_inflight_node *v = &evq_inflight_nodes[i];

		if (v->live || !evq_pin_only(v->file, v->inq + 1))
			todo |= BIT(i);
	}
	while (todo) {
		i = __ffs(todo);
		todo &= ~BIT(i);
		live |= BIT(i);
		todo |= evq_inflight_nodes[i].edges & ~live;
	}
	for (i = 0; i < evq_inflight_n; i++)
		if (!(live & BIT(i)) && evq_pin_kill(evq_inflight_nodes[i].file))
			dead++;
	for (i = evq_inflight_n; i-- > 0;) {
		struct evq_inflight_node *v = &evq_inflight_nodes[i];

		if (v->locked)
			mutex_unlock(&v->u->iolock);
		fput(v->file);
	}
	if (dead)
		pr_debug("%u watched UNIX sockets held only in flight\n", dead);
}

static DECLARE_DELAYED_WORK(evq_inflight_dwork, evq_inflight_work);

/* Releasing a UNIX socket runs the kernel's collector if anything is in flight. */
static void evq_unix_gc_work(struct work_struct *work)
{
	struct socket *sock;

	if (!sock_create_kern(&init_net, AF_UNIX, SOCK_DGRAM, 0, &sock))
		sock_release(sock);
}

static DECLARE_WORK(evq_unix_gc_kick, evq_unix_gc_work);

/**
 * evq_inflight_schedule() - look for unreachable sockets after a while
 *
 * Called by the reaper when a watched UNIX socket is in flight; passes
 * are at most one per reap interval.
 */
void evq_inflight_schedule(void)
{
	if (!delayed_work_pending(&evq_inflight_dwork))
		schedule_delayed_work(&evq_inflight_dwork,
				      msecs_to_jiffies(max(READ_ONCE(evq_reap_interval_ms), 10U)));
}

/**
 * evq_inflight_dropped() - a watch of a dead pin's file was dropped
 *
 * Once the last goes, only messages in flight hold the socket: run the
 * kernel's collector so that it frees them.
 */
void evq_inflight_dropped(void)
{
	schedule_work(&evq_unix_gc_kick);
}

void evq_inflight_exit(void)
{
	cancel_delayed_work_sync(&evq_inflight_dwork);
	cancel_work_sync(&evq_unix_gc_kick);
}
