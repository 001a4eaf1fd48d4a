# t/netns.sh - real clusters for the cluster tests (t/cluster-*.sh,
# t/soak.sh): one network namespace per cluckd, joined by a bridge that
# lives in a namespace of its own, plus nftables partitions, link cuts and
# process faults.
#
# Sourced (by bash) after nothing else: it sources t/lib.sh itself (skip
# rules, ok/fail/expect_*, wait_until, holders).  Each node NAME runs in the
# namespace ck<PID><NAME> with the address $NS_NET.<n> on its eth0; every
# cluckd is started with "nsenter --net" only, so its FUSE mount stays in
# the test's mount namespace and plain processes of the test use it.
#
#   ns_setup NODE...            namespaces, bridge, addresses (call once)
#   ns_voters NODE...           the -C list every node gets
#   NS_ARGS=(--lease 3 ...)     extra cluckd options for every start
#   ns_start NODE [OPTS...]     start (OPTS remembered for ns_restart); 1 on failure
#   ns_launch / ns_wait_up SECS NODE... / ns_start_all NODE...   the same in steps
#   ns_run NODE OPTS...         a start-up that must fail: prints the exit status
#   ns_kill NODE SIG            signal; KILL also reaps and clears the dead mount
#   ns_stop NODE / ns_restart NODE
#   ns_link_down NODE / ns_link_up NODE    the node's eth0
#   ns_cut A B / ns_cut_oneway A B / ns_isolate NODE / ns_heal
#   ns_status NODE KEY          a key of NODE's status ("" if unreadable)
#   ns_leader [NODE...]         the (first) node whose status says leader
#   ns_wait_leader SECS [NODE...]  one leader all agree on: NS_LEADER, NS_TERM
#   ns_roles [NODE...]          role/leader/term of each, for messages
#   ns_metric NODE REGEX        sum of matching /metrics samples
#   ns_client NODE CLIENT FILE MODE COUNT HOLD_MS [OPTS]   a histcheck
#                               workload client appending to $NS_HIST
#   ns_histcheck [HISTORY]      t/histcheck over it (paths made mount-relative)
#
# It must never: give the root namespace an address, a route or an nft
# rule (everything lives in ck<PID>* namespaces, which the trap deletes),
# leave a cluckd, a mount, a namespace or a client behind on any exit, or
# wait without a deadline.

[ -n "${BASH_VERSION:-}" ] || { echo "t/netns.sh needs bash" >&2; exit 1; }
. "$top_srcdir/t/lib.sh"
require_cmd ip nft nsenter getfattr awk
HISTCHECK="$T_BIN/histcheck"
[ -x "$HISTCHECK" ] || skip "histcheck not built ($HISTCHECK)"

NS_PFX="ck$$"
NS_BR="${NS_PFX}br"
NS_NODES=()             # every node made by ns_setup, in order
NS_CLUSTER=             # NAME=IP,... of the voters
NS_ARGS=()              # options for every cluckd start
NS_KEY="$T_DIR/key"
NS_HIST="$T_DIR/history"
NS_MADE=()              # namespaces to delete
declare -A NS_IP NS_PID NS_WRAP NS_OPTS NS_VOTER NS_STOPPED NS_KEYOF
: > "$NS_HIST"

# ns_of NODE: the namespace name of NODE.
ns_of() { echo "$NS_PFX$1"; }
ns_dir() { echo "$T_DIR/n/$1"; }
ns_mnt() { echo "$T_DIR/n/$1/mnt"; }
ns_log() { echo "$T_DIR/n/$1/log"; }

# ns_exec NODE CMD...: CMD in NODE's network namespace (our mounts).
ns_exec() { local n=$1; shift; nsenter --net="/run/netns/$(ns_of "$n")" "$@"; }

