/*
 * t/sim/session.c - node sessions: forwarding client requests to the
 * leader (origin = the node's session, serials it assigns, resent with
 * the same (origin, serial)), keepalives over the lease view, the
 * leader's lease table and its SESSION_CLOSE of silent sessions, giving
 * up and opening a new session, answering clients from the applied log.
 * It is the simulator's own copy of the node driver's session rules; the
 * next step of issue 10 replaces it with lockcore/session.
 *
 * It must never: answer a client from anything but the node's own applied
 * log, or let a node whose lease view expired keep telling its clients
 * they hold their locks.
 */
#include "t/sim/sim.h"

/* ---- node sessions: forwarding, keepalives, leases ----------------------- */

int pick_node(void)
{
	return (int)cl_between(&S.rng, 0, (uint64_t)S.n - 1);
}

/* Where node i sends what is meant for the leader: the leader its engine
 * knows, else anyone (who answers with a hint). */
static int leader_guess(int i)
{
	uint64_t l = S.nodes[i].r ? rf_leader(S.nodes[i].r) : 0;

	if (!l)
		l = S.nodes[i].hint;   /* a precandidate forgot it, not we */

	return l >= 1 && l <= (uint64_t)S.n ? (int)l - 1 : pick_node();
}

static void smsg_send(int from, int to, const struct smsg *m, const uint8_t *body,
		      size_t blen)
{
	uint8_t *buf;

	if (m->kind == SM_FWD || m->kind == SM_FWD_ACK)
		S.fmsgs++;
	else
		S.kmsgs++;
	if (sdrop_hook && sdrop_hook(from, to, m)) {
		tr("n%d -> n%d: message %d (%llu,%llu) dropped by the scenario", from + 1,
		   to + 1, m->kind, (unsigned long long)m->session,
		   (unsigned long long)m->serial);
		return;
	}
	buf = cl_xrealloc(NULL, sizeof(*m) + blen);
	memcpy(buf, m, sizeof(*m));
	if (blen)
		memcpy(buf + sizeof(*m), body, blen);
	net_push(from, to, E_SMSG, buf, sizeof(*m) + blen);
	free(buf);
}

static void fwd_send(int i, struct fwd *f)
{
	struct smsg m = { .kind = SM_FWD, .session = f->session, .serial = f->serial };

	f->sent_ms = local(i);
	m.stamp = f->sent_ms;
	f->sends++;
	smsg_send(i, leader_guess(i), &m, f->buf, f->len);
}

/* Node i forwards a request of `client` (-1: its own) under its session. */
uint64_t node_forward(int i, int client, struct lc_cmd *cmd)
{
	struct node *nd = &S.nodes[i];
	struct fwd *f;

	cmd->origin = nd->sess;
	cmd->serial = ++nd->sserial;
	cmd->time_ns = S.now * 1000000ull;
	if (nd->nfw == nd->capfw) {
		nd->capfw = nd->capfw ? nd->capfw * 2 : 16;
		nd->fw = cl_xrealloc(nd->fw, nd->capfw * sizeof(*nd->fw));
	}
	f = &nd->fw[nd->nfw++];
	memset(f, 0, sizeof(*f));
	f->session = nd->sess;
	f->serial = cmd->serial;
	f->client = client;
	if (lc_cmd_encode(cmd, &f->buf, &f->len))
		fail("n%d cannot encode a command", i + 1);
	fwd_send(i, f);
	return cmd->serial;
}

void open_session(int i)
{
	struct node *nd = &S.nodes[i];
	struct lc_cmd cmd = { 0 };
	static char name[16];

	if (S.nsr == S.capsr) {
		S.capsr = S.capsr ? S.capsr * 2 : 16;
		S.sr = cl_xrealloc(S.sr, S.capsr * sizeof(*S.sr));
	}
	S.sr[S.nsr] = (struct sreg){ .node = i };
	nd->sess = SESS_BASE + S.nsr++;
	nd->sserial = 0;
	nd->sess_open = false;
	lease_view_init(&nd->view, S.lease_ms, LEASE_MARGIN);
	snprintf(name, sizeof(name), "n%d", i + 1);
	cmd.type = LC_CMD_SESSION_OPEN;
	cmd.session = nd->sess;
	cmd.data = name;
	cmd.data_len = (uint32_t)strlen(name);
	nd->open_sent = local(i);
	tr("n%d opens session %llu", i + 1, (unsigned long long)nd->sess);
	node_forward(i, -1, &cmd);
}

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
 * SESSION_CLOSE commits, or pending when it never does. */
