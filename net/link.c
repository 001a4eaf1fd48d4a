/*
 * net/link.c - the link monitor (implements net/link.h) on libnl-3's route
 * cache manager.
 *
 * Two caches, "route/link" and "route/addr", are kept current by the
 * manager's multicast socket, which the loop watches.  After every change
 * (and on a back-off timer while the link is down, see recheck_arm) the
 * state is evaluated afresh: the kernel is asked which source address it
 * would use towards each peer (a connected UDP socket, no packet is sent),
 * that address names the interface, and the interface is "up" when it is
 * IFF_UP, IFF_RUNNING, not oper-down and still holds the address.
 *
 * It must never: block the loop (the manager's socket is non-blocking; the
 * only synchronous netlink traffic is the initial dump in link_new and a
 * resynchronising dump after the kernel dropped notifications, both answered
 * by the local kernel at once), call fn except on a real UP<->DOWN
 * transition, or touch the link monitor after link_free (a link_free from
 * inside fn is deferred until the dispatch that called fn is over).
 */
#include "config.h"

#include "net/link.h"
#include "net/log.h"
#include "net/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>

/* Back-off of the re-check while down: the kernel announces an address or
 * a link before it has reinstalled the routes that follow from it, and we
 * do not watch the (possibly huge) route table, so a "down" is re-examined
 * 20 ms, 40 ms, ... up to every second until it is "up" again. */
#define RECHECK_MIN_NS (20ull * 1000 * 1000)
#define RECHECK_MAX_NS (1000ull * 1000 * 1000)

/* Room for a burst of notifications before the kernel drops some (clipped
 * by net.core.rmem_max; a drop is survived by a resync anyway). */
#define NL_RCVBUF (1 << 20)

/* An IPv4 or IPv6 address in the form the caches compare with. */
struct ipaddr {
	int family;             /* AF_INET or AF_INET6; 0 = none */
	unsigned char b[16];
};

struct link_mon {
	struct loop *loop;
	struct nl_cache_mngr *mngr;
	struct nl_cache *links;
	struct nl_cache *addrs;
	int fd;
	link_fn fn;
	void *ctx;

	struct sockaddr_storage *peers;
	socklen_t *lens;
	unsigned n;

	enum link_state state;
	int ifindex;            /* 0 until an interface is known */
	struct ipaddr src;      /* the local address we send from */
	bool src_implicit;      /* loopback source not listed on lo itself */
	char ifname[IFNAMSIZ];

	uint64_t timer;
	uint64_t backoff_ns;

	unsigned busy;          /* dispatches in progress (fn may run) */
	bool doomed;            /* link_free was called during a dispatch */
};

/* libnl speaks NLE_* codes; the rest of cluckd speaks errno. */
static int nl_to_errno(int nlerr)
{
	switch (nlerr < 0 ? -nlerr : nlerr) {
	case NLE_NOMEM: return ENOMEM;
	case NLE_PERM: return EPERM;
	case NLE_NOACCESS: return EACCES;
	case NLE_AGAIN: return EAGAIN;
	case NLE_INVAL: return EINVAL;
	case NLE_BAD_SOCK: return EBADF;
	case NLE_AF_NOSUPPORT: return EAFNOSUPPORT;
	case NLE_PROTO_MISMATCH: return EPROTONOSUPPORT;
	case NLE_OPNOTSUPP: return EOPNOTSUPP;
	case NLE_NOADDR: return EADDRNOTAVAIL;
	case NLE_OBJ_NOTFOUND: return ENOENT;
	case NLE_BUSY: return EBUSY;
	case NLE_RANGE: return ERANGE;
	default: return EIO;
	}
}

/* Puts a socket address into comparable form; v4-mapped IPv6 becomes IPv4,
 * since that is how the kernel lists such an address. */
static bool ipaddr_from_sa(const struct sockaddr_storage *ss, socklen_t len,
			   struct ipaddr *out)
{
	memset(out, 0, sizeof(*out));
	if (ss->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		out->family = AF_INET;
		memcpy(out->b, &s4->sin_addr, 4);
		return true;
	}
	if (ss->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			out->family = AF_INET;
			memcpy(out->b, &s6->sin6_addr.s6_addr[12], 4);
		} else {
			out->family = AF_INET6;
			memcpy(out->b, &s6->sin6_addr, 16);
		}
		return true;
	}
	return false;
}

