// SPDX-License-Identifier: GPL-2.0
/*
 * evq-files: a static-file HTTP/1.0 server on libevq, one thread, one
 * event loop.  GET and HEAD of regular files under a document root, one
 * request per connection.
 *
 * The point is the body: evq_sendfile() never waits for the disk.  With
 * the synchronous form (the default) a send stops where the page cache
 * ends, the queue reads the next window in and says so with an
 * EVQ_CQE_PAGES_READY entry, and the loop carries on with the other
 * connections meanwhile.  -a hands the whole range to the queue instead
 * (EVQ_SF_ASYNC) and waits for one EVQ_CQE_SENDFILE entry.
 *
 *   evq-files -r DOCROOT [-p PORT] [-b kmod|epoll|auto] [-a] [-n N]
 *
 * It listens on 127.0.0.1 only: an example should not publish a
 * directory to the network by accident.  Nor does it time out idle
 * connections, which a server facing the network must do.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <libevq.h>

#define EXIT_SKIP	4
#define REQ_MAX		8192	/* request line and headers */
#define HDR_MAX		512	/* our response header */
#define HARVEST_MAX	64
/* Not UINT64_MAX: the epoll backend keeps that value for itself. */
#define LISTEN_UD	(UINT64_MAX - 1)

enum conn_state { READING, SENDING, WAIT_PAGES, WAIT_ASYNC };

struct conn {
	int fd;			/* -1: the slot is free */
	uint32_t gen;		/* bumped per use; see conn_ud() */
	enum conn_state state;
	bool head;
	const char *type;	/* of the file served */
	char req[REQ_MAX + 1];
	size_t req_len;
	char hdr[HDR_MAX];
	size_t hdr_len, hdr_off;
	int file;		/* -1: no body */
	uint64_t off, end;
};

static struct {
	struct evq q;
	int lfd, root;
	char root_path[PATH_MAX];
	struct conn *conns;
	unsigned int nconns, *free_slot, nfree;
	bool async;
	unsigned long limit, served;
} srv;

/*
 * Entries for a connection can still be in the ring, or a page-in still
 * running, after it is closed and its slot reused; the generation in the
 * upper half tells those late entries from the new connection's.
 */
static uint64_t conn_ud(const struct conn *c)
{
	return (uint64_t)c->gen << 32 | (uint64_t)(c - srv.conns);
}

static struct conn *conn_of(uint64_t ud)
{
	uint64_t slot = ud & 0xffffffffu;
	struct conn *c;

	if (slot >= srv.nconns)
		return NULL;
	c = &srv.conns[slot];
	return c->fd >= 0 && c->gen == ud >> 32 ? c : NULL;
}

static void conn_close(struct conn *c)
{
	/* A page-in or a send of ours may be in flight: stop it. */
	if (c->state == WAIT_PAGES || c->state == WAIT_ASYNC)
		evq_cancel(&srv.q, conn_ud(c));
	evq_unwatch_close(&srv.q, c->fd);
	if (c->file >= 0)
		close(c->file);
	c->fd = c->file = -1;
	srv.free_slot[srv.nfree++] = (unsigned int)(c - srv.conns);
}

/* The whole response is in the socket: the kernel delivers the rest. */
static void conn_finish(struct conn *c)
{
	shutdown(c->fd, SHUT_WR);
	srv.served++;
	conn_close(c);
}

/*
 * One-shot watches: a connection waits for one thing at a time.  No
 * EPOLLRDHUP: a peer that half-closes after its request would make every
 * EPOLLOUT wait return at once; the end of input shows as EPOLLIN anyway.
 */
static void conn_arm(struct conn *c, uint32_t events)
{
	if (evq_mod(&srv.q, c->fd, events, EVQ_WATCH_ONESHOT, conn_ud(c)))
		conn_close(c);
}

static void on_accept(void)
{
	struct conn *c;
	int fd;

	/* The listening watch is level-triggered: what is left comes back. */
	while ((fd = accept4(srv.lfd, NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		if (!srv.nfree) {	/* full: shed load rather than queue it */
			close(fd);
			continue;
		}
		c = &srv.conns[srv.free_slot[--srv.nfree]];
		c->gen = (c->gen + 1) & 0x7fffffff;
		c->fd = fd;
		c->state = READING;
		c->head = false;
		c->req_len = c->hdr_len = c->hdr_off = 0;
		c->off = c->end = 0;
		if (evq_add(&srv.q, fd, EPOLLIN, EVQ_WATCH_ONESHOT, conn_ud(c)))
			conn_close(c);
	}
}

static void on_writable(struct conn *c);

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	default:  return "Internal Server Error";
	}
}

