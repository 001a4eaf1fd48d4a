/*
 * t/sim/state.c - the lock state machine side and the invariant checks:
 * the reference state every committed entry is applied to, each node's
 * own apply (whose state hash must equal the reference at every index),
 * the holders and read answers of the lock files, and the checks run at
 * every step (leases, beliefs) and at the end of a run (logs match, the
 * settled state, the live bound).
 *
 * It must never: change what the cluster does (it only observes and
 * fails), or pass a run in which two clients with valid lease views
 * believed they held conflicting locks.
 */
#include "t/sim/sim.h"

/* ---- the lock state machine side ---------------------------------------- */

int collect(void *ctx, const struct lc_lockinfo *li)
{
	struct holders *hs = ctx;

	if (hs->n < 64)
		hs->h[hs->n++] = *li;
	return 0;
}

/* Never two conflicting holders of one file in one state. */
unsigned sem_sh_before;

static void check_holders(struct lc_state *sm, const char *who)
{
	for (int f = 0; f < NFILES; f++) {
		struct holders hs = { .n = 0 };
		unsigned fl = 0, flex = 0, sh = 0;
		struct lc_attr a;

		if (lc_locks(sm, S.files[f], collect, NULL, &hs))
			continue;
		for (unsigned i = 0; i < hs.n; i++) {
			const struct lc_lockinfo *x = &hs.h[i];

			if (!x->posix) {
				fl++;
				flex += x->type == LC_WRLCK;
				sh += x->type == LC_RDLCK;
				continue;
			}
			for (unsigned j = 0; j < i; j++) {
				const struct lc_lockinfo *y = &hs.h[j];

				if (!y->posix || (x->type != LC_WRLCK && y->type != LC_WRLCK))
					continue;
				if (x->who.session == y->who.session &&
				    x->who.owner == y->who.owner)
					continue;
				if (x->start <= y->end && y->start <= x->end)
					fail("%s: conflicting POSIX holders on file %d", who, f);
			}
		}
		if (flex && fl > 1)
			fail("%s: exclusive flock with %u holders on file %d", who, fl, f);
		/* Slots set under existing holders evict nobody, so only a
		 * grant that adds a holder beyond the slots is wrong. */
		if (sm == S.ref && f == NFILES - 1) {
			if (lc_getattr(sm, S.files[f], &a) == 0 && a.slots == 2 &&
			    sh > 2 && sh > sem_sh_before)
				fail("%s: %u shared holders on a 2-slot semaphore", who, sh);
			sem_sh_before = sh;
		}
	}
}

/* The answer to a read of file f: a hash of its holders (who, mode,
 * range, token), in grant order. */
uint64_t who_holds(struct lc_state *sm, int f)
{
	struct holders hs = { .n = 0 };
	uint64_t h = 1469598103934665603ull;

	if (lc_locks(sm, S.files[f], collect, NULL, &hs))
		return 0;
	for (unsigned i = 0; i < hs.n; i++) {
		const struct lc_lockinfo *x = &hs.h[i];
		uint64_t v[6] = { x->who.session, x->who.owner, x->type, x->start, x->end,
				  x->token };

		if (!x->token)
			continue;      /* a waiter */
		for (int k = 0; k < 6; k++)
			h = (h ^ v[k]) * 0x100000001b3ull;
	}
	return h;
}

struct sreg *sreg_of(uint64_t session)
{
	if (session >= SESS_BASE && session - SESS_BASE < S.nsr)
		return &S.sr[session - SESS_BASE];
	return NULL;
}

static bool believes(int k);

/* Whenever the log moves: a lock a client believes it holds (its node's
 * view valid) is held in the latest state by its session and owner.  Only
 * the client's own release or its session's close may take it away (a
 * late copy of an older release of the same owner must not: the
 * unlock-before rule). */
