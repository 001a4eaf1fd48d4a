/*
 * t/unit_lease.c - unit tests of lockcore/lease.[ch]: the leader's lease
 * table (grace on reset, expiry reported once, touch revives, doomed
 * sessions are never acknowledged) and the node's own view (ok, jeopardy,
 * expired and sticky), and the property the module exists for: over random
 * delays, losses and clock errors within the bound, the node gives up its
 * session strictly before the leader reports it expired.
 *
 * It must never pass by itself: every test asserts on behaviour, and the
 * property test also checks that it finds a counterexample when the
 * margin is below the bound (so the property test can fail).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "lockcore/lc.h"
#include "lockcore/lease.h"
#include "t/lib/cunit.h"

#define L 1000u

/* A lock state with the given sessions open. */
static struct lc_state *state_with(const uint64_t *ids, size_t n)
{
	struct lc_state *s = lc_state_new();
	struct lc_out out = { 0 };

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	for (size_t k = 0; k < n; k++) {
		struct lc_cmd c = { .type = LC_CMD_SESSION_OPEN, .origin = ids[k],
				    .serial = 1, .session = ids[k], .data = "n",
				    .data_len = 1 };

		CU_ASSERT_EQUAL_FATAL(lc_apply(s, k + 1, &c, &out), 0);
		CU_ASSERT_EQUAL(out.v[0].status, 0);
		lc_out_reset(&out);
	}
	lc_out_free(&out);
	return s;
}

static size_t expired(struct lease_table *t, uint64_t now, uint64_t *out)
{
	return lease_expired(t, now, out, 16);
}

static void test_reset_grace(void)
{
	static const uint64_t ids[] = { 5, 7, 9 };
	struct lc_state *s = state_with(ids, 3);
	struct lease_table t;
	uint64_t ex[16];

	lease_table_init(&t, L);
	/* the previous leadership's view: 5 heard from long ago, 99 unknown
	 * to the state */
	CU_ASSERT_EQUAL(lease_touch(&t, 5, 0), 0);
	CU_ASSERT_EQUAL(lease_touch(&t, 99, 0), 0);
	CU_ASSERT_EQUAL(lease_reset(&t, s, 10000), 0);
	CU_ASSERT_PTR_NULL(lease_find(&t, 99));
	CU_ASSERT_PTR_NOT_NULL(lease_find(&t, 7));
	CU_ASSERT_EQUAL(lease_next_deadline(&t), 10000 + L);
	/* nobody expires before a full lease from the reset */
	CU_ASSERT_EQUAL(expired(&t, 10000 + L - 1, ex), 0);
	CU_ASSERT_EQUAL(expired(&t, 10000 + L, ex), 3);
	CU_ASSERT_EQUAL(ex[0], 5);
	CU_ASSERT_EQUAL(ex[1], 7);
	CU_ASSERT_EQUAL(ex[2], 9);
	/* a reset forgets reports and dooms */
	CU_ASSERT_EQUAL(lease_reset(&t, s, 20000), 0);
	CU_ASSERT_EQUAL(lease_touch(&t, 7, 20001), 0);
	CU_ASSERT_EQUAL(lease_reset(&t, NULL, 1), 0);
	CU_ASSERT_EQUAL(lease_next_deadline(&t), 0);
	CU_ASSERT_EQUAL(lease_reset(NULL, s, 1), -EINVAL);
	lease_table_free(&t);
	lc_state_free(s);
}

