#!/bin/sh
# t/cluster-failover.sh - crashes in a real 5-voter cluster with a member:
# the leader SIGKILLed while a follower holds a lock and other nodes wait
# (a new leader soon, the hold kept, the waiters served in turn, the dead
# node rejoins); a holder's node SIGKILLed (its lock moves on only after
# the lease, with a higher token); two voters lost keep the service, a
# third loses the quorum (non-blocking calls fail after --op-timeout,
# status says quorum: no) and one voter back restores it.  Prints the
# measured times.
#
# It must never: wait without a deadline, or leave a namespace, a mount or
# a process behind (t/netns.sh traps every exit).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/netns.sh"

LEASE=3
OPTO=2
NS_ARGS=(--lease "$LEASE" --op-timeout "$OPTO")
ns_setup a b c d e m1
ns_voters a b c d e
ns_start_all a b c d e m1 || finish
ns_wait_leader 10 || { fail "no leader all 6 nodes agree on within 10 s"; finish; }
ok "leader $NS_LEADER (term $NS_TERM)"

# nholder NODE FILE TAG: flock(1) on NODE's mount; once granted it records
# its token and TAG, then holds until killed.
nholder() {
	local f
	f=$(ns_mnt "$1")/$2
	flock -o "$f" sh -c "echo \$\$ >> '$T_PIDS'; getfattr --absolute-names -n user.cluck.token --only-values '$f' > '$T_DIR/tok.$3'; echo $3 >> '$ORDER'; exec sleep 120" &
	HPID=$!
	bg_track "$HPID"
	disown "$HPID"
}
tok() { cat "$T_DIR/tok.$1" 2>/dev/null; }
waiters_on() { [ "$(ns_lock_field "$1" "$2" waiters)" = "$3" ]; }
others() { local n; for n in "$@"; do [ "$n" != "$X" ] && echo "$n"; done; }

# --- the leader dies while a follower holds and two nodes wait ----------------------
L=$NS_LEADER
fols=($(for n in a b c d e; do [ "$n" != "$L" ] && echo $n; done))
H=${fols[0]}; W1=${fols[1]}
: > "$ORDER"
nholder "$H" fo HOLD; P_HOLD=$HPID
wait_until 5 granted HOLD || fail "the hold on $H was not granted"
nholder "$W1" fo W1; P_W1=$HPID
wait_until 5 waiters_on "$H" fo 1 || fail "the waiter on $W1 is not queued"
nholder m1 fo WM; P_WM=$HPID
wait_until 5 waiters_on "$H" fo 2 || fail "the waiter on m1 is not queued"
t0=$(now_ms)
ns_kill "$L" KILL
X=$L
if ns_wait_leader 10 $(others a b c d e m1); then
	t_lead=$(( $(now_ms) - t0 ))
	if [ "$t_lead" -le 3000 ]; then ok "new leader $NS_LEADER $t_lead ms after the leader's SIGKILL"; else fail "new leader only $t_lead ms after the leader's SIGKILL (expected <= 3000)"; fi
else
	fail "no new leader within 10 s of the leader's SIGKILL"
fi
if timeout 10 flock "$(ns_mnt "$W1")/other" true; then
	ok "next grant (another file, on $W1) $(( $(now_ms) - t0 )) ms after the leader's SIGKILL"
else
	fail "no grant on $W1 within 10 s of the leader's SIGKILL"
fi
# Past a whole lease the holder (alive, on a live node) must still hold.
sleep $((LEASE + 1))
if granted W1 || granted WM; then fail "a waiter was granted while the holder on $H lives"; else ok "the hold on $H survived the failover and a lease"; fi
expect_eq "$H: /fo holders after the failover" 1 "$(ns_lock_field "$H" fo holders)"
expect_eq "$H: /fo waiters after the failover" 2 "$(ns_lock_field "$H" fo waiters)"
t1=$(now_ms)
release "$P_HOLD"
if wait_until 5 granted W1; then ok "the waiter on $W1 granted $(( $(now_ms) - t1 )) ms after the release"; else fail "the waiter on $W1 not granted within 5 s of the release"; fi
if granted WM; then fail "m1's waiter granted while $W1 holds"; fi
release "$P_W1"
if wait_until 5 granted WM; then ok "then the waiter on m1"; else fail "the waiter on m1 not granted within 5 s"; fi
release "$P_WM"
th=$(tok HOLD); t1w=$(tok W1); tm=$(tok WM)
if [ -n "$th" ] && [ -n "$t1w" ] && [ -n "$tm" ] && [ "$th" -lt "$t1w" ] && [ "$t1w" -lt "$tm" ]; then
	ok "tokens across the failover: $th < $t1w < $tm"
else
	fail "tokens across the failover: $th, $t1w, $tm (expected increasing)"
fi
ns_start "$L" || finish
if ns_wait_leader 10; then ok "the killed leader $L rejoined (role $(ns_status "$L" role), leader $NS_LEADER)"; else fail "no agreement after $L restarted:$(ns_roles)"; fi

