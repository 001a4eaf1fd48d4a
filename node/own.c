/*
 * node/own.c - the engine host's own session: this node's one session,
 * whose protocol is lockcore/session.c, carried out.  The node feeds it
 * events (elsewhere: node_propose(), apply_entry(), rx.c, the link) and
 * here carries out its effects in order (run_effects): our own commands
 * are proposed to the engine as leader (at once, or at the end of the
 * current step) or forwarded to the leader as node messages, keepalives
 * and reads go out, completions reach fs's callbacks, a lost session
 * reaches node_on_lost.  Here too: the session's hooks (wall clock, a
 * fresh id), what it must know of us for read barriers (own_in), its
 * timer, and node_read_barrier().
 *
 * It must never: call a callback after its final answer, carry out the
 * session's effects from inside a callback (what a callback asks for
 * waits in the session's queue for the loop that ran it), or propose to
 * the engine while one of its updates is being handled.
 */
#include "config.h"

#include "node/node_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/random.h>

static void arm_retry(struct node *n);

/* ---- sending -------------------------------------------------------------- */

static void send_nmsg(struct node *n, uint64_t to, const struct nmsg *m)
{
	int len;

	if (!n->peer || !to || to == n->self_id)
		return;
	len = nmsg_encode(m, n->txbuf, PEER_BODY_MAX);
	if (len > 0)
		(void)peer_send(n->peer, to, PEER_T_NODE, n->txbuf, (size_t)len);
}

/* A session message goes out as a node message (the same fields). */
void send_smsg(struct node *n, uint64_t to, const struct session_msg *sm)
{
	struct nmsg m = { .kind = sm->kind, .ok = sm->ok, .session = sm->session,
			  .serial = sm->serial, .stamp = sm->stamp, .leader = sm->leader,
			  .body = sm->body, .len = sm->len };

	send_nmsg(n, to, &m);
}

/* ---- our session's effects ------------------------------------------------ */

_Static_assert((int)SM_FWD == NM_FWD && (int)SM_FWD_ACK == NM_FWD_ACK &&
	       (int)SM_KA == NM_KA && (int)SM_KA_ACK == NM_KA_ACK &&
	       (int)SM_READ == NM_READ && (int)SM_READ_ACK == NM_READ_ACK,
	       "session messages are node messages");

/* Proposes our request (SE_PROPOSE): at once at depth 0, else at the end
 * of the current step (the update being handled points into the engine). */
static void propose_own(struct node *n, const struct session_effect *e)
{
	struct rf_event ev = { .type = RF_EV_PROPOSE };
	int rc;

	if (n->depth) {
		if (n->ndefer == n->capdefer) {
			size_t nc = n->capdefer ? n->capdefer * 2 : 64;
			uint64_t *nv = realloc(n->defer, nc * sizeof(*nv));

			if (!nv) {
				/* The node timer sends it again. */
				session_proposed(n->sess, e->serial, -ENOMEM, now_ms());
				return;
			}
			n->defer = nv;
			n->capdefer = nc;
		}
		n->defer[n->ndefer++] = e->serial;
		return;
	}
	/* The engine copies the bytes; the entry may move meanwhile. */
	ev.propose.buf = e->buf;
	ev.propose.len = e->len;
	rc = step(n, &ev);
	session_proposed(n->sess, e->serial, rc, now_ms());
}

/* Carries out what our session asked for, in order.  Callbacks run with
 * in_cb set: what they propose waits in the session's queue for this loop
 * (never a callback nested in a callback). */
