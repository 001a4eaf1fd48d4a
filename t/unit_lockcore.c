/*
 * t/unit_lockcore.c - CUnit tests of the lock state machine, rule by rule.
 *
 * Every test drives lockcore through its public API (lockcore/lc.h): it
 * applies commands and checks the completions they emit and what the
 * queries report.  It must never include lockcore/lci.h or assert on a
 * private field, so that the tests keep holding when the implementation
 * changes shape.  Helpers live in t/unit_util.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "lockcore/lc.h"
#include "t/lib/cunit.h"
#include "t/unit_util.h"

#define ROOT LC_INO_ROOT

/* Every test starts with a fresh state, session 1 open and current. */
#define FX                                                                  \
	struct fx *f = fx_new();                                            \
	CU_ASSERT_PTR_NOT_NULL_FATAL(f)


/* A fresh regular file /name. */
static uint64_t file(struct fx *f, const char *name)
{
	int64_t ino = mkfile(f, ROOT, name);

	CU_ASSERT_FATAL(ino > 0);
	return (uint64_t)ino;
}

static uint64_t st_waiters(const struct fx *f)
{
	struct lc_stats st;

	lc_stats(f->s, &st);
	return st.waiters;
}

static uint64_t st_held(const struct fx *f)
{
	struct lc_stats st;

	lc_stats(f->s, &st);
	return st.locks_held;
}

/* Collects lock records reported by lc_locks(). */
struct seen {
	struct lc_lockinfo v[8];
	int n;
};

static int seen_cb(void *ctx, const struct lc_lockinfo *li)
{
	struct seen *q = ctx;

	if (q->n < 8)
		q->v[q->n++] = *li;
	return 0;
}

/* Collects inode numbers reported by lc_foreach_locked(). */
struct inos {
	uint64_t v[8];
	int n;
};

static int inos_cb(void *ctx, uint64_t ino)
{
	struct inos *q = ctx;

	if (q->n < 8)
		q->v[q->n++] = ino;
	return 0;
}

/* Field by field: struct padding is not part of a completion. */
static bool same_comp(const struct lc_completion *a,
		      const struct lc_completion *b)
{
	return a->origin == b->origin && a->serial == b->serial &&
	       a->status == b->status && a->ino == b->ino &&
	       a->token == b->token;
}

static bool same_out(const struct lc_out *a, const struct lc_out *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!same_comp(&a->v[i], &b->v[i]))
			return false;
	return true;
}

/* ======================================================================= */
/* sessions and the log                                                     */
/* ======================================================================= */

static void test_command_without_session_is_enolck(void)
{
	FX;
	f->cur = 7;
	CU_ASSERT_EQUAL(mkfile(f, ROOT, "x"), -ENOLCK);
	f->cur = 1;
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "x"), -ENOENT);
	fx_free(f);
}

static void test_session_open_for_another_session_is_refused(void)
{
	FX;
	struct lc_cmd c = { .type = LC_CMD_SESSION_OPEN, .session = 5 };

	/* issued by session 1 for session 5 */
	CU_ASSERT_NOT_EQUAL(fx_apply(f, &c), 0);
	f->cur = 5;
	CU_ASSERT_EQUAL(mkfile(f, ROOT, "x"), -ENOLCK);
	fx_free(f);
}

static void test_closed_session_cannot_lock(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(fx_open(f, 2), 0);
	f->cur = 2;
	CU_ASSERT_EQUAL(ex(f, a, 1), 0);
	CU_ASSERT_EQUAL(fx_close(f, 2), 0);
	CU_ASSERT_EQUAL(ex(f, a, 1), -ENOLCK);
	CU_ASSERT_EQUAL(nholders(f, a), 0);
	fx_free(f);
}

static void test_session_name_is_kept(void)
{
	FX;
	const char *name = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL(lc_session_name(f->s, 1, &name, &len), 0);
	CU_ASSERT_EQUAL(len, 5);
	CU_ASSERT(name && memcmp(name, "node1", 5) == 0);
	CU_ASSERT_NOT_EQUAL(lc_session_name(f->s, 9, &name, &len), 0);
	fx_free(f);
}

static void test_applied_index_follows_the_log(void)
{
	FX;
	CU_ASSERT_EQUAL(lc_applied_index(f->s), f->index);
	file(f, "a");
	CU_ASSERT_EQUAL(lc_applied_index(f->s), f->index);
	fx_free(f);
}

static void test_index_that_does_not_grow_is_rejected(void)
{
	FX;
	struct lc_out out = { 0 };
	struct lc_cmd c = { .type = LC_CMD_CREATE, .origin = 1, .serial = 99,
			    .time_ns = f->now, .parent = ROOT, .name = "x",
			    .name_len = 1, .mode = 0644 };
	uint64_t h = lc_state_hash(f->s);

	CU_ASSERT(lc_apply(f->s, f->index, &c, &out) < 0);
	CU_ASSERT_EQUAL(lc_state_hash(f->s), h);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "x"), -ENOENT);
	lc_out_free(&out);
	fx_free(f);
}

static void test_stats_count_sessions_and_files(void)
{
	FX;
	struct lc_stats st;

	fx_open(f, 2);
	file(f, "a");
	mkdir_(f, ROOT, "d");
	lc_stats(f->s, &st);
	CU_ASSERT_EQUAL(st.sessions, 2);
	CU_ASSERT_EQUAL(st.files, 3);
	fx_free(f);
}

/* ======================================================================= */
/* flock                                                                    */
/* ======================================================================= */

static void test_ex_on_free_file_is_granted_with_a_token(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(ex(f, a, 1), 0);
	CU_ASSERT_EQUAL_FATAL(fx_ncomp(f), 1);
	CU_ASSERT_EQUAL(fx_comp(f, 0)->ino, a);
	CU_ASSERT(fx_comp(f, 0)->token > 0);
	CU_ASSERT_EQUAL(holds(f, a, 1, 1), LC_WRLCK);
	CU_ASSERT_EQUAL(holder_token(f, a, 1, 1), fx_comp(f, 0)->token);
	fx_free(f);
}

static void test_ex_held_makes_other_owners_eagain(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(ex(f, a, 1), 0);
	CU_ASSERT_EQUAL(ex(f, a, 2), -EAGAIN);
	CU_ASSERT_EQUAL(sh(f, a, 2), -EAGAIN);
	CU_ASSERT_EQUAL(nwaiters(f, a), 0);
	CU_ASSERT_EQUAL(holds(f, a, 1, 2), 0);
	fx_free(f);
}

static void test_owner_identity_includes_the_session(void)
{
	FX;
	uint64_t a = file(f, "a");

	fx_open(f, 2);
	CU_ASSERT_EQUAL(ex(f, a, 5), 0);
	f->cur = 2;
	CU_ASSERT_EQUAL(ex(f, a, 5), -EAGAIN);
	fx_free(f);
}

static void test_shared_locks_are_shared(void)
{
	FX;
	uint64_t a = file(f, "a");
	struct lc_locksum m;

	CU_ASSERT_EQUAL(sh(f, a, 1), 0);
	CU_ASSERT_EQUAL(sh(f, a, 2), 0);
	CU_ASSERT_EQUAL(sh(f, a, 3), 0);
	CU_ASSERT_EQUAL(lc_locksum(f->s, a, f->now, &m), 0);
	CU_ASSERT_EQUAL(m.holders, 3);
	CU_ASSERT_EQUAL(m.mode, LC_RDLCK);
	CU_ASSERT_EQUAL(ex(f, a, 4), -EAGAIN);
	fx_free(f);
}

static void test_same_type_again_is_a_no_op(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(ex(f, a, 1), 0);
	CU_ASSERT_EQUAL(ex(f, a, 1), 0);
	CU_ASSERT_EQUAL(nholders(f, a), 1);
	CU_ASSERT_EQUAL(un(f, a, 1), 0);
	CU_ASSERT_EQUAL(nholders(f, a), 0);
	fx_free(f);
}

static void test_waiter_is_pending_then_granted_on_release(void)
{
	FX;
	uint64_t a = file(f, "a"), s2, t1;

	CU_ASSERT_EQUAL(ex(f, a, 1), 0);
	t1 = fx_comp(f, 0)->token;
	CU_ASSERT_EQUAL(wait_ex(f, a, 2), LC_PENDING);
	s2 = f->last_serial;
	CU_ASSERT_EQUAL(fx_ncomp(f), 1);
	CU_ASSERT_EQUAL(nwaiters(f, a), 1);
	CU_ASSERT_EQUAL(release(f, a, 1), 0);
	CU_ASSERT_TRUE(fx_has(f, 1, s2, 0));
	CU_ASSERT_EQUAL_FATAL(fx_ncomp(f), 2);
	/* the release answers first, then the grant it caused */
	CU_ASSERT_EQUAL(fx_comp(f, 0)->serial, f->last_serial);
	CU_ASSERT_EQUAL(fx_comp(f, 1)->serial, s2);
	CU_ASSERT_EQUAL(fx_comp(f, 1)->ino, a);
	CU_ASSERT(fx_comp(f, 1)->token > t1);
	CU_ASSERT_EQUAL(holds(f, a, 1, 2), LC_WRLCK);
	CU_ASSERT_EQUAL(nwaiters(f, a), 0);
	fx_free(f);
}

/* A driver whose replica was replaced by a snapshot asks what became of
 * its requests. */
static void test_request_result_after_the_fact(void)
{
	FX;
	uint64_t a = file(f, "a"), s1, o1, s2, o2;
	struct lc_completion c;

	CU_ASSERT_EQUAL(ex(f, a, 1), 0);
	s1 = f->last_serial;
	o1 = f->last_origin;
	CU_ASSERT_EQUAL(lc_request_result(f->s, o1, s1, &c), 0);
	CU_ASSERT_EQUAL(c.status, 0);
	CU_ASSERT_EQUAL(c.token, fx_comp(f, 0)->token);
	CU_ASSERT_EQUAL(wait_ex(f, a, 2), LC_PENDING);
	s2 = f->last_serial;
	o2 = f->last_origin;
	CU_ASSERT_EQUAL(lc_request_result(f->s, o2, s2, &c), LC_PENDING);
	CU_ASSERT_EQUAL(release(f, a, 1), 0);
	CU_ASSERT_EQUAL(lc_request_result(f->s, o2, s2, &c), 0);
	CU_ASSERT_EQUAL(c.status, 0);
	CU_ASSERT_EQUAL(c.ino, a);
	CU_ASSERT_EQUAL(c.token, fx_comp(f, 1)->token);
	CU_ASSERT_EQUAL(lc_request_result(f->s, o2, s2 + 1000, &c), -ENOENT);
	CU_ASSERT_EQUAL(lc_request_result(f->s, 777, s1, &c), -ENOENT);
	fx_free(f);
}

static void test_waiters_are_served_in_fifo_order(void)
{
	FX;
	uint64_t a = file(f, "a"), s2, s3, s4;

	ex(f, a, 1);
	CU_ASSERT_EQUAL(wait_ex(f, a, 2), LC_PENDING);
	s2 = f->last_serial;
	CU_ASSERT_EQUAL(wait_ex(f, a, 3), LC_PENDING);
	s3 = f->last_serial;
	CU_ASSERT_EQUAL(wait_ex(f, a, 4), LC_PENDING);
	s4 = f->last_serial;
	release(f, a, 1);
	CU_ASSERT_TRUE(fx_has(f, 1, s2, 0));
	CU_ASSERT_PTR_NULL(fx_find(f, 1, s3));
	release(f, a, 2);
	CU_ASSERT_TRUE(fx_has(f, 1, s3, 0));
	CU_ASSERT_PTR_NULL(fx_find(f, 1, s4));
	release(f, a, 3);
	CU_ASSERT_TRUE(fx_has(f, 1, s4, 0));
	CU_ASSERT_EQUAL(holds(f, a, 1, 4), LC_WRLCK);
	fx_free(f);
}

static void test_queued_exclusive_holds_back_later_shared(void)
{
	FX;
	uint64_t a = file(f, "a"), s2, s3;

	CU_ASSERT_EQUAL(sh(f, a, 1), 0);
	CU_ASSERT_EQUAL(wait_ex(f, a, 2), LC_PENDING);
	s2 = f->last_serial;
	/* compatible with the holder, but a writer is waiting */
	CU_ASSERT_EQUAL(sh(f, a, 3), -EAGAIN);
	CU_ASSERT_EQUAL(wait_sh(f, a, 3), LC_PENDING);
	s3 = f->last_serial;
	release(f, a, 1);
	CU_ASSERT_TRUE(fx_has(f, 1, s2, 0));
	CU_ASSERT_PTR_NULL(fx_find(f, 1, s3));
	release(f, a, 2);
	CU_ASSERT_TRUE(fx_has(f, 1, s3, 0));
	CU_ASSERT_EQUAL(holds(f, a, 1, 3), LC_RDLCK);
	fx_free(f);
}

static void test_release_grants_all_queued_readers_at_once(void)
{
	FX;
	uint64_t a = file(f, "a"), s2, s3, s4;

	ex(f, a, 1);
	wait_sh(f, a, 2);
	s2 = f->last_serial;
	wait_sh(f, a, 3);
	s3 = f->last_serial;
	wait_ex(f, a, 4);
	s4 = f->last_serial;
	release(f, a, 1);
	CU_ASSERT_TRUE(fx_has(f, 1, s2, 0));
	CU_ASSERT_TRUE(fx_has(f, 1, s3, 0));
	CU_ASSERT_PTR_NULL(fx_find(f, 1, s4));
	CU_ASSERT_EQUAL(nholders(f, a), 2);
	CU_ASSERT_EQUAL(nwaiters(f, a), 1);
	fx_free(f);
}

static void test_unlock_grants_the_next_waiter(void)
{
	FX;
	uint64_t a = file(f, "a"), s2;

	ex(f, a, 1);
	wait_ex(f, a, 2);
	s2 = f->last_serial;
	CU_ASSERT_EQUAL(un(f, a, 1), 0);
	CU_ASSERT_TRUE(fx_has(f, 1, s2, 0));
	CU_ASSERT_EQUAL(holds(f, a, 1, 1), 0);
	fx_free(f);
}

static void test_release_is_idempotent(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(release(f, a, 1), 0);
	ex(f, a, 1);
	CU_ASSERT_EQUAL(release(f, a, 1), 0);
	CU_ASSERT_EQUAL(release(f, a, 1), 0);
	CU_ASSERT_EQUAL(nholders(f, a), 0);
	CU_ASSERT_EQUAL(ex(f, a, 2), 0);
	fx_free(f);
}

static void test_release_drops_the_owners_queued_request(void)
{
	FX;
	uint64_t a = file(f, "a"), s3;

	ex(f, a, 1);
	CU_ASSERT_EQUAL(wait_ex(f, a, 2), LC_PENDING);
	CU_ASSERT_EQUAL(wait_ex(f, a, 3), LC_PENDING);
	s3 = f->last_serial;
	CU_ASSERT_EQUAL(release(f, a, 2), 0);
	CU_ASSERT_EQUAL(nwaiters(f, a), 1);
	release(f, a, 1);
	CU_ASSERT_TRUE(fx_has(f, 1, s3, 0));
	CU_ASSERT_EQUAL(holds(f, a, 1, 2), 0);
	fx_free(f);
}

static void test_conversion_to_ex_drops_the_shared_lock_first(void)
{
	FX;
	uint64_t a = file(f, "a"), s;

	sh(f, a, 1);
	sh(f, a, 2);
	CU_ASSERT_EQUAL(wait_ex(f, a, 1), LC_PENDING);
	s = f->last_serial;
	CU_ASSERT_EQUAL(holds(f, a, 1, 1), 0);
	CU_ASSERT_EQUAL(nholders(f, a), 1);
	release(f, a, 2);
	CU_ASSERT_TRUE(fx_has(f, 1, s, 0));
	CU_ASSERT_EQUAL(holds(f, a, 1, 1), LC_WRLCK);
	fx_free(f);
}

static void test_failed_nonblocking_conversion_has_dropped_the_lock(void)
{
	FX;
	uint64_t a = file(f, "a");

	sh(f, a, 1);
	sh(f, a, 2);
	CU_ASSERT_EQUAL(ex(f, a, 1), -EAGAIN);
	/* as flock(2) on Linux: the conversion is not atomic */
	CU_ASSERT_EQUAL(holds(f, a, 1, 1), 0);
	CU_ASSERT_EQUAL(holds(f, a, 1, 2), LC_RDLCK);
	fx_free(f);
}

static void test_downgrade_lets_queued_readers_in(void)
{
	FX;
	uint64_t a = file(f, "a"), s2;

	ex(f, a, 1);
	wait_sh(f, a, 2);
	s2 = f->last_serial;
	CU_ASSERT_EQUAL(sh(f, a, 1), 0);
	CU_ASSERT_TRUE(fx_has(f, 1, s2, 0));
	CU_ASSERT_EQUAL(holds(f, a, 1, 1), LC_RDLCK);
	CU_ASSERT_EQUAL(holds(f, a, 1, 2), LC_RDLCK);
	fx_free(f);
}

static void test_flock_and_posix_never_conflict(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(ex(f, a, 1), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_WRLCK, 0, LC_OFF_MAX, 0), 0);
	CU_ASSERT_EQUAL(ex(f, a, 1), 0);
	CU_ASSERT_EQUAL(un(f, a, 1), 0);
	CU_ASSERT_EQUAL(strcmp(ranges(f, a, 1, 2), "0-EW"), 0);
	fx_free(f);
}

static void test_lock_on_missing_inode_fails(void)
{
	FX;
	CU_ASSERT(ex(f, 999, 1) < 0);
	CU_ASSERT(wait_ex(f, 999, 1) < 0);
	CU_ASSERT(setlk(f, 999, 1, LC_WRLCK, 0, 1, LC_LK_WAIT) < 0);
	CU_ASSERT_EQUAL(st_waiters(f), 0);
	fx_free(f);
}

static void test_locks_lists_holders_then_waiters(void)
{
	FX;
	uint64_t a = file(f, "a");
	struct seen q = { 0 };

	f->now = 5000000000ull;
	ex(f, a, 1);
	f->now = 6000000000ull;
	wait_sh(f, a, 2);
	CU_ASSERT_EQUAL(lc_locks(f->s, a, seen_cb, seen_cb, &q), 0);
	CU_ASSERT_EQUAL_FATAL(q.n, 2);
	CU_ASSERT_EQUAL(q.v[0].who.owner, 1);
	CU_ASSERT_EQUAL(q.v[0].posix, 0);
	CU_ASSERT_EQUAL(q.v[0].type, LC_WRLCK);
	CU_ASSERT(q.v[0].token > 0);
	CU_ASSERT_EQUAL(q.v[0].since_ns, 5000000000ull);
	CU_ASSERT_EQUAL(q.v[1].who.owner, 2);
	CU_ASSERT_EQUAL(q.v[1].who.pid, 2);
	CU_ASSERT_EQUAL(q.v[1].token, 0);
	CU_ASSERT_EQUAL(q.v[1].since_ns, 6000000000ull);
	CU_ASSERT_EQUAL(q.v[1].serial, f->last_serial);
	fx_free(f);
}

static void test_locksum_mode_follows_the_holders(void)
{
	FX;
	uint64_t a = file(f, "a");
	struct lc_locksum m;

	CU_ASSERT_EQUAL(lc_locksum(f->s, a, f->now, &m), 0);
	CU_ASSERT_EQUAL(m.mode, LC_UNLCK);
	CU_ASSERT_EQUAL(m.last_token, 0);
	sh(f, a, 1);
	lc_locksum(f->s, a, f->now, &m);
	CU_ASSERT_EQUAL(m.mode, LC_RDLCK);
	un(f, a, 1);
	ex(f, a, 1);
	lc_locksum(f->s, a, f->now, &m);
	CU_ASSERT_EQUAL(m.mode, LC_WRLCK);
	CU_ASSERT_NOT_EQUAL(lc_locksum(f->s, 999, f->now, &m), 0);
	fx_free(f);
}

static void test_foreach_locked_lists_locked_inodes_in_order(void)
{
	FX;
	uint64_t a = file(f, "a"), b = file(f, "b"), c = file(f, "c");
	struct inos q = { 0 };

	ex(f, c, 1);
	wait_ex(f, c, 2);
	setlk(f, a, 1, LC_RDLCK, 0, 0, 0);
	CU_ASSERT_EQUAL(lc_foreach_locked(f->s, inos_cb, &q), 0);
	CU_ASSERT_EQUAL_FATAL(q.n, 2);
	CU_ASSERT_EQUAL(q.v[0], a);
	CU_ASSERT_EQUAL(q.v[1], c);
	(void)b;
	fx_free(f);
}

/* ======================================================================= */
/* semaphores                                                               */
/* ======================================================================= */

static void test_slots_limit_shared_holders(void)
{
	FX;
	uint64_t a = file(f, "a"), s3;
	struct lc_attr at;

	CU_ASSERT_EQUAL(setslots(f, a, "2"), 0);
	CU_ASSERT_EQUAL(lc_getattr(f->s, a, &at), 0);
	CU_ASSERT_EQUAL(at.slots, 2);
	CU_ASSERT_EQUAL(sh(f, a, 1), 0);
	CU_ASSERT_EQUAL(sh(f, a, 2), 0);
	CU_ASSERT_EQUAL(sh(f, a, 3), -EAGAIN);
	CU_ASSERT_EQUAL(wait_sh(f, a, 3), LC_PENDING);
	s3 = f->last_serial;
	release(f, a, 1);
	CU_ASSERT_TRUE(fx_has(f, 1, s3, 0));
	CU_ASSERT_EQUAL(nholders(f, a), 2);
	fx_free(f);
}

