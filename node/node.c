/*
 * node/node.c - the engine host (implements node/node.h; its parts share
 * node/node_i.h, whose head comment maps them): the node's lifecycle
 * (new, start, a clean stop, free), node_propose(), the queries fs/ and
 * the daemon make (state, session, clock, error, holds, status), and the
 * one way a node fails (die).
 *
 * Alone (no --cluster), the node is a one-voter cluster with id 1 that
 * never touches the network; its timer runs only while a request waits to
 * be proposed again (the engine refused it for memory) or for its
 * --op-timeout deadline.
 *
 * A clean stop (node_begin_stop) refuses new acquires while the session is
 * kept alive for the holders; node_stop() then closes it through the log,
 * waiting for that only while a leader speaks and has a quorum.
 *
 * It must never: answer a request before its entry is durable and applied,
 * call a callback after its final answer (or at all when node_propose()
 * failed), take new data while the disk is full (ENOSPC) or a new lock
 * while stopping, or keep going after the store failed (the node signals
 * its holders, stops the loop and says so).
 */
#include "config.h"

#include "node/node_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a over the name, then a finalizer (so ids of similar names spread);
 * never 0.  The same on every node, whatever the --cluster order. */
uint64_t node_id_of(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h ? h : 1;
}

/* A failure that makes this node untrustworthy: stop serving.  cluckd
 * sees node_error() after the loop returns, unmounts and exits 1. */
void die(struct node *n, const char *what, int rc)
{
	if (n->error)
		return;
	n->error = rc < 0 ? rc : -EIO;
	log_err("%s: %s; stopping (the data directory %s is kept as it is)",
		what, strerror(-n->error), n->data_dir);
	/* The holders of our locks must not run on believing they hold
	 * them once we are gone and the cluster frees them: signal them as
	 * on a lost session (fs only reads the replica and signals). */
	session_halt(n->sess);
	if (n->lost_fn && session_id(n->sess) && n->started)
		n->lost_fn(n->lost_ctx, session_id(n->sess));
	loop_stop(n->loop);
}

/* Commands that add files, names or bytes: refused while the disk is full. */
static bool adds_data(const struct lc_cmd *cmd)
{
	switch (cmd->type) {
	case LC_CMD_CREATE:
	case LC_CMD_MKDIR:
	case LC_CMD_SYMLINK:
	case LC_CMD_LINK:
	case LC_CMD_WRITE:
		return true;
	case LC_CMD_SETXATTR:
		/* user.cluck.slots and .ttl are settings, not data. */
		return !(cmd->name_len >= 11 && !memcmp(cmd->name, "user.cluck.", 11));
	default:
		return false;
	}
}

static void on_start_timeout(struct loop *l, void *ctx)
{
	(void)ctx;
	loop_stop(l);
}

/* ---- public API --------------------------------------------------------- */

/* Creates a node (nothing loaded yet).  NULL and errno (EINVAL, ENOMEM). */
struct node *node_new(struct loop *loop, const struct node_config *cfg)
{
	struct node *n;

