/*
 * lockcore/raft_repl.c - replication in the Raft engine (see raft.c for the
 * design): the leader's batched and pipelined AppendEntries with probing
 * and fast backtracking, its commit rule and commit notices, becoming
 * leader; and the follower's side, taking entries and answering.
 *
 * It must never: commit an entry of an earlier term by counting, count its
 * own unsynced entries or a learner toward commitment, truncate an entry it
 * knows committed, take a leader's commit index beyond the entries that
 * leader's append matched, or acknowledge entries before they are synced
 * (nor once a later leader replaced them).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/raft.h"
#include "lockcore/raft_i.h"

/* ---- replication (leader) ----------------------------------------------- */

static void send_append(struct raft *r, struct peer *p, bool empty)
{
	struct rf_msg m = { 0 };
	size_t bytes = RF_HDR_BYTES + RF_APPEND_BYTES;
	uint64_t i, last = last_index(r);

	m.type = RF_MSG_APPEND;
	m.from = r->cfg.id;
	m.to = p->id;
	m.term = r->term;
	m.prev_index = p->next - 1;
	m.prev_term = term_at(r, m.prev_index);
	m.commit = r->commit;
	m.stamp = r->now;
	p->sent_commit = r->commit;
	for (i = p->next; !empty && i <= last; i++) {
		size_t add = RF_ENTRY_HDR + ent(r, i)->len;

		if (bytes + add > r->cfg.max_msg_bytes && i > p->next)
			break;
		bytes += add;
	}
	m.n_entries = (uint32_t)(i - p->next);
	m.entries = m.n_entries ? ent(r, p->next) : NULL;
	if (m.n_entries && !p->probing) {
		p->next = i;
		p->inflight++;
	}
	rfi_send_now(r, &m);
}

static void snap_begin(struct raft *r, struct peer *p)
{
	p->snap = true;
	p->snap_idx = r->snap_index;
	p->snap_next = p->snap_acked = 0;
	p->snap_gap = UINT64_MAX;
	p->snap_inflight = 0;
	p->progress_ms = r->now;
}

/* Streams the snapshot to a peer that needs compacted entries, at most
 * max_inflight chunks ahead of its acknowledgements. */
void rfi_send_snap(struct raft *r, struct peer *p, bool force)
{
	size_t chunk = r->cfg.max_msg_bytes - RF_HDR_BYTES - SNAP_BODY;
	bool sent = false;

	if (!p->snap || p->snap_idx != r->snap_index)
		snap_begin(r, p);
	while (p->snap_next < r->snap_total &&
	       p->snap_inflight < r->cfg.max_inflight) {
		struct rf_msg m = { 0 };
		size_t left = r->snap_total - p->snap_next;

		m.type = RF_MSG_SNAP;
		m.from = r->cfg.id;
		m.to = p->id;
		m.term = r->term;
		m.prev_index = r->snap_index;
		m.prev_term = r->snap_term;
		m.snap_offset = p->snap_next;
		m.snap_total = r->snap_total;
		m.data = r->snap + p->snap_next;
		m.data_len = (uint32_t)(left < chunk ? left : chunk);
		m.stamp = r->now;
		p->snap_next += m.data_len;
		p->snap_inflight++;
		rfi_send_now(r, &m);
		sent = true;
	}
	if (force && !sent) {
		/* A heartbeat that keeps its election timer quiet and echoes
		 * our stamp; it names the snapshot's end, which we know. */
		struct rf_msg m = { 0 };

		m.type = RF_MSG_APPEND;
		m.from = r->cfg.id;
		m.to = p->id;
		m.term = r->term;
		m.prev_index = r->snap_index;
		m.prev_term = r->snap_term;
		m.commit = r->commit;
		m.stamp = r->now;
		rfi_send_now(r, &m);
	}
}

/* Sends what the peer lacks, keeping at most max_inflight batches in
 * flight; `force` sends at least a heartbeat. */
