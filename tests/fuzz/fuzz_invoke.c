/* Requests the gateway sends to integrations (integration.c), built from
 * what a client sent: a WebSocket message (its body, mapped body paths) or
 * an upgrade head (its headers and query, mapped), for HTTP_PROXY and
 * AWS_PROXY. The request is caught at gw_backend_call_body (linked with --wrap)
 * and read back with the gateway's own strict request parser: it must be
 * exactly one well-formed request (nothing a backend could read as a
 * second one), its header lines tokens and field values, its body the
 * message as sent (HTTP_PROXY) or a JSON event (AWS_PROXY).
 * Input: [mode][bytes...]; mode & 3: 0 message, 1 binary message,
 * 2 $connect head, 3 $disconnect; mode & 4: AWS_PROXY. */
#include "config.h"
#include "event.h"
#include "fuzz_common.h"
#include "fuzz_event.h"
#include "fuzz_memfile.h"
#include "httpreq.h"
#include "integration.h"

#include <string.h>
#include <strings.h>

static const char API[] =
	"{ \"name\": \"chat\", \"stage\": \"dev\", \"basePath\": \"/chat\",\n"
	"  \"routeSelectionExpression\": \"$request.body.action\",\n"
	"  \"stageVariables\": { \"v\": \"stage value\" },\n"
	"  \"integrations\": {\n"
	"    \"msg\": { \"type\": \"HTTP_PROXY\", \"uri\": \"http://127.0.0.1:9000/m?fixed=1\",\n"
	"      \"requestParameters\": {\n"
	"        \"integration.request.header.X-A\": \"route.request.body.a\",\n"
	"        \"integration.request.header.X-O\": \"route.request.body.o\",\n"
	"        \"integration.request.querystring.b\": \"route.request.body.b\",\n"
	"        \"integration.request.querystring.id\": \"context.connectionId\",\n"
	"        \"integration.request.header.X-S\": \"stageVariables.v\" } },\n"
	"    \"conn\": { \"type\": \"HTTP_PROXY\", \"uri\": \"http://127.0.0.1:9000/c\",\n"
	"      \"method\": \"PUT\",\n"
	"      \"requestParameters\": {\n"
	"        \"integration.request.header.X-H\": \"route.request.header.X-Client\",\n"
	"        \"integration.request.querystring.q\": \"route.request.querystring.q\",\n"
	"        \"integration.request.header.X-Q\": \"route.request.querystring.q\" } },\n"
	"    \"lambda\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1:9000/events\",\n"
	"      \"requestParameters\": {\n"
	"        \"integration.request.header.X-A\": \"route.request.body.a\" } }\n"
	"  },\n"
	"  \"routes\": {\n"
	"    \"$connect\": { \"integration\": \"conn\" },\n"
	"    \"$disconnect\": { \"integration\": \"msg\" },\n"
	"    \"$default\": { \"integration\": \"msg\" },\n"
	"    \"lambda\": { \"integration\": \"lambda\" }\n"
	"  } }\n";

static gw_config_t *cfg;
static gw_buf_t sent; /* the request gw_backend_call got */
static int calls;

gw_call_t *__wrap_gw_backend_call(gw_backend_t *be, gw_endpoint_t *ep, const char *req,
				  size_t len, unsigned timeout_ms, const char *request_id,
				  gw_call_cb cb, void *user)
{
	gw_buf_reset(&sent);
	gw_buf_append(&sent, req, len);
	calls++;
	return NULL;
}

/* The invoke path sends head and body apart: read back as one request. */
gw_call_t *__wrap_gw_backend_call_body(gw_backend_t *be, gw_endpoint_t *ep, const char *head,
				       size_t head_len, gw_buf_t *body, unsigned timeout_ms,
				       const char *request_id, gw_call_cb cb, void *user)
{
	__wrap_gw_backend_call(be, ep, head, head_len, timeout_ms, request_id, cb, user);
	gw_buf_append(&sent, body->data ? body->data : "", body->len);
	gw_buf_reset(body);
	return NULL;
}

gw_endpoint_t *__wrap_gw_backend_endpoint_for(gw_backend_t *be, unsigned index)
{
	return NULL;
}

/* http-parser 2.9 flags Transfer-Encoding on any name it starts
 * ("Transfer-Encodinge"), then refuses the request for its Content-Length:
 * a quirk of the parser used as the oracle here, not a malformed request.
 * A client may send such a header; the check is then left out. */
static int te_prefix_quirk(const gw_str_t *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (names[i].len > 17 && !strncasecmp(names[i].ptr, "Transfer-Encoding", 17))
			return 1;
	return 0;
}

