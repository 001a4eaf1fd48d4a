/*
 * fs/util.c - what every family of cluckfs shares: the one table from a
 * lockcore or node status to the errno of a reply (fs_errno), inode
 * attributes and the replies built from them, proposing a command with
 * the handoff cause kept (propose, propose_bg), the limits checked before
 * proposing (cluckd(8) "Limits"), and a parent pid from /proc.
 *
 * It must never: decide anything about locks, answer a request it was not
 * handed, or block (ppid_of reads /proc, which is not our mount).
 */
#include "config.h"

#include "fs/fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the one lockcore-to-errno table ------------------------------------------ */

/* The status's own errno (the default of every column). */
#define SAME (-2)

/*
 * How a status from lockcore or the node is answered, by who asks (enum
 * fs_ask); a status not listed, or SAME, is answered as its own errno.
 * The node's own statuses: -ENOLCK the session is lost (or the node
 * stopped), -ETIMEDOUT not in the log within --op-timeout (its fate is
 * unknown), -EIO the node failed; a refusal of node_propose() is -ENOMEM,
 * -ENOSPC, -E2BIG, -EINVAL or -ENOLCK.
 *   change: a namespace or data change that cannot reach the log is EIO,
 *           as a disk that cannot be reached (SPEC 3).
 *   lock:   a lock not in the log within --op-timeout is ENOLCK (SPEC 3);
 *           a busy lock is EWOULDBLOCK, and so is a withdrawn one, since
 *           EINTR without an interrupt leaks ERESTARTSYS (512): lk_answer
 *           answers EINTR itself when the caller was interrupted.
 *   unlock: an unlock succeeds (struct unl): the session's end frees the
 *           lock, or the node sends the unlock until the log has it; a
 *           failed node lets go of all its locks.  Refused, -ENOMEM means
 *           the node keeps it and proposes it again; completed, it is
 *           lockcore's answer.
 *   close:  close() succeeds; a RELEASE or FLUSH the log has not shown is
 *           remembered as an unlock.
 */
static const struct {
	int status;
	int e[ASK_N];
} errno_table[] = {
	/* status         change  lock         unlock       unlock refused  close */
	{ -ENOLCK,     { EIO,   ENOLCK,      FS_UNL,      FS_UNL,         FS_UNL } },
	{ -ETIMEDOUT,  { EIO,   ENOLCK,      FS_UNL,      ENOLCK,         FS_UNL } },
	{ -EIO,        { SAME,  SAME,        FS_UNL,      SAME,           0 } },
	{ -ENOMEM,     { SAME,  SAME,        SAME,        FS_UNL,         0 } },
	{ -EAGAIN,     { SAME,  EWOULDBLOCK, EWOULDBLOCK, EWOULDBLOCK,    0 } },
	{ -EINTR,      { SAME,  EWOULDBLOCK, EWOULDBLOCK, EWOULDBLOCK,    0 } },
};

/* Positive errno for a reply from a status (a completion's, or what the
 * replica says). */
int errno_of(int status)
{
	if (status >= 0)
		return 0;
	if (status < -4095)
		return EIO;
	return -status;
}

/* The reply to `status` for `ask` (the table above): a positive errno, 0,
 * or FS_UNL (answer 0 and remember the unlock). */
int fs_errno(int status, enum fs_ask ask)
{
	if (status >= 0)
		return 0;
	for (size_t i = 0; i < sizeof(errno_table) / sizeof(errno_table[0]); i++)
		if (errno_table[i].status == status)
			return errno_table[i].e[ask] == SAME ? errno_of(status)
							     : errno_table[i].e[ask];
	return ask == ASK_CLOSE ? 0 : errno_of(status);
}

/* ---- small helpers ------------------------------------------------------------- */

/* Monotonic now, ns. */
uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

const struct lc_state *st_of(const struct fs *fs)
{
	return node_state(fs->node);
}

void ns_to_ts(int64_t ns, struct timespec *ts)
{
	int64_t sec = ns / 1000000000, rem = ns % 1000000000;

	if (rem < 0) {
		rem += 1000000000;
		sec--;
	}
	ts->tv_sec = (time_t)sec;
	ts->tv_nsec = (long)rem;
}

/*
 * A time from the kernel -> ns since the epoch, as lockcore keeps it (an
 * int64_t: 1677-09-21 to 2262-04-11).  A time outside is clamped to the
 * nearest whole second inside, as the kernel clamps a time a local
 * filesystem cannot store to its s_time_min/s_time_max (nanoseconds 0
 * there); tv_sec * 1e9 would overflow from @9223372037 on (issue 9).
 */
