/*
 * lockcore/raft_snap.c - snapshots in the Raft engine (see raft.c for the
 * design and the stream framing): the leader sends its latest snapshot in
 * chunks, the follower reassembles them in order and installs the image;
 * the driver's own snapshots compact the log.
 *
 * It must never: install a snapshot at or below its commit index or one
 * whose configuration does not decode, take a chunk out of order,
 * acknowledge an installed snapshot before it is synced, compact entries
 * not yet applied, read outside a chunk, or (leader) go on streaming from
 * an offset above what the follower says it holds.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/raft.h"
#include "lockcore/raft_i.h"
#include "lockcore/le.h"

/* ---- snapshots ---------------------------------------------------------- */

/* Follower: the whole stream is in r->rx; make it our snapshot.  Returns
 * false when the stream does not parse (a broken sender). */
static bool install_rx(struct raft *r)
{
	struct rf_conf c;
	uint32_t clen;

	if (r->rx_len < 4)
		return false;
	clen = le_get32(r->rx);
	if (clen > r->rx_len - 4 || rf_conf_decode(r->rx + 4, clen, &c))
		return false;
	rfi_truncate_from(r, r->snap_index + 1);
	r->dirty_from = 0;             /* the snapshot write drops them all */
	for (size_t i = 0; i < r->nwr; i++)
		if (r->wr[i].upto > r->rx_index)
			r->wr[i].upto = r->rx_index;
	if (r->durable_index > r->rx_index)
		r->durable_index = r->rx_index;
	free(r->snap);
	r->snap = r->rx;
	r->snap_total = r->rx_len;
	r->snap_state_off = 4 + (size_t)clen;
	r->snap_index = r->rx_index;
	r->snap_term = r->rx_term;
	r->snap_conf = c;
	r->rx = NULL;
	r->rx_len = r->rx_cap = 0;
	r->rx_index = r->rx_term = r->rx_total = 0;
	r->commit = r->applied = r->snap_index;
	r->snap_dirty = true;
	rfi_recompute_conf(r);
	return true;
}

void rfi_on_snap(struct raft *r, const struct rf_msg *m)
{
	struct rf_msg resp = { 0 };

	resp.type = RF_MSG_SNAP_RESP;
	resp.from = r->cfg.id;
	resp.to = m->from;
	resp.prev_index = m->prev_index;
	resp.stamp = m->stamp;
	if (m->term < r->term) {
		resp.term = r->term;
		rfi_send_now(r, &resp);
		return;
	}
	if (r->role == RF_LEADER && m->term == r->term)
		return;
	rfi_become_follower(r, m->term, m->from);
	resp.term = r->term;
	/* Already have it: committed, or the very entry is in our log (then
	 * everything before it matches too).  Acknowledge once synced. */
	if (m->prev_index <= r->commit ||
	    (m->prev_index <= last_index(r) && m->prev_term &&
	     term_at(r, m->prev_index) == m->prev_term)) {
		resp.ok = 1;
		resp.snap_offset = m->snap_total;
		rfi_send_held(r, &resp, m->prev_index > r->snap_index ? m->prev_index : 0,
			      m->prev_term);
		return;
	}
	if (r->rx_index != m->prev_index || r->rx_term != m->prev_term ||
	    r->rx_total != m->snap_total) {
		r->rx_len = 0;
		r->rx_index = m->prev_index;
		r->rx_term = m->prev_term;
		r->rx_total = m->snap_total;
	}
	if (m->snap_offset == r->rx_len && m->data_len &&
	    m->snap_offset + m->data_len <= m->snap_total) {
		size_t need = r->rx_len + m->data_len;

		if (need > r->rx_cap) {
			size_t nc = r->rx_cap ? r->rx_cap * 2 : 4096;
			uint8_t *nv;

			while (nc < need)
				nc *= 2;
			if (nc > r->rx_total)
				nc = r->rx_total;
			nv = realloc(r->rx, nc);
			if (!nv)
				return;        /* as if lost */
			r->rx = nv;
			r->rx_cap = nc;
		}
		memcpy(r->rx + r->rx_len, m->data, m->data_len);
		r->rx_len = need;
	}
	if (r->rx_len == r->rx_total) {
		if (install_rx(r)) {
			resp.ok = 1;
			resp.snap_offset = m->snap_total;
			rfi_send_held(r, &resp, 0, 0);     /* after the snapshot write */
			return;
		}
		r->rx_len = 0;         /* broken stream: ask from the start */
	}
	resp.snap_offset = r->rx_len;
	rfi_send_now(r, &resp);
}

