/*
 * lockcore/lci.h - internal data structures shared by the lockcore files.
 *
 * Only the lockcore .c files include this.  Everything here is pure C (no OS
 * headers, no clock, no randomness).  Hash functions are fixed (FNV-1a),
 * never seeded, and no observable order may depend on a hash table's
 * layout or on pointer values: anything that is listed, serialized or
 * emitted is sorted by inode number, cookie, token or queue sequence.
 *
 * Memory: a plain file is ONE allocation (lc_inode with its first name
 * embedded, ~112 bytes for a short name) plus 8 bytes in its directory's
 * array and a share of two chained hash tables kept at load <= 2 (about
 * 129 bytes per file in all).  Rarely used parts (xattrs, ttl, ephemeral
 * owner, lock state, further names, open-handle pins) hang off the
 * NULL-able lc_iext.  Never add a field to lc_inode that most files do
 * not need: put it in lc_iext.
 */
#ifndef CLUCK_LCI_H
#define CLUCK_LCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lockcore/lc.h"

#define LCI_NOHEAP UINT32_MAX
#define LCI_MODE_MASK 07777u
#define LCI_S_ISGID 02000u

struct lc_req;
struct lc_lk;
struct lc_sess;
struct lc_inode;

/* Open handles of one session on one inode (LC_CMD_OPEN): while any
 * exist the inode lives on after its last name goes. */
struct lc_pin {
	struct lc_pin *inext;          /* the inode's pins, by session */
	struct lc_pin *sprev, *snext;  /* the session's pins */
	struct lc_inode *ip;
	uint64_t session;
	uint32_t n;
};

/* A stored user xattr; name is NUL-terminated, value follows it. */
struct lc_xattr {
	uint16_t nlen, vlen;
	char name[];                   /* name, NUL, value bytes */
};

/* Rare per-inode attributes; NULL in lc_inode when all are defaults. */
struct lc_iext {
	uint64_t eph_session;          /* creator session of an ephemeral file */
	uint64_t refresh_ns;           /* ttl clock start */
	struct lc_inode *eprev, *enext;  /* session's ephemeral files */
	struct lc_xattr **xv;          /* sorted by name */
	uint32_t xn;
	uint32_t ttl_s, slots;
	uint32_t heap_idx;             /* position in the ttl heap or LCI_NOHEAP */
	uint8_t ephemeral;
	uint8_t on_elist;              /* linked in its session's eph list */
	/* Expiry deferred while the file is locked (issue 9: a held lock's
	 * name never goes to a new file).  parked: its time ran out at a
	 * TICK while locked, so it waits in the heap at deadline "never"
	 * until its last lock or waiter goes.  orphan: ephemeral, and its
	 * session ended while another session had it locked: it expires at
	 * the first TICK after that (in a snapshot: inode flag 16; not
	 * derived from eph_session, whose id may open again). */
	uint8_t parked, orphan;
	struct lc_lk *lk;              /* lock state, once ever locked */
	struct lc_xdent *names;        /* names after d0, oldest first */
	struct lc_pin *pins;           /* open handles, by session */
	/* A regular file whose last name went while it lives on (open or
	 * locked somewhere) keeps that name for status: the removed record
	 * itself (the embedded d0, or its lc_xdent, out of every table, dir
	 * NULL) and the directory it was in.  NULL while the file has a name
	 * (it never gets one back). */
	struct lc_dent *was;
	uint64_t was_dir;
};

/*
 * A directory entry.  The first name of an inode is embedded in the inode
 * (lc_inode.d0, so a plain file is one allocation); further names (hard
 * links, or a rename to a name longer than d0 has room for) are separate
 * lc_xdent records listed in the inode's lc_iext.  The name's bytes follow
 * the struct (not NUL-terminated).
 */
struct lc_dent {
	struct lc_dent *hnext;         /* (parent ino, name) hash chain */
	struct lc_inode *dir;          /* NULL: an unused embedded d0 */
	uint64_t ck;                   /* cookie << LCI_CK_SHIFT |
	                                  LCI_DENT_SEP | len */
};

#define LCI_DENT_SEP   0x100u         /* part of an lc_xdent */
#define LCI_CK_SHIFT   9              /* the cookie's place in ck */
#define LCI_CK_LOW     0x1ffu         /* LCI_DENT_SEP | len */
#define LCI_COOKIE_MAX ((UINT64_C(1) << 55) - 1)

/* A name that is not its inode's embedded first name. */
struct lc_xdent {
	struct lc_inode *child;
	struct lc_xdent *lnext;        /* next name of the child, oldest first */
	struct lc_dent d;
};

