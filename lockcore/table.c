/*
 * lockcore/table.c - the bottom of the lock state: the intrusive chained
 * hash tables (inodes, names, requests, flock owners) over one helper,
 * the sorted session array, the per-session dedup window and the
 * completion sink.
 *
 * It must never: read a clock, do I/O, use randomness or seeded hashes,
 * let hash-table layout or pointer values leak into anything observable
 * (nothing here lists or emits in table order), allocate anywhere but in
 * a *_reserve() or a new session (insert and remove cannot fail), or call
 * into any other lockcore file (it is the bottom of the map in lci.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lci.h"

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

/* ---- one chained hash table --------------------------------------------- */

/* What one kind of entry needs: its bucket for a table of `cap` (a power
 * of two) and where its chain pointer is. */
struct hkind {
	size_t (*slot)(const void *e, size_t cap);
	size_t next;                   /* offsetof the chain pointer */
};

static void **hnext(void *e, const struct hkind *k)
{
	return (void **)(void *)((char *)e + k->next);
}

/* Grows a table so that it holds `extra` more entries at load <= 2.
 * Only this allocates, so insert and remove cannot fail; on -ENOMEM the
 * table is as it was. */
static int ht_reserve(struct lci_htab *t, size_t extra, const struct hkind *k)
{
	size_t want = t->n + extra;
	size_t ncap = t->cap ? t->cap : 64;
	void **nt;

	/* Chains of two on average: half the table for one more compare. */
	want = want / 2 + 1;
	if (want <= t->cap)
		return 0;
	while (ncap < want) {
		if (ncap > SIZE_MAX / 4)
			return -ENOMEM;
		ncap *= 2;
	}
	nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		void *e = t->v[i];

		while (e) {
			void *n = *hnext(e, k);
			size_t b = k->slot(e, ncap);

			*hnext(e, k) = nt[b];
			nt[b] = e;
			e = n;
		}
	}
	free(t->v);
	t->v = nt;
	t->cap = ncap;
	return 0;
}

/* Links an entry at the head of its chain (room reserved). */
static void ht_insert(struct lci_htab *t, void *e, const struct hkind *k)
{
	size_t b = k->slot(e, t->cap);

	*hnext(e, k) = t->v[b];
	t->v[b] = e;
	t->n++;
}

/* Unlinks an entry from its chain (does not free it). */
static void ht_remove(struct lci_htab *t, void *e, const struct hkind *k)
{
	void **pp = &t->v[k->slot(e, t->cap)];

	while (*pp && *pp != e)
		pp = hnext(*pp, k);
	if (*pp) {
		*pp = *hnext(e, k);
		t->n--;
	}
}

/* The chain an entry with hash `h` is on (NULL: empty table). */
static void *ht_chain(const struct lci_htab *t, uint64_t h)
{
	return t->cap ? t->v[h & (t->cap - 1)] : NULL;
}

/* ---- inodes by number ------------------------------------------------- */

static size_t islot(const void *e, size_t cap)
{
	return mix64(((const struct lc_inode *)e)->ino) & (cap - 1);
}

static const struct hkind IK = { islot, offsetof(struct lc_inode, hnext) };

/* Makes room for `extra` more inodes; -ENOMEM leaves the table as is. */
int lci_itab_reserve(struct lc_state *s, size_t extra)
{
	return ht_reserve(&s->inodes, extra, &IK);
}

/* Inserts an inode (room reserved by lci_itab_reserve()). */
void lci_iinsert(struct lc_state *s, struct lc_inode *ip)
{
	ht_insert(&s->inodes, ip, &IK);
}

/* Unlinks an inode from the table (does not free it). */
void lci_iremove(struct lc_state *s, struct lc_inode *ip)
{
	ht_remove(&s->inodes, ip, &IK);
}

/* Inode by number or NULL. */
struct lc_inode *lci_iget(const struct lc_state *s, uint64_t ino)
{
	struct lc_inode *ip;

	for (ip = ht_chain(&s->inodes, mix64(ino)); ip; ip = ip->hnext)
		if (ip->ino == ino)
			return ip;
	return NULL;
}

/* ---- names by (directory, name) -------------------------------------- */

static size_t dslot(const void *e, size_t cap)
{
	const struct lc_dent *d = e;

	return dhash(d->dir->ino, lci_dname(d), lci_dlen(d)) & (cap - 1);
}

static const struct hkind DK = { dslot, offsetof(struct lc_dent, hnext) };