static void check_held(void)
{
	for (int k = 0; k < S.nclients; k++) {
		const struct client *c = &S.cl[k];
		struct holders hs = { .n = 0 };
		bool held = false;

		if ((c->hold != H_FLOCK && c->hold != H_POSIX) || !believes(k))
			continue;
		lc_locks(S.ref, c->hold_ino, collect, NULL, &hs);
		for (unsigned i = 0; i < hs.n && !held; i++)
			held = hs.h[i].token && hs.h[i].who.session == c->hold_sess &&
			       hs.h[i].who.owner == c->hold_owner;
		if (!held && hs.n < 64)
			fail("client %d believes it holds (kind %d, token %llu) but the log at "
			     "%zu freed it", k + 1, c->hold, (unsigned long long)c->hold_token,
			     S.gcn);
	}
}

/* What the log answered (origin, serial), for node sessions. */
struct ans *ans_of(uint64_t session, uint64_t serial)
{
	struct sreg *r = sreg_of(session);

	if (!r || !serial)
		return NULL;
	if (serial >= r->nans) {
		size_t n = r->nans ? r->nans : 64;

		while (n <= serial)
			n *= 2;
		r->ans = cl_xrealloc(r->ans, n * sizeof(*r->ans));
		memset(r->ans + r->nans, 0, (n - r->nans) * sizeof(*r->ans));
		r->nans = n;
	}
	return &r->ans[serial];
}

static void ref_apply(uint64_t idx)
{
	const struct cl_dent *e = &S.gc[idx - 1];
	struct lc_out out = { 0 };
	struct lc_cmd cmd;
	struct lc_stats before, after;
	bool dup = false;
	struct ans *a0;

	if (idx >= S.ref_hash_cap) {
		S.ref_hash_cap = S.ref_hash_cap ? S.ref_hash_cap * 2 : 1024;
		while (S.ref_hash_cap <= idx)
			S.ref_hash_cap *= 2;
		S.ref_hash = cl_xrealloc(S.ref_hash, S.ref_hash_cap * sizeof(uint64_t));
		S.ref_who = cl_xrealloc(S.ref_who, S.ref_hash_cap * NFILES * sizeof(uint64_t));
	}
	if (e->type == RF_ENTRY_CMD) {
		if (lc_cmd_decode(e->buf, e->len, &cmd))
			fail("committed entry %llu does not decode", (unsigned long long)idx);
		a0 = ans_of(cmd.origin, cmd.serial);
		if (a0 && a0->applied)
			dup = true;
		lc_stats(S.ref, &before);
		if (lc_apply(S.ref, idx, &cmd, &out) < 0)
			fail("reference apply of %llu failed", (unsigned long long)idx);
		lc_stats(S.ref, &after);
		if (dup && (before.grants != after.grants ||
			    before.releases != after.releases))
			fail("retry of (%llu,%llu) applied twice",
			     (unsigned long long)cmd.origin, (unsigned long long)cmd.serial);
		if (a0)
		{
			struct ans *a1 = ans_of(cmd.origin, cmd.serial);

			a1->applied++;
			if (!a1->qidx)
				a1->qidx = idx;
		}
		S.cmds++;
		if (cmd.type == LC_CMD_SESSION_CLOSE && !out.v[0].status)
			sreg_closed(cmd.session, idx);
		for (size_t i = 0; i < out.n; i++) {
			struct lc_completion *cp = &out.v[i];
			struct ans *w = ans_of(cp->origin, cp->serial);

			if (!dup && cp->token) {
				for (int f = 0; f < NFILES; f++)
					if (cp->ino == S.files[f]) {
						if (cp->token <= S.last_token[f])
							fail("token %llu after %llu on file %d",
							     (unsigned long long)cp->token,
							     (unsigned long long)S.last_token[f], f);
						S.last_token[f] = cp->token;
					}
			}
			if (w && cp->status != LC_PENDING && !(dup && i == 0)) {
				w->final = true;
				w->idx = idx;
				w->status = cp->status;
				w->token = cp->token;
			}
		}
		lc_out_free(&out);
		check_holders(S.ref, "reference");
		check_held();
	}
	S.ref_hash[idx] = lc_state_hash(S.ref);
	for (int f = 0; f < NFILES; f++)
		S.ref_who[idx * NFILES + (uint64_t)f] = who_holds(S.ref, f);
}

