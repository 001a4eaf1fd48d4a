/*
 * t/unit_peer.c - unit tests of net/peer.[ch]: sealing and opening
 * (round trip, wrong key, every tampered region), the replay rules (same
 * datagram, out of order within the window, below it, epochs, forged
 * datagrams that must not move the window), a datagram bound to one
 * receiver and one cluster (replayed to every other node id, or to a
 * cluster sharing the key, it is an authentication failure), forgeries
 * naming the receiver or a seen counter counted as authentication
 * failures, malformed headers, our own id, sealed/clear mismatch both
 * ways, the counters, peer_load_key (owner, mode, symlinks), and real
 * exchanges over UDP sockets on 127.0.0.1 driven by net/loop, with a
 * datagram captured on its way to one node and replayed to another.
 *
 * It must never pass by itself: every test asserts on what the transport
 * returns or delivers, and each was checked to fail when the code it
 * covers is broken.  It must never use a fixed port (ephemeral only).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "net/loop.h"
#include "net/peer.h"
#include "t/lib/cunit.h"

#define BUF (PEER_HDR_BYTES + PEER_BODY_MAX + PEER_TAG_BYTES + 1)

static const uint8_t key_a[PEER_KEY_BYTES] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
static const uint8_t key_b[PEER_KEY_BYTES] = { 9, 8, 7, 6, 5, 4, 3, 2, 1 };
static const uint8_t msg[] = "append entries, please";
/* cluster identities: voters a,b,c (the tests' cluster) and a,b,d */
static uint8_t cl_a[PEER_CLUSTER_BYTES], cl_b[PEER_CLUSTER_BYTES];

static uint8_t dg[BUF], out[BUF];

/* Seals msg from `sender` to `receiver` of `cluster` into dg; returns
 * the length. */
static size_t seal_to(const uint8_t *key, const uint8_t *cluster,
		      uint64_t sender, uint64_t receiver, uint64_t epoch,
		      uint64_t counter)
{
	ssize_t n = peer_seal(key, cluster, sender, receiver, epoch, counter,
			      PEER_T_RAFT, msg, sizeof(msg), dg, sizeof(dg));

	CU_ASSERT_FATAL(n > 0);
	return (size_t)n;
}

/* Seals msg from `sender` to node 1 of cluster cl_a into dg. */
static size_t seal(const uint8_t *key, uint64_t sender, uint64_t epoch,
		   uint64_t counter)
{
	return seal_to(key, cl_a, sender, 1, epoch, counter);
}

/* Opens dg (n bytes); on success checks it is msg from `sender`. */
static int open_dg(struct peer_rx *rx, size_t n, uint64_t sender)
{
	const uint8_t *body = NULL;
	uint64_t from = 0;
	uint8_t type = 0;
	size_t len = 0;
	int rc = peer_rx_open(rx, dg, n, out, &from, &type, &body, &len);

	if (rc == 0) {
		CU_ASSERT_EQUAL(from, sender);
		CU_ASSERT_EQUAL(type, PEER_T_RAFT);
		CU_ASSERT_EQUAL(len, sizeof(msg));
		CU_ASSERT(body && memcmp(body, msg, sizeof(msg)) == 0);
	}
	return rc;
}

/* Seals (sender 7, epoch, counter) with key_a and opens it. */
static int one(struct peer_rx *rx, uint64_t epoch, uint64_t counter)
{
	return open_dg(rx, seal(key_a, 7, epoch, counter), 7);
}

static void test_round_trip(void)
{
	struct peer_rx *rx = peer_rx_new(1, cl_a, key_a);
	struct peer_stats st;
	size_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(rx);
	n = seal(key_a, 7, 1, 1);
	CU_ASSERT_EQUAL(n, PEER_HDR_BYTES + sizeof(msg) + PEER_TAG_BYTES);
	/* the body travels sealed: the plaintext is not in the datagram */
	CU_ASSERT(memmem(dg, n, msg, 8) == NULL);
	CU_ASSERT_EQUAL(dg[0], PEER_MAGIC);
	CU_ASSERT_EQUAL(dg[3], 0);
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), 0);
	/* an empty body and the largest one */
	CU_ASSERT_EQUAL(peer_seal(key_a, cl_a, 7, 1, 1, 2, PEER_T_NODE, NULL, 0, dg,
				  sizeof(dg)), PEER_HDR_BYTES + PEER_TAG_BYTES);
	{
		const uint8_t *body;
		uint64_t from;
		uint8_t type;
		size_t len = 99;

		CU_ASSERT_EQUAL(peer_rx_open(rx, dg, PEER_HDR_BYTES + PEER_TAG_BYTES,
					     out, &from, &type, &body, &len), 0);
		CU_ASSERT_EQUAL(len, 0);
		CU_ASSERT_EQUAL(type, PEER_T_NODE);
	}
	{
		uint8_t *big = malloc(PEER_BODY_MAX + 1);
		const uint8_t *body;
		uint64_t from;
		uint8_t type;
		size_t len;

		CU_ASSERT_PTR_NOT_NULL_FATAL(big);
		for (size_t i = 0; i < PEER_BODY_MAX + 1; i++)
			big[i] = (uint8_t)(i * 31);
		CU_ASSERT_EQUAL(peer_seal(key_a, cl_a, 7, 1, 1, 3, PEER_T_RAFT, big,
					  PEER_BODY_MAX + 1, dg, sizeof(dg)), -EMSGSIZE);
		CU_ASSERT_EQUAL(peer_seal(key_a, cl_a, 7, 1, 1, 3, PEER_T_RAFT, big,
					  PEER_BODY_MAX, dg, sizeof(dg)), 65507);
		CU_ASSERT_EQUAL(peer_rx_open(rx, dg, 65507, out, &from, &type,
					     &body, &len), 0);
		CU_ASSERT_EQUAL(len, PEER_BODY_MAX);
		CU_ASSERT(memcmp(body, big, PEER_BODY_MAX) == 0);
		free(big);
	}
	/* out too small */
	CU_ASSERT_EQUAL(peer_seal(key_a, cl_a, 7, 1, 1, 4, PEER_T_RAFT, msg, sizeof(msg), dg,
				  PEER_HDR_BYTES + sizeof(msg)), -EMSGSIZE);
	/* malformed arguments */
	CU_ASSERT_EQUAL(peer_seal(key_a, cl_a, 7, 1, 1, 4, 0, msg, sizeof(msg), dg,
				  sizeof(dg)), -EINVAL);
	CU_ASSERT_EQUAL(peer_seal(key_a, cl_a, 0, 1, 1, 4, PEER_T_RAFT, msg, sizeof(msg), dg,
				  sizeof(dg)), -EINVAL);
	CU_ASSERT_EQUAL(peer_seal(key_a, cl_a, 7, 0, 1, 4, PEER_T_RAFT, msg, sizeof(msg), dg,
				  sizeof(dg)), -EINVAL);
	peer_rx_stats(rx, &st);
	CU_ASSERT_EQUAL(st.rx_ok, 3);
	peer_rx_free(rx);
}

