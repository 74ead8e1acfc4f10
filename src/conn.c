/* Connections, from accept to $disconnect.
 *
 * The gateway owns the accept: it peeks at the request head (MSG_PEEK,
 * parsed by http-parser, edge-triggered so unread bytes never spin the
 * loop) so that a WebSocket upgrade can wait for its asynchronous $connect
 * call without blocking the loop and before libwebsockets has answered
 * anything. A refusal is written on the raw socket with the integration's
 * status; an acceptance hands the untouched socket to libwebsockets, which
 * reads the same request and performs the real handshake. (Handing over
 * consumed bytes with lws_adopt_socket_vhost_readbuf does not work in
 * libwebsockets 4.1: it leaves the head's last CRLF in its buffer and then
 * parses it as a WebSocket frame, failing the connection with 1002.)
 *
 * Lifecycle: HEAD (reading) -> CONNECTING ($connect running) -> ADOPTED
 * (libwebsockets handshaking) -> OPEN -> freed in LWS_CALLBACK_CLOSED.
 * A conn is only ever freed by conn_finish(), never twice. */
#include "core.h"
#include "admit.h"
#include "authorizer.h"
#include "iplimit.h"
#include "bus.h"
#include "connid.h"
#include "op.h"
#include "cluster.h"
#include "httpresp.h"
#include "httpreq.h"
#include "integration.h"
#include "accesslog.h"
#include "log.h"
#include "outbox.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_MAX_BYTES GW_HEAD_MAX_BYTES
#define HEAD_TIMEOUT_S 10
/* Inbound flow control: a connection whose queue holds this much stops
 * being read (TCP pushes back on the client) until it has drained to half;
 * every connection of a loop stops being read while the loop's queues
 * together hold INBOUND_LOOP_MAX_BYTES. Nothing received is dropped. */
#define INBOUND_CONN_MAX_MSGS 64
#define INBOUND_CONN_MAX_BYTES ((size_t)1 << 20)
#define INBOUND_LOOP_MAX_BYTES ((size_t)64 << 20)

/* DRAINING: the socket is gone, messages read before its close still go
 * to their routes; $disconnect follows the last of them. */
enum conn_state { CS_HEAD, CS_CONNECTING, CS_ADOPTED, CS_OPEN, CS_DRAINING, CS_CLOSED };

typedef struct gw_msg {
	lws_dll2_t list;
	size_t len;
	int binary;
	/* outbound: a channel message shared by the loop's members (one
	 * copy per publish, not per member); data[] is then empty */
	gw_payload_t *shared;
	const gw_route_t *route; /* inbound: chosen on arrival */
	unsigned char data[]; /* outbound: LWS_PRE headroom, then the payload */
} gw_msg_t;

/* What a queued message costs, with its header and libwebsockets' headroom:
 * counting the payload alone let empty messages queue without bound. */
#define MSG_COST(len) (sizeof(gw_msg_t) + LWS_PRE + (len))
#define INQ_COST(len) (sizeof(gw_msg_t) + (len))

/* One integration call on behalf of a connection (or of a connection that
 * is gone, for $disconnect). */
typedef struct pending {
	lws_dll2_t list; /* conn->calls */
	gw_conn_t *conn;
	gw_worker_t *gw;
	const gw_route_t *route;
	enum gw_event_type type;
	gw_call_t *call;
	char request_id[24];
	/* $disconnect (conn NULL): the snapshot route lives in, held until
	 * the answer, since the conn and its reference are gone by then. */
	gw_config_t *cfg;
	unsigned api_id; /* metrics */
	/* A $connect answer held for the cluster (hold_connect): call is
	 * done (NULL), what the rest needs is copied out of the scratch. */
	int held;
	int held_status;
	char *held_sub;
} pending_t;

struct gw_conn {
	gw_watch_t watch;
	gw_worker_t *gw;
	gw_config_t *cfg; /* the snapshot it connected under (a reference) */
	const gw_api_t *api;
	enum conn_state state;
	uint32_t slot;
	char id[GW_CONN_ID_LEN + 1];
	int registered;

	gw_req_t *head; /* request head, as read from the socket */
	gw_tls_t *ssl;   /* TLS listener: the session, until handed to a relay */
	int offered_protocols;
	int tls; /* came over the TLS listener: X-Forwarded-Proto https */
	int mgmt; /* from the management listener: its head is checked, then
		   * handed to the management vhost */
	int approved; /* $connect said yes: the backend expects a $disconnect */
	int gone;     /* the client hung up while $connect ran */
	int peek_checked, peek_off; /* SO_PEEK_OFF tried, and set */
	/* libwebsockets may destroy the wsi inside lws_adopt_socket_vhost;
	 * the conn must then outlive that call. */
	int in_adopt, died_in_adopt;

	char source_ip[64];
	char *user_agent;
	char *host;
	char *subprotocol;
	struct lws_vhost *sp_vh; /* its subprotocol's vhost, referenced */
	uint64_t connected_at;
	uint64_t last_active;
	uint64_t last_flushed;

	struct lws *wsi;
	lws_dll2_owner_t calls; /* pending_t: $connect, or messages in flight */

	gw_buf_t rx;
	int rx_binary;
	/* Frames (limits.maxFrameBytes): bytes of the inbound frame being
	 * read, whether the last chunk ended it, and how much of the outbound
	 * queue's head has gone out as earlier frames. */
	size_t rx_frame_bytes;
	int rx_frame_open;
	size_t tx_off;
	lws_dll2_owner_t inq;
	size_t inq_bytes;
	int rx_paused;         /* libwebsockets stopped reading it */
	int tx_held;           /* not read while lws holds a partly written frame */
	lws_dll2_t paused_list; /* gw->conns->paused_conns: paused for the loop's limit */
	lws_dll2_owner_t outq;
	size_t outq_bytes;
	/* Set when the queue overflowed; cleared once it has drained to half.
	 * Without this hysteresis a slow reader flaps between 429 and 200 as
	 * the kernel's buffers open a little at a time. */
	int congested;

	int closing;
	int close_code;
	char close_reason[124];
	int peer_closed;
	int peer_code;
	char peer_reason[124];

	/* on the loop's timing wheel (wheel.h), not libwebsockets' timers */
	gw_wheel_entry_t head_timer;
	gw_wheel_entry_t idle_timer;
	gw_wheel_entry_t max_timer;
	gw_wheel_entry_t close_timer; /* a close not written by then drops TCP */
	uint64_t jwks_wait;  /* a JWT waits for this JWKS fetch (authorize) */
	uint64_t jwks_until; /* gw_now_ms() */
	lws_dll2_owner_t waiters;
	lws_dll2_t open_list;

	/* Security at the edge (issue 12): this connection's own buckets, and
	 * whether it counts in its source IP's limits. */
	gw_throttle_t msg_rate, byte_rate;
	int ip_held;
	/* Access log: the upgrade's request ID and $connect's latency. */
	char alog_rid[24];
	int64_t alog_ms;
	/* A JWT authorizer's 401: its www-authenticate challenge (see
	 * gw_authz_result_t) and error_description (static text). */
	int challenge;
	const char *challenge_why;
	int head_held; /* counted among the heads still being sent */

	/* Authorizer (issue 12): requestContext.authorizer of every event of
	 * the connection (at most about GW_AUTHZ_MAX_RESPONSE); while the call
	 * runs, the identity it is cached under and when it started. */
	char *authz_ctx;
	size_t authz_ctx_len;
	gw_buf_t authz_key;
	uint64_t authz_started;
	/* Channels (channel.h): its memberships, and channel messages it
	 * missed because its outgoing queue was full. */
	lws_dll2_owner_t channels;
	uint64_t chan_skips;
	/* Cluster holds of route answers (hold_tx): while any is on, only the
	 * first tx_free queued messages (those queued before it) are written. */
	unsigned tx_holds, tx_free;
};

/* The loop's connections (core.h): the slot table that connection IDs
 * name, every connection by state, and what their inbound queues hold. */
struct gw_conns {
	/* Slot table: IDs name loop, slot and generation (connid.h); a slot's
	 * generation rises each time it is freed, so a stale ID finds nothing. */
	gw_conn_t **slots;
	uint32_t n_slots;
	uint32_t *free_slots;
	uint32_t *slot_gens;
	uint32_t n_free;
	size_t n_conns; /* every conn, whatever its state */
	lws_dll2_owner_t open_conns;
	size_t inbound_bytes;          /* queued inbound messages, all conns */
	lws_dll2_owner_t paused_conns; /* conns not read for inbound flow */
	const gw_conn_chan_hooks_t *chan; /* channel.c's, set by the loop's creator */
};

/* The conn being handed to libwebsockets: its first callback runs inside
 * lws_adopt_socket_vhost, before we get the wsi back. */
static __thread gw_conn_t *adopting;

gw_payload_t *gw_payload_create(const void *data, size_t len)
{
	gw_payload_t *p = malloc(sizeof(*p) + LWS_PRE + len);

	if (!p)
		abort();
	p->refs = 1;
	p->len = len;
	memcpy(p->data + LWS_PRE, data, len);
	return p;
}

void gw_payload_unref(gw_payload_t *p)
{
	if (p && !--p->refs)
		free(p);
}

static void msg_free(gw_msg_t *m)
{
	gw_payload_unref(m->shared);
	free(m);
}

/* Where an outbound message's bytes are, with LWS_PRE headroom before
 * them. A shared payload's headroom takes each member's frame header in
 * turn: the loop writes one member at a time, and libwebsockets copies
 * what a socket does not take at once. */
static unsigned char *msg_bytes(gw_msg_t *m)
{
	return (m->shared ? m->shared->data : m->data) + LWS_PRE;
}

static void free_queue(lws_dll2_owner_t *q)
{
	while (q->head) {
		gw_msg_t *m = lws_container_of(q->head, gw_msg_t, list);
		lws_dll2_remove(&m->list);
		msg_free(m);
	}
}

static void decide_waiters(gw_conn_t *conn, int ok)
{
	while (conn->waiters.head) {
		gw_waiter_t *w = lws_container_of(conn->waiters.head, gw_waiter_t, list);
		lws_dll2_remove(&w->list);
		w->decided(w, ok);
	}
}

/* The port the client connected to: AWS's X-Forwarded-Port. */
static int local_port(const gw_conn_t *conn)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (conn->watch.fd < 0 || getsockname(conn->watch.fd, (struct sockaddr *)&ss, &sl))
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

static void event_ctx(gw_conn_t *conn, gw_event_ctx_t *ctx, const char *route_key,
		      const char *request_id)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->api = conn->api;
	ctx->route_key = route_key;
	ctx->connection_id = conn->id;
	ctx->connected_at = conn->connected_at;
	ctx->request_id = request_id;
	ctx->request_time = gw_wall_ms();
	ctx->source_ip = conn->source_ip;
	ctx->user_agent = conn->user_agent;
	ctx->domain_name = conn->host ? conn->host : "localhost";
	ctx->authorizer = conn->authz_ctx;
	ctx->authorizer_len = conn->authz_ctx_len;
}

/* What the registry (and the $disconnect outbox) keeps of a connection. */
static void fill_record(const gw_conn_t *conn, gw_conn_record_t *rec)
{
	memset(rec, 0, sizeof(*rec));
	memcpy(rec->id, conn->id, sizeof(rec->id));
	snprintf(rec->api, sizeof(rec->api), "%s", conn->api->name);
	snprintf(rec->stage, sizeof(rec->stage), "%s", conn->api->stage);
	snprintf(rec->source_ip, sizeof(rec->source_ip), "%s", conn->source_ip);
	snprintf(rec->user_agent, sizeof(rec->user_agent), "%s",
		 conn->user_agent ? conn->user_agent : "");
	snprintf(rec->host, sizeof(rec->host), "%s", conn->host ? conn->host : "");
	rec->tls = (uint32_t)conn->tls;
	rec->connected_at = rec->last_active_at = conn->connected_at;
	rec->worker = conn->gw->worker;
	rec->slot = conn->slot;
}

static void on_connect_result(gw_conn_t *conn, pending_t *p, const gw_integ_result_t *res);
static void conn_finish(gw_conn_t *conn, int fire, int code, const char *reason);
static void resume_loop_paused(gw_worker_t *gw);

/* The client hung up while $connect runs: its socket goes now, the call
 * stays, and its answer decides whether the backend gets a $disconnect. */
static void client_gone(gw_conn_t *conn, int code, const char *reason)
{
	conn->gone = 1;
	conn->close_code = code;
	snprintf(conn->close_reason, sizeof(conn->close_reason), "%s", reason);
	if (conn->ssl) {
		gw_tls_free(conn->ssl);
		conn->ssl = NULL;
	}
	gw_watch_close(conn->gw, &conn->watch);
	if (!conn->calls.head)
		conn_finish(conn, 0, 0, NULL);
}

static void on_message_result(gw_conn_t *conn, pending_t *p, const gw_integ_result_t *res);
static void on_authorizer_result(gw_conn_t *conn, pending_t *p, const gw_http_resp_t *resp);

/* One access-log line (accesslog.h) for conn, when its API has one. */
static void alog(gw_conn_t *conn, const char *type, const char *rid, const char *route_key,
		 int status, const char *error, int64_t latency_ms, int code, const char *reason)
{
	gw_alog_ctx_t c;
	char own[24];

	if (!conn->api || !conn->api->access_log)
		return;
	if (!rid || !rid[0])
		gw_worker_request_id(conn->gw, own);
	gw_alog_ctx_init(&c);
	c.api_name = conn->api->name;
	c.stage = conn->api->stage;
	c.request_id = rid && rid[0] ? rid : own;
	c.connection_id = conn->id[0] ? conn->id : NULL;
	c.event_type = type;
	c.route_key = route_key;
	c.source_ip = conn->source_ip;
	c.user_agent = conn->user_agent;
	c.status = status;
	c.error = error;
	c.integration_latency_ms = latency_ms;
	c.connected_at = conn->connected_at;
	c.disconnect_code = code;
	c.disconnect_reason = reason;
	gw_alog_write(conn->api->access_log, &c, conn->gw->metrics);
}

