/*
 * lockcore/session_tab.c - the containers of one session (session_i.h):
 * the effect queue that keeps room for every answer owed, the pending
 * table (open addressing by serial, backward-shift deletion), and the
 * session's life and read-only accessors.  The rules that decide what goes
 * in and out of them are session.c's.
 *
 * It must never: decide anything of the protocol (send, answer, time a
 * request), drop a queued effect other than a send or a proposal, or keep
 * state outside struct session.
 */
#include "lockcore/session_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- effects -------------------------------------------------------------- */

/* True when the queue has room for `need` more effects (grown if needed
 * and memory allows). */
bool ss_fx_room(struct session *s, size_t need)
{
	size_t nc = s->capfx ? s->capfx : 64;
	struct session_effect *nv;

	if (s->capfx - s->nfx < need && s->fhead) {
		memmove(s->fx, s->fx + s->fhead, (s->nfx - s->fhead) * sizeof(*s->fx));
		s->nfx -= s->fhead;
		s->fhead = 0;
	}
	if (s->capfx - s->nfx >= need)
		return true;
	while (nc - s->nfx < need)
		nc *= 2;
	nv = realloc(s->fx, nc * sizeof(*nv));
	if (!nv)
		return false;
	s->fx = nv;
	s->capfx = nc;
	return true;
}

/* Queues an effect.  No answer may be lost for memory (a lost SE_DONE
 * leaves a caller waiting forever, a lost SE_LOST leaves holders
 * unsignalled), so room for every answer owed is kept from the moment it
 * is owed (`owed`): a request with a callback owes 2 (LC_PENDING, told at
 * most once, and its final answer) from its admission, which fails
 * -ENOMEM without that room, a read barrier 1; FX_SLACK more is kept for
 * the effects no request owes (SE_OPENED, SE_CLOSED, SE_LOST, the notes:
 * a few per call, and the host pops everything after each call).  A send
 * or a proposal may not take that room: without memory it is dropped, and
 * the timer repeats it (nothing counts it as done). */
void ss_fx_push(struct session *s, const struct session_effect *e)
{
	bool may_drop = e->kind == SE_SEND || e->kind == SE_PROPOSE;

	if (ss_fx_room(s, s->owed + 1) || (!may_drop && ss_fx_room(s, 1)))
		s->fx[s->nfx++] = *e;
}

void ss_fx_done(struct session *s, session_done_fn fn, void *ctx,
		    const struct lc_completion *c)
{
	struct session_effect e = { .kind = SE_DONE, .serial = c->serial, .done = fn,
				    .ctx = ctx, .c = *c };

	if (fn)
		ss_fx_push(s, &e);
}

void ss_fx_send(struct session *s, uint64_t to, const struct session_msg *m)
{
	struct session_effect e = { .kind = SE_SEND, .to = to, .msg = *m };

	if (to && to != s->cfg.self_id)
		ss_fx_push(s, &e);
}

/* ---- pending table ------------------------------------------------------ */

/* The answers an entry may still be owed (see ss_fx_push). */
size_t ss_pend_owes(const struct pend *p)
{
	return !p->fn ? 0 : (p->flags & PF_PARKED) ? 1 : 2;
}

static size_t ph(uint64_t serial, size_t cap)
{
	serial ^= serial >> 33;
	serial *= 0xff51afd7ed558ccdull;
	serial ^= serial >> 33;
	return (size_t)serial & (cap - 1);
}

struct pend *ss_pend_find(const struct session *s, uint64_t serial)
{
	if (!s->pcap || !serial)
		return NULL;
	for (size_t i = ph(serial, s->pcap);; i = (i + 1) & (s->pcap - 1)) {
		if (s->pt[i].serial == serial)
			return &s->pt[i];
		if (s->pt[i].serial == 0)
			return NULL;
	}
}

/* Makes room for one more entry.  0/-ENOMEM. */
int ss_pend_reserve(struct session *s)
{
	struct pend *old = s->pt;
	size_t oldcap = s->pcap, cap;

	if ((s->pn + 1) * 4 <= s->pcap * 3)
		return 0;
	cap = oldcap ? oldcap * 2 : 64;
	s->pt = calloc(cap, sizeof(*s->pt));
	if (!s->pt) {
		s->pt = old;
		return -ENOMEM;
	}
	s->pcap = cap;
	for (size_t i = 0; i < oldcap; i++) {
		size_t j;

		if (!old[i].serial)
			continue;
		for (j = ph(old[i].serial, cap); s->pt[j].serial; j = (j + 1) & (cap - 1))
			;
		s->pt[j] = old[i];
	}
	free(old);
	return 0;
}

/* Inserts (after ss_pend_reserve); the pointer lives until the table next
 * changes. */