static void test_wrong_key(void)
{
	struct peer_rx *rx = peer_rx_new(1, cl_a, key_b);
	struct peer_stats st;

	CU_ASSERT_PTR_NOT_NULL_FATAL(rx);
	CU_ASSERT_EQUAL(one(rx, 1, 1), -EBADMSG);
	peer_rx_stats(rx, &st);
	CU_ASSERT_EQUAL(st.rx_auth, 1);
	CU_ASSERT_EQUAL(st.rx_ok, 0);
	peer_rx_free(rx);
}

static void test_tamper(void)
{
	struct peer_rx *rx = peer_rx_new(1, cl_a, key_a);
	size_t n = seal(key_a, 7, 5, 5);
	/* header bytes the receiver does not reject before authentication
	 * (type 1 -> 2 is still a valid type; ids, epoch and counter all are
	 * in the nonce or the additional data), one body byte, one tag byte */
	static const size_t at[] = { 2, 8, 15, 16, 24, 31, PEER_HDR_BYTES,
				     PEER_HDR_BYTES + 5, 0 /* tag: set below */ };
	struct peer_stats st;
	unsigned k;

	CU_ASSERT_PTR_NOT_NULL_FATAL(rx);
	for (k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
		size_t i = k == sizeof(at) / sizeof(at[0]) - 1 ? n - 3 : at[k];
		uint8_t bit = i == 2 ? 0x03 : 0x01;  /* RAFT(1) ^ 3 = NODE(2) */

		n = seal(key_a, 7, 5, 5);
		dg[i] ^= bit;
		CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EBADMSG);
	}
	peer_rx_stats(rx, &st);
	CU_ASSERT_EQUAL(st.rx_auth, sizeof(at) / sizeof(at[0]));
	/* the window never moved: the genuine datagram still opens */
	CU_ASSERT_EQUAL(one(rx, 5, 5), 0);
	peer_rx_free(rx);
}

static void test_replay(void)
{
	struct peer_rx *rx = peer_rx_new(1, cl_a, key_a);
	struct peer_stats st;
	size_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(rx);
	n = seal(key_a, 7, 5, 1);
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), 0);
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EALREADY);
	/* out of order within the window: each accepted exactly once */
	CU_ASSERT_EQUAL(one(rx, 5, 10), 0);
	CU_ASSERT_EQUAL(one(rx, 5, 4), 0);
	CU_ASSERT_EQUAL(one(rx, 5, 3), 0);
	CU_ASSERT_EQUAL(one(rx, 5, 4), -EALREADY);
	CU_ASSERT_EQUAL(one(rx, 5, 10), -EALREADY);
	CU_ASSERT_EQUAL(one(rx, 5, 9), 0);
	/* the window slides: 2000 is new; 2000 - WINDOW + 1 is inside (fresh),
	 * 2000 - WINDOW and 9 are below */
	CU_ASSERT_EQUAL(one(rx, 5, 2000), 0);
	CU_ASSERT_EQUAL(one(rx, 5, 2000 - PEER_REPLAY_WINDOW), -EALREADY);
	CU_ASSERT_EQUAL(one(rx, 5, 9), -EALREADY);
	CU_ASSERT_EQUAL(one(rx, 5, 2000 - PEER_REPLAY_WINDOW + 1), 0);
	CU_ASSERT_EQUAL(one(rx, 5, 2000 - PEER_REPLAY_WINDOW + 1), -EALREADY);
	/* a slide of 10 forgets the slots it passes: 2001 shares its slot
	 * with 977 (seen), yet it is new */
	CU_ASSERT_EQUAL(one(rx, 5, 2010), 0);
	CU_ASSERT_EQUAL(one(rx, 5, 2001), 0);
	CU_ASSERT_EQUAL(one(rx, 5, 1999), 0);
	CU_ASSERT_EQUAL(one(rx, 5, 2000), -EALREADY);
	/* a slide by the whole window forgets everything: 3023 shares its
	 * slot with 1999 (seen) */
	CU_ASSERT_EQUAL(one(rx, 5, 2010 + PEER_REPLAY_WINDOW), 0);
	CU_ASSERT_EQUAL(one(rx, 5, 2010), -EALREADY);
	CU_ASSERT_EQUAL(one(rx, 5, 1999 + PEER_REPLAY_WINDOW), 0);
	CU_ASSERT_EQUAL(one(rx, 5, 1999 + PEER_REPLAY_WINDOW), -EALREADY);
	/* an older epoch is a replay whatever its counter */
	CU_ASSERT_EQUAL(one(rx, 4, 1000000), -EALREADY);
	/* a newer epoch resets the window: small counters are new again */
	CU_ASSERT_EQUAL(one(rx, 6, 1), 0);
	CU_ASSERT_EQUAL(one(rx, 6, 1), -EALREADY);
	CU_ASSERT_EQUAL(one(rx, 5, 5000), -EALREADY);
	/* windows are per sender */
	CU_ASSERT_EQUAL(open_dg(rx, seal(key_a, 8, 6, 1), 8), 0);
	peer_rx_stats(rx, &st);
	CU_ASSERT_EQUAL(st.rx_replay, 12);
	CU_ASSERT_EQUAL(st.rx_ok, 14);
	peer_rx_free(rx);
}

