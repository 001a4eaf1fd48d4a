/*
 * node/engine.c - the engine host's engine part: steps of the Raft engine
 * and what one update asks for (persist, send, apply, re-arm), the loop
 * round's group commit, snapshots taken and installed, and a full data
 * directory.
 *
 * What the engine asks to persist goes to the store and is made durable
 * once per loop round (group commit: one fdatasync for everything the
 * round appended); what it asks to send goes out at once; committed
 * entries are applied to the local state in log order and their
 * completions handed to the session.  Snapshots are taken every
 * SNAP_EVERY entries (once the log since the last one is half its size)
 * and the log is compacted behind them.
 *
 * It must never: block anywhere but in the round's fdatasync, answer a
 * request before its entry is durable and applied, step the engine from
 * inside the handling of one of its updates (the update points into the
 * engine: proposals asked for meanwhile wait for the end of the outer
 * step, drain), or keep going after the store failed (die).  A store
 * refused for space has not failed: the node gives back its reserve file,
 * refuses what adds data (ENOSPC), retries a stalled sync and serves again
 * once the reserve can be made.
 */
#include "config.h"

#include "node/node_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void handle(struct node *n, const struct rf_update *u);
static void drain(struct node *n);

/* ---- clocks -------------------------------------------------------------- */

/* Wall clock now, never behind a time already stamped on a command (ours,
 * stamped by the session, or a leader-made one). */
uint64_t wall_ns(const struct node *n)
{
	uint64_t now = loop_wall_ns(), last = n->sess ? session_last_time(n->sess) : 0;

	if (last < n->last_time)
		last = n->last_time;
	return now < last ? last : now;
}

uint64_t stamp_time(struct node *n)
{
	n->last_time = wall_ns(n);
	return n->last_time;
}

/* ---- a full data directory ------------------------------------------------ */

bool no_room(int64_t rc)
{
	return rc == -ENOSPC || rc == -EDQUOT;
}

static void on_disk_timer(struct loop *l, void *ctx);

void arm_disk(struct node *n)
{
	ntimer_set(n, &n->disk_timer, 1, (now_ms() + DISK_RETRY_MS) * 1000000u,
		   on_disk_timer);
}

/* A store call was refused for space.  From now on node_propose()
 * refuses what adds data (ENOSPC) and the disk timer looks for room; the
 * reserve goes back to the filesystem so that lock commands can still be
 * logged.  1 when it did (the caller retries at once), else 0. */
static int out_of_room(struct node *n)
{
	int r;

	if (!n->disk_full) {
		n->disk_full = true;
		log_warn("the data directory %s is full: new files and writes get ENOSPC, "
			 "locks go on", n->data_dir);
	}
	arm_disk(n);
	r = store_unreserve(n->store);
	if (r > 0)
		log_warn("gave back the %u KiB space reserve for lock commands",
			 RESERVE_BYTES >> 10);
	return r > 0;
}

/* While the disk is full: once the log is synced again, room for a new
 * reserve means room for everything. */
static void on_disk_timer(struct loop *l, void *ctx)
{
	struct node *n = ctx;

	(void)l;
	n->disk_timer.id = n->disk_timer.key = 0;
	if (n->stopped || n->error || !n->disk_full)
		return;
	/* An unsynced log goes first: flush_round, the idle hook that runs
	 * after this timer, tries again. */
	if (n->want_seq > n->synced_seq || store_reserve(n->store, RESERVE_BYTES) < 0) {
		arm_disk(n);
		return;
	}
	n->disk_full = false;
	log_info("the data directory %s has room again: serving writes", n->data_dir);
}

/* ---- engine steps -------------------------------------------------------- */

int step(struct node *n, struct rf_event *ev)
{
	struct rf_update u;
	int rc;

	ev->now_ms = now_ms();
	n->depth++;
	rc = rf_step(n->raft, ev, &u);
	/* Only -EINVAL leaves the engine untouched; every other return
	 * (a refused proposal included) may carry timer effects. */
	if (rc != -EINVAL)
		handle(n, &u);
	if (n->rejoining && n->raft && !rf_catching_up(n->raft)) {
		int dr = store_del_file(n->store, REJOIN_FILE);

		n->rejoining = false;
		log_info("caught up with the leader's committed entries: this voter "
			 "votes again");
		/* Left behind, the mark only makes the next start catch up
		 * again: safe, so not fatal here. */
		if (dr < 0)
			log_warn("cannot remove %s/%s: %s", n->data_dir, REJOIN_FILE,
				 strerror(-dr));
	}
	n->depth--;
	if (n->depth == 0)
		drain(n);
	return rc;
}

