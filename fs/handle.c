/*
 * fs/handle.c - open files: one handle (struct fh) per open file
 * description, so RELEASE can undo what was done through it (its flock
 * owner, the POSIX owners of its OFD locks, its pin); the OPEN pin that
 * keeps an open file alive once its last name goes, proposed fire and
 * forget once open() is answered (struct pin); open, the answer to a
 * create, and release.
 *
 * It must never: commit anything on open()'s path, unpin what it did not
 * pin, or keep a handle whose opener is gone.
 */
#include "config.h"

#include "fs/fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#define FH_MAGIC 0x636c75636b464831ull   /* "cluckFH1" */

/*
 * The OPEN pin of a handle, proposed fire and forget once open() was
 * answered.  Its completion records `pinned` in the handle; when the
 * handle was released first (h NULL: RELEASE saw no pin and dropped none),
 * a pin that did land is dropped by a RELEASE+UNPIN proposed then.  So
 * fs unpins exactly what was pinned, whichever of the completion and
 * the RELEASE comes first.
 */
struct pin {
	struct fs *fs;
	struct fh *h;                /* NULL once the handle is released */
	uint64_t ino;
};

struct fh *fh_new(struct fs *fs, uint64_t ino, int flags)
{
	struct fh *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->magic = FH_MAGIC;
	h->ino = ino;
	h->flags = flags;
	h->next = fs->handles;
	if (fs->handles)
		fs->handles->prev = h;
	fs->handles = h;
	return h;
}

void fh_free(struct fs *fs, struct fh *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	/* A pin still in flight now belongs to nobody: its completion drops
	 * it (pin_done). */
	if (h->pin)
		h->pin->h = NULL;
	h->magic = 0;
	free(h->posix);
	free(h->snap);
	free(h);
}

struct fh *fh_get(const struct fuse_file_info *fi)
{
	struct fh *h;

	if (!fi || !fi->fh)
		return NULL;
	h = (struct fh *)(uintptr_t)fi->fh;
	return h->magic == FH_MAGIC ? h : NULL;
}

