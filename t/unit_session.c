/*
 * t/unit_session.c - unit tests of lockcore/session.[ch]: one session's
 * protocol driven alone, with a hand-made clock, leader and log.
 *
 * Each rule is one function returning how many of its checks failed
 * (rule_*), run with a given set of SESSION_BREAK_* bits: with none every
 * rule must hold, and the test `breaks_caught` runs every rule under each
 * breaker alone and asserts that at least one rule then fails, so a
 * breaker that stops breaking anything (or a rule test that stops looking)
 * is seen.  UNIT_SESSION_SHOW=1 prints which rules catch which breaker.
 *
 * It must never pass by itself: every rule asserts on the effects the
 * session queued, and breaks_caught makes each rule test show it can fail.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "lockcore/lc.h"
#include "lockcore/lease.h"
#include "lockcore/session.h"
#include "t/lib/cunit.h"

#define LEASE   1000u
#define MARGIN  250u
#define SELF    10u
#define LEADER  1u
#define OTHER   2u

static const uint64_t voters[] = { LEADER, OTHER, SELF };

/* A host: its clocks, the ids it hands out, and the effects of the last
 * calls (kept until taken). */
struct host {
	uint64_t wall, next_id;
	struct session *s;
	struct session_effect fx[256];
	uint8_t body[256][512];          /* copies of FWD bodies */
	size_t nfx;
	unsigned fails;                  /* checks failed in this rule */
	bool id_fails;                   /* new_id fails */
	int done_count;
};

#define CHECK(h, cond) do { if (!(cond)) { (h)->fails++; if (getenv("UNIT_SESSION_SHOW")) fprintf(stderr, "check failed: line %d: %s\n", __LINE__, #cond); } } while (0)

/* ---- running out of memory -------------------------------------------------
 * The test links with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc: while
 * fail_allocs is set, the allocations it names fail (CUnit allocates too:
 * rules clear it before they return). */

#define FAIL_REALLOC 0x1u            /* realloc fails (the effect queue) */
#define FAIL_ALL     0x7u            /* malloc, calloc and realloc fail */

static unsigned fail_allocs;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n)
{
	return (fail_allocs & 0x2u) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return (fail_allocs & 0x4u) ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	return (fail_allocs & FAIL_REALLOC) ? NULL : __real_realloc(p, n);
}

static uint64_t h_wall(void *ctx)
{
	struct host *h = ctx;

	return h->wall += 1000;
}

static int h_new_id(void *ctx, uint64_t *id)
{
	struct host *h = ctx;

	if (h->id_fails)
		return -EAGAIN;
	*id = h->next_id++;
	return 0;
}

/* Pops every effect queued so far (bodies copied: they live only until
 * the next call). */
static void take(struct host *h)
{
	struct session_effect e;

	while (session_next(h->s, &e)) {
		if (h->nfx == 256)
			abort();
		if (e.kind == SE_SEND && e.msg.body && e.msg.len <= sizeof(h->body[0])) {
			memcpy(h->body[h->nfx], e.msg.body, e.msg.len);
			e.msg.body = h->body[h->nfx];
		}
		if (e.kind == SE_PROPOSE && e.len <= sizeof(h->body[0])) {
			memcpy(h->body[h->nfx], e.buf, e.len);
			e.buf = h->body[h->nfx];
		}
		h->fx[h->nfx++] = e;
	}
}

static void clear(struct host *h)
{
	take(h);
	h->nfx = 0;
}

/* The n-th effect of a kind (and message kind for SE_SEND), or NULL. */
static const struct session_effect *find(struct host *h, uint8_t kind, uint8_t mkind,
					 unsigned nth)
{
	take(h);
	for (size_t i = 0; i < h->nfx; i++)
		if (h->fx[i].kind == kind && (kind != SE_SEND || h->fx[i].msg.kind == mkind) &&
		    nth-- == 0)
			return &h->fx[i];
	return NULL;
}

static size_t count(struct host *h, uint8_t kind, uint8_t mkind)
{
	size_t k = 0;

	while (find(h, kind, mkind, (unsigned)k))
		k++;
	return k;
}

/* The serial of the n-th FWD sent. */
static uint64_t fwd_serial(struct host *h, unsigned nth)
{
	const struct session_effect *e = find(h, SE_SEND, SM_FWD, nth);

	return e ? e->msg.serial : 0;
}

static void done_cb(void *ctx, const struct lc_completion *c)
{
	(void)ctx;
	(void)c;
}

static void read_cb(void *ctx, int status)
{
	(void)ctx;
	(void)status;
}

static struct session *mk(struct host *h, unsigned breaks, bool alone)
{
	struct session_config c = {
		.name = "n1", .lease_ms = LEASE, .margin_ms = MARGIN,
		.min_lease_ms = 500, .op_timeout_ms = 3000, .resend_ms = 200,
		.resend_acked_ms = 1000, .self_id = alone ? 1 : SELF,
		.voters = alone ? NULL : voters, .n_voters = alone ? 0 : 3,
		.wall_ns = h_wall, .new_id = h_new_id, .host = h, .breaks = breaks };

	memset(h, 0, sizeof(*h));
	h->wall = 1000000000ull;
	h->next_id = 0x100;
	h->s = session_new(&c);
	return h->s;
}

/* Applies a completion of our session. */
static void complete(struct host *h, uint64_t serial, int status, uint64_t now)
{
	struct lc_completion c = { .origin = session_id(h->s), .serial = serial,
				   .status = status };
	struct lc_out out = { .v = &c, .n = 1, .cap = 1 };

	session_applied(h->s, NULL, &out, now);
}

/* The current session's SESSION_OPEN (serial 1) applied, answered 0. */
static void apply_open(struct host *h, uint64_t now)
{
	struct lc_cmd open = { .type = LC_CMD_SESSION_OPEN, .serial = 1 };
	struct lc_completion c = { .serial = 1, .status = 0 };
	struct lc_out out = { .v = &c, .n = 1, .cap = 1 };

	open.origin = open.session = c.origin = session_id(h->s);
	session_applied(h->s, &open, &out, now);
}

