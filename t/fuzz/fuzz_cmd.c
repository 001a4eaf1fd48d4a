/*
 * t/fuzz/fuzz_cmd.c - fuzz target of the lock state machine's decoders
 * (lockcore/lc.h): lc_cmd_decode (what a forwarded command or a log entry
 * holds) and lc_state_load (what a snapshot holds).  A decoded command
 * must re-encode to the same bytes (the codec promises encode(decode(x))
 * == x) and decode again to the same fields; a loaded state must save,
 * load again to the same hash, and save to the same bytes.
 *
 * It must never: accept a mismatch silently (abort(), so the fuzzer keeps
 * the input), or leak a state or a buffer.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/lc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
	if (!ok)
		abort();
}

static int same_bytes(const void *a, const void *b, size_t n)
{
	return n == 0 || (a && b && memcmp(a, b, n) == 0);
}

static void same_cmd(const struct lc_cmd *a, const struct lc_cmd *b)
{
	check(a->type == b->type && a->origin == b->origin &&
	      a->serial == b->serial && a->time_ns == b->time_ns &&
	      a->ino == b->ino && a->parent == b->parent &&
	      a->parent2 == b->parent2 && a->name_len == b->name_len &&
	      a->name2_len == b->name2_len && a->data_len == b->data_len &&
	      same_bytes(a->name, b->name, a->name_len) &&
	      same_bytes(a->name2, b->name2, a->name2_len) &&
	      same_bytes(a->data, b->data, a->data_len) &&
	      a->offset == b->offset && a->mode == b->mode && a->uid == b->uid &&
	      a->gid == b->gid && a->valid == b->valid && a->size == b->size &&
	      a->atime_ns == b->atime_ns && a->mtime_ns == b->mtime_ns &&
	      a->flags == b->flags && a->ttl_s == b->ttl_s &&
	      a->session == b->session && a->who.session == b->who.session &&
	      a->who.owner == b->who.owner && a->who.pid == b->who.pid &&
	      a->lock_type == b->lock_type && a->start == b->start &&
	      a->end == b->end && a->target_serial == b->target_serial);
}

static void cmd_round_trip(const uint8_t *data, size_t size)
{
	struct lc_cmd c, c2;
	uint8_t *buf = NULL;
	size_t len = 0;

	if (lc_cmd_decode(data, size, &c) < 0)
		return;
	if (lc_cmd_encode(&c, &buf, &len) == -ENOMEM)
		return;
	check(buf != NULL && len == size && memcmp(buf, data, size) == 0);
	check(lc_cmd_decode(buf, len, &c2) == 0);
	same_cmd(&c, &c2);
	free(buf);
}

static void state_round_trip(const uint8_t *data, size_t size)
{
	struct lc_state *s, *s2;
	uint8_t *b1 = NULL, *b2 = NULL;
	size_t n1 = 0, n2 = 0;
	int rc;

	if (lc_state_load(data, size, &s) < 0)
		return;
	if (lc_state_save(s, &b1, &n1) < 0)
		goto out_s;
	rc = lc_state_load(b1, n1, &s2);
	if (rc == -ENOMEM)
		goto out_b1;
	check(rc == 0);                        /* our own save must load */
	check(lc_state_hash(s) == lc_state_hash(s2));
	if (lc_state_save(s2, &b2, &n2) == 0)
		check(n1 == n2 && memcmp(b1, b2, n1) == 0);
	free(b2);
	lc_state_free(s2);
out_b1:
	free(b1);
out_s:
	lc_state_free(s);
}

/* One input: as a command, then as a saved state. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cmd_round_trip(data, size);
	state_round_trip(data, size);
	return 0;
}
