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
 * TODO (not in this scope): membership changes (single-server add/remove,
 * promotion of learners), learners, snapshots and log compaction (the whole
 * log stays in memory), read-index for reads when the lease is not valid,
 * leadership transfer.
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

enum rf_entry_type { RF_ENTRY_NOOP = 0, RF_ENTRY_CMD = 1 };

/* One log entry.  `buf` is owned by the engine (or by a decoded message's
 * input buffer). */
struct rf_entry {
	uint64_t term;
	uint8_t  type;                 /* enum rf_entry_type */
	uint32_t len;
	const uint8_t *buf;
};

struct rf_config {
	uint64_t id;                   /* this node, non-zero, one of voters */
	uint64_t voters[RF_MAX_VOTERS];
	unsigned n_voters;
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
};

/* Wire format, little endian.  Header (RF_HDR_BYTES): version u8 (1),
 * type u8, flags u8 (bit 0 prevote, bit 1 ok), zero u8, total length u32,
 * from u64, to u64, term u64.  Then by type: VOTE last_index u64,
 * last_term u64; VOTE_RESP nothing; APPEND prev_index, prev_term, commit,
 * stamp (u64 each), n_entries u32, then per entry term u64, type u8,
 * len u32, bytes; APPEND_RESP match_index, conflict_index, conflict_term,
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
	RF_EV_PERSISTED
};

struct rf_event {
	uint8_t  type;
	uint64_t now_ms;               /* monotonic local clock, every event */
	union {
		struct {               /* START: what the driver has synced */
			uint64_t term, vote;
			const struct rf_entry *entries;  /* index 1.. */
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
	};
};

#define RF_UPD_HARDSTATE  0x1u
#define RF_UPD_ENTRIES    0x2u
#define RF_UPD_ROLE       0x4u         /* role, term or leader changed */

struct rf_update {
	uint32_t flags;
	uint64_t write_seq;            /* non-zero: this update holds a write */
	uint64_t hs_term, hs_vote;     /* RF_UPD_HARDSTATE */
	uint64_t first_index;          /* RF_UPD_ENTRIES: replace from here */
	size_t   n_entries;
	const struct rf_entry *entries;
	struct rf_msg *msgs;           /* to send, each to msgs[i].to */
	size_t   n_msgs;
	uint64_t commit_first;         /* index of committed[0] */
	size_t   n_committed;          /* newly committed, in order, to apply */
	const struct rf_entry *committed;
	uint64_t next_deadline_ms;     /* step RF_EV_TIMEOUT at this time */
	uint64_t proposed_index;       /* RF_EV_PROPOSE: index of the entry */
	uint8_t  role;                 /* current, always filled */
	uint64_t term, leader;         /* current, always filled (leader 0: none) */
};

struct raft;

/* Creates an engine.  -EINVAL for a bad config (id not among voters,
 * timeouts zero or min > max, budget too small), -ENOMEM. */
int rf_new(const struct rf_config *cfg, struct raft **out);
void rf_free(struct raft *r);

/*
 * Feeds one event and fills *upd (overwriting it).  The first event must
 * be RF_EV_START.  Returns 0; -EINVAL for an event that is malformed or
 * out of order (the engine is unchanged); -EPERM for a proposal to a
 * non-leader (upd->leader is the hint); -E2BIG for a proposal larger than
 * RF_ENTRY_MAX; -ENOMEM (the engine is unchanged for proposals; for other
 * events the step is dropped as if the message were lost).
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
uint64_t rf_last_index(const struct raft *r);
/* Entry at index (1..last), or NULL. */
const struct rf_entry *rf_entry_at(const struct raft *r, uint64_t index);

#endif /* CLUCK_RAFT_H */
