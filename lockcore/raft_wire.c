/*
 * lockcore/raft_wire.c - the wire codecs of the Raft engine (see raft.h):
 * configurations (also how CONF entries and snapshots carry them) and
 * messages, little endian, with exact sizes.
 *
 * It must never: read or write outside the buffer it is given, accept a
 * configuration with a zero or repeated id or more members than the limits,
 * or accept a message whose declared lengths exceed what it holds.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/raft.h"
#include "lockcore/raft_i.h"
#include "lockcore/le.h"

/* ---- configuration codec ------------------------------------------------- */

/* Encoded size of a configuration; see raft.h. */
size_t rf_conf_size(const struct rf_conf *c)
{
	return 4 + 8 * ((size_t)c->n_voters + c->n_learners);
}

/* Encodes a configuration; see raft.h. */
int rf_conf_encode(const struct rf_conf *c, uint8_t *buf, size_t size)
{
	uint8_t *p = buf;

	if (!c || c->n_voters > RF_MAX_VOTERS || c->n_learners > RF_MAX_LEARNERS)
		return -EINVAL;
	if (!buf || rf_conf_size(c) > size)
		return -EMSGSIZE;
	*p++ = 1;
	*p++ = (uint8_t)c->n_voters;
	*p++ = (uint8_t)(c->n_learners & 0xff);
	*p++ = (uint8_t)(c->n_learners >> 8);
	for (unsigned i = 0; i < c->n_voters; i++)
		p = le_put64(p, c->voters[i]);
	for (unsigned i = 0; i < c->n_learners; i++)
		p = le_put64(p, c->learners[i]);
	return (int)(p - buf);
}

/* Decodes a configuration; see raft.h. */
int rf_conf_decode(const uint8_t *buf, size_t len, struct rf_conf *c)
{
	unsigned nv, nl, n;
	uint64_t ids[RF_MAX_VOTERS + RF_MAX_LEARNERS];

	if (!buf || !c || len < 4 || buf[0] != 1)
		return -EINVAL;
	nv = buf[1];
	nl = (unsigned)buf[2] | (unsigned)buf[3] << 8;
	if (!nv || nv > RF_MAX_VOTERS || nl > RF_MAX_LEARNERS ||
	    len != 4 + 8 * (size_t)(nv + nl))
		return -EINVAL;
	n = nv + nl;
	for (unsigned i = 0; i < n; i++) {
		ids[i] = le_get64(buf + 4 + 8 * (size_t)i);
		if (!ids[i])
			return -EINVAL;
		for (unsigned j = 0; j < i; j++)
			if (ids[j] == ids[i])
				return -EINVAL;
	}
	memset(c, 0, sizeof(*c));
	memcpy(c->voters, ids, nv * sizeof(ids[0]));
	c->n_voters = nv;
	memcpy(c->learners, ids + nv, nl * sizeof(ids[0]));
	c->n_learners = nl;
	return 0;
}

/* ---- wire codec ---------------------------------------------------------- */

static size_t body_size(uint8_t type)
{
	switch (type) {
	case RF_MSG_VOTE: return 16;
	case RF_MSG_VOTE_RESP: return 0;
	case RF_MSG_APPEND: return RF_APPEND_BYTES;
	case RF_MSG_APPEND_RESP: return 32;
	case RF_MSG_SNAP: return SNAP_BODY;
	case RF_MSG_SNAP_RESP: return 24;
	default: return 0;
	}
}

/* Exact encoded size; see raft.h. */
size_t rf_msg_size(const struct rf_msg *m)
{
	size_t n = RF_HDR_BYTES + body_size(m->type);

	if (m->type == RF_MSG_APPEND)
		for (uint32_t i = 0; i < m->n_entries; i++)
			n += RF_ENTRY_HDR + m->entries[i].len;
	if (m->type == RF_MSG_SNAP)
		n += m->data_len;
	return n;
}

/* Encodes; see raft.h. */
int rf_msg_encode(const struct rf_msg *m, uint8_t *buf, size_t size)
{
	size_t len;
	uint8_t *p = buf;

	if (!m || !m->type || m->type >= RF_MSG__COUNT ||
	    (m->n_entries && (!m->entries || m->type != RF_MSG_APPEND)) ||
	    (m->data_len && (!m->data || m->type != RF_MSG_SNAP)) ||
	    (m->type == RF_MSG_SNAP && (m->snap_offset > m->snap_total ||
					m->data_len > m->snap_total - m->snap_offset)))
		return -EINVAL;
	len = rf_msg_size(m);
	if (len > size || len > RF_MSG_MAX)
		return -EMSGSIZE;
	*p++ = RF_MSG_VERSION;
	*p++ = m->type;
	*p++ = (uint8_t)((m->prevote ? 1 : 0) | (m->ok ? 2 : 0));
	*p++ = 0;
	p = le_put32(p, (uint32_t)len);
	p = le_put64(p, m->from);
	p = le_put64(p, m->to);
	p = le_put64(p, m->term);
	switch (m->type) {
	case RF_MSG_VOTE:
		p = le_put64(p, m->last_index);
		p = le_put64(p, m->last_term);
		break;
	case RF_MSG_APPEND:
		p = le_put64(p, m->prev_index);
		p = le_put64(p, m->prev_term);
		p = le_put64(p, m->commit);
		p = le_put64(p, m->stamp);
		p = le_put32(p, m->n_entries);
		for (uint32_t i = 0; i < m->n_entries; i++) {
			const struct rf_entry *e = &m->entries[i];

			p = le_put64(p, e->term);
			*p++ = e->type;
			p = le_put32(p, e->len);
			if (e->len)
				memcpy(p, e->buf, e->len);
			p += e->len;
		}
		break;
	case RF_MSG_APPEND_RESP:
		p = le_put64(p, m->match_index);
		p = le_put64(p, m->conflict_index);
		p = le_put64(p, m->conflict_term);
		p = le_put64(p, m->stamp);
		break;
	case RF_MSG_SNAP:
		p = le_put64(p, m->prev_index);
		p = le_put64(p, m->prev_term);
		p = le_put64(p, m->snap_offset);
		p = le_put64(p, m->snap_total);
		p = le_put64(p, m->stamp);
		p = le_put32(p, m->data_len);
		if (m->data_len)
			memcpy(p, m->data, m->data_len);
		p += m->data_len;
		break;
	case RF_MSG_SNAP_RESP:
		p = le_put64(p, m->prev_index);
		p = le_put64(p, m->snap_offset);
		p = le_put64(p, m->stamp);
		break;
	default:
		break;
	}
	return (int)(p - buf);
}

