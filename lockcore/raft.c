/*
 * lockcore/raft.c - Raft as a pure step function (see raft.h): pre-vote,
 * check-quorum, leader leases, batched and pipelined replication with fast
 * backtracking, and the wire codec of its messages.
 *
 * Must never: read a clock, do I/O, use any randomness but its own PRNG,
 * acknowledge a vote or entries before the driver reported them synced,
 * count its own unsynced entries toward commitment, commit an entry of an
 * earlier term by counting, or read outside a buffer it decodes.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/raft.h"

struct peer {
	uint64_t id;
	uint64_t next, match;
	uint32_t inflight;             /* AppendEntries with entries not yet answered */
	bool     probing;              /* after a rejection: one batch at a time
	                                  from next, until one succeeds */
	uint64_t last_ack_ms;          /* local time of the last answer this term */
	uint64_t progress_ms;          /* local time match last advanced */
	uint64_t lease_stamp;          /* latest echoed stamp this term */
	bool     granted;              /* (pre)vote granted this round */
};

/* A write handed to the driver and not yet reported synced. */
struct wrec {
	uint64_t seq, upto, term, vote;
};

/* A message that may only leave once writes up to need_seq are synced. */
struct held {
	struct rf_msg m;
	uint64_t need_seq;             /* 0: the write of the current step */
	uint64_t check_index, check_term;   /* drop if the log changed under it */
};

struct raft {
	struct rf_config cfg;
	uint64_t rng;
	bool started;

	uint64_t term, vote, leader;
	uint8_t role;

	struct rf_entry *log;          /* log[i - 1] is index i; buf owned */
	uint64_t n, cap;
	uint64_t commit, applied;

	uint64_t wseq, durable_seq, durable_index, durable_term, durable_vote;
	struct wrec *wr;
	size_t nwr, capwr;

	struct held *held;
	size_t nheld, capheld;

	uint64_t election_deadline, heartbeat_deadline, cq_deadline;
	uint64_t last_heard_ms, vote_block_until;
	uint64_t noop_index;

	struct peer peers[RF_MAX_VOTERS];
	unsigned self;                 /* index of this node in peers */

	/* per step */
	bool hs_dirty;
	uint64_t dirty_from;
	struct rf_msg *out;
	size_t nout, capout;
	uint64_t now;
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned quorum(const struct raft *r)
{
	return r->cfg.n_voters / 2 + 1;
}

static uint64_t term_at(const struct raft *r, uint64_t i)
{
	return i && i <= r->n ? r->log[i - 1].term : 0;
}

static void reset_election(struct raft *r)
{
	uint64_t span = (uint64_t)r->cfg.election_timeout_max_ms -
			r->cfg.election_timeout_min_ms + 1;

	r->election_deadline = r->now + r->cfg.election_timeout_min_ms +
			       splitmix(&r->rng) % span;
}

static void mark_dirty(struct raft *r, uint64_t from)
{
	if (!r->dirty_from || from < r->dirty_from)
		r->dirty_from = from;
}

/* Queues a message for this step; on ENOMEM the message is lost, which
 * the protocol tolerates like a dropped datagram. */
static void send_now(struct raft *r, const struct rf_msg *m)
{
	if (r->nout == r->capout) {
		size_t nc = r->capout ? r->capout * 2 : 16;
		struct rf_msg *nv = realloc(r->out, nc * sizeof(*nv));

		if (!nv)
			return;
		r->out = nv;
		r->capout = nc;
	}
	r->out[r->nout++] = *m;
}

static void send_held(struct raft *r, const struct rf_msg *m,
		      uint64_t check_index, uint64_t check_term)
{
	if (r->nheld == r->capheld) {
		size_t nc = r->capheld ? r->capheld * 2 : 16;
		struct held *nv = realloc(r->held, nc * sizeof(*nv));

		if (!nv)
			return;
		r->held = nv;
		r->capheld = nc;
	}
	r->held[r->nheld++] = (struct held){ *m, 0, check_index, check_term };
}

static void truncate_from(struct raft *r, uint64_t from)
{
	while (r->n >= from && r->n) {
		free((void *)r->log[r->n - 1].buf);
		r->n--;
	}
	mark_dirty(r, from);
}

static int append_entry(struct raft *r, uint64_t term, uint8_t type,
			const uint8_t *buf, uint32_t len)
{
	uint8_t *copy = NULL;

	if (r->n == r->cap) {
		uint64_t nc = r->cap ? r->cap * 2 : 64;
		struct rf_entry *nv = realloc(r->log, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		r->log = nv;
		r->cap = nc;
	}
	if (len) {
		copy = malloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, buf, len);
	}
	r->log[r->n++] = (struct rf_entry){ term, type, len, copy };
	mark_dirty(r, r->n);
	return 0;
}

static bool in_lease(const struct raft *r)
{
	if (r->role == RF_LEADER || r->now < r->vote_block_until)
		return true;
	return r->leader && r->now - r->last_heard_ms <
			    r->cfg.election_timeout_min_ms;
}

static void become_follower(struct raft *r, uint64_t term, uint64_t leader)
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
	reset_election(r);
}

