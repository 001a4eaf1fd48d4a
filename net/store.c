/*
 * net/store.c - the durable Raft log store: hard state file, segmented
 * append-only log with CRC32C on every record, group commit, recovery.
 * The format and the contract are in net/store.h.
 *
 * It must never report an index as synced before an fsync covering it
 * returned, never retry or continue after a failed write or fsync (the
 * store becomes dead and returns -EIO), never trust a record whose length,
 * crc, index or term does not check out, and never delete anything during
 * recovery except the corrupt tail it reports in the message.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/store.h"

#define STATE_NAME    "state"
#define STATE_TMP     "state.tmp"
#define STATE_MAGIC   0x534b4c43u      /* "CLKS" little endian */
#define STATE_VERSION 1u
#define STATE_BYTES   28u
#define WBUF_FLUSH    (1u << 20)       /* write out pending bytes beyond */

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
	struct pos *pos;               /* pos[i] describes index i + 1 */
	uint64_t npos, cappos;
	int tailfd;                    /* segs[nsegs - 1], or -1 */
	uint8_t *wbuf;                 /* records not yet written to tailfd */
	size_t wlen, wcap;
	bool tail_dirty, dir_dirty, hs_pending, failed;
	uint64_t term, vote, synced;
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

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void seg_name(char *buf, size_t size, uint64_t first)
{
	snprintf(buf, size, "log-%016" PRIx64, first);
}

