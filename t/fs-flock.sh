#!/bin/sh
# t/fs-flock.sh - BSD locks (SPEC 2.2) through flock(1) on a real cluckd
# mount: busy, shared, exclusive, FIFO order with no writer starvation,
# timeouts and signals that withdraw a waiter, release by LOCK_UN and by
# death, exit codes, conversion, and directories (local locks).
#
# It must never: wait without a deadline, or sleep to make things happen
# (every step waits on a condition it can see: status, a log line, a pid).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"

start_cluckd || finish
M=$MNT

# --- exclusive, busy --------------------------------------------------------
holder -x "$M/f" X1; X1=$HPID
wait_until 5 granted X1 || fail "flock -x on a free file was not granted in 5 s"
expect_rc "flock -n on a held file" 1 flock -n "$M/f" true
expect_rc "flock -s -n on an exclusively held file" 1 flock -s -n "$M/f" true
expect_rc "flock -n -E 42 on a held file" 42 flock -n -E 42 "$M/f" true
expect_eq "status: /f mode" ex "$(lock_field f mode)"
expect_eq "status: /f holders" 1 "$(lock_field f holders)"
release "$X1"
wait_until 5 freed f || fail "the dead holder's lock was not released in 5 s"
expect_rc "flock -n after the holder died" 0 flock -n "$M/f" true

# --- shared -----------------------------------------------------------------------
holder -s "$M/s" S1; S1=$HPID
holder -s "$M/s" S2; S2=$HPID
if wait_until 5 eval 'granted S1 && granted S2'; then ok "two flock -s hold at once"; else fail "two flock -s: expected both granted, got: $(tr '\n' ' ' < "$ORDER")"; fi
expect_eq "status: /s holders" 2 "$(lock_field s holders)"
expect_eq "status: /s mode" sh "$(lock_field s mode)"
holder -x "$M/s" X3; X3=$HPID
wait_until 5 waiters_are s 1 || fail "flock -x behind shared holders: expected waiters=1, got $(lock_field s waiters)"
if granted X3; then fail "flock -x was granted while shared holders hold"; else ok "flock -x waits for shared holders"; fi
# A waiting exclusive request holds back later shared ones.
expect_rc "flock -s -n behind a waiting exclusive" 1 flock -s -n "$M/s" true
release "$S1"
expect_rc "flock -x still waits for the second shared holder" 1 granted X3
release "$S2"
if wait_until 2 granted X3; then ok "flock -x granted when the shared holders left"; else fail "flock -x not granted 2 s after the shared holders left"; fi
release "$X3"

# --- FIFO: ex holder, ex waiter, sh waiter --------------------------------------
: > "$ORDER"
holder -x "$M/q" A; A=$HPID
wait_until 5 granted A
holder -x "$M/q" B; B=$HPID
wait_until 5 waiters_are q 1 || fail "FIFO: expected 1 waiter on /q, got $(lock_field q waiters)"
holder -s "$M/q" C; C=$HPID
wait_until 5 waiters_are q 2 || fail "FIFO: expected 2 waiters on /q, got $(lock_field q waiters)"
release "$A"
wait_until 2 granted B || fail "FIFO: the waiting exclusive was not granted after the holder left"
expect_rc "FIFO: the later shared is held back while the exclusive holds" 1 granted C
expect_eq "FIFO: waiters on /q" 1 "$(lock_field q waiters)"
release "$B"
wait_until 2 granted C || fail "FIFO: the shared waiter was not granted"
expect_eq "FIFO: grant order" "A B C" "$(tr '\n' ' ' < "$ORDER" | sed 's/ $//')"
release "$C"

# --- flock -w times out and leaves no waiter ------------------------------------
holder -x "$M/w" W; W=$HPID
wait_until 5 granted W
t0=$(now_ms)
flock -w 0.2 "$M/w" true
rc=$?
t1=$(now_ms)
expect_eq "flock -w 0.2 on a held file: exit" 1 "$rc"
if [ $((t1 - t0)) -lt 1000 ]; then ok "flock -w 0.2 returned in $((t1 - t0)) ms"; else fail "flock -w 0.2 took $((t1 - t0)) ms (expected < 1000)"; fi
expect_eq "no waiter after flock -w timed out" 0 "$(lock_field w waiters)"
expect_eq "status waiters total after the timeout" 0 "$(status_key waiters)"
release "$W"
wait_until 5 freed w || fail "the dead holder's lock was not released in 5 s"
expect_rc "flock -n right after the timeout and release" 0 flock -n "$M/w" true