/* The request as a backend would read it. */
static void check_request(const gw_integration_t *in, const char *body, size_t len, int lambda)
{
	gw_req_t *r = gw_req_create(1 << 20, 1 << 24);
	enum gw_req_status st;
	size_t used = 0;
	gw_buf_t *b;

	st = gw_req_feed(r, sent.data, sent.len, &used);
	/* The oracle takes 100 header lines; a client's 100 plus the
	 * gateway's own make more (not a malformed request). */
	if (st == GW_REQ_HEAD_TOO_LARGE) {
		size_t lines = 0;

		for (const char *p = sent.data; (p = memmem(p, (size_t)(sent.data + sent.len - p),
							"\r\n", 2)); p += 2)
			lines++;
		if (lines > 100) {
			gw_req_destroy(r);
			return;
		}
	}
	if (st == GW_REQ_BAD) {
		gw_str_t names[128];
		size_t n = 0;
		const char *p = sent.data, *end = sent.data + sent.len, *eol;

		/* The names as sent, from the raw request. */
		while (n < 128 && (eol = memmem(p, (size_t)(end - p), "\r\n", 2)) && eol != p) {
			const char *colon = memchr(p, ':', (size_t)(eol - p));

			if (colon)
				names[n++] = (gw_str_t){ p, (size_t)(colon - p) };
			p = eol + 2;
		}
		if (te_prefix_quirk(names, n)) {
			gw_req_destroy(r);
			return;
		}
	}
	if (st != GW_REQ_DONE)
		fprintf(stderr, "request refused (%d at %zu):\n%.*s\n", (int)st, used,
			(int)(sent.len < 4000 ? sent.len : 4000), sent.data);
	FZ_CHECK(st == GW_REQ_DONE);
	FZ_CHECK(used == sent.len);
	for (size_t i = 0; i < gw_req_header_count(r); i++) {
		gw_str_t n, v;

		gw_req_header(r, i, &n, &v);
		FZ_CHECK(fz_token(n.ptr, n.len) && fz_field_value(v.ptr, v.len));
	}
	FZ_CHECK(!strcmp(gw_req_method(r), in->method ? in->method : "POST"));
	b = gw_req_body(r);
	if (lambda) {
		gw_buf_t copy = *b;
		json_t *j = fz_json(&copy);

		fz_check_body(j, body, len);
		json_decref(j);
	} else if (body) {
		FZ_CHECK(b->len == len && (!len || !memcmp(b->data, body, len)));
	}
	gw_req_destroy(r);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_memfile_t f;
	gw_buf_t err;

	fz_quiet();
	gw_buf_init(&sent);
	gw_buf_init(&err);
	fz_memfile_open(&f, "api.json");
	fz_memfile_set(&f, API, sizeof(API) - 1);
	if (gw_config_load(f.path, &cfg, &err)) {
		fprintf(stderr, "fuzz_invoke: %.*s\n", (int)err.len, err.data);
		abort();
	}
	close(f.fd);
	gw_buf_dispose(&err);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const gw_api_t *api = &cfg->apis[0];
	gw_header_t headers[128];
	gw_invocation_t inv;
	gw_event_ctx_t ctx;
	gw_req_t *h = NULL;
	gw_buf_t scratch;
	int mode, lambda;
	const char *body = NULL;
	size_t body_len = 0;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	lambda = (mode & 4) != 0;
	memset(&ctx, 0, sizeof(ctx));
	ctx.api = api;
	ctx.connection_id = "AbCdEfGhIjKlMnOp";
	ctx.request_id = "req";
	ctx.message_id = "msg";
	ctx.source_ip = "127.0.0.1";
	ctx.domain_name = "localhost";
	memset(&inv, 0, sizeof(inv));
	inv.ctx = &ctx;
	inv.tls = (mode & 8) != 0;
	switch (mode & 3) {
	case 0:
	case 1:
		inv.type = GW_EV_MESSAGE;
		inv.route = gw_config_route(api, lambda ? "lambda" : "$default",
					    lambda ? 6 : 8);
		inv.body = body = (const char *)data;
		inv.body_len = body_len = size;
		/* A text frame is valid UTF-8 (libwebsockets checks). */
		inv.binary = (mode & 1) || !gw_utf8_valid(data, size);
		ctx.route_key = inv.route->key;
		break;
	case 2: {
		gw_str_t url;
		const char *q;
		size_t nh;

		/* Only heads the gateway accepts reach $connect. */
		h = gw_req_create_head(8192);
		if (gw_req_feed(h, (const char *)data, size, NULL) != GW_REQ_DONE)
			goto out;
		url = gw_req_url(h);
		q = url.len ? memchr(url.ptr, '?', url.len) : NULL;
		nh = gw_req_header_count(h) < 128 ? gw_req_header_count(h) : 128;
		for (size_t i = 0; i < nh; i++)
			gw_req_header(h, i, &headers[i].name, &headers[i].value);
		inv.type = GW_EV_CONNECT;
		inv.route = api->connect_route;
		inv.headers = headers;
		inv.n_headers = nh;
		inv.query = q ? q + 1 : NULL;
		inv.query_len = q ? url.len - (size_t)(q + 1 - url.ptr) : 0;
		ctx.route_key = "$connect";
		if (lambda)
			inv.route = gw_config_route(api, "lambda", 6);
		break;
	}
	default: {
		/* The close reason a client sent, as a C string. */
		static char reason[124];
		size_t n = size < sizeof(reason) - 1 ? size : sizeof(reason) - 1;

		memcpy(reason, data, n);
		reason[n] = '\0';
		inv.type = GW_EV_DISCONNECT;
		inv.route = api->disconnect_route;
		ctx.route_key = "$disconnect";
		ctx.disconnect_code = size ? 1000 + data[0] : 1005;
		ctx.disconnect_reason = reason;
		if (lambda)
			inv.route = gw_config_route(api, "lambda", 6);
		break;
	}
	}
	gw_buf_init(&scratch);
	calls = 0;
	(void)gw_integ_invoke(NULL, &inv, &scratch, NULL, NULL);
	FZ_CHECK(calls == 1);
	check_request(inv.route->integration, inv.type == GW_EV_MESSAGE ? body : NULL,
		      body_len, lambda && inv.type == GW_EV_MESSAGE);
	gw_buf_dispose(&scratch);
out:
	gw_req_destroy(h);
	return 0;
}
