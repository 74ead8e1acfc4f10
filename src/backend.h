/* Calls to integrations: an event POSTed to the integration's URI over a
 * non-blocking libwebsockets client connection, with a timer per call, and
 * the Lambda proxy response parsed. Nothing here ever blocks the loop: the
 * address was resolved when the config was loaded. */
#ifndef GW_BACKEND_H
#define GW_BACKEND_H

#include "buf.h"
#include "config.h"

#include <libwebsockets.h>

enum gw_backend_outcome {
	GW_BACKEND_OK = 0,     /* a well-formed Lambda proxy response */
	GW_BACKEND_FAILED,     /* unreachable, reset, non-2xx, garbage */
	GW_BACKEND_TIMEOUT,    /* no complete answer within timeoutMs */
};

typedef struct gw_backend_result {
	enum gw_backend_outcome outcome;
	int status_code;        /* Lambda statusCode (200 when absent) */
	const char *body;       /* decoded when isBase64Encoded */
	size_t body_len;
	int body_binary;        /* body came base64-encoded */
	const char *subprotocol; /* headers["Sec-WebSocket-Protocol"] or NULL */
	const char *error;      /* why, for the log, when not OK */
} gw_backend_result_t;

/* Called once per call unless the call was cancelled first. */
typedef void (*gw_backend_cb)(void *user, const gw_backend_result_t *res);

typedef struct gw_backend gw_backend_t;
typedef struct gw_call gw_call_t;

/* The protocol to list in the client vhost (name "gw-backend"). */
extern const struct lws_protocols gw_backend_protocol;

gw_backend_t *gw_backend_create(struct lws_context *ctx, struct lws_vhost *vh);
void gw_backend_destroy(gw_backend_t *be);

/* Starts a call; body is copied. cb runs exactly once, from a later loop
 * iteration (never inside this function), unless the call is cancelled. */
gw_call_t *gw_backend_call(gw_backend_t *be, const gw_integration_t *in,
			   const char *body, size_t len, const char *request_id,
			   gw_backend_cb cb, void *user);
/* The callback will not be called; the request may still reach the backend. */
void gw_backend_cancel(gw_call_t *call);
size_t gw_backend_inflight(const gw_backend_t *be);

/* Parses a Lambda proxy response; exposed for unit tests. Pointers in res
 * point into scratch, which the caller disposes of. */
int gw_backend_parse_response(const char *data, size_t len, gw_buf_t *scratch,
			      gw_backend_result_t *res);

#endif
