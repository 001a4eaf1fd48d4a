/*
 * proto/seal.h - the peer datagram: sealed with the cluster key between
 * cluckd nodes (voters and members), opened at exactly one of them.  The
 * wire half of the peer transport, without a socket: net/peer.h sends and
 * receives these over UDP; a client library can share this code.
 *
 * Every datagram carries a 32-byte clear header and a body sealed with the
 * cluster key using XChaCha20-Poly1305 (libsodium's
 * crypto_aead_xchacha20poly1305_ietf):
 *
 *   u8  magic  'c' (0x63)
 *   u8  version PEER_VERSION
 *   u8  type   (PEER_T_*: what the body is)
 *   u8  flags  (0; PEER_F_INSECURE when the body is not sealed)
 *   u32 length of the body that follows the header (sealed: + 16 tag)
 *   u64 sender id
 *   u64 epoch   (sender's boot epoch: never smaller after a restart)
 *   u64 counter (per epoch, starts at 1, +1 per datagram)
 *   ... body (+ 16-byte tag when sealed)
 *
 * (little endian.)  The additional data the tag covers is the header, then
 * two fields that do not travel: the receiver's id (u64) and the cluster
 * identity (PEER_CLUSTER_BYTES, peer_cluster_id()).  So a datagram opens
 * at exactly one node of exactly one cluster: replayed to another node, or
 * to a cluster that shares the key, it fails like a forgery.  The 24-byte
 * nonce is epoch || counter || sender id, so it never repeats under one
 * key as long as ids are unique and a sender's epoch never goes back.  A
 * receiver keeps, per sender id, the highest epoch seen and a sliding
 * window of PEER_REPLAY_WINDOW counters: a datagram of an older epoch,
 * below the window or already seen is a replay.  Since only the receiver
 * named in the additional data can open a datagram, a window per sender at
 * one receiver is a window per sender and receiver: each datagram is
 * accepted once, by one node.
 *
 * Order of the checks: framing (length, magic, version, type, flags, zero
 * fields), then authentication, and only then our own id (self) and the
 * replay window.  A forged datagram is counted as an authentication
 * failure whatever its header claims, and it never moves a window.
 *
 * With no key (--insecure) bodies travel in clear with PEER_F_INSECURE, and
 * a node with a key drops them (and vice versa).  Nothing is authenticated
 * then: the self and replay checks read the clear header, anyone on the
 * path can forge or replay anything.  It is for tests and trusted
 * networks only.
 *
 * Anything that fails to open, is replayed, has another version or magic,
 * a bad length, or comes from our own id is refused and counted in
 * struct peer_stats.
 *
 * It must never: parse a body, move a replay window before authentication,
 * use a socket, the event loop or the log (pure wire code: the C library
 * and libsodium only), or leave the key outside locked memory
 * (sodium_malloc) once loaded.
 */
#ifndef CLUCK_SEAL_H
#define CLUCK_SEAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PEER_MAGIC          0x63u
#define PEER_VERSION        2u      /* 2: receiver and cluster authenticated */
#define PEER_HDR_BYTES      32u
#define PEER_TAG_BYTES      16u
#define PEER_KEY_BYTES      32u
#define PEER_CLUSTER_BYTES  32u
#define PEER_REPLAY_WINDOW  1024u
#define PEER_F_INSECURE     0x1u
/* Largest body: what one IPv4 UDP datagram carries after our overhead. */
#define PEER_BODY_MAX       (65507u - PEER_HDR_BYTES - PEER_TAG_BYTES)

enum peer_type {
	PEER_T_RAFT = 1,        /* body: an rf_msg encoding (lockcore/raft.h) */
	PEER_T_NODE = 2,        /* body: a node message (proto/nmsg.h) */
	PEER_T__MAX
};

/* Why datagrams were dropped, and what went through (the tx_* counters
 * are the socket's: net/peer.c fills them, a receive context leaves 0). */
struct peer_stats {
	uint64_t rx_ok, tx_ok;
	uint64_t rx_short;      /* shorter than a header, or length mismatch */
	uint64_t rx_version;    /* bad magic, version, type or flags */
	uint64_t rx_auth;       /* does not open with our key, our id as the
	                           receiver and our cluster identity (a forgery,
	                           another cluster, a wrong key, a datagram for
	                           another node), or sealed/clear mismatch with
	                           our mode */
	uint64_t rx_replay;     /* authenticated, but an old epoch, below the
	                           window, or seen */
	uint64_t rx_self;       /* authenticated, but the sender is our own id:
	                           another node with our name and the key */
	uint64_t tx_err;        /* sendto failed (not EAGAIN) or no address */
	uint64_t tx_drop;       /* EAGAIN: socket buffer full */
};

