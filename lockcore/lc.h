/*
 * lockcore/lc.h - the cluck lock state machine: public API.
 *
 * lockcore is a pure, deterministic module.  Its input is a sequence of
 * commands, each with a unique (origin, serial), the log index it was
 * committed at and the time the leader assigned to it; its output is the
 * result of each command plus the completions it causes for queued
 * waiters.  Applying the same command sequence gives the same state on
 * every node, byte for byte (lc_state_hash()).
 *
 * It must never: read a clock, do I/O, allocate threads, call rand(), or
 * include any OS header beyond the C standard library.  The caller passes
 * all time in.  `make check` greps for violations.
 *
 * Ownership: lc_state owns everything reachable from it.  Strings and
 * buffers passed in commands are copied; pointers returned by queries are
 * valid until the next lc_apply() or lc_state_free() on the same state.
 *
 * Errors are values: functions return 0 or a negative errno (from
 * <errno.h>, which is part of the C library and allowed here).
 */
#ifndef CLUCK_LC_H
#define CLUCK_LC_H

#include <stddef.h>
#include <stdint.h>

/* ---- limits (SPEC 2.1) ------------------------------------------------ */
#define LC_NAME_MAX      255u          /* bytes per path component */
#define LC_PATH_MAX      4096u         /* bytes per path, incl. symlink target */
#define LC_CONTENT_MAX   65536u        /* bytes of regular file content */
#define LC_XATTR_NAME_MAX 255u
#define LC_XATTR_VALUE_MAX 4096u       /* user xattr value size */
#define LC_XATTR_PER_INODE 32u         /* user xattrs per inode (not cluck ones) */

/* Fixed inode numbers.  Numbers below LC_INO_FIRST are reserved for the
 * root and for the virtual files the front end serves (status...). */
#define LC_INO_ROOT      1u
#define LC_INO_STATUS    2u
#define LC_INO_STATUS_JSON 3u
#define LC_INO_METRICS   4u
#define LC_INO_FIRST     16u           /* first inode number lockcore hands out */

/* Result code for a lock command that was queued: a later command will
 * complete it (grant, refusal, cancel).  Never returned for other commands. */
#define LC_PENDING       1

/* ---- identities --------------------------------------------------------- */

/* A lock owner.  `session` is the session of the node (or remote client)
 * that issued the request; `owner` is the kernel's lock_owner (flock: the
 * open file description; POSIX: the process's files_struct); `pid` is the
 * process id on that node, kept for display and F_GETLK only. */
struct lc_owner {
	uint64_t session;
	uint64_t owner;
	uint32_t pid;
};

/* ---- commands ---------------------------------------------------------- */

enum lc_cmd_type {
	LC_CMD_NOP = 0,
	/* sessions and time */
	LC_CMD_SESSION_OPEN,   /* session, name: node name (for status) */
	LC_CMD_SESSION_CLOSE,  /* session: end it now (clean shutdown or expiry):
	                          frees its locks and waiters, removes its
	                          ephemeral files */
	LC_CMD_TICK,           /* only carries time: expires lockfile ttls */
	/* namespace */
	LC_CMD_MKDIR,          /* parent, name, mode, uid, gid */
	LC_CMD_CREATE,         /* parent, name, mode, uid, gid, flags(LC_CREATE_*), ttl_s */
	LC_CMD_SYMLINK,        /* parent, name, data=target, uid, gid */
	LC_CMD_LINK,           /* ino (existing file), parent, name */
	LC_CMD_UNLINK,         /* parent, name */
	LC_CMD_RMDIR,          /* parent, name */
	LC_CMD_RENAME,         /* parent, name, parent2, name2, flags (RENAME_NOREPLACE=1,
	                          RENAME_EXCHANGE=2 as in <linux/fs.h>) */
	LC_CMD_SETATTR,        /* ino, valid(LC_SET_*), mode, uid, gid, size, atime, mtime */
	LC_CMD_WRITE,          /* ino, offset, data/len */
	LC_CMD_SETXATTR,       /* ino, name, data/len, flags (XATTR_CREATE=1, XATTR_REPLACE=2),
	                          uid: the caller's; user.cluck.ttl and
	                          user.cluck.slots need uid 0 or the file's
	                          owner (-EPERM) */
	LC_CMD_REMOVEXATTR,    /* ino, name, uid (as SETXATTR) */
	/* locks */
	LC_CMD_FLOCK,          /* ino, who, lock_type, flags(LC_LK_WAIT) */
	LC_CMD_SETLK,          /* ino, who, lock_type, start, end, flags(LC_LK_WAIT) */
	LC_CMD_RELEASE,        /* ino, who.owner, flags(LC_RELEASE_UNPIN): drop the
	                          flock lock of this open file description and its
	                          queued flock requests */
	LC_CMD_FLUSH,          /* ino, who.owner: drop every POSIX lock and queued
	                          POSIX request of this owner on this inode */
	LC_CMD_CANCEL,         /* target_serial: withdraw a queued request of the
	                          same session (interrupt); see lc_apply() */
	LC_CMD_OPEN,           /* ino (regular file): an open handle of the origin
	                          session pins the inode, so a file whose last
	                          name is removed lives on (nlink 0) while it is
	                          open anywhere, as on a local filesystem.  A pin
	                          goes with RELEASE + LC_RELEASE_UNPIN or with its
	                          session.  -ENOENT, -EINVAL (not a regular file) */
	LC_CMD__COUNT
};

