/*
 * t/unit_store.c - CUnit tests of the durable Raft log store (net/store.h).
 *
 * Every test works in a fresh mkdtemp directory that it removes at the
 * end, and damages files the way a crash or a bad disk would (cut, flip,
 * zero-fill) to check what recovery keeps and what it reports, and the
 * snapshots, their fallback and the compaction they allow.
 *
 * It must never touch anything outside its own temporary directory, and
 * never look inside struct store: everything it checks comes from the
 * public API and the files on disk.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "net/store.h"
#include "t/lib/cunit.h"

static char dir[64];
static char msg[STORE_MSG_MAX];

static void mkdir_fresh(void)
{
	strcpy(dir, "/tmp/unit_store.XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
}

static void rm_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(dir);
}

static struct store *open_store(uint64_t seg_bytes)
{
	struct store_config cfg = { .dir = dir, .segment_bytes = seg_bytes };
	struct store *s = NULL;

	CU_ASSERT_EQUAL_FATAL(store_open(&cfg, &s, msg, sizeof(msg)), 0);
	/* STORE_SHOW=1 prints the recovery messages for a human to read. */
	if (msg[0] && getenv("STORE_SHOW"))
		fprintf(stderr, "\n    recovery: %s\n", msg);
	return s;
}

/* Payload of entry i: deterministic, of varying length. */
static uint32_t payload(uint64_t i, uint8_t *buf)
{
	uint32_t len = (uint32_t)(i * 7 % 50);

	for (uint32_t k = 0; k < len; k++)
		buf[k] = (uint8_t)(i + k);
	return len;
}

static uint64_t term_of(uint64_t i)
{
	return 1 + i / 10;
}

static void append_range(struct store *s, uint64_t from, uint64_t to)
{
	uint8_t b[64];

	for (uint64_t i = from; i <= to; i++) {
		uint32_t len = payload(i, b);

		CU_ASSERT_EQUAL_FATAL(store_append(s, i, term_of(i),
						   (uint8_t)(i & 1), b, len), 0);
	}
}

/* Checks the loaded view is exactly entries 1..n as append_range made. */
static void check_loaded(struct store *s, uint64_t n)
{
	uint64_t got;
	const struct store_entry *e = store_loaded(s, &got);
	uint8_t b[64];

	CU_ASSERT_EQUAL_FATAL(got, n);
	CU_ASSERT_EQUAL(store_last_index(s), n);
	for (uint64_t i = 1; i <= n; i++) {
		uint32_t len = payload(i, b);

		CU_ASSERT_EQUAL_FATAL(e[i - 1].term, term_of(i));
		CU_ASSERT_EQUAL(e[i - 1].type, i & 1);
		CU_ASSERT_EQUAL_FATAL(e[i - 1].len, len);
		CU_ASSERT(len == 0 || memcmp(e[i - 1].buf, b, len) == 0);
	}
}

static char *seg_path(uint64_t first)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/log-%016" PRIx64, dir, first);
	return p;
}

static off_t file_size(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 ? st.st_size : -1;
}

static int count_segments(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += strncmp(e->d_name, "log-", 4) == 0;
	closedir(d);
	return n;
}

static void test_crc32c(void)
{
	CU_ASSERT_EQUAL(store_crc32c(0, "123456789", 9), 0xe3069283u);
	CU_ASSERT_EQUAL(store_crc32c(store_crc32c(0, "1234", 4), "56789", 5),
			0xe3069283u);
	CU_ASSERT_EQUAL(store_crc32c(0, "", 0), 0);
}

static void test_empty_dir(void)
{
	struct store *s;
	uint64_t t, v, n;

	mkdir_fresh();
	s = open_store(0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	CU_ASSERT_EQUAL(store_last_index(s), 0);
	CU_ASSERT_EQUAL(store_last_term(s), 0);
	CU_ASSERT_PTR_NULL(store_loaded(s, &n));
	CU_ASSERT_EQUAL(n, 0);
	store_hardstate(s, &t, &v);
	CU_ASSERT_EQUAL(t, 0);
	CU_ASSERT_EQUAL(v, 0);
	CU_ASSERT_EQUAL(store_sync(s), 0);
	store_close(s);
	rm_dir();

	/* A missing data dir is created. */
	mkdir_fresh();
	rmdir(dir);
	s = open_store(0);
	CU_ASSERT_EQUAL(store_last_index(s), 0);
	store_close(s);
	rm_dir();
}

static void test_roundtrip(void)
{
	struct store *s;

	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 100);
	CU_ASSERT_EQUAL(store_sync(s), 100);
	store_close(s);
	s = open_store(0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	check_loaded(s, 100);
	CU_ASSERT_EQUAL(store_last_term(s), term_of(100));
	/* Appending continues after a reopen. */
	store_loaded_free(s);
	append_range(s, 101, 120);
	CU_ASSERT_EQUAL(store_sync(s), 120);
	store_close(s);
	s = open_store(0);
	check_loaded(s, 120);
	store_close(s);
	rm_dir();
}

static void test_bad_append(void)
{
	struct store *s;
	uint8_t b = 0;

	mkdir_fresh();
	s = open_store(0);
	CU_ASSERT_EQUAL(store_append(s, 2, 1, 0, &b, 1), -EINVAL);
	CU_ASSERT_EQUAL(store_append(s, 1, 5, 0, &b, 1), 0);
	CU_ASSERT_EQUAL(store_append(s, 2, 4, 0, &b, 1), -EINVAL);
	CU_ASSERT_EQUAL(store_append(s, 2, 5, 0, NULL, STORE_PAYLOAD_MAX + 1),
			-E2BIG);
	CU_ASSERT_EQUAL(store_truncate(s, 0), -EINVAL);
	CU_ASSERT_EQUAL(store_truncate(s, 9), 0);
	CU_ASSERT_EQUAL(store_last_index(s), 1);
	store_close(s);
	rm_dir();
}

static void test_hardstate(void)
{
	struct store_config cfg = { .dir = NULL };
	struct store *s, *s2 = NULL;
	uint64_t t, v;
	char p[128];
	int fd;

	mkdir_fresh();
	s = open_store(0);
	CU_ASSERT_EQUAL(store_set_hardstate(s, 7, 3), 0);
	CU_ASSERT_EQUAL(store_sync(s), 0);
	CU_ASSERT_EQUAL(store_set_hardstate(s, 8, 0), 0);
	store_close(s);                /* unsynced: lost as in a crash */
	s = open_store(0);
	store_hardstate(s, &t, &v);
	CU_ASSERT_EQUAL(t, 7);
	CU_ASSERT_EQUAL(v, 3);
	/* A second opener of the same directory is refused. */
	cfg.dir = dir;
	CU_ASSERT_EQUAL(store_open(&cfg, &s2, msg, sizeof(msg)), -EBUSY);
	CU_ASSERT_EQUAL(store_set_hardstate(s, 9, 2), 0);
	CU_ASSERT_EQUAL(store_sync(s), 0);
	store_close(s);
	s = open_store(0);
	store_hardstate(s, &t, &v);
	CU_ASSERT_EQUAL(t, 9);
	CU_ASSERT_EQUAL(v, 2);
	store_close(s);

	/* A damaged state file is refused, not guessed at. */
	snprintf(p, sizeof(p), "%s/state", dir);
	fd = open(p, O_WRONLY);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pwrite(fd, "X", 1, 9), 1);
	close(fd);
	CU_ASSERT_EQUAL(store_open(&cfg, &s2, msg, sizeof(msg)), -EUCLEAN);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "state"));
	rm_dir();
}

/* The driver's small files: replaced whole, durable at once (no sync
 * needed), read back after a reopen; no path escapes the directory. */
