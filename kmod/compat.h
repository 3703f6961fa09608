/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Differences between the kernels evq builds against (Debian's 6.1 and
 * 6.12 LTS).  Kbuild greps the target tree and defines EVQ_HAVE_* for
 * what it finds; this header fills in what an older kernel lacks, so the
 * rest of the module is written against the newest interfaces.
 */
#ifndef EVQ_COMPAT_H
#define EVQ_COMPAT_H

/* Force-included first, so it also sets every file's log prefix. */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>

#ifndef EVQ_HAVE_VM_FLAGS_SET
/* 6.3 made vm_flags read-only and added setters. */
static inline void vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->vm_flags |= flags;
}
#endif

#endif /* EVQ_COMPAT_H */
