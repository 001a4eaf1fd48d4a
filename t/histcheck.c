/*
 * t/histcheck.c - the lock history of a real-cluster test: a workload
 * client that records one line per hold, and the checker that validates a
 * whole history afterwards.
 *
 *   histcheck --client NODE CLIENT FILE MODE COUNT HOLD_MS OUT
 *             [--secs S] [--think MS] [--seed N] [--survive 1]
 *       COUNT times (0: until --secs runs out) takes a lock on FILE, holds
 *       it HOLD_MS (randomised 0..2*HOLD_MS when --seed is given), releases
 *       it and appends one line to OUT (O_APPEND, one write(2) per line).
 *       MODE: ex | sh | mix (ex or sh at random) through flock(2),
 *       wr | rd through fcntl(F_SETLKW) on the whole file (lockf), lf: a
 *       lockfile, open(O_CREAT|O_EXCL) retried until created, released by
 *       unlink.  Every lock call is bounded by the --secs deadline (a
 *       SIGALRM without SA_RESTART interrupts it).  SIGTERM while holding
 *       (the --on-lost signal) records the hold ending at the signal, marks
 *       it "term", writes OUT.term and exits 143; with --survive 1 it goes
 *       on instead (for soaks).
 *   histcheck [--quiet] [--no-linz] HISTORY...
 *       checks the history; exit 0 valid, 1 violation (the offending lines
 *       are printed), 2 unreadable or malformed input.
 *
 * History lines (CLOCK_REALTIME nanoseconds, shared by every namespace):
 *   NODE CLIENT FILE MODE ACQ REL TOKEN [call=NS] [end=NS] [lost|term]
 *   NODE CLIENT FILE MODE CALL fail ERRNAME
 * ACQ is taken after the lock call returned and REL before the unlock
 * began, so the recorded interval lies inside the real one: two recorded
 * intervals that overlap prove two real holders at once.  "lost": the
 * unlock failed (the node died or the session ended), so the real end is
 * unknown and only the acquisition instant is checked; "term": the hold
 * ended at the --on-lost signal, REL is the signal's arrival.
 *
 * Checks, per file: no two conflicting holds (ex/ex, ex/sh; wr and lf
 * count as ex, rd as sh) overlap; in acquisition order an exclusive hold's
 * token is greater than every earlier hold's and a shared hold's greater
 * than every earlier exclusive one's (equal tokens fail); every hold but a
 * lockfile or a lost one (its node may be gone before the token is read)
 * has a token; and, unless --no-linz, the whole history of holds
 * is linearizable for t/linz.c's lock model.
 *
 * It must never: write to the cluck mount except through the lock calls
 * under test, trust a history line it could not parse, or call a history
 * valid when a check could not run (UNKNOWN from linz is reported, not
 * hidden).
 */
#define _GNU_SOURCE
#include "t/errname.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "t/linz.h"

/* ---- shared ---------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}


/* strtoull with full-string checking; -1 on bad input. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	return 0;
}

/* ---- the workload client -------------------------------------------- */

static volatile sig_atomic_t term_seen;
static volatile uint64_t term_ns;       /* written once, in the handler */

static void on_term(int sig)
{
	(void)sig;
	if (!term_seen) {
		term_ns = now_ns();    /* clock_gettime is async-signal-safe */
		term_seen = 1;
	}
}

static void on_alarm(int sig)
{
	(void)sig;             /* only there to interrupt a blocking lock */
}

