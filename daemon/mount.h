/*
 * daemon/mount.h - cluckd's mount point: the checks before mounting, the
 * immutable flag that makes it fail closed, the kernel's request timeouts,
 * and libfuse's own error messages folded into cluckd's one line.
 *
 * It must never: mount, unmount or access the mount point once mounted
 * (that deadlocks FUSE), or print more than one line for an error.
 */
#ifndef CLUCK_MOUNT_H
#define CLUCK_MOUNT_H

#include <stddef.h>
#include <stdio.h>

/*
 * The mount point must be an existing directory that nothing is mounted
 * on yet.  Fills abs (PATH_MAX) with its absolute path.  0, or -1 after
 * printing the one-line error, with the exact command to run when there
 * is one (a dead mount, a running cluckd).
 */
int mount_check(const char *mnt, char *abs);

/* chattr +i on the (empty) mount point, so with nothing mounted there a
 * lock attempt fails with EPERM instead of locking a local file.  Warns
 * (log) when it cannot. */
void mount_make_immutable(const char *abs);

/* Warns when a kernel FUSE request timeout is set: it aborts the whole
 * connection when one lock wait outlasts it. */
void mount_warn_request_timeouts(void);

/* libfuse prints its errors itself ("fuse: ..."); to keep a startup error
 * to one line they are caught in a temporary file between start and end,
 * and end gives them back joined into one line in buf. */
struct mount_capture {
	int saved;
	FILE *tmp;
};

void mount_capture_start(struct mount_capture *c);
void mount_capture_end(struct mount_capture *c, char *buf, size_t len);

#endif /* CLUCK_MOUNT_H */
