// SPDX-License-Identifier: GPL-2.0
/*
 * The wire-format parsers (dd_wire.c) that see what clients and
 * submitters send: RFC 5321 paths and ESMTP parameters, dot-stuffing,
 * CRLF normalisation, RFC 5322 header blocks and address lists (for
 * sendmail -t), UTF-8.
 *
 * Input: one byte choosing the parser and its flags, then its input.
 *
 * Checked, besides memory safety: a parsed path is a valid address that
 * parses again to itself; parameters point inside the line; unstuffing
 * what dd_wire_stuff() wrote gives the input back, and the count of dots
 * it added is dd_wire_stuff_count(); CRLF normalisation fed in two
 * pieces gives what it gives in one, with no bare LF left; header fields
 * lie inside the header block; every "good" address of a list is valid.
 */
#include "fuzz.h"

#include "dd_wire.h"

static void fuzz_path(const char *s, size_t len, unsigned int flags)
{
	char out[DD_ADDR_MAX], again[DD_ADDR_MAX + 2], back[DD_ADDR_MAX];
	const char *rest = NULL;
	struct dd_wire_param p[8];
	int n, i;

	if (dd_wire_path(s, len, flags, out, &rest))
		return;
	FUZZ_CHECK(strlen(out) < DD_ADDR_MAX, "path of %zu", strlen(out));
	FUZZ_CHECK(rest > s && rest <= s + len, "rest outside the input");
	if (out[0])
		FUZZ_CHECK(!dd_wire_addr_check(out, strlen(out), flags),
			   "path <%s> is not an address", out);
	snprintf(again, sizeof(again), "<%s>", out);
	FUZZ_CHECK(!dd_wire_path(again, strlen(again), flags, back, NULL) &&
		   !strcmp(out, back), "<%s> does not parse to itself", out);
	n = dd_wire_params(rest, len - (size_t)(rest - s), p, 8);
	for (i = 0; i < n; i++) {
		FUZZ_CHECK(p[i].kw >= rest && p[i].kw + p[i].kwlen <= s + len &&
			   p[i].kwlen, "keyword outside the line");
		if (p[i].val)
			FUZZ_CHECK(p[i].val >= rest &&
				   p[i].val + p[i].vallen <= s + len,
				   "value outside the line");
	}
}

static void fuzz_stuffing(const char *s, size_t len)
{
	struct dd_buf st = DD_BUF_INIT, un = DD_BUF_INIT;

	if (dd_wire_stuff(&st, s, len) || dd_wire_unstuff(&un, st.p, st.len))
		abort();
	FUZZ_CHECK(st.len == len + dd_wire_stuff_count(s, len),
		   "stuffed %zu from %zu", st.len, len);
	FUZZ_CHECK(un.len == len && (!len || !memcmp(un.p, s, len)),
		   "unstuffing the stuffed gives another body");
	dd_buf_free(&st);
	dd_buf_free(&un);
}

static void fuzz_crlf(const char *s, size_t len, size_t cut)
{
	struct dd_buf one = DD_BUF_INIT, two = DD_BUF_INIT;
	size_t i;

	cut = len ? cut % (len + 1) : 0;
	if (dd_wire_crlf(&one, s, len) || dd_wire_crlf(&two, s, cut) ||
	    dd_wire_crlf(&two, s + cut, len - cut))
		abort();
	FUZZ_CHECK(one.len == two.len && (!one.len || !memcmp(one.p, two.p, one.len)),
		   "pieces differ from the whole");
	for (i = 0; i < one.len; i++)
		FUZZ_CHECK(one.p[i] != '\n' || (i && one.p[i - 1] == '\r'),
			   "bare LF at %zu", i);
	if (dd_wire_end_crlf(&one))
		abort();
	FUZZ_CHECK(!one.len || (one.len >= 2 && !memcmp(one.p + one.len - 2, "\r\n", 2)),
		   "no CRLF at the end");
	dd_buf_free(&one);
	dd_buf_free(&two);
}

static void check_good(const struct dd_strv *good, unsigned int flags)
{
	size_t i;

	for (i = 0; i < good->n; i++)
		FUZZ_CHECK(!dd_wire_addr_check(good->v[i], strlen(good->v[i]), flags),
			   "good address '%s' is not valid", good->v[i]);
}

static void fuzz_headers(const char *s, size_t len, unsigned int flags)
{
	static const char *const drop[] = { "Bcc", "Resent-Bcc", NULL };
	struct dd_strv good = DD_STRV_INIT, bad = DD_STRV_INIT;
	struct dd_buf out = DD_BUF_INIT, v = DD_BUF_INIT;
	struct dd_wire_field f;
	size_t body = 0, pos = 0, hlen = dd_wire_header_end(s, len, &body);

	FUZZ_CHECK(hlen <= body && body <= len, "header %zu body %zu of %zu",
		   hlen, body, len);
	while (dd_wire_header_next(s, hlen, &pos, &f) == 1) {
		FUZZ_CHECK(f.raw >= s && f.raw + f.rawlen <= s + hlen &&
			   f.name >= f.raw && f.name + f.namelen <= f.raw + f.rawlen &&
			   f.value >= f.raw && f.value + f.valuelen <= f.raw + f.rawlen,
			   "field outside its block");
		FUZZ_CHECK(pos <= hlen, "position past the block");
		dd_buf_clear(&v);
		if (dd_wire_unfold(&v, f.value, f.valuelen) ||
		    dd_wire_addr_list(f.value, f.valuelen, flags, &good, &bad))
			abort();
		FUZZ_CHECK(!memchr(v.p ? v.p : "", '\n', v.len), "LF left unfolded");
	}
	check_good(&good, flags);
	dd_strv_free(&good);
	dd_strv_free(&bad);
	if (dd_wire_header_rcpts(s, len, flags, &good, &bad) ||
	    dd_wire_header_remove(&out, s, len, drop))
		abort();
	check_good(&good, flags);
	FUZZ_CHECK(out.len <= len, "removing fields made it longer");
	dd_strv_free(&good);
	dd_strv_free(&bad);
	dd_buf_free(&out);
	dd_buf_free(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int sel = (unsigned int)fuzz_take(&data, &size, 1);
	unsigned int flags = (sel >> 3) & (DD_PATH_NULL | DD_PATH_NODOMAIN |
					   DD_PATH_UTF8);
	char *s = fuzz_str(data, size);

	switch (sel & 7) {
	case 0:
		fuzz_path(s, size, flags);
		break;
	case 1:
		fuzz_stuffing(s, size);
		break;
	case 2:
		fuzz_crlf(s, size, sel >> 3);
		break;
	case 3:
		fuzz_headers(s, size, flags & ~DD_PATH_NULL);
		break;
	case 4: {
		struct dd_strv good = DD_STRV_INIT, bad = DD_STRV_INIT;

		if (dd_wire_addr_list(s, size, flags & ~DD_PATH_NULL, &good, &bad))
			abort();
		check_good(&good, flags & ~DD_PATH_NULL);
		dd_strv_free(&good);
		dd_strv_free(&bad);
		break;
	}
	case 5:
		if (dd_wire_addr_check(s, size, flags) == 0 && size)
			FUZZ_CHECK(flags & DD_PATH_UTF8 ||
				   dd_wire_utf8_ok(s, size), "8-bit address");
		(void)dd_wire_domain_ok(s, size);
		break;
	default: {
		struct dd_wire_param p[8];

		(void)dd_wire_params(s, size, p, 8);
		break;
	}
	}
	free(s);
	return 0;
}
