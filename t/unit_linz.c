/*
 * t/unit_linz.c - CUnit tests of the lock-history linearizability checker.
 *
 * Hand-written histories pin down each rule of the sequential lock model
 * (whole keys, POSIX byte ranges, changing slot counts, session ends), and
 * two small simulated locks (random latencies, 8 clients; one with flock
 * keys only, one adding ranged keys, an admin changing slot counts and
 * sessions that end) check that real histories are always accepted and
 * that a single conflicting grant is caught.  It must never depend on
 * wall-clock time or on the simulator: every history here is built from a
 * fixed seed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "t/lib/cunit.h"
#include "t/linz.h"

#define INF LINZ_INF

static void add(struct linz *h, uint32_t c, uint64_t key, enum linz_kind k,
		enum linz_out o, uint64_t call, uint64_t ret)
{
	struct linz_op op = {
		.client = c, .key = key, .kind = k, .out = o,
		.call = call, .ret = ret,
	};

	CU_ASSERT_FATAL(linz_add_op(h, &op) >= 0);
}

static enum linz_result check(struct linz *h)
{
	char buf[640];
	enum linz_result r = linz_check(h);

	linz_explain(h, buf, sizeof(buf));
	CU_ASSERT(buf[0] != '\0');
	if (r == LINZ_NOT)
		CU_ASSERT(strstr(buf, "NOT") != NULL);
	return r;
}

static void test_empty(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);
	linz_free(NULL);
}

static void test_bad_input(void)
{
	struct linz *h = linz_new(0);
	struct linz_op op = { .client = 1, .kind = LINZ_ACQ_EX,
			      .out = LINZ_OK, .call = 5, .ret = 4 };
	char buf[8];

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL(linz_add_op(h, &op), -EINVAL);      /* ret < call */
	op.ret = 6;
	op.out = LINZ_BUSY;
	CU_ASSERT_EQUAL(linz_add_op(h, &op), -EINVAL);      /* blocking busy */
	op.kind = (enum linz_kind)99;
	op.out = LINZ_OK;
	CU_ASSERT_EQUAL(linz_add_op(h, &op), -EINVAL);
	op.kind = LINZ_RELEASE;
	op.out = (enum linz_out)7;
	CU_ASSERT_EQUAL(linz_add_op(h, &op), -EINVAL);
	CU_ASSERT_EQUAL(linz_add_op(NULL, &op), -EINVAL);
	CU_ASSERT_EQUAL(linz_add_op(h, NULL), -EINVAL);
	CU_ASSERT_EQUAL(linz_set_slots(NULL, 1, 1), -EINVAL);
	CU_ASSERT_EQUAL(linz_check(NULL), LINZ_UNKNOWN);
	/* explain truncates and still terminates the string */
	CU_ASSERT(linz_explain(h, buf, sizeof(buf)) > 0);
	CU_ASSERT_EQUAL(strlen(buf), 7);
	CU_ASSERT(linz_explain(NULL, NULL, 0) > 0);
	linz_free(h);
}

static void test_sequential(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL(linz_set_slots(h, 2, 2), 0);
	add(h, 1, 1, LINZ_ACQ_EX, LINZ_OK, 0, 1);
	add(h, 1, 1, LINZ_RELEASE, LINZ_OK, 2, 3);
	add(h, 2, 1, LINZ_ACQ_EX, LINZ_OK, 4, 5);
	add(h, 3, 1, LINZ_TRY_SH, LINZ_BUSY, 6, 7);
	add(h, 3, 1, LINZ_TRY_EX, LINZ_BUSY, 6, 7);
	add(h, 2, 1, LINZ_ACQ_SH, LINZ_OK, 8, 9);           /* downgrade */
	add(h, 3, 1, LINZ_TRY_SH, LINZ_OK, 10, 11);
	add(h, 2, 1, LINZ_RELEASE, LINZ_OK, 12, 13);
	add(h, 3, 1, LINZ_TRY_EX, LINZ_OK, 14, 15);         /* upgrade */
	add(h, 3, 1, LINZ_RELEASE, LINZ_OK, 16, 17);
	add(h, 3, 1, LINZ_RELEASE, LINZ_ERR, 18, 19);       /* not held */
	add(h, 4, 1, LINZ_ACQ_EX, LINZ_ERR, 18, 19);        /* no effect */
	/* key 2: a semaphore of two */
	add(h, 1, 2, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add(h, 2, 2, LINZ_ACQ_SH, LINZ_OK, 2, 3);
	add(h, 3, 2, LINZ_TRY_SH, LINZ_BUSY, 4, 5);
	add(h, 1, 2, LINZ_RELEASE, LINZ_OK, 6, 7);
	add(h, 3, 2, LINZ_TRY_SH, LINZ_OK, 8, 9);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);
}

static void test_overlapping_ex(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 0, 10);
	add(h, 2, 7, LINZ_ACQ_EX, LINZ_OK, 5, 15);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	{
		char buf[640];

		linz_explain(h, buf, sizeof(buf));
		CU_ASSERT(strstr(buf, "key 7") != NULL);
		if (getenv("LINZ_VERBOSE"))
			printf("\n  %s\n", buf);
	}
	linz_free(h);
}

static void test_ok_after_ok(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 0, 1);
	add(h, 2, 7, LINZ_ACQ_EX, LINZ_OK, 2, 3);
	add(h, 1, 7, LINZ_RELEASE, LINZ_OK, 4, 5);          /* too late */
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);

	/* a different key does not conflict */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 0, 1);
	add(h, 2, 8, LINZ_ACQ_EX, LINZ_OK, 2, 3);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);
}

static void test_one_order_works(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	/* B's acquire is only legal after A's overlapping release */
	add(h, 2, 7, LINZ_ACQ_EX, LINZ_OK, 3, 8);
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 0, 1);
	add(h, 1, 7, LINZ_RELEASE, LINZ_OK, 2, 10);
	add(h, 3, 7, LINZ_TRY_EX, LINZ_BUSY, 9, 11);        /* B holds */
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);

	/* the same, but C's try saw the lock free: no order works */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 2, 7, LINZ_ACQ_EX, LINZ_OK, 3, 8);
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 0, 1);
	add(h, 1, 7, LINZ_RELEASE, LINZ_OK, 2, 10);
	add(h, 3, 7, LINZ_TRY_EX, LINZ_OK, 9, 11);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);
}

