/* The request parser (httpreq.c) reading whole requests, as rest.c does
 * (head mode is fuzz_head.c's): pipelined requests on a keep-alive
 * connection, bytes in pieces of any size, each complete request routed
 * (gw_rest_match) against a fixed API. Fed in pieces or whole, the same
 * bytes must give the same sequence of requests, and each head must read
 * the same in head mode. Input: [seed][max piece][bytes...]. */
#include "config.h"
#include "event.h"
#include "fuzz_common.h"
#include "fuzz_event.h"
#include "fuzz_memfile.h"
#include "httpreq.h"
#include "rest.h"

#include <string.h>

#define MAX_HEAD 2048
#define MAX_BODY 4096
#define MAX_PARAMS 16

static const char API[] =
	"{ \"name\": \"shop\", \"stage\": \"prod\", \"basePath\": \"/\",\n"
	"  \"integrations\": { \"be\": { \"type\": \"MOCK\", \"statusCode\": 200 } },\n"
	"  \"routes\": {\n"
	"    \"GET /items\": { \"integration\": \"be\" },\n"
	"    \"GET /items/{id}\": { \"integration\": \"be\" },\n"
	"    \"POST /rooms/{room}/messages/{msg}\": { \"integration\": \"be\" },\n"
	"    \"GET /pets/dog/{id}\": { \"integration\": \"be\" },\n"
	"    \"GET /pets/{proxy+}\": { \"integration\": \"be\" },\n"
	"    \"ANY /{proxy+}\": { \"integration\": \"be\" },\n"
	"    \"GET /\": { \"integration\": \"be\" }\n"
	"  } }\n";

static gw_config_t *cfg;

/* A digest of what the gateway would act on, per request. */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ull;
	return (h ^ n) * 0x100000001b3ull;
}

static uint64_t mix_str(uint64_t h, gw_str_t s)
{
	fz_touch(s.ptr, s.len);
	return mix(h, s.ptr, s.len);
}

/* The payload 2.0 event as rest.c's call_lambda builds it. */
static void event(gw_req_t *r, const gw_rest_route_t *rr, gw_str_t path,
		  size_t (*params)[2])
{
	gw_header_t headers[103], pp[MAX_PARAMS];
	gw_buf_t *body = gw_req_body(r), out;
	size_t n = 0, k = 0;
	gw_http_event_t ev;
	json_t *j;

	for (size_t i = 0; i < gw_req_header_count(r) && n < 100; i++, n++)
		gw_req_header(r, i, &headers[n].name, &headers[n].value);
	headers[n].name = GW_STR("x-forwarded-for");
	headers[n++].value = GW_STR("127.0.0.1");
	headers[n].name = GW_STR("x-forwarded-port");
	headers[n++].value = GW_STR("8080");
	headers[n].name = GW_STR("x-forwarded-proto");
	headers[n++].value = GW_STR("http");
	for (size_t i = 0; i < rr->n_segs && k < MAX_PARAMS; i++) {
		if (rr->segs[i].kind == GW_SEG_STATIC)
			continue;
		pp[k].name = (gw_str_t){ rr->segs[i].text, rr->segs[i].len };
		pp[k].value = (gw_str_t){ path.ptr + params[k][0], params[k][1] };
		k++;
	}
	memset(&ev, 0, sizeof(ev));
	ev.api = &cfg->apis[0];
	ev.route_key = rr->route.key;
	ev.method = gw_req_method(r);
	ev.path = path;
	ev.query = gw_req_query(r);
	ev.headers = headers;
	ev.n_headers = n;
	ev.path_params = pp;
	ev.n_path_params = k;
	ev.body = body->data;
	ev.body_len = body->len;
	ev.source_ip = "127.0.0.1";
	ev.request_id = "req";
	gw_buf_init(&out);
	gw_event_http(&out, &ev);
	j = fz_json(&out);
	fz_check_body(j, body->data, body->len);
	json_decref(j);
	gw_buf_dispose(&out);
}

static uint64_t serve(uint64_t h, gw_req_t *r)
{
	const char *method = gw_req_method(r);
	gw_str_t path = gw_req_path(r);
	gw_buf_t *body = gw_req_body(r);
	size_t params[MAX_PARAMS][2];
	const gw_rest_route_t *rr;
	int ka = gw_req_keep_alive(r);

	if (FZ_STRICT) {
		gw_str_t q = gw_req_query(r);

		FZ_CHECK(fz_target(path.ptr, path.len) && (!q.len || fz_target(q.ptr, q.len)));
	}
	h = mix(h, method, strlen(method));
	h = mix_str(h, path);
	h = mix_str(h, gw_req_query(r));
	for (size_t i = 0; i < gw_req_header_count(r); i++) {
		gw_str_t name, value;

		gw_req_header(r, i, &name, &value);
		h = mix_str(h, name);
		h = mix_str(h, value);
		if (FZ_STRICT)
			FZ_CHECK(fz_token(name.ptr, name.len) && fz_field_value(value.ptr, value.len));
		(void)gw_http_hop_by_hop(name.ptr, name.len);
	}
	h = mix_str(h, gw_req_get(r, "Origin"));
	h = mix(h, body->data, body->len);
	h = mix(h, &ka, sizeof(ka));
	FZ_CHECK(body->len <= MAX_BODY);
	memset(params, 0, sizeof(params));
	rr = gw_rest_match(&cfg->apis[0], method, path.ptr, path.len, params, MAX_PARAMS);
	if (rr) {
		for (size_t i = 0; i < MAX_PARAMS; i++) {
			FZ_CHECK(params[i][0] + params[i][1] <= path.len);
			fz_touch(path.ptr + params[i][0], params[i][1]);
		}
		h = mix(h, rr->route.key, rr->route.key_len);
		event(r, rr, path, params);
	}
	return h;
}

