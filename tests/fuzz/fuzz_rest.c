/* REST serving (src/rest.c), the parts a client or a Lambda controls:
 *  - mode even: the request-target of a request. Its path is normalised
 *    (normalize_path), routed (api_for, gw_rest_match) and, for HTTP_PROXY
 *    routes, substituted into the backend target (proxy_target). The
 *    backend target must keep the integration's structure: its fixed
 *    prefix and suffix, no '#', no control byte, no escape from the prefix
 *    after normalisation, parameters that cannot add path segments or
 *    query parameters (item 15).
 *  - mode odd: a Lambda payload 2.0 answer (gw_integ_http_answer), then the CORS
 *    headers for an Origin: every header line the gateway would write is
 *    "token: field-value\r\n" and none is hop-by-hop (item 17).
 * rest.c's helpers are static: this file includes rest.c (the fuzz library
 * leaves it out of this harness's link: nothing is defined twice).
 * Input: [mode][bytes...]. */
#include "../../src/rest.c"

#include "fuzz_common.h"
#include "fuzz_memfile.h"

static const char ROOT_API[] =
	"{ \"name\": \"root\", \"stage\": \"prod\", \"basePath\": \"/\",\n"
	"  \"integrations\": {\n"
	"    \"files\": { \"type\": \"HTTP_PROXY\", \"uri\": \"http://127.0.0.1:9000/static/{proxy}\" },\n"
	"    \"items\": { \"type\": \"HTTP_PROXY\",\n"
	"      \"uri\": \"http://127.0.0.1:9000/v1/items/{id}/detail?fixed=1&q={id}\" },\n"
	"    \"two\": { \"type\": \"HTTP_PROXY\", \"uri\": \"http://127.0.0.1:9000/x/{x}/{y}?z={y}\" },\n"
	"    \"lambda\": { \"type\": \"AWS_PROXY\", \"uri\": \"http://127.0.0.1:9000/events\" }\n"
	"  },\n"
	"  \"routes\": {\n"
	"    \"ANY /files/{proxy+}\": { \"integration\": \"files\" },\n"
	"    \"GET /items/{id}\": { \"integration\": \"items\" },\n"
	"    \"GET /a/{x}/b/{y}\": { \"integration\": \"two\" },\n"
	"    \"ANY /{proxy+}\": { \"integration\": \"lambda\" }\n"
	"  } }\n";
static const char SHOP_API[] =
	"{ \"name\": \"shop\", \"stage\": \"prod\", \"basePath\": \"/shop\",\n"
	"  \"integrations\": {\n"
	"    \"items\": { \"type\": \"HTTP_PROXY\",\n"
	"      \"uri\": \"http://127.0.0.1:9000/v1/items/{id}/detail?fixed=1&q={id}\" }\n"
	"  },\n"
	"  \"routes\": { \"GET /items/{id}\": { \"integration\": \"items\" } },\n"
	"  \"cors\": { \"allowOrigins\": [\"https://a.example\", \"*\"], \"allowMethods\": [\"GET\"],\n"
	"            \"allowHeaders\": [\"content-type\"], \"exposeHeaders\": [\"x-id\"],\n"
	"            \"maxAge\": 600 } }\n";

static gw_config_t *cfg;

static void check_line_headers(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		const char *eol = memmem(p + i, n - i, "\r\n", 2);
		const char *colon;
		size_t len;

		FZ_CHECK(eol != NULL);
		len = (size_t)(eol - (p + i));
		colon = memchr(p + i, ':', len);
		FZ_CHECK(colon != NULL);
		FZ_CHECK(gw_http_is_token(p + i, (size_t)(colon - (p + i))));
		FZ_CHECK(!gw_http_hop_by_hop(p + i, (size_t)(colon - (p + i))));
		FZ_CHECK(colon + 1 < eol + 1 && colon[1] == ' ');
		FZ_CHECK(gw_http_field_value(colon + 2, (size_t)(eol - (colon + 2))));
		i += len + 2;
	}
}

