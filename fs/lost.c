/*
 * fs/lost.c - holds lost with our session (SPEC 3).  When the node reports
 * the session lost, or a clean stop's time is up, its holds are remembered
 * (the table of struct fs_lost, which status lists) and their processes
 * signalled (--on-lost, descendants too), and their owners' lock
 * operations fail with ENOLCK until they unlock or close (lost_gate).
 *
 * It must never: count as lost a hold its owner unlocked (struct unl),
 * signal ourselves, init or a process group, remember without bound
 * (FS_LOST_MAX), or block (the exception: /proc, to find descendants).
 */
#include "config.h"

#include "fs/fs_i.h"
#include "net/log.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- lost holds ------------------------------------------------------------ */

/* Keeps chains short: at most one hold per bucket on average. */
static int lost_grow(struct fs_lost *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct fs_lost_hold **nt;

	if (t->n < t->cap)
		return 0;
	nt = calloc(cap, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++)
		while (t->tab[i]) {
			struct fs_lost_hold *h = t->tab[i];
			size_t j = pair_hash(h->ino, h->owner, cap);

			t->tab[i] = h->hnext;
			h->hnext = nt[j];
			nt[j] = h;
		}
	free(t->tab);
	t->tab = nt;
	t->cap = cap;
	return 0;
}

/* Remembers one lost hold (see status.h). */
int fs_lost_add(struct fs_lost *t, const struct fs_lost_hold *src, const char *path)
{
	struct fs_lost_hold *h;
	size_t i;

	if (t->n >= FS_LOST_MAX) {
		t->dropped++;
		return -ENOSPC;
	}
	if (lost_grow(t) < 0)
		goto no_memory;
	h = malloc(sizeof(*h));
	if (!h)
		goto no_memory;
	*h = *src;
	h->path = strdup(path ? path : "?");
	if (!h->path)
		goto free_hold;
	i = pair_hash(h->ino, h->owner, t->cap);
	h->hnext = t->tab[i];
	t->tab[i] = h;
	h->next = NULL;
	h->prev = t->tail;
	if (t->tail)
		t->tail->next = h;
	else
		t->head = h;
	t->tail = h;
	t->n++;
	return 0;

free_hold:
	free(h);
no_memory:
	t->dropped++;
	return -ENOMEM;
}

/* 1 when (ino, owner) has a remembered hold (see status.h). */
int fs_lost_has(const struct fs_lost *t, uint64_t ino, uint64_t owner)
{
	if (!t || !t->n)
		return 0;
	for (const struct fs_lost_hold *h = t->tab[pair_hash(ino, owner, t->cap)]; h; h = h->hnext)
		if (h->ino == ino && h->owner == owner && !h->released)
			return 1;
	return 0;
}

/* Holds still refused (see status.h). */
size_t fs_lost_refused(const struct fs_lost *t)
{
	size_t k = 0;

	for (const struct fs_lost_hold *h = t ? t->head : NULL; h; h = h->next)
		k += !h->released;
	return k;
}

static void lost_unlink(struct fs_lost *t, struct fs_lost_hold *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		t->head = h->next;
	if (h->next)
		h->next->prev = h->prev;
	else
		t->tail = h->prev;
	free(h->path);
	free(h);
	t->n--;
}

/* Forgets the holds of (ino, owner) (see status.h). */
size_t fs_lost_del(struct fs_lost *t, uint64_t ino, uint64_t owner)
{
	struct fs_lost_hold **pp;
	size_t k = 0;

	if (!t || !t->n)
		return 0;
	pp = &t->tab[pair_hash(ino, owner, t->cap)];
	for (struct fs_lost_hold *h = *pp; h; h = h->hnext)
		if (h->ino == ino && h->owner == owner && !h->released) {
			h->released = 1;
			k++;
		}
	return k;
}

/* Drops released holds of sessions the cluster freed (see status.h). */
void fs_lost_purge(struct fs_lost *t, const struct lc_state *s)
{
	for (size_t i = 0; t && i < t->cap; i++) {
		struct fs_lost_hold **pp = &t->tab[i];

		while (*pp) {
			struct fs_lost_hold *h = *pp;
			const char *name;
			size_t len;

			if (h->released && lc_session_name(s, h->session, &name, &len) != 0) {
				*pp = h->hnext;
				lost_unlink(t, h);
			} else {
				pp = &h->hnext;
			}
		}
	}
}

