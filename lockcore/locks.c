/*
 * lockcore/locks.c - flock locks and semaphores (slots), the lock
 * commands (FLOCK, SETLK via posix.c, RELEASE, FLUSH, CANCEL), session
 * drop, and the lock queries.
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

/* ---- flock queue walk ---------------------------------------------------- */

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

static void grant_flock(struct lc_ctx *x, struct lc_lk *lk, struct lc_req *r)
{
	lci_req_detach(x->s, r);
	r->waiting = 0;
	r->qseq = 0;
	r->since_ns = x->now;
	r->token = lci_take_token(x, lk);
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

/* Settles both queues of an inode after any change (slots, session end):
 * the POSIX queue is looked at as a whole. */
int lci_run_queue(struct lc_ctx *x, struct lc_inode *ip)
{
	struct lc_lk *lk = LCI_LK(ip);

	if (!lk)
		return 0;
	run_flock(x, lk);
	lk->px_full = 1;
	lci_run_posix(x, lk, 0, LC_OFF_MAX);
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
			lci_drop_holder(x, h, LCI_WHY_RELEASE);
		return lci_run_flock(x, ip);
	}
	if (h && h->type == c->lock_type) {
		*token = h->token;
		return 0;
	}
	if (lci_rtab_reserve(x->s, 1) || lci_otab_reserve(x->s, 1))
		return -ENOMEM;
	r = lci_req_new(x, ip, sid, false);
	if (!r)
		return -ENOMEM;
	if (w)
		lci_drop_waiter(x, w, -EINTR);
	if (h) {
		lci_drop_holder(x, h, LCI_WHY_RELEASE);
		lci_run_flock(x, ip);
	} else if (w) {
		lci_run_flock(x, ip);
	}
	if (fl_fits(lk, slots_of(ip), r->type) &&
	    (r->type == LC_WRLCK ? !lk->nfl_w : !lk->nfl_wx)) {
		r->token = lci_take_token(x, lk);
		r->since_ns = x->now;
		lci_req_attach(x->s, r);
		*token = r->token;
		return 0;
	}
	if (!(c->flags & LC_LK_WAIT)) {
		free(r);
		return -EAGAIN;
	}
	lci_enqueue(x, r);
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
			lci_drop_waiter(x, r, -EINTR);
		}
		if ((r = find_own(x->s, ip, false, sid, owner)))
			lci_drop_holder(x, r, LCI_WHY_RELEASE);
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
		lci_drop_waiter(x, r, -EINTR);
	}
	if (wv != &one)
		free(wv);
	for (r = lk->ph.h; r; r = n) {
		n = r->next;
		if (lci_same_owner(r, sid, owner)) {
			lo = r->start < lo ? r->start : lo;
			hi = r->end > hi ? r->end : hi;
			lci_drop_holder(x, r, LCI_WHY_RELEASE);
		}
	}
	lci_run_posix(x, lk, lo, hi);
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
	r = lci_owner_session(x, &sid);
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
		r = lci_setlk(x, ip, sid, token);
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
		lci_drop_waiter(x, t, -EINTR);
	} else {
		lci_req_done(x->s, t->origin, t->serial, -EINTR, 0);
		lci_drop_holder(x, t, LCI_WHY_RELEASE);
	}
	if (posix)
		lci_run_posix(x, LCI_LK(ip), lo, hi);
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
			lci_drop_waiter(x, r, -ENOLCK);
		else
			lci_drop_holder(x, r, x->origin ? LCI_WHY_CLOSE : LCI_WHY_EXPIRE);
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
	h = lci_px_holder_conflict(LCI_LK(ip), who->session, who->owner, type, start,
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
			if (lci_same_owner(r, who->session, who->owner) &&
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