/* Installs fn for sig without SA_RESTART so blocking calls see EINTR. */
static void catch(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

struct client {
	const char *node, *name, *file, *mode, *out;
	int outfd;
	uint64_t deadline;      /* 0: none */
	unsigned hold_ms, think_ms;
	uint64_t rng;
	int randomise;
	int survive;            /* --survive: go on after a SIGTERM */
	unsigned terms;
};

static uint32_t rnd(struct client *c)
{
	/* xorshift64*: reproducible from --seed, good enough for timings */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return (uint32_t)((c->rng * 2685821657736338717ull) >> 32);
}

/* Sleeps ms, cut short by SIGTERM. */
static void nap(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (!term_seen && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void emit(struct client *c, const char *line, int n)
{
	if (n <= 0 || n >= 1024)
		return;
	if (write(c->outfd, line, (size_t)n) != n)
		perror("histcheck: write history");
}

static void emit_fail(struct client *c, const char *mode, uint64_t call, int e)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "%s %s %s %s %" PRIu64 " fail %s\n",
			 c->node, c->name, c->file, mode, call, errname(e));

	emit(c, line, n);
}

/* One hold: 0 done, 1 the deadline passed, 2 ended by SIGTERM. */
static int client_once(struct client *c)
{
	const char *mode = c->mode;
	char line[1024], tok[64] = "-";
	uint64_t call, acq, rel, end;
	int fd = -1, rc, e, lost = 0;
	unsigned hold;

	if (!strcmp(mode, "mix"))
		mode = rnd(c) & 1 ? "ex" : "sh";
	hold = c->randomise && c->hold_ms ? rnd(c) % (2 * c->hold_ms + 1) : c->hold_ms;
	call = now_ns();
	if (!strcmp(mode, "lf")) {
		/* A lockfile is taken by retrying the create; EEXIST is the
		 * normal "busy", not a failure worth a line. */
		for (;;) {
			fd = open(c->file, O_WRONLY | O_CREAT | O_EXCL, 0644);
			if (fd >= 0)
				break;
			e = errno;
			if (term_seen && !c->survive)
				return 2;
			term_seen = 0;
			if (c->deadline && now_ns() >= c->deadline)
				return 1;
			if (e != EEXIST) {
				emit_fail(c, mode, call, e);
				nap(50);
				return 0;
			}
			nap(5);
		}
	} else {
		int wr = !strcmp(mode, "ex") || !strcmp(mode, "wr");

		fd = open(c->file, (wr ? O_RDWR : O_RDONLY) | O_CREAT, 0644);
		if (fd < 0) {
			emit_fail(c, mode, call, errno);
			nap(50);      /* the node may be restarting */
			return c->deadline && now_ns() >= c->deadline;
		}
		if (!strcmp(mode, "ex") || !strcmp(mode, "sh")) {
			rc = flock(fd, wr ? LOCK_EX : LOCK_SH);
		} else if (!strcmp(mode, "wr") || !strcmp(mode, "rd")) {
			struct flock fl = { .l_type = (short)(wr ? F_WRLCK : F_RDLCK),
					    .l_whence = SEEK_SET };

			rc = fcntl(fd, F_SETLKW, &fl);
		} else {
			fprintf(stderr, "histcheck: unknown mode %s\n", mode);
			close(fd);
			return 1;
		}
		if (rc < 0) {
			e = errno;
			close(fd);
			if (term_seen && !c->survive)
				return 2;
			term_seen = 0;
			/* Our own deadline alarm is no failure of the cluster. */
			if (e == EINTR && c->deadline && now_ns() >= c->deadline)
				return 1;
			emit_fail(c, mode, call, e);
			if (c->deadline && now_ns() >= c->deadline)
				return 1;
			nap(50);
			return 0;
		}
	}
	acq = now_ns();
	if (strcmp(mode, "lf")) {
		ssize_t n = fgetxattr(fd, "user.cluck.token", tok, sizeof(tok) - 1);

		if (n > 0) {
			tok[n] = '\0';
			tok[strcspn(tok, " \n")] = '\0';
		} else {
			snprintf(tok, sizeof(tok), "-");
		}
	}
	nap(hold);
	rel = term_seen ? term_ns : now_ns();
	if (rel < acq) {
		/* The signal came while we waited, the grant right after:
		 * the hold's end is unknown, so it only proves its start. */
		rel = acq;
		lost = 1;
	}
	if (!strcmp(mode, "lf")) {
		if (unlink(c->file) < 0)
			lost = 1;
		close(fd);
	} else if (!strcmp(mode, "ex") || !strcmp(mode, "sh")) {
		if (flock(fd, LOCK_UN) < 0)
			lost = 1;
		if (close(fd) < 0)
			lost = 1;
	} else {
		struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET };

		if (fcntl(fd, F_SETLK, &fl) < 0)
			lost = 1;
		if (close(fd) < 0)
			lost = 1;
	}
	end = now_ns();
	rc = snprintf(line, sizeof(line),
		      "%s %s %s %s %" PRIu64 " %" PRIu64 " %s call=%" PRIu64 " end=%" PRIu64 "%s\n",
		      c->node, c->name, c->file, mode, acq, rel, tok, call, end,
		      lost ? " lost" : term_seen ? " term" : "");
	emit(c, line, rc);
	if (term_seen && !c->survive)
		return 2;
	if (term_seen) {
		c->terms++;
		term_seen = 0;
	}
	if (c->think_ms)
		nap(c->randomise ? rnd(c) % (2 * c->think_ms + 1) : c->think_ms);
	return 0;
}

