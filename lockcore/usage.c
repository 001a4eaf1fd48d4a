/*
 * lockcore/usage.c - what each uid owns: files and bytes of content, for
 * the front end's limits (cluckd(8) "Limits").
 *
 * The counts are derived from the namespace, never stored: every node
 * that applied the same commands has the same counts, and a state loaded
 * from a snapshot recounts them (lci_use_rebuild), so they are neither in
 * the canonical serialization nor in lc_state_hash().  A file is charged
 * to its owner (its uid, as with disk quotas): one inode of any kind, and
 * the bytes of a regular file's content or of a symlink's target and of
 * its user xattrs (names and values).
 *
 * It must never fail half-way: lci_use_reserve() makes the one allocation
 * a later lci_use_add() for that uid may need, so the commands that
 * change ownership allocate first and then cannot fail.  Pure C, no I/O.
 */
#include "lockcore/lci.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Position of uid in the sorted array, or where it would go. */
static size_t use_pos(const struct lc_state *s, uint32_t uid)
{
	size_t lo = 0, hi = s->un;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->uv[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Makes sure uid has an entry (a zero one if new); -ENOMEM leaves the
 * state as it was. */
int lci_use_reserve(struct lc_state *s, uint32_t uid)
{
	size_t k = use_pos(s, uid);

	if (k < s->un && s->uv[k].uid == uid)
		return 0;
	if (s->un == s->ucap) {
		size_t nc = s->ucap ? s->ucap * 2 : 8;
		struct lc_use *nv = realloc(s->uv, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		s->uv = nv;
		s->ucap = nc;
	}
	memmove(&s->uv[k + 1], &s->uv[k], (s->un - k) * sizeof(*s->uv));
	memset(&s->uv[k], 0, sizeof(*s->uv));
	s->uv[k].uid = uid;
	s->un++;
	return 0;
}

/* Adds to uid's counts (entry reserved when anything is added); an entry
 * that falls back to nothing goes, so the array holds only owners. */
void lci_use_add(struct lc_state *s, uint32_t uid, int64_t files, int64_t bytes)
{
	size_t k = use_pos(s, uid);
	struct lc_use *u;

	s->tbytes += (uint64_t)bytes;
	if (k == s->un || s->uv[k].uid != uid)
		return;                 /* not reserved: cannot happen */
	u = &s->uv[k];
	u->files += (uint64_t)files;
	u->bytes += (uint64_t)bytes;
	if (!u->files && !u->bytes) {
		memmove(u, u + 1, (s->un - k - 1) * sizeof(*u));
		s->un--;
	}
}

/* Bytes an inode is charged for: content or target, and the names and
 * values of its user xattrs. */
int64_t lci_use_bytes(const struct lc_inode *ip)
{
	int64_t b = ip->kind == LC_DIR ? 0 : (int64_t)ip->size;

	if (ip->x)
		for (uint32_t i = 0; i < ip->x->xn; i++)
			b += ip->x->xv[i]->nlen + ip->x->xv[i]->vlen;
	return b;
}

/* Recounts everything from the inode table (after a load). */
int lci_use_rebuild(struct lc_state *s)
{
	s->un = 0;
	s->tbytes = 0;
	for (size_t i = 0; i < s->inodes.cap; i++)
		for (struct lc_inode *ip = s->inodes.v[i]; ip; ip = ip->hnext) {
			if (lci_use_reserve(s, ip->uid))
				return -ENOMEM;
			lci_use_add(s, ip->uid, 1, lci_use_bytes(ip));
		}
	return 0;
}

/* What uid owns (see lc.h). */
void lc_usage(const struct lc_state *s, uint32_t uid, struct lc_usage *u)
{
	size_t k;

	memset(u, 0, sizeof(*u));
	if (!s)
		return;
	k = use_pos(s, uid);
	if (k < s->un && s->uv[k].uid == uid) {
		u->files = s->uv[k].files;
		u->bytes = s->uv[k].bytes;
	}
}

/* Everything (see lc.h). */
void lc_usage_total(const struct lc_state *s, struct lc_usage *u)
{
	memset(u, 0, sizeof(*u));
	if (!s)
		return;
	u->files = s->inodes.n;
	u->bytes = s->tbytes;
}
