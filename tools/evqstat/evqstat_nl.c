// SPDX-License-Identifier: GPL-2.0
/*
 * evqstat_nl: the "evq" generic netlink family through libnl-genl-3.
 *
 * One sample is two requests on one socket: GET_STATS (a do: one reply,
 * then the ACK) and GET_QUEUE (a dump: one message per queue, then DONE).
 * Replies are parsed against a policy built from evqstat_fields[]: an
 * attribute a newer module adds is skipped, one it leaves out reads as
 * absent, and a known one of the wrong size fails the sample instead of
 * being read as garbage.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <netlink/netlink.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/genl/ctrl.h>

#include "evqstat.h"

/* In output order: who, then levels, then counters. */
const struct evqstat_field evqstat_fields[] = {
	{ EVQ_A_QUEUE_ID,	NLA_U32, EVQSTAT_KEY,	"queue_id" },
	{ EVQ_A_OWNER_PID,	NLA_U32, EVQSTAT_KEY,	"owner_pid" },
	{ EVQ_A_OWNER_UID,	NLA_U32, EVQSTAT_KEY,	"owner_uid" },
	{ EVQ_A_QUEUES,		NLA_U32, EVQSTAT_LEVEL,	"queues" },
	{ EVQ_A_QUEUES_CREATED,	NLA_U64, EVQSTAT_COUNT,	"queues_created" },
	{ EVQ_A_RING_ENTRIES,	NLA_U32, EVQSTAT_LEVEL,	"ring_entries" },
	{ EVQ_A_WATCHES,	NLA_U32, EVQSTAT_LEVEL,	"watches" },
	{ EVQ_A_OPS,		NLA_U32, EVQSTAT_LEVEL,	"ops" },
	{ EVQ_A_POSTED,		NLA_U64, EVQSTAT_COUNT,	"posted" },
	{ EVQ_A_HARVESTED,	NLA_U64, EVQSTAT_COUNT,	"harvested" },
	{ EVQ_A_OVERFLOWS,	NLA_U64, EVQSTAT_COUNT,	"overflows" },
	{ EVQ_A_WAITS,		NLA_U64, EVQSTAT_COUNT,	"waits" },
	{ EVQ_A_WAITS_SLEPT,	NLA_U64, EVQSTAT_COUNT,	"waits_slept" },
	{ EVQ_A_CTL_CALLS,	NLA_U64, EVQSTAT_COUNT,	"ctl_calls" },
	{ EVQ_A_CTL_CHANGES,	NLA_U64, EVQSTAT_COUNT,	"ctl_changes" },
	{ EVQ_A_SF_CALLS,	NLA_U64, EVQSTAT_COUNT,	"sf_calls" },
	{ EVQ_A_SF_BYTES,	NLA_U64, EVQSTAT_COUNT,	"sf_bytes" },
	{ EVQ_A_SF_NOT_RESIDENT, NLA_U64, EVQSTAT_COUNT, "sf_not_resident" },
	{ EVQ_A_PAGEINS,	NLA_U64, EVQSTAT_COUNT,	"pageins" },
	{ EVQ_A_PAGEIN_NS,	NLA_U64, EVQSTAT_COUNT,	"pagein_ns" },
	{ EVQ_A_PAGEIN_MAX_NS,	NLA_U64, EVQSTAT_PEAK,	"pagein_max_ns" },
};
const size_t evqstat_nr_fields = sizeof(evqstat_fields) / sizeof(evqstat_fields[0]);

struct evqstat_nl {
	struct nl_sock *sk;
	int family;
};

/* Replies of one request, as the callbacks see them. */
struct evqstat_req {
	uint8_t cmd;
	struct evqstat_sample *s;
	bool done;
	int error;		/* negative errno from the kernel */
	char *err;		/* our own message, when set */
	size_t errlen;
	bool failed;
};

static struct nla_policy evqstat_policy[EVQ_A_MAX + 1];

static void evqstat_policy_init(void)
{
	static bool ready;

	if (ready)
		return;
	/* Unknown and padding attributes: any size (NLA_UNSPEC). */
	for (size_t i = 0; i < evqstat_nr_fields; i++)
		evqstat_policy[evqstat_fields[i].attr].type =
			evqstat_fields[i].nla_type;
	ready = true;
}

