/*
 * net/store_i.h - what the parts of the durable Raft log store share
 * (private to net/store*.c: the driver sees net/store.h only).
 *
 * The store is split by what each part does to the directory, around
 * struct store and the on-disk constants below:
 *   store.c          CRC32C, the helpers every part writes with (write_all,
 *                    fail, seal_tmp, fsync_dir), the reserve file, the
 *                    driver's small files, the state file and its index
 *                    floor, listing the directory, and the running log:
 *                    append, truncate, group-commit sync, close, counters
 *   store_recover.c  store_open(): reading the state file and the
 *                    segments back, telling a torn tail from damage,
 *                    the refusals with their messages and cfg->damage,
 *                    --accept-loss and --accept-state, finishing an
 *                    interrupted install
 *   store_snap.c     snapshot files (written whole or not at all, read
 *                    back checked), retiring old ones, compaction and
 *                    install
 *
 * Single-threaded, like struct store itself (net/store.h).
 *
 * It must never: be included outside net/store*.c, declare what one file
 * alone uses, or hold code: the rules live with the code that keeps them.
 */
#ifndef CLUCK_STORE_I_H
#define CLUCK_STORE_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/store.h"

#define STATE_NAME    "state"
#define STATE_TMP     "state.tmp"
#define STATE_MAGIC   0x534b4c43u      /* "CLKS" little endian */
#define STATE_VERSION 2u
#define STATE_BYTES   44u              /* magic .. floor, crc */
#define STATE_V1_BYTES 28u             /* version 1: no mark, no floor */
#define WBUF_FLUSH    (1u << 20)       /* write out pending bytes beyond */
#define SNAP_TMP      "snap.tmp"
#define SNAP_MAGIC    0x4e534b43u      /* "CKSN" little endian */
#define SNAP_VERSION  1u
#define SNAP_HDR      36u              /* magic .. data length */
#define SNAP_KEEP     2                /* newest and one fallback */

struct seg {
	uint64_t first;                /* index of its first record */
	uint64_t size;                 /* bytes, including the buffered ones */
};

struct pos {
	uint64_t off;                  /* offset of the record in its segment */
	uint64_t term;
};

struct store {
	int dirfd;
	uint64_t seg_bytes;
	struct seg *segs;
	size_t nsegs, capsegs;
	size_t nobs;                   /* segs[0..nobs) hold only records a
					  snapshot covers and are not loaded */
	uint64_t obs_last;             /* bound on what those segments hold */
	uint64_t base;                 /* pos[i] describes index base + i + 1 */
	struct pos *pos;
	uint64_t npos, cappos;
	int tailfd;                    /* segs[nsegs - 1] (never an obsolete
					  one), or -1: the next append rolls */
	uint8_t *wbuf;                 /* records not yet written to tailfd */
	size_t wlen, wcap;
	bool tail_dirty, dir_dirty, hs_pending, failed;
	uint64_t term, vote, synced;   /* synced: an absolute index */
	uint64_t mark, floor;          /* index floor (store.h) */
	uint64_t floor_step;
	char state_why[64];            /* "" or why the state file is bad */
	const struct store_config *cfg;  /* during store_open() only */
	uint64_t snap_index, snap_term;  /* newest durable snapshot */
	uint64_t first_loaded;         /* index of loaded[0] */
	struct store_snapshot held;    /* found by store_open(), until taken */
	struct store_entry *loaded;
	uint64_t nloaded;
	uint8_t **arenas;              /* segment contents loaded entries use */
	size_t narenas;
	struct store_stats st;
};

/* ---- store.c ------------------------------------------------------------ */

void seg_name(char *buf, size_t size, uint64_t first);
int write_all(int fd, const uint8_t *p, size_t len, uint64_t off);
int fail(struct store *s, int rc);
int fail_write(struct store *s, int rc);
int fsync_dir(struct store *s);
int push_seg(struct store *s, uint64_t first, uint64_t size);
int push_pos(struct store *s, uint64_t off, uint64_t term);
int seal_tmp(struct store *s, int fd, int rc, const char *tmp,
	     const char *name);
int load_state(struct store *s);
int write_state(struct store *s);
void reserve_floor(struct store *s, uint64_t index);
int list_names(struct store *s, const char *prefix, uint64_t **out);
int open_tail(struct store *s);
int flush(struct store *s);

/* ---- store_snap.c ------------------------------------------------------- */

int load_snapshots(struct store *s, char *note, size_t note_size);
void log_behind_snapshot(struct store *s);

#endif
