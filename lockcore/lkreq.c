/*
 * lockcore/lkreq.c - lock request records: an inode's holder and waiter
 * lists, the counters, the session's list of its requests, the request
 * and owner hashes, granting tokens, and dropping a holder or a waiter.
 * Both lock kinds (flock in locks.c, POSIX ranges in posix.c) build on it.
 *
 * It must never: read a clock (cmd->time_ns is the only time), decide who
 * gets a lock (that is the queue walks' business above it), allocate
 * outside lci_req_new(), or let a record be on a list without being
 * counted, linked to its session and hashed (attach and detach do all
 * of it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lci.h"

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
	/* Unlocked: an expiry that waited for this is due (inode.c). */
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

/* Attaches a POSIX holder split off h right after it (the rtab has room):
 * the list is busy already, and split holders are not in the owner hash. */
void lci_req_attach_after(struct lc_state *s, struct lc_req *h,
			  struct lc_req *p)
{
	struct lc_lk *lk = LCI_LK(h->ip);

	rl_insert_after(&lk->ph, h, p);
	count(s, lk, p, 1);
	sess_link(s, p);
	lci_rinsert(s, p);
}

/* Takes a request out of its list, the counts, its session and the
 * hashes (does not free it). */
void lci_req_detach(struct lc_state *s, struct lc_req *r)
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
void lci_drop_holder(struct lc_ctx *x, struct lc_req *r,
		     enum lci_drop_why why)
{
	struct lc_state *s = x->s;

	if (why != LCI_WHY_MERGE)
		ewma_add(LCI_LK(r->ip), r->since_ns, x->now);
	if (why == LCI_WHY_RELEASE)
		s->releases++;
	else if (why == LCI_WHY_EXPIRE)
		s->expirations++;
	lci_req_detach(s, r);
	free(r);
}

/* Removes a queued request, answering it with `status`. */
void lci_drop_waiter(struct lc_ctx *x, struct lc_req *r, int status)
{
	lci_emit(x, r->origin, r->serial, status, r->ip->ino, 0);
	lci_req_done(x->s, r->origin, r->serial, status, 0);
	lci_req_detach(x->s, r);
	free(r);
}

/* The token of a grant is the log position of the command that made it,
 * shifted left by LC_TOKEN_SHIFT, plus how many grants that same command
 * made before it: strictly increasing because log positions are, and
 * readable (token >> LC_TOKEN_SHIFT is the index).  The counter is the
 * floor, should one command ever make 2^LC_TOKEN_SHIFT grants. */
uint64_t lci_take_token(struct lc_ctx *x, struct lc_lk *lk)
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

/* ---- owners and ranges --------------------------------------------------- */

/* Is the request (session, owner)'s? */
bool lci_same_owner(const struct lc_req *a, uint64_t session,
		    uint64_t owner)
{
	return a->session == session && a->owner == owner;
}

/* Does the request's range meet [start, end]? */
bool lci_overlap(const struct lc_req *a, uint64_t start, uint64_t end)
{
	return a->start <= end && start <= a->end;
}

/* ---- new requests ------------------------------------------------------- */

/* The session a lock command acts for (who.session, else its origin), if
 * it is open: -ENOLCK when not. */
int lci_owner_session(const struct lc_ctx *x, uint64_t *sid)
{
	uint64_t id = x->c->who.session ? x->c->who.session : x->origin;

	if (!id || !lci_sess(x->s, id))
		return -ENOLCK;
	*sid = id;
	return 0;
}

/* A request record for the command, in no list yet (NULL on ENOMEM). */
struct lc_req *lci_req_new(const struct lc_ctx *x, struct lc_inode *ip,
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

/* Queues a new request at the end of its wait queue (room reserved). */
void lci_enqueue(struct lc_ctx *x, struct lc_req *r)
{
	r->waiting = 1;
	r->token = 0;
	r->qseq = x->s->next_qseq++;
	r->since_ns = x->now;
	lci_req_attach(x->s, r);
}