/**
 * evqstat_nl_parse() - read the attributes of one reply
 * @nlh: a generic netlink message of the "evq" family
 * @out: filled in; attributes absent from @nlh read as zero and have no
 *	bit in @out->have
 * @err: buffer for a message on failure
 * @errlen: its size
 *
 * Return: 0, or -1 with @err set when the message is malformed.
 */
int evqstat_nl_parse(struct nlmsghdr *nlh, struct evqstat_vals *out,
		     char *err, size_t errlen)
{
	struct nlattr *tb[EVQ_A_MAX + 1];
	int ret;

	evqstat_policy_init();
	memset(out, 0, sizeof(*out));
	ret = genlmsg_parse(nlh, 0, tb, EVQ_A_MAX, evqstat_policy);
	if (ret < 0) {
		snprintf(err, errlen, "malformed reply from the evq family: %s",
			 nl_geterror(ret));
		return -1;
	}
	for (size_t i = 0; i < evqstat_nr_fields; i++) {
		const struct evqstat_field *f = &evqstat_fields[i];
		struct nlattr *a = tb[f->attr];

		if (!a)
			continue;
		/* The policy checked the minimum size of both. */
		out->v[f->attr] = f->nla_type == NLA_U32 ? nla_get_u32(a) :
							  nla_get_u64(a);
		out->have |= 1ULL << f->attr;
	}
	return 0;
}

static bool evqstat_sample_grow(struct evqstat_sample *s)
{
	size_t cap = s->cap ? 2 * s->cap : 16;
	struct evqstat_vals *q = realloc(s->queues, cap * sizeof(*q));

	if (!q)
		return false;
	s->queues = q;
	s->cap = cap;
	return true;
}

static int evqstat_nl_valid(struct nl_msg *msg, void *arg)
{
	struct evqstat_req *req = arg;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct evqstat_sample *s = req->s;
	struct evqstat_vals v;

	/* Only our command's replies; anything else is not for us. */
	if (!genlmsg_valid_hdr(nlh, 0) || genlmsg_hdr(nlh)->cmd != req->cmd)
		return NL_SKIP;
	if (evqstat_nl_parse(nlh, &v, req->err, req->errlen))
		goto fail;
	if (req->cmd == EVQ_CMD_GET_STATS) {
		s->global = v;
		return NL_OK;
	}
	/* The id is what a queue is known by from one sample to the next. */
	if (!evqstat_has(&v, EVQ_A_QUEUE_ID)) {
		snprintf(req->err, req->errlen,
			 "malformed reply from the evq family: a queue without EVQ_A_QUEUE_ID");
		goto fail;
	}
	if (s->nr == s->cap && !evqstat_sample_grow(s)) {
		snprintf(req->err, req->errlen, "out of memory");
		goto fail;
	}
	s->queues[s->nr++] = v;
	return NL_OK;
fail:
	req->failed = true;
	return NL_STOP;
}

static int evqstat_nl_finish(struct nl_msg *msg, void *arg)
{
	struct evqstat_req *req = arg;

	(void)msg;
	req->done = true;
	return NL_STOP;
}

static int evqstat_nl_error(struct sockaddr_nl *nla, struct nlmsgerr *e,
			    void *arg)
{
	struct evqstat_req *req = arg;

	(void)nla;
	req->error = e->error;
	req->done = true;
	return NL_STOP;
}

static const char *evqstat_cmd_name(uint8_t cmd)
{
	return cmd == EVQ_CMD_GET_STATS ? "EVQ_CMD_GET_STATS" :
					  "EVQ_CMD_GET_QUEUE";
}

/*
 * Send one request and read its replies to the end: the ACK of a do
 * (auto-ack is libnl's default) or the DONE of a dump.
 */
static int evqstat_nl_request(struct evqstat_nl *nl, struct evqstat_req *req,
			      int flags)
{
	struct nl_msg *msg;
	struct nl_cb *cb;
	int ret;

	msg = nlmsg_alloc();
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!msg || !cb) {
		snprintf(req->err, req->errlen, "out of memory");
		ret = -1;
		goto out;
	}
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, nl->family, 0, flags,
			 req->cmd, EVQ_GENL_VERSION)) {
		snprintf(req->err, req->errlen, "cannot build a request");
		ret = -1;
		goto out;
	}
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, evqstat_nl_valid, req);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, evqstat_nl_finish, req);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, evqstat_nl_finish, req);
	nl_cb_err(cb, NL_CB_CUSTOM, evqstat_nl_error, req);

	ret = nl_send_auto(nl->sk, msg);
	if (ret < 0) {
		snprintf(req->err, req->errlen, "%s: cannot send: %s",
			 evqstat_cmd_name(req->cmd), nl_geterror(ret));
		ret = -1;
		goto out;
	}
	while (!req->done && !req->failed) {
		ret = nl_recvmsgs(nl->sk, cb);
		if (ret < 0) {
			snprintf(req->err, req->errlen, "%s: %s",
				 evqstat_cmd_name(req->cmd), nl_geterror(ret));
			ret = -1;
			goto out;
		}
	}
	if (req->failed) {
		ret = -1;
	} else if (req->error) {
		snprintf(req->err, req->errlen, "%s: %s",
			 evqstat_cmd_name(req->cmd), strerror(-req->error));
		ret = -1;
	} else {
		ret = 0;
	}
