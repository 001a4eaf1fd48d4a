/*
 * lockcore/state.c - the lock state container: hash tables, sessions and
 * deduplication, lc_apply() dispatch, statistics, canonical save/load and
 * the state hash.
 *
 * Must never: read a clock, do I/O, use randomness or seeded hashes, or
 * let hash-table layout or pointer values leak into anything observable
 * (serialization is sorted by inode number, cookie, token, queue order).
 * lc_state_load() is fed untrusted bytes: it must reject, never crash or
 * leak.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lci.h"

#define ST_MAGIC   0x5453434cu         /* "LCST" */
#define ST_VERSION 2u                  /* 2: open-handle pins */
/* Inode flags 8 (a former name follows the pins) and 16 (an ephemeral
 * file whose session ended while it was locked: lci_eph_orphan) came
 * without a version bump: a state with no such file is unchanged, and an
 * older reader refuses one that has it (unknown flag). */

/* ---- hashing ------------------------------------------------------------ */

/* FNV-1a, fixed offset basis: the same on every node. */
uint64_t lci_fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t dhash(uint64_t dir, const char *name, size_t len)
{
	uint64_t h = lci_fnv(0xcbf29ce484222325ull, &dir, sizeof(dir));

	return lci_fnv(h, name, len);
}

/* Grows a chained table so that it holds `want` entries at load <= 2.
 * The caller relinks; we only allocate here so failure changes nothing. */
static int tab_grow(void ***tab, size_t *cap, size_t want,
		    size_t (*slot)(const void *e, size_t cap),
		    void **(*nextp)(void *e))
{
	size_t ncap = *cap ? *cap : 64;
	void **nt;

	/* Chains of two on average: half the table for one more compare. */
	want = want / 2 + 1;
	if (want <= *cap)
		return 0;
	while (ncap < want) {
		if (ncap > SIZE_MAX / 4)
			return -ENOMEM;
		ncap *= 2;
	}
	nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	for (size_t i = 0; i < *cap; i++) {
		void *e = (*tab)[i];

		while (e) {
			void *n = *nextp(e);
			size_t k = slot(e, ncap);

			*nextp(e) = nt[k];
			nt[k] = e;
			e = n;
		}
	}
	free(*tab);
	*tab = nt;
	*cap = ncap;
	return 0;
}

static size_t islot(const void *e, size_t cap)
{
	return mix64(((const struct lc_inode *)e)->ino) & (cap - 1);
}

static void **inext(void *e)
{
	return (void **)&((struct lc_inode *)e)->hnext;
}

static size_t dslot(const void *e, size_t cap)
{
	const struct lc_dent *d = e;

	return dhash(d->dir->ino, lci_dname(d), lci_dlen(d)) & (cap - 1);
}

static void **dnext(void *e)
{
	return (void **)&((struct lc_dent *)e)->hnext;
}

static size_t rslot(const void *e, size_t cap)
{
	const struct lc_req *r = e;

	return mix64(r->origin * 0x9e3779b97f4a7c15ull ^ r->serial) & (cap - 1);
}

static void **rnext(void *e)
{
	return (void **)&((struct lc_req *)e)->hnext;
}

/* Makes room for `extra` more inodes; -ENOMEM leaves the table as is. */
int lci_itab_reserve(struct lc_state *s, size_t extra)
{
	return tab_grow((void ***)&s->itab, &s->icap, s->icount + extra,
			islot, inext);
}

/* Inserts an inode (room reserved by lci_itab_reserve()). */
void lci_iinsert(struct lc_state *s, struct lc_inode *ip)
{
	size_t k = islot(ip, s->icap);

	ip->hnext = s->itab[k];
	s->itab[k] = ip;
	s->icount++;
}

/* Unlinks an inode from the table (does not free it). */
void lci_iremove(struct lc_state *s, struct lc_inode *ip)
{
	struct lc_inode **pp = &s->itab[islot(ip, s->icap)];

	while (*pp && *pp != ip)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = ip->hnext;
		s->icount--;
	}
}

/* Inode by number or NULL. */
struct lc_inode *lci_iget(const struct lc_state *s, uint64_t ino)
{
	struct lc_inode *ip;

	if (!s->icap)
		return NULL;
	for (ip = s->itab[mix64(ino) & (s->icap - 1)]; ip; ip = ip->hnext)
		if (ip->ino == ino)
			return ip;
	return NULL;
}

/* Room for `extra` more dentries. */
int lci_dtab_reserve(struct lc_state *s, size_t extra)
{
	return tab_grow((void ***)&s->dtab, &s->dcap, s->dcount + extra,
			dslot, dnext);
}

/* Inserts a dentry into the name hash (room reserved). */
void lci_dinsert(struct lc_state *s, struct lc_dent *d)
{
	size_t k = dslot(d, s->dcap);

	d->hnext = s->dtab[k];
	s->dtab[k] = d;
	s->dcount++;
}

/* Removes a dentry from the name hash (does not free it). */
void lci_dremove(struct lc_state *s, struct lc_dent *d)
{
	struct lc_dent **pp = &s->dtab[dslot(d, s->dcap)];

	while (*pp && *pp != d)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = d->hnext;
		s->dcount--;
	}
}

/* Dentry (dir, name) or NULL. */
struct lc_dent *lci_dget(const struct lc_state *s, const struct lc_inode *dir,
			 const char *name, size_t len)
{
	struct lc_dent *d;

	if (!s->dcap)
		return NULL;
	for (d = s->dtab[dhash(dir->ino, name, len) & (s->dcap - 1)]; d;
	     d = d->hnext)
		if (d->dir == dir && lci_dlen(d) == len &&
		    memcmp(lci_dname(d), name, len) == 0)
			return d;
	return NULL;
}

/* Room for `extra` more lock requests in the (origin, serial) hash. */
int lci_rtab_reserve(struct lc_state *s, size_t extra)
{
	return tab_grow((void ***)&s->rtab, &s->rcap, s->rcount + extra,
			rslot, rnext);
}

/* Inserts a request into the (origin, serial) hash (room reserved). */
void lci_rinsert(struct lc_state *s, struct lc_req *r)
{
	size_t k = rslot(r, s->rcap);

	r->hnext = s->rtab[k];
	s->rtab[k] = r;
	s->rcount++;
}

/* Removes a request from the (origin, serial) hash. */
void lci_rremove(struct lc_state *s, struct lc_req *r)
{
	struct lc_req **pp = &s->rtab[rslot(r, s->rcap)];

	while (*pp && *pp != r)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = r->hnext;
		s->rcount--;
	}
}

/* A request (holder or waiter) by (origin, serial); a queued one first,
 * because only POSIX splits share a serial and those are all granted. */