	if (!loop || !cfg || !cfg->name || !cfg->name[0] || !cfg->data_dir ||
	    !cfg->data_dir[0] || !cfg->lease_ms || cfg->n_voters > RF_MAX_VOTERS ||
	    (cfg->n_voters && (!cfg->voters || !cfg->listen))) {
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
	n->data_dir = strdup(cfg->data_dir);
	n->accept_cut = cfg->accept_cut;
	n->accept_state = cfg->accept_state != 0;
	n->rejoin = cfg->rejoin != 0;
	if (!n->name || !n->data_dir)
		goto free_node;
	n->st = lc_state_new();
	if (!n->st)
		goto free_node;
	lease_table_init(&n->leases, cfg->lease_ms);
	n->snap_every = SNAP_EVERY;
	/* A tuning knob (and the tests' way to see snapshots soon). */
	if (getenv("CLUCKD_SNAPSHOT_EVERY")) {
		unsigned long long v = strtoull(getenv("CLUCKD_SNAPSHOT_EVERY"), NULL, 10);

		if (v)
			n->snap_every = v;
	}
	n->self_id = SELF_ID;
	if (cfg->n_voters) {
		n->clustered = true;
		n->self_id = node_id_of(cfg->name);
		n->n_voters = cfg->n_voters;
		n->voters = calloc(cfg->n_voters, sizeof(*n->voters));
		n->voter_ids = calloc(cfg->n_voters, sizeof(*n->voter_ids));
		n->kn = calloc(MAX_KNOWN, sizeof(*n->kn));
		n->txbuf = malloc(PEER_BODY_MAX);
		if (!n->voters || !n->voter_ids || !n->kn || !n->txbuf)
			goto free_node;
		for (unsigned i = 0; i < cfg->n_voters; i++) {
			n->voters[i] = cfg->voters[i];
			n->voters[i].name = strdup(cfg->voters[i].name);
			if (!n->voters[i].name)
				goto free_node;
			n->voter_ids[i] = node_id_of(cfg->voters[i].name);
			if (n->voter_ids[i] == n->self_id)
				n->voter = true;
			for (unsigned j = 0; j < i; j++)
				if (n->voter_ids[j] == n->voter_ids[i]) {
					errno = EINVAL;   /* a hash clash: rename one */
					goto free_node_errno;
				}
		}
	}
	if (n->clustered) {
		if (cfg->listen_len > sizeof(n->listen)) {
			errno = EINVAL;
			goto free_node_errno;
		}
		memcpy(&n->listen, cfg->listen, cfg->listen_len);
		n->listen_len = cfg->listen_len;
		if (cfg->key) {
			memcpy(n->key, cfg->key, PEER_KEY_BYTES);
			n->has_key = true;
		}
	}
	{
		struct session_config sc = {
			.name = n->name, .lease_ms = cfg->lease_ms,
			.margin_ms = LEASE_MARGIN_MS, .min_lease_ms = MIN_LEASE_MS,
			.op_timeout_ms = cfg->op_timeout_ms, .resend_ms = RESEND_MS,
			.resend_acked_ms = RESEND_ACKED_MS, .entry_max = RF_ENTRY_MAX,
			.self_id = n->self_id, .voters = n->voter_ids,
			.n_voters = n->n_voters, .wall_ns = own_wall,
			.new_id = own_new_id, .host = n };

		n->sess = session_new(&sc);
		if (!n->sess)
			goto free_node;
	}
	return n;

free_node:
	errno = ENOMEM;
free_node_errno:
	{
		int e = errno;

		node_free(n);
		errno = e;
	}
	return NULL;
fail:
	errno = ENOMEM;
	return NULL;
}

/* Registers the lost-session callback (see node.h). */
void node_on_lost(struct node *n, node_lost_fn fn, void *ctx)
{
	n->lost_fn = fn;
	n->lost_ctx = ctx;
}

/* Recovers --data-dir, starts the engine and opens a new session for this
 * run.  Alone it returns once the session is applied; in a cluster it
 * waits for that at most --op-timeout and then returns 0 anyway (requests
 * wait for the session; a cluster whose voters are not all up yet is
 * normal at boot).  0, -EALREADY, -EIO (no randomness), -ETIMEDOUT (alone:
 * no leader within the operation timeout), -EINTR (the loop was stopped:
 * a signal), a store error, or the SESSION_OPEN's own error. */
int node_start(struct node *n)
{
	uint64_t deadline, timer;
	int rc;

	if (n->started)
		return -EALREADY;
	loop_on_idle(n->loop, flush_round, n);
	rc = load(n);
	if (rc == 0) {
		int r = store_reserve(n->store, RESERVE_BYTES);

		if (no_room(r)) {
			n->disk_full = true;
			log_warn("the data directory %s is full: new files and writes get ENOSPC "
				 "until there is room", n->data_dir);
			arm_disk(n);
		} else if (r < 0) {
			log_warn("cannot make the space reserve in %s: %s", n->data_dir,
				 strerror(-r));
		}
	}
	if (rc == 0 && n->clustered)
		rc = net_start(n);
	if (rc < 0)
		return rc;
	rc = session_open(n->sess, now_ms());
	run_effects(n);
	if (rc < 0)
		return rc;
	if (n->clustered)
		ntimer_set(n, &n->node_timer, 1, loop_mono_ns() + TICK_MS * 1000000u,
			   on_node_timer);
	deadline = loop_mono_ns() + (n->op_timeout_ms ? n->op_timeout_ms : 10000u) * 1000000u;
	timer = loop_timer_at(n->loop, deadline, on_start_timeout, n);
	rc = 0;
	while (!session_is_open(n->sess) && !n->error && loop_mono_ns() < deadline) {
		rc = loop_run(n->loop);
		if (rc < 0)
			break;
		if (!session_is_open(n->sess) && !n->error && loop_mono_ns() < deadline) {
			rc = -EINTR;
			break;
		}
	}
	loop_timer_cancel(n->loop, timer);
	n->started = true;
	if (n->error)
		return n->error;
	if (rc == -EINTR || rc < 0)
		return rc;
	if (!session_is_open(n->sess)) {
		if (!n->clustered)
			return -ETIMEDOUT;
		log_warn("no quorum of voters yet; serving, requests wait for the cluster");
		return 0;
	}
	return session_open_status(n->sess);
}

static void on_close_done(void *ctx, const struct lc_completion *c)
{
	struct node *n = ctx;

	(void)c;
	n->close_done = true;
	loop_stop(n->loop);
}

/* A leader silent this long is taken as gone: it sends a heartbeat every
 * HEARTBEAT_MS. */
#define CLOSE_SILENCE_MS  (6u * HEARTBEAT_MS)

/* True when our SESSION_CLOSE cannot commit soon: we lead without a
 * quorum (our Raft lease ran out), or no leader spoke lately.  Waiting
 * then frees nothing: without a quorum nothing is released anyway, and
 * the cluster frees our locks when our lease runs out on its side. */
static bool close_hopeless(struct node *n, uint64_t now)
{
	const struct known *k;

	if (!n->clustered || n->close_done)
		return false;
	if (n->role == RF_LEADER)
		return !rf_lease_valid(n->raft, now);
	if (!n->leader)
		return true;
	k = known_find(n, n->leader);
	return !k || !k->last_rx_ms || now > k->last_rx_ms + CLOSE_SILENCE_MS;
}

static void on_close_check(struct loop *l, void *ctx)
{
	struct node *n = ctx;

	n->close_check = 0;
	if (close_hopeless(n, now_ms())) {
		loop_stop(l);
		return;
	}
	n->close_check = loop_timer_at(l, loop_mono_ns() + HEARTBEAT_MS * 1000000u,
				       on_close_check, n);
}

/* Disarms every timer of the node. */
static void clear_timers(struct node *n)
{
	ntimer_clear(n, &n->raft_timer);
	ntimer_clear(n, &n->tick_timer);
	ntimer_clear(n, &n->lease_timer);
	ntimer_clear(n, &n->node_timer);
	ntimer_clear(n, &n->disk_timer);
}

/* Closes our session (SESSION_CLOSE: frees this node's locks, answers our
 * queued requests, drops our ephemeral files) and waits, a bounded time,
 * for it to be applied; then stops the timers and the transport. */
void node_stop(struct node *n)
{
	if (!n || n->stopped)
		return;
	if (n->started && !n->error && session_id(n->sess) && session_is_open(n->sess)) {
		uint64_t timer;
		int rc = session_close(n->sess, on_close_done, n, now_ms());

		run_effects(n);
		if (rc == 0) {
			/* Alone this commits in the next round; in a cluster
			 * it waits for the leader, at most 2 s, and not at
			 * all without a leader that speaks or a quorum
			 * (close_hopeless): the last voter standing stops at
			 * once. */
			timer = loop_timer_at(n->loop, loop_mono_ns() + 2000000000u,
					      on_start_timeout, n);
			/* The loop's idle hook runs only after a round with
			 * events: sync what the proposal wrote now (alone,
			 * that commits it). */
			flush_round(n->loop, n);
			if (!n->close_done && !close_hopeless(n, now_ms())) {
				n->close_check = loop_timer_at(n->loop, loop_mono_ns() +
							       HEARTBEAT_MS * 1000000u,
							       on_close_check, n);
				(void)loop_run(n->loop);
				loop_timer_cancel(n->loop, n->close_check);
				n->close_check = 0;
			}
			loop_timer_cancel(n->loop, timer);
			flush_round(n->loop, n);
		}
	}
	/* Stopped after: callbacks run above may still propose; from now on
	 * they get -ENOLCK, and whatever is still unanswered is answered. */
	n->stopped = true;
	session_halt(n->sess);
	session_fail_all(n->sess, n->error ? -EIO : -ENOLCK);
	run_effects(n);
	loop_on_idle(n->loop, NULL, NULL);
	clear_timers(n);
}

/* Frees the node and its state; pending callbacks are never called. */
void node_free(struct node *n)
{
	if (!n)
		return;
	if (!n->stopped)
		loop_on_idle(n->loop, NULL, NULL);
	clear_timers(n);
	for (size_t i = 0; i < n->noq; i++)
		free(n->oq[i].buf);
	free(n->oq);
	free(n->defer);
	session_free(n->sess);
	link_free(n->link);
	peer_free(n->peer);
	rf_free(n->raft);
	store_close(n->store);
	lease_table_free(&n->leases);
	lc_state_free(n->st);
	if (n->voters)
		for (unsigned i = 0; i < n->n_voters; i++)
			free((char *)n->voters[i].name);
	free(n->voters);
	free(n->voter_ids);
	free(n->kn);
	free(n->txbuf);
	explicit_bzero(n->key, sizeof(n->key));
	free(n->data_dir);
	free(n->name);
	free(n);
}

/* Proposes cmd (see node.h); the answer comes once its entry is durable
 * and applied.  0, -ENOMEM, -E2BIG, -ENOSPC (the disk is full and cmd
 * adds data), -ENOLCK (not started, stopped or failed), -EINVAL (bad
 * arguments). */
int node_propose(struct node *n, struct lc_cmd *cmd, node_done_fn fn,
		 void *ctx, uint64_t *serial)
{
	int rc;

	if (!n || !cmd || !fn)
		return -EINVAL;
	if (!n->started || n->stopped || n->error || !session_id(n->sess))
		return -ENOLCK;
	/* Stopping: what is held may be released, nothing new is taken. */
	if (n->stopping && (cmd->type == LC_CMD_FLOCK || cmd->type == LC_CMD_SETLK) &&
	    cmd->lock_type != LC_UNLCK)
		return -ENOLCK;
	if (n->disk_full && adds_data(cmd))
		return -ENOSPC;
	rc = session_submit(n->sess, cmd, fn, ctx, serial, now_ms());
	run_effects(n);
	return rc;
}

/* The local replica, for read-only queries. */
const struct lc_state *node_state(const struct node *n)
{
	return n->st;
}

/* Our session id (0 before node_start()). */
uint64_t node_session(const struct node *n)
{
	return session_id(n->sess);
}

/* Wall clock now, ns since the epoch, never behind a time already stamped
 * on a command. */
uint64_t node_now_ns(const struct node *n)
{
	return wall_ns(n);
}

/* 0 while healthy, else the -errno that made the node stop. */
int node_error(const struct node *n)
{
	return n->error;
}

/* A clean stop begins (see node.h). */
void node_begin_stop(struct node *n, uint64_t deadline_mono_ns)
{
	n->stopping = true;
	n->stop_deadline_ns = deadline_mono_ns;
}

bool node_stopping(const struct node *n)
{
	return n->stopping;
}

struct holds_walk {
	const struct lc_state *st;
	uint64_t session, count;
};

static int holds_holder(void *ctx, const struct lc_lockinfo *li)
{
	struct holds_walk *w = ctx;

	if (li->who.session == w->session)
		w->count++;
	return 0;
}

static int holds_waiter(void *ctx, const struct lc_lockinfo *li)
{
	(void)ctx;
	(void)li;
	return 1;               /* only holders count */
}

static int holds_ino(void *ctx, uint64_t ino)
{
	struct holds_walk *w = ctx;

	lc_locks(w->st, ino, holds_holder, holds_waiter, w);
	return 0;
}

/* Locks our current session holds (see node.h). */
uint64_t node_holds(const struct node *n)
{
	struct holds_walk w = { .st = n->st, .session = session_id(n->sess) };

	if (!w.session || n->stopped)
		return 0;
	lc_foreach_locked(n->st, holds_ino, &w);
	return w.count;
}

static const char *role_name(const struct node *n, uint8_t role)
{
	switch (role) {
	case RF_LEADER: return "leader";
	case RF_CANDIDATE:
	case RF_PRECANDIDATE: return "candidate";
	default: return n->clustered && !n->voter ? "member" : "follower";
	}
}

/* Name of a voter id ("" when not a voter). */
static const char *voter_name(const struct node *n, uint64_t id)
{
	if (!n->clustered)
		return id == SELF_ID ? n->name : "";
	for (unsigned i = 0; i < n->n_voters; i++)
		if (n->voter_ids[i] == id)
			return n->voters[i].name;
	return "";
}

/* Status of this node for /cluck/status. */
void node_get_status(const struct node *n, struct node_status *st)
{
	struct node *w = (struct node *)n;      /* the lease view's state is sticky */
	uint64_t now = now_ms();
	uint8_t role = n->raft ? rf_role(n->raft) : RF_FOLLOWER;
	uint64_t leader = n->raft ? rf_leader(n->raft) : 0;
	const struct rf_conf *conf = n->raft ? rf_conf(n->raft) : NULL;

	memset(st, 0, sizeof(*st));
	st->name = n->name;
	st->role = role_name(n, role);
	st->term = n->raft ? rf_term(n->raft) : 0;
	st->leader = voter_name(n, leader);
	st->session_id = session_id(n->sess);
	st->applied_index = lc_applied_index(n->st);
	st->sessions_lost = session_lost_count(n->sess);
	st->members = conf ? conf->n_learners : 0;
	st->disk = n->disk_full ? "full" : "ok";
	if (n->stopping && !n->stopped) {
		uint64_t mono = loop_mono_ns();

		st->stopping = 1;
		st->stop_left_ms = n->stop_deadline_ns > mono
			? (n->stop_deadline_ns - mono) / 1000000u : 0;
		st->stop_holds = node_holds(n);
	}
	if (!n->clustered) {
		st->voters_reachable = 1;
		st->voters_total = 1;
		st->quorum = role == RF_LEADER;
		st->session = n->stopped || n->error ? "expired" : "ok";
		st->link = "none";
		st->link_if = "";
		return;
	}
	st->voters_total = n->n_voters;
	for (unsigned i = 0; i < n->n_voters; i++) {
		const struct known *k;

		if (n->voter_ids[i] == n->self_id) {
			st->voters_reachable++;
			continue;
		}
		k = known_find(w, n->voter_ids[i]);
		/* Heard within two keepalive periods (voters send them to
		 * each other), or acknowledged by it lately as leader. */
		if ((k && k->last_rx_ms && now < k->last_rx_ms + n->lease_ms / 2 + 1000) ||
		    (role == RF_LEADER && rf_last_ack_ms(n->raft, n->voter_ids[i]) + ELECTION_MAX_MS > now))
			st->voters_reachable++;
	}
	if (role == RF_LEADER) {
		st->quorum = rf_lease_valid(n->raft, now) ? 1 : 0;
	} else if (leader) {
		const struct known *k = known_find(w, leader);

		st->quorum = k && now < k->last_rx_ms + ELECTION_MAX_MS;
	}
	switch (n->stopped || n->error ? LEASE_EXPIRED : session_state(w->sess, now)) {
	case LEASE_OK: st->session = "ok"; break;
	case LEASE_EXPIRED: st->session = "expired"; break;
	case LEASE_NONE:
		/* A new session not open yet: after a loss, the last one
		 * expired; at start-up, we wait for the cluster. */
		st->session = st->sessions_lost ? "expired" : "jeopardy";
		break;
	default: st->session = "jeopardy"; break;
	}
	st->link = n->link ? link_state_name(n->link_st) : "unknown";
	st->link_if = n->link ? link_ifname(n->link) : "";
	if (n->peer)
		peer_get_stats(n->peer, &st->peer);
}