static void test_slots_exclusive_still_excludes_all(void)
{
	FX;
	uint64_t a = file(f, "a");

	setslots(f, a, "3");
	CU_ASSERT_EQUAL(sh(f, a, 1), 0);
	CU_ASSERT_EQUAL(ex(f, a, 2), -EAGAIN);
	un(f, a, 1);
	CU_ASSERT_EQUAL(ex(f, a, 2), 0);
	CU_ASSERT_EQUAL(sh(f, a, 1), -EAGAIN);
	fx_free(f);
}

static void test_slots_zero_is_unlimited(void)
{
	FX;
	uint64_t a = file(f, "a");

	setslots(f, a, "1");
	CU_ASSERT_EQUAL(setslots(f, a, "0"), 0);
	for (uint64_t o = 1; o <= 20; o++)
		CU_ASSERT_EQUAL(sh(f, a, o), 0);
	CU_ASSERT_EQUAL(nholders(f, a), 20);
	fx_free(f);
}

static void test_raising_slots_grants_queued_requests(void)
{
	FX;
	uint64_t a = file(f, "a"), s2, s3;

	setslots(f, a, "1");
	sh(f, a, 1);
	CU_ASSERT_EQUAL(wait_sh(f, a, 2), LC_PENDING);
	s2 = f->last_serial;
	CU_ASSERT_EQUAL(wait_sh(f, a, 3), LC_PENDING);
	s3 = f->last_serial;
	CU_ASSERT_EQUAL(setslots(f, a, "2"), 0);
	CU_ASSERT_TRUE(fx_has(f, 1, s2, 0));
	CU_ASSERT_PTR_NULL(fx_find(f, 1, s3));
	CU_ASSERT_EQUAL(setslots(f, a, "0"), 0);
	CU_ASSERT_TRUE(fx_has(f, 1, s3, 0));
	CU_ASSERT_EQUAL(nholders(f, a), 3);
	fx_free(f);
}

static void test_bad_slots_values_are_einval(void)
{
	FX;
	uint64_t a = file(f, "a");
	struct lc_attr at;

	CU_ASSERT_EQUAL(setslots(f, a, "abc"), -EINVAL);
	CU_ASSERT_EQUAL(setslots(f, a, "-1"), -EINVAL);
	CU_ASSERT_EQUAL(setslots(f, a, ""), -EINVAL);
	CU_ASSERT_EQUAL(setslots(f, a, "2x"), -EINVAL);
	CU_ASSERT_EQUAL(setslots(f, a, "99999999999999999999"), -EINVAL);
	lc_getattr(f->s, a, &at);
	CU_ASSERT_EQUAL(at.slots, 0);
	fx_free(f);
}

/* ======================================================================= */
/* POSIX locks                                                              */
/* ======================================================================= */

static void test_posix_unlock_in_the_middle_splits(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 0, 99, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_UNLCK, 40, 59, 0), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-39W,60-99W");
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_WRLCK, 40, 59, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_WRLCK, 39, 39, 0), -EAGAIN);
	fx_free(f);
}

static void test_posix_adjacent_same_type_ranges_merge(void)
{
	FX;
	uint64_t a = file(f, "a");

	setlk(f, a, 1, LC_WRLCK, 0, 9, 0);
	setlk(f, a, 1, LC_WRLCK, 10, 19, 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-19W");
	setlk(f, a, 1, LC_WRLCK, 15, 30, 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-30W");
	setlk(f, a, 1, LC_RDLCK, 50, 60, 0);
	setlk(f, a, 1, LC_RDLCK, 31, 49, 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-30W,31-60R");
	fx_free(f);
}

static void test_posix_different_type_splits(void)
{
	FX;
	uint64_t a = file(f, "a");

	setlk(f, a, 1, LC_WRLCK, 0, 99, 0);
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_RDLCK, 40, 59, 0), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-39W,40-59R,60-99W");
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_RDLCK, 45, 50, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_RDLCK, 30, 50, 0), -EAGAIN);
	fx_free(f);
}

static void test_posix_own_locks_never_conflict(void)
{
	FX;
	uint64_t a = file(f, "a");

	setlk(f, a, 1, LC_RDLCK, 0, 99, 0);
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 0, LC_OFF_MAX, 0), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-EW");
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_RDLCK, 10, 20, 0), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-9W,10-20R,21-EW");
	fx_free(f);
}

static void test_posix_readers_share_writers_exclude(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_RDLCK, 0, 99, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_RDLCK, 50, 150, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 3, LC_WRLCK, 0, 10, 0), -EAGAIN);
	CU_ASSERT_EQUAL(setlk(f, a, 3, LC_WRLCK, 151, 200, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 140, 160, 0), -EAGAIN);
	fx_free(f);
}

static void test_posix_getlk_reports_the_conflict(void)
{
	FX;
	uint64_t a = file(f, "a");
	struct lc_owner o1 = { 1, 1, 1 }, o2 = { 1, 2, 2 };
	struct lc_lockinfo li;

	setlk(f, a, 1, LC_WRLCK, 10, 19, 0);
	CU_ASSERT_EQUAL(lc_getlk(f->s, a, &o2, LC_WRLCK, 0, 9, &li), -ENOENT);
	CU_ASSERT_EQUAL(lc_getlk(f->s, a, &o2, LC_RDLCK, 15, 30, &li), 0);
	CU_ASSERT_EQUAL(li.who.owner, 1);
	CU_ASSERT_EQUAL(li.who.pid, 1);
	CU_ASSERT_EQUAL(li.type, LC_WRLCK);
	CU_ASSERT_EQUAL(li.start, 10);
	CU_ASSERT_EQUAL(li.end, 19);
	CU_ASSERT_EQUAL(li.posix, 1);
	/* an owner never conflicts with itself */
	CU_ASSERT_EQUAL(lc_getlk(f->s, a, &o1, LC_WRLCK, 0, LC_OFF_MAX, &li),
			-ENOENT);
	fx_free(f);
}

static void test_posix_getlk_ignores_flock_and_compatible_readers(void)
{
	FX;
	uint64_t a = file(f, "a");
	struct lc_owner o2 = { 1, 2, 2 };
	struct lc_lockinfo li;

	ex(f, a, 1);
	setlk(f, a, 3, LC_RDLCK, 0, 9, 0);
	CU_ASSERT_EQUAL(lc_getlk(f->s, a, &o2, LC_RDLCK, 0, LC_OFF_MAX, &li),
			-ENOENT);
	CU_ASSERT_EQUAL(lc_getlk(f->s, a, &o2, LC_WRLCK, 0, LC_OFF_MAX, &li),
			0);
	CU_ASSERT_EQUAL(li.who.owner, 3);
	fx_free(f);
}

static void test_posix_start_after_end_is_einval(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 10, 9, 0), -EINVAL);
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 10, 9, LC_LK_WAIT), -EINVAL);
	CU_ASSERT_EQUAL(nholders(f, a), 0);
	CU_ASSERT_EQUAL(nwaiters(f, a), 0);
	fx_free(f);
}

static void test_posix_lock_to_eof_covers_everything_after(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 100, LC_OFF_MAX, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_WRLCK, 1000000, 1000001, 0), -EAGAIN);
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_RDLCK, LC_OFF_MAX, LC_OFF_MAX, 0),
			-EAGAIN);
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_WRLCK, 0, 99, 0), 0);
	fx_free(f);
}

static void test_posix_waiter_granted_when_range_frees(void)
{
	FX;
	uint64_t a = file(f, "a"), s2;

	setlk(f, a, 1, LC_WRLCK, 0, 99, 0);
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_WRLCK, 10, 20, LC_LK_WAIT),
			LC_PENDING);
	s2 = f->last_serial;
	setlk(f, a, 1, LC_UNLCK, 50, 99, 0);
	CU_ASSERT_PTR_NULL(fx_find(f, 1, s2));
	setlk(f, a, 1, LC_UNLCK, 0, 49, 0);
	CU_ASSERT_TRUE(fx_has(f, 1, s2, 0));
	CU_ASSERT(fx_find(f, 1, s2) && fx_find(f, 1, s2)->token > 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 2), "10-20W");
	fx_free(f);
}

static void test_posix_unlock_of_nothing_is_ok(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_UNLCK, 0, LC_OFF_MAX, 0), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "");
	fx_free(f);
}

static void test_flush_drops_every_posix_lock_of_the_owner(void)
{
	FX;
	uint64_t a = file(f, "a"), b = file(f, "b");

	setlk(f, a, 1, LC_WRLCK, 0, 9, 0);
	setlk(f, a, 1, LC_RDLCK, 20, 29, 0);
	setlk(f, b, 1, LC_WRLCK, 0, 9, 0);
	setlk(f, a, 2, LC_RDLCK, 20, 29, 0);
	CU_ASSERT_EQUAL(flush_(f, a, 1), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "");
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 2), "20-29R");
	/* only on that inode */
	CU_ASSERT_STRING_EQUAL(ranges(f, b, 1, 1), "0-9W");
	CU_ASSERT_EQUAL(setlk(f, a, 3, LC_WRLCK, 0, 19, 0), 0);
	fx_free(f);
}

static void test_flush_drops_queued_posix_requests_and_grants(void)
{
	FX;
	uint64_t a = file(f, "a"), s3;

	setlk(f, a, 1, LC_WRLCK, 0, 9, 0);
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_WRLCK, 0, 9, LC_LK_WAIT), LC_PENDING);
	CU_ASSERT_EQUAL(flush_(f, a, 2), 0);
	CU_ASSERT_EQUAL(nwaiters(f, a), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 3, LC_RDLCK, 5, 5, LC_LK_WAIT), LC_PENDING);
	s3 = f->last_serial;
	flush_(f, a, 1);
	CU_ASSERT_TRUE(fx_has(f, 1, s3, 0));
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 2), "");
	fx_free(f);
}

static void test_flush_and_release_keep_to_their_own_kind(void)
{
	FX;
	uint64_t a = file(f, "a");

	ex(f, a, 1);
	setlk(f, a, 1, LC_WRLCK, 0, 9, 0);
	flush_(f, a, 1);
	CU_ASSERT_EQUAL(holds(f, a, 1, 1), LC_WRLCK);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "");
	setlk(f, a, 1, LC_WRLCK, 0, 9, 0);
	release(f, a, 1);
	CU_ASSERT_EQUAL(holds(f, a, 1, 1), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-9W");
	fx_free(f);
}

/* ======================================================================= */
/* cancel (interrupted waits)                                               */
/* ======================================================================= */

static void test_cancel_of_queued_request_answers_cancel_then_eintr(void)
{
	FX;
	uint64_t a = file(f, "a"), s2;

	ex(f, a, 1);
	wait_ex(f, a, 2);
	s2 = f->last_serial;
	CU_ASSERT_EQUAL(cancel(f, s2), 0);
	CU_ASSERT_EQUAL_FATAL(fx_ncomp(f), 2);
	CU_ASSERT_EQUAL(fx_comp(f, 0)->serial, f->last_serial);
	CU_ASSERT_EQUAL(fx_comp(f, 0)->status, 0);
	CU_ASSERT_EQUAL(fx_comp(f, 1)->serial, s2);
	CU_ASSERT_EQUAL(fx_comp(f, 1)->status, -EINTR);
	CU_ASSERT_EQUAL(nwaiters(f, a), 0);
	{
		struct lc_stats st;

		lc_stats(f->s, &st);
		CU_ASSERT_EQUAL(st.interrupts, 1);
	}
	release(f, a, 1);
	CU_ASSERT_EQUAL(fx_ncomp(f), 1);
	CU_ASSERT_EQUAL(nholders(f, a), 0);
	fx_free(f);
}

static void test_cancel_moves_the_queue_on(void)
{
	FX;
	uint64_t a = file(f, "a"), s2, s3;

	sh(f, a, 1);
	wait_ex(f, a, 2);
	s2 = f->last_serial;
	wait_sh(f, a, 3);
	s3 = f->last_serial;
	cancel(f, s2);
	CU_ASSERT_TRUE(fx_has(f, 1, s2, -EINTR));
	CU_ASSERT_TRUE(fx_has(f, 1, s3, 0));
	CU_ASSERT_EQUAL(nholders(f, a), 2);
	fx_free(f);
}

static void test_cancel_of_granted_flock_releases_it(void)
{
	FX;
	uint64_t a = file(f, "a"), s1, s2;

	CU_ASSERT_EQUAL(wait_ex(f, a, 1), 0);
	s1 = f->last_serial;
	wait_ex(f, a, 2);
	s2 = f->last_serial;
	CU_ASSERT_EQUAL(cancel(f, s1), 0);
	CU_ASSERT_EQUAL(holds(f, a, 1, 1), 0);
	CU_ASSERT_TRUE(fx_has(f, 1, s2, 0));
	fx_free(f);
}

static void test_cancel_of_grant_made_while_waiting_releases_it(void)
{
	FX;
	uint64_t a = file(f, "a"), s2;

	ex(f, a, 1);
	wait_ex(f, a, 2);
	s2 = f->last_serial;
	release(f, a, 1);
	CU_ASSERT_TRUE(fx_has(f, 1, s2, 0));
	/* the interrupt raced with the grant: no leaked lock */
	CU_ASSERT_EQUAL(cancel(f, s2), 0);
	CU_ASSERT_EQUAL(nholders(f, a), 0);
	CU_ASSERT_EQUAL(ex(f, a, 3), 0);
	fx_free(f);
}

static void test_cancel_of_granted_posix_is_enoent(void)
{
	FX;
	uint64_t a = file(f, "a"), s1;

	setlk(f, a, 1, LC_WRLCK, 0, 9, LC_LK_WAIT);
	s1 = f->last_serial;
	CU_ASSERT_EQUAL(cancel(f, s1), -ENOENT);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-9W");
	fx_free(f);
}

static void test_cancel_of_queued_posix_request(void)
{
	FX;
	uint64_t a = file(f, "a"), s2;

	setlk(f, a, 1, LC_WRLCK, 0, 9, 0);
	setlk(f, a, 2, LC_WRLCK, 0, 9, LC_LK_WAIT);
	s2 = f->last_serial;
	CU_ASSERT_EQUAL(cancel(f, s2), 0);
	CU_ASSERT_TRUE(fx_has(f, 1, s2, -EINTR));
	CU_ASSERT_EQUAL(nwaiters(f, a), 0);
	fx_free(f);
}

static void test_cancel_of_unknown_or_finished_is_enoent(void)
{
	FX;
	uint64_t a = file(f, "a"), s1, s2;

	CU_ASSERT_EQUAL(cancel(f, 12345), -ENOENT);
	ex(f, a, 1);
	s1 = f->last_serial;
	release(f, a, 1);
	CU_ASSERT_EQUAL(cancel(f, s1), -ENOENT);
	ex(f, a, 1);
	wait_ex(f, a, 2);
	s2 = f->last_serial;
	CU_ASSERT_EQUAL(cancel(f, s2), 0);
	CU_ASSERT_EQUAL(cancel(f, s2), -ENOENT);
	CU_ASSERT_EQUAL(holds(f, a, 1, 1), LC_WRLCK);
	fx_free(f);
}

static void test_cancel_only_reaches_the_same_session(void)
{
	FX;
	uint64_t a = file(f, "a"), s2;

	fx_open(f, 2);
	ex(f, a, 1);
	wait_ex(f, a, 2);
	s2 = f->last_serial;
	f->cur = 2;
	CU_ASSERT_EQUAL(cancel(f, s2), -ENOENT);
	CU_ASSERT_EQUAL(nwaiters(f, a), 1);
	fx_free(f);
}

/* ======================================================================= */
/* ephemeral files (O_EXCL lockfiles)                                       */
/* ======================================================================= */

static void test_second_excl_create_is_eexist(void)
{
	FX;
	int64_t ino = mkfile_excl(f, ROOT, "job.lock", 0);
	struct lc_attr at;

	CU_ASSERT_FATAL(ino > 0);
	CU_ASSERT_EQUAL(mkfile_excl(f, ROOT, "job.lock", 0), -EEXIST);
	fx_open(f, 2);
	f->cur = 2;
	CU_ASSERT_EQUAL(mkfile_excl(f, ROOT, "job.lock", 0), -EEXIST);
	CU_ASSERT_EQUAL(lc_getattr(f->s, (uint64_t)ino, &at), 0);
	CU_ASSERT_EQUAL(at.ephemeral, 1);
	fx_free(f);
}

static void test_excl_create_over_persistent_file_is_eexist(void)
{
	FX;
	file(f, "p");
	CU_ASSERT_EQUAL(mkfile_excl(f, ROOT, "p", 0), -EEXIST);
	fx_free(f);
}

static void test_plain_create_of_existing_file_returns_its_ino(void)
{
	FX;
	uint64_t a = file(f, "a");
	struct lc_attr at;

	CU_ASSERT_EQUAL(mkfile(f, ROOT, "a"), (int64_t)a);
	CU_ASSERT_EQUAL(lc_getattr(f->s, a, &at), 0);
	CU_ASSERT_EQUAL(at.ephemeral, 0);
	CU_ASSERT_EQUAL(at.nlink, 1);
	fx_free(f);
}

static void test_ephemeral_file_dies_with_its_session_all_names(void)
{
	FX;
	int64_t e, p;

	fx_open(f, 2);
	f->cur = 2;
	e = mkfile_excl(f, ROOT, "job.lock", 0);
	CU_ASSERT_FATAL(e > 0);
	CU_ASSERT_EQUAL(link_(f, (uint64_t)e, ROOT, "job.lock.tmp"), 0);
	p = mkfile(f, ROOT, "persistent");
	CU_ASSERT_FATAL(p > 0);
	f->cur = 1;
	CU_ASSERT_EQUAL(fx_close(f, 2), 0);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "job.lock"), -ENOENT);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "job.lock.tmp"), -ENOENT);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "persistent"), p);
	/* the name is free again */
	CU_ASSERT(mkfile_excl(f, ROOT, "job.lock", 0) > 0);
	fx_free(f);
}

static void test_ephemeral_file_of_other_session_survives(void)
{
	FX;
	fx_open(f, 2);
	CU_ASSERT(mkfile_excl(f, ROOT, "mine", 0) > 0);
	CU_ASSERT_EQUAL(fx_close(f, 2), 0);
	CU_ASSERT(lookup_(f, ROOT, "mine") > 0);
	fx_free(f);
}

static void test_ttl_expires_on_tick_at_deadline(void)
{
	FX;
	uint64_t t0 = f->now, dl = t0 + 10000000000ull;
	int64_t e = mkfile_excl(f, ROOT, "t.lock", 10);

	CU_ASSERT_FATAL(e > 0);
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), dl);
	f->now = dl - 1;
	fx_tick(f);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "t.lock"), e);
	f->now = dl;
	fx_tick(f);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "t.lock"), -ENOENT);
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), 0);
	fx_free(f);
}

static void test_write_refreshes_ttl(void)
{
	FX;
	uint64_t t0 = f->now;
	int64_t e = mkfile_excl(f, ROOT, "t.lock", 10);

	CU_ASSERT_FATAL(e > 0);
	f->now = t0 + 5000000000ull;
	CU_ASSERT_EQUAL(write_(f, (uint64_t)e, 0, "x", 1), 0);
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), t0 + 15000000000ull);
	f->now = t0 + 12000000000ull;
	fx_tick(f);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "t.lock"), e);
	f->now = t0 + 15000000000ull;
	fx_tick(f);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "t.lock"), -ENOENT);
	fx_free(f);
}

static void test_touch_refreshes_ttl_chmod_does_not(void)
{
	FX;
	uint64_t t0 = f->now;
	int64_t e = mkfile_excl(f, ROOT, "t.lock", 10);
	struct lc_cmd c = { .type = LC_CMD_SETATTR, .valid = LC_SET_MODE,
			    .mode = 0600 };

	CU_ASSERT_FATAL(e > 0);
	f->now = t0 + 4000000000ull;
	c.ino = (uint64_t)e;
	CU_ASSERT_EQUAL(fx_apply(f, &c), 0);
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), t0 + 10000000000ull);
	f->now = t0 + 5000000000ull;
	CU_ASSERT_EQUAL(touch_(f, (uint64_t)e, 1), 0);
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), t0 + 15000000000ull);
	fx_free(f);
}

/* setxattr/removexattr of user.cluck.ttl and user.cluck.slots by uid. */
static int xset_as(struct fx *f, uint64_t ino, const char *name,
		   const char *v, uint32_t uid, bool remove)
{
	struct lc_cmd c = { .type = remove ? LC_CMD_REMOVEXATTR : LC_CMD_SETXATTR,
			    .ino = ino, .name = name,
			    .name_len = (uint32_t)strlen(name), .uid = uid };

	if (!remove) {
		c.data = v;
		c.data_len = (uint32_t)strlen(v);
	}
	return fx_apply(f, &c);
}

