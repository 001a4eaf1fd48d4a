/*
 * fs/lock.c - lock requests (flock, POSIX setlk and getlk) and the close
 * of POSIX owners (flush).  Each request is one lockcore command; a
 * blocking one is parked (struct lk: memory, never a thread) until the
 * engine answers, and an interrupt withdraws it with LC_CMD_CANCEL
 * (notes/fuse-locks.md 1.5).  An unlock always succeeds and is remembered
 * while the log has not shown it (struct unl); the owners that used POSIX
 * locks here are kept so that a plain close() costs no command (struct
 * po).  A clean stop answers the queued requests ENOLCK (fs_stop_begin).
 *
 * It must never: decide anything about locks itself, reply twice or not
 * at all, reply EINTR without an interrupt, reply ENOSYS to flush or flock
 * (the kernel then disables them for the mount), or let an owner whose
 * hold was lost believe it holds it (lost_gate).
 */
#include "config.h"

#include "fs/fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#define UNL_MAX 4096

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

/* ---- POSIX owner set ---------------------------------------------------------- */

/* (ino, POSIX owner) pairs that may have locks or requests from this
 * node, so a plain close() costs no command. */
struct po {
	struct po *next;
	uint64_t ino, owner;
};

static struct po **po_slot(struct fs *fs, uint64_t ino, uint64_t owner)
{
	struct po **pp;

	if (!fs->pocap)
		return NULL;
	for (pp = &fs->pob[pair_hash(ino, owner, fs->pocap)]; *pp; pp = &(*pp)->next)
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
				size_t j = pair_hash(q->ino, q->owner, cap);

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
	i = pair_hash(ino, owner, fs->pocap);
	p->next = fs->pob[i];
	fs->pob[i] = p;
	fs->pon++;
	return 0;
}

void po_del(struct fs *fs, uint64_t ino, uint64_t owner)
{
	struct po **pp = po_slot(fs, ino, owner), *p;

	if (!pp)
		return;
	p = *pp;
	*pp = p->next;
	free(p);
	fs->pon--;
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
	} else if (status == -EINTR && lk->interrupted) {
		/* Only with a signal pending: without one EINTR leaks
		 * ERESTARTSYS (512), and the table says EWOULDBLOCK. */
		e = EINTR;
	} else {
		e = fs_errno(status, ASK_LOCK);
	}
	lk->answered = 1;
	if (lk->parked)
		fs->m.parked--;
	fuse_reply_err(lk->req, e);
}

/* Remembers an unlock answered 0 without the log (struct unl). */
void unl_add(struct fs *fs, uint64_t ino, uint64_t owner, bool posix,
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
void unl_forget(struct fs *fs, uint64_t ino, uint64_t owner)
{
	for (size_t i = 0; i < fs->nunl;)
		if (fs->unl[i].ino == ino && fs->unl[i].owner == owner)
			fs->unl[i] = fs->unl[--fs->nunl];
		else
			i++;
}

/* Did the owner of this hold unlock all of it (struct unl), or is such
 * an unlock still waiting for its answer (it gets 0: lk_done)? */
bool unl_covers(const struct fs *fs, uint64_t ino, const struct lc_lockinfo *li)
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
	if (!lk->is_lock && fs_errno(c->status, ASK_UNLOCK) == FS_UNL) {
		/* An unlock succeeds (fs_errno, struct unl). */
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
		 * (or a node) there is nothing left to hold (fs_errno). */
		if (!is_lock && fs_errno(rc, ASK_UNLOCK_REFUSED) == FS_UNL) {
			unl_add(fs, cmd->ino, cmd->who.owner, cmd->type == LC_CMD_SETLK,
				cmd->start, cmd->end);
			fuse_reply_err(req, 0);
			return;
		}
		fuse_reply_err(req, fs_errno(rc, ASK_LOCK));
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

/* A getlk()'s own arguments (serve_getlk). */
struct rd_getlk {
	uint64_t ino;
	struct fuse_file_info fi;
	struct flock lock;
};

static void serve_getlk(struct fs *fs, fuse_req_t req, const void *arg, const char *name)
{
	const struct rd_getlk *ra = arg;
	uint64_t ino = ra->ino;
	const struct fuse_file_info *fi = &ra->fi;
	struct flock l = ra->lock, *lock = &l;
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

void fs_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock)
{
	struct rd_getlk ra = { .ino = ino, .fi = *fi, .lock = *lock };
	uint64_t start, end;

	if (lock_type_of(lock->l_type) < 0 || flock_range(lock, &start, &end) < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	read_submit(fs_of(req), req, serve_getlk, &ra, sizeof(ra), NULL);
}

void fs_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
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

void fs_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
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

void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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

/* Frees the lock request structs and the POSIX owner set (see fs_free). */
void lock_free_all(struct fs *fs)
{
	while (fs->lks) {
		struct lk *lk = fs->lks;

		fs->lks = lk->next;
		free(lk);
	}
	for (size_t i = 0; i < fs->pocap; i++)
		while (fs->pob[i]) {
			struct po *p = fs->pob[i];

			fs->pob[i] = p->next;
			free(p);
		}
	free(fs->pob);
}
