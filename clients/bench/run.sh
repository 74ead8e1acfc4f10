#!/usr/bin/env bash
# The wsgate benchmark suite: bare libwebsockets echo (the ceiling), wsgate,
# Pushpin if installed and nginx (REST reverse proxy) if installed, side by
# side on loopback. Bounded in time
# (about 4 minutes with the defaults, at most 10), prints one table.
#
#   clients/bench/run.sh
#
# Environment:
#   WSGATE_BIN   gateway binary (default /work/main/build/wsgate)
#   WORKERS      wsgate --workers values to run, each labelled wsgate_wN
#                (default "1 2")
#   REST_T REST_C  wrk threads and connections for the REST scenario (1, 50)
#   DUR          seconds measured per throughput scenario (default 5)
#   CONNECT_N    connections for the connect scenario (default 5000)
#   IDLE_N       idle connections (default 10000); IDLE_N2 (default 50000)
#                runs too when the file-descriptor limit allows it
#   SIZE         message size in bytes (default 32)
#   CONNECT_SIZES  connections opened in the connect-scaling rows
#                (default "2000 10000 18000", capped by the open-file limit)
#   TLS_IDLE_N   idle wss:// and ws:// connections for the TLS memory rows (2000)
#   ONLY         sections to run (default all): backend lwsecho wsgate rest
#                connect_scale tls fanout pushpin_fanout pushpin cluster
#                (cluster: two nodes and nats-server, skipped without it;
#                see clients/bench/cluster.sh)
#   FANOUT_N FANOUT_ROUNDS  fan-out: channel members (10000, capped by the
#                open-file limit) and publishes, one at a time (30);
#                pushpin_fanout: the same against Pushpin (GRIP subscribe on
#                OPEN, POST /publish/), PP_FANOUT_ROUNDS publishes (30)
#   WSGATE_POLL_BIN  fanout: also this wsgate built with libwebsockets' poll
#                loop (cmake -DWSGATE_LIBEV=OFF), row wsgate_poll_wN
#   NO_RAWFAN=1  fanout: skip the floor rows (rawfan.c, a bare sender:
#                raw_send, one send() per member; raw_uring, io_uring batches)
#   NO_PUSHPIN=1 skip Pushpin even if installed
#   NO_NGINX=1   skip the nginx reverse-proxy REST row even if installed
#   KEEP=1       keep the temporary folder (logs, raw results)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WSGATE_BIN=${WSGATE_BIN:-/work/main/build/wsgate}
DUR=${DUR:-5}
CONNECT_N=${CONNECT_N:-5000}
IDLE_N=${IDLE_N:-10000}
IDLE_N2=${IDLE_N2:-50000}
SIZE=${SIZE:-32}
WORKERS=${WORKERS:-1 2}
CONNECT_SIZES=${CONNECT_SIZES:-2000 10000 18000}
TLS_IDLE_N=${TLS_IDLE_N:-2000}
ONLY=" ${ONLY:-backend lwsecho wsgate rest connect_scale tls fanout pushpin_fanout pushpin cluster} "
want() { [[ "$ONLY" == *" $1 "* ]]; }
REST_T=${REST_T:-1}
REST_C=${REST_C:-50}
NCPU=$(nproc)
TMP=$(mktemp -d /tmp/wsbench.XXXXXX)
RESULTS=$TMP/results.txt
: > "$RESULTS"
STARTED=()
T_START=$(date +%s)

# Progress lines (wsload's) on a terminal only, never in CI: the same rule as
# progress_wanted() in common.h. On a terminal wsload's stderr is the
# terminal (its progress line, and any error, shown there); otherwise it
# goes to $TMP/wsload.err as before.
progress_wanted() { [ -t 2 ] && case "${CI:-}" in ""|0|false) true ;; *) false ;; esac; }
WSLOAD_ERR=$TMP/wsload.err
progress_wanted && WSLOAD_ERR=/dev/stderr

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

# REST: an HTTP_PROXY route GET /rest -> GET http://127.0.0.1:PORT/x
rest_api_file() { # backend_port -> path
	local f=$TMP/api-rest-$1.json
	printf '{"name":"bench","stage":"dev","integrations":{"b":{"type":"AWS_PROXY","uri":"http://127.0.0.1:%s/"},"raw":{"type":"HTTP_PROXY","uri":"http://127.0.0.1:%s/x"}},"routes":{"$default":{"integration":"b","routeResponse":true},"GET /rest":{"integration":"raw"}}}\n' \
		"$1" "$1" > "$f"
	echo "$f"
}

