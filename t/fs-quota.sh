#!/bin/sh
# t/fs-quota.sh - limits (cluckd(8) "Limits"): an unprivileged user who
# creates files or writes content until a per-user limit gets EDQUOT, a
# total limit gives ENOSPC short of root's reserve, root still creates and
# cleans up, and lock requests and releases go on at every limit; df shows
# the limits.  A full data directory (a small tmpfs filled up) does not
# stop the daemon: holders keep their locks, lock and unlock go on,
# writers get ENOSPC, and once space is freed the node serves writes again.
#
# It must never: leave a daemon, a holder, a mount or the small tmpfs
# behind (traps), or run anything as nobody outside the test mount.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"
require_cmd setpriv df setfattr

M=$MNT
SMALL=$T_DIR/small
# The small disk goes too, whatever happens.
trap 'rc=$?; umount -l "$SMALL" 2>/dev/null; (exit $rc); t_cleanup' EXIT
# The temporary directory is 0700; nobody must be able to reach the mount.
chmod 0755 "$T_DIR"
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# mkfiles AS PREFIX N: creates PREFIX1..PREFIXN as AS (nobody or root) until
# one fails; prints how many were made and the errno of the failure.
mkfiles() {
	local as=$1 p=$2 n=$3 i e
	for i in $(seq 1 "$n"); do
		if [ "$as" = nobody ]; then
			e=$(nobody "$FSPROBE" errno creat "$p$i")
		else
			e=$("$FSPROBE" errno creat "$p$i")
		fi
		[ "$e" = OK ] || { echo "$((i - 1)) $e"; return; }
	done
	echo "$n OK"
}

# --- per-user file limit ---------------------------------------------------------
start_cluckd --max-files-per-user 20 --max-bytes-per-user 100K || finish
expect_eq "nobody creates 20 files, then EDQUOT" "20 EDQUOT" "$(mkfiles nobody "$M/n" 30)"
e=$(nobody "$FSPROBE" errno mkdir "$M/ndir")
expect_eq "nobody mkdir at the limit" EDQUOT "$e"
e=$(nobody "$FSPROBE" errno symlink target "$M/nlink")
expect_eq "nobody symlink at the limit" EDQUOT "$e"
e=$(nobody "$FSPROBE" errno excl "$M/n.lock")
expect_eq "nobody O_EXCL lockfile at the limit" EDQUOT "$e"
expect_eq "root still creates" "5 OK" "$(mkfiles root "$M/r" 5)"
# Locks never need room: lock, unlock, relock at the limit.
expect_rc "nobody locks its file at the limit" 0 nobody flock -n "$M/n1" true
expect_rc "nobody opens an existing name with O_CREAT at the limit" 0 nobody flock -n -s "$M/n2" true
holder "" "$M/n3" H1
wait_until 5 granted H1 || fail "holder H1 was not granted at the limit"
expect_rc "a second exclusive lock is refused as busy, not for space" 1 nobody flock -n "$M/n3" true
release "$HPID"
wait_until 5 freed n3 || fail "the dead holder's lock was not released in 5 s"
expect_rc "the lock is free again" 0 nobody flock -n "$M/n3" true
# Removing gives room back.
expect_rc "nobody removes one of its files" 0 nobody rm "$M/n20"
e=$(nobody "$FSPROBE" errno creat "$M/again")
expect_eq "nobody creates again after a removal" OK "$e"
e=$(nobody "$FSPROBE" errno creat "$M/again2")
expect_eq "and is at the limit again" EDQUOT "$e"
# A chown by root moves the charge.
chown 0 "$M/n19"
e=$(nobody "$FSPROBE" errno creat "$M/again2")
expect_eq "a file given to root no longer counts for nobody" OK "$e"

# --- per-user byte limit ------------------------------------------------------------
rm -f "$M"/n* "$M"/again*
e=$(nobody "$FSPROBE" errno write "$M/big1" 60000)
expect_eq "nobody writes 60000 bytes" OK "$e"
e=$(nobody "$FSPROBE" errno write "$M/big2" 60000)
expect_eq "nobody's next 60000 bytes pass 100K" EDQUOT "$e"
e=$(nobody "$FSPROBE" errno truncate "$M/big2" 50000)
expect_eq "a truncate that grows past the limit" EDQUOT "$e"
e=$(nobody "$FSPROBE" errno truncate "$M/big1" 10)
expect_eq "a truncate that shrinks is always allowed" OK "$e"
e=$(nobody "$FSPROBE" errno write "$M/big2" 60000)
expect_eq "after shrinking, nobody writes again" OK "$e"
# User xattrs count as bytes too: 60010 bytes so far, 4007 per xattr.
v=$(head -c 4000 /dev/zero | tr '\0' x)
i=0 e=OK
while [ $i -lt 20 ] && [ "$e" = OK ]; do
	i=$((i + 1))
	e=$(nobody "$FSPROBE" errno setxattr "$M/big2" "user.n$i" "$v")
done
expect_eq "user xattrs until the byte limit" "11 EDQUOT" "$i $e"
expect_rc "removing an xattr gives room back" 0 nobody setfattr -x user.n1 "$M/big2"
e=$(nobody "$FSPROBE" errno setxattr "$M/big2" user.again "$v")
expect_eq "then one more fits" OK "$e"
e=$("$FSPROBE" errno write "$M/rootbig" 60000)
expect_eq "root writes past any per-user limit" OK "$e"
stop_cluckd

