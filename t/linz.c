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
 *
 * It must never do I/O, read a clock or draw random numbers, and never
 * crash or loop forever on any input: the step budget bounds the work.
 */
#include "t/linz.h"

#include <errno.h>
#include <inttypes.h>
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
	char expl[640];
};

/* One call or return event in the WGL list. */
struct ent {
	uint64_t time;
	uint32_t op;                   /* index into the partition */
	bool ret;
	struct ent *prev, *next, *match;
};

/* A partition under search. */
struct part {
	const struct linz *h;
	uint64_t key;
	uint32_t slots;
	uint32_t m;                    /* ops in the partition */
	const uint32_t *idx;           /* partition op -> history op index */
	uint32_t *cl;                  /* partition op -> dense client index */
	uint32_t *clid;                /* dense client index -> client id */
	uint32_t nc;
	size_t wo, wc;                 /* words of op bitset, of client bitset */
	size_t kw;                     /* words of one cache key */
	/* memo: open addressing over an arena of kw-word keys */
	uint64_t *arena;
	size_t narena, caparena;       /* in keys */
	uint32_t *tab;                 /* 0 = empty, else arena index + 1 */
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

/* linz_add_op: see t/linz.h. */
int linz_add_op(struct linz *h, const struct linz_op *op)
{
	if (!h || !op)
		return -EINVAL;
	if ((unsigned)op->kind > LINZ_RELEASE)
		return -EINVAL;
	if (op->ret != LINZ_INF) {
		if ((unsigned)op->out > LINZ_ERR)
			return -EINVAL;
		if (op->out == LINZ_BUSY &&
		    (op->kind == LINZ_ACQ_EX || op->kind == LINZ_ACQ_SH ||
		     op->kind == LINZ_RELEASE))
			return -EINVAL;
	}
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

/* Model state: ex holder (dense client index or -1) then wc sh words. */
struct mstate {
	int64_t ex;
	uint64_t *sh;
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

enum mres { M_OK, M_WAIT, M_ERR };

/*
 * Applies one op of client c to st in place when it is granted.  M_WAIT
 * means an acquire would have to wait (a try answers busy); M_ERR a release
 * of something not held.  Only M_OK changes st.
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
		if (st->ex >= 0 || (p->slots && nsh >= p->slots))
			return M_WAIT;
		setbit(st->sh, c, true);
		return M_OK;
	case LINZ_RELEASE:
		if (hex) {
			st->ex = -1;
			return M_OK;
		}
		if (hsh) {
			setbit(st->sh, c, false);
			return M_OK;
		}
		return M_ERR;
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
	enum mres r = mstep(p, st, op->kind, p->cl[o]);

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
	}
	return false;
}

/* ---- the memo --------------------------------------------------------- */

static uint64_t hash_words(const uint64_t *w, size_t n)
{
	uint64_t x = 0x9e3779b97f4a7c15u;

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
	for (size_t i = 0; i < p->narena; i++) {
		uint64_t hv = hash_words(p->arena + i * p->kw, p->kw);
		size_t j = hv & (ns - 1);

		while (nt[j])
			j = (j + 1) & (ns - 1);
		nt[j] = (uint32_t)(i + 1);
	}
	free(p->tab);
	p->tab = nt;
	p->tabsize = ns;
	return 0;
}

/* Inserts key; 1 if it was new, 0 if already seen, -ENOMEM. */
static int memo_insert(struct part *p, const uint64_t *key)
{
	uint64_t hv;
	size_t j;

	if ((p->narena + 1) * 2 > p->tabsize) {
		if (p->narena >= UINT32_MAX - 1 || memo_grow(p) < 0)
			return -ENOMEM;
	}
	hv = hash_words(key, p->kw);
	for (j = hv & (p->tabsize - 1); p->tab[j];
	     j = (j + 1) & (p->tabsize - 1)) {
		const uint64_t *k = p->arena + (size_t)(p->tab[j] - 1) * p->kw;

		if (!memcmp(k, key, p->kw * sizeof(*key)))
			return 0;
	}
	if (p->narena == p->caparena) {
		size_t cap = p->caparena ? p->caparena * 2 : 1024;
		uint64_t *na = realloc(p->arena, cap * p->kw * sizeof(*na));

		if (!na)
			return -ENOMEM;
		p->arena = na;
		p->caparena = cap;
	}
	memcpy(p->arena + p->narena * p->kw, key, p->kw * sizeof(*key));
	p->tab[j] = (uint32_t)(++p->narena);
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

static void describe_state(const struct part *p, const struct mstate *st,
			   char *buf, size_t len)
{
	size_t n = 0;
	int w;
	bool any = false;

	if (st->ex >= 0)
		w = snprintf(buf, len, "held ex by client %" PRIu32,
			     p->clid[st->ex]);
	else
		w = snprintf(buf, len, "free");
	if (w < 0)
		return;
	n = (size_t)w;
	for (uint32_t c = 0; c < p->nc && n < len; c++) {
		if (!bit(st->sh, c))
			continue;
		w = snprintf(buf + n, len - n, "%s%" PRIu32,
			     any ? "," : (st->ex >= 0 ? ", sh by clients "
					  : "; sh by clients "), p->clid[c]);
		if (w < 0)
			return;
		any = true;
		n += (size_t)w;
	}
	if (!any && st->ex < 0 && n < len)
		snprintf(buf + n, len - n, " (no holders)");
}

static void explain_not(struct linz *h, const struct part *p, uint32_t stuck,
			uint32_t best, const struct mstate *bst)
{
	const struct linz_op *op = &h->ops[p->idx[stuck]];
	char sbuf[256];

	describe_state(p, bst, sbuf, sizeof(sbuf));
	snprintf(h->expl, sizeof(h->expl),
		 "NOT linearizable: key %" PRIu64 " (%" PRIu32 " ops, slots %"
		 PRIu32 "): at most %" PRIu32 " ops can be ordered; op #%"
		 PRIu32 " (client %" PRIu32 " %s -> %s, [%" PRIu64 ", %" PRIu64
		 "]) cannot be placed; the lock was then %s",
		 p->key, p->m, p->slots, best, p->idx[stuck], op->client,
		 kind_name(op->kind), out_name(op->out), op->call, op->ret,
		 sbuf);
}

/*
 * Runs WGL over one partition.  Returns the verdict, or -ENOMEM.  On NOT it
 * writes the explanation into h->expl.
 */
static int search(struct linz *h, struct part *p)
{
	uint32_t m = p->m;
	struct ent *ev = NULL, head;
	uint64_t *key = NULL;          /* linearised bitset, then state */
	uint64_t *stk = NULL;          /* saved states, (1 + wc) per frame */
	uint64_t *best = NULL;         /* state at the deepest point */
	struct ent **calls = NULL;
	uint32_t depth = 0, bestdepth = 0, stuck = 0;
	struct mstate st, bst;
	struct ent *e;
	size_t sw = 1 + p->wc;
	int rc = -ENOMEM;

	ev = calloc((size_t)m * 2, sizeof(*ev));
	key = calloc(p->kw, sizeof(*key));
	stk = calloc((size_t)m * sw + 1, sizeof(*stk));
	best = calloc(sw, sizeof(*best));
	calls = calloc(m, sizeof(*calls));
	if (!ev || !key || !stk || !best || !calls)
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

	/* the model state lives inside the cache key, after the op bits */
	st.sh = key + p->wo + 1;
	key[p->wo] = (uint64_t)-1;
	bst.sh = best + 1;
	best[0] = (uint64_t)-1;

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
			uint64_t *save = stk + (size_t)depth * sw;
			int ins;

			st.ex = (int64_t)key[p->wo];
			save[0] = key[p->wo];
			memcpy(save + 1, st.sh, p->wc * sizeof(*save));
			if (try_op(p, &st, e->op)) {
				key[p->wo] = (uint64_t)st.ex;
				setbit(key, e->op, true);
				ins = memo_insert(p, key);
				if (ins < 0)
					goto out_free;
				if (ins) {
					calls[depth++] = e;
					lift(e);
					e = head.next;
					continue;
				}
				setbit(key, e->op, false);
			}
			/* undo the trial step */
			key[p->wo] = save[0];
			memcpy(st.sh, save + 1, p->wc * sizeof(*save));
			e = e->next;
			continue;
		}
		/* a return (or a pending op's end) before its call was
		 * placed: record how far we got, then backtrack */
		if (depth > bestdepth || (depth == 0 && bestdepth == 0)) {
			bestdepth = depth;
			stuck = e ? e->op : 0;
			best[0] = key[p->wo];
			memcpy(best + 1, st.sh, p->wc * sizeof(*best));
		}
		if (depth == 0) {
			bst.ex = (int64_t)best[0];
			explain_not(h, p, stuck, bestdepth, &bst);
			rc = LINZ_NOT;
			goto out_free;
		}
		{
			struct ent *c = calls[--depth];
			uint64_t *save = stk + (size_t)depth * sw;

			setbit(key, c->op, false);
			key[p->wo] = save[0];
			memcpy(st.sh, save + 1, p->wc * sizeof(*save));
			unlift(c);
			e = c->next;
		}
	}
	rc = LINZ_LINEARIZABLE;

out_free:
	free(calls);
	free(best);
	free(stk);
	free(key);
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
	p.kw = p.wo + 1 + p.wc;
	rc = search(h, &p);

out_free:
	free(p.tab);
	free(p.arena);
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

		/* an acquire that failed had no effect anywhere in its
		 * interval, so it constrains nothing */
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
