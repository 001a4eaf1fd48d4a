#!/bin/sh
# utils/dev.sh - the two README commands on a fresh Debian machine.
#
#   utils/dev.sh start   install what is missing, build, stop an earlier
#                        cluckd on /cluck, start a one-node cluckd there
#   utils/dev.sh test    install what is missing, build with sanitizers and
#                        -Werror, run the whole test suite (what .ci/run calls)
#
# It must never: touch anything outside the checkout but Debian packages,
# the /cluck mount point and the installed-nowhere build; or ask questions
# (CI runs it with no standard input).
set -eu

usage() {
	echo "usage: $0 start|test [MOUNTPOINT]" >&2
	exit 2
}

[ $# -ge 1 ] || usage
cmd=$1
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# What the build and the tests need on a fresh Debian 12:
#   libfuse3-dev libsodium-dev libnl-3-dev libnl-route-3-dev   cluckd itself
#   libcunit1-dev                                              unit tests
#   clang libclang-rt-14-dev   fuzz targets under libFuzzer (without them
#                              configure falls back to a plain driver)
#   iproute2 nftables          cluster tests: network namespaces and links
#                              cut (ip), partitions (nft)
#   util-linux                 flock, nsenter, setpriv
#   attr e2fsprogs             getfattr/setfattr; chattr/lsattr (failing closed)
#   liblockfile-bin lockfile-progs python3   lock tools the tests exercise
#   groff-base mandoc          man page lint
PKGS="build-essential autoconf automake libtool pkg-config libfuse3-dev fuse3
libcunit1-dev libsodium-dev libnl-3-dev libnl-route-3-dev attr e2fsprogs
util-linux procps psmisc python3 groff-base mandoc iproute2 nftables
liblockfile-bin lockfile-progs clang libclang-rt-14-dev"

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "$0: run as root: cluckd mounts with allow_other" >&2
		exit 2
	fi
}

install_deps() {
	missing=""
	for p in $PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "== installing:$missing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends $missing </dev/null
	fi
	# The fuse module is usually loaded on demand; make sure it is there.
	[ -c /dev/fuse ] || modprobe fuse 2>/dev/null || true
}

configure_build() {
	# $@: extra configure flags.  Re-configure only when the flags change.
	flags="$*"
	[ -x configure ] || autoreconf -fi
	if [ ! -f Makefile ] || [ "$(cat .dev-configured 2>/dev/null)" != "$flags" ]; then
		# shellcheck disable=SC2086
		./configure -q $flags
		echo "$flags" > .dev-configured
	fi
	make -j"$(nproc)" >/dev/null
}

case "$cmd" in
start)
	need_root
	mnt=${2:-/cluck}
	install_deps
	configure_build CFLAGS=-O2
	# Stop an earlier cluckd on this mount point, dead or alive.
	if pid=$(pgrep -f "cluckd .*$mnt\$" 2>/dev/null | head -n 1) && [ -n "$pid" ]; then
		echo "== stopping the earlier cluckd (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
	fi
	if grep -q " $mnt fuse" /proc/self/mounts 2>/dev/null; then
		fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	fi
	[ -d "$mnt" ] || mkdir -p "$mnt"
	./cluckd "$mnt"
	i=0
	until grep -q " $mnt fuse" /proc/self/mounts; do
		i=$((i+1)); [ $i -lt 50 ] || { echo "cluckd did not mount $mnt" >&2; exit 1; }
		sleep 0.1
	done
	cat <<EOF

cluckd is running as a one-node cluster on $mnt.

  flock $mnt/backup -c 'echo I hold the lock'     cluster-wide lock around a command
  flock -n $mnt/backup true || echo busy          try, do not wait
  (set -C; echo \$\$ > $mnt/job) && echo mine       O_EXCL lockfile (rm it to release)
  setfattr -n user.cluck.slots -v 3 $mnt/pool     a semaphore of 3 (flock -s takes a slot)
  cat $mnt/status                                 who holds what, who waits
  getfattr -d -m user.cluck $mnt/backup           a file's token, holders, waiters

Stop it:  fusermount3 -u $mnt   (or kill -TERM \$(pgrep -x cluckd))
Manuals:  man ./man/cluckd.8   man ./man/cluckfs.5
EOF
	;;
test)
	need_root
	install_deps
	configure_build --enable-sanitize --enable-werror
	# Sanitizer settings for every test program and the daemon under test.
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	export ASAN_OPTIONS UBSAN_OPTIONS
	status=0
	make -j"$(nproc)" check || status=$?
	if [ $status -ne 0 ]; then
		echo "== failed tests, their logs:"
		for f in t/*.log; do
			case "$f" in *test-suite.log) continue ;; esac
			trs=${f%.log}.trs
			if [ -f "$trs" ] && grep -q '^:test-result: \(FAIL\|ERROR\)' "$trs"; then
				echo "---- $f"; tail -n 60 "$f"
			fi
		done
		exit $status
	fi
	# The release tarball builds and passes the whole suite on its own.
	if ! make distcheck >distcheck.out 2>&1; then
		tail -n 80 distcheck.out
		echo "== distcheck: FAILED"
		exit 1
	fi
	echo "== distcheck: ok"
	;;
*)
	usage
	;;
esac
