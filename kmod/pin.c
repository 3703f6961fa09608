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
 *
 * A UNIX socket held also by messages in flight has more references than
 * watches; kmod/inflight.c finds those that nothing can reach any more
 * and marks their pins dead, which the reaper takes as alone.
 */

#include <linux/fs.h>
#include <linux/hash.h>
#include <linux/list_bl.h>
#include <linux/slab.h>
#include <net/sock.h>
#include "queue.h"

#define EVQ_PIN_BITS	12

/**
 * struct evq_pin - the watches holding one file
 * @node: link in its bucket of evq_pins
 * @file: the file (the watches hold it; the pin itself holds nothing)
 * @count: watches holding @file, changed under the bucket lock
 * @unix_sock: @file is a UNIX socket, which messages in flight can hold
 * @dead: only messages nothing can receive hold @file besides watches
 */
struct evq_pin {
	struct hlist_bl_node node;
	struct file *file;
	long count;
	bool unix_sock;
	bool dead;
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
			p->unix_sock = !!evq_unix_sock(file);
			p->dead = false;
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

	/* Set under the bucket lock, never cleared: no lock needed. */
	if (READ_ONCE(p->dead))
		return true;
	/* Most files are open: skip the lock when the counts differ anyway. */
	if (file_count(p->file) != READ_ONCE(p->count))
		return false;
	hlist_bl_lock(b);
	alone = file_count(p->file) == p->count;
	hlist_bl_unlock(b);
	return alone;
}

/*
 * A UNIX socket in flight with references besides watches: its fds may
 * all be closed, leaving it to messages nobody can receive.
 */
static bool evq_pin_suspect(struct evq_pin *p)
{
	return p->unix_sock && !READ_ONCE(p->dead) &&
	       file_count(p->file) != READ_ONCE(p->count) &&
	       evq_unix_in_flight(evq_unix_sock(p->file));
}

/**
 * evq_pin_check() - hand a pin that may be unreachable to kmod/inflight.c
 * @p: the pin of a watch the caller keeps from going away
 *
 * The reaper calls this for each watch that is not alone: cheap for all
 * but UNIX sockets in flight, which schedule a pass over the pins.
 */
void evq_pin_check(struct evq_pin *p)
{
	if (evq_pin_suspect(p))
		evq_inflight_schedule();
}

/**
 * evq_pin_suspects() - take the files of suspect pins
 * @files: filled with the files, each with a reference the caller drops
 * @max: room in @files
 *
 * Return: how many were taken.
 */
unsigned int evq_pin_suspects(struct file **files, unsigned int max)
{
	struct hlist_bl_node *n;
	struct evq_pin *p;
	unsigned int i, nr = 0;

	for (i = 0; nr < max && i < ARRAY_SIZE(evq_pins); i++) {
		if (hlist_bl_empty(&evq_pins[i]))
			continue;
		hlist_bl_lock(&evq_pins[i]);
		hlist_bl_for_each_entry(p, n, &evq_pins[i], node) {
			if (nr == max)
				break;
			if (evq_pin_suspect(p))
				files[nr++] = get_file(p->file);
		}
		hlist_bl_unlock(&evq_pins[i]);
		cond_resched();
	}
	return nr;
}

/**
 * evq_pin_only() - do watches and @more others hold all of @file?
 * @file: a file the caller holds (one of the @more references)
 * @more: references the caller accounted for besides watches
 *
 * Return: true when file_count() is the watches' count plus @more, read
 * under the bucket lock, where the watches' count cannot change.
 */
bool evq_pin_only(struct file *file, long more)
{
	struct hlist_bl_head *b = evq_pin_bucket(file);
	struct evq_pin *p;
	bool only;

	hlist_bl_lock(b);
	p = evq_pin_find(b, file);
	only = file_count(file) == (p ? p->count : 0) + more;
	hlist_bl_unlock(b);
	return only;
}

/**
 * evq_pin_kill() - let the reaper drop every watch of @file
 * @file: a file only watches and unreachable messages hold
 *
 * Return: true when @file had watches.
 */
bool evq_pin_kill(struct file *file)
{
	struct hlist_bl_head *b = evq_pin_bucket(file);
	struct evq_pin *p;

	hlist_bl_lock(b);
	p = evq_pin_find(b, file);
	if (p)
		WRITE_ONCE(p->dead, true);
	hlist_bl_unlock(b);
	return p;
}

/**
 * evq_pin_dead() - was the pin's file found unreachable?
 * @p: the pin of a watch the caller keeps from going away
 *
 * Return: true after evq_pin_kill() on its file.
 */
bool evq_pin_dead(struct evq_pin *p)
{
	return READ_ONCE(p->dead);
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
