#!/bin/sh
# t/fs-faults.sh - failures inside cluckd get answers, through an
# LD_PRELOAD shim (t/faultshim.so): a write whose path meets a failed
# allocation, at each of its large allocations in turn, is answered
# (done, or an error) instead of waiting forever on a lone node; and a
# failed fsync stops the daemon with exit status 1 and a message, after
# signalling the holders of its locks (an unlock in flight then succeeds,
# unsignalled); a release that met a failed allocation is proposed again,
# so the lock of a closed file is freed; an unlock that met one succeeds
# (0) and is proposed again; a waiter whose withdrawal at a stop met one
# and that is granted after all gives the lock back at once; a log that
# cannot be written even after the reserve went back makes requests wait
# (non-blocking ones answered after --op-timeout), and the node serves
# again once it can write.
#
# It must never: leave a daemon, a holder or a mount behind (lib.sh traps).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"

SHIM=$(cd "$T_BIN" && pwd)/faultshim.so
[ -r "$SHIM" ] || skip "faultshim.so not built"
# The sanitizers' runtime interposes the same functions and must come
# first: the shim goes into t/cluckd-plain, the same daemon built without
# them (in a plain build the two are alike).
CLUCKD=$T_BIN/cluckd-plain
[ -x "$CLUCKD" ] || skip "t/cluckd-plain not built"

M=$MNT
F=$T_DIR/faults
mkdir -p "$F"

start_faulty() { LD_PRELOAD=$SHIM CLUCK_FAULT_DIR=$F start_cluckd "$@"; }

# --- every large allocation of a write path fails once, in turn ---------------------
# A 30000-byte write allocates a few buffers of more than 16 KiB on its
# way: the command, the engine's copy, the log buffer, the content.
start_faulty --op-timeout 2 || finish
for k in 0 1 2 3 4 5 6 7; do
	if ! alive "$CLUCKD_PID"; then
		# A failure that stops the node (applying a committed entry
		# cannot fail half-way) is an answer too; start again.
		wait "$CLUCKD_PID" 2>/dev/null
		CLUCKD_PID=
		mounted && fusermount3 -uz "$M"
		start_faulty --op-timeout 2 || finish
	fi
	echo "$k 1 16384" > "$F/malloc"
	# In the background: a write the daemon never answers cannot be
	# killed (the kernel waits for the answer); stopping the daemon
	# frees it.
	"$FSPROBE" errno write "$M/w$k" 30000 > "$T_DIR/got" 2>&1 &
	wp=$!
	wait_until 20 dead "$wp"
	answered=$?
	rm -f "$F/malloc"
	if [ "$answered" != 0 ]; then
		fail "write with large allocation $k failing: no answer within 20 s"
		stop_cluckd
		wait "$wp" 2>/dev/null
		start_faulty --op-timeout 2 || finish
	else
		wait "$wp" 2>/dev/null
		got=$(cat "$T_DIR/got")
		# Any answer will do: done, ENOMEM, EIO (--op-timeout), or
		# what the fail-closed mount point says once the node stopped.
		case $got in
		OK|E[A-Z]*) ok "write with large allocation $k failing: $got" ;;
		*) fail "write with large allocation $k failing: unexpected '$got'" ;;
		esac
	fi
done
if alive "$CLUCKD_PID"; then
	expect_eq "a write after the faults" OK "$("$FSPROBE" errno write "$M/after" 30000)"
fi
stop_cluckd

# --- a release refused for memory is proposed again ---------------------------------
# A command without names or data encodes to 171 bytes; when a holder
# dies, its RELEASE is the only one made: fail exactly that allocation.
start_faulty || finish
holder "" "$M/rel" R1
wait_until 5 granted R1 || fail "holder R1 was not granted"
echo "0 1 171 171" > "$F/malloc"
release "$HPID"
if wait_until 5 flock -n "$M/rel" true; then
	ok "the lock of a closed file is freed though its release met no memory"
else
	fail "the lock of a closed file stays held: $(lock_line rel)"
fi
expect_eq "the fault was met" "0 0 171 171" "$(cat "$F/malloc")"
rm -f "$F/malloc"
stop_cluckd

# --- an unlock refused for memory succeeds, and is proposed again -----------------
# (it used to fail with ENOMEM, though unlock always succeeds, cluckfs(5))
start_faulty || finish
for kind in flock posix; do
	out=$T_DIR/un-$kind.out
	"$FSPROBE" lock-steps "$M/un-$kind" $kind > "$out" 2>&1 &
	up=$!
	bg_track "$up"
	wait_until 5 grep -qx locked "$out" || fail "$kind: the holder got no lock"
	echo "0 1 171 171" > "$F/malloc"
	kill -USR1 "$up"
	wait_until 5 grep -q '^unlock=' "$out" || fail "$kind: the unlock did not return"
	expect_eq "$kind: an unlock that met no memory succeeds" OK "$(sed -n 's/^unlock=//p' "$out")"
	expect_eq "$kind: the fault was met" "0 0 171 171" "$(cat "$F/malloc")"
	rm -f "$F/malloc"
	if wait_until 5 flock -n "$M/un-$kind" true; then
		ok "$kind: the lock is freed while its holder keeps the file open"
	else
		fail "$kind: the lock stays held: $(lock_line "un-$kind")"
	fi
	kill -USR2 "$up"
	wait_until 5 grep -q '^relock=' "$out"
	expect_eq "$kind: the descriptor locks again" OK "$(sed -n 's/^relock=//p' "$out")"
	kill -KILL "$up"
	wait "$up" 2>/dev/null
done
stop_cluckd

