/*
 * lockcore/codec.c - the replicated-log wire format of lc_cmd, name
 * validation and the table of reserved names.
 *
 * Format (little-endian), version 1:
 *   u8 version, u8 type, then the fixed fields in struct order (see
 *   put_fixed()), then three u32-length-prefixed byte strings: name,
 *   name2, data.  Nothing may follow.
 *
 * Must never: read outside [buf, buf+len) when decoding, accept a length
 * beyond the lc.h limits or the bytes left, or accept trailing bytes (the
 * encoding is canonical: encode(decode(x)) == x).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lci.h"
#include "lockcore/le.h"

#define CMD_VERSION 1u
#define FIXED_LEN (2 + 8 * 7 + 4 * 4 + 8 * 3 + 4 * 2 + 8 * 3 + 4 + 1 + 8 * 3)
#define DATA_MAX  LC_CONTENT_MAX

static uint8_t *pstr(uint8_t *p, const void *s, uint32_t n)
{
	p = le_put32(p, n);
	if (n)
		memcpy(p, s, n);
	return p + n;
}

/* Encodes a command for the log; -EINVAL for one that decode would refuse. */
int lc_cmd_encode(const struct lc_cmd *c, uint8_t **buf, size_t *len)
{
	size_t n;
	uint8_t *b, *p;

	if (!c || !buf || !len || c->type >= LC_CMD__COUNT ||
	    c->name_len > LC_PATH_MAX || c->name2_len > LC_PATH_MAX ||
	    c->data_len > DATA_MAX || (!c->name && c->name_len) ||
	    (!c->name2 && c->name2_len) || (!c->data && c->data_len))
		return -EINVAL;
	n = FIXED_LEN + 12 + (size_t)c->name_len + c->name2_len + c->data_len;
	b = malloc(n);
	if (!b)
		return -ENOMEM;
	p = b;
	*p++ = CMD_VERSION;
	*p++ = c->type;
	p = le_put64(p, c->origin);
	p = le_put64(p, c->serial);
	p = le_put64(p, c->time_ns);
	p = le_put64(p, c->ino);
	p = le_put64(p, c->parent);
	p = le_put64(p, c->parent2);
	p = le_put64(p, c->offset);
	p = le_put32(p, c->mode);
	p = le_put32(p, c->uid);
	p = le_put32(p, c->gid);
	p = le_put32(p, c->valid);
	p = le_put64(p, c->size);
	p = le_put64(p, (uint64_t)c->atime_ns);
	p = le_put64(p, (uint64_t)c->mtime_ns);
	p = le_put32(p, c->flags);
	p = le_put32(p, c->ttl_s);
	p = le_put64(p, c->session);
	p = le_put64(p, c->who.session);
	p = le_put64(p, c->who.owner);
	p = le_put32(p, c->who.pid);
	*p++ = c->lock_type;
	p = le_put64(p, c->start);
	p = le_put64(p, c->end);
	p = le_put64(p, c->target_serial);
	p = pstr(p, c->name, c->name_len);
	p = pstr(p, c->name2, c->name2_len);
	p = pstr(p, c->data, c->data_len);
	if ((size_t)(p - b) != n) {
		free(b);
		return -EINVAL;
	}
	*buf = b;
	*len = n;
	return 0;
}

struct rd {
	const uint8_t *p;
	size_t left;
	int bad;
};

static uint64_t g(struct rd *r, int bytes)
{
	uint64_t v = 0;

	if (r->bad || r->left < (size_t)bytes) {
		r->bad = 1;
		return 0;
	}
	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | r->p[i];
	r->p += bytes;
	r->left -= (size_t)bytes;
	return v;
}

static const void *gstr(struct rd *r, uint32_t *n, uint32_t max)
{
	const void *s;

	*n = (uint32_t)g(r, 4);
	if (r->bad || *n > max || *n > r->left) {
		r->bad = 1;
		*n = 0;
		return NULL;
	}
	if (!*n)
		return NULL;
	s = r->p;
	r->p += *n;
	r->left -= *n;
	return s;
}

/* Decodes a log entry; pointers in *cmd point into buf. */
int lc_cmd_decode(const uint8_t *buf, size_t len, struct lc_cmd *c)
{
	struct rd r = { buf, len, 0 };
	struct lc_cmd t;

	if (!c || (!buf && len))
		return -EINVAL;
	memset(&t, 0, sizeof(t));
	if (g(&r, 1) != CMD_VERSION)
		return -EINVAL;
	t.type = (uint8_t)g(&r, 1);
	t.origin = g(&r, 8);
	t.serial = g(&r, 8);
	t.time_ns = g(&r, 8);
	t.ino = g(&r, 8);
	t.parent = g(&r, 8);
	t.parent2 = g(&r, 8);
	t.offset = g(&r, 8);
	t.mode = (uint32_t)g(&r, 4);
	t.uid = (uint32_t)g(&r, 4);
	t.gid = (uint32_t)g(&r, 4);
	t.valid = (uint32_t)g(&r, 4);
	t.size = g(&r, 8);
	t.atime_ns = (int64_t)g(&r, 8);
	t.mtime_ns = (int64_t)g(&r, 8);
	t.flags = (uint32_t)g(&r, 4);
	t.ttl_s = (uint32_t)g(&r, 4);
	t.session = g(&r, 8);
	t.who.session = g(&r, 8);
	t.who.owner = g(&r, 8);
	t.who.pid = (uint32_t)g(&r, 4);
	t.lock_type = (uint8_t)g(&r, 1);
	t.start = g(&r, 8);
	t.end = g(&r, 8);
	t.target_serial = g(&r, 8);
	t.name = gstr(&r, &t.name_len, LC_PATH_MAX);
	t.name2 = gstr(&r, &t.name2_len, LC_PATH_MAX);
	t.data = gstr(&r, &t.data_len, DATA_MAX);
	if (r.bad || r.left || t.type >= LC_CMD__COUNT)
		return -EINVAL;
	*c = t;
	return 0;
}

/* Name component check; see lc.h. */
int lc_name_check(const char *name, size_t len)
{
	if (!name || !len)
		return -EINVAL;
	if (len > LC_NAME_MAX)
		return -ENAMETOOLONG;
	if ((len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return -EINVAL;
	if (memchr(name, '/', len) || memchr(name, 0, len))
		return -EINVAL;
	return 0;
}

const struct lc_reserved lc_reserved[LC_RESERVED_N] = {
	{ "status", LC_INO_STATUS },
	{ "status.json", LC_INO_STATUS_JSON },
	{ "metrics", LC_INO_METRICS },
};

/* Reserved name lookup; see lc.h. */
const struct lc_reserved *lc_reserved_name(const char *name, size_t len)
{
	for (size_t i = 0; i < LC_RESERVED_N; i++)
		if (strlen(lc_reserved[i].name) == len &&
		    !memcmp(lc_reserved[i].name, name, len))
			return &lc_reserved[i];
	return NULL;
}

/* Reserved inode lookup; see lc.h. */
const struct lc_reserved *lc_reserved_ino(uint64_t ino)
{
	for (size_t i = 0; i < LC_RESERVED_N; i++)
		if (lc_reserved[i].ino == ino)
			return &lc_reserved[i];
	return NULL;
}
