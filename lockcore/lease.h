/*
 * lockcore/lease.h - session leases as the leader and a node see them.
 *
 * Two small, pure bookkeeping objects for the driver (cluckd's node/leader.c,
 * and t/sim/host.c):
 *
 * The leader's table (struct lease_table) remembers, for every session of
 * the lock state, the leader-local time it last heard from it (a
 * forwarded request or a keepalive).  lease_reset() is called when this
 * node becomes leader: EVERY session the state knows gets a fresh full
 * lease from that instant (Chubby's grace), so a leader change never frees
 * a lock by itself.  A session opened later is added when its SESSION_OPEN
 * is applied (lease_open) or on first contact (lease_touch).
 * lease_expired() reports each session whose lease ran out ONCE, so the
 * driver proposes one SESSION_CLOSE (origin 0) per expiry; it is reported
 * again only if it is heard from (which re-arms it) and then falls silent
 * for another lease.  lease_forget() is called when a SESSION_CLOSE is
 * applied.
 *
 * A session that was reported is "doomed" for the rest of this leadership:
 * lease_touch() still refreshes it (the contact re-arms reporting) but
 * answers LEASE_DOOMED, and the driver must then NOT acknowledge the
 * contact, because the SESSION_CLOSE it proposed may still commit and free
 * the session's locks.  Only lease_forget() and lease_reset() clear it.
 *
 * The node's own view (struct lease_view) of its session: the lease runs
 * from the LOCAL SEND time of the latest keepalive or request that the
 * leader acknowledged, for lease - margin.  States: LEASE_OK; LEASE_JEOPARDY
 * once more than lease / LEASE_JEOPARDY_DIV has passed since that send time
 * (keep locks, send keepalives more often, hold new requests back);
 * LEASE_EXPIRED at send + lease - margin, which is sticky: the node tells
 * its holders their locks are lost and opens a new session.
 *
 * Why the node always gives up first.  Let D bound how much any one clock
 * misstates an interval (drift plus steps over a lease), and let the
 * leader acknowledge only while it holds its Raft leader lease (so no newer
 * leader exists at the instant of the ack) and only sessions of its applied
 * state that are not doomed.  A contact sent at real time s is received at
 * r >= s.  The leader that received it frees the session no earlier than
 * its clock says r + L, i.e. real time >= s + L - D; a later leader gives a
 * full lease from its election, which is after every ack of an earlier
 * leader, hence also >= s + L - D.  The node gives up when its clock says
 * s + L - M, i.e. real time <= s + L - M + D.  With M > 2D the node gives
 * up strictly before any leader frees (the slack M - 2D also covers the
 * driver's timer granularity).  cluckd uses D = max_clock_drift_ms.
 *
 * It must never: read a clock, do I/O, draw randomness or include an OS
 * header.  All times are milliseconds of the caller's monotonic clock.
 */
#ifndef CLUCK_LEASE_H
#define CLUCK_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lockcore/lc.h"

/* Jeopardy after lease / 3 without an acknowledged contact: by then a
 * keepalive every lease / 4 has gone unanswered at least once. */
#define LEASE_JEOPARDY_DIV 3u

/* lease_touch() result for a session already reported expired. */
#define LEASE_DOOMED 1

struct lease_ent {
	uint64_t session;
	uint64_t last_ms;              /* leader-local time of the last contact */
	uint8_t  reported;             /* reported by lease_expired, not heard since */
	uint8_t  doomed;               /* reported at least once this leadership */
};

struct lease_table {
	struct lease_ent *v;           /* sorted by session */
	size_t n, cap;
	uint64_t lease_ms;
};

/* An empty table for leases of lease_ms (> 0). */
void lease_table_init(struct lease_table *t, uint64_t lease_ms);
void lease_table_free(struct lease_table *t);

/* This node became leader at now_ms: forget everything, then give every
 * session of `s` a full lease from now.  0, -ENOMEM (table empty then),
 * -EINVAL. */
int lease_reset(struct lease_table *t, const struct lc_state *s, uint64_t now_ms);

/* A SESSION_OPEN was applied while leading: the lease starts now (unless
 * the session is already known).  0, -ENOMEM, -EINVAL (session 0). */
int lease_open(struct lease_table *t, uint64_t session, uint64_t now_ms);

/* Heard from `session` at now_ms: refresh (adding it when unknown).
 * 0: acknowledge it; LEASE_DOOMED: do not acknowledge (see above);
 * -ENOMEM; -EINVAL (session 0). */
int lease_touch(struct lease_table *t, uint64_t session, uint64_t now_ms);

/* A SESSION_CLOSE of `session` was applied: drop it. */
void lease_forget(struct lease_table *t, uint64_t session);

/* Writes up to `max` sessions whose lease ran out at now_ms and that were
 * not reported since their last contact, marks them reported and doomed,
 * and returns how many it wrote (call again when it returns max). */
size_t lease_expired(struct lease_table *t, uint64_t now_ms, uint64_t *out,
		     size_t max);

/* Earliest time a not-yet-reported session expires, or 0 when none. */
uint64_t lease_next_deadline(const struct lease_table *t);

/* The entry of `session`, or NULL. */
const struct lease_ent *lease_find(const struct lease_table *t, uint64_t session);

/* ---- the node's view of its own session ------------------------------- */

enum lease_state {
	LEASE_NONE = 0,                /* no session acknowledged yet */
	LEASE_OK,
	LEASE_JEOPARDY,
	LEASE_EXPIRED                  /* sticky until lease_view_init */
};

struct lease_view {
	uint64_t lease_ms, margin_ms;
	uint64_t acked_ms;             /* local send time of the latest acked contact */
	uint8_t  started, expired;
};

/* A view for a new session: lease_ms, and margin_ms (clamped to at most
 * lease_ms - lease_ms / LEASE_JEOPARDY_DIV - 2, so jeopardy always comes
 * before expiry). */
void lease_view_init(struct lease_view *v, uint64_t lease_ms, uint64_t margin_ms);

/* The leader acknowledged a contact this node sent at sent_ms (its own
 * clock); an older ack changes nothing, and an expired view stays
 * expired.  The session's SESSION_OPEN seen applied counts as an ack of
 * the open's FIRST send time. */
void lease_view_ack(struct lease_view *v, uint64_t sent_ms);

/* State at now_ms; reaching LEASE_EXPIRED makes it sticky. */
enum lease_state lease_view_state(struct lease_view *v, uint64_t now_ms);

/* Local time at which the view expires (0 before the first ack). */
uint64_t lease_view_deadline(const struct lease_view *v);

/* Local time at which it enters jeopardy (0 before the first ack). */
uint64_t lease_view_jeopardy_at(const struct lease_view *v);

#endif /* CLUCK_LEASE_H */