/* A follower of LEADER with its session open at `now` (the open sent at
 * now and applied at once). */
static struct session *open_follower(struct host *h, unsigned breaks, uint64_t now)
{
	if (!mk(h, breaks, false))
		return NULL;
	(void)session_set_role(h->s, false, LEADER);
	if (session_open(h->s, now) < 0)
		return NULL;
	apply_open(h, now);
	clear(h);
	return h->s;
}

static uint64_t submit_lock(struct host *h, uint8_t type, uint64_t owner, bool wait,
			    uint64_t now)
{
	struct lc_cmd c = { .type = LC_CMD_FLOCK, .ino = 5, .lock_type = type,
			    .who = { .session = session_id(h->s), .owner = owner },
			    .flags = wait ? LC_LK_WAIT : 0 };
	uint64_t serial = 0;

	if (session_submit(h->s, &c, done_cb, h, &serial, now) < 0)
		return 0;
	return serial;
}

static uint64_t submit_mkdir(struct host *h, const char *name, uint64_t now)
{
	struct lc_cmd c = { .type = LC_CMD_MKDIR, .parent = LC_INO_ROOT, .name = name,
			    .name_len = (uint32_t)strlen(name), .mode = 0755 };
	uint64_t serial = 0;

	if (session_submit(h->s, &c, done_cb, h, &serial, now) < 0)
		return 0;
	return serial;
}

/* ---- the rules ------------------------------------------------------------ */

/* Serials: the open is 1, then one each, stamped into the command. */
static unsigned rule_serials(unsigned breaks)
{
	struct host h;
	struct lc_cmd cmd;
	const struct session_effect *e;

	if (!open_follower(&h, breaks, 1000))
		return 100;
	CHECK(&h, submit_mkdir(&h, "a", 1000) == 2);
	CHECK(&h, submit_mkdir(&h, "b", 1000) == 3);
	e = find(&h, SE_SEND, SM_FWD, 1);
	CHECK(&h, e && e->to == LEADER && e->msg.serial == 3 &&
		  e->msg.session == session_id(h.s));
	CHECK(&h, e && lc_cmd_decode(e->msg.body, e->msg.len, &cmd) == 0 &&
		  cmd.serial == 3 && cmd.origin == session_id(h.s));
	session_free(h.s);
	return h.fails;
}

/* -ESTALE for a request the log never showed: sent again under a new
 * serial, and answered under it; -ESTALE for one it showed: ignored. */
static unsigned rule_reserial(unsigned breaks)
{
	struct host h;
	struct lc_cmd cmd;
	const struct session_effect *e;
	uint64_t s2;

	if (!open_follower(&h, breaks, 1000))
		return 100;
	s2 = submit_mkdir(&h, "a", 1000);
	clear(&h);
	complete(&h, s2, -ESTALE, 1100);
	CHECK(&h, count(&h, SE_DONE, 0) == 0);
	e = find(&h, SE_SEND, SM_FWD, 0);
	CHECK(&h, e && e->msg.serial == s2 + 1);
	CHECK(&h, e && lc_cmd_decode(e->msg.body, e->msg.len, &cmd) == 0 &&
		  cmd.serial == s2 + 1);
	clear(&h);
	complete(&h, s2 + 1, 0, 1200);
	e = find(&h, SE_DONE, 0, 0);
	CHECK(&h, e && e->c.status == 0 && e->ctx == &h);
	/* the next request takes the next serial */
	CHECK(&h, submit_mkdir(&h, "b", 1200) == s2 + 2);
	session_free(h.s);
	return h.fails;
}

/* A lock waits for an earlier release of its owner to be in the log. */
static unsigned rule_unlock_before(unsigned breaks)
{
	struct host h;
	uint64_t un, lk, other;

	if (!open_follower(&h, breaks, 1000))
		return 100;
	un = submit_lock(&h, LC_UNLCK, 7, false, 1000);
	lk = submit_lock(&h, LC_WRLCK, 7, false, 1000);
	other = submit_lock(&h, LC_WRLCK, 8, false, 1000);
	CHECK(&h, count(&h, SE_SEND, SM_FWD) == 2);
	CHECK(&h, fwd_serial(&h, 0) == un && fwd_serial(&h, 1) == other);
	/* the resend timer does not send it either */
	clear(&h);
	{
		struct session_in in = { .now = 1300 };

		session_tick(h.s, &in, false);
	}
	CHECK(&h, fwd_serial(&h, 0) == un);
	CHECK(&h, count(&h, SE_SEND, SM_FWD) == 2);       /* un and other again */
	clear(&h);
	complete(&h, un, 0, 1400);
	CHECK(&h, find(&h, SE_DONE, 0, 0) != NULL);
	CHECK(&h, fwd_serial(&h, 0) == lk);
	session_free(h.s);
	return h.fails;
}

/* A release sent again under a new serial (-ESTALE: it never ran) still
 * goes before a lock of its owner submitted after it: the lock is not sent
 * until the release is in the log. */
static unsigned rule_unlock_before_reserial(unsigned breaks)
{
	struct host h;
	struct session_in in = { .now = 1300 };
	uint64_t un, lk;

	if (!open_follower(&h, breaks, 1000))
		return 100;
	un = submit_lock(&h, LC_UNLCK, 7, false, 1000);
	lk = submit_lock(&h, LC_WRLCK, 7, true, 1000);
	clear(&h);
	complete(&h, un, -ESTALE, 1100);
	CHECK(&h, count(&h, SE_SEND, SM_FWD) == 1 && fwd_serial(&h, 0) == lk + 1);
	clear(&h);
	session_tick(h.s, &in, false);
	CHECK(&h, count(&h, SE_SEND, SM_FWD) == 1 && fwd_serial(&h, 0) == lk + 1);
	CHECK(&h, session_wake_at(h.s, in.now) > in.now);
	clear(&h);
	complete(&h, lk + 1, 0, 1400);
	CHECK(&h, count(&h, SE_SEND, SM_FWD) == 1 && fwd_serial(&h, 0) == lk);
	session_free(h.s);
	return h.fails;
}

