/*
 * lockcore/session.h - one session's protocol, as a pure module.
 *
 * A session is what a node (or, later, one remote client connection) has
 * in the cluster: an id, serials, the requests not answered finally yet,
 * a lease view kept alive by keepalives, and read barriers.  This module
 * holds all of that and every rule about it (lockcore/session.c's head
 * comment lists them); the host (node/own.c, t/sim/host.c) only turns its
 * effects into I/O.  It can be instantiated any number of times: no state
 * lives outside struct session.
 *
 * How a host drives it:
 *
 *   1. session_new(&cfg) once; session_open(s, now) starts the first
 *      session (SESSION_OPEN, sent until the log has it).
 *   2. Feed it events as they happen, each with the host's monotonic time
 *      in ms (`now`; never going back):
 *        session_submit()       a command of ours (fills origin, serial, time)
 *        session_set_role()     our engine's role / leader changed; then,
 *                               once the update's entries are applied,
 *                               session_resend(s, now) when it returned true
 *        session_entry()        before applying a committed command
 *        session_applied()      after applying it, with its completions
 *        session_installed()    the replica was replaced by a snapshot
 *        session_on_msg()       an answer from the leader (FWD_ACK, KA_ACK,
 *                               READ_ACK) from node `from`
 *        session_proposed()     what our engine said to an SE_PROPOSE
 *        session_link()         the link monitor's state changed
 *        session_check()        woken (cluckd: before every datagram it
 *                               handles): gives up a session whose view
 *                               ran out, before anything is applied
 *        session_tick()         the host's timer: at session_wake_at(), or
 *                               periodically (cluckd: every 50 ms in a
 *                               cluster; alone while session_wants_timer())
 *        session_read()         a read barrier
 *        session_reads_check()  the applied index moved (end of a round)
 *      In one engine update cluckd does: snapshot installed, role, apply
 *      each entry (session_entry, lc_apply, session_applied), then resend.
 *      The host keeps the leader's side: its lease table (lockcore/lease.h,
 *      touching our own session while it leads) and session_answer().
 *   3. After each call, pop every effect with session_next() and carry it
 *      out IN ORDER:
 *        SE_PROPOSE  propose e.buf/e.len to our engine (we lead), then
 *                    report the engine's return with session_proposed().
 *                    A host that cannot step its engine now (it is inside
 *                    a step) keeps e.serial and calls session_send(s,
 *                    serial, now) once it can: the session re-checks then.
 *        SE_SEND     send e.msg to node e.to (never ourselves)
 *        SE_DONE     call e.done(e.ctx, &e.c) (a completion of ours:
 *                    LC_PENDING at most once per serial, then the final one)
 *        SE_READ     call e.read(e.ctx, e.status) (a read barrier answered)
 *        SE_OPENED   our SESSION_OPEN is applied (e.status its answer)
 *        SE_CLOSED   our SESSION_CLOSE is applied
 *        SE_LOST     session e.session was lost (view expired, or the cluster
 *                    closed it): its requests were answered -ENOLCK (SE_DONE
 *                    before this), and a new session is being opened
 *        SE_HELD_FULL  a release refused for memory could not be kept
 *                    (e.arg are kept; later ones are lost until their
 *                    session ends)
 *        SE_RESERIAL request e.arg (-ESTALE, it never ran) goes on as
 *                    e.serial (a note for the log)
 *        SE_OPEN_FAILED  a give-up could not open a new session (e.status):
 *                    it tries again (a note for the log)
 *      Out of memory only SE_SEND and SE_PROPOSE may be dropped (the timer
 *      repeats them): room for every answer is kept from the moment it is
 *      owed, and a request or read barrier without it is refused -ENOMEM.
 *      Pointers in an effect (buf, msg.body) live until the next call into
 *      the session.  Effects are never carried out from inside the session:
 *      a callback that submits only queues more effects, so a host that
 *      does not run effects from inside a callback has no re-entrancy.
 *   4. session_halt() when the host stops serving (no more sends or new
 *      sessions), session_fail_all() to answer everything still waiting.
 *
 * Two hooks in the config are called from inside (pure functions of the
 * host, never re-entering the session): wall_ns (the stamp of a command)
 * and new_id (a fresh random session id).
 *
 * The leader's side of the protocol (how a leader answers NM_FWD, NM_KA
 * and NM_READ) is session_answer() and session_contact_ok() below, pure
 * functions of the leader's view.
 *
 * Messages are struct session_msg: the fields of a node message
 * (proto/nmsg.h), kinds numbered the same, so a host converts field by field.
 *
 * It must never: read a clock, draw randomness, do I/O, call a callback of
 * a request or a read (those are effects), or include anything but the C
 * standard library and lockcore headers.
 */
