/* The management API: AWS's @connections endpoint (PostToConnection,
 * GetConnection, DeleteConnection), wire-compatible with the AWS SDKs.
 *
 * A request finds its connection through the registry, whose record names
 * the event loop (worker) holding the socket. Every request becomes an
 * operation message: run at once when this loop owns the connection,
 * otherwise handed to the owner's inbox (a mutex-guarded list, then
 * lws_cancel_service wakes that loop); the result comes back the same way
 * and is matched to the waiting HTTP request by a token. Neither loop ever
 * waits for the other. A POST to a connection whose $connect is still
 * running is parked until the handshake is decided: 200 or 410. */
#include "core.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum op { OP_NONE, OP_GET, OP_POST, OP_DELETE };

/* One management operation, travelling between loops. */
typedef struct op_msg {
	lws_dll2_t list;    /* an inbox */
	int is_reply;
	enum op op;
	uint32_t from;      /* the worker whose HTTP request waits */
	uint64_t token;
	char id[128];
	size_t id_len;
	gw_buf_t data;      /* POST body, or the GET answer */
	int status;
	const char *error_type;
	const char *message;
	gw_waiter_t waiter; /* parked on a pending $connect */
	gw_gateway_t *at;   /* the loop it is parked on */
} op_msg_t;

struct mgmt_pss {
	gw_gateway_t *gw;
	struct lws *wsi;
	enum op op;
	char id[128];
	size_t id_len;
	gw_buf_t body;
	int too_large;
	int bad_path;
	int started;
	/* the answer, written when the socket is writable */
	int ready;
	int status;
	const char *error_type;
	gw_buf_t out;
	char request_id[24];
	uint64_t token;
	lws_dll2_t pending; /* gw->mgmt_pending, while an operation runs */
};

static void complete(gw_gateway_t *gw, op_msg_t *m);

static void msg_free(op_msg_t *m)
{
	gw_buf_dispose(&m->data);
	free(m);
}

static void set_answer(struct mgmt_pss *pss, int status, const char *error_type,
		       const char *message)
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
	lws_callback_on_writable(pss->wsi);
}

static void result(op_msg_t *m, int status, const char *error_type, const char *message)
{
	m->status = status;
	m->error_type = error_type;
	m->message = message;
}

static void on_decided(gw_waiter_t *w, int ok)
{
	op_msg_t *m = lws_container_of(w, op_msg_t, waiter);

	if (ok)
		result(m, 200, NULL, NULL);
	else
		result(m, 410, "GoneException", NULL);
	complete(m->at, m);
}

/* Runs m on the loop that owns the connection. */
static void execute(gw_gateway_t *gw, op_msg_t *m)
{
	gw_conn_t *conn = gw_gateway_find_conn(gw, m->id, m->id_len);
	gw_conn_record_t rec;
	char t[64];

	gw_buf_t body = m->data;

	gw_buf_init(&m->data);
	if (!conn) {
		result(m, 410, "GoneException", NULL);
		goto done;
	}
	switch (m->op) {
	case OP_POST:
		switch (gw_conn_post(conn, body.data ? body.data : "", body.len)) {
		case GW_POST_OK:
			result(m, 200, NULL, NULL);
			break;
		case GW_POST_PENDING:
			/* Queued behind the 101; the answer waits for $connect. */
			memset(&m->waiter, 0, sizeof(m->waiter));
			m->waiter.decided = on_decided;
			m->at = gw;
			gw_conn_wait(conn, &m->waiter);
			gw_buf_dispose(&body);
			return;
		case GW_POST_TOO_LARGE:
			result(m, 413, "PayloadTooLargeException",
			       "Message is larger than the maximum message size");
			break;
		case GW_POST_FULL:
			result(m, 429, "LimitExceededException", "The client side buffer is full");
			break;
		default:
			result(m, 410, "GoneException", NULL);
		}
		break;
	case OP_GET:
		if (!gw_conn_is_open(conn) ||
		    gw_registry_get(gw->reg, m->id, m->id_len, &rec) != GW_REG_OK) {
			result(m, 410, "GoneException", NULL);
			break;
		}
		gw_event_iso_time(t, rec.connected_at);
		gw_buf_append_str(&m->data, "{\"connectedAt\":\"");
		gw_buf_append_str(&m->data, t);
		gw_buf_append_str(&m->data, "\",\"identity\":{\"sourceIp\":");
		gw_buf_append_json_str(&m->data, rec.source_ip, strlen(rec.source_ip));
		gw_buf_append_str(&m->data, ",\"userAgent\":");
		gw_buf_append_json_str(&m->data, rec.user_agent, strlen(rec.user_agent));
		/* The live value, newer than the registry's batched copy. */
		gw_event_iso_time(t, gw_conn_last_active(conn));
		gw_buf_append_str(&m->data, "},\"lastActiveAt\":\"");
		gw_buf_append_str(&m->data, t);
		gw_buf_append_str(&m->data, "\"}");
		result(m, 200, NULL, NULL);
		break;
	case OP_DELETE:
		if (!gw_conn_is_open(conn)) {
			result(m, 410, "GoneException", NULL);
			break;
		}
		gw_conn_delete(conn);
		result(m, 204, NULL, NULL);
		break;
	default:
		result(m, 405, "MethodNotAllowedException", "Method Not Allowed");
	}
done:
	gw_buf_dispose(&body);
	complete(gw, m);
}

