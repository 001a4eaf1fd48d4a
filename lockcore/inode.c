/*
 * lockcore/inode.c - an inode's life: creation and freeing, its names
 * (embedded first name, further names, the former name of a file that
 * lives on), directories in cookie order, the ttl heap and expiry (TICK),
 * ephemeral files per session, open-handle pins, and the lock state block
 * hanging off the inode (its requests are lkreq.c's business).
 *
 * It must never: read a clock (cmd->time_ns is the only time), do I/O,
 * walk all files for one operation, change state before every allocation
 * the operation needs has succeeded, or call into the files above it
 * (the map in lci.h): it uses only table.c and usage.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lci.h"

/* ---- inodes ------------------------------------------------------------- */

/* A fresh inode of `kind`, not in any table, nlink 0, with room for a
 * first name of `namecap` bytes (rounded up to what the allocator would
 * waste anyway, so that a rename to a slightly longer name fits too). */
struct lc_inode *lci_inode_new(uint64_t ino, uint8_t kind, size_t namecap)
{
	size_t base = offsetof(struct lc_inode, d0) + sizeof(struct lc_dent);
	size_t cap = namecap ? ((base + namecap + 8 + 15) & ~(size_t)15) - 8 -
				       base
			     : 0;
	struct lc_inode *ip;

	if (cap > LC_NAME_MAX)
		cap = namecap > LC_NAME_MAX ? namecap : LC_NAME_MAX;
	ip = calloc(1, base + cap);
	if (!ip)
		return NULL;
	ip->ino = ino;
	ip->kind = kind;
	ip->d0cap = (uint8_t)(cap > 255 ? 255 : cap);
	if (kind == LC_DIR) {
		ip->u.dir = calloc(1, sizeof(*ip->u.dir));
		if (!ip->u.dir) {
			free(ip);
			return NULL;
		}
		ip->u.dir->next_cookie = 1;
	}
	return ip;
}

/* Link count: names of a file; 2 + subdirectories of a directory that is
 * still in the tree (the root always is). */
uint32_t lci_nlink(const struct lc_inode *ip)
{
	uint32_t n = 0;

	if (ip->kind == LC_DIR)
		return ip->ino == LC_INO_ROOT || lci_first_name(ip)
			       ? 2 + ip->u.dir->nsub
			       : 0;
	for (const struct lc_dent *d = lci_first_name(ip); d;
	     d = lci_next_name(ip, d))
		n++;
	return n;
}

/* A separate name record for `child` (NULL on ENOMEM); not yet in any
 * directory. */
struct lc_dent *lci_xdent_new(struct lc_inode *child, const char *name,
			      size_t len)
{
	struct lc_xdent *xd = calloc(1, sizeof(*xd) + len);

	if (!xd)
		return NULL;
	xd->child = child;
	xd->d.ck = LCI_DENT_SEP | (uint64_t)len;
	if (len)
		memcpy(lci_dname(&xd->d), name, len);
	return &xd->d;
}

/* Frees a name that is out of every table: a separate record is freed, an
 * embedded one is marked unused (its memory is the inode's). */
void lci_dent_free(struct lc_dent *d)
{
	if (d->ck & LCI_DENT_SEP) {
		free(lci_xd(d));
	} else {
		d->dir = NULL;
		d->hnext = NULL;
	}
}

/* The rare-attribute block, allocated on first use (NULL on ENOMEM). */
struct lc_iext *lci_iext(struct lc_inode *ip)
{
	if (!ip->x) {
		ip->x = calloc(1, sizeof(*ip->x));
		if (ip->x)
			ip->x->heap_idx = LCI_NOHEAP;
	}
	return ip->x;
}

/* Fills the public attributes of an inode. */
void lci_attr(const struct lc_inode *ip, struct lc_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ip->ino;
	a->kind = ip->kind;
	a->mode = ip->mode;
	a->uid = ip->uid;
	a->gid = ip->gid;
	a->nlink = lci_nlink(ip);
	a->size = ip->size;
	a->atime_ns = ip->atime;
	a->mtime_ns = ip->mtime;
	a->ctime_ns = ip->ctime;
	if (ip->x) {
		a->ephemeral = ip->x->ephemeral;
		a->ttl_s = ip->x->ttl_s;
		a->slots = ip->x->slots;
	}
}

/* Appends a separate name to the inode's list of names (oldest first);
 * the inode has its lc_iext already. */
void lci_link_append(struct lc_inode *ip, struct lc_dent *d)
{
	struct lc_xdent **pp = &ip->x->names;

	while (*pp)
		pp = &(*pp)->lnext;
	lci_xd(d)->lnext = NULL;
	*pp = lci_xd(d);
}

