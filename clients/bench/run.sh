#!/usr/bin/env bash
# The wsgate benchmark suite: bare libwebsockets echo (the ceiling), wsgate,
# and Pushpin if installed, side by side on loopback. Bounded in time
# (about 4 minutes with the defaults, at most 10), prints one table.
#
#   clients/bench/run.sh
#
# Environment:
#   WSGATE_BIN   gateway binary (default /work/main/build/wsgate)
#   DUR          seconds measured per throughput scenario (default 5)
#   CONNECT_N    connections for the connect scenario (default 5000)
#   IDLE_N       idle connections (default 10000); IDLE_N2 (default 50000)
#                runs too when the file-descriptor limit allows it
#   SIZE         message size in bytes (default 32)
#   NO_PUSHPIN=1 skip Pushpin even if installed
#   KEEP=1       keep the temporary folder (logs, raw results)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WSGATE_BIN=${WSGATE_BIN:-/work/main/build/wsgate}
DUR=${DUR:-5}
CONNECT_N=${CONNECT_N:-5000}
IDLE_N=${IDLE_N:-10000}
IDLE_N2=${IDLE_N2:-50000}
SIZE=${SIZE:-32}
NCPU=$(nproc)
TMP=$(mktemp -d /tmp/wsbench.XXXXXX)
RESULTS=$TMP/results.txt
: > "$RESULTS"
STARTED=()
T_START=$(date +%s)

log() { printf '[%4ds] %s\n' $(( $(date +%s) - T_START )) "$*" >&2; }

# ---- process control: everything started here is stopped on exit ----
stop_pid() {
	local p=$1 kids
	kids=$(pgrep -P "$p" 2>/dev/null | tr '\n' ' ')
	kill "$p" 2>/dev/null
	for _ in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$p" 2>/dev/null
	for k in $kids; do kill "$k" 2>/dev/null; done
	wait "$p" 2>/dev/null
	return 0
}
cleanup() {
	local p
	for p in "${STARTED[@]}"; do stop_pid "$p"; done
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port [seconds]
	local i
	for i in $(seq 1 $(( ${2:-5} * 20 ))); do port_open "$1" && return 0; sleep 0.05; done
	return 1
}
NEXT_PORT=${BASE_PORT:-23100}
free_port() { # a port nothing listens on (SO_REUSEPORT would share it)
	while port_open "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
	FREE=$NEXT_PORT
	NEXT_PORT=$((NEXT_PORT + 1))
}

# ---- limits ----
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
log "open-file limit: $NOFILE (hard $(ulimit -Hn)); cores: $NCPU"

make -s -C "$HERE" || { echo "build failed" >&2; exit 1; }
WSLOAD=$HERE/wsload

# ---- targets ----
start_backend() { # mode-args... ; sets FB_PID FB_PORT
	free_port
	FB_PORT=$FREE
	"$HERE/fastbackend" --port "$FB_PORT" --threads "$NCPU" "$@" 2>>"$TMP/fastbackend.log" &
	FB_PID=$!
	STARTED+=("$FB_PID")
	wait_port "$FB_PORT" || { echo "fastbackend did not start" >&2; exit 1; }
}

start_lwsecho() { # sets T_PID T_PORT T_PIDS
	free_port
	T_PORT=$FREE
	"$HERE/lwsecho" --port "$T_PORT" 2>>"$TMP/lwsecho.log" &
	T_PID=$!
	T_PIDS=$T_PID
	STARTED+=("$T_PID")
	wait_port "$T_PORT" || { echo "lwsecho did not start" >&2; exit 1; }
}

api_file() { # with_connect(0|1) backend_port -> path
	local f=$TMP/api-$1-$2.json connect=''
	[ "$1" = 1 ] && connect='"$connect":{"integration":"b"},'
	printf '{"name":"bench","stage":"dev","integrations":{"b":{"type":"AWS_PROXY","uri":"http://127.0.0.1:%s/"}},"routes":{%s"$default":{"integration":"b","routeResponse":true}}}\n' \
		"$2" "$connect" > "$f"
	echo "$f"
}

