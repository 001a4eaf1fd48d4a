/*
 * fs/status.c - renders /cluck/status, /cluck/status.json and
 * /cluck/metrics (SPEC 2.7) and keeps the latency histograms behind
 * metrics.  It sees fs/status.h only, never struct fs: what it shows is
 * handed to it (the node, the metrics, the table of lost holds).
 *
 * Everything here is a pure read of the local replica and the node status,
 * done in one go at open() so a reader sees one snapshot, and only the
 * lock lines the opener could look up itself (struct status_reader).  Key names and
 * their order are part of the product contract: add keys after the
 * required ones, never rename them.
 *
 * It must never: block, propose a command, touch the mount, or hold a
 * pointer into the lockcore state after returning.
 */
#include "config.h"

#include "fs/status.h"
#include "node/node.h"
#include "lockcore/lc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- histograms ----------------------------------------------------------- */

static const uint64_t bound_ns[FS_HIST_NB] = {
	50000ull, 100000ull, 250000ull, 500000ull,
	1000000ull, 2500000ull, 5000000ull, 10000000ull, 25000000ull,
	50000000ull, 100000000ull, 250000000ull, 500000000ull,
	1000000000ull, 2500000000ull, 5000000000ull, 10000000000ull,
	30000000000ull, 60000000000ull,
};
static const char *const bound_s[FS_HIST_NB] = {
	"5e-05", "0.0001", "0.00025", "0.0005",
	"0.001", "0.0025", "0.005", "0.01", "0.025",
	"0.05", "0.1", "0.25", "0.5",
	"1", "2.5", "5", "10", "30", "60",
};

/* Records one observation (see status.h). */
void fs_hist_observe(struct fs_hist *h, uint64_t ns)
{
	unsigned i;

	for (i = 0; i < FS_HIST_NB && ns > bound_ns[i]; i++)
		;
	h->bucket[i]++;
	h->count++;
	h->sum_ns += ns;
}

/* "ex", "sh" or "free" (see status.h). */
const char *status_mode_name(uint8_t type)
{
	switch (type) {
	case LC_WRLCK:
		return "ex";
	case LC_RDLCK:
		return "sh";
	default:
		return "free";
	}
}

/* ---- who sees what ------------------------------------------------------------ */

struct render {
	struct sbuf *b;
	const struct lc_state *s;
	const struct status_reader *rd;  /* NULL: sees everything */
	uint64_t now_ns;
	int first;                     /* JSON: no comma before the next item */
	/* A path has no length limit (directories nest without one): the
	 * buffer grows, so no lock loses its line for a long path. */
	char *path;
	size_t cap;
};

/* lc_path of `ino` into *buf (size *cap, grown as needed) with `room`
 * bytes left free after it: 0, -ENOENT, or -ENOMEM. */
static int path_into(const struct lc_state *s, uint64_t ino, char **buf,
		     size_t *cap, size_t room)
{
	for (;;) {
		size_t c;
		char *p;
		int rc = *cap > room ? lc_path(s, ino, *buf, *cap - room) : -ERANGE;

		if (rc != -ERANGE)
			return rc;
		c = *cap ? *cap : LC_PATH_MAX + LC_NAME_MAX + 2;
		if (c > SIZE_MAX / 4)
			return -ENOMEM;
		c = *cap ? c * 2 : c;
		p = realloc(*buf, c);
		if (!p)
			return -ENOMEM;
		*buf = p;
		*cap = c;
	}
}

/* See status.h. */
int status_lock_path(const struct lc_state *s, uint64_t ino, char **buf,
		     size_t *cap, int *deleted)
{
	uint64_t dir;
	const char *name;
	size_t len, n;
	int rc;

	*deleted = 0;
	rc = path_into(s, ino, buf, cap, 0);
	if (rc != -ENOENT)
		return rc;
	if (lc_former_name(s, ino, &dir, &name, &len) < 0)
		return -ENOENT;
	*deleted = 1;
	rc = path_into(s, dir, buf, cap, LC_NAME_MAX + 1);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		strcpy(*buf, "?");
	n = strlen(*buf);
	if (strcmp(*buf, "/") != 0)
		(*buf)[n++] = '/';
	memcpy(*buf + n, name, len);
	(*buf)[n + len] = '\0';
	return 0;
}