/* Takes a name out of the inode's list (an embedded one by the caller's
 * lci_dent_free()). */
void lci_link_remove(struct lc_inode *ip, struct lc_dent *d)
{
	struct lc_xdent **pp;

	if (!(d->ck & LCI_DENT_SEP) || !ip->x)
		return;
	for (pp = &ip->x->names; *pp && *pp != lci_xd(d); pp = &(*pp)->lnext)
		;
	if (*pp)
		*pp = lci_xd(d)->lnext;
	lci_xd(d)->lnext = NULL;
}

/* Puts the separate name `nd` where `od` is in the inode's list (first,
 * when od is the embedded name); the inode has its lc_iext. */
void lci_link_replace(struct lc_inode *ip, struct lc_dent *od,
		      struct lc_dent *nd)
{
	struct lc_xdent **pp;

	if (!(od->ck & LCI_DENT_SEP)) {
		lci_xd(nd)->lnext = ip->x->names;
		ip->x->names = lci_xd(nd);
		return;
	}
	for (pp = &ip->x->names; *pp && *pp != lci_xd(od); pp = &(*pp)->lnext)
		;
	if (*pp) {
		lci_xd(nd)->lnext = lci_xd(od)->lnext;
		*pp = lci_xd(nd);
	} else {
		lci_link_append(ip, nd);
	}
	lci_xd(od)->lnext = NULL;
}

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

/* ---- ttl heap ------------------------------------------------------------ */

static uint64_t deadline(const struct lc_inode *ip)
{
	uint64_t add = (uint64_t)ip->x->ttl_s * 1000000000ull;

	if (ip->x->parked)
		return UINT64_MAX;
	if (ip->x->orphan)
		return 0;

	return ip->x->refresh_ns > UINT64_MAX - add ? UINT64_MAX
						    : ip->x->refresh_ns + add;
}

static bool hless(const struct lc_inode *a, const struct lc_inode *b)
{
	uint64_t da = deadline(a), db = deadline(b);

	return da < db || (da == db && a->ino < b->ino);
}

static void hset(struct lc_state *s, size_t i, struct lc_inode *ip)
{
	s->heap[i] = ip;
	ip->x->heap_idx = (uint32_t)i;
}

