/*
 * daemon/cluckd.c - main() of cluckd, the composition root: options, the
 * mount point, the node, the filesystem, mounting, daemonizing, and the
 * one event loop that serves the FUSE channel and drives the engine.  On
 * SIGTERM/SIGINT with locks held through the mount it keeps serving for
 * --stop-timeout while the holders finish (nothing new is granted),
 * signals those left, and only then closes the session.
 *
 * It fails closed: the mount point directory is made immutable before
 * mounting and stays so after exit (daemon/mount.c), so with no cluckd
 * mounted a lock attempt under it errors out instead of silently locking
 * locally.
 *
 * It must never: access the mount point after mounting (that deadlocks
 * FUSE), keep a cwd inside it, block in the loop, or print more than one
 * line for a startup error.
 */
#include "config.h"

#include "daemon/mount.h"
#include "daemon/options.h"
#include "fs/fs.h"
#include "net/log.h"
#include "net/loop.h"
#include "node/node.h"
#include "proto/seal.h"
#include "lockcore/raft.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

/* What the loop callbacks share, and what the start-up steps leave for
 * the ones after them. */
struct daemon {
	struct loop *loop;
	struct fuse_session *se;
	struct fuse_buf buf;    /* one receive buffer for the daemon's life */
	int exit_code;
	int stop;               /* SIGTERM/SIGINT seen: never run the loop again */
	int stop_now;           /* a second one: the holders' wait is cut short */
	int unmounted;          /* the channel is gone (unmounted or aborted) */
	struct node *node;      /* for the holders' wait (stop_wait) */
	uint64_t stop_deadline; /* mono ns */
	uint64_t stop_timer;
	/* what the node's configuration points to, kept for its life */
	struct node_voter voters[RF_MAX_VOTERS];
	struct sockaddr_storage listen_addr;
};

/* ---- the loop's callbacks ------------------------------------------------- */

static void on_fuse(struct loop *l, int fd, unsigned events, void *ctx)
{
	struct daemon *d = ctx;

	(void)fd;
	(void)events;
	/* Bounded, so timers and signals get their turn under a flood; the
	 * level-triggered watch calls us again for the rest. */
	for (int i = 0; i < 64; i++) {
		int r = fuse_session_receive_buf(d->se, &d->buf);

		if (r == -EAGAIN)
			return;
		if (r == -EINTR)
			continue;
		if (r <= 0 || fuse_session_exited(d->se)) {
			/* 0 with exited: unmounted (ENODEV) or aborted. */
			if (r < 0) {
				log_err("reading the FUSE device: %s", strerror(-r));
				d->exit_code = 1;
			} else {
				log_info("unmounted");
			}
			d->unmounted = 1;
			loop_stop(l);
			return;
		}
		fuse_session_process_buf(d->se, &d->buf);
		if (fuse_session_exited(d->se)) {
			d->unmounted = 1;
			loop_stop(l);
			return;
		}
	}
}

static void on_stop_signal(struct loop *l, int signo, void *ctx)
{
	struct daemon *d = ctx;

	if (d->stop) {
		/* During the holders' wait: signal them now. */
		if (!d->stop_now)
			log_info("got SIG%s again, not waiting for the holders",
				 sigabbrev_np(signo));
		d->stop_now = 1;
		loop_stop(l);
		return;
	}
	log_info("got SIG%s, stopping", sigabbrev_np(signo));
	/* Remembered: the loop it stops may be a nested one (start-up, a
	 * timer racing it), and the main loop must not run after it. */
	d->stop = 1;
	loop_stop(l);
}

/* ---- the holders' wait ----------------------------------------------------- */

/* Every 50 ms while the holders' wait lasts: done when no hold is left or
 * the time is up. */
static void on_stop_tick(struct loop *l, void *ctx)
{
	struct daemon *d = ctx;

	d->stop_timer = 0;
	if (node_holds(d->node) == 0 || loop_mono_ns() >= d->stop_deadline) {
		loop_stop(l);
		return;
	}
	d->stop_timer = loop_timer_at(l, loop_mono_ns() + 50000000u, on_stop_tick, d);
}

/*
 * A clean stop with holds outstanding: no lock is taken any more on this
 * node, queued requests get ENOLCK at once, and the holders get up to
 * --stop-timeout to release while the session is kept alive (so the
 * cluster frees nothing under them); the ones left are then signalled as
 * on a lost lock.  Only after that does node_stop() let the cluster free
 * their locks.  A second SIGTERM/SIGINT cuts the wait short.
 */
