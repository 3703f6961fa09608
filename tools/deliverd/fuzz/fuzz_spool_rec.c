// SPDX-License-Identifier: GPL-2.0
/*
 * Spool message records (dd_spool_rec.c) as recovery reads them from a
 * segment file that may hold anything: a torn write, a flipped byte, a
 * record of a newer or older version.
 *
 * Input: one byte of options, then the record.  Bit 0 of the options
 * leaves the record as it is; otherwise the harness writes the salt,
 * the segment of the queue id and the crc that recovery expects, so
 * that mutations reach the checks behind the crc.
 *
 * Checked: a record that validates loads into a message whose strings
 * and body lie inside the record, and that message, stored again with
 * dd_rec_build(), makes a record that validates and loads to the same
 * sender, recipients, DSN fields, flags and body.
 */
#include "fuzz.h"

#include <endian.h>

#include "dd_spool_int.h"

#define SEG	7U
#define SALT	0x5eed5a17ab1e0001ULL

static void done_cb(void *arg, struct dd_msg *msg, int err)
{
	(void)arg;
	(void)msg;
	(void)err;
}

/* Write the salt, segment and crc that dd_rec_check() wants. */
static void fix_up(unsigned char *p, size_t size)
{
	uint64_t salt = htole64(SALT);
	uint32_t seg = htole32(SEG), len, crc;

	if (size < sizeof(struct dd_rec_hdr))
		return;
	memcpy(p + offsetof(struct dd_rec_hdr, salt), &salt, 8);
	memcpy(p + offsetof(struct dd_rec_hdr, qid) + 4, &seg, 4);
	memcpy(&len, p + offsetof(struct dd_rec_hdr, len), 4);
	len = le32toh(len);
	if (len < offsetof(struct dd_rec_hdr, salt) || len > size)
		return;
	crc = htole32(dd_crc(0, p + offsetof(struct dd_rec_hdr, salt),
			     len - offsetof(struct dd_rec_hdr, salt)));
	memcpy(p + offsetof(struct dd_rec_hdr, crc), &crc, 4);
}

static void same_msg(const struct dd_msg *a, const struct dd_msg *b,
		     const char *abody, const char *bbody)
{
	uint32_t i;

	FUZZ_CHECK(!strcmp(a->sender, b->sender), "sender %s, %s", a->sender,
		   b->sender);
	FUZZ_CHECK(!a->envid == !b->envid &&
		   (!a->envid || !strcmp(a->envid, b->envid)), "envid");
	FUZZ_CHECK(a->ret == b->ret && a->nrcpt == b->nrcpt, "ret or nrcpt");
	FUZZ_CHECK((a->flags & ~DD_MSG_STUFFED) == (b->flags & ~DD_MSG_STUFFED),
		   "flags %#x, %#x", a->flags, b->flags);
	FUZZ_CHECK(a->raw_len == b->raw_len && !memcmp(abody, bbody, a->raw_len),
		   "body");
	FUZZ_CHECK(a->stuffed_len == b->stuffed_len, "stuffed length %llu, %llu",
		   (unsigned long long)a->stuffed_len,
		   (unsigned long long)b->stuffed_len);
	for (i = 0; i < a->nrcpt; i++) {
		const struct dd_rcpt *x = &a->rcpt[i], *y = &b->rcpt[i];

		FUZZ_CHECK(!strcmp(x->addr, y->addr) && x->notify == y->notify &&
			   !x->orcpt == !y->orcpt &&
			   (!x->orcpt || !strcmp(x->orcpt, y->orcpt)),
			   "recipient %u", i);
	}
}

/* Store the loaded message again and compare. */
static void round_trip(const unsigned char *p, const struct dd_rec_hdr *h,
		       const struct dd_msg *m)
{
	const char **rcpts = calloc(m->nrcpt, sizeof(*rcpts));
	const char **orcpt = calloc(m->nrcpt, sizeof(*orcpt));
	uint8_t *notify = calloc(m->nrcpt, 1);
	const char *body = (const char *)p + m->raw_off;
	struct dd_sub_item it = { 0 };
	struct dd_submit sub = {
		.sender = m->sender,
		.nrcpt = m->nrcpt,
		.flags = m->flags & ~DD_MSG_STUFFED,
		.body = body,
		.body_len = m->raw_len,
		.envid = m->envid,
		.ret = m->ret,
		.done = done_cb,
	};
	struct dd_rec_hdr h2;
	struct dd_smsg *back;
	uint32_t i;
	int err;

	if (!rcpts || !orcpt || !notify)
		abort();
	for (i = 0; i < m->nrcpt; i++) {
		rcpts[i] = m->rcpt[i].addr;
		orcpt[i] = m->rcpt[i].orcpt;
		notify[i] = m->rcpt[i].notify;
	}
	sub.rcpts = rcpts;
	sub.orcpt = orcpt;
	sub.notify = notify;
	err = dd_rec_build(&sub, &it);
	FUZZ_CHECK(!err, "a loaded record does not store again: %d", err);
	dd_rec_seal(&it, SALT, h->qid);
	FUZZ_CHECK(dd_rec_check(it.buf, it.len, SEG, SALT, &h2) == DD_REC_OK,
		   "the stored record does not validate");
	back = dd_rec_load(it.buf, &h2, SEG, 0);
	if (!back)
		abort();
	same_msg(m, &back->m, body, (const char *)it.buf + back->m.raw_off);
	free(back);
	free(it.sm);
	free(it.buf);
	free(rcpts);
	free(orcpt);
	free(notify);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int opts = (unsigned int)fuzz_take(&data, &size, 1);
	/* An exact-size heap copy: ASan sees a read past the record. */
	unsigned char *p = malloc(size ? size : 1);
	struct dd_rec_hdr h;
	struct dd_smsg *sm;
	uint32_t i;

	if (!p)
		abort();
	memcpy(p, data, size);
	if (!(opts & 1))
		fix_up(p, size);
	if (dd_rec_check(p, size, SEG, SALT, &h) != DD_REC_OK) {
		free(p);
		return 0;
	}
	FUZZ_CHECK(h.len <= size, "record of %u in %zu", h.len, size);
	sm = dd_rec_load(p, &h, SEG, 0);
	if (!sm)
		abort();
	FUZZ_CHECK(strlen(sm->m.sender) == h.sender_len, "sender length");
	FUZZ_CHECK(sm->m.raw_off + sm->m.raw_len <= h.len &&
		   sm->m.stuffed_off + sm->m.stuffed_len <= h.len,
		   "body outside the record");
	for (i = 0; i < sm->m.nrcpt; i++)
		FUZZ_CHECK(sm->m.rcpt[i].domain > sm->m.rcpt[i].addr &&
			   sm->m.rcpt[i].domain[-1] == '@', "recipient %u", i);
	round_trip(p, &h, &sm->m);
	free(sm);
	free(p);
	return 0;
}
