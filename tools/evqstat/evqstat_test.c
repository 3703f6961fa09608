// SPDX-License-Identifier: GPL-2.0
/*
 * evqstat_test: the evq module's netlink counters, read by the real
 * evqstat binary, against a workload this test makes itself.
 *
 * Each test opens its own queues through the raw uapi, does a counted
 * amount of work on them, runs `evqstat -j -p <its pid>` and checks with
 * json-c that every counter is exactly what it did.  The harness runs
 * each test in its own process, so the pid filter isolates it.  Where a
 * test needs to tell two of its queues apart it gives them rings of
 * different sizes.
 *
 * Needs /dev/evq (the VM: tools/vm/run --module ... --disk 512M), and for
 * the sendfile counters $EVQ_SCRATCH, an ext4 disk whose pages can be
 * made cold.  On the host only the cases without the module run: option
 * errors, "module not loaded", and the reply parser on hand-made
 * messages.
 *
 * The binary under test is $EVQSTAT, else evqstat next to this program.
 */
#include "evq_util.h"

#include <grp.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <sys/uio.h>

#include <json.h>
#include <netlink/netlink.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>

#include "evqstat.h"

/* The 6.1 harness's TEST() passes a variant that plain tests never use. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define ES_NOBODY	65534
#define ES_UD		0xe5e5e5e5ULL
#define ES_TIMEOUT_MS	30000

/* ---- running evqstat ---- */

static const char *es_binary(void)
{
	static char path[4096];
	const char *env = getenv("EVQSTAT");
	ssize_t n;
	char *slash;

	if (env && *env)
		return env;
	if (path[0])
		return path;
	n = readlink("/proc/self/exe", path, sizeof(path) - sizeof("evqstat"));
	if (n <= 0)
		return "evqstat";
	path[n] = 0;
	slash = strrchr(path, '/');
	strcpy(slash + 1, "evqstat");
	return path;
}

/* A running evqstat: its stdout and stderr as they arrive. */
struct es_proc {
	pid_t pid;
	int fd[2];		/* stdout, stderr; -1 at EOF */
	char *buf[2];
	size_t len[2];
	size_t used;		/* stdout bytes es_line() has returned */
};

struct es_result {
	int status;		/* exit code; 128 + signal; -1: did not run */
	char *out;
	char *err;
};

static int es_spawn(struct es_proc *p, const char *const *args)
{
	const char *argv[16] = { es_binary() };
	int po[2], pe[2];
	size_t n = 1;

	memset(p, 0, sizeof(*p));
	while (*args && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC))
		return -1;
	fflush(stdout);
	fflush(stderr);
	p->pid = fork();
	if (p->pid < 0)
		return -1;
	if (!p->pid) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	p->fd[0] = po[0];
	p->fd[1] = pe[0];
	return 0;
}

