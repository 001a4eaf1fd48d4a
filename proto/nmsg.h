/*
 * proto/nmsg.h - node messages: what a node's session says to the leader
 * (forwarded commands, keepalives) and the leader's acknowledgements.
 * They travel as PEER_T_NODE bodies (proto/seal.h), next to Raft's messages.
 *
 * Layout (little endian), NMSG_HDR_BYTES then the body:
 *   u8  version NMSG_VERSION
 *   u8  kind (enum nmsg_kind)
 *   u8  ok   (acks: 1 when the leader acknowledged the session's contact)
 *   u8  0
 *   u32 body length (FWD: the encoded lc_cmd; others: 0)
 *   u64 session, u64 serial (FWD and FWD_ACK: the command's; KA and KA_ACK:
 *              the sender's --lease in ms, see node/rx.c; READ: read id)
 *   u64 stamp  (sender's monotonic ms, echoed by the ack: the lease view
 *              counts from the send time of the acknowledged message)
 *   u64 leader (acks: who the answering node believes leads, 0 unknown)
 *
 * NM_READ asks the leader for a read index (serial: the asker's read id);
 * NM_READ_ACK echoes serial and stamp and carries the index in `session`
 * (0: not the leader, or no lease to answer from).
 *
 * It must never: accept a message whose length disagrees with its header,
 * read beyond the buffer it is given (the decoder is fuzzed), or use
 * anything but the C library (pure wire code, shared with a client).
 */
#ifndef CLUCK_NMSG_H
#define CLUCK_NMSG_H

#include <stddef.h>
#include <stdint.h>

#define NMSG_VERSION   1u
#define NMSG_HDR_BYTES 40u

enum nmsg_kind {
	NM_FWD = 1,         /* session, serial, stamp, body: command for the log */
	NM_FWD_ACK,         /* ok: proposed (and contact acknowledged); leader */
	NM_KA,              /* session, stamp: keepalive */
	NM_KA_ACK,          /* ok: contact acknowledged; leader */
	NM_READ,            /* serial: read id; stamp */
	NM_READ_ACK,        /* serial, stamp echoed; session: read index */
	NM__MAX
};

struct nmsg {
	uint8_t kind, ok;
	uint64_t session, serial, stamp, leader;
	const uint8_t *body;          /* points into the decoded buffer */
	uint32_t len;
};

/* Encodes m into buf (size >= NMSG_HDR_BYTES + m->len).  Returns the
 * length or -EMSGSIZE. */
int nmsg_encode(const struct nmsg *m, uint8_t *buf, size_t size);
/* Decodes; body points into buf.  0 or -EINVAL (short, bad version, kind
 * or length). */
int nmsg_decode(const uint8_t *buf, size_t len, struct nmsg *m);

#endif /* CLUCK_NMSG_H */
