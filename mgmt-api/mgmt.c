/* The management API: AWS's @connections endpoint (PostToConnection,
 * GetConnection, DeleteConnection), wire-compatible with the AWS SDKs.
 * A request finds its connection through the registry; a POST to a
 * connection whose $connect is still running is parked until the
 * handshake is decided, then answered 200 (delivered) or 410. */
#include "core.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum method { M_OTHER, M_GET, M_POST, M_DELETE };

struct mgmt_pss {
	gw_gateway_t *gw;
	enum method method;
	char id[128];
	size_t id_len;
	gw_buf_t body;
	int too_large;
	int bad_path;
	/* the answer, written when the socket is writable */
	int ready;
	int status;
	const char *error_type;
	gw_buf_t out;
	char request_id[24];
	gw_waiter_t waiter;
	int waiting;
	struct lws *wsi; /* for answering a parked request */
};

static void answer(struct lws *wsi, struct mgmt_pss *pss, int status,
		   const char *error_type, const char *message)
{
	pss->ready = 1;
	pss->status = status;
	pss->error_type = error_type;
	gw_buf_reset(&pss->out);
	if (message) {
		gw_buf_append_str(&pss->out, "{\"message\":");
		gw_buf_append_json_str(&pss->out, message, strlen(message));
		gw_buf_append_char(&pss->out, '}');
	}
	lws_callback_on_writable(wsi);
}

static int write_answer(struct lws *wsi, struct mgmt_pss *pss)
{
	unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start,
		      *end = hdr + sizeof(hdr);
	const char *ctype = pss->out.len ? "application/json" : NULL;

	if (lws_add_http_common_headers(wsi, (unsigned int)pss->status, ctype,
					pss->out.len, &p, end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"x-amzn-RequestId:",
					(const unsigned char *)pss->request_id,
					(int)strlen(pss->request_id), &p, end))
		return -1;
	if (pss->error_type &&
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"x-amzn-ErrorType:",
					(const unsigned char *)pss->error_type,
					(int)strlen(pss->error_type), &p, end))
		return -1;
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	if (pss->out.len) {
		unsigned char *b = malloc(LWS_PRE + pss->out.len);
		int n;

		if (!b)
			return -1;
		memcpy(b + LWS_PRE, pss->out.data, pss->out.len);
		n = lws_write(wsi, b + LWS_PRE, pss->out.len, LWS_WRITE_HTTP_FINAL);
		free(b);
		if (n < 0)
			return -1;
	}
	pss->ready = 0;
	gw_buf_reset(&pss->body);
	gw_buf_reset(&pss->out);
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* "/@connections/{id}" or "/{stage}/@connections/{id}"; the URI arrives
 * already percent-decoded by libwebsockets. */
static int parse_path(struct mgmt_pss *pss, const char *uri)
{
	const char *p = strstr(uri, "/@connections/");
	const char *first_slash = strchr(uri + 1, '/');

	if (!p || (p != uri && p != first_slash))
		return -1;
	p += strlen("/@connections/");
	pss->id_len = strlen(p);
	if (!pss->id_len || pss->id_len >= sizeof(pss->id) || strchr(p, '/'))
		return -1;
	memcpy(pss->id, p, pss->id_len + 1);
	return 0;
}

static void on_decided(gw_waiter_t *w, int ok)
{
	struct mgmt_pss *pss = lws_container_of(w, struct mgmt_pss, waiter);

	pss->waiting = 0;
	if (ok)
		answer(pss->wsi, pss, 200, NULL, NULL);
	else
		answer(pss->wsi, pss, 410, "GoneException", NULL);
}

static void do_post(struct lws *wsi, struct mgmt_pss *pss)
{
	gw_conn_t *conn = gw_gateway_find_conn(pss->gw, pss->id, pss->id_len);
	int rc;

	if (!conn) {
		answer(wsi, pss, 410, "GoneException", NULL);
		return;
	}
	if (pss->too_large || pss->body.len > gw_conn_api(conn)->max_message_bytes) {
		answer(wsi, pss, 413, "PayloadTooLargeException",
		       "Message is larger than the maximum message size");
		return;
	}
	rc = gw_conn_post(conn, pss->body.data ? pss->body.data : "", pss->body.len);
	switch (rc) {
	case GW_POST_OK:
		answer(wsi, pss, 200, NULL, NULL);
		break;
	case GW_POST_PENDING:
		/* The message is queued; answer once $connect has decided. */
		memset(&pss->waiter, 0, sizeof(pss->waiter));
		pss->waiter.decided = on_decided;
		pss->waiting = 1;
		pss->wsi = wsi;
		gw_conn_wait(conn, &pss->waiter);
		break;
	case GW_POST_TOO_LARGE:
		answer(wsi, pss, 413, "PayloadTooLargeException",
		       "Message is larger than the maximum message size");
		break;
	case GW_POST_FULL:
		answer(wsi, pss, 429, "LimitExceededException",
		       "The client side buffer is full");
		break;
	default:
		answer(wsi, pss, 410, "GoneException", NULL);
	}
}

