/*
 * t/sim/engine.c - driving one Raft engine the way cluckd does: rf_step,
 * its update (role, writes onto the fake disk, messages, committed
 * entries, reads), snapshots every snap_k applied entries, installs from
 * the leader, start from disk and crash.
 *
 * It must never: look inside struct raft (only lockcore/raft.h), or let a
 * crash keep anything the fake disk had not synced.
 */
#include "t/sim/sim.h"

/* ---- driving one engine -------------------------------------------------- */

static void check_leader_complete(int i)
{
	struct raft *r = S.nodes[i].r;

	/* Entries committed in an earlier term than this leader's. */
	for (size_t k = 1; k <= S.gcn; k++) {
		const struct rf_entry *e = rf_entry_at(r, k);

		if (S.gc_term[k - 1] >= rf_term(r) || k < rf_first_index(r))
			continue;        /* a snapshot holds the compacted ones */
		if (!e || !dent_eq(&S.gc[k - 1], e))
			fail("leader %d of term %llu lacks committed entry %zu", i + 1,
			     (unsigned long long)rf_term(r), k);
	}
}

/* Node i replaces its state machine with a snapshot of index idx (installed
 * from the leader): it must be the reference state at idx. */
static void node_install(int i, uint64_t idx, const struct rf_conf *conf,
			 const uint8_t *buf, size_t len)
{
	struct node *nd = &S.nodes[i];
	struct lc_state *ns;

	if (idx <= nd->applied)
		fail("node %d installs snapshot %llu behind its state (%llu)", i + 1,
		     (unsigned long long)idx, (unsigned long long)nd->applied);
	if (idx > S.gcn)
		fail("node %d installs snapshot %llu beyond anything committed (%zu)", i + 1,
		     (unsigned long long)idx, S.gcn);
	if (lc_state_load(buf, len, &ns))
		fail("node %d: installed snapshot %llu does not load", i + 1,
		     (unsigned long long)idx);
	if (lc_state_hash(ns) != S.ref_hash[idx])
		fail("node %d: snapshot installed at %llu differs from the reference", i + 1,
		     (unsigned long long)idx);
	lc_state_free(nd->sm);
	nd->sm = ns;
	nd->applied = idx;
	nd->aconf = *conf;
	S.installs++;
	tr("n%d installs a snapshot at %llu", i + 1, (unsigned long long)idx);
	/* The entries it skipped carried completions never seen here: the
	 * session asks the new state about each. */
	if (session_pending(nd->ss))
		S.inst_pending++;
	session_installed(nd->ss, nd->sm, local(i));
	run_effects(i);
}

/* The node answers its ready reads whose index it has applied, from its
 * own state: the answer must be the reference's at the index it serves
 * from (>= the read index), and the read index must cover every entry
 * applied anywhere before the read was asked. */
static void serve_reads(int i)
{
	struct node *nd = &S.nodes[i];

	for (size_t k = 0; k < S.nrd; k++) {
		struct rdreq *q = &S.rd[k];

		if (q->node != i || !q->ready || q->done || nd->applied < q->index)
			continue;
		q->done = true;
		if (q->index < q->min_index)
			fail("n%d: read index %llu misses entry %llu, applied before the read",
			     i + 1, (unsigned long long)q->index,
			     (unsigned long long)q->min_index);
		if (who_holds(nd->sm, q->file) !=
		    S.ref_who[nd->applied * NFILES + (uint64_t)q->file])
			fail("n%d: read of file %d at %llu differs from the reference", i + 1,
			     q->file, (unsigned long long)nd->applied);
		S.rd_served++;
	}
}

static void read_ready(int i, const struct rf_read *r)
{
	struct rdreq *q;

	if (!r->ctx || r->ctx > S.nrd)
		fail("n%d: read ctx %llu never asked", i + 1, (unsigned long long)r->ctx);
	q = &S.rd[r->ctx - 1];
	if (q->node != i || q->ready || q->done)
		fail("n%d: read ctx %llu answered twice or by another node", i + 1,
		     (unsigned long long)r->ctx);
	if (!r->index) {
		q->done = true;
		S.rd_failed++;
		return;
	}
	q->ready = true;
	q->index = r->index;
}

/* A read barrier of node i's session answered: the node then serves the
 * read from its own state, which must cover every entry applied anywhere
 * before the read was asked (SPEC 2.1) and be the reference's. */