# --- a stop whose withdrawal of a waiter loses to its grant --------------------------
# The CANCEL that withdraws the parked waiter cannot be proposed (no
# memory), so the waiter, told ENOLCK, is granted once the holder lets go
# during the holders' wait: the lock is given back at once, so the stop
# ends when the real holder is gone and the waiter is never signalled as
# a holder (it used to be held for nobody until --stop-timeout ran out,
# and its process then got SIGTERM).
start_faulty --stop-timeout 4 || finish
holder "" "$M/race" RH
wait_until 5 granted RH || fail "holder RH was not granted"
python3 - "$M/race" "$T_DIR" <<'EOF2' &
import fcntl, os, signal, sys, time
path, d = sys.argv[1:3]
def on_term(s, f):
    open(d + "/sig.RW", "w").close()
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
fd = os.open(path, os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    r = "granted"
except OSError as e:
    r = os.strerror(e.errno)
with open(d + "/rw.out", "w") as o:
    o.write(r + "\n")
time.sleep(30)
EOF2
rw=$!
bg_track "$rw"
wait_until 5 eval '[ "$(lock_field race waiters)" = 1 ]' || fail "the waiter did not park"
echo "0 1 171 171" > "$F/malloc"
t0=$(now_ms)
kill -TERM "$CLUCKD_PID"
wait_until 2 test -s "$T_DIR/rw.out" || fail "the waiter got no answer at the stop"
expect_eq "the parked waiter got ENOLCK" "No locks available" "$(cat "$T_DIR/rw.out")"
expect_eq "its CANCEL met the fault" "0 0 171 171" "$(cat "$F/malloc")"
rm -f "$F/malloc"
release "$HPID"
if wait_until 3 dead "$CLUCKD_PID"; then
	ok "the stop ended once the holder let go ($(( $(now_ms) - t0 )) ms)"
else
	fail "the stop waits on after the holder let go (a lock held for the waiter told ENOLCK?)"
fi
wait_until 5 dead "$CLUCKD_PID"
expect_rc "the waiter told ENOLCK was not signalled as a holder" 1 test -e "$T_DIR/sig.RW"
kill -KILL "$rw" 2>/dev/null
stop_cluckd
expect_eq "clean stop" 0 "$CLUCKD_RC"

# --- a disk the reserve cannot relieve: the log waits, requests are answered -------
start_faulty --op-timeout 2 || finish
: > "$M/other"
holder "" "$M/held" H0
wait_until 5 granted H0 || fail "holder H0 was not granted"
touch "$F/nospc"
e=$("$FSPROBE" errno write "$M/nw" 100)
expect_eq "a write while the log cannot be written ends after --op-timeout" EIO "$e"
e=$("$FSPROBE" errno write "$M/nw2" 100)
expect_eq "later writes get ENOSPC at once" ENOSPC "$e"
# flock(1) exits 71 for ENOLCK (1 only for a lock held elsewhere).
expect_rc "a lock request is answered (ENOLCK after --op-timeout)" 71 flock -n "$M/other" true
if alive "$CLUCKD_PID"; then ok "cluckd still runs"; else fail "cluckd stopped on ENOSPC"; fi
grep -q "requests wait until there is room" "$LOG" && ok "the log says the log waits for room" || fail "no message about the stalled log"
rm -f "$F/nospc"
if wait_until 10 eval '[ "$("$FSPROBE" errno write "$M/nw3" 100)" = OK ]'; then
	ok "writes work again once writes to the log do"
else
	fail "writes still refused after the disk came back"
fi
expect_rc "locks work again" 0 flock -n "$M/other" true
expect_eq "the holder held throughout" 1 "$(lock_field held holders)"
expect_eq "the create that timed out landed after all" 1 "$([ -e "$M/nw" ] && echo 1)"
release "$HPID"
stop_cluckd
expect_eq "clean stop" 0 "$CLUCKD_RC"

# --- a failed fsync: holders are signalled, then the daemon stops -------------------
rm -rf "$T_DIR/data"; mkdir "$T_DIR/data"
start_faulty || finish
holder "" "$M/held" H1
wait_until 5 granted H1 || fail "holder H1 was not granted"
hpid=$(tail -n1 "$T_PIDS")
# U unlocks as the sync fails: the unlock still succeeds (it used to get
# EIO) and U is not signalled as a holder.
"$FSPROBE" lock-steps "$M/u" flock > "$T_DIR/u.out" 2>&1 &
up=$!
bg_track "$up"
wait_until 5 grep -qx locked "$T_DIR/u.out" || fail "U got no lock"
touch "$F/fsync"
kill -USR1 "$up"
wait_until 5 grep -q '^unlock=' "$T_DIR/u.out"
"$FSPROBE" errno write "$M/x" 100 > /dev/null 2>&1
if wait_until 10 dead "$CLUCKD_PID"; then
	wait "$CLUCKD_PID"
	rc=$?
	CLUCKD_PID=
	expect_eq "exit status after a failed fsync" 1 "$rc"
	grep -q "Input/output error; stopping" "$LOG" && ok "the log says why it stopped" || fail "no EIO message in the log"
	grep -Eq "[1-9][0-9]* processes signalled" "$LOG" && ok "the log says the holders were signalled" || fail "no signalled holders in the log: $(grep -i lost "$LOG" | tail -n2)"
else
	fail "cluckd kept running after a failed fsync"
fi
if wait_until 5 dead "$hpid"; then ok "the holder was signalled"; else fail "the holder $hpid still runs, believing it holds"; fi
expect_eq "an unlock in flight when the sync failed succeeds" OK "$(sed -n 's/^unlock=//p' "$T_DIR/u.out")"
sleep 0.2
expect_rc "and its process is not signalled as a holder" 1 grep -qx term "$T_DIR/u.out"
kill -KILL "$up" 2>/dev/null
rm -f "$F/fsync"
mounted && fusermount3 -uz "$M"

finish
