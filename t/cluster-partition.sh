#!/bin/sh
# t/cluster-partition.sh - partitions and link cuts in a real cluster of 3
# voters and 2 members (--lease 3 --op-timeout 2): a member holding a lock
# cut off past its lease goes jeopardy then expired, its holder gets
# SIGTERM and the lock moves to another node only after the lease (the
# history's tokens and times prove the order); a partition healed inside
# the lease loses nothing; a one-way cut and an isolated leader (it steps
# down, the majority elects another) under a workload that t/histcheck
# validates; a member's link down puts it in jeopardy at once and link up
# brings it back.
#
# It must never: wait without a deadline, or leave a namespace, a mount, an
# nft rule or a process behind (t/netns.sh traps every exit).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/netns.sh"

LEASE=3
NS_ARGS=(--lease "$LEASE" --op-timeout 2)
ns_setup a b c m1 m2
ns_voters a b c
ns_start_all a b c m1 m2 || finish
ns_wait_leader 10 || { fail "no leader all nodes agree on within 10 s"; finish; }
ok "leader $NS_LEADER (term $NS_TERM)"
M1=$(ns_mnt m1)
session_is() { [ "$(ns_status "$1" session)" = "$2" ]; }
holders_on() { [ "$(ns_lock_field "$1" "$2" holders)" = "$3" ]; }
waiters_on() { [ "$(ns_lock_field "$1" "$2" waiters)" = "$3" ]; }

# --- a member cut off past its lease loses its lock ---------------------------
H1=$T_DIR/h1
: > "$H1"
NS_HIST=$H1
ns_client m1 holder pl ex 1 60000; P_HOLD=$CPID
wait_until 5 holders_on a pl 1 || fail "the hold on m1 is not seen on a"
ns_client b waiter pl ex 1 100; P_WAIT=$CPID
wait_until 5 waiters_on a pl 1 || fail "the waiter on b is not queued"
t0=$(now_ms)
ns_isolate m1
if wait_until $LEASE session_is m1 jeopardy; then ok "m1 isolated: session: jeopardy after $(( $(now_ms) - t0 )) ms"; else fail "m1 isolated: session '$(ns_status m1 session)' (expected jeopardy within $LEASE s)"; fi
if wait_until $((LEASE + 5)) eval 'session_is m1 expired || ns_status_all m1 | grep -q "^lost "'; then
	ok "m1: session expired/lost $(( $(now_ms) - t0 )) ms after the isolation"
else
	fail "m1: session '$(ns_status m1 session)' $((LEASE + 5)) s after the isolation (expected expired)"
fi
if wait_until 5 dead "$P_HOLD"; then
	wait "$P_HOLD" 2>/dev/null; rc=$?
	expect_eq "m1's holder got SIGTERM (--on-lost): exit" 143 "$rc"
else
	fail "m1's holder still runs 5 s after its session expired"
fi
expect_rc "m1's holder recorded the SIGTERM" 0 test -s "$H1.term"
expect_match "status on m1 names the lost lock" "^lost .*pl" "$(ns_status_all m1)"
if wait_until $((LEASE * 3)) dead "$P_WAIT"; then
	ok "the waiter on b was granted and done $(( $(now_ms) - t0 )) ms after m1's isolation"
else
	fail "the waiter on b not served within $((LEASE * 3)) s of m1's isolation"
fi
tw=$(awk '$1 == "b" && $2 == "waiter" { print $5 }' "$H1")
if [ -n "$tw" ]; then
	dt=$(( tw / 1000000 - t0 ))
	if [ "$dt" -ge $((LEASE * 1000 * 2 / 3)) ]; then ok "the lock moved to b $dt ms after the isolation (lease $LEASE s)"; else fail "the lock moved to b only $dt ms after the isolation"; fi
fi
if ns_histcheck "$H1"; then ok "history of the lost lock: the SIGTERMed hold ends before b's grant, tokens in order"; else fail "history of the lost lock is not valid"; fi
expect_eq "history: m1's hold ended by SIGTERM" 1 "$(grep -c '^m1 holder .* term$' "$H1")"
ns_heal
if wait_until 15 session_is m1 ok; then ok "m1 healed: session ok again"; else fail "m1 healed: session '$(ns_status m1 session)'"; fi
expect_rc "m1 takes locks again" 0 timeout 10 flock "$M1/pl" true

