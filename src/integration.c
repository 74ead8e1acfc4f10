/* Integration requests and responses (see integration.h). */
#include "integration.h"
#include "channame.h"
#include "httpreq.h"
#include "httpresp.h"
#include "log.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* --- values ------------------------------------------------------------ */

/* Appends the value of context variable name. */
static void context_var(const gw_invocation_t *inv, const char *name, size_t len, gw_buf_t *b)
{
	const gw_event_ctx_t *c = inv->ctx;
	/* A REST route's MOCK reads MESSAGE, as it always has. */
	static const char *const types[] = { "CONNECT", "MESSAGE", "DISCONNECT", "MESSAGE",
		"CONNECT" };
	char t[64];

#define IS(s) (len == sizeof(s) - 1 && !memcmp(name, s, len))
	if (IS("connectionId"))
		gw_buf_append_str(b, c->connection_id);
	else if (IS("routeKey"))
		gw_buf_append_str(b, c->route_key);
	else if (IS("eventType"))
		gw_buf_append_str(b, types[inv->type]);
	else if (IS("requestId") || IS("extendedRequestId"))
		gw_buf_append_str(b, c->request_id);
	else if (IS("messageId"))
		gw_buf_append_str(b, c->message_id ? c->message_id : "");
	else if (IS("stage"))
		gw_buf_append_str(b, c->api->stage);
	else if (IS("apiId"))
		gw_buf_append_str(b, c->api->api_id);
	else if (IS("domainName"))
		gw_buf_append(b, c->domain_name, gw_event_host_len(c->domain_name));
	else if (IS("connectedAt"))
		gw_buf_append_u64(b, c->connected_at);
	else if (IS("requestTimeEpoch"))
		gw_buf_append_u64(b, c->request_time);
	else if (IS("requestTime")) {
		gw_event_clf_time(t, c->request_time);
		gw_buf_append_str(b, t);
	} else if (IS("messageDirection"))
		gw_buf_append_str(b, "IN");
	else if (IS("identity.sourceIp"))
		gw_buf_append_str(b, c->source_ip);
	else if (IS("identity.userAgent"))
		gw_buf_append_str(b, c->user_agent ? c->user_agent : "");
#undef IS
}

static void header_of_client(const gw_invocation_t *inv, const char *name, gw_buf_t *b)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < inv->n_headers; i++)
		if (inv->headers[i].name.len == nl &&
		    !strncasecmp(inv->headers[i].name.ptr, name, nl)) {
			gw_buf_append(b, inv->headers[i].value.ptr, inv->headers[i].value.len);
			return;
		}
}

static void query_of_client(const gw_invocation_t *inv, const char *name, gw_buf_t *b)
{
	const char *p = inv->query, *end;
	size_t nl = strlen(name);

	/* A URL without '?' comes as NULL: no arithmetic on it. */
	if (!p)
		return;
	end = p + inv->query_len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(e - p));
		char key[256];
		size_t kl = (size_t)((eq ? eq : e) - p);

		if (kl < sizeof(key)) {
			kl = gw_url_decode(key, p, kl, 1);
			if (kl == nl && !memcmp(key, name, nl)) {
				if (eq) {
					size_t vl = (size_t)(e - eq - 1);
					gw_buf_reserve(b, vl);
					b->len += gw_url_decode(b->data + b->len, eq + 1, vl, 1);
					b->data[b->len] = '\0';
				}
				return;
			}
		}
		p = e + 1;
	}
}

/* The value a request parameter maps from ("" when absent). */
static void param_value(const gw_invocation_t *inv, const gw_param_map_t *pm, gw_buf_t *b)
{
	gw_buf_reset(b);
	gw_buf_reserve(b, 16);
	b->data[0] = '\0';
	switch (pm->source) {
	case GW_SRC_STATIC:
		gw_buf_append_str(b, pm->arg);
		break;
	case GW_SRC_CONTEXT:
		context_var(inv, pm->arg, strlen(pm->arg), b);
		break;
	case GW_SRC_STAGE_VAR: {
		const char *v = gw_config_stage_var(inv->ctx->api, pm->arg, strlen(pm->arg));
		if (v)
			gw_buf_append_str(b, v);
		break;
	}
	case GW_SRC_BODY:
		if (inv->body && !inv->binary && gw_rse_eval(pm->path, inv->body, inv->body_len, b))
			gw_buf_reset(b);
		break;
	case GW_SRC_HEADER:
		header_of_client(inv, pm->arg, b);
		break;
	case GW_SRC_QUERY:
		query_of_client(inv, pm->arg, b);
		break;
	}
}

