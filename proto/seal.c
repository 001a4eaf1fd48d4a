/*
 * proto/seal.c - sealing and opening peer datagrams, the replay windows,
 * the cluster identity and the key file (the wire layout, the nonce and
 * the replay rules are in proto/seal.h).
 *
 * Conventions this file fixes where the header leaves room:
 *  - the header's length field is the body length; a sealed datagram is
 *    header + length + PEER_TAG_BYTES, a clear one header + length;
 *  - sender id 0, epoch 0 and counter 0 are malformed headers (rx_version):
 *    ids are non-zero and counters start at 1;
 *  - replay windows are kept for at most PEER_RX_MAX_SENDERS senders; a
 *    window is only created after a datagram opened, so only key holders
 *    can fill the table.  Beyond the bound the least recently used window
 *    is dropped: that sender's old datagrams (within the last window) could
 *    then be replayed once, which needs more than PEER_RX_MAX_SENDERS
 *    genuine senders talking to us: far beyond any cluster we support;
 *  - a window that cannot be allocated (ENOMEM) drops the datagram
 *    (-ENOMEM, no counter): accepting it unrecorded would open a replay;
 *  - the body is opened before the self and replay checks, so a forgery
 *    costs one failed open whatever its header says (as a replay does:
 *    both are as cheap to send), and is counted as what it is.
 *
 * It must never: parse a body, log, use a socket or the event loop, move a
 * replay window (or create one) before the body opened, count an
 * unauthenticated datagram as anything but short, version or auth, read
 * outside a datagram, or leave the key outside locked memory
 * (sodium_malloc) once loaded.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "lockcore/le.h"
#include "proto/idmap.h"
#include "proto/seal.h"

#define PEER_NONCE_BYTES    24u
/* additional data: the header, the receiver's id, the cluster identity */
#define PEER_AD_BYTES       (PEER_HDR_BYTES + 8u + PEER_CLUSTER_BYTES)
#define PEER_RX_MAX_SENDERS 4096u
#define PEER_KEYFILE_MAX    (1024 * 1024)
#define WIN_WORDS           (PEER_REPLAY_WINDOW / 64u)

/* ---- the receive context ------------------------------------------------ */

struct rwin {
	uint64_t epoch;                /* highest epoch that opened */
	uint64_t top;                  /* highest counter that opened in it */
	uint64_t used;                 /* LRU stamp */
	uint64_t bits[WIN_WORDS];      /* counter c seen: bit c % WINDOW, for
	                                  c in (top - WINDOW, top] */
};

struct peer_rx {
	uint64_t self;
	uint8_t cluster[PEER_CLUSTER_BYTES];
	uint8_t *key;                  /* sodium_malloc'd, or NULL: insecure */
	struct idmap wins;             /* sender id -> struct rwin */
	uint64_t clock;                /* LRU clock */
	struct peer_stats st;
};

static int sodium_ready(void)
{
	/* sodium_init() is idempotent and thread-safe; 1 = already done */
	return sodium_init() < 0 ? -EIO : 0;
}

static bool win_seen(const struct rwin *w, uint64_t c)
{
	return (w->bits[(c % PEER_REPLAY_WINDOW) / 64] >> (c % 64)) & 1u;
}

static void win_mark(struct rwin *w, uint64_t c)
{
	w->bits[(c % PEER_REPLAY_WINDOW) / 64] |= 1ull << (c % 64);
}

static void win_clear(struct rwin *w, uint64_t c)
{
	w->bits[(c % PEER_REPLAY_WINDOW) / 64] &= ~(1ull << (c % 64));
}

/* Would (epoch, counter) be fresh?  Reads only. */
static bool win_fresh(const struct rwin *w, uint64_t epoch, uint64_t c)
{
	if (!w || epoch > w->epoch)
		return true;
	if (epoch < w->epoch)
		return false;
	if (c > w->top)
		return true;
	if (w->top >= PEER_REPLAY_WINDOW && c <= w->top - PEER_REPLAY_WINDOW)
		return false;
	return !win_seen(w, c);
}

/* Records (epoch, counter) as seen; only called after it opened and
 * win_fresh() said yes. */
