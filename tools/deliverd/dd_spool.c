// SPDX-License-Identifier: GPL-2.0
/*
 * deliverd spool: open and recovery, the committer thread (group
 * commit), journal records and segment reclaim.  Layout and rules:
 * Documentation/deliverd.rst, "Spool format"; encoding: dd_spool_rec.c.
 *
 * Locks: sp->lock guards what the callers queue (submissions, journal
 * records, messages whose last recipient went final) and the stop flag;
 * sp->seglock guards the segment table and the stats, which only the
 * committer changes once the spool is open and dd_spool_seg_fd() and
 * dd_spool_stats() read.  The live list and everything in struct dd_seg
 * but the table itself belong to the committer thread.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dd_log.h"
#include "dd_spool_int.h"

struct dd_seg {
	uint32_t num;
	int fd;			/* seg-N.dat, O_RDWR */
	int jfd;		/* seg-N.jnl, O_RDWR */
	uint64_t size;		/* end of the last good record: next append */
	uint64_t jsize;		/* end of the last journal record */
	uint64_t salt;
	uint64_t next_idx;	/* index of the next record's qid */
	uint64_t live;		/* messages with a recipient not final */
	bool full;		/* never append again (recovered, or an error) */
};

/* A queued journal record. */
struct dd_jent {
	uint32_t seg;
	uint32_t seq;		/* queue order, for a stable sort */
	unsigned char rec[sizeof(struct dd_jrec)];
};

struct dd_jvec {
	struct dd_jent *v;
	size_t n, cap;
};

struct dd_spool {
	struct dd_spool_conf conf;
	char *dir;
	int dirfd;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct dd_sub_item *qhead, **qtail;
	unsigned int nq;
	struct dd_jvec jq;
	struct dd_smsg *freeq;
	bool stop, waiting, delaying;
	pthread_t thr;
	bool started;

	pthread_mutex_t seglock;
	struct dd_seg **segs;	/* sorted by num */
	size_t nsegs, capsegs;
	struct dd_seg *active;	/* NULL if it could not be made at open */
	struct dd_spool_stats st;
	uint32_t next_num;	/* of the first segment when active is NULL */
	bool reclaim_open;	/* the reclaim open could not do, still to do */

	/* committer only */
	struct dd_smsg live;	/* list head */
	struct dd_jvec jc;	/* the other journal buffer */
	struct iovec *iov;
	unsigned char *jbuf;
	size_t jbufcap;
};

#define SEG_NAME_MAX	32

static void seg_name(char *buf, uint32_t num, const char *ext)
{
	snprintf(buf, SEG_NAME_MAX, "seg-%08u.%s", num, ext);
}

static int dir_fsync(struct dd_spool *sp)
{
	if (sp->conf.fsync && fsync(sp->dirfd) < 0) {
		int err = -errno;

		dd_err("spool: %s: fsync: %s", sp->dir, strerror(-err));
		return err;
	}
	return 0;
}

static int data_sync(struct dd_spool *sp, int fd)
{
	int err;

	if (!sp->conf.fsync)
		return 0;
	err = fdatasync(fd) < 0 ? -errno : 0;
	pthread_mutex_lock(&sp->seglock);
	sp->st.fsyncs++;
	pthread_mutex_unlock(&sp->seglock);
	return err;
}

