/*
 * net/node.c - the engine driver for a ONE-NODE cluster (implements
 * net/node.h).
 *
 * This node is its own leader: a proposed command is stamped (origin = our
 * session, next serial, leader wall time, never going backwards) and
 * applied at the next log index at once; its completions are delivered to
 * the callbacks registered for our serials.  A loop timer at the state's
 * next deadline applies leader-made TICKs so lockfile ttls expire.  The
 * consensus engine replaces this file without touching fs/.
 *
 * It must never: block, call a callback after its final answer (or at all
 * when node_propose() failed), reuse a completion buffer across nested
 * node_propose() calls, or hold a position in the pending table while a
 * callback runs (callbacks propose again).
 */
#include "config.h"

#include "net/node.h"
#include "net/loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Registered callback of one of our requests still waiting for its final
 * answer.  serial 0 marks a free bucket. */
struct pend {
	uint64_t serial;
	node_done_fn fn;
	void *ctx;
};

struct node {
	struct loop *loop;
	char *name;
	uint64_t lease_ms, op_timeout_ms;

	struct lc_state *st;
	uint64_t session;
	uint64_t index;         /* last log index used */
	uint64_t serial;        /* last serial of our session */
	uint64_t leader_serial; /* last serial of origin-0 commands */
	uint64_t last_time;     /* last time_ns stamped: time never goes back */
	bool started, stopped;

	uint64_t timer;         /* deadline timer id, 0 when none */
	uint64_t timer_at;      /* wall ns it was armed for */

	struct pend *pt;        /* open addressing, linear probing */
	size_t pcap, pn;        /* pcap is 0 or a power of two */
};

/* ---- pending table ------------------------------------------------------ */

static size_t ph(uint64_t serial, size_t cap)
{
	serial ^= serial >> 33;
	serial *= 0xff51afd7ed558ccdull;
	serial ^= serial >> 33;
	return (size_t)serial & (cap - 1);
}

static struct pend *pend_find(struct node *n, uint64_t serial)
{
	if (!n->pcap)
		return NULL;
	for (size_t i = ph(serial, n->pcap);; i = (i + 1) & (n->pcap - 1)) {
		if (n->pt[i].serial == serial)
			return &n->pt[i];
		if (n->pt[i].serial == 0)
			return NULL;
	}
}

/* Makes room for one more entry so the insert after an apply cannot fail
 * (the state has changed by then and cannot be rolled back).  0/-ENOMEM. */
static int pend_reserve(struct node *n)
{
	struct pend *old = n->pt;
	size_t oldcap = n->pcap, cap;

	if ((n->pn + 1) * 4 <= n->pcap * 3)
		return 0;
	cap = oldcap ? oldcap * 2 : 64;
	n->pt = calloc(cap, sizeof(*n->pt));
	if (!n->pt) {
		n->pt = old;
		return -ENOMEM;
	}
	n->pcap = cap;
	for (size_t i = 0; i < oldcap; i++) {
		size_t j;

		if (!old[i].serial)
			continue;
		for (j = ph(old[i].serial, cap); n->pt[j].serial; j = (j + 1) & (cap - 1))
			;
		n->pt[j] = old[i];
	}
	free(old);
	return 0;
}

static void pend_insert(struct node *n, uint64_t serial, node_done_fn fn, void *ctx)
{
	size_t i;

	for (i = ph(serial, n->pcap); n->pt[i].serial; i = (i + 1) & (n->pcap - 1))
		;
	n->pt[i].serial = serial;
	n->pt[i].fn = fn;
	n->pt[i].ctx = ctx;
	n->pn++;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void pend_remove(struct node *n, struct pend *p)
{
	size_t mask = n->pcap - 1, i = (size_t)(p - n->pt), j = i;

	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (!n->pt[j].serial)
			break;
		home = ph(n->pt[j].serial, n->pcap);
		/* Move j back to the hole at i unless its home lies in (i, j]. */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && (home <= i && home > j))) {
			n->pt[i] = n->pt[j];
			i = j;
		}
	}
	memset(&n->pt[i], 0, sizeof(n->pt[i]));
	n->pn--;
}

/* ---- applying ----------------------------------------------------------- */

static uint64_t stamp_time(struct node *n)
{
	uint64_t now = loop_wall_ns();

	if (now < n->last_time)
		now = n->last_time;
	n->last_time = now;
	return now;
}

