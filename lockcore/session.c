/*
 * lockcore/session.c - one session's protocol (implements session.h): every
 * rule, in this one file; the containers it keeps state in (effect queue,
 * pending table) and the session's life are session_tab.c's (session_i.h).
 *
 * Requests.  A command of ours is stamped (origin = our session, next
 * serial, wall time never going backwards), encoded, and kept in the
 * pending table until its completion is applied here: as leader it is
 * proposed to our engine (SE_PROPOSE), otherwise forwarded to the leader
 * (NM_FWD) and sent again after resend_ms (resend_acked_ms once the leader
 * said it proposed it), or at once when the leader changes or the link
 * comes back, until the log shows it (LC_PENDING or a final answer;
 * lockcore's (origin, serial) dedup makes a retry harmless).  A command
 * that is not a blocking lock request gets -ETIMEDOUT after op_timeout_ms;
 * a release is still sent after that until the log has it.
 *
 * Re-serial.  A copy sent again after LC_DEDUP_WINDOW newer serials of ours
 * were applied is answered -ESTALE: lockcore can no longer tell whether it
 * ran.  If the log never showed the request, it never ran and never will:
 * it is sent again under a new serial.
 *
 * Unlock before lock.  A lock command waits until every release of the
 * same owner submitted before it (in submission order, which a re-serial
 * keeps) is in our log: a lost release sent again after it would
 * otherwise reach the log later and drop the new lock (the kernel reuses
 * lock owners: a struct file, a files_struct).  A release refused for
 * memory is kept (held) and submitted again by the timer; until then a
 * lock request of the same owner fails -ENOMEM.
 *
 * The lease (SPEC 3, lockcore/lease.h).  The session is kept alive with
 * keepalives to every voter (every lease / 4, lease / 10 in jeopardy);
 * only the leader acknowledges them, and only while it holds its Raft
 * lease and the session is alive in its state.  The view counts from the
 * send time of the latest acknowledged contact: jeopardy after lease / 3
 * (or at once while the link is down), expiry at lease - margin.  Then
 * (or when the log shows the cluster closed us) the session is given up:
 * every request is answered -ENOLCK, except a blocking lock request the
 * log never showed, which moves to the new session (SPEC 3: it waits),
 * SE_LOST tells the host, and a new session is opened.  Nothing is handed
 * out once our view says the lease ran out (a node paused past its lease
 * may wake to apply grants the cluster revoked since).  A leader with a
 * shorter --lease rules our view (both sides take the shorter).
 *
 * Snapshots.  When the replica is replaced by the leader's snapshot, the
 * entries it skipped carried completions we never saw: each request is
 * looked up in the new state (lc_request_result).
 *
 * Read barriers (SPEC 2.1).  Alone or leading under the Raft lease a
 * barrier holds at once.  Otherwise the leader is asked for its commit
 * index (NM_READ; one in flight, sent again after resend_ms) and the
 * barrier is answered once our applied index reaches it, or -ETIMEDOUT.
 *
 * Redirects.  A message for the leader goes to the node someone named
 * since our engine last learned a leader (the hint), else our engine's
 * leader, else the voters in turn; an answer that did not acknowledge us
 * names whom the answering node believes leads.
 *
 * The leader's side: session_contact_ok() and session_answer().
 *
 * It must never: call a request's or a read's callback (it queues effects),
 * answer a request twice finally, hand out a completion after its view of
 * the lease expired, send a lock before an earlier release of its owner is
 * in the log, answer a read barrier before the applied index reaches it,
 * or keep state outside struct session.
 */
#include "lockcore/session_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- commands --------------------------------------------------------------- */

static uint64_t stamp_time(struct session *s)
{
	uint64_t now = s->cfg.wall_ns(s->cfg.host);

	if (now < s->last_time)
		now = s->last_time;
	s->last_time = now;
	return now;
}

/* The lock owner a command acts for (0: not a lock command). */
static uint64_t lock_owner(const struct lc_cmd *cmd)
{
	switch (cmd->type) {
	case LC_CMD_FLOCK:
	case LC_CMD_SETLK:
	case LC_CMD_RELEASE:
	case LC_CMD_FLUSH:
		return cmd->who.owner ? cmd->who.owner : 1;
	default:
		return 0;
	}
}

/* True for a request that waits as long as it takes (a blocking lock). */
static bool blocking(const struct lc_cmd *cmd)
{
	return (cmd->type == LC_CMD_FLOCK || cmd->type == LC_CMD_SETLK) &&
	       (cmd->flags & LC_LK_WAIT) && cmd->lock_type != LC_UNLCK;
}

/* True for a request that gives something back: it is sent until the log
 * has it, even after its answer timed out. */
static bool releases(const struct lc_cmd *cmd)
{
	return cmd->type == LC_CMD_RELEASE || cmd->type == LC_CMD_FLUSH ||
	       ((cmd->type == LC_CMD_FLOCK || cmd->type == LC_CMD_SETLK) &&
		cmd->lock_type == LC_UNLCK);
}

/* ---- sending ---------------------------------------------------------------- */

/* Where a message for the leader goes: the one a node we asked named
 * since our engine last learned a leader (our engine's may be a dead
 * one: a member cut off hears of a new term only from the new leader,
 * which needs our address first), else our engine's leader, else the
 * voters in turn (each answers with whom it believes leads). */
