#!/bin/sh
# t/fs-posix.sh - POSIX record locks (SPEC 2.3) on a real cluckd mount:
# Python's fcntl.lockf, byte ranges, F_GETLK with the holder's pid, release
# on close of ANY descriptor and on exit, OFD locks released at the close of
# their description, F_SETLKW waiting and being interrupted.
#
# It must never: wait without a deadline, or sleep to make things happen.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"

start_cluckd || finish
M=$MNT

# plock OUT ARGS...: background "fsprobe lock ARGS", stdout to OUT; sets PPID_.
plock() {
	local out=$1
	shift
	"$FSPROBE" lock "$@" > "$out" 2>&1 &
	PPID_=$!
	bg_track "$PPID_"
}
has() { grep -qx "$2" "$1"; }
stop() { kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

# --- python lockf ------------------------------------------------------------
python3 -c '
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)' "$M/py" > "$T_DIR/py.out" 2>&1 &
PY=$!; bg_track "$PY"
wait_until 5 has "$T_DIR/py.out" locked || fail "python lockf: holder not locked in 5 s: $(cat "$T_DIR/py.out")"
got=$(python3 -c '
import fcntl, sys
f = open(sys.argv[1], "a")
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("locked")
except BlockingIOError:
    print("BlockingIOError")
except OSError as e:
    print(type(e).__name__, e.errno)' "$M/py" 2>&1)
expect_eq "python lockf LOCK_NB on a held file" BlockingIOError "$got"
stop "$PY"
got=$(python3 -c '
import fcntl, sys
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked")' "$M/py" 2>&1)
expect_eq "python lockf LOCK_NB after the holder exited" locked "$got"

# --- byte ranges -------------------------------------------------------------
plock "$T_DIR/a.out" "$M/r" wr 0 10; A=$PPID_
wait_until 5 has "$T_DIR/a.out" locked || fail "range lock 0+10 not granted: $(cat "$T_DIR/a.out")"
plock "$T_DIR/b.out" "$M/r" wr 10 10 --nb; B=$PPID_
if wait_until 5 has "$T_DIR/b.out" locked; then ok "disjoint write ranges lock at once"; else fail "disjoint range 10+10: expected locked, got '$(cat "$T_DIR/b.out")'"; fi
expect_rc "overlapping write range 5+10 --nb" 1 "$FSPROBE" lock "$M/r" wr 5 10 --nb --hold 0
expect_rc "read lock inside a write-locked range --nb" 1 "$FSPROBE" lock "$M/r" rd 9 1 --nb --hold 0
expect_rc "free range 20+10 --nb" 0 "$FSPROBE" lock "$M/r" wr 20 10 --nb --hold 0
expect_eq "F_GETLK names the holder of 0+10" "type=wr start=0 len=10 pid=$A" "$("$FSPROBE" getlk "$M/r" wr 3 2)"
expect_eq "F_GETLK names the holder of 10+10" "type=wr start=10 len=10 pid=$B" "$("$FSPROBE" getlk "$M/r" rd 15 1)"
expect_eq "F_GETLK on a free range" unlocked "$("$FSPROBE" getlk "$M/r" wr 100 10)"
stop "$A"; stop "$B"
expect_eq "F_GETLK after the holders exited" unlocked "$("$FSPROBE" getlk "$M/r" wr 0 0)"

# shared read locks
plock "$T_DIR/r1.out" "$M/rd" rd 0 0; R1=$PPID_
wait_until 5 has "$T_DIR/r1.out" locked
expect_rc "a second read lock on the same range" 0 "$FSPROBE" lock "$M/rd" rd 0 0 --nb --hold 0
expect_rc "a write lock against a read lock" 1 "$FSPROBE" lock "$M/rd" wr 0 1 --nb --hold 0
stop "$R1"

# --- closing ANY descriptor releases the process's locks ------------------------
plock "$T_DIR/c.out" "$M/c" wr 0 0; C=$PPID_
wait_until 5 has "$T_DIR/c.out" locked
expect_rc "held before closing another fd" 1 "$FSPROBE" lock "$M/c" wr 0 0 --nb --hold 0
kill -USR1 "$C"
wait_until 5 has "$T_DIR/c.out" closed-other || fail "fsprobe did not report closed-other"
expect_eq "F_GETLK after closing a second fd" unlocked "$("$FSPROBE" getlk "$M/c" wr 0 0)"
expect_rc "lock free after the owner closed another fd" 0 "$FSPROBE" lock "$M/c" wr 0 0 --nb --hold 0
stop "$C"

# --- process exit releases ---------------------------------------------------------
plock "$T_DIR/e.out" "$M/e" wr 0 0; E=$PPID_
wait_until 5 has "$T_DIR/e.out" locked
stop "$E"
expect_rc "lock free after the owner was killed" 0 "$FSPROBE" lock "$M/e" wr 0 0 --nb --hold 0

# --- OFD locks: released at the close of their description --------------------------
plock "$T_DIR/o.out" "$M/o" wr 0 0 --ofd; O=$PPID_
wait_until 5 has "$T_DIR/o.out" locked || fail "OFD lock not granted: $(cat "$T_DIR/o.out")"
expect_rc "OFD lock excludes another OFD lock" 1 "$FSPROBE" lock "$M/o" wr 0 0 --nb --ofd --hold 0
kill -USR1 "$O"
wait_until 5 has "$T_DIR/o.out" closed-other
expect_rc "OFD lock survives closing another fd" 1 "$FSPROBE" lock "$M/o" wr 0 0 --nb --ofd --hold 0
kill -USR2 "$O"
wait_until 5 has "$T_DIR/o.out" closed
if wait_until 2 "$FSPROBE" lock "$M/o" wr 0 0 --nb --ofd --hold 0; then
	ok "OFD lock released at the close of its description (process alive)"
else
	fail "OFD lock still held 2 s after its description was closed"
fi
stop "$O"

# --- F_SETLKW waits, then gets the lock --------------------------------------------
plock "$T_DIR/h.out" "$M/w" wr 0 0; H=$PPID_
wait_until 5 has "$T_DIR/h.out" locked
plock "$T_DIR/wt.out" "$M/w" wr 0 0; WT=$PPID_
wait_until 5 waiters_are w 1 || fail "F_SETLKW: status shows $(lock_field w waiters) waiters on /w, expected 1"
expect_rc "the F_SETLKW waiter is not granted while held" 1 has "$T_DIR/wt.out" locked
stop "$H"
if wait_until 2 has "$T_DIR/wt.out" locked; then ok "F_SETLKW granted after the holder exited"; else fail "F_SETLKW not granted 2 s after the holder exited: '$(cat "$T_DIR/wt.out")'"; fi
stop "$WT"

# --- an interrupted F_SETLKW leaves no waiter -------------------------------------
plock "$T_DIR/h2.out" "$M/x" wr 0 0; H2=$PPID_
wait_until 5 has "$T_DIR/h2.out" locked
t0=$(now_ms)
got=$("$FSPROBE" lock "$M/x" wr 0 0 --alarm 0.3 --hold 0)
rc=$?
t1=$(now_ms)
expect_eq "F_SETLKW interrupted by SIGALRM" "3 EINTR" "$rc $got"
if [ $((t1 - t0)) -lt 1000 ]; then ok "interrupted F_SETLKW returned in $((t1 - t0)) ms"; else fail "interrupted F_SETLKW took $((t1 - t0)) ms"; fi
expect_eq "no waiter after the interrupted F_SETLKW" 0 "$(lock_field x waiters)"
timeout 0.3 python3 -c '
import fcntl, sys
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX)' "$M/x"
rc=$?
expect_eq "timeout 0.3 python lockf on a held file" 124 "$rc"
wait_until 2 waiters_are x 0
expect_eq "no waiter after timeout killed python" 0 "$(lock_field x waiters)"
stop "$H2"
expect_rc "free once the holder exited" 0 "$FSPROBE" lock "$M/x" wr 0 0 --nb --hold 0

# --- BSD and POSIX locks are independent -----------------------------------------
plock "$T_DIR/i.out" "$M/ind" wr 0 0; I=$PPID_
wait_until 5 has "$T_DIR/i.out" locked
expect_rc "flock -n beside a POSIX lock" 0 flock -n "$M/ind" true
stop "$I"

stop_cluckd
expect_eq "cluckd exit status after SIGTERM" 0 "$CLUCKD_RC"
finish