static void test_small_files(void)
{
	struct store *s;
	char buf[16];

	mkdir_fresh();
	s = open_store(0);
	CU_ASSERT_EQUAL(store_get_file(s, "epoch", buf, sizeof(buf)), -ENOENT);
	CU_ASSERT_EQUAL(store_put_file(s, "epoch", "12345\n", 6), 0);
	CU_ASSERT_EQUAL(store_put_file(s, "epoch", "99\n", 3), 0);
	store_close(s);                /* no store_sync: must be there anyway */
	s = open_store(0);
	CU_ASSERT_EQUAL(store_get_file(s, "epoch", buf, sizeof(buf)), 3);
	CU_ASSERT_STRING_EQUAL(buf, "99\n");
	/* Truncated to the buffer, always terminated. */
	CU_ASSERT_EQUAL(store_get_file(s, "epoch", buf, 2), 1);
	CU_ASSERT_STRING_EQUAL(buf, "9");
	CU_ASSERT_EQUAL(store_put_file(s, "../x", "a", 1), -EINVAL);
	CU_ASSERT_EQUAL(store_get_file(s, "../x", buf, sizeof(buf)), -EINVAL);
	CU_ASSERT_EQUAL(access("/tmp/x.tmp", F_OK), -1);
	store_close(s);
	rm_dir();
}

static void test_truncate_append(void)
{
	struct store *s;
	uint8_t b[4] = { 9, 9, 9, 9 };
	uint64_t n;
	const struct store_entry *e;

	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 50);
	CU_ASSERT_EQUAL(store_sync(s), 50);
	CU_ASSERT_EQUAL(store_truncate(s, 31), 0);
	CU_ASSERT_EQUAL(store_last_index(s), 30);
	CU_ASSERT_EQUAL(store_last_term(s), term_of(30));
	CU_ASSERT_EQUAL(store_append(s, 31, 99, 0, b, 4), 0);
	CU_ASSERT_EQUAL(store_sync(s), 31);
	/* Truncating unsynced records only: they never reach the disk. */
	CU_ASSERT_EQUAL(store_append(s, 32, 99, 0, b, 4), 0);
	CU_ASSERT_EQUAL(store_truncate(s, 32), 0);
	CU_ASSERT_EQUAL(store_sync(s), 31);
	store_close(s);
	s = open_store(0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	e = store_loaded(s, &n);
	CU_ASSERT_EQUAL_FATAL(n, 31);
	CU_ASSERT_EQUAL(e[29].term, term_of(30));
	CU_ASSERT_EQUAL(e[30].term, 99);
	CU_ASSERT_EQUAL(e[30].len, 4);
	/* Truncate everything, then the log restarts at 1. */
	CU_ASSERT_EQUAL(store_truncate(s, 1), 0);
	CU_ASSERT_EQUAL(store_last_index(s), 0);
	CU_ASSERT_EQUAL(store_sync(s), 0);
	append_range(s, 1, 3);
	CU_ASSERT_EQUAL(store_sync(s), 3);
	store_close(s);
	s = open_store(0);
	check_loaded(s, 3);
	store_close(s);
	rm_dir();
}

/* Index of the first record of the last segment, by listing. */
static uint64_t last_seg_first(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t best = 0;

	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, "log-", 4) == 0) {
			uint64_t v = strtoull(e->d_name + 4, NULL, 16);

			if (v > best)
				best = v;
		}
	}
	if (d)
		closedir(d);
	return best;
}

static void test_segments(void)
{
	struct store *s;
	struct store_stats st;
	int before;

	mkdir_fresh();
	s = open_store(512);
	append_range(s, 1, 200);
	CU_ASSERT_EQUAL(store_sync(s), 200);
	store_stats(s, &st);
	CU_ASSERT(st.segments > 5);
	CU_ASSERT_EQUAL((int)st.segments, count_segments());
	store_close(s);
	s = open_store(512);
	CU_ASSERT_STRING_EQUAL(msg, "");
	check_loaded(s, 200);
	before = count_segments();
	/* Truncate in the middle of the log: later segments go. */
	CU_ASSERT_EQUAL(store_truncate(s, 57), 0);
	CU_ASSERT(count_segments() < before);
	store_stats(s, &st);
	CU_ASSERT_EQUAL((int)st.segments, count_segments());
	append_range(s, 57, 80);
	CU_ASSERT_EQUAL(store_sync(s), 80);
	store_close(s);
	s = open_store(512);
	CU_ASSERT_STRING_EQUAL(msg, "");
	check_loaded(s, 80);
	store_close(s);

	/* Truncating at a segment's first index removes that segment. */
	s = open_store(512);
	{
		uint64_t f = last_seg_first();

		before = count_segments();
		CU_ASSERT_FATAL(f > 1);
		CU_ASSERT_EQUAL(store_truncate(s, f), 0);
		CU_ASSERT_EQUAL(count_segments(), before - 1);
		CU_ASSERT_EQUAL(file_size(seg_path(f)), -1);
		CU_ASSERT_EQUAL(store_last_index(s), f - 1);
		append_range(s, f, 90);
		CU_ASSERT_EQUAL(store_sync(s), 90);
		store_close(s);
		s = open_store(512);
		CU_ASSERT_STRING_EQUAL(msg, "");
		check_loaded(s, 90);
		store_close(s);
	}
	rm_dir();
}

static void test_torn_tail(void)
{
	struct store *s;
	const char *p;
	off_t size;

	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 10);
	CU_ASSERT_EQUAL(store_sync(s), 10);
	store_close(s);
	p = seg_path(1);
	size = file_size(p);
	CU_ASSERT_EQUAL(truncate(p, size - 5), 0);
	s = open_store(0);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "torn record"));
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "index 10"));
	check_loaded(s, 9);
	/* The torn bytes are gone, and appending continues cleanly. */
	store_loaded_free(s);
	append_range(s, 10, 12);
	CU_ASSERT_EQUAL(store_sync(s), 12);
	store_close(s);
	s = open_store(0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	check_loaded(s, 12);
	store_close(s);
	rm_dir();

	/* A header cut short. */
	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 4);
	CU_ASSERT_EQUAL(store_sync(s), 4);
	store_close(s);
	CU_ASSERT_EQUAL(truncate(seg_path(1), file_size(seg_path(1)) +
				 10 - (off_t)(STORE_REC_HDR + payload(4, (uint8_t[64]){0}))), 0);
	s = open_store(0);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "torn record header"));
	check_loaded(s, 3);
	store_close(s);
	rm_dir();
}

/* fdatasync is wrapped (-Wl,--wrap=fdatasync): while `roll_watch` is
 * set, each call checks that the file it syncs is the newest segment in
 * the directory.  A roll must sync the old tail before it creates the
 * next segment: a crash in between must not leave an empty new segment
 * (its name made durable by any journal commit) after a torn old tail,
 * which recovery rightly takes for damage, not a torn tail. */
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
static int roll_watch, roll_syncs, roll_bad;

int __wrap_fdatasync(int fd)
{
	if (roll_watch) {
		struct stat a, b;
		uint64_t f = last_seg_first();
		char p[128];

		snprintf(p, sizeof(p), "%s/log-%016" PRIx64, dir, f);
		roll_syncs++;
		if (fstat(fd, &a) < 0 || stat(p, &b) < 0 || a.st_ino != b.st_ino)
			roll_bad++;
	}
	return __real_fdatasync(fd);
}

static void open_refused(uint64_t seg_bytes, struct store_damage *d);

/* fsync is wrapped too: while `cut_watch` is set it counts the calls on
 * directories and on files. */
int __real_fsync(int fd);
int __wrap_fsync(int fd);
static int cut_watch, cut_dir_syncs, cut_file_syncs;

