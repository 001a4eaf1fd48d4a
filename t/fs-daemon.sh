#!/bin/sh
# t/fs-daemon.sh - cluckd as a program (SPEC 4.1): bad options are one line
# on stderr and exit 2, --help/--version, clean stops by SIGTERM (with a
# holder and a parked waiter) and by fusermount3 -u, the fail-closed
# immutable mount point, and the configuration file.
#
# It must never: leave a daemon running when an option it expected to be
# refused was accepted (every such run is bounded by timeout and unmounted).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"
require_cmd lsattr chattr getfattr

M=$MNT
ERR=$T_DIR/err

# bad WHAT ARGS...: cluckd ARGS must exit 2 with exactly one line on stderr.
bad() {
	local what=$1 rc lines
	shift
	timeout -s TERM 5 "$CLUCKD" "$@" > /dev/null 2> "$ERR"
	rc=$?
	mounted && { fusermount3 -uz "$M"; fail "$what: cluckd mounted"; }
	lines=$(grep -vc '^$' "$ERR")
	if [ "$rc" = 2 ] && [ "$lines" = 1 ]; then
		ok "$what: exit 2, one line: $(cat "$ERR")"
	else
		fail "$what: expected exit 2 and one line on stderr, got exit $rc and $lines lines: $(head -n 3 "$ERR" | tr '\n' '|')"
	fi
}

B=(-f -n testnode -D "$T_DIR/data")
bad "unknown option" "${B[@]}" --bogus "$M"
bad "--lease abc" "${B[@]}" --lease abc "$M"
bad "--lease 0" "${B[@]}" --lease 0 "$M"
bad "--on-lost BOGUS" "${B[@]}" --on-lost BOGUS "$M"
mkdir -p "$T_DIR/mnt2"
bad "two mount points" "${B[@]}" "$M" "$T_DIR/mnt2"
bad "no mount point" "${B[@]}"
bad "missing mount directory" "${B[@]}" "$T_DIR/nonexistent"
: > "$T_DIR/regular"
bad "a regular file as mount point" "${B[@]}" "$T_DIR/regular"
bad "a multi-node --cluster" "${B[@]}" --insecure --cluster testnode=127.0.0.1:17471,other=127.0.0.1:17472 "$M"
head -c 32 /dev/urandom > "$T_DIR/key"
chmod 0644 "$T_DIR/key"
bad "a key file readable by others" "${B[@]}" -k "$T_DIR/key" "$M"
bad "a bad --name" "${B[@]}" -n 'bad name/x' "$M"
chattr -i "$T_DIR/mnt2" 2>/dev/null

out=$(timeout 5 "$CLUCKD" --help 2>&1); rc=$?
expect_eq "--help exit" 0 "$rc"
expect_match "--help shows usage" "[Uu]sage" "$out"
out=$(timeout 5 "$CLUCKD" --version 2>&1); rc=$?
expect_eq "--version exit" 0 "$rc"
expect_match "--version prints a version" "[0-9]+\.[0-9]+" "$out"

# --- SIGTERM with a holder and a parked waiter -------------------------------
start_cluckd || finish
ORDER=$T_DIR/order
: > "$ORDER"
flock -o "$M/j" sh -c "echo \$\$ >> '$T_PIDS'; echo H >> '$ORDER'; exec sleep 60" &
H=$!; bg_track "$H"
wait_until 5 grep -qx H "$ORDER" || fail "holder not granted"
flock "$M/j" true 2>"$T_DIR/waiter.err" &
W=$!; bg_track "$W"
wait_until 5 waiters_are j 1 || fail "expected a parked waiter, got $(lock_field j waiters)"
rss=$(daemon_rss_kb)
if [ -n "$rss" ] && [ "$rss" -gt 0 ]; then ok "daemon RSS ${rss} KiB"; else fail "daemon_rss_kb: got '$rss'"; fi
stop_cluckd
expect_eq "exit status after SIGTERM with a holder and a waiter" 0 "$CLUCKD_RC"
if wait_until 5 dead "$W"; then
	wait "$W"; rc=$?
	if [ "$rc" != 0 ]; then ok "the parked waiter ended with an error (exit $rc: $(cat "$T_DIR/waiter.err"))"; else fail "the parked waiter exited 0 after cluckd stopped (it must not get the lock)"; fi
else
	fail "the parked waiter still hangs 5 s after cluckd stopped"
fi
kill_tree KILL "$H"; wait "$H" 2>/dev/null

# --- fail closed ----------------------------------------------------------------
expect_match "mount point immutable after stop (lsattr -d)" '^[^ ]*i[^ ]* ' "$(lsattr -d "$M" 2>&1)"
expect_rc "touch in the stopped mount point fails" 1 touch "$M/x"
flock -n "$M/x" true 2>/dev/null
rc=$?
if [ $rc != 0 ]; then ok "flock in the stopped mount point fails (exit $rc)"; else fail "flock in the stopped mount point: expected failure, got exit 0 (fail-open)"; fi
expect_rc "nothing was created underneath" 1 test -e "$M/x"

# --- fusermount3 -u stops the daemon -----------------------------------------------
start_cluckd || finish
fusermount3 -u "$M"
if wait_until 5 dead "$CLUCKD_PID"; then ok "fusermount3 -u stops cluckd"; else fail "cluckd still running 5 s after fusermount3 -u"; fi
stop_cluckd
expect_eq "exit status after fusermount3 -u" 0 "$CLUCKD_RC"

# --- SIGINT stops it as well ------------------------------------------------------
start_cluckd || finish
stop_cluckd INT
expect_eq "exit status after SIGINT" 0 "$CLUCKD_RC"

# --- configuration file -----------------------------------------------------------------
printf '# test configuration\nlockfile-ttl = 1\n\nlease 10\n' > "$T_DIR/good.conf"
start_cluckd -c "$T_DIR/good.conf" || finish
"$FSPROBE" excl "$M/eph"
expect_eq "config lockfile-ttl gives O_EXCL files a ttl" 1 "$(getfattr --absolute-names -n user.cluck.ttl --only-values "$M/eph" 2>&1)"
if wait_until 4 eval '[ ! -e "$M/eph" ]'; then ok "config lockfile-ttl = 1 is honoured"; else fail "config lockfile-ttl = 1: the O_EXCL file still there after 4 s"; fi
stop_cluckd
expect_eq "exit status after SIGTERM" 0 "$CLUCKD_RC"

printf '# test configuration\nbogus-key = 3\n' > "$T_DIR/bad.conf"
bad "a bad key in the config file" "${B[@]}" -c "$T_DIR/bad.conf" "$M"
expect_match "the config error names file:line" "bad\.conf:2" "$(cat "$ERR")"
printf 'lease = abc\n' > "$T_DIR/bad2.conf"
bad "a bad value in the config file" "${B[@]}" -c "$T_DIR/bad2.conf" "$M"
expect_match "the config error names file:line" "bad2\.conf:1" "$(cat "$ERR")"
bad "a missing config file" "${B[@]}" -c "$T_DIR/missing.conf" "$M"

finish
