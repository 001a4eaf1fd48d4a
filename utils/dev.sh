#!/bin/sh
# utils/dev.sh - the two README commands on a fresh Debian machine.
#
#   utils/dev.sh start   install what is missing, build, stop the cluckd an
#                        earlier start left on /cluck, start a one-node
#                        cluckd there
#   utils/dev.sh stop    stop the cluckd that start left on /cluck (its
#                        holders get its --stop-timeout to finish)
#   utils/dev.sh test    install what is missing, build with sanitizers and
#                        -Werror, run the whole test suite (what .ci/run calls)
#
# start and stop take another mount point as a second argument.  start runs
# cluckd in the foreground, detached, logging to .dev-cluckd-MNT.log, and
# records its pid and start time in .dev-cluckd-MNT.pid (MNT: the mount point
# with every character but letters, digits, '.', '-' turned into '_'); stop
# signals only a process that is still that cluckd (same start time, this
# checkout's binary, that mount point), never any other cluckd of the host.
# For t/dev-stop.sh: DEV_RUN_DIR (where those files go, default the
# checkout), DEV_CLUCKD (the binary, default ./cluckd), DEV_CLUCKD_OPTS
# (more options for it), DEV_NO_BUILD=1 (no package installation, no
# build).
#
# It must never: touch anything outside the checkout but Debian packages,
# the /cluck mount point and the installed-nowhere build; signal a process
# it did not start; or ask questions (CI runs it with no standard input).
set -eu

usage() {
	echo "usage: $0 start|stop|test [MOUNTPOINT]" >&2
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

# ---- the instance start left: pid file, checks, careful stop -----------------

run_dir=${DEV_RUN_DIR:-$top}
cluckd_bin=${DEV_CLUCKD:-$top/cluckd}

# files MNT: sets pidfile and logfile for mount point MNT.
files() {
	key=$(printf '%s' "$1" | tr -c 'A-Za-z0-9.-' '_')
	pidfile=$run_dir/.dev-cluckd-$key.pid
	logfile=$run_dir/.dev-cluckd-$key.log
}

# starttime PID: field 22 of /proc/PID/stat (clock ticks after boot).
starttime() {
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20
}

# running PID START: PID is still the process started at START, not a
# zombie (nobody may reap it soon: its parent, this script, is gone).
running() {
	set -- "$1" "$2" "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
	[ -n "$3" ] && [ "$3" != Z ] && [ "$3" != X ] && [ "$(starttime "$1")" = "$2" ]
}

# ours MNT: 0 when the pid file names a process that is still the cluckd
# start left on MNT: the same start time (a pid is reused), this checkout's
# binary (a rebuild leaves it "(deleted)"), MNT as its last argument.  Sets
# pid.
ours() {
	pid=
	[ -r "$pidfile" ] || return 1
	read -r pid st mnt_rec < "$pidfile" || [ -n "$pid" ] || return 1
	case $pid in ''|*[!0-9]*) return 1 ;; esac
	running "$pid" "$st" || return 1
	[ "$mnt_rec" = "$1" ] || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	[ "${exe% (deleted)}" = "$(readlink -f "$cluckd_bin")" ] || return 1
	last=$(tr '\0' '\n' < "/proc/$pid/cmdline" | tail -n 1)
	[ "$last" = "$1" ]
}

# stop_ours MNT: SIGTERM to our cluckd on MNT; waits while its holders
# finish (cluckd bounds that by its --stop-timeout) and shows the stop.
stop_ours() {
	echo "== stopping the cluckd on $1 (pid $pid); its lock holders get its --stop-timeout"
	kill -TERM "$pid"
	shown='' i=0 limit=150
	while running "$pid" "$st"; do
		line=$(sed -n 's/^stopping: //p' "$1/status" 2>/dev/null || true)
		if [ -n "$line" ]; then
			# Waiting for holders: cluckd ends the wait itself.
			left=${line%% s left*}
			case $left in *[!0-9]*|'') left=0 ;; esac
			limit=$((i + left * 10 + 150))
			[ "$line" = "$shown" ] || [ $((i % 20)) != 0 ] || { echo "   $line"; shown=$line; }
		fi
		i=$((i + 1))
		if [ $i -gt $limit ]; then
			echo "$0: cluckd (pid $pid) did not exit; see $logfile" >&2
			exit 1
		fi
		sleep 0.1
	done
	rm -f "$pidfile"
}

