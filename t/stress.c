/*
 * t/stress.c - many processes hammering a few files of a cluckfs mount with
 * mixed flock(2) and fcntl(2) locks, checking mutual exclusion by itself.
 *
 *   stress [-p PROCS] [-n OPS] [-f FILES] [-k KILLS] [-t SECS] [-s SEED] [-x] DIR
 *
 * PROCS (default 200) forked processes each make OPS (default 200) lock
 * operations on DIR/stress.0 .. DIR/stress.FILES-1 (default 10): flock
 * LOCK_SH/LOCK_EX, blocking and LOCK_NB, and fcntl F_SETLKW/F_SETLK RD/WR on
 * byte ranges.  Some blocking waits are cut short by alarm() (a SIGALRM
 * handler without SA_RESTART, so the call fails with EINTR).  KILLS
 * (default 20) processes die by SIGKILL mid-way: half kill themselves
 * while holding an exclusive lock, half are killed by the parent while
 * they wait.
 *
 * The checker lives in a shared anonymous mapping (local memory, not the
 * mount under test): whoever holds a lock marks itself inside the region
 * the lock protects, and looks for anyone else inside that a conflicting
 * lock should have kept out.  Marks left by processes killed while holding
 * are recognised (the victim is flagged before the kill) and ignored.
 *
 * -x is a self-test of the checker: it skips the lock calls (every request
 * is "granted"), so a correct checker must report violations.
 *
 * Exit 0: no violation, no unexpected error, every process finished within
 * SECS (default 50).  Exit 1: a violation or an error, each described on
 * stderr.  Exit 2: bad usage or set-up failure.
 *
 * It must never: leave a child behind (every child is reaped; a stuck one
 * is killed at the deadline and reported), wait without a deadline, or
 * touch anything under DIR but its stress.N files.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 1000
#define MAX_FILES 64
#define NSLOTS 8                  /* POSIX range cells per file */
#define SLOT_BYTES 10             /* bytes per cell in the locked file */

enum pstate { ST_IDLE = 0, ST_WAITING, ST_HOLDING, ST_DONE };

enum op {
	OP_FLOCK_EX, OP_FLOCK_SH, OP_FLOCK_EX_NB, OP_FLOCK_SH_NB,
	OP_POSIX_WR, OP_POSIX_RD, OP_POSIX_WR_NB, OP_POSIX_RD_NB, OP_COUNT
};
static const char *const op_names[OP_COUNT] = {
	"flock-ex", "flock-sh", "flock-ex-nb", "flock-sh-nb",
	"fcntl-wr", "fcntl-rd", "fcntl-wr-nb", "fcntl-rd-nb",
};

struct proc_slot {
	int32_t pid;
	int32_t state;                /* enum pstate */
	int32_t killed;               /* flagged before any SIGKILL */
	int32_t self_kill_at;         /* op index to die at while holding, -1 never */
};

/*
 * Everything the processes share.  Marks are slot+1 (0 = nobody), so a mark
 * can be traced back to a process and its killed flag.
 */
struct shared {
	int32_t fl_ex[MAX_FILES];                    /* flock exclusive holder */
	uint8_t fl_sh[MAX_FILES][MAX_PROCS];         /* flock shared holders */
	int32_t px_wr[MAX_FILES][NSLOTS];            /* POSIX write holder per cell */
	uint8_t px_rd[MAX_FILES][NSLOTS][MAX_PROCS]; /* POSIX readers per cell */
	struct proc_slot proc[MAX_PROCS];
	uint64_t done[OP_COUNT];                     /* lock granted and checked */
	uint64_t busy;                               /* LOCK_NB / F_SETLK refused */
	uint64_t interrupted;                        /* EINTR from an alarm */
	uint64_t violations;
	uint64_t errors;
};

static struct shared *sh;
static int nprocs = 200, nops = 200, nfiles = 10, nkills = 20, timeout_s = 50;
static unsigned long seed;
static const char *dir;
static int selftest;              /* -x: fake every grant, to prove the checker */