/* Issue 9: a ttl removes the names and slots let more holders in, so
 * only the file's owner or root may set or remove them; any user xattr
 * else stays open to whoever the kernel lets write. */
static void test_ttl_and_slots_need_owner_or_root(void)
{
	FX;
	struct lc_cmd c = { .type = LC_CMD_CREATE, .parent = ROOT,
			    .name = "theirs", .name_len = 6, .mode = 0666,
			    .uid = 1000, .gid = 1000 };
	struct lc_attr a;
	uint64_t ino;

	CU_ASSERT_EQUAL_FATAL(fx_apply(f, &c), 0);
	ino = (uint64_t)lookup_(f, ROOT, "theirs");
	CU_ASSERT_EQUAL(xset_as(f, ino, "user.cluck.ttl", "1", 2000, false), -EPERM);
	CU_ASSERT_EQUAL(xset_as(f, ino, "user.cluck.slots", "5", 2000, false), -EPERM);
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), 0);
	CU_ASSERT_EQUAL(xset_as(f, ino, "user.note", "x", 2000, false), 0);
	CU_ASSERT_EQUAL(xset_as(f, ino, "user.cluck.ttl", "7", 1000, false), 0);
	CU_ASSERT_EQUAL(xset_as(f, ino, "user.cluck.slots", "2", 0, false), 0);
	CU_ASSERT_EQUAL(xset_as(f, ino, "user.cluck.ttl", NULL, 2000, true), -EPERM);
	CU_ASSERT_EQUAL(xset_as(f, ino, "user.cluck.slots", NULL, 2000, true), -EPERM);
	CU_ASSERT_EQUAL(lc_getattr(f->s, ino, &a), 0);
	CU_ASSERT_EQUAL(a.ttl_s, 7);
	CU_ASSERT_EQUAL(a.slots, 2);
	CU_ASSERT_EQUAL(xset_as(f, ino, "user.cluck.ttl", NULL, 0, true), 0);
	CU_ASSERT_EQUAL(xset_as(f, ino, "user.cluck.slots", NULL, 1000, true), 0);
	fx_free(f);
}

/* Issue 9: a file whose ttl runs out while another session holds a flock
 * on it keeps its name until the lock goes, then goes at the next TICK. */
static void test_held_file_does_not_expire_until_released(void)
{
	FX;
	uint64_t t0 = f->now, dl = t0 + 10000000000ull;
	int64_t e = mkfile_excl(f, ROOT, "t.lock", 10);

	CU_ASSERT_FATAL(e > 0);
	fx_open(f, 2);
	f->cur = 2;
	CU_ASSERT_EQUAL(ex(f, (uint64_t)e, 7), 0);
	f->cur = 1;
	f->now = dl;
	fx_tick(f);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "t.lock"), e);
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), 0);   /* waits for a release */
	CU_ASSERT_EQUAL(mkfile_excl(f, ROOT, "t.lock", 0), -EEXIST);
	f->now = dl + 60000000000ull;
	fx_tick(f);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "t.lock"), e);
	f->cur = 2;
	CU_ASSERT_EQUAL(un(f, (uint64_t)e, 7), 0);
	f->cur = 1;
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), dl);  /* due again at once */
	fx_tick(f);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "t.lock"), -ENOENT);
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), 0);
	CU_ASSERT(mkfile_excl(f, ROOT, "t.lock", 0) > 0);
	fx_free(f);
}

/* Same for POSIX locks, and a waiter handed the lock keeps it locked. */
static void test_posix_held_or_waited_file_does_not_expire(void)
{
	FX;
	uint64_t t0 = f->now, dl = t0 + 5000000000ull;
	uint64_t p = file(f, "plain");

	CU_ASSERT_EQUAL(setxattr_(f, p, "user.cluck.ttl", "5", 1, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, p, 7, LC_WRLCK, 0, 9, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, p, 8, LC_WRLCK, 5, 5, LC_LK_WAIT), LC_PENDING);
	f->now = dl;
	fx_tick(f);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "plain"), (int64_t)p);
	CU_ASSERT_EQUAL(setlk(f, p, 7, LC_UNLCK, 0, LC_OFF_MAX, 0), 0);
	CU_ASSERT_EQUAL(nholders(f, p), 1);
	CU_ASSERT_EQUAL(nwaiters(f, p), 0);
	fx_tick(f);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "plain"), (int64_t)p);
	CU_ASSERT_EQUAL(flush_(f, p, 8), 0);
	fx_tick(f);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "plain"), -ENOENT);
	fx_free(f);
}

/* A touch of a parked file starts its time again; locked at the new
 * deadline, it parks again. */
static void test_touch_of_a_parked_file_rearms_it(void)
{
	FX;
	uint64_t t0 = f->now;
	int64_t e = mkfile_excl(f, ROOT, "t.lock", 10);

	CU_ASSERT_FATAL(e > 0);
	CU_ASSERT_EQUAL(ex(f, (uint64_t)e, 7), 0);
	f->now = t0 + 10000000000ull;
	fx_tick(f);
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), 0);
	f->now = t0 + 12000000000ull;
	CU_ASSERT_EQUAL(touch_(f, (uint64_t)e, 1), 0);
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), t0 + 22000000000ull);
	f->now = t0 + 22000000000ull;
	fx_tick(f);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "t.lock"), e);
	CU_ASSERT_EQUAL(release(f, (uint64_t)e, 7), 0);
	fx_tick(f);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "t.lock"), -ENOENT);
	fx_free(f);
}

/* Issue 9: the O_EXCL file of an ended session stays while another
 * session holds (or waits for) its lock, then goes at the next TICK; a
 * snapshot taken meanwhile loads and goes on the same way. */
static void test_ephemeral_of_ended_session_stays_while_locked(void)
{
	FX;
	struct fx *g;
	struct lc_state *c = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int64_t e;

	fx_open(f, 2);
	f->cur = 2;
	e = mkfile_excl(f, ROOT, "job.lock", 0);
	CU_ASSERT_FATAL(e > 0);
	CU_ASSERT_EQUAL(link_(f, (uint64_t)e, ROOT, "job.lock.2"), 0);
	CU_ASSERT_EQUAL(ex(f, (uint64_t)e, 2), 0);
	f->cur = 1;
	CU_ASSERT_EQUAL(wait_ex(f, (uint64_t)e, 5), LC_PENDING);
	CU_ASSERT_EQUAL(fx_close(f, 2), 0);
	CU_ASSERT_EQUAL(holds(f, (uint64_t)e, 1, 5), LC_WRLCK);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "job.lock"), e);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "job.lock.2"), e);
	CU_ASSERT_EQUAL(mkfile_excl(f, ROOT, "job.lock", 0), -EEXIST);
	f->now += 1000000000ull;
	fx_tick(f);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "job.lock"), e);
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), 0);

	/* A replica that loads this state now goes on identically. */
	CU_ASSERT_EQUAL_FATAL(lc_state_save(f->s, &buf, &len), 0);
	CU_ASSERT_EQUAL_FATAL(lc_state_load(buf, len, &c), 0);
	CU_ASSERT_EQUAL(lc_state_hash(c), lc_state_hash(f->s));
	g = malloc(sizeof(*g));
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	memcpy(g, f, sizeof(*g));
	memset(&g->out, 0, sizeof(g->out));
	g->s = c;
	for (struct fx *h = f; h; h = h == f ? g : NULL) {
		fx_tick(h);
		CU_ASSERT_EQUAL(lookup_(h, ROOT, "job.lock"), e);
		CU_ASSERT_EQUAL(release(h, (uint64_t)e, 5), 0);
		CU_ASSERT(lc_next_deadline(h->s) != 0);
		CU_ASSERT(lc_next_deadline(h->s) <= h->now);
		fx_tick(h);
		CU_ASSERT_EQUAL(lookup_(h, ROOT, "job.lock"), -ENOENT);
		CU_ASSERT_EQUAL(lookup_(h, ROOT, "job.lock.2"), -ENOENT);
		CU_ASSERT(mkfile_excl(h, ROOT, "job.lock", 0) > 0);
	}
	CU_ASSERT_EQUAL(lc_state_hash(c), lc_state_hash(f->s));
	fx_free(g);
	free(buf);
	fx_free(f);
}

/* A TICK at the end of time stops at the parked files (it used to be
 * able to park the same file forever). */
static void test_tick_at_the_end_of_time_keeps_parked_files(void)
{
	FX;
	int64_t e = mkfile_excl(f, ROOT, "t.lock", 1);
	int64_t g = mkfile_excl(f, ROOT, "u.lock", 1);

	CU_ASSERT_FATAL(e > 0 && g > 0);
	CU_ASSERT_EQUAL(ex(f, (uint64_t)e, 7), 0);
	f->now = UINT64_MAX;
	CU_ASSERT_EQUAL(fx_tick(f), 0);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "t.lock"), e);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "u.lock"), -ENOENT);
	CU_ASSERT_EQUAL(fx_tick(f), 0);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "t.lock"), e);
	fx_free(f);
}

/* A parked expiry is not in a snapshot: the loaded replica parks it at
 * its next TICK and removes it at the same TICK as the original. */
static void test_parked_expiry_survives_a_snapshot(void)
{
	FX;
	struct fx *g;
	struct lc_state *c = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t t0 = f->now;
	int64_t e = mkfile_excl(f, ROOT, "t.lock", 3);

	CU_ASSERT_FATAL(e > 0);
	CU_ASSERT_EQUAL(ex(f, (uint64_t)e, 7), 0);
	f->now = t0 + 4000000000ull;
	fx_tick(f);
	CU_ASSERT_EQUAL_FATAL(lc_state_save(f->s, &buf, &len), 0);
	CU_ASSERT_EQUAL_FATAL(lc_state_load(buf, len, &c), 0);
	g = malloc(sizeof(*g));
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	memcpy(g, f, sizeof(*g));
	memset(&g->out, 0, sizeof(g->out));
	g->s = c;
	for (struct fx *h = f; h; h = h == f ? g : NULL) {
		h->now = t0 + 5000000000ull;
		fx_tick(h);
		CU_ASSERT_EQUAL(lookup_(h, ROOT, "t.lock"), e);
		CU_ASSERT_EQUAL(lc_next_deadline(h->s), 0);
		CU_ASSERT_EQUAL(un(h, (uint64_t)e, 7), 0);
		fx_tick(h);
		CU_ASSERT_EQUAL(lookup_(h, ROOT, "t.lock"), -ENOENT);
	}
	CU_ASSERT_EQUAL(lc_state_hash(c), lc_state_hash(f->s));
	fx_free(g);
	free(buf);
	fx_free(f);
}

/* A replica of f built from its snapshot, with f's clock, index and
 * serials, as a node that installs the snapshot has (NULL on failure). */
static struct fx *twin(const struct fx *f)
{
	struct fx *g = malloc(sizeof(*g));
	uint8_t *buf = NULL;
	size_t len = 0;

	if (!g)
		return NULL;
	memcpy(g, f, sizeof(*g));
	memset(&g->out, 0, sizeof(g->out));
	g->s = NULL;
	if (lc_state_save(f->s, &buf, &len) ||
	    lc_state_load(buf, len, &g->s)) {
		free(buf);
		free(g);
		return NULL;
	}
	free(buf);
	return g;
}

/* The O_EXCL file of an ended session belongs to no session, even when
 * a session of the same id opens again (a late duplicate of its
 * SESSION_OPEN does that): a replica that loaded a snapshot meanwhile
 * must not give the file to the new session, or it keeps the file at the
 * TICK that removes it everywhere else. */
static void test_reopened_session_does_not_adopt_its_orphan(void)
{
	FX;
	struct fx *g;
	int64_t e;

	fx_open(f, 2);
	f->cur = 2;
	e = mkfile_excl(f, ROOT, "job.lock", 0);
	CU_ASSERT_FATAL(e > 0);
	f->cur = 1;
	CU_ASSERT_EQUAL(ex(f, (uint64_t)e, 5), 0);
	CU_ASSERT_EQUAL(fx_close(f, 2), 0);
	CU_ASSERT_EQUAL(fx_open(f, 2), 0);
	g = twin(f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_EQUAL(lc_state_hash(g->s), lc_state_hash(f->s));
	for (struct fx *h = f; h; h = h == f ? g : NULL) {
		CU_ASSERT_EQUAL(un(h, (uint64_t)e, 5), 0);
		fx_tick(h);
		CU_ASSERT_EQUAL(lookup_(h, ROOT, "job.lock"), -ENOENT);
	}
	CU_ASSERT_EQUAL(lc_state_hash(g->s), lc_state_hash(f->s));
	fx_free(g);
	fx_free(f);
}

/* Setting a ttl of 0 on a file without one changes nothing, on a
 * replica that ever touched the file's lock or open state as on one
 * that loaded it from a snapshot (which keeps no trace of either). */
static void test_clearing_an_unset_ttl_is_the_same_everywhere(void)
{
	FX;
	struct fx *g;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(fx_apply(f, &(struct lc_cmd){ .type = LC_CMD_OPEN, .ino = a }), 0);
	CU_ASSERT_EQUAL(fx_apply(f, &(struct lc_cmd){ .type = LC_CMD_RELEASE, .ino = a,
						     .who = { .session = 1, .owner = 1 },
						     .flags = LC_RELEASE_UNPIN }), 0);
	CU_ASSERT_EQUAL(un(f, a, 1), 0);
	g = twin(f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	for (struct fx *h = f; h; h = h == f ? g : NULL) {
		h->now += 1000000000ull;
		CU_ASSERT_EQUAL(setxattr_(h, a, "user.cluck.ttl", "0", 1, 0), 0);
		CU_ASSERT_EQUAL(removexattr_(h, a, "user.cluck.ttl"), 0);
	}
	CU_ASSERT_EQUAL(lc_state_hash(g->s), lc_state_hash(f->s));
	fx_free(g);
	fx_free(f);
}

/* An expired file open elsewhere lives on under the name it loses last;
 * which one that is must not depend on the order a replica keeps a
 * file's names in (creation order; a loaded state has them by
 * directory). */
static void test_expired_open_file_keeps_the_same_former_name_everywhere(void)
{
	FX;
	struct fx *g;
	int64_t d = mkdir_(f, ROOT, "d"), e;
	uint64_t dir[2] = { 0, 0 };
	const char *n[2] = { NULL, NULL };
	size_t len[2] = { 0, 0 };
	int i = 0;

	CU_ASSERT_FATAL(d > 0);
	e = mkfile_excl(f, (uint64_t)d, "b", 1);
	CU_ASSERT_FATAL(e > 0);
	CU_ASSERT_EQUAL(link_(f, (uint64_t)e, ROOT, "b"), 0);
	fx_open(f, 2);
	f->cur = 2;
	CU_ASSERT_EQUAL(fx_apply(f, &(struct lc_cmd){ .type = LC_CMD_OPEN,
						     .ino = (uint64_t)e }), 0);
	f->cur = 1;
	g = twin(f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	for (struct fx *h = f; h; h = h == f ? g : NULL, i++) {
		h->now += 2000000000ull;
		fx_tick(h);
		CU_ASSERT_EQUAL(lookup_(h, ROOT, "b"), -ENOENT);
		CU_ASSERT_EQUAL(lc_former_name(h->s, (uint64_t)e, &dir[i], &n[i],
					       &len[i]), 0);
	}
	CU_ASSERT_EQUAL(dir[0], dir[1]);
	CU_ASSERT_EQUAL(lc_state_hash(g->s), lc_state_hash(f->s));
	fx_free(g);
	fx_free(f);
}

extern long unit_fail_nth;

/* A replica short of memory while an unlock hands a POSIX range to a
 * waiter refuses the command as a whole (lc_apply -ENOMEM, the driver
 * applies it again): it must not apply the unlock and put the grant off,
 * which gave the waiter its lock later there than on every other
 * replica. */
static void test_posix_grant_is_never_put_off_for_memory(void)
{
	for (long n = 1; n <= 8; n++) {
		FX;
		struct fx *g;
		uint64_t a = file(f, "a");
		struct lc_cmd c = { .type = LC_CMD_SETLK, .lock_type = LC_UNLCK,
				    .start = 0, .end = LC_OFF_MAX,
				    .who = { .session = 1, .owner = 1, .pid = 1 } };
		struct lc_cmd d;
		int r;

		CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 0, 9, 0), 0);
		CU_ASSERT_EQUAL(setlk(f, a, 2, LC_WRLCK, 0, 9, LC_LK_WAIT),
				LC_PENDING);
		g = twin(f);
		CU_ASSERT_PTR_NOT_NULL_FATAL(g);
		c.ino = a;
		d = c;
		CU_ASSERT_EQUAL(fx_apply(f, &c), 0);
		CU_ASSERT_EQUAL(nholders(f, a), 1);
		unit_fail_nth = n;
		r = fx_apply(g, &d);
		unit_fail_nth = 0;
		if (g->last_rc == -ENOMEM) {
			g->index--;
			r = fx_reapply(g, &d);
		}
		CU_ASSERT_EQUAL(r, 0);
		CU_ASSERT_EQUAL(nholders(g, a), 1);
		CU_ASSERT_EQUAL(nwaiters(g, a), 0);
		CU_ASSERT_EQUAL(lc_state_hash(g->s), lc_state_hash(f->s));
		fx_free(g);
		fx_free(f);
	}
}

/* A former name's directory is a directory, or gone: a snapshot that
 * puts it in a regular file is no state the engine makes. */
static void test_snapshot_with_a_former_name_in_a_file_is_refused(void)
{
	FX;
	uint64_t a = file(f, "a"), g = file(f, "g");
	static const uint8_t was[11] = { 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 'g' };
	struct lc_state *t = NULL;
	uint8_t *buf = NULL;
	size_t len = 0, hits = 0;

	CU_ASSERT_EQUAL(ex(f, g, 1), 0);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "g"), 0);
	CU_ASSERT_EQUAL_FATAL(lc_state_save(f->s, &buf, &len), 0);
	CU_ASSERT_EQUAL(lc_state_load(buf, len, &t), 0);
	lc_state_free(t);
	t = NULL;
	for (size_t i = 0; i + sizeof(was) <= len; i++)
		if (!memcmp(buf + i, was, sizeof(was))) {
			buf[i] = (uint8_t)a;
			hits++;
		}
	CU_ASSERT_EQUAL_FATAL(hits, 1);
	CU_ASSERT_EQUAL(lc_state_load(buf, len, &t), -EINVAL);
	CU_ASSERT_PTR_NULL(t);
	free(buf);
	fx_free(f);
}

static void test_next_deadline_is_the_earliest(void)
{
	FX;
	uint64_t t0 = f->now;

	CU_ASSERT_EQUAL(lc_next_deadline(f->s), 0);
	mkfile_excl(f, ROOT, "a", 30);
	mkfile_excl(f, ROOT, "b", 20);
	mkfile_excl(f, ROOT, "c", 0);
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), t0 + 20000000000ull);
	f->now = t0 + 20000000000ull;
	fx_tick(f);
	CU_ASSERT_EQUAL(lc_next_deadline(f->s), t0 + 30000000000ull);
	CU_ASSERT(lookup_(f, ROOT, "c") > 0);
	fx_free(f);
}

/* ======================================================================= */
/* session close                                                            */
/* ======================================================================= */

static void test_removing_a_lockfile_releases_it(void)
{
	FX;
	int64_t mine;

	fx_open(f, 2);
	f->cur = 2;
	CU_ASSERT(mkfile_excl(f, ROOT, "x.lock", 0) > 0);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "x.lock"), 0);
	f->cur = 1;
	mine = mkfile_excl(f, ROOT, "x.lock", 0);
	CU_ASSERT_FATAL(mine > 0);
	/* session 2 ending must not take session 1's lockfile with it */
	fx_close(f, 2);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "x.lock"), mine);
	fx_free(f);
}

static void test_renamed_lockfile_still_dies_with_its_session(void)
{
	FX;
	int64_t e;

	fx_open(f, 2);
	f->cur = 2;
	e = mkfile_excl(f, ROOT, "tmp.123", 0);
	CU_ASSERT_FATAL(e > 0);
	CU_ASSERT_EQUAL(rename_(f, ROOT, "tmp.123", ROOT, "job.lock", 0), 0);
	/* flock(1) opening it later (plain O_CREAT) finds the same file */
	CU_ASSERT_EQUAL(mkfile(f, ROOT, "job.lock"), e);
	f->cur = 1;
	fx_close(f, 2);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "job.lock"), -ENOENT);
	fx_free(f);
}

static void test_session_can_close_itself(void)
{
	FX;
	uint64_t a = file(f, "a"), s1;
	struct lc_cmd c = { .type = LC_CMD_SESSION_CLOSE, .origin = 2,
			    .session = 2 };

	fx_open(f, 2);
	f->cur = 2;
	ex(f, a, 1);
	f->cur = 1;
	wait_ex(f, a, 1);
	s1 = f->last_serial;
	/* a clean shutdown, issued by the session itself */
	CU_ASSERT_EQUAL(fx_apply(f, &c), 0);
	CU_ASSERT_TRUE(fx_has(f, 1, s1, 0));
	f->cur = 2;
	CU_ASSERT_EQUAL(ex(f, a, 2), -ENOLCK);
	fx_free(f);
}

