/*
 * t/lib/cluster.h - the pieces of an in-process Raft cluster that the
 * simulator (t/sim/) and the Raft unit tests (t/unit_raft.c) share.
 *
 * Three parts, each a plain struct the caller owns:
 *  - a seeded PRNG (xoshiro256** seeded by splitmix64): every random
 *    choice of a run comes from it, so a seed replays one history;
 *  - an event queue ordered by (time, order of pushing): equal times
 *    leave first in, first out, so a queue whose events all carry one
 *    time is a FIFO network;
 *  - a fake disk for one engine: what an rf_update asked to write waits,
 *    unsynced, until cl_disk_sync() makes it durable (then the caller
 *    reports RF_EV_PERSISTED with the sequence it returns); a crash
 *    loses what waits; a restart builds RF_EV_START from what is synced.
 * Time is whatever number the caller passes: nothing here reads a clock.
 *
 * It must never: read the real clock, draw randomness from anything but
 * a struct cl_rng the caller seeded, look inside struct raft (only
 * lockcore/raft.h), or decide anything about the cluster's behaviour (who
 * crashes, what is delivered when): that is the caller's.
 */
#ifndef CLUCK_T_LIB_CLUSTER_H
#define CLUCK_T_LIB_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lockcore/raft.h"

/* ---- allocation: exits the test program when memory runs out ----------- */
void *cl_xrealloc(void *p, size_t n);
uint8_t *cl_dup(const void *p, size_t n);

/* ---- deterministic PRNG ------------------------------------------------- */
struct cl_rng { uint64_t s[4]; };

void cl_rng_seed(struct cl_rng *r, uint64_t seed);
uint64_t cl_rnd(struct cl_rng *r);
/* Uniform in [lo, hi]. */
uint64_t cl_between(struct cl_rng *r, uint64_t lo, uint64_t hi);
/* True with probability pct/100. */
bool cl_chance(struct cl_rng *r, unsigned pct);

/* ---- event queue -------------------------------------------------------- */
/* One event; type, node, a and gen mean what the caller says; buf (owned
 * by the event once pushed) carries a message. */
struct cl_ev {
	uint64_t t, seq;
	int type, node, a;
	uint64_t gen;
	uint8_t *buf;
	size_t len;
};

struct cl_queue {
	struct cl_ev *heap;
	size_t n, cap;
	uint64_t seq;                  /* events pushed so far */
};

/* Pushes e (its seq is assigned here). */
void cl_push(struct cl_queue *q, struct cl_ev e);
/* Removes and returns the earliest event; q->n must be > 0. */
struct cl_ev cl_pop(struct cl_queue *q);
/* The earliest event without removing it, or NULL. */
const struct cl_ev *cl_peek(const struct cl_queue *q);
/* Frees every waiting event's buffer and empties q (its memory is kept
 * for the next run; cl_queue_free() releases it). */
void cl_queue_clear(struct cl_queue *q);
void cl_queue_free(struct cl_queue *q);

/* ---- fake disk ---------------------------------------------------------- */
struct cl_dent { uint64_t term; uint8_t type; uint32_t len; uint8_t *buf; };

/* One write of an rf_update, kept until synced. */
struct cl_pwrite {
	uint64_t seq;
	bool has_hs, has_ent, has_snap;
	uint64_t term, vote, first;
	struct cl_dent *e;
	size_t n;
	uint64_t si, st;               /* an installed snapshot */
	struct rf_conf sconf;
	uint8_t *sbuf;
	size_t slen;
};

struct cl_disk {
	/* synced: what survives a crash */
	uint64_t term, vote;
	struct cl_dent *log;           /* indexes first .. first + n - 1 */
	size_t n, cap;
	uint64_t first;
	uint64_t snap_index, snap_term;        /* 0: no snapshot */
	struct rf_conf snap_conf;
	uint8_t *snap_buf;
	size_t snap_len;
	/* unsynced */
	struct cl_pwrite *pw;
	size_t npw, cappw;
	/* what cl_disk_sync() met: entries a newer snapshot already covered
	 * (not stored again), and the first index of a write that would
	 * have left a gap (it returned -ERANGE) */
	uint64_t covered, gap_at;
};

/* An empty disk (log starting at index 1). */
void cl_disk_init(struct cl_disk *d);
void cl_disk_free(struct cl_disk *d);
/* Forgets everything, synced or not: a fresh disk. */
void cl_disk_wipe(struct cl_disk *d);
/* Keeps u's write (hard state, entries, an installed snapshot) unsynced;
 * nothing when u->write_seq is 0. */
void cl_disk_write(struct cl_disk *d, const struct rf_update *u);
/* Makes every unsynced write durable in order.  Returns the sequence to
 * report in RF_EV_PERSISTED, 0 when nothing waited, or -ERANGE when a
 * write would leave a gap in the log (d->gap_at says where; the writes
 * from that one on are still unsynced).  An installed snapshot older
 * than the one on disk is dropped. */
int64_t cl_disk_sync(struct cl_disk *d);
/* A crash: the unsynced writes are lost. */
void cl_disk_crash(struct cl_disk *d);
/* Keeps the first `keep` entries of the synced log. */
void cl_disk_truncate(struct cl_disk *d, size_t keep);
/* Appends one entry at the end of the synced log (copied). */
void cl_disk_append(struct cl_disk *d, uint64_t term, uint8_t type, uint32_t len,
		    const uint8_t *buf);
/* The driver's own snapshot at idx, synced at once (buf copied): the log
 * keeps only the entries after idx. */
void cl_disk_snapshot(struct cl_disk *d, uint64_t idx, uint64_t term,
		      const struct rf_conf *conf, const uint8_t *buf, size_t len);
/* Fills ev->start from the synced disk: term, vote, the log (*es, an
 * array the caller frees after the step) and a copy of the snapshot
 * (the engine takes it). */
void cl_disk_start(const struct cl_disk *d, struct rf_event *ev,
		   struct rf_entry **es);

#endif /* CLUCK_T_LIB_CLUSTER_H */
