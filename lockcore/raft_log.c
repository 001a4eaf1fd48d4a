/*
 * lockcore/raft_log.c - the Raft engine's log and its configurations (see
 * raft.c for the design): which configuration is in force (the latest CONF
 * entry in the log, else the snapshot's, else the bootstrap one), the peers
 * that follow it, appending, truncating and compacting entries, and the
 * leader's single-server membership changes (learners, promotion,
 * demotion, removal).
 *
 * It must never: let an entry it cannot decode as a configuration into the
 * log as one, keep a configuration that truncation removed from the log,
 * lose the progress of a peer that stays in the configuration, start a
 * membership change before the previous one committed or before the
 * leader committed an entry of its term, or append or truncate entries
 * without marking them for the next write.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/raft.h"
#include "lockcore/raft_i.h"

/* ---- configurations ----------------------------------------------------- */

bool rfi_conf_has(const uint64_t *ids, unsigned n, uint64_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

static bool conf_eq(const struct rf_conf *a, const struct rf_conf *b)
{
	return a->n_voters == b->n_voters && a->n_learners == b->n_learners &&
	       !memcmp(a->voters, b->voters, a->n_voters * sizeof(a->voters[0])) &&
	       !memcmp(a->learners, b->learners,
		       a->n_learners * sizeof(a->learners[0]));
}

struct peer *rfi_peer_of(struct raft *r, uint64_t id)
{
	for (unsigned i = 0; i < r->npeers; i++)
		if (r->peers[i].id == id)
			return &r->peers[i];
	return NULL;
}

void rfi_init_peer(struct raft *r, struct peer *p, uint64_t id)
{
	memset(p, 0, sizeof(*p));
	p->id = id;
	/* The newest entry probes: a fresh node rejects it and says where
	 * its log ends. */
	p->next = last_index(r) ? last_index(r) : 1;
	p->last_ack_ms = r->now;
	p->progress_ms = r->now;
}

/* Makes peers[] follow r->conf, keeping the progress of those who stay. */
void rfi_rebuild_peers(struct raft *r)
{
	struct peer np[RF_MAX_PEERS];
	unsigned k = 0;

	for (unsigned pass = 0; pass < 2; pass++) {
		const uint64_t *ids = pass ? r->conf.learners : r->conf.voters;
		unsigned n = pass ? r->conf.n_learners : r->conf.n_voters;

		for (unsigned i = 0; i < n; i++) {
			struct peer *old;

			if (ids[i] == r->cfg.id)
				continue;
			old = rfi_peer_of(r, ids[i]);
			if (old)
				np[k] = *old;
			else
				rfi_init_peer(r, &np[k], ids[i]);
			np[k].voter = !pass;
			if (pass)
				np[k].granted = false;
			k++;
		}
	}
	memcpy(r->peers, np, k * sizeof(np[0]));
	r->npeers = k;
	r->self_voter = rfi_conf_has(r->conf.voters, r->conf.n_voters, r->cfg.id);
}

static void set_conf(struct raft *r, const struct rf_conf *c, uint64_t index)
{
	r->conf_index = index;
	if (conf_eq(&r->conf, c))
		return;
	r->conf = *c;
	r->conf_changed = true;
	rfi_rebuild_peers(r);
}

/* The configuration in force at `index` (>= snap_index): the latest CONF
 * entry up to it, else the snapshot's, else the bootstrap one.  Sets
 * *at to the entry's index (0 when not from the log). */
void rfi_conf_at(const struct raft *r, uint64_t index, struct rf_conf *c,
		 uint64_t *at)
{
	for (uint64_t i = index; i > r->snap_index; i--) {
		const struct rf_entry *e = ent(r, i);

		/* Entries were validated when they entered the log. */
		if (e->type == RF_ENTRY_CONF && rf_conf_decode(e->buf, e->len, c) == 0) {
			*at = i;
			return;
		}
	}
	*c = r->snap_index ? r->snap_conf : r->boot_conf;
	*at = 0;
}

void rfi_recompute_conf(struct raft *r)
{
	struct rf_conf c;
	uint64_t at;

	rfi_conf_at(r, last_index(r), &c, &at);
	set_conf(r, &c, at);
}

/* ---- the log ------------------------------------------------------------ */

void rfi_truncate_from(struct raft *r, uint64_t from)
{
	while (last_index(r) >= from && r->n) {
		free((void *)r->log[r->n - 1].buf);
		r->n--;
	}
	rfi_mark_dirty(r, from);
	if (r->conf_index >= from)
		rfi_recompute_conf(r);
}

/* Appends one entry; a CONF entry takes effect at once (Raft dissertation
 * 4.1: a server uses the latest configuration in its log). */
int rfi_append_entry(struct raft *r, uint64_t term, uint8_t type,
		     const uint8_t *buf, uint32_t len)
{
	struct rf_conf c;
	uint8_t *copy = NULL;

	if (type == RF_ENTRY_CONF && rf_conf_decode(buf, len, &c))
		return -EINVAL;
	if (r->n == r->cap) {
		uint64_t nc = r->cap ? r->cap * 2 : 64;
		struct rf_entry *nv = realloc(r->log, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		r->log = nv;
		r->cap = nc;
	}
	if (len) {
		copy = malloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, buf, len);
	}
	r->log[r->n++] = (struct rf_entry){ term, type, len, copy };
	rfi_mark_dirty(r, last_index(r));
	if (type == RF_ENTRY_CONF)
		set_conf(r, &c, last_index(r));
	return 0;
}

/* Forgets entries up to `index` (in the log). */
void rfi_compact_to(struct raft *r, uint64_t index)
{
	uint64_t drop = index - r->snap_index;

	for (uint64_t i = 0; i < drop; i++)
		free((void *)r->log[i].buf);
	memmove(r->log, r->log + drop, (r->n - drop) * sizeof(r->log[0]));
	r->n -= drop;
}

/* ---- membership ---------------------------------------------------------- */

int rfi_on_conf(struct raft *r, uint8_t op, uint64_t id, struct rf_update *u)
{
	struct rf_conf c;
	uint8_t buf[RF_CONF_MAX_BYTES];
	bool voter, learner;
	int len, rc;

	if (r->role != RF_LEADER)
		return -EPERM;
	c = r->conf;
	voter = rfi_conf_has(c.voters, c.n_voters, id);
	learner = rfi_conf_has(c.learners, c.n_learners, id);
	if (!id)
		return -EINVAL;
	switch (op) {
	case RF_CONF_ADD_LEARNER:
		if (voter || learner || c.n_learners >= RF_MAX_LEARNERS)
			return -EINVAL;
		c.learners[c.n_learners++] = id;
		break;
	case RF_CONF_ADD_VOTER:
		if (voter || c.n_voters >= RF_MAX_VOTERS)
			return -EINVAL;
		c.voters[c.n_voters++] = id;
		break;
	case RF_CONF_DEMOTE:
		if (!voter || c.n_voters == 1 || (!learner && c.n_learners >= RF_MAX_LEARNERS))
			return -EINVAL;
		c.learners[c.n_learners++] = id;
		break;
	case RF_CONF_REMOVE:
		if ((!voter && !learner) || (voter && c.n_voters == 1))
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	/* Drop id from the list it leaves (promotion, demotion, removal). */
	if (op == RF_CONF_ADD_VOTER || op == RF_CONF_REMOVE) {
		unsigned k = 0;

		for (unsigned i = 0; i < c.n_learners; i++)
			if (c.learners[i] != id)
				c.learners[k++] = c.learners[i];
		c.n_learners = k;
	}
	if (op == RF_CONF_DEMOTE || op == RF_CONF_REMOVE) {
		unsigned k = 0;

		for (unsigned i = 0; i < c.n_voters; i++)
			if (c.voters[i] != id)
				c.voters[k++] = c.voters[i];
		c.n_voters = k;
	}
	/* One change at a time, and only once this term committed an entry
	 * (the dissertation's errata on single-server changes). */
	if (r->conf_index > r->commit || r->commit < r->noop_index)
		return -EBUSY;
	len = rf_conf_encode(&c, buf, sizeof(buf));
	if (len < 0)
		return -EINVAL;
	rc = rfi_append_entry(r, r->term, RF_ENTRY_CONF, buf, (uint32_t)len);
	if (rc)
		return rc;
	u->proposed_index = last_index(r);
	rfi_broadcast(r, false);
	return 0;
}
