// SPDX-License-Identifier: GPL-2.0
/*
 * sendfile_bench: the file set.  Hot files are few and small and are read
 * back in after every cache drop, so they stay resident; cold files are
 * many, together larger than the guest's memory, and each run asks for
 * ones that the drop has just evicted, so every cold request is a real
 * page-cache miss on the (throttled) scratch disk.
 *
 * Every file is written with real data: a hole or an unwritten extent
 * reads back as zeroes without touching the disk, which would make a
 * "cold" file free.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "sfb.h"

#define WRITE_CHUNK	(1U << 20)

static void file_name(const struct sfb_fileset *fs, unsigned int i,
		      char *buf, size_t len)
{
	if (i < fs->nr_hot)
		snprintf(buf, len, "%s/hot-%04u", fs->dir, i);
	else
		snprintf(buf, len, "%s/cold-%06u", fs->dir, i - fs->nr_hot);
}

/* Does the file already hold what we would write?  (Header and size.) */
static bool file_ok(int fd, unsigned int i, uint32_t size)
{
	struct sfb_hdr h;
	struct stat st;

	if (fstat(fd, &st) < 0 || st.st_size != size)
		return false;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return false;
	return h.magic == SFB_FILE_MAGIC && h.file == i && h.size == size &&
	       h.check == sfb_hdr_check(i, size);
}

static int write_file(int fd, unsigned int i, uint32_t size,
		      unsigned char *buf)
{
	struct sfb_hdr h = {
		.magic = SFB_FILE_MAGIC, .file = i, .size = size,
		.check = sfb_hdr_check(i, size),
	};
	uint32_t off = 0;

	/*
	 * The body varies with the file so that no two files share pages
	 * in any deduplicating layer below the guest.
	 */
	memset(buf, (int)(i * 37 + 11), WRITE_CHUNK);
	memcpy(buf, &h, sizeof(h));
	while (off < size) {
		size_t n = size - off < WRITE_CHUNK ? size - off : WRITE_CHUNK;
		ssize_t w = pwrite(fd, buf, n, off);

		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		if (off == 0)
			memset(buf, (int)(i * 37 + 11), sizeof(h));
		off += (uint32_t)w;
	}
	return 0;
}

int sfb_fileset_create(struct sfb_fileset *fs, bool keep_existing)
{
	unsigned int i, n = fs->nr_hot + fs->nr_cold;
	unsigned char *buf;
	char path[512];
	int err = 0;

	if (mkdir(fs->dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	fs->files = calloc(n, sizeof(*fs->files));
	buf = malloc(WRITE_CHUNK);
	if (!fs->files || !buf) {
		free(buf);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		fs->files[i].fd = -1;
	for (i = 0; i < n; i++) {
		uint32_t size = i < fs->nr_hot ? fs->hot_size : fs->cold_size;
		int fd;

		file_name(fs, i, path, sizeof(path));
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0) {
			err = -errno;
			break;
		}
		if (!keep_existing || !file_ok(fd, i, size))
			err = ftruncate(fd, 0) < 0 ? -errno :
			      write_file(fd, i, size, buf);
		if (err) {
			close(fd);
			break;
		}
		close(fd);
		/*
		 * Kept open for the whole run: opening a file whose inode
		 * the cache drop evicted would read the disk in open(),
		 * where no design can avoid blocking; this benchmark
		 * measures the data path.  O_NOATIME (we are root in the
		 * VM), as a file server mounts noatime: the first read of
		 * each fresh file would otherwise dirty its inode and
		 * start a journal handle inside the send, a wait on the
		 * file system that has nothing to do with the page cache.
		 */
		fd = open(path, O_RDONLY | O_NOATIME | O_CLOEXEC);
		if (fd < 0 && errno == EPERM)
			fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err = -errno;
			break;
		}
		fs->files[i].fd = fd;
		fs->files[i].size = size;
	}
	free(buf);
	if (!err)
		sync();
	return err;
}

void sfb_fileset_remove(struct sfb_fileset *fs)
{
	unsigned int i, n = fs->nr_hot + fs->nr_cold;
	char path[512];

	for (i = 0; fs->files && i < n; i++) {
		if (fs->files[i].fd >= 0)
			close(fs->files[i].fd);
		file_name(fs, i, path, sizeof(path));
		unlink(path);
	}
	rmdir(fs->dir);
	free(fs->files);
	fs->files = NULL;
}

/*
 * Write back, then drop clean page cache, dentries and inodes
 * system-wide.  Our files stay open, so their inodes stay; their pages go.
 */
int sfb_drop_caches(void)
{
	int fd, err = 0;

	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, "3\n", 2) != 2)
		err = -errno;
	close(fd);
	return err;
}

/*
 * Read the files in, twice: the second access moves the pages to the
 * active list, where a stream of cold reads does not push them out.
 */
int sfb_warm(const struct sfb_fileset *fs, const uint32_t *files,
	     unsigned int nr)
{
	static unsigned char buf[1 << 16];
	unsigned int i, pass;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < nr; i++) {
			const struct sfb_file *f = &fs->files[files[i]];
			uint32_t off = 0;

			while (off < f->size) {
				ssize_t r = pread(f->fd, buf, sizeof(buf), off);

				if (r <= 0)
					return r < 0 ? -errno : -EIO;
				off += (uint32_t)r;
			}
		}
	}
	return 0;
}

int sfb_resident(const struct sfb_fileset *fs, const uint32_t *files,
		 unsigned int nr, uint64_t *resident, uint64_t *total)
{
	long psz = sysconf(_SC_PAGESIZE);
	unsigned char vec[1024];
	unsigned int i;

	*resident = *total = 0;
	for (i = 0; i < nr; i++) {
		const struct sfb_file *f = &fs->files[files[i]];
		size_t pages = ((size_t)f->size + psz - 1) / psz, j;
		void *p;

		if (pages > sizeof(vec))
			return -EFBIG;
		/* mmap and mincore look at the cache without filling it. */
		p = mmap(NULL, f->size, PROT_READ, MAP_SHARED, f->fd, 0);
		if (p == MAP_FAILED)
			return -errno;
		if (mincore(p, f->size, vec) < 0) {
			int err = -errno;

			munmap(p, f->size);
			return err;
		}
		for (j = 0; j < pages; j++)
			*resident += vec[j] & 1;
		*total += pages;
		munmap(p, f->size);
	}
	return 0;
}

uint64_t sfb_mem_total(void)
{
	unsigned long long kb = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb * 1024;
}
