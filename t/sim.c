/*
 * t/sim.c - the deterministic cluster simulator (DESIGN.md principle 2).
 *
 * From one seed it runs 1..7 Raft voters (lockcore/raft.h), each applying
 * the committed log to its own lockcore state (lc.h), over a fake network
 * that delays, drops, duplicates, reorders and partitions, on fake disks
 * that lose unsynced writes when a node crashes, with pauses, bounded
 * clock drift and lock clients that retry with the same (origin, serial).
 * Every run ends with invariant checks; a violation prints the seed, the
 * last events and the replay command, and exits 1.  Every seed's flock
 * history (what the clients saw, with simulated call and return times) must
 * also be linearizable against a sequential reader/writer lock (t/linz.h).
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
#include "lockcore/raft.h"
#include "t/linz.h"

#define MAXN       7
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
#define REQ_TIMEOUT 400u
#define LINZ_BUDGET 2000000u            /* search steps per seed's history */

/* ---- deterministic PRNG: xoshiro256** seeded by splitmix64 ------------- */

struct rng { uint64_t s[4]; };

static uint64_t sm64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = sm64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rnd(struct rng *r)
{
	uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
	s[2] ^= t; s[3] = rotl(s[3], 45);
	return res;
}

/* Uniform in [lo, hi]. */
static uint64_t between(struct rng *r, uint64_t lo, uint64_t hi)
{
	return lo + rnd(r) % (hi - lo + 1);
}

/* True with probability pct/100. */
static bool chance(struct rng *r, unsigned pct)
{
	return rnd(r) % 100 < pct;
}

/* ---- world ------------------------------------------------------------- */

enum { E_MSG = 1, E_TICK, E_SYNC, E_CLIENT, E_FAULT, E_RESTART, E_HEAL, E_UNPAUSE };

struct ev {
	uint64_t t, seq;
	int type, node, a;
	uint64_t gen;
	uint8_t *buf;
	size_t len;
};

struct dent { uint64_t term; uint8_t type; uint32_t len; uint8_t *buf; };

struct pwrite {                         /* a write not yet synced */
	uint64_t seq;
	int has_hs, has_ent;
	uint64_t term, vote, first;
	struct dent *e;
	size_t n;
};

struct node {
	bool up;
	struct raft *r;
	struct lc_state *sm;
	uint64_t epoch, tick_gen;
	/* disk: what survives a crash */
	uint64_t d_term, d_vote;
	struct dent *dlog;
	size_t dn, dcap;
	struct pwrite *pw;
	size_t npw, cappw;
	bool sync_sched;
	uint64_t paused_until;
	uint64_t clock_off, last_local;
	uint8_t role;
};

enum { C_IDLE = 0, C_WAIT, C_PENDING, C_DONE };
enum { H_NONE = 0, H_FLOCK, H_POSIX, H_FILE };

struct client {
	uint64_t session, serial;
	int node, state;
	int pinned;                        /* scenarios: always this node, or -1 */
	uint64_t gen;
	uint8_t *buf;
	size_t len;
	struct lc_cmd cmd;                 /* current request */
	int ops_left;
	bool opened, scripted;
	int hold;                          /* H_*: what it holds */
	uint64_t hold_ino, hold_owner;
	char hold_name[8];
	uint64_t sent_at;
	bool lz_on;                        /* the current request goes into the history */
	struct linz_op lz;                 /* ... as this op (out and ret still open) */
	int answers;                       /* final answers received */
	int last_status;
	uint64_t last_token;
};

struct ans { bool final; int status; uint64_t token; unsigned applied; };

static struct sim {
	uint64_t seed;
	struct rng rng;
	int n, nclients;
	int voters_arg;                    /* --voters as given (0: the seed picks) */
	uint64_t now, evseq;
	struct ev *heap;
	size_t nheap, capheap;
	struct node nodes[MAXN];
	struct client cl[MAXC];
	bool block[MAXN][MAXN];
	unsigned drop_pct, dup_pct;
	bool faults_on;
	uint64_t fault_lo, fault_hi;       /* ms between faults */
	uint64_t heal_at;
	uint32_t brk;
	bool brk_grant_twice;              /* sim-side break: fake one try-acquire's answer */
	bool trace_all;
	const char *brk_name;
	const char *scenario;
	/* what the cluster committed, as observed, and the reference state */
	struct dent *gc;
	uint64_t *gc_term;                 /* lowest term a node had when it applied it */
	size_t gcn, gccap;
	struct lc_state *ref;
	uint64_t *ref_hash;
	size_t ref_hash_cap;
	struct ans ans[MAXC][512];
	uint64_t files[NFILES];
	uint64_t last_token[NFILES];
	uint64_t *term_leader;
	size_t term_cap;
	/* the flock history of this seed (NULL outside run_seed) */
	struct linz *lz;
	struct linz_op *lzv;               /* ... its ops, handed over at the end */
	size_t lzn, lzcap;
	/* metrics */
	uint64_t msgs, syncs, cmds, events, max_leaders;
	uint64_t lz_checked, lz_linear, lz_unknown, lz_ops;
	/* trace ring */
	char trace[TRACE_KEEP][TRACE_LEN];
	unsigned tpos, tcount;
} S;

/* Scenario hooks: drop chosen messages; act the instant a node leads
 * (before its first messages leave). */
