#!/bin/sh
# t/sim-check.sh - make check's run of the deterministic cluster simulator:
# the named scenarios, then SIM_SEEDS seeds (default 2000) from SIM_FROM
# (default 1), then the cost figures.  Exits 77 only when t/sim is missing
# (not built), else the simulator's status: 0 all invariants held, 1 a
# violation (its output names the seed and the replay command).
# It must never depend on the real clock or on anything but the seeds.
sim="${T_BIN:-$(dirname "$0")}/sim"
if [ ! -x "$sim" ]; then
	echo "SKIP: $sim not built"
	exit 77
fi
"$sim" --seeds "${SIM_SEEDS:-2000}" --from "${SIM_FROM:-1}"
status=$?
[ "$status" -eq 0 ] || exit 1
exit 0
