/*
 * t/sim/host.c - each simulated node hosts one struct session of
 * lockcore/session.h, driven the way node/own.c drives cluckd's: this
 * file turns the session's effects into simulated I/O (SE_SEND onto the
 * faulty network, SE_PROPOSE into the node's engine, SE_DONE / SE_READ /
 * SE_LOST to the simulated clients and reads) and answers other nodes'
 * forwards, keepalives and reads with session_answer() as a leader does.
 * The leader's lease table and its SESSION_CLOSE of silent sessions are
 * the host's part (as in cluckd).  Every session rule (serials, resends,
 * re-serial, unlock-before, give-up, redirects, read barriers) is the
 * module's: the simulator has none of its own.
 *
 * It must never: answer a client from anything but its node's session,
 * decide a session rule itself, or carry out an effect out of order.
 */
#include "t/sim/sim.h"

int pick_node(void)
{
	return (int)cl_between(&S.rng, 0, (uint64_t)S.n - 1);
}

/* ---- the session's hooks and effects -------------------------------------- */

static uint64_t host_wall(void *host)
{
	(void)host;
	return S.now * 1000000ull;
}

/* A fresh session id: every session ever opened in the run is registered. */
static int host_new_id(void *host, uint64_t *id)
{
	int i = (int)((struct node *)host - S.nodes);

	if (S.nsr == S.capsr) {
		S.capsr = S.capsr ? S.capsr * 2 : 16;
		S.sr = cl_xrealloc(S.sr, S.capsr * sizeof(*S.sr));
	}
	S.sr[S.nsr] = (struct sreg){ .node = i };
	*id = SESS_BASE + S.nsr++;
	tr("n%d opens session %llu", i + 1, (unsigned long long)*id);
	return 0;
}

struct session_in host_in(int i)
{
	struct node *nd = &S.nodes[i];
	uint64_t l = local(i);

	return (struct session_in){ .now = l, .applied = nd->applied,
				    .lead_ok = nd->role == RF_LEADER &&
					       rf_lease_valid(nd->r, l) };
}

/* A node message on the network: the header, then the body. */
static void smsg_send(int from, int to, const struct session_msg *m)
{
	struct session_msg h = *m;
	uint8_t *buf;

	if (m->kind == SM_FWD || m->kind == SM_FWD_ACK)
		S.fmsgs++;
	else if (m->kind == SM_KA || m->kind == SM_KA_ACK)
		S.kmsgs++;
	else
		S.rmsgs++;
	if (sdrop_hook && sdrop_hook(from, to, m)) {
		tr("n%d -> n%d: message %d (%llu,%llu) dropped by the scenario", from + 1,
		   to + 1, m->kind, (unsigned long long)m->session,
		   (unsigned long long)m->serial);
		return;
	}
	h.body = NULL;
	buf = cl_xrealloc(NULL, sizeof(h) + m->len);
	memcpy(buf, &h, sizeof(h));
	if (m->len)
		memcpy(buf + sizeof(h), m->body, m->len);
	net_push(from, to, E_SMSG, buf, sizeof(h) + m->len);
	free(buf);
}

/* Sim time at which node i's view of its last session ran out (its clock
 * may be off). */
static uint64_t view_expired_at(int i)
{
	struct node *nd = &S.nodes[i];
	uint64_t dl = nd->view_dl, t;

	if (!dl)
		return S.now;
	t = dl > nd->clock_off ? dl - nd->clock_off : 0;
	return t < S.now ? t : S.now;
}

/* Node i's session `old` was given up: its clients' locks are lost. */
static void host_lost(int i, uint64_t old)
{
	struct sreg *r = sreg_of(old);
	uint64_t when = view_expired_at(i);

	tr("n%d: session %llu given up: locks lost", i + 1, (unsigned long long)old);
	S.giveups++;
	if (r)
		r->gave_up = true;
	for (int k = 0; k < S.nclients; k++) {
		struct client *c = &S.cl[k];

		if (c->node != i)
			continue;
		if (c->hold_sess == old)
			client_lost(c, when);
		/* Still waiting: a blocking request the log never showed
		 * moved to the new session.  A copy of it may still reach the
		 * log under the old one and hold until its close: that copy
		 * is an owner of its own in the history. */
		if (c->state == C_WAIT && c->req_sess == old) {
			if (c->lz_on && c->lz.kind <= LINZ_TRY_SH) {
				struct linz_op op = c->lz;

				op.client |= 0x80000000u;
				lz_add(&op);
				lost_release_all(old, op.client, op.key, op.call);
			}
			c->req_sess = session_id(S.nodes[i].ss);
			c->serial = 0;     /* its new serial comes with its answer */
			S.moved++;
		}
	}
}