# --- totals and root's reserve -------------------------------------------------------
rm -rf "$T_DIR/data"; mkdir "$T_DIR/data"
# 40 files in all (the root directory is one); others stop at 90% = 36.
start_cluckd --max-files 40 --root-reserve 10 --max-bytes 200K || finish
expect_eq "nobody stops short of root's reserve with ENOSPC" "35 ENOSPC" "$(mkfiles nobody "$M/t" 50)"
expect_eq "root uses its reserve up to the total" "4 ENOSPC" "$(mkfiles root "$M/rt" 10)"
expect_rc "locks still work at the total limit" 0 nobody flock -n "$M/t1" true
expect_rc "root cleans up" 0 rm -f "$M"/t1 "$M"/t2 "$M"/rt1
e=$(nobody "$FSPROBE" errno creat "$M/t1")
expect_eq "after the clean-up, a new file as root's reserve allows" ENOSPC "$e"
rm -f "$M"/t3 "$M"/t4 "$M"/rt2 "$M"/rt3 "$M"/rt4
e=$(nobody "$FSPROBE" errno creat "$M/t1")
expect_eq "below the reserve again, nobody creates" OK "$e"
out=$(df -i "$M" | tail -n1)
expect_match "df -i shows the file limit" "^[^ ]+ +40 " "$out"
out=$(df -B1 "$M" | tail -n1)
expect_match "df shows the byte limit" "^[^ ]+ +204800 " "$out"
rm -f "$M"/t*
e=$(nobody "$FSPROBE" errno write "$M/w1" 65536)
expect_eq "nobody writes 64 KiB" OK "$e"
e=$(nobody "$FSPROBE" errno write "$M/w2" 65536)
expect_eq "and another 64 KiB" OK "$e"
e=$(nobody "$FSPROBE" errno write "$M/w3" 65536)
expect_eq "the third passes 90% of 200K: ENOSPC" ENOSPC "$e"
stop_cluckd

# --- bad limits are one-line errors --------------------------------------------------
for bad in "--max-files x" "--max-bytes 5T" "--max-bytes-per-user -1" "--root-reserve 80"; do
	# shellcheck disable=SC2086
	timeout 10 "$CLUCKD" -f -n testnode -D "$T_DIR/data" $bad "$M" > /dev/null 2> "$T_DIR/err"
	rc=$?
	mounted && { fusermount3 -uz "$M"; fail "cluckd $bad mounted"; }
	if [ "$rc" = 2 ] && [ "$(wc -l < "$T_DIR/err")" = 1 ]; then
		ok "cluckd $bad: $(cat "$T_DIR/err")"
	else
		fail "cluckd $bad: exit $rc, $(head -n2 "$T_DIR/err" | tr '\n' '|')"
	fi
done
printf 'max-files-per-user = 3\nmax-bytes = 1M\n' > "$T_DIR/conf"
rm -rf "$T_DIR/data"; mkdir "$T_DIR/data"
start_cluckd -c "$T_DIR/conf" || finish
expect_eq "max-files-per-user from cluckd.conf" "3 EDQUOT" "$(mkfiles nobody "$M/c" 5)"
stop_cluckd

# --- a full data directory: the daemon stays, writers get ENOSPC -------------------
mkdir -p "$SMALL"
if mount -t tmpfs -o size=8m tmpfs "$SMALL" 2>/dev/null; then
	start_cluckd -D "$SMALL/data" || finish
	: > "$M/other"
	holder "" "$M/held" HF
	wait_until 5 granted HF || fail "holder HF was not granted"
	head -c 64M /dev/zero > "$SMALL/filler" 2>/dev/null
	head -c 30000 /dev/zero > "$T_DIR/blob"
	n=0 e=OK
	while [ $n -lt 50 ] && [ "$e" = OK ]; do
		e=$("$FSPROBE" errno write "$M/b$n" 30000)
		n=$((n + 1))
	done
	expect_eq "a writer on a full disk gets" ENOSPC "$e"
	if alive "$CLUCKD_PID"; then ok "cluckd still runs with its disk full"; else fail "cluckd stopped when its disk filled"; fi
	expect_rc "a new file on a full disk" 1 touch "$M/newfile"
	expect_eq "the holder still holds" 1 "$(lock_field held holders)"
	expect_rc "its lock is still exclusive" 1 flock -n "$M/held" true
	expect_rc "lock and unlock go on with the disk full" 0 flock -n "$M/other" true
	expect_rc "a shared lock too" 0 flock -s -n "$M/other" true
	expect_rc "removing a file goes on" 0 rm -f "$M/b0"
	grep -q "is full" "$LOG" && ok "the log says the disk is full" || fail "no message about the full disk"
	expect_eq "status says the disk is full" full "$(status_key disk)"
	expect_match "status.json says so too" '"disk":"full"' "$(cat "$M/status.json")"
	rm -f "$SMALL/filler"
	if wait_until 10 eval '[ "$("$FSPROBE" errno write "$M/after" 30000)" = OK ]'; then
		ok "writes work again once space is freed"
	else
		fail "writes still refused after space was freed"
	fi
	grep -q "room again" "$LOG" && ok "the log says there is room again" || fail "no message about room again"
	expect_eq "status says the disk is ok again" ok "$(status_key disk)"
	expect_eq "the holder held throughout" 1 "$(lock_field held holders)"
	release "$HPID"
	wait_until 5 freed held || fail "the dead holder's lock was not released in 5 s"
	expect_rc "the lock is free after its holder ends" 0 flock -n "$M/held" true
	stop_cluckd
	expect_eq "clean stop after a full disk" 0 "$CLUCKD_RC"
	umount "$SMALL"
else
	fail "cannot mount a small tmpfs for the full-disk check"
fi

finish
