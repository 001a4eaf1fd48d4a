/*
 * fs/ns.c - the namespace: its changes (create, mknod, mkdir, unlink,
 * rmdir, symlink, rename, link), one command each, answered from their
 * completion (struct op and op_done, which write, setattr, setxattr and
 * flush use too), and its reads behind the read barrier (lookup, readlink,
 * opendir, readdir).
 *
 * It must never: touch a request after proposing it (the completion may
 * run inside propose() and answers it), let a reserved name be created,
 * removed or renamed over, or let the kernel cache an entry.
 */
#include "config.h"

#include "fs/fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A namespace request in flight.  On ENOMEM it answers req itself and
 * returns NULL, so callers just return. */
struct op *op_new(struct fs *fs, fuse_req_t req, enum op_kind kind,
			 const char *name)
{
	size_t nl = name ? strlen(name) + 1 : 0;
	struct op *op = calloc(1, sizeof(*op) + nl);

	if (!op) {
		fuse_reply_err(req, ENOMEM);
		return NULL;
	}
	op->fs = fs;
	op->req = req;
	op->t0 = mono_ns();
	op->kind = kind;
	if (name)
		memcpy(op->name, name, nl);
	return op;
}

void op_done(void *ctx, const struct lc_completion *c)
{
	struct op *op = ctx;
	struct fs *fs = op->fs;
	/* Session lost or not in the log within --op-timeout: EIO
	 * (fs_errno). */
	int e = fs_errno(c->status, ASK_CHANGE);

	if (c->status == LC_PENDING)
		return;
	note_cause(fs, op->t0);
	switch (op->kind) {
	case OP_ENTRY:
		if (e)
			fuse_reply_err(op->req, e);
		else
			reply_entry_ino(fs, op->req, c->ino ? c->ino : op->ino);
		break;
	case OP_CREATE:
		if (c->status == -EEXIST && !(op->fi.flags & O_EXCL)) {
			/* Plain O_CREAT raced with another creator: open it. */
			struct lc_attr a;

			if (lc_lookup(st_of(fs), op->ino, op->name, strlen(op->name), &a) == 0) {
				if (a.kind == LC_REG) {
					reply_open_handle(fs, op->req, a.ino, &op->fi, true,
							  PIN_ASYNC);
					break;
				}
				/* What open(2) says for O_CREAT on a directory. */
				if (a.kind == LC_DIR)
					e = EISDIR;
			}
		}
		if (e)
			fuse_reply_err(op->req, e);
		else
			reply_open_handle(fs, op->req, c->ino, &op->fi, true, PIN_HELD);
		break;
	case OP_ERR:
		fuse_reply_err(op->req, e);
		break;
	case OP_ATTR:
		if (e)
			fuse_reply_err(op->req, e);
		else
			reply_attr_ino(fs, op->req, op->ino);
		break;
	case OP_WRITE:
		if (e)
			fuse_reply_err(op->req, e);
		else
			fuse_reply_write(op->req, op->size);
		break;
	case OP_FLUSH:
		/* close() succeeds; an unapplied FLUSH is an unlock (struct unl). */
		if (fs_errno(c->status, ASK_CLOSE) == FS_UNL)
			unl_add(fs, op->ino, op->owner, true, 0, LC_OFF_MAX);
		fuse_reply_err(op->req, 0);
		break;
	}
	free(op);
}

/* Proposes a namespace command; op is owned by the completion from here. */
void ns_submit(struct fs *fs, struct lc_cmd *cmd, struct op *op)
{
	fuse_req_t req = op->req;
	int rc = propose(fs, cmd, op_done, op, NULL);

	if (rc < 0) {
		free(op);
		fuse_reply_err(req, fs_errno(rc, ASK_CHANGE));
	}
}

/* A lookup's own arguments (serve_lookup); the name comes with it. */
struct rd_lookup {
	uint64_t parent;
};

static void serve_lookup(struct fs *fs, fuse_req_t req, const void *arg, const char *name)
{
	const struct rd_lookup *ra = arg;
	uint64_t parent = ra->parent;
	struct lc_attr a;
	int rc;

	rc = lc_lookup(st_of(fs), parent, name, strlen(name), &a);
	if (rc < 0) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	reply_entry_ino(fs, req, a.ino);
}

void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct rd_lookup ra = { .parent = parent };

	/* The generated files never wait (SPEC 3: reading status never
	 * blocks). */
	if (parent == LC_INO_ROOT) {
		const struct lc_reserved *g = lc_reserved_name(name, strlen(name));

		if (g) {
			reply_entry_ino(fs, req, g->ino);
			return;
		}
	}
	read_submit(fs, req, serve_lookup, &ra, sizeof(ra), name);
}