api_file() { # with_connect(0|1) backend_port -> path
	local f=$TMP/api-$1-$2.json connect=''
	[ "$1" = 1 ] && connect='"$connect":{"integration":"b"},'
	printf '{"name":"bench","stage":"dev","integrations":{"b":{"type":"AWS_PROXY","uri":"http://127.0.0.1:%s/"}},"routes":{%s"$default":{"integration":"b","routeResponse":true}}}\n' \
		"$2" "$connect" > "$f"
	echo "$f"
}

start_wsgate() { # api-file workers [extra args...] ; sets T_PID T_PORT T_MGMT T_PIDS
	local d api=$1 w=${2:-1}
	shift 2
	d=$(mktemp -d "$TMP/wsgate.XXXX")
	"$WSGATE_BIN" --routes "$api" --listen 127.0.0.1:0 --mgmt-listen 127.0.0.1:0 \
		--data "$d/data" --workers "$w" --log-level warn "$@" 2>"$d/stderr" &
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

# The fan-out floor (rawfan.c): the same WebSocket clients, a bare sender.
start_rawfan() { # [--uring] ; sets T_PID T_PORT T_MGMT T_PIDS
	free_port; T_PORT=$FREE
	free_port; T_MGMT=$FREE
	"$HERE/rawfan" --port "$T_PORT" --mgmt-port "$T_MGMT" "$@" 2>>"$TMP/rawfan.log" &
	T_PID=$!
	T_PIDS=$T_PID
	STARTED+=("$T_PID")
	wait_port "$T_PORT" && wait_port "$T_MGMT" || { echo "rawfan did not start" >&2; cat "$TMP/rawfan.log" >&2; exit 1; }
}

# nginx (Debian's) as a REST reverse proxy with upstream keep-alive, its own
# prefix, config and temp folders, in the foreground on a loopback port:
# never the system service. Its workers' CPU is what a request costs it.
start_nginx() { # backend-port workers ; sets NG_PID NG_PORT NG_WORKERS
	local d
	d=$(mktemp -d "$TMP/nginx.XXXX")
	chmod 755 "$TMP" "$d"
	free_port; NG_PORT=$FREE
	cat > "$d/nginx.conf" <<EOF
daemon off;
worker_processes $2;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $d/body;
	proxy_temp_path $d/proxy;
	fastcgi_temp_path $d/fastcgi;
	uwsgi_temp_path $d/uwsgi;
	scgi_temp_path $d/scgi;
	upstream be { server 127.0.0.1:$1; keepalive 64; }
	server {
		listen 127.0.0.1:$NG_PORT;
		location = /rest {
			proxy_pass http://be/x;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
EOF
	nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log" 2>>"$d/error.log" &
	NG_PID=$!
	STARTED+=("$NG_PID")
	wait_port "$NG_PORT" 5 || { echo "nginx did not start:" >&2; cat "$d/error.log" >&2; exit 1; }
	sleep 0.2
	NG_WORKERS=$(pgrep -P "$NG_PID" | tr '\n' ',' | sed 's/,$//')
}

# ---- measurements ----
record() { # scenario target wsload-line
	local line=$3
	[ -z "$line" ] && line="failed=1 note=no-result"
	echo "scenario=$1 target=$2 ${line#*target=* }" >> "$RESULTS"
	log "$1 $2: $line"
}
wsload() { timeout 120 "$WSLOAD" "$@" 2>>"$WSLOAD_ERR" | tail -1; }

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
		--posters 16 --hs "$HS" --ids "127.0.0.1:$FB_PORT" --mgmt "127.0.0.1:$T_MGMT" \
		--cpu-pid "$T_PIDS" --aux-pid "$FB_PID" --label "$l" --timeout 60 "$@")"
}

cpu_ticks() { # pid[,pid...] -> utime+stime summed, in clock ticks
	local p t=0
	for p in ${1//,/ }; do t=$(( t + $(awk '{print $14+$15}' "/proc/$p/stat") )); done
	echo "$t"
}

# One wrk run -> one result line. wrk_run scenario target url cpu-pid aux-pid
# note [wrk args...]; cpu-pid (the target) and aux-pid (its backend, may be
# empty) are sampled from /proc/PID/stat around the run.
wrk_run() {
	local sc=$1 tg=$2 url=$3 cp=$4 ap=$5 note=$6 c0 c1 a0=0 a1=0 out hz
	shift 6
	hz=$(getconf CLK_TCK)
	c0=$(cpu_ticks "$cp")
	[ -n "$ap" ] && a0=$(cpu_ticks "$ap")
	out=$(timeout $((DUR + 30)) wrk "$@" -d"${DUR}s" --latency "$url" 2>&1)
	c1=$(cpu_ticks "$cp")
	[ -n "$ap" ] && a1=$(cpu_ticks "$ap")
	echo "$out" > "$TMP/wrk-$sc-$tg.txt"
	echo "$out" | awk -v sc="$sc" -v tg="$tg" -v c0="$c0" -v c1="$c1" -v a0="$a0" -v a1="$a1" \
		-v aux="$ap" -v hz="$hz" -v dur="$DUR" -v note="$note" '
		function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000;
			if (v ~ /s$/) return v * 1e6; return v }
		/^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
		/requests in/ { n = $1 } /^Requests\/sec/ { rps = $2 }
		/Non-2xx|Socket errors/ { err = 1 }
		END { cpu = (c1 - c0) / hz; acpu = (a1 - a0) / hz
			printf "scenario=%s target=%s ops=%d secs=%s ops_per_s=%.1f target_cpu_s=%.3f target_cpu_us_per_op=%.2f",
				sc, tg, n, dur, rps, cpu, n ? cpu * 1e6 / n : 0
			if (aux != "") printf " aux_cpu_s=%.3f aux_cpu_us_per_op=%.2f", acpu, n ? acpu * 1e6 / n : 0
			printf " p50_us=%.0f p99_us=%.0f note=%s%s\n", p50, p99, note, err ? "_ERRORS" : "" }' >> "$RESULTS"
	log "$sc $tg: $(tail -1 "$RESULTS")"
}

# Backend capacity with wrk: a MESSAGE event POSTed, with a new connection
# per request (Connection: close) and with keep-alive (what wsgate's backend
# pools use).
scenario_backend() {
	command -v wrk >/dev/null || { log "wrk not installed: backend capacity skipped"; return; }
	local lua=$TMP/post.lua body
	body='{"requestContext":{"routeKey":"$default","eventType":"MESSAGE","connectionId":"AAAAAAAAAAAAAAAA"},"body":"abcdefghijklmnopqrstuvwxyzabcdef","isBase64Encoded":false}'
	printf 'wrk.method = "POST"\nwrk.body = [[%s]]\nwrk.headers["Content-Type"] = "application/json"\n' "$body" > "$lua"
	wrk_run backend_close fastbackend "http://127.0.0.1:$FB_PORT/" "$FB_PID" "" wrk_t1_c50 \
		-t1 -c50 -s "$lua" -H "Connection: close"
	wrk_run backend_keepalive fastbackend "http://127.0.0.1:$FB_PORT/" "$FB_PID" "" wrk_t1_c50 \
		-t1 -c50 -s "$lua"
}

# REST: wrk GET against fastbackend --echo-raw directly (GET /x), then the
# same through nginx as a reverse proxy with upstream keep-alive (GET /rest ->
# GET /x, worker_processes = N) and through a wsgate HTTP_PROXY route (GET
# /rest -> GET /x, --workers N), for each WORKERS value, side by side; same
# threads, connections and duration. REST_ROUNDS (default 2) repeats the
# three rows (scenario rest, rest_r2, ...) on the same processes, since the
# machine may be shared. The target's CPU per request is its own (nginx: its
# workers'); the backend's is aux_cpu.
REST_ROUNDS=${REST_ROUNDS:-2}
scenario_rest() {
	command -v wrk >/dev/null || {
		echo "scenario=rest target=wsgate note=skipped_wrk_not_installed" >> "$RESULTS"; return; }
	local w api r sc ng=0 wargs="-t$REST_T -c$REST_C" nt="wrk_t${REST_T}_c${REST_C}"
	local -A gpid gport npid nport nwk
	[ "${NO_NGINX:-0}" != 1 ] && command -v nginx >/dev/null && ng=1
	[ $ng = 1 ] || log "nginx not installed (apt-get install nginx) or NO_NGINX=1: no reverse-proxy row"
	start_backend --echo-raw
	api=$(rest_api_file "$FB_PORT")
	for w in $WORKERS; do
		start_wsgate "$api" "$w"
		gpid[$w]=$T_PID gport[$w]=$T_PORT
		curl -sf -o /dev/null "http://127.0.0.1:$T_PORT/rest" 2>/dev/null ||
			log "warning: GET /rest through wsgate did not answer 2xx"
		if [ $ng = 1 ]; then
			start_nginx "$FB_PORT" "$w"
			npid[$w]=$NG_PID nport[$w]=$NG_PORT nwk[$w]=$NG_WORKERS
			curl -sf -o /dev/null "http://127.0.0.1:$NG_PORT/rest" 2>/dev/null ||
				log "warning: GET /rest through nginx did not answer 2xx"
		fi
	done
	for r in $(seq 1 "$REST_ROUNDS"); do
		sc=rest; [ "$r" -gt 1 ] && sc=rest_r$r
		# shellcheck disable=SC2086
		wrk_run $sc fastbackend "http://127.0.0.1:$FB_PORT/x" "$FB_PID" "" "${nt}_direct" $wargs
		for w in $WORKERS; do
			[ $ng = 1 ] && wrk_run $sc "nginx_w$w" "http://127.0.0.1:${nport[$w]}/rest" "${nwk[$w]}" \
				"$FB_PID" "${nt}_proxy_pass_keepalive64" $wargs
			wrk_run $sc "wsgate_w$w" "http://127.0.0.1:${gport[$w]}/rest" "${gpid[$w]}" "$FB_PID" \
				"${nt}_via_HTTP_PROXY" $wargs
		done
	done
	for w in $WORKERS; do
		stop_pid "${gpid[$w]}"
		[ $ng = 1 ] && stop_pid "${npid[$w]}"
	done
	stop_pid "$FB_PID"
}

# wss:// against ws://, one loop, a MOCK $default route answering each
# message, the same Node client (tlsload.mjs, the ws package) for both:
# idle memory per connection (TLS_IDLE_N) and the round trip at 100
# connections (gateway CPU per message). Self-signed P-256 certificate.
scenario_tls() {
	command -v node >/dev/null || { log "node missing: TLS rows skipped"; return; }
	local api=$TMP/api-mock.json cert=$TMP/tls-cert.pem key=$TMP/tls-key.pem sch tl
	printf '{"name":"bench","stage":"dev","integrations":{"m":{"type":"MOCK","statusCode":200,"body":"pong"}},"routes":{"$default":{"integration":"m","routeResponse":true}}}\n' > "$api"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
		-keyout "$key" -out "$cert" -days 2 2>/dev/null || { log "openssl req failed: TLS rows skipped"; return; }
	for sch in ws wss; do
		tl=wsgate_w1_$sch
		if [ $sch = wss ]; then start_wsgate "$api" 1 --tls-cert "$cert" --tls-key "$key"; else start_wsgate "$api" 1; fi
		record idle_tls "$tl" "$(timeout 120 node "$HERE/tlsload.mjs" idle --url "$sch://127.0.0.1:$T_PORT/" \
			-n "$TLS_IDLE_N" --pid "$T_PID" --label "$tl" 2>>"$TMP/tlsload.err" | tail -1)"
		stop_target
	done
	for sch in ws wss; do
		tl=wsgate_w1_$sch
		if [ $sch = wss ]; then start_wsgate "$api" 1 --tls-cert "$cert" --tls-key "$key"; else start_wsgate "$api" 1; fi
		record roundtrip_tls "$tl" "$(timeout 60 node "$HERE/tlsload.mjs" roundtrip --url "$sch://127.0.0.1:$T_PORT/" \
			-c 100 -s "$SIZE" -d "$DUR" --pid "$T_PID" --label "$tl" 2>>"$TMP/tlsload.err" | tail -1)"
		stop_target
	done
}

