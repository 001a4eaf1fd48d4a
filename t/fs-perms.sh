#!/bin/sh
# t/fs-perms.sh - permissions (SPEC 2.1) on a real cluckd mount run by root:
# allow_other + default_permissions, so mode bits decide who may open (and
# so lock) a file; the root is 1777 like /tmp; owners are numeric; only
# the owner or root may set a file's ttl or slots, and a held file does
# not expire until released (issue 9).
#
# It must never: run anything as nobody outside the test mount.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"
require_cmd setpriv setfattr getfattr

start_cluckd || finish
M=$MNT
# The temporary directory is 0700; nobody must be able to reach the mount.
chmod 0755 "$T_DIR"
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

expect_eq "mode of the mount root" 1777 "$(stat -c %a "$M")"

: > "$M/secret"
chmod 0600 "$M/secret"
err=$(nobody flock -n "$M/secret" true 2>&1)
rc=$?
if [ $rc != 0 ]; then ok "nobody cannot lock a root 0600 file (exit $rc)"; else fail "nobody flock -n on a root 0600 file: expected failure, got exit 0"; fi
expect_match "the refusal says Permission denied" "Permission denied" "$err"
expect_rc "nobody cannot read a 0600 file" 1 nobody cat "$M/secret"

: > "$M/open"
chmod 0666 "$M/open"
expect_rc "nobody can lock a 0666 file" 0 nobody flock -n "$M/open" true
expect_rc "nobody can lock a 0666 file shared" 0 nobody flock -s -n "$M/open" true

err=$(nobody rm -f "$M/open" 2>&1)
rc=$?
if [ $rc != 0 ] && [ -e "$M/open" ]; then ok "nobody cannot unlink root's file in the sticky root"; else fail "nobody rm of root's file: expected refusal, got exit $rc ($err)"; fi
expect_match "unlink refusal is a permission error" "Operation not permitted|Permission denied" "$err"

expect_rc "nobody creates its own lock file" 0 nobody flock -n "$M/mine" true
expect_eq "owner of nobody's file" 65534:65534 "$(stat -c %u:%g "$M/mine")"
expect_rc "nobody O_EXCL lockfile" 0 nobody "$FSPROBE" excl "$M/mine.lock"
expect_eq "owner of nobody's lockfile" 65534 "$(stat -c %u "$M/mine.lock")"
expect_rc "nobody removes its own lockfile" 0 nobody rm "$M/mine.lock"
expect_rc "nobody cannot chmod root's file" 1 nobody chmod 0777 "$M/secret"
expect_rc "nobody cannot chown its file to root" 1 nobody chown 0 "$M/mine"
expect_rc "root may remove nobody's file" 0 rm "$M/mine"

mkdir "$M/rootdir"
chmod 0755 "$M/rootdir"
expect_rc "nobody cannot create in a 0755 root directory" 1 nobody touch "$M/rootdir/x"
expect_rc "nobody cannot mkdir in a 0755 root directory" 1 nobody mkdir "$M/rootdir/d"
expect_rc "nobody can read the status file" 0 nobody cat "$M/status"

# --- status shows a user only the locks it could look up ------------------------------
# /hidden is 0700, /pub/inner 0700 under a 0755 directory, /grp 0710 of group
# 4242, /xonly 0711 (searchable, not readable), /pub 0755: root holds a lock
# in each.
mkdir -p "$M/hidden" "$M/pub/inner" "$M/grp" "$M/xonly"
chmod 0700 "$M/hidden" "$M/pub/inner"; chmod 0755 "$M/pub"; chmod 0711 "$M/xonly"
chgrp 4242 "$M/grp"; chmod 0710 "$M/grp"
holders0=$(status_key locks_held)
for f in hidden/job pub/inner/job grp/job xonly/job pub/job; do
	holder -x "$M/$f" "$f"
	view_holders+=("$HPID")
done
wait_until 5 eval '[ "$(status_key locks_held)" = $((holders0 + 5)) ]' || fail "status view: not all 5 locks held"
# seen [CMD...]: the lock paths of status and of status.json, sorted, "|"
# between the two files, as CMD (setpriv ...) reads them.
seen() {
	"$@" cat "$M/status" > "$T_DIR/seen.txt" && "$@" cat "$M/status.json" > "$T_DIR/seen.json" ||
		{ echo "cannot read status"; return; }
	python3 - "$T_DIR/seen.txt" "$T_DIR/seen.json" <<'EOF'
import json, sys
t = sorted(l.split()[1] for l in open(sys.argv[1]) if l.startswith("lock "))
j = sorted(l["path"] for l in json.load(open(sys.argv[2]))["locks"])
print(" ".join(t) + " | " + " ".join(j))
EOF
}
all="/grp/job /hidden/job /pub/inner/job /pub/job /xonly/job"
expect_eq "root sees every lock in status and status.json" "$all | $all" "$(seen)"
vis="/pub/job /xonly/job"
expect_eq "nobody sees only the locks whose directories it may search" "$vis | $vis" "$(seen nobody)"
vis="/grp/job /pub/job /xonly/job"
expect_eq "a supplementary group lets nobody search /grp" "$vis | $vis" \
	"$(seen setpriv --reuid=65534 --regid=65534 --groups=4242)"
