/*
 * lockcore/image.c - the canonical snapshot image of a state: save (sorted
 * by session id, inode number, cookie, token and queue order) and the
 * state hash over it.  image_load.c reads it back.
 *
 * It must never: read a clock, do I/O, use randomness or seeded hashes,
 * let hash-table layout or pointer values leak into the image, or change
 * the bytes it writes for a state (a node's snapshots on disk and the
 * other replicas' hashes depend on them: a format change takes a new
 * LCI_IMG_VERSION).  Nothing below it calls into it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lci.h"

/* ---- canonical serialization ----------------------------------------- */

/* The image being written: into a growing heap buffer (p, n, cap), or,
 * with `hash` set, through a fixed buffer folded into the running hash `h`
 * whenever it fills (lc_state_hash: no copy of the whole image). */
struct wbuf {
	uint8_t *p;
	size_t n, cap;
	int err;
	bool hash;
	uint64_t h;
	size_t hashed;                 /* bytes already folded into h */
};

static uint64_t mix_words(uint64_t h, const uint8_t *b, size_t n);

/* Folds the whole words of the fixed buffer into the hash. */
static void wfold(struct wbuf *w)
{
	size_t whole = w->n & ~(size_t)7;

	w->h = mix_words(w->h, w->p, whole);
	memmove(w->p, w->p + whole, w->n - whole);
	w->hashed += whole;
	w->n -= whole;
}

static void wput(struct wbuf *w, const void *src, size_t n)
{
	if (w->err)
		return;
	if (w->hash) {
		const uint8_t *b = src;

		if (n <= 8 && w->cap - w->n >= n) {    /* the common small field */
			for (size_t i = 0; i < n; i++)
				w->p[w->n + i] = b[i];
			w->n += n;
			return;
		}
		while (n > 0) {
			size_t k;

			if (w->n == w->cap)
				wfold(w);
			k = w->cap - w->n < n ? w->cap - w->n : n;
			memcpy(w->p + w->n, b, k);
			w->n += k;
			b += k;
			n -= k;
		}
		return;
	}
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

/* Every inode in increasing number order: a new array of *n (NULL on
 * ENOMEM), for what must not depend on the hash table's layout. */
struct lc_inode **lci_inodes_sorted(const struct lc_state *s, size_t *n)
{
	struct lc_inode **iv;
	size_t k = 0;

	iv = malloc((s->inodes.n ? s->inodes.n : 1) * sizeof(*iv));
	if (!iv)
		return NULL;
	for (size_t i = 0; i < s->inodes.cap; i++)
		for (struct lc_inode *ip = s->inodes.v[i]; ip; ip = ip->hnext)
			iv[k++] = ip;
	qsort(iv, k, sizeof(*iv), cmp_ino);
	*n = k;
	return iv;
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
	w8(w, (uint8_t)((x && x->ephemeral ? LCI_IMG_EPHEMERAL : 0) |
			(lk ? LCI_IMG_LOCKS : 0) |
			(x && x->pins ? LCI_IMG_PINS : 0) |
			(x && x->was ? LCI_IMG_WAS : 0) |
			(x && x->orphan ? LCI_IMG_ORPHAN : 0)));
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

/* Writes the canonical image of s through w (w->err set on failure). */
static void save_into(const struct lc_state *s, struct wbuf *w)
{
	struct lc_inode **iv;
	size_t k = 0;

	iv = lci_inodes_sorted(s, &k);
	if (!iv) {
		w->err = -ENOMEM;
		return;
	}

	w32(w, LCI_IMG_MAGIC);
	w32(w, LCI_IMG_VERSION);
	w64(w, s->applied);
	w64(w, s->next_ino);
	w64(w, s->next_token);
	w64(w, s->next_qseq);
	w64(w, s->grants);
	w64(w, s->releases);
	w64(w, s->expirations);
	w64(w, s->interrupts);
	w32(w, (uint32_t)s->sn);
	for (size_t i = 0; i < s->sn; i++) {
		struct lc_sess *se = s->sv[i];
		struct lc_dedup *dv[LC_DEDUP_WINDOW];
		uint32_t nd = 0;

		for (uint32_t j = 0; j < LC_DEDUP_WINDOW; j++)
			if (se->win[j].used)
				dv[nd++] = &se->win[j];
		qsort(dv, nd, sizeof(dv[0]), cmp_dedup);
		w64(w, se->id);
		w32(w, se->name_len);
		wput(w, se->name, se->name_len);
		w8(w, se->has_serial);
		w64(w, se->max_serial);
		w32(w, nd);
		for (uint32_t j = 0; j < nd; j++) {
			w64(w, dv[j]->serial);
			w32(w, (uint32_t)dv[j]->status);
			w64(w, dv[j]->ino);
			w64(w, dv[j]->token);
		}
	}
	w64(w, k);
	for (size_t i = 0; i < k; i++)
		winode(w, iv[i]);
	free(iv);
}

/* Canonical serialization; see lc.h. */
int lc_state_save(const struct lc_state *s, uint8_t **buf, size_t *len)
{
	struct wbuf w = { 0 };

	if (!s || !buf || !len)
		return -EINVAL;
	save_into(s, &w);
	if (w.err) {
		free(w.p);
		return w.err;
	}
	*buf = w.p;
	*len = w.n;
	return 0;
}

/* The hash of an image: a word-at-a-time mix (little-endian words, then
 * the tail, then the length), the same on every node and several times
 * faster than byte-wise FNV, as the simulator hashes a state after every
 * applied entry.  Equality checks only; never stored. */
static inline uint64_t le64_at(const uint8_t *b)
{
	return (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 |
	       (uint64_t)b[3] << 24 | (uint64_t)b[4] << 32 |
	       (uint64_t)b[5] << 40 | (uint64_t)b[6] << 48 |
	       (uint64_t)b[7] << 56;
}

/* Two words per round on two independent lanes (the multiplies overlap),
 * folded together at the end of each call; n is a multiple of 8. */
static uint64_t mix_words(uint64_t h, const uint8_t *b, size_t n)
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t g = h ^ 0x6a09e667f3bcc909ull;

	for (; n >= 16; b += 16, n -= 16) {
		h = (h ^ le64_at(b)) * k;
		g = (g ^ le64_at(b + 8)) * k;
		h ^= h >> 29;
		g ^= g >> 29;
	}
	if (n >= 8) {
		h = (h ^ le64_at(b)) * k;
		h ^= h >> 29;
	}
	return (h ^ (g >> 1)) * k;
}

/* Hash of the canonical serialization (0 if it cannot be built), written
 * through a fixed buffer: no heap copy of the image. */
uint64_t lc_state_hash(const struct lc_state *s)
{
	uint8_t chunk[4096];
	struct wbuf w = { .p = chunk, .cap = sizeof(chunk), .hash = true,
			  .h = 0xcbf29ce484222325ull };
	uint64_t h, t = 0;

	if (!s)
		return 0;
	save_into(s, &w);
	if (w.err)
		return 0;
	wfold(&w);
	for (size_t i = w.n; i > 0; i--)
		t = t << 8 | w.p[i - 1];
	h = (w.h ^ t ^ (uint64_t)(w.hashed + w.n) << 56) * 0x9e3779b97f4a7c15ull;
	h ^= h >> 32;
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}