/* Read what is there within @ms; returns 0 once both pipes are at EOF. */
static int es_pump(struct es_proc *p, int ms)
{
	struct pollfd pf[2];
	int n = 0;

	for (int i = 0; i < 2; i++) {
		pf[i].fd = p->fd[i];
		pf[i].events = POLLIN;
		n += p->fd[i] >= 0;
	}
	if (!n)
		return 0;
	if (poll(pf, 2, ms) <= 0)
		return 1;
	for (int i = 0; i < 2; i++) {
		char chunk[4096];
		ssize_t r;

		if (p->fd[i] < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = read(p->fd[i], chunk, sizeof(chunk));
		if (r <= 0) {
			close(p->fd[i]);
			p->fd[i] = -1;
			continue;
		}
		p->buf[i] = realloc(p->buf[i], p->len[i] + r + 1);
		memcpy(p->buf[i] + p->len[i], chunk, r);
		p->len[i] += r;
		p->buf[i][p->len[i]] = 0;
	}
	return 1;
}

/* The next line of stdout (without its newline) within @ms, or NULL. */
static char *es_line(struct es_proc *p, int ms)
{
	int64_t deadline = evq_now_ns() + (int64_t)ms * NSEC_PER_MSEC;

	for (;;) {
		char *start = p->buf[0] ? p->buf[0] + p->used : NULL;
		char *nl = start ? memchr(start, '\n', p->len[0] - p->used) : NULL;

		if (nl) {
			char *line = strndup(start, nl - start);

			p->used += nl - start + 1;
			return line;
		}
		int64_t left = (deadline - evq_now_ns()) / NSEC_PER_MSEC;

		if (left <= 0 || !es_pump(p, (int)left))
			return NULL;
	}
}

/* Read to EOF, reap; a process still running after @ms is killed. */
static void es_finish(struct es_proc *p, struct es_result *r, int ms)
{
	int64_t deadline = evq_now_ns() + (int64_t)ms * NSEC_PER_MSEC;
	int st;

	for (;;) {
		int64_t left = (deadline - evq_now_ns()) / NSEC_PER_MSEC;

		if (left <= 0) {
			kill(p->pid, SIGKILL);
			break;
		}
		if (!es_pump(p, (int)left))
			break;
	}
	for (int i = 0; i < 2; i++)
		if (p->fd[i] >= 0)
			close(p->fd[i]);
	r->status = -1;
	if (waitpid(p->pid, &st, 0) == p->pid)
		r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->out = p->buf[0] ? p->buf[0] : strdup("");
	r->err = p->buf[1] ? p->buf[1] : strdup("");
}

/* Run evqstat with the NULL-terminated arguments; wait for it. */
static void es_run(struct es_result *r, ...)
{
	const char *args[15];
	struct es_proc p;
	size_t n = 0;
	va_list ap;

	va_start(ap, r);
	while (n < 14 && (args[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	args[n] = NULL;
	if (es_spawn(&p, args)) {
		r->status = -1;
		r->out = strdup("");
		r->err = strdup("cannot start evqstat");
		return;
	}
	es_finish(&p, r, ES_TIMEOUT_MS);
}

static void es_result_free(struct es_result *r)
{
	free(r->out);
	free(r->err);
}

/* ---- reading its JSON ---- */

static struct json_object *es_parse(const char *line)
{
	struct json_object *o = json_tokener_parse(line);

	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

static struct json_object *es_member(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* A counter; -1 when absent or not an integer (every counter is >= 0). */
static int64_t es_get(struct json_object *o, const char *key)
{
	struct json_object *v = es_member(o, key);

	return v && json_object_is_type(v, json_type_int) ?
	       json_object_get_int64(v) : -1;
}

static size_t es_nr_queues(struct json_object *s)
{
	struct json_object *a = es_member(s, "queues");

	return a && json_object_is_type(a, json_type_array) ?
	       json_object_array_length(a) : 0;
}

static struct json_object *es_queue_at(struct json_object *s, size_t i)
{
	return json_object_array_get_idx(es_member(s, "queues"), i);
}

/* The queue of @pid with a ring of @ring entries (-1: any), or NULL. */
static struct json_object *es_queue(struct json_object *s, pid_t pid,
				    int64_t ring)
{
	for (size_t i = 0; i < es_nr_queues(s); i++) {
		struct json_object *q = es_queue_at(s, i);

		if (es_get(q, "owner_pid") == pid &&
		    (ring < 0 || es_get(q, "ring_entries") == ring))
			return q;
	}
	return NULL;
}

static struct json_object *es_queue_id(struct json_object *s, int64_t id)
{
	for (size_t i = 0; i < es_nr_queues(s); i++)
		if (es_get(es_queue_at(s, i), "queue_id") == id)
			return es_queue_at(s, i);
	return NULL;
}

/* One sample of `evqstat -j [-p PIDS]`; NULL (with a message) on failure. */
static struct json_object *es_try_sample(const char *pids, char *why,
					 size_t whylen)
{
	struct json_object *o = NULL;
	struct es_result r;
	char *nl;

	if (pids)
		es_run(&r, "-j", "-p", pids, NULL);
	else
		es_run(&r, "-j", NULL);
	nl = strchr(r.out, '\n');
	if (r.status != 0)
		snprintf(why, whylen, "evqstat exit %d: %s", r.status, r.err);
	else if (!nl || nl[1])
		snprintf(why, whylen, "not one line of output: '%s'", r.out);
	else if (!(o = es_parse(r.out)))
		snprintf(why, whylen, "not a JSON object: '%s'", r.out);
	es_result_free(&r);
	return o;
}

static struct json_object *es_sample(struct __test_metadata *_metadata,
				     const char *pids)
{
	char why[4096];
	struct json_object *o = es_try_sample(pids, why, sizeof(why));

	if (!o)
		TH_LOG("%s", why);
	ASSERT_NE(NULL, o);
	return o;
}

static const char *es_mypid(void)
{
	static char buf[16];

	snprintf(buf, sizeof(buf), "%d", getpid());
	return buf;
}

/* Check one counter, naming it when it is wrong. */
#define EXPECT_KEY(obj, key, want) do {					\
	int64_t __w = (int64_t)(want), __g = es_get((obj), (key));	\
	if (__w != __g)							\
		TH_LOG("%s: the workload says %lld, evqstat %lld",	\
		       (key), (long long)__w, (long long)__g);		\
	EXPECT_EQ(__w, __g);						\
} while (0)

/* ---- workload helpers ---- */

/* Entries in the ring right now, without any call into the module. */
static uint32_t es_ring_wait_count(struct evq_q *q, uint32_t want, int ms)
{
	int64_t deadline = evq_now_ns() + (int64_t)ms * NSEC_PER_MSEC;

	while (evq_ring_count(q) < want && evq_now_ns() < deadline)
		usleep(1000);
	return evq_ring_count(q);
}

/*
 * Consume ring entries until one of @type and @ud, within @ms, by reading
 * the mapping only: EVQ_IOC_WAIT would move the waits counters.  Every
 * entry consumed is added to *@harvested; entries of another kind are
 * logged and counted in *@other.
 */
static int es_ring_take(struct evq_q *q, uint32_t type, uint64_t ud,
			struct evq_cqe *out, int ms, int *harvested,
			int *other)
{
	int64_t deadline = evq_now_ns() + (int64_t)ms * NSEC_PER_MSEC;
	struct evq_cqe c;

	for (;;) {
		if (evq_harvest(q, &c, 1) == 1) {
			(*harvested)++;
			if (evq_cqe_type(&c) == type && c.user_data == ud) {
				*out = c;
				return 1;
			}
			fprintf(stderr, "# unexpected entry: ud %llx res %d flags %#x\n",
				(unsigned long long)c.user_data, c.res, c.flags);
			(*other)++;
			continue;
		}
		if (evq_now_ns() > deadline)
			return 0;
		usleep(1000);
	}
}

static int es_sendfile(int qfd, struct evq_sendfile *sf, int out, int in,
		       uint64_t off, uint64_t count, uint32_t flags)
{
	long ret = evq_sf_ioctl(qfd, sf, out, in, off, count, ES_UD, flags);

	return ret < 0 ? ret : 0;
}

/* A file of @size bytes in @dir; returns an O_RDONLY fd, the name unlinked. */
static int es_make_file(const char *dir, const char *name, size_t size)
{
	char path[512], buf[4096];
	int fd, rfd;

	snprintf(path, sizeof(path), "%s/%s.%d", dir, name, getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	for (size_t off = 0; off < size; off += sizeof(buf)) {
		size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);

		memset(buf, 'a' + (off / sizeof(buf)) % 26, n);
		if (write(fd, buf, n) != (ssize_t)n) {
			close(fd);
			return -1;
		}
	}
	if (fsync(fd)) {
		close(fd);
		return -1;
	}
	close(fd);
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	unlink(path);
	return rfd;
}

static const char *es_scratch(void)
{
	const char *d = getenv("EVQ_SCRATCH");

	return d && *d ? d : NULL;
}

/* Reads a socket to EOF in the background, counting the bytes. */
struct es_rx {
	pthread_t th;
	int fd;
	uint64_t got;
};

static void *es_rx_main(void *arg)
{
	struct es_rx *rx = arg;
	char buf[65536];
	ssize_t n;

	while ((n = recv(rx->fd, buf, sizeof(buf), 0)) > 0)
		rx->got += n;
	return NULL;
}

/*
 * The basic workload, shared by the JSON and the table test, chosen so
 * that no two of its counters are equal and a value in the wrong place
 * shows.  Ring of 8 entries; 14 edge-triggered pipe watches added in two
 * EVQ_IOC_CTL calls, the second also carrying a MOD (applied) and an ADD
 * of a bad fd (fails, so applies nothing): 15 changes.  13 of the pipes
 * made readable: 8 entries fit, 5 overflow onto the ready list.  Consume
 * 5; a zero-timeout wait (does not sleep) moves the 5 in; consume 2 more;
 * a 1 ms wait for a full ring sleeps and times out; one more zero-timeout
 * wait.
 */
#define ES_NPIPES	14
#define ES_NREADY	13
struct es_basic {
	struct evq_q q;
	int p[ES_NPIPES][2];
};

static void es_basic_run(struct __test_metadata *_metadata,
			 struct es_basic *b)
{
	struct evq_ctl c[12];
	int ret;

	ASSERT_EQ(0, evq_q_open(&b->q, 8));
	ASSERT_EQ(8U, b->q.p.cq_entries);
	for (int i = 0; i < ES_NPIPES; i++)
		ASSERT_EQ(0, pipe2(b->p[i], O_CLOEXEC | O_NONBLOCK));

	for (int i = 0; i < 12; i++)
		evq_ctl_fill(&c[i], EVQ_CTL_ADD, b->p[i][0], EPOLLIN,
			     EVQ_WATCH_EDGE, i);
	ASSERT_EQ(12, evq_ctl_batch(b->q.fd, c, 12));
	for (int i = 0; i < 12; i++)
		ASSERT_EQ(0, c[i].res);
	evq_ctl_fill(&c[0], EVQ_CTL_ADD, b->p[12][0], EPOLLIN, EVQ_WATCH_EDGE, 12);
	evq_ctl_fill(&c[1], EVQ_CTL_ADD, -1, EPOLLIN, EVQ_WATCH_EDGE, 99);
	evq_ctl_fill(&c[2], EVQ_CTL_ADD, b->p[13][0], EPOLLIN, EVQ_WATCH_EDGE, 13);
	evq_ctl_fill(&c[3], EVQ_CTL_MOD, b->p[0][0], EPOLLIN | EPOLLRDHUP,
		     EVQ_WATCH_EDGE, 0);
	ASSERT_EQ(4, evq_ctl_batch(b->q.fd, c, 4));
	ASSERT_EQ(0, c[0].res);
	ASSERT_EQ(-EBADF, c[1].res);
	ASSERT_EQ(0, c[2].res);
	ASSERT_EQ(0, c[3].res);

	for (int i = 0; i < ES_NREADY; i++)
		ASSERT_EQ(1, write(b->p[i][1], "x", 1));
	/* The ring's own header agrees before netlink is asked. */
	ASSERT_EQ(8U, es_ring_wait_count(&b->q, 8, 2000));
	ASSERT_EQ(5U, __atomic_load_n(b->q.overflow, __ATOMIC_ACQUIRE));

	ASSERT_EQ(5U, evq_harvest(&b->q, NULL, 5));
	ret = evq_wait(b->q.fd, 0, 0, 0);
	ASSERT_EQ(8, ret);
	ASSERT_EQ(2U, evq_harvest(&b->q, NULL, 2));
	ret = evq_wait(b->q.fd, NSEC_PER_MSEC, 8, 0);
	ASSERT_EQ(6, ret);
	ret = evq_wait(b->q.fd, 0, 0, 0);
	ASSERT_EQ(6, ret);
}

static void es_basic_close(struct es_basic *b)
{
	evq_q_close(&b->q);
	for (int i = 0; i < ES_NPIPES; i++) {
		close(b->p[i][0]);
		close(b->p[i][1]);
	}
}

/* ---- without the module: options, module absent, parser ---- */

TEST(bad_options_exit_2)
{
	static const char *const bad[][3] = {
		{ "-Z" }, { "--bogus" }, { "-i", "0" }, { "-i", "1x" },
		{ "-i", "nan" }, { "-i" }, { "-c", "0" }, { "-c", "-3" },
		{ "-p", "0" }, { "-p", "1,,2" }, { "-p", "abc" },
		{ "-p", "12," }, { "stray" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct es_result r;

		es_run(&r, bad[i][0], bad[i][1], NULL);
		if (r.status != 2 || !strstr(r.err, "usage:") || r.out[0])
			TH_LOG("evqstat %s %s: exit %d, stdout '%s', stderr '%s'",
			       bad[i][0], bad[i][1] ? bad[i][1] : "", r.status,
			       r.out, r.err);
		EXPECT_EQ(2, r.status);
		EXPECT_NE(NULL, strstr(r.err, "usage:"));
		EXPECT_EQ(0, r.out[0]);
		es_result_free(&r);
	}
}

TEST(help_exits_0)
{
	struct es_result r;

	es_run(&r, "-h", NULL);
	EXPECT_EQ(0, r.status);
	EXPECT_NE(NULL, strstr(r.out, "usage:"));
	EXPECT_NE(NULL, strstr(r.out, "examples:"));
	EXPECT_EQ(0, r.err[0]);
	es_result_free(&r);
}

TEST(module_absent_exit_1)
{
	static const char msg[] =
		"evqstat: the evq module is not loaded (no generic netlink family \"evq\")\n";

	if (access(EVQ_DEV, F_OK) == 0)
		SKIP(return, "the evq module is loaded: this case runs where it is not (the host)");
	/* Once, as JSON, and in interval mode: the same answer at once. */
	for (int i = 0; i < 3; i++) {
		struct es_result r;

		if (i == 0)
			es_run(&r, NULL);
		else if (i == 1)
			es_run(&r, "-j", NULL);
		else
			es_run(&r, "-i", "0.1", "-c", "3", NULL);
		EXPECT_EQ(1, r.status);
		EXPECT_STREQ(msg, r.err);
		EXPECT_EQ(0, r.out[0]);
		es_result_free(&r);
	}
}

/*
 * The parser on messages no current module sends: an attribute from a
 * future module is skipped, a missing one reads as absent (not as zero,
 * not as garbage), a known one of the wrong size fails the message.
 */
TEST(parser_future_and_missing_attributes)
{
	static const char future[12] = "from-future";
	struct evqstat_vals v;
	struct nl_msg *m;
	char err[256] = "";

	m = nlmsg_alloc();
	ASSERT_NE(NULL, m);
	ASSERT_NE(NULL, genlmsg_put(m, 0, 1, 0x42, 0, 0, EVQ_CMD_GET_QUEUE,
				    EVQ_GENL_VERSION));
	ASSERT_EQ(0, nla_put_u32(m, EVQ_A_QUEUE_ID, 7));
	ASSERT_EQ(0, nla_put(m, EVQ_A_MAX + 9, sizeof(future), future));
	ASSERT_EQ(0, nla_put_u64(m, EVQ_A_POSTED, 1ULL << 40));
	ASSERT_EQ(0, nla_put_u32(m, EVQ_A_OWNER_UID, 1000));
	ASSERT_EQ(0, evqstat_nl_parse(nlmsg_hdr(m), &v, err, sizeof(err)));
	EXPECT_TRUE(evqstat_has(&v, EVQ_A_QUEUE_ID));
	EXPECT_EQ(7U, v.v[EVQ_A_QUEUE_ID]);
	EXPECT_EQ(1ULL << 40, v.v[EVQ_A_POSTED]);
	EXPECT_EQ(1000U, v.v[EVQ_A_OWNER_UID]);
	EXPECT_FALSE(evqstat_has(&v, EVQ_A_WATCHES));
	EXPECT_FALSE(evqstat_has(&v, EVQ_A_HARVESTED));
	EXPECT_EQ(0U, v.v[EVQ_A_WATCHES]);
	/* Exactly the three attributes it knows. */
	EXPECT_EQ((1ULL << EVQ_A_QUEUE_ID) | (1ULL << EVQ_A_POSTED) |
		  (1ULL << EVQ_A_OWNER_UID), v.have);
	nlmsg_free(m);

	/* A u64 counter sent in 4 bytes must not be read as 8. */
	m = nlmsg_alloc();
	ASSERT_NE(NULL, m);
	ASSERT_NE(NULL, genlmsg_put(m, 0, 1, 0x42, 0, 0, EVQ_CMD_GET_QUEUE,
				    EVQ_GENL_VERSION));
	ASSERT_EQ(0, nla_put_u32(m, EVQ_A_QUEUE_ID, 7));
	ASSERT_EQ(0, nla_put_u32(m, EVQ_A_POSTED, 5));
	EXPECT_EQ(-1, evqstat_nl_parse(nlmsg_hdr(m), &v, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "malformed"));
	nlmsg_free(m);
}

/* ---- with the module ---- */

/* Every counter of one queue, exactly. */
TEST(queue_counters_exact)
{
	struct json_object *s, *q;
	struct es_basic b;

	EVQ_REQUIRE_DEVICE();
	es_basic_run(_metadata, &b);
	s = es_sample(_metadata, es_mypid());
	ASSERT_EQ(1U, es_nr_queues(s));
	q = es_queue_at(s, 0);
	EXPECT_LE(0, es_get(q, "queue_id"));	/* present */
	EXPECT_KEY(q, "owner_pid", getpid());
	EXPECT_KEY(q, "owner_uid", geteuid());
	EXPECT_KEY(q, "ring_entries", 8);
	EXPECT_KEY(q, "watches", ES_NPIPES);
	EXPECT_KEY(q, "ops", 0);
	EXPECT_KEY(q, "posted", 13);		/* 8 at once, 5 by the wait */
	EXPECT_KEY(q, "harvested", 7);
	EXPECT_KEY(q, "overflows", 5);
	EXPECT_KEY(q, "waits", 3);
	EXPECT_KEY(q, "waits_slept", 1);
	EXPECT_KEY(q, "ctl_calls", 2);
	EXPECT_KEY(q, "ctl_changes", 15);	/* the EBADF one applied nothing */
	EXPECT_KEY(q, "sf_calls", 0);
	EXPECT_KEY(q, "sf_bytes", 0);
	EXPECT_KEY(q, "sf_not_resident", 0);
	EXPECT_KEY(q, "pageins", 0);
	EXPECT_KEY(q, "pagein_ns", 0);
	EXPECT_KEY(q, "pagein_max_ns", 0);
	/* Not an interval sample. */
	EXPECT_EQ(NULL, es_member(q, "new"));
	EXPECT_EQ(NULL, es_member(s, "closed"));
	EXPECT_TRUE(json_object_is_type(es_member(s, "interval"), json_type_null));
	json_object_put(s);
	es_basic_close(&b);
}

/* The table shows the same numbers in the columns its header names. */
TEST(table_output)
{
	char *lines[8], *save, *line, *head[32], *row[32], *t;
	struct json_object *s;
	struct es_result r;
	struct es_basic b;
	int nl = 0, nh = 0, nr = 0, qrow = -1;
	static const struct {
		const char *col;
		const char *want;
	} cells[] = {
		{ "RING", "8" }, { "WATCHES", "14" }, { "OPS", "0" },
		{ "POSTED", "13" }, { "HARVESTED", "7" }, { "OVERFLOWS", "5" },
		{ "WAITS", "3" }, { "SLEPT", "1" }, { "CTL", "2" },
		{ "CHANGES", "15" }, { "SF", "0" }, { "SF-BYTES", "0" },
		{ "NOT-RES", "0" }, { "PAGEINS", "0" },
		{ "PAGEIN-AVG-us", "-" }, { "PAGEIN-MAX-us", "0" },
	};
	char id[24], pid[16], uid[16];

	EVQ_REQUIRE_DEVICE();
	es_basic_run(_metadata, &b);
	s = es_sample(_metadata, es_mypid());
	ASSERT_EQ(1U, es_nr_queues(s));
	snprintf(id, sizeof(id), "%lld",
		 (long long)es_get(es_queue_at(s, 0), "queue_id"));
	json_object_put(s);

	es_run(&r, "-p", es_mypid(), NULL);
	ASSERT_EQ(0, r.status);
	for (line = strtok_r(r.out, "\n", &save); line && nl < 8;
	     line = strtok_r(NULL, "\n", &save))
		lines[nl++] = line;
	/* Summary, header, the "all" row, our queue. */
	ASSERT_EQ(4, nl);
	EXPECT_EQ(0, strncmp(lines[0], "evq: ", 5));
	for (t = strtok_r(lines[1], " ", &save); t && nh < 32;
	     t = strtok_r(NULL, " ", &save))
		head[nh++] = t;
	ASSERT_EQ(19, nh);
	EXPECT_STREQ("ID", head[0]);
	EXPECT_EQ(0, strncmp(lines[2], "all ", 4));
	for (t = strtok_r(lines[3], " ", &save); t && nr < 32;
	     t = strtok_r(NULL, " ", &save))
		row[nr++] = t;
	ASSERT_EQ(nh, nr);
	EXPECT_STREQ(id, row[0]);
	snprintf(pid, sizeof(pid), "%d", getpid());
	snprintf(uid, sizeof(uid), "%u", geteuid());
	EXPECT_STREQ(pid, row[1]);
	EXPECT_STREQ(uid, row[2]);
	for (size_t i = 0; i < sizeof(cells) / sizeof(cells[0]); i++) {
		qrow = -1;
		for (int k = 0; k < nh; k++)
			if (!strcmp(head[k], cells[i].col))
				qrow = k;
		ASSERT_LE(0, qrow);
		if (strcmp(cells[i].want, row[qrow]))
			TH_LOG("column %s: want %s, got %s", cells[i].col,
			       cells[i].want, row[qrow]);
		EXPECT_STREQ(cells[i].want, row[qrow]);
	}
	es_result_free(&r);
	es_basic_close(&b);
}

/*
 * Sendfile counters: synchronous sends of a hot file, then of a cold one
 * with EVQ_SF_NOTIFY, where every NOT_RESIDENT stop is followed by one
 * page-in whose PAGES_READY entry is awaited by reading the ring (not by
 * EVQ_IOC_WAIT, which would count as a wait).  A call refused for a bad
 * fd starts no send and counts for nothing.
 */
TEST(sendfile_counters_exact)
{
	const size_t hot_size = 10000, cold_size = 256 * 1024;
	static const uint64_t rng[3][2] = {
		{ 0, 1 }, { 1, 4095 }, { 4096, 5904 },
	};
	uint64_t calls = 0, bytes = 0, done = 0;
	int sv[2], hot, cold, ret, iter = 0;
	int notres = 0, pageins = 0, harvested = 0, other = 0;
	struct evq_sendfile sf;
	struct json_object *s, *q;
	struct evq_cqe c;
	struct es_rx rx;
	struct evq_q eq;

	EVQ_REQUIRE_DEVICE();
	if (!es_scratch())
		SKIP(return, "no $EVQ_SCRATCH (run with tools/vm/run --disk): no page can be made cold");
	ASSERT_EQ(0, evq_q_open(&eq, 16));
	ASSERT_EQ(0, evq_tcp_pair(sv));
	rx.fd = sv[1];
	rx.got = 0;
	ASSERT_EQ(0, pthread_create(&rx.th, NULL, es_rx_main, &rx));
	hot = es_make_file(es_scratch(), "evqstat-hot", hot_size);
	cold = es_make_file(es_scratch(), "evqstat-cold", cold_size);
	ASSERT_LE(0, hot);
	ASSERT_LE(0, cold);

	/* Refused: counts for nothing. */
	EXPECT_EQ(-EBADF, es_sendfile(eq.fd, &sf, sv[0], -1, 0, 10, 0));

	/* Hot: three calls, each to the end of its range. */
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, es_sendfile(eq.fd, &sf, sv[0], hot, rng[i][0],
					 rng[i][1], 0));
		calls++;
		bytes += sf.sent;
		EXPECT_EQ(EVQ_SF_STOP_DONE, sf.stop);
		EXPECT_EQ(rng[i][1], sf.sent);
	}

	/*
	 * Cold: a miss without EVQ_SF_NOTIFY starts no page-in, so misses
	 * and page-ins differ by one.  Then send what is resident and page
	 * in the rest on each miss.
	 */
	ASSERT_EQ(0, evq_make_cold(cold));
	ASSERT_EQ(0, es_sendfile(eq.fd, &sf, sv[0], cold, 0, cold_size, 0));
	calls++;
	ASSERT_EQ(EVQ_SF_STOP_NOT_RESIDENT, sf.stop);
	ASSERT_EQ(0U, sf.sent);
	notres++;
	while (done < cold_size && iter++ < 1000) {
		ret = es_sendfile(eq.fd, &sf, sv[0], cold, done,
				  cold_size - done, EVQ_SF_NOTIFY);
		ASSERT_EQ(0, ret);
		calls++;
		bytes += sf.sent;
		done += sf.sent;
		if (sf.stop == EVQ_SF_STOP_NOT_RESIDENT) {
			notres++;
			ASSERT_EQ(1, es_ring_take(&eq, EVQ_CQE_PAGES_READY,
						  ES_UD, &c, 20000,
						  &harvested, &other));
			if (c.res > 0)
				pageins++;
			else
				TH_LOG("page-in failed: %d", c.res);
		} else if (sf.stop == EVQ_SF_STOP_SOCK_FULL) {
			struct pollfd p = { .fd = sv[0], .events = POLLOUT };

			ASSERT_EQ(1, poll(&p, 1, 20000));
		} else {
			ASSERT_EQ(EVQ_SF_STOP_DONE, sf.stop);
		}
	}
	ASSERT_EQ(cold_size, done);
	/* The file stayed cold for the NOTIFY call too, or this proves little. */
	ASSERT_LE(2, notres);
	EXPECT_EQ(0, other);

	s = es_sample(_metadata, es_mypid());
	ASSERT_EQ(1U, es_nr_queues(s));
	q = es_queue_at(s, 0);
	EXPECT_KEY(q, "ring_entries", 16);
	EXPECT_KEY(q, "sf_calls", calls);
	EXPECT_KEY(q, "sf_bytes", bytes);
	EXPECT_KEY(q, "sf_not_resident", notres);
	EXPECT_KEY(q, "pageins", pageins);
	EXPECT_KEY(q, "posted", harvested);	/* the PAGES_READY entries */
	EXPECT_KEY(q, "harvested", harvested);
	EXPECT_KEY(q, "ops", 0);
	EXPECT_KEY(q, "watches", 0);
	EXPECT_KEY(q, "waits", 0);
	EXPECT_KEY(q, "waits_slept", 0);
	EXPECT_KEY(q, "ctl_calls", 0);
	EXPECT_KEY(q, "overflows", 0);
	/* Latency: a total, a maximum, and the average never above it. */
	int64_t tot = es_get(q, "pagein_ns"), max = es_get(q, "pagein_max_ns");

	EXPECT_LT(0, max);
	EXPECT_LE(max, tot);
	EXPECT_GE(max * pageins, tot);
	if (pageins == 1)
		EXPECT_EQ(max, tot);
	TH_LOG("%d calls, %llu bytes, %d misses, %d page-ins, %lld ns (max %lld)",
	       (int)calls, (unsigned long long)bytes, notres, pageins,
	       (long long)tot, (long long)max);
	json_object_put(s);

	/* What the receiver got is what sf_bytes says was handed over. */
	shutdown(sv[0], SHUT_WR);
	pthread_join(rx.th, NULL);
	EXPECT_EQ(bytes, rx.got);
	close(hot);
	close(cold);
	close(sv[0]);
	close(sv[1]);
	evq_q_close(&eq);
}

/* Fill @fd's send path until nothing more goes in, even after a pause. */
static void es_fill_socket(int fd)
{
	static char junk[4096];
	int quiet = 0;

	while (quiet < 3) {
		ssize_t n, total = 0;

		while ((n = send(fd, junk, sizeof(junk), MSG_DONTWAIT)) > 0)
			total += n;
		quiet = total ? 0 : quiet + 1;
		usleep(20000);
	}
}

/*
 * Operations in flight: an asynchronous send onto a socket whose peer
 * never reads stays in flight (ops 1) until cancelled (ops 0).  What it
 * managed to send before the cancel is in its MORE entry, which is what
 * sf_bytes must say.
 */
TEST(ops_in_flight)
{
	int sv[2], small = 4096, harvested = 0, other = 0, n;
	int64_t sent = 0;
	struct json_object *s, *q;
	struct evq_sendfile sf;
	struct evq_cqe c;
	struct evq_q eq;
	int file;

	EVQ_REQUIRE_DEVICE();
	ASSERT_EQ(0, evq_q_open(&eq, 8));
	ASSERT_EQ(0, evq_tcp_pair(sv));
	/* Fixed small buffers: no autotuning makes room later. */
	ASSERT_EQ(0, setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)));
	ASSERT_EQ(0, setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)));
	es_fill_socket(sv[0]);
	file = es_make_file(es_scratch() ? es_scratch() : "/tmp", "evqstat-ops",
			    1 << 20);
	ASSERT_LE(0, file);

	ASSERT_EQ(0, es_sendfile(eq.fd, &sf, sv[0], file, 0, 1 << 20,
				 EVQ_SF_ASYNC));
	s = es_sample(_metadata, es_mypid());
	ASSERT_EQ(1U, es_nr_queues(s));
	q = es_queue_at(s, 0);
	EXPECT_KEY(q, "ops", 1);
	EXPECT_KEY(q, "sf_calls", 1);
	EXPECT_KEY(q, "posted", 0);
	json_object_put(s);

	n = ioctl(eq.fd, EVQ_IOC_CANCEL, &(uint64_t){ ES_UD });
	EXPECT_EQ(1, n);
	for (;;) {
		ASSERT_EQ(1, es_ring_take(&eq, EVQ_CQE_SENDFILE, ES_UD, &c,
					  10000, &harvested, &other));
		if (!(c.flags & EVQ_CQEF_MORE))
			break;
		EXPECT_LT(0, c.res);
		sent += c.res;
	}
	EXPECT_EQ(-ECANCELED, c.res);
	EXPECT_EQ(0, other);

	s = es_sample(_metadata, es_mypid());
	ASSERT_EQ(1U, es_nr_queues(s));
	q = es_queue_at(s, 0);
	EXPECT_KEY(q, "ops", 0);
	EXPECT_KEY(q, "sf_calls", 1);
	EXPECT_KEY(q, "sf_bytes", sent);
	EXPECT_KEY(q, "posted", harvested);
	EXPECT_KEY(q, "harvested", harvested);
	json_object_put(s);
	close(file);
	close(sv[0]);
	close(sv[1]);
	evq_q_close(&eq);
}