# ---- the suite ----
# Handshakes in flight while opening connections: 100, but 50 for Pushpin,
# whose proxy answers 502 to part of the handshakes beyond that.
HS=100
log "backend"
start_backend
BACKEND_PORT=$FB_PORT
BACKEND_PID=$FB_PID
want backend && scenario_backend

if want lwsecho; then
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
fi

log "wsgate ($WSGATE_BIN), workers: $WORKERS"
API0=$(api_file 0 "$BACKEND_PORT")
API1=$(api_file 1 "$BACKEND_PORT")
want wsgate && for W in $WORKERS; do
	L=wsgate_w$W
	log "$L"
	start_wsgate "$API1" "$W"; scenario_idle "$L" "$IDLE_N"; stop_target
	if [ "$NOFILE" -gt $((IDLE_N2 + 1000)) ]; then
		start_wsgate "$API1" "$W"; scenario_idle "$L" "$IDLE_N2"; stop_target
	fi
	start_wsgate "$API0" "$W"; scenario_connect "${L}_no_connect"; stop_target
	AUX=$BACKEND_PID
	start_wsgate "$API1" "$W"; scenario_connect "$L"; stop_target
	start_wsgate "$API1" "$W"
	for c in 1 100 1000; do scenario_roundtrip "$L" $c; done
	unset AUX
	FB_PORT=$BACKEND_PORT FB_PID=$BACKEND_PID
	scenario_post "$L" 100
	scenario_post "$L" 1000
	stop_target