static int client_main(int argc, char **argv)
{
	struct client c = { 0 };
	uint64_t count, v, secs = 0;
	int rc = 0;

	if (argc < 8) {
		fprintf(stderr, "usage: histcheck --client NODE CLIENT FILE MODE COUNT HOLD_MS OUT"
			" [--secs S] [--think MS] [--seed N] [--survive 1]\n");
		return 2;
	}
	c.node = argv[1];
	c.name = argv[2];
	c.file = argv[3];
	c.mode = argv[4];
	c.out = argv[7];
	if (parse_u64(argv[5], &count) || parse_u64(argv[6], &v) || v > 600000) {
		fprintf(stderr, "histcheck: bad COUNT or HOLD_MS\n");
		return 2;
	}
	c.hold_ms = (unsigned)v;
	c.rng = 0x9e3779b97f4a7c15ull;
	for (int i = 8; i < argc; i++) {
		if (i + 1 >= argc || parse_u64(argv[i + 1], &v)) {
			fprintf(stderr, "histcheck: bad option %s\n", argv[i]);
			return 2;
		}
		if (!strcmp(argv[i], "--secs"))
			secs = v;
		else if (!strcmp(argv[i], "--survive"))
			c.survive = v != 0;
		else if (!strcmp(argv[i], "--think"))
			c.think_ms = (unsigned)v;
		else if (!strcmp(argv[i], "--seed")) {
			c.rng ^= v * 0xbf58476d1ce4e5b9ull + 1;
			c.randomise = 1;
		} else {
			fprintf(stderr, "histcheck: unknown option %s\n", argv[i]);
			return 2;
		}
		i++;
	}
	if (strcmp(c.mode, "ex") && strcmp(c.mode, "sh") && strcmp(c.mode, "mix") &&
	    strcmp(c.mode, "wr") && strcmp(c.mode, "rd") && strcmp(c.mode, "lf")) {
		fprintf(stderr, "histcheck: unknown mode %s\n", c.mode);
		return 2;
	}
	c.outfd = open(c.out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (c.outfd < 0) {
		perror(c.out);
		return 2;
	}
	catch(SIGTERM, on_term);
	catch(SIGALRM, on_alarm);
	if (secs) {
		struct itimerval it = { .it_value = { (time_t)secs, 0 } };

		c.deadline = now_ns() + secs * 1000000000u;
		setitimer(ITIMER_REAL, &it, NULL);
	}
	for (uint64_t i = 0; count == 0 || i < count; i++) {
		rc = client_once(&c);
		if (rc || (c.deadline && now_ns() >= c.deadline))
			break;
		if (count == 0 && !c.deadline)
			break;          /* never loop forever without a bound */
	}
	close(c.outfd);
	if (rc == 2) {
		/* The marker tells a test the holder saw --on-lost even when
		 * its exit status is lost to a subshell. */
		char path[4096];
		int fd;

		snprintf(path, sizeof(path), "%s.term", c.out);
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			char msg[256];
			int n = snprintf(msg, sizeof(msg), "%s %s %s\n", c.node, c.name, c.file);

			if (n > 0 && write(fd, msg, (size_t)n) < 0)
				perror(path);
			close(fd);
		}
		return 143;
	}
	return 0;
}

