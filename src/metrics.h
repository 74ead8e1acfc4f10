/* Prometheus metrics: counters kept per event loop, summed when scraped.
 *
 * Each loop owns one gw_metrics_t and is the only writer of its counters;
 * the scrape (GET /metrics, on whichever loop serves the management
 * request) reads every loop's. A counter is bumped with a relaxed atomic
 * load and store, not a read-modify-write: with a single writer nothing is
 * lost, the compiler emits the same plain `add` to memory as for a plain
 * integer (no lock prefix, no fence), and the reader's relaxed loads make
 * the cross-thread read race-free in C11's model. An aligned 64-bit load
 * or store is one instruction on x86-64 and aarch64, so a read is never
 * torn. A scrape may see one loop's counters a few events older than
 * another's; a monotonic counter never goes back.
 *
 * Gauges that would need a walk (backend pools, queued outbound bytes) are
 * sampled by each loop on its own thread once a second (gw_metrics_start);
 * nothing on the message path pays for them. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

struct gw_worker;

/* Per API (gw_api_t.id; GW_CONFIG_API_ID_NONE for requests that found
 * none) counters. */
enum gw_metric {
	GW_M_CONN_OPENED = 0,  /* upgrades completed (AWS ConnectCount) */
	GW_M_CONN_CLOSED,      /* of those, closed since */
	GW_M_MSG_IN,           /* WebSocket messages received */
	GW_M_MSG_OUT,          /* WebSocket messages written to clients */
	GW_M_ERR_TIMEOUT,      /* integration calls: timed out */
	GW_M_ERR_BUSY,         /* pool and queue full */
	GW_M_ERR_FAILED,       /* unreachable, reset, malformed */
	GW_M_ERR_4XX,          /* answered with a 4xx status */
	GW_M_ERR_5XX,          /* answered with a 5xx status */
	GW_M_REJ_SOURCE_IP,    /* sourceIpLimits */
	GW_M_REJ_ORIGIN,       /* allowedOrigins */
	GW_M_REJ_API_KEY,      /* apiKeyRequired */
	GW_M_REJ_CONNECT_RATE, /* $connect throttling */
	GW_M_REJ_CONNECT,      /* $connect's integration said no or failed */
	GW_M_REJ_MSG_RATE,     /* route or connection throttling */
	GW_M_REJ_NO_ROUTE,     /* no route, no $default: "Forbidden" */
	GW_M_COUNT
};

/* Integration latency buckets, upper bounds in microseconds (+Inf after). */
#define GW_METRICS_BUCKETS 14
/* Close codes 1000..1015 by value, then 4000-4999, then anything else. */
#define GW_METRICS_CODES 18
#define GW_METRICS_MGMT_OPS 5 /* post, get, delete, metrics, other */
#define GW_METRICS_MAX_APIS 256
/* Routes named in a series, over every configuration of the process; the
 * last slot counts the routes past the table ("(other)"). */
#define GW_METRICS_MAX_ROUTES 1024

typedef struct gw_metrics_api {
	uint64_t c[GW_M_COUNT];
	uint64_t disconnects[GW_METRICS_CODES];
	uint64_t rest[6]; /* REST answers by status class: [1] 1xx .. [5] 5xx */
	uint64_t hist[GW_METRICS_BUCKETS + 1];
	uint64_t hist_sum_us;
} gw_metrics_api_t;

/* Opaque but for apis, which the inline bumps below index: a call per
 * message costs more than the bump itself. */
typedef struct gw_metrics {
	gw_metrics_api_t apis[GW_METRICS_MAX_APIS];
	uint64_t routes[GW_METRICS_MAX_ROUTES]; /* messages or requests per route */
	struct gw_metrics_loop *loop; /* the rest (metrics.c) */
} gw_metrics_t;

gw_metrics_t *gw_metrics_create(void);
void gw_metrics_destroy(gw_metrics_t *m);
/* Samples this loop's gauges now and then once a second on its context;
 * stop before the context is destroyed. */
void gw_metrics_start(struct gw_worker *gw);
void gw_metrics_stop(struct gw_worker *gw);

/* The writer's bump: see the top. */
#define GW_METRIC_ADD(var, n)                                                  \
	__atomic_store_n(&(var), __atomic_load_n(&(var), __ATOMIC_RELAXED) + (n), \
			 __ATOMIC_RELAXED)

static inline gw_metrics_api_t *gw_metrics_api(gw_metrics_t *m, unsigned api_id)
{
	return &m->apis[api_id < GW_METRICS_MAX_APIS ? api_id : GW_METRICS_MAX_APIS - 1];
}

static inline void gw_metrics_count(gw_metrics_t *m, unsigned api_id, enum gw_metric c)
{
	GW_METRIC_ADD(gw_metrics_api(m, api_id)->c[c], 1);
}

/* A route's slot (gw_route_t.metric_slot) for its API id and key, the
 * same for the same pair across reloads; thread-safe (config loading). */
unsigned gw_metrics_route_slot(unsigned api_id, const char *key);

static inline void gw_metrics_route(gw_metrics_t *m, unsigned slot)
{
	GW_METRIC_ADD(m->routes[slot < GW_METRICS_MAX_ROUTES ? slot : GW_METRICS_MAX_ROUTES - 1], 1);
}

/* One integration call's end: its outcome (a gw_call_outcome), the HTTP
 * status when it was answered, and how long it took. */
void gw_metrics_integration(gw_metrics_t *m, unsigned api_id, int outcome, int status,
			    uint64_t duration_us);
/* An established connection's end, with its close code. */
void gw_metrics_disconnect(gw_metrics_t *m, unsigned api_id, int code);
/* A REST answer's status. */
void gw_metrics_rest(gw_metrics_t *m, unsigned api_id, int status);
/* A management request: its op (0 none, then GW_OP_POST/GET/DELETE; 4 for
 * /metrics) and status. */
void gw_metrics_mgmt(gw_metrics_t *m, int op, int status);
/* A connection refused for --max-pending-heads (no API known yet). */
void gw_metrics_head_refused(gw_metrics_t *m);
/* An access-log line dropped because the writer fell behind. */
void gw_metrics_log_dropped(gw_metrics_t *m);

/* --metrics-no-auth: GET /metrics is served without a SigV4 signature even
 * when managementAuth is configured (set once, before the loops start). */
extern int gw_metrics_no_auth;

/* Monotonic microseconds (integration durations). */
uint64_t gw_metrics_now_us(void);

/* Appends the text exposition (version 0.0.4) of every loop of gw's
 * process to out. */
void gw_metrics_render(struct gw_worker *gw, gw_buf_t *out);

#endif
