/*
 * proto/nmsg.c - encoding of node messages (see proto/nmsg.h).
 *
 * It must never read past the buffer or accept a length that disagrees
 * with the header: every field is checked before use.
 */
#include "config.h"

#include "proto/nmsg.h"
#include "lockcore/le.h"

#include <errno.h>
#include <string.h>

/* Encodes m; returns its length or -EMSGSIZE. */
int nmsg_encode(const struct nmsg *m, uint8_t *buf, size_t size)
{
	if (size < NMSG_HDR_BYTES || m->len > size - NMSG_HDR_BYTES)
		return -EMSGSIZE;
	buf[0] = NMSG_VERSION;
	buf[1] = m->kind;
	buf[2] = m->ok;
	buf[3] = 0;
	le_put32(buf + 4, m->len);
	le_put64(buf + 8, m->session);
	le_put64(buf + 16, m->serial);
	le_put64(buf + 24, m->stamp);
	le_put64(buf + 32, m->leader);
	if (m->len)
		memcpy(buf + NMSG_HDR_BYTES, m->body, m->len);
	return (int)(NMSG_HDR_BYTES + m->len);
}

/* Decodes a message; body points into buf.  0 or -EINVAL. */
int nmsg_decode(const uint8_t *buf, size_t len, struct nmsg *m)
{
	memset(m, 0, sizeof(*m));
	if (len < NMSG_HDR_BYTES || buf[0] != NMSG_VERSION || buf[1] == 0 ||
	    buf[1] >= NM__MAX || buf[2] > 1 || buf[3] != 0)
		return -EINVAL;
	m->kind = buf[1];
	m->ok = buf[2];
	m->len = le_get32(buf + 4);
	if (m->len != len - NMSG_HDR_BYTES)
		return -EINVAL;
	if (m->kind != NM_FWD && m->len)
		return -EINVAL;
	m->session = le_get64(buf + 8);
	m->serial = le_get64(buf + 16);
	m->stamp = le_get64(buf + 24);
	m->leader = le_get64(buf + 32);
	m->body = m->len ? buf + NMSG_HDR_BYTES : NULL;
	return 0;
}
