/* Prometheus metrics (see metrics.h): the once-a-second gauge sampler on
 * each loop, and the text exposition a scrape renders from every loop's
 * counters (metrics.c), connections, backend pools and the registry. */
#include "cluster.h"
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

/* --- the gauge sampler, on the owning loop --- */

static void sample(struct gw_metrics_loop *m)
{
	gw_worker_t *gw = m->gw;
	unsigned in_use = 0, idle = 0, queued = 0;

	if (gw->be)
		gw_backend_pool_stats(gw->be, &in_use, &idle, &queued);
	STORE(m->backend_in_use, in_use);
	STORE(m->backend_idle, idle);
	STORE(m->backend_queued, queued);
	STORE(m->outbound_bytes, gw_conn_outbound_bytes(gw));
	STORE(m->sockets, gw_conn_count(gw));
}

static void on_sample(lws_sorted_usec_list_t *sul)
{
	struct gw_metrics_loop *m = lws_container_of(sul, struct gw_metrics_loop, sampler);

	sample(m);
	lws_sul_schedule(m->gw->ctx, 0, &m->sampler, on_sample, LWS_US_PER_SEC);
}

void gw_metrics_start(gw_worker_t *gw)
{
	gw->metrics->loop->gw = gw;
	sample(gw->metrics->loop);
	lws_sul_schedule(gw->ctx, 0, &gw->metrics->loop->sampler, on_sample, LWS_US_PER_SEC);
}

void gw_metrics_stop(gw_worker_t *gw)
{
	if (gw->metrics && gw->metrics->loop->gw)
		lws_sul_cancel(&gw->metrics->loop->sampler);
}

/* --- the exposition --- */

static void label_value(gw_buf_t *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			gw_buf_append_char(o, '\\');
		if (*s == '\n') {
			gw_buf_append_str(o, "\\n");
			continue;
		}
		gw_buf_append_char(o, *s);
	}
}

static void head(gw_buf_t *o, const char *name, const char *type, const char *help)
{
	gw_buf_append_str(o, "# HELP ");
	gw_buf_append_str(o, name);
	gw_buf_append_char(o, ' ');
	gw_buf_append_str(o, help);
	gw_buf_append_str(o, "\n# TYPE ");
	gw_buf_append_str(o, name);
	gw_buf_append_char(o, ' ');
	gw_buf_append_str(o, type);
	gw_buf_append_char(o, '\n');
}

/* name{api="..",stage=".."[,extra]} */
static void series(gw_buf_t *o, const char *name, unsigned id, const char *extra)
{
	const char *stage = id < GW_CONFIG_API_ID_NONE ? gw_config_api_stage(id) : NULL;
	const char *api = id < GW_CONFIG_API_ID_NONE ? gw_config_api_name(id) : NULL;

	gw_buf_append_str(o, name);
	gw_buf_append_str(o, "{api=\"");
	label_value(o, api ? api : "");
	gw_buf_append_str(o, "\",stage=\"");
	label_value(o, stage ? stage : "");
	gw_buf_append_char(o, '"');
	if (extra) {
		gw_buf_append_char(o, ',');
		gw_buf_append_str(o, extra);
	}
	gw_buf_append_char(o, '}');
}

static void value_u64(gw_buf_t *o, uint64_t v)
{
	gw_buf_append_char(o, ' ');
	gw_buf_append_u64(o, v);
	gw_buf_append_char(o, '\n');
}

static void value_f(gw_buf_t *o, double v)
{
	char s[64];

	snprintf(s, sizeof(s), " %.6f\n", v);
	gw_buf_append_str(o, s);
}

