/*
 * t/unit_util.c - the fixture and command helpers of the lockcore unit
 * tests (see unit_util.h).
 *
 * It must never read lockcore's private structures (lockcore/lci.h):
 * the tests have to hold for any implementation of lockcore/lc.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t/unit_util.h"

/* Creates a fixture with session 1 open and current. */
struct fx *fx_new(void)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->s = lc_state_new();
	if (!f->s)
		goto free_fx;
	f->now = 1000000000ull;
	f->cur = 1;
	if (fx_open(f, 1) != 0)
		goto free_state;
	return f;

free_state:
	lc_state_free(f->s);
free_fx:
	free(f);
	return NULL;
}

/* Frees the fixture, its state and its completion list. */
void fx_free(struct fx *f)
{
	if (!f)
		return;
	lc_out_free(&f->out);
	lc_state_free(f->s);
	free(f);
}

/* Next serial of `origin`; sessions beyond the table share a fallback
 * counter, which is still unique per origin because it only grows. */
uint64_t fx_next_serial(struct fx *f, uint64_t origin)
{
	size_t i;

	for (i = 0; i < FX_MAX_SESSIONS; i++) {
		if (f->ser[i].id == origin)
			return ++f->ser[i].serial;
		if (f->ser[i].id == 0) {
			f->ser[i].id = origin;
			return ++f->ser[i].serial;
		}
	}
	return ++f->ser[FX_MAX_SESSIONS - 1].serial + 1000000;
}

/* Applies c at the next index (see header). */
static int apply_raw(struct fx *f, const struct lc_cmd *c)
{
	lc_out_reset(&f->out);
	f->last_origin = c->origin;
	f->last_serial = c->serial;
	f->last_rc = lc_apply(f->s, ++f->index, c, &f->out);
	if (f->out.n > 0)
		return f->out.v[0].status;
	return f->last_rc;
}

/* Fills origin/serial/time defaults and applies (see header). */
int fx_apply(struct fx *f, struct lc_cmd *c)
{
	if (c->origin == UINT64_MAX)
		c->origin = 0;
	else if (c->origin == 0)
		c->origin = f->cur;
	if (c->serial == 0 && c->origin != 0)
		c->serial = fx_next_serial(f, c->origin);
	if (c->time_ns == 0)
		c->time_ns = f->now;
	return apply_raw(f, c);
}

/* Same (origin, serial) again, at a new index. */
int fx_reapply(struct fx *f, const struct lc_cmd *c)
{
	return apply_raw(f, c);
}

/* Opens session sid, issued by itself. */
int fx_open(struct fx *f, uint64_t sid)
{
	char name[32];
	struct lc_cmd c = { .type = LC_CMD_SESSION_OPEN, .origin = sid,
			    .session = sid };

	snprintf(name, sizeof(name), "node%llu", (unsigned long long)sid);
	c.data = name;
	c.data_len = (uint32_t)strlen(name);
	return fx_apply(f, &c);
}

/* Closes session sid the way the leader does when it expires. */
int fx_close(struct fx *f, uint64_t sid)
{
	struct lc_cmd c = { .type = LC_CMD_SESSION_CLOSE, .origin = UINT64_MAX,
			    .session = sid };

	return fx_apply(f, &c);
}

/* A leader TICK at f->now. */
int fx_tick(struct fx *f)
{
	struct lc_cmd c = { .type = LC_CMD_TICK, .origin = UINT64_MAX };

	return fx_apply(f, &c);
}

/* Number of completions the last command emitted. */
size_t fx_ncomp(const struct fx *f)
{
	return f->out.n;
}

/* The i-th completion of the last command, NULL past the end. */
const struct lc_completion *fx_comp(const struct fx *f, size_t i)
{
	return i < f->out.n ? &f->out.v[i] : NULL;
}

/* The completion of (origin, serial) among the last command's. */
const struct lc_completion *fx_find(const struct fx *f, uint64_t origin,
				    uint64_t serial)
{
	for (size_t i = 0; i < f->out.n; i++)
		if (f->out.v[i].origin == origin && f->out.v[i].serial == serial)
			return &f->out.v[i];
	return NULL;
}

/* True when (origin, serial) completed with `status` just now. */
bool fx_has(const struct fx *f, uint64_t origin, uint64_t serial, int status)
{
	const struct lc_completion *c = fx_find(f, origin, serial);

	return c && c->status == status;
}

/* The ino of the command's own completion when it succeeded. */
static int64_t ino_or_err(const struct fx *f, int st)
{
	if (st != 0)
		return st < 0 ? st : -EPROTO;
	if (f->out.n == 0 || f->out.v[0].ino == 0)
		return -EPROTO;
	return (int64_t)f->out.v[0].ino;
}

