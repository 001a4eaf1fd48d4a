/*
 * lockcore/xattr.c - extended attributes of an inode: stored user xattrs
 * (sorted by name), the cluck ones that set a lockfile's ttl and slots,
 * the SETXATTR / REMOVEXATTR commands and the xattr queries.
 *
 * It must never: read a clock (cmd->time_ns is the only time), do I/O,
 * store a "user.cluck." name (those are settings, never stored bytes), or
 * change state before every allocation the command needs has succeeded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lci.h"

#define XATTR_CREATE_F  1u
#define XATTR_REPLACE_F 2u

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

/* SETXATTR / REMOVEXATTR: user xattrs, and the cluck ones (ttl, slots). */
int lci_setxattr(struct lc_ctx *x, uint64_t *ino, bool remove)
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