static bool (*drop_hook)(int from, const struct rf_msg *m);
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
	printf("%s%s%s%s --trace\n", S.brk_name ? " --break=" : "",
	       S.brk_name ? S.brk_name : "", S.scenario ? " --scenario=" : "",
	       S.scenario ? S.scenario : "");
	fflush(stdout);
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q) {
		fprintf(stderr, "sim: out of memory\n");
		exit(2);
	}
	return q;
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
	uint8_t *q = xrealloc(NULL, n);

	if (n)
		memcpy(q, p, n);
	return q;
}

/* ---- event heap --------------------------------------------------------- */

static bool ev_less(const struct ev *a, const struct ev *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void push(struct ev e)
{
	size_t i;

	if (S.nheap == S.capheap) {
		S.capheap = S.capheap ? S.capheap * 2 : 256;
		S.heap = xrealloc(S.heap, S.capheap * sizeof(*S.heap));
	}
	e.seq = ++S.evseq;
	i = S.nheap++;
	while (i && ev_less(&e, &S.heap[(i - 1) / 2])) {
		S.heap[i] = S.heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	S.heap[i] = e;
}

static struct ev pop(void)
{
	struct ev top = S.heap[0], last = S.heap[--S.nheap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= S.nheap)
			break;
		if (c + 1 < S.nheap && ev_less(&S.heap[c + 1], &S.heap[c]))
			c++;
		if (!ev_less(&S.heap[c], &last))
			break;
		S.heap[i] = S.heap[c];
		i = c;
	}
	if (S.nheap)
		S.heap[i] = last;
	return top;
}

static void at(uint64_t t, int type, int node, int a, uint64_t gen)
{
	push((struct ev){ .t = t, .type = type, .node = node, .a = a, .gen = gen });
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

static struct client *client_of(uint64_t session)
{
	if (session >= 1 && session <= (uint64_t)S.nclients)
		return &S.cl[session - 1];
	return NULL;
}

static void ref_apply(uint64_t idx)
{
	const struct dent *e = &S.gc[idx - 1];
	struct lc_out out = { 0 };
	struct lc_cmd cmd;
	struct lc_stats before, after;
	bool dup = false;
	struct client *c;

	if (idx >= S.ref_hash_cap) {
		S.ref_hash_cap = S.ref_hash_cap ? S.ref_hash_cap * 2 : 1024;
		while (S.ref_hash_cap <= idx)
			S.ref_hash_cap *= 2;
		S.ref_hash = xrealloc(S.ref_hash, S.ref_hash_cap * sizeof(uint64_t));
	}
	if (e->type == RF_ENTRY_CMD) {
		if (lc_cmd_decode(e->buf, e->len, &cmd))
			fail("committed entry %llu does not decode", (unsigned long long)idx);
		c = client_of(cmd.origin);
		if (c && cmd.serial < 512 && S.ans[c - S.cl][cmd.serial].applied)
			dup = true;
		lc_stats(S.ref, &before);
		if (lc_apply(S.ref, idx, &cmd, &out) < 0)
			fail("reference apply of %llu failed", (unsigned long long)idx);
		lc_stats(S.ref, &after);
		if (dup && (before.grants != after.grants ||
			    before.releases != after.releases))
			fail("retry of (%llu,%llu) applied twice",
			     (unsigned long long)cmd.origin, (unsigned long long)cmd.serial);
		if (c && cmd.serial < 512)
			S.ans[c - S.cl][cmd.serial].applied++;
		S.cmds++;
		for (size_t i = 0; i < out.n; i++) {
			struct lc_completion *cp = &out.v[i];
			struct client *w = client_of(cp->origin);

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
			if (w && cp->serial < 512 && cp->status != LC_PENDING && !(dup && i == 0)) {
				struct ans *a = &S.ans[w - S.cl][cp->serial];

				a->final = true;
				a->status = cp->status;
				a->token = cp->token;
			}
		}
		lc_out_free(&out);
		check_holders(S.ref, "reference");
	}
	S.ref_hash[idx] = lc_state_hash(S.ref);
}

static bool dent_eq(const struct dent *a, const struct rf_entry *b)
{
	return a->term == b->term && a->type == b->type && a->len == b->len &&
	       (!a->len || !memcmp(a->buf, b->buf, a->len));
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
		S.gc = xrealloc(S.gc, S.gccap * sizeof(*S.gc));
		S.gc_term = xrealloc(S.gc_term, S.gccap * sizeof(*S.gc_term));
	}
	S.gc_term[S.gcn] = t;
	S.gc[S.gcn++] = (struct dent){ e->term, e->type, e->len, dup_bytes(e->buf, e->len) };
	ref_apply(idx);
}

static void client_answer(struct client *c, int node, const struct lc_completion *cp);
static int leader_node(void);

static void node_apply(int i, uint64_t idx, const struct rf_entry *e)
{
	struct node *nd = &S.nodes[i];
	struct lc_out out = { 0 };
	struct lc_cmd cmd;

	record_commit(i, idx, e);
	if (e->type == RF_ENTRY_CMD) {
		if (lc_cmd_decode(e->buf, e->len, &cmd) ||
		    lc_apply(nd->sm, idx, &cmd, &out) < 0)
			fail("node %d cannot apply %llu", i + 1, (unsigned long long)idx);
		for (size_t k = 0; k < out.n; k++) {
			struct client *c = client_of(out.v[k].origin);

			if (c)
				client_answer(c, i, &out.v[k]);
		}
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

		if (S.gc_term[k - 1] >= rf_term(r))
			continue;
		if (!e || !dent_eq(&S.gc[k - 1], e))
			fail("leader %d of term %llu lacks committed entry %zu", i + 1,
			     (unsigned long long)rf_term(r), k);
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
				S.term_leader = xrealloc(S.term_leader, S.term_cap * sizeof(uint64_t));
				memset(S.term_leader + old, 0, (S.term_cap - old) * sizeof(uint64_t));
			}
			if (S.term_leader[u->term] && S.term_leader[u->term] != (uint64_t)i + 1)
				fail("two leaders in term %llu: n%llu and n%d",
				     (unsigned long long)u->term,
				     (unsigned long long)S.term_leader[u->term], i + 1);
			S.term_leader[u->term] = (uint64_t)i + 1;
			check_leader_complete(i);
			if (leader_hook)
				leader_hook(i);
		}
		nd->role = u->role;
	}
	if (u->write_seq) {
		struct pwrite w = { .seq = u->write_seq };

		if (u->flags & RF_UPD_HARDSTATE) {
			w.has_hs = 1;
			w.term = u->hs_term;
			w.vote = u->hs_vote;
		}
		if (u->flags & RF_UPD_ENTRIES) {
			w.has_ent = 1;
			w.first = u->first_index;
			w.n = u->n_entries;
			w.e = xrealloc(NULL, w.n * sizeof(*w.e));
			for (size_t k = 0; k < w.n; k++) {
				const struct rf_entry *e = &u->entries[k];

				w.e[k] = (struct dent){ e->term, e->type, e->len,
							dup_bytes(e->buf, e->len) };
			}
		}
		if (nd->npw == nd->cappw) {
			nd->cappw = nd->cappw ? nd->cappw * 2 : 8;
			nd->pw = xrealloc(nd->pw, nd->cappw * sizeof(*nd->pw));
		}
		nd->pw[nd->npw++] = w;
		if (!nd->sync_sched) {
			nd->sync_sched = true;
			at(S.now + (chance(&S.rng, 10) ? between(&S.rng, 5, 30)
						       : between(&S.rng, 1, 3)),
			   E_SYNC, i, 0, nd->epoch);
		}
	}
	for (size_t k = 0; k < u->n_msgs; k++)
		net_send(i, &u->msgs[k]);
	for (size_t k = 0; k < u->n_committed; k++)
		node_apply(i, u->commit_first + k, &u->committed[k]);
	nd->tick_gen++;
	{
		uint64_t l = local(i), t = u->next_deadline_ms > l ?
				       S.now + (u->next_deadline_ms - l) : S.now + 1;

		at(t, E_TICK, i, 0, nd->tick_gen);
	}
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
	return rc ? 0 : u.proposed_index;
}

