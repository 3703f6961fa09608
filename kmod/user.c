// SPDX-License-Identifier: GPL-2.0
/*
 * Per-user watch accounting: max_user_watches over all of a user's
 * queues, as epoll's max_user_watches does.  The module cannot add a
 * field to struct user_struct, so users live in a small hash by uid.
 */

#include <linux/hashtable.h>
#include <linux/slab.h>
#include <linux/refcount.h>
#include <linux/uidgid.h>
#include "queue.h"

struct evq_user {
	struct hlist_node node;
	kuid_t uid;
	refcount_t ref;
	atomic_t watches;
};

static DEFINE_HASHTABLE(evq_users, 6);
static DEFINE_SPINLOCK(evq_users_lock);

struct evq_user *evq_user_get(kuid_t uid)
{
	struct evq_user *u, *nu;
	u32 key = from_kuid(&init_user_ns, uid);

	nu = kzalloc(sizeof(*nu), EVQ_GFP);
	spin_lock(&evq_users_lock);
	hash_for_each_possible(evq_users, u, node, key) {
		if (uid_eq(u->uid, uid)) {
			refcount_inc(&u->ref);
			spin_unlock(&evq_users_lock);
			kfree(nu);
			return u;
		}
	}
	if (nu) {
		nu->uid = uid;
		refcount_set(&nu->ref, 1);
		hash_add(evq_users, &nu->node, key);
	}
	spin_unlock(&evq_users_lock);
	return nu;
}

void evq_user_put(struct evq_user *u)
{
	if (!refcount_dec_and_lock(&u->ref, &evq_users_lock))
		return;
	hash_del(&u->node);
	spin_unlock(&evq_users_lock);
	kfree(u);
}

bool evq_user_charge(struct evq_user *u)
{
	if (atomic_inc_return(&u->watches) > READ_ONCE(evq_max_user_watches)) {
		atomic_dec(&u->watches);
		return false;
	}
	return true;
}

void evq_user_uncharge(struct evq_user *u)
{
	atomic_dec(&u->watches);
}