struct lc_req *lci_rfind(const struct lc_state *s, uint64_t origin,
			 uint64_t serial)
{
	struct lc_req key = { .origin = origin, .serial = serial };
	struct lc_req *r, *found = NULL;

	if (!s->rcap)
		return NULL;
	for (r = s->rtab[rslot(&key, s->rcap)]; r; r = r->hnext)
		if (r->origin == origin && r->serial == serial) {
			if (r->waiting)
				return r;
			found = r;
		}
	return found;
}

static uint64_t okey(uint64_t ino, uint64_t session, uint64_t owner)
{
	return mix64(ino ^ mix64(session ^ mix64(owner)));
}

static size_t oslot(const void *e, size_t cap)
{
	const struct lc_req *r = e;

	return okey(r->ip->ino, r->session, r->owner) & (cap - 1);
}

static void **onextp(void *e)
{
	return (void **)&((struct lc_req *)e)->onext;
}

/* Room for `extra` more flock records in the owner hash. */
int lci_otab_reserve(struct lc_state *s, size_t extra)
{
	return tab_grow((void ***)&s->otab, &s->ocap, s->ocount + extra,
			oslot, onextp);
}

/* Indexes a flock record by (inode, session, owner) (room reserved). */
void lci_oinsert(struct lc_state *s, struct lc_req *r)
{
	size_t k = oslot(r, s->ocap);

	r->onext = s->otab[k];
	s->otab[k] = r;
	s->ocount++;
}

/* Removes a flock record from the owner hash. */
void lci_oremove(struct lc_state *s, struct lc_req *r)
{
	struct lc_req **pp = &s->otab[oslot(r, s->ocap)];

	while (*pp && *pp != r)
		pp = &(*pp)->onext;
	if (*pp) {
		*pp = r->onext;
		s->ocount--;
	}
}

static struct lc_req *ochain(struct lc_req *r, uint64_t ino,
			     uint64_t session, uint64_t owner, bool posix)
{
	for (; r; r = r->onext)
		if (r->ip->ino == ino && r->session == session &&
		    r->owner == owner && r->posix == posix)
			return r;
	return NULL;
}

/* The flock record (holder or waiter) of an owner on an inode, or with
 * `posix` its first queued POSIX request; NULL when there is none.  The
 * order among several queued POSIX requests is the hash chain's: only
 * use it where order does not matter. */
struct lc_req *lci_ofind(const struct lc_state *s, uint64_t ino,
			 uint64_t session, uint64_t owner, bool posix)
{
	if (!s->ocap)
		return NULL;
	return ochain(s->otab[okey(ino, session, owner) & (s->ocap - 1)], ino,
		      session, owner, posix);
}

/* The next record of the same owner, inode and kind after r, or NULL. */
struct lc_req *lci_onext(const struct lc_req *r, bool posix)
{
	return ochain(r->onext, r->ip->ino, r->session, r->owner, posix);
}

/* ---- sessions and dedup ---------------------------------------------- */