void rfi_replicate(struct raft *r, struct peer *p, bool force)
{
	bool sent = false;

	if (p->snap || p->next <= r->snap_index) {
		rfi_send_snap(r, p, force);
		return;
	}
	/* While probing, the heartbeat carries no entries: its answer says
	 * where to probe, and a big batch every beat would be waste. */
	if (p->probing) {
		if (force)
			send_append(r, p, true);
		return;
	}
	while (p->next <= last_index(r) && p->inflight < r->cfg.max_inflight) {
		send_append(r, p, false);
		sent = true;
	}
	if (force && !sent)
		send_append(r, p, false);
}

void rfi_broadcast(struct raft *r, bool force)
{
	for (unsigned i = 0; i < r->npeers; i++)
		rfi_replicate(r, &r->peers[i], force);
}

/* Tells a peer that is up to date (nothing in flight) about a commit it
 * has not heard of, at once: followers and members answer their own
 * requests when they apply them, so waiting for the next heartbeat would
 * add up to a heartbeat period to every request they forward. */
static void notify_commit(struct raft *r, struct peer *p)
{
	if (!p->snap && !p->probing && p->match + 1 == p->next &&
	    p->next > r->snap_index && p->sent_commit < r->commit)
		send_append(r, p, true);
}

static int cmp_u64_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Commits by counting only entries of the current term (Raft 5.4.2) and
 * only voters; the leader's own copy counts only once synced, and not at
 * all once it is no longer a voter. */
void rfi_advance_commit(struct raft *r)
{
	uint64_t m[RF_MAX_VOTERS], c;
	unsigned k = 0;

	if (r->self_voter)
		m[k++] = (r->cfg.test_break & RF_BREAK_ACK_UNSYNCED) ?
			 last_index(r) : r->durable_index;
	for (unsigned i = 0; i < r->npeers && k < RF_MAX_VOTERS; i++)
		if (r->peers[i].voter)
			m[k++] = r->peers[i].match;
	if (k < quorum(r))
		return;
	qsort(m, k, sizeof(m[0]), cmp_u64_desc);
	c = m[quorum(r) - 1];
	if (c > last_index(r))
		c = last_index(r);
	if (c > r->commit && (term_at(r, c) == r->term ||
			      (r->cfg.test_break & RF_BREAK_COMMIT_OLD_TERM))) {
		r->commit = c;
		rfi_broadcast(r, false);
		for (unsigned i = 0; i < r->npeers; i++)
			notify_commit(r, &r->peers[i]);
	}
}

void rfi_become_leader(struct raft *r)
{
	r->role = RF_LEADER;
	r->leader = r->cfg.id;
	for (unsigned i = 0; i < r->npeers; i++) {
		struct peer *p = &r->peers[i];
		bool voter = p->voter;

		rfi_init_peer(r, p, p->id);
		p->voter = voter;
		p->next = last_index(r) + 1;
	}
	/* The no-op lets the leader commit the entries of earlier terms. */
	if (rfi_append_entry(r, r->term, RF_ENTRY_NOOP, NULL, 0) == 0)
		r->noop_index = last_index(r);
	else
		r->noop_index = UINT64_MAX;
	r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
	r->cq_deadline = r->now + r->cfg.election_timeout_min_ms;
	r->read_send_at = 0;
	rfi_broadcast(r, true);
}

/* ---- AppendEntries (follower) ------------------------------------------- */