int __wrap_fsync(int fd)
{
	struct stat st;

	if (cut_watch && fstat(fd, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			cut_dir_syncs++;
		else
			cut_file_syncs++;
	}
	return __real_fsync(fd);
}

/* A Raft conflict truncation is durable before store_truncate() returns.
 * Otherwise the records appended next overwrite the same place while the
 * shorter size (or the unlink of the later segments) is not durable: a
 * crash then leaves the new records followed by old valid ones (the cut
 * undone), or the old next segment beside the new records, which
 * recovery must take for damage, not a torn tail.  The image below is
 * such a crash: it is refused, so it must never happen. */
static void test_truncate_durable_first(void)
{
	struct store *s;
	uint8_t b[4] = { 9, 9, 9, 9 };
	uint8_t *old;
	off_t oldlen, newlen;
	struct store_damage d;
	FILE *f;

	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 40);
	CU_ASSERT_EQUAL(store_sync(s), 40);
	cut_watch = 1;
	cut_file_syncs = cut_dir_syncs = 0;
	CU_ASSERT_EQUAL(store_truncate(s, 15), 0);
	cut_watch = 0;
	CU_ASSERT(cut_file_syncs >= 1);
	for (uint64_t i = 15; i <= 17; i++)
		CU_ASSERT_EQUAL(store_append(s, i, 99, 0, b, 4), 0);
	CU_ASSERT_EQUAL(store_sync(s), 17);
	store_close(s);
	rm_dir();

	/* Across segments: the later ones are unlinked durably too. */
	mkdir_fresh();
	s = open_store(512);
	append_range(s, 1, 100);
	CU_ASSERT_EQUAL(store_sync(s), 100);
	cut_watch = 1;
	cut_file_syncs = cut_dir_syncs = 0;
	CU_ASSERT_EQUAL(store_truncate(s, 30), 0);
	cut_watch = 0;
	CU_ASSERT(cut_dir_syncs >= 1);
	store_close(s);
	rm_dir();

	/* The crash image: the cut not durable, the new records written. */
	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 40);
	CU_ASSERT_EQUAL(store_sync(s), 40);
	store_close(s);
	oldlen = file_size(seg_path(1));
	old = malloc((size_t)oldlen);
	CU_ASSERT_PTR_NOT_NULL_FATAL(old);
	f = fopen(seg_path(1), "rb");
	CU_ASSERT_FATAL(f && fread(old, 1, (size_t)oldlen, f) == (size_t)oldlen);
	fclose(f);
	s = open_store(0);
	CU_ASSERT_EQUAL(store_truncate(s, 15), 0);
	for (uint64_t i = 15; i <= 17; i++)
		CU_ASSERT_EQUAL(store_append(s, i, 99, 0, b, 4), 0);
	CU_ASSERT_EQUAL(store_sync(s), 17);
	store_close(s);
	newlen = file_size(seg_path(1));
	CU_ASSERT_FATAL(newlen < oldlen);
	f = fopen(seg_path(1), "r+b");
	CU_ASSERT_FATAL(f && fseeko(f, newlen, SEEK_SET) == 0);
	CU_ASSERT(fwrite(old + newlen, 1, (size_t)(oldlen - newlen), f) ==
		  (size_t)(oldlen - newlen));
	fclose(f);
	free(old);
	open_refused(0, &d);
	CU_ASSERT_EQUAL(d.kind, STORE_DAMAGE_LOG);
	rm_dir();
}

static void test_roll_syncs_before_create(void)
{
	struct store *s;

	mkdir_fresh();
	s = open_store(512);
	roll_watch = 1;
	roll_syncs = roll_bad = 0;
	append_range(s, 1, 100);       /* rolls, no store_sync() */
	CU_ASSERT_EQUAL(store_sync(s), 100);
	roll_watch = 0;
	CU_ASSERT(roll_syncs > 3);
	CU_ASSERT_EQUAL(roll_bad, 0);
	store_close(s);
	s = open_store(512);
	CU_ASSERT_STRING_EQUAL(msg, "");
	check_loaded(s, 100);
	store_close(s);
	rm_dir();
}

/* Offset of the record of `index` in segment `first` (walking lengths). */
static off_t rec_off(uint64_t first, uint64_t index)
{
	int fd = open(seg_path(first), O_RDONLY);
	off_t off = 0;
	uint8_t l[4];

	CU_ASSERT_FATAL(fd >= 0);
	for (uint64_t i = first; i < index; i++) {
		CU_ASSERT_FATAL(pread(fd, l, 4, off) == 4);
		off += 8 + (off_t)(l[0] | l[1] << 8 | l[2] << 16 |
				   (uint32_t)l[3] << 24);
	}
	close(fd);
	return off;
}

static void flip_byte(const char *p, off_t off);
static int list_segs(uint64_t *v, int max);
static int count_prefix(const char *prefix);
static void save_snap(struct store *s, uint64_t index, size_t len);
static void check_snap(struct store *s, uint64_t index, size_t len);
static void check_loaded_range(struct store *s, uint64_t first, uint64_t last);

/* Opens expecting a refusal: -EUCLEAN, nothing changed on disk. */
static void open_refused(uint64_t seg_bytes, struct store_damage *d)
{
	struct store_config cfg = { .dir = dir, .segment_bytes = seg_bytes,
				    .damage = d };
	struct store *s = NULL;

	CU_ASSERT_EQUAL_FATAL(store_open(&cfg, &s, msg, sizeof(msg)), -EUCLEAN);
	CU_ASSERT_PTR_NULL(s);
	if (getenv("STORE_SHOW"))
		fprintf(stderr, "\n    refused: %s\n", msg);
}

/* Opens accepting the loss of everything from index `cut`. */
static struct store *open_accept(uint64_t seg_bytes, uint64_t cut)
{
	struct store_config cfg = { .dir = dir, .segment_bytes = seg_bytes,
				    .accept_cut = cut };
	struct store *s = NULL;

	CU_ASSERT_EQUAL_FATAL(store_open(&cfg, &s, msg, sizeof(msg)), 0);
	if (getenv("STORE_SHOW"))
		fprintf(stderr, "\n    accepted: %s\n", msg);
	return s;
}

/* A flipped byte in a record no snapshot covers, in a segment that is not
 * the last: not a torn write.  Refused with the file, offset, index and
 * the loss; nothing is cut; accepting exactly that loss cuts it. */
static void test_flipped_byte(void)
{
	struct store_damage d;
	struct store *s;
	uint64_t v[64], first;
	off_t off, size;
	int segs;
	char name[40];

	mkdir_fresh();
	s = open_store(1024);
	append_range(s, 1, 100);
	CU_ASSERT_EQUAL(store_sync(s), 100);
	store_close(s);
	segs = list_segs(v, 64);
	CU_ASSERT_FATAL(segs > 3);
	first = v[2];
	off = rec_off(first, first + 1);
	size = file_size(seg_path(first));
	flip_byte(seg_path(first), off + 16);
	open_refused(1024, &d);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "crc mismatch"));
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "not a torn write"));
	snprintf(name, sizeof(name), "log-%016" PRIx64, first);
	CU_ASSERT_STRING_EQUAL(d.file, name);
	CU_ASSERT_EQUAL(d.kind, STORE_DAMAGE_LOG);
	CU_ASSERT_EQUAL(d.offset, (uint64_t)off);
	CU_ASSERT_EQUAL(d.index, first + 1);
	CU_ASSERT_EQUAL(d.lost_from, first + 1);
	CU_ASSERT_EQUAL(d.lost_to, 100);
	CU_ASSERT_EQUAL(file_size(seg_path(first)), size);
	CU_ASSERT_EQUAL(count_segments(), segs);
	/* Accepting another loss than the one found changes nothing. */
	{
		struct store_config cfg = { .dir = dir, .segment_bytes = 1024,
					    .accept_cut = first };
		CU_ASSERT_EQUAL(store_open(&cfg, &s, msg, sizeof(msg)), -EUCLEAN);
	}
	s = open_accept(1024, first + 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "accepted"));
	check_loaded(s, first);
	CU_ASSERT_EQUAL(file_size(seg_path(first)), off);
	CU_ASSERT_EQUAL(count_segments(), 3);
	CU_ASSERT_EQUAL(count_prefix("lost-log-"), segs - 2);
	store_loaded_free(s);
	append_range(s, first + 1, first + 40);
	CU_ASSERT_EQUAL(store_sync(s), (int64_t)first + 40);
	store_close(s);
	s = open_store(1024);
	CU_ASSERT_STRING_EQUAL(msg, "");
	check_loaded(s, first + 40);
	store_close(s);
	rm_dir();
}

/* A bad record followed by valid ones in the last segment is damage,
 * not a torn tail: refused. */
static void test_bad_then_good(void)
{
	struct store_damage d;
	struct store *s;
	off_t off, size;

	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 30);
	CU_ASSERT_EQUAL(store_sync(s), 30);
	store_close(s);
	size = file_size(seg_path(1));
	off = rec_off(1, 12);
	flip_byte(seg_path(1), off + 30);
	open_refused(0, &d);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "followed by valid records"));
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "entries 12 to 30"));
	CU_ASSERT_EQUAL(d.offset, (uint64_t)off);
	CU_ASSERT_EQUAL(d.index, 12);
	CU_ASSERT_EQUAL(d.lost_to, 30);
	/* A damaged length field too (the scan finds the next record). */
	flip_byte(seg_path(1), off + 30);
	flip_byte(seg_path(1), off + 1);
	open_refused(0, &d);
	CU_ASSERT_EQUAL(d.index, 12);
	CU_ASSERT_EQUAL(file_size(seg_path(1)), size);
	rm_dir();
}

