#!/bin/sh
# t/net-link.sh - the link monitor (net/link.c, through t/linkwatch) on a
# veth pair between two private network namespaces: it must say "up" at
# start, "down" within a second of the interface going down, losing its
# carrier or losing the address we send from, "up" again within a second of
# each coming back, and nothing when an unrelated change happens; over
# IPv4 and IPv6, with a route put back silently (the back-off re-check), and
# on loopback.  It prints how long each transition took to be noticed.
#
# Needs root and ip(8) (exit 77 without them, exit 1 under CI=true).
# Env: T_BIN (directory of linkwatch, default ./t).
#
# It must never: touch the host's own interfaces or addresses (everything
# lives in two namespaces named for this run), leave a namespace or a
# process behind (the EXIT trap removes them on every path), or wait
# without a deadline.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"

T_NAME=net-link
T_FAILS=0
T_CHECKS=0
: "${T_BIN:=./t}"
LW="$T_BIN/linkwatch"

skip() {
	if [ "${CI:-}" = true ]; then
		echo "FAIL: $T_NAME: requirement missing under CI: $*"
		exit 1
	fi
	echo "SKIP: $T_NAME: $*"
	exit 77
}

ok() { T_CHECKS=$((T_CHECKS + 1)); echo "ok: $*"; }
fail() { T_CHECKS=$((T_CHECKS + 1)); T_FAILS=$((T_FAILS + 1)); echo "FAIL: $*"; }

[ "$(id -u)" = 0 ] || skip "not root"
for c in ip mkfifo; do
	command -v "$c" >/dev/null 2>&1 || skip "$c not found"
done
[ -x "$LW" ] || skip "linkwatch not built ($LW)"

NS_A="cluck-lA-$$"
NS_B="cluck-lB-$$"
LW_PID=
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cluck-$T_NAME.XXXXXX") || exit 1

# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	exec 2>/dev/null
	exec 3<&-
	if [ -n "$LW_PID" ]; then
		kill -KILL "$LW_PID"
		wait "$LW_PID"
	fi
	ip netns del "$NS_A"
	ip netns del "$NS_B"
	rm -rf "$T_DIR"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$NS_A" 2>/dev/null || skip "cannot create a network namespace"
ip netns add "$NS_B" || { fail "ip netns add $NS_B"; exit 1; }

# A /24 in 10.251.0.0/16 the host does not use (the namespaces are private,
# but an address the host knows would make a failure here confusing).
NET=
for _ in 1 2 3 4 5 6 7 8 9 10; do
	cand="10.251.$((RANDOM % 200)).0"
	if ! ip -4 addr show | grep -q "inet ${cand%.0}\." &&
	   ! ip -4 route show | grep -q "^${cand%.0}\."; then
		NET=${cand%.0}
		break
	fi
done
[ -n "$NET" ] || skip "no free 10.251.x.0/24 found"
A_IP="$NET.1"
B_IP="$NET.2"
# The namespaces are private: a ULA prefix cannot clash with anything.
NET6="fd00:251:${NET##*.}::"
A_IP6="${NET6}1"
B_IP6="${NET6}2"

set -e
ip -n "$NS_A" link set lo up
ip -n "$NS_B" link set lo up
# The kernel defers a carrier change by up to a second (linkwatch) unless
# it is "urgent", which for a veth means its ifindex differs from its
# peer's.  Both namespaces are fresh, so va and vb would both be ifindex 2:
# a spare pair in B first moves vb up, and what is measured below is the
# monitor's delay, not the kernel's batching (a real NIC gets the batching).
ip -n "$NS_B" link add spare0 type veth peer name spare1
ip -n "$NS_A" link add va type veth peer name vb netns "$NS_B"
ip -n "$NS_A" addr add "$A_IP/24" dev va
ip -n "$NS_B" addr add "$B_IP/24" dev vb
# Linux drops IPv6 addresses when a link goes down unless told otherwise;
# keep them, so that IPv6 behaves as IPv4 across the link flaps below.
for ns in "$NS_A" "$NS_B"; do
	ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/keep_addr_on_down'
done
# nodad: usable at once, no second of tentative state.
ip -n "$NS_A" addr add "$A_IP6/64" dev va nodad
ip -n "$NS_B" addr add "$B_IP6/64" dev vb nodad
ip -n "$NS_A" link set va up
ip -n "$NS_B" link set vb up
set +e

# usecs: wall clock in microseconds (no fork: $EPOCHREALTIME, bash >= 5).
usecs() {
	if [ -n "${EPOCHREALTIME:-}" ]; then
		local t=${EPOCHREALTIME/[.,]/}
		echo "$t"
	else
		echo $(( $(date +%s%N) / 1000 ))
	fi
}

# expect_line WHAT WANT SECS: the next line from linkwatch must be WANT and
# arrive within SECS of the start of the step (T0); prints the delay.
expect_line() {
	local what=$1 want=$2 secs=$3 line='' ms
	if read -r -t "$secs" line <&3; then
		ms=$(( ($(usecs) - T0) / 1000 ))
		if [ "$line" = "$want" ]; then
			ok "$what: '$line' after $ms ms"
		else
			fail "$what: expected '$want', got '$line' (after $ms ms)"
		fi
	else
		fail "$what: expected '$want' within $secs s, got nothing"
	fi
}