static size_t sess_pos(const struct lc_state *s, uint64_t id)
{
	size_t lo = 0, hi = s->sn;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->sv[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Open session by id or NULL. */
struct lc_sess *lci_sess(const struct lc_state *s, uint64_t id)
{
	size_t k = sess_pos(s, id);

	return k < s->sn && s->sv[k]->id == id ? s->sv[k] : NULL;
}

static struct lc_sess *sess_new(uint64_t id, const void *name, size_t len)
{
	struct lc_sess *se = calloc(1, sizeof(*se));

	if (!se)
		return NULL;
	se->id = id;
	se->name = malloc(len + 1);
	if (!se->name) {
		free(se);
		return NULL;
	}
	if (len)
		memcpy(se->name, name, len);
	se->name[len] = 0;
	se->name_len = (uint32_t)len;
	return se;
}

static void sess_free(struct lc_sess *se)
{
	if (!se)
		return;
	free(se->name);
	free(se);
}

/* Inserts a session keeping id order; the array is grown first. */
static int sess_insert(struct lc_state *s, struct lc_sess *se)
{
	size_t k;

	if (s->sn == s->scap) {
		size_t ncap = s->scap ? s->scap * 2 : 8;
		struct lc_sess **nv = realloc(s->sv, ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		s->sv = nv;
		s->scap = ncap;
	}
	k = sess_pos(s, se->id);
	memmove(&s->sv[k + 1], &s->sv[k], (s->sn - k) * sizeof(*s->sv));
	s->sv[k] = se;
	s->sn++;
	return 0;
}

static void sess_remove(struct lc_state *s, struct lc_sess *se)
{
	size_t k = sess_pos(s, se->id);

	if (k < s->sn && s->sv[k] == se) {
		memmove(&s->sv[k], &s->sv[k + 1],
			(s->sn - k - 1) * sizeof(*s->sv));
		s->sn--;
	}
}

/* The stored result of `serial`, or NULL.  Serials alive in the window are
 * all distinct modulo its size, so one slot per residue is enough. */
struct lc_dedup *lci_dedup_find(struct lc_sess *se, uint64_t serial)
{
	struct lc_dedup *d = &se->win[serial % LC_DEDUP_WINDOW];

	return d->used && d->serial == serial ? d : NULL;
}

static void dedup_store(struct lc_sess *se, uint64_t serial, int status,
			uint64_t ino, uint64_t token)
{
	struct lc_dedup *d = &se->win[serial % LC_DEDUP_WINDOW];

	d->used = 1;
	d->serial = serial;
	d->status = status;
	d->ino = ino;
	d->token = token;
	if (!se->has_serial || serial > se->max_serial)
		se->max_serial = serial;
	se->has_serial = 1;
}

/* What the state remembers of a request (see lc.h). */
int lc_request_result(const struct lc_state *s, uint64_t origin, uint64_t serial,
		      struct lc_completion *c)
{
	struct lc_sess *se = origin ? lci_sess(s, origin) : NULL;
	struct lc_dedup *d = se ? lci_dedup_find(se, serial) : NULL;

	if (!d)
		return -ENOENT;
	memset(c, 0, sizeof(*c));
	c->origin = origin;
	c->serial = serial;
	c->status = d->status;
	c->token = d->token;
	c->ino = d->ino;
	return d->status == LC_PENDING ? LC_PENDING : 0;
}

/* Records the final result of a queued request so that a retry of it is
 * answered with the result, not LC_PENDING. */
void lci_req_done(struct lc_state *s, uint64_t origin, uint64_t serial,
		  int status, uint64_t token)
{
	struct lc_sess *se;
	struct lc_dedup *d;

	if (!origin || !(se = lci_sess(s, origin)))
		return;
	d = lci_dedup_find(se, serial);
	if (d) {
		d->status = status;
		d->token = token;
	}
}

/* ---- completions ------------------------------------------------------ */

/* Ensures `extra` more completions fit without allocating later. */
int lci_out_reserve(struct lc_out *o, size_t extra)
{
	size_t want, ncap;
	struct lc_completion *nv;

	if (extra > SIZE_MAX / sizeof(*nv) - o->n)
		return -ENOMEM;
	want = o->n + extra;
	if (want <= o->cap)
		return 0;
	ncap = o->cap ? o->cap : 16;
	while (ncap < want)
		ncap *= 2;
	nv = realloc(o->v, ncap * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	o->v = nv;
	o->cap = ncap;
	return 0;
}

/* Appends one completion; room is normally reserved up front, so the
 * realloc here is only a fallback. */
int lci_emit(struct lc_ctx *x, uint64_t origin, uint64_t serial, int status,
	     uint64_t ino, uint64_t token)
{
	struct lc_completion *c;

	if (lci_out_reserve(x->out, 1))
		return -ENOMEM;
	c = &x->out->v[x->out->n++];
	c->origin = origin;
	c->serial = serial;
	c->status = status;
	c->ino = ino;
	c->token = token;
	return 0;
}

/* Empties the sink, keeping its memory. */
void lc_out_reset(struct lc_out *o)
{
	if (o)
		o->n = 0;
}

/* Frees the sink's memory. */
void lc_out_free(struct lc_out *o)
{
	if (!o)
		return;
	free(o->v);
	o->v = NULL;
	o->n = o->cap = 0;
}

/* ---- state lifetime ---------------------------------------------------- */

/* Frees one inode and what hangs off it, except dentries and lock state. */
void lci_inode_free(struct lc_inode *ip)
{
	if (!ip)
		return;
	if (ip->kind == LC_DIR) {
		if (ip->u.dir)
			free(ip->u.dir->v);
		free(ip->u.dir);
	} else {
		free(ip->u.data);
	}
	if (ip->x) {
		if (ip->x->was && (ip->x->was->ck & LCI_DENT_SEP))
			free(lci_xd(ip->x->was));
		while (ip->x->pins) {
			struct lc_pin *p = ip->x->pins;

			ip->x->pins = p->inext;
			free(p);
		}
		for (uint32_t i = 0; i < ip->x->xn; i++)
			free(ip->x->xv[i]);
		free(ip->x->xv);
		free(ip->x);
	}
	free(ip);
}

/* Creates a state holding only the root directory. */
struct lc_state *lc_state_new(void)
{
	struct lc_state *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->next_ino = LC_INO_FIRST;
	s->next_token = 1;
	s->next_qseq = 1;
	s->root = lci_inode_new(LC_INO_ROOT, LC_DIR, 0);
	if (!s->root)
		goto undo_state;
	s->root->mode = 01777;
	if (lci_itab_reserve(s, 1) || lci_use_reserve(s, 0))
		goto undo_root;
	lci_iinsert(s, s->root);
	lci_use_add(s, 0, 1, 0);
	return s;
undo_root:
	free(s->uv);
	free(s->itab);
	lci_inode_free(s->root);
undo_state:
	free(s);
	return NULL;
}

/* Frees the state and everything reachable from it. */
void lc_state_free(struct lc_state *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->dcap; i++) {
		struct lc_dent *d = s->dtab[i];

		while (d) {
			struct lc_dent *n = d->hnext;

			if (d->ck & LCI_DENT_SEP)
				free(lci_xd(d));
			d = n;
		}
	}
	for (size_t i = 0; i < s->icap; i++) {
		struct lc_inode *ip = s->itab[i];

		while (ip) {
			struct lc_inode *n = ip->hnext;

			lci_lk_free(s, ip);
			lci_inode_free(ip);
			ip = n;
		}
	}
	for (size_t i = 0; i < s->sn; i++)
		sess_free(s->sv[i]);
	free(s->itab);
	free(s->dtab);
	free(s->rtab);
	free(s->otab);
	free(s->sv);
	free(s->heap);
	free(s->uv);
	lci_px_spares_free(s);
	free(s);
}

/* Index of the last command applied. */
uint64_t lc_applied_index(const struct lc_state *s)
{
	return s ? s->applied : 0;
}

/* Whole-state counters. */
void lc_stats(const struct lc_state *s, struct lc_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!s)
		return;
	st->files = s->icount;
	st->locks_held = s->nholders;
	st->waiters = s->nwaiters;
	st->sessions = s->sn;
	st->grants = s->grants;
	st->releases = s->releases;
	st->expirations = s->expirations;
	st->interrupts = s->interrupts;
	st->next_token = s->next_token;
}

/* Name given at SESSION_OPEN. */
int lc_session_name(const struct lc_state *s, uint64_t session,
		    const char **name, size_t *len)
{
	struct lc_sess *se = s ? lci_sess(s, session) : NULL;

	if (!se)
		return -ENOENT;
	*name = se->name;
	*len = se->name_len;
	return 0;
}

/* ---- apply ------------------------------------------------------------- */

static bool strbad(const void *p, uint32_t len)
{
	return !p && len;
}

/* Structural checks only: anything here fails before touching state. */
static int validate(const struct lc_cmd *c)
{
	if (c->type >= LC_CMD__COUNT)
		return -EINVAL;
	if (strbad(c->name, c->name_len) || strbad(c->name2, c->name2_len) ||
	    strbad(c->data, c->data_len))
		return -EINVAL;
	switch (c->type) {
	case LC_CMD_SESSION_OPEN:
		if (!c->session || (c->origin && c->origin != c->session))
			return -EINVAL;
		if (c->data_len > LC_PATH_MAX)
			return -EINVAL;
		break;
	case LC_CMD_SESSION_CLOSE:
		if (!c->session)
			return -EINVAL;
		break;
	case LC_CMD_FLOCK:
	case LC_CMD_SETLK:
		if (c->lock_type > LC_WRLCK || (c->flags & ~LC_LK_WAIT))
			return -EINVAL;
		if (c->type == LC_CMD_SETLK && c->start > c->end)
			return -EINVAL;
		break;
	default:
		break;
	}
	return 0;
}

/* Worst case number of completions a command can emit, reserved before
 * any change so that emitting never fails half way. */
static size_t out_need(const struct lc_state *s, const struct lc_cmd *c)
{
	struct lc_inode *ip;

	switch (c->type) {
	case LC_CMD_SESSION_CLOSE:
	case LC_CMD_CANCEL:
	case LC_CMD_SETXATTR:
	case LC_CMD_REMOVEXATTR:
		return (size_t)s->nwaiters + 4;
	case LC_CMD_FLOCK:
	case LC_CMD_SETLK:
	case LC_CMD_RELEASE:
	case LC_CMD_FLUSH:
		ip = lci_iget(s, c->ino);
		if (ip && LCI_LK(ip))
			return (size_t)LCI_LK(ip)->nfl_w + LCI_LK(ip)->npx_w + 4;
		return 4;
	default:
		return 2;
	}
}

static int session_open(struct lc_ctx *x)
{
	const struct lc_cmd *c = x->c;
	struct lc_sess *se;

	if (lci_sess(x->s, c->session))
		return 0;
	se = sess_new(c->session, c->data, c->data_len);
	if (!se)
		return -ENOMEM;
	if (sess_insert(x->s, se)) {
		sess_free(se);
		return -ENOMEM;
	}
	return 0;
}

static int session_close(struct lc_ctx *x)
{
	const struct lc_cmd *c = x->c;
	struct lc_sess *se;
	int r;

	if (c->origin && c->origin != c->session)
		return -EPERM;
	se = lci_sess(x->s, c->session);
	if (!se)
		return 0;
	r = lci_session_drop(x, se);
	if (r)
		return r;
	sess_remove(x->s, se);
	sess_free(se);
	return 0;
}

/* Marks `index` applied.  Commands answered from the dedup window or
 * refused for want of a session leave the state, index included, byte for
 * byte as it was (the replay tests rely on it). */
static void applied(struct lc_state *s, uint64_t index,
		    const struct lc_cmd *c)
{
	/* The root is born with the cluster: its times are those of the
	 * first command applied, not the epoch (ls -l would show 1970). */
	if (!s->applied && !s->root->ctime)
		s->root->atime = s->root->mtime = s->root->ctime =
			(int64_t)c->time_ns;
	s->applied = index;
}

/* Applies one committed command; see lc.h. */
int lc_apply(struct lc_state *s, uint64_t index, const struct lc_cmd *c,
	     struct lc_out *out)
{
	struct lc_ctx x = { .s = s, .c = c, .out = out, .index = index };
	struct lc_sess *se = NULL;
	struct lc_dedup *dd;
	size_t own;
	uint64_t ino = 0, token = 0;
	int st;

	if (!s || !c || !out || index <= s->applied)
		return -EINVAL;
	if (lci_out_reserve(out, 1))
		return -ENOMEM;
	x.origin = c->origin;
	x.now = c->time_ns;
	if (validate(c)) {
		lci_emit(&x, c->origin, c->serial, -EINVAL, c->ino, 0);
		return -EINVAL;
	}
	if (c->origin) {
		se = lci_sess(s, c->origin);
		if (!se && !(c->type == LC_CMD_SESSION_OPEN &&
			     c->session == c->origin)) {
			lci_emit(&x, c->origin, c->serial, -ENOLCK, c->ino, 0);
			return 0;
		}
		if (se && (dd = lci_dedup_find(se, c->serial))) {
			lci_emit(&x, c->origin, c->serial, dd->status, dd->ino,
				 dd->token);
			return 0;
		}
		if (se && se->has_serial &&
		    c->serial <= se->max_serial - LC_DEDUP_WINDOW &&
		    se->max_serial >= LC_DEDUP_WINDOW) {
			lci_emit(&x, c->origin, c->serial, -ESTALE, c->ino, 0);
			return 0;
		}
	}
	if (lci_out_reserve(out, out_need(s, c)))
		return -ENOMEM;
	own = out->n++;

	switch (c->type) {
	case LC_CMD_NOP:
		st = 0;
		break;
	case LC_CMD_SESSION_OPEN:
		st = session_open(&x);
		break;
	case LC_CMD_SESSION_CLOSE:
		st = session_close(&x);
		break;
	case LC_CMD_TICK:
		st = lci_tick(&x);
		break;
	case LC_CMD_FLOCK:
	case LC_CMD_SETLK:
	case LC_CMD_RELEASE:
	case LC_CMD_FLUSH:
		ino = c->ino;
		st = lci_lock_apply(&x, &ino, &token);
		break;
	case LC_CMD_CANCEL:
		st = lci_cancel(&x, &ino);
		break;
	default:
		st = lci_ns_apply(&x, &ino);
		break;
	}
	if (st == -ENOMEM) {
		/* Handlers allocate before they change anything. */
		out->n = own;
		return -ENOMEM;
	}
	out->v[own] = (struct lc_completion){ c->origin, c->serial, st, ino,
					      token };
	if (c->origin && (se = lci_sess(s, c->origin)))
		dedup_store(se, c->serial, st, ino, token);
	applied(s, index, c);
	return 0;
}

/* ---- canonical serialization ----------------------------------------- */

struct wbuf {
	uint8_t *p;
	size_t n, cap;
	int err;
};

static void wput(struct wbuf *w, const void *src, size_t n)
{
	if (w->err)
		return;
	if (n > w->cap - w->n) {
		size_t ncap = w->cap ? w->cap : 4096;
		uint8_t *np;

		while (ncap - w->n < n) {
			if (ncap > SIZE_MAX / 2) {
				w->err = -ENOMEM;
				return;
			}
			ncap *= 2;
		}
		np = realloc(w->p, ncap);
		if (!np) {
			w->err = -ENOMEM;
			return;
		}
		w->p = np;
		w->cap = ncap;
	}
	if (n)
		memcpy(w->p + w->n, src, n);
	w->n += n;
}

static void w8(struct wbuf *w, uint8_t v)
{
	wput(w, &v, 1);
}

static void w16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	wput(w, b, 2);
}

static void w32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	wput(w, b, 4);
}

