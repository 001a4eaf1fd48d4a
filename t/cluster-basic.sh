#!/bin/sh
# t/cluster-basic.sh - a real cluster of 3 voters and 2 members, each
# cluckd in its own network namespace: one leader that every node names;
# flock, lockfiles and POSIX locks exclusive across nodes, a waiter on
# another node granted after the release with a higher token; reads
# linearizable on members (rm then an O_EXCL create elsewhere, create then
# stat elsewhere, 50 rounds each, and what a lookup costs); a concurrent
# workload on all five nodes validated by t/histcheck (which must itself
# reject a bad history); a voter restarted with its data directory keeps
# the namespace; no key refused with exit 2; a wrong key never joins and
# its datagrams are counted as authentication drops.
#
# It must never: wait without a deadline, or leave a namespace, a mount or
# a process behind (t/netns.sh traps every exit).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/netns.sh"

# --- histcheck itself must be able to fail ---------------------------------------
printf '%s\n' "a c1 /x ex 100 200 1" "b c1 /x ex 150 300 2" > "$T_DIR/bad1"
printf '%s\n' "a c1 /x ex 100 200 7" "b c1 /x ex 250 300 7" > "$T_DIR/bad2"
printf '%s\n' "a c1 /x sh 100 200 3" "b c1 /x ex 250 300 2" > "$T_DIR/bad3"
printf '%s\n' "a c1 /x ex 100 200 -" > "$T_DIR/bad4"
printf '%s\n' "a c1 /x sh 100 200 1" "b c1 /x sh 150 300 2" "a c1 /x ex 400 500 3" \
	"a c2 /x ex 600 9000 4 lost" "b c1 /x ex 700 800 5" > "$T_DIR/good"
expect_rc "histcheck: overlapping exclusive holds are a violation" 1 "$HISTCHECK" "$T_DIR/bad1"
expect_rc "histcheck: two holds with one token are a violation" 1 "$HISTCHECK" "$T_DIR/bad2"
expect_rc "histcheck: a token going down is a violation" 1 "$HISTCHECK" "$T_DIR/bad3"
expect_rc "histcheck: a hold without a token is a violation" 1 "$HISTCHECK" "$T_DIR/bad4"
expect_rc "histcheck: a valid history passes" 0 "$HISTCHECK" "$T_DIR/good"

ns_setup a b c m1 m2
ns_voters a b c
ns_start_all a b c m1 m2 || finish
A=$(ns_mnt a); B=$(ns_mnt b); C=$(ns_mnt c); M1=$(ns_mnt m1); M2=$(ns_mnt m2)

# --- one leader, every node agrees ----------------------------------------------------
t0=$(now_ms)
if ns_wait_leader 10; then
	ok "one leader ($NS_LEADER, term $NS_TERM) named by all 5 nodes after $(( $(now_ms) - t0 )) ms"
else
	fail "no single leader all nodes agree on within 10 s:$(for n in a b c m1 m2; do printf ' %s=%s/%s/%s' $n "$(ns_status $n role)" "$(ns_status $n leader)" "$(ns_status $n term)"; done)"
fi
roles=$(for n in a b c m1 m2; do ns_status $n role; done | sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }')
# A node opens its session once it knows the leader (its SESSION_OPEN
# committed and applied); until then its status says jeopardy, and a
# follower's quorum counts from the leader's first message to it.  Agreeing
# on the leader does not mean all that happened yet: wait for it.
all_in() {
	local n
	for n in a b c m1 m2; do
		[ "$(ns_status $n quorum)" = yes ] && [ "$(ns_status $n session)" = ok ] || return 1
	done
}
t0=$(now_ms)
wait_until 10 all_in && echo "# every session open and every quorum seen $(( $(now_ms) - t0 )) ms after the leader was agreed"
expect_eq "roles" "follower=2 leader=1 member=2 " "$roles"
for n in a b c m1 m2; do
	expect_eq "$n: quorum" yes "$(ns_status $n quorum)"
	expect_eq "$n: session" ok "$(ns_status $n session)"
done