/* A $connect's answer is remembered for the CONNECT line (written when the
 * upgrade ends either way); a message's line is written now. */
static void alog_call(pending_t *p, const gw_http_resp_t *resp, const gw_integ_result_t *res)
{
	static const int status[] = { [GW_INTEG_OK] = 200, [GW_INTEG_FAILED] = 500,
				      [GW_INTEG_TIMEOUT] = 504, [GW_INTEG_BUSY] = 429 };
	static const char *const error[] = { [GW_INTEG_OK] = NULL,
		[GW_INTEG_FAILED] = "Internal server error",
		[GW_INTEG_TIMEOUT] = "Endpoint request timed out",
		[GW_INTEG_BUSY] = "Too Many Requests" };

	if (!p->conn)
		return;
	if (p->type == GW_EV_CONNECT) {
		snprintf(p->conn->alog_rid, sizeof(p->conn->alog_rid), "%s", p->request_id);
		p->conn->alog_ms = (int64_t)(resp->duration_us / 1000);
	} else if (p->type == GW_EV_MESSAGE) {
		alog(p->conn, "MESSAGE", p->request_id, p->route->key, status[res->outcome],
		     error[res->outcome], (int64_t)(resp->duration_us / 1000), 0, NULL);
	}
}

static void pending_free(pending_t *p)
{
	gw_config_unref(p->cfg);
	free(p->held_sub);
	free(p);
}

/* The channels' part (gw_conn_chan_hooks_t): none without hooks. */
static int chan_apply(gw_conn_t *conn, const char *subscribe, const char *unsubscribe)
{
	const gw_conn_chan_hooks_t *h = conn->gw->conns->chan;

	return h ? h->apply(conn->gw, conn, subscribe, unsubscribe) : 0;
}

static void chan_leave_all(gw_worker_t *gw, gw_conn_t *conn)
{
	if (gw->conns->chan)
		gw->conns->chan->leave_all(gw, conn);
}

/* --- joins from an answer, in a cluster ---
 * An answer that joins a channel whose subscription this node has not had
 * confirmed by NATS yet (gw_chan_apply) shows the client nothing before
 * that confirmation, as a PUT join's 204 (cluster.h): a publish the client
 * sends through another node once it has seen the answer reaches it. The
 * cluster sends back a bus operation naming the connection by its ID, so a
 * connection closed meanwhile (its slot's generation moved on) is not
 * found, never touched. */
enum { HOLD_CONNECT = 1, HOLD_TX = 2 };

static void on_hold_released(gw_worker_t *gw, gw_op_t *op);

static int hold_for_cluster(gw_conn_t *conn, int kind)
{
	gw_op_t *op = gw_op_create(GW_OP_JOIN, conn->id, GW_CONN_ID_LEN);

	if (!op)
		return 0;
	op->done = on_hold_released;
	op->token = (uint64_t)kind;
	op->from = conn->gw->worker;
	if (gw_cluster_hold(op)) {
		gw_op_destroy(op);
		return 0;
	}
	return 1;
}

/* $connect: the 101 waits. The call stays in conn->calls (done), so a
 * client that hangs up meanwhile is finished by the release, as when it
 * leaves during the call; what the release needs is copied out of the
 * answer (the loop's scratch). 1 when held. */
static int hold_connect(pending_t *p, const gw_integ_result_t *res)
{
	gw_conn_t *conn = p->conn;

	if (conn->gone)
		return 0;
	if (res->subprotocol && !(p->held_sub = strdup(res->subprotocol)))
		return 0;
	if (!hold_for_cluster(conn, HOLD_CONNECT)) {
		free(p->held_sub);
		p->held_sub = NULL;
		return 0;
	}
	p->held = 1;
	p->held_status = res->status_code;
	p->call = NULL;
	lws_dll2_add_tail(&p->list, &conn->calls);
	return 1;
}

/* A route's answer: it is queued as usual, and what is queued from now on
 * (it, posts, channel messages, later answers) waits behind the hold, in
 * order. Messages from the client go on to their routes meanwhile. */
static void hold_tx(gw_conn_t *conn)
{
	if (conn->state != CS_OPEN || !hold_for_cluster(conn, HOLD_TX))
		return;
	if (!conn->tx_holds++)
		conn->tx_free = conn->outq.count;
}

static void release_connect(gw_conn_t *conn)
{
	gw_integ_result_t res;
	pending_t *p = NULL;

	lws_start_foreach_dll(struct lws_dll2 *, d, conn->calls.head) {
		pending_t *q = lws_container_of(d, pending_t, list);

		if (q->held)
			p = q;
	} lws_end_foreach_dll(d);
	if (!p)
		return;
	lws_dll2_remove(&p->list);
	memset(&res, 0, sizeof(res));
	res.outcome = GW_INTEG_OK;
	res.status_code = p->held_status;
	res.subprotocol = p->held_sub;
	on_connect_result(conn, p, &res);
	pending_free(p);
}

static void on_hold_released(gw_worker_t *gw, gw_op_t *op)
{
	gw_conn_t *conn = gw_worker_conn_at(gw, &op->target);
	int kind = (int)op->token;

	gw_op_destroy(op);
	if (!conn)
		return;
	if (kind == HOLD_CONNECT)
		release_connect(conn);
	else if (conn->tx_holds && !--conn->tx_holds && conn->state == CS_OPEN &&
		 conn->outq.head)
		lws_callback_on_writable(conn->wsi);
}

static void on_call_result(void *user, const gw_http_resp_t *resp)
{
	pending_t *p = user;
	gw_integ_result_t res;

	gw_metrics_integration(p->gw->metrics, p->api_id, resp->outcome, resp->status, resp->duration_us);
	if (p->type == GW_EV_AUTHORIZER) {
		/* An authorizer answers in its own shape (authorizer.h). */
		lws_dll2_remove(&p->list);
		on_authorizer_result(p->conn, p, resp);
		free(p);
		return;
	}
	gw_integ_result(p->route->integration, resp, &p->gw->rscratch, &res);
	alog_call(p, resp, &res);
	if (p->conn)
		lws_dll2_remove(&p->list);
	if (p->conn && res.outcome == GW_INTEG_OK && res.status_code / 100 == 2 &&
	    chan_apply(p->conn, res.subscribe, res.unsubscribe)) {
		if (p->type == GW_EV_CONNECT && hold_connect(p, &res))
			return;
		if (p->type == GW_EV_MESSAGE)
			hold_tx(p->conn);
	}
	if (p->type == GW_EV_CONNECT)
		on_connect_result(p->conn, p, &res);
	else if (p->type == GW_EV_MESSAGE)
		on_message_result(p->conn, p, &res);
	pending_free(p);
}

/* Starts an integration call; its answer comes to on_call_result. */
static pending_t *invoke(gw_worker_t *gw, gw_conn_t *conn, const gw_invocation_t *inv)
{
	pending_t *p = calloc(1, sizeof(*p));

	if (!p)
		abort();
	p->gw = gw;
	p->conn = conn;
	p->route = inv->route;
	p->type = inv->type;
	p->api_id = inv->ctx->api->id;
	snprintf(p->request_id, sizeof(p->request_id), "%s", inv->ctx->request_id);
	if (conn)
		lws_dll2_add_tail(&p->list, &conn->calls);
	p->call = gw_integ_invoke(gw->be, inv, &gw->scratch, on_call_result, p);
	return p;
}

static void cancel_calls(gw_conn_t *conn)
{
	while (conn->calls.head) {
		pending_t *p = lws_container_of(conn->calls.head, pending_t, list);

		lws_dll2_remove(&p->list);
		gw_backend_cancel(p->call);
		pending_free(p);
	}
}

static void edge_release(gw_conn_t *conn);

static void conn_free(void *p)
{
	gw_conn_t *conn = p;

	edge_release(conn);
	gw_config_unref(conn->cfg);
	free(conn->user_agent);
	free(conn->host);
	free(conn->subprotocol);
	free(conn->authz_ctx);
	if (conn->authz_key.data)
		OPENSSL_cleanse(conn->authz_key.data, conn->authz_key.cap);
	gw_buf_dispose(&conn->authz_key);
	free(conn);
}

/* Its $disconnect goes to the outbox (outbox.h), which replaces the
 * registry record in one transaction and sends it until the backend
 * answers, across restarts; a loop being destroyed only stores it. */
static void queue_disconnect(gw_conn_t *conn, int code, const char *reason)
{
	gw_worker_t *gw = conn->gw;
	gw_outbox_record_t o;
	int rc;

	memset(&o, 0, sizeof(o));
	fill_record(conn, &o.conn);
	o.code = (uint32_t)code;
	snprintf(o.reason, sizeof(o.reason), "%s", reason ? reason : "");
	o.closed_at = gw_wall_ms();
	gw_worker_request_id(gw, o.request_id);
	if (conn->authz_ctx && conn->authz_ctx_len < sizeof(o.authorizer)) {
		memcpy(o.authorizer, conn->authz_ctx, conn->authz_ctx_len);
		o.authorizer_len = conn->authz_ctx_len;
	}
	rc = gw_outbox_add(gw->outbox, &o, gw_config_ref(conn->cfg));
	if (rc)
		gw_log_limited(GW_LOG_ERROR, 10000, "connection %s: cannot store its "
			       "$disconnect (%s): a crash before it is sent loses it",
			       conn->id, gw_registry_strerror(rc));
	gw_outbox_kick(gw);
}

/* The one place a conn is freed. fire: send $disconnect (established only). */
static void conn_finish(gw_conn_t *conn, int fire, int code, const char *reason)
{
	gw_worker_t *gw = conn->gw;

	if (conn->state == CS_CLOSED)
		return; /* already finished, its memory waits for the safe point */
	if (fire)
		gw_info("connection %s closed: %d %s", conn->id, code, reason);
	if (conn->state == CS_OPEN || conn->state == CS_DRAINING) {
		gw_metrics_disconnect(gw->metrics, conn->api->id, code);
		alog(conn, "DISCONNECT", NULL, "$disconnect", 0, NULL, -1, code, reason);
	}
	conn->state = CS_CLOSED;
	gw_wheel_cancel(&gw->wheel, &conn->head_timer);
	gw_wheel_cancel(&gw->wheel, &conn->idle_timer);
	gw_wheel_cancel(&gw->wheel, &conn->max_timer);
	gw_wheel_cancel(&gw->wheel, &conn->close_timer);
	cancel_calls(conn);
	if (conn->ssl) {
		gw_tls_free(conn->ssl);
		conn->ssl = NULL;
	}
	gw_watch_close(gw, &conn->watch);
	if (conn->wsi)
		lws_set_opaque_user_data(conn->wsi, NULL);
	decide_waiters(conn, 0);
	if (fire && conn->api->disconnect_route) {
		queue_disconnect(conn, code, reason);
	} else if (conn->registered) {
		int rc = gw_registry_delete(gw->reg, conn->id);

		if (rc != GW_REG_OK && rc != GW_REG_NOTFOUND)
			gw_log_limited(GW_LOG_ERROR, 10000, "connection %s: cannot remove its "
				       "registry record: %s", conn->id, gw_registry_strerror(rc));
	}
	if (!lws_dll2_is_detached(&conn->open_list))
		lws_dll2_remove(&conn->open_list);
	gw->conns->inbound_bytes -= conn->inq_bytes;
	conn->inq_bytes = 0;
	if (!lws_dll2_is_detached(&conn->paused_list))
		lws_dll2_remove(&conn->paused_list);
	/* What this connection held may be what kept others paused. */
	resume_loop_paused(gw);
	free_queue(&conn->inq);
	free_queue(&conn->outq);
	chan_leave_all(gw, conn);
	gw_worker_slot_free(gw, conn->slot);
	gw->conns->n_conns--;
	gw_req_destroy(conn->head);
	conn->head = NULL;
	gw_buf_dispose(&conn->rx);
	if (conn->sp_vh)
		gw_vhosts_subprotocol_put(gw->vhosts, conn->sp_vh);
	conn->sp_vh = NULL;
	/* Events of this batch may still name the conn: free it after. */
	gw_defer_free(gw, conn_free, conn);
}

/* The upgrade's request ID: that of the call that decided it ($connect,
 * the authorizer) or else one taken now, so that a refusal's log line,
 * access-log line and apigw-requestid header all name the same one. */
static const char *upgrade_rid(gw_conn_t *conn)
{
	if (!conn->alog_rid[0]) {
		gw_worker_request_id(conn->gw, conn->alog_rid);
		conn->alog_ms = -1; /* no integration latency */
	}
	return conn->alog_rid;
}

/* Writes an answer on the raw socket (before any handover). */
static void answer_raw(gw_conn_t *conn, int status, const char *body, size_t len)
{
	char head[640], www[320] = "";
	const char *rid = upgrade_rid(conn);
	int n;

	alog(conn, "CONNECT", rid, "$connect", status, NULL, conn->alog_ms, 0, NULL);

	/* 1xx would tell the client the upgrade goes on; 204 and 304 carry no
	 * body, or it would be read as a second response. */
	if (status < 200 || status > 599) {
		status = 500;
		body = "{\"message\": \"Internal server error\"}";
		len = strlen(body);
	}
	if (!gw_http_status_allows_body(status))
		len = 0;
	if (status == 401 && conn->challenge == GW_AUTHZ_BEARER)
		snprintf(www, sizeof(www), "WWW-Authenticate: Bearer\r\n");
	else if (status == 401 && conn->challenge == GW_AUTHZ_BEARER_INVALID)
		snprintf(www, sizeof(www), "WWW-Authenticate: Bearer scope=\"\" error=\"invalid_token\" "
			 "error_description=\"%s\"\r\n", conn->challenge_why);
	/* AWS's refusals carry the request ID (reference §8.4), as the
	 * gateway's REST answers do (rest.c). */
	if (status == 204)
		n = snprintf(head, sizeof(head), "HTTP/1.1 204 %s\r\napigw-requestid: %s\r\n"
			     "Connection: close\r\n\r\n", gw_http_reason(status), rid);
	else
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
			     "Content-Length: %zu\r\napigw-requestid: %s\r\n%sConnection: close"
			     "\r\n\r\n", status, gw_http_reason(status), len, rid, www);

	/* Small enough for any socket buffer; a peer that does not read loses
	 * the body, never the loop. A client already gone gets nothing. */
	if (conn->watch.fd < 0) {
		/* nothing to answer */
	} else if (conn->ssl) {
		gw_tls_write_and_close(conn->ssl, head, (size_t)n, body, len);
	} else {
		if (send(conn->watch.fd, head, (size_t)n, MSG_NOSIGNAL) == n && len)
			(void)!send(conn->watch.fd, body, len, MSG_NOSIGNAL);
		shutdown(conn->watch.fd, SHUT_WR);
	}
}

