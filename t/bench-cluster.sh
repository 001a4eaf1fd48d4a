#!/bin/sh
# t/bench-cluster.sh - `make bench-cluster`: cluck's cluster benchmark.  A
# real cluster of 3 voters (a, b, c) and one member (m1), each cluckd in its
# own network namespace (t/netns.sh), default settings (--lease 10,
# --op-timeout 5), measured in the same run against two baselines: a
# one-node cluckd (no --cluster) with its data directory on the same disk,
# and flock on a private tmpfs.  Prints one Markdown table (figure, cluster,
# one-node, tmpfs, ratios, target, met) ready for BENCHMARKS.md.
#
#   t/bench-cluster.sh [--quick]
#       --quick: 1 s per throughput figure, 10 s of idle CPU, one run of
#       each failover (the full run takes about 4 minutes).
#
# Figures: 1-client acquire+release pairs on the leader, a follower and the
# member; 64 clients over the 4 nodes (16 each) on their own files and on 4
# shared files; handoff latency from a holder on a to a waiter on c; leader
# SIGKILL to the next grant elsewhere (3 runs); a holder node's SIGKILL to
# its lock granted elsewhere (3 runs); idle CPU and wake-ups of every node.
# Clients run in the root namespaces on the nodes' mounts (only cluckd lives
# in a network namespace).
#
# Environment: CLUCKD, T_BIN, top_srcdir (set by `make bench-cluster`; the
# harness also needs t/histcheck built), BENCH_DURATION (2 s per throughput
# figure), BENCH_IDLE (30 s of idle CPU), BENCH_RUNS (3 runs per failover).
#
# It must never: fail because a figure is slow (it is not a test), wait
# without a deadline, or leave a namespace, a mount, a tmpfs or a process
# behind (the EXIT trap of t/netns.sh and ours clean up on any exit).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"

QUICK=0
for a in "$@"; do
	case $a in
	--quick) QUICK=1 ;;
	*) echo "usage: $0 [--quick]" >&2; exit 2 ;;
	esac
done
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
export top_srcdir
. "$top_srcdir/t/netns.sh"

BENCH=$T_BIN/bench
[ -x "$BENCH" ] || { echo "bench-cluster: $BENCH not built (make t/bench)" >&2; exit 1; }
if [ "$QUICK" = 1 ]; then
	DUR=${BENCH_DURATION:-1}; IDLE=${BENCH_IDLE:-10}; RUNS=${BENCH_RUNS:-1}
else
	DUR=${BENCH_DURATION:-2}; IDLE=${BENCH_IDLE:-30}; RUNS=${BENCH_RUNS:-3}
fi
TMPFS=$T_DIR/tmpfs
ROWS=$T_DIR/rows
RAW=$T_DIR/raw
mkdir -p "$TMPFS"
: > "$ROWS"

bench_cleanup() {
	local rc=$?
	mounted_at "$TMPFS" && umount -l "$TMPFS"
	(exit "$rc")
	ns_cleanup
}
trap bench_cleanup EXIT

note() { echo "bench-cluster: $*" >&2; }

mount -t tmpfs -o size=256m,mode=0755 bench-tmpfs "$TMPFS" ||
	{ echo "bench-cluster: cannot mount a tmpfs on $TMPFS" >&2; exit 1; }

# ---- helpers in Python (python3 is a harness requirement) ------------------

# Handoff between two mounts: the holder releases only once its node's
# status shows the other side queued, so every sample is a real handoff
# (from the holder's LOCK_UN call to the waiter's flock() returning), then
# the two swap roles.  Prints "A->C n p50 p99" lines (us).
cat > "$T_DIR/handoff.py" <<'EOF'
import fcntl, os, sys, time

def queued(status, name):
    try:
        with open(status) as f:
            for line in f:
                if line.startswith("lock " + name + " "):
                    for tok in line.split():
                        if tok.startswith("waiters="):
                            return int(tok[8:]) >= 1
    except OSError:
        pass
    return False

