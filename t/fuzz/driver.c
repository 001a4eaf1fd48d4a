/*
 * t/fuzz/driver.c - a main() for the fuzz targets when libFuzzer is not
 * available: the same LLVMFuzzerTestOneInput, fed with the seed files of
 * the directories named on the command line, then with random inputs and
 * mutations of the seeds (bit flips, byte sets, interesting integers
 * written over length fields, truncations, insertions, duplications and
 * splices of two seeds) until the time is up.  No coverage feedback: it is
 * a smoke fuzzer, good at the shallow bugs of decoders; libFuzzer does the
 * deep work.
 *
 * Flags (libFuzzer's spelling, unknown -flags are ignored so the same
 * command line works for both): -max_total_time=N seconds (default 10),
 * -runs=N, -seed=N (default: from the clock, printed), -max_len=N (default
 * 4096).  Arguments that are regular files are run once each and nothing
 * else (crash reproduction); directories are corpora.
 *
 * It must never: hide a crash (the target aborts or the sanitizer kills us;
 * exit 0 only when every input returned; the input that crashed is dumped
 * in hex on stderr), write any file, or hand
 * a target a buffer larger than its input (each input gets its own exact
 * allocation so the sanitizer sees one byte of overread).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Present when built with a sanitizer: called before it exits. */
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

#define SEEDS_MAX 4096

struct seed {
	uint8_t *b;
	size_t n;
};

static struct seed seeds[SEEDS_MAX];
static size_t n_seeds;
static size_t max_len = 4096;
static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64: good enough and seedable */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const uint8_t *volatile cur;
static volatile size_t cur_n;

/* Dumps the input being run in hex: the driver keeps no files, so this
 * is how a crash is reproduced (write() only: it runs in a signal). */
static void dump_input(void)
{
	static const char hex[] = "0123456789abcdef";
	static const char head[] = "driver: crashing input (hex):\n";
	const uint8_t *b = cur;
	size_t n = cur_n;
	char line[3 * 32 + 1];

	if (!b && n)
		return;
	(void)!write(2, head, sizeof(head) - 1);
	for (size_t i = 0; i < n; i += 32) {
		size_t k = 0;

		for (size_t j = i; j < n && j < i + 32; j++) {
			line[k++] = hex[b[j] >> 4];
			line[k++] = hex[b[j] & 15];
			line[k++] = ' ';
		}
		line[k - 1] = '\n';
		(void)!write(2, line, k);
	}
}

static void on_fatal(int sig)
{
	dump_input();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Runs one input from its own exact-size allocation. */
static void run(const uint8_t *b, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1);

	if (!copy) {
		fprintf(stderr, "driver: out of memory\n");
		exit(1);
	}
	if (n)
		memcpy(copy, b, n);
	cur = copy;
	cur_n = n;
	LLVMFuzzerTestOneInput(copy, n);
	cur = NULL;
	cur_n = 0;
	free(copy);
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	size_t n;

	if (!f)
		return -errno;
	b = malloc(max_len ? max_len : 1);
	if (!b) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(b, 1, max_len, f);
	fclose(f);
	*out = b;
	*len = n;
	return 0;
}

static void add_seed(const char *path)
{
	uint8_t *b;
	size_t n;

	if (n_seeds >= SEEDS_MAX || read_file(path, &b, &n) < 0)
		return;
	seeds[n_seeds].b = b;
	seeds[n_seeds].n = n;
	n_seeds++;
}

/* Seeds in name order, so -seed=N replays the same run anywhere. */
static void add_dir(const char *dir)
{
	struct dirent **names;
	char path[4096];
	struct stat st;
	int n = scandir(dir, &names, NULL, alphasort);

	if (n < 0) {
		fprintf(stderr, "driver: %s: %s (ignored)\n", dir, strerror(errno));
		return;
	}
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
				add_seed(path);
		}
		free(names[i]);
	}
	free(names);
}

/* Little-endian integers that break length checks. */
static uint64_t interesting(void)
{
	static const uint64_t v[] = { 0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff,
				      0xffff, 0x10000, 0x7fffffff, 0x80000000u,
				      0xffffffffu, 0x100000000ull, UINT64_MAX,
				      INT64_MAX, 65507, 65536, 4096, 40, 32, 13 };

	return v[below(sizeof(v) / sizeof(v[0]))] + (rnd() & 1 ? 0 : below(3) - 1);
}