static void test_pending(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	/* a lost acquire that never took effect */
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 0, INF);
	add(h, 2, 7, LINZ_ACQ_EX, LINZ_OK, 5, 6);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);

	/* a lost acquire that did take effect: the only explanation */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 0, INF);
	add(h, 2, 7, LINZ_TRY_EX, LINZ_BUSY, 5, 6);
	add(h, 1, 7, LINZ_RELEASE, LINZ_OK, 8, 9);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);

	/* it cannot take effect before it was called */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 2, 7, LINZ_TRY_EX, LINZ_BUSY, 0, 1);
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 5, INF);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);

	/* a pending release may free the lock for a later acquire */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 0, 1);
	add(h, 1, 7, LINZ_RELEASE, LINZ_OK, 2, INF);
	add(h, 2, 7, LINZ_ACQ_EX, LINZ_OK, 5, 6);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);
}

static void test_slots(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL(linz_set_slots(h, 7, 3), 0);
	CU_ASSERT_EQUAL(linz_set_slots(h, 7, 2), 0);        /* overrides */
	add(h, 1, 7, LINZ_ACQ_SH, LINZ_OK, 0, 10);
	add(h, 2, 7, LINZ_ACQ_SH, LINZ_OK, 1, 11);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	add(h, 3, 7, LINZ_ACQ_SH, LINZ_OK, 12, 13);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	/* a concurrent release makes room */
	add(h, 1, 7, LINZ_RELEASE, LINZ_OK, 11, 12);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);

	/* unlimited by default */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	for (uint32_t c = 0; c < 100; c++)
		add(h, c, 9, LINZ_ACQ_SH, LINZ_OK, c, c + 1000);
	add(h, 100, 9, LINZ_TRY_EX, LINZ_BUSY, 500, 600);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);

	/* proving NOT explores every order of the concurrent holders
	 * (2^n sets), so keep n small */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	for (uint32_t c = 0; c < 12; c++)
		add(h, c, 9, LINZ_ACQ_SH, LINZ_OK, c, c + 1000);
	add(h, 101, 9, LINZ_TRY_SH, LINZ_BUSY, 2000, 2001);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);
}

static void test_try_busy_free(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 0, 1);
	add(h, 1, 7, LINZ_RELEASE, LINZ_OK, 2, 3);
	add(h, 2, 7, LINZ_TRY_EX, LINZ_BUSY, 4, 5);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);

	/* overlapping the release, busy is fine */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 0, 1);
	add(h, 1, 7, LINZ_RELEASE, LINZ_OK, 2, 3);
	add(h, 2, 7, LINZ_TRY_EX, LINZ_BUSY, 3, 5);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);

	/* a release of an unheld lock must fail */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_RELEASE, LINZ_OK, 0, 1);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);
}

/* ---- a simulated real lock -------------------------------------------- */

#define NCL 8
#define NKEY 3

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static uint32_t rnd(uint64_t *s, uint32_t n)
{
	return (uint32_t)(rng_next(s) % n);
}

static const uint32_t key_slots[NKEY] = { 0, 2, 1 };

struct rlock {
	int ex;
	bool sh[NCL];
	uint32_t nsh;
};

/* The real lock: true if op is granted now (and applied). */
static bool real_apply(struct rlock *l, uint32_t slots, enum linz_kind k,
		       uint32_t c)
{
	switch (k) {
	case LINZ_ACQ_EX:
	case LINZ_TRY_EX:
		if (l->ex >= 0 || l->nsh)
			return false;
		l->ex = (int)c;
		return true;
	case LINZ_ACQ_SH:
	case LINZ_TRY_SH:
		if (l->ex >= 0 || (slots && l->nsh >= slots))
			return false;
		l->sh[c] = true;
		l->nsh++;
		return true;
	case LINZ_RELEASE:
		if (l->ex == (int)c) {
			l->ex = -1;
			return true;
		}
		if (l->sh[c]) {
			l->sh[c] = false;
			l->nsh--;
			return true;
		}
		return false;
	case LINZ_SET_SLOTS:
	case LINZ_RELEASE_ALL:
		break;                 /* this generator makes none */
	}
	return false;
}

/*
 * Fills ops[] with a history of about n operations from seed; returns the
 * count.  Each client holds at most one key, so nobody deadlocks; ops still
 * in flight at the end become pending.
 */
static size_t gen_history(uint64_t seed, struct linz_op *ops, size_t n)
{
	struct rlock lk[NKEY];
	struct {
		int phase;             /* 0 idle, 1 before effect, 2 after */
		uint64_t at;
		int held;              /* key held, or -1 */
		struct linz_op op;
	} cl[NCL];
	uint64_t s = seed * 7919 + 1;
	size_t nops = 0, issued = 0;

	for (int k = 0; k < NKEY; k++) {
		lk[k].ex = -1;
		lk[k].nsh = 0;
		memset(lk[k].sh, 0, sizeof(lk[k].sh));
	}
	memset(cl, 0, sizeof(cl));
	for (int c = 0; c < NCL; c++)
		cl[c].held = -1;
	for (uint64_t t = 0; issued < n; t++) {
		uint32_t perm[NCL];

		for (uint32_t i = 0; i < NCL; i++)
			perm[i] = i;
		for (uint32_t i = NCL - 1; i > 0; i--) {
			uint32_t j = rnd(&s, i + 1), x = perm[i];

			perm[i] = perm[j];
			perm[j] = x;
		}
		for (uint32_t i = 0; i < NCL && issued < n; i++) {
			uint32_t c = perm[i];
			struct linz_op *op = &cl[c].op;

			if (cl[c].phase == 0 && t >= cl[c].at) {
				op->client = c;
				op->call = t;
				if (cl[c].held >= 0) {
					op->kind = LINZ_RELEASE;
					op->key = (uint64_t)cl[c].held;
				} else if (rnd(&s, 20) == 0) {
					op->kind = LINZ_RELEASE;
					op->key = rnd(&s, NKEY);
				} else {
					op->kind = (enum linz_kind)rnd(&s, 4);
					op->key = rnd(&s, NKEY);
				}
				cl[c].phase = 1;
				cl[c].at = t + rnd(&s, 4);
				issued++;
			} else if (cl[c].phase == 1 && t >= cl[c].at) {
				bool g = real_apply(&lk[op->key],
						    key_slots[op->key],
						    op->kind, c);

				if (!g && (op->kind == LINZ_ACQ_EX ||
					   op->kind == LINZ_ACQ_SH))
					continue;       /* waits */
				if (op->kind == LINZ_RELEASE)
					op->out = g ? LINZ_OK : LINZ_ERR;
				else
					op->out = g ? LINZ_OK : LINZ_BUSY;
				if (g && op->kind != LINZ_RELEASE)
					cl[c].held = (int)op->key;
				if (g && op->kind == LINZ_RELEASE)
					cl[c].held = -1;
				cl[c].phase = 2;
				cl[c].at = t + rnd(&s, 4);
			} else if (cl[c].phase == 2 && t >= cl[c].at) {
				op->ret = t;
				ops[nops++] = *op;
				cl[c].phase = 0;
				/* holders keep the lock a while */
				cl[c].at = t + 1 + rnd(&s, 3) +
					   (cl[c].held >= 0 ? rnd(&s, 12) : 0);
			}
		}
	}
	for (int c = 0; c < NCL; c++) {
		if (cl[c].phase == 0)
			continue;
		cl[c].op.ret = LINZ_INF;
		ops[nops++] = cl[c].op;
	}
	return nops;
}