/* One parser, one rule set: the head of a request that was served reads
 * the same in head mode (conn.c's), from the bytes kept for it. */
static void same_in_head_mode(const gw_req_t *r)
{
	gw_str_t head = gw_req_bytes(r);
	gw_req_t *h = gw_req_create_head(MAX_HEAD);

	FZ_CHECK(head.len == gw_req_head_length(r));
	FZ_CHECK(gw_req_feed(h, head.ptr, head.len, NULL) == GW_REQ_DONE);
	FZ_CHECK(gw_req_head_length(h) == head.len);
	FZ_CHECK(!strcmp(gw_req_method(h), gw_req_method(r)));
	FZ_CHECK(gw_req_url(h).len == gw_req_url(r).len &&
		 !memcmp(gw_req_url(h).ptr, gw_req_url(r).ptr, gw_req_url(r).len));
	FZ_CHECK(gw_req_header_count(h) == gw_req_header_count(r));
	for (size_t i = 0; i < gw_req_header_count(r); i++) {
		gw_str_t an, av, bn, bv;

		gw_req_header(h, i, &an, &av);
		gw_req_header(r, i, &bn, &bv);
		FZ_CHECK(an.len == bn.len && !memcmp(an.ptr, bn.ptr, an.len));
		FZ_CHECK(av.len == bv.len && !memcmp(av.ptr, bv.ptr, av.len));
	}
	FZ_CHECK(gw_req_keep_alive(h) == gw_req_keep_alive(r));
	gw_req_destroy(h);
}

/* Runs the connection; returns a digest of its requests and final status. */
static uint64_t run(const uint8_t *data, size_t size, fz_split_t *split)
{
	gw_req_t *r = gw_req_create(MAX_HEAD, MAX_BODY);
	uint64_t h = 0xcbf29ce484222325ull;
	size_t off = 0, end = 0;
	enum gw_req_status st = GW_REQ_MORE;
	int refused;

	/* off: parsed so far; end: received so far (rest.c's in_off/in_len). */
	while (off < size) {
		size_t used = 0;

		if (off == end)
			end += split ? fz_split_next(split, size - end) : size - end;
		st = gw_req_feed(r, (const char *)data + off, end - off, &used);
		FZ_CHECK(used <= end - off);
		off += used;
		if (st == GW_REQ_MORE) {
			(void)gw_req_wants_continue(r);
			FZ_CHECK(off == end);
			continue;
		}
		if (st != GW_REQ_DONE)
			break;
		h = serve(h, r);
		same_in_head_mode(r);
		if (getenv("FZ_DEBUG"))
			fprintf(stderr, "  request %s %.*s, %zu headers, body %zu, ends at %zu\n",
				gw_req_method(r), (int)gw_req_path(r).len, gw_req_path(r).ptr,
				gw_req_header_count(r), gw_req_body(r)->len, off);
		if (!gw_req_keep_alive(r))
			break;
		gw_req_reset(r);
	}
	/* Which refusal (400 or 431/413) may depend on where the pieces end:
	 * http-parser reports a span when a piece ends, so a limit can trip
	 * before a syntax error further on is seen. Refused is refused. */
	refused = st != GW_REQ_MORE && st != GW_REQ_DONE;
	h = mix(h, refused ? (const void *)"refused" : (const void *)&st,
		refused ? 7 : sizeof(st));
	if (getenv("FZ_DEBUG"))
		fprintf(stderr, "%s: status %d after %zu of %zu bytes, digest %016llx\n",
			split ? "pieces" : "whole", (int)st, off, size, (unsigned long long)h);
	gw_req_destroy(r);
	return h;
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
		fprintf(stderr, "fuzz_httpreq: %.*s\n", (int)err.len, err.data);
		abort();
	}
	close(f.fd);
	gw_buf_dispose(&err);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_split_t split;

	if (size < 2)
		return 0;
	fz_split_init(&split, data[0], data[1]);
	FZ_CHECK(run(data + 2, size - 2, &split) == run(data + 2, size - 2, NULL));
	return 0;
}