/* Resend after resend_ms, after resend_acked_ms once acknowledged, and at
 * once to a new leader. */
static unsigned rule_resend(unsigned breaks)
{
	struct host h;
	struct session_in in = { 0 };
	struct session_msg ack = { .kind = SM_FWD_ACK, .ok = 1 };
	struct session_msg ka = { .kind = SM_KA_ACK, .ok = 1, .serial = LEASE };
	const struct session_effect *e;
	uint64_t s2;

	if (!open_follower(&h, breaks, 1000))
		return 100;
	s2 = submit_mkdir(&h, "a", 1000);
	clear(&h);
	CHECK(&h, session_wake_at(h.s, 1000) == 1200);
	in.now = 1150;
	session_tick(h.s, &in, false);
	CHECK(&h, count(&h, SE_SEND, SM_FWD) == 0);
	in.now = 1200;
	session_tick(h.s, &in, false);
	CHECK(&h, fwd_serial(&h, 0) == s2);
	clear(&h);
	ack.session = session_id(h.s);
	ack.serial = s2;
	ack.stamp = 1200;
	session_on_msg(h.s, LEADER, &ack, &in);
	in.now = 1400;
	session_tick(h.s, &in, false);
	CHECK(&h, count(&h, SE_SEND, SM_FWD) == 0);
	/* (the session kept alive meanwhile) */
	ka.session = session_id(h.s);
	ka.stamp = 2000;
	in.now = 2000;
	session_on_msg(h.s, LEADER, &ka, &in);
	in.now = 2199;
	session_tick(h.s, &in, false);
	CHECK(&h, count(&h, SE_SEND, SM_FWD) == 0);
	in.now = 2200;
	session_tick(h.s, &in, false);
	CHECK(&h, fwd_serial(&h, 0) == s2);
	clear(&h);
	/* a new leader: at once, to it */
	CHECK(&h, session_set_role(h.s, false, OTHER));
	session_resend(h.s, 2210);
	e = find(&h, SE_SEND, SM_FWD, 0);
	CHECK(&h, e && e->to == OTHER && e->msg.serial == s2);
	clear(&h);
	/* leading: proposed locally, not forwarded */
	(void)session_set_role(h.s, true, SELF);
	session_resend(h.s, 2220);
	e = find(&h, SE_PROPOSE, 0, 0);
	CHECK(&h, e && e->serial == s2 && e->len > 0);
	CHECK(&h, count(&h, SE_SEND, SM_FWD) == 0);
	session_free(h.s);
	return h.fails;
}

/* The lease view lapses: every request -ENOLCK (SE_DONE before SE_LOST),
 * except a blocking lock the log never showed, which moves to the new
 * session once it is open. */
static unsigned rule_give_up(unsigned breaks)
{
	struct host h;
	struct session_in in = { 0 };
	struct lc_cmd cmd;
	const struct session_effect *e, *lost;
	uint64_t old, mk_s, wait_s;

	if (!open_follower(&h, breaks, 1000))
		return 100;
	old = session_id(h.s);
	mk_s = submit_mkdir(&h, "a", 1000);
	wait_s = submit_lock(&h, LC_WRLCK, 7, true, 1000);
	clear(&h);
	in.now = 1000 + LEASE - MARGIN;
	session_tick(h.s, &in, false);
	e = find(&h, SE_DONE, 0, 0);
	lost = find(&h, SE_LOST, 0, 0);
	CHECK(&h, e && e->c.serial == mk_s && e->c.status == -ENOLCK && e->c.origin == old);
	CHECK(&h, count(&h, SE_DONE, 0) == 1);
	CHECK(&h, lost && lost->session == old && e && e < lost);
	CHECK(&h, session_id(h.s) != old && !session_is_open(h.s));
	CHECK(&h, session_lost_count(h.s) == 1);
	/* only the new open goes out until it is applied */
	CHECK(&h, count(&h, SE_SEND, SM_FWD) == 1 && fwd_serial(&h, 0) == 1);
	clear(&h);
	apply_open(&h, in.now);
	in.now += 10;
	session_tick(h.s, &in, false);
	e = find(&h, SE_SEND, SM_FWD, 0);
	CHECK(&h, e && e->msg.session == session_id(h.s) && e->msg.serial == 2);
	CHECK(&h, e && lc_cmd_decode(e->msg.body, e->msg.len, &cmd) == 0 &&
		  cmd.who.session == session_id(h.s) && cmd.who.owner == 7 &&
		  (cmd.flags & LC_LK_WAIT));
	(void)wait_s;
	session_free(h.s);
	return h.fails;
}

/* The cluster closes our session (a leader-made SESSION_CLOSE applied):
 * given up before it is applied. */
static unsigned rule_closed_under_us(unsigned breaks)
{
	struct host h;
	struct lc_cmd close = { .type = LC_CMD_SESSION_CLOSE };
	uint64_t old;

	if (!open_follower(&h, breaks, 1000))
		return 100;
	old = session_id(h.s);
	(void)submit_mkdir(&h, "a", 1000);
	clear(&h);
	close.session = old;
	CHECK(&h, session_entry(h.s, &close, 1100));
	CHECK(&h, find(&h, SE_LOST, 0, 0) && find(&h, SE_DONE, 0, 0));
	CHECK(&h, session_id(h.s) != old);
	session_free(h.s);
	return h.fails;
}

/* A grant applied after our view ran out is not handed out. */
static unsigned rule_no_expired_grant(unsigned breaks)
{
	struct host h;
	uint64_t lk;
	const struct session_effect *e;
	unsigned fails;

	if (!open_follower(&h, breaks, 1000))
		return 100;
	lk = submit_lock(&h, LC_WRLCK, 7, false, 1000);
	clear(&h);
	/* a pause: no tick until long after the lease */
	complete(&h, lk, 0, 1000 + 2 * LEASE);
	e = find(&h, SE_DONE, 0, 0);
	CHECK(&h, e && e->c.status == -ENOLCK);
	CHECK(&h, find(&h, SE_LOST, 0, 0) != NULL);
	session_free(h.s);
	fails = h.fails;
	/* halted (stopping): not handed out either */
	if (!open_follower(&h, breaks, 1000))
		return fails + 100;
	lk = submit_lock(&h, LC_WRLCK, 7, false, 1000);
	clear(&h);
	session_halt(h.s);
	complete(&h, lk, 0, 1000 + 2 * LEASE);
	CHECK(&h, count(&h, SE_DONE, 0) == 0);
	session_free(h.s);
	return fails + h.fails;
}

