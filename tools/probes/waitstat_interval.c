// SPDX-License-Identifier: GPL-2.0
/*
 * waitstat_interval.c: what happened between two reports.
 *
 * The BPF counters only grow, so each report reads both maps whole (a
 * snapshot), subtracts the previous snapshot entry by entry and adds the
 * threads up into their processes.  An entry that shrank or changed
 * process was evicted and recreated, or its tid reused: its whole value
 * is new.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "waitstat_interval.h"

struct snap_thread {
	__u32 tid;
	struct ws_thread v;
};

struct snap_wait {
	struct ws_wait_key k;
	struct ws_wait v;
};

struct ws_snapshot {
	struct snap_thread *threads;
	size_t nthreads;
	struct snap_wait *waits;
	size_t nwaits;
};

static int cmp_u32(__u32 a, __u32 b)
{
	return a < b ? -1 : a > b;
}

static int cmp_snap_thread(const void *a, const void *b)
{
	return cmp_u32(((const struct snap_thread *)a)->tid,
		       ((const struct snap_thread *)b)->tid);
}

static int cmp_wait_key(const struct ws_wait_key *a,
			const struct ws_wait_key *b)
{
	return cmp_u32(a->tid, b->tid) ?: cmp_u32(a->kind, b->kind);
}

static int cmp_snap_wait(const void *a, const void *b)
{
	return cmp_wait_key(&((const struct snap_wait *)a)->k,
			    &((const struct snap_wait *)b)->k);
}

/*
 * Copy a whole map into an array of elem_size elements, each the key
 * then the value (the snap_* structs).  Batched lookups walk the hash
 * bucket by bucket, so entries added or evicted meanwhile are seen once
 * or not at all, never twice.
 */
static int read_map(int fd, size_t key_size, size_t value_size,
		    size_t elem_size, void **arr, size_t *n)
{
	const size_t max = WS_MAX_THREADS;
	unsigned char *keys, *values, *out;
	__u32 batch, count;
	void *in = NULL;
	int err = 0;
	size_t i;

	*arr = NULL;
	*n = 0;
	keys = calloc(max, key_size);
	values = calloc(max, value_size);
	out = calloc(max, elem_size);
	if (!keys || !values || !out) {
		err = -ENOMEM;
		goto out;
	}
	while (*n < max) {
		LIBBPF_OPTS(bpf_map_batch_opts, opts);

		count = max - *n;
		err = bpf_map_lookup_batch(fd, in, &batch, keys + *n * key_size,
					   values + *n * value_size, &count,
					   &opts);
		if (err && err != -ENOENT)
			goto out;
		*n += count;
		if (err == -ENOENT)
			break;
		in = &batch;
	}
	err = 0;
	for (i = 0; i < *n; i++) {
		memcpy(out + i * elem_size, keys + i * key_size, key_size);
		/* The value is the last member, as the asserts below check. */
		memcpy(out + (i + 1) * elem_size - value_size,
		       values + i * value_size, value_size);
	}
	*arr = out;
	out = NULL;
out:
	free(keys);
	free(values);
	free(out);
	return err;
}

void ws_snapshot_free(struct ws_snapshot *s)
{
	if (!s)
		return;
	free(s->threads);
	free(s->waits);
	free(s);
}

struct ws_snapshot *ws_snapshot_take(int threads_fd, int waits_fd,
					 int *err)
{
	struct ws_snapshot *s = calloc(1, sizeof(*s));

	_Static_assert(sizeof(struct snap_thread) ==
		       offsetof(struct snap_thread, v) + sizeof(struct ws_thread),
		       "snap_thread: value last");
	_Static_assert(sizeof(struct snap_wait) ==
		       offsetof(struct snap_wait, v) + sizeof(struct ws_wait),
		       "snap_wait: value last");
	if (!s) {
		*err = -ENOMEM;
		return NULL;
	}
	*err = read_map(threads_fd, sizeof(__u32), sizeof(struct ws_thread),
			sizeof(struct snap_thread), (void **)&s->threads,
			&s->nthreads);
	if (!*err)
		*err = read_map(waits_fd, sizeof(struct ws_wait_key),
				sizeof(struct ws_wait), sizeof(struct snap_wait),
				(void **)&s->waits, &s->nwaits);
	if (*err) {
		ws_snapshot_free(s);
		return NULL;
	}
	qsort(s->threads, s->nthreads, sizeof(*s->threads), cmp_snap_thread);
	qsort(s->waits, s->nwaits, sizeof(*s->waits), cmp_snap_wait);
	return s;
}