static void test_forged_counter(void)
{
	struct peer_rx *rx = peer_rx_new(1, cl_a, key_a);
	size_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(rx);
	CU_ASSERT_EQUAL(one(rx, 5, 1), 0);
	/* a forger sets a huge counter and a newer epoch: the tag fails */
	n = seal(key_b, 7, 5, UINT64_MAX - 1);
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EBADMSG);
	n = seal(key_b, 7, 99, 1);
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EBADMSG);
	/* and a genuine datagram moved in the header */
	n = seal(key_a, 7, 5, 2);
	dg[24] ^= 0x80;                 /* counter += 128 */
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EBADMSG);
	/* the window did not move: the next genuine datagrams open */
	CU_ASSERT_EQUAL(one(rx, 5, 2), 0);
	CU_ASSERT_EQUAL(one(rx, 5, 3), 0);
	peer_rx_free(rx);
}

/* Counters of rx as one string, for readable failures. */
static void expect_stats(struct peer_rx *rx, uint64_t ok, uint64_t auth,
			 uint64_t replay, uint64_t self)
{
	struct peer_stats st;

	peer_rx_stats(rx, &st);
	CU_ASSERT_EQUAL(st.rx_ok, ok);
	CU_ASSERT_EQUAL(st.rx_auth, auth);
	CU_ASSERT_EQUAL(st.rx_replay, replay);
	CU_ASSERT_EQUAL(st.rx_self, self);
	CU_ASSERT_EQUAL(st.rx_short + st.rx_version, 0);
}

/*
 * Issue 9: follower F (7) sends to the leader L (1) and to follower O (2)
 * with one counter.  An attacker records what F sends O and, once F died,
 * replays it to L, whose window for F has never seen those counters.  The
 * datagram must open at O once and nowhere else, and the failures count
 * as authentication failures that leave every window where it was.
 */
static void test_receiver_bound(void)
{
	static const uint64_t others[] = { 1, 3, 4, 5, 6, 8, 0x8000000000000001ull,
					   UINT64_MAX, 7 /* F itself */ };
	struct peer_rx *o = peer_rx_new(2, cl_a, key_a);
	uint8_t to_o[BUF];
	size_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	/* F's counter 2 went to O; 1 and 3 went to L */
	n = seal_to(key_a, cl_a, 7, 2, 5, 2);
	memcpy(to_o, dg, n);
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		uint64_t r = others[i];
		struct peer_rx *rx = peer_rx_new(r, cl_a, key_a);

		CU_ASSERT_PTR_NOT_NULL_FATAL(rx);
		if (r == 1) {
			/* the leader heard 1 and 3 from F: 2 is inside its window */
			CU_ASSERT_EQUAL(open_dg(rx, seal_to(key_a, cl_a, 7, 1, 5, 1), 7), 0);
			CU_ASSERT_EQUAL(open_dg(rx, seal_to(key_a, cl_a, 7, 1, 5, 3), 7), 0);
		}
		memcpy(dg, to_o, n);
		CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EBADMSG);
		/* again: still a forgery here, never a replay */
		CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EBADMSG);
		expect_stats(rx, r == 1 ? 2 : 0, 2, 0, 0);
		/* nothing recorded: F's own counter 2 for this node still opens */
		CU_ASSERT_EQUAL(peer_rx_fresh(rx, 7, 5, 2), 1);
		if (r != 7) {
			CU_ASSERT_EQUAL(open_dg(rx, seal_to(key_a, cl_a, 7, r, 5, 2), 7), 0);
		} else {
			/* F's own datagram back at F: it opens only as "self" when
			 * it names F as the receiver */
			CU_ASSERT_EQUAL(open_dg(rx, seal_to(key_a, cl_a, 7, 7, 5, 2), 7), -ELOOP);
		}
		peer_rx_free(rx);
	}
	/* at O: accepted once, then a replay */
	memcpy(dg, to_o, n);
	CU_ASSERT_EQUAL(open_dg(o, n, 7), 0);
	CU_ASSERT_EQUAL(open_dg(o, n, 7), -EALREADY);
	CU_ASSERT_EQUAL(open_dg(o, n, 7), -EALREADY);
	expect_stats(o, 1, 0, 2, 0);
	/* direction: O cannot be handed F's datagram as if O had sent it to F,
	 * nor one from O to F as if F had sent it (sender is authenticated) */
	n = seal_to(key_a, cl_a, 2, 7, 5, 9);
	dg[8] = 7;                      /* claim F as the sender... */
	CU_ASSERT_EQUAL(open_dg(o, n, 7), -EBADMSG);
	expect_stats(o, 1, 1, 2, 0);
	peer_rx_free(o);
}

/* Forgeries that name the receiver as sender, or a counter already seen,
 * are authentication failures (not "self", not "replay") and move nothing. */