/*
 * GET_STATS: the totals grow by at least what this test did (other
 * programs may use evq too), count the queues it holds open, and keep
 * what a queue did after it is closed.
 */
TEST(global_counters)
{
	static const char *const keys[] = {
		"posted", "harvested", "overflows", "waits", "waits_slept",
		"ctl_calls", "ctl_changes", "sf_calls", "sf_bytes",
		"sf_not_resident", "pageins", "pagein_ns", "queues_created",
	};
	struct json_object *s0, *s1, *s2, *g0, *g1, *g2;
	struct evq_q q1, q2;
	struct evq_ctl c[3];
	int p[3][2];

	EVQ_REQUIRE_DEVICE();
	s0 = es_sample(_metadata, NULL);
	g0 = es_member(s0, "global");
	ASSERT_NE(NULL, g0);
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
		EXPECT_LE(0, es_get(g0, keys[k]));

	ASSERT_EQ(0, evq_q_open(&q1, 8));
	ASSERT_EQ(0, evq_q_open(&q2, 16));
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(0, pipe2(p[i], O_CLOEXEC));
		evq_ctl_fill(&c[i], EVQ_CTL_ADD, p[i][0], EPOLLIN,
			     EVQ_WATCH_EDGE, i);
	}
	ASSERT_EQ(3, evq_ctl_batch(q1.fd, c, 3));
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(1, write(p[i][1], "x", 1));
	ASSERT_EQ(3U, es_ring_wait_count(&q1, 3, 2000));
	ASSERT_EQ(2U, evq_harvest(&q1, NULL, 2));
	ASSERT_LE(0, evq_wait(q1.fd, 0, 0, 0));
	ASSERT_LE(0, evq_wait(q1.fd, 0, 0, 0));

	s1 = es_sample(_metadata, NULL);
	g1 = es_member(s1, "global");
	ASSERT_NE(NULL, g1);
	EXPECT_LE(2, es_get(g1, "queues"));
	EXPECT_LE(es_get(g0, "queues_created") + 2, es_get(g1, "queues_created"));
	EXPECT_LE(es_get(g0, "posted") + 3, es_get(g1, "posted"));
	EXPECT_LE(es_get(g0, "harvested") + 2, es_get(g1, "harvested"));
	EXPECT_LE(es_get(g0, "waits") + 2, es_get(g1, "waits"));
	EXPECT_LE(es_get(g0, "ctl_calls") + 1, es_get(g1, "ctl_calls"));
	EXPECT_LE(es_get(g0, "ctl_changes") + 3, es_get(g1, "ctl_changes"));
	/* Root sees every queue: the totals hold at least their sum. */
	EXPECT_LE((int64_t)es_nr_queues(s1), es_get(g1, "queues"));
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		int64_t sum = 0;

		if (!strcmp(keys[k], "queues_created"))
			continue;
		for (size_t i = 0; i < es_nr_queues(s1); i++)
			sum += es_get(es_queue_at(s1, i), keys[k]);
		if (sum > es_get(g1, keys[k]))
			TH_LOG("%s: queues %lld > global %lld", keys[k],
			       (long long)sum, (long long)es_get(g1, keys[k]));
		EXPECT_LE(sum, es_get(g1, keys[k]));
	}
	ASSERT_NE(NULL, es_queue(s1, getpid(), 8));
	ASSERT_NE(NULL, es_queue(s1, getpid(), 16));

	/* A closed queue's counters stay in the totals. */
	evq_q_close(&q1);
	s2 = es_sample(_metadata, NULL);
	g2 = es_member(s2, "global");
	ASSERT_NE(NULL, g2);
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		if (es_get(g2, keys[k]) < es_get(g1, keys[k]))
			TH_LOG("%s went back from %lld to %lld", keys[k],
			       (long long)es_get(g1, keys[k]),
			       (long long)es_get(g2, keys[k]));
		EXPECT_LE(es_get(g1, keys[k]), es_get(g2, keys[k]));
	}
	EXPECT_LE(1, es_get(g2, "queues"));
	EXPECT_LE(es_get(g2, "pagein_max_ns"), es_get(g2, "pagein_ns"));
	json_object_put(s0);
	json_object_put(s1);
	json_object_put(s2);
	evq_q_close(&q2);
	for (int i = 0; i < 3; i++) {
		close(p[i][0]);
		close(p[i][1]);
	}
}

