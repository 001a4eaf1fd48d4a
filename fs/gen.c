/*
 * fs/gen.c - the generated files (status, status.json, metrics: SPEC 2.7)
 * as files of the mount: their reserved names in the root, their
 * attributes, the snapshot rendered for the opener at open() and the
 * reads of it.  Their names and numbers are lockcore's lc_reserved[];
 * rendering them is status.c's.
 *
 * It must never: make a generated file wait for the cluster (no read
 * barrier, no command), render for anyone but the opener, or read the
 * mount (the opener's groups come from /proc).
 */
#include "config.h"

#include "fs/fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A generated file's inode number?  (lockcore's lc_reserved[] is the one
 * list of the generated files: names, inode numbers, readdir order.) */
bool is_gen(uint64_t ino)
{
	return lc_reserved_ino(ino) != NULL;
}

/* A generated file's name (no other file may take it)? */
bool is_reserved(uint64_t parent, const char *name)
{
	return parent == LC_INO_ROOT && lc_reserved_name(name, strlen(name));
}

/* A generated file's attributes: read-only, size 0 (it is read with
 * direct_io), changed "now". */
void gen_stat(const struct fs *fs, uint64_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_blksize = 4096;
	/* "Now": the content is generated at every open. */
	ns_to_ts((int64_t)node_now_ns(fs->node), &st->st_mtim);
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/*
 * Renders a generated file for the process that opens it: status shows
 * it only the locks it could look up (cluckfs(5)).  Its supplementary
 * groups come from /proc (libfuse reads /proc/PID/task/TID/status, not
 * our mount); when they cannot be read, only its own gid counts, which
 * can only show it less.
 */
static int render_for(struct fs *fs, fuse_req_t req, uint64_t ino, struct fh *h)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct status_reader rd = { .uid = ctx->uid, .gid = ctx->gid };
	gid_t *gv = NULL;
	uint32_t *uv = NULL;
	int k = fuse_req_getgroups(req, 0, NULL), rc;

	if (k > 0) {
		gv = calloc((size_t)k, sizeof(*gv));
		uv = calloc((size_t)k, sizeof(*uv));
		if (!gv || !uv) {
			free(gv);
			free(uv);
			return -ENOMEM;
		}
		/* The groups may have grown between the calls: keep the first k. */
		rc = fuse_req_getgroups(req, k, gv);
		for (int i = 0; i < rc && i < k; i++)
			uv[i] = (uint32_t)gv[i];
		rd.groups = uv;
		rd.ngroups = rc > 0 ? (size_t)(rc < k ? rc : k) : 0;
	}
	rc = status_render(ino, fs->node, &fs->m, &fs->lost, &rd, &h->snap, &h->snap_len);
	free(gv);
	free(uv);
	return rc;
}

/* Opens a generated file: its snapshot, rendered now for the opener. */
void gen_open(struct fs *fs, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *h;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	h = fh_new(fs, ino, fi->flags);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* Snapshot at open: all reads of this open see one document;
	 * direct_io because st_size is 0 (notes section 3). */
	fs_lost_purge(&fs->lost, st_of(fs));
	rc = render_for(fs, req, ino, h);
	if (rc < 0) {
		fh_free(fs, h);
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) != 0)
		fh_free(fs, h);
}

/* A read of a generated file: from the snapshot taken at open, so it
 * never waits. */
void gen_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fh *h = fh_get(fi);

	if (!h || !h->snap) {
		fuse_reply_err(req, EBADF);
		return;
	}
	reply_slice(req, (const uint8_t *)h->snap, h->snap_len, size, off);
}