/* The sum over every loop, into one gw_metrics_api_t per API id. */
static void sum_apis(gw_gateway_t *sh, gw_metrics_api_t *t)
{
	for (unsigned w = 0; w < gw_gateway_workers(sh); w++) {
		gw_metrics_t *m = gw_gateway_worker(sh, w) ? gw_gateway_worker(sh, w)->metrics : NULL;

		if (!m)
			continue;
		for (size_t i = 0; i < GW_METRICS_MAX_APIS; i++) {
			gw_metrics_api_t *a = &m->apis[i], *s = &t[i];

			for (size_t k = 0; k < GW_M_COUNT; k++)
				s->c[k] += LOAD(a->c[k]);
			for (size_t k = 0; k < GW_METRICS_CODES; k++)
				s->disconnects[k] += LOAD(a->disconnects[k]);
			for (size_t k = 0; k < 6; k++)
				s->rest[k] += LOAD(a->rest[k]);
			for (size_t k = 0; k <= GW_METRICS_BUCKETS; k++)
				s->hist[k] += LOAD(a->hist[k]);
			s->hist_sum_us += LOAD(a->hist_sum_us);
		}
	}
}

/* An API id worth a series: known to this process, or with counts. */
static int api_shown(const gw_metrics_api_t *t, unsigned id)
{
	const gw_metrics_api_t *a = &t[id];

	if (id < GW_CONFIG_API_ID_NONE && gw_config_api_stage(id))
		return 1;
	for (size_t k = 0; k < GW_M_COUNT; k++)
		if (a->c[k])
			return 1;
	for (size_t k = 0; k < 6; k++)
		if (a->rest[k])
			return 1;
	return 0;
}

static void simple_counter(gw_buf_t *o, const gw_metrics_api_t *t, const char *name,
			   const char *help, enum gw_metric c)
{
	head(o, name, "counter", help);
	for (unsigned id = 0; id < GW_METRICS_MAX_APIS; id++) {
		if (!api_shown(t, id))
			continue;
		series(o, name, id, NULL);
		value_u64(o, t[id].c[c]);
	}
}

static void labelled(gw_buf_t *o, const gw_metrics_api_t *t, const char *name,
		     const char *help, const char *label, const char *const *values,
		     const enum gw_metric *cs, size_t n)
{
	char extra[96];

	head(o, name, "counter", help);
	for (unsigned id = 0; id < GW_METRICS_MAX_APIS; id++) {
		if (!api_shown(t, id))
			continue;
		for (size_t k = 0; k < n; k++) {
			snprintf(extra, sizeof(extra), "%s=\"%s\"", label, values[k]);
			series(o, name, id, extra);
			value_u64(o, t[id].c[cs[k]]);
		}
	}
}

