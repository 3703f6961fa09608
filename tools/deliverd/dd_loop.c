// SPDX-License-Identifier: GPL-2.0
/*
 * The event-loop threads: one per CPU, pinned, each with its own libevq
 * queue, mailbox and timer heap.  A worker sleeps only in evq_wait(), and
 * only when its ring is empty, its mailbox drained and no timer is due.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dd_core.h"
#include "dd_dns.h"
#include "dd_log.h"

#define DD_HARVEST	256
#define DD_RING		8192

struct dd_daemon dd_d;

struct dd_worker *dd_worker_of(const char *domain)
{
	return &dd_d.w[dd_hash_name(domain, DD_HASH_SEED) % dd_d.nworkers];
}

int dd_worker_watch(struct dd_worker *w, struct dd_io *io, uint32_t events)
{
	return evq_add(&w->q, io->fd, events, EVQ_WATCH_EDGE,
		       (uint64_t)(uintptr_t)io);
}

int dd_worker_unwatch(struct dd_worker *w, struct dd_io *io)
{
	return evq_del(&w->q, io->fd);
}

void dd_post(struct dd_worker *w, struct dd_mail *m)
{
	bool was_empty;
	uint64_t one = 1;

	m->next = NULL;
	pthread_mutex_lock(&w->mbox_lock);
	was_empty = !w->mbox_head;
	*w->mbox_tail = m;
	w->mbox_tail = &m->next;
	pthread_mutex_unlock(&w->mbox_lock);
	/* Only the first mail since the owner last emptied the box wakes it. */
	if (was_empty && write(w->mbox_io.fd, &one, sizeof(one)) < 0)
		dd_err("mailbox of %s: %s", w->name, strerror(errno));
}

void dd_dispatch(struct dd_msg *msg)
{
	unsigned int i, j, n = 0;
	struct dd_worker *seen[64];

	for (i = 0; i < msg->nrcpt; i++) {
		struct dd_worker *w;
		struct dd_mail *m;

		if (dd_rcpt_final(msg->rcpt[i].state))
			continue;
		w = dd_worker_of(msg->rcpt[i].domain);
		for (j = 0; j < n; j++)
			if (seen[j] == w)
				break;
		if (j < n)
			continue;
		if (n < 64)
			seen[n++] = w;
		else {
			/* More workers than we track: scan what was posted. */
			for (j = 0; j < i; j++)
				if (!dd_rcpt_final(msg->rcpt[j].state) &&
				    dd_worker_of(msg->rcpt[j].domain) == w)
					break;
			if (j < i)
				continue;
		}
		m = calloc(1, sizeof(*m));
		if (!m) {
			dd_err("dispatch " DD_QID_FMT ": out of memory",
			       DD_QID(msg));
			continue;
		}
		m->type = DD_MAIL_MSG;
		m->msg = msg;
		dd_post(w, m);
	}
}

/* Timers: a binary min-heap of pointers; slot is the index + 1. */
static void heap_swap(struct dd_worker *w, unsigned int a, unsigned int b)
{
	struct dd_timer *t = w->heap[a];

	w->heap[a] = w->heap[b];
	w->heap[b] = t;
	w->heap[a]->slot = a + 1;
	w->heap[b]->slot = b + 1;
}

static void heap_up(struct dd_worker *w, unsigned int i)
{
	while (i > 0) {
		unsigned int p = (i - 1) / 2;

		if (w->heap[p]->when <= w->heap[i]->when)
			break;
		heap_swap(w, i, p);
		i = p;
	}
}

static void heap_down(struct dd_worker *w, unsigned int i)
{
	for (;;) {
		unsigned int l = 2 * i + 1, r = l + 1, m = i;

		if (l < w->nheap && w->heap[l]->when < w->heap[m]->when)
			m = l;
		if (r < w->nheap && w->heap[r]->when < w->heap[m]->when)
			m = r;
		if (m == i)
			break;
		heap_swap(w, i, m);
		i = m;
	}
}

void dd_timer_del(struct dd_worker *w, struct dd_timer *t)
{
	unsigned int i;

	if (!t->slot)
		return;
	i = t->slot - 1;
	t->slot = 0;
	t->when = 0;
	w->nheap--;
	if (i == w->nheap)
		return;
	w->heap[i] = w->heap[w->nheap];
	w->heap[i]->slot = i + 1;
	heap_down(w, i);
	heap_up(w, i);
}

