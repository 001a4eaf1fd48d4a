/*
 * net/node.c - the engine driver (implements net/node.h): the lock state
 * machine replicated by the Raft engine, persisted in --data-dir.
 *
 * A proposed command is stamped (origin = our session, next serial, wall
 * time never going backwards), encoded and proposed to the Raft engine
 * (lockcore/raft.h); what the engine asks to persist goes to the store
 * (net/store.h) and is made durable once per loop round (group commit: one
 * fdatasync for everything the round appended); committed entries are
 * applied to the local lockcore state in log order and their completions
 * handed to the callbacks registered for our serials.  The leader also
 * proposes the leader-made commands: TICKs when a lockfile ttl runs out and
 * SESSION_CLOSEs for sessions whose lease ran out on its clock (every
 * session known at election gets a fresh lease first: a restart or a
 * leader change never frees a lock by itself).  Snapshots of the state are
 * taken every SNAP_EVERY entries (once the log since the last one is half
 * its size) and the log is compacted behind them.
 *
 * This build runs a cluster of one voter (this node); the peer transport
 * comes with the cluster issue and plugs in where messages are dropped.
 *
 * It must never: block anywhere but in the round's fdatasync, answer a
 * request before its entry is durable and applied, call a callback after
 * its final answer (or at all when node_propose() failed), or keep going
 * after the store failed (the node stops the loop and reports it).
 */
#include "config.h"

#include "net/node.h"
#include "net/loop.h"
#include "net/log.h"
#include "net/store.h"
#include "lockcore/raft.h"
#include "lockcore/lease.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#define SELF_ID      1u              /* our Raft id in a one-voter cluster */
#define SNAP_EVERY   20000u          /* entries between snapshots */
#define SNAP_BYTES   (64u << 20)     /* ... or this many log bytes */

/* Registered callback of one of our requests still waiting for its final
 * answer.  serial 0 marks a free bucket. */
struct pend {
	uint64_t serial;
	node_done_fn fn;
	void *ctx;
};

/* An encoded proposal waiting for a leader. */
struct outq {
	uint8_t *buf;
	size_t len;
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
	uint64_t session;
	uint64_t applied;       /* last log index fed to the state */
	uint64_t serial;        /* last serial of our session */
	uint64_t last_time;     /* last time_ns stamped: time never goes back */
	uint8_t role;
	bool started, stopped, open_done;
	int open_status;

	/* persistence */
	uint64_t want_seq;      /* highest write_seq handed to the store */
	uint64_t synced_seq;    /* ... and reported synced */
	uint64_t snap_index, since_snap_entries, since_snap_bytes;
	uint64_t snap_every;    /* entries between snapshots */
	uint64_t snap_len;      /* size of the latest snapshot */

	/* timers */
	uint64_t raft_timer, raft_at;     /* engine deadline (mono ms) */
	uint64_t tick_timer, tick_at;     /* lockcore deadline (wall ns) */
	uint64_t lease_timer, lease_at;   /* session lease deadline (mono ms) */

	struct outq *oq;        /* proposals made while there was no leader */
	size_t noq, capoq;

	struct pend *pt;        /* open addressing, linear probing */
	size_t pcap, pn;        /* pcap is 0 or a power of two */
};

static void handle(struct node *n, const struct rf_update *u);
static void flush_round(struct loop *l, void *ctx);

/* ---- pending table ------------------------------------------------------ */

static size_t ph(uint64_t serial, size_t cap)
{
	serial ^= serial >> 33;
	serial *= 0xff51afd7ed558ccdull;
	serial ^= serial >> 33;
	return (size_t)serial & (cap - 1);
}

static struct pend *pend_find(struct node *n, uint64_t serial)
{
	if (!n->pcap)
		return NULL;
	for (size_t i = ph(serial, n->pcap);; i = (i + 1) & (n->pcap - 1)) {
		if (n->pt[i].serial == serial)
			return &n->pt[i];
		if (n->pt[i].serial == 0)
			return NULL;
	}
}

