/*
 * lockcore/raft.c - Raft as a pure step function (see raft.h): pre-vote,
 * check-quorum, leader leases, batched and pipelined replication with fast
 * backtracking, log compaction with chunked snapshot transfer, single-server
 * membership changes with learners, read-index, and the wire codec of its
 * messages.
 *
 * This file holds the step itself: the per-step output queues (messages
 * sent now or held until a write is synced, read answers), the timers, the
 * event dispatch of rf_step() and finish(), which turns one step into one
 * rf_update (the write to sync, what to send, what committed), start-up,
 * the lifecycle and the views.  The parts, sharing struct raft through
 * raft_i.h: raft_log.c (configurations, the log, membership changes),
 * raft_elect.c (terms and elections), raft_repl.c (replication, both
 * sides), raft_snap.c (snapshots), raft_read.c (lease and read index),
 * raft_wire.c (the codecs).
 *
 * It must never (the whole engine): read a clock, do I/O, use any
 * randomness but its own PRNG, acknowledge a vote, entries or a snapshot
 * before the driver reported them synced, count its own unsynced entries
 * (or a learner) toward commitment, commit an entry of an earlier term by
 * counting, count a learner's vote, let a learner campaign (but for a node
 * its own uncommitted newest configuration left out, see
 * rfi_may_campaign), or read outside a buffer it decodes.  This file in
 * particular must never hand the driver an update whose messages point
 * into entries it freed or replaced, nor let time go backwards.
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
#include "lockcore/raft_i.h"

/* ---- small helpers ------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void rfi_reset_election(struct raft *r)
{
	uint64_t span = (uint64_t)r->cfg.election_timeout_max_ms -
			r->cfg.election_timeout_min_ms + 1;

	r->election_deadline = r->now + r->cfg.election_timeout_min_ms +
			       splitmix(&r->rng) % span;
}

void rfi_mark_dirty(struct raft *r, uint64_t from)
{
	if (!r->dirty_from || from < r->dirty_from)
		r->dirty_from = from;
}

/* Queues a message for this step; on ENOMEM the message is lost, which
 * the protocol tolerates like a dropped datagram. */
void rfi_send_now(struct raft *r, const struct rf_msg *m)
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

void rfi_send_held(struct raft *r, const struct rf_msg *m,
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

void rfi_emit_read(struct raft *r, uint64_t ctx, uint64_t index)
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

/* ---- timers -------------------------------------------------------------- */

static void on_time(struct raft *r)
{
	if (r->role != RF_LEADER) {
		if (r->now >= r->election_deadline) {
			if (rfi_may_campaign(r))
				rfi_start_prevote(r);
			else
				rfi_reset_election(r);     /* learners never campaign */
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
			rfi_become_follower(r, r->term, 0);
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
			rfi_replicate(r, p, true);
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
		rc = rfi_append_entry(r, e[i].term, e[i].type, e[i].buf, e[i].len);
		if (rc)
			goto undo_entries;
	}
	if (si) {
		rc = rfi_frame_snapshot(&c, ev->start.snap_buf, ev->start.snap_len,
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
	rfi_reset_election(r);
	rfi_recompute_conf(r);
	r->conf_changed = false;       /* the driver knows what it gave us */
	r->started = true;
	return 0;

undo_entries:
	while (r->n)
		free((void *)r->log[--r->n].buf);
	r->snap_index = r->snap_term = 0;
	rfi_recompute_conf(r);
	r->conf_changed = false;
	return rc;
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

	rfi_try_win(r);
	if (r->role == RF_LEADER) {
		rfi_advance_commit(r);
		/* Removed or demoted: lead until the change commits, tell
		 * everyone it did, then let the voters elect. */
		if (!r->self_voter && r->conf_index && r->conf_index <= r->commit) {
			rfi_broadcast(r, true);
			rfi_become_follower(r, r->term, 0);
		}
	}
	if (r->role == RF_LEADER)
		rfi_check_reads(r);
	else if (r->nreads)
		rfi_fail_reads_not_leader(r);
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
			rfi_send_now(r, &h->m);
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
			rfi_on_vote(r, m);
			break;
		case RF_MSG_VOTE_RESP:
			rfi_on_vote_resp(r, m);
			break;
		case RF_MSG_APPEND:
			rfi_on_append(r, m);
			break;
		case RF_MSG_APPEND_RESP:
			rfi_on_append_resp(r, m);
			break;
		case RF_MSG_SNAP:
			if (m->snap_offset <= m->snap_total &&
			    m->data_len <= m->snap_total - m->snap_offset)
				rfi_on_snap(r, m);
			break;
		case RF_MSG_SNAP_RESP:
			rfi_on_snap_resp(r, m);
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
		rc = rfi_append_entry(r, r->term, RF_ENTRY_CMD, ev->propose.buf,
				      ev->propose.len);
		if (rc)
			break;
		u->proposed_index = last_index(r);
		rfi_broadcast(r, false);
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
		rc = rfi_on_snapshot(r, ev);
		if (rc)
			return rc;
		r->now = ev->now_ms;
		break;
	case RF_EV_CONF:
		r->now = ev->now_ms;
		on_time(r);
		rc = rfi_on_conf(r, ev->conf.op, ev->conf.id, u);
		break;
	case RF_EV_READ:
		r->now = ev->now_ms;
		/* Before on_time: its heartbeats, sent after the request,
		 * may confirm it. */
		rc = rfi_on_read(r, ev->read.ctx);
		if (rc != -EPERM)
			on_time(r);
		break;
	default:
		return -EINVAL;
	}
	rfi_caught_up(r);
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
	    (!rfi_conf_has(c.voters, c.n_voters, cfg->id) &&
	     !rfi_conf_has(c.learners, c.n_learners, cfg->id)))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	r->rng = cfg->seed ^ (cfg->id * 0x2545f4914f6cdd1dull);
	r->boot_conf = c;
	r->conf = c;
	rfi_rebuild_peers(r);
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
