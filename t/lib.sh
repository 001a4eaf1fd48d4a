# t/lib.sh - shared harness for the cluckfs integration tests (t/fs-*.sh).
#
# Sourced (by bash) as "$top_srcdir/t/lib.sh".  It checks the requirements
# (skip with 77, or fail when CI=true), gives each test a private temporary
# directory and mount point, starts and stops a real cluckd, and offers small
# assertion helpers that print readable messages.
#
# It must never: leave a mount, a process or an immutable directory behind
# (the EXIT trap cleans up even on failure), touch anything outside its
# temporary directory, or sleep to "make things happen" (wait on conditions).

[ -n "${BASH_VERSION:-}" ] || { echo "t/lib.sh needs bash" >&2; exit 1; }

T_NAME=$(basename "$0" .sh)
T_FAILS=0
T_CHECKS=0
CLUCKD_PID=
CLUCKD_RC=
T_BGPIDS=
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${top_builddir:=.}"
: "${CLUCKD:=$top_builddir/cluckd}"
: "${T_BIN:=$top_builddir/t}"
FSPROBE="$T_BIN/fsprobe"

# skip REASON: exit 77, or 1 under CI where every requirement must be met.
skip() {
	if [ "${CI:-}" = true ]; then
		echo "FAIL: $T_NAME: requirement missing under CI: $*"
		exit 1
	fi
	echo "SKIP: $T_NAME: $*"
	exit 77
}

# require_cmd CMD...: every command must be in PATH.
require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "$c not found"
	done
}

[ "$(id -u)" = 0 ] || skip "not root"
[ -c /dev/fuse ] && [ -r /dev/fuse ] && [ -w /dev/fuse ] || skip "/dev/fuse not usable"
require_cmd fusermount3 flock python3 mountpoint timeout
[ -x "$CLUCKD" ] || skip "cluckd not built ($CLUCKD)"
[ -x "$FSPROBE" ] || skip "fsprobe not built ($FSPROBE)"

T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cluck-$T_NAME.XXXXXX") || exit 1
MNT="$T_DIR/mnt"
LOG="$T_DIR/cluckd.log"
mkdir -p "$MNT" "$T_DIR/data"
: > "$LOG"

# ---- reporting ----------------------------------------------------------

# ok MSG: one passed check.
ok() { T_CHECKS=$((T_CHECKS + 1)); echo "ok: $*"; }

# fail MSG: one failed check; the test goes on and exits 1 at the end.
fail() { T_CHECKS=$((T_CHECKS + 1)); T_FAILS=$((T_FAILS + 1)); echo "FAIL: $*"; }