/* On the loop of the waiting HTTP request: answer it, if still there. */
static void deliver(gw_gateway_t *gw, op_msg_t *m)
{
	lws_start_foreach_dll(struct lws_dll2 *, d, gw->mgmt_pending.head) {
		struct mgmt_pss *pss = lws_container_of(d, struct mgmt_pss, pending);

		if (pss->token == m->token) {
			lws_dll2_remove(&pss->pending);
			set_answer(pss, m->status, m->error_type, m->message);
			if (m->data.len) {
				gw_buf_reset(&pss->out);
				gw_buf_append(&pss->out, m->data.data, m->data.len);
			}
			break;
		}
	} lws_end_foreach_dll(d);
	msg_free(m);
}

static void complete(gw_gateway_t *gw, op_msg_t *m)
{
	m->is_reply = 1;
	if (m->from == gw->worker)
		deliver(gw, m);
	else
		gw_worker_post(gw->sh->workers[m->from], &m->list);
}

void gw_mgmt_on_message(gw_gateway_t *gw, lws_dll2_t *node)
{
	op_msg_t *m = lws_container_of(node, op_msg_t, list);

	if (m->is_reply)
		deliver(gw, m);
	else
		execute(gw, m);
}

void gw_mgmt_free_message(lws_dll2_t *node)
{
	msg_free(lws_container_of(node, op_msg_t, list));
}

/* Starts the operation of pss: locally, on the owner's loop, or 410. */
static void start(struct lws *wsi, struct mgmt_pss *pss)
{
	gw_gateway_t *gw = pss->gw;
	gw_conn_record_t rec;
	op_msg_t *m;

	if (pss->started)
		return;
	pss->started = 1;
	if (pss->op == OP_POST && pss->too_large) {
		set_answer(pss, 413, "PayloadTooLargeException",
			   "Message is larger than the maximum message size");
		return;
	}
	if (gw_registry_get(gw->reg, pss->id, pss->id_len, &rec) != GW_REG_OK ||
	    rec.worker >= gw->sh->n_workers) {
		set_answer(pss, 410, "GoneException", NULL);
		return;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		abort();
	m->op = pss->op;
	m->from = gw->worker;
	m->token = pss->token = ++gw->mgmt_tokens;
	memcpy(m->id, pss->id, pss->id_len + 1);
	m->id_len = pss->id_len;
	/* The body travels by swap, not by copy. */
	m->data = pss->body;
	gw_buf_init(&pss->body);
	lws_dll2_add_tail(&pss->pending, &gw->mgmt_pending);
	if (rec.worker == gw->worker)
		execute(gw, m);
	else
		gw_worker_post(gw->sh->workers[rec.worker], &m->list);
	(void)wsi;
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

static enum op request_method(struct lws *wsi)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
		return OP_POST;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
		return OP_GET;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI))
		return OP_DELETE;
	return OP_NONE;
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
		pss->started = 0;
		gw_gateway_request_id(pss->gw, pss->request_id);
		pss->op = request_method(wsi);
		pss->bad_path = parse_path(pss, in);
		if (pss->bad_path) {
			set_answer(pss, 403, "ForbiddenException", "Forbidden");
			return 0;
		}
		if (pss->op == OP_NONE) {
			set_answer(pss, 405, "MethodNotAllowedException", "Method Not Allowed");
			return 0;
		}
		/* GET, DELETE, and a POST without a body (libwebsockets will not
		 * call BODY_COMPLETION then) start now. */
		if (pss->op != OP_POST ||
		    (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
		     atoll(cl) == 0))
			start(wsi, pss);
		return 0;
	}

	case LWS_CALLBACK_HTTP_BODY:
		/* Bounded by the largest maxMessageBytes the gateway accepts. */
		if (pss->body.len + len > (16u << 20))
			pss->too_large = 1;
		else if (!pss->too_large)
			gw_buf_append(&pss->body, in, len);
		return 0;

	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (pss->op == OP_POST && !pss->bad_path && !pss->ready)
			start(wsi, pss);
		return 0;

	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (!pss || !pss->ready)
			return 0;
		return write_answer(wsi, pss);

	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (pss) {
			/* An operation still running will find no one to answer. */
			if (!lws_dll2_is_detached(&pss->pending))
				lws_dll2_remove(&pss->pending);
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
