/* Integration calls over libwebsockets' HTTP client. A call owns its
 * request body (with LWS_PRE headroom), its response buffer and its timer;
 * the client wsi only points at it through opaque user data, which is
 * cleared when the call finishes first so a late callback finds nothing. */
#include "backend.h"
#include "log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_RESPONSE_BYTES (10u << 20)

struct gw_backend {
	struct lws_context *ctx;
	struct lws_vhost *vh;
	size_t inflight;
};

struct gw_call {
	gw_backend_t *be;
	struct lws *wsi;
	lws_sorted_usec_list_t timer; /* first: timer callback recovers the call */
	gw_backend_cb cb;
	void *user;
	unsigned char *req; /* LWS_PRE + body */
	size_t req_len;
	gw_buf_t resp;
	int http_status;
	int finished;      /* cb delivered or cancelled */
	int sync_failed;   /* failed inside lws_client_connect_via_info */
	char request_id[40];
	char content_length[24];
};

gw_backend_t *gw_backend_create(struct lws_context *ctx, struct lws_vhost *vh)
{
	gw_backend_t *be = calloc(1, sizeof(*be));

	if (!be)
		abort();
	be->ctx = ctx;
	be->vh = vh;
	return be;
}

void gw_backend_destroy(gw_backend_t *be)
{
	free(be);
}

size_t gw_backend_inflight(const gw_backend_t *be)
{
	return be->inflight;
}

/* The call being started: lws may report a failure from inside
 * lws_client_connect_via_info, before the caller has the handle. */
static __thread gw_call_t *starting;

static void call_free(gw_call_t *c)
{
	lws_sul_cancel(&c->timer);
	if (c->wsi)
		lws_set_opaque_user_data(c->wsi, NULL);
	c->be->inflight--;
	free(c->req);
	gw_buf_dispose(&c->resp);
	free(c);
}

int gw_backend_parse_response(const char *data, size_t len, gw_buf_t *scratch,
			      gw_backend_result_t *res)
{
	json_error_t jerr;
	json_t *root, *v, *headers;
	size_t body_off = 0, body_len = 0, proto_off = 0;
	int has_proto = 0, rc = -1;

	memset(res, 0, sizeof(*res));
	res->status_code = 200;
	gw_buf_reset(scratch);
	root = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		res->error = "integration response is not JSON";
		return -1;
	}
	if (!json_is_object(root)) {
		res->error = "integration response is not a JSON object";
		goto out;
	}
	v = json_object_get(root, "statusCode");
	if (v) {
		long long sc;
		char *end = NULL;

		if (json_is_integer(v)) {
			sc = json_integer_value(v);
		} else if (json_is_string(v)) {
			sc = strtoll(json_string_value(v), &end, 10);
			if (end == json_string_value(v) || *end)
				sc = -1;
		} else {
			res->error = "integration response statusCode is not a number";
			goto out;
		}
		if (sc < 100 || sc > 599) {
			res->error = "integration response statusCode is out of range";
			goto out;
		}
		res->status_code = (int)sc;
	}
	v = json_object_get(root, "body");
	if (v && !json_is_null(v)) {
		int b64 = json_is_true(json_object_get(root, "isBase64Encoded"));

		if (json_is_string(v)) {
			if (b64) {
				if (gw_base64_decode(scratch, json_string_value(v),
						     json_string_length(v))) {
					res->error = "integration response body is not valid base64";
					goto out;
				}
				res->body_binary = 1;
			} else {
				gw_buf_append(scratch, json_string_value(v), json_string_length(v));
			}
		} else {
			/* A non-string body is sent as its compact JSON text. */
			char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			if (s) {
				gw_buf_append_str(scratch, s);
				free(s);
			}
		}
		body_len = scratch->len;
	}
	gw_buf_append_char(scratch, '\0');
	headers = json_object_get(root, "headers");
	if (json_is_object(headers)) {
		const char *k;
		json_t *hv;

		json_object_foreach(headers, k, hv) {
			if (!strcasecmp(k, "Sec-WebSocket-Protocol") && json_is_string(hv)) {
				proto_off = scratch->len;
				gw_buf_append_str(scratch, json_string_value(hv));
				gw_buf_append_char(scratch, '\0');
				has_proto = 1;
			}
		}
	}
	res->body = scratch->data + body_off;
	res->body_len = body_len;
	res->subprotocol = has_proto ? scratch->data + proto_off : NULL;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* Delivers the outcome once, then frees the call. */
static void finish(gw_call_t *c, enum gw_backend_outcome outcome, const char *error)
{
	gw_backend_result_t res;
	gw_buf_t scratch;

	if (c->finished)
		return;
	c->finished = 1;
	gw_buf_init(&scratch);
	memset(&res, 0, sizeof(res));
	if (outcome == GW_BACKEND_OK) {
		if (c->http_status < 200 || c->http_status > 299) {
			res.outcome = GW_BACKEND_FAILED;
			res.error = "integration answered a non-2xx HTTP status";
		} else if (gw_backend_parse_response(c->resp.data ? c->resp.data : "",
						     c->resp.len, &scratch, &res)) {
			res.outcome = GW_BACKEND_FAILED;
		}
	} else {
		res.outcome = outcome;
		res.error = error;
	}
	if (res.outcome != GW_BACKEND_OK)
		gw_warn("request %s: integration call failed: %s (HTTP status %d)",
			c->request_id, res.error ? res.error : "unknown error",
			c->http_status);
	c->cb(c->user, &res);
	gw_buf_dispose(&scratch);
	call_free(c);
}