static inline size_t lci_dlen(const struct lc_dent *d)
{
	return (size_t)(d->ck & 0xffu);
}

static inline uint64_t lci_dcookie(const struct lc_dent *d)
{
	return d->ck >> LCI_CK_SHIFT;
}

static inline char *lci_dname(const struct lc_dent *d)
{
	return (char *)(uintptr_t)(d + 1);
}

static inline struct lc_xdent *lci_xd(const struct lc_dent *d)
{
	return (struct lc_xdent *)(uintptr_t)((const char *)d -
					      offsetof(struct lc_xdent, d));
}

/* One slot of a directory's cookie-ordered array, 8 bytes: a dentry
 * pointer (low bit clear; the dentry knows its cookie) or, for a removed
 * entry, a tombstone cookie << 1 | 1 that keeps the array searchable. */
struct lc_dslot {
	uint64_t v;
};

static inline struct lc_dent *lci_slot_dent(struct lc_dslot sl)
{
	return sl.v & 1u ? NULL : (struct lc_dent *)(uintptr_t)sl.v;
}

static inline struct lc_dslot lci_slot(const struct lc_dent *d)
{
	return (struct lc_dslot){ (uint64_t)(uintptr_t)d };
}

static inline struct lc_dslot lci_tomb(uint64_t cookie)
{
	return (struct lc_dslot){ cookie << 1 | 1u };
}


/* Directory contents in cookie order. */
struct lc_dir {
	struct lc_dslot *v;
	uint32_t n, cap, live;
	uint32_t nsub;                 /* subdirectories (nlink = 2 + nsub) */
	uint64_t next_cookie;
};

/*
 * An inode with its first name.  nlink is not stored: it is the number of
 * names (regular files, symlinks) or 2 + subdirectories (a directory that
 * has its name).  Keep this small: it is most of the cost of a file.
 */
struct lc_inode {
	struct lc_inode *hnext;
	uint64_t ino;
	int64_t atime, mtime, ctime;
	union {
		uint8_t *data;         /* regular: content; symlink: target */
		struct lc_dir *dir;
	} u;
	struct lc_iext *x;             /* rare attributes, lock state, names */
	uint32_t uid, gid, size;
	uint16_t mode;
	uint8_t kind;
	uint8_t d0cap;                 /* name bytes d0 has room for */
	struct lc_dent d0;             /* first name; its bytes follow */
};

#define LCI_D0(ip) (&(ip)->d0)

/* The inode a name belongs to. */
static inline struct lc_inode *lci_child(const struct lc_dent *d)
{
	if (d->ck & LCI_DENT_SEP)
		return lci_xd(d)->child;
	return (struct lc_inode *)(uintptr_t)((const char *)d -
					      offsetof(struct lc_inode, d0));
}

/* An inode's first name (the oldest), or NULL when it has none. */
static inline struct lc_dent *lci_first_name(const struct lc_inode *ip)
{
	if (ip->d0.dir)
		return (struct lc_dent *)(uintptr_t)&ip->d0;
	return ip->x && ip->x->names ? &ip->x->names->d : NULL;
}

/* The name after d in the inode's list, or NULL. */
static inline struct lc_dent *lci_next_name(const struct lc_inode *ip,
					    const struct lc_dent *d)
{
	if (!(d->ck & LCI_DENT_SEP))
		return ip->x && ip->x->names ? &ip->x->names->d : NULL;
	return lci_xd(d)->lnext ? &lci_xd(d)->lnext->d : NULL;
}


/* A lock holder or a queued request. */
struct lc_req {
	struct lc_req *prev, *next;    /* in the inode's list */
	struct lc_req *hnext;          /* (origin, serial) hash */
	struct lc_req *onext;          /* (ino, session, owner) hash: flock
	                                  records and queued POSIX requests */
	struct lc_req *sprev, *snext;  /* in the owning session's list */
	struct lc_inode *ip;
	uint64_t origin, serial;
	uint64_t session, owner;
	uint64_t start, end;
	uint64_t token;                /* holders */
	uint64_t since_ns;
	uint64_t qseq;                 /* waiters: global queue sequence */
	uint32_t pid;
	uint8_t posix, type, waiting;
};

struct lc_rlist {
	struct lc_req *h, *t;
};

