// SPDX-License-Identifier: GPL-2.0
/*
 * The completion ring: pages charged to the caller's memory cgroup,
 * mapped into the kernel with vmap() and into userspace with
 * vm_insert_pages().  The kernel is the only producer and userspace the
 * only consumer; the consumer's head is read but never trusted.
 */

#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/uaccess.h>
#include <linux/log2.h>
#include "queue.h"
#include "evq_trace.h"

void evq_ring_free(struct evq_ring *ring)
{
	unsigned int i;

	if (ring->vaddr)
		vunmap(ring->vaddr);
	if (ring->pages) {
		for (i = 0; i < ring->nr_pages; i++)
			if (ring->pages[i])
				__free_page(ring->pages[i]);
		kvfree(ring->pages);
	}
	memset(ring, 0, sizeof(*ring));
}

static int evq_ring_alloc(struct evq_ring *ring, u32 entries)
{
	size_t size = EVQ_RING_HDR_CQES + (size_t)entries * sizeof(struct evq_cqe);
	unsigned int i;

	ring->nr_pages = PAGE_ALIGN(size) >> PAGE_SHIFT;
	ring->pages = kvcalloc(ring->nr_pages, sizeof(*ring->pages), EVQ_GFP);
	if (!ring->pages)
		return -ENOMEM;
	for (i = 0; i < ring->nr_pages; i++) {
		ring->pages[i] = alloc_page(EVQ_GFP | __GFP_ZERO);
		if (!ring->pages[i])
			return -ENOMEM;
	}
	ring->vaddr = vmap(ring->pages, ring->nr_pages, VM_MAP, PAGE_KERNEL);
	if (!ring->vaddr)
		return -ENOMEM;

	ring->head = ring->vaddr + EVQ_RING_HDR_HEAD;
	ring->tail = ring->vaddr + EVQ_RING_HDR_TAIL;
	ring->overflow = ring->vaddr + EVQ_RING_HDR_OVERFLOW;
	ring->flags = ring->vaddr + EVQ_RING_HDR_FLAGS;
	ring->cqes = ring->vaddr + EVQ_RING_HDR_CQES;
	ring->entries = entries;
	ring->mask = entries - 1;
	*(u32 *)(ring->vaddr + EVQ_RING_HDR_MASK) = ring->mask;
	*(u32 *)(ring->vaddr + EVQ_RING_HDR_ENTRIES) = entries;
	return 0;
}

int evq_ring_setup(struct evq_queue *q, struct evq_setup __user *arg)
{
	struct evq_setup s;
	struct evq_ring ring = {};
	unsigned int i;
	int ret;

	if (copy_from_user(&s, arg, sizeof(s)))
		return -EFAULT;
	if (s.flags || memchr_inv(&s.off, 0, sizeof(s.off)) || s.ring_size)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(s.resv); i++)
		if (s.resv[i])
			return -EINVAL;
	if (!s.cq_entries || s.cq_entries > evq_max_cq_entries ||
	    s.cq_entries > (1U << 31))
		return -EINVAL;

	mutex_lock(&q->mtx);
	ret = -EBUSY;
	if (q->ready)
		goto out_unlock;
	ret = evq_ring_alloc(&ring, roundup_pow_of_two(s.cq_entries));
	if (ret)
		goto out_free;

	s.cq_entries = ring.entries;
	s.ring_size = (u64)ring.nr_pages << PAGE_SHIFT;
	s.off.head = EVQ_RING_HDR_HEAD;
	s.off.tail = EVQ_RING_HDR_TAIL;
	s.off.ring_mask = EVQ_RING_HDR_MASK;
	s.off.ring_entries = EVQ_RING_HDR_ENTRIES;
	s.off.overflow = EVQ_RING_HDR_OVERFLOW;
	s.off.flags = EVQ_RING_HDR_FLAGS;
	s.off.cqes = EVQ_RING_HDR_CQES;
	ret = -EFAULT;
	if (copy_to_user(arg, &s, sizeof(s)))
		goto out_free;

	q->ring = ring;
	/* Pairs with the acquire in mmap and poll, which run without mtx. */
	smp_store_release(&q->ready, true);
	mutex_unlock(&q->mtx);
	return 0;

out_free:
	evq_ring_free(&ring);
out_unlock:
	mutex_unlock(&q->mtx);
	return ret;
}

int evq_ring_mmap(struct evq_queue *q, struct vm_area_struct *vma)
{
	unsigned long n = vma_pages(vma);

	/* Pairs with the release in evq_ring_setup(). */
	if (!smp_load_acquire(&q->ready))
		return -EBADFD;
	if (vma->vm_pgoff != (EVQ_OFF_RING >> PAGE_SHIFT))
		return -EINVAL;
	/* A private copy of head would never reach the kernel. */
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (n > q->ring.nr_pages)
		return -EINVAL;
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
	return vm_insert_pages(vma, vma->vm_start, q->ring.pages, &n);
}

/* The consumer index, never trusted. */
static u32 evq_ring_head(struct evq_queue *q)
{
	/* Userspace read the entries before releasing head: slots are free. */
	return smp_load_acquire(q->ring.head);
}

/* Entries userspace has not consumed; a head that makes no sense reads as full. */
u32 evq_ring_count(struct evq_queue *q)
{
	u32 used = READ_ONCE(q->tail) - evq_ring_head(q);

	return min(used, q->ring.entries);
}

/* Called with q->lock held. */
bool evq_ring_room(struct evq_queue *q)
{
	return q->tail - evq_ring_head(q) < q->ring.entries;
}

/*
 * Has userspace moved head past the entry at @seq?  Only a head within
 * the ring says no: with any other, the entry may be gone, so an event
 * must not be merged into it.
 */
bool evq_ring_consumed(struct evq_queue *q, u32 seq)
{
	u32 head = evq_ring_head(q);
	u32 used = q->tail - head;

	return used > q->ring.entries || seq - head >= used;
}

/* Called with q->lock held and room in the ring. */
void evq_ring_write(struct evq_queue *q, u64 user_data, s32 res, u32 flags)
{
	struct evq_cqe *cqe = &q->ring.cqes[q->tail & q->ring.mask];

	trace_evq_post(q->id, user_data, res, flags, q->tail);
	cqe->user_data = user_data;
	cqe->res = res;
	cqe->flags = flags;
	q->tail++;
	q->stats.posted++;
	/* Entry contents before the index that publishes them. */
	smp_store_release(q->ring.tail, q->tail);
}

/*
 * A completion for @user_data found the ring full and waits on a list:
 * count it where userspace sees it, and set NEED_ENTER.  q->lock held.
 */
void evq_ring_overflow(struct evq_queue *q, u64 user_data)
{
	trace_evq_overflow(q->id, user_data);
	q->stats.overflows++;
	WRITE_ONCE(*q->ring.overflow, (u32)q->stats.overflows);
	evq_queue_update_flags(q);
}
