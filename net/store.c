/*
 * net/store.c - the durable Raft log store: hard state file, segmented
 * append-only log with CRC32C on every record, group commit, recovery,
 * snapshots and compaction.  The format and the contract are in
 * net/store.h.
 *
 * It must never report an index as synced before an fsync covering it
 * returned, never retry or continue after a failed write or fsync (the
 * store becomes dead and returns -EIO; only a write or create refused for
 * space, which loses nothing, is reported and may be retried), never trust
 * a record whose length, crc, index or term does not check out, never cut
 * anything during recovery but a torn tail (the last segment's unsynced
 * end) or a loss the admin accepted, never remove a log record that no
 * durable snapshot covers (except on a Raft conflict truncation or a
 * snapshot install), and never report an index synced before the index
 * floor is above it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/store.h"
#include "lockcore/le.h"

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

static void seg_name(char *buf, size_t size, uint64_t first)
{
	snprintf(buf, size, "log-%016" PRIx64, first);
}

static void snap_name(char *buf, size_t size, uint64_t index)
{
	snprintf(buf, size, "snap-%016" PRIx64, index);
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

static int write_all(int fd, const uint8_t *p, size_t len, uint64_t off)
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
static int fail(struct store *s, int rc)
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
static int fail_write(struct store *s, int rc)
{
	return no_room(rc) ? rc : fail(s, rc);
}

static int fsync_dir(struct store *s)
{
	s->st.fsyncs++;
	if (fsync(s->dirfd) < 0)
		return fail(s, -errno);
	s->dir_dirty = false;
	return 0;
}

static int push_seg(struct store *s, uint64_t first, uint64_t size)
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

static int push_pos(struct store *s, uint64_t off, uint64_t term)
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
static int seal_tmp(struct store *s, int fd, int rc, const char *tmp,
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
static int load_state(struct store *s)
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

static int write_state(struct store *s)
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
static void reserve_floor(struct store *s, uint64_t index)
{
	if (index <= s->floor)
		return;
	s->mark = index;
	s->floor = index + s->floor_step;
	s->hs_pending = true;
}

/* ---- recovery ---------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Lists the indexes in the names of files "<prefix><16 hex>", sorted.
 * Returns the count or -errno. */
static int list_names(struct store *s, const char *prefix, uint64_t **out)
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

