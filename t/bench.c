/*
 * t/bench.c - cluck's benchmark workloads, each measured on a cluckfs mount
 * and (where it means something) on a local tmpfs in the same run, so every
 * figure comes with its baseline and the ratio.
 *
 *   bench pairs   FUSE_DIR TMPFS_DIR [-c N[,N...]] [-d SECS]
 *       flock(LOCK_EX) + flock(LOCK_UN) pairs on an open descriptor, N
 *       client threads each on its own file (default 1,8,64), SECS (2)
 *       each: pairs/s, p50/p99 per pair.
 *   bench handoff FUSE_DIR TMPFS_DIR [-n PROCS] [-d SECS]
 *       PROCS (16) processes contend one file; handoff latency = from the
 *       holder's LOCK_UN to the next holder's flock() returning, through
 *       CLOCK_MONOTONIC in a shared mapping: p50/p99.
 *   bench spawn   FUSE_DIR TMPFS_DIR [-n RUNS]
 *       RUNS (300) sequential `flock FILE true` (flock(1) spawned like a
 *       shell does), alternating mount and tmpfs: time per invocation.
 *   bench waiters MOUNT PID [-n N]
 *       one holder and N (100000) blocked flock waiters (threads in a few
 *       processes, one open file description each); waits for the status
 *       file to show them, then reports cluckd's (PID) VmRSS, VmHWM and
 *       Threads against the idle daemon.
 *   bench files   FUSE_DIR TMPFS_DIR MOUNT PID [-n N] [-T SECS]
 *       creates N (1000000) files in 10 directories (one thread each) on
 *       both, then reports the creation rate and cluckd's memory.  Stops
 *       after SECS (default 1800) and reports what it has.
 *
 * Results go to stdout as Markdown table rows (figure | cluck | tmpfs |
 * ratio | target | met); progress goes to stderr.  Exit 0 whatever the
 * speed; 1 only when a workload could not run at all.
 *
 * It must never: fail on a slow figure (it is not a test), leave a child
 * process behind, or write anywhere but the directories it is given.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- time and histograms ------------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Log-linear buckets: exact below 64 ns, then 32 per power of two (~3%). */
#define H_SUB 32
#define H_BUCKETS (64 + 58 * H_SUB)

struct hist {
	uint64_t n;
	uint64_t c[H_BUCKETS];
};

static unsigned h_index(uint64_t v)
{
	unsigned e;

	if (v < 64)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);      /* >= 6 */
	return 64 + (e - 6) * H_SUB + (unsigned)((v >> (e - 5)) & (H_SUB - 1));
}

/* Middle of bucket i, in ns. */
static double h_value(unsigned i)
{
	unsigned e, sub;
	double lo, w;

	if (i < 64)
		return i;
	e = (i - 64) / H_SUB + 6;
	sub = (i - 64) % H_SUB;
	w = (double)(1ull << (e - 5));
	lo = (double)(1ull << e) + sub * w;
	return lo + w / 2;
}

static void h_add(struct hist *h, uint64_t v)
{
	h->c[h_index(v)]++;
	h->n++;
}

static void h_merge(struct hist *into, const struct hist *h)
{
	for (unsigned i = 0; i < H_BUCKETS; i++)
		into->c[i] += h->c[i];
	into->n += h->n;
}

/* Percentile q (0..1) in microseconds; 0 when empty. */
static double h_pct_us(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (!h->n)
		return 0;
	want = (uint64_t)(q * (double)h->n);
	if (want >= h->n)
		want = h->n - 1;
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		seen += h->c[i];
		if (seen > want)
			return h_value(i) / 1000.0;
	}
	return 0;
}

/* ---- output ---------------------------------------------------------------- */