# others MNT: the pids of the cluckd processes whose last argument is MNT
# (for a message: they are not ours to signal).
others() {
	for d in /proc/[0-9]*; do
		[ "$(basename "$(readlink "$d/exe" 2>/dev/null | sed 's/ (deleted)$//')")" = cluckd ] || continue
		[ "$(tr '\0' '\n' < "$d/cmdline" 2>/dev/null | tail -n 1)" = "$1" ] && printf ' %s' "${d#/proc/}"
	done
	return 0
}

# served MNT: 0 when a live FUSE mount answers on MNT.
served() {
	grep -q " $1 fuse" /proc/self/mounts 2>/dev/null && stat "$1/status" >/dev/null 2>&1
}

case "$cmd" in
start)
	need_root
	mnt=${2:-/cluck}
	case $mnt in /*) ;; *) mnt=$(pwd)/$mnt ;; esac
	if [ "${DEV_NO_BUILD:-}" != 1 ]; then
		install_deps
		configure_build CFLAGS=-O2
	fi
	files "$mnt"
	# The cluckd an earlier start left here stops the careful way; any
	# other cluckd serving it is not ours to stop.
	if ours "$mnt"; then
		stop_ours "$mnt"
	elif served "$mnt"; then
		echo "$0: a cluckd that utils/dev.sh did not start here serves $mnt (pid$(others "$mnt")); stop it first: kill -TERM PID" >&2
		exit 1
	fi
	# A dead mount (a cluckd that died) is cleared.
	if grep -q " $mnt fuse" /proc/self/mounts 2>/dev/null && ! served "$mnt"; then
		fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	fi
	[ -d "$mnt" ] || mkdir -p "$mnt"
	# In the foreground, detached: $! is cluckd itself, recorded for stop.
	# shellcheck disable=SC2086
	setsid "$cluckd_bin" -f ${DEV_CLUCKD_OPTS:-} "$mnt" >>"$logfile" 2>&1 </dev/null &
	pid=$!
	i=0
	until served "$mnt"; do
		i=$((i+1))
		if [ $i -ge 100 ] || ! kill -0 "$pid" 2>/dev/null; then
			echo "cluckd did not mount $mnt; its log, $logfile:" >&2
			tail -n 5 "$logfile" >&2
			exit 1
		fi
		sleep 0.1
	done
	printf '%s %s %s\n' "$pid" "$(starttime "$pid")" "$mnt" > "$pidfile"
	cat <<EOF

cluckd is running as a one-node cluster on $mnt.

  flock $mnt/backup -c 'echo I hold the lock'     cluster-wide lock around a command
  flock -n $mnt/backup true || echo busy          try, do not wait
  (set -C; echo \$\$ > $mnt/job) && echo mine       O_EXCL lockfile (rm it to release)
  setfattr -n user.cluck.slots -v 3 $mnt/pool     a semaphore of 3 (flock -s takes a slot)
  cat $mnt/status                                 who holds what, who waits
  getfattr -d -m user.cluck $mnt/backup           a file's token, holders, waiters

Stop it:  utils/dev.sh stop$( [ "$mnt" = /cluck ] || printf ' %s' "$mnt")   (lock holders get its --stop-timeout to finish)
Log:      $logfile
Manuals:  man ./man/cluckd.8   man ./man/cluckfs.5
EOF
	;;
stop)
	need_root
	mnt=${2:-/cluck}
	case $mnt in /*) ;; *) mnt=$(pwd)/$mnt ;; esac
	files "$mnt"
	if ours "$mnt"; then
		stop_ours "$mnt"
		echo "== stopped"
	elif served "$mnt"; then
		echo "$0: the cluckd serving $mnt (pid$(others "$mnt")) was not started by utils/dev.sh here; not stopping it" >&2
		exit 1
	else
		rm -f "$pidfile"
		echo "== no cluckd started by utils/dev.sh runs on $mnt"
	fi
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