void rfi_on_append(struct raft *r, const struct rf_msg *m)
{
	struct rf_msg resp = { 0 };
	uint64_t match, i;

	resp.type = RF_MSG_APPEND_RESP;
	resp.from = r->cfg.id;
	resp.to = m->from;
	resp.stamp = m->stamp;
	if (m->term < r->term) {
		resp.term = r->term;   /* tells a stale leader to step down */
		rfi_send_now(r, &resp);
		return;
	}
	if (r->role == RF_LEADER && m->term == r->term)
		return;                /* impossible with election safety */
	rfi_become_follower(r, m->term, m->from);
	resp.term = r->term;
	resp.match_index = m->prev_index;  /* on failure: the index rejected */
	if (m->prev_index > last_index(r)) {
		resp.conflict_index = last_index(r) + 1;
		rfi_send_now(r, &resp);
		return;
	}
	/* Below our snapshot everything is committed, hence equal. */
	if (m->prev_index > r->snap_index &&
	    term_at(r, m->prev_index) != m->prev_term) {
		uint64_t t = term_at(r, m->prev_index), j = m->prev_index;

		while (j > r->commit + 1 && term_at(r, j - 1) == t)
			j--;
		resp.conflict_index = j;
		resp.conflict_term = t;
		rfi_send_now(r, &resp);
		return;
	}
	for (i = 0; i < m->n_entries; i++) {
		uint64_t idx = m->prev_index + 1 + i;
		const struct rf_entry *e = &m->entries[i];

		if (idx <= r->snap_index)
			continue;
		if (idx <= last_index(r)) {
			if (term_at(r, idx) == e->term)
				continue;
			if (idx <= r->commit)
				return;        /* never undo a commit */
			rfi_truncate_from(r, idx);
		}
		if (rfi_append_entry(r, e->term, e->type, e->buf, e->len))
			return;        /* ENOMEM or a bad CONF: as if lost */
	}
	match = m->prev_index + m->n_entries;
	if (r->catching_up && m->commit > r->lead_commit)
		r->lead_commit = m->commit;
	if (m->commit > r->commit) {
		uint64_t c = m->commit < match ? m->commit : match;

		if (c > r->commit)
			r->commit = c;
	}
	resp.ok = 1;
	resp.match_index = match;
	rfi_send_held(r, &resp, match > r->snap_index ? match : 0, term_at(r, match));
}

/* What every answer to a leader does first: a newer term deposes it;
 * an answer of its term from a peer counts as contact (and, with the
 * echoed stamp, toward the lease).  Returns the peer to go on with, or
 * NULL when the answer is stale or not for a leader. */
struct peer *rfi_leader_answer(struct raft *r, const struct rf_msg *m)
{
	struct peer *p = rfi_peer_of(r, m->from);

	if (m->term > r->term) {
		rfi_become_follower(r, m->term, 0);
		return NULL;
	}
	if (!p || r->role != RF_LEADER || m->term != r->term)
		return NULL;
	p->last_ack_ms = r->now;
	if (m->stamp > p->lease_stamp && m->stamp <= r->now)
		p->lease_stamp = m->stamp;
	return p;
}

void rfi_on_append_resp(struct raft *r, const struct rf_msg *m)
{
	struct peer *p = rfi_leader_answer(r, m);

	if (!p)
		return;
	if (p->snap)
		return;                /* only the snapshot's answer moves it */
	if (m->ok) {
		if (m->match_index > last_index(r))
			return;        /* bogus */
		if (p->inflight)
			p->inflight--;
		p->probing = false;
		if (m->match_index > p->match) {
			p->match = m->match_index;
			p->progress_ms = r->now;
		}
		if (p->next < p->match + 1)
			p->next = p->match + 1;
		rfi_advance_commit(r);
		rfi_replicate(r, p, false);
		notify_commit(r, p);
		return;
	}
	/* A rejection of a batch sent before the latest probe, or of entries
	 * already matched, is stale: acting on it would resend everything
	 * once per stale answer. */
	if (m->match_index < p->match ||
	    (p->probing && m->match_index != p->next - 1))
		return;
	if (!m->conflict_term && m->conflict_index <= p->match) {
		/* The follower's log ends below what it acknowledged: it
		 * lost it (a voter repaired with --rejoin, a member started
		 * afresh).  Probe from its end as for a new peer; what the
		 * match counted toward stays committed, and the follower
		 * (lockcore catch_up) votes only once it has it all again. */
		p->match = m->conflict_index ? m->conflict_index - 1 : 0;
	}
	/* Fast backtracking: skip the follower's whole conflicting term. */
	uint64_t nn = m->conflict_index;

	if (m->conflict_term) {
		uint64_t j = last_index(r);

		while (j > r->snap_index && term_at(r, j) > m->conflict_term)
			j--;
		if (j >= r->snap_index && term_at(r, j) == m->conflict_term)
			nn = j + 1;
	}
	if (nn > last_index(r) + 1)
		nn = last_index(r) + 1;
	if (nn < p->match + 1)
		nn = p->match + 1;
	if (nn < p->next || !p->probing) {
		p->next = nn;
		p->inflight = 0;
		p->probing = true;
		if (nn <= r->snap_index)
			rfi_send_snap(r, p, false);
		else
			send_append(r, p, false);
	}
}
