/* Prometheus metrics (see metrics.h): the per-loop counters every module
 * bumps, and the route names. A leaf: the once-a-second gauge sampler and
 * the text exposition, which read the loops, are metrics_scrape.c's.
 * Nothing here runs on the message path but the inline bumps of
 * metrics.h. */
#include "metrics.h"
#include "metrics_own.h"
#include "core.h"

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>


int gw_metrics_no_auth;

/* Route names by slot: written under the lock, n published with release. */
static struct {
	unsigned api;
	char key[160];
} route_names[GW_METRICS_MAX_ROUTES];
static unsigned n_route_names;
static pthread_mutex_t route_lock = PTHREAD_MUTEX_INITIALIZER;

unsigned gw_metrics_route_slot(unsigned api_id, const char *key)
{
	unsigned i, n, slot = GW_METRICS_MAX_ROUTES - 1;

	if (strlen(key) >= sizeof(route_names[0].key))
		return slot;
	pthread_mutex_lock(&route_lock);
	n = n_route_names;
	for (i = 0; i < n; i++)
		if (route_names[i].api == api_id && !strcmp(route_names[i].key, key))
			break;
	if (i < n) {
		slot = i;
	} else if (n < GW_METRICS_MAX_ROUTES - 1) {
		route_names[n].api = api_id;
		snprintf(route_names[n].key, sizeof(route_names[n].key), "%s", key);
		__atomic_store_n(&n_route_names, n + 1, __ATOMIC_RELEASE);
		slot = n;
	}
	pthread_mutex_unlock(&route_lock);
	return slot;
}

unsigned gw_metrics_route_names(void)
{
	return __atomic_load_n(&n_route_names, __ATOMIC_ACQUIRE);
}

const char *gw_metrics_route_name(unsigned i, unsigned *api)
{
	*api = route_names[i].api;
	return route_names[i].key;
}



const uint64_t gw_metrics_bucket_us[GW_METRICS_BUCKETS] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000,
};


gw_metrics_t *gw_metrics_create(void)
{
	gw_metrics_t *m = calloc(1, sizeof(*m));

	if (!m || !(m->loop = calloc(1, sizeof(*m->loop))))
		abort();
	return m;
}

void gw_metrics_destroy(gw_metrics_t *m)
{
	if (m)
		free(m->loop);
	free(m);
}

uint64_t gw_metrics_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void gw_metrics_integration(gw_metrics_t *m, unsigned api_id, int outcome, int status,
			    uint64_t duration_us)
{
	gw_metrics_api_t *a = gw_metrics_api(m, api_id);
	size_t b = 0;

	while (b < GW_METRICS_BUCKETS && duration_us > gw_metrics_bucket_us[b])
		b++;
	GW_METRIC_ADD(a->hist[b], 1);
	GW_METRIC_ADD(a->hist_sum_us, duration_us);
	switch (outcome) {
	case GW_CALL_OK:
		if (status >= 500)
			GW_METRIC_ADD(a->c[GW_M_ERR_5XX], 1);
		else if (status >= 400)
			GW_METRIC_ADD(a->c[GW_M_ERR_4XX], 1);
		break;
	case GW_CALL_TIMEOUT:
		GW_METRIC_ADD(a->c[GW_M_ERR_TIMEOUT], 1);
		break;
	case GW_CALL_BUSY:
		GW_METRIC_ADD(a->c[GW_M_ERR_BUSY], 1);
		break;
	default:
		GW_METRIC_ADD(a->c[GW_M_ERR_FAILED], 1);
		break;
	}
}

void gw_metrics_disconnect(gw_metrics_t *m, unsigned api_id, int code)
{
	gw_metrics_api_t *a = gw_metrics_api(m, api_id);
	size_t i = code >= 1000 && code <= 1015 ? (size_t)(code - 1000) :
		   code >= 4000 && code <= 4999 ? 16 : 17;

	GW_METRIC_ADD(a->c[GW_M_CONN_CLOSED], 1);
	GW_METRIC_ADD(a->disconnects[i], 1);
}

void gw_metrics_rest(gw_metrics_t *m, unsigned api_id, int status)
{
	if (status >= 100 && status <= 599)
		GW_METRIC_ADD(gw_metrics_api(m, api_id)->rest[status / 100], 1);
}

void gw_metrics_mgmt(gw_metrics_t *m, int op, int status)
{
	if (op < 0 || op >= GW_METRICS_MGMT_OPS)
		op = 0;
	if (status < 0 || status >= MGMT_STATUSES)
		status = 0;
	GW_METRIC_ADD(m->loop->mgmt[op][status], 1);
}

void gw_metrics_head_refused(gw_metrics_t *m)
{
	GW_METRIC_ADD(m->loop->head_refused, 1);
}

void gw_metrics_log_dropped(gw_metrics_t *m)
{
	GW_METRIC_ADD(m->loop->log_dropped, 1);
}
