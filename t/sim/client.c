/*
 * t/sim/client.c - the simulated clients: each, attached to one node,
 * draws its next lock request (flock, POSIX ranges, the semaphore,
 * lockfiles, releases), takes its answers and tracks what it believes it
 * holds; a crash of its node ends what it held.
 *
 * It must never: believe it holds a lock it was not granted, or send a
 * request anywhere but through its node.
 */
#include "t/sim/sim.h"

/* ---- clients ------------------------------------------------------------- */

/* An answer that no log gave (the session gave up: -ENOLCK; its deadline
 * passed: -ETIMEDOUT; the node died: -EIO): the request may or may not
 * take effect.  An acquire that may have been granted is freed by the
 * session's close, if at all. */
static void client_unknown(struct client *c, int status)
{
	bool acq = c->lz_on && c->lz.kind <= LINZ_TRY_SH;
	struct linz_op op = c->lz;

	if (c->lz_on) {            /* pending: may or may not happen */
		c->lz_on = false;
		lz_add(&c->lz);
	}
	if (acq)
		lost_release_all(c->req_sess, op.client, op.key, S.now);
	client_answer(c, status, 0, false);
}

/* The client's request is answered (SE_DONE of its node's session). */
static void client_done(void *ctx, const struct lc_completion *cp)
{
	struct client *c = ctx;
	struct ans *a;

	if (cp->status == LC_PENDING)
		return;                    /* queued: waits in the log */
	if (cp->origin != c->req_sess)
		fail("client %d: answer of session %llu, asked under %llu", (int)(c - S.cl) + 1,
		     (unsigned long long)cp->origin, (unsigned long long)c->req_sess);
	if (cp->serial != c->serial && c->serial) {
		S.reserials++;             /* -ESTALE before it ever ran: new serial */
	}
	c->req_sess = cp->origin;
	c->serial = cp->serial;
	if (cp->status == -ESTALE)
		fail("client %d (%llu,%llu) got -ESTALE: a request the log never ran "
		     "was given up", (int)(c - S.cl) + 1, (unsigned long long)cp->origin,
		     (unsigned long long)cp->serial);
	/* SPEC 3: nothing is handed out once the node's view of its lease
	 * ran out (a node paused past its lease may wake to apply grants the
	 * cluster revoked since). */
	if (cp->status == 0 && cp->token &&
	    session_state(S.nodes[c->node].ss, local(c->node)) == LEASE_EXPIRED)
		fail("client %d (%llu,%llu) granted token %llu after its node's view of "
		     "the lease ran out", (int)(c - S.cl) + 1, (unsigned long long)cp->origin,
		     (unsigned long long)cp->serial, (unsigned long long)cp->token);
	a = ans_of(cp->origin, cp->serial);
	if (a && a->final && a->status == cp->status && a->token == cp->token) {
		client_answer(c, cp->status, cp->token, true);
		return;
	}
	if (cp->status == -ETIMEDOUT)
		S.timeouts++;
	if (cp->status == -ENOLCK || cp->status == -ETIMEDOUT) {
		client_unknown(c, cp->status);
		return;
	}
	fail("client %d (%llu,%llu) got %d token %llu, the log says %d token %llu",
	     (int)(c - S.cl) + 1, (unsigned long long)cp->origin,
	     (unsigned long long)cp->serial, cp->status, (unsigned long long)cp->token,
	     a && a->final ? a->status : 99, a ? (unsigned long long)a->token : 0ull);
}

/* Hands the request to the client's node's session. */
void client_request(struct client *c, const struct lc_cmd *cmd)
{
	struct node *nd = &S.nodes[c->node];
	uint8_t t = cmd->type;
	uint64_t serial = 0;
	int rc;

	c->cmd = *cmd;
	c->sent_at = S.now;
	c->state = C_WAIT;
	c->req_sess = nd->sess;
	lz_begin(c);
	/* A client stops believing it holds when it asks to release. */
	if (t == LC_CMD_RELEASE || t == LC_CMD_FLUSH || t == LC_CMD_UNLINK)
		c->hold = H_NONE;
	rc = session_submit(nd->ss, &c->cmd, client_done, c, &serial, local(c->node));
	if (rc)
		fail("c%d: session_submit on n%d: %d", (int)(c - S.cl) + 1, c->node + 1, rc);
	c->req_sess = c->cmd.origin;
	c->serial = serial;
	if (c->cmd.who.owner == c->last_owner && (t == LC_CMD_FLOCK || t == LC_CMD_SETLK))
		S.relocks++;           /* the same owner locks again */
	c->last_owner = c->cmd.who.owner;
	tr("c%d -> n%d (%llu,%llu) type %d", (int)(c - S.cl) + 1, c->node + 1,
	   (unsigned long long)c->req_sess, (unsigned long long)c->serial, t);
	run_effects(c->node);
}

const char *fname[NFILES] = { "f0", "f1", "f2", "sem" };