static void on_timeout(lws_sorted_usec_list_t *sul)
{
	gw_call_t *c = lws_container_of(sul, gw_call_t, timer);
	struct lws *wsi = c->wsi;

	/* The client wsi dies asynchronously; it must not find us then. */
	if (wsi) {
		lws_set_opaque_user_data(wsi, NULL);
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		c->wsi = NULL;
	}
	finish(c, GW_BACKEND_TIMEOUT, "timed out");
}

static void on_sync_failure(lws_sorted_usec_list_t *sul)
{
	finish(lws_container_of(sul, gw_call_t, timer), GW_BACKEND_FAILED,
	       "cannot connect");
}

gw_call_t *gw_backend_call(gw_backend_t *be, const gw_integration_t *in,
			   const char *body, size_t len, const char *request_id,
			   gw_backend_cb cb, void *user)
{
	struct lws_client_connect_info i;
	gw_call_t *c = calloc(1, sizeof(*c));
	struct lws *wsi;

	if (!c)
		abort();
	c->be = be;
	c->cb = cb;
	c->user = user;
	c->req = malloc(LWS_PRE + len + 1);
	if (!c->req)
		abort();
	memcpy(c->req + LWS_PRE, body, len);
	c->req_len = len;
	gw_buf_init(&c->resp);
	snprintf(c->request_id, sizeof(c->request_id), "%s", request_id);
	snprintf(c->content_length, sizeof(c->content_length), "%zu", len);
	be->inflight++;

	memset(&i, 0, sizeof(i));
	i.context = be->ctx;
	i.vhost = be->vh;
	i.address = in->address;
	i.port = in->port;
	i.path = in->path;
	i.host = in->host;
	i.origin = in->host;
	i.method = "POST";
	i.local_protocol_name = "gw-backend";
	i.alpn = "http/1.1";
	i.ssl_connection = in->tls ? LCCSCF_USE_SSL : 0;
	i.opaque_user_data = c;

	lws_sul_schedule(be->ctx, 0, &c->timer, on_timeout,
			 (lws_usec_t)in->timeout_ms * LWS_US_PER_MS);
	/* A failure inside lws_client_connect_via_info is reported from the
	 * next loop iteration, so the caller never sees its callback run before
	 * it holds the handle. */
	starting = c;
	wsi = lws_client_connect_via_info(&i);
	starting = NULL;
	if (!wsi || c->sync_failed) {
		c->wsi = NULL;
		lws_sul_schedule(be->ctx, 0, &c->timer, on_sync_failure, 1);
		return c;
	}
	c->wsi = wsi;
	return c;
}

void gw_backend_cancel(gw_call_t *c)
{
	if (!c || c->finished)
		return;
	c->finished = 1;
	if (c->wsi) {
		lws_set_opaque_user_data(c->wsi, NULL);
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		c->wsi = NULL;
	}
	call_free(c);
}

static int backend_callback(struct lws *wsi, enum lws_callback_reasons reason,
			    void *user, void *in, size_t len)
{
	gw_call_t *c = lws_get_opaque_user_data(wsi);

	if (c)
		c->wsi = wsi;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (c && c == starting) {
			c->sync_failed = 1;
			lws_set_opaque_user_data(wsi, NULL);
		} else if (c) {
			/* lws goes on calling this wsi while closing it. */
			lws_set_opaque_user_data(wsi, NULL);
			c->wsi = NULL;
			finish(c, GW_BACKEND_FAILED,
			       in ? (const char *)in : "connection error");
		}
		return 0;

	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
		unsigned char **p = (unsigned char **)in, *end = (*p) + len;

		if (!c)
			return -1;
		if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
				(const unsigned char *)"application/json", 16, p, end) ||
		    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
				(const unsigned char *)c->content_length,
				(int)strlen(c->content_length), p, end) ||
		    lws_add_http_header_by_name(wsi, (const unsigned char *)"x-amzn-requestid:",
				(const unsigned char *)c->request_id,
				(int)strlen(c->request_id), p, end))
			return -1;
		lws_client_http_body_pending(wsi, 1);
		lws_callback_on_writable(wsi);
		return 0;
	}

	case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
		if (!c)
			return -1;
		if (lws_write(wsi, c->req + LWS_PRE, c->req_len, LWS_WRITE_HTTP_FINAL) !=
		    (int)c->req_len)
			return -1;
		lws_client_http_body_pending(wsi, 0);
		return 0;

	case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
		if (c)
			c->http_status = (int)lws_http_client_http_response(wsi);
		return c ? 0 : -1;

	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
		if (!c)
			return -1;
		if (c->resp.len + len > MAX_RESPONSE_BYTES) {
			finish(c, GW_BACKEND_FAILED, "integration response too large");
			return -1;
		}
		gw_buf_append(&c->resp, in, len);
		return 0;

	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
		char buffer[4096 + LWS_PRE], *px = buffer + LWS_PRE;
		int lenx = (int)sizeof(buffer) - LWS_PRE;

		if (lws_http_client_read(wsi, &px, &lenx) < 0)
			return -1;
		return 0;
	}

	case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
		if (c) {
			c->wsi = NULL;
			lws_set_opaque_user_data(wsi, NULL);
			finish(c, GW_BACKEND_OK, NULL);
		}
		/* One request per connection for now: close it. */
		return -1;

	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		if (c) {
			lws_set_opaque_user_data(wsi, NULL);
			c->wsi = NULL;
			finish(c, GW_BACKEND_FAILED, "connection closed before a full response");
		}
		return 0;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols gw_backend_protocol = {
	"gw-backend", backend_callback, 0, 4096, 0, NULL, 0
};