static void node_start(int i)
{
	struct node *nd = &S.nodes[i];
	struct rf_config cfg = { 0 };
	struct rf_event ev = { .type = RF_EV_START };
	struct rf_entry *es;

	rf_config_defaults(&cfg);
	cfg.id = (uint64_t)i + 1;
	cfg.n_voters = (unsigned)S.n;
	for (int k = 0; k < S.n; k++)
		cfg.voters[k] = (uint64_t)k + 1;
	cfg.election_timeout_min_ms = ELECT_MIN;
	cfg.election_timeout_max_ms = ELECT_MAX;
	cfg.heartbeat_ms = HEARTBEAT;
	cfg.max_clock_drift_ms = CFG_DRIFT;
	cfg.seed = rnd(&S.rng);
	cfg.test_break = S.brk;
	if (rf_new(&cfg, &nd->r))
		fail("rf_new failed");
	nd->sm = lc_state_new();
	if (!nd->sm)
		fail("lc_state_new failed");
	es = xrealloc(NULL, nd->dn * sizeof(*es));
	for (size_t k = 0; k < nd->dn; k++)
		es[k] = (struct rf_entry){ nd->dlog[k].term, nd->dlog[k].type,
					   nd->dlog[k].len, nd->dlog[k].buf };
	ev.start.term = nd->d_term;
	ev.start.vote = nd->d_vote;
	ev.start.entries = es;
	ev.start.n_entries = nd->dn;
	nd->up = true;
	nd->role = RF_FOLLOWER;
	tr("n%d starts: term %llu vote %llu log %zu", i + 1,
	   (unsigned long long)nd->d_term, (unsigned long long)nd->d_vote, nd->dn);
	step(i, &ev);
	free(es);
}

static void free_pw(struct pwrite *w)
{
	for (size_t k = 0; k < w->n; k++)
		free(w->e[k].buf);
	free(w->e);
}

static void node_crash(int i)
{
	struct node *nd = &S.nodes[i];

	if (!nd->up)
		return;
	tr("n%d CRASH (loses %zu unsynced writes)", i + 1, nd->npw);
	rf_free(nd->r);
	nd->r = NULL;
	lc_state_free(nd->sm);
	nd->sm = NULL;
	for (size_t k = 0; k < nd->npw; k++)
		free_pw(&nd->pw[k]);
	nd->npw = 0;
	nd->sync_sched = false;
	nd->epoch++;
	nd->tick_gen++;
	nd->up = false;
	nd->role = RF_FOLLOWER;
}

static void disk_truncate(struct node *nd, size_t keep)
{
	while (nd->dn > keep)
		free(nd->dlog[--nd->dn].buf);
}

static void disk_sync(int i)
{
	struct node *nd = &S.nodes[i];
	struct rf_event ev = { .type = RF_EV_PERSISTED };
	uint64_t seq = 0;

	nd->sync_sched = false;
	if (!nd->npw)
		return;
	for (size_t k = 0; k < nd->npw; k++) {
		struct pwrite *w = &nd->pw[k];

		if (w->has_hs) {
			nd->d_term = w->term;
			nd->d_vote = w->vote;
		}
		if (w->has_ent) {
			disk_truncate(nd, w->first - 1);
			if (nd->dn + w->n > nd->dcap) {
				nd->dcap = (nd->dn + w->n) * 2;
				nd->dlog = xrealloc(nd->dlog, nd->dcap * sizeof(*nd->dlog));
			}
			for (size_t j = 0; j < w->n; j++)
				nd->dlog[nd->dn++] = w->e[j];
			free(w->e);
		}
		seq = w->seq;
	}
	nd->npw = 0;
	S.syncs++;
	ev.persisted.seq = seq;
	step(i, &ev);
}

