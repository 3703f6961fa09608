// SPDX-License-Identifier: GPL-2.0
/*
 * Control commands as text: see dd_ctl_parse.h.
 */
#define _GNU_SOURCE
#include "dd_ctl_parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A queue id as XQUEUE prints it: 16 hex digits; *qid untouched if not. */
static bool parse_qid(const char *s, uint64_t *qid)
{
	unsigned long long v;
	char *end;

	if (strlen(s) != 16)
		return false;
	errno = 0;
	v = strtoull(s, &end, 16);
	if (errno || *end)
		return false;
	*qid = v;
	return true;
}

int dd_ctl_parse(const char *line, struct dd_ctl_cmd *cmd, const char **text)
{
	static const struct { const char *verb; uint8_t op; int args; } cmds[] = {
		{ "XQUEUE", DD_CTL_QUEUE, 0 },
		{ "XFLUSH", DD_CTL_FLUSH, 1 },	/* optional */
		{ "XHOLD", DD_CTL_HOLD, 2 },	/* required */
		{ "XRELEASE", DD_CTL_RELEASE, 2 },
		{ "XSTATS", DD_CTL_STATS, 0 },
	};
	const char *sp = strchr(line, ' ');
	size_t vlen = sp ? (size_t)(sp - line) : strlen(line);
	const char *arg = sp ? sp + 1 : "";
	unsigned int i;
	char *p;

	memset(cmd, 0, sizeof(*cmd));
	while (*arg == ' ')
		arg++;
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strlen(cmds[i].verb) == vlen &&
		    !strncasecmp(line, cmds[i].verb, vlen))
			break;
	if (i == sizeof(cmds) / sizeof(cmds[0])) {
		*text = "5.5.1 Unknown control command";
		return 500;
	}
	/* "@" alone is no domain: XHOLD @ must not hold everything. */
	if ((cmds[i].args == 0 && *arg) ||
	    (cmds[i].args == 2 && (!*arg || !strcmp(arg, "@"))) ||
	    strlen(arg) > DD_DOMAIN_MAX || strchr(arg, ' ')) {
		*text = "5.5.4 Syntax error in arguments";
		return 501;
	}
	cmd->op = cmds[i].op;
	if ((cmd->op == DD_CTL_HOLD || cmd->op == DD_CTL_RELEASE) &&
	    parse_qid(arg, &cmd->qid)) {
		cmd->by_qid = true;
		return 0;
	}
	snprintf(cmd->arg, sizeof(cmd->arg), "%s", *arg == '@' ? arg + 1 : arg);
	for (p = cmd->arg; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p += 'a' - 'A';
	return 0;
}
