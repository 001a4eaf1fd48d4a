#!/bin/sh
# t/check-layers.sh - keeps the product folders' #include arrows pointing
# one way: daemon -> fs -> node -> net -> proto, and lockcore apart.
#
# Reads every #include of daemon/ fs/ node/ net/ proto/ lockcore/ and fails
# (exit 1, printing each offending line) on an arrow the table below does
# not allow:
#  - a folder may include its own headers and those of any folder of a
#    lower rank; "config.h" (configure's) is allowed everywhere;
#  - lockcore includes only lockcore (t/check-purity.sh checks the rest of
#    its purity); daemon, fs and node may include any lockcore header, net
#    and proto only lockcore/le.h (header-only byte helpers: they link no
#    lockcore code for it);
#  - nothing includes daemon/ (the composition root) but daemon itself;
#  - proto/ is pure wire code: no socket, event loop, thread, FUSE or
#    netlink header (<...>) either.
# A file outside its folder's room could be ranked by OVERRIDES (none is
# today).  Before reading the tree it checks itself on a few arrows with known verdicts.
# Comments are not parsed: an "#include" at the start of a comment line
# would be read (none is).  It must never modify the tree; POSIX sh and
# awk only.
set -u
top=${top_srcdir:-$(dirname "$0")/..}

# The rule table: folder and rank, higher includes lower.
RANKS='daemon:5 fs:4 node:3 net:2 proto:1'
# Files whose folder is not yet their room: path:folder.
OVERRIDES=''
# Headers of lockcore that net/ and proto/ may include.
LOCKCORE_SHARED='lockcore/le.h'
# System headers proto/ must not include (an awk regex on the name).
PROTO_DENY='^(sys/(socket|epoll|poll|select|signalfd|timerfd|eventfd|un)\.h|poll\.h|netinet/|arpa/|netdb\.h|net/|ifaddrs\.h|pthread\.h|fuse|netlink/|linux/)'

# Reads "path:line:text" lines; prints each bad arrow, exits 1 if any.
check() {
	awk -v ranks="$RANKS" -v overrides="$OVERRIDES" \
	    -v shared="$LOCKCORE_SHARED" -v deny="$PROTO_DENY" '
	BEGIN {
		n = split(ranks, a, " ")
		for (i = 1; i <= n; i++) {
			split(a[i], kv, ":")
			rank[kv[1]] = kv[2] + 0
		}
		n = split(overrides, a, " ")
		for (i = 1; i <= n; i++) {
			split(a[i], kv, ":")
			over[kv[1]] = kv[2]
		}
		n = split(shared, a, " ")
		for (i = 1; i <= n; i++)
			lcshared[a[i]] = 1
		bad = 0
	}
	function folder(path,   f) {
		if (path in over)
			return over[path]
		f = path
		sub(/\/.*$/, "", f)
		return f
	}
	function report(why) {
		print file ":" lno ": " why ": " text
		bad = 1
	}
	{
		file = $0; sub(/:.*$/, "", file)
		rest = substr($0, length(file) + 2)
		lno = rest; sub(/:.*$/, "", lno)
		text = substr(rest, length(lno) + 2)
		if (text !~ /^[ \t]*#[ \t]*include/)
			next
		from = folder(file)
		h = text
		sub(/^[ \t]*#[ \t]*include[ \t]*/, "", h)
		if (h ~ /^</) {
			name = h; sub(/^</, "", name); sub(/>.*$/, "", name)
			if (from == "proto" && name ~ deny)
				report("proto/ is pure wire code: no OS plumbing header")
			next
		}
		if (h !~ /^"/) {
			report("computed #include")
			next
		}
		name = h; sub(/^"/, "", name); sub(/".*$/, "", name)
		if (name == "config.h")
			next
		if (name !~ /\//) {
			# found next to the includer first: its own folder
			next
		}
		to = folder(name)
		if (to == from)
			next
		if (from == "lockcore")
			report("lockcore includes only lockcore")
		else if (to == "lockcore") {
			if ((from == "net" || from == "proto") && !(name in lcshared))
				report(from "/ may include only " shared " of lockcore")
		} else if (to == "daemon")
			report("nothing includes daemon/")
		else if (!(from in rank) || !(to in rank))
			report("not a product folder of the rule table")
		else if (rank[from] <= rank[to])
			report("against daemon -> fs -> node -> net -> proto")
	}
	END { exit bad }
	'
}

# The check checks itself: each of these lines is one verdict.
selftest_bad='net/peer.c:1:#include "fs/fs.h"
proto/seal.c:2:#include "net/log.h"
proto/seal.c:3:#include <sys/socket.h>
proto/nmsg.c:4:#include "lockcore/lc.h"
net/store.c:5:#include "node/node.h"
fs/fs.c:6:#include "daemon/options.h"
lockcore/raft.c:7:#include "proto/seal.h"
node/rx.c:8:#include "fs/fs.h"
fs/fs.c:9:#include "t/linz.h"'
selftest_good='daemon/cluckd.c:1:#include "fs/fs.h"
daemon/cluckd.c:2:#include "lockcore/raft.h"
fs/fs.c:3:#include "node/node.h"
node/engine.c:4:#include "net/peer.h"
node/own.c:5:#include "lockcore/lease.h"
net/peer.c:6:#include "proto/seal.h"
net/store.c:7:#include "lockcore/le.h"
proto/seal.c:8:#include "lockcore/le.h"
proto/seal.c:9:#include <sodium.h>
node/rx.c:10:#include "net/peer.h"
lockcore/raft.c:11:#include "lockcore/le.h"'
nbad=$(printf '%s\n' "$selftest_bad" | check | wc -l)
want=$(printf '%s\n' "$selftest_bad" | wc -l)
if [ "$nbad" -ne "$want" ]; then
	echo "FAIL: self-test: $nbad of $want bad arrows caught"
	exit 1
fi
if ! out=$(printf '%s\n' "$selftest_good" | check); then
	echo "FAIL: self-test: allowed arrows refused:"
	echo "$out"
	exit 1
fi

cd "$top" || exit 1
files=
for d in daemon fs node net proto lockcore; do
	for f in "$d"/*.c "$d"/*.h; do
		[ -f "$f" ] && files="$files $f"
	done
done
if [ -z "$files" ]; then
	echo "FAIL: no product sources under $top"
	exit 1
fi
# shellcheck disable=SC2086 # $files is a list of paths without spaces
if grep -n -H '^[ 	]*#[ 	]*include' $files | check; then
	echo "ok: the folders include one way ($(echo $files | wc -w) files)"
	exit 0
fi
echo "FAIL: an #include against daemon -> fs -> node -> net -> proto (lockcore apart)"
exit 1
