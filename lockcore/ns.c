/*
 * lockcore/ns.c - the namespace commands: mkdir, create (ephemeral files
 * and their ttl), symlink, hard links, unlink, rename, attributes,
 * content and OPEN, their dispatch (xattrs in xattr.c), plus the
 * read-only namespace queries.  An inode's own life (names, directories,
 * expiry, pins) is inode.c's.
 *
 * Must never: read a clock (cmd->time_ns is the only time), do I/O, walk
 * all files for one operation, let a command create, link, rename or
 * remove a reserved root name (lc_reserved_name()), or change state
 * before every allocation the operation needs has succeeded (an -ENOMEM
 * leaves the state as is).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lci.h"

#define RENAME_NOREPLACE_F 1u
#define RENAME_EXCHANGE_F  2u

/* ---- open handles ------------------------------------------------------ */

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

/* ---- command helpers ------------------------------------------------------ */

static bool reserved(const struct lc_state *s, const struct lc_inode *dir,
		     const char *n, size_t len)
{
	if (dir != s->root)
		return false;
	return lc_reserved_name(n, len) != NULL;
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
	lci_dent_unlink(x->s, d, (int64_t)x->now);
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
		lci_link_replace(rn->ip, rn->od, nd);
		lci_dent_free(rn->od);
	}
	if (slot == dir->u.dir->n) {
		lci_dir_add(s, dir, nd);
	} else {
		nd->dir = dir;
		nd->ck = (nd->ck & LCI_CK_LOW) | cookie << LCI_CK_SHIFT;
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
		lci_link_remove(dst, d2);
		lci_name_gone(dst, p2, d2);
		if (dst->kind == LC_DIR)
			p2->u.dir->nsub--;
		dst->ctime = now;
	}
	lci_dremove(s, d1);
	/* A tombstone without compaction: `slot` must stay valid. */
	lci_dir_tomb(p1->u.dir, slot1);
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
		return lci_setxattr(x, ino, false);
	case LC_CMD_REMOVEXATTR:
		return lci_setxattr(x, ino, true);
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
	for (uint32_t i = lci_dir_find(d, after); i < d->n; i++) {
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