/* Parses "log-<16 hex>"; false for any other name. */
static bool parse_seg_name(const char *name, uint64_t *first)
{
	uint64_t v = 0;

	if (strncmp(name, "log-", 4) != 0 || strlen(name) != 20)
		return false;
	for (const char *c = name + 4; *c; c++) {
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

/* ---- hard state -------------------------------------------------------- */

static int load_state(struct store *s, char *msg, size_t msg_size)
{
	uint8_t b[STATE_BYTES + 1];
	ssize_t n;
	int fd = openat(s->dirfd, STATE_NAME, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, b, sizeof(b));
	close(fd);
	if (n < 0)
		return -errno;
	/* The file is replaced by rename, so it is never torn: anything
	 * wrong here is real corruption and we refuse to guess a vote. */
	if (n != STATE_BYTES || get32(b) != STATE_MAGIC ||
	    get32(b + 4) != STATE_VERSION ||
	    get32(b + 24) != store_crc32c(0, b, 24)) {
		if (msg)
			snprintf(msg, msg_size,
				 "state: corrupt hard state file (%zd bytes)", n);
		return -EUCLEAN;
	}
	s->term = get64(b + 8);
	s->vote = get64(b + 16);
	return 0;
}

static int write_state(struct store *s)
{
	uint8_t b[STATE_BYTES];
	int fd, rc;

	put32(b, STATE_MAGIC);
	put32(b + 4, STATE_VERSION);
	put64(b + 8, s->term);
	put64(b + 16, s->vote);
	put32(b + 24, store_crc32c(0, b, 24));
	fd = openat(s->dirfd, STATE_TMP,
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(s, -errno);
	rc = write_all(fd, b, sizeof(b), 0);
	if (rc < 0)
		goto close_fd;
	s->st.fsyncs++;
	if (fsync(fd) < 0) {
		rc = -errno;
		goto close_fd;
	}
	close(fd);
	if (renameat(s->dirfd, STATE_TMP, s->dirfd, STATE_NAME) < 0)
		return fail(s, -errno);
	s->dir_dirty = true;           /* the rename is durable with the dir */
	s->hs_pending = false;
	return 0;

close_fd:
	close(fd);
	return fail(s, rc);
}

/* ---- recovery ---------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Lists segment first indexes, sorted.  Returns the count or -errno. */
static int list_segments(struct store *s, uint64_t **out)
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
		close(fd);
		return -errno;
	}
	while ((e = readdir(d))) {
		if (!parse_seg_name(e->d_name, &first))
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
	len = get32(b);
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
	if (get32(b + 4) != store_crc32c(0, b + 8, len)) {
		snprintf(why, why_size, "crc mismatch");
		return why;
	}
	if (get64(b + 8) != want) {
		snprintf(why, why_size, "index %" PRIu64 ", expected %" PRIu64,
			 get64(b + 8), want);
		return why;
	}
	if (get64(b + 16) < prev_term) {
		snprintf(why, why_size, "term %" PRIu64 " below previous %"
			 PRIu64, get64(b + 16), prev_term);
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
	s->loaded[s->nloaded].term = get64(rec + 16);
	s->loaded[s->nloaded].type = rec[24];
	s->loaded[s->nloaded].len = get32(rec) - (STORE_REC_HDR - 8);
	s->loaded[s->nloaded].buf = rec + STORE_REC_HDR;
	s->nloaded++;
	return 0;
}

/*
 * Loads segment `first`.  Returns 1 when it is clean, 0 when recovery
 * stopped in it (it was truncated at the bad record and `why`/`*cut`
 * say where), or -errno.
 */
static int load_segment(struct store *s, uint64_t first, char *why,
			size_t why_size, uint64_t *bad_off, uint64_t *cut)
{
	char name[32];
	uint8_t *b = NULL, **na;
	size_t len = 0, off = 0;
	int fd, rc;
	bool clean = true;

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

		if (check_record(b + off, len - off, s->npos + 1, prev, why,
				 why_size)) {
			clean = false;
			break;
		}
		rc = push_pos(s, off, get64(b + off + 16));
		if (rc == 0)
			rc = push_loaded(s, b + off);
		if (rc < 0)
			goto close_fd;
		off += 8 + get32(b + off);
	}
	if (!clean) {
		/* Cut the bad tail durably before anyone appends after it. */
		*bad_off = off;
		*cut = len - off;
		s->st.fsyncs++;
		if (ftruncate(fd, (off_t)off) < 0 || fsync(fd) < 0) {
			rc = -errno;
			goto close_fd;
		}
	}
	rc = push_seg(s, first, off);
	if (rc == 0)
		rc = clean;
close_fd:
	close(fd);
	return rc;
}

static int recover(struct store *s, char *msg, size_t msg_size)
{
	uint64_t *firsts = NULL, bad_off = 0, cut = 0;
	char why[128] = "", name[32];
	int n, rc = 0, i, stop = -1, removed = 0;

	n = list_segments(s, &firsts);
	if (n < 0)
		return n;
	if (n > 0 && firsts[0] != 1) {
		/* TODO snapshots: until then a log must start at 1, and a
		 * missing first segment is not ours to paper over. */
		if (msg)
			snprintf(msg, msg_size, "log-%016" PRIx64 ": the log "
				 "starts at index %" PRIu64 ", not 1",
				 firsts[0], firsts[0]);
		rc = -EUCLEAN;
		goto free_firsts;
	}
	for (i = 0; i < n && stop < 0; i++) {
		if (firsts[i] != s->npos + 1) {
			snprintf(why, sizeof(why), "segment starts at index %"
				 PRIu64 ", expected %" PRIu64, firsts[i],
				 s->npos + 1);
			stop = i;
			bad_off = 0;
			break;
		}
		rc = load_segment(s, firsts[i], why, sizeof(why), &bad_off,
				  &cut);
		if (rc < 0)
			goto free_firsts;
		if (rc == 0)
			stop = i;
	}
	rc = 0;
	if (stop < 0)
		goto free_firsts;
	/* Everything after the bad record goes: a later segment cannot be
	 * contiguous with a log that stopped early. */
	for (int j = (int)s->nsegs; j < n; j++) {
		seg_name(name, sizeof(name), firsts[j]);
		if (unlinkat(s->dirfd, name, 0) < 0) {
			rc = -errno;
			goto free_firsts;
		}
		removed++;
	}
	if (removed) {
		rc = fsync_dir(s);
		if (rc < 0)
			goto free_firsts;
	}
	if (msg)
		snprintf(msg, msg_size, "log-%016" PRIx64 " offset %" PRIu64
			 ": recovery stopped at index %" PRIu64 ": %s; cut %"
			 PRIu64 " bytes and %d later segment%s",
			 firsts[stop], bad_off, s->npos + 1, why, cut,
			 removed, removed == 1 ? "" : "s");
free_firsts:
	free(firsts);
	return rc;
}

static int open_tail(struct store *s)
{
	char name[32];

	if (s->tailfd >= 0)
		close(s->tailfd);
	s->tailfd = -1;
	if (!s->nsegs)
		return 0;
	seg_name(name, sizeof(name), s->segs[s->nsegs - 1].first);
	s->tailfd = openat(s->dirfd, name, O_WRONLY | O_CLOEXEC);
	return s->tailfd < 0 ? -errno : 0;
}

/* Opens the store in cfg->dir and recovers it; see store.h. */
int store_open(const struct store_config *cfg, struct store **out,
	       char *msg, size_t msg_size)
{
	struct store *s;
	int rc;

	if (msg && msg_size)
		msg[0] = '\0';
	if (!cfg || !cfg->dir || !out)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->tailfd = -1;
	s->dirfd = -1;
	s->seg_bytes = cfg->segment_bytes ? cfg->segment_bytes
					  : STORE_SEGMENT_BYTES;
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
	if (unlinkat(s->dirfd, STATE_TMP, 0) < 0 && errno != ENOENT) {
		rc = -errno;
		goto close_dir;
	}
	rc = load_state(s, msg, msg_size);
	if (rc < 0)
		goto close_dir;
	rc = recover(s, msg, msg_size);
	if (rc < 0)
		goto close_dir;
	rc = open_tail(s);
	if (rc < 0)
		goto close_dir;
	s->synced = s->npos;
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
	if (s->tailfd >= 0)
		close(s->tailfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->segs);
	free(s->pos);
	free(s->wbuf);
	free(s);
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

/* Index of the last record; see store.h. */
uint64_t store_last_index(const struct store *s)
{
	return s->npos;
}

/* Term of the last record; see store.h. */
uint64_t store_last_term(const struct store *s)
{
	return s->npos ? s->pos[s->npos - 1].term : 0;
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
		return fail(s, rc);
	s->wlen = 0;
	return 0;
}

static int new_segment(struct store *s, uint64_t first)
{
	char name[32];
	int rc;

	if (s->tailfd >= 0) {
		/* The old tail is closed now, so sync it now: store_sync()
		 * only syncs the current tail. */
		rc = flush(s);
		if (rc < 0)
			return rc;
		if (s->tail_dirty) {
			s->st.fdatasyncs++;
			if (fdatasync(s->tailfd) < 0)
				return fail(s, -errno);
		}
		close(s->tailfd);
		s->tailfd = -1;
	}
	seg_name(name, sizeof(name), first);
	s->tailfd = openat(s->dirfd, name,
			   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (s->tailfd < 0)
		return fail(s, -errno);
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
	if (index != s->npos + 1 || term < store_last_term(s))
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
		if (rc < 0)
			return rc;
	}
	if (s->wlen + rec > WBUF_FLUSH) {
		rc = flush(s);
		if (rc < 0)
			return rc;
	}
	tail = &s->segs[s->nsegs - 1];
	p = s->wbuf + s->wlen;
	put32(p, (uint32_t)(rec - 8));
	put64(p + 8, index);
	put64(p + 16, term);
	p[24] = type;
	if (len)
		memcpy(p + STORE_REC_HDR, buf, len);
	put32(p + 4, store_crc32c(0, p + 8, rec - 8));
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
	if (index == 0)
		return -EINVAL;
	if (index > s->npos)
		return 0;
	rc = flush(s);
	if (rc < 0)
		return rc;
	for (k = s->nsegs; k > 0 && s->segs[k - 1].first > index; k--)
		;
	k--;                           /* segs[k] holds index */
	off = s->pos[index - 1].off;
	while (s->nsegs > k + (off > 0)) {
		struct seg *g = &s->segs[s->nsegs - 1];

		seg_name(name, sizeof(name), g->first);
		if (unlinkat(s->dirfd, name, 0) < 0)
			return fail(s, -errno);
		s->nsegs--;
		s->dir_dirty = true;
	}
	s->st.segments = s->nsegs;
	if (off > 0) {
		int fd;

		seg_name(name, sizeof(name), s->segs[k].first);
		fd = openat(s->dirfd, name, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return fail(s, -errno);
		if (ftruncate(fd, (off_t)off) < 0) {
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
	s->npos = index - 1;
	if (s->synced > s->npos)
		s->synced = s->npos;
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
	s->synced = s->npos;
	return (int64_t)s->synced;
}

/* Counters; see store.h. */
void store_stats(const struct store *s, struct store_stats *st)
{
	*st = s->st;
	st->segments = s->nsegs;
}