static void win_accept(struct rwin *w, uint64_t epoch, uint64_t c)
{
	if (epoch > w->epoch) {
		w->epoch = epoch;
		w->top = c;
		memset(w->bits, 0, sizeof(w->bits));
	} else if (c > w->top) {
		if (c - w->top >= PEER_REPLAY_WINDOW)
			memset(w->bits, 0, sizeof(w->bits));
		else
			for (uint64_t k = w->top + 1; k < c; k++)
				win_clear(w, k);
		w->top = c;
		win_clear(w, c);
	}
	win_mark(w, c);
}

/* Finds or makes the window of a sender that just authenticated,
 * evicting the least recently used one at the bound.  NULL on ENOMEM. */
static struct rwin *win_get(struct peer_rx *rx, uint64_t id)
{
	struct rwin *w = idmap_get(&rx->wins, id);

	if (w)
		return w;
	if (rx->wins.n >= PEER_RX_MAX_SENDERS) {
		uint64_t victim = 0, oldest = UINT64_MAX;

		/* linear, but only once per new sender beyond the bound */
		for (size_t i = 0; i < rx->wins.cap; i++) {
			struct rwin *o = rx->wins.s[i].v;

			if (rx->wins.s[i].id && o->used < oldest) {
				oldest = o->used;
				victim = rx->wins.s[i].id;
			}
		}
		free(idmap_get(&rx->wins, victim));
		idmap_del(&rx->wins, victim);
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	if (idmap_put(&rx->wins, id, w) < 0) {
		free(w);
		return NULL;
	}
	return w;
}

/* Makes a receive context; NULL on ENOMEM (or libsodium failing). */
struct peer_rx *peer_rx_new(uint64_t self_id, const uint8_t *cluster,
			    const uint8_t *key)
{
	struct peer_rx *rx;

	if (sodium_ready() < 0)
		return NULL;
	rx = calloc(1, sizeof(*rx));
	if (!rx)
		return NULL;
	rx->self = self_id;
	if (cluster)
		memcpy(rx->cluster, cluster, PEER_CLUSTER_BYTES);
	if (key) {
		rx->key = sodium_malloc(PEER_KEY_BYTES);
		if (!rx->key)
			goto out_rx;
		memcpy(rx->key, key, PEER_KEY_BYTES);
	}
	return rx;

out_rx:
	free(rx);
	return NULL;
}

/* Frees a receive context and wipes its key (sodium_free does). */
void peer_rx_free(struct peer_rx *rx)
{
	if (!rx)
		return;
	if (rx->key)
		sodium_free(rx->key);
	idmap_free(&rx->wins);
	free(rx);
}

static void nonce_of(uint8_t n[PEER_NONCE_BYTES], uint64_t epoch,
		     uint64_t counter, uint64_t sender)
{
	le_put64(n, epoch);
	le_put64(n + 8, counter);
	le_put64(n + 16, sender);
}

/* The additional data of a datagram: its header, then what does not
 * travel but must match at the one receiver meant (NULL cluster: zeros). */
static void ad_of(uint8_t ad[PEER_AD_BYTES], const uint8_t *hdr,
		  uint64_t receiver, const uint8_t *cluster)
{
	memcpy(ad, hdr, PEER_HDR_BYTES);
	le_put64(ad + PEER_HDR_BYTES, receiver);
	if (cluster)
		memcpy(ad + PEER_HDR_BYTES + 8, cluster, PEER_CLUSTER_BYTES);
	else
		memset(ad + PEER_HDR_BYTES + 8, 0, PEER_CLUSTER_BYTES);
}

/* The cluster identity; see proto/seal.h. */
int peer_cluster_id(const char *const *names, size_t n,
		    uint8_t out[PEER_CLUSTER_BYTES])
{
	static const char label[] = "cluck cluster identity 1";
	crypto_generichash_state st;
	const char **sorted;
	int rc = 0;

	if (!names || !n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!names[i])
			return -EINVAL;
	if (sodium_ready() < 0)
		return -EIO;
	sorted = malloc(n * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	memcpy(sorted, names, n * sizeof(*sorted));
	/* insertion sort: at most a handful of voters */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0; j--) {
			const char *t = sorted[j];

			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	if (crypto_generichash_init(&st, NULL, 0, PEER_CLUSTER_BYTES) != 0) {
		rc = -EIO;
		goto out;
	}
	/* each piece NUL-terminated: no two lists hash the same bytes */
	crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label));
	for (size_t i = 0; i < n; i++)
		crypto_generichash_update(&st, (const uint8_t *)sorted[i],
					  strlen(sorted[i]) + 1);
	crypto_generichash_final(&st, out, PEER_CLUSTER_BYTES);
out:
	free(sorted);
	return rc;
}

