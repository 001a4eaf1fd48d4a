/*
 * lockcore/locks.c - flock and POSIX byte-range locks: holders, FIFO wait
 * queues without writer starvation, semaphores (slots), fencing tokens,
 * cancel/release/flush, session drop, and the lock queries.
 *
 * Must never: read a clock (cmd->time_ns is the only time), iterate
 * anything whose order depends on pointers or hash layout when that order
 * is visible (grants are emitted in queue order, inodes in ino order), or
 * let flock and POSIX locks conflict with each other.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lci.h"

enum drop_why { WHY_MERGE, WHY_RELEASE, WHY_EXPIRE, WHY_CLOSE };

/* ---- lists and bookkeeping ---------------------------------------------- */

/* Appends to an inode request list. */
void lci_rl_append(struct lc_rlist *l, struct lc_req *r)
{
	r->next = NULL;
	r->prev = l->t;
	if (l->t)
		l->t->next = r;
	else
		l->h = r;
	l->t = r;
}

static void rl_insert_after(struct lc_rlist *l, struct lc_req *a,
			    struct lc_req *r)
{
	r->prev = a;
	r->next = a->next;
	if (a->next)
		a->next->prev = r;
	else
		l->t = r;
	a->next = r;
}

static void rl_remove(struct lc_rlist *l, struct lc_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->h = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->t = r->prev;
	r->prev = r->next = NULL;
}

/* Keeps the state's list of locked inodes in step with the lists. */
static void lk_track(struct lc_state *s, struct lc_lk *lk)
{
	bool busy = lci_lk_busy(lk->ip);

	if (busy && !lk->on_list) {
		lk->lprev = NULL;
		lk->lnext = s->locked;
		if (s->locked)
			s->locked->lprev = lk;
		s->locked = lk;
		lk->on_list = 1;
	} else if (!busy && lk->on_list) {
		if (lk->lprev)
			lk->lprev->lnext = lk->lnext;
		else
			s->locked = lk->lnext;
		if (lk->lnext)
			lk->lnext->lprev = lk->lprev;
		lk->lprev = lk->lnext = NULL;
		lk->on_list = 0;
	}
	/* Unlocked: an expiry that waited for this is due (ns.c). */
	if (!busy)
		lci_expiry_unpark(s, lk->ip);
}

static struct lc_rlist *req_list(struct lc_lk *lk, const struct lc_req *r)
{
	if (r->waiting)
		return r->posix ? &lk->pw : &lk->fw;
	return r->posix ? &lk->ph : &lk->fh;
}

static void count(struct lc_state *s, struct lc_lk *lk,
		  const struct lc_req *r, int d)
{
	uint32_t ud = (uint32_t)d;

	if (r->waiting) {
		s->nwaiters += (uint64_t)(int64_t)d;
		if (r->posix) {
			lk->npx_w += ud;
		} else {
			lk->nfl_w += ud;
			if (r->type == LC_WRLCK)
				lk->nfl_wx += ud;
		}
	} else {
		s->nholders += (uint64_t)(int64_t)d;
		if (r->posix)
			lk->npx_h += ud;
		else if (r->type == LC_WRLCK)
			lk->nfl_ex += ud;
		else
			lk->nfl_sh += ud;
	}
}

static void sess_link(struct lc_state *s, struct lc_req *r)
{
	struct lc_sess *se = lci_sess(s, r->session);

	r->sprev = NULL;
	r->snext = NULL;
	if (!se)
		return;
	r->snext = se->reqs;
	if (se->reqs)
		se->reqs->sprev = r;
	se->reqs = r;
	se->nreqs++;
}

static void sess_unlink(struct lc_state *s, struct lc_req *r)
{
	struct lc_sess *se = lci_sess(s, r->session);

	if (r->sprev)
		r->sprev->snext = r->snext;
	else if (se && se->reqs == r)
		se->reqs = r->snext;
	if (r->snext)
		r->snext->sprev = r->sprev;
	r->sprev = r->snext = NULL;
	if (se)
		se->nreqs--;
}

/* Attaches a filled request at the end of its list (the rtab has room). */
void lci_req_attach(struct lc_state *s, struct lc_req *r)
{
	struct lc_lk *lk = LCI_LK(r->ip);

	lci_rl_append(req_list(lk, r), r);
	count(s, lk, r, 1);
	sess_link(s, r);
	lci_rinsert(s, r);
	if (!r->posix || r->waiting)
		lci_oinsert(s, r);
	lk_track(s, lk);
}

static void req_detach(struct lc_state *s, struct lc_req *r)
{
	struct lc_lk *lk = LCI_LK(r->ip);

	rl_remove(req_list(lk, r), r);
	count(s, lk, r, -1);
	sess_unlink(s, r);
	lci_rremove(s, r);
	if (!r->posix || r->waiting)
		lci_oremove(s, r);
	lk_track(s, lk);
}

