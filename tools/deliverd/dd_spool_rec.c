// SPDX-License-Identifier: GPL-2.0
/*
 * deliverd spool: record encoding, dot-stuffing and validation.  The
 * layout is in dd_spool_int.h and Documentation/deliverd.rst, "Spool
 * format".
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dd_spool_int.h"

#define DD_SPOOL_FLAGS	(DD_MSG_8BIT | DD_MSG_NULLSENDER | DD_MSG_SMTPUTF8)
#define DD_REC_FLAGS_V1	(DD_MSG_8BIT | DD_MSG_NULLSENDER | DD_MSG_STUFFED)
#define DD_REC_FLAGS	(DD_SPOOL_FLAGS | DD_MSG_STUFFED)
#define DD_NOTIFY_ALL	(DD_NOTIFY_NEVER | DD_NOTIFY_SUCCESS | \
			 DD_NOTIFY_FAILURE | DD_NOTIFY_DELAY)

uint32_t dd_crc(uint32_t crc, const void *p, uint64_t len)
{
	const unsigned char *b = p;

	while (len) {
		uInt n = len > (1U << 30) ? (1U << 30) : (uInt)len;

		crc = (uint32_t)crc32(crc, b, n);
		b += n;
		len -= n;
	}
	return crc;
}

void dd_seg_hdr_encode(void *out, uint32_t seg, uint64_t salt)
{
	struct dd_seg_hdr h = {
		.magic = htole32(DD_SEG_MAGIC),
		.version = htole16(DD_SPOOL_VERSION),
		.hdr_len = htole16(sizeof(struct dd_seg_hdr)),
		.seg = htole32(seg),
		.salt = htole64(salt),
	};

	h.crc = htole32(dd_crc(0, &h, offsetof(struct dd_seg_hdr, crc)));
	memcpy(out, &h, sizeof(h));
}

/* 0, -EINVAL (not a header) or -EPROTO (another version). */
int dd_seg_hdr_decode(const void *in, uint32_t *seg, uint64_t *salt)
{
	struct dd_seg_hdr h;

	memcpy(&h, in, sizeof(h));
	if (le32toh(h.magic) != DD_SEG_MAGIC ||
	    le32toh(h.crc) != dd_crc(0, &h, offsetof(struct dd_seg_hdr, crc)))
		return -EINVAL;
	if (le16toh(h.version) != DD_SPOOL_VERSION ||
	    le16toh(h.hdr_len) != sizeof(h))
		return -EPROTO;
	*seg = le32toh(h.seg);
	*salt = le64toh(h.salt);
	return 0;
}

void dd_jnl_hdr_encode(void *out, uint32_t seg)
{
	struct dd_jnl_hdr h = {
		.magic = htole32(DD_JNL_MAGIC),
		.version = htole16(DD_SPOOL_VERSION),
		.seg = htole32(seg),
	};

	h.crc = htole32(dd_crc(0, &h, offsetof(struct dd_jnl_hdr, crc)));
	memcpy(out, &h, sizeof(h));
}

int dd_jnl_hdr_decode(const void *in, uint32_t *seg)
{
	struct dd_jnl_hdr h;

	memcpy(&h, in, sizeof(h));
	if (le32toh(h.magic) != DD_JNL_MAGIC ||
	    le32toh(h.crc) != dd_crc(0, &h, offsetof(struct dd_jnl_hdr, crc)))
		return -EINVAL;
	if (le16toh(h.version) != DD_SPOOL_VERSION)
		return -EPROTO;
	*seg = le32toh(h.seg);
	return 0;
}

void dd_jrec_encode(void *out, unsigned int type, uint64_t qid,
		    uint32_t rcpt, uint16_t attempts, int64_t next_try)
{
	struct dd_jrec j = {
		.magic = htole32(DD_JREC_MAGIC),
		.type = (uint8_t)type,
		.attempts = htole16(attempts),
		.qid = htole64(qid),
		.next_try = (int64_t)htole64((uint64_t)next_try),
		.rcpt = htole32(rcpt),
	};

	j.crc = htole32(dd_crc(0, &j, offsetof(struct dd_jrec, crc)));
	memcpy(out, &j, sizeof(j));
}

