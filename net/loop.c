/*
 * net/loop.c - the single-threaded epoll event loop (implements net/loop.h).
 *
 * File events come from epoll, timers from a binary min-heap whose earliest
 * entry sets the epoll timeout (epoll_pwait2 for ns precision, falling back
 * to ms rounded up), signals from one signalfd.  Callbacks may add and
 * cancel watches and timers freely, including their own.
 *
 * It must never: block anywhere but in epoll_wait, touch the FUSE mount, or
 * call a callback whose watch or timer was removed/cancelled before the call.
 */
#include "config.h"

#include "net/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

/* One fd watch.  `gen` tells a stale epoll event (for a watch removed or
 * replaced earlier in the same batch) from a live one. */
struct watch {
	loop_fd_fn fn;
	void *ctx;
	unsigned events;
	uint32_t gen;
	bool used;
};

/* One timer slot.  Slots are recycled through a free list; the public id is
 * (gen << 32 | slot + 1), so an old id never names a recycled slot. */
struct timer {
	uint64_t when;          /* CLOCK_MONOTONIC ns */
	uint64_t seq;           /* creation order: ties and re-entrancy guard */
	loop_timer_fn fn;
	void *ctx;
	uint32_t gen;
	uint32_t heap_pos;      /* index in heap, or UINT32_MAX when not armed */
	uint32_t next_free;
};

struct loop {
	int epfd;
	int sigfd;
	pid_t sigpid;           /* process that created sigfd */
	bool stop;

	struct watch *w;        /* indexed by fd */
	size_t nw;

	struct timer *t;        /* slots */
	uint32_t nt, free_head;
	uint32_t *heap;         /* slot indices, min-heap on (when, seq) */
	uint32_t nheap, capheap;
	uint64_t seq;

	loop_timer_fn idle_fn;  /* loop_on_idle() */
	void *idle_ctx;

	sigset_t sigmask;
	struct {
		loop_signal_fn fn;
		void *ctx;
	} sig[_NSIG];
};

#define NO_SLOT UINT32_MAX
#define SIGFD_TAG 0xffffffffu   /* epoll data for the signalfd */

/* ---- clocks ------------------------------------------------------------ */

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC now, in ns. */
uint64_t loop_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/* CLOCK_REALTIME now, in ns since the epoch. */
uint64_t loop_wall_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

/* ---- life -------------------------------------------------------------- */

/* Creates a loop.  NULL and errno on failure. */
struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof(*l));
	int e;

	if (!l)
		return NULL;
	l->sigfd = -1;
	l->free_head = NO_SLOT;
	sigemptyset(&l->sigmask);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		goto free_loop;
	return l;

free_loop:
	e = errno;
	free(l);
	errno = e;
	return NULL;
}

/* Frees the loop: closes its epoll and signal fds (the watched fds belong
 * to their owners and stay open).  Signals stay blocked. */
void loop_free(struct loop *l)
{
	if (!l)
		return;
	if (l->sigfd >= 0)
		close(l->sigfd);
	close(l->epfd);
	free(l->w);
	free(l->t);
	free(l->heap);
	free(l);
}

/* ---- fd watches -------------------------------------------------------- */

static uint32_t to_epoll(unsigned events)
{
	uint32_t e = 0;

	if (events & LOOP_READ)
		e |= EPOLLIN | EPOLLRDHUP;
	if (events & LOOP_WRITE)
		e |= EPOLLOUT;
	return e;
}

/* Watches fd; replaces an earlier watch of the same fd.  0, -EINVAL (bad
 * fd or no events), -ENOMEM, or the epoll_ctl errno. */