/* Replaced by a snapshot: each request is looked up in the new state. */
static unsigned rule_resolve_after_install(unsigned breaks)
{
	struct host h;
	struct lc_state *st = lc_state_new();
	struct lc_out out = { 0 };
	struct lc_cmd open = { .type = LC_CMD_SESSION_OPEN, .serial = 1, .data = "n1",
			       .data_len = 2 };
	struct lc_cmd mkd = { .type = LC_CMD_MKDIR, .parent = LC_INO_ROOT, .name = "a",
			      .name_len = 1, .mode = 0755 };
	const struct session_effect *e;
	uint64_t s2, s3;

	if (!st || !open_follower(&h, breaks, 1000))
		return 100;
	s2 = submit_mkdir(&h, "a", 1000);
	s3 = submit_mkdir(&h, "b", 1000);
	clear(&h);
	/* the leader's state ran s2 (we never saw it), not s3 */
	open.origin = open.session = session_id(h.s);
	mkd.origin = session_id(h.s);
	mkd.serial = s2;
	mkd.time_ns = h.wall;
	if (lc_apply(st, 1, &open, &out) < 0 || (lc_out_reset(&out), 0) ||
	    lc_apply(st, 2, &mkd, &out) < 0)
		h.fails += 100;
	lc_out_free(&out);
	session_installed(h.s, st, 1100);
	e = find(&h, SE_DONE, 0, 0);
	CHECK(&h, e && e->c.serial == s2 && e->c.status == 0 && e->c.ino > LC_INO_ROOT);
	CHECK(&h, count(&h, SE_DONE, 0) == 1);
	CHECK(&h, session_pending(h.s) == 1);            /* s3 still sent */
	(void)s3;
	lc_state_free(st);
	session_free(h.s);
	return h.fails;
}

/* Keepalives every lease / 4 to every other voter; jeopardy after
 * lease / 3 without an ack (then every lease / 10), or while the link is
 * down; an ack restores OK; expiry at lease - margin. */
/* Opened late (its open was first sent lease / 2 before the log showed
 * it, as when a node waits for a cluster to form): the view is in jeopardy
 * from the start, so keepalives go every lease / 10 at once, not after a
 * calm lease / 4. */
static unsigned keepalive_opened_late(unsigned breaks)
{
	struct host h;
	struct session_in in = { .now = 1000 + LEASE / 2 };

	if (!mk(&h, breaks, false))
		return 100;
	(void)session_set_role(h.s, false, LEADER);
	if (session_open(h.s, 1000) < 0)
		return 100;
	apply_open(&h, in.now);
	clear(&h);
	CHECK(&h, session_state(h.s, in.now) == LEASE_JEOPARDY);
	in.now += LEASE / 10;
	session_tick(h.s, &in, false);
	CHECK(&h, count(&h, SE_SEND, SM_KA) == 2);
	session_free(h.s);
	return h.fails;
}

static unsigned rule_keepalive(unsigned breaks)
{
	struct host h;
	struct session_in in = { 0 };
	struct session_msg ack = { .kind = SM_KA_ACK, .ok = 1, .serial = LEASE };
	const struct session_effect *e;

	if (!open_follower(&h, breaks, 1000))
		return 100;
	CHECK(&h, session_state(h.s, 1000) == LEASE_OK);
	CHECK(&h, session_wake_at(h.s, 1000) == 1000 + LEASE / 4);
	in.now = 1000 + LEASE / 4 - 1;
	session_tick(h.s, &in, false);
	CHECK(&h, count(&h, SE_SEND, SM_KA) == 0);
	in.now = 1000 + LEASE / 4;
	session_tick(h.s, &in, false);
	CHECK(&h, count(&h, SE_SEND, SM_KA) == 2);       /* LEADER and OTHER */
	e = find(&h, SE_SEND, SM_KA, 0);
	CHECK(&h, e && e->msg.session == session_id(h.s) && e->msg.serial == LEASE &&
		  e->to != SELF);
	clear(&h);
	in.now = 1000 + LEASE / 3 + 1;
	CHECK(&h, session_state(h.s, in.now) == LEASE_JEOPARDY);
	session_tick(h.s, &in, false);      /* due at 1000 + 2 * LEASE / 4 */
	CHECK(&h, count(&h, SE_SEND, SM_KA) == 0);
	in.now = 1000 + LEASE / 2;
	session_tick(h.s, &in, false);
	CHECK(&h, count(&h, SE_SEND, SM_KA) == 2);
	clear(&h);
	in.now += LEASE / 10;
	session_tick(h.s, &in, false);
	CHECK(&h, count(&h, SE_SEND, SM_KA) == 2);       /* jeopardy: lease / 10 */
	clear(&h);
	/* acknowledged: ok again, counted from the send time */
	ack.session = session_id(h.s);
	ack.stamp = in.now;
	session_on_msg(h.s, LEADER, &ack, &in);
	CHECK(&h, session_state(h.s, in.now) == LEASE_OK);
	/* an ack from a non-voter counts for nothing */
	ack.stamp = in.now + 100;
	session_on_msg(h.s, 77, &ack, &in);
	CHECK(&h, session_state(h.s, in.now + LEASE / 3 + 1) == LEASE_JEOPARDY);
	/* the link down: jeopardy at once */
	session_link(h.s, SESSION_LINK_DOWN, in.now);
	CHECK(&h, session_state(h.s, in.now) == LEASE_JEOPARDY);
	session_link(h.s, SESSION_LINK_UP, in.now);
	CHECK(&h, count(&h, SE_SEND, SM_KA) == 2);       /* at once when back */
	CHECK(&h, session_state(h.s, in.now) == LEASE_OK);
	clear(&h);
	/* no ack: expired at ack + lease - margin, and sticky */
	CHECK(&h, session_state(h.s, in.now + LEASE - MARGIN - 1) != LEASE_EXPIRED);
	CHECK(&h, session_state(h.s, in.now + LEASE - MARGIN) == LEASE_EXPIRED);
	CHECK(&h, session_state(h.s, in.now) == LEASE_EXPIRED);
	session_free(h.s);
	return h.fails + keepalive_opened_late(breaks);
}