# A private /24 that nothing on this machine uses or routes specially: the
# candidate must be absent from every address and reached (if at all) only
# through the default route.
ns_pick_net() {
	local i a b net r def
	def=$(ip route show default 2>/dev/null | head -n1 | awk '{ for (i = 1; i < NF; i++) if ($i == "via") print $(i + 1) }')
	for i in $(seq 0 40); do
		a=$(( 16 + ($$ + i * 7) % 16 ))
		b=$(( ($$ / 16 + i * 13) % 250 + 1 ))
		net="172.$a.$b"
		ip -o addr 2>/dev/null | grep -q " $net\." && continue
		ip -o route 2>/dev/null | grep -q "^$net\." && continue
		r=$(ip route get "$net.1" 2>/dev/null | head -n1)
		if [ -z "$r" ] || { [ -n "$def" ] && printf '%s\n' "$r" | grep -q " via $def "; }; then
			echo "$net"
			return 0
		fi
	done
	return 1
}

# mounted_at DIR: DIR is a mount point in our mount namespace, dead or alive
# (mountpoint(1) stats it, which fails on a FUSE mount whose daemon died).
mounted_at() { awk -v d="$1" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo; }

# ns_umount DIR: clears a mount left by a dead or stopped daemon.
ns_umount() {
	mounted_at "$1" || return 0
	fusermount3 -uz "$1" 2>/dev/null
	mounted_at "$1" && umount -l "$1" 2>/dev/null
	! mounted_at "$1"
}