/* Makes room for one more entry.  0/-ENOMEM. */
static int pend_reserve(struct node *n)
{
	struct pend *old = n->pt;
	size_t oldcap = n->pcap, cap;

	if ((n->pn + 1) * 4 <= n->pcap * 3)
		return 0;
	cap = oldcap ? oldcap * 2 : 64;
	n->pt = calloc(cap, sizeof(*n->pt));
	if (!n->pt) {
		n->pt = old;
		return -ENOMEM;
	}
	n->pcap = cap;
	for (size_t i = 0; i < oldcap; i++) {
		size_t j;

		if (!old[i].serial)
			continue;
		for (j = ph(old[i].serial, cap); n->pt[j].serial; j = (j + 1) & (cap - 1))
			;
		n->pt[j] = old[i];
	}
	free(old);
	return 0;
}

static void pend_insert(struct node *n, uint64_t serial, node_done_fn fn, void *ctx)
{
	size_t i;

	for (i = ph(serial, n->pcap); n->pt[i].serial; i = (i + 1) & (n->pcap - 1))
		;
	n->pt[i].serial = serial;
	n->pt[i].fn = fn;
	n->pt[i].ctx = ctx;
	n->pn++;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void pend_remove(struct node *n, struct pend *p)
{
	size_t mask = n->pcap - 1, i = (size_t)(p - n->pt), j = i;

	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (!n->pt[j].serial)
			break;
		home = ph(n->pt[j].serial, n->pcap);
		/* Move j back to the hole at i unless its home lies in (i, j]. */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && (home <= i && home > j))) {
			n->pt[i] = n->pt[j];
			i = j;
		}
	}
	memset(&n->pt[i], 0, sizeof(n->pt[i]));
	n->pn--;
}

/* ---- small helpers ------------------------------------------------------ */

static uint64_t now_ms(void)
{
	return loop_mono_ns() / 1000000u;
}

static uint64_t stamp_time(struct node *n)
{
	uint64_t now = loop_wall_ns();

	if (now < n->last_time)
		now = n->last_time;
	n->last_time = now;
	return now;
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
	loop_stop(n->loop);
}

/* Hands every completion of our session to its registered callback.  The
 * entry is looked up afresh for each completion and removed before the
 * callback runs, since a callback may propose (and so grow the table). */
static void dispatch(struct node *n, const struct lc_out *out)
{
	for (size_t i = 0; i < out->n; i++) {
		const struct lc_completion *c = &out->v[i];
		struct pend *p;
		node_done_fn fn;
		void *ctx;

		if (c->origin != n->session || n->session == 0)
			continue;
		p = pend_find(n, c->serial);
		if (!p)
			continue;
		fn = p->fn;
		ctx = p->ctx;
		if (c->status != LC_PENDING)
			pend_remove(n, p);
		fn(ctx, c);
	}
}

/* Gives every request still waiting its final answer `status` (the node
 * is stopping or failed), so fs answers every FUSE request it holds. */
static void fail_pending(struct node *n, int status)
{
	/* Stopped: callbacks cannot add entries.  A removal may shift a
	 * later entry into slot i (look at it again) or, across the wrap,
	 * into a slot already passed (hence the next pass). */
	while (n->pn) {
		for (size_t i = 0; i < n->pcap;) {
			struct pend p = n->pt[i];
			struct lc_completion c = { .origin = n->session, .status = status };

			if (!p.serial) {
				i++;
				continue;
			}
			pend_remove(n, &n->pt[i]);
			c.serial = p.serial;
			p.fn(p.ctx, &c);
		}
	}
}

/* ---- engine steps -------------------------------------------------------- */

static int step(struct node *n, struct rf_event *ev)
{
	struct rf_update u;
	int rc;

	ev->now_ms = now_ms();
	rc = rf_step(n->raft, ev, &u);
	/* Only -EINVAL leaves the engine untouched; every other return
	 * (a refused proposal included) may carry timer effects. */
	if (rc != -EINVAL)
		handle(n, &u);
	return rc;
}

/* Proposes an encoded command if we lead, else keeps it for when we do.
 * 0 or -ENOMEM / -E2BIG. */