def side(path, status, name, rd, wr, first, secs, out):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    rf = os.fdopen(rd, "r")
    wf = os.fdopen(wr, "w", buffering=1)
    samples, unconfirmed = [], 0
    deadline = time.monotonic() + secs
    if first:
        fcntl.flock(fd, fcntl.LOCK_EX)
        wf.write("H\n")
        holder = True
    else:
        rf.readline()
        holder = False
    while True:
        if holder:
            if rf.readline() != "C\n":
                break
            end = time.monotonic() + 5
            while not queued(status, name) and time.monotonic() < end:
                time.sleep(0.0002)
            if time.monotonic() >= end:
                unconfirmed += 1
            if time.monotonic() > deadline:
                wf.write("Q\n")
                fcntl.flock(fd, fcntl.LOCK_UN)
                break
            wf.write("T%d\n" % time.monotonic_ns())
            fcntl.flock(fd, fcntl.LOCK_UN)
            holder = False
        else:
            wf.write("C\n")
            fcntl.flock(fd, fcntl.LOCK_EX)
            g = time.monotonic_ns()
            line = rf.readline()
            if not line.startswith("T"):
                fcntl.flock(fd, fcntl.LOCK_UN)
                break
            samples.append(g - int(line[1:]))
            holder = True
    with open(out, "w") as f:
        f.write("%d\n" % unconfirmed)
        f.write("".join("%d\n" % s for s in samples))

def report(label, out):
    with open(out) as f:
        v = [int(x) for x in f]
    unconf, s = v[0], sorted(v[1:])
    if not s:
        print("%s 0 0 0 %d" % (label, unconf))
        return
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] / 1000.0
    print("%s %d %.1f %.1f %d" % (label, len(s), pick(0.5), pick(0.99), unconf))

pa, sa, pc, sc, name, secs, out, la, lc = sys.argv[1:10]
secs = float(secs)
r1, w1 = os.pipe()      # a -> c
r2, w2 = os.pipe()      # c -> a
pid = os.fork()
if pid == 0:
    os.close(w1); os.close(r2)
    side(pc, sc, name, r1, w2, False, secs, out + ".c")
    os._exit(0)
os.close(r1); os.close(w2)
side(pa, sa, name, r2, w1, True, secs, out + ".a")
os.waitpid(pid, 0)
# Samples are recorded by the waiter: those of c are handoffs a -> c.
report("%s->%s" % (la, lc), out + ".c")
report("%s->%s" % (lc, la), out + ".a")
EOF

# A SIGKILL and what follows: pair loops on the surviving nodes (the first
# grant of a request issued after the kill, and of the one in flight), a
# blocking waiter queued behind the victim's holder (its grant), the first
# survivor to call itself leader.  Times in ms from the kill.
cat > "$T_DIR/failover.py" <<'EOF'
import argparse, fcntl, os, signal, sys, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--kill", type=int, required=True)
ap.add_argument("--loop", action="append", default=[])    # NAME=PATH
ap.add_argument("--oloop", action="append", default=[])   # the same, open+flock+close
ap.add_argument("--waiter")                               # NAME=PATH
ap.add_argument("--wstatus")                              # waiter node's status
ap.add_argument("--lock")                                 # its lock name
ap.add_argument("--role", action="append", default=[])    # NAME=STATUS
ap.add_argument("--timeout", type=float, default=40)
ap.add_argument("--victim", default="")                   # its node name
a = ap.parse_args()
stop = threading.Event()

class Loop(threading.Thread):
    def __init__(self, name, path, reopen=False):
        super().__init__(daemon=True)
        self.name_, self.path, self.grants, self.errors = name, path, [], 0
        self.reopen = reopen
    def run(self):
        # reopen: a new open file each time, as `flock FILE cmd` does (its
        # path walk goes through the node's read barrier).
        fd = -1 if self.reopen else os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        while not stop.is_set():
            s = time.monotonic_ns()
            try:
                if self.reopen:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
                self.grants.append((s, time.monotonic_ns()))
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                self.errors += 1
                time.sleep(0.005)
            if self.reopen and fd >= 0:
                os.close(fd)
                fd = -1