/* Answers on the raw socket and frees the conn; fire: the backend approved
 * it and gets its $disconnect. */
static void respond_raw_fire(gw_conn_t *conn, int status, const char *body, size_t len,
			     int fire)
{
	answer_raw(conn, status, body, len);
	if (fire)
		conn_finish(conn, 1, 1006, "Handshake failed");
	else
		conn_finish(conn, 0, 0, NULL);
}

static void respond_raw(gw_conn_t *conn, int status, const char *body, size_t len)
{
	respond_raw_fire(conn, status, body, len, 0);
}

#define RAW_JSON(conn, status, lit) respond_raw(conn, status, lit, sizeof(lit) - 1)

/* --- handover to libwebsockets --- */

/* Takes the socket off the gateway's epoll set and out of the conn: the
 * socket itself, or for TLS the plaintext end of a relay that starts with
 * the head already read. -1 if the relay could not be set up. */
static int detach_socket(gw_conn_t *conn)
{
	gw_worker_t *gw = conn->gw;
	int fd = conn->watch.fd;

	gw_loop_del(gw->loop, &conn->watch);
	conn->watch.fd = -1;
	if (conn->peek_off) {
		static const int off = -1;

		setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
	}
	if (conn->ssl) {
		gw_str_t all = gw_req_bytes(conn->head);
		gw_tls_t *ssl = conn->ssl;

		conn->ssl = NULL;
		fd = gw_relay_start(gw, ssl, fd, all.ptr, all.len);
	}
	return fd;
}

/* Gives the socket to libwebsockets. Returns the wsi or NULL. */
static struct lws *hand_over(gw_conn_t *conn, struct lws_vhost *vh)
{
	int fd = detach_socket(conn);

	return fd < 0 ? NULL : lws_adopt_socket_vhost(vh, fd);
}

static void refuse_approved(gw_conn_t *conn);

static void handshake_accept(gw_conn_t *conn)
{
	gw_worker_t *gw = conn->gw;
	struct lws_vhost *vh = gw->vh_ws;
	struct lws *wsi;
	char first[64];
	int client_chosen = 0;

	/* libwebsockets only completes an upgrade whose offered subprotocol
	 * names one of the vhost's protocols, and echoes that name: so the
	 * handshake is adopted by a vhost named after the chosen protocol.
	 * When the client offered some and the integration chose none, the
	 * client's first preference is taken rather than failing the client. */
	if (conn->offered_protocols && !conn->subprotocol) {
		gw_str_t v = gw_req_get(conn->head, "Sec-WebSocket-Protocol");
		size_t n = 0;

		while (n < v.len && n < sizeof(first) - 1 && v.ptr[n] != ',' && v.ptr[n] != ' ' &&
		       v.ptr[n] != '\t')
			n++;
		memcpy(first, v.ptr, n);
		first[n] = '\0';
		conn->subprotocol = strdup(first);
		client_chosen = 1;
	}
	if (conn->subprotocol) {
		vh = conn->sp_vh = gw_vhosts_subprotocol_get(gw->vhosts, conn->subprotocol,
							     &gw_ws_protocol, client_chosen);
		if (!vh) {
			gw_log_limited(GW_LOG_WARN, 10000, "connection %s refused: cannot serve "
				       "subprotocol \"%.64s\"", conn->id, conn->subprotocol);
			refuse_approved(conn);
			return;
		}
	}
	conn->state = CS_ADOPTED;
	adopting = conn;
	conn->in_adopt = 1;
	wsi = hand_over(conn, vh);
	conn->in_adopt = 0;
	adopting = NULL;
	if (!wsi || conn->died_in_adopt) {
		/* libwebsockets refused what the gateway accepted. */
		conn_finish(conn, conn->approved, 1006, "Handshake failed");
		return;
	}
	/* The head (up to 16 KB) is not needed for the life of the socket. */
	gw_req_destroy(conn->head);
	conn->head = NULL;
}

/* Whether name is one of the client's Sec-WebSocket-Protocol values. */
static int protocol_offered(gw_conn_t *conn, const char *name)
{
	size_t nlen = strlen(name), nh = gw_req_header_count(conn->head);

	for (size_t i = 0; i < nh; i++) {
		gw_str_t k, v;
		const char *p, *end;

		gw_req_header(conn->head, i, &k, &v);
		if (k.len != 22 || strncasecmp(k.ptr, "Sec-WebSocket-Protocol", 22))
			continue;
		for (p = v.ptr, end = v.ptr + v.len; p < end;) {
			const char *q;

			while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
				p++;
			q = p;
			while (q < end && *q != ',' && *q != ' ' && *q != '\t')
				q++;
			if ((size_t)(q - p) == nlen && !memcmp(p, name, nlen))
				return 1;
			p = q;
		}
	}
	return 0;
}

/* $connect said yes but the upgrade cannot go on: the client gets 500 and
 * the backend, which counts the connection as open, its $disconnect. */
static void refuse_approved(gw_conn_t *conn)
{
	static const char body[] = "{\"message\": \"Internal server error\"}";

	respond_raw_fire(conn, 500, body, sizeof(body) - 1, conn->approved);
}

static void on_connect_result(gw_conn_t *conn, pending_t *p, const gw_integ_result_t *res)
{
	if (res->outcome != GW_INTEG_OK || res->status_code < 200 || res->status_code > 299)
		gw_metrics_count(conn->gw->metrics, conn->api->id, GW_M_REJ_CONNECT);
	if (conn->gone) {
		/* The backend approved a connection whose client had left: it
		 * counts it as open, so it hears of its end. */
		int approved = res->outcome == GW_INTEG_OK && res->status_code >= 200 &&
			       res->status_code <= 299;

		conn_finish(conn, approved, conn->close_code, conn->close_reason);
		return;
	}
	switch (res->outcome) {
	case GW_INTEG_OK:
		break;
	case GW_INTEG_BUSY:
		gw_warn("connection %s refused: $connect integration busy (request %s)",
			conn->id, p->request_id);
		RAW_JSON(conn, 429, "{\"message\": \"Too Many Requests\"}");
		return;
	case GW_INTEG_TIMEOUT:
		gw_warn("connection %s refused: $connect integration timed out (request %s)",
			conn->id, p->request_id);
		RAW_JSON(conn, 500, "{\"message\": \"Internal server error\"}");
		return;
	default:
		/* AWS answers a Lambda that throws, crashes or gives a bad
		 * answer with 502 (issue 15 item 2; AWS's timeout answer is
		 * unconfirmed and stays 500). */
		gw_warn("connection %s refused: $connect integration failed (request %s)",
			conn->id, p->request_id);
		RAW_JSON(conn, 502, "{\"message\": \"Internal server error\"}");
		return;
	}
	if (res->status_code < 200 || res->status_code > 299) {
		gw_info("connection %s refused by $connect: %d", conn->id, res->status_code);
		respond_raw(conn, res->status_code, res->body, res->body_len);
		return;
	}
	conn->approved = 1;
	if (res->subprotocol) {
		/* A name the client did not offer fails every client (RFC 6455
		 * 4.1): answer, and tell the backend the connection is gone. */
		if (!protocol_offered(conn, res->subprotocol)) {
			gw_warn("connection %s refused: $connect chose subprotocol \"%.64s\" "
				"that the client did not offer (request %s)", conn->id,
				res->subprotocol, p->request_id);
			refuse_approved(conn);
			return;
		}
		free(conn->subprotocol);
		conn->subprotocol = strdup(res->subprotocol);
	}
	handshake_accept(conn);
}

static void on_head_timeout(gw_wheel_entry_t *e)
{
	gw_conn_t *conn = lws_container_of(e, gw_conn_t, head_timer);

	RAW_JSON(conn, 408, "{\"message\":\"Request Timeout\"}");
}

/* --- admission at the edge (issue 12) ---
 * Checked once the API is known and before the connection is registered or
 * any integration hears of it: a refusal costs no backend call. */

/* The one Origin header: NULL when there is none, and *n = 2 when there
 * are several (which no browser sends). */
static gw_str_t single_header(gw_conn_t *conn, const char *name, int *n)
{
	*n = (int)gw_req_count(conn->head, name);
	return gw_req_get(conn->head, name);
}

/* allowedOrigins: a browser always sends Origin on an upgrade, so a page of
 * another site is refused here; a client without Origin is not a browser
 * (it could send any Origin it likes) and passes, as on AWS. */
static int origin_allowed(gw_conn_t *conn)
{
	int n;
	gw_str_t o = single_header(conn, "Origin", &n);

	if (!conn->api->origins_restricted || !n)
		return 1;
	return n == 1 && gw_admit_origin(conn->api->allowed_origins,
					 conn->api->n_allowed_origins, o.ptr, o.len);
}

/* The API key from x-api-key, or else from the configured query parameter
 * (browsers cannot set headers on an upgrade). */
static int api_key_valid(gw_conn_t *conn)
{
	const gw_api_t *api = conn->api;
	gw_buf_t *val = &conn->gw->rscratch;
	gw_str_t url, k;
	const char *q;
	int n, ok;

	if (!api->api_key_required)
		return 1;
	k = single_header(conn, "x-api-key", &n);
	if (n)
		return n == 1 && gw_admit_api_key(api->api_keys, api->n_api_keys, k.ptr, k.len);
	url = gw_req_url(conn->head);
	q = memchr(url.ptr, '?', url.len);
	if (!api->api_key_query || !q)
		return 0;
	if (gw_admit_query_param(q + 1, url.len - (size_t)(q + 1 - url.ptr), api->api_key_query,
				 val) != 1)
		return 0;
	ok = gw_admit_api_key(api->api_keys, api->n_api_keys, val->data ? val->data : "",
			      val->len);
	OPENSSL_cleanse(val->data, val->len);
	return ok;
}

/* sourceIpLimits: connections open at once and new ones per second, per
 * source address (IPv6 per /64), over every loop. 0 after answering 429. */
static int source_ip_admitted(gw_conn_t *conn)
{
	const gw_api_t *api = conn->api;
	enum gw_iplimit_result rc;
	const char *rid;

	if (!api->ip_limited)
		return 1;
	rc = gw_iplimit_acquire(conn->source_ip, &api->ip_rule, gw_throttle_now_ns());
	if (rc == GW_IPLIMIT_OK)
		conn->ip_held = 1;
	if (rc == GW_IPLIMIT_OK || rc == GW_IPLIMIT_BAD_ADDR)
		return 1;
	rid = upgrade_rid(conn);
	gw_log_limited(GW_LOG_WARN, 10000, "upgrade throttled (429, request %s, api %s, %s): %s",
		       rid, api->name, conn->source_ip, rc == GW_IPLIMIT_TOO_MANY
		       ? "sourceIpLimits.maxConnections reached"
		       : "sourceIpLimits.newConnections rate limit");
	gw_metrics_count(conn->gw->metrics, api->id, GW_M_REJ_SOURCE_IP);
	RAW_JSON(conn, 429, "{\"message\":\"Too Many Requests\"}");
	return 0;
}

/* 1: the upgrade goes on to $connect; 0: it was answered (403, 429). */
static int admit_upgrade(gw_conn_t *conn)
{
	const gw_api_t *api = conn->api;
	const char *rid;

	/* The source address first: its rate also bounds how fast one address
	 * can try keys. */
	if (!source_ip_admitted(conn))
		return 0;
	if (!origin_allowed(conn)) {
		int n;
		gw_str_t o = single_header(conn, "Origin", &n);

		rid = upgrade_rid(conn);
		gw_log_limited(GW_LOG_WARN, 10000, "upgrade refused (403, request %s, api %s, "
			       "%s): Origin \"%.*s\" is not in allowedOrigins", rid, api->name,
			       conn->source_ip, (int)(o.len > 100 ? 100 : o.len), o.ptr);
		gw_metrics_count(conn->gw->metrics, api->id, GW_M_REJ_ORIGIN);
		RAW_JSON(conn, 403, "{\"message\":\"Forbidden\"}");
		return 0;
	}
	if (!api_key_valid(conn)) {
		rid = upgrade_rid(conn);
		gw_log_limited(GW_LOG_WARN, 10000, "upgrade refused (403, request %s, api %s, "
			       "%s): missing or invalid API key", rid, api->name,
			       conn->source_ip);
		gw_metrics_count(conn->gw->metrics, api->id, GW_M_REJ_API_KEY);
		RAW_JSON(conn, 403, "{\"message\":\"Forbidden\"}");
		return 0;
	}
	if (api->upgrade_throttle &&
	    !gw_throttle_take(api->upgrade_throttle, gw_throttle_now_ns(), 1)) {
		rid = upgrade_rid(conn);
		gw_log_limited(GW_LOG_WARN, 10000, "upgrade throttled (429, request %s, api %s, "
			       "%s): $connect rate limit", rid, api->name, conn->source_ip);
		gw_metrics_count(conn->gw->metrics, api->id, GW_M_REJ_CONNECT_RATE);
		RAW_JSON(conn, 429, "{\"message\":\"Too Many Requests\"}");
		return 0;
	}
	if (api->conn_messages.set)
		gw_throttle_init(&conn->msg_rate, api->conn_messages.rate, api->conn_messages.burst);
	if (api->conn_bytes.set)
		gw_throttle_init(&conn->byte_rate, api->conn_bytes.rate, api->conn_bytes.burst);
	return 1;
}

