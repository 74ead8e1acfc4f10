#!/usr/bin/env bash
# What an authorizer costs per connect (issue 12): the connect rate and the
# gateway's CPU per connect for one API with a $connect route and
#   none        no authorizer
#   cached      a REQUEST authorizer whose verdict is cached (the token is
#               the same for every connection: one call, then hits)
#   uncached    the same with authorizerResultTtlInSeconds 0 (a call per
#               connect)
#   jwt         a JWT authorizer (ES256, checked in the gateway; an ES256
#               token is short enough for wsload's request line), its
#               valid tokens cached (the default)
#   jwt_uncached  the same with authorizerResultTtlInSeconds 0: a signature
#               check per connect
# ROUNDS alternating rounds of N connections, loopback only, bounded in time
# (about a minute with the defaults). A section apart from run.sh.
#
#   make -C clients/bench && clients/bench/authz.sh
#
# Environment: WSGATE_BIN (default /work/main/build/wsgate), N (3000),
# ROUNDS (3), KEEP=1 keeps the temporary folder.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WSGATE_BIN=${WSGATE_BIN:-/work/main/build/wsgate}
N=${N:-3000}
ROUNDS=${ROUNDS:-3}
TMP=$(mktemp -d /tmp/wsauthz.XXXXXX)
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Below the ephemeral range: wsload's own source ports cannot hold it.
free_port() { local p=$((20000 + RANDOM % 12000)); while port_open $p; do p=$((p + 1)); done; echo $p; }

for _ in 1 2 3 4 5; do
	BPORT=$(free_port)
	"$HERE/fastbackend" --port "$BPORT" --threads 1 2>"$TMP/backend.log" &
	BPID=$!
	for _ in $(seq 1 100); do port_open "$BPORT" && break; sleep 0.05; done
	kill -0 "$BPID" 2>/dev/null && break
done
PIDS+=("$BPID")

# A JWT signed with a key made now (node:crypto), its JWKS beside the API.
TOKEN=$(cd "$TMP" && node -e '
const { generateKeyPairSync, sign } = require("node:crypto");
const fs = require("node:fs");
const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
fs.writeFileSync("jwks.keys", JSON.stringify({ keys: [{ ...publicKey.export({ format: "jwk" }), kid: "k1" }] }));
const b = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const input = `${b({ alg: "ES256", kid: "k1" })}.${b({ iss: "bench", aud: "bench", sub: "u1", exp: Math.floor(Date.now() / 1000) + 3600 })}`;
process.stdout.write(`${input}.${sign("sha256", Buffer.from(input), { key: privateKey, dsaEncoding: "ieee-p1363" }).toString("base64url")}`);
')

api() { # name authorizer-json
	local az='' azs=''
	if [ -n "$2" ]; then
		az=',"authorizer":"a"'
		azs="\"authorizers\":{\"a\":$2},"
	fi
	printf '{"name":"bench","stage":"dev","integrations":{"b":{"type":"AWS_PROXY","uri":"http://127.0.0.1:%s/"}},%s"routes":{"$connect":{"integration":"b"%s},"$default":{"integration":"b","routeResponse":true}}}\n' \
		"$BPORT" "$azs" "$az" > "$TMP/$1.json"
}
api none ''
api cached '{"type":"REQUEST","integration":"b","identitySource":"route.request.querystring.token","authorizerResultTtlInSeconds":300}'
api uncached '{"type":"REQUEST","integration":"b","identitySource":"route.request.querystring.token","authorizerResultTtlInSeconds":0}'
api jwt '{"type":"JWT","identitySource":"route.request.querystring.token","jwtConfiguration":{"issuer":"bench","audience":["bench"],"jwksFile":"jwks.keys"}}'
api jwt_uncached '{"type":"JWT","identitySource":"route.request.querystring.token","authorizerResultTtlInSeconds":0,"jwtConfiguration":{"issuer":"bench","audience":["bench"],"jwksFile":"jwks.keys"}}'

run() { # name round
	local port d pid line
	d=$(mktemp -d "$TMP/gw.XXXX")
	"$WSGATE_BIN" --routes "$TMP/$1.json" --listen 127.0.0.1:0 --mgmt-listen 127.0.0.1:0 \
		--data "$d" --workers 1 --log-level warn 2>"$d/stderr" &
	pid=$!
	PIDS+=("$pid")
	port=''
	for _ in $(seq 1 100); do
		port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\) (gateway).*/\1/p' "$d/stderr")
		[ -n "$port" ] && break
		sleep 0.05
	done
	line=$(timeout 60 "$HERE/wsload" connect --port "$port" --path "/?token=$TOKEN" -n "$N" -c 100 \
		--cpu-pid "$pid" --aux-pid "$BPID" --label "$1" --timeout 50 2>>"${WSLOAD_ERR:-$TMP/wsload.err}" | tail -1)
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	echo "round=$2 $line" | tee -a "$TMP/results.txt" >&2
}

for r in $(seq 1 "$ROUNDS"); do
	for s in none cached uncached jwt jwt_uncached; do run "$s" "$r"; done
done

echo
echo "connect with an authorizer: $N connections x $ROUNDS rounds, 100 handshakes in flight, 1 loop"
awk '
{
	for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	l = v["target"]; n[l]++; fail[l] += v["failed"]; p50[l] += v["p50_us"]
	rate[l] += v["ops_per_s"]; cpu[l] += v["target_cpu_us_per_op"]; aux[l] += v["aux_cpu_us_per_op"]
	if (!(l in order)) { order[l] = ++k; names[k] = l }
}
END {
	printf "%-10s %11s %9s %23s %23s %7s\n", "authorizer", "connects/s", "p50 (us)", "gateway CPU (us/conn)", "backend CPU (us/conn)", "failed"
	for (i = 1; i <= k; i++) { l = names[i]
		printf "%-10s %11.0f %9.0f %23.1f %23.1f %7d\n", l, rate[l] / n[l], p50[l] / n[l], cpu[l] / n[l], aux[l] / n[l], fail[l] }
}' "$TMP/results.txt"