# expect_quiet WHAT SECS: no line from linkwatch for SECS.
expect_quiet() {
	local line=''
	if read -r -t "$2" line <&3; then
		fail "$1: expected no transition, got '$line'"
	else
		ok "$1: no transition reported in $2 s"
	fi
}

# step CMD...: marks the start of a timed step and runs CMD in namespace A
# or B (first word "A" or "B").
step() {
	local ns=$NS_A
	[ "$1" = B ] && ns=$NS_B
	shift
	T0=$(usecs)
	ip -n "$ns" "$@" || fail "ip -n $ns $*: exit $?"
}

# start_watch PEER: runs linkwatch in namespace A on PEER, its stdout on
# fd 3 (a fifo, so reads wait for lines without polling), stderr in
# $T_DIR/err.N; then expects the start line "state up va".
RUN=0
start_watch() {
	RUN=$((RUN + 1))
	ERR="$T_DIR/err.$RUN"
	rm -f "$T_DIR/out"
	mkfifo "$T_DIR/out"
	T0=$(usecs)
	ip netns exec "$NS_A" "$LW" "$1" > "$T_DIR/out" 2> "$ERR" &
	LW_PID=$!
	exec 3< "$T_DIR/out"
}

# stop_watch: SIGTERM must end linkwatch with status 0 and no sanitizer
# report, and its log must name the transitions it saw (IF given).
stop_watch() {
	local rc end
	kill -TERM "$LW_PID"
	end=$(( $(usecs) + 5000000 ))
	while kill -0 "$LW_PID" 2>/dev/null && [ "$(usecs)" -lt "$end" ]; do
		sleep 0.02
	done
	if kill -0 "$LW_PID" 2>/dev/null; then
		fail "linkwatch $RUN still running 5 s after SIGTERM"
		kill -KILL "$LW_PID"
	fi
	wait "$LW_PID"
	rc=$?
	LW_PID=
	exec 3<&-
	if [ "$rc" = 0 ]; then ok "linkwatch $RUN exits 0 on SIGTERM"; else fail "linkwatch $RUN exit status $rc on SIGTERM"; fi
	if grep -q "Sanitizer" "$ERR"; then
		fail "sanitizer report from linkwatch $RUN:"
		head -n 40 "$ERR"
	fi
	if [ -n "${1:-}" ]; then
		if grep -q "link $1 down: " "$ERR" && grep -q "link $1 up" "$ERR"; then
			ok "linkwatch $RUN logged its transitions"
		else
			fail "linkwatch $RUN did not log its transitions: $(head -c 400 "$ERR")"
		fi
	fi
}

# --- IPv4 over the veth ------------------------------------------------------
start_watch "$B_IP"
expect_line "start" "state up va" 5

step A link set va down
expect_line "ip link set va down" "state down va" 1
step A link set va up
expect_line "ip link set va up" "state up va" 1

# The far end going down takes our carrier (IFF_RUNNING) but not our routes.
step B link set vb down
expect_line "peer end down (no carrier)" "state down va" 1
step B link set vb up
expect_line "peer end up (carrier back)" "state up va" 1

step A addr del "$A_IP/24" dev va
expect_line "ip addr del $A_IP" "state down va" 1
step A addr add "$A_IP/24" dev va
expect_line "ip addr add $A_IP" "state up va" 1

# Changes that are no transition: a second address, a change on lo.
step A addr add "$NET.9/24" dev va
step A addr add 192.0.2.250/32 dev lo
expect_quiet "unrelated address changes" 0.3
step A addr del "$NET.9/24" dev va
expect_quiet "secondary address removed" 0.3

# Down twice in a row reports once.
step A link set va down
expect_line "down again" "state down va" 1
step A addr del "$A_IP/24" dev va
expect_quiet "address removed while already down" 0.3
step A addr add "$A_IP/24" dev va
step A link set va up
expect_line "link and address back" "state up va" 1

# Routes are not watched (a router's table is too big to cache): a lost
# route shows at the next link or address event, and while down the
# monitor re-checks on a back-off timer, so a route put back with no
# other event is still noticed.
step A route del "$NET.0/24" dev va
step A addr add 192.0.2.251/32 dev lo
expect_line "route gone, noticed at the next address event" "state down va" 1
step A route add "$NET.0/24" dev va src "$A_IP"
expect_line "route back, no event (back-off re-check)" "state up va" 1.5
stop_watch va

# --- IPv6 over the veth --------------------------------------------------------
start_watch "$B_IP6"
expect_line "IPv6: start" "state up va" 5
step A link set va down
expect_line "IPv6: ip link set va down" "state down va" 1
step A link set va up
expect_line "IPv6: ip link set va up" "state up va" 2
step A addr del "$A_IP6/64" dev va
expect_line "IPv6: ip addr del $A_IP6" "state down va" 1
step A addr add "$A_IP6/64" dev va nodad
expect_line "IPv6: ip addr add $A_IP6" "state up va" 1
stop_watch va

# --- loopback: a valid answer that a veth going down does not touch ---------
start_watch 127.0.0.1
expect_line "loopback: start" "state up lo" 5
step A link set va down
expect_quiet "loopback: veth down is not our link" 0.3
step A link set va up
stop_watch

if [ "$T_FAILS" -gt 0 ]; then
	for f in "$T_DIR"/err.*; do
		echo "--- $f ---"
		cat "$f"
	done
	echo "$T_NAME: $T_FAILS of $T_CHECKS checks FAILED"
	exit 1
fi
echo "$T_NAME: all $T_CHECKS checks passed"
exit 0
