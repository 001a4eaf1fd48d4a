/*
 * t/fuzz/fuzz_peer.c - fuzz target of the peer transport's receive half
 * (proto/seal.h: peer_rx_open), with a fixed key and insecure.
 *
 * Each input is used twice.  First as one datagram, opened by a keyed and
 * by an insecure receiver (node SELF of cluster "a,b,c"): exactly one
 * counter moves, and whatever opens must re-seal to the very same bytes
 * and be refused as a replay the second time.  Then as a script of
 * operations on one keyed receiver, checked against a model of the replay
 * rules (a plain set of seen counters per sender, not a sliding bitmap):
 * each op byte is followed by either a raw datagram (op % 4 == 0: u16
 * length, bytes) or the fields of a datagram the script seals itself
 * (sender 2..5, epoch 1..4, a counter (1..65536, 1..3 windows, or near the
 * sender's previous one), type, body), for SELF with the fixed key or
 * (op % 4 == 3) a forgery: a wrong key, another receiver, another cluster,
 * or our own id with a wrong key.  A forgery must fail authentication
 * (never "replay" or "self") and move no window.  After each accepted
 * datagram the receiver's window (peer_rx_fresh) is compared with the
 * model around its edges.  The seeds (t/fuzz/corpus/peer) are sealed with
 * the same fixed key (key[i] = i) for node SELF of that cluster.
 *
 * It must never: accept a mismatch silently (abort(), so the fuzzer keeps
 * the input), or keep state from one input to the next.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lockcore/le.h"
#include "proto/seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SELF     1u
#define SENDERS  4u                    /* modelled senders: ids 2..5 */
#define CTR_MAX  65536u
#define OPS_MAX  256

struct model {
	int present, tainted;
	uint64_t epoch, top;
	uint64_t recent[8];                /* counters accepted lately */
	unsigned n_recent;
	uint8_t seen[CTR_MAX / 8 + 1];     /* counters 0..CTR_MAX */
};

static uint8_t key[PEER_KEY_BYTES], bad_key[PEER_KEY_BYTES];
static uint8_t cluster[PEER_CLUSTER_BYTES], other_cluster[PEER_CLUSTER_BYTES];
static struct model mdl[SENDERS];

static void check(int ok)
{
	if (!ok)
		abort();
}

static uint64_t sum_rx(const struct peer_stats *s)
{
	return s->rx_ok + s->rx_short + s->rx_version + s->rx_auth +
	       s->rx_replay + s->rx_self;
}

/* The input as one datagram, for receiver key k (NULL: insecure). */
static void one_datagram(const uint8_t *d, size_t n, const uint8_t *k)
{
	struct peer_rx *rx = peer_rx_new(SELF, cluster, k);
	uint8_t *out = malloc(n ? n : 1), *again;
	struct peer_stats st;
	const uint8_t *body;
	uint64_t from;
	uint8_t type;
	size_t len;
	ssize_t sn;
	int rc;

	if (!rx || !out)
		goto out_free;
	rc = peer_rx_open(rx, d, n, out, &from, &type, &body, &len);
	if (rc == -ENOMEM)
		goto out_free;
	check(rc == 0 || rc == -EMSGSIZE || rc == -EPROTO || rc == -EBADMSG ||
	      rc == -EALREADY || rc == -ELOOP);
	peer_rx_stats(rx, &st);
	check(sum_rx(&st) == 1 && (rc == 0) == (st.rx_ok == 1));
	check(st.tx_ok + st.tx_err + st.tx_drop == 0);
	if (rc != 0)
		goto out_free;
	/* a fresh receiver: nothing is a replay yet; 0 would be self */
	check(n == PEER_HDR_BYTES + len + (k ? PEER_TAG_BYTES : 0));
	check(from == le_get64(d + 8) && from != SELF && type == d[2]);
	check(body == out);
	again = malloc(n);
	if (again) {
		sn = peer_seal(k, cluster, from, SELF, le_get64(d + 16),
			       le_get64(d + 24), type, body, len, again, n);
		check(sn == (ssize_t)n && memcmp(again, d, n) == 0);
		free(again);
	}
	check(peer_rx_open(rx, d, n, out, &from, &type, &body, &len) == -EALREADY);
out_free:
	free(out);
	peer_rx_free(rx);
}

