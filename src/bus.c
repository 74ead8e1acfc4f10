/* The bus (bus.h): operations sent to the loop that owns a connection,
 * run there, and answered on the sender's loop. The transport of today
 * is the loops' inboxes; what an operation does to a connection is here
 * too, so that the management API only translates HTTP. */
#include "bus.h"
#include "channel.h"
#include "cluster.h"
#include "cluster_wire.h"

#include <stdlib.h>
#include <string.h>

static void finish(gw_worker_t *gw, gw_op_t *op);

static void result(gw_op_t *op, int status, const char *error_type, const char *message)
{
	op->status = status;
	op->error_type = error_type;
	op->message = message;
}

static void gone(gw_op_t *op)
{
	result(op, 410, "GoneException", NULL);
}

/* --- the inbox transport --- */

static void inbox_forward(gw_worker_t *from, gw_op_t *op)
{
	gw_worker_post(gw_gateway_worker(from->sh, op->target.loop), &op->list);
}

static void inbox_reply(gw_worker_t *owner, gw_op_t *op)
{
	gw_worker_post(gw_gateway_worker(owner->sh, op->from), &op->list);
}

const gw_bus_transport_t gw_bus_inbox = { "inbox", inbox_forward, inbox_reply };

/* --- operations, on the owner's loop --- */

static void on_decided(gw_waiter_t *w, int ok)
{
	gw_op_t *op = lws_container_of(w, gw_op_t, waiter);

	if (ok)
		result(op, 200, NULL, NULL);
	else
		gone(op);
	finish(op->at, op);
}

/* Returns 1 when op waits for a pending $connect (finished later). */
static int run_post(gw_worker_t *gw, gw_conn_t *conn, gw_op_t *op)
{
	gw_buf_t body = op->data;
	int parked = 0;

	gw_buf_init(&op->data);
	switch (gw_conn_post(conn, body.data ? body.data : "", body.len)) {
	case GW_POST_OK:
		result(op, 200, NULL, NULL);
		break;
	case GW_POST_PENDING:
		/* Queued behind the 101; the answer waits for $connect. */
		memset(&op->waiter, 0, sizeof(op->waiter));
		op->waiter.decided = on_decided;
		op->at = gw;
		gw_conn_wait(conn, &op->waiter);
		parked = 1;
		break;
	case GW_POST_TOO_LARGE:
		result(op, 413, "PayloadTooLargeException",
		       "Message is larger than the maximum message size");
		break;
	case GW_POST_FULL:
		result(op, 429, "LimitExceededException", "The client side buffer is full");
		break;
	default:
		gone(op);
	}
	gw_buf_dispose(&body);
	return parked;
}

static void run_get(gw_worker_t *gw, gw_conn_t *conn, gw_op_t *op)
{
	gw_buf_reset(&op->data);
	if (gw_conn_json(gw, conn, op->id, &op->data)) {
		gw_buf_reset(&op->data);
		gone(op);
		return;
	}
	result(op, 200, NULL, NULL);
}

/* JOIN and LEAVE: the channel's name was checked by the sender. 1 when
 * the cluster holds the answer (cluster.h, gw_cluster_hold_join). */
static int run_membership(gw_worker_t *gw, gw_conn_t *conn, gw_op_t *op)
{
	size_t n = strlen(op->channel);
	int rc;

	if (!gw_conn_is_open(conn)) {
		gone(op);
		return 0;
	}
	rc = op->kind == GW_OP_JOIN ? gw_chan_join(gw, conn, op->channel, n) :
				      gw_chan_leave(gw, conn, op->channel, n);
	if (rc == GW_CHAN_TOO_MANY)
		result(op, 400, "BadRequestException",
		       "The connection is a member of too many channels");
	else if (rc == GW_CHAN_BAD_NAME)
		result(op, 400, "BadRequestException", "Invalid channel name");
	else
		result(op, 204, NULL, NULL);
	return rc == GW_CHAN_OK && op->kind == GW_OP_JOIN && gw_cluster_hold_join(op);
}

