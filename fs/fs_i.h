/*
 * fs/fs_i.h - what the parts of cluckfs share (private to fs/: the daemon
 * sees fs/fs.h only).
 *
 * cluckfs is split by operation family, one file each, around struct fs:
 *   fs.c      the operations table and the front end's lifecycle
 *   util.c    the one lockcore-to-errno table (fs_errno), attributes,
 *             proposing (the handoff cause), limits, the (inode, owner)
 *             hash, a parent pid from /proc
 *   gen.c     the generated files as files: their reserved names,
 *             attributes, the snapshot taken at open and its reads
 *   handle.c  open files: handles, the OPEN pin, open and release
 *   ns.c      namespace changes and their completions (struct op),
 *             lookup, links, directories
 *   file.c    attributes, contents, fsync, statfs
 *   read.c    reads behind the read barrier (SPEC 2.1): it knows the
 *             barrier, each read brings its own serve function
 *   lock.c    lock requests: parking, interrupts, unlocks answered
 *             without the log (struct unl), the POSIX owner set, flush
 *   xattr.c   extended attributes, user.cluck.* included
 *   lost.c    holds lost with our session (SPEC 3) and their table
 *   status.c, sbuf.c  rendering the generated files (fs/status.h: they
 *             never see struct fs)
 *
 * Single-threaded: every function runs on cluckd's loop thread, and a
 * completion callback may run inside propose() (see fs.c).
 *
 * It must never: be included outside fs/ (or by status.c and sbuf.c), or
 * declare what one file alone uses.
 */
#ifndef CLUCK_FS_I_H
#define CLUCK_FS_I_H

#include "fs/fs.h"
#include "fs/status.h"
#include "node/node.h"
#include "lockcore/lc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct flock;
struct stat;
struct timespec;

/* One open file (or generated-file snapshot).  Every open gets its own,
 * so RELEASE can undo what was done through this open file description,
 * including OFD locks the kernel never unlocks (notes 1.6, 1.7). */
struct fh {
	uint64_t magic;
	struct fh *prev, *next;
	uint64_t ino;
	int flags;
	bool did_flock;
	bool pinned;                 /* holds a lockcore pin (LC_CMD_OPEN) */
	struct pin *pin;             /* its OPEN pin, proposed, not completed yet */
	uint64_t flock_owner;
	uint64_t *posix;             /* POSIX lock owners used through this open */
	uint32_t nposix, capposix;
	char *snap;                  /* generated files: the snapshot */
	size_t snap_len;
};

struct fs {
	struct node *node;
	struct fs_config cfg;
	struct fuse_session *se;
	struct fh *handles;
	struct lk *lks;
	struct rq *rqs;              /* reads waiting for a read barrier */
	struct po **pob;
	size_t pocap, pon;
	/* Handoff latency: the last command of ours whose own completion was
	 * dispatched, its log index and its request's arrival.  lockcore
	 * emits a command's own completion before the grants it causes, and
	 * the driver dispatches a command's completions right after applying
	 * it, so a grant dispatched while the applied index is still
	 * cause_index was caused by that request. */
	uint64_t cause_index, cause_t0;
	struct fs_metrics m;
	struct fs_lost lost;         /* holds of expired sessions (SPEC 3) */
	/* Unlocks answered 0 before the log had them (struct unl). */
	struct unl *unl;
	size_t nunl, capunl;
};

/*
 * An unlock, or the RELEASE/FLUSH of a close, answered 0 although the log
 * never showed it: the session expired with it in flight (-ENOLCK), or it
 * was not in the log within --op-timeout (-ETIMEDOUT; the node sends it
 * until the log has it, and orders the owner's next lock request after
 * it).  Unlock and close always succeed (cluckfs(5)), so fs_on_lost must
 * not count what it covers as a lost hold: the owner gave it up, and
 * signalling it or refusing its relocks with ENOLCK would punish an
 * unlock that did its job.  Kept until the session is lost or the owner
 * asks for a lock on the file again (a hold after that is a new one); at
 * most UNL_MAX, beyond which the hold is counted lost as before (safe:
 * only refuses relocks until an unlock).
 */
struct unl {
	uint64_t ino, owner, start, end;
	bool posix;
};

/* Namespace/data request waiting for its completion. */
enum op_kind { OP_ENTRY, OP_CREATE, OP_ERR, OP_ATTR, OP_WRITE, OP_FLUSH };

struct op {
	struct fs *fs;
	fuse_req_t req;
	uint64_t t0;                 /* arrival, for the handoff metric */
	enum op_kind kind;
	uint64_t ino;                /* ATTR/ENTRY fallback; CREATE parent */
	size_t size;                 /* WRITE */
	uint64_t owner;              /* FLUSH: its lock owner */
	struct fuse_file_info fi;    /* CREATE */
	char name[];                 /* CREATE: for the O_CREAT-on-existing path */
};

/* What the answer to an open or create does about the inode's pin. */
enum pin_mode {
	PIN_NONE,                    /* not a regular file: nothing to pin */
	PIN_HELD,                    /* the CREATE pinned it: the handle owns that */
	PIN_ASYNC                    /* pin it now, fire and forget (pin_start) */
};


/* ---- util.c ---------------------------------------------------------------- */

/*
 * Who answers a completion or a refusal of node_propose(): the column of
 * the one lockcore-to-errno table (fs_errno).  Statuses no column names
 * become their own errno (errno_of).
 */
enum fs_ask {
	ASK_CHANGE,                  /* a namespace or data command (struct op) */
	ASK_LOCK,                    /* a lock request's answer (lk_answer) */
	ASK_UNLOCK,                  /* an unlock's completion (lk_done) */
	ASK_UNLOCK_REFUSED,          /* an unlock node_propose() refused */
	ASK_CLOSE,                   /* a close's RELEASE or FLUSH completion */
	ASK_N
};

