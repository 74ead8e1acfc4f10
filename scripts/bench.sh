#!/usr/bin/env bash
# Runs the whole benchmark suite on Debian 12, bounded in time (10 minutes):
#   1. scripts/install-deps.sh (build dependencies), then pushpin, wrk and
#      nginx with apt-get if missing (nginx only as run.sh's own foreground
#      reverse proxy, never the system service);
#   2. builds wsgate (CMake, RelWithDebInfo, in build-bench/) and the tools
#      (make -C clients/bench);
#   3. raises the open-file limit as far as allowed;
#   4. runs clients/bench/run.sh with WSGATE_BIN pointing at that binary
#      (a copy in the run's temp folder, so a concurrent rebuild cannot
#      change it mid-run) and prints its table.
#
#   scripts/bench.sh                 # everything
#   DUR=3 NO_PUSHPIN=1 scripts/bench.sh
#
# Environment: BENCH_TIMEOUT (seconds for run.sh, default 540), BUILD_DIR
# (default build-bench), SKIP_DEPS=1 (no apt-get), and everything run.sh
# reads (DUR, WORKERS, CONNECT_N, CONNECT_SIZES, IDLE_N, IDLE_N2, TLS_IDLE_N,
# REST_ROUNDS, SIZE, ONLY, NO_PUSHPIN, NO_NGINX, KEEP...).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
T0=$(date +%s)
BENCH_TIMEOUT=${BENCH_TIMEOUT:-540}
BUILD_DIR=${BUILD_DIR:-build-bench}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ "${SKIP_DEPS:-0}" != 1 ]; then
	scripts/install-deps.sh
	want=()
	for p in pushpin wrk nginx; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want+=("$p")
	done
	if [ ${#want[@]} -gt 0 ]; then
		echo "bench: apt-get install ${want[*]}"
		$SUDO apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${want[@]}"
	fi
	# The Debian packages may start system-wide services; they are left
	# alone: the suite runs its own nginx (own prefix, loopback port, in the
	# foreground) and its own Pushpin.
	if command -v systemctl >/dev/null && systemctl is-active -q nginx 2>/dev/null; then
		echo "bench: note: a system nginx service is running; the suite runs its own on a loopback port"
	fi
	if command -v systemctl >/dev/null && systemctl is-active -q pushpin 2>/dev/null; then
		echo "bench: note: a system Pushpin service is running (ports 7999/5561); the suite uses its own ports"
	fi
fi

echo "bench: building wsgate ($BUILD_DIR, RelWithDebInfo) and clients/bench"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target wsgate >/dev/null
make -s -C clients/bench

BIN_DIR=$(mktemp -d /tmp/wsgate-bench-bin.XXXXXX)
trap 'rm -rf "$BIN_DIR"' EXIT
cp "$BUILD_DIR/wsgate" "$BIN_DIR/wsgate"

# As many open files as allowed (50,000 idle connections need > 51,000).
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "bench: open-file limit $(ulimit -n) (hard $(ulimit -Hn)), $(nproc) cores," \
	"wsgate $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), setup $(( $(date +%s) - T0 ))s"

# run.sh stops everything it started on exit (SIGTERM from timeout included).
rc=0
WSGATE_BIN="$BIN_DIR/wsgate" timeout -k 20 "$BENCH_TIMEOUT" clients/bench/run.sh || rc=$?
[ $rc -eq 124 ] && echo "bench: run.sh stopped after ${BENCH_TIMEOUT}s" >&2
echo "bench: total $(( $(date +%s) - T0 ))s"
exit $rc