/* Header values cannot carry line breaks: control characters (but HTAB)
 * are dropped. */
static void append_value(gw_buf_t *out, const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)v[i] >= 0x20 || v[i] == '\t') && v[i] != 0x7f)
			gw_buf_append_char(out, v[i]);
}

static void append_header(gw_buf_t *out, const char *name, const char *v, size_t n)
{
	gw_buf_append_str(out, name);
	gw_buf_append(out, ": ", 2);
	append_value(out, v, n);
	gw_buf_append(out, "\r\n", 2);
}

static void append_query_escaped(gw_buf_t *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			gw_buf_append_char(out, (char)ch);
		} else {
			char e[3] = { '%', hex[ch >> 4], hex[ch & 15] };
			gw_buf_append(out, e, 3);
		}
	}
}

/* Replaces ${context.X} and ${stageVariables.X} (MOCK bodies). */
static void substitute(const gw_invocation_t *inv, const char *s, gw_buf_t *out)
{
	const char *p = s, *q;

	while ((q = strstr(p, "${"))) {
		const char *close = strchr(q, '}');

		gw_buf_append(out, p, (size_t)(q - p));
		if (!close) {
			p = q;
			break;
		}
		if (!strncmp(q + 2, "context.", 8)) {
			context_var(inv, q + 10, (size_t)(close - q - 10), out);
		} else if (!strncmp(q + 2, "stageVariables.", 15)) {
			const char *v = gw_config_stage_var(inv->ctx->api, q + 17,
							    (size_t)(close - q - 17));
			if (v)
				gw_buf_append_str(out, v);
		} else {
			gw_buf_append(out, q, (size_t)(close + 1 - q));
		}
		p = close + 1;
	}
	gw_buf_append_str(out, p);
}

void gw_integ_mock_body(const gw_integration_t *in, const gw_event_ctx_t *ctx, gw_buf_t *out)
{
	gw_invocation_t inv;

	memset(&inv, 0, sizeof(inv));
	inv.type = GW_EV_MESSAGE;
	inv.ctx = ctx;
	substitute(&inv, in->mock_body, out);
}

/* --- requests ---------------------------------------------------------- */

/* Mapped query parameters (WebSocket routes only) after the integration's
 * own query, if any. */
static void mapped_query(const gw_invocation_t *inv, const gw_integration_t *in,
			 gw_buf_t *out, gw_buf_t *tmp)
{
	int has_query = strchr(in->path, '?') != NULL;

	for (size_t i = 0; i < in->n_params; i++) {
		const gw_param_map_t *pm = &in->params[i];

		if (!pm->to_query)
			continue;
		param_value(inv, pm, tmp);
		gw_buf_append_char(out, has_query ? '&' : '?');
		has_query = 1;
		append_query_escaped(out, pm->name, strlen(pm->name));
		gw_buf_append_char(out, '=');
		append_query_escaped(out, tmp->data, tmp->len);
	}
}

/* The request line and Host (with the port unless the scheme's): the one
 * place either is written. A REST request names its own target; a
 * WebSocket event's mapped parameters follow (REST routes map none). */
static void request_start(const gw_invocation_t *inv, const gw_integration_t *in,
			 const char *method, gw_buf_t *out, gw_buf_t *tmp)
{
	gw_buf_append_str(out, method);
	gw_buf_append_char(out, ' ');
	if (inv->target.ptr) {
		gw_buf_append(out, inv->target.ptr, inv->target.len);
	} else {
		gw_buf_append_str(out, in->path);
		if (inv->type != GW_EV_HTTP)
			mapped_query(inv, in, out, tmp);
	}
	gw_buf_append_str(out, " HTTP/1.1\r\nHost: ");
	gw_buf_append_str(out, in->host);
	if (in->port != (in->tls ? 443 : 80)) {
		gw_buf_append_char(out, ':');
		gw_buf_append_u64(out, (uint64_t)in->port);
	}
	gw_buf_append_str(out, "\r\n");
	if (inv->type == GW_EV_HTTP)
		return;
	for (size_t i = 0; i < in->n_params; i++) {
		const gw_param_map_t *pm = &in->params[i];

		if (pm->to_query)
			continue;
		param_value(inv, pm, tmp);
		append_header(out, pm->name, tmp->data, tmp->len);
	}
}