static void stop_wait(struct daemon *d, struct fs *fs, uint64_t timeout_ms)
{
	uint64_t holds = node_holds(d->node);

	if (d->unmounted || node_error(d->node))
		return;
	d->stop_deadline = loop_mono_ns() + timeout_ms * 1000000u;
	node_begin_stop(d->node, d->stop_deadline);
	fs_stop_begin(fs);
	if (holds && timeout_ms && !d->stop_now) {
		log_info("stopping: locks held here: %llu; their holders have %llu.%03llu s "
			 "to release them (SIGTERM again: signal them now)",
			 (unsigned long long)holds, (unsigned long long)(timeout_ms / 1000),
			 (unsigned long long)(timeout_ms % 1000));
		d->stop_timer = loop_timer_at(d->loop, loop_mono_ns(), on_stop_tick, d);
		while (!d->stop_now && !d->unmounted && !node_error(d->node) &&
		       node_holds(d->node) && loop_mono_ns() < d->stop_deadline) {
			if (!d->stop_timer)
				d->stop_timer = loop_timer_at(d->loop, loop_mono_ns() + 50000000u,
							      on_stop_tick, d);
			/* Without the timer nothing would end the wait on
			 * time: signal the holders now rather than late. */
			if (!d->stop_timer || loop_run(d->loop) < 0)
				break;
		}
		loop_timer_cancel(d->loop, d->stop_timer);
		d->stop_timer = 0;
		holds = node_holds(d->node);
		if (!holds)
			log_info("stopping: every hold released");
	}
	if (holds && !node_error(d->node))
		fs_stop_signal(fs);
}

static void on_hup(struct loop *l, int signo, void *ctx)
{
	(void)l;
	(void)signo;
	(void)ctx;
	log_info("got SIGHUP, ignored (restart cluckd to change its options)");
}

/* ---- from the options to the configurations ------------------------------- */

static int add_fuse_args(struct fuse_args *args, const struct options *o)
{
	const char *base = geteuid() == 0
		? "default_permissions,fsname=cluck,subtype=cluck,allow_other"
		: "default_permissions,fsname=cluck,subtype=cluck";

	if (fuse_opt_add_arg(args, "cluckd") || fuse_opt_add_arg(args, "-o") ||
	    fuse_opt_add_arg(args, base))
		return -ENOMEM;
	for (size_t i = 0; i < o->nfuse_opts; i++)
		if (fuse_opt_add_arg(args, "-o") || fuse_opt_add_arg(args, o->fuse_opts[i]))
			return -ENOMEM;
	return 0;
}

/* Resolves HOST:PORT (numeric or a name) to its first UDP address.
 * 0 or -1 after printing the one-line error. */
