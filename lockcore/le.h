/*
 * lockcore/le.h - little-endian integers in byte buffers, for every wire
 * and disk format of cluck (commands, Raft messages, the log store).
 *
 * The callers check lengths first: these never check bounds.  Pure: no
 * I/O.  Header-only, so proto/ and net/ use it too without linking any of
 * lockcore (t/check-layers.sh lets them include this header of lockcore's
 * and no other): lockcore, which depends on nothing, cannot include a
 * proto/ copy, and one copy keeps one byte order for every format.
 */
#ifndef CLUCK_LE_H
#define CLUCK_LE_H

#include <stdint.h>

static inline uint8_t *le_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + 4;
}

static inline uint8_t *le_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + 8;
}

static inline uint32_t le_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t le_get64(const uint8_t *p)
{
	return (uint64_t)le_get32(p) | (uint64_t)le_get32(p + 4) << 32;
}

#endif /* CLUCK_LE_H */