static void barrier_done(void *ctx, int status)
{
	struct rdreq *q = &S.rd[(uintptr_t)ctx - 1];
	struct node *nd = &S.nodes[q->node];

	if (q->done)
		fail("n%d: read barrier %llu answered twice", q->node + 1,
		     (unsigned long long)(uintptr_t)ctx);
	q->done = true;
	if (status) {
		S.rd_timeout++;
		return;
	}
	if (nd->applied < q->min_index)
		fail("n%d: read barrier answered at applied %llu, before entry %llu that "
		     "was applied before the read was asked", q->node + 1,
		     (unsigned long long)nd->applied, (unsigned long long)q->min_index);
	if (who_holds(nd->sm, q->file) != S.ref_who[nd->applied * NFILES + (uint64_t)q->file])
		fail("n%d: read of file %d at %llu differs from the reference", q->node + 1,
		     q->file, (unsigned long long)nd->applied);
	S.rd_served++;
}

static struct rdreq *rd_new(int i)
{
	struct rdreq *q;

	if (S.nrd == S.caprd) {
		S.caprd = S.caprd ? S.caprd * 2 : 64;
		S.rd = cl_xrealloc(S.rd, S.caprd * sizeof(*S.rd));
	}
	q = &S.rd[S.nrd++];
	*q = (struct rdreq){ .node = i, .file = (int)cl_between(&S.rng, 0, NFILES - 1),
			     .min_index = S.gcn };
	return q;
}

/* A read barrier of a node's session (session_read, as cluckd's fs asks
 * one), at any node that is up: a follower or a member asks the leader
 * for its commit index. */
static void ask_barrier(void)
{
	int i = pick_node(), rc;
	struct node *nd = &S.nodes[i];
	struct session_in in;

	if (!nd->up || S.now < nd->paused_until || !nd->ss)
		return;
	rd_new(i);
	S.rd_session++;
	if (nd->role != RF_LEADER)
		S.rd_follower++;
	in = host_in(i);
	rc = session_read(nd->ss, barrier_done, (void *)(uintptr_t)S.nrd, &in);
	if (rc == 1)
		barrier_done((void *)(uintptr_t)S.nrd, 0);
	else if (rc < 0)
		fail("n%d: session_read: %d", i + 1, rc);
	run_effects(i);
}

/* A read at the leader (when there is one): RF_EV_READ; and a read
 * barrier at some node. */
void ask_read(void)
{
	int l = leader_node(), rc;
	struct rf_event ev = { .type = RF_EV_READ };
	struct rdreq *q;

	ask_barrier();
	if (l < 0 || S.now < S.nodes[l].paused_until)
		return;
	q = rd_new(l);
	ev.read.ctx = S.nrd;
	S.rd_asked++;
	if (rf_lease_valid(S.nodes[l].r, local(l)))
		S.rd_lease++;
	else
		S.rd_round++;
	rc = step(l, &ev);
	if (rc) {
		q->done = true;
		S.rd_refused++;
	}
}

