#!/bin/sh
# t/fs-daemon.sh - cluckd as a program (SPEC 4.1): bad options are one line
# on stderr and exit 2 (a key file others may read or another user owns
# among them), --help/--version, clean stops by SIGTERM (with a
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
bad "a multi-node --cluster without a key" "${B[@]}" --cluster testnode=127.0.0.1:17471,other=127.0.0.1:17472 "$M"
bad "--lease under 1 s in a cluster" "${B[@]}" --insecure --lease 0.5 \
	--cluster testnode=127.0.0.1:17471,other=127.0.0.1:17472 "$M"
bad "more than 7 voters" "${B[@]}" --insecure --cluster \
	testnode=127.0.0.1:17471,v2=127.0.0.2,v3=127.0.0.3,v4=127.0.0.4,v5=127.0.0.5,v6=127.0.0.6,v7=127.0.0.7,v8=127.0.0.8 "$M"
head -c 32 /dev/urandom > "$T_DIR/key"
chmod 0644 "$T_DIR/key"
bad "a key file readable by others" "${B[@]}" -k "$T_DIR/key" "$M"
mkfifo -m 600 "$T_DIR/keyfifo"
bad "a FIFO as key file (refused, not waited on)" "${B[@]}" -k "$T_DIR/keyfifo" "$M"
# Owned by another user (as ssh refuses such a key): its owner could
# rewrite it.  Mode 600 and a lone voter with a key, which would otherwise
# start; through a symbolic link the file it names is checked.
if [ "$(id -u)" = 0 ]; then
	chmod 0600 "$T_DIR/key"
	chown nobody "$T_DIR/key"
	bad "a key file owned by another user" "${B[@]}" -k "$T_DIR/key" "$M"
	expect_match "the refusal says why" "key file .* is owned by another user" "$(cat "$ERR")"
	ln -s "$T_DIR/key" "$T_DIR/keylink"
	bad "a symbolic link to a key file owned by another user" "${B[@]}" -k "$T_DIR/keylink" "$M"
	chown root "$T_DIR/key"
fi
bad "a bad --name" "${B[@]}" -n 'bad name/x' "$M"
chattr -i "$T_DIR/mnt2" 2>/dev/null

out=$(timeout 5 "$CLUCKD" --help 2>&1); rc=$?
expect_eq "--help exit" 0 "$rc"
expect_match "--help shows usage" "[Uu]sage" "$out"
for opt in -f --foreground -n --name -C --cluster -l --listen -D --data-dir -k --key-file \
	--client-listen --lease --op-timeout --lockfile-ttl --on-lost -c --config -o; do
	printf '%s\n' "$out" | grep -Eq -- "(^| )$opt[ ,]" || fail "--help does not list $opt"