static void ewma_add(struct lc_lk *lk, uint64_t since, uint64_t now)
{
	uint64_t ms = now > since ? (now - since) / 1000000u : 0;

	if (ms > 1000000000000ull)
		ms = 1000000000000ull;
	if (!lk->has_ewma) {
		lk->ewma_ms = ms;
		lk->has_ewma = 1;
	} else {
		lk->ewma_ms = (3 * lk->ewma_ms + ms) / 4;
	}
}

/* Removes and frees a holder record. */
static void drop_holder(struct lc_ctx *x, struct lc_req *r, enum drop_why why)
{
	struct lc_state *s = x->s;

	if (why != WHY_MERGE)
		ewma_add(LCI_LK(r->ip), r->since_ns, x->now);
	if (why == WHY_RELEASE)
		s->releases++;
	else if (why == WHY_EXPIRE)
		s->expirations++;
	req_detach(s, r);
	free(r);
}

/* Removes a queued request, answering it with `status`. */
static void drop_waiter(struct lc_ctx *x, struct lc_req *r, int status)
{
	lci_emit(x, r->origin, r->serial, status, r->ip->ino, 0);
	lci_req_done(x->s, r->origin, r->serial, status, 0);
	req_detach(x->s, r);
	free(r);
}

/* The token of a grant is the log position of the command that made it,
 * shifted left by LC_TOKEN_SHIFT, plus how many grants that same command
 * made before it: strictly increasing because log positions are, and
 * readable (token >> LC_TOKEN_SHIFT is the index).  The counter is the
 * floor, should one command ever make 2^LC_TOKEN_SHIFT grants. */
static uint64_t take_token(struct lc_ctx *x, struct lc_lk *lk)
{
	struct lc_state *s = x->s;
	uint64_t t = x->index << LC_TOKEN_SHIFT;

	if (t < s->next_token)
		t = s->next_token;
	s->next_token = t + 1;

	lk->last_token = t;
	s->grants++;
	return t;
}

/* ---- conflicts ------------------------------------------------------------ */

static bool same_owner(const struct lc_req *a, uint64_t session,
		       uint64_t owner)
{
	return a->session == session && a->owner == owner;
}

static bool overlap(const struct lc_req *a, uint64_t start, uint64_t end)
{
	return a->start <= end && start <= a->end;
}

static bool px_conflict(const struct lc_req *h, uint64_t session,
			uint64_t owner, uint8_t type, uint64_t start,
			uint64_t end)
{
	return !same_owner(h, session, owner) && overlap(h, start, end) &&
	       (type == LC_WRLCK || h->type == LC_WRLCK);
}

static const struct lc_req *px_holder_conflict(const struct lc_lk *lk,
					       uint64_t session, uint64_t owner,
					       uint8_t type, uint64_t start,
					       uint64_t end)
{
	for (const struct lc_req *h = lk->ph.h; h; h = h->next)
		if (px_conflict(h, session, owner, type, start, end))
			return h;
	return NULL;
}

/* Does a lock held by (session, owner) stand in the way of waiter w? */
static bool px_waits_for(const struct lc_lk *lk, const struct lc_req *w,
			 uint64_t session, uint64_t owner)
{
	for (const struct lc_req *h = lk->ph.h; h; h = h->next)
		if (same_owner(h, session, owner) &&
		    px_conflict(h, w->session, w->owner, w->type, w->start,
				w->end))
			return true;
	return false;
}

/*
 * Any queued POSIX request before `stop` (NULL: all) in conflict?  FIFO
 * keeps a later request from overtaking an earlier one, except that an
 * owner never queues behind a waiter that is waiting for that owner's own
 * locks: the waiter cannot go first anyway, and queueing would deadlock
 * the two (Linux grants such a re-lock or upgrade at once).
 */
static bool px_queue_conflict(const struct lc_lk *lk, const struct lc_req *stop,
			      uint64_t session, uint64_t owner, uint8_t type,
			      uint64_t start, uint64_t end)
{
	for (const struct lc_req *w = lk->pw.h; w && w != stop; w = w->next)
		if (px_conflict(w, session, owner, type, start, end) &&
		    !px_waits_for(lk, w, session, owner))
			return true;
	return false;
}

static uint32_t slots_of(const struct lc_inode *ip)
{
	return ip->x ? ip->x->slots : 0;
}

/* Could a flock request of this type be granted now, ignoring the queue? */
static bool fl_fits(const struct lc_lk *lk, uint32_t slots, uint8_t type)
{
	if (type == LC_WRLCK)
		return lk->nfl_sh + lk->nfl_ex == 0;
	return lk->nfl_ex == 0 && (!slots || lk->nfl_sh < slots);
}

/* ---- POSIX range arithmetic ---------------------------------------------- */

static bool adjacent(const struct lc_req *h, uint64_t start, uint64_t end)
{
	return (h->end != UINT64_MAX && h->end + 1 == start) ||
	       (end != UINT64_MAX && end + 1 == h->start);
}

