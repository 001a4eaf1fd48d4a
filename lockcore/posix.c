/*
 * lockcore/posix.c - POSIX byte-range locks: conflicts between ranges,
 * setting and clearing a range for one owner (merge, trim, split, like
 * Linux posix_lock_file()), the FIFO queue walk that grants waiters
 * without letting a later request overtake an earlier one, and SETLK.
 *
 * It must never: read a clock (cmd->time_ns is the only time), let POSIX
 * and flock locks conflict with each other, grant out of queue order, or
 * put off a grant for want of memory on one replica only (what a walk
 * needs is set aside by lci_px_reserve() before a command changes
 * anything).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lci.h"

/* ---- conflicts ------------------------------------------------------------ */

static bool px_conflict(const struct lc_req *h, uint64_t session,
			uint64_t owner, uint8_t type, uint64_t start,
			uint64_t end)
{
	return !lci_same_owner(h, session, owner) &&
	       lci_overlap(h, start, end) &&
	       (type == LC_WRLCK || h->type == LC_WRLCK);
}

/* The first POSIX holder in conflict with the range, or NULL. */
const struct lc_req *lci_px_holder_conflict(const struct lc_lk *lk,
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
		if (lci_same_owner(h, session, owner) &&
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
		if (!lci_same_owner(h, session, owner))
			continue;
		if (type != LC_UNLCK && h->type == type &&
		    (lci_overlap(h, start, end) || adjacent(h, start, end))) {
			if (h->start < ns)
				ns = h->start;
			if (h->end > ne)
				ne = h->end;
			lci_drop_holder(x, h, LCI_WHY_MERGE);
			continue;
		}
		if (!lci_overlap(h, start, end))
			continue;
		if (h->start < start && h->end > end) {
			struct lc_req *p = spare ? *spare : NULL;

			if (!p)
				return false;
			*spare = NULL;
			*p = *h;
			p->start = end + 1;
			p->hnext = NULL;
			lci_req_attach_after(x->s, h, p);
			h->end = start - 1;
		} else if (h->start < start) {
			h->end = start - 1;
		} else if (h->end > end) {
			h->start = end + 1;
		} else {
			lci_drop_holder(x, h, LCI_WHY_RELEASE);
		}
	}
	if (type != LC_UNLCK) {
		rec->start = ns;
		rec->end = ne;
		rec->waiting = 0;
		rec->qseq = 0;
		rec->since_ns = x->now;
		rec->token = lci_take_token(x, lk);
		lci_req_attach(x->s, rec);
	}
	return true;
}

/* ---- queue walk ---------------------------------------------------------- */

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
		if (lci_same_owner(r, w->go[i].session, w->go[i].owner))
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
		if (lci_same_owner(h, r->session, r->owner) &&
		    h->type == LC_WRLCK && lci_overlap(h, r->start, r->end))
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
void lci_run_posix(struct lc_ctx *x, struct lc_lk *lk, uint64_t lo,
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
		if (!full && !lci_overlap(r, w.lo, w.hi) && !walk_owner(&w, r))
			continue;
		if (lci_px_holder_conflict(lk, r->session, r->owner, r->type,
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
		lci_req_detach(x->s, r);
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

/* ---- command ------------------------------------------------------------ */

/* SETLK: set or clear a range now, or queue for it (LC_LK_WAIT). */
int lci_setlk(struct lc_ctx *x, struct lc_inode *ip, uint64_t sid,
	      uint64_t *token)
{
	const struct lc_cmd *c = x->c;
	struct lc_lk *lk = LCI_LK(ip);
	struct lc_req *r, *spare;

	if (lci_rtab_reserve(x->s, 2) || lci_otab_reserve(x->s, 1) ||
	    lci_px_reserve(x->s, lk->npx_w))
		return -ENOMEM;
	r = lci_req_new(x, ip, sid, true);
	spare = lci_req_new(x, ip, sid, true);
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
		lci_run_posix(x, lk, c->start, c->end);
		return 0;
	}
	if (!lci_px_holder_conflict(lk, sid, c->who.owner, c->lock_type,
				    c->start, c->end) &&
	    !px_queue_conflict(lk, NULL, sid, c->who.owner, c->lock_type,
			       c->start, c->end)) {
		bool down = px_downgrades(lk, r);

		px_apply(x, lk, sid, c->who.owner, c->lock_type, c->start,
			 c->end, r, &spare);
		free(spare);
		*token = r->token;
		/* Only a downgrade frees anything for the queue. */
		if (down)
			lci_run_posix(x, lk, c->start, c->end);
		return 0;
	}
	free(spare);
	if (!(c->flags & LC_LK_WAIT)) {
		free(r);
		return -EAGAIN;
	}
	lci_enqueue(x, r);
	return LC_PENDING;
}
