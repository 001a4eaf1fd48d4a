/*
 * t/lib/cunit.h - the one CUnit runner of every t/unit_*.c.
 *
 * A unit test file writes its tests as void test_x(void) functions, lists
 * them in tables and exports one array of suites; t/lib/cunit.c holds the
 * main() that registers them, runs them and sets the exit status:
 *
 *	static const struct ut_test tests[] = {
 *		UT_TEST(test_round_trip),
 *		UT_TEST(test_wrong_key),
 *	};
 *	const struct ut_suite ut_suites[] = {
 *		UT_SUITE("peer", tests),            (or UT_SUITE_FIX with
 *		{ NULL },                            init and clean functions)
 *	};
 *
 * and links t/lib/cunit.c (Makefile.am: t_unit_X_SOURCES += $(UNIT_RUNNER)).
 * A test is registered under its function name without "test_".
 *
 * Command line: t/unit_X [--list] [PATTERN]: only the tests whose name or
 * suite name contains PATTERN; --list prints "suite/test" and runs nothing.
 * Exit status: 0 when every test passed, 1 on any failed assertion or
 * suite set-up, 99 when CUnit itself failed (automake's hard error), 2 on
 * a bad command line.
 *
 * It must never: hide a failure from the exit status, or run a test the
 * pattern left out.
 */
#ifndef CLUCK_T_LIB_CUNIT_H
#define CLUCK_T_LIB_CUNIT_H

#include <stddef.h>

#include <CUnit/CUnit.h>

struct ut_test {
	const char *name;              /* "test_x": registered as "x" */
	CU_TestFunc fn;
};

struct ut_suite {
	const char *name;              /* NULL ends ut_suites[] */
	const struct ut_test *tests;
	size_t n;
	CU_InitializeFunc init;        /* may be NULL; nonzero fails the suite */
	CU_CleanupFunc clean;          /* may be NULL */
};

#define UT_TEST(f) { #f, f }
#define UT_SUITE(name, tests) \
	{ (name), (tests), sizeof(tests) / sizeof((tests)[0]), NULL, NULL }
#define UT_SUITE_FIX(name, tests, init, clean) \
	{ (name), (tests), sizeof(tests) / sizeof((tests)[0]), (init), (clean) }

/* Defined by each test file: its suites, ended by { NULL }. */
extern const struct ut_suite ut_suites[];

#endif /* CLUCK_T_LIB_CUNIT_H */
