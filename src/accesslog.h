/* Access logs (AWS's accessLogSettings): one line per connect, message,
 * disconnect, REST request and management call, in a per-API format of
 * $context variables, to stderr or a file.
 *
 * Never blocks a loop: a line is rendered on the loop, then copied under a
 * short mutex into a bounded buffer that one writer thread drains with
 * write(2). When the writer falls behind (a slow disk), lines beyond the
 * bound are dropped and counted (wsgate_access_log_dropped_total), never
 * waited for. Files are opened by the writer (append), and opened again
 * on gw_alog_reopen (SIGUSR1, logrotate's convention). */
#ifndef GW_ACCESSLOG_H
#define GW_ACCESSLOG_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

struct gw_metrics;
typedef struct gw_alog_format gw_alog_format_t;

/* Bytes waiting over every destination beyond which lines are dropped
 * (the writer may hold one more batch of at most as much). */
#define GW_ALOG_MAX_PENDING ((size_t)8 << 20)

/* Compiles an accessLog setting: format (NULL: the JSON default) and
 * destination ("stderr" or a file path, whose folder must exist). NULL
 * with err filled when the format names an unknown variable, lacks
 * $context.requestId, or the destination cannot be. No file is opened. */
gw_alog_format_t *gw_alog_compile(const char *format, const char *destination, char *err,
				  size_t errlen);
void gw_alog_format_free(gw_alog_format_t *f);

/* What one line may tell; NULL strings and negative numbers print "-". */
typedef struct gw_alog_ctx {
	const char *api_name, *stage;
	const char *request_id;
	const char *connection_id;
	const char *event_type; /* CONNECT, MESSAGE, DISCONNECT, HTTP, MANAGEMENT */
	const char *route_key;
	const char *source_ip;
	const char *user_agent;
	const char *error;      /* $context.error.message */
	const char *method;     /* HTTP and MANAGEMENT */
	const char *path;
	int status;             /* 0: none */
	int integration_status; /* 0: none */
	int64_t integration_latency_ms; /* -1: no call */
	int64_t response_latency_ms;    /* -1: not measured */
	uint64_t connected_at;  /* wall ms, 0: none */
	int disconnect_code;    /* 0: none */
	const char *disconnect_reason;
} gw_alog_ctx_t;

/* A ctx with every field "none". */
void gw_alog_ctx_init(gw_alog_ctx_t *ctx);

/* Renders ctx with f and queues the line (f NULL: nothing). 0, or -1 when
 * the line was dropped (counted in m when given). */
int gw_alog_write(const gw_alog_format_t *f, const gw_alog_ctx_t *ctx, struct gw_metrics *m);

/* Renders only (tests, --check). */
void gw_alog_render(const gw_alog_format_t *f, const gw_alog_ctx_t *ctx, gw_buf_t *out);

/* Files are opened again by the writer (SIGUSR1). Async-signal-unsafe:
 * call from a loop (signalfd), not from a handler. */
void gw_alog_reopen(void);

#endif
