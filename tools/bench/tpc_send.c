// SPDX-License-Identifier: GPL-2.0
/*
 * tpc_send: the thread-per-connection sender of gen_bench.
 *
 * The classic MTA design before event loops: one thread per outbound SMTP
 * connection, blocking I/O, the thread sleeping in read() while the
 * remote end thinks.  gen_bench runs it beside Postfix (a process per
 * delivery) and deliverd (a few event-loop threads) so that the three
 * generations of sender face the same slow receivers.
 *
 * usage: tpc_send [-s STACK_KB] [-t TIMEOUT_S] [-H HELO] DESTS MESSAGES
 *
 * DESTS holds one "ipv4:port" line per connection: line i is connection
 * i, owned by thread i.  MESSAGES holds records
 *
 *	"<len> <sender> <recipient>\n" then len bytes of DATA, already
 *	dot-stuffed and ending with ".\r\n"
 *
 * and message j goes on connection j % C, the same assignment of messages
 * to destinations that gen_bench gives deliverd and Postfix (message j to
 * destination j % C).  Each thread connects, reads the greeting, sends
 * EHLO once, then for each of its messages MAIL, RCPT and DATA (in one
 * write when the server offers PIPELINING, as Postfix's smtp client and
 * deliverd do, so that the three differ in how they wait and not in the
 * protocol), the body and its ".", and finally QUIT.  No queue, no disk:
 * the messages are mmapped once and shared by all threads.
 *
 * Output on stdout, one "name: value" line each: threads, messages (250
 * after the body), errors (messages not accepted), failed_threads
 * (connections that ended early), elapsed_s.
 *
 * Exit status: 0 every message accepted; 1 some message or connection
 * failed; 2 bad usage; 3 setup failed (a file, a thread, memory).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct tpc_msg {
	const char *data;	/* dot-stuffed, ends with ".\r\n" */
	size_t len;
	char cmd[640];		/* "MAIL FROM:<s>\r\nRCPT TO:<r>\r\nDATA\r\n" */
	size_t cmd_len;
};

struct tpc_conn {
	struct sockaddr_in addr;
	size_t first;		/* its messages: first, first + C, ... */
	pthread_t tid;
};

static struct tpc_msg *tpc_msgs;
static size_t tpc_nmsgs, tpc_nconns;
static int tpc_timeout = 120;
static const char *tpc_helo = "tpc.bench.test";
static atomic_ulong tpc_sent, tpc_errors, tpc_failed;

/* One connection's reply reader: a small buffer on the thread's stack. */
struct tpc_rd {
	int fd;
	size_t len;
	char buf[1024];
};

/*
 * Read one (possibly multi-line) reply; return its code, or -1 on a lost
 * connection or timeout.  *pipelining is set when an EHLO reply line says
 * PIPELINING.
 */
static int tpc_reply(struct tpc_rd *r, int *pipelining)
{
	for (;;) {
		char *nl = memchr(r->buf, '\n', r->len);

		if (!nl) {
			ssize_t n;

			if (r->len == sizeof(r->buf))
				r->len = 0;	/* an over-long line: drop it */
			n = read(r->fd, r->buf + r->len,
				 sizeof(r->buf) - r->len);
			if (n <= 0) {
				if (n < 0 && errno == EINTR)
					continue;
				return -1;
			}
			r->len += n;
			continue;
		}
		size_t ll = nl - r->buf + 1;
		int code = -1, last = 1;

		if (ll >= 4 && r->buf[0] >= '2' && r->buf[0] <= '5') {
			code = (r->buf[0] - '0') * 100 + (r->buf[1] - '0') * 10 +
			       (r->buf[2] - '0');
			last = r->buf[3] != '-';
			if (pipelining && ll >= 14 &&
			    !strncasecmp(r->buf + 4, "PIPELINING", 10))
				*pipelining = 1;
		}
		memmove(r->buf, nl + 1, r->len - ll);
		r->len -= ll;
		if (code < 0)
			return -1;
		if (last)
			return code;
	}
}

