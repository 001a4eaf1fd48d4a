#!/bin/sh
# t/soak.sh - make soak: SOAK_SECS (600) of a continuous lock workload on
# a real cluster of 3 voters and 2 members while a random fault hits every
# few seconds (SIGKILL and restart, SIGTERM and restart, SIGSTOP/SIGCONT, a
# symmetric or one-way cut, an isolated node, a link down), then heal
# everything and check: the history is valid (t/histcheck), one leader that
# every node names, and the voters on the same term and applied index.
# SOAK_SEED picks the faults (printed, so a run can be replayed).
#
# It must never: leave a namespace, a mount or a process behind, or stop
# more than one voter at a time (the workload must be able to go on).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/netns.sh"

SECS=${SOAK_SECS:-600}
SEED=${SOAK_SEED:-$$}
RANDOM=$SEED
echo "soak: $SECS s, seed $SEED"
LEASE=3
NS_ARGS=(--lease $LEASE --op-timeout 2)
NODES=(a b c m1 m2)
ns_setup "${NODES[@]}"
ns_voters a b c
ns_start_all "${NODES[@]}" || finish
ns_wait_leader 15 || { fail "no leader all nodes agree on within 15 s"; finish; }

PAUSES=$T_DIR/pauses     # "NODE START_NS END_NS" per SIGSTOP
: > "$PAUSES"
pids=
for n in "${NODES[@]}"; do
	ns_client $n w1 sx ex 0 20 --secs "$SECS" --seed 1$RANDOM --survive 1 --think 5; pids="$pids $CPID"
	ns_client $n w2 sm mix 0 20 --secs "$SECS" --seed 2$RANDOM --survive 1 --think 5; pids="$pids $CPID"
	ns_client $n w3 sp wr 0 10 --secs "$SECS" --seed 3$RANDOM --survive 1 --think 5; pids="$pids $CPID"
done

pick() { local a=("$@"); echo "${a[RANDOM % ${#a[@]}]}"; }
end=$(( $(now_ms) + SECS * 1000 - 15000 ))
faults=0
down=                   # the one node that is down or stopped, if any
while [ "$(now_ms)" -lt "$end" ]; do
	sleep "$(( 2 + RANDOM % 4 )).$(( RANDOM % 10 ))"
	# Undo the previous fault first: at most one at a time.
	ns_heal
	if [ -n "$down" ]; then
		if [ -n "${NS_STOPPED[$down]:-}" ]; then
			ns_kill "$down" CONT
			echo "$(date +%s%N)" >> "$PAUSES"
		elif ! ns_alive "$down"; then
			ns_start "$down" || echo "soak: $down did not come back"
		fi
		down=
		sleep 1
	fi
	n=$(pick "${NODES[@]}")
	m=$(pick $(for x in "${NODES[@]}"; do [ "$x" != "$n" ] && echo "$x"; done))
	case $(( RANDOM % 7 )) in
	0) f="SIGKILL $n"; ns_kill "$n" KILL; down=$n ;;
	1) f="SIGTERM $n"; ns_stop "$n"; down=$n ;;
	2) f="SIGSTOP $n"; printf '%s %s ' "$n" "$(date +%s%N)" >> "$PAUSES"; ns_kill "$n" STOP; down=$n ;;
	3) f="cut $n $m"; ns_cut "$n" "$m" ;;
	4) f="one-way $n -> $m"; ns_cut_oneway "$n" "$m" ;;
	5) f="isolate $n"; ns_isolate "$n" ;;
	6) f="link down $n"; ns_link_down "$n" ;;
	esac
	faults=$((faults + 1))
	echo "soak: $(date +%T) fault $faults: $f (leader $(ns_leader))"
done
ns_heal
if [ -n "$down" ]; then
	if [ -n "${NS_STOPPED[$down]:-}" ]; then
		ns_kill "$down" CONT
		echo "$(date +%s%N)" >> "$PAUSES"
	else
		ns_alive "$down" || ns_start "$down"
	fi
fi
wait $pids
ok "$faults faults in $SECS s"

if ns_wait_leader 30; then ok "after the soak: one leader $NS_LEADER, term $NS_TERM, on every node"; else fail "after the soak: no agreement on a leader"; fi
same_applied() {
	local n v first=
	for n in a b c; do
		v=$(ns_status $n applied)
		[ -n "$v" ] || return 1
		[ -z "$first" ] && first=$v
		[ "$v" = "$first" ] || return 1
	done
}
if wait_until 15 same_applied; then ok "voters agree on the applied index ($(ns_status a applied))"; else fail "voters' applied index: $(for n in a b c; do printf '%s=%s ' $n "$(ns_status $n applied)"; done)"; fi
echo "soak: $(grep -vc ' fail ' "$NS_HIST") holds, $(grep -c ' fail ' "$NS_HIST") failed calls"
# A cluckd stopped past its lease cannot tell its holders (they are not
# stopped) that their locks are gone before the cluster frees them: that
# is what fencing tokens are for.  Their holds across such a pause are
# checked like lost ones (the grant instant and the token order only).
awk -v lease_ns=$((LEASE * 1000000000 / 2)) '
	FILENAME == ARGV[1] { if (NF == 3 && $3 - $2 > lease_ns) { pn[++np] = $1; ps[np] = $2; pe[np] = $3 }; next }
	{
		if ($6 != "fail" && $NF != "lost")
			for (i = 1; i <= np; i++)
				if ($1 == pn[i] && $5 < pe[i] && $6 > ps[i]) { sub(/ term$/, ""); $0 = $0 " lost"; paused++; break }
		print
	}
	END { if (paused) printf "soak: %d holds across a pause of their node past the lease: checked as lost\n", paused > "/dev/stderr" }
' "$PAUSES" "$NS_HIST" > "$NS_HIST.p" && mv "$NS_HIST.p" "$NS_HIST"
if ns_histcheck; then ok "soak history valid"; else fail "soak history not valid"; fi
expect_rc "every node locks after the soak" 0 bash -c "for n in ${NODES[*]}; do timeout 10 flock '$T_DIR/n/'\$n'/mnt/final' true || exit 1; done"
finish
