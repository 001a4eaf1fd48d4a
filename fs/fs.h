/*
 * fs/fs.h - cluckfs: the FUSE low-level front end of cluckd.
 *
 * Turns FUSE requests into lockcore commands proposed through the node,
 * parks blocking lock requests (a parked request costs memory, never a
 * thread), and answers every request exactly once: when the engine
 * completes it, refuses it, or the caller is interrupted.  Reads
 * (lookup, getattr, readdir, read, getxattr, ...) wait for the node's read
 * barrier and are then served from the local replica, so they are
 * linearizable cluster-wide (SPEC 2.1).  open() commits nothing: the pin
 * that keeps an open file alive follows fire and forget.  It also serves
 * the generated files status, status.json and metrics (SPEC 2.7), which
 * never wait.
 *
 * It must never: block, touch its own mount, or hold lock logic of its own
 * (that is lockcore's job).
 */
#ifndef CLUCK_FS_H
#define CLUCK_FS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdint.h>

struct node;
struct fs;

struct fs_config {
	uint32_t lockfile_ttl_s;     /* --lockfile-ttl: default ttl of O_EXCL files */
	int on_lost_signal;          /* --on-lost: signal number, 0 = none */
	/* Limits (cluckd(8) "Limits"); 0 = none. */
	uint64_t max_files, max_bytes;
	uint64_t max_files_per_user, max_bytes_per_user;
	uint32_t root_reserve_pct;   /* share of the totals only root may use */
};

/* NULL and errno on failure. */
struct fs *fs_new(struct node *node, const struct fs_config *cfg);
void fs_free(struct fs *fs);

/* The operations table to hand to fuse_session_new() with `fs` as userdata. */
const struct fuse_lowlevel_ops *fs_ops(void);
size_t fs_ops_size(void);

/* Tell fs which session it serves (needed for notifications). */
void fs_set_session(struct fs *fs, struct fuse_session *se);

/* Counts for shutdown diagnostics: requests parked right now. */
uint64_t fs_parked(const struct fs *fs);

/* A clean stop (cluckd(8) "Stopping"): after node_begin_stop(), answers
 * every queued lock request ENOLCK at once and withdraws it; when the
 * holders' time is up, fs_stop_signal() signals those left as on a lost
 * lock and refuses their lock operations, before node_stop(). */
void fs_stop_begin(struct fs *fs);
void fs_stop_signal(struct fs *fs);

#endif /* CLUCK_FS_H */
