#!/bin/sh
# t/cluster-unlock.sh - unlock and close always succeed (cluckfs(5), issue
# 9): a member holding a flock is cut off and its holder unlocks; on m1 the
# unlock is still waiting for the cluster when the session expires
# (--op-timeout 30), on m2 it times out first (--op-timeout 1) and the
# session expires after.  Either way the unlock returns 0, the holder is
# not signalled as having lost a lock it gave up, and once the network
# heals the same descriptor locks again (it used to get ENOLCK until a
# second unlock).
#
# It must never: wait without a deadline, or leave a namespace, a mount or
# a process behind (t/netns.sh traps every exit).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/netns.sh"

LEASE=3
NS_ARGS=(--lease "$LEASE")
ns_setup a m1 m2
ns_voters a
{ ns_launch a && ns_launch m1 --op-timeout 30 && ns_launch m2 --op-timeout 1; } || finish
ns_wait_up 20 a m1 m2 || finish
ns_wait_leader 10 || { fail "no leader all nodes agree on within 10 s"; finish; }
session_is() { [ "$(ns_status "$1" session)" = "$2" ]; }
said() { grep -qx "$2" "$T_DIR/$1.out"; }
declare -A P
for n in m1 m2; do
	"$FSPROBE" flock-steps "$(ns_mnt "$n")/u-$n" > "$T_DIR/$n.out" 2>&1 &
	P[$n]=$!
	bg_track "${P[$n]}"
	wait_until 5 said "$n" locked || fail "$n: the holder did not get its lock"
	wait_until 5 eval '[ "$(ns_lock_field a "u-$n" holders)" = 1 ]' ||
		fail "$n: the hold is not seen on the leader"
done

t0=$(now_ms)
ns_isolate m1
ns_isolate m2
kill -USR1 "${P[m1]}" "${P[m2]}"
for n in m1 m2; do
	if wait_until $((LEASE + 8)) eval 'grep -q "^unlock=" "$T_DIR/$n.out"'; then
		expect_eq "$n: the unlock during the isolation ($(grep '^unlock_ms=' "$T_DIR/$n.out"))" \
			unlock=OK "$(grep '^unlock=' "$T_DIR/$n.out")"
	else
		fail "$n: the unlock did not return within $((LEASE + 8)) s"
	fi
done
for n in m1 m2; do
	if wait_until $((LEASE + 8)) session_is "$n" expired; then
		ok "$n: session expired $(( $(now_ms) - t0 )) ms after the isolation"
	else
		fail "$n: session '$(ns_status "$n" session)' $((LEASE + 8)) s after the isolation"
	fi
done
ms=$(sed -n 's/^unlock_ms=//p' "$T_DIR/m2.out")
if [ -n "$ms" ] && [ "$ms" -lt $((LEASE * 1000)) ]; then ok "m2: its unlock timed out (${ms} ms) before the session expired"; else fail "m2: its unlock took '${ms}' ms (expected the 1 s op-timeout, before the lease)"; fi
ns_heal
for n in m1 m2; do
	if wait_until 15 session_is "$n" ok; then ok "$n healed: session ok"; else fail "$n healed: session '$(ns_status $n session)'"; fi
done
for n in m1 m2; do
	# The old session's hold goes when the leader expires that session.
	wait_until 10 eval '[ "$(ns_lock_field a "u-$n" holders)" != 1 ]' ||
		fail "$n: the old session's hold is still on the leader"
	kill -USR2 "${P[$n]}"
	wait_until 10 eval 'grep -q "^relock=" "$T_DIR/$n.out"' || fail "$n: no answer to the relock"
	expect_eq "$n: the same descriptor locks again after the heal" relock=OK \
		"$(grep '^relock=' "$T_DIR/$n.out")"
	expect_rc "$n: the holder that unlocked was not signalled" 1 said "$n" term
	expect_match "$n: the session's end lost no hold" " lost: 0 held locks lost" \
		"$(grep ' held locks lost' "$(ns_log "$n")")"
done
finish