/* ---- replication (leader) ----------------------------------------------- */

static void send_append(struct raft *r, struct peer *p, bool empty)
{
	struct rf_msg m = { 0 };
	size_t bytes = RF_HDR_BYTES + RF_APPEND_BYTES;
	uint64_t i;

	m.type = RF_MSG_APPEND;
	m.from = r->cfg.id;
	m.to = p->id;
	m.term = r->term;
	m.prev_index = p->next - 1;
	m.prev_term = term_at(r, m.prev_index);
	m.commit = r->commit;
	m.stamp = r->now;
	for (i = p->next; !empty && i <= r->n; i++) {
		size_t add = RF_ENTRY_HDR + r->log[i - 1].len;

		if (bytes + add > r->cfg.max_msg_bytes && i > p->next)
			break;
		bytes += add;
	}
	m.n_entries = (uint32_t)(i - p->next);
	m.entries = m.n_entries ? &r->log[p->next - 1] : NULL;
	if (m.n_entries && !p->probing) {
		p->next = i;
		p->inflight++;
	}
	send_now(r, &m);
}

/* Sends what the peer lacks, keeping at most max_inflight batches in
 * flight; `force` sends at least a heartbeat. */
static void replicate(struct raft *r, struct peer *p, bool force)
{
	bool sent = false;

	/* While probing, the heartbeat carries no entries: its answer says
	 * where to probe, and a big batch every beat would be waste. */
	if (p->probing) {
		if (force)
			send_append(r, p, true);
		return;
	}
	while (p->next <= r->n && p->inflight < r->cfg.max_inflight) {
		send_append(r, p, false);
		sent = true;
	}
	if (force && !sent)
		send_append(r, p, false);
}

static void broadcast(struct raft *r, bool force)
{
	for (unsigned i = 0; i < r->cfg.n_voters; i++)
		if (i != r->self)
			replicate(r, &r->peers[i], force);
}

static int cmp_u64_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Commits by counting only entries of the current term (Raft 5.4.2); the
 * leader's own copy counts only once synced. */
static void advance_commit(struct raft *r)
{
	uint64_t m[RF_MAX_VOTERS], c;

	for (unsigned i = 0; i < r->cfg.n_voters; i++)
		m[i] = i == r->self ? r->durable_index : r->peers[i].match;
	if (r->cfg.test_break & RF_BREAK_ACK_UNSYNCED)
		m[r->self] = r->n;
	qsort(m, r->cfg.n_voters, sizeof(m[0]), cmp_u64_desc);
	c = m[quorum(r) - 1];
	if (c > r->n)
		c = r->n;
	if (c > r->commit && (term_at(r, c) == r->term ||
			      (r->cfg.test_break & RF_BREAK_COMMIT_OLD_TERM))) {
		r->commit = c;
		broadcast(r, false);
	}
}

static void become_leader(struct raft *r)
{
	uint64_t next = r->n + 1;

	r->role = RF_LEADER;
	r->leader = r->cfg.id;
	for (unsigned i = 0; i < r->cfg.n_voters; i++) {
		struct peer *p = &r->peers[i];

		p->next = next;
		p->match = 0;
		p->inflight = 0;
		p->probing = false;
		p->last_ack_ms = r->now;
		p->progress_ms = r->now;
		p->lease_stamp = 0;
	}
	/* The no-op lets the leader commit the entries of earlier terms. */
	if (append_entry(r, r->term, RF_ENTRY_NOOP, NULL, 0) == 0)
		r->noop_index = r->n;
	else
		r->noop_index = UINT64_MAX;
	r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
	r->cq_deadline = r->now + r->cfg.election_timeout_min_ms;
	broadcast(r, true);
}

