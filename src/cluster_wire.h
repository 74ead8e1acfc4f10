/* The cluster's wire format as another node sends it (cluster.h), decoded
 * and checked apart from NATS and the loops: any process that can publish
 * on NATS controls these bytes, so they are parsed here once, strictly,
 * by pure functions that the fuzz harness reaches. */
#ifndef GW_CLUSTER_WIRE_H
#define GW_CLUSTER_WIRE_H

#include "bus.h"
#include "channel.h"

#include <stddef.h>
#include <stdint.h>

/* A LIST page from another node is at most this many items, whatever the
 * request asks (the management API's own bound). */
#define GW_CLUSTER_LIST_MAX 1000

typedef struct gw_cluster_msg {
	int kind;                /* enum gw_op_kind, or '?' (the node-ID probe) */
	int binary;              /* fan-out: the message is not UTF-8 */
	gw_api_mask_t apis;      /* COUNT, LIST, fan-out */
	char channel[GW_CHAN_NAME_MAX + 1]; /* a valid name, or "" for none */
	size_t chan_len;
	uint32_t loop, cursor, limit; /* LIST; limit at most GW_CLUSTER_LIST_MAX */
	const char *id;          /* POST, GET, DELETE, JOIN, LEAVE: GW_CONNID_LEN bytes */
	const unsigned char *body; /* POST: the message; fan-out: the message */
	size_t body_len;
} gw_cluster_msg_t;

/* A request on wsgate.NAME.node.N.op. 0, or -1 when malformed (answered
 * 410, as an ID that names nothing). */
int gw_cluster_decode_op(const unsigned char *d, size_t len, gw_cluster_msg_t *m);
/* A message on wsgate.NAME.fanout: PUBLISH with a valid channel name, or
 * BROADCAST with none. 0, or -1 when malformed (dropped). */
int gw_cluster_decode_fanout(const unsigned char *d, size_t len, gw_cluster_msg_t *m);
/* A LIST reply's body: count and next cursor (8 hex digits each; the
 * cursor's top bit says the page was cut short to fit NATS's max_payload),
 * then the items. The items' offset (16), or -1 when malformed. */
int gw_cluster_decode_list_reply(const unsigned char *d, size_t len, uint32_t *count,
				 uint32_t *cursor, int *cut);

/* Every cluster message travels sealed (cluster.h, "Authentication"): a
 * head of GW_CLUSTER_ENV_HEAD bytes, then the payload above.
 *   [0]      version (1)
 *   [1]      type: what the message may be taken for (below)
 *   [2]      the sender's node ID (1..255)
 *   [3..10]  the sender's sequence (big-endian; wall-clock nanoseconds,
 *            strictly increasing per sender, across its restarts too)
 *   [11..26] tag: HMAC-SHA256 under a key derived from the cluster secret,
 *            over the subject and the reply subject (each with a 2-byte
 *            length), bytes 0..10 and the payload, cut to 16 bytes */
#define GW_CLUSTER_ENV_HEAD 27
#define GW_CLUSTER_ENV_TAG 16
enum gw_cluster_env_type {
	GW_ENV_OP = 'O',      /* a request on wsgate.NAME.node.N.op */
	GW_ENV_REPLY = 'R',   /* its reply, on the requester's inbox */
	GW_ENV_FANOUT = 'F',  /* a channel publish or a broadcast */
	GW_ENV_ALIVE = 'A',   /* a heartbeat */
};

typedef struct gw_cluster_env {
	int type;
	uint32_t node;
	uint64_t seq;
	const unsigned char *payload;
	size_t len;
} gw_cluster_env_t;

/* The message key (opaque: OpenSSL's HMAC context), derived from the
 * cluster secret with a label of its own; NULL when OpenSSL fails. Shared
 * read-only by every thread. */
typedef struct gw_cluster_mac gw_cluster_mac_t;
gw_cluster_mac_t *gw_cluster_mac_new(const unsigned char *secret, size_t len);
void gw_cluster_mac_free(gw_cluster_mac_t *k);
/* Fills msg's head (its first GW_CLUSTER_ENV_HEAD bytes; the payload of
 * len bytes follows it). reply: "" for none. 0, or -1 (OpenSSL failed). */
int gw_cluster_seal(const gw_cluster_mac_t *k, const char *subject, const char *reply,
		    int type, uint32_t node, uint64_t seq, unsigned char *msg, size_t len);
/* A sealed message received on subject (reply: NULL or "" for none): 0 and
 * *env when its tag holds, -1 otherwise (malformed, another key, another
 * subject or reply, altered). Freshness is the caller's. */
int gw_cluster_open(const gw_cluster_mac_t *k, const char *subject, const char *reply,
		    const unsigned char *d, size_t len, gw_cluster_env_t *env);

/* The most a LIST page from this node may hold: NATS's max_payload, less
 * room for the reply's head (a larger reply could not be sent). */
size_t gw_cluster_page_bytes(void);

#endif