static int in_group(const struct status_reader *rd, uint32_t gid)
{
	if (rd->gid == gid)
		return 1;
	for (size_t i = 0; i < rd->ngroups; i++)
		if (rd->groups[i] == gid)
			return 1;
	return 0;
}

/* The kernel's rule for x on a directory (default_permissions, no ACLs):
 * the owner's bits for the owner, else the group's for a member, else the
 * others'. */
static int may_search(const struct status_reader *rd, const struct lc_attr *a)
{
	uint32_t bits;

	if (a->kind != LC_DIR)
		return 0;
	if (a->uid == rd->uid)
		bits = a->mode >> 6;
	else if (in_group(rd, a->gid))
		bits = a->mode >> 3;
	else
		bits = a->mode;
	return bits & 1u;
}

/*
 * 1 when the reader could look `path` up: it may search every directory
 * on the path as the path resolves now (uid 0 may search all).  A path
 * that does not resolve (a directory of it is gone, "?") is root's only,
 * so a line never shows what a hidden directory held.  The last component
 * is the file itself and needs no search right.
 */
static int visible(const struct render *r, const char *path)
{
	uint64_t dir = LC_INO_ROOT;
	const char *p;
	struct lc_attr a;

	if (!r->rd || r->rd->uid == 0)
		return 1;
	if (path[0] != '/')
		return 0;
	for (p = path + 1;;) {
		const char *slash = strchr(p, '/');

		if (lc_getattr(r->s, dir, &a) < 0 || !may_search(r->rd, &a))
			return 0;
		if (!slash)
			return 1;
		if (lc_lookup(r->s, dir, p, (size_t)(slash - p), &a) < 0)
			return 0;
		dir = a.ino;
		p = slash + 1;
	}
}

/* ---- status text ----------------------------------------------------------- */

/* Where the lock of `ino` is shown, in r->path (status_lock_path); -ENOMEM
 * fails the whole document, as it must not leave a lock out. */
static int lock_where(struct render *r, uint64_t ino, int *deleted)
{
	int rc = status_lock_path(r->s, ino, &r->path, &r->cap, deleted);

	if (rc == -ENOMEM)
		r->b->err = -ENOMEM;
	return rc;
}

static int text_lock(void *ctx, uint64_t ino)
{
	struct render *r = ctx;
	struct lc_locksum sum;
	int deleted;

	if (lock_where(r, ino, &deleted) < 0 || !visible(r, r->path))
		return r->b->err;
	if (lc_locksum(r->s, ino, r->now_ns, &sum) < 0)
		return 0;
	/* A deleted file's PATH field is "<deleted:INO>", which no path
	 * (they all start with '/') can be; its former path comes last. */
	if (deleted)
		sbuf_printf(r->b, "lock <deleted:%" PRIu64 ">", ino);
	else {
		sbuf_add(r->b, "lock ", 5);
		sbuf_text_str(r->b, r->path, strlen(r->path));
	}
	sbuf_printf(r->b, " mode=%s holders=%" PRIu32 " waiters=%" PRIu32
		    " token=%" PRIu64, status_mode_name(sum.mode),
		    sum.holders, sum.waiters, sum.last_token);
	if (deleted) {
		sbuf_add(r->b, " was=", 5);
		sbuf_text_str(r->b, r->path, strlen(r->path));
	}
	sbuf_add(r->b, "\n", 1);
	return r->b->err;
}

/* The node leaves `link` NULL when it does not know. */
static const char *link_name(const struct node_status *ns)
{
	return ns->link ? ns->link : "unknown";
}

