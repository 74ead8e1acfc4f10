#!/usr/bin/env bash
# Installs what is needed, builds, and starts the chat example: its backend
# (clients/examples/chat/server.mjs) and the gateway with routes/chat.json.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target wsgate
PORT=9000 MGMT_URL=http://127.0.0.1:8081/dev node clients/examples/chat/server.mjs &
backend=$!
trap 'kill $backend 2>/dev/null' EXIT
cat <<'MSG'

  Chat:            open http://127.0.0.1:8080/chat/ in two browser tabs
  WebSocket:       ws://127.0.0.1:8080/chat?name=YOU
  Management API:  http://127.0.0.1:8081/dev/@connections/{id}

MSG
./build/wsgate --routes routes/chat.json --listen 0.0.0.0:8080 --mgmt-listen 127.0.0.1:8081 --data ./data