/* Gives back what admission took (its place in the source IP's count):
 * called once, when the conn is freed. */
static void edge_release(gw_conn_t *conn)
{
	if (conn->ip_held)
		gw_iplimit_release(conn->source_ip, gw_throttle_now_ns());
	conn->ip_held = 0;
	if (conn->head_held)
		gw_iplimit_head_release(conn->source_ip);
	conn->head_held = 0;
}

/* Slowloris: connections still sending their head are bounded in the
 * process and per source address (--max-pending-heads, ...-per-ip), so
 * that slow heads cannot take every descriptor; each is also bounded in
 * time (HEAD_TIMEOUT_S). 0 after refusing: a plain socket hears 503, a TLS
 * one is closed (no session to answer in yet). */
static int head_admitted(gw_conn_t *conn)
{
	const char *rid;
	int per_ip;

	if (gw_iplimit_head_acquire(conn->source_ip, &per_ip) == GW_IPLIMIT_OK) {
		conn->head_held = 1;
		return 1;
	}
	rid = upgrade_rid(conn);
	gw_metrics_head_refused(conn->gw->metrics);
	if (per_ip)
		gw_log_limited(GW_LOG_WARN, 10000, "connection from %s refused (503, request "
			       "%s): --max-pending-heads-per-ip reached", conn->source_ip, rid);
	else
		gw_log_limited(GW_LOG_WARN, 10000, "connection from %s refused (503, request "
			       "%s): --max-pending-heads reached", conn->source_ip, rid);
	if (conn->gw->tls)
		conn_finish(conn, 0, 0, NULL);
	else
		RAW_JSON(conn, 503, "{\"message\":\"Service Unavailable\"}");
	return 0;
}

static void head_done(gw_conn_t *conn)
{
	if (conn->head_held)
		gw_iplimit_head_release(conn->source_ip);
	conn->head_held = 0;
}

/* The key is the client's secret toward the gateway: the $connect event
 * does not carry it (neither the x-api-key header nor its query
 * parameter). Returns the headers kept; the query is rewritten into out. */
static size_t strip_api_key(gw_conn_t *conn, gw_header_t *h, size_t nh, const char **query,
			    size_t *qlen, gw_buf_t *out)
{
	const char *name = conn->api->api_key_query, *q = *query, *end;
	size_t kept = 0, nl;

	if (!conn->api->api_key_required)
		return nh;
	for (size_t i = 0; i < nh; i++)
		if (!(h[i].name.len == 9 && !strncasecmp(h[i].name.ptr, "x-api-key", 9)))
			h[kept++] = h[i];
	if (!name || !q)
		return kept;
	nl = strlen(name);
	end = q + *qlen;
	gw_buf_reset(out);
	for (const char *p = q; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp ? amp : end;

		if (!((size_t)(e - p) >= nl && !memcmp(p, name, nl) &&
		      (p + nl == e || p[nl] == '='))) {
			if (out->len)
				gw_buf_append_char(out, '&');
			gw_buf_append(out, p, (size_t)(e - p));
		}
		p = amp ? amp + 1 : end;
	}
	*query = out->len ? out->data : NULL;
	*qlen = out->len;
	return kept;
}

/* --- authorizer on $connect (issue 12, authorizer.h) --- */

static void call_connect(gw_conn_t *conn);

/* The authorizer's verdict: on to $connect with its context, or the
 * client's 401/403/500 without any $connect call. */
static void authorized(gw_conn_t *conn, gw_authz_result_t *res, const char *rid)
{
	const char *body;
	int status;

	if (res->verdict == GW_AUTHZ_ALLOW) {
		conn->authz_ctx = res->context; /* taken over */
		conn->authz_ctx_len = res->context_len;
		res->context = NULL;
		/* Beside the record, for the $disconnect a crash leaves owed. */
		if (conn->authz_ctx && conn->registered)
			gw_registry_set_authorizer(conn->gw->reg, conn->id, conn->authz_ctx,
						   conn->authz_ctx_len);
		call_connect(conn);
		return;
	}
	status = gw_authz_status(res->verdict, &body);
	if (!conn->alog_rid[0]) {
		snprintf(conn->alog_rid, sizeof(conn->alog_rid), "%s", rid);
		conn->alog_ms = -1;
	}
	/* One line per kind and interval: a failing authorizer is worth a
	 * warning even while clients are being denied. */
#define AUTHZ_LOG(level) gw_log_limited(level, 10000, "upgrade refused (%d, request %s, api %s, " \
		"%s): authorizer %s: %s", status, rid, conn->api->name, conn->source_ip, \
		conn->api->connect_authorizer->name, res->why)
	if (res->verdict == GW_AUTHZ_ERROR)
		AUTHZ_LOG(GW_LOG_WARN);
	else if (res->verdict == GW_AUTHZ_DENY)
		AUTHZ_LOG(GW_LOG_INFO);
	else
		AUTHZ_LOG(GW_LOG_INFO);
#undef AUTHZ_LOG
	conn->challenge = res->challenge;
	conn->challenge_why = res->why;
	gw_authz_result_dispose(res);
	respond_raw(conn, status, body, strlen(body));
}

/* The identity (a token, often) is not kept for the connection's life. */
static void forget_identity(gw_conn_t *conn)
{
	if (conn->authz_key.data)
		OPENSSL_cleanse(conn->authz_key.data, conn->authz_key.cap);
	gw_buf_dispose(&conn->authz_key);
}

static void on_authorizer_result(gw_conn_t *conn, pending_t *p, const gw_http_resp_t *resp)
{
	const gw_authorizer_t *a = conn->api->connect_authorizer;
	gw_authz_result_t res;
	gw_buf_t arn;

	if (conn->gone) {
		/* No backend heard of the connection: nothing to tell. */
		conn_finish(conn, 0, 0, NULL);
		return;
	}
	gw_buf_init(&arn);
	gw_authz_method_arn(conn->api, &arn);
	gw_buf_append_char(&arn, '\0');
	gw_authz_decide(arn.data, resp, gw_now_ms() - conn->authz_started, &res);
	gw_buf_dispose(&arn);
	gw_authz_cache_put(a, conn->authz_key.data, conn->authz_key.len, gw_now_ms(), &res);
	forget_identity(conn);
	authorized(conn, &res, p->request_id);
}

/* A JWT naming an unknown kid waits (on the head timer, unused by then)
 * for the fetch of the JWKS it asked for, or JWKS_WAIT_MS at most. */
#define JWKS_WAIT_MS 3000

static void on_jwks_poll(gw_wheel_entry_t *e)
{
	gw_conn_t *conn = lws_container_of(e, gw_conn_t, head_timer);
	const gw_authorizer_t *a = conn->api->connect_authorizer;
	gw_authz_result_t res;
	char rid[24];

	if (!gw_jwks_done(a, conn->jwks_wait) && gw_now_ms() < conn->jwks_until) {
		gw_wheel_set(&conn->gw->wheel, &conn->head_timer, gw_now_ms() + GW_WHEEL_TICK_MS,
			     on_jwks_poll);
		return;
	}
	gw_worker_request_id(conn->gw, rid);
	gw_authz_jwt(a, conn->api, conn->head, gw_wall_ms(), gw_now_ms(), 0, &res);
	authorized(conn, &res, rid);
}

/* Runs the API's authorizer: a missing identity is 401 without a call, a
 * cached verdict is used as is, else the authorizer is called (the upgrade
 * stays pending, as for $connect). */
static void authorize(gw_conn_t *conn)
{
	const gw_authorizer_t *a = conn->api->connect_authorizer;
	gw_worker_t *gw = conn->gw;
	gw_authz_result_t res;
	char rid[24];

	gw_worker_request_id(gw, rid);
	if (a->type == GW_AUTHZ_JWT) {
		/* Checked here, with the keys in use: no call. An unknown kid
		 * may wait for a fetch of the JWKS (authorizer.h), pending as
		 * for $connect. */
		gw_authz_jwt(a, conn->api, conn->head, gw_wall_ms(), gw_now_ms(), 1, &res);
		if (res.jwks_wait) {
			conn->jwks_wait = res.jwks_wait;
			conn->jwks_until = gw_now_ms() + JWKS_WAIT_MS;
			gw_wheel_set(&gw->wheel, &conn->head_timer, gw_now_ms() + GW_WHEEL_TICK_MS,
				     on_jwks_poll);
			return;
		}
		authorized(conn, &res, rid);
		return;
	}
	gw_buf_init(&conn->authz_key);
	if (gw_authz_identity(a, conn->api, conn->head, &conn->authz_key)) {
		memset(&res, 0, sizeof(res));
		res.verdict = GW_AUTHZ_UNAUTHORIZED;
		res.why = "an identity source is missing or empty";
		forget_identity(conn);
		authorized(conn, &res, rid);
		return;
	}
	if (gw_authz_cache_get(a, conn->authz_key.data, conn->authz_key.len, gw_now_ms(), &res)) {
		forget_identity(conn);
		authorized(conn, &res, rid);
		return;
	}
	{
		gw_str_t url = gw_req_url(conn->head);
		const char *q = memchr(url.ptr, '?', url.len), *query = q ? q + 1 : NULL;
		size_t nh = gw_req_header_count(conn->head);
		size_t qlen = q ? url.len - (size_t)(q + 1 - url.ptr) : 0;
		gw_header_t headers[128];
		gw_invocation_t inv;
		gw_event_ctx_t ctx;
		gw_buf_t kept, arn;

		if (nh > 128)
			nh = 128;
		for (size_t i = 0; i < nh; i++)
			gw_req_header(conn->head, i, &headers[i].name, &headers[i].value);
		gw_buf_init(&kept);
		gw_buf_init(&arn);
		nh = strip_api_key(conn, headers, nh, &query, &qlen, &kept);
		gw_authz_method_arn(conn->api, &arn);
		gw_buf_append_char(&arn, '\0');
		event_ctx(conn, &ctx, "$connect", rid);
		memset(&inv, 0, sizeof(inv));
		inv.route = &a->route;
		inv.type = GW_EV_AUTHORIZER;
		inv.ctx = &ctx;
		inv.tls = conn->tls;
		inv.forwarded_port = local_port(conn);
		inv.headers = headers;
		inv.n_headers = nh;
		inv.query = query;
		inv.query_len = qlen;
		inv.method_arn = arn.data;
		conn->authz_started = gw_now_ms();
		invoke(gw, conn, &inv);
		gw_buf_dispose(&kept);
		gw_buf_dispose(&arn);
	}
}

static void start_connect(gw_conn_t *conn)
{
	gw_worker_t *gw = conn->gw;
	gw_str_t ua = gw_req_get(conn->head, "User-Agent");
	gw_str_t host = gw_req_get(conn->head, "Host");
	gw_conn_record_t rec;
	int rc;

	conn->state = CS_CONNECTING;
	conn->connected_at = gw_wall_ms();
	conn->last_active = gw_now_ms();
	if (ua.ptr)
		conn->user_agent = strndup(ua.ptr, ua.len);
	if (host.ptr)
		conn->host = strndup(host.ptr, host.len);
	conn->offered_protocols = gw_req_get(conn->head, "Sec-WebSocket-Protocol").ptr != NULL;

	fill_record(conn, &rec);
	/* The ID names this loop, slot and generation (bus.h): never reused. */
	rc = GW_REG_ERROR;
	if (!gw_worker_conn_id(gw, conn->slot, conn->api->id, conn->id)) {
		memcpy(rec.id, conn->id, sizeof(rec.id));
		rc = gw_registry_insert(gw->reg, &rec);
	}
	if (rc) {
		gw_log_limited(GW_LOG_ERROR, 10000, "cannot register a new connection: %s",
			       gw_registry_strerror(rc));
		RAW_JSON(conn, 500, "{\"message\": \"Internal server error\"}");
		return;
	}
	conn->registered = 1;
	if (conn->api->connect_authorizer)
		authorize(conn);
	else
		call_connect(conn);
}

/* The $connect integration, once the upgrade is admitted (and authorized). */
static void call_connect(gw_conn_t *conn)
{
	gw_worker_t *gw = conn->gw;
	gw_str_t url = gw_req_url(conn->head);
	gw_header_t headers[128];
	size_t nh = gw_req_header_count(conn->head);
	const char *q;
	size_t qlen = 0;

	if (!conn->api->connect_route) {
		handshake_accept(conn);
		return;
	}
	if (nh > 128)
		nh = 128;
	for (size_t i = 0; i < nh; i++)
		gw_req_header(conn->head, i, &headers[i].name, &headers[i].value);
	q = memchr(url.ptr, '?', url.len);
	if (q)
		qlen = url.len - (size_t)(q + 1 - url.ptr);
	{
		gw_invocation_t inv;
		gw_event_ctx_t ctx;
		char rid[24];
		const char *query = q ? q + 1 : NULL;
		gw_buf_t kept;

		gw_buf_init(&kept);
		nh = strip_api_key(conn, headers, nh, &query, &qlen, &kept);

		gw_worker_request_id(gw, rid);
		event_ctx(conn, &ctx, "$connect", rid);
		memset(&inv, 0, sizeof(inv));
		inv.route = conn->api->connect_route;
		inv.type = GW_EV_CONNECT;
		inv.ctx = &ctx;
		inv.tls = conn->tls;
		inv.forwarded_port = local_port(conn);
		inv.headers = headers;
		inv.n_headers = nh;
		inv.query = query;
		inv.query_len = qlen;
		invoke(gw, conn, &inv);
		gw_buf_dispose(&kept);
	}
}

/* Issue 15 item 3: AWS serves @connections on the API's own host too
 * (execute-api), so a handler that builds its endpoint from domainName and
 * stage reaches it. Whether path (no query) is "/{stage}/@connections" or
 * below it; "%40" for "@" counts, as the management API decodes it. */
