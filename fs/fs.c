/*
 * fs/fs.c - cluckfs: the FUSE low-level front end of cluckd (implements
 * fs/fs.h): the operations table and the front end's lifecycle.  The
 * operations live in one file per family (see fs/fs_i.h); what follows
 * holds for all of them.
 *
 * Every mutating request becomes one lockcore command proposed through
 * node_propose(); its reply is sent from the completion callback, which
 * may run inside node_propose(), so a handler never touches its request
 * after proposing and the context it passes owns what the reply needs.
 * Blocking lock requests are parked (a small refcounted struct, no
 * thread) and interrupts withdraw them with LC_CMD_CANCEL.  Reads wait
 * for node_read_barrier() and are then answered from the local replica
 * (read.c); open() answers at once and pins the file fire and forget
 * (struct pin in handle.c).  The kernel is told to cache no entry and no
 * attribute (timeouts 0), or the barrier would be pointless.  The facts
 * this relies on are measured in notes/fuse-locks.md (sections 1.3-1.7,
 * 2, 3).
 *
 * In a cluster (SPEC 3): when the node reports our session lost, the
 * holders of its locks are signalled and their (inode, owner) pairs are
 * remembered, so their later lock operations fail with ENOLCK until they
 * unlock or close; a request the node could not get into the log within
 * --op-timeout fails (ENOLCK for a lock, EIO for the rest: fs_errno) and a timed-out
 * acquire is undone in case it lands later.  An unlock always succeeds
 * (struct unl).  When cluckd stops, queued lock requests are answered ENOLCK
 * and withdrawn at once, and the holders left at the end of --stop-timeout
 * are signalled and refused the same way before the session closes
 * (fs_stop_begin in lock.c, fs_stop_signal in lost.c).
 *
 * It must never: block (the exceptions are reading /proc/PID/stat for
 * user.cluck.token and, when a session is lost, to find the holders'
 * children, and the opener's groups when a status file is opened: /proc
 * is not our mount), touch its own mount, decide
 * anything about locks itself, reply twice or not at all to a request,
 * unpin what it did not pin, make a generated file wait for the cluster,
 * reply EINTR without an interrupt (errno 512 leaks out), reply ENOSYS
 * to flush/fsync/flock (the kernel then disables them for the mount), or
 * let an owner whose hold was lost believe it still holds it (or holds a
 * new one on that file) before it unlocks or closes.
 */
#include "config.h"

#include "fs/fs_i.h"

#include <errno.h>
#include <stdlib.h>

/* Largest WRITE request: a command with this much data fits a log entry
 * (RF_ENTRY_MAX) with room for its header. */
#define FS_MAX_WRITE (32u * 1024u)

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
		conn->want |= FUSE_CAP_FLOCK_LOCKS;
	if (conn->capable & FUSE_CAP_POSIX_LOCKS)
		conn->want |= FUSE_CAP_POSIX_LOCKS;
	/* Cached data, readdirplus attributes or a kernel-side truncate would
	 * show a node a stale view of a cluster-wide namespace; DONT_MASK off
	 * so the kernel applies the caller's umask. */
	conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_READDIRPLUS |
			FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_ATOMIC_O_TRUNC |
			FUSE_CAP_DONT_MASK);
	/* RELEASE (the flock unlock) is a background request: a low cap
	 * delays unlocks behind bursts of closes (notes 1.7). */
	conn->max_background = 1024;
	conn->congestion_threshold = 768;
	/* Every write becomes one replicated command, and a log entry must
	 * fit one datagram: the kernel splits larger writes for us. */
	if (conn->max_write > FS_MAX_WRITE)
		conn->max_write = FS_MAX_WRITE;
}

static const struct fuse_lowlevel_ops ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.fsyncdir = fs_fsync,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	.create = fs_create,
	.getlk = fs_getlk,
	.setlk = fs_setlk,
	.flock = fs_flock,
};

/* The operations table for fuse_session_new() (see fs.h). */
const struct fuse_lowlevel_ops *fs_ops(void)
{
	return &ops;
}

/* Its size, the op_size argument of fuse_session_new(). */
size_t fs_ops_size(void)
{
	return sizeof(ops);
}

/* Creates the front end for `node`; NULL and errno (EINVAL, ENOMEM). */
struct fs *fs_new(struct node *node, const struct fs_config *cfg)
{
	struct fs *fs;

	if (!node || !cfg) {
		errno = EINVAL;
		return NULL;
	}
	fs = calloc(1, sizeof(*fs));
	if (!fs) {
		errno = ENOMEM;
		return NULL;
	}
	fs->node = node;
	fs->cfg = *cfg;
	node_on_lost(node, fs_on_lost, fs);
	return fs;
}

/*
 * Frees the front end, its open handles and parked request structs.
 * Requests still parked are not answered here (the session is gone by
 * then); call it after node_stop(), which answers them, and before
 * node_free().
 */
void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	while (fs->handles)
		fh_free(fs, fs->handles);
	lock_free_all(fs);
	read_free_all(fs);
	fs_lost_free(&fs->lost);
	free(fs->unl);
	free(fs);
}

/* Remembers the FUSE session (for notifications). */
void fs_set_session(struct fs *fs, struct fuse_session *se)
{
	fs->se = se;
}

/* Lock requests parked right now. */
uint64_t fs_parked(const struct fs *fs)
{
	return fs ? fs->m.parked : 0;
}
