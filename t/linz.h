/*
 * t/linz.h - linearizability checker for histories of lock operations.
 *
 * A history is a set of operations, each with a client, a lock key, a call
 * time, a return time (LINZ_INF for an operation that never returned: it may
 * or may not have taken effect), an input and an output.  linz_check()
 * decides whether some total order of the operations, consistent with real
 * time, is accepted by a sequential reader/writer lock (with an optional
 * semaphore slot count per key).  Keys are independent, so the history is
 * partitioned by key and each partition searched with the Wing-Gong-Lowe
 * algorithm, memoising (set of linearised ops, model state).
 *
 * The sequential model, per key:
 *   acquire-ex   ok iff nobody else holds the key (a holder of the key
 *                converting sh->ex must be the only holder).
 *   acquire-sh   ok iff no other client holds it ex and (slots == 0 or the
 *                number of sh holders is below slots); a client that holds
 *                ex downgrades.  Re-acquiring the mode one holds is a no-op.
 *   try-ex/sh    ok exactly when the blocking version would be granted now,
 *                busy (LINZ_BUSY) exactly when it would have to wait.
 *   release      ok iff the client holds the key (ex or sh), else LINZ_ERR.
 * An acquire whose output is LINZ_ERR had no effect (interrupted, refused)
 * and constrains nothing; a blocking acquire cannot return LINZ_BUSY.
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
 * Sets the semaphore size of key (0 = unlimited shared holders, the
 * default).  0, -EINVAL on a NULL h, -ENOMEM.
 */
int linz_set_slots(struct linz *h, uint64_t key, uint32_t slots);

/*
 * Appends one operation (copied).  Returns its index (>= 0), -EINVAL for an
 * impossible operation (ret < call, unknown kind or output, a blocking
 * acquire that returned LINZ_BUSY, a finite ret of UINT64_MAX), -ENOMEM.
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
