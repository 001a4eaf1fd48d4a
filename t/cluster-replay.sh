#!/bin/sh
# t/cluster-replay.sh - the replay attack of issue 9 on a real cluster of 3
# voters and a member: what follower F sends follower O is captured on
# O's link for four leases; F holds a lock, a waiter on the leader L
# queues behind it, F is SIGKILLed, and the captured datagrams are
# replayed once, at the pace they were sent, to every other node (L, the
# member, and O itself).  A datagram opens at one receiver once (cluck-protocol(7)),
# so the replay must not keep F's session alive: the waiter on L is
# granted about a lease after the kill, while the replay still runs; L
# and the member count every replayed datagram as an authentication
# failure, O as a replay.  (Before wire version 2, L accepted the replayed
# keepalives and F's lock stayed held for as long as the replay went on:
# the waiter was granted a lease after the replay ended.)
#
# The capture is a packet socket in O's namespace (python3), the replay a
# plain UDP socket in F's namespace (its address is free once F is dead).
#
# It must never: wait without a deadline, or leave a namespace, a mount or
# a process behind (t/netns.sh traps every exit).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/netns.sh"
require_cmd python3

LEASE=3
CAPTURE_SECS=12         # what the attacker records, then replays once
PORT=7470
NS_ARGS=(--lease "$LEASE" --op-timeout 2)

# The packet capture: every UDP datagram from $1 to $2:$3 seen on eth0, one
# line each: "seconds hex-payload".  Runs until killed.
cat > "$T_DIR/capture.py" <<'EOF'
import socket, struct, sys, time
src, dst, port, out = socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.bind(("eth0", 0))
with open(out, "w") as f:
    print("ready", file=f, flush=True)
    while True:
        p = s.recv(70000)
        ihl = (p[0] & 15) * 4
        if len(p) < ihl + 8 or p[9] != 17 or p[12:16] != src or p[16:20] != dst:
            continue
        if struct.unpack("!H", p[ihl + 2:ihl + 4])[0] != port:
            continue
        print("%.6f %s" % (time.monotonic(), p[ihl + 8:].hex()), file=f, flush=True)
EOF
# The replay: the captured datagrams to every target (IP), once, at the
# pace they were captured.  Prints how many went to each target.
cat > "$T_DIR/replay.py" <<'EOF'
import socket, sys, time
cap, port, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = [l.split() for l in open(cap) if l[0].isdigit()]
rows = [(float(t), bytes.fromhex(h)) for t, h in rows]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
base, sent = time.monotonic(), 0
for t, d in rows:
    wait = base + (t - rows[0][0]) - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    for ip in targets:
        s.sendto(d, (ip, port))
    sent += 1
print(sent)
EOF

ns_setup a b c m
ns_voters a b c
ns_start_all a b c m || finish
ns_wait_leader 10 || { fail "no leader all 4 nodes agree on within 10 s:$(ns_roles)"; finish; }
L=$NS_LEADER
fols=($(for n in a b c; do [ "$n" != "$L" ] && echo $n; done))
F=${fols[0]}; O=${fols[1]}
ok "leader $L; F=$F (holds, then dies), O=$O (its traffic from F is recorded)"

# nholder NODE FILE TAG: flock(1) on NODE's mount; once granted it logs TAG
# to $ORDER, then holds until killed.
nholder() {
	local f
	f=$(ns_mnt "$1")/$2
	flock -o "$f" sh -c "echo \$\$ >> '$T_PIDS'; echo $3 >> '$ORDER'; exec sleep 120" &
	HPID=$!
	bg_track "$HPID"
	disown "$HPID"
}
rx() { ns_metric "$1" "cluck_peer_datagrams_total\\{dir=\"rx\",result=\"$2\"\\}"; }