__attribute__((format(printf, 1, 2)))
static void progress(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

/* One result row.  ratio is cluck/tmpfs for costs, tmpfs/cluck for rates. */
static void row(const char *figure, const char *cluck, const char *tmpfs,
		const char *ratio, const char *target, const char *met)
{
	printf("| %s | %s | %s | %s | %s | %s |\n", figure, cluck, tmpfs, ratio,
	       target, met);
	fflush(stdout);
}

__attribute__((format(printf, 2, 3)))
static const char *fmt(char *buf, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vsnprintf(buf, 64, f, ap);
	va_end(ap);
	return buf;
}

/* Thousands separators make 1234567/s readable at a glance. */
static const char *grouped(char *buf, double v)
{
	char tmp[32];
	int len, j = 0;

	snprintf(tmp, sizeof(tmp), "%.0f", v);
	len = (int)strlen(tmp);
	for (int i = 0; i < len; i++) {
		buf[j++] = tmp[i];
		if (tmp[i] != '-' && (len - i - 1) % 3 == 0 && i != len - 1)
			buf[j++] = ',';
	}
	buf[j] = 0;
	return buf;
}

/* ---- daemon /proc figures ---------------------------------------------- */

struct procmem {
	long rss_kb, hwm_kb, threads;
};

static int read_procmem(pid_t pid, struct procmem *m)
{
	char path[64], line[256];
	FILE *f;

	m->rss_kb = m->hwm_kb = m->threads = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "VmRSS: %ld", &m->rss_kb);
		sscanf(line, "VmHWM: %ld", &m->hwm_kb);
		sscanf(line, "Threads: %ld", &m->threads);
	}
	fclose(f);
	return 0;
}

/* "key: value" from MOUNT/status, or -1. */
static long status_key(const char *mount, const char *key)
{
	char path[4096], line[512];
	size_t kl = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/status", mount);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

/* ---- pairs ------------------------------------------------------------------ */

struct pair_thread {
	pthread_t th;
	const char *dir;
	int idx;
	int err;
	uint64_t count;
	struct hist h;
	pthread_barrier_t *start;
	volatile int *stop;
};

static void *pair_main(void *arg)
{
	struct pair_thread *t = arg;
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/bench-pairs.%d", t->dir, t->idx);
	fd = open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		t->err = errno;
	pthread_barrier_wait(t->start);
	if (fd < 0)
		return NULL;
	while (!__atomic_load_n(t->stop, __ATOMIC_RELAXED)) {
		uint64_t t0 = now_ns();

		if (flock(fd, LOCK_EX) < 0 || flock(fd, LOCK_UN) < 0) {
			t->err = errno;
			break;
		}
		h_add(&t->h, now_ns() - t0);
		t->count++;
	}
	close(fd);
	return NULL;
}

/* Runs n clients for secs on dir; pairs/s into *rate, merged latencies. */
static int run_pairs(const char *dir, int n, double secs, double *rate, struct hist *h)
{
	struct pair_thread *t = calloc((size_t)n, sizeof(*t));
	pthread_barrier_t start;
	volatile int stop = 0;
	uint64_t t0, total = 0;
	int err = 0;

	if (!t)
		return -ENOMEM;
	pthread_barrier_init(&start, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		t[i] = (struct pair_thread){ .dir = dir, .idx = i, .start = &start, .stop = &stop };
		if (pthread_create(&t[i].th, NULL, pair_main, &t[i])) {
			fprintf(stderr, "bench: pthread_create failed\n");
			exit(1);
		}
	}
	pthread_barrier_wait(&start);
	t0 = now_ns();
	usleep((useconds_t)(secs * 1e6));
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < n; i++) {
		pthread_join(t[i].th, NULL);
		total += t[i].count;
		h_merge(h, &t[i].h);
		if (t[i].err)
			err = -t[i].err;
	}
	*rate = (double)total / ((double)(now_ns() - t0) / 1e9);
	pthread_barrier_destroy(&start);
	free(t);
	return err;
}