static int is_header(gw_str_t name, const char *s)
{
	size_t n = strlen(s);

	return name.len == n && !strncasecmp(name.ptr, s, n);
}

/* Headers only the gateway sets toward a backend: a client's are dropped
 * from a Lambda event (X-Forwarded-For is appended to instead). The same
 * list as gw_http_forwardable_header's, which also drops what a proxied
 * request must not carry (Host, hop-by-hop, Content-Length). */
static int gateway_header(gw_str_t n)
{
	return is_header(n, "X-Forwarded-For") || is_header(n, "X-Forwarded-Proto") ||
	       is_header(n, "X-Forwarded-Host") || is_header(n, "X-Forwarded-Port") ||
	       is_header(n, "Forwarded") || is_header(n, "X-Amzn-RequestId") ||
	       (n.len >= 9 && !strncasecmp(n.ptr, "X-Wsgate-", 9));
}

/* X-Forwarded-For as the gateway passes it on: the client's values, if
 * any, then the address the gateway saw (nginx's
 * $proxy_add_x_forwarded_for): a backend trusts only the right-most one. */
static void forwarded_for(const gw_invocation_t *inv, gw_buf_t *out)
{
	for (size_t i = 0; i < inv->n_headers; i++) {
		const gw_header_t *h = &inv->headers[i];

		if (!is_header(h->name, "X-Forwarded-For") || !h->value.len)
			continue;
		append_value(out, h->value.ptr, h->value.len);
		gw_buf_append(out, ", ", 2);
	}
	append_value(out, inv->ctx->source_ip, strlen(inv->ctx->source_ip));
}

/* Whether the client's Connection header lists name: a header so named is
 * hop-by-hop too (RFC 9110 §7.6.1). */
static int connection_listed(const gw_invocation_t *inv, gw_str_t name)
{
	for (size_t i = 0; i < inv->n_headers; i++) {
		const gw_header_t *h = &inv->headers[i];
		const char *v = h->value.ptr;
		size_t k = 0, len = h->value.len;

		if (!is_header(h->name, "Connection"))
			continue;
		while (k < len) {
			size_t start, end;

			while (k < len && (v[k] == ' ' || v[k] == '\t' || v[k] == ','))
				k++;
			start = k;
			while (k < len && v[k] != ',')
				k++;
			end = k;
			while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
				end--;
			if (end - start == name.len && !strncasecmp(v + start, name.ptr, name.len))
				return 1;
		}
	}
	return 0;
}

/* A proxied request's client headers: all but those only the gateway may
 * set (gw_http_forwardable_header) and those the client's Connection
 * header names, then the gateway's own X-Forwarded-* values. */
static void forward_client_headers(const gw_invocation_t *inv, gw_buf_t *req)
{
	gw_str_t host = { NULL, 0 };

	for (size_t i = 0; i < inv->n_headers; i++) {
		const gw_header_t *h = &inv->headers[i];

		if (is_header(h->name, "Host") && !host.ptr)
			host = h->value;
		/* Expect too: the gateway answered 100-continue itself. */
		if (!gw_http_forwardable_header(h->name.ptr, h->name.len) ||
		    connection_listed(inv, h->name))
			continue;
		gw_buf_append(req, h->name.ptr, h->name.len);
		gw_buf_append(req, ": ", 2);
		append_value(req, h->value.ptr, h->value.len);
		gw_buf_append(req, "\r\n", 2);
	}
	gw_buf_append_str(req, "X-Forwarded-For: ");
	forwarded_for(inv, req);
	gw_buf_append_str(req, inv->tls ? "\r\nX-Forwarded-Proto: https\r\n"
					: "\r\nX-Forwarded-Proto: http\r\n");
	if (inv->forwarded_port) {
		gw_buf_append_str(req, "X-Forwarded-Port: ");
		gw_buf_append_u64(req, (uint64_t)inv->forwarded_port);
		gw_buf_append_str(req, "\r\n");
	}
	if (host.ptr)
		append_header(req, "X-Forwarded-Host", host.ptr, host.len);
}

/* X-Amzn-Trace-Id as AWS adds it when the client sent none:
 * Root=1-{epoch seconds, 8 hex}-{96 random bits, 24 hex}. */