done
want rest && { log "REST"; scenario_rest; }

# Connect cost against the number of open connections: CONNECT_SIZES
# connections opened and kept, 100 handshakes in flight, no $connect route,
# one loop, sources spread over 127.0.0.1-8 (the client's ephemeral-port
# search grows with the ports in use); lwsecho and wsgate alternate on fresh
# processes. Scenario
# connect_N (N capped by the open-file limit, less 500 for the rest).
if want connect_scale; then
	log "connect scaling: $CONNECT_SIZES"
	for N in $CONNECT_SIZES; do
		[ "$N" -gt $((NOFILE - 500)) ] && { log "connect_$N skipped: open-file limit $NOFILE"; continue; }
		start_lwsecho
		record "connect_$N" lwsecho "$(wsload connect --port "$T_PORT" -n "$N" -c "$HS" --src-ips 8 \
			--cpu-pid "$T_PIDS" --label lwsecho --timeout 90)"
		stop_target
		start_wsgate "$API0" 1
		record "connect_$N" wsgate_w1_no_connect "$(wsload connect --port "$T_PORT" -n "$N" -c "$HS" --src-ips 8 \
			--cpu-pid "$T_PIDS" --label wsgate_w1_no_connect --timeout 90)"
		stop_target
	done
fi

want tls && scenario_tls