static struct linz *build(const struct linz_op *ops, size_t n,
			  uint64_t budget)
{
	struct linz *h = linz_new(budget);

	if (!h)
		return NULL;
	for (int k = 0; k < NKEY; k++)
		if (linz_set_slots(h, (uint64_t)k, key_slots[k]) < 0)
			goto out_free;
	for (size_t i = 0; i < n; i++)
		if (linz_add_op(h, &ops[i]) < 0)
			goto out_free;
	return h;

out_free:
	linz_free(h);
	return NULL;
}

#define HIST 300

static void test_random_valid(void)
{
	static struct linz_op ops[HIST + NCL];
	int bad = 0;

	for (uint64_t seed = 1; seed <= 200; seed++) {
		size_t n = gen_history(seed, ops, HIST);
		struct linz *h = build(ops, n, 0);
		enum linz_result r;

		CU_ASSERT_PTR_NOT_NULL_FATAL(h);
		r = linz_check(h);
		if (r != LINZ_LINEARIZABLE) {
			char buf[640];

			linz_explain(h, buf, sizeof(buf));
			fprintf(stderr, "seed %llu: %s\n",
				(unsigned long long)seed, buf);
			bad++;
		}
		linz_free(h);
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/*
 * Is op o a refused try that would conflict with an exclusive holder over
 * its whole interval?  Then granting it cannot be linearised anywhere.
 * ops[] is in return order, so each client's ops appear in its own order.
 */
static bool surely_conflicting(const struct linz_op *ops, size_t n, size_t o)
{
	const struct linz_op *t = &ops[o];

	if (t->out != LINZ_BUSY || t->ret == LINZ_INF)
		return false;
	for (size_t i = 0; i < n; i++) {
		const struct linz_op *a = &ops[i];
		uint64_t end = LINZ_INF;

		if (a->key != t->key || a->out != LINZ_OK ||
		    a->ret == LINZ_INF ||
		    (a->kind != LINZ_ACQ_EX && a->kind != LINZ_TRY_EX))
			continue;
		/* the holder's next op on the key ends the hold */
		for (size_t j = i + 1; j < n; j++) {
			if (ops[j].client == a->client && ops[j].key == a->key) {
				end = ops[j].call;
				break;
			}
		}
		if (a->ret < t->call && t->ret < end)
			return true;
	}
	return false;
}

static void test_random_mutated(void)
{
	static struct linz_op ops[HIST + NCL];
	int detected = 0, tried = 0, any = 0, anydet = 0;

	for (uint64_t seed = 1; seed <= 200; seed++) {
		size_t n = gen_history(seed, ops, HIST);
		size_t busy[HIST + NCL], sure[HIST + NCL], nb = 0, ns = 0;
		uint64_t s = seed;
		struct linz *h;
		size_t pick;

		for (size_t i = 0; i < n; i++) {
			if (ops[i].out != LINZ_BUSY || ops[i].ret == LINZ_INF)
				continue;
			busy[nb++] = i;
			if (surely_conflicting(ops, n, i))
				sure[ns++] = i;
		}
		CU_ASSERT_FATAL(nb > 0);
		/* any refused try now granted: usually a conflict, but
		 * it may overlap a release and be legal; informational */
		pick = busy[rnd(&s, (uint32_t)nb)];
		ops[pick].out = LINZ_OK;
		h = build(ops, n, 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(h);
		any++;
		if (linz_check(h) == LINZ_NOT)
			anydet++;
		linz_free(h);
		ops[pick].out = LINZ_BUSY;
		if (!ns)
			continue;
		/* a try refused while someone surely held it ex, granted */
		pick = sure[rnd(&s, (uint32_t)ns)];
		ops[pick].out = LINZ_OK;
		h = build(ops, n, 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(h);
		tried++;
		if (linz_check(h) == LINZ_NOT)
			detected++;
		linz_free(h);
	}
	printf("\n  conflicting grant detected: %d/%d; any busy->ok: %d/%d\n",
	       detected, tried, anydet, any);
	CU_ASSERT(tried >= 190);
	CU_ASSERT(anydet * 100 >= any * 95);
	CU_ASSERT(detected * 100 >= tried * 95);
}

static void test_budget(void)
{
	static struct linz_op ops[HIST + NCL];
	size_t n = gen_history(42, ops, HIST);
	struct linz *h = build(ops, n, 50);
	char buf[640];

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL(linz_check(h), LINZ_UNKNOWN);
	CU_ASSERT(linz_steps(h) <= 50);
	linz_explain(h, buf, sizeof(buf));
	CU_ASSERT(strstr(buf, "budget") != NULL);
	linz_free(h);

	/* the same history with room to finish */
	h = build(ops, n, 10000000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL(linz_check(h), LINZ_LINEARIZABLE);
	linz_free(h);
}

/* ---- byte ranges, changing slot counts, session ends ------------------ */

static void addr(struct linz *h, uint32_t c, uint64_t key, enum linz_kind k,
		 enum linz_out o, uint64_t s, uint64_t e, uint64_t call,
		 uint64_t ret)
{
	struct linz_op op = {
		.client = c, .key = key, .kind = k, .out = o,
		.call = call, .ret = ret, .ranged = 1, .start = s, .end = e,
	};

	CU_ASSERT_FATAL(linz_add_op(h, &op) >= 0);
}

static void add_slots(struct linz *h, uint64_t key, uint32_t slots,
		      enum linz_out o, uint64_t call, uint64_t ret)
{
	struct linz_op op = {
		.client = 1000, .key = key, .kind = LINZ_SET_SLOTS, .out = o,
		.call = call, .ret = ret, .slots = slots,
	};

	CU_ASSERT_FATAL(linz_add_op(h, &op) >= 0);
}

static void test_bad_input_new(void)
{
	struct linz *h = linz_new(0);
	struct linz_op op = { .client = 1, .kind = LINZ_TRY_EX, .ranged = 1,
			      .start = 10, .end = 9, .out = LINZ_OK,
			      .call = 1, .ret = 2 };

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL(linz_add_op(h, &op), -EINVAL);      /* start > end */
	op.end = 10;
	CU_ASSERT(linz_add_op(h, &op) >= 0);
	op.kind = LINZ_RELEASE_ALL;
	op.out = LINZ_ERR;
	CU_ASSERT_EQUAL(linz_add_op(h, &op), -EINVAL);      /* never fails */
	op.out = LINZ_BUSY;
	CU_ASSERT_EQUAL(linz_add_op(h, &op), -EINVAL);
	op.ret = INF;                                       /* pending: fine */
	CU_ASSERT(linz_add_op(h, &op) >= 0);
	op.ret = 2;
	op.kind = LINZ_SET_SLOTS;
	CU_ASSERT_EQUAL(linz_add_op(h, &op), -EINVAL);      /* busy */
	op.kind = (enum linz_kind)(LINZ_RELEASE_ALL + 1);
	op.out = LINZ_OK;
	CU_ASSERT_EQUAL(linz_add_op(h, &op), -EINVAL);
	linz_free(h);
}

static void test_ranges_overlap(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	addr(h, 1, 5, LINZ_ACQ_EX, LINZ_OK, 0, 9, 0, 1);
	addr(h, 2, 5, LINZ_ACQ_EX, LINZ_OK, 9, 15, 2, 3);   /* byte 9 */
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	{
		char buf[1024];

		linz_explain(h, buf, sizeof(buf));
		CU_ASSERT(strstr(buf, "ranged key 5") != NULL);
		CU_ASSERT(strstr(buf, "[0, 9]") != NULL);
		if (getenv("LINZ_VERBOSE"))
			printf("\n  %s\n", buf);
	}
	linz_free(h);

	/* sh against ex conflicts too, and a try must see it */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	addr(h, 1, 5, LINZ_ACQ_SH, LINZ_OK, 0, 9, 0, 1);
	addr(h, 2, 5, LINZ_TRY_EX, LINZ_OK, 5, 5, 2, 3);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);

	/* two shared overlapping locks are fine, slots or not (they count
	 * flock holders only) */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL(linz_set_slots(h, 5, 1), 0);
	addr(h, 1, 5, LINZ_ACQ_SH, LINZ_OK, 0, 9, 0, 1);
	addr(h, 2, 5, LINZ_TRY_SH, LINZ_OK, 5, UINT64_MAX, 2, 3);
	addr(h, 3, 5, LINZ_TRY_EX, LINZ_BUSY, 20, 30, 4, 5);
	addr(h, 3, 5, LINZ_TRY_SH, LINZ_OK, 20, 30, 6, 7);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);
}

static void test_ranges_disjoint(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	addr(h, 1, 5, LINZ_ACQ_EX, LINZ_OK, 0, 9, 0, 1);
	addr(h, 2, 5, LINZ_ACQ_EX, LINZ_OK, 10, 19, 2, 3);
	addr(h, 3, 5, LINZ_TRY_EX, LINZ_OK, 20, 999, 4, 5);
	addr(h, 4, 5, LINZ_TRY_SH, LINZ_BUSY, 9, 10, 6, 7);
	addr(h, 4, 5, LINZ_TRY_SH, LINZ_BUSY, 0, UINT64_MAX, 6, 7);
	/* a whole-key lock elsewhere is a different space */
	add(h, 4, 6, LINZ_ACQ_EX, LINZ_OK, 6, 7);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	/* ... but a busy try on free bytes is wrong */
	addr(h, 4, 5, LINZ_TRY_EX, LINZ_BUSY, 8, 8, 6, 7);  /* c1 holds 8 */
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	addr(h, 5, 5, LINZ_TRY_SH, LINZ_BUSY, 1000, UINT64_MAX, 8, 9);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);
}

static void test_ranges_own(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	addr(h, 1, 5, LINZ_ACQ_EX, LINZ_OK, 0, 9, 0, 1);
	addr(h, 1, 5, LINZ_ACQ_EX, LINZ_OK, 5, 15, 2, 3);   /* own: merges */
	addr(h, 1, 5, LINZ_TRY_SH, LINZ_OK, 0, 19, 4, 5);   /* downgrade */
	addr(h, 2, 5, LINZ_TRY_SH, LINZ_OK, 3, 3, 6, 7);
	addr(h, 2, 5, LINZ_TRY_EX, LINZ_BUSY, 3, 3, 8, 9);  /* c1 shares */
	addr(h, 1, 5, LINZ_TRY_EX, LINZ_BUSY, 0, 9, 8, 9);  /* c2 shares 3 */
	addr(h, 1, 5, LINZ_TRY_EX, LINZ_OK, 4, 19, 8, 9);   /* upgrade part */
	addr(h, 2, 5, LINZ_TRY_SH, LINZ_BUSY, 4, 4, 10, 11);
	addr(h, 2, 5, LINZ_TRY_SH, LINZ_OK, 0, 2, 10, 11);
	/* release never fails on a ranged key, even of unheld bytes */
	addr(h, 3, 5, LINZ_RELEASE, LINZ_OK, 0, UINT64_MAX, 12, 13);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	/* after all that c1 still holds [4, 19] ex */
	addr(h, 3, 5, LINZ_TRY_SH, LINZ_OK, 19, 19, 14, 15);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);
}

static void test_ranges_split(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	addr(h, 1, 5, LINZ_ACQ_EX, LINZ_OK, 0, 99, 0, 1);
	addr(h, 1, 5, LINZ_RELEASE, LINZ_OK, 40, 59, 2, 3);
	addr(h, 2, 5, LINZ_ACQ_EX, LINZ_OK, 40, 59, 4, 5);
	addr(h, 3, 5, LINZ_TRY_SH, LINZ_BUSY, 39, 39, 6, 7);
	addr(h, 3, 5, LINZ_TRY_SH, LINZ_BUSY, 60, 60, 6, 7);
	addr(h, 3, 5, LINZ_TRY_SH, LINZ_BUSY, 50, 50, 6, 7);
	addr(h, 3, 5, LINZ_TRY_SH, LINZ_OK, 100, 100, 6, 7);
	/* a failed release changed nothing */
	addr(h, 1, 5, LINZ_RELEASE, LINZ_ERR, 0, 39, 8, 9);
	addr(h, 3, 5, LINZ_TRY_EX, LINZ_BUSY, 0, 0, 10, 11);
	/* close: everything of c1 goes */
	addr(h, 1, 5, LINZ_RELEASE, LINZ_OK, 0, UINT64_MAX, 12, 13);
	addr(h, 3, 5, LINZ_TRY_EX, LINZ_OK, 0, 39, 14, 15);
	addr(h, 3, 5, LINZ_TRY_EX, LINZ_OK, 60, 99, 14, 15);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);

	/* the split left [0, 39] with c1: c2 cannot have it */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	addr(h, 1, 5, LINZ_ACQ_EX, LINZ_OK, 0, 99, 0, 1);
	addr(h, 1, 5, LINZ_RELEASE, LINZ_OK, 40, 59, 2, 3);
	addr(h, 2, 5, LINZ_ACQ_EX, LINZ_OK, 30, 59, 4, 5);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);

	/* ... unless the release is concurrent with a later close */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	addr(h, 1, 5, LINZ_ACQ_EX, LINZ_OK, 0, 99, 0, 1);
	addr(h, 1, 5, LINZ_RELEASE, LINZ_OK, 40, 59, 2, 3);
	addr(h, 2, 5, LINZ_ACQ_EX, LINZ_OK, 30, 59, 4, 8);
	addr(h, 1, 5, LINZ_RELEASE, LINZ_OK, 0, UINT64_MAX, 5, 6);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);
}

