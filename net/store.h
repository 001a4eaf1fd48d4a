/*
 * net/store.h - the durable Raft log store of cluckd (--data-dir).
 *
 * The driver persists what the Raft engine asks for here: the hard state
 * (term, vote), the index floor and the log.  Layout of the directory:
 *   state                 term, vote and index floor, replaced atomically
 *                         (write to state.tmp, fsync, rename, fsync the
 *                         directory); written when the store is created,
 *                         so a missing one beside a log is damage
 *   log-<16 hex digits>   a segment, named by the index of its first record
 *   epoch, cluster        small files of the driver (store_put_file)
 *   rejoin                (the driver's) a voter still catching up
 * A segment is a sequence of records, little endian:
 *   u32 length   bytes after the crc field (17 + payload length)
 *   u32 crc32c   of those bytes (index .. payload)
 *   u64 index, u64 term, u8 type, payload
 *
 * Group commit: store_append() and store_set_hardstate() only buffer;
 * store_sync() makes everything since the previous sync durable with one
 * fdatasync (plus a directory fsync when segments were created or removed)
 * and returns the highest synced index.  The driver steps the engine with
 * RF_EV_PERSISTED only after store_sync() returned.
 *
 * It must never report an index as synced before the bytes and the
 * directory entries holding it were fsynced, never keep going after a
 * write or fsync failure (the page cache can no longer be trusted: the
 * store is dead and every later call returns -EIO) except a write or a
 * create refused with ENOSPC or EDQUOT, which loses nothing (what was
 * buffered stays buffered; the call returns the error and may be retried:
 * store_append() then keeps records buffered, or past the roll size in
 * the tail, and store_sync() reports it), and never drop a record that may
 * have been synced: recovery cuts only a torn tail (damage in the last
 * segment with no valid record after it), skips damage inside what the
 * snapshot covers, and refuses anything else (-EUCLEAN, with the file,
 * offset, index and the entries that cutting would lose).
 *
 * Index floor: before store_sync() first reports an index above the
 * reserved floor, the state file gets floor = that index + floor_step (and
 * mark = that index), synced.  So no index above the floor was ever
 * reported synced (nor any fencing token made from it handed out), and
 * every index up to mark was: a log found ending below mark lost synced
 * entries; one ending below the floor may have (node/start.c decides).
 *
 * Single-threaded: one struct store is used by one thread at a time.
 *
 * Snapshots: snap-<16 hex digits> (the last included index), written to
 * snap.tmp, fsynced, renamed, directory fsynced, so a snapshot file is
 * whole or absent.  Layout, little endian: u32 magic "CKSN", u32 version
 * (1), u64 index, u64 term, u32 meta length, u64 data length, meta, data,
 * u32 crc32c of everything before it.  The two newest are kept (an older
 * one is a fallback when the newest is corrupt).  With a snapshot the log
 * may start anywhere at or below its index + 1; records at or below the
 * snapshot's index are skipped on load.
 */
#ifndef CLUCK_STORE_H
#define CLUCK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_SEGMENT_BYTES  (8u * 1024u * 1024u)  /* roll at about this */
#define STORE_PAYLOAD_MAX    (1u * 1024u * 1024u)  /* largest entry */
#define STORE_REC_HDR        25u                   /* record overhead */
#define STORE_MSG_MAX        768u                  /* recovery message */

#define STORE_FLOOR_STEP     1024u                /* floor reserved ahead */

/* What store_open() refused, for the driver's advice (kind 0: nothing). */
enum store_damage_kind {
	STORE_DAMAGE_NONE = 0,
	STORE_DAMAGE_LOG,              /* a record, a gap, a cut segment */
	STORE_DAMAGE_STATE,            /* state missing or damaged */
	STORE_DAMAGE_SNAPSHOT,         /* no valid snapshot the log continues */
};

struct store_damage {
	enum store_damage_kind kind;
	char file[40];                 /* the damaged file (log-..., state) */
	uint64_t offset;               /* byte offset in it */
	uint64_t index;                /* record index there, 0 unknown */
	uint64_t lost_from, lost_to;   /* entries a cut there would drop
					  (lost_to 0: unknown) */
};