start_wsgate() { # api-file ; sets T_PID T_PORT T_MGMT T_PIDS
	local d
	d=$(mktemp -d "$TMP/wsgate.XXXX")
	"$WSGATE_BIN" --routes "$1" --listen 127.0.0.1:0 --mgmt-listen 127.0.0.1:0 \
		--data "$d/data" --log-level warn 2>"$d/stderr" &
	T_PID=$!
	T_PIDS=$T_PID
	STARTED+=("$T_PID")
	for _ in $(seq 1 100); do
		grep -q '(management)' "$d/stderr" 2>/dev/null && break
		sleep 0.05
	done
	T_PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\) (gateway).*/\1/p' "$d/stderr" | head -1)
	T_MGMT=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\) (management).*/\1/p' "$d/stderr" | head -1)
	[ -n "$T_PORT" ] && [ -n "$T_MGMT" ] || { echo "wsgate did not start:" >&2; cat "$d/stderr" >&2; exit 1; }
}

HAVE_PUSHPIN=0
if [ "${NO_PUSHPIN:-0}" != 1 ] && command -v pushpin >/dev/null && command -v condure >/dev/null &&
	command -v zurl >/dev/null; then
	HAVE_PUSHPIN=1
fi

# Pushpin with its own run folder and loopback ports; WebSocket-over-HTTP to
# fastbackend --pushpin; publish endpoint on T_MGMT. message_rate (a delivery
# throttle, default 2500/s) and message_hwm are raised so that the figure is
# Pushpin's capacity, not its throttle. Logging at warnings only, as wsgate.
start_pushpin() { # backend-port ; sets T_PID T_PORT T_MGMT T_PIDS
	local d p
	d=$(mktemp -d "$TMP/pushpin.XXXX")
	mkdir -p "$d/run" "$d/log"
	free_port; T_PORT=$FREE
	free_port; T_MGMT=$FREE
	local zin zsub zcmd
	free_port; zin=$FREE
	free_port; zsub=$FREE
	free_port; zcmd=$FREE
	echo "* 127.0.0.1:$1,over_http" > "$d/routes"
	cat > "$d/pushpin.conf" <<EOF
[global]
include={libdir}/internal.conf
rundir=$d/run
ipc_prefix=bench-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:$T_PORT
logdir=$d/log
log_level=1
client_buffer_size=8192
client_maxconn=$(( NOFILE > 60000 ? 60000 : NOFILE - 100 ))
condure_bin=condure
zurl_bin=zurl

[proxy]
routesfile=$d/routes
zurl_out_specs=ipc://{rundir}/{ipc_prefix}zurl-in
zurl_out_stream_specs=ipc://{rundir}/{ipc_prefix}zurl-in-stream
zurl_in_specs=ipc://{rundir}/{ipc_prefix}zurl-out
debug=false
auto_cross_origin=false
accept_x_forwarded_protocol=false
set_x_forwarded_protocol=proto-only
x_forwarded_for=
x_forwarded_for_trusted=
orig_headers_need_mark=
accept_pushpin_route=false
log_from=false
log_user_agent=false
sig_iss=pushpin
sig_key=changeme
upstream_key=
updates_check=off

[handler]
push_in_spec=tcp://127.0.0.1:$zin
push_in_sub_specs=tcp://127.0.0.1:$zsub
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port=$T_MGMT
push_in_http_max_headers_size=10000
push_in_http_max_body_size=1000000
stats_spec=ipc://{rundir}/{ipc_prefix}stats
command_spec=tcp://127.0.0.1:$zcmd
message_rate=1000000
message_hwm=1000000
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
EOF
	pushpin --config "$d/pushpin.conf" >"$d/runner.log" 2>&1 &
	T_PID=$!
	STARTED+=("$T_PID")
	wait_port "$T_PORT" 10 && wait_port "$T_MGMT" 10 || {
		echo "pushpin did not start:" >&2; cat "$d/runner.log" >&2; exit 1; }
	sleep 0.5
	T_PIDS=$T_PID
	for p in $(pgrep -P "$T_PID"); do T_PIDS="$T_PIDS,$p"; done
}

