#!/usr/bin/env bash
# Profiles the gateway with perf (cpu-clock sampling, DWARF call graphs)
# during three scenarios, one wsgate --workers 1 process each:
#   connect    CONNECT_N connections (kept open) through a $connect route
#   roundtrip  100 connections, one message in flight each, DUR seconds
#   post       POST_C (1,000) connections, POSTERS (4) keep-alive posters, DUR seconds
# and prints, per scenario, the top functions by self samples and the top
# inclusive (children) entries. Raw perf.data and reports stay in OUT.
#
#   clients/bench/profile.sh            # OUT=/tmp/wsprofile, about 1 minute
#
# Environment: WSGATE_BIN (default /work/main/build/wsgate), WORKERS (1),
# DUR (5), CONNECT_N (10000), FREQ (perf sampling Hz, 1999), OUT, TOP (25).
# Needs perf (Debian: linux-perf) and kernel.perf_event_paranoid <= 2 as root.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WSGATE_BIN=${WSGATE_BIN:-/work/main/build/wsgate}
WORKERS=${WORKERS:-1}
DUR=${DUR:-5}
CONNECT_N=${CONNECT_N:-10000}
FREQ=${FREQ:-1999}
OUT=${OUT:-/tmp/wsprofile}
TOP=${TOP:-25}
command -v perf >/dev/null || { echo "perf missing: apt-get install -y linux-perf" >&2; exit 1; }
mkdir -p "$OUT"
STARTED=()
cleanup() { local p; for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
make -s -C "$HERE" || exit 1
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

FB_PORT=${FB_PORT:-23900}
while port_open "$FB_PORT"; do FB_PORT=$((FB_PORT + 1)); done
"$HERE/fastbackend" --port "$FB_PORT" --threads "$(nproc)" 2>/dev/null &
FB_PID=$!; STARTED+=("$FB_PID")
for _ in $(seq 1 50); do port_open "$FB_PORT" && break; sleep 0.05; done
API=$OUT/api.json
printf '{"name":"bench","stage":"dev","integrations":{"b":{"type":"AWS_PROXY","uri":"http://127.0.0.1:%s/"}},"routes":{"$connect":{"integration":"b"},"$default":{"integration":"b","routeResponse":true}}}\n' "$FB_PORT" > "$API"

start_wsgate() {
	rm -rf "$OUT/data"
	"$WSGATE_BIN" --routes "$API" --listen 127.0.0.1:0 --mgmt-listen 127.0.0.1:0 \
		--data "$OUT/data" --workers "$WORKERS" --log-level warn 2>"$OUT/wsgate.err" &
	GW=$!; STARTED+=("$GW")
	for _ in $(seq 1 100); do grep -q '(management)' "$OUT/wsgate.err" 2>/dev/null && break; sleep 0.05; done
	GW_PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\) (gateway).*/\1/p' "$OUT/wsgate.err" | head -1)
	GW_MGMT=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\) (management).*/\1/p' "$OUT/wsgate.err" | head -1)
}
stop_wsgate() { kill "$GW" 2>/dev/null; wait "$GW" 2>/dev/null; }

profile() { # name wsload-args...
	local name=$1 perf_pid a args=()
	shift
	start_wsgate
	for a in "$@"; do args+=("${a//@MGMT@/127.0.0.1:$GW_MGMT}"); done
	curl -s -X POST "http://127.0.0.1:$FB_PORT/reset" >/dev/null 2>&1
	perf record -F "$FREQ" --call-graph dwarf,16384 -p "$GW" -o "$OUT/$name.data" 2>"$OUT/$name.perf.err" &
	perf_pid=$!
	sleep 0.3
	timeout 120 "$HERE/wsload" "${args[@]}" --port "$GW_PORT" --cpu-pid "$GW" --label "wsgate_w$WORKERS" \
		2>/dev/null | tail -1 | tee "$OUT/$name.wsload"
	kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null
	stop_wsgate
	perf report -i "$OUT/$name.data" --no-children --stdio --sort symbol -g none --percent-limit 0.5 \
		2>/dev/null > "$OUT/$name.self.txt"
	perf report -i "$OUT/$name.data" --children --stdio --sort symbol -g none --percent-limit 3 \
		2>/dev/null > "$OUT/$name.children.txt"
	perf report -i "$OUT/$name.data" --no-children --stdio --sort symbol -g caller,0.5,callee,function,percent \
		--percent-limit 2 2>/dev/null > "$OUT/$name.callgraph.txt"
	echo "== $name: top functions, self % of gateway samples"
	grep -E '^ +[0-9.]+%' "$OUT/$name.self.txt" | head -"$TOP"
	echo "== $name: inclusive (children) %"
	grep -E '^ +[0-9.]+%' "$OUT/$name.children.txt" | head -"$TOP"
	echo
}

profile connect connect -n "$CONNECT_N" -c 100 --timeout 60
profile roundtrip roundtrip -c 100 -s 32 -d "$DUR" --warmup 1 --hs 100
profile post post -c ${POST_C:-1000} -s 32 -d "$DUR" --posters ${POSTERS:-4} --hs 100 --ids "127.0.0.1:$FB_PORT" --mgmt @MGMT@
echo "reports and perf.data in $OUT"