/* True when node i can take a new request: up, running, with an open
 * session whose lease is not in jeopardy (SPEC: new requests wait). */
static bool node_ready(int i, bool release)
{
	struct node *nd = &S.nodes[i];
	enum lease_state st;

	if (!nd->up || S.now < nd->paused_until || !nd->sess_open)
		return false;
	st = session_state(nd->ss, local(i));
	return st == LEASE_OK || (release && st == LEASE_JEOPARDY);
}

/* Picks the client's next request: release what it holds, or take a new
 * lock of a random kind. */
static void client_next(struct client *c)
{
	struct lc_cmd cmd = { 0 };
	int f = (int)cl_between(&S.rng, 0, NFILES - 1);
	uint64_t sess = S.nodes[c->node].sess;
	uint32_t pid = (uint32_t)(c - S.cl) + 1;

	if (c->hold == H_NONE && (c->ops_left <= 0 || c->scripted)) {
		c->state = C_DONE;
		return;
	}
	if (!node_ready(c->node, c->hold != H_NONE)) {
		client_timer(c, S.now + 20);
		return;
	}
	c->cur_owner = c->hold_owner;
	if (c->hold == H_FLOCK) {
		cmd.type = LC_CMD_RELEASE;
		cmd.ino = c->hold_ino;
		cmd.who = (struct lc_owner){ c->hold_sess, c->hold_owner, pid };
	} else if (c->hold == H_POSIX) {
		cmd.type = LC_CMD_FLUSH;
		cmd.ino = c->hold_ino;
		cmd.who = (struct lc_owner){ c->hold_sess, c->hold_owner, pid };
	} else if (c->hold == H_FILE) {
		cmd.type = LC_CMD_UNLINK;
		cmd.parent = LC_INO_ROOT;
		cmd.name = c->hold_name;
		cmd.name_len = (uint32_t)strlen(c->hold_name);
	} else {
		static uint8_t big[60000];
		unsigned k = S.measuring ? 0 : (unsigned)cl_between(&S.rng, 0, 29);
		bool relock = c->relock && c->owner_sess == sess && !S.measuring;

		/* A release that timed out is still on its way: lock the same
		 * file again at once with the same owner (the unlock-before
		 * rule holds the lock back until the release is in the log). */
		if (relock) {
			k = c->relock == LC_CMD_RELEASE ? 0 : 14;
			for (int x = 0; x < NFILES; x++)
				if (S.files[x] == c->relock_ino)
					f = x;
		}
		c->relock = 0;

		/* Owner ids are per client; half the time a client locks
		 * again with the owner of its last lock in the same session
		 * (the kernel reuses a struct file's), so a late copy of its
		 * release would drop the new lock (the unlock-before rule).
		 * Lockfiles have no owner: always a fresh one. */
		if (relock || (!S.measuring && k < 20 && c->acqs && c->owner_sess == sess &&
				cl_chance(&S.rng, 50))) {
			c->cur_owner = (uint64_t)pid * 100000u + c->acqs;
		} else {
			c->cur_owner = (uint64_t)pid * 100000u + ++c->acqs;
			c->owner_sess = sess;
		}
		cmd.who = (struct lc_owner){ sess, c->cur_owner, pid };
		cmd.ino = S.files[f];
		/* With a deadline on requests only blocking locks (which have
		 * none): a try that timed out may still be granted by a late
		 * copy, after whatever the client did about it. */
		cmd.flags = S.op_timeout || cl_chance(&S.rng, 50) ? LC_LK_WAIT : 0;
		if (S.measuring == 2) {
			cmd.type = LC_CMD_SETLK;
			cmd.lock_type = LC_WRLCK;
			cmd.flags = LC_LK_WAIT;
			cmd.ino = S.files[0];
			cmd.start = (uint64_t)pid * 100u;
			cmd.end = cmd.start + 99u;
		} else if (S.measuring) {
			cmd.type = LC_CMD_FLOCK;
			cmd.lock_type = LC_WRLCK;
			cmd.flags = LC_LK_WAIT;
			cmd.ino = S.files[f % 3];
		} else if (k < 14) {
			cmd.type = LC_CMD_FLOCK;
			cmd.lock_type = cl_chance(&S.rng, 60) ? LC_WRLCK : LC_RDLCK;
		} else if (k < 20) {
			cmd.type = LC_CMD_SETLK;
			cmd.lock_type = cl_chance(&S.rng, 60) ? LC_WRLCK : LC_RDLCK;
			cmd.start = cl_between(&S.rng, 0, 100);
			cmd.end = cl_chance(&S.rng, 20) ? LC_OFF_MAX : cmd.start + cl_between(&S.rng, 0, 50);
		} else if (k < 26) {
			cmd = (struct lc_cmd){ 0 };
			cmd.type = LC_CMD_CREATE;
			cmd.parent = LC_INO_ROOT;
			snprintf(c->hold_name, sizeof(c->hold_name), "lk%d", f % 2);
			cmd.name = c->hold_name;
			cmd.name_len = 3;
			cmd.mode = 0644;
			cmd.flags = LC_CREATE_EXCL;
		} else if (k == 29) {
			/* large entries: batches split on the byte budget */
			cmd = (struct lc_cmd){ 0 };
			cmd.type = LC_CMD_WRITE;
			cmd.ino = S.files[f % 3];
			cmd.data = big;
			cmd.data_len = (uint32_t)cl_between(&S.rng, 1, sizeof(big));
		} else {
			cmd = (struct lc_cmd){ 0 };
			cmd.type = LC_CMD_SETXATTR;
			cmd.ino = S.files[3];
			cmd.name = "user.cluck.slots";
			cmd.name_len = 16;
			cmd.data = "2";
			cmd.data_len = 1;
		}
		c->ops_left--;
	}
	client_request(c, &cmd);
}

