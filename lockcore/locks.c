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

/* Lock state of an inode, created on first use (NULL on ENOMEM). */
struct lc_lk *lci_lk_get(struct lc_state *s, struct lc_inode *ip)
{
	(void)s;
	if (!ip->lk) {
		ip->lk = calloc(1, sizeof(*ip->lk));
		if (ip->lk)
			ip->lk->ip = ip;
	}
	return ip->lk;
}

/* Has the inode any holder or waiter? */
bool lci_lk_busy(const struct lc_inode *ip)
{
	const struct lc_lk *lk = ip->lk;

	return lk && (lk->fh.h || lk->ph.h || lk->fw.h || lk->pw.h);
}

/* Frees an inode's lock state and requests without any bookkeeping: only
 * for teardown, or when the lock state is idle. */
void lci_lk_free(struct lc_state *s, struct lc_inode *ip)
{
	struct lc_lk *lk = ip->lk;
	struct lc_rlist *ls[4];

	(void)s;
	if (!lk)
		return;
	ls[0] = &lk->fh;
	ls[1] = &lk->ph;
	ls[2] = &lk->fw;
	ls[3] = &lk->pw;
	for (int i = 0; i < 4; i++) {
		struct lc_req *r = ls[i]->h;

		while (r) {
			struct lc_req *n = r->next;

			free(r);
			r = n;
		}
	}
	free(lk);
	ip->lk = NULL;
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
	struct lc_lk *lk = r->ip->lk;

	lci_rl_append(req_list(lk, r), r);
	count(s, lk, r, 1);
	sess_link(s, r);
	lci_rinsert(s, r);
	if (!r->posix)
		lci_oinsert(s, r);
	lk_track(s, lk);
}

