#!/bin/sh
# t/check-purity.sh - keeps lockcore a pure, deterministic step function.
#
# Fails (exit 1, printing each offending line) when a lockcore/*.c or
# lockcore/*.h includes a header other than the allowed C library ones and
# lockcore's own headers, or calls anything that reads a clock, draws
# randomness, does I/O, starts threads or asks the OS who it is.  Comments
# and string literals are ignored, so prose such as "never call rand()"
# does not trip it.  It must never modify the tree; POSIX sh and awk only.
set -u
top=${top_srcdir:-$(dirname "$0")/..}
dir="$top/lockcore"

files=
own=
for f in "$dir"/*.c "$dir"/*.h; do
	[ -f "$f" ] || continue
	files="$files $f"
	case "$f" in *.h) own="$own ${f##*/}" ;; esac
done
if [ -z "$files" ]; then
	echo "FAIL: no lockcore sources under $dir"
	exit 1
fi

# shellcheck disable=SC2086 # $files is a list of paths without spaces
awk -v own="$own" '
BEGIN {
	nallowed = split("stddef.h stdint.h stdlib.h string.h errno.h stdbool.h limits.h stdio.h", a, " ")
	for (i = 1; i <= nallowed; i++)
		allowed[a[i]] = 1
	nown = split(own, b, " ")
	for (i = 1; i <= nown; i++)
		mine[b[i]] = 1
	bad = 0
}
function report(why) {
	print FILENAME ":" FNR ": " why ": " $0
	bad = 1
}
FNR == 1 { incom = 0 }
{
	# Strip comments (they may span lines), keep string literals.
	line = $0; out = ""; n = length(line); i = 1; instr = 0
	while (i <= n) {
		c = substr(line, i, 1); d = substr(line, i, 2)
		if (incom) {
			if (d == "*/") { incom = 0; i += 2; out = out " " } else i++
			continue
		}
		if (instr) {
			out = out c
			if (c == "\\") { out = out substr(line, i + 1, 1); i += 2; continue }
			if (c == q) instr = 0
			i++
			continue
		}
		if (d == "/*") { incom = 1; i += 2; continue }
		if (d == "//") break
		if (c == "\"" || c == "'\''") { instr = 1; q = c }
		out = out c
		i++
	}

	if (out ~ /^[ \t]*#[ \t]*include/) {
		h = out
		sub(/^[ \t]*#[ \t]*include[ \t]*/, "", h)
		if (h ~ /^</) {
			name = h; sub(/^</, "", name); sub(/>.*$/, "", name)
			if (!(name in allowed))
				report("header not allowed in lockcore")
		} else if (h ~ /^"/) {
			name = h; sub(/^"/, "", name); sub(/".*$/, "", name)
			sub(/^lockcore\//, "", name)
			if (name ~ /\// || !(name in mine))
				report("header not allowed in lockcore")
		} else {
			report("computed #include")
		}
		next
	}

	# Calls: look at code only, with string and char literals emptied.
	code = out
	gsub(/"([^"\\]|\\.)*"/, "\"\"", code)
	gsub(/'\''([^'\''\\]|\\.)*'\''/, "'\'''\''", code)
	code = " " code " "
	if (code ~ /[^A-Za-z0-9_.>](time|rand|random|open|read|write)[ \t]*\(/)
		report("forbidden call")
	else if (code ~ /[^A-Za-z0-9_](clock_gettime|gettimeofday|srand|fopen|socket|getpid|malloc_usable_size)[^A-Za-z0-9_]/)
		report("forbidden call")
	else if (code ~ /[^A-Za-z0-9_]pthread_/)
		report("forbidden call")
}
END {
	exit bad
}
' $files
status=$?
if [ $status -eq 0 ]; then
	echo "ok: lockcore is pure ($(echo $files | wc -w) files)"
	exit 0
fi
echo "FAIL: lockcore must not do I/O, read clocks, draw randomness or use threads"
exit 1