# --- flock is cluster-wide; the waiters on other nodes go in order ---------------------
# nholder MNT FILE TAG: flock(1) on FILE under MNT; once granted it records
# its token (read through its parent, the lock owner) and TAG, then holds.
nholder() {
	local f=$1/$2 tag=$3
	flock -o "$f" sh -c "echo \$\$ >> '$T_PIDS'; getfattr --absolute-names -n user.cluck.token --only-values '$f' > '$T_DIR/tok.$tag'; echo $tag >> '$ORDER'; exec sleep 60" &
	HPID=$!
	bg_track "$HPID"
	disown "$HPID"
}
tok() { cat "$T_DIR/tok.$1" 2>/dev/null; }

: > "$ORDER"
nholder "$A" x HA; HA=$HPID
wait_until 5 granted HA || fail "flock on a: not granted in 5 s"
nholder "$C" x HC; HC=$HPID
wait_until 5 eval '[ "$(ns_lock_field a x waiters)" = 1 ]' || fail "flock on c: a's status shows $(ns_lock_field a x waiters) waiters, expected 1"
nholder "$M1" x HM; HM=$HPID
wait_until 5 eval '[ "$(ns_lock_field a x waiters)" = 2 ]' || fail "flock on m1: a's status shows $(ns_lock_field a x waiters) waiters, expected 2"
if granted HC || granted HM; then fail "a flock on c or m1 was granted while a holds"; else ok "flock on a blocks flock on c and on member m1"; fi
expect_rc "flock -n on b while a holds" 1 flock -n "$B/x" true
expect_rc "flock -n on m2 while a holds" 1 flock -n "$M2/x" true
expect_eq "b's status: /x mode" ex "$(ns_lock_field b x mode)"
t0=$(now_ms)
release "$HA"
if wait_until 5 granted HC; then ok "c's waiter granted $(( $(now_ms) - t0 )) ms after a released"; else fail "c's waiter not granted 5 s after a released"; fi
if granted HM; then fail "m1's waiter granted while c holds"; else ok "m1 still waits while c holds"; fi
release "$HC"
wait_until 5 granted HM || fail "m1's waiter not granted after c released"
expect_eq "grant order" "HA HC HM" "$(tr '\n' ' ' < "$ORDER" | sed 's/ $//')"
ta=$(tok HA); tc=$(tok HC); tm=$(tok HM)
if [ -n "$ta" ] && [ -n "$tc" ] && [ -n "$tm" ] && [ "$ta" -lt "$tc" ] && [ "$tc" -lt "$tm" ]; then
	ok "tokens increase across nodes: $ta < $tc < $tm"
else
	fail "tokens across nodes: a=$ta c=$tc m1=$tm (expected strictly increasing)"
fi
release "$HM"

# --- lockfiles ---------------------------------------------------------------------------
expect_rc "lockfile created on a" 0 bash -c "set -C; echo a > '$A/job.lock'"
expect_rc "lockfile refused on c" 1 bash -c "set -C; echo c > '$C/job.lock'"
expect_rc "lockfile refused on member m1" 1 bash -c "set -C; echo m1 > '$M1/job.lock'"
expect_eq "lockfile content seen on m2" a "$(cat "$M2/job.lock" 2>&1)"
rm -f "$A/job.lock"
expect_rc "lockfile created on m1 after a removed it" 0 bash -c "set -C; echo m1 > '$M1/job.lock'"
rm -f "$M1/job.lock"

