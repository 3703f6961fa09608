// SPDX-License-Identifier: GPL-2.0
/*
 * Spool recovery (dd_spool.c, dd_spool_open()) over a segment and its
 * journal as a crash, a full disk or a hostile hand may leave them:
 * records torn or out of order, resynchronisation after garbage, journal
 * records for unknown messages and recipients, torn journal ends.
 *
 * Input: one byte of options, two bytes (little-endian) of segment
 * length, the segment's records, then the journal's records.  Unless
 * option bit 0 is set, the harness writes the segment and journal
 * headers and the salt, segment numbers and crcs recovery expects, so
 * mutations reach what lies behind the checksums.
 *
 * Checked: every message recovery hands on has recipients, a pending
 * count equal to its recipients not final, states that exist, and held
 * only by a journal record; opening again finds the same messages.
 */
#include "fuzz.h"

#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "dd_log.h"
#include "dd_spool_int.h"

#define SALT	0x5eed5a17ab1e0002ULL

static char dir[64];

struct found {
	unsigned int n;
	uint64_t ids;		/* a sum of ids and states, to compare runs */
};

static void found(void *arg, struct dd_msg *m)
{
	struct found *f = arg;
	unsigned int pending = 0, i;

	FUZZ_CHECK(m->nrcpt >= 1 && m->rcpt, "message without recipients");
	for (i = 0; i < m->nrcpt; i++) {
		FUZZ_CHECK(m->rcpt[i].state <= DD_RCPT_FAILED &&
			   m->rcpt[i].state != DD_RCPT_ACTIVE,
			   "recipient %u state %u", i, m->rcpt[i].state);
		pending += !dd_rcpt_final(m->rcpt[i].state);
		f->ids += m->rcpt[i].state * 7 + m->rcpt[i].attempts;
	}
	FUZZ_CHECK(pending && pending == atomic_load(&m->pending),
		   "pending %u, counted %u", atomic_load(&m->pending), pending);
	FUZZ_CHECK(DD_QID_SEG(m->id) == 1, "message of segment %u",
		   DD_QID_SEG(m->id));
	f->n++;
	f->ids += m->id + (m->flags & DD_MSG_HELD);
}

static void put(const char *name, const void *p, size_t n)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
		abort();
	close(fd);
}

static void clean(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		abort();
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

/* Salt, segment and crc of every record that has a plausible length. */
static void fix_records(unsigned char *p, size_t size)
{
	size_t off = sizeof(struct dd_seg_hdr);

	dd_seg_hdr_encode(p, 1, SALT);
	while (off + sizeof(struct dd_rec_hdr) <= size) {
		uint64_t salt = htole64(SALT);
		uint32_t seg = htole32(1), len, crc;

		memcpy(&len, p + off + offsetof(struct dd_rec_hdr, len), 4);
		len = le32toh(len);
		if (len < sizeof(struct dd_rec_hdr) || len % 8 || len > size - off) {
			off += 8;
			continue;
		}
		memcpy(p + off + offsetof(struct dd_rec_hdr, salt), &salt, 8);
		memcpy(p + off + offsetof(struct dd_rec_hdr, qid) + 4, &seg, 4);
		crc = htole32(dd_crc(0, p + off + offsetof(struct dd_rec_hdr, salt),
				     len - offsetof(struct dd_rec_hdr, salt)));
		memcpy(p + off + offsetof(struct dd_rec_hdr, crc), &crc, 4);
		off += len;
	}
}

static void fix_journal(unsigned char *p, size_t size)
{
	size_t off;

	dd_jnl_hdr_encode(p, 1);
	for (off = sizeof(struct dd_jnl_hdr); off + sizeof(struct dd_jrec) <= size;
	     off += sizeof(struct dd_jrec)) {
		uint32_t seg = htole32(1), crc;

		memcpy(p + off + offsetof(struct dd_jrec, qid) + 4, &seg, 4);
		crc = htole32(dd_crc(0, p + off, offsetof(struct dd_jrec, crc)));
		memcpy(p + off + offsetof(struct dd_jrec, crc), &crc, 4);
	}
}

/* At exit: the scratch directory goes (libFuzzer exits through exit()). */
static void remove_dir(void)
{
	clean();
	rmdir(dir);
}

static struct found open_spool(void)
{
	struct dd_spool_conf conf = {
		.dir = dir,
		.segment_size = 1 << 20,
		.commit_max = 16,
		.fsync = false,
	};
	struct found f = { 0, 0 };
	struct dd_spool *sp;
	int err = dd_spool_open(&sp, &conf, found, &f);

	FUZZ_CHECK(!err, "open failed: %d", err);
	dd_spool_close(sp);
	dd_spool_free_msgs(sp);
	return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int opts = (unsigned int)fuzz_take(&data, &size, 1);
	size_t dlen = (size_t)fuzz_take(&data, &size, 2);
	size_t seg_len, jnl_len;
	unsigned char *seg, *jnl;
	struct found a, b;

	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/fuzz_spool_recover.%d", getpid());
		if (mkdir(dir, 0700) && errno != EEXIST)
			abort();
		atexit(remove_dir);
		dd_log_open("/dev/null", "debug");	/* every message formatted */
	}
	dlen = (dlen >> 8 | (dlen & 0xff) << 8) % (size + 1);	/* little-endian */
	/* Room for the headers the harness writes in front. */
	seg_len = sizeof(struct dd_seg_hdr) + dlen;
	jnl_len = sizeof(struct dd_jnl_hdr) + (size - dlen);
	seg = calloc(1, seg_len);
	jnl = calloc(1, jnl_len);
	if (!seg || !jnl)
		abort();
	if (opts & 1) {
		/* As given, headers included. */
		memcpy(seg, data, dlen);
		memcpy(jnl, data + dlen, size - dlen);
		seg_len = dlen;
		jnl_len = size - dlen;
	} else {
		memcpy(seg + sizeof(struct dd_seg_hdr), data, dlen);
		memcpy(jnl + sizeof(struct dd_jnl_hdr), data + dlen, size - dlen);
		fix_records(seg, seg_len);
		fix_journal(jnl, jnl_len);
	}
	clean();
	put("seg-00000001.dat", seg, seg_len);
	if (!(opts & 2))
		put("seg-00000001.jnl", jnl, jnl_len);
	free(seg);
	free(jnl);
	a = open_spool();
	/* What recovery truncated or rewrote, it finds the same way again. */
	b = open_spool();
	FUZZ_CHECK(a.n == b.n && a.ids == b.ids,
		   "%u messages, then %u on the second open", a.n, b.n);
	return 0;
}
