#!/bin/sh
# t/bench.sh - `make bench`: cluck's benchmark (t/bench) on a fresh one-node
# cluckd mount, with the same workloads on a private tmpfs as the baseline
# in the same run; prints one Markdown table (figure, cluck, tmpfs, ratio,
# target, met) ready for BENCHMARKS.md.
#
#   t/bench.sh [--quick]
#       --quick: 10,000 parked waiters and 100,000 files instead of
#       100,000 and 1,000,000 (the full run takes several minutes).
#
# Environment: CLUCKD, T_BIN (set by `make bench`), BENCH_DURATION (2 s per
# throughput figure), BENCH_FILES_LIMIT (1800 s for creating the files).
#
# It must never: fail because a figure is slow (it is not a test), or leave
# a mount, a process or a changed sysctl behind (kernel.pid_max is raised
# for 100,000 waiter threads and restored by the EXIT trap).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"

QUICK=0
for a in "$@"; do
	case $a in
	--quick) QUICK=1 ;;
	*) echo "usage: $0 [--quick]" >&2; exit 2 ;;
	esac
done
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
export top_srcdir
. "$top_srcdir/t/lib.sh"

BENCH=$T_BIN/bench
[ -x "$BENCH" ] || { echo "bench: $BENCH not built (make t/bench)" >&2; exit 1; }
DUR=${BENCH_DURATION:-2}
if [ "$QUICK" = 1 ]; then WAITERS=10000; FILES=100000; else WAITERS=100000; FILES=1000000; fi

TMPFS=$T_DIR/tmpfs
ROWS=$T_DIR/rows
OLD_PID_MAX=
mkdir -p "$TMPFS"
: > "$ROWS"

bench_cleanup() {
	local rc=$?
	mountpoint -q "$TMPFS" && umount "$TMPFS"
	[ -n "$OLD_PID_MAX" ] && echo "$OLD_PID_MAX" > /proc/sys/kernel/pid_max
	(exit "$rc")
	t_cleanup
}
trap bench_cleanup EXIT

mount -t tmpfs -o size=4g,nr_inodes=4m,mode=0755 bench-tmpfs "$TMPFS" ||
	{ echo "bench: cannot mount a tmpfs on $TMPFS" >&2; exit 1; }

# fresh_cluckd: a new one-node daemon on an empty data directory, without
# the default limits (1,000,000 files in all would refuse the last of the
# files figure's 1,000,000, the root directory counting too).
fresh_cluckd() {
	[ -n "$CLUCKD_PID" ] && stop_cluckd
	rm -rf "$T_DIR/data" && mkdir -p "$T_DIR/data"
	start_cluckd --max-files 0 --max-bytes 0 || { echo "bench: cluckd did not start: $(tail -n 5 "$LOG")" >&2; exit 1; }
}

# run ARGS...: one bench section; rows to stdout and $ROWS.
run() {
	"$BENCH" "$@" | tee -a "$ROWS"
	[ "${PIPESTATUS[0]}" = 0 ] || echo "bench: section '$1' did not complete" >&2
}

echo "# cluck benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, kernel $(uname -r)"
echo "# cluckd: $CLUCKD ($(grep -q __asan_init "$CLUCKD" && echo "AddressSanitizer build: figures are not representative" || echo "no sanitizer"))"
[ "$QUICK" = 1 ] && echo "# --quick: $WAITERS waiters, $FILES files"

fresh_cluckd
run pairs "$MNT" "$TMPFS" -c 1,8,64 -d "$DUR"
run handoff "$MNT" "$TMPFS" -n 16 -d "$DUR"
run spawn "$MNT" "$TMPFS" -n 300

# Every parked waiter is a thread of a client process: it needs a pid.
need=$(( WAITERS + 20000 ))
cur=$(cat /proc/sys/kernel/pid_max)
if [ "$cur" -lt "$need" ]; then
	OLD_PID_MAX=$cur
	echo "bench: raising kernel.pid_max from $cur to $need for the waiter threads (restored at exit)" >&2
	echo "$need" > /proc/sys/kernel/pid_max
fi
if [ "$(cat /proc/sys/kernel/threads-max)" -lt "$need" ]; then
	echo "bench: kernel.threads-max is below $need: the waiter figure may not complete" >&2
fi
fresh_cluckd
run waiters "$MNT" "$CLUCKD_PID" -n "$WAITERS"

fresh_cluckd
run files "$MNT" "$TMPFS" "$MNT" "$CLUCKD_PID" -n "$FILES" -T "${BENCH_FILES_LIMIT:-1800}"
stop_cluckd

echo
echo "| figure | cluck | tmpfs | ratio | target | met |"
echo "|---|---|---|---|---|---|"
cat "$ROWS"
exit 0
