#!/bin/sh
# t/fs-recovery.sh - a stopped one-node cluckd's data directory damaged in
# each way a disk or a hand can damage it: recovery cuts only a torn tail,
# skips damage a snapshot covers, and refuses everything else (exit status
# != 0, one message naming the file and offset and what to do) without
# changing anything, so that undoing the damage loses nothing
# acknowledged; an accepted loss (--accept-loss) starts; and a fencing
# token after any restart is above every token handed out before, even
# when the log lost its end at a record boundary.
#
# It must never: leave a daemon, a holder or a mount behind (lib.sh traps).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"
require_cmd getfattr

M=$MNT
D=$T_DIR/data
B=$T_DIR/backup
N=60
# Small segments and frequent snapshots: every kind of damage is reachable.
export CLUCKD_SEGMENT_BYTES=2048 CLUCKD_SNAPSHOT_EVERY=80

# token FILE: takes the lock with flock(1) and prints the token it got.
token() { flock "$M/$1" getfattr --absolute-names -n user.cluck.token --only-values "$M/$1" 2>/dev/null; }

MAXTOK=0
# note_token FILE: takes a token and remembers the highest one handed out.
note_token() {
	local t
	t=$(token "$1")
	[ -n "$t" ] && [ "$t" -gt "$MAXTOK" ] && MAXTOK=$t
}

# populate: a fresh directory with files f1..fN (each acknowledged), tokens
# taken along the way, then a clean stop, in a layout every section below
# can damage (layout_fits); a copy is kept in $B.
populate() {
	local try
	for try in 1 2 3; do
		stop_cluckd
		rm -rf "$D" "$B"
		MAXTOK=0
		start_cluckd "$@" || finish
		for i in $(seq 1 $N); do
			echo "$i" > "$M/f$i"
			[ $((i % 20)) = 0 ] && note_token "f$i"
		done
		note_token lock
		# Where snapshots fall depends on timing (how many entries
		# the kernel's requests make): write on until the layout fits.
		for i in $(seq 1 200); do
			layout_fits && break
			echo "$i" > "$M/g$i"
		done
		stop_cluckd
		# Stopping may have applied more (a snapshot): check again.
		layout_fits && break
	done
	cp -a "$D" "$B"
}