static void render_apis(gw_buf_t *o, const gw_metrics_api_t *t)
{
	static const char *const dirs[] = { "in", "out" };
	static const enum gw_metric dir_c[] = { GW_M_MSG_IN, GW_M_MSG_OUT };
	static const char *const kinds[] = { "timeout", "busy", "failed", "4xx", "5xx" };
	static const enum gw_metric kind_c[] = { GW_M_ERR_TIMEOUT, GW_M_ERR_BUSY,
						 GW_M_ERR_FAILED, GW_M_ERR_4XX, GW_M_ERR_5XX };
	static const char *const rej[] = { "source_ip_limit", "origin", "api_key",
					   "connect_throttle", "connect_refused",
					   "message_throttle", "no_route" };
	static const enum gw_metric rej_c[] = { GW_M_REJ_SOURCE_IP, GW_M_REJ_ORIGIN,
						GW_M_REJ_API_KEY, GW_M_REJ_CONNECT_RATE,
						GW_M_REJ_CONNECT, GW_M_REJ_MSG_RATE,
						GW_M_REJ_NO_ROUTE };
	char extra[64];

	simple_counter(o, t, "wsgate_connections_opened_total",
		       "WebSocket connections established (AWS ConnectCount).",
		       GW_M_CONN_OPENED);
	head(o, "wsgate_connections_open", "gauge", "WebSocket connections open now.");
	for (unsigned id = 0; id < GW_METRICS_MAX_APIS; id++) {
		if (!api_shown(t, id))
			continue;
		series(o, "wsgate_connections_open", id, NULL);
		value_u64(o, t[id].c[GW_M_CONN_OPENED] >= t[id].c[GW_M_CONN_CLOSED]
				     ? t[id].c[GW_M_CONN_OPENED] - t[id].c[GW_M_CONN_CLOSED]
				     : 0);
	}
	labelled(o, t, "wsgate_messages_total",
		 "WebSocket messages received from (in) and written to (out) clients "
		 "(AWS MessageCount).", "direction", dirs, dir_c, 2);
	labelled(o, t, "wsgate_integration_errors_total",
		 "Integration calls that failed or answered an error status "
		 "(AWS IntegrationError, ExecutionError).", "kind", kinds, kind_c, 5);
	labelled(o, t, "wsgate_rejections_total",
		 "Upgrades and messages refused by a limit or check, before or instead of "
		 "an integration call (AWS ClientError).", "reason", rej, rej_c, 7);

	head(o, "wsgate_disconnects_total", "counter",
	     "Established WebSocket connections closed, by close code.");
	for (unsigned id = 0; id < GW_METRICS_MAX_APIS; id++) {
		if (!api_shown(t, id))
			continue;
		for (size_t k = 0; k < GW_METRICS_CODES; k++) {
			if (!t[id].disconnects[k])
				continue;
			if (k < 16)
				snprintf(extra, sizeof(extra), "code=\"%zu\"", 1000 + k);
			else
				snprintf(extra, sizeof(extra), "code=\"%s\"", k == 16 ? "4xxx" : "other");
			series(o, "wsgate_disconnects_total", id, extra);
			value_u64(o, t[id].disconnects[k]);
		}
	}

	head(o, "wsgate_rest_requests_total", "counter",
	     "REST requests answered, by status class (api and stage empty: no API "
	     "matched the path).");
	for (unsigned id = 0; id < GW_METRICS_MAX_APIS; id++) {
		if (!api_shown(t, id))
			continue;
		for (size_t k = 1; k < 6; k++) {
			if (!t[id].rest[k])
				continue;
			snprintf(extra, sizeof(extra), "status=\"%zuxx\"", k);
			series(o, "wsgate_rest_requests_total", id, extra);
			value_u64(o, t[id].rest[k]);
		}
	}

	head(o, "wsgate_integration_duration_seconds", "histogram",
	     "Integration call durations, from the call's start to its answer "
	     "(AWS IntegrationLatency).");
	for (unsigned id = 0; id < GW_METRICS_MAX_APIS; id++) {
		uint64_t cum = 0;

		if (!api_shown(t, id))
			continue;
		for (size_t k = 0; k <= GW_METRICS_BUCKETS; k++) {
			cum += t[id].hist[k];
			if (k < GW_METRICS_BUCKETS)
				snprintf(extra, sizeof(extra), "le=\"%g\"", (double)gw_metrics_bucket_us[k] / 1e6);
			else
				snprintf(extra, sizeof(extra), "le=\"+Inf\"");
			series(o, "wsgate_integration_duration_seconds_bucket", id, extra);
			value_u64(o, cum);
		}
		series(o, "wsgate_integration_duration_seconds_sum", id, NULL);
		value_f(o, (double)t[id].hist_sum_us / 1e6);
		series(o, "wsgate_integration_duration_seconds_count", id, NULL);
		value_u64(o, cum);
	}
}

static void render_mgmt(gw_buf_t *o, gw_gateway_t *sh)
{
	static const char *const ops[GW_METRICS_MGMT_OPS] = { "other", "post", "get", "delete",
							      "metrics" };
	char line[160];

	head(o, "wsgate_management_requests_total", "counter",
	     "Management API requests answered, by operation and status.");
	for (int op = 0; op < GW_METRICS_MGMT_OPS; op++)
		for (int st = 0; st < MGMT_STATUSES; st++) {
			uint64_t n = 0;

			for (unsigned w = 0; w < gw_gateway_workers(sh); w++)
				if (gw_gateway_worker(sh, w) && gw_gateway_worker(sh, w)->metrics)
					n += LOAD(gw_gateway_worker(sh, w)->metrics->loop->mgmt[op][st]);
			if (!n)
				continue;
			snprintf(line, sizeof(line),
				 "wsgate_management_requests_total{op=\"%s\",status=\"%d\"}", ops[op],
				 st);
			gw_buf_append_str(o, line);
			value_u64(o, n);
		}
}

