// SPDX-License-Identifier: GPL-2.0
/*
 * deliverd spool: submit, group commit, journal, reclaim and recovery
 * from corrupt, torn and failed writes.  Each test works in its own
 * directory under /tmp and reopens the spool to check what is durable.
 *
 * gcc -std=gnu11 -O2 -g -Wall -Wextra -Werror -pthread \
 *	-I/work/main/build/ksft -Itools/deliverd \
 *	tools/deliverd/tests/dd_spool_test.c tools/deliverd/dd_spool.c \
 *	tools/deliverd/dd_spool_rec.c tools/deliverd/dd_log.c -lz
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"

/* The harness ends each test with _exit(): check for leaks ourselves. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define leak_check()	__lsan_do_leak_check()
#else
#define leak_check()	do { } while (0)
#endif

#include "../dd_log.h"
#include "../dd_spool.h"
#include "../dd_spool_int.h"

/* ---- helpers ------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tmpdir(void)
{
	char *d = strdup("/tmp/dd_spool_test.XXXXXX");

	if (!d || !mkdtemp(d))
		abort();
	return d;
}

static char *subdir(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		abort();
	return p;
}

static struct dd_spool_conf conf_for(const char *dir)
{
	struct dd_spool_conf c = {
		.dir = dir,
		.segment_size = 1 << 20,
		.commit_max = 4096,
		.commit_delay_us = 0,
		.fsync = true,
	};
	return c;
}

/* One submitted message and what the spool said about it. */
struct sub {
	char sender[64];
	char rcpt[3][64];
	const char *rp[3];
	unsigned int nrcpt;
	uint32_t flags;
	char *body;
	size_t len;
	const char *head;	/* fields the spool puts before body */
	size_t hlen;
	struct dd_msg *msg;
	uint64_t id;
	int err;
	bool done;
	struct waiter *w;
};

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int ndone, nerr;
	/* group-commit gate: the first callback waits for open_gate */
	bool gate, gate_open, gated;
};

static void waiter_init(struct waiter *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
}

static void done_cb(void *arg, struct dd_msg *msg, int err)
{
	struct sub *s = arg;
	struct waiter *w = s->w;

	pthread_mutex_lock(&w->lock);
	if (w->gate && !w->gated) {
		w->gated = true;
		while (!w->gate_open)
			pthread_cond_wait(&w->cond, &w->lock);
	}
	s->msg = msg;
	s->err = err;
	s->id = msg ? msg->id : 0;
	s->done = true;
	w->ndone++;
	if (err)
		w->nerr++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void wait_done(struct waiter *w, unsigned int n)
{
	pthread_mutex_lock(&w->lock);
	while (w->ndone < n)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

/* Message i: 1 to 3 recipients, a body of about size bytes. */
static void make_sub(struct sub *s, struct waiter *w, unsigned int i,
		     size_t size, bool dots)
{
	size_t n = 0, cap = size + 256;
	unsigned int r;

	memset(s, 0, sizeof(*s));
	s->w = w;
	snprintf(s->sender, sizeof(s->sender), "sender%u@example.org", i);
	s->nrcpt = 1 + i % 3;
	for (r = 0; r < s->nrcpt; r++) {
		snprintf(s->rcpt[r], sizeof(s->rcpt[r]), "rcpt%u.%u@dom%u.test",
			 i, r, (i + r) % 7);
		s->rp[r] = s->rcpt[r];
	}
	s->flags = i % 2 ? DD_MSG_8BIT : 0;
	s->body = malloc(cap);
	if (!s->body)
		abort();
	n += (size_t)snprintf(s->body + n, cap - n,
			      "Received: from test; id %u\r\nSubject: message %u\r\n\r\n",
			      i, i);
	while (n + 80 < size)
		n += (size_t)snprintf(s->body + n, cap - n,
				      "%sline %zu of message %u\r\n",
				      dots && n % 3 == 0 ? "." : "", n, i);
	s->len = n;
}

static int submit(struct dd_spool *sp, struct sub *s)
{
	struct dd_submit d = {
		.sender = s->sender,
		.rcpts = s->rp,
		.nrcpt = s->nrcpt,
		.flags = s->flags,
		.body = s->body,
		.body_len = s->len,
		.head = s->head,
		.head_len = s->hlen,
		.done = done_cb,
		.arg = s,
	};

	return dd_spool_submit(sp, &d);
}

struct found {
	struct dd_msg **v;
	size_t n, cap;
};

static void found_cb(void *arg, struct dd_msg *msg)
{
	struct found *f = arg;

	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 64;
		f->v = realloc(f->v, f->cap * sizeof(*f->v));
		if (!f->v)
			abort();
	}
	f->v[f->n++] = msg;
}

static struct dd_msg *found_id(struct found *f, uint64_t id)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (f->v[i]->id == id)
			return f->v[i];
	return NULL;
}

static bool pread_eq(int fd, uint64_t off, const char *want, size_t len)
{
	char *buf = malloc(len + 1);
	bool ok;

	if (!buf)
		abort();
	ok = pread(fd, buf, len, (off_t)off) == (ssize_t)len &&
	     !memcmp(buf, want, len);
	free(buf);
	return ok;
}

/* The stored message m is s: envelope, flags, body. */
static bool same(struct dd_spool *sp, struct dd_msg *m, struct sub *s)
{
	int fd = dd_spool_seg_fd(sp, m->seg);
	unsigned int r;

	if (fd < 0 || strcmp(m->sender, s->sender) || m->nrcpt != s->nrcpt ||
	    (m->flags & ~(DD_MSG_STUFFED | DD_MSG_HELD)) != s->flags ||
	    m->raw_len != s->len || !pread_eq(fd, m->raw_off, s->body, s->len))
		return false;
	for (r = 0; r < m->nrcpt; r++) {
		const char *at = strrchr(s->rcpt[r], '@');

		if (strcmp(m->rcpt[r].addr, s->rcpt[r]) ||
		    strcmp(m->rcpt[r].domain, at + 1) || m->rcpt[r].msg != m ||
		    m->rcpt[r].idx != r)
			return false;
	}
	return true;
}

static unsigned int count_files(const char *dir, const char *suffix)
{
	unsigned int n = 0;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "seg-", 4) && strstr(de->d_name, suffix))
			n++;
	closedir(d);
	return n;
}

static char *slurp(const char *path)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? 0 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static off_t file_size(const char *dir, uint32_t seg, const char *ext)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/seg-%08u.%s", dir, seg, ext);
	return stat(path, &st) < 0 ? -1 : st.st_size;
}

static int open_spool(struct dd_spool **sp, const struct dd_spool_conf *c,
		      struct found *f)
{
	memset(f, 0, sizeof(*f));
	return dd_spool_open(sp, c, found_cb, f);
}

