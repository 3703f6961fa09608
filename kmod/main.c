// SPDX-License-Identifier: GPL-2.0
/*
 * evq: an event queue with batched changes and a completion ring mapped
 * into userspace, behind the misc device /dev/evq.  One open is one queue.
 * Documentation/evq.rst is the reference for the ABI.
 */

#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/uaccess.h>
#include "queue.h"

#define CREATE_TRACE_POINTS
#include "evq_trace.h"

unsigned int evq_max_user_watches = 1U << 20;
module_param_named(max_user_watches, evq_max_user_watches, uint, 0644);
MODULE_PARM_DESC(max_user_watches, "Watches one user may hold over all its queues");

unsigned int evq_max_cq_entries = 65536;
module_param_named(max_cq_entries, evq_max_cq_entries, uint, 0644);
MODULE_PARM_DESC(max_cq_entries, "Largest completion ring, in entries");

unsigned int evq_max_batch = 65536;
module_param_named(max_batch, evq_max_batch, uint, 0644);
MODULE_PARM_DESC(max_batch, "Most changes in one EVQ_IOC_CTL call");

unsigned int evq_reap_interval_ms = 100;
module_param_named(reap_interval_ms, evq_reap_interval_ms, uint, 0644);
MODULE_PARM_DESC(reap_interval_ms, "How often a queue looks for watched files only it still holds");

unsigned int evq_reap_batch = 4096;
module_param_named(reap_batch, evq_reap_batch, uint, 0644);
MODULE_PARM_DESC(reap_batch, "Watches a queue looks through per reap interval (at least 64)");

unsigned int evq_max_ops = 4096;
module_param_named(max_ops, evq_max_ops, uint, 0644);
MODULE_PARM_DESC(max_ops, "Operations (asynchronous sends, page-in notifications) one queue may have in flight");

unsigned int evq_sendfile_window = 512 << 10;
module_param_named(sendfile_window, evq_sendfile_window, uint, 0644);
MODULE_PARM_DESC(sendfile_window, "Bytes a sendfile page-in reads ahead (rounded to pages, at least one)");

/* Operation steps that may sleep on the disk run here, never in the caller. */
struct workqueue_struct *evq_wq;

static int evq_open(struct inode *inode, struct file *file)
{
	struct evq_queue *q = evq_queue_create();

	if (!q)
		return -ENOMEM;
	file->private_data = q;
	return 0;
}

static int evq_release(struct inode *inode, struct file *file)
{
	evq_queue_release(file->private_data);
	return 0;
}

static long evq_info_ioctl(struct evq_info __user *arg)
{
	struct evq_info info = {
		.abi_version = EVQ_ABI_VERSION,
		.features = EVQ_FEAT_RING | EVQ_FEAT_BATCH_CTL |
			    EVQ_FEAT_EXCL_WAIT | EVQ_FEAT_EXCL_WATCH |
			    EVQ_FEAT_CLOSED_EVENT | EVQ_FEAT_SENDFILE,
		.max_cq_entries = READ_ONCE(evq_max_cq_entries),
		.max_batch = READ_ONCE(evq_max_batch),
		.max_user_watches = READ_ONCE(evq_max_user_watches),
		.max_ops = READ_ONCE(evq_max_ops),
		.sendfile_window = evq_sf_window(),
	};

	return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
}

static long evq_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct evq_queue *q = file->private_data;
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case EVQ_IOC_INFO:
		return evq_info_ioctl(uarg);
	case EVQ_IOC_SETUP:
		return evq_ring_setup(q, uarg);
	case EVQ_IOC_CTL:
	case EVQ_IOC_WAIT:
	case EVQ_IOC_SENDFILE:
	case EVQ_IOC_CANCEL:
		break;
	default:
		return -ENOTTY;
	}
	/* Pairs with the release in evq_ring_setup(): the ring is whole. */
	if (!smp_load_acquire(&q->ready))
		return -EBADFD;
	switch (cmd) {
	case EVQ_IOC_CTL:
		return evq_ctl_ioctl(q, uarg);
	case EVQ_IOC_SENDFILE:
		return evq_sendfile_ioctl(q, uarg);
	case EVQ_IOC_CANCEL:
		return evq_cancel_ioctl(q, uarg);
	}
	return evq_wait_ioctl(q, uarg);
}

static int evq_mmap(struct file *file, struct vm_area_struct *vma)
{
	return evq_ring_mmap(file->private_data, vma);
}

static __poll_t evq_poll(struct file *file, poll_table *pt)
{
	return evq_queue_poll(file->private_data, file, pt);
}

const struct file_operations evq_fops = {
	.owner = THIS_MODULE,
	.open = evq_open,
	.release = evq_release,
	.unlocked_ioctl = evq_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = evq_mmap,
	.poll = evq_poll,
	.llseek = noop_llseek,
};

static struct miscdevice evq_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "evq",
	.fops = &evq_fops,
	.mode = 0666,
};

static int __init evq_init(void)
{
	int ret;

	ret = evq_watch_cache_init();
	if (ret)
		return ret;
	ret = evq_pin_init();
	if (ret)
		goto err_watch;
	ret = evq_op_cache_init();
	if (ret)
		goto err_pin;
	ret = -ENOMEM;
	evq_wq = alloc_workqueue("evq", WQ_UNBOUND, 0);
	if (!evq_wq)
		goto err_op;
	ret = evq_netlink_init();
	if (ret)
		goto err_wq;
	ret = misc_register(&evq_misc);
	if (ret)
		goto err_nl;
	pr_info("ABI %d, /dev/evq ready\n", EVQ_ABI_VERSION);
	return 0;

err_nl:
	evq_netlink_exit();
err_wq:
	destroy_workqueue(evq_wq);
err_op:
	evq_op_cache_exit();
err_pin:
	evq_pin_exit();
err_watch:
	evq_watch_cache_exit();
	return ret;
}

static void __exit evq_exit(void)
{
	misc_deregister(&evq_misc);
	/*
	 * Closed queues live on while an operation waits for a read to
	 * finish.  Then make sure no wake-up callback is still returning
	 * into this module's text: they run under spinlocks, so an RCU
	 * grace period covers them.
	 */
	wait_var_event(&evq_nr_queues, !atomic_read(&evq_nr_queues));
	evq_netlink_exit();
	synchronize_rcu();
	destroy_workqueue(evq_wq);
	evq_op_cache_exit();
	evq_inflight_exit();
	evq_pin_exit();
	evq_watch_cache_exit();
}

module_init(evq_init);
module_exit(evq_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("evq: event queue with batched changes and a mapped completion ring");
MODULE_AUTHOR("The evq authors");
MODULE_VERSION(EVQ_VERSION);