static uint64_t leader_guess(struct session *s)
{
	if (s->hint)
		return s->hint;
	if (s->leader)
		return s->leader;
	for (unsigned k = 0; k < s->cfg.n_voters; k++) {
		uint64_t id = s->voters[s->rr++ % s->cfg.n_voters];

		if (id != s->cfg.self_id)
			return id;
	}
	return 0;
}

/* True when a release of `owner` submitted before `seq` is not in our log.
 * By first submission, not serial: a release re-serialed (-ESTALE, it
 * never ran) gets a serial newer than a lock submitted after it, and must
 * still reach the log before that lock, or it would drop it. */
static bool unlock_before(const struct session *s, uint64_t owner, uint64_t seq)
{
	for (size_t i = 0; i < s->pcap; i++) {
		const struct pend *q = &s->pt[i];

		if (q->serial && q->seq < seq && q->buf && (q->flags & PF_UNLOCK) &&
		    q->owner == owner)
			return true;
	}
	return false;
}

/* True when `p` must wait for an event before it may go out: the open of
 * its session applied (only the SESSION_OPEN goes before: lockcore answers
 * a command of an unknown session -ENOLCK), or an earlier release of its
 * owner in our log. */
static bool held_back(const struct session *s, const struct pend *p)
{
	if (!s->open_done && !(p->flags & PF_OPEN))
		return true;
	return s->clustered && !s->leading &&
	       !(s->cfg.breaks & SESSION_BREAK_UNLOCK_BEFORE) && p->owner &&
	       s->unlocks_out && unlock_before(s, p->owner, p->seq);
}

/* Sends (or proposes, as leader) our request `serial` if it still waits
 * for the log. */
static void send_pend(struct session *s, uint64_t serial, uint64_t now)
{
	struct pend *p = ss_pend_find(s, serial);

	if (!p || !p->buf || s->halted)
		return;
	if (held_back(s, p)) {
		p->sent_ms = 0;          /* sent when that happens */
		return;
	}
	p->sent_ms = now;
	if (s->leading) {
		struct session_effect e = { .kind = SE_PROPOSE, .serial = serial,
					    .session = s->session };

		/* PF_ACKED only once the engine took it (session_proposed):
		 * a proposal dropped for memory is proposed again. */
		p->flags &= (uint8_t)~PF_ACKED;
		ss_fx_push(s, &e);
		return;
	}
	if (s->clustered) {
		struct session_msg m = { .kind = SM_FWD, .session = s->session,
					 .serial = serial, .stamp = p->sent_ms };

		p->flags &= (uint8_t)~PF_ACKED;
		ss_fx_send(s, leader_guess(s), &m);     /* body filled when popped */
	}
}

void session_send(struct session *s, uint64_t serial, uint64_t now)
{
	send_pend(s, serial, now);
}

void session_resend(struct session *s, uint64_t now)
{
	size_t cnt;
	uint64_t *v = ss_pend_serials(s, false, &cnt);

	for (size_t i = 0; i < cnt; i++)
		send_pend(s, v[i], now);
	free(v);
}

/* Registers and sends one of our commands.  Takes buf.  0 or -ENOMEM. */
static int own_submit(struct session *s, uint64_t serial, uint8_t *buf, size_t len,
		      uint8_t flags, uint64_t owner, uint64_t timeout_ms,
		      session_done_fn fn, void *ctx, uint64_t now)
{
	struct pend *p;

	/* Room for its answers first: they must never be dropped. */
	if ((fn && !ss_fx_room(s, s->owed + 2)) || ss_pend_reserve(s) < 0) {
		free(buf);
		return -ENOMEM;
	}
	p = ss_pend_insert(s, serial, fn, ctx);
	p->buf = buf;
	p->len = (uint32_t)len;
	p->flags = flags;
	p->owner = owner;
	p->seq = ++s->seq;
	if (flags & PF_UNLOCK)
		s->unlocks_out++;
	if (timeout_ms)
		p->deadline_ms = now + timeout_ms;
	send_pend(s, serial, now);
	return 0;
}

/* Stamps, encodes and registers one of our commands.  0, -ENOMEM, -E2BIG. */
static int submit(struct session *s, struct lc_cmd *cmd, session_done_fn fn, void *ctx,
		  uint64_t *serial, uint64_t now)
{
	uint8_t *buf;
	size_t len;
	uint64_t n = s->serial + 1;
	int rc;

	cmd->origin = s->session;
	cmd->serial = n;
	cmd->time_ns = stamp_time(s);
	rc = lc_cmd_encode(cmd, &buf, &len);
	if (rc < 0)
		return rc;
	if (s->cfg.entry_max && len > s->cfg.entry_max) {
		free(buf);
		return -E2BIG;
	}
	s->serial = n;
	if (serial)
		*serial = n;
	/* Alone too: the log may stall (a full disk, no memory). */
	return own_submit(s, n, buf, len, releases(cmd) ? PF_UNLOCK : 0, lock_owner(cmd),
			  !blocking(cmd) ? s->cfg.op_timeout_ms : 0, fn, ctx, now);
}

/* A release refused for memory is kept and submitted again by the timer:
 * a lock must not stay held by a closed file because memory ran short for
 * a moment.  False when held[] is full too. */
static bool hold_release(struct session *s, const struct lc_cmd *cmd)
{
	struct lc_cmd *h;

	if (s->nheld == HELD_MAX) {
		struct session_effect e = { .kind = SE_HELD_FULL, .arg = HELD_MAX };

		if (!s->held_warned)
			ss_fx_push(s, &e);
		s->held_warned = true;
		return false;
	}
	h = &s->held[s->nheld++];
	*h = *cmd;
	h->name = h->name2 = NULL;
	h->data = NULL;
	h->name_len = h->name2_len = h->data_len = 0;
	return true;
}

