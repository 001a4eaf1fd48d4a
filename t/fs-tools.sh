#!/bin/sh
# t/fs-tools.sh - the lock tools and languages users bring to a cluckd mount
# (SPEC 2.1, 2.3, 2.4): liblockfile's dotlockfile and lockfile-progs (the
# NFS-safe link()+st_nlink method), Perl flock and fcntl F_SETLK, Python
# fcntl.flock / lockf / fcntl with struct flock, Java FileChannel locks (only
# when javac is installed), flock(1)'s -o, -c, -E and -u, and the shell
# idioms mkdir, ln -s and shlock-style ln + stat -c %h.
#
# It must never: sleep to make things happen (it waits on conditions with a
# deadline), make the whole test skip because an optional language is
# missing, or leave a holder process behind (each is tracked for the trap).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"
require_cmd dotlockfile lockfile-create lockfile-remove lockfile-check perl stat

start_cluckd || finish
M=$MNT

has() { grep -qx "$2" "$1"; }
stop() { kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

# hold_flock FILE OUT: a flock(1) holder in the background; waits for it.
hold_flock() {
	flock -o "$1" sh -c "echo \$\$ >> '$T_PIDS'; echo locked > '$2'; exec sleep 60" &
	HOLDER=$!
	bg_track "$HOLDER"
	wait_until 5 has "$2" locked || fail "flock holder of $1 not locked in 5 s"
}

# ==== liblockfile: dotlockfile ============================================
# liblockfile documents its exit codes as lockfile_create(3)'s: 0 success,
# 4 (L_MAXTRYS) when the lock is taken and the retries are used up.
race 10 "$T_DIR/dl" dotlockfile -r 0 "$M/dl.lock"
expect_eq "dotlockfile race: exactly one of 10 wins" 1 "$(count_rc "$T_DIR/dl" 0)"
expect_eq "dotlockfile race: 9 give up with L_MAXTRYS (4)" 9 "$(count_rc "$T_DIR/dl" 4)"
expect_eq "dotlockfile leaves no temporary files" "dl.lock" "$(ls -A "$M" | grep -E '^(dl|\.lk)' | tr '\n' ' ' | sed 's/ $//')"
expect_eq "the dotlock has one link once the temporary name is gone" 1 "$(stat -c %h "$M/dl.lock")"
expect_rc "dotlockfile -r 0 on the held lock" 4 dotlockfile -r 0 "$M/dl.lock"

# A waiter retries every second and gets in once the holder unlocks.
dotlockfile -r -1 -i 1 "$M/dl.lock" > /dev/null 2>&1 &
DW=$!; bg_track "$DW"
if wait_until 1.5 dead "$DW"; then fail "dotlockfile waiter returned while the lock was held"; else ok "dotlockfile waiter waits while the lock is held"; fi
expect_rc "dotlockfile -u releases" 0 dotlockfile -u "$M/dl.lock"
if wait_until 5 dead "$DW"; then
	wait "$DW"; rc=$?
	expect_eq "dotlockfile waiter takes the lock after release" 0 "$rc"
	expect_rc "the waiter's dotlock exists" 0 test -f "$M/dl.lock"
else
	fail "dotlockfile waiter did not get the lock within 5 s of the release"
fi
dotlockfile -u "$M/dl.lock"

# Lock, run a command, unlock: ten increments of a counter under the lock.
echo 0 > "$M/dl.count"
race 10 "$T_DIR/dlc" dotlockfile -r -1 -i 1 -P "$M/dlc.lock" \
	sh -c 'n=$(cat "$1"); echo $((n + 1)) > "$1"' _ "$M/dl.count"
expect_eq "dotlockfile CMD: 10 commands ran" 10 "$(count_rc "$T_DIR/dlc" 0)"
expect_eq "dotlockfile CMD: no lost update" 10 "$(cat "$M/dl.count")"
expect_rc "dotlockfile CMD removes its lock" 1 test -e "$M/dlc.lock"

# ==== lockfile-progs ============================================================
race 10 "$T_DIR/lf" lockfile-create --retry 0 "$M/mbox"
expect_eq "lockfile-create race: exactly one of 10 wins" 1 "$(count_rc "$T_DIR/lf" 0)"
expect_eq "lockfile-create race: 9 fail" 9 "$(grep -cvx 0 "$T_DIR/lf")"
expect_rc "lockfile-create made mbox.lock" 0 test -f "$M/mbox.lock"
expect_rc "lockfile-check sees the lock" 0 lockfile-check "$M/mbox"
expect_rc "lockfile-create --retry 0 on the held lock fails" 4 lockfile-create --retry 0 "$M/mbox"
expect_rc "lockfile-remove" 0 lockfile-remove "$M/mbox"
expect_rc "lockfile-check after remove (as on a local disk)" 255 lockfile-check "$M/mbox"
expect_rc "lockfile-create after remove" 0 lockfile-create --retry 0 --lock-name "$M/mbox.lock"
expect_rc "lockfile-check --lock-name" 0 lockfile-check --lock-name "$M/mbox.lock"
expect_rc "lockfile-remove --lock-name" 0 lockfile-remove --lock-name "$M/mbox.lock"
expect_rc "lock gone" 1 test -e "$M/mbox.lock"

# ==== Perl flock =================================================================
PERL_FLOCK='use Fcntl qw(:flock);
open(my $f, ">>", $ARGV[0]) or do { print "open: $!\n"; exit 2 };
$| = 1;
if ($ARGV[1] eq "nb") {
	if (flock($f, LOCK_EX | LOCK_NB)) { print "locked\n"; exit 0 }
	print $!{EWOULDBLOCK} ? "EWOULDBLOCK\n" : "error: $!\n"; exit 1;
}
$SIG{USR1} = sub { flock($f, LOCK_UN) or print "unlock: $!\n"; print "unlocked\n" };
print "waiting\n";
flock($f, ($ARGV[1] eq "sh" ? LOCK_SH : LOCK_EX)) or do { print "flock: $!\n"; exit 2 };
print "locked\n";
sleep 1 while 1;'

hold_flock "$M/pf" "$T_DIR/pf.h"
expect_eq "perl flock LOCK_NB on a held file" EWOULDBLOCK "$(perl -e "$PERL_FLOCK" "$M/pf" nb 2>&1)"
perl -e "$PERL_FLOCK" "$M/pf" ex > "$T_DIR/pf.out" 2>&1 &
PF=$!; bg_track "$PF"
if wait_until 5 waiters_are pf 1; then ok "perl flock LOCK_EX waits in the queue"; else fail "perl flock: no waiter on /pf: $(lock_line pf)"; fi
stop "$HOLDER"
if wait_until 5 has "$T_DIR/pf.out" locked; then ok "perl flock granted after the holder died"; else fail "perl flock not granted: $(cat "$T_DIR/pf.out")"; fi
expect_rc "flock -n while perl holds" 1 flock -n "$M/pf" true
kill -USR1 "$PF"
wait_until 5 has "$T_DIR/pf.out" unlocked || fail "perl LOCK_UN: $(cat "$T_DIR/pf.out")"
expect_rc "flock -n after perl's LOCK_UN (file still open)" 0 flock -n "$M/pf" true
stop "$PF"

perl -e "$PERL_FLOCK" "$M/ps" sh > "$T_DIR/ps1.out" 2>&1 &
PS1=$!; bg_track "$PS1"
perl -e "$PERL_FLOCK" "$M/ps" sh > "$T_DIR/ps2.out" 2>&1 &
PS2=$!; bg_track "$PS2"
if wait_until 5 eval 'has "$T_DIR/ps1.out" locked && has "$T_DIR/ps2.out" locked'; then ok "two perl LOCK_SH holders at once"; else fail "perl LOCK_SH: $(cat "$T_DIR/ps1.out" "$T_DIR/ps2.out")"; fi
expect_rc "flock -n -x against perl shared holders" 1 flock -n -x "$M/ps" true
expect_rc "flock -n -s joins perl shared holders" 0 flock -n -s "$M/ps" true
stop "$PS1"; stop "$PS2"

# ==== Perl fcntl F_SETLK / F_GETLK ==============================================
# struct flock on x86_64 and the other LP64 Linux ABIs: short type, short
# whence, (pad), off_t start, off_t len, pid_t pid, (pad) = 32 bytes.
PERL_FCNTL='use Fcntl qw(F_SETLK F_GETLK F_RDLCK F_WRLCK F_UNLCK SEEK_SET);
use Errno;
my ($path, $op, $type, $start, $len) = @ARGV;
my $T = { rd => F_RDLCK, wr => F_WRLCK }->{$type};
open(my $f, "+>>", $path) or do { print "open: $!\n"; exit 2 };
$| = 1;
my $fl = pack("s s x4 q q i x4", $T, SEEK_SET, $start, $len, 0);
if ($op eq "getlk") {
	fcntl($f, F_GETLK, $fl) or do { print "getlk: $!\n"; exit 2 };
	my ($t, $w, $s, $l, $p) = unpack("s s x4 q q i x4", $fl);
	if ($t == F_UNLCK) { print "unlocked\n" } else {
		printf "type=%s start=%d len=%d pid=%d\n", ($t == F_WRLCK ? "wr" : "rd"), $s, $l, $p }
	exit 0;
}
if (!fcntl($f, F_SETLK, $fl)) {
	print(($!{EAGAIN} || $!{EACCES}) ? "busy\n" : "setlk: $!\n"); exit 1;
}
print "locked\n";
exit 0 if $op eq "try";
sleep 1 while 1;'

perl -e "$PERL_FCNTL" "$M/pl" hold wr 0 10 > "$T_DIR/pl.out" 2>&1 &
PL=$!; bg_track "$PL"
wait_until 5 has "$T_DIR/pl.out" locked || fail "perl F_SETLK wr 0+10: $(cat "$T_DIR/pl.out")"
expect_rc "fsprobe wr 5+10 against perl's 0+10" 1 "$FSPROBE" lock "$M/pl" wr 5 10 --nb --hold 0
expect_rc "fsprobe wr 10+10 next to perl's 0+10" 0 "$FSPROBE" lock "$M/pl" wr 10 10 --nb --hold 0
expect_eq "F_GETLK sees perl's lock and pid" "type=wr start=0 len=10 pid=$PL" "$("$FSPROBE" getlk "$M/pl" rd 3 1)"
expect_eq "perl F_SETLK on perl-held range from another process" busy "$(perl -e "$PERL_FCNTL" "$M/pl" try rd 9 5 2>&1)"
expect_eq "perl F_SETLK on a free range" locked "$(perl -e "$PERL_FCNTL" "$M/pl" try wr 10 5 2>&1)"
stop "$PL"
expect_eq "perl's record lock went with the process" unlocked "$("$FSPROBE" getlk "$M/pl" wr 0 0)"

"$FSPROBE" lock "$M/pl2" rd 100 50 > "$T_DIR/pl2.out" 2>&1 &
FP=$!; bg_track "$FP"
wait_until 5 has "$T_DIR/pl2.out" locked || fail "fsprobe rd 100+50: $(cat "$T_DIR/pl2.out")"
expect_eq "perl F_GETLK reports fsprobe's read lock" "type=rd start=100 len=50 pid=$FP" "$(perl -e "$PERL_FCNTL" "$M/pl2" getlk wr 0 0 2>&1)"
expect_eq "perl F_SETLK rd shares a read-locked range" locked "$(perl -e "$PERL_FCNTL" "$M/pl2" try rd 120 10 2>&1)"
expect_eq "perl F_SETLK wr on a read-locked range" busy "$(perl -e "$PERL_FCNTL" "$M/pl2" try wr 149 1 2>&1)"
stop "$FP"

# ==== Python fcntl =================================================================
hold_flock "$M/pyf" "$T_DIR/pyf.h"
got=$(python3 - "$M/pyf" <<'EOF' 2>&1
import fcntl, sys
f = open(sys.argv[1], "a")
try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("locked")
except BlockingIOError:
    print("BlockingIOError")
EOF
)
expect_eq "python fcntl.flock LOCK_NB on a held file" BlockingIOError "$got"
stop "$HOLDER"
got=$(python3 - "$M/pyf" <<'EOF' 2>&1
import fcntl, sys
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
g = open(sys.argv[1], "a")
fcntl.flock(g, fcntl.LOCK_SH | fcntl.LOCK_NB)
try:
    h = open(sys.argv[1], "a")
    fcntl.flock(h, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("exclusive granted over shared")
except BlockingIOError:
    pass
fcntl.flock(f, fcntl.LOCK_UN)
fcntl.flock(g, fcntl.LOCK_UN)
fcntl.flock(h, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("ok")
EOF
)
expect_eq "python fcntl.flock: two shared, exclusive after both LOCK_UN" ok "$got"

# lockf with ranges and fcntl.fcntl with a packed struct flock, one holder
# process and one probing process.
python3 - "$M/pyr" > "$T_DIR/pyr.out" 2>&1 <<'EOF' &
import fcntl, os, struct, sys, time
f = open(sys.argv[1], "a+")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)      # bytes 0..9
fl = struct.pack("hhqqi4x", fcntl.F_RDLCK, os.SEEK_SET, 100, 20, 0)
fcntl.fcntl(f, fcntl.F_SETLK, fl)                          # bytes 100..119
print("locked", flush=True)
time.sleep(60)
EOF
PYR=$!; bg_track "$PYR"
wait_until 5 has "$T_DIR/pyr.out" locked || fail "python holder: $(cat "$T_DIR/pyr.out")"
got=$(python3 - "$M/pyr" <<'EOF' 2>&1
import fcntl, sys
f = open(sys.argv[1], "r+")
out = []
def lockf(cmd, ln, start):
    try:
        fcntl.lockf(f, cmd | fcntl.LOCK_NB, ln, start)
        return "locked"
    except OSError as e:
        return "busy" if e.errno in (11, 13) else "err%d" % e.errno
out.append(lockf(fcntl.LOCK_EX, 5, 5))      # 5..9 overlaps 0..9
out.append(lockf(fcntl.LOCK_EX, 10, 10))    # 10..19 free
out.append(lockf(fcntl.LOCK_SH, 5, 110))    # 110..114 shares the read lock
out.append(lockf(fcntl.LOCK_EX, 1, 119))    # 119 is read-locked
print(" ".join(out))
EOF
)
expect_eq "python lockf ranges (overlap, free, shared, read-locked)" "busy locked locked busy" "$got"
got=$(python3 - "$M/pyr" "$PYR" <<'EOF' 2>&1
import fcntl, os, struct, sys
FMT = "hhqqi4x"
f = open(sys.argv[1], "r+")
def getlk(t, start, ln):
    r = fcntl.fcntl(f, fcntl.F_GETLK, struct.pack(FMT, t, os.SEEK_SET, start, ln, 0))
    t, w, s, l, p = struct.unpack(FMT, r)
    return "unlocked" if t == fcntl.F_UNLCK else "%s:%d+%d:%s" % (
        "wr" if t == fcntl.F_WRLCK else "rd", s, l, "holder" if p == int(sys.argv[2]) else p)
print(getlk(fcntl.F_RDLCK, 0, 1), getlk(fcntl.F_WRLCK, 105, 1),
      getlk(fcntl.F_RDLCK, 105, 1), getlk(fcntl.F_WRLCK, 20, 80))
EOF
)
expect_eq "python F_GETLK with struct flock" "wr:0+10:holder rd:100+20:holder unlocked unlocked" "$got"
stop "$PYR"

# ==== Java FileChannel (only with a JDK) ============================================
if command -v javac >/dev/null 2>&1 && command -v java >/dev/null 2>&1; then
	mkdir -p "$T_DIR/java"
	cat > "$T_DIR/java/JLock.java" <<'EOF'
// JLock MODE PATH [START LEN]: try | hold | range, see t/fs-tools.sh.
import java.nio.channels.*;
import java.nio.file.*;
public class JLock {
	public static void main(String[] a) throws Exception {
		FileChannel ch = FileChannel.open(Paths.get(a[1]), StandardOpenOption.CREATE,
			StandardOpenOption.READ, StandardOpenOption.WRITE);
		FileLock l;
		if (a[0].equals("hold")) {
			System.out.println("waiting");
			System.out.flush();
			l = ch.lock();
		} else if (a[0].equals("range")) {
			l = ch.tryLock(Long.parseLong(a[2]), Long.parseLong(a[3]), false);
		} else {
			l = ch.tryLock();
		}
		System.out.println(l == null ? "busy" : "locked");
		System.out.flush();
		if (l == null)
			System.exit(1);
		if (a[0].equals("hold"))
			Thread.sleep(60000);
		System.exit(0);
	}
}
EOF
	if javac -d "$T_DIR/java" "$T_DIR/java/JLock.java" > "$T_DIR/javac.out" 2>&1; then
		J="java -Xshare:auto -cp $T_DIR/java JLock"
		"$FSPROBE" lock "$M/jl" wr 0 0 > "$T_DIR/jf.out" 2>&1 &
		FP=$!; bg_track "$FP"
		wait_until 5 has "$T_DIR/jf.out" locked || fail "fsprobe whole-file lock: $(cat "$T_DIR/jf.out")"
		expect_eq "java tryLock() on a held file" busy "$($J try "$M/jl" 2>&1)"
		$J hold "$M/jl" > "$T_DIR/jh.out" 2>&1 &
		JH=$!; bg_track "$JH"
		if wait_until 15 waiters_are jl 1; then ok "java lock() waits for the holder"; else fail "java lock(): no waiter: $(cat "$T_DIR/jh.out")"; fi
		stop "$FP"
		if wait_until 5 has "$T_DIR/jh.out" locked; then ok "java lock() granted after the holder died"; else fail "java lock() not granted: $(cat "$T_DIR/jh.out")"; fi
		expect_rc "fsprobe --nb while java holds" 1 "$FSPROBE" lock "$M/jl" rd 50 1 --nb --hold 0
		stop "$JH"
		expect_rc "fsprobe --nb after java exited" 0 "$FSPROBE" lock "$M/jl" wr 0 0 --nb --hold 0
		"$FSPROBE" lock "$M/jr" wr 0 10 > "$T_DIR/jr.out" 2>&1 &
		FP=$!; bg_track "$FP"
		wait_until 5 has "$T_DIR/jr.out" locked || fail "fsprobe 0+10: $(cat "$T_DIR/jr.out")"
		expect_eq "java tryLock(10, 10) next to a 0+10 lock" locked "$($J range "$M/jr" 10 10 2>&1)"
		expect_eq "java tryLock(5, 10) over a 0+10 lock" busy "$($J range "$M/jr" 5 10 2>&1)"
		stop "$FP"
	else
		fail "javac failed: $(head -c 400 "$T_DIR/javac.out")"
	fi
else
	echo "note: javac not found, the Java FileChannel checks are left out"
fi

# ==== flock(1) options =============================================================
# -o: the command does not inherit the lock descriptor, so a daemon it starts
# does not keep the lock once flock(1) exits; without -o it does.
flock -o "$M/fo" sh -c "sleep 60 </dev/null >/dev/null 2>&1 & echo \$! >> '$T_PIDS'; echo \$! > '$T_DIR/fo.pid'"
BG=$(cat "$T_DIR/fo.pid")
expect_rc "flock -o: a child left running does not hold the lock" 0 flock -n "$M/fo" true
kill -KILL "$BG" 2>/dev/null
flock "$M/fo2" sh -c "sleep 60 </dev/null >/dev/null 2>&1 & echo \$! >> '$T_PIDS'; echo \$! > '$T_DIR/fo2.pid'"
BG=$(cat "$T_DIR/fo2.pid")
expect_rc "without -o: the child inherits the lock" 1 flock -n "$M/fo2" true
kill -KILL "$BG" 2>/dev/null
if wait_until 5 flock -n "$M/fo2" true; then ok "the lock goes with the child"; else fail "the lock of $M/fo2 stayed after its child died"; fi

expect_rc "flock -c passes the exit status" 3 flock "$M/fc" -c 'exit 3'
expect_eq "flock -c runs through sh" "a b" "$(flock "$M/fc" -c 'echo a; echo b' | tr '\n' ' ' | sed 's/ $//')"
echo 0 > "$M/fc.count"
race 10 "$T_DIR/fc" flock "$M/fc" -c "n=\$(cat '$M/fc.count'); echo \$((n + 1)) > '$M/fc.count'"
expect_eq "flock -c race: 10 ran" 10 "$(count_rc "$T_DIR/fc" 0)"
expect_eq "flock -c race: no lost update" 10 "$(cat "$M/fc.count")"

hold_flock "$M/fe" "$T_DIR/fe.h"
expect_rc "flock -E 42 -n on a held file" 42 flock -E 42 -n "$M/fe" true
expect_rc "flock -E 42 -w 0.2 on a held file" 42 flock -E 42 -w 0.2 "$M/fe" true
stop "$HOLDER"
expect_rc "flock -E 42 -n on a free file runs the command" 7 flock -E 42 -n "$M/fe" sh -c 'exit 7'

got=$(bash -c '
	exec 9>"$1"
	flock -n 9 || { echo "first lock failed"; exit; }
	flock -n "$1" true && { echo "second opener got a held lock"; exit; }
	flock -u 9
	flock -n "$1" true || { echo "not free after flock -u"; exit; }
	flock -s 9 && flock -n -s "$1" true || { echo "shared relock"; exit; }
	echo ok' _ "$M/fu" 2>&1)
expect_eq "flock -u through a shell descriptor" ok "$got"

# ==== shell idioms =================================================================
race 10 "$T_DIR/mk" mkdir "$M/mk.lock"
expect_eq "mkdir lock race: one of 10 wins" 1 "$(count_rc "$T_DIR/mk" 0)"
rmdir "$M/mk.lock"
echo 0 > "$M/mk.count"
race 10 "$T_DIR/mkl" bash -c '
	until mkdir "$1/mkl" 2>/dev/null; do sleep 0.01; done
	n=$(cat "$1/mk.count"); echo $((n + 1)) > "$1/mk.count"
	rmdir "$1/mkl"' _ "$M"
expect_eq "until mkdir ...: 10 critical sections, no lost update" 10 "$(cat "$M/mk.count")"
expect_rc "the mkdir lock is released" 1 test -e "$M/mkl"

race 10 "$T_DIR/sl" bash -c 'ln -s $$ "$1"' _ "$M/sl.lock"
expect_eq "ln -s \$\$ race: one of 10 wins" 1 "$(count_rc "$T_DIR/sl" 0)"
expect_match "readlink gives the winner's pid" '^[0-9]+$' "$(readlink "$M/sl.lock")"
expect_rc "ln -s on the held lock" 1 ln -s $$ "$M/sl.lock"
rm "$M/sl.lock"
expect_rc "ln -s after rm" 0 ln -s $$ "$M/sl.lock"
expect_eq "readlink of our own lock" "$$" "$(readlink "$M/sl.lock")"
rm "$M/sl.lock"

# shlock(1)-style: write a unique file, link it to the lock name, and trust
# the link count of the unique file rather than link(2)'s return (NFS).
SHLOCK='t="$1/tmp.$$"; echo $$ > "$t"; ln "$t" "$1/sh.lock" 2>/dev/null
n=$(stat -c %h "$t"); rm -f "$t"; [ "$n" = 2 ]'
race 10 "$T_DIR/sh" bash -c "$SHLOCK" _ "$M"
expect_eq "ln tmp lock + stat -c %h: one of 10 sees 2 links" 1 "$(count_rc "$T_DIR/sh" 0)"
expect_eq "the losers saw 1 link" 9 "$(count_rc "$T_DIR/sh" 1)"
expect_match "the lock holds the winner's pid" '^[0-9]+$' "$(cat "$M/sh.lock")"
expect_eq "the lock's link count after the temporary name went" 1 "$(stat -c %h "$M/sh.lock")"
expect_eq "no temporary files left" "" "$(ls -A "$M" | grep '^tmp\.')"
rm "$M/sh.lock"
expect_rc "shlock after release" 0 bash -c "$SHLOCK" _ "$M"
rm -f "$M/sh.lock"

stop_cluckd
expect_eq "cluckd exit status after SIGTERM" 0 "$CLUCKD_RC"
finish