static void w64(struct wbuf *w, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	wput(w, b, 8);
}

static int cmp_ino(const void *a, const void *b)
{
	uint64_t x = (*(struct lc_inode *const *)a)->ino;
	uint64_t y = (*(struct lc_inode *const *)b)->ino;

	return x < y ? -1 : x > y;
}

static int cmp_dedup(const void *a, const void *b)
{
	uint64_t x = (*(struct lc_dedup *const *)a)->serial;
	uint64_t y = (*(struct lc_dedup *const *)b)->serial;

	return x < y ? -1 : x > y;
}

static void wreq(struct wbuf *w, const struct lc_req *r)
{
	w8(w, r->posix);
	w8(w, r->type);
	w64(w, r->origin);
	w64(w, r->serial);
	w64(w, r->session);
	w64(w, r->owner);
	w32(w, r->pid);
	w64(w, r->start);
	w64(w, r->end);
	w64(w, r->token);
	w64(w, r->since_ns);
	w64(w, r->qseq);
}

static bool lk_worth(const struct lc_lk *lk)
{
	return lk && (lk->last_token || lk->has_ewma || lk->fh.h || lk->ph.h ||
		      lk->fw.h || lk->pw.h);
}

/* Holders merged by token (grant order), waiters merged by queue order. */
static void wlk(struct wbuf *w, const struct lc_lk *lk)
{
	const struct lc_req *a, *b;
	uint32_t nh = lk->nfl_sh + lk->nfl_ex + lk->npx_h;
	uint32_t nw = lk->nfl_w + lk->npx_w;

	w64(w, lk->last_token);
	w64(w, lk->ewma_ms);
	w8(w, lk->has_ewma);
	w32(w, nh);
	for (a = lk->fh.h, b = lk->ph.h; a || b;) {
		if (a && (!b || a->token < b->token)) {
			wreq(w, a);
			a = a->next;
		} else {
			wreq(w, b);
			b = b->next;
		}
	}
	w32(w, nw);
	for (a = lk->fw.h, b = lk->pw.h; a || b;) {
		if (a && (!b || a->qseq < b->qseq)) {
			wreq(w, a);
			a = a->next;
		} else {
			wreq(w, b);
			b = b->next;
		}
	}
}