/* Submits the held releases again, oldest first, while memory allows.
 * Those of a session that is gone went with its locks. */
static void retry_held(struct session *s, uint64_t now)
{
	size_t k = 0;

	while (k < s->nheld && !s->halted) {
		struct lc_cmd c = s->held[k];

		if (c.who.session == s->session &&
		    submit(s, &c, NULL, NULL, NULL, now) == -ENOMEM)
			break;
		k++;
	}
	memmove(s->held, s->held + k, (s->nheld - k) * sizeof(*s->held));
	s->nheld -= k;
	if (!s->nheld)
		s->held_warned = false;
}

static bool held_for(const struct session *s, uint64_t owner)
{
	for (size_t i = 0; i < s->nheld; i++)
		if (lock_owner(&s->held[i]) == owner)
			return true;
	return false;
}

int session_submit(struct session *s, struct lc_cmd *cmd, session_done_fn fn,
		   void *ctx, uint64_t *serial, uint64_t now)
{
	int rc;

	if (s->halted || !s->session)
		return -ENOLCK;
	/* A lock of an owner whose release is held would reach the log
	 * first, and the release would then drop it. */
	if (s->nheld && lock_owner(cmd) && !releases(cmd)) {
		retry_held(s, now);
		if (held_for(s, lock_owner(cmd)))
			return -ENOMEM;
	}
	rc = submit(s, cmd, fn, ctx, serial, now);
	if (rc == -ENOMEM && releases(cmd))
		(void)hold_release(s, cmd);
	return rc;
}

int session_close(struct session *s, session_done_fn fn, void *ctx, uint64_t now)
{
	struct lc_cmd cmd;
	uint8_t *buf;
	size_t len;
	int rc;

	if (s->halted || !s->session)
		return -ENOLCK;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_SESSION_CLOSE;
	cmd.session = s->session;
	cmd.origin = s->session;
	cmd.serial = ++s->serial;
	cmd.time_ns = stamp_time(s);
	rc = lc_cmd_encode(&cmd, &buf, &len);
	if (rc < 0)
		return rc;
	return own_submit(s, cmd.serial, buf, len, 0, 0, 0, fn, ctx, now);
}

void session_proposed(struct session *s, uint64_t serial, int rc, uint64_t now)
{
	struct pend *p = ss_pend_find(s, serial);

	(void)now;
	if (!p || !p->buf)
		return;
	if (rc >= 0) {
		/* In the engine's log: alone, there for good. */
		p->flags |= PF_ACKED;
	} else if (rc != -E2BIG && rc != -EINVAL) {
		/* Not in the engine's log (-ENOMEM, or no longer leading):
		 * the timer sends it again, and a deadline still answers it. */
		p->flags &= (uint8_t)~PF_ACKED;
	} else {
		struct lc_completion c = { .origin = s->session, .serial = serial,
					   .status = rc };
		session_done_fn fn = p->fn;
		void *ctx = p->ctx;

		ss_pend_drop(s, p);
		ss_fx_done(s, fn, ctx, &c);
	}
}

/* ---- the session and its lease ------------------------------------------- */

/* Opens a new session (SESSION_OPEN, sent until the log has it).  The open
 * carries our name (status shows it as the holders' node). */
int session_open(struct session *s, uint64_t now)
{
	struct lc_cmd cmd;
	uint8_t *buf;
	size_t len;
	uint64_t sid = 0;
	int rc;

	/* Nothing changes unless it succeeds: a give-up that could not
	 * open keeps its expired view, and so tries again. */
	rc = s->cfg.new_id(s->cfg.host, &sid);
	if (rc < 0)
		return rc;
	if (!sid)
		return -EIO;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_SESSION_OPEN;
	cmd.origin = sid;
	cmd.serial = 1;
	cmd.time_ns = stamp_time(s);
	cmd.session = sid;
	cmd.data = s->cfg.name;
	cmd.data_len = (uint32_t)strlen(s->cfg.name);
	rc = lc_cmd_encode(&cmd, &buf, &len);
	if (rc < 0)
		return rc;
	if (ss_pend_reserve(s) < 0) {
		free(buf);
		return -ENOMEM;
	}
	s->session = sid;
	s->serial = cmd.serial;
	s->open_done = false;
	s->open_status = 0;
	lease_view_init(&s->view, s->view_lease_ms, s->cfg.margin_ms);
	s->open_sent_ms = now;
	/* Cannot fail now (room reserved, no answer owed). */
	return own_submit(s, cmd.serial, buf, len, PF_OPEN, 0, 0, NULL, NULL, now);
}

enum lease_state session_state(struct session *s, uint64_t now)
{
	enum lease_state st;

	if (!s->open_done)
		return LEASE_NONE;
	st = lease_view_state(&s->view, now);
	if (st == LEASE_OK && s->link == SESSION_LINK_DOWN)
		st = LEASE_JEOPARDY;
	return st;
}

/* Free buckets (serial 0) last, then by serial. */
static int cmp_pend_serial(const void *a, const void *b)
{
	uint64_t x = ((const struct pend *)a)->serial - 1;   /* 0 wraps: last */
	uint64_t y = ((const struct pend *)b)->serial - 1;

	return x < y ? -1 : x > y;
}

