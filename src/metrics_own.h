/* What metrics.c (the counters) and metrics_scrape.c (the gauge sampler
 * and the exposition) share; no other file includes this. */
#ifndef GW_METRICS_OWN_H
#define GW_METRICS_OWN_H

#include "metrics.h"

#include <libwebsockets.h>
#include <stdint.h>

#define MGMT_STATUSES 600

struct gw_metrics_loop {
	uint64_t mgmt[GW_METRICS_MGMT_OPS][MGMT_STATUSES];
	uint64_t head_refused;
	uint64_t log_dropped;
	/* Gauges, sampled by the owning loop (gw_metrics_start). */
	uint64_t backend_in_use, backend_idle, backend_queued;
	uint64_t outbound_bytes;
	uint64_t sockets; /* every connection of the loop, whatever its state */
	lws_sorted_usec_list_t sampler;
	struct gw_worker *gw;
};

/* Integration latency buckets' upper bounds, in microseconds. */
extern const uint64_t gw_metrics_bucket_us[GW_METRICS_BUCKETS];

#define LOAD(v) __atomic_load_n(&(v), __ATOMIC_RELAXED)
#define STORE(v, x) __atomic_store_n(&(v), (x), __ATOMIC_RELAXED)

/* Route names by slot (gw_metrics_route_slot): how many are published,
 * and slot i's API id and key, for i below that count. */
unsigned gw_metrics_route_names(void);
const char *gw_metrics_route_name(unsigned i, unsigned *api);

#endif
