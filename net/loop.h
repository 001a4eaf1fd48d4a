/*
 * net/loop.h - the single-threaded epoll event loop that owns the engine.
 *
 * Shaped after Redis ae.c: file events (epoll), timers (a min-heap, fired
 * from one timerfd-less epoll_wait timeout), and signals (signalfd).  One
 * thread runs it; every callback runs on that thread and must not block.
 * It never touches the FUSE mount.
 */
#ifndef CLUCK_LOOP_H
#define CLUCK_LOOP_H

#include <stdint.h>

struct loop;

#define LOOP_READ  0x1u
#define LOOP_WRITE 0x2u

typedef void (*loop_fd_fn)(struct loop *l, int fd, unsigned events, void *ctx);
typedef void (*loop_timer_fn)(struct loop *l, void *ctx);
typedef void (*loop_signal_fn)(struct loop *l, int signo, void *ctx);

/* NULL and errno on failure. */
struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Watch fd for LOOP_READ/LOOP_WRITE.  Replaces an earlier watch of the
 * same fd.  0 or -errno. */
int loop_watch(struct loop *l, int fd, unsigned events, loop_fd_fn fn, void *ctx);
void loop_unwatch(struct loop *l, int fd);

/* One-shot timer at an absolute CLOCK_MONOTONIC time in ns.  Returns an
 * id > 0, or 0 on ENOMEM.  Cancelling an id that fired or never existed is
 * harmless. */
uint64_t loop_timer_at(struct loop *l, uint64_t mono_ns, loop_timer_fn fn, void *ctx);
void loop_timer_cancel(struct loop *l, uint64_t id);

/* Blocks signo for the process and delivers it through the loop. 0/-errno. */
int loop_signal(struct loop *l, int signo, loop_signal_fn fn, void *ctx);

/* One hook run after every round of fd events and timers, just before the
 * loop waits again: where work batched over a round is flushed (the node
 * driver's group commit).  fn NULL removes it. */
void loop_on_idle(struct loop *l, loop_timer_fn fn, void *ctx);

/* Runs until loop_stop(). 0 or -errno on an epoll failure. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* Clocks (ns). */
uint64_t loop_mono_ns(void);
uint64_t loop_wall_ns(void);

#endif /* CLUCK_LOOP_H */