static void close_spool(struct dd_spool *sp, struct found *f)
{
	dd_spool_close(sp);
	dd_spool_free_msgs(sp);
	if (f) {
		free(f->v);
		memset(f, 0, sizeof(*f));
	}
}

/* Start of m's record in its segment. */
static uint64_t rec_off(struct dd_msg *m)
{
	uint64_t rl = 0;
	unsigned int r;

	for (r = 0; r < m->nrcpt; r++)
		rl += strlen(m->rcpt[r].addr) + 1;
	return m->raw_off - sizeof(struct dd_rec_hdr) - strlen(m->sender) -
	       (m->envid ? strlen(m->envid) : 0) - rl;
}

/* ---- tests -------------------------------------------------------------- */

#define NTHR	4
#define PERTHR	150

struct thr_arg {
	struct dd_spool *sp;
	struct sub *subs;
	unsigned int n;
	int err;
};

static void *submitter(void *p)
{
	struct thr_arg *a = p;
	unsigned int i;

	for (i = 0; i < a->n; i++) {
		int err = submit(a->sp, &a->subs[i]);

		if (err)
			a->err = err;
	}
	return NULL;
}

static int id_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

TEST(submit_threads_reopen)
{
	char *dir = tmpdir();
	struct dd_spool_conf c = conf_for(dir);
	struct sub *subs = calloc(NTHR * PERTHR, sizeof(*subs));
	uint64_t ids[NTHR * PERTHR];
	struct thr_arg ta[NTHR];
	pthread_t th[NTHR];
	struct dd_spool *sp;
	struct waiter w;
	struct found f;
	unsigned int i, t;

	ASSERT_NE(NULL, subs);
	waiter_init(&w);
	for (i = 0; i < NTHR * PERTHR; i++)
		make_sub(&subs[i], &w, i, 200 + (i * 37) % 3000, i % 5 == 0);
	c.segment_size = 64 << 10;	/* a few segments */
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(0, f.n);
	for (t = 0; t < NTHR; t++) {
		ta[t] = (struct thr_arg){ sp, subs + t * PERTHR, PERTHR, 0 };
		ASSERT_EQ(0, pthread_create(&th[t], NULL, submitter, &ta[t]));
	}
	for (t = 0; t < NTHR; t++) {
		pthread_join(th[t], NULL);
		ASSERT_EQ(0, ta[t].err);
	}
	wait_done(&w, NTHR * PERTHR);
	ASSERT_EQ(0, w.nerr);
	for (i = 0; i < NTHR * PERTHR; i++) {
		struct dd_msg *m = subs[i].msg;

		ASSERT_NE(NULL, m);
		ASSERT_TRUE(same(sp, m, &subs[i])) TH_LOG("message %u", i);
		ASSERT_EQ(m->nrcpt, atomic_load(&m->pending));
		ASSERT_EQ(DD_RCPT_QUEUED, m->rcpt[0].state);
		ASSERT_EQ(m->seg, DD_QID_SEG(m->id));
		ids[i] = m->id;
	}
	qsort(ids, NTHR * PERTHR, sizeof(ids[0]), id_cmp);
	for (i = 1; i < NTHR * PERTHR; i++)
		ASSERT_NE(ids[i - 1], ids[i]);
	close_spool(sp, &f);

	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(NTHR * PERTHR, f.n);
	for (i = 0; i < NTHR * PERTHR; i++) {
		struct dd_msg *m = found_id(&f, subs[i].id);

		ASSERT_NE(NULL, m) TH_LOG("message %u missing", i);
		ASSERT_TRUE(same(sp, m, &subs[i])) TH_LOG("message %u", i);
		ASSERT_EQ(m->nrcpt, atomic_load(&m->pending));
		ASSERT_EQ(0, m->flags & DD_MSG_HELD);
	}
	/* New messages get new ids, in a new segment. */
	{
		struct sub s;

		make_sub(&s, &w, 9999, 300, false);
		ASSERT_EQ(0, submit(sp, &s));
		wait_done(&w, NTHR * PERTHR + 1);
		ASSERT_EQ(0, s.err);
		ASSERT_LT(ids[NTHR * PERTHR - 1], s.id);
		free(s.body);
	}
	close_spool(sp, &f);
	for (i = 0; i < NTHR * PERTHR; i++)
		free(subs[i].body);
	free(subs);
	rm_rf(dir);
	free(dir);
	leak_check();
}

TEST(dot_stuffing)
{
	static const char dotted[] =
		".leading\r\nmiddle\r\n..two\r\nnot.this\r\n.\r\nbare\n.lf\r\n";
	static const char stuffed[] =
		"..leading\r\nmiddle\r\n...two\r\nnot.this\r\n..\r\nbare\n..lf\r\n";
	static const char plain[] = "Subject: x\r\n\r\nno dots. here.\r\n";
	char *dir = tmpdir();
	struct dd_spool_conf c = conf_for(dir);
	struct dd_spool *sp;
	struct sub a, b;
	struct waiter w;
	struct found f;
	int pass, fd;

	waiter_init(&w);
	make_sub(&a, &w, 1, 0, false);
	make_sub(&b, &w, 2, 0, false);
	free(a.body);
	free(b.body);
	a.body = (char *)dotted;
	a.len = sizeof(dotted) - 1;
	b.body = (char *)plain;
	b.len = sizeof(plain) - 1;
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(0, submit(sp, &a));
	ASSERT_EQ(0, submit(sp, &b));
	wait_done(&w, 2);
	for (pass = 0; pass < 2; pass++) {
		struct dd_msg *ma = pass ? found_id(&f, a.id) : a.msg;
		struct dd_msg *mb = pass ? found_id(&f, b.id) : b.msg;

		ASSERT_NE(NULL, ma);
		ASSERT_NE(NULL, mb);
		fd = dd_spool_seg_fd(sp, ma->seg);
		ASSERT_LE(0, fd);
		ASSERT_TRUE(ma->flags & DD_MSG_STUFFED);
		ASSERT_EQ(sizeof(stuffed) - 1, ma->stuffed_len);
		ASSERT_EQ(ma->raw_off + ma->raw_len, ma->stuffed_off);
		ASSERT_TRUE(pread_eq(fd, ma->raw_off, dotted, sizeof(dotted) - 1));
		ASSERT_TRUE(pread_eq(fd, ma->stuffed_off, stuffed, sizeof(stuffed) - 1));
		ASSERT_FALSE(mb->flags & DD_MSG_STUFFED);
		ASSERT_EQ(mb->raw_off, mb->stuffed_off);
		ASSERT_EQ(mb->raw_len, mb->stuffed_len);
		ASSERT_TRUE(pread_eq(dd_spool_seg_fd(sp, mb->seg), mb->stuffed_off,
				     plain, sizeof(plain) - 1));
		close_spool(sp, &f);
		ASSERT_EQ(0, open_spool(&sp, &c, &f));
		ASSERT_EQ(2, f.n);
	}
	close_spool(sp, &f);
	rm_rf(dir);
	free(dir);
	leak_check();
}