/* A leader's shorter lease rules our view. */
static unsigned rule_shorter_lease(unsigned breaks)
{
	struct host h;
	struct session_in in = { .now = 1100 };
	struct session_msg ack = { .kind = SM_KA_ACK, .ok = 0, .serial = 600 };

	if (!open_follower(&h, breaks, 1000))
		return 100;
	CHECK(&h, session_on_msg(h.s, LEADER, &ack, &in) == SESSION_LEASE_LOWERED);
	CHECK(&h, session_view_lease(h.s) == 600);
	ack.serial = 100;                  /* below min_lease_ms: ignored */
	CHECK(&h, session_on_msg(h.s, LEADER, &ack, &in) == 0);
	CHECK(&h, session_state(h.s, 1000 + 600) == LEASE_EXPIRED);
	session_free(h.s);
	return h.fails;
}

/* A read barrier is answered once the applied index reaches the index the
 * leader gave, or -ETIMEDOUT; at once alone or leading under a lease. */
/* A restarted node's session starts its read ids again: a late answer to
 * a read its earlier incarnation sent (same id, an older stamp) carries an
 * index from before our barrier was asked and must not satisfy it. */
static unsigned read_after_restart(unsigned breaks)
{
	struct host h;
	struct session_in in = { .now = 5000, .applied = 20 };
	struct session_msg ack = { .kind = SM_READ_ACK, .serial = 1, .session = 10,
				   .stamp = 1000 };
	const struct session_effect *e;
	int x;

	if (!open_follower(&h, breaks, 5000))
		return 100;
	CHECK(&h, session_read(h.s, read_cb, &x, &in) == 0);
	e = find(&h, SE_SEND, SM_READ, 0);
	CHECK(&h, e && e->msg.serial == 1 && e->msg.stamp == 5000);
	clear(&h);
	session_on_msg(h.s, LEADER, &ack, &in);           /* the old incarnation's */
	CHECK(&h, count(&h, SE_READ, 0) == 0);
	ack.stamp = 5000;                                 /* ours: index 30 */
	ack.session = 30;
	session_on_msg(h.s, LEADER, &ack, &in);
	CHECK(&h, count(&h, SE_READ, 0) == 0);            /* applied 20 < 30 */
	in.applied = 30;
	session_reads_check(h.s, &in);
	CHECK(&h, count(&h, SE_READ, 0) == 1);
	session_free(h.s);
	return h.fails;
}

static unsigned rule_read_barrier(unsigned breaks)
{
	struct host h;
	struct session_in in = { .now = 1000, .applied = 40 };
	struct session_msg ack = { .kind = SM_READ_ACK };
	const struct session_effect *e;
	unsigned fails;
	int x;

	if (!open_follower(&h, breaks, 1000))
		return 100;
	CHECK(&h, session_read(h.s, read_cb, &x, &in) == 0);
	e = find(&h, SE_SEND, SM_READ, 0);
	CHECK(&h, e && e->to == LEADER && e->msg.serial == 1);
	clear(&h);
	/* a second barrier while one is in flight: no second read yet */
	CHECK(&h, session_read(h.s, read_cb, &x, &in) == 0);
	CHECK(&h, count(&h, SE_SEND, SM_READ) == 0);
	ack.serial = 1;
	ack.session = 50;
	ack.stamp = 1000;                                /* the leader echoes it */
	session_on_msg(h.s, LEADER, &ack, &in);
	CHECK(&h, count(&h, SE_READ, 0) == 0);           /* applied 40 < 50 */
	/* the second needs a read sent after it was asked */
	e = find(&h, SE_SEND, SM_READ, 0);
	CHECK(&h, e && e->msg.serial == 2);
	clear(&h);
	in.applied = 50;
	session_reads_check(h.s, &in);
	e = find(&h, SE_READ, 0, 0);
	CHECK(&h, e && e->status == 0 && e->ctx == &x);
	CHECK(&h, count(&h, SE_READ, 0) == 1);
	clear(&h);
	/* unanswered: -ETIMEDOUT after op_timeout_ms */
	in.now = 1000 + 3000;
	session_reads_check(h.s, &in);
	e = find(&h, SE_READ, 0, 0);
	CHECK(&h, e && e->status == -ETIMEDOUT);
	clear(&h);
	in.lead_ok = true;
	CHECK(&h, session_read(h.s, read_cb, &x, &in) == 1);
	session_free(h.s);
	fails = h.fails;
	if (!mk(&h, breaks, true))
		return fails + 100;
	in.lead_ok = false;
	CHECK(&h, session_read(h.s, read_cb, &x, &in) == 1);
	session_free(h.s);
	return fails + h.fails + read_after_restart(breaks);
}

/* Redirects: an answer naming another leader moves our sends to it. */
static unsigned rule_redirect(unsigned breaks)
{
	struct host h;
	struct session_in in = { .now = 1000 };
	struct session_msg nack = { .kind = SM_FWD_ACK, .ok = 0, .leader = OTHER };
	const struct session_effect *e;
	uint64_t s2;

	if (!open_follower(&h, breaks, 1000))
		return 100;
	s2 = submit_mkdir(&h, "a", 1000);
	clear(&h);
	nack.session = session_id(h.s);
	nack.serial = s2;
	session_on_msg(h.s, LEADER, &nack, &in);
	e = find(&h, SE_SEND, SM_FWD, 0);
	CHECK(&h, e && e->to == OTHER && e->msg.serial == s2);
	session_free(h.s);
	return h.fails;
}