#define TIME_S_MAX 9223372035ll      /* any nanoseconds still fit */
#define TIME_S_MIN (-9223372036ll)

int64_t ts_to_ns(const struct timespec *ts)
{
	int64_t sec = (int64_t)ts->tv_sec;
	long nsec = ts->tv_nsec;

	if (sec >= TIME_S_MAX)
		return TIME_S_MAX * 1000000000ll;
	if (sec <= TIME_S_MIN)
		return TIME_S_MIN * 1000000000ll;
	if (nsec < 0 || nsec > 999999999)
		nsec = 0;
	return sec * 1000000000ll + nsec;
}

static void attr_to_stat(const struct lc_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	switch (a->kind) {
	case LC_DIR:
		st->st_mode = S_IFDIR;
		break;
	case LC_LNK:
		st->st_mode = S_IFLNK;
		break;
	default:
		st->st_mode = S_IFREG;
		break;
	}
	st->st_mode |= a->mode & 07777;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	ns_to_ts(a->atime_ns, &st->st_atim);
	ns_to_ts(a->mtime_ns, &st->st_mtim);
	ns_to_ts(a->ctime_ns, &st->st_ctim);
}

/* Attributes of any inode we serve: 0 or -ENOENT. */
int get_stat(const struct fs *fs, uint64_t ino, struct stat *st,
		    struct lc_attr *a_out)
{
	struct lc_attr a;
	int rc;

	if (is_gen(ino)) {
		gen_stat(fs, ino, st);
		return 0;
	}
	rc = lc_getattr(st_of(fs), ino, &a);
	if (rc < 0)
		return rc;
	attr_to_stat(&a, st);
	if (a_out)
		*a_out = a;
	return 0;
}

/* No kernel caching at all (SPEC 2.1: linearizable namespace). */
void reply_entry_ino(struct fs *fs, fuse_req_t req, uint64_t ino)
{
	struct fuse_entry_param e;
	int rc;

	memset(&e, 0, sizeof(e));
	rc = get_stat(fs, ino, &e.attr, NULL);
	if (rc < 0) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	e.ino = ino;
	e.attr_timeout = 0;
	e.entry_timeout = 0;
	fuse_reply_entry(req, &e);
}

void reply_attr_ino(struct fs *fs, fuse_req_t req, uint64_t ino)
{
	struct stat st;
	int rc = get_stat(fs, ino, &st, NULL);

	if (rc < 0)
		fuse_reply_err(req, errno_of(rc));
	else
		fuse_reply_attr(req, &st, 0);
}

/* Called with the own completion of each command we proposed (the first
 * one it gets): grants dispatched next, at the same log index, are handoffs
 * from the request that arrived at t0. */
void note_cause(struct fs *fs, uint64_t t0)
{
	fs->cause_index = lc_applied_index(st_of(fs));
	fs->cause_t0 = t0;
}

/* node_propose() that leaves the handoff cause as it found it: a command
 * proposed from inside a completion callback must not take the blame for
 * the rest of the outer command's grants (their index no longer matches
 * then, so they are left out). */
int propose(struct fs *fs, struct lc_cmd *cmd, node_done_fn fn, void *ctx,
		   uint64_t *serial)
{
	uint64_t saved_index = fs->cause_index, saved_t0 = fs->cause_t0;
	int rc;

	rc = node_propose(fs->node, cmd, fn, ctx, serial);
	fs->cause_index = saved_index;
	fs->cause_t0 = saved_t0;
	return rc;
}

/* A command proposed for its effect only (RELEASE, FLUSH without a
 * waiting caller): what its completion needs to know. */
struct bg {
	struct fs *fs;
	uint64_t t0;
	uint64_t ino, owner;
	uint8_t type;
};

void bg_done(void *ctx, const struct lc_completion *c)
{
	struct bg *bg = ctx;

	if (!bg)
		return;
	note_cause(bg->fs, bg->t0);
	/* A close's RELEASE or FLUSH the log has not shown (struct unl). */
	if (fs_errno(c->status, ASK_CLOSE) == FS_UNL &&
	    (bg->type == LC_CMD_RELEASE || bg->type == LC_CMD_FLUSH))
		unl_add(bg->fs, bg->ino, bg->owner, bg->type == LC_CMD_FLUSH, 0, LC_OFF_MAX);
	if (c->status != LC_PENDING)
		free(bg);
}

