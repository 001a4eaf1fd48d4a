/*
 * net/peer.h - the peer transport: sealed UDP datagrams between cluckd
 * nodes (voters and members), unicast only.
 *
 * The datagram itself (its layout, the nonce, what the tag covers, the
 * replay window, the order of the checks, --insecure) is proto/seal.h;
 * this is the socket that carries it: it binds, keeps the peers'
 * addresses, seals and sends, and opens what arrives through a receive
 * context (struct peer_rx) that holds the key and the replay windows.
 *
 * Anything that fails to open, is replayed, has another version or magic,
 * a bad length, or comes from our own id is dropped and counted in
 * struct peer_stats; it never reaches the callback.
 *
 * It must never: block (sendto errors other than EAGAIN are counted, not
 * retried), parse a body, or move a replay window before authentication.
 */
#ifndef CLUCK_PEER_H
#define CLUCK_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "proto/seal.h"

struct loop;
struct peer;

/* Received, authenticated, fresh datagram.  `body` lives only during the
 * call; `src` is where it came from (for learning members' addresses). */
typedef void (*peer_recv_fn)(void *ctx, uint64_t from, uint8_t type,
			     const uint8_t *body, size_t len,
			     const struct sockaddr *src, socklen_t srclen);

struct peer_config {
	const struct sockaddr *listen; /* bound address (port included) */
	socklen_t listen_len;
	uint64_t self_id;              /* non-zero */
	uint64_t epoch;                /* non-zero, never smaller than a
	                                  previous run's (the caller persists) */
	const uint8_t *key;            /* PEER_KEY_BYTES, or NULL: insecure */
	const uint8_t *cluster;        /* PEER_CLUSTER_BYTES: peer_cluster_id() */
};

/*
 * Binds the UDP socket (non-blocking, close-on-exec, large buffers; no
 * SO_REUSEADDR: on Linux it lets a second UDP socket bind a live port, and
 * UDP has no TIME_WAIT to skip) and watches it on the loop.  Returns 0 or
 * -errno (-EINVAL without a cluster identity; the bind's error:
 * -EADDRINUSE, -EADDRNOTAVAIL...).  The key is copied into locked
 * memory (sodium_malloc) and wiped on peer_free.
 */
int peer_new(struct loop *loop, const struct peer_config *cfg,
	     peer_recv_fn fn, void *ctx, struct peer **out);
void peer_free(struct peer *p);

/* Sets (or replaces) the address of node `id`.  0, -ENOMEM, -EINVAL. */
int peer_set_addr(struct peer *p, uint64_t id, const struct sockaddr *sa,
		  socklen_t len);
/* 1 if an address is known for id. */
int peer_has_addr(const struct peer *p, uint64_t id);

/* Seals and sends one datagram to node `id`.  0, -EMSGSIZE (len >
 * PEER_BODY_MAX), -EHOSTUNREACH (no address known: counted in tx_err),
 * -EAGAIN (counted in tx_drop) or another send error (counted). */
int peer_send(struct peer *p, uint64_t to, uint8_t type, const uint8_t *body,
	      size_t len);

void peer_get_stats(const struct peer *p, struct peer_stats *st);
/* The bound socket (to learn the local address). */
int peer_fd(const struct peer *p);

#endif /* CLUCK_PEER_H */
