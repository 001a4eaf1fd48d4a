/*
 * net/cluckd.c - main() of cluckd: options, mount point checks, mounting,
 * daemonizing, and the one event loop that serves the FUSE channel and
 * drives the engine.  On SIGTERM/SIGINT with locks held through the mount
 * it keeps serving for --stop-timeout while the holders finish (nothing
 * new is granted), signals those left, and only then closes the session.
 *
 * It fails closed: the mount point directory is made immutable before
 * mounting and stays so after exit, so with no cluckd mounted a lock
 * attempt under it errors out instead of silently locking locally.
 *
 * It must never: access the mount point after mounting (that deadlocks
 * FUSE), keep a cwd inside it, block in the loop, or print more than one
 * line for a startup error.
 */
#include "config.h"

#include "fs/fs.h"
#include "net/log.h"
#include "net/loop.h"
#include "node/node.h"
#include "net/options.h"
#include "net/peer.h"
#include "lockcore/raft.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

/* What the loop callbacks share. */
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
};

/* ---- capturing libfuse's own stderr messages ----------------------------- */

/* libfuse prints its errors itself ("fuse: ..."); to keep a startup error
 * to one line we catch them in a temporary file and fold them into ours. */
struct capture {
	int saved;
	FILE *tmp;
};

static void capture_start(struct capture *c)
{
	c->saved = -1;
	fflush(stderr);
	c->tmp = tmpfile();
	if (!c->tmp)
		return;
	c->saved = dup(STDERR_FILENO);
	if (c->saved < 0 || dup2(fileno(c->tmp), STDERR_FILENO) < 0) {
		if (c->saved >= 0)
			close(c->saved);
		c->saved = -1;
		fclose(c->tmp);
		c->tmp = NULL;
	}
}

