/*
 * lockcore/session_i.h - the inside of one session (lockcore/session.h),
 * shared by its two files: session.c, the protocol (every rule), and
 * session_tab.c, the containers it keeps its state in (the effect queue,
 * the pending table) with the session's life and read-only accessors.
 *
 * It must never: be included outside lockcore/session*.c, or hold a rule
 * of the protocol (those are session.c's, so they read in one file).
 */
#ifndef CLUCK_LOCKCORE_SESSION_I_H
#define CLUCK_LOCKCORE_SESSION_I_H

#include "lockcore/session.h"
#include "lockcore/lc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HELD_MAX         256u        /* releases kept when memory ran out */
#define READ_TIMEOUT_MS  5000u       /* barriers without an op timeout */
#define FX_SLACK         16u         /* queue room for effects no request owes */

/* A request of ours not answered finally yet.  serial 0 marks a free
 * bucket.  While `buf` is set the request is not known to be in the log
 * (no completion applied yet) and is sent again until it is. */
struct pend {
	uint64_t serial;
	session_done_fn fn;          /* NULL: detached (timed out, still sent) */
	void *ctx;
	uint8_t *buf;                /* encoded command, or NULL once in the log */
	uint32_t len;
	uint8_t flags;
	uint64_t owner;              /* lock commands: who.owner (else 0) */
	uint64_t seq;                /* order of first submission: kept when
					it is sent again under a new serial */
	uint64_t sent_ms;            /* last send (0: not sent yet) */
	uint64_t deadline_ms;        /* -ETIMEDOUT then (0: none) */
};

#define PF_ACKED   0x1u              /* the leader said it proposed it */
#define PF_UNLOCK  0x2u              /* releases something: detach, not drop */
#define PF_OPEN    0x4u              /* our SESSION_OPEN: sent before the open */
#define PF_PARKED  0x8u              /* its LC_PENDING was told (once) */

/* A read barrier waiting. */
struct rwait {
	session_read_fn fn;
	void *ctx;
	uint64_t need;               /* the read id whose answer it needs */
	uint64_t target;             /* index to reach (0: not known yet) */
	uint64_t deadline_ms;
};

struct session {
	struct session_config cfg;
	uint64_t *voters;
	bool clustered, halted;
	uint64_t view_lease_ms;  /* our view's lease: ours, or a shorter leader's */

	/* the engine's view */
	bool leading;
	uint64_t leader, hint;   /* the engine's leader; one named by another */
	unsigned rr;             /* round robin when no leader is known */
	enum session_link link;

	/* the session */
	uint64_t session, serial, last_time;
	bool open_done;
	int open_status;
	uint64_t open_sent_ms;   /* first send of the SESSION_OPEN */
	struct lease_view view;
	uint64_t next_ka_ms;
	uint64_t sessions_lost;
	uint64_t reopen_ms;      /* a give-up could not open a new session:
				    it tries again then (0: none) */

	struct pend *pt;         /* open addressing, linear probing */
	size_t pcap, pn;         /* pcap is 0 or a power of two */
	size_t unlocks_out;      /* PF_UNLOCK entries not in our log yet */
	uint64_t seq;            /* the last struct pend's seq handed out */

	struct lc_cmd held[HELD_MAX];  /* releases refused for memory, oldest
	                                  first (no pointers: none needed) */
	size_t nheld;
	bool held_warned;

	struct rwait *rw;
	size_t nrw, caprw;
	uint64_t read_id, read_acked, read_sent_ms;
	uint64_t read_base_ms;    /* our first READ's send time (0: none yet) */

	struct session_effect *fx;     /* effects, from fhead on */
	size_t fhead, nfx, capfx;
	size_t owed;   /* queue room kept: FX_SLACK, plus the answers owed (see
			  fx_push); never more than capfx - (nfx - fhead) */
};

/* ---- session_tab.c: the containers ---------------------------------------- */

/* The effect queue (room for every answer owed is kept: see ss_fx_push). */
bool ss_fx_room(struct session *s, size_t need);
void ss_fx_push(struct session *s, const struct session_effect *e);
void ss_fx_done(struct session *s, session_done_fn fn, void *ctx,
		const struct lc_completion *c);
void ss_fx_send(struct session *s, uint64_t to, const struct session_msg *m);
bool ss_fx_pop(struct session *s, struct session_effect *e);

/* The pending table: open addressing by serial. */
size_t ss_pend_owes(const struct pend *p);
struct pend *ss_pend_find(const struct session *s, uint64_t serial);
int ss_pend_reserve(struct session *s);
struct pend *ss_pend_insert(struct session *s, uint64_t serial, session_done_fn fn,
			    void *ctx);
void ss_pend_remove(struct session *s, struct pend *p);
void ss_pend_drop(struct session *s, struct pend *p);
uint64_t *ss_pend_serials(struct session *s, bool all, size_t *count);

#endif /* CLUCK_LOCKCORE_SESSION_I_H */