/* A head (a DKIM signature) is stored before the body, stuffed with it. */
TEST(head_before_body)
{
	static const char head[] = "DKIM-Signature: v=1;\r\n b=.x\r\n";
	static const char body[] = ".dot first\r\nthen\r\n";
	static const char raw[] =
		"DKIM-Signature: v=1;\r\n b=.x\r\n.dot first\r\nthen\r\n";
	static const char stuffed[] =
		"DKIM-Signature: v=1;\r\n b=.x\r\n..dot first\r\nthen\r\n";
	static const char bad_head[] = "X-No-CRLF: x";
	char *dir = tmpdir();
	struct dd_spool_conf c = conf_for(dir);
	struct dd_spool *sp;
	struct sub a, bad;
	struct waiter w;
	struct found f;
	int pass;

	waiter_init(&w);
	make_sub(&a, &w, 1, 0, false);
	make_sub(&bad, &w, 2, 0, false);
	free(a.body);
	a.body = (char *)body;
	a.len = sizeof(body) - 1;
	a.head = head;
	a.hlen = sizeof(head) - 1;
	bad.head = bad_head;
	bad.hlen = sizeof(bad_head) - 1;
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	/* a head that does not end a line would glue onto the body */
	ASSERT_EQ(-EINVAL, submit(sp, &bad));
	free(bad.body);
	ASSERT_EQ(0, submit(sp, &a));
	wait_done(&w, 1);
	for (pass = 0; pass < 2; pass++) {
		struct dd_msg *m = pass ? found_id(&f, a.id) : a.msg;
		int fd;

		ASSERT_NE(NULL, m);
		fd = dd_spool_seg_fd(sp, m->seg);
		ASSERT_LE(0, fd);
		ASSERT_EQ(sizeof(raw) - 1, m->raw_len);
		ASSERT_TRUE(pread_eq(fd, m->raw_off, raw, sizeof(raw) - 1));
		ASSERT_TRUE(m->flags & DD_MSG_STUFFED);
		ASSERT_EQ(sizeof(stuffed) - 1, m->stuffed_len);
		ASSERT_TRUE(pread_eq(fd, m->stuffed_off, stuffed,
				     sizeof(stuffed) - 1));
		close_spool(sp, &f);
		ASSERT_EQ(0, open_spool(&sp, &c, &f));
		ASSERT_EQ(1, f.n);
	}
	close_spool(sp, &f);
	rm_rf(dir);
	free(dir);
	leak_check();
}

static void group_commit(struct __test_metadata *_metadata,
			 unsigned int commit_max, unsigned int delay_us,
			 bool gate)
{
	enum { N = 1000 };
	char *dir = tmpdir();
	struct dd_spool_conf c = conf_for(dir);
	struct dd_spool_stats s0, s1;
	struct sub *subs = calloc(N, sizeof(*subs));
	struct dd_spool *sp;
	struct waiter w;
	struct found f;
	unsigned int i;

	ASSERT_NE(NULL, subs);
	waiter_init(&w);
	w.gate = gate;
	c.commit_max = commit_max;
	c.commit_delay_us = delay_us;
	for (i = 0; i < N; i++)
		make_sub(&subs[i], &w, i, 600, false);
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	dd_spool_stats(sp, &s0);
	for (i = 0; i < N; i++)
		ASSERT_EQ(0, submit(sp, &subs[i]));
	pthread_mutex_lock(&w.lock);
	w.gate_open = true;
	pthread_cond_broadcast(&w.cond);
	pthread_mutex_unlock(&w.lock);
	wait_done(&w, N);
	ASSERT_EQ(0, w.nerr);
	dd_spool_stats(sp, &s1);
	TH_LOG("commit_max %u delay %u: %llu batches, %llu fsyncs for %u messages",
	       commit_max, delay_us, (unsigned long long)(s1.batches - s0.batches),
	       (unsigned long long)(s1.fsyncs - s0.fsyncs), N);
	ASSERT_EQ(N, s1.records - s0.records);
	if (gate) {
		/* The gated batch, then the rest in commit_max batches. */
		ASSERT_GE(2 + (N + commit_max - 1) / commit_max,
			  s1.batches - s0.batches);
		ASSERT_LE((N + commit_max - 1) / commit_max,
			  s1.batches - s0.batches);
		ASSERT_GE(s1.batches - s0.batches, s1.fsyncs - s0.fsyncs);
	}
	ASSERT_GT(N / 4, s1.fsyncs - s0.fsyncs);
	close_spool(sp, &f);
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(N, f.n);
	close_spool(sp, &f);
	for (i = 0; i < N; i++)
		free(subs[i].body);
	free(subs);
	rm_rf(dir);
	free(dir);
}

TEST(group_commit_gated)
{
	group_commit(_metadata, 4096, 0, true);
	leak_check();
}

TEST(group_commit_max)
{
	group_commit(_metadata, 100, 0, true);
	leak_check();
}

TEST(group_commit_delay)
{
	group_commit(_metadata, 4096, 20000, false);
	leak_check();
}