void dd_timer_set(struct dd_worker *w, struct dd_timer *t, uint64_t when)
{
	dd_timer_del(w, t);
	if (w->nheap == w->heap_cap) {
		unsigned int cap = w->heap_cap ? w->heap_cap * 2 : 256;
		struct dd_timer **h = realloc(w->heap, cap * sizeof(*h));

		if (!h) {
			dd_err("timer heap: out of memory");
			return;
		}
		w->heap = h;
		w->heap_cap = cap;
	}
	t->when = when ? when : 1;
	w->heap[w->nheap] = t;
	t->slot = ++w->nheap;
	heap_up(w, w->nheap - 1);
}

static void run_timers(struct dd_worker *w)
{
	uint64_t now = dd_mono_ns();

	while (w->nheap && w->heap[0]->when <= now) {
		struct dd_timer *t = w->heap[0];

		dd_timer_del(w, t);
		t->fire(w, t);
	}
}

static void mbox_drain(struct dd_worker *w)
{
	struct dd_mail *m, *next;
	uint64_t v;

	/* Read first: a post after the list is taken writes again. */
	if (read(w->mbox_io.fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		dd_err("mailbox: %s", strerror(errno));
	pthread_mutex_lock(&w->mbox_lock);
	m = w->mbox_head;
	w->mbox_head = NULL;
	w->mbox_tail = &w->mbox_head;
	pthread_mutex_unlock(&w->mbox_lock);
	for (; m; m = next) {
		next = m->next;
		switch (m->type) {
		case DD_MAIL_MSG:
			dd_dest_msg(w, m->msg);
			break;
		case DD_MAIL_INJECTED:
			dd_in_injected(w, m);
			break;
		case DD_MAIL_CTL:
			dd_dest_ctl(w, m->ctl);
			break;
		case DD_MAIL_CTL_DONE:
			dd_ctl_done(w, m->ctl);
			break;
		}
		free(m);
	}
}

static void dispatch(struct dd_worker *w, const struct evq_cqe *e)
{
	unsigned int type = e->flags & EVQ_CQE_TYPE_MASK;
	struct dd_io *io = (struct dd_io *)(uintptr_t)(e->user_data & ~1ULL);

	if (type == EVQ_CQE_SENDFILE) {
		dd_out_sendfile_done(w, io, e->res);
		return;
	}
	if (type != EVQ_CQE_READY || io->dead)
		return;
	switch (io->kind) {
	case DD_IO_HTTP:
		dd_http_event(w, io, (uint32_t)e->res);
		break;
	case DD_IO_LISTEN:
		dd_in_accept(w, io);
		break;
	case DD_IO_MBOX:
		mbox_drain(w);
		break;
	case DD_IO_IN:
		dd_in_event(w, io, (uint32_t)e->res);
		break;
	case DD_IO_OUT:
		dd_out_event(w, io, (uint32_t)e->res);
		break;
	case DD_IO_DNS:
		dd_dns_event(w, io, (uint32_t)e->res);
		break;
	}
}

void dd_bury(struct dd_worker *w, struct dd_io *io)
{
	io->dead = true;
	io->gnext = w->grave;
	w->grave = io;
}

static void free_graves(struct dd_io *io)
{
	struct dd_io *next;

	for (; io; io = next) {
		next = io->gnext;
		if (io->kind == DD_IO_IN)
			dd_in_free(io);
		else if (io->kind == DD_IO_HTTP)
			dd_http_free(io);
		else
			dd_out_free(io);
	}
}

static void *worker_main(void *arg)
{
	struct dd_worker *w = arg;
	struct evq_cqe ev[DD_HARVEST];

	dd_log_thread(w->name);
	if (w->cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(w->cpu, &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
			dd_warn("cannot pin to CPU %d", w->cpu);
	}
	dd_timer_set(w, &w->retry_timer, dd_mono_ns() + 1000000000ULL);
	while (!atomic_load(&dd_d.stop)) {
		/* Buried before this harvest: if it drains the ring, nothing
		 * left in it can name them once this batch is dispatched. */
		struct dd_io *old = w->grave, **tail;
		int n, i;

		w->grave = NULL;
		n = evq_harvest(&w->q, ev, DD_HARVEST);
		if (n < 0) {
			dd_err("harvest: %s", strerror(-n));
			break;
		}
		for (i = 0; i < n; i++)
			dispatch(w, &ev[i]);
		w->events += n;
		if (n < DD_HARVEST) {
			free_graves(old);
		} else if (old) {
			for (tail = &old; *tail; tail = &(*tail)->gnext)
				;
			*tail = w->grave;
			w->grave = old;
		}
		run_timers(w);
		dd_dest_run(w);
		if (n == 0) {
			int64_t tmo = -1;

			if (w->nheap) {
				uint64_t now = dd_mono_ns();

				tmo = w->heap[0]->when > now ?
					(int64_t)(w->heap[0]->when - now) : 0;
			}
			w->waits++;
			n = evq_wait(&w->q, 1, tmo);
			if (n < 0 && n != -EINTR && n != -ETIME &&
			    n != -ETIMEDOUT) {
				dd_err("wait: %s", strerror(-n));
				break;
			}
		}
	}
	return NULL;
}

static int cpu_list(int *cpus, int max)
{
	cpu_set_t set;
	int i, n = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 0;
	for (i = 0; i < CPU_SETSIZE && n < max; i++)
		if (CPU_ISSET(i, &set))
			cpus[n++] = i;
	return n;
}

/* Create the workers' queues and mailboxes (before the spool's recovery
 * posts to them); the threads start in dd_workers_run(). */
int dd_workers_init(void)
{
	static int cpus[1024];
	int ncpu = cpu_list(cpus, 1024);
	unsigned int i, n = dd_d.conf.threads;
	unsigned int flags = 0;

	if (!n)
		n = ncpu > 0 ? (unsigned int)ncpu : 1;
	if (!strcmp(dd_d.conf.backend, "evq"))
		flags = EVQ_OPEN_KMOD;
	else if (!strcmp(dd_d.conf.backend, "epoll"))
		flags = EVQ_OPEN_EPOLL;
	dd_d.w = calloc(n, sizeof(*dd_d.w));
	if (!dd_d.w)
		return -ENOMEM;
	dd_d.nworkers = n;
	for (i = 0; i < n; i++) {
		struct dd_worker *w = &dd_d.w[i];
		int err;

		w->idx = i;
		w->cpu = ncpu > 0 ? cpus[i % (unsigned int)ncpu] : -1;
		snprintf(w->name, sizeof(w->name), "loop%u", i);
		err = evq_open(&w->q, DD_RING, flags);
		if (err) {
			dd_err("cannot open an event queue (backend %s): %s",
			       dd_d.conf.backend, strerror(-err));
			return err;
		}
		pthread_mutex_init(&w->mbox_lock, NULL);
		w->mbox_tail = &w->mbox_head;
		w->mbox_io.kind = DD_IO_MBOX;
		w->mbox_io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->mbox_io.fd < 0)
			return -errno;
		err = dd_worker_watch(w, &w->mbox_io, EPOLLIN);
		if (err)
			return err;
		w->retry_timer.fire = dd_dest_retry;
	}
	dd_d.kmod = dd_d.w[0].q.backend == EVQ_BACKEND_KMOD;
	dd_info("%u event-loop threads, backend %s", n,
		evq_backend_name(&dd_d.w[0].q));
	return 0;
}

int dd_workers_start(void)
{
	unsigned int i;

	for (i = 0; i < dd_d.nworkers; i++) {
		struct dd_worker *w = &dd_d.w[i];
		int err = pthread_create(&w->thread, NULL, worker_main, w);

		if (err)
			return -err;
		pthread_setname_np(w->thread, w->name);
	}
	return 0;
}

void dd_workers_stop(void)
{
	unsigned int i;
	uint64_t one = 1;

	atomic_store(&dd_d.stop, true);
	for (i = 0; i < dd_d.nworkers; i++)
		if (write(dd_d.w[i].mbox_io.fd, &one, sizeof(one)) < 0)
			dd_err("stop: %s", strerror(errno));
	for (i = 0; i < dd_d.nworkers; i++)
		pthread_join(dd_d.w[i].thread, NULL);
}