/* ---- elections ---------------------------------------------------------- */

static void request_votes(struct raft *r, bool pre)
{
	for (unsigned i = 0; i < r->cfg.n_voters; i++) {
		struct rf_msg m = { 0 };

		r->peers[i].granted = false;
		if (i == r->self)
			continue;
		m.type = RF_MSG_VOTE;
		m.prevote = pre;
		m.from = r->cfg.id;
		m.to = r->peers[i].id;
		m.term = pre ? r->term + 1 : r->term;
		m.last_index = r->n;
		m.last_term = term_at(r, r->n);
		if (pre)
			send_now(r, &m);
		else    /* only once our own vote for ourselves is synced */
			send_held(r, &m, 0, 0);
	}
}

static void start_prevote(struct raft *r)
{
	r->role = RF_PRECANDIDATE;
	r->leader = 0;
	reset_election(r);
	request_votes(r, true);
}

static void start_election(struct raft *r)
{
	r->role = RF_CANDIDATE;
	r->leader = 0;
	r->term++;
	r->vote = r->cfg.id;
	r->hs_dirty = true;
	reset_election(r);
	request_votes(r, false);
}

static unsigned count_granted(const struct raft *r)
{
	unsigned n = 0;

	for (unsigned i = 0; i < r->cfg.n_voters; i++)
		if (i != r->self && r->peers[i].granted)
			n++;
	return n;
}

static void try_win(struct raft *r)
{
	if (r->role == RF_PRECANDIDATE && count_granted(r) + 1 >= quorum(r))
		start_election(r);
	bool self_ok = (r->durable_term == r->term &&
			r->durable_vote == r->cfg.id) ||
		       (r->cfg.test_break & RF_BREAK_ACK_UNSYNCED);

	if (r->role == RF_CANDIDATE && self_ok &&
	    count_granted(r) + 1 >= quorum(r))
		become_leader(r);
}

static struct peer *peer_of(struct raft *r, uint64_t id)
{
	for (unsigned i = 0; i < r->cfg.n_voters; i++)
		if (r->peers[i].id == id && i != r->self)
			return &r->peers[i];
	return NULL;
}

static bool log_ok(const struct raft *r, uint64_t last_index, uint64_t last_term)
{
	uint64_t lt = term_at(r, r->n);

	if (r->cfg.test_break & RF_BREAK_VOTE_ANY_LOG)
		return true;
	return last_term > lt || (last_term == lt && last_index >= r->n);
}

static void on_vote(struct raft *r, const struct rf_msg *m)
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
	if (m->prevote) {
		grant = m->term > r->term && log_ok(r, m->last_index, m->last_term);
		resp.term = grant ? m->term : r->term;
		resp.ok = grant;
		send_now(r, &resp);
		return;
	}
	if (m->term > r->term)
		become_follower(r, m->term, 0);
	if (m->term == r->term && (!r->vote || r->vote == m->from) &&
	    (r->role == RF_FOLLOWER || r->role == RF_PRECANDIDATE) &&
	    log_ok(r, m->last_index, m->last_term)) {
		grant = true;
		r->role = RF_FOLLOWER;
		if (r->vote != m->from) {
			r->vote = m->from;
			r->hs_dirty = true;
		}
		reset_election(r);
	}
	resp.term = r->term;
	resp.ok = grant;
	if (grant)
		send_held(r, &resp, 0, 0);
	else
		send_now(r, &resp);
}

static void on_vote_resp(struct raft *r, const struct rf_msg *m)
{
	struct peer *p = peer_of(r, m->from);

	if (!p)
		return;
	if (m->prevote) {
		if (r->role == RF_PRECANDIDATE && m->ok && m->term == r->term + 1)
			p->granted = true;
		else if (!m->ok && m->term > r->term)
			become_follower(r, m->term, 0);
		return;
	}
	if (m->term > r->term) {
		become_follower(r, m->term, 0);
		return;
	}
	if (r->role == RF_CANDIDATE && m->term == r->term && m->ok)
		p->granted = true;
}