/* Proposes our own request (SE_PROPOSE): at once when no step of this
 * node's engine is under way, else once it is over (host_flush). */
static void host_propose(int i, const struct session_effect *e)
{
	struct node *nd = &S.nodes[i];
	int rc;

	if (nd->depth) {
		if (nd->ndefer == nd->capdefer) {
			nd->capdefer = nd->capdefer ? nd->capdefer * 2 : 16;
			nd->defer = cl_xrealloc(nd->defer, nd->capdefer * sizeof(*nd->defer));
		}
		nd->defer[nd->ndefer++] = e->serial;
		return;
	}
	rc = step_propose(i, e->buf, e->len);
	if (nd->ss)
		session_proposed(nd->ss, e->serial, rc, local(i));
}

/* Carries out node i's session effects, in order. */
void run_effects(int i)
{
	struct node *nd = &S.nodes[i];
	struct session_effect e;

	while (nd->ss && session_next(nd->ss, &e)) {
		switch (e.kind) {
		case SE_PROPOSE:
			host_propose(i, &e);
			break;
		case SE_SEND:
			smsg_send(i, (int)e.to - 1, &e.msg);
			break;
		case SE_DONE:
			if (e.done)
				e.done(e.ctx, &e.c);
			break;
		case SE_READ:
			e.read(e.ctx, e.status);
			break;
		case SE_OPENED:
			if (e.status)
				fail("n%d: session %llu open failed: %d", i + 1,
				     (unsigned long long)e.session, e.status);
			tr("n%d: session %llu open", i + 1, (unsigned long long)e.session);
			break;
		case SE_LOST:
			host_lost(i, e.session);
			break;
		case SE_HELD_FULL:
			fail("n%d: releases refused for memory", i + 1);
		default:
			break;
		}
	}
	if (!nd->ss)
		return;
	nd->sess = session_id(nd->ss);
	nd->sess_open = session_is_open(nd->ss);
	nd->view_dl = session_view_deadline(nd->ss);
}

/* After a step of node i's engine: what it proposed meanwhile goes now. */
void host_flush(int i)
{
	struct node *nd = &S.nodes[i];

	while (!nd->depth && nd->ndefer && nd->ss) {
		uint64_t serial = nd->defer[0];

		memmove(nd->defer, nd->defer + 1, --nd->ndefer * sizeof(*nd->defer));
		session_send(nd->ss, serial, local(i));
		run_effects(i);
	}
}

/* Node i starts: a new session module. */
void host_start(int i)
{
	struct node *nd = &S.nodes[i];
	static uint64_t ids[MAXN];
	static char names[MAXN][16];
	struct session_config cfg = { 0 };
	unsigned nv = 0;

	/* The voters it was started with (cluckd's --cluster); with
	 * membership faults any node may come to lead. */
	for (int k = 0; k < (S.conf_faults ? S.n : S.nv); k++)
		ids[nv++] = (uint64_t)k + 1;
	snprintf(names[i], sizeof(names[i]), "n%d", i + 1);
	cfg.name = names[i];
	cfg.lease_ms = S.lease_ms;
	cfg.margin_ms = LEASE_MARGIN;
	cfg.min_lease_ms = S.lease_ms;
	cfg.op_timeout_ms = S.op_timeout;
	cfg.self_id = (uint64_t)i + 1;
	cfg.voters = ids;
	cfg.n_voters = nv;
	cfg.wall_ns = host_wall;
	cfg.new_id = host_new_id;
	cfg.host = nd;
	cfg.breaks = S.sbreaks;
	nd->ss = session_new(&cfg);
	if (!nd->ss)
		fail("n%d: session_new failed", i + 1);
	nd->ndefer = 0;
}

/* Node i's engine started: its first session. */
void host_open(int i)
{
	if (session_open(S.nodes[i].ss, local(i)))
		fail("n%d: session_open failed", i + 1);
	run_effects(i);
}