/* Creates a mode 0644 file; returns its ino or -errno. */
int64_t mkfile(struct fx *f, uint64_t parent, const char *name)
{
	struct lc_cmd c = { .type = LC_CMD_CREATE, .parent = parent,
			    .name = name, .name_len = (uint32_t)strlen(name),
			    .mode = 0644 };

	return ino_or_err(f, fx_apply(f, &c));
}

/* O_CREAT|O_EXCL: an ephemeral file. */
int64_t mkfile_excl(struct fx *f, uint64_t parent, const char *name,
		    uint32_t ttl_s)
{
	struct lc_cmd c = { .type = LC_CMD_CREATE, .parent = parent,
			    .name = name, .name_len = (uint32_t)strlen(name),
			    .mode = 0644, .flags = LC_CREATE_EXCL,
			    .ttl_s = ttl_s };

	return ino_or_err(f, fx_apply(f, &c));
}

/* mkdir with mode 0755. */
int64_t mkdir_(struct fx *f, uint64_t parent, const char *name)
{
	struct lc_cmd c = { .type = LC_CMD_MKDIR, .parent = parent,
			    .name = name, .name_len = (uint32_t)strlen(name),
			    .mode = 0755 };

	return ino_or_err(f, fx_apply(f, &c));
}

/* ln -s target name. */
int64_t symlink_(struct fx *f, uint64_t parent, const char *name,
		 const char *target)
{
	struct lc_cmd c = { .type = LC_CMD_SYMLINK, .parent = parent,
			    .name = name, .name_len = (uint32_t)strlen(name),
			    .data = target,
			    .data_len = (uint32_t)strlen(target) };

	return ino_or_err(f, fx_apply(f, &c));
}

/* ln ino parent/name. */
int link_(struct fx *f, uint64_t ino, uint64_t parent, const char *name)
{
	struct lc_cmd c = { .type = LC_CMD_LINK, .ino = ino, .parent = parent,
			    .name = name, .name_len = (uint32_t)strlen(name) };

	return fx_apply(f, &c);
}

/* unlink(2) of parent/name. */
int unlink_(struct fx *f, uint64_t parent, const char *name)
{
	struct lc_cmd c = { .type = LC_CMD_UNLINK, .parent = parent,
			    .name = name, .name_len = (uint32_t)strlen(name) };

	return fx_apply(f, &c);
}

/* rmdir(2) of parent/name. */
int rmdir_(struct fx *f, uint64_t parent, const char *name)
{
	struct lc_cmd c = { .type = LC_CMD_RMDIR, .parent = parent,
			    .name = name, .name_len = (uint32_t)strlen(name) };

	return fx_apply(f, &c);
}

/* rename(2) / renameat2(2) with flags. */
int rename_(struct fx *f, uint64_t p1, const char *n1, uint64_t p2,
	    const char *n2, uint32_t flags)
{
	struct lc_cmd c = { .type = LC_CMD_RENAME, .parent = p1, .name = n1,
			    .name_len = (uint32_t)strlen(n1), .parent2 = p2,
			    .name2 = n2, .name2_len = (uint32_t)strlen(n2),
			    .flags = flags };

	return fx_apply(f, &c);
}

/* pwrite(2). */
int write_(struct fx *f, uint64_t ino, uint64_t off, const void *data,
	   uint32_t len)
{
	struct lc_cmd c = { .type = LC_CMD_WRITE, .ino = ino, .offset = off,
			    .data = data, .data_len = len };

	return fx_apply(f, &c);
}

/* truncate(2) through SETATTR size. */
int truncate_(struct fx *f, uint64_t ino, uint64_t size)
{
	struct lc_cmd c = { .type = LC_CMD_SETATTR, .ino = ino,
			    .valid = LC_SET_SIZE, .size = size };

	return fx_apply(f, &c);
}

/* utimensat(2) setting both times to t_ns. */
int touch_(struct fx *f, uint64_t ino, int64_t t_ns)
{
	struct lc_cmd c = { .type = LC_CMD_SETATTR, .ino = ino,
			    .valid = LC_SET_ATIME | LC_SET_MTIME,
			    .atime_ns = t_ns, .mtime_ns = t_ns };

	return fx_apply(f, &c);
}

/* setxattr(2); flags 1 = XATTR_CREATE, 2 = XATTR_REPLACE. */
int setxattr_(struct fx *f, uint64_t ino, const char *name, const void *v,
	      uint32_t len, uint32_t flags)
{
	struct lc_cmd c = { .type = LC_CMD_SETXATTR, .ino = ino, .name = name,
			    .name_len = (uint32_t)strlen(name), .data = v,
			    .data_len = len, .flags = flags };

	return fx_apply(f, &c);
}