static void hfix(struct lc_state *s, size_t i)
{
	struct lc_inode *ip = s->heap[i];

	while (i > 0 && hless(ip, s->heap[(i - 1) / 2])) {
		hset(s, i, s->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		struct lc_inode *best = ip;

		if (l < s->hn && hless(s->heap[l], best)) {
			m = l;
			best = s->heap[l];
		}
		if (l + 1 < s->hn && hless(s->heap[l + 1], best))
			m = l + 1;
		if (m == i)
			break;
		hset(s, i, s->heap[m]);
		i = m;
	}
	hset(s, i, ip);
}

/* Room for one more heap entry. */
int lci_heap_reserve(struct lc_state *s)
{
	return lci_heap_reserve_n(s, 1);
}

/* Room for n more heap entries. */
int lci_heap_reserve_n(struct lc_state *s, size_t n)
{
	if (n <= s->hcap - s->hn)
		return 0;
	size_t ncap = s->hcap ? s->hcap * 2 : 16;

	while (ncap - s->hn < n)
		ncap *= 2;
	struct lc_inode **nh = realloc(s->heap, ncap * sizeof(*nh));

	if (!nh)
		return -ENOMEM;
	s->heap = nh;
	s->hcap = ncap;
	return 0;
}

/* Removes an inode from the ttl heap if it is there. */
void lci_heap_remove(struct lc_state *s, struct lc_inode *ip)
{
	size_t i;

	if (!ip->x || ip->x->heap_idx == LCI_NOHEAP)
		return;
	i = ip->x->heap_idx;
	ip->x->heap_idx = LCI_NOHEAP;
	ip->x->parked = 0;
	s->hn--;
	if (i != s->hn) {
		s->heap[i] = s->heap[s->hn];
		s->heap[i]->x->heap_idx = (uint32_t)i;
		hfix(s, i);
	}
}

/* (Re)positions an inode after its ttl or refresh time changed; the
 * caller reserved room with lci_heap_reserve() if it may be new.  A new
 * time also ends a parking: if it runs out while the file is still
 * locked, the next TICK parks it again. */
void lci_heap_update(struct lc_state *s, struct lc_inode *ip)
{
	if (!ip->x)
		return;
	if ((!ip->x->ttl_s && !ip->x->orphan) || !lci_nlink(ip)) {
		lci_heap_remove(s, ip);
		return;
	}
	ip->x->parked = 0;
	if (ip->x->heap_idx == LCI_NOHEAP) {
		if (s->hn >= s->hcap)
			return;
		ip->x->heap_idx = (uint32_t)s->hn;
		s->heap[s->hn++] = ip;
	}
	hfix(s, ip->x->heap_idx);
}

/* The last lock or waiter of an inode went (lkreq.c): an expiry parked
 * while it was locked is due again, at its own (past) deadline, so the
 * next TICK removes the file unless it is locked again by then. */
void lci_expiry_unpark(struct lc_state *s, struct lc_inode *ip)
{
	if (!ip->x || !ip->x->parked || ip->x->heap_idx == LCI_NOHEAP)
		return;
	ip->x->parked = 0;
	hfix(s, ip->x->heap_idx);
}

/* The session of an ephemeral file ended while the file is locked by
 * another session: it is removed at the first TICK once it is not (the
 * caller reserved a heap entry). */
void lci_eph_orphan(struct lc_state *s, struct lc_inode *ip)
{
	lci_eph_unlink(s, ip);
	ip->x->orphan = 1;
	lci_heap_update(s, ip);
}

/* Earliest ttl expiry or 0.  A parked expiry waits for a release, not
 * for a time ("never" until then). */
uint64_t lc_next_deadline(const struct lc_state *s)
{
	uint64_t d;

	if (!s || !s->hn)
		return 0;
	d = deadline(s->heap[0]);
	if (d == UINT64_MAX)
		return 0;
	return d ? d : 1;
}

/* TICK: removes every file whose ttl ran out by the command's time,
 * unless it is locked (held or waited on, by any session): then its
 * names stay, so no new file takes a name whose lock is held, and it is
 * parked until the lock state empties (lci_expiry_unpark).  Parking is
 * not in a snapshot: a loaded state has it due at once, and its next
 * TICK parks it again, so every replica removes the same files at the
 * same TICK. */
int lci_tick(struct lc_ctx *x)
{
	struct lc_state *s = x->s;

	while (s->hn && deadline(s->heap[0]) <= x->now) {
		struct lc_inode *ip = s->heap[0];

		/* Only parked ones left (a TICK at UINT64_MAX sees them). */
		if (ip->x->parked)
			break;
		if (lci_lk_busy(ip)) {
			ip->x->parked = 1;
			hfix(s, 0);
			continue;
		}
		lci_heap_remove(s, ip);
		s->expirations++;
		lci_remove_all_names(s, ip, (int64_t)x->now);
	}
	return 0;
}

/* ---- ephemeral files per session ---------------------------------------- */

/* Links an ephemeral file into its creator session's list.  The list's
 * order is never observable: removing files emits nothing. */
void lci_eph_link(struct lc_state *s, struct lc_inode *ip)
{
	struct lc_sess *se = lci_sess(s, ip->x->eph_session);

	if (!se || ip->x->on_elist)
		return;
	ip->x->eprev = NULL;
	ip->x->enext = se->eph;
	if (se->eph)
		se->eph->x->eprev = ip;
	se->eph = ip;
	ip->x->on_elist = 1;
}

/* Unlinks an ephemeral file from its session list. */
void lci_eph_unlink(struct lc_state *s, struct lc_inode *ip)
{
	struct lc_sess *se;

	if (!ip->x || !ip->x->on_elist)
		return;
	ip->x->on_elist = 0;
	se = lci_sess(s, ip->x->eph_session);
	if (ip->x->eprev)
		ip->x->eprev->x->enext = ip->x->enext;
	else if (se && se->eph == ip)
		se->eph = ip->x->enext;
	if (ip->x->enext)
		ip->x->enext->x->eprev = ip->x->eprev;
	ip->x->enext = ip->x->eprev = NULL;
}

/* ---- directories ----------------------------------------------------------- */

static void dir_compact(struct lc_dir *d)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < d->n; i++)
		if (lci_slot_dent(d->v[i]))
			d->v[k++] = d->v[i];
	d->n = k;
}