static void test_slots_lowered(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add(h, 2, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add(h, 3, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add_slots(h, 7, 1, LINZ_OK, 2, 3);
	/* the three keep their slots; nobody new gets one */
	add(h, 4, 7, LINZ_TRY_SH, LINZ_BUSY, 4, 5);
	add(h, 1, 7, LINZ_RELEASE, LINZ_OK, 6, 7);
	add(h, 2, 7, LINZ_RELEASE, LINZ_OK, 6, 7);
	add(h, 4, 7, LINZ_TRY_SH, LINZ_BUSY, 8, 9);         /* 1 of 1 */
	add(h, 3, 7, LINZ_RELEASE, LINZ_OK, 10, 11);
	add(h, 4, 7, LINZ_TRY_SH, LINZ_OK, 12, 13);
	add(h, 5, 7, LINZ_TRY_SH, LINZ_BUSY, 14, 15);
	/* a refused change changes nothing; raising it makes room */
	add_slots(h, 7, 5, LINZ_ERR, 16, 17);
	add(h, 5, 7, LINZ_TRY_SH, LINZ_BUSY, 18, 19);
	add_slots(h, 7, 0, LINZ_OK, 20, 21);
	add(h, 5, 7, LINZ_TRY_SH, LINZ_OK, 22, 23);
	add(h, 6, 7, LINZ_TRY_SH, LINZ_OK, 22, 23);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);

	/* the busy try right after lowering is wrong when it was raised
	 * before; linz_set_slots() is only the starting count */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL(linz_set_slots(h, 7, 1), 0);
	add(h, 1, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add(h, 2, 7, LINZ_TRY_SH, LINZ_BUSY, 2, 3);
	add_slots(h, 7, 2, LINZ_OK, 4, 5);
	add(h, 2, 7, LINZ_TRY_SH, LINZ_OK, 6, 7);
	add(h, 3, 7, LINZ_TRY_SH, LINZ_BUSY, 8, 9);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	add(h, 4, 7, LINZ_TRY_SH, LINZ_BUSY, 10, 11);
	add_slots(h, 7, 3, LINZ_OK, 12, 13);
	add(h, 4, 7, LINZ_TRY_SH, LINZ_BUSY, 14, 15);       /* room for 3 */
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);
}

static void test_slots_granted_above(void)
{
	struct linz *h = linz_new(0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add(h, 2, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add(h, 3, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add_slots(h, 7, 2, LINZ_OK, 2, 3);
	add(h, 4, 7, LINZ_ACQ_SH, LINZ_OK, 4, 5);           /* 4th of 2 */
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	{
		char buf[1024];

		linz_explain(h, buf, sizeof(buf));
		CU_ASSERT(strstr(buf, "slots 2") != NULL);
		if (getenv("LINZ_VERBOSE"))
			printf("\n  %s\n", buf);
	}
	linz_free(h);

	/* the same grant is fine when the change overlaps it */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add(h, 2, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add(h, 3, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add_slots(h, 7, 2, LINZ_OK, 2, 5);
	add(h, 4, 7, LINZ_ACQ_SH, LINZ_OK, 4, 5);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);

	/* ... or when the change never returned and so may come later */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add(h, 2, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add(h, 3, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add_slots(h, 7, 2, LINZ_OK, 2, INF);
	add(h, 4, 7, LINZ_ACQ_SH, LINZ_OK, 4, 5);
	add(h, 5, 7, LINZ_TRY_SH, LINZ_BUSY, 6, 7);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);

	/* an ex request is still refused with any count */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	add_slots(h, 7, 5, LINZ_OK, 2, 3);
	add(h, 2, 7, LINZ_TRY_EX, LINZ_OK, 4, 5);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);
}

static void test_release_all(void)
{
	struct linz *h = linz_new(0);
	struct linz_op ra = { .client = 1, .key = 7, .kind = LINZ_RELEASE_ALL,
			      .out = LINZ_OK, .call = 5, .ret = INF };

	/* an expiring session's locks go at some point after its call */
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 0, 1);
	add(h, 2, 7, LINZ_TRY_EX, LINZ_BUSY, 6, 7);
	CU_ASSERT(linz_add_op(h, &ra) >= 0);
	add(h, 2, 7, LINZ_ACQ_EX, LINZ_OK, 10, 11);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	linz_free(h);

	/* without it the second grant has no explanation */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 0, 1);
	add(h, 2, 7, LINZ_ACQ_EX, LINZ_OK, 10, 11);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);

	/* ... and it cannot act before it was called */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	add(h, 1, 7, LINZ_ACQ_EX, LINZ_OK, 0, 1);
	add(h, 2, 7, LINZ_ACQ_EX, LINZ_OK, 2, 3);
	ra.call = 4;
	CU_ASSERT(linz_add_op(h, &ra) >= 0);
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);

	/* a completed one: nothing held afterwards, also when nothing
	 * was held (it never fails); sh holders too */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	ra.call = 2;
	ra.ret = 3;
	add(h, 1, 7, LINZ_ACQ_SH, LINZ_OK, 0, 1);
	CU_ASSERT(linz_add_op(h, &ra) >= 0);
	ra.call = 4;
	ra.ret = 5;
	CU_ASSERT(linz_add_op(h, &ra) >= 0);
	add(h, 2, 7, LINZ_TRY_EX, LINZ_OK, 6, 7);
	add(h, 1, 7, LINZ_RELEASE, LINZ_ERR, 8, 9);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	add(h, 3, 7, LINZ_TRY_EX, LINZ_OK, 10, 11);        /* c2 holds */
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);

	/* on a ranged key every range of the client goes */
	h = linz_new(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	addr(h, 1, 5, LINZ_ACQ_EX, LINZ_OK, 0, 9, 0, 1);
	addr(h, 1, 5, LINZ_ACQ_SH, LINZ_OK, 20, 29, 0, 1);
	addr(h, 2, 5, LINZ_ACQ_SH, LINZ_OK, 25, 35, 2, 3);
	ra.key = 5;
	ra.call = 4;
	ra.ret = INF;
	CU_ASSERT(linz_add_op(h, &ra) >= 0);
	addr(h, 3, 5, LINZ_ACQ_EX, LINZ_OK, 0, 24, 6, 7);
	CU_ASSERT_EQUAL(check(h), LINZ_LINEARIZABLE);
	addr(h, 3, 5, LINZ_TRY_EX, LINZ_OK, 30, 30, 8, 9); /* c2's */
	CU_ASSERT_EQUAL(check(h), LINZ_NOT);
	linz_free(h);
}

/*
 * A random history against an independent, byte-by-byte model: keys 0 and
 * 1 are whole keys whose slot counts an admin changes, 2 and 3 are ranged
 * over bytes 0..15 and a tail [16, UINT64_MAX] (bucket 16).  To stay free
 * of deadlocks a client only blocks while it holds nothing, and sticks to
 * one key while it holds something there.
 */
#define XCL 8
#define XADMIN XCL                     /* client id of the slot changer */
#define XKEYS 4
#define NB 17

struct xkey {
	bool ranged;
	uint32_t slots;
	uint8_t b[XCL][NB];            /* 0 none, 1 sh, 2 ex (whole: b[c][0]) */
};

struct xgen {
	const uint8_t *keys;           /* the keys this history uses */
	uint32_t nkeys;
	uint32_t slots0[XKEYS];
};

static void xrange(uint64_t *s, const struct linz_op *op, uint32_t *lo,
		   uint32_t *hi)
{
	(void)s;
	*lo = (uint32_t)(op->start > 16 ? 16 : op->start);
	*hi = op->end > 15 ? 16 : (uint32_t)op->end;
}

/*
 * Applies op to the model now.  Returns true when granted; on a refusal
 * *blk gets the clients that caused it and *byslots whether the slot
 * count (rather than one holder) did.
 */
static bool xapply(struct xkey *k, const struct linz_op *op, uint32_t *blk,
		   bool *byslots)
{
	uint32_t c = op->client, lo = 0, hi = 0, nsh = 0;
	bool ex = op->kind == LINZ_ACQ_EX || op->kind == LINZ_TRY_EX;

	*blk = 0;
	*byslots = false;
	if (op->kind == LINZ_SET_SLOTS) {
		k->slots = op->slots;
		return true;
	}
	if (op->kind == LINZ_RELEASE_ALL) {
		memset(k->b[c], 0, sizeof(k->b[c]));
		return true;
	}
	if (!k->ranged) {
		uint8_t *me = &k->b[c][0];

		for (uint32_t o = 0; o < XCL; o++) {
			if (o == c || !k->b[o][0])
				continue;
			if (ex || k->b[o][0] == 2)
				*blk |= 1u << o;
			nsh += k->b[o][0] == 1;
		}
		if (op->kind == LINZ_RELEASE) {
			bool held = *me != 0;

			*me = 0;
			*blk = 0;
			return held;
		}
		if (!*blk && !ex && k->slots && nsh >= k->slots) {
			for (uint32_t o = 0; o < XCL; o++)
				if (o != c && k->b[o][0] == 1)
					*blk |= 1u << o;
			*byslots = true;
		}
		if (*blk)
			return false;
		*me = ex ? 2 : 1;
		return true;
	}
	xrange(NULL, op, &lo, &hi);
	if (op->kind == LINZ_RELEASE) {
		for (uint32_t i = lo; i <= hi; i++)
			k->b[c][i] = 0;
		return true;
	}
	for (uint32_t o = 0; o < XCL; o++)
		for (uint32_t i = lo; i <= hi; i++)
			if (o != c && k->b[o][i] && (ex || k->b[o][i] == 2))
				*blk |= 1u << o;
	if (*blk)
		return false;
	for (uint32_t i = lo; i <= hi; i++)
		k->b[c][i] = ex ? 2 : 1;
	return true;
}

static bool xholds(const struct xkey *k, uint32_t c)
{
	for (uint32_t i = 0; i < NB; i++)
		if (k->b[c][i])
			return true;
	return false;
}

/* A random range of a ranged key: mostly small, sometimes to EOF. */
static void xpick_range(uint64_t *s, struct linz_op *op)
{
	op->ranged = 1;
	op->start = rnd(s, 16);
	if (rnd(s, 4) == 0)
		op->end = UINT64_MAX;
	else
		op->end = op->start + rnd(s, (uint32_t)(16 - op->start));
	if (op->kind == LINZ_RELEASE && rnd(s, 4) == 0) {
		op->start = 0;         /* close */
		op->end = UINT64_MAX;
	}
}

/* Why a refused try was refused (for the fault injection). */
struct xwhy {
	uint32_t blk;
	bool byslots;
	uint32_t slots;
};

/*
 * Fills ops[] (and why[] for refused tries) with about n operations from
 * seed; returns the count.
 */
static size_t xgen_history(const struct xgen *g, uint64_t seed,
			   struct linz_op *ops, struct xwhy *why, size_t n)
{
	struct xkey k[XKEYS];
	struct {
		int phase;             /* 0 idle, 1 before effect, 2 after */
		uint64_t at;
		int cur;               /* key it sticks to, or -1 */
		struct linz_op op;
		struct xwhy w;
	} cl[XCL + 1];
	uint64_t s = seed * 104729 + 7;
	size_t nops = 0, issued = 0;

	memset(k, 0, sizeof(k));
	for (uint32_t i = 0; i < XKEYS; i++) {
		k[i].ranged = i >= 2;
		k[i].slots = g->slots0[i];
	}
	memset(cl, 0, sizeof(cl));
	for (int c = 0; c <= XCL; c++)
		cl[c].cur = -1;
	for (uint64_t t = 0; issued < n; t++) {
		uint32_t perm[XCL + 1];

		for (uint32_t i = 0; i <= XCL; i++)
			perm[i] = i;
		for (uint32_t i = XCL; i > 0; i--) {
			uint32_t j = rnd(&s, i + 1), x = perm[i];

			perm[i] = perm[j];
			perm[j] = x;
		}
		for (uint32_t i = 0; i <= XCL && issued < n; i++) {
			uint32_t c = perm[i];
			struct linz_op *op = &cl[c].op;

			if (cl[c].phase == 0 && t >= cl[c].at) {
				memset(op, 0, sizeof(*op));
				op->client = c;
				op->call = t;
				if (c == XADMIN) {
					/* only whole keys have slots to
					 * speak of; mostly small counts */
					uint32_t key = g->keys[rnd(&s,
								 g->nkeys)];

					if (k[key].ranged && rnd(&s, 2))
						key = g->keys[0];
					op->key = key;
					op->kind = LINZ_SET_SLOTS;
					op->slots = rnd(&s, 4);
				} else {
					int held = cl[c].cur;
					uint32_t key;
					uint32_t r = rnd(&s, 20);

					if (held >= 0 &&
					    !xholds(&k[held], c))
						held = cl[c].cur = -1;
					key = held >= 0 ? (uint32_t)held
						: g->keys[rnd(&s, g->nkeys)];
					op->key = key;
					if (r == 0) {
						op->kind = LINZ_RELEASE_ALL;
					} else if (held >= 0 &&
						   !k[key].ranged) {
						op->kind = LINZ_RELEASE;
					} else if (r == 1 || (held >= 0 &&
							      r < 8)) {
						op->kind = LINZ_RELEASE;
					} else {
						op->kind = (enum linz_kind)
							rnd(&s, 4);
						/* blocking only when
						 * holding nothing */
						if (held >= 0)
							op->kind |= 2;
					}
					if (k[key].ranged &&
					    op->kind != LINZ_RELEASE_ALL)
						xpick_range(&s, op);
				}
				cl[c].phase = 1;
				cl[c].at = t + rnd(&s, 4);
				issued++;
			} else if (cl[c].phase == 1 && t >= cl[c].at) {
				bool gr = xapply(&k[op->key], op, &cl[c].w.blk,
						 &cl[c].w.byslots);

				if (!gr && (op->kind == LINZ_ACQ_EX ||
					    op->kind == LINZ_ACQ_SH))
					continue;       /* waits */
				cl[c].w.slots = k[op->key].slots;
				if (op->kind == LINZ_TRY_EX ||
				    op->kind == LINZ_TRY_SH)
					op->out = gr ? LINZ_OK : LINZ_BUSY;
				else
					op->out = gr ? LINZ_OK : LINZ_ERR;
				if (c != XADMIN && xholds(&k[op->key], c))
					cl[c].cur = (int)op->key;
				cl[c].phase = 2;
				cl[c].at = t + rnd(&s, 4);
			} else if (cl[c].phase == 2 && t >= cl[c].at) {
				op->ret = t;
				why[nops] = cl[c].w;
				ops[nops++] = *op;
				cl[c].phase = 0;
				cl[c].at = t + 1 + rnd(&s, 3) +
					   (cl[c].cur >= 0 ? rnd(&s, 8) : 0) +
					   (c == XADMIN ? 10 + rnd(&s, 40) : 0);
			}
		}
	}
	for (int c = 0; c <= XCL; c++) {
		if (cl[c].phase == 0)
			continue;
		cl[c].op.ret = LINZ_INF;
		memset(&why[nops], 0, sizeof(why[nops]));
		ops[nops++] = cl[c].op;
	}
	return nops;
}

/* Does client c (or, for c == XADMIN, any slot change) have an op on key
 * whose interval meets [a, b]? */
static bool xbusy_during(const struct linz_op *ops, size_t n, uint32_t c,
			 uint64_t key, uint64_t a, uint64_t b)
{
	for (size_t i = 0; i < n; i++)
		if (ops[i].client == c && ops[i].key == key &&
		    ops[i].call <= b && ops[i].ret >= a)
			return true;
	return false;
}

/*
 * Was refused try o refused for a reason that lasted its whole interval
 * whatever the order?  A blocking holder with no op on the key during the
 * interval holds the same bytes throughout (a client's locks depend only
 * on its own ops); a full semaphore needs that many such holders and no
 * slot change meeting the interval (the admin changes them one at a time,
 * so the count is then known).
 */
static bool xsurely_refused(const struct linz_op *ops,
			    const struct xwhy *why, size_t n, size_t o)
{
	const struct linz_op *t = &ops[o];
	uint32_t stable = 0;

	if (t->out != LINZ_BUSY || t->ret == LINZ_INF || !why[o].blk)
		return false;
	for (uint32_t c = 0; c < XCL; c++)
		if ((why[o].blk >> c & 1) &&
		    !xbusy_during(ops, n, c, t->key, t->call, t->ret))
			stable++;
	if (!why[o].byslots)
		return stable > 0;
	return stable >= why[o].slots &&
	       !xbusy_during(ops, n, XADMIN, t->key, t->call, t->ret);
}

static struct linz *xbuild(const struct xgen *g, const struct linz_op *ops,
			   size_t n, uint64_t budget)
{
	struct linz *h = linz_new(budget);

	if (!h)
		return NULL;
	for (uint32_t i = 0; i < XKEYS; i++)
		if (linz_set_slots(h, i, g->slots0[i]) < 0)
			goto out_free;
	for (size_t i = 0; i < n; i++)
		if (linz_add_op(h, &ops[i]) < 0)
			goto out_free;
	return h;

out_free:
	linz_free(h);
	return NULL;
}

#define XHIST 400

static const uint8_t xkeys_all[] = { 0, 1, 2, 3 };
static const struct xgen xmixed = {
	.keys = xkeys_all, .nkeys = 4, .slots0 = { 2, 0, 1, 0 },
};

/* Counts the kinds in a history, so the test proves it exercised them. */
static void xcount(const struct linz_op *ops, size_t n, size_t *cnt)
{
	for (size_t i = 0; i < n; i++) {
		if (ops[i].ret == LINZ_INF)
			continue;
		cnt[ops[i].kind]++;
		if (ops[i].ranged && ops[i].out == LINZ_OK &&
		    ops[i].kind != LINZ_RELEASE)
			cnt[LINZ_RELEASE_ALL + 1]++;
	}
}

static void test_random_ranges_slots(void)
{
	static struct linz_op ops[XHIST + XCL + 1];
	static struct xwhy why[XHIST + XCL + 1];
	size_t cnt[LINZ_RELEASE_ALL + 2] = { 0 };
	int bad = 0;
	uint64_t maxsteps = 0;

	for (uint64_t seed = 1; seed <= 250; seed++) {
		size_t n = xgen_history(&xmixed, seed, ops, why, XHIST);
		struct linz *h = xbuild(&xmixed, ops, n, 0);
		enum linz_result r;

		CU_ASSERT_PTR_NOT_NULL_FATAL(h);
		xcount(ops, n, cnt);
		r = linz_check(h);
		if (linz_steps(h) > maxsteps)
			maxsteps = linz_steps(h);
		if (r != LINZ_LINEARIZABLE) {
			char buf[1024];

			linz_explain(h, buf, sizeof(buf));
			fprintf(stderr, "seed %llu: %s\n",
				(unsigned long long)seed, buf);
			bad++;
		}
		linz_free(h);
	}
	printf("\n  250 histories: %zu set-slots, %zu release-all, %zu "
	       "ranged grants; most steps %llu\n", cnt[LINZ_SET_SLOTS],
	       cnt[LINZ_RELEASE_ALL], cnt[LINZ_RELEASE_ALL + 1],
	       (unsigned long long)maxsteps);
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT(cnt[LINZ_SET_SLOTS] > 500);
	CU_ASSERT(cnt[LINZ_RELEASE_ALL] > 500);
	CU_ASSERT(cnt[LINZ_RELEASE_ALL + 1] > 5000);
}

static const uint8_t xkeys_sem[] = { 0 };
static const struct xgen xsem = {
	.keys = xkeys_sem, .nkeys = 1, .slots0 = { 2, 0, 0, 0 },
};

static void test_random_ranges_faults(void)
{
	static struct linz_op ops[XHIST + XCL + 1];
	static struct xwhy why[XHIST + XCL + 1];
	int tried[3] = { 0 }, detected[3] = { 0 };

	/* the mixed histories, then some on one semaphore alone where
	 * full-semaphore refusals are common */
	for (uint64_t run = 1; run <= 350; run++) {
		const struct xgen *g = run <= 250 ? &xmixed : &xsem;
		uint64_t seed = run <= 250 ? run : run - 250;
		size_t n = xgen_history(g, seed, ops, why, XHIST);
		size_t sure[3][XHIST + XCL + 1], ns[3] = { 0 };
		uint64_t s = seed;

		for (size_t i = 0; i < n; i++) {
			int cls;

			if (!xsurely_refused(ops, why, n, i))
				continue;
			cls = ops[i].ranged ? 1 : why[i].byslots ? 2 : 0;
			sure[cls][ns[cls]++] = i;
		}
		/* one fault of each kind: a whole-key grant past a
		 * conflicting holder, a grant that overlaps another
		 * client's bytes, a grant past a full semaphore */
		for (int r = 0; r < 3; r++) {
			struct linz *h;
			size_t pick;

			if (!ns[r])
				continue;
			pick = sure[r][rnd(&s, (uint32_t)ns[r])];
			ops[pick].out = LINZ_OK;
			h = xbuild(g, ops, n, 0);
			CU_ASSERT_PTR_NOT_NULL_FATAL(h);
			tried[r]++;
			if (linz_check(h) == LINZ_NOT)
				detected[r]++;
			else
				fprintf(stderr, "seed %llu: fault at op %zu "
					"missed\n", (unsigned long long)seed,
					pick);
			linz_free(h);
			ops[pick].out = LINZ_BUSY;
		}
	}
	printf("\n  grant caught: overlapping range %d/%d, past a holder "
	       "%d/%d, past a full semaphore %d/%d\n", detected[1],
	       tried[1], detected[0], tried[0], detected[2], tried[2]);
	CU_ASSERT(tried[1] >= 200);
	CU_ASSERT(tried[0] >= 150);
	CU_ASSERT(tried[2] >= 50);
	for (int r = 0; r < 3; r++)
		CU_ASSERT_EQUAL(detected[r], tried[r]);
}

/* A few hundred ops on one ranged key and on one semaphore key, with a
 * step bound that a lost memo would blow. */
static void test_random_one_key(void)
{
	static struct linz_op ops[XHIST + XCL + 1];
	static struct xwhy why[XHIST + XCL + 1];
	static const uint8_t kr[] = { 2 };
	const struct xgen gr = { .keys = kr, .nkeys = 1 };
	uint64_t maxsteps[2] = { 0 };
	int bad = 0;

	for (int which = 0; which < 2; which++) {
		const struct xgen *g = which ? &xsem : &gr;

		for (uint64_t seed = 1; seed <= 50; seed++) {
			size_t n = xgen_history(g, seed, ops, why, 300);
			struct linz *h = xbuild(g, ops, n, 2000000);

			CU_ASSERT_PTR_NOT_NULL_FATAL(h);
			if (linz_check(h) != LINZ_LINEARIZABLE)
				bad++;
			if (linz_steps(h) > maxsteps[which])
				maxsteps[which] = linz_steps(h);
			linz_free(h);
		}
	}
	printf("\n  300 ops on one key: most steps ranged %llu, "
	       "semaphore %llu\n", (unsigned long long)maxsteps[0],
	       (unsigned long long)maxsteps[1]);
	CU_ASSERT_EQUAL(bad, 0);
}

static const struct ut_test tests[] = {
	UT_TEST(test_empty),
	UT_TEST(test_bad_input),
	UT_TEST(test_sequential),
	UT_TEST(test_overlapping_ex),
	UT_TEST(test_ok_after_ok),
	UT_TEST(test_one_order_works),
	UT_TEST(test_pending),
	UT_TEST(test_slots),
	UT_TEST(test_try_busy_free),
	UT_TEST(test_random_valid),
	UT_TEST(test_random_mutated),
	UT_TEST(test_budget),
	UT_TEST(test_bad_input_new),
	UT_TEST(test_ranges_overlap),
	UT_TEST(test_ranges_disjoint),
	UT_TEST(test_ranges_own),
	UT_TEST(test_ranges_split),
	UT_TEST(test_slots_lowered),
	UT_TEST(test_slots_granted_above),
	UT_TEST(test_release_all),
	UT_TEST(test_random_ranges_slots),
	UT_TEST(test_random_ranges_faults),
	UT_TEST(test_random_one_key),
};

const struct ut_suite ut_suites[] = {
	UT_SUITE("linz", tests),
	{ NULL },
};
