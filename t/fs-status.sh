#!/bin/sh
# t/fs-status.sh - what admins and holders read (SPEC 2.6, 2.7) on a real
# cluckd mount: /status keys and lock lines, freshness, status.json, the
# Prometheus metrics, and the user.cluck.* extended attributes (fencing
# token, holders, waiters).
#
# It must never: sleep to make things happen (wait on the status file).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"
require_cmd getfattr setfattr

start_cluckd || finish
M=$MNT

# --- keys -----------------------------------------------------------------------
for k in node role term leader voters quorum session locks_held waiters files; do
	if grep -q "^$k: " "$M/status"; then ok "status has $k"; else fail "status lacks the key '$k': $(tr '\n' '|' < "$M/status")"; fi
done
expect_eq "status node" testnode "$(status_key node)"
expect_match "status role" '^(leader|follower|candidate|member)$' "$(status_key role)"
expect_eq "status voters (one node)" 1/1 "$(status_key voters)"
expect_eq "status quorum" yes "$(status_key quorum)"
expect_eq "status session" ok "$(status_key session)"
expect_eq "status locks_held when idle" 0 "$(status_key locks_held)"
expect_eq "status waiters when idle" 0 "$(status_key waiters)"

# --- a held lock with waiters ------------------------------------------------------
holder -x "$M/job" H; H=$HPID
wait_until 5 granted H || fail "holder not granted"
holder -x "$M/job" W1; W1=$HPID
wait_until 5 waiters_are job 1
holder -s "$M/job" W2; W2=$HPID
wait_until 5 waiters_are job 2 || fail "expected 2 waiters on /job, got $(lock_field job waiters)"
expect_match "lock line of a held file" '^lock /job mode=ex holders=1 waiters=2 token=[0-9]+$' "$(lock_line job)"
expect_eq "status locks_held" 1 "$(status_key locks_held)"
expect_eq "status waiters" 2 "$(status_key waiters)"

# status.json: same numbers
got=$(python3 - "$M/status.json" "$M/status" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
text = {}
for line in open(sys.argv[2]):
    if ": " in line and not line.startswith("lock "):
        k, v = line.rstrip("\n").split(": ", 1)
        text[k] = v
bad = []
for k in ("node", "role", "term", "leader", "quorum", "session", "locks_held", "waiters", "files"):
    if k not in j:
        bad.append("missing " + k)
    elif str(j[k]).lower() not in (text.get(k, "?").lower(), {"yes": "true", "no": "false"}.get(text.get(k), "?")):
        bad.append("%s: json %r, text %r" % (k, j[k], text.get(k)))
v = j.get("voters")
if isinstance(v, dict):
    v = "%s/%s" % (v.get("reachable"), v.get("total"))
if str(v) != text.get("voters"):
    bad.append("voters: json %r, text %r" % (j.get("voters"), text.get("voters")))
if "/job" not in json.dumps(j):
    bad.append("no /job in the json")
print("; ".join(bad) if bad else "same")
EOF
)
expect_eq "status.json parses and agrees with status" same "$got"

# user.cluck.* attributes
all=$(getfattr --absolute-names -d -m user.cluck "$M/job" 2>&1)
for a in token holders waiters eta_ms slots ttl; do
	expect_match "getfattr -d shows user.cluck.$a" "^user\.cluck\.$a=" "$all"
done
hl=$(getfattr --absolute-names -n user.cluck.holders --only-values "$M/job" 2>&1)
expect_match "user.cluck.holders names node and pid of flock" "^node=testnode pid=$H mode=ex token=[0-9]+ since=[0-9]+" "$hl"
wl=$(getfattr --absolute-names -n user.cluck.waiters --only-values "$M/job" 2>&1)
expect_eq "user.cluck.waiters has one line per waiter" 2 "$(printf '%s\n' "$wl" | grep -c 'waited_ms=')"
expect_match "user.cluck.waiters in queue order" "pid=$W1 mode=ex.*
.*pid=$W2 mode=sh" "$wl"
expect_match "user.cluck.eta_ms is a number" '^[0-9]+$' "$(getfattr --absolute-names -n user.cluck.eta_ms --only-values "$M/job" 2>&1)"
expect_eq "token in status = token attribute" "$(lock_field job token)" "$(getfattr --absolute-names -n user.cluck.token --only-values "$M/job" 2>&1)"
err=$(setfattr -n user.cluck.token -v 999999 "$M/job" 2>&1)
rc=$?
if [ $rc != 0 ]; then ok "user.cluck.token is read-only"; else fail "setfattr user.cluck.token: expected failure, got exit 0"; fi
expect_errno "setxattr user.cluck.token" EPERM setxattr "$M/job" user.cluck.token 1
expect_errno "setxattr user.cluck.holders" EPERM setxattr "$M/job" user.cluck.holders x

