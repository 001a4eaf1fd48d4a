/*
 * lockcore/raft.h - Raft consensus as a pure step function.
 *
 * The engine is a value the driver feeds with events (start, message
 * received, time passed, proposal, persisted) and that answers each step
 * with an update: hard state and entries to write, messages to send,
 * entries newly committed, the next deadline.  The driver owns the clock,
 * the disk and the sockets; the engine owns the in-memory log.
 *
 * It must never: read a clock, do I/O, draw randomness other than its own
 * PRNG seeded from rf_config.seed, start threads, or include an OS header.
 * It must never acknowledge anything (vote granted, AppendEntries success)
 * or count its own entries toward commitment before the driver reported
 * them persisted (RF_EV_PERSISTED).
 *
 * Persistence contract.  An update whose write_seq is non-zero holds one
 * write: when RF_UPD_HARDSTATE is set, persist (term, vote); when
 * RF_UPD_ENTRIES is set, discard every stored entry with index >=
 * first_index, then append entries[0..n_entries).  Writes are applied in
 * write_seq order; when a write and every earlier one are synced, step the
 * engine with RF_EV_PERSISTED and that seq (one report may cover many
 * writes: group commit).  On restart, pass the synced term, vote and log to
 * RF_EV_START.
 *
 * Lifetime: every pointer in a struct rf_update (entries, messages and the
 * entries they point to, committed entries) is valid until the next
 * rf_step() or rf_free() on the same engine.
 *
 * Safety notes: votes are refused (and vote requests ignored) for
 * election_timeout_min after hearing from a leader, after becoming leader
 * and after start; that is what makes rf_lease_valid() sound as long as
 * clocks advance at the same rate within max_clock_drift_ms over one
 * election timeout.
 *
 * Configurations.  The voters decide; learners (cluck's members) receive
 * the log and apply it but never vote nor count toward a quorum.  The
 * configuration in force is the latest RF_ENTRY_CONF in the log (committed
 * or not, as in the Raft dissertation's single-server changes), else the
 * snapshot's, else the bootstrap one from rf_config.  A node whose id is
 * not a voter of the configuration in force never starts an election, but
 * for one whose newest configuration (which left it out) is not yet known
 * committed: its log may be the only one with that change, so it campaigns
 * and counts only the voters' votes.  Votes are granted whatever the
 * voter's own configuration says.  One
 * change at a time: a leader accepts a change only when the previous one is
 * committed and it has committed an entry of its own term.  A leader
 * removed from the voters steps down once that change is committed.
 *
 * Snapshots.  The driver snapshots the applied state machine whenever it
 * likes, persists it, and hands it to the engine with RF_EV_SNAPSHOT; the
 * engine then forgets the log up to that index and sends the snapshot in
 * chunks (RF_MSG_SNAP) to followers that need entries it no longer has.  A
 * follower that receives a whole snapshot newer than its commit index
 * reports it with RF_UPD_SNAPSHOT in an update whose write the driver
 * persists like any other; the follower acknowledges it only once synced.
 *
 * Reads.  RF_EV_READ asks for a read index: a position in the log such
 * that the state applied up to it reflects every write committed before
 * the request.  With a valid lease it is answered in the same step;
 * otherwise after a heartbeat round acknowledged by a quorum (read-index).
 *
 * TODO (not in this scope): leadership transfer.
 */
#ifndef CLUCK_RAFT_H
#define CLUCK_RAFT_H

#include <stddef.h>
#include <stdint.h>

#define RF_MAX_VOTERS     7u
#define RF_MSG_MAX        65507u       /* hard limit: one UDP datagram */
#define RF_MSG_BUDGET     (60u * 1024u) /* default AppendEntries byte budget */
#define RF_MSG_VERSION    1u
#define RF_HDR_BYTES      32u          /* encoded message header */
#define RF_APPEND_BYTES   36u          /* AppendEntries fields after the header */
#define RF_ENTRY_HDR      13u          /* encoded per-entry overhead */
/* Largest proposal: one entry alone must fit an AppendEntries of the
 * default budget. */
#define RF_ENTRY_MAX      (RF_MSG_BUDGET - RF_HDR_BYTES - RF_APPEND_BYTES - RF_ENTRY_HDR)

enum rf_role { RF_FOLLOWER = 0, RF_PRECANDIDATE, RF_CANDIDATE, RF_LEADER };

enum rf_entry_type { RF_ENTRY_NOOP = 0, RF_ENTRY_CMD = 1, RF_ENTRY_CONF = 2 };

/* Learners in one configuration (voters: RF_MAX_VOTERS). */
#define RF_MAX_LEARNERS   248u