static void test_session_close_frees_its_locks_and_grants_others(void)
{
	FX;
	uint64_t a = file(f, "a"), s1;

	fx_open(f, 2);
	f->cur = 2;
	ex(f, a, 1);
	setlk(f, a, 1, LC_WRLCK, 0, 9, 0);
	f->cur = 1;
	wait_ex(f, a, 1);
	s1 = f->last_serial;
	CU_ASSERT_EQUAL(fx_close(f, 2), 0);
	CU_ASSERT_TRUE(fx_has(f, 1, s1, 0));
	CU_ASSERT_EQUAL(holds(f, a, 2, 1), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 2, 1), "");
	CU_ASSERT_EQUAL(holds(f, a, 1, 1), LC_WRLCK);
	fx_free(f);
}

static void test_session_close_refuses_its_waiters_with_enolck(void)
{
	FX;
	uint64_t a = file(f, "a"), s2, p2;

	fx_open(f, 2);
	ex(f, a, 1);
	setlk(f, a, 1, LC_WRLCK, 0, 0, 0);
	f->cur = 2;
	wait_ex(f, a, 1);
	s2 = f->last_serial;
	setlk(f, a, 1, LC_RDLCK, 0, 0, LC_LK_WAIT);
	p2 = f->last_serial;
	CU_ASSERT_EQUAL(fx_close(f, 2), 0);
	CU_ASSERT_TRUE(fx_has(f, 2, s2, -ENOLCK));
	CU_ASSERT_TRUE(fx_has(f, 2, p2, -ENOLCK));
	CU_ASSERT_EQUAL(nwaiters(f, a), 0);
	CU_ASSERT_EQUAL(st_waiters(f), 0);
	fx_free(f);
}

/* ======================================================================= */
/* fencing tokens                                                           */
/* ======================================================================= */

static void test_tokens_strictly_increase_per_file(void)
{
	FX;
	uint64_t a = file(f, "a"), last = 0;
	struct lc_locksum m;

	for (int i = 0; i < 20; i++) {
		uint64_t o = (uint64_t)(i % 3) + 1;
		int st = (i % 2) ? sh(f, a, o) : wait_ex(f, a, o);
		uint64_t t = fx_comp(f, 0)->token;

		CU_ASSERT_EQUAL(st, 0);
		CU_ASSERT(t > last);
		last = t;
		lc_locksum(f->s, a, f->now, &m);
		CU_ASSERT_EQUAL(m.last_token, t);
		release(f, a, o);
	}
	fx_free(f);
}

static void test_tokens_name_the_granting_log_entry(void)
{
	FX;
	uint64_t a = file(f, "a"), b = file(f, "b"), ta, tb, tp, rel;
	struct lc_stats st;

	ex(f, a, 1);
	ta = fx_comp(f, 0)->token;
	CU_ASSERT_EQUAL(ta >> LC_TOKEN_SHIFT, f->index);
	ex(f, b, 1);
	tb = fx_comp(f, 0)->token;
	CU_ASSERT_EQUAL(tb >> LC_TOKEN_SHIFT, f->index);
	setlk(f, a, 2, LC_WRLCK, 0, 0, 0);
	tp = fx_comp(f, 0)->token;
	CU_ASSERT(tb > ta);
	CU_ASSERT(tp > tb);
	lc_stats(f->s, &st);
	CU_ASSERT(st.next_token > tp);

	/* One release granting three shared waiters: one log entry, three
	 * consecutive tokens, all naming that entry. */
	CU_ASSERT_EQUAL(wait_sh(f, b, 2), LC_PENDING);
	CU_ASSERT_EQUAL(wait_sh(f, b, 3), LC_PENDING);
	CU_ASSERT_EQUAL(wait_sh(f, b, 4), LC_PENDING);
	CU_ASSERT_EQUAL(release(f, b, 1), 0);
	rel = f->index;
	CU_ASSERT_EQUAL(fx_ncomp(f), 4);
	for (size_t i = 1; i < fx_ncomp(f); i++) {
		CU_ASSERT_EQUAL(fx_comp(f, i)->status, 0);
		CU_ASSERT_EQUAL(fx_comp(f, i)->token >> LC_TOKEN_SHIFT, rel);
		CU_ASSERT_EQUAL(fx_comp(f, i)->token & ((1u << LC_TOKEN_SHIFT) - 1), i - 1);
	}
	fx_free(f);
}

static void test_lc_token_is_the_holders_grant_or_the_latest(void)
{
	FX;
	uint64_t a = file(f, "a"), t1, t2;
	struct lc_owner o1 = { 1, 1, 1 }, o2 = { 1, 2, 2 }, o9 = { 1, 9, 9 };
	struct lc_owner latest = { 0, 0, 0 };

	CU_ASSERT_EQUAL(lc_token(f->s, a, &latest), 0);
	sh(f, a, 1);
	t1 = fx_comp(f, 0)->token;
	sh(f, a, 2);
	t2 = fx_comp(f, 0)->token;
	CU_ASSERT_EQUAL(lc_token(f->s, a, &o1), t1);
	CU_ASSERT_EQUAL(lc_token(f->s, a, &o2), t2);
	CU_ASSERT_EQUAL(lc_token(f->s, a, &o9), t2);
	CU_ASSERT_EQUAL(lc_token(f->s, a, &latest), t2);
	release(f, a, 1);
	release(f, a, 2);
	CU_ASSERT_EQUAL(lc_token(f->s, a, &o1), t2);
	setlk(f, a, 9, LC_RDLCK, 5, 5, 0);
	CU_ASSERT_EQUAL(lc_token(f->s, a, &o9), fx_comp(f, 0)->token);
	fx_free(f);
}

/* ======================================================================= */
/* dedup (idempotent re-application)                                        */
/* ======================================================================= */

static void test_reapplied_grant_emits_same_answer_and_changes_nothing(void)
{
	FX;
	uint64_t a = file(f, "a"), h;
	struct lc_cmd c = { .type = LC_CMD_FLOCK, .lock_type = LC_WRLCK,
			    .who = { 1, 1, 1 } };
	struct lc_completion first;

	c.ino = a;
	CU_ASSERT_EQUAL(fx_apply(f, &c), 0);
	first = *fx_comp(f, 0);
	h = lc_state_hash(f->s);
	CU_ASSERT_EQUAL(fx_reapply(f, &c), 0);
	CU_ASSERT_EQUAL_FATAL(fx_ncomp(f), 1);
	CU_ASSERT_TRUE(same_comp(fx_comp(f, 0), &first));
	CU_ASSERT_EQUAL(fx_comp(f, 0)->token, first.token);
	CU_ASSERT_EQUAL(lc_state_hash(f->s), h);
	fx_free(f);
}

static void test_reapplied_queued_request_is_still_pending(void)
{
	FX;
	uint64_t a = file(f, "a"), h;
	struct lc_cmd c = { .type = LC_CMD_FLOCK, .lock_type = LC_WRLCK,
			    .flags = LC_LK_WAIT, .who = { 1, 2, 2 } };

	ex(f, a, 1);
	c.ino = a;
	CU_ASSERT_EQUAL(fx_apply(f, &c), LC_PENDING);
	h = lc_state_hash(f->s);
	CU_ASSERT_EQUAL(fx_reapply(f, &c), LC_PENDING);
	CU_ASSERT_EQUAL(lc_state_hash(f->s), h);
	CU_ASSERT_EQUAL(nwaiters(f, a), 1);
	/* once granted, the replay answers with the grant */
	release(f, a, 1);
	CU_ASSERT_TRUE(fx_has(f, 1, c.serial, 0));
	CU_ASSERT_EQUAL(fx_reapply(f, &c), 0);
	CU_ASSERT_EQUAL(fx_comp(f, 0)->token, holder_token(f, a, 1, 2));
	fx_free(f);
}

static void test_reapplied_create_does_not_create_twice(void)
{
	FX;
	struct lc_cmd c = { .type = LC_CMD_CREATE, .parent = ROOT,
			    .name = "x", .name_len = 1, .mode = 0644,
			    .flags = LC_CREATE_EXCL };
	uint64_t ino, h;
	struct lc_stats st;

	CU_ASSERT_EQUAL(fx_apply(f, &c), 0);
	ino = fx_comp(f, 0)->ino;
	h = lc_state_hash(f->s);
	/* an EXCL replay must not turn into EEXIST */
	CU_ASSERT_EQUAL(fx_reapply(f, &c), 0);
	CU_ASSERT_EQUAL(fx_comp(f, 0)->ino, ino);
	CU_ASSERT_EQUAL(lc_state_hash(f->s), h);
	lc_stats(f->s, &st);
	CU_ASSERT_EQUAL(st.files, 2);
	fx_free(f);
}

static void test_reapplied_error_is_the_same_error(void)
{
	FX;
	uint64_t a = file(f, "a");
	struct lc_cmd c = { .type = LC_CMD_FLOCK, .lock_type = LC_WRLCK,
			    .who = { 1, 2, 2 } };

	ex(f, a, 1);
	c.ino = a;
	CU_ASSERT_EQUAL(fx_apply(f, &c), -EAGAIN);
	release(f, a, 1);
	/* the lock is free now, but this request already failed */
	CU_ASSERT_EQUAL(fx_reapply(f, &c), -EAGAIN);
	CU_ASSERT_EQUAL(nholders(f, a), 0);
	fx_free(f);
}

static void test_serial_older_than_window_is_estale(void)
{
	FX;
	uint64_t a = file(f, "a"), h;
	struct lc_cmd old = { .type = LC_CMD_FLOCK, .lock_type = LC_WRLCK,
			      .who = { 1, 1, 1 } };

	old.ino = a;
	fx_apply(f, &old);
	release(f, a, 1);
	for (unsigned i = 0; i < LC_DEDUP_WINDOW + 10; i++) {
		struct lc_cmd n = { .type = LC_CMD_NOP };

		fx_apply(f, &n);
	}
	h = lc_state_hash(f->s);
	CU_ASSERT_EQUAL(fx_reapply(f, &old), -ESTALE);
	CU_ASSERT_EQUAL(nholders(f, a), 0);
	CU_ASSERT_EQUAL(lc_state_hash(f->s), h);
	fx_free(f);
}

/* ======================================================================= */
/* namespace                                                                */
/* ======================================================================= */

static void test_root_is_a_sticky_world_writable_dir(void)
{
	FX;
	struct lc_attr at;
	uint64_t p = 0;

	CU_ASSERT_EQUAL(lc_getattr(f->s, ROOT, &at), 0);
	CU_ASSERT_EQUAL(at.kind, LC_DIR);
	CU_ASSERT_EQUAL(at.mode, 01777);
	CU_ASSERT_EQUAL(at.nlink, 2);
	CU_ASSERT_EQUAL(lc_parent(f->s, ROOT, &p), 0);
	CU_ASSERT_EQUAL(p, ROOT);
	CU_ASSERT_STRING_EQUAL(listing(f, ROOT), "");
	fx_free(f);
}

static void test_root_is_born_with_the_first_command(void)
{
	struct lc_state *s = lc_state_new();
	struct lc_out out = { 0 };
	struct lc_cmd c = { .type = LC_CMD_SESSION_OPEN, .origin = 9,
			    .session = 9, .serial = 1,
			    .time_ns = 1700000000123456789ull };
	struct lc_attr at;

	CU_ASSERT_FATAL(s != NULL);
	CU_ASSERT_EQUAL(lc_apply(s, 1, &c, &out), 0);
	CU_ASSERT_EQUAL(lc_getattr(s, ROOT, &at), 0);
	CU_ASSERT_EQUAL(at.mtime_ns, (int64_t)c.time_ns);
	CU_ASSERT_EQUAL(at.ctime_ns, (int64_t)c.time_ns);
	lc_out_free(&out);
	lc_state_free(s);
}

static void test_mkdir_rmdir_and_enotempty(void)
{
	FX;
	int64_t d = mkdir_(f, ROOT, "d");
	struct lc_attr at;
	uint64_t p = 0;

	CU_ASSERT_FATAL(d > 0);
	CU_ASSERT(d >= LC_INO_FIRST);
	CU_ASSERT_EQUAL(mkdir_(f, ROOT, "d"), -EEXIST);
	CU_ASSERT(mkdir_(f, (uint64_t)d, "sub") > 0);
	CU_ASSERT_EQUAL(lc_parent(f->s, (uint64_t)d, &p), 0);
	CU_ASSERT_EQUAL(p, ROOT);
	lc_getattr(f->s, (uint64_t)d, &at);
	CU_ASSERT_EQUAL(at.nlink, 3);
	lc_getattr(f->s, ROOT, &at);
	CU_ASSERT_EQUAL(at.nlink, 3);
	CU_ASSERT_EQUAL(rmdir_(f, ROOT, "d"), -ENOTEMPTY);
	CU_ASSERT_EQUAL(rmdir_(f, (uint64_t)d, "sub"), 0);
	CU_ASSERT_EQUAL(rmdir_(f, ROOT, "d"), 0);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "d"), -ENOENT);
	CU_ASSERT_EQUAL(lc_getattr(f->s, (uint64_t)d, &at), -ENOENT);
	CU_ASSERT_EQUAL(rmdir_(f, ROOT, "d"), -ENOENT);
	fx_free(f);
}

static void test_unlink_and_rmdir_check_the_kind(void)
{
	FX;
	file(f, "f");
	mkdir_(f, ROOT, "d");
	CU_ASSERT_EQUAL(rmdir_(f, ROOT, "f"), -ENOTDIR);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "d"), -EISDIR);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "nope"), -ENOENT);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "f"), 0);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "f"), -ENOENT);
	fx_free(f);
}

static void test_create_needs_an_existing_directory(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(mkfile(f, 999, "x"), -ENOENT);
	CU_ASSERT_EQUAL(mkfile(f, a, "x"), -ENOTDIR);
	CU_ASSERT_EQUAL(lookup_(f, a, "x"), -ENOTDIR);
	mkdir_(f, ROOT, "d");
	CU_ASSERT(mkfile(f, ROOT, "d") < 0);
	fx_free(f);
}

static void test_symlink_and_readlink(void)
{
	FX;
	int64_t l = symlink_(f, ROOT, "l", "/some/where");
	uint64_t a = file(f, "a");
	const char *t = NULL;
	size_t n = 0;
	struct lc_attr at;

	CU_ASSERT_FATAL(l > 0);
	CU_ASSERT_EQUAL(lc_readlink(f->s, (uint64_t)l, &t, &n), 0);
	CU_ASSERT_EQUAL(n, 11);
	CU_ASSERT(t && memcmp(t, "/some/where", 11) == 0);
	lc_getattr(f->s, (uint64_t)l, &at);
	CU_ASSERT_EQUAL(at.kind, LC_LNK);
	CU_ASSERT_EQUAL(at.size, 11);
	CU_ASSERT_EQUAL(lc_readlink(f->s, a, &t, &n), -EINVAL);
	CU_ASSERT_EQUAL(symlink_(f, ROOT, "l", "x"), -EEXIST);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "l"), 0);
	fx_free(f);
}

static void test_hard_links_count_and_survive_unlink(void)
{
	FX;
	uint64_t a = file(f, "a");
	int64_t d = mkdir_(f, ROOT, "d");
	struct lc_attr at;

	CU_ASSERT_EQUAL(link_(f, a, ROOT, "b"), 0);
	CU_ASSERT_EQUAL(link_(f, a, (uint64_t)d, "c"), 0);
	lc_getattr(f->s, a, &at);
	CU_ASSERT_EQUAL(at.nlink, 3);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "b"), (int64_t)a);
	CU_ASSERT_EQUAL(link_(f, a, ROOT, "b"), -EEXIST);
	CU_ASSERT_EQUAL(link_(f, (uint64_t)d, ROOT, "dd"), -EPERM);
	CU_ASSERT_EQUAL(link_(f, 999, ROOT, "z"), -ENOENT);
	unlink_(f, ROOT, "a");
	unlink_(f, ROOT, "b");
	CU_ASSERT_EQUAL(lc_getattr(f->s, a, &at), 0);
	CU_ASSERT_EQUAL(at.nlink, 1);
	unlink_(f, (uint64_t)d, "c");
	CU_ASSERT_EQUAL(lc_getattr(f->s, a, &at), -ENOENT);
	fx_free(f);
}

static void test_rename_replaces_a_file(void)
{
	FX;
	uint64_t a = file(f, "a"), b = file(f, "b");
	struct lc_attr at;

	CU_ASSERT_EQUAL(rename_(f, ROOT, "a", ROOT, "b", 0), 0);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "a"), -ENOENT);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "b"), (int64_t)a);
	CU_ASSERT_EQUAL(lc_getattr(f->s, b, &at), -ENOENT);
	CU_ASSERT_EQUAL(rename_(f, ROOT, "a", ROOT, "c", 0), -ENOENT);
	fx_free(f);
}

static void test_rename_noreplace_and_exchange(void)
{
	FX;
	uint64_t a = file(f, "a"), b = file(f, "b");

	CU_ASSERT_EQUAL(rename_(f, ROOT, "a", ROOT, "b", 1), -EEXIST);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "a"), (int64_t)a);
	CU_ASSERT_EQUAL(rename_(f, ROOT, "a", ROOT, "b", 2), 0);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "a"), (int64_t)b);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "b"), (int64_t)a);
	CU_ASSERT_EQUAL(rename_(f, ROOT, "a", ROOT, "zz", 2), -ENOENT);
	CU_ASSERT_EQUAL(rename_(f, ROOT, "a", ROOT, "c", 1), 0);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "c"), (int64_t)b);
	fx_free(f);
}

static void test_rename_directory_rules(void)
{
	FX;
	int64_t d = mkdir_(f, ROOT, "d"), e, g;

	CU_ASSERT_FATAL(d > 0);
	e = mkdir_(f, (uint64_t)d, "e");
	CU_ASSERT_FATAL(e > 0);
	CU_ASSERT_EQUAL(rename_(f, ROOT, "d", (uint64_t)e, "x", 0), -EINVAL);
	CU_ASSERT_EQUAL(rename_(f, ROOT, "d", (uint64_t)d, "x", 0), -EINVAL);
	file(f, "f");
	CU_ASSERT_EQUAL(rename_(f, ROOT, "d", ROOT, "f", 0), -ENOTDIR);
	CU_ASSERT_EQUAL(rename_(f, ROOT, "f", ROOT, "d", 0), -EISDIR);
	g = mkdir_(f, ROOT, "g");
	CU_ASSERT_FATAL(g > 0);
	CU_ASSERT_EQUAL(rename_(f, ROOT, "g", ROOT, "d", 0), -ENOTEMPTY);
	/* moving a directory updates its parent */
	CU_ASSERT_EQUAL(rename_(f, (uint64_t)d, "e", (uint64_t)g, "e2", 0), 0);
	{
		uint64_t p = 0;

		CU_ASSERT_EQUAL(lc_parent(f->s, (uint64_t)e, &p), 0);
		CU_ASSERT_EQUAL(p, (uint64_t)g);
	}
	/* empty directory over empty directory is allowed */
	CU_ASSERT_EQUAL(rename_(f, ROOT, "d", ROOT, "g", 0), -ENOTEMPTY);
	CU_ASSERT_EQUAL(rename_(f, ROOT, "g", ROOT, "d", 0), 0);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "d"), g);
	fx_free(f);
}

static void test_write_extends_with_zeros_up_to_64k(void)
{
	FX;
	uint64_t a = file(f, "a");
	const uint8_t *data = NULL;
	size_t len = 0;
	static uint8_t big[LC_CONTENT_MAX];

	CU_ASSERT_EQUAL(write_(f, a, 4, "ab", 2), 0);
	CU_ASSERT_EQUAL(lc_content(f->s, a, &data, &len), 0);
	CU_ASSERT_EQUAL_FATAL(len, 6);
	CU_ASSERT(memcmp(data, "\0\0\0\0ab", 6) == 0);
	memset(big, 'x', sizeof(big));
	CU_ASSERT_EQUAL(write_(f, a, 0, big, LC_CONTENT_MAX), 0);
	CU_ASSERT_EQUAL(write_(f, a, LC_CONTENT_MAX, "y", 1), -EFBIG);
	CU_ASSERT_EQUAL(write_(f, a, LC_CONTENT_MAX - 1, "yz", 2), -EFBIG);
	CU_ASSERT_EQUAL(write_(f, a, UINT64_MAX - 1, "yz", 2), -EFBIG);
	lc_content(f->s, a, &data, &len);
	CU_ASSERT_EQUAL(len, LC_CONTENT_MAX);
	CU_ASSERT_EQUAL(lc_content(f->s, ROOT, &data, &len), -EISDIR);
	fx_free(f);
}

static void test_truncate_shrinks_and_grows_with_zeros(void)
{
	FX;
	uint64_t a = file(f, "a");
	const uint8_t *data = NULL;
	size_t len = 0;
	struct lc_attr at;

	write_(f, a, 0, "hello", 5);
	CU_ASSERT_EQUAL(truncate_(f, a, 2), 0);
	CU_ASSERT_EQUAL(truncate_(f, a, 4), 0);
	lc_content(f->s, a, &data, &len);
	CU_ASSERT_EQUAL_FATAL(len, 4);
	CU_ASSERT(memcmp(data, "he\0\0", 4) == 0);
	lc_getattr(f->s, a, &at);
	CU_ASSERT_EQUAL(at.size, 4);
	CU_ASSERT_EQUAL(truncate_(f, a, LC_CONTENT_MAX + 1), -EFBIG);
	fx_free(f);
}