# ns_setup NODE...: the bridge namespace, one namespace per node, veths,
# addresses .11, .12, ... in order.  Fails the test (and finishes) on error.
ns_setup() {
	local n i=10 ns
	NS_NET=$(ns_pick_net) || skip "no free private /24 found"
	ip netns add "$NS_BR" 2>/dev/null || skip "cannot create network namespaces"
	NS_MADE+=("$NS_BR")
	ip -n "$NS_BR" link set lo up
	ip -n "$NS_BR" link add br0 type bridge || { fail "cannot create a bridge"; finish; }
	ip -n "$NS_BR" link set br0 up
	for n in "$@"; do
		i=$((i + 1))
		ns=$(ns_of "$n")
		ip netns add "$ns" || { fail "ip netns add $ns"; finish; }
		NS_MADE+=("$ns")
		NS_NODES+=("$n")
		NS_IP[$n]="$NS_NET.$i"
		ip -n "$ns" link set lo up
		if ! ip -n "$NS_BR" link add "v$n" type veth peer name eth0 netns "$ns" ||
		   ! ip -n "$NS_BR" link set "v$n" master br0 up ||
		   ! ip -n "$ns" addr add "${NS_IP[$n]}/24" dev eth0 ||
		   ! ip -n "$ns" link set eth0 up; then
			fail "cannot wire $n"; finish
		fi
		mkdir -p "$(ns_dir "$n")/mnt" "$(ns_dir "$n")/data"
		: > "$(ns_log "$n")"
	done
	head -c 32 /dev/urandom > "$NS_KEY"
	chmod 600 "$NS_KEY"
	# One probe proves the bridge forwards before any cluckd relies on it.
	if [ $# -ge 2 ] && ! wait_until 5 ns_reach "$1" "$2"; then
		fail "$1 cannot reach $2 over the bridge"; finish
	fi
}

# ns_voters NODE...: these nodes are the voters (the same -C on every node).
ns_voters() {
	local n l=
	for n in "$@"; do
		l="$l${l:+,}$n=${NS_IP[$n]}"
		NS_VOTER[$n]=1
	done
	NS_CLUSTER=$l
}

# ns_alive NODE: NODE's cluckd runs (a stopped one counts as alive).
ns_alive() { [ -n "${NS_PID[$1]:-}" ] && alive "${NS_PID[$1]}"; }

# ns_up NODE: NODE's mount answers a status read.
ns_up() {
	local m
	m=$(ns_mnt "$1")
	mounted_at "$m" && timeout -s KILL 2 head -c1 "$m/status" >/dev/null 2>&1
}

# ns_cmdline NODE OPTS...: the full cluckd command line of NODE.
ns_cmdline() {
	local n=$1
	shift
	NS_CMD=("$CLUCKD" -f -n "$n" -D "$(ns_dir "$n")/data" -k "${NS_KEYOF[$n]:-$NS_KEY}")
	[ -n "$NS_CLUSTER" ] && NS_CMD+=(-C "$NS_CLUSTER")
	[ -z "${NS_VOTER[$n]:-}" ] && NS_CMD+=(-l "${NS_IP[$n]}")
	NS_CMD+=("${NS_ARGS[@]}" "$@" "$(ns_mnt "$n")")
}

# ns_launch NODE [OPTS...]: starts NODE's cluckd without waiting (OPTS
# are remembered for ns_restart).  NS_KEYOF[NODE] overrides the key file.
ns_launch() {
	local n=$1 log
	shift
	NS_OPTS[$n]="$(printf '%q ' "$@")"
	log=$(ns_log "$n")
	ns_umount "$(ns_mnt "$n")" || { fail "$n: an old mount is stuck"; return 1; }
	ns_cmdline "$n" "$@"
	echo "=== $(date +%T.%N) start: ${NS_CMD[*]}" >> "$log"
	rm -f "$(ns_dir "$n")/pid" "$(ns_dir "$n")/rc"
	# A wrapper waits for the daemon and keeps its exit status: the shell
	# then prints no "Killed" notice when a test SIGKILLs a node.
	(
		nsenter --net="/run/netns/$(ns_of "$n")" "${NS_CMD[@]}" >>"$log" 2>&1 &
		echo $! > "$(ns_dir "$n")/pid"
		wait $! 2>/dev/null
		echo $? > "$(ns_dir "$n")/rc"
	) &
	NS_WRAP[$n]=$!
	wait_until 5 test -s "$(ns_dir "$n")/pid"
	NS_PID[$n]=$(cat "$(ns_dir "$n")/pid")
	NS_STOPPED[$n]=
}

# ns_wait_up SECS NODE...: waits until every NODE's mount answers.  On
# failure: fail with the log's tail of each node that is not up, return 1.
ns_wait_up() {
	local secs=$1 n end rc=0
	shift
	end=$(( $(now_ms) + secs * 1000 ))
	for n in "$@"; do
		while :; do
			ns_up "$n" && break
			if ! ns_alive "$n"; then
				ns_reap "$n"
				fail "$n: cluckd exited with ${NS_RC:-?} during start-up; its log:"
				tail -n 15 "$(ns_log "$n")" | sed 's/^/    /'
				rc=1
				break
			fi
			if [ "$(now_ms)" -ge "$end" ]; then
				fail "$n: cluckd did not mount within $secs s; its log:"
				tail -n 15 "$(ns_log "$n")" | sed 's/^/    /'
				rc=1
				break
			fi
			sleep 0.02
		done
	done
	return $rc
}

# ns_start NODE [OPTS...]: ns_launch, then waits (15 s) for the mount.
ns_start() {
	ns_launch "$@" || return 1
	ns_wait_up 15 "$1"
}

# ns_start_all NODE...: starts every NODE at once (a voter may wait for a
# quorum before it mounts), then waits for all of them.
ns_start_all() {
	local n
	for n in "$@"; do
		ns_launch "$n" || return 1
	done
	ns_wait_up 20 "$@"
}

# ns_run NODE OPTS...: runs NODE's cluckd command line with OPTS in place
# of the usual ones (no -k unless given) and waits (10 s) for it to exit;
# prints its exit status.  For start-up refusals.
ns_run() {
	local n=$1 rc
	shift
	echo "=== $(date +%T.%N) run: $*" >> "$(ns_log "$n")"
	timeout -s KILL 10 nsenter --net="/run/netns/$(ns_of "$n")" \
		"$CLUCKD" -f -n "$n" -D "$(ns_dir "$n")/data" "$@" "$(ns_mnt "$n")" \
		>>"$(ns_log "$n")" 2>&1
	rc=$?
	ns_umount "$(ns_mnt "$n")"
	echo "$rc"
}

# ns_san NODE: a sanitizer report in NODE's log fails the test (once each).
declare -A NS_SAN
ns_san() {
	local log
	log=$(ns_log "$1")
	if [ -z "${NS_SAN[$1]:-}" ] && grep -q "Sanitizer" "$log" 2>/dev/null; then
		NS_SAN[$1]=1
		fail "$1: sanitizer report in its log:"
		grep -A20 "Sanitizer" "$log" | head -n 40
	fi
}

# ns_reap NODE: waits for NODE's dead cluckd and clears its mount.
ns_reap() {
	local n=$1
	[ -n "${NS_PID[$n]:-}" ] || return 0
	wait "${NS_WRAP[$n]}" 2>/dev/null
	NS_RC=$(cat "$(ns_dir "$n")/rc" 2>/dev/null)
	NS_PID[$n]=
	NS_STOPPED[$n]=
	ns_umount "$(ns_mnt "$n")"
	ns_san "$n"
}

# ns_kill NODE SIG: signals NODE's cluckd.  KILL also waits for it and
# clears the dead mount so that ns_start can mount again.
ns_kill() {
	local n=$1 sig=$2
	[ -n "${NS_PID[$n]:-}" ] || return 1
	kill -s "$sig" "${NS_PID[$n]}" 2>/dev/null
	case $sig in
	STOP|SIGSTOP) NS_STOPPED[$n]=1 ;;
	CONT|SIGCONT) NS_STOPPED[$n]= ;;
	KILL|SIGKILL|9)
		wait_until 5 dead "${NS_PID[$n]}"
		ns_reap "$n"
		;;
	esac
	echo "=== $(date +%T.%N) SIG$sig" >> "$(ns_log "$n")"
}