/* Hands every completion of our session to its registered callback.  The
 * entry is looked up afresh for each completion and removed before the
 * callback runs, since a callback may propose (and so grow the table). */
static void dispatch(struct node *n, const struct lc_out *out)
{
	for (size_t i = 0; i < out->n; i++) {
		const struct lc_completion *c = &out->v[i];
		struct pend *p;
		node_done_fn fn;
		void *ctx;

		if (c->origin != n->session || n->session == 0)
			continue;
		p = pend_find(n, c->serial);
		if (!p)
			continue;
		fn = p->fn;
		ctx = p->ctx;
		if (c->status != LC_PENDING)
			pend_remove(n, p);
		fn(ctx, c);
	}
}

static void on_deadline(struct loop *l, void *ctx);

/* Arms the TICK timer for the state's next deadline (wall clock, converted
 * to the monotonic clock the loop runs on). */
static void rearm(struct node *n)
{
	uint64_t d = n->stopped ? 0 : lc_next_deadline(n->st);
	uint64_t wall, mono;

	if (d == n->timer_at && (n->timer || d == 0))
		return;
	if (n->timer) {
		loop_timer_cancel(n->loop, n->timer);
		n->timer = 0;
	}
	n->timer_at = 0;
	if (d == 0)
		return;
	wall = loop_wall_ns();
	mono = loop_mono_ns();
	if (d > wall)
		mono += d - wall;
	else if (d <= n->last_time)
		/* Already due by the time we stamped and still pending: do not
		 * spin on it, retry a little later. */
		mono += 1000000u;
	n->timer = loop_timer_at(n->loop, mono, on_deadline, n);
	if (n->timer)
		n->timer_at = d;
}

/* Applies cmd at the next index into a fresh buffer (never shared with an
 * outer call), rearms the deadline timer, and returns lc_apply's result
 * with the buffer to dispatch. */
static int apply(struct node *n, const struct lc_cmd *cmd, struct lc_out *out)
{
	int rc;

	rc = lc_apply(n->st, ++n->index, cmd, out);
	if (rc != -ENOMEM)
		rearm(n);
	return rc;
}

/* Applies a leader-made command (origin 0) and delivers what it resolves. */
static int apply_leader(struct node *n, struct lc_cmd *cmd)
{
	struct lc_out out = { 0 };
	int rc;

	cmd->origin = 0;
	cmd->serial = ++n->leader_serial;
	cmd->time_ns = stamp_time(n);
	rc = apply(n, cmd, &out);
	if (rc != -ENOMEM)
		dispatch(n, &out);
	lc_out_free(&out);
	return rc;
}

static void on_deadline(struct loop *l, void *ctx)
{
	struct node *n = ctx;
	struct lc_cmd cmd;

	(void)l;
	n->timer = 0;
	n->timer_at = 0;
	if (n->stopped)
		return;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_TICK;
	if (apply_leader(n, &cmd) == -ENOMEM)
		/* Try again soon rather than leave a ttl unexpired forever. */
		n->timer = loop_timer_at(n->loop, loop_mono_ns() + 100000000u,
					 on_deadline, n);
}

/* ---- public API --------------------------------------------------------- */

/* Creates a node (nothing applied yet).  NULL and errno (EINVAL, ENOMEM). */
struct node *node_new(struct loop *loop, const struct node_config *cfg)
{
	struct node *n;