static void test_expired_once(void)
{
	struct lease_table t;
	uint64_t ex[16];

	lease_table_init(&t, L);
	CU_ASSERT_EQUAL(lease_open(&t, 3, 100), 0);
	CU_ASSERT_EQUAL(lease_open(&t, 4, 300), 0);
	/* a second open does not refresh */
	CU_ASSERT_EQUAL(lease_open(&t, 3, 900), 0);
	CU_ASSERT_EQUAL(lease_next_deadline(&t), 100 + L);
	CU_ASSERT_EQUAL(expired(&t, 100 + L, ex), 1);
	CU_ASSERT_EQUAL(ex[0], 3);
	CU_ASSERT_EQUAL(expired(&t, 100 + L + 50, ex), 0);
	CU_ASSERT_EQUAL(lease_next_deadline(&t), 300 + L);
	CU_ASSERT_EQUAL(expired(&t, 5000, ex), 1);
	CU_ASSERT_EQUAL(ex[0], 4);
	CU_ASSERT_EQUAL(expired(&t, 9000, ex), 0);
	CU_ASSERT_EQUAL(lease_next_deadline(&t), 0);
	CU_ASSERT(lease_find(&t, 3)->reported && lease_find(&t, 3)->doomed);
	/* the close applied */
	lease_forget(&t, 3);
	lease_forget(&t, 3);
	lease_forget(&t, 12345);
	CU_ASSERT_PTR_NULL(lease_find(&t, 3));
	CU_ASSERT_PTR_NOT_NULL(lease_find(&t, 4));
	/* max bounds the batch */
	for (uint64_t k = 10; k < 40; k++)
		CU_ASSERT_EQUAL(lease_open(&t, k, 0), 0);
	CU_ASSERT_EQUAL(lease_expired(&t, L, ex, 16), 16);
	CU_ASSERT_EQUAL(lease_expired(&t, L, ex, 16), 14);
	CU_ASSERT_EQUAL(lease_expired(&t, L, ex, 16), 0);
	CU_ASSERT_EQUAL(lease_open(&t, 0, 1), -EINVAL);
	CU_ASSERT_EQUAL(lease_touch(&t, 0, 1), -EINVAL);
	lease_table_free(&t);
}

static void test_touch_revives(void)
{
	struct lease_table t;
	uint64_t ex[16];

	lease_table_init(&t, L);
	/* first contact adds */
	CU_ASSERT_EQUAL(lease_touch(&t, 8, 50), 0);
	CU_ASSERT_EQUAL(lease_touch(&t, 8, 500), 0);
	CU_ASSERT_EQUAL(expired(&t, 50 + L, ex), 0);      /* refreshed at 500 */
	/* a clock stepping back never shortens a lease */
	CU_ASSERT_EQUAL(lease_touch(&t, 8, 400), 0);
	CU_ASSERT_EQUAL(lease_find(&t, 8)->last_ms, 500);
	CU_ASSERT_EQUAL(expired(&t, 500 + L, ex), 1);
	/* heard from again after the report: revived, but doomed: no ack */
	CU_ASSERT_EQUAL(lease_touch(&t, 8, 1600), LEASE_DOOMED);
	CU_ASSERT_EQUAL(lease_next_deadline(&t), 1600 + L);
	CU_ASSERT_EQUAL(expired(&t, 1600 + L - 1, ex), 0);
	CU_ASSERT_EQUAL(expired(&t, 1600 + L, ex), 1);     /* reported again */
	CU_ASSERT_EQUAL(lease_touch(&t, 8, 3000), LEASE_DOOMED);
	/* its close applied: a later contact starts over, not doomed */
	lease_forget(&t, 8);
	CU_ASSERT_EQUAL(lease_touch(&t, 8, 3100), 0);
	lease_table_free(&t);
}

static void test_view(void)
{
	struct lease_view v;

	lease_view_init(&v, L, 50);
	CU_ASSERT_EQUAL(lease_view_state(&v, 0), LEASE_NONE);
	CU_ASSERT_EQUAL(lease_view_deadline(&v), 0);
	lease_view_ack(&v, 100);
	CU_ASSERT_EQUAL(lease_view_deadline(&v), 100 + L - 50);
	CU_ASSERT_EQUAL(lease_view_jeopardy_at(&v), 100 + L / LEASE_JEOPARDY_DIV);
	CU_ASSERT_EQUAL(lease_view_state(&v, 100), LEASE_OK);
	CU_ASSERT_EQUAL(lease_view_state(&v, 100 + L / 3), LEASE_OK);
	CU_ASSERT_EQUAL(lease_view_state(&v, 100 + L / 3 + 1), LEASE_JEOPARDY);
	/* an older ack changes nothing; a newer one brings it back to ok */
	lease_view_ack(&v, 50);
	CU_ASSERT_EQUAL(lease_view_deadline(&v), 100 + L - 50);
	lease_view_ack(&v, 400);
	CU_ASSERT_EQUAL(lease_view_state(&v, 500), LEASE_OK);
	CU_ASSERT_EQUAL(lease_view_state(&v, 400 + L - 51), LEASE_JEOPARDY);
	CU_ASSERT_EQUAL(lease_view_state(&v, 400 + L - 50), LEASE_EXPIRED);
	/* sticky: a late ack does not revive a session given up */
	lease_view_ack(&v, 2000);
	CU_ASSERT_EQUAL(lease_view_state(&v, 2001), LEASE_EXPIRED);
	/* the margin always leaves room for jeopardy */
	lease_view_init(&v, L, 5000);
	CU_ASSERT(v.margin_ms < L - L / LEASE_JEOPARDY_DIV);
	lease_view_ack(&v, 0);
	CU_ASSERT_EQUAL(lease_view_state(&v, L / 3 + 1), LEASE_JEOPARDY);
	CU_ASSERT_EQUAL(lease_view_state(NULL, 1), LEASE_NONE);
}

