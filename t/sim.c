/*
 * t/sim.c - the deterministic cluster simulator (DESIGN.md principle 2).
 *
 * From one seed it runs 1..7 Raft voters (lockcore/raft.h), each applying
 * the committed log to its own lockcore state (lc.h), over a fake network
 * that delays, drops, duplicates, reorders and partitions, on fake disks
 * that lose unsynced writes when a node crashes, with pauses, bounded
 * clock drift.  Each node has a session with the cluster (lockcore/lease.h):
 * it opens one when it starts, keeps it alive with keepalives every
 * lease / 4, and forwards its clients' requests to the leader as messages
 * on the same faulty network (origin = its session, serials it assigns,
 * retried with the same (origin, serial) after a timeout); it answers its
 * clients only from its own applied log.  The leader keeps a lease table
 * and proposes SESSION_CLOSE for sessions it has not heard from for a
 * lease; a node whose own, shorter view expired tells its clients their
 * locks are lost and opens a new session.  At every step no two clients
 * whose node's lease view is valid believe they hold conflicting locks.
 * Besides the 1..7 voters a seed may run 0..2 members (--members M, up to
 * 3): learners that apply the log and have sessions and clients like the
 * voters.  Every node snapshots its state every snap_k applied entries
 * (snap_k drawn per seed) onto its fake disk, compacting its disk log; a
 * restart starts from that snapshot and the rest of the log, and a node
 * too far behind installs the leader's snapshot, whose state must equal
 * the reference at its index.  Reads ("who holds file f") are asked at the
 * leader with RF_EV_READ; the read index must cover every entry applied
 * anywhere before the read was asked, and the answer must be the
 * reference's.  With --conf-faults the leader also promotes, demotes and
 * removes nodes (a removed node comes back as a member with a fresh disk).
 * With --rejoin-faults a crashed voter sometimes loses its log and
 * snapshot but keeps its term and vote, and restarts with catch_up (what
 * cluckd --rejoin does), one voter at a time.
 * Every run ends with invariant checks; a violation prints the seed, the
 * last events and the replay command, and exits 1.  Every seed's lock
 * history (flock, POSIX ranges, the semaphore with its slot changes,
 * lockfiles, session ends; with simulated call and return times) must
 * also be linearizable (t/linz.h).
 *
 * It must never: read the real clock, use unseeded randomness, or let
 * anything but the seed decide what happens (a failing seed must replay
 * exactly).  Not a product: the driver of cluckd lives in net/.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lc.h"
#include "lockcore/lease.h"
#include "lockcore/raft.h"
#include "t/lib/cluster.h"
#include "t/linz.h"

#define MAXN       10              /* voters (<= RF_MAX_VOTERS) and members */
#define MAXM       3
#define MAXC       64
#define NFILES     4
#define TRACE_KEEP 200
#define TRACE_LEN  200
#define ADMIN_SESSION 1000u

/* Timing of the simulated cluster (ms).  Clock offsets stay within
 * [0, CLOCK_DRIFT] so two clocks disagree on an interval by at most
 * 2 * CLOCK_DRIFT < the engine's max_clock_drift_ms. */
#define ELECT_MIN   150u
#define ELECT_MAX   300u
#define HEARTBEAT   30u
#define CFG_DRIFT   30u
#define CLOCK_DRIFT 10u
#define LIVE_BOUND  20000u              /* after heal, everything completes */
#define REQ_TIMEOUT 400u              /* a node re-forwards a request after this */
#define LEASE_MS    1000u             /* node session lease in random seeds */
#define LEASE_MARGIN 50u              /* > 2 * CLOCK_DRIFT + NODE_TICK: lease.h */
#define NODE_TICK   5u                /* the node's timer granularity */
#define SESS_BASE   2001u             /* first node session id */
#define LINZ_BUDGET 2000000u            /* search steps per seed's history */

/* ---- world ------------------------------------------------------------- */

enum { E_MSG = 1, E_TICK, E_SYNC, E_CLIENT, E_FAULT, E_RESTART, E_HEAL, E_UNPAUSE,
       E_SMSG, E_NODE, E_READ, E_REMOVE, E_READD };

/* A read ("who holds file f") asked at a leader with RF_EV_READ. */
struct rdreq {
	int node, file;
	uint64_t min_index;                /* every index applied anywhere before it
	                                      was asked: the read must see them */
	uint64_t index;                    /* its read index once ready */
	bool ready, done;
};

/* A request a node forwards for one of its clients (client -1: the
 * node's own SESSION_OPEN), until its completion is applied locally. */
struct fwd {
	uint64_t session, serial;
	int client;
	uint8_t *buf;
	size_t len;
	uint64_t sent_ms;                  /* node-local time of the last send */
	bool queued;                       /* LC_PENDING seen: it is in the log */
	unsigned sends;
};

/* Node-level messages (not Raft): forwards, keepalives and their acks. */
enum { SM_FWD = 1, SM_FWD_ACK, SM_KA, SM_KA_ACK };
struct smsg {
	uint8_t kind, ok;
	uint64_t session, serial, stamp, leader;
};

struct node {
	bool up;
	struct raft *r;
	struct lc_state *sm;
	uint64_t epoch, tick_gen;
	struct cl_disk disk;               /* what survives a crash */
	struct rf_conf boot;               /* its engine's bootstrap configuration */
	uint64_t applied;                  /* its state machine is at this index */
	struct rf_conf aconf;              /* the configuration applied up to there */
	bool sync_sched;
	uint64_t paused_until;
	uint64_t clock_off, last_local;
	uint8_t role;
	/* its session, as the node sees it */
	uint64_t sess, sserial;            /* current session (0: none), last serial */
	uint64_t open_sent;                /* local first send of its SESSION_OPEN */
	bool sess_open;                    /* SESSION_OPEN applied here */
	struct lease_view view;
	uint64_t next_ka;                  /* local time of the next keepalive */
	uint64_t node_gen;
	struct fwd *fw;
	size_t nfw, capfw;
	/* the leader's lease table, valid while tab_on */
	struct lease_table tab;
	bool tab_on;
	uint64_t last_leader;
	uint64_t hint;                     /* the last leader heard of (0: none) */
	bool removed;                      /* out of the configuration: down, disk gone */
	bool readding;                     /* back with a fresh disk, not yet in a
	                                      committed configuration */
	bool rejoin;                       /* lost its log: starts with catch_up
	                                      until the engine caught up (kept
	                                      on its disk across crashes) */
	uint64_t close_serial;
};

/* Every node session ever opened in this run. */
struct sreg {
	int node;
	bool gave_up, closed;
	uint64_t closed_at;                /* first commit of its SESSION_CLOSE */
	uint64_t closed_idx;               /* ... its log index */
	struct ans *ans;                   /* by serial */
	size_t nans;
};

enum { C_IDLE = 0, C_WAIT, C_PENDING, C_DONE };
enum { H_NONE = 0, H_FLOCK, H_POSIX, H_FILE };

struct client {
	uint64_t serial;                   /* its node's serial for the request */
	uint64_t req_sess;                 /* ... and the session it went under */
	int node, state;                   /* attached to one node for good */
	uint64_t gen;
	uint64_t acqs;                     /* acquisitions: owner ids */
	struct lc_cmd cmd;                 /* current request */
	int ops_left;
	bool opened, scripted;
	int hold;                          /* H_*: what it believes it holds */
	uint64_t hold_ino, hold_owner, hold_sess, hold_start, hold_end, hold_token;
	uint64_t cur_owner;                /* owner id of the current request */
	uint8_t hold_type;
	int lost;                          /* times it was told its lock was lost */
	uint64_t lost_at;
	char hold_name[8];
	uint64_t sent_at;
	bool lz_on;                        /* the current request goes into the history */
	struct linz_op lz;                 /* ... as this op (out and ret still open) */
	int answers;                       /* final answers received */
	int last_status;
	uint64_t last_token;
};

struct ans {
	bool final; int status; uint64_t token; unsigned applied;
	uint64_t idx, qidx;                /* log index of the final answer, of the
	                                      first apply */
};

/* A lost lock's release in the history: its return is the commit of the
 * session's SESSION_CLOSE, or never. */
struct lostop { uint64_t session; struct linz_op op; };

static struct sim {
	uint64_t seed;
	struct cl_rng rng;
	int n, nclients;
	int voters_arg;                    /* --voters as given (0: the seed picks) */
	int members_arg;                   /* --members as given (-1: the seed picks) */
	int nv;                            /* voters at the start: ids 1..nv; members
	                                      (learners) nv+1..n */
	uint64_t now;
	struct cl_queue q;                 /* events of the run */
	struct node nodes[MAXN];
	struct client cl[MAXC];
	bool block[MAXN][MAXN];
	unsigned drop_pct, dup_pct;
	bool faults_on;
	uint64_t fault_lo, fault_hi;       /* ms between faults */
	uint64_t heal_at;
	uint32_t brk;
	bool brk_grant_twice;              /* sim-side break: fake one try-acquire's answer */
	bool brk_no_grace;                 /* a new leader keeps no grace */
	bool trace_all;
	const char *brk_name;
	const char *scenario;
	/* what the cluster committed, as observed, and the reference state */
	struct cl_dent *gc;
	uint64_t *gc_term;                 /* lowest term a node had when it applied it */
	size_t gcn, gccap;
	struct lc_state *ref;
	uint64_t *ref_hash;
	uint64_t *ref_who;                 /* per index, NFILES hashes of the holders */
	size_t ref_hash_cap;
	struct sreg *sr;
	size_t nsr, capsr;
	struct lostop *lost;
	size_t nlost, caplost;
	uint64_t lease_ms;
	int measuring;                     /* 1: flock on 3 files, 2: own POSIX range */
	uint64_t pairs;
	uint64_t files[NFILES];
	uint64_t last_token[NFILES];
	uint64_t *term_leader;
	size_t term_cap;
	/* the flock history of this seed (NULL outside run_seed) */
	struct linz *lz;
	struct linz_op *lzv;               /* ... its ops, handed over at the end */
	size_t lzn, lzcap;
	/* metrics */
	uint64_t msgs, fmsgs, kmsgs, syncs, cmds, events, max_leaders, expiries, losts;
	uint64_t snap_k;                   /* a node snapshots every snap_k applied (0: never) */
	uint64_t snaps, installs, restores;
	struct rf_conf cconf;              /* the latest committed configuration */
	bool conf_faults;                  /* --conf-faults: membership changes as faults
	                                      (off by default: it changes every
	                                      seed's run) */
	uint64_t conf_ok[5], conf_busy, removals, readds;
	bool rejoin_faults;                /* --rejoin-faults: voters lose their log */
	uint64_t rejoins;
	/* reads of this seed, by ctx - 1 */
	struct rdreq *rd;
	size_t nrd, caprd;
	uint64_t rd_asked, rd_lease, rd_round, rd_served, rd_failed, rd_refused;
	uint64_t lz_checked, lz_linear, lz_unknown, lz_ops;
	uint64_t lz_kind[5];               /* ops checked: flock, POSIX, semaphore,
	                                      lockfile, release-all */
	/* trace ring */
	char trace[TRACE_KEEP][TRACE_LEN];
	unsigned tpos, tcount;
} S;

/* Scenario hooks: drop chosen messages; act the instant a node leads
 * (before its first messages leave). */
static bool (*drop_hook)(int from, const struct rf_msg *m);
static bool (*sdrop_hook)(int from, int to, const struct smsg *m);
static void (*leader_hook)(int node);