/* A configuration: who votes, who only learns.  Ids are non-zero and
 * appear once in the union of both lists. */
struct rf_conf {
	uint64_t voters[RF_MAX_VOTERS];
	unsigned n_voters;
	uint64_t learners[RF_MAX_LEARNERS];
	unsigned n_learners;
};

/* Encoding of a configuration, as in RF_ENTRY_CONF payloads and snapshot
 * metadata: version u8 (1), n_voters u8, n_learners u16, then the ids
 * (u64 each, voters first), little endian.  rf_conf_encode returns the
 * length or -EMSGSIZE; rf_conf_decode returns 0 or -EINVAL (bad version,
 * counts, length, zero or duplicate id, no voter). */
#define RF_CONF_MAX_BYTES (4u + 8u * (RF_MAX_VOTERS + RF_MAX_LEARNERS))
size_t rf_conf_size(const struct rf_conf *c);
int rf_conf_encode(const struct rf_conf *c, uint8_t *buf, size_t size);
int rf_conf_decode(const uint8_t *buf, size_t len, struct rf_conf *c);

/* One log entry.  `buf` is owned by the engine (or by a decoded message's
 * input buffer). */
struct rf_entry {
	uint64_t term;
	uint8_t  type;                 /* enum rf_entry_type */
	uint32_t len;
	const uint8_t *buf;
};

struct rf_config {
	uint64_t id;                   /* this node, non-zero; when not among
	                                  the voters it is a learner */
	uint64_t voters[RF_MAX_VOTERS];    /* bootstrap configuration, used */
	unsigned n_voters;                 /* until the log or a snapshot has one */
	uint64_t learners[RF_MAX_LEARNERS];
	unsigned n_learners;
	uint32_t election_timeout_min_ms;  /* default 1000 */
	uint32_t election_timeout_max_ms;  /* default 2000 */
	uint32_t heartbeat_ms;             /* default 100 */
	uint32_t max_clock_drift_ms;       /* default 50; lease safety margin */
	uint32_t max_msg_bytes;            /* AppendEntries budget, <= RF_MSG_MAX */
	uint32_t max_inflight;             /* pipelined AppendEntries per peer */
	uint64_t seed;                     /* PRNG seed for election timeouts */
	uint32_t test_break;               /* RF_BREAK_*: deliberate bugs that
	                                      only the simulator sets, to prove
	                                      its checks can fail; 0 in cluckd */
	uint8_t catch_up;                  /* a voter restarted on a log it
	                                      lost (kept term and vote): it
	                                      grants no vote, pre-vote
	                                      included, and never campaigns
	                                      until it holds every entry up
	                                      to the commit index the leader
	                                      reported, the last of them of
	                                      the leader's term; see
	                                      rf_catching_up() */
};

#define RF_BREAK_VOTE_ANY_LOG    0x1u  /* grant votes without the log check */
#define RF_BREAK_ACK_UNSYNCED    0x2u  /* ack and count before persisted */
#define RF_BREAK_COMMIT_OLD_TERM 0x4u  /* commit old-term entries by counting */

/* Fills defaults for the timing and size fields (not id/voters/seed). */
void rf_config_defaults(struct rf_config *c);

/* ---- messages ----------------------------------------------------------- */

enum rf_msg_type {
	RF_MSG_VOTE = 1,               /* RequestVote / PreVote (prevote=1) */
	RF_MSG_VOTE_RESP,
	RF_MSG_APPEND,                 /* AppendEntries, also the heartbeat */
	RF_MSG_APPEND_RESP,
	RF_MSG_SNAP,                   /* InstallSnapshot chunk */
	RF_MSG_SNAP_RESP,
	RF_MSG__COUNT
};

struct rf_msg {
	uint8_t  type;
	uint8_t  prevote;              /* VOTE, VOTE_RESP */
	uint8_t  ok;                   /* VOTE_RESP granted, APPEND_RESP success */
	uint64_t from, to;
	uint64_t term;                 /* sender's term (PreVote: proposed term) */
	/* VOTE: candidate's last log entry */
	uint64_t last_index, last_term;
	/* APPEND */
	uint64_t prev_index, prev_term, commit;
	uint64_t stamp;                /* APPEND: leader's clock; RESP: echoed */
	uint32_t n_entries;
	const struct rf_entry *entries;
	/* APPEND_RESP: success: the index verified equal to the leader's log;
	 * failure: the prev_index rejected, and the conflict hint
	 * (conflict_term 0 means "my log ends at conflict_index - 1") */
	uint64_t match_index;
	uint64_t conflict_index, conflict_term;
	/* SNAP: prev_index/prev_term are the snapshot's last included index
	 * and term; the snapshot stream (the engine's own framing of
	 * configuration and state bytes) is snap_total bytes long and this
	 * chunk holds data[0..data_len) at snap_offset.  SNAP_RESP: ok, and
	 * snap_offset = bytes received so far in order (the next wanted),
	 * prev_index echoed, stamp echoed. */
	uint64_t snap_offset, snap_total;
	const uint8_t *data;
	uint32_t data_len;
};