static void trace_id(gw_buf_t *out)
{
	unsigned char r[12];
	char s[64];
	int n = snprintf(s, sizeof(s), "Root=1-%08x-", (unsigned)time(NULL));

	if (RAND_bytes(r, sizeof(r)) != 1)
		memset(r, 0, sizeof(r));
	for (size_t i = 0; i < sizeof(r); i++)
		n += snprintf(s + n, sizeof(s) - (size_t)n, "%02x", r[i]);
	gw_buf_append(out, s, (size_t)n);
}

static int has_header(const gw_invocation_t *inv, const char *name)
{
	for (size_t i = 0; i < inv->n_headers; i++)
		if (is_header(inv->headers[i].name, name))
			return 1;
	return 0;
}

/* A Lambda event's headers, as AWS writes them: the client's, less those
 * only the gateway sets and the handshake's Connection and Upgrade (AWS's
 * CONNECT events have neither; its REQUEST authorizer's event keeps both
 * and has "content-length: 0"), then X-Forwarded-For (appended to), -Port
 * (when the gateway sets one), -Proto and an X-Amzn-Trace-Id when the
 * client sent none. The values pointed to are appended to vals, which is
 * not to grow while out is used; out has room for GW_INVOKE_MAX_HEADERS +
 * 5. */
static size_t event_headers(const gw_invocation_t *inv, gw_buf_t *vals, gw_header_t *out)
{
	size_t n = 0, start = vals->len, xff, port, trace;
	int add_trace = !has_header(inv, "X-Amzn-Trace-Id");
	int handshake = inv->type == GW_EV_AUTHORIZER;

	for (size_t i = 0; i < inv->n_headers && n < GW_INVOKE_MAX_HEADERS; i++)
		if (!gateway_header(inv->headers[i].name) &&
		    (handshake || (!is_header(inv->headers[i].name, "Connection") &&
				   !is_header(inv->headers[i].name, "Upgrade"))))
			out[n++] = inv->headers[i];
	if (handshake && !has_header(inv, "Content-Length"))
		out[n++] = (gw_header_t){ GW_STR("content-length"), GW_STR("0") };
	forwarded_for(inv, vals);
	xff = vals->len;
	gw_buf_append_u64(vals, (uint64_t)inv->forwarded_port);
	port = vals->len;
	if (add_trace)
		trace_id(vals);
	trace = vals->len;
	out[n++] = (gw_header_t){ GW_STR("X-Forwarded-For"), { vals->data + start, xff - start } };
	if (inv->forwarded_port)
		out[n++] = (gw_header_t){ GW_STR("X-Forwarded-Port"), { vals->data + xff, port - xff } };
	out[n++] = (gw_header_t){ GW_STR("X-Forwarded-Proto"),
				  inv->tls ? GW_STR("https") : GW_STR("http") };
	if (add_trace)
		out[n++] = (gw_header_t){ GW_STR("X-Amzn-Trace-Id"), { vals->data + port, trace - port } };
	return n;
}

/* The Lambda event into body, vals holding what it points to; -1 when an
 * HTTP event would be larger than allowed. */
static int lambda_event(const gw_invocation_t *inv, gw_buf_t *vals, gw_buf_t *body)
{
	gw_header_t hs[GW_INVOKE_MAX_HEADERS + 5];
	gw_http_event_t ev;
	size_t encoded;

	switch (inv->type) {
	case GW_EV_CONNECT:
		gw_event_connect(body, inv->ctx, hs, event_headers(inv, vals, hs), inv->query,
				 inv->query_len);
		return 0;
	case GW_EV_MESSAGE:
		gw_event_message(body, inv->ctx, inv->body, inv->body_len, inv->binary);
		return 0;
	case GW_EV_DISCONNECT:
		gw_event_disconnect(body, inv->ctx);
		return 0;
	case GW_EV_AUTHORIZER:
		gw_event_authorizer(body, inv->ctx, inv->method_arn, hs,
				    event_headers(inv, vals, hs), inv->query, inv->query_len);
		return 0;
	case GW_EV_HTTP:
		break;
	}
	/* Refused before the event is built: the body alone is too large. */
	gw_event_body_base64(inv->http->body, inv->http->body_len, &encoded);
	if (encoded > inv->max_event_bytes)
		return -1;
	ev = *inv->http;
	ev.headers = hs;
	ev.n_headers = event_headers(inv, vals, hs);
	gw_event_http(body, &ev);
	return body->len > inv->max_event_bytes ? -1 : 0;
}

