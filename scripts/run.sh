#!/usr/bin/env bash
# Installs dependencies, builds, and starts the example backend and the
# gateway with routes/example.json. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target wsgate
PORT=9000 node clients/examples/backend.mjs &
backend=$!
trap 'kill $backend 2>/dev/null' EXIT
echo "Gateway: ws://127.0.0.1:8080/   management API: http://127.0.0.1:8081/dev/@connections/{id}"
./build/wsgate --routes routes/example.json --listen 0.0.0.0:8080 --mgmt-listen 127.0.0.1:8081 --data ./data