/* ---- the checker ------------------------------------------------------ */

enum flag { H_OK, H_LOST, H_TERM };

struct hold {
	char *text;             /* the line as read, for reports */
	const char *src;        /* file:line */
	unsigned lineno;
	char *file, *owner;     /* owner = "node client" */
	int ex;                 /* conflicts with everything */
	int ranged;             /* POSIX (wr/rd): its own linz key space */
	int lf;
	uint64_t acq, rel, tok, call, end;
	int has_tok;
	enum flag flag;
};

struct fail_rec {
	char *file;
	char *err;
};

static struct hold *holds;
static size_t nholds, capholds;
static struct fail_rec *fails;
static size_t nfails, capfails;
static unsigned violations;
static int quiet;

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	void *q;
	size_t n;

	if (need <= *cap)
		return 0;
	n = *cap ? *cap * 2 : 256;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static void violation(const char *what, const struct hold *a, const struct hold *b)
{
	violations++;
	printf("VIOLATION: %s\n", what);
	if (a)
		printf("  %s:%u: %s\n", a->src, a->lineno, a->text);
	if (b)
		printf("  %s:%u: %s\n", b->src, b->lineno, b->text);
}

/* Splits line into at most max whitespace-separated fields, in place. */
static int split(char *line, char **f, int max)
{
	int n = 0;
	char *save = NULL, *t;

	for (t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == max)
			return -1;
		f[n++] = t;
	}
	return n;
}

/* Parses one history line: 0, 1 for a line to skip, -EINVAL malformed. */
static int parse_line(const char *src, unsigned lineno, const char *raw)
{
	char *copy, *f[16];
	int n, i;
	struct hold h = { 0 };
	const char *m;

	copy = strdup(raw);
	if (!copy)
		return -ENOMEM;
	n = split(copy, f, 16);
	if (n == 0 || (n > 0 && f[0][0] == '#')) {
		free(copy);
		return 1;
	}
	if (n < 7)
		goto bad;
	m = f[3];
	if (strcmp(m, "ex") && strcmp(m, "sh") && strcmp(m, "wr") && strcmp(m, "rd") &&
	    strcmp(m, "lf"))
		goto bad;
	if (!strcmp(f[5], "fail")) {
		struct fail_rec fr;

		if (n != 7 || grow((void **)&fails, &capfails, nfails + 1, sizeof(*fails)))
			goto bad;
		fr.file = strdup(f[2]);
		fr.err = strdup(f[6]);
		if (!fr.file || !fr.err) {
			free(fr.file);
			free(fr.err);
			goto bad;
		}
		fails[nfails++] = fr;
		free(copy);
		return 0;
	}
	h.ex = !strcmp(m, "ex") || !strcmp(m, "wr") || !strcmp(m, "lf");
	h.ranged = !strcmp(m, "wr") || !strcmp(m, "rd");
	h.lf = !strcmp(m, "lf");
	if (parse_u64(f[4], &h.acq) || parse_u64(f[5], &h.rel) || h.rel < h.acq)
		goto bad;
	if (strcmp(f[6], "-")) {
		if (parse_u64(f[6], &h.tok))
			goto bad;
		h.has_tok = 1;
	}
	h.call = h.acq;
	h.end = h.rel;
	for (i = 7; i < n; i++) {
		if (!strncmp(f[i], "call=", 5)) {
			if (parse_u64(f[i] + 5, &h.call) || h.call > h.acq)
				goto bad;
		} else if (!strncmp(f[i], "end=", 4)) {
			if (parse_u64(f[i] + 4, &h.end) || h.end < h.rel)
				goto bad;
		} else if (!strcmp(f[i], "lost")) {
			h.flag = H_LOST;
		} else if (!strcmp(f[i], "term")) {
			h.flag = H_TERM;
		} else {
			goto bad;
		}
	}
	h.text = strdup(raw);
	h.src = src;
	h.lineno = lineno;
	h.file = strdup(f[2]);
	if (asprintf(&h.owner, "%s %s", f[0], f[1]) < 0)
		h.owner = NULL;
	if (!h.text || !h.file || !h.owner ||
	    grow((void **)&holds, &capholds, nholds + 1, sizeof(*holds))) {
		free(h.text);
		free(h.file);
		free(h.owner);
		free(copy);
		return -ENOMEM;
	}
	h.text[strcspn(h.text, "\n")] = '\0';
	holds[nholds++] = h;
	free(copy);
	return 0;
bad:
	free(copy);
	return -EINVAL;
}