/* Decodes; see raft.h. */
int rf_msg_decode(const uint8_t *buf, size_t len, struct rf_msg *m)
{
	const uint8_t *p = buf, *end = buf + len;
	struct rf_entry *ev = NULL;

	memset(m, 0, sizeof(*m));
	if (!buf || len < RF_HDR_BYTES || len > RF_MSG_MAX ||
	    buf[0] != RF_MSG_VERSION || !buf[1] || buf[1] >= RF_MSG__COUNT ||
	    (buf[2] & ~3u) || buf[3] || le_get32(buf + 4) != len)
		return -EINVAL;
	m->type = buf[1];
	m->prevote = buf[2] & 1;
	m->ok = (buf[2] >> 1) & 1;
	m->from = le_get64(buf + 8);
	m->to = le_get64(buf + 16);
	m->term = le_get64(buf + 24);
	p = buf + RF_HDR_BYTES;
	if ((size_t)(end - p) < body_size(m->type))
		goto fail_entries;
	if (m->prevote && m->type != RF_MSG_VOTE && m->type != RF_MSG_VOTE_RESP)
		goto fail_entries;
	switch (m->type) {
	case RF_MSG_VOTE:
		m->last_index = le_get64(p);
		m->last_term = le_get64(p + 8);
		p += 16;
		break;
	case RF_MSG_APPEND:
		m->prev_index = le_get64(p);
		m->prev_term = le_get64(p + 8);
		m->commit = le_get64(p + 16);
		m->stamp = le_get64(p + 24);
		m->n_entries = le_get32(p + 32);
		p += RF_APPEND_BYTES;
		/* Each entry needs at least its header: bounds the allocation. */
		if (m->n_entries > (size_t)(end - p) / RF_ENTRY_HDR)
			goto fail_entries;
		if (m->n_entries) {
			ev = calloc(m->n_entries, sizeof(*ev));
			if (!ev) {
				memset(m, 0, sizeof(*m));
				return -ENOMEM;
			}
		}
		for (uint32_t i = 0; i < m->n_entries; i++) {
			if ((size_t)(end - p) < RF_ENTRY_HDR)
				goto fail_entries;
			ev[i].term = le_get64(p);
			ev[i].type = p[8];
			ev[i].len = le_get32(p + 9);
			p += RF_ENTRY_HDR;
			if (ev[i].type > RF_ENTRY_CONF ||
			    ev[i].len > (size_t)(end - p))
				goto fail_entries;
			ev[i].buf = ev[i].len ? p : NULL;
			p += ev[i].len;
		}
		m->entries = ev;
		break;
	case RF_MSG_APPEND_RESP:
		m->match_index = le_get64(p);
		m->conflict_index = le_get64(p + 8);
		m->conflict_term = le_get64(p + 16);
		m->stamp = le_get64(p + 24);
		p += 32;
		break;
	case RF_MSG_SNAP:
		m->prev_index = le_get64(p);
		m->prev_term = le_get64(p + 8);
		m->snap_offset = le_get64(p + 16);
		m->snap_total = le_get64(p + 24);
		m->stamp = le_get64(p + 32);
		m->data_len = le_get32(p + 40);
		p += SNAP_BODY;
		if (m->data_len > (size_t)(end - p) ||
		    m->snap_offset > m->snap_total ||
		    m->data_len > m->snap_total - m->snap_offset)
			goto fail_entries;
		m->data = m->data_len ? p : NULL;
		p += m->data_len;
		break;
	case RF_MSG_SNAP_RESP:
		m->prev_index = le_get64(p);
		m->snap_offset = le_get64(p + 8);
		m->stamp = le_get64(p + 16);
		p += 24;
		break;
	default:
		break;
	}
	if (p != end)
		goto fail_entries;
	return 0;

fail_entries:
	free(ev);
	memset(m, 0, sizeof(*m));
	return -EINVAL;
}

/* Frees what rf_msg_decode() allocated. */
void rf_msg_release(struct rf_msg *m)
{
	if (m) {
		free((void *)m->entries);
		m->entries = NULL;
		m->n_entries = 0;
	}
}