static void tr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tr(const char *fmt, ...)
{
	char *line = S.trace[S.tpos];
	va_list ap;
	int k;

	k = snprintf(line, TRACE_LEN, "%6llu ", (unsigned long long)S.now);
	va_start(ap, fmt);
	vsnprintf(line + k, TRACE_LEN - (size_t)k, fmt, ap);
	va_end(ap);
	if (S.trace_all)
		printf("%s\n", line);
	S.tpos = (S.tpos + 1) % TRACE_KEEP;
	if (S.tcount < TRACE_KEEP)
		S.tcount++;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;

	printf("VIOLATION seed %llu at t=%llu ms: ", (unsigned long long)S.seed,
	       (unsigned long long)S.now);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!S.trace_all) {
		printf("--- last %u events ---\n", S.tcount);
		for (unsigned i = 0; i < S.tcount; i++)
			printf("%s\n", S.trace[(S.tpos + TRACE_KEEP - S.tcount + i) %
					       TRACE_KEEP]);
	}
	/* --voters only when it was given: naming the count the seed picked
	 * would skip that draw and replay a different run. */
	printf("replay: t/sim --seed %llu", (unsigned long long)S.seed);
	if (S.voters_arg)
		printf(" --voters %d", S.voters_arg);
	if (S.conf_faults)
		printf(" --conf-faults");
	if (S.rejoin_faults)
		printf(" --rejoin-faults");
	if (S.members_arg >= 0 && !S.scenario)
		printf(" --members %d", S.members_arg);
	printf("%s%s%s%s --trace\n", S.brk_name ? " --break=" : "",
	       S.brk_name ? S.brk_name : "", S.scenario ? " --scenario=" : "",
	       S.scenario ? S.scenario : "");
	fflush(stdout);
	exit(1);
}

/* ---- events ---------------------------------------------------------------- */

static void at(uint64_t t, int type, int node, int a, uint64_t gen)
{
	cl_push(&S.q, (struct cl_ev){ .t = t, .type = type, .node = node, .a = a, .gen = gen });
}

/* ---- clocks ------------------------------------------------------------- */

static uint64_t local(int i)
{
	struct node *nd = &S.nodes[i];
	uint64_t l = S.now + nd->clock_off;

	if (l < nd->last_local)
		l = nd->last_local;    /* a clock slewed back never goes back */
	nd->last_local = l;
	return l;
}

/* ---- the lock state machine side ---------------------------------------- */

struct holders { struct lc_lockinfo h[64]; unsigned n; };

static int collect(void *ctx, const struct lc_lockinfo *li)
{
	struct holders *hs = ctx;

	if (hs->n < 64)
		hs->h[hs->n++] = *li;
	return 0;
}

/* Never two conflicting holders of one file in one state. */
static unsigned sem_sh_before;

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
static uint64_t who_holds(struct lc_state *sm, int f)
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

static struct sreg *sreg_of(uint64_t session)
{
	if (session >= SESS_BASE && session - SESS_BASE < S.nsr)
		return &S.sr[session - SESS_BASE];
	return NULL;
}

/* What the log answered (origin, serial), for node sessions. */
static struct ans *ans_of(uint64_t session, uint64_t serial)
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

static void session_closed(uint64_t session, uint64_t idx);

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
			session_closed(cmd.session, idx);
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
	}
	S.ref_hash[idx] = lc_state_hash(S.ref);
	for (int f = 0; f < NFILES; f++)
		S.ref_who[idx * NFILES + (uint64_t)f] = who_holds(S.ref, f);
}

static bool dent_eq(const struct cl_dent *a, const struct rf_entry *b)
{
	return a->term == b->term && a->type == b->type && a->len == b->len &&
	       (!a->len || !memcmp(a->buf, b->buf, a->len));
}

static bool conf_has(const struct rf_conf *c, uint64_t id, bool voters_only)
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

static void node_completion(int i, const struct lc_completion *cp);
static void node_session_gone(int i, uint64_t session);
static int leader_node(void);

static void node_apply(int i, uint64_t idx, const struct rf_entry *e)
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
		if (lc_cmd_decode(e->buf, e->len, &cmd) ||
		    lc_apply(nd->sm, idx, &cmd, &out) < 0)
			fail("node %d cannot apply %llu", i + 1, (unsigned long long)idx);
		/* The leader's table follows the sessions of the state. */
		if (nd->tab_on && cmd.type == LC_CMD_SESSION_OPEN && !out.v[0].status &&
		    lease_open(&nd->tab, cmd.session, local(i)))
			fail("n%d: lease_open failed", i + 1);
		if (nd->tab_on && cmd.type == LC_CMD_SESSION_CLOSE)
			lease_forget(&nd->tab, cmd.session);
		for (size_t k = 0; k < out.n; k++)
			node_completion(i, &out.v[k]);
		if (cmd.type == LC_CMD_SESSION_CLOSE && !out.v[0].status)
			node_session_gone(i, cmd.session);
		lc_out_free(&out);
		check_holders(nd->sm, "node");
	}
	if (lc_state_hash(nd->sm) != S.ref_hash[idx])
		fail("node %d state hash differs from the reference at index %llu",
		     i + 1, (unsigned long long)idx);
}

/* ---- driving one engine -------------------------------------------------- */

static void net_send(int from, const struct rf_msg *m);

static void check_leader_complete(int i)
{
	struct raft *r = S.nodes[i].r;

	/* Entries committed in an earlier term than this leader's. */
	for (size_t k = 1; k <= S.gcn; k++) {
		const struct rf_entry *e = rf_entry_at(r, k);

		if (S.gc_term[k - 1] >= rf_term(r) || k < rf_first_index(r))
			continue;        /* a snapshot holds the compacted ones */
		if (!e || !dent_eq(&S.gc[k - 1], e))
			fail("leader %d of term %llu lacks committed entry %zu", i + 1,
			     (unsigned long long)rf_term(r), k);
	}
}

static uint64_t rf_leader_prev(const struct node *nd)
{
	return nd->last_leader;
}

/* Node i's requests that the log answered (or queued, or made moot by a
 * session close) at or below idx: a snapshot brought their effect without
 * their entries. */
static void node_catch_up(int i, uint64_t idx)
{
	struct node *nd = &S.nodes[i];
	bool again = true;

	while (again) {
		again = false;
		for (size_t k = 0; k < nd->nfw; k++) {
			struct fwd *f = &nd->fw[k];
			struct ans *a = ans_of(f->session, f->serial);
			struct sreg *r = sreg_of(f->session);

			if (a && a->final && a->idx && a->idx <= idx) {
				struct lc_completion cp = { .origin = f->session,
							    .serial = f->serial,
							    .status = a->status,
							    .token = a->token };

				node_completion(i, &cp);
				again = true;
				break;
			}
			if (r && r->closed && r->closed_idx <= idx && f->session != nd->sess) {
				node_session_gone(i, f->session);
				again = true;
				break;
			}
			if (a && a->qidx && a->qidx <= idx)
				f->queued = true;
		}
	}
}

/* Node i replaces its state machine with a snapshot of index idx (installed
 * from the leader): it must be the reference state at idx. */
static void node_install(int i, uint64_t idx, const struct rf_conf *conf,
			 const uint8_t *buf, size_t len)
{
	struct node *nd = &S.nodes[i];
	struct lc_state *ns;

	if (idx <= nd->applied)
		fail("node %d installs snapshot %llu behind its state (%llu)", i + 1,
		     (unsigned long long)idx, (unsigned long long)nd->applied);
	if (idx > S.gcn)
		fail("node %d installs snapshot %llu beyond anything committed (%zu)", i + 1,
		     (unsigned long long)idx, S.gcn);
	if (lc_state_load(buf, len, &ns))
		fail("node %d: installed snapshot %llu does not load", i + 1,
		     (unsigned long long)idx);
	if (lc_state_hash(ns) != S.ref_hash[idx])
		fail("node %d: snapshot installed at %llu differs from the reference", i + 1,
		     (unsigned long long)idx);
	lc_state_free(nd->sm);
	nd->sm = ns;
	nd->applied = idx;
	nd->aconf = *conf;
	S.installs++;
	tr("n%d installs a snapshot at %llu", i + 1, (unsigned long long)idx);
	node_catch_up(i, idx);
}

/* The node answers its ready reads whose index it has applied, from its
 * own state: the answer must be the reference's at the index it serves
 * from (>= the read index), and the read index must cover every entry
 * applied anywhere before the read was asked. */
static void serve_reads(int i)
{
	struct node *nd = &S.nodes[i];

	for (size_t k = 0; k < S.nrd; k++) {
		struct rdreq *q = &S.rd[k];

		if (q->node != i || !q->ready || q->done || nd->applied < q->index)
			continue;
		q->done = true;
		if (q->index < q->min_index)
			fail("n%d: read index %llu misses entry %llu, applied before the read",
			     i + 1, (unsigned long long)q->index,
			     (unsigned long long)q->min_index);
		if (who_holds(nd->sm, q->file) !=
		    S.ref_who[nd->applied * NFILES + (uint64_t)q->file])
			fail("n%d: read of file %d at %llu differs from the reference", i + 1,
			     q->file, (unsigned long long)nd->applied);
		S.rd_served++;
	}
}

static void read_ready(int i, const struct rf_read *r)
{
	struct rdreq *q;

	if (!r->ctx || r->ctx > S.nrd)
		fail("n%d: read ctx %llu never asked", i + 1, (unsigned long long)r->ctx);
	q = &S.rd[r->ctx - 1];
	if (q->node != i || q->ready || q->done)
		fail("n%d: read ctx %llu answered twice or by another node", i + 1,
		     (unsigned long long)r->ctx);
	if (!r->index) {
		q->done = true;
		S.rd_failed++;
		return;
	}
	q->ready = true;
	q->index = r->index;
}

static int step(int i, struct rf_event *ev);

/* A read at the leader (when there is one): RF_EV_READ. */
static void ask_read(void)
{
	int l = leader_node(), rc;
	struct rf_event ev = { .type = RF_EV_READ };
	struct rdreq *q;

	if (l < 0 || S.now < S.nodes[l].paused_until)
		return;
	if (S.nrd == S.caprd) {
		S.caprd = S.caprd ? S.caprd * 2 : 64;
		S.rd = cl_xrealloc(S.rd, S.caprd * sizeof(*S.rd));
	}
	q = &S.rd[S.nrd++];
	*q = (struct rdreq){ .node = l, .file = (int)cl_between(&S.rng, 0, NFILES - 1),
			     .min_index = S.gcn };
	ev.read.ctx = S.nrd;
	S.rd_asked++;
	if (rf_lease_valid(S.nodes[l].r, local(l)))
		S.rd_lease++;
	else
		S.rd_round++;
	rc = step(l, &ev);
	if (rc) {
		q->done = true;
		S.rd_refused++;
	}
}

static void handle(int i, const struct rf_update *u)
{
	struct node *nd = &S.nodes[i];

	if (u->flags & RF_UPD_ROLE) {
		static const char *rn[] = { "follower", "precandidate", "candidate", "leader" };

		tr("n%d %s term %llu leader %llu", i + 1, rn[u->role],
		   (unsigned long long)u->term, (unsigned long long)u->leader);
		if (u->role == RF_LEADER && nd->role != RF_LEADER) {
			if (u->term >= S.term_cap) {
				size_t old = S.term_cap;

				S.term_cap = u->term * 2 + 16;
				S.term_leader = cl_xrealloc(S.term_leader, S.term_cap * sizeof(uint64_t));
				memset(S.term_leader + old, 0, (S.term_cap - old) * sizeof(uint64_t));
			}
			if (S.term_leader[u->term] && S.term_leader[u->term] != (uint64_t)i + 1)
				fail("two leaders in term %llu: n%llu and n%d",
				     (unsigned long long)u->term,
				     (unsigned long long)S.term_leader[u->term], i + 1);
			S.term_leader[u->term] = (uint64_t)i + 1;
			check_leader_complete(i);
			/* Chubby's grace: every session gets a full lease from
			 * this election before anything may expire. */
			if (lease_reset(&nd->tab, nd->sm, S.brk_no_grace ? 0 : local(i)))
				fail("n%d: lease_reset failed", i + 1);
			nd->tab_on = true;
			if (leader_hook)
				leader_hook(i);
		}
		if (u->role != RF_LEADER)
			nd->tab_on = false;
		/* A leader is known again: forward what waits at once. */
		if (u->leader && u->leader != rf_leader_prev(nd))
			for (size_t k = 0; k < nd->nfw; k++)
				if (!nd->fw[k].queued)
					nd->fw[k].sent_ms = 0;
		nd->last_leader = u->leader;
		if (u->leader)
			nd->hint = u->leader;
		nd->role = u->role;
	}
	if (u->write_seq) {
		/* the state machine follows an installed snapshot at once */
		if (u->flags & RF_UPD_SNAPSHOT)
			node_install(i, u->snap_index, u->snap_conf, u->snap_buf, u->snap_len);
		cl_disk_write(&nd->disk, u);
		if (!nd->sync_sched) {
			nd->sync_sched = true;
			at(S.now + (cl_chance(&S.rng, 10) ? cl_between(&S.rng, 5, 30)
						       : cl_between(&S.rng, 1, 3)),
			   E_SYNC, i, 0, nd->epoch);
		}
	}
	for (size_t k = 0; k < u->n_msgs; k++)
		net_send(i, &u->msgs[k]);
	for (size_t k = 0; k < u->n_committed; k++)
		node_apply(i, u->commit_first + k, &u->committed[k]);
	for (size_t k = 0; k < u->n_reads; k++)
		read_ready(i, &u->reads[k]);
	serve_reads(i);
	nd->tick_gen++;
	{
		uint64_t l = local(i), t = u->next_deadline_ms > l ?
				       S.now + (u->next_deadline_ms - l) : S.now + 1;

		at(t, E_TICK, i, 0, nd->tick_gen);
	}
}

