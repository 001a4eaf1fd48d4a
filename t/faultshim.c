/*
 * t/faultshim.c - fault injection for the cluckd tests, loaded with
 * LD_PRELOAD (t/fs-faults.sh): on the test's word, large allocations fail
 * with ENOMEM or fsync and fdatasync fail with EIO, so a test can check
 * that every failure gets an answer and that a failed sync stops the
 * daemon the documented way.  Test code only.
 *
 * The word is given through files in $CLUCK_FAULT_DIR, read on every call
 * that may fail (so the test can change it while the daemon runs):
 *   malloc   "SKIP FAIL MIN [MAX]": of the next allocations of MIN to MAX
 *            bytes (malloc, calloc, realloc; no MAX: any size from MIN),
 *            SKIP succeed, then FAIL fail; the file is rewritten with what
 *            is left.
 *   fsync    when it exists, fsync and fdatasync fail with EIO.
 *   nospc    when it exists, pwrite fails with ENOSPC (a full disk that
 *            the daemon's reserve file cannot relieve).
 *
 * It must never allocate itself (it runs inside malloc): only raw system
 * calls and fixed buffers, and it must pass everything through unchanged
 * when CLUCK_FAULT_DIR is not set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);

static char dir[512];
static int have_dir = -1;

static int faults_on(void)
{
	if (have_dir < 0) {
		const char *d = getenv("CLUCK_FAULT_DIR");
		size_t l = d ? strlen(d) : 0;

		have_dir = l && l < sizeof(dir) - 16;
		if (have_dir)
			memcpy(dir, d, l + 1);
	}
	return have_dir;
}

static void path_of(char *buf, const char *name)
{
	size_t l = strlen(dir);

	memcpy(buf, dir, l);
	buf[l] = '/';
	memcpy(buf + l + 1, name, strlen(name) + 1);
}

static const char *num(const char *p, unsigned long *v)
{
	*v = 0;
	while (*p == ' ' || *p == '\n')
		p++;
	while (*p >= '0' && *p <= '9')
		*v = *v * 10 + (unsigned long)(*p++ - '0');
	return p;
}

static char *put(char *p, unsigned long v)
{
	char t[24];
	int k = 0;

	do {
		t[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (k)
		*p++ = t[--k];
	return p;
}

/* 1 when this allocation of `size` bytes is to fail. */
static int fail_alloc(size_t size)
{
	char path[600], b[80], *e;
	unsigned long skip, nfail, min, max;
	ssize_t r;
	int fd, out = 0, saved = errno;

	if (!faults_on())
		return 0;
	path_of(path, "malloc");
	fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		errno = saved;
		return 0;
	}
	r = read(fd, b, sizeof(b) - 1);
	b[r > 0 ? r : 0] = '\0';
	num(num(num(num(b, &skip), &nfail), &min), &max);
	if (!max)
		max = (unsigned long)-1;
	if (nfail && size >= min && size <= max) {
		if (skip)
			skip--;
		else {
			nfail--;
			out = 1;
		}
		e = put(b, skip);
		*e++ = ' ';
		e = put(e, nfail);
		*e++ = ' ';
		e = put(e, min);
		*e++ = ' ';
		e = put(e, max);
		*e++ = '\n';
		if (pwrite(fd, b, (size_t)(e - b), 0) > 0)
			(void)ftruncate(fd, e - b);
	}
	close(fd);
	errno = saved;
	return out;
}

void *malloc(size_t size)
{
	if (fail_alloc(size)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	if (size && n <= SIZE_MAX / size && fail_alloc(n * size)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	if (size && fail_alloc(size)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_realloc(p, size);
}

static int fault_file(const char *name)
{
	char path[600];
	int saved = errno;

	if (!faults_on())
		return 0;
	path_of(path, name);
	if (access(path, F_OK) == 0)
		return 1;
	errno = saved;
	return 0;
}

static int fail_sync(void)
{
	return fault_file("fsync");
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (fault_file("nospc")) {
		errno = ENOSPC;
		return -1;
	}
	return (ssize_t)syscall(SYS_pwrite64, fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite(fd, buf, n, off);
}

int fsync(int fd)
{
	if (fail_sync()) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fsync, fd);
}

int fdatasync(int fd)
{
	if (fail_sync()) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}