expect_eq "its primary group does too" "$vis | $vis" "$(seen setpriv --reuid=65534 --regid=4242 --clear-groups)"
chown 65534 "$M/hidden"
expect_eq "the owner of /hidden sees its lock" "/hidden/job /pub/job /xonly/job" "$(seen nobody | sed 's/ |.*//')"
chown 0 "$M/hidden"
expect_eq "counts stay global: nobody reads the same locks_held" "$(status_key locks_held)" \
	"$(nobody sed -n 's/^locks_held: //p' "$M/status")"
# Deleted files: seen by who could search the directory their name was in,
# and only by root once that directory is gone too.
mkdir "$M/tmpd"; chmod 0755 "$M/tmpd"
for f in hidden/gone pub/gone tmpd/gone; do
	holder -x "$M/$f" "$f"
	view_holders+=("$HPID")
	wait_until 5 granted "$f" || fail "$f: holder not granted"
	rm "$M/$f"
done
rmdir "$M/tmpd"
deleted() { "$@" cat "$M/status" | sed -n 's/^lock <deleted:[0-9]*> .* was=//p' | sort | tr '\n' ' '; }
expect_eq "root sees every deleted file's lock" "/hidden/gone /pub/gone ?/gone " "$(deleted)"
expect_eq "nobody sees only the one in a directory it may search" "/pub/gone " "$(deleted nobody)"
# A stop waits --stop-timeout for holders: this section leaves none.
for p in "${view_holders[@]}"; do release "$p"; done

# --- issue 9: a ttl removes the name, so it needs the rights removal needs -----
# Root holds an exclusive flock on its 0666 file; nobody may write the file
# but not set or remove its ttl (or slots): only the owner or root may.
: > "$M/shared"
chmod 0666 "$M/shared"
# nobody_errno WHAT ERRNO_NAME fsprobe-errno-args...: as expect_errno, as nobody.
nobody_errno() {
	local what=$1 want=$2
	shift 2
	expect_eq "$what" "$want" "$(nobody "$FSPROBE" errno "$@" 2>&1)"
}
holder -x "$M/shared" root-holds
wait_until 5 granted root-holds || fail "root's holder never got its lock"
root_holder=$HPID
nobody_errno "nobody setxattr user.cluck.ttl on root's file" EPERM \
	setxattr "$M/shared" user.cluck.ttl 1
nobody_errno "nobody setxattr user.cluck.slots on root's file" EPERM \
	setxattr "$M/shared" user.cluck.slots 5
expect_match "nobody setfattr -x user.cluck.ttl is refused" "Operation not permitted" \
	"$(nobody setfattr -x user.cluck.ttl "$M/shared" 2>&1)"
nobody_errno "nobody may still set a plain user xattr" OK \
	setxattr "$M/shared" user.note x
expect_eq "the ttl stays 0" 0 \
	"$(getfattr --absolute-names -n user.cluck.ttl --only-values "$M/shared" 2>&1)"
expect_rc "nobody flock -n on root's held file fails" 1 nobody flock -n "$M/shared" true

# Root's own ttl on its held file: the file outlives the ttl while held
# (its name never goes to a new file then), and goes once released.
ino=$(stat -c %i "$M/shared")
expect_rc "root sets ttl 1 on its held file" 0 setfattr -n user.cluck.ttl -v 1 "$M/shared"
end=$(( $(now_ms) + 2500 ))
kept=1
while [ "$(now_ms)" -lt "$end" ]; do
	[ "$(stat -c %i "$M/shared" 2>/dev/null)" = "$ino" ] || { kept=0; break; }
	sleep 0.2
done
if [ $kept = 1 ]; then ok "a held file with ttl 1 keeps its name for 2.5 s"; else fail "a held file with ttl 1 lost its name while held"; fi
expect_rc "nobody flock -n still fails 2.5 s past the ttl" 1 nobody flock -n "$M/shared" true
release "$root_holder"
if wait_until 4 eval '[ ! -e "$M/shared" ]'; then ok "the held file expires once released"; else fail "the file did not expire within 4 s of its release"; fi
expect_rc "then nobody's flock -n succeeds" 0 nobody flock -n "$M/shared" true
expect_eq "on a new file of nobody's" 65534 "$(stat -c %u "$M/shared")"
nobody_errno "nobody sets the ttl of its own file" OK \
	setxattr "$M/shared" user.cluck.ttl 30
expect_errno "root sets the ttl of nobody's file" OK \
	setxattr "$M/shared" user.cluck.ttl 0

stop_cluckd
expect_eq "cluckd exit status after SIGTERM" 0 "$CLUCKD_RC"
finish