/* A blocking lock request the old session's log never showed us (buf still
 * set) is a new request that was waiting for the cluster: SPEC 3 says it
 * waits, so it goes on under the new session (new owner session, serial)
 * instead of failing.  If the old copy did reach the log unseen, it is
 * freed with the old session before the new one can be granted: never two
 * holders.  Takes p->buf on success.  Anything else fails ENOLCK. */
static bool move_to_new_session(struct session *s, struct pend *p, uint64_t now)
{
	struct lc_cmd cmd;
	uint8_t *buf;
	size_t len;

	if (!s->session || lc_cmd_decode(p->buf, p->len, &cmd) < 0 || !blocking(&cmd))
		return false;
	cmd.origin = s->session;
	cmd.who.session = s->session;
	cmd.serial = s->serial + 1;
	if (lc_cmd_encode(&cmd, &buf, &len) < 0)
		return false;
	if (own_submit(s, cmd.serial, buf, len, 0, lock_owner(&cmd), 0, p->fn, p->ctx,
		       now) < 0)
		return false;
	s->serial = cmd.serial;
	free(p->buf);
	p->buf = NULL;
	return true;
}

/* Our lease view ran out (or the cluster closed us): every request of the
 * session is answered -ENOLCK, the host is told (SE_LOST), and a new
 * session is opened. */
static void give_up(struct session *s, uint64_t now)
{
	uint64_t old = s->session;
	struct pend *pt = s->pt;
	size_t pcap = s->pcap;
	struct session_effect lost = { .kind = SE_LOST, .session = old };
	int rc;

	if (!old || s->halted || now < s->reopen_ms)
		return;
	s->sessions_lost++;
	/* The old entries are walked apart: what moves lands in the new
	 * session's table. */
	s->pt = NULL;
	s->pcap = s->pn = 0;
	s->unlocks_out = 0;
	/* Failed: the requests still get -ENOLCK, and the view, still
	 * expired, gives up again after resend_ms. */
	rc = session_open(s, now);
	s->reopen_ms = 0;
	if (rc < 0) {
		struct session_effect e = { .kind = SE_OPEN_FAILED, .status = rc };

		s->reopen_ms = now + s->cfg.resend_ms;
		ss_fx_push(s, &e);
	}
	/* Oldest first, so moved requests keep their order. */
	if (pcap)
		qsort(pt, pcap, sizeof(*pt), cmp_pend_serial);
	for (size_t i = 0; i < pcap; i++) {
		struct lc_completion c = { .origin = old, .status = -ENOLCK };

		if (!pt[i].serial)
			continue;
		/* It is answered or moved (owing anew) now. */
		s->owed -= ss_pend_owes(&pt[i]);
		if (pt[i].fn && pt[i].buf && move_to_new_session(s, &pt[i], now))
			continue;
		free(pt[i].buf);
		c.serial = pt[i].serial;
		ss_fx_done(s, pt[i].fn, pt[i].ctx, &c);
	}
	free(pt);
	ss_fx_push(s, &lost);
}

void session_check(struct session *s, uint64_t now)
{
	if (s->open_done && session_state(s, now) == LEASE_EXPIRED)
		give_up(s, now);
}

/* Gives a request that lockcore answered -ESTALE before it ever ran a new
 * serial (see dispatch); on failure it is answered -ESTALE after all. */
static void reserial(struct session *s, struct pend *p, uint64_t now)
{
	struct pend old = *p;
	struct session_effect note = { .kind = SE_RESERIAL, .arg = old.serial };
	struct lc_cmd cmd;
	uint8_t *buf = NULL;
	size_t len;
	uint64_t n = s->serial + 1;

	if (lc_cmd_decode(old.buf, old.len, &cmd) == 0) {
		cmd.serial = n;
		if (lc_cmd_encode(&cmd, &buf, &len) < 0)
			buf = NULL;
	}
	ss_pend_drop(s, p);             /* frees old.buf: cmd pointed into it */
	if (!buf || ss_pend_reserve(s) < 0) {
		struct lc_completion c = { .origin = s->session, .serial = old.serial,
					   .status = -ESTALE };

		free(buf);
		ss_fx_done(s, old.fn, old.ctx, &c);
		return;
	}
	s->serial = n;
	p = ss_pend_insert(s, n, old.fn, old.ctx);
	p->buf = buf;
	p->len = (uint32_t)len;
	p->flags = old.flags;
	p->owner = old.owner;
	p->seq = old.seq;
	p->deadline_ms = old.deadline_ms;
	if (p->flags & PF_UNLOCK)
		s->unlocks_out++;
	note.serial = n;
	ss_fx_push(s, &note);
	send_pend(s, n, now);
}

