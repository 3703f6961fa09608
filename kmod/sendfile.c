// SPDX-License-Identifier: GPL-2.0
/*
 * EVQ_IOC_SENDFILE: send part of a file to a TCP socket straight from the
 * page cache, never waiting for the disk or for socket space.
 *
 * sendfile(2) reads through a synchronous kiocb and sleeps on every
 * page-cache miss, which stalls every other connection of a one-thread
 * server.  Here a miss stops the send and says so; with EVQ_SF_NOTIFY the
 * missing window is read in and a PAGES_READY entry says when; with
 * EVQ_SF_ASYNC the queue finishes the whole range itself (op.c).
 */

#include <linux/file.h>
#include <linux/net.h>
#include <linux/uaccess.h>
#include <linux/shmem_fs.h>
#include <net/sock.h>
#include "queue.h"
#include "evq_trace.h"

/* Pages sent per socket call: 64 KiB, a TSO segment's worth. */
#define EVQ_SF_BATCH	16

/*
 * Passing a PG_readahead folio means the reader is catching up with the
 * last readahead: start the next one, as filemap_read() would, so a
 * stream of sends keeps the disk ahead of the socket.
 */
static void evq_sf_readahead(struct file *in, struct folio *folio, loff_t end)
{
	pgoff_t last = (end - 1) >> PAGE_SHIFT;
	DEFINE_READAHEAD(ractl, in, &in->f_ra, in->f_mapping, folio->index);

	if (last < folio->index)
		return;
	page_cache_async_ra(&ractl, folio, last - folio->index + 1);
}

/*
 * Are the bytes [@pos, @lim) of @folio valid?  A folio at the end of a
 * file on a file system with blocks smaller than a page is often only
 * partly up to date: its blocks past the end were never read.  Asking
 * which blocks are valid needs the folio lock, which we only try for:
 * a locked folio is being read or written, so it counts as not resident.
 */
static bool evq_sf_folio_ready(struct address_space *mapping,
			       struct folio *folio, loff_t pos, loff_t lim)
{
	size_t from = pos - folio_pos(folio);
	size_t count = min_t(loff_t, lim - pos, folio_size(folio) - from);
	bool ok;

	if (folio_test_uptodate(folio))
		return true;
	if (!mapping->a_ops->is_partially_uptodate || !folio_trylock(folio))
		return false;
	/* Truncated or reclaimed while we looked: treat as a miss. */
	ok = folio->mapping == mapping &&
	     mapping->a_ops->is_partially_uptodate(folio, from, count);
	folio_unlock(folio);
	return ok;
}

/**
 * evq_sf_push() - send the resident part of a range to a socket
 * @sock: a TCP socket
 * @in: the file
 * @pos: in: first byte to send; out: advanced past what was sent
 * @end: end of the range
 * @flags: EVQ_SF_* flags of the request (EVQ_SF_MORE is used)
 * @err: set to -errno for EVQ_SF_STOP_ERROR
 *
 * Looks folios up without locking them and sends those that are up to
 * date; never starts a read, never waits on a folio or the socket.
 *
 * Return: EVQ_SF_STOP_* reason.  DONE when @end or the end of the file is
 * reached.
 */