static int submit(struct node *n, uint8_t *buf, size_t len)
{
	struct rf_event ev = { .type = RF_EV_PROPOSE };
	int rc;

	if (n->role == RF_LEADER) {
		ev.propose.buf = buf;
		ev.propose.len = (uint32_t)len;
		rc = step(n, &ev);
		if (rc != -EPERM) {
			free(buf);
			return rc;
		}
	}
	if (n->noq == n->capoq) {
		size_t nc = n->capoq ? n->capoq * 2 : 16;
		struct outq *nv = realloc(n->oq, nc * sizeof(*nv));

		if (!nv) {
			free(buf);
			return -ENOMEM;
		}
		n->oq = nv;
		n->capoq = nc;
	}
	n->oq[n->noq++] = (struct outq){ buf, len };
	return 0;
}

/* Proposes what waited for a leader, in order. */
static void flush_outq(struct node *n)
{
	size_t k = 0, i;

	for (i = 0; i < n->noq && n->role == RF_LEADER; i++) {
		struct rf_event ev = { .type = RF_EV_PROPOSE };
		int rc;

		ev.propose.buf = n->oq[i].buf;
		ev.propose.len = (uint32_t)n->oq[i].len;
		rc = step(n, &ev);
		if (rc == -EPERM || rc == -ENOMEM)
			break;
		free(n->oq[i].buf);
	}
	for (; i < n->noq; i++)
		n->oq[k++] = n->oq[i];
	n->noq = k;
}

/* Proposes a leader-made command (origin 0).  Only the leader does. */
static void propose_leader(struct node *n, struct lc_cmd *cmd)
{
	uint8_t *buf;
	size_t len;

	if (n->role != RF_LEADER)
		return;
	cmd->origin = 0;
	cmd->serial = 0;
	cmd->time_ns = stamp_time(n);
	if (lc_cmd_encode(cmd, &buf, &len) < 0)
		return;          /* ENOMEM: the timer tries again */
	(void)submit(n, buf, len);
}

/* ---- timers --------------------------------------------------------------- */

static void on_raft_timer(struct loop *l, void *ctx)
{
	struct node *n = ctx;
	struct rf_event ev = { .type = RF_EV_TIMEOUT };

	(void)l;
	n->raft_timer = 0;
	n->raft_at = 0;
	step(n, &ev);
}

static void arm_raft(struct node *n, uint64_t at_ms)
{
	if (at_ms == n->raft_at && n->raft_timer)
		return;
	if (n->raft_timer)
		loop_timer_cancel(n->loop, n->raft_timer);
	n->raft_timer = 0;
	n->raft_at = 0;
	if (!at_ms || n->stopped)
		return;
	n->raft_timer = loop_timer_at(n->loop, at_ms * 1000000u, on_raft_timer, n);
	if (n->raft_timer)
		n->raft_at = at_ms;
}

static void on_tick(struct loop *l, void *ctx)
{
	struct node *n = ctx;
	struct lc_cmd cmd;

	(void)l;
	n->tick_timer = 0;
	n->tick_at = 0;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_TICK;
	propose_leader(n, &cmd);
}

/* Arms the TICK timer for the state's next deadline (wall clock, converted
 * to the monotonic clock the loop runs on); only the leader proposes. */
static void arm_tick(struct node *n)
{
	uint64_t d = n->stopped || n->role != RF_LEADER ? 0 : lc_next_deadline(n->st);
	uint64_t wall, mono;

	if (d == n->tick_at && (n->tick_timer || d == 0))
		return;
	if (n->tick_timer)
		loop_timer_cancel(n->loop, n->tick_timer);
	n->tick_timer = 0;
	n->tick_at = 0;
	if (d == 0)
		return;
	wall = loop_wall_ns();
	mono = loop_mono_ns();
	if (d > wall)
		mono += d - wall;
	else
		/* Already due and still pending (a TICK is in flight): do not
		 * spin on it, look again a little later. */
		mono += 20000000u;
	n->tick_timer = loop_timer_at(n->loop, mono, on_tick, n);
	if (n->tick_timer)
		n->tick_at = d;
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
	if (n->session)
		(void)lease_touch(&n->leases, n->session, now);
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
	if (at == n->lease_at && n->lease_timer)
		return;
	if (n->lease_timer)
		loop_timer_cancel(n->loop, n->lease_timer);
	n->lease_timer = 0;
	n->lease_at = 0;
	if (!at)
		return;
	/* Our own lease never needs more than a look per lease period. */
	n->lease_timer = loop_timer_at(n->loop, at * 1000000u, on_lease_timer, n);
	if (n->lease_timer)
		n->lease_at = at;
}