/* Alone: proposed locally; a refusal for memory is sent again by the
 * timer; -E2BIG is the answer; a held release is submitted again. */
static unsigned rule_alone(unsigned breaks)
{
	struct host h;
	struct session_in in = { .now = 1000 };
	const struct session_effect *e;
	uint64_t s2;

	if (!mk(&h, breaks, true))
		return 100;
	(void)session_set_role(h.s, true, 1);
	CHECK(&h, session_open(h.s, 1000) == 0);
	e = find(&h, SE_PROPOSE, 0, 0);
	CHECK(&h, e && e->serial == 1);
	apply_open(&h, 1000);
	e = find(&h, SE_OPENED, 0, 0);
	CHECK(&h, e && e->status == 0);
	clear(&h);
	s2 = submit_mkdir(&h, "a", 1000);
	CHECK(&h, find(&h, SE_PROPOSE, 0, 0) != NULL);
	session_proposed(h.s, s2, -ENOMEM, 1000);
	CHECK(&h, session_wants_timer(h.s));
	clear(&h);
	in.now = 1200;
	session_tick(h.s, &in, false);
	e = find(&h, SE_PROPOSE, 0, 0);
	CHECK(&h, e && e->serial == s2);
	session_proposed(h.s, s2, -E2BIG, 1200);
	e = find(&h, SE_DONE, 0, 0);
	CHECK(&h, e && e->c.status == -E2BIG);
	CHECK(&h, session_pending(h.s) == 0);
	session_free(h.s);
	return h.fails;
}

/* The leader's answers: FWD, KA and READ. */
static unsigned rule_leader_answers(unsigned breaks)
{
	struct lc_state *st = lc_state_new();
	struct lease_table t;
	struct lc_out out = { 0 };
	struct lc_cmd open = { .type = LC_CMD_SESSION_OPEN, .origin = 0x55, .serial = 1,
			       .session = 0x55, .data = "n2", .data_len = 2 };
	struct lc_cmd cmd = { .type = LC_CMD_MKDIR, .origin = 0x55, .serial = 2,
			      .parent = LC_INO_ROOT, .name = "a", .name_len = 1 };
	struct session_leader L = { .leading = true, .lease_valid = true, .leader = SELF,
				    .lease_ms = LEASE, .commit_index = 9 };
	struct session_msg m = { 0 }, a;
	uint8_t *buf;
	size_t len;
	unsigned fails = 0;
	uint64_t ex[4];

	(void)breaks;
	if (!st || lc_apply(st, 1, &open, &out) < 0 || lc_cmd_encode(&cmd, &buf, &len) < 0)
		return 100;
	lc_out_free(&out);
	lease_table_init(&t, LEASE);
	/* keepalive of a live session: acknowledged, with our lease */
	m = (struct session_msg){ .kind = SM_KA, .session = 0x55, .serial = LEASE,
				  .stamp = 7 };
	fails += session_answer(&L, st, &t, &m, 100, &a) != SA_ANSWER;
	fails += !(a.kind == SM_KA_ACK && a.ok && a.serial == LEASE && a.stamp == 7 &&
		   a.leader == SELF);
	/* a sender with a longer lease: not acknowledged */
	m.serial = LEASE + 1;
	fails += session_answer(&L, st, &t, &m, 100, &a) != SA_ANSWER || a.ok;
	/* an unknown session, or no Raft lease: not acknowledged */
	m.serial = LEASE;
	m.session = 0x66;
	fails += session_answer(&L, st, &t, &m, 100, &a) != SA_ANSWER || a.ok;
	m.session = 0x55;
	L.lease_valid = false;
	fails += session_answer(&L, st, &t, &m, 100, &a) != SA_ANSWER || a.ok;
	L.lease_valid = true;
	/* a forwarded command: proposed; malformed or not its own: dropped */
	m = (struct session_msg){ .kind = SM_FWD, .session = 0x55, .serial = 2,
				  .body = buf, .len = (uint32_t)len };
	fails += session_answer(&L, st, &t, &m, 100, &a) != SA_PROPOSE;
	fails += !(a.kind == SM_FWD_ACK && a.ok && a.serial == 2);
	m.serial = 3;
	fails += session_answer(&L, st, &t, &m, 100, &a) != SA_DROP;
	m.serial = 2;
	m.len = 3;
	fails += session_answer(&L, st, &t, &m, 100, &a) != SA_DROP;
	/* a doomed session: never acknowledged again this leadership */
	fails += lease_expired(&t, 100 + LEASE + 1, ex, 4) != 1;
	m = (struct session_msg){ .kind = SM_KA, .session = 0x55, .serial = LEASE };
	fails += session_answer(&L, st, &t, &m, 100 + LEASE + 2, &a) != SA_ANSWER || a.ok;
	/* not leading: a redirect to whom we believe leads */
	L.leading = false;
	L.leader = OTHER;
	m = (struct session_msg){ .kind = SM_FWD, .session = 0x55, .serial = 2,
				  .body = buf, .len = (uint32_t)len };
	fails += session_answer(&L, st, &t, &m, 100, &a) != SA_ANSWER ||
		 a.ok || a.leader != OTHER;
	/* reads: the commit index, only leading under the lease */
	m = (struct session_msg){ .kind = SM_READ, .serial = 4, .stamp = 8 };
	fails += session_answer(&L, st, &t, &m, 100, &a) != SA_ANSWER || a.session != 0;
	L.leading = true;
	fails += session_answer(&L, st, &t, &m, 100, &a) != SA_ANSWER ||
		 a.kind != SM_READ_ACK || a.session != 9 || a.serial != 4 || a.stamp != 8;
	L.lease_valid = false;
	fails += session_answer(&L, st, &t, &m, 100, &a) != SA_ANSWER || a.session != 0;
	/* an answer is never answered */
	m.kind = SM_KA_ACK;
	fails += session_answer(&L, st, &t, &m, 100, &a) != SA_DROP;
	free(buf);
	lease_table_free(&t);
	lc_state_free(st);
	return fails;
}

/* Out of memory, no answer is lost: 200 requests waiting when the view
 * runs out with nothing allocatable get their -ENOLCK, then SE_LOST; a
 * request with no room for its answers is refused. */
