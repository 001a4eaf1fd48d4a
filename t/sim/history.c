/*
 * t/sim/history.c - the seed's lock history: every lock call and return
 * (flock, POSIX ranges, the semaphore and its slots, lockfiles, lost
 * locks' releases) with simulated times, handed to the linearizability
 * checker (t/linz.h) at the end of the run.
 *
 * It must never: record an answer the client did not get, or drop an
 * operation from the history it checks.
 */
#include "t/sim/sim.h"

/* ---- the flock history ---------------------------------------------------- */

void lz_add(const struct linz_op *op)
{
	if (S.lzn == S.lzcap) {
		S.lzcap = S.lzcap ? S.lzcap * 2 : 128;
		S.lzv = cl_xrealloc(S.lzv, S.lzcap * sizeof(*S.lzv));
	}
	S.lzv[S.lzn++] = *op;
}

uint64_t lz_file_key(const char *name)
{
	return LZK_FILE + (uint64_t)(unsigned char)name[2];
}

/* Opens a history op for the request just built, when it is one the model
 * knows: flock acquire or release (the semaphore file too: its slot count
 * changes go in as LINZ_SET_SLOTS), POSIX SETLK and FLUSH (a release of
 * every byte), lockfile CREATE|EXCL (a try-ex: EEXIST is busy) and UNLINK
 * (a release).  Writes are not lock ops.  A session's end comes in as
 * LINZ_RELEASE_ALL ops (lost_release_all). */
void lz_begin(struct client *c)
{
	const struct lc_cmd *m = &c->cmd;
	bool wait = m->flags & LC_LK_WAIT;

	c->lz_on = false;
	if (!S.lz)
		return;
	memset(&c->lz, 0, sizeof(c->lz));
	c->lz.key = m->ino;
	switch (m->type) {
	case LC_CMD_FLOCK:
		c->lz.kind = m->lock_type == LC_WRLCK ? (wait ? LINZ_ACQ_EX : LINZ_TRY_EX)
						      : (wait ? LINZ_ACQ_SH : LINZ_TRY_SH);
		break;
	case LC_CMD_RELEASE:
		c->lz.kind = LINZ_RELEASE;
		break;
	case LC_CMD_SETLK:
		c->lz.kind = m->lock_type == LC_WRLCK ? (wait ? LINZ_ACQ_EX : LINZ_TRY_EX)
						      : (wait ? LINZ_ACQ_SH : LINZ_TRY_SH);
		c->lz.key = m->ino | LZK_POSIX;
		c->lz.ranged = 1;
		c->lz.start = m->start;
		c->lz.end = m->end;
		break;
	case LC_CMD_FLUSH:
		c->lz.kind = LINZ_RELEASE;
		c->lz.key = m->ino | LZK_POSIX;
		c->lz.ranged = 1;
		c->lz.start = 0;
		c->lz.end = UINT64_MAX;
		break;
	case LC_CMD_CREATE:
		if (!(m->flags & LC_CREATE_EXCL))
			return;
		c->lz.kind = LINZ_TRY_EX;
		c->lz.key = lz_file_key(m->name);
		break;
	case LC_CMD_UNLINK:
		c->lz.kind = LINZ_RELEASE;
		c->lz.key = lz_file_key(m->name);
		break;
	case LC_CMD_SETXATTR:
		if (m->ino != S.files[NFILES - 1] || m->data_len != 1)
			return;
		c->lz.kind = LINZ_SET_SLOTS;
		c->lz.slots = (uint32_t)(((const char *)m->data)[0] - '0');
		break;
	default:
		return;
	}
	/* The owner is per acquisition (its release names it too); the low
	 * 32 bits stay unique because sessions and serials are small. */
	c->lz.client = (uint32_t)c->cur_owner;
	c->lz.call = S.now;
	c->lz.ret = LINZ_INF;
	c->lz.out = LINZ_ERR;
	c->lz_on = true;
}