/* Work asked for during a step: leader-made proposals and our own.  Runs
 * at depth 0 only; what it does may add more. */
static void drain(struct node *n)
{
	while (!n->error && (n->noq || n->ndefer > n->dhead)) {
		if (n->noq) {
			struct outq q = n->oq[0];
			struct rf_event ev = { .type = RF_EV_PROPOSE };

			memmove(n->oq, n->oq + 1, (n->noq - 1) * sizeof(*n->oq));
			n->noq--;
			if (n->role == RF_LEADER) {
				ev.propose.buf = q.buf;
				ev.propose.len = (uint32_t)q.len;
				(void)step(n, &ev);
			}
			free(q.buf);
			continue;
		}
		{
			/* First asked, first sent: the session looks again
			 * whether it still waits for the log. */
			uint64_t serial = n->defer[n->dhead++];

			if (n->dhead == n->ndefer)
				n->dhead = n->ndefer = 0;
			session_send(n->sess, serial, now_ms());
			run_effects(n);
		}
	}
}

/* ---- sending -------------------------------------------------------------- */

static void send_raft(struct node *n, const struct rf_msg *m)
{
	int len;

	if (!n->peer)
		return;
	len = rf_msg_encode(m, n->txbuf, PEER_BODY_MAX);
	if (len < 0) {
		log_warn("cannot encode a Raft message for %016" PRIx64 ": %s", m->to,
			 strerror(-len));
		return;
	}
	(void)peer_send(n->peer, m->to, PEER_T_RAFT, n->txbuf, (size_t)len);
}

/* ---- timers --------------------------------------------------------------- */

void ntimer_clear(struct node *n, struct ntimer *t)
{
	if (t->id)
		loop_timer_cancel(n->loop, t->id);
	t->id = t->key = 0;
}

/* Arms t for `key` at mono_ns (key 0, or a stopped node: disarms). */
void ntimer_set(struct node *n, struct ntimer *t, uint64_t key, uint64_t mono_ns,
		loop_timer_fn fn)
{
	if (key && key == t->key && t->id)
		return;
	ntimer_clear(n, t);
	if (!key || n->stopped)
		return;
	t->id = loop_timer_at(n->loop, mono_ns, fn, n);
	if (t->id)
		t->key = key;
}

static void on_raft_timer(struct loop *l, void *ctx)
{
	struct node *n = ctx;
	struct rf_event ev = { .type = RF_EV_TIMEOUT };

	(void)l;
	n->raft_timer.id = n->raft_timer.key = 0;
	step(n, &ev);
}

static void arm_raft(struct node *n, uint64_t at_ms)
{
	ntimer_set(n, &n->raft_timer, at_ms, at_ms * 1000000u, on_raft_timer);
}

/* ---- applying and snapshots ---------------------------------------------- */

/* Snapshots the applied state, persists it, hands it to the engine and
 * compacts the store.  Failure to snapshot is not fatal: the log grows. */