# --- record F -> O ------------------------------------------------------------------
: > "$ORDER"
nholder "$F" held HF; P_HF=$HPID
wait_until 5 granted HF || { fail "the hold on $F was not granted"; finish; }
nholder "$L" held HL; P_HL=$HPID
wait_until 5 eval '[ "$(ns_lock_field "$L" held waiters)" = 1 ]' || fail "the waiter on $L is not queued"
ns_exec "$O" python3 "$T_DIR/capture.py" "${NS_IP[$F]}" "${NS_IP[$O]}" "$PORT" "$T_DIR/cap" &
CAP=$!; bg_track "$CAP"
wait_until 5 grep -q ready "$T_DIR/cap" || { fail "the capture did not start"; finish; }
sleep "$CAPTURE_SECS"
ncap=$(grep -c '^[0-9]' "$T_DIR/cap")
# Keepalives go out every quarter of the lease: at least that many.
if [ "$ncap" -ge $((CAPTURE_SECS * 4 / LEASE - 1)) ]; then
	ok "captured $ncap datagrams from $F to $O in $CAPTURE_SECS s"
else
	fail "captured only $ncap datagrams from $F to $O in $CAPTURE_SECS s"; finish
fi

# --- F dies; its datagrams to O are replayed to everyone else --------------------------
auth_l=$(rx "$L" auth); auth_m=$(rx m auth); rep_o=$(rx "$O" replay); ok_l=$(rx "$L" ok)
t0=$(now_ms)
ns_kill "$F" KILL
kill_tree TERM "$CAP"; wait "$CAP" 2>/dev/null
ns_exec "$F" python3 "$T_DIR/replay.py" "$T_DIR/cap" "$PORT" \
	"${NS_IP[$L]}" "${NS_IP[m]}" "${NS_IP[$O]}" > "$T_DIR/sent" &
REP=$!; bg_track "$REP"
if wait_until $((CAPTURE_SECS + LEASE * 3)) granted HL; then
	dt=$(( $(now_ms) - t0 ))
	if alive "$REP"; then
		ok "the waiter on $L granted $dt ms after $F's SIGKILL, while the replay still ran (lease $LEASE s)"
	else
		fail "the waiter on $L granted only $dt ms after $F's SIGKILL, after the $CAPTURE_SECS s replay ended: the replay kept $F's session alive"
	fi
	if [ "$dt" -le $(( (LEASE * 2 + 2) * 1000 )) ]; then
		ok "$F's lock moved on within two leases and 2 s"
	else
		fail "$F's lock moved on only after $dt ms (lease $LEASE s)"
	fi
else
	fail "the waiter on $L not granted within $((CAPTURE_SECS + LEASE * 3)) s of $F's SIGKILL"
fi
wait_until $((CAPTURE_SECS + 5)) dead "$REP" || fail "the replay did not end"
wait "$REP" 2>/dev/null
sent=$(cat "$T_DIR/sent")
[ -n "$sent" ] && [ "$sent" -gt 0 ] || { fail "the replay sent nothing"; finish; }
ok "replayed $sent datagrams to each of $L, m and $O"
# Every replayed datagram is counted where it lands, at once.
counted() { [ $(( $(rx "$L" auth) - auth_l )) -ge "$sent" ] && [ $(( $(rx m auth) - auth_m )) -ge "$sent" ] &&
	[ $(( $(rx "$O" replay) - rep_o )) -ge "$sent" ]; }
wait_until 3 counted
expect_eq "$L (leader) counts each replayed datagram as an auth failure" "$sent" "$(( $(rx "$L" auth) - auth_l ))"
expect_eq "m (member) counts each replayed datagram as an auth failure" "$sent" "$(( $(rx m auth) - auth_m ))"
expect_eq "$O (the node they were meant for) counts each as a replay" "$sent" "$(( $(rx "$O" replay) - rep_o ))"
expect_eq "$L: no replayed datagram counted as self" 0 "$(rx "$L" self)"
echo "# $L accepted $(( $(rx "$L" ok) - ok_l )) datagrams meanwhile (from the live nodes)"
release "$P_HF"; release "$P_HL"

for n in "$L" "$O" m; do
	ns_stop "$n"
	expect_eq "$n: exit after SIGTERM" 0 "$NS_RC"
done
finish