void rfi_on_snap_resp(struct raft *r, const struct rf_msg *m)
{
	struct peer *p = rfi_leader_answer(r, m);

	if (!p)
		return;
	if (m->ok) {
		if (m->prev_index > last_index(r))
			return;        /* bogus */
		if (m->prev_index > p->match) {
			p->match = m->prev_index;
			p->progress_ms = r->now;
		}
		if (!p->snap || m->prev_index < p->snap_idx)
			return;
		p->snap = false;
		p->next = p->match + 1;
		p->inflight = 0;
		p->probing = false;
		rfi_advance_commit(r);
		rfi_replicate(r, p, false);
		return;
	}
	if (!p->snap || m->prev_index != p->snap_idx || m->snap_offset > p->snap_next)
		return;
	if (p->snap_inflight)
		p->snap_inflight--;
	/* The follower holds less than it acknowledged: it restarted (the
	 * stream was only in its memory) or had to begin it anew.  What it
	 * acknowledged is gone: go on from what it has, else we would resend
	 * from above its end forever. */
	if (m->snap_offset < p->snap_acked)
		p->snap_acked = m->snap_offset;
	if (m->snap_offset > p->snap_acked) {
		p->snap_acked = m->snap_offset;
		p->progress_ms = r->now;
	} else if (m->snap_offset == p->snap_acked &&
		   m->snap_offset < p->snap_next && m->snap_offset != p->snap_gap) {
		/* The follower got a chunk it cannot use: one went missing.
		 * Resend from its offset, once per gap (the rest of the
		 * window reports the same offset). */
		p->snap_gap = m->snap_offset;
		p->snap_next = m->snap_offset;
		p->snap_inflight = 0;
	}
	rfi_send_snap(r, p, false);
}

/* ---- the driver's snapshots ---------------------------------------------- */

/* Frames conf and the state bytes in `buf` (from malloc, len bytes) into
 * one snapshot stream, reusing buf.  On error buf is untouched. */
int rfi_frame_snapshot(const struct rf_conf *c, uint8_t *buf, size_t len,
		       uint8_t **out, size_t *total, size_t *state_off)
{
	uint8_t hdr[4 + RF_CONF_MAX_BYTES];
	int clen = rf_conf_encode(c, hdr + 4, sizeof(hdr) - 4);
	uint8_t *nb;

	if (clen < 0)
		return -EINVAL;
	le_put32(hdr, (uint32_t)clen);
	if (len > SIZE_MAX - 4 - (size_t)clen)
		return -EINVAL;
	nb = realloc(buf, len + 4 + (size_t)clen);
	if (!nb)
		return -ENOMEM;
	if (len)
		memmove(nb + 4 + clen, nb, len);
	memcpy(nb, hdr, 4 + (size_t)clen);
	*out = nb;
	*total = len + 4 + (size_t)clen;
	*state_off = 4 + (size_t)clen;
	return 0;
}

/* The driver synced a snapshot of the state applied up to ev's index. */
int rfi_on_snapshot(struct raft *r, const struct rf_event *ev)
{
	uint64_t idx = ev->snapshot.index;
	struct rf_conf c;
	uint64_t at;
	uint8_t *nb;
	size_t total, off;
	int rc;

	if (idx > last_index(r) || idx > r->applied || idx <= r->snap_index ||
	    (ev->snapshot.len && !ev->snapshot.buf))
		return -EINVAL;
	rfi_conf_at(r, idx, &c, &at);
	rc = rfi_frame_snapshot(&c, ev->snapshot.buf, ev->snapshot.len, &nb,
				&total, &off);
	if (rc)
		return rc;
	r->snap_term = term_at(r, idx);
	rfi_compact_to(r, idx);
	free(r->snap);
	r->snap = nb;
	r->snap_total = total;
	r->snap_state_off = off;
	r->snap_index = idx;
	r->snap_conf = c;
	if (r->durable_index < idx)
		r->durable_index = idx;
	return 0;
}