struct lc_lk {
	struct lc_rlist fh, ph, fw, pw;  /* flock/posix holders/waiters */
	struct lc_lk *lprev, *lnext;   /* state's list of locked inodes */
	struct lc_inode *ip;
	uint64_t last_token;
	uint64_t ewma_ms;
	uint32_t nfl_sh, nfl_ex, nfl_w, nfl_wx, npx_h, npx_w;
	uint8_t has_ewma, on_list;
	uint8_t px_full;               /* next POSIX walk must look at all */
};

struct lc_dedup {
	uint64_t serial, ino, token;
	int32_t status;
	uint8_t used;
};

struct lc_sess {
	uint64_t id;
	char *name;
	uint32_t name_len;
	uint8_t has_serial;
	uint64_t max_serial;
	uint64_t nreqs;
	struct lc_req *reqs;           /* holders and waiters owned by it */
	struct lc_inode *eph;          /* ephemeral files it created */
	struct lc_pin *pins;           /* inodes it has open */
	struct lc_dedup win[LC_DEDUP_WINDOW];
};

static inline uint64_t lci_slot_cookie(struct lc_dslot sl);

/* What one uid owns (usage.c): derived, never serialized. */
struct lc_use {
	uint32_t uid;
	uint64_t files, bytes;
};

/* A chained hash table of intrusive entries (table.c): cap buckets (0 or
 * a power of two), n entries, load kept <= 2 by the *_reserve() calls. */
struct lci_htab {
	void **v;
	size_t cap, n;
};

struct lc_state {
	struct lci_htab inodes;        /* lc_inode by ino */
	struct lci_htab dents;         /* lc_dent by (parent ino, name) */
	struct lci_htab reqs;          /* lc_req by (origin, serial) */
	struct lci_htab owners;        /* flock records and queued POSIX
	                                  requests by (ino, session, owner) */
	struct lc_sess **sv;           /* sorted by id */
	size_t sn, scap;
	struct lc_inode **heap;        /* ttl min-heap by (deadline, ino) */
	size_t hn, hcap;
	struct lc_lk *locked;
	struct lc_inode *root;
	uint64_t applied, next_ino, next_token, next_qseq;
	uint64_t grants, releases, expirations, interrupts;
	uint64_t nholders, nwaiters;
	/* Request records set aside before a command changes anything, for
	 * the POSIX grants its queue walk may make (posix.c): a grant is
	 * never put off for want of memory on one replica only. */
	struct lc_req *spares;
	size_t nspares;
	struct lc_use *uv;             /* per-uid usage, sorted by uid (usage.c) */
	size_t un, ucap;
	uint64_t tbytes;               /* content bytes of every inode */
};

/* Lock state of an inode, or NULL when it was never locked. */
#define LCI_LK(ip) ((ip)->x ? (ip)->x->lk : NULL)

/* Per-command context. */
struct lc_ctx {
	struct lc_state *s;
	const struct lc_cmd *c;
	struct lc_out *out;
	uint64_t origin;
	uint64_t now;
	uint64_t index;                /* log position being applied */
};

static inline uint64_t lci_slot_cookie(struct lc_dslot sl)
{
	return sl.v & 1u ? sl.v >> 1 : lci_dcookie(lci_slot_dent(sl));
}

/* The snapshot image (image.c writes it, image_load.c reads it). */
#define LCI_IMG_MAGIC   0x5453434cu    /* "LCST" */
#define LCI_IMG_VERSION 2u             /* 2: open-handle pins */

/* Inode flag bits of the snapshot image: what follows the inode's fixed
 * fields and content.  Any other bit is refused.  LCI_IMG_WAS and
 * LCI_IMG_ORPHAN came without a version bump: a state with no such file
 * is unchanged, and an older reader refuses one that has it (unknown
 * flag). */
enum lci_img_flag {
	LCI_IMG_EPHEMERAL = 1u << 0,   /* lc_iext.ephemeral */
	LCI_IMG_LOCKS     = 1u << 1,   /* lock state follows */
	LCI_IMG_PINS      = 1u << 2,   /* open-handle pins follow */
	LCI_IMG_WAS       = 1u << 3,   /* a former name follows */
	LCI_IMG_ORPHAN    = 1u << 4,   /* lc_iext.orphan */
	LCI_IMG_ALL       = (1u << 5) - 1
};