static int cmd_pairs(const char *fuse, const char *tmpfs, const char *clients, double secs)
{
	char list[256], *save = NULL, *tok;

	snprintf(list, sizeof(list), "%s", clients);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int n = atoi(tok);
		struct hist *hf = calloc(1, sizeof(*hf)), *ht = calloc(1, sizeof(*ht));
		double rf = 0, rt = 0;
		char fig[128], a[64], b[64], c[64], g1[32], g2[32];
		int ef, et;

		if (n < 1 || !hf || !ht)
			return 1;
		progress("pairs: %d client(s), %.1f s on cluck, then tmpfs", n, secs);
		ef = run_pairs(fuse, n, secs, &rf, hf);
		et = run_pairs(tmpfs, n, secs, &rt, ht);
		if (ef || et)
			progress("pairs: errors: cluck %s, tmpfs %s", strerror(-ef), strerror(-et));
		snprintf(fig, sizeof(fig), "flock EX+UN pairs/s, %d client%s", n, n > 1 ? "s" : "");
		row(fig, fmt(a, "%s/s", grouped(g1, rf)), fmt(b, "%s/s", grouped(g2, rt)),
		    fmt(c, "%.2fx", rf > 0 ? rt / rf : 0),
		    n == 64 ? ">= 20,000/s" : "-",
		    n == 64 ? (rf >= 20000 ? "yes" : "**no**") : "-");
		snprintf(fig, sizeof(fig), "pair latency p50 / p99, %d client%s", n, n > 1 ? "s" : "");
		row(fig, fmt(a, "%.1f / %.1f us", h_pct_us(hf, .5), h_pct_us(hf, .99)),
		    fmt(b, "%.2f / %.2f us", h_pct_us(ht, .5), h_pct_us(ht, .99)),
		    fmt(c, "%.1fx / %.1fx", h_pct_us(ht, .5) > 0 ? h_pct_us(hf, .5) / h_pct_us(ht, .5) : 0,
			h_pct_us(ht, .99) > 0 ? h_pct_us(hf, .99) / h_pct_us(ht, .99) : 0),
		    "-", "-");
		free(hf);
		free(ht);
	}
	return 0;
}

/* ---- handoff ------------------------------------------------------------------ */

#define MAX_HANDOFF_PROCS 256

struct handoff_shared {
	volatile int go, stop;
	int32_t last_holder;                 /* 1-based process index */
	uint64_t last_unlock_ns;
	int err[MAX_HANDOFF_PROCS];
	struct hist h[MAX_HANDOFF_PROCS];
};

/* One contender: after releasing, it waits until someone else holds the
 * lock before asking again, so every measured grant is a real handoff
 * (on tmpfs the releaser would otherwise just take it back). */
static void handoff_child(struct handoff_shared *s, const char *path, int me)
{
	int fd = open(path, O_RDWR);

	if (fd < 0) {
		s->err[me - 1] = errno;
		_exit(1);
	}
	while (!__atomic_load_n(&s->go, __ATOMIC_ACQUIRE))
		sched_yield();
	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		uint64_t t;
		int32_t prev;

		if (flock(fd, LOCK_EX) < 0) {
			s->err[me - 1] = errno;
			_exit(1);
		}
		t = now_ns();
		prev = s->last_holder;
		if (prev && prev != me)
			h_add(&s->h[me - 1], t - s->last_unlock_ns);
		s->last_holder = me;
		s->last_unlock_ns = now_ns();
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (flock(fd, LOCK_UN) < 0) {
			s->err[me - 1] = errno;
			_exit(1);
		}
		while (__atomic_load_n(&s->last_holder, __ATOMIC_ACQUIRE) == me &&
		       !__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE))
			sched_yield();
	}
	close(fd);
	_exit(0);
}

static int run_handoff(const char *dir, int n, double secs, struct hist *out, double *rate)
{
	struct handoff_shared *s;
	pid_t pids[MAX_HANDOFF_PROCS];
	char path[4096];
	uint64_t t0;
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/bench-handoff", dir);
	fd = open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED)
		return -errno;
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			handoff_child(s, path, i + 1);
		if (pids[i] < 0) {
			err = -errno;
			n = i;
			break;
		}
	}
	usleep(200000);         /* let every child open its file */
	t0 = now_ns();
	__atomic_store_n(&s->go, 1, __ATOMIC_RELEASE);
	usleep((useconds_t)(secs * 1e6));
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < n; i++) {
		int st;

		waitpid(pids[i], &st, 0);
		h_merge(out, &s->h[i]);
		if (s->err[i])
			err = -s->err[i];
	}
	*rate = (double)out->n / ((double)(now_ns() - t0) / 1e9);
	munmap(s, sizeof(*s));
	return err;
}

