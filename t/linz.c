/*
 * t/linz.c - linearizability checker for lock histories (see t/linz.h).
 *
 * The history is split by key and every partition is searched with the
 * Wing-Gong-Lowe algorithm as Porcupine implements it: the call and return
 * events sit in one time-ordered linked list; the search linearises the
 * earliest call it can, lifting the op's two events out of the list, and
 * backtracks when it meets the return of an op it has not linearised.  A
 * cache of (set of linearised ops, model state) already explored prunes
 * the exponential blow-up.  Pending ops (ret == LINZ_INF) have their return
 * at the very end, so meeting one means every completed op is placed.
 * Memo keys are variable length: a ranged key's state is its list of
 * POSIX locks, in a canonical form so that equal states compare equal.
 *
 * It must never do I/O, read a clock or draw random numbers, and never
 * crash or loop forever on any input: the step budget bounds the work.
 */
#include "t/linz.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct keyslots {
	uint64_t key;
	uint32_t slots;
};

struct linz {
	struct linz_op *ops;
	size_t nops, capops;
	struct keyslots *ks;
	size_t nks, capks;
	uint64_t budget;
	uint64_t steps;
	enum linz_result last;
	bool checked;
	char expl[1024];
};

/* One call or return event in the WGL list. */
struct ent {
	uint64_t time;
	uint32_t op;                   /* index into the partition */
	bool ret;
	struct ent *prev, *next, *match;
};

struct rng;
struct mrec;

/* A partition under search. */
struct part {
	const struct linz *h;
	uint64_t key;
	uint32_t slots;                /* before the first set-slots */
	bool ranged;                   /* POSIX byte ranges, not whole key */
	uint32_t m;                    /* ops in the partition */
	const uint32_t *idx;           /* partition op -> history op index */
	uint32_t *cl;                  /* partition op -> dense client index */
	uint32_t *clid;                /* dense client index -> client id */
	uint32_t nc;
	size_t wo, wc;                 /* words of op bitset, of client bitset */
	size_t maxr;                   /* most POSIX locks a state can have */
	size_t sw;                     /* most words of an encoded state */
	struct rng *scr;               /* maxr + 2 locks of scratch */
	/* memo: open addressing over records of variable-length keys */
	uint64_t *arena;
	size_t narena, caparena;       /* in words */
	struct mrec *rec;
	size_t nrec, caprec;
	uint32_t *tab;                 /* 0 = empty, else record index + 1 */
	size_t tabsize;
};

static const char *kind_name(enum linz_kind k)
{
	switch (k) {
	case LINZ_ACQ_EX: return "acquire-ex";
	case LINZ_ACQ_SH: return "acquire-sh";
	case LINZ_TRY_EX: return "try-ex";
	case LINZ_TRY_SH: return "try-sh";
	case LINZ_RELEASE: return "release";
	case LINZ_SET_SLOTS: return "set-slots";
	case LINZ_RELEASE_ALL: return "release-all";
	}
	return "?";
}

static const char *out_name(enum linz_out o)
{
	switch (o) {
	case LINZ_OK: return "ok";
	case LINZ_BUSY: return "busy";
	case LINZ_ERR: return "error";
	}
	return "?";
}

/* linz_new: see t/linz.h. */
struct linz *linz_new(uint64_t budget)
{
	struct linz *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->budget = budget;
	h->last = LINZ_LINEARIZABLE;
	return h;
}

/* linz_free: see t/linz.h. */
void linz_free(struct linz *h)
{
	if (!h)
		return;
	free(h->ops);
	free(h->ks);
	free(h);
}

static uint32_t slots_of(const struct linz *h, uint64_t key)
{
	for (size_t i = 0; i < h->nks; i++)
		if (h->ks[i].key == key)
			return h->ks[i].slots;
	return 0;
}

