/*
 * t/fuzz/fuzz_nmsg.c - fuzz target of the node message decoder
 * (proto/nmsg.h): whatever decodes must re-encode to the very same bytes (the
 * format is canonical) and decode again to the same fields.
 *
 * It must never: accept a mismatch silently (abort(), so the fuzzer keeps
 * the input), or touch anything outside the input.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/nmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One input: decode, re-encode, compare. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nmsg m, m2;
	uint8_t *buf;
	int n;

	if (nmsg_decode(data, size, &m) < 0)
		return 0;
	if (m.kind == 0 || m.kind >= NM__MAX || m.len != size - NMSG_HDR_BYTES ||
	    (m.len && m.body != data + NMSG_HDR_BYTES))
		abort();
	buf = malloc(size);
	if (!buf)
		return 0;
	n = nmsg_encode(&m, buf, size);
	if (n < 0 || (size_t)n != size || memcmp(buf, data, size) != 0)
		abort();
	/* one byte short must be refused, not overrun */
	if (nmsg_encode(&m, buf, size - 1) != -EMSGSIZE && size)
		abort();
	if (nmsg_decode(buf, size, &m2) < 0 || m2.kind != m.kind || m2.ok != m.ok ||
	    m2.session != m.session || m2.serial != m.serial ||
	    m2.stamp != m.stamp || m2.leader != m.leader || m2.len != m.len ||
	    (m.len && memcmp(m2.body, m.body, m.len) != 0))
		abort();
	free(buf);
	return 0;
}
