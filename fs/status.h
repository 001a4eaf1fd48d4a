/*
 * fs/status.h - the generated files of cluckfs (status, status.json,
 * metrics) and the counters/histograms behind metrics.
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
 * characters are escaped, valid UTF-8 is copied, every byte of an invalid
 * UTF-8 sequence becomes \u00XX. */
void sbuf_json_str(struct sbuf *b, const char *s, size_t len);
/* Appends bytes for a one-line text field: control bytes become \xHH and
 * a backslash becomes "\\", so a path can never break a line. */
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
};

/* ---- rendering ---------------------------------------------------------- */

/*
 * Renders the generated file with inode number `ino` (LC_INO_STATUS,
 * LC_INO_STATUS_JSON or LC_INO_METRICS) into a malloc'ed buffer: *out
 * (caller frees with free()) and *len.  Returns 0, -ENOENT for another
 * inode, or -ENOMEM.
 */
int status_render(uint64_t ino, const struct node *n,
		  const struct fs_metrics *m, char **out, size_t *len);

/* "ex", "sh" or "free" for an lc_lock_type. */
const char *status_mode_name(uint8_t type);

#endif /* CLUCK_FS_STATUS_H */