# Fan-out (issue 13): FANOUT_N connections join channel "bench" from
# $connect's answer (fastbackend --subscribe), then FANOUT_ROUNDS publishes
# (POST /dev/@channels/bench, 32 B), one at a time. ops/s = deliveries per
# second of fan-out (members / publish-to-last-member time, summed over the
# rounds); p50/p99 = time from the publish to the last member's frame;
# CPU = the gateway's per delivery.
if want fanout; then
	FANOUT_N=${FANOUT_N:-10000}
	FANOUT_ROUNDS=${FANOUT_ROUNDS:-30}
	[ "$FANOUT_N" -gt $(( (NOFILE - 500) )) ] && FANOUT_N=$(( NOFILE - 500 ))
	log "fan-out: $FANOUT_N members, $FANOUT_ROUNDS publishes"
	start_backend --subscribe bench
	FO_PORT=$FB_PORT FO_PID=$FB_PID
	for W in $WORKERS; do
		start_wsgate "$(api_file 1 "$FO_PORT")" "$W"
		record "fanout_$FANOUT_N" "wsgate_w$W" "$(wsload fanout --port "$T_PORT" -c "$FANOUT_N" \
			-s "$SIZE" --rounds "$FANOUT_ROUNDS" --hs "$HS" --ids "127.0.0.1:$FO_PORT" \
			--mgmt "127.0.0.1:$T_MGMT" --cpu-pid "$T_PIDS" --label "wsgate_w$W" --timeout 90)"
		stop_target
		if [ -n "${WSGATE_POLL_BIN:-}" ]; then
			WSGATE_BIN_SAVED=$WSGATE_BIN WSGATE_BIN=$WSGATE_POLL_BIN
			start_wsgate "$(api_file 1 "$FO_PORT")" "$W"
			WSGATE_BIN=$WSGATE_BIN_SAVED
			record "fanout_$FANOUT_N" "wsgate_poll_w$W" "$(wsload fanout --port "$T_PORT" -c "$FANOUT_N" \
				-s "$SIZE" --rounds "$FANOUT_ROUNDS" --hs "$HS" --ids "127.0.0.1:$FO_PORT" \
				--mgmt "127.0.0.1:$T_MGMT" --cpu-pid "$T_PIDS" --label "wsgate_poll_w$W" --timeout 90)"
			stop_target
		fi
	done
	# The floor: the same clients and frame, written by a bare program
	# (rawfan.c) that does nothing else; its management port also answers
	# wsload's /reset and /ids.
	if [ "${NO_RAWFAN:-0}" != 1 ]; then
		for RAW in send uring; do
			if [ "$RAW" = uring ]; then start_rawfan --uring; else start_rawfan; fi
			record "fanout_$FANOUT_N" "raw_$RAW" "$(wsload fanout --port "$T_PORT" -c "$FANOUT_N" \
				-s "$SIZE" --rounds "$FANOUT_ROUNDS" --hs "$HS" --ids "127.0.0.1:$T_MGMT" \
				--mgmt "127.0.0.1:$T_MGMT" --cpu-pid "$T_PIDS" --label "raw_$RAW" --timeout 90)"
			stop_target
		done
	fi
fi