static void winode(struct wbuf *w, const struct lc_inode *ip)
{
	const struct lc_iext *x = ip->x;
	bool lk = lk_worth(LCI_LK(ip));

	w64(w, ip->ino);
	w8(w, ip->kind);
	w16(w, ip->mode);
	w32(w, ip->uid);
	w32(w, ip->gid);
	w64(w, (uint64_t)ip->atime);
	w64(w, (uint64_t)ip->mtime);
	w64(w, (uint64_t)ip->ctime);
	w8(w, (uint8_t)((x && x->ephemeral ? 1 : 0) | (lk ? 2 : 0) |
			(x && x->pins ? 4 : 0) | (x && x->was ? 8 : 0) |
			(x && x->orphan ? 16 : 0)));
	w64(w, x ? x->eph_session : 0);
	w64(w, x ? x->refresh_ns : 0);
	w32(w, x ? x->ttl_s : 0);
	w32(w, x ? x->slots : 0);
	w32(w, x ? x->xn : 0);
	for (uint32_t i = 0; x && i < x->xn; i++) {
		const struct lc_xattr *a = x->xv[i];

		w16(w, a->nlen);
		wput(w, a->name, a->nlen);
		w16(w, a->vlen);
		wput(w, a->name + a->nlen + 1, a->vlen);
	}
	if (ip->kind == LC_DIR) {
		const struct lc_dir *d = ip->u.dir;

		w64(w, d->next_cookie);
		w32(w, d->live);
		for (uint32_t i = 0; i < d->n; i++) {
			const struct lc_dent *e = lci_slot_dent(d->v[i]);

			if (!e)
				continue;
			w64(w, lci_dcookie(e));
			w64(w, lci_child(e)->ino);
			w16(w, (uint16_t)lci_dlen(e));
			wput(w, lci_dname(e), lci_dlen(e));
		}
	} else {
		w32(w, ip->size);
		wput(w, ip->u.data, ip->size);
	}
	if (lk)
		wlk(w, LCI_LK(ip));
	if (x && x->pins) {
		uint32_t n = 0;

		for (const struct lc_pin *p = x->pins; p; p = p->inext)
			n++;
		w32(w, n);
		for (const struct lc_pin *p = x->pins; p; p = p->inext) {
			w64(w, p->session);
			w32(w, p->n);
		}
	}
	if (x && x->was) {
		w64(w, x->was_dir);
		w16(w, (uint16_t)lci_dlen(x->was));
		wput(w, lci_dname(x->was), lci_dlen(x->was));
	}
}

/* Canonical serialization; see lc.h. */
int lc_state_save(const struct lc_state *s, uint8_t **buf, size_t *len)
{
	struct wbuf w = { 0 };
	struct lc_inode **iv;
	size_t k = 0;

	if (!s || !buf || !len)
		return -EINVAL;
	iv = malloc((s->icount ? s->icount : 1) * sizeof(*iv));
	if (!iv)
		return -ENOMEM;
	for (size_t i = 0; i < s->icap; i++)
		for (struct lc_inode *ip = s->itab[i]; ip; ip = ip->hnext)
			iv[k++] = ip;
	qsort(iv, k, sizeof(*iv), cmp_ino);

	w32(&w, ST_MAGIC);
	w32(&w, ST_VERSION);
	w64(&w, s->applied);
	w64(&w, s->next_ino);
	w64(&w, s->next_token);
	w64(&w, s->next_qseq);
	w64(&w, s->grants);
	w64(&w, s->releases);
	w64(&w, s->expirations);
	w64(&w, s->interrupts);
	w32(&w, (uint32_t)s->sn);
	for (size_t i = 0; i < s->sn; i++) {
		struct lc_sess *se = s->sv[i];
		struct lc_dedup *dv[LC_DEDUP_WINDOW];
		uint32_t nd = 0;

		for (uint32_t j = 0; j < LC_DEDUP_WINDOW; j++)
			if (se->win[j].used)
				dv[nd++] = &se->win[j];
		qsort(dv, nd, sizeof(dv[0]), cmp_dedup);
		w64(&w, se->id);
		w32(&w, se->name_len);
		wput(&w, se->name, se->name_len);
		w8(&w, se->has_serial);
		w64(&w, se->max_serial);
		w32(&w, nd);
		for (uint32_t j = 0; j < nd; j++) {
			w64(&w, dv[j]->serial);
			w32(&w, (uint32_t)dv[j]->status);
			w64(&w, dv[j]->ino);
			w64(&w, dv[j]->token);
		}
	}
	w64(&w, k);
	for (size_t i = 0; i < k; i++)
		winode(&w, iv[i]);
	free(iv);
	if (w.err) {
		free(w.p);
		return w.err;
	}
	*buf = w.p;
	*len = w.n;
	return 0;
}

/* A word-at-a-time mix of a byte string (little-endian words, then the
 * tail, then the length): the same on every node, several times faster
 * than byte-wise FNV on a whole image, which the simulator hashes after
 * every applied entry.  Equality checks only; never stored. */
static uint64_t image_hash(const uint8_t *b, size_t n)
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t h = 0xcbf29ce484222325ull, w;
	size_t len = n;

	for (; n >= 8; b += 8, n -= 8) {
		w = (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 |
		    (uint64_t)b[3] << 24 | (uint64_t)b[4] << 32 |
		    (uint64_t)b[5] << 40 | (uint64_t)b[6] << 48 |
		    (uint64_t)b[7] << 56;
		h = (h ^ w) * k;
		h ^= h >> 29;
	}
	for (w = 0; n > 0; n--)
		w = w << 8 | b[n - 1];
	h = (h ^ w ^ (uint64_t)len << 56) * k;
	h ^= h >> 32;
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}

/* Hash of the canonical serialization (0 if it cannot be built). */
uint64_t lc_state_hash(const struct lc_state *s)
{
	uint8_t *b;
	size_t n;
	uint64_t h;

	if (lc_state_save(s, &b, &n))
		return 0;
	h = image_hash(b, n);
	free(b);
	return h;
}

/* ---- load ---------------------------------------------------------------- */

struct rbuf {
	const uint8_t *p;
	size_t n, off;
	int bad;
};