/* A queue closed is gone from the dump; one never set up shows ring 0. */
TEST(closed_queue_disappears)
{
	struct json_object *s, *qa, *qb;
	int64_t ida, idb;
	struct evq_q a, b;
	int bare;

	EVQ_REQUIRE_DEVICE();
	ASSERT_EQ(0, evq_q_open(&a, 8));
	ASSERT_EQ(0, evq_q_open(&b, 16));
	bare = evq_open_dev();
	ASSERT_LE(0, bare);
	s = es_sample(_metadata, es_mypid());
	EXPECT_EQ(3U, es_nr_queues(s));
	qa = es_queue(s, getpid(), 8);
	qb = es_queue(s, getpid(), 16);
	ASSERT_NE(NULL, qa);
	ASSERT_NE(NULL, qb);
	EXPECT_NE(NULL, es_queue(s, getpid(), 0));
	ida = es_get(qa, "queue_id");
	idb = es_get(qb, "queue_id");
	EXPECT_NE(ida, idb);
	json_object_put(s);

	/* Unmapped and closed: the last reference goes with the close. */
	evq_q_close(&b);
	close(bare);
	s = es_sample(_metadata, es_mypid());
	EXPECT_EQ(1U, es_nr_queues(s));
	EXPECT_NE(NULL, es_queue_id(s, ida));
	EXPECT_EQ(NULL, es_queue_id(s, idb));
	json_object_put(s);
	evq_q_close(&a);
	s = es_sample(_metadata, es_mypid());
	EXPECT_EQ(0U, es_nr_queues(s));
	json_object_put(s);
}