/* Every snap_k applied entries the node snapshots its state: on its disk
 * at once (synced; the disk log is compacted up to it), then to the
 * engine. */
static void maybe_snapshot(int i)
{
	struct node *nd = &S.nodes[i];
	struct rf_event ev = { .type = RF_EV_SNAPSHOT };
	const struct rf_entry *e;
	struct rf_update u;
	uint8_t *buf;
	size_t len;
	uint64_t idx = nd->applied;
	int rc;

	if (!S.snap_k || !nd->up || !nd->r || idx < rf_snapshot_index(nd->r) + S.snap_k)
		return;
	e = rf_entry_at(nd->r, idx);
	if (!e)
		fail("n%d: applied entry %llu is not in its log", i + 1, (unsigned long long)idx);
	/* Not before the term it carries is synced: a restart would find a
	 * snapshot newer than its hard state (RF_EV_START refuses that). */
	if (e->term > nd->disk.term)
		return;
	if (lc_state_save(nd->sm, &buf, &len))
		fail("n%d: lc_state_save failed", i + 1);
	cl_disk_snapshot(&nd->disk, idx, e->term, &nd->aconf, buf, len);
	ev.snapshot.index = idx;
	ev.snapshot.buf = buf;
	ev.snapshot.len = len;
	ev.now_ms = local(i);
	rc = rf_step(nd->r, &ev, &u);
	if (rc) {
		free(buf);
		fail("n%d: RF_EV_SNAPSHOT at %llu returned %d", i + 1, (unsigned long long)idx, rc);
	}
	S.snaps++;
	tr("n%d snapshots at %llu", i + 1, (unsigned long long)idx);
	handle(i, &u);
}

static int step(int i, struct rf_event *ev)
{
	struct rf_update u;
	int rc;

	ev->now_ms = local(i);
	rc = rf_step(S.nodes[i].r, ev, &u);
	if (rc == -EINVAL || rc == -ENOMEM)
		fail("node %d: rf_step(%d) returned %d", i + 1, ev->type, rc);
	handle(i, &u);
	maybe_snapshot(i);
	/* The mark on disk goes only once the engine caught up: a crash
	 * before that restarts it catching up again (cluckd keeps the
	 * mark in its data directory for the same reason). */
	if (S.nodes[i].rejoin && S.nodes[i].r && !rf_catching_up(S.nodes[i].r))
		S.nodes[i].rejoin = false;
	return rc == 0 ? 0 : rc;
}

static uint64_t step_propose(int i, const uint8_t *buf, size_t len, uint64_t *leader)
{
	struct rf_event ev = { .type = RF_EV_PROPOSE };
	struct rf_update u;
	int rc;

	ev.propose.buf = buf;
	ev.propose.len = (uint32_t)len;
	ev.now_ms = local(i);
	rc = rf_step(S.nodes[i].r, &ev, &u);
	if (rc && rc != -EPERM)
		fail("node %d: propose returned %d", i + 1, rc);
	*leader = u.leader;
	handle(i, &u);
	maybe_snapshot(i);
	return rc ? 0 : u.proposed_index;
}

static void open_session(int i);
static void node_timer(int i);
static void node_crash_clients(int i);

static void node_start(int i)
{
	struct node *nd = &S.nodes[i];
	struct rf_config cfg = { 0 };
	struct rf_event ev = { .type = RF_EV_START };
	struct rf_entry *es;

	rf_config_defaults(&cfg);
	cfg.id = (uint64_t)i + 1;
	cfg.n_voters = nd->boot.n_voters;
	memcpy(cfg.voters, nd->boot.voters, sizeof(cfg.voters));
	cfg.n_learners = nd->boot.n_learners;
	memcpy(cfg.learners, nd->boot.learners, sizeof(cfg.learners));
	cfg.election_timeout_min_ms = ELECT_MIN;
	cfg.election_timeout_max_ms = ELECT_MAX;
	cfg.heartbeat_ms = HEARTBEAT;
	cfg.max_clock_drift_ms = CFG_DRIFT;
	cfg.seed = cl_rnd(&S.rng);
	cfg.test_break = S.brk;
	cfg.catch_up = nd->rejoin;
	if (rf_new(&cfg, &nd->r))
		fail("rf_new failed");
	nd->applied = 0;
	nd->aconf = nd->boot;
	if (nd->disk.snap_index) {
		/* from the snapshot on disk, then its log */
		if (lc_state_load(nd->disk.snap_buf, nd->disk.snap_len, &nd->sm))
			fail("n%d: its snapshot does not load", i + 1);
		if (nd->disk.snap_index > S.gcn || lc_state_hash(nd->sm) != S.ref_hash[nd->disk.snap_index])
			fail("n%d: its snapshot at %llu differs from the reference", i + 1,
			     (unsigned long long)nd->disk.snap_index);
		nd->applied = nd->disk.snap_index;
		nd->aconf = nd->disk.snap_conf;
		S.restores++;
	} else {
		nd->sm = lc_state_new();
	}
	if (!nd->sm)
		fail("lc_state_new failed");
	cl_disk_start(&nd->disk, &ev, &es);
	nd->up = true;
	nd->role = RF_FOLLOWER;
	tr("n%d starts: term %llu vote %llu snapshot %llu log %zu", i + 1,
	   (unsigned long long)nd->disk.term, (unsigned long long)nd->disk.vote,
	   (unsigned long long)nd->disk.snap_index, nd->disk.n);
	if (step(i, &ev))
		fail("n%d: start refused", i + 1);
	free(es);
	lease_table_free(&nd->tab);
	lease_table_init(&nd->tab, S.lease_ms);
	open_session(i);
	node_timer(i);
}

static void node_crash(int i)
{
	struct node *nd = &S.nodes[i];

	if (!nd->up)
		return;
	tr("n%d CRASH (loses %zu unsynced writes)", i + 1, nd->disk.npw);
	for (size_t k = 0; k < S.nrd; k++)
		if (S.rd[k].node == i)
			S.rd[k].done = true;
	node_crash_clients(i);
	nd->tab_on = false;
	nd->last_leader = 0;
	nd->hint = 0;
	lease_table_free(&nd->tab);
	nd->node_gen++;
	rf_free(nd->r);
	nd->r = NULL;
	lc_state_free(nd->sm);
	nd->sm = NULL;
	cl_disk_crash(&nd->disk);
	nd->sync_sched = false;
	nd->epoch++;
	nd->tick_gen++;
	nd->up = false;
	nd->role = RF_FOLLOWER;
}

static void disk_sync(int i)
{
	struct node *nd = &S.nodes[i];
	struct rf_event ev = { .type = RF_EV_PERSISTED };
	int64_t seq;

	nd->sync_sched = false;
	if (!nd->disk.npw)
		return;
	seq = cl_disk_sync(&nd->disk);
	if (seq < 0)
		fail("n%d: write at %llu leaves a gap after %llu", i + 1,
		     (unsigned long long)nd->disk.gap_at,
		     (unsigned long long)(nd->disk.first + nd->disk.n - 1));
	S.syncs++;
	ev.persisted.seq = (uint64_t)seq;
	step(i, &ev);
}

/* ---- network ------------------------------------------------------------- */

/* Puts one message on the faulty network: blocked links, drops,
 * duplicates, and delays that reorder. */
static void net_push(int from, int to, int type, const uint8_t *buf, size_t len)
{
	int copies = 1;

	if (to < 0 || to >= S.n || S.block[from][to])
		return;
	if (S.faults_on && cl_chance(&S.rng, S.drop_pct))
		return;
	if (S.faults_on && cl_chance(&S.rng, S.dup_pct))
		copies = 2;
	while (copies--) {
		uint64_t d = cl_between(&S.rng, 1, 5);

		if (S.faults_on && cl_chance(&S.rng, 5))
			d += cl_between(&S.rng, 10, 100);   /* reorders */
		cl_push(&S.q, (struct cl_ev){ .t = S.now + d, .type = type, .node = to,
				  .a = from, .buf = cl_dup(buf, len), .len = len });
	}
}

static void net_send(int from, const struct rf_msg *m)
{
	uint8_t buf[RF_MSG_MAX];
	int len = rf_msg_encode(m, buf, sizeof(buf));
	int to = (int)m->to - 1;

	if (len < 0)
		fail("n%d: cannot encode message type %d: %d", from + 1, m->type, len);
	S.msgs++;
	/* The decoder must reject every truncation of a valid message. */
	if (cl_chance(&S.rng, 1)) {
		struct rf_msg x;
		size_t cut = cl_between(&S.rng, 0, (uint64_t)len - 1);

		if (rf_msg_decode(buf, cut, &x) != -EINVAL)
			fail("decoder accepted a truncated message");
	}
	/* ... and survive any flipped byte (ASan watches the reads). */
	if (cl_chance(&S.rng, 1)) {
		uint8_t *bad = cl_dup(buf, (size_t)len);
		struct rf_msg x;

		bad[cl_between(&S.rng, 0, (uint64_t)len - 1)] ^= (uint8_t)cl_between(&S.rng, 1, 255);
		if (rf_msg_decode(bad, (size_t)len, &x) == 0)
			rf_msg_release(&x);
		free(bad);
	}
	if (drop_hook && drop_hook(from, m))
		return;
	net_push(from, to, E_MSG, buf, (size_t)len);
}

static void deliver(struct cl_ev *e)
{
	struct rf_event ev = { .type = RF_EV_RECEIVE };
	struct rf_msg m;

	if (rf_msg_decode(e->buf, e->len, &m))
		fail("a message sent by n%d does not decode", e->a + 1);
	ev.receive = &m;
	step(e->node, &ev);
	rf_msg_release(&m);
}

/* ---- the flock history ---------------------------------------------------- */

static void lz_add(const struct linz_op *op)
{
	if (S.lzn == S.lzcap) {
		S.lzcap = S.lzcap ? S.lzcap * 2 : 128;
		S.lzv = cl_xrealloc(S.lzv, S.lzcap * sizeof(*S.lzv));
	}
	S.lzv[S.lzn++] = *op;
}

/* History keys: flock keeps the inode number; POSIX ranges on the same
 * file and lockfiles get key spaces of their own (the two lock kinds on
 * one file are independent in lockcore). */
#define LZK_POSIX (1ull << 40)
#define LZK_FILE  (1ull << 41)

static uint64_t lz_file_key(const char *name)
{
	return LZK_FILE + (uint64_t)(unsigned char)name[2];
}

/* Opens a history op for the request just built, when it is one the model
 * knows: flock acquire or release (the semaphore file too: its slot count
 * changes go in as LINZ_SET_SLOTS), POSIX SETLK and FLUSH (a release of
 * every byte), lockfile CREATE|EXCL (a try-ex: EEXIST is busy) and UNLINK
 * (a release).  Writes are not lock ops.  A session's end comes in as
 * LINZ_RELEASE_ALL ops (lost_release_all). */
