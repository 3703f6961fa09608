/* SPDX-License-Identifier: GPL-2.0 */
/*
 * deliverd spool: on-disk layout and the parts shared by dd_spool.c
 * (open, recovery, committer) and dd_spool_rec.c (record encoding and
 * validation).  Documentation/deliverd.rst, "Spool format".
 *
 * Every multi-byte field on disk is little-endian; the structs below are
 * the layout, each field at its natural alignment so there is no hidden
 * padding (checked with static_assert).
 */
#ifndef DD_SPOOL_INT_H
#define DD_SPOOL_INT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "dd.h"
#include "dd_spool.h"

#define DD_SPOOL_VERSION	1
/*
 * A message record with a DSN block (RFC 3461 RET, NOTIFY, ORCPT) and
 * the flags a version 1 reader does not know (DD_MSG_SMTPUTF8).  Written
 * only for messages that have any of them, so a daemon that knows only
 * version 1 still reads every other record.
 */
#define DD_REC_VERSION_DSN	2

#define DD_SEG_MAGIC	0x47534444U	/* "DDSG" */
#define DD_REC_MAGIC	0x43524444U	/* "DDRC" */
#define DD_JNL_MAGIC	0x4c4a4444U	/* "DDJL" */
#define DD_JREC_MAGIC	0x524a4444U	/* "DDJR" */

#define DD_REC_MSG	1		/* dd_rec_hdr.type */

/* dd_jrec.type */
enum {
	DD_J_DELIVERED = 1,
	DD_J_FAILED,
	DD_J_DEFER,
	DD_J_HOLD,
	DD_J_RELEASE,
	DD_J_NTYPES,
};

/* Segment file header, at offset 0 of seg-%08u.dat. */
struct dd_seg_hdr {
	uint32_t magic;		/*  0 DD_SEG_MAGIC */
	uint16_t version;	/*  4 DD_SPOOL_VERSION */
	uint16_t hdr_len;	/*  6 sizeof(struct dd_seg_hdr) */
	uint32_t seg;		/*  8 segment number, as in the name */
	uint32_t reserved;	/* 12 0 */
	uint64_t salt;		/* 16 random, repeated in every record */
	uint32_t reserved2;	/* 24 0 */
	uint32_t crc;		/* 28 crc32 of bytes 0..27 */
};
static_assert(sizeof(struct dd_seg_hdr) == 32, "dd_seg_hdr layout");

/* Message record header; the record starts 8-byte aligned in the segment. */
struct dd_rec_hdr {
	uint32_t magic;		/*  0 DD_REC_MAGIC */
	uint16_t version;	/*  4 DD_SPOOL_VERSION */
	uint16_t type;		/*  6 DD_REC_MSG */
	uint32_t len;		/*  8 whole record with padding, multiple of 8 */
	uint32_t crc;		/* 12 crc32 of bytes 16..len-1 */
	uint64_t salt;		/* 16 == dd_seg_hdr.salt */
	uint64_t qid;		/* 24 seg << 32 | index in segment */
	int64_t arrival;	/* 32 CLOCK_REALTIME seconds */
	uint32_t flags;		/* 40 DD_MSG_8BIT | NULLSENDER | STUFFED (| SMTPUTF8: v2) */
	uint32_t nrcpt;		/* 44 >= 1 */
	uint32_t sender_len;	/* 48 no NUL; 0 for <> */
	uint32_t envid_len;	/* 52 no NUL; 0 for none */
	uint32_t rcpts_len;	/* 56 nrcpt NUL-terminated addresses */
	uint32_t dsn_len;	/* 60 DSN block at the end (version 2), else 0 */
	uint64_t raw_len;	/* 64 CRLF body */
	uint64_t stuffed_len;	/* 72 dot-stuffed copy, 0 unless STUFFED */
};
static_assert(sizeof(struct dd_rec_hdr) == 80, "dd_rec_hdr layout");
static_assert(offsetof(struct dd_rec_hdr, salt) == 16, "crc coverage");
static_assert(offsetof(struct dd_rec_hdr, arrival) == 32, "crc split");

/* Journal file header, at offset 0 of seg-%08u.jnl. */
struct dd_jnl_hdr {
	uint32_t magic;		/*  0 DD_JNL_MAGIC */
	uint16_t version;	/*  4 DD_SPOOL_VERSION */
	uint16_t reserved;	/*  6 0 */
	uint32_t seg;		/*  8 segment number */
	uint32_t crc;		/* 12 crc32 of bytes 0..11 */
};
static_assert(sizeof(struct dd_jnl_hdr) == 16, "dd_jnl_hdr layout");