static void render_text(struct sbuf *b, const struct node *n, const struct fs_lost *lost,
			const struct status_reader *rd)
{
	const struct lc_state *s = node_state(n);
	struct node_status ns;
	struct lc_stats st;
	struct render r = { .b = b, .s = s, .rd = rd, .now_ns = node_now_ns(n) };

	memset(&ns, 0, sizeof(ns));
	node_get_status(n, &ns);
	lc_stats(s, &st);
	sbuf_add(b, "node: ", 6);
	sbuf_text_str(b, ns.name ? ns.name : "", ns.name ? strlen(ns.name) : 0);
	sbuf_printf(b, "\nrole: %s\nterm: %" PRIu64 "\nleader: ",
		    ns.role ? ns.role : "member", ns.term);
	sbuf_text_str(b, ns.leader ? ns.leader : "", ns.leader ? strlen(ns.leader) : 0);
	sbuf_printf(b, "\nvoters: %u/%u\nquorum: %s\nsession: %s\n"
		    "locks_held: %" PRIu64 "\nwaiters: %" PRIu64 "\nfiles: %" PRIu64 "\n"
		    "applied: %" PRIu64 "\nsessions: %" PRIu64 "\n",
		    ns.voters_reachable, ns.voters_total, ns.quorum ? "yes" : "no",
		    ns.session ? ns.session : "expired",
		    st.locks_held, st.waiters, st.files, ns.applied_index, st.sessions);
	sbuf_printf(b, "link: %s", link_name(&ns));
	if (ns.link_if && ns.link_if[0]) {
		sbuf_add(b, " (", 2);
		sbuf_text_str(b, ns.link_if, strlen(ns.link_if));
		sbuf_add(b, ")", 1);
	}
	sbuf_printf(b, "\nmembers: %u\nlost: %zu\n", ns.members, lost ? lost->n : 0);
	sbuf_printf(b, "disk: %s\n", ns.disk ? ns.disk : "ok");
	/* Only during a stop's wait for the holders (cluckd(8) "Stopping"). */
	if (ns.stopping)
		sbuf_printf(b, "stopping: %" PRIu64 " s left, holds: %" PRIu64 "\n",
			    (ns.stop_left_ms + 999u) / 1000u, ns.stop_holds);
	lc_foreach_locked(s, text_lock, &r);
	for (const struct fs_lost_hold *h = lost ? lost->head : NULL; h && !b->err; h = h->next) {
		if (!visible(&r, h->path))
			continue;
		sbuf_add(b, "lost ", 5);
		sbuf_text_str(b, h->path, strlen(h->path));
		sbuf_printf(b, " mode=%s pid=%" PRIu32 " token=%" PRIu64 " lost_at=%" PRIu64 "%s\n",
			    status_mode_name(h->mode), h->pid, h->token, h->lost_at_ms,
			    h->released ? " released" : "");
	}
	free(r.path);
}

/* ---- status.json ------------------------------------------------------------ */

static void json_owner(struct render *r, const struct lc_lockinfo *li, int waiter)
{
	const char *name = NULL;
	size_t nlen = 0;

	sbuf_add(r->b, r->first ? "{" : ",{", r->first ? 1 : 2);
	r->first = 0;
	sbuf_add(r->b, "\"node\":\"", 8);
	if (lc_session_name(r->s, li->who.session, &name, &nlen) == 0 && name)
		sbuf_json_str(r->b, name, nlen);
	sbuf_printf(r->b, "\",\"pid\":%" PRIu32 ",\"mode\":\"%s\",\"token\":%" PRIu64
		    ",\"since\":%" PRIu64, li->who.pid, status_mode_name(li->type),
		    li->token, li->since_ns / 1000000u);
	if (li->posix) {
		if (li->end == LC_OFF_MAX)
			sbuf_printf(r->b, ",\"range\":\"%" PRIu64 "-eof\"", li->start);
		else
			sbuf_printf(r->b, ",\"range\":\"%" PRIu64 "-%" PRIu64 "\"",
				    li->start, li->end);
	}
	if (waiter)
		sbuf_printf(r->b, ",\"waited_ms\":%" PRIu64,
			    r->now_ns > li->since_ns ? (r->now_ns - li->since_ns) / 1000000u : 0);
	sbuf_add(r->b, "}", 1);
}

static int json_holder(void *ctx, const struct lc_lockinfo *li)
{
	json_owner(ctx, li, 0);
	return 0;
}