static void lz_begin(struct client *c)
{
	const struct lc_cmd *m = &c->cmd;
	bool wait = m->flags & LC_LK_WAIT;

	c->lz_on = false;
	if (!S.lz)
		return;
	memset(&c->lz, 0, sizeof(c->lz));
	c->lz.key = m->ino;
	switch (m->type) {
	case LC_CMD_FLOCK:
		c->lz.kind = m->lock_type == LC_WRLCK ? (wait ? LINZ_ACQ_EX : LINZ_TRY_EX)
						      : (wait ? LINZ_ACQ_SH : LINZ_TRY_SH);
		break;
	case LC_CMD_RELEASE:
		c->lz.kind = LINZ_RELEASE;
		break;
	case LC_CMD_SETLK:
		c->lz.kind = m->lock_type == LC_WRLCK ? (wait ? LINZ_ACQ_EX : LINZ_TRY_EX)
						      : (wait ? LINZ_ACQ_SH : LINZ_TRY_SH);
		c->lz.key = m->ino | LZK_POSIX;
		c->lz.ranged = 1;
		c->lz.start = m->start;
		c->lz.end = m->end;
		break;
	case LC_CMD_FLUSH:
		c->lz.kind = LINZ_RELEASE;
		c->lz.key = m->ino | LZK_POSIX;
		c->lz.ranged = 1;
		c->lz.start = 0;
		c->lz.end = UINT64_MAX;
		break;
	case LC_CMD_CREATE:
		if (!(m->flags & LC_CREATE_EXCL))
			return;
		c->lz.kind = LINZ_TRY_EX;
		c->lz.key = lz_file_key(m->name);
		break;
	case LC_CMD_UNLINK:
		c->lz.kind = LINZ_RELEASE;
		c->lz.key = lz_file_key(m->name);
		break;
	case LC_CMD_SETXATTR:
		if (m->ino != S.files[NFILES - 1] || m->data_len != 1)
			return;
		c->lz.kind = LINZ_SET_SLOTS;
		c->lz.slots = (uint32_t)(((const char *)m->data)[0] - '0');
		break;
	default:
		return;
	}
	/* The owner is per acquisition (its release names it too); the low
	 * 32 bits stay unique because sessions and serials are small. */
	c->lz.client = (uint32_t)c->cur_owner;
	c->lz.call = S.now;
	c->lz.ret = LINZ_INF;
	c->lz.out = LINZ_ERR;
	c->lz_on = true;
}

/* Closes the client's open history op with the final status it got. */
static void lz_end(struct client *c, int status)
{
	struct linz_op op = c->lz;

	if (!c->lz_on)
		return;
	c->lz_on = false;
	op.ret = S.now;
	if (status == 0)
		op.out = LINZ_OK;
	else if ((status == -EAGAIN || status == -EEXIST) &&
		 (op.kind == LINZ_TRY_EX || op.kind == LINZ_TRY_SH))
		op.out = LINZ_BUSY;
	else if (status == -ENOLCK && op.kind == LINZ_RELEASE)
		op.out = LINZ_OK;          /* done by the session's close */
	else
		op.out = LINZ_ERR;         /* refused: no effect */
	lz_add(&op);
}

/* True when a blocking acquire that conflicts with op (a busy try) was
 * under way at some instant of op's interval.  flock: SPEC's writer
 * preference (a queued exclusive request holds back later shared ones)
 * lets a try-sh fail with no exclusive holder.  POSIX: lockcore refuses a
 * try that conflicts with an earlier queued waiter.  linz's model knows
 * neither queue. */
static bool lz_waiter_during(const struct linz_op *op)
{
	for (size_t k = 0; k < S.lzn; k++) {
		const struct linz_op *w = &S.lzv[k];

		if (w->key != op->key || w->client == op->client || w->call > op->ret ||
		    w->ret < op->call)
			continue;
		if (!op->ranged && w->kind == LINZ_ACQ_EX && op->kind == LINZ_TRY_SH)
			return true;
		if (op->ranged && w->ranged &&
		    (w->kind == LINZ_ACQ_EX || (w->kind == LINZ_ACQ_SH && op->kind == LINZ_TRY_EX)) &&
		    w->start <= op->end && op->start <= w->end)
			return true;
	}
	return false;
}

/* Which of S.lz_kind an op counts under. */
static int lz_kind_of(const struct linz_op *op)
{
	if (op->kind == LINZ_RELEASE_ALL)
		return 4;
	if (op->key & LZK_FILE)
		return 3;
	if (op->key & LZK_POSIX)
		return 1;
	return op->key == S.files[NFILES - 1] ? 2 : 0;
}

/* The end of a seed: requests still without a final answer may or may not
 * have taken effect; then the whole history must linearize. */
static void lz_finish(void)
{
	char why[1024];
	enum linz_result r;

	bool faked = false;

	for (int k = 0; k < S.nclients; k++)
		if (S.cl[k].lz_on) {
			S.cl[k].lz_on = false;
			lz_add(&S.cl[k].lz);
		}
	/* lost locks whose session was never closed: release pending */
	for (size_t k = 0; k < S.nlost; k++)
		lz_add(&S.lost[k].op);
	S.nlost = 0;
	for (size_t k = 0; k < S.lzn; k++) {
		struct linz_op *op = &S.lzv[k];

		/* A busy try that a queued waiter may explain proves
		 * nothing: keep it out (as an acquire without effect). */
		if ((op->kind == LINZ_TRY_SH || op->kind == LINZ_TRY_EX) &&
		    op->out == LINZ_BUSY && op->ret != LINZ_INF && lz_waiter_during(op))
			op->out = LINZ_ERR;
		if (S.brk_grant_twice && !faked && op->out == LINZ_BUSY && op->ret != LINZ_INF) {
			/* Only the history lies; the client believed EAGAIN. */
			faked = true;
			op->out = LINZ_OK;
			tr("break grant-twice: owner %u's EAGAIN recorded as OK", op->client);
		}
	}
	for (size_t k = 0; k < S.lzn; k++) {
		if (linz_add_op(S.lz, &S.lzv[k]) < 0)
			fail("history: linz_add_op refused owner %u kind %d out %d",
			     S.lzv[k].client, S.lzv[k].kind, S.lzv[k].out);
		S.lz_kind[lz_kind_of(&S.lzv[k])]++;
	}
	S.lz_ops += S.lzn;
	S.lzn = 0;
	r = linz_check(S.lz);
	S.lz_checked++;
	if (r == LINZ_NOT) {
		linz_explain(S.lz, why, sizeof(why));
		fail("lock history not linearizable: %s", why);
	}
	if (r == LINZ_UNKNOWN) {
		S.lz_unknown++;
		tr("history: linearizability unknown after %llu steps",
		   (unsigned long long)linz_steps(S.lz));
	} else {
		S.lz_linear++;
	}
}

/* ---- node sessions: forwarding, keepalives, leases ----------------------- */

static int pick_node(void)
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
static uint64_t node_forward(int i, int client, struct lc_cmd *cmd)
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

static void open_session(int i)
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
static void lost_release_all(uint64_t session, uint32_t owner, uint64_t key, uint64_t call)
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
static void client_lost(struct client *c, uint64_t call)
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
static void session_closed(uint64_t session, uint64_t idx)
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

static void client_answer(struct client *c, int status, uint64_t token, bool from_log);

/* A completion applied on node i: answer the client it belongs to. */
static void node_completion(int i, const struct lc_completion *cp)
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
static void node_session_gone(int i, uint64_t session)
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

static uint64_t step_propose(int i, const uint8_t *buf, size_t len, uint64_t *leader);

static void deliver_smsg(struct cl_ev *e)
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

static void node_timer(int i)
{
	struct node *nd = &S.nodes[i];

	nd->node_gen++;
	at(S.now + NODE_TICK, E_NODE, i, 0, nd->node_gen);
}

/* The node's timer: its lease view, keepalives, retries; as leader, the
 * sessions whose lease ran out. */
static void node_tick(int i)
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


static void client_timer(struct client *c, uint64_t t)
{
	c->gen++;
	at(t, E_CLIENT, (int)(c - S.cl), 0, c->gen);
}

/* ---- clients ------------------------------------------------------------- */

/* Hands the request to the client's node, which forwards it. */
static void client_request(struct client *c, const struct lc_cmd *cmd)
{
	struct node *nd = &S.nodes[c->node];
	uint8_t t = cmd->type;

	c->cmd = *cmd;
	c->sent_at = S.now;
	c->state = C_WAIT;
	c->req_sess = nd->sess;
	lz_begin(c);
	/* A client stops believing it holds when it asks to release. */
	if (t == LC_CMD_RELEASE || t == LC_CMD_FLUSH || t == LC_CMD_UNLINK)
		c->hold = H_NONE;
	c->serial = node_forward(c->node, (int)(c - S.cl), &c->cmd);
	tr("c%d -> n%d (%llu,%llu) type %d", (int)(c - S.cl) + 1, c->node + 1,
	   (unsigned long long)c->req_sess, (unsigned long long)c->serial, t);
}

static const char *fname[NFILES] = { "f0", "f1", "f2", "sem" };

/* True when node i can take a new request: up, running, with an open
 * session whose lease is not in jeopardy (SPEC: new requests wait). */