/* A flipped byte in a record the snapshot covers: skipped and said; the
 * entries after the snapshot all load. */
static void test_covered_flip(void)
{
	struct store *s;
	uint64_t v[64], first = 0;
	int segs;

	mkdir_fresh();
	s = open_store(1024);
	append_range(s, 1, 100);
	CU_ASSERT_EQUAL(store_sync(s), 100);
	save_snap(s, 50, 10);
	CU_ASSERT_EQUAL(store_compact(s, 50), 0);
	store_close(s);
	segs = list_segs(v, 64);
	for (int i = 0; i < segs && v[i] <= 51; i++)
		first = v[i];
	CU_ASSERT_FATAL(first > 0 && first < 50);
	flip_byte(seg_path(first), rec_off(first, first) + 20);
	s = open_store(1024);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "skipped"));
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "covers it"));
	check_snap(s, 50, 10);
	check_loaded_range(s, 51, 100);
	store_loaded_free(s);
	append_range(s, 101, 110);
	CU_ASSERT_EQUAL(store_sync(s), 110);
	store_close(s);
	s = open_store(1024);
	check_loaded_range(s, 51, 110);
	store_close(s);
	rm_dir();
}

static void test_zero_tail(void)
{
	struct store *s;
	static uint8_t zeros[4096];
	int fd;

	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 5);
	CU_ASSERT_EQUAL(store_sync(s), 5);
	store_close(s);
	fd = open(seg_path(1), O_WRONLY | O_APPEND);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
	close(fd);
	s = open_store(0);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "zero-filled tail of 4096 bytes"));
	check_loaded(s, 5);
	store_close(s);
	s = open_store(0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	check_loaded(s, 5);
	store_close(s);
	rm_dir();
}

static void test_gap_and_missing_first(void)
{
	struct store_damage d;
	struct store *s = NULL;
	struct store_config cfg = { .dir = NULL };
	uint64_t v[64], f;
	char p2[128];
	int segs;

	mkdir_fresh();
	cfg.dir = dir;
	s = open_store(512);
	append_range(s, 1, 60);
	CU_ASSERT_EQUAL(store_sync(s), 60);
	store_close(s);
	segs = list_segs(v, 64);
	CU_ASSERT_FATAL(segs >= 4);
	/* A deleted middle segment: refused, naming the gap. */
	f = v[1];
	CU_ASSERT_EQUAL(unlink(seg_path(f)), 0);
	open_refused(512, &d);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "a segment is missing"));
	CU_ASSERT_EQUAL(d.index, f);
	CU_ASSERT_EQUAL(d.lost_from, f);
	CU_ASSERT_EQUAL(d.lost_to, 60);
	CU_ASSERT_EQUAL(count_segments(), segs - 1);
	s = open_accept(512, f);
	check_loaded(s, f - 1);
	CU_ASSERT_EQUAL(count_segments(), 1);
	store_close(s);
	rm_dir();

	/* A log that does not start at 1 is refused and left alone. */
	mkdir_fresh();
	s = open_store(512);
	append_range(s, 1, 60);
	CU_ASSERT_EQUAL(store_sync(s), 60);
	store_close(s);
	snprintf(p2, sizeof(p2), "%s", seg_path(1));
	CU_ASSERT_EQUAL(rename(p2, seg_path(0x100000)), 0);
	CU_ASSERT_EQUAL(store_open(&cfg, &s, msg, sizeof(msg)), -EUCLEAN);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "not 1"));
	CU_ASSERT_EQUAL(file_size(seg_path(0x100000)) > 0, 1);
	rm_dir();
}

/* A segment that is not the last, cut short at a record boundary (a gap)
 * or inside a record: refused, not cut. */
static void test_truncated_segment(void)
{
	struct store_damage d;
	struct store *s;
	uint64_t v[64];
	int segs;

	for (int mid = 0; mid < 2; mid++) {
		off_t at;

		mkdir_fresh();
		s = open_store(512);
		append_range(s, 1, 60);
		CU_ASSERT_EQUAL(store_sync(s), 60);
		store_close(s);
		segs = list_segs(v, 64);
		CU_ASSERT_FATAL(segs >= 4);
		at = rec_off(v[1], v[1] + 1) + (mid ? 7 : 0);
		CU_ASSERT_EQUAL(truncate(seg_path(v[1]), at), 0);
		open_refused(512, &d);
		CU_ASSERT_EQUAL(d.kind, STORE_DAMAGE_LOG);
		CU_ASSERT_EQUAL(d.index, v[1] + 1);
		CU_ASSERT_EQUAL(d.lost_to, 60);
		CU_ASSERT_PTR_NOT_NULL(strstr(msg, mid ? "not the last"
						   : "cut short"));
		CU_ASSERT_EQUAL(file_size(seg_path(v[1])), at);
		CU_ASSERT_EQUAL(count_segments(), segs);
		rm_dir();
	}
}

/* The state file: written when the store is created; missing or damaged
 * beside a log, refused (term and vote unknown) until the admin accepts
 * rebuilding it. */
static void test_state_damage(void)
{
	struct store_damage d;
	struct store_config cfg = { .dir = NULL };
	struct store *s;
	char p[128];
	uint64_t t, v;

	mkdir_fresh();
	cfg.dir = dir;
	snprintf(p, sizeof(p), "%s/state", dir);
	s = open_store(0);
	store_close(s);
	CU_ASSERT(file_size(p) > 0);
	s = open_store(0);
	append_range(s, 1, 25);
	CU_ASSERT_EQUAL(store_set_hardstate(s, term_of(25), 1), 0);
	CU_ASSERT_EQUAL(store_sync(s), 25);
	store_close(s);
	for (int missing = 0; missing < 2; missing++) {
		if (missing) {
			CU_ASSERT_EQUAL(unlink(p), 0);
		} else {
			flip_byte(p, 10);
		}
		open_refused(0, &d);
		CU_ASSERT_EQUAL(d.kind, STORE_DAMAGE_STATE);
		CU_ASSERT_STRING_EQUAL(d.file, "state");
		CU_ASSERT_PTR_NOT_NULL(strstr(msg, missing ? "missing"
						       : "crc mismatch"));
		CU_ASSERT_EQUAL(file_size(seg_path(1)), rec_off(1, 26));
	}
	cfg.accept_state = 1;
	CU_ASSERT_EQUAL(store_open(&cfg, &s, msg, sizeof(msg)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "rebuilt"));
	store_hardstate(s, &t, &v);
	CU_ASSERT_EQUAL(t, term_of(25));
	CU_ASSERT_EQUAL(v, 0);
	check_loaded(s, 25);
	store_close(s);
	s = open_store(0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	store_close(s);
	/* Everything gone from a directory the driver knows was used. */
	CU_ASSERT_EQUAL(unlink(p), 0);
	CU_ASSERT_EQUAL(unlink(seg_path(1)), 0);
	cfg.accept_state = 0;
	cfg.existing = 1;
	cfg.damage = &d;
	CU_ASSERT_EQUAL(store_open(&cfg, &s, msg, sizeof(msg)), -EUCLEAN);
	CU_ASSERT_EQUAL(d.kind, STORE_DAMAGE_STATE);
	CU_ASSERT_EQUAL(file_size(p), -1);
	rm_dir();
}

/* The index floor: reserved ahead of every synced index, in the state
 * file, before store_sync() reports it; survives a log cut cleanly. */
static void test_floor(void)
{
	struct store_config cfg = { .floor_step = 100 };
	struct store *s = NULL;
	uint64_t mark, floor;

	mkdir_fresh();
	cfg.dir = dir;
	CU_ASSERT_EQUAL_FATAL(store_open(&cfg, &s, msg, sizeof(msg)), 0);
	store_floor(s, &mark, &floor);
	CU_ASSERT_EQUAL(floor, 0);
	append_range(s, 1, 10);
	CU_ASSERT_EQUAL(store_sync(s), 10);
	store_floor(s, &mark, &floor);
	CU_ASSERT_EQUAL(mark, 10);
	CU_ASSERT_EQUAL(floor, 110);
	append_range(s, 11, 110);
	CU_ASSERT_EQUAL(store_sync(s), 110);
	store_floor(s, &mark, &floor);
	CU_ASSERT_EQUAL(floor, 110);        /* not above: no state write */
	append_range(s, 111, 111);
	CU_ASSERT_EQUAL(store_sync(s), 111);
	store_close(s);
	/* The whole log goes (a deleted segment): the floor stays. */
	CU_ASSERT_EQUAL(unlink(seg_path(1)), 0);
	CU_ASSERT_EQUAL_FATAL(store_open(&cfg, &s, msg, sizeof(msg)), 0);
	store_floor(s, &mark, &floor);
	CU_ASSERT_EQUAL(mark, 111);
	CU_ASSERT_EQUAL(floor, 211);
	CU_ASSERT_EQUAL(store_last_index(s), 0);
	store_close(s);
	rm_dir();
}

/* pwrite is wrapped: while `nospc_name` is set, a write to a file whose
 * name ends so fails with ENOSPC (a full disk at that one file). */
ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off);
static const char *nospc_name;

ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (nospc_name) {
		char l[64], p[256];
		ssize_t k;
		size_t nl = strlen(nospc_name);

		snprintf(l, sizeof(l), "/proc/self/fd/%d", fd);
		k = readlink(l, p, sizeof(p) - 1);
		if (k >= (ssize_t)nl && memcmp(p + k - (ssize_t)nl, nospc_name, nl) == 0) {
			errno = ENOSPC;
			return -1;
		}
	}
	return __real_pwrite(fd, buf, n, off);
}