/* 0 and *j in host order, or -EINVAL. */
int dd_jrec_decode(const void *in, struct dd_jrec *j)
{
	struct dd_jrec r;

	memcpy(&r, in, sizeof(r));
	if (le32toh(r.magic) != DD_JREC_MAGIC ||
	    le32toh(r.crc) != dd_crc(0, &r, offsetof(struct dd_jrec, crc)) ||
	    r.type < DD_J_DELIVERED || r.type >= DD_J_NTYPES)
		return -EINVAL;
	j->magic = DD_JREC_MAGIC;
	j->type = r.type;
	j->reserved = r.reserved;
	j->attempts = le16toh(r.attempts);
	j->qid = le64toh(r.qid);
	j->next_try = (int64_t)le64toh((uint64_t)r.next_try);
	j->rcpt = le32toh(r.rcpt);
	j->crc = le32toh(r.crc);
	return 0;
}

/* local@domain: '@' neither first nor last, domain not too long. */
static bool addr_ok(const char *a, size_t len)
{
	const char *at;

	if (len < 3 || len > DD_ADDR_MAX || memchr(a, '\0', len))
		return false;
	at = memrchr(a, '@', len);
	return at && at != a && at != a + len - 1 &&
	       (size_t)(a + len - at - 1) <= DD_DOMAIN_MAX;
}

/*
 * Dot-stuffing: a '.' at the start of the body or right after a '\n'
 * gets another '.'.  After every LF, not only CRLF, so that a bare LF
 * that some server takes for a line end cannot smuggle an end of data.
 */
static uint64_t count_dots(const char *b, uint64_t len)
{
	uint64_t n = 0;
	const char *p = b, *end;

	/* No head is (NULL, 0), and NULL + 0 is undefined. */
	if (!len)
		return 0;
	end = b + len;
	if (b[0] == '.')
		n++;
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p++;
		if (p < end && *p == '.')
			n++;
	}
	return n;
}

/* Stuff b (which starts a line) into out; returns the end. */
static char *stuff(char *out, const char *b, uint64_t len)
{
	uint64_t i;
	bool bol = true;

	for (i = 0; i < len; i++) {
		if (bol && b[i] == '.')
			*out++ = '.';
		*out++ = b[i];
		bol = b[i] == '\n';
	}
	return out;
}

static bool stuffed_ok(const char *s, uint64_t slen, const char *b, uint64_t len)
{
	uint64_t i, j = 0;
	bool bol = true;

	for (i = 0; i < len; i++) {
		if (bol && b[i] == '.') {
			if (j >= slen || s[j] != '.')
				return false;
			j++;
		}
		if (j >= slen || s[j] != b[i])
			return false;
		j++;
		bol = b[i] == '\n';
	}
	return j == slen;
}

/* NOTIFY: NEVER alone, or any of SUCCESS, FAILURE, DELAY; 0 is none. */
static bool notify_ok(uint8_t n)
{
	return !(n & ~DD_NOTIFY_ALL) &&
	       (!(n & DD_NOTIFY_NEVER) || n == DD_NOTIFY_NEVER);
}

/*
 * A version 2 record's DSN block: ret, nrcpt NOTIFY octets, then nrcpt
 * NUL-terminated ORCPTs ("" for none), exactly len octets.
 */
static bool dsn_block_ok(const char *d, uint32_t len, uint32_t nrcpt)
{
	const char *s, *end = d + len;
	uint32_t i;

	if (len < 1 + (uint64_t)nrcpt || (uint8_t)d[0] > DD_RET_HDRS)
		return false;
	for (i = 0; i < nrcpt; i++)
		if (!notify_ok((uint8_t)d[1 + i]))
			return false;
	s = d + 1 + nrcpt;
	for (i = 0; i < nrcpt; i++) {
		const char *z = memchr(s, '\0', (size_t)(end - s));

		if (!z || z - s > DD_ORCPT_MAX)
			return false;
		s = z + 1;
	}
	return s == end;
}