static int tpc_write(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

static void *tpc_thread(void *arg)
{
	struct tpc_conn *c = arg;
	struct tpc_rd r = { .len = 0 };
	struct timeval tv = { .tv_sec = tpc_timeout };
	int pipelining = 0, one = 1;
	size_t j, left = 0;
	char ehlo[300];

	for (j = c->first; j < tpc_nmsgs; j += tpc_nconns)
		left++;
	r.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r.fd < 0)
		goto fail;
	/* A blocking client still must not hang forever on a dead peer. */
	setsockopt(r.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(r.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(r.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(r.fd, (struct sockaddr *)&c->addr, sizeof(c->addr)) < 0 ||
	    tpc_reply(&r, NULL) != 220)
		goto fail;
	snprintf(ehlo, sizeof(ehlo), "EHLO %s\r\n", tpc_helo);
	if (tpc_write(r.fd, ehlo, strlen(ehlo)) ||
	    tpc_reply(&r, &pipelining) != 250)
		goto fail;
	for (j = c->first; j < tpc_nmsgs; j += tpc_nconns) {
		const struct tpc_msg *m = &tpc_msgs[j];
		int ok = 1;

		if (pipelining) {
			if (tpc_write(r.fd, m->cmd, m->cmd_len))
				goto fail;
			/* all three replies are read: the stream stays in step */
			ok &= tpc_reply(&r, NULL) == 250;
			ok &= tpc_reply(&r, NULL) == 250;
			int d = tpc_reply(&r, NULL);

			if (d < 0)
				goto fail;
			if (d != 354) {
				atomic_fetch_add(&tpc_errors, 1);
				left--;
				continue;
			}
		} else {
			/* one command, one reply, as RFC 5321 clients without
			 * PIPELINING do */
			const char *p = m->cmd;

			for (int k = 0; k < 3; k++) {
				const char *e = strstr(p, "\r\n") + 2;

				if (tpc_write(r.fd, p, e - p))
					goto fail;
				int code = tpc_reply(&r, NULL);

				if (code < 0)
					goto fail;
				ok &= code == (k < 2 ? 250 : 354);
				if (!ok)
					break;
				p = e;
			}
			if (!ok) {
				/* no RSET: the next MAIL gets a 503 and is
				 * counted as an error too, which is what the
				 * sink never causes */
				atomic_fetch_add(&tpc_errors, 1);
				left--;
				continue;
			}
		}
		if (tpc_write(r.fd, m->data, m->len))
			goto fail;
		int code = tpc_reply(&r, NULL);

		if (code < 0)
			goto fail;
		left--;
		if (ok && code == 250)
			atomic_fetch_add(&tpc_sent, 1);
		else
			atomic_fetch_add(&tpc_errors, 1);
	}
	if (tpc_write(r.fd, "QUIT\r\n", 6) == 0)
		tpc_reply(&r, NULL);
	close(r.fd);
	return NULL;
fail:
	/* the messages this connection still owed are lost */
	atomic_fetch_add(&tpc_errors, left);
	atomic_fetch_add(&tpc_failed, 1);
	if (r.fd >= 0)
		close(r.fd);
	return NULL;
}

static void *tpc_map(const char *path, size_t *len)
{
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(path);
		exit(3);
	}
	*len = st.st_size;
	p = mmap(NULL, st.st_size ? st.st_size : 1, PROT_READ, MAP_PRIVATE,
		 fd, 0);
	if (p == MAP_FAILED) {
		perror(path);
		exit(3);
	}
	close(fd);
	return p;
}

/* Parse MESSAGES into tpc_msgs; exits 3 on a malformed file. */
static void tpc_load_msgs(const char *path)
{
	size_t len, off = 0, cap = 1024;
	const char *base = tpc_map(path, &len);

	tpc_msgs = malloc(cap * sizeof(*tpc_msgs));
	while (tpc_msgs && off < len) {
		const char *nl = memchr(base + off, '\n', len - off);
		char hdr[600], snd[300], rcpt[300];
		unsigned long mlen;
		size_t hl = nl ? (size_t)(nl - base - off) : 0;

		if (!nl || hl >= sizeof(hdr))
			goto bad;
		memcpy(hdr, base + off, hl);
		hdr[hl] = 0;
		if (sscanf(hdr, "%lu %299s %299s", &mlen, snd, rcpt) != 3)
			goto bad;
		if (!strcmp(snd, "<>"))
			snd[0] = 0;
		off += hl + 1;
		if (mlen > len - off)
			goto bad;
		if (tpc_nmsgs == cap) {
			cap *= 2;
			tpc_msgs = realloc(tpc_msgs, cap * sizeof(*tpc_msgs));
			if (!tpc_msgs)
				break;
		}
		struct tpc_msg *m = &tpc_msgs[tpc_nmsgs++];

		m->data = base + off;
		m->len = mlen;
		m->cmd_len = snprintf(m->cmd, sizeof(m->cmd),
				      "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n",
				      snd, rcpt);
		off += mlen;
	}
	if (!tpc_msgs) {
		fprintf(stderr, "tpc_send: out of memory\n");
		exit(3);
	}
	return;
bad:
	fprintf(stderr, "tpc_send: %s: bad record at byte %zu\n", path, off);
	exit(3);
}

static struct tpc_conn *tpc_load_dests(const char *path)
{
	FILE *f = fopen(path, "r");
	struct tpc_conn *c = NULL;
	size_t cap = 0;
	char line[128];

	if (!f) {
		perror(path);
		exit(3);
	}
	while (fgets(line, sizeof(line), f)) {
		char *colon = strrchr(line, ':');

		if (line[0] == '\n' || line[0] == '#')
			continue;
		if (tpc_nconns == cap) {
			cap = cap ? cap * 2 : 256;
			c = realloc(c, cap * sizeof(*c));
			if (!c) {
				fprintf(stderr, "tpc_send: out of memory\n");
				exit(3);
			}
		}
		struct tpc_conn *d = &c[tpc_nconns];

		memset(d, 0, sizeof(*d));
		d->addr.sin_family = AF_INET;
		if (!colon)
			goto bad;
		*colon = 0;
		d->addr.sin_port = htons(atoi(colon + 1));
		if (inet_pton(AF_INET, line, &d->addr.sin_addr) != 1 ||
		    !d->addr.sin_port)
			goto bad;
		d->first = tpc_nconns++;
	}
	fclose(f);
	if (!tpc_nconns) {
		fprintf(stderr, "tpc_send: %s: no destinations\n", path);
		exit(3);
	}
	return c;
bad:
	fprintf(stderr, "tpc_send: %s: bad line %zu\n", path, tpc_nconns + 1);
	exit(3);
}

static void tpc_usage(void)
{
	fprintf(stderr, "usage: tpc_send [-s STACK_KB] [-t TIMEOUT_S] "
		"[-H HELO] DESTS MESSAGES\n");
	exit(2);
}

int main(int argc, char **argv)
{
	size_t stack_kb = 64, started = 0;
	struct timespec t0, t1;
	pthread_attr_t attr;
	struct tpc_conn *conns;
	int opt, err;

	while ((opt = getopt(argc, argv, "s:t:H:")) != -1) {
		switch (opt) {
		case 's':
			stack_kb = strtoul(optarg, NULL, 10);
			break;
		case 't':
			tpc_timeout = atoi(optarg);
			break;
		case 'H':
			tpc_helo = optarg;
			break;
		default:
			tpc_usage();
		}
	}
	if (argc - optind != 2 || tpc_timeout <= 0 || strlen(tpc_helo) > 255)
		tpc_usage();
	conns = tpc_load_dests(argv[optind]);
	tpc_load_msgs(argv[optind + 1]);

	/*
	 * 64 KB stacks: a thread here needs a few KB (a 1 KB reply buffer and
	 * libc's frames), and 10,000 threads with glibc's default 8 MB would
	 * reserve 80 GB of address space.  The resident cost per thread is
	 * what the touched stack pages and the kernel's task cost, which is
	 * the point of measuring this design.
	 */
	pthread_attr_init(&attr);
	if (stack_kb * 1024 < PTHREAD_STACK_MIN)
		stack_kb = (PTHREAD_STACK_MIN + 1023) / 1024;
	err = pthread_attr_setstacksize(&attr, stack_kb * 1024);
	if (err) {
		fprintf(stderr, "tpc_send: stack size: %s\n", strerror(err));
		return 3;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < tpc_nconns; i++) {
		err = pthread_create(&conns[i].tid, &attr, tpc_thread,
				     &conns[i]);
		if (err) {
			fprintf(stderr, "tpc_send: thread %zu of %zu: %s\n",
				i + 1, tpc_nconns, strerror(err));
			break;
		}
		started++;
	}
	for (size_t i = 0; i < started; i++)
		pthread_join(conns[i].tid, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("threads: %zu\nmessages: %lu\nerrors: %lu\nfailed_threads: %lu\n"
	       "elapsed_s: %.3f\n", started, atomic_load(&tpc_sent),
	       atomic_load(&tpc_errors), atomic_load(&tpc_failed),
	       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	fflush(stdout);
	if (started < tpc_nconns)
		return 3;
	return atomic_load(&tpc_sent) == tpc_nmsgs ? 0 : 1;
}