static int mgmt_path(const char *p, size_t len)
{
	const char *seg;

	if (len < 3 || p[0] != '/' || p[1] == '/' || !(seg = memchr(p + 1, '/', len - 1)))
		return 0;
	seg++;
	return gw_http_conns_segment(seg, (size_t)(p + len - seg));
}

/* A management request's head goes to libwebsockets' management vhost,
 * unless libwebsockets would drop it without a word (over its fragment or
 * header space limits, ~94 URI arguments and known headers): that one is
 * answered here. from_gateway: its answer ends the connection (the
 * gateway's own port), so each later request is checked the same way. */
static void to_mgmt_vhost(gw_conn_t *conn, int from_gateway)
{
	gw_worker_t *gw = conn->gw;
	struct lws *wsi = NULL;
	const char *why = "";
	int fd;

	switch (gw_req_check_lws(conn->head, GW_LWS_HEADER_SPACE, &why)) {
	case GW_REQ_DONE:
		break;
	case GW_REQ_HEAD_TOO_LARGE:
		gw_log_limited(GW_LOG_INFO, 10000, "management request refused (431, request "
			       "%s): %s", upgrade_rid(conn), why);
		RAW_JSON(conn, 431, "{\"message\":\"Request Header Fields Too Large\"}");
		return;
	default:
		gw_log_limited(GW_LOG_INFO, 10000, "management request refused (400, request "
			       "%s): %s", upgrade_rid(conn), why);
		RAW_JSON(conn, 400, "{\"message\":\"Bad Request\"}");
		return;
	}
	fd = detach_socket(conn);
	if (fd >= 0 && !(wsi = lws_adopt_socket_vhost(gw->vh_mgmt, fd)))
		gw_log_limited(GW_LOG_WARN, 10000, "management: cannot adopt a connection");
	if (wsi && from_gateway)
		gw_vhosts_mark_from_gateway(wsi);
	conn_finish(conn, 0, 0, NULL);
}

/* With managementAuth (or --mgmt-on-gateway), a plain request for such a
 * path goes, unread, to the management vhost, which serves it as on its
 * own listener: SigV4 checks the Host the client signed (this listener's).
 * Over TLS the relay hands it the plaintext, as for WebSocket. AWS
 * reserves @connections, so it wins over a REST route. Its answers end
 * the connection (gw_vhosts_mark_from_gateway), so a later request that is REST
 * comes on a new one; a REST connection hands later management requests
 * over the same way (rest.c). 1 when handed over. */
static int mgmt_on_gateway(gw_conn_t *conn, const char *path, size_t len)
{
	gw_worker_t *gw = conn->gw;

	if (!(gw_gateway_mgmt_on_gateway(gw->sh) || gw_config_mgmt_auth(gw->cfg)) || !mgmt_path(path, len))
		return 0;
	to_mgmt_vhost(conn, 1);
	return 1;
}

static void head_complete(gw_conn_t *conn)
{
	gw_worker_t *gw = conn->gw;
	gw_str_t url = gw_req_url(conn->head);
	const char *q = memchr(url.ptr, '?', url.len);
	size_t plen = q ? (size_t)(q - url.ptr) : url.len;
	int upgrade = gw_req_is_websocket(conn->head);
	const char *why = "";

	gw_wheel_cancel(&gw->wheel, &conn->head_timer);
	head_done(conn);
	if (conn->mgmt) {
		to_mgmt_vhost(conn, 0);
		return;
	}
	if (!upgrade && mgmt_on_gateway(conn, url.ptr, plen))
		return;
	if (!upgrade) {
		/* Plain HTTP: REST routes (rest.c), on the same socket. */
		int tls = conn->ssl != NULL, fd = detach_socket(conn);

		if (fd >= 0)
			gw_rest_accept(gw, fd, conn->source_ip, tls);
		conn_finish(conn, 0, 0, NULL);
		return;
	}
	if (strcmp(gw_req_method(conn->head), "GET")) {
		RAW_JSON(conn, 400, "{\"message\":\"Bad Request\"}");
		return;
	}
	/* What libwebsockets would refuse after $connect said yes is refused
	 * now, before any backend hears of the connection. */
	switch (gw_req_check_websocket(conn->head, GW_LWS_HEADER_SPACE, &why)) {
	case GW_REQ_DONE:
		break;
	case GW_REQ_HEAD_TOO_LARGE:
		gw_log_limited(GW_LOG_INFO, 10000, "upgrade refused (431): %s", why);
		RAW_JSON(conn, 431, "{\"message\":\"Request Header Fields Too Large\"}");
		return;
	default:
		gw_log_limited(GW_LOG_INFO, 10000, "upgrade refused (400): %s", why);
		RAW_JSON(conn, 400, "{\"message\":\"Bad Request\"}");
		return;
	}
	/* A reload while the head was read: the connection takes the new
	 * routes, as every connection opened after it. */
	if (conn->cfg != gw->cfg) {
		gw_config_unref(conn->cfg);
		conn->cfg = gw_config_ref(gw->cfg);
	}
	conn->api = gw_config_api_for_path(conn->cfg, url.ptr, plen);
	if (!conn->api) {
		/* AWS answers an upgrade on a path it does not serve (a path
		 * after the stage, say) with 403 (issue 15 item 5). */
		RAW_JSON(conn, 403, "{\"message\":\"Forbidden\"}");
		return;
	}
	if (gw_worker_stopping(gw)) {
		RAW_JSON(conn, 503, "{\"message\":\"Service Unavailable\"}");
		return;
	}
	if (!admit_upgrade(conn))
		return;
	start_connect(conn);
}

static void conn_on_io(gw_watch_t *w, uint32_t events);

static void accept_conn(gw_worker_t *gw, int fd, int mgmt)
{
	gw_conn_t *conn = calloc(1, sizeof(*conn));
	struct sockaddr_storage sa;
	socklen_t salen = sizeof(sa);
	uint32_t events;

	if (!conn)
		abort();
	conn->gw = gw;
	conn->cfg = gw_config_ref(gw->cfg);
	conn->tls = !mgmt && gw->tls != NULL;
	conn->mgmt = mgmt;
	conn->watch.cb = conn_on_io;
	conn->watch.fd = fd;
	conn->head = gw_req_create_head(HEAD_MAX_BYTES);
	gw_buf_init(&conn->rx);
	gw->conns->n_conns++;
	gw_worker_slot_alloc(gw, conn, &conn->slot);
	if (!getpeername(fd, (struct sockaddr *)&sa, &salen)) {
		if (sa.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
			inet_ntop(AF_INET6, &s6->sin6_addr, conn->source_ip, sizeof(conn->source_ip));
			if (!strncmp(conn->source_ip, "::ffff:", 7))
				memmove(conn->source_ip, conn->source_ip + 7,
					strlen(conn->source_ip + 7) + 1);
		} else {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr,
				  conn->source_ip, sizeof(conn->source_ip));
		}
	}
	/* (management clients were never bounded so: many SDK clients on
	 * one host open connections at once) */
	if (!mgmt && !head_admitted(conn))
		return;
	/* Edge-triggered: the head is peeked, not read, so a level-triggered
	 * watch would fire forever on a partial head. TLS also needs to know
	 * when a handshake write can go on. */
	events = EPOLLIN | EPOLLRDHUP | EPOLLET | (conn->tls ? EPOLLOUT : 0);
	if (conn->tls) {
		conn->ssl = gw_tls_new(gw, fd);
		if (!conn->ssl) {
			conn_finish(conn, 0, 0, NULL);
			return;
		}
	}
	if (gw_loop_add(gw->loop, &conn->watch, events)) {
		gw_err("epoll_ctl: %s", strerror(errno));
		conn_finish(conn, 0, 0, NULL);
		return;
	}
	gw_wheel_set(&gw->wheel, &conn->head_timer, gw_now_ms() + HEAD_TIMEOUT_S * 1000,
		     on_head_timeout);
}

void gw_conn_accept(gw_worker_t *gw, int fd)
{
	accept_conn(gw, fd, 0);
}

void gw_conn_accept_mgmt(gw_worker_t *gw, int fd)
{
	accept_conn(gw, fd, 1);
}

/* Acts on the state of the request head; 1 while more bytes are needed. */
static int head_progress(gw_conn_t *conn, enum gw_req_status st)
{
	switch (st) {
	case GW_REQ_MORE:
		return 1;
	case GW_REQ_DONE:
		head_complete(conn);
		break;
	case GW_REQ_BAD:
		RAW_JSON(conn, 400, "{\"message\":\"Bad Request\"}");
		break;
	case GW_REQ_HEAD_TOO_LARGE:
	case GW_REQ_BODY_TOO_LARGE: /* (not in head mode) */
		RAW_JSON(conn, 431, "{\"message\":\"Request Header Fields Too Large\"}");
		break;
	}
	return 0;
}

static void conn_on_io(gw_watch_t *w, uint32_t events)
{
	gw_conn_t *conn = lws_container_of(w, gw_conn_t, watch);
	char buf[HEAD_MAX_BYTES];
	enum gw_req_status st;
	size_t fed;
	ssize_t n;

	if (conn->state == CS_CONNECTING) {
		/* Bytes sent early stay in the socket for libwebsockets; only a
		 * hang-up matters. Nothing was established: no $disconnect. */
		if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
			gw_info("connection %s: client left during $connect", conn->id);
			client_gone(conn, 1006, "Connection lost");
		}
		return;
	}
	if (conn->ssl) {
		/* TLS cannot be peeked at: read the plaintext and keep it; the
		 * relay replays it to libwebsockets. */
		for (;;) {
			n = gw_tls_read(conn->ssl, buf, sizeof(buf));
			if (n < 0) {
				conn_finish(conn, 0, 0, NULL);
				return;
			}
			if (!n)
				return;
			if (!head_progress(conn, gw_req_feed(conn->head, buf, (size_t)n, NULL)))
				return;
		}
	}
	fed = gw_req_bytes(conn->head).len;
	if (!conn->peek_checked) {
		/* With a peek offset each peek returns only bytes not seen yet:
		 * a head sent a byte at a time is copied once, not once per
		 * byte (TCP has it since Linux 6.10). */
		static const int zero = 0;

		conn->peek_checked = 1;
		conn->peek_off = !setsockopt(conn->watch.fd, SOL_SOCKET, SO_PEEK_OFF, &zero,
					     sizeof(zero));
	}
	if (conn->peek_off) {
		n = fed < sizeof(buf) ? recv(conn->watch.fd, buf, sizeof(buf) - fed, MSG_PEEK) : 0;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0 || (!n && fed < sizeof(buf))) {
			conn_finish(conn, 0, 0, NULL);
			return;
		}
		st = n ? gw_req_feed(conn->head, buf, (size_t)n, NULL) : GW_REQ_MORE;
		n += (ssize_t)fed;
	} else {
		n = recv(conn->watch.fd, buf, sizeof(buf), MSG_PEEK);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0 || (size_t)n < fed) {
			conn_finish(conn, 0, 0, NULL);
			return;
		}
		/* Each peek returns the head from its first byte: feed the
		 * parser only what it has not seen (re-parsing from the start
		 * made a head sent a byte at a time cost quadratic CPU). */
		st = (size_t)n == fed ? GW_REQ_MORE
				      : gw_req_feed(conn->head, buf + fed, (size_t)n - fed, NULL);
	}
	/* a full buffer and still no end of head */
	if (st == GW_REQ_MORE && (size_t)n == sizeof(buf))
		st = GW_REQ_HEAD_TOO_LARGE;
	/* A peer that hung up mid-head can never finish it; the peeked bytes
	 * hide the end of stream from recv, so the event has to tell. */
	if (st == GW_REQ_MORE && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
		conn_finish(conn, 0, 0, NULL);
		return;
	}
	head_progress(conn, st);
}

/* --- open connections --- */

int gw_conn_is_open(const gw_conn_t *conn)
{
	return conn->state == CS_OPEN;
}

const char *gw_conn_id(const gw_conn_t *conn)
{
	return conn->id;
}

uint64_t gw_conn_last_active(const gw_conn_t *conn)
{
	return gw_mono_to_wall(conn->last_active);
}

/* Above this a message always goes through the queue (and the writable
 * callback's framing): what a full socket leaves over, libwebsockets
 * copies, and the direct path is for the many small messages of fan-out. */
#define DIRECT_WRITE_MAX 16384

/* A message for an open connection with nothing queued and nothing held
 * by libwebsockets goes to the socket at once: no queue entry (an
 * allocation per member of a channel) and no writable round (with the
 * epoll loop, two epoll_ctl per message to turn POLLOUT on and off).
 * What the socket does not take libwebsockets keeps, and it asks for a
 * writable callback itself, after which the queue is used again: order
 * is kept. bytes has LWS_PRE headroom. -1: not taken, queue it. */
static void hold_rx_if_buffered(gw_conn_t *conn, struct lws *wsi);

