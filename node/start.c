/*
 * node/start.c - the engine host's start-up and recovery: what --data-dir
 * holds is loaded and the engine started on it (load), in named steps:
 * the recovery options checked, the store opened (a damaged one refused
 * with the one message that says what to do), the small files beside the
 * log kept (which cluster the directory is for, the --rejoin mark, the
 * transport epoch), the snapshot loaded, the engine configured, alone the
 * log raised to its index floor, and the engine started on the entries.
 * Then, in a cluster, the transport and the link monitor (net_start).
 *
 * It must never: guess which cluster a data directory belongs to (a
 * missing or garbled cluster file beside a log is refused with the
 * command that restores it), merge a directory of another cluster or of
 * a node alone into this one, start on a damaged log without the
 * admin's --accept-loss, let a voter that lost its log vote before it
 * caught up (--rejoin), reuse a transport epoch, or hand out a fencing
 * token again after a log that lost its end.
 */
#include "config.h"

#include "node/node_i.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- start-up ------------------------------------------------------------ */

/* mkdir -p of the directories above `dir` (the store makes `dir` itself,
 * 0700), so the default /var/lib/cluck/NAME works on a fresh machine. */
static void make_parents(const char *dir)
{
	char *p = strdup(dir);

	if (!p)
		return;
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		(void)mkdir(p, 0755);
		*s = '/';
	}
	free(p);
}

/* True when a stored configuration names one of our voters: a data
 * directory from another cluster (or from a node alone, id 1) does not. */
static bool conf_matches(const struct node *n, const struct rf_conf *c)
{
	for (unsigned i = 0; i < n->n_voters; i++)
		if (conf_has(c, n->voter_ids[i]))
			return true;
	return false;
}

/* The data directory says which cluster it belongs to (DATA_DIR/cluster:
 * "alone", or "voters NAME,NAME,..." sorted): a directory of a node alone
 * or of another cluster must not be merged into this one by Raft.  The
 * file is written at the first start; missing or garbled beside a log it
 * is refused with the command that restores it (never a guess).
 * 0, -EINVAL or -EUCLEAN (logged), -errno. */
static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A cluster file as written by check_identity(): "alone" or "voters "
 * and a non-empty list of names, one line. */
static bool identity_ok(const char *have)
{
	size_t len = strlen(have);

	if (!len || have[len - 1] != '\n')
		return false;
	if (strcmp(have, "alone\n") == 0)
		return true;
	if (strncmp(have, "voters ", 7) != 0 || len < 9)
		return false;
	for (const char *c = have + 7; *c != '\n'; c++)
		if (!(*c == ',' || *c == '.' || *c == '_' || *c == '-' ||
		      (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= 'A' && *c <= 'Z')))
			return false;
	return true;
}

