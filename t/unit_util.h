/*
 * t/unit_util.h - a tiny fixture for the lockcore unit tests.
 *
 * A fixture is one lc_state, a current session, a clock and the
 * completions of the last command.  Helpers build one command each, apply
 * it at the next log index with the next serial of the issuing session and
 * return the command's own status, so a test reads like the syscalls it
 * models: ex(f, ino, owner) == 0, wait_ex(...) == LC_PENDING ...
 *
 * It must never look inside struct lc_state: everything it reports comes
 * from the public API in lockcore/lc.h (completions and queries).
 */
#ifndef CLUCK_T_UNIT_UTIL_H
#define CLUCK_T_UNIT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lockcore/lc.h"

#define FX_MAX_SESSIONS 16

struct fx {
	struct lc_state *s;
	struct lc_out out;             /* completions of the last command */
	uint64_t index;                /* last log index applied */
	uint64_t now;                  /* time_ns of the next command */
	uint64_t cur;                  /* session issuing the next commands */
	uint64_t last_serial;          /* serial of the last command */
	uint64_t last_origin;
	int last_rc;                   /* lc_apply()'s own return */
	struct { uint64_t id, serial; } ser[FX_MAX_SESSIONS];
};

/* A new state with session 1 open and current, time 1 s.  NULL on ENOMEM. */
struct fx *fx_new(void);
void fx_free(struct fx *f);

/* Next serial for `origin` (unique and increasing per origin). */
uint64_t fx_next_serial(struct fx *f, uint64_t origin);

/*
 * Applies `c` at the next index and f->now.  origin 0 in `c` means the
 * current session, UINT64_MAX means a leader-made command (origin 0);
 * serial 0 means the next serial of that origin.  Returns the status of
 * the command's own (first) completion, or lc_apply()'s error when it
 * emitted none.
 */
int fx_apply(struct fx *f, struct lc_cmd *c);
/* Re-applies exactly (origin, serial) of `c` at a new index. */
int fx_reapply(struct fx *f, const struct lc_cmd *c);

/* Opens / closes session `sid` (closing as the leader, origin 0). */
int fx_open(struct fx *f, uint64_t sid);
int fx_close(struct fx *f, uint64_t sid);
int fx_tick(struct fx *f);

/* Completions of the last command. */
size_t fx_ncomp(const struct fx *f);
const struct lc_completion *fx_comp(const struct fx *f, size_t i);
/* The completion for (origin, serial) in the last command's output. */
const struct lc_completion *fx_find(const struct fx *f, uint64_t origin,
				    uint64_t serial);
/* True when the last command completed (origin, serial) with `status`. */
bool fx_has(const struct fx *f, uint64_t origin, uint64_t serial, int status);

/* ---- namespace ---------------------------------------------------------- */
/* These return the new inode number (> 0) or a negative errno. */
int64_t mkfile(struct fx *f, uint64_t parent, const char *name);
int64_t mkfile_excl(struct fx *f, uint64_t parent, const char *name,
		    uint32_t ttl_s);
int64_t mkdir_(struct fx *f, uint64_t parent, const char *name);
int64_t symlink_(struct fx *f, uint64_t parent, const char *name,
		 const char *target);
int link_(struct fx *f, uint64_t ino, uint64_t parent, const char *name);
int unlink_(struct fx *f, uint64_t parent, const char *name);
int rmdir_(struct fx *f, uint64_t parent, const char *name);
int rename_(struct fx *f, uint64_t p1, const char *n1, uint64_t p2,
	    const char *n2, uint32_t flags);
int write_(struct fx *f, uint64_t ino, uint64_t off, const void *data,
	   uint32_t len);
int truncate_(struct fx *f, uint64_t ino, uint64_t size);
int touch_(struct fx *f, uint64_t ino, int64_t t_ns);
int setxattr_(struct fx *f, uint64_t ino, const char *name, const void *v,
	      uint32_t len, uint32_t flags);
int setslots(struct fx *f, uint64_t ino, const char *n);
int removexattr_(struct fx *f, uint64_t ino, const char *name);
/* Inode of `name` in `parent`, or a negative errno. */
int64_t lookup_(const struct fx *f, uint64_t parent, const char *name);

/* ---- locks (issued by f->cur, pid = owner) ----------------------------- */
int flk(struct fx *f, uint64_t ino, uint64_t owner, uint8_t type,
	uint32_t flags);
int ex(struct fx *f, uint64_t ino, uint64_t owner);
int sh(struct fx *f, uint64_t ino, uint64_t owner);
int un(struct fx *f, uint64_t ino, uint64_t owner);
int wait_ex(struct fx *f, uint64_t ino, uint64_t owner);
int wait_sh(struct fx *f, uint64_t ino, uint64_t owner);
int release(struct fx *f, uint64_t ino, uint64_t owner);
int setlk(struct fx *f, uint64_t ino, uint64_t owner, uint8_t type,
	  uint64_t start, uint64_t end, uint32_t flags);
int flush_(struct fx *f, uint64_t ino, uint64_t owner);
int cancel(struct fx *f, uint64_t target_serial);

/* ---- lock queries ------------------------------------------------------- */
uint32_t nholders(const struct fx *f, uint64_t ino);
uint32_t nwaiters(const struct fx *f, uint64_t ino);
/* Flock type (LC_RDLCK/LC_WRLCK) that (session, owner) holds, else 0. */
int holds(const struct fx *f, uint64_t ino, uint64_t session, uint64_t owner);
/* The POSIX ranges (session, owner) holds, sorted: "0-39W,60-99W"
 * ("" for none; "E" for the end LC_OFF_MAX).  Static buffer. */
const char *ranges(const struct fx *f, uint64_t ino, uint64_t session,
		   uint64_t owner);
/* Token of the holder (session, owner) on ino (flock), 0 when not one. */
uint64_t holder_token(const struct fx *f, uint64_t ino, uint64_t session,
		      uint64_t owner);

/* Names in directory `dir` joined with ',' in cookie order; static buf. */
const char *listing(const struct fx *f, uint64_t dir);

/* Deterministic PRNG (xorshift64*) for randomized tests. */
uint64_t prng(uint64_t *state);

#endif /* CLUCK_T_UNIT_UTIL_H */
