// SPDX-License-Identifier: GPL-2.0
/*
 * The module's tracepoints, read back through a tracefs instance of our
 * own: each event a known workload must produce, with the right fields,
 * and nothing more.  Needs root and tracefs (the VM mounts it).
 *
 * The events of one queue are told apart by its id, which the first
 * evq_ctl event of the test gives.
 */
#include "evq_util.h"

#include <sys/stat.h>

/* The 6.1 harness's TEST() passes a variant that plain tests never use. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define TR_ROOT		"/sys/kernel/tracing"
#define TR_INST		TR_ROOT "/instances/evq_trace_test"
#define TR_MAX		4096
#define TR_FILE_SIZE	16384

static const char *const tr_events[] = {
	"evq_post", "evq_overflow", "evq_wait_enter", "evq_wait_exit",
	"evq_ctl", "evq_sf_not_resident", "evq_sf_pages_ready", "evq_sf_done",
};

/* One trace line: the event's name and its "k=v ..." text. */
struct tr_ev {
	char name[32];
	char args[224];
};

struct tr_log {
	struct tr_ev ev[TR_MAX];
	int n;
};

static int tr_write(const char *file, const char *val)
{
	char path[256];
	int fd, ret;

	snprintf(path, sizeof(path), TR_INST "/%s", file);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = write(fd, val, strlen(val)) == (ssize_t)strlen(val) ? 0 : -errno;
	close(fd);
	return ret;
}

/* Read the instance's buffer into @log; lines not from evq are skipped. */
static int tr_read(struct tr_log *log)
{
	char line[512];
	FILE *f;

	f = fopen(TR_INST "/trace", "re");
	if (!f)
		return -errno;
	log->n = 0;
	while (fgets(line, sizeof(line), f) && log->n < TR_MAX) {
		char *p = strstr(line, ": evq_");
		char *colon;

		if (line[0] == '#' || !p)
			continue;
		p += 2;
		colon = strchr(p, ':');
		if (!colon || colon - p >= (long)sizeof(log->ev[0].name))
			continue;
		memcpy(log->ev[log->n].name, p, colon - p);
		log->ev[log->n].name[colon - p] = 0;
		snprintf(log->ev[log->n].args, sizeof(log->ev[0].args), "%s",
			 colon + 2);
		log->ev[log->n].args[strcspn(log->ev[log->n].args, "\n")] = 0;
		log->n++;
	}
	fclose(f);
	return 0;
}

/* The value of "key=" in @ev's text as a number, or -1 when absent. */
static long long tr_arg(const struct tr_ev *ev, const char *key)
{
	char pat[40];
	const char *p;

	snprintf(pat, sizeof(pat), " %s=", key);
	if (!strncmp(ev->args, pat + 1, strlen(pat + 1)))
		p = ev->args + strlen(pat + 1);		/* the first one */
	else if ((p = strstr(ev->args, pat)))
		p += strlen(pat);
	else
		return -1;
	return strtoll(p, NULL, 0);
}

static int tr_has(const struct tr_ev *ev, const char *kv)
{
	char pat[64];

	snprintf(pat, sizeof(pat), " %s ", kv);
	if (strstr(ev->args, pat))
		return 1;
	snprintf(pat, sizeof(pat), " %s", kv);	/* at the end */
	const char *p = strstr(ev->args, pat);

	return p && !p[strlen(pat)];
}

/* How many events named @name of queue @qid have @kv among their args. */
static int tr_count(const struct tr_log *log, long long qid, const char *name,
		    const char *kv)
{
	int n = 0;

	for (int i = 0; i < log->n; i++) {
		if (strcmp(log->ev[i].name, name) ||
		    tr_arg(&log->ev[i], "queue") != qid)
			continue;
		if (!kv || tr_has(&log->ev[i], kv))
			n++;
	}
	return n;
}

/* The first event named @name of queue @qid, or NULL. */
static const struct tr_ev *tr_find(const struct tr_log *log, long long qid,
				   const char *name)
{
	for (int i = 0; i < log->n; i++)
		if (!strcmp(log->ev[i].name, name) &&
		    tr_arg(&log->ev[i], "queue") == qid)
			return &log->ev[i];
	return NULL;
}

FIXTURE(tr) {
	struct evq_q q;
	struct tr_log *log;
	long long qid;
	int pipes[8][2];
};

static void tr_watch_pipes(struct __test_metadata *_metadata,
			   FIXTURE_DATA(tr) *self, uint32_t mode)
{
	struct evq_ctl e[8];

	for (int i = 0; i < 8; i++) {
		ASSERT_EQ(0, pipe2(self->pipes[i], O_NONBLOCK | O_CLOEXEC));
		evq_ctl_fill(&e[i], EVQ_CTL_ADD, self->pipes[i][0], EPOLLIN,
			     mode, 0x100 + i);
	}
	ASSERT_EQ(8, evq_ctl_batch(self->q.fd, e, 8));
}

