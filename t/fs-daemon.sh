#!/bin/sh
# t/fs-daemon.sh - cluckd as a program (SPEC 4.1): bad options are one line
# on stderr and exit 2 (a key file others may read or another user owns
# among them), --help/--version, clean stops by SIGTERM (holders
# get --stop-timeout, then the --on-lost signal before their locks go;
# parked waiters and new requests get ENOLCK at once; a second SIGTERM cuts
# the wait short) and by fusermount3 -u (EBUSY while a file is open), the
# fail-closed immutable mount point, and the configuration file.
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
bad "--stop-timeout -1" "${B[@]}" --stop-timeout -1 "$M"
bad "--stop-timeout abc" "${B[@]}" --stop-timeout abc "$M"
bad "--stop-timeout 3601" "${B[@]}" --stop-timeout 3601 "$M"
bad "--accept-loss ' -5' (no wrap to a huge index)" "${B[@]}" --accept-loss ' -5' "$M"
bad "--accept-loss ' 7'" "${B[@]}" --accept-loss ' 7' "$M"
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
	--client-listen --lease --op-timeout --lockfile-ttl --on-lost --stop-timeout -c --config -o; do
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

# --- SIGTERM with holders: --stop-timeout, then the signal, then the locks go --
# sholder FILE TAG [keep]: a holder of FILE (flock, exclusive) that logs
# TAG to $ORDER once granted and, on SIGTERM, writes the time (ms) to
# sig.TAG and exits 0.  With keep it blocks SIGTERM instead: the signal
# stays pending (term_pending sees it whenever cluckd sent it, however late
# the holder runs), the holder writes the time it first sees it pending
# and holds on until killed.  Sets HPID.
sholder() {
	python3 - "$1" "$T_DIR/sig.$2" "$2" "$ORDER" "${3:-}" <<'EOF' &
import fcntl, os, signal, sys, time
path, sigf, tag, order, keep = sys.argv[1:6]
def note():
    with open(sigf, "w") as o:
        o.write("%d\n" % (time.time_ns() // 1000000))
def on_term(s, f):
    note()
    os._exit(0)
if keep:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
else:
    signal.signal(signal.SIGTERM, on_term)
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
with open(order, "a") as o:
    o.write(tag + "\n")
if keep:
    while signal.SIGTERM not in signal.sigpending():
        time.sleep(0.01)
    note()
time.sleep(60)
EOF
	HPID=$!
	bg_track "$HPID"
}
# term_pending PID: a SIGTERM waits to be delivered to PID (blocked).
term_pending() {
	local m
	for m in $(awk '/^(ShdPnd|SigPnd):/ { print $2 }' "/proc/$1/status" 2>/dev/null); do
		(( 0x$m & 0x4000 )) && return 0
	done
	return 1
}
sig_of() { cat "$T_DIR/sig.$1" 2>/dev/null; }
# signalled TAG: the holder tagged TAG has written its signal time.  cluckd
# sends the signal before it lets go, but the holder's handler runs when
# the holder is next scheduled, which may be after cluckd exited: wait
# for it (nothing else sends these holders a SIGTERM).
signalled() { [ -n "$(sig_of "$1")" ]; }
# json_stopping: status.json's "stopping" as "LEFT HOLDS", or "null".
json_stopping() {
	python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))["stopping"]
print("null" if s is None else "%d %d" % (s["seconds_left"], s["holds"]))' "$M/status.json" 2>&1
}