out:
	nl_cb_put(cb);
	nlmsg_free(msg);
	return ret;
}

static int evqstat_cmp_id(const void *a, const void *b)
{
	uint64_t x = ((const struct evqstat_vals *)a)->v[EVQ_A_QUEUE_ID];
	uint64_t y = ((const struct evqstat_vals *)b)->v[EVQ_A_QUEUE_ID];

	return x < y ? -1 : x > y;
}

/**
 * evqstat_nl_sample() - read the global counters and every visible queue
 * @nl: from evqstat_nl_open()
 * @s: emptied, then filled in (queues sorted by id)
 * @err: buffer for a message on failure
 * @errlen: its size
 *
 * Return: 0, or -1 with @err set.
 */
int evqstat_nl_sample(struct evqstat_nl *nl, struct evqstat_sample *s,
		      char *err, size_t errlen)
{
	struct evqstat_req req = {
		.cmd = EVQ_CMD_GET_STATS, .s = s, .err = err, .errlen = errlen,
	};
	struct timespec rt;

	s->nr = 0;
	s->nr_closed = 0;
	s->interval = -1;
	memset(&s->global, 0, sizeof(s->global));
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &s->mono);
	s->time = rt.tv_sec + rt.tv_nsec / 1e9;

	if (evqstat_nl_request(nl, &req, 0))
		return -1;
	req = (struct evqstat_req){
		.cmd = EVQ_CMD_GET_QUEUE, .s = s, .err = err, .errlen = errlen,
	};
	if (evqstat_nl_request(nl, &req, NLM_F_DUMP))
		return -1;
	/* The module dumps in id order; do not depend on it. */
	if (s->nr > 1)
		qsort(s->queues, s->nr, sizeof(*s->queues), evqstat_cmp_id);
	return 0;
}

/**
 * evqstat_nl_open() - connect and resolve the "evq" family
 * @nlp: set to the handle on success
 * @err: buffer for a message on failure
 * @errlen: its size
 *
 * Return: 0; EVQSTAT_NL_NOFAMILY when the family is not registered (the
 * module is not loaded); -1 with @err set on any other failure.
 */
int evqstat_nl_open(struct evqstat_nl **nlp, char *err, size_t errlen)
{
	struct evqstat_nl *nl = calloc(1, sizeof(*nl));
	int ret;

	if (!nl || !(nl->sk = nl_socket_alloc())) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	ret = genl_connect(nl->sk);
	if (ret < 0) {
		snprintf(err, errlen, "cannot open a generic netlink socket: %s",
			 nl_geterror(ret));
		goto fail;
	}
	/* A dump message can be larger than libnl's default buffer. */
	nl_socket_enable_msg_peek(nl->sk);
	ret = genl_ctrl_resolve(nl->sk, EVQ_GENL_NAME);
	if (ret == -NLE_OBJ_NOTFOUND) {
		evqstat_nl_close(nl);
		return EVQSTAT_NL_NOFAMILY;
	}
	if (ret < 0) {
		snprintf(err, errlen,
			 "cannot resolve the generic netlink family \"%s\": %s",
			 EVQ_GENL_NAME, nl_geterror(ret));
		goto fail;
	}
	nl->family = ret;
	*nlp = nl;
	return 0;
fail:
	evqstat_nl_close(nl);
	return -1;
}

void evqstat_nl_close(struct evqstat_nl *nl)
{
	if (!nl)
		return;
	if (nl->sk)
		nl_socket_free(nl->sk);
	free(nl);
}

void evqstat_sample_free(struct evqstat_sample *s)
{
	free(s->queues);
	free(s->closed);
	memset(s, 0, sizeof(*s));
}
