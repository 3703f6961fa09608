// SPDX-License-Identifier: GPL-2.0
/*
 * The control socket's command lines (dd_ctl_parse.c): verbs in any
 * case, arguments, queue ids, and the replies to bad lines.
 */
#include "dd_ctl_parse.h"

#include "kselftest_harness.h"

TEST(commands)
{
	struct dd_ctl_cmd c;
	const char *text = NULL;

	ASSERT_EQ(0, dd_ctl_parse("XQUEUE", &c, &text));
	EXPECT_EQ(DD_CTL_QUEUE, c.op);
	EXPECT_STREQ("", c.arg);
	ASSERT_EQ(0, dd_ctl_parse("xflush  @Example.COM", &c, &text));
	EXPECT_EQ(DD_CTL_FLUSH, c.op);
	EXPECT_STREQ("example.com", c.arg);
	ASSERT_EQ(0, dd_ctl_parse("XFLUSH", &c, &text));
	EXPECT_STREQ("", c.arg);
	ASSERT_EQ(0, dd_ctl_parse("XHOLD 00000007000000a1", &c, &text));
	EXPECT_EQ(DD_CTL_HOLD, c.op);
	EXPECT_TRUE(c.by_qid);
	EXPECT_EQ(0x7000000a1ULL, c.qid);
	ASSERT_EQ(0, dd_ctl_parse("XRELEASE 7000000a1", &c, &text));
	EXPECT_FALSE(c.by_qid);	/* not 16 digits: a domain */
	EXPECT_STREQ("7000000a1", c.arg);
}

/*
 * 16 characters that are not all hex digits (found by fuzz_ctl): a
 * domain, and no queue id half-parsed from its leading digits left in
 * the command.
 */
TEST(qid_half_hex_is_a_domain)
{
	struct dd_ctl_cmd c;
	const char *text = NULL;

	ASSERT_EQ(0, dd_ctl_parse("XRELEASE 00000007000p00A1", &c, &text));
	EXPECT_FALSE(c.by_qid);
	EXPECT_EQ(0, c.qid);
	EXPECT_STREQ("00000007000p00a1", c.arg);
}

TEST(refused)
{
	struct dd_ctl_cmd c;
	const char *text = NULL;

	EXPECT_EQ(500, dd_ctl_parse("XNOPE", &c, &text));
	EXPECT_STREQ("5.5.1 Unknown control command", text);
	EXPECT_EQ(500, dd_ctl_parse("", &c, &text));
	EXPECT_EQ(501, dd_ctl_parse("XQUEUE x", &c, &text));
	EXPECT_EQ(501, dd_ctl_parse("XHOLD", &c, &text));
	EXPECT_EQ(501, dd_ctl_parse("XFLUSH a b", &c, &text));
	EXPECT_STREQ("5.5.4 Syntax error in arguments", text);
}

/*
 * "XHOLD @" (found by fuzz_ctl): the argument XHOLD and XRELEASE require
 * was "@", which left the domain empty, and an empty domain means every
 * message: a hold of the whole queue by a typo.
 */
TEST(hold_needs_a_domain)
{
	struct dd_ctl_cmd c;
	const char *text = NULL;

	EXPECT_EQ(501, dd_ctl_parse("XHOLD @", &c, &text));
	EXPECT_EQ(501, dd_ctl_parse("XRELEASE @", &c, &text));
	EXPECT_EQ(0, dd_ctl_parse("XFLUSH @", &c, &text));
	EXPECT_STREQ("", c.arg);
}

TEST_HARNESS_MAIN
