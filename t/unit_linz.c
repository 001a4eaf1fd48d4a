/*
 * t/unit_linz.c - CUnit tests of the lock-history linearizability checker.
 *
 * Hand-written histories pin down each rule of the sequential lock model,
 * and a small simulated lock (random latencies, 8 clients, 3 keys) checks
 * that real histories are always accepted and that a single conflicting
 * grant is caught.  It must never depend on wall-clock time or on the
 * simulator: every history here is built from a fixed seed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

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

int main(void)
{
	static const struct {
		const char *name;
		CU_TestFunc fn;
	} tests[] = {
		{ "empty", test_empty },
		{ "bad_input", test_bad_input },
		{ "sequential", test_sequential },
		{ "overlapping_ex", test_overlapping_ex },
		{ "ok_after_ok", test_ok_after_ok },
		{ "one_order_works", test_one_order_works },
		{ "pending", test_pending },
		{ "slots", test_slots },
		{ "try_busy_free", test_try_busy_free },
		{ "random_valid", test_random_valid },
		{ "random_mutated", test_random_mutated },
		{ "budget", test_budget },
	};
	CU_pSuite suite;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	suite = CU_add_suite("linz", NULL, NULL);
	if (!suite)
		goto out_registry;
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (!CU_add_test(suite, tests[i].name, tests[i].fn))
			goto out_registry;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;

out_registry:
	CU_cleanup_registry();
	return 1;
}