/* The per-loop counters and samples summed over every loop. */
static const struct loop_sum {
	size_t off; /* a uint64_t in struct gw_metrics_loop */
	const char *name, *type, *help;
} loop_sums[] = {
	{ offsetof(struct gw_metrics_loop, head_refused), "wsgate_pending_heads_refused_total",
	  "counter", "Connections refused for --max-pending-heads or --max-pending-heads-per-ip." },
	{ offsetof(struct gw_metrics_loop, log_dropped), "wsgate_access_log_dropped_total",
	  "counter", "Access-log lines dropped because the writer fell behind." },
	{ offsetof(struct gw_metrics_loop, backend_in_use), "wsgate_backend_connections_in_use",
	  "gauge", "Integration connections carrying a call (sampled each second)." },
	{ offsetof(struct gw_metrics_loop, backend_idle), "wsgate_backend_connections_idle",
	  "gauge", "Integration connections kept alive, idle (sampled each second)." },
	{ offsetof(struct gw_metrics_loop, backend_queued), "wsgate_backend_calls_queued",
	  "gauge", "Integration calls waiting for a connection (sampled each second)." },
	{ offsetof(struct gw_metrics_loop, outbound_bytes), "wsgate_outbound_bytes_queued",
	  "gauge", "Bytes queued for WebSocket clients, not yet written (sampled each second)." },
	{ offsetof(struct gw_metrics_loop, sockets), "wsgate_sockets", "gauge",
	  "Gateway connections in any state: reading a head, waiting for $connect, "
	  "open, closing (sampled each second)." },
};

static void gauge(gw_buf_t *o, const char *name, const char *type, const char *help,
		  uint64_t v)
{
	head(o, name, type, help);
	gw_buf_append_str(o, name);
	value_u64(o, v);
}

static void render_loops(gw_buf_t *o, gw_worker_t *gw)
{
	gw_gateway_t *sh = gw->sh;
	size_t n;

	for (size_t i = 0; i < sizeof(loop_sums) / sizeof(loop_sums[0]); i++) {
		uint64_t v = 0;

		for (unsigned w = 0; w < gw_gateway_workers(sh); w++) {
			gw_metrics_t *m = gw_gateway_worker(sh, w) ? gw_gateway_worker(sh, w)->metrics : NULL;

			if (m)
				v += LOAD(*(uint64_t *)((char *)m->loop + loop_sums[i].off));
		}
		gauge(o, loop_sums[i].name, loop_sums[i].type, loop_sums[i].help, v);
	}
	if (gw_registry_count(gw->reg, &n) == GW_REG_OK)
		gauge(o, "wsgate_registry_connections", "gauge",
		      "Connection records in the registry.", n);
	gauge(o, "wsgate_event_loops", "gauge", "Event loops (worker threads).", gw_gateway_workers(sh));
}

