#!/bin/sh
# t/fuzz-check.sh - make check's run of the fuzz targets (peer raft cmd
# nmsg): each for FUZZ_SECS seconds (default 10) under libFuzzer when
# $T_BIN/fuzz_X.lf was built (clang), else under t/fuzz/driver.c
# ($T_BIN/fuzz_X), starting from a temporary copy of t/fuzz/corpus/X.
# Prints the executions per target; exits 1 when any run failed (a crash,
# a sanitizer report or a round-trip mismatch: the input is dumped in hex
# to the log), 77 when no target was built, else 0.
#
# It must never write into the source tree (the corpus is copied; libFuzzer
# adds to the copy, artifacts go to the temporary directory) or leave the
# temporary directory behind.
secs="${FUZZ_SECS:-10}"
bin="${T_BIN:-$(dirname "$0")}"
src="${top_srcdir:-$(dirname "$0")/..}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cluck-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

status=0
ran=0
for t in peer raft cmd nmsg; do
	mkdir -p "$tmp/$t" || exit 1
	if [ -d "$src/t/fuzz/corpus/$t" ]; then
		cp "$src/t/fuzz/corpus/$t"/* "$tmp/$t"/ 2>/dev/null
	fi
	log="$tmp/$t.log"
	if [ -x "$bin/fuzz_$t.lf" ]; then
		engine=libFuzzer
		"$bin/fuzz_$t.lf" -max_total_time="$secs" -rss_limit_mb=1024 \
			-print_final_stats=1 -artifact_prefix="$tmp/crash-$t-" \
			"$tmp/$t" >"$log" 2>&1
		rc=$?
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	elif [ -x "$bin/fuzz_$t" ]; then
		engine=driver
		"$bin/fuzz_$t" -max_total_time="$secs" "$tmp/$t" >"$log" 2>&1
		rc=$?
		execs=$(sed -n 's/^driver: \([0-9]*\) executions.*/\1/p' "$log")
		rate=$(sed -n 's/^driver: .*(\([0-9]*\)\/s)$/\1/p' "$log")
	else
		echo "fuzz_$t: not built, skipped"
		continue
	fi
	ran=$((ran + 1))
	# libFuzzer's own error exit code is 77, which automake would read as
	# "skipped": any non-zero status is a failure here
	if [ "$rc" -ne 0 ]; then
		status=1
		echo "FAIL: fuzz_$t ($engine) exited $rc"
		tail -n 60 "$log"
		for f in "$tmp"/crash-"$t"-*; do
			[ -f "$f" ] || continue
			echo "input $f (hex):"
			od -An -tx1 "$f" | head -n 256
		done
	else
		echo "fuzz_$t ($engine): ${execs:-?} executions in ${secs} s (${rate:-?}/s)"
	fi
done
if [ "$ran" -eq 0 ]; then
	echo "SKIP: no fuzz target built in $bin"
	exit 77
fi
exit "$status"
