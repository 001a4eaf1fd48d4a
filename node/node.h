/*
 * node/node.h - the engine host: what fs/ and the daemon call (the files
 * of node/ implement it).
 *
 * A node owns the lockcore state of this cluckd and the path from
 * "proposed" to "applied": a proposed command is stamped (origin = our
 * session, next serial, time), replicated by the Raft engine, made durable
 * in the data directory and applied in log order; fs/ only ever proposes
 * commands and receives completions.
 *
 * It never blocks on the network: completions arrive through callbacks
 * from the event loop once the command is committed and applied (and later
 * again for a queued lock request that another command resolves).
 *
 * It must never: expose struct node (node/node_i.h keeps it private to
 * node/) or anything of the engine beyond lockcore commands, completions
 * and the status it reports.
 */
#ifndef CLUCK_NODE_H
#define CLUCK_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "lockcore/lc.h"
#include "net/peer.h"

struct loop;
struct node;

/* A voter named in --cluster, its address resolved. */
struct node_voter {
	const char *name;
	struct sockaddr_storage addr;
	socklen_t addr_len;
};

struct node_config {
	const char *name;            /* node name (status, session name) */
	const char *data_dir;        /* --data-dir: the durable log */
	uint64_t lease_ms;           /* --lease */
	uint64_t op_timeout_ms;      /* --op-timeout */
	/* The cluster.  n_voters 0: this node alone, no network (listen and
	 * key ignored).  Otherwise the voters of --cluster (this node among
	 * them, or a member when its name is not there), the address to
	 * bind, and the cluster key (PEER_KEY_BYTES) or NULL (--insecure). */
	const struct node_voter *voters;
	unsigned n_voters;
	const struct sockaddr *listen;
	socklen_t listen_len;
	const uint8_t *key;
	/* --accept-loss: the loss the admin accepts after a refusal (see
	 * store_config): the index the log may be cut at, or the state file
	 * rebuilt (never on a voter of a cluster: it would forget its vote). */
	uint64_t accept_cut;
	int accept_state;
	/* --rejoin: a voter started on a log it lost catches up before it
	 * votes or campaigns (lockcore/raft.h, catch_up). */
	int rejoin;
};

/* Raft id of a node name in a cluster (a 64-bit hash, never 0). */
uint64_t node_id_of(const char *name);

/* Status of the node for /cluck/status (SPEC 2.7). */
struct node_status {
	const char *name;
	const char *role;            /* "leader", "follower", "candidate", "member" */
	uint64_t term;
	const char *leader;          /* leader's name, "" when unknown */
	unsigned voters_reachable, voters_total;
	int quorum;                  /* 1 yes, 0 no */
	const char *session;         /* "ok", "jeopardy", "expired" */
	uint64_t session_id;
	uint64_t applied_index;
	const char *link;            /* "up", "down", "unknown"; "none" alone */
	const char *link_if;         /* watched interface, "" when none */
	uint64_t sessions_lost;      /* times our session's lease ran out */
	unsigned members;            /* learners in the configuration */
	const char *disk;            /* "ok", "full": the data directory said ENOSPC */
	struct peer_stats peer;      /* transport counters (zero alone) */
	int stopping;                /* a clean stop waits for our holders */
	uint64_t stop_left_ms;       /* ... this much longer at most */
	uint64_t stop_holds;         /* ... locks our session still holds */
};

/*
 * Called when this node's view of its session's lease ran out (SPEC 3): the
 * locks of `old_session` are lost (the cluster frees them only after its own,
 * longer, view), every request of that session still unanswered has been
 * answered -ENOLCK, and a new session is being opened: node_session()
 * returns the new id at once, and requests proposed under it wait until it
 * is open.  fs signals the holders and fails their descriptors' lock
 * operations.  Runs on the loop, never from inside node_propose().
 */
typedef void (*node_lost_fn)(void *ctx, uint64_t old_session);
void node_on_lost(struct node *n, node_lost_fn fn, void *ctx);

/*
 * Called once per completion of a request this node proposed: first its own
 * answer (status may be LC_PENDING: it was queued), then, for a queued
 * request, its final answer later.  After a final answer (status !=
 * LC_PENDING) the callback is never called again for that serial.  It may
 * run from inside node_propose().
 */