/*
 * Sets (type RD/WR, with `rec` the new record) or clears (UNLCK) the range
 * [start, end] for one owner, like Linux posix_lock_file(): same-type
 * neighbours merge into the new record, other records are trimmed or
 * split.  A split consumes *spare; without one the split is skipped and
 * false returned (only possible on ENOMEM in a queue walk).
 */
static bool px_apply(struct lc_ctx *x, struct lc_lk *lk, uint64_t session,
		     uint64_t owner, uint8_t type, uint64_t start,
		     uint64_t end, struct lc_req *rec, struct lc_req **spare)
{
	uint64_t ns = start, ne = end;
	struct lc_req *h, *n;

	for (h = lk->ph.h; h; h = n) {
		n = h->next;
		if (!same_owner(h, session, owner))
			continue;
		if (type != LC_UNLCK && h->type == type &&
		    (overlap(h, start, end) || adjacent(h, start, end))) {
			if (h->start < ns)
				ns = h->start;
			if (h->end > ne)
				ne = h->end;
			drop_holder(x, h, WHY_MERGE);
			continue;
		}
		if (!overlap(h, start, end))
			continue;
		if (h->start < start && h->end > end) {
			struct lc_req *p = spare ? *spare : NULL;

			if (!p)
				return false;
			*spare = NULL;
			*p = *h;
			p->start = end + 1;
			p->hnext = NULL;
			rl_insert_after(&lk->ph, h, p);
			count(x->s, lk, p, 1);
			sess_link(x->s, p);
			lci_rinsert(x->s, p);
			h->end = start - 1;
		} else if (h->start < start) {
			h->end = start - 1;
		} else if (h->end > end) {
			h->start = end + 1;
		} else {
			drop_holder(x, h, WHY_RELEASE);
		}
	}
	if (type != LC_UNLCK) {
		rec->start = ns;
		rec->end = ne;
		rec->waiting = 0;
		rec->qseq = 0;
		rec->since_ns = x->now;
		rec->token = take_token(x, lk);
		lci_req_attach(x->s, rec);
	}
	return true;
}

/* ---- queue walk ---------------------------------------------------------- */

static void grant_flock(struct lc_ctx *x, struct lc_lk *lk, struct lc_req *r)
{
	req_detach(x->s, r);
	r->waiting = 0;
	r->qseq = 0;
	r->since_ns = x->now;
	r->token = take_token(x, lk);
	lci_req_attach(x->s, r);
	lci_emit(x, r->origin, r->serial, 0, lk->ip->ino, r->token);
	lci_req_done(x->s, r->origin, r->serial, 0, r->token);
}

/* Grants queued flock requests from the head while they fit: the first
 * request that cannot go blocks all later ones (a blocked writer conflicts
 * with everything, a blocked reader is blocked by a cause that blocks
 * later readers too). */
static void run_flock(struct lc_ctx *x, struct lc_lk *lk)
{
	uint32_t slots = slots_of(lk->ip);
	struct lc_req *r;

	while ((r = lk->fw.h) && fl_fits(lk, slots, r->type))
		grant_flock(x, lk, r);
}

/* Other queued POSIX requests of (session, owner) on the inode than
 * `self` (found through the owner hash, not by walking the queue). */
static bool px_owner_waits(const struct lc_state *s, const struct lc_lk *lk,
			   uint64_t session, uint64_t owner,
			   const struct lc_req *self)
{
	for (const struct lc_req *r = lci_ofind(s, lk->ip->ino, session, owner,
						  true);
	     r; r = lci_onext(r, true))
		if (r != self)
			return true;
	return false;
}

#define WALK_OWNERS 4

/* Owners granted during one queue walk. */
struct walk {
	uint64_t lo, hi;               /* where something may have got free */
	struct { uint64_t session, owner; } go[WALK_OWNERS];
	unsigned ngo;
	bool many;                     /* more owners than go[] holds */
};

static bool walk_owner(const struct walk *w, const struct lc_req *r)
{
	for (unsigned i = 0; i < w->ngo; i++)
		if (same_owner(r, w->go[i].session, w->go[i].owner))
			return true;
	return w->many;
}

/*
 * May the walk stop at `b`, a waiter that just proved blocked?  Only when
 * no later waiter can have become grantable: b is a writer covering the
 * whole range where something got free (so any later waiter there
 * conflicts with b and stays queued behind it), nobody who could be
 * excused from queueing behind b (b's own owner, the owners b waits for)
 * has another waiter, and no owner granted in this walk has one either
 * (a new grant can excuse its owner's later waiters).
 */
static bool walk_can_stop(const struct lc_state *s, const struct lc_lk *lk,
			  const struct walk *w, const struct lc_req *b)
{
	if (b->type != LC_WRLCK || b->start > w->lo || b->end < w->hi ||
	    w->many)
		return false;
	if (px_owner_waits(s, lk, b->session, b->owner, b))
		return false;
	for (unsigned i = 0; i < w->ngo; i++)
		if (px_owner_waits(s, lk, w->go[i].session, w->go[i].owner,
				   NULL))
			return false;
	for (const struct lc_req *h = lk->ph.h; h; h = h->next)
		if (px_conflict(h, b->session, b->owner, b->type, b->start,
				b->end) &&
		    px_owner_waits(s, lk, h->session, h->owner, NULL))
			return false;
	return true;
}

