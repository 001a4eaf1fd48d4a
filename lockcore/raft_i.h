/*
 * lockcore/raft_i.h - the Raft engine's internals, shared by its parts
 * (raft.c, raft_log.c, raft_elect.c, raft_repl.c, raft_snap.c, raft_read.c,
 * raft_wire.c): struct raft with its peers, write records, held messages
 * and pending reads, a few inline log helpers, and the rfi_ functions one
 * part calls in another.  See raft.c for the design.
 *
 * It must never: be included outside lockcore/raft*.c (the driver sees
 * only raft.h), include anything but C library and lockcore headers, or
 * declare a function that is not the engine's own.
 */
#ifndef CLUCK_RAFT_I_H
#define CLUCK_RAFT_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lockcore/raft.h"


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
	bool catching_up;      /* cfg.catch_up, until rfi_caught_up() */
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

static inline uint64_t last_index(const struct raft *r)
{
	return r->snap_index + r->n;
}

/* Entry at index i, which the caller knows is in (snap_index, last]. */
static inline struct rf_entry *ent(const struct raft *r, uint64_t i)
{
	return &r->log[i - r->snap_index - 1];
}

static inline unsigned quorum(const struct raft *r)
{
	return r->conf.n_voters / 2 + 1;
}

/* Term of index i; 0 when unknown (compacted below the snapshot or beyond
 * the log). */
static inline uint64_t term_at(const struct raft *r, uint64_t i)
{
	if (i == r->snap_index)
		return r->snap_term;
	return i > r->snap_index && i <= last_index(r) ? ent(r, i)->term : 0;
}

/* raft.c: per-step output queues */
void rfi_reset_election(struct raft *r);
void rfi_mark_dirty(struct raft *r, uint64_t from);
void rfi_send_now(struct raft *r, const struct rf_msg *m);
void rfi_send_held(struct raft *r, const struct rf_msg *m,
		   uint64_t check_index, uint64_t check_term);
void rfi_emit_read(struct raft *r, uint64_t ctx, uint64_t index);

/* raft_log.c: configurations, the log, membership */
bool rfi_conf_has(const uint64_t *ids, unsigned n, uint64_t id);
struct peer *rfi_peer_of(struct raft *r, uint64_t id);
void rfi_init_peer(struct raft *r, struct peer *p, uint64_t id);
void rfi_rebuild_peers(struct raft *r);
void rfi_conf_at(const struct raft *r, uint64_t index, struct rf_conf *c,
		 uint64_t *at);
void rfi_recompute_conf(struct raft *r);
void rfi_truncate_from(struct raft *r, uint64_t from);
int rfi_append_entry(struct raft *r, uint64_t term, uint8_t type,
		     const uint8_t *buf, uint32_t len);
void rfi_compact_to(struct raft *r, uint64_t index);
int rfi_on_conf(struct raft *r, uint8_t op, uint64_t id, struct rf_update *u);

/* raft_elect.c: terms and elections */
void rfi_become_follower(struct raft *r, uint64_t term, uint64_t leader);
void rfi_start_prevote(struct raft *r);
bool rfi_may_campaign(const struct raft *r);
void rfi_caught_up(struct raft *r);
void rfi_try_win(struct raft *r);
void rfi_on_vote(struct raft *r, const struct rf_msg *m);
void rfi_on_vote_resp(struct raft *r, const struct rf_msg *m);

/* raft_repl.c: replication */
void rfi_send_snap(struct raft *r, struct peer *p, bool force);
void rfi_replicate(struct raft *r, struct peer *p, bool force);
void rfi_broadcast(struct raft *r, bool force);
void rfi_advance_commit(struct raft *r);
void rfi_become_leader(struct raft *r);
void rfi_on_append(struct raft *r, const struct rf_msg *m);
struct peer *rfi_leader_answer(struct raft *r, const struct rf_msg *m);
void rfi_on_append_resp(struct raft *r, const struct rf_msg *m);

/* raft_snap.c: snapshots */
void rfi_on_snap(struct raft *r, const struct rf_msg *m);
void rfi_on_snap_resp(struct raft *r, const struct rf_msg *m);
int rfi_frame_snapshot(const struct rf_conf *c, uint8_t *buf, size_t len,
		       uint8_t **out, size_t *total, size_t *state_off);
int rfi_on_snapshot(struct raft *r, const struct rf_event *ev);

/* raft_read.c: lease and read index */
void rfi_fail_reads_not_leader(struct raft *r);
void rfi_check_reads(struct raft *r);
int rfi_on_read(struct raft *r, uint64_t ctx);

#endif
