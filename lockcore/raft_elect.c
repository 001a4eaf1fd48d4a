/*
 * lockcore/raft_elect.c - terms and elections of the Raft engine (see
 * raft.c for the design): stepping down, pre-vote and vote, the vote
 * answers, and the catch_up rule that keeps a voter that lost its log from
 * voting until it holds again what it may have acknowledged.
 *
 * It must never: grant a vote to a log less up to date than ours, grant
 * two votes in one term, vote or pre-vote against a leader it still hears
 * (the lease), let a learner or a catching-up voter campaign (but see
 * rfi_may_campaign), count a learner's vote, become leader before its own vote
 * for itself is synced, or send a vote before it is synced.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/raft.h"
#include "lockcore/raft_i.h"

/* ---- terms -------------------------------------------------------------- */

static bool in_lease(const struct raft *r)
{
	if (r->role == RF_LEADER || r->now < r->vote_block_until)
		return true;
	return r->leader && r->now - r->last_heard_ms <
			    r->cfg.election_timeout_min_ms;
}

void rfi_become_follower(struct raft *r, uint64_t term, uint64_t leader)
{
	if (term > r->term) {
		r->term = term;
		r->vote = 0;
		r->hs_dirty = true;
	}
	r->role = RF_FOLLOWER;
	r->leader = leader;
	if (leader)
		r->last_heard_ms = r->now;
	rfi_reset_election(r);
}

/* ---- elections ---------------------------------------------------------- */

static void request_votes(struct raft *r, bool pre)
{
	for (unsigned i = 0; i < r->npeers; i++) {
		struct rf_msg m = { 0 };

		r->peers[i].granted = false;
		if (!r->peers[i].voter)
			continue;      /* learners are never asked */
		m.type = RF_MSG_VOTE;
		m.prevote = pre;
		m.from = r->cfg.id;
		m.to = r->peers[i].id;
		m.term = pre ? r->term + 1 : r->term;
		m.last_index = last_index(r);
		m.last_term = term_at(r, last_index(r));
		if (pre)
			rfi_send_now(r, &m);
		else    /* only once our own vote for ourselves is synced */
			rfi_send_held(r, &m, 0, 0);
	}
}

void rfi_start_prevote(struct raft *r)
{
	r->role = RF_PRECANDIDATE;
	r->leader = 0;
	rfi_reset_election(r);
	request_votes(r, true);
}

static void start_election(struct raft *r)
{
	r->role = RF_CANDIDATE;
	r->leader = 0;
	r->term++;
	r->vote = r->cfg.id;
	r->hs_dirty = true;
	rfi_reset_election(r);
	request_votes(r, false);
}

static unsigned count_granted(const struct raft *r)
{
	unsigned n = 0;

	for (unsigned i = 0; i < r->npeers; i++)
		if (r->peers[i].voter && r->peers[i].granted)
			n++;
	return n;
}

/* Whether we may campaign: a voter may; so may a node that its own
 * newest configuration leaves out while that entry is not known committed
 * (a leader that removed or demoted itself): its log may be the only one
 * holding that entry, so nobody else can win the log check, and refusing
 * to run would leave the cluster without a leader for good (Raft
 * dissertation 4.2.2).  It then counts only the votes of its voters. */
bool rfi_may_campaign(const struct raft *r)
{
	return !r->catching_up && (r->self_voter || r->conf_index > r->commit);
}

/* A voter that lost its log (cfg.catch_up) may have acknowledged entries
 * that a majority needed it for: until it holds them again, a vote from
 * it could elect a leader missing committed entries.  It has them all
 * once its synced log holds, matching the current leader's, every entry
 * up to the highest commit index a leader reported in an append it took
 * (the leader's commit covers whatever it counted our lost acknowledgement
 * for), the last of them of the leader's term: the leader holds every
 * entry committed before its term (Leader Completeness).  Synced, because
 * a crash right after must not bring the gap back. */