/* Hands every completion of our session to its callback (as effects). */
static void dispatch(struct session *s, const struct lc_out *out, uint64_t now)
{
	bool kick = false;

	/* A node that was paused (SIGSTOP, a VM stall) past its lease may
	 * wake up to apply grants the cluster has revoked since: nothing is
	 * handed out once our own view says the lease ran out; give_up()
	 * answers every request of the session -ENOLCK instead (halted, or
	 * until it can open a new session, nothing: session_fail_all()). */
	if (s->clustered && s->open_done &&
	    !(s->cfg.breaks & SESSION_BREAK_EXPIRED_GRANT) &&
	    session_state(s, now) == LEASE_EXPIRED) {
		give_up(s, now);
		return;
	}
	for (size_t i = 0; i < out->n; i++) {
		const struct lc_completion *c = &out->v[i];
		struct pend *p;
		session_done_fn fn;
		void *ctx;

		if (c->origin != s->session || s->session == 0)
			continue;
		p = ss_pend_find(s, c->serial);
		if (!p)
			continue;
		if (c->status == -ESTALE && !(s->cfg.breaks & SESSION_BREAK_RESERIAL)) {
			/* A copy sent again after LC_DEDUP_WINDOW newer
			 * serials of ours were applied.  If the log showed the
			 * request already, this is the copy's answer: ignore
			 * it.  If not, the original never ran and never will:
			 * send it again under a new serial. */
			if (p->buf)
				reserial(s, p, now);
			continue;
		}
		/* In the log now: no more sending, no more deadline. */
		if (p->buf && (p->flags & PF_UNLOCK)) {
			s->unlocks_out--;
			kick = true;             /* what waited behind it goes */
		}
		free(p->buf);
		p->buf = NULL;
		p->deadline_ms = 0;
		fn = p->fn;
		ctx = p->ctx;
		if (c->status != LC_PENDING) {
			ss_pend_remove(s, p);
		} else if (p->flags & PF_PARKED) {
			continue;                /* told already (a copy's answer) */
		} else {
			s->owed -= ss_pend_owes(p);
			p->flags |= PF_PARKED;
			s->owed += ss_pend_owes(p);
		}
		ss_fx_done(s, fn, ctx, c);
	}
	if (kick) {
		size_t cnt;
		uint64_t *v = ss_pend_serials(s, false, &cnt);

		for (size_t i = 0; i < cnt; i++) {
			struct pend *q = ss_pend_find(s, v[i]);

			if (q && q->buf && !q->sent_ms)
				send_pend(s, v[i], now);
		}
		free(v);
	}
}

bool session_entry(struct session *s, const struct lc_cmd *cmd, uint64_t now)
{
	if (cmd->type == LC_CMD_SESSION_CLOSE && cmd->session == s->session &&
	    s->session && !s->halted && cmd->origin != s->session && s->clustered) {
		/* The cluster closes our live session: our clock must already
		 * have said so (lease.h), but a paused node learns it here
		 * first.  Give up BEFORE the close frees the locks, so the
		 * host can still find the holders to signal. */
		give_up(s, now);
		return true;
	}
	return false;
}

/* Our SESSION_OPEN is in the log: the lease counts from its first send. */
static void opened(struct session *s, int status, uint64_t ka_ms, uint64_t now)
{
	struct session_effect e = { .kind = SE_OPENED, .status = status,
				    .session = s->session };

	s->open_done = true;
	s->open_status = status;
	if (status == 0) {
		lease_view_ack(&s->view, s->open_sent_ms);
		/* An open first sent long ago (the cluster was forming) starts
		 * in jeopardy: keep it alive at the jeopardy pace at once. */
		if (session_state(s, now) != LEASE_OK)
			ka_ms = s->cfg.lease_ms / 10;
		s->next_ka_ms = now + ka_ms;
	}
	ss_fx_push(s, &e);
}

void session_applied(struct session *s, const struct lc_cmd *cmd,
		     const struct lc_out *out, uint64_t now)
{
	if (cmd && cmd->type == LC_CMD_SESSION_OPEN && cmd->session == s->session &&
	    cmd->origin == s->session && !s->open_done)
		opened(s, out->n ? out->v[0].status : -EIO, s->cfg.lease_ms / 4, now);
	dispatch(s, out, now);
	if (cmd && cmd->type == LC_CMD_SESSION_CLOSE && cmd->session == s->session &&
	    cmd->origin == s->session) {
		struct session_effect e = { .kind = SE_CLOSED, .session = s->session };

		ss_fx_push(s, &e);
	}
}

/* Our replica was replaced by the leader's snapshot: the entries it skipped
 * carried completions we never saw (a queued lock granted in them would
 * wait forever).  Ask the new state what became of each request. */
void session_installed(struct session *s, const struct lc_state *st, uint64_t now)
{
	const char *name;
	size_t len, k;
	uint64_t *v;

	if (!s->session || s->halted)
		return;
	if (!s->open_done && lc_session_name(st, s->session, &name, &len) == 0)
		opened(s, 0, s->view_lease_ms / 4, now);
	if (s->cfg.breaks & SESSION_BREAK_RESOLVE)
		return;
	v = ss_pend_serials(s, true, &k);   /* NULL: sent again or time out */
	for (size_t i = 0; i < k; i++) {
		struct pend *p = ss_pend_find(s, v[i]);
		struct lc_completion c;
		int r;

		if (!p)
			continue;
		r = lc_request_result(st, s->session, v[i], &c);
		if (r == -ENOENT && p->buf)
			continue;             /* never ran: still being sent */
		if (r == -ENOENT) {
			/* Queued once, its record is gone: fate unknown. */
			c = (struct lc_completion){ .origin = s->session, .serial = v[i],
						    .status = -ENOLCK };
		}
		{
			struct lc_out out = { .v = &c, .n = 1, .cap = 1 };

			dispatch(s, &out, now);
		}
	}
	free(v);
}

/* Keepalives to every voter (so every voter knows our address and we know
 * who is reachable); only the leader's answer acknowledges.  serial
 * carries the lease our view runs on: a leader never acknowledges a node
 * whose lease would outlive its own. */
static void send_keepalives(struct session *s, uint64_t now)
{
	struct session_msg m = { .kind = SM_KA, .session = s->session,
				 .serial = s->view_lease_ms, .stamp = now };

	for (unsigned i = 0; i < s->cfg.n_voters; i++)
		ss_fx_send(s, s->voters[i], &m);
}