TEST(final_defer_hold)
{
	char *dir = tmpdir();
	struct dd_spool_conf c = conf_for(dir);
	struct dd_spool_stats st;
	struct dd_msg *ma, *mb, *mc;
	struct sub a, b, cc;
	struct dd_spool *sp;
	struct waiter w;
	struct found f;

	waiter_init(&w);
	make_sub(&a, &w, 2, 300, false);	/* 3 recipients */
	make_sub(&b, &w, 1, 300, false);	/* 2 */
	make_sub(&cc, &w, 3, 300, false);	/* 1 */
	ASSERT_EQ(3, a.nrcpt);
	ASSERT_EQ(2, b.nrcpt);
	ASSERT_EQ(1, cc.nrcpt);
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(0, submit(sp, &a));
	ASSERT_EQ(0, submit(sp, &b));
	ASSERT_EQ(0, submit(sp, &cc));
	wait_done(&w, 3);
	ma = a.msg;
	mb = b.msg;
	mc = cc.msg;

	ma->rcpt[0].state = DD_RCPT_DELIVERED;
	ma->rcpt[0].attempts = 1;
	dd_spool_final(sp, ma, 0);
	ma->rcpt[1].state = DD_RCPT_DEFERRED;
	ma->rcpt[1].attempts = 2;
	ma->rcpt[1].next_try = 1234567;
	dd_spool_defer(sp, ma, 1);
	ma->flags |= DD_MSG_HELD;
	dd_spool_hold(sp, ma, true);
	ASSERT_EQ(2, atomic_load(&ma->pending));

	mb->rcpt[0].state = DD_RCPT_DELIVERED;
	dd_spool_final(sp, mb, 0);
	mb->rcpt[1].state = DD_RCPT_DEFERRED;
	mb->rcpt[1].attempts = 1;
	mb->rcpt[1].next_try = 42;
	dd_spool_defer(sp, mb, 1);
	mb->rcpt[1].state = DD_RCPT_FAILED;
	mb->rcpt[1].attempts = 2;
	dd_spool_final(sp, mb, 1);	/* mb belongs to the spool now */

	dd_spool_hold(sp, mc, true);
	dd_spool_hold(sp, mc, false);
	mc->rcpt[0].state = DD_RCPT_DEFERRED;
	mc->rcpt[0].attempts = 1;
	mc->rcpt[0].next_try = 999;
	dd_spool_defer(sp, mc, 0);
	/* A second final of a final recipient while others pend is refused. */
	mc->rcpt[0].state = DD_RCPT_QUEUED;
	dd_spool_final(sp, mc, 0);
	ASSERT_EQ(1, atomic_load(&mc->pending));
	dd_spool_final(sp, mc, 7);
	ASSERT_EQ(1, atomic_load(&mc->pending));

	dd_spool_close(sp);
	dd_spool_stats(sp, &st);
	ASSERT_EQ(9, st.journal);
	dd_spool_free_msgs(sp);
	free(f.v);

	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(2, f.n);
	ma = found_id(&f, a.id);
	mc = found_id(&f, cc.id);
	ASSERT_NE(NULL, ma);
	ASSERT_NE(NULL, mc);
	ASSERT_EQ(NULL, found_id(&f, b.id));
	ASSERT_EQ(2, atomic_load(&ma->pending));
	ASSERT_EQ(DD_RCPT_DELIVERED, ma->rcpt[0].state);
	ASSERT_EQ(DD_RCPT_DEFERRED, ma->rcpt[1].state);
	ASSERT_EQ(2, ma->rcpt[1].attempts);
	ASSERT_EQ(1234567, ma->rcpt[1].next_try);
	ASSERT_EQ(DD_RCPT_QUEUED, ma->rcpt[2].state);
	ASSERT_TRUE(ma->flags & DD_MSG_HELD);
	ASSERT_EQ(1, atomic_load(&mc->pending));
	ASSERT_EQ(DD_RCPT_DEFERRED, mc->rcpt[0].state);
	ASSERT_EQ(1, mc->rcpt[0].attempts);
	ASSERT_EQ(999, mc->rcpt[0].next_try);
	ASSERT_FALSE(mc->flags & DD_MSG_HELD);
	ASSERT_TRUE(same(sp, ma, &a));

	/* Finish them: the old segment goes once its last message is final. */
	ma->rcpt[1].state = DD_RCPT_FAILED;
	dd_spool_final(sp, ma, 1);
	ma->rcpt[2].state = DD_RCPT_DELIVERED;
	dd_spool_final(sp, ma, 2);
	mc->rcpt[0].state = DD_RCPT_DELIVERED;
	dd_spool_final(sp, mc, 0);
	close_spool(sp, &f);
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(0, f.n);
	ASSERT_EQ(1, count_files(dir, ".dat"));
	ASSERT_EQ(1, count_files(dir, ".jnl"));
	close_spool(sp, &f);
	free(a.body);
	free(b.body);
	free(cc.body);
	rm_rf(dir);
	free(dir);
	leak_check();
}

TEST(reclaim)
{
	enum { N = 40 };
	char *dir = tmpdir();
	struct dd_spool_conf c = conf_for(dir);
	struct dd_spool_stats st;
	struct sub subs[N];
	struct dd_spool *sp;
	struct waiter w;
	struct found f;
	unsigned int i, r, nseg;
	int k;

	waiter_init(&w);
	c.segment_size = 4096;
	c.fsync = false;
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	for (i = 0; i < N; i++) {
		make_sub(&subs[i], &w, i, 1000, false);
		ASSERT_EQ(0, submit(sp, &subs[i]));
		wait_done(&w, i + 1);	/* one batch each: rotations */
		ASSERT_EQ(0, subs[i].err);
	}
	nseg = count_files(dir, ".dat");
	ASSERT_LT(5, nseg);
	ASSERT_EQ(nseg, count_files(dir, ".jnl"));
	dd_spool_stats(sp, &st);
	ASSERT_EQ(nseg, st.segments);
	ASSERT_EQ(0, st.reclaimed);
	for (i = 0; i < N; i++) {
		struct dd_msg *m = subs[i].msg;
		unsigned int n = m->nrcpt;

		for (r = 0; r < n; r++) {
			m->rcpt[r].state = DD_RCPT_DELIVERED;
			dd_spool_final(sp, m, r);	/* m may be gone after the last */
		}
	}
	for (k = 0; k < 500; k++) {
		dd_spool_stats(sp, &st);
		if (st.reclaimed == nseg - 1)
			break;
		usleep(10000);
	}
	ASSERT_EQ(nseg - 1, st.reclaimed);
	ASSERT_EQ(1, st.segments);
	ASSERT_EQ(1, count_files(dir, ".dat"));
	ASSERT_EQ(1, count_files(dir, ".jnl"));
	close_spool(sp, &f);

	/* The last active segment, empty, goes at the next open. */
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(0, f.n);
	dd_spool_stats(sp, &st);
	ASSERT_EQ(1, st.reclaimed);
	ASSERT_EQ(1, st.segments);
	ASSERT_EQ(1, count_files(dir, ".dat"));
	close_spool(sp, &f);
	for (i = 0; i < N; i++)
		free(subs[i].body);
	rm_rf(dir);
	free(dir);
	leak_check();
}

/* Submit n messages in one spool, close; ids, record offsets, segment. */
static void fill(struct __test_metadata *_metadata, const struct dd_spool_conf *c,
		 struct sub *subs, unsigned int n, struct waiter *w,
		 uint64_t *roff, uint32_t *seg)
{
	struct dd_spool *sp;
	struct found f;
	unsigned int i;

	waiter_init(w);
	ASSERT_EQ(0, open_spool(&sp, c, &f));
	for (i = 0; i < n; i++) {
		make_sub(&subs[i], w, i, 500 + 100 * i, i == 1);
		ASSERT_EQ(0, submit(sp, &subs[i]));
	}
	wait_done(w, n);
	ASSERT_EQ(0, w->nerr);
	for (i = 0; i < n; i++) {
		roff[i] = rec_off(subs[i].msg);
		ASSERT_EQ(0, roff[i] % 8);
		ASSERT_EQ(subs[0].msg->seg, subs[i].msg->seg);
	}
	*seg = subs[0].msg->seg;
	close_spool(sp, &f);
}