/* HTTP_PROXY: the message (or the REST request's body) is the body; the
 * client's headers travel on $connect and REST requests. body is scratch
 * space for mapped parameters first. */
static void proxy_head(const gw_invocation_t *inv, const gw_integration_t *in, gw_buf_t *req,
		       gw_buf_t *body)
{
	static const char *const types[] = { "CONNECT", "MESSAGE", "DISCONNECT", "MESSAGE",
		"CONNECT" };
	const gw_event_ctx_t *ctx = inv->ctx;
	const char *method = in->method ? in->method : inv->method ? inv->method : "POST";

	request_start(inv, in, method, req, body);
	gw_buf_reset(body);
	switch (inv->type) {
	case GW_EV_HTTP:
		forward_client_headers(inv, req);
		append_header(req, "X-Amzn-RequestId", ctx->request_id, strlen(ctx->request_id));
		return;
	case GW_EV_CONNECT:
	case GW_EV_AUTHORIZER: /* (authorizers are AWS_PROXY: not reached) */
		forward_client_headers(inv, req);
		break;
	case GW_EV_MESSAGE:
		gw_buf_append(body, inv->body, inv->body_len);
		gw_buf_append_str(req, inv->binary
				? "Content-Type: application/octet-stream\r\n"
				: "Content-Type: application/json; charset=utf-8\r\n");
		break;
	case GW_EV_DISCONNECT: {
		char code[16];

		snprintf(code, sizeof(code), "%d", ctx->disconnect_code);
		append_header(req, "X-Wsgate-Disconnect-Status-Code", code, strlen(code));
		append_header(req, "X-Wsgate-Disconnect-Reason", ctx->disconnect_reason,
			      strlen(ctx->disconnect_reason));
		break;
	}
	}
	/* Always there, so a backend works without any mapping. */
	append_header(req, "X-Wsgate-Connection-Id", ctx->connection_id,
		      strlen(ctx->connection_id));
	append_header(req, "X-Wsgate-Route-Key", ctx->route_key, strlen(ctx->route_key));
	append_header(req, "X-Wsgate-Event-Type", types[inv->type], strlen(types[inv->type]));
	append_header(req, "X-Wsgate-Request-Id", ctx->request_id, strlen(ctx->request_id));
}

/* Memory: the head is built in the caller's reused buffer; the body is
 * built (or given) once and taken over by the call, and serves as the
 * scratch space for mapped parameters before that. */
gw_call_t *gw_integ_invoke(gw_backend_t *be, const gw_invocation_t *inv, gw_buf_t *head,
			   gw_call_cb cb, void *user)
{
	const gw_integration_t *in = inv->route->integration;
	gw_buf_t body, *sent = inv->body_buf ? inv->body_buf : &body;
	gw_call_t *call = NULL;
	size_t mark;
	int rc;

	gw_buf_init(&body);
	gw_buf_reset(head);
	if (in->type == GW_INTEG_MOCK) {
		substitute(inv, in->mock_body, &body);
		call = gw_backend_local(be, in->mock_status, body.data ? body.data : "", body.len,
					cb, user);
		goto out;
	}
	if (in->type == GW_INTEG_AWS_PROXY) {
		sent = &body;
		request_start(inv, in, "POST", head, &body);
		gw_buf_append_str(head, "Content-Type: application/json\r\n");
		append_header(head, "X-Amzn-RequestId", inv->ctx->request_id,
			      strlen(inv->ctx->request_id));
		/* The event's header values live past the head until it is built. */
		mark = head->len;
		rc = lambda_event(inv, head, &body);
		head->len = mark;
		if (rc)
			goto out;
	} else {
		proxy_head(inv, in, head, &body);
	}
	gw_buf_append_str(head, "Content-Length: ");
	gw_buf_append_u64(head, sent->len);
	gw_buf_append_str(head, "\r\n\r\n");
	call = (inv->own_bound ? gw_backend_call_unbounded : gw_backend_call_body)(
		be, gw_backend_endpoint_for(be, in->index), head->data, head->len, sent,
		(unsigned)in->timeout_ms, inv->ctx->request_id, cb, user);
out:
	gw_buf_dispose(&body);
	return call;
}