static void req_detach(struct lc_state *s, struct lc_req *r)
{
	struct lc_lk *lk = r->ip->lk;

	rl_remove(req_list(lk, r), r);
	count(s, lk, r, -1);
	sess_unlink(s, r);
	lci_rremove(s, r);
	if (!r->posix)
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
		ewma_add(r->ip->lk, r->since_ns, x->now);
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

static uint64_t take_token(struct lc_state *s, struct lc_lk *lk)
{
	uint64_t t = s->next_token++;

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

/* Any queued POSIX request before `stop` (NULL: all) in conflict? */
static bool px_queue_conflict(const struct lc_lk *lk, const struct lc_req *stop,
			      uint64_t session, uint64_t owner, uint8_t type,
			      uint64_t start, uint64_t end)
{
	for (const struct lc_req *w = lk->pw.h; w && w != stop; w = w->next)
		if (px_conflict(w, session, owner, type, start, end))
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
		rec->token = take_token(x->s, lk);
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
	r->token = take_token(x->s, lk);
	lci_req_attach(x->s, r);
	lci_emit(x, r->origin, r->serial, 0, lk->ip->ino, r->token);
	lci_req_done(x->s, r->origin, r->serial, 0, r->token);
}

/* Grants, in queue order, every queued request that conflicts neither
 * with holders nor with an earlier request still queued. */
int lci_run_queue(struct lc_ctx *x, struct lc_inode *ip)
{
	struct lc_lk *lk = ip->lk;
	uint32_t slots = slots_of(ip);
	struct lc_req *r, *n;

	if (!lk)
		return 0;
	/* flock: the first request that cannot go blocks all later ones (a
	 * blocked writer conflicts with everything, a blocked reader is
	 * blocked by a cause that blocks later readers too). */
	while ((r = lk->fw.h) && fl_fits(lk, slots, r->type))
		grant_flock(x, lk, r);
	for (r = lk->pw.h; r; r = n) {
		struct lc_req *spare = NULL;

		n = r->next;
		if (px_holder_conflict(lk, r->session, r->owner, r->type,
				       r->start, r->end) ||
		    px_queue_conflict(lk, r, r->session, r->owner, r->type,
				      r->start, r->end))
			continue;
		spare = malloc(sizeof(*spare));
		if (!spare || lci_rtab_reserve(x->s, 2)) {
			free(spare);
			break;          /* ENOMEM: grant later */
		}
		req_detach(x->s, r);
		px_apply(x, lk, r->session, r->owner, r->type, r->start,
			 r->end, r, &spare);
		free(spare);
		lci_emit(x, r->origin, r->serial, 0, ip->ino, r->token);
		lci_req_done(x->s, r->origin, r->serial, 0, r->token);
		/* Merging may have freed the record `n` pointed at. */
		n = lk->pw.h;
	}
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
	struct lc_req *r = lci_ofind(s, ip->ino, sid, owner);

	return r && r->waiting == waiting ? r : NULL;
}

static int do_flock(struct lc_ctx *x, struct lc_inode *ip, uint64_t sid,
		    uint64_t *token)
{
	const struct lc_cmd *c = x->c;
	struct lc_lk *lk = ip->lk;
	struct lc_req *h, *w, *r;

	h = find_own(x->s, ip, false, sid, c->who.owner);
	w = find_own(x->s, ip, true, sid, c->who.owner);
	if (c->lock_type == LC_UNLCK) {
		if (h)
			drop_holder(x, h, WHY_RELEASE);
		return lci_run_queue(x, ip);
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
		lci_run_queue(x, ip);
	} else if (w) {
		lci_run_queue(x, ip);
	}
	if (fl_fits(lk, slots_of(ip), r->type) &&
	    (r->type == LC_WRLCK ? !lk->nfl_w : !lk->nfl_wx)) {
		r->token = take_token(x->s, lk);
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
	struct lc_lk *lk = ip->lk;
	struct lc_req *r, *spare;

	if (lci_rtab_reserve(x->s, 2))
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
		return lci_run_queue(x, ip);
	}
	if (!px_holder_conflict(lk, sid, c->who.owner, c->lock_type, c->start,
				c->end) &&
	    !px_queue_conflict(lk, NULL, sid, c->who.owner, c->lock_type,
			       c->start, c->end)) {
		px_apply(x, lk, sid, c->who.owner, c->lock_type, c->start,
			 c->end, r, &spare);
		free(spare);
		*token = r->token;
		/* A downgrade or a shrink may let waiters in. */
		lci_run_queue(x, ip);
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

static int do_release(struct lc_ctx *x, struct lc_inode *ip, uint64_t sid,
		      bool posix)
{
	struct lc_lk *lk = ip->lk;
	uint64_t owner = x->c->who.owner;
	struct lc_req *r, *n;

	if (!posix) {
		if ((r = find_own(x->s, ip, true, sid, owner))) {
			x->s->interrupts++;
			drop_waiter(x, r, -EINTR);
		}
		if ((r = find_own(x->s, ip, false, sid, owner)))
			drop_holder(x, r, WHY_RELEASE);
	} else {
		for (r = lk->pw.h; r; r = n) {
			n = r->next;
			if (same_owner(r, sid, owner)) {
				x->s->interrupts++;
				drop_waiter(x, r, -EINTR);
			}
		}
		for (r = lk->ph.h; r; r = n) {
			n = r->next;
			if (same_owner(r, sid, owner))
				drop_holder(x, r, WHY_RELEASE);
		}
	}
	return lci_run_queue(x, ip);
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
	r = owner_session(x, &sid);
	if (r)
		return rel ? 0 : r;
	if (rel && !ip->lk)
		return 0;
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

	if (!x->origin)
		return -ENOENT;
	t = lci_rfind(x->s, x->origin, x->c->target_serial);
	if (!t)
		return -ENOENT;
	ip = t->ip;
	*ino = ip->ino;
	if (t->waiting) {
		x->s->interrupts++;
		drop_waiter(x, t, -EINTR);
	} else if (!t->posix) {
		lci_req_done(x->s, t->origin, t->serial, -EINTR, 0);
		drop_holder(x, t, WHY_RELEASE);
	} else {
		return -ENOENT;
	}
	lci_run_queue(x, ip);
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
	size_t n = 0, ni = 0;
	struct lc_req *r;

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
	while (se->eph)
		lci_remove_all_names(s, se->eph, (int64_t)x->now);
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

/* Holders in grant order, then waiters in queue order. */
int lc_locks(const struct lc_state *s, uint64_t ino,
	     int (*holder)(void *ctx, const struct lc_lockinfo *),
	     int (*waiter)(void *ctx, const struct lc_lockinfo *), void *ctx)
{
	struct lc_inode *ip = s ? lci_iget(s, ino) : NULL;
	const struct lc_req *a, *b, *r;
	struct lc_lockinfo li;

	if (!ip)
		return -ENOENT;
	if (!ip->lk)
		return 0;
	for (a = ip->lk->fh.h, b = ip->lk->ph.h; a || b;) {
		if (a && (!b || a->token < b->token)) {
			r = a;
			a = a->next;
		} else {
			r = b;
			b = b->next;
		}
		info(r, &li);
		if (holder && holder(ctx, &li))
			return 0;
	}
	for (a = ip->lk->fw.h, b = ip->lk->pw.h; a || b;) {
		if (a && (!b || a->qseq < b->qseq)) {
			r = a;
			a = a->next;
		} else {
			r = b;
			b = b->next;
		}
		info(r, &li);
		if (waiter && waiter(ctx, &li))
			return 0;
	}
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
	lk = ip->lk;
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
	eta = ((uint64_t)lk->nfl_w + 1) * per;
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
	if (type == LC_UNLCK || !ip->lk)
		return -ENOENT;
	h = px_holder_conflict(ip->lk, who->session, who->owner, type, start,
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

	if (!ip || !ip->lk)
		return 0;
	if (who && who->session) {
		r = find_own(s, ip, false, who->session, who->owner);
		if (r)
			return r->token;
		for (r = ip->lk->ph.h; r; r = r->next)
			if (same_owner(r, who->session, who->owner) &&
			    r->token > best)
				best = r->token;
		if (best)
			return best;
	}
	return ip->lk->last_token;
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