/* Node i crashed: its session module goes with it (callbacks owed are
 * never called: node_crash_clients answered them). */
void host_stop(int i)
{
	struct node *nd = &S.nodes[i];

	session_free(nd->ss);
	nd->ss = NULL;
	nd->sess = 0;
	nd->sess_open = false;
	nd->ndefer = 0;
}

/* ---- lost locks in the history -------------------------------------------- */

static void lost_add(uint64_t session, const struct linz_op *op)
{
	if (S.nlost == S.caplost) {
		S.caplost = S.caplost ? S.caplost * 2 : 16;
		S.lost = cl_xrealloc(S.lost, S.caplost * sizeof(*S.lost));
	}
	S.lost[S.nlost++] = (struct lostop){ session, *op };
}

/* The history op of a lost lock: a release-all of the owner on key from
 * `call` (when the client stopped believing) until the session's
 * SESSION_CLOSE commits, or pending when it never does.  When the close
 * has committed already the release took effect then, at closed_at, not
 * now: a node paused past its lease learns of its session's end (its
 * requests answered -ENOLCK) long after the cluster freed what the
 * session held and handed it to others. */
void lost_release_all(uint64_t session, uint32_t owner, uint64_t key, uint64_t call)
{
	struct linz_op op = { .client = owner, .key = key, .kind = LINZ_RELEASE_ALL,
			      .out = LINZ_OK, .call = call, .ret = LINZ_INF };
	struct sreg *r = sreg_of(session);

	if (!S.lz)
		return;
	if (r && r->closed) {
		op.call = call < r->closed_at ? call : r->closed_at;
		op.ret = r->closed_at;
		lz_add(&op);
		return;
	}
	lost_add(session, &op);
}

/* The history key of what the client holds. */
static uint64_t hold_key(const struct client *c)
{
	if (c->hold == H_POSIX)
		return c->hold_ino | LZK_POSIX;
	if (c->hold == H_FILE)
		return lz_file_key(c->hold_name);
	return c->hold_ino;
}

/* The client is told its lock is lost; it stopped believing at `call`. */
void client_lost(struct client *c, uint64_t call)
{
	if (c->hold == H_NONE)
		return;
	tr("c%d told its lock (kind %d, token %llu) is lost", (int)(c - S.cl) + 1, c->hold,
	   (unsigned long long)c->hold_token);
	c->lost++;
	c->lost_at = S.now;
	S.losts++;
	lost_release_all(c->hold_sess, (uint32_t)c->hold_owner, hold_key(c), call);
	c->hold = H_NONE;
}

/* The first commit of a SESSION_CLOSE (the cluster frees the session). */
void sreg_closed(uint64_t session, uint64_t idx)
{
	struct sreg *r = sreg_of(session);
	struct node *nd;
	size_t k = 0;

	if (!r || r->closed)
		return;
	r->closed = true;
	r->closed_at = S.now;
	r->closed_idx = idx;
	S.expiries++;
	nd = &S.nodes[r->node];
	tr("session %llu of n%d freed by the cluster", (unsigned long long)session,
	   r->node + 1);
	/* The node must have given up by its own clock already (its timer
	 * only may not have run yet). */
	if (nd->up && nd->ss && session_id(nd->ss) == session && session_is_open(nd->ss) &&
	    session_state(nd->ss, local(r->node)) != LEASE_EXPIRED)
		fail("session %llu of n%d freed while the node's lease view is valid "
		     "(until local %llu, now %llu)", (unsigned long long)session,
		     r->node + 1, (unsigned long long)session_view_deadline(nd->ss),
		     (unsigned long long)local(r->node));
	while (k < S.nlost) {
		if (S.lost[k].session != session) {
			k++;
			continue;
		}
		S.lost[k].op.ret = S.now > S.lost[k].op.call ? S.now : S.lost[k].op.call;
		lz_add(&S.lost[k].op);
		S.lost[k] = S.lost[--S.nlost];
	}
}

/* ---- node messages ---------------------------------------------------------- */

/* A node message for node i: requests of other nodes' sessions are
 * answered by the leader's rules (session_answer, as cluckd does); answers
 * to ours go to our session. */