/* Does granting r turn a write lock of its owner into a read lock (the
 * only way a grant can free anything for requests queued before it)? */
static bool px_downgrades(const struct lc_lk *lk, const struct lc_req *r)
{
	if (r->type != LC_RDLCK)
		return false;
	for (const struct lc_req *h = lk->ph.h; h; h = h->next)
		if (same_owner(h, r->session, r->owner) &&
		    h->type == LC_WRLCK && overlap(h, r->start, r->end))
			return true;
	return false;
}

/* Sets aside what the POSIX grants of a queue walk over n waiters need
 * (a record to split a range with, room in the request hash), before the
 * command changes anything: -ENOMEM then refuses the command on this
 * replica as a whole, instead of putting a grant off here only. */
int lci_px_reserve(struct lc_state *s, size_t n)
{
	if (n > SIZE_MAX / 2 - 2 || lci_rtab_reserve(s, 2 * n + 2))
		return -ENOMEM;
	while (s->nspares < n) {
		struct lc_req *r = malloc(sizeof(*r));

		if (!r)
			return -ENOMEM;
		r->next = s->spares;
		s->spares = r;
		s->nspares++;
	}
	return 0;
}

void lci_px_spares_free(struct lc_state *s)
{
	while (s->spares) {
		struct lc_req *r = s->spares;

		s->spares = r->next;
		free(r);
	}
	s->nspares = 0;
}

static struct lc_req *spare_take(struct lc_state *s)
{
	struct lc_req *r = s->spares;

	if (!r)
		return malloc(sizeof(*r));
	s->spares = r->next;
	s->nspares--;
	return r;
}

static void spare_put(struct lc_state *s, struct lc_req *r)
{
	if (!r)
		return;
	r->next = s->spares;
	s->spares = r;
	s->nspares++;
}

/*
 * Grants, in queue order, every queued POSIX request that conflicts
 * neither with holders nor with an earlier request still queued, after a
 * change that may have freed something within [lo, hi] (holders released
 * or downgraded, queued requests withdrawn there).
 *
 * Before the change no queued request could be granted (every walk ends
 * that way), so a request that overlaps nothing that changed, and whose
 * owner got nothing in this walk, is still blocked and is skipped without
 * looking at holders or the queue; and the walk stops early when
 * walk_can_stop() proves the rest blocked.  A failed allocation leaves
 * the queue unsettled: the next walk then looks at everything.
 */
static void run_posix(struct lc_ctx *x, struct lc_lk *lk, uint64_t lo,
		      uint64_t hi)
{
	struct walk w = { .lo = lo, .hi = hi };
	bool full = lk->px_full;
	struct lc_req *r, *n;

	if (lo > hi)
		return;
	lk->px_full = 0;
	for (r = lk->pw.h; r; r = n) {
		struct lc_req *spare;
		bool down;

		n = r->next;
		if (!full && !overlap(r, w.lo, w.hi) && !walk_owner(&w, r))
			continue;
		if (px_holder_conflict(lk, r->session, r->owner, r->type,
				       r->start, r->end) ||
		    px_queue_conflict(lk, r, r->session, r->owner, r->type,
				      r->start, r->end)) {
			if (!full && walk_can_stop(x->s, lk, &w, r))
				break;
			continue;
		}
		/* Set aside by the command (lci_px_reserve), so neither
		 * fails here but on a caller that did not. */
		spare = spare_take(x->s);
		if (!spare || lci_rtab_reserve(x->s, 2)) {
			spare_put(x->s, spare);
			lk->px_full = 1;
			break;          /* ENOMEM: grant later */
		}
		down = px_downgrades(lk, r);
		req_detach(x->s, r);
		px_apply(x, lk, r->session, r->owner, r->type, r->start,
			 r->end, r, &spare);
		spare_put(x->s, spare);
		lci_emit(x, r->origin, r->serial, 0, lk->ip->ino, r->token);
		lci_req_done(x->s, r->origin, r->serial, 0, r->token);
		/* r left the queue: later requests it held back may go. */
		if (r->start < w.lo)
			w.lo = r->start;
		if (r->end > w.hi)
			w.hi = r->end;
		if (!walk_owner(&w, r)) {
			w.go[w.ngo].session = r->session;
			w.go[w.ngo].owner = r->owner;
			w.ngo++;
			w.many = w.ngo == WALK_OWNERS;
		}
		/* A downgrade may let earlier readers in: start over. */
		if (down)
			n = lk->pw.h;
	}
}

/* Settles both queues of an inode after any change (slots, session end):
 * the POSIX queue is looked at as a whole. */
