/*
 * t/fsprobe.c - a small multi-tool for the cluckfs integration tests: the
 * system calls a shell cannot make portably (fcntl record locks, OFD locks,
 * F_GETLK, a bare O_EXCL create, one syscall with its errno name).
 *
 *   fsprobe lock FILE {rd|wr} START LEN [--nb] [--ofd] [--hold SECS]
 *                [--alarm SECS]
 *       F_SETLK(W) (or F_OFD_SETLK(W)); prints "locked" and holds the lock
 *       for SECS (default: until killed).  While holding, SIGUSR1 opens and
 *       closes a second descriptor of FILE (prints "closed-other"), SIGUSR2
 *       closes the locked descriptor (prints "closed").  --alarm interrupts a
 *       waiting F_SETLKW with a SIGALRM handler without SA_RESTART.
 *       Exit 0 after holding, 1 busy (EAGAIN/EACCES), 3 interrupted (EINTR),
 *       2 other errors (errno name on stdout).
 *   fsprobe getlk FILE {rd|wr} START LEN [--ofd]
 *       prints "unlocked" or "type=wr start=S len=L pid=P".
 *   fsprobe excl FILE
 *       open(O_CREAT|O_EXCL): exit 0 created, 1 EEXIST, 2 other (prints name).
 *   fsprobe errno OP ARGS...
 *       makes one operation and prints "OK" or the errno name (exit 0 / 1).
 *       OP: mkdir P | rmdir P | unlink P | open P | creat P | excl P |
 *           write P N | truncate P N | setxattr P NAME VALUE |
 *           getxattr P NAME | symlink TARGET P | link OLD NEW |
 *           rename OLD NEW | flock P {sh|ex|un}  (non-blocking)
 *   fsprobe flock-cycle FILE N
 *       N times flock(LOCK_EX) + flock(LOCK_UN) on one descriptor.
 *   fsprobe lock-steps FILE flock|posix
 *       a whole-file lock (flock(LOCK_EX), or an F_SETLKW write lock) on
 *       one descriptor, prints "locked", then acts on signals, which are
 *       blocked (so they never interrupt a call): SIGUSR1 unlocks, prints
 *       "unlock=OK|ERRNO" and "unlock_ms=MS" (how long it took); SIGUSR2
 *       locks again without waiting, prints "relock=OK|ERRNO"; SIGHUP
 *       closes the descriptor, prints "closed=OK|ERRNO"; SIGINT opens the
 *       file again and locks without waiting, prints "reopen=OK|ERRNO";
 *       SIGTERM prints "term".  Runs until killed.
 *
 * It must never: leave a lock behind after it exits (the kernel sees to
 * that), block without a way out (every wait can be interrupted or killed),
 * or print anything but the documented lines on stdout.
 */
#define _GNU_SOURCE
#include "t/errname.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>


static int usage(void)
{
	fprintf(stderr,
		"usage: fsprobe lock FILE rd|wr START LEN [--nb] [--ofd] [--hold SECS] [--alarm SECS]\n"
		"       fsprobe getlk FILE rd|wr START LEN [--ofd]\n"
		"       fsprobe excl FILE\n"
		"       fsprobe errno OP ARGS...\n"
		"       fsprobe flock-cycle FILE N\n"
		"       fsprobe lock-steps FILE flock|posix\n");
	return 2;
}

/* strtoll with full-string and range checking; -1 on bad input. */
static int parse_ll(const char *s, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	return 0;
}

static volatile sig_atomic_t got_usr1, got_usr2, got_term;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else if (sig == SIGUSR2)
		got_usr2 = 1;
	else if (sig == SIGTERM || sig == SIGINT)
		got_term = 1;
	/* SIGALRM: only there to interrupt F_SETLKW. */
}