static int model_fresh(const struct model *m, uint64_t e, uint64_t c)
{
	if (!m->present || e > m->epoch)
		return 1;
	if (e < m->epoch)
		return 0;
	if (c > m->top)
		return 1;
	if (c + PEER_REPLAY_WINDOW <= m->top)
		return 0;
	return !(m->seen[c / 8] >> (c % 8) & 1);
}

static void model_accept(struct model *m, uint64_t e, uint64_t c)
{
	if (!m->present || e > m->epoch) {
		m->present = 1;
		m->epoch = e;
		m->top = c;
		memset(m->seen, 0, sizeof(m->seen));
	} else if (c > m->top) {
		m->top = c;
	}
	m->seen[c / 8] |= (uint8_t)(1u << (c % 8));
	m->recent[m->n_recent++ % 8] = c;
}

/* After sender s's window moved: asks the receiver about counters around
 * the edges and around what it accepted lately (peer_rx_fresh, which only
 * reads), and sends forgeries of them (which must fail authentication
 * whatever the window says, and move nothing).  This is what sees a stale
 * bit left in a slot the window slid over. */
static void probe(struct peer_rx *rx, struct model *m, uint64_t s, uint8_t *dg,
		  uint8_t *out)
{
	uint64_t c[8 * 3 + 6], from;
	const uint8_t *body;
	size_t n = 0, len;
	uint8_t type;

	c[n++] = m->top;
	c[n++] = m->top + 1;
	c[n++] = m->top - PEER_REPLAY_WINDOW;
	c[n++] = m->top - PEER_REPLAY_WINDOW + 1;
	c[n++] = m->top - 1;
	c[n++] = m->top + PEER_REPLAY_WINDOW;
	for (unsigned i = 0; i < 8 && i < m->n_recent; i++) {
		c[n++] = m->recent[i];
		c[n++] = m->recent[i] + PEER_REPLAY_WINDOW;
		c[n++] = m->recent[i] + 2 * PEER_REPLAY_WINDOW;
	}
	for (size_t i = 0; i < n; i++) {
		if (c[i] == 0 || c[i] > CTR_MAX)
			continue;
		check(peer_rx_fresh(rx, s, m->epoch, c[i]) ==
		      model_fresh(m, m->epoch, c[i]));
		check(peer_seal(bad_key, cluster, s, SELF, m->epoch, c[i],
				PEER_T_RAFT, NULL, 0, dg,
				PEER_HDR_BYTES + PEER_TAG_BYTES) > 0);
		check(peer_rx_open(rx, dg, PEER_HDR_BYTES + PEER_TAG_BYTES, out,
				   &from, &type, &body, &len) == -EBADMSG);
		check(peer_rx_fresh(rx, s, m->epoch, c[i]) ==
		      model_fresh(m, m->epoch, c[i]));
	}
}

/* The model of sender s, or NULL when it is not modelled. */
static struct model *model_of(uint64_t s, uint64_t c)
{
	struct model *m;

	if (s < 2 || s >= 2 + SENDERS)
		return NULL;
	m = &mdl[s - 2];
	if (c > CTR_MAX)
		m->tainted = 1;                /* beyond what the model holds */
	return m->tainted ? NULL : m;
}

