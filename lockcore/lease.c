/*
 * lockcore/lease.c - session leases as the leader and a node see them
 * (lease.h explains the rules and why the node gives up first).
 *
 * It must never: read a clock, do I/O, draw randomness, or decide anything
 * from a time it was not given.  It reads the lock state's session list
 * through lci.h (lc.h has no public iterator) and never changes the state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lease.h"
#include "lockcore/lci.h"

/* Initialises an empty table. */
void lease_table_init(struct lease_table *t, uint64_t lease_ms)
{
	memset(t, 0, sizeof(*t));
	t->lease_ms = lease_ms ? lease_ms : 1;
}

/* Frees the table's memory; it stays usable (empty). */
void lease_table_free(struct lease_table *t)
{
	if (!t)
		return;
	free(t->v);
	t->v = NULL;
	t->n = t->cap = 0;
}

/* Position of `session` or where it would go (binary search). */
static size_t pos(const struct lease_table *t, uint64_t session, bool *found)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->v[mid].session < session)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < t->n && t->v[lo].session == session;
	return lo;
}

static int reserve(struct lease_table *t, size_t n)
{
	struct lease_ent *v;
	size_t cap;

	if (n <= t->cap)
		return 0;
	cap = t->cap ? t->cap * 2 : 16;
	while (cap < n)
		cap *= 2;
	v = realloc(t->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	t->v = v;
	t->cap = cap;
	return 0;
}

/* Inserts a fresh entry at position p. */
static int insert_at(struct lease_table *t, size_t p, uint64_t session, uint64_t now_ms)
{
	if (reserve(t, t->n + 1))
		return -ENOMEM;
	memmove(&t->v[p + 1], &t->v[p], (t->n - p) * sizeof(*t->v));
	t->v[p] = (struct lease_ent){ .session = session, .last_ms = now_ms };
	t->n++;
	return 0;
}

/* New leadership: every session of the state gets a full lease from now. */
int lease_reset(struct lease_table *t, const struct lc_state *s, uint64_t now_ms)
{
	if (!t)
		return -EINVAL;
	t->n = 0;
	if (!s)
		return 0;
	if (reserve(t, s->sn))
		return -ENOMEM;
	/* s->sv is sorted by id, which is the table's order too. */
	for (size_t i = 0; i < s->sn; i++)
		t->v[i] = (struct lease_ent){ .session = s->sv[i]->id, .last_ms = now_ms };
	t->n = s->sn;
	return 0;
}

/* A SESSION_OPEN applied while leading starts a lease, once. */
int lease_open(struct lease_table *t, uint64_t session, uint64_t now_ms)
{
	bool found;
	size_t p;

	if (!t || !session)
		return -EINVAL;
	p = pos(t, session, &found);
	return found ? 0 : insert_at(t, p, session, now_ms);
}

/* Contact from a session. */
int lease_touch(struct lease_table *t, uint64_t session, uint64_t now_ms)
{
	struct lease_ent *e;
	bool found;
	size_t p;
	int r;

	if (!t || !session)
		return -EINVAL;
	p = pos(t, session, &found);
	if (!found) {
		r = insert_at(t, p, session, now_ms);
		return r;
	}
	e = &t->v[p];
	/* A clock that steps back must not shorten a lease already given. */
	if (now_ms > e->last_ms)
		e->last_ms = now_ms;
	e->reported = 0;
	return e->doomed ? LEASE_DOOMED : 0;
}

/* The session's SESSION_CLOSE was applied. */
void lease_forget(struct lease_table *t, uint64_t session)
{
	bool found;
	size_t p;

	if (!t || !session)
		return;
	p = pos(t, session, &found);
	if (!found)
		return;
	memmove(&t->v[p], &t->v[p + 1], (t->n - p - 1) * sizeof(*t->v));
	t->n--;
}

/* Sessions whose lease ran out, each reported once. */
size_t lease_expired(struct lease_table *t, uint64_t now_ms, uint64_t *out,
		     size_t max)
{
	size_t k = 0;

	if (!t || !out)
		return 0;
	for (size_t i = 0; i < t->n && k < max; i++) {
		struct lease_ent *e = &t->v[i];

		if (e->reported || now_ms < e->last_ms + t->lease_ms)
			continue;
		e->reported = 1;
		e->doomed = 1;
		out[k++] = e->session;
	}
	return k;
}

/* Earliest expiry still to report. */
uint64_t lease_next_deadline(const struct lease_table *t)
{
	uint64_t best = 0;

	if (!t)
		return 0;
	for (size_t i = 0; i < t->n; i++) {
		uint64_t d = t->v[i].last_ms + t->lease_ms;

		if (!t->v[i].reported && (!best || d < best))
			best = d;
	}
	return best;
}

/* Lookup. */
const struct lease_ent *lease_find(const struct lease_table *t, uint64_t session)
{
	bool found;
	size_t p;

	if (!t)
		return NULL;
	p = pos(t, session, &found);
	return found ? &t->v[p] : NULL;
}

/* ---- the node's view --------------------------------------------------- */

/* A fresh view for a new session. */
void lease_view_init(struct lease_view *v, uint64_t lease_ms, uint64_t margin_ms)
{
	uint64_t room;

	memset(v, 0, sizeof(*v));
	v->lease_ms = lease_ms ? lease_ms : 1;
	/* The margin must leave jeopardy a window before expiry. */
	room = v->lease_ms - v->lease_ms / LEASE_JEOPARDY_DIV;
	v->margin_ms = margin_ms + 2 <= room ? margin_ms : (room >= 2 ? room - 2 : 0);
}

/* The leader acknowledged a contact sent at sent_ms. */
void lease_view_ack(struct lease_view *v, uint64_t sent_ms)
{
	if (!v || v->expired)
		return;
	if (!v->started || sent_ms > v->acked_ms)
		v->acked_ms = sent_ms;
	v->started = 1;
}

/* Local deadline of the view. */
uint64_t lease_view_deadline(const struct lease_view *v)
{
	return v && v->started ? v->acked_ms + v->lease_ms - v->margin_ms : 0;
}

/* Local time jeopardy begins. */
uint64_t lease_view_jeopardy_at(const struct lease_view *v)
{
	return v && v->started ? v->acked_ms + v->lease_ms / LEASE_JEOPARDY_DIV : 0;
}

/* Current state; expiry is sticky. */
enum lease_state lease_view_state(struct lease_view *v, uint64_t now_ms)
{
	if (!v)
		return LEASE_NONE;
	if (v->expired)
		return LEASE_EXPIRED;
	if (!v->started)
		return LEASE_NONE;
	if (now_ms >= lease_view_deadline(v)) {
		v->expired = 1;
		return LEASE_EXPIRED;
	}
	if (now_ms > lease_view_jeopardy_at(v))
		return LEASE_JEOPARDY;
	return LEASE_OK;
}