static void flip(const char *dir, uint32_t seg, const char *ext, uint64_t off)
{
	char path[512];
	unsigned char b;
	int fd;

	snprintf(path, sizeof(path), "%s/seg-%08u.%s", dir, seg, ext);
	fd = open(path, O_RDWR);
	if (fd < 0 || pread(fd, &b, 1, (off_t)off) != 1)
		abort();
	b ^= 0x20;
	if (pwrite(fd, &b, 1, (off_t)off) != 1)
		abort();
	close(fd);
}

TEST(corrupt_record)
{
	enum { N = 6 };
	char *dir = tmpdir(), *spool = subdir(dir, "spool"), *log = subdir(dir, "log");
	struct dd_spool_conf c = conf_for(spool);
	struct dd_spool_stats st;
	uint64_t roff[N];
	struct sub subs[N];
	struct dd_spool *sp;
	struct waiter w;
	struct found f;
	char line[256];
	unsigned int i;
	uint32_t seg;

	ASSERT_EQ(0, dd_log_open(log, "info"));
	fill(_metadata, &c, subs, N, &w, roff, &seg);
	/* A byte of message 2's body, and message 4's length field. */
	flip(spool, seg, "dat", roff[2] + sizeof(struct dd_rec_hdr) + 40);
	flip(spool, seg, "dat", roff[4] + offsetof(struct dd_rec_hdr, len) + 1);

	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(N - 2, f.n);
	for (i = 0; i < N; i++) {
		struct dd_msg *m = found_id(&f, subs[i].id);

		if (i == 2 || i == 4) {
			ASSERT_EQ(NULL, m);
			continue;
		}
		ASSERT_NE(NULL, m) TH_LOG("message %u", i);
		ASSERT_TRUE(same(sp, m, &subs[i]));
	}
	dd_spool_stats(sp, &st);
	ASSERT_EQ(2, st.skipped);
	snprintf(line, sizeof(line),
		 "spool: seg-%08u.dat offset %llu: corrupt record (crc mismatch), skipped",
		 seg, (unsigned long long)roff[2]);
	ASSERT_NE(NULL, strstr(slurp(log), line)) TH_LOG("log: %s", slurp(log));
	snprintf(line, sizeof(line),
		 "spool: seg-%08u.dat offset %llu: corrupt record (bad header), skipped",
		 seg, (unsigned long long)roff[4]);
	ASSERT_NE(NULL, strstr(slurp(log), line)) TH_LOG("log: %s", slurp(log));
	close_spool(sp, &f);
	for (i = 0; i < N; i++)
		free(subs[i].body);
	rm_rf(dir);
	free(spool);
	free(log);
	free(dir);
	leak_check();
}

TEST(torn_tail)
{
	enum { N = 5 };
	char *dir = tmpdir(), *spool = subdir(dir, "spool"), *log = subdir(dir, "log");
	struct dd_spool_conf c = conf_for(spool);
	struct dd_spool_stats st;
	uint64_t roff[N];
	struct sub subs[N];
	struct dd_spool *sp;
	struct waiter w;
	struct found f;
	char path[512];
	unsigned int i;
	uint32_t seg;

	ASSERT_EQ(0, dd_log_open(log, "info"));
	fill(_metadata, &c, subs, N, &w, roff, &seg);
	/* The spool's next segment is the last one, and empty: remove it so
	 * that seg is the last, as after a crash mid-batch. */
	snprintf(path, sizeof(path), "%s/seg-%08u.dat", spool, seg + 1);
	ASSERT_EQ(-1, access(path, F_OK));	/* reopen made none yet */
	snprintf(path, sizeof(path), "%s/seg-%08u.dat", spool, seg);
	ASSERT_EQ(0, truncate(path, (off_t)(roff[N - 1] + 100)));

	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(N - 1, f.n);
	for (i = 0; i < N - 1; i++) {
		struct dd_msg *m = found_id(&f, subs[i].id);

		ASSERT_NE(NULL, m);
		ASSERT_TRUE(same(sp, m, &subs[i]));
	}
	ASSERT_EQ(NULL, found_id(&f, subs[N - 1].id));
	ASSERT_EQ((off_t)roff[N - 1], file_size(spool, seg, "dat"));
	dd_spool_stats(sp, &st);
	ASSERT_EQ(1, st.skipped);
	ASSERT_NE(NULL, strstr(slurp(log), "torn record at end, truncated to"));
	close_spool(sp, &f);

	/* Clean now. */
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(N - 1, f.n);
	dd_spool_stats(sp, &st);
	ASSERT_EQ(0, st.skipped);
	close_spool(sp, &f);

	/*
	 * A partial header at the end of a segment that is no longer the
	 * last: the rest is ignored, not truncated.
	 */
	ASSERT_EQ(0, truncate(path, (off_t)(roff[N - 2] + 20)));
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(N - 2, f.n);
	ASSERT_EQ((off_t)roff[N - 2] + 20, file_size(spool, seg, "dat"));
	ASSERT_NE(NULL, strstr(slurp(log), "torn record at end, ignored"));
	close_spool(sp, &f);
	for (i = 0; i < N; i++)
		free(subs[i].body);
	rm_rf(dir);
	free(spool);
	free(log);
	free(dir);
	leak_check();
}

