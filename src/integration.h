/* The one invoke path of WebSocket and REST routes: "call this
 * integration with this event" becomes a backend request (AWS_PROXY: a
 * Lambda proxy event, WebSocket or payload 2.0; HTTP_PROXY: the message or
 * the REST request itself, with mapped parameters and the gateway's own
 * headers; MOCK: no request at all), and its answer is read back. The
 * request line, Host, hop-by-hop handling and X-Forwarded-* are written
 * here only. backend.c moves the bytes. */
#ifndef GW_INTEGRATION_H
#define GW_INTEGRATION_H

#include "backend.h"
#include "config.h"
#include "event.h"

/* GW_EV_HTTP: a request on a REST route. GW_EV_AUTHORIZER: a REQUEST
 * authorizer's call on $connect (authorizer.h). */
enum gw_event_type { GW_EV_CONNECT, GW_EV_MESSAGE, GW_EV_DISCONNECT, GW_EV_HTTP,
		     GW_EV_AUTHORIZER };

/* Everything one invocation may draw on. */
typedef struct gw_invocation {
	const gw_route_t *route;
	enum gw_event_type type;
	const gw_event_ctx_t *ctx;
	int tls; /* the client came over TLS: X-Forwarded-Proto https */
	/* MESSAGE */
	const char *body;
	size_t body_len;
	int binary;
	/* CONNECT, AUTHORIZER and HTTP: the client's headers (at most GW_INVOKE_MAX_HEADERS) */
	const gw_header_t *headers;
	size_t n_headers;
	/* CONNECT and AUTHORIZER */
	const char *query;
	size_t query_len;
	const char *method_arn; /* AUTHORIZER */
	/* HTTP (request parameters are not mapped for REST routes) */
	const char *method;      /* HTTP_PROXY, unless the integration names one */
	gw_str_t target;         /* HTTP_PROXY's request target; else the path */
	gw_buf_t *body_buf;      /* the request body: the call takes it over */
	const gw_http_event_t *http; /* AWS_PROXY; its headers are the gateway's */
	int forwarded_port;      /* X-Forwarded-Port to add, 0: none */
	size_t max_event_bytes;  /* AWS_PROXY: a larger event is not sent */
	int own_bound; /* the caller bounds its calls: never refused as BUSY */
} gw_invocation_t;

#define GW_INVOKE_MAX_HEADERS 128

enum gw_integ_outcome {
	GW_INTEG_OK = 0,
	GW_INTEG_FAILED,  /* unreachable, garbage, 5xx from HTTP_PROXY */
	GW_INTEG_TIMEOUT,
	GW_INTEG_BUSY,    /* the integration's connections and queue are full */
};

typedef struct gw_integ_result {
	enum gw_integ_outcome outcome;
	int status_code;
	const char *body; /* decoded when the Lambda said isBase64Encoded */
	size_t body_len;
	int body_binary;
	const char *subprotocol; /* Sec-WebSocket-Protocol chosen, or NULL */
	/* Channels to join or leave (channel.h), comma-separated, or NULL:
	 * the X-Wsgate-Subscribe / X-Wsgate-Unsubscribe headers of the answer,
	 * and for AWS_PROXY also its "subscribe" / "unsubscribe" fields. */
	const char *subscribe;
	const char *unsubscribe;
	/* Headers of the answer left out because they were not valid HTTP
	 * (a subprotocol that is not a token). */
	unsigned dropped_headers;
} gw_integ_result_t;

/* Starts the call (scratch is reused for building the request head; the
 * body is built once and taken over by the call). NULL only for an HTTP
 * event larger than max_event_bytes: nothing was sent. */
gw_call_t *gw_integ_invoke(gw_backend_t *be, const gw_invocation_t *inv, gw_buf_t *scratch,
			   gw_call_cb cb, void *user);
/* Reads an answer of the given integration. Pointers may point into
 * scratch, which the caller disposes of. */
void gw_integ_result(const gw_integration_t *in, const gw_http_resp_t *resp,
		     gw_buf_t *scratch, gw_integ_result_t *res);

/* A REST route's answer (payload 2.0 for AWS_PROXY; HTTP_PROXY and MOCK
 * as they are): its status, or -1 when it cannot be passed on. Header
 * lines go to hdrs: valid ones, less hop-by-hop and, when cors (the
 * gateway's CORS headers win), Access-Control-*. The body goes to body,
 * taken over from the call when it can be. */
int gw_integ_http_answer(const gw_integration_t *in, const gw_http_resp_t *resp, int cors,
			 gw_buf_t *hdrs, gw_buf_t *body);

/* A MOCK body with ${context.X} and ${stageVariables.X} filled in. */
void gw_integ_mock_body(const gw_integration_t *in, const gw_event_ctx_t *ctx, gw_buf_t *out);

/* Lambda proxy response parsing, exposed for unit tests. A statusCode
 * outside 200..599 is an error (1xx cannot end an exchange). */
int gw_lambda_parse(const char *data, size_t len, gw_buf_t *scratch, gw_integ_result_t *res,
		    const char **error);

#endif