bool dent_eq(const struct cl_dent *a, const struct rf_entry *b)
{
	return a->term == b->term && a->type == b->type && a->len == b->len &&
	       (!a->len || !memcmp(a->buf, b->buf, a->len));
}

bool conf_has(const struct rf_conf *c, uint64_t id, bool voters_only)
{
	for (unsigned k = 0; k < c->n_voters; k++)
		if (c->voters[k] == id)
			return true;
	for (unsigned k = 0; !voters_only && k < c->n_learners; k++)
		if (c->learners[k] == id)
			return true;
	return false;
}

/* A configuration committed: a node it leaves out is shut down (soon: not
 * in the middle of its own step), one it brings back is in again. */
static void conf_committed(void)
{
	for (int i = 0; i < S.n; i++) {
		struct node *nd = &S.nodes[i];
		bool in = conf_has(&S.cconf, (uint64_t)i + 1, false);

		if (in && nd->readding) {
			nd->readding = false;
			tr("n%d is a member again", i + 1);
		} else if (!in && !nd->removed && !nd->readding) {
			at(S.now, E_REMOVE, i, 0, 0);
		}
	}
}

static void record_commit(int i, uint64_t idx, const struct rf_entry *e)
{
	uint64_t t = rf_term(S.nodes[i].r);

	if (idx <= S.gcn) {
		if (t < S.gc_term[idx - 1])
			S.gc_term[idx - 1] = t;
		if (!dent_eq(&S.gc[idx - 1], e))
			fail("node %d committed a different entry at %llu", i + 1,
			     (unsigned long long)idx);
		return;
	}
	if (idx != S.gcn + 1)
		fail("node %d committed %llu past a gap", i + 1, (unsigned long long)idx);
	if (S.gcn == S.gccap) {
		S.gccap = S.gccap ? S.gccap * 2 : 256;
		S.gc = cl_xrealloc(S.gc, S.gccap * sizeof(*S.gc));
		S.gc_term = cl_xrealloc(S.gc_term, S.gccap * sizeof(*S.gc_term));
	}
	S.gc_term[S.gcn] = t;
	S.gc[S.gcn++] = (struct cl_dent){ e->term, e->type, e->len, cl_dup(e->buf, e->len) };
	if (e->type == RF_ENTRY_CONF) {
		if (rf_conf_decode(e->buf, e->len, &S.cconf))
			fail("committed configuration %llu does not decode", (unsigned long long)idx);
		conf_committed();
	}
	ref_apply(idx);
}

void node_apply(int i, uint64_t idx, const struct rf_entry *e)
{
	struct node *nd = &S.nodes[i];
	struct lc_out out = { 0 };
	struct lc_cmd cmd;

	if (idx != nd->applied + 1)
		fail("node %d applies %llu after %llu", i + 1, (unsigned long long)idx,
		     (unsigned long long)nd->applied);
	nd->applied = idx;
	record_commit(i, idx, e);
	if (e->type == RF_ENTRY_CONF && rf_conf_decode(e->buf, e->len, &nd->aconf))
		fail("node %d: committed configuration %llu does not decode", i + 1,
		     (unsigned long long)idx);
	if (e->type == RF_ENTRY_CMD) {
		if (lc_cmd_decode(e->buf, e->len, &cmd))
			fail("node %d cannot decode %llu", i + 1, (unsigned long long)idx);
		/* The cluster closes our live session: the session gives it
		 * up BEFORE the close frees the locks (cluckd's order). */
		if (session_entry(nd->ss, &cmd, local(i)))
			run_effects(i);
		if (lc_apply(nd->sm, idx, &cmd, &out) < 0)
			fail("node %d cannot apply %llu", i + 1, (unsigned long long)idx);
		/* The leader's table follows the sessions of the state. */
		if (nd->tab_on && cmd.type == LC_CMD_SESSION_OPEN && !out.v[0].status &&
		    lease_open(&nd->tab, cmd.session, local(i)))
			fail("n%d: lease_open failed", i + 1);
		if (nd->tab_on && cmd.type == LC_CMD_SESSION_CLOSE)
			lease_forget(&nd->tab, cmd.session);
		check_holders(nd->sm, "node");
		if (lc_state_hash(nd->sm) != S.ref_hash[idx])
			fail("node %d state hash differs from the reference at index %llu",
			     i + 1, (unsigned long long)idx);
		session_applied(nd->ss, &cmd, &out, local(i));
		lc_out_free(&out);
		run_effects(i);
		return;
	}
	if (lc_state_hash(nd->sm) != S.ref_hash[idx])
		fail("node %d state hash differs from the reference at index %llu",
		     i + 1, (unsigned long long)idx);
}

