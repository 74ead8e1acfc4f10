/* The cluster: several gateway nodes sharing one NATS server, so that the
 * management API of any node serves every connection of the cluster. It
 * is the bus's second transport (bus.h): an operation whose connection ID
 * names another node travels there by NATS request/reply, runs on the
 * owner's loop like any other, and its result comes back to the sender's
 * loop through that loop's inbox.
 *
 * Subjects, under a cluster name (--cluster-name, default "default"):
 *   wsgate.<name>.node.<id>.op   operations for node <id> (request/reply)
 *   wsgate.<name>.fanout         channel publish and broadcast (below)
 *   wsgate.<name>.alive          each node's heartbeat (its ID), every second
 *
 * Wire format (NATS payloads, binary-safe, each after the seal's head):
 *   request: one byte, the operation (enum gw_op_kind, or '?' for "is this
 *            node ID taken?"), the 24-character connection ID, the body
 *            (POST: the message; JOIN/LEAVE: the channel's name)
 *   reply:   three ASCII digits, the HTTP status, then for 2xx the body
 *            (GET's JSON), for errors "ERRORTYPE\nMESSAGE"
 * Operations that name a connection cross (POST, GET, DELETE, JOIN,
 * LEAVE, and so each ID of a batch post); those that name a loop
 * (publish, broadcast, count, list) stay on this node for now.
 *
 * Threads: the NATS client's own threads receive, and one thread of this
 * module publishes and times requests out; the event loops only take a
 * mutex to hand over a message, never wait for NATS. An owner that does
 * not answer within the timeout (killed, partitioned, NATS down) is
 * answered 410, as a connection that is gone; an owner that has left
 * (no subscriber: NATS answers "no responders") is 410 at once.
 *
 * Trust: every node holds the same ID secret (--cluster-secret-file), so
 * any node verifies any ID's MAC before forwarding, and the owner checks it
 * again. SigV4 (managementAuth) is checked once, at the node that received
 * the HTTP request. Every message on NATS is sealed under a key derived
 * from the same secret (cluster_wire.h: sender node, sequence, HMAC over
 * subject, reply subject and payload), sealed by the sender thread and
 * checked before anything else reads it: a process on NATS without the
 * secret can withhold messages, not make or replay them. Only the probe
 * "is this node ID taken?" and its answer go unsealed.
 *
 * Channels across nodes: a publish on one node runs on its own loops and
 * goes out once on wsgate.<name>.chan.<token> (the channel's name encoded
 * by gw_cluster_chan_token); a broadcast on wsgate.<name>.fanout. NATS
 * does not echo either back to the sender. The HTTP answer counts the
 * receiving node's deliveries only.
 *
 * Interest: a node subscribes to a channel's subject only while one of its
 * loops has a member of it (the first join on any loop subscribes, the
 * last leave or close unsubscribes), so a publish reaches only the nodes
 * that hold members. This module's sender thread does the subscribing; a
 * management JOIN that needs a new subscription is answered only after
 * NATS has confirmed it (a flush: PING/PONG), so any publish sent after
 * the 204, through any node, finds the subscription on the server. A join
 * from an integration's answer waits the same way (gw_cluster_hold: conn.c
 * holds the 101 or the route's answer until then). */
#ifndef GW_CLUSTER_H
#define GW_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

struct gw_worker;
struct gw_gateway;
struct gw_op;

#define GW_CLUSTER_DEFAULT_TIMEOUT_MS 2000

typedef struct gw_cluster_opts {
	const char *url;         /* nats://HOST:PORT[,nats://...]; NULL: no cluster */
	const char *name;        /* the cluster's subject prefix part (default "wsgate") */
	const char *secret_file; /* the ID MAC secret, shared by every node */
	const char *creds;       /* NATS user credentials file (JWT + NKey) */
	const char *ca;          /* CA certificates that sign the NATS server's */
	const char *cert, *key;  /* client certificate for NATS (mutual TLS) */
	int node_id;             /* 1..255; 0: pick a free one */
	int timeout_ms;          /* a forwarded operation's bound */
} gw_cluster_opts_t;

/* Messages from NATS dropped by their check (cluster_wire.h), by kind:
 * the MAC does not hold, stamped outside the clock window, a replay. */