/* --- responses --------------------------------------------------------- */

/* --- channel lists (channel.h) ---------------------------------------- */

static const char *const chan_headers[2] = { "X-Wsgate-Subscribe", "X-Wsgate-Unsubscribe" };
static const char *const chan_fields[2] = { "subscribe", "unsubscribe" };

/* Appends s to the list that starts at *off (an offset plus one into
 * scratch, 0: none yet), which must be the last thing in scratch. */
static void chan_list_add(gw_buf_t *scratch, size_t *off, const char *s, size_t len)
{
	if (!*off) {
		*off = scratch->len + 1;
	} else {
		scratch->len--; /* its NUL */
		gw_buf_append_char(scratch, ',');
	}
	gw_buf_append(scratch, s, len);
	gw_buf_append_char(scratch, '\0');
}

/* A Lambda answer's "subscribe" / "unsubscribe" (a string or an array of
 * strings) and the same headers in its "headers". Each list is appended
 * whole before the next one starts. */
static void chan_lists_lambda(json_t *root, gw_buf_t *scratch, size_t offs[2])
{
	json_t *headers = json_object_get(root, "headers");

	for (int k = 0; k < 2; k++) {
		json_t *v = json_object_get(root, chan_fields[k]), *e;
		const char *hk;
		size_t i;

		if (json_is_string(v))
			chan_list_add(scratch, &offs[k], json_string_value(v), json_string_length(v));
		else if (json_is_array(v))
			/* One past the bound, so that the channels tell it was
			 * passed (gw_chan_apply). */
			json_array_foreach(v, i, e) {
				if (i > GW_CHAN_PER_ANSWER)
					break;
				if (json_is_string(e))
					chan_list_add(scratch, &offs[k], json_string_value(e),
						      json_string_length(e));
			}
		if (!json_is_object(headers))
			continue;
		json_object_foreach(headers, hk, e)
			if (!strcasecmp(hk, chan_headers[k]) && json_is_string(e))
				chan_list_add(scratch, &offs[k], json_string_value(e),
					      json_string_length(e));
	}
}

/* HTTP_PROXY: every X-Wsgate-Subscribe / -Unsubscribe line, joined. */
static void chan_lists_http(const gw_http_resp_t *resp, gw_buf_t *scratch,
			    gw_integ_result_t *res)
{
	size_t offs[2] = { 0, 0 };

	gw_buf_reset(scratch);
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < resp->n_headers; i++)
			if (!strcasecmp(resp->header_names[i], chan_headers[k]))
				chan_list_add(scratch, &offs[k], resp->header_values[i],
					      strlen(resp->header_values[i]));
	res->subscribe = offs[0] ? scratch->data + offs[0] - 1 : NULL;
	res->unsubscribe = offs[1] ? scratch->data + offs[1] - 1 : NULL;
}

int gw_lambda_parse(const char *data, size_t len, gw_buf_t *scratch, gw_integ_result_t *res,
		    const char **error)
{
	json_error_t jerr;
	json_t *root, *v, *headers;
	size_t body_len = 0, proto_off = 0, offs[2] = { 0, 0 };
	int has_proto = 0, rc = -1;

	memset(res, 0, sizeof(*res));
	res->status_code = 200;
	gw_buf_reset(scratch);
	root = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		*error = "integration response is not JSON";
		return -1;
	}
	if (!json_is_object(root)) {
		*error = "integration response is not a JSON object";
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
			*error = "integration response statusCode is not a number";
			goto out;
		}
		if (sc < 100 || sc > 599) {
			*error = "integration response statusCode is out of range";
			goto out;
		}
		/* An interim status would leave the client waiting for the
		 * real answer, and read the next one in its place. */
		if (sc < 200) {
			*error = "integration response statusCode is informational (1xx)";
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
					*error = "integration response body is not valid base64";
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
				/* One subprotocol, a token (RFC 6455 §4.3). */
				if (!gw_http_is_token(json_string_value(hv), json_string_length(hv))) {
					res->dropped_headers++;
					continue;
				}
				proto_off = scratch->len;
				gw_buf_append_str(scratch, json_string_value(hv));
				gw_buf_append_char(scratch, '\0');
				has_proto = 1;
			}
		}
	}
	chan_lists_lambda(root, scratch, offs);
	res->body = scratch->data;
	res->body_len = body_len;
	res->subprotocol = has_proto ? scratch->data + proto_off : NULL;
	res->subscribe = offs[0] ? scratch->data + offs[0] - 1 : NULL;
	res->unsubscribe = offs[1] ? scratch->data + offs[1] - 1 : NULL;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