typedef void (*node_done_fn)(void *ctx, const struct lc_completion *c);

/* Returns NULL and sets errno on failure.  Does not load anything yet. */
struct node *node_new(struct loop *loop, const struct node_config *cfg);
/* Recovers the data directory, starts the engine and opens this run's
 * session (SESSION_OPEN), running the loop until that is applied.  0 or
 * -errno (-ETIMEDOUT, -EINTR when a signal stopped the loop, a store
 * error: the reason is logged). */
int node_start(struct node *n);
/* 0 while the node is healthy; the -errno that made it stop (its store
 * failed: it stopped the loop and will not serve again). */
int node_error(const struct node *n);
/* Closes the session cleanly (SESSION_CLOSE: frees this node's locks and
 * ephemeral files) and stops timers.  In a cluster it waits at most 2 s
 * for the close to commit, and not at all without a leader heard lately
 * or a quorum (the cluster frees the locks when our lease runs out). */
void node_stop(struct node *n);

/*
 * A clean stop begins (cluckd got SIGTERM with holds outstanding): from
 * now on lock requests that take something are refused -ENOLCK (unlocks,
 * releases and everything else go through), and the session is kept
 * alive as usual until node_stop().  deadline_mono_ns (loop_mono_ns()
 * clock) is shown in status.
 */
void node_begin_stop(struct node *n, uint64_t deadline_mono_ns);
bool node_stopping(const struct node *n);
/* Locks (BSD and POSIX holds) our current session holds in the local
 * replica; 0 once stopped. */
uint64_t node_holds(const struct node *n);
void node_free(struct node *n);

/*
 * Proposes a command.  The node fills cmd->origin, cmd->serial and
 * cmd->time_ns; the command's pointers need only live during the call.
 * On success returns 0, stores the serial in *serial (may be NULL) and
 * will call fn(ctx, ...) for its completions.  Returns -ENOMEM, -ENOSPC
 * (the data directory is full and cmd adds a file, a name, content or an
 * xattr: CREATE, MKDIR, SYMLINK, LINK, WRITE, SETXATTR), or -ENOLCK when
 * the session is lost, without calling fn.  A release (RELEASE, FLUSH, an
 * unlock) refused with -ENOMEM is still kept by the node and proposed
 * again until it is in the log, so no lock stays held by a closed file;
 * until then a lock request of the same owner fails with -ENOMEM.
 *
 * A command that is not a blocking lock request (LC_LK_WAIT) and is not
 * in the log within --op-timeout (no quorum, no leader, link down; alone
 * too: a stalled log, no memory) gets
 * the final answer -ETIMEDOUT: fs answers ENOLCK for a lock, EIO for a
 * namespace change.  Its fate is then unknown: it may still be applied
 * (fs releases what such a lock request may have taken).  Blocking lock
 * requests wait as long as the session lives.
 */
int node_propose(struct node *n, struct lc_cmd *cmd, node_done_fn fn,
		 void *ctx, uint64_t *serial);

/*
 * A read barrier (SPEC 2.1: a change acknowledged on one node is visible on
 * every node's next operation).  Calls fn(ctx, 0) once the local replica
 * has applied everything the leader had committed when the barrier was
 * asked, or fn(ctx, -ETIMEDOUT) when no leader answered within
 * --op-timeout (fs then reads the replica as it is: a stale read never
 * makes a lock unsafe, since every lock decision goes through the log).
 * Alone, or on a leader holding its lease, fn runs before the call returns.
 * Barriers asked while one is in flight share the next one.  0, or
 * -ENOMEM / -ENOLCK (stopped) without calling fn.
 */
typedef void (*node_read_fn)(void *ctx, int status);
int node_read_barrier(struct node *n, node_read_fn fn, void *ctx);

/* The local replica of the state, for read-only queries. */
const struct lc_state *node_state(const struct node *n);
/* This node's session id (the `session` of lock owners it creates). */
uint64_t node_session(const struct node *n);
/* Wall clock now, ns since epoch (the driver's clock, not lockcore's). */
uint64_t node_now_ns(const struct node *n);
void node_get_status(const struct node *n, struct node_status *st);

#endif /* CLUCK_NODE_H */