TEST(bad_journal_entry)
{
	enum { N = 3 };
	char *dir = tmpdir(), *spool = subdir(dir, "spool"), *log = subdir(dir, "log");
	struct dd_spool_conf c = conf_for(spool);
	unsigned char junk[sizeof(struct dd_jrec)], rec[sizeof(struct dd_jrec)];
	struct dd_spool_stats st;
	struct dd_msg *m;
	struct sub subs[N];
	struct dd_spool *sp;
	struct waiter w;
	struct found f;
	char path[512], line[256];
	off_t jsize;
	unsigned int i;
	int fd;

	ASSERT_EQ(0, dd_log_open(log, "info"));
	waiter_init(&w);
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	for (i = 0; i < N; i++) {
		make_sub(&subs[i], &w, 3 * i, 400, false);	/* 1 recipient */
		ASSERT_EQ(0, submit(sp, &subs[i]));
	}
	wait_done(&w, N);
	m = subs[0].msg;
	m->rcpt[0].state = DD_RCPT_DELIVERED;
	dd_spool_final(sp, m, 0);
	m = subs[1].msg;
	m->rcpt[0].state = DD_RCPT_DEFERRED;
	m->rcpt[0].attempts = 3;
	m->rcpt[0].next_try = 777;
	dd_spool_defer(sp, m, 0);
	close_spool(sp, &f);

	/* Garbage, then a good HOLD of message 2, then half a record. */
	snprintf(path, sizeof(path), "%s/seg-%08u.jnl", spool, DD_QID_SEG(subs[0].id));
	jsize = file_size(spool, DD_QID_SEG(subs[0].id), "jnl");
	ASSERT_EQ((off_t)(sizeof(struct dd_jnl_hdr) + 2 * sizeof(rec)), jsize);
	memset(junk, 0xa5, sizeof(junk));
	dd_jrec_encode(rec, DD_J_HOLD, subs[2].id, 0, 0, 0);
	fd = open(path, O_WRONLY | O_APPEND);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)sizeof(junk), write(fd, junk, sizeof(junk)));
	ASSERT_EQ((ssize_t)sizeof(rec), write(fd, rec, sizeof(rec)));
	ASSERT_EQ(10, write(fd, rec, 10));
	close(fd);

	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(2, f.n);
	ASSERT_EQ(NULL, found_id(&f, subs[0].id));
	m = found_id(&f, subs[1].id);
	ASSERT_NE(NULL, m);
	ASSERT_EQ(DD_RCPT_DEFERRED, m->rcpt[0].state);
	ASSERT_EQ(3, m->rcpt[0].attempts);
	ASSERT_EQ(777, m->rcpt[0].next_try);
	m = found_id(&f, subs[2].id);
	ASSERT_NE(NULL, m);
	ASSERT_TRUE(m->flags & DD_MSG_HELD);
	dd_spool_stats(sp, &st);
	ASSERT_EQ(2, st.skipped);
	snprintf(line, sizeof(line), "seg-%08u.jnl offset %llu: corrupt journal record, skipped",
		 DD_QID_SEG(subs[0].id), (unsigned long long)jsize);
	ASSERT_NE(NULL, strstr(slurp(log), line)) TH_LOG("log: %s", slurp(log));
	/* The torn half record is gone, so appends stay aligned. */
	ASSERT_EQ(jsize + 2 * (off_t)sizeof(rec),
		  file_size(spool, DD_QID_SEG(subs[0].id), "jnl"));
	m->rcpt[0].state = DD_RCPT_FAILED;
	dd_spool_final(sp, m, 0);
	close_spool(sp, &f);
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(1, f.n);
	ASSERT_EQ(subs[1].id, f.v[0]->id);
	close_spool(sp, &f);
	for (i = 0; i < N; i++)
		free(subs[i].body);
	rm_rf(dir);
	free(spool);
	free(log);
	free(dir);
	leak_check();
}

static void nop_done(void *arg, struct dd_msg *msg, int err)
{
	(void)arg;
	(void)msg;
	(void)err;
}

TEST(invalid_input)
{
	static const char *const rcpts[] = { "a@b.test", "c@d.test" };
	static const char *const bad_rcpt[] = { "a@b.test", "nodomain" };
	static const char *const bad_rcpt2[] = { "a@b.test", "x@" };
	static const char *const null_rcpt[] = { "a@b.test", NULL };
	char *dir = tmpdir();
	struct dd_spool_conf c = conf_for(dir);
	struct dd_spool_stats st;
	struct dd_spool *sp;
	struct dd_submit s, good = {
		.sender = "s@x.test", .rcpts = rcpts, .nrcpt = 2,
		.body = "a\r\n", .body_len = 3, .done = nop_done,
	};
	struct found f;
	int status;
	pid_t pid;

	c.commit_max = 0;
	ASSERT_EQ(-EINVAL, open_spool(&sp, &c, &f));
	c = conf_for(dir);
	c.segment_size = 0;
	ASSERT_EQ(-EINVAL, open_spool(&sp, &c, &f));
	c = conf_for(NULL);
	ASSERT_EQ(-EINVAL, open_spool(&sp, &c, &f));
	c = conf_for(dir);
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	/* A second process on the same spool: refused. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct dd_spool *sp2;
		struct found f2;

		_exit(open_spool(&sp2, &c, &f2) == -EBUSY ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));

	s = good; s.nrcpt = 0;
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, &s));
	s = good; s.body = NULL;
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, &s));
	s = good; s.body = "a\r\nb"; s.body_len = 4;
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, &s));
	s = good; s.body = "a\n"; s.body_len = 2;
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, &s));
	s = good; s.body = "\n"; s.body_len = 1;
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, &s));
	s = good; s.body_len = 0;
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, &s));
	s = good; s.rcpts = NULL;
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, &s));
	s = good; s.rcpts = bad_rcpt;
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, &s));
	s = good; s.rcpts = bad_rcpt2;
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, &s));
	s = good; s.rcpts = null_rcpt;
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, &s));
	s = good; s.sender = NULL;
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, &s));
	s = good; s.flags = DD_MSG_HELD;
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, &s));
	s = good; s.done = NULL;
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, &s));
	ASSERT_EQ(-EINVAL, dd_spool_submit(sp, NULL));
	s = good; s.sender = "";
	s.flags = DD_MSG_NULLSENDER;
	ASSERT_EQ(0, dd_spool_submit(sp, &s));
	ASSERT_EQ(-ENOENT, dd_spool_seg_fd(sp, 12345));
	dd_spool_close(sp);
	dd_spool_stats(sp, &st);
	ASSERT_EQ(1, st.records);
	dd_spool_free_msgs(sp);
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(1, f.n);
	ASSERT_STREQ("", f.v[0]->sender);
	ASSERT_EQ(DD_MSG_NULLSENDER, f.v[0]->flags);
	close_spool(sp, &f);
	rm_rf(dir);
	free(dir);
	leak_check();
}

/* A write that fails part way: the batch fails and leaves nothing. */
TEST(write_error_fsize)
{
	char *dir = tmpdir();
	struct dd_spool_conf c = conf_for(dir);
	struct dd_spool_stats st;
	struct rlimit rl, old;
	struct sub subs[5];
	struct dd_spool *sp;
	struct waiter w;
	struct found f;
	unsigned int i;
	uint32_t seg;
	off_t size;

	signal(SIGXFSZ, SIG_IGN);
	waiter_init(&w);
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	for (i = 0; i < 5; i++)
		make_sub(&subs[i], &w, i, i == 3 ? 4000 : 500, false);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, submit(sp, &subs[i]));
	wait_done(&w, 3);
	ASSERT_EQ(0, w.nerr);
	seg = subs[0].msg->seg;
	size = file_size(dir, seg, "dat");

	ASSERT_EQ(0, getrlimit(RLIMIT_FSIZE, &old));
	rl = old;
	rl.rlim_cur = (rlim_t)size + 1000;
	ASSERT_EQ(0, setrlimit(RLIMIT_FSIZE, &rl));
	ASSERT_EQ(0, submit(sp, &subs[3]));
	wait_done(&w, 4);
	ASSERT_EQ(0, setrlimit(RLIMIT_FSIZE, &old));
	ASSERT_EQ(-EFBIG, subs[3].err);
	ASSERT_EQ(NULL, subs[3].msg);
	ASSERT_EQ(size, file_size(dir, seg, "dat"));

	/* The next goes to a new segment. */
	ASSERT_EQ(0, submit(sp, &subs[4]));
	wait_done(&w, 5);
	ASSERT_EQ(0, subs[4].err);
	ASSERT_EQ(seg + 1, subs[4].msg->seg);
	close_spool(sp, &f);

	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(4, f.n);
	ASSERT_EQ(0, subs[3].id);
	for (i = 0; i < 5; i++)
		if (i != 3)
			ASSERT_TRUE(same(sp, found_id(&f, subs[i].id), &subs[i]));
	dd_spool_stats(sp, &st);
	ASSERT_EQ(0, st.skipped);
	close_spool(sp, &f);
	for (i = 0; i < 5; i++)
		free(subs[i].body);
	rm_rf(dir);
	free(dir);
	leak_check();
}

