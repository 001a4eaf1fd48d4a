/*
 * t/sim/scenario.c - scripted scenarios (--scenario): two leaders,
 * quorum loss, Raft's figure 8, a lost report, lease expiry and heal,
 * a leader change's grace, a request re-serialled after -ESTALE.  Each sets up a world, steers it with hooks
 * and asserts what must happen.
 *
 * It must never: pass when what the scenario is about did not happen.
 */
#include "t/sim/sim.h"

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

/* A quiet world from `seed`: no faults, sessions open, a leader. */
static int quiet_start(uint64_t seed, int voters, int clients)
{
	int l;

	world_init(seed, voters, clients, 0);
	S.faults_on = false;
	run_until(1500, false);
	open_sessions();
	l = leader_node();
	expect(l >= 0, "a leader is elected");
	return l;
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

static bool lr_sdrop(int from, int to, const struct session_msg *m)
{
	(void)from;
	/* lr_serial 0: the first forward of lr_sess, whatever its serial */
	if (m->kind == SM_FWD && m->session == lr_sess && !lr_drops &&
	    (!lr_serial || m->serial == lr_serial)) {
		lr_serial = m->serial;
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
	l = quiet_start(4, 3, 3);
	a = (l + 1) % S.n;
	b = (l + 2) % S.n;
	S.cl[0].node = a;
	S.cl[1].node = b;
	S.cl[2].node = b;
	/* (1) the first forward of c1's request is lost */
	lr_sess = S.nodes[a].sess;
	lr_serial = 0;
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
	*l = quiet_start(seed, voters, 2);
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

/* reserial: every forward of one request of node a is lost while more
 * than LC_DEDUP_WINDOW newer serials of a's session are applied; when a
 * copy finally reaches the log, lockcore answers it -ESTALE (it cannot
 * tell whether the request ran).  The log never showed it, so the session
 * sends it again under a new serial: the client gets its real answer
 * (with --break=reserial it would get -ESTALE: a violation). */
static uint64_t rs_sess, rs_serial;
static int rs_from = -1;
static bool rs_on;

static bool rs_sdrop(int from, int to, const struct session_msg *m)
{
	(void)to;
	if (!rs_on || from != rs_from || m->kind != SM_FWD || m->session != rs_sess)
		return false;
	if (!rs_serial)
		rs_serial = m->serial;       /* the first forward after rs_on */
	return m->serial == rs_serial;
}

static void scenario_reserial(void)
{
	int l, a;
	uint64_t re0 = S.reserials;

	S.scenario = "reserial";
	l = quiet_start(5, 3, 2);
	a = (l + 1) % S.n;
	S.cl[0].node = a;
	S.cl[1].node = a;
	rs_from = a;
	rs_sess = S.nodes[a].sess;
	rs_serial = 0;
	rs_on = true;
	sdrop_hook = rs_sdrop;
	script(0, LC_CMD_FLOCK, 0, LC_WRLCK, 0);
	expect(rs_serial != 0, "the request's forward is lost");
	for (unsigned k = 0; k < LC_DEDUP_WINDOW / 2 + 4; k++) {
		script(1, LC_CMD_FLOCK, 1, LC_WRLCK, 0);
		while (S.cl[1].state == C_WAIT)
			run_until(S.now + 5, false);
		script(1, LC_CMD_RELEASE, 1, 0, 0);
		while (S.cl[1].state == C_WAIT)
			run_until(S.now + 5, false);
	}
	expect(S.cl[0].answers == 0, "the lost request waits");
	rs_on = false;
	run_until(S.now + 1500, false);
	expect(ans_of(rs_sess, rs_serial) && ans_of(rs_sess, rs_serial)->status == -ESTALE,
	       "a copy reached the log and was answered -ESTALE");
	expect(S.cl[0].answers == 1 && S.cl[0].last_status == 0 && S.cl[0].hold == H_FLOCK,
	       "the client got its lock, once, under a new serial");
	expect(S.reserials == re0 + 1, "the session sent it again under a new serial");
	sdrop_hook = NULL;
	rs_from = -1;
	check_log_matching();
	world_free();
}

void run_scenario(const char *name)
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
	else if (!strcmp(name, "reserial"))
		scenario_reserial();
	else {
		fprintf(stderr, "sim: unknown scenario %s\n", name);
		exit(2);
	}
	printf("scenario %s: ok\n", name);
	S.scenario = NULL;
}
