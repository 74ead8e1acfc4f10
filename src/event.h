/* AWS Lambda proxy events (reference §2): CONNECT, MESSAGE and DISCONNECT,
 * written straight into a reusable buffer; no document tree is built. */
#ifndef GW_EVENT_H
#define GW_EVENT_H

#include "buf.h"
#include "config.h"

#include <stdint.h>

typedef struct gw_header {
	gw_str_t name;
	gw_str_t value;
} gw_header_t;

typedef struct gw_event_ctx {
	const gw_api_t *api;
	const char *route_key;
	const char *connection_id;
	uint64_t connected_at;    /* epoch ms */
	const char *request_id;
	const char *message_id;   /* MESSAGE only */
	uint64_t request_time;    /* epoch ms */
	const char *source_ip;
	const char *user_agent;   /* may be NULL */
	const char *domain_name;
	int disconnect_code;      /* DISCONNECT only */
	const char *disconnect_reason;
	/* requestContext.authorizer, a JSON object as text (authorizer.h), or
	 * NULL when the API has no authorizer */
	const char *authorizer;
	size_t authorizer_len;
} gw_event_ctx_t;

/* CONNECT: headers as the client sent them, query the raw query string. */
void gw_event_connect(gw_buf_t *out, const gw_event_ctx_t *ctx,
		      const gw_header_t *headers, size_t n_headers,
		      const char *query, size_t query_len);
void gw_event_message(gw_buf_t *out, const gw_event_ctx_t *ctx,
		      const void *body, size_t len, int binary);
void gw_event_disconnect(gw_buf_t *out, const gw_event_ctx_t *ctx);
/* How much of a Host value is the host: AWS's domainName has no port. */
size_t gw_event_host_len(const char *host);
/* A REQUEST authorizer's input (reference §5.3): the CONNECT event's
 * headers, query and requestContext, with type and methodArn. */
void gw_event_authorizer(gw_buf_t *out, const gw_event_ctx_t *ctx, const char *method_arn,
			 const gw_header_t *headers, size_t n_headers,
			 const char *query, size_t query_len);

/* An HTTP API (payload format 2.0) event for a REST route (reference §8.2). */
typedef struct gw_http_event {
	const gw_api_t *api;
	const char *route_key;
	const char *method;
	gw_str_t path;  /* raw */
	gw_str_t query; /* raw, without '?' */
	const gw_header_t *headers;
	size_t n_headers;
	const gw_header_t *path_params;
	size_t n_path_params;
	const char *body;
	size_t body_len;
	const char *source_ip;
	const char *request_id;
	uint64_t time; /* epoch ms */
} gw_http_event_t;

void gw_event_http(gw_buf_t *out, const gw_http_event_t *e);
/* Whether gw_event_http sends this body base64-encoded (not UTF-8, or JSON
 * escaping would more than double it), and its size in the event, quotes
 * included: the event is at most about twice the body. */
int gw_event_body_base64(const char *body, size_t len, size_t *encoded);

/* requestTime in CLF form: "11/Nov/2024:11:35:24 +0000". */
void gw_event_clf_time(char out[64], uint64_t epoch_ms);
/* ISO-8601 with milliseconds: "2024-11-11T11:35:24.553Z". */
void gw_event_iso_time(char out[64], uint64_t epoch_ms);

/* Percent-decodes (and '+' to space when form != 0) into out; returns the
 * decoded length. out must hold n bytes. */
size_t gw_url_decode(char *out, const char *in, size_t n, int form);

#endif