static void test_forged_classified(void)
{
	struct peer_rx *rx = peer_rx_new(1, cl_a, key_a);
	size_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(rx);
	/* our own id as sender, with a wrong key and with a flipped tag */
	CU_ASSERT_EQUAL(open_dg(rx, seal(key_b, 1, 1, 1), 1), -EBADMSG);
	n = seal(key_a, 1, 1, 1);
	dg[n - 1] ^= 1;
	CU_ASSERT_EQUAL(open_dg(rx, n, 1), -EBADMSG);
	expect_stats(rx, 0, 2, 0, 0);
	/* a genuine datagram with our id (another node with our name and the
	 * key) is "self" */
	CU_ASSERT_EQUAL(open_dg(rx, seal(key_a, 1, 1, 1), 1), -ELOOP);
	expect_stats(rx, 0, 2, 0, 1);
	/* a seen counter, forged: auth, not replay */
	CU_ASSERT_EQUAL(one(rx, 5, 10), 0);
	CU_ASSERT_EQUAL(open_dg(rx, seal(key_b, 7, 5, 10), 7), -EBADMSG);
	CU_ASSERT_EQUAL(open_dg(rx, seal(key_b, 7, 4, 10), 7), -EBADMSG);   /* old epoch */
	CU_ASSERT_EQUAL(open_dg(rx, seal(key_b, 7, 5, 1), 7), -EBADMSG);    /* inside */
	expect_stats(rx, 1, 5, 0, 1);
	/* forged ones ahead of the window do not move it */
	CU_ASSERT_EQUAL(open_dg(rx, seal(key_b, 7, 5, 10 + 5 * PEER_REPLAY_WINDOW), 7), -EBADMSG);
	CU_ASSERT_EQUAL(open_dg(rx, seal(key_b, 7, 99, 1), 7), -EBADMSG);
	CU_ASSERT_EQUAL(peer_rx_fresh(rx, 7, 5, 9), 1);
	CU_ASSERT_EQUAL(peer_rx_fresh(rx, 7, 5, 10), 0);
	CU_ASSERT_EQUAL(peer_rx_fresh(rx, 7, 98, 1), 1);
	CU_ASSERT_EQUAL(one(rx, 5, 9), 0);
	CU_ASSERT_EQUAL(one(rx, 5, 10), -EALREADY);
	expect_stats(rx, 2, 7, 1, 1);
	/* no window is made for a sender that never authenticated */
	CU_ASSERT_EQUAL(open_dg(rx, seal(key_b, 8, 1, 50), 8), -EBADMSG);
	CU_ASSERT_EQUAL(peer_rx_fresh(rx, 8, 1, 1), 1);
	CU_ASSERT_EQUAL(open_dg(rx, seal(key_a, 8, 1, 1), 8), 0);
	peer_rx_free(rx);
}

/* The cluster identity: the same for every order of one voter list,
 * another for another list; a datagram of a cluster sharing our key does
 * not open here. */
static void test_cluster_bound(void)
{
	static const char *abc[] = { "a", "b", "c" }, *cab[] = { "c", "a", "b" };
	static const char *ab_c[] = { "ab", "c" }, *a_bc[] = { "a", "bc" };
	uint8_t x[PEER_CLUSTER_BYTES], y[PEER_CLUSTER_BYTES];
	struct peer_rx *rx = peer_rx_new(1, cl_a, key_a);
	struct peer_rx *clear = peer_rx_new(1, cl_a, NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(rx);
	CU_ASSERT_PTR_NOT_NULL_FATAL(clear);
	CU_ASSERT_EQUAL(peer_cluster_id(abc, 3, x), 0);
	CU_ASSERT_EQUAL(peer_cluster_id(cab, 3, y), 0);
	CU_ASSERT(memcmp(x, y, sizeof(x)) == 0);
	CU_ASSERT(memcmp(x, cl_a, sizeof(x)) == 0);
	CU_ASSERT(memcmp(cl_a, cl_b, sizeof(x)) != 0);
	CU_ASSERT_EQUAL(peer_cluster_id(ab_c, 2, x), 0);
	CU_ASSERT_EQUAL(peer_cluster_id(a_bc, 2, y), 0);
	CU_ASSERT(memcmp(x, y, sizeof(x)) != 0);
	CU_ASSERT_EQUAL(peer_cluster_id(abc, 2, y), 0);        /* a subset */
	CU_ASSERT(memcmp(cl_a, y, sizeof(y)) != 0);
	CU_ASSERT_EQUAL(peer_cluster_id(abc, 0, x), -EINVAL);
	/* same key, same ids, another cluster */
	CU_ASSERT_EQUAL(open_dg(rx, seal_to(key_a, cl_b, 7, 1, 1, 1), 7), -EBADMSG);
	CU_ASSERT_EQUAL(open_dg(rx, seal_to(key_a, NULL, 7, 1, 1, 1), 7), -EBADMSG);
	CU_ASSERT_EQUAL(peer_rx_fresh(rx, 7, 1, 1), 1);
	CU_ASSERT_EQUAL(open_dg(rx, seal_to(key_a, cl_a, 7, 1, 1, 1), 7), 0);
	expect_stats(rx, 1, 2, 0, 0);
	/* --insecure protects nothing: a clear datagram of another cluster,
	 * meant for another node, opens (documented in cluck-protocol(7)) */
	CU_ASSERT_EQUAL(open_dg(clear, seal_to(NULL, cl_b, 7, 2, 1, 1), 7), 0);
	peer_rx_free(rx);
	peer_rx_free(clear);
}

static void test_malformed(void)
{
	struct peer_rx *rx = peer_rx_new(1, cl_a, key_a);
	struct peer_stats st;
	size_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(rx);
	n = seal(key_a, 7, 1, 1);
	dg[0] = 'x';
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EPROTO);
	n = seal(key_a, 7, 1, 1);
	dg[1] = PEER_VERSION + 1;
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EPROTO);
	n = seal(key_a, 7, 1, 1);
	dg[2] = PEER_T__MAX;
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EPROTO);
	n = seal(key_a, 7, 1, 1);
	dg[3] = 0x80;
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EPROTO);
	n = seal(key_a, 7, 1, 1);
	memset(dg + 24, 0, 8);          /* counter 0 */
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EPROTO);
	peer_rx_stats(rx, &st);
	CU_ASSERT_EQUAL(st.rx_version, 5);
	/* short: nothing, half a header, a header without its tag */
	n = seal(key_a, 7, 1, 1);
	CU_ASSERT_EQUAL(open_dg(rx, 0, 7), -EMSGSIZE);
	CU_ASSERT_EQUAL(open_dg(rx, PEER_HDR_BYTES - 1, 7), -EMSGSIZE);
	CU_ASSERT_EQUAL(open_dg(rx, n - 1, 7), -EMSGSIZE);
	CU_ASSERT_EQUAL(open_dg(rx, n + 1, 7), -EMSGSIZE);
	/* the length field disagrees with the datagram */
	dg[4]++;
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EMSGSIZE);
	dg[4]--;
	dg[7] = 0x80;                   /* 2 GiB */
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EMSGSIZE);
	dg[7] = 0;
	/* longer than any datagram */
	CU_ASSERT_EQUAL(open_dg(rx, BUF, 7), -EMSGSIZE);
	peer_rx_stats(rx, &st);
	CU_ASSERT_EQUAL(st.rx_short, 7);
	/* intact after all that */
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), 0);
	/* our own id, authenticated */
	CU_ASSERT_EQUAL(open_dg(rx, seal(key_a, 1, 1, 1), 1), -ELOOP);
	peer_rx_stats(rx, &st);
	CU_ASSERT_EQUAL(st.rx_self, 1);
	CU_ASSERT_EQUAL(st.rx_ok, 1);
	CU_ASSERT_EQUAL(st.rx_auth + st.rx_replay + st.tx_ok, 0);
	/* the wrong version: an old (v1) node's datagrams are counted as
	 * such, not as failures to authenticate */
	n = seal(key_a, 7, 1, 2);
	dg[1] = 1;
	CU_ASSERT_EQUAL(open_dg(rx, n, 7), -EPROTO);
	peer_rx_free(rx);
}