FIXTURE_SETUP(tr)
{
	struct stat st;

	for (int i = 0; i < 8; i++)
		self->pipes[i][0] = self->pipes[i][1] = -1;
	self->q.fd = -1;
	EVQ_REQUIRE_DEVICE();
	if (stat(TR_ROOT "/instances", &st))
		SKIP(_exit(255), "no tracefs at " TR_ROOT);
	if (mkdir(TR_INST, 0700) && errno != EEXIST)
		SKIP(_exit(255), "cannot make a tracefs instance (root?)");
	self->log = calloc(1, sizeof(*self->log));
	ASSERT_NE(NULL, self->log);
	ASSERT_EQ(0, tr_write("events/evq/enable", "0"));
	ASSERT_EQ(0, tr_write("trace", ""));
	ASSERT_EQ(0, tr_write("events/evq/enable", "1"));
	ASSERT_EQ(0, evq_q_open(&self->q, 4));
	tr_watch_pipes(_metadata, self, EVQ_WATCH_EDGE);
	ASSERT_EQ(0, tr_read(self->log));
	const struct tr_ev *ctl = NULL;

	for (int i = 0; i < self->log->n && !ctl; i++)
		if (!strcmp(self->log->ev[i].name, "evq_ctl"))
			ctl = &self->log->ev[i];
	ASSERT_NE(NULL, ctl) TH_LOG("no evq_ctl event in the trace");
	self->qid = tr_arg(ctl, "queue");
	ASSERT_LT(0, self->qid);
	EXPECT_EQ(8, tr_arg(ctl, "nr"));
	EXPECT_EQ(8, tr_arg(ctl, "ret"));
}

FIXTURE_TEARDOWN(tr)
{
	tr_write("events/evq/enable", "0");
	rmdir(TR_INST);
	for (int i = 0; i < 8; i++) {
		if (self->pipes[i][0] >= 0)
			close(self->pipes[i][0]);
		if (self->pipes[i][1] >= 0)
			close(self->pipes[i][1]);
	}
	evq_q_close(&self->q);
	free(self->log);
}

/* Every event has a format file: what perf and bpftrace read. */
TEST_F(tr, formats)
{
	char path[256];

	for (unsigned int i = 0; i < ARRAY_SIZE(tr_events); i++) {
		snprintf(path, sizeof(path), TR_ROOT "/events/evq/%s/format",
			 tr_events[i]);
		EXPECT_EQ(0, access(path, R_OK)) TH_LOG("%s", path);
	}
}

/*
 * A 4-entry ring and 8 ready pipes: 4 posts, 4 overflows; a wait after
 * harvesting the 4 says so and moves the other 4 in.
 */
TEST_F(tr, post_overflow_wait)
{
	const struct tr_ev *ev;

	for (int i = 0; i < 8; i++)
		ASSERT_EQ(1, write(self->pipes[i][1], "x", 1));
	ASSERT_EQ(4U, evq_harvest(&self->q, NULL, 4));
	ASSERT_EQ(4, evq_wait(self->q.fd, 0, 0, 0));
	ASSERT_EQ(0, tr_read(self->log));

	EXPECT_EQ(8, tr_count(self->log, self->qid, "evq_post", "type=READY"));
	EXPECT_EQ(4, tr_count(self->log, self->qid, "evq_overflow", NULL));
	for (int i = 0; i < 8; i++) {
		char kv[40];

		snprintf(kv, sizeof(kv), "user_data=0x%x", 0x100 + i);
		EXPECT_EQ(1, tr_count(self->log, self->qid, "evq_post", kv))
			TH_LOG("%s", kv);
	}
	ev = tr_find(self->log, self->qid, "evq_wait_enter");
	ASSERT_NE(NULL, ev);
	EXPECT_EQ(4, tr_arg(ev, "harvested"));
	EXPECT_EQ(0, tr_arg(ev, "ready"));
	EXPECT_EQ(0, tr_arg(ev, "timeout_ns"));
	ev = tr_find(self->log, self->qid, "evq_wait_exit");
	ASSERT_NE(NULL, ev);
	EXPECT_EQ(4, tr_arg(ev, "ret"));
	EXPECT_EQ(0, tr_arg(ev, "slept"));
}

/* A wait that times out slept; one that finds entries did not. */
TEST_F(tr, wait_slept)
{
	ASSERT_EQ(0, evq_wait(self->q.fd, 2 * NSEC_PER_MSEC, 1, 0));
	ASSERT_EQ(1, write(self->pipes[3][1], "x", 1));
	ASSERT_EQ(1, evq_wait(self->q.fd, NSEC_PER_SEC, 1, 0));
	ASSERT_EQ(0, tr_read(self->log));
	EXPECT_EQ(2, tr_count(self->log, self->qid, "evq_wait_enter", NULL));
	EXPECT_EQ(1, tr_count(self->log, self->qid, "evq_wait_exit",
			      "slept=1"));
	EXPECT_EQ(1, tr_count(self->log, self->qid, "evq_wait_exit",
			      "ret=0"));
	EXPECT_EQ(1, tr_count(self->log, self->qid, "evq_wait_exit",
			      "ret=1"));
	EXPECT_EQ(1, tr_count(self->log, self->qid, "evq_wait_enter",
			      "timeout_ns=2000000"));
}

