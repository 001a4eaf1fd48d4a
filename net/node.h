/*
 * net/node.h - the engine driver: what fs/ talks to.
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
 */
#ifndef CLUCK_NODE_H
#define CLUCK_NODE_H

#include <stdint.h>
#include "lockcore/lc.h"

struct loop;
struct node;

struct node_config {
	const char *name;            /* node name (status, session name) */
	const char *data_dir;        /* --data-dir: the durable log */
	uint64_t lease_ms;           /* --lease */
	uint64_t op_timeout_ms;      /* --op-timeout */
};

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
};

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
 * ephemeral files) and stops timers. */
void node_stop(struct node *n);
void node_free(struct node *n);

/*
 * Proposes a command.  The node fills cmd->origin, cmd->serial and
 * cmd->time_ns; the command's pointers need only live during the call.
 * On success returns 0, stores the serial in *serial (may be NULL) and
 * will call fn(ctx, ...) for its completions.  Returns -ENOMEM, or -ENOLCK
 * when the session is lost, without calling fn.
 */
int node_propose(struct node *n, struct lc_cmd *cmd, node_done_fn fn,
		 void *ctx, uint64_t *serial);

/* The local replica of the state, for read-only queries. */
const struct lc_state *node_state(const struct node *n);
/* This node's session id (the `session` of lock owners it creates). */
uint64_t node_session(const struct node *n);
/* Wall clock now, ns since epoch (the driver's clock, not lockcore's). */
uint64_t node_now_ns(const struct node *n);
void node_get_status(const struct node *n, struct node_status *st);

#endif /* CLUCK_NODE_H */