static void test_insecure(void)
{
	struct peer_rx *clear = peer_rx_new(1, cl_a, NULL);
	struct peer_rx *sealed = peer_rx_new(1, cl_a, key_a);
	struct peer_stats st;
	size_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(clear);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sealed);
	n = seal(NULL, 7, 1, 1);
	CU_ASSERT_EQUAL(n, PEER_HDR_BYTES + sizeof(msg));
	CU_ASSERT_EQUAL(dg[3], PEER_F_INSECURE);
	CU_ASSERT(memcmp(dg + PEER_HDR_BYTES, msg, sizeof(msg)) == 0);
	/* a clear datagram to a node with a key */
	CU_ASSERT_EQUAL(open_dg(sealed, n, 7), -EBADMSG);
	CU_ASSERT_EQUAL(open_dg(clear, n, 7), 0);
	CU_ASSERT_EQUAL(open_dg(clear, n, 7), -EALREADY);
	/* a sealed datagram to an insecure node */
	n = seal(key_a, 7, 1, 2);
	CU_ASSERT_EQUAL(open_dg(clear, n, 7), -EBADMSG);
	CU_ASSERT_EQUAL(open_dg(sealed, n, 7), 0);
	peer_rx_stats(clear, &st);
	CU_ASSERT_EQUAL(st.rx_auth, 1);
	CU_ASSERT_EQUAL(st.rx_ok, 1);
	CU_ASSERT_EQUAL(st.rx_replay, 1);
	peer_rx_stats(sealed, &st);
	CU_ASSERT_EQUAL(st.rx_auth, 1);
	CU_ASSERT_EQUAL(st.rx_ok, 1);
	peer_rx_free(clear);
	peer_rx_free(sealed);
}

static void test_many_senders(void)
{
	struct peer_rx *rx = peer_rx_new(1, cl_a, key_a);
	const uint64_t n = 5000;       /* beyond the bound of 4096 windows */

	CU_ASSERT_PTR_NOT_NULL_FATAL(rx);
	for (uint64_t id = 2; id < n; id++)
		CU_ASSERT_EQUAL(open_dg(rx, seal(key_a, id, 1, 1), id), 0);
	/* recent senders still remembered */
	for (uint64_t id = n - 100; id < n; id++)
		CU_ASSERT_EQUAL(open_dg(rx, seal(key_a, id, 1, 1), id), -EALREADY);
	CU_ASSERT_EQUAL(open_dg(rx, seal(key_a, n - 1, 1, 2), n - 1), 0);
	/* the least recently used were dropped to stay within the bound
	 * (the documented price: their last window is forgotten) */
	CU_ASSERT_EQUAL(open_dg(rx, seal(key_a, 2, 1, 1), 2), 0);
	peer_rx_free(rx);
}

static int write_file(const char *path, size_t len, uint8_t fill)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		return -1;
	for (size_t i = 0; i < len; i++)
		fputc(fill + (int)(i % 7), f);
	if (fchmod(fileno(f), 0600) != 0) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

static void test_load_key(void)
{
	char dir[] = "/tmp/unit_peer.XXXXXX", path[64], link[64];
	uint8_t k1[PEER_KEY_BYTES], k2[PEER_KEY_BYTES], k3[PEER_KEY_BYTES];
	static const uint8_t zero[PEER_KEY_BYTES];

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/k", dir);
	CU_ASSERT_EQUAL(peer_load_key(path, k1), -ENOENT);
	CU_ASSERT_EQUAL_FATAL(write_file(path, PEER_KEY_BYTES - 1, 'a'), 0);
	CU_ASSERT_EQUAL(peer_load_key(path, k1), -EINVAL);
	CU_ASSERT_EQUAL_FATAL(write_file(path, PEER_KEY_BYTES, 'a'), 0);
	CU_ASSERT_EQUAL(peer_load_key(path, k1), 0);
	CU_ASSERT(memcmp(k1, zero, sizeof(k1)) != 0);
	CU_ASSERT_EQUAL(peer_load_key(path, k2), 0);
	CU_ASSERT(memcmp(k1, k2, sizeof(k1)) == 0);
	/* the key is a hash of the content, not the content */
	CU_ASSERT(memcmp(k1, "abcdefgabcdefgabcdefgabcdefgabcd", 32) != 0);
	/* a longer file: every byte counts */
	CU_ASSERT_EQUAL_FATAL(write_file(path, 4000, 'a'), 0);
	CU_ASSERT_EQUAL(peer_load_key(path, k2), 0);
	CU_ASSERT(memcmp(k1, k2, sizeof(k1)) != 0);
	CU_ASSERT_EQUAL_FATAL(write_file(path, 4001, 'a'), 0);
	CU_ASSERT_EQUAL(peer_load_key(path, k3), 0);
	CU_ASSERT(memcmp(k2, k3, sizeof(k2)) != 0);
	/* at the cap, and beyond */
	CU_ASSERT_EQUAL_FATAL(write_file(path, 1024 * 1024, 'a'), 0);
	CU_ASSERT_EQUAL(peer_load_key(path, k3), 0);
	CU_ASSERT_EQUAL_FATAL(write_file(path, 1024 * 1024 + 1, 'a'), 0);
	CU_ASSERT(peer_load_key(path, k3) < 0);
	/* the mode: no access for group or others */
	CU_ASSERT_EQUAL_FATAL(write_file(path, PEER_KEY_BYTES, 'a'), 0);
	CU_ASSERT_EQUAL(chmod(path, 0640), 0);
	CU_ASSERT_EQUAL(peer_load_key(path, k3), -EACCES);
	CU_ASSERT_EQUAL(chmod(path, 0602), 0);
	CU_ASSERT_EQUAL(peer_load_key(path, k3), -EACCES);
	CU_ASSERT_EQUAL(chmod(path, 0400), 0);
	CU_ASSERT_EQUAL(peer_load_key(path, k3), 0);
	/* a directory is no key */
	CU_ASSERT_EQUAL(peer_load_key(dir, k3), -EINVAL);
	/* a symbolic link is followed and the file it names is checked */
	snprintf(link, sizeof(link), "%s/l", dir);
	CU_ASSERT_EQUAL_FATAL(symlink(path, link), 0);
	CU_ASSERT_EQUAL(peer_load_key(link, k3), 0);
	CU_ASSERT(memcmp(k1, k3, sizeof(k1)) == 0);
	/* the owner: root or us.  Only root can give a file away. */
	if (geteuid() == 0) {
		CU_ASSERT_EQUAL(chown(path, 65534, 65534), 0);
		CU_ASSERT_EQUAL(peer_load_key(path, k3), -EPERM);
		CU_ASSERT_EQUAL(peer_load_key(link, k3), -EPERM);
		{
			int fd = open(path, O_RDONLY);
			char why[160] = "";

			CU_ASSERT_FATAL(fd >= 0);
			CU_ASSERT_EQUAL(peer_key_fd_check(fd, why, sizeof(why)), -EPERM);
			CU_ASSERT(strstr(why, "owned by another user") != NULL);
			close(fd);
		}
		CU_ASSERT_EQUAL(chown(path, 0, 0), 0);
		CU_ASSERT_EQUAL(peer_load_key(path, k3), 0);
	}
	unlink(link);
	unlink(path);
	rmdir(dir);
}