/* Checks one datagram; see proto/seal.h. */
int peer_rx_open(struct peer_rx *rx, const uint8_t *dgram, size_t dlen,
		 uint8_t *out, uint64_t *from, uint8_t *type,
		 const uint8_t **body, size_t *len)
{
	uint8_t nonce[PEER_NONCE_BYTES], ad[PEER_AD_BYTES];
	uint64_t sender, epoch, counter;
	uint32_t blen;
	bool clear;
	struct rwin *w;

	if (!dgram || dlen < PEER_HDR_BYTES || dlen > PEER_DGRAM_MAX) {
		rx->st.rx_short++;
		return -EMSGSIZE;
	}
	sender = le_get64(dgram + 8);
	epoch = le_get64(dgram + 16);
	counter = le_get64(dgram + 24);
	if (dgram[0] != PEER_MAGIC || dgram[1] != PEER_VERSION ||
	    dgram[2] == 0 || dgram[2] >= PEER_T__MAX ||
	    (dgram[3] & ~PEER_F_INSECURE) || !sender || !epoch || !counter) {
		rx->st.rx_version++;
		return -EPROTO;
	}
	clear = dgram[3] & PEER_F_INSECURE;
	blen = le_get32(dgram + 4);
	if (blen > PEER_BODY_MAX ||
	    dlen != PEER_HDR_BYTES + (size_t)blen + (clear ? 0 : PEER_TAG_BYTES)) {
		rx->st.rx_short++;
		return -EMSGSIZE;
	}
	if (clear != !rx->key) {
		rx->st.rx_auth++;
		return -EBADMSG;
	}
	/* Authenticate first: until the body opened, the sender, epoch and
	 * counter are only claims, and a forgery that names us or a seen
	 * counter is a forgery, not a loop or a replay. */
	if (clear) {
		memmove(out, dgram + PEER_HDR_BYTES, blen);
	} else {
		nonce_of(nonce, epoch, counter, sender);
		ad_of(ad, dgram, rx->self, rx->cluster);
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(
			    out, NULL, NULL, dgram + PEER_HDR_BYTES,
			    (unsigned long long)blen + PEER_TAG_BYTES, ad,
			    sizeof(ad), nonce, rx->key) != 0) {
			rx->st.rx_auth++;
			return -EBADMSG;
		}
	}
	if (sender == rx->self) {
		rx->st.rx_self++;
		return -ELOOP;
	}
	w = idmap_get(&rx->wins, sender);
	if (!win_fresh(w, epoch, counter)) {
		rx->st.rx_replay++;
		return -EALREADY;
	}
	/* authenticated and fresh: only now may the window move */
	if (!w) {
		w = win_get(rx, sender);
		if (!w)
			return -ENOMEM;
	}
	win_accept(w, epoch, counter);
	w->used = ++rx->clock;
	rx->st.rx_ok++;
	*from = sender;
	*type = dgram[2];
	*body = out;
	*len = blen;
	return 0;
}

/* Would the window take (sender, epoch, counter)?  1 or 0; reads only. */
int peer_rx_fresh(const struct peer_rx *rx, uint64_t sender, uint64_t epoch,
		  uint64_t counter)
{
	return win_fresh(idmap_get(&rx->wins, sender), epoch, counter);
}

/* Receive counters (the tx_* ones stay 0 here). */
void peer_rx_stats(const struct peer_rx *rx, struct peer_stats *st)
{
	*st = rx->st;
}

/* Builds one datagram; see proto/seal.h.  Returns its length, -EMSGSIZE
 * (too long, or out too small) or -EINVAL (zero sender, receiver, epoch or
 * counter, or a bad type). */
