#!/bin/sh
# t/fs-stress.sh - the stress test on a real cluckd mount: t/stress (200
# processes, mixed flock and fcntl locks, blocking and non-blocking, waits
# cut by alarm(), holders and waiters killed with SIGKILL) checks mutual
# exclusion itself; afterwards the daemon must be idle again (status:
# locks_held 0, waiters 0; metrics: cluck_parked_requests 0) and must not
# have grown: its RSS after a second, identical round may exceed the RSS
# after the first (warm-up) round by at most max(2 MiB, 10%), which catches
# per-request leaks without flaking on allocator high-water marks.
#
# Knobs (environment): STRESS_PROCS (200), STRESS_OPS (1000), STRESS_SEED.
#
# It must never: wait without a deadline (t/stress kills its children at
# its own deadline, and runs under timeout(1) as well), or leave a process
# or a mount behind (t/lib.sh's trap).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"

STRESS=$T_BIN/stress
[ -x "$STRESS" ] || skip "stress not built ($STRESS)"
PROCS=${STRESS_PROCS:-200}
OPS=${STRESS_OPS:-1000}
SEED=${STRESS_SEED:-$(( $(date +%s) % 100000 ))}

# Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
# default) that grows RSS from round to round; keep it small so the RSS
# comparison still means something (use-after-free shortly after the free
# is still caught).
SLACK_MIN_KB=2048
SLACK_PCT=10
if grep -q __asan_init "$CLUCKD" 2>/dev/null; then
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1"
	SLACK_MIN_KB=4096
	SLACK_PCT=20
	echo "cluckd is built with AddressSanitizer: quarantine 1 MiB, RSS slack max(4 MiB, 20%)"
fi

start_cluckd || finish

metric() { sed -n "s/^$1 //p" "$MNT/metrics" | head -n1; }
idle() {
	[ "$(status_key locks_held)" = 0 ] && [ "$(status_key waiters)" = 0 ] &&
		[ "$(metric cluck_parked_requests)" = 0 ]
}

# round NAME SEED: one run of the workload, then the daemon must go idle
# (RELEASE after a process's death is asynchronous, so wait for it).
round() {
	local rc
	echo "--- $1 round"
	timeout -s KILL 80 "$STRESS" -p "$PROCS" -n "$OPS" -t 55 -s "$2" "$MNT"
	rc=$?
	if [ "$rc" = 0 ]; then
		ok "$1 round: no mutual exclusion violation, no error, no stuck process"
	else
		fail "$1 round: t/stress exited $rc (see the messages above; seed $2)"
	fi
	if wait_until 10 idle; then
		ok "$1 round: daemon idle (locks_held 0, waiters 0, cluck_parked_requests 0)"
	else
		fail "$1 round: daemon not idle 10 s after the run: locks_held=$(status_key locks_held) waiters=$(status_key waiters) cluck_parked_requests=$(metric cluck_parked_requests)"
		grep '^lock ' "$MNT/status" | head -n 20
	fi
	alive "$CLUCKD_PID" || fail "cluckd died during the $1 round"
}

round warm-up "$SEED"
RSS0=$(daemon_rss_kb)
round main "$((SEED + 1))"
RSS1=$(daemon_rss_kb)

if [ -z "$RSS0" ] || [ -z "$RSS1" ]; then
	fail "could not read cluckd's VmRSS (pid $CLUCKD_PID)"
else
	slack=$(( RSS0 * SLACK_PCT / 100 ))
	[ "$slack" -lt "$SLACK_MIN_KB" ] && slack=$SLACK_MIN_KB
	if [ "$RSS1" -le $(( RSS0 + slack )) ]; then
		ok "cluckd RSS after warm-up ${RSS0} KiB, after main round ${RSS1} KiB (allowed +${slack} KiB)"
	else
		fail "cluckd RSS grew from ${RSS0} KiB after warm-up to ${RSS1} KiB after an identical round (allowed +${slack} KiB): a per-request leak?"
	fi
fi

stop_cluckd
expect_eq "cluckd exit status after SIGTERM" 0 "$CLUCKD_RC"
finish