/* Journal record: fixed size, appended, record k at 16 + 32 * k. */
struct dd_jrec {
	uint32_t magic;		/*  0 DD_JREC_MAGIC */
	uint8_t type;		/*  4 DD_J_* */
	uint8_t reserved;	/*  5 0 */
	uint16_t attempts;	/*  6 rcpt attempts */
	uint64_t qid;		/*  8 message */
	int64_t next_try;	/* 16 for DD_J_DEFER */
	uint32_t rcpt;		/* 24 recipient index; 0 for HOLD/RELEASE */
	uint32_t crc;		/* 28 crc32 of bytes 0..27 */
};
static_assert(sizeof(struct dd_jrec) == 32, "dd_jrec layout");

#define DD_REC_ALIGN	8
#define DD_REC_MAX	0xfffffff8U	/* len is a u32 */
#define DD_NRCPT_MAX	(1U << 20)
#define DD_ENVID_MAX	100	/* RFC 3461 4.4 */
#define DD_ORCPT_MAX	500	/* RFC 3461 4.2 */

#define DD_QID_MAKE(seg, idx)	(((uint64_t)(seg) << 32) | (uint32_t)(idx))
#define DD_QID_SEG(qid)		((uint32_t)((qid) >> 32))
#define DD_QID_IDX(qid)		((uint32_t)(qid))

/*
 * The spool's index entry: dd_msg with the spool's links.  One malloc
 * holds the wrapper, the rcpt array and every string.
 */
struct dd_smsg {
	struct dd_msg m;
	struct dd_smsg *prev, *next;	/* live list (committer thread) */
	struct dd_smsg *fnext;		/* free list (pending reached 0) */
};

/* A submission waiting for the committer. */
struct dd_sub_item {
	struct dd_sub_item *next;
	unsigned char *buf;		/* whole record, salt/qid/crc unset */
	uint32_t len;
	uint32_t tail_crc;		/* crc32 of buf[32..len) */
	uint64_t raw_rel, stuffed_rel;	/* body offsets in the record */
	struct dd_smsg *sm;		/* preallocated index entry */
	void (*done)(void *arg, struct dd_msg *msg, int err);
	void *arg;
};

/* dd_spool_rec.c */
static inline uint64_t dd_align8(uint64_t n)
{
	return (n + DD_REC_ALIGN - 1) & ~(uint64_t)(DD_REC_ALIGN - 1);
}

uint32_t dd_crc(uint32_t crc, const void *p, uint64_t len);
void dd_seg_hdr_encode(void *out, uint32_t seg, uint64_t salt);
int dd_seg_hdr_decode(const void *in, uint32_t *seg, uint64_t *salt);
void dd_jnl_hdr_encode(void *out, uint32_t seg);
int dd_jnl_hdr_decode(const void *in, uint32_t *seg);
void dd_jrec_encode(void *out, unsigned int type, uint64_t qid,
		    uint32_t rcpt, uint16_t attempts, int64_t next_try);
int dd_jrec_decode(const void *in, struct dd_jrec *j);

/* Validate sub and build the record and index entry; 0 or -errno. */
int dd_rec_build(const struct dd_submit *sub, struct dd_sub_item *it);
/* Fill in salt and qid and the final crc of a built record. */
void dd_rec_seal(struct dd_sub_item *it, uint64_t salt, uint64_t qid);

/* Why a record at some offset did not validate. */
enum dd_rec_err {
	DD_REC_OK = 0,
	DD_REC_SHORT,		/* header or record past end of file */
	DD_REC_BADMAGIC,
	DD_REC_BADVERSION,
	DD_REC_BADHDR,		/* lengths, flags, salt, qid */
	DD_REC_BADCRC,
	DD_REC_BADDATA,		/* crc good but contents invalid */
};
const char *dd_rec_strerr(enum dd_rec_err e);
/*
 * Validate the record at p (avail bytes to end of file) of segment seg
 * with salt; on DD_REC_OK *h is its decoded header.
 */
enum dd_rec_err dd_rec_check(const unsigned char *p, uint64_t avail,
			     uint32_t seg, uint64_t salt, struct dd_rec_hdr *h);
/*
 * Build the index entry of a checked record at file offset off; NULL on
 * ENOMEM.
 */
struct dd_smsg *dd_rec_load(const unsigned char *p, const struct dd_rec_hdr *h,
			    uint32_t seg, uint64_t off);

#endif /* DD_SPOOL_INT_H */
