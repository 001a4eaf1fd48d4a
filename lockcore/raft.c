/*
 * lockcore/raft.c - Raft as a pure step function (see raft.h): pre-vote,
 * check-quorum, leader leases, batched and pipelined replication with fast
 * backtracking, log compaction with chunked snapshot transfer, single-server
 * membership changes with learners, read-index, and the wire codec of its
 * messages.
 *
 * Must never: read a clock, do I/O, use any randomness but its own PRNG,
 * acknowledge a vote, entries or a snapshot before the driver reported them
 * synced, count its own unsynced entries (or a learner) toward commitment,
 * commit an entry of an earlier term by counting, count a learner's vote,
 * let a learner campaign (but for a node its own uncommitted newest
 * configuration left out, see may_campaign), or read outside a buffer it
 * decodes.
 *
 * Snapshot stream (what RF_MSG_SNAP chunks carry, in order): conf_len u32
 * (little endian), the configuration encoded as rf_conf_encode() does, then
 * the state machine's bytes.  The engine keeps its latest snapshot in that
 * framing, so a chunk is a slice of one buffer.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/raft.h"
#include "lockcore/le.h"

#define RF_MAX_PEERS   (RF_MAX_VOTERS + RF_MAX_LEARNERS)
#define SNAP_BODY      44u            /* SNAP fields after the header */

struct peer {
	uint64_t id;
	bool     voter;
	uint64_t next, match;
	uint32_t inflight;             /* AppendEntries with entries not yet answered */
	bool     probing;              /* after a rejection: one batch at a time
	                                  from next, until one succeeds */
	uint64_t last_ack_ms;          /* local time of the last answer this term */
	uint64_t progress_ms;          /* local time match (or a snapshot
	                                  transfer) last advanced */
	uint64_t lease_stamp;          /* latest echoed stamp this term */
	uint64_t sent_commit;          /* commit index we last told it */
	bool     granted;              /* (pre)vote granted this round */
	/* snapshot transfer: active while `snap` */
	bool     snap;
	uint64_t snap_idx;             /* which snapshot is being sent */
	uint64_t snap_next, snap_acked, snap_gap;
	uint32_t snap_inflight;
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

/* A read index waiting for a quorum to confirm this leadership. */
struct pread {
	uint64_t ctx, index, need, term;
};

struct raft {
	struct rf_config cfg;
	uint64_t rng;
	bool started;

	uint64_t term, vote, leader;
	uint8_t role;
	bool catching_up;      /* cfg.catch_up, until caught_up() */
	uint64_t lead_commit;  /* while catching up: the highest commit a
	                          leader reported in an append we took */

	/* log[k] is index snap_index + 1 + k; buf owned */
	struct rf_entry *log;
	uint64_t n, cap;
	uint64_t commit, applied;

	/* the latest snapshot, in stream framing (see the top comment) */
	uint64_t snap_index, snap_term;
	uint8_t *snap;
	size_t snap_total, snap_state_off;
	struct rf_conf snap_conf;

	/* a snapshot being received, in order */
	uint8_t *rx;
	size_t rx_len, rx_cap;
	uint64_t rx_index, rx_term, rx_total;

	/* configurations: in force, bootstrap; conf_index 0 when not from
	 * the log */
	struct rf_conf conf, boot_conf;
	uint64_t conf_index;
	bool self_voter;

	uint64_t wseq, durable_seq, durable_index, durable_term, durable_vote;
	struct wrec *wr;
	size_t nwr, capwr;

	struct held *held;
	size_t nheld, capheld;

	struct pread *reads;
	size_t nreads, capreads;
	uint64_t read_send_at;         /* a heartbeat round owed to reads */
	uint64_t last_stamp;           /* stamp of the latest APPEND/SNAP sent */

	uint64_t election_deadline, heartbeat_deadline, cq_deadline;
	uint64_t last_heard_ms, vote_block_until;
	uint64_t noop_index;

	struct peer peers[RF_MAX_PEERS];   /* everyone in conf but self */
	unsigned npeers;