# --stop-timeout 5: the checks below that run while it lasts must all be
# done before it ends, on a loaded machine too (python3 alone can take a
# second to start there).
ST=5
start_cluckd --stop-timeout $ST || finish
expect_eq "status.json: stopping is null while running" null "$(json_stopping)"
sholder "$M/s1" S1 keep
S1=$HPID
# S2: flock(1) holds, its child shell does the work: the child is signalled too.
flock "$M/s2" sh -c "echo \$\$ >> '$T_PIDS'; trap 'echo \$((\$(date +%s%N) / 1000000)) > \"$T_DIR/sig.S2\"; exit 0' TERM; echo S2 >> '$ORDER'; while :; do sleep 0.05; done" &
bg_track $!
wait_until 5 granted S1 || fail "S1 not granted"
wait_until 5 granted S2 || fail "S2 not granted"
flock "$M/s1" true 2>"$T_DIR/waiter.err" &
W=$!; bg_track "$W"
wait_until 5 waiters_are s1 1 || fail "expected a parked waiter, got $(lock_field s1 waiters)"
rss=$(daemon_rss_kb)
if [ -n "$rss" ] && [ "$rss" -gt 0 ]; then ok "daemon RSS ${rss} KiB"; else fail "daemon_rss_kb: got '$rss'"; fi
t0=$(now_ms)
kill -TERM "$CLUCKD_PID"
if wait_until 1 dead "$W"; then
	wait "$W"; rc=$?
	if [ "$rc" != 0 ] && grep -q "No locks available" "$T_DIR/waiter.err"; then
		ok "the parked waiter got ENOLCK at once ($(( $(now_ms) - t0 )) ms)"
	else
		fail "the parked waiter: expected ENOLCK, got exit $rc: $(cat "$T_DIR/waiter.err")"
	fi
else
	fail "the parked waiter still waits 1 s after SIGTERM (expected ENOLCK at once)"
fi
wait_until 1 eval '[ -n "$(status_key stopping)" ]'
expect_match "status shows the stop and the holds left" '^[1-5] s left, holds: 2$' "$(status_key stopping)"
expect_match "status.json shows the stop" '^[1-5] 2$' "$(json_stopping)"
out=$(flock -n "$M/new" true 2>&1); rc=$?
if [ "$rc" != 0 ] && printf '%s' "$out" | grep -q "No locks available"; then ok "a new lock request while stopping: ENOLCK"; else fail "a new lock request while stopping: expected ENOLCK, got exit $rc: $out"; fi
expect_errno "a new O_EXCL lockfile while stopping" ENOLCK excl "$M/lockfile"
if [ -z "$(sig_of S1)" ] && ! term_pending "$S1" && [ -z "$(sig_of S2)" ] && alive "$CLUCKD_PID" && [ "$(lock_field s1 holders)" = 1 ]; then
	ok "the holders keep their locks, unsignalled, during --stop-timeout"
else
	fail "during --stop-timeout: S1 signalled at '$(sig_of S1)', S2 at '$(sig_of S2)', daemon alive: $(alive "$CLUCKD_PID" && echo yes || echo no), s1 holders $(lock_field s1 holders)"
fi
wait_until $((ST + 5)) dead "$CLUCKD_PID"
t_exit=$(now_ms)
# S1's SIGTERM, blocked, is pending from the moment cluckd sent it.
term_pending "$S1" && pending=yes || pending=no
wait_until 5 signalled S1
wait_until 5 signalled S2
s1=$(sig_of S1); s2=$(sig_of S2)
if [ -n "$s1" ] && [ "$s1" -ge $((t0 + ST * 1000 - 100)) ] && [ "$pending" = yes ]; then
	ok "S1 signalled before the daemon let go ($((t_exit - t0)) ms after SIGTERM), not before its --stop-timeout (seen at $((s1 - t0)) ms)"
else
	fail "S1: expected its signal $((ST * 1000 - 100)) ms after SIGTERM at the earliest and before the daemon let go ($((t_exit - t0)) ms), got '${s1:+$((s1 - t0))}', pending at the exit: $pending"
fi
release "$S1"
if [ -n "$s2" ] && [ "$s2" -ge $((t0 + ST * 1000 - 100)) ]; then ok "the child of flock(1) holding S2 signalled too ($((s2 - t0)) ms)"; else fail "the child holding S2 was not signalled (got '$s2')"; fi
if [ $((t_exit - t0)) -le $((ST * 1000 + 1000)) ]; then ok "cluckd exited $((t_exit - t0)) ms after SIGTERM (--stop-timeout $ST)"; else fail "cluckd exited only $((t_exit - t0)) ms after SIGTERM (--stop-timeout $ST)"; fi
stop_cluckd
expect_eq "exit status after SIGTERM with holders and a waiter" 0 "$CLUCKD_RC"
expect_match "the log says the holders were signalled" "stopping: 2 held locks given up.* [3-9] processes signalled" "$(cat "$LOG")"