static void test_setattr_changes_mode_owner_and_times(void)
{
	FX;
	uint64_t a = file(f, "a");
	struct lc_cmd c = { .type = LC_CMD_SETATTR,
			    .valid = LC_SET_MODE | LC_SET_UID | LC_SET_GID |
				     LC_SET_MTIME,
			    .mode = 0600, .uid = 1000, .gid = 100,
			    .mtime_ns = 42 };
	struct lc_attr at;

	c.ino = a;
	CU_ASSERT_EQUAL(fx_apply(f, &c), 0);
	lc_getattr(f->s, a, &at);
	CU_ASSERT_EQUAL(at.mode, 0600);
	CU_ASSERT_EQUAL(at.uid, 1000);
	CU_ASSERT_EQUAL(at.gid, 100);
	CU_ASSERT_EQUAL(at.mtime_ns, 42);
	CU_ASSERT_EQUAL(at.kind, LC_REG);
	fx_free(f);
}

/* Lists with a callback that stops after `stop` entries, remembering the
 * last cookie seen. */
struct pager {
	int stop, seen;
	uint64_t cookie;
	char names[256];
};

static int pager_cb(void *ctx, const char *name, size_t len,
		    const struct lc_attr *a, uint64_t cookie)
{
	struct pager *p = ctx;
	size_t u = strlen(p->names);

	(void)a;
	if (p->seen == p->stop)
		return 1;
	p->seen++;
	p->cookie = cookie;
	if (u + len + 2 < sizeof(p->names)) {
		if (u)
			p->names[u++] = ',';
		memcpy(p->names + u, name, len);
		p->names[u + len] = '\0';
	}
	return 0;
}

static void test_readdir_cookies_are_stable_under_changes(void)
{
	FX;
	struct pager p = { .stop = 2 };
	struct pager q = { .stop = 100 };
	const char *names[] = { "a", "b", "c", "d", "e" };

	for (int i = 0; i < 5; i++)
		file(f, names[i]);
	CU_ASSERT_STRING_EQUAL(listing(f, ROOT), "a,b,c,d,e");
	CU_ASSERT_EQUAL(lc_readdir(f->s, ROOT, 0, pager_cb, &p), 0);
	CU_ASSERT_STRING_EQUAL(p.names, "a,b");
	unlink_(f, ROOT, "a");
	unlink_(f, ROOT, "c");
	file(f, "f");
	file(f, "a");
	CU_ASSERT_EQUAL(lc_readdir(f->s, ROOT, p.cookie, pager_cb, &q), 0);
	CU_ASSERT_STRING_EQUAL(q.names, "d,e,f,a");
	CU_ASSERT_EQUAL(lc_readdir(f->s, 999, 0, pager_cb, &q), -ENOENT);
	fx_free(f);
}

static void test_readdir_of_a_file_is_enotdir(void)
{
	FX;
	uint64_t a = file(f, "a");
	struct pager p = { .stop = 10 };

	CU_ASSERT_EQUAL(lc_readdir(f->s, a, 0, pager_cb, &p), -ENOTDIR);
	fx_free(f);
}

static void test_path_walks_up_to_the_root(void)
{
	FX;
	int64_t d = mkdir_(f, ROOT, "d"), e;
	uint64_t x;
	char buf[64];

	CU_ASSERT_FATAL(d > 0);
	e = mkdir_(f, (uint64_t)d, "e");
	CU_ASSERT_FATAL(e > 0);
	x = (uint64_t)mkfile(f, (uint64_t)e, "f");
	CU_ASSERT_EQUAL(lc_path(f->s, x, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "/d/e/f");
	CU_ASSERT_EQUAL(lc_path(f->s, ROOT, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "/");
	CU_ASSERT_EQUAL(lc_path(f->s, x, buf, 6), -ERANGE);
	CU_ASSERT_EQUAL(lc_path(f->s, x, buf, 7), 0);
	CU_ASSERT_EQUAL(lc_path(f->s, 999, buf, sizeof(buf)), -ENOENT);
	fx_free(f);
}

static void test_reserved_root_names_are_eperm(void)
{
	FX;
	int64_t d;

	CU_ASSERT_EQUAL(mkfile(f, ROOT, "status"), -EPERM);
	CU_ASSERT_EQUAL(mkfile_excl(f, ROOT, "status.json", 0), -EPERM);
	CU_ASSERT_EQUAL(mkdir_(f, ROOT, "metrics"), -EPERM);
	CU_ASSERT_EQUAL(symlink_(f, ROOT, "status", "x"), -EPERM);
	file(f, "a");
	CU_ASSERT_EQUAL(rename_(f, ROOT, "a", ROOT, "metrics", 0), -EPERM);
	CU_ASSERT_EQUAL(link_(f, (uint64_t)lookup_(f, ROOT, "a"), ROOT,
			      "status"), -EPERM);
	d = mkdir_(f, ROOT, "d");
	CU_ASSERT(mkfile(f, (uint64_t)d, "status") > 0);
	fx_free(f);
}

static void test_name_check(void)
{
	char long_name[LC_NAME_MAX + 2];

	memset(long_name, 'n', sizeof(long_name));
	CU_ASSERT_EQUAL(lc_name_check("a", 1), 0);
	CU_ASSERT_EQUAL(lc_name_check("", 0), -EINVAL);
	CU_ASSERT_EQUAL(lc_name_check(".", 1), -EINVAL);
	CU_ASSERT_EQUAL(lc_name_check("..", 2), -EINVAL);
	CU_ASSERT_EQUAL(lc_name_check("...", 3), 0);
	CU_ASSERT_EQUAL(lc_name_check("a/b", 3), -EINVAL);
	CU_ASSERT_EQUAL(lc_name_check("a\0b", 3), -EINVAL);
	CU_ASSERT_EQUAL(lc_name_check(long_name, LC_NAME_MAX), 0);
	CU_ASSERT_EQUAL(lc_name_check(long_name, LC_NAME_MAX + 1),
			-ENAMETOOLONG);
	CU_ASSERT_EQUAL(lc_name_check("\xff\x01 ", 3), 0);
}

static void test_bad_names_are_refused_by_commands(void)
{
	FX;
	char long_name[LC_NAME_MAX + 2];
	struct lc_stats st;

	memset(long_name, 'n', sizeof(long_name));
	long_name[LC_NAME_MAX + 1] = '\0';
	CU_ASSERT_EQUAL(mkfile(f, ROOT, "."), -EINVAL);
	CU_ASSERT_EQUAL(mkdir_(f, ROOT, ".."), -EINVAL);
	CU_ASSERT_EQUAL(mkfile(f, ROOT, "a/b"), -EINVAL);
	CU_ASSERT_EQUAL(mkfile(f, ROOT, ""), -EINVAL);
	CU_ASSERT_EQUAL(mkfile(f, ROOT, long_name), -ENAMETOOLONG);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, long_name), -ENAMETOOLONG);
	long_name[LC_NAME_MAX] = '\0';
	CU_ASSERT(mkfile(f, ROOT, long_name) > 0);
	lc_stats(f->s, &st);
	CU_ASSERT_EQUAL(st.files, 2);
	fx_free(f);
}

static int count_xattr(void *ctx, const char *name)
{
	(void)name;
	++*(int *)ctx;
	return 0;
}

static void test_user_xattrs_set_get_list_remove(void)
{
	FX;
	uint64_t a = file(f, "a");
	const void *v = NULL;
	size_t len = 0;
	int n = 0;

	CU_ASSERT_EQUAL(setxattr_(f, a, "user.note", "hi", 2, 0), 0);
	CU_ASSERT_EQUAL(lc_xattr_get(f->s, a, "user.note", &v, &len), 0);
	CU_ASSERT_EQUAL(len, 2);
	CU_ASSERT(v && memcmp(v, "hi", 2) == 0);
	CU_ASSERT_EQUAL(setxattr_(f, a, "user.two", "", 0, 0), 0);
	setslots(f, a, "2");
	CU_ASSERT_EQUAL(lc_xattr_list(f->s, a, count_xattr, &n), 0);
	CU_ASSERT_EQUAL(n, 2);   /* user.cluck.* are not stored xattrs */
	CU_ASSERT_EQUAL(removexattr_(f, a, "user.note"), 0);
	CU_ASSERT_EQUAL(lc_xattr_get(f->s, a, "user.note", &v, &len), -ENODATA);
	CU_ASSERT_EQUAL(removexattr_(f, a, "user.note"), -ENODATA);
	fx_free(f);
}

static void test_xattr_create_and_replace_flags(void)
{
	FX;
	uint64_t a = file(f, "a");
	const void *v = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL(setxattr_(f, a, "user.k", "1", 1, 2), -ENODATA);
	CU_ASSERT_EQUAL(setxattr_(f, a, "user.k", "1", 1, 1), 0);
	CU_ASSERT_EQUAL(setxattr_(f, a, "user.k", "2", 1, 1), -EEXIST);
	CU_ASSERT_EQUAL(setxattr_(f, a, "user.k", "3", 1, 2), 0);
	lc_xattr_get(f->s, a, "user.k", &v, &len);
	CU_ASSERT(len == 1 && v && memcmp(v, "3", 1) == 0);
	fx_free(f);
}

static void test_xattr_namespace_and_size_rules(void)
{
	FX;
	uint64_t a = file(f, "a");
	static char big[LC_XATTR_VALUE_MAX + 1];

	memset(big, 'v', sizeof(big));
	CU_ASSERT_EQUAL(setxattr_(f, a, "trusted.x", "1", 1, 0), -EOPNOTSUPP);
	CU_ASSERT_EQUAL(setxattr_(f, a, "security.x", "1", 1, 0), -EOPNOTSUPP);
	CU_ASSERT_EQUAL(setxattr_(f, a, "user.cluck.token", "1", 1, 0), -EPERM);
	CU_ASSERT_EQUAL(setxattr_(f, a, "user.big", big, LC_XATTR_VALUE_MAX + 1,
				  0), -E2BIG);
	CU_ASSERT_EQUAL(setxattr_(f, a, "user.big", big, LC_XATTR_VALUE_MAX, 0),
			0);
	fx_free(f);
}

/* ======================================================================= */
/* determinism, snapshots and the wire format                               */
/* ======================================================================= */

/* One pseudo-random command mixing every type, over a small world so
 * that commands often collide.  Strings point to static storage. */
/* What the generator remembers: serials per session, the last queued
 * request of each session (for CANCEL) and inodes that exist. */
struct world {
	uint64_t serials[4], pending[4];
	uint64_t inos[16];
};

static void random_cmd(uint64_t *rs, struct world *w, uint64_t now,
		       struct lc_cmd *c)
{
	static const char *names[] = { "a", "b", "c", "d", "status", "e" };
	static const char *xnames[] = { "user.x", "user.cluck.slots",
					"user.cluck.token", "trusted.y" };
	static const char *xvals[] = { "1", "2", "0", "junk" };
	static char wbuf[64];
	uint64_t r = prng(rs);
	uint64_t sess = 1 + prng(rs) % 3;

	static const uint8_t locky[] = { LC_CMD_FLOCK, LC_CMD_FLOCK,
					 LC_CMD_FLOCK, LC_CMD_SETLK,
					 LC_CMD_SETLK, LC_CMD_RELEASE,
					 LC_CMD_FLUSH, LC_CMD_CANCEL };

	memset(c, 0, sizeof(*c));
	/* half uniform over every type, half lock traffic */
	if (r % 2)
		c->type = (uint8_t)((r >> 8) % LC_CMD__COUNT);
	else
		c->type = locky[(r >> 8) % sizeof(locky)];
	c->origin = sess;
	c->time_ns = now;
	c->ino = prng(rs) % 16 ? w->inos[prng(rs) % 16] : ROOT;
	if (!c->ino)
		c->ino = LC_INO_FIRST + prng(rs) % 12;
	c->parent = prng(rs) % 3 ? ROOT : LC_INO_FIRST + prng(rs) % 12;
	c->parent2 = prng(rs) % 3 ? ROOT : LC_INO_FIRST + prng(rs) % 12;
	c->name = names[prng(rs) % 6];
	c->name_len = (uint32_t)strlen(c->name);
	c->name2 = names[prng(rs) % 6];
	c->name2_len = (uint32_t)strlen(c->name2);
	c->mode = 0644;
	c->who.session = sess;
	c->who.owner = 1 + prng(rs) % 4;
	c->who.pid = (uint32_t)c->who.owner;
	c->lock_type = (uint8_t)(prng(rs) % 3);
	c->flags = (uint32_t)(prng(rs) % 2);
	c->session = sess;
	switch (c->type) {
	case LC_CMD_TICK:
		c->origin = 0;
		break;
	case LC_CMD_SESSION_CLOSE:
		if (prng(rs) % 4)       /* keep sessions around most of the time */
			c->type = LC_CMD_NOP;
		c->origin = 0;
		break;
	case LC_CMD_SESSION_OPEN:
		c->data = "n";
		c->data_len = 1;
		break;
	case LC_CMD_CREATE:
		c->ttl_s = (uint32_t)(prng(rs) % 3);
		break;
	case LC_CMD_SYMLINK:
		c->data = "target";
		c->data_len = 6;
		break;
	case LC_CMD_RENAME:
		c->flags = (uint32_t)(prng(rs) % 3);
		break;
	case LC_CMD_SETATTR:
		c->valid = (uint32_t)(prng(rs) % 64);
		c->size = prng(rs) % 100;
		c->atime_ns = (int64_t)now;
		c->mtime_ns = (int64_t)now;
		break;
	case LC_CMD_WRITE:
		snprintf(wbuf, sizeof(wbuf), "w%llu",
			 (unsigned long long)(prng(rs) % 1000));
		c->data = wbuf;
		c->data_len = (uint32_t)strlen(wbuf);
		c->offset = prng(rs) % 50;
		break;
	case LC_CMD_SETXATTR:
	case LC_CMD_REMOVEXATTR: {
		unsigned k = (unsigned)(prng(rs) % 4);

		c->name = xnames[k];
		c->name_len = (uint32_t)strlen(c->name);
		c->data = xvals[prng(rs) % 4];
		c->data_len = (uint32_t)strlen(c->data);
		c->flags = (uint32_t)(prng(rs) % 3);
		break;
	}
	case LC_CMD_SETLK:
		c->start = prng(rs) % 20;
		c->end = prng(rs) % 5 ? c->start + prng(rs) % 20 : LC_OFF_MAX;
		if (prng(rs) % 20 == 0)
			c->end = c->start ? c->start - 1 : 0;
		break;
	case LC_CMD_CANCEL:
		c->target_serial = prng(rs) % 4 ? w->pending[sess] :
				   w->serials[sess] - prng(rs) % 4;
		break;
	default:
		break;
	}
	if (c->origin)
		c->serial = ++w->serials[c->origin];
}



static void test_same_commands_give_same_states(void)
{
	struct lc_state *a = lc_state_new(), *b = lc_state_new();
	struct lc_out oa = { 0 }, ob = { 0 };
	uint64_t rs = 12345, now = 1000000000ull, idx = 0;
	struct world w = { 0 };
	int diverged = 0, decode_mismatch = 0;
	unsigned ok[LC_CMD__COUNT] = { 0 };
	struct lc_stats st;

	CU_ASSERT_FATAL(a && b);
	for (uint64_t sid = 1; sid <= 3; sid++) {
		struct lc_cmd c = { .type = LC_CMD_SESSION_OPEN, .origin = sid,
				    .serial = ++w.serials[sid], .session = sid,
				    .time_ns = now };

		++idx;
		lc_apply(a, idx, &c, &oa);
		lc_apply(b, idx, &c, &ob);
	}
	/* eight persistent files that the generator never names, so lock
	 * traffic always has live targets */
	for (int i = 0; i < 8; i++) {
		char nm[4] = { 'f', (char)('0' + i), 0, 0 };
		struct lc_cmd c = { .type = LC_CMD_CREATE, .origin = 1,
				    .serial = ++w.serials[1], .parent = ROOT,
				    .name = nm, .name_len = 2, .mode = 0644,
				    .time_ns = now };

		lc_out_reset(&oa);
		++idx;
		lc_apply(a, idx, &c, &oa);
		lc_apply(b, idx, &c, &ob);
		CU_ASSERT_FATAL(oa.n > 0 && oa.v[0].status == 0);
		w.inos[i] = oa.v[0].ino;
	}
	for (int step = 0; step < 5000 && !diverged; step++) {
		struct lc_cmd c, d;
		uint8_t *buf = NULL;
		size_t len = 0;

		now += prng(&rs) % 3000000000ull;
		random_cmd(&rs, &w, now, &c);
		lc_out_reset(&oa);
		lc_out_reset(&ob);
		++idx;
		lc_apply(a, idx, &c, &oa);
		if (oa.n && (oa.v[0].status == 0 || oa.v[0].status == LC_PENDING))
			ok[c.type]++;
		if (oa.n && oa.v[0].status == LC_PENDING)
			w.pending[c.origin] = c.serial;
		if (oa.n && oa.v[0].status == 0 && oa.v[0].ino &&
		    (c.type == LC_CMD_CREATE || c.type == LC_CMD_MKDIR))
			w.inos[8 + prng(&rs) % 8] = oa.v[0].ino;
		/* b gets the command through the wire format */
		if (lc_cmd_encode(&c, &buf, &len) != 0 ||
		    lc_cmd_decode(buf, len, &d) != 0) {
			decode_mismatch++;
			d = c;
		}
		lc_apply(b, idx, &d, &ob);
		free(buf);
		if (step == 2500) {
			/* from here on b is a snapshot of itself: a loaded
			 * state must go on exactly like the one saved */
			uint8_t *sb = NULL;
			size_t sl = 0;
			struct lc_state *nb = NULL;

			if (lc_state_save(b, &sb, &sl) == 0 &&
			    lc_state_load(sb, sl, &nb) == 0) {
				lc_state_free(b);
				b = nb;
			} else {
				decode_mismatch++;
			}
			free(sb);
		}
		if (lc_state_hash(a) != lc_state_hash(b) || !same_out(&oa, &ob)) {
			diverged = step + 1;
			fprintf(stderr, "\n  diverged at step %d (type %u)\n",
				step, c.type);
		}
		/* sessions come back after a close, as nodes rejoin */
		if (c.type == LC_CMD_SESSION_CLOSE) {
			struct lc_cmd o = { .type = LC_CMD_SESSION_OPEN,
					    .origin = c.session,
					    .serial = ++w.serials[c.session],
					    .session = c.session,
					    .time_ns = now };

			++idx;
			lc_apply(a, idx, &o, &oa);
			lc_apply(b, idx, &o, &ob);
		}
	}
	CU_ASSERT_EQUAL(diverged, 0);
	CU_ASSERT_EQUAL(decode_mismatch, 0);
	/* the sequence really exercised every command type */
	for (unsigned t = LC_CMD_SESSION_OPEN; t < LC_CMD__COUNT; t++) {
		if (t == LC_CMD_TICK || t == LC_CMD_SESSION_CLOSE)
			continue;       /* origin 0: no own completion to count */
		if (!ok[t])
			fprintf(stderr, "\n  command type %u never succeeded\n", t);
		CU_ASSERT(ok[t] > 0);
	}
	lc_stats(a, &st);
	CU_ASSERT(st.grants > 200);
	CU_ASSERT(st.interrupts > 0);
	CU_ASSERT_EQUAL(lc_applied_index(a), idx);
	{
		uint8_t *buf = NULL;
		size_t len = 0;
		struct lc_state *c = NULL;

		CU_ASSERT_EQUAL_FATAL(lc_state_save(a, &buf, &len), 0);
		CU_ASSERT_EQUAL(lc_state_load(buf, len, &c), 0);
		CU_ASSERT(c && lc_state_hash(c) == lc_state_hash(a));
		if (c) {
			uint8_t *buf2 = NULL;
			size_t len2 = 0;

			CU_ASSERT_EQUAL(lc_state_save(c, &buf2, &len2), 0);
			CU_ASSERT(len2 == len && memcmp(buf, buf2, len) == 0);
			CU_ASSERT_EQUAL(lc_applied_index(c), idx);
			free(buf2);
			lc_state_free(c);
		}
		free(buf);
	}
	lc_out_free(&oa);
	lc_out_free(&ob);
	lc_state_free(a);
	lc_state_free(b);
}

/* A small but varied state: files, dirs, links, xattrs, holders, waiters,
 * POSIX ranges, an ephemeral file with a ttl, two sessions, a locked file
 * whose last name is gone (kept as its former name). */
static struct fx *small_world(void)
{
	struct fx *f = fx_new();
	uint64_t a, b, g;