/* ---- two real sockets --------------------------------------------------- */

struct got {
	struct loop *loop;
	unsigned n;
	uint64_t from;
	uint8_t type;
	uint8_t body[64];
	size_t len;
	struct sockaddr_storage src;
};

static void on_recv(void *ctx, uint64_t from, uint8_t type, const uint8_t *body,
		    size_t len, const struct sockaddr *src, socklen_t srclen)
{
	struct got *g = ctx;

	g->n++;
	g->from = from;
	g->type = type;
	g->len = len < sizeof(g->body) ? len : sizeof(g->body);
	memcpy(g->body, body, g->len);
	memcpy(&g->src, src, srclen < sizeof(g->src) ? srclen : sizeof(g->src));
	loop_stop(g->loop);
}

static void on_timeout(struct loop *l, void *ctx)
{
	*(int *)ctx = 1;
	loop_stop(l);
}

/* Runs the loop until a delivery or 2 s. 0 or -ETIMEDOUT. */
static int run_until(struct loop *l)
{
	int timed_out = 0;
	uint64_t t = loop_timer_at(l, loop_mono_ns() + 2000000000ull, on_timeout,
				   &timed_out);

	CU_ASSERT_FATAL(t != 0);
	CU_ASSERT_EQUAL(loop_run(l), 0);
	loop_timer_cancel(l, t);
	return timed_out ? -ETIMEDOUT : 0;
}

static int bound_port(struct peer *p, struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);

	if (getsockname(peer_fd(p), (struct sockaddr *)sa, &len) < 0)
		return -errno;
	return 0;
}