/* linz_set_slots: see t/linz.h. */
int linz_set_slots(struct linz *h, uint64_t key, uint32_t slots)
{
	if (!h)
		return -EINVAL;
	for (size_t i = 0; i < h->nks; i++) {
		if (h->ks[i].key == key) {
			h->ks[i].slots = slots;
			return 0;
		}
	}
	if (h->nks == h->capks) {
		size_t cap = h->capks ? h->capks * 2 : 8;
		struct keyslots *n = realloc(h->ks, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		h->ks = n;
		h->capks = cap;
	}
	h->ks[h->nks].key = key;
	h->ks[h->nks].slots = slots;
	h->nks++;
	return 0;
}

/* Is op a lock op on a byte range (which makes its key a ranged one)? */
static bool is_ranged(const struct linz_op *op)
{
	return op->ranged && op->kind <= LINZ_RELEASE;
}

/* linz_add_op: see t/linz.h. */
int linz_add_op(struct linz *h, const struct linz_op *op)
{
	if (!h || !op)
		return -EINVAL;
	if ((unsigned)op->kind > LINZ_RELEASE_ALL)
		return -EINVAL;
	if (op->ret != LINZ_INF) {
		if ((unsigned)op->out > LINZ_ERR)
			return -EINVAL;
		/* only tries answer busy */
		if (op->out == LINZ_BUSY && op->kind != LINZ_TRY_EX &&
		    op->kind != LINZ_TRY_SH)
			return -EINVAL;
		/* a session's end cannot be refused */
		if (op->kind == LINZ_RELEASE_ALL && op->out != LINZ_OK)
			return -EINVAL;
	}
	if (is_ranged(op) && op->start > op->end)
		return -EINVAL;
	if (op->ret < op->call)
		return -EINVAL;
	/* indices are returned as int and stored as uint32_t */
	if (h->nops >= INT32_MAX)
		return -ENOMEM;
	if (h->nops == h->capops) {
		size_t cap = h->capops ? h->capops * 2 : 64;
		struct linz_op *n = realloc(h->ops, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		h->ops = n;
		h->capops = cap;
	}
	h->ops[h->nops] = *op;
	return (int)h->nops++;
}

/* linz_steps: see t/linz.h. */
uint64_t linz_steps(const struct linz *h)
{
	return h ? h->steps : 0;
}

/* ---- the sequential model ------------------------------------------- */

/* One POSIX lock of a ranged key: client c holds [s, e] in one mode. */
struct rng {
	uint32_t c;                    /* dense client index */
	bool ex;
	uint64_t s, e;
};

/*
 * Model state.  Whole keys use ex and sh; ranged keys the list r[], kept
 * canonical (sorted by client then start, a client's touching locks of one
 * mode merged) so that equal states encode to equal words.
 */
struct mstate {
	uint32_t slots;
	int64_t ex;                    /* dense holder or -1 */
	uint64_t *sh;                  /* wc words */
	struct rng *r;
	uint32_t nr;
};

static bool bit(const uint64_t *w, uint32_t i)
{
	return (w[i / 64] >> (i % 64)) & 1u;
}

static void setbit(uint64_t *w, uint32_t i, bool v)
{
	if (v)
		w[i / 64] |= UINT64_C(1) << (i % 64);
	else
		w[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

static uint32_t popcnt(const uint64_t *w, size_t n)
{
	uint32_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += (uint32_t)__builtin_popcountll(w[i]);
	return c;
}

static void mstate_copy(const struct part *p, struct mstate *d,
			const struct mstate *s)
{
	d->slots = s->slots;
	d->ex = s->ex;
	if (p->ranged) {
		memcpy(d->r, s->r, s->nr * sizeof(*d->r));
		d->nr = s->nr;
	} else {
		memcpy(d->sh, s->sh, p->wc * sizeof(*d->sh));
	}
}

/* Writes the canonical encoding of st to w; returns its length in words
 * (at most p->sw). */
static size_t mstate_enc(const struct part *p, const struct mstate *st,
			 uint64_t *w)
{
	w[0] = st->slots;
	if (!p->ranged) {
		w[1] = (uint64_t)st->ex;
		memcpy(w + 2, st->sh, p->wc * sizeof(*w));
		return 2 + p->wc;
	}
	w[1] = st->nr;
	for (uint32_t i = 0; i < st->nr; i++) {
		w[2 + 3 * i] = (uint64_t)st->r[i].c << 1 | st->r[i].ex;
		w[3 + 3 * i] = st->r[i].s;
		w[4 + 3 * i] = st->r[i].e;
	}
	return 2 + 3 * (size_t)st->nr;
}

/* The inverse of mstate_enc(). */
static void mstate_dec(const struct part *p, struct mstate *st,
		       const uint64_t *w)
{
	st->slots = (uint32_t)w[0];
	if (!p->ranged) {
		st->ex = (int64_t)w[1];
		memcpy(st->sh, w + 2, p->wc * sizeof(*w));
		return;
	}
	st->nr = (uint32_t)w[1];
	for (uint32_t i = 0; i < st->nr; i++) {
		st->r[i].c = (uint32_t)(w[2 + 3 * i] >> 1);
		st->r[i].ex = w[2 + 3 * i] & 1;
		st->r[i].s = w[3 + 3 * i];
		st->r[i].e = w[4 + 3 * i];
	}
}

enum mres { M_OK, M_WAIT, M_ERR };

/*
 * Applies one whole-key op of client c to st in place when it is granted.
 * M_WAIT means an acquire would have to wait (a try answers busy); M_ERR a
 * release of something not held.  Only M_OK changes st.
 */
static enum mres mstep(const struct part *p, struct mstate *st,
		       enum linz_kind k, uint32_t c)
{
	bool hex = st->ex == (int64_t)c;
	bool hsh = bit(st->sh, c);
	uint32_t nsh = popcnt(st->sh, p->wc);

	switch (k) {
	case LINZ_ACQ_EX:
	case LINZ_TRY_EX:
		if (hex)
			return M_OK;
		if (st->ex >= 0 || nsh - (hsh ? 1 : 0) > 0)
			return M_WAIT;
		st->ex = c;
		setbit(st->sh, c, false);
		return M_OK;
	case LINZ_ACQ_SH:
	case LINZ_TRY_SH:
		if (hsh)
			return M_OK;
		if (hex) {      /* downgrade: nobody else can hold it */
			st->ex = -1;
			setbit(st->sh, c, true);
			return M_OK;
		}
		/* a lowered count takes nothing away: nsh may exceed it */
		if (st->ex >= 0 || (st->slots && nsh >= st->slots))
			return M_WAIT;
		setbit(st->sh, c, true);
		return M_OK;
	case LINZ_RELEASE:
	case LINZ_RELEASE_ALL:
		if (hex) {
			st->ex = -1;
			return M_OK;
		}
		if (hsh) {
			setbit(st->sh, c, false);
			return M_OK;
		}
		return k == LINZ_RELEASE_ALL ? M_OK : M_ERR;
	case LINZ_SET_SLOTS:
		break;                 /* handled by try_op */
	}
	return M_ERR;
}

static int rng_cmp(const void *a, const void *b)
{
	const struct rng *x = a, *y = b;

	if (x->c != y->c)
		return x->c < y->c ? -1 : 1;
	return x->s < y->s ? -1 : x->s > y->s;
}

/* Do [a, b] and [s, e] share a byte? */
static bool overlaps(uint64_t a, uint64_t b, uint64_t s, uint64_t e)
{
	return a <= e && s <= b;
}

/*
 * Sets (ex/sh) or clears (!lock) [s, e] for client c, as Linux's
 * posix_lock_file() does: the client's own locks on those bytes are
 * trimmed, split or dropped, the new lock put in and merged with touching
 * locks of the same mode, so the list stays canonical.  A client's locks
 * are disjoint, so at most one of them is split: each call grows the list
 * by at most two, which is what p->maxr counts on.
 */
static void rstep(const struct part *p, struct mstate *st, uint32_t c,
		  bool lock, bool ex, uint64_t s, uint64_t e)
{
	struct rng *o = p->scr;
	uint32_t n = 0, w = 0;

	for (uint32_t i = 0; i < st->nr; i++) {
		const struct rng *h = &st->r[i];

		if (h->c != c || !overlaps(h->s, h->e, s, e)) {
			o[n++] = *h;
			continue;
		}
		if (h->s < s) {
			o[n] = *h;
			o[n++].e = s - 1;
		}
		if (h->e > e) {
			o[n] = *h;
			o[n++].s = e + 1;
		}
	}
	if (lock) {
		o[n].c = c;
		o[n].ex = ex;
		o[n].s = s;
		o[n].e = e;
		n++;
	}
	qsort(o, n, sizeof(*o), rng_cmp);
	for (uint32_t i = 0; i < n; i++) {
		struct rng *l = w ? &st->r[w - 1] : NULL;

		if (l && l->c == o[i].c && l->ex == o[i].ex &&
		    l->e != UINT64_MAX && l->e + 1 >= o[i].s) {
			if (o[i].e > l->e)
				l->e = o[i].e;
			continue;
		}
		st->r[w++] = o[i];
	}
	st->nr = w;
}

/* Would an ex (or sh) lock of c on [s, e] conflict with another client? */
static bool rconflict(const struct mstate *st, uint32_t c, bool ex,
		      uint64_t s, uint64_t e)
{
	for (uint32_t i = 0; i < st->nr; i++) {
		const struct rng *h = &st->r[i];

		if (h->c != c && (ex || h->ex) && overlaps(h->s, h->e, s, e))
			return true;
	}
	return false;
}

/* The ranged counterpart of mstep(): releases never fail. */
static enum mres rmstep(const struct part *p, struct mstate *st,
			const struct linz_op *op, uint32_t c)
{
	uint64_t s = op->ranged ? op->start : 0;
	uint64_t e = op->ranged ? op->end : UINT64_MAX;
	bool ex = op->kind == LINZ_ACQ_EX || op->kind == LINZ_TRY_EX;

	switch (op->kind) {
	case LINZ_ACQ_EX:
	case LINZ_TRY_EX:
	case LINZ_ACQ_SH:
	case LINZ_TRY_SH:
		if (rconflict(st, c, ex, s, e))
			return M_WAIT;
		rstep(p, st, c, true, ex, s, e);
		return M_OK;
	case LINZ_RELEASE:
		rstep(p, st, c, false, false, s, e);
		return M_OK;
	case LINZ_RELEASE_ALL:
		rstep(p, st, c, false, false, 0, UINT64_MAX);
		return M_OK;
	case LINZ_SET_SLOTS:
		break;                 /* handled by try_op */
	}
	return M_ERR;
}

/*
 * May op o be linearised now?  On yes, st holds the state after it.  A
 * completed op must get exactly its recorded output; a pending one is only
 * worth placing when it takes effect (otherwise leaving it out is the same).
 */
static bool try_op(const struct part *p, struct mstate *st, uint32_t o)
{
	const struct linz_op *op = &p->h->ops[p->idx[o]];
	enum mres r;

	if (op->kind == LINZ_SET_SLOTS) {
		/* completed ones that failed were filtered out; POSIX locks
		 * ignore the count, and leaving it out of a ranged state
		 * lets more states meet in the memo */
		if (!p->ranged)
			st->slots = op->slots;
		return true;
	}
	if (p->ranged) {
		/* a failed POSIX release did nothing: it fits anywhere */
		if (op->kind == LINZ_RELEASE && op->ret != LINZ_INF &&
		    op->out == LINZ_ERR)
			return true;
		r = rmstep(p, st, op, p->cl[o]);
	} else {
		r = mstep(p, st, op->kind, p->cl[o]);
	}
	if (op->ret == LINZ_INF)
		return r == M_OK;
	switch (op->kind) {
	case LINZ_ACQ_EX:
	case LINZ_ACQ_SH:
		/* acquires that returned an error were filtered out */
		return r == M_OK;
	case LINZ_TRY_EX:
	case LINZ_TRY_SH:
		return op->out == (r == M_OK ? LINZ_OK : LINZ_BUSY);
	case LINZ_RELEASE:
		return op->out == (r == M_OK ? LINZ_OK : LINZ_ERR);
	case LINZ_RELEASE_ALL:
		return r == M_OK;      /* linz_add_op() insisted on LINZ_OK */
	case LINZ_SET_SLOTS:
		break;
	}
	return false;
}

/* ---- the memo --------------------------------------------------------- */

/* Keys are variable length (a ranged state grows with its locks), so the
 * table points at records of an arena of words. */
struct mrec {
	uint64_t hash;
	size_t off;                    /* in words, into p->arena */
	size_t len;
};

static uint64_t hash_words(const uint64_t *w, size_t n)
{
	uint64_t x = 0x9e3779b97f4a7c15u ^ n;

	for (size_t i = 0; i < n; i++) {
		x ^= w[i] + 0x9e3779b97f4a7c15u + (x << 6) + (x >> 2);
		x *= 0xff51afd7ed558ccdu;
		x ^= x >> 33;
	}
	return x;
}

static int memo_grow(struct part *p)
{
	size_t ns = p->tabsize ? p->tabsize * 2 : 1024;
	uint32_t *nt = calloc(ns, sizeof(*nt));

	if (!nt)
		return -ENOMEM;
	for (size_t i = 0; i < p->nrec; i++) {
		size_t j = p->rec[i].hash & (ns - 1);

		while (nt[j])
			j = (j + 1) & (ns - 1);
		nt[j] = (uint32_t)(i + 1);
	}
	free(p->tab);
	p->tab = nt;
	p->tabsize = ns;
	return 0;
}

/* Inserts key[0..len); 1 if it was new (*at = its record), 0 if already
 * seen, -ENOMEM. */
static int memo_insert(struct part *p, const uint64_t *key, size_t len,
		       uint32_t *at)
{
	uint64_t hv;
	size_t j;

	if ((p->nrec + 1) * 2 > p->tabsize) {
		if (p->nrec >= UINT32_MAX / 2 || memo_grow(p) < 0)
			return -ENOMEM;
	}
	hv = hash_words(key, len);
	for (j = hv & (p->tabsize - 1); p->tab[j];
	     j = (j + 1) & (p->tabsize - 1)) {
		const struct mrec *m = &p->rec[p->tab[j] - 1];

		if (m->hash == hv && m->len == len &&
		    !memcmp(p->arena + m->off, key, len * sizeof(*key)))
			return 0;
	}
	if (p->nrec == p->caprec) {
		size_t cap = p->caprec ? p->caprec * 2 : 1024;
		struct mrec *nr = realloc(p->rec, cap * sizeof(*nr));

		if (!nr)
			return -ENOMEM;
		p->rec = nr;
		p->caprec = cap;
	}
	if (p->narena + len > p->caparena) {
		size_t cap = p->caparena ? p->caparena : 4096;
		uint64_t *na;

		while (cap < p->narena + len)
			cap *= 2;
		na = realloc(p->arena, cap * sizeof(*na));
		if (!na)
			return -ENOMEM;
		p->arena = na;
		p->caparena = cap;
	}
	memcpy(p->arena + p->narena, key, len * sizeof(*key));
	p->rec[p->nrec].hash = hv;
	p->rec[p->nrec].off = p->narena;
	p->rec[p->nrec].len = len;
	p->narena += len;
	*at = (uint32_t)p->nrec;
	p->tab[j] = (uint32_t)(++p->nrec);
	return 1;
}

/* ---- the search ------------------------------------------------------- */

static int ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	/* calls first at a tie: touching intervals count as overlapping */
	if (x->ret != y->ret)
		return x->ret ? 1 : -1;
	return x->op < y->op ? -1 : x->op > y->op;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void lift(struct ent *e)
{
	struct ent *m = e->match;

	e->prev->next = e->next;
	e->next->prev = e->prev;
	m->prev->next = m->next;
	if (m->next)
		m->next->prev = m->prev;
}

static void unlift(struct ent *e)
{
	struct ent *m = e->match;

	m->prev->next = m;
	if (m->next)
		m->next->prev = m;
	e->prev->next = e;
	e->next->prev = e;
}

/* Appends to buf[*n..len) like snprintf, keeping *n <= len. */
static void cat(char *buf, size_t len, size_t *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void cat(char *buf, size_t len, size_t *n, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (*n >= len)
		return;
	va_start(ap, fmt);
	w = vsnprintf(buf + *n, len - *n, fmt, ap);
	va_end(ap);
	if (w < 0)
		return;
	*n += (size_t)w;
	if (*n > len)
		*n = len;
}

static void describe_state(const struct part *p, const struct mstate *st,
			   char *buf, size_t len)
{
	size_t n = 0;
	bool any = false;

	buf[0] = '\0';
	if (p->ranged) {
		if (!st->nr)
			cat(buf, len, &n, "free (no holders)");
		for (uint32_t i = 0; i < st->nr; i++)
			cat(buf, len, &n, "%sclient %" PRIu32 " %s bytes [%" PRIu64
			    ", %" PRIu64 "]", i ? ", " : "held by ",
			    p->clid[st->r[i].c], st->r[i].ex ? "ex" : "sh",
			    st->r[i].s, st->r[i].e);
		return;
	}
	if (st->ex >= 0)
		cat(buf, len, &n, "held ex by client %" PRIu32,
		    p->clid[st->ex]);
	else
		cat(buf, len, &n, "free");
	for (uint32_t c = 0; c < p->nc; c++) {
		if (!bit(st->sh, c))
			continue;
		cat(buf, len, &n, "%s%" PRIu32,
		    any ? "," : (st->ex >= 0 ? ", sh by clients "
				 : "; sh by clients "), p->clid[c]);
		any = true;
	}
	if (!any && st->ex < 0)
		cat(buf, len, &n, " (no holders)");
	cat(buf, len, &n, "; slots %" PRIu32, st->slots);
}

static void explain_not(struct linz *h, const struct part *p, uint32_t stuck,
			uint32_t best, const struct mstate *bst)
{
	const struct linz_op *op = &h->ops[p->idx[stuck]];
	char sbuf[384], rbuf[64] = "";

	describe_state(p, bst, sbuf, sizeof(sbuf));
	if (op->ranged)
		snprintf(rbuf, sizeof(rbuf), " bytes [%" PRIu64 ", %" PRIu64
			 "]", op->start, op->end);
	else if (op->kind == LINZ_SET_SLOTS)
		snprintf(rbuf, sizeof(rbuf), " %" PRIu32, op->slots);
	snprintf(h->expl, sizeof(h->expl),
		 "NOT linearizable: %s key %" PRIu64 " (%" PRIu32 " ops, slots %"
		 PRIu32 " at first): at most %" PRIu32 " ops can be ordered; op #%"
		 PRIu32 " (client %" PRIu32 " %s%s -> %s, time [%" PRIu64 ", %"
		 PRIu64 "]) cannot be placed; the lock was then %s",
		 p->ranged ? "ranged" : "whole", p->key, p->m, p->slots, best,
		 p->idx[stuck], op->client, kind_name(op->kind), rbuf,
		 out_name(op->out), op->call, op->ret, sbuf);
}

/* Buffers of one mstate for partition p. */
static int mstate_alloc(const struct part *p, struct mstate *st)
{
	st->sh = calloc(p->wc + 1, sizeof(*st->sh));
	st->r = calloc(p->maxr + 1, sizeof(*st->r));
	st->ex = -1;
	st->nr = 0;
	st->slots = p->slots;
	return st->sh && st->r ? 0 : -ENOMEM;
}

static void mstate_free(struct mstate *st)
{
	free(st->sh);
	free(st->r);
}

/*
 * Runs WGL over one partition.  Returns the verdict, or -ENOMEM.  On NOT it
 * writes the explanation into h->expl.
 *
 * The key being explored lives in kb (op bitset, then the encoded state).
 * Every linearised op's resulting key is a fresh memo record, so a frame
 * only remembers its record: backtracking copies the key back from there
 * instead of keeping a stack of states.
 */
static int search(struct linz *h, struct part *p)
{
	uint32_t m = p->m;
	struct ent *ev = NULL, head;
	uint64_t *kb = NULL, *k0 = NULL;
	size_t klen, k0len;
	struct ent **calls = NULL;
	uint32_t *at = NULL;
	uint32_t depth = 0, bestdepth = 0, stuck = 0;
	int64_t bestrec = -1;          /* memo record of the deepest point */
	struct mstate cur, tmp, t;
	struct ent *e;
	int rc = -ENOMEM;

	memset(&cur, 0, sizeof(cur));
	memset(&tmp, 0, sizeof(tmp));
	ev = calloc((size_t)m * 2, sizeof(*ev));
	kb = calloc(p->wo + p->sw, sizeof(*kb));
	k0 = calloc(p->wo + p->sw, sizeof(*k0));
	calls = calloc(m, sizeof(*calls));
	at = calloc(m, sizeof(*at));
	if (!ev || !kb || !k0 || !calls || !at ||
	    mstate_alloc(p, &cur) < 0 || mstate_alloc(p, &tmp) < 0)
		goto out_free;
	for (uint32_t i = 0; i < m; i++) {
		const struct linz_op *op = &h->ops[p->idx[i]];

		ev[2 * i].time = op->call;
		ev[2 * i].op = i;
		ev[2 * i + 1].time = op->ret;
		ev[2 * i + 1].op = i;
		ev[2 * i + 1].ret = true;
	}
	qsort(ev, (size_t)m * 2, sizeof(*ev), ent_cmp);
	{
		/* sorting moved the events: find each op's pair again */
		struct ent **callof = calloc(m, sizeof(*callof));

		if (!callof)
			goto out_free;
		for (size_t i = 0; i < (size_t)m * 2; i++) {
			if (!ev[i].ret) {
				callof[ev[i].op] = &ev[i];
			} else {
				ev[i].match = callof[ev[i].op];
				callof[ev[i].op]->match = &ev[i];
			}
		}
		free(callof);
	}
	memset(&head, 0, sizeof(head));
	head.next = &ev[0];
	ev[0].prev = &head;
	for (size_t i = 1; i < (size_t)m * 2; i++) {
		ev[i].prev = &ev[i - 1];
		ev[i - 1].next = &ev[i];
	}

	k0len = p->wo + mstate_enc(p, &cur, k0 + p->wo);
	memcpy(kb, k0, k0len * sizeof(*kb));
	e = head.next;
	while (head.next) {
		if (h->budget && h->steps >= h->budget) {
			rc = LINZ_UNKNOWN;
			goto out_free;
		}
		h->steps++;
		if (e && e->ret && h->ops[p->idx[e->op]].ret == LINZ_INF) {
			/* only calls lie before e and every completed
			 * return sorts before it: each completed op is
			 * placed, and pending ones may stay out */
			rc = LINZ_LINEARIZABLE;
			goto out_free;
		}
		if (e && !e->ret) {
			mstate_copy(p, &tmp, &cur);
			if (try_op(p, &tmp, e->op)) {
				uint32_t rec = 0;
				int ins;

				setbit(kb, e->op, true);
				klen = p->wo + mstate_enc(p, &tmp, kb + p->wo);
				ins = memo_insert(p, kb, klen, &rec);
				if (ins < 0)
					goto out_free;
				if (ins) {
					calls[depth] = e;
					at[depth++] = rec;
					t = cur;
					cur = tmp;
					tmp = t;
					lift(e);
					e = head.next;
					continue;
				}
				setbit(kb, e->op, false);
			}
			e = e->next;
			continue;
		}
		/* a return (or a pending op's end) before its call was
		 * placed: record how far we got, then backtrack */
		if (depth > bestdepth || (depth == 0 && bestdepth == 0)) {
			bestdepth = depth;
			stuck = e ? e->op : 0;
			bestrec = depth ? (int64_t)at[depth - 1] : -1;
		}
		if (depth == 0) {
			if (bestrec >= 0)
				mstate_dec(p, &tmp, p->arena +
					   p->rec[bestrec].off + p->wo);
			else
				mstate_dec(p, &tmp, k0 + p->wo);
			explain_not(h, p, stuck, bestdepth, &tmp);
			rc = LINZ_NOT;
			goto out_free;
		}
		{
			struct ent *c = calls[--depth];

			if (depth) {
				const struct mrec *r = &p->rec[at[depth - 1]];

				memcpy(kb, p->arena + r->off,
				       r->len * sizeof(*kb));
			} else {
				memcpy(kb, k0, k0len * sizeof(*kb));
			}
			mstate_dec(p, &cur, kb + p->wo);
			unlift(c);
			e = c->next;
		}
	}
	rc = LINZ_LINEARIZABLE;

out_free:
	mstate_free(&tmp);
	mstate_free(&cur);
	free(at);
	free(calls);
	free(k0);
	free(kb);
	free(ev);
	return rc;
}

/* Checks the m ops idx[] of one key. */
static int check_part(struct linz *h, uint64_t key, const uint32_t *idx,
		      uint32_t m)
{
	struct part p;
	int rc = -ENOMEM;

	memset(&p, 0, sizeof(p));
	p.h = h;
	p.key = key;
	p.slots = slots_of(h, key);
	p.m = m;
	for (uint32_t i = 0; i < m; i++)
		if (is_ranged(&h->ops[idx[i]]))
			p.ranged = true;
	p.idx = idx;
	p.cl = calloc(m, sizeof(*p.cl));
	p.clid = calloc(m, sizeof(*p.clid));
	if (!p.cl || !p.clid)
		goto out_free;
	for (uint32_t i = 0; i < m; i++)
		p.clid[i] = h->ops[idx[i]].client;
	qsort(p.clid, m, sizeof(*p.clid), u32_cmp);
	for (uint32_t i = 0; i < m; i++)
		if (p.nc == 0 || p.clid[p.nc - 1] != p.clid[i])
			p.clid[p.nc++] = p.clid[i];
	for (uint32_t i = 0; i < m; i++) {
		uint32_t c = h->ops[idx[i]].client;
		uint32_t *f = bsearch(&c, p.clid, p.nc, sizeof(c), u32_cmp);

		p.cl[i] = (uint32_t)(f - p.clid);
	}
	p.wo = (m + 63) / 64;
	p.wc = (p.nc + 63) / 64;
	/* every op adds at most two locks (see rstep) */
	p.maxr = p.ranged ? 2 * (size_t)m + 2 : 0;
	p.sw = 2 + (p.ranged ? 3 * (size_t)p.maxr : p.wc);
	p.scr = calloc((size_t)p.maxr + 2, sizeof(*p.scr));
	if (!p.scr)
		goto out_free;
	rc = search(h, &p);

out_free:
	free(p.tab);
	free(p.rec);
	free(p.arena);
	free(p.scr);
	free(p.clid);
	free(p.cl);
	return rc;
}

struct kidx {
	uint64_t key;
	uint32_t i;
};

static int kidx_cmp(const void *a, const void *b)
{
	const struct kidx *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* linz_check: see t/linz.h. */
enum linz_result linz_check(struct linz *h)
{
	struct kidx *ki = NULL;
	uint32_t *idx = NULL;
	size_t n = 0, nkeys = 0;
	enum linz_result res = LINZ_LINEARIZABLE;
	bool unknown = false;

	if (!h)
		return LINZ_UNKNOWN;
	h->steps = 0;
	h->checked = true;
	h->expl[0] = '\0';
	if (h->nops) {
		ki = calloc(h->nops, sizeof(*ki));
		idx = calloc(h->nops, sizeof(*idx));
		if (!ki || !idx) {
			snprintf(h->expl, sizeof(h->expl),
				 "UNKNOWN: out of memory");
			res = LINZ_UNKNOWN;
			goto out_free;
		}
	}
	for (size_t i = 0; i < h->nops; i++) {
		const struct linz_op *op = &h->ops[i];

		/* an acquire or set-slots that failed had no effect
		 * anywhere in its interval, so it constrains nothing */
		if (op->ret != LINZ_INF && op->out == LINZ_ERR &&
		    op->kind != LINZ_RELEASE)
			continue;
		ki[n].key = op->key;
		ki[n].i = (uint32_t)i;
		n++;
	}
	if (n)
		qsort(ki, n, sizeof(*ki), kidx_cmp);
	for (size_t i = 0; i < n; i++)
		idx[i] = ki[i].i;
	for (size_t s = 0; s < n;) {
		size_t e = s;
		int rc;

		while (e < n && ki[e].key == ki[s].key)
			e++;
		nkeys++;
		rc = check_part(h, ki[s].key, idx + s, (uint32_t)(e - s));
		if (rc == LINZ_NOT) {
			res = LINZ_NOT;
			goto out_free;
		}
		if (rc == LINZ_UNKNOWN || rc < 0) {
			/* another key may still prove NOT, but with the
			 * budget spent it cannot search; stop here */
			snprintf(h->expl, sizeof(h->expl),
				 "UNKNOWN: %s while checking key %" PRIu64
				 " (%zu ops) after %" PRIu64 " steps",
				 rc < 0 ? "out of memory" : "step budget exhausted",
				 ki[s].key, e - s, h->steps);
			unknown = true;
			break;
		}
		s = e;
	}
	if (unknown)
		res = LINZ_UNKNOWN;
	else
		snprintf(h->expl, sizeof(h->expl),
			 "linearizable: %zu ops on %zu keys, %" PRIu64 " steps",
			 n, nkeys, h->steps);
out_free:
	h->last = res;
	free(idx);
	free(ki);
	return res;
}

/* linz_explain: see t/linz.h. */
size_t linz_explain(const struct linz *h, char *buf, size_t len)
{
	const char *s;
	size_t n;

	if (!h)
		s = "no history";
	else if (!h->checked)
		s = "not checked yet";
	else
		s = h->expl;
	n = strlen(s);
	if (buf && len) {
		size_t c = n < len - 1 ? n : len - 1;

		memcpy(buf, s, c);
		buf[c] = '\0';
	}
	return n;
}