/* ---- network ------------------------------------------------------------- */

static void net_send(int from, const struct rf_msg *m)
{
	uint8_t buf[RF_MSG_MAX];
	int len = rf_msg_encode(m, buf, sizeof(buf));
	int to = (int)m->to - 1;
	int copies = 1;

	if (len < 0)
		fail("n%d: cannot encode message type %d: %d", from + 1, m->type, len);
	S.msgs++;
	/* The decoder must reject every truncation of a valid message. */
	if (chance(&S.rng, 1)) {
		struct rf_msg x;
		size_t cut = between(&S.rng, 0, (uint64_t)len - 1);

		if (rf_msg_decode(buf, cut, &x) != -EINVAL)
			fail("decoder accepted a truncated message");
	}
	/* ... and survive any flipped byte (ASan watches the reads). */
	if (chance(&S.rng, 1)) {
		uint8_t *bad = dup_bytes(buf, (size_t)len);
		struct rf_msg x;

		bad[between(&S.rng, 0, (uint64_t)len - 1)] ^= (uint8_t)between(&S.rng, 1, 255);
		if (rf_msg_decode(bad, (size_t)len, &x) == 0)
			rf_msg_release(&x);
		free(bad);
	}
	if (to < 0 || to >= S.n || S.block[from][to] || (drop_hook && drop_hook(from, m)))
		return;
	if (S.faults_on && chance(&S.rng, S.drop_pct))
		return;
	if (S.faults_on && chance(&S.rng, S.dup_pct))
		copies = 2;
	while (copies--) {
		uint64_t d = between(&S.rng, 1, 5);

		if (S.faults_on && chance(&S.rng, 5))
			d += between(&S.rng, 10, 100);   /* reorders */
		push((struct ev){ .t = S.now + d, .type = E_MSG, .node = to,
				  .a = from, .buf = dup_bytes(buf, (size_t)len),
				  .len = (size_t)len });
	}
}

static void deliver(struct ev *e)
{
	struct rf_event ev = { .type = RF_EV_RECEIVE };
	struct rf_msg m;

	if (rf_msg_decode(e->buf, e->len, &m))
		fail("a message sent by n%d does not decode", e->a + 1);
	ev.receive = &m;
	step(e->node, &ev);
	rf_msg_release(&m);
}

/* ---- clients ------------------------------------------------------------- */

static int pick_node(void)
{
	return (int)between(&S.rng, 0, (uint64_t)S.n - 1);
}

static void client_timer(struct client *c, uint64_t t)
{
	c->gen++;
	at(t, E_CLIENT, (int)(c - S.cl), 0, c->gen);
}

static void client_submit(struct client *c)
{
	struct node *nd = &S.nodes[c->node];
	uint64_t leader = 0, idx;
	int answers;

	if (c->pinned >= 0)
		nd = &S.nodes[c->node = c->pinned];
	if (!nd->up || S.now < nd->paused_until) {
		c->node = pick_node();
		client_timer(c, S.now + 20);
		return;
	}
	/* The step may commit and answer at once: be waiting before it. */
	answers = c->answers;
	if (c->state != C_PENDING)
		c->state = C_WAIT;
	client_timer(c, S.now + (c->state == C_PENDING ? 3 * REQ_TIMEOUT : REQ_TIMEOUT));
	idx = step_propose(c->node, c->buf, c->len, &leader);
	if (c->answers != answers)
		return;
	if (!idx) {
		c->node = leader ? (int)leader - 1 : pick_node();
		client_timer(c, S.now + 10);
		return;
	}
	tr("c%llu -> n%d serial %llu type %d at index %llu", (unsigned long long)c->session,
	   c->node + 1, (unsigned long long)c->serial, c->cmd.type, (unsigned long long)idx);
}

static void lz_add(const struct linz_op *op)
{
	if (S.lzn == S.lzcap) {
		S.lzcap = S.lzcap ? S.lzcap * 2 : 128;
		S.lzv = xrealloc(S.lzv, S.lzcap * sizeof(*S.lzv));
	}
	S.lzv[S.lzn++] = *op;
}

/* Opens a history op for the request just built, when it is one the model
 * knows: flock acquire or release on a plain file.  The semaphore file is
 * left out because a client can change its slot count in mid-run, and
 * POSIX locks, lockfiles and writes are not reader/writer lock ops. */
static void lz_begin(struct client *c)
{
	const struct lc_cmd *m = &c->cmd;
	bool wait = m->flags & LC_LK_WAIT;

	c->lz_on = false;
	if (!S.lz || m->ino == S.files[NFILES - 1])
		return;
	if (m->type == LC_CMD_FLOCK)
		c->lz.kind = m->lock_type == LC_WRLCK ? (wait ? LINZ_ACQ_EX : LINZ_TRY_EX)
						      : (wait ? LINZ_ACQ_SH : LINZ_TRY_SH);
	else if (m->type == LC_CMD_RELEASE)
		c->lz.kind = LINZ_RELEASE;
	else
		return;
	/* The owner is per acquisition (its release names it too); the low
	 * 32 bits stay unique because sessions and serials are small. */
	c->lz.client = (uint32_t)m->who.owner;
	c->lz.key = m->ino;
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
	else if (status == -EAGAIN && (op.kind == LINZ_TRY_EX || op.kind == LINZ_TRY_SH))
		op.out = LINZ_BUSY;
	else
		op.out = LINZ_ERR;         /* refused: no effect */
	lz_add(&op);
}

