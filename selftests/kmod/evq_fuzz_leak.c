// SPDX-License-Identifier: GPL-2.0
/*
 * evq_fuzz: what a run must leave behind, which is nothing.
 *
 * - Open fds of the process, from /proc/self/fd.
 * - Queues the module still holds, from its generic netlink counters
 *   (EVQ_CMD_GET_STATS, EVQ_A_QUEUES): a queue lives until its last
 *   reference, the file, a mapping or an operation in flight, is gone.
 * - Objects in the module's slab caches (evq_watch, evq_pwq, evq_op,
 *   evq_pin), from /sys/kernel/slab after a shrink, which flushes the
 *   per-CPU slabs so the count is exact.  A cache the kernel merged with
 *   another (the default; boot with slab_nomerge) cannot be counted and
 *   is skipped, saying so.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include "evq_fuzz.h"

static const char *const fz_caches[FZ_NCACHES] = {
	"evq_watch", "evq_pwq", "evq_op", "evq_pin",
};

int fz_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own fd */
}

struct fz_nlmsg {
	struct nlmsghdr nh;
	struct genlmsghdr gh;
	char buf[4096];
};

/*
 * Op "signal" interrupts any thread with SIGUSR1, installed without
 * SA_RESTART so that waits see EINTR: the netlink calls must retry.
 */
static int fz_nl_send(int s, const struct fz_nlmsg *req)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ssize_t n;

	do {
		n = sendto(s, req, req->nh.nlmsg_len, 0,
			   (struct sockaddr *)&kernel, sizeof(kernel));
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -1 : 0;
}

/* The socket is non-blocking (fz_nl_socket()): wait up to 5 s for a reply. */
static int fz_nl_recv(int s, void *buf, size_t len)
{
	struct pollfd p = { .fd = s, .events = POLLIN };
	ssize_t n;

	for (int tries = 0; tries < 50; tries++) {
		n = recv(s, buf, len, 0);
		if (n >= 0 || (errno != EINTR && errno != EAGAIN))
			return (int)n;
		if (errno == EAGAIN)
			poll(&p, 1, 100);
	}
	return -1;
}

/*
 * A generic netlink socket out of the other threads' way.  They read
 * and close fd numbers at random: on a blocking socket such a read
 * waits for good, as may this thread once its reply is taken.  So it is
 * non-blocking, and moved above the numbers the operations draw.
 */
static int fz_nl_socket(void)
{
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
		       NETLINK_GENERIC);
	int high = s < 0 ? -1 : fcntl(s, F_DUPFD_CLOEXEC, 600);

	if (high >= 0) {
		close(s);
		s = high;
	}
	return s;
}

/* One request, one reply; returns the reply's length or -1. */
static int fz_nl_call(int s, uint16_t type, uint8_t cmd, uint8_t ver,
		      const char *name, struct fz_nlmsg *rep)
{
	struct fz_nlmsg req = { 0 };
	int len;

	req.nh.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	req.nh.nlmsg_type = type;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.nh.nlmsg_seq = 1;
	req.gh.cmd = cmd;
	req.gh.version = ver;
	if (name) {
		struct nlattr *a = (struct nlattr *)((char *)&req +
						     NLMSG_ALIGN(req.nh.nlmsg_len));

		a->nla_type = CTRL_ATTR_FAMILY_NAME;
		a->nla_len = NLA_HDRLEN + strlen(name) + 1;
		memcpy((char *)a + NLA_HDRLEN, name, strlen(name) + 1);
		req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) +
				   NLA_ALIGN(a->nla_len);
	}
	if (fz_nl_send(s, &req) < 0)
		return -1;
	len = fz_nl_recv(s, rep, sizeof(*rep));
	if (len < (int)NLMSG_LENGTH(GENL_HDRLEN) || !NLMSG_OK(&rep->nh, len) ||
	    rep->nh.nlmsg_type == NLMSG_ERROR)
		return -1;
	return len;
}

/* The attribute @type of a reply, or NULL. */
static struct nlattr *fz_nl_attr(struct fz_nlmsg *rep, uint16_t type)
{
	int left = rep->nh.nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	struct nlattr *a = (struct nlattr *)rep->buf;

	while (left >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN &&
	       a->nla_len <= left) {
		if ((a->nla_type & NLA_TYPE_MASK) == type)
			return a;
		left -= NLA_ALIGN(a->nla_len);
		a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len));
	}
	return NULL;
}

/* The "evq" family's id on socket @s, or -1. */
static int fz_nl_family(int s)
{
	struct fz_nlmsg rep;
	struct nlattr *a;
	uint16_t family;

	if (fz_nl_call(s, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, EVQ_GENL_NAME,
		       &rep) < 0)
		return -1;
	a = fz_nl_attr(&rep, CTRL_ATTR_FAMILY_ID);
	if (!a || a->nla_len < NLA_HDRLEN + 2)
		return -1;
	memcpy(&family, (char *)a + NLA_HDRLEN, sizeof(family));
	return family;
}