void deliver_smsg(struct cl_ev *e)
{
	int i = e->node;
	struct node *nd = &S.nodes[i];
	struct session_msg m, a;
	uint64_t l = local(i);

	if (e->len < sizeof(m))
		fail("short node message");
	memcpy(&m, e->buf, sizeof(m));
	if (e->len != sizeof(m) + m.len)
		fail("node message of the wrong length");
	m.body = m.len ? e->buf + sizeof(m) : NULL;
	/* Woken: a view that ran out meanwhile is given up first. */
	session_check(nd->ss, l);
	run_effects(i);
	if (m.kind == SM_FWD || m.kind == SM_KA || m.kind == SM_READ) {
		struct session_leader L = {
			.leading = nd->role == RF_LEADER,
			.lease_valid = nd->role == RF_LEADER && rf_lease_valid(nd->r, l),
			.leader = rf_leader(nd->r), .lease_ms = S.lease_ms,
			.commit_index = rf_commit_index(nd->r) };
		int r = session_answer(&L, nd->sm, &nd->tab, &m, l, &a);

		if (r == SA_DROP)
			fail("n%d: node message of kind %d dropped", i + 1, m.kind);
		if (r == SA_PROPOSE) {
			if (step_propose(i, m.body, m.len))
				a.ok = 0;
			if (!S.nodes[i].up)
				return;
			a.leader = rf_leader(nd->r);
		}
		smsg_send(i, e->a, &a);
		return;
	}
	if (m.kind != SM_FWD_ACK && m.kind != SM_KA_ACK && m.kind != SM_READ_ACK)
		fail("node message of unknown kind %d", m.kind);
	if (!m.ok && m.leader && m.leader != (uint64_t)e->a + 1 &&
	    m.leader != (uint64_t)i + 1 && m.kind != SM_KA_ACK &&
	    (m.kind != SM_READ_ACK || !m.session))
		S.redirects++;
	{
		struct session_in in = host_in(i);

		if (session_on_msg(nd->ss, (uint64_t)e->a + 1, &m, &in))
			fail("n%d: a leader runs with another lease", i + 1);
	}
	run_effects(i);
}

/* ---- the node's timer ------------------------------------------------------- */

void node_timer(int i)
{
	struct node *nd = &S.nodes[i];

	nd->node_gen++;
	at(S.now + NODE_TICK, E_NODE, i, 0, nd->node_gen);
}

/* As leader: proposes the close of every session whose lease ran out. */
static void leader_closes(int i)
{
	struct node *nd = &S.nodes[i];
	uint64_t ex[16], l = local(i);
	size_t n;

	if (nd->sess)
		(void)lease_touch(&nd->tab, nd->sess, l);   /* ours lives while we lead */
	while (nd->tab_on && (n = lease_expired(&nd->tab, l, ex, 16)) > 0)
		for (size_t k = 0; k < n; k++) {
			struct lc_cmd cmd = { .type = LC_CMD_SESSION_CLOSE };
			uint8_t *buf;
			size_t len;

			cmd.session = ex[k];
			cmd.serial = ++nd->close_serial;
			cmd.time_ns = S.now * 1000000ull;
			if (lc_cmd_encode(&cmd, &buf, &len))
				fail("cannot encode a close");
			tr("n%d: lease of session %llu ran out: proposes its close", i + 1,
			   (unsigned long long)ex[k]);
			step_propose(i, buf, len);
			free(buf);
			if (!S.nodes[i].up || !nd->tab_on)
				return;
		}
}

/* The node's timer (cluckd's node timer): the session's tick; as leader,
 * the sessions whose lease ran out. */
void node_tick(int i)
{
	struct node *nd = &S.nodes[i];
	struct session_in in = host_in(i);
	bool self_ok = false;

	if (session_is_open(nd->ss) && nd->role == RF_LEADER && nd->tab_on &&
	    session_state(nd->ss, in.now) != LEASE_EXPIRED)
		self_ok = session_contact_ok(nd->sm, &nd->tab, true, in.lead_ok,
					     session_id(nd->ss), in.now);
	session_tick(nd->ss, &in, self_ok);
	run_effects(i);
	if (nd->up && nd->tab_on && nd->role == RF_LEADER)
		leader_closes(i);
	if (nd->up)
		node_timer(i);
}

void client_timer(struct client *c, uint64_t t)
{
	c->gen++;
	at(t, E_CLIENT, (int)(c - S.cl), 0, c->gen);
}
