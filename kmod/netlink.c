// SPDX-License-Identifier: GPL-2.0
/*
 * The "evq" generic netlink family: the module's counters, global and per
 * queue, for tools/evqstat and anyone with libnl.  Requests carry no
 * attributes (with no policy, and resv_start_op left at zero, the core
 * rejects any); replies are described in uapi/linux/evq.h.
 *
 * Small ops only, the same on 6.1 and on kernels with split ops.
 */

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/pid_namespace.h>
#include <net/genetlink.h>
#include "queue.h"

static struct genl_family evq_genl_family;

static int evq_nl_put_counters(struct sk_buff *skb,
			       const struct evq_counters *c)
{
	static const struct {
		u16 attr;
		size_t off;
	} map[] = {
		{ EVQ_A_POSTED, offsetof(struct evq_counters, posted) },
		{ EVQ_A_HARVESTED, offsetof(struct evq_counters, harvested) },
		{ EVQ_A_OVERFLOWS, offsetof(struct evq_counters, overflows) },
		{ EVQ_A_WAITS, offsetof(struct evq_counters, waits) },
		{ EVQ_A_WAITS_SLEPT, offsetof(struct evq_counters, waits_slept) },
		{ EVQ_A_CTL_CALLS, offsetof(struct evq_counters, ctl_calls) },
		{ EVQ_A_CTL_CHANGES, offsetof(struct evq_counters, ctl_changes) },
		{ EVQ_A_SF_CALLS, offsetof(struct evq_counters, sf_calls) },
		{ EVQ_A_SF_BYTES, offsetof(struct evq_counters, sf_bytes) },
		{ EVQ_A_SF_NOT_RESIDENT,
		  offsetof(struct evq_counters, sf_not_resident) },
		{ EVQ_A_PAGEINS, offsetof(struct evq_counters, pageins) },
		{ EVQ_A_PAGEIN_NS, offsetof(struct evq_counters, pagein_ns) },
		{ EVQ_A_PAGEIN_MAX_NS,
		  offsetof(struct evq_counters, pagein_max_ns) },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(map); i++) {
		const u64 *v = (const void *)c + map[i].off;

		if (nla_put_u64_64bit(skb, map[i].attr, *v, EVQ_A_PAD))
			return -EMSGSIZE;
	}
	return 0;
}

static int evq_nl_get_stats(struct sk_buff *skb, struct genl_info *info)
{
	struct evq_counters sum;
	struct sk_buff *msg;
	u64 created;
	void *hdr;
	u32 open;

	msg = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &evq_genl_family, 0,
				EVQ_CMD_GET_STATS);
	if (!hdr)
		goto too_big;
	evq_global_counters(&sum, &open, &created);
	if (nla_put_u32(msg, EVQ_A_QUEUES, open) ||
	    nla_put_u64_64bit(msg, EVQ_A_QUEUES_CREATED, created, EVQ_A_PAD) ||
	    evq_nl_put_counters(msg, &sum))
		goto too_big;
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);

too_big:
	nlmsg_free(msg);
	return -EMSGSIZE;
}

/* One queue's message.  Called under xa_lock(evq_queues): nothing sleeps. */
static int evq_nl_fill_queue(struct sk_buff *skb, struct netlink_callback *cb,
			     struct evq_queue *q)
{
	struct user_namespace *ns = current_user_ns();
	struct evq_counters c;
	u32 entries = 0;
	void *hdr;

	/* Pairs with the release in evq_ring_setup(). */
	if (smp_load_acquire(&q->ready))
		entries = q->ring.entries;
	hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			  &evq_genl_family, NLM_F_MULTI, EVQ_CMD_GET_QUEUE);
	if (!hdr)
		return -EMSGSIZE;
	evq_queue_counters(q, &c);
	if (nla_put_u32(skb, EVQ_A_QUEUE_ID, q->id) ||
	    nla_put_u32(skb, EVQ_A_OWNER_PID,
			pid_nr_ns(q->owner_pid, task_active_pid_ns(current))) ||
	    nla_put_u32(skb, EVQ_A_OWNER_UID,
			from_kuid_munged(ns, q->owner_uid)) ||
	    nla_put_u32(skb, EVQ_A_RING_ENTRIES, entries) ||
	    nla_put_u32(skb, EVQ_A_WATCHES, READ_ONCE(q->nr_watches)) ||
	    nla_put_u32(skb, EVQ_A_OPS, atomic_read(&q->nr_ops)) ||
	    evq_nl_put_counters(skb, &c)) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

/*
 * Dump the queues in id order; cb->args[0] is the next id to look at.
 * Without CAP_NET_ADMIN (over the netlink socket's opener), only the
 * queues opened with the reader's effective uid.
 */
static int evq_nl_dump_queues(struct sk_buff *skb, struct netlink_callback *cb)
{
	bool all = netlink_capable(cb->skb, CAP_NET_ADMIN);
	kuid_t uid = current_euid();
	unsigned long id = cb->args[0];
	struct evq_queue *q;
	int err = 0;

	xa_lock(&evq_queues);
	xa_for_each_start(&evq_queues, id, q, cb->args[0]) {
		if (!all && !uid_eq(q->owner_uid, uid))
			continue;
		err = evq_nl_fill_queue(skb, cb, q);
		if (err)
			break;
	}
	xa_unlock(&evq_queues);
	/* Resume at the queue that did not fit, or past the last one. */
	cb->args[0] = err ? id : ULONG_MAX;
	if (err && !skb->len)
		return err;	/* not even one queue fits a message */
	return skb->len;
}

static const struct genl_small_ops evq_nl_ops[] = {
	{
		.cmd = EVQ_CMD_GET_STATS,
		.doit = evq_nl_get_stats,
	},
	{
		.cmd = EVQ_CMD_GET_QUEUE,
		.dumpit = evq_nl_dump_queues,
	},
};

static struct genl_family evq_genl_family __ro_after_init = {
	.name = EVQ_GENL_NAME,
	.version = EVQ_GENL_VERSION,
	.netnsok = true,
	.module = THIS_MODULE,
	.small_ops = evq_nl_ops,
	.n_small_ops = ARRAY_SIZE(evq_nl_ops),
};

int __init evq_netlink_init(void)
{
	return genl_register_family(&evq_genl_family);
}

void evq_netlink_exit(void)
{
	genl_unregister_family(&evq_genl_family);
}