static void handle(int i, const struct rf_update *u)
{
	struct node *nd = &S.nodes[i];
	bool new_leader;

	if (u->flags & RF_UPD_ROLE) {
		static const char *rn[] = { "follower", "precandidate", "candidate", "leader" };

		tr("n%d %s term %llu leader %llu", i + 1, rn[u->role],
		   (unsigned long long)u->term, (unsigned long long)u->leader);
		if (u->role == RF_LEADER && nd->role != RF_LEADER) {
			if (u->term >= S.term_cap) {
				size_t old = S.term_cap;

				S.term_cap = u->term * 2 + 16;
				S.term_leader = cl_xrealloc(S.term_leader, S.term_cap * sizeof(uint64_t));
				memset(S.term_leader + old, 0, (S.term_cap - old) * sizeof(uint64_t));
			}
			if (S.term_leader[u->term] && S.term_leader[u->term] != (uint64_t)i + 1)
				fail("two leaders in term %llu: n%llu and n%d",
				     (unsigned long long)u->term,
				     (unsigned long long)S.term_leader[u->term], i + 1);
			S.term_leader[u->term] = (uint64_t)i + 1;
			check_leader_complete(i);
			/* Chubby's grace: every session gets a full lease from
			 * this election before anything may expire. */
			if (lease_reset(&nd->tab, nd->sm, S.brk_no_grace ? 0 : local(i)))
				fail("n%d: lease_reset failed", i + 1);
			nd->tab_on = true;
			if (leader_hook)
				leader_hook(i);
		}
		if (u->role != RF_LEADER)
			nd->tab_on = false;
		nd->role = u->role;
	}
	if (u->write_seq) {
		/* the state machine follows an installed snapshot at once */
		if (u->flags & RF_UPD_SNAPSHOT)
			node_install(i, u->snap_index, u->snap_conf, u->snap_buf, u->snap_len);
		cl_disk_write(&nd->disk, u);
		if (!nd->sync_sched) {
			nd->sync_sched = true;
			at(S.now + (cl_chance(&S.rng, 10) ? cl_between(&S.rng, 5, 30)
						       : cl_between(&S.rng, 1, 3)),
			   E_SYNC, i, 0, nd->epoch);
		}
	}
	for (size_t k = 0; k < u->n_msgs; k++)
		net_send(i, &u->msgs[k]);
	/* The session learns the role and leader of every update (cluckd's
	 * order: install, role, apply, then resend to a new leader). */
	new_leader = session_set_role(nd->ss, u->role == RF_LEADER, u->leader);
	for (size_t k = 0; k < u->n_committed; k++)
		node_apply(i, u->commit_first + k, &u->committed[k]);
	if (new_leader) {
		session_resend(nd->ss, local(i));
		run_effects(i);
	}
	for (size_t k = 0; k < u->n_reads; k++)
		read_ready(i, &u->reads[k]);
	serve_reads(i);
	if (session_reads_waiting(nd->ss)) {
		struct session_in in = host_in(i);

		session_reads_check(nd->ss, &in);
		run_effects(i);
	}
	nd->tick_gen++;
	{
		uint64_t l = local(i), t = u->next_deadline_ms > l ?
				       S.now + (u->next_deadline_ms - l) : S.now + 1;

		at(t, E_TICK, i, 0, nd->tick_gen);
	}
}

/* Every snap_k applied entries the node snapshots its state: on its disk
 * at once (synced; the disk log is compacted up to it), then to the
 * engine. */
static void maybe_snapshot(int i)
{
	struct node *nd = &S.nodes[i];
	struct rf_event ev = { .type = RF_EV_SNAPSHOT };
	const struct rf_entry *e;
	struct rf_update u;
	uint8_t *buf;
	size_t len;
	uint64_t idx = nd->applied;
	int rc;

	if (!S.snap_k || !nd->up || !nd->r || idx < rf_snapshot_index(nd->r) + S.snap_k)
		return;
	e = rf_entry_at(nd->r, idx);
	if (!e)
		fail("n%d: applied entry %llu is not in its log", i + 1, (unsigned long long)idx);
	/* Not before the term it carries is synced: a restart would find a
	 * snapshot newer than its hard state (RF_EV_START refuses that). */
	if (e->term > nd->disk.term)
		return;
	if (lc_state_save(nd->sm, &buf, &len))
		fail("n%d: lc_state_save failed", i + 1);
	cl_disk_snapshot(&nd->disk, idx, e->term, &nd->aconf, buf, len);
	ev.snapshot.index = idx;
	ev.snapshot.buf = buf;
	ev.snapshot.len = len;
	ev.now_ms = local(i);
	rc = rf_step(nd->r, &ev, &u);
	if (rc) {
		free(buf);
		fail("n%d: RF_EV_SNAPSHOT at %llu returned %d", i + 1, (unsigned long long)idx, rc);
	}
	S.snaps++;
	tr("n%d snapshots at %llu", i + 1, (unsigned long long)idx);
	handle(i, &u);
}

int step(int i, struct rf_event *ev)
{
	struct rf_update u;
	int rc;

	ev->now_ms = local(i);
	S.nodes[i].depth++;
	rc = rf_step(S.nodes[i].r, ev, &u);
	if (rc == -EINVAL || rc == -ENOMEM)
		fail("node %d: rf_step(%d) returned %d", i + 1, ev->type, rc);
	handle(i, &u);
	maybe_snapshot(i);
	S.nodes[i].depth--;
	host_flush(i);
	/* The mark on disk goes only once the engine caught up: a crash
	 * before that restarts it catching up again (cluckd keeps the
	 * mark in its data directory for the same reason). */
	if (S.nodes[i].rejoin && S.nodes[i].r && !rf_catching_up(S.nodes[i].r))
		S.nodes[i].rejoin = false;
	return rc == 0 ? 0 : rc;
}

/* Proposes buf to node i's engine: 0 or rf_step's refusal (-EPERM: not
 * the leader). */