/* ---- sendfile stages ---- */

static int tr_file(const char *dir, char *path, size_t len)
{
	static char buf[TR_FILE_SIZE];
	int fd;

	memset(buf, 'e', sizeof(buf));
	snprintf(path, len, "%s/evq_trace_test.%d", dir, getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf) || fsync(fd)) {
		close(fd);
		return -1;
	}
	return fd;
}

static long tr_sendfile(int qfd, int out, int in, uint64_t ud, uint32_t flags,
			struct evq_sendfile *sf)
{
	return evq_sf_ioctl(qfd, sf, out, in, 0, TR_FILE_SIZE, ud, flags);
}

/*
 * Hot, cold with NOTIFY, and asynchronous: the done, not-resident and
 * pages-ready events, each with its sizes, and the entries they post.
 */
TEST_F(tr, sendfile_stages)
{
	const char *dir = getenv("EVQ_SCRATCH");
	struct evq_sendfile sf;
	const struct tr_ev *ev;
	struct evq_cqe c[4];
	char path[256];
	int sv[2], fd;

	if (!dir || !*dir)
		SKIP(return, "no $EVQ_SCRATCH (run with tools/vm/run --disk)");
	ASSERT_EQ(0, evq_tcp_pair(sv));
	fd = tr_file(dir, path, sizeof(path));
	ASSERT_LE(0, fd);
	unlink(path);

	ASSERT_EQ(TR_FILE_SIZE, tr_sendfile(self->q.fd, sv[0], fd, 1, 0, &sf));
	evq_drain_fd(sv[1]);
	ASSERT_EQ(0, evq_make_cold(fd));
	ASSERT_EQ(0, tr_sendfile(self->q.fd, sv[0], fd, 2, EVQ_SF_NOTIFY, &sf));
	ASSERT_EQ(EVQ_SF_STOP_NOT_RESIDENT, sf.stop);
	ASSERT_EQ(1U, evq_collect(&self->q, c, 4, 1, 10000));
	ASSERT_EQ(EVQ_CQE_PAGES_READY, evq_cqe_type(&c[0]));
	ASSERT_EQ(0, tr_sendfile(self->q.fd, sv[0], fd, 3, EVQ_SF_ASYNC, &sf));
	ASSERT_EQ(1U, evq_collect(&self->q, c, 4, 1, 10000));
	ASSERT_EQ(EVQ_CQE_SENDFILE, evq_cqe_type(&c[0]));
	ASSERT_EQ(TR_FILE_SIZE, c[0].res);
	evq_drain_fd(sv[1]);
	ASSERT_EQ(0, tr_read(self->log));

	EXPECT_EQ(1, tr_count(self->log, self->qid, "evq_sf_done",
			      "user_data=0x1"));
	ev = tr_find(self->log, self->qid, "evq_sf_done");
	ASSERT_NE(NULL, ev);
	EXPECT_EQ(TR_FILE_SIZE, tr_arg(ev, "sent"));
	EXPECT_TRUE(tr_has(ev, "stop=DONE"));
	EXPECT_EQ(0, tr_arg(ev, "async"));

	EXPECT_EQ(1, tr_count(self->log, self->qid, "evq_sf_done",
			      "stop=NOT_RESIDENT"));
	ev = tr_find(self->log, self->qid, "evq_sf_not_resident");
	ASSERT_NE(NULL, ev);
	EXPECT_EQ(2, tr_arg(ev, "user_data"));
	EXPECT_EQ(0, tr_arg(ev, "pos"));
	EXPECT_EQ(TR_FILE_SIZE, tr_arg(ev, "window"));
	ev = tr_find(self->log, self->qid, "evq_sf_pages_ready");
	ASSERT_NE(NULL, ev);
	EXPECT_EQ(2, tr_arg(ev, "user_data"));
	EXPECT_EQ(TR_FILE_SIZE, tr_arg(ev, "bytes"));
	EXPECT_LT(0, tr_arg(ev, "latency_ns"));
	EXPECT_EQ(1, tr_count(self->log, self->qid, "evq_post",
			      "type=PAGES_READY"));

	EXPECT_EQ(1, tr_count(self->log, self->qid, "evq_sf_done",
			      "async=1"));
	EXPECT_EQ(1, tr_count(self->log, self->qid, "evq_post",
			      "type=SENDFILE"));
	EXPECT_EQ(3, tr_count(self->log, self->qid, "evq_sf_done", NULL));
	close(fd);
	close(sv[0]);
	close(sv[1]);
}

TEST_HARNESS_MAIN