# --- flock -u ----------------------------------------------------------------------
exec 9>"$M/u"
flock 9
expect_rc "flock -n while fd 9 holds" 1 flock -n "$M/u" true
flock -u 9
expect_rc "flock -n after flock -u 9" 0 flock -n "$M/u" true
exec 9>&-

# --- kill -9 of a holder hands the lock over at once --------------------------
: > "$ORDER"
holder -x "$M/k" K; K=$HPID
wait_until 5 granted K
holder -x "$M/k" KW; KW=$HPID
wait_until 5 waiters_are k 1 || fail "kill -9: expected 1 waiter, got $(lock_field k waiters)"
t0=$(now_ms)
kill -KILL "$K"
if wait_until 3 granted KW; then
	t1=$(now_ms)
	if [ $((t1 - t0)) -lt 1000 ]; then ok "waiter granted $((t1 - t0)) ms after kill -9 of the holder"; else fail "waiter granted only $((t1 - t0)) ms after kill -9 of the holder (expected < 1000)"; fi
else
	fail "kill -9 of the holder: the waiter was not granted within 3 s"
fi
release "$K"; release "$KW"

# --- SIGINT / SIGKILL of a waiter leave no waiter --------------------------------
holder -x "$M/i" I; I=$HPID
wait_until 5 granted I
env --default-signal=INT flock "$M/i" true &
WI=$!; bg_track "$WI"
wait_until 5 waiters_are i 1 || fail "SIGINT: expected 1 waiter, got $(lock_field i waiters)"
kill -INT "$WI"
if wait_until 2 dead "$WI"; then ok "SIGINT ends a waiting flock"; else fail "a waiting flock survived SIGINT for 2 s"; fi
wait "$WI"; rc=$?
expect_eq "exit status of flock killed by SIGINT" 130 "$rc"
wait_until 2 waiters_are i 0
expect_eq "no waiter after SIGINT" 0 "$(lock_field i waiters)"
flock "$M/i" true &
WK=$!; bg_track "$WK"; disown "$WK"
wait_until 5 waiters_are i 1 || fail "SIGKILL: expected 1 waiter, got $(lock_field i waiters)"
kill -KILL "$WK"
if wait_until 2 dead "$WK"; then ok "SIGKILL ends a waiting flock"; else fail "a waiting flock survived SIGKILL for 2 s (D state?)"; fi
wait_until 2 waiters_are i 0
expect_eq "no waiter after SIGKILL" 0 "$(lock_field i waiters)"
release "$I"
wait_until 5 freed i || fail "the dead holder's lock was not released in 5 s"
expect_rc "free after the holder left" 0 flock -n "$M/i" true
expect_eq "status: no lock line for a free, unwaited file" "" "$(lock_line i)"

# --- creation, exit codes ------------------------------------------------------------
expect_rc "flock on a new file" 0 flock "$M/newfile" true
expect_rc "flock created the file" 0 test -f "$M/newfile"
expect_rc "exit status propagates" 3 flock "$M/newfile" sh -c 'exit 3'
expect_rc "flock -E 7 -n on a free file runs the command" 0 flock -E 7 -n "$M/newfile" true

# --- conversion through one descriptor ------------------------------------------------
exec 9>"$M/conv"
flock -s 9
expect_rc "conversion: another shared while we hold shared" 0 flock -s -n "$M/conv" true
expect_rc "conversion: another exclusive while we hold shared" 1 flock -x -n "$M/conv" true
if flock -x -w 2 9; then ok "conversion sh -> ex through one fd"; else fail "conversion sh -> ex through one fd failed"; fi
expect_rc "conversion: another shared after the upgrade" 1 flock -s -n "$M/conv" true
expect_eq "conversion: one holder" 1 "$(lock_field conv holders)"
expect_eq "conversion: mode" ex "$(lock_field conv mode)"
if flock -s -n 9; then ok "conversion ex -> sh"; else fail "conversion ex -> sh failed"; fi
expect_rc "conversion: another shared after the downgrade" 0 flock -s -n "$M/conv" true
exec 9>&-
wait_until 2 eval 'flock -n "$M/conv" true'
expect_rc "close releases" 0 flock -n "$M/conv" true

# --- directories: local locks -----------------------------------------------------------
mkdir "$M/dir"
expect_rc "flock on a directory does not fail" 0 flock -n "$M/dir" true

stop_cluckd
expect_eq "cluckd exit status after SIGTERM" 0 "$CLUCKD_RC"
finish