static int me;                    /* this child's slot */
static uint64_t rng;
static volatile sig_atomic_t alarm_hit;

/* xorshift64*: cheap, per process, reproducible from -s. */
static uint32_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545F4914F6CDD1DULL) >> 32);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void add(uint64_t *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

/* A violation: printed at once (children share stderr), counted for the
 * parent's verdict. */
__attribute__((format(printf, 1, 2)))
static void violation(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* The first few tell the story; thousands would drown the log. */
	if (__atomic_add_fetch(&sh->violations, 1, __ATOMIC_RELAXED) <= 20)
		fprintf(stderr, "stress: VIOLATION (pid %d): %s\n", (int)getpid(), buf);
}

__attribute__((format(printf, 1, 2)))
static void error(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (__atomic_add_fetch(&sh->errors, 1, __ATOMIC_RELAXED) <= 20)
		fprintf(stderr, "stress: ERROR (pid %d): %s\n", (int)getpid(), buf);
}

/* A mark by a process flagged as killed is a leftover, not a holder. */
static int live_mark(int32_t mark)
{
	return mark > 0 && !__atomic_load_n(&sh->proc[mark - 1].killed, __ATOMIC_ACQUIRE);
}

static int32_t mark_pid(int32_t mark)
{
	return mark > 0 ? sh->proc[mark - 1].pid : 0;
}

/* Takes the exclusive mark *cell (replacing a dead holder's leftover). */
static void mark_exclusive(int32_t *cell, const char *what, int file, int c)
{
	int32_t cur = __atomic_load_n(cell, __ATOMIC_ACQUIRE);

	for (;;) {
		if (live_mark(cur)) {
			violation("%s on stress.%d cell %d: process %d is inside too",
				  what, file, c, (int)mark_pid(cur));
			break;
		}
		if (__atomic_compare_exchange_n(cell, &cur, me + 1, 0,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return;
	}
	__atomic_store_n(cell, me + 1, __ATOMIC_RELEASE);
}

/* Any live shared holder in `readers` other than us. */
static int live_reader(const uint8_t *readers)
{
	for (int i = 0; i < nprocs; i++)
		if (i != me && __atomic_load_n(&readers[i], __ATOMIC_ACQUIRE) &&
		    !__atomic_load_n(&sh->proc[i].killed, __ATOMIC_ACQUIRE))
			return i + 1;
	return 0;
}

/* Short, varied hold times so holders overlap with waiters of all kinds. */
static void hold(void)
{
	switch (rnd() % 4) {
	case 0: break;
	case 1: sched_yield(); break;
	case 2: usleep(20 + rnd() % 200); break;
	default:
		for (volatile int i = 0; i < 2000; i++)
			;
	}
}

static void on_alarm(int sig)
{
	(void)sig;
	alarm_hit = 1;
}

/* Arms a one-shot ITIMER_REAL of 1..20 ms for one blocking call. */
static void arm_alarm(void)
{
	struct itimerval it = { .it_value = { 0, 1000 + (long)(rnd() % 19000) } };

	alarm_hit = 0;
	setitimer(ITIMER_REAL, &it, NULL);
}

/* Disarms; a SIGALRM already generated is delivered before this returns to
 * user space, so it can never hit a later call (an unlock, say). */
static void disarm_alarm(void)
{
	struct itimerval it = { 0 };

	setitimer(ITIMER_REAL, &it, NULL);
}

/* Dies holding the lock: the kernel's release at exit must free it. */
static void maybe_die(int opi)
{
	if (sh->proc[me].self_kill_at == opi) {
		__atomic_store_n(&sh->proc[me].killed, 1, __ATOMIC_RELEASE);
		kill(getpid(), SIGKILL);
		pause();
	}
}

static void do_flock(int fd, int file, enum op op, int opi)
{
	int ex = op == OP_FLOCK_EX || op == OP_FLOCK_EX_NB;
	int nb = op == OP_FLOCK_EX_NB || op == OP_FLOCK_SH_NB;
	int alarmed = !nb && rnd() % 6 == 0;
	int rc, e;

	__atomic_store_n(&sh->proc[me].state, ST_WAITING, __ATOMIC_RELEASE);
	if (alarmed)
		arm_alarm();
	rc = selftest ? 0 : flock(fd, (ex ? LOCK_EX : LOCK_SH) | (nb ? LOCK_NB : 0));
	e = errno;
	if (alarmed)
		disarm_alarm();
	__atomic_store_n(&sh->proc[me].state, ST_IDLE, __ATOMIC_RELEASE);
	if (rc < 0) {
		if (nb && e == EWOULDBLOCK)
			add(&sh->busy);
		else if (alarmed && e == EINTR && alarm_hit)
			add(&sh->interrupted);
		else
			error("%s on stress.%d: %s", op_names[op], file, strerror(e));
		return;
	}
	__atomic_store_n(&sh->proc[me].state, ST_HOLDING, __ATOMIC_RELEASE);
	if (ex) {
		int r;

		mark_exclusive(&sh->fl_ex[file], "flock LOCK_EX", file, 0);
		if ((r = live_reader(sh->fl_sh[file])))
			violation("flock LOCK_EX on stress.%d: shared holder %d is inside",
				  file, (int)mark_pid(r));
		maybe_die(opi);
		hold();
		if (__atomic_load_n(&sh->fl_ex[file], __ATOMIC_ACQUIRE) != me + 1)
			violation("flock LOCK_EX on stress.%d: process %d entered while held",
				  file, (int)mark_pid(sh->fl_ex[file]));
		if ((r = live_reader(sh->fl_sh[file])))
			violation("flock LOCK_EX on stress.%d: shared holder %d entered while held",
				  file, (int)mark_pid(r));
		__atomic_store_n(&sh->fl_ex[file], 0, __ATOMIC_RELEASE);
	} else {
		int32_t m;

		__atomic_store_n(&sh->fl_sh[file][me], 1, __ATOMIC_RELEASE);
		if (live_mark(m = __atomic_load_n(&sh->fl_ex[file], __ATOMIC_ACQUIRE)))
			violation("flock LOCK_SH on stress.%d: exclusive holder %d is inside",
				  file, (int)mark_pid(m));
		hold();
		if (live_mark(m = __atomic_load_n(&sh->fl_ex[file], __ATOMIC_ACQUIRE)))
			violation("flock LOCK_SH on stress.%d: exclusive holder %d entered while held",
				  file, (int)mark_pid(m));
		__atomic_store_n(&sh->fl_sh[file][me], 0, __ATOMIC_RELEASE);
	}
	add(&sh->done[op]);
	__atomic_store_n(&sh->proc[me].state, ST_IDLE, __ATOMIC_RELEASE);
	if (flock(fd, LOCK_UN) < 0)
		error("flock LOCK_UN on stress.%d: %s", file, strerror(errno));
}

static int setlk(int fd, int cmd, short type, int a, int b)
{
	struct flock fl = {
		.l_type = type, .l_whence = SEEK_SET,
		.l_start = (off_t)a * SLOT_BYTES, .l_len = (off_t)(b - a) * SLOT_BYTES,
	};

	return fcntl(fd, cmd, &fl);
}

static void do_posix(int fd, int file, enum op op, int opi)
{
	int wr = op == OP_POSIX_WR || op == OP_POSIX_WR_NB;
	int nb = op == OP_POSIX_WR_NB || op == OP_POSIX_RD_NB;
	int alarmed = !nb && rnd() % 6 == 0;
	int a = (int)(rnd() % NSLOTS);
	int b = a + 1 + (int)(rnd() % (unsigned)(NSLOTS - a < 3 ? NSLOTS - a : 3));
	int rc, e, c;

	__atomic_store_n(&sh->proc[me].state, ST_WAITING, __ATOMIC_RELEASE);
	if (alarmed)
		arm_alarm();
	rc = selftest ? 0 : setlk(fd, nb ? F_SETLK : F_SETLKW, wr ? F_WRLCK : F_RDLCK, a, b);
	e = errno;
	if (alarmed)
		disarm_alarm();
	__atomic_store_n(&sh->proc[me].state, ST_IDLE, __ATOMIC_RELEASE);
	if (rc < 0) {
		if (nb && (e == EAGAIN || e == EACCES))
			add(&sh->busy);
		else if (alarmed && e == EINTR && alarm_hit)
			add(&sh->interrupted);
		else
			error("%s [%d,%d) on stress.%d: %s", op_names[op], a * SLOT_BYTES,
			      b * SLOT_BYTES, file, strerror(e));
		return;
	}
	__atomic_store_n(&sh->proc[me].state, ST_HOLDING, __ATOMIC_RELEASE);
	for (c = a; c < b; c++) {
		if (wr) {
			int r;

			mark_exclusive(&sh->px_wr[file][c], "F_WRLCK", file, c);
			if ((r = live_reader(sh->px_rd[file][c])))
				violation("F_WRLCK on stress.%d cell %d: reader %d is inside",
					  file, c, (int)mark_pid(r));
		} else {
			int32_t m;

			__atomic_store_n(&sh->px_rd[file][c][me], 1, __ATOMIC_RELEASE);
			if (live_mark(m = __atomic_load_n(&sh->px_wr[file][c], __ATOMIC_ACQUIRE)))
				violation("F_RDLCK on stress.%d cell %d: writer %d is inside",
					  file, c, (int)mark_pid(m));
		}
	}
	if (wr)
		maybe_die(opi);
	hold();
	for (c = a; c < b; c++) {
		if (wr) {
			int32_t m = __atomic_load_n(&sh->px_wr[file][c], __ATOMIC_ACQUIRE);

			if (m != me + 1)
				violation("F_WRLCK on stress.%d cell %d: process %d entered while held",
					  file, c, (int)mark_pid(m));
			__atomic_store_n(&sh->px_wr[file][c], 0, __ATOMIC_RELEASE);
		} else {
			int32_t m = __atomic_load_n(&sh->px_wr[file][c], __ATOMIC_ACQUIRE);

			if (live_mark(m))
				violation("F_RDLCK on stress.%d cell %d: writer %d entered while held",
					  file, c, (int)mark_pid(m));
			__atomic_store_n(&sh->px_rd[file][c][me], 0, __ATOMIC_RELEASE);
		}
	}
	add(&sh->done[op]);
	__atomic_store_n(&sh->proc[me].state, ST_IDLE, __ATOMIC_RELEASE);
	if (setlk(fd, F_SETLK, F_UNLCK, a, b) < 0)
		error("F_UNLCK on stress.%d: %s", file, strerror(errno));
}

/* One worker process: its own descriptors (so its own flock owners), then
 * OPS random operations. */
static int child(int slot)
{
	struct sigaction sa = { .sa_handler = on_alarm };   /* no SA_RESTART */
	int fds[MAX_FILES];
	char path[4096];

	me = slot;
	rng = (seed * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)(slot + 1) << 32) ^ 0x5DEECE66DULL;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	for (int f = 0; f < nfiles; f++) {
		snprintf(path, sizeof(path), "%s/stress.%d", dir, f);
		fds[f] = open(path, O_RDWR);
		if (fds[f] < 0) {
			error("open %s: %s", path, strerror(errno));
			return 1;
		}
	}
	for (int i = 0; i < nops; i++) {
		int file = (int)(rnd() % (unsigned)nfiles);
		enum op op = (enum op)(rnd() % OP_COUNT);

		/* Self-killers need an exclusive grant at their chosen op. */
		if (sh->proc[me].self_kill_at == i && op != OP_FLOCK_EX && op != OP_POSIX_WR)
			op = rnd() % 2 ? OP_FLOCK_EX : OP_POSIX_WR;
		if (op <= OP_FLOCK_SH_NB)
			do_flock(fds[file], file, op, i);
		else
			do_posix(fds[file], file, op, i);
		/* A self-killer whose grant was interrupted tries again next op. */
		if (sh->proc[me].self_kill_at == i && i + 1 < nops)
			sh->proc[me].self_kill_at = i + 1;
	}
	__atomic_store_n(&sh->proc[me].state, ST_DONE, __ATOMIC_RELEASE);
	for (int f = 0; f < nfiles; f++)
		close(fds[f]);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: stress [-p PROCS] [-n OPS] [-f FILES] [-k KILLS] "
		"[-t SECS] [-s SEED] [-x] DIR\n");
	exit(2);
}

static int parse_int(const char *s, int lo, int hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		usage();
	return (int)v;
}

/* Picks a live, not yet killed process in `state`, or -1. */
static int pick(int state)
{
	int start = rand() % nprocs;

	for (int k = 0; k < nprocs; k++) {
		int i = (start + k) % nprocs;

		if (sh->proc[i].pid > 0 && !sh->proc[i].killed &&
		    sh->proc[i].self_kill_at < 0 &&
		    __atomic_load_n(&sh->proc[i].state, __ATOMIC_ACQUIRE) == state)
			return i;
	}
	return -1;
}

int main(int argc, char **argv)
{
	int opt, running = 0, bad_exit = 0, self_kills, parent_kills, killed_waiting = 0;
	int killed_self = 0, stuck = 0;
	double t0, deadline, next_kill;
	uint64_t total = 0;
	char path[4096];

	seed = (unsigned long)time(NULL) ^ (unsigned long)getpid();
	while ((opt = getopt(argc, argv, "p:n:f:k:t:s:x")) != -1) {
		switch (opt) {
		case 'p': nprocs = parse_int(optarg, 1, MAX_PROCS); break;
		case 'n': nops = parse_int(optarg, 1, 1000000); break;
		case 'f': nfiles = parse_int(optarg, 1, MAX_FILES); break;
		case 'k': nkills = parse_int(optarg, 0, MAX_PROCS); break;
		case 't': timeout_s = parse_int(optarg, 1, 3600); break;
		case 's': seed = strtoul(optarg, NULL, 0); break;
		case 'x': selftest = 1; break;
		default: usage();
		}
	}
	if (optind != argc - 1)
		usage();
	dir = argv[optind];
	if (nkills > nprocs / 2)
		nkills = nprocs / 2;
	self_kills = nkills / 2;
	parent_kills = nkills - self_kills;
	srand((unsigned)seed);
	setvbuf(stderr, NULL, _IOLBF, 0);

	for (int f = 0; f < nfiles; f++) {
		int fd;

		snprintf(path, sizeof(path), "%s/stress.%d", dir, f);
		fd = open(path, O_RDWR | O_CREAT, 0644);
		if (fd < 0) {
			fprintf(stderr, "stress: create %s: %s\n", path, strerror(errno));
			return 2;
		}
		close(fd);
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("stress: mmap");
		return 2;
	}
	for (int i = 0; i < nprocs; i++)
		sh->proc[i].self_kill_at = -1;
	/* Self-killers die somewhere in the first three quarters of their run. */
	for (int k = 0; k < self_kills; k++) {
		int i = rand() % nprocs;

		while (sh->proc[i].self_kill_at >= 0)
			i = (i + 1) % nprocs;
		sh->proc[i].self_kill_at = nops > 4 ? 1 + rand() % (nops * 3 / 4) : 0;
	}

	printf("stress: %d processes x %d ops on %d files in %s, %d kills, seed %lu\n",
	       nprocs, nops, nfiles, dir, nkills, seed);
	fflush(stdout);
	t0 = now_s();
	for (int i = 0; i < nprocs; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			perror("stress: fork");
			for (int j = 0; j < i; j++)
				kill(sh->proc[j].pid, SIGKILL);
			while (wait(NULL) > 0)
				;
			return 2;
		}
		if (pid == 0)
			_exit(child(i));
		sh->proc[i].pid = pid;
		running++;
	}

	deadline = t0 + timeout_s;
	next_kill = t0 + 0.01;
	while (running > 0) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid > 0) {
			int slot = -1;

			for (int i = 0; i < nprocs; i++)
				if (sh->proc[i].pid == pid)
					slot = i;
			running--;
			if (slot < 0)
				continue;
			if (sh->proc[slot].killed) {
				if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
					/* Finished before the kill landed: fine. */
					if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
						bad_exit++;
				}
			} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				fprintf(stderr, "stress: process %d (slot %d) ended with %s %d\n",
					(int)pid, slot, WIFEXITED(status) ? "exit" : "signal",
					WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
				bad_exit++;
			}
			sh->proc[slot].state = ST_DONE;
			continue;
		}
		if (now_s() >= deadline) {
			stuck = running;
			break;
		}
		/* Kill waiters while plenty of them are still running. */
		if (parent_kills > 0 && now_s() >= next_kill && running > nprocs / 4) {
			int v = pick(ST_WAITING);

			if (v >= 0) {
				__atomic_store_n(&sh->proc[v].killed, 1, __ATOMIC_RELEASE);
				kill(sh->proc[v].pid, SIGKILL);
				parent_kills--;
				killed_waiting++;
			}
			next_kill = now_s() + 0.005 + (rand() % 20) / 1000.0;
		}
		usleep(1000);
	}

	if (stuck) {
		fprintf(stderr, "stress: FAIL: %d processes still running after %d s:\n",
			stuck, timeout_s);
		for (int i = 0, shown = 0; i < nprocs; i++) {
			static const char *const names[] = { "idle", "waiting", "holding", "done" };
			int st = sh->proc[i].state;

			if (st == ST_DONE || !sh->proc[i].pid)
				continue;
			if (shown++ < 20)
				fprintf(stderr, "  pid %d: %s\n", (int)sh->proc[i].pid,
					st >= 0 && st <= 3 ? names[st] : "?");
			kill(sh->proc[i].pid, SIGKILL);
		}
		while (wait(NULL) > 0)
			;
	}
	for (int i = 0; i < nprocs; i++)
		if (sh->proc[i].killed && sh->proc[i].self_kill_at >= 0)
			killed_self++;

	for (int o = 0; o < OP_COUNT; o++)
		total += sh->done[o];
	printf("stress: %.2f s, %llu locks granted and checked (", now_s() - t0,
	       (unsigned long long)total);
	for (int o = 0; o < OP_COUNT; o++)
		printf("%s%s %llu", o ? ", " : "", op_names[o], (unsigned long long)sh->done[o]);
	printf("), %llu busy, %llu interrupted by alarm, %d killed holding, %d killed waiting\n",
	       (unsigned long long)sh->busy, (unsigned long long)sh->interrupted,
	       killed_self, killed_waiting);
	printf("stress: %llu violations, %llu errors\n",
	       (unsigned long long)sh->violations, (unsigned long long)sh->errors);
	if (sh->violations || sh->errors || bad_exit || stuck) {
		printf("stress: FAIL%s%s%s%s\n",
		       sh->violations ? ": mutual exclusion violated" : "",
		       sh->errors ? ": unexpected errors" : "",
		       bad_exit ? ": a process failed" : "",
		       stuck ? ": processes stuck" : "");
		return 1;
	}
	if (total == 0) {
		printf("stress: FAIL: no lock was ever granted\n");
		return 1;
	}
	printf("stress: ok\n");
	return 0;
}
