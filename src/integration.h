/* What a route's integration means: the request built for each type
 * (AWS_PROXY: a Lambda proxy event; HTTP_PROXY: the message itself, with
 * mapped parameters and the gateway's own headers; MOCK: no request at
 * all) and how its answer is read back. backend.c moves the bytes. */
#ifndef GW_INTEGRATION_H
#define GW_INTEGRATION_H

#include "backend.h"
#include "config.h"
#include "event.h"

enum gw_event_type { GW_EV_CONNECT, GW_EV_MESSAGE, GW_EV_DISCONNECT };

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
	/* CONNECT */
	const gw_header_t *headers;
	size_t n_headers;
	const char *query;
	size_t query_len;
} gw_invocation_t;

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
	/* Headers of the answer left out because they were not valid HTTP
	 * (a subprotocol that is not a token). */
	unsigned dropped_headers;
} gw_integ_result_t;

/* Starts the call (scratch is reused for building the request). */
gw_call_t *gw_integ_invoke(gw_backend_t *be, const gw_invocation_t *inv, gw_buf_t *scratch,
			   gw_call_cb cb, void *user);
/* Reads an answer of the given integration. Pointers may point into
 * scratch, which the caller disposes of. */
void gw_integ_result(const gw_integration_t *in, const gw_http_resp_t *resp,
		     gw_buf_t *scratch, gw_integ_result_t *res);

/* A MOCK body with ${context.X} and ${stageVariables.X} filled in. */
void gw_integ_mock_body(const gw_integration_t *in, const gw_event_ctx_t *ctx, gw_buf_t *out);

/* Lambda proxy response parsing, exposed for unit tests. A statusCode
 * outside 200..599 is an error (1xx cannot end an exchange). */
int gw_lambda_parse(const char *data, size_t len, gw_buf_t *scratch, gw_integ_result_t *res,
		    const char **error);

#endif