static void maybe_snapshot(struct node *n)
{
	const struct rf_conf *conf;
	struct rf_event ev = { .type = RF_EV_SNAPSHOT };
	uint8_t *data = NULL, meta[RF_CONF_MAX_BYTES];
	const struct rf_entry *e;
	size_t len;
	int mlen, rc;

	/* Besides the entry count, the log since the last snapshot must be
	 * half as big as that snapshot: a growing namespace is then saved a
	 * logarithmic number of times, not every SNAP_EVERY entries. */
	if ((n->since_snap_entries < n->snap_every ||
	     n->since_snap_bytes * 2 < n->snap_len) && n->since_snap_bytes < SNAP_BYTES)
		return;
	if (n->disk_full)
		return;
	e = rf_entry_at(n->raft, n->applied);
	conf = rf_conf(n->raft);
	if (!e || !conf)
		return;
	/* The configuration in force may come from an entry not applied
	 * yet (it takes effect when appended); a snapshot must carry the one
	 * at its own index, so wait until no such entry is pending. */
	for (uint64_t i = n->applied + 1; i <= rf_last_index(n->raft); i++) {
		const struct rf_entry *p = rf_entry_at(n->raft, i);

		if (p && p->type == RF_ENTRY_CONF)
			return;
	}
	mlen = rf_conf_encode(conf, meta, sizeof(meta));
	if (mlen < 0 || lc_state_save(n->st, &data, &len) < 0)
		return;
	rc = store_snapshot_save(n->store, n->applied, e->term, meta, (uint32_t)mlen,
				 data, len);
	if (no_room(rc)) {
		/* Later, when there is room: the log grows meanwhile. */
		free(data);
		return;
	}
	if (rc < 0) {
		free(data);
		die(n, "cannot write a snapshot", rc);
		return;
	}
	ev.snapshot.index = n->applied;
	ev.snapshot.buf = data;
	ev.snapshot.len = len;
	if (step(n, &ev) < 0) {
		free(data);
		return;
	}
	n->snap_index = n->applied;
	n->snap_len = len;
	n->since_snap_entries = n->since_snap_bytes = 0;
	rc = store_compact(n->store, n->applied);
	if (rc < 0)
		die(n, "cannot compact the log", rc);
}

static void apply_entry(struct node *n, uint64_t index, const struct rf_entry *e)
{
	struct lc_out out = { 0 };
	struct lc_cmd cmd;
	int rc;

	n->applied = index;
	n->since_snap_entries++;
	n->since_snap_bytes += e->len;
	if (e->type != RF_ENTRY_CMD)
		return;
	if (lc_cmd_decode(e->buf, e->len, &cmd) < 0) {
		/* Every replica decodes the same bytes the same way: skipping
		 * it keeps them equal.  It cannot come from a healthy peer. */
		log_warn("log entry %llu does not decode; skipped", (unsigned long long)index);
		return;
	}
	if (session_entry(n->sess, &cmd, now_ms())) {
		/* The cluster closes our live session (the session gave it
		 * up): fs is told BEFORE the close frees the locks, so it
		 * can still find the holders to signal. */
		log_warn("the cluster closed our session %016" PRIx64 "; its locks are lost",
			 cmd.session);
		run_effects(n);
	}
	rc = lc_apply(n->st, index, &cmd, &out);
	if (rc == -ENOMEM) {
		lc_out_free(&out);
		die(n, "cannot apply a committed entry", rc);
		return;
	}
	if (n->role == RF_LEADER) {
		if (cmd.type == LC_CMD_SESSION_OPEN && out.n && out.v[0].status == 0)
			(void)lease_open(&n->leases, cmd.session, now_ms());
		else if (cmd.type == LC_CMD_SESSION_CLOSE)
			lease_forget(&n->leases, cmd.session);
	}
	session_applied(n->sess, &cmd, &out, now_ms());
	lc_out_free(&out);
	run_effects(n);
}

/* Replaces the state with a snapshot received from the leader. */
static void install_snapshot(struct node *n, const struct rf_update *u)
{
	struct lc_state *st;
	uint8_t meta[RF_CONF_MAX_BYTES];
	int mlen, rc;

	mlen = rf_conf_encode(u->snap_conf, meta, sizeof(meta));
	rc = lc_state_load(u->snap_buf, u->snap_len, &st);
	if (mlen < 0 || rc < 0) {
		die(n, "cannot load the leader's snapshot", rc < 0 ? rc : -EINVAL);
		return;
	}
	rc = store_snapshot_install(n->store, u->snap_index, u->snap_term, meta,
				    (uint32_t)mlen, u->snap_buf, u->snap_len);
	if (rc < 0) {
		lc_state_free(st);
		die(n, "cannot store the leader's snapshot", rc);
		return;
	}
	lc_state_free(n->st);
	n->st = st;
	n->applied = n->snap_index = u->snap_index;
	n->snap_len = u->snap_len;
	n->since_snap_entries = n->since_snap_bytes = 0;
}