static int check_identity(struct node *n, uint64_t stored)
{
	char want[RF_MAX_VOTERS * 64 + 16], have[sizeof(want)];
	const char *names[RF_MAX_VOTERS];
	size_t len = 0;
	ssize_t got;

	if (!n->clustered) {
		snprintf(want, sizeof(want), "alone\n");
	} else {
		for (unsigned i = 0; i < n->n_voters; i++)
			names[i] = n->voters[i].name;
		qsort(names, n->n_voters, sizeof(names[0]), cmp_name);
		len = (size_t)snprintf(want, sizeof(want), "voters ");
		for (unsigned i = 0; i < n->n_voters; i++)
			len += (size_t)snprintf(want + len, sizeof(want) - len, "%s%s",
						i ? "," : "", names[i]);
		snprintf(want + len, sizeof(want) - len, "\n");
	}
	got = store_get_file(n->store, "cluster", have, sizeof(have));
	if (got == -ENOENT && !stored)
		return store_put_file(n->store, "cluster", want, strlen(want));

	if (got < 0 && got != -ENOENT)
		return (int)got;
	want[strcspn(want, "\n")] = '\0';
	if (got == -ENOENT || !identity_ok(have)) {
		/* Written at the first start, before anything else: gone or
		 * garbled beside a log, it is damage, and only the admin
		 * knows which cluster the directory was made for. */
		char shown[64];

		snprintf(shown, sizeof(shown), "%.40s", have);
		for (char *c = shown; *c; c++)
			if (*c < ' ' || *c > '~')
				*c = '?';
		log_err("the data directory %s holds a log but its file 'cluster' (which "
			"cluster the directory belongs to) is %s%s%s; if this directory was "
			"made by this node %s, restore the file with: printf '%s\\n' > %s/cluster "
			"and start again; otherwise start this node with the options the "
			"directory was made with", n->data_dir,
			got == -ENOENT ? "missing" : "damaged ('", got == -ENOENT ? "" : shown,
			got == -ENOENT ? "" : "')",
			n->clustered ? "in this cluster" : "alone", want, n->data_dir);
		return -EUCLEAN;
	}
	if (strncmp(have, want, strlen(want)) == 0 && have[strlen(want)] == '\n')
		return 0;
	have[strcspn(have, "\n")] = '\0';
	log_err("the data directory %s belongs to %s%s, not to %s: start this node as "
		"the directory was made (%s), or give it another --data-dir%s", n->data_dir,
		strncmp(have, "alone", 5) ? "a cluster of voters " : "a node alone",
		strncmp(have, "alone", 5) ? have + 7 : "",
		n->clustered ? "this --cluster" : "a node alone",
		strncmp(have, "alone", 5) ? "with its --cluster" : "without --cluster",
		n->clustered && n->voter ? " (empty only for a voter of a brand-new cluster)"
					 : "");
	return -EINVAL;
}

/* The transport epoch of this run: larger than every earlier run's (kept
 * in DATA_DIR/epoch, replaced durably) and than the wall clock in ns, so a
 * restarted node's nonces never repeat and peers' replay windows accept
 * it.  0 or -errno. */
static int next_epoch(struct node *n)
{
	char txt[32];
	unsigned long long last = 0;
	uint64_t e = loop_wall_ns();
	ssize_t got = store_get_file(n->store, "epoch", txt, sizeof(txt));
	int len, rc;

	if (got < 0 && got != -ENOENT)
		return (int)got;
	if (got > 0 && sscanf(txt, "%llu", &last) != 1)
		last = 0;
	if (e <= last)
		e = last + 1;
	len = snprintf(txt, sizeof(txt), "%llu\n", (unsigned long long)e);
	rc = store_put_file(n->store, "epoch", txt, (size_t)len);
	if (rc == 0)
		n->epoch = e;
	return rc;
}

/* The one message of a data directory store_open() refused: what is
 * damaged (the store's line names the file, offset and index) and what
 * to do, which depends on where the lost entries can come from. */
static void refuse_damaged(struct node *n, const struct store_damage *d,
			   const char *msg)
{
	char what[256] = "";

	if (n->clustered && n->voter && d->kind != STORE_DAMAGE_STATE) {
		snprintf(what, sizeof(what), "this voter's entries are on the other "
			 "voters: copy %s away, remove its log-* and snap-* files (keep "
			 "state, cluster and epoch) and start it once with --rejoin; it "
			 "then votes only after it caught up (cluckd(8), Repairing a data "
			 "directory)", n->data_dir);
	} else if (n->clustered && n->voter) {
		snprintf(what, sizeof(what), "this voter's vote is lost: with every "
			 "node of the cluster stopped, copy the data directory of the "
			 "leader into %s as cluckd(8) says under Repairing a data directory",
			 n->data_dir);
	} else if (n->clustered) {
		snprintf(what, sizeof(what), "a member holds only a copy of the "
			 "cluster's log: move %s aside and start again; it catches up "
			 "from the leader", n->data_dir);
	} else if (d->kind == STORE_DAMAGE_STATE) {
		snprintf(what, sizeof(what), "no entry is lost; to rebuild the file "
			 "from the log (back up %s first), start once with "
			 "--accept-loss state", n->data_dir);
	} else if (d->lost_from) {
		snprintf(what, sizeof(what), "nobody else holds these entries; to "
			 "accept losing entries %llu to %llu%s (back up %s first), "
			 "start once with --accept-loss %llu",
			 (unsigned long long)d->lost_from,
			 (unsigned long long)d->lost_to,
			 d->kind == STORE_DAMAGE_SNAPSHOT ? " and the damaged snapshot"
							  : "",
			 n->data_dir, (unsigned long long)d->lost_from);
	} else {
		snprintf(what, sizeof(what), "this is not a directory cluckd wrote; "
			 "see cluckd(8), Repairing a data directory");
	}
	log_err("refusing to start: the data directory %s is damaged: %s; %s",
		n->data_dir, msg, what);
}