# --- a partition healed inside the lease loses nothing ---------------------------
H2=$T_DIR/h2
: > "$H2"
NS_HIST=$H2
ns_client m1 holder ph ex 1 6000; P_HOLD=$CPID
wait_until 5 holders_on a ph 1 || fail "the hold on m1 is not seen on a"
ns_client c waiter ph ex 1 100; P_WAIT=$CPID
wait_until 5 waiters_on a ph 1 || fail "the waiter on c is not queued"
ns_isolate m1
sleep $((LEASE / 2)).5
ns_heal
t0=$(now_ms)
if wait_until 5 session_is m1 ok; then ok "partition of $((LEASE / 2)).5 s healed: m1 session ok after $(( $(now_ms) - t0 )) ms"; else fail "partition healed: m1 session '$(ns_status m1 session)'"; fi
if alive "$P_HOLD"; then ok "m1's holder still holds after the short partition"; else fail "m1's holder died during a partition shorter than the lease"; fi
expect_eq "a: /ph holders after the short partition" 1 "$(ns_lock_field a ph holders)"
expect_rc "no SIGTERM marker for the short partition" 1 test -s "$H2.term"
wait_until 10 dead "$P_WAIT" || fail "the waiter on c not served after m1's hold ended"
wait "$P_HOLD" 2>/dev/null
expect_eq "m1's holder exit after its hold" 0 "$?"
expect_eq "history: m1's hold ended normally" 1 "$(grep -c '^m1 holder \S* ex [0-9]* [0-9]* [0-9]* call=[0-9]* end=[0-9]*$' "$H2")"
if ns_histcheck "$H2"; then ok "history of the short partition valid"; else fail "history of the short partition not valid"; fi

# --- one-way cut and leader isolation under a workload ------------------------------
H3=$T_DIR/h3
: > "$H3"
NS_HIST=$H3
WL=20
pids=
for n in a b c m1 m2; do
	ns_client $n w1 wx ex 0 5 --secs $WL --seed 1$RANDOM --survive 1; pids="$pids $CPID"
	ns_client $n w2 wm mix 0 5 --secs $WL --seed 2$RANDOM --survive 1; pids="$pids $CPID"
done
sleep 2
L=$NS_LEADER
F=$(for n in a b c; do [ "$n" != "$L" ] && echo $n; done | head -n1)
ns_cut_oneway "$L" "$F"
sleep 3
ns_heal
if ns_wait_leader 10; then ok "after a one-way cut $L -> $F: leader $NS_LEADER, term $NS_TERM"; else fail "no agreement after the one-way cut healed:$(ns_roles)"; fi
L=$NS_LEADER
t0=$(now_ms)
ns_isolate "$L"
rest=$(for n in a b c m1 m2; do [ "$n" != "$L" ] && echo $n; done)
if ns_wait_leader 10 $rest && [ "$NS_LEADER" != "$L" ]; then
	ok "isolated leader $L: $NS_LEADER elected by the majority after $(( $(now_ms) - t0 )) ms"
else
	fail "isolated leader $L: no new leader on the majority side within 10 s"
fi
if wait_until $((LEASE + 3)) eval '[ "$(ns_status "$L" role)" != leader ]'; then
	ok "the isolated leader stepped down ($(ns_status "$L" role)) $(( $(now_ms) - t0 )) ms after the isolation"
else
	fail "the isolated leader $L still says leader $((LEASE + 3)) s after the isolation"
fi
sleep 2
ns_heal
wait $pids
if ns_wait_leader 15; then ok "healed: one leader $NS_LEADER again"; else fail "healed: no agreement on a leader:$(ns_roles)"; fi
echo "workload under faults: $(grep -vc ' fail ' "$H3") holds, $(grep -c ' fail ' "$H3") failed calls"
if ns_histcheck "$H3"; then ok "no two conflicting holders during the cut and the isolation"; else fail "history under partitions not valid"; fi

# --- link down on a member -----------------------------------------------------------------
ns_wait_leader 10
t0=$(now_ms)
ns_link_down m2
if wait_until 1 session_is m2 jeopardy; then ok "m2 link down: jeopardy after $(( $(now_ms) - t0 )) ms"; else fail "m2 link down: session '$(ns_status m2 session)' after 1 s (expected jeopardy)"; fi
expect_eq "m2 status: link" down "$(ns_status m2 link | awk '{ print $1 }')"
t0=$(now_ms)
ns_link_up m2
if wait_until 3 session_is m2 ok; then ok "m2 link up: session ok after $(( $(now_ms) - t0 )) ms"; else fail "m2 link up: session '$(ns_status m2 session)' after 3 s"; fi
expect_match "m2 status: link up" "^up" "$(ns_status m2 link)"
expect_rc "m2 takes locks again" 0 timeout 10 flock "$(ns_mnt m2)/ld" true
finish