# --- freshness ---------------------------------------------------------------------
release "$H"; release "$W1"; release "$W2"
wait_until 2 eval '[ "$(lock_field job mode)" = absent ] || [ "$(lock_field job mode)" = free ]'
expect_match "released lock shows free or absent" '^(absent|free)$' "$(lock_field job mode)"
expect_eq "status locks_held after release" 0 "$(status_key locks_held)"
expect_eq "status waiters after release" 0 "$(status_key waiters)"
holder -x "$M/job" H2; H2=$HPID
wait_until 5 granted H2
expect_eq "status fresh: held again" ex "$(lock_field job mode)"
release "$H2"

# --- fencing tokens -------------------------------------------------------------------
t1=$(flock "$M/tok" getfattr --absolute-names -n user.cluck.token --only-values "$M/tok" 2>&1)
t2=$(flock "$M/tok" getfattr --absolute-names -n user.cluck.token --only-values "$M/tok" 2>&1)
t3=$(flock -s "$M/tok" getfattr --absolute-names -n user.cluck.token --only-values "$M/tok" 2>&1)
if [[ $t1 =~ ^[0-9]+$ && $t2 =~ ^[0-9]+$ && $t3 =~ ^[0-9]+$ ]] && [ "$t1" -lt "$t2" ] && [ "$t2" -lt "$t3" ]; then
	ok "tokens of successive grants strictly increase ($t1 < $t2 < $t3)"
else
	fail "tokens of successive grants: expected strictly increasing numbers, got '$t1' '$t2' '$t3'"
fi
got=$(flock "$M/tok" sh -c 'echo "$(getfattr --absolute-names -n user.cluck.token --only-values "$1") $(grep "^lock /tok " "$2" | sed "s/.*token=//")"' _ "$M/tok" "$M/status" 2>&1)
set -- $got
expect_eq "the holder reads its own grant's token" "${2:-none}" "${1:-empty}"
expect_eq "token after release = latest grant" "${1:-x}" "$(getfattr --absolute-names -n user.cluck.token --only-values "$M/tok" 2>&1)"

# --- names that need escaping: each status line parses one way ----------------------
# status_lines_check NAME...: every lock line of status splits (awk, and
# Python's split on Unicode white space) into exactly "lock PATH mode= holders=
# waiters= token=" (a deleted file's line may add was=); PATH unescapes (\\ and
# \xHH) to the bytes of a name; status is UTF-8; status.json loads with json
# and its paths give back the bytes (surrogateescape); every NAME given is
# held (holders=1) in both.  Prints "same" or what is wrong.
status_lines_check() {
	python3 - "$M/status" "$M/status.json" "$@" <<'EOF'
import json, os, re, sys
def unesc(f):
    b = f.encode("utf-8"); out = bytearray(); i = 0
    while i < len(b):
        if b[i] != 0x5c:
            out.append(b[i]); i += 1
        elif b[i + 1:i + 2] == b"\\":
            out.append(0x5c); i += 2
        elif b[i + 1:i + 2] == b"x" and re.fullmatch(rb"[0-9a-f]{2}", b[i + 2:i + 4]):
            out.append(int(b[i + 2:i + 4], 16)); i += 4
        else:
            raise ValueError("bad escape in %r" % f)
    return bytes(out)
bad = []
raw = open(sys.argv[1], "rb").read()
try:
    text = raw.decode("utf-8")
except UnicodeDecodeError as e:
    print("status is not UTF-8: %s" % e); sys.exit()
want = [os.fsencode(a) for a in sys.argv[3:]]
held = {}
for line in text.split("\n"):
    if not line.startswith("lock "):
        continue
    f = line.split()
    keys = [x.split("=", 1)[0] for x in f[2:6]]
    if line.split(" ") != f or len(f) not in (6, 7) or keys != ["mode", "holders", "waiters", "token"] \
       or (len(f) == 7 and not f[6].startswith("was=")):
        bad.append("line does not parse one way: %r" % line); continue
    try:
        p = unesc(f[1])
    except ValueError as e:
        bad.append(str(e)); continue
    held[p] = f[3]
for w in want:
    if held.get(b"/" + w) != "holders=1":
        bad.append("status: no held line for %r (have %r)" % (w, sorted(held)))
try:
    j = json.load(open(sys.argv[2], "rb"))
    jp = {l["path"].encode("utf-8", "surrogateescape"): len(l["holders"]) for l in j["locks"]}
    for w in want:
        if jp.get(b"/" + w) != 1:
            bad.append("status.json: no held lock for %r (have %r)" % (w, sorted(jp)))
except Exception as e:
    bad.append("status.json: %r" % e)
print("; ".join(bad) if bad else "same")
EOF
}
weird=('x mode=free holders=0 waiters=0 token=1' $'tab\there' $'new\nline' $'bad\xff\xfe byte'
       $'nb\xc2\xa0sp' 'a\x41' 'back\slash' 'ünï' 'eq=sign')