/*
 * One allocation: the wrapper, the rcpt array, sender, envid and the
 * addresses (rcpts: nrcpt NUL-terminated strings, rlen bytes, checked),
 * and the ORCPTs of the DSN block (dsn: dlen octets, checked, or NULL).
 */
static struct dd_smsg *msg_alloc(const char *sender, uint32_t slen,
				 const char *envid, uint32_t elen,
				 const char *rcpts, uint32_t rlen, uint32_t nrcpt,
				 const char *dsn, uint32_t dlen)
{
	struct dd_smsg *sm;
	struct dd_msg *m;
	size_t size = sizeof(*sm) + (size_t)nrcpt * sizeof(struct dd_rcpt) +
		      slen + 1 + (elen ? elen + 1 : 0) + rlen + dlen;
	char *s;
	uint32_t i;

	sm = calloc(1, size);
	if (!sm)
		return NULL;
	m = &sm->m;
	m->nrcpt = nrcpt;
	m->rcpt = (struct dd_rcpt *)(sm + 1);
	s = (char *)(m->rcpt + nrcpt);
	memcpy(s, sender, slen);
	m->sender = s;
	s += slen + 1;
	if (elen) {
		memcpy(s, envid, elen);
		m->envid = s;
		s += elen + 1;
	}
	memcpy(s, rcpts, rlen);
	for (i = 0; i < nrcpt; i++) {
		struct dd_rcpt *r = &m->rcpt[i];

		r->addr = s;
		r->domain = strrchr(s, '@') + 1;
		r->msg = m;
		r->state = DD_RCPT_QUEUED;
		r->idx = i;
		s += strlen(s) + 1;
	}
	if (dsn) {
		m->ret = (uint8_t)dsn[0];
		memcpy(s, dsn + 1 + nrcpt, dlen - 1 - nrcpt);
		for (i = 0; i < nrcpt; i++) {
			struct dd_rcpt *r = &m->rcpt[i];

			r->notify = (uint8_t)dsn[1 + i];
			r->orcpt = *s ? s : NULL;
			s += strlen(s) + 1;
		}
	}
	atomic_init(&m->pending, nrcpt);
	return sm;
}