int evq_sf_push(struct socket *sock, struct file *in, loff_t *pos, loff_t end,
		u32 flags, int *err)
{
	struct address_space *mapping = in->f_mapping;
	struct inode *inode = mapping->host;
	struct folio *folios[EVQ_SF_BATCH];
	struct bio_vec bv[EVQ_SF_BATCH];

	while (*pos < end) {
		loff_t isize = i_size_read(inode);
		loff_t lim = min(end, isize);
		loff_t p = *pos;
		unsigned int n = 0, nf = 0, i;
		size_t len = 0;
		int mflags, ret;

		if (p >= isize)
			return EVQ_SF_STOP_DONE;
		while (n < EVQ_SF_BATCH && p < lim) {
			struct folio *folio;
			loff_t fend;

			folio = evq_filemap_lookup(mapping, p >> PAGE_SHIFT);
			if (!folio)
				break;
			if (!evq_sf_folio_ready(mapping, folio, p, lim)) {
				folio_put(folio);
				break;
			}
			if (folio_test_readahead(folio))
				evq_sf_readahead(in, folio, end);
			folios[nf++] = folio;
			fend = min(folio_pos(folio) + (loff_t)folio_size(folio),
				   lim);
			/* One bvec per page: ->sendpage takes single pages. */
			while (n < EVQ_SF_BATCH && p < fend) {
				size_t off = p - folio_pos(folio);
				size_t plen = min_t(loff_t, PAGE_SIZE -
						    offset_in_page(off),
						    fend - p);

				bvec_set_page(&bv[n++],
					      folio_page(folio, off >> PAGE_SHIFT),
					      plen, offset_in_page(off));
				p += plen;
				len += plen;
			}
		}
		if (!n)
			return EVQ_SF_STOP_NOT_RESIDENT;

		/*
		 * A truncate may have shrunk the file since we looked at
		 * i_size: never send bytes past the new end, as
		 * filemap_read() does not copy them either.
		 */
		isize = i_size_read(inode);
		if (*pos + (loff_t)len > isize) {
			size_t keep = isize > *pos ? isize - *pos : 0;

			len = 0;
			for (i = 0; i < n && len < keep; i++) {
				bv[i].bv_len = min_t(size_t, bv[i].bv_len,
						     keep - len);
				len += bv[i].bv_len;
			}
			n = i;
		}

		ret = 0;
		if (len) {
			mflags = MSG_DONTWAIT | MSG_NOSIGNAL;
			/* Only the caller knows more follows the range. */
			if ((flags & EVQ_SF_MORE) && *pos + (loff_t)len >= end)
				mflags |= MSG_MORE;
			ret = evq_sock_send_pages(sock, bv, n, len, mflags);
		}
		for (i = 0; i < nf; i++)
			folio_put(folios[i]);
		if (!len)
			return EVQ_SF_STOP_DONE;
		if (ret == -EAGAIN)
			return EVQ_SF_STOP_SOCK_FULL;
		if (ret < 0) {
			*err = ret;
			return EVQ_SF_STOP_ERROR;
		}
		*pos += ret;
		if (ret < len)
			return EVQ_SF_STOP_SOCK_FULL;
		cond_resched();
	}
	return EVQ_SF_STOP_DONE;
}

/* Only TCP, v4 or v6: the zero-copy page path is TCP's. */
static int evq_sf_check_sock(struct file *out, struct socket **sockp)
{
	struct socket *sock = sock_from_file(out);
	struct sock *sk;

	if (!sock)
		return -ENOTSOCK;
	sk = sock->sk;
	if (!sk || sk->sk_type != SOCK_STREAM ||
	    sk->sk_protocol != IPPROTO_TCP ||
	    (sk->sk_family != AF_INET && sk->sk_family != AF_INET6))
		return -EOPNOTSUPP;
	*sockp = sock;
	return 0;
}

/*
 * A regular file whose reads fill the page cache: a file system's
 * ->read_folio() or tmpfs.  Others (DAX, procfs, ...) would read without
 * ever making the pages resident, and a page-in would never end.
 */
static int evq_sf_check_file(struct file *in)
{
	struct address_space *mapping = in->f_mapping;

	if (!(in->f_mode & FMODE_READ))
		return -EBADF;
	if (!S_ISREG(file_inode(in)->i_mode) || !in->f_op->read_iter ||
	    !mapping || !mapping->a_ops ||
	    (!mapping->a_ops->read_folio && !shmem_mapping(mapping)))
		return -EINVAL;
	return 0;
}

static int evq_sf_check_args(const struct evq_sendfile *sf)
{
	if (sf->flags & ~EVQ_SF_FLAGS || sf->resv0 || sf->resv)
		return -EINVAL;
	if ((sf->flags & EVQ_SF_NOTIFY) && (sf->flags & EVQ_SF_ASYNC))
		return -EINVAL;
	if (sf->count > EVQ_SENDFILE_MAX || sf->offset > LLONG_MAX ||
	    sf->count > LLONG_MAX - sf->offset)
		return -EINVAL;
	return 0;
}

