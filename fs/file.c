/*
 * fs/file.c - a file's attributes and contents: getattr, setattr, read,
 * write and fsync, and statfs for the mount.  Changes are commands
 * (struct op); reads pass the read barrier, but for the root's attributes
 * and the generated files, which never wait.
 *
 * It must never: keep data of its own (every write is one replicated
 * command), let a generated file change, or let the kernel cache
 * attributes.
 */
#include "config.h"

#include "fs/fs_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

static void serve_getattr(struct fs *fs, fuse_req_t req, const void *arg, const char *name)
{
	reply_attr_ino(fs, req, *(const uint64_t *)arg);
}

void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	uint64_t ra = ino;

	(void)fi;
	/* The root's attributes are asked on the way to every path (status
	 * included): they never wait; a stale mtime or nlink of the root
	 * misleads nobody about a lock. */
	if (is_gen(ino) || ino == LC_INO_ROOT)
		reply_attr_ino(fs, req, ino);
	else
		read_submit(fs, req, serve_getattr, &ra, sizeof(ra), NULL);
}

void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct lc_cmd cmd;
	struct op *op;

	(void)fi;
	if (is_gen(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_SETATTR;
	cmd.ino = ino;
	if (to_set & FUSE_SET_ATTR_MODE) {
		cmd.valid |= LC_SET_MODE;
		cmd.mode = attr->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		cmd.valid |= LC_SET_UID;
		cmd.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		cmd.valid |= LC_SET_GID;
		cmd.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (attr->st_size < 0) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		cmd.valid |= LC_SET_SIZE;
		cmd.size = (uint64_t)attr->st_size;
		if (cmd.size <= LC_CONTENT_MAX) {
			int rc = limit_check_size(fs, req, ino, cmd.size);

			if (rc < 0) {
				fuse_reply_err(req, -rc);
				return;
			}
		}
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		cmd.valid |= LC_SET_ATIME;
		cmd.atime_ns = (int64_t)node_now_ns(fs->node);
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		cmd.valid |= LC_SET_ATIME;
		cmd.atime_ns = ts_to_ns(&attr->st_atim);
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		cmd.valid |= LC_SET_MTIME;
		cmd.mtime_ns = (int64_t)node_now_ns(fs->node);
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		cmd.valid |= LC_SET_MTIME;
		cmd.mtime_ns = ts_to_ns(&attr->st_mtim);
	}
	if (!cmd.valid) {
		/* ctime-only or kill-suid requests: nothing we store. */
		reply_attr_ino(fs, req, ino);
		return;
	}
	op = op_new(fs, req, OP_ATTR, NULL);
	if (!op)
		return;
	op->ino = ino;
	ns_submit(fs, &cmd, op);
}

/* Answers a read of [off, off + size) of data/len. */
void reply_slice(fuse_req_t req, const uint8_t *data, size_t len, size_t size, off_t off)
{
	if ((uint64_t)off >= len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > len - (size_t)off)
		size = len - (size_t)off;
	fuse_reply_buf(req, (const char *)data + off, size);
}

static void serve_read(struct fs *fs, fuse_req_t req, const void *arg, const char *name)
{
	const struct rd_span *ra = arg;
	uint64_t ino = ra->ino;
	size_t size = ra->size;
	off_t off = ra->off;
	const uint8_t *data;
	size_t len;
	int rc = lc_content(st_of(fs), ino, &data, &len);

	if (rc < 0) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	reply_slice(req, data, len, size, off);
}

void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct rd_span ra = { .ino = ino, .size = size, .off = off };

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (is_gen(ino)) {
		gen_read(req, size, off, fi);
		return;
	}
	read_submit(fs_of(req), req, serve_read, &ra, sizeof(ra), NULL);
}

void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct lc_cmd cmd;
	struct op *op;
	int rc;

	(void)fi;
	if (is_gen(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (size > UINT32_MAX || (uint64_t)off + size > LC_CONTENT_MAX) {
		/* lockcore says the same; this only spares a command. */
		fuse_reply_err(req, EFBIG);
		return;
	}
	rc = limit_check_size(fs, req, ino, (uint64_t)off + size);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	op = op_new(fs, req, OP_WRITE, NULL);
	if (!op)
		return;
	op->size = size;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_WRITE;
	cmd.ino = ino;
	cmd.offset = (uint64_t)off;
	cmd.data = buf;
	cmd.data_len = (uint32_t)size;
	ns_submit(fs, &cmd, op);
}

void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void serve_statfs(struct fs *fs, fuse_req_t req, const void *arg, const char *name)
{
	struct statvfs sv;
	struct lc_stats st;
	const uint64_t big = 1ull << 30;

	lc_stats(st_of(fs), &st);
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = big;
	sv.f_bfree = big;
	sv.f_bavail = big;
	sv.f_files = st.files + big;
	sv.f_ffree = big;
	sv.f_favail = big;
	sv.f_namemax = LC_NAME_MAX;
	/* With limits, df shows them: used, free (to root) and available
	 * (to others, short of the root reserve). */
	{
		const struct fs_config *c = &fs->cfg;
		struct lc_usage u;
		uint64_t avail;

		lc_usage_total(st_of(fs), &u);
		if (c->max_bytes) {
			sv.f_blocks = (c->max_bytes + 4095) / 4096;
			sv.f_bfree = u.bytes < c->max_bytes ?
				     (c->max_bytes - u.bytes) / 4096 : 0;
			avail = limit_for(c->max_bytes, c->root_reserve_pct, 1);
			sv.f_bavail = u.bytes < avail ? (avail - u.bytes) / 4096 : 0;
		}
		if (c->max_files) {
			sv.f_files = c->max_files;
			sv.f_ffree = u.files < c->max_files ? c->max_files - u.files : 0;
			avail = limit_for(c->max_files, c->root_reserve_pct, 1);
			sv.f_favail = u.files < avail ? avail - u.files : 0;
		}
	}
	fuse_reply_statfs(req, &sv);
}

void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	read_submit(fs_of(req), req, serve_statfs, NULL, 0, NULL);
}