/* ---- the node gives up first -------------------------------------------- */

static uint64_t rs = 88172645463325252ull;

static uint64_t rnd(uint64_t lo, uint64_t hi)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return lo + rs % (hi - lo + 1);
}

/* A clock whose offset from real time steps within [0, D] and never goes
 * back (as the simulator's). */
struct clk { uint64_t off, last; };

static uint64_t rd(struct clk *c, uint64_t real, uint64_t d)
{
	uint64_t l;

	if (rnd(0, 99) < 2)
		c->off = rnd(0, d);
	l = real + c->off;
	if (l < c->last)
		l = c->last;
	c->last = l;
	return l;
}

enum { EV_RECV = 1, EV_ACK };
struct pev { uint64_t t; int type; uint64_t stamp; };

/* One random run: returns 1 when the leader reported the session expired
 * at or before the node gave up (the property broken), else 0. */
static int one_run(uint64_t margin, uint64_t d)
{
	struct lease_table t;
	struct lease_view v;
	struct clk cn = { rnd(0, d), 0 }, cl = { rnd(0, d), 0 };
	struct pev ev[256];
	size_t nev = 0;
	uint64_t stop = rnd(500, 4000), next_send = 0, gave_up = 0, freed = 0, ex[4];
	int bad;

	lease_table_init(&t, L);
	lease_view_init(&v, L, margin);
	/* the session opened: leader's lease from its apply, node's from the
	 * send of the open, which came first */
	lease_view_ack(&v, rd(&cn, 0, d));
	CU_ASSERT_EQUAL(lease_open(&t, 1, rd(&cl, rnd(1, 50), d)), 0);
	for (uint64_t real = 1; real < stop + 4 * L && !freed; real++) {
		uint64_t nl = rd(&cn, real, d), ll = rd(&cl, real, d);

		/* the node sends while it has not given up */
		if (!gave_up && real < stop && real >= next_send && nev + 2 < 256) {
			if (rnd(0, 99) >= 30)
				ev[nev++] = (struct pev){ real + rnd(1, 120), EV_RECV, nl };
			next_send = real + rnd(50, 300);
		}
		for (size_t k = 0; k < nev; k++) {
			if (ev[k].t != real)
				continue;
			if (ev[k].type == EV_RECV) {
				if (lease_touch(&t, 1, ll) == 0 && rnd(0, 99) >= 30 && nev < 256)
					ev[nev++] = (struct pev){ real + rnd(1, 120), EV_ACK,
								  ev[k].stamp };
			} else {
				lease_view_ack(&v, ev[k].stamp);
			}
		}
		if (!gave_up && lease_view_state(&v, nl) == LEASE_EXPIRED)
			gave_up = real;
		if (lease_expired(&t, ll, ex, 4))
			freed = real;
	}
	bad = freed && (!gave_up || gave_up >= freed);
	lease_table_free(&t);
	return bad;
}

static void test_node_gives_up_first(void)
{
	const uint64_t d = 10;
	int bad = 0, found = 0;

	/* margin > 2 * D: never */
	for (int k = 0; k < 3000; k++)
		bad += one_run(2 * d + 1, d);
	CU_ASSERT_EQUAL(bad, 0);
	/* margin 0 with the same clocks: the test can see a failure */
	for (int k = 0; k < 3000 && !found; k++)
		found = one_run(0, d);
	CU_ASSERT_EQUAL(found, 1);
}

static const struct ut_test tests[] = {
	UT_TEST(test_reset_grace),
	UT_TEST(test_expired_once),
	UT_TEST(test_touch_revives),
	UT_TEST(test_view),
	UT_TEST(test_node_gives_up_first),
};

const struct ut_suite ut_suites[] = {
	UT_SUITE("lease", tests),
	{ NULL },
};
