/* A file with no disk behind it, for APIs that take a path (config.c):
 * an anonymous memfd, named /proc/self/fd/N. */
#ifndef GW_FUZZ_MEMFILE_H
#define GW_FUZZ_MEMFILE_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct fz_memfile {
	int fd;
	char path[64];
} fz_memfile_t;

static inline void fz_memfile_open(fz_memfile_t *m, const char *name)
{
	m->fd = memfd_create(name, 0);
	if (m->fd < 0) {
		perror("memfd_create");
		abort();
	}
	snprintf(m->path, sizeof(m->path), "/proc/self/fd/%d", m->fd);
}

/* Replaces the file's contents. */
static inline void fz_memfile_set(fz_memfile_t *m, const void *data, size_t size)
{
	if (ftruncate(m->fd, 0) || (size && pwrite(m->fd, data, size, 0) != (ssize_t)size)) {
		perror("memfd write");
		abort();
	}
}

#endif