static int cmd_handoff(const char *fuse, const char *tmpfs, int n, double secs)
{
	struct hist *hf = calloc(1, sizeof(*hf)), *ht = calloc(1, sizeof(*ht));
	char fig[128], a[64], b[64], c[64];
	double rf = 0, rt = 0;
	int ef, et;

	if (!hf || !ht || n < 2 || n > MAX_HANDOFF_PROCS)
		return 1;
	progress("handoff: %d processes on one file, %.1f s on cluck, then tmpfs", n, secs);
	ef = run_handoff(fuse, n, secs, hf, &rf);
	et = run_handoff(tmpfs, n, secs, ht, &rt);
	if (ef || et)
		progress("handoff: errors: cluck %s, tmpfs %s", strerror(-ef), strerror(-et));
	snprintf(fig, sizeof(fig), "handoff latency p50, %d processes", n);
	row(fig, fmt(a, "%.1f us", h_pct_us(hf, .5)), fmt(b, "%.1f us", h_pct_us(ht, .5)),
	    fmt(c, "%.1fx", h_pct_us(ht, .5) > 0 ? h_pct_us(hf, .5) / h_pct_us(ht, .5) : 0),
	    "< 200 us", hf->n && h_pct_us(hf, .5) < 200 ? "yes" : "**no**");
	snprintf(fig, sizeof(fig), "handoff latency p99, %d processes", n);
	row(fig, fmt(a, "%.1f us", h_pct_us(hf, .99)), fmt(b, "%.1f us", h_pct_us(ht, .99)),
	    fmt(c, "%.1fx", h_pct_us(ht, .99) > 0 ? h_pct_us(hf, .99) / h_pct_us(ht, .99) : 0),
	    "-", "-");
	snprintf(fig, sizeof(fig), "handoffs/s, %d processes", n);
	row(fig, fmt(a, "%.0f/s", rf), fmt(b, "%.0f/s", rt),
	    fmt(c, "%.2fx", rf > 0 ? rt / rf : 0), "-", "-");
	free(hf);
	free(ht);
	return 0;
}

/* ---- spawn: flock FILE true ---------------------------------------------------- */

/* One `flock FILE true`, as a shell runs it; ns, or 0 on failure. */
static uint64_t spawn_flock(const char *file)
{
	char *argv[] = { "flock", (char *)file, "true", NULL };
	uint64_t t0 = now_ns();
	pid_t pid;
	int st;

	if (posix_spawnp(&pid, "flock", NULL, NULL, argv, environ))
		return 0;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		return 0;
	return now_ns() - t0;
}

static int cmd_spawn(const char *fuse, const char *tmpfs, int runs)
{
	struct hist *hf = calloc(1, sizeof(*hf)), *ht = calloc(1, sizeof(*ht));
	char ff[4096], tf[4096], a[64], b[64], c[64];
	uint64_t sf = 0, st = 0;
	int bad = 0;

	if (!hf || !ht)
		return 1;
	snprintf(ff, sizeof(ff), "%s/bench-spawn", fuse);
	snprintf(tf, sizeof(tf), "%s/bench-spawn", tmpfs);
	progress("spawn: %d x `flock FILE true`, alternating cluck and tmpfs", runs);
	for (int i = 0; i < runs; i++) {
		uint64_t x = spawn_flock(ff), y = spawn_flock(tf);

		if (!x || !y) {
			bad++;
			continue;
		}
		h_add(hf, x);
		h_add(ht, y);
		sf += x;
		st += y;
	}
	if (bad)
		progress("spawn: %d runs failed (flock(1) missing or exit != 0)", bad);
	if (!hf->n)
		return 1;
	{
		double mf = (double)sf / (double)hf->n / 1000.0, mt = (double)st / (double)ht->n / 1000.0;

		row("`flock FILE true`, mean per call", fmt(a, "%.0f us", mf), fmt(b, "%.0f us", mt),
		    fmt(c, "%.2fx", mf / mt), "<= 1.2x tmpfs", mf <= 1.2 * mt ? "yes" : "**no**");
		row("`flock FILE true`, p50 / p99 per call",
		    fmt(a, "%.0f / %.0f us", h_pct_us(hf, .5), h_pct_us(hf, .99)),
		    fmt(b, "%.0f / %.0f us", h_pct_us(ht, .5), h_pct_us(ht, .99)),
		    fmt(c, "%.2fx / %.2fx", h_pct_us(hf, .5) / h_pct_us(ht, .5),
			h_pct_us(hf, .99) / h_pct_us(ht, .99)),
		    "-", "-");
	}
	free(hf);
	free(ht);
	return 0;
}

/* ---- waiters --------------------------------------------------------------------- */

struct waiter_shared {
	uint64_t opened, blocking, failed;
	int first_err;
};

static struct waiter_shared *wsh;
static const char *wpath;