static void lambda(const uint8_t *data, size_t size, int shop, const char *origin)
{
	static const gw_integration_t aws = { .name = "fuzz", .type = GW_INTEG_AWS_PROXY };
	gw_rest_t r;
	gw_buf_t hdrs;
	gw_http_resp_t resp = {
		.outcome = GW_CALL_OK,
		.status = 200,
		.body = (const char *)data,
		.body_len = size,
	};
	int status;

	memset(&r, 0, sizeof(r));
	gw_buf_init(&hdrs);
	r.api = &cfg->apis[shop];
	r.origin = (char *)origin;
	status = gw_integ_http_answer(&aws, &resp, r.api->cors.enabled, &hdrs, &r.out_body);
	FZ_CHECK(status == -1 || (status >= 200 && status <= 599));
	if (status > 0) {
		check_line_headers(hdrs.data, hdrs.len);
		fz_touch(r.out_body.data, r.out_body.len);
	}
	gw_buf_reset(&hdrs);
	cors_headers(&r, &hdrs, size & 1);
	check_line_headers(hdrs.data, hdrs.len);
	gw_buf_dispose(&hdrs);
	gw_buf_dispose(&r.out_body);
}

/* Characters a substituted value may not hold raw, by context. */
static int structural(char c, int greedy, int in_query)
{
	if (c == '?' || c == '#' || (unsigned char)c <= 0x20 || c == 0x7f)
		return 1;
	if (c == '/' && !greedy)
		return 1;
	return in_query && (c == '&' || c == '=' || c == '+' || c == ';' || c == '/');
}

/* t (the target without the client's query) must read as template tpl:
 * literal text, and in place of each {name} a value without structural
 * characters. Literals follow values directly, so a value ends at the
 * first occurrence of the next literal. */
static void check_template(const char *tpl, const char *t, size_t tl)
{
	size_t at = 0;
	int in_query = 0;

	while (*tpl) {
		const char *open = strchr(tpl, '{'), *close;
		size_t lit = open ? (size_t)(open - tpl) : strlen(tpl);
		size_t vend;
		int greedy;

		FZ_CHECK(at + lit <= tl && !memcmp(t + at, tpl, lit));
		in_query |= memchr(tpl, '?', lit) != NULL;
		at += lit;
		if (!open)
			break;
		close = strchr(open, '}');
		greedy = !strncmp(open, "{proxy}", 7);
		tpl = close + 1;
		/* The value runs to the next literal's first byte (or the end). */
		vend = at;
		while (vend < tl && (*tpl ? t[vend] != *tpl : 1))
			vend++;
		for (size_t i = at; i < vend; i++)
			FZ_CHECK(!structural(t[i], greedy, in_query));
		at = vend;
	}
	FZ_CHECK(at == tl);
}

static void proxy(gw_rest_t *r, const gw_integration_t *in, gw_str_t path,
		  size_t (*params)[2], size_t np)
{
	gw_str_t query = gw_req_query(r->req);
	gw_buf_t t, norm;
	const char *q;
	size_t tl, pl;

	gw_buf_init(&t);
	gw_buf_init(&norm);
	proxy_target(r, in, &t, path, params, np);
	fz_touch(t.data, t.len);
	for (size_t i = 0; i < t.len; i++)
		FZ_CHECK(t.data[i] != '#' && (unsigned char)t.data[i] > 0x20 && t.data[i] != 0x7f);
	/* The client's query comes last, after '?' or '&', with '#', space,
	 * CTL and bytes >= 0x7f percent-encoded. */
	tl = t.len;
	if (query.len) {
		size_t ql = query.len;

		for (size_t i = 0; i < query.len; i++) {
			unsigned char c = (unsigned char)query.ptr[i];

			ql += c == '#' || c <= 0x20 || c >= 0x7f ? 2 : 0;
		}
		FZ_CHECK(tl > ql);
		tl -= ql + 1;
		FZ_CHECK(t.data[tl] == (strchr(in->path, '?') ? '&' : '?'));
	}
	check_template(in->path, t.data, tl);
	/* The path part never climbs out of the integration's prefix. */
	q = memchr(t.data, '?', tl);
	pl = q ? (size_t)(q - t.data) : tl;
	FZ_CHECK(!normalize_path((gw_str_t){ t.data, pl }, &norm));
	FZ_CHECK(norm.len >= 3 && !memcmp(norm.data, in->path, 3));
	gw_buf_dispose(&t);
	gw_buf_dispose(&norm);
}

