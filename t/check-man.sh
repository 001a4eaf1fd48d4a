#!/bin/sh
# t/check-man.sh - lint every man page: groff must print no warning, and
# mandoc -Tlint no warning or error.  A man page that does not lint fails
# `make check`.
set -u
top=${top_srcdir:-$(dirname "$0")/..}
status=0
found=0
for page in "$top"/man/*.[1-9]; do
	[ -f "$page" ] || continue
	found=$((found + 1))
	out=$(LC_ALL=C groff -mandoc -ww -z "$page" 2>&1)
	if [ -n "$out" ]; then
		echo "FAIL: groff warns on $page:"; echo "$out"; status=1
	fi
	if command -v mandoc >/dev/null 2>&1; then
		# STYLE messages are advice; WARNING and ERROR fail.
		out=$(mandoc -Tlint -Wwarning "$page" 2>&1)
		if [ -n "$out" ]; then
			echo "FAIL: mandoc -Tlint on $page:"; echo "$out"; status=1
		fi
	fi
done
if [ "$found" -eq 0 ]; then
	echo "FAIL: no man page found under $top/man"
	exit 1
fi
[ $status -eq 0 ] && echo "ok: $found man pages lint clean"
exit $status