static void do_get(struct lws *wsi, struct mgmt_pss *pss)
{
	gw_conn_t *conn = gw_gateway_find_conn(pss->gw, pss->id, pss->id_len);
	gw_conn_record_t rec;
	char t[64];

	if (!conn || !gw_conn_is_open(conn) ||
	    gw_registry_get(pss->gw->reg, pss->id, pss->id_len, &rec) != GW_REG_OK) {
		answer(wsi, pss, 410, "GoneException", NULL);
		return;
	}
	pss->ready = 1;
	pss->status = 200;
	pss->error_type = NULL;
	gw_buf_reset(&pss->out);
	gw_event_iso_time(t, rec.connected_at);
	gw_buf_append_str(&pss->out, "{\"connectedAt\":\"");
	gw_buf_append_str(&pss->out, t);
	gw_buf_append_str(&pss->out, "\",\"identity\":{\"sourceIp\":");
	gw_buf_append_json_str(&pss->out, rec.source_ip, strlen(rec.source_ip));
	gw_buf_append_str(&pss->out, ",\"userAgent\":");
	gw_buf_append_json_str(&pss->out, rec.user_agent, strlen(rec.user_agent));
	/* The live value, newer than the registry's batched copy. */
	gw_event_iso_time(t, gw_conn_last_active(conn));
	gw_buf_append_str(&pss->out, "},\"lastActiveAt\":\"");
	gw_buf_append_str(&pss->out, t);
	gw_buf_append_str(&pss->out, "\"}");
	lws_callback_on_writable(wsi);
}

static void do_delete(struct lws *wsi, struct mgmt_pss *pss)
{
	gw_conn_t *conn = gw_gateway_find_conn(pss->gw, pss->id, pss->id_len);

	if (!conn || !gw_conn_is_open(conn)) {
		answer(wsi, pss, 410, "GoneException", NULL);
		return;
	}
	gw_conn_delete(conn);
	answer(wsi, pss, 204, NULL, NULL);
}

static enum method request_method(struct lws *wsi)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
		return M_POST;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
		return M_GET;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI))
		return M_DELETE;
	return M_OTHER;
}

static int mgmt_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
			 void *in, size_t len)
{
	struct mgmt_pss *pss = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP: {
		char cl[24];

		pss->gw = lws_context_user(lws_get_context(wsi));
		pss->wsi = wsi;
		gw_buf_reset(&pss->body);
		pss->too_large = 0;
		gw_gateway_request_id(pss->gw, pss->request_id);
		pss->method = request_method(wsi);
		pss->bad_path = parse_path(pss, in);
		if (pss->bad_path) {
			answer(wsi, pss, 403, "ForbiddenException", "Forbidden");
			return 0;
		}
		if (pss->method == M_GET) {
			do_get(wsi, pss);
			return 0;
		}
		if (pss->method == M_DELETE) {
			do_delete(wsi, pss);
			return 0;
		}
		if (pss->method != M_POST) {
			answer(wsi, pss, 405, "MethodNotAllowedException", "Method Not Allowed");
			return 0;
		}
		/* No body at all: libwebsockets will not call BODY_COMPLETION. */
		if (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
		    atoll(cl) == 0)
			do_post(wsi, pss);
		return 0;
	}

	case LWS_CALLBACK_HTTP_BODY:
		/* The largest limit of any API bounds what we keep. */
		if (pss->body.len + len > (16u << 20))
			pss->too_large = 1;
		else if (!pss->too_large)
			gw_buf_append(&pss->body, in, len);
		return 0;

	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (pss->method == M_POST && !pss->bad_path && !pss->ready)
			do_post(wsi, pss);
		return 0;

	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (!pss || !pss->ready)
			return 0;
		return write_answer(wsi, pss);

	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (pss) {
			if (pss->waiting)
				gw_conn_unwait(&pss->waiter);
			pss->waiting = 0;
			gw_buf_dispose(&pss->body);
			gw_buf_dispose(&pss->out);
		}
		return 0;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols gw_mgmt_protocol = {
	"gw-mgmt", mgmt_callback, sizeof(struct mgmt_pss), 4096, 0, NULL, 0
};