static bool node_ready(int i, bool release)
{
	struct node *nd = &S.nodes[i];
	enum lease_state st;

	if (!nd->up || S.now < nd->paused_until || !nd->sess_open)
		return false;
	st = lease_view_state(&nd->view, local(i));
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

		/* owner ids are distinct per client and per acquisition */
		c->cur_owner = (uint64_t)pid * 100000u + ++c->acqs;
		cmd.who = (struct lc_owner){ sess, c->cur_owner, pid };
		cmd.ino = S.files[f];
		cmd.flags = cl_chance(&S.rng, 50) ? LC_LK_WAIT : 0;
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
static void client_answer(struct client *c, int status, uint64_t token, bool from_log)
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
	} else if (t == LC_CMD_UNLINK && status && status != -ENOLCK && status != -EIO) {
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
static void node_crash_clients(int i)
{
	struct node *nd = &S.nodes[i];
	struct sreg *r = sreg_of(nd->sess);

	if (r)
		r->gave_up = true;
	for (size_t k = 0; k < nd->nfw; k++) {
		struct fwd *f = &nd->fw[k];
		struct client *c = f->client >= 0 ? &S.cl[f->client] : NULL;

		if (c && c->state == C_WAIT) {
			bool acq = c->lz_on && c->lz.kind <= LINZ_TRY_SH;
			struct linz_op op = c->lz;

			if (c->lz_on) {            /* pending: may or may not happen */
				c->lz_on = false;
				lz_add(&c->lz);
			}
			/* an acquire that may have been granted is freed by the
			 * session's close, if at all */
			if (acq)
				lost_release_all(c->req_sess, op.client, op.key, S.now);
			client_answer(c, -EIO, 0, false);
		}
		free(f->buf);
	}
	nd->nfw = 0;
	for (int k = 0; k < S.nclients; k++)
		if (S.cl[k].node == i && S.cl[k].hold_sess == nd->sess)
			client_lost(&S.cl[k], S.now);
	nd->sess = 0;
	nd->sess_open = false;
}

static void client_event(struct cl_ev *e)
{
	struct client *c = &S.cl[e->node];

	if (e->gen == c->gen && c->state == C_IDLE)
		client_next(c);
}

/* ---- faults -------------------------------------------------------------- */

/* The up leader of the highest term, or -1. */
static int leader_node(void)
{
	int best = -1;

	for (int i = 0; i < S.n; i++)
		if (S.nodes[i].up && S.nodes[i].role == RF_LEADER &&
		    (best < 0 || rf_term(S.nodes[i].r) > rf_term(S.nodes[best].r)))
			best = i;
	return best;
}

/* Proposes a membership change at leader l; -EBUSY (one at a time) and
 * -EPERM (it just lost leadership) are normal. */
static int conf_change(int l, uint8_t op, uint64_t id)
{
	struct rf_event ev = { .type = RF_EV_CONF };
	int rc;

	ev.conf.op = op;
	ev.conf.id = id;
	rc = step(l, &ev);
	if (rc && rc != -EBUSY && rc != -EPERM)
		fail("n%d: membership change %d of n%llu returned %d", l + 1, op,
		     (unsigned long long)id, rc);
	if (rc == -EBUSY)
		S.conf_busy++;
	if (!rc) {
		S.conf_ok[op]++;
		tr("n%d proposes membership change %d of n%llu", l + 1, op,
		   (unsigned long long)id);
	}
	return rc;
}

/* Membership faults found two engine bugs, both fixed in lockcore/raft.c:
 * seed 7, a learner refused its vote to a candidate whose newer
 * configuration made it a voter (on_vote); seed 224, a leader isolated
 * while it removed itself held the only log with that change, so the other
 * voter could never win the log check and the removed node, no voter to
 * itself, never campaigned: no leader after heal (may_campaign).
 *
 * A membership fault at the leader: promote a member, demote a voter, or
 * remove a node (it comes back later as a new member with a fresh disk).
 * At least one voter, at most RF_MAX_VOTERS. */
static bool any_rejoin(void);

static void conf_fault(void)
{
	int l = leader_node(), k = (int)cl_between(&S.rng, 0, 2), i = pick_node();
	const struct rf_conf *c;
	uint64_t id = (uint64_t)i + 1;

	if (l < 0 || S.now < S.nodes[l].paused_until)
		return;
	c = rf_conf(S.nodes[l].r);
	/* The voters stay while one rejoins (see maybe_lose_log()). */
	if (any_rejoin() && (k < 2 || conf_has(c, id, true)))
		return;
	if (k == 0 && conf_has(c, id, false) && !conf_has(c, id, true) &&
	    c->n_voters < RF_MAX_VOTERS && S.nodes[i].up)
		conf_change(l, RF_CONF_ADD_VOTER, id);
	else if (k == 1 && conf_has(c, id, true) && c->n_voters > 1)
		conf_change(l, RF_CONF_DEMOTE, id);
	else if (k == 2 && conf_has(c, id, false) &&
		 (!conf_has(c, id, true) || c->n_voters > 1))
		conf_change(l, RF_CONF_REMOVE, id);
}

/* Node i left the configuration: it goes down with its disk; later it
 * comes back as a new member. */
static void node_remove(int i)
{
	struct node *nd = &S.nodes[i];

	if (nd->removed || nd->readding || conf_has(&S.cconf, (uint64_t)i + 1, false))
		return;
	tr("n%d removed: down, disk wiped", i + 1);
	node_crash(i);
	nd->epoch++;                       /* no pending restart */
	cl_disk_wipe(&nd->disk);
	nd->removed = true;
	S.removals++;
	at(S.now + cl_between(&S.rng, 100, 1500), E_READD, i, 0, 0);
}

/* Brings removed node i back as a member: the leader adds it, then it
 * starts with an empty disk and the leader's configuration. */
static void node_readd(int i)
{
	struct node *nd = &S.nodes[i];
	int l = leader_node();
	uint64_t id = (uint64_t)i + 1;

	if (!nd->removed && !nd->readding)
		return;
	if (l >= 0 && S.now >= S.nodes[l].paused_until &&
	    !conf_has(rf_conf(S.nodes[l].r), id, false) &&
	    conf_change(l, RF_CONF_ADD_LEARNER, id) == 0 && nd->removed) {
		nd->boot = *rf_conf(S.nodes[l].r);
		nd->removed = false;
		nd->readding = true;
		S.readds++;
		node_start(i);
	}
	/* until a committed configuration has it (a proposal may be lost) */
	if (nd->removed || nd->readding)
		at(S.now + 50, E_READD, i, 0, 0);
}

/* Every node but `skip` runs, and its voters are the committed
 * configuration's (a down node's log may hold a change in flight). */
static bool voters_settled(int skip)
{
	for (int j = 0; j < S.n; j++) {
		const struct rf_conf *c;

		if (j == skip || S.nodes[j].removed)
			continue;
		if (!S.nodes[j].up)
			return false;
		c = rf_conf(S.nodes[j].r);
		if (c->n_voters != S.cconf.n_voters)
			return false;
		for (unsigned k = 0; k < c->n_voters; k++)
			if (!conf_has(&S.cconf, c->voters[k], true))
				return false;
	}
	return true;
}

static bool any_rejoin(void)
{
	for (int j = 0; j < S.n; j++)
		if (S.nodes[j].rejoin)
			return true;
	return false;
}

/* Crashed voter i loses its log and snapshot, keeping its term and vote
 * (cluckd --rejoin on a repaired data directory), unless another voter is
 * still catching up or the voters are changing: the others must stay a
 * majority without it (a majority waiting to catch up elects nobody;
 * cluckd changes no voters, only members). */
static void maybe_lose_log(int i)
{
	struct node *nd = &S.nodes[i];
	uint64_t term = nd->disk.term, vote = nd->disk.vote;

	/* With fewer than 3 voters the others are no majority without it:
	 * nobody could lead for it to catch up from. */
	if (!S.rejoin_faults || !cl_chance(&S.rng, 30) || nd->removed || nd->readding ||
	    !conf_has(&S.cconf, (uint64_t)i + 1, true) || S.cconf.n_voters < 3)
		return;
	if (any_rejoin() || !voters_settled(i))
		return;
	tr("n%d loses its log (term %llu vote %llu kept): rejoins", i + 1,
	   (unsigned long long)term, (unsigned long long)vote);
	cl_disk_wipe(&nd->disk);
	nd->disk.term = term;
	nd->disk.vote = vote;
	nd->rejoin = true;
	S.rejoins++;
}

static void heal_net(void)
{
	memset(S.block, 0, sizeof(S.block));
}

static void fault(void)
{
	int i = pick_node(), k = (int)cl_between(&S.rng, 0, 9);
	struct node *nd = &S.nodes[i];

	switch (k) {
	case 0:
	case 1:
		if (nd->up) {
			node_crash(i);
			maybe_lose_log(i);
			/* sometimes down until the heal: far behind, it needs a
			 * snapshot to catch up */
			if (!cl_chance(&S.rng, 20))
				at(S.now + cl_between(&S.rng, 20, 800), E_RESTART, i, 0, nd->epoch);
		}
		break;
	case 2: {                             /* symmetric split */
		uint64_t side = cl_rnd(&S.rng);

		heal_net();
		for (int a = 0; a < S.n; a++)
			for (int b = 0; b < S.n; b++)
				S.block[a][b] = ((side >> a) & 1) != ((side >> b) & 1);
		tr("partition: symmetric %llx", (unsigned long long)(side & 0x7f));
		break;
	}
	case 3: {                             /* one way */
		int j = pick_node();

		S.block[i][j] = true;
		tr("partition: n%d -/-> n%d", i + 1, j + 1);
		break;
	}
	case 4: {                             /* leader isolated */
		int l = leader_node();

		if (l >= 0) {
			for (int b = 0; b < S.n; b++)
				S.block[l][b] = S.block[b][l] = b != l;
			tr("partition: leader n%d isolated", l + 1);
		}
		break;
	}
	case 5:                               /* flapping: heal soon, maybe re-cut */
		heal_net();
		tr("partition: healed");
		break;
	case 6:
		if (nd->up) {
			nd->paused_until = S.now + cl_between(&S.rng, 20, 400);
			tr("n%d paused until %llu", i + 1, (unsigned long long)nd->paused_until);
		}
		break;
	case 7:
		nd->clock_off = cl_between(&S.rng, 0, CLOCK_DRIFT);
		break;
	case 9:
		if (S.conf_faults)
			conf_fault();
		break;
	case 8:
		S.drop_pct = (unsigned)cl_between(&S.rng, 0, 30);
		S.dup_pct = (unsigned)cl_between(&S.rng, 0, 10);
		tr("network: drop %u%% dup %u%%", S.drop_pct, S.dup_pct);
		break;
	default:
		break;
	}
}

static void heal(void)
{
	tr("HEAL: network whole, every node up");
	heal_net();
	S.faults_on = false;
	S.drop_pct = S.dup_pct = 0;
	for (int i = 0; i < S.n; i++) {
		if (S.nodes[i].paused_until > S.now)
			S.nodes[i].paused_until = S.now;
		if (!S.nodes[i].up && !S.nodes[i].removed)
			node_start(i);
	}
}

/* ---- one run ------------------------------------------------------------- */

static void dispatch(struct cl_ev *e)
{
	struct node *nd = e->node >= 0 && e->node < S.n ? &S.nodes[e->node] : NULL;

	S.events++;
	if (nd && (e->type == E_MSG || e->type == E_TICK || e->type == E_SYNC ||
		   e->type == E_SMSG || e->type == E_NODE) &&
	    S.now < nd->paused_until && nd->up) {
		e->t = nd->paused_until;       /* a paused process runs later */
		cl_push(&S.q, *e);
		return;
	}
	switch (e->type) {
	case E_MSG:
		if (nd->up)
			deliver(e);
		free(e->buf);
		break;
	case E_SMSG:
		if (nd->up)
			deliver_smsg(e);
		free(e->buf);
		break;
	case E_NODE:
		if (nd->up && e->gen == nd->node_gen)
			node_tick(e->node);
		break;
	case E_TICK:
		if (nd->up && e->gen == nd->tick_gen) {
			struct rf_event ev = { .type = RF_EV_TIMEOUT };

			step(e->node, &ev);
		}
		break;
	case E_SYNC:
		if (nd->up && e->gen == nd->epoch)
			disk_sync(e->node);
		break;
	case E_CLIENT:
		client_event(e);
		break;
	case E_FAULT:
		if (S.faults_on && S.now < S.heal_at) {
			fault();
			at(S.now + cl_between(&S.rng, S.fault_lo, S.fault_hi), E_FAULT, -1, 0, 0);
		}
		break;
	case E_RESTART:
		if (!nd->up && e->gen == nd->epoch)
			node_start(e->node);
		break;
	case E_READ:
		if (S.now < S.heal_at + 3000) {
			ask_read();
			at(S.now + cl_between(&S.rng, 10, 150), E_READ, -1, 0, 0);
		}
		break;
	case E_REMOVE:
		node_remove(e->node);
		break;
	case E_READD:
		node_readd(e->node);
		break;
	case E_HEAL:
		heal();
		break;
	default:
		break;
	}
}

/* Lease reads: a node serving reads under its lease must be the newest
 * leader that can commit. */
static void check_leases(void)
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
	st = lease_view_state(&nd->view, local(c->node));
	return st == LEASE_OK || st == LEASE_JEOPARDY;
}

static void check_beliefs(void)
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

static bool all_done(void)
{
	for (int k = 0; k < S.nclients; k++)
		if (S.cl[k].state != C_DONE)
			return false;
	return true;
}

static void run_until(uint64_t t, bool stop_when_done)
{
	while (S.q.n && cl_peek(&S.q)->t <= t) {
		struct cl_ev e = cl_pop(&S.q);

		S.now = e.t;
		dispatch(&e);
		check_leases();
		check_beliefs();
		if (stop_when_done && !S.faults_on && all_done() &&
		    leader_node() >= 0)
			return;
	}
	if (S.now < t)
		S.now = t;
}

/* Log matching: two logs that agree on the term at an index agree on
 * everything up to it. */
static void check_log_matching(void)
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