enum lc_lock_type { LC_UNLCK = 0, LC_RDLCK = 1, LC_WRLCK = 2 };

/* LC_CMD_FLOCK / LC_CMD_SETLK flags */
#define LC_LK_WAIT       0x1u          /* block (queue) instead of -EAGAIN */

/* LC_CMD_CREATE flags */
#define LC_CREATE_EXCL   0x1u          /* O_EXCL: -EEXIST if the name exists, and
                                          the file is ephemeral (dies with the
                                          creating session, honours ttl) */
#define LC_CREATE_PIN    0x2u          /* the create opens the file: pin the
                                          inode it answers with (LC_CMD_OPEN) */

/* LC_CMD_RELEASE flags */
#define LC_RELEASE_UNPIN 0x1u          /* the handle is closed: also drop one pin
                                          of the session on the inode */

/* LC_CMD_SETATTR valid bits */
#define LC_SET_MODE      0x01u
#define LC_SET_UID       0x02u
#define LC_SET_GID       0x04u
#define LC_SET_SIZE      0x08u
#define LC_SET_ATIME     0x10u
#define LC_SET_MTIME     0x20u
/* A setattr that sets times refreshes an ephemeral file's ttl ("touch"). */

/* Offsets for POSIX ranges: end is inclusive, LC_OFF_MAX means "to EOF and
 * beyond" (l_len == 0). */
#define LC_OFF_MAX       UINT64_MAX

struct lc_cmd {
	uint8_t  type;                 /* enum lc_cmd_type */
	uint64_t origin;               /* issuing session; 0 for leader-made
	                                  commands (TICK, SESSION_CLOSE by expiry) */
	uint64_t serial;               /* unique per origin, increasing */
	uint64_t time_ns;              /* leader-assigned wall time, ns since epoch */

	uint64_t ino;                  /* target inode */
	uint64_t parent, parent2;      /* directories for name operations */
	const char *name;  uint32_t name_len;   /* not NUL-terminated necessarily */
	const char *name2; uint32_t name2_len;
	const void *data;  uint32_t data_len;   /* write data, symlink target, xattr value,
	                                           session name */
	uint64_t offset;               /* write offset */
	uint32_t mode, uid, gid;       /* mode includes S_IFMT bits for CREATE? no: only
	                                  permission bits 07777; type implied by cmd */
	uint32_t valid;                /* LC_SET_* */
	uint64_t size;
	int64_t  atime_ns, mtime_ns;   /* for SETATTR; ns since epoch */
	uint32_t flags;                /* per-command flags */
	uint32_t ttl_s;                /* CREATE: lockfile ttl (0 = none) */
	uint64_t session;              /* SESSION_OPEN / SESSION_CLOSE target */

	struct lc_owner who;           /* lock commands */
	uint8_t  lock_type;            /* enum lc_lock_type */
	uint64_t start, end;           /* SETLK range, inclusive */
	uint64_t target_serial;        /* CANCEL */
};

/* ---- completions -------------------------------------------------------- */

/* One answer to one request.  lc_apply() emits the command's own answer
 * first (unless it is LC_PENDING, which is also emitted so the caller knows
 * the request was queued), then one completion per queued request that the
 * command resolved (granted, refused, withdrawn), in a deterministic order. */