int lci_run_queue(struct lc_ctx *x, struct lc_inode *ip)
{
	struct lc_lk *lk = LCI_LK(ip);

	if (!lk)
		return 0;
	run_flock(x, lk);
	lk->px_full = 1;
	run_posix(x, lk, 0, LC_OFF_MAX);
	return 0;
}

/* Settles the flock queue only (flock and POSIX never conflict). */
int lci_run_flock(struct lc_ctx *x, struct lc_inode *ip)
{
	if (LCI_LK(ip))
		run_flock(x, LCI_LK(ip));
	return 0;
}

/* ---- commands ---------------------------------------------------------- */

static int owner_session(const struct lc_ctx *x, uint64_t *sid)
{
	uint64_t id = x->c->who.session ? x->c->who.session : x->origin;

	if (!id || !lci_sess(x->s, id))
		return -ENOLCK;
	*sid = id;
	return 0;
}

static struct lc_req *req_new(const struct lc_ctx *x, struct lc_inode *ip,
			      uint64_t sid, bool posix)
{
	const struct lc_cmd *c = x->c;
	struct lc_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->ip = ip;
	r->origin = c->origin;
	r->serial = c->serial;
	r->session = sid;
	r->owner = c->who.owner;
	r->pid = c->who.pid;
	r->posix = posix;
	r->type = c->lock_type;
	r->start = posix ? c->start : 0;
	r->end = posix ? c->end : LC_OFF_MAX;
	r->since_ns = x->now;
	return r;
}

static void enqueue(struct lc_ctx *x, struct lc_req *r)
{
	r->waiting = 1;
	r->token = 0;
	r->qseq = x->s->next_qseq++;
	r->since_ns = x->now;
	lci_req_attach(x->s, r);
}

/* An owner's flock holder (waiting = false) or waiter on an inode. */
static struct lc_req *find_own(const struct lc_state *s,
			       const struct lc_inode *ip, bool waiting,
			       uint64_t sid, uint64_t owner)
{
	struct lc_req *r = lci_ofind(s, ip->ino, sid, owner, false);

	return r && r->waiting == waiting ? r : NULL;
}

static int do_flock(struct lc_ctx *x, struct lc_inode *ip, uint64_t sid,
		    uint64_t *token)
{
	const struct lc_cmd *c = x->c;
	struct lc_lk *lk = LCI_LK(ip);
	struct lc_req *h, *w, *r;

	h = find_own(x->s, ip, false, sid, c->who.owner);
	w = find_own(x->s, ip, true, sid, c->who.owner);
	if (c->lock_type == LC_UNLCK) {
		if (h)
			drop_holder(x, h, WHY_RELEASE);
		return lci_run_flock(x, ip);
	}
	if (h && h->type == c->lock_type) {
		*token = h->token;
		return 0;
	}
	if (lci_rtab_reserve(x->s, 1) || lci_otab_reserve(x->s, 1))
		return -ENOMEM;
	r = req_new(x, ip, sid, false);
	if (!r)
		return -ENOMEM;
	if (w)
		drop_waiter(x, w, -EINTR);
	if (h) {
		drop_holder(x, h, WHY_RELEASE);
		lci_run_flock(x, ip);
	} else if (w) {
		lci_run_flock(x, ip);
	}
	if (fl_fits(lk, slots_of(ip), r->type) &&
	    (r->type == LC_WRLCK ? !lk->nfl_w : !lk->nfl_wx)) {
		r->token = take_token(x, lk);
		r->since_ns = x->now;
		lci_req_attach(x->s, r);
		*token = r->token;
		return 0;
	}
	if (!(c->flags & LC_LK_WAIT)) {
		free(r);
		return -EAGAIN;
	}
	enqueue(x, r);
	return LC_PENDING;
}

static int do_setlk(struct lc_ctx *x, struct lc_inode *ip, uint64_t sid,
		    uint64_t *token)
{
	const struct lc_cmd *c = x->c;
	struct lc_lk *lk = LCI_LK(ip);
	struct lc_req *r, *spare;

	if (lci_rtab_reserve(x->s, 2) || lci_otab_reserve(x->s, 1) ||
	    lci_px_reserve(x->s, lk->npx_w))
		return -ENOMEM;
	r = req_new(x, ip, sid, true);
	spare = req_new(x, ip, sid, true);
	if (!r || !spare) {
		free(r);
		free(spare);
		return -ENOMEM;
	}
	if (c->lock_type == LC_UNLCK) {
		px_apply(x, lk, sid, c->who.owner, LC_UNLCK, c->start, c->end,
			 NULL, &spare);
		free(r);
		free(spare);
		run_posix(x, lk, c->start, c->end);
		return 0;
	}
	if (!px_holder_conflict(lk, sid, c->who.owner, c->lock_type, c->start,
				c->end) &&
	    !px_queue_conflict(lk, NULL, sid, c->who.owner, c->lock_type,
			       c->start, c->end)) {
		bool down = px_downgrades(lk, r);

		px_apply(x, lk, sid, c->who.owner, c->lock_type, c->start,
			 c->end, r, &spare);
		free(spare);
		*token = r->token;
		/* Only a downgrade frees anything for the queue. */
		if (down)
			run_posix(x, lk, c->start, c->end);
		return 0;
	}
	free(spare);
	if (!(c->flags & LC_LK_WAIT)) {
		free(r);
		return -EAGAIN;
	}
	enqueue(x, r);
	return LC_PENDING;
}