# ns_stop NODE: SIGTERM, 10 s to exit (then SIGKILL and a failure); sets NS_RC.
ns_stop() {
	local n=$1
	NS_RC=
	[ -n "${NS_PID[$n]:-}" ] || return 0
	[ -n "${NS_STOPPED[$n]}" ] && kill -CONT "${NS_PID[$n]}" 2>/dev/null
	kill -TERM "${NS_PID[$n]}" 2>/dev/null
	if ! wait_until 10 dead "${NS_PID[$n]}"; then
		fail "$n: cluckd did not exit within 10 s of SIGTERM"
		kill -KILL "${NS_PID[$n]}" 2>/dev/null
	fi
	ns_reap "$n"
}

# ns_restart NODE: stops NODE if it runs, starts it with its last options.
ns_restart() {
	local n=$1
	ns_stop "$n"
	eval "ns_start \"\$n\" ${NS_OPTS[$n]:-}"
}

# ---- links and partitions ----------------------------------------------------

# ns_reach A B: a TCP connect from A to a closed port of B is refused at
# once (no ping here): 0 when B answered within a second, 1 when not.
ns_reach() {
	local e
	local rc
	e=$(ns_exec "$1" timeout -s KILL 1 bash -c "exec 3<>/dev/tcp/${NS_IP[$2]}/9" 2>&1)
	rc=$?
	case $e in *refused*) return 0 ;; esac
	return $rc
}

ns_link_down() { ip -n "$(ns_of "$1")" link set eth0 down; }
ns_link_up() { ip -n "$(ns_of "$1")" link set eth0 up; }

# ns_nft NODE RULE...: adds a rule to NODE's own table (made on first use).
ns_nft() {
	local n=$1 chain=$2
	shift 2
	ns_exec "$n" nft -f - <<-EOF
	table inet cluck_t {
		chain input { type filter hook input priority 0; policy accept; }
		chain output { type filter hook output priority 0; policy accept; }
	}
	add rule inet cluck_t $chain $*
	EOF
}

# ns_cut A B: no packet between A and B either way.
ns_cut() {
	ns_nft "$1" output ip daddr "${NS_IP[$2]}" drop &&
	ns_nft "$1" input ip saddr "${NS_IP[$2]}" drop &&
	ns_nft "$2" output ip daddr "${NS_IP[$1]}" drop &&
	ns_nft "$2" input ip saddr "${NS_IP[$1]}" drop
}

