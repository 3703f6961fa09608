/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What deliverd's line-based files (settings, routes_file,
 * tls_policy_file, shaping_file, dkim_keys) have in common: the read loop
 * with its error messages, the domain patterns ("example.com",
 * ".example.com" for its subdomains, "*") and the map that finds the best
 * pattern for a domain.
 */
#ifndef DD_LINES_H
#define DD_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What separates the fields of a line; a line of nothing else is blank. */
#define DD_LINES_WS	" \t\r\n"

/*
 * fn gets each line that is not blank once '#' to its end and the line
 * end ("\n" or "\r\n") are gone, numbered from 1.  It returns 0 to go on,
 * -ENOMEM, or another -errno (-EINVAL) with a message in msg.
 *
 * 0, or the first error with err set and the reading stopped:
 *   "PATH: strerror"        cannot open (-errno)
 *   "PATH:LINE: NUL byte in line"  (-EINVAL)
 *   "PATH:LINE: msg"        fn failed (its -errno)
 *   "PATH: out of memory"   fn returned -ENOMEM
 *   "PATH: read error"      (-EIO)
 */
typedef int (*dd_line_fn)(void *arg, char *line, unsigned int lineno,
			  char *msg, size_t msglen);
int dd_lines_read(const char *path, dd_line_fn fn, void *arg, char *err,
		  size_t errlen);

/*
 * Split line in place into exactly n fields (separated by DD_LINES_WS)
 * in f[0..n-1]; false if it has fewer or more.
 */
bool dd_lines_fields(char *line, char **f, unsigned int n);

/*
 * Check a domain pattern and lowercase it in place: a name, ".name" (its
 * subdomains) or "*"; a trailing dot is dropped.  Labels are letters,
 * digits, '-', '_' or UTF-8 octets (SMTPUTF8 domains, compared as given:
 * no IDNA), 255 octets at most.  False if malformed.
 */
bool dd_domain_pattern(char *d);

/*
 * Domain patterns to values: a name matches itself, ".name" every
 * subdomain of name (not name itself), "*" everything.  A lookup takes
 * the domain itself, else the longest ".suffix", else "*": one hash probe
 * per label, whatever the number of patterns.  Zero-initialised is an
 * empty map.
 */
struct dd_dmap_ent;

struct dd_dmap {
	struct dd_dmap_ent *v;		/* open addressing, FNV-1a */
	size_t cap;			/* a power of two, or 0 */
	size_t n;			/* entries in v, at most cap / 2 */
	void *star;			/* the value for "*", or NULL */
};

/*
 * A new zeroed value of size octets for key, which dd_domain_pattern()
 * has made (other keys are matched only by dd_dmap_get()): 0 with *value
 * set, -EEXIST with *value the key's existing value, or -ENOMEM.  Values
 * do not move until dd_dmap_free().
 */
int dd_dmap_add(struct dd_dmap *m, const char *key, size_t size,
		void **value);
/* The value for exactly key (octet for octet), or NULL. */
void *dd_dmap_get(const struct dd_dmap *m, const char *key);
/* The best value for domain (ASCII case and a trailing dot ignored). */
void *dd_dmap_lookup(const struct dd_dmap *m, const char *domain);
/* Keys, "*" included. */
size_t dd_dmap_count(const struct dd_dmap *m);
void dd_dmap_free(struct dd_dmap *m);

#endif /* DD_LINES_H */
