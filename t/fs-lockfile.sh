#!/bin/sh
# t/fs-lockfile.sh - O_EXCL lockfiles (SPEC 2.4) on a real cluckd mount:
# noclobber and O_EXCL races have exactly one winner, rm releases, and the
# time to live of ephemeral files (--lockfile-ttl, user.cluck.ttl, refresh
# by touch, hard links die with the file).
#
# It must never: sleep to make things happen; a "still there" check is a
# deadline the file must survive, a "gone" check a deadline it must meet.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"
require_cmd setfattr getfattr

start_cluckd || finish
M=$MNT
gone() { [ ! -e "$1" ]; }

# --- noclobber race ------------------------------------------------------------
race 20 "$T_DIR/nc" bash -c 'set -C; echo $$ > "$1"' _ "$M/job"
expect_eq "set -C race: exactly one winner" 1 "$(count_rc "$T_DIR/nc" 0)"
expect_eq "set -C race: 19 losers see 'cannot overwrite existing file'" 19 \
	"$(grep -c 'cannot overwrite existing file' "$T_DIR/nc.err")"
expect_match "the winner's pid is in the file" '^[0-9]+$' "$(cat "$M/job")"
expect_rc "rm releases" 0 rm "$M/job"
expect_rc "set -C after rm" 0 bash -c 'set -C; echo $$ > "$1"' _ "$M/job"
rm -f "$M/job"

# --- O_EXCL race -------------------------------------------------------------------
race 20 "$T_DIR/ex" "$FSPROBE" excl "$M/x.lock"
expect_eq "O_EXCL race: exactly one winner" 1 "$(count_rc "$T_DIR/ex" 0)"
expect_eq "O_EXCL race: 19 EEXIST" 19 "$(count_rc "$T_DIR/ex" 1)"
expect_rc "second O_EXCL" 1 "$FSPROBE" excl "$M/x.lock"
rm "$M/x.lock"
expect_rc "O_EXCL after rm" 0 "$FSPROBE" excl "$M/x.lock"

# --- no default ttl: nothing expires ---------------------------------------------
"$FSPROBE" excl "$M/forever"
expect_eq "default user.cluck.ttl" 0 "$(getfattr --absolute-names -n user.cluck.ttl --only-values "$M/forever" 2>&1)"

# --- user.cluck.ttl on an O_EXCL file, refreshed by touch -------------------------
"$FSPROBE" excl "$M/t1"
expect_rc "setfattr user.cluck.ttl 1" 0 setfattr -n user.cluck.ttl -v 1 "$M/t1"
expect_eq "getfattr user.cluck.ttl" 1 "$(getfattr --absolute-names -n user.cluck.ttl --only-values "$M/t1" 2>&1)"
if wait_until 4 gone "$M/t1"; then ok "O_EXCL file with ttl 1 expired"; else fail "O_EXCL file with user.cluck.ttl=1 still there after 4 s"; fi

"$FSPROBE" excl "$M/t2"
setfattr -n user.cluck.ttl -v 1 "$M/t2"
end=$(( $(now_ms) + 2500 ))
survived=1
while [ "$(now_ms)" -lt "$end" ]; do
	touch "$M/t2" 2>/dev/null
	[ -e "$M/t2" ] || { survived=0; break; }
	sleep 0.3
done
if [ $survived = 1 ]; then ok "touch every 0.3 s keeps a ttl-1 file for 2.5 s"; else fail "a ttl-1 file touched every 0.3 s expired"; fi
if wait_until 4 gone "$M/t2"; then ok "the ttl-1 file expires once no longer touched"; else fail "the ttl-1 file did not expire 4 s after the last touch"; fi

# --- a hard link dies with the ephemeral file ------------------------------------
"$FSPROBE" excl "$M/t3"
ln "$M/t3" "$M/t3.link"
expect_eq "st_nlink of the linked lockfile" 2 "$(stat -c %h "$M/t3")"
setfattr -n user.cluck.ttl -v 1 "$M/t3"
if wait_until 4 eval 'gone "$M/t3" && gone "$M/t3.link"'; then ok "both names of an expired lockfile are gone"; else fail "after expiry: t3 exists=$([ -e "$M/t3" ] && echo yes || echo no), t3.link exists=$([ -e "$M/t3.link" ] && echo yes || echo no)"; fi

expect_rc "the O_EXCL file without ttl is still there" 0 test -e "$M/forever"

# --- --lockfile-ttl 1 ---------------------------------------------------------------
stop_cluckd
expect_eq "cluckd exit status after SIGTERM" 0 "$CLUCKD_RC"
start_cluckd --lockfile-ttl 1 || finish
"$FSPROBE" excl "$M/eph"
: > "$M/plain"
expect_eq "O_EXCL file gets the default ttl" 1 "$(getfattr --absolute-names -n user.cluck.ttl --only-values "$M/eph" 2>&1)"
if wait_until 4 gone "$M/eph"; then ok "--lockfile-ttl 1: the O_EXCL file expired"; else fail "--lockfile-ttl 1: the O_EXCL file still there after 4 s"; fi
expect_rc "--lockfile-ttl 1: a plain file does not expire" 0 test -e "$M/plain"
mkdir "$M/dir"
expect_rc "--lockfile-ttl 1: a directory does not expire" 0 test -d "$M/dir"

stop_cluckd
expect_eq "cluckd exit status after SIGTERM" 0 "$CLUCKD_RC"
finish
