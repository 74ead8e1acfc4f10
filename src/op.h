/* A management operation (bus.h carries it): a small heap object with one
 * owner at a time, naming a connection by its ID or a loop. Created and
 * destroyed here, below everything that makes one: the management API,
 * the bus, the cluster (operations from other nodes) and conn.c (a join
 * hold). A leaf over connid.h. */
#ifndef GW_OP_H
#define GW_OP_H

#include "buf.h"
#include "connid.h"
#include "core.h"

_Static_assert(GW_CONN_ID_LEN == GW_CONNID_LEN, "the registry stores connid.h IDs");

enum gw_op_kind {
	GW_OP_POST = 1, /* data: the message; 200, 410, 413, 429 */
	GW_OP_GET,      /* data out: the GetConnection JSON; 200, 410 */
	GW_OP_DELETE,   /* 204, 410 */
	/* Channels (channel.h). JOIN and LEAVE name a connection: 204, 410,
	 * 400 (a bound). The others name a loop (gw_op_create_loop): each
	 * loop answers for its own connections, the sender adds up. */
	GW_OP_JOIN,
	GW_OP_LEAVE,
	GW_OP_PUBLISH,   /* channel, data in; count (queued), skipped out */
	GW_OP_COUNT,     /* channel in; count (members) out */
	GW_OP_BROADCAST, /* data in; every open connection the mask allows */
	GW_OP_LIST,      /* cursor, limit (and channel) in; data (JSON items,
			  * comma-separated), count and cursor out; skipped 1
			  * when the page was cut to fit a NATS message */
};

/* The APIs (gw_api_t.id) a loop-wide operation may reach: a bit each. */
typedef struct gw_api_mask {
	uint64_t bits[4];
} gw_api_mask_t;

static inline int gw_api_mask_has(const gw_api_mask_t *m, unsigned id)
{
	return id < 256 && (m->bits[id >> 6] >> (id & 63)) & 1;
}

static inline void gw_api_mask_set(gw_api_mask_t *m, unsigned id)
{
	if (id < 256)
		m->bits[id >> 6] |= (uint64_t)1 << (id & 63);
}

typedef struct gw_op gw_op_t;
typedef void (*gw_op_done_cb)(gw_worker_t *gw, gw_op_t *op);

struct gw_op {
	/* the request, set by the sender */
	enum gw_op_kind kind;
	char id[GW_CONN_ID_LEN + 1];
	gw_connid_t target; /* id, decoded and verified */
	gw_buf_t data;      /* POST body in, GET answer out */
	gw_op_done_cb done; /* on the sender's loop, once */
	/* channels, broadcast and listing */
	char channel[132];  /* "" when none */
	gw_api_mask_t apis; /* loop-wide operations: the APIs reached */
	int binary;         /* PUBLISH, BROADCAST: data is not UTF-8 */
	uint32_t cursor;    /* LIST: the first slot to look at, then the next */
	uint32_t limit;     /* LIST: at most this many items */
	uint64_t count, skipped;
	uint64_t token;     /* the sender's, untouched by the bus */
	/* the result: an HTTP status and AWS's error type, static strings */
	int status;
	const char *error_type;
	const char *message;
	/* the bus's own */
	lws_dll2_t list;
	uint32_t from; /* the sender's loop */
	int is_reply;
	gw_waiter_t waiter; /* parked on a pending $connect */
	gw_worker_t *at;   /* the loop it is parked on */
	char *remote;       /* sent by another node: its reply subject (cluster.h) */
};

/* An operation on the connection named by id (any bytes): NULL when id is
 * not a valid connection ID of this process (wrong shape or MAC), which
 * the caller answers 410 without any trip. Aborts when out of memory. */
gw_op_t *gw_op_create(enum gw_op_kind kind, const char *id, size_t len);
void gw_op_destroy(gw_op_t *op);
/* A loop-wide operation (PUBLISH, COUNT, BROADCAST, LIST) for loop. */
gw_op_t *gw_op_create_loop(enum gw_op_kind kind, uint32_t loop);

#endif
