/*
 * t/lib/cluster.c - PRNG, event queue and fake disk of the in-process
 * cluster harness (t/lib/cluster.h).
 *
 * It must never: read the real clock, use randomness it was not handed,
 * or fail silently: a write that would corrupt the fake log is reported.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t/lib/cluster.h"

/* ---- allocation ---------------------------------------------------------- */

void *cl_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q) {
		fprintf(stderr, "cluster harness: out of memory\n");
		exit(2);
	}
	return q;
}

uint8_t *cl_dup(const void *p, size_t n)
{
	uint8_t *q = cl_xrealloc(NULL, n);

	if (n)
		memcpy(q, p, n);
	return q;
}

/* ---- deterministic PRNG: xoshiro256** seeded by splitmix64 --------------- */

static uint64_t sm64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void cl_rng_seed(struct cl_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = sm64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t cl_rnd(struct cl_rng *r)
{
	uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
	s[2] ^= t; s[3] = rotl(s[3], 45);
	return res;
}

uint64_t cl_between(struct cl_rng *r, uint64_t lo, uint64_t hi)
{
	return lo + cl_rnd(r) % (hi - lo + 1);
}

bool cl_chance(struct cl_rng *r, unsigned pct)
{
	return cl_rnd(r) % 100 < pct;
}

/* ---- event queue: a binary heap on (t, seq) ------------------------------ */

static bool ev_less(const struct cl_ev *a, const struct cl_ev *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

void cl_push(struct cl_queue *q, struct cl_ev e)
{
	size_t i;

	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 256;
		q->heap = cl_xrealloc(q->heap, q->cap * sizeof(*q->heap));
	}
	e.seq = ++q->seq;
	i = q->n++;
	while (i && ev_less(&e, &q->heap[(i - 1) / 2])) {
		q->heap[i] = q->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	q->heap[i] = e;
}

struct cl_ev cl_pop(struct cl_queue *q)
{
	struct cl_ev top = q->heap[0], last = q->heap[--q->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= q->n)
			break;
		if (c + 1 < q->n && ev_less(&q->heap[c + 1], &q->heap[c]))
			c++;
		if (!ev_less(&q->heap[c], &last))
			break;
		q->heap[i] = q->heap[c];
		i = c;
	}
	if (q->n)
		q->heap[i] = last;
	return top;
}

const struct cl_ev *cl_peek(const struct cl_queue *q)
{
	return q->n ? &q->heap[0] : NULL;
}

void cl_queue_clear(struct cl_queue *q)
{
	for (size_t k = 0; k < q->n; k++)
		free(q->heap[k].buf);
	q->n = 0;
}

void cl_queue_free(struct cl_queue *q)
{
	cl_queue_clear(q);
	free(q->heap);
	memset(q, 0, sizeof(*q));
}

/* ---- fake disk ------------------------------------------------------------ */

void cl_disk_init(struct cl_disk *d)
{
	memset(d, 0, sizeof(*d));
	d->first = 1;
}

static void pw_free(struct cl_pwrite *w)
{
	for (size_t k = 0; k < w->n; k++)
		free(w->e[k].buf);
	free(w->e);
	free(w->sbuf);
}

void cl_disk_crash(struct cl_disk *d)
{
	for (size_t k = 0; k < d->npw; k++)
		pw_free(&d->pw[k]);
	d->npw = 0;
}

void cl_disk_truncate(struct cl_disk *d, size_t keep)
{
	while (d->n > keep)
		free(d->log[--d->n].buf);
}

void cl_disk_wipe(struct cl_disk *d)
{
	cl_disk_truncate(d, 0);
	free(d->snap_buf);
	d->snap_buf = NULL;
	d->snap_len = 0;
	d->snap_index = d->snap_term = 0;
	d->term = d->vote = 0;
	d->first = 1;
}

void cl_disk_free(struct cl_disk *d)
{
	cl_disk_crash(d);
	cl_disk_truncate(d, 0);
	free(d->log);
	free(d->pw);
	free(d->snap_buf);
	cl_disk_init(d);
}

void cl_disk_write(struct cl_disk *d, const struct rf_update *u)
{
	struct cl_pwrite w = { .seq = u->write_seq };

	if (!u->write_seq)
		return;
	if (u->flags & RF_UPD_HARDSTATE) {
		w.has_hs = true;
		w.term = u->hs_term;
		w.vote = u->hs_vote;
	}
	if (u->flags & RF_UPD_SNAPSHOT) {
		w.has_snap = true;
		w.si = u->snap_index;
		w.st = u->snap_term;
		w.sconf = *u->snap_conf;
		w.slen = u->snap_len;
		w.sbuf = cl_dup(u->snap_buf, u->snap_len);
	}
	if (u->flags & RF_UPD_ENTRIES) {
		w.has_ent = true;
		w.first = u->first_index;
		w.n = u->n_entries;
		w.e = cl_xrealloc(NULL, w.n * sizeof(*w.e));
		for (size_t k = 0; k < w.n; k++) {
			const struct rf_entry *e = &u->entries[k];

			w.e[k] = (struct cl_dent){ e->term, e->type, e->len,
						   cl_dup(e->buf, e->len) };
		}
	}
	if (d->npw == d->cappw) {
		d->cappw = d->cappw ? d->cappw * 2 : 8;
		d->pw = cl_xrealloc(d->pw, d->cappw * sizeof(*d->pw));
	}
	d->pw[d->npw++] = w;
}

/* Writes w's entries; -ERANGE (nothing written) when they would leave a
 * gap after the log's end. */
static int sync_entries(struct cl_disk *d, struct cl_pwrite *w)
{
	uint64_t first = w->first;
	size_t j0 = 0;

	/* entries a snapshot covers are not stored again */
	if (first < d->first) {
		j0 = d->first - first < w->n ? (size_t)(d->first - first) : w->n;
		first = d->first;
		d->covered += j0;
	}
	if (first - d->first > d->n) {
		d->gap_at = first;
		return -ERANGE;
	}
	cl_disk_truncate(d, (size_t)(first - d->first));
	if (d->n + w->n > d->cap) {
		d->cap = (d->n + w->n) * 2;
		d->log = cl_xrealloc(d->log, d->cap * sizeof(*d->log));
	}
	for (size_t j = 0; j < j0; j++)
		free(w->e[j].buf);
	for (size_t j = j0; j < w->n; j++)
		d->log[d->n++] = w->e[j];
	free(w->e);
	w->e = NULL;
	w->n = 0;
	return 0;
}

int64_t cl_disk_sync(struct cl_disk *d)
{
	uint64_t seq = 0;
	size_t k;

	for (k = 0; k < d->npw; k++) {
		struct cl_pwrite *w = &d->pw[k];

		if (w->has_hs) {
			d->term = w->term;
			d->vote = w->vote;
			w->has_hs = false;
		}
		if (w->has_snap) {
			/* a newer snapshot of our own may be on disk already */
			if (w->si > d->snap_index) {
				free(d->snap_buf);
				d->snap_buf = w->sbuf;
				w->sbuf = NULL;
				d->snap_len = w->slen;
				d->snap_index = w->si;
				d->snap_term = w->st;
				d->snap_conf = w->sconf;
				cl_disk_truncate(d, 0);
				d->first = w->si + 1;
			}
			free(w->sbuf);
			w->sbuf = NULL;
			w->has_snap = false;
		}
		if (w->has_ent && sync_entries(d, w)) {
			memmove(d->pw, d->pw + k, (d->npw - k) * sizeof(*d->pw));
			d->npw -= k;
			return -ERANGE;
		}
		seq = w->seq;
	}
	d->npw = 0;
	return (int64_t)seq;
}

void cl_disk_append(struct cl_disk *d, uint64_t term, uint8_t type, uint32_t len,
		    const uint8_t *buf)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->log = cl_xrealloc(d->log, d->cap * sizeof(*d->log));
	}
	d->log[d->n++] = (struct cl_dent){ term, type, len, cl_dup(buf, len) };
}