/* Proposes a command nobody waits for; its completion still marks the
 * handoffs it causes (without memory for that, they are left out). */
int propose_bg(struct fs *fs, struct lc_cmd *cmd, uint64_t t0)
{
	struct bg *bg = malloc(sizeof(*bg));
	int rc;

	if (bg) {
		bg->fs = fs;
		bg->t0 = t0;
		bg->ino = cmd->ino;
		bg->owner = cmd->who.owner;
		bg->type = cmd->type;
	}
	rc = propose(fs, cmd, bg_done, bg, NULL);
	if (rc < 0)
		free(bg);
	return rc;
}

/* ---- limits (cluckd(8) "Limits") ---------------------------------------------- */

/*
 * Checked here, before proposing, against the usage lockcore derives from
 * the replicated namespace: every node counts the same, but each checks
 * with its own options and its own (possibly slightly stale) replica, so
 * requests in flight at once on several nodes may together pass a limit
 * by what they add.  Checking at apply would need the limits replicated.
 * Only what adds files or bytes is checked: lock requests, releases,
 * removals and truncations never are.  Root (the caller, or the owner who
 * is charged) is never held to the per-user limits, and only root may
 * use the last root_reserve_pct percent of each total, so an admin can
 * always clean up.
 */

/* The part of a total limit a caller may use (0: no limit). */
uint64_t limit_for(uint64_t limit, uint32_t pct, uint32_t caller)
{
	if (!limit || caller == 0)
		return limit;
	return limit - limit / 100 * pct - limit % 100 * pct / 100;
}

/* 0, or -EDQUOT / -ENOSPC when `owner` getting nfiles more files and
 * nbytes more bytes of content, on behalf of `caller`, passes a limit. */
int limit_check(const struct fs *fs, uint32_t caller, uint32_t owner,
		       uint64_t nfiles, uint64_t nbytes)
{
	const struct fs_config *c = &fs->cfg;
	struct lc_usage u;
	uint64_t lim;

	if (!nfiles && !nbytes)
		return 0;
	if (caller != 0 && owner != 0) {
		lc_usage(st_of(fs), owner, &u);
		if (nfiles && c->max_files_per_user &&
		    u.files + nfiles > c->max_files_per_user)
			return -EDQUOT;
		if (nbytes && c->max_bytes_per_user &&
		    u.bytes + nbytes > c->max_bytes_per_user)
			return -EDQUOT;
	}
	lc_usage_total(st_of(fs), &u);
	lim = limit_for(c->max_files, c->root_reserve_pct, caller);
	if (nfiles && lim && u.files + nfiles > lim)
		return -ENOSPC;
	lim = limit_for(c->max_bytes, c->root_reserve_pct, caller);
	if (nbytes && lim && u.bytes + nbytes > lim)
		return -ENOSPC;
	return 0;
}

/* limit_check() for content growing to `end` bytes in inode ino (charged
 * to its owner); a missing inode is lockcore's to refuse. */
int limit_check_size(const struct fs *fs, fuse_req_t req, uint64_t ino,
			    uint64_t end)
{
	struct lc_attr a;

	if (lc_getattr(st_of(fs), ino, &a) < 0 || end <= a.size)
		return 0;
	return limit_check(fs, fuse_req_ctx(req)->uid, a.uid, 0, end - a.size);
}

void set_name(struct lc_cmd *cmd, const char *name)
{
	size_t l = strlen(name);

	cmd->name = name;
	cmd->name_len = l > UINT32_MAX ? UINT32_MAX : (uint32_t)l;
}

/* The bucket of an (inode, owner) pair in a table of `cap` (a power of
 * two) buckets: the POSIX owner set and the lost holds. */
size_t pair_hash(uint64_t ino, uint64_t owner, size_t cap)
{
	uint64_t h = ino * 0x9e3779b97f4a7c15ull ^ owner;

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (size_t)h & (cap - 1);
}

/* Parent pid from /proc/PID/stat, 0 when unknown.  /proc is not our
 * mount, so reading it cannot deadlock. */
uint32_t ppid_of(uint32_t pid)
{
	char path[48], buf[512];
	const char *p;
	unsigned ppid = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%" PRIu32 "/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %u", &ppid) != 1)
		return 0;
	return ppid;
}