static size_t ipaddr_len(const struct ipaddr *a)
{
	return a->family == AF_INET ? 4 : a->family == AF_INET6 ? 16 : 0;
}

static bool ipaddr_loopback(const struct ipaddr *a)
{
	static const unsigned char v6lo[16] = { [15] = 1 };

	if (a->family == AF_INET)
		return a->b[0] == 127;
	return a->family == AF_INET6 && memcmp(a->b, v6lo, 16) == 0;
}

static const char *ipaddr_str(const struct ipaddr *a, char *buf, size_t sz)
{
	if (!a->family || !inet_ntop(a->family, a->b, buf, (socklen_t)sz))
		snprintf(buf, sz, "?");
	return buf;
}

/* Asks the kernel which local address it would send to `peer` from: a UDP
 * connect() only consults the routing table.  0 or -errno (ENETUNREACH
 * when no route leads there, e.g. after the link went down). */
static int route_source(const struct sockaddr_storage *peer, socklen_t len,
			struct ipaddr *src)
{
	struct sockaddr_storage dst, me;
	socklen_t melen = sizeof(me);
	int fd, err = 0;

	if (len > sizeof(dst))
		return -EINVAL;
	memset(&dst, 0, sizeof(dst));
	memcpy(&dst, peer, len);
	/* Port 0 is refused by some paths; any port gives the same route. */
	if (dst.ss_family == AF_INET && ((struct sockaddr_in *)&dst)->sin_port == 0)
		((struct sockaddr_in *)&dst)->sin_port = htons(9);
	if (dst.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&dst)->sin6_port == 0)
		((struct sockaddr_in6 *)&dst)->sin6_port = htons(9);

	fd = socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&dst, len) < 0) {
		err = -errno;
		goto close_fd;
	}
	if (getsockname(fd, (struct sockaddr *)&me, &melen) < 0) {
		err = -errno;
		goto close_fd;
	}
	if (!ipaddr_from_sa(&me, melen, src))
		err = -EAFNOSUPPORT;
close_fd:
	close(fd);
	return err;
}

/* Does this cached address object carry `a` as its local address? */
static bool addr_is(struct rtnl_addr *ra, const struct ipaddr *a)
{
	struct nl_addr *local = rtnl_addr_get_local(ra);

	if (!local || nl_addr_get_family(local) != a->family)
		return false;
	if (nl_addr_get_len(local) != ipaddr_len(a))
		return false;
	return memcmp(nl_addr_get_binary_addr(local), a->b, ipaddr_len(a)) == 0;
}

/* The interface that holds address `a` (ifindex 0 = none).  With
 * `ifindex` > 0, only that interface counts. */
static int addr_owner(struct link_mon *lm, const struct ipaddr *a, int ifindex)
{
	struct nl_object *o;

	for (o = nl_cache_get_first(lm->addrs); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *ra = (struct rtnl_addr *)o;

		if (ifindex > 0 && rtnl_addr_get_ifindex(ra) != ifindex)
			continue;
		if (addr_is(ra, a))
			return rtnl_addr_get_ifindex(ra);
	}
	return 0;
}

/* The loopback interface (a 127.x source other than 127.0.0.1 is not
 * listed on lo, yet lo carries it). */
static int loopback_ifindex(struct link_mon *lm)
{
	struct nl_object *o;

	for (o = nl_cache_get_first(lm->links); o; o = nl_cache_get_next(o)) {
		struct rtnl_link *l = (struct rtnl_link *)o;

		if ((rtnl_link_get_flags(l) & IFF_LOOPBACK) &&
		    rtnl_link_get_family(l) == AF_UNSPEC)
			return rtnl_link_get_ifindex(l);
	}
	return 0;
}

