/*
 * fs/fs.c - cluckfs: the FUSE low-level front end of cluckd (implements
 * fs/fs.h).
 *
 * Every mutating request becomes one lockcore command proposed through
 * node_propose(); its reply is sent from the completion callback, which
 * may run inside node_propose(), so a handler never touches its request
 * after proposing and the context it passes owns what the reply needs.
 * Blocking lock requests are parked (a small refcounted struct, no
 * thread) and interrupts withdraw them with LC_CMD_CANCEL.  Reads wait
 * for node_read_barrier() and are then answered from the local replica
 * (see "reads" below); open() answers at once and pins the file fire and
 * forget (struct pin).  The kernel is told to cache no entry and no
 * attribute (timeouts 0), or the barrier would be pointless.  The facts
 * this relies on are measured in notes/fuse-locks.md (sections 1.3-1.7,
 * 2, 3).
 *
 * In a cluster (SPEC 3): when the node reports our session lost, the
 * holders of its locks are signalled and their (inode, owner) pairs are
 * remembered, so their later lock operations fail with ENOLCK until they
 * unlock or close; a request the node could not get into the log within
 * --op-timeout fails (ENOLCK for a lock, EIO for the rest) and a timed-out
 * acquire is undone in case it lands later.  An unlock always succeeds
 * (struct unl).  When cluckd stops, queued lock requests are answered ENOLCK
 * and withdrawn at once, and the holders left at the end of --stop-timeout
 * are signalled and refused the same way before the session closes
 * (fs_stop_begin, fs_stop_signal).
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

#include "fs/fs.h"
#include "fs/status.h"
#include "net/log.h"
#include "net/node.h"
#include "lockcore/lc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define FH_MAGIC 0x636c75636b464831ull   /* "cluckFH1" */

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

/* A lock request in flight.  Kept small: 100,000 waiters cost memory
 * only.  Freed when its references are gone: one for the handler while it
 * runs, one until the target's final completion, one while a CANCEL is in
 * flight.  The FUSE request is answered before the last reference goes,
 * so libfuse never calls the interrupt callback on a freed struct. */
struct lk {
	struct fs *fs;
	fuse_req_t req;
	struct lk *prev, *next;
	uint64_t serial;
	uint64_t t0;                 /* monotonic arrival time */
	uint64_t t_intr;             /* arrival of its interrupt */
	int final;                   /* final status kept while a CANCEL runs */
	uint8_t refs;
	uint8_t is_lock : 1;         /* takes a lock (not an unlock): metrics */
	uint8_t parked : 1;          /* the engine queued it (LC_PENDING) */
	uint8_t answered : 1;
	uint8_t interrupted : 1;
	uint8_t registering : 1;
	uint8_t reg_hit : 1;
	uint8_t have_final : 1;
	uint8_t cancel_sent : 1;
	uint8_t cancel_seen : 1;
	uint8_t own_seen : 1;        /* its own (first) completion came */
	uint8_t stop_mark : 1;       /* fs_stop_begin holds a reference */
	uint8_t stop_undo : 1;       /* answered ENOLCK by the stop: a grant
	                                that still lands is given back */
	/* The request itself, to undo the grant of a non-blocking acquire
	 * that timed out but may still be applied (lk_undo). */
	uint8_t cmd_type;
	uint8_t wait;
	uint64_t ino;
	struct lc_owner who;
	uint64_t start, end;
};

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

/* A read (lookup, getattr, readdir, ...) and what serving it needs. */
enum rd_kind {
	RD_LOOKUP, RD_GETATTR, RD_READLINK, RD_READ, RD_OPENDIR, RD_READDIR,
	RD_STATFS, RD_GETXATTR, RD_LISTXATTR, RD_GETLK
};

struct rargs {
	enum rd_kind kind;
	uint64_t ino;                /* parent for RD_LOOKUP */
	size_t size;
	off_t off;
	struct fuse_file_info fi;    /* RD_GETLK, RD_OPENDIR */
	struct flock lock;           /* RD_GETLK */
	const char *name;            /* RD_LOOKUP, RD_GETXATTR */
};

/* A read waiting for its read barrier.  Freed when its references are
 * gone: one for the handler while it runs, one until the barrier's
 * callback.  The FUSE request is answered before the last reference
 * goes, so libfuse never calls rq_intr on a freed struct. */
struct rq {
	struct fs *fs;
	fuse_req_t req;
	struct rq *prev, *next;
	uint64_t t0;
	struct rargs a;              /* a.name points into name[] */
	uint8_t refs;
	uint8_t answered : 1;
	uint8_t registering : 1;
	uint8_t reg_hit : 1;
	char name[];
};

/* (ino, POSIX owner) pairs that may have locks or requests from this
 * node, so a plain close() costs no command. */