/* Operations that name a loop, not a connection. */
static void run_loop_op(gw_worker_t *gw, gw_op_t *op)
{
	size_t n = strlen(op->channel);
	size_t queued = 0, skipped = 0;

	switch (op->kind) {
	case GW_OP_PUBLISH:
		gw_chan_publish(gw, op->channel, n, op->data.data ? op->data.data : "",
				op->data.len, op->binary, &op->apis, &queued, &skipped);
		break;
	case GW_OP_BROADCAST:
		gw_chan_broadcast(gw, op->data.data ? op->data.data : "", op->data.len,
				  op->binary, &op->apis, &queued, &skipped);
		break;
	case GW_OP_COUNT:
		queued = gw_chan_count(gw, op->channel, n, &op->apis);
		break;
	case GW_OP_LIST: {
		/* Another node's page must fit in one NATS message. */
		int cut;

		gw_buf_reset(&op->data);
		queued = gw_chan_list(gw, n ? op->channel : NULL, n, &op->apis, &op->cursor,
				      op->limit, op->remote ? gw_cluster_page_bytes() : SIZE_MAX,
				      &cut, &op->data);
		skipped = (size_t)cut;
		break;
	}
	default:
		break;
	}
	if (op->kind != GW_OP_LIST)
		gw_buf_dispose(&op->data);
	op->count = queued;
	op->skipped = skipped;
	result(op, 200, NULL, NULL);
}

static void execute(gw_worker_t *gw, gw_op_t *op)
{
	gw_conn_t *conn;

	if (op->kind >= GW_OP_PUBLISH) {
		run_loop_op(gw, op);
		finish(gw, op);
		return;
	}
	conn = gw_worker_conn_at(gw, &op->target);
	if (!conn) {
		gone(op);
		goto done;
	}
	switch (op->kind) {
	case GW_OP_POST:
		if (run_post(gw, conn, op))
			return;
		break;
	case GW_OP_GET:
		run_get(gw, conn, op);
		break;
	case GW_OP_DELETE:
		if (!gw_conn_is_open(conn)) {
			gone(op);
			break;
		}
		gw_conn_delete(conn);
		result(op, 204, NULL, NULL);
		break;
	case GW_OP_JOIN:
	case GW_OP_LEAVE:
		if (run_membership(gw, conn, op))
			return;
		break;
	default:
		result(op, 405, "MethodNotAllowedException", "Method Not Allowed");
	}
done:
	if (op->kind != GW_OP_GET)
		gw_buf_dispose(&op->data);
	finish(gw, op);
}

/* On the owner's loop: send the result back to the sender. */
static void finish(gw_worker_t *gw, gw_op_t *op)
{
	op->is_reply = 1;
	if (op->remote)
		gw_cluster_reply(gw, op);
	else if (op->from == gw->worker)
		op->done(gw, op);
	else
		gw_bus_inbox.reply(gw, op);
}

void gw_bus_send(gw_worker_t *gw, gw_op_t *op)
{
	op->from = gw->worker;
	op->is_reply = 0;
	/* Another node's connection: over NATS, when this node is in a cluster. */
	if (op->target.node != gw_connid_self() && !gw_cluster_forward(gw, op))
		return;
	if (op->target.node != gw_connid_self() || op->target.loop >= gw_gateway_workers(gw->sh)) {
		gone(op);
		op->is_reply = 1;
		op->done(gw, op);
		return;
	}
	if (op->target.loop == gw->worker)
		execute(gw, op);
	else
		gw_bus_inbox.forward(gw, op);
}

void gw_bus_on_message(gw_worker_t *gw, lws_dll2_t *node)
{
	gw_op_t *op = lws_container_of(node, gw_op_t, list);

	if (op->is_reply)
		op->done(gw, op);
	else
		execute(gw, op);
}

void gw_bus_free_message(lws_dll2_t *node)
{
	gw_op_destroy(lws_container_of(node, gw_op_t, list));
}
