/*
 * t/sim/measure.c - the cost figures (--measure): messages and fsyncs per
 * acquire+release pair of a blocking exclusive lock, without faults.
 *
 * It must never: inject faults into what it measures.
 */
#include "t/sim/sim.h"

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

void measure_all(void)
{
	printf("cost per acquire+release pair (blocking exclusive locks, no faults, 3 voters, "
	       "heartbeats and keepalives included):\n");
	measure(1, 200, 1);
	measure(64, 20, 1);
	measure(64, 20, 2);
}