void run_effects(struct node *n)
{
	struct session_effect e;

	if (n->in_cb || !n->sess)
		return;
	while (session_next(n->sess, &e)) {
		switch (e.kind) {
		case SE_PROPOSE:
			propose_own(n, &e);
			break;
		case SE_SEND:
			send_smsg(n, e.to, &e.msg);
			break;
		case SE_DONE:
			n->in_cb = true;
			e.done(e.ctx, &e.c);
			n->in_cb = false;
			break;
		case SE_READ:
			n->in_cb = true;
			e.read(e.ctx, e.status);
			n->in_cb = false;
			break;
		case SE_OPENED:
			if (e.status == 0)
				log_info("session %016" PRIx64 " open", e.session);
			if (!n->started)
				loop_stop(n->loop);
			break;
		case SE_CLOSED:
			n->close_done = true;
			break;
		case SE_LOST:
			log_warn("session %016" PRIx64 " expired: no acknowledged contact "
				 "with a leader for %llu ms; its locks are lost", e.session,
				 (unsigned long long)n->lease_ms);
			if (n->lost_fn) {
				n->in_cb = true;
				n->lost_fn(n->lost_ctx, e.session);
				n->in_cb = false;
			}
			break;
		case SE_HELD_FULL:
			log_warn("out of memory for %llu releases: later ones are lost "
				 "until their session ends", (unsigned long long)e.arg);
			break;
		case SE_RESERIAL:
			log_debug("request %llu sent again as %llu (its first copy never "
				  "ran)", (unsigned long long)e.arg,
				  (unsigned long long)e.serial);
			break;
		case SE_OPEN_FAILED:
			log_err("cannot open a new session; retrying");
			break;
		default:
			break;
		}
	}
	arm_retry(n);
}

/* ---- our session ------------------------------------------------------------ */

/* The session's hooks: our wall clock and a fresh random session id. */
uint64_t own_wall(void *host)
{
	return wall_ns(host);
}

int own_new_id(void *host, uint64_t *sid)
{
	(void)host;
	*sid = 0;
	while (*sid == 0) {
		ssize_t r = getrandom(sid, sizeof(*sid), 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r != (ssize_t)sizeof(*sid))
			return -EIO;
	}
	return 0;
}

/* What the session needs to know of us to answer read barriers. */
struct session_in own_in(const struct node *n)
{
	uint64_t now = now_ms();

	return (struct session_in){ .now = now, .applied = n->applied,
				    .lead_ok = n->role == RF_LEADER &&
					       rf_lease_valid(n->raft, now) };
}

/* Alone the node timer runs only while a request waits to be sent again
 * or for its deadline, or a release was refused for memory (in a cluster
 * it always runs). */
static void arm_retry(struct node *n)
{
	if (n->clustered || n->stopped || n->error || n->node_timer.id ||
	    !session_wants_timer(n->sess))
		return;
	ntimer_set(n, &n->node_timer, 1, (now_ms() + RESEND_MS) * 1000000u, on_node_timer);
}

void on_node_timer(struct loop *l, void *ctx)
{
	struct node *n = ctx;
	struct session_in in = own_in(n);
	bool self_ok = false;

	(void)l;
	n->node_timer.id = n->node_timer.key = 0;
	if (n->stopped || n->error)
		return;
	/* Leading, our own session's contact is acknowledged here. */
	if (n->clustered && session_is_open(n->sess) && n->role == RF_LEADER &&
	    session_state(n->sess, in.now) != LEASE_EXPIRED)
		self_ok = contact_ok(n, session_id(n->sess));
	session_tick(n->sess, &in, self_ok);
	run_effects(n);
	if (!n->clustered)
		return;
	manage_members(n, in.now);
	ntimer_set(n, &n->node_timer, 1, (in.now + TICK_MS) * 1000000u, on_node_timer);
}

/* ---- read barriers ---------------------------------------------------------- */

/* See node.h. */
int node_read_barrier(struct node *n, node_read_fn fn, void *ctx)
{
	struct session_in in;
	int rc;

	if (!n || !fn)
		return -EINVAL;
	if (n->stopped || n->error)
		return -ENOLCK;
	in = own_in(n);
	rc = session_read(n->sess, fn, ctx, &in);
	if (rc == 1) {
		/* Alone, or leading under a lease: everything committed is
		 * applied already (we apply as we commit). */
		fn(ctx, 0);
		return 0;
	}
	run_effects(n);
	return rc;
}