/* The final answer to the client's request: from its node's applied log
 * (from_log), or made up by the node when the request can no longer take
 * effect (its session was closed: -ENOLCK) or the node died (-EIO). */
void client_answer(struct client *c, int status, uint64_t token, bool from_log)
{
	struct node *nd = &S.nodes[c->node];
	struct sreg *r = sreg_of(c->req_sess);
	uint8_t t = c->cmd.type;
	uint64_t call = c->sent_at;
	int k = (int)(c - S.cl) + 1;

	if (c->state != C_WAIT)
		fail("client %d got an answer it was not waiting for", k);
	if (from_log) {
		struct ans *a = ans_of(c->req_sess, c->serial);

		if (!a || !a->final || a->status != status || a->token != token)
			fail("client %d (%llu,%llu) got %d token %llu, the log says %d token %llu",
			     k, (unsigned long long)c->req_sess, (unsigned long long)c->serial,
			     status, (unsigned long long)token, a && a->final ? a->status : 99,
			     a ? (unsigned long long)a->token : 0ull);
	}
	tr("c%d <- n%d (%llu,%llu) status %d token %llu", k, c->node + 1,
	   (unsigned long long)c->req_sess, (unsigned long long)c->serial, status,
	   (unsigned long long)token);
	c->answers++;
	/* A release refused for want of a session was done by the close. */
	lz_end(c, status);
	c->last_status = status;
	c->last_token = token;
	if ((t == LC_CMD_FLOCK || t == LC_CMD_SETLK || t == LC_CMD_CREATE) && status == 0) {
		c->hold = t == LC_CMD_FLOCK ? H_FLOCK : t == LC_CMD_SETLK ? H_POSIX : H_FILE;
		c->hold_ino = c->cmd.ino;
		c->hold_owner = c->cur_owner;
		c->hold_type = c->cmd.lock_type;
		c->hold_start = t == LC_CMD_SETLK ? c->cmd.start : 0;
		c->hold_end = t == LC_CMD_SETLK ? c->cmd.end : LC_OFF_MAX;
		c->hold_sess = c->req_sess;
		c->hold_token = token;
		/* Granted to a session its node has given up: lost at once
		 * (the grant took effect between the call and the close). */
		if (!nd->up || c->req_sess != nd->sess || (r && r->gave_up))
			client_lost(c, call);
	} else if ((t == LC_CMD_RELEASE || t == LC_CMD_FLUSH) && status == -ETIMEDOUT &&
		   c->cur_owner == (uint64_t)k * 100000u + c->acqs) {
		c->relock = t;
		c->relock_ino = c->cmd.ino;
	} else if (t == LC_CMD_UNLINK && status && status != -ENOLCK && status != -EIO &&
		   status != -ETIMEDOUT) {
		fail("client %d could not remove its lockfile: %d", k, status);
	}
	if (S.measuring && (t == LC_CMD_RELEASE || t == LC_CMD_FLUSH) && status == 0)
		S.pairs++;
	c->state = c->scripted ? C_DONE : C_IDLE;
	/* measuring: no think time, so batching has something to batch */
	client_timer(c, S.now + (S.measuring ? 0 : cl_between(&S.rng, 0, c->hold ? 40 : 20)));
}

/* Node i crashed: its clients' requests end with EIO (they may or may not
 * take effect) and their locks are lost. */
void node_crash_clients(int i)
{
	struct node *nd = &S.nodes[i];
	struct sreg *r = sreg_of(nd->sess);

	if (r)
		r->gave_up = true;
	for (int k = 0; k < S.nclients; k++)
		if (S.cl[k].node == i && S.cl[k].state == C_WAIT)
			client_unknown(&S.cl[k], -EIO);
	for (int k = 0; k < S.nclients; k++)
		if (S.cl[k].node == i && S.cl[k].hold_sess == nd->sess)
			client_lost(&S.cl[k], S.now);
}

void client_event(struct cl_ev *e)
{
	struct client *c = &S.cl[e->node];

	if (e->gen == c->gen && c->state == C_IDLE)
		client_next(c);
}