stop_target() { stop_pid "$T_PID"; }

# ---- measurements ----
record() { # scenario target wsload-line
	local line=$3
	[ -z "$line" ] && line="failed=1 note=no-result"
	echo "scenario=$1 target=$2 ${line#*target=* }" >> "$RESULTS"
	log "$1 $2: $line"
}
wsload() { timeout 120 "$WSLOAD" "$@" 2>>"$TMP/wsload.err" | tail -1; }

scenario_connect() { # label
	record "connect" "$1" "$(wsload connect --port "$T_PORT" -n "$CONNECT_N" -c "$HS" \
		--cpu-pid "$T_PIDS" ${AUX:+--aux-pid "$AUX"} --label "$1" --timeout 60)"
}
scenario_idle() { # label n
	local extra=''
	[ "$2" -gt 28000 ] && extra="--src-ips 4"
	record "idle_$2" "$1" "$(wsload idle --port "$T_PORT" -n "$2" -c "$HS" --hold 2 \
		--pid "$T_PIDS" --cpu-pid "$T_PIDS" --label "$1" --timeout 90 $extra)"
}
scenario_roundtrip() { # label conns
	record "roundtrip_c$2" "$1" "$(wsload roundtrip --port "$T_PORT" -c "$2" -s "$SIZE" \
		-d "$DUR" --warmup 1 --hs "$HS" --cpu-pid "$T_PIDS" ${AUX:+--aux-pid "$AUX"} --label "$1" --timeout 60)"
}
scenario_post() { # label conns extra-args...
	local l=$1 c=$2
	shift 2
	record "post_c$c" "$l" "$(wsload post --port "$T_PORT" -c "$c" -s "$SIZE" -d "$DUR" \
		--posters 4 --hs "$HS" --ids "127.0.0.1:$FB_PORT" --mgmt "127.0.0.1:$T_MGMT" \
		--cpu-pid "$T_PIDS" --aux-pid "$FB_PID" --label "$l" --timeout 60 "$@")"
}

# Backend capacity with wrk: a MESSAGE event POSTed, one connection per
# request as wsgate's integration client does (Connection: close), and
# keep-alive for reference.
scenario_backend() {
	command -v wrk >/dev/null || { log "wrk not installed: backend capacity skipped"; return; }
	local lua=$TMP/post.lua body c0 c1 out kind hdr
	body='{"requestContext":{"routeKey":"$default","eventType":"MESSAGE","connectionId":"AAAAAAAAAAAAAAAA"},"body":"abcdefghijklmnopqrstuvwxyzabcdef","isBase64Encoded":false}'
	printf 'wrk.method = "POST"\nwrk.body = [[%s]]\nwrk.headers["Content-Type"] = "application/json"\n' "$body" > "$lua"
	for kind in close keepalive; do
		hdr=()
		[ $kind = close ] && hdr=(-H "Connection: close")
		c0=$(awk '{print $14+$15}' "/proc/$FB_PID/stat")
		out=$(timeout 60 wrk -t1 -c50 -d"${DUR}s" --latency -s "$lua" "${hdr[@]}" "http://127.0.0.1:$FB_PORT/" 2>&1)
		c1=$(awk '{print $14+$15}' "/proc/$FB_PID/stat")
		echo "$out" > "$TMP/wrk-$kind.txt"
		echo "$out" | awk -v kind="$kind" -v c0="$c0" -v c1="$c1" -v hz="$(getconf CLK_TCK)" -v dur="$DUR" '
			function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000;
				if (v ~ /s$/) return v * 1e6; return v }
			/^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
			/requests in/ { n = $1 } /^Requests\/sec/ { rps = $2 }
			/Non-2xx|Socket errors/ { err = err $0 }
			END { cpu = (c1 - c0) / hz
				printf "scenario=backend_%s target=fastbackend ops=%d secs=%s ops_per_s=%.1f target_cpu_s=%.3f target_cpu_us_per_op=%.2f p50_us=%.0f p99_us=%.0f note=wrk_t1_c50%s\n",
					kind, n, dur, rps, cpu, n ? cpu * 1e6 / n : 0, p50, p99, err ? "_errors" : "" }' >> "$RESULTS"
		log "backend $kind: $(tail -1 "$RESULTS")"
	done
}