# ns_cut_oneway A B: A's packets to B are dropped; B's reach A.
ns_cut_oneway() { ns_nft "$1" output ip daddr "${NS_IP[$2]}" drop; }

# ns_isolate NODE: NODE talks to nobody (its eth0 stays up).
ns_isolate() {
	ns_nft "$1" output oifname eth0 drop &&
	ns_nft "$1" input iifname eth0 drop
}

# ns_heal: every nft rule goes, every link comes up.
ns_heal() {
	local n
	for n in "${NS_NODES[@]}"; do
		ns_exec "$n" nft delete table inet cluck_t 2>/dev/null
		ns_link_up "$n" 2>/dev/null
	done
	return 0
}

# ---- reading nodes ---------------------------------------------------------------

# ns_status NODE KEY: "KEY: value" of NODE's status; "" when unreadable (a
# stopped daemon cannot answer, hence the hard timeout).
ns_status() {
	[ -z "${NS_STOPPED[$1]:-}" ] || return 0
	timeout -s KILL 2 cat "$(ns_mnt "$1")/status" 2>/dev/null | sed -n "s/^$2: //p" | head -n1
}

# ns_status_all NODE: the whole status text of NODE.
ns_status_all() {
	[ -z "${NS_STOPPED[$1]:-}" ] || return 0
	timeout -s KILL 2 cat "$(ns_mnt "$1")/status" 2>/dev/null
}

# ns_lock_field NODE NAME FIELD: like lock_field, on NODE's status.
ns_lock_field() {
	local l
	l=$(ns_status_all "$1" | grep -E "^lock /$2 " | head -n1)
	if [ -z "$l" ]; then
		case $3 in mode) echo absent ;; token) echo "" ;; *) echo 0 ;; esac
		return
	fi
	printf '%s\n' "$l" | tr ' ' '\n' | sed -n "s/^$3=//p"
}

# ns_metric NODE REGEX: the sum of the metric samples whose line starts
# with REGEX (name and labels), 0 when none.
ns_metric() {
	[ -z "${NS_STOPPED[$1]:-}" ] || { echo 0; return; }
	timeout -s KILL 2 cat "$(ns_mnt "$1")/metrics" 2>/dev/null |
		awk -v re="^$2" '$0 ~ re && $1 !~ /^#/ { s += $NF } END { printf "%d\n", s }'
}

# ns_running: the nodes whose cluckd runs and is not stopped.
ns_running() {
	local n
	for n in "${NS_NODES[@]}"; do
		ns_alive "$n" && [ -z "${NS_STOPPED[$n]:-}" ] && echo "$n"
	done
}

