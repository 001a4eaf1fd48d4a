#!/bin/sh
# t/fs-namespace.sh - the cluckfs namespace (SPEC 2.1, 2.4 atomic idioms) on
# a real cluckd mount: files, directories, links, renames, attributes,
# content limits, names, readdir, statfs, the reserved generated files, and
# the atomicity of mkdir / ln -s / ln under a 20-process race.
#
# It must never: touch anything outside its temporary mount, or leave the
# daemon or a mount behind (t/lib.sh cleans up).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$top_srcdir/t/lib.sh"

start_cluckd || finish
M=$MNT

# --- directories ---------------------------------------------------------
expect_rc "mkdir d" 0 mkdir "$M/d"
expect_eq "d is a directory" directory "$(stat -c %F "$M/d")"
: > "$M/d/f"
expect_errno "rmdir of a non-empty directory" ENOTEMPTY rmdir "$M/d"
expect_errno "mkdir of an existing name" EEXIST mkdir "$M/d"
rm -f "$M/d/f"
expect_rc "rmdir of the emptied directory" 0 rmdir "$M/d"
expect_rc "directory gone" 1 test -e "$M/d"

# --- files: create, list, remove ------------------------------------------
expect_rc "create with touch" 0 touch "$M/a"
expect_eq "ls shows the file" a "$(ls "$M" | grep -x a)"
expect_rc "rm" 0 rm "$M/a"
expect_rc "file gone after rm" 1 test -e "$M/a"
expect_errno "unlink of a missing file" ENOENT unlink "$M/a"

# --- content --------------------------------------------------------------
echo "host 1234" > "$M/note"
expect_eq "content round trip" "host 1234" "$(cat "$M/note")"
printf 'more\n' >> "$M/note"
expect_eq "append" "host 1234
more" "$(cat "$M/note")"
head -c 65536 /dev/urandom > "$T_DIR/big"
cp "$T_DIR/big" "$M/big"
if cmp -s "$T_DIR/big" "$M/big"; then ok "64 KiB content round trip"; else fail "64 KiB content round trip differs"; fi
expect_eq "64 KiB size" 65536 "$(stat -c %s "$M/big")"
expect_errno "write of 65537 bytes" EFBIG write "$M/big2" 65537
expect_errno "write of 65536 bytes" OK write "$M/big3" 65536
expect_errno "truncate to 65537" EFBIG truncate "$M/big3" 65537
expect_rc "truncate -s 100" 0 truncate -s 100 "$M/note"
expect_eq "size after truncate" 100 "$(stat -c %s "$M/note")"
expect_eq "truncate pads with zeros" 0 "$(tail -c 85 "$M/note" | tr -d '\0' | wc -c)"
truncate -s 3 "$M/note"
expect_eq "truncate shrinks" "hos" "$(cat "$M/note")"

# --- rename -----------------------------------------------------------------
echo one > "$M/r1"
echo two > "$M/r2"
expect_rc "mv onto an existing file" 0 mv "$M/r1" "$M/r2"
expect_eq "target has the moved content" one "$(cat "$M/r2")"
expect_rc "source name gone after mv" 1 test -e "$M/r1"
mkdir "$M/dA" "$M/dB"
: > "$M/dA/inner"
expect_rc "mv -T dir onto an empty dir" 0 mv -T "$M/dA" "$M/dB"
expect_rc "moved dir keeps its entries" 0 test -e "$M/dB/inner"
mkdir "$M/dC"; : > "$M/dC/x"
mkdir "$M/dD"; : > "$M/dD/y"
expect_errno "rename dir onto a non-empty dir" ENOTEMPTY rename "$M/dC" "$M/dD"
expect_errno "rename file onto a dir" EISDIR rename "$M/r2" "$M/dD"
expect_rc "mv into a subdirectory" 0 mv "$M/r2" "$M/dD/r2"
expect_eq "moved file readable in subdir" one "$(cat "$M/dD/r2")"
rm -rf "$M/dB" "$M/dC" "$M/dD"