int dd_rec_build(const struct dd_submit *sub, struct dd_sub_item *it)
{
	struct dd_rec_hdr h;
	uint64_t slen, elen = 0, rlen = 0, dlen = 0, dots, stlen, total, raw;
	unsigned char *buf, *p, *dsn = NULL;
	bool v2 = sub && (sub->envid || sub->ret || (sub->flags & DD_MSG_SMTPUTF8));
	unsigned int i;

	if (!sub || !sub->sender || !sub->rcpts || !sub->done ||
	    sub->nrcpt == 0 || sub->nrcpt > DD_NRCPT_MAX || !sub->body ||
	    sub->body_len < 2 || sub->body_len > DD_REC_MAX ||
	    memcmp(sub->body + sub->body_len - 2, "\r\n", 2) ||
	    (sub->flags & ~DD_SPOOL_FLAGS))
		return -EINVAL;
	if (sub->head_len && (!sub->head || sub->head_len < 2 ||
			      sub->head_len > DD_REC_MAX ||
			      memcmp(sub->head + sub->head_len - 2, "\r\n", 2)))
		return -EINVAL;
	raw = sub->head_len + sub->body_len;
	slen = strnlen(sub->sender, DD_ADDR_MAX + 1);
	if (slen > DD_ADDR_MAX || (slen && !addr_ok(sub->sender, slen)))
		return -EINVAL;
	if (sub->envid) {
		elen = strnlen(sub->envid, DD_ENVID_MAX + 1);
		if (elen > DD_ENVID_MAX)
			return -EINVAL;
	}
	for (i = 0; i < sub->nrcpt; i++) {
		const char *r = sub->rcpts[i];
		size_t n;

		if (!r)
			return -EINVAL;
		n = strnlen(r, DD_ADDR_MAX + 1);
		if (!addr_ok(r, n))
			return -EINVAL;
		rlen += n + 1;
	}
	if (sub->ret > DD_RET_HDRS)
		return -EINVAL;
	for (i = 0; i < sub->nrcpt; i++) {
		if (sub->notify && !notify_ok(sub->notify[i]))
			return -EINVAL;
		if (sub->orcpt && sub->orcpt[i] &&
		    strnlen(sub->orcpt[i], DD_ORCPT_MAX + 1) > DD_ORCPT_MAX)
			return -EINVAL;
		v2 = v2 || (sub->notify && sub->notify[i]) ||
		     (sub->orcpt && sub->orcpt[i] && *sub->orcpt[i]);
		dlen += sub->orcpt && sub->orcpt[i] ? strlen(sub->orcpt[i]) + 1 : 1;
	}
	dlen = v2 ? dlen + 1 + sub->nrcpt : 0;
	/* head ends with CRLF, so body starts a line as count_dots assumes */
	dots = count_dots(sub->head, sub->head_len) +
	       count_dots(sub->body, sub->body_len);
	stlen = dots ? raw + dots : 0;
	total = dd_align8(sizeof(h) + slen + elen + rlen + raw + stlen + dlen);
	if (total > DD_REC_MAX)
		return -EFBIG;

	buf = calloc(1, total);
	if (!buf)
		return -ENOMEM;
	p = buf + sizeof(h);
	memcpy(p, sub->sender, slen);
	p += slen;
	if (elen)
		memcpy(p, sub->envid, elen);
	p += elen;
	for (i = 0; i < sub->nrcpt; i++) {
		size_t n = strlen(sub->rcpts[i]) + 1;

		memcpy(p, sub->rcpts[i], n);
		p += n;
	}
	it->raw_rel = (uint64_t)(p - buf);
	if (sub->head_len)
		memcpy(p, sub->head, sub->head_len);
	memcpy(p + sub->head_len, sub->body, sub->body_len);
	p += raw;
	it->stuffed_rel = it->raw_rel;
	if (dots) {
		char *q = (char *)p;

		it->stuffed_rel = (uint64_t)(p - buf);
		q = stuff(q, sub->head, sub->head_len);
		stuff(q, sub->body, sub->body_len);
		p += stlen;
	}
	if (dlen) {
		dsn = p;
		*p++ = sub->ret;
		for (i = 0; i < sub->nrcpt; i++)
			*p++ = sub->notify ? sub->notify[i] : 0;
		for (i = 0; i < sub->nrcpt; i++) {
			size_t n = sub->orcpt && sub->orcpt[i] ?
				   strlen(sub->orcpt[i]) : 0;

			memcpy(p, n ? sub->orcpt[i] : "", n);
			p[n] = '\0';
			p += n + 1;
		}
	}

	it->sm = msg_alloc(sub->sender, (uint32_t)slen, sub->envid,
			   (uint32_t)elen, (const char *)buf + sizeof(h) + slen + elen,
			   (uint32_t)rlen, sub->nrcpt, (const char *)dsn,
			   (uint32_t)dlen);
	if (!it->sm) {
		free(buf);
		return -ENOMEM;
	}
	it->sm->m.flags = sub->flags | (dots ? DD_MSG_STUFFED : 0);
	it->sm->m.arrival = dd_now();
	it->sm->m.raw_len = raw;
	it->sm->m.stuffed_len = dots ? stlen : raw;

	memset(&h, 0, sizeof(h));
	h.magic = htole32(DD_REC_MAGIC);
	h.version = htole16(dlen ? DD_REC_VERSION_DSN : DD_SPOOL_VERSION);
	h.type = htole16(DD_REC_MSG);
	h.len = htole32((uint32_t)total);
	h.arrival = (int64_t)htole64((uint64_t)it->sm->m.arrival);
	h.flags = htole32(it->sm->m.flags);
	h.nrcpt = htole32(sub->nrcpt);
	h.sender_len = htole32((uint32_t)slen);
	h.envid_len = htole32((uint32_t)elen);
	h.rcpts_len = htole32((uint32_t)rlen);
	h.dsn_len = htole32((uint32_t)dlen);
	h.raw_len = htole64(raw);
	h.stuffed_len = htole64(stlen);
	memcpy(buf, &h, sizeof(h));

	it->buf = buf;
	it->len = (uint32_t)total;
	it->tail_crc = dd_crc(0, buf + offsetof(struct dd_rec_hdr, arrival),
			      total - offsetof(struct dd_rec_hdr, arrival));
	return 0;
}