/* ---- AppendEntries (follower) ------------------------------------------- */

static void on_append(struct raft *r, const struct rf_msg *m)
{
	struct rf_msg resp = { 0 };
	uint64_t match, i;

	resp.type = RF_MSG_APPEND_RESP;
	resp.from = r->cfg.id;
	resp.to = m->from;
	resp.stamp = m->stamp;
	if (m->term < r->term) {
		resp.term = r->term;   /* tells a stale leader to step down */
		send_now(r, &resp);
		return;
	}
	if (r->role == RF_LEADER && m->term == r->term)
		return;                /* impossible with election safety */
	become_follower(r, m->term, m->from);
	resp.term = r->term;
	resp.match_index = m->prev_index;  /* on failure: the index rejected */
	if (m->prev_index > r->n) {
		resp.conflict_index = r->n + 1;
		send_now(r, &resp);
		return;
	}
	if (m->prev_index && term_at(r, m->prev_index) != m->prev_term) {
		uint64_t t = term_at(r, m->prev_index), j = m->prev_index;

		while (j > r->commit + 1 && term_at(r, j - 1) == t)
			j--;
		resp.conflict_index = j;
		resp.conflict_term = t;
		send_now(r, &resp);
		return;
	}
	for (i = 0; i < m->n_entries; i++) {
		uint64_t idx = m->prev_index + 1 + i;
		const struct rf_entry *e = &m->entries[i];

		if (idx <= r->n) {
			if (term_at(r, idx) == e->term)
				continue;
			if (idx <= r->commit)
				return;        /* never undo a commit */
			truncate_from(r, idx);
		}
		if (append_entry(r, e->term, e->type, e->buf, e->len))
			return;        /* ENOMEM: as if lost */
	}
	match = m->prev_index + m->n_entries;
	if (m->commit > r->commit) {
		uint64_t c = m->commit < match ? m->commit : match;

		if (c > r->commit)
			r->commit = c;
	}
	resp.ok = 1;
	resp.match_index = match;
	send_held(r, &resp, match, term_at(r, match));
}

static void on_append_resp(struct raft *r, const struct rf_msg *m)
{
	struct peer *p = peer_of(r, m->from);

	if (m->term > r->term) {
		become_follower(r, m->term, 0);
		return;
	}
	if (!p || r->role != RF_LEADER || m->term != r->term)
		return;
	p->last_ack_ms = r->now;
	if (m->stamp > p->lease_stamp && m->stamp <= r->now)
		p->lease_stamp = m->stamp;
	if (m->ok) {
		if (m->match_index > r->n)
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
		advance_commit(r);
		replicate(r, p, false);
		return;
	}
	/* A rejection of a batch sent before the latest probe, or of entries
	 * already matched, is stale: acting on it would resend everything
	 * once per stale answer. */
	if (m->match_index < p->match ||
	    (p->probing && m->match_index != p->next - 1))
		return;
	/* Fast backtracking: skip the follower's whole conflicting term. */
	uint64_t nn = m->conflict_index;

	if (m->conflict_term) {
		uint64_t j = r->n;

		while (j && term_at(r, j) > m->conflict_term)
			j--;
		if (j && term_at(r, j) == m->conflict_term)
			nn = j + 1;
	}
	if (nn > r->n + 1)
		nn = r->n + 1;
	if (nn < p->match + 1)
		nn = p->match + 1;
	if (nn < p->next || !p->probing) {
		p->next = nn;
		p->inflight = 0;
		p->probing = true;
		send_append(r, p, false);
	}
}

/* ---- timers -------------------------------------------------------------- */

static void on_time(struct raft *r)
{
	if (r->role != RF_LEADER) {
		if (r->now >= r->election_deadline)
			start_prevote(r);
		return;
	}
	if (r->now >= r->cq_deadline) {
		unsigned live = 1;

		for (unsigned i = 0; i < r->cfg.n_voters; i++)
			if (i != r->self && r->now - r->peers[i].last_ack_ms <
					    r->cfg.election_timeout_min_ms)
				live++;
		if (live < quorum(r)) {
			become_follower(r, r->term, 0);
			return;
		}
		r->cq_deadline = r->now + r->cfg.election_timeout_min_ms;
	}
	if (r->now >= r->heartbeat_deadline) {
		for (unsigned i = 0; i < r->cfg.n_voters; i++) {
			struct peer *p = &r->peers[i];

			if (i == r->self)
				continue;
			/* Batches lost in flight: resend from the last match. */
			if (p->next > p->match + 1 &&
			    r->now - p->progress_ms >= 3ull * r->cfg.heartbeat_ms) {
				p->next = p->match + 1;
				p->inflight = 0;
				p->progress_ms = r->now;
			}
			replicate(r, p, true);
		}
		r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
	}
}