/* The state write refused for space after the records were synced, then
 * a crash: the log holds records above the floor on disk.  store_open()
 * reports every record it loads as synced (the driver hands out tokens
 * from them at once), so it raises the floor above them first: else a
 * later loss of the log's end would let tokens come back. */
static void test_floor_after_refused_state_write(void)
{
	struct store_config cfg = { .floor_step = 4 };
	struct store *s = NULL;
	uint64_t mark, floor;

	mkdir_fresh();
	cfg.dir = dir;
	CU_ASSERT_EQUAL_FATAL(store_open(&cfg, &s, msg, sizeof(msg)), 0);
	append_range(s, 1, 3);
	CU_ASSERT_EQUAL(store_sync(s), 3);
	append_range(s, 4, 9);
	nospc_name = "/state.tmp";
	CU_ASSERT_EQUAL(store_sync(s), -ENOSPC);
	nospc_name = NULL;
	store_close(s);                /* a crash before the retry */
	CU_ASSERT_EQUAL_FATAL(store_open(&cfg, &s, msg, sizeof(msg)), 0);
	CU_ASSERT_EQUAL(store_last_index(s), 9);
	store_floor(s, &mark, &floor);
	CU_ASSERT(floor >= 9);
	store_close(s);
	CU_ASSERT_EQUAL_FATAL(store_open(&cfg, &s, msg, sizeof(msg)), 0);
	store_floor(s, &mark, &floor);
	CU_ASSERT(floor >= 9);         /* durable, not only in memory */
	store_close(s);
	rm_dir();

	/* Refused for space while appending: buffered, then synced. */
	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 5);
	CU_ASSERT_EQUAL(store_sync(s), 5);
	nospc_name = "/log-0000000000000001";
	append_range(s, 6, 10);
	CU_ASSERT_EQUAL(store_sync(s), -ENOSPC);
	nospc_name = NULL;
	CU_ASSERT_EQUAL(store_sync(s), 10);
	store_close(s);
	s = open_store(0);
	check_loaded(s, 10);
	store_close(s);
	rm_dir();
}

/* Crash images of the moments between two steps: a new segment created
 * (empty, or zero-filled by preallocation) but nothing written to it yet;
 * state.tmp written but not renamed.  Each is a torn end, not damage. */
static void test_crash_between_steps(void)
{
	struct store *s;
	uint64_t term, vote;
	FILE *f;

	mkdir_fresh();
	s = open_store(512);
	append_range(s, 1, 40);
	CU_ASSERT_EQUAL(store_sync(s), 40);
	store_set_hardstate(s, 7, 2);
	CU_ASSERT_EQUAL(store_sync(s), 40);
	store_close(s);
	/* The roll to index 41 happened, its first write did not. */
	f = fopen(seg_path(41), "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fclose(f);
	/* A state write that never got renamed. */
	{
		char p[128];

		snprintf(p, sizeof(p), "%s/state.tmp", dir);
		f = fopen(p, "wb");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		fputs("half a state", f);
		fclose(f);
	}
	s = open_store(512);
	check_loaded(s, 40);
	store_hardstate(s, &term, &vote);
	CU_ASSERT(term == 7 && vote == 2);
	store_loaded_free(s);
	append_range(s, 41, 45);
	CU_ASSERT_EQUAL(store_sync(s), 45);
	store_close(s);
	/* The same with the new segment preallocated (zeros). */
	CU_ASSERT_EQUAL(truncate(seg_path(41), 0), 0);
	CU_ASSERT_EQUAL(truncate(seg_path(41), 4096), 0);
	s = open_store(512);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "zero-filled"));
	check_loaded(s, 40);
	store_close(s);
	rm_dir();
}

static void test_group_commit(void)
{
	struct store *s;
	struct store_stats st;

	mkdir_fresh();
	s = open_store(0);
	store_close(s);                /* the first state file is written */
	s = open_store(0);
	append_range(s, 1, 1000);
	CU_ASSERT_EQUAL(store_set_hardstate(s, 3, 1), 0);
	store_stats(s, &st);
	CU_ASSERT_EQUAL(st.fdatasyncs, 0);
	CU_ASSERT_EQUAL(store_sync(s), 1000);
	store_stats(s, &st);
	CU_ASSERT_EQUAL(st.fdatasyncs, 1);
	CU_ASSERT_EQUAL(st.syncs, 1);
	CU_ASSERT_EQUAL(st.appends, 1000);
	/* state file fsync + one directory fsync (new segment and rename) */
	CU_ASSERT_EQUAL(st.fsyncs, 2);
	/* Nothing new: no disk work. */
	CU_ASSERT_EQUAL(store_sync(s), 1000);
	store_stats(s, &st);
	CU_ASSERT_EQUAL(st.fdatasyncs, 1);
	CU_ASSERT_EQUAL(st.syncs, 1);
	append_range(s, 1001, 1500);
	CU_ASSERT_EQUAL(store_sync(s), 1500);
	store_stats(s, &st);
	CU_ASSERT_EQUAL(st.fdatasyncs, 2);
	CU_ASSERT_EQUAL(st.fsyncs, 2);  /* no new segment: no dir fsync */
	store_close(s);
	rm_dir();
}

/* ---- snapshots and compaction ------------------------------------------ */

/* Checks the loaded view is exactly entries first..last of append_range. */
static void check_loaded_range(struct store *s, uint64_t first, uint64_t last)
{
	uint64_t got;
	const struct store_entry *e = store_loaded(s, &got);
	uint8_t b[64];

	CU_ASSERT_EQUAL(store_first_index(s), first);
	CU_ASSERT_EQUAL_FATAL(got, last + 1 - first);
	CU_ASSERT_EQUAL(store_last_index(s), last);
	for (uint64_t i = first; i <= last; i++) {
		uint32_t len = payload(i, b);
		const struct store_entry *x = &e[i - first];

		CU_ASSERT_EQUAL_FATAL(x->term, term_of(i));
		CU_ASSERT_EQUAL(x->type, i & 1);
		CU_ASSERT_EQUAL_FATAL(x->len, len);
		CU_ASSERT(len == 0 || memcmp(x->buf, b, len) == 0);
	}
}

static char *snap_path(uint64_t index)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/snap-%016" PRIx64, dir, index);
	return p;
}

static int count_prefix(const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

/* Sorted first indexes of the segments on disk; returns the count. */
static int list_segs(uint64_t *v, int max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, "log-", 4) == 0 && n < max)
			v[n++] = strtoull(e->d_name + 4, NULL, 16);
	closedir(d);
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (v[j] < v[i]) {
				uint64_t t = v[i];

				v[i] = v[j];
				v[j] = t;
			}
	return n;
}