/* Closes the client's open history op with the final status it got. */
void lz_end(struct client *c, int status)
{
	struct linz_op op = c->lz;

	if (!c->lz_on)
		return;
	c->lz_on = false;
	op.ret = S.now;
	if (status == 0)
		op.out = LINZ_OK;
	else if ((status == -EAGAIN || status == -EEXIST) &&
		 (op.kind == LINZ_TRY_EX || op.kind == LINZ_TRY_SH))
		op.out = LINZ_BUSY;
	else if (status == -ENOLCK && op.kind == LINZ_RELEASE)
		op.out = LINZ_OK;          /* done by the session's close */
	else
		op.out = LINZ_ERR;         /* refused: no effect */
	lz_add(&op);
}

/* True when a blocking acquire that conflicts with op (a busy try) was
 * under way at some instant of op's interval.  flock: SPEC's writer
 * preference (a queued exclusive request holds back later shared ones)
 * lets a try-sh fail with no exclusive holder.  POSIX: lockcore refuses a
 * try that conflicts with an earlier queued waiter.  linz's model knows
 * neither queue. */
static bool lz_waiter_during(const struct linz_op *op)
{
	for (size_t k = 0; k < S.lzn; k++) {
		const struct linz_op *w = &S.lzv[k];

		if (w->key != op->key || w->client == op->client || w->call > op->ret ||
		    w->ret < op->call)
			continue;
		if (!op->ranged && w->kind == LINZ_ACQ_EX && op->kind == LINZ_TRY_SH)
			return true;
		if (op->ranged && w->ranged &&
		    (w->kind == LINZ_ACQ_EX || (w->kind == LINZ_ACQ_SH && op->kind == LINZ_TRY_EX)) &&
		    w->start <= op->end && op->start <= w->end)
			return true;
	}
	return false;
}

/* Which of S.lz_kind an op counts under. */
static int lz_kind_of(const struct linz_op *op)
{
	if (op->kind == LINZ_RELEASE_ALL)
		return 4;
	if (op->key & LZK_FILE)
		return 3;
	if (op->key & LZK_POSIX)
		return 1;
	return op->key == S.files[NFILES - 1] ? 2 : 0;
}

/* The end of a seed: requests still without a final answer may or may not
 * have taken effect; then the whole history must linearize. */
void lz_finish(void)
{
	char why[1024];
	enum linz_result r;

	bool faked = false;

	for (int k = 0; k < S.nclients; k++)
		if (S.cl[k].lz_on) {
			S.cl[k].lz_on = false;
			lz_add(&S.cl[k].lz);
		}
	/* lost locks whose session was never closed: release pending */
	for (size_t k = 0; k < S.nlost; k++)
		lz_add(&S.lost[k].op);
	S.nlost = 0;
	for (size_t k = 0; k < S.lzn; k++) {
		struct linz_op *op = &S.lzv[k];

		/* A busy try that a queued waiter may explain proves
		 * nothing: keep it out (as an acquire without effect). */
		if ((op->kind == LINZ_TRY_SH || op->kind == LINZ_TRY_EX) &&
		    op->out == LINZ_BUSY && op->ret != LINZ_INF && lz_waiter_during(op))
			op->out = LINZ_ERR;
		if (S.brk_grant_twice && !faked && op->out == LINZ_BUSY && op->ret != LINZ_INF) {
			/* Only the history lies; the client believed EAGAIN. */
			faked = true;
			op->out = LINZ_OK;
			tr("break grant-twice: owner %u's EAGAIN recorded as OK", op->client);
		}
	}
	for (size_t k = 0; k < S.lzn; k++) {
		if (linz_add_op(S.lz, &S.lzv[k]) < 0)
			fail("history: linz_add_op refused owner %u kind %d out %d",
			     S.lzv[k].client, S.lzv[k].kind, S.lzv[k].out);
		S.lz_kind[lz_kind_of(&S.lzv[k])]++;
	}
	S.lz_ops += S.lzn;
	S.lzn = 0;
	r = linz_check(S.lz);
	S.lz_checked++;
	if (r == LINZ_NOT) {
		linz_explain(S.lz, why, sizeof(why));
		fail("lock history not linearizable: %s", why);
	}
	if (r == LINZ_UNKNOWN) {
		S.lz_unknown++;
		tr("history: linearizability unknown after %llu steps",
		   (unsigned long long)linz_steps(S.lz));
	} else {
		S.lz_linear++;
	}
}