int loop_watch(struct loop *l, int fd, unsigned events, loop_fd_fn fn, void *ctx)
{
	struct epoll_event ev;
	struct watch *w;
	bool had;

	if (fd < 0 || !fn || !(events & (LOOP_READ | LOOP_WRITE)))
		return -EINVAL;
	if ((size_t)fd >= l->nw) {
		size_t n = l->nw ? l->nw : 16;
		struct watch *nv;

		while (n <= (size_t)fd)
			n *= 2;
		nv = realloc(l->w, n * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		memset(nv + l->nw, 0, (n - l->nw) * sizeof(*nv));
		l->w = nv;
		l->nw = n;
	}
	w = &l->w[fd];
	had = w->used;
	memset(&ev, 0, sizeof(ev));
	ev.events = to_epoll(events);
	/* A new generation makes events already fetched for the old watch
	 * stale, so a replaced callback is never called with them. */
	ev.data.u64 = (uint64_t)(w->gen + 1) << 32 | (uint32_t)fd;
	if (epoll_ctl(l->epfd, had ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0) {
		int e = errno;

		/* The fd may have been closed and reused behind our back. */
		if (had && e == ENOENT &&
		    epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
			goto ok;
		return -e;
	}
ok:
	w->gen++;
	w->used = true;
	w->fn = fn;
	w->ctx = ctx;
	w->events = events;
	return 0;
}

/* Stops watching fd; harmless when it was not watched. */
void loop_unwatch(struct loop *l, int fd)
{
	struct watch *w;

	if (fd < 0 || (size_t)fd >= l->nw || !l->w[fd].used)
		return;
	w = &l->w[fd];
	/* Fails harmlessly when the owner already closed fd. */
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	w->used = false;
	w->gen++;
	w->fn = NULL;
	w->ctx = NULL;
}

/* ---- timers: binary min-heap ------------------------------------------ */

static bool t_less(const struct loop *l, uint32_t a, uint32_t b)
{
	const struct timer *x = &l->t[a], *y = &l->t[b];

	return x->when < y->when || (x->when == y->when && x->seq < y->seq);
}

static void heap_set(struct loop *l, uint32_t pos, uint32_t slot)
{
	l->heap[pos] = slot;
	l->t[slot].heap_pos = pos;
}

static void heap_up(struct loop *l, uint32_t pos)
{
	uint32_t slot = l->heap[pos];

	while (pos > 0) {
		uint32_t parent = (pos - 1) / 2;

		if (!t_less(l, slot, l->heap[parent]))
			break;
		heap_set(l, pos, l->heap[parent]);
		pos = parent;
	}
	heap_set(l, pos, slot);
}

static void heap_down(struct loop *l, uint32_t pos)
{
	uint32_t slot = l->heap[pos];

	for (;;) {
		uint32_t c = 2 * pos + 1;

		if (c >= l->nheap)
			break;
		if (c + 1 < l->nheap && t_less(l, l->heap[c + 1], l->heap[c]))
			c++;
		if (!t_less(l, l->heap[c], slot))
			break;
		heap_set(l, pos, l->heap[c]);
		pos = c;
	}
	heap_set(l, pos, slot);
}

/* Removes the timer at heap position pos and recycles its slot. */
static void heap_remove(struct loop *l, uint32_t pos)
{
	uint32_t slot = l->heap[pos];
	uint32_t last = l->heap[--l->nheap];

	if (pos < l->nheap) {
		heap_set(l, pos, last);
		heap_down(l, pos);
		heap_up(l, l->t[last].heap_pos);
	}
	l->t[slot].heap_pos = NO_SLOT;
	l->t[slot].fn = NULL;
	l->t[slot].ctx = NULL;
	l->t[slot].gen++;
	l->t[slot].next_free = l->free_head;
	l->free_head = slot;
}

/* Arms a one-shot timer at mono_ns.  Returns its id (> 0) or 0 on ENOMEM
 * or a NULL fn. */
uint64_t loop_timer_at(struct loop *l, uint64_t mono_ns, loop_timer_fn fn, void *ctx)
{
	uint32_t slot;
	struct timer *t;

	if (!fn)
		return 0;
	if (l->nheap == l->capheap) {
		uint32_t n = l->capheap ? l->capheap * 2 : 16;
		uint32_t *nh;

		if (n >= NO_SLOT / 2)
			return 0;
		nh = realloc(l->heap, (size_t)n * sizeof(*nh));
		if (!nh)
			return 0;
		l->heap = nh;
		l->capheap = n;
	}
	if (l->free_head == NO_SLOT) {
		/* Slots grow with the heap, so there is room for one more. */
		struct timer *nt = realloc(l->t, (size_t)l->capheap * sizeof(*nt));

		if (!nt)
			return 0;
		l->t = nt;
		for (uint32_t i = l->nt; i < l->capheap; i++) {
			memset(&l->t[i], 0, sizeof(l->t[i]));
			l->t[i].gen = 1;
			l->t[i].heap_pos = NO_SLOT;
			l->t[i].next_free = i + 1 < l->capheap ? i + 1 : l->free_head;
		}
		l->free_head = l->nt;
		l->nt = l->capheap;
	}
	slot = l->free_head;
	t = &l->t[slot];
	l->free_head = t->next_free;
	t->when = mono_ns;
	t->seq = ++l->seq;
	t->fn = fn;
	t->ctx = ctx;
	l->heap[l->nheap] = slot;
	t->heap_pos = l->nheap++;
	heap_up(l, t->heap_pos);
	return (uint64_t)t->gen << 32 | (slot + 1u);
}

/* Cancels a timer; harmless for an id that fired, was cancelled or never
 * existed.  O(log n). */
void loop_timer_cancel(struct loop *l, uint64_t id)
{
	uint32_t slot = (uint32_t)id, gen = (uint32_t)(id >> 32);

	if (slot == 0 || slot > l->nt)
		return;
	slot--;
	if (l->t[slot].gen != gen || l->t[slot].heap_pos == NO_SLOT)
		return;
	heap_remove(l, l->t[slot].heap_pos);
}

/* Fires the timers due at `now` that existed before this round, so a
 * callback that re-arms itself "now" cannot starve the fds. */
static void fire_timers(struct loop *l, uint64_t now)
{
	uint64_t seq_limit = l->seq;

	while (l->nheap > 0 && !l->stop) {
		uint32_t slot = l->heap[0];
		struct timer *t = &l->t[slot];
		loop_timer_fn fn;
		void *ctx;

		if (t->when > now || t->seq > seq_limit)
			break;
		fn = t->fn;
		ctx = t->ctx;
		heap_remove(l, 0);
		fn(l, ctx);
	}
}

/* ---- signals ------------------------------------------------------------ */

static void read_signals(struct loop *l)
{
	struct signalfd_siginfo si[8];

	for (;;) {
		ssize_t r = read(l->sigfd, si, sizeof(si));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return;         /* EAGAIN: drained */
		}
		if (r < (ssize_t)sizeof(si[0]))
			return;
		for (size_t i = 0; i < (size_t)r / sizeof(si[0]); i++) {
			unsigned s = si[i].ssi_signo;

			if (s > 0 && s < _NSIG && l->sig[s].fn && !l->stop)
				l->sig[s].fn(l, (int)s, l->sig[s].ctx);
		}
	}
}

/* Blocks signo and delivers it through the loop.  Its disposition is reset
 * to default first: an ignored signal (SIGINT in a background job) would
 * otherwise be discarded before it reaches the signalfd.  0 or -errno. */
int loop_signal(struct loop *l, int signo, loop_signal_fn fn, void *ctx)
{
	sigset_t one, mask = l->sigmask;
	struct sigaction sa;
	int fd;

	if (signo <= 0 || signo >= _NSIG || !fn || signo == SIGKILL || signo == SIGSTOP)
		return -EINVAL;
	sigaddset(&mask, signo);
	fd = signalfd(l->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (l->sigfd < 0) {
		struct epoll_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u64 = SIGFD_TAG;
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			int e = errno;

			close(fd);
			return -e;
		}
		l->sigfd = fd;
		l->sigpid = getpid();
	}
	sigemptyset(&one);
	sigaddset(&one, signo);
	if (sigprocmask(SIG_BLOCK, &one, NULL) != 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(signo, &sa, NULL);
	l->sigmask = mask;
	l->sig[signo].fn = fn;
	l->sig[signo].ctx = ctx;
	return 0;
}

/* A signalfd watched by epoll keeps waking only the process that added
 * it: after a fork (daemonizing) the child must make its own. */
static int renew_sigfd(struct loop *l)
{
	struct epoll_event ev;
	int fd;

	if (l->sigfd < 0 || l->sigpid == getpid())
		return 0;
	fd = signalfd(-1, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = SIGFD_TAG;
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->sigfd, NULL);
	close(l->sigfd);
	l->sigfd = fd;
	l->sigpid = getpid();
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		return -errno;
	return 0;
}

/* ---- running ------------------------------------------------------------ */

/* Waits for events until `deadline` (mono ns, 0 = forever). */
static int wait_events(struct loop *l, struct epoll_event *ev, int max,
		       uint64_t deadline)
{
	static bool no_pwait2;
	uint64_t now, d;

	if (deadline == 0)
		return epoll_wait(l->epfd, ev, max, -1);
	now = loop_mono_ns();
	d = deadline > now ? deadline - now : 0;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
	if (!no_pwait2) {
		struct timespec ts = {
			.tv_sec = (time_t)(d / 1000000000u),
			.tv_nsec = (long)(d % 1000000000u),
		};
		int r = epoll_pwait2(l->epfd, ev, max, &ts, NULL);

		if (r >= 0 || errno != ENOSYS)
			return r;
		no_pwait2 = true;
	}
#else
	(void)no_pwait2;
#endif
	{
		/* Round up so we never wake before the deadline and spin. */
		uint64_t ms = (d + 999999u) / 1000000u;

		if (ms > INT32_MAX)
			ms = INT32_MAX;
		return epoll_wait(l->epfd, ev, max, (int)ms);
	}
}

/* Runs until loop_stop().  0, or -errno when epoll fails. */
int loop_run(struct loop *l)
{
	struct epoll_event ev[64];
	int rc;

	rc = renew_sigfd(l);
	if (rc < 0)
		return rc;
	l->stop = false;
	while (!l->stop) {
		uint64_t deadline = l->nheap ? l->t[l->heap[0]].when : 0;
		int n;

		/* A timer due at time 0 must still give a finite wait. */
		if (l->nheap && deadline == 0)
			deadline = 1;
		n = wait_events(l, ev, (int)(sizeof(ev) / sizeof(ev[0])), deadline);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n && !l->stop; i++) {
			uint64_t d = ev[i].data.u64;
			uint32_t fd = (uint32_t)d, gen = (uint32_t)(d >> 32);
			unsigned events = 0;
			struct watch *w;

			if (d == SIGFD_TAG) {
				read_signals(l);
				continue;
			}
			if (fd >= l->nw)
				continue;
			w = &l->w[fd];
			if (!w->used || w->gen != gen)
				continue;       /* removed or replaced in this batch */
			if (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				events |= LOOP_READ;
			if (ev[i].events & (EPOLLOUT | EPOLLERR))
				events |= LOOP_WRITE;
			/* Report errors to a write-only watcher too. */
			if ((ev[i].events & (EPOLLHUP | EPOLLERR)) && !(w->events & LOOP_READ))
				events |= LOOP_WRITE;
			events &= w->events;
			if (events)
				w->fn(l, (int)fd, events, w->ctx);
		}
		if (!l->stop)
			fire_timers(l, loop_mono_ns());
		if (l->idle_fn)
			l->idle_fn(l, l->idle_ctx);
	}
	return 0;
}

/* Sets the hook run after every round (see loop.h). */
void loop_on_idle(struct loop *l, loop_timer_fn fn, void *ctx)
{
	l->idle_fn = fn;
	l->idle_ctx = ctx;
}

/* Makes loop_run() return after the current callback. */
void loop_stop(struct loop *l)
{
	l->stop = true;
}