/*
 * Enough queues that the dump takes several netlink messages' worth of
 * skbs: every one listed once, none lost or repeated where a part ends.
 */
#define ES_MANY		600
TEST(many_queues_dump)
{
	static int fds[ES_MANY];
	static int64_t ids[ES_MANY];
	struct json_object *s;

	EVQ_REQUIRE_DEVICE();
	ASSERT_EQ(0, evq_raise_nofile(ES_MANY + 64));
	for (int i = 0; i < ES_MANY; i++) {
		fds[i] = evq_open_dev();
		ASSERT_LE(0, fds[i]);
	}
	s = es_sample(_metadata, es_mypid());
	ASSERT_EQ((size_t)ES_MANY, es_nr_queues(s));
	for (int i = 0; i < ES_MANY; i++) {
		ids[i] = es_get(es_queue_at(s, i), "queue_id");
		EXPECT_KEY(es_queue_at(s, i), "ring_entries", 0);
		/* evqstat sorts by id: strictly increasing means no repeats. */
		if (i)
			EXPECT_LT(ids[i - 1], ids[i]);
	}
	json_object_put(s);
	for (int i = 0; i < ES_MANY; i++)
		close(fds[i]);
}

/*
 * Without CAP_NET_ADMIN a reader sees the queues of its own effective uid
 * only.  A child drops to nobody, opens a queue and runs evqstat: it sees
 * its queue and not ours.  We, root, see both.
 */
