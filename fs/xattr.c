/*
 * fs/xattr.c - extended attributes.  user.* ones are replicated like any
 * change; on a regular file the user.cluck.* ones are computed from the
 * lock table (token, holders, waiters, eta_ms) or kept by lockcore (slots,
 * ttl).  Reads pass the read barrier.
 *
 * It must never: block (the exception: /proc/PID/stat, walking up from
 * the asking process to the holder for user.cluck.token), make security.*
 * wait (it is asked on every write), or hand the token to a process whose
 * hold was lost.
 */
#include "config.h"

#include "fs/fs_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *const cluck_xattrs[] = {
	"user.cluck.token", "user.cluck.holders", "user.cluck.waiters",
	"user.cluck.eta_ms", "user.cluck.slots", "user.cluck.ttl",
};
#define N_CLUCK_XATTRS (sizeof(cluck_xattrs) / sizeof(cluck_xattrs[0]))

#define PID_CHAIN 33

struct tok {
	uint64_t session;
	uint32_t pids[PID_CHAIN];
	int npids;
	int best_rank;
	uint64_t best;
};

static int tok_holder(void *ctx, const struct lc_lockinfo *li)
{
	struct tok *t = ctx;

	if (li->who.session != t->session)
		return 0;
	for (int i = 0; i < t->npids && i < t->best_rank; i++)
		if (t->pids[i] == li->who.pid) {
			t->best_rank = i;
			t->best = li->token;
			break;
		}
	return 0;
}

static int tok_waiter(void *ctx, const struct lc_lockinfo *li)
{
	(void)ctx;
	(void)li;
	return 1;               /* only holders matter */
}

/* True when a process of the chain lost an unreleased hold on `ino`: the
 * latest grant's token is then another holder's, and a fenced resource
 * would take it from a process that no longer holds the lock. */
static bool tok_lost(const struct fs *fs, const struct tok *t, uint64_t ino)
{
	for (const struct fs_lost_hold *h = fs->lost.head; h; h = h->next) {
		if (h->ino != ino || h->released)
			continue;
		for (int i = 0; i < t->npids; i++)
			if (t->pids[i] == h->pid)
				return true;
	}
	return false;
}

struct lines {
	const struct lc_state *s;
	struct sbuf *b;
	uint64_t now_ns;
	bool holders;
};

static void owner_line(struct lines *l, const struct lc_lockinfo *li, bool waiter)
{
	const char *name = NULL;
	size_t nlen = 0;

	sbuf_add(l->b, "node=", 5);
	if (lc_session_name(l->s, li->who.session, &name, &nlen) == 0 && name)
		sbuf_text_str(l->b, name, nlen);
	else
		sbuf_printf(l->b, "%016" PRIx64, li->who.session);
	sbuf_printf(l->b, " pid=%" PRIu32 " mode=%s token=%" PRIu64 " since=%" PRIu64,
		    li->who.pid, li->type == LC_WRLCK ? "ex" : "sh", li->token,
		    li->since_ns / 1000000u);
	if (li->posix) {
		if (li->end == LC_OFF_MAX)
			sbuf_printf(l->b, " range=%" PRIu64 "-eof", li->start);
		else
			sbuf_printf(l->b, " range=%" PRIu64 "-%" PRIu64, li->start, li->end);
	}
	if (waiter)
		sbuf_printf(l->b, " waited_ms=%" PRIu64,
			    l->now_ns > li->since_ns ? (l->now_ns - li->since_ns) / 1000000u : 0);
	sbuf_add(l->b, "\n", 1);
}

static int line_holder(void *ctx, const struct lc_lockinfo *li)
{
	struct lines *l = ctx;

	if (l->holders)
		owner_line(l, li, false);
	return 0;
}

static int line_waiter(void *ctx, const struct lc_lockinfo *li)
{
	struct lines *l = ctx;

	if (!l->holders)
		owner_line(l, li, true);
	return 0;
}

/* Value of a user.cluck.* attribute of a regular file into b: 0, -ENODATA
 * when `name` is not one of ours, or -ENOLCK for the token asked by a
 * process whose hold on the file was lost (as its lock operations get). */
static int cluck_value(struct fs *fs, fuse_req_t req, const struct lc_attr *a,
		       const char *name, struct sbuf *b)
{
	const struct lc_state *s = st_of(fs);
	uint64_t now = node_now_ns(fs->node);
	struct lc_locksum sum;

	if (strcmp(name, "user.cluck.slots") == 0) {
		sbuf_printf(b, "%" PRIu32, a->slots);
		return 0;
	}
	if (strcmp(name, "user.cluck.ttl") == 0) {
		sbuf_printf(b, "%" PRIu32, a->ttl_s);
		return 0;
	}
	if (strcmp(name, "user.cluck.eta_ms") == 0) {
		if (lc_locksum(s, a->ino, now, &sum) < 0)
			memset(&sum, 0, sizeof(sum));
		sbuf_printf(b, "%" PRIu64, sum.eta_ms);
		return 0;
	}
	if (strcmp(name, "user.cluck.token") == 0) {
		struct tok t = { .session = node_session(fs->node), .best_rank = PID_CHAIN };
		uint32_t pid = (uint32_t)fuse_req_ctx(req)->pid;

		/* The holder is often an ancestor (flock(1) runs the command
		 * that asks), so walk up the process tree. */
		while (pid > 0 && t.npids < PID_CHAIN) {
			t.pids[t.npids++] = pid;
			if (t.npids == PID_CHAIN || pid == 1)
				break;
			pid = ppid_of(pid);
		}
		lc_locks(s, a->ino, tok_holder, tok_waiter, &t);
		if (t.best_rank == PID_CHAIN && fs->lost.n && tok_lost(fs, &t, a->ino))
			return -ENOLCK;
		if (t.best_rank == PID_CHAIN) {
			if (lc_locksum(s, a->ino, now, &sum) < 0)
				memset(&sum, 0, sizeof(sum));
			t.best = sum.last_token;
		}
		sbuf_printf(b, "%" PRIu64, t.best);
		return 0;
	}
	if (strcmp(name, "user.cluck.holders") == 0 || strcmp(name, "user.cluck.waiters") == 0) {
		struct lines l = { .s = s, .b = b, .now_ns = now,
				   .holders = name[11] == 'h' };

		lc_locks(s, a->ino, line_holder, line_waiter, &l);
		return 0;
	}
	return -ENODATA;
}