static int resolve(const char *what, const struct opt_addr *a, int passive,
		   struct sockaddr_storage *out, socklen_t *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 };
	struct addrinfo *res = NULL;
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", (unsigned)a->port);
	rc = getaddrinfo(a->host[0] ? a->host : NULL, port, &hints, &res);
	if (rc != 0 || !res) {
		fprintf(stderr, "cluckd: cannot resolve %s '%s': %s\n", what, a->host,
			rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	memcpy(out, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static const char *cluster_role(const struct options *o)
{
	for (size_t i = 0; i < o->nvoters; i++)
		if (!strcmp(o->voters[i].name, o->name))
			return "voter";
	return "member";
}

/* Fills the cluster part of the node's configuration: the voters'
 * addresses, ours, the key.  0, or 2 after a one-line error. */
static int cluster_config(const struct options *o, struct node_config *nc,
			  struct node_voter *voters, struct sockaddr_storage *listen,
			  uint8_t *key, int *have_key)
{
	int self = -1, rc;

	*have_key = 0;
	if (!options_networked(o))
		return 0;
	for (size_t i = 0; i < o->nvoters; i++) {
		voters[i].name = o->voters[i].name;
		if (resolve("the address of voter", &o->voters[i].addr, 0, &voters[i].addr,
			    &voters[i].addr_len) < 0)
			return 2;
		if (!strcmp(o->voters[i].name, o->name))
			self = (int)i;
	}
	nc->voters = voters;
	nc->n_voters = (unsigned)o->nvoters;
	if (o->have_listen) {
		if (resolve("--listen address", &o->listen, 1, listen, &nc->listen_len) < 0)
			return 2;
	} else if (self >= 0) {
		memcpy(listen, &voters[self].addr, voters[self].addr_len);
		nc->listen_len = voters[self].addr_len;
	} else {
		/* A member listens on every address of its family. */
		struct opt_addr any = { .port = OPT_DEFAULT_PORT };

		if (voters[0].addr.ss_family == AF_INET6)
			snprintf(any.host, sizeof(any.host), "::");
		else
			snprintf(any.host, sizeof(any.host), "0.0.0.0");
		if (resolve("--listen address", &any, 1, listen, &nc->listen_len) < 0)
			return 2;
	}
	nc->listen = (const struct sockaddr *)listen;
	if (o->key_file) {
		rc = peer_load_key(o->key_file, key);
		if (rc < 0) {
			fprintf(stderr, "cluckd: key file %s: %s\n", o->key_file, strerror(-rc));
			return 2;
		}
		nc->key = key;
		*have_key = 1;
	} else {
		log_warn("--insecure: cluster traffic is neither authenticated nor encrypted");
	}
	return 0;
}

/* ---- start-up steps, in the order main() takes them ----------------------- */

/* Before anything starts: the mount point, the log prefix, the cwd, the
 * warnings.  0, or 2 after a one-line error. */
static int prepare(const struct options *o, char *abs)
{
	char prefix[80];

	if (mount_check(o->mountpoint, abs) < 0)
		return 2;
	snprintf(prefix, sizeof(prefix), "cluckd %s", o->name);
	log_set_prefix(prefix);
	if (chdir("/") != 0) {
		fprintf(stderr, "cluckd: cannot chdir to /: %s\n", strerror(errno));
		return 2;
	}
	mount_warn_request_timeouts();
	if (o->have_client_listen)
		log_warn("--client-listen is not served by this build yet; ignored");
	return 0;
}

/*
 * The signals on the loop, then the node: made and started (its session
 * opens before mounting, so the very first request has an engine to talk
 * to and a failure leaves nothing mounted).  0, or 1 or 2 after a one-line
 * error; d->node is set once the node exists.
 */
static int start_node(struct daemon *d, const struct options *o)
{
	struct node_config ncfg;
	uint8_t key[PEER_KEY_BYTES];
	int have_key = 0;
	int rc;

	/* Signals are blocked from here on, so a SIGTERM during start-up is
	 * handled by the loop instead of leaving a dead mount behind. */
	if (loop_signal(d->loop, SIGTERM, on_stop_signal, d) < 0 ||
	    loop_signal(d->loop, SIGINT, on_stop_signal, d) < 0 ||
	    loop_signal(d->loop, SIGHUP, on_hup, d) < 0) {
		fprintf(stderr, "cluckd: cannot set up signals: %s\n", strerror(errno));
		return 1;
	}
	memset(&ncfg, 0, sizeof(ncfg));
	ncfg.name = o->name;
	ncfg.data_dir = o->data_dir;
	ncfg.lease_ms = o->lease_ms;
	ncfg.op_timeout_ms = o->op_timeout_ms;
	ncfg.accept_cut = o->accept_cut;
	ncfg.accept_state = o->accept_state;
	ncfg.rejoin = o->rejoin;
	if (cluster_config(o, &ncfg, d->voters, &d->listen_addr, key, &have_key) != 0)
		return 2;
	d->node = node_new(d->loop, &ncfg);
	sodium_memzero(key, sizeof(key));
	if (!d->node) {
		fprintf(stderr, "cluckd: cannot create the node: %s\n", strerror(errno));
		return 1;
	}
	rc = node_start(d->node);
	if (rc == 0 && d->stop)
		rc = -EINTR;
	if (rc < 0) {
		if (rc == -EINTR)
			fprintf(stderr, "cluckd: stopped by a signal while starting\n");
		else if (rc == -EUCLEAN)
			;      /* the node said what is damaged and what to do */
		else if (rc == -EADDRINUSE || rc == -EADDRNOTAVAIL)
			fprintf(stderr, "cluckd: cannot listen for peers on the --listen address: %s\n",
				strerror(-rc));
		else
			fprintf(stderr, "cluckd: cannot start the node: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}

/* The filesystem over the node; NULL (errno set) on failure. */
static struct fs *new_fs(struct node *node, const struct options *o)
{
	struct fs_config fcfg;

	memset(&fcfg, 0, sizeof(fcfg));
	fcfg.lockfile_ttl_s = o->lockfile_ttl_s;
	fcfg.on_lost_signal = o->on_lost_signal;
	fcfg.max_files = o->max_files;
	fcfg.max_bytes = o->max_bytes;
	fcfg.max_files_per_user = o->max_files_per_user;
	fcfg.max_bytes_per_user = o->max_bytes_per_user;
	fcfg.root_reserve_pct = o->root_reserve_pct;
	return fs_new(node, &fcfg);
}

/*
 * The FUSE session over fs, mounted on abs once the directory is made
 * immutable.  0, or 1 (out of memory) or 2 (bad FUSE options, cannot
 * mount) after a one-line error; then no session is left (args is the
 * caller's to free in every case).
 */
static int mount_fs(struct daemon *d, const struct options *o, struct fs *fs,
		    struct fuse_args *args, const char *abs)
{
	struct mount_capture cap;
	char msg[512];
	int rc;

	if (add_fuse_args(args, o) < 0) {
		fprintf(stderr, "cluckd: out of memory\n");
		return 1;
	}
	mount_capture_start(&cap);
	d->se = fuse_session_new(args, fs_ops(), fs_ops_size(), fs);
	mount_capture_end(&cap, msg, sizeof(msg));
	if (!d->se) {
		fprintf(stderr, "cluckd: bad FUSE options: %s\n",
			msg[0] ? msg : "fuse_session_new failed");
		return 2;
	}
	fs_set_session(fs, d->se);
	/* Fail closed before the mount covers the directory. */
	mount_make_immutable(abs);
	mount_capture_start(&cap);
	rc = fuse_session_mount(d->se, abs);
	mount_capture_end(&cap, msg, sizeof(msg));
	if (rc != 0) {
		fprintf(stderr, "cluckd: cannot mount %s%s%s\n", o->mountpoint,
			msg[0] ? ": " : "", msg);
		fuse_session_destroy(d->se);
		d->se = NULL;
		return 2;
	}
	return 0;
}

/*
 * Serves the mount until a stop or the unmount: daemonizes, watches the
 * FUSE channel, runs the loop, then gives the holders their wait (or tells
 * them their locks are going).  Returns the exit status; the caller closes
 * the session and unmounts.
 */
static int serve(struct daemon *d, const struct options *o, struct fs *fs,
		 const char *abs)
{
	int rc, fd, flags;

	if (!o->foreground) {
		/* After mounting, so whoever started us sees the mount once we
		 * return; the parent exits 0 when the child is ready. */
		if (fuse_daemonize(0) != 0) {
			fprintf(stderr, "cluckd: cannot daemonize\n");
			return 1;
		}
		log_init(1);
	}
	fd = fuse_session_fd(d->se);
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		log_err("cannot make the FUSE fd non-blocking: %m");
		return 1;
	}
	if (loop_watch(d->loop, fd, LOOP_READ, on_fuse, d) < 0) {
		log_err("cannot watch the FUSE fd");
		return 1;
	}
	if (options_networked(o))
		log_info("mounted on %s (%s of a cluster of %zu voters, data in %s)", abs,
			 cluster_role(o),
			 o->nvoters, o->data_dir);
	else
		log_info("mounted on %s (one-node cluster, data in %s)", abs, o->data_dir);

	rc = d->stop ? 0 : loop_run(d->loop);
	if (rc < 0) {
		log_err("event loop failed: %s", strerror(-rc));
		d->exit_code = 1;
	}
	if (rc >= 0 && d->stop)
		stop_wait(d, fs, o->stop_timeout_ms);
	else if (!node_error(d->node) && node_holds(d->node))
		/* The channel went away under the holders (umount -f aborts
		 * it even when the unmount then fails EBUSY) or the loop
		 * failed: they are told before node_stop() frees their
		 * locks, as at the end of a stop's wait. */
		fs_stop_signal(fs);
	loop_unwatch(d->loop, fd);
	rc = d->exit_code;
	if (node_error(d->node))
		rc = 1;
	return rc;
}

/* ---- main ------------------------------------------------------------------ */

/*
 * Exit status: 0 after a clean stop, 2 for bad options or an unusable mount
 * point (before anything is mounted), 1 for a failure while running.
 */
int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct daemon d = { .exit_code = 0 };
	struct options o;
	struct fs *fs = NULL;
	char abs[PATH_MAX];
	int rc;

	rc = options_parse(&o, argc, argv);
	if (rc != 0) {
		options_free(&o);
		return rc == 1 ? 0 : 2;
	}
	signal(SIGPIPE, SIG_IGN);
	rc = prepare(&o, abs);
	if (rc != 0)
		goto free_options;

	rc = 1;
	d.loop = loop_new();
	if (!d.loop) {
		fprintf(stderr, "cluckd: cannot create the event loop: %s\n", strerror(errno));
		goto free_options;
	}
	rc = start_node(&d, &o);
	if (rc != 0 && !d.node)
		goto free_loop;
	if (rc != 0)
		goto stop_node;
	rc = 1;
	fs = new_fs(d.node, &o);
	if (!fs) {
		fprintf(stderr, "cluckd: cannot create the filesystem: %s\n", strerror(errno));
		goto stop_node;
	}
	rc = mount_fs(&d, &o, fs, &args, abs);
	if (rc != 0)
		goto free_args;
	rc = serve(&d, &o, fs, abs);

	/* The session closes while the channel is still up, so every parked
	 * request gets its answer before the unmount. */
	node_stop(d.node);
	fuse_session_unmount(d.se);
	fuse_session_destroy(d.se);
free_args:
	fuse_opt_free_args(&args);
	fs_free(fs);
stop_node:
	node_stop(d.node);      /* no-op when already stopped */
	node_free(d.node);
free_loop:
	loop_free(d.loop);
	free(d.buf.mem);
	if (rc == 0)
		log_info("stopped");
free_options:
	options_free(&o);
	return rc;
}