# REST hook: wsgate has no REST routes yet. When it does, set WSGATE_REST=1
# and fill in rest_api_file (a REST route to fastbackend --echo-raw).
scenario_rest() {
	if [ "${WSGATE_REST:-0}" != 1 ]; then
		echo "scenario=rest target=wsgate note=skipped_no_REST_routes_in_wsgate_yet" >> "$RESULTS"
		return
	fi
	log "REST scenario: not implemented yet (hook)"
}

# ---- the suite ----
# Handshakes in flight while opening connections: 100, but 50 for Pushpin,
# whose proxy answers 502 to part of the handshakes beyond that.
HS=100
log "backend"
start_backend
BACKEND_PORT=$FB_PORT
BACKEND_PID=$FB_PID
scenario_backend

log "lwsecho (ceiling)"
start_lwsecho; scenario_idle lwsecho "$IDLE_N"; stop_target
if [ "$NOFILE" -gt $((IDLE_N2 + 1000)) ]; then
	start_lwsecho; scenario_idle lwsecho "$IDLE_N2"; stop_target
fi
start_lwsecho
scenario_connect lwsecho
stop_target; start_lwsecho
for c in 1 100 1000; do scenario_roundtrip lwsecho $c; done
stop_target

log "wsgate ($WSGATE_BIN)"
API0=$(api_file 0 "$BACKEND_PORT")
API1=$(api_file 1 "$BACKEND_PORT")
start_wsgate "$API1"; scenario_idle wsgate "$IDLE_N"; stop_target
if [ "$NOFILE" -gt $((IDLE_N2 + 1000)) ]; then
	start_wsgate "$API1"; scenario_idle wsgate "$IDLE_N2"; stop_target
fi
start_wsgate "$API0"; scenario_connect wsgate_no_connect; stop_target
AUX=$BACKEND_PID
start_wsgate "$API1"; scenario_connect wsgate; stop_target
start_wsgate "$API1"
for c in 1 100 1000; do scenario_roundtrip wsgate $c; done
unset AUX
FB_PORT=$BACKEND_PORT FB_PID=$BACKEND_PID
scenario_post wsgate 100
scenario_post wsgate 1000
stop_target
scenario_rest

if [ "$HAVE_PUSHPIN" = 1 ]; then
	log "pushpin ($(pushpin --version 2>&1 | head -1))"
	HS=50
	start_backend --pushpin
	PP_FB_PORT=$FB_PORT PP_FB_PID=$FB_PID
	start_pushpin "$PP_FB_PORT"; scenario_idle pushpin "$IDLE_N"; stop_target
	AUX=$PP_FB_PID
	start_pushpin "$PP_FB_PORT"; scenario_connect pushpin; stop_target
	start_pushpin "$PP_FB_PORT"
	for c in 1 100 1000; do scenario_roundtrip pushpin $c; done
	unset AUX
	scenario_post pushpin 100 --pushpin
	stop_target
else
	log "pushpin not installed: skipped (apt-get install pushpin)"
fi

# ---- the table ----
echo
echo "wsgate benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $NCPU cores, $(uname -r), loopback;" \
	"message size $SIZE B, ${DUR}s per throughput figure; CPU = target's user+sys per operation"
