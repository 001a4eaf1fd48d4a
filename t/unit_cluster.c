/*
 * t/unit_cluster.c - CUnit tests of the in-process cluster harness
 * (t/lib/cluster.h) that t/sim/ and t/unit_raft.c stand on: the seeded
 * PRNG replays, the event queue keeps time and push order, and the fake
 * disk keeps unsynced writes apart, loses them in a crash and refuses a
 * write that would leave a gap.
 *
 * It must never: read the real clock or depend on anything but the seeds
 * it sets.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "lockcore/raft.h"
#include "t/lib/cluster.h"
#include "t/lib/cunit.h"

static void test_rng_replays_a_seed(void)
{
	struct cl_rng a, b;
	bool differs = false;

	cl_rng_seed(&a, 7);
	cl_rng_seed(&b, 7);
	for (int k = 0; k < 1000; k++) {
		uint64_t x = cl_between(&a, 3, 9);

		CU_ASSERT_EQUAL(x, cl_between(&b, 3, 9));
		CU_ASSERT(x >= 3 && x <= 9);
	}
	cl_rng_seed(&b, 8);
	for (int k = 0; k < 10; k++)
		differs |= cl_rnd(&a) != cl_rnd(&b);
	CU_ASSERT(differs);
	CU_ASSERT(!cl_chance(&a, 0));
	CU_ASSERT(cl_chance(&a, 100));
}

static void test_queue_orders_by_time_then_push(void)
{
	struct cl_queue q = { 0 };
	static const uint64_t t[] = { 5, 1, 5, 0, 1, 5 };
	static const int want[] = { 3, 1, 4, 0, 2, 5 };

	for (int k = 0; k < 6; k++)
		cl_push(&q, (struct cl_ev){ .t = t[k], .a = k });
	CU_ASSERT_EQUAL(cl_peek(&q)->a, 3);
	for (int k = 0; k < 6; k++)
		CU_ASSERT_EQUAL(cl_pop(&q).a, want[k]);
	CU_ASSERT_PTR_NULL(cl_peek(&q));
	cl_push(&q, (struct cl_ev){ .t = 1, .buf = cl_dup("ab", 2), .len = 2 });
	cl_queue_clear(&q);
	CU_ASSERT_EQUAL(q.n, 0);
	cl_queue_free(&q);
}

/* An update writing entries first..first+n-1 of term `term`. */
static struct rf_update entries(uint64_t seq, uint64_t first, size_t n, uint64_t term,
				struct rf_entry *e)
{
	struct rf_update u = { .write_seq = seq, .flags = RF_UPD_ENTRIES,
			       .first_index = first, .n_entries = n, .entries = e };

	for (size_t k = 0; k < n; k++)
		e[k] = (struct rf_entry){ term, RF_ENTRY_CMD, 1, (const uint8_t *)"x" };
	return u;
}

static void test_disk_syncs_in_order_and_crash_loses_the_rest(void)
{
	struct cl_disk d;
	struct rf_entry e[4];
	struct rf_update u = entries(1, 1, 3, 1, e);
	struct rf_update hs = { .write_seq = 2, .flags = RF_UPD_HARDSTATE,
				.hs_term = 2, .hs_vote = 3 };

	cl_disk_init(&d);
	cl_disk_write(&d, &u);
	cl_disk_write(&d, &hs);
	CU_ASSERT_EQUAL(d.n, 0);
	CU_ASSERT_EQUAL(cl_disk_sync(&d), 2);
	CU_ASSERT_EQUAL(d.n, 3);
	CU_ASSERT_EQUAL(d.term, 2);
	CU_ASSERT_EQUAL(d.vote, 3);
	CU_ASSERT_EQUAL(cl_disk_sync(&d), 0);
	/* a rewrite from index 2 truncates the tail, then is lost */
	u = entries(3, 2, 1, 2, e);
	cl_disk_write(&d, &u);
	cl_disk_crash(&d);
	CU_ASSERT_EQUAL(cl_disk_sync(&d), 0);
	CU_ASSERT_EQUAL(d.n, 3);
	CU_ASSERT_EQUAL(d.log[1].term, 1);
	u = entries(4, 2, 1, 2, e);
	cl_disk_write(&d, &u);
	CU_ASSERT_EQUAL(cl_disk_sync(&d), 4);
	CU_ASSERT_EQUAL(d.n, 2);
	CU_ASSERT_EQUAL(d.log[1].term, 2);
	/* a write past the end leaves a gap: refused, kept unsynced */
	u = entries(5, 9, 1, 2, e);
	cl_disk_write(&d, &u);
	CU_ASSERT_EQUAL(cl_disk_sync(&d), -ERANGE);
	CU_ASSERT_EQUAL(d.gap_at, 9);
	CU_ASSERT_EQUAL(d.npw, 1);
	cl_disk_free(&d);
}

static void test_disk_snapshots_compact_and_restart(void)
{
	struct cl_disk d;
	struct rf_entry e[6], *es;
	struct rf_update u = entries(1, 1, 6, 1, e);
	struct rf_conf conf = { .n_voters = 1, .voters = { 1 } };
	struct rf_update snap = { .write_seq = 2, .flags = RF_UPD_SNAPSHOT,
				  .snap_index = 2, .snap_term = 1, .snap_conf = &conf,
				  .snap_buf = (const uint8_t *)"old", .snap_len = 3 };
	struct rf_event ev = { 0 };

	cl_disk_init(&d);
	cl_disk_write(&d, &u);
	CU_ASSERT_EQUAL(cl_disk_sync(&d), 1);
	/* our own snapshot at 4 keeps 5 and 6 */
	cl_disk_snapshot(&d, 4, 1, &conf, (const uint8_t *)"four", 4);
	CU_ASSERT_EQUAL(d.first, 5);
	CU_ASSERT_EQUAL(d.n, 2);
	/* an installed snapshot older than ours is dropped; entries it
	 * covers are not stored again */
	cl_disk_write(&d, &snap);
	u = entries(3, 3, 4, 1, e);
	cl_disk_write(&d, &u);
	CU_ASSERT_EQUAL(cl_disk_sync(&d), 3);
	CU_ASSERT_EQUAL(d.snap_index, 4);
	CU_ASSERT_EQUAL(d.covered, 2);
	CU_ASSERT_EQUAL(d.first, 5);
	CU_ASSERT_EQUAL(d.n, 2);
	cl_disk_start(&d, &ev, &es);
	CU_ASSERT_EQUAL(ev.type, RF_EV_START);
	CU_ASSERT_EQUAL(ev.start.snap_index, 4);
	CU_ASSERT_EQUAL(ev.start.snap_len, 4);
	CU_ASSERT_EQUAL(memcmp(ev.start.snap_buf, "four", 4), 0);
	CU_ASSERT_EQUAL(ev.start.n_entries, 2);
	free(ev.start.snap_buf);
	free(es);
	cl_disk_wipe(&d);
	CU_ASSERT_EQUAL(d.first, 1);
	CU_ASSERT_EQUAL(d.n + d.snap_index + d.term, 0);
	cl_disk_free(&d);
}

static const struct ut_test tests[] = {
	UT_TEST(test_rng_replays_a_seed),
	UT_TEST(test_queue_orders_by_time_then_push),
	UT_TEST(test_disk_syncs_in_order_and_crash_loses_the_rest),
	UT_TEST(test_disk_snapshots_compact_and_restart),
};

const struct ut_suite ut_suites[] = {
	UT_SUITE("cluster", tests),
	{ NULL },
};
