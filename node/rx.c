/*
 * node/rx.c - the engine host's receiving part: every authenticated
 * datagram (net/peer.h) and link change.  Raft messages go to the engine;
 * node messages are either requests of other nodes' sessions, answered
 * on the leader's side (answer_request), or answers to our own session,
 * taken on our side (take_answer), kept apart.  Here too the table of the
 * nodes we know (voters from --cluster, members learned from what they
 * send): when each was last heard, whether it wants to join.
 *
 * It must never: act on a datagram after the node stopped or failed,
 * apply anything that arrived after a pause before our session checked
 * its lease (session_check first), learn a voter's address from a
 * datagram (voters' come from --cluster), or evict a voter from the
 * table of known nodes.
 */
#include "config.h"

#include "node/node_i.h"

#include <inttypes.h>
#include <string.h>

/* ---- the nodes we know ----------------------------------------------------- */

struct known *known_find(struct node *n, uint64_t id)
{
	for (size_t i = 0; i < n->nkn; i++)
		if (n->kn[i].id == id)
			return &n->kn[i];
	return NULL;
}

/* The record of `id`, made when new (NULL when the table is full). */
struct known *known_get(struct node *n, uint64_t id)
{
	struct known *k = known_find(n, id);
	uint64_t now = now_ms();

	if (k)
		return k;
	if (n->nkn == MAX_KNOWN) {
		/* Full: reuse a member long silent (its address goes too);
		 * voters are never evicted. */
		const struct rf_conf *conf = n->raft ? rf_conf(n->raft) : NULL;

		for (size_t i = 0; i < n->nkn && !k; i++)
			if (!n->kn[i].voter && now > n->kn[i].last_rx_ms + 3 * n->lease_ms &&
			    !(conf && conf_has(conf, n->kn[i].id)))
				k = &n->kn[i];
		if (!k)
			return NULL;
	} else {
		k = &n->kn[n->nkn++];
	}
	memset(k, 0, sizeof(*k));
	k->id = id;
	return k;
}

static bool is_voter_id(const struct node *n, uint64_t id)
{
	for (unsigned i = 0; i < n->n_voters; i++)
		if (n->voter_ids[i] == id)
			return true;
	return false;
}

/* ---- receiving ------------------------------------------------------------ */

/* The leader's side: a request of another node's session (NM_FWD, NM_KA,
 * NM_READ), answered by the rules of lockcore/session.c (session_answer),
 * leading or not.  A member that asks the leader is noted as wanting to
 * join. */
static void answer_request(struct node *n, uint64_t from, const struct nmsg *m,
			   const struct session_msg *sm)
{
	struct session_msg a;
	struct known *k;
	uint64_t now = now_ms();
	int r;
	struct session_leader L = {
		.leading = n->role == RF_LEADER,
		.lease_valid = n->role == RF_LEADER && rf_lease_valid(n->raft, now),
		.leader = n->leader, .lease_ms = n->lease_ms,
		.commit_index = rf_commit_index(n->raft) };

	k = known_find(n, from);
	if (m->kind != NM_READ && n->role == RF_LEADER && k && !k->voter) {
		const struct rf_conf *conf = rf_conf(n->raft);

		if (conf && !conf_has(conf, from))
			k->wants_join = true;
	}
	if (m->kind == NM_KA && m->serial > n->lease_ms && k && !k->lease_warned) {
		log_err("node %016" PRIx64 " runs with --lease %llu ms, we with %llu: "
			"use the same --lease on every node", from,
			(unsigned long long)m->serial, (unsigned long long)n->lease_ms);
		k->lease_warned = true;
	}
	r = session_answer(&L, n->st, &n->leases, sm, now, &a);
	if (r == SA_DROP && m->kind == NM_FWD) {
		log_warn("node %016" PRIx64 " forwarded a malformed command", from);
		return;
	}
	if (r == SA_PROPOSE) {
		struct rf_event ev = { .type = RF_EV_PROPOSE };

		ev.propose.buf = m->body;
		ev.propose.len = m->len;
		if (step(n, &ev) < 0)
			a.ok = 0;
		a.leader = n->leader;
	}
	if (r != SA_DROP)
		send_smsg(n, from, &a);
}

/* Our side: an answer to our own session (acknowledgements, redirects,
 * read answers): our session takes it. */
static void take_answer(struct node *n, uint64_t from, const struct nmsg *m,
			const struct session_msg *sm)
{
	struct session_in in = own_in(n);
	uint64_t old = session_view_lease(n->sess);

	if (session_on_msg(n->sess, from, sm, &in) == SESSION_LEASE_LOWERED)
		log_err("the cluster runs with --lease %llu ms, we with %llu: our view "
			"of our session follows the shorter; use the same --lease on "
			"every node", (unsigned long long)m->serial,
			(unsigned long long)old);
	run_effects(n);
}

/* A node message: requests of other nodes' sessions are answered by the
 * leader's rules (answer_request); answers to ours go to our session
 * (take_answer). */
static void on_nmsg(struct node *n, uint64_t from, const struct nmsg *m)
{
	struct session_msg sm = { .kind = m->kind, .ok = m->ok, .session = m->session,
				  .serial = m->serial, .stamp = m->stamp, .leader = m->leader,
				  .body = m->body, .len = m->len };

	if (m->kind == NM_FWD || m->kind == NM_KA || m->kind == NM_READ)
		answer_request(n, from, m, &sm);
	else
		take_answer(n, from, m, &sm);
}

void on_peer(void *ctx, uint64_t from, uint8_t type, const uint8_t *body,
	     size_t len, const struct sockaddr *src, socklen_t srclen)
{
	struct node *n = ctx;
	struct known *k = known_get(n, from);

	if (n->stopped || n->error)
		return;
	/* Woken after a pause: our lease may have run out while we were
	 * stopped; give up before applying anything that arrived. */
	session_check(n->sess, now_ms());
	run_effects(n);
	if (k) {
		k->last_rx_ms = now_ms();
		k->voter = is_voter_id(n, from);
		/* Members' addresses are learned from what they send (it is
		 * authenticated); voters' come from --cluster. */
		if (!k->voter)
			(void)peer_set_addr(n->peer, from, src, srclen);
	}
	if (type == PEER_T_RAFT) {
		struct rf_msg m;
		struct rf_event ev = { .type = RF_EV_RECEIVE };

		if (rf_msg_decode(body, len, &m) < 0)
			return;
		if (m.from == from && m.to == n->self_id) {
			ev.receive = &m;
			(void)step(n, &ev);
		}
		rf_msg_release(&m);
	} else if (type == PEER_T_NODE) {
		struct nmsg m;

		if (nmsg_decode(body, len, &m) == 0)
			on_nmsg(n, from, &m);
	}
}

void on_link(void *ctx, enum link_state st)
{
	struct node *n = ctx;

	n->link_st = st;
	/* Down: jeopardy at once.  Back: the session tells the cluster at
	 * once rather than at the next keepalive, and sends what waited. */
	session_link(n->sess, st == LINK_UP ? SESSION_LINK_UP :
			      st == LINK_DOWN ? SESSION_LINK_DOWN : SESSION_LINK_UNKNOWN,
		     now_ms());
	run_effects(n);
}

