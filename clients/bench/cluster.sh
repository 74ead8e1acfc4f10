# Sourced by run.sh (ONLY=cluster): a post through another node over NATS
# against a post to the node that holds the connection. One nats-server and
# two wsgate nodes (--workers 1 each) on loopback; the clients connect to
# node 1; the same wsload post scenario sends its posts first to node 1's
# management port (cluster_same_node), then to node 2's (cluster_cross_node,
# each post forwarded to node 1 by NATS request/reply and answered back).
# CPU per post counts both nodes and nats-server.
if ! command -v nats-server >/dev/null; then
	log "cluster skipped: nats-server not installed (apt-get install nats-server)"
else
	log "cluster: post to the owner vs through another node over NATS"
	free_port; CL_NATS_PORT=$FREE
	nats-server -a 127.0.0.1 -p "$CL_NATS_PORT" >"$TMP/nats-server.log" 2>&1 &
	CL_NATS_PID=$!
	STARTED+=("$CL_NATS_PID")
	wait_port "$CL_NATS_PORT" 10 || { echo "nats-server did not start:" >&2; cat "$TMP/nats-server.log" >&2; exit 1; }
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$TMP/cluster.secret"
	CL_ARGS=(--nats "nats://127.0.0.1:$CL_NATS_PORT" --cluster-secret-file "$TMP/cluster.secret")
	FB_PORT=$BACKEND_PORT FB_PID=$BACKEND_PID
	start_wsgate "$API1" 1 "${CL_ARGS[@]}" --node-id 1
	CL_A_PID=$T_PID CL_A_PORT=$T_PORT CL_A_MGMT=$T_MGMT
	start_wsgate "$API1" 1 "${CL_ARGS[@]}" --node-id 2
	CL_B_PID=$T_PID CL_B_MGMT=$T_MGMT
	T_PORT=$CL_A_PORT T_PIDS="$CL_A_PID,$CL_B_PID,$CL_NATS_PID"
	T_MGMT=$CL_A_MGMT; scenario_post cluster_same_node 100
	T_MGMT=$CL_B_MGMT; scenario_post cluster_cross_node 100
	stop_pid "$CL_A_PID"; stop_pid "$CL_B_PID"; stop_pid "$CL_NATS_PID"
fi