void cl_disk_snapshot(struct cl_disk *d, uint64_t idx, uint64_t term,
		      const struct rf_conf *conf, const uint8_t *buf, size_t len)
{
	free(d->snap_buf);
	d->snap_buf = cl_dup(buf, len);
	d->snap_len = len;
	d->snap_index = idx;
	d->snap_term = term;
	d->snap_conf = *conf;
	if (idx + 1 >= d->first + d->n) {
		cl_disk_truncate(d, 0);
	} else if (idx >= d->first) {
		size_t drop = (size_t)(idx + 1 - d->first);

		for (size_t k = 0; k < drop; k++)
			free(d->log[k].buf);
		memmove(d->log, d->log + drop, (d->n - drop) * sizeof(*d->log));
		d->n -= drop;
	}
	d->first = idx + 1;
}

void cl_disk_start(const struct cl_disk *d, struct rf_event *ev,
		   struct rf_entry **es)
{
	*es = cl_xrealloc(NULL, d->n * sizeof(**es));
	for (size_t k = 0; k < d->n; k++)
		(*es)[k] = (struct rf_entry){ d->log[k].term, d->log[k].type,
					      d->log[k].len, d->log[k].buf };
	ev->type = RF_EV_START;
	if (d->snap_index) {
		ev->start.snap_index = d->snap_index;
		ev->start.snap_term = d->snap_term;
		ev->start.snap_conf = &d->snap_conf;
		ev->start.snap_buf = cl_dup(d->snap_buf, d->snap_len);
		ev->start.snap_len = d->snap_len;
	}
	ev->start.term = d->term;
	ev->start.vote = d->vote;
	ev->start.entries = *es;
	ev->start.n_entries = d->n;
}