n0=$(status_key locks_held)
hp=()
for w in "${weird[@]}"; do
	holder -x "$M/$w" W; hp+=("$HPID")
done
wait_until 5 eval '[ "$(status_key locks_held)" = $((n0 + ${#weird[@]})) ]' || fail "weird names: not all held: $(status_key locks_held)"
expect_eq "lock lines of odd names parse one way, status.json gives the names back" same "$(status_lines_check "${weird[@]}")"
expect_match "the odd name's line escapes its spaces" '^lock /x\\x20mode=free\\x20holders=0\\x20waiters=0\\x20token=1 mode=ex holders=1 waiters=0 token=[0-9]+$' \
	"$(grep -a '^lock /x' "$M/status")"
for p in "${hp[@]}"; do release "$p"; done

# --- a held lock on a file whose last name was removed -------------------------------
: > "$M/gone file"
gino=$(stat -c %i "$M/gone file")
holder -x "$M/gone file" G; G=$HPID
wait_until 5 granted G || fail "deleted: holder not granted"
rm "$M/gone file"
expect_match "a held lock on a deleted file is listed by inode, with its former name" \
	"^lock <deleted:$gino> mode=ex holders=1 waiters=0 token=[0-9]+ was=/gone\\\\x20file\$" \
	"$(grep -a '^lock <deleted' "$M/status")"
expect_eq "its line parses one way" same "$(status_lines_check)"
got=$(python3 - "$M/status.json" "$gino" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
d = [l for l in j["locks"] if l["path"] == "<deleted:%s>" % sys.argv[2]]
if len(d) != 1:
    print("no <deleted:%s> entry in %r" % (sys.argv[2], [l["path"] for l in j["locks"]]))
else:
    d = d[0]
    print("%s %s %s %d" % (d.get("ino"), d.get("was"), d["mode"], len(d["holders"])))
EOF
)
expect_eq "status.json lists it with ino and was" "$gino /gone file ex 1" "$got"
expect_eq "every held lock has a line: holders add up to locks_held" "$(status_key locks_held)" \
	"$(awk '/^lock / { sub("holders=", "", $4); n += $4 } END { print n + 0 }' "$M/status")"
release "$G"
wait_until 5 eval '! grep -q "^lock <deleted:$gino>" "$M/status"'
expect_eq "the line goes with the release" "" "$(grep -a '^lock <deleted' "$M/status")"

# --- a lock deeper than PATH_MAX still has its line ------------------------------------
# 20 directories of 250-byte names: a path of about 5,000 bytes, made one
# step at a time as no single syscall may name it.
here=$PWD
cd "$M" || fail "cannot enter $M"
for i in $(seq 20); do
	d=$(printf 'd%0249d' "$i")
	mkdir "$d" && cd "$d" || { fail "deep: mkdir $i"; break; }
done
holder -x deepfile DEEP; deep=$HPID
cd "$here" || exit 1
wait_until 5 granted DEEP || fail "deep: holder not granted"
expect_eq "a lock with a path beyond 4096 bytes has a line" 1 \
	"$(grep -a -c "^lock /d0*1/d0*2/.*/d0*20/deepfile mode=ex holders=1 " "$M/status")"
expect_eq "and an entry in status.json" 1 \
	"$(python3 -c 'import json,sys; print(sum(l["path"].endswith("/deepfile") for l in json.load(open(sys.argv[1]))["locks"]))' "$M/status.json")"
release "$deep"

# --- metrics ---------------------------------------------------------------------------
metrics_check() {
	python3 - "$M/metrics" <<'EOF'
import re, sys
line_re = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+]?([0-9.]+([eE][-+]?[0-9]+)?|NaN|Inf)( -?[0-9]+)?$')
bad = []; grants = None; n = 0
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if not line or line.startswith("#"):
        continue
    n += 1
    if not line_re.match(line):
        bad.append(line)
        continue
    name = re.split(r'[{ ]', line, 1)[0]
    if "grant" in name and not name.endswith(("_bucket", "_sum", "_count")):
        rest = line[line.rindex("}") + 1:] if "}" in line else line.split(" ", 1)[1]
        grants = (grants or 0) + float(rest.split()[0])
if bad:
    print("BAD " + " | ".join(bad[:3]))
