/* The bus: management operations travel to the event loop that owns a
 * connection, run there, and their results travel back to the sender's
 * loop, where a callback answers. The connection ID (connid.h) names the
 * owner, so no lookup precedes the trip.
 *
 * An operation is a small heap object with one owner at a time: the
 * sender fills it and gives it to gw_bus_send; the bus gives it back to
 * the sender's done callback, exactly once, which destroys it. Neither
 * loop ever waits for the other.
 *
 * Transports: today one, the inboxes between the loops of this process
 * (a mutex-guarded list, then lws_cancel_service wakes the loop). The
 * transport is a pair of functions (forward to the owner, reply to the
 * sender), so a second one (NATS, for other nodes) is another
 * gw_bus_transport_t chosen by the ID's node. */
#ifndef GW_BUS_H
#define GW_BUS_H

#include "connid.h"
#include "core.h"
#include "op.h"

/* A way to carry operations between loops (or, later, nodes). */
typedef struct gw_bus_transport {
	const char *name;
	/* Hands op to the loop named by op->target. */
	void (*forward)(gw_worker_t *from, gw_op_t *op);
	/* Hands the finished op back to the loop op->from. */
	void (*reply)(gw_worker_t *owner, gw_op_t *op);
} gw_bus_transport_t;

/* Between the loops of this process. Between nodes: cluster.h. */
extern const gw_bus_transport_t gw_bus_inbox;

/* Runs op on its owner's loop (at once when that is gw) and later calls
 * op->done on gw with the result. */
void gw_bus_send(gw_worker_t *gw, gw_op_t *op);
/* The inbox transport's delivery: called by the loop for each message. */
void gw_bus_on_message(gw_worker_t *gw, lws_dll2_t *node);
/* Frees a message left in an inbox at teardown. */
void gw_bus_free_message(lws_dll2_t *node);

/* --- the slot table (gateway.c) --- */
/* Writes the ID of the connection that holds slot on loop gw under the
 * API whose id (gw_api_t.id, stable across reloads) is api; -1 when the slot cannot be named (beyond 24 bits). */
int gw_worker_conn_id(gw_worker_t *gw, uint32_t slot, size_t api,
		       char out[GW_CONN_ID_LEN + 1]);
/* The connection id names, when it is on loop gw and still holds its
 * slot in the same generation; NULL otherwise. O(1), no registry read. */
gw_conn_t *gw_worker_conn_at(gw_worker_t *gw, const gw_connid_t *cid);

#endif
