#!/bin/sh
# t/cluster-stop.sh - a clean stop in a real cluster of 3 voters (--lease 2
# --stop-timeout 3): a node SIGTERMed while one of its processes holds a
# lock keeps the lock for --stop-timeout, longer than a lease, so its
# keepalives went on (a flock -n on another node fails all that time),
# signals the holder, and only then lets the cluster free the lock (the
# other node's grant comes after the signal, with a higher token); the last
# voter standing, without a quorum, stops within a second.
#
# It must never: wait without a deadline, or leave a namespace, a mount or
# a process behind (t/netns.sh traps every exit).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/netns.sh"

NS_ARGS=(--lease 2 --op-timeout 2 --stop-timeout 3)
ns_setup a b c
ns_voters a b c
ns_start_all a b c || finish
ns_wait_leader 10 || { fail "no leader all nodes agree on within 10 s"; finish; }
ok "leader $NS_LEADER (term $NS_TERM)"

# The holder's node X is a follower; Y, another node, tries the lock.
nodes=($(for n in a b c; do [ "$n" != "$NS_LEADER" ] && echo $n; done))
X=${nodes[0]}
Y=${nodes[1]}
FX=$(ns_mnt "$X")/job
FY=$(ns_mnt "$Y")/job

# The holder on X: records its token, then on SIGTERM the time (ms).
python3 - "$FX" "$T_DIR" <<'EOF' &
import fcntl, os, signal, sys, time
path, d = sys.argv[1:3]
def on_term(s, f):
    with open(d + "/sig.X", "w") as o:
        o.write("%d\n" % (time.time_ns() // 1000000))
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
tok = os.getxattr(path, "user.cluck.token").decode()
with open(d + "/tok.X", "w") as o:
    o.write(tok + "\n")
time.sleep(60)
EOF
HP=$!
bg_track "$HP"
wait_until 5 test -s "$T_DIR/tok.X" || { fail "the holder on $X got no lock"; finish; }
wait_until 5 eval '[ "$(ns_lock_field "$Y" job holders)" = 1 ]' || fail "$Y does not see the hold"

t0=$(now_ms)
ns_kill "$X" TERM
# Try the lock on Y until it is granted: never before the holder on X was
# signalled.  The holder notes the time when its handler runs, a little
# after cluckd sent the signal (and the cluster may free the lock right
# after sending), so an attempt that began up to 200 ms before that note
# may win; one that ended before it must not.
tries=0 got= began=
end=$((t0 + 10000))
while [ "$(now_ms)" -lt "$end" ]; do
	tries=$((tries + 1))
	a=$(now_ms)
	if flock -n "$FY" sh -c "getfattr --absolute-names -n user.cluck.token --only-values '$FY' > '$T_DIR/tok.Y'" 2>/dev/null; then
		got=$(now_ms)
		began=$a
		break
	fi
	sleep 0.05
done
sx=$(cat "$T_DIR/sig.X" 2>/dev/null)
if [ -z "$got" ]; then
	fail "$Y never got the lock within 10 s of $X's SIGTERM"
elif [ -z "$sx" ] || [ "$sx" -gt "$got" ] || [ "$began" -lt $((sx - 200)) ]; then
	fail "$Y got the lock (attempt from $((began - t0)) to $((got - t0)) ms after $X's SIGTERM) before the holder on $X was signalled (at '${sx:+$((sx - t0))}' ms): two holders"
else
	ok "$Y's flock -n failed $((tries - 1)) times until the holder on $X was signalled ($((sx - t0)) ms after SIGTERM); granted by the attempt from $((began - t0)) to $((got - t0)) ms"
fi
if [ -n "$sx" ] && [ "$sx" -ge $((t0 + 2900)) ]; then ok "the holder kept its lock for --stop-timeout, past a lease"; else fail "the holder was signalled at '${sx:+$((sx - t0))}' ms, before --stop-timeout (3 s)"; fi
tx=$(cat "$T_DIR/tok.X"); ty=$(cat "$T_DIR/tok.Y" 2>/dev/null)
if [ -n "$ty" ] && [ "$ty" -gt "$tx" ]; then ok "tokens: $tx on $X < $ty on $Y"; else fail "tokens: $tx on $X, then '$ty' on $Y (expected higher)"; fi
if wait_until 3 dead "${NS_PID[$X]}"; then ok "$X exited $(( $(now_ms) - t0 )) ms after SIGTERM"; else fail "$X still running $(( $(now_ms) - t0 )) ms after SIGTERM"; fi
ns_reap "$X"
expect_eq "$X: exit status after the stop" 0 "$NS_RC"
expect_match "$X: the log says the holder was signalled" "stopping: 1 held locks given up" "$(cat "$(ns_log "$X")")"

# --- the last voter standing, without a quorum, stops within a second ---------
rest=($(for n in a b c; do [ "$n" != "$X" ] && echo $n; done))
ns_stop "${rest[0]}"
expect_eq "${rest[0]}: exit status" 0 "$NS_RC"
Z=${rest[1]}
t0=$(now_ms)
kill -TERM "${NS_PID[$Z]}"
if wait_until 5 dead "${NS_PID[$Z]}"; then
	dt=$(( $(now_ms) - t0 ))
	if [ "$dt" -le 1000 ]; then ok "the last voter $Z, without a quorum, stopped in $dt ms"; else fail "the last voter $Z, without a quorum, stopped only after $dt ms (expected <= 1000)"; fi
else
	fail "the last voter $Z still running 5 s after SIGTERM"
fi
ns_reap "$Z"
expect_eq "$Z: exit status" 0 "$NS_RC"

finish