/*
 * The files, top to bottom; each calls only files below it (no circle):
 *
 *   image_load.c   a state from a snapshot image (untrusted bytes)
 *   image.c    canonical snapshot image: save, hash
 *   state.c    lc_state lifetime, lc_apply dispatch, session open/close
 *   ns.c       namespace commands (+ OPEN) and queries
 *   xattr.c    xattrs: stored user ones, cluck ttl / slots
 *   locks.c    flock and semaphores, lock commands, session drop, queries
 *   posix.c    POSIX ranges: conflicts, merge/split, queue walk, SETLK
 *   lkreq.c    lock request records: lists, counts, hashes, tokens, drop
 *   inode.c    an inode's life: names, dirs, ttl heap and TICK,
 *              ephemerals, pins, its lock state block
 *   table.c usage.c codec.c   hash tables, sessions, dedup, completions /
 *              per-uid usage / the log format, names, reserved names
 */

/* ---- table.c ---- */
uint64_t lci_fnv(uint64_t h, const void *p, size_t n);
struct lc_inode *lci_iget(const struct lc_state *s, uint64_t ino);
int lci_itab_reserve(struct lc_state *s, size_t extra);
void lci_iinsert(struct lc_state *s, struct lc_inode *ip);
void lci_iremove(struct lc_state *s, struct lc_inode *ip);
struct lc_dent *lci_dget(const struct lc_state *s, const struct lc_inode *dir,
			 const char *name, size_t len);
int lci_dtab_reserve(struct lc_state *s, size_t extra);
void lci_dinsert(struct lc_state *s, struct lc_dent *d);
void lci_dremove(struct lc_state *s, struct lc_dent *d);
int lci_rtab_reserve(struct lc_state *s, size_t extra);
void lci_rinsert(struct lc_state *s, struct lc_req *r);
void lci_rremove(struct lc_state *s, struct lc_req *r);
struct lc_req *lci_rfind(const struct lc_state *s, uint64_t origin,
			 uint64_t serial);
int lci_otab_reserve(struct lc_state *s, size_t extra);
void lci_oinsert(struct lc_state *s, struct lc_req *r);
void lci_oremove(struct lc_state *s, struct lc_req *r);
struct lc_req *lci_ofind(const struct lc_state *s, uint64_t ino,
			 uint64_t session, uint64_t owner, bool posix);
struct lc_req *lci_onext(const struct lc_req *r, bool posix);
struct lc_sess *lci_sess(const struct lc_state *s, uint64_t id);
struct lc_sess *lci_sess_new(uint64_t id, const void *name, size_t len);
void lci_sess_free(struct lc_sess *se);
int lci_sess_insert(struct lc_state *s, struct lc_sess *se);
void lci_sess_remove(struct lc_state *s, struct lc_sess *se);
struct lc_dedup *lci_dedup_find(struct lc_sess *se, uint64_t serial);
void lci_dedup_store(struct lc_sess *se, uint64_t serial, int status,
		     uint64_t ino, uint64_t token);
void lci_req_done(struct lc_state *s, uint64_t origin, uint64_t serial,
		  int status, uint64_t token);
int lci_emit(struct lc_ctx *x, uint64_t origin, uint64_t serial, int status,
	     uint64_t ino, uint64_t token);
int lci_out_reserve(struct lc_out *o, size_t extra);

/* ---- inode.c ---- */
struct lc_inode *lci_inode_new(uint64_t ino, uint8_t kind, size_t namecap);
void lci_inode_free(struct lc_inode *ip);
uint32_t lci_nlink(const struct lc_inode *ip);
void lci_attr(const struct lc_inode *ip, struct lc_attr *a);
struct lc_iext *lci_iext(struct lc_inode *ip);
struct lc_dent *lci_xdent_new(struct lc_inode *child, const char *name,
			      size_t len);
void lci_dent_free(struct lc_dent *d);
void lci_link_append(struct lc_inode *ip, struct lc_dent *d);
void lci_link_remove(struct lc_inode *ip, struct lc_dent *d);
void lci_link_replace(struct lc_inode *ip, struct lc_dent *od,
		      struct lc_dent *nd);