void session_link(struct session *s, enum session_link l, uint64_t now)
{
	s->link = l;
	if (l == SESSION_LINK_UP && !s->halted) {
		/* Back: tell the cluster at once rather than at the next
		 * keepalive, and send what waited. */
		send_keepalives(s, now);
		s->next_ka_ms = now + s->cfg.lease_ms / 10;
		session_resend(s, now);
	}
}

bool session_set_role(struct session *s, bool leading, uint64_t leader)
{
	uint64_t leader0 = s->leader;

	s->leading = leading;
	s->leader = leader;
	if (leader != leader0)
		s->hint = 0;
	return leader != leader0 && leader;
}

/* `from` did not acknowledge us and names `leader` as the leader (0: it
 * knows none).  A keepalive answer from any voter may name it; a redirect
 * replaces our guess until our engine hears from a leader itself. */
static void note_redirect(struct session *s, uint64_t from, uint64_t leader)
{
	if (leader == from) {
		/* It says it leads (it did not acknowledge us for another
		 * reason: our session is not open yet, say). */
		if (from != s->leader)
			s->hint = from;
		return;
	}
	if (leader && leader != s->cfg.self_id) {
		if (leader != s->leader || s->hint)
			s->hint = leader;
	} else if (from == s->hint) {
		s->hint = 0;           /* the one we were told of does not lead */
	}
}

/* Requests past their deadline get -ETIMEDOUT; what was not acknowledged
 * in a while is sent again. */
static void check_requests(struct session *s, uint64_t now)
{
	size_t cnt;
	uint64_t *v = ss_pend_serials(s, false, &cnt);

	for (size_t i = 0; i < cnt; i++) {
		struct pend *p = ss_pend_find(s, v[i]);
		struct lc_completion c = { .origin = s->session, .status = -ETIMEDOUT };
		session_done_fn fn;
		void *ctx;

		if (!p)
			continue;
		if (p->deadline_ms && now >= p->deadline_ms) {
			fn = p->fn;
			ctx = p->ctx;
			c.serial = p->serial;
			if (p->flags & PF_UNLOCK) {
				/* Still sent until the log has it: a release
				 * must not be forgotten. */
				s->owed -= ss_pend_owes(p);
				p->fn = NULL;
				p->deadline_ms = 0;
			} else {
				ss_pend_drop(s, p);
			}
			ss_fx_done(s, fn, ctx, &c);
			continue;
		}
		/* Alone, what the engine took is in its log for good. */
		if (!s->clustered && (p->flags & PF_ACKED))
			continue;
		if (p->buf && p->sent_ms &&
		    now >= p->sent_ms + ((p->flags & PF_ACKED) ? s->cfg.resend_acked_ms
							       : s->cfg.resend_ms))
			send_pend(s, v[i], now);
		else if (p->buf && !p->sent_ms)
			send_pend(s, v[i], now);
	}
	free(v);
}

bool session_wants_timer(const struct session *s)
{
	if (s->halted)
		return false;
	if (s->nheld)
		return true;
	if (!s->pn)
		return false;
	for (size_t i = 0; i < s->pcap; i++)
		if (s->pt[i].serial && (s->pt[i].buf || s->pt[i].deadline_ms))
			return true;
	return false;
}

/* The earliest of `at` and t (0: none). */
static uint64_t earliest(uint64_t at, uint64_t t)
{
	return t && (!at || t < at) ? t : at;
}

uint64_t session_wake_at(struct session *s, uint64_t now)
{
	uint64_t at = 0;

	if (s->halted)
		return 0;
	if (s->nheld)
		at = now + s->cfg.resend_ms;
	for (size_t i = 0; i < s->pcap; i++) {
		const struct pend *p = &s->pt[i];

		if (!p->serial)
			continue;
		at = earliest(at, p->deadline_ms);
		if (!p->buf || ((p->flags & PF_ACKED) && !s->clustered))
			continue;
		if (p->sent_ms)
			at = earliest(at, p->sent_ms + ((p->flags & PF_ACKED) ?
							s->cfg.resend_acked_ms :
							s->cfg.resend_ms));
		else if (!held_back(s, p))
			at = earliest(at, now);  /* a tick sends it */
		/* else sent on the event it waits for, not on time */
	}
	for (size_t i = 0; i < s->nrw; i++)
		at = earliest(at, s->rw[i].deadline_ms);
	if (s->read_acked < s->read_id)
		at = earliest(at, s->read_sent_ms + s->cfg.resend_ms);
	if (s->clustered) {
		at = earliest(at, s->next_ka_ms ? s->next_ka_ms : now);
		if (s->open_done && session_state(s, now) == LEASE_EXPIRED) {
			/* A tick gives up, or a give-up that could not
			 * open a new session tries again at reopen_ms. */
			at = earliest(at, s->reopen_ms > now ? s->reopen_ms : now);
		} else if (s->open_done) {
			/* Only times to come: in jeopardy already, the next
			 * keepalive is the next thing to do. */
			if (lease_view_jeopardy_at(&s->view) > now)
				at = earliest(at, lease_view_jeopardy_at(&s->view));
			at = earliest(at, lease_view_deadline(&s->view));
		}
	}
	/* Every time in the past above is work a tick does at once (and
	 * then is no longer due): a host sleeping until `at` never spins. */
	return at && at < now ? now : at;
}

