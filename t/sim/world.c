/*
 * t/sim/world.c - the simulated world: the run's state (S), the trace and
 * the violation report, timed events, the nodes' drifting clocks, the
 * faulty network (delays, drops, duplicates, reorders, partitions) and
 * the faults a seed draws (crashes, restarts, pauses, partitions,
 * membership changes, lost logs) until it heals.
 *
 * It must never: read the real clock or draw randomness from anything but
 * S.rng (a seed must replay exactly), or deliver a message the network
 * dropped or a partition blocks.
 */
#include "t/sim/sim.h"

static bool any_rejoin(void);

struct sim S;

/* Scenario hooks: drop chosen messages; act the instant a node leads
 * (before its first messages leave). */
bool (*drop_hook)(int from, const struct rf_msg *m);
bool (*sdrop_hook)(int from, int to, const struct session_msg *m);
void (*leader_hook)(int node);

/* ---- trace and violations ------------------------------------------------ */

void tr(const char *fmt, ...)
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

void fail(const char *fmt, ...)
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
	printf("replay: t/sim/sim --seed %llu", (unsigned long long)S.seed);
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

void at(uint64_t t, int type, int node, int a, uint64_t gen)
{
	cl_push(&S.q, (struct cl_ev){ .t = t, .type = type, .node = node, .a = a, .gen = gen });
}

/* ---- clocks ------------------------------------------------------------- */

uint64_t local(int i)
{
	struct node *nd = &S.nodes[i];
	uint64_t l = S.now + nd->clock_off;

	if (l < nd->last_local)
		l = nd->last_local;    /* a clock slewed back never goes back */
	nd->last_local = l;
	return l;
}

/* ---- network ------------------------------------------------------------- */

/* Puts one message on the faulty network: blocked links, drops,
 * duplicates, and delays that reorder. */
void net_push(int from, int to, int type, const uint8_t *buf, size_t len)
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

void net_send(int from, const struct rf_msg *m)
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

void deliver(struct cl_ev *e)
{
	struct rf_event ev = { .type = RF_EV_RECEIVE };
	struct rf_msg m;

	if (rf_msg_decode(e->buf, e->len, &m))
		fail("a message sent by n%d does not decode", e->a + 1);
	ev.receive = &m;
	step(e->node, &ev);
	rf_msg_release(&m);
}

/* ---- faults -------------------------------------------------------------- */

/* The up leader of the highest term, or -1. */
int leader_node(void)
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
void node_remove(int i)
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
void node_readd(int i)
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

void heal_net(void)
{
	memset(S.block, 0, sizeof(S.block));
}

void fault(void)
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
			/* now and then past its lease (a VM stall): it wakes
			 * to apply what its view may no longer hand out */
			nd->paused_until = S.now + (cl_chance(&S.rng, 10)
						    ? cl_between(&S.rng, S.lease_ms / 2,
								 S.lease_ms * 3 / 2)
						    : cl_between(&S.rng, 20, 400));
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

void heal(void)
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