enum {
	GW_CLUSTER_REJECT_MAC,
	GW_CLUSTER_REJECT_STALE,
	GW_CLUSTER_REJECT_REPLAY,
	GW_CLUSTER_REJECT_KINDS
};
void gw_cluster_rejected(uint64_t out[GW_CLUSTER_REJECT_KINDS]);

/* Before anything draws an ID: reads the secret file (at least 16 bytes,
 * never logged) and makes it the process's ID key. 0, or -1 and err. */
int gw_cluster_load_secret(const char *path, char *err, size_t errlen);

/* Connects to NATS, settles the node ID (refusing one another node holds)
 * and subscribes to this node's operations; before the loops run. 0, or -1
 * and err. */
int gw_cluster_start(struct gw_gateway *g, const gw_cluster_opts_t *opts,
		     char *err, size_t errlen);
/* After the loops stopped: leaves NATS; operations still waiting for a
 * reply are freed. */
void gw_cluster_stop(void);

/* This node's ID in connection IDs: 0 without a cluster. */
uint32_t gw_cluster_self(void);
/* XORed into each ID's generation: a node restarted under the same ID and
 * secret does not name its new connections like the old ones (0 without
 * a cluster, where the secret is new each run). */
uint32_t gw_cluster_epoch(void);

/* From the sender's loop: sends op to the node its ID names. 0: op->done
 * will be called on this loop later; -1: no cluster (the caller answers). */
int gw_cluster_forward(struct gw_worker *gw, struct gw_op *op);
/* From the owner's loop: op came from another node (op->remote); sends its
 * result back and destroys it. */
void gw_cluster_reply(struct gw_worker *gw, struct gw_op *op);

/* From the loop that received a publish or broadcast (kind GW_OP_PUBLISH or
 * GW_OP_BROADCAST): the same to every other node, fire and forget. */
struct gw_api_mask;
void gw_cluster_fanout(int kind, const char *channel, size_t chan_len, const void *data,
		       size_t len, int binary, const struct gw_api_mask *apis);

/* The other nodes heard from lately (each says "alive" every second on
 * wsgate.<name>.alive); their IDs into out. 0 without a cluster. A member
 * count (GW_OP_COUNT with target.node set to one of them) is answered by
 * that node for all its loops. */
int gw_cluster_peers(uint32_t *out, size_t max);

/* The smallest node ID above after among this node and its peers (a
 * listing goes node by node); 0 when none, or without a cluster. */
uint32_t gw_cluster_next_node(uint32_t after);

/* A channel's name (any bytes) as one NATS subject token: A-Z a-z 0-9 _ -
 * and ':' stay, every other byte (the token separator '.', the wildcards
 * '*' and '>', blanks, '%' itself, non-ASCII) becomes %XX, so different
 * names never share a token. Its length, or -1 when out (size) is short;
 * 3 * len + 1 always fits. */
int gw_cluster_chan_token(const char *name, size_t len, char *out, size_t size);

/* channel.c, on a loop, under nothing: the loop's first member of the
 * channel (delta +1) or its last gone (-1). The node's subscription
 * follows the sum over its loops. No-op without a cluster. */
void gw_cluster_chan_interest(const char *name, size_t len, int delta);

/* bus.c, on the owner's loop, after a JOIN succeeded (op's result set):
 * 1 when the answer must wait for this node's subscription to the channel
 * to be confirmed by NATS; the module then sends op back itself, as the
 * bus would. 0: answer now (no cluster, or already subscribed). */
int gw_cluster_hold_join(struct gw_op *op);

/* An integration's answer (conn.c, channel.c), on a loop, after it joined
 * the channel: 1 when this node's subscription to it is not confirmed by
 * NATS yet (0 without a cluster, at no cost). */
int gw_cluster_chan_unconfirmed(const char *name, size_t len);
/* Then: op (op->from this loop, op->done set, no op->remote) comes back
 * through the loop's inbox, as a bus reply, once every channel found
 * unconfirmed before this call is confirmed (or its confirmation gave up:
 * NATS down or slower than min(--cluster-timeout, 2 s)). 0: held, op is
 * the module's; -1: no cluster or stopping (op stays the caller's). */
int gw_cluster_hold(struct gw_op *op);

/* "wsgate.<name>.<what>" into out; -1 when it does not fit. */
int gw_cluster_subject(char *out, size_t len, const char *what);

#endif
