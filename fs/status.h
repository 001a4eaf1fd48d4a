/*
 * fs/status.h - the generated files of cluckfs (status, status.json,
 * metrics: rendered by status.c), the counters/histograms behind metrics
 * (status.c), the table of lost holds they show (lost.c), and the string
 * buffer they are written into (sbuf.c).  The renderers' contract: it
 * knows nothing of struct fs or FUSE (fs/fs_i.h is the rest of fs/).
 *
 * Rendering reads the local replica (node_state) and the node's status
 * only; it allocates the whole document at once so one open of a status
 * file sees one consistent snapshot (notes/fuse-locks.md section 3).
 *
 * It must never: block, propose commands, touch the mount, or keep
 * pointers into the lockcore state past one call (they die at the next
 * lc_apply).
 */
#ifndef CLUCK_FS_STATUS_H
#define CLUCK_FS_STATUS_H

#include <stddef.h>
#include <stdint.h>

struct node;

/* ---- growable string buffer ------------------------------------------- */

/* A byte buffer that remembers allocation failure instead of failing each
 * append, so renderers can append freely and check once at the end. */
struct sbuf {
	char *p;
	size_t n, cap;
	int err;                     /* 0 or -ENOMEM */
};

/* Appends len bytes. */
void sbuf_add(struct sbuf *b, const void *data, size_t len);
/* Appends a formatted string (no NUL is counted in n). */
void sbuf_printf(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends bytes as the inside of a JSON string: '"', '\\' and control
 * characters are escaped, valid UTF-8 is copied, every byte HH that is
 * not part of valid UTF-8 becomes the lone surrogate \udcHH (Python's
 * "surrogateescape"), so any bytes give valid JSON and come back exactly
 * (cluckfs(5)). */
void sbuf_json_str(struct sbuf *b, const char *s, size_t len);
/* Appends bytes as one field of a text line, so a line always splits into
 * its fields one way (cluckfs(5)): a backslash becomes "\\\\"; control
 * bytes, space, DEL, Unicode white space and every byte that is not part
 * of valid UTF-8 become \xHH (each byte); the rest is copied. */
void sbuf_text_str(struct sbuf *b, const char *s, size_t len);
void sbuf_free(struct sbuf *b);

/* ---- metrics ------------------------------------------------------------ */

/* Buckets (upper bounds, seconds) from 50 us to 60 s, plus +Inf. */
#define FS_HIST_NB 19u

struct fs_hist {
	uint64_t bucket[FS_HIST_NB + 1];   /* not cumulative; last is +Inf */
	uint64_t count;
	uint64_t sum_ns;
};

/* Records one observation of `ns` nanoseconds. */
void fs_hist_observe(struct fs_hist *h, uint64_t ns);

/* What fs/ measures itself (lockcore counts the rest). */
struct fs_metrics {
	struct fs_hist acquire;            /* lock request arrival -> grant reply */
	/* arrival of the request of this node that freed the lock -> reply
	 * to the waiter it let in; grants caused by a lease expiry or by
	 * another node are not observed */
	struct fs_hist handoff;
	uint64_t parked;                   /* lock requests waiting right now */
	/* reads (lookup, getattr, readdir, ...): arrival -> their read
	 * barrier passed (about 0 alone or on a leader) */
	struct fs_hist read_wait;
	/* reads answered from the replica as it was, without a barrier:
	 * the barrier timed out, the caller was interrupted, our session was
	 * out of contact (jeopardy), or no memory / node stopped */
	uint64_t stale_timeout, stale_intr, stale_contact, stale_error;
};

/* ---- lost holds (SPEC 3) --------------------------------------------------- */

/*
 * The holds this node had when its session's lease ran out: their lock
 * operations fail with ENOLCK until the owner unlocks or closes, and status
 * lists them.  A hash on (ino, owner) for the per-operation check, plus a
 * list in loss order for status.  Bounded: beyond FS_LOST_MAX holds only
 * `dropped` counts (those owners are then not refused).
 */
#define FS_LOST_MAX 65536u

struct fs_lost_hold {
	struct fs_lost_hold *hnext;        /* hash chain */
	struct fs_lost_hold *prev, *next;  /* loss order */
	uint64_t ino, owner;
	uint32_t pid;
	uint8_t mode;                      /* LC_RDLCK or LC_WRLCK */
	uint8_t posix;                     /* 0 flock, 1 POSIX range */
	uint64_t token;
	uint64_t since_ms, lost_at_ms;     /* UNIX ms */
	uint64_t session;                  /* the session that lost it */
	uint8_t released;                  /* unlocked or closed since: no longer
	                                      refused, still shown until the
	                                      cluster frees the session */
	char *path;                        /* at loss time ("?" when unknown) */
};

struct fs_lost {
	struct fs_lost_hold **tab;
	size_t cap;                        /* power of two, or 0 */
	size_t n;                          /* holds remembered */
	uint64_t dropped;                  /* holds not remembered (table full) */
	struct fs_lost_hold *head, *tail;
};

/* Remembers one lost hold (path copied).  0, -ENOSPC (full: counted in
 * dropped) or -ENOMEM (also counted). */
int fs_lost_add(struct fs_lost *t, const struct fs_lost_hold *h, const char *path);
/* 1 when some hold of (ino, owner) is remembered and not released. */
int fs_lost_has(const struct fs_lost *t, uint64_t ino, uint64_t owner);
/* Marks every hold of (ino, owner) released (its owner unlocked or closed
 * it); returns how many.  They stay listed until fs_lost_purge. */
size_t fs_lost_del(struct fs_lost *t, uint64_t ino, uint64_t owner);
/* Forgets the released holds whose session the cluster has freed (it is
 * no longer in `s`): until then status shows the lock as lost, not free. */
struct lc_state;
void fs_lost_purge(struct fs_lost *t, const struct lc_state *s);
/* Holds still refused (not released). */
size_t fs_lost_refused(const struct fs_lost *t);
/* Forgets everything (the struct can be reused). */
void fs_lost_free(struct fs_lost *t);

/* ---- rendering ---------------------------------------------------------- */

/* The process that opens a generated file (its fsuid, fsgid and
 * supplementary groups): status shows it only the locks it could look up
 * itself, those whose every directory it may search (cluckfs(5)). */
struct status_reader {
	uint32_t uid, gid;
	const uint32_t *groups;            /* supplementary groups, may be NULL */
	size_t ngroups;
};

/*
 * Renders the generated file with inode number `ino` (LC_INO_STATUS,
 * LC_INO_STATUS_JSON or LC_INO_METRICS) into a malloc'ed buffer: *out
 * (caller frees with free()) and *len.  `lost` may be NULL (none).
 * `reader` may be NULL: everything is shown, as to root.
 * Returns 0, -ENOENT for another inode, or -ENOMEM.
 */
int status_render(uint64_t ino, const struct node *n,
		  const struct fs_metrics *m, const struct fs_lost *lost,
		  const struct status_reader *reader, char **out, size_t *len);

/* "ex", "sh" or "free" for an lc_lock_type. */
const char *status_mode_name(uint8_t type);

/* Where status shows the lock of `ino`, in *buf (size *cap; grown with
 * realloc as needed, the caller frees it): the file's path (its first
 * name) with *deleted 0; for a file whose last name was removed while it
 * lives on, the path of that former name ("?/NAME" when its directory is
 * gone too) with *deleted 1.  0, -ENOENT (neither is known), -ENOMEM. */
int status_lock_path(const struct lc_state *s, uint64_t ino, char **buf,
		     size_t *cap, int *deleted);

#endif /* CLUCK_FS_STATUS_H */