/* True when a blocking exclusive acquire of op's key was under way at some
 * instant of op's interval: SPEC's writer preference (a queued exclusive
 * request holds back later shared ones) then lets a try-sh fail with no
 * exclusive holder, which linz's model does not know. */
static bool lz_ex_waiter_during(const struct linz_op *op)
{
	for (size_t k = 0; k < S.lzn; k++) {
		const struct linz_op *w = &S.lzv[k];

		if (w->kind == LINZ_ACQ_EX && w->key == op->key && w->client != op->client &&
		    w->call <= op->ret && w->ret >= op->call)
			return true;
	}
	return false;
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
	for (size_t k = 0; k < S.lzn; k++) {
		struct linz_op *op = &S.lzv[k];

		/* A busy try-sh that writer preference may explain proves
		 * nothing: keep it out (as an acquire without effect). */
		if (op->kind == LINZ_TRY_SH && op->out == LINZ_BUSY && op->ret != LINZ_INF &&
		    lz_ex_waiter_during(op))
			op->out = LINZ_ERR;
		if (S.brk_grant_twice && !faked && op->out == LINZ_BUSY && op->ret != LINZ_INF) {
			/* Only the history lies; the client believed EAGAIN. */
			faked = true;
			op->out = LINZ_OK;
			tr("break grant-twice: owner %u's EAGAIN recorded as OK", op->client);
		}
	}
	for (size_t k = 0; k < S.lzn; k++)
		if (linz_add_op(S.lz, &S.lzv[k]) < 0)
			fail("history: linz_add_op refused owner %u kind %d out %d",
			     S.lzv[k].client, S.lzv[k].kind, S.lzv[k].out);
	S.lz_ops += S.lzn;
	S.lzn = 0;
	r = linz_check(S.lz);
	S.lz_checked++;
	if (r == LINZ_NOT) {
		linz_explain(S.lz, why, sizeof(why));
		fail("flock history not linearizable: %s", why);
	}
	if (r == LINZ_UNKNOWN) {
		S.lz_unknown++;
		tr("history: linearizability unknown after %llu steps",
		   (unsigned long long)linz_steps(S.lz));
	} else {
		S.lz_linear++;
	}
}

static void client_request(struct client *c, const struct lc_cmd *cmd)
{
	size_t len;

	free(c->buf);
	c->buf = NULL;
	c->cmd = *cmd;
	c->cmd.origin = c->session;
	c->cmd.serial = ++c->serial;
	c->cmd.time_ns = S.now * 1000000ull;
	if (lc_cmd_encode(&c->cmd, &c->buf, &len))
		fail("client %llu cannot encode a command", (unsigned long long)c->session);
	c->len = len;
	c->sent_at = S.now;
	c->state = C_WAIT;
	lz_begin(c);
	client_submit(c);
}

static const char *fname[NFILES] = { "f0", "f1", "f2", "sem" };

/* Picks the client's next request: open its session, release what it holds,
 * or take a new lock of a random kind. */