static const uint8_t *rget(struct rbuf *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || n > r->n - r->off) {
		r->bad = 1;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

static uint64_t rle(struct rbuf *r, int bytes)
{
	const uint8_t *p = rget(r, (size_t)bytes);
	uint64_t v = 0;

	if (!p)
		return 0;
	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define r8(r)  ((uint8_t)rle(r, 1))
#define r16(r) ((uint16_t)rle(r, 2))
#define r32(r) ((uint32_t)rle(r, 4))
#define r64(r) (rle(r, 8))

static size_t rleft(const struct rbuf *r)
{
	return r->bad ? 0 : r->n - r->off;
}

struct pend {
	struct lc_dent *d;
	uint64_t child;
};

struct loadctx {
	struct lc_state *s;
	struct rbuf r;
	struct pend *pv;
	size_t pn, pcap;
};

static int pend_add(struct loadctx *L, struct lc_dent *d, uint64_t child)
{
	if (L->pn == L->pcap) {
		size_t ncap = L->pcap ? L->pcap * 2 : 64;
		struct pend *nv = realloc(L->pv, ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		L->pv = nv;
		L->pcap = ncap;
	}
	L->pv[L->pn].d = d;
	L->pv[L->pn++].child = child;
	return 0;
}

static int load_req(struct loadctx *L, struct lc_inode *ip, bool waiting,
		    uint64_t *last)
{
	struct rbuf *r = &L->r;
	struct lc_state *s = L->s;
	struct lc_req *q;
	struct lc_sess *se;

	if (rleft(r) < 2 + 8 * 9 + 4)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->posix = r8(r);
	q->type = r8(r);
	q->origin = r64(r);
	q->serial = r64(r);
	q->session = r64(r);
	q->owner = r64(r);
	q->pid = r32(r);
	q->start = r64(r);
	q->end = r64(r);
	q->token = r64(r);
	q->since_ns = r64(r);
	q->qseq = r64(r);
	q->waiting = waiting;
	q->ip = ip;
	se = lci_sess(s, q->session);
	if (r->bad || q->posix > 1 || q->type < LC_RDLCK ||
	    q->type > LC_WRLCK || q->start > q->end || !se ||
	    (!q->posix && (q->start || q->end != LC_OFF_MAX)) ||
	    (waiting ? (q->token || q->qseq <= *last ||
			q->qseq >= s->next_qseq)
		     : (q->qseq || !q->token || q->token < *last ||
			q->token >= s->next_token)) ||
	    lci_rtab_reserve(s, 1) || lci_otab_reserve(s, 1)) {
		free(q);
		return r->bad ? -EINVAL : -EINVAL;
	}
	*last = waiting ? q->qseq : q->token;
	lci_req_attach(s, q);
	return 0;
}

static int load_lk(struct loadctx *L, struct lc_inode *ip)
{
	struct rbuf *r = &L->r;
	struct lc_lk *lk = lci_lk_get(L->s, ip);
	uint32_t n;
	uint64_t last = 0;
	int e;

	if (!lk)
		return -ENOMEM;
	/* Loaded queues are not known to be settled. */
	lk->px_full = 1;
	lk->last_token = r64(r);
	lk->ewma_ms = r64(r);
	lk->has_ewma = r8(r);
	if (r->bad || lk->has_ewma > 1 || lk->last_token >= L->s->next_token)
		return -EINVAL;
	n = r32(r);
	for (uint32_t i = 0; i < n; i++)
		if ((e = load_req(L, ip, false, &last)))
			return e;
	n = r32(r);
	last = 0;
	for (uint32_t i = 0; i < n; i++)
		if ((e = load_req(L, ip, true, &last)))
			return e;
	return r->bad ? -EINVAL : 0;
}

/* Open-handle pins: sessions in increasing order, each open, n > 0. */
static int load_pins(struct loadctx *L, struct lc_inode *ip)
{
	struct rbuf *r = &L->r;
	uint32_t n = r32(r);
	uint64_t last = 0;

	if (r->bad || ip->kind != LC_REG || !n || n > rleft(r) / 12)
		return -EINVAL;
	if (!lci_iext(ip))
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t sid = r64(r);
		uint32_t cnt = r32(r);
		struct lc_pin *p;

		if (r->bad || sid <= last || !cnt || !lci_sess(L->s, sid))
			return -EINVAL;
		last = sid;
		p = calloc(1, sizeof(*p));
		if (!p)
			return -ENOMEM;
		p->session = sid;
		p->n = cnt;
		lci_pin_link(L->s, ip, p);
	}
	return 0;
}

/* The former name of a regular file that lives on without a name (that
 * it has none is checked once names are linked). */
static int load_was(struct loadctx *L, struct lc_inode *ip)
{
	struct rbuf *r = &L->r;
	uint64_t dir = r64(r);
	uint16_t len = r16(r);
	const char *nm = (const char *)rget(r, len);
	struct lc_dent *d;

	if (r->bad || ip->kind != LC_REG || lc_name_check(nm, len) ||
	    (dir != LC_INO_ROOT && (dir < LC_INO_FIRST || dir >= L->s->next_ino)))
		return -EINVAL;
	if (!lci_iext(ip))
		return -ENOMEM;
	d = lci_xdent_new(ip, nm, len);
	if (!d)
		return -ENOMEM;
	ip->x->was = d;
	ip->x->was_dir = dir;
	return 0;
}

static int load_inode(struct loadctx *L, uint64_t *prev)
{
	struct rbuf *r = &L->r;
	struct lc_state *s = L->s;
	struct lc_inode *ip;
	uint64_t ino = r64(r);
	uint8_t kind = r8(r), flags;
	uint32_t nx, ttl, slots;
	uint64_t eph, refresh;
	int e = -EINVAL;

	if (r->bad || kind < LC_DIR || kind > LC_LNK || ino <= *prev ||
	    (ino != LC_INO_ROOT && (ino < LC_INO_FIRST || ino >= s->next_ino)) ||
	    (*prev == 0 && ino != LC_INO_ROOT) ||
	    (ino == LC_INO_ROOT && kind != LC_DIR))
		return -EINVAL;
	*prev = ino;
	if (ino == LC_INO_ROOT) {
		ip = s->root;
	} else {
		ip = lci_inode_new(ino, kind, 0);
		if (!ip)
			return -ENOMEM;
		if (lci_itab_reserve(s, 1)) {
			lci_inode_free(ip);
			return -ENOMEM;
		}
		lci_iinsert(s, ip);
	}
	ip->mode = r16(r);
	ip->uid = r32(r);
	ip->gid = r32(r);
	ip->atime = (int64_t)r64(r);
	ip->mtime = (int64_t)r64(r);
	ip->ctime = (int64_t)r64(r);
	flags = r8(r);
	eph = r64(r);
	refresh = r64(r);
	ttl = r32(r);
	slots = r32(r);
	nx = r32(r);
	if (r->bad || (ip->mode & ~LCI_MODE_MASK) || (flags & ~31u) ||
	    nx > LC_XATTR_PER_INODE || (kind != LC_REG && (slots || ttl)) ||
	    (!(flags & 1) && eph) || ((flags & 16) && !eph))
		return -EINVAL;
	if ((flags & 1) || eph || refresh || ttl || slots || nx) {
		struct lc_iext *x = lci_iext(ip);

		if (!x)
			return -ENOMEM;
		x->ephemeral = flags & 1;
		x->orphan = (flags & 16) != 0;
		x->eph_session = eph;
		x->refresh_ns = refresh;
		x->ttl_s = ttl;
		x->slots = slots;
	}
	for (uint32_t i = 0; i < nx; i++) {
		uint16_t nl = r16(r);
		const uint8_t *nm = rget(r, nl);
		uint16_t vl = r16(r);
		const uint8_t *v = rget(r, vl);

		if (r->bad)
			return -EINVAL;
		if (nl <= 5 || nl > LC_XATTR_NAME_MAX ||
		    vl > LC_XATTR_VALUE_MAX || memcmp(nm, "user.", 5) ||
		    (nl >= 11 && !memcmp(nm, "user.cluck.", 11)) ||
		    memchr(nm, 0, nl))
			return -EINVAL;
		e = lci_xattr_put(ip, (const char *)nm, nl, v, vl, 1);
		if (e)
			return e == -ENOMEM ? -ENOMEM : -EINVAL;
	}
	if (kind == LC_DIR) {
		struct lc_dir *d = ip->u.dir;
		uint64_t lastc = 0;
		uint32_t n;

		d->next_cookie = r64(r);
		n = r32(r);
		if (r->bad || n > rleft(r) / 19 || !d->next_cookie ||
		    d->next_cookie > LCI_COOKIE_MAX + 1)
			return -EINVAL;
		for (uint32_t i = 0; i < n; i++) {
			uint64_t cookie = r64(r), child = r64(r);
			uint16_t len = r16(r);
			const char *nm = (const char *)rget(r, len);
			struct lc_dent *de;

			if (r->bad || cookie <= lastc ||
			    cookie >= d->next_cookie ||
			    lc_name_check(nm, len) ||
			    (ip == s->root &&
			     ((len == 6 && !memcmp(nm, "status", 6)) ||
			      (len == 11 && !memcmp(nm, "status.json", 11)) ||
			      (len == 7 && !memcmp(nm, "metrics", 7)))) ||
			    lci_dget(s, ip, nm, len))
				return -EINVAL;
			lastc = cookie;
			/* A separate record for now: load_link() moves each
			 * first name into its inode. */
			de = lci_xdent_new(NULL, nm, len);
			if (!de)
				return -ENOMEM;
			de->dir = ip;
			de->ck |= cookie << 9;
			if (lci_dtab_reserve(s, 1) || lci_dir_reserve(ip) ||
			    pend_add(L, de, child)) {
				lci_dent_free(de);
				return -ENOMEM;
			}
			lci_dinsert(s, de);
			d->v[d->n++] = lci_slot(de);
			d->live++;
		}
	} else {
		uint32_t sz = r32(r);
		const uint8_t *p;

		if (r->bad || sz > (kind == LC_REG ? LC_CONTENT_MAX
						   : LC_PATH_MAX - 1) ||
		    (kind == LC_LNK && !sz))
			return -EINVAL;
		p = rget(r, sz);
		if (!p)
			return -EINVAL;
		if (sz) {
			ip->u.data = malloc(sz);
			if (!ip->u.data)
				return -ENOMEM;
			memcpy(ip->u.data, p, sz);
		}
		ip->size = sz;
	}
	if (flags & 2) {
		if (kind != LC_REG)
			return -EINVAL;
		e = load_lk(L, ip);
		if (e)
			return e;
	}
	if (flags & 4) {
		e = load_pins(L, ip);
		if (e)
			return e;
	}
	if (flags & 8)
		return load_was(L, ip);
	return 0;
}

/* Moves a loaded inode into a block with room for its first name `d` (a
 * separate record, freed here) so that a loaded state is as compact as a
 * built one, and fixes every pointer to the inode that exists at this
 * point of the load (hash, directory entries, lock records, names). */
static int rehome(struct lc_state *s, struct lc_inode *old, struct lc_dent *d,
		  struct lc_inode **out)
{
	size_t len = lci_dlen(d);
	struct lc_inode *ip = lci_inode_new(old->ino, LC_REG, len);
	struct lc_dir *pd = d->dir->u.dir;
	uint32_t slot = lci_dir_slot(pd, d);
	uint8_t cap;

	if (!ip)
		return -ENOMEM;
	cap = ip->d0cap;
	memcpy(ip, old, offsetof(struct lc_inode, d0));
	ip->d0cap = cap;
	ip->hnext = NULL;
	ip->d0.ck = (uint64_t)len | lci_dcookie(d) << 9;
	memcpy(lci_dname(&ip->d0), lci_dname(d), len);
	ip->d0.dir = d->dir;
	lci_iremove(s, old);
	lci_iinsert(s, ip);
	lci_dremove(s, d);
	pd->v[slot] = lci_slot(&ip->d0);
	lci_dinsert(s, &ip->d0);
	lci_dent_free(d);
	if (ip->kind == LC_DIR) {
		for (uint32_t i = 0; i < ip->u.dir->n; i++)
			lci_slot_dent(ip->u.dir->v[i])->dir = ip;
	}
	if (ip->x) {
		struct lc_lk *lk = ip->x->lk;

		for (struct lc_xdent *xd = ip->x->names; xd; xd = xd->lnext)
			xd->child = ip;
		for (struct lc_pin *p = ip->x->pins; p; p = p->inext)
			p->ip = ip;
		if (lk) {
			struct lc_rlist *ls[4] = { &lk->fh, &lk->ph, &lk->fw,
						   &lk->pw };

			lk->ip = ip;
			for (int k = 0; k < 4; k++)
				for (struct lc_req *r = ls[k]->h; r; r = r->next)
					r->ip = ip;
		}
	}
	free(old);
	*out = ip;
	return 0;
}

/* Resolves dentries, checks the tree and rebuilds derived structures. */
static int load_link(struct loadctx *L)
{
	struct lc_state *s = L->s;
	struct lc_inode **queue = NULL;
	size_t qn = 0, qh = 0;
	int e = -EINVAL;

	for (size_t i = 0; i < L->pn; i++) {
		struct lc_inode *c = lci_iget(s, L->pv[i].child);
		struct lc_dent *d = L->pv[i].d;

		if (!c || c == s->root ||
		    (c->kind == LC_DIR && lci_first_name(c)))
			return -EINVAL;
		if (!lci_first_name(c)) {
			if (rehome(s, c, d, &c))
				return -ENOMEM;
		} else {
			if (!lci_iext(c))
				return -ENOMEM;
			lci_xd(d)->child = c;
			lci_link_append(c, d);
		}
		if (c->kind == LC_DIR)
			c->d0.dir->u.dir->nsub++;
	}
	/* Every directory must hang off the root: no cycles, no orphans. */
	queue = malloc((s->icount ? s->icount : 1) * sizeof(*queue));
	if (!queue)
		return -ENOMEM;
	queue[qn++] = s->root;
	while (qh < qn) {
		struct lc_dir *d = queue[qh++]->u.dir;

		for (uint32_t i = 0; i < d->n; i++) {
			struct lc_inode *c = lci_child(lci_slot_dent(d->v[i]));

			if (c->kind == LC_DIR) {
				if (qn >= s->icount)
					goto out;
				queue[qn++] = c;
			}
		}
	}
	for (size_t i = 0; i < s->icap; i++)
		for (struct lc_inode *ip = s->itab[i]; ip; ip = ip->hnext) {
			struct lc_iext *x = ip->x;

			if (ip->kind == LC_DIR && ip != s->root &&
			    !lci_first_name(ip))
				goto out;
			if (!lci_nlink(ip) && ip != s->root &&
			    !lci_lk_busy(ip) && !(x && x->pins))
				goto out;
			/* A named ephemeral file of an ended session is an
			 * orphan (lci_eph_orphan), marked so: its session's
			 * id may be open again, and not for it. */
			if (lci_nlink(ip) && x && x->ephemeral &&
			    x->eph_session && !x->orphan &&
			    !lci_sess(s, x->eph_session))
				goto out;
			if (x && x->was && lci_nlink(ip))
				goto out;
			/* Its directory, or a number that went (never reused). */
			if (x && x->was && lci_iget(s, x->was_dir) &&
			    lci_iget(s, x->was_dir)->kind != LC_DIR)
				goto out;
		}
	/* Count reachable dirs: every dir must have been queued. */
	{
		size_t ndirs = 0;

		for (size_t i = 0; i < s->icap; i++)
			for (struct lc_inode *ip = s->itab[i]; ip;
			     ip = ip->hnext)
				ndirs += ip->kind == LC_DIR;
		if (ndirs != qn)
			goto out;
	}
	e = 0;
out:
	free(queue);
	return e;
}

/* Derived structures that depend on order: ttl heap and ephemeral lists
 * are rebuilt in inode order, which is also their creation order. */
static int load_derive(struct lc_state *s)
{
	struct lc_inode **iv;
	size_t k = 0;

	iv = malloc((s->icount ? s->icount : 1) * sizeof(*iv));
	if (!iv)
		return -ENOMEM;
	for (size_t i = 0; i < s->icap; i++)
		for (struct lc_inode *ip = s->itab[i]; ip; ip = ip->hnext)
			iv[k++] = ip;
	qsort(iv, k, sizeof(*iv), cmp_ino);
	for (size_t i = 0; i < k; i++) {
		struct lc_inode *ip = iv[i];

		if (!ip->x || !lci_nlink(ip))
			continue;
		if (ip->x->ephemeral && ip->x->eph_session && !ip->x->orphan)
			lci_eph_link(s, ip);
		if (ip->x->ttl_s || ip->x->orphan) {
			if (lci_heap_reserve(s)) {
				free(iv);
				return -ENOMEM;
			}
			lci_heap_update(s, ip);
		}
	}
	free(iv);
	return 0;
}

/* Builds a state from lc_state_save() bytes; anything else is -EINVAL. */
int lc_state_load(const uint8_t *buf, size_t len, struct lc_state **out)
{
	struct loadctx L = { .r = { .p = buf, .n = len } };
	struct rbuf *r = &L.r;
	struct lc_state *s;
	uint32_t ns;
	uint64_t ni, prev = 0;
	uint8_t *again = NULL;
	size_t alen = 0;
	int e = -EINVAL;

	if (!out || (!buf && len))
		return -EINVAL;
	*out = NULL;
	s = lc_state_new();
	if (!s)
		return -ENOMEM;
	L.s = s;
	if (r32(r) != ST_MAGIC || r32(r) != ST_VERSION)
		goto undo_state;
	s->applied = r64(r);
	s->next_ino = r64(r);
	s->next_token = r64(r);
	s->next_qseq = r64(r);
	s->grants = r64(r);
	s->releases = r64(r);
	s->expirations = r64(r);
	s->interrupts = r64(r);
	if (r->bad || s->next_ino < LC_INO_FIRST || !s->next_token ||
	    !s->next_qseq)
		goto undo_state;
	ns = r32(r);
	if (ns > rleft(r) / 25)
		goto undo_state;
	for (uint32_t i = 0; i < ns; i++) {
		uint64_t id = r64(r);
		uint32_t nl = r32(r);
		const uint8_t *nm = rget(r, nl);
		struct lc_sess *se;
		uint32_t nd;
		uint64_t last = 0;

		if (r->bad || !id || nl > LC_PATH_MAX ||
		    (s->sn && s->sv[s->sn - 1]->id >= id))
			goto undo_state;
		se = sess_new(id, nm, nl);
		if (!se) {
			e = -ENOMEM;
			goto undo_state;
		}
		if (sess_insert(s, se)) {
			sess_free(se);
			e = -ENOMEM;
			goto undo_state;
		}
		se->has_serial = r8(r);
		se->max_serial = r64(r);
		nd = r32(r);
		if (r->bad || se->has_serial > 1 || nd > LC_DEDUP_WINDOW ||
		    (!se->has_serial && (se->max_serial || nd)))
			goto undo_state;
		for (uint32_t j = 0; j < nd; j++) {
			uint64_t serial = r64(r);
			struct lc_dedup *d = &se->win[serial % LC_DEDUP_WINDOW];

			if (r->bad || (j && serial <= last) || d->used ||
			    serial > se->max_serial)
				goto undo_state;
			last = serial;
			d->used = 1;
			d->serial = serial;
			d->status = (int32_t)r32(r);
			d->ino = r64(r);
			d->token = r64(r);
		}
	}
	ni = r64(r);
	if (r->bad || ni == 0 || ni > rleft(r) / 40)
		goto undo_state;
	for (uint64_t i = 0; i < ni; i++) {
		e = load_inode(&L, &prev);
		if (e)
			goto undo_state;
	}
	e = -EINVAL;
	if (rleft(r) || r->bad)
		goto undo_state;
	e = load_link(&L);
	if (e)
		goto undo_state;
	e = load_derive(s);
	if (e)
		goto undo_state;
	e = lci_use_rebuild(s);
	if (e)
		goto undo_state;
	/* Only the canonical encoding is accepted: re-encode and compare. */
	e = lc_state_save(s, &again, &alen);
	if (e)
		goto undo_state;
	if (alen != len || memcmp(again, buf, len)) {
		e = -EINVAL;
		goto undo_again;
	}
	free(again);
	free(L.pv);
	*out = s;
	return 0;
undo_again:
	free(again);
undo_state:
	/* Dentries not yet linked to a child are only in the pending list
	 * and the hash; lc_state_free() frees them through the hash. */
	free(L.pv);
	lc_state_free(s);
	return e == -ENOMEM ? -ENOMEM : -EINVAL;
}
