/* The request parser (httpreq.c) in head mode, as conn.c reads a WebSocket
 * upgrade: bytes arrive in pieces of any size and are parsed incrementally.
 * The same bytes fed in one piece must give the same head: a split point
 * must never change what the gateway sees; and a whole request (the mode
 * fuzz_httpreq.c drives) must read the same head from them.
 * Input: [seed][max piece][head bytes...]. */
#include "config.h"
#include "event.h"
#include "fuzz_common.h"
#include "fuzz_event.h"
#include "fuzz_memfile.h"
#include "httpreq.h"

#include <string.h>
#include <strings.h>

static const char API[] =
	"{ \"name\": \"chat\", \"stage\": \"dev\", \"basePath\": \"/chat\",\n"
	"  \"integrations\": { \"be\": { \"type\": \"MOCK\" } },\n"
	"  \"routes\": { \"$connect\": { \"integration\": \"be\" } } }\n";

static gw_config_t *cfg;

#define MAX_HEAD 4096

typedef struct outcome {
	enum gw_req_status st;
	gw_req_t *h;
} outcome_t;

static outcome_t run(const uint8_t *data, size_t size, fz_split_t *split)
{
	outcome_t o = { GW_REQ_MORE, gw_req_create_head(MAX_HEAD) };
	size_t off = 0;

	while (off < size && o.st == GW_REQ_MORE) {
		size_t n = split ? fz_split_next(split, size - off) : size - off;

		o.st = gw_req_feed(o.h, (const char *)data + off, n, NULL);
		off += n;
	}
	/* Bytes after the head (sent before the 101) are kept as they are,
	 * within the same limit. */
	if (o.st == GW_REQ_DONE && off < size) {
		enum gw_req_status st = gw_req_feed(o.h, (const char *)data + off, size - off, NULL);

		FZ_CHECK(st == GW_REQ_DONE || (st == GW_REQ_HEAD_TOO_LARGE && size > MAX_HEAD));
	}
	return o;
}

static void inspect(const gw_req_t *h)
{
	gw_str_t all = gw_req_bytes(h), url = gw_req_url(h), v;

	FZ_CHECK(gw_req_head_length(h) <= all.len);
	fz_touch(all.ptr, all.len);
	fz_touch(url.ptr, url.len);
	FZ_CHECK(!url.len || (url.ptr >= all.ptr && url.ptr + url.len <= all.ptr + all.len));
	for (size_t i = 0; i < gw_req_header_count(h); i++) {
		gw_str_t name, value;

		gw_req_header(h, i, &name, &value);
		fz_touch(name.ptr, name.len);
		fz_touch(value.ptr, value.len);
		FZ_CHECK(name.ptr + name.len <= all.ptr + gw_req_head_length(h));
		FZ_CHECK(!value.len || value.ptr + value.len <= all.ptr + gw_req_head_length(h));
		if (FZ_STRICT)
			FZ_CHECK(fz_token(name.ptr, name.len) && fz_field_value(value.ptr, value.len));
	}
	if (FZ_STRICT)
		FZ_CHECK(fz_target(url.ptr, url.len));
	(void)gw_req_method(h);
	if (gw_req_is_websocket(h)) {
		/* What libwebsockets would refuse, decided before $connect. */
		const char *why = NULL;
		enum gw_req_status st = gw_req_check_websocket(h, 4096, &why);

		FZ_CHECK(st == GW_REQ_DONE || st == GW_REQ_BAD || st == GW_REQ_HEAD_TOO_LARGE);
		FZ_CHECK(st == GW_REQ_DONE || (why && *why));
		if (st == GW_REQ_DONE)
			FZ_CHECK(gw_req_check_websocket(h, 1u << 20, &why) == GW_REQ_DONE);
	}
	v = gw_req_get(h, "Sec-WebSocket-Key");
	fz_touch(v.ptr, v.len);
	v = gw_req_get(h, "Sec-WebSocket-Protocol");
	fz_touch(v.ptr, v.len);
}

static char *dup_header(const gw_req_t *h, const char *name)
{
	gw_str_t v = gw_req_get(h, name);

	return v.ptr ? strndup(v.ptr, v.len) : NULL;
}

/* The $connect event as conn.c builds it (at most 128 headers), and a
 * MESSAGE event carrying the bytes sent after the head. */
static void events(const gw_req_t *h)
{
	gw_header_t headers[128];
	gw_str_t url = gw_req_url(h), all = gw_req_bytes(h);
	const char *q = url.len ? memchr(url.ptr, '?', url.len) : NULL;
	size_t nh = gw_req_header_count(h) < 128 ? gw_req_header_count(h) : 128, rest;
	char *host = dup_header(h, "Host"), *ua = dup_header(h, "User-Agent");
	const char *msg = all.ptr + gw_req_head_length(h);
	gw_event_ctx_t ctx;
	gw_buf_t out;
	json_t *j;
	int binary;

	for (size_t i = 0; i < nh; i++)
		gw_req_header(h, i, &headers[i].name, &headers[i].value);
	memset(&ctx, 0, sizeof(ctx));
	ctx.api = &cfg->apis[0];
	ctx.route_key = "$connect";
	ctx.connection_id = "AbCdEfGhIjKlMnOp";
	ctx.request_id = "req";
	ctx.source_ip = "127.0.0.1";
	ctx.user_agent = ua;
	ctx.domain_name = host ? host : "localhost";
	gw_buf_init(&out);
	gw_event_connect(&out, &ctx, headers, nh, q ? q + 1 : NULL,
			 q ? url.len - (size_t)(q + 1 - url.ptr) : 0);
	json_decref(fz_json(&out));
	rest = all.len - gw_req_head_length(h);
	binary = !gw_utf8_valid((const unsigned char *)msg, rest);
	ctx.route_key = "$default";
	ctx.message_id = "msg";
	gw_event_message(&out, &ctx, msg, rest, binary);
	j = fz_json(&out);
	fz_check_body(j, msg, rest);
	json_decref(j);
	ctx.disconnect_code = 1006;
	ctx.disconnect_reason = "";
	gw_event_disconnect(&out, &ctx);
	json_decref(fz_json(&out));
	gw_buf_dispose(&out);
	free(host);
	free(ua);
}