static void client_next(struct client *c)
{
	struct lc_cmd cmd = { 0 };
	int f = (int)between(&S.rng, 0, NFILES - 1);

	if (!c->opened) {
		cmd.type = LC_CMD_SESSION_OPEN;
		cmd.session = c->session;
		cmd.data = "client";
		cmd.data_len = 6;
	} else if (c->hold == H_FLOCK) {
		cmd.type = LC_CMD_RELEASE;
		cmd.ino = c->hold_ino;
		cmd.who = (struct lc_owner){ c->session, c->hold_owner, (uint32_t)c->session };
	} else if (c->hold == H_POSIX) {
		cmd.type = LC_CMD_FLUSH;
		cmd.ino = c->hold_ino;
		cmd.who = (struct lc_owner){ c->session, c->hold_owner, (uint32_t)c->session };
	} else if (c->hold == H_FILE) {
		cmd.type = LC_CMD_UNLINK;
		cmd.parent = LC_INO_ROOT;
		cmd.name = c->hold_name;
		cmd.name_len = (uint32_t)strlen(c->hold_name);
	} else if (c->ops_left <= 0 || c->scripted) {
		c->state = C_DONE;
		return;
	} else {
		static uint8_t big[60000];
		unsigned k = (unsigned)between(&S.rng, 0, 29);

		cmd.who = (struct lc_owner){ c->session, c->session * 1000 + c->serial + 1,
					     (uint32_t)c->session };
		cmd.ino = S.files[f];
		cmd.flags = chance(&S.rng, 50) ? LC_LK_WAIT : 0;
		if (k < 14) {
			cmd.type = LC_CMD_FLOCK;
			cmd.lock_type = chance(&S.rng, 60) ? LC_WRLCK : LC_RDLCK;
		} else if (k < 20) {
			cmd.type = LC_CMD_SETLK;
			cmd.lock_type = chance(&S.rng, 60) ? LC_WRLCK : LC_RDLCK;
			cmd.start = between(&S.rng, 0, 100);
			cmd.end = chance(&S.rng, 20) ? LC_OFF_MAX : cmd.start + between(&S.rng, 0, 50);
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
			cmd.data_len = (uint32_t)between(&S.rng, 1, sizeof(big));
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

static void client_answer(struct client *c, int node, const struct lc_completion *cp)
{
	struct ans *a;
	uint8_t t = c->cmd.type;

	if ((c->state != C_WAIT && c->state != C_PENDING) || cp->serial != c->serial ||
	    node != c->node)
		return;
	if (cp->status == LC_PENDING) {
		if (c->state == C_WAIT) {
			c->state = C_PENDING;
			client_timer(c, S.now + 3 * REQ_TIMEOUT);
		}
		return;
	}
	a = c->serial < 512 ? &S.ans[c - S.cl][c->serial] : NULL;
	if (a && (!a->final || a->status != cp->status || a->token != cp->token))
		fail("client %llu serial %llu got %d token %llu, the log says %d token %llu",
		     (unsigned long long)c->session, (unsigned long long)c->serial,
		     cp->status, (unsigned long long)cp->token, a->final ? a->status : 99,
		     (unsigned long long)a->token);
	tr("c%llu <- n%d serial %llu status %d token %llu", (unsigned long long)c->session,
	   node + 1, (unsigned long long)c->serial, cp->status, (unsigned long long)cp->token);
	c->answers++;
	lz_end(c, cp->status);
	c->last_status = cp->status;
	c->last_token = cp->token;
	if (t == LC_CMD_SESSION_OPEN) {
		if (cp->status)
			fail("session open failed: %d", cp->status);
		c->opened = true;
	} else if ((t == LC_CMD_FLOCK || t == LC_CMD_SETLK) && cp->status == 0) {
		c->hold = t == LC_CMD_FLOCK ? H_FLOCK : H_POSIX;
		c->hold_ino = c->cmd.ino;
		c->hold_owner = c->cmd.who.owner;
	} else if (t == LC_CMD_CREATE && cp->status == 0) {
		c->hold = H_FILE;
	} else if (t == LC_CMD_RELEASE || t == LC_CMD_FLUSH || t == LC_CMD_UNLINK) {
		if (cp->status && t == LC_CMD_UNLINK)
			fail("client %llu could not remove its lockfile: %d",
			     (unsigned long long)c->session, cp->status);
		c->hold = H_NONE;
	}
	c->state = c->scripted ? C_DONE : C_IDLE;
	client_timer(c, S.now + between(&S.rng, 0, c->hold ? 40 : 20));
}

static void client_event(struct ev *e)
{
	struct client *c = &S.cl[e->node];

	if (e->gen != c->gen)
		return;
	switch (c->state) {
	case C_IDLE:
		client_next(c);
		break;
	case C_WAIT:
	case C_PENDING:
		/* No answer in time: retry the same (origin, serial) where the
		 * leader may now be. */
		tr("c%llu retries serial %llu", (unsigned long long)c->session,
		   (unsigned long long)c->serial);
		c->node = leader_node();
		if (c->node < 0)
			c->node = pick_node();
		client_submit(c);
		break;
	default:
		break;
	}
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

static void heal_net(void)
{
	memset(S.block, 0, sizeof(S.block));
}

static void fault(void)
{
	int i = pick_node(), k = (int)between(&S.rng, 0, 9);
	struct node *nd = &S.nodes[i];

	switch (k) {
	case 0:
	case 1:
		if (nd->up) {
			node_crash(i);
			at(S.now + between(&S.rng, 20, 800), E_RESTART, i, 0, nd->epoch);
		}
		break;
	case 2: {                             /* symmetric split */
		uint64_t side = rnd(&S.rng);

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
			nd->paused_until = S.now + between(&S.rng, 20, 400);
			tr("n%d paused until %llu", i + 1, (unsigned long long)nd->paused_until);
		}
		break;
	case 7:
		nd->clock_off = between(&S.rng, 0, CLOCK_DRIFT);
		break;
	case 8:
		S.drop_pct = (unsigned)between(&S.rng, 0, 30);
		S.dup_pct = (unsigned)between(&S.rng, 0, 10);
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
		if (!S.nodes[i].up)
			node_start(i);
	}
}

/* ---- one run ------------------------------------------------------------- */

static void dispatch(struct ev *e)
{
	struct node *nd = e->node >= 0 && e->node < S.n ? &S.nodes[e->node] : NULL;

	S.events++;
	if (nd && (e->type == E_MSG || e->type == E_TICK || e->type == E_SYNC) &&
	    S.now < nd->paused_until && nd->up) {
		e->t = nd->paused_until;       /* a paused process runs later */
		push(*e);
		return;
	}
	switch (e->type) {
	case E_MSG:
		if (nd->up)
			deliver(e);
		free(e->buf);
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
			at(S.now + between(&S.rng, S.fault_lo, S.fault_hi), E_FAULT, -1, 0, 0);
		}
		break;
	case E_RESTART:
		if (!nd->up && e->gen == nd->epoch)
			node_start(e->node);
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

static bool all_done(void)
{
	for (int k = 0; k < S.nclients; k++)
		if (S.cl[k].state != C_DONE)
			return false;
	return true;
}

static void run_until(uint64_t t, bool stop_when_done)
{
	while (S.nheap && S.heap[0].t <= t) {
		struct ev e = pop();

		S.now = e.t;
		dispatch(&e);
		check_leases();
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
			for (i = 1; i <= n; i++) {
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
	struct dent boot_log[1 + NFILES];

	memset(&S.nodes, 0, sizeof(S.nodes));
	memset(&S.cl, 0, sizeof(S.cl));
	memset(S.ans, 0, sizeof(S.ans));
	memset(S.last_token, 0, sizeof(S.last_token));
	heal_net();
	S.seed = seed;
	rng_seed(&S.rng, seed);
	S.n = voters ? voters : (int)between(&S.rng, 1, MAXN);
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
		boot_log[k] = (struct dent){ 1, RF_ENTRY_CMD, (uint32_t)len, buf };
	}
	lc_out_free(&out);
	lc_state_free(boot);
	S.ref = lc_state_new();
	for (int i = 0; i < S.n; i++) {
		struct node *nd = &S.nodes[i];

		nd->d_term = 1;
		nd->dcap = 64;
		nd->dlog = xrealloc(NULL, nd->dcap * sizeof(*nd->dlog));
		for (int k = 0; k <= NFILES; k++)
			nd->dlog[k] = (struct dent){ 1, RF_ENTRY_CMD, boot_log[k].len,
						     dup_bytes(boot_log[k].buf, boot_log[k].len) };
		nd->dn = 1 + NFILES;
		nd->clock_off = between(&S.rng, 0, CLOCK_DRIFT);
	}
	for (int k = 0; k <= NFILES; k++)
		free(boot_log[k].buf);
	for (int i = 0; i < S.n; i++)
		node_start(i);
	for (int k = 0; k < clients; k++) {
		struct client *c = &S.cl[k];

		c->session = (uint64_t)k + 1;
		c->node = pick_node();
		c->pinned = -1;
		c->ops_left = ops;
		client_timer(c, between(&S.rng, 0, 100));
	}
}

static void world_free(void)
{
	while (S.nheap) {
		struct ev e = pop();

		free(e.buf);
	}
	for (int i = 0; i < S.n; i++) {
		struct node *nd = &S.nodes[i];

		if (nd->up)
			node_crash(i);
		disk_truncate(nd, 0);
		free(nd->dlog);
		free(nd->pw);
	}
	for (int k = 0; k < MAXC; k++)
		free(S.cl[k].buf);
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
	S.ref_hash_cap = 0;
	free(S.term_leader);
	S.term_leader = NULL;
	S.term_cap = 0;
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
	for (int k = 0; k < S.nclients; k++)
		for (uint64_t s = 1; s <= S.cl[k].serial && s < 512; s++)
			if (!S.ans[k][s].applied)
				fail("client %d serial %llu acknowledged but never applied", k + 1,
				     (unsigned long long)s);
}

static void run_seed(uint64_t seed, int voters)
{
	struct rng pick;
	int clients;

	rng_seed(&pick, seed ^ 0x5eedull);
	S.voters_arg = voters;
	clients = (int)between(&pick, 1, 6);
	world_init(seed, voters, clients, (int)between(&pick, 3, 10));
	S.lz = linz_new(LINZ_BUDGET);
	if (!S.lz) {
		fprintf(stderr, "sim: out of memory\n");
		exit(2);
	}
	S.lzn = 0;
	S.faults_on = true;
	S.heal_at = between(&S.rng, 300, 3000);
	S.fault_lo = between(&S.rng, 10, 50);
	S.fault_hi = S.fault_lo + between(&S.rng, 20, 300);
	at(between(&S.rng, 0, 200), E_FAULT, -1, 0, 0);
	at(S.heal_at, E_HEAL, -1, 0, 0);
	run_until(S.heal_at, false);
	finish_checks();
	lz_finish();
	linz_free(S.lz);
	S.lz = NULL;
	world_free();
}

/* ---- scenarios for issue 3's TODO -------------------------------------- */

static void expect(bool ok, const char *what)
{
	if (!ok)
		fail("scenario %s: %s", S.scenario, what);
	tr("ok: %s", what);
}

static void script(int k, uint8_t type, int file, uint8_t lt)
{
	struct lc_cmd cmd = { 0 };
	struct client *c = &S.cl[k];

	cmd.type = type;
	cmd.ino = S.files[file];
	cmd.lock_type = lt;
	cmd.who = (struct lc_owner){ c->session, c->session * 1000 + 7, (uint32_t)c->session };
	client_request(c, &cmd);
}

static void open_sessions(void)
{
	for (int k = 0; k < S.nclients; k++) {
		S.cl[k].scripted = true;
		S.cl[k].gen++;           /* cancel the random start */
		client_next(&S.cl[k]);
	}
	run_until(S.now + 2000, false);
	for (int k = 0; k < S.nclients; k++)
		expect(S.cl[k].opened, "every client opened its session");
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
	S.cl[0].pinned = old;
	script(0, LC_CMD_FLOCK, 0, LC_WRLCK);
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
	script(1, LC_CMD_FLOCK, 0, LC_WRLCK);
	run_until(S.now + 300, false);
	expect(S.max_leaders >= 2, "two nodes believed they led at one instant");
	expect(S.cl[1].last_status == 0 && S.cl[1].hold == H_FLOCK,
	       "the majority side granted f0");
	run_until(S.now + 1000, false);
	expect(S.nodes[old].role != RF_LEADER, "the old leader stepped down when it woke");
	expect(S.cl[0].answers == 1, "the cut-off leader answered nothing");
	heal_net();
	S.cl[0].pinned = -1;
	run_until(S.now + 3000, false);
	expect(S.cl[0].answers == 2 && S.cl[0].last_status == -EAGAIN,
	       "after healing, the cut-off request is refused (f0 is held)");
	for (int i = 0; i < S.n; i++)
		expect(holds(S.nodes[i].sm, 0, S.cl[1].session) &&
		       !holds(S.nodes[i].sm, 0, S.cl[0].session),
		       "every node agrees who holds f0");
	check_log_matching();
	world_free();
}

/* Quorum loss leaves existing locks held and commits nothing new. */
static void scenario_quorum_loss(void)
{
	int l;

	S.scenario = "quorum-loss";
	world_init(2, 3, 2, 0);
	S.faults_on = false;
	run_until(1500, false);
	open_sessions();
	l = leader_node();
	expect(l >= 0, "a leader is elected");
	S.cl[0].node = l;
	script(0, LC_CMD_FLOCK, 0, LC_WRLCK);
	run_until(S.now + 500, false);
	expect(S.cl[0].hold == H_FLOCK, "client 1 holds f0");
	for (int i = 0; i < S.n; i++)
		if (i != l)
			node_crash(i);
	S.cl[1].pinned = l;
	script(1, LC_CMD_FLOCK, 1, LC_WRLCK);
	run_until(S.now + 3000, false);
	expect(S.cl[1].answers == 1, "no new grant commits without a quorum");
	expect(holds(S.nodes[l].sm, 0, S.cl[0].session), "the survivor still shows f0 held");
	expect(S.nodes[l].role != RF_LEADER, "the survivor stepped down (check-quorum)");
	for (int i = 0; i < S.n; i++)
		if (i != l)
			node_start(i);
	S.cl[1].pinned = -1;
	run_until(S.now + 4000, false);
	expect(S.cl[1].answers == 2 && S.cl[1].hold == H_FLOCK,
	       "after the quorum returns, the new request is granted");
	for (int i = 0; i < S.n; i++)
		expect(holds(S.nodes[i].sm, 0, S.cl[0].session),
		       "every node, restarted ones included, shows f0 still held");
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
	S.cl[0].pinned = f8_old;
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
	S.cl[0].pinned = -1;
	run_until(S.now + 3000, false);
	expect(S.cl[0].answers == 2 && S.cl[0].last_status == 0,
	       "the write completes once, after everything heals");
	check_log_matching();
	f8_s5 = -1;
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
	else {
		fprintf(stderr, "sim: unknown scenario %s\n", name);
		exit(2);
	}
	printf("scenario %s: ok\n", name);
	S.scenario = NULL;
}

/* ---- measurement ---------------------------------------------------------- */

static void measure(int clients, int ops)
{
	uint64_t m0, s0, c0;

	world_init(42, 3, clients, ops);
	S.faults_on = false;
	S.heal_at = 0;
	run_until(1000, false);    /* election, sessions */
	m0 = S.msgs;
	s0 = S.syncs;
	c0 = S.cmds;
	run_until(600000, true);
	if (!all_done())
		fail("measurement run did not finish");
	printf("  %2d client%s: %5llu commands: %.2f messages, %.3f fsyncs per node "
	       "(%.3f summed over the 3 nodes) per command\n",
	       clients, clients > 1 ? "s" : " ", (unsigned long long)(S.cmds - c0),
	       (double)(S.msgs - m0) / (double)(S.cmds - c0),
	       (double)(S.syncs - s0) / 3.0 / (double)(S.cmds - c0),
	       (double)(S.syncs - s0) / (double)(S.cmds - c0));
	world_free();
}

/* ---- main ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
		"usage: sim [--seeds N] [--from S] [--seed S] [--voters K] [--trace]\n"
		"           [--scenario=two-leaders|quorum-loss|figure8] [--break=vote-any-log|ack-unsynced|commit-old-term|grant-twice]\n"
		"           [--no-measure] [--no-scenarios]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t from = 1, seeds = 100, one = 0;
	bool have_one = false, measure_on = true, scenarios = true;
	int voters = 0;
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
			if (voters < 1 || voters > MAXN)
				usage();
		} else if (!strcmp(a, "--trace"))
			S.trace_all = true;
		else if (!strcmp(a, "--no-measure"))
			measure_on = false;
		else if (!strcmp(a, "--no-scenarios"))
			scenarios = false;
		else if (!strncmp(a, "--scenario=", 11))
			scen = a + 11;
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
			else
				usage();
		} else
			usage();
	}
	if (scen) {
		run_scenario(scen);
		return 0;
	}
	if (have_one) {
		run_seed(one, voters);
		printf("seed %llu: ok (%d voters, %llu events, flock history %s)\n",
		       (unsigned long long)one, S.n, (unsigned long long)S.events,
		       S.lz_unknown ? "unknown" : "linearizable");
		return 0;
	}
	if (scenarios) {
		run_scenario("two-leaders");
		run_scenario("quorum-loss");
		run_scenario("figure8");
	}
	S.events = S.msgs = S.syncs = S.cmds = 0;
	for (uint64_t s = from; s < from + seeds; s++)
		run_seed(s, voters);
	free(S.lzv);
	S.lzv = NULL;
	S.lzn = S.lzcap = 0;
	printf("%llu seeds from %llu: ok (%llu events, %llu messages, %llu fsyncs, "
	       "%llu commands)\n", (unsigned long long)seeds, (unsigned long long)from,
	       (unsigned long long)S.events, (unsigned long long)S.msgs,
	       (unsigned long long)S.syncs, (unsigned long long)S.cmds);
	printf("flock histories: %llu checked, %llu linearizable, %llu unknown "
	       "(%llu ops, budget %u steps each)\n", (unsigned long long)S.lz_checked,
	       (unsigned long long)S.lz_linear, (unsigned long long)S.lz_unknown,
	       (unsigned long long)S.lz_ops, LINZ_BUDGET);
	if (measure_on && !S.brk && !S.brk_grant_twice) {
		printf("cost per committed lock command (no faults, 3 voters, heartbeats included):\n");
		measure(1, 200);
		measure(64, 20);
	}
	return 0;
}