/* setfattr -n user.cluck.slots -v n. */
int setslots(struct fx *f, uint64_t ino, const char *n)
{
	return setxattr_(f, ino, "user.cluck.slots", n, (uint32_t)strlen(n),
			 0);
}

/* removexattr(2). */
int removexattr_(struct fx *f, uint64_t ino, const char *name)
{
	struct lc_cmd c = { .type = LC_CMD_REMOVEXATTR, .ino = ino,
			    .name = name, .name_len = (uint32_t)strlen(name) };

	return fx_apply(f, &c);
}

/* Inode of parent/name or -errno. */
int64_t lookup_(const struct fx *f, uint64_t parent, const char *name)
{
	struct lc_attr a;
	int rc = lc_lookup(f->s, parent, name, strlen(name), &a);

	return rc < 0 ? rc : (int64_t)a.ino;
}

/* flock(2) by (f->cur, owner). */
int flk(struct fx *f, uint64_t ino, uint64_t owner, uint8_t type,
	uint32_t flags)
{
	struct lc_cmd c = { .type = LC_CMD_FLOCK, .ino = ino,
			    .lock_type = type, .flags = flags };

	c.who.session = f->cur;
	c.who.owner = owner;
	c.who.pid = (uint32_t)owner;
	return fx_apply(f, &c);
}

/* flock(LOCK_EX|LOCK_NB). */
int ex(struct fx *f, uint64_t ino, uint64_t owner)
{
	return flk(f, ino, owner, LC_WRLCK, 0);
}

/* flock(LOCK_SH|LOCK_NB). */
int sh(struct fx *f, uint64_t ino, uint64_t owner)
{
	return flk(f, ino, owner, LC_RDLCK, 0);
}

/* flock(LOCK_UN). */
int un(struct fx *f, uint64_t ino, uint64_t owner)
{
	return flk(f, ino, owner, LC_UNLCK, 0);
}

/* flock(LOCK_EX), blocking: 0 or LC_PENDING. */
int wait_ex(struct fx *f, uint64_t ino, uint64_t owner)
{
	return flk(f, ino, owner, LC_WRLCK, LC_LK_WAIT);
}

/* flock(LOCK_SH), blocking: 0 or LC_PENDING. */
int wait_sh(struct fx *f, uint64_t ino, uint64_t owner)
{
	return flk(f, ino, owner, LC_RDLCK, LC_LK_WAIT);
}

/* The last close of an open file description. */
int release(struct fx *f, uint64_t ino, uint64_t owner)
{
	struct lc_cmd c = { .type = LC_CMD_RELEASE, .ino = ino };

	c.who.session = f->cur;
	c.who.owner = owner;
	c.who.pid = (uint32_t)owner;
	return fx_apply(f, &c);
}

/* fcntl(F_SETLK/F_SETLKW) by (f->cur, owner). */
int setlk(struct fx *f, uint64_t ino, uint64_t owner, uint8_t type,
	  uint64_t start, uint64_t end, uint32_t flags)
{
	struct lc_cmd c = { .type = LC_CMD_SETLK, .ino = ino,
			    .lock_type = type, .start = start, .end = end,
			    .flags = flags };

	c.who.session = f->cur;
	c.who.owner = owner;
	c.who.pid = (uint32_t)owner;
	return fx_apply(f, &c);
}

/* close(2) of any descriptor by a POSIX owner. */
int flush_(struct fx *f, uint64_t ino, uint64_t owner)
{
	struct lc_cmd c = { .type = LC_CMD_FLUSH, .ino = ino };

	c.who.session = f->cur;
	c.who.owner = owner;
	c.who.pid = (uint32_t)owner;
	return fx_apply(f, &c);
}

/* A signal interrupting f->cur's request `target_serial`. */
int cancel(struct fx *f, uint64_t target_serial)
{
	struct lc_cmd c = { .type = LC_CMD_CANCEL,
			    .target_serial = target_serial };

	return fx_apply(f, &c);
}

/* Holders of ino (flock and POSIX), from lc_locksum(). */
uint32_t nholders(const struct fx *f, uint64_t ino)
{
	struct lc_locksum m;

	if (lc_locksum(f->s, ino, f->now, &m) < 0)
		return 0;
	return m.holders;
}

/* Queued requests on ino, from lc_locksum(). */
uint32_t nwaiters(const struct fx *f, uint64_t ino)
{
	struct lc_locksum m;

	if (lc_locksum(f->s, ino, f->now, &m) < 0)
		return 0;
	return m.waiters;
}

struct holdq {
	uint64_t session, owner;
	int type;
	uint64_t token;
	char buf[1024];
	struct { uint64_t s, e; uint8_t t; } r[64];
	size_t nr;
};

