// SPDX-License-Identifier: GPL-2.0
/*
 * How many watches, over every queue, hold each watched file.
 *
 * A watch holds a reference to its file, since a module cannot hook the
 * final fput() as epoll does, and the reaper drops a watch once nobody
 * else holds the file.  Comparing file_count() with 1 misses a file that
 * several watches hold: two fds of one queue naming it (dup()), or two
 * queues.  Such a file then lives as long as its queues; and when it is a
 * UNIX socket with a queue's own fd in flight in it (SCM_RIGHTS, never
 * received), the queue lives as long as the file, so neither is ever
 * freed, and the UNIX garbage collector cannot see the cycle through the
 * queue.  So each watched file has a pin counting the watches that hold
 * it, and the reaper compares the file's count with the pin's.
 *
 * Pins sit in a hash table keyed by the file, one bit lock per bucket.
 * A pin is counted up only after its watch took the file and down before
 * the watch lets it go, so the count never exceeds the watches' real
 * references: read under the bucket lock, where it cannot change, a count
 * equal to file_count() means no other reference existed at that moment,
 * and none can appear, since nothing else reaches the file.
 */

#include <linux/fs.h>
#include <linux/hash.h>
#include <linux/list_bl.h>
#include <linux/slab.h>
#include "queue.h"

#define EVQ_PIN_BITS	12

/**
 * struct evq_pin - the watches holding one file
 * @node: link in its bucket of evq_pins
 * @file: the file (the watches hold it; the pin itself holds nothing)
 * @count: watches holding @file, changed under the bucket lock
 */
struct evq_pin {
	struct hlist_bl_node node;
	struct file *file;
	long count;
};

static struct hlist_bl_head evq_pins[1 << EVQ_PIN_BITS];
static struct kmem_cache *evq_pin_cache;

static struct hlist_bl_head *evq_pin_bucket(struct file *file)
{
	return &evq_pins[hash_ptr(file, EVQ_PIN_BITS)];
}

static struct evq_pin *evq_pin_find(struct hlist_bl_head *b,
				    struct file *file)
{
	struct hlist_bl_node *n;
	struct evq_pin *p;

	hlist_bl_for_each_entry(p, n, b, node)
		if (p->file == file)
			return p;
	return NULL;
}

/**
 * evq_pin_get() - count one more watch holding @file
 * @file: the file, which the caller already holds a reference to
 *
 * Return: the file's pin, for evq_pin_put() and evq_pin_alone(), or NULL
 * when no memory could be had for a first one.
 */
struct evq_pin *evq_pin_get(struct file *file)
{
	struct hlist_bl_head *b = evq_pin_bucket(file);
	struct evq_pin *p, *new = NULL;

	for (;;) {
		hlist_bl_lock(b);
		p = evq_pin_find(b, file);
		if (p) {
			WRITE_ONCE(p->count, p->count + 1);
		} else if (new) {
			p = new;
			new = NULL;
			p->file = file;
			p->count = 1;
			hlist_bl_add_head(&p->node, b);
		}
		hlist_bl_unlock(b);
		if (p)
			break;
		/* Allocate outside the bit lock, then look again. */
		new = kmem_cache_alloc(evq_pin_cache, EVQ_GFP);
		if (!new)
			return NULL;
	}
	if (new)
		kmem_cache_free(evq_pin_cache, new);
	return p;
}

/**
 * evq_pin_put() - count one watch fewer on the pin's file
 * @p: the pin from evq_pin_get()
 *
 * Call before the watch's fput(), never after.
 */
void evq_pin_put(struct evq_pin *p)
{
	struct hlist_bl_head *b = evq_pin_bucket(p->file);
	bool last;

	hlist_bl_lock(b);
	WRITE_ONCE(p->count, p->count - 1);
	last = !p->count;
	if (last)
		hlist_bl_del(&p->node);
	hlist_bl_unlock(b);
	if (last)
		kmem_cache_free(evq_pin_cache, p);
}

/**
 * evq_pin_alone() - do the watches hold the only references to the file?
 * @p: the pin of a watch the caller keeps from going away
 *
 * Return: true when no fd, mapping, message in flight or operation holds
 * the file, only watches: its fds were all closed.
 */
bool evq_pin_alone(struct evq_pin *p)
{
	struct hlist_bl_head *b = evq_pin_bucket(p->file);
	bool alone;

	/* Most files are open: skip the lock when the counts differ anyway. */
	if (file_count(p->file) != READ_ONCE(p->count))
		return false;
	hlist_bl_lock(b);
	alone = file_count(p->file) == p->count;
	hlist_bl_unlock(b);
	return alone;
}

int evq_pin_init(void)
{
	evq_pin_cache = KMEM_CACHE(evq_pin, SLAB_ACCOUNT);
	return evq_pin_cache ? 0 : -ENOMEM;
}

void evq_pin_exit(void)
{
	kmem_cache_destroy(evq_pin_cache);
}