static void test_sockets(void)
{
	struct loop *l = loop_new();
	struct sockaddr_in any = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct peer_config ca = { .listen = (struct sockaddr *)&any,
				  .listen_len = sizeof(any), .self_id = 1,
				  .epoch = 3, .key = key_a, .cluster = cl_a };
	struct peer_config cb = ca;
	struct peer *a = NULL, *b = NULL;
	struct got ga = { 0 }, gb = { 0 };
	struct sockaddr_in sa, sb;
	struct peer_stats st;
	int fd;

	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	ga.loop = gb.loop = l;
	cb.self_id = 2;
	cb.epoch = 9;
	CU_ASSERT_EQUAL_FATAL(peer_new(l, &ca, on_recv, &ga, &a), 0);
	CU_ASSERT_EQUAL_FATAL(peer_new(l, &cb, on_recv, &gb, &b), 0);
	CU_ASSERT_EQUAL_FATAL(bound_port(a, &sa), 0);
	CU_ASSERT_EQUAL_FATAL(bound_port(b, &sb), 0);
	CU_ASSERT(ntohs(sa.sin_port) != 0);
	/* no address yet */
	CU_ASSERT_EQUAL(peer_has_addr(a, 2), 0);
	CU_ASSERT_EQUAL(peer_send(a, 2, PEER_T_RAFT, msg, sizeof(msg)), -EHOSTUNREACH);
	CU_ASSERT_EQUAL(peer_set_addr(a, 2, (struct sockaddr *)&sb, sizeof(sb)), 0);
	CU_ASSERT_EQUAL(peer_set_addr(a, 0, (struct sockaddr *)&sb, sizeof(sb)), -EINVAL);
	CU_ASSERT_EQUAL(peer_set_addr(a, 3, (struct sockaddr *)&sb, 1), -EINVAL);
	CU_ASSERT_EQUAL(peer_has_addr(a, 2), 1);
	CU_ASSERT_EQUAL(peer_send(a, 2, PEER_T_RAFT, msg, PEER_BODY_MAX + 1), -EMSGSIZE);
	{
		/* an IPv4 socket takes v4-mapped IPv6 addresses only */
		struct sockaddr_in6 v6 = { .sin6_family = AF_INET6,
					   .sin6_addr = IN6ADDR_LOOPBACK_INIT };

		CU_ASSERT_EQUAL(peer_set_addr(a, 4, (struct sockaddr *)&v6,
					      sizeof(v6)), -EINVAL);
		CU_ASSERT_EQUAL(peer_has_addr(a, 4), 0);
		v6.sin6_addr.s6_addr[10] = v6.sin6_addr.s6_addr[11] = 0xff;
		v6.sin6_addr.s6_addr[15] = 0;
		v6.sin6_addr.s6_addr[12] = 127;
		v6.sin6_addr.s6_addr[15] = 1;
		CU_ASSERT_EQUAL(peer_set_addr(a, 4, (struct sockaddr *)&v6,
					      sizeof(v6)), 0);
		CU_ASSERT_EQUAL(peer_has_addr(a, 4), 1);
	}

	CU_ASSERT_EQUAL(peer_send(a, 2, PEER_T_RAFT, msg, sizeof(msg)), 0);
	CU_ASSERT_EQUAL(run_until(l), 0);
	CU_ASSERT_EQUAL(gb.n, 1);
	CU_ASSERT_EQUAL(gb.from, 1);
	CU_ASSERT_EQUAL(gb.type, PEER_T_RAFT);
	CU_ASSERT_EQUAL(gb.len, sizeof(msg));
	CU_ASSERT(memcmp(gb.body, msg, sizeof(msg)) == 0);
	/* the source is a's socket: b learns where to answer */
	CU_ASSERT_EQUAL(((struct sockaddr_in *)&gb.src)->sin_port, sa.sin_port);
	CU_ASSERT_EQUAL(peer_set_addr(b, 1, (struct sockaddr *)&gb.src,
				      sizeof(struct sockaddr_in)), 0);
	CU_ASSERT_EQUAL(peer_send(b, 1, PEER_T_NODE, (const uint8_t *)"ok", 2), 0);
	CU_ASSERT_EQUAL(run_until(l), 0);
	CU_ASSERT_EQUAL(ga.n, 1);
	CU_ASSERT_EQUAL(ga.from, 2);
	CU_ASSERT_EQUAL(ga.type, PEER_T_NODE);
	CU_ASSERT_EQUAL(ga.len, 2);

	/* garbage and a replay from a plain socket reach no callback */
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	CU_ASSERT_FATAL(fd >= 0);
	{
		ssize_t n = peer_seal(key_a, cl_a, 1, 2, 3, 1, PEER_T_RAFT, msg,
				      sizeof(msg), dg, sizeof(dg));

		CU_ASSERT_FATAL(n > 0);
		CU_ASSERT(sendto(fd, dg, (size_t)n, 0, (struct sockaddr *)&sb,
				 sizeof(sb)) == n);        /* replay of counter 1 */
		CU_ASSERT(sendto(fd, "junk", 4, 0, (struct sockaddr *)&sb,
				 sizeof(sb)) == 4);
	}
	/* then a genuine one, so the loop stops once all three were read */
	CU_ASSERT_EQUAL(peer_send(a, 2, PEER_T_RAFT, msg, 5), 0);
	CU_ASSERT_EQUAL(run_until(l), 0);
	CU_ASSERT_EQUAL(gb.n, 2);
	CU_ASSERT_EQUAL(gb.len, 5);
	close(fd);
	peer_get_stats(b, &st);
	CU_ASSERT_EQUAL(st.rx_ok, 2);
	CU_ASSERT_EQUAL(st.rx_replay, 1);
	CU_ASSERT_EQUAL(st.rx_short, 1);
	CU_ASSERT_EQUAL(st.tx_ok, 1);
	peer_get_stats(a, &st);
	CU_ASSERT_EQUAL(st.tx_ok, 2);
	CU_ASSERT_EQUAL(st.tx_err, 1);
	CU_ASSERT_EQUAL(st.rx_ok, 1);

	/* the same port again while bound: a second daemon must not share
	 * (and steal datagrams from) a live port */
	{
		struct peer_config cc = ca;
		struct peer *c = NULL;

		cc.listen = (struct sockaddr *)&sa;
		cc.self_id = 5;
		CU_ASSERT_EQUAL(peer_new(l, &cc, on_recv, &ga, &c), -EADDRINUSE);
		CU_ASSERT_PTR_NULL(c);
	}
	peer_free(a);
	peer_free(b);
	loop_free(l);
}

/*
 * The replay of issue 9 over real sockets: a's datagram to b is captured
 * by a plain socket standing where a believes b is, forwarded to b (it
 * opens once), then replayed to b (a replay) and to c (not meant for c:
 * an authentication failure), and nothing reaches c's callback.
 */