int lci_tick(struct lc_ctx *x);
void lci_heap_update(struct lc_state *s, struct lc_inode *ip);
void lci_heap_remove(struct lc_state *s, struct lc_inode *ip);
int lci_heap_reserve(struct lc_state *s);
int lci_heap_reserve_n(struct lc_state *s, size_t n);
void lci_expiry_unpark(struct lc_state *s, struct lc_inode *ip);
void lci_eph_orphan(struct lc_state *s, struct lc_inode *ip);
void lci_eph_unlink(struct lc_state *s, struct lc_inode *ip);
void lci_eph_link(struct lc_state *s, struct lc_inode *ip);
int lci_dir_add(struct lc_state *s, struct lc_inode *dir, struct lc_dent *d);
int lci_dir_reserve(struct lc_inode *dir);
uint32_t lci_dir_find(const struct lc_dir *d, uint64_t after);
uint32_t lci_dir_slot(const struct lc_dir *d, const struct lc_dent *e);
void lci_dir_tomb(struct lc_dir *d, uint32_t i);
struct lc_pin *lci_pin_find(const struct lc_inode *ip, uint64_t session);
void lci_pin_link(struct lc_state *s, struct lc_inode *ip, struct lc_pin *p);
void lci_pin_drop(struct lc_state *s, struct lc_pin *p);
void lci_pin_put(struct lc_state *s, struct lc_inode *ip, uint64_t session);
void lci_maybe_free(struct lc_state *s, struct lc_inode *ip);
void lci_name_gone(struct lc_inode *c, const struct lc_inode *dir,
		   struct lc_dent *d);
void lci_dent_unlink(struct lc_state *s, struct lc_dent *d, int64_t now);
int lci_remove_all_names(struct lc_state *s, struct lc_inode *ip,
			 int64_t now);
struct lc_lk *lci_lk_get(struct lc_state *s, struct lc_inode *ip);
bool lci_lk_busy(const struct lc_inode *ip);
void lci_lk_free(struct lc_state *s, struct lc_inode *ip);

/* ---- usage.c ---- */
int lci_use_reserve(struct lc_state *s, uint32_t uid);
void lci_use_add(struct lc_state *s, uint32_t uid, int64_t files, int64_t bytes);
int64_t lci_use_bytes(const struct lc_inode *ip);
int lci_use_rebuild(struct lc_state *s);

/* ---- lkreq.c ---- */
enum lci_drop_why { LCI_WHY_MERGE, LCI_WHY_RELEASE, LCI_WHY_EXPIRE,
		    LCI_WHY_CLOSE };
void lci_rl_append(struct lc_rlist *l, struct lc_req *r);
void lci_req_attach(struct lc_state *s, struct lc_req *r);
void lci_req_attach_after(struct lc_state *s, struct lc_req *h,
			  struct lc_req *p);
void lci_req_detach(struct lc_state *s, struct lc_req *r);
void lci_drop_holder(struct lc_ctx *x, struct lc_req *r,
		     enum lci_drop_why why);
void lci_drop_waiter(struct lc_ctx *x, struct lc_req *r, int status);
uint64_t lci_take_token(struct lc_ctx *x, struct lc_lk *lk);
bool lci_same_owner(const struct lc_req *a, uint64_t session,
		    uint64_t owner);
bool lci_overlap(const struct lc_req *a, uint64_t start, uint64_t end);
int lci_owner_session(const struct lc_ctx *x, uint64_t *sid);
struct lc_req *lci_req_new(const struct lc_ctx *x, struct lc_inode *ip,
			   uint64_t sid, bool posix);
void lci_enqueue(struct lc_ctx *x, struct lc_req *r);

/* ---- posix.c ---- */
const struct lc_req *lci_px_holder_conflict(const struct lc_lk *lk,
					    uint64_t session, uint64_t owner,
					    uint8_t type, uint64_t start,
					    uint64_t end);
int lci_px_reserve(struct lc_state *s, size_t n);
void lci_px_spares_free(struct lc_state *s);
void lci_run_posix(struct lc_ctx *x, struct lc_lk *lk, uint64_t lo,
		   uint64_t hi);
int lci_setlk(struct lc_ctx *x, struct lc_inode *ip, uint64_t sid,
	      uint64_t *token);

/* ---- locks.c ---- */
int lci_lock_apply(struct lc_ctx *x, uint64_t *ino, uint64_t *token);
int lci_cancel(struct lc_ctx *x, uint64_t *ino);
int lci_session_drop(struct lc_ctx *x, struct lc_sess *se);
int lci_run_queue(struct lc_ctx *x, struct lc_inode *ip);
int lci_run_flock(struct lc_ctx *x, struct lc_inode *ip);

/* ---- xattr.c ---- */
int lci_xattr_put(struct lc_inode *ip, const char *name, size_t nlen,
		  const void *val, size_t vlen, uint32_t flags);
int lci_setxattr(struct lc_ctx *x, uint64_t *ino, bool remove);

/* ---- image.c ---- */
struct lc_inode **lci_inodes_sorted(const struct lc_state *s, size_t *n);

/* ---- ns.c ---- */
int lci_ns_apply(struct lc_ctx *x, uint64_t *ino);

#endif /* CLUCK_LCI_H */