# --- reads are linearizable: a change on one node is seen by the next operation elsewhere ---
# One process does the change through one mount and the read through
# another at once, so a member answering from a replica that has not
# applied the change yet (no read barrier) fails the round.
# linz_probe MODE CHANGE_MNT READ_MNT ROUNDS: prints "ok N" or what went wrong.
linz_probe() {
	python3 - "$@" <<'EOF2'
import os, sys
mode, w, r, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
X = os.O_CREAT | os.O_EXCL | os.O_WRONLY
for i in range(n):
    if mode == "rm-excl":
        # w creates, r sees it, w removes it, r's O_EXCL create must win.
        os.close(os.open(os.path.join(w, "linz.lock"), X, 0o644))
        os.stat(os.path.join(r, "linz.lock"))
        os.unlink(os.path.join(w, "linz.lock"))
        try:
            os.close(os.open(os.path.join(r, "linz.lock"), X, 0o644))
        except OSError as e:
            print("round %d: O_EXCL create after the rm elsewhere: %s" % (i + 1, e.strerror)); sys.exit(1)
        os.unlink(os.path.join(r, "linz.lock"))
    else:
        # w creates a new name, r must see it at once.
        os.close(os.open(os.path.join(w, "linz.%d" % i), X, 0o644))
        try:
            os.stat(os.path.join(r, "linz.%d" % i))
        except OSError as e:
            print("round %d: stat of a file just made elsewhere: %s" % (i + 1, e.strerror)); sys.exit(1)
print("ok %d" % n)
EOF2
}
# a to m1, and to m2 the leader, or b when a leads: both a leader's and a
# follower's changes.
W2=$NS_LEADER; [ "$W2" = a ] && W2=b
for pair in "a:$A:m1:$M1" "$W2:$(ns_mnt "$W2"):m2:$M2"; do
	IFS=: read -r wn wm rn rm_ <<< "$pair"
	expect_eq "rm on $wn, then at once an O_EXCL create on member $rn: 50 rounds" "ok 50" "$(linz_probe rm-excl "$wm" "$rm_" 50 2>&1)"
	expect_eq "a file created on $wn is at once visible (stat) on member $rn: 50 rounds" "ok 50" "$(linz_probe visible "$wm" "$rm_" 50 2>&1)"
	rm -f "$wm"/linz.*