/* ---- checks at every step and at the end of a run ---------------------- */

/* Lease reads: a node serving reads under its lease must be the newest
 * leader that can commit. */
void check_leases(void)
{
	unsigned leaders = 0;

	for (int a = 0; a < S.n; a++) {
		struct node *na = &S.nodes[a];

		if (!na->up)
			continue;
		leaders += na->role == RF_LEADER;
		if (!rf_lease_valid(na->r, local(a)))
			continue;
		for (int b = 0; b < S.n; b++) {
			struct raft *rb = S.nodes[b].r;
			const struct rf_entry *e;

			if (b == a || !S.nodes[b].up || rf_role(rb) != RF_LEADER ||
			    rf_term(rb) <= rf_term(na->r))
				continue;
			e = rf_entry_at(rb, rf_commit_index(rb));
			if (e && e->term == rf_term(rb))
				fail("n%d holds a read lease in term %llu while n%d commits in term %llu",
				     a + 1, (unsigned long long)rf_term(na->r), b + 1,
				     (unsigned long long)rf_term(rb));
		}
	}
	if (leaders > S.max_leaders)
		S.max_leaders = leaders;
}

/* At every step: no two clients whose node's lease view is valid believe
 * they hold conflicting locks (flock, POSIX ranges, lockfiles). */
static bool believes(int k)
{
	struct client *c = &S.cl[k];
	struct node *nd = &S.nodes[c->node];
	enum lease_state st;

	if (c->hold == H_NONE || !nd->up || c->hold_sess != nd->sess)
		return false;
	st = session_state(nd->ss, local(c->node));
	return st == LEASE_OK || st == LEASE_JEOPARDY;
}

void check_beliefs(void)
{
	for (int a = 0; a < S.nclients; a++) {
		const struct client *x = &S.cl[a];

		if (!believes(a))
			continue;
		for (int b = a + 1; b < S.nclients; b++) {
			const struct client *y = &S.cl[b];
			bool clash = false;

			if (!believes(b) || x->hold != y->hold)
				continue;
			if (x->hold == H_FILE)
				clash = !strcmp(x->hold_name, y->hold_name);
			else if (x->hold_ino == y->hold_ino &&
				 (x->hold_type == LC_WRLCK || y->hold_type == LC_WRLCK))
				clash = x->hold_start <= y->hold_end && y->hold_start <= x->hold_end;
			if (clash)
				fail("clients %d (n%d, token %llu) and %d (n%d, token %llu) both "
				     "believe they hold a conflicting lock (kind %d)", a + 1,
				     x->node + 1, (unsigned long long)x->hold_token, b + 1,
				     y->node + 1, (unsigned long long)y->hold_token, x->hold);
		}
	}
}

/* Log matching: two logs that agree on the term at an index agree on
 * everything up to it. */
void check_log_matching(void)
{
	for (int a = 0; a < S.n; a++)
		for (int b = a + 1; b < S.n; b++) {
			struct raft *ra = S.nodes[a].r, *rb = S.nodes[b].r;
			uint64_t n, i, first_diff = 0;

			if (!ra || !rb)
				continue;
			n = rf_last_index(ra) < rf_last_index(rb) ? rf_last_index(ra) : rf_last_index(rb);
			i = rf_first_index(ra) > rf_first_index(rb) ? rf_first_index(ra)
								    : rf_first_index(rb);
			for (; i <= n; i++) {
				const struct rf_entry *x = rf_entry_at(ra, i), *y = rf_entry_at(rb, i);
				bool same = x->term == y->term && x->type == y->type &&
					    x->len == y->len && (!x->len || !memcmp(x->buf, y->buf, x->len));

				if (!same && !first_diff)
					first_diff = i;
				if (first_diff && x->term == y->term)
					fail("log matching: n%d and n%d share term %llu at %llu but differ at %llu",
					     a + 1, b + 1, (unsigned long long)x->term,
					     (unsigned long long)i, (unsigned long long)first_diff);
			}
		}
}

