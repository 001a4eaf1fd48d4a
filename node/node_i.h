/*
 * node/node_i.h - the engine host's private header: struct node and the
 * functions its parts share.  Only the files of node/ include it.
 *
 * The node runs the lock state machine replicated by the Raft engine among
 * the voters of --cluster, persisted in --data-dir, with this node's
 * session and its lease.  Its parts:
 *
 *   node.c    lifecycle (new, start, stop, free), propose, status queries
 *   engine.c  steps of the engine, the round's persist and flush, apply,
 *             snapshots taken and installed, a full data directory
 *   own.c     our session: lockcore/session.c's effects carried out, its
 *             hooks and timer, read barriers
 *   leader.c  leader duties: leader-made proposals, TICKs, SESSION_CLOSEs
 *             for expired leases, members joining and leaving
 *   rx.c      receiving: the nodes we know, the leader-side answers to
 *             other nodes' sessions apart from the answers to ours
 *   start.c   start-up and recovery: options checked, the store opened
 *             (a damaged one refused), identity, rejoin mark, epoch,
 *             snapshot, index floor, the engine started, the transport
 *
 * Our session's protocol lives in lockcore/session.c (its head comment
 * says it all: the pending table, serials and re-serials, resends,
 * unlock-before ordering, the keepalive schedule over the lease view,
 * give-up and a new session, resolve-after-install, read barriers and
 * redirects, and the leader's answers to other nodes' sessions).  The node
 * feeds it events (a command proposed through node_propose(), completions
 * applied, answers received, role and link changes, its timer) and carries
 * out its effects in order (run_effects): our own commands are proposed to
 * the engine as leader or forwarded to the leader (NM_FWD over
 * net/peer.h), keepalives and reads go out, completions reach fs's
 * callbacks, a lost session reaches node_on_lost.  What a callback asks
 * for waits in the session's queue for the loop that ran it.
 *
 * It must never: be included outside node/ (fs/ and the daemon see only
 * node/node.h), or declare what only one part uses (that stays static in
 * its part).
 */
#ifndef CLUCK_NODE_I_H
#define CLUCK_NODE_I_H

#include "node/node.h"
#include "net/loop.h"
#include "net/log.h"
#include "net/store.h"
#include "net/peer.h"
#include "proto/nmsg.h"
#include "net/link.h"
#include "lockcore/raft.h"
#include "lockcore/lease.h"
#include "lockcore/session.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SELF_ID      1u              /* our Raft id when alone */
#define SNAP_EVERY   20000u          /* entries between snapshots */
#define SNAP_BYTES   (64u << 20)     /* ... or this many log bytes */

/* Cluster timing (cluck-protocol(7)). */
#define HEARTBEAT_MS      50u
#define ELECTION_MIN_MS   400u
#define ELECTION_MAX_MS   800u
#define DRIFT_MS          50u        /* max clock drift over a lease */
#define TICK_MS           50u        /* the node's own timer while clustered */
/* The node gives up margin ms before its lease: > 2 * drift + one tick
 * (lease.h's proof), plus slack for a busy loop. */
#define LEASE_MARGIN_MS   (2u * DRIFT_MS + TICK_MS + 100u)
#define RESEND_MS         200u       /* forward not yet acknowledged (alone:
					the timer while something waits) */
#define RESEND_ACKED_MS   1000u      /* acknowledged but not in our log yet */
#define MAX_KNOWN         512u       /* nodes we track (voters + members) */
/* The shortest --lease a cluster takes (daemon/options.c): the margin must
 * stay above 2 * drift + a tick (lease.h). */
#define MIN_LEASE_MS      1000u
/* A full data directory (cluckd(8) "Failures"): the reserve file given
 * back so lock commands can still be logged, and how often room is
 * looked for. */
#define RESERVE_BYTES     (1u << 20)
#define DISK_RETRY_MS     500u

#define REJOIN_FILE  "rejoin"        /* data dir: a --rejoin not yet caught up */

/* A leader-made command waiting for the end of the current step. */
struct outq {
	uint8_t *buf;
	size_t len;
};

/* One of the node's timers, armed for `key` (the deadline it serves, in
 * whatever unit): arming it again for the same key costs nothing. */
struct ntimer {
	uint64_t id, key;            /* id 0: not armed */
};

/* Another node we heard from (voters from --cluster, members learned). */
struct known {
	uint64_t id;
	uint64_t last_rx_ms;         /* last authenticated datagram from it */
	bool voter;
	bool wants_join;             /* a member not in the configuration */
	bool lease_warned;           /* said once that its --lease differs */
};

