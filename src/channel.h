/* Channels: named groups of connections that one publish reaches.
 *
 * Membership lives on the loop that owns the connection: each loop keeps
 * its own index (channel name -> members) of its own connections, and a
 * connection keeps the list of its memberships, so a close leaves every
 * channel in one pass. Nothing here is shared between loops: a publish is
 * one operation per loop (bus.h), each run against that loop's index.
 *
 * A channel exists while it has members; its name is 1 to GW_CHAN_NAME_MAX
 * characters of [A-Za-z0-9._:-]. A connection belongs to at most
 * GW_CHAN_PER_CONN channels.
 *
 * Slow readers are never waited for: a member whose outgoing queue cannot
 * take the message (over the API's outboundBufferBytes, or congested and
 * not yet drained to half) skips it. The skip is counted on the connection
 * and in the publish's answer, and logged (rate-limited). */
#ifndef GW_CHANNEL_H
#define GW_CHANNEL_H

#include "bus.h"
#include "channame.h"
#include "core.h"

#define GW_CHAN_PER_CONN 64

enum {
	GW_CHAN_OK = 0,
	GW_CHAN_BAD_NAME = -1,
	GW_CHAN_TOO_MANY = -2,
};

/* Joining twice or leaving a channel one is not in succeeds (idempotent,
 * as PUT and DELETE are). */
int gw_chan_join(gw_worker_t *gw, gw_conn_t *conn, const char *name, size_t len);
int gw_chan_leave(gw_worker_t *gw, gw_conn_t *conn, const char *name, size_t len);
/* Every membership of conn (its close). */
void gw_chan_leave_all(gw_worker_t *gw, gw_conn_t *conn);
/* An integration's answer: comma-separated lists (NULL: none); names that
 * are not valid, or past the bound, are left out and logged. 1 when a
 * channel joined waits for this node's subscription to be confirmed
 * (gw_cluster_chan_unconfirmed): the caller holds what the client sees of
 * the answer (gw_cluster_hold). Always 0 without a cluster. */
int gw_chan_apply(gw_worker_t *gw, gw_conn_t *conn, const char *subscribe,
		  const char *unsubscribe);
/* The next name of such a list (blanks around it left out), advancing
 * *list; NULL at the end. Pure: the fuzz harness reaches it. */
const char *gw_chan_list_next(const char **list, size_t *len);
int gw_chan_is_member(gw_conn_t *conn, const char *name, size_t len);

/* This loop's members of the channel whose API the mask allows. */
size_t gw_chan_count(gw_worker_t *gw, const char *name, size_t len,
		     const gw_api_mask_t *apis);
/* Queues data for each such member; adds to *queued and *skipped. */
void gw_chan_publish(gw_worker_t *gw, const char *name, size_t len, const void *data,
		     size_t dlen, int binary, const gw_api_mask_t *apis, size_t *queued,
		     size_t *skipped);
/* The same for every open connection of this loop the mask allows. */
void gw_chan_broadcast(gw_worker_t *gw, const void *data, size_t dlen, int binary,
		       const gw_api_mask_t *apis, size_t *queued, size_t *skipped);
/* Up to limit open connections of this loop from slot *cursor on (of the
 * channel, when name is not NULL), as JSON objects separated by commas
 * appended to out, in at most max_bytes (but always one); *cursor becomes
 * the slot after the last one looked at, and *cut 1 when the bytes ended
 * the page before the loop's last slot. Returns how many were written. */
size_t gw_chan_list(gw_worker_t *gw, const char *name, size_t len,
		    const gw_api_mask_t *apis, uint32_t *cursor, uint32_t limit, size_t max_bytes,
		    int *cut, gw_buf_t *out);

/* Frees the loop's index (teardown, once its connections are gone). */
void gw_chan_index_free(gw_worker_t *gw);

/* gw_chan_apply and gw_chan_leave_all, for conn.c (below): handed to each
 * loop's slot table when the loop is built (gateway.c). */
extern const gw_conn_chan_hooks_t gw_chan_conn_hooks;

#endif