	/* per step */
	bool hs_dirty, snap_dirty, conf_changed;
	uint64_t dirty_from;
	struct rf_msg *out;
	size_t nout, capout;
	struct rf_read *rout;
	size_t nrout, caprout;
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

static uint64_t last_index(const struct raft *r)
{
	return r->snap_index + r->n;
}

/* Entry at index i, which the caller knows is in (snap_index, last]. */
static struct rf_entry *ent(const struct raft *r, uint64_t i)
{
	return &r->log[i - r->snap_index - 1];
}

static unsigned quorum(const struct raft *r)
{
	return r->conf.n_voters / 2 + 1;
}

/* Term of index i; 0 when unknown (compacted below the snapshot or beyond
 * the log). */
static uint64_t term_at(const struct raft *r, uint64_t i)
{
	if (i == r->snap_index)
		return r->snap_term;
	return i > r->snap_index && i <= last_index(r) ? ent(r, i)->term : 0;
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
	if (m->type == RF_MSG_APPEND || m->type == RF_MSG_SNAP)
		r->last_stamp = m->stamp;
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

static void emit_read(struct raft *r, uint64_t ctx, uint64_t index)
{
	if (r->nrout == r->caprout) {
		size_t nc = r->caprout ? r->caprout * 2 : 8;
		struct rf_read *nv = realloc(r->rout, nc * sizeof(*nv));

		if (!nv)
			return;        /* the driver times the read out */
		r->rout = nv;
		r->caprout = nc;
	}
	r->rout[r->nrout++] = (struct rf_read){ ctx, index };
}

/* ---- configurations ----------------------------------------------------- */

static bool conf_has(const uint64_t *ids, unsigned n, uint64_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

static bool conf_eq(const struct rf_conf *a, const struct rf_conf *b)
{
	return a->n_voters == b->n_voters && a->n_learners == b->n_learners &&
	       !memcmp(a->voters, b->voters, a->n_voters * sizeof(a->voters[0])) &&
	       !memcmp(a->learners, b->learners,
		       a->n_learners * sizeof(a->learners[0]));
}

static struct peer *peer_of(struct raft *r, uint64_t id)
{
	for (unsigned i = 0; i < r->npeers; i++)
		if (r->peers[i].id == id)
			return &r->peers[i];
	return NULL;
}

static void init_peer(struct raft *r, struct peer *p, uint64_t id)
{
	memset(p, 0, sizeof(*p));
	p->id = id;
	/* The newest entry probes: a fresh node rejects it and says where
	 * its log ends. */
	p->next = last_index(r) ? last_index(r) : 1;
	p->last_ack_ms = r->now;
	p->progress_ms = r->now;
}

/* Makes peers[] follow r->conf, keeping the progress of those who stay. */
static void rebuild_peers(struct raft *r)
{
	struct peer np[RF_MAX_PEERS];
	unsigned k = 0;

	for (unsigned pass = 0; pass < 2; pass++) {
		const uint64_t *ids = pass ? r->conf.learners : r->conf.voters;
		unsigned n = pass ? r->conf.n_learners : r->conf.n_voters;

		for (unsigned i = 0; i < n; i++) {
			struct peer *old;

			if (ids[i] == r->cfg.id)
				continue;
			old = peer_of(r, ids[i]);
			if (old)
				np[k] = *old;
			else
				init_peer(r, &np[k], ids[i]);
			np[k].voter = !pass;
			if (pass)
				np[k].granted = false;
			k++;
		}
	}
	memcpy(r->peers, np, k * sizeof(np[0]));
	r->npeers = k;
	r->self_voter = conf_has(r->conf.voters, r->conf.n_voters, r->cfg.id);
}

static void set_conf(struct raft *r, const struct rf_conf *c, uint64_t index)
{
	r->conf_index = index;
	if (conf_eq(&r->conf, c))
		return;
	r->conf = *c;
	r->conf_changed = true;
	rebuild_peers(r);
}

/* The configuration in force at `index` (>= snap_index): the latest CONF
 * entry up to it, else the snapshot's, else the bootstrap one.  Sets
 * *at to the entry's index (0 when not from the log). */
static void conf_at(const struct raft *r, uint64_t index, struct rf_conf *c,
		    uint64_t *at)
{
	for (uint64_t i = index; i > r->snap_index; i--) {
		const struct rf_entry *e = ent(r, i);

		/* Entries were validated when they entered the log. */
		if (e->type == RF_ENTRY_CONF && rf_conf_decode(e->buf, e->len, c) == 0) {
			*at = i;
			return;
		}
	}
	*c = r->snap_index ? r->snap_conf : r->boot_conf;
	*at = 0;
}

static void recompute_conf(struct raft *r)
{
	struct rf_conf c;
	uint64_t at;

	conf_at(r, last_index(r), &c, &at);
	set_conf(r, &c, at);
}

/* ---- the log ------------------------------------------------------------ */

static void truncate_from(struct raft *r, uint64_t from)
{
	while (last_index(r) >= from && r->n) {
		free((void *)r->log[r->n - 1].buf);
		r->n--;
	}
	mark_dirty(r, from);
	if (r->conf_index >= from)
		recompute_conf(r);
}

/* Appends one entry; a CONF entry takes effect at once (Raft dissertation
 * 4.1: a server uses the latest configuration in its log). */
static int append_entry(struct raft *r, uint64_t term, uint8_t type,
			const uint8_t *buf, uint32_t len)
{
	struct rf_conf c;
	uint8_t *copy = NULL;

	if (type == RF_ENTRY_CONF && rf_conf_decode(buf, len, &c))
		return -EINVAL;
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
	mark_dirty(r, last_index(r));
	if (type == RF_ENTRY_CONF)
		set_conf(r, &c, last_index(r));
	return 0;
}

/* Forgets entries up to `index` (in the log). */
static void compact_to(struct raft *r, uint64_t index)
{
	uint64_t drop = index - r->snap_index;

	for (uint64_t i = 0; i < drop; i++)
		free((void *)r->log[i].buf);
	memmove(r->log, r->log + drop, (r->n - drop) * sizeof(r->log[0]));
	r->n -= drop;
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
	send_now(r, &m);
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
static void send_snap(struct raft *r, struct peer *p, bool force)
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
		send_now(r, &m);
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
		send_now(r, &m);
	}
}

/* Sends what the peer lacks, keeping at most max_inflight batches in
 * flight; `force` sends at least a heartbeat. */
static void replicate(struct raft *r, struct peer *p, bool force)
{
	bool sent = false;

	if (p->snap || p->next <= r->snap_index) {
		send_snap(r, p, force);
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

static void broadcast(struct raft *r, bool force)
{
	for (unsigned i = 0; i < r->npeers; i++)
		replicate(r, &r->peers[i], force);
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
static void advance_commit(struct raft *r)
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
		broadcast(r, false);
		for (unsigned i = 0; i < r->npeers; i++)
			notify_commit(r, &r->peers[i]);
	}
}

static void become_leader(struct raft *r)
{
	r->role = RF_LEADER;
	r->leader = r->cfg.id;
	for (unsigned i = 0; i < r->npeers; i++) {
		struct peer *p = &r->peers[i];
		bool voter = p->voter;

		init_peer(r, p, p->id);
		p->voter = voter;
		p->next = last_index(r) + 1;
	}
	/* The no-op lets the leader commit the entries of earlier terms. */
	if (append_entry(r, r->term, RF_ENTRY_NOOP, NULL, 0) == 0)
		r->noop_index = last_index(r);
	else
		r->noop_index = UINT64_MAX;
	r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
	r->cq_deadline = r->now + r->cfg.election_timeout_min_ms;
	r->read_send_at = 0;
	broadcast(r, true);
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
static bool may_campaign(const struct raft *r)
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
static void caught_up(struct raft *r)
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

static void try_win(struct raft *r)
{
	unsigned self = r->self_voter ? 1 : 0;

	if (!may_campaign(r))
		return;
	if (r->role == RF_PRECANDIDATE && count_granted(r) + self >= quorum(r))
		start_election(r);
	bool self_ok = (r->durable_term == r->term &&
			r->durable_vote == r->cfg.id) ||
		       (r->cfg.test_break & RF_BREAK_ACK_UNSYNCED);

	if (r->role == RF_CANDIDATE && self_ok &&
	    count_granted(r) + self >= quorum(r))
		become_leader(r);
}

static bool log_ok(const struct raft *r, uint64_t li, uint64_t lt)
{
	uint64_t last = last_index(r), t = term_at(r, last);

	if (r->cfg.test_break & RF_BREAK_VOTE_ANY_LOG)
		return true;
	return lt > t || (lt == t && li >= last);
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
	if (r->catching_up) {
		/* No vote before we hold what we once acknowledged; the
		 * term still moves, so we never go back to an old one. */
		if (!m->prevote && m->term > r->term)
			become_follower(r, m->term, 0);
		resp.term = r->term;
		send_now(r, &resp);
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
		send_now(r, &resp);
		return;
	}
	if (m->term > r->term)
		become_follower(r, m->term, 0);
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

	if (m->prevote) {
		if (p && p->voter && r->role == RF_PRECANDIDATE && m->ok &&
		    m->term == r->term + 1)
			p->granted = true;
		else if (!m->ok && m->term > r->term)
			become_follower(r, m->term, 0);
		return;
	}
	if (m->term > r->term) {
		become_follower(r, m->term, 0);
		return;
	}
	if (p && p->voter && r->role == RF_CANDIDATE && m->term == r->term && m->ok)
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
	if (m->prev_index > last_index(r)) {
		resp.conflict_index = last_index(r) + 1;
		send_now(r, &resp);
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
		send_now(r, &resp);
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
			truncate_from(r, idx);
		}
		if (append_entry(r, e->term, e->type, e->buf, e->len))
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
	send_held(r, &resp, match > r->snap_index ? match : 0, term_at(r, match));
}

/* What every answer to a leader does first: a newer term deposes it;
 * an answer of its term from a peer counts as contact (and, with the
 * echoed stamp, toward the lease).  Returns the peer to go on with, or
 * NULL when the answer is stale or not for a leader. */
static struct peer *leader_answer(struct raft *r, const struct rf_msg *m)
{
	struct peer *p = peer_of(r, m->from);

	if (m->term > r->term) {
		become_follower(r, m->term, 0);
		return NULL;
	}
	if (!p || r->role != RF_LEADER || m->term != r->term)
		return NULL;
	p->last_ack_ms = r->now;
	if (m->stamp > p->lease_stamp && m->stamp <= r->now)
		p->lease_stamp = m->stamp;
	return p;
}

static void on_append_resp(struct raft *r, const struct rf_msg *m)
{
	struct peer *p = leader_answer(r, m);

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
		advance_commit(r);
		replicate(r, p, false);
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
			send_snap(r, p, false);
		else
			send_append(r, p, false);
	}
}

/* ---- snapshots ---------------------------------------------------------- */

/* Follower: the whole stream is in r->rx; make it our snapshot.  Returns
 * false when the stream does not parse (a broken sender). */
static bool install_rx(struct raft *r)
{
	struct rf_conf c;
	uint32_t clen;

	if (r->rx_len < 4)
		return false;
	clen = le_get32(r->rx);
	if (clen > r->rx_len - 4 || rf_conf_decode(r->rx + 4, clen, &c))
		return false;
	truncate_from(r, r->snap_index + 1);
	r->dirty_from = 0;             /* the snapshot write drops them all */
	for (size_t i = 0; i < r->nwr; i++)
		if (r->wr[i].upto > r->rx_index)
			r->wr[i].upto = r->rx_index;
	if (r->durable_index > r->rx_index)
		r->durable_index = r->rx_index;
	free(r->snap);
	r->snap = r->rx;
	r->snap_total = r->rx_len;
	r->snap_state_off = 4 + (size_t)clen;
	r->snap_index = r->rx_index;
	r->snap_term = r->rx_term;
	r->snap_conf = c;
	r->rx = NULL;
	r->rx_len = r->rx_cap = 0;
	r->rx_index = r->rx_term = r->rx_total = 0;
	r->commit = r->applied = r->snap_index;
	r->snap_dirty = true;
	recompute_conf(r);
	return true;
}

static void on_snap(struct raft *r, const struct rf_msg *m)
{
	struct rf_msg resp = { 0 };

	resp.type = RF_MSG_SNAP_RESP;
	resp.from = r->cfg.id;
	resp.to = m->from;
	resp.prev_index = m->prev_index;
	resp.stamp = m->stamp;
	if (m->term < r->term) {
		resp.term = r->term;
		send_now(r, &resp);
		return;
	}
	if (r->role == RF_LEADER && m->term == r->term)
		return;
	become_follower(r, m->term, m->from);
	resp.term = r->term;
	/* Already have it: committed, or the very entry is in our log (then
	 * everything before it matches too).  Acknowledge once synced. */
	if (m->prev_index <= r->commit ||
	    (m->prev_index <= last_index(r) && m->prev_term &&
	     term_at(r, m->prev_index) == m->prev_term)) {
		resp.ok = 1;
		resp.snap_offset = m->snap_total;
		send_held(r, &resp, m->prev_index > r->snap_index ? m->prev_index : 0,
			  m->prev_term);
		return;
	}
	if (r->rx_index != m->prev_index || r->rx_term != m->prev_term ||
	    r->rx_total != m->snap_total) {
		r->rx_len = 0;
		r->rx_index = m->prev_index;
		r->rx_term = m->prev_term;
		r->rx_total = m->snap_total;
	}
	if (m->snap_offset == r->rx_len && m->data_len &&
	    m->snap_offset + m->data_len <= m->snap_total) {
		size_t need = r->rx_len + m->data_len;

		if (need > r->rx_cap) {
			size_t nc = r->rx_cap ? r->rx_cap * 2 : 4096;
			uint8_t *nv;

			while (nc < need)
				nc *= 2;
			if (nc > r->rx_total)
				nc = r->rx_total;
			nv = realloc(r->rx, nc);
			if (!nv)
				return;        /* as if lost */
			r->rx = nv;
			r->rx_cap = nc;
		}
		memcpy(r->rx + r->rx_len, m->data, m->data_len);
		r->rx_len = need;
	}
	if (r->rx_len == r->rx_total) {
		if (install_rx(r)) {
			resp.ok = 1;
			resp.snap_offset = m->snap_total;
			send_held(r, &resp, 0, 0);     /* after the snapshot write */
			return;
		}
		r->rx_len = 0;         /* broken stream: ask from the start */
	}
	resp.snap_offset = r->rx_len;
	send_now(r, &resp);
}

static void on_snap_resp(struct raft *r, const struct rf_msg *m)
{
	struct peer *p = leader_answer(r, m);

	if (!p)
		return;
	if (m->ok) {
		if (m->prev_index > last_index(r))
			return;        /* bogus */
		if (m->prev_index > p->match) {
			p->match = m->prev_index;
			p->progress_ms = r->now;
		}
		if (!p->snap || m->prev_index < p->snap_idx)
			return;
		p->snap = false;
		p->next = p->match + 1;
		p->inflight = 0;
		p->probing = false;
		advance_commit(r);
		replicate(r, p, false);
		return;
	}
	if (!p->snap || m->prev_index != p->snap_idx || m->snap_offset > p->snap_next)
		return;
	if (p->snap_inflight)
		p->snap_inflight--;
	if (m->snap_offset > p->snap_acked) {
		p->snap_acked = m->snap_offset;
		p->progress_ms = r->now;
	} else if (m->snap_offset == p->snap_acked &&
		   m->snap_offset < p->snap_next && m->snap_offset != p->snap_gap) {
		/* The follower got a chunk it cannot use: one went missing.
		 * Resend from its offset, once per gap (the rest of the
		 * window reports the same offset). */
		p->snap_gap = m->snap_offset;
		p->snap_next = m->snap_offset;
		p->snap_inflight = 0;
	}
	send_snap(r, p, false);
}

/* ---- reads --------------------------------------------------------------- */

static void fail_reads_not_leader(struct raft *r)
{
	for (size_t i = 0; i < r->nreads; i++)
		emit_read(r, r->reads[i].ctx, 0);
	r->nreads = 0;
	r->read_send_at = 0;
}

/* Answers the pending reads whose heartbeat round a quorum acknowledged,
 * once an entry of this term is committed. */
static void check_reads(struct raft *r)
{
	size_t k = 0;

	for (size_t i = 0; i < r->nreads; i++) {
		struct pread *pr = &r->reads[i];
		unsigned n = r->self_voter ? 1 : 0;

		if (pr->term != r->term) {
			emit_read(r, pr->ctx, 0);
			continue;
		}
		for (unsigned j = 0; j < r->npeers; j++)
			if (r->peers[j].voter && r->peers[j].lease_stamp >= pr->need)
				n++;
		if (n >= quorum(r) && r->commit >= r->noop_index) {
			emit_read(r, pr->ctx, pr->index > r->noop_index ?
					     pr->index : r->noop_index);
			continue;
		}
		r->reads[k++] = *pr;
	}
	r->nreads = k;
}

static int on_read(struct raft *r, uint64_t ctx)
{
	uint64_t need;

	/* Only messages sent after the request prove leadership after it:
	 * one sent earlier within the same millisecond has the same stamp. */
	need = r->last_stamp >= r->now ? r->now + 1 : r->now;
	if (r->role != RF_LEADER)
		return -EPERM;
	if (rf_lease_valid(r, r->now)) {
		emit_read(r, ctx, r->commit);
		return 0;
	}
	if (r->nreads == r->capreads) {
		size_t nc = r->capreads ? r->capreads * 2 : 8;
		struct pread *nv = realloc(r->reads, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		r->reads = nv;
		r->capreads = nc;
	}
	r->reads[r->nreads++] = (struct pread){ ctx, r->commit, need, r->term };
	if (need <= r->now) {
		broadcast(r, true);
		r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
	} else if (!r->read_send_at || r->read_send_at > need) {
		r->read_send_at = need;
	}
	return 0;
}

/* ---- membership ---------------------------------------------------------- */

static int on_conf(struct raft *r, uint8_t op, uint64_t id, struct rf_update *u)
{
	struct rf_conf c;
	uint8_t buf[RF_CONF_MAX_BYTES];
	bool voter, learner;
	int len, rc;

	if (r->role != RF_LEADER)
		return -EPERM;
	c = r->conf;
	voter = conf_has(c.voters, c.n_voters, id);
	learner = conf_has(c.learners, c.n_learners, id);
	if (!id)
		return -EINVAL;
	switch (op) {
	case RF_CONF_ADD_LEARNER:
		if (voter || learner || c.n_learners >= RF_MAX_LEARNERS)
			return -EINVAL;
		c.learners[c.n_learners++] = id;
		break;
	case RF_CONF_ADD_VOTER:
		if (voter || c.n_voters >= RF_MAX_VOTERS)
			return -EINVAL;
		c.voters[c.n_voters++] = id;
		break;
	case RF_CONF_DEMOTE:
		if (!voter || c.n_voters == 1 || (!learner && c.n_learners >= RF_MAX_LEARNERS))
			return -EINVAL;
		c.learners[c.n_learners++] = id;
		break;
	case RF_CONF_REMOVE:
		if ((!voter && !learner) || (voter && c.n_voters == 1))
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	/* Drop id from the list it leaves (promotion, demotion, removal). */
	if (op == RF_CONF_ADD_VOTER || op == RF_CONF_REMOVE) {
		unsigned k = 0;

		for (unsigned i = 0; i < c.n_learners; i++)
			if (c.learners[i] != id)
				c.learners[k++] = c.learners[i];
		c.n_learners = k;
	}
	if (op == RF_CONF_DEMOTE || op == RF_CONF_REMOVE) {
		unsigned k = 0;

		for (unsigned i = 0; i < c.n_voters; i++)
			if (c.voters[i] != id)
				c.voters[k++] = c.voters[i];
		c.n_voters = k;
	}
	/* One change at a time, and only once this term committed an entry
	 * (the dissertation's errata on single-server changes). */
	if (r->conf_index > r->commit || r->commit < r->noop_index)
		return -EBUSY;
	len = rf_conf_encode(&c, buf, sizeof(buf));
	if (len < 0)
		return -EINVAL;
	rc = append_entry(r, r->term, RF_ENTRY_CONF, buf, (uint32_t)len);
	if (rc)
		return rc;
	u->proposed_index = last_index(r);
	broadcast(r, false);
	return 0;
}

/* ---- timers -------------------------------------------------------------- */

static void on_time(struct raft *r)
{
	if (r->role != RF_LEADER) {
		if (r->now >= r->election_deadline) {
			if (may_campaign(r))
				start_prevote(r);
			else
				reset_election(r);     /* learners never campaign */
		}
		return;
	}
	if (r->now >= r->cq_deadline) {
		unsigned live = r->self_voter ? 1 : 0;

		for (unsigned i = 0; i < r->npeers; i++)
			if (r->peers[i].voter && r->now - r->peers[i].last_ack_ms <
						 r->cfg.election_timeout_min_ms)
				live++;
		if (live < quorum(r)) {
			become_follower(r, r->term, 0);
			return;
		}
		r->cq_deadline = r->now + r->cfg.election_timeout_min_ms;
	}
	if (r->now >= r->heartbeat_deadline ||
	    (r->read_send_at && r->now >= r->read_send_at)) {
		for (unsigned i = 0; i < r->npeers; i++) {
			struct peer *p = &r->peers[i];

			/* Batches or chunks lost in flight: resend from what
			 * was last acknowledged. */
			if (p->snap && p->snap_next > p->snap_acked &&
			    r->now - p->progress_ms >= 3ull * r->cfg.heartbeat_ms) {
				p->snap_next = p->snap_acked;
				p->snap_inflight = 0;
				p->snap_gap = UINT64_MAX;
				p->progress_ms = r->now;
			} else if (!p->snap && p->next > p->match + 1 &&
				   r->now - p->progress_ms >= 3ull * r->cfg.heartbeat_ms) {
				p->next = p->match + 1;
				p->inflight = 0;
				p->progress_ms = r->now;
			}
			replicate(r, p, true);
		}
		r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
		r->read_send_at = 0;
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

/* Frames conf and the state bytes in `buf` (from malloc, len bytes) into
 * one snapshot stream, reusing buf.  On error buf is untouched. */
static int frame_snapshot(const struct rf_conf *c, uint8_t *buf, size_t len,
			  uint8_t **out, size_t *total, size_t *state_off)
{
	uint8_t hdr[4 + RF_CONF_MAX_BYTES];
	int clen = rf_conf_encode(c, hdr + 4, sizeof(hdr) - 4);
	uint8_t *nb;

	if (clen < 0)
		return -EINVAL;
	le_put32(hdr, (uint32_t)clen);
	if (len > SIZE_MAX - 4 - (size_t)clen)
		return -EINVAL;
	nb = realloc(buf, len + 4 + (size_t)clen);
	if (!nb)
		return -ENOMEM;
	if (len)
		memmove(nb + 4 + clen, nb, len);
	memcpy(nb, hdr, 4 + (size_t)clen);
	*out = nb;
	*total = len + 4 + (size_t)clen;
	*state_off = 4 + (size_t)clen;
	return 0;
}

static int on_start(struct raft *r, const struct rf_event *ev)
{
	const struct rf_entry *e = ev->start.entries;
	uint64_t si = ev->start.snap_index, st = ev->start.snap_term;
	struct rf_conf c;
	int rc;

	if (ev->start.n_entries && !e)
		return -EINVAL;
	if (si && (!ev->start.snap_conf || !st || st > ev->start.term ||
		   (ev->start.snap_len && !ev->start.snap_buf)))
		return -EINVAL;
	if (si) {
		uint8_t tmp[RF_CONF_MAX_BYTES];
		int clen = rf_conf_encode(ev->start.snap_conf, tmp, sizeof(tmp));

		if (clen < 0 || rf_conf_decode(tmp, (size_t)clen, &c))
			return -EINVAL;
	}
	for (uint64_t i = 0; i < ev->start.n_entries; i++) {
		struct rf_conf x;

		if (e[i].term > ev->start.term || e[i].term < (i ? e[i - 1].term : st) ||
		    (e[i].len && !e[i].buf) || e[i].type > RF_ENTRY_CONF ||
		    (e[i].type == RF_ENTRY_CONF && rf_conf_decode(e[i].buf, e[i].len, &x)))
			return -EINVAL;
	}
	r->snap_index = si;
	r->snap_term = st;
	if (si)
		r->snap_conf = c;
	for (uint64_t i = 0; i < ev->start.n_entries; i++) {
		rc = append_entry(r, e[i].term, e[i].type, e[i].buf, e[i].len);
		if (rc)
			goto undo_entries;
	}
	if (si) {
		rc = frame_snapshot(&c, ev->start.snap_buf, ev->start.snap_len,
				    &r->snap, &r->snap_total, &r->snap_state_off);
		if (rc)
			goto undo_entries;
	}
	r->commit = r->applied = si;
	r->term = r->durable_term = ev->start.term;
	r->vote = r->durable_vote = ev->start.vote;
	r->catching_up = r->cfg.catch_up != 0;
	r->durable_index = last_index(r);
	r->dirty_from = 0;
	r->role = RF_FOLLOWER;
	r->leader = 0;
	/* We may have granted a lease-protecting ack just before a crash. */
	r->vote_block_until = r->now + r->cfg.election_timeout_min_ms;
	reset_election(r);
	recompute_conf(r);
	r->conf_changed = false;       /* the driver knows what it gave us */
	r->started = true;
	return 0;

undo_entries:
	while (r->n)
		free((void *)r->log[--r->n].buf);
	r->snap_index = r->snap_term = 0;
	recompute_conf(r);
	r->conf_changed = false;
	return rc;
}

/* The driver synced a snapshot of the state applied up to ev's index. */
static int on_snapshot(struct raft *r, const struct rf_event *ev)
{
	uint64_t idx = ev->snapshot.index;
	struct rf_conf c;
	uint64_t at;
	uint8_t *nb;
	size_t total, off;
	int rc;

	if (idx > last_index(r) || idx > r->applied || idx <= r->snap_index ||
	    (ev->snapshot.len && !ev->snapshot.buf))
		return -EINVAL;
	conf_at(r, idx, &c, &at);
	rc = frame_snapshot(&c, ev->snapshot.buf, ev->snapshot.len, &nb, &total, &off);
	if (rc)
		return rc;
	r->snap_term = term_at(r, idx);
	compact_to(r, idx);
	free(r->snap);
	r->snap = nb;
	r->snap_total = total;
	r->snap_state_off = off;
	r->snap_index = idx;
	r->snap_conf = c;
	if (r->durable_index < idx)
		r->durable_index = idx;
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
	uint64_t last;

	try_win(r);
	if (r->role == RF_LEADER) {
		advance_commit(r);
		/* Removed or demoted: lead until the change commits, tell
		 * everyone it did, then let the voters elect. */
		if (!r->self_voter && r->conf_index && r->conf_index <= r->commit) {
			broadcast(r, true);
			become_follower(r, r->term, 0);
		}
	}
	if (r->role == RF_LEADER)
		check_reads(r);
	else if (r->nreads)
		fail_reads_not_leader(r);
	last = last_index(r);
	if ((r->hs_dirty || r->dirty_from || r->snap_dirty) && grow_wr(r) == 0) {
		u->write_seq = ++r->wseq;
		if (r->hs_dirty) {
			u->flags |= RF_UPD_HARDSTATE;
			u->hs_term = r->term;
			u->hs_vote = r->vote;
		}
		if (r->snap_dirty) {
			u->flags |= RF_UPD_SNAPSHOT;
			u->snap_index = r->snap_index;
			u->snap_term = r->snap_term;
			u->snap_conf = &r->snap_conf;
			u->snap_buf = r->snap + r->snap_state_off;
			u->snap_len = r->snap_total - r->snap_state_off;
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
			u->n_entries = last >= r->dirty_from ? last - r->dirty_from + 1 : 0;
			u->entries = u->n_entries ? ent(r, r->dirty_from) : NULL;
		}
		r->wr[r->nwr++] = (struct wrec){ r->wseq, last, r->term, r->vote };
	}
	r->hs_dirty = false;
	r->snap_dirty = false;
	r->dirty_from = 0;
	for (size_t i = 0; i < r->nheld; i++) {
		struct held *h = &r->held[i];

		if (!h->need_seq)
			h->need_seq = r->wseq;
		/* An ack for entries a later leader replaced is a lie. */
		if (h->check_index > r->snap_index &&
		    term_at(r, h->check_index) != h->check_term)
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
		u->committed = ent(r, r->applied + 1);
		r->applied = r->commit;
	}
	/* The log may have grown (moved) after a batch was queued; a batch
	 * queued before we lost leadership (and maybe the entries) goes. */
	k = 0;
	for (size_t i = 0; i < r->nout; i++) {
		struct rf_msg *m = &r->out[i];

		if (m->type == RF_MSG_APPEND && m->n_entries) {
			if (r->role != RF_LEADER || m->term != r->term ||
			    m->prev_index < r->snap_index ||
			    m->prev_index + m->n_entries > last)
				continue;
			m->entries = ent(r, m->prev_index + 1);
		}
		if (m->type == RF_MSG_SNAP &&
		    (r->role != RF_LEADER || m->prev_index != r->snap_index))
			continue;
		r->out[k++] = *m;
	}
	r->nout = k;
	u->msgs = r->out;
	u->n_msgs = r->nout;
	u->reads = r->nrout ? r->rout : NULL;
	u->n_reads = r->nrout;
	if (r->conf_changed)
		u->flags |= RF_UPD_CONF;
	r->conf_changed = false;
	if (r->role == RF_LEADER) {
		u->next_deadline_ms = r->heartbeat_deadline < r->cq_deadline ?
				      r->heartbeat_deadline : r->cq_deadline;
		if (r->read_send_at && r->read_send_at < u->next_deadline_ms)
			u->next_deadline_ms = r->read_send_at;
		/* A leader alone in its configuration has nobody to beat
		 * for and cannot lose its quorum: an idle node sleeps. */
		if (!r->npeers && !r->read_send_at)
			u->next_deadline_ms = 0;
	} else {
		u->next_deadline_ms = r->election_deadline;
	}
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
	r->nrout = 0;
	if (!ev || (!r->started) != (ev->type == RF_EV_START))
		return -EINVAL;
	if (ev->now_ms < r->now)
		return -EINVAL;        /* clocks given to us never go back */
	switch (ev->type) {
	case RF_EV_START:
		r->now = ev->now_ms;
		rc = on_start(r, ev);
		if (rc)
			return rc;
		break;
	case RF_EV_RECEIVE: {
		const struct rf_msg *m = ev->receive;

		if (!m || m->to != r->cfg.id || !m->from || m->from == r->cfg.id ||
		    (m->n_entries && !m->entries) || (m->data_len && !m->data) ||
		    !m->type || m->type >= RF_MSG__COUNT)
			return -EINVAL;
		r->now = ev->now_ms;
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
		case RF_MSG_SNAP:
			if (m->snap_offset <= m->snap_total &&
			    m->data_len <= m->snap_total - m->snap_offset)
				on_snap(r, m);
			break;
		case RF_MSG_SNAP_RESP:
			on_snap_resp(r, m);
			break;
		default:
			break;
		}
		break;
	}
	case RF_EV_TIMEOUT:
		r->now = ev->now_ms;
		on_time(r);
		break;
	case RF_EV_PROPOSE:
		r->now = ev->now_ms;
		on_time(r);
		if (ev->propose.len > RF_ENTRY_MAX) {
			rc = -E2BIG;
			break;
		}
		if (ev->propose.len && !ev->propose.buf) {
			rc = -EINVAL;
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
		u->proposed_index = last_index(r);
		broadcast(r, false);
		break;
	case RF_EV_PERSISTED:
		if (ev->persisted.seq > r->wseq)
			return -EINVAL;
		r->now = ev->now_ms;
		on_persisted(r, ev->persisted.seq);
		on_time(r);
		break;
	case RF_EV_SNAPSHOT:
		/* No timers here: nothing may be queued that points into the
		 * entries this compaction frees. */
		rc = on_snapshot(r, ev);
		if (rc)
			return rc;
		r->now = ev->now_ms;
		break;
	case RF_EV_CONF:
		r->now = ev->now_ms;
		on_time(r);
		rc = on_conf(r, ev->conf.op, ev->conf.id, u);
		break;
	case RF_EV_READ:
		r->now = ev->now_ms;
		/* Before on_time: its heartbeats, sent after the request,
		 * may confirm it. */
		rc = on_read(r, ev->read.ctx);
		if (rc != -EPERM)
			on_time(r);
		break;
	default:
		return -EINVAL;
	}
	caught_up(r);
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
	struct rf_conf c = { 0 };
	uint8_t tmp[RF_CONF_MAX_BYTES];
	int len;

	if (!cfg || !out || !cfg->id || !cfg->n_voters ||
	    cfg->n_voters > RF_MAX_VOTERS || cfg->n_learners > RF_MAX_LEARNERS ||
	    !cfg->election_timeout_min_ms ||
	    cfg->election_timeout_min_ms > cfg->election_timeout_max_ms ||
	    !cfg->heartbeat_ms || !cfg->max_inflight ||
	    cfg->max_clock_drift_ms >= cfg->election_timeout_min_ms ||
	    cfg->max_msg_bytes > RF_MSG_MAX ||
	    cfg->max_msg_bytes < RF_HDR_BYTES + RF_APPEND_BYTES + RF_ENTRY_HDR + RF_ENTRY_MAX)
		return -EINVAL;
	memcpy(c.voters, cfg->voters, cfg->n_voters * sizeof(c.voters[0]));
	c.n_voters = cfg->n_voters;
	memcpy(c.learners, cfg->learners, cfg->n_learners * sizeof(c.learners[0]));
	c.n_learners = cfg->n_learners;
	/* The codec's checks: non-zero, unique. */
	len = rf_conf_encode(&c, tmp, sizeof(tmp));
	if (len < 0 || rf_conf_decode(tmp, (size_t)len, &c) ||
	    (!conf_has(c.voters, c.n_voters, cfg->id) &&
	     !conf_has(c.learners, c.n_learners, cfg->id)))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	r->rng = cfg->seed ^ (cfg->id * 0x2545f4914f6cdd1dull);
	r->boot_conf = c;
	r->conf = c;
	rebuild_peers(r);
	*out = r;
	return 0;
}

/* Frees the engine, its log and its snapshot. */
void rf_free(struct raft *r)
{
	if (!r)
		return;
	for (uint64_t i = 0; i < r->n; i++)
		free((void *)r->log[i].buf);
	free(r->log);
	free(r->snap);
	free(r->rx);
	free(r->wr);
	free(r->held);
	free(r->reads);
	free(r->rout);
	free(r->out);
	free(r);
}

/* Lease check; see raft.h. */
int rf_lease_valid(const struct raft *r, uint64_t now_ms)
{
	uint64_t span = r->cfg.election_timeout_min_ms - r->cfg.max_clock_drift_ms;
	unsigned n = r->self_voter ? 1 : 0;

	if (r->role != RF_LEADER || r->commit < r->noop_index)
		return 0;
	for (unsigned i = 0; i < r->npeers; i++)
		if (r->peers[i].voter && r->peers[i].lease_stamp &&
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
int rf_catching_up(const struct raft *r) { return r->catching_up; }
/* Index of the last entry in the log (the snapshot's when it is empty). */
uint64_t rf_last_index(const struct raft *r) { return last_index(r); }
/* First index still in the log. */
uint64_t rf_first_index(const struct raft *r) { return r->snap_index + 1; }
/* The latest snapshot's index, 0 for none. */
uint64_t rf_snapshot_index(const struct raft *r) { return r->snap_index; }
/* The latest snapshot's term, 0 for none. */
uint64_t rf_snapshot_term(const struct raft *r) { return r->snap_term; }
/* The configuration in force. */
const struct rf_conf *rf_conf(const struct raft *r) { return &r->conf; }

/* Entry at `index`, or NULL outside the log (compacted or beyond). */
const struct rf_entry *rf_entry_at(const struct raft *r, uint64_t index)
{
	return index > r->snap_index && index <= last_index(r) ? ent(r, index) : NULL;
}

/* Leader's view of a peer's replicated index; see raft.h. */
uint64_t rf_match_index(const struct raft *r, uint64_t id)
{
	if (r->role != RF_LEADER)
		return 0;
	for (unsigned i = 0; i < r->npeers; i++)
		if (r->peers[i].id == id)
			return r->peers[i].match;
	return 0;
}

/* Leader's local time of the last answer from a peer; see raft.h. */
uint64_t rf_last_ack_ms(const struct raft *r, uint64_t id)
{
	if (r->role != RF_LEADER)
		return 0;
	for (unsigned i = 0; i < r->npeers; i++)
		if (r->peers[i].id == id)
			return r->peers[i].last_ack_ms;
	return 0;
}

/* ---- configuration codec ------------------------------------------------- */

/* Encoded size of a configuration; see raft.h. */
size_t rf_conf_size(const struct rf_conf *c)
{
	return 4 + 8 * ((size_t)c->n_voters + c->n_learners);
}

/* Encodes a configuration; see raft.h. */
int rf_conf_encode(const struct rf_conf *c, uint8_t *buf, size_t size)
{
	uint8_t *p = buf;

	if (!c || c->n_voters > RF_MAX_VOTERS || c->n_learners > RF_MAX_LEARNERS)
		return -EINVAL;
	if (!buf || rf_conf_size(c) > size)
		return -EMSGSIZE;
	*p++ = 1;
	*p++ = (uint8_t)c->n_voters;
	*p++ = (uint8_t)(c->n_learners & 0xff);
	*p++ = (uint8_t)(c->n_learners >> 8);
	for (unsigned i = 0; i < c->n_voters; i++)
		p = le_put64(p, c->voters[i]);
	for (unsigned i = 0; i < c->n_learners; i++)
		p = le_put64(p, c->learners[i]);
	return (int)(p - buf);
}

/* Decodes a configuration; see raft.h. */
int rf_conf_decode(const uint8_t *buf, size_t len, struct rf_conf *c)
{
	unsigned nv, nl, n;
	uint64_t ids[RF_MAX_VOTERS + RF_MAX_LEARNERS];

	if (!buf || !c || len < 4 || buf[0] != 1)
		return -EINVAL;
	nv = buf[1];
	nl = (unsigned)buf[2] | (unsigned)buf[3] << 8;
	if (!nv || nv > RF_MAX_VOTERS || nl > RF_MAX_LEARNERS ||
	    len != 4 + 8 * (size_t)(nv + nl))
		return -EINVAL;
	n = nv + nl;
	for (unsigned i = 0; i < n; i++) {
		ids[i] = le_get64(buf + 4 + 8 * (size_t)i);
		if (!ids[i])
			return -EINVAL;
		for (unsigned j = 0; j < i; j++)
			if (ids[j] == ids[i])
				return -EINVAL;
	}
	memset(c, 0, sizeof(*c));
	memcpy(c->voters, ids, nv * sizeof(ids[0]));
	c->n_voters = nv;
	memcpy(c->learners, ids + nv, nl * sizeof(ids[0]));
	c->n_learners = nl;
	return 0;
}

/* ---- wire codec ---------------------------------------------------------- */

static size_t body_size(uint8_t type)
{
	switch (type) {
	case RF_MSG_VOTE: return 16;
	case RF_MSG_VOTE_RESP: return 0;
	case RF_MSG_APPEND: return RF_APPEND_BYTES;
	case RF_MSG_APPEND_RESP: return 32;
	case RF_MSG_SNAP: return SNAP_BODY;
	case RF_MSG_SNAP_RESP: return 24;
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
	if (m->type == RF_MSG_SNAP)
		n += m->data_len;
	return n;
}

/* Encodes; see raft.h. */
int rf_msg_encode(const struct rf_msg *m, uint8_t *buf, size_t size)
{
	size_t len;
	uint8_t *p = buf;

	if (!m || !m->type || m->type >= RF_MSG__COUNT ||
	    (m->n_entries && (!m->entries || m->type != RF_MSG_APPEND)) ||
	    (m->data_len && (!m->data || m->type != RF_MSG_SNAP)) ||
	    (m->type == RF_MSG_SNAP && (m->snap_offset > m->snap_total ||
					m->data_len > m->snap_total - m->snap_offset)))
		return -EINVAL;
	len = rf_msg_size(m);
	if (len > size || len > RF_MSG_MAX)
		return -EMSGSIZE;
	*p++ = RF_MSG_VERSION;
	*p++ = m->type;
	*p++ = (uint8_t)((m->prevote ? 1 : 0) | (m->ok ? 2 : 0));
	*p++ = 0;
	p = le_put32(p, (uint32_t)len);
	p = le_put64(p, m->from);
	p = le_put64(p, m->to);
	p = le_put64(p, m->term);
	switch (m->type) {
	case RF_MSG_VOTE:
		p = le_put64(p, m->last_index);
		p = le_put64(p, m->last_term);
		break;
	case RF_MSG_APPEND:
		p = le_put64(p, m->prev_index);
		p = le_put64(p, m->prev_term);
		p = le_put64(p, m->commit);
		p = le_put64(p, m->stamp);
		p = le_put32(p, m->n_entries);
		for (uint32_t i = 0; i < m->n_entries; i++) {
			const struct rf_entry *e = &m->entries[i];

			p = le_put64(p, e->term);
			*p++ = e->type;
			p = le_put32(p, e->len);
			if (e->len)
				memcpy(p, e->buf, e->len);
			p += e->len;
		}
		break;
	case RF_MSG_APPEND_RESP:
		p = le_put64(p, m->match_index);
		p = le_put64(p, m->conflict_index);
		p = le_put64(p, m->conflict_term);
		p = le_put64(p, m->stamp);
		break;
	case RF_MSG_SNAP:
		p = le_put64(p, m->prev_index);
		p = le_put64(p, m->prev_term);
		p = le_put64(p, m->snap_offset);
		p = le_put64(p, m->snap_total);
		p = le_put64(p, m->stamp);
		p = le_put32(p, m->data_len);
		if (m->data_len)
			memcpy(p, m->data, m->data_len);
		p += m->data_len;
		break;
	case RF_MSG_SNAP_RESP:
		p = le_put64(p, m->prev_index);
		p = le_put64(p, m->snap_offset);
		p = le_put64(p, m->stamp);
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
	    (buf[2] & ~3u) || buf[3] || le_get32(buf + 4) != len)
		return -EINVAL;
	m->type = buf[1];
	m->prevote = buf[2] & 1;
	m->ok = (buf[2] >> 1) & 1;
	m->from = le_get64(buf + 8);
	m->to = le_get64(buf + 16);
	m->term = le_get64(buf + 24);
	p = buf + RF_HDR_BYTES;
	if ((size_t)(end - p) < body_size(m->type))
		goto fail_entries;
	if (m->prevote && m->type != RF_MSG_VOTE && m->type != RF_MSG_VOTE_RESP)
		goto fail_entries;
	switch (m->type) {
	case RF_MSG_VOTE:
		m->last_index = le_get64(p);
		m->last_term = le_get64(p + 8);
		p += 16;
		break;
	case RF_MSG_APPEND:
		m->prev_index = le_get64(p);
		m->prev_term = le_get64(p + 8);
		m->commit = le_get64(p + 16);
		m->stamp = le_get64(p + 24);
		m->n_entries = le_get32(p + 32);
		p += RF_APPEND_BYTES;
		/* Each entry needs at least its header: bounds the allocation. */
		if (m->n_entries > (size_t)(end - p) / RF_ENTRY_HDR)
			goto fail_entries;
		if (m->n_entries) {
			ev = calloc(m->n_entries, sizeof(*ev));
			if (!ev) {
				memset(m, 0, sizeof(*m));
				return -ENOMEM;
			}
		}
		for (uint32_t i = 0; i < m->n_entries; i++) {
			if ((size_t)(end - p) < RF_ENTRY_HDR)
				goto fail_entries;
			ev[i].term = le_get64(p);
			ev[i].type = p[8];
			ev[i].len = le_get32(p + 9);
			p += RF_ENTRY_HDR;
			if (ev[i].type > RF_ENTRY_CONF ||
			    ev[i].len > (size_t)(end - p))
				goto fail_entries;
			ev[i].buf = ev[i].len ? p : NULL;
			p += ev[i].len;
		}
		m->entries = ev;
		break;
	case RF_MSG_APPEND_RESP:
		m->match_index = le_get64(p);
		m->conflict_index = le_get64(p + 8);
		m->conflict_term = le_get64(p + 16);
		m->stamp = le_get64(p + 24);
		p += 32;
		break;
	case RF_MSG_SNAP:
		m->prev_index = le_get64(p);
		m->prev_term = le_get64(p + 8);
		m->snap_offset = le_get64(p + 16);
		m->snap_total = le_get64(p + 24);
		m->stamp = le_get64(p + 32);
		m->data_len = le_get32(p + 40);
		p += SNAP_BODY;
		if (m->data_len > (size_t)(end - p) ||
		    m->snap_offset > m->snap_total ||
		    m->data_len > m->snap_total - m->snap_offset)
			goto fail_entries;
		m->data = m->data_len ? p : NULL;
		p += m->data_len;
		break;
	case RF_MSG_SNAP_RESP:
		m->prev_index = le_get64(p);
		m->snap_offset = le_get64(p + 8);
		m->stamp = le_get64(p + 16);
		p += 24;
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