static int read_file(int fd, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *b;
	size_t got = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	*out = NULL;
	*len = 0;
	if (st.st_size == 0)
		return 0;
	b = malloc((size_t)st.st_size);
	if (!b)
		return -ENOMEM;
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, b + got, (size_t)st.st_size - got,
				  (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(b);
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*out = b;
	*len = got;
	return 0;
}

/* Why the record at b[0..rem) is not acceptable, or NULL when it is. */
static const char *check_record(const uint8_t *b, size_t rem, uint64_t want,
				uint64_t prev_term, char *why, size_t why_size)
{
	size_t i;
	uint32_t len;

	for (i = 0; i < rem && b[i] == 0; i++)
		;
	if (i == rem) {
		snprintf(why, why_size, "zero-filled tail of %zu bytes", rem);
		return why;
	}
	if (rem < STORE_REC_HDR) {
		snprintf(why, why_size, "torn record header (%zu bytes)", rem);
		return why;
	}
	len = le_get32(b);
	if (len < STORE_REC_HDR - 8 || len > STORE_REC_HDR - 8 + STORE_PAYLOAD_MAX) {
		snprintf(why, why_size, "bad record length %" PRIu32, len);
		return why;
	}
	if (len > rem - 8) {
		snprintf(why, why_size,
			 "torn record (needs %" PRIu32 " bytes, %zu left)",
			 len + 8, rem);
		return why;
	}
	if (le_get32(b + 4) != store_crc32c(0, b + 8, len)) {
		snprintf(why, why_size, "crc mismatch");
		return why;
	}
	if (le_get64(b + 8) != want) {
		snprintf(why, why_size, "index %" PRIu64 ", expected %" PRIu64,
			 le_get64(b + 8), want);
		return why;
	}
	if (le_get64(b + 16) < prev_term) {
		snprintf(why, why_size, "term %" PRIu64 " below previous %"
			 PRIu64, le_get64(b + 16), prev_term);
		return why;
	}
	return NULL;
}

static int push_loaded(struct store *s, const uint8_t *rec)
{
	if ((s->nloaded & (s->nloaded - 1)) == 0) {
		uint64_t cap = s->nloaded ? 2 * s->nloaded : 1;
		struct store_entry *n = realloc(s->loaded, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->loaded = n;
	}
	s->loaded[s->nloaded].term = le_get64(rec + 16);
	s->loaded[s->nloaded].type = rec[24];
	s->loaded[s->nloaded].len = le_get32(rec) - (STORE_REC_HDR - 8);
	s->loaded[s->nloaded].buf = rec + STORE_REC_HDR;
	s->nloaded++;
	return 0;
}

/* What recovery found, for the one-line message and cfg->damage. */
struct rec_report {
	char *msg;                     /* the caller's, may be NULL */
	size_t msg_size;
	unsigned skipped;              /* covered records skipped */
	char skip[STORE_MSG_MAX];       /* the first of them */
};

/* Appends "; "-separated text to the recovery message. */
static void say(struct rec_report *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(struct rec_report *rep, const char *fmt, ...)
{
	va_list ap;
	size_t used;

	if (!rep->msg)
		return;
	used = strlen(rep->msg);
	if (used && used + 2 < rep->msg_size) {
		snprintf(rep->msg + used, rep->msg_size - used, "; ");
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(rep->msg + used, rep->msg_size - used, fmt, ap);
	va_end(ap);
}

/* The index of a record at b[off..len) whose length and crc check out
 * and whose index is in [lo, hi], or 0.  The index test comes first: it
 * is cheap, and garbage rarely passes it, so a scan stays linear. */
static uint64_t valid_at(const uint8_t *b, size_t len, size_t off,
			 uint64_t lo, uint64_t hi)
{
	uint32_t rl;
	uint64_t idx;

	if (len - off < STORE_REC_HDR)
		return 0;
	idx = le_get64(b + off + 8);
	if (idx < lo || idx > hi)
		return 0;
	rl = le_get32(b + off);
	if (rl < STORE_REC_HDR - 8 || rl > STORE_REC_HDR - 8 + STORE_PAYLOAD_MAX ||
	    rl > len - off - 8)
		return 0;
	return le_get32(b + off + 4) == store_crc32c(0, b + off + 8, rl) ? idx : 0;
}

/* Scans on past a bad record at `off` for the first valid record of
 * index in [lo, hi] (*idx): its offset, or len when there is none.  This
 * is what tells a torn tail (nothing valid after it) from damage. */
static size_t scan_on(const uint8_t *b, size_t len, size_t off, uint64_t lo,
		      uint64_t hi, uint64_t *idx)
{
	for (size_t o = off + 1; o + STORE_REC_HDR <= len; o++)
		if ((*idx = valid_at(b, len, o, lo, hi)) != 0)
			return o;
	*idx = 0;
	return len;
}

/* The index of the last of the contiguous valid records from b[off]
 * (which holds index `from`), or from - 1 when that one is bad. */
static uint64_t walk_last(const uint8_t *b, size_t len, size_t off,
			  uint64_t from)
{
	char why[128];
	uint64_t prev = 0;

	while (off < len && !check_record(b + off, len - off, from, prev, why,
					  sizeof(why))) {
		prev = le_get64(b + off + 16);
		off += 8 + le_get32(b + off);
		from++;
	}
	return from - 1;
}

/* The last index the log holds as far as the last segment says (its
 * valid records from the start), for the loss a cut would cause. */
static uint64_t log_end(struct store *s, uint64_t first)
{
	char name[32];
	uint8_t *b = NULL;
	size_t len = 0;
	uint64_t last = first - 1;
	int fd;

	seg_name(name, sizeof(name), first);
	fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return last;
	if (read_file(fd, &b, &len) == 0 && b)
		last = walk_last(b, len, 0, first);
	close(fd);
	free(b);
	return last;
}

/* Writes the damaged segment's whole content to lost-<name> (synced)
 * before an accepted cut shortens it: the admin keeps the evidence. */
static int save_lost(struct store *s, const char *name, const uint8_t *b,
		     size_t len)
{
	char lost[48];
	int fd, rc;

	snprintf(lost, sizeof(lost), "lost-%s", name);
	fd = openat(s->dirfd, lost, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -errno;
	rc = write_all(fd, b, len, 0);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* Moves segments firsts[from..n) aside (lost-log-...) after an accepted
 * cut: they cannot continue a log that now ends earlier. */
static int set_aside(struct store *s, const uint64_t *firsts, int from, int n)
{
	char name[32], lost[48];

	for (int j = from; j < n; j++) {
		seg_name(name, sizeof(name), firsts[j]);
		snprintf(lost, sizeof(lost), "lost-%s", name);
		if (renameat(s->dirfd, name, s->dirfd, lost) < 0)
			return -errno;
	}
	return 0;
}

/* Fills cfg->damage for a refusal. */
static void damage(struct store *s, enum store_damage_kind kind,
		   const char *file, uint64_t off, uint64_t index,
		   uint64_t from, uint64_t to)
{
	struct store_damage *d = s->cfg ? s->cfg->damage : NULL;

	if (!d)
		return;
	d->kind = kind;
	snprintf(d->file, sizeof(d->file), "%s", file);
	d->offset = off;
	d->index = index;
	d->lost_from = from;
	d->lost_to = to;
}

/*
 * Loads segment firsts[i] (of n).  Returns 1 when it is clean, 0 when
 * recovery cut it (a torn tail, or an accepted loss: later segments
 * went aside then), -EUCLEAN for damage it may not cut (cfg->damage and
 * the message say where), or -errno.
 */
static int load_segment(struct store *s, const uint64_t *firsts, int i,
			int n, struct rec_report *rep)
{
	char name[32], why[128];
	uint8_t *b = NULL, **na;
	size_t len = 0, off = 0;
	uint64_t first = firsts[i];
	int fd, rc;

	seg_name(name, sizeof(name), first);
	fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = read_file(fd, &b, &len);
	if (rc < 0)
		goto close_fd;
	if (b) {
		na = realloc(s->arenas, (s->narenas + 1) * sizeof(*na));
		if (!na) {
			rc = -ENOMEM;
			free(b);
			goto close_fd;
		}
		s->arenas = na;
		s->arenas[s->narenas++] = b;
	}
	while (off < len) {
		uint64_t prev = s->npos ? s->pos[s->npos - 1].term : 0;
		uint64_t want = s->base + s->npos + 1, j, to;
		size_t o;

		if (!check_record(b + off, len - off, want, prev, why,
				  sizeof(why))) {
			rc = push_pos(s, off, le_get64(b + off + 16));
			/* What the snapshot covers stays on disk until
			 * compaction but is not the driver's to replay. */
			if (rc == 0 && le_get64(b + off + 8) > s->snap_index)
				rc = push_loaded(s, b + off);
			if (rc < 0)
				goto close_fd;
			off += 8 + le_get32(b + off);
			continue;
		}
		if (want <= s->snap_index) {
			/* The snapshot has this record's effect: go on at
			 * the next valid one it covers (or right after). */
			o = scan_on(b, len, off, want + 1, s->snap_index + 1, &j);
			if (o < len) {
				if (!rep->skipped++)
					snprintf(rep->skip, sizeof(rep->skip),
						 "%s offset %zu: damaged record "
						 "(index %" PRIu64 ", %.100s) skipped: "
						 "snapshot snap-%016" PRIx64
						 " covers it", name, off, want,
						 why, s->snap_index);
				s->base = j - 1;   /* positions restart */
				s->npos = 0;
				off = o;
				continue;
			}
		}
		o = scan_on(b, len, off, want + 1,
			    want + (len - off) / STORE_REC_HDR, &j);
		if (o == len && i == n - 1) {
			/* A torn tail: the last write, never synced (an
			 * fdatasync covers every byte before it). */
			s->st.fsyncs++;
			if (ftruncate(fd, (off_t)off) < 0 || fsync(fd) < 0) {
				rc = -errno;
				goto close_fd;
			}
			say(rep, "%s offset %zu: torn tail at index %" PRIu64
			    ": %s; cut %zu bytes", name, off, want, why,
			    len - off);
			rc = push_seg(s, first, off);
			goto close_fd;
		}
		to = o < len ? walk_last(b, len, o, j) : 0;
		if (i < n - 1) {
			uint64_t e = log_end(s, firsts[n - 1]);

			to = e > to ? e : to;
		}
		if (want <= s->snap_index)
			want = s->snap_index + 1;  /* the first one lost */
		if (to < want)
			to = want;
		damage(s, STORE_DAMAGE_LOG, name, off, want, want, to);
		if (s->cfg && s->cfg->accept_cut == want) {
			rc = save_lost(s, name, b, len);
			if (rc == 0)
				rc = set_aside(s, firsts, i + 1, n);
			if (rc == 0 && (ftruncate(fd, (off_t)off) < 0 ||
					fsync(fd) < 0))
				rc = -errno;
			if (rc == 0)
				rc = fsync_dir(s);
			if (rc < 0)
				goto close_fd;
			say(rep, "%s offset %zu: damaged record (index %" PRIu64
			    ", %s): cut as accepted, entries %" PRIu64 " to %"
			    PRIu64 " lost (the damaged segment is kept as "
			    "lost-%s, later ones renamed lost-log-...)", name,
			    off, want, why, want, to, name);
			rc = push_seg(s, first, off);
			goto close_fd;
		}
		say(rep, "%s offset %zu: damaged record (index %" PRIu64 ", %s) "
		    "%s: this is not a torn write, and cutting here would lose "
		    "entries %" PRIu64 " to %" PRIu64, name, off, want, why,
		    o < len ? "followed by valid records"
			    : "in a segment that is not the last", want, to);
		rc = -EUCLEAN;
		goto close_fd;
	}
	rc = push_seg(s, first, off);
	if (rc == 0)
		rc = 1;
close_fd:
	close(fd);
	return rc;
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
static int load_snapshots(struct store *s, char *note, size_t note_size)
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
static void log_behind_snapshot(struct store *s)
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

/*
 * The term of the record at the snapshot's index, when the log still
 * holds it: 1 and *term, 0 when it does not, or -errno.  When the loaded
 * log starts right after the snapshot, the record is the last one of the
 * segment before, which recovery skipped: read that one alone.
 */
static int snap_record_term(struct store *s, const uint64_t *firsts,
			    int start, uint64_t *term)
{
	uint64_t i = s->snap_index, want, prev = 0, got = 0;
	uint8_t *b = NULL;
	size_t len = 0, off = 0;
	char name[32], why[128];
	int fd, rc;

	if (!i)
		return 0;
	if (i > s->base && i <= s->base + s->npos) {
		*term = s->pos[i - s->base - 1].term;
		return 1;
	}
	if (start == 0 || firsts[start] != i + 1)
		return 0;
	seg_name(name, sizeof(name), firsts[start - 1]);
	fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = read_file(fd, &b, &len);
	close(fd);
	if (rc < 0)
		return rc;
	for (want = firsts[start - 1]; off < len; want++) {
		if (check_record(b + off, len - off, want, prev, why,
				 sizeof(why)))
			break;
		prev = le_get64(b + off + 16);
		got = want;
		off += 8 + le_get32(b + off);
	}
	free(b);
	if (got != i)
		return 0;
	*term = prev;
	return 1;
}

/*
 * A log whose record at the snapshot's index has another term is from a
 * history the snapshot replaced: store_snapshot_save() refuses such a
 * term, so only a store_snapshot_install() that crashed between writing
 * the snapshot and removing the log leaves this.  Finish that install:
 * every segment goes, and `msg` says so.
 */
static int finish_install(struct store *s, const uint64_t *firsts, int start,
			  char *msg, size_t msg_size)
{
	uint64_t term = 0;
	char name[32];
	size_t had = s->nsegs, used;
	int rc = snap_record_term(s, firsts, start, &term);

	if (rc <= 0 || term == s->snap_term)
		return rc;
	while (s->nsegs) {
		seg_name(name, sizeof(name), s->segs[s->nsegs - 1].first);
		if (unlinkat(s->dirfd, name, 0) < 0)
			return -errno;
		s->nsegs--;
	}
	rc = fsync_dir(s);
	if (rc < 0)
		return rc;
	s->nobs = 0;
	s->base = s->snap_index;
	s->npos = 0;
	free(s->loaded);               /* the arenas go as usual */
	s->loaded = NULL;
	s->nloaded = 0;
	if (!msg)
		return 0;
	used = strlen(msg);
	snprintf(msg + used, msg_size - used, "%ssnap-%016" PRIx64 ": the "
		 "log has term %" PRIu64 " at index %" PRIu64 ", the snapshot "
		 "%" PRIu64 ": finished an interrupted install, removed %zu "
		 "segment%s", used ? "; " : "", s->snap_index, term,
		 s->snap_index, s->snap_term, had, had == 1 ? "" : "s");
	return 0;
}

/* The log cannot continue the snapshot from segment firsts[from] (named
 * `name`) on: recorded as damage; when the admin accepted that loss
 * (--accept-loss snapshot + 1), those segments go aside as lost-log-...
 * and the store ends at the snapshot: 0.  -EUCLEAN when not accepted. */
static int snapshot_gap(struct store *s, struct rec_report *rep,
			const uint64_t *firsts, int from, int n, const char *name)
{
	int rc;

	damage(s, STORE_DAMAGE_SNAPSHOT, name, 0, firsts[from],
	       s->snap_index + 1, log_end(s, firsts[n - 1]));
	if (!s->cfg || s->cfg->accept_cut != s->snap_index + 1)
		return -EUCLEAN;
	rc = set_aside(s, firsts, from, n);
	if (rc == 0)
		rc = fsync_dir(s);
	if (rc < 0)
		return rc;
	say(rep, "cut as accepted: segments from %s renamed lost-log-..., "
	    "entries after %" PRIu64 " lost", name, s->snap_index);
	return 0;
}

static int recover(struct store *s, char *msg, size_t msg_size)
{
	struct rec_report rep = { .msg = msg, .msg_size = msg_size };
	uint64_t *firsts = NULL;
	char name[32];
	int n, rc = 0, i, start = 0;

	s->base = s->snap_index;
	s->first_loaded = s->snap_index + 1;
	n = list_names(s, "log-", &firsts);
	if (n <= 0)
		return n;
	/* Replay from the newest segment that holds snap_index + 1 (or
	 * starts right after it); the ones before hold only what the
	 * snapshot covers, so they are not even read. */
	while (start + 1 < n && firsts[start + 1] <= s->snap_index + 1)
		start++;
	if (firsts[0] == 0) {
		/* Indexes start at 1: no writer of ours made this. */
		say(&rep, "log-%016" PRIx64 ": a segment named for index 0",
		    firsts[0]);
		damage(s, STORE_DAMAGE_LOG, "log-0000000000000000", 0, 0, 0, 0);
		rc = -EUCLEAN;
		goto free_firsts;
	}
	if (firsts[start] > s->snap_index + 1) {
		/* A missing first segment is not ours to paper over. */
		seg_name(name, sizeof(name), firsts[0]);
		if (!s->snap_index)
			say(&rep, "%s: the log starts at index %" PRIu64
			    ", not 1", name, firsts[0]);
		else
			say(&rep, "%s: the log starts at index %" PRIu64
			    ", leaving a gap after snapshot snap-%016" PRIx64
			    " (index %" PRIu64 ")", name, firsts[0],
			    s->snap_index, s->snap_index);
		rc = snapshot_gap(s, &rep, firsts, start, n, name);
		if (rc < 0)
			goto free_firsts;
		n = start;
		goto loaded;
	}
	for (i = 0; i < start; i++) {
		rc = push_seg(s, firsts[i], 0);
		if (rc < 0)
			goto free_firsts;
	}
	s->nobs = (size_t)start;
	s->obs_last = s->snap_index;
	s->base = firsts[start] - 1;
	for (i = start; i < n; i++) {
		uint64_t want = s->base + s->npos + 1;

		seg_name(name, sizeof(name), firsts[i]);
		if (firsts[i] != want && want <= s->snap_index) {
			/* The log ends inside the snapshot and resumes past
			 * its end: entries nobody can rebuild are missing. */
			say(&rep, "%s: the log stops at index %" PRIu64
			    " and resumes at %" PRIu64 ", leaving a gap after "
			    "snapshot snap-%016" PRIx64 " (index %" PRIu64 ")",
			    name, want - 1, firsts[i], s->snap_index,
			    s->snap_index);
			rc = snapshot_gap(s, &rep, firsts, i, n, name);
			if (rc < 0)
				goto free_firsts;
			break;
		}
		if (firsts[i] != want) {
			/* A segment is rolled only after the one before was
			 * synced whole, so no crash leaves a gap: one was
			 * deleted, or the one before was cut short. */
			char prev[32];
			uint64_t to = log_end(s, firsts[n - 1]);

			seg_name(prev, sizeof(prev), firsts[i - 1]);
			if (to < firsts[i] - 1)
				to = firsts[i] - 1;
			damage(s, STORE_DAMAGE_LOG, prev, s->segs[s->nsegs - 1].size,
			       want, want, to);
			if (s->cfg && s->cfg->accept_cut == want) {
				rc = set_aside(s, firsts, i, n);
				if (rc == 0)
					rc = fsync_dir(s);
				if (rc < 0)
					goto free_firsts;
				say(&rep, "%s offset %" PRIu64 ": the log ends at "
				    "index %" PRIu64 " and %s starts at %" PRIu64
				    ": cut as accepted, entries %" PRIu64 " to %"
				    PRIu64 " lost (later segments renamed "
				    "lost-log-...)", prev,
				    s->segs[s->nsegs - 1].size, want - 1, name,
				    firsts[i], want, to);
				break;
			}
			say(&rep, "%s offset %" PRIu64 ": the log ends at index %"
			    PRIu64 " but the next segment %s starts at %" PRIu64
			    ": a segment is missing or %s was cut short; cutting "
			    "here would lose entries %" PRIu64 " to %" PRIu64,
			    prev, s->segs[s->nsegs - 1].size, want - 1, name,
			    firsts[i], prev, want, to);
			rc = -EUCLEAN;
			goto free_firsts;
		}
		rc = load_segment(s, firsts, i, n, &rep);
		if (rc < 0)
			goto free_firsts;
		if (rc == 0)
			break;
	}
loaded:
	if (rep.skipped)
		say(&rep, "%s%s", rep.skip, rep.skipped > 1 ?
		    " (and more damaged records the snapshot covers)" : "");
	rc = finish_install(s, firsts, start, msg, msg_size);
	if (rc < 0)
		goto free_firsts;
	log_behind_snapshot(s);
free_firsts:
	free(firsts);
	return rc;
}

/* Reopens the tail for appending, unless it is an obsolete segment (then
 * the next append rolls a new one). */
static int open_tail(struct store *s)
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

/* A missing state file in a directory with no log and no snapshot is a
 * fresh store: its first state file is written now, so that from here on
 * a missing one always means damage.  Beside a log or a snapshot, a
 * missing or damaged one is refused before anything is changed, unless
 * the admin accepted rebuilding it (rebuild_state(), after recovery). */
static int check_state(struct store *s, char *msg, size_t msg_size)
{
	uint64_t *v = NULL;
	int nl, ns;

	if (!s->state_why[0])
		return 0;
	nl = list_names(s, "log-", &v);
	free(v);
	v = NULL;
	if (nl < 0)
		return nl;
	ns = list_names(s, "snap-", &v);
	free(v);
	if (ns < 0)
		return ns;
	if (nl == 0 && ns == 0 && strcmp(s->state_why, "missing") == 0 &&
	    !s->cfg->existing) {
		int rc;

		s->state_why[0] = '\0';
		rc = write_state(s);
		return rc < 0 ? rc : fsync_dir(s);
	}
	if (s->cfg->accept_state)
		return 0;
	if (msg && nl == 0 && ns == 0)
		snprintf(msg, msg_size, "state: the hard state file is %s, and so "
			 "are every log segment and snapshot, in a directory that "
			 "was used before", s->state_why);
	else if (msg)
		snprintf(msg, msg_size, "state: the hard state file is %s beside "
			 "%d log segment%s and %d snapshot%s: the term, the vote "
			 "and the index floor are lost", s->state_why, nl,
			 nl == 1 ? "" : "s", ns, ns == 1 ? "" : "s");
	damage(s, STORE_DAMAGE_STATE, STATE_NAME, 0, 0, 0, 0);
	return -EUCLEAN;
}

/* Rebuilds the state file the admin accepted losing: the term of the
 * last entry (nobody can have seen a later one from us... except votes,
 * which is why a voter of a cluster must not do this), no vote, and a
 * floor above the log, as after a sync of all of it. */
static int rebuild_state(struct store *s, char *msg, size_t msg_size)
{
	size_t used = msg ? strlen(msg) : 0;
	int rc;

	s->term = store_last_term(s);
	s->vote = 0;
	s->mark = 0;
	s->floor = 0;
	reserve_floor(s, store_last_index(s));
	rc = write_state(s);
	if (rc == 0)
		rc = fsync_dir(s);
	if (rc < 0)
		return rc;
	if (msg)
		snprintf(msg + used, msg_size - used, "%sstate: the hard state "
			 "file was %s; rebuilt as accepted: term %" PRIu64
			 ", no vote, index floor %" PRIu64, used ? "; " : "",
			 s->state_why, s->term, s->floor);
	s->state_why[0] = '\0';
	return 0;
}

/* Puts the snapshot note in front of the log recovery message. */
static void add_note(char *msg, size_t msg_size, const char *note)
{
	char rest[STORE_MSG_MAX];

	if (!msg || !note[0])
		return;
	snprintf(rest, sizeof(rest), "%s", msg);
	snprintf(msg, msg_size, "%s%s%s", note, rest[0] ? "; " : "", rest);
}

/* Opens the store in cfg->dir and recovers it; see store.h. */
int store_open(const struct store_config *cfg, struct store **out,
	       char *msg, size_t msg_size)
{
	struct store *s;
	char note[STORE_MSG_MAX];
	int rc;

	if (msg && msg_size)
		msg[0] = '\0';
	else
		msg = NULL;
	if (!cfg || !cfg->dir || !out)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->tailfd = -1;
	s->dirfd = -1;
	s->seg_bytes = cfg->segment_bytes ? cfg->segment_bytes
					  : STORE_SEGMENT_BYTES;
	s->floor_step = cfg->floor_step ? cfg->floor_step : STORE_FLOOR_STEP;
	s->cfg = cfg;
	if (cfg->damage)
		memset(cfg->damage, 0, sizeof(*cfg->damage));
	if (mkdir(cfg->dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		goto free_store;
	}
	s->dirfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		rc = -errno;
		goto free_store;
	}
	/* Two daemons on one data dir would interleave their logs. */
	if (flock(s->dirfd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto close_dir;
	}
	/* A .tmp file is a write that never got renamed: never ours. */
	if ((unlinkat(s->dirfd, STATE_TMP, 0) < 0 && errno != ENOENT) ||
	    (unlinkat(s->dirfd, SNAP_TMP, 0) < 0 && errno != ENOENT)) {
		rc = -errno;
		goto close_dir;
	}
	rc = load_state(s);
	if (rc < 0)
		goto close_dir;
	rc = check_state(s, msg, msg_size);
	if (rc < 0)
		goto close_dir;
	rc = load_snapshots(s, note, sizeof(note));
	if (rc < 0)
		goto close_dir;
	rc = recover(s, msg, msg_size);
	add_note(msg, msg_size, note);
	if (rc == -EUCLEAN && note[0] && s->cfg->damage &&
	    s->cfg->damage->kind == STORE_DAMAGE_SNAPSHOT)
		snprintf(s->cfg->damage->file, sizeof(s->cfg->damage->file),
			 "%.*s", 21, note);  /* the corrupt snap-... */
	if (rc < 0)
		goto close_dir;
	if (s->state_why[0]) {
		rc = rebuild_state(s, msg, msg_size);
		if (rc < 0)
			goto close_dir;
	}
	if (store_last_index(s) > s->floor) {
		/* Synced records above the floor: a crash (or a state write
		 * refused for space) came between their sync and the state
		 * write.  Every loaded record counts as synced from here on,
		 * so the floor goes above them first, durably. */
		reserve_floor(s, store_last_index(s));
		rc = write_state(s);
		if (rc == 0)
			rc = fsync_dir(s);
		if (rc < 0)
			goto close_dir;
	}
	rc = open_tail(s);
	if (rc < 0)
		goto close_dir;
	s->synced = store_last_index(s);
	s->cfg = NULL;
	*out = s;
	return 0;

close_dir:
	close(s->dirfd);
	s->dirfd = -1;
free_store:
	store_close(s);
	return rc;
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

static int flush(struct store *s)
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

/* Counters; see store.h. */
void store_stats(const struct store *s, struct store_stats *st)
{
	*st = s->st;
	st->segments = s->nsegs;
}
