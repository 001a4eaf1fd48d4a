#!/bin/sh
# t/fs-semaphore.sh - counting semaphores (SPEC 2.5) on a real cluckd mount:
# user.cluck.slots limits shared holders, exclusive still excludes all, bad
# values are refused, 0 means unlimited.
#
# It must never: sleep to make things happen (wait on the status file).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"
require_cmd setfattr getfattr

start_cluckd || finish
M=$MNT

: > "$M/pool"
expect_rc "setfattr user.cluck.slots 2" 0 setfattr -n user.cluck.slots -v 2 "$M/pool"
expect_eq "getfattr user.cluck.slots" 2 "$(getfattr --absolute-names -n user.cluck.slots --only-values "$M/pool" 2>&1)"

holder -s "$M/pool" S1; S1=$HPID
holder -s "$M/pool" S2; S2=$HPID
wait_until 5 eval 'granted S1 && granted S2' || fail "two shared holders of a 2-slot semaphore: got $(tr '\n' ' ' < "$ORDER")"
holder -s "$M/pool" S3; S3=$HPID
wait_until 5 waiters_are pool 1 || fail "third shared: expected waiters=1, got $(lock_field pool waiters)"
expect_rc "the third shared holder waits" 1 granted S3
expect_eq "holders of the 2-slot semaphore" 2 "$(lock_field pool holders)"
expect_rc "flock -s -n on a full semaphore" 1 flock -s -n "$M/pool" true
release "$S1"
if wait_until 2 granted S3; then ok "the third shared holder gets the freed slot"; else fail "the third shared holder not granted 2 s after a slot freed"; fi
expect_eq "still 2 holders" 2 "$(lock_field pool holders)"
holder -x "$M/pool" X; X=$HPID
wait_until 5 waiters_are pool 1
release "$S2"
expect_rc "flock -x waits while one shared holder is left" 1 granted X
release "$S3"
if wait_until 2 granted X; then ok "flock -x granted once every shared holder left"; else fail "flock -x not granted after the shared holders left"; fi
expect_rc "flock -s -n while exclusive holds a semaphore" 1 flock -s -n "$M/pool" true
release "$X"

# bad values
err=$(setfattr -n user.cluck.slots -v abc "$M/pool" 2>&1)
rc=$?
if [ $rc != 0 ]; then ok "slots 'abc' refused ($err)"; else fail "setfattr user.cluck.slots abc: expected an error, got exit 0"; fi
expect_errno "slots -1 refused" EINVAL setxattr "$M/pool" user.cluck.slots -1
expect_eq "slots unchanged after bad values" 2 "$(getfattr --absolute-names -n user.cluck.slots --only-values "$M/pool" 2>&1)"

# 0 = unlimited
setfattr -n user.cluck.slots -v 0 "$M/pool"
expect_eq "slots 0" 0 "$(getfattr --absolute-names -n user.cluck.slots --only-values "$M/pool" 2>&1)"
: > "$ORDER"
pids=
for i in 1 2 3 4 5; do holder -s "$M/pool" U$i; pids="$pids $HPID"; done
if wait_until 5 eval '[ "$(wc -l < "$ORDER")" = 5 ]'; then ok "slots 0: 5 shared holders at once"; else fail "slots 0: expected 5 shared holders, got $(wc -l < "$ORDER")"; fi
for p in $pids; do release "$p"; done

stop_cluckd
expect_eq "cluckd exit status after SIGTERM" 0 "$CLUCKD_RC"
finish