/* Snapshot data for index: recognisable bytes, len of them. */
static uint8_t *snap_data(uint64_t index, size_t len)
{
	uint8_t *d = malloc(len ? len : 1);

	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	for (size_t i = 0; i < len; i++)
		d[i] = (uint8_t)(index * 31 + i * 7 + (i >> 13));
	return d;
}

static void save_snap(struct store *s, uint64_t index, size_t len)
{
	uint8_t *d = snap_data(index, len);
	char meta[32];

	snprintf(meta, sizeof(meta), "conf@%" PRIu64, index);
	CU_ASSERT_EQUAL_FATAL(store_snapshot_save(s, index, term_of(index),
						  meta, (uint32_t)strlen(meta),
						  d, len), 0);
	free(d);
}

/* Takes the snapshot found at open and checks it is save_snap(index). */
static void check_snap(struct store *s, uint64_t index, size_t len)
{
	struct store_snapshot sn;
	uint8_t *d = snap_data(index, len);
	char meta[32];

	snprintf(meta, sizeof(meta), "conf@%" PRIu64, index);
	store_snapshot_take(s, &sn);
	CU_ASSERT_EQUAL(sn.index, index);
	CU_ASSERT_EQUAL(sn.term, term_of(index));
	CU_ASSERT_EQUAL(sn.meta_len, strlen(meta));
	CU_ASSERT(sn.meta && memcmp(sn.meta, meta, strlen(meta)) == 0);
	CU_ASSERT_EQUAL(sn.len, len);
	CU_ASSERT(len == 0 || (sn.data && memcmp(sn.data, d, len) == 0));
	free(sn.meta);
	free(sn.data);
	free(d);
	/* The caller owns it now: a second take finds nothing. */
	store_snapshot_take(s, &sn);
	CU_ASSERT_EQUAL(sn.index, 0);
	CU_ASSERT_PTR_NULL(sn.data);
	CU_ASSERT_PTR_NULL(sn.meta);
}

static void test_snapshot_roundtrip(void)
{
	struct store *s;
	struct store_stats st0, st;
	size_t big = 24u << 20;         /* tens of MB: many write calls */
	uint8_t b = 0;

	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 40);
	CU_ASSERT_EQUAL(store_sync(s), 40);
	CU_ASSERT_EQUAL(store_snapshot_save(s, 0, 1, NULL, 0, NULL, 0), -EINVAL);
	store_stats(s, &st0);
	save_snap(s, 30, big);
	store_stats(s, &st);
	CU_ASSERT_EQUAL(st.snapshots, st0.snapshots + 1);
	CU_ASSERT_EQUAL(st.fsyncs, st0.fsyncs + 2);   /* file + directory */
	CU_ASSERT_EQUAL(st.fdatasyncs, st0.fdatasyncs);
	CU_ASSERT_EQUAL(file_size(snap_path(30)),
			(off_t)(36 + strlen("conf@30") + big + 4));
	/* Not above the newest: refused, and nothing written. */
	CU_ASSERT_EQUAL(store_snapshot_save(s, 30, 3, &b, 1, &b, 1), -EINVAL);
	CU_ASSERT_EQUAL(store_snapshot_save(s, 29, 3, &b, 1, &b, 1), -EINVAL);
	/* The log is untouched by a save. */
	CU_ASSERT_EQUAL(store_last_index(s), 40);
	CU_ASSERT_EQUAL(count_segments(), 1);
	/* What the snapshot covers cannot be truncated any more. */
	CU_ASSERT_EQUAL(store_truncate(s, 30), -EINVAL);
	CU_ASSERT_EQUAL(store_truncate(s, 31), 0);
	CU_ASSERT_EQUAL(store_last_index(s), 30);
	append_range(s, 31, 45);
	CU_ASSERT_EQUAL(store_sync(s), 45);
	store_close(s);

	s = open_store(0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	check_snap(s, 30, big);
	check_loaded_range(s, 31, 45);
	CU_ASSERT_EQUAL(store_last_term(s), term_of(45));
	append_range(s, 46, 50);
	CU_ASSERT_EQUAL(store_sync(s), 50);
	store_close(s);
	s = open_store(0);
	check_loaded_range(s, 31, 50);
	store_close(s);
	CU_ASSERT_EQUAL(count_prefix("snap.tmp"), 0);
	rm_dir();
}

static void test_snapshot_retention(void)
{
	struct store *s;
	struct store_stats st;

	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 60);
	CU_ASSERT_EQUAL(store_sync(s), 60);
	save_snap(s, 10, 100);
	CU_ASSERT_EQUAL(count_prefix("snap-"), 1);
	save_snap(s, 20, 100);
	CU_ASSERT_EQUAL(count_prefix("snap-"), 2);
	save_snap(s, 30, 100);
	save_snap(s, 45, 0);
	CU_ASSERT_EQUAL(count_prefix("snap-"), 2);
	CU_ASSERT_EQUAL(file_size(snap_path(10)), -1);
	CU_ASSERT_EQUAL(file_size(snap_path(20)), -1);
	CU_ASSERT(file_size(snap_path(30)) > 0);
	CU_ASSERT(file_size(snap_path(45)) > 0);
	store_stats(s, &st);
	CU_ASSERT_EQUAL(st.snapshots, 4);
	store_close(s);
	s = open_store(0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	check_snap(s, 45, 0);
	check_loaded_range(s, 46, 60);
	store_close(s);
	rm_dir();
}

static void test_compact(void)
{
	struct store *s;
	struct store_stats st;
	uint64_t v[256], w[256];
	int n, m, keep = 0;

	mkdir_fresh();
	s = open_store(512);
	append_range(s, 1, 200);
	CU_ASSERT_EQUAL(store_sync(s), 200);
	n = list_segs(v, 256);
	CU_ASSERT_FATAL(n > 10);
	/* Nothing may go beyond a durable snapshot. */
	CU_ASSERT_EQUAL(store_compact(s, 50), -EINVAL);
	CU_ASSERT_EQUAL(count_segments(), n);
	save_snap(s, 100, 1000);
	CU_ASSERT_EQUAL(store_compact(s, 101), -EINVAL);
	CU_ASSERT_EQUAL(store_compact(s, 100), 0);
	/* Exactly the segments whose successor starts at or below 101. */
	m = list_segs(w, 256);
	for (int i = 0; i < n; i++)
		if (i + 1 == n || v[i + 1] - 1 > 100)
			CU_ASSERT_EQUAL(w[keep++], v[i]);
	CU_ASSERT_EQUAL(m, keep);
	CU_ASSERT_FATAL(keep < n);
	CU_ASSERT(w[0] <= 101);
	store_stats(s, &st);
	CU_ASSERT_EQUAL((int)st.segments, m);
	/* Compacting again is a no-op; appends go on as before. */
	CU_ASSERT_EQUAL(store_compact(s, 100), 0);
	CU_ASSERT_EQUAL(count_segments(), m);
	CU_ASSERT_EQUAL(store_last_index(s), 200);
	append_range(s, 201, 220);
	CU_ASSERT_EQUAL(store_sync(s), 220);
	/* Truncation still works on what is left. */
	CU_ASSERT_EQUAL(store_truncate(s, 211), 0);
	CU_ASSERT_EQUAL(store_sync(s), 210);
	store_close(s);

	s = open_store(512);
	CU_ASSERT_STRING_EQUAL(msg, "");
	check_snap(s, 100, 1000);
	check_loaded_range(s, 101, 210);
	store_loaded_free(s);
	append_range(s, 211, 300);
	CU_ASSERT_EQUAL(store_sync(s), 300);
	/* A compaction in a reopened store, up to a later snapshot that
	 * ends exactly where a segment does: that segment goes too. */
	n = list_segs(v, 256);
	{
		uint64_t f = 0;

		for (int i = 0; i < n && !f; i++)
			if (v[i] > 240)
				f = v[i];
		CU_ASSERT_FATAL(f > 240 && f < 300);
		save_snap(s, f - 1, 10);
		CU_ASSERT_EQUAL(store_compact(s, f - 1), 0);
		n = list_segs(v, 256);
		CU_ASSERT_EQUAL(v[0], f);
		store_close(s);
		s = open_store(512);
		CU_ASSERT_STRING_EQUAL(msg, "");
		check_snap(s, f - 1, 10);
		check_loaded_range(s, f, 300);
	}
	store_close(s);
	rm_dir();
}

