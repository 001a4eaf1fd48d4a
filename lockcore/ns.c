/*
 * lockcore/ns.c - the namespace: directories, files, symlinks, hard links,
 * rename, attributes, content, user xattrs, ephemeral files and their ttl
 * heap, plus the read-only namespace queries.
 *
 * Must never: read a clock (cmd->time_ns is the only time), do I/O, walk
 * all files for one operation, or change state before every allocation
 * the operation needs has succeeded (an -ENOMEM leaves the state as is).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lci.h"

#define XATTR_CREATE_F  1u
#define XATTR_REPLACE_F 2u
#define RENAME_NOREPLACE_F 1u
#define RENAME_EXCHANGE_F  2u

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
static void link_remove(struct lc_inode *ip, struct lc_dent *d)
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
static void link_replace(struct lc_inode *ip, struct lc_dent *od,
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

/* The last lock or waiter of an inode went (locks.c): an expiry parked
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
	d->ck = (d->ck & 0x1ffu) | dd->next_cookie++ << 9;
	dd->v[dd->n++] = lci_slot(d);
	dd->live++;
	return 0;
}

static uint32_t dir_find(const struct lc_dir *d, uint64_t after)
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
	uint32_t i = dir_find(d, lci_dcookie(e) - 1);

	return i < d->n && lci_slot_dent(d->v[i]) == e ? i : d->n;
}

/* Turns slot i into a tombstone (trimming it when last). */
static void dir_tomb(struct lc_dir *d, uint32_t i)
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

/* Adds one open handle of the command's session; *spare is a record
 * allocated beforehand, consumed when the session had none here. */
static void pin_get(struct lc_ctx *x, struct lc_inode *ip,
		    struct lc_pin **spare)
{
	struct lc_pin *p = lci_pin_find(ip, x->origin);

	if (p) {
		p->n++;
		return;
	}
	p = *spare;
	*spare = NULL;
	p->session = x->origin;
	p->n = 1;
	lci_pin_link(x->s, ip, p);
}