static void script(const uint8_t *d, size_t n)
{
	struct peer_rx *rx = peer_rx_new(SELF, cluster, key);
	uint8_t *dg = malloc(PEER_HDR_BYTES + 255 + PEER_TAG_BYTES);
	uint8_t *out = malloc(PEER_HDR_BYTES + 65535 + PEER_TAG_BYTES);
	uint64_t last[SENDERS] = { 1, 1, 1, 1 };
	size_t pos = 0;

	memset(mdl, 0, sizeof(mdl));
	if (!rx || !dg || !out)
		goto out_free;
	for (int ops = 0; pos < n && ops < OPS_MAX; ops++) {
		uint8_t op = d[pos++], type;
		const uint8_t *body;
		struct model *m;
		uint64_t from;
		size_t len;
		int rc;

		if (op % 4 == 0) {
			size_t l;
			uint8_t *raw;

			if (n - pos < 2)
				break;
			l = (size_t)d[pos] | (size_t)d[pos + 1] << 8;
			pos += 2;
			if (l > n - pos)
				l = n - pos;
			raw = malloc(l ? l : 1);
			if (!raw)
				break;
			memcpy(raw, d + pos, l);
			pos += l;
			rc = peer_rx_open(rx, raw, l, out, &from, &type, &body, &len);
			if (rc == 0 || rc == -EALREADY) {
				uint64_t e = le_get64(raw + 16), c = le_get64(raw + 24);

				m = model_of(le_get64(raw + 8), c);
				if (m)
					check(model_fresh(m, e, c) == (rc == 0));
				if (m && rc == 0) {
					model_accept(m, e, c);
					probe(rx, m, le_get64(raw + 8), dg, out);
				}
			}
			free(raw);
		} else {
			uint64_t s, e, c, to = SELF;
			const uint8_t *k = key, *cl = cluster;
			size_t blen;
			ssize_t dn;
			int wrong = op % 4 == 3, fresh = 0;

			if (n - pos < 5)
				break;
			s = 2 + (d[pos] & 3u);
			e = 1 + ((d[pos] >> 2) & 3u);
			c = (uint64_t)d[pos + 1] | (uint64_t)d[pos + 2] << 8;
			/* mostly near the sender's last counter, so slides,
			 * wraps of the bitmap and old counters meet often */
			switch ((d[pos + 3] >> 1) & 3u) {
			case 0:
				c = 1 + c;
				break;
			case 1:
				c = 1 + c % (3 * PEER_REPLAY_WINDOW);
				break;
			default:
				c = last[s - 2] + c % 2200;
				c = c > 1100 ? c - 1100 : 1;
				if (c > CTR_MAX)
					c = CTR_MAX;
				break;
			}
			last[s - 2] = c;
			type = (uint8_t)(1 + (d[pos + 3] & 1u));
			blen = d[pos + 4] % 64u;
			if (wrong) {
				/* the forgeries an attacker without the key
				 * (or replaying elsewhere) can make */
				switch (d[pos + 4] >> 6) {
				case 0:
					k = bad_key;
					break;
				case 1:
					to = SELF + 1 + d[pos + 2] % 8u;
					break;
				case 2:
					cl = other_cluster;
					break;
				default:
					k = bad_key;
					s = SELF;
					break;
				}
			}
			pos += 5;
			if (blen > n - pos)
				blen = n - pos;
			dn = peer_seal(k, cl, s, to, e, c, type, d + pos, blen, dg,
				       PEER_HDR_BYTES + 255 + PEER_TAG_BYTES);
			check(dn == (ssize_t)(PEER_HDR_BYTES + blen + PEER_TAG_BYTES));
			m = s == SELF ? NULL : model_of(s, c);
			if (m)
				fresh = model_fresh(m, e, c);
			rc = peer_rx_open(rx, dg, (size_t)dn, out, &from, &type,
					  &body, &len);
			if (rc == -ENOMEM)
				break;
			if (wrong)
				check(rc == -EBADMSG);
			else if (m)
				check(rc == (fresh ? 0 : -EALREADY));
			/* a forgery moved nothing */
			if (wrong && m)
				check(peer_rx_fresh(rx, s, e, c) == fresh);
			if (rc == 0) {
				check(!wrong && from == s && len == blen &&
				      (blen == 0 || memcmp(body, d + pos, blen) == 0));
				if (m) {
					model_accept(m, e, c);
					probe(rx, m, s, dg, out);
				}
			}
			pos += blen;
		}
	}
out_free:
	free(dg);
	free(out);
	peer_rx_free(rx);
}

/* One input: a datagram (keyed and insecure), then a script. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!key[1]) {
		static const char *abc[] = { "a", "b", "c" }, *abd[] = { "a", "b", "d" };

		for (unsigned i = 0; i < PEER_KEY_BYTES; i++) {
			key[i] = (uint8_t)i;
			bad_key[i] = (uint8_t)(i ^ 0x5a);
		}
		check(peer_cluster_id(abc, 3, cluster) == 0);
		check(peer_cluster_id(abd, 3, other_cluster) == 0);
	}
	one_datagram(data, size, key);
	one_datagram(data, size, NULL);
	script(data, size);
	return 0;
}