/* Forgets everything (see status.h). */
void fs_lost_free(struct fs_lost *t)
{
	while (t->head) {
		struct fs_lost_hold *h = t->head;

		t->head = h->next;
		free(h->path);
		free(h);
	}
	free(t->tab);
	memset(t, 0, sizeof(*t));
}

/* ---- lost locks (SPEC 3) ------------------------------------------------------------------ */

/*
 * Lock operations of an owner whose hold on ino was lost.  Returns true
 * when it answered req: ENOLCK for anything but an unlock, which is
 * answered 0 at once and ends the refusal.  An unlock needs no command:
 * the lost hold belongs to the old session, which the cluster frees by
 * itself, and while refused the owner cannot have taken anything under
 * the new one here.
 */
bool lost_gate(struct fs *fs, fuse_req_t req, uint64_t ino, uint64_t owner, bool unlock)
{
	if (!fs_lost_has(&fs->lost, ino, owner))
		return false;
	if (!unlock) {
		fuse_reply_err(req, ENOLCK);
		return true;
	}
	fs_lost_del(&fs->lost, ino, owner);
	fuse_reply_err(req, 0);
	return true;
}

/* One walk of the local replica for the locks of the lost session. */
struct lost_walk {
	struct fs *fs;
	uint64_t session;
	uint64_t ino;
	uint64_t now_ms;
	uint32_t *pids;
	size_t npids, cappids;
	size_t holds;
	bool path_ok;
	char *path;             /* grows: directories nest without a limit */
	size_t cap;
};

static void lost_pid(struct lost_walk *w, uint32_t pid)
{
	if (pid == 0)
		return;
	if (w->npids == w->cappids) {
		size_t cap = w->cappids ? w->cappids * 2 : 64;
		uint32_t *p = realloc(w->pids, cap * sizeof(*p));

		if (!p)
			return;          /* that process goes unsignalled, logged below */
		w->pids = p;
		w->cappids = cap;
	}
	w->pids[w->npids++] = pid;
}

static int lost_holder(void *ctx, const struct lc_lockinfo *li)
{
	struct lost_walk *w = ctx;
	struct fs_lost_hold h;

	if (li->who.session != w->session)
		return 0;
	/* Its owner unlocked it; the unlock just did not reach the log. */
	if (unl_covers(w->fs, w->ino, li))
		return 0;
	lost_pid(w, li->who.pid);
	memset(&h, 0, sizeof(h));
	h.ino = w->ino;
	h.owner = li->who.owner;
	h.pid = li->who.pid;
	h.mode = li->type;
	h.posix = li->posix;
	h.token = li->token;
	h.since_ms = li->since_ns / 1000000u;
	h.lost_at_ms = w->now_ms;
	h.session = w->session;
	(void)fs_lost_add(&w->fs->lost, &h, w->path_ok ? w->path : "?");
	w->holds++;
	return 0;
}

static int lost_waiter(void *ctx, const struct lc_lockinfo *li)
{
	struct lost_walk *w = ctx;

	/* The node answered its request ENOLCK; it is told by signal too. */
	if (li->who.session == w->session)
		lost_pid(w, li->who.pid);
	return 0;
}

/* Where a lost hold is shown: where status shows the lock itself
 * (status_lock_path).  False when that is not known (or memory ran out):
 * "?". */
static bool lost_path(struct lost_walk *w, uint64_t ino)
{
	int deleted;

	return status_lock_path(st_of(w->fs), ino, &w->path, &w->cap, &deleted) == 0;
}

