/*
 * t/fuzz/fuzz_raft.c - fuzz target of the Raft wire decoders
 * (lockcore/raft.h): rf_msg_decode and rf_conf_decode.  Whatever decodes
 * must re-encode to the same bytes (both formats are canonical), and the
 * re-encoding must decode to the same fields; the payload of every
 * configuration entry of an AppendEntries goes through rf_conf_decode too.
 *
 * It must never: accept a mismatch silently (abort(), so the fuzzer keeps
 * the input), or leak what the decoder allocated.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/raft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
	if (!ok)
		abort();
}

static int same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
	return n == 0 || (a && b && memcmp(a, b, n) == 0);
}

static void same_msg(const struct rf_msg *a, const struct rf_msg *b)
{
	check(a->type == b->type && a->prevote == b->prevote && a->ok == b->ok &&
	      a->from == b->from && a->to == b->to && a->term == b->term &&
	      a->last_index == b->last_index && a->last_term == b->last_term &&
	      a->prev_index == b->prev_index && a->prev_term == b->prev_term &&
	      a->commit == b->commit && a->stamp == b->stamp &&
	      a->n_entries == b->n_entries && a->match_index == b->match_index &&
	      a->conflict_index == b->conflict_index &&
	      a->conflict_term == b->conflict_term &&
	      a->snap_offset == b->snap_offset && a->snap_total == b->snap_total &&
	      a->data_len == b->data_len &&
	      same_bytes(a->data, b->data, a->data_len));
	for (uint32_t i = 0; i < a->n_entries; i++)
		check(a->entries[i].term == b->entries[i].term &&
		      a->entries[i].type == b->entries[i].type &&
		      a->entries[i].len == b->entries[i].len &&
		      same_bytes(a->entries[i].buf, b->entries[i].buf,
				 a->entries[i].len));
}

static void conf_round_trip(const uint8_t *data, size_t size)
{
	struct rf_conf c, c2;
	uint8_t *buf;
	int n;

	if (rf_conf_decode(data, size, &c) < 0)
		return;
	check(c.n_voters >= 1 && c.n_voters <= RF_MAX_VOTERS &&
	      c.n_learners <= RF_MAX_LEARNERS && rf_conf_size(&c) == size);
	buf = malloc(size);
	if (!buf)
		return;
	n = rf_conf_encode(&c, buf, size);
	check(n >= 0 && (size_t)n == size && memcmp(buf, data, size) == 0);
	check(rf_conf_decode(buf, size, &c2) == 0 && c2.n_voters == c.n_voters &&
	      c2.n_learners == c.n_learners &&
	      memcmp(c2.voters, c.voters, c.n_voters * sizeof(c.voters[0])) == 0 &&
	      memcmp(c2.learners, c.learners,
		     c.n_learners * sizeof(c.learners[0])) == 0);
	free(buf);
}

/* One input: as a message, then as a configuration. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rf_msg m, m2;
	uint8_t *buf;
	int n;

	conf_round_trip(data, size);
	if (rf_msg_decode(data, size, &m) < 0)
		return 0;
	check(rf_msg_size(&m) == size);
	buf = malloc(size);
	if (!buf)
		goto out_msg;
	n = rf_msg_encode(&m, buf, size);
	check(n >= 0 && (size_t)n == size && memcmp(buf, data, size) == 0);
	check(rf_msg_encode(&m, buf, size - 1) < 0);
	check(rf_msg_decode(buf, size, &m2) == 0);
	same_msg(&m, &m2);
	rf_msg_release(&m2);
	for (uint32_t i = 0; i < m.n_entries; i++)
		if (m.entries[i].type == RF_ENTRY_CONF)
			conf_round_trip(m.entries[i].buf, m.entries[i].len);
	free(buf);
out_msg:
	rf_msg_release(&m);
	return 0;
}