static int es_nobody_child(int go, int done, pid_t parent,
			   struct evq_q *inherited)
{
	char why[4096], pid[16];
	struct json_object *s;
	struct evq_q q;
	char c;

	/* Root's queue came with fork(): nobody must not hold it open. */
	evq_q_close(inherited);
	if (setgroups(0, NULL) || setgid(ES_NOBODY) || setuid(ES_NOBODY) ||
	    geteuid() != ES_NOBODY)
		return 10;
	if (evq_q_open(&q, 16))
		return 11;
	s = es_try_sample(NULL, why, sizeof(why));
	if (!s) {
		fprintf(stderr, "# nobody: %s\n", why);
		return 12;
	}
	if (!es_queue(s, getpid(), 16))
		return 13;
	for (size_t i = 0; i < es_nr_queues(s); i++) {
		if (es_get(es_queue_at(s, i), "owner_uid") != ES_NOBODY)
			return 14;
		if (es_get(es_queue_at(s, i), "owner_pid") == parent)
			return 15;
	}
	json_object_put(s);
	/* Asking for root's process by pid does not get around it. */
	snprintf(pid, sizeof(pid), "%d", parent);
	s = es_try_sample(pid, why, sizeof(why));
	if (!s || es_nr_queues(s) != 0)
		return 16;
	json_object_put(s);
	if (write(go, "k", 1) != 1 || read(done, &c, 1) != 1)
		return 17;
	evq_q_close(&q);
	return 0;
}