/* The interface's own entry: the link cache also holds per-family entries
 * (an AF_INET6 RTM_NEWLINK for the same ifindex) whose flags are not kept
 * current, so rtnl_link_get(), which takes the first match, may return a
 * stale one.  Borrowed reference, valid until the cache changes. */
static struct rtnl_link *link_by_index(struct link_mon *lm, int ifindex)
{
	struct nl_object *o;

	for (o = nl_cache_get_first(lm->links); o; o = nl_cache_get_next(o)) {
		struct rtnl_link *l = (struct rtnl_link *)o;

		if (rtnl_link_get_ifindex(l) == ifindex &&
		    rtnl_link_get_family(l) == AF_UNSPEC)
			return l;
	}
	return NULL;
}

/* Arms the re-check timer while down; it is harmless when nothing changed
 * (evaluate only calls fn on a transition). */
static void on_recheck(struct loop *l, void *ctx);

static void recheck_arm(struct link_mon *lm)
{
	if (lm->state != LINK_DOWN) {
		if (lm->timer)
			loop_timer_cancel(lm->loop, lm->timer);
		lm->timer = 0;
		lm->backoff_ns = RECHECK_MIN_NS;
		return;
	}
	if (lm->timer)
		return;
	lm->timer = loop_timer_at(lm->loop, loop_mono_ns() + lm->backoff_ns,
				  on_recheck, lm);
	lm->backoff_ns *= 2;
	if (lm->backoff_ns > RECHECK_MAX_NS)
		lm->backoff_ns = RECHECK_MAX_NS;
}

/* Works out the state from the caches and the routing table, remembers it,
 * and on a transition (when `notify`) logs it and calls fn. */
static void evaluate(struct link_mon *lm, bool notify)
{
	char why[192] = "", abuf[INET6_ADDRSTRLEN];
	struct ipaddr src;
	struct rtnl_link *link = NULL;
	enum link_state st;
	int rc = -ENETUNREACH, owner;
	bool route_ok = false, moved = false;
	char oldname[IFNAMSIZ] = "";
	unsigned i;

	if (lm->doomed)
		return;
	for (i = 0; i < lm->n; i++) {
		rc = route_source(&lm->peers[i], lm->lens[i], &src);
		if (rc == 0)
			break;
	}
	if (rc == 0) {
		bool implicit = false;

		owner = addr_owner(lm, &src, 0);
		if (owner == 0 && ipaddr_loopback(&src)) {
			owner = loopback_ifindex(lm);
			implicit = true;
		}
		if (owner > 0) {
			/* The source may move (another address, another
			 * interface): follow where the kernel sends now. */
			moved = owner != lm->ifindex && lm->ifindex > 0;
			if (moved)
				snprintf(oldname, sizeof(oldname), "%s", lm->ifname);
			lm->ifindex = owner;
			lm->src = src;
			lm->src_implicit = implicit;
			route_ok = true;
		} else {
			/* The kernel still routes from an address being
			 * removed: the next notification settles it. */
			snprintf(why, sizeof(why), "source address %s is on no interface",
				 ipaddr_str(&src, abuf, sizeof(abuf)));
		}
	} else {
		snprintf(why, sizeof(why), "no route to any peer (%s)", strerror(-rc));
	}

	if (lm->ifindex > 0)
		link = link_by_index(lm, lm->ifindex);
	if (link) {
		const char *name = rtnl_link_get_name(link);
		unsigned flags = rtnl_link_get_flags(link);
		uint8_t oper = rtnl_link_get_operstate(link);

		if (name)
			snprintf(lm->ifname, sizeof(lm->ifname), "%s", name);
		if (moved)
			log_info("link: the peers are now reached through %s (was %s)",
				 lm->ifname, oldname[0] ? oldname : "?");
		/* The link's own state explains a missing route best. */
		if (!(flags & IFF_UP))
			snprintf(why, sizeof(why), "administratively down");
		else if (!(flags & IFF_RUNNING))
			snprintf(why, sizeof(why), "not running (no carrier)");
		else if (oper != IF_OPER_UP && oper != IF_OPER_UNKNOWN)
			snprintf(why, sizeof(why), "operational state %u", (unsigned)oper);
		else if (route_ok && !lm->src_implicit &&
			 addr_owner(lm, &lm->src, lm->ifindex) == 0)
			snprintf(why, sizeof(why), "address %s removed",
				 ipaddr_str(&lm->src, abuf, sizeof(abuf)));
	} else if (!why[0]) {
		snprintf(why, sizeof(why), lm->ifindex > 0 ? "interface removed"
			 : "no interface found");
	}

	st = why[0] ? LINK_DOWN : LINK_UP;
	if (st == lm->state)
		return;
	/* The first evaluation only sets the state: nothing changed yet. */
	notify = notify && lm->state != LINK_UNKNOWN;
	lm->state = st;
	if (st == LINK_UP)
		log_info("link %s up", lm->ifname[0] ? lm->ifname : "?");
	else
		log_warn("link %s down: %s", lm->ifname[0] ? lm->ifname : "?", why);
	if (notify)
		lm->fn(lm->ctx, st);
}