/* Header and any body go out as one buffer; a file body follows it. */
static void respond(struct conn *c, int status, const char *type,
		    uint64_t length, const char *body)
{
	int n = snprintf(c->hdr, HDR_MAX,
		"HTTP/1.0 %d %s\r\nServer: evq-files\r\nContent-Type: %s\r\n"
		"Content-Length: %llu\r\nConnection: close\r\n\r\n%s",
		status, reason(status), type, (unsigned long long)length,
		body && !c->head ? body : "");

	c->hdr_len = n < HDR_MAX ? (size_t)n : HDR_MAX - 1;
	c->state = SENDING;
	on_writable(c);
}

/* Errors carry a one-line text body, which HEAD leaves out. */
static void respond_error(struct conn *c, int status)
{
	char body[64];
	int len = snprintf(body, sizeof(body), "%d %s\n", status,
			   reason(status));

	if (c->file >= 0)
		close(c->file);
	c->file = -1;
	respond(c, status, "text/plain", (uint64_t)len, body);
}

static const char *content_type(const char *path)
{
	static const char *const types[][2] = {
		{ ".html", "text/html" }, { ".txt", "text/plain" },
		{ ".css", "text/css" }, { ".js", "text/javascript" },
		{ ".json", "application/json" }, { ".png", "image/png" },
		{ ".jpg", "image/jpeg" }, { ".svg", "image/svg+xml" },
	};
	const char *dot = strrchr(path, '.');
	size_t i;

	for (i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(dot, types[i][0]))
			return types[i][1];
	return "application/octet-stream";
}

/*
 * Open rel (no leading '/') below the document root, never outside it.
 * openat2(RESOLVE_BENEATH) refuses every escape, ".." and symbolic links
 * alike, in the kernel, where no race can undo the check.  Kernels before
 * 5.6 lack it: there, look where the open descriptor really leads.
 */
static int open_beneath(const char *rel)
{
	struct open_how how = {
		/* O_NONBLOCK: opening a FIFO must not stall the loop. */
		.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	char link[64], real[PATH_MAX];
	size_t rl = strlen(srv.root_path);
	ssize_t n;
	int fd;

	fd = (int)syscall(SYS_openat2, srv.root, rel, &how, sizeof(how));
	if (fd >= 0 || errno != ENOSYS)
		return fd;
	fd = openat(srv.root, rel, (int)how.flags | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, real, sizeof(real) - 1);
	if (n < 0 || (size_t)n <= rl || strncmp(real, srv.root_path, rl) ||
	    (rl > 1 && real[rl] != '/')) {
		close(fd);
		errno = EXDEV;
		return -1;
	}
	return fd;
}

static int hex(char h)
{
	if (h >= '0' && h <= '9')
		return h - '0';
	h |= 0x20;
	return h >= 'a' && h <= 'f' ? h - 'a' + 10 : -1;
}

/* Decode %XX into out; stop at the query.  Returns the HTTP status. */
static int decode_path(const char *t, char *out)
{
	int hi, lo;

	for (; *t && *t != '?' && *t != '#'; t++) {
		if (*t != '%') {
			*out++ = *t;
			continue;
		}
		hi = hex(t[1]);
		lo = hi < 0 ? -1 : hex(t[2]);
		if (lo < 0 || !(hi | lo))	/* malformed, or %00 */
			return 400;
		*out++ = (char)(hi << 4 | lo);
		t += 2;
	}
	*out = '\0';
	return 200;
}

static int open_target(struct conn *c, const char *target)
{
	char path[REQ_MAX + 16], *seg, *rel;
	struct stat st;
	int status = decode_path(target, path);

	if (status != 200)
		return status;
	/* RESOLVE_BENEATH would refuse these too; say so plainly. */
	for (seg = path; seg; seg = strchr(seg + 1, '/'))
		if (!strncmp(seg, "/..", 3) && (!seg[3] || seg[3] == '/'))
			return 403;
	if (path[strlen(path) - 1] == '/')
		strcat(path, "index.html");
	rel = path + strspn(path, "/");
	c->file = open_beneath(rel);
	if (c->file < 0)
		return errno == ENOENT || errno == ENOTDIR ||
		       errno == ENAMETOOLONG ? 404 : 403;
	if (fstat(c->file, &st) || !S_ISREG(st.st_mode))
		return 403;
	/* Back to blocking reads: evq_sendfile() does not wait on its own. */
	fcntl(c->file, F_SETFL, 0);
	c->end = (uint64_t)st.st_size;
	c->type = content_type(rel);
	return 200;
}

/*
 * The request line is in; headers are read and ignored.  Returns the
 * HTTP status.
 */
static int parse_request(struct conn *c)
{
	char *method = c->req, *target, *version;

	c->req[c->req_len] = '\0';
	if (strlen(c->req) != c->req_len)
		return 400;
	*strstr(c->req, "\r\n") = '\0';
	target = strchr(method, ' ');
	version = target ? strchr(target + 1, ' ') : NULL;
	if (!version)
		return 400;
	*target++ = *version++ = '\0';
	c->head = !strcmp(method, "HEAD");
	if (!*method || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
	    strlen(method) || target[0] != '/' ||
	    (strcmp(version, "HTTP/1.0") && strcmp(version, "HTTP/1.1")))
		return 400;
	if (!c->head && strcmp(method, "GET"))
		return 501;
	return open_target(c, target);
}

static void on_request(struct conn *c)
{
	int status = parse_request(c);

	if (status == 200)
		respond(c, 200, c->type, c->end, NULL);
	else
		respond_error(c, status);
}

static void on_readable(struct conn *c)
{
	ssize_t n;

	while (!memmem(c->req, c->req_len, "\r\n\r\n", 4)) {
		if (c->req_len == REQ_MAX) {
			respond_error(c, 431);
			return;
		}
		n = recv(c->fd, c->req + c->req_len, REQ_MAX - c->req_len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0 && errno == EAGAIN)
				conn_arm(c, EPOLLIN);
			else
				conn_close(c);	/* gone before asking */
			return;
		}
		c->req_len += (size_t)n;
	}
	on_request(c);
}

