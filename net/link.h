/*
 * net/link.h - watches the network link that carries cluster traffic
 * (libnl's route cache manager on the loop's fd).
 *
 * Given the addresses of the peers we talk to, it finds the local interface
 * the kernel routes them through and follows that interface's operational
 * state and addresses: the link is "down" as soon as the interface is not
 * running (IFF_RUNNING/IFF_UP cleared, oper state down) or loses the local
 * address we send from, and "up" again when both are back.  The node enters
 * jeopardy at once on "down" and retries every peer at once on "up".
 *
 * It must never: block the loop (all netlink traffic is non-blocking and
 * driven by the cache manager's fd), or report a change that did not
 * happen (a callback only on a transition).
 */
#ifndef CLUCK_LINK_H
#define CLUCK_LINK_H

#include <sys/socket.h>

struct loop;
struct link_mon;

enum link_state { LINK_UNKNOWN = 0, LINK_UP, LINK_DOWN };

/* Called on every transition between LINK_UP and LINK_DOWN. */
typedef void (*link_fn)(void *ctx, enum link_state st);

/*
 * Starts watching the interface that routes to `peers` (n addresses; the
 * first one with a route decides; loopback is a valid answer).  0 or
 * -errno (netlink unavailable: the caller logs it and runs without link
 * monitoring).  The state is known when it returns.
 */
int link_new(struct loop *loop, const struct sockaddr *const *peers,
	     const socklen_t *lens, unsigned n, link_fn fn, void *ctx,
	     struct link_mon **out);
void link_free(struct link_mon *lm);

enum link_state link_state(const struct link_mon *lm);
/* "up", "down" or "unknown". */
const char *link_state_name(enum link_state st);
/* Name of the watched interface ("" when none). */
const char *link_ifname(const struct link_mon *lm);

#endif /* CLUCK_LINK_H */