/* Alone, fencing tokens come from this node's log positions (lockcore:
 * index << LC_TOKEN_SHIFT), so a log that lost its end, even cut cleanly
 * at a record boundary, would hand out tokens again.  The store keeps an
 * index floor: every index up to `mark` was synced once (a log ending
 * below it lost synced entries: refused unless the admin accepts), none
 * above `floor` was.  The log then jumps to the floor with no-op entries,
 * so the next token is above every token ever handed out; a clean restart
 * costs at most STORE_FLOOR_STEP small records.  *jump is how many. */
static int check_floor(struct node *n, uint64_t *jump)
{
	uint64_t mark, floor, last = store_last_index(n->store);
	uint64_t t = store_last_term(n->store), term, vote;
	int r = 0;

	store_floor(n->store, &mark, &floor);
	*jump = 0;
	if (last < mark && n->accept_cut != last + 1) {
		log_err("refusing to start: the data directory %s is damaged: its log "
			"ends at index %llu, but entries up to index %llu were written and "
			"synced (a log segment was deleted or cut short at a record "
			"boundary); nobody else holds entries %llu to %llu; to accept "
			"losing them (back up %s first), start once with --accept-loss %llu",
			n->data_dir, (unsigned long long)last, (unsigned long long)mark,
			(unsigned long long)last + 1, (unsigned long long)mark, n->data_dir,
			(unsigned long long)last + 1);
		return -EUCLEAN;
	}
	if (last >= floor)
		return 0;
	if (last < mark)
		log_warn("data directory %s: entries %llu to %llu lost, as accepted",
			 n->data_dir, (unsigned long long)last + 1, (unsigned long long)mark);
	store_hardstate(n->store, &term, &vote);
	if (!t)
		t = 1;
	if (term < t)
		r = store_set_hardstate(n->store, t, vote);
	for (uint64_t i = last + 1; r == 0 && i <= floor; i++)
		r = store_append(n->store, i, t, RF_ENTRY_NOOP, NULL, 0);
	if (r == 0) {
		int64_t sr = store_sync(n->store);

		r = sr < 0 ? (int)sr : 0;
	}
	if (r < 0) {
		log_err("cannot raise the log of %s to its index floor %llu: %s", n->data_dir,
			(unsigned long long)floor, strerror(-r));
		return r;
	}
	*jump = floor - last;
	log_info("data directory %s: log raised from index %llu to its floor %llu, so "
		 "fencing tokens stay above every one handed out before", n->data_dir,
		 (unsigned long long)last, (unsigned long long)floor);
	return 0;
}

/* ---- loading ------------------------------------------------------------ */

/* The recovery options that do not fit this node: 0 or -EINVAL (logged). */
static int check_options(const struct node *n)
{
	if (n->rejoin && !(n->clustered && n->voter)) {
		log_err("--rejoin is for a voter of a cluster (--cluster naming this node)");
		return -EINVAL;
	}
	if (n->rejoin && n->n_voters < 3) {
		/* It votes for nobody until a leader fed it: the other voter
		 * of two (or none of one) is no majority alone, so one
		 * election would leave the cluster without a leader for good. */
		log_err("--rejoin needs a cluster of 3 or more voters (this one has %u): "
			"the others must elect a leader without this voter's vote; see "
			"cluckd(8), Repairing a data directory, for copying a voter's data "
			"directory instead", n->n_voters);
		return -EINVAL;
	}
	if (n->accept_state && n->clustered && n->voter) {
		log_err("--accept-loss state is refused on a voter of a cluster: a voter "
			"that forgets its vote may vote twice in one term; see cluckd(8), "
			"Repairing a data directory");
		return -EINVAL;
	}
	return 0;
}