/*
 * The synchronous form.  With EVQ_SF_NOTIFY the caller holds an operation
 * reservation: a miss turns it into a page-in, anything else gives it back.
 */
static long evq_sf_sync(struct evq_queue *q, struct evq_sendfile *sf,
			struct socket *sock, struct file *in)
{
	loff_t pos = sf->offset;
	loff_t end = pos + sf->count;
	struct evq_op *op;
	int err = 0;
	u32 stop;

	stop = evq_sf_push(sock, in, &pos, end, sf->flags, &err);
	if (sf->flags & EVQ_SF_NOTIFY) {
		op = stop == EVQ_SF_STOP_NOT_RESIDENT ?
		     evq_op_alloc(q, sf, in, NULL) : NULL;
		if (IS_ERR_OR_NULL(op))
			evq_op_unreserve(q);
		if (IS_ERR(op)) {
			/* No page-in, no event: what stopped the send. */
			stop = EVQ_SF_STOP_ERROR;
			err = PTR_ERR(op);
		} else if (op) {
			evq_op_window(op, pos, end);
			evq_op_start(op);
		}
	}
	/* Counted by evq_op_window() when a page-in starts. */
	if (stop == EVQ_SF_STOP_NOT_RESIDENT && !(sf->flags & EVQ_SF_NOTIFY)) {
		atomic64_inc(&q->stats.sf_not_resident);
		trace_evq_sf_not_resident(q->id, sf->user_data, pos, 0, false);
	}
	sf->sent = pos - sf->offset;
	sf->stop = stop;
	sf->error = stop == EVQ_SF_STOP_ERROR ? err : 0;
	atomic64_add(sf->sent, &q->stats.sf_bytes);
	trace_evq_sf_done(q->id, sf->user_data, sf->sent, stop, sf->error,
			  false);
	/* Like write(2): an error with nothing sent is the call's error. */
	if (stop == EVQ_SF_STOP_ERROR && !sf->sent)
		return err;
	return sf->sent;
}

/**
 * evq_sendfile_ioctl() - EVQ_IOC_SENDFILE
 * @q: the queue
 * @arg: the user's struct evq_sendfile
 *
 * Return: bytes sent (synchronous), 0 (asynchronous, started) or -errno
 * with nothing done.
 */
long evq_sendfile_ioctl(struct evq_queue *q, struct evq_sendfile __user *arg)
{
	struct evq_sendfile sf;
	struct socket *sock;
	struct file *in, *out;
	struct evq_op *op;
	long ret;

	if (copy_from_user(&sf, arg, sizeof(sf)))
		return -EFAULT;
	ret = evq_sf_check_args(&sf);
	if (ret)
		return ret;

	out = fget(sf.out_fd);
	if (!out)
		return -EBADF;
	ret = evq_sf_check_sock(out, &sock);
	if (ret)
		goto out_put;
	in = fget(sf.in_fd);
	ret = -EBADF;
	if (!in)
		goto out_put;
	ret = evq_sf_check_file(in);
	if (ret)
		goto in_put;

	/* Reserve before sending: a refusal must leave nothing done. */
	if (sf.flags & (EVQ_SF_NOTIFY | EVQ_SF_ASYNC)) {
		ret = evq_op_reserve(q);
		if (ret)
			goto in_put;
	}

	if (sf.flags & EVQ_SF_ASYNC) {
		op = evq_op_alloc(q, &sf, in, out);
		if (IS_ERR(op)) {
			evq_op_unreserve(q);
			ret = PTR_ERR(op);
			goto in_put;
		}
		op->sock = sock;
		atomic64_inc(&q->stats.sf_calls);
		evq_op_start(op);
		ret = 0;
	} else {
		atomic64_inc(&q->stats.sf_calls);
		ret = evq_sf_sync(q, &sf, sock, in);
		/* The bytes are gone either way; say so if we can. */
		if (copy_to_user(&arg->stop, &sf.stop,
				 offsetofend(struct evq_sendfile, sent) -
				 offsetof(struct evq_sendfile, stop)))
			ret = -EFAULT;
	}
in_put:
	fput(in);
out_put:
	fput(out);
	return ret;
}
