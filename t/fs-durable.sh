#!/bin/sh
# t/fs-durable.sh - the one-node mount through the Raft log and --data-dir:
# the namespace survives a stop and a SIGKILL; a lock of the killed run
# stays held after the restart until that run's session lease ends, then
# goes to the next waiter with a higher token; its O_EXCL lockfile goes
# with it; snapshots appear and compact the log, and a restart from one
# keeps everything; a torn log tail is cut and reported; a second daemon
# on the same directory is refused.  (A data directory that fills up:
# t/fs-quota.sh.)
#
# It must never: leave a daemon, a holder or a mount behind (lib.sh traps).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"
require_cmd getfattr setfattr

M=$MNT
D=$T_DIR/data
LEASE=2

# crash: SIGKILL the daemon and clear the dead mount.
crash() {
	kill -KILL "$CLUCKD_PID" 2>/dev/null
	wait "$CLUCKD_PID" 2>/dev/null
	CLUCKD_PID=
	fusermount3 -uz "$M" 2>/dev/null
}

token_of() { getfattr --absolute-names -n user.cluck.token --only-values "$1" 2>/dev/null; }

# --- the namespace survives a clean stop ----------------------------------------
start_cluckd --lease "$LEASE" || finish
mkdir "$M/dir"
echo "payload" > "$M/dir/file"
ln -s dir/file "$M/link"
setfattr -n user.note -v kept "$M/dir/file"
setfattr -n user.cluck.slots -v 3 "$M/dir/file"
stop_cluckd
expect_eq "clean stop exit" 0 "$CLUCKD_RC"
start_cluckd --lease "$LEASE" || finish
expect_eq "file content after restart" "payload" "$(cat "$M/dir/file" 2>&1)"
expect_eq "symlink after restart" "dir/file" "$(readlink "$M/link" 2>&1)"
expect_eq "user xattr after restart" "kept" "$(getfattr --absolute-names -n user.note --only-values "$M/dir/file" 2>&1)"
expect_eq "semaphore slots after restart" "3" "$(getfattr --absolute-names -n user.cluck.slots --only-values "$M/dir/file" 2>&1)"

# --- a SIGKILLed run's lock outlives it by one lease -----------------------------
holder "" "$M/held" H1
wait_until 5 granted H1 || fail "holder H1 was not granted"
t1=$(token_of "$M/held")
set -C; echo $$ > "$M/job.lock"; set +C
crash
# The old session's fresh lease starts when the restarted node is elected,
# between these two instants (a loaded machine may take a while to mount):
# the grant may come no earlier than a lease after tb, and should come
# about a lease after ta.
tb=$(now_ms)
start_cluckd --lease "$LEASE" || finish
t0=$(now_ms)
expect_eq "lock of the killed run still held after restart" 1 "$(lock_field held holders)"
expect_rc "flock -n on it fails at once" 1 flock -n "$M/held" true
if [ -e "$M/job.lock" ]; then ok "lockfile of the killed run still there"; else fail "lockfile of the killed run vanished at once"; fi
release "$HPID"
flock -w 15 "$M/held" true
rc=$?
tg=$(now_ms)
waited=$(( tg - t0 ))
expect_eq "flock after the old session's lease" 0 "$rc"
if [ $(( tg - tb )) -ge $(( LEASE * 1000 - 300 )) ] && [ "$waited" -le $(( LEASE * 1000 + 3000 )) ]; then
	ok "granted after the old session's lease ($waited ms, lease ${LEASE}000 ms)"
else
	fail "granted after $waited ms ($(( tg - tb )) ms from the restart), expected about the lease (${LEASE}000 ms)"
fi
t2=$(token_of "$M/held")
if [ -n "$t1" ] && [ -n "$t2" ] && [ "$t2" -gt "$t1" ]; then
	ok "token after restart ($t2) > token before ($t1)"
else
	fail "tokens: before restart '$t1', after '$t2'"
fi
if [ -e "$M/job.lock" ]; then fail "lockfile of the expired session still there"; else ok "lockfile went with the expired session"; fi
expect_eq "payload still there after the crash" "payload" "$(cat "$M/dir/file" 2>&1)"
grep -q "expired" "$LOG" && ok "the log says the old session expired" || fail "no expiry in the log"
stop_cluckd

# --- snapshots and compaction ----------------------------------------------------
rm -rf "$D"
CLUCKD_SNAPSHOT_EVERY=50 start_cluckd --lease "$LEASE" || finish
for i in $(seq 1 120); do echo "$i" > "$M/f$i"; done
nsnap=$(ls "$D" | grep -c '^snap-')
if [ "$nsnap" -ge 1 ] && [ "$nsnap" -le 2 ]; then ok "$nsnap snapshot files kept"; else fail "snapshot files: $nsnap ($(ls "$D" | tr '\n' ' '))"; fi
crash
CLUCKD_SNAPSHOT_EVERY=50 start_cluckd --lease "$LEASE" || finish
bad=0
for i in $(seq 1 120); do [ "$(cat "$M/f$i" 2>/dev/null)" = "$i" ] || bad=$((bad + 1)); done
expect_eq "files written around snapshots, after a crash" 0 "$bad"
grep -q "recovered .*snapshot at [1-9]" "$LOG" && ok "restart loaded a snapshot" || fail "restart did not load a snapshot: $(grep recovered "$LOG" | tail -n1)"
stop_cluckd

# --- a torn tail is cut and reported ---------------------------------------------
seg=$(ls "$D"/log-* | tail -n1)
printf '\x30\x00\x00\x00garbage-torn-write' >> "$seg"
start_cluckd --lease "$LEASE" || finish
expect_eq "data after a torn tail" "120" "$(cat "$M/f120" 2>&1)"
grep -Eqi "torn|corrupt|truncat|cut" "$LOG" && ok "the torn tail is reported" || fail "no message about the torn tail"

# --- one daemon per data directory ------------------------------------------------
mkdir -p "$T_DIR/m2"
timeout 10 "$CLUCKD" -f -n testnode -D "$D" "$T_DIR/m2" > /dev/null 2> "$T_DIR/err2"
rc=$?
mountpoint -q "$T_DIR/m2" && { fusermount3 -uz "$T_DIR/m2"; fail "second daemon mounted"; }
if [ "$rc" != 0 ] && grep -qi "data directory" "$T_DIR/err2"; then
	ok "second daemon on the same data directory refused: $(head -n1 "$T_DIR/err2")"
else
	fail "second daemon on the same data directory: exit $rc, $(head -n2 "$T_DIR/err2" | tr '\n' '|')"
fi
chattr -i "$T_DIR/m2" 2>/dev/null
stop_cluckd

finish