/* Opens --data-dir; a damaged one is refused with what to do
 * (refuse_damaged).  0 or -errno (logged). */
static int open_store(struct node *n)
{
	struct store_config scfg = { .dir = n->data_dir };
	struct store_damage dmg;
	char msg[STORE_MSG_MAX];
	int r;

	/* Tests' knobs: small segments and a small floor step make every
	 * kind of damage reachable with a few files. */
	if (getenv("CLUCKD_SEGMENT_BYTES"))
		scfg.segment_bytes = strtoull(getenv("CLUCKD_SEGMENT_BYTES"), NULL, 10);
	if (getenv("CLUCKD_FLOOR_STEP"))
		scfg.floor_step = strtoull(getenv("CLUCKD_FLOOR_STEP"), NULL, 10);
	/* The cluster file is written at the first start, after the state
	 * file: beside it, a directory without one is not new but emptied
	 * (a member's may be: it holds only a copy). */
	{
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/cluster", n->data_dir);
		scfg.existing = !(n->clustered && !n->voter) && access(p, F_OK) == 0;
	}
	scfg.accept_cut = n->accept_cut;
	scfg.accept_state = n->accept_state;
	scfg.damage = &dmg;
	r = store_open(&scfg, &n->store, msg, sizeof(msg));
	if (r == -EUCLEAN) {
		refuse_damaged(n, &dmg, msg);
		return r;
	}
	if (r < 0) {
		log_err("cannot open the data directory %s: %s%s%s", n->data_dir,
			r == -EBUSY ? "another cluckd is using it" : strerror(-r),
			msg[0] ? ": " : "", msg);
		return r;
	}
	if (msg[0])
		log_warn("data directory %s: %s", n->data_dir, msg);
	return 0;
}

/* The small files beside the log: which cluster the directory is for, a
 * --rejoin not caught up yet, and (in a cluster) this run's transport
 * epoch.  0 or -errno (logged). */
static int keep_marks(struct node *n)
{
	int r = 0;

	{
		uint64_t cnt = 0, t = 0, v = 0;

		(void)store_loaded(n->store, &cnt);
		store_hardstate(n->store, &t, &v);
		r = check_identity(n, cnt + t);
		if (r < 0)
			return r;
	}
	if (n->clustered && n->voter) {
		/* --rejoin lasts until the engine caught up, across restarts:
		 * a voter restarted (by hand or by its service manager)
		 * before that would vote on the log it is still missing. */
		char b[8];
		ssize_t g = store_get_file(n->store, REJOIN_FILE, b, sizeof(b));

		if (g >= 0 && !n->rejoin)
			log_info("%s/%s: this voter had not caught up since its --rejoin",
				 n->data_dir, REJOIN_FILE);
		if (g >= 0)
			n->rejoin = true;
		else if (g != -ENOENT)
			r = (int)g;
		else if (n->rejoin)
			r = store_put_file(n->store, REJOIN_FILE, "1\n", 2);
		if (r < 0) {
			log_err("cannot keep the rejoin mark in %s: %s", n->data_dir,
				strerror(-r));
			return r;
		}
	}
	if (n->clustered) {
		r = next_epoch(n);
		if (r < 0) {
			log_err("cannot keep the transport epoch in %s: %s", n->data_dir,
				strerror(-r));
			return r;
		}
	}
	return 0;
}

/* The stored snapshot (if any) becomes the state, its configuration
 * *conf; one of another cluster is refused.  0 or -errno (logged). */
static int load_snapshot(struct node *n, const struct store_snapshot *snap,
			 struct rf_conf *conf)
{
	int r;