static unsigned rule_answers_kept(unsigned breaks)
{
	struct host h;
	struct session_in in = { 0 };
	const struct session_effect *lost;
	uint64_t old;
	size_t done = 0, k;

	if (!open_follower(&h, breaks, 1000))
		return 100;
	old = session_id(h.s);
	for (unsigned i = 0; i < 200; i++) {
		char name[16];

		snprintf(name, sizeof(name), "d%u", i);
		CHECK(&h, submit_mkdir(&h, name, 1000) == i + 2);
		clear(&h);
	}
	in.now = 1000 + LEASE - MARGIN;
	fail_allocs = FAIL_ALL;
	session_tick(h.s, &in, false);
	fail_allocs = 0;
	for (unsigned i = 0; find(&h, SE_DONE, 0, i); i++)
		if (find(&h, SE_DONE, 0, i)->c.status == -ENOLCK &&
		    find(&h, SE_DONE, 0, i)->c.origin == old)
			done++;
	CHECK(&h, done == 200);
	lost = find(&h, SE_LOST, 0, 0);
	CHECK(&h, lost && lost->session == old && lost > find(&h, SE_DONE, 0, 199));
	CHECK(&h, session_pending(h.s) == 0);
	clear(&h);
	/* no room for its answers: a request is refused, not admitted to
	 * have them lost */
	fail_allocs = FAIL_REALLOC;
	for (k = 0; k < 1000 && submit_mkdir(&h, "x", in.now); k++)
		;
	CHECK(&h, k < 1000);
	fail_allocs = FAIL_ALL;
	session_fail_all(h.s, -EIO);
	fail_allocs = 0;
	CHECK(&h, count(&h, SE_DONE, 0) == k);
	session_free(h.s);
	return h.fails;
}

/* Alone, a proposal dropped for memory is proposed again by the timer,
 * and one the engine took is not. */
static unsigned rule_propose_retried(unsigned breaks)
{
	struct host h;
	struct session_in in = { .now = 1000 };
	uint64_t serials[200];
	size_t n;

	if (!mk(&h, breaks, true))
		return 100;
	(void)session_set_role(h.s, true, 1);
	CHECK(&h, session_open(h.s, 1000) == 0);
	session_proposed(h.s, 1, 0, 1000);
	apply_open(&h, 1000);
	clear(&h);
	for (unsigned i = 0; i < 200; i++) {
		serials[i] = submit_mkdir(&h, "a", 1000);
		session_proposed(h.s, serials[i], -ENOMEM, 1000);
		clear(&h);
	}
	/* every one proposed again at once: some dropped */
	in.now = 1200;
	fail_allocs = FAIL_REALLOC;
	session_tick(h.s, &in, false);
	fail_allocs = 0;
	n = count(&h, SE_PROPOSE, 0);
	CHECK(&h, n > 0 && n < 200);
	for (size_t i = 0; i < n; i++)
		session_proposed(h.s, find(&h, SE_PROPOSE, 0, (unsigned)i)->serial, 0, 1200);
	clear(&h);
	/* the dropped ones (only they) again */
	in.now = 1400;
	session_tick(h.s, &in, false);
	CHECK(&h, count(&h, SE_PROPOSE, 0) == 200 - n);
	session_free(h.s);
	return h.fails;
}

/* A host that sleeps until session_wake_at() and ticks then never spins:
 * after a tick at that time the next one is later (or none). */
static uint64_t no_spin(struct host *h, uint64_t now, unsigned steps)
{
	struct session_in in = { 0 };

	for (unsigned i = 0; i < steps; i++) {
		uint64_t t = session_wake_at(h->s, now);

		if (!t)
			break;
		CHECK(h, t >= now);
		if (t == now && i > 0) {
			h->fails++;
			break;
		}
		in.now = now = t;
		session_tick(h->s, &in, false);
		clear(h);
	}
	return now;
}

static unsigned rule_wake_at(unsigned breaks)
{
	struct host h;
	unsigned fails = 0;

	/* a request submitted before the open is applied waits for it */
	if (!mk(&h, breaks, false))
		return 100;
	(void)session_set_role(h.s, false, LEADER);
	CHECK(&h, session_open(h.s, 1000) == 0);
	CHECK(&h, submit_mkdir(&h, "a", 1000) == 2);
	clear(&h);
	no_spin(&h, 1000, 5);
	session_free(h.s);
	fails += h.fails;
	/* jeopardy, expiry, and a give-up that cannot open a new session */
	if (!open_follower(&h, breaks, 1000))
		return fails + 100;
	h.id_fails = true;
	(void)no_spin(&h, 1000, 20);         /* jeopardy, then expired */
	CHECK(&h, session_lost_count(h.s) > 1);
	session_free(h.s);
	fails += h.fails;
	/* a lock held back behind an earlier release of its owner */
	if (!open_follower(&h, breaks, 1000))
		return fails + 100;
	CHECK(&h, submit_lock(&h, LC_UNLCK, 7, false, 1000) != 0);
	CHECK(&h, submit_lock(&h, LC_WRLCK, 7, true, 1000) != 0);
	clear(&h);
	no_spin(&h, 1000, 3);
	session_free(h.s);
	return fails + h.fails;
}

/* Notes for the host's log: a request sent again under a new serial, a
 * give-up that could not open a new session (tried again resend_ms
 * later), and how many releases are kept when that room is full. */