struct lc_completion {
	uint64_t origin;               /* session that issued the request */
	uint64_t serial;               /* its serial */
	int      status;               /* 0, LC_PENDING or -errno */
	uint64_t ino;                  /* inode created / affected */
	uint64_t token;                /* fencing token of a granted lock, else 0 */
};

/* Completion sink, filled by lc_apply().  The caller owns it; lc_apply()
 * grows `v` with the allocator as needed.  Reset `n` to 0 between calls
 * (or call lc_out_reset()); free with lc_out_free(). */
struct lc_out {
	struct lc_completion *v;
	size_t n, cap;
};
void lc_out_reset(struct lc_out *o);
void lc_out_free(struct lc_out *o);

/* ---- the state ---------------------------------------------------------- */

struct lc_state;

/* Creates an empty namespace: the root directory (LC_INO_ROOT, mode 01777,
 * uid 0, gid 0) and nothing else.  The root's times are 0 until the first
 * command is applied, which gives them its time.  NULL on ENOMEM. */
struct lc_state *lc_state_new(void);
void lc_state_free(struct lc_state *s);

/*
 * Applies one committed command at log position `index` (strictly greater
 * than the previous index applied; the first is 1).  Appends completions to
 * `out`.  Returns 0 when the command was applied (its own result, which can
 * be an error such as -EEXIST, is in the first completion), or -ENOMEM
 * (state unchanged), or -EINVAL for a command that fails validation (also
 * reported as a completion with -EINVAL; state unchanged).
 *
 * Idempotence: a command whose (origin, serial) was already applied is not
 * applied again: lc_apply() emits the same completion it emitted the first
 * time (for a request still queued: LC_PENDING).  The state keeps the
 * results of the last LC_DEDUP_WINDOW serials of each session.
 *
 * CANCEL(target_serial): if the target is still queued, it is removed and
 * completes with -EINTR, and the CANCEL completes with 0.  If the target was
 * a flock request that was already granted and the owner still holds that
 * grant, the lock is released (a grant racing with an interrupt is never
 * leaked) and the CANCEL completes with 0 (the caller answers EINTR).  If
 * the target was a granted POSIX request, or already finished, nothing
 * changes and the CANCEL completes with -ENOENT (the caller answers with the
 * target's own result).
 *
 * Tokens: a grant's token is (index << LC_TOKEN_SHIFT) + k, where index is
 * the log position of the command that made the grant and k counts the
 * grants that command made before it (with a floor of the previous token +
 * 1).  Hence tokens are strictly increasing per file and cluster-wide,
 * across leader changes and restarts, and token >> LC_TOKEN_SHIFT names the
 * log entry that granted the lock.
 */
#define LC_TOKEN_SHIFT 20u
#define LC_DEDUP_WINDOW 256u
int lc_apply(struct lc_state *s, uint64_t index, const struct lc_cmd *cmd,
	     struct lc_out *out);

/* Index of the last command that was applied (0 before any).  A command
 * answered without being applied (a dedup hit, -ESTALE, -ENOLCK for an
 * unknown session, -EINVAL) leaves it where it was, so a driver keeps its
 * own count of the log positions it has fed in. */
uint64_t lc_applied_index(const struct lc_state *s);

/* Earliest time (ns) at which a TICK would change the state (a lockfile ttl
 * runs out), or 0 when there is none.  The driver proposes a TICK then. */
uint64_t lc_next_deadline(const struct lc_state *s);

/* 64-bit hash of the canonical serialization of the whole state.  Equal
 * states give equal hashes on every node. */
uint64_t lc_state_hash(const struct lc_state *s);

/* Canonical serialization (for snapshots and hashing).  lc_state_save()
 * allocates *buf (caller frees with free()).  lc_state_load() builds a new
 * state from such a buffer, rejecting bad input with -EINVAL. */
int lc_state_save(const struct lc_state *s, uint8_t **buf, size_t *len);
int lc_state_load(const uint8_t *buf, size_t len, struct lc_state **out);

/* ---- command wire format ----------------------------------------------- */

/* Encodes a command into a versioned, length-checked byte string for the
 * replicated log.  lc_cmd_encode() allocates *buf (caller frees).
 * lc_cmd_decode() fills *cmd with pointers into `buf` (which must outlive
 * the decoded command); it returns -EINVAL for anything malformed and
 * never reads outside [buf, buf+len). */