/* OPEN: pins a regular file for the origin session. */
static int do_open(struct lc_ctx *x, uint64_t *ino)
{
	struct lc_inode *ip = lci_iget(x->s, x->c->ino);
	struct lc_pin *spare = NULL;

	if (!ip)
		return -ENOENT;
	*ino = ip->ino;
	if (ip->kind != LC_REG)
		return -EINVAL;
	if (!x->origin || !lci_sess(x->s, x->origin))
		return -ENOLCK;
	if (!lci_pin_find(ip, x->origin)) {
		spare = calloc(1, sizeof(*spare));
		if (!spare || !lci_iext(ip)) {
			free(spare);
			return -ENOMEM;
		}
	}
	pin_get(x, ip, &spare);
	free(spare);
	return 0;
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
static void name_gone(struct lc_inode *c, const struct lc_inode *dir,
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
static void dent_unlink(struct lc_state *s, struct lc_dent *d, int64_t now)
{
	struct lc_inode *dir = d->dir, *c = lci_child(d);

	lci_dremove(s, d);
	dir_del(dir, d);
	link_remove(c, d);
	name_gone(c, dir, d);
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
		dent_unlink(s, d, now);
	dent_unlink(s, last, now);
	return goes;
}

/* ---- command helpers ------------------------------------------------------ */

static bool reserved(const struct lc_state *s, const struct lc_inode *dir,
		     const char *n, size_t len)
{
	if (dir != s->root)
		return false;
	return (len == 6 && !memcmp(n, "status", 6)) ||
	       (len == 11 && !memcmp(n, "status.json", 11)) ||
	       (len == 7 && !memcmp(n, "metrics", 7));
}

static int getdir(const struct lc_state *s, uint64_t ino,
		  struct lc_inode **out)
{
	struct lc_inode *ip = lci_iget(s, ino);

	if (!ip)
		return -ENOENT;
	if (ip->kind != LC_DIR)
		return -ENOTDIR;
	if (ip != s->root && !lci_first_name(ip))
		return -ENOENT;
	*out = ip;
	return 0;
}

/* Parent directory, name valid, not reserved. */
static int name_target(const struct lc_ctx *x, uint64_t pino, const char *n,
		       uint32_t len, struct lc_inode **dir)
{
	int r = getdir(x->s, pino, dir);

	if (r)
		return r;
	r = lc_name_check(n, len);
	if (r)
		return r;
	if (reserved(x->s, *dir, n, len))
		return -EPERM;
	return 0;
}

static void touch_dir(struct lc_inode *dir, int64_t now)
{
	dir->mtime = dir->ctime = now;
}

static void ttl_refresh(struct lc_state *s, struct lc_inode *ip, int64_t now)
{
	if (!ip->x || !ip->x->ttl_s)
		return;
	ip->x->refresh_ns = (uint64_t)now;
	lci_heap_update(s, ip);
}

/* Creates a new inode named `name` in `dir`; all allocation first. */
static int make_node(struct lc_ctx *x, struct lc_inode *dir, uint8_t kind,
		     const void *data, uint32_t dlen, bool excl,
		     struct lc_inode **out)
{
	struct lc_state *s = x->s;
	const struct lc_cmd *c = x->c;
	struct lc_inode *ip;
	struct lc_dent *d;
	int64_t now = (int64_t)x->now;
	int r;

	if (s->next_ino == UINT64_MAX)
		return -ENOSPC;
	r = lci_dir_reserve(dir);
	if (r)
		return r;
	if (lci_itab_reserve(s, 1) || lci_dtab_reserve(s, 1) ||
	    lci_use_reserve(s, c->uid))
		return -ENOMEM;
	if (excl && c->ttl_s && lci_heap_reserve(s))
		return -ENOMEM;
	ip = lci_inode_new(s->next_ino, kind, c->name_len);
	if (!ip)
		return -ENOMEM;
	d = LCI_D0(ip);
	d->ck = c->name_len;
	memcpy(lci_dname(d), c->name, c->name_len);
	if (dlen) {
		ip->u.data = malloc(dlen);
		if (!ip->u.data)
			goto undo_inode;
		memcpy(ip->u.data, data, dlen);
		ip->size = dlen;
	}
	if ((excl || (c->flags & LC_CREATE_PIN)) && !lci_iext(ip))
		goto undo_inode;

	s->next_ino++;
	ip->uid = c->uid;
	ip->gid = c->gid;
	ip->mode = (uint16_t)(c->mode & LCI_MODE_MASK);
	if (kind == LC_LNK)
		ip->mode = 0777;
	if (dir->mode & LCI_S_ISGID) {
		ip->gid = dir->gid;
		if (kind == LC_DIR)
			ip->mode |= LCI_S_ISGID;
	}
	ip->atime = ip->mtime = ip->ctime = now;
	lci_iinsert(s, ip);
	lci_use_add(s, ip->uid, 1, lci_use_bytes(ip));
	lci_dir_add(s, dir, d);
	lci_dinsert(s, d);
	if (kind == LC_DIR)
		dir->u.dir->nsub++;
	touch_dir(dir, now);
	if (excl) {
		ip->x->ephemeral = 1;
		ip->x->eph_session = x->origin;
		ip->x->ttl_s = c->ttl_s;
		ip->x->refresh_ns = x->now;
		if (x->origin)
			lci_eph_link(s, ip);
		lci_heap_update(s, ip);
	}
	*out = ip;
	return 0;
undo_inode:
	lci_inode_free(ip);
	return -ENOMEM;
}

static int do_mkdir(struct lc_ctx *x, uint64_t *ino)
{
	const struct lc_cmd *c = x->c;
	struct lc_inode *dir, *ip;
	int r = name_target(x, c->parent, c->name, c->name_len, &dir);

	if (r)
		return r;
	if (lci_dget(x->s, dir, c->name, c->name_len))
		return -EEXIST;
	r = make_node(x, dir, LC_DIR, NULL, 0, false, &ip);
	if (!r)
		*ino = ip->ino;
	return r;
}

static int do_create(struct lc_ctx *x, uint64_t *ino)
{
	const struct lc_cmd *c = x->c;
	struct lc_inode *dir, *ip;
	struct lc_dent *d;
	struct lc_pin *spare = NULL;
	bool pin = (c->flags & LC_CREATE_PIN) && x->origin;
	int r;

	if (c->flags & ~(LC_CREATE_EXCL | LC_CREATE_PIN))
		return -EINVAL;
	r = name_target(x, c->parent, c->name, c->name_len, &dir);
	if (r)
		return r;
	d = lci_dget(x->s, dir, c->name, c->name_len);
	if (d) {
		ip = lci_child(d);
		*ino = ip->ino;
		if (c->flags & LC_CREATE_EXCL)
			return -EEXIST;
		if (ip->kind == LC_DIR)
			return -EISDIR;
		if (ip->kind != LC_REG)
			return -EEXIST;
		if (!pin)
			return 0;
		if (!lci_pin_find(ip, x->origin)) {
			spare = calloc(1, sizeof(*spare));
			if (!spare || !lci_iext(ip)) {
				free(spare);
				return -ENOMEM;
			}
		}
		pin_get(x, ip, &spare);
		free(spare);
		return 0;
	}
	if (pin && !(spare = calloc(1, sizeof(*spare))))
		return -ENOMEM;
	r = make_node(x, dir, LC_REG, NULL, 0, c->flags & LC_CREATE_EXCL, &ip);
	if (!r) {
		*ino = ip->ino;
		if (pin)
			pin_get(x, ip, &spare);
	}
	free(spare);
	return r;
}

static int do_symlink(struct lc_ctx *x, uint64_t *ino)
{
	const struct lc_cmd *c = x->c;
	struct lc_inode *dir, *ip;
	int r = name_target(x, c->parent, c->name, c->name_len, &dir);

	if (r)
		return r;
	if (!c->data_len)
		return -ENOENT;
	if (c->data_len > LC_PATH_MAX - 1)
		return -ENAMETOOLONG;
	if (memchr(c->data, 0, c->data_len))
		return -EINVAL;
	if (lci_dget(x->s, dir, c->name, c->name_len))
		return -EEXIST;
	r = make_node(x, dir, LC_LNK, c->data, c->data_len, false, &ip);
	if (!r)
		*ino = ip->ino;
	return r;
}

static int do_link(struct lc_ctx *x, uint64_t *ino)
{
	const struct lc_cmd *c = x->c;
	struct lc_state *s = x->s;
	struct lc_inode *dir, *ip = lci_iget(s, c->ino);
	struct lc_dent *d;
	int r;

	if (!ip)
		return -ENOENT;
	*ino = ip->ino;
	if (ip->kind == LC_DIR)
		return -EPERM;
	r = name_target(x, c->parent, c->name, c->name_len, &dir);
	if (r)
		return r;
	if (!lci_nlink(ip))
		return -ENOENT;
	if (lci_dget(s, dir, c->name, c->name_len))
		return -EEXIST;
	if (lci_nlink(ip) == UINT32_MAX)
		return -EMLINK;
	r = lci_dir_reserve(dir);
	if (r)
		return r;
	if (lci_dtab_reserve(s, 1) || !lci_iext(ip))
		return -ENOMEM;
	d = lci_xdent_new(ip, c->name, c->name_len);
	if (!d)
		return -ENOMEM;
	lci_dir_add(s, dir, d);
	lci_dinsert(s, d);
	lci_link_append(ip, d);
	ip->ctime = (int64_t)x->now;
	touch_dir(dir, (int64_t)x->now);
	return 0;
}

static int do_unlink(struct lc_ctx *x, uint64_t *ino, bool rmdir)
{
	const struct lc_cmd *c = x->c;
	struct lc_inode *dir;
	struct lc_dent *d;
	int r = name_target(x, c->parent, c->name, c->name_len, &dir);

	if (r)
		return r;
	d = lci_dget(x->s, dir, c->name, c->name_len);
	if (!d)
		return -ENOENT;
	*ino = lci_child(d)->ino;
	if (!rmdir && lci_child(d)->kind == LC_DIR)
		return -EISDIR;
	if (rmdir && lci_child(d)->kind != LC_DIR)
		return -ENOTDIR;
	if (rmdir && lci_child(d)->u.dir->live)
		return -ENOTEMPTY;
	dent_unlink(x->s, d, (int64_t)x->now);
	return 0;
}

/* Is `dir` equal to `a` or inside it?  Walks up, O(depth). */
static bool inside(const struct lc_state *s, const struct lc_inode *a,
		   const struct lc_inode *dir)
{
	for (;;) {
		if (dir == a)
			return true;
		if (dir == s->root || !lci_first_name(dir))
			return false;
		dir = lci_first_name(dir)->dir;
	}
}

/*
 * Renaming moves names between dentry records, never a dentry between
 * inodes (an embedded first name belongs to its inode's memory).  A name
 * of `ip` that takes over another spot is `od` itself when od is the
 * embedded name and the new name fits, else a new separate record.
 */
struct renamed {
	struct lc_inode *ip;
	struct lc_dent *od, *nd;
	uint32_t len;
	char name[LC_NAME_MAX];
};

/* Allocation half: choose or make the record (0 or -ENOMEM). */
static int rn_prepare(struct renamed *rn, struct lc_inode *ip,
		      struct lc_dent *od, const char *name, size_t len)
{
	rn->ip = ip;
	rn->od = od;
	rn->len = (uint32_t)len;
	memcpy(rn->name, name, len);
	if (!(od->ck & LCI_DENT_SEP) && len <= ip->d0cap) {
		rn->nd = od;
		return 0;
	}
	if (!lci_iext(ip))
		return -ENOMEM;
	rn->nd = lci_xdent_new(ip, name, len);
	return rn->nd ? 0 : -ENOMEM;
}

/* Change half: od is already out of the hash and its directory; give the
 * record its new name and place, with cookie `cookie` (0: the next one of
 * `dir`), in directory slot `slot` (dir->n: append). */
static void rn_commit(struct lc_state *s, struct renamed *rn,
		      struct lc_inode *dir, uint64_t cookie, uint32_t slot)
{
	struct lc_dent *nd = rn->nd;

	if (nd == rn->od) {
		memcpy(lci_dname(nd), rn->name, rn->len);
		nd->ck = rn->len;
	} else {
		link_replace(rn->ip, rn->od, nd);
		lci_dent_free(rn->od);
	}
	if (slot == dir->u.dir->n) {
		lci_dir_add(s, dir, nd);
	} else {
		nd->dir = dir;
		nd->ck = (nd->ck & 0x1ffu) | cookie << 9;
		dir->u.dir->v[slot] = lci_slot(nd);
	}
	lci_dinsert(s, nd);
}

static void move_dir_count(struct lc_inode *from, struct lc_inode *to)
{
	from->u.dir->nsub--;
	to->u.dir->nsub++;
}

static int do_exchange(struct lc_ctx *x, struct lc_inode *p1,
		       struct lc_dent *d1, struct lc_inode *p2,
		       struct lc_dent *d2)
{
	struct lc_inode *a = lci_child(d1), *b = lci_child(d2);
	int64_t now = (int64_t)x->now;
	uint64_t c1 = lci_dcookie(d1), c2 = lci_dcookie(d2);
	uint32_t s1 = lci_dir_slot(p1->u.dir, d1);
	uint32_t s2 = lci_dir_slot(p2->u.dir, d2);
	struct renamed ra, rb;

	if (a->kind == LC_DIR && p1 != p2 && inside(x->s, a, p2))
		return -EINVAL;
	if (b->kind == LC_DIR && p1 != p2 && inside(x->s, b, p1))
		return -EINVAL;
	/* a takes name 2 in d2's slot, b name 1 in d1's slot */
	if (rn_prepare(&ra, a, d1, lci_dname(d2), lci_dlen(d2)))
		return -ENOMEM;
	if (rn_prepare(&rb, b, d2, lci_dname(d1), lci_dlen(d1))) {
		if (ra.nd != ra.od)
			lci_dent_free(ra.nd);
		return -ENOMEM;
	}
	lci_dremove(x->s, d1);
	lci_dremove(x->s, d2);
	rn_commit(x->s, &ra, p2, c2, s2);
	rn_commit(x->s, &rb, p1, c1, s1);
	if (p1 != p2) {
		if (a->kind == LC_DIR)
			move_dir_count(p1, p2);
		if (b->kind == LC_DIR)
			move_dir_count(p2, p1);
	}
	touch_dir(p1, now);
	touch_dir(p2, now);
	a->ctime = b->ctime = now;
	return 0;
}

static int do_rename(struct lc_ctx *x, uint64_t *ino)
{
	const struct lc_cmd *c = x->c;
	struct lc_state *s = x->s;
	struct lc_inode *p1, *p2, *src, *dst = NULL;
	struct lc_dent *d1, *d2;
	int64_t now = (int64_t)x->now;
	struct renamed rn;
	uint64_t cookie = 0;
	uint32_t slot, slot1;
	int r;

	r = name_target(x, c->parent, c->name, c->name_len, &p1);
	if (r)
		return r;
	r = name_target(x, c->parent2, c->name2, c->name2_len, &p2);
	if (r)
		return r;
	if ((c->flags & ~(RENAME_NOREPLACE_F | RENAME_EXCHANGE_F)) ||
	    c->flags == (RENAME_NOREPLACE_F | RENAME_EXCHANGE_F))
		return -EINVAL;
	d1 = lci_dget(s, p1, c->name, c->name_len);
	if (!d1)
		return -ENOENT;
	src = lci_child(d1);
	*ino = src->ino;
	d2 = lci_dget(s, p2, c->name2, c->name2_len);
	if (c->flags & RENAME_EXCHANGE_F) {
		if (!d2)
			return -ENOENT;
		if (lci_child(d2) == src)
			return 0;
		return do_exchange(x, p1, d1, p2, d2);
	}
	if (d2 && lci_child(d2) == src)
		return 0;
	if (d2 && (c->flags & RENAME_NOREPLACE_F))
		return -EEXIST;
	if (src->kind == LC_DIR && inside(s, src, p2))
		return -EINVAL;
	if (d2) {
		dst = lci_child(d2);
		if (src->kind == LC_DIR && dst->kind != LC_DIR)
			return -ENOTDIR;
		if (src->kind != LC_DIR && dst->kind == LC_DIR)
			return -EISDIR;
		if (dst->kind == LC_DIR && dst->u.dir->live)
			return -ENOTEMPTY;
		/* the name keeps its cookie and its place in p2 */
		cookie = lci_dcookie(d2);
		slot = lci_dir_slot(p2->u.dir, d2);
	} else {
		r = lci_dir_reserve(p2);
		if (r)
			return r;
		if (lci_dtab_reserve(s, 1))
			return -ENOMEM;
		slot = UINT32_MAX;
	}
	if (rn_prepare(&rn, src, d1, c->name2, c->name2_len))
		return -ENOMEM;
	/* Slots are found before anything changes: the binary search reads
	 * the cookies of live entries, and d2 is about to go. */
	slot1 = lci_dir_slot(p1->u.dir, d1);

	if (d2) {
		lci_dremove(s, d2);
		link_remove(dst, d2);
		name_gone(dst, p2, d2);
		if (dst->kind == LC_DIR)
			p2->u.dir->nsub--;
		dst->ctime = now;
	}
	lci_dremove(s, d1);
	/* A tombstone without compaction: `slot` must stay valid. */
	dir_tomb(p1->u.dir, slot1);
	if (slot == UINT32_MAX)
		slot = p2->u.dir->n;
	rn_commit(s, &rn, p2, cookie, slot);
	if (src->kind == LC_DIR && p1 != p2)
		move_dir_count(p1, p2);
	touch_dir(p1, now);
	touch_dir(p2, now);
	src->ctime = now;
	if (dst && !lci_nlink(dst)) {
		lci_heap_remove(s, dst);
		lci_eph_unlink(s, dst);
		lci_maybe_free(s, dst);
	}
	return 0;
}

static int do_setattr(struct lc_ctx *x, uint64_t *ino)
{
	const struct lc_cmd *c = x->c;
	struct lc_inode *ip = lci_iget(x->s, c->ino);
	int64_t now = (int64_t)x->now;

	if (!ip)
		return -ENOENT;
	*ino = ip->ino;
	if (c->valid & ~0x3fu)
		return -EINVAL;
	/* The new owner's usage entry first: nothing below may fail after
	 * a change. */
	if ((c->valid & LC_SET_UID) && lci_use_reserve(x->s, c->uid))
		return -ENOMEM;
	if (c->valid & LC_SET_SIZE) {
		uint8_t *nd = NULL;

		if (ip->kind == LC_DIR)
			return -EISDIR;
		if (ip->kind != LC_REG)
			return -EINVAL;
		if (c->size > LC_CONTENT_MAX)
			return -EFBIG;
		if (c->size) {
			nd = realloc(ip->u.data, (size_t)c->size);
			if (!nd)
				return -ENOMEM;
			if (c->size > ip->size)
				memset(nd + ip->size, 0,
				       (size_t)c->size - ip->size);
		} else {
			free(ip->u.data);
		}
		ip->u.data = nd;
		lci_use_add(x->s, ip->uid, 0, (int64_t)c->size - (int64_t)ip->size);
		ip->size = (uint32_t)c->size;
		ip->mtime = now;
	}
	if (c->valid & LC_SET_MODE)
		ip->mode = (uint16_t)(c->mode & LCI_MODE_MASK);
	if ((c->valid & LC_SET_UID) && ip->uid != c->uid) {
		lci_use_add(x->s, c->uid, 1, lci_use_bytes(ip));
		lci_use_add(x->s, ip->uid, -1, -lci_use_bytes(ip));
		ip->uid = c->uid;
	}
	if (c->valid & LC_SET_GID)
		ip->gid = c->gid;
	if (c->valid & LC_SET_ATIME)
		ip->atime = c->atime_ns;
	if (c->valid & LC_SET_MTIME)
		ip->mtime = c->mtime_ns;
	ip->ctime = now;
	if (c->valid & (LC_SET_ATIME | LC_SET_MTIME))
		ttl_refresh(x->s, ip, now);
	return 0;
}

static int do_write(struct lc_ctx *x, uint64_t *ino)
{
	const struct lc_cmd *c = x->c;
	struct lc_inode *ip = lci_iget(x->s, c->ino);
	int64_t now = (int64_t)x->now;
	uint64_t end;

	if (!ip)
		return -ENOENT;
	*ino = ip->ino;
	if (ip->kind == LC_DIR)
		return -EISDIR;
	if (ip->kind != LC_REG)
		return -EINVAL;
	if (c->offset > LC_CONTENT_MAX ||
	    c->data_len > LC_CONTENT_MAX - c->offset)
		return -EFBIG;
	end = c->offset + c->data_len;
	if (end > ip->size) {
		uint8_t *nd = realloc(ip->u.data, (size_t)end);

		if (!nd)
			return -ENOMEM;
		memset(nd + ip->size, 0, (size_t)(end - ip->size));
		ip->u.data = nd;
		lci_use_add(x->s, ip->uid, 0, (int64_t)(end - ip->size));
		ip->size = (uint32_t)end;
	}
	if (c->data_len)
		memcpy(ip->u.data + c->offset, c->data, c->data_len);
	ip->mtime = ip->ctime = now;
	ttl_refresh(x->s, ip, now);
	return 0;
}

/* ---- xattrs ---------------------------------------------------------- */

static int xfind(const struct lc_iext *x, const char *name, size_t nlen,
		 uint32_t *pos)
{
	uint32_t lo = 0, hi = x ? x->xn : 0;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct lc_xattr *a = x->xv[mid];
		size_t m = a->nlen < nlen ? a->nlen : nlen;
		int c = memcmp(a->name, name, m);

		if (!c)
			c = a->nlen < nlen ? -1 : a->nlen > nlen;
		if (!c) {
			*pos = mid;
			return 1;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return 0;
}

/* Stores a user xattr (name already validated); flags as setxattr(2). */
int lci_xattr_put(struct lc_inode *ip, const char *name, size_t nlen,
		  const void *val, size_t vlen, uint32_t flags)
{
	struct lc_iext *x;
	struct lc_xattr *a;
	uint32_t pos;
	int found;

	found = xfind(ip->x, name, nlen, &pos);
	if (found && (flags & XATTR_CREATE_F))
		return -EEXIST;
	if (!found && (flags & XATTR_REPLACE_F))
		return -ENODATA;
	if (!found && ip->x && ip->x->xn >= LC_XATTR_PER_INODE)
		return -ENOSPC;
	x = lci_iext(ip);
	if (!x)
		return -ENOMEM;
	a = malloc(sizeof(*a) + nlen + 1 + vlen);
	if (!a)
		return -ENOMEM;
	a->nlen = (uint16_t)nlen;
	a->vlen = (uint16_t)vlen;
	memcpy(a->name, name, nlen);
	a->name[nlen] = 0;
	if (vlen)
		memcpy(a->name + nlen + 1, val, vlen);
	if (found) {
		free(x->xv[pos]);
		x->xv[pos] = a;
		return 0;
	}
	if (!(x->xn & (x->xn - 1)) || !x->xv) {
		uint32_t ncap = x->xn ? x->xn * 2 : 2;
		struct lc_xattr **nv = realloc(x->xv, ncap * sizeof(*nv));

		if (!nv) {
			free(a);
			return -ENOMEM;
		}
		x->xv = nv;
	}
	memmove(&x->xv[pos + 1], &x->xv[pos], (x->xn - pos) * sizeof(*x->xv));
	x->xv[pos] = a;
	x->xn++;
	return 0;
}

static bool xname_is(const struct lc_cmd *c, const char *lit)
{
	size_t n = strlen(lit);

	return c->name_len == n && !memcmp(c->name, lit, n);
}

/* Decimal u32 with an optional trailing newline. */
static int parse_u32(const void *p, uint32_t len, uint32_t *out)
{
	const char *s = p;
	uint64_t v = 0;

	if (len && s[len - 1] == '\n')
		len--;
	if (!len)
		return -EINVAL;
	for (uint32_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

static int xname_check(const struct lc_cmd *c)
{
	if (!c->name_len)
		return -EINVAL;
	if (c->name_len > LC_XATTR_NAME_MAX)
		return -ERANGE;
	if (memchr(c->name, 0, c->name_len))
		return -EINVAL;
	if (c->name_len < 5 || memcmp(c->name, "user.", 5))
		return -EOPNOTSUPP;
	if (c->name_len == 5)
		return -EINVAL;
	return 0;
}

static bool xname_ro(const struct lc_cmd *c)
{
	return xname_is(c, "user.cluck.token") ||
	       xname_is(c, "user.cluck.holders") ||
	       xname_is(c, "user.cluck.waiters") ||
	       xname_is(c, "user.cluck.eta_ms");
}

static bool xname_cluck(const struct lc_cmd *c)
{
	return c->name_len >= 11 && !memcmp(c->name, "user.cluck.", 11);
}

static int do_setxattr(struct lc_ctx *x, uint64_t *ino, bool remove)
{
	const struct lc_cmd *c = x->c;
	struct lc_state *s = x->s;
	struct lc_inode *ip = lci_iget(s, c->ino);
	int64_t now = (int64_t)x->now;
	uint32_t v = 0;
	int r;

	if (!ip)
		return -ENOENT;
	*ino = ip->ino;
	r = xname_check(c);
	if (r)
		return r;
	if (!remove && ((c->flags & ~3u) || c->flags == 3u))
		return -EINVAL;
	if (xname_ro(c))
		return -EPERM;
	if (xname_is(c, "user.cluck.slots") || xname_is(c, "user.cluck.ttl")) {
		bool slots = c->name[11] == 's';
		struct lc_iext *e;
		uint32_t old;

		/* The ttl can remove the file's names and the slots let more
		 * holders in: the owner's decisions, like removing the name
		 * from the sticky root (issue 9).  c->uid is the caller's. */
		if (c->uid != 0 && c->uid != ip->uid)
			return -EPERM;
		if (ip->kind != LC_REG)
			return -EINVAL;
		if (!remove && (r = parse_u32(c->data, c->data_len, &v)))
			return r;
		/* Clearing what is not set changes nothing: not even the
		 * refresh time, whether or not this replica happens to have
		 * the rare-attribute block (a snapshot does not say). */
		if (!v && (!ip->x || !(slots ? ip->x->slots : ip->x->ttl_s)))
			goto done;
		if (!slots && v && lci_heap_reserve(s))
			return -ENOMEM;
		e = lci_iext(ip);
		if (!e)
			return -ENOMEM;
		if (slots) {
			old = e->slots;
			e->slots = v;
			ip->ctime = now;
			if (LCI_LK(ip) && (v == 0 || v > old) && old != v)
				return lci_run_flock(x, ip);
			return 0;
		}
		e->ttl_s = v;
		e->refresh_ns = (uint64_t)now;
		lci_heap_update(s, ip);
done:
		ip->ctime = now;
		return 0;
	}
	if (xname_cluck(c))
		return -EINVAL;
	if (remove) {
		uint32_t pos;

		if (!xfind(ip->x, c->name, c->name_len, &pos))
			return -ENODATA;
		lci_use_add(s, ip->uid, 0, -(int64_t)(ip->x->xv[pos]->nlen +
						       ip->x->xv[pos]->vlen));
		free(ip->x->xv[pos]);
		memmove(&ip->x->xv[pos], &ip->x->xv[pos + 1],
			(ip->x->xn - pos - 1) * sizeof(*ip->x->xv));
		ip->x->xn--;
		ip->ctime = now;
		return 0;
	}
	if (c->data_len > LC_XATTR_VALUE_MAX)
		return -E2BIG;
	{
		int64_t before = lci_use_bytes(ip);

		r = lci_xattr_put(ip, c->name, c->name_len, c->data, c->data_len,
				  c->flags);
		if (!r) {
			lci_use_add(s, ip->uid, 0, lci_use_bytes(ip) - before);
			ip->ctime = now;
		}
	}
	return r;
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

/* Dispatches the namespace commands. */
int lci_ns_apply(struct lc_ctx *x, uint64_t *ino)
{
	switch (x->c->type) {
	case LC_CMD_MKDIR:
		return do_mkdir(x, ino);
	case LC_CMD_CREATE:
		return do_create(x, ino);
	case LC_CMD_SYMLINK:
		return do_symlink(x, ino);
	case LC_CMD_LINK:
		return do_link(x, ino);
	case LC_CMD_UNLINK:
		return do_unlink(x, ino, false);
	case LC_CMD_RMDIR:
		return do_unlink(x, ino, true);
	case LC_CMD_RENAME:
		return do_rename(x, ino);
	case LC_CMD_SETATTR:
		return do_setattr(x, ino);
	case LC_CMD_WRITE:
		return do_write(x, ino);
	case LC_CMD_SETXATTR:
		return do_setxattr(x, ino, false);
	case LC_CMD_REMOVEXATTR:
		return do_setxattr(x, ino, true);
	case LC_CMD_OPEN:
		return do_open(x, ino);
	default:
		return -EINVAL;
	}
}

/* ---- queries ---------------------------------------------------------- */

/* Name lookup; see lc.h. */
int lc_lookup(const struct lc_state *s, uint64_t parent, const char *name,
	      size_t name_len, struct lc_attr *attr)
{
	struct lc_inode *dir;
	struct lc_dent *d;
	int r;

	if (!s || (!name && name_len))
		return -ENOENT;
	r = getdir(s, parent, &dir);
	if (r)
		return r;
	r = lc_name_check(name, name_len);
	if (r == -ENAMETOOLONG)
		return r;
	if (r || reserved(s, dir, name, name_len))
		return -ENOENT;
	d = lci_dget(s, dir, name, name_len);
	if (!d)
		return -ENOENT;
	if (attr)
		lci_attr(lci_child(d), attr);
	return 0;
}

/* Attributes by inode number. */
int lc_getattr(const struct lc_state *s, uint64_t ino, struct lc_attr *attr)
{
	struct lc_inode *ip = s ? lci_iget(s, ino) : NULL;

	if (!ip)
		return -ENOENT;
	if (attr)
		lci_attr(ip, attr);
	return 0;
}

/* Regular file content. */
int lc_content(const struct lc_state *s, uint64_t ino, const uint8_t **data,
	       size_t *len)
{
	struct lc_inode *ip = s ? lci_iget(s, ino) : NULL;

	if (!ip)
		return -ENOENT;
	if (ip->kind == LC_DIR)
		return -EISDIR;
	if (ip->kind != LC_REG)
		return -EINVAL;
	*data = ip->u.data;
	*len = ip->size;
	return 0;
}

/* Symlink target. */
int lc_readlink(const struct lc_state *s, uint64_t ino, const char **target,
		size_t *len)
{
	struct lc_inode *ip = s ? lci_iget(s, ino) : NULL;

	if (!ip)
		return -ENOENT;
	if (ip->kind != LC_LNK)
		return -EINVAL;
	*target = (const char *)ip->u.data;
	*len = ip->size;
	return 0;
}

/* Listing by cookie; see lc.h. */
int lc_readdir(const struct lc_state *s, uint64_t dir, uint64_t after,
	       lc_dirent_fn fn, void *ctx)
{
	struct lc_inode *ip;
	struct lc_dir *d;
	struct lc_attr a;
	int r;

	if (!s)
		return -ENOENT;
	r = getdir(s, dir, &ip);
	if (r)
		return r;
	d = ip->u.dir;
	for (uint32_t i = dir_find(d, after); i < d->n; i++) {
		const struct lc_dent *e = lci_slot_dent(d->v[i]);

		if (!e)
			continue;
		lci_attr(lci_child(e), &a);
		if (fn(ctx, lci_dname(e), lci_dlen(e), &a, lci_dcookie(e)))
			break;
	}
	return 0;
}

/* Parent of a directory. */
int lc_parent(const struct lc_state *s, uint64_t dir, uint64_t *parent)
{
	struct lc_inode *ip;
	int r;

	if (!s)
		return -ENOENT;
	r = getdir(s, dir, &ip);
	if (r)
		return r;
	*parent = ip == s->root ? LC_INO_ROOT : lci_first_name(ip)->dir->ino;
	return 0;
}

/* The name a file had when its last name went (see lc.h). */
int lc_former_name(const struct lc_state *s, uint64_t ino, uint64_t *dir,
		   const char **name, size_t *len)
{
	struct lc_inode *ip = s ? lci_iget(s, ino) : NULL;

	if (!ip || !ip->x || !ip->x->was || lci_first_name(ip))
		return -ENOENT;
	*dir = ip->x->was_dir;
	*name = lci_dname(ip->x->was);
	*len = lci_dlen(ip->x->was);
	return 0;
}

/* Path from the root through first names. */
int lc_path(const struct lc_state *s, uint64_t ino, char *buf, size_t size)
{
	struct lc_inode *ip = s ? lci_iget(s, ino) : NULL;
	const struct lc_inode *p;
	size_t need = 0, pos;

	if (!ip || (ip != s->root && !lci_first_name(ip)))
		return -ENOENT;
	if (!buf || !size)
		return -ERANGE;
	if (ip == s->root) {
		if (size < 2)
			return -ERANGE;
		buf[0] = '/';
		buf[1] = 0;
		return 0;
	}
	for (p = ip; p != s->root; p = lci_first_name(p)->dir)
		need += 1u + lci_dlen(lci_first_name(p));
	if (need + 1 > size)
		return -ERANGE;
	pos = need;
	buf[pos] = 0;
	for (p = ip; p != s->root; p = lci_first_name(p)->dir) {
		const struct lc_dent *d = lci_first_name(p);

		pos -= lci_dlen(d);
		memcpy(buf + pos, lci_dname(d), lci_dlen(d));
		buf[--pos] = '/';
	}
	return 0;
}

/* Stored user xattr value. */
int lc_xattr_get(const struct lc_state *s, uint64_t ino, const char *name,
		 const void **value, size_t *len)
{
	struct lc_inode *ip = s ? lci_iget(s, ino) : NULL;
	uint32_t pos;

	if (!ip)
		return -ENOENT;
	if (!name || !xfind(ip->x, name, strlen(name), &pos))
		return -ENODATA;
	*value = ip->x->xv[pos]->name + ip->x->xv[pos]->nlen + 1;
	*len = ip->x->xv[pos]->vlen;
	return 0;
}

/* Stored user xattr names, in name order. */
int lc_xattr_list(const struct lc_state *s, uint64_t ino,
		  int (*fn)(void *ctx, const char *name), void *ctx)
{
	struct lc_inode *ip = s ? lci_iget(s, ino) : NULL;

	if (!ip)
		return -ENOENT;
	for (uint32_t i = 0; ip->x && i < ip->x->xn; i++)
		if (fn(ctx, ip->x->xv[i]->name))
			break;
	return 0;
}