void session_tick(struct session *s, const struct session_in *in, bool self_ok)
{
	uint64_t now = in->now;
	enum lease_state st;

	if (s->halted)
		return;
	retry_held(s, now);
	if (!s->clustered) {
		/* Alone: no session to keep, only requests to send again
		 * or to answer at their deadline. */
		check_requests(s, now);
		return;
	}
	st = session_state(s, now);
	if (st == LEASE_EXPIRED) {
		give_up(s, now);
	} else if (s->open_done && s->leading && self_ok) {
		lease_view_ack(&s->view, now);
	}
	if (now >= s->next_ka_ms && !s->leading) {
		/* Also before our session is open: the keepalives tell every
		 * voter our address (a new leader replicates to us only then)
		 * and their answers who leads. */
		send_keepalives(s, now);
		s->next_ka_ms = now + (st == LEASE_OK ? s->cfg.lease_ms / 4
						      : s->cfg.lease_ms / 10);
	} else if (s->leading && now >= s->next_ka_ms) {
		/* The leader keeps telling members and voters it leads. */
		send_keepalives(s, now);
		s->next_ka_ms = now + s->cfg.lease_ms / 4;
	}
	check_requests(s, now);
	if (s->nrw)
		session_reads_check(s, in);
}

/* ---- read barriers ---------------------------------------------------------- */

static void read_send(struct session *s, uint64_t now)
{
	struct session_msg m = { .kind = SM_READ };

	s->read_sent_ms = now;
	if (!s->read_base_ms)
		s->read_base_ms = now;
	m.serial = ++s->read_id;
	m.stamp = now;
	ss_fx_send(s, leader_guess(s), &m);
}

static void fx_read(struct session *s, const struct rwait *w, int status)
{
	struct session_effect e = { .kind = SE_READ, .read = w->fn, .ctx = w->ctx,
				    .status = status };

	s->owed--;                   /* owed since session_read() */
	ss_fx_push(s, &e);
}

/* Answers the barriers whose index is applied, or whose time is up, and
 * asks the leader again for those that need a newer read id. */
void session_reads_check(struct session *s, const struct session_in *in)
{
	uint64_t now = in->now;
	size_t k = 0;
	bool want = false;

	for (size_t i = 0; i < s->nrw; i++) {
		struct rwait w = s->rw[i];

		/* Leading under a lease: everything committed is applied. */
		if (in->lead_ok && !w.target)
			w.target = in->applied ? in->applied : 1;
		if (w.target && (in->applied >= w.target ||
				 (s->cfg.breaks & SESSION_BREAK_READ_BARRIER))) {
			fx_read(s, &w, 0);
			continue;
		}
		if (now >= w.deadline_ms) {
			fx_read(s, &w, -ETIMEDOUT);
			continue;
		}
		s->rw[k++] = w;
	}
	s->nrw = k;
	for (size_t i = 0; i < s->nrw; i++)
		if (!s->rw[i].target && s->rw[i].need > s->read_id)
			want = true;
	if (!s->clustered || s->halted)
		return;
	/* One read in flight at a time; a lost one is asked again. */
	if ((want && s->read_acked == s->read_id) ||
	    (s->read_acked < s->read_id && now >= s->read_sent_ms + s->cfg.resend_ms))
		read_send(s, now);
}

/* The leader answered read id `id` with `index` (0: it could not). */
static void read_answer(struct session *s, uint64_t from, const struct session_msg *m,
			const struct session_in *in)
{
	uint64_t id = m->serial, index = m->session;

	if (id > s->read_id || id <= s->read_acked)
		return;                /* not asked, or answered already */
	/* Read ids start again in a new session struct (a restarted node):
	 * an answer to a read an earlier one sent, late, carries an index
	 * from before our reads were asked.  The stamp is our own send time,
	 * echoed: ours are never older than our first send. */
	if (m->stamp < s->read_base_ms)
		return;
	if (!index) {
		note_redirect(s, from, m->leader);
		return;                /* asked again by the timer */
	}
	s->read_acked = id;
	for (size_t i = 0; i < s->nrw; i++)
		if (!s->rw[i].target && s->rw[i].need <= id)
			s->rw[i].target = index;
	session_reads_check(s, in);
}