static int lost_ino(void *ctx, uint64_t ino)
{
	struct lost_walk *w = ctx;
	const struct lc_state *s = st_of(w->fs);

	w->ino = ino;
	w->path_ok = lost_path(w, ino);
	lc_locks(s, ino, lost_holder, lost_waiter, w);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void sort_unique(struct lost_walk *w)
{
	size_t k = 0;

	if (!w->npids)
		return;
	qsort(w->pids, w->npids, sizeof(w->pids[0]), cmp_u32);
	for (size_t i = 0; i < w->npids; i++)
		if (k == 0 || w->pids[i] != w->pids[k - 1])
			w->pids[k++] = w->pids[i];
	w->npids = k;
}

/*
 * Adds the descendants of the pids in w (sorted, unique) to it.  The pid a
 * lock records is the one that asked, and `flock /cluck/x cmd` asks from
 * flock(1) while cmd, which inherited the descriptor and so holds the lock
 * too, does the work: signalling flock(1) alone would leave cmd running
 * with a lost lock.  Never below pid 1 or ourselves (that would be
 * everything, or our own workers).
 */
static void lost_descendants(struct lost_walk *w, uint32_t self)
{
	struct proc { uint32_t pid, ppid; } *pr = NULL, *np;
	size_t n = 0, cap = 0;
	struct dirent *de;
	bool grew = true;
	DIR *d;

	if (!w->npids)
		return;
	d = opendir("/proc");
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		char *end;
		unsigned long v = strtoul(de->d_name, &end, 10);
		uint32_t pp;

		if (*end || v == 0 || v > INT32_MAX)
			continue;
		pp = ppid_of((uint32_t)v);
		if (pp <= 1 || pp == self)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			np = realloc(pr, cap * sizeof(*pr));
			if (!np)
				break;
			pr = np;
		}
		pr[n].pid = (uint32_t)v;
		pr[n].ppid = pp;
		n++;
	}
	closedir(d);
	/* One pass per generation; a pid enters at most once. */
	while (grew) {
		size_t before = w->npids;

		grew = false;
		for (size_t i = 0; i < n; i++) {
			if (!bsearch(&pr[i].ppid, w->pids, before, sizeof(w->pids[0]), cmp_u32) ||
			    bsearch(&pr[i].pid, w->pids, before, sizeof(w->pids[0]), cmp_u32))
				continue;
			lost_pid(w, pr[i].pid);
			grew = true;
		}
		sort_unique(w);
		if (w->npids == before)
			break;
	}
	free(pr);
}

/* The holds of `old_session` are lost: remembered (their owners' lock
 * operations fail with ENOLCK), their processes and descendants
 * signalled.  `stop`: our own clean stop gives them up, not an expiry. */
static void lose_holds(struct fs *fs, uint64_t old_session, bool stop)
{
	struct lost_walk w = { .fs = fs, .session = old_session };
	uint64_t dropped0 = fs->lost.dropped;
	uint32_t self = (uint32_t)getpid();
	size_t signalled = 0;

	w.now_ms = node_now_ns(fs->node) / 1000000u;
	/* Record first, signal after: kill() cannot change the replica, but
	 * the walk must see one state. */
	lc_foreach_locked(st_of(fs), lost_ino, &w);
	fs->nunl = 0;                /* they were all of the old session */
	sort_unique(&w);
	if (fs->cfg.on_lost_signal > 0)
		lost_descendants(&w, self);
	for (size_t i = 0; i < w.npids; i++) {
		/* Never ourselves (we do not lock our own mount) nor init; a
		 * pid above INT32_MAX would be a group. */
		if (w.pids[i] == self || w.pids[i] <= 1 || w.pids[i] > INT32_MAX)
			continue;
		if (fs->cfg.on_lost_signal > 0 &&
		    kill((pid_t)w.pids[i], fs->cfg.on_lost_signal) < 0) {
			if (errno != ESRCH)
				log_warn("%s: cannot signal pid %" PRIu32 ": %m",
					 stop ? "stopping" : "session lost", w.pids[i]);
			continue;
		}
		signalled++;
	}
	if (stop)
		log_warn("stopping: %zu held locks given up (%" PRIu64 " not remembered), "
			 "%zu processes signalled", w.holds, fs->lost.dropped - dropped0,
			 fs->cfg.on_lost_signal > 0 ? signalled : 0);
	else
		log_warn("session %016" PRIx64 " lost: %zu held locks lost (%" PRIu64
			 " not remembered), %zu processes signalled", old_session, w.holds,
			 fs->lost.dropped - dropped0, fs->cfg.on_lost_signal > 0 ? signalled : 0);
	free(w.pids);
	free(w.path);
}

/* node_on_lost callback: our session `old_session` expired (SPEC 3). */
void fs_on_lost(void *ctx, uint64_t old_session)
{
	lose_holds(ctx, old_session, false);
}

/* The stop's time is up: the holders left are signalled as on a lost lock
 * (--on-lost, descendants too) before node_stop() frees their locks. */
void fs_stop_signal(struct fs *fs)
{
	if (node_holds(fs->node))
		lose_holds(fs, node_session(fs->node), true);
}