/* fs_errno(): answered 0, and the unlock is remembered (struct unl). */
#define FS_UNL (-1)

/* Positive errno for a reply from a status, as the replica says it. */
int errno_of(int status);
/* The reply to `status` for `ask`: a positive errno, 0, or FS_UNL. */
int fs_errno(int status, enum fs_ask ask);

uint64_t mono_ns(void);
struct fs *fs_of(fuse_req_t req);
const struct lc_state *st_of(const struct fs *fs);
void ns_to_ts(int64_t ns, struct timespec *ts);
int64_t ts_to_ns(const struct timespec *ts);
int get_stat(const struct fs *fs, uint64_t ino, struct stat *st, struct lc_attr *a_out);
void reply_entry_ino(struct fs *fs, fuse_req_t req, uint64_t ino);
void reply_attr_ino(struct fs *fs, fuse_req_t req, uint64_t ino);
void note_cause(struct fs *fs, uint64_t t0);
int propose(struct fs *fs, struct lc_cmd *cmd, node_done_fn fn, void *ctx,
	    uint64_t *serial);
void bg_done(void *ctx, const struct lc_completion *c);
int propose_bg(struct fs *fs, struct lc_cmd *cmd, uint64_t t0);
uint64_t limit_for(uint64_t limit, uint32_t pct, uint32_t caller);
int limit_check(const struct fs *fs, uint32_t caller, uint32_t owner,
		uint64_t nfiles, uint64_t nbytes);
int limit_check_size(const struct fs *fs, fuse_req_t req, uint64_t ino, uint64_t end);
void set_name(struct lc_cmd *cmd, const char *name);
size_t pair_hash(uint64_t ino, uint64_t owner, size_t cap);
uint32_t ppid_of(uint32_t pid);

/* ---- gen.c ----------------------------------------------------------------- */

/* The generated files in the root (names and numbers: lc_reserved[]). */
bool is_gen(uint64_t ino);
bool is_reserved(uint64_t parent, const char *name);
void gen_stat(const struct fs *fs, uint64_t ino, struct stat *st);
void gen_open(struct fs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void gen_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi);

/* ---- handle.c -------------------------------------------------------------- */

struct fh *fh_new(struct fs *fs, uint64_t ino, int flags);
void fh_free(struct fs *fs, struct fh *h);
struct fh *fh_get(const struct fuse_file_info *fi);
int fh_add_posix(struct fh *h, uint64_t owner);
void reply_open_handle(struct fs *fs, fuse_req_t req, uint64_t ino,
		       struct fuse_file_info *fi, bool create, enum pin_mode pm);
void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* ---- ns.c ------------------------------------------------------------------ */

struct op *op_new(struct fs *fs, fuse_req_t req, enum op_kind kind, const char *name);
void op_done(void *ctx, const struct lc_completion *c);
void ns_submit(struct fs *fs, struct lc_cmd *cmd, struct op *op);
void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_readlink(fuse_req_t req, fuse_ino_t ino);
void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	      dev_t rdev);
void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi);
void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags);
void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* ---- file.c ---------------------------------------------------------------- */

void reply_slice(fuse_req_t req, const uint8_t *data, size_t len, size_t size, off_t off);
void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi);
void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi);
void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	      struct fuse_file_info *fi);
void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fs_statfs(fuse_req_t req, fuse_ino_t ino);

/* ---- read.c ---------------------------------------------------------------- */

/*
 * A read's serve function: answers req from the replica as it is now,
 * with `arg`, the read's own argument struct (a copy of what the handler
 * passed to read_submit), and `name`, the name the request lent it (a
 * copy too; NULL when it passed none).  Called exactly once per read.
 */
typedef void rd_serve_fn(struct fs *fs, fuse_req_t req, const void *arg, const char *name);

/* The own arguments of a read() or readdir() (serve_read, serve_readdir):
 * `size` bytes from `off` of inode `ino`. */
struct rd_span {
	uint64_t ino;
	size_t size;
	off_t off;
};

/* Answers the read of req by serve(arg, name) after a read barrier (read.c):
 * arg (arg_size bytes) and name are copied, the caller's may go. */
void read_submit(struct fs *fs, fuse_req_t req, rd_serve_fn *serve, const void *arg,
		 size_t arg_size, const char *name);
/* Frees the reads still waiting (fs_free). */
void read_free_all(struct fs *fs);

/* ---- lock.c ---------------------------------------------------------------- */

void unl_add(struct fs *fs, uint64_t ino, uint64_t owner, bool posix,
	     uint64_t start, uint64_t end);
void unl_forget(struct fs *fs, uint64_t ino, uint64_t owner);
bool unl_covers(const struct fs *fs, uint64_t ino, const struct lc_lockinfo *li);
void po_del(struct fs *fs, uint64_t ino, uint64_t owner);
/* Frees the lock requests and the POSIX owner set (fs_free). */
void lock_free_all(struct fs *fs);
void fs_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
	      struct flock *lock);
void fs_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
	      struct flock *lock, int sleep);
void fs_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op);
void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* ---- xattr.c --------------------------------------------------------------- */

void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 const char *value, size_t size, int flags);
void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ---- lost.c ---------------------------------------------------------------- */

bool lost_gate(struct fs *fs, fuse_req_t req, uint64_t ino, uint64_t owner, bool unlock);
void fs_on_lost(void *ctx, uint64_t old_session);

#endif /* CLUCK_FS_I_H */
