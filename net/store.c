/*
 * net/store.c - the durable Raft log store: CRC32C, the state file with
 * its index floor, the reserve file, the driver's small files, and the
 * running log (segmented, append-only, CRC32C on every record, group
 * commit).  Recovery is in store_recover.c, snapshots and compaction in
 * store_snap.c (net/store_i.h); the format and the contract are in
 * net/store.h.
 *
 * It must never report an index as synced before an fsync covering it
 * returned, never retry or continue after a failed write or fsync (the
 * store becomes dead and returns -EIO; only a write or create refused for
 * space, which loses nothing, is reported and may be retried), never
 * remove a log record that no durable snapshot covers (except on a Raft
 * conflict truncation), and never report an index synced before the index
 * floor is above it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/store_i.h"
#include "lockcore/le.h"

/* ---- CRC32C, slicing-by-8 ---------------------------------------------- */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
		crc_tab[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^
					crc_tab[0][crc_tab[t - 1][i] & 0xff];
}

/* CRC32C of buf continuing from crc (0 to start); see store.h. */
uint32_t store_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (len >= 8) {
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
				     (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);

		crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^
		      crc_tab[5][(lo >> 16) & 0xff] ^ crc_tab[4][lo >> 24] ^
		      crc_tab[3][p[4]] ^ crc_tab[2][p[5]] ^
		      crc_tab[1][p[6]] ^ crc_tab[0][p[7]];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

/* ---- little helpers ---------------------------------------------------- */

void seg_name(char *buf, size_t size, uint64_t first)
{
	snprintf(buf, size, "log-%016" PRIx64, first);
}

/* Parses "<prefix><16 hex>" ("log-", "snap-"); false for any other name,
 * so that snap.tmp and foreign files are never taken for ours. */
static bool parse_name(const char *name, const char *prefix, uint64_t *first)
{
	size_t pl = strlen(prefix);
	uint64_t v = 0;

	if (strncmp(name, prefix, pl) != 0 || strlen(name) != pl + 16)
		return false;
	for (const char *c = name + pl; *c; c++) {
		int d;

		if (*c >= '0' && *c <= '9')
			d = *c - '0';
		else if (*c >= 'a' && *c <= 'f')
			d = *c - 'a' + 10;
		else
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*first = v;
	return true;
}

int write_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Marks the store dead: after a failed write or fsync the kernel may have
 * dropped dirty pages, so nothing later could be trusted as durable. */
int fail(struct store *s, int rc)
{
	s->failed = true;
	return rc;
}

/* A write(2) or a create refused for space: the filesystem took nothing
 * and dropped nothing (a short write leaves bytes past what we count, and
 * the same bytes go again at the same offset), so this one is not fatal:
 * what is buffered stays buffered and the caller may retry.  A failed
 * fsync never is (see fail()). */
static bool no_room(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT;
}

/* fail(), except for a write refused for space. */
int fail_write(struct store *s, int rc)
{
	return no_room(rc) ? rc : fail(s, rc);
}

int fsync_dir(struct store *s)
{
	s->st.fsyncs++;
	if (fsync(s->dirfd) < 0)
		return fail(s, -errno);
	s->dir_dirty = false;
	return 0;
}

int push_seg(struct store *s, uint64_t first, uint64_t size)
{
	if (s->nsegs == s->capsegs) {
		size_t cap = s->capsegs ? 2 * s->capsegs : 8;
		struct seg *n = realloc(s->segs, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->segs = n;
		s->capsegs = cap;
	}
	s->segs[s->nsegs].first = first;
	s->segs[s->nsegs].size = size;
	s->nsegs++;
	s->st.segments = s->nsegs;
	return 0;
}

int push_pos(struct store *s, uint64_t off, uint64_t term)
{
	if (s->npos == s->cappos) {
		uint64_t cap = s->cappos ? 2 * s->cappos : 1024;
		struct pos *n = realloc(s->pos, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->pos = n;
		s->cappos = cap;
	}
	s->pos[s->npos].off = off;
	s->pos[s->npos].term = term;
	s->npos++;
	return 0;
}

/* Finishes a file written under a temporary name: fsync it (when the
 * writes, whose result is rc, succeeded), close it and rename it over
 * `name`.  The rename is durable with the next directory fsync.  0, or
 * the failure, after which the store is dead (fail()). */
int seal_tmp(struct store *s, int fd, int rc, const char *tmp,
		    const char *name)
{
	if (no_room(rc)) {
		/* Nothing was synced: give the space back, the store lives. */
		close(fd);
		unlinkat(s->dirfd, tmp, 0);
		return rc;
	}
	if (rc == 0) {
		s->st.fsyncs++;
		if (fsync(fd) < 0)
			rc = -errno;
	}
	close(fd);
	if (rc < 0)
		return fail(s, rc);
	if (renameat(s->dirfd, tmp, s->dirfd, name) < 0)
		return fail(s, -errno);
	return 0;
}

/* ---- the space reserve -------------------------------------------------- */

#define RESERVE_NAME "reserve"

/* Makes the reserve file hold `bytes` (see store.h). */
int store_reserve(struct store *s, uint64_t bytes)
{
	int fd, e;

	if (s->failed)
		return -EIO;
	fd = openat(s->dirfd, RESERVE_NAME, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* posix_fallocate writes zeros where fallocate is not supported. */
	e = bytes ? posix_fallocate(fd, 0, (off_t)bytes) : 0;
	close(fd);
	if (e) {
		unlinkat(s->dirfd, RESERVE_NAME, 0);
		return -e;
	}
	return 0;
}

/* Gives the reserve's space back (see store.h). */
int store_unreserve(struct store *s)
{
	if (unlinkat(s->dirfd, RESERVE_NAME, 0) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 1;
}

/* ---- the driver's small files -------------------------------------------- */

/* Replaces a small file durably (see store.h). */
int store_put_file(struct store *s, const char *name, const void *data, size_t len)
{
	char tmp[NAME_MAX + 1];
	int fd, rc;

	if (s->failed)
		return -EIO;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= sizeof(tmp) ||
	    strchr(name, '/'))
		return -EINVAL;
	fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(s, -errno);
	rc = write_all(fd, data, len, 0);
	rc = seal_tmp(s, fd, rc, tmp, name);
	return rc < 0 ? rc : fsync_dir(s);
}

/* Removes a small file durably (see store.h). */
int store_del_file(struct store *s, const char *name)
{
	if (s->failed)
		return -EIO;
	if (strchr(name, '/'))
		return -EINVAL;
	if (unlinkat(s->dirfd, name, 0) < 0)
		return errno == ENOENT ? 0 : -errno;
	return fsync_dir(s);
}

/* Reads a small file (see store.h). */
ssize_t store_get_file(struct store *s, const char *name, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	if (!size || strchr(name, '/'))
		return -EINVAL;
	fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0)
		n = -errno;
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return n;
}

/* ---- hard state -------------------------------------------------------- */

/* Reads the state file.  A missing or damaged one is not an error here:
 * store_open() decides (a fresh directory gets its first one; beside a
 * log it is damage).  0 (s->state_why set when missing or damaged), or
 * -errno. */
int load_state(struct store *s)
{
	uint8_t b[STATE_BYTES + 1];
	ssize_t n;
	int fd = openat(s->dirfd, STATE_NAME, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		snprintf(s->state_why, sizeof(s->state_why), "missing");
		return 0;
	}
	n = read(fd, b, sizeof(b));
	close(fd);
	if (n < 0)
		return -errno;
	/* The file is replaced by rename, so it is never torn: anything
	 * wrong here is real corruption and we refuse to guess a vote.
	 * Version 1 (28 bytes) had no floor. */
	if (n >= 8 && le_get32(b) == STATE_MAGIC && le_get32(b + 4) == 1u &&
	    n == STATE_V1_BYTES && le_get32(b + 24) == store_crc32c(0, b, 24)) {
		s->term = le_get64(b + 8);
		s->vote = le_get64(b + 16);
		return 0;
	}
	if (n != STATE_BYTES || le_get32(b) != STATE_MAGIC ||
	    le_get32(b + 4) != STATE_VERSION ||
	    le_get32(b + 40) != store_crc32c(0, b, 40)) {
		snprintf(s->state_why, sizeof(s->state_why),
			 "damaged (%zd bytes, %s)", n,
			 n != STATE_BYTES ? "wrong size" :
			 le_get32(b) != STATE_MAGIC ? "bad magic" :
			 le_get32(b + 4) != STATE_VERSION ? "unknown version" :
			 "crc mismatch");
		return 0;
	}
	s->term = le_get64(b + 8);
	s->vote = le_get64(b + 16);
	s->mark = le_get64(b + 24);
	s->floor = le_get64(b + 32);
	return 0;
}

int write_state(struct store *s)
{
	uint8_t b[STATE_BYTES];
	int fd, rc;

	le_put32(b, STATE_MAGIC);
	le_put32(b + 4, STATE_VERSION);
	le_put64(b + 8, s->term);
	le_put64(b + 16, s->vote);
	le_put64(b + 24, s->mark);
	le_put64(b + 32, s->floor);
	le_put32(b + 40, store_crc32c(0, b, 40));
	fd = openat(s->dirfd, STATE_TMP,
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail_write(s, -errno);
	rc = write_all(fd, b, sizeof(b), 0);
	rc = seal_tmp(s, fd, rc, STATE_TMP, STATE_NAME);
	if (rc < 0)
		return rc;
	s->dir_dirty = true;           /* the rename is durable with the dir */
	s->hs_pending = false;
	return 0;
}

/* Moves the floor above `index` before it is reported synced: the state
 * file goes out with the next write_state(), which the caller makes
 * happen before it reports `index`. */
void reserve_floor(struct store *s, uint64_t index)
{
	if (index <= s->floor)
		return;
	s->mark = index;
	s->floor = index + s->floor_step;
	s->hs_pending = true;
}

/* ---- listing the directory --------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Lists the indexes in the names of files "<prefix><16 hex>", sorted.
 * Returns the count or -errno. */
int list_names(struct store *s, const char *prefix, uint64_t **out)
{
	int fd = dup(s->dirfd);
	DIR *d;
	struct dirent *e;
	uint64_t *v = NULL, first;
	size_t n = 0, cap = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		int err = errno;

		close(fd);
		return -err;
	}
	/* A dup shares the offset: an earlier listing left it at the end. */
	rewinddir(d);
	while ((e = readdir(d))) {
		if (!parse_name(e->d_name, prefix, &first))
			continue;
		if (n == cap) {
			uint64_t *nv;

			cap = cap ? 2 * cap : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n++] = first;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_u64);
	*out = v;
	return (int)n;
}

/* Reopens the tail for appending, unless it is an obsolete segment (then
 * the next append rolls a new one). */
int open_tail(struct store *s)
{
	char name[32];

	if (s->tailfd >= 0)
		close(s->tailfd);
	s->tailfd = -1;
	if (s->nsegs <= s->nobs)
		return 0;
	seg_name(name, sizeof(name), s->segs[s->nsegs - 1].first);
	s->tailfd = openat(s->dirfd, name, O_WRONLY | O_CLOEXEC);
	return s->tailfd < 0 ? -errno : 0;
}

/* Frees everything without syncing; see store.h. */
void store_close(struct store *s)
{
	if (!s)
		return;
	store_loaded_free(s);
	free(s->held.meta);
	free(s->held.data);
	if (s->tailfd >= 0)
		close(s->tailfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->segs);
	free(s->pos);
	free(s->wbuf);
	free(s);
}

/* The floor found at open; see store.h. */
void store_floor(const struct store *s, uint64_t *mark, uint64_t *floor)
{
	*mark = s->mark;
	*floor = s->floor;
}

/* Last set hard state; see store.h. */
void store_hardstate(const struct store *s, uint64_t *term, uint64_t *vote)
{
	*term = s->term;
	*vote = s->vote;
}

/* Entries found at open; see store.h. */
const struct store_entry *store_loaded(const struct store *s, uint64_t *n)
{
	*n = s->nloaded;
	return s->loaded;
}

/* Frees the loaded view; see store.h. */
void store_loaded_free(struct store *s)
{
	for (size_t i = 0; i < s->narenas; i++)
		free(s->arenas[i]);
	free(s->arenas);
	free(s->loaded);
	s->arenas = NULL;
	s->narenas = 0;
	s->loaded = NULL;
	s->nloaded = 0;
}

/* Index of the first loaded entry; see store.h. */
uint64_t store_first_index(const struct store *s)
{
	return s->first_loaded;
}

/* Index of the last record, else the snapshot's; see store.h.  The log
 * never ends below the snapshot (log_behind_snapshot() sees to it), so
 * base + npos is both. */
uint64_t store_last_index(const struct store *s)
{
	return s->base + s->npos;
}

/* Term of the last record, else the snapshot's; see store.h. */
uint64_t store_last_term(const struct store *s)
{
	return s->npos ? s->pos[s->npos - 1].term : s->snap_term;
}

/* Buffers a hard state for the next sync; see store.h. */
int store_set_hardstate(struct store *s, uint64_t term, uint64_t vote)
{
	if (s->failed)
		return -EIO;
	s->term = term;
	s->vote = vote;
	s->hs_pending = true;
	return 0;
}

int flush(struct store *s)
{
	int rc;

	if (!s->wlen)
		return 0;
	rc = write_all(s->tailfd, s->wbuf, s->wlen,
		       s->segs[s->nsegs - 1].size - s->wlen);
	if (rc < 0)
		return fail_write(s, rc);
	s->wlen = 0;
	return 0;
}

static int new_segment(struct store *s, uint64_t first)
{
	char name[32];
	int rc, fd;

	if (s->tailfd >= 0) {
		/* The old tail first, whole and synced, before the new
		 * name exists: a crash must never leave a segment after a
		 * torn one (recovery cuts only the last segment's end).
		 * store_sync() only syncs the current tail.  Refused for
		 * space, the old tail stays the tail, synced or not. */
		rc = flush(s);
		if (rc == 0 && s->tail_dirty) {
			s->st.fdatasyncs++;
			if (fdatasync(s->tailfd) < 0)
				rc = fail(s, -errno);
			else
				s->tail_dirty = false;
		}
		if (rc < 0)
			return rc;
	}
	/* Refused for space, the old tail stays the tail (store_append()
	 * then goes on past the roll size). */
	seg_name(name, sizeof(name), first);
	fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail_write(s, -errno);
	if (s->tailfd >= 0)
		close(s->tailfd);
	s->tailfd = fd;
	rc = push_seg(s, first, 0);
	if (rc < 0)
		return fail(s, rc);
	s->dir_dirty = true;
	s->tail_dirty = true;
	return 0;
}

/* Buffers one record; see store.h. */
int store_append(struct store *s, uint64_t index, uint64_t term,
		 uint8_t type, const void *buf, uint32_t len)
{
	size_t rec = STORE_REC_HDR + (size_t)len;
	struct seg *tail;
	uint8_t *p;
	int rc;

	if (s->failed)
		return -EIO;
	if (index != store_last_index(s) + 1 || term < store_last_term(s))
		return -EINVAL;
	if (len > STORE_PAYLOAD_MAX)
		return -E2BIG;
	if (len && !buf)
		return -EINVAL;
	if (s->wcap < s->wlen + rec) {
		size_t cap = s->wlen + rec > 2 * s->wcap ? s->wlen + rec
							 : 2 * s->wcap;

		p = realloc(s->wbuf, cap);
		if (!p)
			return -ENOMEM;
		s->wbuf = p;
		s->wcap = cap;
	}
	if (s->npos == s->cappos) {
		/* Grow before writing so a later ENOMEM cannot leave a
		 * record on disk that the index does not know. */
		rc = push_pos(s, 0, 0);
		if (rc < 0)
			return rc;
		s->npos--;
	}
	if (s->tailfd < 0 || (s->segs[s->nsegs - 1].size > 0 &&
			      s->segs[s->nsegs - 1].size + rec > s->seg_bytes)) {
		rc = new_segment(s, index);
		/* No room for a new segment: a longer tail will do. */
		if (rc < 0 && !(no_room(rc) && s->tailfd >= 0))
			return rc;
	}
	if (s->wlen + rec > WBUF_FLUSH) {
		rc = flush(s);
		/* No room: keep it buffered, store_sync() says so. */
		if (rc < 0 && !no_room(rc))
			return rc;
	}
	tail = &s->segs[s->nsegs - 1];
	p = s->wbuf + s->wlen;
	le_put32(p, (uint32_t)(rec - 8));
	le_put64(p + 8, index);
	le_put64(p + 16, term);
	p[24] = type;
	if (len)
		memcpy(p + STORE_REC_HDR, buf, len);
	le_put32(p + 4, store_crc32c(0, p + 8, rec - 8));
	push_pos(s, tail->size, term);  /* cannot fail: grown above */
	tail->size += rec;
	s->wlen += rec;
	s->tail_dirty = true;
	s->st.appends++;
	s->st.bytes += rec;
	return 0;
}

/* Drops records >= index; see store.h. */
int store_truncate(struct store *s, uint64_t index)
{
	char name[32];
	uint64_t off;
	size_t k;
	int rc;

	if (s->failed)
		return -EIO;
	/* What a durable snapshot covers is committed: a conflict there
	 * would be a bug of the caller, and cutting it would break the
	 * rule that the log continues the snapshot. */
	if (index == 0 || index <= s->snap_index)
		return -EINVAL;
	if (index > store_last_index(s))
		return 0;
	rc = flush(s);
	if (rc < 0)
		return rc;
	for (k = s->nsegs; k > 0 && s->segs[k - 1].first > index; k--)
		;
	k--;                           /* segs[k] holds index */
	off = s->pos[index - s->base - 1].off;
	while (s->nsegs > k + (off > 0)) {
		struct seg *g = &s->segs[s->nsegs - 1];

		seg_name(name, sizeof(name), g->first);
		if (unlinkat(s->dirfd, name, 0) < 0)
			return fail(s, -errno);
		s->nsegs--;
		s->dir_dirty = true;
	}
	s->st.segments = s->nsegs;
	/* The cut is durable before anything is written where the old
	 * records were: a crash must not find the new records followed by
	 * old valid ones (a size that did not stick) or beside an old next
	 * segment (an unlink that did not), which recovery takes for damage. */
	if (s->dir_dirty) {
		rc = fsync_dir(s);
		if (rc < 0)
			return rc;
	}
	if (off > 0) {
		int fd;

		seg_name(name, sizeof(name), s->segs[k].first);
		fd = openat(s->dirfd, name, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return fail(s, -errno);
		s->st.fsyncs++;
		if (ftruncate(fd, (off_t)off) < 0 || fsync(fd) < 0) {
			rc = -errno;
			close(fd);
			return fail(s, rc);
		}
		close(fd);
		s->segs[k].size = off;
	}
	rc = open_tail(s);
	if (rc < 0)
		return fail(s, rc);
	/* A truncated tail must be synced; an untouched one that became the
	 * tail again was synced when the next segment was rolled. */
	s->tail_dirty = off > 0;
	s->npos = index - s->base - 1;
	if (s->synced > index - 1)
		s->synced = index - 1;
	return 0;
}

/* Group commit of everything buffered; see store.h. */
int64_t store_sync(struct store *s)
{
	int rc;

	if (s->failed)
		return -EIO;
	if (!s->tail_dirty && !s->hs_pending && !s->dir_dirty)
		return (int64_t)s->synced;
	s->st.syncs++;
	rc = flush(s);
	if (rc < 0)
		return rc;
	if (s->tail_dirty && s->tailfd >= 0) {
		s->st.fdatasyncs++;
		if (fdatasync(s->tailfd) < 0)
			return fail(s, -errno);
	}
	s->tail_dirty = false;
	/* Nobody learns of an index above the floor before the floor is
	 * above it: the state file goes out in this same sync. */
	reserve_floor(s, store_last_index(s));
	if (s->hs_pending) {
		rc = write_state(s);
		if (rc < 0)
			return rc;
	}
	/* One directory fsync covers new segments, unlinked ones and the
	 * state rename together. */
	if (s->dir_dirty) {
		rc = fsync_dir(s);
		if (rc < 0)
			return rc;
	}
	s->synced = store_last_index(s);
	return (int64_t)s->synced;
}

/* Counters; see store.h. */
void store_stats(const struct store *s, struct store_stats *st)
{
	*st = s->st;
	st->segments = s->nsegs;
}
