#!/bin/sh
# t/dev-stop.sh - utils/dev.sh start and stop on a scratch mount point
# (never /cluck, no build, no packages: DEV_NO_BUILD, DEV_RUN_DIR): stop
# stops only the cluckd that start left there, its holders get their time;
# another cluckd (on another mount point, or named by a pid file it does
# not match) and a process that reused a recorded pid are never signalled;
# start over a running instance stops it the same careful way; the banner
# no longer advises signalling every cluckd of the host.
#
# It must never: touch /cluck, the checkout or /var/lib/cluck, or leave a
# daemon, a mount or an immutable directory behind (traps).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"
require_cmd setsid

DEV=$top_srcdir/utils/dev.sh
M=$MNT
M2=$T_DIR/m2
mkdir -p "$T_DIR/run" "$M2"
export DEV_NO_BUILD=1 DEV_RUN_DIR="$T_DIR/run"
DEV_CLUCKD=$(cd "$(dirname "$CLUCKD")" && pwd)/$(basename "$CLUCKD")
export DEV_CLUCKD DEV_CLUCKD_OPTS="-n devtest -D $T_DIR/data"
OP=
dev_cleanup() {
	local rc=$?
	if [ -n "$OP" ]; then
		kill -TERM "$OP" 2>/dev/null
		wait_until 5 dead "$OP" || kill -KILL "$OP" 2>/dev/null
		wait "$OP" 2>/dev/null
	fi
	awk -v d="$M2" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo && fusermount3 -uz "$M2"
	chattr -i "$M2" 2>/dev/null
	(exit "$rc")
	t_cleanup
}
trap dev_cleanup EXIT

pidfile() { ls "$T_DIR/run"/.dev-cluckd-*.pid 2>/dev/null | head -n1; }
dev_pid() { local f; f=$(pidfile); [ -n "$f" ] && cut -d' ' -f1 "$f"; }

# --- start: recorded, and the banner names the careful stop ----------------------
out=$("$DEV" start "$M" 2>&1); rc=$?
expect_eq "dev.sh start on a scratch mount point: exit" 0 "$rc"
CLUCKD_PID=$(dev_pid)
if [ -n "$CLUCKD_PID" ] && alive "$CLUCKD_PID" && mounted; then ok "start recorded the pid of the cluckd it started ($CLUCKD_PID)"; else fail "start: pid file '$(pidfile)', pid '$CLUCKD_PID', mounted: $(mounted && echo yes || echo no): $out"; fi
expect_match "the banner says how to stop it" "Stop it: +utils/dev.sh stop $M " "$out"
if printf '%s' "$out" | grep -q pgrep; then fail "the banner still advises pgrep (every cluckd of the host)"; else ok "the banner does not advise signalling every cluckd"; fi

# --- another cluckd, on another mount point, is never stopped -----------------------
"$CLUCKD" -f -n other -D "$T_DIR/data2" "$M2" 2>>"$LOG" &
OP=$!
wait_until 10 eval 'head -c1 "$M2/status" >/dev/null 2>&1' || fail "the other cluckd did not mount"
out=$("$DEV" stop "$M2" 2>&1); rc=$?
if [ "$rc" = 1 ] && alive "$OP" && printf '%s' "$out" | grep -q "not started by utils/dev.sh"; then ok "stop on another cluckd's mount point refuses: $out"; else fail "stop on another cluckd's mount point: exit $rc, alive: $(alive "$OP" && echo yes || echo no): $out"; fi

# A pid file that names something else: a reused pid, or the other cluckd.
f=$(pidfile)
cp "$f" "$T_DIR/saved.pid"
sleep 60 &
SP=$!; bg_track "$SP"
printf '%s %s %s\n' "$SP" "$(sed 's/.*) //' "/proc/$SP/stat" | cut -d' ' -f20)" "$M" > "$f"
out=$("$DEV" stop "$M" 2>&1); rc=$?
if [ "$rc" = 1 ] && alive "$SP" && alive "$CLUCKD_PID"; then ok "a pid file naming another process: nothing signalled, refused"; else fail "a pid file naming another process: exit $rc, that process alive: $(alive "$SP" && echo yes || echo no): $out"; fi
printf '%s %s %s\n' "$OP" "$(sed 's/.*) //' "/proc/$OP/stat" | cut -d' ' -f20)" "$M" > "$f"
out=$("$DEV" stop "$M" 2>&1); rc=$?
if [ "$rc" = 1 ] && alive "$OP" && alive "$CLUCKD_PID"; then ok "a pid file naming a cluckd on another mount point: nothing signalled"; else fail "a pid file naming the other cluckd: exit $rc, it is alive: $(alive "$OP" && echo yes || echo no): $out"; fi
cp "$T_DIR/saved.pid" "$f"

# --- start over a running instance: the careful stop, holders finish first ---------
flock "$M/x" sh -c "echo \$\$ >> '$T_PIDS'; echo X >> '$ORDER'; sleep 1; echo done > '$T_DIR/x.done'" &
XP=$!; bg_track "$XP"
wait_until 5 granted X || fail "the holder was not granted"
old=$CLUCKD_PID
out=$("$DEV" start "$M" 2>&1); rc=$?
# The holder's work must be done by the time the old instance is gone.
xdone=$(cat "$T_DIR/x.done" 2>/dev/null)
CLUCKD_PID=$(dev_pid)
expect_eq "start over a running instance: exit" 0 "$rc"
wait "$XP"; xrc=$?
if [ "$xrc" = 0 ] && [ "$xdone" = done ] && dead "$old"; then ok "the old instance let its holder finish (exit 0) before it stopped"; else fail "start over a running instance: holder exit $xrc, done before the old instance stopped: '$xdone', old alive: $(alive "$old" && echo yes || echo no): $out"; fi
if [ -n "$CLUCKD_PID" ] && [ "$CLUCKD_PID" != "$old" ] && alive "$CLUCKD_PID" && head -c1 "$M/status" >/dev/null 2>&1; then ok "a new instance serves $M"; else fail "no new instance after start over a running one: $out"; fi
if alive "$OP"; then ok "the other cluckd still runs"; else fail "the other cluckd was stopped by start"; fi

# --- stop: ours only, then nothing to stop ----------------------------------------------
out=$("$DEV" stop "$M" 2>&1); rc=$?
if [ "$rc" = 0 ] && dead "$CLUCKD_PID" && ! mounted && [ -z "$(pidfile)" ]; then ok "stop stops the instance start left: $(printf '%s' "$out" | tr '\n' ' ')"; else fail "stop: exit $rc, alive: $(alive "$CLUCKD_PID" && echo yes || echo no), mounted: $(mounted && echo yes || echo no): $out"; fi
CLUCKD_PID=
if alive "$OP"; then ok "the other cluckd still runs after stop"; else fail "stop stopped the other cluckd"; fi
out=$("$DEV" stop "$M" 2>&1); rc=$?
expect_eq "stop with nothing started: exit" 0 "$rc"
check_sanitizer
# The instances dev.sh started log to its run directory.
if grep -q "Sanitizer" "$T_DIR/run"/.dev-cluckd-*.log 2>/dev/null; then
	fail "sanitizer report in a log of a cluckd dev.sh started:"
	grep -h -A20 "Sanitizer" "$T_DIR/run"/.dev-cluckd-*.log | head -n 40
fi
finish
