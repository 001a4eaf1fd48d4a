#!/bin/sh
# t/cluster-expiry.sh - what the end of a node's session must not do
# (issue 9).  Unlock and close always succeed (cluckfs(5)): two members
# hold a flock and a POSIX lock each and are cut off; on m1 (--op-timeout
# 30) the unlock is still waiting for the cluster when the session
# expires, on m2 (--op-timeout 1) it times out first and the session
# expires after.  Either way the unlock returns 0, its holder is not
# signalled as having lost a lock it gave up, and once the network heals
# the same descriptor locks again (it used to get ENOLCK until a second
# unlock).  Then the same with a close in flight: no signal, and the
# reopened file locks at once.  Last, an O_EXCL lockfile of m1 that a
# process on a holds keeps its name when m1's session ends, until that
# lock is released (it used to go at once, so a new file could take the
# name of a held lock).
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
answer() { sed -n "s/^$2=//p" "$T_DIR/$1.out" | tail -n1; }
PROBES="m1-flock m1-posix m2-flock m2-posix"
declare -A P
for p in $PROBES; do
	n=${p%-*}
	"$FSPROBE" lock-steps "$(ns_mnt "$n")/$p" "${p#*-}" > "$T_DIR/$p.out" 2>&1 &
	P[$p]=$!
	bg_track "${P[$p]}"
	wait_until 5 said "$p" locked || fail "$p: the holder did not get its lock"
done

# isolate_expire SIG: cuts both members off, sends SIG to every probe, and
# waits for both sessions to expire.
isolate_expire() {
	local n p t0
	for p in $PROBES; do
		wait_until 5 eval '[ "$(ns_lock_field a "$p" holders)" = 1 ]' ||
			fail "$p: the hold is not seen on the leader"
	done
	t0=$(now_ms)
	ns_isolate m1
	ns_isolate m2
	for p in $PROBES; do kill -s "$1" "${P[$p]}"; done
	for n in m1 m2; do
		if wait_until $((LEASE + 8)) session_is "$n" expired; then
			ok "$n: session expired $(( $(now_ms) - t0 )) ms after the isolation"
		else
			fail "$n: session '$(ns_status "$n" session)' $((LEASE + 8)) s after the isolation"
		fi
	done
}

# heal_wait: heals, waits for both sessions and for the old holds to go.
heal_wait() {
	local n p
	ns_heal
	for n in m1 m2; do
		wait_until 15 session_is "$n" ok || fail "$n healed: session '$(ns_status $n session)'"
	done
	# The old session's holds go when the leader expires that session.
	for p in $PROBES; do
		wait_until 10 eval '[ "$(ns_lock_field a "$p" holders)" != 1 ]' ||
			fail "$p: the old session's hold is still on the leader"
	done
}

# --- an unlock in flight ----------------------------------------------------------
isolate_expire USR1
for p in $PROBES; do
	wait_until 10 eval '[ -n "$(answer $p unlock)" ]' || fail "$p: the unlock did not return"
	expect_eq "$p: the unlock during the isolation ($(answer "$p" unlock_ms) ms)" OK "$(answer "$p" unlock)"
done
for p in m2-flock m2-posix; do
	ms=$(answer $p unlock_ms)
	if [ -n "$ms" ] && [ "$ms" -lt $((LEASE * 1000)) ]; then ok "$p: the unlock timed out (${ms} ms) before the session expired"; else fail "$p: the unlock took '${ms}' ms (expected the 1 s op-timeout, before the lease)"; fi
done
heal_wait
for p in $PROBES; do
	kill -USR2 "${P[$p]}"
	wait_until 10 eval '[ -n "$(answer $p relock)" ]' || fail "$p: no answer to the relock"
	expect_eq "$p: the same descriptor locks again after the heal" OK "$(answer "$p" relock)"
done

# --- a close in flight ------------------------------------------------------------------
isolate_expire HUP
for p in $PROBES; do
	# status says "expired" from the lease's clock; the close in
	# flight is answered when the node acts on it, a moment later.
	wait_until 5 eval '[ -n "$(answer $p closed)" ]'
	expect_eq "$p: the close during the isolation" OK "$(answer "$p" closed)"
done
heal_wait
for p in $PROBES; do
	kill -INT "${P[$p]}"
	wait_until 10 eval '[ -n "$(answer $p reopen)" ]' || fail "$p: no answer to the reopen"
	expect_eq "$p: the reopened file locks at once after the heal" OK "$(answer "$p" reopen)"
	expect_rc "$p: the holder that let go was never signalled" 1 said "$p" term
done
for n in m1 m2; do
	expect_eq "$n: its two expired sessions lost no hold" "2 0" \
		"$(grep -c ' held locks lost' "$(ns_log "$n")") $(grep ' held locks lost' "$(ns_log "$n")" | grep -vc ' lost: 0 held locks lost')"
done

# --- a held lockfile outlives its creator's session ----------------------------------
MA=$(ns_mnt a)
expect_rc "m1 creates an O_EXCL lockfile" 0 "$FSPROBE" excl "$(ns_mnt m1)/eph"
"$FSPROBE" lock-steps "$MA/eph" flock > "$T_DIR/a-eph.out" 2>&1 &
P[a-eph]=$!
bg_track "${P[a-eph]}"
wait_until 5 said a-eph locked || fail "a: the holder did not get its lock on m1's lockfile"
ino=$(stat -c %i "$MA/eph")
nsess=$(ns_status a sessions)
ns_isolate m1
if wait_until $((LEASE * 3 + 5)) eval '[ "$(ns_status a sessions)" -lt "$nsess" ]'; then
	ok "the leader closed m1's session"
else
	fail "the leader still counts $(ns_status a sessions) sessions"
fi
sleep 1
expect_eq "m1's lockfile keeps its name while a holds it" "$ino" "$(stat -c %i "$MA/eph" 2>&1)"
expect_errno "no new lockfile takes the name" EEXIST excl "$MA/eph"
kill -USR1 "${P[a-eph]}"
if wait_until 5 eval '[ ! -e "$MA/eph" ]'; then ok "the lockfile goes once its lock is released"; else fail "m1's lockfile still there 5 s after its lock was released"; fi
expect_errno "then a new lockfile may take the name" OK excl "$MA/eph"
ns_heal
finish