struct pend *ss_pend_insert(struct session *s, uint64_t serial, session_done_fn fn,
				void *ctx)
{
	size_t i;

	for (i = ph(serial, s->pcap); s->pt[i].serial; i = (i + 1) & (s->pcap - 1))
		;
	memset(&s->pt[i], 0, sizeof(s->pt[i]));
	s->pt[i].serial = serial;
	s->pt[i].fn = fn;
	s->pt[i].ctx = ctx;
	s->pn++;
	s->owed += ss_pend_owes(&s->pt[i]);
	return &s->pt[i];
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
void ss_pend_remove(struct session *s, struct pend *p)
{
	size_t mask = s->pcap - 1, i = (size_t)(p - s->pt), j = i;

	s->owed -= ss_pend_owes(p);
	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (!s->pt[j].serial)
			break;
		home = ph(s->pt[j].serial, s->pcap);
		/* Move j back to the hole at i unless its home lies in (i, j]. */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && (home <= i && home > j))) {
			s->pt[i] = s->pt[j];
			i = j;
		}
	}
	memset(&s->pt[i], 0, sizeof(s->pt[i]));
	s->pn--;
}

/* Frees the entry's command and removes it. */
void ss_pend_drop(struct session *s, struct pend *p)
{
	if (p->buf && (p->flags & PF_UNLOCK) && s->unlocks_out)
		s->unlocks_out--;
	free(p->buf);
	ss_pend_remove(s, p);
}

static int cmp_serial(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The serials of the entries still to be sent or timed (every entry when
 * `all`), in serial order: the table may change while they are worked on,
 * so callers walk a copy.  NULL when none or ENOMEM. */
uint64_t *ss_pend_serials(struct session *s, bool all, size_t *count)
{
	uint64_t *v;
	size_t k = 0;

	*count = 0;
	if (!s->pn)
		return NULL;
	v = malloc(s->pn * sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < s->pcap; i++)
		if (s->pt[i].serial && (all || s->pt[i].buf || s->pt[i].deadline_ms))
			v[k++] = s->pt[i].serial;
	/* In serial order: a session's commands reach the log in the order
	 * they were made (a release after the lock it releases). */
	qsort(v, k, sizeof(*v), cmp_serial);
	*count = k;
	return v;
}

/* ---- effects out -------------------------------------------------------------- */

/* The next queued effect, in order. */
bool ss_fx_pop(struct session *s, struct session_effect *e)
{
	if (s->fhead == s->nfx)
		return false;
	*e = s->fx[s->fhead++];
	if (s->fhead == s->nfx)
		s->fhead = s->nfx = 0;
	return true;
}

/* ---- life and accessors ------------------------------------------------------- */

struct session *session_new(const struct session_config *cfg)
{
	struct session *s;

	if (!cfg || !cfg->lease_ms || !cfg->wall_ns || !cfg->new_id || !cfg->name ||
	    (cfg->n_voters && !cfg->voters))
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cfg = *cfg;
	if (!s->cfg.resend_ms)
		s->cfg.resend_ms = 200;
	if (!s->cfg.resend_acked_ms)
		s->cfg.resend_acked_ms = 1000;
	if (cfg->n_voters) {
		s->voters = malloc(cfg->n_voters * sizeof(*s->voters));
		if (!s->voters) {
			free(s);
			return NULL;
		}
		memcpy(s->voters, cfg->voters, cfg->n_voters * sizeof(*s->voters));
		s->clustered = true;
	}
	s->cfg.voters = s->voters;
	s->view_lease_ms = cfg->lease_ms;
	/* The room for the effects no request owes, from the start. */
	s->owed = FX_SLACK;
	if (!ss_fx_room(s, s->owed)) {
		free(s->voters);
		free(s);
		return NULL;
	}
	return s;
}

void session_free(struct session *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->pcap; i++)
		free(s->pt[i].buf);
	free(s->pt);
	free(s->rw);
	free(s->fx);
	free(s->voters);
	free(s);
}

uint64_t session_id(const struct session *s)
{
	return s->session;
}

bool session_is_open(const struct session *s)
{
	return s->open_done;
}

int session_open_status(const struct session *s)
{
	return s->open_status;
}

uint64_t session_lost_count(const struct session *s)
{
	return s->sessions_lost;
}

uint64_t session_view_lease(const struct session *s)
{
	return s->view_lease_ms;
}

uint64_t session_view_deadline(const struct session *s)
{
	return lease_view_deadline(&s->view);
}

uint64_t session_last_time(const struct session *s)
{
	return s->last_time;
}

size_t session_pending(const struct session *s)
{
	return s->pn;
}

size_t session_reads_waiting(const struct session *s)
{
	return s->nrw;
}