/* Restores stderr; the captured text, joined into one line, goes to buf. */
static void capture_end(struct capture *c, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	fflush(stderr);
	if (c->saved < 0)
		return;
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	rewind(c->tmp);
	n = fread(buf, 1, len - 1, c->tmp);
	buf[n] = '\0';
	fclose(c->tmp);
	for (size_t i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')
			buf[i] = i + 1 < n ? ' ' : '\0';
}

/* ---- mount point checks ---------------------------------------------------- */

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape_octal(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

/* 1 if abs is listed as a mount point in /proc/self/mountinfo; its
 * filesystem type (the last mount stacked there) goes to type. */
static int in_mountinfo(const char *abs, char *type, size_t typelen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	snprintf(type, typelen, "unknown type");
	if (!f)
		return 0;
	while (getline(&line, &cap, f) >= 0) {
		char *save = NULL, *tok = strtok_r(line, " \n", &save);

		/* fields: id parent major:minor root MOUNTPOINT opts... - TYPE */
		for (int i = 0; tok && i < 4; i++)
			tok = strtok_r(NULL, " \n", &save);
		if (!tok)
			continue;
		unescape_octal(tok);
		if (strcmp(tok, abs) != 0)
			continue;
		found = 1;
		while ((tok = strtok_r(NULL, " \n", &save)) && strcmp(tok, "-") != 0)
			;
		if (tok && (tok = strtok_r(NULL, " \n", &save)))
			snprintf(type, typelen, "%s", tok);
	}
	free(line);
	fclose(f);
	return found;
}

/* An absolute spelling of mnt without resolving it (a dead mount cannot
 * be resolved): cwd + mnt, trailing slashes dropped. */
static void lexical_abs(const char *mnt, char *out, size_t len)
{
	char cwd[PATH_MAX];
	size_t n;

	out[0] = '\0';
	if (mnt[0] != '/' && getcwd(cwd, sizeof(cwd))) {
		n = strlen(cwd);
		if (n + 1 < len) {
			memcpy(out, cwd, n + 1);
			if (strcmp(cwd, "/"))
				strcat(out, "/");
		}
	}
	n = strlen(out);
	if (strlen(mnt) < len - n)
		strcat(out, mnt);
	n = strlen(out);
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
}

/* s as one shell word the admin can paste: as is when it holds only
 * harmless characters, else in single quotes ('\'' for a quote). */
static void shell_quote(const char *s, char *out, size_t len)
{
	size_t o = 0;

	if (len < 8) {
		out[0] = '\0';
		return;
	}
	if (s[0] && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			   "0123456789/._-+,:=@%") == strlen(s)) {
		snprintf(out, len, "%s", s);
		return;
	}
	out[o++] = '\'';
	for (; *s && o + 6 < len; s++) {
		if (*s == '\'') {
			memcpy(out + o, "'\\''", 4);
			o += 4;
		} else {
			out[o++] = *s;
		}
	}
	out[o++] = '\'';
	out[o] = '\0';
}

/* The mount point must be an existing directory that nothing is mounted
 * on yet.  Fills abs with its absolute path.  Prints the one-line error,
 * with the exact command to run when there is one. */
static int check_mountpoint(const char *mnt, char *abs)
{
	struct stat st, pst;
	char parent[PATH_MAX], *slash, q[2 * PATH_MAX], type[64];

	if (stat(mnt, &st) != 0) {
		int e = errno;

		if (e == ENOTCONN || e == ECONNABORTED) {
			lexical_abs(mnt, parent, sizeof(parent));
			shell_quote(parent, q, sizeof(q));
			fprintf(stderr,
				"cluckd: %s: dead FUSE mount left by a cluckd that died (%s); "
				"clear it with: fusermount3 -uz %s\n", parent, strerror(e), q);
		} else {
			fprintf(stderr, "cluckd: %s: %s\n", mnt, strerror(e));
		}
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "cluckd: %s: not a directory\n", mnt);
		return -1;
	}
	if (!realpath(mnt, abs)) {
		fprintf(stderr, "cluckd: %s: %s\n", mnt, strerror(errno));
		return -1;
	}
	if (!strcmp(abs, "/")) {
		fprintf(stderr, "cluckd: %s: cannot mount on the root directory\n", mnt);
		return -1;
	}
	snprintf(parent, sizeof(parent), "%s", abs);
	slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	if (stat(parent, &pst) != 0) {
		fprintf(stderr, "cluckd: %s: %s\n", parent, strerror(errno));
		return -1;
	}
	if (in_mountinfo(abs, type, sizeof(type)) || pst.st_dev != st.st_dev) {
		shell_quote(abs, q, sizeof(q));
		/* Never advise unmounting a live cluckd: its holders would
		 * lose their locks. */
		if (!strcmp(type, "fuse.cluck"))
			fprintf(stderr, "cluckd: %s: a running cluckd already serves it "
				"(stop that one first: fusermount3 -u %s)\n", abs, q);
		else
			fprintf(stderr, "cluckd: %s: already a mount point (%s); "
				"unmount it or choose another directory\n", abs, type);
		return -1;
	}
	return 0;
}

/* chattr +i on the (empty) mount point, so with nothing mounted there a
 * lock attempt fails with EPERM instead of locking a local file. */
static void make_immutable(const char *abs)
{
	int fd, flags = 0;

	if (geteuid() != 0) {
		log_warn("%s: not root, cannot make the mount point immutable: while cluckd is "
			 "not running, locks taken there are local only", abs);
		return;
	}
	fd = open(abs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		log_warn("%s: cannot open to make it immutable: %m", abs);
		return;
	}
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0)
		goto warn;
	if (!(flags & FS_IMMUTABLE_FL)) {
		flags |= FS_IMMUTABLE_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)
			goto warn;
	}
	close(fd);
	return;
warn:
	if (errno == ENOTTY || errno == EOPNOTSUPP || errno == EINVAL)
		log_warn("%s: the filesystem has no immutable flag (chattr +i): while cluckd "
			 "is not running, locks taken there are local only", abs);
	else
		log_warn("%s: cannot make the mount point immutable: %m", abs);
	close(fd);
}