ssize_t peer_seal(const uint8_t *key, const uint8_t *cluster, uint64_t sender,
		  uint64_t receiver, uint64_t epoch, uint64_t counter,
		  uint8_t type, const uint8_t *body, size_t len, uint8_t *out,
		  size_t outsize)
{
	uint8_t nonce[PEER_NONCE_BYTES], ad[PEER_AD_BYTES];
	size_t total;

	if (!sender || !receiver || !epoch || !counter || type == 0 ||
	    type >= PEER_T__MAX || (len && !body))
		return -EINVAL;
	if (len > PEER_BODY_MAX)
		return -EMSGSIZE;
	total = PEER_HDR_BYTES + len + (key ? PEER_TAG_BYTES : 0);
	if (outsize < total)
		return -EMSGSIZE;
	out[0] = PEER_MAGIC;
	out[1] = PEER_VERSION;
	out[2] = type;
	out[3] = key ? 0 : PEER_F_INSECURE;
	le_put32(out + 4, (uint32_t)len);
	le_put64(out + 8, sender);
	le_put64(out + 16, epoch);
	le_put64(out + 24, counter);
	if (!key) {
		if (len)
			memmove(out + PEER_HDR_BYTES, body, len);
		return (ssize_t)total;
	}
	if (sodium_ready() < 0)
		return -EIO;
	nonce_of(nonce, epoch, counter, sender);
	ad_of(ad, out, receiver, cluster);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + PEER_HDR_BYTES, NULL,
						   body, len, ad, sizeof(ad),
						   NULL, nonce, key);
	return (ssize_t)total;
}

/* Builds one datagram from the context's node with its key and cluster
 * identity: what net/peer.c sends.  As peer_seal(). */
ssize_t peer_rx_seal(const struct peer_rx *rx, uint64_t receiver,
		     uint64_t epoch, uint64_t counter, uint8_t type,
		     const uint8_t *body, size_t len, uint8_t *out,
		     size_t outsize)
{
	return peer_seal(rx->key, rx->cluster, rx->self, receiver, epoch,
			 counter, type, body, len, out, outsize);
}

/* Checks an opened key file; see proto/seal.h. */
int peer_key_fd_check(int fd, char *why, size_t whylen)
{
	struct stat st;
	const char *w;
	int rc;

	if (fstat(fd, &st) != 0) {
		rc = -errno;
		w = "cannot stat it";
	} else if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		w = "is not a regular file";
	} else if (st.st_uid != 0 && st.st_uid != geteuid()) {
		/* its owner could rewrite it or make it readable */
		rc = -EPERM;
		w = "is owned by another user (it must belong to root or to the user cluckd runs as)";
	} else if (st.st_mode & (S_IRGRP | S_IROTH)) {
		rc = -EACCES;
		w = "is readable by others";
	} else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		rc = -EACCES;
		w = "is writable by others";
	} else {
		return 0;
	}
	if (why && whylen)
		snprintf(why, whylen, "%s", w);
	return rc;
}

/* Reads a key file: BLAKE2b-256 of its whole content (32 bytes .. 1 MiB). */
int peer_load_key(const char *path, uint8_t key[PEER_KEY_BYTES])
{
	uint8_t *buf;
	size_t n = 0;
	ssize_t r;
	int fd, rc = 0;

	if (sodium_ready() < 0)
		return -EIO;
	/* O_NONBLOCK: a FIFO in its place must fail the check, not hang us */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	/* the checks bind to this descriptor: what passed is what is read */
	rc = peer_key_fd_check(fd, NULL, 0);
	if (rc < 0)
		goto out_fd;
	/* one byte more than the cap tells "too long" from "exactly 1 MiB" */
	buf = sodium_malloc(PEER_KEYFILE_MAX + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out_fd;
	}
	while (n < PEER_KEYFILE_MAX + 1) {
		r = read(fd, buf + n, PEER_KEYFILE_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out_buf;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n < PEER_KEY_BYTES || n > PEER_KEYFILE_MAX) {
		rc = n < PEER_KEY_BYTES ? -EINVAL : -EFBIG;
		goto out_buf;
	}
	crypto_generichash(key, PEER_KEY_BYTES, buf, n, NULL, 0);

out_buf:
	sodium_memzero(buf, n);
	sodium_free(buf);
out_fd:
	close(fd);
	return rc;
}