int step_propose(int i, const uint8_t *buf, size_t len)
{
	struct rf_event ev = { .type = RF_EV_PROPOSE };
	struct rf_update u;
	int rc;

	ev.propose.buf = buf;
	ev.propose.len = (uint32_t)len;
	ev.now_ms = local(i);
	S.nodes[i].depth++;
	rc = rf_step(S.nodes[i].r, &ev, &u);
	if (rc && rc != -EPERM)
		fail("node %d: propose returned %d", i + 1, rc);
	handle(i, &u);
	maybe_snapshot(i);
	S.nodes[i].depth--;
	host_flush(i);
	return rc;
}

void node_start(int i)
{
	struct node *nd = &S.nodes[i];
	struct rf_config cfg = { 0 };
	struct rf_event ev = { .type = RF_EV_START };
	struct rf_entry *es;

	rf_config_defaults(&cfg);
	cfg.id = (uint64_t)i + 1;
	cfg.n_voters = nd->boot.n_voters;
	memcpy(cfg.voters, nd->boot.voters, sizeof(cfg.voters));
	cfg.n_learners = nd->boot.n_learners;
	memcpy(cfg.learners, nd->boot.learners, sizeof(cfg.learners));
	cfg.election_timeout_min_ms = ELECT_MIN;
	cfg.election_timeout_max_ms = ELECT_MAX;
	cfg.heartbeat_ms = HEARTBEAT;
	cfg.max_clock_drift_ms = CFG_DRIFT;
	cfg.seed = cl_rnd(&S.rng);
	cfg.test_break = S.brk;
	cfg.catch_up = nd->rejoin;
	if (rf_new(&cfg, &nd->r))
		fail("rf_new failed");
	nd->applied = 0;
	nd->aconf = nd->boot;
	if (nd->disk.snap_index) {
		/* from the snapshot on disk, then its log */
		if (lc_state_load(nd->disk.snap_buf, nd->disk.snap_len, &nd->sm))
			fail("n%d: its snapshot does not load", i + 1);
		if (nd->disk.snap_index > S.gcn || lc_state_hash(nd->sm) != S.ref_hash[nd->disk.snap_index])
			fail("n%d: its snapshot at %llu differs from the reference", i + 1,
			     (unsigned long long)nd->disk.snap_index);
		nd->applied = nd->disk.snap_index;
		nd->aconf = nd->disk.snap_conf;
		S.restores++;
	} else {
		nd->sm = lc_state_new();
	}
	if (!nd->sm)
		fail("lc_state_new failed");
	cl_disk_start(&nd->disk, &ev, &es);
	nd->up = true;
	nd->role = RF_FOLLOWER;
	tr("n%d starts: term %llu vote %llu snapshot %llu log %zu", i + 1,
	   (unsigned long long)nd->disk.term, (unsigned long long)nd->disk.vote,
	   (unsigned long long)nd->disk.snap_index, nd->disk.n);
	host_start(i);
	if (step(i, &ev))
		fail("n%d: start refused", i + 1);
	free(es);
	lease_table_free(&nd->tab);
	lease_table_init(&nd->tab, S.lease_ms);
	host_open(i);
	node_timer(i);
}

void node_crash(int i)
{
	struct node *nd = &S.nodes[i];

	if (!nd->up)
		return;
	tr("n%d CRASH (loses %zu unsynced writes)", i + 1, nd->disk.npw);
	for (size_t k = 0; k < S.nrd; k++)
		if (S.rd[k].node == i)
			S.rd[k].done = true;
	node_crash_clients(i);
	host_stop(i);
	nd->tab_on = false;
	lease_table_free(&nd->tab);
	nd->node_gen++;
	rf_free(nd->r);
	nd->r = NULL;
	lc_state_free(nd->sm);
	nd->sm = NULL;
	cl_disk_crash(&nd->disk);
	nd->sync_sched = false;
	nd->epoch++;
	nd->tick_gen++;
	nd->up = false;
	nd->role = RF_FOLLOWER;
}

void disk_sync(int i)
{
	struct node *nd = &S.nodes[i];
	struct rf_event ev = { .type = RF_EV_PERSISTED };
	int64_t seq;

	nd->sync_sched = false;
	if (!nd->disk.npw)
		return;
	seq = cl_disk_sync(&nd->disk);
	if (seq < 0)
		fail("n%d: write at %llu leaves a gap after %llu", i + 1,
		     (unsigned long long)nd->disk.gap_at,
		     (unsigned long long)(nd->disk.first + nd->disk.n - 1));
	S.syncs++;
	ev.persisted.seq = (uint64_t)seq;
	step(i, &ev);
}