static int cmp_qseq(const void *a, const void *b)
{
	uint64_t x = (*(struct lc_req *const *)a)->qseq;
	uint64_t y = (*(struct lc_req *const *)b)->qseq;

	return x < y ? -1 : x > y;
}

static int do_release(struct lc_ctx *x, struct lc_inode *ip, uint64_t sid,
		      bool posix)
{
	struct lc_lk *lk = LCI_LK(ip);
	uint64_t owner = x->c->who.owner, lo = LC_OFF_MAX, hi = 0;
	struct lc_req *r, *n, *one = NULL, **wv = NULL;
	size_t nw;

	if (!posix) {
		if ((r = find_own(x->s, ip, true, sid, owner))) {
			x->s->interrupts++;
			drop_waiter(x, r, -EINTR);
		}
		if ((r = find_own(x->s, ip, false, sid, owner)))
			drop_holder(x, r, WHY_RELEASE);
		return lci_run_flock(x, ip);
	}
	if (lci_px_reserve(x->s, lk->npx_w))
		return -ENOMEM;
	/* The owner's queued requests, found by owner rather than by a walk
	 * of the queue, and answered in queue order (the hash chain's order
	 * is not something any node may let show). */
	nw = 0;
	for (r = lci_ofind(x->s, ip->ino, sid, owner, true); r;
	     r = lci_onext(r, true))
		nw++;
	if (nw > 1) {
		wv = malloc(nw * sizeof(*wv));
		if (!wv)
			return -ENOMEM;
		nw = 0;
		for (r = lci_ofind(x->s, ip->ino, sid, owner, true); r;
		     r = lci_onext(r, true))
			wv[nw++] = r;
		qsort(wv, nw, sizeof(*wv), cmp_qseq);
	} else if (nw) {
		wv = &one;
		one = lci_ofind(x->s, ip->ino, sid, owner, true);
	}
	for (size_t i = 0; i < nw; i++) {
		r = wv[i];
		lo = r->start < lo ? r->start : lo;
		hi = r->end > hi ? r->end : hi;
		x->s->interrupts++;
		drop_waiter(x, r, -EINTR);
	}
	if (wv != &one)
		free(wv);
	for (r = lk->ph.h; r; r = n) {
		n = r->next;
		if (same_owner(r, sid, owner)) {
			lo = r->start < lo ? r->start : lo;
			hi = r->end > hi ? r->end : hi;
			drop_holder(x, r, WHY_RELEASE);
		}
	}
	run_posix(x, lk, lo, hi);
	return 0;
}

/* FLOCK, SETLK, RELEASE and FLUSH. */
int lci_lock_apply(struct lc_ctx *x, uint64_t *ino, uint64_t *token)
{
	const struct lc_cmd *c = x->c;
	struct lc_inode *ip = lci_iget(x->s, c->ino);
	bool rel = c->type == LC_CMD_RELEASE || c->type == LC_CMD_FLUSH;
	uint64_t sid;
	int r;

	if (!ip)
		return rel ? 0 : -ENOENT;
	if (ip->kind != LC_REG)
		return rel ? 0 : -EINVAL;
	/* The handle closes: its pin goes, whatever happens to locks. */
	if (c->type == LC_CMD_RELEASE && (c->flags & LC_RELEASE_UNPIN))
		lci_pin_put(x->s, ip, x->origin);
	r = owner_session(x, &sid);
	if (r || (rel && !LCI_LK(ip))) {
		if (rel)
			lci_maybe_free(x->s, ip);
		return rel ? 0 : r;
	}
	if (!lci_lk_get(x->s, ip))
		return -ENOMEM;
	switch (c->type) {
	case LC_CMD_FLOCK:
		r = do_flock(x, ip, sid, token);
		break;
	case LC_CMD_SETLK:
		r = do_setlk(x, ip, sid, token);
		break;
	default:
		r = do_release(x, ip, sid, c->type == LC_CMD_FLUSH);
		break;
	}
	if (r != -ENOMEM)
		lci_maybe_free(x->s, ip);
	(void)ino;
	return r;
}

/* CANCEL; see lc.h. */
int lci_cancel(struct lc_ctx *x, uint64_t *ino)
{
	struct lc_req *t;
	struct lc_inode *ip;
	uint64_t lo, hi;
	bool posix;

	if (!x->origin)
		return -ENOENT;
	t = lci_rfind(x->s, x->origin, x->c->target_serial);
	if (!t)
		return -ENOENT;
	ip = t->ip;
	*ino = ip->ino;
	if (t->posix && !t->waiting)
		return -ENOENT;
	posix = t->posix;
	if (posix && lci_px_reserve(x->s, LCI_LK(ip)->npx_w))
		return -ENOMEM;
	lo = t->start;
	hi = t->end;
	if (t->waiting) {
		x->s->interrupts++;
		drop_waiter(x, t, -EINTR);
	} else {
		lci_req_done(x->s, t->origin, t->serial, -EINTR, 0);
		drop_holder(x, t, WHY_RELEASE);
	}
	if (posix)
		run_posix(x, LCI_LK(ip), lo, hi);
	else
		lci_run_flock(x, ip);
	lci_maybe_free(x->s, ip);
	return 0;
}

