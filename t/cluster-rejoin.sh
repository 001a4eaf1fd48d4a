#!/bin/sh
# t/cluster-rejoin.sh - a voter of a real 3-voter cluster whose log is
# damaged: it refuses to start with one message that names the file and
# offset and gives the --rejoin repair; repaired that way (log and
# snapshots removed, state, cluster and epoch kept) it starts, votes only
# once it caught up (also after a crash and a restart without --rejoin
# before that), serves every file acknowledged before, and the
# cluster still elects a leader holding everything when the old one stops.
#
# It must never: wait without a deadline, or leave a namespace, a mount or
# a process behind (t/netns.sh traps every exit).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/netns.sh"

ns_setup a b c
ns_voters a b c
ns_start_all a b c || finish
ns_wait_leader 10 || { fail "no leader all 3 nodes agree on"; finish; }
L=$NS_LEADER
F=$(for n in a b c; do [ "$n" != "$L" ] && echo $n; done | head -n1)
for i in $(seq 1 30); do echo "$i" > "$(ns_mnt "$L")/f$i"; done
ns_stop "$F"
D=$(ns_dir "$F")/data

# A flipped byte in the first record of the (only) segment: valid records
# follow it, so it is damage, not a torn tail.
seg=$(ls "$D"/log-* | head -n1)
python3 - "$seg" <<'EOF'
import sys
f = open(sys.argv[1], 'r+b'); f.seek(30); c = f.read(1)[0]; f.seek(30); f.write(bytes([c ^ 0x10]))
EOF
ns_launch "$F"
if wait_until 10 eval '! ns_alive "$F"'; then
	ns_reap "$F"
	if [ "${NS_RC:-0}" != 0 ]; then ok "$F refused to start (exit $NS_RC)"; else fail "$F exited 0"; fi
else
	fail "$F started on a damaged log"
	ns_stop "$F"
fi
expect_match "$F: the message names the file, the offset and --rejoin" \
	"${seg##*/} offset [0-9]+: damaged record .*--rejoin" "$(grep 'refusing to start' "$(ns_log "$F")")"

# The repair the message gives.
cp -a "$D" "$(ns_dir "$F")/data.damaged"
rm -f "$D"/log-* "$D"/snap-*
# A crash before it caught up (cut off, then SIGKILL): the next start,
# without --rejoin as a service manager would start it, must catch up
# again, not vote on the log it is still missing.
ns_link_down "$F"
ns_launch "$F" --rejoin
wait_until 10 grep -q "rejoining" "$(ns_log "$F")" && ok "$F rejoins" || fail "$F: no rejoin message"
ns_kill "$F" KILL
[ -e "$D/rejoin" ] && ok "$F: the rejoin mark outlives a crash" ||
	fail "$F: no rejoin mark after a crash before catching up"
ns_link_up "$F"
ns_start "$F" || finish
expect_eq "$F: restarted without --rejoin, it rejoins again" 2 \
	"$(grep -c 'rejoining' "$(ns_log "$F")")"
wait_until 10 grep -q "votes again" "$(ns_log "$F")" && ok "$F caught up and votes again" ||
	fail "$F did not catch up within 10 s"
[ ! -e "$D/rejoin" ] && ok "$F: the rejoin mark is gone once caught up" ||
	fail "$F: the rejoin mark outlived the catch-up"
bad=0
for i in $(seq 1 30); do [ "$(cat "$(ns_mnt "$F")/f$i" 2>/dev/null)" = "$i" ] || bad=$((bad + 1)); done
expect_eq "$F: files acknowledged before the damage" 0 "$bad"

# The old leader stops: the other two elect a leader holding everything.
ns_stop "$L"
X=$(for n in a b c; do [ "$n" != "$L" ] && echo $n; done | tr '\n' ' ')
ns_wait_leader 10 $X || fail "no leader among $X"
bad=0
for i in $(seq 1 30); do [ "$(cat "$(ns_mnt "$NS_LEADER")/f$i" 2>/dev/null)" = "$i" ] || bad=$((bad + 1)); done
expect_eq "new leader $NS_LEADER: every file" 0 "$bad"
echo new > "$(ns_mnt "$F")/after" && ok "a write through $F commits" || fail "a write through $F failed"
for n in $X; do ns_stop "$n"; done

# With fewer than 3 voters the others elect nobody without the rejoining
# voter's vote: --rejoin is refused there, before anything is written.
rc=$(ns_run a -k "$NS_KEY" -C "a=${NS_IP[a]},b=${NS_IP[b]}" --rejoin)
expect_eq "--rejoin in a cluster of 2 voters is refused" 1 "$rc"
expect_match "the refusal says why" "--rejoin needs a cluster of 3 or more voters" \
	"$(grep 'rejoin needs' "$(ns_log a)")"
finish