static void on_lease_timer(struct loop *l, void *ctx)
{
	struct node *n = ctx;

	(void)l;
	n->lease_timer = 0;
	n->lease_at = 0;
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
	if (cmd.type == LC_CMD_SESSION_OPEN && cmd.session == n->session &&
	    cmd.origin == n->session && !n->open_done) {
		n->open_done = true;
		n->open_status = out.n ? out.v[0].status : -EIO;
	}
	dispatch(n, &out);
	lc_out_free(&out);
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
	int rc = 0;

	if (u->write_seq && !n->error) {
		if (u->flags & RF_UPD_SNAPSHOT)
			install_snapshot(n, u);
		if (u->flags & RF_UPD_HARDSTATE)
			rc = store_set_hardstate(n->store, u->hs_term, u->hs_vote);
		if (rc == 0 && (u->flags & RF_UPD_ENTRIES)) {
			rc = store_truncate(n->store, u->first_index);
			for (size_t i = 0; rc == 0 && i < u->n_entries; i++) {
				const struct rf_entry *e = &u->entries[i];

				rc = store_append(n->store, u->first_index + i, e->term,
						  e->type, e->buf, e->len);
			}
		}
		if (rc < 0)
			die(n, "cannot write the log", rc);
		n->want_seq = u->write_seq;
	}
	/* Messages: a one-voter cluster has no peers to send to. */
	for (size_t i = 0; i < u->n_committed && !n->error; i++)
		apply_entry(n, u->commit_first + i, &u->committed[i]);
	n->role = u->role;
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
		log_info("leading term %llu", (unsigned long long)u->term);
		arm_tick(n);
		check_leases(n);
		flush_outq(n);
	}
}

/* The loop's idle hook: one fdatasync for everything this round wrote,
 * then the engine learns it is durable (which commits and applies). */
