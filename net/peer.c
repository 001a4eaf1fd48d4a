/*
 * net/peer.c - the UDP socket of the peer transport (net/peer.h): binds,
 * keeps the peers' addresses, seals and sends, and feeds what arrives to
 * the receive context of proto/seal.c, which opens it and keeps the key
 * and the replay windows.
 *
 * Conventions this file fixes where the header leaves room:
 *  - no SO_REUSEADDR (net/peer.h): with it a second cluckd could bind our
 *    live port and take half our datagrams instead of failing with
 *    -EADDRINUSE;
 *  - the receive callback must not free the peer (the drain loop goes on
 *    with it); defer a peer_free to a timer or the idle hook;
 *  - a counter is used once, whatever happens to the send: the nonce never
 *    repeats under one epoch.
 *
 * It must never: block, parse a body, log per datagram, open a datagram
 * itself (proto/seal.c does, before any replay window moves), or keep a
 * copy of the key (the receive context holds it in locked memory).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "net/log.h"
#include "net/loop.h"
#include "net/peer.h"
#include "proto/idmap.h"

#define PEER_SOCKBUF        (4 * 1024 * 1024)
#define PEER_RX_BATCH       256        /* datagrams per wakeup */
#define PEER_LOG_EVERY_NS   (10ull * 1000 * 1000 * 1000)

/* ---- the socket --------------------------------------------------------- */

struct paddr {
	struct sockaddr_storage ss;
	socklen_t len;
};

struct peer {
	struct loop *loop;
	int fd;
	int family;                    /* of the bound socket */
	uint64_t epoch, counter;       /* counter: the last one used */
	struct peer_rx *rx;            /* holds the key */
	struct idmap addrs;            /* id -> struct paddr */
	peer_recv_fn fn;
	void *ctx;
	uint64_t tx_ok, tx_err, tx_drop;
	uint8_t *rbuf;                 /* one received datagram (+1: truncation) */
	uint8_t *obuf;                 /* its opened body */
	uint8_t *sbuf;                 /* one datagram being sent */
	struct peer_stats logged;      /* drops at the last summary */
	uint64_t logged_ns;
};