	if (snap->index) {
		lc_state_free(n->st);
		n->st = NULL;
		r = lc_state_load(snap->data, snap->len, &n->st);
		if (r == 0)
			r = rf_conf_decode(snap->meta, snap->meta_len, conf);
		if (r < 0) {
			log_err("the snapshot at index %llu in %s does not load: %s",
				(unsigned long long)snap->index, n->data_dir, strerror(-r));
			return r;
		}
		n->applied = n->snap_index = snap->index;
		n->snap_len = snap->len;
	}
	if (snap->index && n->clustered && !conf_matches(n, conf)) {
		log_err("the data directory %s holds the state of another cluster (its "
			"configuration names none of the voters of --cluster); use an empty "
			"--data-dir", n->data_dir);
		return -EINVAL;
	}
	return 0;
}

/* The engine's configuration: the voters of --cluster (a member starts as
 * a learner of its own bootstrap) and the cluster timing, or alone a
 * one-voter cluster that elects itself at once. */
static void engine_config(struct node *n, struct rf_config *rc)
{
	memset(rc, 0, sizeof(*rc));       /* the defaults set only the timings */
	rf_config_defaults(rc);
	if (n->clustered) {
		rc->id = n->self_id;
		for (unsigned i = 0; i < n->n_voters; i++)
			rc->voters[i] = n->voter_ids[i];
		rc->n_voters = n->n_voters;
		if (!n->voter) {
			/* A member starts as a learner of its own bootstrap
			 * (the engine wants to find itself); the leader's
			 * configuration replaces it with the first append. */
			rc->learners[0] = n->self_id;
			rc->n_learners = 1;
		}
		if (n->voter && n->rejoin) {
			/* A voter started on a log it lost: no vote, no
			 * campaign until it holds the leader's committed
			 * entries again (lockcore/raft.h, catch_up). */
			rc->catch_up = 1;
			n->rejoining = true;
			log_info("rejoining: this voter grants no vote and never campaigns "
				 "until it holds the leader's committed entries");
		}
		rc->election_timeout_min_ms = ELECTION_MIN_MS;
		rc->election_timeout_max_ms = ELECTION_MAX_MS;
		rc->heartbeat_ms = HEARTBEAT_MS;
		rc->max_clock_drift_ms = DRIFT_MS;
	} else {
		rc->id = SELF_ID;
		rc->voters[0] = SELF_ID;
		rc->n_voters = 1;
		/* Alone, there is nobody to wait for: elect at once. */
		rc->election_timeout_min_ms = 10;
		rc->election_timeout_max_ms = 20;
		rc->heartbeat_ms = 5;
		rc->max_clock_drift_ms = 1;
	}
	if (getrandom(&rc->seed, sizeof(rc->seed), GRND_NONBLOCK) != (ssize_t)sizeof(rc->seed))
		rc->seed = loop_mono_ns();
}

/* Starts the engine on the snapshot, the stored entries and the `jump`
 * no-op entries check_floor() appended after them; *ne is how many
 * entries it got.  0 or -errno (-EUCLEAN logged). */
static int start_engine(struct node *n, const struct store_snapshot *snap,
			const struct rf_conf *conf, uint64_t jump, uint64_t *ne)
{
	struct rf_event ev = { .type = RF_EV_START };
	struct rf_entry *ents = NULL;
	const struct store_entry *se;
	uint64_t term, vote;
	int r;

	*ne = 0;
	se = store_loaded(n->store, ne);
	if (*ne + jump) {
		uint64_t jt = *ne ? se[*ne - 1].term : snap->term;

		ents = calloc(*ne + jump, sizeof(*ents));
		if (!ents)
			return -ENOMEM;
		for (uint64_t i = 0; i < *ne; i++)
			ents[i] = (struct rf_entry){ se[i].term, se[i].type, se[i].len, se[i].buf };
		/* The no-op entries check_floor() appended after them. */
		for (uint64_t i = *ne; i < *ne + jump; i++)
			ents[i] = (struct rf_entry){ jt ? jt : 1, RF_ENTRY_NOOP, 0, NULL };
		*ne += jump;
	}
	store_hardstate(n->store, &term, &vote);
	ev.start.term = term;
	ev.start.vote = vote;
	ev.start.snap_index = snap->index;
	ev.start.snap_term = snap->term;
	ev.start.snap_conf = snap->index ? conf : NULL;
	ev.start.snap_buf = snap->data;
	ev.start.snap_len = snap->len;
	ev.start.entries = ents;
	ev.start.n_entries = *ne;
	r = step(n, &ev);
	free(ents);
	if (r < 0) {
		log_err("the log in %s does not load into the engine (%s): its terms do "
			"not fit the state file's term %llu or go down, or an entry is "
			"malformed; this is damage the records' checksums did not catch: "
			"see cluckd(8), Repairing a data directory", n->data_dir,
			strerror(-r), (unsigned long long)term);
		return -EUCLEAN;
	}
	return 0;
}

