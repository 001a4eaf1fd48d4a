/*
 * lockcore/image_load.c - builds a state from a snapshot image that
 * image.c wrote: sessions and their dedup windows, then each inode in
 * named steps (identity, attributes and flag bits, xattrs, directory
 * entries or content, lock state, pins, former name), then names linked
 * to their inodes, the tree checked, and the derived structures rebuilt.
 *
 * It must never: trust a byte (lc_state_load() is fed untrusted input: it
 * must reject, never crash or leak), allocate for a count the bytes left
 * cannot hold, or accept anything but the canonical encoding (it
 * re-encodes with lc_state_save() and compares).  Nothing below it calls
 * into it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lci.h"

/* Fewest bytes one record takes in an image, to refuse a count that the
 * bytes left cannot hold before allocating for it. */
#define IMG_SESS_MIN  25u              /* id, name length, serial, max, count */
#define IMG_INODE_MIN 40u              /* well under an inode's fixed fields */
#define IMG_DENT_MIN  19u              /* cookie, child, length, one byte */
#define IMG_PIN_MIN   12u              /* session, count */

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

	if (r->bad || ip->kind != LC_REG || !n || n > rleft(r) / IMG_PIN_MIN)
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

/* The inode's number and kind: numbers increase and start with the root,
 * which exists already; any other inode is made here and hashed. */
static int load_ident(struct loadctx *L, uint64_t *prev, struct lc_inode **out)
{
	struct rbuf *r = &L->r;
	struct lc_state *s = L->s;
	struct lc_inode *ip;
	uint64_t ino = r64(r);
	uint8_t kind = r8(r);

	if (r->bad || kind < LC_DIR || kind > LC_LNK || ino <= *prev ||
	    (ino != LC_INO_ROOT && (ino < LC_INO_FIRST || ino >= s->next_ino)) ||
	    (*prev == 0 && ino != LC_INO_ROOT) ||
	    (ino == LC_INO_ROOT && kind != LC_DIR))
		return -EINVAL;
	*prev = ino;
	if (ino == LC_INO_ROOT) {
		*out = s->root;
		return 0;
	}
	ip = lci_inode_new(ino, kind, 0);
	if (!ip)
		return -ENOMEM;
	if (lci_itab_reserve(s, 1)) {
		lci_inode_free(ip);
		return -ENOMEM;
	}
	lci_iinsert(s, ip);
	*out = ip;
	return 0;
}

/* Fixed attributes, the flag bits (enum lci_img_flag) and the ttl,
 * slots and ephemeral fields, which need the rare-attribute block when
 * any is set; *nx is the number of xattrs that follow. */
static int load_attrs(struct loadctx *L, struct lc_inode *ip, uint8_t *flags,
		      uint32_t *nx)
{
	struct rbuf *r = &L->r;
	uint32_t ttl, slots;
	uint64_t eph, refresh;
	uint8_t f;

	ip->mode = r16(r);
	ip->uid = r32(r);
	ip->gid = r32(r);
	ip->atime = (int64_t)r64(r);
	ip->mtime = (int64_t)r64(r);
	ip->ctime = (int64_t)r64(r);
	*flags = f = r8(r);
	eph = r64(r);
	refresh = r64(r);
	ttl = r32(r);
	slots = r32(r);
	*nx = r32(r);
	if (r->bad || (ip->mode & ~LCI_MODE_MASK) ||
	    (f & ~(uint32_t)LCI_IMG_ALL) || *nx > LC_XATTR_PER_INODE ||
	    (ip->kind != LC_REG && (slots || ttl)) ||
	    (!(f & LCI_IMG_EPHEMERAL) && eph) || ((f & LCI_IMG_ORPHAN) && !eph))
		return -EINVAL;
	if ((f & LCI_IMG_EPHEMERAL) || eph || refresh || ttl || slots || *nx) {
		struct lc_iext *x = lci_iext(ip);

		if (!x)
			return -ENOMEM;
		x->ephemeral = (f & LCI_IMG_EPHEMERAL) != 0;
		x->orphan = (f & LCI_IMG_ORPHAN) != 0;
		x->eph_session = eph;
		x->refresh_ns = refresh;
		x->ttl_s = ttl;
		x->slots = slots;
	}
	return 0;
}

/* `nx` stored user xattrs: "user." names, never "user.cluck." ones. */
static int load_xattrs(struct loadctx *L, struct lc_inode *ip, uint32_t nx)
{
	struct rbuf *r = &L->r;
	int e;

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
	return 0;
}

/* One entry of directory ip, cookies increasing after *lastc, a valid
 * name that is new in the directory and not reserved in the root. */