# --- links -------------------------------------------------------------------
expect_rc "ln -s" 0 ln -s "target/of link" "$M/sym"
expect_eq "readlink" "target/of link" "$(readlink "$M/sym")"
expect_eq "symlink type" "symbolic link" "$(stat -c %F "$M/sym")"
expect_errno "symlink over an existing name" EEXIST symlink x "$M/sym"
echo data > "$M/h1"
expect_rc "ln (hard link)" 0 ln "$M/h1" "$M/h2"
expect_eq "st_nlink after link" 2 "$(stat -c %h "$M/h1")"
expect_eq "st_nlink of the new name" 2 "$(stat -c %h "$M/h2")"
expect_eq "same inode" "$(stat -c %i "$M/h1")" "$(stat -c %i "$M/h2")"
expect_eq "content through the link" data "$(cat "$M/h2")"
rm "$M/h1"
expect_eq "st_nlink after unlinking one name" 1 "$(stat -c %h "$M/h2")"
expect_eq "content survives" data "$(cat "$M/h2")"

# --- attributes --------------------------------------------------------------
: > "$M/attr"
chmod 0640 "$M/attr"
expect_eq "chmod" 640 "$(stat -c %a "$M/attr")"
chown 1234:5678 "$M/attr"
expect_eq "chown numeric" 1234:5678 "$(stat -c %u:%g "$M/attr")"
touch -d '2020-01-02 03:04:05 UTC' "$M/attr"
expect_eq "touch -d sets mtime" 1577934245 "$(stat -c %Y "$M/attr")"
# Times from the kernel: ns since the epoch in an int64_t; a time outside
# 1677..2262 is clamped to the last whole second inside, as the kernel
# clamps for ext4 (@10000000000 * 1e9 used to overflow: a negative time, or
# a sanitized daemon aborting).  tmpfs itself stores these unclamped.
for t in @-1:-1 @0:0 @4102444800:4102444800 @9223372035:9223372035 \
	 @10000000000:9223372035 '2500-01-01 UTC:9223372035' \
	 @-10000000000:-9223372036 @9223372036854775807:9223372035; do
	touch -d "${t%:*}" "$M/attr" 2>/dev/null
	expect_eq "touch -d ${t%:*} (mtime, atime)" "${t##*:} ${t##*:}" \
		"$(stat -c '%Y %X' "$M/attr")"
done
touch -d @1600000000.5 "$M/attr"
touch -a -d @1700000000 "$M/attr"          # UTIME_OMIT for the mtime
expect_eq "touch -a keeps the mtime" "1600000000.500000000 1700000000.000000000" \
	"$(stat -c '%.9Y %.9X' "$M/attr")"
t0=$(date +%s)
touch -m "$M/attr"                         # UTIME_NOW for the mtime
expect_rc "touch -m sets now" 0 test "$(stat -c %Y "$M/attr")" -ge "$t0"
expect_eq "touch -m keeps the atime" 1700000000 "$(stat -c %X "$M/attr")"
expect_errno "truncate to 2^62" EFBIG truncate "$M/attr" 4611686018427387904
expect_errno "truncate to 2^63-1" EFBIG truncate "$M/attr" 9223372036854775807
expect_eq "new file owned by the creator" 0:0 "$(stat -c %u:%g "$M/note")"

# --- names ---------------------------------------------------------------------
n255=$(printf 'n%.0s' $(seq 255))
n256=$(printf 'n%.0s' $(seq 256))
expect_errno "name of 255 bytes" OK creat "$M/$n255"
expect_errno "name of 256 bytes" ENAMETOOLONG creat "$M/$n256"
expect_errno "mkdir name of 256 bytes" ENAMETOOLONG mkdir "$M/$n256"
odd=$'sp ace\nnew\xc3\xa9line \xe2\x9c\x93'
echo odd > "$M/$odd"
expect_eq "odd name readable" odd "$(cat "$M/$odd")"
got=$(python3 -c 'import os,sys; print(sys.argv[2].encode("utf-8","surrogateescape") in [n.encode("utf-8","surrogateescape") for n in os.listdir(sys.argv[1])])' "$M" "$odd")
expect_eq "odd name listed" True "$got"
rm -f "$M/$odd" "$M/$n255"