/* Queues the module holds now (EVQ_A_QUEUES), or -1 if it cannot say. */
long fz_nl_queues_open(void)
{
	struct fz_nlmsg rep;
	struct nlattr *a;
	long ret = -1;
	int s, family;

	s = fz_nl_socket();
	if (s < 0)
		return -1;
	family = fz_nl_family(s);
	if (family < 0 || fz_nl_call(s, family, EVQ_CMD_GET_STATS,
				     EVQ_GENL_VERSION, NULL, &rep) < 0)
		goto out;
	a = fz_nl_attr(&rep, EVQ_A_QUEUES);
	if (a && a->nla_len >= NLA_HDRLEN + 4) {
		uint32_t v;

		memcpy(&v, (char *)a + NLA_HDRLEN, sizeof(v));
		ret = v;
	}
out:
	close(s);
	return ret;
}

/*
 * Dump every queue's counters (EVQ_CMD_GET_QUEUE), racing the queues'
 * opening and closing.  Returns how many queues were listed, -1 when the
 * family is absent, or -2 when a reply is malformed or an error.
 */
long fz_nl_dump_queues(void)
{
	/* Room for the largest dump message netlink would build. */
	static __thread union {
		struct fz_nlmsg m;
		char raw[32768];
	} rep;
	struct fz_nlmsg req = { 0 };
	long n = 0;
	int s, family, len;

	s = fz_nl_socket();
	if (s < 0)
		return -1;
	family = fz_nl_family(s);
	if (family < 0) {
		close(s);
		return -1;
	}
	req.nh.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	req.nh.nlmsg_type = family;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nh.nlmsg_seq = 2;
	req.gh.cmd = EVQ_CMD_GET_QUEUE;
	req.gh.version = EVQ_GENL_VERSION;
	if (fz_nl_send(s, &req) < 0) {
		close(s);
		return -2;
	}
	for (;;) {
		struct nlmsghdr *nh = &rep.m.nh;

		len = fz_nl_recv(s, &rep, sizeof(rep));
		if (len <= 0) {
			n = -2;
			break;
		}
		for (; NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
			if (nh->nlmsg_type == NLMSG_DONE)
				goto out;
			if (nh->nlmsg_type != family ||
			    !fz_nl_attr((struct fz_nlmsg *)nh, EVQ_A_QUEUE_ID)) {
				n = -2;
				goto out;
			}
			n++;
		}
	}
out:
	close(s);
	return n;
}

/*
 * Objects in use in cache @name, after a shrink; -1 when the cache is
 * merged with others (a link in /sys/kernel/slab) or unreadable.
 */
static long fz_slab_objects(const char *name)
{
	char path[128], buf[64] = "";
	struct stat st;
	long n = -1;
	int fd;

	snprintf(path, sizeof(path), "/sys/kernel/slab/%s", name);
	if (lstat(path, &st) || !S_ISDIR(st.st_mode))
		return -1;
	snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)!write(fd, "1", 1);
		close(fd);
	}
	snprintf(path, sizeof(path), "/sys/kernel/slab/%s/objects", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (read(fd, buf, sizeof(buf) - 1) > 0)
		n = strtol(buf, NULL, 10);
	close(fd);
	return n;
}

void fz_leak_baseline(struct fz_leak_base *b)
{
	b->queues = fz_nl_queues_open();
	for (int k = 0; k < FZ_NCACHES; k++) {
		b->slab[k] = fz_slab_objects(fz_caches[k]);
		b->slab_known[k] = b->slab[k] >= 0;
	}
}

static void fz_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * Everything back to the baseline?  Queues drain asynchronously (a
 * deferred fput, a page-in still reading), so allow 30 seconds.
 * Returns for the queue count 0 (back), -1 (not back: @why says) or 1
 * (netlink unreadable); *@slab likewise for the slab caches, 1 when
 * none could be counted.
 */
int fz_leak_check(const struct fz_leak_base *b, char *why, size_t len,
		  int *slab)
{
	long q = -1, n[FZ_NCACHES] = { -1, -1, -1, -1 };
	int k, ret;

	for (int tries = 0; tries < 300; tries++) {
		bool ok = true;

		q = fz_nl_queues_open();
		if (b->queues >= 0 && q != b->queues)
			ok = false;
		for (k = 0; k < FZ_NCACHES; k++) {
			if (!b->slab_known[k])
				continue;
			n[k] = fz_slab_objects(fz_caches[k]);
			if (n[k] > b->slab[k])
				ok = false;
		}
		if (ok)
			break;
		fz_sleep_ms(100);
	}
	*slab = 1;
	for (k = 0; k < FZ_NCACHES; k++) {
		if (!b->slab_known[k]) {
			printf("# leak: slab cache %s merged or absent: not counted\n",
			       fz_caches[k]);
			continue;
		}
		printf("# leak: slab %s: %ld objects, %ld before the run\n",
		       fz_caches[k], n[k], b->slab[k]);
		if (n[k] > b->slab[k]) {
			snprintf(why, len, "slab %s: %ld objects, %ld before",
				 fz_caches[k], n[k], b->slab[k]);
			*slab = -1;
		} else if (*slab == 1) {
			*slab = 0;
		}
	}
	printf("# leak: queues held by the module: %ld, %ld before the run\n",
	       q, b->queues);
	ret = b->queues < 0 || q < 0 ? 1 : 0;
	if (!ret && q != b->queues) {
		snprintf(why, len, "%ld queues left, %ld before", q, b->queues);
		ret = -1;
	}
	return ret;
}