static int by_file_acq(const void *pa, const void *pb)
{
	const struct hold *a = pa, *b = pb;
	int c = strcmp(a->file, b->file);

	if (c)
		return c;
	if (a->acq != b->acq)
		return a->acq < b->acq ? -1 : 1;
	return a->lineno < b->lineno ? -1 : a->lineno > b->lineno;
}

/* The end of what a hold proves: a lost hold only proves its start. */
static uint64_t proven_end(const struct hold *h)
{
	return h->flag == H_LOST ? h->acq : h->rel;
}

/* Two holds of one file conflict when either is exclusive, unless both
 * belong to the same owner (a conversion by one client is not a race). */
static int conflict(const struct hold *a, const struct hold *b)
{
	return (a->ex || b->ex) && strcmp(a->owner, b->owner);
}

struct evt {
	uint64_t t;
	int d;
};

static int by_time(const void *pa, const void *pb)
{
	const struct evt *a = pa, *b = pb;

	if (a->t != b->t)
		return a->t < b->t ? -1 : 1;
	return a->d - b->d;     /* leave before enter at the same instant */
}

/* Peak of overlapping [from, to) intervals given as events. */
static unsigned peak(struct evt *ev, size_t n)
{
	int cur = 0, best = 0;

	qsort(ev, n, sizeof(*ev), by_time);
	for (size_t i = 0; i < n; i++) {
		cur += ev[i].d;
		if (cur > best)
			best = cur;
	}
	return (unsigned)best;
}

/* Checks holds[lo, hi), all of one file, sorted by acquisition. */
static void check_file(size_t lo, size_t hi)
{
	const struct hold *max_any = NULL, *max_ex = NULL;
	size_t n = hi - lo, nev = 0, lost = 0, nex = 0, nf = 0;
	struct evt *ev = calloc(2 * n + 1, sizeof(*ev));
	unsigned waiters = 0, sh_peak = 0;

	for (size_t i = lo; i < hi; i++) {
		struct hold *b = &holds[i];

		nex += b->ex;
		lost += b->flag != H_OK;
		/* A lost hold's token read may fail as its node goes away
		 * (stopped or killed right after the grant). */
		if (!b->has_tok && !b->lf && b->flag == H_OK)
			violation("hold without a token", b, NULL);
		/* Earlier holds still running at b's acquisition: the list
		 * is sorted by acq, so only a backwards scan is needed, and
		 * it stops being useful once holds ended long before. */
		for (size_t j = lo; j < i; j++) {
			struct hold *a = &holds[j];

			if (proven_end(a) > b->acq && conflict(a, b))
				violation("conflicting holds overlap", a, b);
		}
		if (b->has_tok && !b->lf) {
			const struct hold *m = b->ex ? max_any : max_ex;

			if (m && m->tok >= b->tok && strcmp(m->owner, b->owner))
				violation(m->tok == b->tok ? "two conflicting holds share a token"
							   : "token did not increase", m, b);
			if (!max_any || b->tok > max_any->tok)
				max_any = b;
			if (b->ex && (!max_ex || b->tok > max_ex->tok))
				max_ex = b;
		}
	}
	if (ev) {
		for (size_t i = lo; i < hi; i++)
			if (holds[i].call < holds[i].acq) {
				ev[nev++] = (struct evt){ holds[i].call, 1 };
				ev[nev++] = (struct evt){ holds[i].acq, -1 };
			}
		waiters = peak(ev, nev);
		nev = 0;
		for (size_t i = lo; i < hi; i++)
			if (!holds[i].ex) {
				ev[nev++] = (struct evt){ holds[i].acq, 1 };
				ev[nev++] = (struct evt){ proven_end(&holds[i]), -1 };
			}
		sh_peak = peak(ev, nev);
		free(ev);
	}
	for (size_t i = 0; i < nfails; i++)
		nf += !strcmp(fails[i].file, holds[lo].file);
	if (!quiet)
		printf("file %s: holds=%zu ex=%zu sh=%zu lost=%zu fails=%zu max_waiters=%u"
		       " max_shared=%u tokens=%" PRIu64 "..%" PRIu64 "\n",
		       holds[lo].file, n, nex, n - nex, lost, nf, waiters, sh_peak,
		       holds[lo].tok, max_any ? max_any->tok : 0);
}

