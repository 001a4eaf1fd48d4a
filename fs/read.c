/*
 * fs/read.c - reads behind the read barrier (SPEC 2.1).  A read is queued
 * with its serve function and a copy of its own arguments (rd_serve_fn in
 * fs/fs_i.h) and served exactly once: after its barrier, or from the
 * replica as it is when a barrier cannot help (see below).  It knows the
 * barrier, not the families.
 *
 * It must never: know what a read is, answer a read twice or not at all,
 * keep an interrupted caller waiting for the cluster, or reply EINTR
 * (errno 512 would leak into a stat(2) that does not expect it).
 */
#include "config.h"

#include "fs/fs_i.h"

#include <stdlib.h>
#include <string.h>

/*
 * Every read of the namespace, contents, xattrs and lock table waits for
 * node_read_barrier() and is then answered from the replica, so a change
 * acknowledged on any node is seen by the next operation here.  Alone or
 * on a leader holding its lease the barrier passes before the call
 * returns.  A read is answered from the replica as it is (possibly
 * stale) when the barrier times out, when its caller is interrupted, when
 * our session is not in contact with the cluster (jeopardy: a barrier
 * could only time out), or without memory: a stale read never makes a
 * lock unsafe, since every lock decision is taken in the log.
 */

/* A read waiting for its read barrier.  Freed when its references are
 * gone: one for the handler while it runs, one until the barrier's
 * callback.  The FUSE request is answered before the last reference
 * goes, so libfuse never calls rq_intr on a freed struct. */
struct rq {
	struct fs *fs;
	fuse_req_t req;
	struct rq *prev, *next;
	uint64_t t0;
	rd_serve_fn *serve;          /* answers it (read_submit) */
	const char *name;            /* NULL, or in arg[] after the arg struct */
	uint8_t refs;
	uint8_t answered : 1;
	uint8_t registering : 1;
	uint8_t reg_hit : 1;
	max_align_t arg[];           /* the read's own argument struct, then name */
};

static void rq_unref(struct rq *rq)
{
	struct fs *fs = rq->fs;

	if (--rq->refs)
		return;
	if (rq->prev)
		rq->prev->next = rq->next;
	else
		fs->rqs = rq->next;
	if (rq->next)
		rq->next->prev = rq->prev;
	free(rq);
}

/* The one answer of a read, from the replica as it is now. */
static void rq_answer(struct rq *rq)
{
	if (rq->answered)
		return;
	rq->answered = 1;
	rq->serve(rq->fs, rq->req, rq->arg, rq->name);
}

/* node_read_barrier callback. */
static void rq_ready(void *ctx, int status)
{
	struct rq *rq = ctx;
	struct fs *fs = rq->fs;

	if (!rq->answered) {
		fs_hist_observe(&fs->m.read_wait, mono_ns() - rq->t0);
		if (status < 0)
			fs->m.stale_timeout++;
		rq_answer(rq);
	}
	rq_unref(rq);
}

/* FUSE interrupt: the caller has a signal; answer it now, stale if need
 * be, rather than keep it waiting for the cluster (or leak EINTR into a
 * stat(2) that does not expect it).  The barrier's callback still comes
 * and drops the last reference. */
static void rq_intr(fuse_req_t req, void *data)
{
	struct rq *rq = data;

	(void)req;
	/* Under req->lock during registration: replying now would free
	 * the request under its own lock, so defer. */
	if (rq->registering) {
		rq->reg_hit = 1;
		return;
	}
	if (!rq->answered) {
		rq->fs->m.stale_intr++;
		rq_answer(rq);
	}
}

/* True when our session is not in contact with the cluster (jeopardy or
 * expired): a barrier could only time out. */
static bool out_of_contact(const struct fs *fs)
{
	struct node_status ns;

	memset(&ns, 0, sizeof(ns));
	node_get_status(fs->node, &ns);
	return ns.session && strcmp(ns.session, "ok") != 0;
}

/* Answers the read of req by serve (see fs_i.h) after a read barrier
 * (see above). */
void read_submit(struct fs *fs, fuse_req_t req, rd_serve_fn *serve, const void *arg,
		 size_t arg_size, const char *name)
{
	size_t nl = name ? strlen(name) + 1 : 0;
	struct rq *rq;
	int rc;

	if (out_of_contact(fs)) {
		fs->m.stale_contact++;
		serve(fs, req, arg, name);
		return;
	}
	rq = malloc(sizeof(*rq) + arg_size + nl);
	if (!rq) {
		fs->m.stale_error++;
		serve(fs, req, arg, name);
		return;
	}
	memset(rq, 0, sizeof(*rq));
	rq->fs = fs;
	rq->req = req;
	rq->t0 = mono_ns();
	rq->serve = serve;
	if (arg_size)
		memcpy(rq->arg, arg, arg_size);
	if (nl) {
		memcpy((char *)rq->arg + arg_size, name, nl);
		rq->name = (const char *)rq->arg + arg_size;
	}
	rq->refs = 2;                /* handler + the barrier's callback */
	rq->next = fs->rqs;
	if (fs->rqs)
		fs->rqs->prev = rq;
	fs->rqs = rq;

	/* rq_ready may run inside (alone, or on a leader with its lease). */
	rc = node_read_barrier(fs->node, rq_ready, rq);
	if (rc < 0) {
		rq->refs = 1;
		fs->m.stale_error++;
		rq_answer(rq);
	} else if (!rq->answered) {
		rq->registering = 1;
		fuse_req_interrupt_func(req, rq_intr, rq);
		rq->registering = 0;
		if (rq->reg_hit && !rq->answered) {
			fs->m.stale_intr++;
			rq_answer(rq);
		}
	}
	rq_unref(rq);
}

/* Frees the reads still waiting (see fs_free). */
void read_free_all(struct fs *fs)
{
	/* node_stop() ran every barrier's callback: none is left but by a
	 * node that was never started. */
	while (fs->rqs) {
		struct rq *rq = fs->rqs;

		fs->rqs = rq->next;
		free(rq);
	}
}