static void world_init(uint64_t seed, int voters, int clients, int ops)
{
	struct lc_state *boot;
	struct lc_cmd cmd = { 0 };
	struct lc_out out = { 0 };
	struct cl_dent boot_log[1 + NFILES];
	struct rf_conf boot_conf = { .n_voters = 0 };

	memset(&S.nodes, 0, sizeof(S.nodes));
	memset(&S.cl, 0, sizeof(S.cl));
	S.nsr = 0;
	S.nlost = 0;
	if (!S.lease_ms)
		S.lease_ms = LEASE_MS;
	memset(S.last_token, 0, sizeof(S.last_token));
	heal_net();
	S.seed = seed;
	cl_rng_seed(&S.rng, seed);
	S.nv = voters ? voters : (int)cl_between(&S.rng, 1, RF_MAX_VOTERS);
	S.n = S.nv + (S.members_arg >= 0 ? S.members_arg : (int)cl_between(&S.rng, 0, 2));
	S.nclients = clients;
	S.now = 0;
	S.tpos = S.tcount = 0;
	S.max_leaders = 0;
	sem_sh_before = 0;
	/* Bootstrap: every node starts with the same synced term-1 log that
	 * opens an admin session and creates the lock files. */
	boot = lc_state_new();
	for (int k = 0; k <= NFILES; k++) {
		uint8_t *buf;
		size_t len;

		memset(&cmd, 0, sizeof(cmd));
		cmd.origin = ADMIN_SESSION;
		cmd.serial = (uint64_t)k + 1;
		if (!k) {
			cmd.type = LC_CMD_SESSION_OPEN;
			cmd.session = ADMIN_SESSION;
		} else {
			cmd.type = LC_CMD_CREATE;
			cmd.parent = LC_INO_ROOT;
			cmd.name = fname[k - 1];
			cmd.name_len = (uint32_t)strlen(fname[k - 1]);
			cmd.mode = 0644;
		}
		if (lc_cmd_encode(&cmd, &buf, &len) || lc_apply(boot, (uint64_t)k + 1, &cmd, &out))
			fail("bootstrap failed");
		if (k)
			S.files[k - 1] = out.v[0].ino;
		lc_out_reset(&out);
		boot_log[k] = (struct cl_dent){ 1, RF_ENTRY_CMD, (uint32_t)len, buf };
	}
	lc_out_free(&out);
	lc_state_free(boot);
	S.ref = lc_state_new();
	for (int i = 0; i < S.n; i++)
		if (i < S.nv)
			boot_conf.voters[boot_conf.n_voters++] = (uint64_t)i + 1;
		else
			boot_conf.learners[boot_conf.n_learners++] = (uint64_t)i + 1;
	S.cconf = boot_conf;
	for (int i = 0; i < S.n; i++) {
		struct node *nd = &S.nodes[i];

		cl_disk_init(&nd->disk);
		nd->disk.term = 1;
		for (int k = 0; k <= NFILES; k++)
			cl_disk_append(&nd->disk, 1, RF_ENTRY_CMD, boot_log[k].len,
				       boot_log[k].buf);
		nd->boot = boot_conf;
		nd->clock_off = cl_between(&S.rng, 0, CLOCK_DRIFT);
	}
	for (int k = 0; k <= NFILES; k++)
		free(boot_log[k].buf);
	for (int i = 0; i < S.n; i++)
		node_start(i);
	for (int k = 0; k < clients; k++) {
		struct client *c = &S.cl[k];

		c->node = pick_node();
		c->ops_left = ops;
		client_timer(c, cl_between(&S.rng, 0, 100));
	}
}

static void world_free(void)
{
	cl_queue_clear(&S.q);
	for (int i = 0; i < S.n; i++) {
		struct node *nd = &S.nodes[i];

		if (nd->up)
			node_crash(i);
		free(nd->fw);
		cl_disk_free(&nd->disk);
	}
	S.snap_k = 0;
	for (size_t k = 0; k < S.nsr; k++)
		free(S.sr[k].ans);
	S.nsr = 0;
	S.nlost = 0;
	S.lease_ms = 0;
	for (size_t k = 0; k < S.gcn; k++)
		free(S.gc[k].buf);
	free(S.gc);
	free(S.gc_term);
	S.gc = NULL;
	S.gc_term = NULL;
	S.gcn = S.gccap = 0;
	lc_state_free(S.ref);
	S.ref = NULL;
	free(S.ref_hash);
	S.ref_hash = NULL;
	free(S.ref_who);
	S.ref_who = NULL;
	S.nrd = 0;
	S.ref_hash_cap = 0;
	free(S.term_leader);
	S.term_leader = NULL;
	S.term_cap = 0;
}

static int settled_state(void)
{
	struct lc_stats st;
	size_t live = 0;

	for (int i = 0; i < S.n; i++) {
		struct node *nd = &S.nodes[i];

		if (!nd->up || !nd->sess_open ||
		    lease_view_state(&nd->view, local(i)) != LEASE_OK)
			return 0;
		live++;
	}
	/* every session the cluster still has is a live node's */
	lc_stats(S.ref, &st);
	return st.sessions == live ? 1 : 0;
}

/* After heal: every node has a live session, and every session the
 * cluster still knows (so every holder, waiter and lockfile) is one of
 * them: a closed, given-up or crashed node's session is gone. */
static void check_settled(void)
{
	uint64_t until = S.now + 4 * S.lease_ms + LIVE_BOUND / 4;

	while (!settled_state() && S.now < until)
		run_until(S.now + 50, false);
	if (!settled_state()) {
		struct lc_stats st;

		lc_stats(S.ref, &st);
		fail("after heal: %llu sessions in the cluster, not one per live node",
		     (unsigned long long)st.sessions);
	}
}

/* The end of every run: liveness after heal, then the global checks. */
static void finish_checks(void)
{
	run_until(S.heal_at + LIVE_BOUND, true);
	if (!all_done()) {
		for (int k = 0; k < S.nclients; k++)
			if (S.cl[k].state != C_DONE)
				fail("liveness: client %d still in state %d (serial %llu) %u ms after heal",
				     k + 1, S.cl[k].state, (unsigned long long)S.cl[k].serial,
				     LIVE_BOUND);
	}
	if (leader_node() < 0)
		fail("liveness: no leader after heal");
	check_log_matching();
	check_settled();
}

static void run_seed(uint64_t seed, int voters, int members)
{
	struct cl_rng pick;
	int clients;

	cl_rng_seed(&pick, seed ^ 0x5eedull);
	S.voters_arg = voters;
	S.members_arg = members;
	clients = (int)cl_between(&pick, 1, 6);
	world_init(seed, voters, clients, (int)cl_between(&pick, 3, 10));
	S.snap_k = cl_between(&pick, 8, 64);
	S.lz = linz_new(LINZ_BUDGET);
	if (!S.lz) {
		fprintf(stderr, "sim: out of memory\n");
		exit(2);
	}
	S.lzn = 0;
	S.faults_on = true;
	S.heal_at = cl_between(&S.rng, 300, 3000);
	S.fault_lo = cl_between(&S.rng, 10, 50);
	S.fault_hi = S.fault_lo + cl_between(&S.rng, 20, 300);
	at(cl_between(&S.rng, 0, 200), E_FAULT, -1, 0, 0);
	at(S.heal_at, E_HEAL, -1, 0, 0);
	at(cl_between(&S.rng, 0, 200), E_READ, -1, 0, 0);
	run_until(S.heal_at, false);
	finish_checks();
	lz_finish();
	linz_free(S.lz);
	S.lz = NULL;
	world_free();
	S.members_arg = 0;
}

/* ---- scenarios for issue 3's TODO -------------------------------------- */

static void expect(bool ok, const char *what)
{
	if (!ok)
		fail("scenario %s: %s", S.scenario, what);
	tr("ok: %s", what);
}

/* Client k asks for `type` on `file` (a release names what it holds). */
static void script(int k, uint8_t type, int file, uint8_t lt, uint32_t flags)
{
	struct lc_cmd cmd = { 0 };
	struct client *c = &S.cl[k];
	uint32_t pid = (uint32_t)k + 1;

	cmd.type = type;
	cmd.ino = S.files[file];
	cmd.lock_type = lt;
	cmd.flags = flags;
	c->cur_owner = type == LC_CMD_RELEASE ? c->hold_owner
					      : (uint64_t)pid * 100000u + ++c->acqs;
	cmd.who = (struct lc_owner){ type == LC_CMD_RELEASE ? c->hold_sess
							    : S.nodes[c->node].sess,
				     c->cur_owner, pid };
	client_request(c, &cmd);
}

/* Scripted clients, and every node's session open. */
static void open_sessions(void)
{
	for (int k = 0; k < S.nclients; k++) {
		S.cl[k].scripted = true;
		S.cl[k].gen++;           /* cancel the random start */
		S.cl[k].state = C_DONE;
	}
	run_until(S.now + 2000, false);
	for (int i = 0; i < S.n; i++)
		expect(S.nodes[i].sess_open, "every node opened its session");
}

static bool holds(struct lc_state *sm, int file, uint64_t session)
{
	struct holders hs = { .n = 0 };

	lc_locks(sm, S.files[file], collect, NULL, &hs);
	for (unsigned i = 0; i < hs.n; i++)
		if (hs.h[i].who.session == session)
			return true;
	return false;
}

/* Two nodes each believe they lead (the old leader, cut off and paused
 * like a process in a long GC, and the one elected behind it): never two
 * leaders in one term, and the cut-off one grants nothing. */
static void scenario_two_leaders(void)
{
	int old, nw = -1;

	S.scenario = "two-leaders";
	S.lease_ms = 10000;                /* SPEC's default: nothing expires here */
	world_init(1, 3, 2, 0);
	S.faults_on = false;
	S.heal_at = 0;
	run_until(1500, false);
	open_sessions();
	old = leader_node();
	expect(old >= 0, "a leader is elected");
	/* Cut the leader off, have it accept an exclusive flock on f0, and
	 * freeze it; then ask the majority side for the same lock. */
	for (int b = 0; b < S.n; b++)
		S.block[old][b] = S.block[b][old] = b != old;
	S.cl[0].node = old;
	script(0, LC_CMD_FLOCK, 0, LC_WRLCK, 0);
	S.nodes[old].paused_until = S.now + 1000;
	run_until(S.now + 600, false);
	for (int i = 0; i < S.n; i++)
		if (i != old && S.nodes[i].role == RF_LEADER)
			nw = i;
	expect(nw >= 0, "the majority elected another leader");
	expect(S.nodes[old].role == RF_LEADER, "the frozen old leader still believes it leads");
	expect(rf_term(S.nodes[nw].r) > rf_term(S.nodes[old].r),
	       "the two leaders are in different terms");
	S.cl[1].node = nw;
	script(1, LC_CMD_FLOCK, 0, LC_WRLCK, 0);
	run_until(S.now + 300, false);
	expect(S.max_leaders >= 2, "two nodes believed they led at one instant");
	expect(S.cl[1].last_status == 0 && S.cl[1].hold == H_FLOCK,
	       "the majority side granted f0");
	run_until(S.now + 1000, false);
	expect(S.nodes[old].role != RF_LEADER, "the old leader stepped down when it woke");
	expect(S.cl[0].answers == 0, "the cut-off leader answered nothing");
	heal_net();
	run_until(S.now + 3000, false);
	expect(S.cl[0].answers == 1 && S.cl[0].last_status == -EAGAIN,
	       "after healing, the cut-off request is refused (f0 is held)");
	for (int i = 0; i < S.n; i++)
		expect(holds(S.nodes[i].sm, 0, S.cl[1].hold_sess) &&
		       !holds(S.nodes[i].sm, 0, S.cl[0].req_sess),
		       "every node agrees who holds f0");
	check_log_matching();
	world_free();
}