# --- holders that release in time are not signalled; the stop ends then ----
start_cluckd || finish
flock "$M/r" sh -c "echo \$\$ >> '$T_PIDS'; echo R >> '$ORDER'; sleep 1; echo \$((\$(date +%s%N) / 1000000)) > '$T_DIR/done.R'" &
R=$!; bg_track "$R"
wait_until 5 granted R || fail "R not granted"
t0=$(now_ms)
kill -TERM "$CLUCKD_PID"
wait_until 5 dead "$CLUCKD_PID"
t_exit=$(now_ms)
wait "$R"; rc=$?
d=$(cat "$T_DIR/done.R" 2>/dev/null)
if [ "$rc" = 0 ] && [ -n "$d" ] && [ "$d" -le "$t_exit" ] && [ $((t_exit - t0)) -le 2500 ]; then
	ok "a holder that finishes in time is not signalled; cluckd exits once it released ($((t_exit - t0)) ms)"
else
	fail "a holder finishing in 1 s: exit $rc, done at '${d:+$((d - t0))}' ms, cluckd exited at $((t_exit - t0)) ms"
fi
stop_cluckd
expect_eq "exit status after the holders released" 0 "$CLUCKD_RC"

# --- stop-timeout from the config file; a second SIGTERM cuts the wait short --
printf 'stop-timeout = 30\n' > "$T_DIR/stop.conf"
start_cluckd -c "$T_DIR/stop.conf" || finish
sholder "$M/e1" E1
flock "$M/e2" sh -c "echo \$\$ >> '$T_PIDS'; echo E2 >> '$ORDER'; sleep 0.5" &
bg_track $!
wait_until 5 granted E1 || fail "E1 not granted"
wait_until 5 granted E2 || fail "E2 not granted"
kill -TERM "$CLUCKD_PID"
wait_until 2 eval '[ -n "$(status_key stopping)" ]'
expect_match "config stop-timeout = 30 is honoured" '^(29|30) s left, holds: [12]$' "$(status_key stopping)"
wait_until 3 holders_are e2 0 || fail "E2 did not release"
expect_match "status: the holds left go down as holders release" '^[0-9]+ s left, holds: 1$' "$(status_key stopping)"
t0=$(now_ms)
kill -TERM "$CLUCKD_PID"
if wait_until 1 dead "$CLUCKD_PID"; then ok "a second SIGTERM: cluckd exits at once ($(( $(now_ms) - t0 )) ms)"; else fail "a second SIGTERM: cluckd still running 1 s later"; fi
if wait_until 5 signalled E1; then ok "a second SIGTERM: the holder left was signalled"; else fail "a second SIGTERM: the holder left was not signalled"; fi
stop_cluckd
expect_eq "exit status after a second SIGTERM" 0 "$CLUCKD_RC"

# --- --stop-timeout 0: the holders are signalled at once ------------------------------
start_cluckd --stop-timeout 0 || finish
sholder "$M/z1" Z1
wait_until 5 granted Z1 || fail "Z1 not granted"
t0=$(now_ms)
kill -TERM "$CLUCKD_PID"
if wait_until 1 dead "$CLUCKD_PID" && wait_until 5 signalled Z1; then ok "--stop-timeout 0: the holder signalled and cluckd gone within 1 s ($(( $(now_ms) - t0 )) ms)"; else fail "--stop-timeout 0: cluckd alive: $(alive "$CLUCKD_PID" && echo yes || echo no), holder signalled at '$(sig_of Z1)'"; fi
stop_cluckd
expect_eq "exit status with --stop-timeout 0" 0 "$CLUCKD_RC"

