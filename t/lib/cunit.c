/*
 * t/lib/cunit.c - main() of every CUnit test program (t/lib/cunit.h).
 *
 * Registers the suites the test file exports in ut_suites[], keeps only
 * the tests a pattern names, runs them in CUnit's verbose basic mode and
 * turns the result into the exit status make check reads.
 *
 * It must never: report success when a test or a suite set-up failed, or
 * allocate through the test program's wrapped allocator on its own behalf
 * (t/unit_lockcore counts allocations).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include "t/lib/cunit.h"

static const char *short_name(const char *name)
{
	return strncmp(name, "test_", 5) ? name : name + 5;
}

static bool wanted(const struct ut_suite *s, const struct ut_test *t,
		   const char *pat)
{
	return !pat || strstr(s->name, pat) || strstr(t->name, pat);
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--list] [PATTERN]\n", argv0);
}

/* Registers every wanted test; -1 when CUnit failed. */
static int register_all(const char *pat, bool list)
{
	for (const struct ut_suite *s = ut_suites; s->name; s++) {
		CU_pSuite suite = NULL;

		for (size_t i = 0; i < s->n; i++) {
			const struct ut_test *t = &s->tests[i];

			if (!wanted(s, t, pat))
				continue;
			if (list) {
				printf("%s/%s\n", s->name, short_name(t->name));
				continue;
			}
			if (!suite)
				suite = CU_add_suite(s->name, s->init, s->clean);
			if (!suite || !CU_add_test(suite, short_name(t->name), t->fn))
				return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *pat = NULL;
	bool list = false;
	unsigned failed;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--list")) {
			list = true;
		} else if (argv[i][0] == '-' || pat) {
			usage(argv[0]);
			return 2;
		} else {
			pat = argv[i];
		}
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	if (register_all(pat, list))
		goto fail_registry;
	if (list) {
		CU_cleanup_registry();
		return 0;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() +
		 CU_get_number_of_tests_failed() +
		 CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;

fail_registry:
	CU_cleanup_registry();
	return 99;
}