static void test_sockets_replay(void)
{
	struct loop *l = loop_new();
	struct sockaddr_in lo = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct peer_config cfg = { .listen = (struct sockaddr *)&lo,
				   .listen_len = sizeof(lo), .self_id = 1,
				   .epoch = 3, .key = key_a, .cluster = cl_a };
	struct peer *a = NULL, *b = NULL, *c = NULL;
	struct got gb = { 0 }, gc = { 0 }, ga = { 0 };
	struct sockaddr_in sb, sc, sspy;
	socklen_t len = sizeof(sspy);
	struct peer_stats st;
	uint8_t cap[BUF];
	ssize_t n;
	int spy;

	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	ga.loop = gb.loop = gc.loop = l;
	CU_ASSERT_EQUAL_FATAL(peer_new(l, &cfg, on_recv, &ga, &a), 0);
	cfg.self_id = 2;
	CU_ASSERT_EQUAL_FATAL(peer_new(l, &cfg, on_recv, &gb, &b), 0);
	cfg.self_id = 3;
	CU_ASSERT_EQUAL_FATAL(peer_new(l, &cfg, on_recv, &gc, &c), 0);
	CU_ASSERT_EQUAL_FATAL(bound_port(b, &sb), 0);
	CU_ASSERT_EQUAL_FATAL(bound_port(c, &sc), 0);
	spy = socket(AF_INET, SOCK_DGRAM, 0);
	CU_ASSERT_FATAL(spy >= 0);
	CU_ASSERT_EQUAL_FATAL(bind(spy, (struct sockaddr *)&lo, sizeof(lo)), 0);
	CU_ASSERT_EQUAL_FATAL(getsockname(spy, (struct sockaddr *)&sspy, &len), 0);
	/* a believes b is at the spy; c is where it is */
	CU_ASSERT_EQUAL(peer_set_addr(a, 2, (struct sockaddr *)&sspy, sizeof(sspy)), 0);
	CU_ASSERT_EQUAL(peer_set_addr(a, 3, (struct sockaddr *)&sc, sizeof(sc)), 0);
	/* a talks to c first (counter 1), then to b (counter 2): c's window
	 * for a is at 1, so counter 2 would be fresh there */
	CU_ASSERT_EQUAL(peer_send(a, 3, PEER_T_NODE, msg, 4), 0);
	CU_ASSERT_EQUAL(run_until(l), 0);
	CU_ASSERT_EQUAL(gc.n, 1);
	CU_ASSERT_EQUAL(peer_send(a, 2, PEER_T_NODE, msg, sizeof(msg)), 0);
	n = recv(spy, cap, sizeof(cap), 0);
	CU_ASSERT_FATAL(n > 0);
	/* to b: delivered once; to b again and to c: dropped */
	CU_ASSERT(sendto(spy, cap, (size_t)n, 0, (struct sockaddr *)&sb, sizeof(sb)) == n);
	CU_ASSERT_EQUAL(run_until(l), 0);
	CU_ASSERT_EQUAL(gb.n, 1);
	CU_ASSERT_EQUAL(gb.from, 1);
	CU_ASSERT(sendto(spy, cap, (size_t)n, 0, (struct sockaddr *)&sb, sizeof(sb)) == n);
	CU_ASSERT(sendto(spy, cap, (size_t)n, 0, (struct sockaddr *)&sc, sizeof(sc)) == n);
	CU_ASSERT(sendto(spy, cap, (size_t)n, 0, (struct sockaddr *)&sc, sizeof(sc)) == n);
	/* a genuine one to c last, so the loop stops after the replays */
	CU_ASSERT_EQUAL(peer_send(a, 3, PEER_T_NODE, msg, 5), 0);
	CU_ASSERT_EQUAL(run_until(l), 0);
	CU_ASSERT_EQUAL(gc.n, 2);
	CU_ASSERT_EQUAL(gc.len, 5);
	CU_ASSERT_EQUAL(gb.n, 1);
	peer_get_stats(b, &st);
	CU_ASSERT_EQUAL(st.rx_ok, 1);
	CU_ASSERT_EQUAL(st.rx_replay, 1);
	CU_ASSERT_EQUAL(st.rx_auth, 0);
	peer_get_stats(c, &st);
	CU_ASSERT_EQUAL(st.rx_ok, 2);
	CU_ASSERT_EQUAL(st.rx_auth, 2);
	CU_ASSERT_EQUAL(st.rx_replay + st.rx_self, 0);
	/* without a cluster identity there is no transport */
	{
		struct peer *d = NULL;

		cfg.cluster = NULL;
		cfg.self_id = 4;
		CU_ASSERT_EQUAL(peer_new(l, &cfg, on_recv, &ga, &d), -EINVAL);
		CU_ASSERT_PTR_NULL(d);
	}
	close(spy);
	peer_free(a);
	peer_free(b);
	peer_free(c);
	loop_free(l);
}

static void test_sockets_v6(void)
{
	struct loop *l = loop_new();
	struct sockaddr_in6 lo = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in6 sb;
	struct peer_config ca = { .listen = (struct sockaddr *)&lo,
				  .listen_len = sizeof(lo), .self_id = 1,
				  .epoch = 1, .key = NULL, .cluster = cl_a };
	struct peer_config cb = ca;
	struct peer *a = NULL, *b = NULL;
	struct got gb = { 0 };
	socklen_t len = sizeof(sb);
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	gb.loop = l;
	cb.self_id = 2;
	rc = peer_new(l, &ca, on_recv, &gb, &a);
	if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
		loop_free(l);                  /* no IPv6 here */
		return;
	}
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL_FATAL(peer_new(l, &cb, on_recv, &gb, &b), 0);
	CU_ASSERT_EQUAL_FATAL(getsockname(peer_fd(b), (struct sockaddr *)&sb, &len), 0);
	CU_ASSERT_EQUAL(peer_set_addr(a, 2, (struct sockaddr *)&sb, len), 0);
	CU_ASSERT_EQUAL(peer_send(a, 2, PEER_T_NODE, msg, sizeof(msg)), 0);
	CU_ASSERT_EQUAL(run_until(l), 0);
	CU_ASSERT_EQUAL(gb.n, 1);
	CU_ASSERT_EQUAL(gb.from, 1);
	{
		/* an IPv6 socket stores an IPv4 address v4-mapped */
		struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_port = htons(9),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		CU_ASSERT_EQUAL(peer_set_addr(a, 3, (struct sockaddr *)&v4,
					      sizeof(v4)), 0);
		CU_ASSERT_EQUAL(peer_has_addr(a, 3), 1);
	}
	peer_free(a);
	peer_free(b);
	loop_free(l);
}

static const struct ut_test tests[] = {
	UT_TEST(test_round_trip),
	UT_TEST(test_wrong_key),
	UT_TEST(test_tamper),
	UT_TEST(test_replay),
	UT_TEST(test_forged_counter),
	UT_TEST(test_receiver_bound),
	UT_TEST(test_forged_classified),
	UT_TEST(test_cluster_bound),
	UT_TEST(test_malformed),
	UT_TEST(test_insecure),
	UT_TEST(test_many_senders),
	UT_TEST(test_load_key),
	UT_TEST(test_sockets),
	UT_TEST(test_sockets_replay),
	UT_TEST(test_sockets_v6),
};

/* The two cluster ids the tests bind their peers to. */
static int peer_init(void)
{
	static const char *abc[] = { "a", "b", "c" }, *abd[] = { "a", "b", "d" };

	if (peer_cluster_id(abc, 3, cl_a) != 0 || peer_cluster_id(abd, 3, cl_b) != 0)
		return 1;
	return 0;
}

const struct ut_suite ut_suites[] = {
	UT_SUITE_FIX("peer", tests, peer_init, NULL),
	{ NULL },
};