/* A full filesystem (a small tmpfs in a private mount namespace). */
TEST(enospc_tmpfs)
{
	enum { N = 64 };
	char *dir = tmpdir();
	struct dd_spool_conf c = conf_for(dir);
	struct dd_spool_stats st;
	struct sub subs[N];
	struct dd_spool *sp;
	struct waiter w;
	struct found f;
	unsigned int i, ok = 0;
	int err = 0;

	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", dir, "tmpfs", 0, "size=96k") < 0) {
		rmdir(dir);
		free(dir);
		SKIP(return, "no tmpfs mount here: %s", strerror(errno));
	}
	waiter_init(&w);
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	for (i = 0; i < N && !err; i++) {
		make_sub(&subs[i], &w, i, 6000, false);
		ASSERT_EQ(0, submit(sp, &subs[i]));
		wait_done(&w, i + 1);
		err = subs[i].err;
		if (!err)
			ok++;
	}
	ASSERT_EQ(-ENOSPC, err);
	ASSERT_LT(3, ok);
	close_spool(sp, &f);
	/* Full: it opens all the same, submissions fail until there is room. */
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(ok, f.n);
	for (i = 0; i < ok; i++)
		ASSERT_TRUE(same(sp, found_id(&f, subs[i].id), &subs[i]));
	dd_spool_stats(sp, &st);
	ASSERT_EQ(0, st.skipped);
	ASSERT_EQ(0, submit(sp, &subs[ok]));
	wait_done(&w, ok + 2);
	ASSERT_EQ(-ENOSPC, subs[ok].err);
	/* Delivering everything frees the space; then it takes mail again. */
	for (i = 0; i < f.n; i++) {
		struct dd_msg *m = f.v[i];
		unsigned int r, n = m->nrcpt;

		for (r = 0; r < n; r++) {
			m->rcpt[r].state = DD_RCPT_DELIVERED;
			dd_spool_final(sp, m, r);
		}
	}
	for (i = 0; i < 200; i++) {
		ASSERT_EQ(0, submit(sp, &subs[ok]));
		wait_done(&w, ok + 3 + i);
		if (!subs[ok].err)
			break;
		usleep(10000);
	}
	ASSERT_EQ(0, subs[ok].err);
	dd_spool_stats(sp, &st);
	ASSERT_EQ(1, st.segments);
	ASSERT_EQ(1, count_files(dir, ".dat"));
	close_spool(sp, &f);
	for (i = 0; i < ok + 1; i++)
		free(subs[i].body);
	umount(dir);
	rmdir(dir);
	free(dir);
	leak_check();
}

/* Recipients of a message go final on different threads at once. */
struct fin_arg {
	struct dd_spool *sp;
	struct sub *subs;
	unsigned int n, rcpt;
};

static void *finisher(void *p)
{
	struct fin_arg *a = p;
	unsigned int i;

	for (i = 0; i < a->n; i += 2) {
		struct dd_msg *m = a->subs[i].msg;

		if (a->rcpt < a->subs[i].nrcpt) {
			m->rcpt[a->rcpt].state = DD_RCPT_DELIVERED;
			dd_spool_final(a->sp, m, a->rcpt);
		}
	}
	return NULL;
}

TEST(concurrent_final)
{
	enum { N = 600 };
	char *dir = tmpdir();
	struct dd_spool_conf c = conf_for(dir);
	struct dd_spool_stats st;
	struct sub *subs = calloc(N, sizeof(*subs));
	struct fin_arg fa[3];
	pthread_t th[3];
	struct dd_spool *sp;
	struct waiter w;
	struct found f;
	unsigned int i, t;

	ASSERT_NE(NULL, subs);
	waiter_init(&w);
	c.segment_size = 16 << 10;
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	for (i = 0; i < N; i++) {
		make_sub(&subs[i], &w, i, 700, false);
		ASSERT_EQ(0, submit(sp, &subs[i]));
		if (i % 50 == 49)
			wait_done(&w, i + 1);	/* batches spread over segments */
	}
	wait_done(&w, N);
	ASSERT_EQ(0, w.nerr);
	/* Even messages: every recipient final, one thread per index. */
	for (t = 0; t < 3; t++) {
		fa[t] = (struct fin_arg){ sp, subs, N, t };
		ASSERT_EQ(0, pthread_create(&th[t], NULL, finisher, &fa[t]));
	}
	for (t = 0; t < 3; t++)
		pthread_join(th[t], NULL);
	close_spool(sp, &f);
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(N / 2, f.n);
	for (i = 1; i < N; i += 2)
		ASSERT_TRUE(same(sp, found_id(&f, subs[i].id), &subs[i]));
	dd_spool_stats(sp, &st);
	ASSERT_EQ(0, st.skipped);
	close_spool(sp, &f);
	for (i = 0; i < N; i++)
		free(subs[i].body);
	free(subs);
	rm_rf(dir);
	free(dir);
	leak_check();
}

/* The record's version on disk (1: plain, 2: with the DSN block). */
static unsigned int rec_version(struct dd_spool *sp, struct dd_msg *m)
{
	struct dd_rec_hdr h;

	if (pread(dd_spool_seg_fd(sp, m->seg), &h, sizeof(h),
		  (off_t)rec_off(m)) != sizeof(h) || le32toh(h.magic) != DD_REC_MAGIC)
		return 0;
	return le16toh(h.version);
}

/*
 * RFC 3461 fields and SMTPUTF8 survive a restart; a message without them
 * still gets a version 1 record, which still loads.
 */