static void test_install(void)
{
	struct store *s;
	uint8_t d[3] = { 1, 2, 3 };
	uint64_t n;

	mkdir_fresh();
	s = open_store(512);
	append_range(s, 1, 50);
	CU_ASSERT_EQUAL(store_sync(s), 50);
	append_range(s, 51, 55);       /* unsynced: dropped too */
	CU_ASSERT_EQUAL(store_snapshot_install(s, 80, 9, "m", 1, d, 3), 0);
	CU_ASSERT_EQUAL(count_segments(), 0);
	CU_ASSERT_EQUAL(store_last_index(s), 80);
	CU_ASSERT_EQUAL(store_last_term(s), 9);
	CU_ASSERT_EQUAL(store_sync(s), 80);
	CU_ASSERT_EQUAL(store_append(s, 80, 9, 0, d, 1), -EINVAL);
	CU_ASSERT_EQUAL(store_append(s, 81, 8, 0, d, 1), -EINVAL);
	CU_ASSERT_EQUAL(store_append(s, 81, 9, 0, d, 1), 0);
	CU_ASSERT_EQUAL(store_append(s, 82, 10, 1, d, 2), 0);
	CU_ASSERT_EQUAL(store_sync(s), 82);
	CU_ASSERT_EQUAL(count_segments(), 1);
	CU_ASSERT(file_size(seg_path(81)) > 0);
	store_close(s);

	s = open_store(512);
	CU_ASSERT_STRING_EQUAL(msg, "");
	CU_ASSERT_EQUAL(store_first_index(s), 81);
	CU_ASSERT_EQUAL(store_last_index(s), 82);
	{
		const struct store_entry *e = store_loaded(s, &n);
		struct store_snapshot sn;

		CU_ASSERT_EQUAL_FATAL(n, 2);
		CU_ASSERT_EQUAL(e[0].term, 9);
		CU_ASSERT_EQUAL(e[1].term, 10);
		CU_ASSERT_EQUAL(e[1].len, 2);
		store_snapshot_take(s, &sn);
		CU_ASSERT_EQUAL(sn.index, 80);
		CU_ASSERT_EQUAL(sn.term, 9);
		CU_ASSERT_EQUAL(sn.len, 3);
		CU_ASSERT(sn.data && memcmp(sn.data, d, 3) == 0);
		CU_ASSERT(sn.meta_len == 1 && sn.meta && sn.meta[0] == 'm');
		free(sn.meta);
		free(sn.data);
	}
	/* An install below our last index drops the longer log too. */
	CU_ASSERT_EQUAL(store_snapshot_install(s, 81, 9, NULL, 0, NULL, 0), 0);
	CU_ASSERT_EQUAL(store_last_index(s), 81);
	CU_ASSERT_EQUAL(count_segments(), 0);
	CU_ASSERT_EQUAL(store_sync(s), 81);
	store_close(s);
	/* Nothing but the snapshot: the log continues right after it. */
	s = open_store(512);
	CU_ASSERT_STRING_EQUAL(msg, "");
	CU_ASSERT_EQUAL(store_first_index(s), 82);
	CU_ASSERT_EQUAL(store_last_index(s), 81);
	CU_ASSERT_EQUAL(store_last_term(s), 9);
	CU_ASSERT_PTR_NULL(store_loaded(s, &n));
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(store_append(s, 82, 9, 0, d, 1), 0);
	CU_ASSERT_EQUAL(store_sync(s), 82);
	/* An install below the last index, then appends right away. */
	CU_ASSERT_EQUAL(store_snapshot_install(s, 82, 9, NULL, 0, NULL, 0), 0);
	CU_ASSERT_EQUAL(store_append(s, 83, 9, 0, d, 1), 0);
	CU_ASSERT_EQUAL(store_append(s, 84, 9, 0, d, 1), 0);
	CU_ASSERT_EQUAL(store_sync(s), 84);
	CU_ASSERT_EQUAL(count_segments(), 1);
	CU_ASSERT(file_size(seg_path(83)) > 0);
	store_close(s);
	s = open_store(512);
	CU_ASSERT_STRING_EQUAL(msg, "");
	CU_ASSERT_EQUAL(store_first_index(s), 83);
	CU_ASSERT_EQUAL(store_last_index(s), 84);
	CU_ASSERT_PTR_NOT_NULL(store_loaded(s, &n));
	CU_ASSERT_EQUAL(n, 2);
	store_close(s);
	rm_dir();
}

/* A log that ends below a snapshot (applied entries this node never
 * synced itself): appends continue after the snapshot in a segment of
 * their own, and the old log goes at the next compaction. */
static void test_log_behind_snapshot(void)
{
	struct store *s;

	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 10);
	CU_ASSERT_EQUAL(store_sync(s), 10);
	save_snap(s, 20, 5);
	CU_ASSERT_EQUAL(store_last_index(s), 20);
	CU_ASSERT_EQUAL(store_last_term(s), term_of(20));
	CU_ASSERT_EQUAL(store_sync(s), 20);
	append_range(s, 21, 25);
	CU_ASSERT_EQUAL(store_sync(s), 25);
	CU_ASSERT_EQUAL(count_segments(), 2);
	store_close(s);
	s = open_store(0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	check_loaded_range(s, 21, 25);
	CU_ASSERT_EQUAL(store_compact(s, 20), 0);
	CU_ASSERT_EQUAL(count_segments(), 1);
	CU_ASSERT_EQUAL(file_size(seg_path(1)), -1);
	store_close(s);

	/* The same found at open: the old segment is left for compaction. */
	rm_dir();
	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 10);
	CU_ASSERT_EQUAL(store_sync(s), 10);
	save_snap(s, 20, 5);
	store_close(s);
	s = open_store(0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	CU_ASSERT_EQUAL(store_first_index(s), 21);
	CU_ASSERT_EQUAL(store_last_index(s), 20);
	append_range(s, 21, 22);
	CU_ASSERT_EQUAL(store_sync(s), 22);
	CU_ASSERT_EQUAL(store_compact(s, 20), 0);
	CU_ASSERT_EQUAL(count_segments(), 1);
	store_close(s);
	s = open_store(0);
	check_loaded_range(s, 21, 22);
	store_close(s);
	rm_dir();
}

static void flip_byte(const char *p, off_t off)
{
	int fd = open(p, O_RDWR);
	uint8_t c = 0;

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pread(fd, &c, 1, off), 1);
	c ^= 0x10;
	CU_ASSERT_EQUAL(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void test_snapshot_corrupt(void)
{
	struct store *s = NULL;
	int segs;

	/* A flipped byte in the newest: the older one is used. */
	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 150);
	CU_ASSERT_EQUAL(store_sync(s), 150);
	save_snap(s, 50, 4000);
	save_snap(s, 100, 4000);
	store_close(s);
	flip_byte(snap_path(100), 2000);
	s = open_store(0);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "snap-0000000000000064"));
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "crc mismatch"));
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "snap-0000000000000032"));
	check_snap(s, 50, 4000);
	check_loaded_range(s, 51, 150);
	store_close(s);
	/* Recovery deletes no snapshot, not even a corrupt one. */
	CU_ASSERT(file_size(snap_path(100)) > 0);

	/* Cut short (torn): the same fallback. */
	CU_ASSERT_EQUAL(truncate(snap_path(100), 3000), 0);
	s = open_store(0);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "length 3000"));
	check_snap(s, 50, 4000);
	/* The next save retires the corrupt one and keeps 50 as fallback. */
	save_snap(s, 120, 10);
	CU_ASSERT_EQUAL(file_size(snap_path(100)), -1);
	CU_ASSERT(file_size(snap_path(50)) > 0);
	store_close(s);
	s = open_store(0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	check_snap(s, 120, 10);
	store_close(s);

	/* A bad magic, and no older snapshot: the log from 1 still works. */
	flip_byte(snap_path(120), 0);
	unlink(snap_path(50));
	s = open_store(0);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "bad magic"));
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "no valid snapshot"));
	check_loaded_range(s, 1, 150);
	store_close(s);
	rm_dir();

	/* The older one is not continued by the compacted log: refused,
	 * and nothing is deleted. */
	mkdir_fresh();
	s = open_store(512);
	append_range(s, 1, 200);
	CU_ASSERT_EQUAL(store_sync(s), 200);
	save_snap(s, 50, 10);
	save_snap(s, 150, 10);
	CU_ASSERT_EQUAL(store_compact(s, 150), 0);
	store_close(s);
	segs = count_segments();
	flip_byte(snap_path(150), 40);
	{
		struct store_damage d;

		open_refused(512, &d);
		CU_ASSERT_EQUAL(d.kind, STORE_DAMAGE_SNAPSHOT);
		CU_ASSERT_STRING_EQUAL(d.file, "snap-0000000000000096");
		CU_ASSERT_EQUAL(d.lost_from, 51);
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "crc mismatch"));
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "gap"));
	CU_ASSERT_EQUAL(count_segments(), segs);
	CU_ASSERT_EQUAL(count_prefix("snap-"), 2);
	/* Accepted: the older snapshot, and the log set aside. */
	s = open_accept(512, 51);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "cut as accepted"));
	check_snap(s, 50, 10);
	CU_ASSERT_EQUAL(store_last_index(s), 50);
	CU_ASSERT_EQUAL(count_segments(), 0);
	CU_ASSERT_EQUAL(count_prefix("lost-log-"), segs);
	append_range(s, 51, 55);
	CU_ASSERT_EQUAL(store_sync(s), 55);
	store_close(s);
	s = open_store(512);
	check_loaded_range(s, 51, 55);
	store_close(s);
	rm_dir();
}