	if (!f)
		return NULL;
	fx_open(f, 2);
	a = (uint64_t)mkfile(f, ROOT, "a");
	b = (uint64_t)mkdir_(f, ROOT, "d");
	mkfile(f, b, "in");
	symlink_(f, ROOT, "l", "a");
	link_(f, a, b, "a2");
	write_(f, a, 0, "content", 7);
	setxattr_(f, a, "user.x", "v", 1, 0);
	setslots(f, a, "2");
	sh(f, a, 1);
	sh(f, a, 2);
	wait_sh(f, a, 3);
	setlk(f, a, 4, LC_WRLCK, 0, 9, 0);
	setlk(f, a, 5, LC_WRLCK, 5, 20, LC_LK_WAIT);
	g = (uint64_t)mkfile(f, b, "gone");
	ex(f, g, 6);
	unlink_(f, b, "gone");
	f->cur = 2;
	mkfile_excl(f, ROOT, "e.lock", 30);
	f->cur = 1;
	return f;
}

/* ======================================================================= */
/* usage per uid (the limits of cluckd(8))                                  */
/* ======================================================================= */

static int64_t mkfile_as(struct fx *f, const char *name, uint32_t uid)
{
	struct lc_cmd c = { .type = LC_CMD_CREATE, .parent = ROOT,
			    .name = name, .name_len = (uint32_t)strlen(name),
			    .mode = 0644, .uid = uid, .gid = uid };

	return fx_apply(f, &c) < 0 ? -1 : lookup_(f, ROOT, name);
}

static int chown_(struct fx *f, uint64_t ino, uint32_t uid)
{
	struct lc_cmd c = { .type = LC_CMD_SETATTR, .ino = ino,
			    .valid = LC_SET_UID, .uid = uid };

	return fx_apply(f, &c);
}

#define USE_IS(st, uid, nf, nb) do {                                        \
	struct lc_usage u_;                                                 \
	lc_usage((st), (uid), &u_);                                         \
	CU_ASSERT_EQUAL(u_.files, (nf));                                    \
	CU_ASSERT_EQUAL(u_.bytes, (nb));                                    \
} while (0)

static void test_usage_follows_creates_writes_chown_and_unlink(void)
{
	FX;
	struct lc_usage tot;
	int64_t a, b;
	uint8_t buf[100] = { 0 };

	USE_IS(f->s, 0, 1, 0);                       /* the root directory */
	USE_IS(f->s, 1000, 0, 0);
	a = mkfile_as(f, "a", 1000);
	b = mkfile_as(f, "b", 1000);
	CU_ASSERT_FATAL(a > 0 && b > 0);
	USE_IS(f->s, 1000, 2, 0);
	CU_ASSERT_EQUAL(write_(f, (uint64_t)a, 10, buf, sizeof(buf)), 0);
	USE_IS(f->s, 1000, 2, 110);
	CU_ASSERT_EQUAL(write_(f, (uint64_t)a, 0, buf, 5), 0);      /* inside */
	USE_IS(f->s, 1000, 2, 110);
	CU_ASSERT_EQUAL(truncate_(f, (uint64_t)a, 50), 0);
	USE_IS(f->s, 1000, 2, 50);
	CU_ASSERT_EQUAL(truncate_(f, (uint64_t)b, 4000), 0);
	USE_IS(f->s, 1000, 2, 4050);
	CU_ASSERT_EQUAL(chown_(f, (uint64_t)b, 1001), 0);
	USE_IS(f->s, 1000, 1, 50);
	USE_IS(f->s, 1001, 1, 4000);
	CU_ASSERT_EQUAL(truncate_(f, (uint64_t)b, 0), 0);
	USE_IS(f->s, 1001, 1, 0);
	lc_usage_total(f->s, &tot);
	CU_ASSERT_EQUAL(tot.files, 3);
	CU_ASSERT_EQUAL(tot.bytes, 50);
	/* a held, unlinked file still costs until it goes */
	CU_ASSERT_EQUAL(ex(f, (uint64_t)a, 1), 0);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "a"), 0);
	USE_IS(f->s, 1000, 1, 50);
	CU_ASSERT_EQUAL(un(f, (uint64_t)a, 1), 0);
	USE_IS(f->s, 1000, 0, 0);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "b"), 0);
	USE_IS(f->s, 1001, 0, 0);
	lc_usage_total(f->s, &tot);
	CU_ASSERT_EQUAL(tot.files, 1);
	CU_ASSERT_EQUAL(tot.bytes, 0);
	fx_free(f);
}

static void test_usage_counts_dirs_symlinks_and_survives_a_snapshot(void)
{
	FX;
	struct lc_cmd c = { .type = LC_CMD_MKDIR, .parent = ROOT, .name = "d",
			    .name_len = 1, .mode = 0755, .uid = 7 };
	struct lc_cmd l = { .type = LC_CMD_SYMLINK, .parent = ROOT, .name = "l",
			    .name_len = 1, .data = "target", .data_len = 6,
			    .uid = 7 };
	struct lc_state *ld = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL(fx_apply(f, &c), 0);
	CU_ASSERT_EQUAL(fx_apply(f, &l), 0);
	CU_ASSERT_FATAL(mkfile_as(f, "x", 7) > 0);
	CU_ASSERT_EQUAL(link_(f, (uint64_t)lookup_(f, ROOT, "x"), ROOT, "y"), 0);
	USE_IS(f->s, 7, 3, 6);                       /* a hard link is no file */
	CU_ASSERT_EQUAL_FATAL(lc_state_save(f->s, &buf, &len), 0);
	CU_ASSERT_EQUAL_FATAL(lc_state_load(buf, len, &ld), 0);
	USE_IS(ld, 7, 3, 6);
	USE_IS(ld, 0, 1, 0);
	/* user xattrs count: name and value bytes, replaced, removed */
	{
		uint64_t x = (uint64_t)lookup_(f, ROOT, "x");

		CU_ASSERT_EQUAL(setxattr_(f, x, "user.a", "12345", 5, 0), 0);
		USE_IS(f->s, 7, 3, 6 + 6 + 5);
		CU_ASSERT_EQUAL(setxattr_(f, x, "user.a", "1", 1, 0), 0);
		USE_IS(f->s, 7, 3, 6 + 6 + 1);
		CU_ASSERT_EQUAL(setslots(f, x, "3"), 0);     /* a setting */
		USE_IS(f->s, 7, 3, 6 + 6 + 1);
		CU_ASSERT_EQUAL(chown_(f, x, 8), 0);
		USE_IS(f->s, 7, 2, 6);
		USE_IS(f->s, 8, 1, 7);
		CU_ASSERT_EQUAL(removexattr_(f, x, "user.a"), 0);
		USE_IS(f->s, 8, 1, 0);
		CU_ASSERT_EQUAL(setxattr_(f, x, "user.b", "xy", 2, 0), 0);
		CU_ASSERT_EQUAL(unlink_(f, ROOT, "x"), 0);
		CU_ASSERT_EQUAL(unlink_(f, ROOT, "y"), 0);
		USE_IS(f->s, 8, 0, 0);
	}
	lc_state_free(ld);
	free(buf);
	fx_free(f);
}

/* ---- the same log from any snapshot: a random differential test ------- */

struct rgen {
	uint64_t rng, now, index;
	uint64_t serial[4];             /* per origin 0..3 */
	uint64_t ino[32];               /* inodes seen in answers */
	unsigned nino;
	char name[4], name2[4];
	uint8_t data[64];
};

static uint64_t rg(struct rgen *g, uint64_t n)
{
	return prng(&g->rng) % n;
}

static uint64_t rg_ino(struct rgen *g)
{
	if (!g->nino || !rg(g, 8))
		return LC_INO_FIRST + rg(g, 24);
	return g->ino[rg(g, g->nino)];
}

static uint64_t rg_dir(struct rgen *g)
{
	return rg(g, 2) ? ROOT : rg_ino(g);
}

/* One random command of a small world: three sessions that end and open
 * again, lockfiles with short ttls, links, renames over, locks held and
 * waited for, xattrs and owners by several uids, TICKs. */
static void rg_cmd(struct rgen *g, struct lc_cmd *c)
{
	static const char *const xn[] = { "user.cluck.ttl", "user.cluck.slots",
					  "user.x" };
	uint64_t sid = 1 + rg(g, 3);
	unsigned k = (unsigned)rg(g, 22);

	memset(c, 0, sizeof(*c));
	g->now += rg(g, 4) * 500000000ull;
	c->time_ns = g->now;
	c->origin = sid;
	g->name[0] = (char)('a' + rg(g, 3));
	g->name2[0] = (char)('a' + rg(g, 3));
	c->name = g->name;
	c->name_len = 1;
	c->uid = (uint32_t)rg(g, 3);
	c->gid = c->uid;
	c->ino = rg_ino(g);
	c->who.session = sid;
	c->who.owner = 1 + rg(g, 2);
	c->who.pid = (uint32_t)c->who.owner;
	switch (k) {
	case 0:
		c->type = LC_CMD_SESSION_OPEN;
		c->session = sid;
		break;
	case 1:
		c->type = LC_CMD_SESSION_CLOSE;
		c->origin = rg(g, 2) ? 0 : sid;
		c->session = sid;
		break;
	case 2: case 3:
		c->type = LC_CMD_TICK;
		c->origin = 0;
		c->name = NULL;
		c->name_len = 0;
		if (!rg(g, 100))
			c->time_ns = UINT64_MAX;   /* the end of time */
		break;
	case 4: case 5:
		c->type = LC_CMD_CREATE;
		c->parent = rg_dir(g);
		c->mode = 0644;
		c->flags = (uint32_t)rg(g, 4);
		c->ttl_s = (uint32_t)rg(g, 3);
		break;
	case 6:
		c->type = rg(g, 4) ? LC_CMD_MKDIR : LC_CMD_SYMLINK;
		c->data = "t";
		c->data_len = 1;
		c->parent = rg_dir(g);
		c->mode = 0755;
		break;
	case 7:
		c->type = LC_CMD_LINK;
		c->parent = rg_dir(g);
		break;
	case 8:
		c->type = rg(g, 4) ? LC_CMD_UNLINK : LC_CMD_RMDIR;
		c->parent = rg_dir(g);
		break;
	case 9:
		c->type = LC_CMD_RENAME;
		c->parent = rg_dir(g);
		c->parent2 = rg_dir(g);
		c->name2 = g->name2;
		c->name2_len = 1;
		c->flags = (uint32_t)rg(g, 3);
		break;
	case 10:
		c->type = LC_CMD_SETATTR;
		c->valid = (uint32_t)rg(g, 64);
		c->mode = 0644;
		c->size = rg(g, 100);
		c->atime_ns = c->mtime_ns = (int64_t)g->now;
		break;
	case 11:
		c->type = LC_CMD_WRITE;
		c->offset = rg(g, 40);
		c->data = g->data;
		c->data_len = (uint32_t)rg(g, sizeof(g->data));
		c->name = NULL;
		c->name_len = 0;
		break;
	case 12: case 13:
		c->type = rg(g, 4) ? LC_CMD_SETXATTR : LC_CMD_REMOVEXATTR;
		c->name = xn[rg(g, 3)];
		c->name_len = (uint32_t)strlen(c->name);
		g->data[0] = (uint8_t)('0' + rg(g, 4));
		c->data = g->data;
		c->data_len = 1;
		break;
	case 14: case 15: case 16: case 17:
		c->type = LC_CMD_FLOCK;
		c->lock_type = (uint8_t)rg(g, 3);
		c->flags = (uint32_t)rg(g, 2);
		break;
	case 18:
		c->type = LC_CMD_SETLK;
		c->lock_type = (uint8_t)rg(g, 3);
		c->start = rg(g, 10);
		c->end = c->start + rg(g, 10);
		c->flags = (uint32_t)rg(g, 2);
		break;
	case 19:
		c->type = rg(g, 2) ? LC_CMD_RELEASE : LC_CMD_FLUSH;
		c->flags = (uint32_t)rg(g, 2);
		break;
	case 20:
		c->type = LC_CMD_OPEN;
		break;
	default:
		c->type = LC_CMD_CANCEL;
		c->target_serial = g->serial[sid] - rg(g, 4);
		break;
	}
	if (c->origin)
		c->serial = ++g->serial[c->origin];
	else
		c->serial = ++g->serial[0];
}

static bool same_usage(const struct lc_state *a, const struct lc_state *b)
{
	struct lc_usage x, y;

	lc_usage_total(a, &x);
	lc_usage_total(b, &y);
	if (x.files != y.files || x.bytes != y.bytes)
		return false;
	for (uint32_t uid = 0; uid < 3; uid++) {
		lc_usage(a, uid, &x);
		lc_usage(b, uid, &y);
		if (x.files != y.files || x.bytes != y.bytes)
			return false;
	}
	return true;
}

static void usage_of(const struct lc_state *s, struct lc_usage u[4])
{
	memset(u, 0, 4 * sizeof(*u));
	lc_usage_total(s, &u[3]);
	for (uint32_t uid = 0; uid < 3; uid++)
		lc_usage(s, uid, &u[uid]);
}

static struct lc_state *reload(const struct lc_state *s)
{
	struct lc_state *t = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;

	if (lc_state_save(s, &buf, &len) == 0 &&
	    lc_state_load(buf, len, &t) != 0)
		t = NULL;
	free(buf);
	return t;
}

/* Every replica that loads a snapshot anywhere in a log and applies the
 * rest reaches the state of the one that applied it all, with the same
 * answers; usage counted on the way equals usage recounted. */
static int replay_seed(uint64_t seed, int steps)
{
	struct rgen g = { .rng = seed * 0x9e3779b97f4a7c15ull + 1,
			  .now = 1000000000ull };
	struct lc_state *ref = lc_state_new(), *tw = NULL;
	struct lc_out o1 = { 0 }, o2 = { 0 };
	int bad = 0;

	struct lc_cmd prev = { 0 };

	for (int i = 0; i < steps && !bad && ref; i++) {
		struct lc_cmd c;
		int r1, r2;

		if (!tw || !rg(&g, 50)) {
			lc_state_free(tw);
			tw = reload(ref);
			if (!tw) {
				bad = 1;
				break;
			}
		}
		/* now and then a late duplicate of an earlier command */
		if (i && !rg(&g, 30))
			c = prev;
		else
			rg_cmd(&g, &c);
		if (!rg(&g, 10))
			prev = c;
		g.index++;
		lc_out_reset(&o1);
		lc_out_reset(&o2);
		r1 = lc_apply(ref, g.index, &c, &o1);
		if (!rg(&g, 3)) {
			/* short of memory: the twin refuses, changes
			 * nothing, and takes the same command again */
			uint64_t h = lc_state_hash(tw);
			struct lc_usage u0[4], u1[4];

			usage_of(tw, u0);
			unit_fail_nth = 1 + (long)rg(&g, 8);
			r2 = lc_apply(tw, g.index, &c, &o2);
			unit_fail_nth = 0;
			usage_of(tw, u1);
			if (r2 == -ENOMEM && (lc_state_hash(tw) != h ||
					      memcmp(u0, u1, sizeof(u0))))
				bad = 6;
			if (r2 == -ENOMEM) {
				lc_out_reset(&o2);
				r2 = lc_apply(tw, g.index, &c, &o2);
			}
		} else {
			r2 = lc_apply(tw, g.index, &c, &o2);
		}
		if (bad)
			;
		else if (r1 != r2 || !same_out(&o1, &o2))
			bad = 2;
		else if (lc_state_hash(ref) != lc_state_hash(tw))
			bad = 4;
		else if (!same_usage(ref, tw))
			bad = 5;
		for (size_t j = 0; j < o1.n; j++)
			if (o1.v[j].ino >= LC_INO_FIRST && g.nino < 32)
				g.ino[g.nino++] = o1.v[j].ino;
			else if (o1.v[j].ino >= LC_INO_FIRST)
				g.ino[rg(&g, 32)] = o1.v[j].ino;
		if (!bad && !rg(&g, 20)) {
			struct lc_state *t = reload(ref);

			if (!t || !same_usage(ref, t))
				bad = 3;
			lc_state_free(t);
		}
		if (bad)   /* 2: answers, 4: state, 5: usage, 3: recount,
			    * 6: a refusal for memory changed something */
			fprintf(stderr, "seed %llu: step %d (type %u): %d\n",
				(unsigned long long)seed, i, c.type, bad);
	}
	lc_out_free(&o1);
	lc_out_free(&o2);
	lc_state_free(tw);
	lc_state_free(ref);
	return bad;
}

static void test_random_logs_replay_equal_from_any_snapshot(void)
{
	/* LC_REPLAY_SEEDS=3000 LC_REPLAY_STEPS=6000 for a longer hunt */
	const char *n = getenv("LC_REPLAY_SEEDS"), *k = getenv("LC_REPLAY_STEPS");
	int seeds = n ? atoi(n) : 40, steps = k ? atoi(k) : 2000;

	for (int s = 0; s < seeds; s++)
		CU_ASSERT_EQUAL(replay_seed((uint64_t)s, steps), 0);
}

static void test_snapshot_round_trip_keeps_everything(void)
{
	struct fx *f = small_world();
	uint8_t *buf = NULL;
	size_t len = 0;
	struct lc_state *c = NULL;
	struct lc_stats s1, s2;

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL_FATAL(lc_state_save(f->s, &buf, &len), 0);
	CU_ASSERT_EQUAL_FATAL(lc_state_load(buf, len, &c), 0);
	CU_ASSERT_EQUAL(lc_state_hash(c), lc_state_hash(f->s));
	CU_ASSERT_EQUAL(lc_next_deadline(c), lc_next_deadline(f->s));
	lc_stats(f->s, &s1);
	lc_stats(c, &s2);
	CU_ASSERT_EQUAL(memcmp(&s1, &s2, sizeof(s1)), 0);
	/* the loaded state goes on exactly like the original */
	{
		struct lc_state *orig = f->s;
		uint64_t a = (uint64_t)lookup_(f, ROOT, "a"), h1, h2;

		release(f, a, 1);
		h1 = lc_state_hash(f->s);
		f->s = c;
		f->index--;
		f->ser[0].serial--;
		release(f, a, 1);
		h2 = lc_state_hash(f->s);
		CU_ASSERT_EQUAL(h1, h2);
		f->s = orig;
	}
	lc_state_free(c);
	free(buf);
	fx_free(f);
}

static void test_snapshot_load_rejects_every_truncation(void)
{
	struct fx *f = small_world();
	uint8_t *buf = NULL;
	size_t len = 0;
	size_t accepted = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL_FATAL(lc_state_save(f->s, &buf, &len), 0);
	for (size_t n = 0; n < len; n++) {
		struct lc_state *c = NULL;
		uint8_t *copy = malloc(n ? n : 1);   /* exact size: ASan sees overreads */

		CU_ASSERT_FATAL(copy != NULL);
		memcpy(copy, buf, n);
		if (lc_state_load(copy, n, &c) == 0) {
			accepted++;
			lc_state_free(c);
		}
		free(copy);
	}
	CU_ASSERT_EQUAL(accepted, 0);
	/* nor a buffer with a byte of junk after it */
	{
		struct lc_state *c = NULL;
		uint8_t *longer = malloc(len + 1);

		CU_ASSERT_FATAL(longer != NULL);
		memcpy(longer, buf, len);
		longer[len] = 0;
		CU_ASSERT_EQUAL(lc_state_load(longer, len + 1, &c), -EINVAL);
		free(longer);
	}
	free(buf);
	fx_free(f);
}

static void test_snapshot_load_survives_byte_flips(void)
{
	struct fx *f = small_world();
	uint8_t *buf = NULL, *copy;
	size_t len = 0, rejected = 0;
	uint64_t rs = 99;

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL_FATAL(lc_state_save(f->s, &buf, &len), 0);
	copy = malloc(len);
	CU_ASSERT_FATAL(copy != NULL);
	for (int i = 0; i < 3000; i++) {
		struct lc_state *c = NULL;
		int flips = 1 + (int)(prng(&rs) % 3);

		memcpy(copy, buf, len);
		while (flips--)
			copy[prng(&rs) % len] ^= (uint8_t)(1 + prng(&rs) % 255);
		if (lc_state_load(copy, len, &c) == 0) {
			/* whatever was accepted must be a usable state */
			uint8_t *b2 = NULL;
			size_t l2 = 0;
			struct lc_stats st;

			(void)lc_state_hash(c);
			lc_stats(c, &st);
			(void)lc_next_deadline(c);
			if (lc_state_save(c, &b2, &l2) == 0)
				free(b2);
			lc_state_free(c);
		} else {
			rejected++;
		}
	}
	/* the header alone (magic, version) makes some flips fatal */
	CU_ASSERT(rejected > 0);
	free(copy);
	free(buf);
	fx_free(f);
}

static void test_snapshot_load_rejects_garbage(void)
{
	static const uint8_t zeros[64];
	uint8_t junk[256];
	uint64_t rs = 7;
	struct lc_state *c = NULL;

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)prng(&rs);
	CU_ASSERT_EQUAL(lc_state_load(zeros, sizeof(zeros), &c), -EINVAL);
	CU_ASSERT_EQUAL(lc_state_load(junk, sizeof(junk), &c), -EINVAL);
	CU_ASSERT_EQUAL(lc_state_load(junk, 0, &c), -EINVAL);
}