elif n == 0:
    print("BAD empty")
else:
    print("grants %s" % (grants if grants is not None else "none"))
EOF
}
m1=$(metrics_check)
expect_match "metrics is Prometheus text with a grants counter" '^grants [0-9.]+$' "$m1"
flock "$M/metric-probe" true
m2=$(metrics_check)
g1=${m1#grants }; g2=${m2#grants }
if python3 -c "import sys; sys.exit(0 if float('$g2') > float('$g1') else 1)" 2>/dev/null; then
	ok "grants counter increased after a lock ($g1 -> $g2)"
else
	fail "grants counter: expected an increase after a lock, got '$m1' then '$m2'"
fi
for want in releases interrupts expir acquire handoff; do
	if grep -v '^#' "$M/metrics" | grep -qi "$want"; then ok "metrics mention $want"; else fail "metrics have no series about '$want'"; fi
done

# --- handoff latency: every grant to a parked waiter whose cause is a request
# of this node is observed (unlock by close, flock -u, POSIX close, and an
# interrupt that lets the shared waiters behind an exclusive one in).
handoffs() { sed -n 's/^cluck_handoff_latency_seconds_count //p' "$M/metrics"; }
h0=$(handoffs)
flock "$M/ho" sh -c "echo \$\$ >> '$T_PIDS'; exec sleep 30" & HO=$!; bg_track "$HO"
wait_until 5 holders_are ho 1 || fail "handoff: holder not granted"
flock "$M/ho" true & HW=$!; bg_track "$HW"
wait_until 5 waiters_are ho 1 || fail "handoff: no parked waiter"
kill_tree KILL "$HO"; wait "$HO" 2>/dev/null
wait "$HW"; expect_eq "handoff: waiter granted after the holder died" 0 "$?"
expect_eq "handoff observed for an unlock by close (RELEASE)" $((h0 + 1)) "$(handoffs)"
( exec 7>"$M/ho2"; flock 7; echo in >> "$T_DIR/ho2"
  while [ ! -e "$T_DIR/ho2.go" ]; do sleep 0.02; done; flock -u 7; exec sleep 30 ) & HO=$!; bg_track "$HO"
wait_until 5 grep -q in "$T_DIR/ho2" || fail "handoff: holder 2 not granted"
flock "$M/ho2" true & HW=$!; bg_track "$HW"
wait_until 5 waiters_are ho2 1 || fail "handoff: waiter 2 not parked"
touch "$T_DIR/ho2.go"
wait "$HW"; expect_eq "handoff: waiter 2 granted after flock -u" 0 "$?"
kill_tree KILL "$HO"; wait "$HO" 2>/dev/null
expect_eq "handoff observed for flock -u" $((h0 + 2)) "$(handoffs)"
"$FSPROBE" lock "$M/ho3" wr 0 0 > "$T_DIR/ho3" & HO=$!; bg_track "$HO"
wait_until 5 grep -q locked "$T_DIR/ho3" || fail "handoff: POSIX holder not granted"
"$FSPROBE" lock "$M/ho3" wr 0 0 --hold 0 > /dev/null & HW=$!; bg_track "$HW"
wait_until 5 waiters_are ho3 1 || fail "handoff: POSIX waiter not parked"
kill -USR2 "$HO"
wait "$HW"; expect_eq "handoff: POSIX waiter granted after the holder's close" 0 "$?"
kill "$HO" 2>/dev/null; wait "$HO" 2>/dev/null
expect_eq "handoff observed for a POSIX unlock by close (FLUSH)" $((h0 + 3)) "$(handoffs)"
flock -s "$M/ho4" sh -c "echo \$\$ >> '$T_PIDS'; exec sleep 30" & HS=$!; bg_track "$HS"
wait_until 5 holders_are ho4 1 || fail "handoff: shared holder 4 not granted"
flock -w 0.5 "$M/ho4" true & HX=$!; bg_track "$HX"
wait_until 5 waiters_are ho4 1 || fail "handoff: exclusive waiter 4 not parked"
flock -s "$M/ho4" true & HR=$!; bg_track "$HR"
wait_until 5 waiters_are ho4 2 || fail "handoff: shared waiter 4 not parked behind the exclusive one"
wait "$HX"; expect_eq "handoff: flock -w gave up" 1 "$?"
wait "$HR"; expect_eq "handoff: the shared waiter got in when the exclusive one left" 0 "$?"
expect_eq "handoff observed for a grant caused by an interrupt" $((h0 + 4)) "$(handoffs)"
kill_tree KILL "$HS"; wait "$HS" 2>/dev/null

stop_cluckd
expect_eq "cluckd exit status after SIGTERM" 0 "$CLUCKD_RC"
finish