/* Applies one mutation to b[0..*n) (capacity max_len).  gcc 12 at -O2
 * cannot see that *n <= max_len bounds every length below and reports a
 * memmove of SIZE_MAX bytes (stringop-overflow); the bounds are checked. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
static void mutate(uint8_t *b, size_t *n)
{
	size_t i, k;

	switch (rnd() % 9) {
	case 0:                                /* bit flip */
		if (*n)
			b[below(*n)] ^= (uint8_t)(1u << below(8));
		break;
	case 1:                                /* byte set */
		if (*n)
			b[below(*n)] = (uint8_t)rnd();
		break;
	case 2:                                /* interesting integer */
		k = (size_t)1 << below(4);     /* 1, 2, 4 or 8 bytes */
		if (*n >= k) {
			uint64_t v = interesting();

			i = below(*n - k + 1);
			for (size_t j = 0; j < k; j++)
				b[i + j] = (uint8_t)(v >> (8 * j));
		}
		break;
	case 3:                                /* truncate */
		*n = below(*n + 1);
		break;
	case 4:                                /* insert random bytes */
		k = 1 + below(16);
		if (*n + k <= max_len) {
			i = below(*n + 1);
			memmove(b + i + k, b + i, *n - i);
			for (size_t j = 0; j < k; j++)
				b[i + j] = (uint8_t)rnd();
			*n += k;
		}
		break;
	case 5:                                /* erase a range */
		if (*n) {
			i = below(*n);
			k = 1 + below(*n - i);
			memmove(b + i, b + i + k, *n - i - k);
			*n -= k;
		}
		break;
	case 6:                                /* duplicate a range */
		if (*n) {
			i = below(*n);
			k = 1 + below(*n - i);
			if (*n + k <= max_len) {
				size_t at = below(*n + 1);

				memmove(b + at + k, b + at, *n - at);
				memmove(b + at, b + (i >= at ? i + k : i), k);
				*n += k;
			}
		}
		break;
	case 7:                                /* splice: our head, a seed's tail */
		if (n_seeds) {
			const struct seed *s = &seeds[below(n_seeds)];
			size_t from = below(s->n + 1), at = below(*n + 1);

			k = s->n - from;
			if (at + k > max_len)
				k = max_len - at;
			memcpy(b + at, s->b + from, k);
			*n = at + k;
		}
		break;
	default:                               /* append a seed */
		if (n_seeds) {
			const struct seed *s = &seeds[below(n_seeds)];

			k = s->n;
			if (*n + k > max_len)
				k = max_len - *n;
			memcpy(b + *n, s->b, k);
			*n += k;
		}
		break;
	}
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

static int flag(const char *arg, const char *name, uint64_t *v)
{
	size_t l = strlen(name);

	if (strncmp(arg, name, l) || arg[l] != '=')
		return 0;
	*v = strtoull(arg + l + 1, NULL, 10);
	return 1;
}

int main(int argc, char **argv)
{
	uint64_t secs = 10, runs = 0, seed = 0, v, execs = 0;
	int have_seed = 0, files = 0, dirs = 0;
	double t0, el;
	uint8_t *b;
	size_t n;
	struct stat st;

	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(dump_input);
	signal(SIGABRT, on_fatal);
	signal(SIGSEGV, on_fatal);
	signal(SIGBUS, on_fatal);
	signal(SIGFPE, on_fatal);
	for (int i = 1; i < argc; i++) {
		if (flag(argv[i], "-max_total_time", &v))
			secs = v;
		else if (flag(argv[i], "-runs", &v))
			runs = v;
		else if (flag(argv[i], "-seed", &v))
			seed = v, have_seed = 1;
		else if (flag(argv[i], "-max_len", &v))
			max_len = v ? (size_t)v : 1;
		else if (argv[i][0] == '-')
			continue;              /* a libFuzzer flag we do not need */
		else if (stat(argv[i], &st) == 0 && S_ISREG(st.st_mode))
			files++;
		else
			dirs++;
	}
	if (files) {
		/* reproduction: each named file once */
		for (int i = 1; i < argc; i++) {
			if (argv[i][0] == '-' || stat(argv[i], &st) || !S_ISREG(st.st_mode))
				continue;
			if (read_file(argv[i], &b, &n) < 0) {
				fprintf(stderr, "driver: %s: cannot read\n", argv[i]);
				return 1;
			}
			run(b, n);
			free(b);
			printf("driver: ran %s (%zu bytes)\n", argv[i], n);
		}
		return 0;
	}
	for (int i = 1; i < argc; i++)
		if (argv[i][0] != '-')
			add_dir(argv[i]);
	if (!have_seed)
		seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
	rng_state = seed;
	printf("driver: seed %" PRIu64 ", %zu seed inputs from %d dirs, %" PRIu64
	       " s, max_len %zu\n", seed, n_seeds, dirs, secs, max_len);
	fflush(stdout);
	b = malloc(max_len);
	if (!b)
		return 1;
	t0 = now_s();
	for (size_t i = 0; i < n_seeds; i++, execs++)
		run(seeds[i].b, seeds[i].n);
	run(NULL, 0);
	execs++;
	for (;;) {
		if ((execs & 63) == 0 && now_s() - t0 >= (double)secs)
			break;
		if (runs && execs >= runs)
			break;
		if (!n_seeds || rnd() % 16 == 0) {
			n = below(rnd() % 4 ? 64 : max_len + 1);
			for (size_t j = 0; j < n; j++)
				b[j] = (uint8_t)rnd();
		} else {
			const struct seed *s = &seeds[below(n_seeds)];

			n = s->n < max_len ? s->n : max_len;
			memcpy(b, s->b, n);
		}
		for (unsigned m = 1 + (unsigned)below(rnd() % 4 ? 4 : 16); m; m--)
			mutate(b, &n);
		run(b, n);
		execs++;
	}
	el = now_s() - t0;
	printf("driver: %" PRIu64 " executions in %.1f s (%.0f/s)\n", execs, el,
	       el > 0 ? (double)execs / el : 0.0);
	free(b);
	for (size_t i = 0; i < n_seeds; i++)
		free(seeds[i].b);
	return 0;
}