TEST(dsn_roundtrip)
{
	static const char dotted[] = "Subject: x\r\n\r\n.dot\r\n";
	static const uint8_t notify[3] = {
		DD_NOTIFY_SUCCESS | DD_NOTIFY_FAILURE, 0, DD_NOTIFY_NEVER,
	};
	static const char *const orcpt[3] = { "rfc822;x+2Bo@y.test", NULL,
					      "utf-8;z+40w" };
	char *dir = tmpdir();
	struct dd_spool_conf c = conf_for(dir);
	struct dd_spool *sp;
	struct sub a, b, u;
	struct dd_submit d;
	struct waiter w;
	struct found f;
	int pass;

	waiter_init(&w);
	make_sub(&a, &w, 1, 200, false);
	make_sub(&b, &w, 2, 300, true);		/* 3 recipients, stuffed */
	make_sub(&u, &w, 4, 200, false);	/* 2 recipients */
	strcpy(b.rcpt[0], "j\xc3\xb6rg@b\xc3\xbc" "cher.test");
	b.flags = DD_MSG_8BIT | DD_MSG_SMTPUTF8;
	u.flags = DD_MSG_SMTPUTF8;
	free(u.body);
	u.body = strdup(dotted);
	u.len = strlen(dotted);
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	ASSERT_EQ(0, submit(sp, &a));
	d = (struct dd_submit){
		.sender = b.sender, .rcpts = b.rp, .nrcpt = b.nrcpt,
		.flags = b.flags, .body = b.body, .body_len = b.len,
		.envid = "QQ+2Bid", .ret = DD_RET_FULL, .notify = notify,
		.orcpt = orcpt, .done = done_cb, .arg = &b,
	};
	ASSERT_EQ(3, b.nrcpt);
	ASSERT_EQ(0, dd_spool_submit(sp, &d));
	ASSERT_EQ(0, submit(sp, &u));
	wait_done(&w, 3);
	ASSERT_EQ(0, a.err + b.err + u.err);
	for (pass = 0; pass < 2; pass++) {
		struct dd_msg *ma = pass ? found_id(&f, a.id) : a.msg;
		struct dd_msg *mb = pass ? found_id(&f, b.id) : b.msg;
		struct dd_msg *mu = pass ? found_id(&f, u.id) : u.msg;

		ASSERT_NE(NULL, ma);
		ASSERT_NE(NULL, mb);
		ASSERT_NE(NULL, mu);
		ASSERT_TRUE(same(sp, ma, &a));
		ASSERT_TRUE(same(sp, mb, &b));
		ASSERT_TRUE(same(sp, mu, &u));
		EXPECT_EQ(1, rec_version(sp, ma));
		EXPECT_EQ(2, rec_version(sp, mb));
		EXPECT_EQ(2, rec_version(sp, mu));
		/* the plain one: nothing */
		EXPECT_EQ(NULL, ma->envid);
		EXPECT_EQ(DD_RET_NONE, ma->ret);
		EXPECT_EQ(0, ma->rcpt[0].notify);
		EXPECT_EQ(NULL, ma->rcpt[0].orcpt);
		/* everything, as given */
		ASSERT_NE(NULL, mb->envid);
		EXPECT_STREQ("QQ+2Bid", mb->envid);
		EXPECT_EQ(DD_RET_FULL, mb->ret);
		EXPECT_EQ(DD_MSG_8BIT | DD_MSG_SMTPUTF8,
			  mb->flags & ~(DD_MSG_STUFFED | DD_MSG_HELD));
		EXPECT_TRUE(mb->flags & DD_MSG_STUFFED);
		EXPECT_STREQ("b\xc3\xbc" "cher.test", mb->rcpt[0].domain);
		for (int i = 0; i < 3; i++) {
			EXPECT_EQ(notify[i], mb->rcpt[i].notify);
			if (orcpt[i]) {
				ASSERT_NE(NULL, mb->rcpt[i].orcpt);
				EXPECT_STREQ(orcpt[i], mb->rcpt[i].orcpt);
			} else {
				EXPECT_EQ(NULL, mb->rcpt[i].orcpt);
			}
		}
		/* SMTPUTF8 alone: the flag, an empty DSN block after the
		 * stuffed copy */
		EXPECT_EQ(DD_MSG_SMTPUTF8 | DD_MSG_STUFFED, mu->flags);
		EXPECT_EQ(NULL, mu->envid);
		EXPECT_EQ(DD_RET_NONE, mu->ret);
		EXPECT_EQ(0, mu->rcpt[1].notify);
		EXPECT_EQ(NULL, mu->rcpt[1].orcpt);
		close_spool(sp, &f);
		ASSERT_EQ(0, open_spool(&sp, &c, &f));
		ASSERT_EQ(3, f.n);
	}
	close_spool(sp, &f);
	free(a.body);
	free(b.body);
	free(u.body);
	rm_rf(dir);
	free(dir);
	leak_check();
}

/* A DSN block that does not check is a corrupt record, and only that one. */
TEST(dsn_bad_input)
{
	static const uint8_t bad_notify[1] = { DD_NOTIFY_NEVER | DD_NOTIFY_DELAY };
	static const uint8_t bad_bits[1] = { 0x10 };
	char *dir = tmpdir(), long_orcpt[DD_ORCPT_MAX + 2];
	const char *orcpt[1] = { long_orcpt };
	struct dd_spool_conf c = conf_for(dir);
	struct dd_spool *sp;
	struct dd_submit d;
	struct waiter w;
	struct found f;
	struct sub a;

	waiter_init(&w);
	make_sub(&a, &w, 3, 100, false);	/* 1 recipient */
	ASSERT_EQ(0, open_spool(&sp, &c, &f));
	d = (struct dd_submit){
		.sender = a.sender, .rcpts = a.rp, .nrcpt = 1, .body = a.body,
		.body_len = a.len, .done = done_cb, .arg = &a,
	};
	d.ret = DD_RET_HDRS + 1;
	EXPECT_EQ(-EINVAL, dd_spool_submit(sp, &d));
	d.ret = DD_RET_HDRS;
	d.notify = bad_notify;
	EXPECT_EQ(-EINVAL, dd_spool_submit(sp, &d));
	d.notify = bad_bits;
	EXPECT_EQ(-EINVAL, dd_spool_submit(sp, &d));
	d.notify = NULL;
	memset(long_orcpt, 'o', sizeof(long_orcpt) - 1);
	long_orcpt[sizeof(long_orcpt) - 1] = '\0';
	d.orcpt = orcpt;
	EXPECT_EQ(-EINVAL, dd_spool_submit(sp, &d));
	long_orcpt[DD_ORCPT_MAX] = '\0';
	EXPECT_EQ(0, dd_spool_submit(sp, &d));
	wait_done(&w, 1);
	ASSERT_NE(NULL, a.msg);
	EXPECT_EQ(DD_ORCPT_MAX, strlen(a.msg->rcpt[0].orcpt));
	EXPECT_EQ(DD_RET_HDRS, a.msg->ret);
	close_spool(sp, &f);
	free(a.body);
	rm_rf(dir);
	free(dir);
	leak_check();
}

TEST_HARNESS_MAIN