static void destroy(struct link_mon *lm)
{
	if (lm->fd >= 0)
		loop_unwatch(lm->loop, lm->fd);
	if (lm->timer)
		loop_timer_cancel(lm->loop, lm->timer);
	/* Frees both caches and both of the manager's sockets. */
	if (lm->mngr)
		nl_cache_mngr_free(lm->mngr);
	free(lm->peers);
	free(lm->lens);
	free(lm);
}

/* The manager calls this for every object a notification changed. */
static void on_change(struct nl_cache *cache, struct nl_object *obj, int action,
		      void *arg)
{
	(void)cache;
	(void)obj;
	(void)action;
	evaluate(arg, true);
}

/* After the kernel dropped notifications (receive buffer overrun) the
 * caches are stale: dump both again on a private socket. */
static void resync(struct link_mon *lm)
{
	struct nl_sock *sk = nl_socket_alloc();
	int err;

	if (!sk) {
		log_warn("link: cannot resync the netlink caches: out of memory");
		return;
	}
	err = nl_connect(sk, NETLINK_ROUTE);
	if (err == 0)
		err = nl_cache_refill(sk, lm->links);
	if (err == 0)
		err = nl_cache_refill(sk, lm->addrs);
	if (err < 0)
		log_warn("link: cannot resync the netlink caches: %s", nl_geterror(err));
	nl_socket_free(sk);
}

/* End of a dispatch that may have called fn: free the monitor if fn asked
 * for it (link_free from inside fn waits until here), else re-arm. */
static void dispatch_done(struct link_mon *lm)
{
	lm->busy--;
	if (lm->doomed) {
		if (lm->busy == 0)
			destroy(lm);
		return;
	}
	recheck_arm(lm);
}

static void on_readable(struct loop *l, int fd, unsigned events, void *ctx)
{
	struct link_mon *lm = ctx;
	int err;

	(void)l;
	(void)fd;
	(void)events;
	lm->busy++;
	/* Something changed: look again soon if it leaves us down. */
	if (lm->timer)
		loop_timer_cancel(lm->loop, lm->timer);
	lm->timer = 0;
	lm->backoff_ns = RECHECK_MIN_NS;
	err = nl_cache_mngr_data_ready(lm->mngr);
	if (err < 0 && err != -NLE_AGAIN && !lm->doomed) {
		log_warn("link: netlink notifications lost (%s); resynchronising",
			 nl_geterror(err));
		resync(lm);
		evaluate(lm, true);
	}
	dispatch_done(lm);
}

static void on_recheck(struct loop *l, void *ctx)
{
	struct link_mon *lm = ctx;

	(void)l;
	lm->timer = 0;
	lm->busy++;
	evaluate(lm, true);
	dispatch_done(lm);
}

/*
 * Starts the monitor (see net/link.h).  Returns 0, -EINVAL (no usable peer
 * address or no fn), -ENOMEM, or the errno behind a netlink failure
 * (EPERM, EAFNOSUPPORT, EPROTONOSUPPORT, EIO...); on failure nothing is
 * left allocated or watched.
 */