/* Wire format, little endian.  Header (RF_HDR_BYTES): version u8 (1),
 * type u8, flags u8 (bit 0 prevote, bit 1 ok), zero u8, total length u32,
 * from u64, to u64, term u64.  Then by type: VOTE last_index u64,
 * last_term u64; VOTE_RESP nothing; APPEND prev_index, prev_term, commit,
 * stamp (u64 each), n_entries u32, then per entry term u64, type u8,
 * len u32, bytes; APPEND_RESP match_index, conflict_index, conflict_term,
 * stamp (u64 each); SNAP prev_index, prev_term, snap_offset, snap_total,
 * stamp (u64 each), data_len u32, data; SNAP_RESP prev_index, snap_offset,
 * stamp (u64 each).  The length must match exactly. */

/* Encodes `m` into buf (at most `size` bytes).  Returns the length, or
 * -EMSGSIZE when it does not fit, -EINVAL for a malformed message. */
int rf_msg_encode(const struct rf_msg *m, uint8_t *buf, size_t size);

/* Exact encoded size of `m`. */
size_t rf_msg_size(const struct rf_msg *m);

/* Decodes a message.  On success *m points into `buf` (which must outlive
 * it) and m->entries is allocated: release with rf_msg_release().  Returns
 * 0, -EINVAL for anything malformed (wrong version, type, lengths,
 * trailing bytes), -ENOMEM.  Never reads outside [buf, buf+len). */
int rf_msg_decode(const uint8_t *buf, size_t len, struct rf_msg *m);
void rf_msg_release(struct rf_msg *m);

/* ---- events and updates ------------------------------------------------- */

enum rf_event_type {
	RF_EV_START = 1,
	RF_EV_RECEIVE,
	RF_EV_TIMEOUT,                 /* time passed */
	RF_EV_PROPOSE,
	RF_EV_PERSISTED,
	RF_EV_SNAPSHOT,                /* the driver made and synced a snapshot */
	RF_EV_CONF,                    /* leader: propose a membership change */
	RF_EV_READ                     /* leader: ask for a read index */
};

enum rf_conf_op {
	RF_CONF_ADD_LEARNER = 1,       /* a new member */
	RF_CONF_ADD_VOTER,             /* a new voter, or promote a learner */
	RF_CONF_DEMOTE,                /* a voter becomes a learner */
	RF_CONF_REMOVE                 /* a voter or a learner leaves */
};

/* A read index became ready (index > 0: serve the read once the state is
 * applied up to index) or failed (index 0: leadership lost; retry). */
struct rf_read {
	uint64_t ctx, index;
};

struct rf_event {
	uint8_t  type;
	uint64_t now_ms;               /* monotonic local clock, every event */
	union {
		struct {               /* START: what the driver has synced */
			uint64_t term, vote;
			/* the latest snapshot (snap_index 0: none, and
			 * snap_buf is ignored); on success the engine
			 * owns snap_buf (from malloc) */
			uint64_t snap_index, snap_term;
			const struct rf_conf *snap_conf;
			uint8_t *snap_buf;
			size_t snap_len;
			const struct rf_entry *entries;  /* index snap_index+1.. */
			uint64_t n_entries;
		} start;
		const struct rf_msg *receive;
		struct {
			const uint8_t *buf;
			uint32_t len;
		} propose;
		struct {
			uint64_t seq;  /* every write up to this seq is synced */
		} persisted;
		struct {               /* SNAPSHOT: state applied up to index
			                  (<= commit, > the previous snapshot),
			                  already synced; on success the engine
			                  owns buf (from malloc) and drops its log
			                  up to index */
			uint64_t index;
			uint8_t *buf;
			size_t len;
		} snapshot;
		struct {
			uint8_t op;    /* enum rf_conf_op */
			uint64_t id;
		} conf;
		struct {
			uint64_t ctx;  /* the driver's, echoed in rf_read */
		} read;
	};
};