static int cmp_req(const void *a, const void *b)
{
	const struct lc_req *x = *(struct lc_req *const *)a;
	const struct lc_req *y = *(struct lc_req *const *)b;
	uint64_t kx, ky;

	if (x->ip->ino != y->ip->ino)
		return x->ip->ino < y->ip->ino ? -1 : 1;
	if (x->waiting != y->waiting)
		return x->waiting < y->waiting ? -1 : 1;
	kx = x->waiting ? x->qseq : x->token;
	ky = y->waiting ? y->qseq : y->token;
	if (kx != ky)
		return kx < ky ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Session end: drop its locks and waiters (-ENOLCK), remove its ephemeral
 * files, then re-run the affected queues in inode order. */
int lci_session_drop(struct lc_ctx *x, struct lc_sess *se)
{
	struct lc_state *s = x->s;
	struct lc_req **rv = NULL;
	uint64_t *inos = NULL;
	size_t n = 0, ni = 0, neph, npx;
	struct lc_req *r;

	/* Heap room for every ephemeral file that may outlive it locked. */
	neph = 0;
	for (struct lc_inode *e = se->eph; e; e = e->x->enext)
		neph += lci_lk_busy(e);
	if (lci_heap_reserve_n(s, neph))
		return -ENOMEM;
	if (se->nreqs) {
		rv = malloc(se->nreqs * sizeof(*rv));
		inos = malloc(se->nreqs * sizeof(*inos));
		if (!rv || !inos) {
			free(rv);
			free(inos);
			return -ENOMEM;
		}
		for (r = se->reqs; r && n < se->nreqs; r = r->snext)
			rv[n++] = r;
		qsort(rv, n, sizeof(*rv), cmp_req);
	}
	/* What the walks of the queues it leaves may grant. */
	npx = 0;
	for (size_t i = 0; i < n; i++)
		if (!i || rv[i - 1]->ip != rv[i]->ip)
			npx += LCI_LK(rv[i]->ip)->npx_w;
	if (lci_px_reserve(s, npx)) {
		free(rv);
		free(inos);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		r = rv[i];
		if (!ni || inos[ni - 1] != r->ip->ino)
			inos[ni++] = r->ip->ino;
		if (r->waiting)
			drop_waiter(x, r, -ENOLCK);
		else
			drop_holder(x, r, x->origin ? WHY_CLOSE : WHY_EXPIRE);
	}
	free(rv);
	/* Its ephemeral files go, but not a name whose lock another session
	 * still holds or waits for (issue 9): that one goes at the first
	 * TICK after its lock state empties. */
	while (se->eph) {
		if (lci_lk_busy(se->eph))
			lci_eph_orphan(s, se->eph);
		else
			lci_remove_all_names(s, se->eph, (int64_t)x->now);
	}
	/* Its open handles close: unlinked files it kept alive go. */
	while (se->pins) {
		struct lc_inode *ip = se->pins->ip;

		lci_pin_drop(s, se->pins);
		lci_maybe_free(s, ip);
	}
	for (size_t i = 0; i < ni; i++) {
		struct lc_inode *ip = lci_iget(s, inos[i]);

		if (!ip)
			continue;
		lci_run_queue(x, ip);
		lci_maybe_free(s, ip);
	}
	free(inos);
	return 0;
}

/* ---- queries ------------------------------------------------------------ */

static void info(const struct lc_req *r, struct lc_lockinfo *li)
{
	memset(li, 0, sizeof(*li));
	li->who.session = r->session;
	li->who.owner = r->owner;
	li->who.pid = r->pid;
	li->posix = r->posix;
	li->type = r->type;
	li->start = r->start;
	li->end = r->end;
	li->token = r->waiting ? 0 : r->token;
	li->since_ns = r->since_ns;
	li->serial = r->serial;
}

/* Reports the records of two lists, flock and POSIX, merged into one
 * order: by grant token for holders, by queue position for waiters.
 * Returns non-zero when fn asked to stop. */
static int walk_merged(const struct lc_req *a, const struct lc_req *b,
		       bool holders,
		       int (*fn)(void *ctx, const struct lc_lockinfo *), void *ctx)
{
	struct lc_lockinfo li;

	while (a || b) {
		const struct lc_req *r;

		if (a && (!b || (holders ? a->token < b->token
					 : a->qseq < b->qseq))) {
			r = a;
			a = a->next;
		} else {
			r = b;
			b = b->next;
		}
		info(r, &li);
		if (fn && fn(ctx, &li))
			return 1;
	}
	return 0;
}

/* Holders in grant order, then waiters in queue order. */
int lc_locks(const struct lc_state *s, uint64_t ino,
	     int (*holder)(void *ctx, const struct lc_lockinfo *),
	     int (*waiter)(void *ctx, const struct lc_lockinfo *), void *ctx)
{
	struct lc_inode *ip = s ? lci_iget(s, ino) : NULL;
	const struct lc_lk *lk;

	if (!ip)
		return -ENOENT;
	lk = LCI_LK(ip);
	if (!lk)
		return 0;
	if (walk_merged(lk->fh.h, lk->ph.h, true, holder, ctx))
		return 0;
	walk_merged(lk->fw.h, lk->pw.h, false, waiter, ctx);
	return 0;
}

/* Summary with the estimated wait of a new exclusive flock request. */
int lc_locksum(const struct lc_state *s, uint64_t ino, uint64_t now_ns,
	       struct lc_locksum *sum)
{
	struct lc_inode *ip = s ? lci_iget(s, ino) : NULL;
	const struct lc_lk *lk;
	uint64_t per, eta, elapsed = 0, oldest = UINT64_MAX;
	bool wr = false;

	if (!ip)
		return -ENOENT;
	memset(sum, 0, sizeof(*sum));
	lk = LCI_LK(ip);
	if (!lk)
		return 0;
	sum->holders = lk->nfl_sh + lk->nfl_ex + lk->npx_h;
	sum->waiters = lk->nfl_w + lk->npx_w;
	sum->last_token = lk->last_token;
	for (const struct lc_req *r = lk->ph.h; r; r = r->next)
		wr |= r->type == LC_WRLCK;
	if (lk->nfl_ex || wr)
		sum->mode = LC_WRLCK;
	else if (sum->holders)
		sum->mode = LC_RDLCK;
	if (!lk->nfl_sh && !lk->nfl_ex && !lk->nfl_w)
		return 0;
	for (const struct lc_req *r = lk->fh.h; r; r = r->next)
		if (r->since_ns < oldest)
			oldest = r->since_ns;
	if (oldest != UINT64_MAX && now_ns > oldest)
		elapsed = (now_ns - oldest) / 1000000u;
	per = lk->has_ewma ? lk->ewma_ms : 1000;
	/* Saturate: hold times are clamped to ~31 years, but times a queue
	 * length that could still overflow. */
	eta = per && (uint64_t)lk->nfl_w + 1 > UINT64_MAX / per
		      ? UINT64_MAX
		      : ((uint64_t)lk->nfl_w + 1) * per;
	sum->eta_ms = eta > elapsed ? eta - elapsed : 0;
	return 0;
}

/* F_GETLK: first POSIX holder in grant order that conflicts. */
int lc_getlk(const struct lc_state *s, uint64_t ino, const struct lc_owner *who,
	     uint8_t type, uint64_t start, uint64_t end, struct lc_lockinfo *out)
{
	struct lc_inode *ip = s ? lci_iget(s, ino) : NULL;
	const struct lc_req *h;

	if (!ip)
		return -ENOENT;
	if (!who || type > LC_WRLCK || start > end)
		return -EINVAL;
	if (type == LC_UNLCK || !LCI_LK(ip))
		return -ENOENT;
	h = px_holder_conflict(LCI_LK(ip), who->session, who->owner, type, start,
			       end);
	if (!h)
		return -ENOENT;
	if (out)
		info(h, out);
	return 0;
}

/* Token of who's grant on the file, else the file's latest token. */
uint64_t lc_token(const struct lc_state *s, uint64_t ino,
		  const struct lc_owner *who)
{
	struct lc_inode *ip = s ? lci_iget(s, ino) : NULL;
	const struct lc_req *r;
	uint64_t best = 0;

	if (!ip || !LCI_LK(ip))
		return 0;
	if (who && who->session) {
		r = find_own(s, ip, false, who->session, who->owner);
		if (r)
			return r->token;
		for (r = LCI_LK(ip)->ph.h; r; r = r->next)
			if (same_owner(r, who->session, who->owner) &&
			    r->token > best)
				best = r->token;
		if (best)
			return best;
	}
	return LCI_LK(ip)->last_token;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Locked inodes in inode order. */
int lc_foreach_locked(const struct lc_state *s,
		      int (*fn)(void *ctx, uint64_t ino), void *ctx)
{
	size_t n = 0, k = 0;
	uint64_t *v;

	if (!s)
		return -ENOENT;
	for (const struct lc_lk *lk = s->locked; lk; lk = lk->lnext)
		n++;
	if (!n)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (const struct lc_lk *lk = s->locked; lk; lk = lk->lnext)
		v[k++] = lk->ip->ino;
	qsort(v, n, sizeof(*v), cmp_u64);
	for (size_t i = 0; i < n; i++)
		if (fn(ctx, v[i]))
			break;
	free(v);
	return 0;
}