/* Installs fn for sig without SA_RESTART so blocking calls see EINTR. */
static void catch(int sig)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static int parse_type(const char *s, short *type)
{
	if (!strcmp(s, "rd"))
		*type = F_RDLCK;
	else if (!strcmp(s, "wr"))
		*type = F_WRLCK;
	else
		return -1;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmd_lock(int argc, char **argv)
{
	long long start, len;
	struct flock fl;
	int nb = 0, ofd = 0, fd, rc, cmd;
	double hold = -1, alarm_s = 0, deadline;
	short type;

	if (argc < 4 || parse_type(argv[1], &type) ||
	    parse_ll(argv[2], &start) || parse_ll(argv[3], &len))
		return usage();
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--nb"))
			nb = 1;
		else if (!strcmp(argv[i], "--ofd"))
			ofd = 1;
		else if (!strcmp(argv[i], "--hold") && i + 1 < argc)
			hold = atof(argv[++i]);
		else if (!strcmp(argv[i], "--alarm") && i + 1 < argc)
			alarm_s = atof(argv[++i]);
		else
			return usage();
	}
	catch(SIGUSR1);
	catch(SIGUSR2);
	catch(SIGTERM);
	catch(SIGINT);
	catch(SIGALRM);
	fd = open(argv[0], (type == F_WRLCK ? O_RDWR : O_RDONLY) | O_CREAT, 0666);
	if (fd < 0) {
		printf("%s\n", errname(errno));
		return 2;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	if (ofd)
		cmd = nb ? F_OFD_SETLK : F_OFD_SETLKW;
	else
		cmd = nb ? F_SETLK : F_SETLKW;
	if (alarm_s > 0) {
		struct itimerval it;

		memset(&it, 0, sizeof(it));
		it.it_value.tv_sec = (time_t)alarm_s;
		it.it_value.tv_usec = (suseconds_t)((alarm_s - (time_t)alarm_s) * 1e6);
		setitimer(ITIMER_REAL, &it, NULL);
	}
	rc = fcntl(fd, cmd, &fl);
	if (rc < 0) {
		int e = errno;

		printf("%s\n", errname(e));
		fflush(stdout);
		if (e == EAGAIN || e == EACCES)
			return 1;
		return e == EINTR ? 3 : 2;
	}
	if (alarm_s > 0) {
		struct itimerval it;

		memset(&it, 0, sizeof(it));
		setitimer(ITIMER_REAL, &it, NULL);
	}
	printf("locked\n");
	fflush(stdout);
	deadline = hold >= 0 ? now_s() + hold : 0;
	while (!got_term && (hold < 0 || now_s() < deadline)) {
		if (got_usr1) {
			/* POSIX: closing ANY descriptor drops the process's locks. */
			int fd2 = open(argv[0], O_RDONLY);

			got_usr1 = 0;
			if (fd2 >= 0)
				close(fd2);
			printf("closed-other\n");
			fflush(stdout);
		}
		if (got_usr2) {
			got_usr2 = 0;
			if (fd >= 0)
				close(fd);
			fd = -1;
			printf("closed\n");
			fflush(stdout);
		}
		usleep(10000);
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

static const char *type_name(short t)
{
	return t == F_RDLCK ? "rd" : t == F_WRLCK ? "wr" : "un";
}

static int cmd_getlk(int argc, char **argv)
{
	long long start, len;
	struct flock fl;
	int fd, ofd = 0;
	short type;

	if (argc < 4 || parse_type(argv[1], &type) ||
	    parse_ll(argv[2], &start) || parse_ll(argv[3], &len))
		return usage();
	if (argc > 4 && !strcmp(argv[4], "--ofd"))
		ofd = 1;
	fd = open(argv[0], type == F_WRLCK ? O_RDWR : O_RDONLY);
	if (fd < 0) {
		printf("%s\n", errname(errno));
		return 2;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	if (fcntl(fd, ofd ? F_OFD_GETLK : F_GETLK, &fl) < 0) {
		printf("%s\n", errname(errno));
		close(fd);
		return 2;
	}
	if (fl.l_type == F_UNLCK)
		printf("unlocked\n");
	else
		printf("type=%s start=%lld len=%lld pid=%d\n", type_name(fl.l_type),
		       (long long)fl.l_start, (long long)fl.l_len, (int)fl.l_pid);
	close(fd);
	return 0;
}

static int cmd_excl(int argc, char **argv)
{
	int fd;

	if (argc != 1)
		return usage();
	fd = open(argv[0], O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0) {
		if (errno == EEXIST)
			return 1;
		printf("%s\n", errname(errno));
		return 2;
	}
	close(fd);
	return 0;
}

/* Writes n bytes of 'x' from offset 0; a short write is continued, so the
 * errno reported is the one at the first byte refused. */
static int do_write(const char *path, long long n)
{
	static char buf[65536];
	long long done = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		return -errno;
	memset(buf, 'x', sizeof(buf));
	while (done < n) {
		size_t chunk = n - done > (long long)sizeof(buf) ? sizeof(buf) : (size_t)(n - done);
		ssize_t w = write(fd, buf, chunk);

		if (w < 0) {
			int e = errno;

			close(fd);
			return -e;
		}
		if (w == 0)
			break;
		done += w;
	}
	if (close(fd) < 0)
		return -errno;
	return done == n ? 0 : -EIO;
}

static int do_flock(const char *path, const char *how)
{
	int op, fd, rc = 0;

	if (!strcmp(how, "sh"))
		op = LOCK_SH;
	else if (!strcmp(how, "ex"))
		op = LOCK_EX;
	else if (!strcmp(how, "un"))
		op = LOCK_UN;
	else
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CREAT, 0644);
	if (fd < 0)
		return -errno;
	if (flock(fd, op | LOCK_NB) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int cmd_errno(int argc, char **argv)
{
	const char *op;
	long long n;
	int rc = 0, fd;

	if (argc < 2)
		return usage();
	op = argv[0];
	if (!strcmp(op, "mkdir"))
		rc = mkdir(argv[1], 0755) < 0 ? -errno : 0;
	else if (!strcmp(op, "rmdir"))
		rc = rmdir(argv[1]) < 0 ? -errno : 0;
	else if (!strcmp(op, "unlink"))
		rc = unlink(argv[1]) < 0 ? -errno : 0;
	else if (!strcmp(op, "open") || !strcmp(op, "creat") || !strcmp(op, "excl")) {
		int flags = !strcmp(op, "open") ? O_RDONLY :
			    !strcmp(op, "creat") ? O_WRONLY | O_CREAT :
			    O_WRONLY | O_CREAT | O_EXCL;

		fd = open(argv[1], flags, 0644);
		if (fd < 0)
			rc = -errno;
		else
			close(fd);
	} else if (!strcmp(op, "write") && argc == 3) {
		if (parse_ll(argv[2], &n) || n < 0)
			return usage();
		rc = do_write(argv[1], n);
	} else if (!strcmp(op, "truncate") && argc == 3) {
		if (parse_ll(argv[2], &n))
			return usage();
		rc = truncate(argv[1], n) < 0 ? -errno : 0;
	} else if (!strcmp(op, "setxattr") && argc == 4) {
		rc = setxattr(argv[1], argv[2], argv[3], strlen(argv[3]), 0) < 0 ? -errno : 0;
	} else if (!strcmp(op, "getxattr") && argc == 3) {
		char buf[4096];

		rc = getxattr(argv[1], argv[2], buf, sizeof(buf)) < 0 ? -errno : 0;
	} else if (!strcmp(op, "symlink") && argc == 3)
		rc = symlink(argv[1], argv[2]) < 0 ? -errno : 0;
	else if (!strcmp(op, "link") && argc == 3)
		rc = link(argv[1], argv[2]) < 0 ? -errno : 0;
	else if (!strcmp(op, "rename") && argc == 3)
		rc = rename(argv[1], argv[2]) < 0 ? -errno : 0;
	else if (!strcmp(op, "flock") && argc == 3)
		rc = do_flock(argv[1], argv[2]);
	else
		return usage();
	printf("%s\n", rc ? errname(-rc) : "OK");
	return rc ? 1 : 0;
}

static int cmd_flock_cycle(int argc, char **argv)
{
	long long n;
	int fd;

	if (argc != 2 || parse_ll(argv[1], &n) || n < 0)
		return usage();
	fd = open(argv[0], O_RDONLY | O_CREAT, 0644);
	if (fd < 0) {
		printf("%s\n", errname(errno));
		return 2;
	}
	for (long long i = 0; i < n; i++) {
		if (flock(fd, LOCK_EX) < 0 || flock(fd, LOCK_UN) < 0) {
			printf("%s at %lld\n", errname(errno), i);
			close(fd);
			return 2;
		}
	}
	close(fd);
	printf("%lld\n", n);
	return 0;
}

/* Whole-file lock of the lock-steps mode: flock, or a POSIX write lock
 * (F_WRLCK/F_UNLCK over 0..EOF); 0 or -1 with errno. */
static int steps_lock(int fd, int posix, int op)
{
	struct flock fl;

	if (!posix)
		return flock(fd, op);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = (op & LOCK_UN) ? F_UNLCK : F_WRLCK;
	fl.l_whence = SEEK_SET;
	return fcntl(fd, (op & LOCK_NB) || (op & LOCK_UN) ? F_SETLK : F_SETLKW, &fl);
}

static int cmd_lock_steps(int argc, char **argv)
{
	sigset_t set;
	int fd, sig, posix;

	if (argc != 2 || (strcmp(argv[1], "flock") && strcmp(argv[1], "posix")))
		return usage();
	posix = !strcmp(argv[1], "posix");
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	fd = open(argv[0], O_RDWR | O_CREAT, 0644);
	if (fd < 0 || steps_lock(fd, posix, LOCK_EX) < 0) {
		printf("%s\n", errname(errno));
		return 2;
	}
	printf("locked\n");
	for (;;) {
		struct timespec a, b;
		int rc;

		if (sigwait(&set, &sig) != 0)
			return 2;
		switch (sig) {
		case SIGTERM:
			printf("term\n");
			break;
		case SIGUSR1:
			clock_gettime(CLOCK_MONOTONIC, &a);
			rc = steps_lock(fd, posix, LOCK_UN);
			clock_gettime(CLOCK_MONOTONIC, &b);
			printf("unlock=%s\n", rc < 0 ? errname(errno) : "OK");
			printf("unlock_ms=%lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000 +
			       (b.tv_nsec - a.tv_nsec) / 1000000);
			break;
		case SIGUSR2:
			rc = steps_lock(fd, posix, LOCK_EX | LOCK_NB);
			printf("relock=%s\n", rc < 0 ? errname(errno) : "OK");
			break;
		case SIGHUP:
			rc = close(fd);
			printf("closed=%s\n", rc < 0 ? errname(errno) : "OK");
			fd = -1;
			break;
		default:
			fd = open(argv[0], O_RDWR);
			rc = fd < 0 ? -1 : steps_lock(fd, posix, LOCK_EX | LOCK_NB);
			printf("reopen=%s\n", rc < 0 ? errname(errno) : "OK");
			break;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (!strcmp(argv[1], "lock"))
		return cmd_lock(argc - 2, argv + 2);
	if (!strcmp(argv[1], "getlk"))
		return cmd_getlk(argc - 2, argv + 2);
	if (!strcmp(argv[1], "excl"))
		return cmd_excl(argc - 2, argv + 2);
	if (!strcmp(argv[1], "errno"))
		return cmd_errno(argc - 2, argv + 2);
	if (!strcmp(argv[1], "flock-cycle"))
		return cmd_flock_cycle(argc - 2, argv + 2);
	if (!strcmp(argv[1], "lock-steps"))
		return cmd_lock_steps(argc - 2, argv + 2);
	return usage();
}