static void *waiter_main(void *arg)
{
	int fd = open(wpath, O_RDWR);

	(void)arg;
	if (fd < 0) {
		__atomic_add_fetch(&wsh->failed, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&wsh->first_err, errno, __ATOMIC_RELAXED);
		return NULL;
	}
	__atomic_add_fetch(&wsh->opened, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&wsh->blocking, 1, __ATOMIC_RELAXED);
	/* Blocks until the holder lets go or the process is killed. */
	if (flock(fd, LOCK_EX) == 0)
		flock(fd, LOCK_UN);
	close(fd);
	return NULL;
}

/* A waiter process: `count` threads, each with its own open file
 * description and a blocking flock; it lives until it is killed. */
static void waiter_child(int count)
{
	struct rlimit rl = { .rlim_cur = (rlim_t)count + 64, .rlim_max = (rlim_t)count + 64 };
	pthread_attr_t attr;

	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		__atomic_store_n(&wsh->first_err, errno, __ATOMIC_RELAXED);
		_exit(1);
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (int i = 0; i < count; i++) {
		pthread_t th;
		int e = pthread_create(&th, &attr, waiter_main, NULL);

		if (e) {
			__atomic_add_fetch(&wsh->failed, (uint64_t)(count - i), __ATOMIC_RELAXED);
			__atomic_store_n(&wsh->first_err, e, __ATOMIC_RELAXED);
			break;
		}
	}
	for (;;)
		pause();
}