# --- readdir of 1000 files ------------------------------------------------------
mkdir "$M/many"
for i in $(seq 1000); do : > "$M/many/f$i"; done
got=$(ls -f "$M/many" | grep -v '^\.\.\?$' | sort | uniq | wc -l)
expect_eq "readdir lists 1000 distinct names" 1000 "$got"
expect_eq "readdir lists no name twice" "" "$(ls -f "$M/many" | sort | uniq -d)"
got=$(python3 -c 'import os,sys; l=os.listdir(sys.argv[1]); print(len(l), len(set(l)))' "$M/many")
expect_eq "python listdir count" "1000 1000" "$got"
rm -rf "$M/many"
expect_rc "rm -rf of 1000 files" 1 test -e "$M/many"

# --- statfs -------------------------------------------------------------------
expect_rc "stat -f" 0 stat -f "$M"
expect_eq "statfs name length" 255 "$(stat -f -c %l "$M")"

# --- generated files ----------------------------------------------------------
for f in status status.json metrics; do
	expect_eq "$f is a regular file" "regular" "$(stat -c %F "$M/$f" | cut -d' ' -f1)"
	expect_rc "$f readable" 0 test -s "$M/$f" -o -n "$(head -c1 "$M/$f")"
	err=$(rm -f "$M/$f" 2>&1)
	expect_match "rm $f fails with EPERM" "Operation not permitted" "$err"
	err=$(touch "$M/$f" 2>&1)
	expect_match "touch $f fails with EPERM" "Operation not permitted" "$err"
	err=$( (echo x > "$M/$f") 2>&1)
	expect_match "echo > $f fails with EPERM" "Operation not permitted" "$err"
	expect_errno "unlink($f)" EPERM unlink "$M/$f"
	expect_errno "open($f, O_WRONLY|O_CREAT)" EPERM creat "$M/$f"
	expect_errno "rename onto $f" EPERM rename "$M/note" "$M/$f"
	expect_errno "rename $f away" EPERM rename "$M/$f" "$M/moved"
	expect_rc "$f still there" 0 test -f "$M/$f"
done
# mkdir of an existing name is refused by the kernel (EEXIST) before
# cluckd is asked; either EEXIST or EPERM is a refusal.
got=$("$FSPROBE" errno mkdir "$M/status")
expect_match "mkdir status refused" '^(EPERM|EEXIST)$' "$got"
expect_rc "status still a regular file" 0 test -f "$M/status"

# --- atomic idioms under a race ---------------------------------------------------
race 20 "$T_DIR/mk" mkdir "$M/raced"
expect_eq "mkdir race: exactly one winner" 1 "$(count_rc "$T_DIR/mk" 0)"
expect_eq "mkdir race: 20 finished" 20 "$(wc -l < "$T_DIR/mk")"
race 20 "$T_DIR/sl" ln -s somewhere "$M/rsym"
expect_eq "ln -s race: exactly one winner" 1 "$(count_rc "$T_DIR/sl" 0)"
echo me > "$M/src"
race 20 "$T_DIR/hl" ln "$M/src" "$M/rlink"
expect_eq "ln race: exactly one winner" 1 "$(count_rc "$T_DIR/hl" 0)"
expect_eq "ln race: st_nlink 2" 2 "$(stat -c %h "$M/src")"
expect_match "ln race losers see File exists" "File exists" "$(cat "$T_DIR/hl.err")"

stop_cluckd
expect_eq "cluckd exit status after SIGTERM" 0 "$CLUCKD_RC"
finish