#define RF_UPD_HARDSTATE  0x1u
#define RF_UPD_ENTRIES    0x2u
#define RF_UPD_ROLE       0x4u         /* role, term or leader changed */
#define RF_UPD_SNAPSHOT   0x8u         /* persist and install a snapshot */
#define RF_UPD_CONF       0x10u        /* the configuration in force changed */

struct rf_update {
	uint32_t flags;
	uint64_t write_seq;            /* non-zero: this update holds a write */
	uint64_t hs_term, hs_vote;     /* RF_UPD_HARDSTATE */
	/* RF_UPD_SNAPSHOT (part of this update's write, handled before the
	 * entries): store the snapshot, drop every stored entry (the log
	 * then continues at snap_index + 1), and replace the state machine
	 * with snap_buf; committed entries below follow it.  Engine-owned. */
	uint64_t snap_index, snap_term;
	const struct rf_conf *snap_conf;
	const uint8_t *snap_buf;
	size_t snap_len;
	uint64_t first_index;          /* RF_UPD_ENTRIES: replace from here */
	size_t   n_entries;
	const struct rf_entry *entries;
	struct rf_msg *msgs;           /* to send, each to msgs[i].to */
	size_t   n_msgs;
	uint64_t commit_first;         /* index of committed[0] */
	size_t   n_committed;          /* newly committed, in order, to apply */
	const struct rf_entry *committed;
	uint64_t next_deadline_ms;     /* step RF_EV_TIMEOUT at this time (0: no
	                                  deadline, e.g. a leader alone) */
	uint64_t proposed_index;       /* RF_EV_PROPOSE, RF_EV_CONF: its index */
	const struct rf_read *reads;   /* read indexes ready or failed */
	size_t   n_reads;
	uint8_t  role;                 /* current, always filled */
	uint64_t term, leader;         /* current, always filled (leader 0: none) */
};

struct raft;

/* Creates an engine.  -EINVAL for a bad config (id among neither the
 * voters nor the learners, a zero or duplicate id, timeouts zero or
 * min > max, budget too small), -ENOMEM. */
int rf_new(const struct rf_config *cfg, struct raft **out);
void rf_free(struct raft *r);

/*
 * Feeds one event and fills *upd (overwriting it).  The first event must
 * be RF_EV_START.  Returns 0; -EINVAL for an event that is malformed or
 * out of order (the engine is unchanged); -EPERM for a proposal, a
 * membership change or a read to a non-leader (upd->leader is the hint);
 * -E2BIG for a proposal larger than RF_ENTRY_MAX; -EBUSY for a membership
 * change while another is uncommitted or before the leader committed an
 * entry of its term; -EINVAL for a change that makes no sense (id 0, add
 * an existing node, remove an unknown one, no voter left, more than
 * RF_MAX_VOTERS voters or RF_MAX_LEARNERS learners); -ENOMEM (the engine
 * is unchanged for proposals; for other events the step is dropped as if
 * the message were lost).  On any error return of RF_EV_START or
 * RF_EV_SNAPSHOT the caller still owns the snapshot buffer.
 */
int rf_step(struct raft *r, const struct rf_event *ev, struct rf_update *upd);

/* True while this leader's lease lets it serve reads locally: it has
 * committed an entry of its term and a quorum acknowledged a message it
 * sent at a time t with now - t < election_timeout_min - max_clock_drift. */
int rf_lease_valid(const struct raft *r, uint64_t now_ms);

/* Read-only views for drivers, status and the simulator. */
uint8_t  rf_role(const struct raft *r);
uint64_t rf_term(const struct raft *r);
uint64_t rf_leader(const struct raft *r);
uint64_t rf_commit_index(const struct raft *r);
/* 1 while a node started with cfg.catch_up has not caught up yet. */
int rf_catching_up(const struct raft *r);
uint64_t rf_last_index(const struct raft *r);
/* Entry at index (first..last), or NULL (compacted or beyond). */
const struct rf_entry *rf_entry_at(const struct raft *r, uint64_t index);
/* First index still in the log (snapshot index + 1). */
uint64_t rf_first_index(const struct raft *r);
/* The latest snapshot's index and term (0, 0: none). */
uint64_t rf_snapshot_index(const struct raft *r);
uint64_t rf_snapshot_term(const struct raft *r);
/* The configuration in force. */
const struct rf_conf *rf_conf(const struct raft *r);
/* Leader: the highest index known replicated on node id (0 if unknown,
 * not a peer, or not leader).  For promoting a learner once caught up. */
uint64_t rf_match_index(const struct raft *r, uint64_t id);
/* Leader: local time of the last answer from node id this term (0 if none). */
uint64_t rf_last_ack_ms(const struct raft *r, uint64_t id);

#endif /* CLUCK_RAFT_H */