struct store_config {
	const char *dir;               /* created (0700) when missing */
	uint64_t segment_bytes;        /* 0: STORE_SEGMENT_BYTES; tests only */
	uint64_t floor_step;           /* 0: STORE_FLOOR_STEP; tests only */
	/* Deliberate acceptance of a loss store_open() refused before (the
	 * admin's --accept-loss): the log is cut at record accept_cut when
	 * that is exactly where the damage starts (the damaged segment and
	 * the later ones are first saved as lost-log-...); accept_state
	 * rebuilds a missing or damaged state file (term: the last one in
	 * the log, no vote, floor above the log). */
	uint64_t accept_cut;
	int accept_state;
	/* The driver knows the directory was used before: an empty one
	 * (no state file, log or snapshot) is then damage, not new. */
	int existing;
	struct store_damage *damage;   /* NULL, or filled on -EUCLEAN */
};

/* An entry loaded by store_open(); index is implied (first + position). */
struct store_entry {
	uint64_t term;
	uint8_t  type;
	uint32_t len;
	const uint8_t *buf;            /* owned by the store */
};

struct store_stats {
	uint64_t fdatasyncs;           /* of segments */
	uint64_t fsyncs;               /* of the state file and the directory */
	uint64_t syncs;                /* store_sync() calls that wrote */
	uint64_t appends;
	uint64_t bytes;                /* record bytes written */
	uint64_t segments;             /* segments now in the directory */
	uint64_t snapshots;            /* snapshots written */
};

struct store;

/*
 * Opens (creating if needed) the store in cfg->dir, takes an exclusive
 * flock on the directory, loads the hard state and every valid record.
 * A bad record (length, crc, index, decreasing term, zero fill) is:
 *  - a torn tail when it is in the last segment and no valid record
 *    follows it there: it and the rest of the file are cut durably;
 *  - skipped when the snapshot covers it and a valid record of index at
 *    most snapshot + 1 follows it in the segment;
 *  - corruption otherwise, as is a gap between segments (one deleted or
 *    cut short), a missing or damaged state file beside a log or a
 *    snapshot, or a log that does not continue the snapshot (or start at
 *    index 1 without one): -EUCLEAN, nothing is changed, and
 *    cfg->damage says where, unless cfg->accept_* accepts exactly it.
 * `msg` (of msg_size bytes, may be NULL) receives one line saying what
 * was cut, skipped or refused, and where; "" when the directory was
 * clean.  The newest valid snapshot is loaded too (a corrupt newer one
 * is named in msg and skipped, not deleted; a stray snap.tmp is
 * removed).  Returns 0 and *out (free with store_close()), -EBUSY when
 * another process holds the directory, -EUCLEAN, -ENOMEM, or another
 * -errno.
 */
int store_open(const struct store_config *cfg, struct store **out,
	       char *msg, size_t msg_size);

/* Closes without syncing (unsynced appends may be lost, as in a crash).
 * Frees everything, including the loaded entries.  NULL is a no-op. */
void store_close(struct store *s);

/* Small files the driver keeps beside the log (node/start.c: the transport
 * epoch, the cluster the directory belongs to).  store_put_file replaces
 * `name` atomically and durably (NAME.tmp, fsync, rename, directory fsync)
 * before it returns; 0 or -errno, after which the store is dead like after
 * any failed write.  store_get_file reads it into buf as a NUL-terminated
 * string (at most size - 1 bytes); its length, -ENOENT when absent, or
 * -errno.  `name` is a plain file name. */
int store_put_file(struct store *s, const char *name, const void *data, size_t len);
ssize_t store_get_file(struct store *s, const char *name, char *buf, size_t size);
/* Removes `name` durably (directory fsync) before it returns: 0 (also
 * when it was absent), or -errno (a failed fsync kills the store). */
int store_del_file(struct store *s, const char *name);

/* The space reserve: a file `reserve` of preallocated bytes that the
 * driver gives back when the filesystem is full, so the lock commands it
 * still accepts can be logged, and makes again once there is room.
 * store_reserve() makes (or grows) it to `bytes`: 0, -ENOSPC (no reserve
 * then), -EIO after a failure, or another -errno.  store_unreserve()
 * removes it: 1 when it freed one, 0 when there was none, or -errno.
 * Neither touches the log, nor kills the store. */
int store_reserve(struct store *s, uint64_t bytes);
int store_unreserve(struct store *s);

/* Hard state as last set (synced or not); 0, 0 for a fresh store. */
void store_hardstate(const struct store *s, uint64_t *term, uint64_t *vote);

/* The index floor (see above), as found at open (raised there, durably,
 * above records a crash left synced beyond it) until the next sync
 * moves it: *mark, every index up to which was synced once, and *floor,
 * above which none was (0, 0 for a fresh store or one from before the
 * floor existed). */
void store_floor(const struct store *s, uint64_t *mark, uint64_t *floor);

