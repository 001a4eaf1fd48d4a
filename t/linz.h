/*
 * t/linz.h - linearizability checker for histories of lock operations.
 *
 * A history is a set of operations, each with a client, a lock key, a call
 * time, a return time (LINZ_INF for an operation that never returned: it may
 * or may not have taken effect), an input and an output.  linz_check()
 * decides whether some total order of the operations, consistent with real
 * time, is accepted by a sequential lock model: per key either a
 * reader/writer lock with a changeable semaphore slot count (flock,
 * lockfiles) or a set of POSIX byte-range locks.  Keys are independent,
 * so the history is partitioned by key and each partition searched with
 * the Wing-Gong-Lowe algorithm, memoising (set of linearised ops, model
 * state), the state being the slot count and the holders (with their
 * ranges on ranged keys).
 *
 * The sequential model, per key.  A key is either a whole-key (flock)
 * key or a ranged (POSIX fcntl) key: it is ranged when any acquire, try or
 * release on it has `ranged` set.  Callers keep the two spaces on different
 * keys; should they mix, a whole-key op on a ranged key stands for the
 * range [0, UINT64_MAX] with POSIX rules.
 *
 * Whole-key keys (a reader/writer lock that may be a counting semaphore):
 *   acquire-ex   ok iff nobody else holds the key (a holder of the key
 *                converting sh->ex must be the only holder).
 *   acquire-sh   ok iff no other client holds it ex and (slots == 0 or the
 *                number of sh holders is below slots); a client that holds
 *                ex downgrades.  Re-acquiring the mode one holds is a no-op.
 *   try-ex/sh    ok exactly when the blocking version would be granted now,
 *                busy (LINZ_BUSY) exactly when it would have to wait; a
 *                busy try changes nothing.
 *   release      ok iff the client holds the key (ex or sh), else LINZ_ERR.
 *
 * Ranged keys (POSIX byte-range locks, ranges inclusive [start, end]):
 *   acquire-ex   ok iff no other client holds any byte of the range.
 *   acquire-sh   ok iff no other client holds a byte of the range ex.
 *                A client's own locks never conflict with it: a granted
 *                lock replaces the client's own locks on those bytes
 *                (upgrade, downgrade, splitting an older lock as POSIX
 *                does); slots do not apply (lockcore counts only flock
 *                holders against user.cluck.slots).
 *   try-ex/sh    as on whole keys.
 *   release      removes the client's locks on the bytes of the range and
 *                always succeeds, as F_UNLCK does; [0, UINT64_MAX] drops
 *                them all (close, FLUSH).  A release recorded as LINZ_ERR
 *                had no effect.
 *
 * On either kind of key:
 *   set-slots    (LINZ_SET_SLOTS, writing user.cluck.slots) from its
 *                linearization point the key's slot count is op.slots
 *                (0 = unlimited).  As in lockcore, lowering it below the
 *                number of sh holders takes nothing away: they keep their
 *                slots and new sh acquires wait (tries answer busy) until
 *                holders leave enough room.  linz_set_slots() gives the
 *                count before the first set-slots.  One that returned
 *                LINZ_ERR had no effect.  The client is not used.
 *   release-all  (LINZ_RELEASE_ALL: the client's session ended, expired or
 *                closed) every lock of the client on the key goes, on
 *                every byte.  It never fails: when it returned, out must be
 *                LINZ_OK; it may be pending (ret = LINZ_INF).
 *
 * Lockfiles (open O_CREAT|O_EXCL) need nothing new: the create is a try-ex
 * on a whole key (LINZ_BUSY for EEXIST) and removing the file a release;
 * the creating session's end is a release-all.
 *
 * Acquires and set-slots whose output is LINZ_ERR had no effect
 * (interrupted, refused, EDEADLK) and constrain nothing; a blocking acquire,
 * a release, a set-slots or a release-all cannot return LINZ_BUSY.
 *
 * What the model does not know: the FIFO queue.  lockcore refuses a try
 * (flock or POSIX) that conflicts with an earlier queued waiter even when
 * no holder conflicts; a caller must leave such tries out (record them as
 * LINZ_ERR) as t/sim/ does for writer preference.  Nor a refused flock
 * conversion: lockcore, like Linux, drops a holder's old mode before it
 * tries the new one, so a busy try-ex by a sh holder leaves it holding
 * nothing, where this model keeps its sh.
 *
 * This module must never do I/O, read a clock or use randomness: the
 * simulator needs the same verdict for the same history on every run.
 */
