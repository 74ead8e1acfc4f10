#!/usr/bin/env bash
# Installs what is needed, builds, and starts the chat example: its backend
# (clients/examples/chat/server.mjs) and the gateway with routes/chat.json.
# Ctrl-C stops both.
#
# Ports, when 8080, 8081 or 9000 are taken (README, "Five-minute tour"):
#   WSGATE_PORT=8080  the gateway (WebSockets, REST, the chat page)
#   MGMT_PORT=8081    the management API (loopback)
#   CHAT_PORT=9000    the chat backend
set -euo pipefail
cd "$(dirname "$0")/.."
WSGATE_PORT=${WSGATE_PORT:-8080}
MGMT_PORT=${MGMT_PORT:-8081}
CHAT_PORT=${CHAT_PORT:-9000}
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target wsgate wsgate-cli
routes=routes/chat.json
if [ "$CHAT_PORT" != 9000 ]; then
  # routes/chat.json names the backend on port 9000: a copy names CHAT_PORT.
  routes=build/chat-$CHAT_PORT.json
  sed "s#127.0.0.1:9000/#127.0.0.1:$CHAT_PORT/#" routes/chat.json > "$routes"
fi
# The backend in a session of its own: Ctrl-C reaches the gateway only,
# which closes its connections and sends their $disconnect to the backend
# before it exits; then the trap stops the backend.
PORT=$CHAT_PORT MGMT_URL=http://127.0.0.1:$MGMT_PORT/dev setsid node clients/examples/chat/server.mjs &
backend=$!
trap 'kill $backend 2>/dev/null' EXIT
cat <<MSG

  Chat:            open http://127.0.0.1:$WSGATE_PORT/chat/ in two browser tabs
  WebSocket:       ws://127.0.0.1:$WSGATE_PORT/chat?name=YOU
  Management API:  http://127.0.0.1:$MGMT_PORT/dev/@connections/{id}

MSG
./build/wsgate --routes "$routes" --listen 0.0.0.0:$WSGATE_PORT --mgmt-listen 127.0.0.1:$MGMT_PORT --data ./data