static const struct ws_thread *prev_thread(const struct ws_snapshot *p,
					   const struct snap_thread *cur)
{
	const struct snap_thread *t;

	if (!p)
		return NULL;
	t = bsearch(cur, p->threads, p->nthreads, sizeof(*t), cmp_snap_thread);
	return t && t->v.tgid == cur->v.tgid ? &t->v : NULL;
}

static const struct ws_wait *prev_wait(const struct ws_snapshot *p,
				       const struct snap_wait *cur)
{
	const struct snap_wait *w;

	if (!p)
		return NULL;
	w = bsearch(cur, p->waits, p->nwaits, sizeof(*w), cmp_snap_wait);
	return w && w->v.tgid == cur->v.tgid ? &w->v : NULL;
}

/* cur - prev, or cur when the counter went back (a recreated entry). */
#define DELTA(cur, prev, f) \
	((prev) && (cur)->f >= (prev)->f ? (cur)->f - (prev)->f : (cur)->f)

static int cmp_row_tid(const void *a, const void *b)
{
	return cmp_u32(((const struct ws_row *)a)->tid,
		       ((const struct ws_row *)b)->tid);
}

static int cmp_row_pid_tid(const void *a, const void *b)
{
	const struct ws_row *x = a, *y = b;

	return cmp_u32(x->pid, y->pid) ?: cmp_u32(x->tid, y->tid);
}

/* One row per thread, sorted by tid, with this interval's differences. */
static struct ws_row *thread_rows(const struct ws_snapshot *cur,
			       const struct ws_snapshot *prev)
{
	struct ws_row *rows = calloc(cur->nthreads ?: 1, sizeof(*rows));
	size_t i;

	if (!rows)
		return NULL;
	for (i = 0; i < cur->nthreads; i++) {
		const struct snap_thread *t = &cur->threads[i];
		const struct ws_thread *p = prev_thread(prev, t);
		struct ws_row *r = &rows[i];

		r->pid = t->v.tgid;
		r->tid = t->tid;
		r->nthreads = 1;
		memcpy(r->comm, t->v.comm, sizeof(r->comm));
		r->comm[sizeof(r->comm) - 1] = '\0';
		r->vcsw = DELTA(&t->v, p, vcsw);
		r->ivcsw = DELTA(&t->v, p, ivcsw);
		r->oncpu_ns = DELTA(&t->v, p, oncpu_ns);
		r->vcsw_total = t->v.vcsw;
		r->ivcsw_total = t->v.ivcsw;
		r->oncpu_total_ns = t->v.oncpu_ns;
	}
	for (i = 0; i < cur->nwaits; i++) {
		const struct snap_wait *w = &cur->waits[i];
		const struct ws_wait *p = prev_wait(prev, w);
		struct ws_row key = { .tid = w->k.tid }, *r;
		struct ws_wait_sum *s;
		int j;

		r = bsearch(&key, rows, cur->nthreads, sizeof(*r), cmp_row_tid);
		/* A wait outliving its evicted thread entry: nowhere to go. */
		if (!r || r->pid != w->v.tgid || w->k.kind >= WS_KIND_MAX)
			continue;
		s = &r->wait[w->k.kind];
		s->calls = DELTA(&w->v, p, calls);
		s->errors = DELTA(&w->v, p, errors);
		s->oncpu_ns = DELTA(&w->v, p, oncpu_ns);
		s->offcpu_ns = DELTA(&w->v, p, offcpu_ns);
		s->events = DELTA(&w->v, p, events);
		for (j = 0; j < WS_HIST_SLOTS; j++)
			s->hist[j] = p && w->v.hist[j] >= p->hist[j] ?
				     w->v.hist[j] - p->hist[j] : w->v.hist[j];
	}
	return rows;
}