static void log_dropped(const gw_integration_t *in, unsigned n)
{
	unsigned left_out;

	if (n && gw_backend_log_allowed(&left_out))
		gw_warn("integration %s: %u invalid header%s left out of its answer "
			"(and %u similar lines not logged)", in->name, n, n == 1 ? "" : "s",
			left_out);
}

/* An answer that fails the call: a client can cause one per message. */
static void log_failure(const gw_integration_t *in, const char *error, int status)
{
	unsigned left_out;
	char more[64] = "";

	if (!gw_backend_log_allowed(&left_out))
		return;
	if (left_out)
		snprintf(more, sizeof(more), " (%u similar line%s not logged)", left_out,
			 left_out == 1 ? "" : "s");
	gw_warn("integration %s: %s (HTTP %d)%s", in->name, error, status, more);
}

void gw_integ_result(const gw_integration_t *in, const gw_http_resp_t *resp,
		     gw_buf_t *scratch, gw_integ_result_t *res)
{
	const char *error = NULL;

	memset(res, 0, sizeof(*res));
	switch (resp->outcome) {
	case GW_CALL_OK:
		break;
	case GW_CALL_TIMEOUT:
		res->outcome = GW_INTEG_TIMEOUT;
		return;
	case GW_CALL_BUSY:
		res->outcome = GW_INTEG_BUSY;
		return;
	default:
		res->outcome = GW_INTEG_FAILED;
		return;
	}
	switch (in->type) {
	case GW_INTEG_AWS_PROXY:
		if (resp->status < 200 || resp->status > 299) {
			error = "integration answered a non-2xx HTTP status";
		} else if (!gw_lambda_parse(resp->body, resp->body_len, scratch, res, &error)) {
			log_dropped(in, res->dropped_headers);
			return;
		}
		log_failure(in, error, resp->status);
		memset(res, 0, sizeof(*res));
		res->outcome = GW_INTEG_FAILED;
		return;
	case GW_INTEG_HTTP_PROXY:
		if (resp->status >= 500) {
			log_failure(in, "a 5xx answer", resp->status);
			res->outcome = GW_INTEG_FAILED;
			return;
		}
		for (size_t i = 0; i < resp->n_headers; i++) {
			const char *v = resp->header_values[i];

			if (strcasecmp(resp->header_names[i], "Sec-WebSocket-Protocol"))
				continue;
			if (gw_http_is_token(v, strlen(v)))
				res->subprotocol = v;
			else
				res->dropped_headers++;
		}
		log_dropped(in, res->dropped_headers);
		break;
	case GW_INTEG_MOCK:
		break;
	}
	/* A final answer is never 1xx (see gw_lambda_parse). */
	if (resp->status < 200) {
		log_failure(in, "an informational status as a final answer", resp->status);
		memset(res, 0, sizeof(*res));
		res->outcome = GW_INTEG_FAILED;
		return;
	}
	res->status_code = resp->status;
	if (in->type == GW_INTEG_HTTP_PROXY)
		chan_lists_http(resp, scratch, res);
	res->body = resp->body;
	res->body_len = resp->body_len;
	res->body_binary = !gw_utf8_valid((const unsigned char *)resp->body, resp->body_len);
}

/* --- REST answers ------------------------------------------------------ */

/* Appends an answer's header line for the client unless the gateway
 * writes it itself (hop-by-hop, framing; Access-Control-* once CORS is
 * configured) or it is not valid HTTP (it must not split the response). */
static void answer_header(gw_buf_t *b, const char *n, size_t nl, const char *v, size_t vl,
			  int cors)
{
	if (gw_http_hop_by_hop(n, nl) || (cors && nl >= 15 && !strncasecmp(n, "access-control-", 15)))
		return;
	if (!gw_http_is_token(n, nl) || !gw_http_field_value(v, vl))
		return;
	gw_buf_append(b, n, nl);
	gw_buf_append(b, ": ", 2);
	gw_buf_append(b, v, vl);
	gw_buf_append(b, "\r\n", 2);
}

