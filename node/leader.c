/*
 * node/leader.c - the engine host's leader duties: the leader proposes
 * the leader-made commands (origin 0): TICKs when a lockfile ttl runs
 * out, SESSION_CLOSEs for sessions whose lease ran out on its clock
 * (lockcore/lease.h; every session known at election gets a fresh lease
 * first, in handle(): a leader change never frees a lock), and the
 * membership of members (learners: they get the log, never vote), added
 * when they ask to join and dropped when silent for three leases.  It
 * also says whether a session's contact may be acknowledged (contact_ok).
 *
 * It must never: propose a leader-made command while not leading (its
 * timer asks again), step the engine from inside the handling of one of
 * its updates (a proposal asked for meanwhile waits in the outq for the
 * end of the step), or make more than one membership change at a time.
 */
#include "config.h"

#include "node/node_i.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* True when `id` is a voter or a learner of configuration c. */
bool conf_has(const struct rf_conf *c, uint64_t id)
{
	for (unsigned i = 0; i < c->n_voters; i++)
		if (c->voters[i] == id)
			return true;
	for (unsigned i = 0; i < c->n_learners; i++)
		if (c->learners[i] == id)
			return true;
	return false;
}

/* ---- leader-made commands ------------------------------------------------ */

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
void arm_tick(struct node *n)
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
void check_leases(struct node *n)
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

/* ---- sessions' contact and members ---------------------------------------- */

/* The leader heard from `session`: true when it may acknowledge it
 * (lockcore/session.h, session_contact_ok). */
bool contact_ok(struct node *n, uint64_t session)
{
	uint64_t now = now_ms();

	return session_contact_ok(n->st, &n->leases, n->role == RF_LEADER,
				  n->role == RF_LEADER && rf_lease_valid(n->raft, now),
				  session, now);
}

/* Leader: adds members that asked to join as learners and drops members
 * silent for three leases, one change at a time. */
void manage_members(struct node *n, uint64_t now)
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