int link_new(struct loop *loop, const struct sockaddr *const *peers,
	     const socklen_t *lens, unsigned n, link_fn fn, void *ctx,
	     struct link_mon **out)
{
	struct link_mon *lm;
	unsigned i;
	int err, rcvbuf = NL_RCVBUF, fl;

	if (!loop || !peers || !lens || !fn || !out || n == 0)
		return -EINVAL;
	lm = calloc(1, sizeof(*lm));
	if (!lm)
		return -ENOMEM;
	lm->loop = loop;
	lm->fn = fn;
	lm->ctx = ctx;
	lm->fd = -1;
	lm->backoff_ns = RECHECK_MIN_NS;
	lm->peers = calloc(n, sizeof(*lm->peers));
	lm->lens = calloc(n, sizeof(*lm->lens));
	if (!lm->peers || !lm->lens) {
		err = -ENOMEM;
		goto free_lm;
	}
	for (i = 0; i < n; i++) {
		struct ipaddr probe;

		if (!peers[i] || lens[i] == 0 || lens[i] > sizeof(struct sockaddr_storage))
			continue;
		memcpy(&lm->peers[lm->n], peers[i], lens[i]);
		if (!ipaddr_from_sa(&lm->peers[lm->n], lens[i], &probe))
			continue;
		lm->lens[lm->n++] = lens[i];
	}
	if (lm->n == 0) {
		err = -EINVAL;
		goto free_lm;
	}

	err = nl_cache_mngr_alloc(NULL, NETLINK_ROUTE, NL_AUTO_PROVIDE, &lm->mngr);
	if (err < 0) {
		lm->mngr = NULL;
		goto nl_failed;
	}
	err = nl_cache_mngr_add(lm->mngr, "route/link", on_change, lm, &lm->links);
	if (err < 0)
		goto nl_failed;
	err = nl_cache_mngr_add(lm->mngr, "route/addr", on_change, lm, &lm->addrs);
	if (err < 0)
		goto nl_failed;
	lm->fd = nl_cache_mngr_get_fd(lm->mngr);
	if (lm->fd < 0) {
		err = -NLE_BAD_SOCK;
		goto nl_failed;
	}
	/* libnl makes it non-blocking; the loop depends on it, so make sure. */
	fl = fcntl(lm->fd, F_GETFL);
	if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(lm->fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
		err = -errno;
		lm->fd = -1;
		goto free_mngr;
	}
	(void)setsockopt(lm->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	err = loop_watch(loop, lm->fd, LOOP_READ, on_readable, lm);
	if (err < 0) {
		lm->fd = -1;
		goto free_mngr;
	}

	evaluate(lm, false);
	recheck_arm(lm);
	*out = lm;
	return 0;

nl_failed:
	log_debug("link: netlink: %s", nl_geterror(err));
	err = -nl_to_errno(err);
free_mngr:
	if (lm->mngr)
		nl_cache_mngr_free(lm->mngr);
free_lm:
	free(lm->peers);
	free(lm->lens);
	free(lm);
	return err;
}

/* Stops watching and frees everything; NULL is fine.  From inside fn the
 * release waits until the dispatch that called fn returns. */
void link_free(struct link_mon *lm)
{
	if (!lm || lm->doomed)
		return;
	if (lm->busy) {
		lm->doomed = true;
		if (lm->fd >= 0)
			loop_unwatch(lm->loop, lm->fd);
		lm->fd = -1;
		if (lm->timer)
			loop_timer_cancel(lm->loop, lm->timer);
		lm->timer = 0;
		return;
	}
	destroy(lm);
}

/* The last evaluated state (LINK_UP or LINK_DOWN once link_new returned). */
enum link_state link_state(const struct link_mon *lm)
{
	return lm ? lm->state : LINK_UNKNOWN;
}

/* "up", "down" or "unknown". */
const char *link_state_name(enum link_state st)
{
	switch (st) {
	case LINK_UP: return "up";
	case LINK_DOWN: return "down";
	default: return "unknown";
	}
}

/* Name of the watched interface ("" when none is known yet). */
const char *link_ifname(const struct link_mon *lm)
{
	return lm ? lm->ifname : "";
}