static void set_buf(int fd, int force, int plain)
{
	int v = PEER_SOCKBUF;

	/* FORCE goes past rmem_max/wmem_max when we may (root) */
	if (setsockopt(fd, SOL_SOCKET, force, &v, sizeof(v)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, plain, &v, sizeof(v));
}

static uint64_t drops(const struct peer_stats *s)
{
	return s->rx_short + s->rx_version + s->rx_auth + s->rx_replay +
	       s->rx_self + s->tx_err + s->tx_drop;
}

/* At most one line per PEER_LOG_EVERY_NS, and only when something was
 * dropped since the last one. */
static void log_drops(struct peer *p)
{
	struct peer_stats st;
	uint64_t now = loop_mono_ns();

	if (p->logged_ns && now - p->logged_ns < PEER_LOG_EVERY_NS)
		return;
	peer_get_stats(p, &st);
	if (drops(&st) == drops(&p->logged))
		return;
	log_warn("peer: dropped in the last period: short %" PRIu64
		 " version %" PRIu64 " auth %" PRIu64 " replay %" PRIu64
		 " self %" PRIu64 " tx_err %" PRIu64 " tx_drop %" PRIu64,
		 st.rx_short - p->logged.rx_short,
		 st.rx_version - p->logged.rx_version,
		 st.rx_auth - p->logged.rx_auth,
		 st.rx_replay - p->logged.rx_replay,
		 st.rx_self - p->logged.rx_self,
		 st.tx_err - p->logged.tx_err, st.tx_drop - p->logged.tx_drop);
	p->logged = st;
	p->logged_ns = now;
}

static void on_readable(struct loop *l, int fd, unsigned events, void *ctx)
{
	struct peer *p = ctx;

	(void)l;
	(void)events;
	/* bounded so one busy peer cannot starve the loop's other work */
	for (int k = 0; k < PEER_RX_BATCH; k++) {
		struct sockaddr_storage src;
		socklen_t srclen = sizeof(src);
		const uint8_t *body;
		uint64_t from;
		uint8_t type;
		size_t len;
		ssize_t n;

		n = recvfrom(fd, p->rbuf, PEER_DGRAM_MAX + 1, MSG_TRUNC | MSG_DONTWAIT,
			     (struct sockaddr *)&src, &srclen);
		if (n < 0) {
			if (errno == EINTR || errno == ECONNREFUSED)
				continue;
			break;                 /* EAGAIN, or nothing we can fix */
		}
		/* MSG_TRUNC: n is the real length, so oversize is rx_short */
		if (peer_rx_open(p->rx, p->rbuf, (size_t)n > PEER_DGRAM_MAX + 1 ?
				 PEER_DGRAM_MAX + 1 : (size_t)n, p->obuf, &from,
				 &type, &body, &len) == 0 && p->fn)
			p->fn(p->ctx, from, type, body, len,
			      (const struct sockaddr *)&src, srclen);
	}
	log_drops(p);
}

/* Binds and watches the socket; see net/peer.h. */
int peer_new(struct loop *loop, const struct peer_config *cfg,
	     peer_recv_fn fn, void *ctx, struct peer **out)
{
	struct peer *p;
	int rc;

	if (!loop || !cfg || !cfg->listen || !cfg->self_id || !cfg->epoch ||
	    !cfg->cluster || !out ||
	    (cfg->listen->sa_family != AF_INET && cfg->listen->sa_family != AF_INET6))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->loop = loop;
	p->epoch = cfg->epoch;
	p->fn = fn;
	p->ctx = ctx;
	p->family = cfg->listen->sa_family;
	p->rbuf = malloc(PEER_DGRAM_MAX + 1);
	p->obuf = malloc(PEER_DGRAM_MAX + 1);
	p->sbuf = malloc(PEER_DGRAM_MAX);
	if (!p->rbuf || !p->obuf || !p->sbuf) {
		rc = -ENOMEM;
		goto out_bufs;
	}
	p->rx = peer_rx_new(cfg->self_id, cfg->cluster, cfg->key);
	if (!p->rx) {
		rc = -ENOMEM;
		goto out_bufs;
	}
	p->fd = socket(p->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		rc = -errno;
		goto out_rx;
	}
	set_buf(p->fd, SO_RCVBUFFORCE, SO_RCVBUF);
	set_buf(p->fd, SO_SNDBUFFORCE, SO_SNDBUF);
	if (bind(p->fd, cfg->listen, cfg->listen_len) < 0) {
		rc = -errno;
		goto out_fd;
	}
	rc = loop_watch(loop, p->fd, LOOP_READ, on_readable, p);
	if (rc < 0)
		goto out_fd;
	*out = p;
	return 0;

out_fd:
	close(p->fd);
out_rx:
	peer_rx_free(p->rx);
out_bufs:
	free(p->rbuf);
	free(p->obuf);
	free(p->sbuf);
	free(p);
	return rc;
}

/* Unwatches, closes, and wipes the key. */
void peer_free(struct peer *p)
{
	if (!p)
		return;
	loop_unwatch(p->loop, p->fd);
	close(p->fd);
	peer_rx_free(p->rx);
	idmap_free(&p->addrs);
	sodium_memzero(p->sbuf, PEER_DGRAM_MAX);
	free(p->rbuf);
	free(p->obuf);
	free(p->sbuf);
	free(p);
}

/* Sets (or replaces) the address of node id.  An IPv4 address for an IPv6
 * socket is stored v4-mapped (the dual-stack socket sends to it); an IPv6
 * one for an IPv4 socket only when it is v4-mapped.  0, -EINVAL, -ENOMEM. */
int peer_set_addr(struct peer *p, uint64_t id, const struct sockaddr *sa,
		  socklen_t len)
{
	struct paddr a = { .len = len }, *old;
	int rc;

	if (!p || !id || !sa || len < sizeof(sa_family_t) || len > sizeof(a.ss))
		return -EINVAL;
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		if (p->family == AF_INET6) {
			struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&a.ss;

			d6->sin6_family = AF_INET6;
			d6->sin6_port = s4->sin_port;
			d6->sin6_addr.s6_addr[10] = 0xff;
			d6->sin6_addr.s6_addr[11] = 0xff;
			memcpy(&d6->sin6_addr.s6_addr[12], &s4->sin_addr, 4);
			a.len = sizeof(*d6);
		} else {
			memcpy(&a.ss, s4, sizeof(*s4));
			a.len = sizeof(*s4);
		}
	} else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		if (p->family == AF_INET6) {
			memcpy(&a.ss, s6, sizeof(*s6));
			a.len = sizeof(*s6);
		} else if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			struct sockaddr_in *d4 = (struct sockaddr_in *)&a.ss;

			d4->sin_family = AF_INET;
			d4->sin_port = s6->sin6_port;
			memcpy(&d4->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
			a.len = sizeof(*d4);
		} else {
			return -EINVAL;
		}
	} else {
		return -EINVAL;
	}
	old = idmap_get(&p->addrs, id);
	if (old) {
		*old = a;
		return 0;
	}
	old = malloc(sizeof(*old));
	if (!old)
		return -ENOMEM;
	*old = a;
	rc = idmap_put(&p->addrs, id, old);
	if (rc < 0)
		free(old);
	return rc;
}

/* 1 if an address is known for id, else 0. */
int peer_has_addr(const struct peer *p, uint64_t id)
{
	return p && idmap_get(&p->addrs, id) != NULL;
}

/* Seals and sends one datagram; see net/peer.h. */
int peer_send(struct peer *p, uint64_t to, uint8_t type, const uint8_t *body,
	      size_t len)
{
	const struct paddr *a;
	ssize_t n;

	if (len > PEER_BODY_MAX)
		return -EMSGSIZE;
	a = idmap_get(&p->addrs, to);
	if (!a) {
		p->tx_err++;
		return -EHOSTUNREACH;
	}
	if (p->counter == UINT64_MAX) {
		/* the nonce would repeat: a restart with a new epoch is due */
		p->tx_err++;
		return -EOVERFLOW;
	}
	n = peer_rx_seal(p->rx, to, p->epoch, p->counter + 1, type, body, len,
			 p->sbuf, PEER_DGRAM_MAX);
	if (n < 0) {
		p->tx_err++;
		return (int)n;
	}
	/* a counter is never reused, whatever happens to the send */
	p->counter++;
	for (;;) {
		if (sendto(p->fd, p->sbuf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL,
			   (const struct sockaddr *)&a->ss, a->len) >= 0) {
			p->tx_ok++;
			return 0;
		}
		if (errno != EINTR)
			break;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
		p->tx_drop++;
		return -EAGAIN;
	}
	p->tx_err++;
	return -errno;
}

/* Receive counters of the context plus our send counters. */
void peer_get_stats(const struct peer *p, struct peer_stats *st)
{
	peer_rx_stats(p->rx, st);
	st->tx_ok = p->tx_ok;
	st->tx_err = p->tx_err;
	st->tx_drop = p->tx_drop;
}

/* The bound socket. */
int peer_fd(const struct peer *p)
{
	return p->fd;
}
