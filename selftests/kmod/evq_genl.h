/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A minimal generic netlink client for the evq family, on a raw socket,
 * for selftests that look at the replies byte by byte (libnl would hide
 * the padding they check).
 */
#ifndef EVQ_SELFTEST_GENL_H
#define EVQ_SELFTEST_GENL_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/genetlink.h>
#include <linux/evq.h>

/* Big enough for any message the family sends (NLMSG_DEFAULT_SIZE). */
#define EVQ_GENL_BUF	32768

struct evq_genl {
	int fd;
	uint16_t family;
	uint32_t seq;
};

/* Called for each reply message; return non-zero to stop with that value. */
typedef int (*evq_genl_cb)(const struct nlmsghdr *nlh, void *arg);

static inline int evq_genl_send(struct evq_genl *g, uint16_t type,
				uint16_t flags, uint8_t cmd,
				const void *attrs, size_t alen)
{
	struct {
		struct nlmsghdr nlh;
		struct genlmsghdr gh;
		char attrs[64];
	} req;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };

	if (alen > sizeof(req.attrs))
		return -EINVAL;
	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN + alen);
	req.nlh.nlmsg_type = type;
	req.nlh.nlmsg_flags = NLM_F_REQUEST | flags;
	req.nlh.nlmsg_seq = ++g->seq;
	req.gh.cmd = cmd;
	req.gh.version = type == GENL_ID_CTRL ? 1 : EVQ_GENL_VERSION;
	if (alen)
		memcpy(req.attrs, attrs, alen);
	if (sendto(g->fd, &req, req.nlh.nlmsg_len, 0,
		   (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	return 0;
}

/*
 * Receive the replies to the last request until its end (the single
 * reply of a "do", NLMSG_DONE of a dump), calling @cb for each data
 * message.  The buffer is filled with 0xA5 before every recv(), so a
 * callback that finds that byte in a message found bytes the kernel
 * never wrote.  Returns 0, a netlink error (-errno) or @cb's value.
 */
static inline int evq_genl_recv(struct evq_genl *g, int dump, evq_genl_cb cb,
				void *arg)
{
	static char buf[EVQ_GENL_BUF];

	for (;;) {
		struct nlmsghdr *nlh;
		ssize_t got;
		int n;

		memset(buf, 0xA5, sizeof(buf));
		got = recv(g->fd, buf, sizeof(buf), 0);
		if (got < 0)
			return -errno;
		n = (int)got;
		for (nlh = (struct nlmsghdr *)buf; NLMSG_OK(nlh, n);
		     nlh = NLMSG_NEXT(nlh, n)) {
			int ret;

			if (nlh->nlmsg_seq != g->seq)
				continue;
			if (nlh->nlmsg_type == NLMSG_DONE)
				return 0;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(nlh);

				return e->error;
			}
			ret = cb(nlh, arg);
			if (ret)
				return ret;
			if (!dump)
				return 0;
		}
	}
}

/* The first attribute of a generic netlink message, and the bytes they span. */
static inline struct nlattr *evq_genl_attrs(const struct nlmsghdr *nlh,
					    int *len)
{
	*len = (int)nlh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	return (struct nlattr *)((char *)NLMSG_DATA(nlh) + GENL_HDRLEN);
}

#define evq_nla_ok(nla, len) ((len) >= (int)NLA_HDRLEN && \
			      (nla)->nla_len >= NLA_HDRLEN && \
			      (nla)->nla_len <= (len))
#define evq_nla_next(nla, len) ((len) -= NLA_ALIGN((nla)->nla_len), \
				(struct nlattr *)((char *)(nla) + \
						  NLA_ALIGN((nla)->nla_len)))
#define evq_nla_data(nla) ((void *)((char *)(nla) + NLA_HDRLEN))

static inline int evq_genl_family_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct nlattr *nla;
	int len;

	for (nla = evq_genl_attrs(nlh, &len); evq_nla_ok(nla, len);
	     nla = evq_nla_next(nla, len)) {
		if ((nla->nla_type & NLA_TYPE_MASK) == CTRL_ATTR_FAMILY_ID &&
		    nla->nla_len >= NLA_HDRLEN + sizeof(uint16_t)) {
			memcpy(arg, evq_nla_data(nla), sizeof(uint16_t));
			return 0;
		}
	}
	return 0;
}

/* Open a socket and resolve the family.  0, or -errno (-ENOENT: no family). */
static inline int evq_genl_open(struct evq_genl *g)
{
	struct {
		struct nlattr nla;
		char name[sizeof(EVQ_GENL_NAME)];
		char pad[4];
	} a;
	int ret;

	memset(g, 0, sizeof(*g));
	g->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (g->fd < 0)
		return -errno;
	memset(&a, 0, sizeof(a));
	a.nla.nla_type = CTRL_ATTR_FAMILY_NAME;
	a.nla.nla_len = NLA_HDRLEN + sizeof(EVQ_GENL_NAME);
	memcpy(a.name, EVQ_GENL_NAME, sizeof(EVQ_GENL_NAME));
	ret = evq_genl_send(g, GENL_ID_CTRL, 0, CTRL_CMD_GETFAMILY, &a,
			    NLA_ALIGN(a.nla.nla_len));
	if (!ret)
		ret = evq_genl_recv(g, 0, evq_genl_family_cb, &g->family);
	if (!ret && !g->family)
		ret = -ENOENT;
	if (ret) {
		close(g->fd);
		g->fd = -1;
	}
	return ret;
}

static inline void evq_genl_close(struct evq_genl *g)
{
	if (g->fd >= 0)
		close(g->fd);
	g->fd = -1;
}

/* One command of the evq family: a "do" (@dump 0) or a dump. */
static inline int evq_genl_call(struct evq_genl *g, uint8_t cmd, int dump,
				evq_genl_cb cb, void *arg)
{
	int ret = evq_genl_send(g, g->family, dump ? NLM_F_DUMP : 0, cmd,
				NULL, 0);

	return ret ? ret : evq_genl_recv(g, dump, cb, arg);
}

#endif /* EVQ_SELFTEST_GENL_H */
