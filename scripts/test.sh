#!/usr/bin/env bash
# Installs dependencies, builds (plain and ASan+UBSan) and runs every suite
# through ctest: C unit tests and the end-to-end tests against both builds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
cd build && ctest --output-on-failure "$@"
