/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A throw-away cgroup v2 group with the memory controller, for selftests
 * that check what the module charges.  The VM's minimal init mounts no
 * cgroup file system, so mount cgroup2 at a temporary directory when
 * /sys/fs/cgroup is not cgroup2 already.
 */
#ifndef EVQ_SELFTEST_CGROUP_H
#define EVQ_SELFTEST_CGROUP_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

struct evq_cg {
	char root[64];		/* the cgroup2 mount */
	char dir[128];		/* our group under it */
	int mounted;		/* we mounted root and must unmount it */
};

static inline int evq_cg_write(const char *dir, const char *file,
			       const char *val)
{
	char path[256];
	ssize_t len = (ssize_t)strlen(val), n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	if (n != len) {
		int err = n < 0 ? -errno : -EIO;

		close(fd);
		return err;
	}
	close(fd);
	return 0;
}

static inline int evq_cg_read(const char *dir, const char *file, char *buf,
			      size_t len)
{
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

/* A file holding one number (memory.current); -1 on error. */
static inline int64_t evq_cg_u64(const struct evq_cg *cg, const char *file)
{
	char buf[64];

	if (evq_cg_read(cg->dir, file, buf, sizeof(buf)))
		return -1;
	return strtoll(buf, NULL, 10);
}

/* One "key value" line of a flat keyed file (memory.events); -1 if absent. */
static inline int64_t evq_cg_key(const struct evq_cg *cg, const char *file,
				 const char *key)
{
	char buf[1024], *p;
	size_t klen = strlen(key);

	if (evq_cg_read(cg->dir, file, buf, sizeof(buf)))
		return -1;
	for (p = buf; p && *p;) {
		if (!strncmp(p, key, klen) && p[klen] == ' ')
			return strtoll(p + klen + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

static inline void evq_cg_fini(struct evq_cg *cg)
{
	/* A task just reaped may leave its group a moment later. */
	for (int i = 0; cg->dir[0] && i < 200; i++) {
		if (!rmdir(cg->dir) || errno == ENOENT)
			break;
		usleep(10000);
	}
	cg->dir[0] = 0;
	if (cg->mounted) {
		umount2(cg->root, MNT_DETACH);
		rmdir(cg->root);
		cg->mounted = 0;
	}
}

/*
 * Make a group with the memory controller.  Returns 0; 1 when this
 * kernel cannot (the reason in @why), -errno when something else failed.
 */
static inline int evq_cg_init(struct evq_cg *cg, char *why, size_t whylen)
{
	struct statfs sfs;
	char buf[512];
	int ret;

	memset(cg, 0, sizeof(*cg));
	if (!statfs("/sys/fs/cgroup", &sfs) &&
	    sfs.f_type == CGROUP2_SUPER_MAGIC) {
		snprintf(cg->root, sizeof(cg->root), "/sys/fs/cgroup");
	} else {
		snprintf(cg->root, sizeof(cg->root), "/tmp/evq-cg.XXXXXX");
		if (!mkdtemp(cg->root))
			return -errno;
		if (mount("cgroup2", cg->root, "cgroup2", 0, NULL)) {
			ret = -errno;
			rmdir(cg->root);
			if (ret == -ENODEV) {
				snprintf(why, whylen, "kernel has no cgroup2");
				return 1;
			}
			return ret;
		}
		cg->mounted = 1;
	}
	ret = evq_cg_read(cg->root, "cgroup.controllers", buf, sizeof(buf));
	if (ret)
		goto fail;
	if (!strstr(buf, "memory")) {
		/* Disabled at boot, or bound to a cgroup v1 hierarchy. */
		buf[strcspn(buf, "\n")] = 0;
		snprintf(why, whylen, "no memory controller in cgroup2 (has: %.160s)",
			 buf);
		evq_cg_fini(cg);
		return 1;
	}
	ret = evq_cg_write(cg->root, "cgroup.subtree_control", "+memory");
	if (ret)
		goto fail;
	snprintf(cg->dir, sizeof(cg->dir), "%s/evq-sec-%d", cg->root,
		 (int)getpid());
	if (mkdir(cg->dir, 0755)) {
		ret = -errno;
		cg->dir[0] = 0;
		goto fail;
	}
	return 0;
fail:
	evq_cg_fini(cg);
	return ret;
}

/* Move the calling process into the group. */
static inline int evq_cg_enter(const struct evq_cg *cg)
{
	char pid[24];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	return evq_cg_write(cg->dir, "cgroup.procs", pid);
}

#endif /* EVQ_SELFTEST_CGROUP_H */