# --- a holder's node dies: its lock moves on only after the lease -------------------
: > "$ORDER"
W=${fols[2]}
nholder m1 hk MH; P_MH=$HPID
wait_until 5 granted MH || fail "the hold on m1 was not granted"
nholder "$W" hk WK; P_WK=$HPID
wait_until 5 waiters_on "$W" hk 1 || fail "the waiter on $W is not queued"
t0=$(now_ms)
ns_kill m1 KILL
if wait_until $((LEASE * 4 + 10)) granted WK; then
	dt=$(( $(now_ms) - t0 ))
	# The lease runs from m1's last acknowledged renewal, which came a
	# little before the kill: allow a third of it.
	if [ "$dt" -ge $((LEASE * 1000 * 2 / 3)) ]; then
		ok "m1's lock granted on $W $dt ms after m1's SIGKILL (lease $LEASE s)"
	else
		fail "m1's lock granted on $W only $dt ms after m1's SIGKILL, inside its $LEASE s lease"
	fi
else
	fail "m1's lock not granted elsewhere within $((LEASE * 4 + 10)) s of m1's SIGKILL"
fi
tmh=$(tok MH); twk=$(tok WK)
if [ -n "$tmh" ] && [ -n "$twk" ] && [ "$tmh" -lt "$twk" ]; then ok "token after the dead holder: $tmh < $twk"; else fail "tokens: dead holder $tmh, next $twk"; fi
release "$P_MH"; release "$P_WK"
ns_start m1 || finish

# --- 5 voters: two lost keep the service, three lose the quorum ----------------------
ns_wait_leader 10 || fail "no leader before the quorum test"
L=$NS_LEADER
fols=($(for n in a b c d e; do [ "$n" != "$L" ] && echo $n; done))
K1=$L; K2=${fols[0]}; K3=${fols[1]}; S=${fols[2]}
t0=$(now_ms)
ns_kill "$K1" KILL
ns_kill "$K2" KILL
if timeout 15 flock "$(ns_mnt "$S")/q" true; then
	ok "two voters ($K1, the leader, and $K2) SIGKILLed: $S granted $(( $(now_ms) - t0 )) ms later"
else
	fail "two voters SIGKILLed: no grant on $S within 15 s"
fi
expect_rc "with 3 of 5 voters a member still locks" 0 timeout 10 flock -n "$(ns_mnt m1)/q2" true
expect_eq "$S: quorum with 3 of 5 voters" yes "$(ns_status "$S" quorum)"
# The descriptor is opened while there is a quorum: an open without one
# is answered EIO like a namespace change; the lock call is what we test.
touch "$(ns_mnt "$S")/q3"
python3 -c '
import errno, fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
open(sys.argv[2] + ".ready", "w").close()
while not os.path.exists(sys.argv[2] + ".go"):
    time.sleep(0.01)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    r = "OK"
except OSError as x:
    r = errno.errorcode.get(x.errno, str(x.errno))
open(sys.argv[2], "w").write(r + "\n")' "$(ns_mnt "$S")/q3" "$T_DIR/q3" &
PQ=$!; bg_track "$PQ"
wait_until 5 test -e "$T_DIR/q3.ready" || fail "could not open q3 on $S"
ns_kill "$K3" KILL
if wait_until $((LEASE + 5)) eval '[ "$(ns_status "$S" quorum)" = no ]'; then ok "$S: quorum: no with 2 of 5 voters"; else fail "$S: status quorum is '$(ns_status "$S" quorum)' with 2 of 5 voters"; fi
t0=$(now_ms)
touch "$T_DIR/q3.go"
wait_until 20 test -s "$T_DIR/q3"
e=$(cat "$T_DIR/q3" 2>/dev/null)
dt=$(( $(now_ms) - t0 ))
expect_eq "non-blocking flock without a quorum" ENOLCK "$e"
# At --op-timeout, or earlier when the node's session lease runs out first
# (every request of a lost session is answered ENOLCK at once).
if [ "$dt" -le $((OPTO * 1000 + 1000)) ]; then
	ok "it failed after $dt ms (--op-timeout $OPTO, lease $LEASE)"
else
	fail "it failed after $dt ms (expected at most --op-timeout $OPTO s)"
fi
t0=$(now_ms)
ns_start "$K3" || finish
if wait_until 15 eval '[ "$(ns_status "$S" quorum)" = yes ]'; then ok "one voter back: quorum after $(( $(now_ms) - t0 )) ms"; else fail "one voter back: no quorum within 15 s"; fi
expect_rc "one voter back: flock works again" 0 timeout 10 flock "$(ns_mnt "$S")/q3" true
ns_start "$K1" && ns_start "$K2"
if ns_wait_leader 15; then ok "all voters back: leader $NS_LEADER, term $NS_TERM"; else fail "no agreement once all voters are back:$(ns_roles)"; fi
finish