static void render_process(gw_buf_t *o)
{
	char buf[1024], *p;
	unsigned long utime = 0, stime = 0;
	unsigned long long start = 0, btime = 0;
	long rss = 0, ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	uint64_t fds = 0;
	struct rlimit rl;
	FILE *f = fopen("/proc/self/stat", "r");
	DIR *d;

	if (f) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);

		buf[n] = '\0';
		fclose(f);
		/* After the command name, which may hold spaces: field 3 on. */
		p = strrchr(buf, ')');
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu "
				"%*d %*d %*d %*d %*d %*d %llu %*u %ld", &utime, &stime, &start,
				&rss) == 4 && ticks > 0) {
			head(o, "process_cpu_seconds_total", "counter",
			     "User and system CPU time spent, in seconds.");
			gw_buf_append_str(o, "process_cpu_seconds_total");
			value_f(o, (double)(utime + stime) / (double)ticks);
			gauge(o, "process_resident_memory_bytes", "gauge",
			      "Resident memory size, in bytes.", (uint64_t)rss * (uint64_t)page);
		}
	}
	f = fopen("/proc/stat", "r");
	while (f && fgets(buf, sizeof(buf), f))
		if (sscanf(buf, "btime %llu", &btime) == 1)
			break;
	if (f)
		fclose(f);
	if (btime && ticks > 0) {
		head(o, "process_start_time_seconds", "gauge",
		     "Start time of the process since the Unix epoch, in seconds.");
		gw_buf_append_str(o, "process_start_time_seconds");
		value_f(o, (double)btime + (double)start / (double)ticks);
	}
	d = opendir("/proc/self/fd");
	if (d) {
		while (readdir(d))
			fds++;
		closedir(d);
		/* ".", ".." and the folder's own descriptor */
		gauge(o, "process_open_fds", "gauge", "Open file descriptors.",
		      fds >= 3 ? fds - 3 : 0);
	}
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY)
		gauge(o, "process_max_fds", "gauge", "Limit on open file descriptors.",
		      (uint64_t)rl.rlim_cur);
}

static void render_routes(gw_buf_t *o, gw_gateway_t *sh)
{
	unsigned n = gw_metrics_route_names();
	gw_buf_t extra;

	gw_buf_init(&extra);
	head(o, "wsgate_route_requests_total", "counter",
	     "WebSocket messages routed to each route (throttled ones included), and REST "
	     "requests matched to each route.");
	for (unsigned i = 0; i < GW_METRICS_MAX_ROUTES; i++) {
		unsigned api;
		const char *key;
		uint64_t v = 0;

		if (i >= n && i != GW_METRICS_MAX_ROUTES - 1)
			continue;
		for (unsigned w = 0; w < gw_gateway_workers(sh); w++)
			if (gw_gateway_worker(sh, w) && gw_gateway_worker(sh, w)->metrics)
				v += LOAD(gw_gateway_worker(sh, w)->metrics->routes[i]);
		if (i == GW_METRICS_MAX_ROUTES - 1 && !v)
			continue;
		api = GW_CONFIG_API_ID_NONE;
		key = i < n ? gw_metrics_route_name(i, &api) : "(other)";
		gw_buf_reset(&extra);
		gw_buf_append_str(&extra, "route=\"");
		label_value(&extra, key);
		gw_buf_append_char(&extra, '"');
		series(o, "wsgate_route_requests_total", api, extra.data);
		value_u64(o, v);
	}
	gw_buf_dispose(&extra);
}

/* With --nats only: what NATS brought that failed its check (cluster.h). */
static void render_cluster(gw_buf_t *o)
{
	static const char *const kinds[GW_CLUSTER_REJECT_KINDS] = { "mac", "stale", "replay" };
	uint64_t v[GW_CLUSTER_REJECT_KINDS];
	char line[96];

	if (!gw_cluster_self())
		return;
	gw_cluster_rejected(v);
	head(o, "wsgate_cluster_messages_rejected_total", "counter",
	     "Cluster messages from NATS dropped: MAC not holding, stamped outside the "
	     "clock window, or replayed.");
	for (int i = 0; i < GW_CLUSTER_REJECT_KINDS; i++) {
		snprintf(line, sizeof(line), "wsgate_cluster_messages_rejected_total{reason=\"%s\"}",
			 kinds[i]);
		gw_buf_append_str(o, line);
		value_u64(o, v[i]);
	}
}

void gw_metrics_render(gw_worker_t *gw, gw_buf_t *out)
{
	gw_metrics_api_t *t = calloc(GW_METRICS_MAX_APIS, sizeof(*t));

	if (!t)
		abort();
	sum_apis(gw->sh, t);
	render_apis(out, t);
	render_routes(out, gw->sh);
	render_mgmt(out, gw->sh);
	render_loops(out, gw);
	render_cluster(out);
	render_process(out);
	free(t);
}