static void test_snapshot_gap(void)
{
	struct store *s = NULL;
	struct store_config cfg = { .dir = NULL };
	uint64_t v[256];
	int n, segs;

	mkdir_fresh();
	cfg.dir = dir;
	s = open_store(512);
	append_range(s, 1, 200);
	CU_ASSERT_EQUAL(store_sync(s), 200);
	save_snap(s, 100, 10);
	store_close(s);
	/* Lose the segment holding 101 and every one before it. */
	n = list_segs(v, 256);
	for (int i = 0; i < n && v[i] <= 101; i++)
		CU_ASSERT_EQUAL(unlink(seg_path(v[i])), 0);
	segs = count_segments();
	CU_ASSERT_FATAL(segs > 0);
	CU_ASSERT_EQUAL(store_open(&cfg, &s, msg, sizeof(msg)), -EUCLEAN);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "gap after snapshot"));
	CU_ASSERT_EQUAL(count_segments(), segs);
	CU_ASSERT(file_size(snap_path(100)) > 0);
	rm_dir();

	/* A log that stops inside the snapshot and resumes past it. */
	mkdir_fresh();
	s = open_store(512);
	append_range(s, 1, 200);
	CU_ASSERT_EQUAL(store_sync(s), 200);
	save_snap(s, 100, 10);
	store_close(s);
	n = list_segs(v, 256);
	for (int i = 0; i < n; i++)
		if (v[i] > 20 && v[i] <= 101)
			CU_ASSERT_EQUAL(unlink(seg_path(v[i])), 0);
	segs = count_segments();
	CU_ASSERT_EQUAL(store_open(&cfg, &s, msg, sizeof(msg)), -EUCLEAN);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "resumes"));
	CU_ASSERT_EQUAL(count_segments(), segs);
	rm_dir();
}

static void test_stray_snap_tmp(void)
{
	struct store *s;
	char p[128];
	int fd;

	mkdir_fresh();
	s = open_store(0);
	append_range(s, 1, 20);
	CU_ASSERT_EQUAL(store_sync(s), 20);
	save_snap(s, 10, 100);
	store_close(s);
	/* A crash mid-save: a half-written newer snapshot never renamed. */
	snprintf(p, sizeof(p), "%s/snap.tmp", dir);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, "CKSN\1\0\0\0garbage", 15), 15);
	close(fd);
	s = open_store(0);
	CU_ASSERT_STRING_EQUAL(msg, "");
	CU_ASSERT_EQUAL(file_size(p), -1);
	check_snap(s, 10, 100);
	check_loaded_range(s, 11, 20);
	store_close(s);
	rm_dir();
}

static void copy_file(const char *from, const char *to)
{
	static uint8_t b[1 << 16];
	int in = open(from, O_RDONLY), out;
	ssize_t n;

	CU_ASSERT_FATAL(in >= 0);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_FATAL(out >= 0);
	while ((n = read(in, b, sizeof(b))) > 0)
		CU_ASSERT_EQUAL(write(out, b, (size_t)n), n);
	close(in);
	close(out);
}

/* A crash inside store_snapshot_install(), after the snapshot and before
 * the log went: the old log (another history at the snapshot's index)
 * is dropped at the next open, and the message says so.  Also covers the
 * record at the snapshot's index sitting in the segment before the ones
 * replayed. */
static void test_interrupted_install(void)
{
	static const uint64_t seg_sizes[2] = { 0, 512 };
	uint8_t d = 7;

	for (int round = 0; round < 2; round++) {
		struct store *s;
		uint64_t v[256], at = 100, n;
		char keep[64][160];
		int segs;

		mkdir_fresh();
		s = open_store(seg_sizes[round]);
		append_range(s, 1, 150);
		CU_ASSERT_EQUAL(store_sync(s), 150);
		/* A snapshot whose term is not the entry's is refused. */
		CU_ASSERT_EQUAL(store_snapshot_save(s, 100, 77, NULL, 0,
						    &d, 1), -EINVAL);
		store_close(s);
		segs = list_segs(v, 64);
		if (round == 1) {
			CU_ASSERT_FATAL(segs > 3);
			at = v[segs / 2] - 1;  /* ends a segment exactly */
		}
		for (int i = 0; i < segs; i++) {
			snprintf(keep[i], sizeof(keep[i]), "%s/keep-%d",
				 dir, i);
			copy_file(seg_path(v[i]), keep[i]);
		}
		s = open_store(seg_sizes[round]);
		CU_ASSERT_EQUAL(store_snapshot_install(s, at, 99, NULL, 0,
						       &d, 1), 0);
		store_close(s);
		CU_ASSERT_EQUAL(count_segments(), 0);
		for (int i = 0; i < segs; i++) {
			CU_ASSERT_EQUAL(rename(keep[i], seg_path(v[i])), 0);
		}
		s = open_store(seg_sizes[round]);
		CU_ASSERT_PTR_NOT_NULL(strstr(msg, "interrupted install"));
		CU_ASSERT_EQUAL(count_segments(), 0);
		CU_ASSERT_EQUAL(store_first_index(s), at + 1);
		CU_ASSERT_EQUAL(store_last_index(s), at);
		CU_ASSERT_EQUAL(store_last_term(s), 99);
		CU_ASSERT_PTR_NULL(store_loaded(s, &n));
		CU_ASSERT_EQUAL(n, 0);
		CU_ASSERT_EQUAL(store_append(s, at + 1, 99, 0, &d, 1), 0);
		CU_ASSERT_EQUAL(store_sync(s), (int64_t)at + 1);
		store_close(s);
		s = open_store(seg_sizes[round]);
		CU_ASSERT_STRING_EQUAL(msg, "");
		CU_ASSERT_EQUAL(store_last_index(s), at + 1);
		store_close(s);
		rm_dir();
	}
}

static const struct ut_test tests[] = {
#define T(f) UT_TEST(f)
	T(test_crc32c),
	T(test_empty_dir),
	T(test_roundtrip),
	T(test_bad_append),
	T(test_hardstate),
	T(test_small_files),
	T(test_truncate_append),
	T(test_segments),
	T(test_torn_tail),
	T(test_roll_syncs_before_create),
	T(test_truncate_durable_first),
	T(test_flipped_byte),
	T(test_bad_then_good),
	T(test_covered_flip),
	T(test_truncated_segment),
	T(test_state_damage),
	T(test_floor),
	T(test_floor_after_refused_state_write),
	T(test_crash_between_steps),
	T(test_zero_tail),
	T(test_gap_and_missing_first),
	T(test_group_commit),
	T(test_snapshot_roundtrip),
	T(test_snapshot_retention),
	T(test_compact),
	T(test_install),
	T(test_log_behind_snapshot),
	T(test_snapshot_corrupt),
	T(test_snapshot_gap),
	T(test_stray_snap_tmp),
	T(test_interrupted_install),
#undef T
};

const struct ut_suite ut_suites[] = {
	UT_SUITE("store", tests),
	{ NULL },
};