#ifndef CLUCK_SESSION_H
#define CLUCK_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lockcore/lc.h"
#include "lockcore/lease.h"

/* Test-only rule breakers (session_config.breaks; cluckd never sets one).
 * Each disables one rule so a simulator seed or a unit test can show that
 * the rule is needed. */
#define SESSION_BREAK_UNLOCK_BEFORE 0x1u  /* send a lock before an earlier
					     release of its owner is in the log */
#define SESSION_BREAK_READ_BARRIER  0x2u  /* answer a read once the leader gave
					     its index, before it is applied */
#define SESSION_BREAK_RESERIAL      0x4u  /* take -ESTALE for a request never
					     seen in the log as its answer */
#define SESSION_BREAK_RESOLVE       0x8u  /* after a snapshot install, leave
					     pending requests unresolved */
#define SESSION_BREAK_EXPIRED_GRANT 0x10u /* hand out completions after our
					     view of the lease ran out */

/* Message kinds: the same numbers as proto/nmsg.h's enum nmsg_kind. */
enum session_msg_kind {
	SM_FWD = 1,         /* session, serial, stamp, body: command for the log */
	SM_FWD_ACK,         /* ok: proposed (and contact acknowledged); leader */
	SM_KA,              /* session, stamp, serial: the sender's lease ms */
	SM_KA_ACK,          /* ok: contact acknowledged; serial: leader's lease */
	SM_READ,            /* serial: read id; stamp */
	SM_READ_ACK,        /* serial, stamp echoed; session: read index (0: none) */
};

struct session_msg {
	uint8_t kind, ok;
	uint64_t session, serial, stamp, leader;
	const uint8_t *body;
	uint32_t len;
};

typedef void (*session_done_fn)(void *ctx, const struct lc_completion *c);
typedef void (*session_read_fn)(void *ctx, int status);

struct session_config {
	const char *name;            /* carried by SESSION_OPEN (outlives s) */
	uint64_t lease_ms;           /* --lease: keepalives every lease / 4 */
	uint64_t margin_ms;          /* the view gives up this much before */
	uint64_t min_lease_ms;       /* a leader's shorter lease is taken only
					when at least this */
	uint64_t op_timeout_ms;      /* non-blocking requests (0: never);
					read barriers (0: 5000) */
	uint64_t resend_ms;          /* forward not acknowledged (0: 200) */
	uint64_t resend_acked_ms;    /* acknowledged, not in the log (0: 1000) */
	uint64_t entry_max;          /* largest encoded command (0: no limit) */
	/* The cluster: our id and the voters' (copied).  n_voters 0: alone
	 * (we are the only voter: nothing is forwarded or kept alive). */
	uint64_t self_id;
	const uint64_t *voters;
	unsigned n_voters;
	/* Host hooks (see above).  new_id: 0 and a non-zero id, or -errno. */
	uint64_t (*wall_ns)(void *host);
	int (*new_id)(void *host, uint64_t *id);
	void *host;
	unsigned breaks;             /* SESSION_BREAK_*; 0 in cluckd */
};