	if (!loop || !cfg || !cfg->name || !cfg->name[0]) {
		errno = EINVAL;
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		goto fail;
	n->loop = loop;
	n->lease_ms = cfg->lease_ms;
	n->op_timeout_ms = cfg->op_timeout_ms;
	n->name = strdup(cfg->name);
	if (!n->name)
		goto free_node;
	n->st = lc_state_new();
	if (!n->st)
		goto free_name;
	return n;

free_name:
	free(n->name);
free_node:
	free(n);
fail:
	errno = ENOMEM;
	return NULL;
}

/* Opens our session at index 1.  0, -EALREADY, -EIO (no randomness), or
 * -ENOMEM / the SESSION_OPEN's own error. */
int node_start(struct node *n)
{
	struct lc_out out = { 0 };
	struct lc_cmd cmd;
	uint64_t sid = 0;
	int rc;

	if (n->started)
		return -EALREADY;
	while (sid == 0) {
		ssize_t r = getrandom(&sid, sizeof(sid), 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r != (ssize_t)sizeof(sid))
			return -EIO;
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_SESSION_OPEN;
	cmd.origin = sid;
	cmd.serial = ++n->serial;
	cmd.time_ns = stamp_time(n);
	cmd.session = sid;
	cmd.data = n->name;
	cmd.data_len = (uint32_t)strlen(n->name);
	rc = apply(n, &cmd, &out);
	if (rc == 0 && out.n > 0 && out.v[0].status < 0)
		rc = out.v[0].status;
	lc_out_free(&out);
	if (rc < 0)
		return rc;
	n->session = sid;
	n->started = true;
	return 0;
}

/* Closes our session: lockcore frees our locks, answers our queued
 * requests (delivered here, so fs answers every parked request) and drops
 * our ephemeral files.  Then the deadline timer goes. */
void node_stop(struct node *n)
{
	struct lc_cmd cmd;

	if (!n || n->stopped)
		return;
	/* Stopped first: callbacks run below must see -ENOLCK if they try to
	 * propose for a session that is closing. */
	n->stopped = true;
	if (n->started) {
		memset(&cmd, 0, sizeof(cmd));
		cmd.type = LC_CMD_SESSION_CLOSE;
		cmd.session = n->session;
		/* On ENOMEM the state keeps our session, which dies with the
		 * process anyway; the pending callbacks are then dropped. */
		(void)apply_leader(n, &cmd);
	}
	if (n->timer)
		loop_timer_cancel(n->loop, n->timer);
	n->timer = 0;
	n->timer_at = 0;
}

/* Frees the node and its state; pending callbacks are never called. */
void node_free(struct node *n)
{
	if (!n)
		return;
	if (n->timer)
		loop_timer_cancel(n->loop, n->timer);
	lc_state_free(n->st);
	free(n->pt);
	free(n->name);
	free(n);
}

/* Proposes and, on one node, applies cmd at once (see node.h).  0, -ENOMEM,
 * -ENOLCK (not started or stopped), -EINVAL (bad arguments).  A command
 * that lockcore rejects as invalid is answered through fn with -EINVAL. */
int node_propose(struct node *n, struct lc_cmd *cmd, node_done_fn fn,
		 void *ctx, uint64_t *serial)
{
	struct lc_out out = { 0 };
	struct pend *p;
	bool answered = false;
	uint64_t s;
	int rc;

	if (!n || !cmd || !fn)
		return -EINVAL;
	if (!n->started || n->stopped)
		return -ENOLCK;
	if (pend_reserve(n) < 0)
		return -ENOMEM;
	s = n->serial + 1;
	cmd->origin = n->session;
	cmd->serial = s;
	cmd->time_ns = stamp_time(n);
	rc = apply(n, cmd, &out);
	if (rc == -ENOMEM) {
		lc_out_free(&out);
		return -ENOMEM;
	}
	n->serial = s;
	if (serial)
		*serial = s;
	pend_insert(n, s, fn, ctx);
	for (size_t i = 0; i < out.n; i++)
		if (out.v[i].origin == n->session && out.v[i].serial == s)
			answered = true;
	dispatch(n, &out);
	lc_out_free(&out);
	if (!answered) {
		/* lockcore always answers the command itself; if it ever does
		 * not, answer for it so fs never waits forever. */
		struct lc_completion c = {
			.origin = n->session, .serial = s,
			.status = rc < 0 ? rc : -EIO,
		};

		p = pend_find(n, s);
		if (p) {
			pend_remove(n, p);
			fn(ctx, &c);
		}
	}
	return 0;
}

/* The local replica, for read-only queries. */
const struct lc_state *node_state(const struct node *n)
{
	return n->st;
}

/* Our session id (0 before node_start()). */
uint64_t node_session(const struct node *n)
{
	return n->session;
}

/* Wall clock now, ns since the epoch, never behind a time already stamped
 * on a command. */
uint64_t node_now_ns(const struct node *n)
{
	uint64_t now = loop_wall_ns();

	return now < n->last_time ? n->last_time : now;
}

/* Status of a one-node cluster: always its own leader with quorum. */
void node_get_status(const struct node *n, struct node_status *st)
{
	memset(st, 0, sizeof(*st));
	st->name = n->name;
	st->role = "leader";
	st->term = 1;
	st->leader = n->name;
	st->voters_reachable = 1;
	st->voters_total = 1;
	st->quorum = 1;
	st->session = n->stopped ? "expired" : "ok";
	st->session_id = n->session;
	st->applied_index = lc_applied_index(n->st);
}