void dd_rec_seal(struct dd_sub_item *it, uint64_t salt, uint64_t qid)
{
	uint64_t v[2] = { htole64(salt), htole64(qid) };
	uint32_t crc;

	memcpy(it->buf + offsetof(struct dd_rec_hdr, salt), v, sizeof(v));
	crc = dd_crc(0, v, sizeof(v));
	crc = (uint32_t)crc32_combine(crc, it->tail_crc,
				      (z_off_t)(it->len - offsetof(struct dd_rec_hdr, arrival)));
	crc = htole32(crc);
	memcpy(it->buf + offsetof(struct dd_rec_hdr, crc), &crc, sizeof(crc));
	it->sm->m.id = qid;
}

const char *dd_rec_strerr(enum dd_rec_err e)
{
	switch (e) {
	case DD_REC_OK:		return "ok";
	case DD_REC_SHORT:	return "past end of file";
	case DD_REC_BADMAGIC:	return "bad magic";
	case DD_REC_BADVERSION:	return "bad version";
	case DD_REC_BADHDR:	return "bad header";
	case DD_REC_BADCRC:	return "crc mismatch";
	case DD_REC_BADDATA:	return "bad contents";
	}
	return "?";
}

static void hdr_decode(const unsigned char *p, struct dd_rec_hdr *h)
{
	memcpy(h, p, sizeof(*h));
	h->magic = le32toh(h->magic);
	h->version = le16toh(h->version);
	h->type = le16toh(h->type);
	h->len = le32toh(h->len);
	h->crc = le32toh(h->crc);
	h->salt = le64toh(h->salt);
	h->qid = le64toh(h->qid);
	h->arrival = (int64_t)le64toh((uint64_t)h->arrival);
	h->flags = le32toh(h->flags);
	h->nrcpt = le32toh(h->nrcpt);
	h->sender_len = le32toh(h->sender_len);
	h->envid_len = le32toh(h->envid_len);
	h->rcpts_len = le32toh(h->rcpts_len);
	h->dsn_len = le32toh(h->dsn_len);
	h->raw_len = le64toh(h->raw_len);
	h->stuffed_len = le64toh(h->stuffed_len);
}