static int write_direct(gw_conn_t *conn, unsigned char *bytes, size_t len, int binary)
{
	/* One frame: a message over limits.maxFrameBytes is split by the
	 * queue's writer instead. */
	if (conn->state != CS_OPEN || conn->closing || conn->peer_closed || conn->tx_holds ||
	    conn->outq.head || len > DIRECT_WRITE_MAX ||
	    (conn->api->max_frame_bytes && len > conn->api->max_frame_bytes) ||
	    lws_partial_buffered(conn->wsi))
		return -1;
	if (lws_write(conn->wsi, bytes, len, binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) <
	    (int)len) {
		/* the socket failed: libwebsockets closes it at its next service */
		lws_set_timeout(conn->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
		return GW_POST_GONE;
	}
	hold_rx_if_buffered(conn, conn->wsi);
	gw_metrics_count(conn->gw->metrics, conn->api->id, GW_M_MSG_OUT);
	conn->last_active = gw_now_ms();
	return GW_POST_OK;
}

/* shared: the bytes are that payload's (a reference is taken), not data. */
static int enqueue(gw_conn_t *conn, const void *data, size_t len, int binary,
		   gw_payload_t *shared)
{
	gw_msg_t *m;

	/* A shared payload counts in full against each member's bound, as if
	 * it were its own copy: what a client may hold does not depend on how
	 * the message reached it. */
	size_t cost = MSG_COST(len);

	if (conn->congested || conn->outq_bytes + cost > conn->api->outbound_buffer_bytes) {
		conn->congested = 1;
		return GW_POST_FULL;
	}
	m = malloc(sizeof(*m) + (shared ? 0 : LWS_PRE + len));
	if (!m)
		return GW_POST_FULL;
	memset(&m->list, 0, sizeof(m->list));
	m->len = len;
	m->binary = binary;
	m->shared = shared;
	if (shared)
		shared->refs++;
	else
		memcpy(m->data + LWS_PRE, data, len);
	lws_dll2_add_tail(&m->list, &conn->outq);
	conn->outq_bytes += cost;
	if (conn->state == CS_OPEN)
		lws_callback_on_writable(conn->wsi);
	return GW_POST_OK;
}

static int enqueue_out(gw_conn_t *conn, const void *data, size_t len, int binary)
{
	return enqueue(conn, data, len, binary, NULL);
}

/* A small route answer is copied once either way: onto the stack for a
 * direct write rather than into a queue entry. Only answers: the client
 * paces them with its own messages. POSTs keep the queue, whose bound
 * (outboundBufferBytes, 429) a client that does not read must meet even
 * while the kernel's buffers would still take tiny frames. */
#define DIRECT_COPY_MAX 4096

static int reply_out(gw_conn_t *conn, const void *data, size_t len, int binary)
{
	if (len <= DIRECT_COPY_MAX && !conn->outq.head && conn->state == CS_OPEN) {
		unsigned char buf[LWS_PRE + DIRECT_COPY_MAX];
		int rc;

		if (len)
			memcpy(buf + LWS_PRE, data, len);
		rc = write_direct(conn, buf + LWS_PRE, len, binary);
		if (rc >= 0)
			return rc;
	}
	return enqueue(conn, data, len, binary, NULL);
}

int gw_conn_post(gw_conn_t *conn, const void *data, size_t len)
{
	int rc;

	/* After the client's close frame nothing more can reach it. */
	if (conn->state == CS_CLOSED || conn->state == CS_DRAINING || conn->closing ||
	    conn->peer_closed)
		return GW_POST_GONE;
	if (len > conn->api->max_message_bytes)
		return GW_POST_TOO_LARGE;
	rc = enqueue_out(conn, data, len, !gw_utf8_valid(data, len));
	if (rc == GW_POST_OK && conn->state != CS_OPEN)
		return GW_POST_PENDING;
	return rc;
}

/* A channel message or broadcast: binary was decided once for all. */
int gw_conn_send(gw_conn_t *conn, gw_payload_t *p, int binary)
{
	int rc;

	/* After the client's close frame nothing more can reach it. */
	if (conn->state == CS_CLOSED || conn->state == CS_DRAINING || conn->closing ||
	    conn->peer_closed)
		return GW_POST_GONE;
	if (p->len > conn->api->max_message_bytes)
		return GW_POST_TOO_LARGE;
	rc = write_direct(conn, p->data + LWS_PRE, p->len, binary);
	if (rc >= 0)
		return rc;
	return enqueue(conn, p->data + LWS_PRE, p->len, binary, p);
}

lws_dll2_owner_t *gw_conn_channels(gw_conn_t *conn)
{
	return &conn->channels;
}

uint64_t *gw_conn_chan_skips(gw_conn_t *conn)
{
	return &conn->chan_skips;
}

const gw_api_t *gw_conn_api(const gw_conn_t *conn)
{
	return conn->api;
}

void gw_conn_wait(gw_conn_t *conn, gw_waiter_t *w)
{
	lws_dll2_add_tail(&w->list, &conn->waiters);
}

/* Resets the socket of an open connection: libwebsockets closes it at its
 * next service, which completes the close (LWS_CALLBACK_CLOSED, the
 * $disconnect). A zero linger makes that close an RST: a plain close would
 * leave the kernel holding the unread megabytes in FIN_WAIT1, retrying a
 * client that does not read (nginx's reset_timedout_connection). */
static void drop(gw_conn_t *conn)
{
	static const struct linger reset = { 1, 0 };
	int fd = lws_get_socket_fd(conn->wsi);

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	lws_set_timeout(conn->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

/* Our close, never answered, left bytes the client has not taken yet:
 * libwebsockets may close the socket anyway once its close frame fitted in
 * the kernel, which then keeps retrying a client that does not read
 * (FIN_WAIT1, zero-window probes) for minutes. A client that reads gets
 * them all; one that does not is reset by the kernel after the send
 * timeout, as drop() does while the socket is still ours. */
static void bound_unsent(gw_conn_t *conn)
{
	unsigned ms = (unsigned)gw_gateway_send_timeout_s(conn->gw->sh) * 1000u;
	int fd = lws_get_socket_fd(conn->wsi), unsent = 0;

	if (fd >= 0 && !ioctl(fd, SIOCOUTQ, &unsent) && unsent > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
}

/* A client that does not read never lets the close frame out: past the
 * send timeout its socket is dropped, which completes the close (and sends
 * its $disconnect) instead of holding the connection as long as it likes. */
static void on_close_timer(gw_wheel_entry_t *e)
{
	gw_conn_t *conn = lws_container_of(e, gw_conn_t, close_timer);

	if (conn->state != CS_OPEN || !conn->wsi)
		return;
	gw_log_limited(GW_LOG_WARN, 10000, "connection %s: close not written in %d s "
		       "(the client does not read); connection reset", conn->id,
		       gw_gateway_send_timeout_s(conn->gw->sh));
	drop(conn);
}

void gw_conn_close(gw_conn_t *conn, int code, const char *reason)
{
	if (conn->state != CS_OPEN || conn->closing)
		return;
	conn->closing = 1;
	conn->close_code = code;
	snprintf(conn->close_reason, sizeof(conn->close_reason), "%s", reason);
	gw_wheel_set(&conn->gw->wheel, &conn->close_timer,
		     gw_now_ms() + (uint64_t)gw_gateway_send_timeout_s(conn->gw->sh) * 1000,
		     on_close_timer);
	lws_callback_on_writable(conn->wsi);
}

void gw_conn_delete(gw_conn_t *conn)
{
	gw_conn_close(conn, 1000, "Connection Closed Normally");
}

static void send_error_frame(gw_conn_t *conn, const char *message, const char *request_id)
{
	char frame[256];
	int n = snprintf(frame, sizeof(frame),
			 "{\"message\": \"%s\", \"connectionId\":\"%s\", \"requestId\":\"%s\"}",
			 message, conn->id, request_id);

	if (enqueue_out(conn, frame, (size_t)n, 0))
		/* A client that never reads triggers this at its own pace. */
		gw_log_limited(GW_LOG_WARN, 10000, "connection %s: outbound buffer "
			       "full, dropped error frame (request %s)", conn->id,
			       request_id);
}

static void dispatch(gw_conn_t *conn);
static void inbound_flow(gw_conn_t *conn);

static void drain_step(gw_conn_t *conn)
{
	dispatch(conn);
	if (!conn->inq.head && !conn->calls.head)
		conn_finish(conn, 1, conn->close_code, conn->close_reason);
}

/* The socket closed with messages still queued or on their way: they are
 * delivered first (in order, per route), then $disconnect. */
static void begin_drain(gw_conn_t *conn, int code, const char *reason)
{
	gw_worker_t *gw = conn->gw;

	conn->state = CS_DRAINING;
	conn->close_code = code;
	snprintf(conn->close_reason, sizeof(conn->close_reason), "%s", reason);
	lws_set_opaque_user_data(conn->wsi, NULL);
	conn->wsi = NULL;
	gw_wheel_cancel(&gw->wheel, &conn->idle_timer);
	gw_wheel_cancel(&gw->wheel, &conn->max_timer);
	gw_wheel_cancel(&gw->wheel, &conn->close_timer);
	if (!lws_dll2_is_detached(&conn->open_list))
		lws_dll2_remove(&conn->open_list);
	if (!lws_dll2_is_detached(&conn->paused_list))
		lws_dll2_remove(&conn->paused_list);
	gw_debug("connection %s closed with %u messages still to deliver", conn->id,
		 conn->inq.count);
	drain_step(conn);
}

static void on_message_result(gw_conn_t *conn, pending_t *p, const gw_integ_result_t *res)
{
	if (conn->state == CS_DRAINING) {
		/* Nobody to answer: the next message, or the end. */
		drain_step(conn);
		return;
	}
	gw_debug("connection %s: request %s answered (%d, %zu bytes)", conn->id, p->request_id,
		 res->outcome, res->body_len);
	switch (res->outcome) {
	case GW_INTEG_TIMEOUT:
		send_error_frame(conn, "Endpoint request timed out", p->request_id);
		break;
	case GW_INTEG_BUSY:
		send_error_frame(conn, "Too Many Requests", p->request_id);
		break;
	case GW_INTEG_FAILED:
		send_error_frame(conn, "Internal server error", p->request_id);
		break;
	case GW_INTEG_OK:
		if (p->route->route_response && res->body_len &&
		    reply_out(conn, res->body, res->body_len, res->body_binary))
			gw_log_limited(GW_LOG_WARN, 10000, "connection %s: outbound "
				       "buffer full, dropped route response (request %s)",
				       conn->id, p->request_id);
		break;
	}
	dispatch(conn);
	inbound_flow(conn);
}

static unsigned in_flight(const gw_conn_t *conn, const gw_route_t *route)
{
	unsigned n = 0;

	lws_start_foreach_dll(struct lws_dll2 *, d, conn->calls.head) {
		n += lws_container_of(d, pending_t, list)->route == route;
	} lws_end_foreach_dll(d);
	return n;
}

/* Messages of a connection start in arrival order per route: a route
 * allows maxInFlight calls of a connection at once (1 by default, which
 * keeps its messages in order end to end), and a slow route never holds
 * up the messages of another. */
static void dispatch(gw_conn_t *conn)
{
	gw_worker_t *gw = conn->gw;
	const gw_route_t *blocked[16];
	size_t n_blocked = 0;

	/* A plain loop: lws_start_foreach_dll_safe does not survive continue. */
	for (struct lws_dll2 *d = conn->inq.head, *d1; d; d = d1) {
		gw_msg_t *m = lws_container_of(d, gw_msg_t, list);

		d1 = d->next;
		gw_invocation_t inv;
		gw_event_ctx_t ctx;
		char rid[24], mid[24];
		int skip = 0;

		/* While the gateway's own close frame is on its way, messages
		 * wait; once the socket is gone they are drained. */
		if (conn->state != CS_DRAINING && (conn->state != CS_OPEN || conn->closing))
			return;
		for (size_t i = 0; i < n_blocked && !skip; i++)
			skip = blocked[i] == m->route;
		if (skip)
			continue;
		if (in_flight(conn, m->route) >= m->route->max_in_flight) {
			/* Later messages of this route wait behind this one. */
			if (n_blocked == sizeof(blocked) / sizeof(blocked[0]))
				return;
			blocked[n_blocked++] = m->route;
			continue;
		}
		lws_dll2_remove(&m->list);
		conn->inq_bytes -= INQ_COST(m->len);
		gw->conns->inbound_bytes -= INQ_COST(m->len);
		gw_worker_request_id(gw, rid);
		gw_worker_request_id(gw, mid);
		gw_debug("connection %s: message to %s, request %s", conn->id, m->route->key, rid);
		event_ctx(conn, &ctx, m->route->key, rid);
		ctx.message_id = mid;
		memset(&inv, 0, sizeof(inv));
		inv.route = m->route;
		inv.type = GW_EV_MESSAGE;
		inv.ctx = &ctx;
		inv.tls = conn->tls;
		inv.body = (const char *)m->data;
		inv.body_len = m->len;
		inv.binary = m->binary;
		invoke(gw, conn, &inv);
		free(m);
	}
}

static int own_full(const gw_conn_t *conn)
{
	return conn->inq.count >= INBOUND_CONN_MAX_MSGS ||
	       conn->inq_bytes >= INBOUND_CONN_MAX_BYTES;
}

static int own_low(const gw_conn_t *conn)
{
	return conn->inq.count <= INBOUND_CONN_MAX_MSGS / 2 &&
	       conn->inq_bytes <= INBOUND_CONN_MAX_BYTES / 2;
}

static void rx_resume(gw_conn_t *conn)
{
	conn->rx_paused = 0;
	if (conn->wsi && !conn->tx_held)
		lws_rx_flow_control(conn->wsi, 1);
}

/* Once the loop's queues hold half its limit, the connections paused for
 * it are let go: those whose own queue is low resume; the others stay
 * paused until their own answers drain them (their inbound_flow). Only
 * connections paused for the loop are on the list, so connections parked
 * on their own limit cost nothing here. */
static void resume_loop_paused(gw_worker_t *gw)
{
	if (gw->conns->inbound_bytes > INBOUND_LOOP_MAX_BYTES / 2)
		return;
	while (gw->conns->paused_conns.head) {
		gw_conn_t *c = lws_container_of(gw->conns->paused_conns.head, gw_conn_t, paused_list);

		lws_dll2_remove(&c->paused_list);
		if (own_low(c))
			rx_resume(c);
	}
}

/* Pauses or resumes reading the connection after its queue changed. */
static void inbound_flow(gw_conn_t *conn)
{
	gw_worker_t *gw = conn->gw;

	if (conn->state != CS_OPEN)
		return;
	if (!conn->rx_paused) {
		if (own_full(conn) || gw->conns->inbound_bytes >= INBOUND_LOOP_MAX_BYTES) {
			conn->rx_paused = 1;
			if (!own_full(conn))
				lws_dll2_add_tail(&conn->paused_list, &gw->conns->paused_conns);
			lws_rx_flow_control(conn->wsi, 0);
			return;
		}
	} else if (lws_dll2_is_detached(&conn->paused_list) && own_low(conn)) {
		if (gw->conns->inbound_bytes >= INBOUND_LOOP_MAX_BYTES)
			lws_dll2_add_tail(&conn->paused_list, &gw->conns->paused_conns);
		else
			rx_resume(conn);
	}
	resume_loop_paused(gw);
}

/* The route of a message: its selection expression's value when a route
 * has that key, else $default (also for binary frames and non-JSON text). */
static const gw_route_t *select_route(gw_conn_t *conn, const char *msg, size_t len, int binary)
{
	const gw_api_t *api = conn->api;
	const gw_route_t *r = NULL;
	gw_buf_t *key = &conn->gw->rscratch;

	if (!binary && api->rse && !gw_rse_eval(api->rse, msg, len, key))
		r = gw_config_route(api, key->data, key->len);
	/* Reserved routes are never selected by a message's content. */
	if (r && (r == api->connect_route || r == api->disconnect_route))
		r = NULL;
	return r ? r : api->default_route;
}

/* Route throttling (issue 12): a message over its route's rate gets AWS's
 * frame, the connection stays open and no integration is called. */
static int message_admitted(gw_conn_t *conn, const gw_route_t *route)
{
	const gw_api_t *api = conn->api;
	uint64_t now;
	char rid[24];
	int by;

	if (!route->throttle && !api->conn_messages.set && !api->conn_bytes.set)
		return 1;
	now = gw_throttle_now_ns();
	/* The connection's own limits first: a client over them does not eat
	 * the tokens the route's other clients share. */
	if (api->conn_messages.set && !gw_throttle_take(&conn->msg_rate, now, 1))
		by = 1;
	else if (api->conn_bytes.set && !gw_throttle_take(&conn->byte_rate, now, conn->rx.len))
		by = 2;
	else if (route->throttle && !gw_throttle_take(route->throttle, now, 1))
		by = 3;
	else
		return 1;
	gw_worker_request_id(conn->gw, rid);
	gw_metrics_count(conn->gw->metrics, api->id, GW_M_REJ_MSG_RATE);
	alog(conn, "MESSAGE", rid, route->key, 429, "Too Many Requests", -1, 0, NULL);
	/* One call site per cause: each is rate-limited, and seen, on its own. */
	if (by == 1)
		gw_log_limited(GW_LOG_WARN, 10000, "connection %s: message to %s throttled by "
			       "connectionThrottling.messages (request %s)", conn->id, route->key, rid);
	else if (by == 2)
		gw_log_limited(GW_LOG_WARN, 10000, "connection %s: message to %s throttled by "
			       "connectionThrottling.bytes (request %s)", conn->id, route->key, rid);
	else
		gw_log_limited(GW_LOG_WARN, 10000, "connection %s: message to %s throttled "
			       "(request %s)", conn->id, route->key, rid);
	/* A client that does not read its throttled frames is not answered
	 * any more until it does (no log line per message either). */
	if (!conn->congested)
		send_error_frame(conn, "Too Many Requests", rid);
	return 0;
}

static void on_message(gw_conn_t *conn)
{
	const gw_route_t *route;
	gw_msg_t *m;
	char rid[24];

	gw_debug("connection %s: message of %zu bytes", conn->id, conn->rx.len);
	conn->last_active = gw_now_ms();
	gw_metrics_count(conn->gw->metrics, conn->api->id, GW_M_MSG_IN);
	route = select_route(conn, conn->rx.data ? conn->rx.data : "", conn->rx.len,
			     conn->rx_binary);
	if (!route) {
		gw_metrics_count(conn->gw->metrics, conn->api->id, GW_M_REJ_NO_ROUTE);
		gw_worker_request_id(conn->gw, rid);
		alog(conn, "MESSAGE", rid, NULL, 403, "Forbidden", -1, 0, NULL);
		send_error_frame(conn, "Forbidden", rid);
		return;
	}
	gw_metrics_route(conn->gw->metrics, route->metric_slot);
	if (!message_admitted(conn, route))
		return;
	m = malloc(sizeof(*m) + conn->rx.len);
	if (!m)
		abort();
	memset(&m->list, 0, sizeof(m->list));
	m->shared = NULL;
	m->len = conn->rx.len;
	m->binary = conn->rx_binary;
	m->route = route;
	memcpy(m->data, conn->rx.data, conn->rx.len);
	lws_dll2_add_tail(&m->list, &conn->inq);
	conn->inq_bytes += INQ_COST(m->len);
	conn->gw->conns->inbound_bytes += INQ_COST(m->len);
	dispatch(conn);
	inbound_flow(conn);
}

static void on_idle_timer(gw_wheel_entry_t *e)
{
	gw_conn_t *conn = lws_container_of(e, gw_conn_t, idle_timer);
	uint64_t idle_ms = (uint64_t)conn->api->idle_timeout_s * 1000, now = gw_now_ms();

	/* Activity only moves last_active; the timer re-arms itself for the
	 * remainder instead of being rescheduled on every message. */
	if (now - conn->last_active >= idle_ms) {
		gw_conn_close(conn, 1001, "Idle timeout");
		return;
	}
	gw_wheel_set(&conn->gw->wheel, &conn->idle_timer, conn->last_active + idle_ms,
		     on_idle_timer);
}

static void on_max_timer(gw_wheel_entry_t *e)
{
	gw_conn_close(lws_container_of(e, gw_conn_t, max_timer), 1001,
		      "Maximum connection duration reached");
}

static void established(gw_conn_t *conn, struct lws *wsi)
{
	gw_worker_t *gw = conn->gw;

	conn->wsi = wsi;
	conn->state = CS_OPEN;
	conn->last_active = gw_now_ms();
	lws_dll2_add_tail(&conn->open_list, &gw->conns->open_conns);
	gw_metrics_count(gw->metrics, conn->api->id, GW_M_CONN_OPENED);
	alog(conn, "CONNECT", conn->alog_rid, "$connect", 200, NULL,
	     conn->alog_rid[0] ? conn->alog_ms : -1, 0, NULL);
	gw_info("connection %s open (api %s, %s)", conn->id, conn->api->name, conn->source_ip);
	if (conn->api->idle_timeout_s)
		gw_wheel_set(&gw->wheel, &conn->idle_timer,
			     conn->last_active + (uint64_t)conn->api->idle_timeout_s * 1000,
			     on_idle_timer);
	if (conn->api->max_connection_s)
		gw_wheel_set(&gw->wheel, &conn->max_timer,
			     conn->last_active + (uint64_t)conn->api->max_connection_s * 1000,
			     on_max_timer);
	decide_waiters(conn, 1);
	if (gw_worker_stopping(gw))
		gw_conn_close(conn, 1001, "Going away");
	else if (conn->outq.count)
		lws_callback_on_writable(wsi);
}

/* The next frame of the queue's head: AWS sends a message longer than a
 * frame (32 KB) as several, one per writable callback so that a close or
 * another connection is not held up behind a long message. The bytes
 * before a later frame were sent already, so lws_write may use them as its
 * LWS_PRE room. */
static int write_frame(gw_conn_t *conn, struct lws *wsi, gw_msg_t *m)
{
	size_t max = conn->api->max_frame_bytes, left = m->len - conn->tx_off, n = left;
	int flags = conn->tx_off ? LWS_WRITE_CONTINUATION
				 : m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;

	if (max && n > max) {
		n = max;
		flags |= LWS_WRITE_NO_FIN;
	}
	if (lws_write(wsi, msg_bytes(m) + conn->tx_off, n, (enum lws_write_protocol)flags) <
	    (int)n)
		return -1;
	conn->tx_off += n;
	return 0;
}

/* lws 4.1 meets a client's close frame, while it holds part of a frame
 * that the socket did not take, by closing at once: no
 * WS_PEER_INITIATED_CLOSE, no echo, and the queue lost. So the connection is
 * not read until lws has written that part out (it calls the writeable
 * callback only then): a close frame is then always met with the queue's
 * flush (flush_before_echo). */
static void hold_rx_if_buffered(gw_conn_t *conn, struct lws *wsi)
{
	if (conn->tx_held || !lws_partial_buffered(wsi))
		return;
	conn->tx_held = 1;
	lws_rx_flow_control(wsi, 0);
	lws_callback_on_writable(wsi);
}

static void release_rx_hold(gw_conn_t *conn, struct lws *wsi)
{
	if (!conn->tx_held)
		return;
	conn->tx_held = 0;
	if (!conn->rx_paused)
		lws_rx_flow_control(wsi, 1);
}

static int write_one(gw_conn_t *conn, struct lws *wsi)
{
	gw_msg_t *m;

	/* What was acknowledged (a 200 to a POST) goes out before the close
	 * frame (RFC 6455): a client that does not read loses it only to the
	 * close deadline, which drops the socket. */
	if (conn->closing && (!conn->outq.head || (conn->close_code != 1000 &&
					       conn->close_code != 1001))) {
		if (conn->outq.count)
			gw_log_limited(GW_LOG_INFO, 10000, "connection %s: closed (%d) with %u "
				       "queued messages undelivered", conn->id, conn->close_code,
				       conn->outq.count);
		lws_close_reason(wsi, (enum lws_close_status)conn->close_code,
				 (unsigned char *)conn->close_reason, strlen(conn->close_reason));
		return -1;
	}
	/* Behind a cluster hold (hold_tx): its release asks for writable. */
	if (!conn->outq.head || (conn->tx_holds && !conn->tx_free))
		return 0;
	m = lws_container_of(conn->outq.head, gw_msg_t, list);
	if (write_frame(conn, wsi, m))
		return -1;
	hold_rx_if_buffered(conn, wsi);
	if (conn->tx_off < m->len) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	conn->tx_off = 0;
	gw_metrics_count(conn->gw->metrics, conn->api->id, GW_M_MSG_OUT);
	lws_dll2_remove(&m->list);
	conn->outq_bytes -= MSG_COST(m->len);
	msg_free(m);
	if (conn->tx_holds)
		conn->tx_free--;
	if (conn->congested && conn->outq_bytes <= conn->api->outbound_buffer_bytes / 2)
		conn->congested = 0;
	conn->last_active = gw_now_ms();
	if (conn->outq.head || conn->closing)
		lws_callback_on_writable(wsi);
	return 0;
}

/* The client's close frame with messages still queued for it: they were
 * acknowledged (a 200 to a POST), so they go out before the close echo
 * (RFC 6455 5.5.1 binds the sender of a Close, not its receiver). lws 4.1
 * echoes as soon as WS_PEER_INITIATED_CLOSE returns and cannot defer it, so
 * the queue is written here; what the socket does not take now stays in
 * lws's own (bounded by outboundBufferBytes) buffer, which lws writes out
 * before the echo. A client that does not read loses it only to the send
 * timeout, which drops the socket. */
static int flush_before_echo(gw_conn_t *conn, struct lws *wsi)
{
	while (conn->outq.head) {
		gw_msg_t *m = lws_container_of(conn->outq.head, gw_msg_t, list);

		if (write_frame(conn, wsi, m))
			return -1;
		if (conn->tx_off < m->len)
			continue;
		conn->tx_off = 0;
		gw_metrics_count(conn->gw->metrics, conn->api->id, GW_M_MSG_OUT);
		lws_dll2_remove(&m->list);
		conn->outq_bytes -= MSG_COST(m->len);
		msg_free(m);
	}
	conn->congested = 0;
	conn->tx_free = 0; /* a hold's count of what preceded it: all gone */
	if (!conn->closing) /* else armed already */
		gw_wheel_set(&conn->gw->wheel, &conn->close_timer,
			     gw_now_ms() + (uint64_t)gw_gateway_send_timeout_s(conn->gw->sh) * 1000,
			     on_close_timer);
	return 0;
}

static void json_not_found(struct lws *wsi)
{
	static const char body[] = "{\"message\":\"Not Found\"}";
	unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
		      *end = buf + sizeof(buf);

	if (lws_add_http_common_headers(wsi, HTTP_STATUS_NOT_FOUND, "application/json",
					sizeof(body) - 1, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return;
	memcpy(start, body, sizeof(body) - 1);
	lws_write(wsi, start, sizeof(body) - 1, LWS_WRITE_HTTP_FINAL);
}

/* What is wrong with a close frame's payload: 0 when it is empty or a code
 * a peer may send (RFC 6455 7.4.1/7.4.2, with the IANA-registered
 * 1012-1014) and a UTF-8 reason; else the close code to answer with. */
static int close_payload_invalid(const unsigned char *p, size_t len)
{
	unsigned code;

	if (!len)
		return 0;
	if (len == 1)
		return 1002;
	code = (unsigned)(p[0] << 8 | p[1]);
	if (code < 1000 || code >= 5000 || code == 1004 || code == 1005 || code == 1006 ||
	    (code >= 1015 && code < 3000))
		return 1002;
	return gw_utf8_valid(p + 2, len - 2) ? 0 : 1007;
}

/* AWS closes with 1009 a single frame over 32 KB, whatever the message's
 * size: libwebsockets hands a frame over in chunks, so its size is what
 * came in earlier chunks plus this one plus what its header announces. */
static int frame_too_big(gw_conn_t *conn, struct lws *wsi, size_t len)
{
	size_t rest = lws_remaining_packet_payload(wsi);

	if (!conn->rx_frame_open)
		conn->rx_frame_bytes = 0;
	conn->rx_frame_bytes += len;
	conn->rx_frame_open = rest != 0;
	return conn->api->max_frame_bytes &&
	       conn->rx_frame_bytes + rest > conn->api->max_frame_bytes;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		       void *in, size_t len)
{
	gw_conn_t *conn = lws_get_opaque_user_data(wsi);

	switch (reason) {
	case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
		if (adopting) {
			lws_set_opaque_user_data(wsi, adopting);
			adopting->wsi = wsi;
			adopting = NULL;
		}
		return 0;

	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* Only handshakes that went through $connect may upgrade (a
		 * keep-alive HTTP connection cannot sneak one in later). */
		return conn && conn->state == CS_ADOPTED ? 0 : -1;

	case LWS_CALLBACK_HTTP:
		json_not_found(wsi);
		return lws_http_transaction_completed(wsi) ? -1 : 0;

	case LWS_CALLBACK_ESTABLISHED:
		if (!conn)
			return -1;
		established(conn, wsi);
		return 0;

	case LWS_CALLBACK_RECEIVE:
		/* Closing: what still arrives is read and dropped, so the close
		 * frame is not lost to a reset from unread data. */
		if (!conn || conn->state != CS_OPEN || conn->closing)
			return 0;
		if (lws_is_first_fragment(wsi)) {
			gw_buf_reset(&conn->rx);
			conn->rx_binary = lws_frame_is_binary(wsi);
		}
		if (frame_too_big(conn, wsi, len)) {
			gw_buf_dispose(&conn->rx);
			gw_buf_init(&conn->rx);
			gw_conn_close(conn, 1009, "Frame too big");
			return 0;
		}
		/* The frame's announced length counts, not only what arrived:
		 * a header announcing 2^63 bytes fails at its first chunk. */
		if (conn->rx.len + len + lws_remaining_packet_payload(wsi) >
		    conn->api->max_message_bytes) {
			gw_buf_dispose(&conn->rx);
			gw_buf_init(&conn->rx);
			gw_conn_close(conn, 1009, "Message too big");
			return 0;
		}
		gw_buf_append(&conn->rx, in, len);
		if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
			on_message(conn);
		return 0;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!conn)
			return 0;
		release_rx_hold(conn, wsi);
		return write_one(conn, wsi);

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (conn) {
			const unsigned char *p = in;

			int bad = close_payload_invalid(p, len);

			if (bad) {
				/* RFC 6455 7.4: never echo an invalid code. */
				conn->closing = 1;
				conn->close_code = bad;
				snprintf(conn->close_reason, sizeof(conn->close_reason), "%s",
					 bad == 1007 ? "Invalid UTF-8 in close reason"
						     : "Protocol error");
				lws_close_reason(wsi, (enum lws_close_status)bad,
						 (unsigned char *)conn->close_reason,
						 strlen(conn->close_reason));
				return -1;
			}
			conn->peer_closed = 1;
			if (len >= 2) {
				conn->peer_code = p[0] << 8 | p[1];
				snprintf(conn->peer_reason, sizeof(conn->peer_reason), "%.*s",
					 (int)(len - 2), (const char *)p + 2);
			} else {
				conn->peer_code = 1005;
				snprintf(conn->peer_reason, sizeof(conn->peer_reason),
					 "Client-side close frame status not set");
			}
			/* A close of ours with an error code was going to drop
			 * the queue anyway (write_one). */
			if (conn->outq.head && (!conn->closing || conn->close_code == 1000 ||
						conn->close_code == 1001) &&
			    flush_before_echo(conn, wsi))
				return -1;
		}
		return 0;

	case LWS_CALLBACK_CLOSED:
		if (conn && conn->state == CS_OPEN) {
			if (conn->closing && !conn->peer_closed)
				bound_unsent(conn);
			int code = conn->closing ? conn->close_code
				   : conn->peer_closed ? conn->peer_code : 1006;
			const char *why = conn->closing ? conn->close_reason
					  : conn->peer_closed ? conn->peer_reason
							      : "Connection lost";

			/* Shutting down bounds the drain: what is queued then is
			 * dropped, as at the drain deadline. */
			if ((conn->inq.head || conn->calls.head) && !gw_worker_stopping(conn->gw)) {
				char r[sizeof(conn->close_reason)];

				snprintf(r, sizeof(r), "%s", why);
				begin_drain(conn, code, r);
			} else {
				conn_finish(conn, 1, code, why);
			}
		}
		return 0;

	case LWS_CALLBACK_WSI_DESTROY:
		/* Handed over but never opened (the handshake failed in lws). */
		if (conn && conn->state != CS_OPEN && conn->state != CS_CLOSED) {
			conn->wsi = NULL;
			if (conn->in_adopt) {
				conn->died_in_adopt = 1;
				return 0;
			}
			conn_finish(conn, conn->approved, 1006, "Handshake failed");
		}
		return 0;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* connectedAt and identity come from the registry record; lastActiveAt
 * from the connection, newer than the registry's batched copy. */
int gw_conn_json(gw_worker_t *gw, gw_conn_t *conn, const char *id, gw_buf_t *out)
{
	gw_conn_record_t rec;
	char t[64];

	if (!gw_conn_is_open(conn) || gw_registry_get(gw->reg, id, strlen(id), &rec) != GW_REG_OK)
		return -1;
	gw_event_iso_time(t, rec.connected_at);
	gw_buf_append_str(out, "{\"connectedAt\":\"");
	gw_buf_append_str(out, t);
	gw_buf_append_str(out, "\",\"identity\":{\"sourceIp\":");
	gw_buf_append_json_str(out, rec.source_ip, strlen(rec.source_ip));
	gw_buf_append_str(out, ",\"userAgent\":");
	gw_buf_append_json_str(out, rec.user_agent, strlen(rec.user_agent));
	gw_event_iso_time(t, gw_conn_last_active(conn));
	gw_buf_append_str(out, "},\"lastActiveAt\":\"");
	gw_buf_append_str(out, t);
	gw_buf_append_str(out, "\"}");
	return 0;
}

gw_conns_t *gw_conns_create(gw_worker_t *gw)
{
	(void)gw;
	return calloc(1, sizeof(gw_conns_t));
}

void gw_conns_set_chan_hooks(gw_conns_t *cs, const gw_conn_chan_hooks_t *hooks)
{
	cs->chan = hooks;
}

void gw_conns_destroy(gw_conns_t *cs)
{
	if (!cs)
		return;
	free(cs->slots);
	free(cs->free_slots);
	free(cs->slot_gens);
	free(cs);
}

size_t gw_conn_count(const gw_worker_t *gw)
{
	return gw->conns->n_conns;
}

size_t gw_conn_open_count(const gw_worker_t *gw)
{
	return gw->conns->open_conns.count;
}

uint32_t gw_conn_slots(const gw_worker_t *gw)
{
	return gw->conns->n_slots;
}

gw_conn_t *gw_conn_at_slot(const gw_worker_t *gw, uint32_t slot)
{
	return slot < gw->conns->n_slots ? gw->conns->slots[slot] : NULL;
}

void gw_conns_set_gen(gw_conns_t *cs, uint32_t slot, uint32_t gen)
{
	cs->slot_gens[slot] = gen;
}

/* Each slot has a generation, bumped when the slot is freed, which the
 * connection ID carries: an ID outliving its connection names an older
 * generation and finds nothing. */
static uint32_t *slot_gen(gw_worker_t *gw, uint32_t slot)
{
	return &gw->conns->slot_gens[slot];
}

int gw_worker_slot_alloc(gw_worker_t *gw, gw_conn_t *conn, uint32_t *slot)
{
	if (!gw->conns->n_free) {
		uint32_t old = gw->conns->n_slots, n = old ? old * 2 : 1024;

		gw->conns->slots = realloc(gw->conns->slots, n * sizeof(*gw->conns->slots));
		gw->conns->free_slots = realloc(gw->conns->free_slots, n * sizeof(*gw->conns->free_slots));
		gw->conns->slot_gens = realloc(gw->conns->slot_gens, n * sizeof(*gw->conns->slot_gens));
		if (!gw->conns->slots || !gw->conns->free_slots || !gw->conns->slot_gens)
			abort();
		memset(gw->conns->slot_gens + old, 0, (n - old) * sizeof(*gw->conns->slot_gens));
		for (uint32_t i = old; i < n; i++) {
			gw->conns->slots[i] = NULL;
			gw->conns->free_slots[gw->conns->n_free++] = n - 1 - (i - old);
		}
		gw->conns->n_slots = n;
	}
	*slot = gw->conns->free_slots[--gw->conns->n_free];
	gw->conns->slots[*slot] = conn;
	return 0;
}

void gw_worker_slot_free(gw_worker_t *gw, uint32_t slot)
{
	gw->conns->slots[slot] = NULL;
	/* A slot whose generation would wrap is retired, never reused: so an
	 * ID is never issued twice. */
	if (++*slot_gen(gw, slot) != 0)
		gw->conns->free_slots[gw->conns->n_free++] = slot;
}

/* The ID's API byte is gw_api_t.id, the same number for the same API
 * across reloads; past the table, the registry tells the stage. */
_Static_assert(GW_CONFIG_API_ID_NONE == GW_CONNID_API_MANY, "one 'no API id' value");

int gw_worker_conn_id(gw_worker_t *gw, uint32_t slot, size_t api,
		       char out[GW_CONN_ID_LEN + 1])
{
	const gw_connid_key_t *key = gw_connid_process_key();
	gw_connid_t cid = {
		.node = gw_connid_self(),
		.loop = gw->worker,
		.api = api < GW_CONNID_API_MANY ? (uint32_t)api : GW_CONNID_API_MANY,
		.slot = slot,
		.gen = *slot_gen(gw, slot) ^ gw_connid_epoch(),
	};

	if (!key || slot >= gw->conns->n_slots)
		return -1;
	return gw_connid_encode(key, &cid, out) ? -1 : 0;
}

gw_conn_t *gw_worker_conn_at(gw_worker_t *gw, const gw_connid_t *cid)
{
	if (cid->node != gw_connid_self() || cid->loop != gw->worker ||
	    cid->slot >= gw->conns->n_slots ||
	    (cid->gen ^ gw_connid_epoch()) != *slot_gen(gw, cid->slot))
		return NULL;
	return gw->conns->slots[cid->slot];
}

gw_conn_t *gw_worker_find_conn(gw_worker_t *gw, const char *id, size_t len)
{
	const gw_connid_key_t *key = gw_connid_process_key();
	gw_connid_t cid;

	if (!key || gw_connid_decode(key, id, len, &cid) != GW_CONNID_OK)
		return NULL;
	return gw_worker_conn_at(gw, &cid);
}

const struct lws_protocols gw_ws_protocol = {
	"gw-ws", ws_callback, 0, 1024, 0, NULL, 0
};

void gw_conn_shutdown_all(gw_worker_t *gw)
{
	for (uint32_t i = 0; i < gw->conns->n_slots; i++) {
		gw_conn_t *conn = gw->conns->slots[i];

		if (!conn)
			continue;
		switch (conn->state) {
		case CS_HEAD:
			conn_finish(conn, 0, 0, NULL);
			break;
		case CS_CONNECTING:
			/* The client hears 503 now; the call goes on, so that a
			 * backend approving it still gets its $disconnect. */
			if (!conn->gone) {
				static const char busy[] = "{\"message\":\"Service Unavailable\"}";

				answer_raw(conn, 503, busy, sizeof(busy) - 1);
				client_gone(conn, 1001, "Going away");
			}
			break;
		case CS_OPEN:
			gw_conn_close(conn, 1001, "Going away");
			break;
		case CS_DRAINING:
			if (conn->inq.count || conn->calls.count)
				gw_log_limited(GW_LOG_WARN, 10000, "shutdown: connection %s closed "
					       "with %u messages not delivered", conn->id,
					       conn->inq.count + conn->calls.count);
			conn_finish(conn, 1, conn->close_code, conn->close_reason);
			break;
		default:
			break;
		}
	}
}

size_t gw_conn_drop_all(gw_worker_t *gw)
{
	size_t n = 0;

	for (uint32_t i = 0; i < gw->conns->n_slots; i++) {
		gw_conn_t *conn = gw->conns->slots[i];

		if (conn && conn->state == CS_OPEN && conn->wsi) {
			if (!conn->closing) {
				conn->closing = 1;
				conn->close_code = 1001;
				snprintf(conn->close_reason, sizeof(conn->close_reason),
					 "Going away");
			}
			gw_wheel_cancel(&gw->wheel, &conn->close_timer);
			drop(conn);
			n++;
		}
	}
	return n;
}

/* Writes the dirty lastActiveAt of at most max connections, taken from the
 * head of the open list and moved to its tail, so successive slices go
 * round the list; returns how many were looked at. */
size_t gw_conn_flush_slice(gw_worker_t *gw, size_t max)
{
	const char *ids[GW_REGISTRY_TOUCH_SLICE];
	uint64_t times[GW_REGISTRY_TOUCH_SLICE];
	size_t n = 0, seen = 0;

	while (seen < max && gw->conns->open_conns.head) {
		gw_conn_t *conn = lws_container_of(gw->conns->open_conns.head, gw_conn_t, open_list);

		lws_dll2_remove(&conn->open_list);
		lws_dll2_add_tail(&conn->open_list, &gw->conns->open_conns);
		seen++;
		if (conn->last_active == conn->last_flushed)
			continue;
		ids[n] = conn->id;
		times[n] = gw_mono_to_wall(conn->last_active);
		conn->last_flushed = conn->last_active;
		if (++n == GW_REGISTRY_TOUCH_SLICE) {
			gw_registry_touch(gw->reg, ids, times, n);
			n = 0;
		}
	}
	gw_registry_touch(gw->reg, ids, times, n);
	return seen;
}

void gw_conn_flush_activity(gw_worker_t *gw)
{
	gw_conn_flush_slice(gw, gw->conns->open_conns.count);
}

void gw_conn_free_unadopted(gw_worker_t *gw)
{
	for (uint32_t i = 0; i < gw->conns->n_slots; i++) {
		gw_conn_t *conn = gw->conns->slots[i];

		if (conn && (conn->state == CS_HEAD || conn->state == CS_CONNECTING))
			conn_finish(conn, 0, 0, NULL);
		else if (conn && conn->state == CS_DRAINING)
			conn_finish(conn, 1, conn->close_code, conn->close_reason);
	}
}

size_t gw_conn_outbound_bytes(gw_worker_t *gw)
{
	size_t n = 0;

	lws_start_foreach_dll(struct lws_dll2 *, d, gw->conns->open_conns.head) {
		n += lws_container_of(d, gw_conn_t, open_list)->outq_bytes;
	} lws_end_foreach_dll(d);
	return n;
}