/* Owner ids for linz: a new id after every lost/term hold of an owner, so a
 * pending release-all of a dead session never stands for a later hold. */
struct owner {
	char *name;
	uint32_t id;
};

static uint32_t owner_id(struct owner **tab, size_t *n, size_t *cap, const char *name,
			 uint32_t *next)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*tab)[i].name, name))
			return (*tab)[i].id;
	if (grow((void **)tab, cap, *n + 1, sizeof(**tab)))
		return UINT32_MAX;
	(*tab)[*n].name = strdup(name);
	(*tab)[*n].id = (*next)++;
	return (*tab)[(*n)++].id;
}

static void owner_renew(struct owner *tab, size_t n, const char *name, uint32_t *next)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(tab[i].name, name))
			tab[i].id = (*next)++;
}

static int by_call(const void *pa, const void *pb)
{
	const struct hold *a = pa, *b = pb;

	if (a->call != b->call)
		return a->call < b->call ? -1 : 1;
	return a->lineno < b->lineno ? -1 : a->lineno > b->lineno;
}

/* Feeds every hold to the linearizability checker: 0 ok, 1 not, 2 unknown. */
static int check_linz(void)
{
	struct linz *lz = linz_new(200000000u);
	struct owner *tab = NULL;
	size_t ntab = 0, captab = 0;
	uint32_t next = 1;
	char **keys = NULL;
	size_t nkeys = 0, capkeys = 0;
	enum linz_result r;
	int rc = 2;

	if (!lz)
		return 2;
	/* Owners' generations follow each owner's own order of calls. */
	qsort(holds, nholds, sizeof(*holds), by_call);
	for (size_t i = 0; i < nholds; i++) {
		struct hold *h = &holds[i];
		struct linz_op op = { 0 };
		size_t k;

		for (k = 0; k < nkeys; k++)
			if (!strcmp(keys[k], h->file))
				break;
		if (k == nkeys) {
			if (grow((void **)&keys, &capkeys, nkeys + 1, sizeof(*keys)))
				goto out_free;
			keys[nkeys++] = h->file;
		}
		op.client = owner_id(&tab, &ntab, &captab, h->owner, &next);
		if (op.client == UINT32_MAX)
			goto out_free;
		op.key = k;
		op.ranged = (uint8_t)h->ranged;
		op.end = h->ranged ? UINT64_MAX : 0;
		op.kind = h->lf ? LINZ_TRY_EX : h->ex ? LINZ_ACQ_EX : LINZ_ACQ_SH;
		op.out = LINZ_OK;
		op.call = h->call;
		op.ret = h->acq;
		if (linz_add_op(lz, &op) < 0)
			goto out_free;
		if (h->flag == H_OK) {
			op.kind = LINZ_RELEASE;
			op.call = h->rel;
			op.ret = h->end;
		} else {
			/* The session's end took the lock some time after the
			 * grant; when it did is what we do not know. */
			op.kind = LINZ_RELEASE_ALL;
			op.ranged = 0;
			op.end = 0;
			op.call = h->acq;
			op.ret = LINZ_INF;
			owner_renew(tab, ntab, h->owner, &next);
		}
		if (linz_add_op(lz, &op) < 0)
			goto out_free;
	}
	r = linz_check(lz);
	if (r == LINZ_LINEARIZABLE) {
		if (!quiet)
			printf("linz: linearizable (%zu holds, %" PRIu64 " steps)\n", nholds,
			       linz_steps(lz));
		rc = 0;
	} else {
		char buf[2048];

		linz_explain(lz, buf, sizeof(buf));
		printf("%s: %s\n", r == LINZ_NOT ? "VIOLATION: linz" : "linz: UNKNOWN", buf);
		rc = r == LINZ_NOT ? 1 : 2;
	}
out_free:
	for (size_t i = 0; i < ntab; i++)
		free(tab[i].name);
	free(tab);
	free(keys);
	linz_free(lz);
	return rc;
}