static int cmd_waiters(const char *mount, pid_t dpid, int n)
{
	int per = 12500, nproc = (n + per - 1) / per, hfd, rc = 0;
	struct procmem base, full, after;
	pid_t *pids = calloc((size_t)nproc, sizeof(pid_t));
	char path[4096], a[64], b[64], fig[128];
	uint64_t t0, tlast = 0;

	if (!pids)
		return 1;
	snprintf(path, sizeof(path), "%s/bench-waiters", mount);
	wpath = path;
	wsh = mmap(NULL, sizeof(*wsh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (wsh == MAP_FAILED)
		return 1;
	hfd = open(path, O_RDWR | O_CREAT, 0644);
	if (hfd < 0 || flock(hfd, LOCK_EX) < 0) {
		progress("waiters: cannot take the holder's lock on %s: %s", path, strerror(errno));
		return 1;
	}
	sleep(1);
	read_procmem(dpid, &base);
	progress("waiters: idle cluckd: VmRSS %ld KiB, VmHWM %ld KiB, %ld threads",
		 base.rss_kb, base.hwm_kb, base.threads);
	progress("waiters: starting %d blocked waiters in %d processes", n, nproc);
	t0 = now_ns();
	for (int i = 0; i < nproc; i++) {
		int count = i == nproc - 1 ? n - per * (nproc - 1) : per;

		pids[i] = fork();
		if (pids[i] == 0)
			waiter_child(count);
		if (pids[i] < 0) {
			progress("waiters: fork: %s", strerror(errno));
			nproc = i;
			rc = 1;
			goto kill_children;
		}
	}
	/* The status file is the daemon's own count of parked requests. */
	for (;;) {
		long w = status_key(mount, "waiters");
		uint64_t t = now_ns();

		if (w >= n)
			break;
		if (wsh->failed) {
			progress("waiters: %" PRIu64 " waiters failed: %s", wsh->failed,
				 strerror(wsh->first_err));
			rc = 1;
			goto kill_children;
		}
		if (t - tlast > 5000000000ull) {
			progress("waiters: %" PRIu64 " opened, status shows waiters: %ld (%.0f s)",
				 wsh->opened, w, (double)(t - t0) / 1e9);
			tlast = t;
		}
		if (t - t0 > 600000000000ull) {
			progress("waiters: gave up after 600 s with waiters: %ld", w);
			rc = 1;
			goto kill_children;
		}
		usleep(200000);
	}
	progress("waiters: status shows waiters: %ld after %.1f s", status_key(mount, "waiters"),
		 (double)(now_ns() - t0) / 1e9);
	read_procmem(dpid, &full);
	snprintf(fig, sizeof(fig), "cluckd VmRSS with %d parked waiters (idle: %ld KiB)", n, base.rss_kb);
	row(fig, fmt(a, "%.1f MiB (+%.0f B/waiter)", full.rss_kb / 1024.0,
		     (full.rss_kb - base.rss_kb) * 1024.0 / n),
	    "n/a", "-", "< 100 MB", full.rss_kb * 1024.0 < 100e6 ? "yes" : "**no**");
	snprintf(fig, sizeof(fig), "cluckd VmHWM with %d parked waiters", n);
	row(fig, fmt(a, "%.1f MiB", full.hwm_kb / 1024.0), "n/a", "-", "-", "-");
	snprintf(fig, sizeof(fig), "cluckd threads with %d parked waiters", n);
	row(fig, fmt(b, "%ld (idle: %ld)", full.threads, base.threads), "n/a", "-",
	    "no extra threads", full.threads <= base.threads ? "yes" : "**no**");

kill_children:
	t0 = now_ns();
	for (int i = 0; i < nproc; i++)
		kill(pids[i], SIGKILL);
	for (int i = 0; i < nproc; i++)
		waitpid(pids[i], NULL, 0);
	progress("waiters: killed the waiter processes in %.1f s", (double)(now_ns() - t0) / 1e9);
	flock(hfd, LOCK_UN);
	close(hfd);
	for (int i = 0; i < 1200 && status_key(mount, "waiters") > 0; i++)
		usleep(100000);
	read_procmem(dpid, &after);
	progress("waiters: after tear-down (%.1f s): status waiters: %ld, VmRSS %ld KiB, %ld threads",
		 (double)(now_ns() - t0) / 1e9, status_key(mount, "waiters"), after.rss_kb,
		 after.threads);
	munmap(wsh, sizeof(*wsh));
	free(pids);
	return rc;
}

/* ---- files ------------------------------------------------------------------------- */

#define FILE_DIRS 10

struct file_thread {
	pthread_t th;
	char dir[4096];
	int first, count, err;
	int finished;
	uint64_t *done;
	uint64_t deadline;
};

static void *file_main(void *arg)
{
	struct file_thread *t = arg;
	char path[4200];

	for (int i = 0; i < t->count; i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/f%07d", t->dir, t->first + i);
		fd = open(path, O_WRONLY | O_CREAT, 0644);
		if (fd < 0) {
			t->err = errno;
			break;
		}
		close(fd);
		__atomic_add_fetch(t->done, 1, __ATOMIC_RELAXED);
		if ((i & 255) == 0 && now_ns() > t->deadline)
			break;
	}
	__atomic_store_n(&t->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Creates n files under root/bench-files/d0..d9; returns how many it made
 * and the seconds it took. */
static uint64_t make_files(const char *root, int n, double limit_s, const char *what, double *secs)
{
	struct file_thread *t = calloc(FILE_DIRS, sizeof(*t));
	uint64_t done = 0, t0 = now_ns(), tlast = t0;
	char base[4000];
	int per = (n + FILE_DIRS - 1) / FILE_DIRS, running = 0;

	if (!t)
		return 0;
	snprintf(base, sizeof(base), "%s/bench-files", root);
	if (mkdir(base, 0755) < 0 && errno != EEXIST) {
		progress("files: mkdir %s: %s", base, strerror(errno));
		free(t);
		return 0;
	}
	for (int i = 0; i < FILE_DIRS; i++) {
		int first = i * per, count = first + per > n ? n - first : per;

		if (count <= 0)
			break;
		snprintf(t[i].dir, sizeof(t[i].dir), "%s/d%d", base, i);
		if (mkdir(t[i].dir, 0755) < 0 && errno != EEXIST) {
			progress("files: mkdir %s: %s", t[i].dir, strerror(errno));
			break;
		}
		t[i].first = first;
		t[i].count = count;
		t[i].done = &done;
		t[i].deadline = t0 + (uint64_t)(limit_s * 1e9);
		if (pthread_create(&t[i].th, NULL, file_main, &t[i]))
			break;
		running++;
	}
	for (;;) {
		uint64_t d = __atomic_load_n(&done, __ATOMIC_RELAXED), tn = now_ns();
		int alive = 0;

		for (int i = 0; i < running; i++)
			alive += !__atomic_load_n(&t[i].finished, __ATOMIC_ACQUIRE);
		if (!alive)
			break;
		if (tn - tlast >= 10000000000ull) {
			progress("files: %s: %" PRIu64 "/%d created (%.0f s, %.0f/s)", what, d, n,
				 (double)(tn - t0) / 1e9, (double)d / ((double)(tn - t0) / 1e9));
			tlast = tn;
		}
		usleep(100000);
	}
	for (int i = 0; i < running; i++) {
		pthread_join(t[i].th, NULL);
		if (t[i].err)
			progress("files: %s: %s: %s", what, t[i].dir, strerror(t[i].err));
	}
	*secs = (double)(now_ns() - t0) / 1e9;
	free(t);
	return done;
}

static int cmd_files(const char *fuse, const char *tmpfs, const char *mount, pid_t dpid,
		     int n, double limit_s)
{
	struct procmem base, full;
	char fig[128], a[64], b[64], c[64], g[32];
	double sf = 0, st = 0;
	uint64_t df, dt;

	read_procmem(dpid, &base);
	progress("files: idle cluckd: VmRSS %ld KiB, status files: %ld", base.rss_kb,
		 status_key(mount, "files"));
	progress("files: creating %d files in %d directories on cluck (limit %.0f s)",
		 n, FILE_DIRS, limit_s);
	df = make_files(fuse, n, limit_s, "cluck", &sf);
	sleep(1);
	read_procmem(dpid, &full);
	progress("files: cluck: %" PRIu64 " files in %.1f s; status files: %ld", df, sf,
		 status_key(mount, "files"));
	progress("files: creating %d files on tmpfs", n);
	dt = make_files(tmpfs, n, limit_s, "tmpfs", &st);
	snprintf(fig, sizeof(fig), "open(O_CREAT)+close, 10 threads, files/s");
	row(fig, fmt(a, "%.0f/s", df / sf), fmt(b, "%.0f/s", dt / st),
	    fmt(c, "%.2fx", (dt / st) / (df / sf)), "-", "-");
	snprintf(fig, sizeof(fig), "cluckd VmRSS with %s files (idle: %ld KiB)", grouped(g, (double)df),
		 base.rss_kb);
	row(fig, fmt(a, "%.1f MiB (%.0f B/file)", full.rss_kb / 1024.0,
		     df ? (full.rss_kb - base.rss_kb) * 1024.0 / (double)df : 0),
	    "n/a", "-", "-", "-");
	snprintf(fig, sizeof(fig), "cluckd VmHWM with %s files", g);
	row(fig, fmt(a, "%.1f MiB", full.hwm_kb / 1024.0), "n/a", "-", "-", "-");
	if (df < (uint64_t)n)
		progress("files: only %" PRIu64 " of %d files created on cluck", df, n);
	return df ? 0 : 1;
}

/* ---- main ---------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: bench pairs FUSE_DIR TMPFS_DIR [-c N,N,...] [-d SECS]\n"
		"       bench handoff FUSE_DIR TMPFS_DIR [-n PROCS] [-d SECS]\n"
		"       bench spawn FUSE_DIR TMPFS_DIR [-n RUNS]\n"
		"       bench waiters MOUNT PID [-n N]\n"
		"       bench files FUSE_DIR TMPFS_DIR MOUNT PID [-n N] [-T SECS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *clients = "1,8,64", *cmd;
	double secs = 2, limit = 1800;
	int n = -1, opt, nargs;
	char **args;

	if (argc < 2)
		usage();
	cmd = argv[1];
	/* Positional arguments first, options after. */
	args = argv + 2;
	for (nargs = 0; nargs < argc - 2 && args[nargs][0] != '-'; nargs++)
		;
	optind = 2 + nargs;
	while ((opt = getopt(argc, argv, "c:d:n:T:")) != -1) {
		switch (opt) {
		case 'c': clients = optarg; break;
		case 'd': secs = atof(optarg); break;
		case 'n': n = atoi(optarg); break;
		case 'T': limit = atof(optarg); break;
		default: usage();
		}
	}
	if (optind != argc || secs <= 0)
		usage();
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(cmd, "pairs") && nargs == 2)
		return cmd_pairs(args[0], args[1], clients, secs);
	if (!strcmp(cmd, "handoff") && nargs == 2)
		return cmd_handoff(args[0], args[1], n > 0 ? n : 16, secs);
	if (!strcmp(cmd, "spawn") && nargs == 2)
		return cmd_spawn(args[0], args[1], n > 0 ? n : 300);
	if (!strcmp(cmd, "waiters") && nargs == 2)
		return cmd_waiters(args[0], (pid_t)atoi(args[1]), n > 0 ? n : 100000);
	if (!strcmp(cmd, "files") && nargs == 4)
		return cmd_files(args[0], args[1], args[2], (pid_t)atoi(args[3]),
				 n > 0 ? n : 1000000, limit);
	usage();
	return 2;
}