/*
 * Synchronous form: send what the page cache holds, then either wait for
 * the socket to drain or for the queue's page-in of the next window.
 */
static void send_file(struct conn *c)
{
	struct evq_sendfile sf;
	int n;

	for (;;) {
		memset(&sf, 0, sizeof(sf));
		sf.out_fd = c->fd;
		sf.in_fd = c->file;
		sf.offset = c->off;
		sf.count = c->end - c->off < EVQ_SENDFILE_MAX ?
			   c->end - c->off : EVQ_SENDFILE_MAX;
		sf.user_data = conn_ud(c);
		sf.flags = EVQ_SF_NOTIFY;
		n = evq_sendfile(&srv.q, &sf);
		if (n < 0) {
			conn_close(c);
			return;
		}
		c->off += (uint64_t)n;
		switch (sf.stop) {
		case EVQ_SF_STOP_DONE:
			if (c->off == c->end)
				conn_finish(c);
			else if (n)	/* the range was capped: go on */
				continue;
			else		/* the file shrank under us */
				conn_close(c);
			break;
		case EVQ_SF_STOP_SOCK_FULL:
			conn_arm(c, EPOLLOUT);
			break;
		case EVQ_SF_STOP_NOT_RESIDENT:
			c->state = WAIT_PAGES;	/* PAGES_READY comes next */
			break;
		default:
			conn_close(c);
			break;
		}
		return;
	}
}

/* Asynchronous form: the queue owns the range until its entry comes. */
static void send_file_async(struct conn *c)
{
	struct evq_sendfile sf = {
		.out_fd = c->fd, .in_fd = c->file, .offset = c->off,
		.count = c->end - c->off < EVQ_SENDFILE_MAX ?
			 c->end - c->off : EVQ_SENDFILE_MAX,
		.user_data = conn_ud(c), .flags = EVQ_SF_ASYNC,
	};

	if (evq_sendfile(&srv.q, &sf))
		conn_close(c);
	else
		c->state = WAIT_ASYNC;
}

static void on_writable(struct conn *c)
{
	bool body = c->file >= 0 && !c->head && c->off < c->end;
	ssize_t n;

	while (c->hdr_off < c->hdr_len) {
		/* MSG_MORE: let the header share a segment with the body. */
		n = send(c->fd, c->hdr + c->hdr_off, c->hdr_len - c->hdr_off,
			 MSG_DONTWAIT | MSG_NOSIGNAL | (body ? MSG_MORE : 0));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == EAGAIN)
				conn_arm(c, EPOLLOUT);
			else
				conn_close(c);
			return;
		}
		c->hdr_off += (size_t)n;
	}
	if (!body)
		conn_finish(c);
	else if (srv.async)
		send_file_async(c);
	else
		send_file(c);
}