static int settled_state(void)
{
	struct lc_stats st;
	size_t live = 0;

	for (int i = 0; i < S.n; i++) {
		struct node *nd = &S.nodes[i];

		if (!nd->up || !nd->sess_open ||
		    session_state(nd->ss, local(i)) != LEASE_OK)
			return 0;
		live++;
	}
	/* every session the cluster still has is a live node's */
	lc_stats(S.ref, &st);
	return st.sessions == live ? 1 : 0;
}

/* Say which half of settled_state() failed: a node whose session is not
 * open (with how far it applied, against the furthest node: one stuck
 * behind never applies its own open), else the count of sessions left. */
static void fail_unsettled(void)
{
	struct lc_stats st;
	uint64_t top = 0;

	for (int i = 0; i < S.n; i++)
		if (S.nodes[i].applied > top)
			top = S.nodes[i].applied;
	for (int i = 0; i < S.n; i++) {
		struct node *nd = &S.nodes[i];

		if (!nd->up)
			fail("after heal: n%d is down", i + 1);
		if (!nd->sess_open ||
		    session_state(nd->ss, local(i)) != LEASE_OK)
			fail("after heal: n%d's session %llu is not open and live (applied %llu, furthest node %llu)",
			     i + 1, (unsigned long long)nd->sess,
			     (unsigned long long)nd->applied,
			     (unsigned long long)top);
	}
	lc_stats(S.ref, &st);
	fail("after heal: %llu sessions in the cluster, not one per live node",
	     (unsigned long long)st.sessions);
}

/* After heal: every node has a live session, and every session the
 * cluster still knows (so every holder, waiter and lockfile) is one of
 * them: a closed, given-up or crashed node's session is gone. */
static void check_settled(void)
{
	uint64_t until = S.now + 4 * S.lease_ms + LIVE_BOUND / 4;

	while (!settled_state() && S.now < until)
		run_until(S.now + 50, false);
	if (!settled_state())
		fail_unsettled();
}

/* The end of every run: liveness after heal, then the global checks. */
void finish_checks(void)
{
	run_until(S.heal_at + LIVE_BOUND, true);
	if (!all_done()) {
		for (int k = 0; k < S.nclients; k++)
			if (S.cl[k].state != C_DONE) {
				struct ans *a = ans_of(S.cl[k].req_sess, S.cl[k].serial);
				struct node *nd = &S.nodes[S.cl[k].node];
				int ld = leader_node();

				/* the node's applied index against the leader's:
				 * a node that never catches up (a Raft fault)
				 * holds its requests back behind its open */
				tr("client %d: (%llu,%llu) log: applied %u final %d status %d; "
				   "node n%d session %llu %s pending %zu applied %llu "
				   "(leader n%d applied %llu)", k + 1,
				   (unsigned long long)S.cl[k].req_sess,
				   (unsigned long long)S.cl[k].serial, a ? a->applied : 0,
				   a ? a->final : 0, a ? a->status : 0, S.cl[k].node + 1,
				   (unsigned long long)nd->sess,
				   nd->sess_open ? "open" : "not open",
				   nd->ss ? session_pending(nd->ss) : 0,
				   (unsigned long long)nd->applied, ld + 1,
				   ld >= 0 ? (unsigned long long)S.nodes[ld].applied : 0ULL);
				fail("liveness: client %d still in state %d (serial %llu) %u ms after heal",
				     k + 1, S.cl[k].state, (unsigned long long)S.cl[k].serial,
				     LIVE_BOUND);
			}
	}
	if (leader_node() < 0)
		fail("liveness: no leader after heal");
	check_log_matching();
	check_settled();
}