/* The entries found by store_open() (index store_first_index() onwards,
 * *n of them), valid until
 * store_loaded_free() or store_close(); later appends and truncations do
 * not change this view.  Returns the array (NULL when empty). */
const struct store_entry *store_loaded(const struct store *s, uint64_t *n);

/* Frees the loaded entries (the driver's engine has its own copy). */
void store_loaded_free(struct store *s);

/* Index of the first loaded entry: the snapshot's index + 1, or 1. */
uint64_t store_first_index(const struct store *s);

/* Index of the last record (synced or not); the snapshot's index when the
 * log is empty after it, 0 when there is neither. */
uint64_t store_last_index(const struct store *s);
/* Term of the last record; the snapshot's term when the log is empty
 * after it, 0 when there is neither. */
uint64_t store_last_term(const struct store *s);

/*
 * Buffers a new hard state; store_sync() writes it.  Returns 0, or -EIO
 * after an earlier failure.
 */
int store_set_hardstate(struct store *s, uint64_t term, uint64_t vote);

/*
 * Buffers one record.  index must be store_last_index() + 1 and term at
 * least store_last_term().  The payload is copied.  Returns 0, -EINVAL
 * (index, term), -E2BIG (len > STORE_PAYLOAD_MAX), -ENOMEM, -EIO after an
 * earlier failure, or an -errno from writing or rolling a segment.
 */
int store_append(struct store *s, uint64_t index, uint64_t term,
		 uint8_t type, const void *buf, uint32_t len);

/*
 * Drops every record with index >= `index` (Raft conflict): ftruncate of
 * the segment holding it, unlink of later segments, both durable before
 * it returns (the records appended next go where the old ones were, and
 * a crash must not bring the old ones back after them).  index > last is
 * a no-op.  Returns 0, -EINVAL for index 0
 * or at or below the newest snapshot's index (committed), -EIO after an
 * earlier failure, or an -errno.
 */
int store_truncate(struct store *s, uint64_t index);

/*
 * Makes everything buffered since the last sync durable: one fdatasync of
 * the tail segment, the hard state file, one directory fsync if segments
 * were created or removed.  Returns the highest synced index (>= 0), or a
 * negative errno; after a failed fsync every later call returns -EIO.
 */
int64_t store_sync(struct store *s);

/* ---- snapshots ---------------------------------------------------------- */

struct store_snapshot {
	uint64_t index, term;          /* index 0: no snapshot */
	uint8_t *meta;                 /* malloc'd (Raft configuration) */
	uint32_t meta_len;
	uint8_t *data;                 /* malloc'd (state machine) */
	uint64_t len;
};

/* Hands the snapshot found by store_open() to the caller, who then owns
 * meta and data (free()); later calls give index 0. */
void store_snapshot_take(struct store *s, struct store_snapshot *out);

/*
 * Writes a snapshot of the state applied up to `index` (term: the term of
 * that entry) durably before returning, then removes the snapshots older
 * than the previous one.  Does not touch the log files (when index is
 * beyond the last record, appends continue at index + 1 in a new
 * segment).  Returns 0, -EINVAL (index 0, not above the newest snapshot,
 * or a term that is not the one of the log's record at index), -EIO after
 * an earlier failure, or another -errno (the store is then dead: -EIO
 * from then on).
 */
int store_snapshot_save(struct store *s, uint64_t index, uint64_t term,
			const void *meta, uint32_t meta_len,
			const void *data, uint64_t len);

/*
 * Compaction after a snapshot at or above `upto`: removes every segment
 * whose records are all at or below `upto` (durable at once).  Records at
 * or below `upto` in a segment that also holds later ones stay until the
 * whole segment can go; the tail being appended to never goes.  Returns
 * 0, -EINVAL when upto is above the newest snapshot's index, -EIO after
 * an earlier failure, or another -errno (the store is then dead).
 */
int store_compact(struct store *s, uint64_t upto);

/*
 * A snapshot received from the leader: store_snapshot_save(), then drop
 * the whole log so that it continues at index + 1 (durable before
 * returning).  The term need not match the log's (that is the point).  A
 * crash between the two steps leaves a log whose record at index has
 * another term: store_open() then finishes the install (removes every
 * segment and says so in msg).  Returns as store_snapshot_save().
 */
int store_snapshot_install(struct store *s, uint64_t index, uint64_t term,
			   const void *meta, uint32_t meta_len,
			   const void *data, uint64_t len);

/* Counters since store_open(). */
void store_stats(const struct store *s, struct store_stats *st);

/* CRC32C (Castagnoli) of buf, continuing from crc (0 to start). */
uint32_t store_crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* CLUCK_STORE_H */