done
# Descriptions start in one column; an option too long for it puts its
# description on the next line; nothing wider than 79 columns.
misaligned=$(printf '%s\n' "$out" | python3 -c '
import re, sys
lines = sys.stdin.read().split("\n")
for k, l in enumerate(lines):
    opt = re.match(r"^  (-[a-zA-Z], |    )--?[a-z]", l) or re.match(r"^  -[a-zA-Z] ", l)
    cont = l.startswith(" " * 28)
    if len(l) > 79:
        print("too wide: " + l)
    elif cont and l[28:29] == " ":
        print("continuation not at column 29: " + l)
    elif opt and not cont:
        if "  " in l[4:].strip():
            if not (len(l) > 28 and l[26:28] == "  " and l[28] != " "):
                print("description not at column 29: " + l)
        elif not (k + 1 < len(lines) and lines[k + 1].startswith(" " * 28)):
            print("option alone without a description below: " + l)
')
expect_eq "--help options and descriptions aligned at column 29" "" "$misaligned"
out=$(timeout 5 "$CLUCKD" --version 2>&1); rc=$?
expect_eq "--version exit" 0 "$rc"
expect_match "--version prints a version" "[0-9]+\.[0-9]+" "$out"

# --- SIGTERM with a holder and a parked waiter -------------------------------
start_cluckd || finish
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

# --- SIGTERM with 1000 parked waiters: all answered, exit 0 within a second --------
start_cluckd || finish
flock "$M/many" sh -c "echo \$\$ >> '$T_PIDS'; exec sleep 60" & H=$!; bg_track "$H"
wait_until 5 holders_are many 1 || fail "many: holder not granted"
python3 - "$M/many" 1000 > "$T_DIR/many.out" 2>&1 <<'EOF2' &
import fcntl, os, sys, threading
path, n = sys.argv[1], int(sys.argv[2])
res = []
def w():
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        res.append("granted")
    except OSError as e:
        res.append(type(e).__name__)
ts = [threading.Thread(target=w) for _ in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print("answered %d granted %d" % (len(res), res.count("granted")))
EOF2
PY=$!; bg_track "$PY"
wait_until 20 waiters_are many 1000 || fail "many: expected 1000 parked waiters, got $(lock_field many waiters)"
t0=$(now_ms)
kill -TERM "$CLUCKD_PID"
if wait_until 1 dead "$CLUCKD_PID"; then ok "cluckd exited within 1 s of SIGTERM with 1000 waiters ($(( $(now_ms) - t0 )) ms)"; else fail "cluckd still running 1 s after SIGTERM with 1000 waiters"; fi
stop_cluckd
expect_eq "exit status after SIGTERM with 1000 waiters" 0 "$CLUCKD_RC"
wait_until 5 dead "$PY" || fail "many: some waiters still hang 5 s after cluckd stopped"
wait "$PY" 2>/dev/null
expect_eq "every parked waiter answered, none granted" "answered 1000 granted 0" "$(cat "$T_DIR/many.out")"
kill_tree KILL "$H"; wait "$H" 2>/dev/null

# --- a mount point whose path has blanks and quotes; starting twice; a dead mount --
chattr -i "$M" 2>/dev/null
SP=$T_DIR/"dir with 'blanks'"
MNT=$SP/mnt
M=$MNT
mkdir -p "$M"
ABS_CLUCKD=$(cd "$(dirname "$CLUCKD")" && pwd)/$(basename "$CLUCKD")
start_cluckd || finish
expect_eq "served under a path with blanks" "node: testnode" "$(head -n1 "$M/status")"
# twice: ITS error must not tell the admin to unmount the live one lazily
(cd "$SP" && timeout 5 "$ABS_CLUCKD" "${B[@]}" mnt/) > /dev/null 2> "$ERR"
rc=$?
expect_eq "starting twice on one mount point: exit 2" 2 "$rc"
expect_eq "starting twice: one line on stderr" 1 "$(grep -vc '^$' "$ERR")"
expect_match "starting twice: says a cluckd serves it, with the absolute path" \
	"^cluckd: $T_DIR/dir with 'blanks'/mnt: a running cluckd already serves it" "$(cat "$ERR")"
if mounted && head -c1 "$M/status" > /dev/null 2>&1; then ok "the first cluckd still serves"; else fail "the first cluckd was disturbed by the second start"; fi
# SIGKILL leaves a dead mount; the error names the exact command to run
kill -KILL "$CLUCKD_PID"; wait "$CLUCKD_PID" 2>/dev/null; CLUCKD_PID=
(cd "$SP" && timeout 5 "$ABS_CLUCKD" "${B[@]}" mnt) > /dev/null 2> "$ERR"
rc=$?
expect_eq "start on a dead mount: exit 2" 2 "$rc"
expect_eq "start on a dead mount: one line on stderr" 1 "$(grep -vc '^$' "$ERR")"
fix=$(sed -n 's/.*clear it with: //p' "$ERR")
expect_match "start on a dead mount: names the command" "^fusermount3 -uz " "$fix"
(cd / && eval "$fix") 2>/dev/null
if ! mounted && [ -d "$M" ]; then ok "the command from the error clears the dead mount: $fix"; else fail "running '$fix' did not clear the dead mount"; fusermount3 -uz "$M" 2>/dev/null; fi
start_cluckd || finish
expect_eq "starts again after the dead mount was cleared" "node: testnode" "$(head -n1 "$M/status")"
stop_cluckd
expect_eq "exit status after SIGTERM" 0 "$CLUCKD_RC"

# --- a node alone's data directory is not merged into a cluster -------------
out=$(timeout 10 "$CLUCKD" "${B[@]}" --insecure --op-timeout 1 \
	--cluster testnode=127.0.0.1:17471,other=127.0.0.1:17472 "$M" 2>&1); rc=$?
expect_eq "a node alone's data directory in a cluster: exit" 1 "$rc"
expect_match "... says whose it is" "belongs to a node alone" "$out"
chattr -i "$M" 2>/dev/null

finish