void rfi_caught_up(struct raft *r)
{
	uint64_t m = r->commit < r->durable_index ? r->commit : r->durable_index;

	/* Not our commit alone: it is the leader's clipped to the batch we
	 * hold, and the entries after the batch may be ones the leader
	 * committed with our lost acknowledgement.  The last entry held may
	 * be a snapshot's (the leader's, installed in an idle cluster):
	 * waiting for an entry after it could wait for a write that needs
	 * a leader this voter's vote must help elect. */
	if (r->catching_up && r->role == RF_FOLLOWER && r->leader && m &&
	    r->lead_commit && m >= r->lead_commit &&
	    m >= r->snap_index && term_at(r, m) == r->term)
		r->catching_up = false;
}

void rfi_try_win(struct raft *r)
{
	unsigned self = r->self_voter ? 1 : 0;

	if (!rfi_may_campaign(r))
		return;
	if (r->role == RF_PRECANDIDATE && count_granted(r) + self >= quorum(r))
		start_election(r);
	bool self_ok = (r->durable_term == r->term &&
			r->durable_vote == r->cfg.id) ||
		       (r->cfg.test_break & RF_BREAK_ACK_UNSYNCED);

	if (r->role == RF_CANDIDATE && self_ok &&
	    count_granted(r) + self >= quorum(r))
		rfi_become_leader(r);
}

static bool log_ok(const struct raft *r, uint64_t li, uint64_t lt)
{
	uint64_t last = last_index(r), t = term_at(r, last);

	if (r->cfg.test_break & RF_BREAK_VOTE_ANY_LOG)
		return true;
	return lt > t || (lt == t && li >= last);
}

void rfi_on_vote(struct raft *r, const struct rf_msg *m)
{
	struct rf_msg resp = { 0 };
	bool grant = false;

	resp.type = RF_MSG_VOTE_RESP;
	resp.prevote = m->prevote;
	resp.from = r->cfg.id;
	resp.to = m->from;
	/* A node that heard from a live leader ignores campaigns: this keeps
	 * a partitioned node from deposing a healthy leader and makes leases
	 * sound. */
	if (m->term > r->term && in_lease(r))
		return;
	if (r->catching_up) {
		/* No vote before we hold what we once acknowledged; the
		 * term still moves, so we never go back to an old one. */
		if (!m->prevote && m->term > r->term)
			rfi_become_follower(r, m->term, 0);
		resp.term = r->term;
		rfi_send_now(r, &resp);
		return;
	}
	/* Votes are granted whatever our own configuration says (Raft
	 * dissertation 4.1): a candidate whose newer configuration makes us a
	 * voter may need our vote before that entry reaches us, and refusing
	 * it would leave the cluster without a leader for good.  The log check
	 * keeps it safe; only the candidate's configuration counts votes. */
	if (m->prevote) {
		grant = m->term > r->term &&
			log_ok(r, m->last_index, m->last_term);
		resp.term = grant ? m->term : r->term;
		resp.ok = grant;
		rfi_send_now(r, &resp);
		return;
	}
	if (m->term > r->term)
		rfi_become_follower(r, m->term, 0);
	if (m->term == r->term &&
	    (!r->vote || r->vote == m->from) &&
	    (r->role == RF_FOLLOWER || r->role == RF_PRECANDIDATE) &&
	    log_ok(r, m->last_index, m->last_term)) {
		grant = true;
		r->role = RF_FOLLOWER;
		if (r->vote != m->from) {
			r->vote = m->from;
			r->hs_dirty = true;
		}
		rfi_reset_election(r);
	}
	resp.term = r->term;
	resp.ok = grant;
	if (grant)
		rfi_send_held(r, &resp, 0, 0);
	else
		rfi_send_now(r, &resp);
}

void rfi_on_vote_resp(struct raft *r, const struct rf_msg *m)
{
	struct peer *p = rfi_peer_of(r, m->from);

	if (m->prevote) {
		if (p && p->voter && r->role == RF_PRECANDIDATE && m->ok &&
		    m->term == r->term + 1)
			p->granted = true;
		else if (!m->ok && m->term > r->term)
			rfi_become_follower(r, m->term, 0);
		return;
	}
	if (m->term > r->term) {
		rfi_become_follower(r, m->term, 0);
		return;
	}
	if (p && p->voter && r->role == RF_CANDIDATE && m->term == r->term && m->ok)
		p->granted = true;
}