done
# What the barrier costs a member: lookups (stat of a missing name) per node.
lookup_us() {
	python3 - "$1" <<'EOF2'
import os, sys, time
p = os.path.join(sys.argv[1], "no-such-file")
ts = []
for _ in range(300):
    t = time.perf_counter_ns()
    try:
        os.stat(p)
    except FileNotFoundError:
        pass
    ts.append(time.perf_counter_ns() - t)
ts.sort()
print("p50 %d us, p99 %d us" % (ts[len(ts) // 2] // 1000, ts[len(ts) * 99 // 100] // 1000))
EOF2
}
barrier_mean() {
	timeout -s KILL 2 cat "$(ns_mnt "$1")/metrics" 2>/dev/null | awk '
		/^cluck_read_barrier_seconds_sum / { s = $2 } /^cluck_read_barrier_seconds_count / { c = $2 }
		END { if (c > 0) printf "%d reads waited %.1f us on average", c, s * 1e6 / c }'
}
for n in a b c m1; do
	echo "# lookup latency on $n ($(ns_status $n role)): $(lookup_us "$(ns_mnt $n)"); read barrier: $(barrier_mean $n)"
done
stale=$(ns_metric m1 'cluck_stale_reads_total')
expect_eq "m1 answered no read without its barrier (cluck_stale_reads_total)" 0 "$stale"

# --- POSIX locks (lockf) ---------------------------------------------------------------
"$FSPROBE" lock "$A/p" wr 0 0 > "$T_DIR/plock" &
PP=$!; bg_track "$PP"
wait_until 5 grep -qx locked "$T_DIR/plock" || fail "fcntl lock on a not taken in 5 s"
expect_rc "F_SETLK on c while a holds a write lock" 1 "$FSPROBE" lock "$C/p" wr 0 0 --nb --hold 0
expect_rc "F_SETLK on m2 while a holds a write lock" 1 "$FSPROBE" lock "$M2/p" rd 10 5 --nb --hold 0
# SPEC 2.3 says l_pid -1 for a remote holder, but the kernel turns any pid a
# FUSE server reports that is not one of its processes into 0.
expect_match "F_GETLK on c reports a's write lock with no local pid" "^type=wr .*pid=(-1|0)$" "$("$FSPROBE" getlk "$C/p" wr 0 0)"
python3 -c 'import fcntl, sys; f = open(sys.argv[1], "w"); fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)' "$M1/p" 2>/dev/null
expect_eq "python lockf on m1 while a holds: refused" 1 "$?"
kill "$PP"; wait "$PP" 2>/dev/null
if wait_until 5 "$FSPROBE" lock "$C/p" wr 0 0 --nb --hold 0; then ok "F_SETLK on c after a's holder exited"; else fail "F_SETLK on c still busy 5 s after a's holder exited"; fi

# --- a concurrent workload on all five nodes -------------------------------------------------
WL_SECS=${WL_SECS:-10}
: > "$NS_HIST"
pids=
seed=1
for n in a b c m1 m2; do
	ns_client $n f1 wx ex 0 3 --secs "$WL_SECS" --seed $seed; pids="$pids $CPID"
	ns_client $n f2 wm mix 0 3 --secs "$WL_SECS" --seed $((seed + 10)); pids="$pids $CPID"
	ns_client $n f3 wp wr 0 2 --secs "$WL_SECS" --seed $((seed + 20)); pids="$pids $CPID"
	ns_client $n f4 wl lf 0 2 --secs "$WL_SECS" --seed $((seed + 30)); pids="$pids $CPID"
	seed=$((seed + 1))
done
wait $pids
holds=$(grep -vc ' fail ' "$NS_HIST")
fails=$(grep -c ' fail ' "$NS_HIST")
if ns_histcheck; then ok "workload: $holds holds on 5 nodes in ${WL_SECS} s valid ($fails failed calls)"; else fail "workload history not valid"; fi
if [ "$holds" -ge 100 ]; then ok "workload made progress: $holds holds"; else fail "workload: only $holds holds in ${WL_SECS} s"; fi
expect_eq "workload: failed lock calls" 0 "$fails"
for n in a b c m1 m2; do
	h=$(grep -c "^$n " "$NS_HIST")
	if [ "$h" -gt 0 ]; then ok "workload: $n made $h holds"; else fail "workload: $n made no hold"; fi
done

# --- a voter restarted with its data keeps the namespace ----------------------------------
F=$NS_LEADER
for n in a b c; do [ "$n" != "$NS_LEADER" ] && F=$n; done
mkdir "$A/dir" && echo "before $F stopped" > "$A/dir/kept"
wait_until 5 test -f "$(ns_mnt "$F")/dir/kept" || fail "$F does not see a file made on a"
ns_stop "$F"
expect_eq "$F stopped by SIGTERM: exit" 0 "$NS_RC"
expect_eq "without -k and --insecure a 3-voter node refuses to start" 2 "$(ns_run "$F" -C "$NS_CLUSTER")"
echo "while $F was down" > "$(ns_mnt "$NS_LEADER")/during"
ns_start "$F" || finish
expect_eq "$F: file made before its restart" "before $F stopped" "$(cat "$(ns_mnt "$F")/dir/kept" 2>&1)"
if wait_until 5 test -f "$(ns_mnt "$F")/during"; then ok "$F sees the file made while it was down"; else fail "$F does not see the file made while it was down"; fi
if ns_wait_leader 10; then ok "$F rejoined: one leader ($NS_LEADER) all nodes agree on"; else fail "no agreement on the leader after $F restarted:$(ns_roles)"; fi
expect_eq "$F: role after restart" follower "$(ns_status "$F" role)"
expect_rc "$F takes part in locking: flock -n" 0 flock -n "$(ns_mnt "$F")/x" true

# --- a wrong key never joins ---------------------------------------------------------
auth0=$(ns_metric "$NS_LEADER" 'cluck_peer_datagrams_total\{dir="rx",result="auth"\}')
ns_stop m2
head -c 32 /dev/urandom > "$T_DIR/wrongkey"; chmod 600 "$T_DIR/wrongkey"
NS_KEYOF[m2]=$T_DIR/wrongkey
ns_launch m2
if wait_until 5 ns_up m2; then
	sleep 2   # a join would take a fraction of this
	expect_match "m2 with a wrong key: no leader or no quorum" "^(leader: *(none|-|)|quorum: no)$" "$(ns_status_all m2)"
elif ns_alive m2; then
	ok "m2 with a wrong key did not join (no mount in 5 s)"
else
	ns_reap m2
	ok "m2 with a wrong key gave up (exit $NS_RC)"
fi
auth_ok() { [ "$(ns_metric "$NS_LEADER" 'cluck_peer_datagrams_total\{dir="rx",result="auth"\}')" -gt "$auth0" ]; }
if wait_until 5 auth_ok; then
	ok "the leader counts auth drops: $(ns_metric "$NS_LEADER" 'cluck_peer_datagrams_total\{dir="rx",result="auth"\}')"
else
	fail "cluck_peer_datagrams_total{dir=\"rx\",result=\"auth\"} on $NS_LEADER did not grow (still $auth0)"
fi
ns_stop m2
unset 'NS_KEYOF[m2]'

for n in a b c m1; do
	ns_stop $n
	expect_eq "$n: exit after SIGTERM" 0 "$NS_RC"
done
finish