# Fan-out against Pushpin (issue 13), the same wsload fanout clients and
# message: each WebSocket-over-HTTP OPEN is answered by fastbackend --pushpin
# --subscribe bench with a GRIP control message subscribing the connection to
# channel "bench"; each publish is one POST /publish/ (ws-message item) to
# Pushpin's publish endpoint. Probe publishes first, until one reaches every
# member (Pushpin has no member count). CPU = all Pushpin processes (runner,
# condure, proxy, handler, zurl) per delivery. 50 handshakes in flight, as in
# the pushpin section.
if want pushpin_fanout && [ "$HAVE_PUSHPIN" = 1 ]; then
	FANOUT_N=${FANOUT_N:-10000}
	PP_FANOUT_ROUNDS=${PP_FANOUT_ROUNDS:-${FANOUT_ROUNDS:-30}}
	[ "$FANOUT_N" -gt $(( (NOFILE - 500) )) ] && FANOUT_N=$(( NOFILE - 500 ))
	log "pushpin fan-out: $FANOUT_N members, $PP_FANOUT_ROUNDS publishes"
	start_backend --pushpin --subscribe bench
	PPF_PORT=$FB_PORT PPF_PID=$FB_PID
	start_pushpin "$PPF_PORT"
	PP_T0="" PP_CPU_BY=""
	for p in ${T_PIDS//,/ }; do PP_T0="$PP_T0 $(cpu_ticks "$p")"; done
	record "fanout_$FANOUT_N" pushpin "$(timeout 300 "$WSLOAD" fanout --pushpin --port "$T_PORT" \
		-c "$FANOUT_N" -s "$SIZE" --rounds "$PP_FANOUT_ROUNDS" --hs 50 --ids "127.0.0.1:$PPF_PORT" \
		--mgmt "127.0.0.1:$T_MGMT" --cpu-pid "$T_PIDS" --label pushpin --timeout 280 \
		2>>"$WSLOAD_ERR" | tail -1)"
	# where Pushpin's CPU went (the whole run: connections opened too)
	set -- $PP_T0
	for p in ${T_PIDS//,/ }; do
		PP_CPU_BY="$PP_CPU_BY$(ps -o comm= -p "$p")=$(( ($(cpu_ticks "$p") - $1) * 1000 / $(getconf CLK_TCK) ))ms "
		shift
	done
	log "pushpin CPU by process (connect + probes + rounds): $PP_CPU_BY"
	stop_target
	stop_pid "$PPF_PID"
elif want pushpin_fanout; then
	log "pushpin fan-out skipped (NO_PUSHPIN=1, or pushpin/condure/zurl not installed: apt-get install pushpin)"
fi

if want pushpin && [ "$HAVE_PUSHPIN" = 1 ]; then
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
	log "pushpin skipped (NO_PUSHPIN=1, or pushpin/condure/zurl not installed: apt-get install pushpin)"
fi

# Cross-node post through NATS (issue 13): clients on node 1, posts to
# node 1 (the owner) and then to node 2 (forwarded over NATS).
want cluster && . "$HERE/cluster.sh"

# ---- the table ----
echo
echo "wsgate benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $NCPU cores, $(uname -r), loopback;" \
	"message size $SIZE B, ${DUR}s per throughput figure; CPU = target's user+sys per operation"
awk -v workers="$WORKERS" '
function kv(line, k,   m) { if (match(line, "(^| )" k "=[^ ]*")) { m = substr(line, RSTART, RLENGTH);
	sub(/^ /, "", m); return substr(m, length(k) + 2) } return "" }
function ratio(a, b) { return b + 0 ? a / b : 0 }
function verdict(ok) { return ok ? "MET   " : "MISSED" }
{
	s = kv($0, "scenario"); t = kv($0, "target")
	rows[++n] = $0
	if (kv($0, "ops_per_s") == "") next
	thr[s, t] = kv($0, "ops_per_s"); cpu[s, t] = kv($0, "target_cpu_us_per_op"); rows_by[s, t] = $0
	p99[s, t] = kv($0, "p99_us"); rss[s, t] = kv($0, "rss_per_conn_b"); p50[s, t] = kv($0, "p50_us")
	if (t ~ /^wsgate/ && !(t in seen)) { seen[t] = 1; wl[++nw] = t }
	if (!(s in sseen)) { sseen[s] = 1; sl[++ns] = s }
}
END {
	fmt = "%-17s %-20s %11s %9s %9s %10s %8s  %s\n"
	printf fmt, "scenario", "target", "ops/s", "p50 us", "p99 us", "CPU us/op", "RSS B/c", "notes"
	for (i = 1; i <= n; i++) {
		r = rows[i]; s = kv(r, "scenario"); note = ""
		if (kv(r, "failed") != "" && kv(r, "failed") != "0") note = note "failed=" kv(r, "failed") " "
		if (kv(r, "closed") != "" && kv(r, "closed") != "0") note = note "closed=" kv(r, "closed") " "
		if (kv(r, "posts_err") != "" && kv(r, "posts_err") != "0") note = note "post_errors=" kv(r, "posts_err") " "
		if (s ~ /^post/) note = note "accepted=" kv(r, "posts_per_s") "/s "
		if (s ~ /^fanout/) note = note "members=" kv(r, "members") " rounds=" kv(r, "rounds") " lost=" kv(r, "lost") " skipped=" kv(r, "skipped") " answer_p50=" kv(r, "answer_p50_us") "us "
		if (s ~ /^idle/) note = note "conns=" kv(r, "conns") " rss=" kv(r, "rss_before_kb") "->" kv(r, "rss_after_kb") "KB "
		if (kv(r, "aux_cpu_us_per_op") != "") note = note "backend_cpu=" kv(r, "aux_cpu_us_per_op") "us/op "
		if (kv(r, "load_cpu_us_per_op") != "") note = note "load_cpu=" kv(r, "load_cpu_us_per_op") "us/op"
		if (kv(r, "note") != "") note = note " " kv(r, "note")
		printf fmt, s, kv(r, "target"), kv(r, "ops_per_s"), kv(r, "p50_us"), kv(r, "p99_us"),
			kv(r, "target_cpu_us_per_op"), kv(r, "rss_per_conn_b"), note
	}
	print ""
	print "wsgate ratios (throughput: wsgate / peer; CPU per op: peer / wsgate, >1 means wsgate is cheaper)"
	for (j = 1; j <= ns; j++) {
		s = sl[j]
		for (k = 1; k <= nw; k++) {
			w = wl[k]
			if (!((s, w) in thr)) continue
			split("lwsecho pushpin fastbackend nginx_w" substr(w, 9) " raw_send raw_uring", peers, " ")
			for (pi = 1; pi <= 6; pi++) {
				p = peers[pi]
				if (!((s, p) in thr) || thr[s, p] + 0 == 0) continue
				printf "  %-16s %-30s throughput %7.3fx   CPU/op %7.3fx\n", s, w " vs " p,
					ratio(thr[s, w], thr[s, p]), ratio(cpu[s, p], cpu[s, w])
			}
			if (rss[s, w] + 0) for (pi = 1; pi <= 2; pi++) {
				p = peers[pi]
				if (rss[s, p] + 0) printf "  %-16s %-30s RSS/conn   %7.3fx of %s\n", s, w, rss[s, w] / rss[s, p], p
			}
		}
		# scaling: workers N vs workers 1
		for (k = 1; k <= nw; k++) {
			w = wl[k]; if (w !~ /^wsgate_w[0-9]+$/ || w == "wsgate_w1") continue
			if (((s, w) in thr) && ((s, "wsgate_w1") in thr) && thr[s, "wsgate_w1"] + 0)
				printf "  %-16s %-30s throughput %7.3fx   CPU/op %7.3fx\n", s, w " vs wsgate_w1",
					ratio(thr[s, w], thr[s, "wsgate_w1"]), ratio(cpu[s, "wsgate_w1"], cpu[s, w])
		}
	}
	s = "post_c100"
	if (((s, "cluster_cross_node") in thr) && ((s, "cluster_same_node") in thr)) {
		print ""
		printf "cluster (issue 13): a post through another node over NATS: %.3fx the throughput of a post to the owner; p50 %+d us, p99 %+d us\n",
			ratio(thr[s, "cluster_cross_node"], thr[s, "cluster_same_node"]),
			p50[s, "cluster_cross_node"] - p50[s, "cluster_same_node"], p99[s, "cluster_cross_node"] - p99[s, "cluster_same_node"]
	}
	print ""
	print "issue 5 and 10 targets (per workers value)"
	nwk = split(workers, wk, " ")
	for (k = 1; k <= nwk; k++) {
		w = "wsgate_w" wk[k]
		s = "roundtrip_c100"
		if ((s, w) in thr) {
			if ((s, "lwsecho") in thr) { r = ratio(thr[s, w], thr[s, "lwsecho"])
				printf "  %s %-13s round trip c100 >= 25%% of lwsecho:      %6.1f%% (%s vs %s msg/s)\n", verdict(r >= 0.25), w, r * 100, thr[s, w], thr[s, "lwsecho"] }
			if ((s, "pushpin") in thr) { r = ratio(thr[s, w], thr[s, "pushpin"])
				printf "  %s %-13s round trip c100 >= 20x Pushpin rate:    %6.1fx (%s vs %s msg/s)\n", verdict(r >= 20), w, r, thr[s, w], thr[s, "pushpin"]
				r = ratio(cpu[s, "pushpin"], cpu[s, w])
				printf "  %s %-13s round trip c100 <= 1/20 Pushpin CPU:    1/%.1f (%s vs %s us/msg)\n", verdict(r >= 20), w, r, cpu[s, w], cpu[s, "pushpin"] }
			printf "  %s %-13s round trip c100 p99 < 5 ms:             %6.2f ms\n", verdict(p99[s, w] < 5000), w, p99[s, w] / 1000
		}
		s = "idle_10000"
		if (rss[s, w] != "")
			printf "  %s %-13s idle <= 4 KB per connection:            %6.0f B\n", verdict(rss[s, w] <= 4096), w, rss[s, w]
		s = "connect"
		if (((s, w "_no_connect") in thr) && ((s, "lwsecho") in thr)) { r = ratio(thr[s, w "_no_connect"], thr[s, "lwsecho"])
			printf "  %s %-13s connect (no $connect) >= 50%% of lwsecho: %6.1f%% (%s vs %s conn/s)\n", verdict(r >= 0.5), w, r * 100, thr[s, w "_no_connect"], thr[s, "lwsecho"] }
		best = 0; bs = ""
		for (j = 1; j <= ns; j++) if (sl[j] ~ /^post_/ && ((sl[j], w) in thr) && thr[sl[j], w] + 0 > best) { best = thr[sl[j], w] + 0; bs = sl[j] }
		if (bs != "")
			printf "  %s %-13s post >= 50,000 delivered/s:             %6.0f /s (%s)\n", verdict(best >= 50000), w, best, bs
		for (j = 1; j <= ns; j++) {
			s = sl[j]
			if (s !~ /^fanout_/ || !((s, w) in thr)) continue
			printf "  %s %-13s %-13s >= 300,000 deliveries/s:   %8.0f /s\n", verdict(thr[s, w] + 0 >= 300000), w, s, thr[s, w]
			printf "  %s %-13s %-13s last member <= 50 ms (p50): %6.1f ms (p99 %.1f ms)\n", verdict(kv(rows_by[s, w], "p50_us") + 0 <= 50000), w, s, kv(rows_by[s, w], "p50_us") / 1000, p99[s, w] / 1000
			if ((s, "raw_send") in thr)
				printf "         %-13s %-13s share of the floor (raw_send): %5.1f%% of its deliveries/s, last member p50 %.2fx, p99 %.2fx its time\n", w, s, ratio(thr[s, w], thr[s, "raw_send"]) * 100, ratio(p50[s, w], p50[s, "raw_send"]), ratio(p99[s, w], p99[s, "raw_send"])
		}
		s = "rest"
		if (((s, w) in thr) && ((s, "fastbackend") in thr)) { r = ratio(thr[s, w], thr[s, "fastbackend"])
			printf "  %s %-13s REST >= 70%% of the backend direct:      %6.1f%% (%s vs %s req/s)\n", verdict(r >= 0.7), w, r * 100, thr[s, w], thr[s, "fastbackend"] }
		for (j = 1; j <= ns; j++) {
			s = sl[j]; ng = "nginx_w" wk[k]
			if (s !~ /^rest/ || !((s, w) in thr) || !((s, ng) in thr)) continue
			r = ratio(thr[s, w], thr[s, ng])
			printf "  %s %-13s %-8s REST rate >= nginx:              %6.1f%% (%s vs %s req/s)\n", verdict(r >= 1), w, s, r * 100, thr[s, w], thr[s, ng]
			printf "  %s %-13s %-8s REST CPU/req <= nginx:           %6.2f vs %s us/req\n", verdict(cpu[s, w] + 0 <= cpu[s, ng] + 0), w, s, cpu[s, w], cpu[s, ng]
		}
		for (j = 1; j <= ns; j++) {
			s = sl[j]; t = w "_no_connect"
			if (s !~ /^connect_/ || !((s, t) in thr) || !((s, "lwsecho") in thr)) continue
			r = ratio(thr[s, t], thr[s, "lwsecho"])
			printf "  %s %-13s %-13s >= 70%% of lwsecho:        %6.1f%% (%s vs %s conn/s)\n", verdict(r >= 0.7), w, s, r * 100, thr[s, t], thr[s, "lwsecho"]
		}
		if ((("idle_tls", "wsgate_w1_wss") in rss) && wk[k] == 1)
			printf "  %s %-13s idle wss:// <= 8 KB per connection:      %6.0f B (ws:// %s B)\n", verdict(rss["idle_tls", "wsgate_w1_wss"] + 0 <= 8192), w, rss["idle_tls", "wsgate_w1_wss"], rss["idle_tls", "wsgate_w1_ws"]
		if ((("roundtrip_tls", "wsgate_w1_wss") in cpu) && (("roundtrip_tls", "wsgate_w1_ws") in cpu) && wk[k] == 1) {
			r = ratio(cpu["roundtrip_tls", "wsgate_w1_wss"], cpu["roundtrip_tls", "wsgate_w1_ws"])
			printf "  %s %-13s wss:// CPU/msg <= 1.6x ws://:            %6.2fx (%s vs %s us/msg)\n", verdict(r <= 1.6), w, r, cpu["roundtrip_tls", "wsgate_w1_wss"], cpu["roundtrip_tls", "wsgate_w1_ws"]
		}
	}
}' "$RESULTS"
if [ "$NOFILE" -le $((IDLE_N2 + 1000)) ]; then
	echo "idle at $IDLE_N2 skipped: open-file limit $NOFILE (hard limit; ulimit -n 200000 not permitted here)"
fi
echo
echo "raw results (key=value):"
cat "$RESULTS"
log "done in $(( $(date +%s) - T_START ))s"