/* Room for `extra` more dentries. */
int lci_dtab_reserve(struct lc_state *s, size_t extra)
{
	return ht_reserve(&s->dents, extra, &DK);
}

/* Inserts a dentry into the name hash (room reserved). */
void lci_dinsert(struct lc_state *s, struct lc_dent *d)
{
	ht_insert(&s->dents, d, &DK);
}

/* Removes a dentry from the name hash (does not free it). */
void lci_dremove(struct lc_state *s, struct lc_dent *d)
{
	ht_remove(&s->dents, d, &DK);
}

/* Dentry (dir, name) or NULL. */
struct lc_dent *lci_dget(const struct lc_state *s, const struct lc_inode *dir,
			 const char *name, size_t len)
{
	struct lc_dent *d;

	for (d = ht_chain(&s->dents, dhash(dir->ino, name, len)); d;
	     d = d->hnext)
		if (d->dir == dir && lci_dlen(d) == len &&
		    memcmp(lci_dname(d), name, len) == 0)
			return d;
	return NULL;
}

/* ---- requests by (origin, serial) ------------------------------------ */

static uint64_t rkey(uint64_t origin, uint64_t serial)
{
	return mix64(origin * 0x9e3779b97f4a7c15ull ^ serial);
}

static size_t rslot(const void *e, size_t cap)
{
	const struct lc_req *r = e;

	return rkey(r->origin, r->serial) & (cap - 1);
}

static const struct hkind RK = { rslot, offsetof(struct lc_req, hnext) };

/* Room for `extra` more lock requests in the (origin, serial) hash. */
int lci_rtab_reserve(struct lc_state *s, size_t extra)
{
	return ht_reserve(&s->reqs, extra, &RK);
}

/* Inserts a request into the (origin, serial) hash (room reserved). */
void lci_rinsert(struct lc_state *s, struct lc_req *r)
{
	ht_insert(&s->reqs, r, &RK);
}

/* Removes a request from the (origin, serial) hash. */
void lci_rremove(struct lc_state *s, struct lc_req *r)
{
	ht_remove(&s->reqs, r, &RK);
}

/* A request (holder or waiter) by (origin, serial); a queued one first,
 * because only POSIX splits share a serial and those are all granted. */
struct lc_req *lci_rfind(const struct lc_state *s, uint64_t origin,
			 uint64_t serial)
{
	struct lc_req *r, *found = NULL;

	for (r = ht_chain(&s->reqs, rkey(origin, serial)); r; r = r->hnext)
		if (r->origin == origin && r->serial == serial) {
			if (r->waiting)
				return r;
			found = r;
		}
	return found;
}

/* ---- flock records and queued POSIX requests by owner ---------------- */

static uint64_t okey(uint64_t ino, uint64_t session, uint64_t owner)
{
	return mix64(ino ^ mix64(session ^ mix64(owner)));
}

static size_t oslot(const void *e, size_t cap)
{
	const struct lc_req *r = e;

	return okey(r->ip->ino, r->session, r->owner) & (cap - 1);
}

static const struct hkind OK = { oslot, offsetof(struct lc_req, onext) };

/* Room for `extra` more flock records in the owner hash. */
int lci_otab_reserve(struct lc_state *s, size_t extra)
{
	return ht_reserve(&s->owners, extra, &OK);
}

/* Indexes a flock record by (inode, session, owner) (room reserved). */
void lci_oinsert(struct lc_state *s, struct lc_req *r)
{
	ht_insert(&s->owners, r, &OK);
}

/* Removes a flock record from the owner hash. */
void lci_oremove(struct lc_state *s, struct lc_req *r)
{
	ht_remove(&s->owners, r, &OK);
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
	return ochain(ht_chain(&s->owners, okey(ino, session, owner)), ino,
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

/* A new session record named `name` (copied), in no array yet. */
struct lc_sess *lci_sess_new(uint64_t id, const void *name, size_t len)
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

/* Frees a session record (out of the array). */
void lci_sess_free(struct lc_sess *se)
{
	if (!se)
		return;
	free(se->name);
	free(se);
}

/* Inserts a session keeping id order; the array is grown first. */
int lci_sess_insert(struct lc_state *s, struct lc_sess *se)
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

/* Takes a session out of the array (does not free it). */
void lci_sess_remove(struct lc_state *s, struct lc_sess *se)
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

/* Remembers the result of `serial` in its window slot. */
void lci_dedup_store(struct lc_sess *se, uint64_t serial, int status,
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