/* Answers a getxattr/listxattr from a built value (size 0: length). */
static void reply_xattr_buf(fuse_req_t req, const struct sbuf *b, size_t size)
{
	if (b->err)
		fuse_reply_err(req, ENOMEM);
	else if (size == 0)
		fuse_reply_xattr(req, b->n);
	else if (b->n > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, b->p, b->n);
}

/* The own arguments of a getxattr() (the name comes with it) or a
 * listxattr() read (serve_getxattr, serve_listxattr). */
struct rd_xattr {
	uint64_t ino;
	size_t size;
};

static void serve_getxattr(struct fs *fs, fuse_req_t req, const void *arg, const char *name)
{
	const struct rd_xattr *ra = arg;
	uint64_t ino = ra->ino;
	size_t size = ra->size;
	struct sbuf b = { 0 };
	struct lc_attr a;
	const void *v;
	size_t vlen;
	int rc;

	rc = lc_getattr(st_of(fs), ino, &a);
	if (rc < 0) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	if (a.kind == LC_REG && strncmp(name, "user.cluck.", 11) == 0) {
		rc = cluck_value(fs, req, &a, name, &b);
		if (rc == 0) {
			reply_xattr_buf(req, &b, size);
			sbuf_free(&b);
			return;
		}
		if (rc != -ENODATA) {
			sbuf_free(&b);
			fuse_reply_err(req, -rc);
			return;
		}
	}
	rc = lc_xattr_get(st_of(fs), ino, name, &v, &vlen);
	if (rc < 0) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	sbuf_add(&b, v, vlen);
	reply_xattr_buf(req, &b, size);
	sbuf_free(&b);
}

void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct rd_xattr ra = { .ino = ino, .size = size };

	if (strncmp(name, "user.", 5) != 0) {
		/* security.* is asked on every write (capabilities): answer
		 * "none" quickly, without a barrier; ACLs and the rest are not
		 * supported. */
		fuse_reply_err(req, strncmp(name, "security.", 9) == 0 ? ENODATA : EOPNOTSUPP);
		return;
	}
	if (is_gen(ino)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	read_submit(fs_of(req), req, serve_getxattr, &ra, sizeof(ra), name);
}

static int list_add(void *ctx, const char *name)
{
	struct sbuf *b = ctx;

	sbuf_add(b, name, strlen(name) + 1);
	return 0;
}

static void serve_listxattr(struct fs *fs, fuse_req_t req, const void *arg, const char *name)
{
	const struct rd_xattr *ra = arg;
	uint64_t ino = ra->ino;
	size_t size = ra->size;
	struct sbuf b = { 0 };
	struct lc_attr a;
	int rc;

	rc = lc_getattr(st_of(fs), ino, &a);
	if (rc < 0) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	if (a.kind == LC_REG)
		for (size_t i = 0; i < N_CLUCK_XATTRS; i++)
			list_add(&b, cluck_xattrs[i]);
	lc_xattr_list(st_of(fs), ino, list_add, &b);
	reply_xattr_buf(req, &b, size);
	sbuf_free(&b);
}

void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct rd_xattr ra = { .ino = ino, .size = size };
	struct sbuf b = { 0 };

	if (is_gen(ino)) {
		reply_xattr_buf(req, &b, size);
		return;
	}
	read_submit(fs_of(req), req, serve_listxattr, &ra, sizeof(ra), NULL);
}

void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct fs *fs = fs_of(req);
	struct lc_cmd cmd;
	struct op *op;

	if (is_gen(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (strncmp(name, "user.", 5) != 0) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (size > LC_XATTR_VALUE_MAX) {
		fuse_reply_err(req, E2BIG);
		return;
	}
	/* User xattrs count as bytes of their owner (a replaced value is
	 * counted whole: the check may refuse a little early). */
	if (strncmp(name, "user.cluck.", 11) != 0) {
		struct lc_attr a;
		int rc = 0;

		if (lc_getattr(st_of(fs), ino, &a) == 0)
			rc = limit_check(fs, fuse_req_ctx(req)->uid, a.uid, 0,
					 strlen(name) + size);
		if (rc < 0) {
			fuse_reply_err(req, -rc);
			return;
		}
	}
	op = op_new(fs, req, OP_ERR, NULL);
	if (!op)
		return;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_SETXATTR;
	cmd.ino = ino;
	/* lockcore lets only the owner or root set the ttl or slots. */
	cmd.uid = (uint32_t)fuse_req_ctx(req)->uid;
	set_name(&cmd, name);
	cmd.data = value;
	cmd.data_len = (uint32_t)size;
	cmd.flags = (uint32_t)flags;
	ns_submit(fs, &cmd, op);
}

void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct lc_cmd cmd;
	struct op *op;

	if (is_gen(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (strncmp(name, "user.", 5) != 0) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	op = op_new(fs, req, OP_ERR, NULL);
	if (!op)
		return;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_REMOVEXATTR;
	cmd.ino = ino;
	cmd.uid = (uint32_t)fuse_req_ctx(req)->uid;
	set_name(&cmd, name);
	ns_submit(fs, &cmd, op);
}