# expect_eq WHAT EXPECTED GOT
expect_eq() {
	local want=${2//$'\n'/\\n} got=${3//$'\n'/\\n}
	if [ "$2" = "$3" ]; then ok "$1: $want"; else fail "$1: expected '$want', got '$got'"; fi
}

# expect_rc WHAT EXPECTED_RC CMD...: runs CMD, compares its exit status.
expect_rc() {
	local what=$1 want=$2 rc
	shift 2
	"$@" >/dev/null 2>&1
	rc=$?
	if [ "$rc" = "$want" ]; then ok "$what: exit $rc"; else fail "$what: expected exit $want, got $rc"; fi
}

# expect_match WHAT REGEX TEXT: TEXT must match the extended regex.
expect_match() {
	if printf '%s\n' "$3" | grep -Eq -- "$2"; then
		ok "$1"
	else
		fail "$1: expected /$2/, got '$(printf '%s' "$3" | head -c 400)'"
	fi
}

# expect_errno WHAT ERRNO_NAME fsprobe-errno-args...
expect_errno() {
	local what=$1 want=$2 got
	shift 2
	got=$("$FSPROBE" errno "$@" 2>&1)
	expect_eq "$what" "$want" "$got"
}

# now_ms: wall clock in milliseconds.
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# wait_until SECS CMD...: polls CMD (every 20 ms) until it succeeds; 1 on timeout.
wait_until() {
	local end
	end=$(( $(now_ms) + $(awk -v s="$1" 'BEGIN { print int(s * 1000) }') ))
	shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$(now_ms)" -ge "$end" ] && return 1
		sleep 0.02
	done
}

# Processes that may outlive their parent (the command flock(1) runs) write
# their pid to $T_PIDS so the trap can kill them too.
T_PIDS="$T_DIR/pids"

# bg_track PID: remember a background process so the trap kills it.
bg_track() { T_BGPIDS="$T_BGPIDS $*"; }

# kill_tree SIG PID: signals PID and all its descendants (children first
# found, so a subshell cannot respawn anything).
kill_tree() {
	local sig=$1 p=$2 c
	kill -s STOP "$p" 2>/dev/null
	for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do
		kill_tree "$sig" "$c"
	done
	kill -s "$sig" "$p" 2>/dev/null
	kill -s CONT "$p" 2>/dev/null
}

# alive PID: the process exists and is not a zombie.
alive() {
	local st
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# dead PID: opposite of alive, for wait_until.
dead() { ! alive "$1"; }

# ---- lock holders in the background ------------------------------------

# Tags of granted holders, one per line, in grant order.
ORDER="$T_DIR/order"
: > "$ORDER"

# holder OPTS FILE TAG: background flock(1) that, once granted, logs TAG to
# $ORDER and holds until killed.  -o: the lock belongs to flock(1) itself,
# so killing that one pid releases it.  Sets HPID.
holder() {
	local opts=$1 file=$2 tag=$3
	flock $opts -o "$file" sh -c "echo \$\$ >> '$T_PIDS'; echo $tag >> '$ORDER'; exec sleep 60" &
	HPID=$!
	bg_track "$HPID"
	disown "$HPID"    # no "Killed" notice when the test kills it
}

# granted TAG: the holder tagged TAG got its lock.
granted() { grep -qx "$1" "$ORDER"; }

# release PID: kills a holder, which frees its lock.
release() { kill_tree KILL "$1"; wait "$1" 2>/dev/null; }

# ---- the daemon ---------------------------------------------------------

# mounted: the test mount point is a mount point now.
# From the mount table, not mountpoint(1): a mount whose daemon died
# answers ENOTCONN to stat, and mountpoint then says "not mounted", so a
# dead mount would be left behind.
# The table escapes blanks, newlines and backslashes in octal.
mounted() {
	M="$MNT" awk '{ p = $5; gsub(/\\040/, " ", p); gsub(/\\011/, "\t", p)
		gsub(/\\012/, "\n", p); gsub(/\\134/, "\\", p)
		if (p == ENVIRON["M"]) f = 1 } END { exit !f }' /proc/self/mountinfo
}

# start_cluckd [OPTS...]: starts cluckd in the foreground on $MNT, returns
# once the mount answers (10 s at most); 1 (and a message) on failure.
start_cluckd() {
	local end
	"$CLUCKD" -f -n testnode -D "$T_DIR/data" "$@" "$MNT" 2>>"$LOG" &
	CLUCKD_PID=$!
	end=$(( $(now_ms) + 10000 ))
	while [ "$(now_ms)" -lt "$end" ]; do
		if mounted && [ -r "$MNT/status" ] && head -c1 "$MNT/status" >/dev/null 2>&1; then
			return 0
		fi
		if ! alive "$CLUCKD_PID"; then
			wait "$CLUCKD_PID"
			CLUCKD_RC=$?
			fail "cluckd exited with $CLUCKD_RC during start-up: $(tail -n 5 "$LOG")"
			CLUCKD_PID=
			return 1
		fi
		sleep 0.02
	done
	fail "cluckd did not mount $MNT within 10 s"
	return 1
}

# stop_cluckd [SIGNAL]: signals cluckd (TERM), waits for it (10 s), checks it
# unmounted; sets CLUCKD_RC.  Fails the test if the log shows a sanitizer report.
stop_cluckd() {
	local sig=${1:-TERM}
	CLUCKD_RC=
	if [ -n "$CLUCKD_PID" ]; then
		kill -s "$sig" "$CLUCKD_PID" 2>/dev/null
		if ! wait_until 10 dead "$CLUCKD_PID"; then
			fail "cluckd did not exit within 10 s of SIG$sig"
			kill -KILL "$CLUCKD_PID" 2>/dev/null
		fi
		wait "$CLUCKD_PID" 2>/dev/null
		CLUCKD_RC=$?
		CLUCKD_PID=
	fi
	if mounted; then
		fail "$MNT still mounted after cluckd stopped"
		fusermount3 -uz "$MNT" 2>/dev/null
	fi
	check_sanitizer
}

# check_sanitizer: a sanitizer report in the daemon log fails the test (once).
T_SAN_SEEN=0
check_sanitizer() {
	if [ "$T_SAN_SEEN" = 0 ] && grep -q "Sanitizer" "$LOG" 2>/dev/null; then
		T_SAN_SEEN=1
		fail "sanitizer report in cluckd log:"
		grep -A20 "Sanitizer" "$LOG" | head -n 40
	fi
}

# daemon_rss_kb: resident set size of the running cluckd in KiB.
daemon_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$CLUCKD_PID/status" 2>/dev/null; }

# ---- reading the status file --------------------------------------------

# status_key KEY: the value of "KEY: value" in $MNT/status.
status_key() { sed -n "s/^$1: //p" "$MNT/status" | head -n1; }

# lock_line NAME: the status line of /NAME (empty when absent).
lock_line() { grep -E "^lock /$1 " "$MNT/status" | head -n1; }

# lock_field NAME FIELD: a field (holders, waiters, mode, token) of /NAME's
# lock line; "0" for counts (and "absent" for mode) when there is no line.
lock_field() {
	local l
	l=$(lock_line "$1")
	if [ -z "$l" ]; then
		case $2 in mode) echo absent ;; token) echo "" ;; *) echo 0 ;; esac
		return
	fi
	printf '%s\n' "$l" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# freed NAME: the status lists no holder of NAME.  A dead holder's release