/* A kernel FUSE request timeout aborts the whole connection when one lock
 * wait outlasts it (notes/fuse-locks.md 1.4). */
static void warn_request_timeouts(void)
{
	static const char *const files[] = {
		"/proc/sys/fs/fuse/max_request_timeout",
		"/proc/sys/fs/fuse/default_request_timeout",
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		FILE *f = fopen(files[i], "re");
		unsigned long v = 0;

		if (!f)
			continue;
		if (fscanf(f, "%lu", &v) == 1 && v != 0)
			log_warn("%s is %lu: a lock wait longer than %lu s will abort the "
				 "whole mount; set it to 0", files[i], v, v);
		fclose(f);
	}
}

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

/* ---- main ------------------------------------------------------------------ */

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

/*
 * Exit status: 0 after a clean stop, 2 for bad options or an unusable mount
 * point (before anything is mounted), 1 for a failure while running.
 */
int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct daemon d = { .exit_code = 0 };
	struct node_config ncfg;
	struct node_voter voters[RF_MAX_VOTERS];
	struct sockaddr_storage listen_addr;
	uint8_t key[PEER_KEY_BYTES];
	int have_key = 0;
	struct fs_config fcfg;
	struct options o;
	struct capture cap;
	struct node *node = NULL;
	struct fs *fs = NULL;
	char abs[PATH_MAX], prefix[80], msg[512];
	int rc, fd, flags;

	rc = options_parse(&o, argc, argv);
	if (rc != 0) {
		options_free(&o);
		return rc == 1 ? 0 : 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (check_mountpoint(o.mountpoint, abs) < 0) {
		rc = 2;
		goto free_options;
	}
	snprintf(prefix, sizeof(prefix), "cluckd %s", o.name);
	log_set_prefix(prefix);
	if (chdir("/") != 0) {
		fprintf(stderr, "cluckd: cannot chdir to /: %s\n", strerror(errno));
		rc = 2;
		goto free_options;
	}
	warn_request_timeouts();
	if (o.have_client_listen)
		log_warn("--client-listen is not served by this build yet; ignored");

	rc = 1;
	d.loop = loop_new();
	if (!d.loop) {
		fprintf(stderr, "cluckd: cannot create the event loop: %s\n", strerror(errno));
		goto free_options;
	}
	/* Signals are blocked from here on, so a SIGTERM during start-up is
	 * handled by the loop instead of leaving a dead mount behind. */
	if (loop_signal(d.loop, SIGTERM, on_stop_signal, &d) < 0 ||
	    loop_signal(d.loop, SIGINT, on_stop_signal, &d) < 0 ||
	    loop_signal(d.loop, SIGHUP, on_hup, &d) < 0) {
		fprintf(stderr, "cluckd: cannot set up signals: %s\n", strerror(errno));
		goto free_loop;
	}
	memset(&ncfg, 0, sizeof(ncfg));
	ncfg.name = o.name;
	ncfg.data_dir = o.data_dir;
	ncfg.lease_ms = o.lease_ms;
	ncfg.op_timeout_ms = o.op_timeout_ms;
	ncfg.accept_cut = o.accept_cut;
	ncfg.accept_state = o.accept_state;
	ncfg.rejoin = o.rejoin;
	if (cluster_config(&o, &ncfg, voters, &listen_addr, key, &have_key) != 0) {
		rc = 2;
		goto free_loop;
	}
	node = node_new(d.loop, &ncfg);
	d.node = node;
	sodium_memzero(key, sizeof(key));
	if (!node) {
		fprintf(stderr, "cluckd: cannot create the node: %s\n", strerror(errno));
		goto free_loop;
	}
	/* The session opens before mounting, so the very first request has
	 * an engine to talk to and a failure leaves nothing mounted. */
	rc = node_start(node);
	if (rc == 0 && d.stop)
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
		rc = 1;
		goto stop_node;
	}
	rc = 1;
	memset(&fcfg, 0, sizeof(fcfg));
	fcfg.lockfile_ttl_s = o.lockfile_ttl_s;
	fcfg.on_lost_signal = o.on_lost_signal;
	fcfg.max_files = o.max_files;
	fcfg.max_bytes = o.max_bytes;
	fcfg.max_files_per_user = o.max_files_per_user;
	fcfg.max_bytes_per_user = o.max_bytes_per_user;
	fcfg.root_reserve_pct = o.root_reserve_pct;
	fs = fs_new(node, &fcfg);
	if (!fs) {
		fprintf(stderr, "cluckd: cannot create the filesystem: %s\n", strerror(errno));
		goto stop_node;
	}
	if (add_fuse_args(&args, &o) < 0) {
		fprintf(stderr, "cluckd: out of memory\n");
		goto free_args;
	}
	capture_start(&cap);
	d.se = fuse_session_new(&args, fs_ops(), fs_ops_size(), fs);
	capture_end(&cap, msg, sizeof(msg));
	if (!d.se) {
		fprintf(stderr, "cluckd: bad FUSE options: %s\n",
			msg[0] ? msg : "fuse_session_new failed");
		rc = 2;
		goto free_args;
	}
	fs_set_session(fs, d.se);
	/* Fail closed before the mount covers the directory. */
	make_immutable(abs);
	capture_start(&cap);
	rc = fuse_session_mount(d.se, abs);
	capture_end(&cap, msg, sizeof(msg));
	if (rc != 0) {
		fprintf(stderr, "cluckd: cannot mount %s%s%s\n", o.mountpoint,
			msg[0] ? ": " : "", msg);
		rc = 2;
		goto destroy_session;
	}
	rc = 1;
	if (!o.foreground) {
		/* After mounting, so whoever started us sees the mount once we
		 * return; the parent exits 0 when the child is ready. */
		if (fuse_daemonize(0) != 0) {
			fprintf(stderr, "cluckd: cannot daemonize\n");
			goto unmount;
		}
		log_init(1);
	}
	fd = fuse_session_fd(d.se);
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		log_err("cannot make the FUSE fd non-blocking: %m");
		goto unmount;
	}
	if (loop_watch(d.loop, fd, LOOP_READ, on_fuse, &d) < 0) {
		log_err("cannot watch the FUSE fd");
		goto unmount;
	}
	if (options_networked(&o))
		log_info("mounted on %s (%s of a cluster of %zu voters, data in %s)", abs,
			 cluster_role(&o),
			 o.nvoters, o.data_dir);
	else
		log_info("mounted on %s (one-node cluster, data in %s)", abs, o.data_dir);

	rc = d.stop ? 0 : loop_run(d.loop);
	if (rc < 0) {
		log_err("event loop failed: %s", strerror(-rc));
		d.exit_code = 1;
	}
	if (rc >= 0 && d.stop)
		stop_wait(&d, fs, o.stop_timeout_ms);
	else if (!node_error(node) && node_holds(node))
		/* The channel went away under the holders (umount -f aborts
		 * it even when the unmount then fails EBUSY) or the loop
		 * failed: they are told before node_stop() frees their
		 * locks, as at the end of a stop's wait. */
		fs_stop_signal(fs);
	loop_unwatch(d.loop, fd);
	rc = d.exit_code;
	if (node_error(node))
		rc = 1;
unmount:
	/* The session closes while the channel is still up, so every parked
	 * request gets its answer before the unmount. */
	node_stop(node);
	fuse_session_unmount(d.se);
destroy_session:
	fuse_session_destroy(d.se);
free_args:
	fuse_opt_free_args(&args);
	fs_free(fs);
stop_node:
	node_stop(node);        /* no-op when already stopped */
	node_free(node);
free_loop:
	loop_free(d.loop);
	free(d.buf.mem);
	if (rc == 0)
		log_info("stopped");
free_options:
	options_free(&o);
	return rc;
}
