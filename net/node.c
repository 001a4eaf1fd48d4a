/*
 * net/node.c - the engine driver (implements net/node.h): the lock state
 * machine replicated by the Raft engine among the voters of --cluster,
 * persisted in --data-dir, with this node's session and its lease.
 *
 * Our session's protocol lives in lockcore/session.c (its head comment
 * says it all: the pending table, serials and re-serials, resends,
 * unlock-before ordering, the keepalive schedule over the lease view,
 * give-up and a new session, resolve-after-install, read barriers and
 * redirects, and the leader's answers to other nodes' sessions).  The node
 * feeds it events (a command proposed through node_propose(), completions
 * applied, answers received, role and link changes, its timer) and carries
 * out its effects in order (run_effects): our own commands are proposed to
 * the engine as leader or forwarded to the leader (NM_FWD over
 * net/peer.h), keepalives and reads go out, completions reach fs's
 * callbacks, a lost session reaches node_on_lost.  What a callback asks
 * for waits in the session's queue for the loop that ran it.
 *
 * What the engine asks to persist goes to the store and is made durable
 * once per loop round (group commit: one fdatasync for everything the
 * round appended); what it asks to send goes out at once; committed
 * entries are applied to the local state in log order and their
 * completions handed to the session.  The leader proposes the leader-made
 * commands: TICKs when a lockfile ttl runs out, SESSION_CLOSEs for sessions
 * whose lease ran out on its clock (lockcore/lease.h; every session known
 * at election gets a fresh lease first: a leader change never frees a
 * lock), and the membership of members (learners: they get the log, never
 * vote).  Snapshots are taken every SNAP_EVERY entries (once the log since
 * the last one is half its size) and the log is compacted behind them.
 *
 * Alone (no --cluster), the node is a one-voter cluster with id 1 that
 * never touches the network; its timer runs only while a request waits to
 * be proposed again (the engine refused it for memory) or for its
 * --op-timeout deadline.
 *
 * A clean stop (node_begin_stop) refuses new acquires while the session is
 * kept alive for the holders; node_stop() then closes it through the log,
 * waiting for that only while a leader speaks and has a quorum.
 *
 * It must never: block anywhere but in the round's fdatasync, answer a
 * request before its entry is durable and applied, call a callback after
 * its final answer (or at all when node_propose() failed), step the engine
 * from inside the handling of one of its updates (the update points into
 * the engine: proposals asked for meanwhile wait for the end of the outer
 * step), carry out the session's effects from inside a callback, or keep
 * going after the store failed (the node signals its holders, stops the
 * loop and says so).  A store refused for space has not failed: the
 * node gives back its reserve file, refuses what adds data (ENOSPC),
 * retries a stalled sync and serves again once the reserve can be made.
 */
#include "config.h"

#include "net/node.h"
#include "net/loop.h"
#include "net/log.h"
#include "net/store.h"
#include "net/peer.h"
#include "proto/nmsg.h"
#include "net/link.h"
#include "lockcore/raft.h"
#include "lockcore/lease.h"
#include "lockcore/session.h"

#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <sys/stat.h>

#define SELF_ID      1u              /* our Raft id when alone */
#define SNAP_EVERY   20000u          /* entries between snapshots */
#define SNAP_BYTES   (64u << 20)     /* ... or this many log bytes */

/* Cluster timing (cluck-protocol(7)). */
#define HEARTBEAT_MS      50u
#define ELECTION_MIN_MS   400u
#define ELECTION_MAX_MS   800u
#define DRIFT_MS          50u        /* max clock drift over a lease */
#define TICK_MS           50u        /* the node's own timer while clustered */
/* The node gives up margin ms before its lease: > 2 * drift + one tick
 * (lease.h's proof), plus slack for a busy loop. */
#define LEASE_MARGIN_MS   (2u * DRIFT_MS + TICK_MS + 100u)
#define RESEND_MS         200u       /* forward not yet acknowledged (alone:
					the timer while something waits) */
#define RESEND_ACKED_MS   1000u      /* acknowledged but not in our log yet */
#define MAX_KNOWN         512u       /* nodes we track (voters + members) */
/* The shortest --lease a cluster takes (daemon/options.c): the margin must
 * stay above 2 * drift + a tick (lease.h). */
#define MIN_LEASE_MS      1000u
/* A full data directory (cluckd(8) "Failures"): the reserve file given
 * back so lock commands can still be logged, and how often room is
 * looked for. */
#define RESERVE_BYTES     (1u << 20)
#define DISK_RETRY_MS     500u

#define REJOIN_FILE  "rejoin"        /* data dir: a --rejoin not yet caught up */

/* A leader-made command waiting for the end of the current step. */
struct outq {
	uint8_t *buf;
	size_t len;
};

/* One of the node's timers, armed for `key` (the deadline it serves, in
 * whatever unit): arming it again for the same key costs nothing. */
struct ntimer {
	uint64_t id, key;            /* id 0: not armed */
};

/* Another node we heard from (voters from --cluster, members learned). */
struct known {
	uint64_t id;
	uint64_t last_rx_ms;         /* last authenticated datagram from it */
	bool voter;
	bool wants_join;             /* a member not in the configuration */
	bool lease_warned;           /* said once that its --lease differs */
};

struct node {
	struct loop *loop;
	char *name;
	char *data_dir;
	uint64_t lease_ms, op_timeout_ms;
	int error;              /* fatal: the store failed; 0 while healthy */

	struct lc_state *st;
	struct raft *raft;
	struct store *store;
	struct lease_table leases;
	uint64_t applied;       /* last log index fed to the state */
	uint64_t last_time;     /* last time_ns stamped on a leader-made command */
	uint8_t role;
	uint64_t leader;        /* the engine's leader id (0: none) */
	uint64_t leader_since;  /* mono ms we became leader */
	bool started, stopped;

	/* our session (lockcore/session.c: requests, lease, read barriers) */
	struct session *sess;
	bool in_cb;             /* running a callback: effects wait for the caller */
	node_lost_fn lost_fn;
	void *lost_ctx;
	bool close_done;
	/* A clean stop waits for our holders (node_begin_stop): no lock is
	 * taken any more, the session is kept alive until node_stop(). */
	bool stopping;
	uint64_t stop_deadline_ns;   /* mono ns */
	uint64_t close_check;        /* node_stop's progress timer */

	uint64_t accept_cut;    /* --accept-loss (node_config) */
	bool accept_state;
	bool rejoin;            /* --rejoin (node_config) */
	bool rejoining;         /* the engine is catching up (rf_catching_up) */

	/* the cluster (all zero / NULL alone) */
	bool clustered, voter;
	uint64_t self_id;
	uint64_t epoch;
	struct peer *peer;
	struct link_mon *link;
	enum link_state link_st;
	struct node_voter *voters;   /* copies, names owned */
	uint64_t *voter_ids;
	unsigned n_voters;
	struct known *kn;
	size_t nkn;
	struct ntimer node_timer;   /* resends, deadlines, keepalives (key 1) */
	uint8_t *txbuf;              /* one encoded message */
	struct sockaddr_storage listen;
	socklen_t listen_len;
	uint8_t key[PEER_KEY_BYTES];
	bool has_key;

	/* persistence */
	uint64_t want_seq;      /* highest write_seq handed to the store */
	uint64_t synced_seq;    /* ... and reported synced */
	uint64_t snap_index, since_snap_entries, since_snap_bytes;
	uint64_t snap_every;    /* entries between snapshots */
	uint64_t snap_len;      /* size of the latest snapshot */