# reaches the daemon after the process is gone (the kernel sends RELEASE
# in the background: notes/fuse-locks.md), so a test waits for this before
# it asserts that the file is free.
freed() { [ "$(lock_field "$1" holders)" = 0 ]; }

# waiters_are NAME N / holders_are NAME N: for wait_until.
waiters_are() { [ "$(lock_field "$1" waiters)" = "$2" ]; }
holders_are() { [ "$(lock_field "$1" holders)" = "$2" ]; }

# ---- clean-up -------------------------------------------------------------

t_cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	exec 2>/dev/null    # no "Killed" job notices from the shell
	for p in $T_BGPIDS $(jobs -p); do
		[ "$p" = "$CLUCKD_PID" ] && continue
		kill_tree KILL "$p"
	done
	for p in $(cat "$T_PIDS" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null
	done
	if [ -n "$CLUCKD_PID" ]; then
		kill -TERM "$CLUCKD_PID" 2>/dev/null
		wait_until 5 dead "$CLUCKD_PID" || kill -KILL "$CLUCKD_PID" 2>/dev/null
		wait "$CLUCKD_PID" 2>/dev/null
	fi
	mounted && fusermount3 -uz "$MNT" 2>/dev/null
	if [ "$T_SAN_SEEN" = 0 ] && grep -q "Sanitizer" "$LOG" 2>/dev/null; then
		echo "FAIL: sanitizer report in cluckd log:"
		grep -A20 "Sanitizer" "$LOG" | head -n 40
		rc=1
	fi
	if [ "$rc" != 0 ] && [ "$rc" != 77 ] && [ -s "$LOG" ]; then
		echo "--- last lines of the cluckd log ---"
		tail -n 30 "$LOG"
	fi
	wait 2>/dev/null
	chattr -i "$MNT" 2>/dev/null
	rm -rf "$T_DIR"
	exit "$rc"
}
trap t_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# finish: the end of every test.
finish() {
	if [ "$T_FAILS" -gt 0 ]; then
		echo "$T_NAME: $T_FAILS of $T_CHECKS checks FAILED"
		exit 1
	fi
	echo "$T_NAME: all $T_CHECKS checks passed"
	exit 0
}

# race N OUT CMD...: runs N copies of CMD released at the same moment (they
# all block on a local flock gate first); appends each exit status to OUT
# and its stderr to OUT.err.  Returns when all have finished.
race() {
	local n=$1 out=$2 gate ino i pids=
	shift 2
	gate="$T_DIR/gate.$RANDOM"
	: > "$out"
	: > "$out.err"
	: > "$gate"
	exec 8<"$gate"
	flock -x 8
	ino=$(stat -c %i "$gate")
	for i in $(seq "$n"); do
		( exec 8<&-; flock -s "$gate" true; "$@" >/dev/null 2>>"$out.err"; echo $? >> "$out" ) &
		pids="$pids $!"
	done
	# Let every copy park on the gate before opening it.
	wait_until 5 eval '[ "$(grep -c -- "-> FLOCK.*:$ino " /proc/locks)" -ge "$n" ]'
	flock -u 8
	exec 8<&-
	wait $pids
}

# count_rc OUT RC: how many lines of OUT are RC.
count_rc() { grep -cx -- "$2" "$1"; }
