/*
 * t/sim/main.c - the deterministic cluster simulator (DESIGN.md principle 2):
 * its command line, and what it does.
 *
 * From one seed it runs 1..7 Raft voters (lockcore/raft.h), each applying
 * the committed log to its own lockcore state (lc.h), over a fake network
 * that delays, drops, duplicates, reorders and partitions, on fake disks
 * that lose unsynced writes when a node crashes, with pauses, bounded
 * clock drift (and now and then a pause past the lease).  Each node runs
 * one struct session of lockcore/session.h, the module cluckd runs, driven
 * the way cluckd's node/ drives it (t/sim/host.c): it opens a session when the
 * node starts, keeps it alive with keepalives, proposes or forwards its
 * clients' requests to the leader as node messages on the same faulty
 * network (resent, re-serialled after -ESTALE, a lock held back until an
 * earlier release of its owner is in the log), answers read barriers, and
 * gives a session up when its view of the lease ran out (its blocking
 * requests move to the new session); a leader answers other nodes with
 * session_answer(), keeps the lease table and proposes SESSION_CLOSE for
 * sessions it has not heard from for a lease.  Clients are answered only
 * through their node's session.  At every step no two clients whose
 * node's lease view is valid believe they hold conflicting locks, and a
 * lock a client believes it holds is held in the latest state; no grant
 * is handed out after the view ran out, no client ever sees -ESTALE.  A
 * quarter of the seeds put a deadline on requests (--op-timeout): a
 * release that timed out is followed by a lock of the same owner.
 * Besides the 1..7 voters a seed may run 0..2 members (--members M, up to
 * 3): learners that apply the log and have sessions and clients like the
 * voters.  Every node snapshots its state every snap_k applied entries
 * (snap_k drawn per seed) onto its fake disk, compacting its disk log; a
 * restart starts from that snapshot and the rest of the log, and a node
 * too far behind installs the leader's snapshot, whose state must equal
 * the reference at its index (its session resolves what was pending).
 * Reads ("who holds file f") are asked at the leader with RF_EV_READ, and
 * as read barriers of any node's session (a follower or member asks the
 * leader for its commit index): the read must cover every entry applied
 * anywhere before it was asked, and the answer must be the reference's.
 * With --conf-faults the leader also promotes, demotes and
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
 * exactly), or have session rules of its own (lockcore/session has
 * them).  Not a product: the driver of cluckd lives in net/.
 *
 * Its parts (t/sim/sim.h): world.c (the run's state, trace, events,
 * clocks, network, faults), engine.c (driving one Raft engine), state.c
 * (reference state, node apply, invariant checks), history.c (the lock
 * history), host.c (each node's lockcore/session: its effects, the
 * leader's answers and lease table),
 * client.c (clients), run.c (one run), scenario.c (--scenario),
 * measure.c (--measure).  t/lib/cluster.h gives the PRNG, the event
 * queue and the fake disks.  The program is t/sim/sim.
 */
#include "t/sim/sim.h"

/* ---- main ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
		"usage: sim [--seeds N] [--from S] [--seed S] [--voters K] [--members M] [--trace]\n"
		"           [--conf-faults] [--rejoin-faults]\n"
		"           [--scenario[=| ]two-leaders|quorum-loss|figure8|lost-report|lease-expiry|\n"
		"                       lease-heal|leader-change-grace|reserial]\n"
		"           [--break=vote-any-log|ack-unsynced|commit-old-term|grant-twice|no-grace|\n"
		"                    unlock-before|read-barrier|reserial|resolve|expired-grant]\n"
		"           [--no-measure] [--no-scenarios] [--measure]\n");
	exit(2);
}

/* --break=NAME: a rule broken on purpose (Raft's, the simulator's, or
 * lockcore/session's SESSION_BREAK_* on every node). */
static void set_break(const char *name)
{
	static const struct { const char *name; unsigned bit; } sb[] = {
		{ "unlock-before", SESSION_BREAK_UNLOCK_BEFORE },
		{ "read-barrier", SESSION_BREAK_READ_BARRIER },
		{ "reserial", SESSION_BREAK_RESERIAL },
		{ "resolve", SESSION_BREAK_RESOLVE },
		{ "expired-grant", SESSION_BREAK_EXPIRED_GRANT },
	};

	S.brk_name = name;
	if (!strcmp(name, "vote-any-log"))
		S.brk = RF_BREAK_VOTE_ANY_LOG;
	else if (!strcmp(name, "ack-unsynced"))
		S.brk = RF_BREAK_ACK_UNSYNCED;
	else if (!strcmp(name, "commit-old-term"))
		S.brk = RF_BREAK_COMMIT_OLD_TERM;
	else if (!strcmp(name, "grant-twice"))
		S.brk_grant_twice = true;
	else if (!strcmp(name, "no-grace"))
		S.brk_no_grace = true;
	for (size_t k = 0; k < sizeof(sb) / sizeof(sb[0]); k++)
		if (!strcmp(name, sb[k].name))
			S.sbreaks = sb[k].bit;
	if (!S.brk && !S.brk_grant_twice && !S.brk_no_grace && !S.sbreaks)
		usage();
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
		else if (!strncmp(a, "--break=", 8))
			set_break(a + 8);
		else
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
		run_scenario("reserial");
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
	printf("read barriers: %llu asked through a node's session (%llu at a follower or "
	       "member), %llu timed out\n", (unsigned long long)S.rd_session,
	       (unsigned long long)S.rd_follower, (unsigned long long)S.rd_timeout);
	printf("session rules: %llu given up, %llu waiting requests moved to the new "
	       "session, %llu redirects, %llu re-serials, %llu relocks by the same owner, "
	       "%llu timeouts, %llu installs with requests pending\n",
	       (unsigned long long)S.giveups, (unsigned long long)S.moved,
	       (unsigned long long)S.redirects, (unsigned long long)S.reserials,
	       (unsigned long long)S.relocks, (unsigned long long)S.timeouts,
	       (unsigned long long)S.inst_pending);
	printf("lock histories: %llu checked, %llu linearizable, %llu unknown "
	       "(%llu ops, budget %u steps each)\n", (unsigned long long)S.lz_checked,
	       (unsigned long long)S.lz_linear, (unsigned long long)S.lz_unknown,
	       (unsigned long long)S.lz_ops, LINZ_BUDGET);
	printf("  ops checked: %llu flock, %llu POSIX, %llu semaphore (flock and slots), "
	       "%llu lockfile, %llu release-all\n", (unsigned long long)S.lz_kind[0],
	       (unsigned long long)S.lz_kind[1], (unsigned long long)S.lz_kind[2],
	       (unsigned long long)S.lz_kind[3], (unsigned long long)S.lz_kind[4]);
	if (measure_on && !S.brk && !S.brk_grant_twice && !S.brk_no_grace && !S.sbreaks) {
		measure_all();
	}
	return 0;
}