#ifndef CLUCK_T_LINZ_H
#define CLUCK_T_LINZ_H

#include <stddef.h>
#include <stdint.h>

#define LINZ_INF UINT64_MAX            /* return time of a pending operation */

enum linz_kind {
	LINZ_ACQ_EX,
	LINZ_ACQ_SH,
	LINZ_TRY_EX,
	LINZ_TRY_SH,
	LINZ_RELEASE,
	LINZ_SET_SLOTS,                /* slots := op.slots */
	LINZ_RELEASE_ALL,              /* the client's session ended */
};

enum linz_out {
	LINZ_OK,
	LINZ_BUSY,                     /* EAGAIN from a try-acquire */
	LINZ_ERR,                      /* any other error */
};

enum linz_result {
	LINZ_LINEARIZABLE,
	LINZ_NOT,
	LINZ_UNKNOWN,                  /* step budget exhausted */
};

struct linz_op {
	uint32_t client;               /* lock owner: one client holds at most
	                                  one mode of a key at a time */
	uint64_t key;
	enum linz_kind kind;
	enum linz_out out;             /* ignored when ret == LINZ_INF */
	uint64_t call;                 /* call <= ret */
	uint64_t ret;
	/* fields below are zero for a whole-key (flock) op */
	uint8_t ranged;                /* acquire/try/release of [start, end] */
	uint64_t start, end;           /* inclusive, start <= end */
	uint32_t slots;                /* LINZ_SET_SLOTS: the new count */
};

struct linz;

/*
 * A new, empty history.  budget bounds the total number of search steps one
 * linz_check() may take over all keys (0 = unlimited).  NULL on ENOMEM.
 */
struct linz *linz_new(uint64_t budget);

/* Frees h and everything it owns; NULL is a no-op. */
void linz_free(struct linz *h);

/*
 * Sets the semaphore size of key before its first LINZ_SET_SLOTS op
 * (0 = unlimited shared holders, the default).  0, -EINVAL on a NULL h,
 * -ENOMEM.
 */
int linz_set_slots(struct linz *h, uint64_t key, uint32_t slots);

/*
 * Appends one operation (copied).  Returns its index (>= 0), -EINVAL for an
 * impossible operation (ret < call, unknown kind or output, a blocking
 * acquire that returned LINZ_BUSY, a release-all that did not return
 * LINZ_OK, a ranged op with start > end), -ENOMEM.
 */
int linz_add_op(struct linz *h, const struct linz_op *op);

/*
 * Checks the whole history, key by key in ascending key order.  NOT as
 * soon as one key is not linearizable; UNKNOWN when the budget (or memory)
 * ran out first: keys after that one are not searched, so a later NOT key
 * may go unreported.  Acquires that returned LINZ_ERR are left out.  The
 * history stays and may be checked again (the step count restarts).
 */
enum linz_result linz_check(struct linz *h);

/*
 * Writes a one-paragraph explanation of the last linz_check() verdict into
 * buf (always NUL-terminated when len > 0).  For NOT it names the key, the
 * longest linearisable prefix found and the operation that could not be
 * ordered.  Returns the length the full text needs, like snprintf.
 */
size_t linz_explain(const struct linz *h, char *buf, size_t len);

/* Search steps the last linz_check() took (for tests and budgets). */
uint64_t linz_steps(const struct linz *h);

#endif /* CLUCK_T_LINZ_H */