/* Remembers a POSIX owner used through this open (for OFD locks). */
int fh_add_posix(struct fh *h, uint64_t owner)
{
	for (uint32_t i = 0; i < h->nposix; i++)
		if (h->posix[i] == owner)
			return 0;
	if (h->nposix == h->capposix) {
		uint32_t cap = h->capposix ? h->capposix * 2 : 2;
		uint64_t *p = realloc(h->posix, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		h->posix = p;
		h->capposix = cap;
	}
	h->posix[h->nposix++] = owner;
	return 0;
}

/* Drops the pin an open took, when no RELEASE will come to do it. */
static void unpin_bg(struct fs *fs, uint64_t ino)
{
	struct lc_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_RELEASE;
	cmd.flags = LC_RELEASE_UNPIN;
	cmd.ino = ino;
	cmd.who.session = node_session(fs->node);
	(void)propose_bg(fs, &cmd, mono_ns());
}

/* The OPEN pin's completion (struct pin). */
static void pin_done(void *ctx, const struct lc_completion *c)
{
	struct pin *p = ctx;

	if (c->status == LC_PENDING)
		return;
	if (p->h) {
		p->h->pin = NULL;
		/* -ENOENT: the file lost its last name before the pin was
		 * ordered, and nothing else kept it: the inode is gone (its
		 * number is never reused), so the lock operations of this
		 * handle fail ENOENT in lockcore as on any deleted file.
		 * -ETIMEDOUT: the pin may still land; unpinning it blindly
		 * could drop another handle's pin of this session (pins are
		 * counted per session), so a late one stays until the session
		 * ends, costing only the memory of a nameless inode. */
		p->h->pinned = c->status == 0;
	} else if (c->status == 0) {
		/* Released before the pin was known: RELEASE dropped none,
		 * and the session's commands are ordered, so this UNPIN comes
		 * after the OPEN in the log. */
		unpin_bg(p->fs, p->ino);
	}
	free(p);
}

/* Pins h's inode, fire and forget (struct pin).  Without memory, or
 * without a session, the handle stays unpinned: as for a file removed
 * before the pin, its lock operations fail once the file is gone. */
static void pin_start(struct fs *fs, struct fh *h)
{
	struct pin *p = malloc(sizeof(*p));
	struct lc_cmd cmd;

	if (!p)
		return;
	p->fs = fs;
	p->h = h;
	p->ino = h->ino;
	h->pin = p;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_OPEN;
	cmd.ino = h->ino;
	/* pin_done may run inside: it clears h->pin and frees p. */
	if (propose(fs, &cmd, pin_done, p, NULL) < 0) {
		h->pin = NULL;
		free(p);
	}
}

/* Answers an open or create with a new handle. */
void reply_open_handle(struct fs *fs, fuse_req_t req, uint64_t ino,
			      struct fuse_file_info *fi, bool create, enum pin_mode pm)
{
	struct fh *h = fh_new(fs, ino, fi->flags);
	struct fuse_entry_param e;
	int rc;

	if (!h) {
		if (pm == PIN_HELD)
			unpin_bg(fs, ino);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->pinned = pm == PIN_HELD;
	fi->fh = (uintptr_t)h;
	fi->keep_cache = 0;
	fi->direct_io = 0;
	if (!create) {
		if (fuse_reply_open(req, fi) != 0)
			goto opener_gone;
		goto pin;
	}
	memset(&e, 0, sizeof(e));
	rc = get_stat(fs, ino, &e.attr, NULL);
	if (rc < 0) {
		if (h->pinned)
			unpin_bg(fs, ino);
		fh_free(fs, h);
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	e.ino = ino;
	if (fuse_reply_create(req, &e, fi) != 0)
		goto opener_gone;
pin:
	/* After the reply: the kernel cannot send a lock request on this
	 * handle before it has it, and we are single-threaded, so the OPEN
	 * is proposed before any command of this handle. */
	if (pm == PIN_ASYNC)
		pin_start(fs, h);
	return;

opener_gone:
	/* The opener is gone: no RELEASE comes for this handle. */
	if (h->pinned)
		unpin_bg(fs, ino);
	fh_free(fs, h);
}

void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct lc_attr a;
	int rc;

	if (is_gen(ino)) {
		gen_open(fs, req, ino, fi);
		return;
	}
	rc = lc_getattr(st_of(fs), ino, &a);
	if (rc < 0) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	if (a.kind == LC_DIR && (fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	/* No commit on open()'s path: the kernel's lookup just before passed
	 * the read barrier, so the file exists as of a moment after the
	 * call; the pin that keeps it alive once its last name goes follows
	 * fire and forget (pin_start).  It also lets open() work in
	 * jeopardy, so a blocking flock can start waiting (SPEC 3). */
	reply_open_handle(fs, req, ino, fi, false, a.kind == LC_REG ? PIN_ASYNC : PIN_NONE);
}

void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fh *h = fh_get(fi);
	uint64_t t0 = mono_ns();
	struct lc_cmd cmd;

	/* The description (and so its flock owner, a kernel pointer that
	 * may be reused) is gone: forget its lost holds. */
	if (fi->flock_release) {
		fs_lost_del(&fs->lost, ino, fi->lock_owner);
		unl_forget(fs, ino, fi->lock_owner);
	}
	if (h && h->did_flock) {
		fs_lost_del(&fs->lost, ino, h->flock_owner);
		unl_forget(fs, ino, h->flock_owner);
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.ino = ino;
	cmd.who.session = node_session(fs->node);
	/* Idempotent in lockcore: the kernel also sends flock_release for
	 * descriptions whose flock was denied or interrupted. */
	if (!is_gen(ino) && (fi->flock_release || (h && h->did_flock))) {
		cmd.type = LC_CMD_RELEASE;
		cmd.who.owner = fi->flock_release ? fi->lock_owner : h->flock_owner;
		/* One command drops both the flock and the open's pin. */
		cmd.flags = h && h->pinned ? LC_RELEASE_UNPIN : 0;
		(void)propose_bg(fs, &cmd, t0);
		if (h && h->did_flock && fi->flock_release && h->flock_owner != fi->lock_owner) {
			cmd.who.owner = h->flock_owner;
			cmd.flags = 0;
			(void)propose_bg(fs, &cmd, t0);
		}
	} else if (h && h->pinned) {
		unpin_bg(fs, ino);
	}
	if (h) {
		/* OFD locks: the kernel never unlocks them (notes 1.6). */
		for (uint32_t i = 0; i < h->nposix; i++) {
			cmd.type = LC_CMD_FLUSH;
			cmd.who.owner = h->posix[i];
			(void)propose_bg(fs, &cmd, t0);
			po_del(fs, ino, h->posix[i]);
			fs_lost_del(&fs->lost, ino, h->posix[i]);
		}
		fh_free(fs, h);
	}
	fuse_reply_err(req, 0);
}