static void target(const uint8_t *data, size_t size)
{
	gw_rest_t r;
	gw_buf_t req, again;
	gw_str_t path;
	size_t used = 0, strip, params[MAX_PARAMS][2], np = 0;
	const gw_rest_route_t *rt;
	const char *method = size && (data[0] & 1) ? "POST" : "GET";

	memset(&r, 0, sizeof(r));
	gw_buf_init(&req);
	gw_buf_init(&again);
	gw_buf_append_str(&req, method);
	gw_buf_append_char(&req, ' ');
	gw_buf_append(&req, data, size);
	gw_buf_append_str(&req, " HTTP/1.1\r\nHost: h\r\n\r\n");
	r.req = gw_req_create(MAX_HEAD, 1024);
	if (gw_req_feed(r.req, req.data, req.len, &used) != GW_REQ_DONE)
		goto out;
	if (normalize_path(gw_req_path(r.req), &r.path))
		goto out;
	/* Normalised: rooted, no empty or dot segment, and stable. */
	FZ_CHECK(r.path.len && r.path.data[0] == '/');
	FZ_CHECK(!memmem(r.path.data, r.path.len, "//", 2));
	FZ_CHECK(!normalize_path((gw_str_t){ r.path.data, r.path.len }, &again));
	FZ_CHECK(again.len == r.path.len && !memcmp(again.data, r.path.data, r.path.len));
	path = (gw_str_t){ r.path.data, r.path.len };
	r.api = api_for(cfg, path, &strip);
	if (!r.api)
		goto out;
	FZ_CHECK(strip <= path.len);
	memset(params, 0, sizeof(params));
	rt = gw_rest_match(r.api, method, path.ptr + strip, path.len - strip, params, MAX_PARAMS);
	if (!rt)
		goto out;
	r.route = rt;
	for (size_t i = 0; i < MAX_PARAMS; i++) {
		params[i][0] += strip;
		FZ_CHECK(params[i][0] + params[i][1] <= path.len);
	}
	for (size_t i = 0; i < rt->n_segs; i++)
		np += rt->segs[i].kind != GW_SEG_STATIC;
	if (np > MAX_PARAMS)
		np = MAX_PARAMS;
	if (rt->route.integration->type == GW_INTEG_HTTP_PROXY)
		proxy(&r, rt->route.integration, path, params, np);
out:
	gw_req_destroy(r.req);
	gw_buf_dispose(&r.path);
	gw_buf_dispose(&req);
	gw_buf_dispose(&again);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_memfile_t a, b;
	char dir[] = "/tmp/wsgate-fuzz-rest-XXXXXX", pa[64], pb[64];
	gw_buf_t err;

	fz_quiet();
	/* A folder of two API files: gw_config_load reads *.json in order. */
	fz_memfile_open(&a, "root.json");
	fz_memfile_open(&b, "shop.json");
	fz_memfile_set(&a, ROOT_API, sizeof(ROOT_API) - 1);
	fz_memfile_set(&b, SHOP_API, sizeof(SHOP_API) - 1);
	if (!mkdtemp(dir))
		abort();
	snprintf(pa, sizeof(pa), "%s/a.json", dir);
	snprintf(pb, sizeof(pb), "%s/b.json", dir);
	if (symlink(a.path, pa) || symlink(b.path, pb))
		abort();
	gw_buf_init(&err);
	if (gw_config_load(dir, &cfg, &err)) {
		fprintf(stderr, "fuzz_rest: %.*s\n", (int)err.len, err.data);
		abort();
	}
	unlink(pa);
	unlink(pb);
	rmdir(dir);
	gw_buf_dispose(&err);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		/* The Origin is a header value: up to the first line break. */
		const uint8_t *nl = memchr(data + 1, '\n', size - 1);
		char *origin = NULL;

		/* What http-parser and the head scanner let through. */
		if (nl)
			origin = strndup((const char *)data + 1, (size_t)(nl - data - 1));
		if (origin && !gw_http_field_value(origin, strlen(origin))) {
			free(origin);
			origin = NULL;
		}
		lambda(nl ? nl + 1 : data + 1, nl ? size - (size_t)(nl + 1 - data) : size - 1,
		       (data[0] >> 1) & 1, origin);
		free(origin);
	} else {
		target(data + 1, size - 1);
	}
	return 0;
}
