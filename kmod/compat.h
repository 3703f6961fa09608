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
#include <linux/fs.h>
#include <linux/net.h>
#include <linux/socket.h>
#include <linux/pagemap.h>
#include <linux/uio.h>
#include <linux/bvec.h>
#include <net/af_unix.h>

#ifndef EVQ_HAVE_VM_FLAGS_SET
/* 6.3 made vm_flags read-only and added setters. */
static inline void vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->vm_flags |= flags;
}
#endif

/*
 * A cached folio, referenced, or NULL.  On a miss 6.1 returns NULL and
 * 6.3 on ERR_PTR(-ENOENT); both mean "not in the page cache" here.
 */
static inline struct folio *evq_filemap_lookup(struct address_space *mapping,
					       pgoff_t index)
{
	struct folio *folio = __filemap_get_folio(mapping, index, 0, 0);

	return IS_ERR(folio) ? NULL : folio;
}

/*
 * Can ->read_iter() arm a folio-unlock callback (IOCB_WAITQ)?  A file
 * mode bit on 6.1, a file_operations flag from 6.11.
 */
static inline bool evq_file_buf_rasync(struct file *file)
{
#ifdef EVQ_HAVE_FOP_BUFFER_RASYNC
	return file->f_op->fop_flags & FOP_BUFFER_RASYNC;
#else
	return file->f_mode & FMODE_BUF_RASYNC;
#endif
}

/**
 * evq_sock_send_pages() - send page-cache pages to a socket without a copy
 * @sock: the socket
 * @bv: the pages, each within one page
 * @n: entries in @bv
 * @len: their total length
 * @flags: MSG_* flags for the whole batch (MSG_MORE applies to its end)
 *
 * 6.1 has ->sendpage, one page a call; 6.5 removed it in favour of
 * sendmsg with MSG_SPLICE_PAGES over a bvec iterator, which takes the
 * whole batch at once.  Either way the socket holds its own reference to
 * each page it queues.
 *
 * Return: bytes queued (short when the socket filled up) or -errno.
 */
static inline int evq_sock_send_pages(struct socket *sock, struct bio_vec *bv,
				      unsigned int n, size_t len, int flags)
{
#ifdef EVQ_HAVE_KERNEL_SENDPAGE
	unsigned int i;
	int done = 0;
	int ret;

	for (i = 0; i < n; i++) {
		/* Inside the batch: let TCP fill segments before it pushes. */
		int f = i + 1 < n ? (flags & ~MSG_MORE) | MSG_SENDPAGE_NOTLAST :
				    flags;

		ret = kernel_sendpage(sock, bv[i].bv_page, bv[i].bv_offset,
				      bv[i].bv_len, f);
		if (ret <= 0)
			return done ? done : ret;
		done += ret;
		if (ret < bv[i].bv_len)
			break;
	}
	return done;
#else
	struct msghdr msg = { .msg_flags = flags | MSG_SPLICE_PAGES };

	iov_iter_bvec(&msg.msg_iter, ITER_SOURCE, bv, n, len);
	return sock_sendmsg(sock, &msg);
#endif
}

/* @file's UNIX socket, or NULL for any other file.  @file is held. */
static inline struct unix_sock *evq_unix_sock(struct file *file)
{
	struct socket *sock = sock_from_file(file);

	if (!sock || !sock->sk || sock->sk->sk_family != AF_UNIX)
		return NULL;
	return unix_sk(sock->sk);
}

/*
 * Is the socket itself in flight, an SCM_RIGHTS message holding it?  A
 * hint, read without the kernel collector's lock.  Its rewrite in 6.10,
 * also in the 6.1 stable kernels Debian ships, keeps a vertex for each
 * socket in flight; before it, a count.
 */
static inline bool evq_unix_in_flight(struct unix_sock *u)
{
#ifdef EVQ_HAVE_UNIX_VERTEX
	return READ_ONCE(u->vertex);
#else
	return atomic_long_read(&u->inflight);
#endif
}

#endif /* EVQ_COMPAT_H */