enum session_effect_kind {
	SE_PROPOSE = 1,
	SE_SEND,
	SE_DONE,
	SE_READ,
	SE_OPENED,
	SE_CLOSED,
	SE_LOST,
	SE_HELD_FULL,
	SE_RESERIAL,
	SE_OPEN_FAILED,
};

struct session_effect {
	uint8_t kind;
	uint64_t serial;             /* PROPOSE, DONE */
	const uint8_t *buf;          /* PROPOSE: the encoded command */
	uint32_t len;
	uint64_t to;                 /* SEND: node id */
	struct session_msg msg;      /* SEND */
	session_done_fn done;        /* DONE (may be NULL: nothing to call) */
	session_read_fn read;        /* READ */
	void *ctx;                   /* DONE, READ */
	struct lc_completion c;      /* DONE */
	int status;                  /* READ, OPENED */
	uint64_t session;            /* PROPOSE, OPENED, LOST (the old one) */
	uint64_t arg;                /* RESERIAL: the old serial; HELD_FULL:
					how many releases are kept */
};

/* What only the host knows at an instant, for the calls that may answer
 * read barriers. */
struct session_in {
	uint64_t now;                /* monotonic ms */
	uint64_t applied;            /* the local replica's applied index */
	bool lead_ok;                /* we lead and hold the Raft leader lease */
};

enum session_link { SESSION_LINK_UNKNOWN, SESSION_LINK_UP, SESSION_LINK_DOWN };

struct session;

/* NULL on ENOMEM or a bad config (lease_ms 0, no hooks). */
struct session *session_new(const struct session_config *cfg);
/* Frees it; callbacks still owed are never called. */
void session_free(struct session *s);

/* Opens a new session (fresh id, serial 1 is its SESSION_OPEN).  0 or
 * -errno (new_id's, -ENOMEM). */
int session_open(struct session *s, uint64_t now);
/* Submits one of our commands: fills cmd->origin, serial and time_ns (its
 * pointers need only live during the call), and answers it through
 * SE_DONE effects.  Releases refused for memory are kept and submitted
 * again by session_tick().  0 (and *serial), -ENOMEM (also: no room for
 * its answers), -E2BIG, -ENOLCK (halted or no session). */
int session_submit(struct session *s, struct lc_cmd *cmd, session_done_fn fn,
		   void *ctx, uint64_t *serial, uint64_t now);
/* Submits SESSION_CLOSE of the current session (no timeout). */
int session_close(struct session *s, session_done_fn fn, void *ctx, uint64_t now);

/* Our engine's role and leader now.  True when the leader changed to a
 * known one: call session_resend() once the engine's update is handled. */
bool session_set_role(struct session *s, bool leading, uint64_t leader);
/* Sends everything not in the log yet, now (a new leader). */
void session_resend(struct session *s, uint64_t now);
/* Sends (or proposes) request `serial` if it still waits for the log. */
void session_send(struct session *s, uint64_t serial, uint64_t now);
/* Our engine's answer to SE_PROPOSE `serial` (rf_step's return). */
void session_proposed(struct session *s, uint64_t serial, int rc, uint64_t now);

/* A committed command is about to be applied: true when it closes our
 * live session from elsewhere (we gave up: run the SE_LOST effect BEFORE
 * applying, so the holders can still be found). */
bool session_entry(struct session *s, const struct lc_cmd *cmd, uint64_t now);
/* It was applied with these completions (cmd NULL: completions only). */
void session_applied(struct session *s, const struct lc_cmd *cmd,
		     const struct lc_out *out, uint64_t now);
/* The replica was replaced by a snapshot: resolves what it skipped. */
void session_installed(struct session *s, const struct lc_state *st, uint64_t now);
/* An answer from node `from` (acks; other kinds are ignored).  Returns
 * SESSION_LEASE_LOWERED when the leader's shorter lease now rules our view
 * (the host says so; session_view_lease() gives the new value). */
#define SESSION_LEASE_LOWERED 1
int session_on_msg(struct session *s, uint64_t from, const struct session_msg *m,
		   const struct session_in *in);