int session_read(struct session *s, session_read_fn fn, void *ctx,
		 const struct session_in *in)
{
	uint64_t t = s->cfg.op_timeout_ms ? s->cfg.op_timeout_ms : READ_TIMEOUT_MS;

	if (s->halted)
		return -ENOLCK;
	/* Alone, or leading under a lease: everything committed is
	 * applied already (the host applies as it commits). */
	if (!s->clustered || in->lead_ok)
		return 1;
	if (!ss_fx_room(s, s->owed + 1))
		return -ENOMEM;          /* no room for its answer */
	if (s->nrw == s->caprw) {
		size_t nc = s->caprw ? s->caprw * 2 : 64;
		struct rwait *nv = realloc(s->rw, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		s->rw = nv;
		s->caprw = nc;
	}
	/* It needs an answer to a read sent after now. */
	s->rw[s->nrw++] = (struct rwait){ .fn = fn, .ctx = ctx, .need = s->read_id + 1,
					  .deadline_ms = in->now + t };
	s->owed++;
	if (s->read_acked == s->read_id)
		read_send(s, in->now);
	return 0;
}

/* ---- answers from the leader ------------------------------------------------ */

static bool is_voter(const struct session *s, uint64_t id)
{
	for (unsigned i = 0; i < s->cfg.n_voters; i++)
		if (s->voters[i] == id)
			return true;
	return false;
}

int session_on_msg(struct session *s, uint64_t from, const struct session_msg *m,
		   const struct session_in *in)
{
	int ret = 0;

	if (s->halted)
		return 0;
	if (m->kind == SM_READ_ACK) {
		read_answer(s, from, m, in);
		return 0;
	}
	if (m->kind != SM_FWD_ACK && m->kind != SM_KA_ACK)
		return 0;
	if (!is_voter(s, from))
		return 0;              /* only voters answer for the cluster */
	if (m->kind == SM_KA_ACK && m->serial >= s->cfg.min_lease_ms &&
	    m->serial < s->view_lease_ms) {
		uint64_t cap = m->serial - m->serial / LEASE_JEOPARDY_DIV - 2;

		s->view_lease_ms = m->serial;
		s->view.lease_ms = m->serial;
		if (s->view.margin_ms > cap)
			s->view.margin_ms = cap;
		ret = SESSION_LEASE_LOWERED;
	}
	if (m->ok && m->session == s->session && s->open_done && m->stamp <= in->now)
		lease_view_ack(&s->view, m->stamp);
	if (!m->ok)
		note_redirect(s, from, m->leader);
	if (m->kind == SM_FWD_ACK && m->session == s->session) {
		struct pend *p = ss_pend_find(s, m->serial);

		if (p && p->buf) {
			if (m->ok)
				p->flags |= PF_ACKED;
			else if (m->leader && m->leader != from)
				send_pend(s, m->serial, in->now);   /* to the one it names */
		}
	}
	return ret;
}

/* ---- stopping ----------------------------------------------------------------- */

void session_halt(struct session *s)
{
	s->halted = true;
}

/* Gives every request still waiting its final answer `status` and every
 * barrier -ETIMEDOUT (newest first). */
void session_fail_all(struct session *s, int status)
{
	for (size_t i = 0; i < s->pcap; i++) {
		struct lc_completion c = { .status = status, .serial = s->pt[i].serial };

		if (!s->pt[i].serial)
			continue;
		s->owed -= ss_pend_owes(&s->pt[i]);
		free(s->pt[i].buf);
		ss_fx_done(s, s->pt[i].fn, s->pt[i].ctx, &c);
	}
	if (s->pt)
		memset(s->pt, 0, s->pcap * sizeof(*s->pt));
	s->pn = 0;
	s->unlocks_out = 0;
	while (s->nrw)
		fx_read(s, &s->rw[--s->nrw], -ETIMEDOUT);
}

/* ---- effects out -------------------------------------------------------------- */

bool session_next(struct session *s, struct session_effect *e)
{
	while (ss_fx_pop(s, e)) {
		struct pend *p;

		if (e->kind == SE_PROPOSE) {
			/* The bytes are the entry's own, as it is now: one
			 * answered meanwhile (or of a session given up since)
			 * is not proposed. */
			p = ss_pend_find(s, e->serial);
			if (!p || !p->buf || s->halted || e->session != s->session)
				continue;
			e->buf = p->buf;
			e->len = p->len;
		} else if (e->kind == SE_SEND && e->msg.kind == SM_FWD) {
			p = ss_pend_find(s, e->msg.serial);
			if (!p || !p->buf || s->halted || e->msg.session != s->session)
				continue;
			e->msg.body = p->buf;
			e->msg.len = p->len;
		}
		return true;
	}
	return false;
}

/* ---- the leader's side ---------------------------------------------------------- */

bool session_contact_ok(const struct lc_state *st, struct lease_table *t, bool leading,
			bool lease_valid, uint64_t session, uint64_t now)
{
	const char *name;
	size_t len;

	if (!leading || !session)
		return false;
	if (lc_session_name(st, session, &name, &len) != 0)
		return false;
	if (lease_touch(t, session, now) != 0)
		return false;
	return lease_valid;
}

int session_answer(const struct session_leader *L, const struct lc_state *st,
		   struct lease_table *t, const struct session_msg *m, uint64_t now,
		   struct session_msg *ans)
{
	struct lc_cmd cmd;

	*ans = (struct session_msg){ .session = m->session, .serial = m->serial,
				     .stamp = m->stamp, .leader = L->leader };
	switch (m->kind) {
	case SM_READ:
		ans->kind = SM_READ_ACK;
		ans->session = L->leading && L->lease_valid ? L->commit_index : 0;
		return SA_ANSWER;
	case SM_FWD:
	case SM_KA:
		break;
	default:
		return SA_DROP;
	}
	ans->kind = m->kind == SM_FWD ? SM_FWD_ACK : SM_KA_ACK;
	/* --lease must be the same everywhere: a node with a longer lease
	 * than the leader's would keep its locks after the leader freed
	 * them.  Both sides take the shorter: our answer carries our lease,
	 * and a leader never acknowledges a node that would outlive it. */
	if (m->kind == SM_KA)
		ans->serial = L->lease_ms;
	if (!L->leading)
		return SA_ANSWER;
	ans->ok = session_contact_ok(st, t, L->leading, L->lease_valid, m->session, now) &&
		  !(m->kind == SM_KA && m->serial > L->lease_ms);
	if (m->kind == SM_KA)
		return SA_ANSWER;
	/* Only well-formed commands of the sender's own session enter the log. */
	if (lc_cmd_decode(m->body, m->len, &cmd) < 0 || cmd.origin != m->session ||
	    cmd.serial != m->serial)
		return SA_DROP;
	return SA_PROPOSE;
}