static int load_dent(struct loadctx *L, struct lc_inode *ip, uint64_t *lastc)
{
	struct rbuf *r = &L->r;
	struct lc_state *s = L->s;
	struct lc_dir *d = ip->u.dir;
	uint64_t cookie = r64(r), child = r64(r);
	uint16_t len = r16(r);
	const char *nm = (const char *)rget(r, len);
	struct lc_dent *de;

	if (r->bad || cookie <= *lastc || cookie >= d->next_cookie ||
	    lc_name_check(nm, len) ||
	    (ip == s->root && lc_reserved_name(nm, len)) ||
	    lci_dget(s, ip, nm, len))
		return -EINVAL;
	*lastc = cookie;
	/* A separate record for now: load_link() moves each first name into
	 * its inode. */
	de = lci_xdent_new(NULL, nm, len);
	if (!de)
		return -ENOMEM;
	de->dir = ip;
	de->ck |= cookie << LCI_CK_SHIFT;
	if (lci_dtab_reserve(s, 1) || lci_dir_reserve(ip) ||
	    pend_add(L, de, child)) {
		lci_dent_free(de);
		return -ENOMEM;
	}
	lci_dinsert(s, de);
	d->v[d->n++] = lci_slot(de);
	d->live++;
	return 0;
}

/* A directory: its next cookie, then its live entries in cookie order. */
static int load_dir(struct loadctx *L, struct lc_inode *ip)
{
	struct rbuf *r = &L->r;
	struct lc_dir *d = ip->u.dir;
	uint64_t lastc = 0;
	uint32_t n;
	int e;

	d->next_cookie = r64(r);
	n = r32(r);
	if (r->bad || n > rleft(r) / IMG_DENT_MIN || !d->next_cookie ||
	    d->next_cookie > LCI_COOKIE_MAX + 1)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++)
		if ((e = load_dent(L, ip, &lastc)))
			return e;
	return 0;
}

/* A regular file's content or a symlink's target (never empty). */
static int load_content(struct loadctx *L, struct lc_inode *ip)
{
	struct rbuf *r = &L->r;
	uint32_t sz = r32(r);
	const uint8_t *p;

	if (r->bad || sz > (ip->kind == LC_REG ? LC_CONTENT_MAX
					       : LC_PATH_MAX - 1) ||
	    (ip->kind == LC_LNK && !sz))
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
	return 0;
}

/* One inode as winode() wrote it: identity, attributes, xattrs, entries
 * or content, then what its flag bits say follows. */
static int load_inode(struct loadctx *L, uint64_t *prev)
{
	struct lc_inode *ip;
	uint8_t flags;
	uint32_t nx;
	int e;

	if ((e = load_ident(L, prev, &ip)) ||
	    (e = load_attrs(L, ip, &flags, &nx)) ||
	    (e = load_xattrs(L, ip, nx)))
		return e;
	e = ip->kind == LC_DIR ? load_dir(L, ip) : load_content(L, ip);
	if (e)
		return e;
	if (flags & LCI_IMG_LOCKS) {
		if (ip->kind != LC_REG)
			return -EINVAL;
		e = load_lk(L, ip);
		if (e)
			return e;
	}
	if (flags & LCI_IMG_PINS) {
		e = load_pins(L, ip);
		if (e)
			return e;
	}
	if (flags & LCI_IMG_WAS)
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
	ip->d0.ck = (uint64_t)len | lci_dcookie(d) << LCI_CK_SHIFT;
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
	queue = malloc((s->inodes.n ? s->inodes.n : 1) * sizeof(*queue));
	if (!queue)
		return -ENOMEM;
	queue[qn++] = s->root;
	while (qh < qn) {
		struct lc_dir *d = queue[qh++]->u.dir;

		for (uint32_t i = 0; i < d->n; i++) {
			struct lc_inode *c = lci_child(lci_slot_dent(d->v[i]));

			if (c->kind == LC_DIR) {
				if (qn >= s->inodes.n)
					goto out;
				queue[qn++] = c;
			}
		}
	}
	for (size_t i = 0; i < s->inodes.cap; i++)
		for (struct lc_inode *ip = s->inodes.v[i]; ip; ip = ip->hnext) {
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

		for (size_t i = 0; i < s->inodes.cap; i++)
			for (struct lc_inode *ip = s->inodes.v[i]; ip;
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

	iv = lci_inodes_sorted(s, &k);
	if (!iv)
		return -ENOMEM;
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
	if (r32(r) != LCI_IMG_MAGIC || r32(r) != LCI_IMG_VERSION)
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
	if (ns > rleft(r) / IMG_SESS_MIN)
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
		se = lci_sess_new(id, nm, nl);
		if (!se) {
			e = -ENOMEM;
			goto undo_state;
		}
		if (lci_sess_insert(s, se)) {
			lci_sess_free(se);
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
	if (r->bad || ni == 0 || ni > rleft(r) / IMG_INODE_MIN)
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
