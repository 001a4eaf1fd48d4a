/*
 * fs/sbuf.c - the growable byte buffer the renderers write into (struct
 * sbuf, fs/status.h), with its escapes for JSON strings and for the
 * fields of a text line (cluckfs(5)).
 *
 * It must never: fail an append loudly (the error is kept for one check at
 * the end), write past its allocation, or know what it renders.
 */
#include "config.h"

#include "fs/status.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sbuf_grow(struct sbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->err)
		return b->err;
	if (b->n + more + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->n + more + 1) {
		if (cap > SIZE_MAX / 2) {
			b->err = -ENOMEM;
			return b->err;
		}
		cap *= 2;
	}
	p = realloc(b->p, cap);
	if (!p) {
		b->err = -ENOMEM;
		return b->err;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Appends len raw bytes (see status.h). */
void sbuf_add(struct sbuf *b, const void *data, size_t len)
{
	if (sbuf_grow(b, len) < 0)
		return;
	if (len)
		memcpy(b->p + b->n, data, len);
	b->n += len;
	b->p[b->n] = '\0';
}

/* Appends a formatted string (see status.h). */
void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (b->err)
		return;
	va_start(ap, fmt);
	k = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (k < 0 || sbuf_grow(b, (size_t)k) < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
	va_end(ap);
	b->n += (size_t)k;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes
 * there are not one (overlong, surrogate, truncated, > U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (avail < need)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return need;
}

/* The code point of the valid UTF-8 sequence of k bytes at s. */
static uint32_t utf8_cp(const unsigned char *s, size_t k)
{
	static const unsigned char lead_mask[5] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	uint32_t cp = s[0] & lead_mask[k];

	for (size_t i = 1; i < k; i++)
		cp = cp << 6 | (s[i] & 0x3fu);
	return cp;
}

/* Unicode white space beyond ASCII (what Python's str.split() and most
 * "split on white space" tools cut at): escaped in text fields so a field
 * never splits in two, whichever tool reads it. */
static int uni_space(uint32_t cp)
{
	return cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
	       (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
	       cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Appends a JSON string body (see status.h). */
void sbuf_json_str(struct sbuf *b, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < len && !b->err) {
		unsigned char c = u[i];
		size_t k;

		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };

			sbuf_add(b, e, 2);
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			sbuf_printf(b, "\\u%04x", c);
			i++;
			continue;
		}
		k = utf8_len(u + i, len - i);
		if (k == 0) {
			/* Not UTF-8: a lone low surrogate U+DC80..U+DCFF stands
			 * for the byte (Python's "surrogateescape"), which no
			 * UTF-8 text can hold, so the bytes come back exactly
			 * and the document stays valid JSON. */
			sbuf_printf(b, "\\udc%02x", c);
			i++;
			continue;
		}
		sbuf_add(b, u + i, k);
		i += k;
	}
}

/* Appends a one-line text field (see status.h). */
void sbuf_text_str(struct sbuf *b, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < len && !b->err) {
		unsigned char c = u[i];
		size_t k;

		if (c == '\\') {
			sbuf_add(b, "\\\\", 2);
			i++;
			continue;
		}
		if (c <= 0x20 || c == 0x7f) {
			sbuf_printf(b, "\\x%02x", c);
			i++;
			continue;
		}
		k = utf8_len(u + i, len - i);
		if (k == 0 || (k > 1 && uni_space(utf8_cp(u + i, k)))) {
			/* Bytes that are not UTF-8, or a white space: each byte
			 * as \xHH. */
			for (size_t j = 0; j < (k ? k : 1); j++)
				sbuf_printf(b, "\\x%02x", u[i + j]);
			i += k ? k : 1;
			continue;
		}
		sbuf_add(b, u + i, k);
		i += k;
	}
}

/* Frees the buffer and leaves it empty. */
void sbuf_free(struct sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}