/* Loads what --data-dir holds and starts the engine on it. */
int load(struct node *n)
{
	struct store_snapshot snap = { 0 };
	struct rf_config rc;
	struct rf_conf conf;
	uint64_t ne = 0, jump = 0;
	int r;

	make_parents(n->data_dir);
	r = check_options(n);
	if (r == 0)
		r = open_store(n);
	if (r == 0)
		r = keep_marks(n);
	if (r < 0)
		return r;
	store_snapshot_take(n->store, &snap);
	r = load_snapshot(n, &snap, &conf);
	if (r < 0)
		goto free_snap;
	engine_config(n, &rc);
	r = rf_new(&rc, &n->raft);
	if (r < 0)
		goto free_snap;
	if (!n->clustered) {
		r = check_floor(n, &jump);
		if (r < 0)
			goto free_snap;
	}
	r = start_engine(n, &snap, &conf, jump, &ne);
	if (r < 0)
		goto free_snap;
	snap.data = NULL;        /* the engine's now */
	free(snap.meta);
	store_loaded_free(n->store);
	if (ne || snap.index)
		log_info("recovered %s: snapshot at %llu, %llu log entries", n->data_dir,
			 (unsigned long long)snap.index, (unsigned long long)ne);
	return 0;

free_snap:
	free(snap.meta);
	free(snap.data);
	return r < 0 ? r : -EINVAL;
}

/* ---- the transport ------------------------------------------------------ */

/* Binds the transport, learns the voters' addresses and starts the link
 * monitor.  0 or -errno (logged). */
int net_start(struct node *n)
{
	uint8_t cluster[PEER_CLUSTER_BYTES];
	struct peer_config pc = { .listen = (const struct sockaddr *)&n->listen,
				  .listen_len = n->listen_len, .self_id = n->self_id,
				  .epoch = n->epoch, .key = n->has_key ? n->key : NULL,
				  .cluster = cluster };
	const char *names[RF_MAX_VOTERS];
	const struct sockaddr *addrs[RF_MAX_VOTERS];
	socklen_t lens[RF_MAX_VOTERS];
	unsigned na = 0;
	int rc;

	/* The --cluster list (which the `cluster` file pins) names the
	 * cluster: datagrams authenticate only within it. */
	for (unsigned i = 0; i < n->n_voters; i++)
		names[i] = n->voters[i].name;
	rc = peer_cluster_id(names, n->n_voters, cluster);
	if (rc < 0)
		return rc;
	/* The caller reports a failure (one line). */
	rc = peer_new(n->loop, &pc, on_peer, n, &n->peer);
	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < n->n_voters; i++) {
		struct known *k;

		if (n->voter_ids[i] == n->self_id)
			continue;
		rc = peer_set_addr(n->peer, n->voter_ids[i],
				   (const struct sockaddr *)&n->voters[i].addr,
				   n->voters[i].addr_len);
		if (rc < 0)
			return rc;
		k = known_get(n, n->voter_ids[i]);
		if (k)
			k->voter = true;
		addrs[na] = (const struct sockaddr *)&n->voters[i].addr;
		lens[na++] = n->voters[i].addr_len;
	}
	if (na) {
		rc = link_new(n->loop, addrs, lens, na, on_link, n, &n->link);
		if (rc < 0)
			log_warn("no link monitoring (netlink: %s); jeopardy comes from "
				 "timeouts only", strerror(-rc));
		else
			n->link_st = link_state(n->link);
		if (n->link_st == LINK_DOWN)
			session_link(n->sess, SESSION_LINK_DOWN, now_ms());
	}
	return 0;
}