/* Room for one more entry in a directory (compacting tombstones first). */
int lci_dir_reserve(struct lc_inode *dir)
{
	struct lc_dir *d = dir->u.dir;
	uint32_t ncap;
	struct lc_dslot *nv;

	if (d->next_cookie > LCI_COOKIE_MAX)
		return -ENOSPC;        /* 2^55 names made here: cookies ran out */
	if (d->n < d->cap)
		return 0;
	if (d->live < d->n / 2 + 1 && d->n > d->live) {
		dir_compact(d);
		if (d->n < d->cap)
			return 0;
	}
	if (d->cap > UINT32_MAX / 2)
		return -ENOMEM;
	ncap = d->cap ? d->cap * 2 : 4;
	nv = realloc(d->v, (size_t)ncap * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	d->v = nv;
	d->cap = ncap;
	return 0;
}

/* Adds a dentry to `dir` with the next cookie (room reserved). */
int lci_dir_add(struct lc_state *s, struct lc_inode *dir, struct lc_dent *d)
{
	struct lc_dir *dd = dir->u.dir;

	(void)s;
	d->dir = dir;
	d->ck = (d->ck & LCI_CK_LOW) | dd->next_cookie++ << LCI_CK_SHIFT;
	dd->v[dd->n++] = lci_slot(d);
	dd->live++;
	return 0;
}

/* The first slot whose cookie is after `after` (d->n when none is). */
uint32_t lci_dir_find(const struct lc_dir *d, uint64_t after)
{
	uint32_t lo = 0, hi = d->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (lci_slot_cookie(d->v[mid]) <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Position of a live entry in its directory's array (d->n if absent). */
uint32_t lci_dir_slot(const struct lc_dir *d, const struct lc_dent *e)
{
	uint32_t i = lci_dir_find(d, lci_dcookie(e) - 1);

	return i < d->n && lci_slot_dent(d->v[i]) == e ? i : d->n;
}

/* Turns slot i into a tombstone (trimming it when last). */
void lci_dir_tomb(struct lc_dir *d, uint32_t i)
{
	if (i >= d->n)
		return;
	d->v[i] = lci_tomb(lci_slot_cookie(d->v[i]));
	d->live--;
	if (i == d->n - 1)
		d->n--;
}

static void dir_del(struct lc_inode *dir, struct lc_dent *e)
{
	struct lc_dir *d = dir->u.dir;
	uint32_t i = lci_dir_slot(d, e);

	if (i < d->n) {
		d->v[i] = lci_tomb(lci_dcookie(e));
		d->live--;
		if (d->n > 16 && d->live < d->n / 2)
			dir_compact(d);
		else if (i == d->n - 1)
			d->n--;
	}
}

/* ---- pins: open handles ------------------------------------------------- */

/* The pin record of `session` on the inode, or NULL. */
struct lc_pin *lci_pin_find(const struct lc_inode *ip, uint64_t session)
{
	for (struct lc_pin *p = ip->x ? ip->x->pins : NULL; p; p = p->inext)
		if (p->session == session)
			return p;
	return NULL;
}

/* Links a filled pin record (ip->x exists, the session is open): the
 * inode's list stays in session order, which the serialization uses. */
void lci_pin_link(struct lc_state *s, struct lc_inode *ip, struct lc_pin *p)
{
	struct lc_sess *se = lci_sess(s, p->session);
	struct lc_pin **pp = &ip->x->pins;

	while (*pp && (*pp)->session < p->session)
		pp = &(*pp)->inext;
	p->ip = ip;
	p->inext = *pp;
	*pp = p;
	p->sprev = NULL;
	p->snext = se ? se->pins : NULL;
	if (p->snext)
		p->snext->sprev = p;
	if (se)
		se->pins = p;
}

/* Frees the rare-attribute block of an inode when every field of it is
 * at its default, so that a file opened once costs what one never opened
 * does (its first open allocated the block for the pin). */
static void iext_trim(struct lc_inode *ip)
{
	struct lc_iext *x = ip->x;

	if (!x || x->pins || x->names || x->was || x->lk || x->xn || x->ttl_s ||
	    x->slots || x->ephemeral || x->on_elist || x->eph_session ||
	    x->refresh_ns || x->heap_idx != LCI_NOHEAP)
		return;
	free(x->xv);
	free(x);
	ip->x = NULL;
}

/* Unlinks and frees a pin record, whatever its count. */
void lci_pin_drop(struct lc_state *s, struct lc_pin *p)
{
	struct lc_sess *se = lci_sess(s, p->session);
	struct lc_inode *ip = p->ip;
	struct lc_pin **pp = &ip->x->pins;

	while (*pp && *pp != p)
		pp = &(*pp)->inext;
	if (*pp)
		*pp = p->inext;
	if (p->sprev)
		p->sprev->snext = p->snext;
	else if (se && se->pins == p)
		se->pins = p->snext;
	if (p->snext)
		p->snext->sprev = p->sprev;
	free(p);
	iext_trim(ip);
}

/* Drops one open handle of `session` on the inode (none: nothing). */
void lci_pin_put(struct lc_state *s, struct lc_inode *ip, uint64_t session)
{
	struct lc_pin *p = lci_pin_find(ip, session);

	if (p && !--p->n)
		lci_pin_drop(s, p);
}

/* Frees an unlinked inode once nothing refers to it any more: no name, no
 * lock or waiter, no open handle. */
void lci_maybe_free(struct lc_state *s, struct lc_inode *ip)
{
	if (!ip || ip == s->root || lci_nlink(ip) || lci_lk_busy(ip) ||
	    (ip->x && ip->x->pins))
		return;
	lci_heap_remove(s, ip);
	lci_eph_unlink(s, ip);
	lci_lk_free(s, ip);
	lci_use_add(s, ip->uid, -1, -lci_use_bytes(ip));
	lci_iremove(s, ip);
	lci_inode_free(ip);
}

/* Frees a removed name (out of the hash, its directory and the child's
 * list), or keeps it as the former name of a regular file it was the
 * last name of, which may live on (open or locked somewhere) and is then
 * listed by it (lc_former_name).  Nothing to allocate: the record is
 * reused, so removing a name never fails for it. */
void lci_name_gone(struct lc_inode *c, const struct lc_inode *dir,
		   struct lc_dent *d)
{
	d->dir = NULL;
	d->hnext = NULL;
	if (c->kind != LC_REG || !c->x || lci_first_name(c)) {
		lci_dent_free(d);
		return;
	}
	c->x->was = d;
	c->x->was_dir = dir->ino;
}

/* Removes one name; the child may be freed (the caller must not use it
 * afterwards unless it knows other references exist). */
void lci_dent_unlink(struct lc_state *s, struct lc_dent *d, int64_t now)
{
	struct lc_inode *dir = d->dir, *c = lci_child(d);

	lci_dremove(s, d);
	dir_del(dir, d);
	lci_link_remove(c, d);
	lci_name_gone(c, dir, d);
	dir->mtime = dir->ctime = now;
	c->ctime = now;
	if (c->kind == LC_DIR)
		dir->u.dir->nsub--;
	if (!lci_nlink(c)) {
		lci_heap_remove(s, c);
		lci_eph_unlink(s, c);
		lci_maybe_free(s, c);
	}
}

/* Is name a before name b in an order every replica shares?  The order
 * of a file's names in memory is not shared: it is creation order, and a
 * loaded state has them in directory order. */
static bool name_before(const struct lc_dent *a, const struct lc_dent *b)
{
	if (a->dir->ino != b->dir->ino)
		return a->dir->ino < b->dir->ino;
	return lci_dcookie(a) < lci_dcookie(b);
}

/* Removes every name of a file (ephemeral expiry).  Returns 1 when the
 * inode was freed too.  The name removed last is the one a file that
 * lives on keeps (name_gone), so it is chosen in the shared order. */
int lci_remove_all_names(struct lc_state *s, struct lc_inode *ip,
			 int64_t now)
{
	bool goes = !lci_lk_busy(ip) && !(ip->x && ip->x->pins);
	struct lc_dent *d, *last = NULL;

	for (d = lci_first_name(ip); d; d = lci_next_name(ip, d))
		if (!last || name_before(d, last))
			last = d;
	if (!last)
		return 0;
	while ((d = lci_first_name(ip)) != last ||
	       (d = lci_next_name(ip, last)))
		lci_dent_unlink(s, d, now);
	lci_dent_unlink(s, last, now);
	return goes;
}

/* ---- lock state block -------------------------------------------------- */

/* Lock state of an inode, created on first use (NULL on ENOMEM).  It
 * lives in the rare-attribute block: most files are never locked. */
struct lc_lk *lci_lk_get(struct lc_state *s, struct lc_inode *ip)
{
	struct lc_iext *x = lci_iext(ip);

	(void)s;
	if (!x)
		return NULL;
	if (!x->lk) {
		x->lk = calloc(1, sizeof(*x->lk));
		if (x->lk)
			x->lk->ip = ip;
	}
	return x->lk;
}

/* Has the inode any holder or waiter? */
bool lci_lk_busy(const struct lc_inode *ip)
{
	const struct lc_lk *lk = LCI_LK(ip);

	return lk && (lk->fh.h || lk->ph.h || lk->fw.h || lk->pw.h);
}

/* Frees an inode's lock state and requests without any bookkeeping: only
 * for teardown, or when the lock state is idle. */
void lci_lk_free(struct lc_state *s, struct lc_inode *ip)
{
	struct lc_lk *lk = LCI_LK(ip);
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
	ip->x->lk = NULL;
}