void lost_release_all(uint64_t session, uint32_t owner, uint64_t key, uint64_t call)
{
	struct linz_op op = { .client = owner, .key = key, .kind = LINZ_RELEASE_ALL,
			      .out = LINZ_OK, .call = call, .ret = LINZ_INF };
	struct sreg *r = sreg_of(session);

	if (!S.lz)
		return;
	if (r && r->closed) {
		op.ret = S.now > call ? S.now : call;
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

/* Sim time at which node i's lease view ran out (its clock may be off). */
static uint64_t view_expired_at(int i)
{
	struct node *nd = &S.nodes[i];
	uint64_t dl = lease_view_deadline(&nd->view), t;

	if (!dl)
		return S.now;
	t = dl > nd->clock_off ? dl - nd->clock_off : 0;
	return t < S.now ? t : S.now;
}

/* Node i's view of its session expired: its clients' locks are lost, and
 * it opens a new session. */
static void give_up(int i)
{
	struct node *nd = &S.nodes[i];
	struct sreg *r = sreg_of(nd->sess);
	uint64_t when = view_expired_at(i);

	tr("n%d: lease view of session %llu expired: locks lost", i + 1,
	   (unsigned long long)nd->sess);
	if (r)
		r->gave_up = true;
	for (int k = 0; k < S.nclients; k++)
		if (S.cl[k].node == i && S.cl[k].hold_sess == nd->sess)
			client_lost(&S.cl[k], when);
	open_session(i);
}

/* The first commit of a SESSION_CLOSE (the cluster frees the session). */
void session_closed(uint64_t session, uint64_t idx)
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
	if (nd->up && nd->sess == session) {
		/* The node must have given up by its own clock already; its
		 * timer only has not run yet. */
		if (lease_view_state(&nd->view, local(r->node)) != LEASE_EXPIRED &&
		    nd->view.started)
			fail("session %llu of n%d freed while the node's lease view is valid "
			     "(until local %llu, now %llu)", (unsigned long long)session,
			     r->node + 1, (unsigned long long)lease_view_deadline(&nd->view),
			     (unsigned long long)local(r->node));
		give_up(r->node);
	}
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

static void fwd_drop(struct node *nd, size_t k)
{
	free(nd->fw[k].buf);
	nd->fw[k] = nd->fw[--nd->nfw];
}

/* A completion applied on node i: answer the client it belongs to. */
void node_completion(int i, const struct lc_completion *cp)
{
	struct node *nd = &S.nodes[i];
	struct fwd *f = NULL;
	size_t k;
	int client;

	for (k = 0; k < nd->nfw; k++)
		if (nd->fw[k].session == cp->origin && nd->fw[k].serial == cp->serial) {
			f = &nd->fw[k];
			break;
		}
	if (!f)
		return;
	if (cp->status == LC_PENDING) {
		f->queued = true;
		return;
	}
	client = f->client;
	fwd_drop(nd, k);
	if (client >= 0) {
		client_answer(&S.cl[client], cp->status, cp->token, true);
		return;
	}
	if (cp->status)
		fail("n%d: session %llu open failed: %d", i + 1,
		     (unsigned long long)cp->origin, cp->status);
	if (cp->origin != nd->sess)
		return;
	nd->sess_open = true;
	lease_view_ack(&nd->view, nd->open_sent);
	nd->next_ka = local(i);
	tr("n%d: session %llu open", i + 1, (unsigned long long)nd->sess);
}

/* Node i applied the SESSION_CLOSE of `session`: requests of that session
 * still unanswered can never take effect now (ids are never reused). */
void node_session_gone(int i, uint64_t session)
{
	struct node *nd = &S.nodes[i];
	size_t k = 0;

	if (session == nd->sess)
		fail("n%d applied the close of its live session %llu", i + 1,
		     (unsigned long long)session);
	while (k < nd->nfw) {
		struct fwd *f = &nd->fw[k];
		int client = f->client;

		if (f->session != session) {
			k++;
			continue;
		}
		fwd_drop(nd, k);
		if (client >= 0)
			client_answer(&S.cl[client], -ENOLCK, 0, false);
	}
}

/* The leader heard from `session`: true when it may acknowledge it (it
 * holds its Raft lease, the session is in its state and not doomed). */
static bool leader_contact(int i, uint64_t session)
{
	struct node *nd = &S.nodes[i];
	const char *name;
	size_t len;
	int r;

	if (!nd->tab_on || lc_session_name(nd->sm, session, &name, &len))
		return false;
	r = lease_touch(&nd->tab, session, local(i));
	if (r < 0)
		fail("n%d: lease_touch: %d", i + 1, r);
	return r == 0 && rf_lease_valid(nd->r, local(i));
}

void deliver_smsg(struct cl_ev *e)
{
	int i = e->node;
	struct node *nd = &S.nodes[i];
	struct smsg m, a = { 0 };
	uint64_t leader = 0;

	if (e->len < sizeof(m))
		fail("short node message");
	memcpy(&m, e->buf, sizeof(m));
	a.session = m.session;
	a.serial = m.serial;
	a.stamp = m.stamp;
	a.leader = rf_leader(nd->r);
	switch (m.kind) {
	case SM_FWD:
		a.kind = SM_FWD_ACK;
		if (nd->role == RF_LEADER) {
			a.ok = leader_contact(i, m.session);
			if (!step_propose(i, e->buf + sizeof(m), e->len - sizeof(m), &leader))
				a.ok = 0;
		}
		smsg_send(i, e->a, &a, NULL, 0);
		break;
	case SM_KA:
		a.kind = SM_KA_ACK;
		if (nd->role == RF_LEADER)
			a.ok = leader_contact(i, m.session);
		smsg_send(i, e->a, &a, NULL, 0);
		break;
	case SM_FWD_ACK:
	case SM_KA_ACK:
		if (m.ok && m.session == nd->sess)
			lease_view_ack(&nd->view, m.stamp);
		if (!m.ok && m.leader)
			nd->hint = m.leader;
		if (!m.ok && m.kind == SM_FWD_ACK)
			for (size_t k = 0; k < nd->nfw; k++) {
				struct fwd *f = &nd->fw[k];

				/* not the leader: try again soon, where it points */
				if (f->session == m.session && f->serial == m.serial &&
				    !f->queued && f->sent_ms + REQ_TIMEOUT > local(i) + 20)
					f->sent_ms = local(i) + 20 - REQ_TIMEOUT;
			}
		break;
	default:
		fail("node message of unknown kind %d", m.kind);
	}
}

void node_timer(int i)
{
	struct node *nd = &S.nodes[i];

	nd->node_gen++;
	at(S.now + NODE_TICK, E_NODE, i, 0, nd->node_gen);
}

/* The node's timer: its lease view, keepalives, retries; as leader, the
 * sessions whose lease ran out. */
void node_tick(int i)
{
	struct node *nd = &S.nodes[i];
	uint64_t l = local(i);
	enum lease_state st;

	if (nd->sess) {
		st = lease_view_state(&nd->view, l);
		if (st == LEASE_EXPIRED) {
			give_up(i);
		} else if (nd->view.started && l >= nd->next_ka) {
			struct smsg m = { .kind = SM_KA, .session = nd->sess, .stamp = l };

			smsg_send(i, leader_guess(i), &m, NULL, 0);
			/* in jeopardy, try harder */
			nd->next_ka = l + (st == LEASE_JEOPARDY ? S.lease_ms / 10 : S.lease_ms / 4);
		}
	}
	for (size_t k = 0; k < nd->nfw; k++) {
		struct fwd *f = &nd->fw[k];

		/* A given-up session's requests wait for its close. */
		if (f->session != nd->sess || f->queued || l < f->sent_ms + REQ_TIMEOUT)
			continue;
		tr("n%d re-forwards (%llu,%llu)", i + 1, (unsigned long long)f->session,
		   (unsigned long long)f->serial);
		fwd_send(i, f);
	}
	if (nd->tab_on && nd->role == RF_LEADER) {
		uint64_t ex[16], leader;
		size_t n;

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
				step_propose(i, buf, len, &leader);
				free(buf);
				if (!S.nodes[i].up || !nd->tab_on)
					break;
			}
	}
	node_timer(i);
}

void client_timer(struct client *c, uint64_t t)
{
	c->gen++;
	at(t, E_CLIENT, (int)(c - S.cl), 0, c->gen);
}
