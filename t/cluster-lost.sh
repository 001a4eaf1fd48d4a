#!/bin/sh
# t/cluster-lost.sh - where status shows a hold lost with an expired
# session: the path the file had (cluckfs(5), Lost locks).  A member holds
# a flock on a file whose last name it then removes, and one on a file
# whose path is longer than 4096 bytes; it is cut off until its session
# expires.  Both lost lines name the file (they used to say "lost ?": the
# path was looked up with a fixed buffer and only among live names).
# And a process whose hold was lost, still running (--on-lost none), is
# refused its token with ENOLCK once the lock has moved on, instead of
# being handed the new holder's token (a fenced resource would take it).
#
# It must never: wait without a deadline, or leave a namespace, a mount or
# a process behind (t/netns.sh traps every exit).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/netns.sh"

LEASE=2
NS_ARGS=(--lease "$LEASE")
ns_setup a m1
ns_voters a
{ ns_launch a && ns_launch m1 --on-lost none; } || finish
ns_wait_up 20 a m1 || finish
ns_wait_leader 10 || { fail "no leader all nodes agree on within 10 s"; finish; }
M1=$(ns_mnt m1)

mkdir "$M1/dir" "$M1/dir2" || fail "mkdir"
holder -x "$M1/dir/gone" GONE
holder -x "$M1/dir2/gone2" GONE2
wait_until 5 granted GONE || fail "the holder of dir/gone got no lock"
wait_until 5 granted GONE2 || fail "the holder of dir2/gone2 got no lock"
rm "$M1/dir/gone" "$M1/dir2/gone2" || fail "rm"
rmdir "$M1/dir2" || fail "rmdir dir2"
# 20 directories of 250-byte names: about 5,000 bytes, made one step at a
# time as no single syscall may name it.
here=$PWD
cd "$M1" || fail "cannot enter $M1"
for i in $(seq 20); do
	d=$(printf 'd%0249d' "$i")
	mkdir "$d" && cd "$d" || { fail "deep: mkdir $i"; break; }
done
holder -x deepfile DEEP
cd "$here" || exit 1
wait_until 5 granted DEEP || fail "the holder of deepfile got no lock"
# The token reader: flock(1) holds, its shell waits for the word, then
# reads the token as the holder's descendant (as flock(1)'s commands do).
flock -x "$M1/tok" sh -c "echo \$\$ >> '$T_PIDS'; echo TOK >> '$ORDER'
	while [ ! -e '$T_DIR/go' ]; do sleep 0.05; done
	getfattr --absolute-names -n user.cluck.token --only-values '$M1/tok' > '$T_DIR/tok.out' 2> '$T_DIR/tok.err'
	echo \$? > '$T_DIR/tok.rc'; exec sleep 60" &
bg_track $!
wait_until 5 granted TOK || fail "the token reader got no lock"
wait_until 5 eval '[ "$(ns_status a locks_held)" = 4 ]' || fail "the leader does not see the four holds"

ns_isolate m1
wait_until $((LEASE + 8)) eval '[ "$(ns_status m1 session)" = expired ]' ||
	fail "m1: session '$(ns_status m1 session)' $((LEASE + 8)) s after the isolation"
# status says "expired" from the lease's clock; the holds are recorded
# when the node acts on it, a moment later.
wait_until 5 eval '[ "$(ns_status m1 lost)" = 4 ]' || fail "m1 counts '$(ns_status m1 lost)' lost holds"
st=$(ns_status_all m1)
expect_eq "four lost lines" 4 "$(printf '%s\n' "$st" | grep -ac '^lost ')"
expect_eq "a deleted file's lost line has its former path" 1 \
	"$(printf '%s\n' "$st" | grep -ac '^lost /dir/gone mode=ex ')"
expect_eq "\"?/NAME\" when its directory is gone too" 1 \
	"$(printf '%s\n' "$st" | grep -ac '^lost ?/gone2 mode=ex ')"
expect_eq "a lost line with a path beyond 4096 bytes" 1 \
	"$(printf '%s\n' "$st" | grep -ac '^lost /d0*1/d0*2/.*/d0*20/deepfile mode=ex ')"
expect_eq "and in status.json" "/dir/gone /tok ?/gone2 deepfile" \
	"$(timeout -s KILL 2 cat "$M1/status.json" | python3 -c '
import json, sys
p = [l["path"] for l in json.load(sys.stdin)["lost_locks"]]
print(" ".join(sorted(x if len(x) < 100 else x.rsplit("/", 1)[-1] for x in p)))')"
[ "$T_FAILS" = 0 ] || printf '%s\n' "$st" | grep -a '^lost ' | cut -c1-120

# The lock moves on (a takes it once the leader freed m1's old session),
# m1 is back, and the lost holder, still running, asks for its token.
ns_heal
MA=$(ns_mnt a)
if timeout 30 flock "$MA/tok" true; then ok "a takes the lost lock"; else fail "a could not take the lost lock"; fi
newtok=$(timeout 10 flock "$MA/tok" getfattr --absolute-names -n user.cluck.token --only-values "$MA/tok")
wait_until 10 eval '[ "$(ns_status m1 session)" = ok ]' || fail "m1: session '$(ns_status m1 session)' after the heal"
touch "$T_DIR/go"
wait_until 10 eval '[ -s "$T_DIR/tok.rc" ]' || fail "the lost holder's token read never returned"
expect_eq "the lost holder's token read fails" 1 "$(cat "$T_DIR/tok.rc" 2>/dev/null)"
expect_match "with ENOLCK" "No locks available" "$(cat "$T_DIR/tok.err" 2>/dev/null)"
[ -s "$T_DIR/tok.out" ] && fail "the lost holder got token $(cat "$T_DIR/tok.out") (a's: $newtok)"
finish
