/*
 * lockcore/state.c - the lock state machine's top: lc_state lifetime,
 * lc_apply() (validation, session and dedup checks, dispatch to the
 * namespace, lock and expiry commands), SESSION_OPEN / SESSION_CLOSE and
 * the whole-state counters.
 *
 * It must never: read a clock, do I/O, use randomness, change state for a
 * command it answers from the dedup window or refuses for want of a
 * session (the replay tests rely on it), or leave a command half applied
 * on -ENOMEM (handlers allocate before they change anything).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lci.h"

/* ---- state lifetime ---------------------------------------------------- */

/* Creates a state holding only the root directory. */
struct lc_state *lc_state_new(void)
{
	struct lc_state *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->next_ino = LC_INO_FIRST;
	s->next_token = 1;
	s->next_qseq = 1;
	s->root = lci_inode_new(LC_INO_ROOT, LC_DIR, 0);
	if (!s->root)
		goto undo_state;
	s->root->mode = 01777;
	if (lci_itab_reserve(s, 1) || lci_use_reserve(s, 0))
		goto undo_root;
	lci_iinsert(s, s->root);
	lci_use_add(s, 0, 1, 0);
	return s;
undo_root:
	free(s->uv);
	free(s->inodes.v);
	lci_inode_free(s->root);
undo_state:
	free(s);
	return NULL;
}

/* Frees the state and everything reachable from it. */
void lc_state_free(struct lc_state *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->dents.cap; i++) {
		struct lc_dent *d = s->dents.v[i];

		while (d) {
			struct lc_dent *n = d->hnext;

			if (d->ck & LCI_DENT_SEP)
				free(lci_xd(d));
			d = n;
		}
	}
	for (size_t i = 0; i < s->inodes.cap; i++) {
		struct lc_inode *ip = s->inodes.v[i];

		while (ip) {
			struct lc_inode *n = ip->hnext;

			lci_lk_free(s, ip);
			lci_inode_free(ip);
			ip = n;
		}
	}
	for (size_t i = 0; i < s->sn; i++)
		lci_sess_free(s->sv[i]);
	free(s->inodes.v);
	free(s->dents.v);
	free(s->reqs.v);
	free(s->owners.v);
	free(s->sv);
	free(s->heap);
	free(s->uv);
	lci_px_spares_free(s);
	free(s);
}

/* Index of the last command applied. */
uint64_t lc_applied_index(const struct lc_state *s)
{
	return s ? s->applied : 0;
}

/* Whole-state counters. */
void lc_stats(const struct lc_state *s, struct lc_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!s)
		return;
	st->files = s->inodes.n;
	st->locks_held = s->nholders;
	st->waiters = s->nwaiters;
	st->sessions = s->sn;
	st->grants = s->grants;
	st->releases = s->releases;
	st->expirations = s->expirations;
	st->interrupts = s->interrupts;
	st->next_token = s->next_token;
}

/* Name given at SESSION_OPEN. */
int lc_session_name(const struct lc_state *s, uint64_t session,
		    const char **name, size_t *len)
{
	struct lc_sess *se = s ? lci_sess(s, session) : NULL;

	if (!se)
		return -ENOENT;
	*name = se->name;
	*len = se->name_len;
	return 0;
}

/* ---- apply ------------------------------------------------------------- */

static bool strbad(const void *p, uint32_t len)
{
	return !p && len;
}

/* Structural checks only: anything here fails before touching state. */
static int validate(const struct lc_cmd *c)
{
	if (c->type >= LC_CMD__COUNT)
		return -EINVAL;
	if (strbad(c->name, c->name_len) || strbad(c->name2, c->name2_len) ||
	    strbad(c->data, c->data_len))
		return -EINVAL;
	switch (c->type) {
	case LC_CMD_SESSION_OPEN:
		if (!c->session || (c->origin && c->origin != c->session))
			return -EINVAL;
		if (c->data_len > LC_PATH_MAX)
			return -EINVAL;
		break;
	case LC_CMD_SESSION_CLOSE:
		if (!c->session)
			return -EINVAL;
		break;
	case LC_CMD_FLOCK:
	case LC_CMD_SETLK:
		if (c->lock_type > LC_WRLCK || (c->flags & ~LC_LK_WAIT))
			return -EINVAL;
		if (c->type == LC_CMD_SETLK && c->start > c->end)
			return -EINVAL;
		break;
	default:
		break;
	}
	return 0;
}

/* Worst case number of completions a command can emit, reserved before
 * any change so that emitting never fails half way. */