static void on_entry(const struct evq_cqe *e)
{
	struct conn *c;

	if (e->user_data == LISTEN_UD) {
		on_accept();
		return;
	}
	c = conn_of(e->user_data);
	if (!c)
		return;		/* a late entry of a closed connection */
	switch (e->flags & EVQ_CQE_TYPE_MASK) {
	case EVQ_CQE_READY:
		if (c->state == READING)
			on_readable(c);
		else
			on_writable(c);
		break;
	case EVQ_CQE_PAGES_READY:
		if (c->state != WAIT_PAGES)
			break;
		if (e->res < 0) {
			conn_close(c);
			break;
		}
		c->state = SENDING;
		send_file(c);
		break;
	case EVQ_CQE_SENDFILE:
		if (c->state != WAIT_ASYNC)
			break;
		if (e->res < 0) {
			conn_close(c);
			break;
		}
		c->off += (uint64_t)e->res;
		if (e->flags & EVQ_CQEF_MORE)
			break;		/* the error that stopped it follows */
		c->state = SENDING;
		if (c->off == c->end)
			conn_finish(c);
		else if (!e->res)
			conn_close(c);
		else
			send_file_async(c);
		break;
	}
}

static int listen_on(unsigned int port)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t len = sizeof(a);
	int one = 1;

	srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv.lfd < 0)
		return -1;
	setsockopt(srv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(srv.lfd, 4096) ||
	    getsockname(srv.lfd, (struct sockaddr *)&a, &len))
		return -1;
	printf("listening on 127.0.0.1:%u\n", ntohs(a.sin_port));
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: evq-files [-r DOCROOT] [-p PORT] [-b kmod|epoll|auto] [-a] [-c CONNS]\n"
"                 [-n N]\n"
"  -r   document root (default .)\n"
"  -p   TCP port on 127.0.0.1; 0 picks one (default 8080)\n"
"  -b   libevq backend (default auto: the module if loaded)\n"
"  -a   asynchronous sendfile: the queue sends each file whole\n"
"  -c   connections at once (default 1024); more are closed at accept\n"
"  -n   exit after N responses (default 0: never)\n"
"exit: 0 done, 1 error, 2 usage, 4 skipped (-b kmod without /dev/evq)\n");
}

int main(int argc, char **argv)
{
	const char *root = ".", *backend = "auto";
	unsigned int port = 8080, flags = 0, i;
	struct evq_cqe cqe[HARVEST_MAX];
	struct rlimit rl;
	int opt, n;

	srv.nconns = 1024;
	while ((opt = getopt(argc, argv, "r:p:b:ac:n:h")) != -1) {
		switch (opt) {
		case 'r': root = optarg; break;
		case 'p': port = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'b': backend = optarg; break;
		case 'a': srv.async = true; break;
		case 'c': srv.nconns = (unsigned int)strtoul(optarg, NULL, 10);
			  break;
		case 'n': srv.limit = strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!strcmp(backend, "kmod"))
		flags = EVQ_OPEN_KMOD;
	else if (!strcmp(backend, "epoll"))
		flags = EVQ_OPEN_EPOLL;
	if (optind != argc || port > 65535 || !srv.nconns ||
	    (!flags && strcmp(backend, "auto"))) {
		usage(stderr);
		return 2;
	}

	/* Each connection may hold a socket, a file and a dup() or two. */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	srv.root = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (srv.root < 0 || !realpath(root, srv.root_path)) {
		fprintf(stderr, "evq-files: %s: %s\n", root, strerror(errno));
		return 1;
	}
	srv.conns = calloc(srv.nconns, sizeof(*srv.conns));
	srv.free_slot = calloc(srv.nconns, sizeof(*srv.free_slot));
	if (!srv.conns || !srv.free_slot)
		return 1;
	for (i = 0; i < srv.nconns; i++) {
		srv.conns[i].fd = srv.conns[i].file = -1;
		srv.free_slot[srv.nfree++] = srv.nconns - 1 - i;
	}

	n = evq_open(&srv.q, 4096, flags);
	if (n) {
		fprintf(stderr, "evq-files: evq_open: %s\n", strerror(-n));
		return n == -ENOENT && flags == EVQ_OPEN_KMOD ? EXIT_SKIP : 1;
	}
	if (listen_on(port) ||
	    evq_add(&srv.q, srv.lfd, EPOLLIN, 0, LISTEN_UD)) {
		perror("evq-files: listen");
		return 1;
	}
	printf("backend: %s\n", evq_backend_name(&srv.q));
	fflush(stdout);

	while (!srv.limit || srv.served < srv.limit) {
		n = evq_harvest(&srv.q, cqe, HARVEST_MAX);
		if (!n)
			n = evq_wait(&srv.q, 1, -1);
		else
			for (i = 0; i < (unsigned int)n; i++)
				on_entry(&cqe[i]);
		if (n < 0 && n != -EINTR) {
			fprintf(stderr, "evq-files: %s\n", strerror(-n));
			return 1;
		}
	}
	for (i = 0; i < srv.nconns; i++)
		if (srv.conns[i].fd >= 0)
			conn_close(&srv.conns[i]);
	evq_close(&srv.q);
	return 0;
}