enum dd_rec_err dd_rec_check(const unsigned char *p, uint64_t avail,
			     uint32_t seg, uint64_t salt, struct dd_rec_hdr *h)
{
	const char *s, *end;
	uint64_t want;
	uint32_t i;

	if (avail < sizeof(*h))
		return DD_REC_SHORT;
	hdr_decode(p, h);
	if (h->magic != DD_REC_MAGIC)
		return DD_REC_BADMAGIC;
	if (h->version != DD_SPOOL_VERSION && h->version != DD_REC_VERSION_DSN)
		return DD_REC_BADVERSION;
	/* Version 1: no DSN block, only the flags it always had. */
	if (h->version == DD_SPOOL_VERSION &&
	    (h->dsn_len || (h->flags & ~DD_REC_FLAGS_V1)))
		return DD_REC_BADHDR;
	if (h->version == DD_REC_VERSION_DSN &&
	    (h->dsn_len < 1 + (uint64_t)h->nrcpt ||
	     h->dsn_len > 1 + h->nrcpt * (DD_ORCPT_MAX + 2ULL)))
		return DD_REC_BADHDR;
	if (h->type != DD_REC_MSG || h->len < sizeof(*h) || h->len % DD_REC_ALIGN ||
	    h->salt != salt || DD_QID_SEG(h->qid) != seg ||
	    h->nrcpt == 0 || h->nrcpt > DD_NRCPT_MAX ||
	    h->sender_len > DD_ADDR_MAX || h->envid_len > DD_ENVID_MAX ||
	    h->rcpts_len > h->nrcpt * (DD_ADDR_MAX + 1ULL) ||
	    h->raw_len < 2 || h->raw_len > DD_REC_MAX ||
	    h->stuffed_len > DD_REC_MAX || (h->flags & ~DD_REC_FLAGS) ||
	    !(h->flags & DD_MSG_STUFFED) != !h->stuffed_len)
		return DD_REC_BADHDR;
	want = dd_align8(sizeof(*h) + (uint64_t)h->sender_len + h->envid_len +
			 h->rcpts_len + h->raw_len + h->stuffed_len + h->dsn_len);
	if (want != h->len)
		return DD_REC_BADHDR;
	if (h->len > avail)
		return DD_REC_SHORT;
	if (dd_crc(0, p + offsetof(struct dd_rec_hdr, salt),
		   h->len - offsetof(struct dd_rec_hdr, salt)) != h->crc)
		return DD_REC_BADCRC;

	/* The crc matched: what follows only catches our own bugs. */
	s = (const char *)p + sizeof(*h);
	if ((h->sender_len && !addr_ok(s, h->sender_len)) ||
	    memchr(s + h->sender_len, '\0', h->envid_len))
		return DD_REC_BADDATA;
	s += h->sender_len + h->envid_len;
	end = s + h->rcpts_len;
	for (i = 0; i < h->nrcpt; i++) {
		const char *z = memchr(s, '\0', (size_t)(end - s));

		if (!z || !addr_ok(s, (size_t)(z - s)))
			return DD_REC_BADDATA;
		s = z + 1;
	}
	if (s != end || memcmp(s + h->raw_len - 2, "\r\n", 2))
		return DD_REC_BADDATA;
	if (h->stuffed_len &&
	    (h->stuffed_len <= h->raw_len ||
	     !stuffed_ok(s + h->raw_len, h->stuffed_len, s, h->raw_len)))
		return DD_REC_BADDATA;
	if (!h->stuffed_len && count_dots(s, h->raw_len))
		return DD_REC_BADDATA;
	if (h->dsn_len && !dsn_block_ok(s + h->raw_len + h->stuffed_len,
					h->dsn_len, h->nrcpt))
		return DD_REC_BADDATA;
	return DD_REC_OK;
}

struct dd_smsg *dd_rec_load(const unsigned char *p, const struct dd_rec_hdr *h,
			    uint32_t seg, uint64_t off)
{
	const char *s = (const char *)p + sizeof(*h);
	struct dd_smsg *sm;
	struct dd_msg *m;

	sm = msg_alloc(s, h->sender_len, s + h->sender_len, h->envid_len,
		       s + h->sender_len + h->envid_len, h->rcpts_len, h->nrcpt,
		       h->dsn_len ? s + h->sender_len + h->envid_len + h->rcpts_len +
		       h->raw_len + h->stuffed_len : NULL, h->dsn_len);
	if (!sm)
		return NULL;
	m = &sm->m;
	m->id = h->qid;
	m->seg = seg;
	m->flags = h->flags;
	m->arrival = h->arrival;
	m->raw_off = off + sizeof(*h) + h->sender_len + h->envid_len + h->rcpts_len;
	m->raw_len = h->raw_len;
	if (h->stuffed_len) {
		m->stuffed_off = m->raw_off + h->raw_len;
		m->stuffed_len = h->stuffed_len;
	} else {
		m->stuffed_off = m->raw_off;
		m->stuffed_len = m->raw_len;
	}
	return sm;
}