class Waiter(threading.Thread):
    def __init__(self, name, path):
        super().__init__(daemon=True)
        self.name_, self.path, self.granted, self.err = name, path, None, None
    def run(self):
        try:
            fd = os.open(self.path, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.granted = time.monotonic_ns()
        except OSError as e:
            self.err = e.strerror

class Role(threading.Thread):
    def __init__(self, name, status):
        super().__init__(daemon=True)
        self.name_, self.status, self.at, self.seen = name, status, None, []
    def run(self):
        last = None
        while not stop.is_set():
            try:
                with open(self.status) as f:
                    kv = dict(l.split(": ", 1) for l in f.read().split("\n")
                              if ": " in l and not l.startswith("lock "))
                cur = (kv.get("role"), kv.get("leader"), kv.get("term"))
            except (OSError, ValueError):
                cur = ("unreadable", "", "")
            if cur != last:
                self.seen.append((time.monotonic_ns(), cur))
                last = cur
            if cur[1] and cur[1] not in (a.victim, "unreadable") and self.at is None:
                self.at = time.monotonic_ns()
            time.sleep(0.005)

def queued():
    try:
        with open(a.wstatus) as f:
            for line in f:
                if line.startswith("lock " + a.lock + " ") and " waiters=0 " not in line:
                    return True
    except OSError:
        pass
    return False

def ms(t):
    return "%.0f" % ((t - t0) / 1e6)

loops = [Loop(*x.split("=", 1)) for x in a.loop] + \
    [Loop(*x.split("=", 1), reopen=True) for x in a.oloop]
for l in loops:
    l.start()
w = Waiter(*a.waiter.split("=", 1)) if a.waiter else None
if w:
    w.start()
end = time.monotonic() + 5
while time.monotonic() < end:
    if all(len(l.grants) >= 20 for l in loops) and (not w or queued()):
        break
    time.sleep(0.01)
else:
    print("warning: not ready before the kill (loops %s, waiter queued %s)" %
          ([len(l.grants) for l in loops], queued() if w else "-"))
t0 = time.monotonic_ns()
os.kill(a.kill, signal.SIGKILL)
roles = [Role(*x.split("=", 1)) for x in a.role]
for r in roles:
    r.start()

def new_grant(l):
    return next((g for s, g in list(l.grants) if s >= t0), None)

end = time.monotonic() + a.timeout
while time.monotonic() < end:
    done = all(new_grant(l) for l in loops) and (not w or w.granted or w.err) \
        and (not roles or any(r.at for r in roles))
    if done:
        break
    time.sleep(0.01)
stop.set()
lead = [r for r in roles if r.at]
if roles:
    print("leader %s %s" % ((min(lead, key=lambda r: r.at).name_, ms(min(r.at for r in lead)))
                             if lead else ("-", "-")))
for l in loops:
    g = new_grant(l)
    infl = [gg for s, gg in l.grants if s < t0 < gg]
    print("%s %s new %s inflight %s errors %d" % ("oloop" if l.reopen else "loop", l.name_, ms(g) if g else "-",
          ms(infl[0]) if infl else "-", l.errors))
for r in roles:
    print("status %s: %s" % (r.name_, ", ".join("%s %s/%s/%s" % ((ms(t),) + c) for t, c in r.seen)))
if w:
    print("waiter %s %s%s" % (w.name_, ms(w.granted) if w.granted else "-",
          " error " + w.err if w.err else ""))
sys.stdout.flush()
os._exit(0)
EOF

# ---- helpers ------------------------------------------------------------------

# pairs_run OUT DIR1 DIR2 CLIENTS: t/bench pairs (phase 1 on DIR1, phase 2
# on DIR2), rows to OUT.
pairs_run() {
	timeout -s KILL $((DUR * 2 + 60)) "$BENCH" pairs "$2" "$3" -c "$4" -d "$DUR" > "$1" 2> "$1.err"
	grep -v 'client(s),' "$1.err" | sed "s#^#$2: #" >> "$RAW"
}

# rowval FILE FIGURE COL: a cell of a t/bench row (COL 1: first dir, 2:
# second), digits and dots and slashes only ("12345", "266.2/340.0").
rowval() {
	awk -F'|' -v f="$2" -v c="$3" 'index($2, f) { v = $(c + 2); gsub(/[ ,]|\/s|us/, "", v); print v; exit }' "$1"
}
rate_of() { rowval "$1" "flock EX+UN pairs/s" "$2"; }
p50_of() { rowval "$1" "pair latency p50" "$2" | cut -d/ -f1 | us; }
p99_of() { rowval "$1" "pair latency p50" "$2" | cut -d/ -f2 | us; }
# us: microseconds on stdin, 1 decimal (2 below 10 us).
us() { awk '{ printf($1 < 10 ? "%.2f\n" : "%.1f\n", $1) }'; }

# outs TAG: the row files of a par_pairs run.
outs() { ls "$T_DIR/$1".* | grep -v '\.err$'; }

# par_pairs TAG CLIENTS DIR1:DIR2...: one t/bench per pair of dirs, all at
# once; sets P1 P2 (summed pairs/s of each phase), P50 (median of the
# processes' p50s) and P99 (the largest p99) of phase 1.
par_pairs() {
	local tag=$1 c=$2 spec i=0 pids=
	shift 2
	for spec in "$@"; do
		pairs_run "$T_DIR/$tag.$i" "${spec%%:*}" "${spec#*:}" "$c" &
		pids="$pids $!"
		bg_track $!
		i=$((i + 1))
	done
	wait $pids
	P1=$(for f in $(outs "$tag"); do rate_of "$f" 1; done | awk '{ s += $1 } END { printf "%.0f", s }')
	P2=$(for f in $(outs "$tag"); do rate_of "$f" 2; done | awk '{ s += $1 } END { printf "%.0f", s }')
	P50=$(for f in $(outs "$tag"); do p50_of "$f" 1; done | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
	P99=$(for f in $(outs "$tag"); do p99_of "$f" 1; done | sort -g | tail -n1)
	echo "$tag: $c clients x $#: phase 1 $P1/s (p50 $P50 us, p99 $P99 us), phase 2 $P2/s" >> "$RAW"
}

# Numbers: thousands separators, ratios.
grp() { printf '%.0f\n' "$1" 2>/dev/null | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.1fx", a / b; else print "-" }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 < b + 0) }'; }
yesno() { if "$@"; then echo yes; else echo "**no**"; fi; }

# row FIGURE CLUSTER ONENODE TMPFS VS_ONE VS_TMPFS TARGET MET
row() { printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$@" >> "$ROWS"; }

# CPU ticks (utime + stime) and context switches (all threads) of PID.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
ctxsw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }'; }

# median / max of numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "" }'; }
maxof() { sort -g | tail -n1; }

# ---- the cluster and the one-node baseline ------------------------------------

COMMIT=$(git -C "$top_srcdir" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$top_srcdir" status --porcelain --untracked-files=no 2>/dev/null | awk '{ print $2 }' | tr '\n' ' ')
echo "# cluck cluster benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $COMMIT${DIRTY:+ (uncommitted changes: $DIRTY)}"
echo "# machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), kernel $(uname -r); every cluckd and every client share them"
echo "# cluckd: $CLUCKD ($(grep -q __asan_init "$CLUCKD" && echo "AddressSanitizer build: figures are not representative" || echo "no sanitizer")), default --lease 10 --op-timeout 5"

ns_setup a b c m1
ns_voters a b c
ns_start_all a b c m1 || finish
ns_wait_leader 15 || { fail "no leader all 4 nodes agree on within 15 s:$(ns_roles)"; finish; }
start_cluckd || finish
ONE=$MNT
note "cluster up: leader $NS_LEADER, term $NS_TERM; one-node cluckd on $ONE"

# roles: L the leader, F the first follower, M the member.
roles() {
	local n
	ns_wait_leader 15 || note "no agreed leader:$(ns_roles)"
	L=$NS_LEADER
	F=
	for n in a b c; do [ "$n" != "$L" ] && [ -z "$F" ] && F=$n; done
	M=m1
}
roles
mnt() { ns_mnt "$1"; }

# ---- idle CPU ---------------------------------------------------------------------

note "idle: CPU and wake-ups of a, b, c, m1 and the one-node daemon over $IDLE s"
sleep 2
HZ=$(getconf CLK_TCK)
declare -A C0 W0 C1 W1 IPID
for n in a b c m1; do IPID[$n]=${NS_PID[$n]}; done
IPID[one]=$CLUCKD_PID
for n in a b c m1 one; do C0[$n]=$(cpu_ticks "${IPID[$n]}"); W0[$n]=$(ctxsw "${IPID[$n]}"); done
sleep "$IDLE"
for n in a b c m1 one; do C1[$n]=$(cpu_ticks "${IPID[$n]}"); W1[$n]=$(ctxsw "${IPID[$n]}"); done
declare -A IDLE_PCT IDLE_WPS
for n in a b c m1 one; do
	IDLE_PCT[$n]=$(awk -v d=$(( C1[$n] - C0[$n] )) -v hz="$HZ" -v s="$IDLE" 'BEGIN { printf "%.2f", 100 * d / hz / s }')
	IDLE_WPS[$n]=$(awk -v d=$(( W1[$n] - W0[$n] )) -v s="$IDLE" 'BEGIN { printf "%.1f", d / s }')
	echo "idle $n: ${IDLE_PCT[$n]}% of a core, ${IDLE_WPS[$n]} context switches/s" >> "$RAW"
done
roles

# ---- pairs, 1 client ---------------------------------------------------------------

note "pairs: 1 client on the leader $L and the follower $F, then the member and the one-node daemon, then tmpfs ($DUR s each)"
mkdir -p "$(mnt "$L")/p1-$L" "$(mnt "$F")/p1-$F" "$(mnt m1)/p1-m1" "$ONE/p1" "$TMPFS/p1" "$TMPFS/p1b"
pairs_run "$T_DIR/p1.lf" "$(mnt "$L")/p1-$L" "$(mnt "$F")/p1-$F" 1
pairs_run "$T_DIR/p1.mo" "$(mnt m1)/p1-m1" "$ONE/p1" 1
pairs_run "$T_DIR/p1.t" "$TMPFS/p1" "$TMPFS/p1b" 1
cat "$T_DIR"/p1.?? "$T_DIR"/p1.t >> "$RAW"
R_L=$(rate_of "$T_DIR/p1.lf" 1); R_F=$(rate_of "$T_DIR/p1.lf" 2)
R_M=$(rate_of "$T_DIR/p1.mo" 1); R_O=$(rate_of "$T_DIR/p1.mo" 2); R_T=$(rate_of "$T_DIR/p1.t" 1)
for v in L:lf:1 F:lf:2 M:mo:1 O:mo:2 T:t:1; do
	IFS=: read -r k f c <<< "$v"
	eval "P50_$k=\$(p50_of \"\$T_DIR/p1.$f\" $c); P99_$k=\$(p99_of \"\$T_DIR/p1.$f\" $c)"
done
for k in L F M; do
	eval "r=\$R_$k p50=\$P50_$k p99=\$P99_$k"
	case $k in L) who="on the leader ($L)" ;; F) who="on a follower ($F)" ;; M) who="on the member (m1)" ;; esac
	row "pair p50 / p99, 1 client, $who" "$p50 / $p99 us" "$P50_O / $P99_O us" "$P50_T / $P99_T us" \
		"$(ratio "$p50" "$P50_O")" "$(ratio "$p50" "$P50_T")" "p50 < 1 ms" "$(yesno lt "$p50" 1000)"
	row "pairs/s, 1 client, $who" "$(grp "$r")/s" "$(grp "$R_O")/s" "$(grp "$R_T")/s" \
		"$(ratio "$R_O" "$r")" "$(ratio "$R_T" "$r")" "-" "-"
done

# ---- pairs, 64 clients ----------------------------------------------------------------

note "pairs: 64 clients, 16 per node on their own files ($DUR s, twice)"
specs=()
for n in a b c m1; do mkdir -p "$(mnt "$n")/own-$n"; specs+=("$(mnt "$n")/own-$n:$(mnt "$n")/own-$n"); done
par_pairs own 16 "${specs[@]}"
OWN1=$P1 OWN2=$P2 OWN50=$P50 OWN99=$P99
note "pairs: 64 clients, 16 per node, on 4 shared files (16 clients each, 4 per node)"
specs=()
mkdir -p "$(mnt a)/shared"
for n in a b c m1; do for i in 1 2 3 4; do specs+=("$(mnt "$n")/shared:$(mnt "$n")/shared"); done; done
par_pairs sh 4 "${specs[@]}"
SH1=$P1 SH2=$P2 SH50=$P50 SH99=$P99
note "pairs: the same on the one-node daemon and tmpfs"
mkdir -p "$ONE/own" "$TMPFS/own" "$ONE/shared" "$TMPFS/shared"
pairs_run "$T_DIR/p64.one" "$ONE/own" "$TMPFS/own" 64
cat "$T_DIR/p64.one" >> "$RAW"
OOWN=$(rate_of "$T_DIR/p64.one" 1); TOWN=$(rate_of "$T_DIR/p64.one" 2)
OOWN50=$(p50_of "$T_DIR/p64.one" 1); OOWN99=$(p99_of "$T_DIR/p64.one" 1)
TOWN50=$(p50_of "$T_DIR/p64.one" 2); TOWN99=$(p99_of "$T_DIR/p64.one" 2)
specs=()
for i in $(seq 16); do specs+=("$ONE/shared:$TMPFS/shared"); done
par_pairs shone 4 "${specs[@]}"
OSH=$P1 TSH=$P2 OSH50=$P50 OSH99=$P99
row "pairs/s, 64 clients (16 per node), own files" "$(grp "$OWN1")/s (repeat: $(grp "$OWN2")/s)" "$(grp "$OOWN")/s" "$(grp "$TOWN")/s" \
	"$(ratio "$OOWN" "$OWN1")" "$(ratio "$TOWN" "$OWN1")" ">= 10,000/s" "$(yesno lt 9999.5 "$OWN1")"
row "pair p50 / p99, 64 clients, own files" "$OWN50 / $OWN99 us" "$OOWN50 / $OOWN99 us" "$TOWN50 / $TOWN99 us" \
	"$(ratio "$OWN50" "$OOWN50")" "$(ratio "$OWN50" "$TOWN50")" "-" "-"
row "pairs/s, 64 clients (16 per node), 4 shared files" "$(grp "$SH1")/s (repeat: $(grp "$SH2")/s)" "$(grp "$OSH")/s" "$(grp "$TSH")/s" \
	"$(ratio "$OSH" "$SH1")" "$(ratio "$TSH" "$SH1")" ">= 10,000/s" "$(yesno lt 9999.5 "$SH1")"
row "pair p50 / p99, 64 clients, 4 shared files" "$SH50 / $SH99 us" "$OSH50 / $OSH99 us" "-" \
	"$(ratio "$SH50" "$OSH50")" "-" "-" "-"

# ---- handoff between two nodes ------------------------------------------------------------

roles
note "handoff: holder on a ($(ns_status a role)), waiter on c ($(ns_status c role)), then back, $((DUR * 2)) s"
HO=$T_DIR/ho
timeout -s KILL $((DUR * 2 + 60)) python3 "$T_DIR/handoff.py" \
	"$(mnt a)/bench-ho" "$(mnt a)/status" "$(mnt c)/bench-ho" "$(mnt c)/status" /bench-ho \
	$((DUR * 2)) "$HO" a c > "$HO.out" 2>>"$RAW"
timeout -s KILL $((DUR * 2 + 60)) python3 "$T_DIR/handoff.py" \
	"$ONE/bench-ho" "$ONE/status" "$ONE/bench-ho" "$ONE/status" /bench-ho \
	$((DUR * 2)) "$HO.one" x y > "$HO.one.out" 2>>"$RAW"
timeout -s KILL $((DUR * 2 + 60)) "$BENCH" handoff "$ONE" "$TMPFS" -n 2 -d "$DUR" > "$HO.bench" 2>>"$RAW"
cat "$HO.out" "$HO.one.out" "$HO.bench" >> "$RAW"
# lines: LABEL n p50 p99 unconfirmed
read -r _ HAC_N HAC_50 HAC_99 HAC_U < <(grep '^a->c ' "$HO.out")
read -r _ HCA_N HCA_50 HCA_99 _ < <(grep '^c->a ' "$HO.out")
read -r _ _ HONE_50 HONE_99 _ < <(grep '^x->y ' "$HO.one.out")
HT_50=$(awk -F'|' 'index($2, "handoff latency p50") { v = $4; gsub(/[ us]/, "", v); print v }' "$HO.bench")
HT_99=$(awk -F'|' 'index($2, "handoff latency p99") { v = $4; gsub(/[ us]/, "", v); print v }' "$HO.bench")
row "handoff p50 / p99, holder on a, waiter on c ($HAC_N handoffs)" "$HAC_50 / $HAC_99 us" "$HONE_50 / $HONE_99 us" "$HT_50 / $HT_99 us" \
	"$(ratio "$HAC_50" "$HONE_50")" "$(ratio "$HAC_50" "$HT_50")" "-" "-"
row "handoff p50 / p99, holder on c, waiter on a ($HCA_N handoffs)" "$HCA_50 / $HCA_99 us" "" "" "" "" "-" "-"
[ "${HAC_U:-0}" != 0 ] && note "handoff: $HAC_U waits for the queued waiter timed out"

# ---- failover ------------------------------------------------------------------------------

# nholder NODE FILE TAG: flock(1) holding FILE on NODE's mount until killed.
nholder() { holder "" "$(mnt "$1")/$2" "$3"; }

FO=$T_DIR/fo
: > "$FO"
for r in $(seq "$RUNS"); do
	roles
	V=$L
	surv=(); for n in a b c m1; do [ "$n" != "$V" ] && surv+=("$n"); done
	W=${surv[0]}
	note "failover $r/$RUNS: SIGKILL of the leader $V while it holds /lk$r (waiter on $W), pair loops on ${surv[*]}"
	: > "$ORDER"
	nholder "$V" "lk$r" "H$r"; hp=$HPID
	wait_until 10 granted "H$r" || note "the holder on $V was not granted"
	args=()
	for n in "${surv[@]}"; do args+=(--loop "$n=$(mnt "$n")/loop-$n" --oloop "$n=$(mnt "$n")/oloop-$n"); done
	for n in a b c; do [ "$n" != "$V" ] && args+=(--role "$n=$(mnt "$n")/status"); done
	timeout -s KILL 70 python3 "$T_DIR/failover.py" --kill "${NS_PID[$V]}" --victim "$V" "${args[@]}" \
		--waiter "$W=$(mnt "$W")/lk$r" --wstatus "$(mnt "$W")/status" --lock "/lk$r" \
		--timeout 60 > "$FO.$r" 2>>"$RAW"
	sed "s/^/leader-kill $r ($V): /" "$FO.$r" >> "$RAW"
	ns_kill "$V" KILL
	release "$hp"
	ns_start "$V" || note "$V did not restart"
	LEAD_MS[$r]=$(awk '$1 == "leader" { print $3 }' "$FO.$r")
	NEXT_MS[$r]=$(awk '$1 == "loop" && $4 != "-" { print $4 }' "$FO.$r" | sort -g | head -n1)
	LAST_MS[$r]=$(awk '$1 == "loop" { print ($4 == "-" ? 999999 : $4) }' "$FO.$r" | maxof)
	HOLD_L_MS[$r]=$(awk '$1 == "waiter" { print $3 }' "$FO.$r")
	ONEXT_MS[$r]=$(awk '$1 == "oloop" && $4 != "-" { print $4 }' "$FO.$r" | sort -g | head -n1)
	OLAST_MS[$r]=$(awk '$1 == "oloop" { print ($4 == "-" ? 999999 : $4) }' "$FO.$r" | maxof)
	echo "leader-kill $r: $V killed; new leader ${LEAD_MS[$r]} ms, next grant ${NEXT_MS[$r]} ms, on every survivor ${LAST_MS[$r]} ms (open+flock: ${ONEXT_MS[$r]} / ${OLAST_MS[$r]} ms), the leader's lock on $W ${HOLD_L_MS[$r]} ms" >> "$FO"
done
for r in $(seq "$RUNS"); do
	roles
	V=m1; [ "$r" = 2 ] && V=$F
	W=$L
	note "holder kill $r/$RUNS: SIGKILL of $V while it holds /hk$r (waiter on $W, lease 10 s)"
	: > "$ORDER"
	nholder "$V" "hk$r" "K$r"; hp=$HPID
	wait_until 10 granted "K$r" || note "the holder on $V was not granted"
	timeout -s KILL 70 python3 "$T_DIR/failover.py" --kill "${NS_PID[$V]}" \
		--waiter "$W=$(mnt "$W")/hk$r" --wstatus "$(mnt "$W")/status" --lock "/hk$r" \
		--timeout 60 > "$FO.k$r" 2>>"$RAW"
	sed "s/^/holder-kill $r ($V): /" "$FO.k$r" >> "$RAW"
	ns_kill "$V" KILL
	release "$hp"
	ns_start "$V" || note "$V did not restart"
	HOLD_MS[$r]=$(awk '$1 == "waiter" { print $3 }' "$FO.k$r")
	HOLD_WHO[$r]=$V
	echo "holder-kill $r: $V killed; its lock granted on $W ${HOLD_MS[$r]} ms later" >> "$FO"
done
cat "$FO" >&2
list() { local r s=; for r in $(seq "$RUNS"); do eval "s=\"\$s\${s:+, }\${$1[$r]:--}\""; done; echo "$s"; }
allbelow() { local r v; for r in $(seq "$RUNS"); do eval "v=\${$1[$r]:-}"; lt "$v" "$2" || return 1; done; }
row "leader SIGKILL -> next grant on another node (new flock on an open descriptor), $RUNS runs" "$(list NEXT_MS) ms" "n/a" "n/a" "-" "-" "< 1.5 s" "$(yesno allbelow NEXT_MS 1500)"
row "leader SIGKILL -> a grant on every surviving node (open descriptors)" "$(list LAST_MS) ms" "n/a" "n/a" "-" "-" "-" "-"
row "leader SIGKILL -> next grant of a fresh open+flock (first / on every survivor)" "$(list ONEXT_MS) / $(list OLAST_MS) ms" "n/a" "n/a" "-" "-" "-" "-"
row "leader SIGKILL -> a new leader named in a survivor's status" "$(list LEAD_MS) ms" "n/a" "n/a" "-" "-" "-" "-"
row "leader SIGKILL -> the leader's own lock granted elsewhere" "$(list HOLD_L_MS) ms" "n/a" "n/a" "-" "-" "~ lease (10 s)" "-"
row "holder node SIGKILL -> its lock granted elsewhere ($(list HOLD_WHO))" "$(list HOLD_MS) ms" "n/a" "n/a" "-" "-" "~ lease (10 s)" "-"

# ---- idle rows -------------------------------------------------------------------------------
worst=$(for n in a b c m1; do echo "${IDLE_PCT[$n]}"; done | maxof)
row "idle CPU over $IDLE s, % of one core (a, b, c, m1)" "${IDLE_PCT[a]}, ${IDLE_PCT[b]}, ${IDLE_PCT[c]}, ${IDLE_PCT[m1]} %" "${IDLE_PCT[one]} %" "n/a" "-" "-" "< 1% per node" "$(yesno lt "$worst" 1)"
row "idle context switches/s (a, b, c, m1)" "${IDLE_WPS[a]}, ${IDLE_WPS[b]}, ${IDLE_WPS[c]}, ${IDLE_WPS[m1]}" "${IDLE_WPS[one]}" "n/a" "-" "-" "-" "-"

echo
echo "| figure | cluster | one-node | tmpfs | vs one-node | vs tmpfs | target | met |"
echo "|---|---|---|---|---|---|---|---|"
cat "$ROWS"
echo
echo "# raw figures:"
sed 's/^/#   /' "$RAW"
exit 0
