/*
 * t/sim/run.c - one run: dispatching timed events, the run loop, setting
 * up a world from a seed (bootstrap log, nodes, clients) and freeing it,
 * and run_seed() (faults until the heal, then everything must complete).
 *
 * It must never: let anything but the seed decide the run, or end a run
 * without its final checks.
 */
#include "t/sim/sim.h"

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
		if (nd->up) {
			/* cluckd checks its view before every datagram */
			session_check(nd->ss, local(e->node));
			run_effects(e->node);
		}
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

bool all_done(void)
{
	for (int k = 0; k < S.nclients; k++)
		if (S.cl[k].state != C_DONE)
			return false;
	return true;
}

void run_until(uint64_t t, bool stop_when_done)
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

void world_init(uint64_t seed, int voters, int clients, int ops)
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

void world_free(void)
{
	cl_queue_clear(&S.q);
	for (int i = 0; i < S.n; i++) {
		struct node *nd = &S.nodes[i];

		if (nd->up)
			node_crash(i);
		free(nd->defer);
		cl_disk_free(&nd->disk);
	}
	S.snap_k = 0;
	for (size_t k = 0; k < S.nsr; k++)
		free(S.sr[k].ans);
	S.nsr = 0;
	S.nlost = 0;
	S.lease_ms = 0;
	S.op_timeout = 0;
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

void run_seed(uint64_t seed, int voters, int members)
{
	struct cl_rng pick;
	int clients;

	cl_rng_seed(&pick, seed ^ 0x5eedull);
	S.voters_arg = voters;
	S.members_arg = members;
	clients = (int)cl_between(&pick, 1, 6);
	/* A quarter of the seeds give requests a deadline (cluckd --op-timeout):
	 * releases that time out are still sent, and a lock of the same
	 * owner waits for them. */
	S.op_timeout = cl_chance(&pick, 25) ? cl_between(&pick, 50, 400) : 0;
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