awk '
function kv(line, k,   m) { if (match(line, "(^| )" k "=[^ ]*")) { m = substr(line, RSTART, RLENGTH);
	sub(/^ /, "", m); return substr(m, length(k) + 2) } return "" }
{
	s = kv($0, "scenario"); t = kv($0, "target")
	rows[++n] = $0
	thr[s, t] = kv($0, "ops_per_s"); cpu[s, t] = kv($0, "target_cpu_us_per_op")
	rss[s, t] = kv($0, "rss_per_conn_b")
}
END {
	fmt = "%-16s %-18s %12s %9s %9s %11s %9s  %s\n"
	printf fmt, "scenario", "target", "ops/s", "p50 us", "p99 us", "CPU us/op", "RSS B/c", "notes"
	for (i = 1; i <= n; i++) {
		r = rows[i]; s = kv(r, "scenario"); note = ""
		if (kv(r, "failed") != "" && kv(r, "failed") != "0") note = note "failed=" kv(r, "failed") " "
		if (kv(r, "closed") != "" && kv(r, "closed") != "0") note = note "closed=" kv(r, "closed") " "
		if (kv(r, "posts_err") != "" && kv(r, "posts_err") != "0") note = note "post_errors=" kv(r, "posts_err") " "
		if (s ~ /^post/) note = note "accepted=" kv(r, "posts_per_s") "/s "
		if (s ~ /^idle/) note = note "conns=" kv(r, "conns") " rss=" kv(r, "rss_before_kb") "->" kv(r, "rss_after_kb") "KB "
		if (kv(r, "aux_cpu_us_per_op") != "") note = note "backend_cpu=" kv(r, "aux_cpu_us_per_op") "us/op "
		note = note "load_cpu=" kv(r, "load_cpu_us_per_op") "us/op"
		if (kv(r, "note") != "") note = kv(r, "note")
		printf fmt, s, kv(r, "target"), kv(r, "ops_per_s"), kv(r, "p50_us"), kv(r, "p99_us"),
			kv(r, "target_cpu_us_per_op"), kv(r, "rss_per_conn_b"), note
	}
	print ""
	print "wsgate ratios (throughput: wsgate / peer; CPU per op: peer / wsgate, >1 means wsgate is cheaper)"
	split("connect roundtrip_c1 roundtrip_c100 roundtrip_c1000 post_c100", sc, " ")
	for (j = 1; j <= 5; j++) {
		s = sc[j]
		for (wi = 1; wi <= 2; wi++) {
		w = wi == 1 ? "wsgate" : "wsgate_no_connect"
		if (!((s, w) in thr)) continue
		for (pi = 1; pi <= 2; pi++) {
			p = pi == 1 ? "lwsecho" : "pushpin"
			if (!((s, p) in thr) || thr[s, p] + 0 == 0) continue
			printf "  %-16s %-26s throughput %6.3fx   CPU/op %7.3fx\n", s, w " vs " p,
				thr[s, w] / thr[s, p], cpu[s, w] + 0 ? cpu[s, p] / cpu[s, w] : 0
		}
		}
	}
	for (s in rss) { split(s, a, SUBSEP); if (a[2] != "wsgate") continue
		if (rss[a[1], "lwsecho"] + 0)
			printf "  %-16s %-26s RSS/conn   %6.3fx of lwsecho\n", a[1], "wsgate", rss[s] / rss[a[1], "lwsecho"]
		if (rss[a[1], "pushpin"] + 0)
			printf "  %-16s %-26s RSS/conn   %6.3fx of pushpin\n", a[1], "wsgate", rss[s] / rss[a[1], "pushpin"] }
}' "$RESULTS"
if [ "$NOFILE" -le $((IDLE_N2 + 1000)) ]; then
	echo "idle at $IDLE_N2 skipped: open-file limit $NOFILE (hard limit; ulimit -n 200000 not permitted here)"
fi
echo
echo "raw results (key=value):"
cat "$RESULTS"
log "done in $(( $(date +%s) - T_START ))s"