void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	/* Inode numbers are never reused: nothing to drop.  A read waiting
	 * for its barrier keeps nothing that a FORGET would free either (it
	 * holds a number, looked up again when it is served). */
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void serve_readlink(struct fs *fs, fuse_req_t req, const void *arg, const char *name)
{
	uint64_t ino = *(const uint64_t *)arg;
	char buf[LC_PATH_MAX + 1];
	const char *t;
	size_t len;
	int rc = lc_readlink(st_of(fs), ino, &t, &len);

	if (rc < 0) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	if (len > LC_PATH_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	memcpy(buf, t, len);
	buf[len] = '\0';
	fuse_reply_readlink(req, buf);
}

void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	uint64_t ra = ino;

	read_submit(fs_of(req), req, serve_readlink, &ra, sizeof(ra), NULL);
}

/* CREATE for create() and mknod(); fi NULL for mknod. */
static void do_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct lc_cmd cmd;
	struct op *op;

	struct lc_attr ea;
	int rc;

	if (is_reserved(parent, name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/* An O_EXCL file is a lockfile that dies with our session: a
	 * stopping node takes no new one, as it takes no new lock. */
	if (fi && (fi->flags & O_EXCL) && node_stopping(fs->node)) {
		fuse_reply_err(req, ENOLCK);
		return;
	}
	/* An O_CREAT open of an existing name adds nothing. */
	if (lc_lookup(st_of(fs), parent, name, strlen(name), &ea) < 0 &&
	    (rc = limit_check(fs, ctx->uid, ctx->uid, 1, 0)) < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	op = op_new(fs, req, fi ? OP_CREATE : OP_ENTRY, name);
	if (!op)
		return;
	op->ino = parent;
	if (fi)
		op->fi = *fi;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_CREATE;
	cmd.parent = parent;
	set_name(&cmd, name);
	cmd.mode = mode & 07777;
	cmd.uid = ctx->uid;
	cmd.gid = ctx->gid;
	if (fi)
		cmd.flags |= LC_CREATE_PIN;
	if (fi && (fi->flags & O_EXCL)) {
		cmd.flags |= LC_CREATE_EXCL;
		cmd.ttl_s = fs->cfg.lockfile_ttl_s;
	}
	ns_submit(fs, &cmd, op);
}

void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)rdev;
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	do_create(req, parent, name, mode, NULL);
}

void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	do_create(req, parent, name, mode, fi);
}

void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct lc_cmd cmd;
	struct op *op;

	int rc;

	if (is_reserved(parent, name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	rc = limit_check(fs, ctx->uid, ctx->uid, 1, 0);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	op = op_new(fs, req, OP_ENTRY, NULL);
	if (!op)
		return;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_MKDIR;
	cmd.parent = parent;
	set_name(&cmd, name);
	cmd.mode = mode & 07777;
	cmd.uid = ctx->uid;
	cmd.gid = ctx->gid;
	ns_submit(fs, &cmd, op);
}

static void remove_name(fuse_req_t req, fuse_ino_t parent, const char *name, uint8_t type)
{
	struct fs *fs = fs_of(req);
	struct lc_cmd cmd;
	struct op *op;

	if (is_reserved(parent, name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	op = op_new(fs, req, OP_ERR, NULL);
	if (!op)
		return;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = type;
	cmd.parent = parent;
	set_name(&cmd, name);
	ns_submit(fs, &cmd, op);
}

void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, LC_CMD_UNLINK);
}

void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, LC_CMD_RMDIR);
}