struct node {
	struct loop *loop;
	char *name;
	char *data_dir;
	uint64_t lease_ms, op_timeout_ms;
	int error;              /* fatal: the store failed; 0 while healthy */

	struct lc_state *st;
	struct raft *raft;
	struct store *store;
	struct lease_table leases;
	uint64_t applied;       /* last log index fed to the state */
	uint64_t last_time;     /* last time_ns stamped on a leader-made command */
	uint8_t role;
	uint64_t leader;        /* the engine's leader id (0: none) */
	uint64_t leader_since;  /* mono ms we became leader */
	bool started, stopped;

	/* our session (lockcore/session.c: requests, lease, read barriers) */
	struct session *sess;
	bool in_cb;             /* running a callback: effects wait for the caller */
	node_lost_fn lost_fn;
	void *lost_ctx;
	bool close_done;
	/* A clean stop waits for our holders (node_begin_stop): no lock is
	 * taken any more, the session is kept alive until node_stop(). */
	bool stopping;
	uint64_t stop_deadline_ns;   /* mono ns */
	uint64_t close_check;        /* node_stop's progress timer */

	uint64_t accept_cut;    /* --accept-loss (node_config) */
	bool accept_state;
	bool rejoin;            /* --rejoin (node_config) */
	bool rejoining;         /* the engine is catching up (rf_catching_up) */

	/* the cluster (all zero / NULL alone) */
	bool clustered, voter;
	uint64_t self_id;
	uint64_t epoch;
	struct peer *peer;
	struct link_mon *link;
	enum link_state link_st;
	struct node_voter *voters;   /* copies, names owned */
	uint64_t *voter_ids;
	unsigned n_voters;
	struct known *kn;
	size_t nkn;
	struct ntimer node_timer;   /* resends, deadlines, keepalives (key 1) */
	uint8_t *txbuf;              /* one encoded message */
	struct sockaddr_storage listen;
	socklen_t listen_len;
	uint8_t key[PEER_KEY_BYTES];
	bool has_key;

	/* persistence */
	uint64_t want_seq;      /* highest write_seq handed to the store */
	uint64_t synced_seq;    /* ... and reported synced */
	uint64_t snap_index, since_snap_entries, since_snap_bytes;
	uint64_t snap_every;    /* entries between snapshots */
	uint64_t snap_len;      /* size of the latest snapshot */

	/* timers */
	struct ntimer raft_timer;     /* key: engine deadline (mono ms) */
	struct ntimer tick_timer;     /* key: lockcore deadline (wall ns) */
	struct ntimer lease_timer;    /* key: session lease deadline (mono ms) */
	struct ntimer disk_timer;     /* looks for room while disk_full (key 1) */
	bool disk_full;         /* the data directory said ENOSPC: no new data */
	bool sync_stalled;      /* said that the log cannot be synced for now */

	/* re-entrancy: work asked for while an update is being handled */
	unsigned depth;
	struct outq *oq;        /* leader-made proposals */
	size_t noq, capoq;
	uint64_t *defer;        /* our serials to propose, from dhead on */
	size_t dhead, ndefer, capdefer;
};

static inline uint64_t now_ms(void)
{
	return loop_mono_ns() / 1000000u;
}

/* node.c */
void die(struct node *n, const char *what, int rc);

/* engine.c */
uint64_t wall_ns(const struct node *n);
uint64_t stamp_time(struct node *n);
bool no_room(int64_t rc);
void arm_disk(struct node *n);
int step(struct node *n, struct rf_event *ev);
void flush_round(struct loop *l, void *ctx);
void ntimer_clear(struct node *n, struct ntimer *t);
void ntimer_set(struct node *n, struct ntimer *t, uint64_t key, uint64_t mono_ns,
		loop_timer_fn fn);

/* own.c */
void send_smsg(struct node *n, uint64_t to, const struct session_msg *sm);
void run_effects(struct node *n);
uint64_t own_wall(void *host);
int own_new_id(void *host, uint64_t *sid);
struct session_in own_in(const struct node *n);
void on_node_timer(struct loop *l, void *ctx);

/* leader.c */
bool conf_has(const struct rf_conf *c, uint64_t id);
void arm_tick(struct node *n);
void check_leases(struct node *n);
bool contact_ok(struct node *n, uint64_t session);
void manage_members(struct node *n, uint64_t now);

/* rx.c */
struct known *known_find(struct node *n, uint64_t id);
struct known *known_get(struct node *n, uint64_t id);
void on_peer(void *ctx, uint64_t from, uint8_t type, const uint8_t *body,
	     size_t len, const struct sockaddr *src, socklen_t srclen);
void on_link(void *ctx, enum link_state st);

/* start.c */
int load(struct node *n);
int net_start(struct node *n);

#endif