static void payload2_headers(json_t *v, int cors, gw_buf_t *hdrs)
{
	const char *k;
	json_t *hv;

	json_object_foreach(v, k, hv) {
		const char *s = json_is_string(hv) ? json_string_value(hv) : NULL;
		size_t sl = json_is_string(hv) ? json_string_length(hv) : 0;
		char num[32];

		if (!s && json_is_integer(hv)) {
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(hv));
			s = num;
			sl = strlen(num);
		}
		if (s)
			answer_header(hdrs, k, strlen(k), s, sl, cors);
	}
}

/* Lambda payload 2.0 response rules (reference §8.2). */
static int payload2_answer(const gw_http_resp_t *resp, int cors, gw_buf_t *hdrs, gw_buf_t *body)
{
	json_error_t jerr;
	json_t *root, *v;
	int status = -1;

	if (resp->status < 200 || resp->status > 299)
		return -1;
	root = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!root)
		return -1;
	if (json_is_string(root)) {
		/* A bare string is the body itself, without its quotes (AWS's
		 * payload 2.0 response table; issue 15 item 7). */
		gw_buf_append(body, json_string_value(root), json_string_length(root));
		gw_buf_append_str(hdrs, "Content-Type: application/json\r\n");
		status = 200;
		goto out;
	}
	if (!json_is_object(root) || !json_object_get(root, "statusCode")) {
		/* A bare JSON answer: 200, application/json, the answer itself. */
		gw_buf_append(body, resp->body, resp->body_len);
		gw_buf_append_str(hdrs, "Content-Type: application/json\r\n");
		status = 200;
		goto out;
	}
	v = json_object_get(root, "statusCode");
	/* 1xx is not a final answer: the client would wait for another one. */
	if (!json_is_integer(v) || json_integer_value(v) < 200 || json_integer_value(v) > 599)
		goto out;
	v = json_object_get(root, "headers");
	if (json_is_object(v))
		payload2_headers(v, cors, hdrs);
	v = json_object_get(root, "cookies");
	if (json_is_array(v)) {
		size_t i;
		json_t *c;

		json_array_foreach(v, i, c) {
			if (json_is_string(c))
				answer_header(hdrs, "Set-Cookie", 10, json_string_value(c),
					      json_string_length(c), cors);
		}
	}
	v = json_object_get(root, "body");
	if (json_is_string(v)) {
		if (!json_is_true(json_object_get(root, "isBase64Encoded")))
			gw_buf_append(body, json_string_value(v), json_string_length(v));
		else if (gw_base64_decode(body, json_string_value(v), json_string_length(v)))
			goto out;
	} else if (v && !json_is_null(v)) {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (s) {
			gw_buf_append_str(body, s);
			free(s);
		}
	}
	status = (int)json_integer_value(json_object_get(root, "statusCode"));
out:
	json_decref(root);
	return status;
}

/* HTTP_PROXY and MOCK: status, headers and body as they are. */
static int proxy_answer(const gw_integration_t *in, const gw_http_resp_t *resp, int cors,
			gw_buf_t *hdrs, gw_buf_t *body)
{
	/* 101 Switching Protocols is not an answer to pass on. */
	if (resp->status < 200)
		return -1;
	for (size_t i = 0; i < resp->n_headers; i++) {
		const char *n = resp->header_names[i], *v = resp->header_values[i];

		answer_header(hdrs, n, strlen(n), v, strlen(v), cors);
	}
	if (in->type == GW_INTEG_MOCK && !resp->n_headers)
		gw_buf_append_str(hdrs, "Content-Type: application/json\r\n");
	/* Take the body over instead of copying it. */
	if (resp->body_buf) {
		gw_buf_dispose(body);
		*body = *resp->body_buf;
		gw_buf_init(resp->body_buf);
	} else {
		gw_buf_append(body, resp->body, resp->body_len);
	}
	return resp->status;
}

int gw_integ_http_answer(const gw_integration_t *in, const gw_http_resp_t *resp, int cors,
			 gw_buf_t *hdrs, gw_buf_t *body)
{
	int lambda = in->type == GW_INTEG_AWS_PROXY, status;

	gw_buf_reset(body);
	status = lambda ? payload2_answer(resp, cors, hdrs, body)
			: proxy_answer(in, resp, cors, hdrs, body);
	if (status < 0)
		log_failure(in, lambda ? "an invalid Lambda payload 2.0 answer"
				       : "an informational status as a final answer", resp->status);
	return status;
}