void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct lc_cmd cmd;
	struct op *op;
	size_t tl = strlen(link);
	int rc;

	if (is_reserved(parent, name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (tl > LC_PATH_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	rc = limit_check(fs, ctx->uid, ctx->uid, 1, tl);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	op = op_new(fs, req, OP_ENTRY, NULL);
	if (!op)
		return;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_SYMLINK;
	cmd.parent = parent;
	set_name(&cmd, name);
	cmd.data = link;
	cmd.data_len = (uint32_t)tl;
	cmd.uid = ctx->uid;
	cmd.gid = ctx->gid;
	ns_submit(fs, &cmd, op);
}

void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	struct lc_cmd cmd;
	struct op *op;

	if (flags & ~3u) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (is_reserved(parent, name) || is_reserved(newparent, newname)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	op = op_new(fs, req, OP_ERR, NULL);
	if (!op)
		return;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_RENAME;
	cmd.parent = parent;
	set_name(&cmd, name);
	cmd.parent2 = newparent;
	cmd.name2 = newname;
	cmd.name2_len = (uint32_t)strlen(newname);
	cmd.flags = flags;
	ns_submit(fs, &cmd, op);
}

void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct fs *fs = fs_of(req);
	struct lc_cmd cmd;
	struct op *op;

	if (is_gen(ino) || is_reserved(newparent, newname)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	op = op_new(fs, req, OP_ENTRY, NULL);
	if (!op)
		return;
	op->ino = ino;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_LINK;
	cmd.ino = ino;
	cmd.parent = newparent;
	set_name(&cmd, newname);
	ns_submit(fs, &cmd, op);
}

/* An opendir()'s own arguments (serve_opendir). */
struct rd_opendir {
	uint64_t ino;
	struct fuse_file_info fi;
};

static void serve_opendir(struct fs *fs, fuse_req_t req, const void *arg, const char *name)
{
	const struct rd_opendir *ra = arg;
	uint64_t ino = ra->ino;
	struct fuse_file_info f = ra->fi, *fi = &f;
	struct lc_attr a;
	int rc = lc_getattr(st_of(fs), ino, &a);

	if (rc < 0) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	if (a.kind != LC_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->fh = 0;
	fi->keep_cache = 0;
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
}

void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rd_opendir ra = { .ino = ino, .fi = *fi };

	read_submit(fs_of(req), req, serve_opendir, &ra, sizeof(ra), NULL);
}

/* Offsets: 1 ".", 2 "..", 3..5 the generated files (root only), then
 * lockcore cookie c at RD_BASE + c, so any offset resumes correctly. */
#define RD_BASE (2 + LC_RESERVED_N)

struct rd {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	bool full;
};

static bool rd_add(struct rd *r, const char *name, uint64_t ino, mode_t mode, off_t next)
{
	struct stat st;
	size_t need;

	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	st.st_mode = mode;
	need = fuse_add_direntry(r->req, r->buf + r->used, r->size - r->used, name, &st, next);
	if (need > r->size - r->used) {
		r->full = true;
		return false;
	}
	r->used += need;
	return true;
}

static int rd_entry(void *ctx, const char *name, size_t name_len,
		    const struct lc_attr *attr, uint64_t cookie)
{
	struct rd *r = ctx;
	char nm[LC_NAME_MAX + 1];
	mode_t mode = attr->kind == LC_DIR ? S_IFDIR : attr->kind == LC_LNK ? S_IFLNK : S_IFREG;

	if (name_len > LC_NAME_MAX || cookie > (uint64_t)INT64_MAX - RD_BASE)
		return 0;
	memcpy(nm, name, name_len);
	nm[name_len] = '\0';
	return rd_add(r, nm, attr->ino, mode, (off_t)(cookie + RD_BASE)) ? 0 : 1;
}

static void serve_readdir(struct fs *fs, fuse_req_t req, const void *arg, const char *name)
{
	const struct rd_span *ra = arg;
	uint64_t ino = ra->ino;
	size_t size = ra->size;
	off_t off = ra->off;
	struct rd r = { .req = req, .size = size };
	uint64_t parent = ino;
	int rc;

	if (r.size > 1u << 20)
		r.size = 1u << 20;
	r.buf = malloc(r.size ? r.size : 1);
	if (!r.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = lc_parent(st_of(fs), ino, &parent);
	if (rc < 0)
		goto reply_error;
	if (off < 1 && !rd_add(&r, ".", ino, S_IFDIR, 1))
		goto reply;
	if (off < 2 && !rd_add(&r, "..", parent, S_IFDIR, 2))
		goto reply;
	if (ino == LC_INO_ROOT)
		for (unsigned i = 0; i < LC_RESERVED_N; i++)
			if (off < 3 + i && !rd_add(&r, lc_reserved[i].name, lc_reserved[i].ino,
						   S_IFREG, 3 + i))
				goto reply;
	rc = lc_readdir(st_of(fs), ino, off > RD_BASE ? (uint64_t)off - RD_BASE : 0, rd_entry, &r);
	if (rc < 0 && r.used == 0)
		goto reply_error;
reply:
	fuse_reply_buf(req, r.buf, r.used);
	free(r.buf);
	return;
reply_error:
	fuse_reply_err(req, errno_of(rc));
	free(r.buf);
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct rd_span ra = { .ino = ino, .size = size, .off = off };

	(void)fi;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	read_submit(fs_of(req), req, serve_readdir, &ra, sizeof(ra), NULL);
}

void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}