/* ---- step ---------------------------------------------------------------- */

static void on_persisted(struct raft *r, uint64_t seq)
{
	size_t k = 0;

	for (size_t i = 0; i < r->nwr; i++) {
		struct wrec *w = &r->wr[i];

		if (w->seq > seq) {
			r->wr[k++] = *w;
			continue;
		}
		r->durable_term = w->term;
		r->durable_vote = w->vote;
		if (w->upto > r->durable_index)
			r->durable_index = w->upto;
	}
	r->nwr = k;
	if (seq > r->durable_seq)
		r->durable_seq = seq;
}

static int on_start(struct raft *r, const struct rf_event *ev)
{
	const struct rf_entry *e = ev->start.entries;

	if (ev->start.vote && !peer_of(r, ev->start.vote) &&
	    ev->start.vote != r->cfg.id)
		return -EINVAL;
	for (uint64_t i = 0; i < ev->start.n_entries; i++) {
		if (e[i].term > ev->start.term || (i && e[i].term < e[i - 1].term) ||
		    (e[i].len && !e[i].buf))
			return -EINVAL;
	}
	for (uint64_t i = 0; i < ev->start.n_entries; i++)
		if (append_entry(r, e[i].term, e[i].type, e[i].buf, e[i].len))
			return -ENOMEM;
	r->term = r->durable_term = ev->start.term;
	r->vote = r->durable_vote = ev->start.vote;
	r->durable_index = r->n;
	r->dirty_from = 0;
	r->role = RF_FOLLOWER;
	r->leader = 0;
	/* We may have granted a lease-protecting ack just before a crash. */
	r->vote_block_until = r->now + r->cfg.election_timeout_min_ms;
	reset_election(r);
	r->started = true;
	return 0;
}