/* Encodes `c`, decodes it and checks the fields that matter round-trip. */
static void check_cmd_round_trip(const struct lc_cmd *c)
{
	uint8_t *buf = NULL, *b2 = NULL;
	size_t len = 0, l2 = 0, bad = 0;
	struct lc_cmd d;

	CU_ASSERT_EQUAL_FATAL(lc_cmd_encode(c, &buf, &len), 0);
	CU_ASSERT_EQUAL_FATAL(lc_cmd_decode(buf, len, &d), 0);
	CU_ASSERT_EQUAL(d.type, c->type);
	CU_ASSERT_EQUAL(d.origin, c->origin);
	CU_ASSERT_EQUAL(d.serial, c->serial);
	CU_ASSERT_EQUAL(d.time_ns, c->time_ns);
	CU_ASSERT_EQUAL(d.ino, c->ino);
	CU_ASSERT_EQUAL(d.who.session, c->who.session);
	CU_ASSERT_EQUAL(d.who.owner, c->who.owner);
	CU_ASSERT_EQUAL(d.who.pid, c->who.pid);
	CU_ASSERT_EQUAL(d.lock_type, c->lock_type);
	CU_ASSERT_EQUAL(d.flags, c->flags);
	CU_ASSERT_EQUAL(d.start, c->start);
	CU_ASSERT_EQUAL(d.end, c->end);
	CU_ASSERT_EQUAL(d.name_len, c->name_len);
	if (d.name_len == c->name_len && c->name_len)
		CU_ASSERT(memcmp(d.name, c->name, c->name_len) == 0);
	CU_ASSERT_EQUAL(d.data_len, c->data_len);
	if (d.data_len == c->data_len && c->data_len)
		CU_ASSERT(memcmp(d.data, c->data, c->data_len) == 0);
	/* encoding the decoded command gives the same bytes */
	CU_ASSERT_EQUAL(lc_cmd_encode(&d, &b2, &l2), 0);
	CU_ASSERT(l2 == len && b2 && memcmp(buf, b2, len) == 0);
	free(b2);
	for (size_t n = 0; n < len; n++) {
		uint8_t *copy = malloc(n ? n : 1);

		CU_ASSERT_FATAL(copy != NULL);
		memcpy(copy, buf, n);
		if (lc_cmd_decode(copy, n, &d) != -EINVAL)
			bad++;
		free(copy);
	}
	CU_ASSERT_EQUAL(bad, 0);
	free(buf);
}

static void test_cmd_codec_round_trips_and_rejects_truncation(void)
{
	struct lc_cmd fl = { .type = LC_CMD_FLOCK, .origin = 3, .serial = 77,
			     .time_ns = 123456789, .ino = 42,
			     .who = { 3, 0xdeadbeefcafeull, 4242 },
			     .lock_type = LC_WRLCK, .flags = LC_LK_WAIT };
	struct lc_cmd lk = { .type = LC_CMD_SETLK, .origin = 3, .serial = 78,
			     .ino = 42, .who = { 3, 9, 9 },
			     .lock_type = LC_RDLCK, .start = 10,
			     .end = LC_OFF_MAX };
	struct lc_cmd cr = { .type = LC_CMD_CREATE, .origin = 1, .serial = 1,
			     .parent = 1, .name = "job.lock", .name_len = 8,
			     .mode = 0644, .uid = 1000, .gid = 100,
			     .flags = LC_CREATE_EXCL, .ttl_s = 30 };
	struct lc_cmd wr = { .type = LC_CMD_WRITE, .origin = 1, .serial = 2,
			     .ino = 17, .offset = 5, .data = "hello\0x",
			     .data_len = 7 };
	struct lc_cmd rn = { .type = LC_CMD_RENAME, .origin = 1, .serial = 3,
			     .parent = 1, .name = "a", .name_len = 1,
			     .parent2 = 20, .name2 = "b", .name2_len = 1,
			     .flags = 2 };
	struct lc_cmd so = { .type = LC_CMD_SESSION_OPEN, .origin = 5,
			     .serial = 1, .session = 5, .data = "node5",
			     .data_len = 5 };
	struct lc_cmd tk = { .type = LC_CMD_TICK, .time_ns = UINT64_MAX };

	check_cmd_round_trip(&fl);
	check_cmd_round_trip(&lk);
	check_cmd_round_trip(&cr);
	check_cmd_round_trip(&wr);
	check_cmd_round_trip(&rn);
	check_cmd_round_trip(&so);
	check_cmd_round_trip(&tk);
	{
		uint8_t *buf = NULL;
		size_t len = 0;
		struct lc_cmd d;

		lc_cmd_encode(&rn, &buf, &len);
		lc_cmd_decode(buf, len, &d);
		CU_ASSERT_EQUAL(d.parent2, 20);
		CU_ASSERT(d.name2_len == 1 && d.name2 && d.name2[0] == 'b');
		free(buf);
		lc_cmd_encode(&cr, &buf, &len);
		lc_cmd_decode(buf, len, &d);
		CU_ASSERT_EQUAL(d.ttl_s, 30);
		CU_ASSERT_EQUAL(d.mode, 0644);
		CU_ASSERT_EQUAL(d.uid, 1000);
		CU_ASSERT_EQUAL(d.gid, 100);
		free(buf);
		lc_cmd_encode(&so, &buf, &len);
		lc_cmd_decode(buf, len, &d);
		CU_ASSERT_EQUAL(d.session, 5);
		free(buf);
	}
}

static void test_cmd_decode_rejects_garbage_and_bad_types(void)
{
	struct lc_cmd c = { .type = LC_CMD_NOP, .origin = 1, .serial = 1 }, d;
	uint8_t *buf = NULL, junk[128];
	size_t len = 0;
	uint64_t rs = 3;

	CU_ASSERT_EQUAL(lc_cmd_decode(NULL, 0, &d), -EINVAL);
	for (int i = 0; i < 2000; i++) {
		size_t n = (size_t)(prng(&rs) % sizeof(junk));

		for (size_t j = 0; j < n; j++)
			junk[j] = (uint8_t)prng(&rs);
		(void)lc_cmd_decode(junk, n, &d);   /* must not crash */
	}
	c.type = LC_CMD__COUNT;
	if (lc_cmd_encode(&c, &buf, &len) == 0) {
		CU_ASSERT_EQUAL(lc_cmd_decode(buf, len, &d), -EINVAL);
		free(buf);
	}
}

static void test_invalid_command_type_is_einval(void)
{
	FX;
	struct lc_cmd c = { .type = LC_CMD__COUNT };
	uint64_t h = lc_state_hash(f->s);

	CU_ASSERT_EQUAL(fx_apply(f, &c), -EINVAL);
	CU_ASSERT_EQUAL(f->last_rc, -EINVAL);
	CU_ASSERT_EQUAL(lc_state_hash(f->s), h);
	fx_free(f);
}

/* ======================================================================= */
/* review: edge cases and randomized invariants                             */
/* ======================================================================= */

/* An owner that already holds a range must not queue behind a waiter that
 * is itself waiting for that owner: Linux grants the re-lock or upgrade at
 * once, and queueing it would deadlock the two forever. */
static void test_posix_relock_does_not_wait_behind_its_own_waiter(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 0, 99, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_WRLCK, 0, 0, LC_LK_WAIT),
			LC_PENDING);
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 0, 99, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 50, 199, 0), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-199W");
	/* upgrade of a shared range while a writer waits for it */
	CU_ASSERT_EQUAL(setlk(f, a, 3, LC_RDLCK, 500, 599, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 4, LC_WRLCK, 500, 500, LC_LK_WAIT),
			LC_PENDING);
	CU_ASSERT_EQUAL(setlk(f, a, 3, LC_WRLCK, 500, 599, LC_LK_WAIT), 0);
	/* and the waiters still get their turn once the owners let go */
	CU_ASSERT_EQUAL(flush_(f, a, 1), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 2), "0-0W");
	CU_ASSERT_EQUAL(flush_(f, a, 3), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 4), "500-500W");
	CU_ASSERT_EQUAL(st_waiters(f), 0);
	fx_free(f);
}

/* FIFO still holds for an owner that does not block the earlier waiter. */
static void test_posix_later_request_still_queues_behind_earlier(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_RDLCK, 0, 9, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_WRLCK, 0, 9, LC_LK_WAIT),
			LC_PENDING);
	CU_ASSERT_EQUAL(setlk(f, a, 3, LC_RDLCK, 5, 5, 0), -EAGAIN);
	fx_free(f);
}

static void test_posix_ranges_at_the_end_of_the_offset_space(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 0, LC_OFF_MAX, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_UNLCK, LC_OFF_MAX, LC_OFF_MAX, 0),
			0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-18446744073709551614W");
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_WRLCK, LC_OFF_MAX, LC_OFF_MAX, 0),
			0);
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_UNLCK, 0, LC_OFF_MAX, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, LC_OFF_MAX, LC_OFF_MAX, 0),
			0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-EW");
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_RDLCK, LC_OFF_MAX - 1,
			      LC_OFF_MAX - 1, 0), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1),
			       "0-18446744073709551613W,"
			       "18446744073709551614-18446744073709551614R,"
			       "18446744073709551615-EW");
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_UNLCK, 1, LC_OFF_MAX, 0), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-0W");
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 2, LC_OFF_MAX, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 1, 1, 0), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-EW");
	fx_free(f);
}

/* A per-byte model of POSIX locks on bytes 0..R_N-1, three owners. */
#define R_N 48
static void test_posix_random_ranges_match_a_byte_model(void)
{
	FX;
	uint64_t a = file(f, "a"), seed = 42;
	uint8_t m[4][R_N];
	char want[1024];

	memset(m, 0, sizeof(m));
	for (int step = 0; step < 4000; step++) {
		uint64_t o = 1 + prng(&seed) % 3;
		uint8_t t = (uint8_t)(prng(&seed) % 3);
		uint64_t s0 = prng(&seed) % R_N, len = 1 + prng(&seed) % 12;
		uint64_t e0 = s0 + len - 1 >= R_N ? R_N - 1 : s0 + len - 1;
		bool conflict = false;
		int r;

		for (uint64_t p = 1; p <= 3; p++)
			for (uint64_t b = s0; p != o && t && b <= e0; b++)
				if (m[p][b] && (t == LC_WRLCK ||
						m[p][b] == LC_WRLCK))
					conflict = true;
		r = setlk(f, a, o, t, s0, e0, 0);
		CU_ASSERT_EQUAL(r, conflict ? -EAGAIN : 0);
		if (!conflict)
			for (uint64_t b = s0; b <= e0; b++)
				m[o][b] = t;
		for (uint64_t p = 1; p <= 3; p++) {
			size_t used = 0;

			want[0] = 0;
			for (size_t b = 0; b < R_N;) {
				size_t e = b;

				if (!m[p][b]) {
					b++;
					continue;
				}
				while (e + 1 < R_N && m[p][e + 1] == m[p][b])
					e++;
				used += (size_t)snprintf(want + used,
					sizeof(want) - used, "%s%zu-%zu%c",
					used ? "," : "", b, e,
					m[p][b] == LC_WRLCK ? 'W' : 'R');
				b = e + 1;
			}
			CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, p), want);
		}
	}
	fx_free(f);
}

/* Random flock/POSIX/cancel/release/flush/close traffic: every queued
 * request gets exactly one final answer, nothing is left behind, and the
 * state survives a save/load round trip. */
struct pendset {
	uint64_t o[4096], s[4096];
	size_t n;
	int dup;
};

static bool pend_take(struct pendset *p, uint64_t o, uint64_t s)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->o[i] == o && p->s[i] == s) {
			p->o[i] = p->o[--p->n];
			p->s[i] = p->s[p->n];
			return true;
		}
	return false;
}

static void pend_scan(struct fx *f, struct pendset *p)
{
	for (size_t i = 0; i < fx_ncomp(f); i++) {
		const struct lc_completion *c = fx_comp(f, i);

		if (i == 0) {
			if (c->status == LC_PENDING && p->n < 4096) {
				p->o[p->n] = c->origin;
				p->s[p->n++] = c->serial;
			}
			continue;
		}
		if (c->status == LC_PENDING || !pend_take(p, c->origin,
							  c->serial))
			p->dup++;
	}
}

static uint64_t random_traffic(uint64_t seed, int steps)
{
	FX;
	uint64_t ino[3], h;
	struct pendset *p = calloc(1, sizeof(*p));
	uint8_t *buf;
	size_t len;
	struct lc_state *t;

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	ino[0] = file(f, "a");
	ino[1] = file(f, "b");
	ino[2] = (uint64_t)mkfile_excl(f, ROOT, "c", 0);
	fx_open(f, 2);
	fx_open(f, 3);
	setslots(f, ino[1], "2");
	for (int i = 0; i < steps; i++) {
		uint64_t r = prng(&seed), fi = ino[r % 3], o = 1 + (r >> 8) % 4;
		uint64_t st = (r >> 16) % 20, ln = 1 + (r >> 24) % 10;
		uint32_t w = (r >> 32) & 1 ? LC_LK_WAIT : 0;
		uint8_t ty = (uint8_t)((r >> 40) % 3);

		f->cur = 1 + (r >> 44) % 3;
		f->now += 1000000;
		switch ((r >> 48) % 10) {
		case 0: case 1: case 2:
			flk(f, fi, o, ty, w);
			break;
		case 3: case 4: case 5:
			setlk(f, fi, o, ty, st, (r >> 50) & 1 ? LC_OFF_MAX :
			      st + ln, w);
			break;
		case 6:
			cancel(f, f->last_serial - (r >> 52) % 4);
			break;
		case 7:
			if ((r >> 52) & 1)
				release(f, fi, o);
			else
				flush_(f, fi, o);
			break;
		case 8:
			if ((r >> 52) % 8 == 0) {
				uint64_t sid = f->cur;

				f->cur = 1;
				fx_close(f, sid);
				pend_scan(f, p);
				fx_open(f, sid);
				continue;
			}
			setslots(f, ino[1], (r >> 53) & 1 ? "1" : "3");
			break;
		default:
			if ((r >> 52) % 16 == 0) {
				unlink_(f, ROOT, "c");
				pend_scan(f, p);
				h = (uint64_t)mkfile_excl(f, ROOT, "c",
							  (r >> 56) % 2);
				if ((int64_t)h > 0)
					ino[2] = h;
			} else {
				fx_tick(f);
			}
			break;
		}
		pend_scan(f, p);
	}
	CU_ASSERT_EQUAL(p->dup, 0);
	CU_ASSERT_EQUAL_FATAL(lc_state_save(f->s, &buf, &len), 0);
	CU_ASSERT_EQUAL(lc_state_load(buf, len, &t), 0);
	CU_ASSERT_EQUAL(lc_state_hash(t), lc_state_hash(f->s));
	lc_state_free(t);
	free(buf);
	h = lc_state_hash(f->s);
	for (uint64_t sid = 1; sid <= 3; sid++) {
		fx_close(f, sid);
		pend_scan(f, p);
	}
	CU_ASSERT_EQUAL(p->dup, 0);
	CU_ASSERT_EQUAL(p->n, 0);
	CU_ASSERT_EQUAL(st_waiters(f), 0);
	CU_ASSERT_EQUAL(st_held(f), 0);
	free(p);
	fx_free(f);
	return h;
}

static void test_random_lock_traffic_answers_every_request_once(void)
{
	for (uint64_t seed = 1; seed <= 40; seed++)
		CU_ASSERT_EQUAL(random_traffic(seed, 1500),
				random_traffic(seed, 1500));
}

/* A waiter behind one that waits for its own owner is served when its
 * range frees, even though the queue head stays blocked. */
static void test_posix_waiter_excused_from_the_queue_is_granted(void)
{
	FX;
	uint64_t a = file(f, "a");

	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_RDLCK, 5, 5, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 3, LC_WRLCK, 0, 0, 0), 0);
	CU_ASSERT_EQUAL(setlk(f, a, 2, LC_WRLCK, 0, 9, LC_LK_WAIT),
			LC_PENDING);
	CU_ASSERT_EQUAL(setlk(f, a, 1, LC_WRLCK, 0, 0, LC_LK_WAIT),
			LC_PENDING);
	CU_ASSERT_EQUAL(setlk(f, a, 3, LC_UNLCK, 0, 0, 0), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 1), "0-0W,5-5R");
	CU_ASSERT_EQUAL(nwaiters(f, a), 1);
	CU_ASSERT_EQUAL(flush_(f, a, 1), 0);
	CU_ASSERT_STRING_EQUAL(ranges(f, a, 1, 2), "0-9W");
	fx_free(f);
}

/* A long POSIX queue is not walked for every change: draining 20000
 * waiters one by one stays fast (it took seconds when every change looked
 * at the whole queue). */
static void test_posix_long_queue_drains(void)
{
	FX;
	uint64_t a = file(f, "a");
	uint64_t granted = 0;

	for (uint64_t o = 1; o <= 20000; o++)
		setlk(f, a, o, LC_WRLCK, 0, 0, LC_LK_WAIT);
	CU_ASSERT_EQUAL(st_waiters(f), 19999);
	for (uint64_t o = 1; o <= 20000; o++) {
		ex(f, a, 1000000 + o);
		un(f, a, 1000000 + o);
		flush_(f, a, o);
		granted += fx_ncomp(f) - 1;
	}
	CU_ASSERT_EQUAL(granted, 19999);
	CU_ASSERT_EQUAL(st_waiters(f), 0);
	fx_free(f);
}

/* RENAME_EXCHANGE of a hard-linked file keeps each file's list of names
 * whole (it used to splice the two lists together), so removing every
 * name of one file leaves the other alone. */
static void test_exchange_keeps_hard_link_lists_apart(void)
{
	FX;
	int64_t a, b;
	struct lc_attr at;

	fx_open(f, 2);
	f->cur = 2;
	a = mkfile_excl(f, ROOT, "a1", 0);
	f->cur = 1;
	b = file(f, "b1");
	CU_ASSERT_FATAL(a > 0);
	CU_ASSERT_EQUAL(link_(f, (uint64_t)a, ROOT, "a2"), 0);
	CU_ASSERT_EQUAL(link_(f, (uint64_t)b, ROOT, "b2"), 0);
	CU_ASSERT_EQUAL(rename_(f, ROOT, "a1", ROOT, "b1", 2), 0);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "a1"), b);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "b1"), a);
	CU_ASSERT_EQUAL(fx_close(f, 2), 0);
	CU_ASSERT_STRING_EQUAL(listing(f, ROOT), "a1,b2");
	CU_ASSERT_EQUAL(lc_getattr(f->s, (uint64_t)a, &at), -ENOENT);
	CU_ASSERT_EQUAL(lc_getattr(f->s, (uint64_t)b, &at), 0);
	CU_ASSERT_EQUAL(at.nlink, 2);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "a1"), 0);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "b2"), 0);
	CU_ASSERT_EQUAL(lc_getattr(f->s, (uint64_t)b, &at), -ENOENT);
	CU_ASSERT_STRING_EQUAL(listing(f, ROOT), "");
	fx_free(f);
}

/* An open handle (OPEN, CREATE with LC_CREATE_PIN) keeps an unlinked
 * file alive until RELEASE with LC_RELEASE_UNPIN or its session ends; the
 * pins survive a snapshot. */
static void test_open_handles_pin_unlinked_files(void)
{
	FX;
	uint64_t a = file(f, "a");
	struct lc_cmd o = { .type = LC_CMD_OPEN };
	struct lc_cmd c = { .type = LC_CMD_CREATE, .parent = ROOT, .name = "b",
			    .name_len = 1, .mode = 0644,
			    .flags = LC_CREATE_PIN };
	struct lc_cmd r = { .type = LC_CMD_RELEASE,
			    .flags = LC_RELEASE_UNPIN };
	struct lc_attr at;
	struct lc_state *t;
	uint8_t *buf;
	size_t len;
	int64_t b;

	o.ino = a;
	CU_ASSERT_EQUAL(fx_apply(f, &o), 0);
	o.serial = 0;
	CU_ASSERT_EQUAL(fx_apply(f, &o), 0);      /* two handles */
	CU_ASSERT_EQUAL(fx_apply(f, &c), 0);
	b = lookup_(f, ROOT, "b");
	CU_ASSERT_FATAL(b > 0);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "a"), 0);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "b"), 0);
	CU_ASSERT_EQUAL(lc_getattr(f->s, a, &at), 0);
	CU_ASSERT_EQUAL(at.nlink, 0);
	CU_ASSERT_EQUAL(write_(f, a, 0, "x", 1), 0);
	CU_ASSERT_EQUAL_FATAL(lc_state_save(f->s, &buf, &len), 0);
	CU_ASSERT_EQUAL(lc_state_load(buf, len, &t), 0);
	CU_ASSERT_EQUAL(lc_state_hash(t), lc_state_hash(f->s));
	lc_state_free(t);
	free(buf);
	r.ino = a;
	r.who.owner = 9;
	CU_ASSERT_EQUAL(fx_apply(f, &r), 0);
	CU_ASSERT_EQUAL(lc_getattr(f->s, a, &at), 0);
	r.serial = 0;
	CU_ASSERT_EQUAL(fx_apply(f, &r), 0);
	CU_ASSERT_EQUAL(lc_getattr(f->s, a, &at), -ENOENT);
	/* the session's end closes its handles */
	CU_ASSERT_EQUAL(lc_getattr(f->s, (uint64_t)b, &at), 0);
	fx_open(f, 2);
	f->cur = 2;
	CU_ASSERT_EQUAL(fx_close(f, 1), 0);
	CU_ASSERT_EQUAL(lc_getattr(f->s, (uint64_t)b, &at), -ENOENT);
	o.ino = ROOT;
	o.origin = 0;
	o.serial = 0;
	CU_ASSERT_EQUAL(fx_apply(f, &o), -EINVAL);
	fx_free(f);
}