static void row_add(struct ws_row *sum, const struct ws_row *t)
{
	int k, j;

	sum->nthreads += t->nthreads;
	sum->vcsw += t->vcsw;
	sum->ivcsw += t->ivcsw;
	sum->oncpu_ns += t->oncpu_ns;
	sum->vcsw_total += t->vcsw_total;
	sum->ivcsw_total += t->ivcsw_total;
	sum->oncpu_total_ns += t->oncpu_total_ns;
	for (k = 0; k < WS_KIND_MAX; k++) {
		struct ws_wait_sum *a = &sum->wait[k];
		const struct ws_wait_sum *b = &t->wait[k];

		a->calls += b->calls;
		a->errors += b->errors;
		a->oncpu_ns += b->oncpu_ns;
		a->offcpu_ns += b->offcpu_ns;
		a->events += b->events;
		for (j = 0; j < WS_HIST_SLOTS; j++)
			a->hist[j] += b->hist[j];
	}
}

__u64 ws_row_wait_oncpu(const struct ws_row *r)
{
	__u64 ns = 0;
	int k;

	for (k = 0; k < WS_KIND_MAX; k++)
		ns += r->wait[k].oncpu_ns;
	return ns;
}

bool ws_row_active(const struct ws_row *r)
{
	int k;

	if (r->vcsw || r->ivcsw || r->oncpu_ns)
		return true;
	for (k = 0; k < WS_KIND_MAX; k++)
		if (r->wait[k].calls)
			return true;
	return false;
}

/* Processes first by this interval's switches, then by pid. */
static int cmp_proc(const void *a, const void *b)
{
	const struct ws_row *x = a, *y = b;
	__u64 cx = x->vcsw + x->ivcsw, cy = y->vcsw + y->ivcsw;

	if (cx != cy)
		return cx > cy ? -1 : 1;
	return cmp_u32(x->pid, y->pid);
}

int ws_interval_build(struct ws_interval *iv, const struct ws_snapshot *cur,
			  const struct ws_snapshot *prev, __u32 target)
{
	struct ws_row *procs;
	size_t i, n = 0;

	memset(iv, 0, sizeof(*iv));
	iv->threads = thread_rows(cur, prev);
	iv->nthreads = cur->nthreads;
	procs = calloc(iv->nthreads ?: 1, sizeof(*procs));
	if (!iv->threads || !procs) {
		free(procs);
		return -ENOMEM;
	}
	qsort(iv->threads, iv->nthreads, sizeof(*iv->threads), cmp_row_pid_tid);
	for (i = 0; i < iv->nthreads; i++) {
		const struct ws_row *t = &iv->threads[i];

		if (!n || procs[n - 1].pid != t->pid) {
			memset(&procs[n], 0, sizeof(procs[n]));
			procs[n].pid = t->pid;
			procs[n].first = i;
			memcpy(procs[n].comm, t->comm, sizeof(t->comm));
			n++;
		}
		/* The main thread names the process. */
		if (t->tid == t->pid)
			memcpy(procs[n - 1].comm, t->comm, sizeof(t->comm));
		row_add(&procs[n - 1], t);
	}
	/* Keep the active ones, and the process we were asked about. */
	iv->nprocs = 0;
	for (i = 0; i < n; i++)
		if (ws_row_active(&procs[i]) || procs[i].pid == target)
			procs[iv->nprocs++] = procs[i];
	qsort(procs, iv->nprocs, sizeof(*procs), cmp_proc);
	iv->procs = procs;
	return 0;
}

void ws_interval_free(struct ws_interval *iv)
{
	free(iv->threads);
	free(iv->procs);
}
