/* Internals shared by the core modules and the management API: the loop
 * (struct gw_worker) and the services worker.c and conn.c give the modules
 * below gateway.c. Nothing outside src/ and mgmt-api/ includes this. */
#ifndef GW_CORE_H
#define GW_CORE_H

#include "backend.h"
#include "buf.h"
#include "config.h"
#include "event.h"
#include "gateway.h"
#include "loop.h"
#include "registry.h"
#include "tls.h"
#include "vhosts.h"
#include "wheel.h"
#include "rest.h"
#include "metrics.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdint.h>

/* Safe points (loop.h), for the loop of gw: gw_watch_close() takes the fd
 * out of epoll, closes it and marks the watch dead; memory that holds a
 * watch is released with gw_defer_free(), after the batch. Every object
 * with a watch follows both rules. */
struct gw_worker;
void gw_watch_close(struct gw_worker *gw, gw_watch_t *w);
void gw_defer_free(struct gw_worker *gw, void (*fn)(void *), void *p);
/* Runs the deferred frees now (end of a service round, teardown). */
void gw_defer_run(struct gw_worker *gw);

typedef struct gw_conn gw_conn_t;
typedef struct gw_conns gw_conns_t;
/* The largest request head the gateway reads, and the header space given
 * to libwebsockets for the same head: it stores each header with a few
 * bytes more than the raw head takes. */
#define GW_HEAD_MAX_BYTES 16384
#define GW_LWS_HEADER_SPACE (GW_HEAD_MAX_BYTES + 2048)
/* The default of --send-timeout: how long a close may wait for a client
 * that does not read, and libwebsockets' own deadlines. */
#define GW_CLOSE_TIMEOUT_S 10

/* The process (gateway.h; its fields are in gateway_own.h, for gateway.c
 * and worker.c): the loops, and what they share that modules below read. */
unsigned gw_gateway_workers(const gw_gateway_t *g);
struct gw_worker *gw_gateway_worker(const gw_gateway_t *g, unsigned i);
int gw_gateway_send_timeout_s(const gw_gateway_t *g); /* --send-timeout */
int gw_gateway_mgmt_on_gateway(const gw_gateway_t *g); /* --mgmt-on-gateway */

/* One event loop: a libwebsockets context, an epoll set, connections,
 * integration pools. It holds what every module shares, and one opaque
 * pointer per module's context, created and freed by that module; its own
 * state (listeners, stop and drain, the inbox) is behind own. Only its
 * thread touches it, except for the inbox (gw_worker_post). */
struct gw_worker {
	gw_gateway_t *sh;
	gw_config_t *cfg;
	gw_registry_t *reg;
	gw_backend_t *be;
	struct lws_context *ctx;
	struct lws_vhost *vh_ws;
	struct lws_vhost *vh_mgmt;
	gw_loop_t *loop; /* the gateway's own sockets (loop.h) */
	uint32_t worker;
	struct gw_worker_own *own; /* gateway_own.h: listeners, stop, inbox */
	struct gw_conns *conns; /* connections and their slot table (conn.c) */
	gw_buf_t scratch;  /* request building, reused */
	gw_buf_t rscratch; /* integration answers, route keys, reused */
	gw_wheel_t wheel; /* per-connection deadlines */
	struct gw_outbox *outbox; /* $disconnect calls owed (outbox.h) */
	SSL_CTX *tls; /* set when the gateway listener speaks TLS */
	gw_relay_ctx_t *relay; /* TLS relays (tls.h) */
	gw_rest_ctx_t *rest; /* REST connections and limits (rest.h) */
	struct gw_mgmt_ctx *mgmt; /* management requests waiting (mgmt-api/mgmt.c) */
	gw_vhosts_t *vhosts; /* vh_ws, vh_mgmt and subprotocols' (vhosts.h) */
	struct gw_chan_index *chans; /* channel.h: this loop's members */
	gw_metrics_t *metrics; /* this loop's counters (metrics.h) */
};

/* The loop is stopping (a signal or another loop asked): no new
 * connections or requests; what is open is closed (worker.c). */
int gw_worker_stopping(const gw_worker_t *gw);

/* Monotonic milliseconds: every deadline and duration. */
uint64_t gw_now_ms(void);
/* Wall-clock milliseconds: only times that are reported. */
uint64_t gw_wall_ms(void);
/* A monotonic time as wall-clock time (for lastActiveAt). */
uint64_t gw_mono_to_wall(uint64_t mono_ms);
/* A fresh 16-character request ID (AWS-like shape, unique per process). */
void gw_worker_request_id(gw_worker_t *gw, char out[24]);

/* --- connections (conn.c) --- */
/* The loop's connections: the slot table that connection IDs name, the
 * open and paused lists, the bytes their inbound queues hold. */
gw_conns_t *gw_conns_create(gw_worker_t *gw);
/* What a connection needs from the channels (channel.c, above conn.c),
 * handed in by the loop's creator once the slot table exists: conn.c
 * calls nothing above it. Without them, an answer joins nothing and a
 * close leaves nothing. */