void session_link(struct session *s, enum session_link l, uint64_t now);
/* Gives up when our view ran out (a host woken after a pause). */
void session_check(struct session *s, uint64_t now);
/* The periodic timer: held releases, expiry, keepalives, resends and
 * deadlines, read barriers.  self_ok: we lead and session_contact_ok()
 * holds for our own session (compute it only when session_is_open() and
 * we lead). */
void session_tick(struct session *s, const struct session_in *in, bool self_ok);
/* True (alone) while something waits for the timer. */
bool session_wants_timer(const struct session *s);
/* The earliest time session_tick() has something to do (a keepalive, a
 * resend, a deadline, jeopardy or expiry of the view; `now` when overdue),
 * or 0 when nothing: a host with a discrete clock (the simulator) sleeps
 * until then.  After a tick at that time it is later (or 0): what waits
 * for an event (its session's open applied, an earlier release of its
 * owner in the log) goes out on that event, not on time.  cluckd ticks
 * every 50 ms instead, which is never later. */
uint64_t session_wake_at(struct session *s, uint64_t now);

/* A read barrier: 1 when it holds already (alone, or in->lead_ok: the
 * host answers at once), 0 queued (SE_READ later), -ENOMEM. */
int session_read(struct session *s, session_read_fn fn, void *ctx,
		 const struct session_in *in);
void session_reads_check(struct session *s, const struct session_in *in);

/* The host stops serving (stopped or failed): nothing is sent any more and
 * no session is given up or opened. */
void session_halt(struct session *s);
/* Answers every request `status` and every read barrier -ETIMEDOUT. */
void session_fail_all(struct session *s, int status);

/* Pops the next effect: false when none. */
bool session_next(struct session *s, struct session_effect *e);

uint64_t session_id(const struct session *s);
bool session_is_open(const struct session *s);
int session_open_status(const struct session *s);
/* Our view of the lease at now (LEASE_NONE before the open is applied;
 * a link down makes LEASE_OK a jeopardy); reaching expiry is sticky. */
enum lease_state session_state(struct session *s, uint64_t now);
uint64_t session_lost_count(const struct session *s);
uint64_t session_view_lease(const struct session *s);
/* The local time (ms) at which our view of the lease runs out (0 before
 * the open is applied): a simulator dates a lost lock by it. */
uint64_t session_view_deadline(const struct session *s);
/* The last time stamped on a command (wall ns): time never goes back. */
uint64_t session_last_time(const struct session *s);
/* Requests not answered finally yet; reads waiting. */
size_t session_pending(const struct session *s);
size_t session_reads_waiting(const struct session *s);

/* ---- the leader's side ------------------------------------------------ */

/* May a leader acknowledge a contact of `session`?  Only while it leads
 * and holds its Raft lease (lease_valid), the session is alive in its
 * state and not doomed in its lease table (touched here). */
bool session_contact_ok(const struct lc_state *st, struct lease_table *t, bool leading,
			bool lease_valid, uint64_t session, uint64_t now);

/* What a node knows when it answers a message of another node's session. */
struct session_leader {
	bool leading;                /* our role is leader */
	bool lease_valid;            /* ... under the Raft leader lease */
	uint64_t leader;             /* who we believe leads (0: unknown) */
	uint64_t lease_ms;           /* our --lease */
	uint64_t commit_index;       /* our engine's commit index */
};

enum session_answer_kind {
	SA_DROP = 0,                 /* no answer (a malformed FWD, not a request) */
	SA_ANSWER,                   /* send *ans back */
	SA_PROPOSE,                  /* propose m->body; if that fails set
					ans->ok = 0; set ans->leader to the
					leader then; send *ans back */
};

/* How a node answers NM_FWD, NM_KA or NM_READ from another node. */
int session_answer(const struct session_leader *L, const struct lc_state *st,
		   struct lease_table *t, const struct session_msg *m, uint64_t now,
		   struct session_msg *ans);

#endif /* CLUCK_SESSION_H */
