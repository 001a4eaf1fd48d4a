/*
 * net/store_snap.c - the store's snapshot files and what they make
 * disposable: writing snap-<index> whole or not at all (snap.tmp, fsync,
 * rename, directory fsync), reading one back checked, keeping the two
 * newest, compaction of the segments a snapshot covers, and installing a
 * leader's snapshot over the whole log.  See net/store.h for the format
 * and the contract, net/store_i.h for the parts.
 *
 * It must never remove a log record that no durable snapshot covers
 * (except on a snapshot install, after the snapshot is durable), never
 * take a snapshot file whose magic, version, index, length or crc does
 * not check out, never allocate from a length before checking it against
 * the file's size, and never report an index synced before the snapshot
 * holding it is durable and the index floor is above it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/store_i.h"
#include "lockcore/le.h"

static void snap_name(char *buf, size_t size, uint64_t index)
{
	snprintf(buf, size, "snap-%016" PRIx64, index);
}

/* Reads exactly len bytes at off; -EUCLEAN when the file ends first. */
static int read_at(int fd, uint8_t *p, uint64_t len, uint64_t off)
{
	while (len) {
		size_t want = len > (1u << 30) ? (1u << 30) : (size_t)len;
		ssize_t n = pread(fd, p, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EUCLEAN;
		p += n;
		len -= (uint64_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/*
 * Loads snap-<index> into *out (meta and data malloc'd, each in one
 * allocation sized from the header, checked against the file size first
 * so a damaged length cannot make us allocate gigabytes).  Returns 0, 1
 * when the file is not a whole valid snapshot (`why` says what is wrong;
 * *out is then empty), or -errno.
 */
static int load_snapshot(struct store *s, uint64_t index,
			 struct store_snapshot *out, char *why, size_t why_size)
{
	char name[32];
	uint8_t h[SNAP_HDR], t[4];
	struct stat st;
	uint64_t size, len;
	uint32_t meta_len, crc;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	snap_name(name, sizeof(name), index);
	fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto close_fd;
	}
	size = (uint64_t)st.st_size;
	rc = read_at(fd, h, SNAP_HDR, 0);
	if (rc == -EUCLEAN) {
		snprintf(why, why_size, "torn header (%" PRIu64 " bytes)", size);
		rc = 1;
		goto close_fd;
	}
	if (rc < 0)
		goto close_fd;
	meta_len = le_get32(h + 24);
	len = le_get64(h + 28);
	rc = 1;
	if (le_get32(h) != SNAP_MAGIC) {
		snprintf(why, why_size, "bad magic 0x%08" PRIx32, le_get32(h));
		goto close_fd;
	}
	if (le_get32(h + 4) != SNAP_VERSION) {
		snprintf(why, why_size, "unknown version %" PRIu32,
			 le_get32(h + 4));
		goto close_fd;
	}
	if (le_get64(h + 8) != index) {
		snprintf(why, why_size, "holds index %" PRIu64, le_get64(h + 8));
		goto close_fd;
	}
	if (size < (uint64_t)SNAP_HDR + 4 + meta_len ||
	    size - SNAP_HDR - 4 - meta_len != len) {
		snprintf(why, why_size, "length %" PRIu64 " bytes, the header "
			 "says %" PRIu32 " + %" PRIu64 " + %u", size, meta_len,
			 len, SNAP_HDR + 4);
		goto close_fd;
	}
	if ((uint64_t)(size_t)len != len) {
		rc = -ENOMEM;
		goto close_fd;
	}
	out->meta = meta_len ? malloc(meta_len) : NULL;
	out->data = len ? malloc((size_t)len) : NULL;
	if ((meta_len && !out->meta) || (len && !out->data)) {
		rc = -ENOMEM;
		goto free_bufs;
	}
	rc = read_at(fd, out->meta, meta_len, SNAP_HDR);
	if (rc == 0)
		rc = read_at(fd, out->data, len, SNAP_HDR + (uint64_t)meta_len);
	if (rc == 0)
		rc = read_at(fd, t, 4, SNAP_HDR + (uint64_t)meta_len + len);
	if (rc == -EUCLEAN) {
		/* It shrank under us: as torn as any other short file. */
		snprintf(why, why_size, "file shorter than its header says");
		rc = 1;
	}
	if (rc != 0)
		goto free_bufs;
	crc = store_crc32c(0, h, SNAP_HDR);
	crc = store_crc32c(crc, out->meta, meta_len);
	crc = store_crc32c(crc, out->data, (size_t)len);
	if (crc != le_get32(t)) {
		snprintf(why, why_size, "crc mismatch");
		rc = 1;
		goto free_bufs;
	}
	out->index = index;
	out->term = le_get64(h + 16);
	out->meta_len = meta_len;
	out->len = len;
	close(fd);
	return 0;

free_bufs:
	free(out->meta);
	free(out->data);
	memset(out, 0, sizeof(*out));
close_fd:
	close(fd);
	return rc;
}

/*
 * Finds the newest valid snapshot, newest first; every corrupt one it
 * passes over is named in `note` (one line, "" when none was).  Corrupt
 * files are left alone: recovery deletes nothing it did not report as a
 * cut tail, and store_snapshot_save() retires them later.
 */
int load_snapshots(struct store *s, char *note, size_t note_size)
{
	uint64_t *idx = NULL;
	size_t used = 0;
	int n, rc = 0;

	note[0] = '\0';
	n = list_names(s, "snap-", &idx);
	if (n < 0)
		return n;
	for (int i = n - 1; i >= 0; i--) {
		char why[128] = "";

		rc = load_snapshot(s, idx[i], &s->held, why, sizeof(why));
		if (rc < 0)
			goto free_idx;
		if (rc == 0) {
			s->snap_index = s->held.index;
			s->snap_term = s->held.term;
			if (used)
				snprintf(note + used, note_size - used,
					 ", falling back to snap-%016" PRIx64,
					 idx[i]);
			break;
		}
		used += (size_t)snprintf(note + used, note_size - used,
					 "%ssnap-%016" PRIx64 ": corrupt "
					 "snapshot skipped: %s",
					 used ? "; " : "", idx[i], why);
		if (used >= note_size)
			used = note_size - 1;
	}
	if (rc == 1)
		snprintf(note + used, note_size - used,
			 ", no valid snapshot left");
	rc = 0;
free_idx:
	free(idx);
	return rc;
}

/* Forgets the in-memory log when it ends below the newest snapshot: what
 * it holds is covered, and the next append (snap_index + 1) must start a
 * segment of its own for the log on disk to stay contiguous per segment. */
void log_behind_snapshot(struct store *s)
{
	if (s->base + s->npos >= s->snap_index)
		return;
	if (s->tailfd >= 0)
		close(s->tailfd);
	s->tailfd = -1;
	s->wlen = 0;
	s->tail_dirty = false;
	s->nobs = s->nsegs;
	s->obs_last = s->snap_index;
	s->base = s->snap_index;
	s->npos = 0;
}

/* ---- snapshots and compaction ------------------------------------------ */

/* Hands over the snapshot found at open; see store.h. */
void store_snapshot_take(struct store *s, struct store_snapshot *out)
{
	*out = s->held;
	memset(&s->held, 0, sizeof(s->held));
}

/* Removes every snap-* but `keep` and `prev`.  Unlink failures are not
 * fatal: a leftover old snapshot is only wasted space, never wrong. */
static void retire_snapshots(struct store *s, uint64_t keep, uint64_t prev)
{
	uint64_t *idx = NULL;
	char name[32];
	int n = list_names(s, "snap-", &idx);

	for (int i = 0; i < n; i++) {
		if (idx[i] == keep || idx[i] == prev)
			continue;
		snap_name(name, sizeof(name), idx[i]);
		if (unlinkat(s->dirfd, name, 0) == 0)
			s->dir_dirty = true;
	}
	free(idx);
}

/* Writes snap-<index> durably and retires the older ones. */
static int snapshot_write(struct store *s, uint64_t index, uint64_t term,
			  const void *meta, uint32_t meta_len,
			  const void *data, uint64_t len)
{
	uint8_t h[SNAP_HDR], t[4];
	char name[32];
	uint32_t crc;
	uint64_t prev = s->snap_index;
	int fd, rc;

	if (s->failed)
		return -EIO;
	if (index == 0 || index <= s->snap_index ||
	    (meta_len && !meta) || (len && !data) ||
	    (uint64_t)(size_t)len != len)
		return -EINVAL;
	le_put32(h, SNAP_MAGIC);
	le_put32(h + 4, SNAP_VERSION);
	le_put64(h + 8, index);
	le_put64(h + 16, term);
	le_put32(h + 24, meta_len);
	le_put64(h + 28, len);
	crc = store_crc32c(0, h, SNAP_HDR);
	crc = store_crc32c(crc, meta, meta_len);
	crc = store_crc32c(crc, data, (size_t)len);
	le_put32(t, crc);
	fd = openat(s->dirfd, SNAP_TMP,
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail_write(s, -errno);
	/* write_all() loops over short writes: data can be tens of MB. */
	rc = write_all(fd, h, SNAP_HDR, 0);
	if (rc == 0)
		rc = write_all(fd, meta, meta_len, SNAP_HDR);
	if (rc == 0)
		rc = write_all(fd, data, (size_t)len,
			       SNAP_HDR + (uint64_t)meta_len);
	if (rc == 0)
		rc = write_all(fd, t, 4, SNAP_HDR + (uint64_t)meta_len + len);
	snap_name(name, sizeof(name), index);
	rc = seal_tmp(s, fd, rc, SNAP_TMP, name);
	if (rc < 0)
		return rc;
	retire_snapshots(s, index, prev);
	if (index > s->floor) {
		/* Applied beyond the floor (entries committed elsewhere):
		 * reported synced below, so the floor moves first. */
		reserve_floor(s, index);
		rc = write_state(s);
		if (rc < 0)
			return rc;
	}
	/* One directory fsync makes the rename and the removals durable
	 * (and whatever else was pending on the directory). */
	rc = fsync_dir(s);
	if (rc < 0)
		return rc;
	s->snap_index = index;
	s->snap_term = term;
	s->st.snapshots++;
	if (store_last_index(s) < index) {
		/* Applied beyond our own log (entries committed elsewhere):
		 * the snapshot is durable, so that much is synced. */
		rc = flush(s);
		if (rc < 0)
			return rc;
		log_behind_snapshot(s);
		s->synced = index;
	}
	return 0;
}

/* Writes a snapshot durably; see store.h. */
int store_snapshot_save(struct store *s, uint64_t index, uint64_t term,
			const void *meta, uint32_t meta_len,
			const void *data, uint64_t len)
{
	/* A term that is not our entry's would make recovery take the log
	 * for one an interrupted install left behind (finish_install()). */
	if (!s->failed && index > s->base && index <= store_last_index(s) &&
	    s->pos[index - s->base - 1].term != term)
		return -EINVAL;
	return snapshot_write(s, index, term, meta, meta_len, data, len);
}

/* Highest index segs[i] can hold, or UINT64_MAX when unknown (the tail
 * being appended to). */
static uint64_t seg_last(const struct store *s, size_t i)
{
	if (i + 1 < s->nsegs)
		return s->segs[i + 1].first - 1;
	if (i < s->nobs)
		return s->obs_last;
	return UINT64_MAX;
}

/* Removes the segments at or below a snapshot; see store.h. */
int store_compact(struct store *s, uint64_t upto)
{
	char name[32];
	size_t k = 0;
	int rc;

	if (s->failed)
		return -EIO;
	/* Only a durable snapshot makes records disposable. */
	if (upto > s->snap_index)
		return -EINVAL;
	while (k < s->nsegs && seg_last(s, k) <= upto) {
		seg_name(name, sizeof(name), s->segs[k].first);
		if (unlinkat(s->dirfd, name, 0) < 0 && errno != ENOENT)
			return fail(s, -errno);
		k++;
	}
	if (!k)
		return 0;
	if (k > s->nobs) {
		/* Loaded segments went: the in-memory index follows.  The
		 * tail never goes (seg_last() is unknown), so k < nsegs. */
		uint64_t nb = s->segs[k].first - 1, drop = nb - s->base;

		memmove(s->pos, s->pos + drop,
			(size_t)(s->npos - drop) * sizeof(*s->pos));
		s->npos -= drop;
		s->base = nb;
	}
	s->nobs = s->nobs > k ? s->nobs - k : 0;
	memmove(s->segs, s->segs + k, (s->nsegs - k) * sizeof(*s->segs));
	s->nsegs -= k;
	s->st.segments = s->nsegs;
	rc = fsync_dir(s);
	return rc < 0 ? rc : 0;
}

/* Saves a leader's snapshot and drops the whole log; see store.h. */
int store_snapshot_install(struct store *s, uint64_t index, uint64_t term,
			   const void *meta, uint32_t meta_len,
			   const void *data, uint64_t len)
{
	char name[32];
	int rc = snapshot_write(s, index, term, meta, meta_len, data, len);

	if (rc < 0)
		return rc;
	/* Buffered records are part of the log being dropped. */
	s->wlen = 0;
	if (s->tailfd >= 0)
		close(s->tailfd);
	s->tailfd = -1;
	s->tail_dirty = false;
	while (s->nsegs) {
		seg_name(name, sizeof(name), s->segs[s->nsegs - 1].first);
		if (unlinkat(s->dirfd, name, 0) < 0 && errno != ENOENT)
			return fail(s, -errno);
		s->nsegs--;
	}
	s->st.segments = 0;
	s->nobs = 0;
	s->base = index;
	s->npos = 0;
	s->synced = index;
	/* Durable before returning: a reopen must not find the old log
	 * continuing where the new snapshot says otherwise. */
	return fsync_dir(s);
}