static void flush_round(struct loop *l, void *ctx)
{
	struct node *n = ctx;

	(void)l;
	/* Proposals kept back by a failed allocation get another chance. */
	if (n->noq && n->role == RF_LEADER)
		flush_outq(n);
	for (int round = 0; round < 8 && n->want_seq > n->synced_seq && !n->error; round++) {
		struct rf_event ev = { .type = RF_EV_PERSISTED };
		uint64_t seq = n->want_seq;
		int64_t rc = store_sync(n->store);

		if (rc < 0) {
			die(n, "cannot sync the log", (int)rc);
			return;
		}
		n->synced_seq = seq;
		ev.persisted.seq = seq;
		step(n, &ev);
	}
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
	uint64_t ne = 0, term, vote;
	char msg[STORE_MSG_MAX];
	int r;

	make_parents(n->data_dir);
	r = store_open(&scfg, &n->store, msg, sizeof(msg));
	if (r < 0) {
		log_err("cannot open the data directory %s: %s%s%s", n->data_dir,
			r == -EBUSY ? "another cluckd is using it" : strerror(-r),
			msg[0] ? ": " : "", msg);
		return r;
	}
	if (msg[0])
		log_warn("data directory %s: %s", n->data_dir, msg);
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
	rf_config_defaults(&rc);
	rc.id = SELF_ID;
	rc.voters[0] = SELF_ID;
	rc.n_voters = 1;
	/* Alone, there is nobody to wait for: elect at once. */
	rc.election_timeout_min_ms = 10;
	rc.election_timeout_max_ms = 20;
	rc.heartbeat_ms = 5;
	rc.max_clock_drift_ms = 1;
	if (getrandom(&rc.seed, sizeof(rc.seed), GRND_NONBLOCK) != (ssize_t)sizeof(rc.seed))
		rc.seed = loop_mono_ns();
	r = rf_new(&rc, &n->raft);
	if (r < 0)
		goto free_snap;
	se = store_loaded(n->store, &ne);
	if (ne) {
		ents = calloc(ne, sizeof(*ents));
		if (!ents) {
			r = -ENOMEM;
			goto free_snap;
		}
		for (uint64_t i = 0; i < ne; i++)
			ents[i] = (struct rf_entry){ se[i].term, se[i].type, se[i].len, se[i].buf };
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
		log_err("the log in %s does not load into the engine: %s", n->data_dir,
			strerror(-r));
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

/* Our SESSION_OPEN is applied: node_start()'s loop can return. */
static void on_own_open(void *ctx, const struct lc_completion *c)
{
	struct node *n = ctx;

	(void)c;
	loop_stop(n->loop);
}

/* ---- public API --------------------------------------------------------- */

/* Creates a node (nothing loaded yet).  NULL and errno (EINVAL, ENOMEM). */
struct node *node_new(struct loop *loop, const struct node_config *cfg)
{
	struct node *n;

	if (!loop || !cfg || !cfg->name || !cfg->name[0] || !cfg->data_dir ||
	    !cfg->data_dir[0] || !cfg->lease_ms) {
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
	return n;

free_node:
	free(n->data_dir);
	free(n->name);
	free(n);
fail:
	errno = ENOMEM;
	return NULL;
}

/* Recovers --data-dir, starts the engine and opens a new session for this
 * run, returning once it is applied (running the loop meanwhile).  0,
 * -EALREADY, -EIO (no randomness), -ETIMEDOUT (no leader within the
 * operation timeout), -EINTR (the loop was stopped: a signal), a store
 * error, or the SESSION_OPEN's own error. */
int node_start(struct node *n)
{
	struct lc_cmd cmd;
	uint64_t sid = 0, deadline, timer;
	uint8_t *buf;
	size_t len;
	int rc;

	if (n->started)
		return -EALREADY;
	while (sid == 0) {
		ssize_t r = getrandom(&sid, sizeof(sid), 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r != (ssize_t)sizeof(sid))
			return -EIO;
	}
	loop_on_idle(n->loop, flush_round, n);
	rc = load(n);
	if (rc < 0)
		return rc;
	n->session = sid;
	n->started = true;
	memset(&cmd, 0, sizeof(cmd));
	cmd.type = LC_CMD_SESSION_OPEN;
	cmd.origin = sid;
	cmd.serial = ++n->serial;
	cmd.time_ns = stamp_time(n);
	cmd.session = sid;
	cmd.data = n->name;
	cmd.data_len = (uint32_t)strlen(n->name);
	rc = pend_reserve(n);
	if (rc == 0)
		rc = lc_cmd_encode(&cmd, &buf, &len);
	if (rc == 0) {
		pend_insert(n, cmd.serial, on_own_open, n);
		rc = submit(n, buf, len);
	}
	if (rc < 0)
		return rc;
	deadline = loop_mono_ns() + (n->op_timeout_ms ? n->op_timeout_ms : 10000u) * 1000000u;
	timer = loop_timer_at(n->loop, deadline, on_start_timeout, n);
	while (!n->open_done && !n->error && loop_mono_ns() < deadline) {
		rc = loop_run(n->loop);
		if (rc < 0)
			break;
		if (!n->open_done && !n->error && loop_mono_ns() < deadline) {
			rc = -EINTR;
			break;
		}
	}
	loop_timer_cancel(n->loop, timer);
	if (n->error)
		return n->error;
	if (!n->open_done)
		return rc < 0 ? rc : -ETIMEDOUT;
	return n->open_status;
}

/* Closes our session (SESSION_CLOSE: frees this node's locks, answers our
 * queued requests, drops our ephemeral files) and waits, a bounded time,
 * for it to be applied; then stops the timers. */
void node_stop(struct node *n)
{
	struct lc_cmd cmd;
	uint64_t deadline;

	if (!n || n->stopped)
		return;
	if (n->started && !n->error && n->session) {
		memset(&cmd, 0, sizeof(cmd));
		cmd.type = LC_CMD_SESSION_CLOSE;
		cmd.session = n->session;
		propose_leader(n, &cmd);
		/* A one-voter cluster commits on the next sync; nobody else
		 * is waited for. */
		deadline = loop_mono_ns() + 2000000000u;
		while (n->want_seq > n->synced_seq && !n->error &&
		       loop_mono_ns() < deadline) {
			flush_round(n->loop, n);
		}
	}
	/* Stopped after: callbacks run above may still propose; from now on
	 * they get -ENOLCK, and whatever is still unanswered is answered. */
	n->stopped = true;
	fail_pending(n, n->error ? -EIO : -ENOLCK);
	loop_on_idle(n->loop, NULL, NULL);
	arm_raft(n, 0);
	if (n->tick_timer)
		loop_timer_cancel(n->loop, n->tick_timer);
	if (n->lease_timer)
		loop_timer_cancel(n->loop, n->lease_timer);
	n->tick_timer = n->lease_timer = 0;
	n->tick_at = n->lease_at = 0;
}

/* Frees the node and its state; pending callbacks are never called. */
void node_free(struct node *n)
{
	if (!n)
		return;
	if (!n->stopped)
		loop_on_idle(n->loop, NULL, NULL);
	if (n->raft_timer)
		loop_timer_cancel(n->loop, n->raft_timer);
	if (n->tick_timer)
		loop_timer_cancel(n->loop, n->tick_timer);
	if (n->lease_timer)
		loop_timer_cancel(n->loop, n->lease_timer);
	for (size_t i = 0; i < n->noq; i++)
		free(n->oq[i].buf);
	free(n->oq);
	rf_free(n->raft);
	store_close(n->store);
	lease_table_free(&n->leases);
	lc_state_free(n->st);
	free(n->pt);
	free(n->data_dir);
	free(n->name);
	free(n);
}

/* Proposes cmd (see node.h); the answer comes once its entry is durable
 * and applied.  0, -ENOMEM, -E2BIG, -ENOLCK (not started, stopped or
 * failed), -EINVAL (bad arguments). */
int node_propose(struct node *n, struct lc_cmd *cmd, node_done_fn fn,
		 void *ctx, uint64_t *serial)
{
	uint8_t *buf;
	size_t len;
	uint64_t s;
	int rc;

	if (!n || !cmd || !fn)
		return -EINVAL;
	if (!n->started || n->stopped || n->error)
		return -ENOLCK;
	if (pend_reserve(n) < 0)
		return -ENOMEM;
	s = n->serial + 1;
	cmd->origin = n->session;
	cmd->serial = s;
	cmd->time_ns = stamp_time(n);
	rc = lc_cmd_encode(cmd, &buf, &len);
	if (rc < 0)
		return rc;
	if (len > RF_ENTRY_MAX) {
		free(buf);
		return -E2BIG;
	}
	n->serial = s;
	if (serial)
		*serial = s;
	pend_insert(n, s, fn, ctx);
	rc = submit(n, buf, len);
	if (rc < 0) {
		struct pend *p = pend_find(n, s);

		if (p)
			pend_remove(n, p);
		return rc;
	}
	return 0;
}

/* The local replica, for read-only queries. */
const struct lc_state *node_state(const struct node *n)
{
	return n->st;
}

/* Our session id (0 before node_start()). */
uint64_t node_session(const struct node *n)
{
	return n->session;
}

/* Wall clock now, ns since the epoch, never behind a time already stamped
 * on a command. */
uint64_t node_now_ns(const struct node *n)
{
	uint64_t now = loop_wall_ns();

	return now < n->last_time ? n->last_time : now;
}

/* 0 while healthy, else the -errno that made the node stop. */
int node_error(const struct node *n)
{
	return n->error;
}

static const char *role_name(uint8_t role)
{
	switch (role) {
	case RF_LEADER: return "leader";
	case RF_CANDIDATE:
	case RF_PRECANDIDATE: return "candidate";
	default: return "follower";
	}
}

/* Status of this node for /cluck/status. */
void node_get_status(const struct node *n, struct node_status *st)
{
	bool lead = n->raft && rf_role(n->raft) == RF_LEADER;

	memset(st, 0, sizeof(*st));
	st->name = n->name;
	st->role = n->raft ? role_name(rf_role(n->raft)) : "follower";
	st->term = n->raft ? rf_term(n->raft) : 0;
	st->leader = lead ? n->name : "";
	st->voters_reachable = 1;
	st->voters_total = 1;
	st->quorum = lead;
	st->session = n->stopped || n->error ? "expired" : "ok";
	st->session_id = n->session;
	st->applied_index = lc_applied_index(n->st);
}