/* Executes one update of the engine: persist, send, apply, re-arm. */
static void handle(struct node *n, const struct rf_update *u)
{
	uint8_t role0 = n->role;
	bool new_leader;
	int rc = 0;

	if (u->write_seq && !n->error) {
		if (u->flags & RF_UPD_SNAPSHOT) {
			install_snapshot(n, u);
			/* The entries it skipped carried completions we never
			 * saw: the session asks the new state about each. */
			if (!n->error)
				session_installed(n->sess, n->st, now_ms());
			run_effects(n);
		}
		if (u->flags & RF_UPD_HARDSTATE)
			rc = store_set_hardstate(n->store, u->hs_term, u->hs_vote);
		if (rc == 0 && (u->flags & RF_UPD_ENTRIES)) {
			rc = store_truncate(n->store, u->first_index);
			if (no_room(rc) && out_of_room(n))
				rc = store_truncate(n->store, u->first_index);
			for (size_t i = 0; rc == 0 && i < u->n_entries; i++) {
				const struct rf_entry *e = &u->entries[i];

				rc = store_append(n->store, u->first_index + i, e->term,
						  e->type, e->buf, e->len);
				if (no_room(rc) && out_of_room(n))
					rc = store_append(n->store, u->first_index + i,
							  e->term, e->type, e->buf, e->len);
			}
		}
		if (rc < 0)
			die(n, "cannot write the log", rc);
		n->want_seq = u->write_seq;
	}
	/* The engine holds back whatever must wait for the sync; the rest
	 * goes now, before applying (which may ask for more steps). */
	for (size_t i = 0; i < u->n_msgs && !n->error; i++)
		send_raft(n, &u->msgs[i]);
	n->role = u->role;
	n->leader = u->leader;
	new_leader = session_set_role(n->sess, n->role == RF_LEADER, n->leader);
	for (size_t i = 0; i < u->n_committed && !n->error; i++)
		apply_entry(n, u->commit_first + i, &u->committed[i]);
	if (u->n_committed) {
		arm_tick(n);
		maybe_snapshot(n);
	}
	arm_raft(n, u->next_deadline_ms);
	if (n->role == RF_LEADER && role0 != RF_LEADER) {
		/* Chubby's grace: every session the state knows gets a full
		 * lease from now before anything can expire. */
		if (lease_reset(&n->leases, n->st, now_ms()) < 0)
			die(n, "cannot track session leases", -ENOMEM);
		n->leader_since = now_ms();
		log_info("leading term %llu", (unsigned long long)u->term);
		arm_tick(n);
		check_leases(n);
	} else if (role0 == RF_LEADER && n->role != RF_LEADER) {
		log_info("no longer leading (term %llu)", (unsigned long long)u->term);
	}
	if (new_leader) {
		/* A new leader: what waited for one goes to it now
		 * (proposals at the end of the step). */
		session_resend(n->sess, now_ms());
		run_effects(n);
		if (n->clustered && n->leader != n->self_id)
			log_info("leader is %016" PRIx64 " (term %llu)", n->leader,
				 (unsigned long long)u->term);
	}
}

/* The loop's idle hook: one fdatasync for everything this round wrote,
 * then the engine learns it is durable (which commits and applies). */
void flush_round(struct loop *l, void *ctx)
{
	struct node *n = ctx;

	(void)l;
	drain(n);
	for (int round = 0; round < 8 && n->want_seq > n->synced_seq && !n->error; round++) {
		struct rf_event ev = { .type = RF_EV_PERSISTED };
		uint64_t seq = n->want_seq;
		int64_t rc = store_sync(n->store);

		if (no_room(rc) && out_of_room(n))
			rc = store_sync(n->store);
		if (no_room(rc)) {
			/* Nothing is lost, nothing is acknowledged: the disk
			 * timer wakes us to try again. */
			if (!n->sync_stalled)
				log_warn("cannot sync the log: %s; requests wait until there is room",
					 strerror((int)-rc));
			n->sync_stalled = true;
			return;
		}
		if (rc < 0) {
			die(n, "cannot sync the log", (int)rc);
			return;
		}
		if (n->sync_stalled)
			log_info("the log is synced again");
		n->sync_stalled = false;
		n->synced_seq = seq;
		ev.persisted.seq = seq;
		step(n, &ev);
	}
	if (session_reads_waiting(n->sess)) {
		struct session_in in = own_in(n);

		session_reads_check(n->sess, &in);
		run_effects(n);
	}
}