static int json_waiter(void *ctx, const struct lc_lockinfo *li)
{
	json_owner(ctx, li, 1);
	return 0;
}

/* lc_locks() walks holders then waiters with one call; the JSON needs two
 * arrays, so walk twice and print only one kind each time. */
static int skip_lock(void *ctx, const struct lc_lockinfo *li)
{
	(void)ctx;
	(void)li;
	return 0;
}

static int json_lock(void *ctx, uint64_t ino)
{
	struct render *r = ctx;
	struct lc_locksum sum;
	int deleted;

	if (lc_locksum(r->s, ino, r->now_ns, &sum) < 0)
		return 0;
	if (lock_where(r, ino, &deleted) < 0 || !visible(r, r->path))
		return r->b->err;
	sbuf_add(r->b, r->first ? "{\"path\":\"" : ",{\"path\":\"", r->first ? 9 : 10);
	if (deleted)
		sbuf_printf(r->b, "<deleted:%" PRIu64 ">", ino);
	else
		sbuf_json_str(r->b, r->path, strlen(r->path));
	sbuf_printf(r->b, "\",\"mode\":\"%s\",\"holders\":[", status_mode_name(sum.mode));
	r->first = 1;
	lc_locks(r->s, ino, json_holder, skip_lock, r);
	sbuf_add(r->b, "],\"waiters\":[", 13);
	r->first = 1;
	lc_locks(r->s, ino, skip_lock, json_waiter, r);
	sbuf_printf(r->b, "],\"token\":%" PRIu64, sum.last_token);
	if (deleted) {
		sbuf_printf(r->b, ",\"ino\":%" PRIu64 ",\"was\":\"", ino);
		sbuf_json_str(r->b, r->path, strlen(r->path));
		sbuf_add(r->b, "\"", 1);
	}
	sbuf_add(r->b, "}", 1);
	r->first = 0;
	return r->b->err;
}

static void json_kv_str(struct sbuf *b, const char *key, const char *v)
{
	sbuf_printf(b, "\"%s\":\"", key);
	if (v)
		sbuf_json_str(b, v, strlen(v));
	sbuf_add(b, "\",", 2);
}

static void render_json(struct sbuf *b, const struct node *n, const struct fs_lost *lost,
			const struct status_reader *rd)
{
	const struct lc_state *s = node_state(n);
	struct node_status ns;
	struct lc_stats st;
	struct render r = { .b = b, .s = s, .rd = rd, .now_ns = node_now_ns(n), .first = 1 };
	int first = 1;

	memset(&ns, 0, sizeof(ns));
	node_get_status(n, &ns);
	lc_stats(s, &st);
	sbuf_add(b, "{", 1);
	json_kv_str(b, "node", ns.name);
	json_kv_str(b, "role", ns.role ? ns.role : "member");
	sbuf_printf(b, "\"term\":%" PRIu64 ",", ns.term);
	json_kv_str(b, "leader", ns.leader);
	sbuf_printf(b, "\"voters\":{\"reachable\":%u,\"total\":%u},\"quorum\":%s,",
		    ns.voters_reachable, ns.voters_total, ns.quorum ? "true" : "false");
	json_kv_str(b, "session", ns.session ? ns.session : "expired");
	sbuf_printf(b, "\"locks_held\":%" PRIu64 ",\"waiters\":%" PRIu64
		    ",\"files\":%" PRIu64 ",\"applied\":%" PRIu64 ",\"sessions\":%" PRIu64 ",",
		    st.locks_held, st.waiters, st.files, ns.applied_index, st.sessions);
	json_kv_str(b, "link", link_name(&ns));
	json_kv_str(b, "link_if", ns.link_if ? ns.link_if : "");
	json_kv_str(b, "disk", ns.disk ? ns.disk : "ok");
	sbuf_printf(b, "\"members\":%u,\"lost\":%zu,", ns.members, lost ? lost->n : 0);
	if (ns.stopping)
		sbuf_printf(b, "\"stopping\":{\"seconds_left\":%" PRIu64 ",\"holds\":%" PRIu64 "},",
			    (ns.stop_left_ms + 999u) / 1000u, ns.stop_holds);
	else
		sbuf_add(b, "\"stopping\":null,", 16);
	sbuf_add(b, "\"locks\":[", 9);
	lc_foreach_locked(s, json_lock, &r);
	sbuf_add(b, "],\"lost_locks\":[", 16);
	for (const struct fs_lost_hold *h = lost ? lost->head : NULL; h && !b->err; h = h->next) {
		if (!visible(&r, h->path))
			continue;
		sbuf_add(b, first ? "{\"path\":\"" : ",{\"path\":\"", first ? 9 : 10);
		first = 0;
		sbuf_json_str(b, h->path, strlen(h->path));
		sbuf_printf(b, "\",\"mode\":\"%s\",\"pid\":%" PRIu32 ",\"token\":%" PRIu64
			    ",\"lost_at\":%" PRIu64 ",\"released\":%s}", status_mode_name(h->mode),
			    h->pid, h->token, h->lost_at_ms, h->released ? "true" : "false");
	}
	sbuf_add(b, "]}\n", 3);
	free(r.path);
}