static int same_str(gw_str_t a, gw_str_t b)
{
	return a.len == b.len && (!a.len || !memcmp(a.ptr, b.ptr, a.len));
}

static void compare(const gw_req_t *a, const gw_req_t *b)
{
	FZ_CHECK(gw_req_head_length(a) == gw_req_head_length(b));
	FZ_CHECK(same_str(gw_req_url(a), gw_req_url(b)));
	FZ_CHECK(gw_req_header_count(a) == gw_req_header_count(b));
	for (size_t i = 0; i < gw_req_header_count(a); i++) {
		gw_str_t an, av, bn, bv;

		gw_req_header(a, i, &an, &av);
		gw_req_header(b, i, &bn, &bv);
		FZ_CHECK(same_str(an, bn));
		FZ_CHECK(same_str(av, bv));
	}
	FZ_CHECK(!strcmp(gw_req_method(a), gw_req_method(b)));
	FZ_CHECK(gw_req_is_websocket(a) == gw_req_is_websocket(b));
}

/* A field name that http-parser 2.9.4 takes for Transfer-Encoding once its
 * first 17 bytes match ("Transfer-Encodingx"): past the head it then wants
 * a chunked body and refuses the request. Only a whole request goes there. */
static int te_prefixed_name(const gw_req_t *h)
{
	for (size_t i = 0; i < gw_req_header_count(h); i++) {
		gw_str_t n, v;

		gw_req_header(h, i, &n, &v);
		if (n.len > 17 && !strncasecmp(n.ptr, "Transfer-Encoding", 17))
			return 1;
	}
	return 0;
}

/* One parser, one rule set: the same head read as a whole request (the
 * mode rest.c uses) is accepted and reads the same, but for what only a
 * whole request refuses: CONNECT, and http-parser's quirk above. */
static void same_as_whole_request(const gw_req_t *h)
{
	gw_str_t all = gw_req_bytes(h);
	size_t len = gw_req_head_length(h), used = 0;
	gw_req_t *w = gw_req_create(MAX_HEAD, SIZE_MAX);
	enum gw_req_status st = gw_req_feed(w, all.ptr, len, &used);

	if (!strcmp(gw_req_method(h), "CONNECT")) {
		FZ_CHECK(st == GW_REQ_BAD);
	} else if (st != GW_REQ_BAD || !te_prefixed_name(h)) {
		FZ_CHECK(st == GW_REQ_DONE || st == GW_REQ_MORE);
		FZ_CHECK(used == len);
		compare(h, w);
		FZ_CHECK(gw_req_keep_alive(h) == gw_req_keep_alive(w));
	}
	gw_req_destroy(w);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_memfile_t f;
	gw_buf_t err;

	fz_quiet();
	gw_buf_init(&err);
	fz_memfile_open(&f, "api.json");
	fz_memfile_set(&f, API, sizeof(API) - 1);
	if (gw_config_load(f.path, &cfg, &err)) {
		fprintf(stderr, "fuzz_head: %.*s\n", (int)err.len, err.data);
		abort();
	}
	close(f.fd);
	gw_buf_dispose(&err);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_split_t split;
	outcome_t whole, pieces;

	if (size < 2)
		return 0;
	fz_split_init(&split, data[0], data[1]);
	data += 2;
	size -= 2;
	pieces = run(data, size, &split);
	if (pieces.st == GW_REQ_DONE) {
		inspect(pieces.h);
		events(pieces.h);
		same_as_whole_request(pieces.h);
	}
	/* One piece over the limit is refused before parsing; compare only
	 * what fits. */
	if (size <= MAX_HEAD) {
		whole = run(data, size, NULL);
		if (getenv("FZ_DEBUG"))
			fprintf(stderr, "whole %d (head %zu, %zu fields), pieces %d (head %zu, %zu fields)\n",
				(int)whole.st, gw_req_head_length(whole.h), gw_req_header_count(whole.h),
				(int)pieces.st, gw_req_head_length(pieces.h), gw_req_header_count(pieces.h));
		/* Which refusal (400 or 431) may depend on the pieces: the
		 * strict scanner looks at all it has before http-parser counts
		 * fields. Refused is refused. */
		FZ_CHECK(whole.st == pieces.st ||
			 ((whole.st == GW_REQ_BAD || whole.st == GW_REQ_HEAD_TOO_LARGE) &&
			  (pieces.st == GW_REQ_BAD || pieces.st == GW_REQ_HEAD_TOO_LARGE)));
		if (whole.st == GW_REQ_DONE)
			compare(whole.h, pieces.h);
		gw_req_destroy(whole.h);
	}
	gw_req_destroy(pieces.h);
	return 0;
}