static int check_main(int argc, char **argv)
{
	int use_linz = 1, files = 0, rc = 0;
	char *line = NULL;
	size_t cap = 0;
	size_t i, lo;

	for (int a = 1; a < argc; a++) {
		FILE *f;
		unsigned lineno = 0;

		if (!strcmp(argv[a], "--quiet")) {
			quiet = 1;
			continue;
		}
		if (!strcmp(argv[a], "--no-linz")) {
			use_linz = 0;
			continue;
		}
		f = fopen(argv[a], "re");
		if (!f) {
			perror(argv[a]);
			return 2;
		}
		files++;
		while (getline(&line, &cap, f) >= 0) {
			int r = parse_line(argv[a], ++lineno, line);

			if (r == -EINVAL) {
				fprintf(stderr, "%s:%u: malformed history line: %s", argv[a], lineno,
					line);
				rc = 2;
			} else if (r < 0) {
				fprintf(stderr, "histcheck: out of memory\n");
				fclose(f);
				free(line);
				return 2;
			}
		}
		fclose(f);
	}
	free(line);
	if (!files) {
		fprintf(stderr, "usage: histcheck [--quiet] [--no-linz] HISTORY...\n"
				"       histcheck --client NODE CLIENT FILE MODE COUNT HOLD_MS OUT"
				" [--secs S] [--think MS] [--seed N] [--survive 1]\n");
		return 2;
	}
	if (rc)
		return rc;
	qsort(holds, nholds, sizeof(*holds), by_file_acq);
	for (lo = 0, i = 1; i <= nholds; i++)
		if (i == nholds || strcmp(holds[i].file, holds[lo].file)) {
			check_file(lo, i);
			lo = i;
		}
	if (!quiet) {
		printf("history: %zu holds, %zu failed calls", nholds, nfails);
		if (nfails) {
			/* errno names, counted, so a test log shows why calls failed */
			printf(" (");
			for (i = 0; i < nfails; i++) {
				size_t j, c = 0;

				for (j = 0; j < i; j++)
					if (!strcmp(fails[j].err, fails[i].err))
						break;
				if (j < i)
					continue;
				for (j = i; j < nfails; j++)
					c += !strcmp(fails[j].err, fails[i].err);
				printf("%s%s=%zu", i ? " " : "", fails[i].err, c);
			}
			printf(")");
		}
		printf("\n");
	}
	if (use_linz && nholds) {
		int l = check_linz();

		if (l == 1)
			violations++;
		else if (l == 2)
			printf("linz: not decided (budget or memory); interval checks only\n");
	}
	if (violations) {
		printf("histcheck: %u violation(s)\n", violations);
		return 1;
	}
	if (!quiet)
		printf("histcheck: ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--client"))
		return client_main(argc - 1, argv + 1);
	return check_main(argc, argv);
}