/* ---- metrics ------------------------------------------------------------------ */

static void prom_counter(struct sbuf *b, const char *name, const char *help, uint64_t v)
{
	sbuf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n",
		    name, help, name, name, v);
}

static void prom_gauge(struct sbuf *b, const char *name, const char *help, uint64_t v)
{
	sbuf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRIu64 "\n",
		    name, help, name, name, v);
}

static void prom_hist(struct sbuf *b, const char *name, const char *help,
		      const struct fs_hist *h)
{
	uint64_t cum = 0;

	sbuf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (unsigned i = 0; i < FS_HIST_NB; i++) {
		cum += h->bucket[i];
		sbuf_printf(b, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, bound_s[i], cum);
	}
	sbuf_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
	sbuf_printf(b, "%s_sum %" PRIu64 ".%09" PRIu64 "\n", name,
		    h->sum_ns / 1000000000u, h->sum_ns % 1000000000u);
	sbuf_printf(b, "%s_count %" PRIu64 "\n", name, h->count);
}

static void peer_series(struct sbuf *b, const char *dir, const char *result, uint64_t v)
{
	sbuf_printf(b, "cluck_peer_datagrams_total{dir=\"%s\",result=\"%s\"} %" PRIu64 "\n",
		    dir, result, v);
}

static void render_metrics(struct sbuf *b, const struct node *n,
			   const struct fs_metrics *m, const struct fs_lost *lost)
{
	static const char *const roles[] = { "leader", "follower", "candidate", "member" };
	struct node_status ns;
	struct lc_stats st;
	const char *link;

	memset(&ns, 0, sizeof(ns));
	node_get_status(n, &ns);
	link = link_name(&ns);
	lc_stats(node_state(n), &st);
	prom_counter(b, "cluck_grants_total", "Locks granted.", st.grants);
	prom_counter(b, "cluck_releases_total", "Locks released.", st.releases);
	prom_counter(b, "cluck_expirations_total",
		     "Locks and lockfiles freed by session or ttl expiry.", st.expirations);
	prom_counter(b, "cluck_interrupts_total",
		     "Lock waits withdrawn by a signal.", st.interrupts);
	prom_hist(b, "cluck_acquire_latency_seconds",
		  "Lock request arrival on this node to its grant reply.", &m->acquire);
	prom_hist(b, "cluck_handoff_latency_seconds",
		  "Arrival of the request on this node that freed a lock to the reply "
		  "granting it to a waiter here (grants caused elsewhere are left out).", &m->handoff);
	prom_gauge(b, "cluck_locks_held", "Granted lock records.", st.locks_held);
	prom_gauge(b, "cluck_waiters", "Queued lock requests.", st.waiters);
	prom_gauge(b, "cluck_files", "Inodes in the namespace.", st.files);
	prom_gauge(b, "cluck_term", "Consensus term.", ns.term);
	sbuf_printf(b, "# HELP cluck_role Role of this node (1 for the current one).\n"
		    "# TYPE cluck_role gauge\n");
	for (unsigned i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		sbuf_printf(b, "cluck_role{role=\"%s\"} %d\n", roles[i],
			    ns.role && strcmp(ns.role, roles[i]) == 0);
	prom_gauge(b, "cluck_parked_requests",
		   "Lock requests of this node waiting in the kernel.", m->parked);
	prom_hist(b, "cluck_read_barrier_seconds",
		  "Namespace reads (lookup, getattr, readdir, read, xattrs) on this node: arrival "
		  "to their read barrier passed (about 0 alone or on the leader).", &m->read_wait);
	sbuf_printf(b, "# HELP cluck_stale_reads_total Reads answered from this node's replica "
		    "without a passed read barrier, by reason.\n"
		    "# TYPE cluck_stale_reads_total counter\n");
	sbuf_printf(b, "cluck_stale_reads_total{reason=\"timeout\"} %" PRIu64 "\n", m->stale_timeout);
	sbuf_printf(b, "cluck_stale_reads_total{reason=\"interrupted\"} %" PRIu64 "\n", m->stale_intr);
	sbuf_printf(b, "cluck_stale_reads_total{reason=\"jeopardy\"} %" PRIu64 "\n", m->stale_contact);
	sbuf_printf(b, "cluck_stale_reads_total{reason=\"error\"} %" PRIu64 "\n", m->stale_error);
	prom_gauge(b, "cluck_sessions", "Sessions known to the cluster.", st.sessions);
	sbuf_printf(b, "# HELP cluck_peer_datagrams_total Peer datagrams by direction and "
		    "fate (rx: ok or why dropped; tx: sent, failed, socket full).\n"
		    "# TYPE cluck_peer_datagrams_total counter\n");
	peer_series(b, "rx", "ok", ns.peer.rx_ok);
	peer_series(b, "rx", "short", ns.peer.rx_short);
	peer_series(b, "rx", "version", ns.peer.rx_version);
	peer_series(b, "rx", "auth", ns.peer.rx_auth);
	peer_series(b, "rx", "replay", ns.peer.rx_replay);
	peer_series(b, "rx", "self", ns.peer.rx_self);
	peer_series(b, "tx", "ok", ns.peer.tx_ok);
	peer_series(b, "tx", "error", ns.peer.tx_err);
	peer_series(b, "tx", "dropped", ns.peer.tx_drop);
	prom_counter(b, "cluck_sessions_lost_total",
		     "Times this node's session lease ran out (its locks were lost).",
		     ns.sessions_lost);
	/* A lone node has no link to watch ("none"): nothing can cut it off,
	 * so it counts as up; an alert on cluck_link_up == 0 then only fires
	 * for a watched link that is down or not known yet. */
	prom_gauge(b, "cluck_link_up",
		   "1 when the link carrying cluster traffic is up (or none is needed), else 0.",
		   strcmp(link, "up") == 0 || strcmp(link, "none") == 0);
	prom_gauge(b, "cluck_members", "Members (non-voters) in the configuration.", ns.members);
	prom_gauge(b, "cluck_lost_locks",
		   "Holds lost with an expired session, still refused (ENOLCK) until unlocked or closed.",
		   fs_lost_refused(lost));
}

/* Renders one generated file into a new buffer (see status.h). */
int status_render(uint64_t ino, const struct node *n,
		  const struct fs_metrics *m, const struct fs_lost *lost,
		  const struct status_reader *reader, char **out, size_t *len)
{
	struct sbuf b = { 0 };

	switch (ino) {
	case LC_INO_STATUS:
		render_text(&b, n, lost, reader);
		break;
	case LC_INO_STATUS_JSON:
		render_json(&b, n, lost, reader);
		break;
	case LC_INO_METRICS:
		render_metrics(&b, n, m, lost);
		break;
	default:
		return -ENOENT;
	}
	if (b.err) {
		int err = b.err;

		sbuf_free(&b);
		return err;
	}
	if (!b.p) {
		/* An empty document still needs a buffer the caller can free. */
		b.p = calloc(1, 1);
		if (!b.p)
			return -ENOMEM;
	}
	*out = b.p;
	*len = b.n;
	return 0;
}