static size_t out_need(const struct lc_state *s, const struct lc_cmd *c)
{
	struct lc_inode *ip;

	switch (c->type) {
	case LC_CMD_SESSION_CLOSE:
	case LC_CMD_CANCEL:
	case LC_CMD_SETXATTR:
	case LC_CMD_REMOVEXATTR:
		return (size_t)s->nwaiters + 4;
	case LC_CMD_FLOCK:
	case LC_CMD_SETLK:
	case LC_CMD_RELEASE:
	case LC_CMD_FLUSH:
		ip = lci_iget(s, c->ino);
		if (ip && LCI_LK(ip))
			return (size_t)LCI_LK(ip)->nfl_w + LCI_LK(ip)->npx_w + 4;
		return 4;
	default:
		return 2;
	}
}

static int session_open(struct lc_ctx *x)
{
	const struct lc_cmd *c = x->c;
	struct lc_sess *se;

	if (lci_sess(x->s, c->session))
		return 0;
	se = lci_sess_new(c->session, c->data, c->data_len);
	if (!se)
		return -ENOMEM;
	if (lci_sess_insert(x->s, se)) {
		lci_sess_free(se);
		return -ENOMEM;
	}
	return 0;
}

static int session_close(struct lc_ctx *x)
{
	const struct lc_cmd *c = x->c;
	struct lc_sess *se;
	int r;

	if (c->origin && c->origin != c->session)
		return -EPERM;
	se = lci_sess(x->s, c->session);
	if (!se)
		return 0;
	r = lci_session_drop(x, se);
	if (r)
		return r;
	lci_sess_remove(x->s, se);
	lci_sess_free(se);
	return 0;
}

/* Marks `index` applied.  Commands answered from the dedup window or
 * refused for want of a session leave the state, index included, byte for
 * byte as it was (the replay tests rely on it). */
static void applied(struct lc_state *s, uint64_t index,
		    const struct lc_cmd *c)
{
	/* The root is born with the cluster: its times are those of the
	 * first command applied, not the epoch (ls -l would show 1970). */
	if (!s->applied && !s->root->ctime)
		s->root->atime = s->root->mtime = s->root->ctime =
			(int64_t)c->time_ns;
	s->applied = index;
}

/* Applies one committed command; see lc.h. */
int lc_apply(struct lc_state *s, uint64_t index, const struct lc_cmd *c,
	     struct lc_out *out)
{
	struct lc_ctx x = { .s = s, .c = c, .out = out, .index = index };
	struct lc_sess *se = NULL;
	struct lc_dedup *dd;
	size_t own;
	uint64_t ino = 0, token = 0;
	int st;

	if (!s || !c || !out || index <= s->applied)
		return -EINVAL;
	if (lci_out_reserve(out, 1))
		return -ENOMEM;
	x.origin = c->origin;
	x.now = c->time_ns;
	if (validate(c)) {
		lci_emit(&x, c->origin, c->serial, -EINVAL, c->ino, 0);
		return -EINVAL;
	}
	if (c->origin) {
		se = lci_sess(s, c->origin);
		if (!se && !(c->type == LC_CMD_SESSION_OPEN &&
			     c->session == c->origin)) {
			lci_emit(&x, c->origin, c->serial, -ENOLCK, c->ino, 0);
			return 0;
		}
		if (se && (dd = lci_dedup_find(se, c->serial))) {
			lci_emit(&x, c->origin, c->serial, dd->status, dd->ino,
				 dd->token);
			return 0;
		}
		if (se && se->has_serial &&
		    c->serial <= se->max_serial - LC_DEDUP_WINDOW &&
		    se->max_serial >= LC_DEDUP_WINDOW) {
			lci_emit(&x, c->origin, c->serial, -ESTALE, c->ino, 0);
			return 0;
		}
	}
	if (lci_out_reserve(out, out_need(s, c)))
		return -ENOMEM;
	own = out->n++;

	switch (c->type) {
	case LC_CMD_NOP:
		st = 0;
		break;
	case LC_CMD_SESSION_OPEN:
		st = session_open(&x);
		break;
	case LC_CMD_SESSION_CLOSE:
		st = session_close(&x);
		break;
	case LC_CMD_TICK:
		st = lci_tick(&x);
		break;
	case LC_CMD_FLOCK:
	case LC_CMD_SETLK:
	case LC_CMD_RELEASE:
	case LC_CMD_FLUSH:
		ino = c->ino;
		st = lci_lock_apply(&x, &ino, &token);
		break;
	case LC_CMD_CANCEL:
		st = lci_cancel(&x, &ino);
		break;
	default:
		st = lci_ns_apply(&x, &ino);
		break;
	}
	if (st == -ENOMEM) {
		/* Handlers allocate before they change anything. */
		out->n = own;
		return -ENOMEM;
	}
	out->v[own] = (struct lc_completion){ c->origin, c->serial, st, ino,
					      token };
	if (c->origin && (se = lci_sess(s, c->origin)))
		lci_dedup_store(se, c->serial, st, ino, token);
	applied(s, index, c);
	return 0;
}