/* Quorum loss leaves existing locks held and commits nothing new. */
static void scenario_quorum_loss(void)
{
	int l;

	S.scenario = "quorum-loss";
	S.lease_ms = 10000;                /* quorum comes back inside the lease */
	world_init(2, 3, 2, 0);
	S.faults_on = false;
	run_until(1500, false);
	open_sessions();
	l = leader_node();
	expect(l >= 0, "a leader is elected");
	S.cl[0].node = l;
	script(0, LC_CMD_FLOCK, 0, LC_WRLCK, 0);
	run_until(S.now + 500, false);
	expect(S.cl[0].hold == H_FLOCK, "client 1 holds f0");
	for (int i = 0; i < S.n; i++)
		if (i != l)
			node_crash(i);
	S.cl[1].node = l;
	script(1, LC_CMD_FLOCK, 1, LC_WRLCK, 0);
	run_until(S.now + 3000, false);
	expect(S.cl[1].answers == 0, "no new grant commits without a quorum");
	expect(holds(S.nodes[l].sm, 0, S.cl[0].hold_sess), "the survivor still shows f0 held");
	expect(S.nodes[l].role != RF_LEADER, "the survivor stepped down (check-quorum)");
	for (int i = 0; i < S.n; i++)
		if (i != l)
			node_start(i);
	run_until(S.now + 4000, false);
	expect(S.cl[1].answers == 1 && S.cl[1].hold == H_FLOCK,
	       "after the quorum returns, the new request is granted");
	for (int i = 0; i < S.n; i++)
		expect(holds(S.nodes[i].sm, 0, S.cl[0].hold_sess),
		       "every node, restarted ones included, shows f0 still held");
	expect(S.cl[0].lost == 0 && S.cl[0].hold == H_FLOCK,
	       "the holder never lost its lock (contact came back inside the lease)");
	check_log_matching();
	world_free();
}

/* Raft's figure 8: an entry of an old term, once on a majority, must not
 * be committed by counting, or a leader of a newer conflicting entry
 * overwrites it.  Entries here are near the message budget, so the old
 * entry and the new leader's no-op travel in separate batches, and the
 * batches holding the no-op are dropped. */
static int f8_old, f8_f2, f8_s5 = -1;
static uint64_t f8_noop_term;

static void f8_isolate(int i)
{
	for (int b = 0; b < S.n; b++)
		S.block[i][b] = S.block[b][i] = b != i;
}

static void f8_leader(int i)
{
	if (f8_s5 < 0 && i != f8_old && i != f8_f2) {
		f8_s5 = i;
		f8_isolate(i);         /* its no-op stays its own */
		tr("scenario: n%d leads alone in term %llu", i + 1,
		   (unsigned long long)rf_term(S.nodes[i].r));
	}
}

static bool f8_drop(int from, const struct rf_msg *m)
{
	if (!f8_noop_term || m->type != RF_MSG_APPEND)
		return false;
	for (uint32_t k = 0; k < m->n_entries; k++)
		if (m->entries[k].type == RF_ENTRY_NOOP && m->entries[k].term > f8_noop_term)
			return true;
	return false;
}

static void scenario_figure8(void)
{
	static uint8_t data[62000];
	struct lc_cmd cmd = { 0 };
	uint8_t *buf;
	size_t len;
	uint64_t x_idx;
	int nl;

	S.scenario = "figure8";
	S.lease_ms = 10000;
	world_init(3, 5, 1, 0);
	S.faults_on = false;
	run_until(1500, false);
	open_sessions();
	f8_old = leader_node();
	expect(f8_old >= 0, "a leader is elected");
	f8_f2 = (f8_old + 1) % S.n;
	/* A write whose entry alone nearly fills a batch. */
	cmd.type = LC_CMD_WRITE;
	cmd.ino = S.files[1];
	cmd.data = data;
	cmd.data_len = 61000;
	cmd.origin = 1;
	cmd.serial = 99;
	if (lc_cmd_encode(&cmd, &buf, &len))
		fail("encode");
	free(buf);
	cmd.data_len = (uint32_t)(cmd.data_len + (RF_ENTRY_MAX - 4) - len);
	cmd.origin = cmd.serial = 0;
	/* (a) the leader gets the write onto one follower only */
	for (int i = 0; i < S.n; i++)
		if (i != f8_old && i != f8_f2) {
			S.block[f8_old][i] = S.block[i][f8_old] = true;
			S.block[f8_f2][i] = S.block[i][f8_f2] = true;
		}
	S.cl[0].node = f8_old;
	client_request(&S.cl[0], &cmd);
	run_until(S.now + 60, false);
	x_idx = rf_last_index(S.nodes[f8_old].r);
	expect(rf_last_index(S.nodes[f8_f2].r) == x_idx, "the write reached one follower");
	node_crash(f8_old);
	/* (b) the other three elect a leader whose no-op stays its own */
	leader_hook = f8_leader;
	run_until(S.now + 1500, false);
	leader_hook = NULL;
	expect(f8_s5 >= 0, "the other side elected a leader and lost it at once");
	f8_noop_term = rf_term(S.nodes[f8_s5].r);
	run_until(S.now + 50, false);
	node_crash(f8_s5);
	/* (c) the old leader returns, wins, and re-replicates the old write,
	 * but every batch with its new no-op is lost */
	heal_net();
	f8_isolate(f8_s5);
	drop_hook = f8_drop;
	node_start(f8_old);
	run_until(S.now + 1500, false);
	nl = leader_node();
	expect(nl == f8_old || nl == f8_f2, "a node holding the write leads again");
	expect(S.gcn < x_idx, "the old-term write is not committed by counting");
	/* (d) that leader dies; the lone leader's node returns and wins */
	node_crash(nl);
	heal_net();
	/* only the lone leader's node can reach the others */
	for (int i = 0; i < S.n; i++)
		if (i != f8_s5 && i != nl) {
			f8_isolate(i);
			S.block[i][f8_s5] = S.block[f8_s5][i] = false;
		}
	node_start(f8_s5);
	run_until(S.now + 1500, false);
	expect(leader_node() == f8_s5, "the lone leader's node leads again");
	drop_hook = NULL;
	f8_noop_term = 0;
	heal_net();
	node_start(nl);
	run_until(S.now + 3000, false);
	/* The writer's node crashed in (a): its client got EIO, once. */
	expect(S.cl[0].answers == 1 && S.cl[0].last_status == -EIO,
	       "the write's client got one answer (EIO: its node died)");
	check_log_matching();
	f8_s5 = -1;
	world_free();
}

/* ---- scenarios: sessions and leases ---------------------------------------- */

static void isolate(int i, bool on)
{
	for (int b = 0; b < S.n; b++)
		if (b != i)
			S.block[i][b] = S.block[b][i] = on;
}

/* lost-report: a lost delivery report affects only its own request.  (1)
 * The first forward of one request is lost: it completes once, after the
 * node's retry.  (2) Everything towards its node is lost for a while after
 * the forward got through (the commit and the ack): the node retries the
 * same (origin, serial), the log answers the retry from its dedup window,
 * and the client gets one answer.  Other clients are never held up. */
static uint64_t lr_sess, lr_serial;
static int lr_drops, lr_victim = -1;
static uint64_t lr_until;

static bool lr_sdrop(int from, int to, const struct smsg *m)
{
	(void)from;
	if (m->kind == SM_FWD && m->session == lr_sess && m->serial == lr_serial &&
	    !lr_drops) {
		lr_drops++;
		return true;
	}
	return to == lr_victim && S.now < lr_until;
}

static bool lr_drop(int from, const struct rf_msg *m)
{
	(void)from;
	return (int)m->to - 1 == lr_victim && S.now < lr_until;
}

static void scenario_lost_report(void)
{
	int l, a, b;
	struct ans *x;
	uint64_t rel;

	S.scenario = "lost-report";
	world_init(4, 3, 3, 0);
	S.faults_on = false;
	run_until(1500, false);
	open_sessions();
	l = leader_node();
	expect(l >= 0, "a leader is elected");
	a = (l + 1) % S.n;
	b = (l + 2) % S.n;
	S.cl[0].node = a;
	S.cl[1].node = b;
	S.cl[2].node = b;
	/* (1) the first forward of c1's request is lost */
	lr_sess = S.nodes[a].sess;
	lr_serial = S.nodes[a].sserial + 1;
	sdrop_hook = lr_sdrop;
	drop_hook = lr_drop;
	script(0, LC_CMD_FLOCK, 0, LC_WRLCK, 0);
	run_until(S.now + 30, false);
	script(1, LC_CMD_FLOCK, 1, LC_WRLCK, 0);
	run_until(S.now + 100, false);
	expect(lr_drops == 1, "the first forward was lost");
	expect(S.cl[1].answers == 1 && S.cl[1].last_status == 0,
	       "another client's request meanwhile completes at once");
	expect(S.cl[0].answers == 0, "the request whose forward was lost waits");
	run_until(S.now + 1000, false);
	x = ans_of(lr_sess, lr_serial);
	expect(S.cl[0].answers == 1 && S.cl[0].last_status == 0 && S.cl[0].hold == H_FLOCK,
	       "after the node's retry it completes, once, granted");
	expect(x && x->applied == 1, "it is in the log once");
	/* (2) the answer path to the node is lost after the forward got in */
	lr_victim = a;
	lr_until = S.now + 450;
	script(0, LC_CMD_RELEASE, 0, 0, 0);
	rel = S.cl[0].serial;
	run_until(S.now + 30, false);
	script(2, LC_CMD_FLOCK, 2, LC_WRLCK, 0);
	run_until(S.now + 100, false);
	expect(S.cl[2].answers == 1 && S.cl[2].last_status == 0,
	       "another client's request meanwhile completes at once");
	expect(S.cl[0].answers == 1, "the release whose answer was lost waits");
	run_until(S.now + 1500, false);
	x = ans_of(S.cl[0].req_sess, rel);
	expect(S.cl[0].answers == 2 && S.cl[0].last_status == 0,
	       "the release completes once, with its first answer");
	expect(x && x->applied >= 2, "the retry reached the log and was answered by dedup");
	for (int i = 0; i < S.n; i++)
		expect(!holds(S.nodes[i].sm, 0, S.cl[0].req_sess), "f0 is free on every node");
	expect(S.cl[0].lost == 0 && S.cl[1].lost == 0 && S.cl[2].lost == 0, "nothing was lost");
	sdrop_hook = NULL;
	drop_hook = NULL;
	lr_victim = -1;
	lr_drops = 0;
	check_log_matching();
	world_free();
}

/* Client 0 on node a holds f0; client 1 on node b waits for it. */
static void holder_and_waiter(uint64_t seed, int voters, int *l, int *a, int *b)
{
	world_init(seed, voters, 2, 0);
	S.faults_on = false;
	run_until(1500, false);
	open_sessions();
	*l = leader_node();
	expect(*l >= 0, "a leader is elected");
	*a = (*l + 1) % S.n;
	*b = (*l + 2) % S.n;
	S.cl[0].node = *a;
	S.cl[1].node = *b;
	script(0, LC_CMD_FLOCK, 0, LC_WRLCK, 0);
	run_until(S.now + 300, false);
	expect(S.cl[0].hold == H_FLOCK, "client 1 holds f0");
	script(1, LC_CMD_FLOCK, 0, LC_WRLCK, LC_LK_WAIT);
	run_until(S.now + 300, false);
	expect(S.cl[1].answers == 0, "client 2 waits for f0");
}

/* lease-expiry: a node holding a lock is cut off past its lease: its
 * client is told the lock is lost before the leader frees it, and the
 * waiter on another node gets it with a higher token. */
static void scenario_lease_expiry(void)
{
	int l, a, b;
	uint64_t sa, tok, cut;
	struct sreg *r;

	S.scenario = "lease-expiry";
	holder_and_waiter(5, 3, &l, &a, &b);
	sa = S.nodes[a].sess;
	tok = S.cl[0].hold_token;
	isolate(a, true);
	cut = S.now;
	run_until(S.now + 3 * S.lease_ms, false);
	r = sreg_of(sa);
	expect(S.cl[0].lost == 1 && S.cl[0].hold == H_NONE, "the holder was told its lock is lost");
	expect(r && r->closed, "the leader closed the cut-off node's session");
	expect(S.cl[0].lost_at <= r->closed_at, "... after the holder was told");
	expect(r->closed_at >= cut + S.lease_ms - S.lease_ms / 4 - 2 * CLOCK_DRIFT,
	       "... and not before a lease without contact");
	expect(S.cl[1].answers == 1 && S.cl[1].last_status == 0 && S.cl[1].hold == H_FLOCK,
	       "the waiter on another node got f0");
	expect(S.cl[1].hold_token > tok, "with a higher token");
	isolate(a, false);
	run_until(S.now + 2000, false);
	expect(S.nodes[a].sess != sa && S.nodes[a].sess_open,
	       "the node opened a new session once it could");
	check_log_matching();
	world_free();
}