static int grow_wr(struct raft *r)
{
	if (r->nwr == r->capwr) {
		size_t nc = r->capwr ? r->capwr * 2 : 16;
		struct wrec *nv = realloc(r->wr, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		r->wr = nv;
		r->capwr = nc;
	}
	return 0;
}

static void finish(struct raft *r, struct rf_update *u)
{
	size_t k = 0;

	try_win(r);
	if (r->role == RF_LEADER)
		advance_commit(r);
	if ((r->hs_dirty || r->dirty_from) && grow_wr(r) == 0) {
		u->write_seq = ++r->wseq;
		if (r->hs_dirty) {
			u->flags |= RF_UPD_HARDSTATE;
			u->hs_term = r->term;
			u->hs_vote = r->vote;
		}
		if (r->dirty_from) {
			uint64_t keep = r->dirty_from - 1;

			for (size_t i = 0; i < r->nwr; i++)
				if (r->wr[i].upto > keep)
					r->wr[i].upto = keep;
			if (r->durable_index > keep)
				r->durable_index = keep;
			u->flags |= RF_UPD_ENTRIES;
			u->first_index = r->dirty_from;
			u->n_entries = r->n >= r->dirty_from ?
				       r->n - r->dirty_from + 1 : 0;
			u->entries = u->n_entries ? &r->log[r->dirty_from - 1] : NULL;
		}
		r->wr[r->nwr++] = (struct wrec){ r->wseq, r->n, r->term, r->vote };
	}
	r->hs_dirty = false;
	r->dirty_from = 0;
	for (size_t i = 0; i < r->nheld; i++) {
		struct held *h = &r->held[i];

		if (!h->need_seq)
			h->need_seq = r->wseq;
		/* An ack for entries a later leader replaced is a lie. */
		if (h->check_index && term_at(r, h->check_index) != h->check_term)
			continue;
		if (h->need_seq <= r->durable_seq ||
		    (r->cfg.test_break & RF_BREAK_ACK_UNSYNCED)) {
			send_now(r, &h->m);
			continue;
		}
		r->held[k++] = *h;
	}
	r->nheld = k;
	if (r->commit > r->applied) {
		u->commit_first = r->applied + 1;
		u->n_committed = r->commit - r->applied;
		u->committed = &r->log[r->applied];
		r->applied = r->commit;
	}
	/* The log may have grown (moved) after a batch was queued. */
	for (size_t i = 0; i < r->nout; i++)
		if (r->out[i].type == RF_MSG_APPEND && r->out[i].n_entries)
			r->out[i].entries = &r->log[r->out[i].prev_index];
	u->msgs = r->out;
	u->n_msgs = r->nout;
	u->next_deadline_ms = r->role == RF_LEADER ?
		(r->heartbeat_deadline < r->cq_deadline ? r->heartbeat_deadline
							 : r->cq_deadline) :
		r->election_deadline;
	u->role = r->role;
	u->term = r->term;
	u->leader = r->leader;
}

/* Feeds one event; see raft.h. */
int rf_step(struct raft *r, const struct rf_event *ev, struct rf_update *u)
{
	uint8_t role0 = r->role;
	uint64_t term0 = r->term, leader0 = r->leader;
	int rc = 0;

	memset(u, 0, sizeof(*u));
	r->nout = 0;
	if (!ev || (!r->started) != (ev->type == RF_EV_START))
		return -EINVAL;
	if (ev->now_ms < r->now)
		return -EINVAL;        /* clocks given to us never go back */
	r->now = ev->now_ms;
	switch (ev->type) {
	case RF_EV_START:
		rc = on_start(r, ev);
		if (rc)
			return rc;
		break;
	case RF_EV_RECEIVE: {
		const struct rf_msg *m = ev->receive;

		if (!m || m->to != r->cfg.id || !peer_of(r, m->from) ||
		    (m->n_entries && !m->entries))
			return -EINVAL;
		on_time(r);
		switch (m->type) {
		case RF_MSG_VOTE:
			on_vote(r, m);
			break;
		case RF_MSG_VOTE_RESP:
			on_vote_resp(r, m);
			break;
		case RF_MSG_APPEND:
			on_append(r, m);
			break;
		case RF_MSG_APPEND_RESP:
			on_append_resp(r, m);
			break;
		default:
			return -EINVAL;
		}
		break;
	}
	case RF_EV_TIMEOUT:
		on_time(r);
		break;
	case RF_EV_PROPOSE:
		on_time(r);
		if (ev->propose.len > RF_ENTRY_MAX) {
			rc = -E2BIG;
			break;
		}
		if (r->role != RF_LEADER) {
			rc = -EPERM;
			break;
		}
		rc = append_entry(r, r->term, RF_ENTRY_CMD, ev->propose.buf,
				  ev->propose.len);
		if (rc)
			break;
		u->proposed_index = r->n;
		broadcast(r, false);
		break;
	case RF_EV_PERSISTED:
		if (ev->persisted.seq > r->wseq)
			return -EINVAL;
		on_persisted(r, ev->persisted.seq);
		on_time(r);
		break;
	default:
		return -EINVAL;
	}
	{
		uint64_t pi = u->proposed_index;

		finish(r, u);
		u->proposed_index = pi;
	}
	if (u->role != role0 || u->term != term0 || u->leader != leader0)
		u->flags |= RF_UPD_ROLE;
	return rc;
}

/* ---- lifecycle and views ------------------------------------------------- */

/* Fills timing and size defaults; see raft.h. */
void rf_config_defaults(struct rf_config *c)
{
	c->election_timeout_min_ms = 1000;
	c->election_timeout_max_ms = 2000;
	c->heartbeat_ms = 100;
	c->max_clock_drift_ms = 50;
	c->max_msg_bytes = RF_MSG_BUDGET;
	c->max_inflight = 4;
}

/* Creates an engine; see raft.h. */
int rf_new(const struct rf_config *cfg, struct raft **out)
{
	struct raft *r;
	bool found = false;

	if (!cfg || !out || !cfg->id || !cfg->n_voters ||
	    cfg->n_voters > RF_MAX_VOTERS || !cfg->election_timeout_min_ms ||
	    cfg->election_timeout_min_ms > cfg->election_timeout_max_ms ||
	    !cfg->heartbeat_ms || !cfg->max_inflight ||
	    cfg->max_clock_drift_ms >= cfg->election_timeout_min_ms ||
	    cfg->max_msg_bytes > RF_MSG_MAX ||
	    cfg->max_msg_bytes < RF_HDR_BYTES + RF_APPEND_BYTES + RF_ENTRY_HDR + RF_ENTRY_MAX)
		return -EINVAL;
	for (unsigned i = 0; i < cfg->n_voters; i++) {
		if (!cfg->voters[i])
			return -EINVAL;
		for (unsigned j = 0; j < i; j++)
			if (cfg->voters[j] == cfg->voters[i])
				return -EINVAL;
		if (cfg->voters[i] == cfg->id)
			found = true;
	}
	if (!found)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	r->rng = cfg->seed ^ (cfg->id * 0x2545f4914f6cdd1dull);
	for (unsigned i = 0; i < cfg->n_voters; i++) {
		r->peers[i].id = cfg->voters[i];
		if (cfg->voters[i] == cfg->id)
			r->self = i;
	}
	*out = r;
	return 0;
}

/* Frees the engine and its log. */
void rf_free(struct raft *r)
{
	if (!r)
		return;
	for (uint64_t i = 0; i < r->n; i++)
		free((void *)r->log[i].buf);
	free(r->log);
	free(r->wr);
	free(r->held);
	free(r->out);
	free(r);
}

/* Lease check; see raft.h. */
int rf_lease_valid(const struct raft *r, uint64_t now_ms)
{
	uint64_t span = r->cfg.election_timeout_min_ms - r->cfg.max_clock_drift_ms;
	unsigned n = 1;

	if (r->role != RF_LEADER || r->commit < r->noop_index)
		return 0;
	for (unsigned i = 0; i < r->cfg.n_voters; i++)
		if (i != r->self && r->peers[i].lease_stamp &&
		    r->peers[i].lease_stamp + span > now_ms)
			n++;
	return n >= quorum(r);
}

/* Current role. */
uint8_t rf_role(const struct raft *r) { return r->role; }
/* Current term. */
uint64_t rf_term(const struct raft *r) { return r->term; }
/* Known leader, 0 if none. */
uint64_t rf_leader(const struct raft *r) { return r->leader; }
/* Highest index known committed. */
uint64_t rf_commit_index(const struct raft *r) { return r->commit; }
/* Index of the last entry in the log. */
uint64_t rf_last_index(const struct raft *r) { return r->n; }

/* Entry at `index`, or NULL outside the log. */
const struct rf_entry *rf_entry_at(const struct raft *r, uint64_t index)
{
	return index && index <= r->n ? &r->log[index - 1] : NULL;
}

/* ---- wire codec ---------------------------------------------------------- */

static uint8_t *put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + 8;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + 4;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static size_t body_size(uint8_t type)
{
	switch (type) {
	case RF_MSG_VOTE: return 16;
	case RF_MSG_VOTE_RESP: return 0;
	case RF_MSG_APPEND: return RF_APPEND_BYTES;
	case RF_MSG_APPEND_RESP: return 32;
	default: return 0;
	}
}

/* Exact encoded size; see raft.h. */
size_t rf_msg_size(const struct rf_msg *m)
{
	size_t n = RF_HDR_BYTES + body_size(m->type);

	if (m->type == RF_MSG_APPEND)
		for (uint32_t i = 0; i < m->n_entries; i++)
			n += RF_ENTRY_HDR + m->entries[i].len;
	return n;
}

/* Encodes; see raft.h. */
int rf_msg_encode(const struct rf_msg *m, uint8_t *buf, size_t size)
{
	size_t len;
	uint8_t *p = buf;

	if (!m || !m->type || m->type >= RF_MSG__COUNT ||
	    (m->n_entries && (!m->entries || m->type != RF_MSG_APPEND)))
		return -EINVAL;
	len = rf_msg_size(m);
	if (len > size || len > RF_MSG_MAX)
		return -EMSGSIZE;
	*p++ = RF_MSG_VERSION;
	*p++ = m->type;
	*p++ = (uint8_t)((m->prevote ? 1 : 0) | (m->ok ? 2 : 0));
	*p++ = 0;
	p = put32(p, (uint32_t)len);
	p = put64(p, m->from);
	p = put64(p, m->to);
	p = put64(p, m->term);
	switch (m->type) {
	case RF_MSG_VOTE:
		p = put64(p, m->last_index);
		p = put64(p, m->last_term);
		break;
	case RF_MSG_APPEND:
		p = put64(p, m->prev_index);
		p = put64(p, m->prev_term);
		p = put64(p, m->commit);
		p = put64(p, m->stamp);
		p = put32(p, m->n_entries);
		for (uint32_t i = 0; i < m->n_entries; i++) {
			const struct rf_entry *e = &m->entries[i];

			p = put64(p, e->term);
			*p++ = e->type;
			p = put32(p, e->len);
			if (e->len)
				memcpy(p, e->buf, e->len);
			p += e->len;
		}
		break;
	case RF_MSG_APPEND_RESP:
		p = put64(p, m->match_index);
		p = put64(p, m->conflict_index);
		p = put64(p, m->conflict_term);
		p = put64(p, m->stamp);
		break;
	default:
		break;
	}
	return (int)(p - buf);
}

/* Decodes; see raft.h. */
int rf_msg_decode(const uint8_t *buf, size_t len, struct rf_msg *m)
{
	const uint8_t *p = buf, *end = buf + len;
	struct rf_entry *ev = NULL;

	memset(m, 0, sizeof(*m));
	if (!buf || len < RF_HDR_BYTES || len > RF_MSG_MAX ||
	    buf[0] != RF_MSG_VERSION || !buf[1] || buf[1] >= RF_MSG__COUNT ||
	    (buf[2] & ~3u) || buf[3] || get32(buf + 4) != len)
		return -EINVAL;
	m->type = buf[1];
	m->prevote = buf[2] & 1;
	m->ok = (buf[2] >> 1) & 1;
	m->from = get64(buf + 8);
	m->to = get64(buf + 16);
	m->term = get64(buf + 24);
	p = buf + RF_HDR_BYTES;
	if ((size_t)(end - p) < body_size(m->type))
		return -EINVAL;
	if (m->prevote && m->type != RF_MSG_VOTE && m->type != RF_MSG_VOTE_RESP)
		return -EINVAL;
	switch (m->type) {
	case RF_MSG_VOTE:
		m->last_index = get64(p);
		m->last_term = get64(p + 8);
		p += 16;
		break;
	case RF_MSG_APPEND:
		m->prev_index = get64(p);
		m->prev_term = get64(p + 8);
		m->commit = get64(p + 16);
		m->stamp = get64(p + 24);
		m->n_entries = get32(p + 32);
		p += RF_APPEND_BYTES;
		/* Each entry needs at least its header: bounds the allocation. */
		if (m->n_entries > (size_t)(end - p) / RF_ENTRY_HDR)
			return -EINVAL;
		if (m->n_entries) {
			ev = calloc(m->n_entries, sizeof(*ev));
			if (!ev)
				return -ENOMEM;
		}
		for (uint32_t i = 0; i < m->n_entries; i++) {
			if ((size_t)(end - p) < RF_ENTRY_HDR)
				goto fail_entries;
			ev[i].term = get64(p);
			ev[i].type = p[8];
			ev[i].len = get32(p + 9);
			p += RF_ENTRY_HDR;
			if (ev[i].type > RF_ENTRY_CMD ||
			    ev[i].len > (size_t)(end - p))
				goto fail_entries;
			ev[i].buf = ev[i].len ? p : NULL;
			p += ev[i].len;
		}
		m->entries = ev;
		break;
	case RF_MSG_APPEND_RESP:
		m->match_index = get64(p);
		m->conflict_index = get64(p + 8);
		m->conflict_term = get64(p + 16);
		m->stamp = get64(p + 24);
		p += 32;
		break;
	default:
		break;
	}
	if (p != end)
		goto fail_entries;
	return 0;

fail_entries:
	free(ev);
	memset(m, 0, sizeof(*m));
	return -EINVAL;
}

/* Frees what rf_msg_decode() allocated. */
void rf_msg_release(struct rf_msg *m)
{
	if (m) {
		free((void *)m->entries);
		m->entries = NULL;
		m->n_entries = 0;
	}
}