static unsigned rule_notes(unsigned breaks)
{
	struct host h;
	struct session_in in = { 0 };
	const struct session_effect *e;
	uint64_t s2, old;

	if (!open_follower(&h, breaks, 1000))
		return 100;
	s2 = submit_mkdir(&h, "a", 1000);
	clear(&h);
	complete(&h, s2, -ESTALE, 1100);
	e = find(&h, SE_RESERIAL, 0, 0);
	CHECK(&h, e && e->arg == s2 && e->serial == s2 + 1);
	clear(&h);
	/* no new session id: said, and tried again */
	old = session_id(h.s);
	h.id_fails = true;
	in.now = 1000 + LEASE - MARGIN;
	session_tick(h.s, &in, false);
	e = find(&h, SE_OPEN_FAILED, 0, 0);
	CHECK(&h, e && e->status == -EAGAIN && find(&h, SE_LOST, 0, 0));
	CHECK(&h, session_id(h.s) == old && session_lost_count(h.s) == 1);
	clear(&h);
	in.now += 100;
	session_tick(h.s, &in, false);
	CHECK(&h, session_lost_count(h.s) == 1 && !find(&h, SE_OPEN_FAILED, 0, 0));
	h.id_fails = false;
	in.now += 100;
	session_tick(h.s, &in, false);
	CHECK(&h, session_lost_count(h.s) == 2 && session_id(h.s) != old);
	clear(&h);
	/* releases kept for memory: the count is said when full */
	fail_allocs = FAIL_ALL;
	for (unsigned i = 0; i <= 256; i++)
		(void)submit_lock(&h, LC_UNLCK, 7, false, in.now);
	fail_allocs = 0;
	e = find(&h, SE_HELD_FULL, 0, 0);
	CHECK(&h, e && e->arg == 256 && count(&h, SE_HELD_FULL, 0) == 1);
	session_free(h.s);
	return h.fails;
}

/* ---- CUnit ------------------------------------------------------------------ */

static const struct {
	const char *name;
	unsigned (*fn)(unsigned breaks);
} rules[] = {
	{ "serials", rule_serials },
	{ "reserial", rule_reserial },
	{ "unlock_before", rule_unlock_before },
	{ "resend", rule_resend },
	{ "give_up", rule_give_up },
	{ "closed_under_us", rule_closed_under_us },
	{ "no_expired_grant", rule_no_expired_grant },
	{ "resolve_after_install", rule_resolve_after_install },
	{ "keepalive", rule_keepalive },
	{ "shorter_lease", rule_shorter_lease },
	{ "read_barrier", rule_read_barrier },
	{ "redirect", rule_redirect },
	{ "alone", rule_alone },
	{ "leader_answers", rule_leader_answers },
	{ "answers_kept", rule_answers_kept },
	{ "propose_retried", rule_propose_retried },
	{ "wake_at", rule_wake_at },
	{ "notes", rule_notes },
	{ "unlock_before_reserial", rule_unlock_before_reserial },
};

#define NRULES (sizeof(rules) / sizeof(rules[0]))

static const struct {
	const char *name;
	unsigned bit;
} breakers[] = {
	{ "unlock-before", SESSION_BREAK_UNLOCK_BEFORE },
	{ "read-barrier", SESSION_BREAK_READ_BARRIER },
	{ "reserial", SESSION_BREAK_RESERIAL },
	{ "resolve", SESSION_BREAK_RESOLVE },
	{ "expired-grant", SESSION_BREAK_EXPIRED_GRANT },
};

static size_t cur_rule;

static void test_rule(void)
{
	unsigned f = rules[cur_rule].fn(0);

	if (getenv("UNIT_SESSION_BREAKS"))
		f = rules[cur_rule].fn((unsigned)strtoul(getenv("UNIT_SESSION_BREAKS"), NULL, 0));

	if (f)
		fprintf(stderr, "rule %s: %u checks failed\n", rules[cur_rule].name, f);
	CU_ASSERT_EQUAL(f, 0);
}

/* One CUnit test per rule, in the order of rules[]. */
#define RULE_TEST(i, name) \
	static void test_##name(void) { cur_rule = i; test_rule(); }
RULE_TEST(0, serials)
RULE_TEST(1, reserial)
RULE_TEST(2, unlock_before)
RULE_TEST(3, resend)
RULE_TEST(4, give_up)
RULE_TEST(5, closed_under_us)
RULE_TEST(6, no_expired_grant)
RULE_TEST(7, resolve_after_install)
RULE_TEST(8, keepalive)
RULE_TEST(9, shorter_lease)
RULE_TEST(10, read_barrier)
RULE_TEST(11, redirect)
RULE_TEST(12, alone)
RULE_TEST(13, leader_answers)
RULE_TEST(14, answers_kept)
RULE_TEST(15, propose_retried)
RULE_TEST(16, wake_at)
RULE_TEST(17, notes)
RULE_TEST(18, unlock_before_reserial)

/* Every breaker makes at least one rule fail. */
static void test_breaks_caught(void)
{
	bool show = getenv("UNIT_SESSION_SHOW") != NULL;

	for (size_t b = 0; b < sizeof(breakers) / sizeof(breakers[0]); b++) {
		unsigned caught = 0;

		for (size_t r = 0; r < NRULES; r++)
			if (rules[r].fn(breakers[b].bit)) {
				caught++;
				if (show)
					printf("  --break=%s caught by rule %s\n",
					       breakers[b].name, rules[r].name);
			}
		if (!caught)
			fprintf(stderr, "breaker %s is caught by no rule\n", breakers[b].name);
		CU_ASSERT(caught > 0);
	}
}

static const struct ut_test tests[] = {
	UT_TEST(test_serials),
	UT_TEST(test_reserial),
	UT_TEST(test_unlock_before),
	UT_TEST(test_resend),
	UT_TEST(test_give_up),
	UT_TEST(test_closed_under_us),
	UT_TEST(test_no_expired_grant),
	UT_TEST(test_resolve_after_install),
	UT_TEST(test_keepalive),
	UT_TEST(test_shorter_lease),
	UT_TEST(test_read_barrier),
	UT_TEST(test_redirect),
	UT_TEST(test_alone),
	UT_TEST(test_leader_answers),
	UT_TEST(test_answers_kept),
	UT_TEST(test_propose_retried),
	UT_TEST(test_wake_at),
	UT_TEST(test_notes),
	UT_TEST(test_unlock_before_reserial),
	UT_TEST(test_breaks_caught),
};

_Static_assert(sizeof(tests) / sizeof(tests[0]) == NRULES + 1,
	       "one CUnit test per rule");

const struct ut_suite ut_suites[] = {
	UT_SUITE("session", tests),
	{ NULL },
};
