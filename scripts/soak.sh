#!/usr/bin/env bash
# The long run of the reliability scenarios (issue 11, tests/soak/):
# churn with closes-after-send against one gateway for the whole run (RSS,
# descriptors and the LMDB data file sampled every 10 s), and every ~5
# minutes kill -9 + restart, SIGTERM with a slow backend, and killed
# registry readers on gateways of their own; then a summary table.
# Loopback only; stops by itself.
#
#   scripts/soak.sh [MINUTES]          # default 30
#   nice scripts/soak.sh 15
#
# It builds the release binary (CMake, RelWithDebInfo, in $BUILD_DIR,
# default build/) and runs a copy of it, so that a rebuild during the run
# cannot change the binary under test. Environment: BUILD_DIR, SKIP_BUILD=1,
# SOAK_JSON=FILE (the books as JSON as well). Exits 1 when anything was lost.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-30}
BUILD_DIR=${BUILD_DIR:-build}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target wsgate >/dev/null
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsgate-soak-bin.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cp "$BUILD_DIR/wsgate" "$TMP/wsgate"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The run ends by itself after MINUTES; timeout is only a backstop.
# (sed drops the empty TAP summary node:test prints for the shared helpers.)
timeout --signal=TERM $(( ${MINUTES%.*} * 60 + 600 )) \
  env WSGATE_BIN="$TMP/wsgate" SOAK_BIN_LABEL="$BUILD_DIR/wsgate" node tests/soak/long.mjs --minutes "$MINUTES" ${SOAK_JSON:+--json "$SOAK_JSON"} \
  | sed -u -e '/^TAP version/d' -e '/^1\.\.0$/d' -e '/^# \(tests\|suites\|pass\|fail\|cancelled\|skipped\|todo\|duration_ms\) /d'