	/* timers */
	struct ntimer raft_timer;     /* key: engine deadline (mono ms) */
	struct ntimer tick_timer;     /* key: lockcore deadline (wall ns) */
	struct ntimer lease_timer;    /* key: session lease deadline (mono ms) */
	struct ntimer disk_timer;     /* looks for room while disk_full (key 1) */
	bool disk_full;         /* the data directory said ENOSPC: no new data */
	bool sync_stalled;      /* said that the log cannot be synced for now */

	/* re-entrancy: work asked for while an update is being handled */
	unsigned depth;
	struct outq *oq;        /* leader-made proposals */
	size_t noq, capoq;
	uint64_t *defer;        /* our serials to propose, from dhead on */
	size_t dhead, ndefer, capdefer;
};

static void handle(struct node *n, const struct rf_update *u);
static void flush_round(struct loop *l, void *ctx);
static bool conf_has(const struct rf_conf *c, uint64_t id);
static void drain(struct node *n);
static void run_effects(struct node *n);
static void ntimer_set(struct node *n, struct ntimer *t, uint64_t key, uint64_t mono_ns,
		       loop_timer_fn fn);
static void arm_retry(struct node *n);
static struct session_in session_in(const struct node *n);

/* ---- small helpers ------------------------------------------------------ */

static uint64_t now_ms(void)
{
	return loop_mono_ns() / 1000000u;
}

/* Wall clock now, never behind a time already stamped on a command (ours,
 * stamped by the session, or a leader-made one). */
static uint64_t wall_ns(const struct node *n)
{
	uint64_t now = loop_wall_ns(), last = n->sess ? session_last_time(n->sess) : 0;

	if (last < n->last_time)
		last = n->last_time;
	return now < last ? last : now;
}

static uint64_t stamp_time(struct node *n)
{
	n->last_time = wall_ns(n);
	return n->last_time;
}

/* FNV-1a over the name, then a finalizer (so ids of similar names spread);
 * never 0.  The same on every node, whatever the --cluster order. */
uint64_t node_id_of(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h ? h : 1;
}

/* A failure that makes this node untrustworthy: stop serving.  cluckd
 * sees node_error() after the loop returns, unmounts and exits 1. */
static void die(struct node *n, const char *what, int rc)
{
	if (n->error)
		return;
	n->error = rc < 0 ? rc : -EIO;
	log_err("%s: %s; stopping (the data directory %s is kept as it is)",
		what, strerror(-n->error), n->data_dir);
	/* The holders of our locks must not run on believing they hold
	 * them once we are gone and the cluster frees them: signal them as
	 * on a lost session (fs only reads the replica and signals). */
	session_halt(n->sess);
	if (n->lost_fn && session_id(n->sess) && n->started)
		n->lost_fn(n->lost_ctx, session_id(n->sess));
	loop_stop(n->loop);
}

/* ---- a full data directory ------------------------------------------------ */

static bool no_room(int64_t rc)
{
	return rc == -ENOSPC || rc == -EDQUOT;
}

static void on_disk_timer(struct loop *l, void *ctx);

static void arm_disk(struct node *n)
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

/* Commands that add files, names or bytes: refused while the disk is full. */
static bool adds_data(const struct lc_cmd *cmd)
{
	switch (cmd->type) {
	case LC_CMD_CREATE:
	case LC_CMD_MKDIR:
	case LC_CMD_SYMLINK:
	case LC_CMD_LINK:
	case LC_CMD_WRITE:
		return true;
	case LC_CMD_SETXATTR:
		/* user.cluck.slots and .ttl are settings, not data. */
		return !(cmd->name_len >= 11 && !memcmp(cmd->name, "user.cluck.", 11));
	default:
		return false;
	}
}

static struct known *known_find(struct node *n, uint64_t id)
{
	for (size_t i = 0; i < n->nkn; i++)
		if (n->kn[i].id == id)
			return &n->kn[i];
	return NULL;
}

/* The record of `id`, made when new (NULL when the table is full). */
static struct known *known_get(struct node *n, uint64_t id)
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

static bool conf_has(const struct rf_conf *c, uint64_t id)
{
	for (unsigned i = 0; i < c->n_voters; i++)
		if (c->voters[i] == id)
			return true;
	for (unsigned i = 0; i < c->n_learners; i++)
		if (c->learners[i] == id)
			return true;
	return false;
}

/* ---- engine steps -------------------------------------------------------- */

static int step(struct node *n, struct rf_event *ev)
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

/* Keeps an encoded leader-made command for the end of the current step. */
static void outq_push(struct node *n, uint8_t *buf, size_t len)
{
	if (n->noq == n->capoq) {
		size_t nc = n->capoq ? n->capoq * 2 : 16;
		struct outq *nv = realloc(n->oq, nc * sizeof(*nv));

		if (!nv) {
			free(buf);       /* its timer proposes it again */
			return;
		}
		n->oq = nv;
		n->capoq = nc;
	}
	n->oq[n->noq++] = (struct outq){ buf, len };
}

/* Proposes a leader-made command (origin 0).  Only the leader does; a
 * command asked for while not leading is dropped (its timer asks again). */