typedef struct gw_conn_chan_hooks {
	/* An integration's answer's subscribe and unsubscribe lists; 1 when
	 * what the client sees of the answer waits for the cluster
	 * (gw_chan_apply). */
	int (*apply)(gw_worker_t *gw, gw_conn_t *conn, const char *subscribe,
		     const char *unsubscribe);
	/* Every membership of conn, at its close. */
	void (*leave_all)(gw_worker_t *gw, gw_conn_t *conn);
} gw_conn_chan_hooks_t;
void gw_conns_set_chan_hooks(gw_conns_t *cs, const gw_conn_chan_hooks_t *hooks);
void gw_conns_destroy(gw_conns_t *cs);
size_t gw_conn_count(const gw_worker_t *gw); /* every conn, whatever its state */
size_t gw_conn_open_count(const gw_worker_t *gw);
/* Walks: the slot table's size, and a slot's connection (may be NULL). */
uint32_t gw_conn_slots(const gw_worker_t *gw);
gw_conn_t *gw_conn_at_slot(const gw_worker_t *gw, uint32_t slot);
/* The slot table behind IDs (connid.h): a freed slot's ID finds nothing. */
gw_conn_t *gw_worker_find_conn(gw_worker_t *gw, const char *id, size_t len);
int gw_worker_slot_alloc(gw_worker_t *gw, gw_conn_t *conn, uint32_t *slot);
void gw_worker_slot_free(gw_worker_t *gw, uint32_t slot);
/* Tests: gives a slot its last generation (retired once freed). */
void gw_conns_set_gen(gw_conns_t *cs, uint32_t slot, uint32_t gen);
enum gw_post_result {
	GW_POST_OK = 0,
	GW_POST_GONE,      /* 410 */
	GW_POST_TOO_LARGE, /* 413 */
	GW_POST_FULL,      /* 429 */
	GW_POST_PENDING,   /* $connect still running: wait */
};

/* A management request parked on a connection whose $connect is pending. */
typedef struct gw_waiter {
	lws_dll2_t list;
	/* ok: the connection opened (the post was queued) or was refused. */
	void (*decided)(struct gw_waiter *w, int ok);
} gw_waiter_t;

extern const struct lws_protocols gw_ws_protocol;

/* A socket accepted on the gateway listener: reads the request head, then
 * either hands it to libwebsockets or holds it for $connect. */
void gw_conn_accept(gw_worker_t *gw, int fd);
/* A management listener's socket: its first head is checked against what
 * libwebsockets can parse (conn.c), then the management vhost takes it. */
void gw_conn_accept_mgmt(gw_worker_t *gw, int fd);

int gw_conn_post(gw_conn_t *conn, const void *data, size_t len);
/* Parks w until the handshake is decided; the post data is queued first. */
void gw_conn_wait(gw_conn_t *conn, gw_waiter_t *w);
/* A message shared by several connections' queues (a channel publish):
 * one copy, counted by reference, with libwebsockets' headroom. */
typedef struct gw_payload {
	unsigned refs; /* one loop's: never shared between threads */
	size_t len;
	unsigned char data[]; /* LWS_PRE, then the bytes */
} gw_payload_t;
gw_payload_t *gw_payload_create(const void *data, size_t len);
void gw_payload_unref(gw_payload_t *p);
/* Channels (channel.h): queues p (a reference is taken), whose type is
 * known; the same results as gw_conn_post, never PENDING (queued before
 * the 101 is OK). */
int gw_conn_send(gw_conn_t *conn, gw_payload_t *p, int binary);
lws_dll2_owner_t *gw_conn_channels(gw_conn_t *conn);
uint64_t *gw_conn_chan_skips(gw_conn_t *conn);
const gw_api_t *gw_conn_api(const gw_conn_t *conn);
int gw_conn_is_open(const gw_conn_t *conn);
const char *gw_conn_id(const gw_conn_t *conn);
uint64_t gw_conn_last_active(const gw_conn_t *conn);
/* The GetConnection JSON of conn (id: its ID) appended to out: connectedAt
 * and identity from its registry record, lastActiveAt from the connection
 * (newer than the registry's batched copy); -1 when it has no record or
 * is not open. */
int gw_conn_json(gw_worker_t *gw, gw_conn_t *conn, const char *id, gw_buf_t *out);
/* Closes with 1000 "Connection Closed Normally" (management DELETE). */
void gw_conn_delete(gw_conn_t *conn);
void gw_conn_close(gw_conn_t *conn, int code, const char *reason);
/* Shutdown: refuse pending handshakes, close open ones with 1001. */
void gw_conn_shutdown_all(gw_worker_t *gw);
/* The drain deadline: resets the socket of every connection still open
 * (its close completes, with its $disconnect); returns how many. */
size_t gw_conn_drop_all(gw_worker_t *gw);
/* Destroy: frees conns libwebsockets does not know about. */
void gw_conn_free_unadopted(gw_worker_t *gw);
/* Writes every dirty lastActiveAt value to the registry (at exit). */
void gw_conn_flush_activity(gw_worker_t *gw);
/* The same for at most max connections, going round the open list. */
size_t gw_conn_flush_slice(gw_worker_t *gw, size_t max);
/* Bytes queued for the loop's clients, not yet written (a walk: metrics). */
size_t gw_conn_outbound_bytes(gw_worker_t *gw);

/* Hands node to another loop's inbox and wakes that loop. */
void gw_worker_post(gw_worker_t *to, lws_dll2_t *node);

/* --- management API (mgmt-api/mgmt.c) --- */
extern const struct lws_protocols gw_mgmt_protocol;
/* A loop's management requests waiting for their operations. */
typedef struct gw_mgmt_ctx gw_mgmt_ctx_t;
gw_mgmt_ctx_t *gw_mgmt_ctx_create(void);
void gw_mgmt_ctx_destroy(gw_mgmt_ctx_t *m);
void gw_mgmt_free_message(lws_dll2_t *node);

#endif