int lc_cmd_encode(const struct lc_cmd *cmd, uint8_t **buf, size_t *len);
int lc_cmd_decode(const uint8_t *buf, size_t len, struct lc_cmd *cmd);

/* Validates a name component: -EINVAL for empty, ".", ".." or one holding
 * '/' or NUL, -ENAMETOOLONG beyond LC_NAME_MAX. */
int lc_name_check(const char *name, size_t len);

/* The names in the root directory that the front end serves as generated
 * files, each with its fixed inode number: no command may create, link,
 * rename or remove them (-EPERM), and a snapshot image holding one in the
 * root is refused.  This table is the only list of them. */
struct lc_reserved {
	const char *name;              /* NUL-terminated */
	uint64_t ino;                  /* LC_INO_STATUS... */
};
#define LC_RESERVED_N 3u
extern const struct lc_reserved lc_reserved[LC_RESERVED_N];

/* The entry of `name` (`len` bytes, not NUL-terminated necessarily) in
 * lc_reserved[], or NULL when it is not one of them.  Reserved only in
 * the root (parent LC_INO_ROOT): the caller checks the parent. */
const struct lc_reserved *lc_reserved_name(const char *name, size_t len);

/* The entry whose inode number is `ino`, or NULL (a generated file's
 * number is never one lockcore hands out: they are below LC_INO_FIRST). */
const struct lc_reserved *lc_reserved_ino(uint64_t ino);

/* ---- queries (read-only, local) ---------------------------------------- */

enum lc_kind { LC_DIR = 1, LC_REG = 2, LC_LNK = 3 };

struct lc_attr {
	uint64_t ino;
	uint8_t  kind;                 /* enum lc_kind */
	uint32_t mode;                 /* permission bits only (07777) */
	uint32_t uid, gid;
	uint32_t nlink;
	uint64_t size;                 /* content bytes; symlink: target length */
	int64_t  atime_ns, mtime_ns, ctime_ns;
	uint8_t  ephemeral;            /* created with O_EXCL */
	uint32_t ttl_s;
	uint32_t slots;                /* semaphore size (0 = unlimited) */
};

/* Looks `name` up in directory `parent`.  0 and *attr, or -ENOENT,
 * -ENOTDIR, -ENAMETOOLONG. */
int lc_lookup(const struct lc_state *s, uint64_t parent, const char *name,
	      size_t name_len, struct lc_attr *attr);
/* 0 and *attr, or -ENOENT. */
int lc_getattr(const struct lc_state *s, uint64_t ino, struct lc_attr *attr);
/* Regular file content: *data points into the state (valid until the next
 * lc_apply), *len its size.  -ENOENT, -EISDIR. */
int lc_content(const struct lc_state *s, uint64_t ino, const uint8_t **data,
	       size_t *len);
/* Symlink target. -ENOENT, -EINVAL (not a symlink). */
int lc_readlink(const struct lc_state *s, uint64_t ino, const char **target,
		size_t *len);

/* Directory listing from a stable cookie: calls fn for each entry whose
 * cookie is greater than `after` (0 = from the start), in cookie order,
 * until fn returns non-zero.  Cookies never change for an entry and are
 * never reused in a directory, so listing is stable under concurrent
 * changes.  "." and ".." are not included.  -ENOENT, -ENOTDIR. */
typedef int (*lc_dirent_fn)(void *ctx, const char *name, size_t name_len,
			    const struct lc_attr *attr, uint64_t cookie);
int lc_readdir(const struct lc_state *s, uint64_t dir, uint64_t after,
	       lc_dirent_fn fn, void *ctx);

/* The parent of directory `dir` (root's parent is root). */
int lc_parent(const struct lc_state *s, uint64_t dir, uint64_t *parent);

/* Full path of an inode from the root, "/a/b" (first name for hard
 * links), written NUL-terminated into buf.  -ENOENT, -ERANGE. */
int lc_path(const struct lc_state *s, uint64_t ino, char *buf, size_t size);

/* The name a regular file had when its last name was removed (unlink, or
 * a rename over it) while it lived on, open somewhere or locked: *dir is
 * the directory that name was in (it may be gone since), *name points into
 * the state (valid until the next lc_apply, not NUL-terminated), *len its
 * length.  -ENOENT: no such inode, or one that has a name. */
int lc_former_name(const struct lc_state *s, uint64_t ino, uint64_t *dir,
		   const char **name, size_t *len);