static void propose_leader(struct node *n, struct lc_cmd *cmd)
{
	struct rf_event ev = { .type = RF_EV_PROPOSE };
	uint8_t *buf;
	size_t len;

	if (n->role != RF_LEADER)
		return;
	cmd->origin = 0;
	cmd->serial = 0;
	cmd->time_ns = stamp_time(n);
	if (lc_cmd_encode(cmd, &buf, &len) < 0)
		return;          /* ENOMEM: the timer tries again */
	if (n->depth) {
		outq_push(n, buf, len);
		return;
	}
	ev.propose.buf = buf;
	ev.propose.len = (uint32_t)len;
	(void)step(n, &ev);
	free(buf);
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
static void send_smsg(struct node *n, uint64_t to, const struct session_msg *sm)
{
	struct nmsg m = { .kind = sm->kind, .ok = sm->ok, .session = sm->session,
			  .serial = sm->serial, .stamp = sm->stamp, .leader = sm->leader,
			  .body = sm->body, .len = sm->len };

	send_nmsg(n, to, &m);
}

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
static void run_effects(struct node *n)
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

/* ---- timers --------------------------------------------------------------- */

static void ntimer_clear(struct node *n, struct ntimer *t)
{
	if (t->id)
		loop_timer_cancel(n->loop, t->id);
	t->id = t->key = 0;
}

/* Arms t for `key` at mono_ns (key 0, or a stopped node: disarms). */
static void ntimer_set(struct node *n, struct ntimer *t, uint64_t key, uint64_t mono_ns,
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

static void on_tick(struct loop *l, void *ctx)
{
	struct node *n = ctx;
	struct lc_cmd cmd;

	(void)l;
	n->tick_timer.id = n->tick_timer.key = 0;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_TICK;
	propose_leader(n, &cmd);
}

/* Arms the TICK timer for the state's next deadline (wall clock, converted
 * to the monotonic clock the loop runs on); only the leader proposes. */
static void arm_tick(struct node *n)
{
	uint64_t d = n->stopped || n->role != RF_LEADER ? 0 : lc_next_deadline(n->st);
	uint64_t wall = loop_wall_ns(), mono = loop_mono_ns();

	if (d > wall)
		mono += d - wall;
	else
		/* Already due and still pending (a TICK is in flight): do not
		 * spin on it, look again a little later. */
		mono += 20000000u;
	ntimer_set(n, &n->tick_timer, d, mono, on_tick);
}

static void on_lease_timer(struct loop *l, void *ctx);

/* Leader: proposes a SESSION_CLOSE for every session whose lease ran out,
 * then arms the timer for the next one. */
static void check_leases(struct node *n)
{
	uint64_t now = now_ms(), expired[32], at;
	size_t k;

	if (n->role != RF_LEADER || n->stopped)
		return;
	/* Our own session lives as long as we lead. */
	if (session_id(n->sess))
		(void)lease_touch(&n->leases, session_id(n->sess), now);
	k = lease_expired(&n->leases, now, expired, 32);
	for (size_t i = 0; i < k; i++) {
		struct lc_cmd cmd;

		memset(&cmd, 0, sizeof(cmd));
		cmd.type = LC_CMD_SESSION_CLOSE;
		cmd.session = expired[i];
		log_info("session %016llx expired: no contact for %llu ms",
			 (unsigned long long)expired[i], (unsigned long long)n->lease_ms);
		propose_leader(n, &cmd);
	}
	at = lease_next_deadline(&n->leases);
	if (k == 32)
		at = now + 1;
	ntimer_set(n, &n->lease_timer, at, at * 1000000u, on_lease_timer);
}

static void on_lease_timer(struct loop *l, void *ctx)
{
	struct node *n = ctx;

	(void)l;
	n->lease_timer.id = n->lease_timer.key = 0;
	check_leases(n);
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
static void flush_round(struct loop *l, void *ctx)
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
		struct session_in in = session_in(n);

		session_reads_check(n->sess, &in);
		run_effects(n);
	}
}

/* ---- our session ------------------------------------------------------------ */

/* The session's hooks: our wall clock and a fresh random session id. */
static uint64_t session_wall(void *host)
{
	return wall_ns(host);
}

static int session_new_id(void *host, uint64_t *sid)
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
static struct session_in session_in(const struct node *n)
{
	uint64_t now = now_ms();

	return (struct session_in){ .now = now, .applied = n->applied,
				    .lead_ok = n->role == RF_LEADER &&
					       rf_lease_valid(n->raft, now) };
}

/* The leader heard from `session`: true when it may acknowledge it
 * (lockcore/session.h, session_contact_ok). */
static bool contact_ok(struct node *n, uint64_t session)
{
	uint64_t now = now_ms();

	return session_contact_ok(n->st, &n->leases, n->role == RF_LEADER,
				  n->role == RF_LEADER && rf_lease_valid(n->raft, now),
				  session, now);
}

/* Leader: adds members that asked to join as learners and drops members
 * silent for three leases, one change at a time. */
static void manage_members(struct node *n, uint64_t now)
{
	const struct rf_conf *conf = rf_conf(n->raft);
	struct rf_event ev = { .type = RF_EV_CONF };

	if (n->role != RF_LEADER || !conf)
		return;
	for (size_t i = 0; i < n->nkn; i++) {
		struct known *k = &n->kn[i];

		if (!k->wants_join || k->voter)
			continue;
		if (conf_has(conf, k->id)) {
			k->wants_join = false;
			continue;
		}
		ev.conf.op = RF_CONF_ADD_LEARNER;
		ev.conf.id = k->id;
		if (step(n, &ev) == 0) {
			log_info("member %016" PRIx64 " joins as a learner", k->id);
			k->wants_join = false;
			return;
		}
		/* Busy (another change in flight) or full: removing a silent
		 * member below may make room. */
		break;
	}
	for (unsigned i = 0; i < conf->n_learners; i++) {
		uint64_t id = conf->learners[i], last;
		struct known *k = known_find(n, id);

		last = k && k->last_rx_ms > n->leader_since ? k->last_rx_ms : n->leader_since;
		if (now < last + 3 * n->lease_ms)
			continue;
		ev.conf.op = RF_CONF_REMOVE;
		ev.conf.id = id;
		if (step(n, &ev) == 0)
			log_info("member %016" PRIx64 " silent for %llu ms: leaves the configuration",
				 id, (unsigned long long)(now - last));
		return;
	}
}

static void on_node_timer(struct loop *l, void *ctx);

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

static void on_node_timer(struct loop *l, void *ctx)
{
	struct node *n = ctx;
	struct session_in in = session_in(n);
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
	in = session_in(n);
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

/* ---- receiving ------------------------------------------------------------ */

/* A node message: requests of other nodes' sessions are answered by the
 * leader's rules (lockcore/session.c, session_answer); answers to ours go
 * to our session. */
static void on_nmsg(struct node *n, uint64_t from, const struct nmsg *m)
{
	struct session_msg sm = { .kind = m->kind, .ok = m->ok, .session = m->session,
				  .serial = m->serial, .stamp = m->stamp, .leader = m->leader,
				  .body = m->body, .len = m->len };
	struct session_msg a;
	struct known *k;
	uint64_t now = now_ms();
	int r;

	if (m->kind == NM_FWD || m->kind == NM_KA || m->kind == NM_READ) {
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
		r = session_answer(&L, n->st, &n->leases, &sm, now, &a);
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
		return;
	}
	{
		struct session_in in = session_in(n);
		uint64_t old = session_view_lease(n->sess);

		if (session_on_msg(n->sess, from, &sm, &in) == SESSION_LEASE_LOWERED)
			log_err("the cluster runs with --lease %llu ms, we with %llu: our view "
				"of our session follows the shorter; use the same --lease on "
				"every node", (unsigned long long)m->serial,
				(unsigned long long)old);
		run_effects(n);
	}
}

static void on_peer(void *ctx, uint64_t from, uint8_t type, const uint8_t *body,
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

static void on_link(void *ctx, enum link_state st)
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

/* ---- start-up ------------------------------------------------------------ */

/* mkdir -p of the directories above `dir` (the store makes `dir` itself,
 * 0700), so the default /var/lib/cluck/NAME works on a fresh machine. */
static void make_parents(const char *dir)
{
	char *p = strdup(dir);

	if (!p)
		return;
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		(void)mkdir(p, 0755);
		*s = '/';
	}
	free(p);
}

/* True when a stored configuration names one of our voters: a data
 * directory from another cluster (or from a node alone, id 1) does not. */
static bool conf_matches(const struct node *n, const struct rf_conf *c)
{
	for (unsigned i = 0; i < n->n_voters; i++)
		if (conf_has(c, n->voter_ids[i]))
			return true;
	return false;
}

/* The data directory says which cluster it belongs to (DATA_DIR/cluster:
 * "alone", or "voters NAME,NAME,..." sorted): a directory of a node alone
 * or of another cluster must not be merged into this one by Raft.  The
 * file is written at the first start; missing or garbled beside a log it
 * is refused with the command that restores it (never a guess).
 * 0, -EINVAL or -EUCLEAN (logged), -errno. */
static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A cluster file as written by check_identity(): "alone" or "voters "
 * and a non-empty list of names, one line. */
static bool identity_ok(const char *have)
{
	size_t len = strlen(have);

	if (!len || have[len - 1] != '\n')
		return false;
	if (strcmp(have, "alone\n") == 0)
		return true;
	if (strncmp(have, "voters ", 7) != 0 || len < 9)
		return false;
	for (const char *c = have + 7; *c != '\n'; c++)
		if (!(*c == ',' || *c == '.' || *c == '_' || *c == '-' ||
		      (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= 'A' && *c <= 'Z')))
			return false;
	return true;
}

static int check_identity(struct node *n, uint64_t stored)
{
	char want[RF_MAX_VOTERS * 64 + 16], have[sizeof(want)];
	const char *names[RF_MAX_VOTERS];
	size_t len = 0;
	ssize_t got;

	if (!n->clustered) {
		snprintf(want, sizeof(want), "alone\n");
	} else {
		for (unsigned i = 0; i < n->n_voters; i++)
			names[i] = n->voters[i].name;
		qsort(names, n->n_voters, sizeof(names[0]), cmp_name);
		len = (size_t)snprintf(want, sizeof(want), "voters ");
		for (unsigned i = 0; i < n->n_voters; i++)
			len += (size_t)snprintf(want + len, sizeof(want) - len, "%s%s",
						i ? "," : "", names[i]);
		snprintf(want + len, sizeof(want) - len, "\n");
	}
	got = store_get_file(n->store, "cluster", have, sizeof(have));
	if (got == -ENOENT && !stored)
		return store_put_file(n->store, "cluster", want, strlen(want));

	if (got < 0 && got != -ENOENT)
		return (int)got;
	want[strcspn(want, "\n")] = '\0';
	if (got == -ENOENT || !identity_ok(have)) {
		/* Written at the first start, before anything else: gone or
		 * garbled beside a log, it is damage, and only the admin
		 * knows which cluster the directory was made for. */
		char shown[64];

		snprintf(shown, sizeof(shown), "%.40s", have);
		for (char *c = shown; *c; c++)
			if (*c < ' ' || *c > '~')
				*c = '?';
		log_err("the data directory %s holds a log but its file 'cluster' (which "
			"cluster the directory belongs to) is %s%s%s; if this directory was "
			"made by this node %s, restore the file with: printf '%s\\n' > %s/cluster "
			"and start again; otherwise start this node with the options the "
			"directory was made with", n->data_dir,
			got == -ENOENT ? "missing" : "damaged ('", got == -ENOENT ? "" : shown,
			got == -ENOENT ? "" : "')",
			n->clustered ? "in this cluster" : "alone", want, n->data_dir);
		return -EUCLEAN;
	}
	if (strncmp(have, want, strlen(want)) == 0 && have[strlen(want)] == '\n')
		return 0;
	have[strcspn(have, "\n")] = '\0';
	log_err("the data directory %s belongs to %s%s, not to %s: start this node as "
		"the directory was made (%s), or give it another --data-dir%s", n->data_dir,
		strncmp(have, "alone", 5) ? "a cluster of voters " : "a node alone",
		strncmp(have, "alone", 5) ? have + 7 : "",
		n->clustered ? "this --cluster" : "a node alone",
		strncmp(have, "alone", 5) ? "with its --cluster" : "without --cluster",
		n->clustered && n->voter ? " (empty only for a voter of a brand-new cluster)"
					 : "");
	return -EINVAL;
}

/* The transport epoch of this run: larger than every earlier run's (kept
 * in DATA_DIR/epoch, replaced durably) and than the wall clock in ns, so a
 * restarted node's nonces never repeat and peers' replay windows accept
 * it.  0 or -errno. */
static int next_epoch(struct node *n)
{
	char txt[32];
	unsigned long long last = 0;
	uint64_t e = loop_wall_ns();
	ssize_t got = store_get_file(n->store, "epoch", txt, sizeof(txt));
	int len, rc;

	if (got < 0 && got != -ENOENT)
		return (int)got;
	if (got > 0 && sscanf(txt, "%llu", &last) != 1)
		last = 0;
	if (e <= last)
		e = last + 1;
	len = snprintf(txt, sizeof(txt), "%llu\n", (unsigned long long)e);
	rc = store_put_file(n->store, "epoch", txt, (size_t)len);
	if (rc == 0)
		n->epoch = e;
	return rc;
}

/* The one message of a data directory store_open() refused: what is
 * damaged (the store's line names the file, offset and index) and what
 * to do, which depends on where the lost entries can come from. */
static void refuse_damaged(struct node *n, const struct store_damage *d,
			   const char *msg)
{
	char what[256] = "";

	if (n->clustered && n->voter && d->kind != STORE_DAMAGE_STATE) {
		snprintf(what, sizeof(what), "this voter's entries are on the other "
			 "voters: copy %s away, remove its log-* and snap-* files (keep "
			 "state, cluster and epoch) and start it once with --rejoin; it "
			 "then votes only after it caught up (cluckd(8), Repairing a data "
			 "directory)", n->data_dir);
	} else if (n->clustered && n->voter) {
		snprintf(what, sizeof(what), "this voter's vote is lost: with every "
			 "node of the cluster stopped, copy the data directory of the "
			 "leader into %s as cluckd(8) says under Repairing a data directory",
			 n->data_dir);
	} else if (n->clustered) {
		snprintf(what, sizeof(what), "a member holds only a copy of the "
			 "cluster's log: move %s aside and start again; it catches up "
			 "from the leader", n->data_dir);
	} else if (d->kind == STORE_DAMAGE_STATE) {
		snprintf(what, sizeof(what), "no entry is lost; to rebuild the file "
			 "from the log (back up %s first), start once with "
			 "--accept-loss state", n->data_dir);
	} else if (d->lost_from) {
		snprintf(what, sizeof(what), "nobody else holds these entries; to "
			 "accept losing entries %llu to %llu%s (back up %s first), "
			 "start once with --accept-loss %llu",
			 (unsigned long long)d->lost_from,
			 (unsigned long long)d->lost_to,
			 d->kind == STORE_DAMAGE_SNAPSHOT ? " and the damaged snapshot"
							  : "",
			 n->data_dir, (unsigned long long)d->lost_from);
	} else {
		snprintf(what, sizeof(what), "this is not a directory cluckd wrote; "
			 "see cluckd(8), Repairing a data directory");
	}
	log_err("refusing to start: the data directory %s is damaged: %s; %s",
		n->data_dir, msg, what);
}

/* Alone, fencing tokens come from this node's log positions (lockcore:
 * index << LC_TOKEN_SHIFT), so a log that lost its end, even cut cleanly
 * at a record boundary, would hand out tokens again.  The store keeps an
 * index floor: every index up to `mark` was synced once (a log ending
 * below it lost synced entries: refused unless the admin accepts), none
 * above `floor` was.  The log then jumps to the floor with no-op entries,
 * so the next token is above every token ever handed out; a clean restart
 * costs at most STORE_FLOOR_STEP small records.  *jump is how many. */
static int check_floor(struct node *n, uint64_t *jump)
{
	uint64_t mark, floor, last = store_last_index(n->store);
	uint64_t t = store_last_term(n->store), term, vote;
	int r = 0;

	store_floor(n->store, &mark, &floor);
	*jump = 0;
	if (last < mark && n->accept_cut != last + 1) {
		log_err("refusing to start: the data directory %s is damaged: its log "
			"ends at index %llu, but entries up to index %llu were written and "
			"synced (a log segment was deleted or cut short at a record "
			"boundary); nobody else holds entries %llu to %llu; to accept "
			"losing them (back up %s first), start once with --accept-loss %llu",
			n->data_dir, (unsigned long long)last, (unsigned long long)mark,
			(unsigned long long)last + 1, (unsigned long long)mark, n->data_dir,
			(unsigned long long)last + 1);
		return -EUCLEAN;
	}
	if (last >= floor)
		return 0;
	if (last < mark)
		log_warn("data directory %s: entries %llu to %llu lost, as accepted",
			 n->data_dir, (unsigned long long)last + 1, (unsigned long long)mark);
	store_hardstate(n->store, &term, &vote);
	if (!t)
		t = 1;
	if (term < t)
		r = store_set_hardstate(n->store, t, vote);
	for (uint64_t i = last + 1; r == 0 && i <= floor; i++)
		r = store_append(n->store, i, t, RF_ENTRY_NOOP, NULL, 0);
	if (r == 0) {
		int64_t sr = store_sync(n->store);

		r = sr < 0 ? (int)sr : 0;
	}
	if (r < 0) {
		log_err("cannot raise the log of %s to its index floor %llu: %s", n->data_dir,
			(unsigned long long)floor, strerror(-r));
		return r;
	}
	*jump = floor - last;
	log_info("data directory %s: log raised from index %llu to its floor %llu, so "
		 "fencing tokens stay above every one handed out before", n->data_dir,
		 (unsigned long long)last, (unsigned long long)floor);
	return 0;
}

/* Loads what --data-dir holds and starts the engine on it. */
static int load(struct node *n)
{
	struct store_config scfg = { .dir = n->data_dir };
	struct store_snapshot snap = { 0 };
	struct rf_config rc;
	struct rf_conf conf;
	struct rf_event ev = { .type = RF_EV_START };
	struct rf_entry *ents = NULL;
	const struct store_entry *se;
	struct store_damage dmg;
	uint64_t ne = 0, term, vote, jump = 0;
	char msg[STORE_MSG_MAX];
	int r;

	make_parents(n->data_dir);
	if (n->rejoin && !(n->clustered && n->voter)) {
		log_err("--rejoin is for a voter of a cluster (--cluster naming this node)");
		return -EINVAL;
	}
	if (n->rejoin && n->n_voters < 3) {
		/* It votes for nobody until a leader fed it: the other voter
		 * of two (or none of one) is no majority alone, so one
		 * election would leave the cluster without a leader for good. */
		log_err("--rejoin needs a cluster of 3 or more voters (this one has %u): "
			"the others must elect a leader without this voter's vote; see "
			"cluckd(8), Repairing a data directory, for copying a voter's data "
			"directory instead", n->n_voters);
		return -EINVAL;
	}
	if (n->accept_state && n->clustered && n->voter) {
		log_err("--accept-loss state is refused on a voter of a cluster: a voter "
			"that forgets its vote may vote twice in one term; see cluckd(8), "
			"Repairing a data directory");
		return -EINVAL;
	}
	/* Tests' knobs: small segments and a small floor step make every
	 * kind of damage reachable with a few files. */
	if (getenv("CLUCKD_SEGMENT_BYTES"))
		scfg.segment_bytes = strtoull(getenv("CLUCKD_SEGMENT_BYTES"), NULL, 10);
	if (getenv("CLUCKD_FLOOR_STEP"))
		scfg.floor_step = strtoull(getenv("CLUCKD_FLOOR_STEP"), NULL, 10);
	/* The cluster file is written at the first start, after the state
	 * file: beside it, a directory without one is not new but emptied
	 * (a member's may be: it holds only a copy). */
	{
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/cluster", n->data_dir);
		scfg.existing = !(n->clustered && !n->voter) && access(p, F_OK) == 0;
	}
	scfg.accept_cut = n->accept_cut;
	scfg.accept_state = n->accept_state;
	scfg.damage = &dmg;
	r = store_open(&scfg, &n->store, msg, sizeof(msg));
	if (r == -EUCLEAN) {
		refuse_damaged(n, &dmg, msg);
		return r;
	}
	if (r < 0) {
		log_err("cannot open the data directory %s: %s%s%s", n->data_dir,
			r == -EBUSY ? "another cluckd is using it" : strerror(-r),
			msg[0] ? ": " : "", msg);
		return r;
	}
	if (msg[0])
		log_warn("data directory %s: %s", n->data_dir, msg);
	{
		uint64_t cnt = 0, t = 0, v = 0;

		(void)store_loaded(n->store, &cnt);
		store_hardstate(n->store, &t, &v);
		r = check_identity(n, cnt + t);
		if (r < 0)
			return r;
	}
	if (n->clustered && n->voter) {
		/* --rejoin lasts until the engine caught up, across restarts:
		 * a voter restarted (by hand or by its service manager)
		 * before that would vote on the log it is still missing. */
		char b[8];
		ssize_t g = store_get_file(n->store, REJOIN_FILE, b, sizeof(b));

		if (g >= 0 && !n->rejoin)
			log_info("%s/%s: this voter had not caught up since its --rejoin",
				 n->data_dir, REJOIN_FILE);
		if (g >= 0)
			n->rejoin = true;
		else if (g != -ENOENT)
			r = (int)g;
		else if (n->rejoin)
			r = store_put_file(n->store, REJOIN_FILE, "1\n", 2);
		if (r < 0) {
			log_err("cannot keep the rejoin mark in %s: %s", n->data_dir,
				strerror(-r));
			return r;
		}
	}
	if (n->clustered) {
		r = next_epoch(n);
		if (r < 0) {
			log_err("cannot keep the transport epoch in %s: %s", n->data_dir,
				strerror(-r));
			return r;
		}
	}
	store_snapshot_take(n->store, &snap);
	if (snap.index) {
		lc_state_free(n->st);
		n->st = NULL;
		r = lc_state_load(snap.data, snap.len, &n->st);
		if (r == 0)
			r = rf_conf_decode(snap.meta, snap.meta_len, &conf);
		if (r < 0) {
			log_err("the snapshot at index %llu in %s does not load: %s",
				(unsigned long long)snap.index, n->data_dir, strerror(-r));
			goto free_snap;
		}
		n->applied = n->snap_index = snap.index;
		n->snap_len = snap.len;
	}
	if (snap.index && n->clustered && !conf_matches(n, &conf)) {
		log_err("the data directory %s holds the state of another cluster (its "
			"configuration names none of the voters of --cluster); use an empty "
			"--data-dir", n->data_dir);
		r = -EINVAL;
		goto free_snap;
	}
	memset(&rc, 0, sizeof(rc));       /* the defaults set only the timings */
	rf_config_defaults(&rc);
	if (n->clustered) {
		rc.id = n->self_id;
		for (unsigned i = 0; i < n->n_voters; i++)
			rc.voters[i] = n->voter_ids[i];
		rc.n_voters = n->n_voters;
		if (!n->voter) {
			/* A member starts as a learner of its own bootstrap
			 * (the engine wants to find itself); the leader's
			 * configuration replaces it with the first append. */
			rc.learners[0] = n->self_id;
			rc.n_learners = 1;
		}
		if (n->voter && n->rejoin) {
			/* A voter started on a log it lost: no vote, no
			 * campaign until it holds the leader's committed
			 * entries again (lockcore/raft.h, catch_up). */
			rc.catch_up = 1;
			n->rejoining = true;
			log_info("rejoining: this voter grants no vote and never campaigns "
				 "until it holds the leader's committed entries");
		}
		rc.election_timeout_min_ms = ELECTION_MIN_MS;
		rc.election_timeout_max_ms = ELECTION_MAX_MS;
		rc.heartbeat_ms = HEARTBEAT_MS;
		rc.max_clock_drift_ms = DRIFT_MS;
	} else {
		rc.id = SELF_ID;
		rc.voters[0] = SELF_ID;
		rc.n_voters = 1;
		/* Alone, there is nobody to wait for: elect at once. */
		rc.election_timeout_min_ms = 10;
		rc.election_timeout_max_ms = 20;
		rc.heartbeat_ms = 5;
		rc.max_clock_drift_ms = 1;
	}
	if (getrandom(&rc.seed, sizeof(rc.seed), GRND_NONBLOCK) != (ssize_t)sizeof(rc.seed))
		rc.seed = loop_mono_ns();
	r = rf_new(&rc, &n->raft);
	if (r < 0)
		goto free_snap;
	if (!n->clustered) {
		r = check_floor(n, &jump);
		if (r < 0)
			goto free_snap;
	}
	se = store_loaded(n->store, &ne);
	if (ne + jump) {
		uint64_t jt = ne ? se[ne - 1].term : snap.term;

		ents = calloc(ne + jump, sizeof(*ents));
		if (!ents) {
			r = -ENOMEM;
			goto free_snap;
		}
		for (uint64_t i = 0; i < ne; i++)
			ents[i] = (struct rf_entry){ se[i].term, se[i].type, se[i].len, se[i].buf };
		/* The no-op entries check_floor() appended after them. */
		for (uint64_t i = ne; i < ne + jump; i++)
			ents[i] = (struct rf_entry){ jt ? jt : 1, RF_ENTRY_NOOP, 0, NULL };
		ne += jump;
	}
	store_hardstate(n->store, &term, &vote);
	ev.start.term = term;
	ev.start.vote = vote;
	ev.start.snap_index = snap.index;
	ev.start.snap_term = snap.term;
	ev.start.snap_conf = snap.index ? &conf : NULL;
	ev.start.snap_buf = snap.data;
	ev.start.snap_len = snap.len;
	ev.start.entries = ents;
	ev.start.n_entries = ne;
	r = step(n, &ev);
	free(ents);
	if (r < 0) {
		log_err("the log in %s does not load into the engine (%s): its terms do "
			"not fit the state file's term %llu or go down, or an entry is "
			"malformed; this is damage the records' checksums did not catch: "
			"see cluckd(8), Repairing a data directory", n->data_dir,
			strerror(-r), (unsigned long long)term);
		r = -EUCLEAN;
		goto free_snap;
	}
	snap.data = NULL;        /* the engine's now */
	free(snap.meta);
	store_loaded_free(n->store);
	if (ne || snap.index)
		log_info("recovered %s: snapshot at %llu, %llu log entries", n->data_dir,
			 (unsigned long long)snap.index, (unsigned long long)ne);
	return 0;

free_snap:
	free(snap.meta);
	free(snap.data);
	return r < 0 ? r : -EINVAL;
}

static void on_start_timeout(struct loop *l, void *ctx)
{
	(void)ctx;
	loop_stop(l);
}

/* Binds the transport, learns the voters' addresses and starts the link
 * monitor.  0 or -errno (logged). */
static int net_start(struct node *n)
{
	uint8_t cluster[PEER_CLUSTER_BYTES];
	struct peer_config pc = { .listen = (const struct sockaddr *)&n->listen,
				  .listen_len = n->listen_len, .self_id = n->self_id,
				  .epoch = n->epoch, .key = n->has_key ? n->key : NULL,
				  .cluster = cluster };
	const char *names[RF_MAX_VOTERS];
	const struct sockaddr *addrs[RF_MAX_VOTERS];
	socklen_t lens[RF_MAX_VOTERS];
	unsigned na = 0;
	int rc;

	/* The --cluster list (which the `cluster` file pins) names the
	 * cluster: datagrams authenticate only within it. */
	for (unsigned i = 0; i < n->n_voters; i++)
		names[i] = n->voters[i].name;
	rc = peer_cluster_id(names, n->n_voters, cluster);
	if (rc < 0)
		return rc;
	/* The caller reports a failure (one line). */
	rc = peer_new(n->loop, &pc, on_peer, n, &n->peer);
	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < n->n_voters; i++) {
		struct known *k;

		if (n->voter_ids[i] == n->self_id)
			continue;
		rc = peer_set_addr(n->peer, n->voter_ids[i],
				   (const struct sockaddr *)&n->voters[i].addr,
				   n->voters[i].addr_len);
		if (rc < 0)
			return rc;
		k = known_get(n, n->voter_ids[i]);
		if (k)
			k->voter = true;
		addrs[na] = (const struct sockaddr *)&n->voters[i].addr;
		lens[na++] = n->voters[i].addr_len;
	}
	if (na) {
		rc = link_new(n->loop, addrs, lens, na, on_link, n, &n->link);
		if (rc < 0)
			log_warn("no link monitoring (netlink: %s); jeopardy comes from "
				 "timeouts only", strerror(-rc));
		else
			n->link_st = link_state(n->link);
		if (n->link_st == LINK_DOWN)
			session_link(n->sess, SESSION_LINK_DOWN, now_ms());
	}
	return 0;
}

/* ---- public API --------------------------------------------------------- */

/* Creates a node (nothing loaded yet).  NULL and errno (EINVAL, ENOMEM). */
struct node *node_new(struct loop *loop, const struct node_config *cfg)
{
	struct node *n;

	if (!loop || !cfg || !cfg->name || !cfg->name[0] || !cfg->data_dir ||
	    !cfg->data_dir[0] || !cfg->lease_ms || cfg->n_voters > RF_MAX_VOTERS ||
	    (cfg->n_voters && (!cfg->voters || !cfg->listen))) {
		errno = EINVAL;
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		goto fail;
	n->loop = loop;
	n->lease_ms = cfg->lease_ms;
	n->op_timeout_ms = cfg->op_timeout_ms;
	n->name = strdup(cfg->name);
	n->data_dir = strdup(cfg->data_dir);
	n->accept_cut = cfg->accept_cut;
	n->accept_state = cfg->accept_state != 0;
	n->rejoin = cfg->rejoin != 0;
	if (!n->name || !n->data_dir)
		goto free_node;
	n->st = lc_state_new();
	if (!n->st)
		goto free_node;
	lease_table_init(&n->leases, cfg->lease_ms);
	n->snap_every = SNAP_EVERY;
	/* A tuning knob (and the tests' way to see snapshots soon). */
	if (getenv("CLUCKD_SNAPSHOT_EVERY")) {
		unsigned long long v = strtoull(getenv("CLUCKD_SNAPSHOT_EVERY"), NULL, 10);

		if (v)
			n->snap_every = v;
	}
	n->self_id = SELF_ID;
	if (cfg->n_voters) {
		n->clustered = true;
		n->self_id = node_id_of(cfg->name);
		n->n_voters = cfg->n_voters;
		n->voters = calloc(cfg->n_voters, sizeof(*n->voters));
		n->voter_ids = calloc(cfg->n_voters, sizeof(*n->voter_ids));
		n->kn = calloc(MAX_KNOWN, sizeof(*n->kn));
		n->txbuf = malloc(PEER_BODY_MAX);
		if (!n->voters || !n->voter_ids || !n->kn || !n->txbuf)
			goto free_node;
		for (unsigned i = 0; i < cfg->n_voters; i++) {
			n->voters[i] = cfg->voters[i];
			n->voters[i].name = strdup(cfg->voters[i].name);
			if (!n->voters[i].name)
				goto free_node;
			n->voter_ids[i] = node_id_of(cfg->voters[i].name);
			if (n->voter_ids[i] == n->self_id)
				n->voter = true;
			for (unsigned j = 0; j < i; j++)
				if (n->voter_ids[j] == n->voter_ids[i]) {
					errno = EINVAL;   /* a hash clash: rename one */
					goto free_node_errno;
				}
		}
	}
	if (n->clustered) {
		if (cfg->listen_len > sizeof(n->listen)) {
			errno = EINVAL;
			goto free_node_errno;
		}
		memcpy(&n->listen, cfg->listen, cfg->listen_len);
		n->listen_len = cfg->listen_len;
		if (cfg->key) {
			memcpy(n->key, cfg->key, PEER_KEY_BYTES);
			n->has_key = true;
		}
	}
	{
		struct session_config sc = {
			.name = n->name, .lease_ms = cfg->lease_ms,
			.margin_ms = LEASE_MARGIN_MS, .min_lease_ms = MIN_LEASE_MS,
			.op_timeout_ms = cfg->op_timeout_ms, .resend_ms = RESEND_MS,
			.resend_acked_ms = RESEND_ACKED_MS, .entry_max = RF_ENTRY_MAX,
			.self_id = n->self_id, .voters = n->voter_ids,
			.n_voters = n->n_voters, .wall_ns = session_wall,
			.new_id = session_new_id, .host = n };

		n->sess = session_new(&sc);
		if (!n->sess)
			goto free_node;
	}
	return n;

free_node:
	errno = ENOMEM;
free_node_errno:
	{
		int e = errno;

		node_free(n);
		errno = e;
	}
	return NULL;
fail:
	errno = ENOMEM;
	return NULL;
}

/* Registers the lost-session callback (see node.h). */
void node_on_lost(struct node *n, node_lost_fn fn, void *ctx)
{
	n->lost_fn = fn;
	n->lost_ctx = ctx;
}

/* Recovers --data-dir, starts the engine and opens a new session for this
 * run.  Alone it returns once the session is applied; in a cluster it
 * waits for that at most --op-timeout and then returns 0 anyway (requests
 * wait for the session; a cluster whose voters are not all up yet is
 * normal at boot).  0, -EALREADY, -EIO (no randomness), -ETIMEDOUT (alone:
 * no leader within the operation timeout), -EINTR (the loop was stopped:
 * a signal), a store error, or the SESSION_OPEN's own error. */
int node_start(struct node *n)
{
	uint64_t deadline, timer;
	int rc;

	if (n->started)
		return -EALREADY;
	loop_on_idle(n->loop, flush_round, n);
	rc = load(n);
	if (rc == 0) {
		int r = store_reserve(n->store, RESERVE_BYTES);

		if (no_room(r)) {
			n->disk_full = true;
			log_warn("the data directory %s is full: new files and writes get ENOSPC "
				 "until there is room", n->data_dir);
			arm_disk(n);
		} else if (r < 0) {
			log_warn("cannot make the space reserve in %s: %s", n->data_dir,
				 strerror(-r));
		}
	}
	if (rc == 0 && n->clustered)
		rc = net_start(n);
	if (rc < 0)
		return rc;
	rc = session_open(n->sess, now_ms());
	run_effects(n);
	if (rc < 0)
		return rc;
	if (n->clustered)
		ntimer_set(n, &n->node_timer, 1, loop_mono_ns() + TICK_MS * 1000000u,
			   on_node_timer);
	deadline = loop_mono_ns() + (n->op_timeout_ms ? n->op_timeout_ms : 10000u) * 1000000u;
	timer = loop_timer_at(n->loop, deadline, on_start_timeout, n);
	rc = 0;
	while (!session_is_open(n->sess) && !n->error && loop_mono_ns() < deadline) {
		rc = loop_run(n->loop);
		if (rc < 0)
			break;
		if (!session_is_open(n->sess) && !n->error && loop_mono_ns() < deadline) {
			rc = -EINTR;
			break;
		}
	}
	loop_timer_cancel(n->loop, timer);
	n->started = true;
	if (n->error)
		return n->error;
	if (rc == -EINTR || rc < 0)
		return rc;
	if (!session_is_open(n->sess)) {
		if (!n->clustered)
			return -ETIMEDOUT;
		log_warn("no quorum of voters yet; serving, requests wait for the cluster");
		return 0;
	}
	return session_open_status(n->sess);
}

static void on_close_done(void *ctx, const struct lc_completion *c)
{
	struct node *n = ctx;

	(void)c;
	n->close_done = true;
	loop_stop(n->loop);
}

/* A leader silent this long is taken as gone: it sends a heartbeat every
 * HEARTBEAT_MS. */
#define CLOSE_SILENCE_MS  (6u * HEARTBEAT_MS)

/* True when our SESSION_CLOSE cannot commit soon: we lead without a
 * quorum (our Raft lease ran out), or no leader spoke lately.  Waiting
 * then frees nothing: without a quorum nothing is released anyway, and
 * the cluster frees our locks when our lease runs out on its side. */
static bool close_hopeless(struct node *n, uint64_t now)
{
	const struct known *k;

	if (!n->clustered || n->close_done)
		return false;
	if (n->role == RF_LEADER)
		return !rf_lease_valid(n->raft, now);
	if (!n->leader)
		return true;
	k = known_find(n, n->leader);
	return !k || !k->last_rx_ms || now > k->last_rx_ms + CLOSE_SILENCE_MS;
}

static void on_close_check(struct loop *l, void *ctx)
{
	struct node *n = ctx;

	n->close_check = 0;
	if (close_hopeless(n, now_ms())) {
		loop_stop(l);
		return;
	}
	n->close_check = loop_timer_at(l, loop_mono_ns() + HEARTBEAT_MS * 1000000u,
				       on_close_check, n);
}

/* Closes our session (SESSION_CLOSE: frees this node's locks, answers our
 * queued requests, drops our ephemeral files) and waits, a bounded time,
 * for it to be applied; then stops the timers and the transport. */
void node_stop(struct node *n)
{
	if (!n || n->stopped)
		return;
	if (n->started && !n->error && session_id(n->sess) && session_is_open(n->sess)) {
		uint64_t timer;
		int rc = session_close(n->sess, on_close_done, n, now_ms());

		run_effects(n);
		if (rc == 0) {
			/* Alone this commits in the next round; in a cluster
			 * it waits for the leader, at most 2 s, and not at
			 * all without a leader that speaks or a quorum
			 * (close_hopeless): the last voter standing stops at
			 * once. */
			timer = loop_timer_at(n->loop, loop_mono_ns() + 2000000000u,
					      on_start_timeout, n);
			/* The loop's idle hook runs only after a round with
			 * events: sync what the proposal wrote now (alone,
			 * that commits it). */
			flush_round(n->loop, n);
			if (!n->close_done && !close_hopeless(n, now_ms())) {
				n->close_check = loop_timer_at(n->loop, loop_mono_ns() +
							       HEARTBEAT_MS * 1000000u,
							       on_close_check, n);
				(void)loop_run(n->loop);
				loop_timer_cancel(n->loop, n->close_check);
				n->close_check = 0;
			}
			loop_timer_cancel(n->loop, timer);
			flush_round(n->loop, n);
		}
	}
	/* Stopped after: callbacks run above may still propose; from now on
	 * they get -ENOLCK, and whatever is still unanswered is answered. */
	n->stopped = true;
	session_halt(n->sess);
	session_fail_all(n->sess, n->error ? -EIO : -ENOLCK);
	run_effects(n);
	loop_on_idle(n->loop, NULL, NULL);
	ntimer_clear(n, &n->raft_timer);
	ntimer_clear(n, &n->tick_timer);
	ntimer_clear(n, &n->lease_timer);
	ntimer_clear(n, &n->node_timer);
	ntimer_clear(n, &n->disk_timer);
}

/* Frees the node and its state; pending callbacks are never called. */
void node_free(struct node *n)
{
	if (!n)
		return;
	if (!n->stopped)
		loop_on_idle(n->loop, NULL, NULL);
	ntimer_clear(n, &n->raft_timer);
	ntimer_clear(n, &n->tick_timer);
	ntimer_clear(n, &n->lease_timer);
	ntimer_clear(n, &n->node_timer);
	ntimer_clear(n, &n->disk_timer);
	for (size_t i = 0; i < n->noq; i++)
		free(n->oq[i].buf);
	free(n->oq);
	free(n->defer);
	session_free(n->sess);
	link_free(n->link);
	peer_free(n->peer);
	rf_free(n->raft);
	store_close(n->store);
	lease_table_free(&n->leases);
	lc_state_free(n->st);
	if (n->voters)
		for (unsigned i = 0; i < n->n_voters; i++)
			free((char *)n->voters[i].name);
	free(n->voters);
	free(n->voter_ids);
	free(n->kn);
	free(n->txbuf);
	explicit_bzero(n->key, sizeof(n->key));
	free(n->data_dir);
	free(n->name);
	free(n);
}

/* Proposes cmd (see node.h); the answer comes once its entry is durable
 * and applied.  0, -ENOMEM, -E2BIG, -ENOSPC (the disk is full and cmd
 * adds data), -ENOLCK (not started, stopped or failed), -EINVAL (bad
 * arguments). */
int node_propose(struct node *n, struct lc_cmd *cmd, node_done_fn fn,
		 void *ctx, uint64_t *serial)
{
	int rc;

	if (!n || !cmd || !fn)
		return -EINVAL;
	if (!n->started || n->stopped || n->error || !session_id(n->sess))
		return -ENOLCK;
	/* Stopping: what is held may be released, nothing new is taken. */
	if (n->stopping && (cmd->type == LC_CMD_FLOCK || cmd->type == LC_CMD_SETLK) &&
	    cmd->lock_type != LC_UNLCK)
		return -ENOLCK;
	if (n->disk_full && adds_data(cmd))
		return -ENOSPC;
	rc = session_submit(n->sess, cmd, fn, ctx, serial, now_ms());
	run_effects(n);
	return rc;
}

/* The local replica, for read-only queries. */
const struct lc_state *node_state(const struct node *n)
{
	return n->st;
}

/* Our session id (0 before node_start()). */
uint64_t node_session(const struct node *n)
{
	return session_id(n->sess);
}

/* Wall clock now, ns since the epoch, never behind a time already stamped
 * on a command. */
uint64_t node_now_ns(const struct node *n)
{
	return wall_ns(n);
}

/* 0 while healthy, else the -errno that made the node stop. */
int node_error(const struct node *n)
{
	return n->error;
}

/* A clean stop begins (see node.h). */
void node_begin_stop(struct node *n, uint64_t deadline_mono_ns)
{
	n->stopping = true;
	n->stop_deadline_ns = deadline_mono_ns;
}

bool node_stopping(const struct node *n)
{
	return n->stopping;
}

struct holds_walk {
	const struct lc_state *st;
	uint64_t session, count;
};

static int holds_holder(void *ctx, const struct lc_lockinfo *li)
{
	struct holds_walk *w = ctx;

	if (li->who.session == w->session)
		w->count++;
	return 0;
}

static int holds_waiter(void *ctx, const struct lc_lockinfo *li)
{
	(void)ctx;
	(void)li;
	return 1;               /* only holders count */
}

static int holds_ino(void *ctx, uint64_t ino)
{
	struct holds_walk *w = ctx;

	lc_locks(w->st, ino, holds_holder, holds_waiter, w);
	return 0;
}

/* Locks our current session holds (see node.h). */
uint64_t node_holds(const struct node *n)
{
	struct holds_walk w = { .st = n->st, .session = session_id(n->sess) };

	if (!w.session || n->stopped)
		return 0;
	lc_foreach_locked(n->st, holds_ino, &w);
	return w.count;
}

static const char *role_name(const struct node *n, uint8_t role)
{
	switch (role) {
	case RF_LEADER: return "leader";
	case RF_CANDIDATE:
	case RF_PRECANDIDATE: return "candidate";
	default: return n->clustered && !n->voter ? "member" : "follower";
	}
}

/* Name of a voter id ("" when not a voter). */
static const char *voter_name(const struct node *n, uint64_t id)
{
	if (!n->clustered)
		return id == SELF_ID ? n->name : "";
	for (unsigned i = 0; i < n->n_voters; i++)
		if (n->voter_ids[i] == id)
			return n->voters[i].name;
	return "";
}

/* Status of this node for /cluck/status. */
void node_get_status(const struct node *n, struct node_status *st)
{
	struct node *w = (struct node *)n;      /* the lease view's state is sticky */
	uint64_t now = now_ms();
	uint8_t role = n->raft ? rf_role(n->raft) : RF_FOLLOWER;
	uint64_t leader = n->raft ? rf_leader(n->raft) : 0;
	const struct rf_conf *conf = n->raft ? rf_conf(n->raft) : NULL;

	memset(st, 0, sizeof(*st));
	st->name = n->name;
	st->role = role_name(n, role);
	st->term = n->raft ? rf_term(n->raft) : 0;
	st->leader = voter_name(n, leader);
	st->session_id = session_id(n->sess);
	st->applied_index = lc_applied_index(n->st);
	st->sessions_lost = session_lost_count(n->sess);
	st->members = conf ? conf->n_learners : 0;
	st->disk = n->disk_full ? "full" : "ok";
	if (n->stopping && !n->stopped) {
		uint64_t mono = loop_mono_ns();

		st->stopping = 1;
		st->stop_left_ms = n->stop_deadline_ns > mono
			? (n->stop_deadline_ns - mono) / 1000000u : 0;
		st->stop_holds = node_holds(n);
	}
	if (!n->clustered) {
		st->voters_reachable = 1;
		st->voters_total = 1;
		st->quorum = role == RF_LEADER;
		st->session = n->stopped || n->error ? "expired" : "ok";
		st->link = "none";
		st->link_if = "";
		return;
	}
	st->voters_total = n->n_voters;
	for (unsigned i = 0; i < n->n_voters; i++) {
		const struct known *k;

		if (n->voter_ids[i] == n->self_id) {
			st->voters_reachable++;
			continue;
		}
		k = known_find(w, n->voter_ids[i]);
		/* Heard within two keepalive periods (voters send them to
		 * each other), or acknowledged by it lately as leader. */
		if ((k && k->last_rx_ms && now < k->last_rx_ms + n->lease_ms / 2 + 1000) ||
		    (role == RF_LEADER && rf_last_ack_ms(n->raft, n->voter_ids[i]) + ELECTION_MAX_MS > now))
			st->voters_reachable++;
	}
	if (role == RF_LEADER) {
		st->quorum = rf_lease_valid(n->raft, now) ? 1 : 0;
	} else if (leader) {
		const struct known *k = known_find(w, leader);

		st->quorum = k && now < k->last_rx_ms + ELECTION_MAX_MS;
	}
	switch (n->stopped || n->error ? LEASE_EXPIRED : session_state(w->sess, now)) {
	case LEASE_OK: st->session = "ok"; break;
	case LEASE_EXPIRED: st->session = "expired"; break;
	case LEASE_NONE:
		/* A new session not open yet: after a loss, the last one
		 * expired; at start-up, we wait for the cluster. */
		st->session = st->sessions_lost ? "expired" : "jeopardy";
		break;
	default: st->session = "jeopardy"; break;
	}
	st->link = n->link ? link_state_name(n->link_st) : "unknown";
	st->link_if = n->link ? link_ifname(n->link) : "";
	if (n->peer)
		peer_get_stats(n->peer, &st->peer);
}