/* Largest datagram: header, largest body, tag. */
#define PEER_DGRAM_MAX      (PEER_HDR_BYTES + PEER_BODY_MAX + PEER_TAG_BYTES)

/*
 * The cluster identity: BLAKE2b-256 of a fixed label and the voters' names
 * (the --cluster list), sorted and each NUL-terminated, so every node of a
 * cluster (voters and members, which all get the same list, and which the
 * data directory's `cluster` file pins) computes the same one whatever the
 * order, and a cluster with other voters another.  Addresses are left out:
 * a voter may move.  0 or -EINVAL (n == 0 or a NULL name), -ENOMEM.
 */
int peer_cluster_id(const char *const *names, size_t n,
		    uint8_t out[PEER_CLUSTER_BYTES]);

/*
 * A receive context (what net/peer.c feeds from its socket; tests and fuzz
 * targets drive it directly).  peer_rx_new() makes one for self_id, the cluster identity (NULL: all
 * zero, for tests) and key (NULL: insecure); peer_rx_open() checks one
 * datagram: on success returns 0 and points *body into `out` (size >=
 * dlen) with *len, *from and *type set; else a negative errno and the
 * counter of struct peer_stats it belongs to is incremented (-EMSGSIZE
 * short, -EPROTO version, -EBADMSG auth, -EALREADY replay, -ELOOP self).
 * peer_rx_fresh() says, reading only, whether a datagram of sender with
 * epoch and counter would pass the replay window (1) or not (0).
 * peer_seal() builds a datagram from sender to receiver into out (size >=
 * len + PEER_HDR_BYTES + PEER_TAG_BYTES) and returns its length;
 * peer_rx_seal() does the same with the context's key and cluster
 * identity, from the context's self_id.
 */
struct peer_rx;
struct peer_rx *peer_rx_new(uint64_t self_id, const uint8_t *cluster,
			    const uint8_t *key);
void peer_rx_free(struct peer_rx *rx);
int peer_rx_open(struct peer_rx *rx, const uint8_t *dgram, size_t dlen,
		 uint8_t *out, uint64_t *from, uint8_t *type,
		 const uint8_t **body, size_t *len);
void peer_rx_stats(const struct peer_rx *rx, struct peer_stats *st);
int peer_rx_fresh(const struct peer_rx *rx, uint64_t sender, uint64_t epoch,
		  uint64_t counter);
ssize_t peer_seal(const uint8_t *key, const uint8_t *cluster, uint64_t sender,
		  uint64_t receiver, uint64_t epoch, uint64_t counter,
		  uint8_t type, const uint8_t *body, size_t len, uint8_t *out,
		  size_t outsize);
ssize_t peer_rx_seal(const struct peer_rx *rx, uint64_t receiver,
		     uint64_t epoch, uint64_t counter, uint8_t type,
		     const uint8_t *body, size_t len, uint8_t *out,
		     size_t outsize);

/* Reads a key file: the key is the BLAKE2b-256 hash of its content (at
 * least 32 bytes).  The file is checked as peer_key_fd_check() says, on
 * the descriptor it is read from.  0 or -errno (-EINVAL: too short or not
 * a regular file, -EPERM: another owner, -EACCES: group or other access,
 * -EFBIG: over 1 MiB). */
int peer_load_key(const char *path, uint8_t key[PEER_KEY_BYTES]);

/*
 * Checks an opened key file with fstat on its descriptor, so that what is
 * checked is what is read (a symbolic link is followed: the file it names
 * is checked).  Like ssh with a private key: a regular file, owned by root
 * or by our effective uid (another user could replace its content or read
 * it), with no permission for group or others.  0, or -EINVAL (not a
 * regular file), -EPERM (owner), -EACCES (mode) or fstat's error, with a
 * short reason (no path) in why (may be NULL).
 */
int peer_key_fd_check(int fd, char *why, size_t whylen);

#endif /* CLUCK_SEAL_H */