/* Live heap blocks, counted by the allocator wrappers linked into this
 * test (-Wl,--wrap=malloc,...): lockcore's memory use, observed without
 * looking at its structures. */
extern long unit_live_blocks;

/* A file that was opened and closed costs no more memory than one that
 * never was: the record its pin needed goes with the pin. */
/* A state that cannot be made for memory leaves nothing behind. */
static void test_failed_state_new_frees_what_it_took(void)
{
	for (long n = 1; n <= 6; n++) {
		long before = unit_live_blocks;
		struct lc_state *s;

		unit_fail_nth = n;
		s = lc_state_new();
		unit_fail_nth = 0;
		if (s)
			lc_state_free(s);
		CU_ASSERT_EQUAL(unit_live_blocks, before);
	}
}

static void test_closed_files_cost_no_extra_memory(void)
{
	FX;
	enum { N = 1000 };
	uint64_t ino[N];
	struct lc_cmd o = { .type = LC_CMD_OPEN };
	struct lc_cmd r = { .type = LC_CMD_RELEASE, .flags = LC_RELEASE_UNPIN };
	char name[16];
	long before;

	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		ino[i] = file(f, name);
	}
	/* Warm up the completion buffer and dedup window first. */
	o.ino = r.ino = ino[0];
	CU_ASSERT_EQUAL(fx_apply(f, &o), 0);
	CU_ASSERT_EQUAL(fx_apply(f, &r), 0);
	before = unit_live_blocks;
	for (int i = 0; i < N; i++) {
		o.ino = r.ino = ino[i];
		o.serial = r.serial = 0;
		CU_ASSERT_EQUAL(fx_apply(f, &o), 0);
		CU_ASSERT_EQUAL(fx_apply(f, &r), 0);
	}
	CU_ASSERT_EQUAL(unit_live_blocks, before);
	fx_free(f);
}

/* Names move between dentry records when files are renamed (a first
 * name is stored inside its inode): long and short names, over existing
 * names, across directories and through a snapshot keep paths, link
 * counts and readdir cookies right. */
static int cookie_cb(void *ctx, const char *name, size_t len,
		     const struct lc_attr *a, uint64_t cookie)
{
	char *out = ctx;
	size_t n = strlen(out);

	(void)a;
	snprintf(out + n, 512 - n, "%.*s@%llu ", (int)len, name,
		 (unsigned long long)cookie);
	return 0;
}

static void test_renames_keep_names_paths_and_cookies(void)
{
	FX;
	static const char *longname =
		"a-name-much-longer-than-the-first-one-of-this-file";
	uint64_t a = file(f, "a"), b = file(f, "b");
	int64_t d = mkdir_(f, ROOT, "d");
	char buf[512], path[256];
	struct lc_attr at;
	struct lc_state *t;
	uint8_t *sv;
	size_t len;

	CU_ASSERT_FATAL(d > 0);
	CU_ASSERT_EQUAL(rename_(f, ROOT, "a", ROOT, longname, 0), 0);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, longname), a);
	CU_ASSERT_EQUAL(rename_(f, ROOT, longname, (uint64_t)d, "x", 0), 0);
	CU_ASSERT_EQUAL(lc_path(f->s, a, path, sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(path, "/d/x");
	CU_ASSERT_EQUAL(link_(f, b, (uint64_t)d, "bl"), 0);
	/* over an existing name: it keeps its cookie */
	buf[0] = 0;
	lc_readdir(f->s, (uint64_t)d, 0, cookie_cb, buf);
	CU_ASSERT_STRING_EQUAL(buf, "x@1 bl@2 ");
	CU_ASSERT_EQUAL(rename_(f, ROOT, "b", (uint64_t)d, "x", 0), 0);
	CU_ASSERT_EQUAL(lc_getattr(f->s, a, &at), -ENOENT);
	buf[0] = 0;
	lc_readdir(f->s, (uint64_t)d, 0, cookie_cb, buf);
	CU_ASSERT_STRING_EQUAL(buf, "x@1 bl@2 ");
	CU_ASSERT_EQUAL(lc_getattr(f->s, b, &at), 0);
	CU_ASSERT_EQUAL(at.nlink, 2);
	CU_ASSERT_EQUAL(lc_path(f->s, b, path, sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(path, "/d/x");
	/* a directory and a file trade places across directories */
	CU_ASSERT_EQUAL(rename_(f, (uint64_t)d, "bl", ROOT, longname, 0), 0);
	CU_ASSERT_EQUAL(rename_(f, ROOT, longname, ROOT, "d", 2), 0);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, "d"), b);
	CU_ASSERT_EQUAL(lookup_(f, ROOT, longname), d);
	CU_ASSERT_EQUAL(lc_path(f->s, b, path, sizeof(path)), 0);
	CU_ASSERT_STRING_EQUAL(path, "/a-name-much-longer-than-the-first-one-"
			       "of-this-file/x");
	CU_ASSERT_EQUAL_FATAL(lc_state_save(f->s, &sv, &len), 0);
	CU_ASSERT_EQUAL_FATAL(lc_state_load(sv, len, &t), 0);
	CU_ASSERT_EQUAL(lc_state_hash(t), lc_state_hash(f->s));
	CU_ASSERT_EQUAL(lc_path(t, b, path, sizeof(path)), 0);
	CU_ASSERT_EQUAL(lc_lookup(t, (uint64_t)d, "x", 1, &at), 0);
	CU_ASSERT_EQUAL(at.ino, b);
	lc_state_free(t);
	free(sv);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "d"), 0);
	CU_ASSERT_EQUAL(unlink_(f, (uint64_t)d, "x"), 0);
	CU_ASSERT_EQUAL(lc_getattr(f->s, b, &at), -ENOENT);
	CU_ASSERT_EQUAL(rmdir_(f, ROOT, longname), 0);
	CU_ASSERT_STRING_EQUAL(listing(f, ROOT), "");
	fx_free(f);
}

/* An unlinked file that is still locked lives until its last lock goes,
 * and its waiters are served. */
static void test_unlinked_locked_file_lives_until_unlocked(void)
{
	FX;
	uint64_t a = file(f, "a");
	struct lc_attr at;

	CU_ASSERT_EQUAL(ex(f, a, 1), 0);
	CU_ASSERT_EQUAL(wait_ex(f, a, 2), LC_PENDING);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "a"), 0);
	CU_ASSERT_EQUAL(lc_getattr(f->s, a, &at), 0);
	CU_ASSERT_EQUAL(at.nlink, 0);
	CU_ASSERT_EQUAL(un(f, a, 1), 0);
	CU_ASSERT_EQUAL(fx_ncomp(f), 2);
	CU_ASSERT_EQUAL(lc_getattr(f->s, a, &at), 0);
	CU_ASSERT_EQUAL(release(f, a, 2), 0);
	CU_ASSERT_EQUAL(lc_getattr(f->s, a, &at), -ENOENT);
	fx_free(f);
}

/* A file that lives on after its last name goes (locked, or open) keeps
 * that name and its directory for status, whether the name was its first
 * (stored in the inode) or a later one, removed by unlink or by a rename
 * over it; a file that still has a name has none; it survives a snapshot,
 * and goes with the file. */
static void former_is(struct fx *f, uint64_t ino, uint64_t dir, const char *name)
{
	uint64_t d = 0;
	const char *n = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL_FATAL(lc_former_name(f->s, ino, &d, &n, &len), 0);
	CU_ASSERT_EQUAL(d, dir);
	CU_ASSERT_EQUAL(len, strlen(name));
	CU_ASSERT(n && memcmp(n, name, len) == 0);
}

static void test_unlinked_file_keeps_its_former_name(void)
{
	FX;
	int64_t d = mkdir_(f, ROOT, "d");
	uint64_t a, c = file(f, "c"), e = file(f, "e"), dir;
	const char *n;
	size_t len;
	struct lc_state *t;
	uint8_t *buf;
	size_t blen;

	CU_ASSERT_FATAL(d > 0);
	CU_ASSERT_EQUAL(fx_apply(f, &(struct lc_cmd){ .type = LC_CMD_CREATE, .parent = (uint64_t)d,
					      .name = "a", .name_len = 1, .mode = 0644 }), 0);
	a = (uint64_t)lookup_(f, (uint64_t)d, "a");
	CU_ASSERT_EQUAL(link_(f, a, ROOT, "b"), 0);
	CU_ASSERT_EQUAL(ex(f, a, 1), 0);
	CU_ASSERT_EQUAL(ex(f, c, 2), 0);
	/* a name left: no former name */
	CU_ASSERT_EQUAL(unlink_(f, (uint64_t)d, "a"), 0);
	CU_ASSERT_EQUAL(lc_former_name(f->s, a, &dir, &n, &len), -ENOENT);
	CU_ASSERT_EQUAL(lc_former_name(f->s, e, &dir, &n, &len), -ENOENT);
	/* the last name, a later one (its own record) */
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "b"), 0);
	former_is(f, a, ROOT, "b");
	/* the last name, the first one (in the inode), by a rename over it */
	CU_ASSERT_EQUAL(rename_(f, ROOT, "e", ROOT, "c", 0), 0);
	former_is(f, c, ROOT, "c");
	CU_ASSERT_EQUAL(lc_former_name(f->s, e, &dir, &n, &len), -ENOENT);
	/* the directory may go too */
	CU_ASSERT_EQUAL(link_(f, e, (uint64_t)d, "e2"), 0);
	CU_ASSERT_EQUAL(ex(f, e, 3), 0);
	CU_ASSERT_EQUAL(unlink_(f, ROOT, "c"), 0);
	CU_ASSERT_EQUAL(unlink_(f, (uint64_t)d, "e2"), 0);
	CU_ASSERT_EQUAL(fx_apply(f, &(struct lc_cmd){ .type = LC_CMD_RMDIR, .parent = ROOT,
					      .name = "d", .name_len = 1 }), 0);
	former_is(f, e, (uint64_t)d, "e2");
	/* through a snapshot */
	CU_ASSERT_EQUAL_FATAL(lc_state_save(f->s, &buf, &blen), 0);
	CU_ASSERT_EQUAL_FATAL(lc_state_load(buf, blen, &t), 0);
	CU_ASSERT_EQUAL(lc_state_hash(t), lc_state_hash(f->s));
	CU_ASSERT_EQUAL(lc_former_name(t, a, &dir, &n, &len), 0);
	CU_ASSERT(dir == ROOT && len == 1 && n[0] == 'b');
	lc_state_free(t);
	free(buf);
	/* it goes with the file */
	CU_ASSERT_EQUAL(un(f, a, 1), 0);
	CU_ASSERT_EQUAL(lc_former_name(f->s, a, &dir, &n, &len), -ENOENT);
	CU_ASSERT_EQUAL(un(f, c, 2), 0);
	CU_ASSERT_EQUAL(un(f, e, 3), 0);
	CU_ASSERT_EQUAL(lc_former_name(f->s, c, &dir, &n, &len), -ENOENT);
	CU_ASSERT_EQUAL(lc_getattr(f->s, e, &(struct lc_attr){ 0 }), -ENOENT);
	fx_free(f);
}

/* ======================================================================= */
/* memory                                                                   */
/* ======================================================================= */

static void test_ten_thousand_waiters_leave_nothing_behind(void)
{
	FX;
	uint64_t a = file(f, "a"), granted = 0;
	struct lc_stats st;

	ex(f, a, 1);
	for (uint64_t o = 2; o <= 10001; o++)
		CU_ASSERT_EQUAL(o % 2 ? wait_ex(f, a, o) : wait_sh(f, a, o),
				LC_PENDING);
	CU_ASSERT_EQUAL(st_waiters(f), 10000);
	for (uint64_t o = 1; o <= 10001; o++) {
		release(f, a, o);
		for (size_t i = 1; i < fx_ncomp(f); i++)
			if (fx_comp(f, i)->status == 0)
				granted++;
	}
	CU_ASSERT_EQUAL(granted, 10000);
	lc_stats(f->s, &st);
	CU_ASSERT_EQUAL(st.waiters, 0);
	CU_ASSERT_EQUAL(st.locks_held, 0);
	CU_ASSERT_EQUAL(nholders(f, a), 0);
	fx_free(f);
}

static void test_session_close_with_many_waiters_leaves_nothing(void)
{
	FX;
	uint64_t a = file(f, "a");
	size_t refused = 0;

	fx_open(f, 2);
	ex(f, a, 1);
	f->cur = 2;
	for (uint64_t o = 1; o <= 2000; o++) {
		wait_ex(f, a, o);
		setlk(f, a, o, LC_WRLCK, o, o, LC_LK_WAIT);
	}
	f->cur = 1;
	fx_close(f, 2);
	for (size_t i = 0; i < fx_ncomp(f); i++)
		if (fx_comp(f, i)->status == -ENOLCK)
			refused++;
	CU_ASSERT_EQUAL(refused, 2000);  /* the POSIX ones were granted */
	CU_ASSERT_EQUAL(st_waiters(f), 0);
	CU_ASSERT_EQUAL(st_held(f), 1);
	fx_free(f);
}

/* ======================================================================= */

#define T(fn) UT_TEST(fn)

static const struct ut_test tests[] = {
	T(test_command_without_session_is_enolck),
	T(test_session_open_for_another_session_is_refused),
	T(test_closed_session_cannot_lock),
	T(test_session_name_is_kept),
	T(test_applied_index_follows_the_log),
	T(test_index_that_does_not_grow_is_rejected),
	T(test_stats_count_sessions_and_files),
	T(test_ex_on_free_file_is_granted_with_a_token),
	T(test_ex_held_makes_other_owners_eagain),
	T(test_owner_identity_includes_the_session),
	T(test_shared_locks_are_shared),
	T(test_same_type_again_is_a_no_op),
	T(test_waiter_is_pending_then_granted_on_release),
	T(test_request_result_after_the_fact),
	T(test_waiters_are_served_in_fifo_order),
	T(test_queued_exclusive_holds_back_later_shared),
	T(test_release_grants_all_queued_readers_at_once),
	T(test_unlock_grants_the_next_waiter),
	T(test_release_is_idempotent),
	T(test_release_drops_the_owners_queued_request),
	T(test_conversion_to_ex_drops_the_shared_lock_first),
	T(test_failed_nonblocking_conversion_has_dropped_the_lock),
	T(test_downgrade_lets_queued_readers_in),
	T(test_flock_and_posix_never_conflict),
	T(test_lock_on_missing_inode_fails),
	T(test_locks_lists_holders_then_waiters),
	T(test_locksum_mode_follows_the_holders),
	T(test_foreach_locked_lists_locked_inodes_in_order),
	T(test_slots_limit_shared_holders),
	T(test_slots_exclusive_still_excludes_all),
	T(test_slots_zero_is_unlimited),
	T(test_raising_slots_grants_queued_requests),
	T(test_bad_slots_values_are_einval),
	T(test_posix_unlock_in_the_middle_splits),
	T(test_posix_adjacent_same_type_ranges_merge),
	T(test_posix_different_type_splits),
	T(test_posix_own_locks_never_conflict),
	T(test_posix_readers_share_writers_exclude),
	T(test_posix_getlk_reports_the_conflict),
	T(test_posix_getlk_ignores_flock_and_compatible_readers),
	T(test_posix_start_after_end_is_einval),
	T(test_posix_lock_to_eof_covers_everything_after),
	T(test_posix_waiter_granted_when_range_frees),
	T(test_posix_unlock_of_nothing_is_ok),
	T(test_flush_drops_every_posix_lock_of_the_owner),
	T(test_flush_drops_queued_posix_requests_and_grants),
	T(test_flush_and_release_keep_to_their_own_kind),
	T(test_cancel_of_queued_request_answers_cancel_then_eintr),
	T(test_cancel_moves_the_queue_on),
	T(test_cancel_of_granted_flock_releases_it),
	T(test_cancel_of_grant_made_while_waiting_releases_it),
	T(test_cancel_of_granted_posix_is_enoent),
	T(test_cancel_of_queued_posix_request),
	T(test_cancel_of_unknown_or_finished_is_enoent),
	T(test_cancel_only_reaches_the_same_session),
	T(test_second_excl_create_is_eexist),
	T(test_excl_create_over_persistent_file_is_eexist),
	T(test_plain_create_of_existing_file_returns_its_ino),
	T(test_ephemeral_file_dies_with_its_session_all_names),
	T(test_ephemeral_file_of_other_session_survives),
	T(test_ttl_expires_on_tick_at_deadline),
	T(test_write_refreshes_ttl),
	T(test_touch_refreshes_ttl_chmod_does_not),
	T(test_next_deadline_is_the_earliest),
	T(test_ttl_and_slots_need_owner_or_root),
	T(test_held_file_does_not_expire_until_released),
	T(test_posix_held_or_waited_file_does_not_expire),
	T(test_touch_of_a_parked_file_rearms_it),
	T(test_ephemeral_of_ended_session_stays_while_locked),
	T(test_parked_expiry_survives_a_snapshot),
	T(test_reopened_session_does_not_adopt_its_orphan),
	T(test_clearing_an_unset_ttl_is_the_same_everywhere),
	T(test_expired_open_file_keeps_the_same_former_name_everywhere),
	T(test_posix_grant_is_never_put_off_for_memory),
	T(test_snapshot_with_a_former_name_in_a_file_is_refused),
	T(test_tick_at_the_end_of_time_keeps_parked_files),
	T(test_removing_a_lockfile_releases_it),
	T(test_renamed_lockfile_still_dies_with_its_session),
	T(test_session_can_close_itself),
	T(test_session_close_frees_its_locks_and_grants_others),
	T(test_session_close_refuses_its_waiters_with_enolck),
	T(test_tokens_strictly_increase_per_file),
	T(test_tokens_name_the_granting_log_entry),
	T(test_lc_token_is_the_holders_grant_or_the_latest),
	T(test_reapplied_grant_emits_same_answer_and_changes_nothing),
	T(test_reapplied_queued_request_is_still_pending),
	T(test_reapplied_create_does_not_create_twice),
	T(test_reapplied_error_is_the_same_error),
	T(test_serial_older_than_window_is_estale),
	T(test_root_is_a_sticky_world_writable_dir),
	T(test_root_is_born_with_the_first_command),
	T(test_mkdir_rmdir_and_enotempty),
	T(test_unlink_and_rmdir_check_the_kind),
	T(test_create_needs_an_existing_directory),
	T(test_symlink_and_readlink),
	T(test_hard_links_count_and_survive_unlink),
	T(test_rename_replaces_a_file),
	T(test_rename_noreplace_and_exchange),
	T(test_rename_directory_rules),
	T(test_write_extends_with_zeros_up_to_64k),
	T(test_truncate_shrinks_and_grows_with_zeros),
	T(test_setattr_changes_mode_owner_and_times),
	T(test_readdir_cookies_are_stable_under_changes),
	T(test_readdir_of_a_file_is_enotdir),
	T(test_path_walks_up_to_the_root),
	T(test_reserved_root_names_are_eperm),
	T(test_name_check),
	T(test_bad_names_are_refused_by_commands),
	T(test_user_xattrs_set_get_list_remove),
	T(test_xattr_create_and_replace_flags),
	T(test_xattr_namespace_and_size_rules),
	T(test_same_commands_give_same_states),
	T(test_snapshot_round_trip_keeps_everything),
	T(test_random_logs_replay_equal_from_any_snapshot),
	T(test_snapshot_load_rejects_every_truncation),
	T(test_snapshot_load_survives_byte_flips),
	T(test_snapshot_load_rejects_garbage),
	T(test_cmd_codec_round_trips_and_rejects_truncation),
	T(test_cmd_decode_rejects_garbage_and_bad_types),
	T(test_invalid_command_type_is_einval),
	T(test_posix_relock_does_not_wait_behind_its_own_waiter),
	T(test_posix_later_request_still_queues_behind_earlier),
	T(test_posix_ranges_at_the_end_of_the_offset_space),
	T(test_posix_random_ranges_match_a_byte_model),
	T(test_random_lock_traffic_answers_every_request_once),
	T(test_unlinked_locked_file_lives_until_unlocked),
	T(test_unlinked_file_keeps_its_former_name),
	T(test_renames_keep_names_paths_and_cookies),
	T(test_open_handles_pin_unlinked_files),
	T(test_closed_files_cost_no_extra_memory),
	T(test_failed_state_new_frees_what_it_took),
	T(test_exchange_keeps_hard_link_lists_apart),
	T(test_posix_waiter_excused_from_the_queue_is_granted),
	T(test_posix_long_queue_drains),
	T(test_ten_thousand_waiters_leave_nothing_behind),
	T(test_session_close_with_many_waiters_leaves_nothing),
	T(test_usage_follows_creates_writes_chown_and_unlink),
	T(test_usage_counts_dirs_symlinks_and_survives_a_snapshot),
};

const struct ut_suite ut_suites[] = {
	UT_SUITE("lockcore", tests),
	{ NULL },
};