# --- fail closed ----------------------------------------------------------------
expect_match "mount point immutable after stop (lsattr -d)" '^[^ ]*i[^ ]* ' "$(lsattr -d "$M" 2>&1)"
expect_rc "touch in the stopped mount point fails" 1 touch "$M/x"
flock -n "$M/x" true 2>/dev/null
rc=$?
if [ $rc != 0 ]; then ok "flock in the stopped mount point fails (exit $rc)"; else fail "flock in the stopped mount point: expected failure, got exit 0 (fail-open)"; fi
expect_rc "nothing was created underneath" 1 test -e "$M/x"

# --- fusermount3 -u stops the daemon, but not while a file is open ----------------
start_cluckd || finish
exec 7>"$M/busy"
out=$(fusermount3 -u "$M" 2>&1); rc=$?
if [ "$rc" != 0 ] && printf '%s' "$out" | grep -q "busy" && alive "$CLUCKD_PID" && [ -r "$M/status" ]; then
	ok "fusermount3 -u while a file is open fails (EBUSY) and cluckd serves on"
else
	fail "fusermount3 -u while a file is open: exit $rc: $out"
fi
exec 7>&-
fusermount3 -u "$M"
if wait_until 5 dead "$CLUCKD_PID"; then ok "fusermount3 -u stops cluckd"; else fail "cluckd still running 5 s after fusermount3 -u"; fi
stop_cluckd
expect_eq "exit status after fusermount3 -u" 0 "$CLUCKD_RC"

# --- umount -f with a lock held: the holder is signalled before the lock goes ------
# MNT_FORCE aborts the FUSE connection even when the unmount itself then
# fails with EBUSY: cluckd sees the channel gone while a hold is left (it
# used to free the lock without a word to its holder).
start_cluckd || finish
sholder "$M/f1" F1
wait_until 5 granted F1 || fail "F1 not granted"
umount -f "$M" 2>/dev/null
if wait_until 5 dead "$CLUCKD_PID"; then
	if wait_until 5 signalled F1; then ok "umount -f: the holder was signalled"; else fail "umount -f: cluckd let go of the lock without signalling its holder"; fi
	expect_match "the log says so" "held locks given up.* [1-9] processes signalled" "$(tail -n 5 "$LOG")"
else
	fail "cluckd still runs 5 s after umount -f aborted its connection"
fi
wait "$CLUCKD_PID" 2>/dev/null
CLUCKD_PID=
fusermount3 -uz "$M" 2>/dev/null

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

# --- SIGTERM with 1000 parked waiters: all answered ENOLCK within a second, while
# their holder still has its --stop-timeout -----------------------------------------
# The waiters must be answered long before the holder's --stop-timeout
# runs out (4 s of 8: room for a loaded, sanitized run).
start_cluckd --stop-timeout 8 || finish
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
        res.append(os.strerror(e.errno))
ts = [threading.Thread(target=w) for _ in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print("answered %d granted %d enolck %d" % (len(res), res.count("granted"),
      res.count(os.strerror(37))))
EOF2
PY=$!; bg_track "$PY"
wait_until 20 waiters_are many 1000 || fail "many: expected 1000 parked waiters, got $(lock_field many waiters)"
t0=$(now_ms)
kill -TERM "$CLUCKD_PID"
if wait_until 4 dead "$PY"; then ok "1000 parked waiters answered within 4 s of SIGTERM ($(( $(now_ms) - t0 )) ms)"; else fail "many: some waiters still wait 4 s after SIGTERM"; fi
wait "$PY" 2>/dev/null
expect_eq "every parked waiter answered ENOLCK, none granted" "answered 1000 granted 0 enolck 1000" "$(cat "$T_DIR/many.out")"
if wait_until 12 dead "$CLUCKD_PID"; then ok "cluckd exited $(( $(now_ms) - t0 )) ms after SIGTERM (--stop-timeout 8)"; else fail "cluckd still running 12 s after SIGTERM (--stop-timeout 8)"; fi
stop_cluckd
expect_eq "exit status after SIGTERM with 1000 waiters" 0 "$CLUCKD_RC"
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