/* User extended attributes other than user.cluck.*: value (pointer into the
 * state) or -ENODATA; list calls fn once per name. */
int lc_xattr_get(const struct lc_state *s, uint64_t ino, const char *name,
		 const void **value, size_t *len);
int lc_xattr_list(const struct lc_state *s, uint64_t ino,
		  int (*fn)(void *ctx, const char *name), void *ctx);

/* Lock state of one inode, for xattrs, status and F_GETLK. */
struct lc_lockinfo {
	struct lc_owner who;
	uint8_t  posix;                /* 0 flock, 1 POSIX range */
	uint8_t  type;                 /* LC_RDLCK or LC_WRLCK */
	uint64_t start, end;           /* POSIX ranges; flock: 0..LC_OFF_MAX */
	uint64_t token;                /* holders: grant token; waiters: 0 */
	uint64_t since_ns;             /* holders: grant time; waiters: request time */
	uint64_t serial;               /* request serial */
};
/* Holders (in grant order) then waiters (in queue order).  fn returns
 * non-zero to stop.  -ENOENT. */
int lc_locks(const struct lc_state *s, uint64_t ino,
	     int (*holder)(void *ctx, const struct lc_lockinfo *),
	     int (*waiter)(void *ctx, const struct lc_lockinfo *), void *ctx);

/* Summary of an inode's lock state. */
struct lc_locksum {
	uint32_t holders, waiters;
	uint8_t  mode;                 /* LC_UNLCK (free), LC_RDLCK, LC_WRLCK */
	uint64_t last_token;           /* token of the latest grant on this file */
	uint64_t eta_ms;               /* estimated wait for a new exclusive request at
	                                  time now_ns, from the queue and the recent hold
	                                  times on this file */
};
int lc_locksum(const struct lc_state *s, uint64_t ino, uint64_t now_ns,
	       struct lc_locksum *sum);

/* POSIX F_GETLK: the first lock that conflicts with (who, type, start,
 * end), or -ENOENT when none (the caller answers F_UNLCK). */
int lc_getlk(const struct lc_state *s, uint64_t ino, const struct lc_owner *who,
	     uint8_t type, uint64_t start, uint64_t end, struct lc_lockinfo *out);

/* Token for user.cluck.token: the token of `who`'s grant on the inode when
 * `who` holds a lock there (flock or any POSIX range), else the file's
 * latest grant token (0 if never locked).  Set who->session = 0 to ask
 * only for the latest. */
uint64_t lc_token(const struct lc_state *s, uint64_t ino, const struct lc_owner *who);

/* Every inode that has holders or waiters, in inode order. */
int lc_foreach_locked(const struct lc_state *s,
		      int (*fn)(void *ctx, uint64_t ino), void *ctx);

/* Whole-state counters for status and metrics. */
struct lc_stats {
	uint64_t files;                /* inodes of every kind, root included */
	uint64_t locks_held;           /* granted lock records (flock + POSIX) */
	uint64_t waiters;              /* queued requests */
	uint64_t sessions;
	uint64_t grants, releases, expirations, interrupts;  /* since state creation */
	uint64_t next_token;
};
void lc_stats(const struct lc_state *s, struct lc_stats *st);

/* What a uid owns, for limits (cluckd(8)): files counts inodes of every
 * kind, bytes the content of regular files, symlink targets and user
 * xattrs (names and values).  A file
 * is charged to its owner; the counts follow chown.  Derived from the
 * namespace, so equal on every node that applied the same commands. */
struct lc_usage {
	uint64_t files, bytes;
};
void lc_usage(const struct lc_state *s, uint32_t uid, struct lc_usage *u);
/* The same over every uid (files includes the root directory). */
void lc_usage_total(const struct lc_state *s, struct lc_usage *u);

/* What the state remembers of request (origin, serial), for a driver that
 * missed its completion (its replica was replaced by a snapshot): 0 and
 * the final answer in *c (status, token, ino), LC_PENDING while it is still
 * queued, -ENOENT when the state does not know it (never applied, or out of
 * the LC_DEDUP_WINDOW, or its session is gone). */
int lc_request_result(const struct lc_state *s, uint64_t origin, uint64_t serial,
		      struct lc_completion *c);

/* Sessions known to the state: name given at SESSION_OPEN. */
int lc_session_name(const struct lc_state *s, uint64_t session,
		    const char **name, size_t *len);

#endif /* CLUCK_LC_H */
