/*
 * lockcore/raft_read.c - leader leases and read index in the Raft engine
 * (see raft.c for the design): a read is answered at once under a valid
 * lease, else once a quorum answered a heartbeat round sent after it and an
 * entry of this term is committed.
 *
 * It must never: answer a read on a node that is not leader, answer one
 * with a round sent before the request or from an earlier term, count a
 * learner's answer, or trust a lease that is not shortened by the clock
 * drift allowed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/raft.h"
#include "lockcore/raft_i.h"

/* ---- reads --------------------------------------------------------------- */

void rfi_fail_reads_not_leader(struct raft *r)
{
	for (size_t i = 0; i < r->nreads; i++)
		rfi_emit_read(r, r->reads[i].ctx, 0);
	r->nreads = 0;
	r->read_send_at = 0;
}

/* Answers the pending reads whose heartbeat round a quorum acknowledged,
 * once an entry of this term is committed. */
void rfi_check_reads(struct raft *r)
{
	size_t k = 0;

	for (size_t i = 0; i < r->nreads; i++) {
		struct pread *pr = &r->reads[i];
		unsigned n = r->self_voter ? 1 : 0;

		if (pr->term != r->term) {
			rfi_emit_read(r, pr->ctx, 0);
			continue;
		}
		for (unsigned j = 0; j < r->npeers; j++)
			if (r->peers[j].voter && r->peers[j].lease_stamp >= pr->need)
				n++;
		if (n >= quorum(r) && r->commit >= r->noop_index) {
			rfi_emit_read(r, pr->ctx, pr->index > r->noop_index ?
						 pr->index : r->noop_index);
			continue;
		}
		r->reads[k++] = *pr;
	}
	r->nreads = k;
}

int rfi_on_read(struct raft *r, uint64_t ctx)
{
	uint64_t need;

	/* Only messages sent after the request prove leadership after it:
	 * one sent earlier within the same millisecond has the same stamp. */
	need = r->last_stamp >= r->now ? r->now + 1 : r->now;
	if (r->role != RF_LEADER)
		return -EPERM;
	if (rf_lease_valid(r, r->now)) {
		rfi_emit_read(r, ctx, r->commit);
		return 0;
	}
	if (r->nreads == r->capreads) {
		size_t nc = r->capreads ? r->capreads * 2 : 8;
		struct pread *nv = realloc(r->reads, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		r->reads = nv;
		r->capreads = nc;
	}
	r->reads[r->nreads++] = (struct pread){ ctx, r->commit, need, r->term };
	if (need <= r->now) {
		rfi_broadcast(r, true);
		r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
	} else if (!r->read_send_at || r->read_send_at > need) {
		r->read_send_at = need;
	}
	return 0;
}

/* ---- leases -------------------------------------------------------------- */

/* Lease check; see raft.h. */
int rf_lease_valid(const struct raft *r, uint64_t now_ms)
{
	uint64_t span = r->cfg.election_timeout_min_ms - r->cfg.max_clock_drift_ms;
	unsigned n = r->self_voter ? 1 : 0;

	if (r->role != RF_LEADER || r->commit < r->noop_index)
		return 0;
	for (unsigned i = 0; i < r->npeers; i++)
		if (r->peers[i].voter && r->peers[i].lease_stamp &&
		    r->peers[i].lease_stamp + span > now_ms)
			n++;
	return n >= quorum(r);
}