static int holds_cb(void *ctx, const struct lc_lockinfo *li)
{
	struct holdq *q = ctx;

	if (!li->posix && li->who.session == q->session &&
	    li->who.owner == q->owner) {
		q->type = li->type;
		q->token = li->token;
		return 1;
	}
	return 0;
}

/* Flock type held by (session, owner), else 0. */
int holds(const struct fx *f, uint64_t ino, uint64_t session, uint64_t owner)
{
	struct holdq q = { .session = session, .owner = owner };

	lc_locks(f->s, ino, holds_cb, NULL, &q);
	return q.type;
}

/* Grant token of the flock holder (session, owner), else 0. */
uint64_t holder_token(const struct fx *f, uint64_t ino, uint64_t session,
		      uint64_t owner)
{
	struct holdq q = { .session = session, .owner = owner };

	lc_locks(f->s, ino, holds_cb, NULL, &q);
	return q.token;
}

static int ranges_cb(void *ctx, const struct lc_lockinfo *li)
{
	struct holdq *q = ctx;

	if (li->posix && li->who.session == q->session &&
	    li->who.owner == q->owner && q->nr < 64) {
		q->r[q->nr].s = li->start;
		q->r[q->nr].e = li->end;
		q->r[q->nr].t = li->type;
		q->nr++;
	}
	return 0;
}

/* The owner's POSIX ranges as a sorted, readable string. */
const char *ranges(const struct fx *f, uint64_t ino, uint64_t session,
		   uint64_t owner)
{
	static char out[1024];
	struct holdq q = { .session = session, .owner = owner };
	size_t used = 0;

	lc_locks(f->s, ino, ranges_cb, NULL, &q);
	/* insertion sort: holders come in grant order, not range order */
	for (size_t i = 1; i < q.nr; i++)
		for (size_t j = i; j > 0 && q.r[j].s < q.r[j - 1].s; j--) {
			__typeof__(q.r[0]) t = q.r[j];

			q.r[j] = q.r[j - 1];
			q.r[j - 1] = t;
		}
	out[0] = '\0';
	for (size_t i = 0; i < q.nr && used < sizeof(out) - 64; i++) {
		char end[24];

		if (q.r[i].e == LC_OFF_MAX)
			snprintf(end, sizeof(end), "E");
		else
			snprintf(end, sizeof(end), "%llu",
				 (unsigned long long)q.r[i].e);
		used += (size_t)snprintf(out + used, sizeof(out) - used,
					 "%s%llu-%s%c", i ? "," : "",
					 (unsigned long long)q.r[i].s, end,
					 q.r[i].t == LC_WRLCK ? 'W' : 'R');
	}
	return out;
}

struct listq {
	char *buf;
	size_t used, size;
};

static int list_cb(void *ctx, const char *name, size_t len,
		   const struct lc_attr *a, uint64_t cookie)
{
	struct listq *q = ctx;

	(void)a;
	(void)cookie;
	if (q->used + len + 2 >= q->size)
		return 1;
	if (q->used)
		q->buf[q->used++] = ',';
	memcpy(q->buf + q->used, name, len);
	q->used += len;
	q->buf[q->used] = '\0';
	return 0;
}

/* "a,b,c": the directory's names in cookie order. */
const char *listing(const struct fx *f, uint64_t dir)
{
	static char out[4096];
	struct listq q = { .buf = out, .size = sizeof(out) };

	out[0] = '\0';
	if (lc_readdir(f->s, dir, 0, list_cb, &q) < 0)
		return "(error)";
	return out;
}

/* xorshift64*: fixed, seedable, good enough to mix commands. */
uint64_t prng(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* ---- allocation counting --------------------------------------------------
 * The unit test links with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,
 * --wrap=free so a test can see how many heap blocks are live, and make
 * the unit_fail_nth-th allocation from now fail (0: none fails). */

long unit_live_blocks;
long unit_fail_nth;

static bool fail_now(void)
{
	if (unit_fail_nth <= 0 || --unit_fail_nth)
		return false;
	return true;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

void *__wrap_malloc(size_t n)
{
	void *p = fail_now() ? NULL : __real_malloc(n);

	if (p)
		unit_live_blocks++;
	return p;
}

void *__wrap_calloc(size_t n, size_t m)
{
	void *p = fail_now() ? NULL : __real_calloc(n, m);

	if (p)
		unit_live_blocks++;
	return p;
}

void *__wrap_realloc(void *p, size_t n)
{
	void *q = fail_now() ? NULL : __real_realloc(p, n);

	if (!p && q)
		unit_live_blocks++;
	return q;
}

void __wrap_free(void *p)
{
	if (p)
		unit_live_blocks--;
	__real_free(p);
}
