/*
 * t/sim/sim.h - the simulator's private header: its constants, the world
 * (struct sim S: nodes, clients, the reference state, metrics), and the
 * functions its parts call in one another.  t/sim/main.c says what the
 * simulator does; each part's file says what it holds.
 *
 * It must never: be included outside t/sim/.
 */
#ifndef CLUCK_T_SIM_SIM_H
#define CLUCK_T_SIM_SIM_H

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
#include "lockcore/session.h"
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

/* History keys: flock keeps the inode number; POSIX ranges on the same
 * file and lockfiles get key spaces of their own (the two lock kinds on
 * one file are independent in lockcore). */
#define LZK_POSIX (1ull << 40)
#define LZK_FILE  (1ull << 41)

/* ---- the world ---------------------------------------------------------- */

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
	/* its session: lockcore/session, hosted by t/sim/host.c */
	struct session *ss;
	uint64_t sess;                     /* session_id(ss) after the last effects */
	bool sess_open;                    /* ... session_is_open(ss) */
	uint64_t view_dl;                  /* ... session_view_deadline(ss) */
	uint64_t node_gen;
	int depth;                         /* steps of its engine under way */
	uint64_t *defer;                   /* our proposals waiting for the step */
	size_t ndefer, capdefer;
	/* the leader's lease table, valid while tab_on */
	struct lease_table tab;
	bool tab_on;
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
	uint64_t last_owner;               /* ... of the one before */
	uint64_t owner_sess;               /* the session its last new owner began in */
	uint8_t relock;                    /* a release (its type) of the last owner
	                                      timed out: lock again with it */
	uint64_t relock_ino;
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

/* The holders and waiters of one file, as lc_locks() reports them. */
struct holders { struct lc_lockinfo h[64]; unsigned n; };

struct sim {
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
	uint64_t msgs, fmsgs, kmsgs, rmsgs, syncs, cmds, events, max_leaders, expiries, losts;
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
	/* the session module: its config and breaks (SESSION_BREAK_*), and
	 * how often each of its rules was exercised */
	uint64_t op_timeout;               /* session op_timeout_ms of this seed */
	unsigned sbreaks;
	uint64_t giveups, redirects, moved, reserials, relocks, inst_pending,
		 timeouts;
	uint64_t rd_session, rd_follower, rd_timeout;
	/* trace ring */
	char trace[TRACE_KEEP][TRACE_LEN];
	unsigned tpos, tcount;
};

extern struct sim S;

/* Scenario hooks: drop chosen messages; act the instant a node leads
 * (before its first messages leave). */
extern bool (*drop_hook)(int from, const struct rf_msg *m);
extern bool (*sdrop_hook)(int from, int to, const struct session_msg *m);
extern void (*leader_hook)(int node);

extern unsigned sem_sh_before;         /* semaphore holders before this apply */
extern const char *fname[NFILES];      /* the lock files' names */

/* A line of the trace ring (printed as it goes with --trace). */
void tr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports a violation: the seed, the last events, the replay command;
 * exits 1. */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- functions, by the part that defines them -------------------------- */

/* world.c */
void at(uint64_t t, int type, int node, int a, uint64_t gen);
uint64_t local(int i);
void net_push(int from, int to, int type, const uint8_t *buf, size_t len);
void net_send(int from, const struct rf_msg *m);
void deliver(struct cl_ev *e);
int leader_node(void);
void node_remove(int i);
void node_readd(int i);
void heal_net(void);
void fault(void);
void heal(void);

/* state.c */
int collect(void *ctx, const struct lc_lockinfo *li);
uint64_t who_holds(struct lc_state *sm, int f);
struct sreg *sreg_of(uint64_t session);
struct ans *ans_of(uint64_t session, uint64_t serial);
bool dent_eq(const struct cl_dent *a, const struct rf_entry *b);
bool conf_has(const struct rf_conf *c, uint64_t id, bool voters_only);
void node_apply(int i, uint64_t idx, const struct rf_entry *e);
void check_leases(void);
void check_beliefs(void);
void check_log_matching(void);
void finish_checks(void);

/* engine.c */
void ask_read(void);
int step(int i, struct rf_event *ev);
int step_propose(int i, const uint8_t *buf, size_t len);
void node_start(int i);
void node_crash(int i);
void disk_sync(int i);

/* history.c */
void lz_add(const struct linz_op *op);
uint64_t lz_file_key(const char *name);
void lz_begin(struct client *c);
void lz_end(struct client *c, int status);
void lz_finish(void);

/* host.c */
int pick_node(void);
struct session_in host_in(int i);
void run_effects(int i);
void host_flush(int i);
void host_start(int i);
void host_open(int i);
void host_stop(int i);
void lost_release_all(uint64_t session, uint32_t owner, uint64_t key, uint64_t call);
void client_lost(struct client *c, uint64_t call);
void sreg_closed(uint64_t session, uint64_t idx);
void deliver_smsg(struct cl_ev *e);
void node_timer(int i);
void node_tick(int i);
void client_timer(struct client *c, uint64_t t);

/* client.c */
void client_request(struct client *c, const struct lc_cmd *cmd);
void client_answer(struct client *c, int status, uint64_t token, bool from_log);
void node_crash_clients(int i);
void client_event(struct cl_ev *e);

/* run.c */
bool all_done(void);
void run_until(uint64_t t, bool stop_when_done);
void world_init(uint64_t seed, int voters, int clients, int ops);
void world_free(void);
void run_seed(uint64_t seed, int voters, int members);

/* scenario.c */
void run_scenario(const char *name);

/* measure.c */
void measure_all(void);

#endif /* CLUCK_T_SIM_SIM_H */