/* pwritev all of iov at off, IOV_MAX at a time, across short writes. */
static int write_all(int fd, struct iovec *iov, size_t cnt, uint64_t off)
{
	while (cnt) {
		int n = cnt > IOV_MAX ? IOV_MAX : (int)cnt;
		ssize_t w = pwritev(fd, iov, n, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		off += (uint64_t)w;
		while (cnt && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (w) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	struct iovec iov = { (void *)buf, len };

	return write_all(fd, &iov, 1, off);
}

/* Segment table: callers hold seglock to change it, or are the committer. */
static struct dd_seg *seg_find(struct dd_spool *sp, uint32_t num, size_t *pos)
{
	size_t lo = 0, hi = sp->nsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sp->segs[mid]->num < num)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pos)
		*pos = lo;
	return lo < sp->nsegs && sp->segs[lo]->num == num ? sp->segs[lo] : NULL;
}

static int seg_insert(struct dd_spool *sp, struct dd_seg *seg)
{
	size_t pos;

	pthread_mutex_lock(&sp->seglock);
	if (sp->nsegs == sp->capsegs) {
		size_t cap = sp->capsegs ? 2 * sp->capsegs : 16;
		struct dd_seg **n = realloc(sp->segs, cap * sizeof(*n));

		if (!n) {
			pthread_mutex_unlock(&sp->seglock);
			return -ENOMEM;
		}
		sp->segs = n;
		sp->capsegs = cap;
	}
	seg_find(sp, seg->num, &pos);
	memmove(&sp->segs[pos + 1], &sp->segs[pos],
		(sp->nsegs - pos) * sizeof(*sp->segs));
	sp->segs[pos] = seg;
	sp->nsegs++;
	sp->st.segments++;
	sp->st.bytes += seg->size + seg->jsize;
	pthread_mutex_unlock(&sp->seglock);
	return 0;
}

static void seg_close(struct dd_seg *seg)
{
	if (seg->fd >= 0)
		close(seg->fd);
	if (seg->jfd >= 0)
		close(seg->jfd);
	free(seg);
}

/* Unlink a segment none of whose messages is pending: data, then journal. */
static void seg_reclaim(struct dd_spool *sp, struct dd_seg *seg)
{
	char name[SEG_NAME_MAX];
	size_t pos;

	pthread_mutex_lock(&sp->seglock);
	if (seg_find(sp, seg->num, &pos) == seg) {
		memmove(&sp->segs[pos], &sp->segs[pos + 1],
			(sp->nsegs - pos - 1) * sizeof(*sp->segs));
		sp->nsegs--;
		sp->st.segments--;
		sp->st.bytes -= seg->size + seg->jsize;
	}
	sp->st.reclaimed++;
	pthread_mutex_unlock(&sp->seglock);

	/* The data first: a journal without its segment is just removed. */
	seg_name(name, seg->num, "dat");
	if (unlinkat(sp->dirfd, name, 0) < 0 && errno != ENOENT)
		dd_err("spool: unlink %s: %s", name, strerror(errno));
	seg_name(name, seg->num, "jnl");
	if (unlinkat(sp->dirfd, name, 0) < 0 && errno != ENOENT)
		dd_err("spool: unlink %s: %s", name, strerror(errno));
	dd_debug("spool: seg-%08u reclaimed", seg->num);
	seg_close(seg);
}

static int create_file(struct dd_spool *sp, const char *name, const void *hdr,
		       size_t len)
{
	int fd, err;

	fd = openat(sp->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	err = pwrite_all(fd, hdr, len, 0);
	if (!err)
		err = data_sync(sp, fd);
	if (err) {
		close(fd);
		unlinkat(sp->dirfd, name, 0);
		return err;
	}
	return fd;
}

static uint64_t new_salt(void)
{
	uint64_t salt;

	if (getrandom(&salt, sizeof(salt), 0) != sizeof(salt))
		salt = dd_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)dd_now();
	return salt;
}

/*
 * A new segment num: its journal, then the data file written as .tmp and
 * renamed, then the directory synced; the segment is in the table.
 */
static int seg_create(struct dd_spool *sp, uint32_t num, struct dd_seg **out)
{
	unsigned char sh[sizeof(struct dd_seg_hdr)], jh[sizeof(struct dd_jnl_hdr)];
	char tmp[SEG_NAME_MAX], dat[SEG_NAME_MAX], jnl[SEG_NAME_MAX];
	struct dd_seg *seg;
	int err;

	seg = calloc(1, sizeof(*seg));
	if (!seg)
		return -ENOMEM;
	seg->num = num;
	seg->salt = new_salt();
	seg->fd = seg->jfd = -1;
	seg_name(tmp, num, "tmp");
	seg_name(dat, num, "dat");
	seg_name(jnl, num, "jnl");

	dd_jnl_hdr_encode(jh, num);
	seg->jfd = create_file(sp, jnl, jh, sizeof(jh));
	if (seg->jfd < 0) {
		err = seg->jfd;
		goto fail;
	}
	dd_seg_hdr_encode(sh, num, seg->salt);
	seg->fd = create_file(sp, tmp, sh, sizeof(sh));
	if (seg->fd < 0) {
		err = seg->fd;
		goto fail_jnl;
	}
	if (renameat(sp->dirfd, tmp, sp->dirfd, dat) < 0) {
		err = -errno;
		unlinkat(sp->dirfd, tmp, 0);
		goto fail_jnl;
	}
	err = dir_fsync(sp);
	if (err)
		goto fail_dat;
	seg->size = sizeof(sh);
	seg->jsize = sizeof(jh);
	err = seg_insert(sp, seg);
	if (err)
		goto fail_dat;
	*out = seg;
	return 0;

fail_dat:
	unlinkat(sp->dirfd, dat, 0);
fail_jnl:
	unlinkat(sp->dirfd, jnl, 0);
fail:
	dd_err("spool: creating seg-%08u: %s", num, strerror(-err));
	seg_close(seg);
	return err;
}

static void live_add(struct dd_spool *sp, struct dd_smsg *sm)
{
	sm->prev = &sp->live;
	sm->next = sp->live.next;
	sp->live.next->prev = sm;
	sp->live.next = sm;
}

static void live_del(struct dd_smsg *sm)
{
	sm->prev->next = sm->next;
	sm->next->prev = sm->prev;
}

static struct dd_smsg *to_smsg(struct dd_msg *m)
{
	return (struct dd_smsg *)((char *)m - offsetof(struct dd_smsg, m));
}

/* ---- committer ---------------------------------------------------------- */

static void fail_subs(struct dd_sub_item *it, int err)
{
	while (it) {
		struct dd_sub_item *next = it->next;

		it->done(it->arg, NULL, err);
		free(it->sm);
		free(it->buf);
		free(it);
		it = next;
	}
}

/* Segments with nothing pending, but the active one, go. */
static void reclaim_idle(struct dd_spool *sp)
{
	size_t i;

	for (i = 0; i < sp->nsegs;) {
		struct dd_seg *seg = sp->segs[i];

		if (seg != sp->active && !seg->live)
			seg_reclaim(sp, seg);	/* shifts the table */
		else
			i++;
	}
}

static void commit_subs(struct dd_spool *sp, struct dd_sub_item *list,
			unsigned int n)
{
	struct dd_seg *seg = sp->active, *old;
	struct dd_sub_item *it, *next;
	uint64_t off0, off;
	unsigned int i;
	int err;

	if (!seg || seg->full || seg->size >= sp->conf.segment_size ||
	    seg->next_idx + n > (uint64_t)UINT32_MAX + 1) {
		if (seg && seg->num == UINT32_MAX) {
			dd_err("spool: out of segment numbers");
			fail_subs(list, -EOVERFLOW);
			return;
		}
		err = seg_create(sp, seg ? seg->num + 1 : sp->next_num, &seg);
		if (err) {
			fail_subs(list, err);
			return;
		}
		old = sp->active;
		pthread_mutex_lock(&sp->seglock);
		sp->active = seg;
		pthread_mutex_unlock(&sp->seglock);
		if (old && !old->live)
			seg_reclaim(sp, old);
		if (sp->reclaim_open) {
			sp->reclaim_open = false;
			reclaim_idle(sp);
		}
	}

	off0 = off = seg->size;
	for (i = 0, it = list; it; it = it->next, i++) {
		struct dd_msg *m = &it->sm->m;

		dd_rec_seal(it, seg->salt, DD_QID_MAKE(seg->num, seg->next_idx));
		seg->next_idx++;
		m->seg = seg->num;
		m->raw_off = off + it->raw_rel;
		m->stuffed_off = off + it->stuffed_rel;
		sp->iov[i].iov_base = it->buf;
		sp->iov[i].iov_len = it->len;
		off += it->len;
	}
	err = write_all(seg->fd, sp->iov, n, off0);
	if (!err)
		err = data_sync(sp, seg->fd);
	if (err) {
		dd_err("spool: seg-%08u.dat: writing %u messages at %llu: %s",
		       seg->num, n, (unsigned long long)off0, strerror(-err));
		/* Leave nothing half-written; append to a new segment next. */
		if (ftruncate(seg->fd, (off_t)off0) < 0)
			dd_err("spool: seg-%08u.dat: truncate to %llu: %s", seg->num,
			       (unsigned long long)off0, strerror(errno));
		seg->full = true;
		fail_subs(list, err);
		return;
	}

	pthread_mutex_lock(&sp->seglock);
	seg->size = off;
	sp->st.bytes += off - off0;
	sp->st.records += n;
	pthread_mutex_unlock(&sp->seglock);
	for (it = list; it; it = next) {
		next = it->next;
		seg->live++;
		live_add(sp, it->sm);
		free(it->buf);
		it->done(it->arg, &it->sm->m, 0);
		free(it);
	}
}

static int jent_cmp(const void *a, const void *b)
{
	const struct dd_jent *x = a, *y = b;

	if (x->seg != y->seg)
		return x->seg < y->seg ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void commit_journal(struct dd_spool *sp, struct dd_jvec *jv)
{
	size_t i, j, k;

	for (i = 0; i < jv->n; i++)
		jv->v[i].seq = (uint32_t)i;
	qsort(jv->v, jv->n, sizeof(*jv->v), jent_cmp);
	for (i = 0; i < jv->n; i = j) {
		struct dd_seg *seg = seg_find(sp, jv->v[i].seg, NULL);
		size_t len;
		int err;

		for (j = i + 1; j < jv->n && jv->v[j].seg == jv->v[i].seg; j++)
			;
		if (!seg) {
			dd_err("spool: %zu journal records for seg-%08u, which is gone",
			       j - i, jv->v[i].seg);
			continue;
		}
		len = (j - i) * sizeof(struct dd_jrec);
		if (len > sp->jbufcap) {
			unsigned char *b = realloc(sp->jbuf, len);

			if (!b) {
				dd_err("spool: seg-%08u.jnl: %zu records lost: %s",
				       seg->num, j - i, strerror(ENOMEM));
				continue;
			}
			sp->jbuf = b;
			sp->jbufcap = len;
		}
		for (k = i; k < j; k++)
			memcpy(sp->jbuf + (k - i) * sizeof(struct dd_jrec),
			       jv->v[k].rec, sizeof(struct dd_jrec));
		err = pwrite_all(seg->jfd, sp->jbuf, len, seg->jsize);
		if (!err)
			err = data_sync(sp, seg->jfd);
		if (err) {
			dd_err("spool: seg-%08u.jnl: writing %zu records: %s",
			       seg->num, j - i, strerror(-err));
			if (ftruncate(seg->jfd, (off_t)seg->jsize) < 0)
				dd_err("spool: seg-%08u.jnl: truncate: %s",
				       seg->num, strerror(errno));
			continue;
		}
		pthread_mutex_lock(&sp->seglock);
		seg->jsize += len;
		sp->st.bytes += len;
		sp->st.journal += j - i;
		pthread_mutex_unlock(&sp->seglock);
	}
	jv->n = 0;
}

/*
 * The highest segment while there is no active one (the disk was full at
 * open): keep the file, so that its number stays taken, but free the
 * space: data back to its header first, then the journal.  It goes once
 * a new segment exists (reclaim_open).
 */
static void seg_empty(struct dd_spool *sp, struct dd_seg *seg)
{
	uint64_t was = seg->size + seg->jsize;

	if (ftruncate(seg->fd, sizeof(struct dd_seg_hdr)) < 0 ||
	    data_sync(sp, seg->fd) ||
	    ftruncate(seg->jfd, sizeof(struct dd_jnl_hdr)) < 0) {
		dd_err("spool: seg-%08u: truncate: %s", seg->num, strerror(errno));
		return;
	}
	pthread_mutex_lock(&sp->seglock);
	seg->size = sizeof(struct dd_seg_hdr);
	seg->jsize = sizeof(struct dd_jnl_hdr);
	sp->st.bytes -= was - seg->size - seg->jsize;
	pthread_mutex_unlock(&sp->seglock);
}

/* Messages all of whose recipients are final, their journal durable. */
static void commit_frees(struct dd_spool *sp, struct dd_smsg *sm)
{
	while (sm) {
		struct dd_smsg *next = sm->fnext;
		struct dd_seg *seg = seg_find(sp, sm->m.seg, NULL);

		live_del(sm);
		free(sm);
		if (seg && seg->live && !--seg->live && seg != sp->active) {
			if (!sp->active && seg == sp->segs[sp->nsegs - 1])
				seg_empty(sp, seg);
			else
				seg_reclaim(sp, seg);
		}
		sm = next;
	}
}

static void timespec_add_us(struct timespec *ts, unsigned int us)
{
	ts->tv_sec += us / 1000000;
	ts->tv_nsec += (long)(us % 1000000) * 1000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void *committer(void *arg)
{
	struct dd_spool *sp = arg;

	dd_log_thread("commit");
	for (;;) {
		struct dd_sub_item *subs = NULL, **tail = &subs;
		struct dd_smsg *frees;
		struct dd_jvec tmp;
		unsigned int n = 0;

		pthread_mutex_lock(&sp->lock);
		while (!sp->stop && !sp->nq && !sp->jq.n && !sp->freeq) {
			sp->waiting = true;
			pthread_cond_wait(&sp->cond, &sp->lock);
			sp->waiting = false;
		}
		if (sp->stop && !sp->nq && !sp->jq.n && !sp->freeq) {
			pthread_mutex_unlock(&sp->lock);
			break;
		}
		if (sp->conf.commit_delay_us && sp->nq < sp->conf.commit_max &&
		    !sp->stop) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			timespec_add_us(&ts, sp->conf.commit_delay_us);
			sp->waiting = sp->delaying = true;
			while (sp->nq < sp->conf.commit_max && !sp->stop &&
			       pthread_cond_timedwait(&sp->cond, &sp->lock, &ts) != ETIMEDOUT)
				;
			sp->waiting = sp->delaying = false;
		}
		while (sp->qhead && n < sp->conf.commit_max) {
			*tail = sp->qhead;
			tail = &sp->qhead->next;
			sp->qhead = sp->qhead->next;
			n++;
		}
		*tail = NULL;
		if (!sp->qhead)
			sp->qtail = &sp->qhead;
		sp->nq -= n;
		tmp = sp->jq;
		sp->jq = sp->jc;
		sp->jc = tmp;
		frees = sp->freeq;
		sp->freeq = NULL;
		pthread_mutex_unlock(&sp->lock);

		pthread_mutex_lock(&sp->seglock);
		sp->st.batches++;
		pthread_mutex_unlock(&sp->seglock);
		if (n)
			commit_subs(sp, subs, n);
		if (sp->jc.n)
			commit_journal(sp, &sp->jc);
		commit_frees(sp, frees);
	}
	return NULL;
}

/* ---- producers ---------------------------------------------------------- */

static void wake(struct dd_spool *sp)
{
	if (sp->waiting && (!sp->delaying || sp->nq >= sp->conf.commit_max))
		pthread_cond_signal(&sp->cond);
}

int dd_spool_submit(struct dd_spool *sp, const struct dd_submit *sub)
{
	struct dd_sub_item *it;
	int err;

	if (!sp)
		return -EINVAL;
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	err = dd_rec_build(sub, it);
	if (err) {
		free(it);
		return err;
	}
	it->done = sub->done;
	it->arg = sub->arg;

	pthread_mutex_lock(&sp->lock);
	if (sp->stop) {
		pthread_mutex_unlock(&sp->lock);
		free(it->sm);
		free(it->buf);
		free(it);
		return -ESHUTDOWN;
	}
	*sp->qtail = it;
	sp->qtail = &it->next;
	sp->nq++;
	wake(sp);
	pthread_mutex_unlock(&sp->lock);
	return 0;
}

/* With sp->lock held. */
static int jq_add(struct dd_spool *sp, uint32_t seg, const void *rec)
{
	struct dd_jvec *q = &sp->jq;

	if (q->n == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 256;
		struct dd_jent *v = realloc(q->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		q->v = v;
		q->cap = cap;
	}
	q->v[q->n].seg = seg;
	memcpy(q->v[q->n].rec, rec, sizeof(struct dd_jrec));
	q->n++;
	if (sp->waiting && !sp->delaying)
		pthread_cond_signal(&sp->cond);
	return 0;
}

static void journal(struct dd_spool *sp, struct dd_msg *msg, const void *rec)
{
	int err;

	pthread_mutex_lock(&sp->lock);
	err = jq_add(sp, msg->seg, rec);
	pthread_mutex_unlock(&sp->lock);
	if (err)
		dd_err("spool: " DD_QID_FMT ": journal record lost: %s",
		       DD_QID(msg), strerror(-err));
}

void dd_spool_final(struct dd_spool *sp, struct dd_msg *msg, uint32_t idx)
{
	unsigned char rec[sizeof(struct dd_jrec)];
	struct dd_rcpt *r;
	unsigned int type, pending;
	uint64_t qid;
	int err;

	if (!sp || !msg || idx >= msg->nrcpt) {
		dd_err("spool: final: bad recipient %u", idx);
		return;
	}
	r = &msg->rcpt[idx];
	if (r->state == DD_RCPT_DELIVERED)
		type = DD_J_DELIVERED;
	else if (r->state == DD_RCPT_FAILED)
		type = DD_J_FAILED;
	else {
		dd_err("spool: " DD_QID_FMT ": final for recipient %u in state %u",
		       DD_QID(msg), idx, r->state);
		return;
	}
	qid = msg->id;
	dd_jrec_encode(rec, type, qid, idx, r->attempts, r->next_try);

	/*
	 * Under the lock, so that the record that takes pending to 0 and the
	 * message's free are queued after every other record of the message.
	 */
	pthread_mutex_lock(&sp->lock);
	pending = atomic_load(&msg->pending);
	if (!pending) {
		pthread_mutex_unlock(&sp->lock);
		dd_err("spool: " DD_QID_FMT ": final with nothing pending",
		       DD_QID(msg));
		return;
	}
	err = jq_add(sp, msg->seg, rec);
	if (atomic_fetch_sub(&msg->pending, 1) == 1) {
		struct dd_smsg *sm = to_smsg(msg);

		sm->fnext = sp->freeq;
		sp->freeq = sm;
		if (sp->waiting && !sp->delaying)
			pthread_cond_signal(&sp->cond);
	}
	pthread_mutex_unlock(&sp->lock);
	/* msg may be freed by now. */
	if (err)
		dd_err("spool: %016llX: journal record lost: %s",
		       (unsigned long long)qid, strerror(-err));
}

void dd_spool_defer(struct dd_spool *sp, struct dd_msg *msg, uint32_t idx)
{
	unsigned char rec[sizeof(struct dd_jrec)];
	struct dd_rcpt *r;

	if (!sp || !msg || idx >= msg->nrcpt) {
		dd_err("spool: defer: bad recipient %u", idx);
		return;
	}
	r = &msg->rcpt[idx];
	dd_jrec_encode(rec, DD_J_DEFER, msg->id, idx, r->attempts, r->next_try);
	journal(sp, msg, rec);
}

void dd_spool_hold(struct dd_spool *sp, struct dd_msg *msg, bool on)
{
	unsigned char rec[sizeof(struct dd_jrec)];

	if (!sp || !msg)
		return;
	dd_jrec_encode(rec, on ? DD_J_HOLD : DD_J_RELEASE, msg->id, 0, 0, 0);
	journal(sp, msg, rec);
}

int dd_spool_seg_fd(struct dd_spool *sp, uint32_t num)
{
	struct dd_seg *seg;
	int fd;

	pthread_mutex_lock(&sp->seglock);
	seg = seg_find(sp, num, NULL);
	fd = seg ? seg->fd : -ENOENT;
	pthread_mutex_unlock(&sp->seglock);
	return fd;
}

void dd_spool_stats(struct dd_spool *sp, struct dd_spool_stats *st)
{
	pthread_mutex_lock(&sp->seglock);
	*st = sp->st;
	pthread_mutex_unlock(&sp->seglock);
}

/* ---- open and recovery -------------------------------------------------- */

struct dd_mvec {
	struct dd_smsg **v;
	size_t n, cap;
};

static int mvec_add(struct dd_mvec *mv, struct dd_smsg *sm)
{
	if (mv->n == mv->cap) {
		size_t cap = mv->cap ? 2 * mv->cap : 256;
		struct dd_smsg **v = realloc(mv->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		mv->v = v;
		mv->cap = cap;
	}
	mv->v[mv->n++] = sm;
	return 0;
}

/* "seg-NNNNNNNN.ext" exactly as seg_name() writes it: 0 and *num, *ext. */
static int parse_name(const char *name, uint32_t *num, const char **ext)
{
	char canon[SEG_NAME_MAX];
	unsigned long long v = 0;
	const char *p;

	if (strncmp(name, "seg-", 4))
		return -1;
	for (p = name + 4; *p >= '0' && *p <= '9' && p - name < 15; p++)
		v = v * 10 + (unsigned int)(*p - '0');
	if (p == name + 4 || *p != '.' || v > UINT32_MAX)
		return -1;
	*num = (uint32_t)v;
	*ext = p + 1;
	if (strcmp(*ext, "dat") && strcmp(*ext, "jnl") && strcmp(*ext, "tmp"))
		return -1;
	seg_name(canon, *num, *ext);
	return strcmp(canon, name) ? -1 : 0;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static bool has_num(const uint32_t *v, size_t n, uint32_t num)
{
	return n && bsearch(&num, v, n, sizeof(*v), u32_cmp) != NULL;
}

/*
 * List the directory: sorted segment numbers in *dats, stale .tmp files
 * and journals without their segment removed, *max the highest number
 * seen in any name (0 if none).
 */
static int scan_dir(struct dd_spool *sp, uint32_t **dats, size_t *ndats,
		    uint32_t *max)
{
	uint32_t *d = NULL, *j = NULL;
	size_t nd = 0, cd = 0, nj = 0, cj = 0, i;
	struct dirent *de;
	DIR *dir;
	int fd, err = 0;

	fd = openat(sp->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	*max = 0;
	while ((de = readdir(dir))) {
		const char *ext;
		uint32_t num;
		uint32_t **v;
		size_t *n, *c;

		if (parse_name(de->d_name, &num, &ext))
			continue;
		if (num > *max)
			*max = num;
		if (!strcmp(ext, "tmp")) {
			dd_info("spool: removing %s", de->d_name);
			unlinkat(sp->dirfd, de->d_name, 0);
			continue;
		}
		if (!strcmp(ext, "dat"))
			v = &d, n = &nd, c = &cd;
		else
			v = &j, n = &nj, c = &cj;
		if (*n == *c) {
			size_t cap = *c ? 2 * *c : 64;
			uint32_t *nv = realloc(*v, cap * sizeof(*nv));

			if (!nv) {
				err = -ENOMEM;
				break;
			}
			*v = nv;
			*c = cap;
		}
		(*v)[(*n)++] = num;
	}
	closedir(dir);
	if (err) {
		free(d);
		free(j);
		return err;
	}
	if (nd)
		qsort(d, nd, sizeof(*d), u32_cmp);
	for (i = 0; i < nj; i++) {
		char name[SEG_NAME_MAX];

		if (has_num(d, nd, j[i]))
			continue;
		seg_name(name, j[i], "jnl");
		dd_info("spool: removing %s (no segment)", name);
		unlinkat(sp->dirfd, name, 0);
	}
	free(j);
	*dats = d;
	*ndats = nd;
	return 0;
}

static struct dd_smsg *find_qid(struct dd_smsg **v, size_t n, uint64_t qid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid]->m.id < qid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && v[lo]->m.id == qid ? v[lo] : NULL;
}

static void apply_jrec(const struct dd_jrec *j, struct dd_smsg **v, size_t n,
		       uint32_t num, uint64_t off)
{
	struct dd_smsg *sm = find_qid(v, n, j->qid);
	struct dd_rcpt *r;

	if (!sm) {
		/* Its record was corrupt and skipped, or it is not ours. */
		dd_debug("spool: seg-%08u.jnl offset %llu: no message %016llX",
			 num, (unsigned long long)off, (unsigned long long)j->qid);
		return;
	}
	if (j->type == DD_J_HOLD) {
		sm->m.flags |= DD_MSG_HELD;
		return;
	}
	if (j->type == DD_J_RELEASE) {
		sm->m.flags &= ~DD_MSG_HELD;
		return;
	}
	if (j->rcpt >= sm->m.nrcpt) {
		dd_warn("spool: seg-%08u.jnl offset %llu: recipient %u of %u, skipped",
			num, (unsigned long long)off, j->rcpt, sm->m.nrcpt);
		return;
	}
	r = &sm->m.rcpt[j->rcpt];
	if (dd_rcpt_final(r->state))
		return;
	r->attempts = j->attempts;
	if (j->type == DD_J_DEFER) {
		r->state = DD_RCPT_DEFERRED;
		r->next_try = j->next_try;
	} else {
		r->state = j->type == DD_J_DELIVERED ? DD_RCPT_DELIVERED
						     : DD_RCPT_FAILED;
	}
}

/* Read seg's journal (creating it if missing) into the messages v[0..n). */
static int recover_jnl(struct dd_spool *sp, struct dd_seg *seg,
		       struct dd_smsg **v, size_t n)
{
	unsigned char hdr[sizeof(struct dd_jnl_hdr)], buf[256 * sizeof(struct dd_jrec)];
	const size_t rl = sizeof(struct dd_jrec);
	char name[SEG_NAME_MAX];
	uint64_t off, end, nrec;
	struct stat st;
	uint32_t num;
	int err;

	seg_name(name, seg->num, "jnl");
	seg->jfd = openat(sp->dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (seg->jfd < 0 || fstat(seg->jfd, &st) < 0) {
		err = -errno;
		dd_err("spool: %s: %s", name, strerror(-err));
		return err;
	}
	if ((uint64_t)st.st_size < sizeof(hdr)) {
		if (st.st_size)
			dd_warn("spool: %s: torn header, rewritten", name);
		dd_jnl_hdr_encode(hdr, seg->num);
		err = pwrite_all(seg->jfd, hdr, sizeof(hdr), 0);
		if (!err && ftruncate(seg->jfd, sizeof(hdr)) < 0)
			err = -errno;
		if (!err)
			err = data_sync(sp, seg->jfd);
		if (err) {
			dd_err("spool: %s: %s", name, strerror(-err));
			return err;
		}
		seg->jsize = sizeof(hdr);
		return 0;
	}
	if (pread(seg->jfd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr)) {
		dd_err("spool: %s: short read", name);
		return -EIO;
	}
	if (dd_jnl_hdr_decode(hdr, &num) || num != seg->num) {
		/* The records check themselves: go on with them. */
		dd_warn("spool: %s: bad header", name);
		sp->st.skipped++;
	}
	nrec = ((uint64_t)st.st_size - sizeof(hdr)) / rl;
	end = sizeof(hdr) + nrec * rl;
	if (end != (uint64_t)st.st_size) {
		dd_warn("spool: %s offset %llu: torn record at end, truncated",
			name, (unsigned long long)end);
		sp->st.skipped++;
		if (ftruncate(seg->jfd, (off_t)end) < 0) {
			err = -errno;
			dd_err("spool: %s: truncate: %s", name, strerror(-err));
			return err;
		}
	}
	for (off = sizeof(hdr); off < end;) {
		size_t chunk = end - off > sizeof(buf) ? sizeof(buf) : (size_t)(end - off);
		ssize_t r = pread(seg->jfd, buf, chunk, (off_t)off);
		size_t k;

		if (r != (ssize_t)chunk) {
			dd_err("spool: %s: short read", name);
			return -EIO;
		}
		for (k = 0; k < chunk; k += rl, off += rl) {
			struct dd_jrec j;

			if (dd_jrec_decode(buf + k, &j) || DD_QID_SEG(j.qid) != seg->num) {
				dd_warn("spool: %s offset %llu: corrupt journal record, skipped",
					name, (unsigned long long)off);
				sp->st.skipped++;
				continue;
			}
			apply_jrec(&j, v, n, seg->num, off);
		}
	}
	seg->jsize = end;
	return 0;
}

/* First offset past off where a record of seg validates, or 0. */
static uint64_t resync(const unsigned char *p, uint64_t size, uint64_t off,
		       uint32_t num, uint64_t salt, int64_t last_idx)
{
	const uint32_t magic = htole32(DD_REC_MAGIC);
	struct dd_rec_hdr h;
	uint64_t q;

	for (q = off + DD_REC_ALIGN; q + sizeof(h) <= size; q += DD_REC_ALIGN) {
		if (memcmp(p + q, &magic, sizeof(magic)))
			continue;
		if (dd_rec_check(p + q, size - q, num, salt, &h) == DD_REC_OK &&
		    (int64_t)DD_QID_IDX(h.qid) > last_idx)
			return q;
	}
	return 0;
}

/*
 * Read segment num into mv (in qid order); *out the segment, or NULL if
 * its header is bad (the file is left alone).  Only the last segment is
 * truncated after its last good record.
 */
static int recover_seg(struct dd_spool *sp, uint32_t num, bool last,
		       struct dd_mvec *mv, struct dd_seg **out)
{
	char name[SEG_NAME_MAX], what[64];
	const unsigned char *p = NULL;
	struct dd_seg *seg;
	struct stat st;
	uint64_t size, off;
	int64_t last_idx = -1;
	size_t first = mv->n;
	int err = 0;

	*out = NULL;
	seg_name(name, num, "dat");
	seg = calloc(1, sizeof(*seg));
	if (!seg)
		return -ENOMEM;
	seg->num = num;
	seg->jfd = -1;
	seg->full = true;
	seg->fd = openat(sp->dirfd, name, O_RDWR | O_CLOEXEC);
	if (seg->fd < 0 || fstat(seg->fd, &st) < 0) {
		err = -errno;
		dd_err("spool: %s: %s", name, strerror(-err));
		goto out;
	}
	size = (uint64_t)st.st_size;
	if (size >= sizeof(struct dd_seg_hdr)) {
		p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, seg->fd, 0);
		if (p == MAP_FAILED) {
			err = -errno;
			dd_err("spool: %s: mmap: %s", name, strerror(-err));
			p = NULL;
			goto out;
		}
	}
	if (!p || dd_seg_hdr_decode(p, &seg->num, &seg->salt) || seg->num != num) {
		dd_err("spool: %s: bad header, segment ignored", name);
		sp->st.skipped++;
		goto out;
	}

	for (off = sizeof(struct dd_seg_hdr); off < size;) {
		struct dd_rec_hdr h;
		enum dd_rec_err e;
		struct dd_smsg *sm;
		uint64_t q;

		e = dd_rec_check(p + off, size - off, num, seg->salt, &h);
		if (e == DD_REC_OK && (int64_t)DD_QID_IDX(h.qid) <= last_idx)
			e = DD_REC_BADHDR;	/* a qid again or out of order */
		if (e == DD_REC_OK) {
			sm = dd_rec_load(p + off, &h, num, off);
			if (!sm || mvec_add(mv, sm)) {
				free(sm);
				err = -ENOMEM;
				goto out;
			}
			last_idx = DD_QID_IDX(h.qid);
			off += h.len;
			continue;
		}
		sp->st.skipped++;
		q = resync(p, size, off, num, seg->salt, last_idx);
		if (q) {
			dd_warn("spool: seg-%08u.dat offset %llu: corrupt record (%s), skipped",
				num, (unsigned long long)off, dd_rec_strerr(e));
			off = q;
			continue;
		}
		if (e == DD_REC_SHORT)
			snprintf(what, sizeof(what), "torn record");
		else
			snprintf(what, sizeof(what), "corrupt record (%s)",
				 dd_rec_strerr(e));
		if (!last) {
			dd_warn("spool: seg-%08u.dat offset %llu: %s at end, ignored",
				num, (unsigned long long)off, what);
			break;
		}
		dd_warn("spool: seg-%08u.dat offset %llu: %s at end, truncated to %llu",
			num, (unsigned long long)off, what, (unsigned long long)off);
		err = ftruncate(seg->fd, (off_t)off) < 0 ? -errno : data_sync(sp, seg->fd);
		if (err) {
			dd_err("spool: %s: truncate: %s", name, strerror(-err));
			goto out;
		}
		break;
	}
	seg->size = off < size ? off : size;
	seg->next_idx = (uint64_t)(last_idx + 1);
	/* A segment without a good record may come first: v is NULL then. */
	err = recover_jnl(sp, seg, mv->n > first ? mv->v + first : NULL,
			  mv->n - first);
	if (!err) {
		*out = seg;
		seg = NULL;
	}
out:
	if (p)
		munmap((void *)p, size);
	if (seg)
		seg_close(seg);
	return err;
}

static void spool_free(struct dd_spool *sp)
{
	size_t i;

	for (i = 0; i < sp->nsegs; i++)
		seg_close(sp->segs[i]);
	free(sp->segs);
	sp->segs = NULL;
	sp->nsegs = sp->capsegs = 0;
	free(sp->jq.v);
	free(sp->jc.v);
	free(sp->iov);
	free(sp->jbuf);
	sp->jq.v = sp->jc.v = NULL;
	sp->iov = NULL;
	sp->jbuf = NULL;
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	sp->dirfd = -1;
	free(sp->dir);
	sp->dir = NULL;
}

static int mkdir_p(const char *dir)
{
	char *d = strdup(dir), *p;
	int err = 0;

	if (!d)
		return -ENOMEM;
	for (p = d + 1; ; p++) {
		char c = *p;

		if (c && c != '/')
			continue;
		*p = '\0';
		if (mkdir(d, 0700) < 0 && errno != EEXIST) {
			err = -errno;
			break;
		}
		*p = c;
		if (!c)
			break;
	}
	free(d);
	return err;
}

int dd_spool_open(struct dd_spool **spp, const struct dd_spool_conf *conf,
		  void (*found)(void *arg, struct dd_msg *msg), void *arg)
{
	struct dd_mvec mv = { 0 };
	struct dd_spool *sp;
	struct dd_seg *seg;
	pthread_condattr_t ca;
	uint32_t *dats = NULL, max = 0;
	size_t ndats = 0, i, k;
	int err;

	if (!spp || !conf || !conf->dir || !*conf->dir || !conf->segment_size ||
	    !conf->commit_max || conf->commit_max > (1U << 20))
		return -EINVAL;
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	sp->conf = *conf;
	sp->dirfd = -1;
	sp->live.next = sp->live.prev = &sp->live;
	sp->qtail = &sp->qhead;
	pthread_mutex_init(&sp->lock, NULL);
	pthread_mutex_init(&sp->seglock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sp->cond, &ca);
	pthread_condattr_destroy(&ca);

	sp->dir = strdup(conf->dir);
	sp->iov = calloc(conf->commit_max, sizeof(*sp->iov));
	if (!sp->dir || !sp->iov) {
		err = -ENOMEM;
		goto fail;
	}
	sp->conf.dir = sp->dir;
	err = mkdir_p(sp->dir);
	if (err) {
		dd_err("spool: mkdir %s: %s", sp->dir, strerror(-err));
		goto fail;
	}
	sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0) {
		err = -errno;
		dd_err("spool: %s: %s", sp->dir, strerror(-err));
		goto fail;
	}
	if (flock(sp->dirfd, LOCK_EX | LOCK_NB) < 0) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		dd_err("spool: %s: in use by another process", sp->dir);
		goto fail;
	}

	err = scan_dir(sp, &dats, &ndats, &max);
	if (err)
		goto fail;
	for (i = 0; i < ndats; i++) {
		size_t first = mv.n;

		err = recover_seg(sp, dats[i], i == ndats - 1, &mv, &seg);
		if (err)
			goto fail;
		if (!seg)
			continue;
		for (k = first; k < mv.n; k++) {
			struct dd_smsg *sm = mv.v[k];
			unsigned int pending = 0, r;

			for (r = 0; r < sm->m.nrcpt; r++)
				pending += !dd_rcpt_final(sm->m.rcpt[r].state);
			atomic_store(&sm->m.pending, pending);
			if (pending)
				seg->live++;
		}
		err = seg_insert(sp, seg);
		if (err) {
			seg_close(seg);
			goto fail;
		}
	}

	/* Appends go to a new segment; it also keeps the highest number. */
	if (max == UINT32_MAX) {
		err = -EOVERFLOW;
		dd_err("spool: %s: out of segment numbers", sp->dir);
		goto fail;
	}
	sp->next_num = max + 1;
	err = seg_create(sp, max + 1, &sp->active);
	if (err == -ENOSPC || err == -EDQUOT) {
		/*
		 * Start anyway, to deliver what is here (and free space);
		 * the first batch tries again.  Until then nothing goes, so
		 * that the highest segment number stays on disk.
		 */
		dd_warn("spool: %s: no new segment yet: %s", sp->dir, strerror(-err));
		sp->reclaim_open = true;
	} else if (err) {
		goto fail;
	} else {
		reclaim_idle(sp);
	}

	/* The live list; the all-final messages go. */
	for (i = k = 0; i < mv.n; i++) {
		struct dd_smsg *sm = mv.v[i];

		if (atomic_load(&sm->m.pending)) {
			live_add(sp, sm);
			mv.v[k++] = sm;
		} else {
			free(sm);
		}
	}
	mv.n = k;

	err = pthread_create(&sp->thr, NULL, committer, sp);
	if (err) {
		err = -err;
		goto fail;
	}
	sp->started = true;
	dd_info("spool: %s: %zu segments, %zu messages pending, %llu records skipped",
		sp->dir, sp->nsegs, mv.n, (unsigned long long)sp->st.skipped);
	*spp = sp;
	for (i = 0; i < mv.n; i++)
		if (found)
			found(arg, &mv.v[i]->m);
	free(mv.v);
	free(dats);
	return 0;

fail:
	/* Every message is in mv (the live list is made of some of them). */
	for (i = 0; i < mv.n; i++)
		free(mv.v[i]);
	free(mv.v);
	free(dats);
	spool_free(sp);
	pthread_cond_destroy(&sp->cond);
	pthread_mutex_destroy(&sp->lock);
	pthread_mutex_destroy(&sp->seglock);
	free(sp);
	return err;
}

void dd_spool_close(struct dd_spool *sp)
{
	if (!sp)
		return;
	pthread_mutex_lock(&sp->lock);
	sp->stop = true;
	pthread_cond_signal(&sp->cond);
	pthread_mutex_unlock(&sp->lock);
	if (sp->started)
		pthread_join(sp->thr, NULL);
	sp->started = false;
	pthread_mutex_lock(&sp->seglock);
	spool_free(sp);
	sp->active = NULL;
	pthread_mutex_unlock(&sp->seglock);
}

void dd_spool_free_msgs(struct dd_spool *sp)
{
	if (!sp)
		return;
	while (sp->live.next != &sp->live) {
		struct dd_smsg *sm = sp->live.next;

		live_del(sm);
		free(sm);
	}
	pthread_cond_destroy(&sp->cond);
	pthread_mutex_destroy(&sp->lock);
	pthread_mutex_destroy(&sp->seglock);
	free(sp);
}
