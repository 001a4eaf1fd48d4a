/*
 * net/store_recover.c - opening the store: the state file checked, the
 * snapshots and the log segments read back, a torn tail told from damage
 * and cut, damage refused with a message and cfg->damage (file, offset,
 * index, the entries a cut would lose), a loss or a state file the admin
 * accepted (--accept-loss, --accept-state), and an interrupted snapshot
 * install finished.  See net/store.h for the contract, net/store_i.h for
 * the parts.
 *
 * It must never trust a record whose length, crc, index or term does not
 * check out, never cut anything but a torn tail (the last segment's
 * unsynced end) or a loss the admin accepted (and then only after the
 * damaged segment is saved as lost-... and later ones are renamed aside),
 * never delete anything it does not report, never guess a term or a vote
 * from a damaged state file unless the admin accepted rebuilding it, and
 * never report an index synced before the index floor is above it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/store_i.h"
#include "lockcore/le.h"

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