# covered_seg: the oldest log segment starts below the newest snapshot (it
# holds a record the snapshot covers) and is the one recovery replays from:
# the next segment starts above the snapshot's index + 1 (a segment whose
# records the snapshot all covers is not even read at start-up).
covered_seg() {
	local s t n
	s=$(ls "$D"/log-* 2>/dev/null | head -n1)
	t=$(ls "$D"/log-* 2>/dev/null | sed -n 2p)
	n=$(ls "$D"/snap-* 2>/dev/null | tail -n1)
	[ -n "$s" ] && [ -n "$n" ] || return 1
	n=$(printf '%d' "0x${n##*/snap-}")
	[ "$(printf '%d' "0x${s##*/log-}")" -lt "$n" ] &&
		{ [ -z "$t" ] || [ "$(printf '%d' "0x${t##*/log-}")" -gt $((n + 1)) ]; }
}

# layout_fits: a covered record to damage (covered_seg) and at least 4 log
# segments (a middle one to delete or cut, one before the last to damage).
layout_fits() { covered_seg && [ "$(ls "$D"/log-* 2>/dev/null | wc -l)" -ge 4 ]; }

# intact WHAT: every file is there with its content.
intact() {
	local bad=0
	for i in $(seq 1 $N); do
		[ "$(cat "$M/f$i" 2>/dev/null)" = "$i" ] || bad=$((bad + 1))
	done
	expect_eq "$1: files acknowledged before the damage" 0 "$bad"
}

# token_up WHAT: a token now is above every token handed out before.
token_up() {
	local t
	t=$(token lock)
	if [ -n "$t" ] && [ "$t" -gt "$MAXTOK" ]; then
		ok "$1: token $t > every earlier one (up to $MAXTOK)"
		MAXTOK=$t
	else
		fail "$1: token '$t' after the restart, $MAXTOK handed out before"
	fi
}

# refused WHAT REGEX [OPTS]: cluckd must refuse to start (exit != 0, not
# mounted) with one error line matching REGEX; nothing in $D changes.
refused() {
	local what=$1 re=$2 rc sum
	shift 2
	sum=$(cd "$D" && md5sum * 2>/dev/null | sort)
	timeout 20 "$CLUCKD" -f -n testnode -D "$D" "$@" "$M" > /dev/null 2> "$T_DIR/err"
	rc=$?
	if mounted; then
		fusermount3 -uz "$M"
		fail "$what: cluckd mounted"
		return
	fi
	if [ "$rc" != 0 ] && [ "$rc" != 124 ]; then ok "$what: refused, exit $rc"; else fail "$what: exit $rc"; fi
	expect_eq "$what: one error line" 1 "$(grep -c 'error' "$T_DIR/err")"
	expect_match "$what: the message" "$re" "$(cat "$T_DIR/err")"
	expect_eq "$what: nothing changed" "$sum" "$(cd "$D" && md5sum * 2>/dev/null | sort)"
}

# restore: the undamaged copy back; save: the directory is the new copy.
restore() { rm -rf "$D"; cp -a "$B" "$D"; }
save() { rm -rf "$B"; cp -a "$D" "$B"; }

# seg K: the K-th log segment (1 = oldest; -1 = newest).
seg() {
	if [ "$1" -lt 0 ]; then ls "$D"/log-* | tail -n $((-$1)) | head -n1
	else ls "$D"/log-* | sed -n "${1}p"; fi
}

# recoff SEG INDEX: byte offset of the record of INDEX in SEG.
recoff() {
	python3 - "$1" "$2" <<'EOF'
import struct, sys
b = open(sys.argv[1], 'rb').read()
off = 0
while off + 25 <= len(b):
    l, _, idx = struct.unpack_from('<IIQ', b, off)
    if idx == int(sys.argv[2]):
        print(off)
        sys.exit(0)
    off += 8 + l
sys.exit(1)
EOF
}

# first_index SEG: the index a segment starts at (its name).
first_index() { printf '%d' "0x${1##*/log-}"; }

# flip FILE OFFSET: flips one bit there.
flip() {
	python3 - "$1" "$2" <<'EOF'
import sys
f = open(sys.argv[1], 'r+b'); o = int(sys.argv[2])
f.seek(o); c = f.read(1)[0]; f.seek(o); f.write(bytes([c ^ 0x10]))
EOF
}

populate
nseg=$(ls "$D"/log-* | wc -l)
[ "$nseg" -ge 4 ] || fail "only $nseg segments: the test needs more"
snap=$(ls "$D"/snap-* | tail -n1)
snapidx=$(printf '%d' "0x${snap##*/snap-}")

# --- a flipped byte in a record the snapshot covers: skipped --------------------
s=$(seg 1)
f=$(first_index "$s")
[ "$f" -lt "$snapidx" ] || fail "the oldest segment ($f) is not covered by the snapshot ($snapidx)"
covered_seg || fail "recovery does not read the oldest segment ($f; the next: $(first_index "$(seg 2)"); snapshot $snapidx)"
flip "$s" $(( $(recoff "$s" "$f") + 20 ))
start_cluckd || finish
intact "covered flip"
grep -q "skipped.*covers it" "$LOG" && ok "covered flip: the log says what was skipped" || fail "covered flip: no message"
token_up "covered flip"
stop_cluckd
save    # the new entries are part of what must not be lost

# --- a flipped byte in a record nothing covers, not in the last segment --------
restore
s=$(seg -2)
f=$(first_index "$s")
off=$(( $(recoff "$s" $((f + 1))) ))
flip "$s" $((off + 30))
refused "uncovered flip" "${s##*/} offset $off: damaged record \(index $((f + 1)), crc mismatch\).*--accept-loss $((f + 1))"

# The same, accepted: it starts, what followed is lost, tokens still go up.
restore
flip "$s" $((off + 30))
before=$MAXTOK
start_cluckd --accept-loss $((f + 1)) || finish
grep -q "cut as accepted" "$LOG" && ok "accepted loss: the log says so" || fail "accepted loss: no message"
[ -e "$D/lost-${s##*/}" ] && ok "accepted loss: the damaged segment is kept" || fail "no lost-${s##*/}"
token_up "accepted loss"
stop_cluckd
MAXTOK=$before       # the copy restored below is older than that run

# Undone: nothing acknowledged was lost by the refusal.
restore
start_cluckd || finish
intact "uncovered flip undone"
token_up "uncovered flip undone"
stop_cluckd
save

# --- a bad record followed by good ones in the last segment ---------------------
s=$(seg -1)
f=$(first_index "$s")
off=$(recoff "$s" $((f + 1)))
flip "$s" $((off + 30))
refused "bad record before good ones" "${s##*/} offset $off: .*followed by valid records"
restore

# --- a deleted middle segment ------------------------------------------------------
s=$(seg -3)
rm "$s"
refused "deleted middle segment" "log-[0-9a-f]+ offset [0-9]+: the log ends at index [0-9]+ but the next segment .* a segment is missing.*--accept-loss"
restore

# --- a segment that is not the last, cut short ------------------------------------
s=$(seg -2)
truncate -s -7 "$s"
refused "truncated segment" "${s##*/} offset [0-9]+: damaged record .*not the last"
restore

# --- a torn tail is still cut ---------------------------------------------------
printf '\x30\x00\x00\x00garbage-torn-write' >> "$(seg -1)"
start_cluckd || finish
intact "torn tail"
grep -q "torn tail" "$LOG" && ok "torn tail: cut and reported" || fail "torn tail: no message"
token_up "torn tail"
stop_cluckd
save

# --- a damaged snapshot the log no longer continues --------------------------------
# Compaction removed the log the older snapshot needs: no fallback.
first=$(first_index "$(seg 1)")
older=$(ls "$D"/snap-* | tail -n2 | head -n1)
if [ "$(printf '%d' "0x${older##*/snap-}")" -lt $((first - 1)) ]; then
	ok "the log no longer continues the older snapshot ${older##*/}"
else
	fail "the log still continues the older snapshot ${older##*/} (log from $first)"
fi
snap=$(ls "$D"/snap-* | tail -n1)
flip "$snap" 40
refused "damaged snapshot" "${snap##*/}: corrupt snapshot skipped: crc mismatch.*(gap|not 1).*--accept-loss [0-9]+"
cut=$(sed -n 's/.*--accept-loss \([0-9]*\).*/\1/p' "$T_DIR/err")
before=$MAXTOK
start_cluckd --accept-loss "$cut" || finish
grep -q "cut as accepted" "$LOG" && ok "damaged snapshot: loss accepted" || fail "damaged snapshot: no acceptance in the log"
token_up "damaged snapshot accepted"
stop_cluckd
MAXTOK=$before
restore

# --- the state file: damaged, missing, then rebuilt as accepted ----------------------
flip "$D/state" 10
refused "damaged state" "state: the hard state file is damaged .*--accept-loss state"
rm "$D/state"
refused "missing state" "state: the hard state file is missing .*--accept-loss state"
start_cluckd --accept-loss state || finish
intact "state rebuilt"
token_up "state rebuilt"
stop_cluckd
restore

# --- the cluster file: missing, damaged -----------------------------------------------
rm "$D/cluster"
refused "missing cluster file" "'cluster' .* is missing; .*printf 'alone\\\\n' > $D/cluster"
printf 'vot\001ers\n' > "$D/cluster"
refused "damaged cluster file" "'cluster' .* is damaged.*printf 'alone"
restore
start_cluckd || finish
intact "cluster file restored"
stop_cluckd

# --- every file but cluster gone ---------------------------------------------------
rm -f "$D"/log-* "$D"/snap-* "$D"/state
refused "emptied directory" "state file is missing, and so are every log segment and snapshot"
refused "emptied directory, again" "state file is missing, and so are every log segment and snapshot"
restore

# --- the log cut cleanly at a record boundary: tokens still go up ----------------
# A few entries lost from the end (the last segment deleted): within the
# floor reserved ahead, the node cannot tell, and its log jumps past it.
# The start jumps to the floor; the first sync above it moves the floor on
# and marks that index synced (a log ending below it is refused, as below).
# So the segment deleted must start after that: write on until a new
# segment is rolled, then take the token it loses.
start_cluckd || finish
note_token lock
note_token f1
s=$(seg -1)
for i in $(seq 1 100); do
	[ "$(seg -1)" != "$s" ] && break
	echo "$i" > "$M/h$i"
done
[ "$(seg -1)" != "$s" ] || fail "no new log segment after 100 writes"
note_token lock
stop_cluckd
rm "$(seg -1)"
start_cluckd || finish
token_up "last segment deleted"
grep -q "raised from index" "$LOG" && ok "the log jumped to its floor" || fail "no jump in the log"
stop_cluckd

# More than the floor step lost: the node knows they were synced, refuses.
rm -rf "$D"
MAXTOK=0
CLUCKD_FLOOR_STEP=8 start_cluckd || finish
for i in $(seq 1 $N); do echo "$i" > "$M/f$i"; done
note_token lock
stop_cluckd
rm "$(seg -1)"
rm "$(seg -1)"
last=$(CLUCKD_FLOOR_STEP=8 timeout 20 "$CLUCKD" -f -n testnode -D "$D" "$M" 2>&1 >/dev/null | sed -n 's/.*--accept-loss \([0-9]*\).*/\1/p')
mounted && fusermount3 -uz "$M"
CLUCKD_FLOOR_STEP=8 refused "log ends below what was synced" "its log ends at index [0-9]+, but entries up to index [0-9]+ were written and synced.*--accept-loss $last"
CLUCKD_FLOOR_STEP=8 start_cluckd --accept-loss "$last" || finish
token_up "accepted cut log"
stop_cluckd

finish