TEST(permission_own_uid_only)
{
	int go[2], done[2], st = -1;
	struct json_object *s, *mine, *theirs;
	struct evq_q q;
	struct pollfd pf;
	char pids[40], c;
	pid_t child, me = getpid();

	EVQ_REQUIRE_DEVICE();
	if (geteuid() != 0)
		SKIP(return, "needs root to drop to uid %d", ES_NOBODY);
	ASSERT_EQ(0, evq_q_open(&q, 8));
	ASSERT_EQ(0, pipe2(go, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(done, O_CLOEXEC));
	fflush(stdout);
	fflush(stderr);
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		close(go[0]);
		close(done[1]);
		_exit(es_nobody_child(go[1], done[0], me, &q));
	}
	close(go[1]);
	close(done[0]);
	pf = (struct pollfd){ .fd = go[0], .events = POLLIN };
	if (poll(&pf, 1, ES_TIMEOUT_MS) != 1 || read(go[0], &c, 1) != 1) {
		waitpid(child, &st, 0);
		TH_LOG("the child failed at step %d (see es_nobody_child)",
		       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		ASSERT_TRUE(0);
	}

	snprintf(pids, sizeof(pids), "%d,%d", me, child);
	s = es_sample(_metadata, pids);
	EXPECT_EQ(2U, es_nr_queues(s));
	mine = es_queue(s, me, 8);
	theirs = es_queue(s, child, 16);
	ASSERT_NE(NULL, mine);
	ASSERT_NE(NULL, theirs);
	EXPECT_KEY(mine, "owner_uid", 0);
	EXPECT_KEY(theirs, "owner_uid", ES_NOBODY);
	json_object_put(s);
	/* And without a filter. */
	s = es_sample(_metadata, NULL);
	EXPECT_NE(NULL, es_queue(s, me, 8));
	EXPECT_NE(NULL, es_queue(s, child, 16));
	json_object_put(s);

	ASSERT_EQ(1, write(done[1], "k", 1));
	ASSERT_EQ(child, waitpid(child, &st, 0));
	EXPECT_TRUE(WIFEXITED(st));
	EXPECT_EQ(0, WEXITSTATUS(st));
	close(go[0]);
	close(done[1]);
	evq_q_close(&q);
}

/*
 * Interval mode: the first sample holds totals, the next ones what
 * changed in each interval, queue by queue; a queue opened in an interval
 * is marked new, one closed is listed under "closed".  The workload of an
 * interval runs right after the previous line arrives, well within the
 * 2 s interval.
 */
TEST(interval_deltas)
{
	const char *const args[] = { "-j", "-i", "2", "-c", "3", "-p",
				     es_mypid(), NULL };
	struct json_object *s, *q;
	struct es_result r;
	struct es_proc p;
	struct evq_q q1, q2;
	struct evq_ctl c[2];
	int pp[2][2];
	int64_t id1;
	char *line;

	EVQ_REQUIRE_DEVICE();
	ASSERT_EQ(0, evq_q_open(&q1, 8));
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, pipe2(pp[i], O_CLOEXEC));
		evq_ctl_fill(&c[i], EVQ_CTL_ADD, pp[i][0], EPOLLIN,
			     EVQ_WATCH_EDGE, i);
	}
	ASSERT_EQ(2, evq_ctl_batch(q1.fd, c, 2));
	ASSERT_EQ(0, es_spawn(&p, args));

	/* 1: totals since open. */
	line = es_line(&p, ES_TIMEOUT_MS);
	ASSERT_NE(NULL, line);
	s = es_parse(line);
	free(line);
	ASSERT_NE(NULL, s);
	EXPECT_TRUE(json_object_is_type(es_member(s, "interval"), json_type_null));
	ASSERT_EQ(1U, es_nr_queues(s));
	q = es_queue_at(s, 0);
	id1 = es_get(q, "queue_id");
	EXPECT_KEY(q, "ctl_calls", 1);
	EXPECT_KEY(q, "ctl_changes", 2);
	EXPECT_KEY(q, "watches", 2);
	json_object_put(s);

	/* Interval 2: three CTL calls of one change, four waits. */
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(0, evq_ctl1(q1.fd, EVQ_CTL_MOD, pp[i % 2][0],
				      EPOLLIN | EPOLLRDHUP, EVQ_WATCH_EDGE, i));
	for (int i = 0; i < 4; i++)
		ASSERT_LE(0, evq_wait(q1.fd, 0, 0, 0));
	line = es_line(&p, ES_TIMEOUT_MS);
	ASSERT_NE(NULL, line);
	s = es_parse(line);
	free(line);
	ASSERT_NE(NULL, s);
	EXPECT_LT(1.5, json_object_get_double(es_member(s, "interval")));
	EXPECT_GT(10.0, json_object_get_double(es_member(s, "interval")));
	ASSERT_EQ(1U, es_nr_queues(s));
	q = es_queue_at(s, 0);
	EXPECT_KEY(q, "queue_id", id1);
	EXPECT_KEY(q, "ctl_calls", 3);
	EXPECT_KEY(q, "ctl_changes", 3);
	EXPECT_KEY(q, "waits", 4);
	EXPECT_KEY(q, "waits_slept", 0);
	EXPECT_KEY(q, "posted", 0);
	EXPECT_KEY(q, "watches", 2);		/* a level, not a delta */
	EXPECT_KEY(q, "ring_entries", 8);
	EXPECT_TRUE(json_object_get_boolean(es_member(q, "new")) == 0);
	EXPECT_EQ(0U, json_object_array_length(es_member(s, "closed")));
	/* The global totals become increases too. */
	EXPECT_LE(3, es_get(es_member(s, "global"), "ctl_calls"));
	json_object_put(s);

	/* Interval 3: a new queue comes, the old one goes. */
	ASSERT_EQ(0, evq_q_open(&q2, 16));
	evq_q_close(&q1);
	line = es_line(&p, ES_TIMEOUT_MS);
	ASSERT_NE(NULL, line);
	s = es_parse(line);
	free(line);
	ASSERT_NE(NULL, s);
	ASSERT_EQ(1U, es_nr_queues(s));
	q = es_queue_at(s, 0);
	EXPECT_KEY(q, "ring_entries", 16);
	EXPECT_NE(id1, es_get(q, "queue_id"));
	EXPECT_TRUE(json_object_get_boolean(es_member(q, "new")));
	ASSERT_EQ(1U, json_object_array_length(es_member(s, "closed")));
	EXPECT_EQ(id1, json_object_get_int64(
		json_object_array_get_idx(es_member(s, "closed"), 0)));
	json_object_put(s);

	/* Three samples, then it ends by itself. */
	es_finish(&p, &r, ES_TIMEOUT_MS);
	EXPECT_EQ(0, r.status);
	EXPECT_EQ(0, r.err[0]);
	es_result_free(&r);
	evq_q_close(&q2);
	for (int i = 0; i < 2; i++) {
		close(pp[i][0]);
		close(pp[i][1]);
	}
}

TEST_HARNESS_MAIN