# ns_leaders [NODE...]: every node (default: running) whose role is leader.
ns_leaders() {
	local n
	[ $# -gt 0 ] || set -- $(ns_running)
	for n in "$@"; do
		[ "$(ns_status "$n" role)" = leader ] && echo "$n"
	done
}

# ns_leader [NODE...]: the first of them.
ns_leader() { ns_leaders "$@" | head -n1; }

# ns_one_leader [NODE...]: exactly one leader among the nodes, and every
# one of them names the same leader (as the leader names itself) and term;
# sets NS_LEADER (a node name), NS_TERM.
ns_one_leader() {
	local l n t id
	[ $# -gt 0 ] || set -- $(ns_running)
	l=$(ns_leaders "$@")
	[ -n "$l" ] && [ "$(printf '%s\n' "$l" | wc -l)" = 1 ] || return 1
	t=$(ns_status "$l" term)
	id=$(ns_status "$l" leader)
	[ -n "$id" ] || return 1
	for n in "$@"; do
		[ "$(ns_status "$n" leader)" = "$id" ] || return 1
		[ "$(ns_status "$n" term)" = "$t" ] || return 1
	done
	NS_LEADER=$l
	NS_TERM=$t
}

# ns_roles [NODE...]: "node=role/leader/term ..." for failure messages.
ns_roles() {
	local n
	[ $# -gt 0 ] || set -- $(ns_running)
	for n in "$@"; do
		printf ' %s=%s/%s/%s' "$n" "$(ns_status "$n" role)" "$(ns_status "$n" leader)" "$(ns_status "$n" term)"
	done
}

# ns_wait_leader SECS [NODE...]: waits for ns_one_leader; 1 on timeout.
ns_wait_leader() {
	local s=$1
	shift
	wait_until "$s" ns_one_leader "$@" && ns_one_leader "$@"
}

# ---- workload ----------------------------------------------------------------------

# ns_client NODE CLIENT FILE MODE COUNT HOLD_MS [OPTS...]: a histcheck
# client on NODE's mount (FILE relative to it) appending to $NS_HIST; sets
# CPID.  The client runs in the test's namespaces: only its mount matters.
ns_client() {
	local n=$1 c=$2 f=$3 m=$4 k=$5 h=$6
	shift 6
	"$HISTCHECK" --client "$n" "$c" "$(ns_mnt "$n")/$f" "$m" "$k" "$h" "$NS_HIST" "$@" \
		2>>"$T_DIR/clients.err" &
	CPID=$!
	bg_track "$CPID"
}

# ns_histcheck [FILE]: runs histcheck over a history, prints its report
# indented, returns its status.
ns_histcheck() {
	local h=${1:-$NS_HIST} out rc
	# Files are named by their full path on each node; compare by the path
	# inside the mount, which is what the cluster locks.
	sed -E "s# $T_DIR/n/[^/ ]+/mnt/# /#" "$h" > "$h.norm"
	out=$("$HISTCHECK" "$h.norm" 2>&1)
	rc=$?
	printf '%s\n' "$out" | sed 's/^/    /' | head -n 60
	return $rc
}

# ---- clean-up ---------------------------------------------------------------------------

ns_cleanup() {
	local rc=$? n p
	trap - EXIT INT TERM
	exec 2>/dev/null    # no "Killed" notices for the clients we kill
	for p in $T_BGPIDS; do
		kill_tree KILL "$p" 2>/dev/null
	done
	for n in "${NS_NODES[@]}"; do
		[ -n "${NS_PID[$n]:-}" ] || continue
		kill -CONT "${NS_PID[$n]}" 2>/dev/null
		kill -TERM "${NS_PID[$n]}" 2>/dev/null
	done
	for n in "${NS_NODES[@]}"; do
		[ -n "${NS_PID[$n]:-}" ] || continue
		wait_until 5 dead "${NS_PID[$n]}" || kill -KILL "${NS_PID[$n]}" 2>/dev/null
		wait "${NS_WRAP[$n]}" 2>/dev/null
		NS_PID[$n]=
	done
	for n in "${NS_NODES[@]}"; do
		ns_umount "$(ns_mnt "$n")"
		chattr -i "$(ns_mnt "$n")" 2>/dev/null
		if [ -z "${NS_SAN[$n]:-}" ] && grep -q "Sanitizer" "$(ns_log "$n")" 2>/dev/null; then
			echo "FAIL: $n: sanitizer report in its log:"
			grep -A20 "Sanitizer" "$(ns_log "$n")" | head -n 40
			rc=1
		fi
	done
	if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
		for n in "${NS_NODES[@]}"; do
			[ -s "$(ns_log "$n")" ] || continue
			echo "--- last lines of $n's log ---"
			tail -n 25 "$(ns_log "$n")"
		done
		if [ -s "$T_DIR/clients.err" ]; then
			echo "--- client errors ---"
			tail -n 10 "$T_DIR/clients.err"
		fi
	fi
	for p in "${NS_MADE[@]}"; do
		ip netns del "$p" 2>/dev/null
	done
	(exit "$rc")
	t_cleanup
}
trap ns_cleanup EXIT