struct po {
	struct po *next;
	uint64_t ino, owner;
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

#define UNL_MAX 4096

static void unl_add(struct fs *fs, uint64_t ino, uint64_t owner, bool posix,
		    uint64_t start, uint64_t end);

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

/* Largest WRITE request: a command with this much data fits a log entry
 * (RF_ENTRY_MAX) with room for its header. */
#define FS_MAX_WRITE (32u * 1024u)

static const char *const gen_names[3] = { "status", "status.json", "metrics" };
static const uint64_t gen_inos[3] = { LC_INO_STATUS, LC_INO_STATUS_JSON, LC_INO_METRICS };

/* ---- small helpers ---------------------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool is_gen(uint64_t ino)
{
	return ino == LC_INO_STATUS || ino == LC_INO_STATUS_JSON || ino == LC_INO_METRICS;
}

static bool is_reserved(uint64_t parent, const char *name)
{
	if (parent != LC_INO_ROOT)
		return false;
	for (int i = 0; i < 3; i++)
		if (strcmp(name, gen_names[i]) == 0)
			return true;
	return false;
}

/* Positive errno for a reply from a completion status. */
static int errno_of(int status)
{
	if (status >= 0)
		return 0;
	if (status < -4095)
		return EIO;
	return -status;
}

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static const struct lc_state *st_of(const struct fs *fs)
{
	return node_state(fs->node);
}

static void ns_to_ts(int64_t ns, struct timespec *ts)
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

static int64_t ts_to_ns(const struct timespec *ts)
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

static void gen_stat(const struct fs *fs, uint64_t ino, struct stat *st)
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

/* Attributes of any inode we serve: 0 or -ENOENT. */
static int get_stat(const struct fs *fs, uint64_t ino, struct stat *st,
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
static void reply_entry_ino(struct fs *fs, fuse_req_t req, uint64_t ino)
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

static void reply_attr_ino(struct fs *fs, fuse_req_t req, uint64_t ino)
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
static void note_cause(struct fs *fs, uint64_t t0)
{
	fs->cause_index = lc_applied_index(st_of(fs));
	fs->cause_t0 = t0;
}

/* node_propose() that leaves the handoff cause as it found it: a command
 * proposed from inside a completion callback must not take the blame for
 * the rest of the outer command's grants (their index no longer matches
 * then, so they are left out). */
static int propose(struct fs *fs, struct lc_cmd *cmd, node_done_fn fn, void *ctx,
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

static void bg_done(void *ctx, const struct lc_completion *c)
{
	struct bg *bg = ctx;

	if (!bg)
		return;
	note_cause(bg->fs, bg->t0);
	/* A close's RELEASE or FLUSH the log has not shown (struct unl). */
	if ((c->status == -ENOLCK || c->status == -ETIMEDOUT) &&
	    (bg->type == LC_CMD_RELEASE || bg->type == LC_CMD_FLUSH))
		unl_add(bg->fs, bg->ino, bg->owner, bg->type == LC_CMD_FLUSH, 0, LC_OFF_MAX);
	if (c->status != LC_PENDING)
		free(bg);
}

/* Proposes a command nobody waits for; its completion still marks the
 * handoffs it causes (without memory for that, they are left out). */
static int propose_bg(struct fs *fs, struct lc_cmd *cmd, uint64_t t0)
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
static uint64_t limit_for(uint64_t limit, uint32_t pct, uint32_t caller)
{
	if (!limit || caller == 0)
		return limit;
	return limit - limit / 100 * pct - limit % 100 * pct / 100;
}

/* 0, or -EDQUOT / -ENOSPC when `owner` getting nfiles more files and
 * nbytes more bytes of content, on behalf of `caller`, passes a limit. */
static int limit_check(const struct fs *fs, uint32_t caller, uint32_t owner,
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
static int limit_check_size(const struct fs *fs, fuse_req_t req, uint64_t ino,
			    uint64_t end)
{
	struct lc_attr a;

	if (lc_getattr(st_of(fs), ino, &a) < 0 || end <= a.size)
		return 0;
	return limit_check(fs, fuse_req_ctx(req)->uid, a.uid, 0, end - a.size);
}

/* ---- POSIX owner set ---------------------------------------------------------- */

static size_t po_hash(uint64_t ino, uint64_t owner, size_t cap)
{
	uint64_t h = ino * 0x9e3779b97f4a7c15ull ^ owner;

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (size_t)h & (cap - 1);
}

static struct po **po_slot(struct fs *fs, uint64_t ino, uint64_t owner)
{
	struct po **pp;

	if (!fs->pocap)
		return NULL;
	for (pp = &fs->pob[po_hash(ino, owner, fs->pocap)]; *pp; pp = &(*pp)->next)
		if ((*pp)->ino == ino && (*pp)->owner == owner)
			return pp;
	return NULL;
}

static bool po_has(struct fs *fs, uint64_t ino, uint64_t owner)
{
	return po_slot(fs, ino, owner) != NULL;
}

/* 0 or -ENOMEM.  Already present is fine. */
static int po_add(struct fs *fs, uint64_t ino, uint64_t owner)
{
	struct po *p;
	size_t i;

	if (po_has(fs, ino, owner))
		return 0;
	if (fs->pon + 1 > fs->pocap) {
		size_t cap = fs->pocap ? fs->pocap * 2 : 64;
		struct po **nb = calloc(cap, sizeof(*nb));

		if (!nb)
			return -ENOMEM;
		for (i = 0; i < fs->pocap; i++) {
			while (fs->pob[i]) {
				struct po *q = fs->pob[i];
				size_t j = po_hash(q->ino, q->owner, cap);

				fs->pob[i] = q->next;
				q->next = nb[j];
				nb[j] = q;
			}
		}
		free(fs->pob);
		fs->pob = nb;
		fs->pocap = cap;
	}
	p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ino = ino;
	p->owner = owner;
	i = po_hash(ino, owner, fs->pocap);
	p->next = fs->pob[i];
	fs->pob[i] = p;
	fs->pon++;
	return 0;
}

static void po_del(struct fs *fs, uint64_t ino, uint64_t owner)
{
	struct po **pp = po_slot(fs, ino, owner), *p;

	if (!pp)
		return;
	p = *pp;
	*pp = p->next;
	free(p);
	fs->pon--;
}

/* ---- handles -------------------------------------------------------------------- */

static struct fh *fh_new(struct fs *fs, uint64_t ino, int flags)
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

static void fh_free(struct fs *fs, struct fh *h)
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

static struct fh *fh_get(const struct fuse_file_info *fi)
{
	struct fh *h;

	if (!fi || !fi->fh)
		return NULL;
	h = (struct fh *)(uintptr_t)fi->fh;
	return h->magic == FH_MAGIC ? h : NULL;
}

/* Remembers a POSIX owner used through this open (for OFD locks). */
static int fh_add_posix(struct fh *h, uint64_t owner)
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

/* ---- lock requests: parking and interrupts --------------------------------------- */

static void lk_stop_withdraw(struct lk *lk);

static void lk_unref(struct lk *lk)
{
	struct fs *fs = lk->fs;

	if (--lk->refs)
		return;
	if (lk->prev)
		lk->prev->next = lk->next;
	else
		fs->lks = lk->next;
	if (lk->next)
		lk->next->prev = lk->prev;
	free(lk);
}

/* The one reply of a lock request. */
static void lk_answer(struct lk *lk, int status)
{
	struct fs *fs = lk->fs;
	int e;

	if (status == 0) {
		uint64_t now = mono_ns();

		if (lk->is_lock) {
			fs_hist_observe(&fs->m.acquire, now - lk->t0);
			/* Only grants whose cause is a request of this node
			 * (see struct fs); the rest (lease expiry, other
			 * nodes) are left out rather than guessed. */
			if (lk->parked && fs->cause_t0 && now >= fs->cause_t0 &&
			    fs->cause_index == lc_applied_index(st_of(fs)))
				fs_hist_observe(&fs->m.handoff, now - fs->cause_t0);
		}
		e = 0;
	} else if (status == -EINTR) {
		/* EINTR without a signal pending leaks ERESTARTSYS (512). */
		e = lk->interrupted ? EINTR : EWOULDBLOCK;
	} else if (status == -EAGAIN) {
		e = EWOULDBLOCK;
	} else if (status == -ETIMEDOUT) {
		/* Not in the log within --op-timeout (SPEC 3). */
		e = ENOLCK;
	} else {
		e = errno_of(status);
	}
	lk->answered = 1;
	if (lk->parked)
		fs->m.parked--;
	fuse_reply_err(lk->req, e);
}

/* Remembers an unlock answered 0 without the log (struct unl). */
static void unl_add(struct fs *fs, uint64_t ino, uint64_t owner, bool posix,
		    uint64_t start, uint64_t end)
{
	struct unl *u;

	if (fs->nunl == fs->capunl) {
		size_t cap = fs->capunl ? fs->capunl * 2 : 8;

		if (cap > UNL_MAX)
			return;
		u = realloc(fs->unl, cap * sizeof(*u));
		if (!u)
			return;
		fs->unl = u;
		fs->capunl = cap;
	}
	u = &fs->unl[fs->nunl++];
	u->ino = ino;
	u->owner = owner;
	u->posix = posix;
	u->start = start;
	u->end = end;
}

/* The owner asks for a lock on ino again, or is gone: its unlocks there
 * cover nothing any more. */
static void unl_forget(struct fs *fs, uint64_t ino, uint64_t owner)
{
	for (size_t i = 0; i < fs->nunl;)
		if (fs->unl[i].ino == ino && fs->unl[i].owner == owner)
			fs->unl[i] = fs->unl[--fs->nunl];
		else
			i++;
}

/* Did the owner of this hold unlock all of it (struct unl), or is such
 * an unlock still waiting for its answer (it gets 0: lk_done)? */
static bool unl_covers(const struct fs *fs, uint64_t ino, const struct lc_lockinfo *li)
{
	for (const struct lk *lk = fs->lks; lk; lk = lk->next)
		if (!lk->is_lock && !lk->answered && lk->ino == ino &&
		    lk->who.owner == li->who.owner &&
		    (lk->cmd_type == LC_CMD_SETLK) == li->posix &&
		    (!li->posix || (lk->start <= li->start && li->end <= lk->end)))
			return true;
	for (size_t i = 0; i < fs->nunl; i++) {
		const struct unl *u = &fs->unl[i];

		if (u->ino == ino && u->owner == li->who.owner && u->posix == li->posix &&
		    (!u->posix || (u->start <= li->start && li->end <= u->end)))
			return true;
	}
	return false;
}

/* Does lk's owner already hold, on lk's inode, something its undo would
 * also release? */
struct prior {
	const struct lk *lk;
	bool found;
};

static int prior_holder(void *ctx, const struct lc_lockinfo *li)
{
	struct prior *p = ctx;
	const struct lk *lk = p->lk;

	if (li->who.session != lk->who.session || li->who.owner != lk->who.owner)
		return 0;
	if (lk->cmd_type == LC_CMD_FLOCK ? !li->posix
	    : li->posix && li->start <= lk->end && lk->start <= li->end) {
		p->found = true;
		return 1;
	}
	return 0;
}

static int prior_waiter(void *ctx, const struct lc_lockinfo *li)
{
	(void)ctx;
	(void)li;
	return 1;               /* only holders matter */
}

/* Does lk's owner hold, on lk's inode, something an unlock of lk's
 * request would drop too? */
static bool lk_prior(const struct lk *lk)
{
	struct prior p = { .lk = lk };

	lc_locks(st_of(lk->fs), lk->ino, prior_holder, prior_waiter, &p);
	return p.found;
}

/* Proposes the unlock of lk's request (see lk_undo). */
static void lk_give_back(struct lk *lk)
{
	struct lc_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.type = lk->cmd_type;
	cmd.ino = lk->ino;
	cmd.who = lk->who;
	cmd.lock_type = LC_UNLCK;
	cmd.start = lk->start;
	cmd.end = lk->end;
	/* Its completion is ignored (bg_done with no context); -ENOLCK (the
	 * session is gone, and the grant with it) needs nothing either. */
	(void)propose(lk->fs, &cmd, bg_done, NULL, NULL);
}

/*
 * A non-blocking acquire timed out (node_propose: its fate is unknown, it
 * may still be applied): proposes, fire and forget, the unlock of the same
 * owner (flock) or range (POSIX), so a grant landing late does not linger
 * with an owner that was told ENOLCK.  When the owner already holds
 * something the unlock would drop (a conversion, an overlapping range),
 * nothing is proposed: dropping a lock its owner believes held is a safety
 * fault, a lingering one only delays others until the owner closes.
 */
static void lk_undo(struct lk *lk)
{
	if (!lk_prior(lk))
		lk_give_back(lk);
}

static void lk_done(void *ctx, const struct lc_completion *c)
{
	struct lk *lk = ctx;

	if (!lk->own_seen) {
		lk->own_seen = 1;
		note_cause(lk->fs, lk->t0);
	}
	if (c->status == LC_PENDING) {
		if (!lk->parked && !lk->answered) {
			lk->parked = 1;
			lk->fs->m.parked++;
		}
		/* The node may have re-sent it under a new serial (a new
		 * session, or -ESTALE): a CANCEL must name the current one. */
		if (c->serial)
			lk->serial = c->serial;
		/* Queued after the stop began (it was in flight then). */
		if (node_stopping(lk->fs->node))
			lk_stop_withdraw(lk);
		return;
	}
	if (c->serial)
		lk->serial = c->serial;
	if (!lk->is_lock && (c->status == -ENOLCK || c->status == -ETIMEDOUT ||
			     c->status == -EIO)) {
		/* An unlock succeeds: the session's end frees the lock, or the
		 * node sends the unlock until the log has it (struct unl); a
		 * failed node (-EIO) lets go of all its locks. */
		unl_add(lk->fs, lk->ino, lk->who.owner, lk->cmd_type == LC_CMD_SETLK,
			lk->start, lk->end);
		if (!lk->answered)
			lk_answer(lk, 0);
		lk_unref(lk);
		return;
	}
	/* A grant that won the race with the stop's withdrawal (or came
	 * though its CANCEL could not be proposed): its owner was told
	 * ENOLCK, so the lock must not stay held for nobody through the
	 * holders' wait, and its process be signalled as a holder. */
	if (c->status == 0 && lk->is_lock && lk->answered && lk->stop_undo) {
		lk_give_back(lk);
		unl_add(lk->fs, lk->ino, lk->who.owner, lk->cmd_type == LC_CMD_SETLK,
			lk->start, lk->end);
	}
	/* Before the answer, so that the caller's retry is proposed after
	 * the undo and cannot be undone by it. */
	if (c->status == -ETIMEDOUT && lk->is_lock && !lk->wait && !lk->answered)
		lk_undo(lk);
	if (!lk->answered) {
		if (lk->cancel_sent && !lk->cancel_seen) {
			/* The CANCEL decides: 0 -> EINTR, -ENOENT -> this. */
			lk->final = c->status;
			lk->have_final = 1;
		} else {
			lk_answer(lk, c->status);
		}
	}
	lk_unref(lk);
}

static void cancel_done(void *ctx, const struct lc_completion *c)
{
	struct lk *lk = ctx;

	if (c->status == LC_PENDING)
		return;
	/* Withdrawing a waiter can let the ones behind it in. */
	note_cause(lk->fs, lk->t_intr);
	lk->cancel_seen = 1;
	if (!lk->answered) {
		if (c->status == 0)
			lk_answer(lk, -EINTR);
		else if (lk->have_final)
			lk_answer(lk, lk->final);
		else if (c->status == -ETIMEDOUT)
			/* The withdrawal could not be ordered (no quorum): the
			 * caller gave up, so do not keep it waiting for the
			 * cluster.  A late grant of the target then lingers
			 * until the kernel's RELEASE/FLUSH of this owner, as
			 * when the CANCEL cannot be proposed at all. */
			lk_answer(lk, -EINTR);
		/* else: the target's final answer is still to come and replies. */
	}
	lk_unref(lk);
}

/* Withdraws the request after an interrupt (notes 1.5). */
static void lk_interrupt(struct lk *lk)
{
	struct lc_cmd cmd;
	int rc;

	if (lk->answered || lk->cancel_sent)
		return;
	lk->interrupted = 1;
	lk->cancel_sent = 1;
	lk->t_intr = mono_ns();
	lk->refs++;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_CANCEL;
	cmd.target_serial = lk->serial;
	rc = propose(lk->fs, &cmd, cancel_done, lk, NULL);
	if (rc < 0) {
		/* Cannot withdraw (session lost or no memory): the caller was
		 * interrupted, so EINTR is honest; a late grant dies with the
		 * session or at the kernel's RELEASE/FLUSH of this owner. */
		lk->cancel_seen = 1;
		if (!lk->answered)
			lk_answer(lk, -EINTR);
		lk_unref(lk);
	}
}

/*
 * The node is stopping: a queued request is answered ENOLCK now and
 * withdrawn (a CANCEL, as on an interrupt), so it is never granted to an
 * owner that was told it failed.  Should the grant win the race, lk_done
 * gives the lock back (unless the owner held something there before).
 */
static void lk_stop_withdraw(struct lk *lk)
{
	struct lc_cmd cmd;

	if (lk->answered || lk->cancel_sent)
		return;
	/* Checked now, while the request is still queued: what the owner
	 * holds then (a conversion, an overlapping range) a give-back
	 * would drop too, and it may not. */
	lk->stop_undo = !lk_prior(lk);
	lk_answer(lk, -ENOLCK);
	lk->cancel_sent = 1;
	lk->t_intr = mono_ns();
	lk->refs++;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_CANCEL;
	cmd.target_serial = lk->serial;
	if (propose(lk->fs, &cmd, cancel_done, lk, NULL) < 0) {
		lk->cancel_seen = 1;
		lk_unref(lk);
	}
}

static void lk_intr(fuse_req_t req, void *data)
{
	struct lk *lk = data;

	(void)req;
	/* Called under req->lock during registration: replying now would
	 * free the request under its own lock, so defer. */
	if (lk->registering) {
		lk->reg_hit = 1;
		return;
	}
	lk_interrupt(lk);
}

/* Proposes a lock command for req and answers it now or later. */
static void lock_submit(struct fs *fs, fuse_req_t req, struct lc_cmd *cmd, bool is_lock)
{
	struct lk *lk = calloc(1, sizeof(*lk));
	uint64_t serial = 0;
	int rc;

	if (!lk) {
		fuse_reply_err(req, ENOLCK);
		return;
	}
	lk->fs = fs;
	lk->req = req;
	lk->t0 = mono_ns();
	lk->is_lock = is_lock;
	lk->cmd_type = cmd->type;
	lk->wait = (cmd->flags & LC_LK_WAIT) != 0;
	lk->ino = cmd->ino;
	lk->who = cmd->who;
	lk->start = cmd->start;
	lk->end = cmd->end;
	lk->refs = 2;                /* handler + target's final completion */
	lk->next = fs->lks;
	if (fs->lks)
		fs->lks->prev = lk;
	fs->lks = lk;

	rc = propose(fs, cmd, lk_done, lk, &serial);
	if (rc < 0) {
		lk->refs = 1;
		lk_unref(lk);
		/* An unlock succeeds (struct unl): one refused for memory is
		 * kept and proposed again by the node, and without a session
		 * (or a node) there is nothing left to hold. */
		if (!is_lock && (rc == -ENOMEM || rc == -ENOLCK)) {
			unl_add(fs, cmd->ino, cmd->who.owner, cmd->type == LC_CMD_SETLK,
				cmd->start, cmd->end);
			fuse_reply_err(req, 0);
			return;
		}
		fuse_reply_err(req, rc == -ENOLCK ? ENOLCK : errno_of(rc));
		return;
	}
	if (!lk->serial)
		lk->serial = serial;
	if (!lk->answered) {
		lk->registering = 1;
		fuse_req_interrupt_func(req, lk_intr, lk);
		lk->registering = 0;
		if (lk->reg_hit)
			lk_interrupt(lk);
	}
	lk_unref(lk);
}

/* ---- namespace requests ------------------------------------------------------------ */

/* A namespace request in flight.  On ENOMEM it answers req itself and
 * returns NULL, so callers just return. */
static struct op *op_new(struct fs *fs, fuse_req_t req, enum op_kind kind,
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

/* What the answer to an open or create does about the inode's pin. */
enum pin_mode {
	PIN_NONE,                    /* not a regular file: nothing to pin */
	PIN_HELD,                    /* the CREATE pinned it: the handle owns that */
	PIN_ASYNC                    /* pin it now, fire and forget (pin_start) */
};

/* Answers an open or create with a new handle. */
static void reply_open_handle(struct fs *fs, fuse_req_t req, uint64_t ino,
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

static void op_done(void *ctx, const struct lc_completion *c)
{
	struct op *op = ctx;
	struct fs *fs = op->fs;
	/* Session lost or not in the log within --op-timeout: EIO, as a
	 * disk that cannot be reached (SPEC 3). */
	int e = c->status == -ENOLCK || c->status == -ETIMEDOUT ? EIO : errno_of(c->status);

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
		if (c->status == -ENOLCK || c->status == -ETIMEDOUT)
			unl_add(fs, op->ino, op->owner, true, 0, LC_OFF_MAX);
		fuse_reply_err(op->req, 0);
		break;
	}
	free(op);
}

/* Proposes a namespace command; op is owned by the completion from here. */
static void ns_submit(struct fs *fs, struct lc_cmd *cmd, struct op *op)
{
	fuse_req_t req = op->req;
	int rc = propose(fs, cmd, op_done, op, NULL);

	if (rc < 0) {
		free(op);
		fuse_reply_err(req, rc == -ENOLCK ? EIO : errno_of(rc));
	}
}

static void set_name(struct lc_cmd *cmd, const char *name)
{
	size_t l = strlen(name);

	cmd->name = name;
	cmd->name_len = l > UINT32_MAX ? UINT32_MAX : (uint32_t)l;
}

/* ---- reads: the read barrier (SPEC 2.1) ---------------------------------------------------- */

/*
 * Every read of the namespace, contents, xattrs and lock table waits for
 * node_read_barrier() and is then answered from the replica, so a change
 * acknowledged on any node is seen by the next operation here.  Alone or
 * on a leader holding its lease the barrier passes before the call
 * returns.  A read is answered from the replica as it is (possibly
 * stale) when the barrier times out, when its caller is interrupted, when
 * our session is not in contact with the cluster (jeopardy: a barrier
 * could only time out), or without memory: a stale read never makes a
 * lock unsafe, since every lock decision is taken in the log.
 */

static void rq_serve(struct fs *fs, fuse_req_t req, const struct rargs *a);

static void rq_unref(struct rq *rq)
{
	struct fs *fs = rq->fs;

	if (--rq->refs)
		return;
	if (rq->prev)
		rq->prev->next = rq->next;
	else
		fs->rqs = rq->next;
	if (rq->next)
		rq->next->prev = rq->prev;
	free(rq);
}

/* The one answer of a read, from the replica as it is now. */
static void rq_answer(struct rq *rq)
{
	if (rq->answered)
		return;
	rq->answered = 1;
	rq_serve(rq->fs, rq->req, &rq->a);
}

/* node_read_barrier callback. */
static void rq_ready(void *ctx, int status)
{
	struct rq *rq = ctx;
	struct fs *fs = rq->fs;

	if (!rq->answered) {
		fs_hist_observe(&fs->m.read_wait, mono_ns() - rq->t0);
		if (status < 0)
			fs->m.stale_timeout++;
		rq_answer(rq);
	}
	rq_unref(rq);
}

/* FUSE interrupt: the caller has a signal; answer it now, stale if need
 * be, rather than keep it waiting for the cluster (or leak EINTR into a
 * stat(2) that does not expect it).  The barrier's callback still comes
 * and drops the last reference. */
static void rq_intr(fuse_req_t req, void *data)
{
	struct rq *rq = data;

	(void)req;
	/* Under req->lock during registration: replying now would free
	 * the request under its own lock, so defer. */
	if (rq->registering) {
		rq->reg_hit = 1;
		return;
	}
	if (!rq->answered) {
		rq->fs->m.stale_intr++;
		rq_answer(rq);
	}
}

/* True when our session is not in contact with the cluster (jeopardy or
 * expired): a barrier could only time out. */
static bool out_of_contact(const struct fs *fs)
{
	struct node_status ns;

	memset(&ns, 0, sizeof(ns));
	node_get_status(fs->node, &ns);
	return ns.session && strcmp(ns.session, "ok") != 0;
}

/* Answers the read `a` of req after a read barrier (see above). */
static void read_submit(struct fs *fs, fuse_req_t req, const struct rargs *a)
{
	size_t nl = a->name ? strlen(a->name) + 1 : 0;
	struct rq *rq;
	int rc;

	if (out_of_contact(fs)) {
		fs->m.stale_contact++;
		rq_serve(fs, req, a);
		return;
	}
	rq = malloc(sizeof(*rq) + nl);
	if (!rq) {
		fs->m.stale_error++;
		rq_serve(fs, req, a);
		return;
	}
	memset(rq, 0, sizeof(*rq));
	rq->fs = fs;
	rq->req = req;
	rq->t0 = mono_ns();
	rq->a = *a;
	if (nl) {
		memcpy(rq->name, a->name, nl);
		rq->a.name = rq->name;
	}
	rq->refs = 2;                /* handler + the barrier's callback */
	rq->next = fs->rqs;
	if (fs->rqs)
		fs->rqs->prev = rq;
	fs->rqs = rq;

	/* rq_ready may run inside (alone, or on a leader with its lease). */
	rc = node_read_barrier(fs->node, rq_ready, rq);
	if (rc < 0) {
		rq->refs = 1;
		fs->m.stale_error++;
		rq_answer(rq);
	} else if (!rq->answered) {
		rq->registering = 1;
		fuse_req_interrupt_func(req, rq_intr, rq);
		rq->registering = 0;
		if (rq->reg_hit && !rq->answered) {
			fs->m.stale_intr++;
			rq_answer(rq);
		}
	}
	rq_unref(rq);
}

/* ---- operations ------------------------------------------------------------------------ */

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

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct rargs ra = { .kind = RD_LOOKUP, .ino = parent, .name = name };

	/* The generated files never wait (SPEC 3: reading status never
	 * blocks). */
	if (parent == LC_INO_ROOT)
		for (int i = 0; i < 3; i++)
			if (strcmp(name, gen_names[i]) == 0) {
				reply_entry_ino(fs, req, gen_inos[i]);
				return;
			}
	read_submit(fs, req, &ra);
}

static void serve_lookup(struct fs *fs, fuse_req_t req, uint64_t parent, const char *name)
{
	struct lc_attr a;
	int rc;

	rc = lc_lookup(st_of(fs), parent, name, strlen(name), &a);
	if (rc < 0) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	reply_entry_ino(fs, req, a.ino);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	/* Inode numbers are never reused: nothing to drop.  A read waiting
	 * for its barrier keeps nothing that a FORGET would free either (it
	 * holds a number, looked up again when it is served). */
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct rargs ra = { .kind = RD_GETATTR, .ino = ino };

	(void)fi;
	/* The root's attributes are asked on the way to every path (status
	 * included): they never wait; a stale mtime or nlink of the root
	 * misleads nobody about a lock. */
	if (is_gen(ino) || ino == LC_INO_ROOT)
		reply_attr_ino(fs, req, ino);
	else
		read_submit(fs, req, &ra);
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
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

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct rargs ra = { .kind = RD_READLINK, .ino = ino };

	read_submit(fs_of(req), req, &ra);
}

static void serve_readlink(struct fs *fs, fuse_req_t req, uint64_t ino)
{
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

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)rdev;
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	do_create(req, parent, name, mode, NULL);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	do_create(req, parent, name, mode, fi);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
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

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, LC_CMD_UNLINK);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, LC_CMD_RMDIR);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
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

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
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

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
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

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct lc_attr a;
	struct fh *h;
	int rc;

	if (is_gen(ino)) {
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

/* Answers a read of [off, off + size) of data/len. */
static void reply_slice(fuse_req_t req, const uint8_t *data, size_t len, size_t size, off_t off)
{
	if ((uint64_t)off >= len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > len - (size_t)off)
		size = len - (size_t)off;
	fuse_reply_buf(req, (const char *)data + off, size);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct rargs ra = { .kind = RD_READ, .ino = ino, .size = size, .off = off };

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (is_gen(ino)) {
		/* The snapshot taken at open: never waits. */
		struct fh *h = fh_get(fi);

		if (!h || !h->snap) {
			fuse_reply_err(req, EBADF);
			return;
		}
		reply_slice(req, (const uint8_t *)h->snap, h->snap_len, size, off);
		return;
	}
	read_submit(fs_of(req), req, &ra);
}

static void serve_read(struct fs *fs, fuse_req_t req, uint64_t ino, size_t size, off_t off)
{
	const uint8_t *data;
	size_t len;
	int rc = lc_content(st_of(fs), ino, &data, &len);

	if (rc < 0) {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	reply_slice(req, data, len, size, off);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
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

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct lc_cmd cmd;
	struct op *op;

	/* The owner closed: its lost POSIX holds are acknowledged. */
	fs_lost_del(&fs->lost, ino, fi->lock_owner);
	unl_forget(fs, ino, fi->lock_owner);
	/* FLUSH comes with every close(); only owners that used POSIX locks
	 * here cost a command.  Never ENOSYS (notes 1.7). */
	if (!po_has(fs, ino, fi->lock_owner)) {
		fuse_reply_err(req, 0);
		return;
	}
	po_del(fs, ino, fi->lock_owner);
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_FLUSH;
	cmd.ino = ino;
	cmd.who.session = node_session(fs->node);
	cmd.who.owner = fi->lock_owner;
	op = op_new(fs, req, OP_FLUSH, NULL);
	if (op) {
		op->ino = ino;
		op->owner = fi->lock_owner;
	}
	if (!op) {
		/* close() was answered ENOMEM; the locks go all the same. */
		(void)propose_bg(fs, &cmd, mono_ns());
		return;
	}
	if (propose(fs, &cmd, op_done, op, NULL) < 0) {
		/* Session lost: its locks are gone anyway. */
		free(op);
		fuse_reply_err(req, 0);
	}
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rargs ra = { .kind = RD_OPENDIR, .ino = ino, .fi = *fi };

	read_submit(fs_of(req), req, &ra);
}

static void serve_opendir(struct fs *fs, fuse_req_t req, uint64_t ino, struct fuse_file_info *fi)
{
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

/* Offsets: 1 ".", 2 "..", 3..5 the generated files (root only), then
 * lockcore cookie c at RD_BASE + c, so any offset resumes correctly. */
#define RD_BASE 5

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

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct rargs ra = { .kind = RD_READDIR, .ino = ino, .size = size, .off = off };

	(void)fi;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	read_submit(fs_of(req), req, &ra);
}

static void serve_readdir(struct fs *fs, fuse_req_t req, uint64_t ino, size_t size, off_t off)
{
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
		for (int i = 0; i < 3; i++)
			if (off < 3 + i && !rd_add(&r, gen_names[i], gen_inos[i], S_IFREG, 3 + i))
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

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct rargs ra = { .kind = RD_STATFS, .ino = ino };

	read_submit(fs_of(req), req, &ra);
}

static void serve_statfs(struct fs *fs, fuse_req_t req)
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

/* ---- extended attributes ------------------------------------------------------------- */

static const char *const cluck_xattrs[] = {
	"user.cluck.token", "user.cluck.holders", "user.cluck.waiters",
	"user.cluck.eta_ms", "user.cluck.slots", "user.cluck.ttl",
};
#define N_CLUCK_XATTRS (sizeof(cluck_xattrs) / sizeof(cluck_xattrs[0]))

/* Parent pid from /proc/PID/stat, 0 when unknown.  /proc is not our
 * mount, so reading it cannot deadlock. */
static uint32_t ppid_of(uint32_t pid)
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

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct rargs ra = { .kind = RD_GETXATTR, .ino = ino, .name = name, .size = size };

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
	read_submit(fs_of(req), req, &ra);
}

static void serve_getxattr(struct fs *fs, fuse_req_t req, uint64_t ino, const char *name,
			   size_t size)
{
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

static int list_add(void *ctx, const char *name)
{
	struct sbuf *b = ctx;

	sbuf_add(b, name, strlen(name) + 1);
	return 0;
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct rargs ra = { .kind = RD_LISTXATTR, .ino = ino, .size = size };
	struct sbuf b = { 0 };

	if (is_gen(ino)) {
		reply_xattr_buf(req, &b, size);
		return;
	}
	read_submit(fs_of(req), req, &ra);
}

static void serve_listxattr(struct fs *fs, fuse_req_t req, uint64_t ino, size_t size)
{
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

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
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

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
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

/* ---- lost locks (SPEC 3) ------------------------------------------------------------------ */

/*
 * Lock operations of an owner whose hold on ino was lost.  Returns true
 * when it answered req: ENOLCK for anything but an unlock, which is
 * answered 0 at once and ends the refusal.  An unlock needs no command:
 * the lost hold belongs to the old session, which the cluster frees by
 * itself, and while refused the owner cannot have taken anything under
 * the new one here.
 */
static bool lost_gate(struct fs *fs, fuse_req_t req, uint64_t ino, uint64_t owner, bool unlock)
{
	if (!fs_lost_has(&fs->lost, ino, owner))
		return false;
	if (!unlock) {
		fuse_reply_err(req, ENOLCK);
		return true;
	}
	fs_lost_del(&fs->lost, ino, owner);
	fuse_reply_err(req, 0);
	return true;
}

/* One walk of the local replica for the locks of the lost session. */
struct lost_walk {
	struct fs *fs;
	uint64_t session;
	uint64_t ino;
	uint64_t now_ms;
	uint32_t *pids;
	size_t npids, cappids;
	size_t holds;
	bool path_ok;
	char *path;             /* grows: directories nest without a limit */
	size_t cap;
};

static void lost_pid(struct lost_walk *w, uint32_t pid)
{
	if (pid == 0)
		return;
	if (w->npids == w->cappids) {
		size_t cap = w->cappids ? w->cappids * 2 : 64;
		uint32_t *p = realloc(w->pids, cap * sizeof(*p));

		if (!p)
			return;          /* that process goes unsignalled, logged below */
		w->pids = p;
		w->cappids = cap;
	}
	w->pids[w->npids++] = pid;
}

static int lost_holder(void *ctx, const struct lc_lockinfo *li)
{
	struct lost_walk *w = ctx;
	struct fs_lost_hold h;

	if (li->who.session != w->session)
		return 0;
	/* Its owner unlocked it; the unlock just did not reach the log. */
	if (unl_covers(w->fs, w->ino, li))
		return 0;
	lost_pid(w, li->who.pid);
	memset(&h, 0, sizeof(h));
	h.ino = w->ino;
	h.owner = li->who.owner;
	h.pid = li->who.pid;
	h.mode = li->type;
	h.posix = li->posix;
	h.token = li->token;
	h.since_ms = li->since_ns / 1000000u;
	h.lost_at_ms = w->now_ms;
	h.session = w->session;
	(void)fs_lost_add(&w->fs->lost, &h, w->path_ok ? w->path : "?");
	w->holds++;
	return 0;
}

static int lost_waiter(void *ctx, const struct lc_lockinfo *li)
{
	struct lost_walk *w = ctx;

	/* The node answered its request ENOLCK; it is told by signal too. */
	if (li->who.session == w->session)
		lost_pid(w, li->who.pid);
	return 0;
}

/* Where a lost hold is shown: where status shows the lock itself
 * (status_lock_path).  False when that is not known (or memory ran out):
 * "?". */
static bool lost_path(struct lost_walk *w, uint64_t ino)
{
	int deleted;

	return status_lock_path(st_of(w->fs), ino, &w->path, &w->cap, &deleted) == 0;
}

static int lost_ino(void *ctx, uint64_t ino)
{
	struct lost_walk *w = ctx;
	const struct lc_state *s = st_of(w->fs);

	w->ino = ino;
	w->path_ok = lost_path(w, ino);
	lc_locks(s, ino, lost_holder, lost_waiter, w);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void sort_unique(struct lost_walk *w)
{
	size_t k = 0;

	if (!w->npids)
		return;
	qsort(w->pids, w->npids, sizeof(w->pids[0]), cmp_u32);
	for (size_t i = 0; i < w->npids; i++)
		if (k == 0 || w->pids[i] != w->pids[k - 1])
			w->pids[k++] = w->pids[i];
	w->npids = k;
}

/*
 * Adds the descendants of the pids in w (sorted, unique) to it.  The pid a
 * lock records is the one that asked, and `flock /cluck/x cmd` asks from
 * flock(1) while cmd, which inherited the descriptor and so holds the lock
 * too, does the work: signalling flock(1) alone would leave cmd running
 * with a lost lock.  Never below pid 1 or ourselves (that would be
 * everything, or our own workers).
 */
static void lost_descendants(struct lost_walk *w, uint32_t self)
{
	struct proc { uint32_t pid, ppid; } *pr = NULL, *np;
	size_t n = 0, cap = 0;
	struct dirent *de;
	bool grew = true;
	DIR *d;

	if (!w->npids)
		return;
	d = opendir("/proc");
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		char *end;
		unsigned long v = strtoul(de->d_name, &end, 10);
		uint32_t pp;

		if (*end || v == 0 || v > INT32_MAX)
			continue;
		pp = ppid_of((uint32_t)v);
		if (pp <= 1 || pp == self)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			np = realloc(pr, cap * sizeof(*pr));
			if (!np)
				break;
			pr = np;
		}
		pr[n].pid = (uint32_t)v;
		pr[n].ppid = pp;
		n++;
	}
	closedir(d);
	/* One pass per generation; a pid enters at most once. */
	while (grew) {
		size_t before = w->npids;

		grew = false;
		for (size_t i = 0; i < n; i++) {
			if (!bsearch(&pr[i].ppid, w->pids, before, sizeof(w->pids[0]), cmp_u32) ||
			    bsearch(&pr[i].pid, w->pids, before, sizeof(w->pids[0]), cmp_u32))
				continue;
			lost_pid(w, pr[i].pid);
			grew = true;
		}
		sort_unique(w);
		if (w->npids == before)
			break;
	}
	free(pr);
}

/* The holds of `old_session` are lost: remembered (their owners' lock
 * operations fail with ENOLCK), their processes and descendants
 * signalled.  `stop`: our own clean stop gives them up, not an expiry. */
static void lose_holds(struct fs *fs, uint64_t old_session, bool stop)
{
	struct lost_walk w = { .fs = fs, .session = old_session };
	uint64_t dropped0 = fs->lost.dropped;
	uint32_t self = (uint32_t)getpid();
	size_t signalled = 0;

	w.now_ms = node_now_ns(fs->node) / 1000000u;
	/* Record first, signal after: kill() cannot change the replica, but
	 * the walk must see one state. */
	lc_foreach_locked(st_of(fs), lost_ino, &w);
	fs->nunl = 0;                /* they were all of the old session */
	sort_unique(&w);
	if (fs->cfg.on_lost_signal > 0)
		lost_descendants(&w, self);
	for (size_t i = 0; i < w.npids; i++) {
		/* Never ourselves (we do not lock our own mount) nor init; a
		 * pid above INT32_MAX would be a group. */
		if (w.pids[i] == self || w.pids[i] <= 1 || w.pids[i] > INT32_MAX)
			continue;
		if (fs->cfg.on_lost_signal > 0 &&
		    kill((pid_t)w.pids[i], fs->cfg.on_lost_signal) < 0) {
			if (errno != ESRCH)
				log_warn("%s: cannot signal pid %" PRIu32 ": %m",
					 stop ? "stopping" : "session lost", w.pids[i]);
			continue;
		}
		signalled++;
	}
	if (stop)
		log_warn("stopping: %zu held locks given up (%" PRIu64 " not remembered), "
			 "%zu processes signalled", w.holds, fs->lost.dropped - dropped0,
			 fs->cfg.on_lost_signal > 0 ? signalled : 0);
	else
		log_warn("session %016" PRIx64 " lost: %zu held locks lost (%" PRIu64
			 " not remembered), %zu processes signalled", old_session, w.holds,
			 fs->lost.dropped - dropped0, fs->cfg.on_lost_signal > 0 ? signalled : 0);
	free(w.pids);
	free(w.path);
}

/* node_on_lost callback: our session `old_session` expired (SPEC 3). */
static void fs_on_lost(void *ctx, uint64_t old_session)
{
	lose_holds(ctx, old_session, false);
}

/* ---- locks ------------------------------------------------------------------------------ */

/* struct flock -> inclusive [start, end]; 0 or -EINVAL/-EOVERFLOW. */
static int flock_range(const struct flock *l, uint64_t *start, uint64_t *end)
{
	if (l->l_start < 0)
		return -EINVAL;
	if (l->l_len == 0) {
		*start = (uint64_t)l->l_start;
		*end = LC_OFF_MAX;
	} else if (l->l_len > 0) {
		if (l->l_start > INT64_MAX - l->l_len + 1)
			return -EOVERFLOW;
		*start = (uint64_t)l->l_start;
		*end = (uint64_t)l->l_start + (uint64_t)l->l_len - 1;
	} else {
		if (l->l_len == INT64_MIN || l->l_start + l->l_len < 0)
			return -EINVAL;
		*start = (uint64_t)(l->l_start + l->l_len);
		*end = (uint64_t)l->l_start - 1;
		if (l->l_start == 0)
			return -EINVAL;
	}
	return 0;
}

static int lock_type_of(short t)
{
	switch (t) {
	case F_RDLCK:
		return LC_RDLCK;
	case F_WRLCK:
		return LC_WRLCK;
	case F_UNLCK:
		return LC_UNLCK;
	default:
		return -1;
	}
}

static void fs_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock)
{
	struct rargs ra = { .kind = RD_GETLK, .ino = ino, .fi = *fi, .lock = *lock };
	uint64_t start, end;

	if (lock_type_of(lock->l_type) < 0 || flock_range(lock, &start, &end) < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	read_submit(fs_of(req), req, &ra);
}

static void serve_getlk(struct fs *fs, fuse_req_t req, uint64_t ino,
			const struct fuse_file_info *fi, struct flock *lock)
{
	struct lc_owner who;
	struct lc_lockinfo li;
	uint64_t start = 0, end = 0;
	int type = lock_type_of(lock->l_type);
	int rc;

	if (type < 0 || flock_range(lock, &start, &end) < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (fs_lost_has(&fs->lost, ino, fi->lock_owner)) {
		fuse_reply_err(req, ENOLCK);
		return;
	}
	memset(&who, 0, sizeof(who));
	who.session = node_session(fs->node);
	who.owner = fi->lock_owner;
	who.pid = lock->l_pid > 0 ? (uint32_t)lock->l_pid : (uint32_t)fuse_req_ctx(req)->pid;
	if (type == LC_UNLCK)
		type = LC_WRLCK;
	rc = lc_getlk(st_of(fs), ino, &who, (uint8_t)type, start, end, &li);
	if (rc == 0) {
		lock->l_type = li.type == LC_WRLCK ? F_WRLCK : F_RDLCK;
		lock->l_whence = SEEK_SET;
		lock->l_start = (off_t)li.start;
		lock->l_len = li.end == LC_OFF_MAX ? 0 : (off_t)(li.end - li.start + 1);
		lock->l_pid = li.who.session == who.session ? (pid_t)li.who.pid : -1;
	} else if (rc == -ENOENT) {
		lock->l_type = F_UNLCK;
	} else {
		fuse_reply_err(req, errno_of(rc));
		return;
	}
	fuse_reply_lock(req, lock);
}

static void fs_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock, int sleep)
{
	struct fs *fs = fs_of(req);
	struct fh *h = fh_get(fi);
	struct lc_cmd cmd;
	uint64_t start, end;
	int type = lock_type_of(lock->l_type);
	int rc;

	if (is_gen(ino) || type < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = flock_range(lock, &start, &end);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (lost_gate(fs, req, ino, fi->lock_owner, type == LC_UNLCK))
		return;
	if (type != LC_UNLCK)
		unl_forget(fs, ino, fi->lock_owner);
	/* Remember the owner before proposing: a queued request is dropped
	 * by FLUSH too. */
	if (type != LC_UNLCK &&
	    (po_add(fs, ino, fi->lock_owner) < 0 || (h && fh_add_posix(h, fi->lock_owner) < 0))) {
		fuse_reply_err(req, ENOLCK);
		return;
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_SETLK;
	cmd.ino = ino;
	cmd.who.session = node_session(fs->node);
	cmd.who.owner = fi->lock_owner;
	cmd.who.pid = lock->l_pid > 0 ? (uint32_t)lock->l_pid : (uint32_t)fuse_req_ctx(req)->pid;
	cmd.lock_type = (uint8_t)type;
	cmd.start = start;
	cmd.end = end;
	cmd.flags = sleep ? LC_LK_WAIT : 0;
	lock_submit(fs, req, &cmd, type != LC_UNLCK);
}

static void fs_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	struct fs *fs = fs_of(req);
	struct fh *h = fh_get(fi);
	struct lc_cmd cmd;
	int type;

	switch (op & (LOCK_SH | LOCK_EX | LOCK_UN)) {
	case LOCK_SH:
		type = LC_RDLCK;
		break;
	case LOCK_EX:
		type = LC_WRLCK;
		break;
	case LOCK_UN:
		type = LC_UNLCK;
		break;
	default:
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (is_gen(ino)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (h) {
		h->did_flock = true;
		h->flock_owner = fi->lock_owner;
	}
	if (lost_gate(fs, req, ino, fi->lock_owner, type == LC_UNLCK))
		return;
	if (type != LC_UNLCK)
		unl_forget(fs, ino, fi->lock_owner);
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_FLOCK;
	cmd.ino = ino;
	cmd.who.session = node_session(fs->node);
	cmd.who.owner = fi->lock_owner;
	cmd.who.pid = (uint32_t)fuse_req_ctx(req)->pid;
	cmd.lock_type = (uint8_t)type;
	cmd.flags = (op & LOCK_NB) ? 0 : LC_LK_WAIT;
	lock_submit(fs, req, &cmd, type != LC_UNLCK);
}

/* Serves a read from the replica as it is (see read_submit). */
static void rq_serve(struct fs *fs, fuse_req_t req, const struct rargs *a)
{
	struct fuse_file_info fi = a->fi;
	struct flock lock = a->lock;

	switch (a->kind) {
	case RD_LOOKUP:
		serve_lookup(fs, req, a->ino, a->name);
		break;
	case RD_GETATTR:
		reply_attr_ino(fs, req, a->ino);
		break;
	case RD_READLINK:
		serve_readlink(fs, req, a->ino);
		break;
	case RD_READ:
		serve_read(fs, req, a->ino, a->size, a->off);
		break;
	case RD_OPENDIR:
		serve_opendir(fs, req, a->ino, &fi);
		break;
	case RD_READDIR:
		serve_readdir(fs, req, a->ino, a->size, a->off);
		break;
	case RD_STATFS:
		serve_statfs(fs, req);
		break;
	case RD_GETXATTR:
		serve_getxattr(fs, req, a->ino, a->name, a->size);
		break;
	case RD_LISTXATTR:
		serve_listxattr(fs, req, a->ino, a->size);
		break;
	case RD_GETLK:
		serve_getlk(fs, req, a->ino, &fi, &lock);
		break;
	default:
		fuse_reply_err(req, EIO);
		break;
	}
}

/* ---- public API ------------------------------------------------------------------------------ */

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
	while (fs->lks) {
		struct lk *lk = fs->lks;

		fs->lks = lk->next;
		free(lk);
	}
	/* node_stop() ran every barrier's callback: none is left but by a
	 * node that was never started. */
	while (fs->rqs) {
		struct rq *rq = fs->rqs;

		fs->rqs = rq->next;
		free(rq);
	}
	for (size_t i = 0; i < fs->pocap; i++)
		while (fs->pob[i]) {
			struct po *p = fs->pob[i];

			fs->pob[i] = p->next;
			free(p);
		}
	free(fs->pob);
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

/* A clean stop began (node_begin_stop): every queued lock request is
 * answered ENOLCK at once and withdrawn. */
void fs_stop_begin(struct fs *fs)
{
	struct lk *lk, *next;

	/* Proposing a CANCEL may run completions that free other requests:
	 * every parked one is pinned by a reference first, and the next one
	 * is read from a pinned one after its withdrawal. */
	for (lk = fs->lks; lk; lk = lk->next)
		if (lk->parked && !lk->answered) {
			lk->stop_mark = 1;
			lk->refs++;
		}
	for (lk = fs->lks; lk; lk = next) {
		if (!lk->stop_mark) {
			next = lk->next;
			continue;
		}
		lk_stop_withdraw(lk);
		next = lk->next;
		lk->stop_mark = 0;
		lk_unref(lk);
	}
}

/* The stop's time is up: the holders left are signalled as on a lost lock
 * (--on-lost, descendants too) before node_stop() frees their locks. */
void fs_stop_signal(struct fs *fs)
{
	if (node_holds(fs->node))
		lose_holds(fs, node_session(fs->node), true);
}