/* lease-heal: the same cut, shorter than the lease: nothing is lost. */
static void scenario_lease_heal(void)
{
	int l, a, b;
	uint64_t sa;

	S.scenario = "lease-heal";
	holder_and_waiter(6, 3, &l, &a, &b);
	sa = S.nodes[a].sess;
	isolate(a, true);
	run_until(S.now + S.lease_ms / 2, false);
	isolate(a, false);
	run_until(S.now + 3 * S.lease_ms, false);
	expect(S.cl[0].lost == 0 && S.cl[0].hold == H_FLOCK, "the holder still holds f0");
	expect(S.nodes[a].sess == sa && !sreg_of(sa)->closed, "its session lives on");
	expect(S.cl[1].answers == 0, "the waiter still waits");
	script(0, LC_CMD_RELEASE, 0, 0, 0);
	run_until(S.now + 500, false);
	expect(S.cl[1].answers == 1 && S.cl[1].hold == H_FLOCK, "after the release the waiter gets f0");
	check_log_matching();
	world_free();
}

/* leader-change-grace: the leader dies while a node holds a lock and that
 * node falls silent at the same instant: the new leader does not expire
 * its session before a full lease from its own election. */
static uint64_t g_at;
static int g_node = -1;

static void g_leader(int i)
{
	if (g_node < 0) {
		g_node = i;
		g_at = S.now;
	}
}

static void scenario_leader_change_grace(void)
{
	int l, a, b;
	uint64_t sa;
	struct sreg *r;

	S.scenario = "leader-change-grace";
	holder_and_waiter(7, 5, &l, &a, &b);
	sa = S.nodes[a].sess;
	isolate(a, true);
	node_crash(l);
	g_node = -1;
	leader_hook = g_leader;
	run_until(S.now + 4 * S.lease_ms, false);
	leader_hook = NULL;
	r = sreg_of(sa);
	expect(g_node >= 0 && g_node != a, "the others elected a new leader");
	expect(r && r->closed, "the new leader closed the silent node's session");
	expect(r->closed_at >= g_at + S.lease_ms - 2 * CLOCK_DRIFT,
	       "... not before a full lease from its election");
	expect(S.cl[0].lost == 1 && S.cl[0].lost_at <= r->closed_at,
	       "the holder was told its lock is lost first");
	expect(S.cl[1].hold == H_FLOCK, "the waiter got f0");
	check_log_matching();
	world_free();
}

static void run_scenario(const char *name)
{
	S.voters_arg = 0;
	if (!strcmp(name, "two-leaders"))
		scenario_two_leaders();
	else if (!strcmp(name, "quorum-loss"))
		scenario_quorum_loss();
	else if (!strcmp(name, "figure8"))
		scenario_figure8();
	else if (!strcmp(name, "lost-report"))
		scenario_lost_report();
	else if (!strcmp(name, "lease-expiry"))
		scenario_lease_expiry();
	else if (!strcmp(name, "lease-heal"))
		scenario_lease_heal();
	else if (!strcmp(name, "leader-change-grace"))
		scenario_leader_change_grace();
	else {
		fprintf(stderr, "sim: unknown scenario %s\n", name);
		exit(2);
	}
	printf("scenario %s: ok\n", name);
	S.scenario = NULL;
}

/* ---- measurement ---------------------------------------------------------- */

/* Cost of one acquire+release pair of a blocking exclusive flock (every
 * message counted: Raft, forwards and their acks, keepalives and theirs). */
static void measure(int clients, int pairs, int mode)
{
	uint64_t m0, f0, k0, s0, p;
	double tot;

	world_init(42, 3, clients, pairs);
	S.measuring = mode;
	S.faults_on = false;
	S.heal_at = 0;
	for (int k = 0; k < clients; k++)          /* start once sessions are open */
		client_timer(&S.cl[k], 1000);
	S.pairs = 0;
	run_until(1000, false);
	m0 = S.msgs;
	f0 = S.fmsgs;
	k0 = S.kmsgs;
	s0 = S.syncs;
	run_until(600000, true);
	if (!all_done())
		fail("measurement run did not finish");
	p = S.pairs ? S.pairs : 1;
	tot = (double)(S.msgs - m0 + S.fmsgs - f0 + S.kmsgs - k0);
	printf("  %2d client%s %s: %5llu pairs in %llu ms: %.2f messages per pair (raft %.2f, "
	       "forward %.2f, keepalive %.2f), %.3f fsyncs per pair per node (%.3f summed "
	       "over the 3 nodes)\n", clients, clients > 1 ? "s" : " ",
	       mode == 2 ? "own POSIX range each  " : "flock on 3 files      ",
	       (unsigned long long)S.pairs, (unsigned long long)(S.now - 1000),
	       tot / (double)p, (double)(S.msgs - m0) / (double)p,
	       (double)(S.fmsgs - f0) / (double)p, (double)(S.kmsgs - k0) / (double)p,
	       (double)(S.syncs - s0) / 3.0 / (double)p, (double)(S.syncs - s0) / (double)p);
	S.measuring = 0;
	world_free();
}

static void measure_all(void)
{
	printf("cost per acquire+release pair (blocking exclusive locks, no faults, 3 voters, "
	       "heartbeats and keepalives included):\n");
	measure(1, 200, 1);
	measure(64, 20, 1);
	measure(64, 20, 2);
}

/* ---- main ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
		"usage: sim [--seeds N] [--from S] [--seed S] [--voters K] [--members M] [--trace]\n"
		"           [--conf-faults] [--rejoin-faults]\n"
		"           [--scenario[=| ]two-leaders|quorum-loss|figure8|lost-report|lease-expiry|\n"
		"                       lease-heal|leader-change-grace]\n"
		"           [--break=vote-any-log|ack-unsynced|commit-old-term|grant-twice|no-grace]\n"
		"           [--no-measure] [--no-scenarios] [--measure]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t from = 1, seeds = 100, one = 0;
	bool have_one = false, measure_on = true, scenarios = true, measure_only = false;
	int voters = 0, members = -1;
	const char *scen = NULL;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--seeds") && i + 1 < argc)
			seeds = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(a, "--from") && i + 1 < argc)
			from = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(a, "--seed") && i + 1 < argc) {
			one = strtoull(argv[++i], NULL, 10);
			have_one = true;
		} else if (!strcmp(a, "--voters") && i + 1 < argc) {
			voters = atoi(argv[++i]);
			if (voters < 1 || voters > (int)RF_MAX_VOTERS)
				usage();
		} else if (!strcmp(a, "--members") && i + 1 < argc) {
			members = atoi(argv[++i]);
			if (members < 0 || members > MAXM)
				usage();
		} else if (!strcmp(a, "--trace"))
			S.trace_all = true;
		else if (!strcmp(a, "--conf-faults"))
			S.conf_faults = true;
		else if (!strcmp(a, "--rejoin-faults"))
			S.rejoin_faults = true;
		else if (!strcmp(a, "--no-measure"))
			measure_on = false;
		else if (!strcmp(a, "--no-scenarios"))
			scenarios = false;
		else if (!strcmp(a, "--measure"))
			measure_only = true;
		else if (!strncmp(a, "--scenario=", 11))
			scen = a + 11;
		else if (!strcmp(a, "--scenario") && i + 1 < argc)
			scen = argv[++i];
		else if (!strncmp(a, "--break=", 8)) {
			S.brk_name = a + 8;
			if (!strcmp(S.brk_name, "vote-any-log"))
				S.brk = RF_BREAK_VOTE_ANY_LOG;
			else if (!strcmp(S.brk_name, "ack-unsynced"))
				S.brk = RF_BREAK_ACK_UNSYNCED;
			else if (!strcmp(S.brk_name, "commit-old-term"))
				S.brk = RF_BREAK_COMMIT_OLD_TERM;
			else if (!strcmp(S.brk_name, "grant-twice"))
				S.brk_grant_twice = true;
			else if (!strcmp(S.brk_name, "no-grace"))
				S.brk_no_grace = true;

			else
				usage();
		} else
			usage();
	}
	if (scen) {
		run_scenario(scen);
		return 0;
	}
	if (measure_only) {
		measure_all();
		return 0;
	}
	if (have_one) {
		run_seed(one, voters, members);
		printf("seed %llu: ok (%d voters and %d members at first, %llu events, "
		       "lock history %s)\n", (unsigned long long)one, S.nv, S.n - S.nv,
		       (unsigned long long)S.events,
		       S.lz_unknown ? "unknown" : "linearizable");
		return 0;
	}
	if (scenarios) {
		run_scenario("two-leaders");
		run_scenario("quorum-loss");
		run_scenario("figure8");
		run_scenario("lost-report");
		run_scenario("lease-expiry");
		run_scenario("lease-heal");
		run_scenario("leader-change-grace");
	}
	S.events = S.msgs = S.syncs = S.cmds = 0;
	for (uint64_t s = from; s < from + seeds; s++)
		run_seed(s, voters, members);
	free(S.lzv);
	S.lzv = NULL;
	S.lzn = S.lzcap = 0;
	printf("%llu seeds from %llu: ok (%llu events, %llu messages, %llu fsyncs, "
	       "%llu commands)\n", (unsigned long long)seeds, (unsigned long long)from,
	       (unsigned long long)S.events, (unsigned long long)S.msgs,
	       (unsigned long long)S.syncs, (unsigned long long)S.cmds);
	printf("node sessions: %llu closed by the cluster, %llu locks told lost; "
	       "%llu forward and %llu keepalive messages\n", (unsigned long long)S.expiries,
	       (unsigned long long)S.losts, (unsigned long long)S.fmsgs,
	       (unsigned long long)S.kmsgs);
	printf("snapshots: %llu taken, %llu installed from a leader, %llu restarts from one\n",
	       (unsigned long long)S.snaps, (unsigned long long)S.installs,
	       (unsigned long long)S.restores);
	printf("membership: %llu promotions, %llu demotions, %llu removals proposed (%llu "
	       "busy); %llu nodes removed, %llu re-added with a fresh disk\n",
	       (unsigned long long)S.conf_ok[RF_CONF_ADD_VOTER],
	       (unsigned long long)S.conf_ok[RF_CONF_DEMOTE],
	       (unsigned long long)S.conf_ok[RF_CONF_REMOVE], (unsigned long long)S.conf_busy,
	       (unsigned long long)S.removals, (unsigned long long)S.readds);
	if (S.rejoin_faults)
		printf("rejoins: %llu voters lost their log and caught up again\n",
		       (unsigned long long)S.rejoins);
	printf("reads: %llu asked at a leader (%llu under its lease, %llu needing a quorum "
	       "round), %llu served and checked, %llu failed (leadership lost), %llu refused\n",
	       (unsigned long long)S.rd_asked, (unsigned long long)S.rd_lease,
	       (unsigned long long)S.rd_round, (unsigned long long)S.rd_served,
	       (unsigned long long)S.rd_failed, (unsigned long long)S.rd_refused);
	printf("lock histories: %llu checked, %llu linearizable, %llu unknown "
	       "(%llu ops, budget %u steps each)\n", (unsigned long long)S.lz_checked,
	       (unsigned long long)S.lz_linear, (unsigned long long)S.lz_unknown,
	       (unsigned long long)S.lz_ops, LINZ_BUDGET);
	printf("  ops checked: %llu flock, %llu POSIX, %llu semaphore (flock and slots), "
	       "%llu lockfile, %llu release-all\n", (unsigned long long)S.lz_kind[0],
	       (unsigned long long)S.lz_kind[1], (unsigned long long)S.lz_kind[2],
	       (unsigned long long)S.lz_kind[3], (unsigned long long)S.lz_kind[4]);
	if (measure_on && !S.brk && !S.brk_grant_twice && !S.brk_no_grace) {
		measure_all();
	}
	return 0;
}
