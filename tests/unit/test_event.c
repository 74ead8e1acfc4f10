/* event.c: CONNECT / MESSAGE / DISCONNECT events, parsed back with jansson
 * and checked field by field; time formats; URL decoding. */
#include "unit.h"

#include "event.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>

#define T_EPOCH_MS 1731324924553ULL /* 2024-11-11T11:35:24.553Z */
#define T_CONNECTED_MS 1731324900007ULL

static gw_api_t test_api(void)
{
	gw_api_t api;

	memset(&api, 0, sizeof(api));
	api.name = "chat-api";
	memcpy(api.api_id, "a1b2c3d4e5", 11);
	api.stage = "prod";
	api.base_path = "/chat";
	return api;
}

static gw_event_ctx_t test_ctx(const gw_api_t *api, const char *route_key)
{
	gw_event_ctx_t c;

	memset(&c, 0, sizeof(c));
	c.api = api;
	c.route_key = route_key;
	c.connection_id = "AbCdEfGh-_123456";
	c.connected_at = T_CONNECTED_MS;
	c.request_id = "req-0001";
	c.request_time = T_EPOCH_MS;
	c.source_ip = "203.0.113.7";
	c.user_agent = "test-agent/1.0 \"quoted\"";
	c.domain_name = "gw.example.com";
	return c;
}

/* Parses the event; reports the text on failure. Caller decrefs. */
static json_t *parse(int line, const gw_buf_t *b)
{
	json_error_t e;
	json_t *root = json_loadb(b->data, b->len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &e);

	unit_checks++;
	if (!root || !json_is_object(root)) {
		fprintf(stderr, "%s:%d: [%s] CHECK FAILED: event (built at line %d) is not a JSON object: %s (line %d col %d)\n",
			__FILE__, __LINE__, unit_current, line, root ? "not an object" : e.text,
			e.line, e.column);
		unit_dump("event", b->data, b->len);
		unit_failures++;
		json_decref(root);
		return NULL;
	}
	return root;
}

/* The string at a dotted path ("requestContext.identity.sourceIp"). */
static json_t *at(json_t *root, const char *path)
{
	char tmp[256], *save = NULL, *tok;
	json_t *v = root;

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (tok = strtok_r(tmp, ".", &save); tok && v; tok = strtok_r(NULL, ".", &save))
		v = json_object_get(v, tok);
	return v;
}

static void check_str_at(int line, json_t *root, const char *path, const char *want,
			 size_t want_len)
{
	json_t *v = at(root, path);

	unit_checks++;
	if (!json_is_string(v) || json_string_length(v) != want_len ||
	    memcmp(json_string_value(v), want, want_len)) {
		fprintf(stderr, "%s:%d: [%s] CHECK FAILED: %s is the string expected\n",
			__FILE__, line, unit_current, path);
		if (json_is_string(v))
			unit_dump("got     ", json_string_value(v), json_string_length(v));
		else
			fprintf(stderr, "    got: %s\n", v ? "a non-string" : "nothing");
		unit_dump("expected", want, want_len);
		unit_failures++;
	}
}

#define CHECK_JSTR(root, path, want) check_str_at(__LINE__, root, path, want, strlen(want))
#define CHECK_JSTRN(root, path, want, n) check_str_at(__LINE__, root, path, want, n)

static void check_int_at(int line, json_t *root, const char *path, long long want)
{
	json_t *v = at(root, path);

	unit_checks++;
	if (!json_is_integer(v) || json_integer_value(v) != want) {
		fprintf(stderr, "%s:%d: [%s] CHECK FAILED: %s is the integer %lld (got %s %lld)\n",
			__FILE__, line, unit_current, path, want,
			v ? (json_is_integer(v) ? "integer" : "non-integer") : "nothing",
			json_is_integer(v) ? (long long)json_integer_value(v) : 0LL);
		unit_failures++;
	}
}

#define CHECK_JINT(root, path, want) check_int_at(__LINE__, root, path, want)

/* The object at path has exactly the keys given (NULL-terminated list). */
static void check_keys_at(int line, json_t *root, const char *path, ...)
{
	json_t *obj = path ? at(root, path) : root;
	size_t want = 0;
	va_list ap;
	const char *k;

	unit_checks++;
	if (!json_is_object(obj)) {
		fprintf(stderr, "%s:%d: [%s] CHECK FAILED: %s is an object\n", __FILE__, line,
			unit_current, path ? path : "(root)");
		unit_failures++;
		return;
	}
	va_start(ap, path);
	while ((k = va_arg(ap, const char *))) {
		want++;
		if (!json_object_get(obj, k)) {
			fprintf(stderr, "%s:%d: [%s] CHECK FAILED: %s has key \"%s\"\n", __FILE__,
				line, unit_current, path ? path : "(root)", k);
			unit_failures++;
		}
	}
	va_end(ap);
	if (json_object_size(obj) != want) {
		char *s = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
		fprintf(stderr, "%s:%d: [%s] CHECK FAILED: %s has exactly %zu keys, has %zu: %s\n",
			__FILE__, line, unit_current, path ? path : "(root)", want,
			json_object_size(obj), s ? s : "?");
		free(s);
		unit_failures++;
	}
}

#define CHECK_KEYS(root, path, ...) check_keys_at(__LINE__, root, path, __VA_ARGS__, (const char *)NULL)

/* The array at path holds exactly these strings, in order. */
static void check_str_array_at(int line, json_t *root, const char *path, size_t n, ...)
{
	json_t *arr = at(root, path);
	va_list ap;

	unit_checks++;
	if (!json_is_array(arr) || json_array_size(arr) != n) {
		fprintf(stderr, "%s:%d: [%s] CHECK FAILED: %s is an array of %zu (got %s of %zu)\n",
			__FILE__, line, unit_current, path, n, arr ? "value" : "nothing",
			json_is_array(arr) ? json_array_size(arr) : 0);
		unit_failures++;
		return;
	}
	va_start(ap, n);
	for (size_t i = 0; i < n; i++) {
		const char *want = va_arg(ap, const char *);
		json_t *v = json_array_get(arr, i);
		if (!json_is_string(v) || strcmp(json_string_value(v), want)) {
			fprintf(stderr, "%s:%d: [%s] CHECK FAILED: %s[%zu] is \"%s\" (got \"%s\")\n",
				__FILE__, line, unit_current, path, i, want,
				json_is_string(v) ? json_string_value(v) : "(non-string)");
			unit_failures++;
		}
	}
	va_end(ap);
}

#define CHECK_JARR(root, path, n, ...) check_str_array_at(__LINE__, root, path, n, __VA_ARGS__)

/* Fields common to every event's requestContext. */
static void check_common_context(int line, json_t *root, const gw_event_ctx_t *c,
				 const char *event_type)
{
	int before = unit_failures;

	CHECK_JSTR(root, "requestContext.routeKey", c->route_key);
	CHECK_JSTR(root, "requestContext.eventType", event_type);
	CHECK_JSTR(root, "requestContext.connectionId", c->connection_id);
	CHECK_JINT(root, "requestContext.connectedAt", (long long)c->connected_at);
	CHECK_JSTR(root, "requestContext.requestId", c->request_id);
	CHECK_JSTR(root, "requestContext.extendedRequestId", c->request_id);
	CHECK_JSTR(root, "requestContext.requestTime", "11/Nov/2024:11:35:24 +0000");
	CHECK_JINT(root, "requestContext.requestTimeEpoch", (long long)T_EPOCH_MS);
	CHECK_JSTR(root, "requestContext.identity.sourceIp", c->source_ip);
	if (c->user_agent)
		CHECK_JSTR(root, "requestContext.identity.userAgent", c->user_agent);
	CHECK_JSTR(root, "requestContext.stage", "prod");
	CHECK_JSTR(root, "requestContext.domainName", c->domain_name);
	CHECK_JSTR(root, "requestContext.apiId", "a1b2c3d4e5");
	CHECK_JSTR(root, "requestContext.messageDirection", "IN");
	if (unit_failures != before)
		fprintf(stderr, "    (common requestContext checks called from line %d)\n", line);
}

#define HDR(n, v) { { n, sizeof(n) - 1 }, { v, sizeof(v) - 1 } }

static void test_connect(void)
{
	gw_api_t api = test_api();
	gw_event_ctx_t c = test_ctx(&api, "$connect");
	static const gw_header_t headers[] = {
		HDR("Host", "gw.example.com"),
		HDR("User-Agent", "test-agent/1.0 \"quoted\""),
		HDR("X-Multi", "one"),
		HDR("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
		HDR("x-multi", "two"),
		HDR("X-MULTI", "three"),
		HDR("X-Unicode", "caf\xc3\xa9 \\ \"q\""),
	};
	static const char query[] =
		"name=J%C3%BCrgen+M&x=a%20b&x=c&flag&empty=&k%3D=v%26w&x=last&&trunc=%2&bad=%zz";
	gw_buf_t b;
	json_t *root;

	gw_buf_init(&b);
	gw_event_connect(&b, &c, headers, sizeof(headers) / sizeof(headers[0]), query,
			 sizeof(query) - 1);
	root = parse(__LINE__, &b);
	if (!root)
		goto out;
	CHECK_KEYS(root, NULL, "headers", "multiValueHeaders", "queryStringParameters",
		   "multiValueQueryStringParameters", "requestContext", "isBase64Encoded");
	CHECK(json_is_false(json_object_get(root, "isBase64Encoded")));

	/* Headers: repeated names grouped case-insensitively, first casing kept. */
	CHECK_KEYS(root, "headers", "Host", "User-Agent", "X-Multi", "Sec-WebSocket-Key",
		   "X-Unicode");
	CHECK_JSTR(root, "headers.Host", "gw.example.com");
	CHECK_JSTR(root, "headers.User-Agent", "test-agent/1.0 \"quoted\"");
	CHECK_JSTR(root, "headers.Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
	CHECK_JSTR(root, "headers.X-Multi", "three"); /* last value */
	CHECK_JSTR(root, "headers.X-Unicode", "caf\xc3\xa9 \\ \"q\"");
	CHECK_KEYS(root, "multiValueHeaders", "Host", "User-Agent", "X-Multi",
		   "Sec-WebSocket-Key", "X-Unicode");
	CHECK_JARR(root, "multiValueHeaders.Host", 1, "gw.example.com");
	CHECK_JARR(root, "multiValueHeaders.X-Multi", 3, "one", "two", "three");
	CHECK_JARR(root, "multiValueHeaders.X-Unicode", 1, "caf\xc3\xa9 \\ \"q\"");

	/* Query: decoded (%XX and '+'), last value wins, all values in multi. */
	CHECK_KEYS(root, "queryStringParameters", "name", "x", "flag", "empty", "k=", "trunc",
		   "bad");
	CHECK_JSTR(root, "queryStringParameters.name", "J\xc3\xbcrgen M");
	CHECK_JSTR(root, "queryStringParameters.x", "last");
	CHECK_JSTR(root, "queryStringParameters.flag", "");
	CHECK_JSTR(root, "queryStringParameters.empty", "");
	CHECK_JSTR(root, "queryStringParameters.trunc", "%2");
	CHECK_JSTR(root, "queryStringParameters.bad", "%zz");
	{
		json_t *q = json_object_get(root, "queryStringParameters");
		json_t *v = json_object_get(q, "k=");
		CHECK(json_is_string(v) && !strcmp(json_string_value(v), "v&w"));
		v = json_object_get(json_object_get(root, "multiValueQueryStringParameters"), "k=");
		CHECK(json_is_array(v) && json_array_size(v) == 1 &&
		      !strcmp(json_string_value(json_array_get(v, 0)), "v&w"));
	}
	CHECK_KEYS(root, "multiValueQueryStringParameters", "name", "x", "flag", "empty", "k=",
		   "trunc", "bad");
	CHECK_JARR(root, "multiValueQueryStringParameters.x", 3, "a b", "c", "last");
	CHECK_JARR(root, "multiValueQueryStringParameters.name", 1, "J\xc3\xbcrgen M");
	CHECK_JARR(root, "multiValueQueryStringParameters.flag", 1, "");

	check_common_context(__LINE__, root, &c, "CONNECT");
	CHECK_KEYS(root, "requestContext", "routeKey", "eventType", "extendedRequestId",
		   "requestTime", "messageDirection", "stage", "connectedAt",
		   "requestTimeEpoch", "identity", "requestId", "domainName", "connectionId",
		   "apiId");
	CHECK_KEYS(root, "requestContext.identity", "sourceIp", "userAgent");
	json_decref(root);
out:
	gw_buf_dispose(&b);
}

static void test_connect_query_names_are_case_sensitive(void)
{
	gw_api_t api = test_api();
	gw_event_ctx_t c = test_ctx(&api, "$connect");
	static const char query[] = "a=1&A=2&a=3";
	gw_buf_t b;
	json_t *root;

	gw_buf_init(&b);
	gw_event_connect(&b, &c, NULL, 0, query, sizeof(query) - 1);
	root = parse(__LINE__, &b);
	if (root) {
		CHECK_KEYS(root, "headers", NULL);
		CHECK_KEYS(root, "multiValueHeaders", NULL);
		CHECK_KEYS(root, "queryStringParameters", "a", "A");
		CHECK_JSTR(root, "queryStringParameters.a", "3");
		CHECK_JSTR(root, "queryStringParameters.A", "2");
		CHECK_JARR(root, "multiValueQueryStringParameters.a", 2, "1", "3");
		CHECK_JARR(root, "multiValueQueryStringParameters.A", 1, "2");
	}
	json_decref(root);
	gw_buf_dispose(&b);
}

static void test_connect_without_query(void)
{
	gw_api_t api = test_api();
	gw_event_ctx_t c = test_ctx(&api, "$connect");
	static const gw_header_t headers[] = { HDR("Host", "h") };
	static const struct {
		const char *q;
		size_t n;
	} cases[] = { { NULL, 0 }, { "", 0 }, { "a=1", 0 } /* length wins */, { "&", 1 },
		      { "&&&", 3 }, { "=v", 2 } /* empty name */ };
	gw_buf_t b;

	gw_buf_init(&b);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *root;

		gw_event_connect(&b, &c, headers, 1, cases[i].q, cases[i].n);
		root = parse(__LINE__, &b);
		if (!root)
			continue;
		CHECK_MSG(!json_object_get(root, "queryStringParameters") &&
				  !json_object_get(root, "multiValueQueryStringParameters"),
			  "case %zu: no query maps expected", i);
		CHECK_KEYS(root, NULL, "headers", "multiValueHeaders", "requestContext",
			   "isBase64Encoded");
		json_decref(root);
	}
	/* No User-Agent: identity has only sourceIp (never a bogus value). */
	c.user_agent = NULL;
	gw_event_connect(&b, &c, headers, 1, NULL, 0);
	{
		json_t *root = parse(__LINE__, &b);
		if (root) {
			json_t *ua = at(root, "requestContext.identity.userAgent");
			CHECK(!ua || json_is_null(ua));
			CHECK_JSTR(root, "requestContext.identity.sourceIp", "203.0.113.7");
			json_decref(root);
		}
	}
	gw_buf_dispose(&b);
}

static void test_connect_many_params(void)
{
	/* More parameters, and more bytes, than the decoder's scratch space:
	 * the event must stay valid JSON and keep the parameters that fit. */
	gw_api_t api = test_api();
	gw_event_ctx_t c = test_ctx(&api, "$connect");
	gw_buf_t q, b;
	json_t *root;

	gw_buf_init(&q);
	gw_buf_init(&b);
	for (int i = 0; i < 300; i++) {
		char tmp[32];
		snprintf(tmp, sizeof(tmp), "%sp%d=", i ? "&" : "", i);
		gw_buf_append_str(&q, tmp);
		for (int j = 0; j < 60; j++)
			gw_buf_append_char(&q, 'v');
	}
	gw_event_connect(&b, &c, NULL, 0, q.data, q.len);
	root = parse(__LINE__, &b);
	if (root) {
		json_t *single = json_object_get(root, "queryStringParameters");
		json_t *multi = json_object_get(root, "multiValueQueryStringParameters");
		CHECK(json_is_object(single) && json_object_size(single) > 0);
		CHECK(json_is_object(multi) && json_object_size(multi) == json_object_size(single));
		CHECK_JINT(root, "requestContext.requestTimeEpoch", (long long)T_EPOCH_MS);
		json_t *p0 = json_object_get(single, "p0");
		CHECK(json_is_string(p0) && json_string_length(p0) == 60);
		json_decref(root);
	}
	gw_buf_dispose(&q);
	gw_buf_dispose(&b);
}

static void test_message_text(void)
{
	gw_api_t api = test_api();
	gw_event_ctx_t c = test_ctx(&api, "sendmessage");
	static const char body[] =
		"{\"action\":\"sendmessage\",\"data\":\"a\0b \\\" \xc3\xa9 \xf0\x9f\x98\x80\n\x01\"}";
	gw_buf_t b;
	json_t *root;

	c.message_id = "msg-42";
	gw_buf_init(&b);
	gw_event_message(&b, &c, body, sizeof(body) - 1, 0);
	root = parse(__LINE__, &b);
	if (root) {
		CHECK_KEYS(root, NULL, "requestContext", "body", "isBase64Encoded");
		CHECK(json_is_false(json_object_get(root, "isBase64Encoded")));
		CHECK_JSTRN(root, "body", body, sizeof(body) - 1);
		check_common_context(__LINE__, root, &c, "MESSAGE");
		CHECK_JSTR(root, "requestContext.messageId", "msg-42");
		CHECK_KEYS(root, "requestContext", "routeKey", "messageId", "eventType",
			   "extendedRequestId", "requestTime", "messageDirection", "stage",
			   "connectedAt", "requestTimeEpoch", "identity", "requestId",
			   "domainName", "connectionId", "apiId");
		json_decref(root);
	}
	/* Empty text body. */
	gw_event_message(&b, &c, "", 0, 0);
	root = parse(__LINE__, &b);
	if (root) {
		CHECK_JSTRN(root, "body", "", 0);
		json_decref(root);
	}
	/* Invalid UTF-8 in a text body still gives valid JSON (U+FFFD). */
	gw_event_message(&b, &c, "x\xffy", 3, 0);
	root = parse(__LINE__, &b);
	if (root) {
		CHECK_JSTR(root, "body", "x\xef\xbf\xbdy");
		json_decref(root);
	}
	gw_buf_dispose(&b);
}

static void test_message_binary(void)
{
	gw_api_t api = test_api();
	gw_event_ctx_t c = test_ctx(&api, "$default");
	unsigned char body[300];
	gw_buf_t b, dec;
	json_t *root;

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (unsigned char)(i * 7 + 3);
	c.message_id = "msg-bin";
	gw_buf_init(&b);
	gw_buf_init(&dec);
	gw_event_message(&b, &c, body, sizeof(body), 1);
	root = parse(__LINE__, &b);
	if (root) {
		json_t *v = json_object_get(root, "body");
		CHECK(json_is_true(json_object_get(root, "isBase64Encoded")));
		CHECK(json_is_string(v));
		if (json_is_string(v)) {
			CHECK_INT_EQ(json_string_length(v), 400);
			CHECK_INT_EQ(gw_base64_decode(&dec, json_string_value(v), json_string_length(v)), 0);
			CHECK_MEM_EQ(dec.data, dec.len, body, sizeof(body));
		}
		check_common_context(__LINE__, root, &c, "MESSAGE");
		CHECK_JSTR(root, "requestContext.messageId", "msg-bin");
		json_decref(root);
	}
	/* Known vector, padded. */
	gw_event_message(&b, &c, "fo", 2, 1);
	root = parse(__LINE__, &b);
	if (root) {
		CHECK_JSTR(root, "body", "Zm8=");
		CHECK(json_is_true(json_object_get(root, "isBase64Encoded")));
		json_decref(root);
	}
	/* Empty binary message. */
	gw_event_message(&b, &c, "", 0, 1);
	root = parse(__LINE__, &b);
	if (root) {
		CHECK_JSTR(root, "body", "");
		json_decref(root);
	}
	gw_buf_dispose(&b);
	gw_buf_dispose(&dec);
}

static void test_disconnect(void)
{
	gw_api_t api = test_api();
	gw_event_ctx_t c = test_ctx(&api, "$disconnect");
	gw_buf_t b;
	json_t *root;

	c.disconnect_code = 1001;
	c.disconnect_reason = "Going \"away\"";
	gw_buf_init(&b);
	/* The buffer is reset first: old content must not leak into the event. */
	gw_buf_append_str(&b, "garbage{");
	gw_event_disconnect(&b, &c);
	root = parse(__LINE__, &b);
	if (root) {
		CHECK_KEYS(root, NULL, "headers", "multiValueHeaders", "requestContext",
			   "isBase64Encoded");
		/* AWS's set, empty values included (issue 15 item 4). */
		CHECK_KEYS(root, "headers", "Host", "x-api-key", "X-Forwarded-For", "x-restapi");
		CHECK_JSTR(root, "headers.Host", "gw.example.com");
		CHECK_JSTR(root, "headers.X-Forwarded-For", "");
		CHECK_JSTR(root, "headers.x-api-key", "");
		CHECK_JARR(root, "multiValueHeaders.Host", 1, "gw.example.com");
		CHECK_JARR(root, "multiValueHeaders.X-Forwarded-For", 1, "");
		CHECK(json_is_false(json_object_get(root, "isBase64Encoded")));
		check_common_context(__LINE__, root, &c, "DISCONNECT");
		CHECK_JINT(root, "requestContext.disconnectStatusCode", 1001);
		CHECK_JSTR(root, "requestContext.disconnectReason", "Going \"away\"");
		CHECK(!at(root, "requestContext.messageId"));
		CHECK_KEYS(root, "requestContext", "routeKey", "disconnectStatusCode",
			   "disconnectReason", "eventType", "extendedRequestId", "requestTime",
			   "messageDirection", "stage", "connectedAt", "requestTimeEpoch",
			   "identity", "requestId", "domainName", "connectionId", "apiId");
		json_decref(root);
	}
	/* The other events carry no disconnect fields. */
	c.disconnect_code = 0;
	c.disconnect_reason = NULL;
	c.message_id = "m";
	gw_event_message(&b, &c, "x", 1, 0);
	root = parse(__LINE__, &b);
	if (root) {
		CHECK(!at(root, "requestContext.disconnectStatusCode"));
		CHECK(!at(root, "requestContext.disconnectReason"));
		json_decref(root);
	}
	gw_buf_dispose(&b);
}

static void test_times(void)
{
	static const struct {
		uint64_t ms;
		const char *clf, *iso;
	} t[] = {
		{ T_EPOCH_MS, "11/Nov/2024:11:35:24 +0000", "2024-11-11T11:35:24.553Z" },
		{ 0, "01/Jan/1970:00:00:00 +0000", "1970-01-01T00:00:00.000Z" },
		{ 5, "01/Jan/1970:00:00:00 +0000", "1970-01-01T00:00:00.005Z" },
		{ 951868799999ULL, "29/Feb/2000:23:59:59 +0000", "2000-02-29T23:59:59.999Z" },
		{ 4102444800000ULL, "01/Jan/2100:00:00:00 +0000", "2100-01-01T00:00:00.000Z" },
		{ 1717200000040ULL, "01/Jun/2024:00:00:00 +0000", "2024-06-01T00:00:00.040Z" },
		{ 1704067199999ULL, "31/Dec/2023:23:59:59 +0000", "2023-12-31T23:59:59.999Z" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char out[64];
		memset(out, 'X', sizeof(out));
		gw_event_clf_time(out, t[i].ms);
		CHECK_STR_EQ(out, t[i].clf);
		memset(out, 'X', sizeof(out));
		gw_event_iso_time(out, t[i].ms);
		CHECK_STR_EQ(out, t[i].iso);
	}
}

static void test_url_decode(void)
{
	static const struct {
		const char *in;
		int form;
		const char *out;
		size_t out_len;
	} t[] = {
#define D(in, form, out) { in, form, out, sizeof(out) - 1 }
		D("", 0, ""),
		D("abc", 0, "abc"),
		D("a%20b", 0, "a b"),
		D("a+b", 1, "a b"),
		D("a+b", 0, "a+b"),          /* '+' is literal outside forms */
		D("%2B", 1, "+"),            /* encoded '+' stays '+' */
		D("%41%42%43", 0, "ABC"),
		D("%c3%A9", 0, "\xc3\xa9"),  /* either hex case */
		D("%00x", 0, "\0x"),         /* NUL decoded, length counts it */
		D("%", 0, "%"),              /* truncated at end */
		D("%2", 0, "%2"),
		D("a%", 1, "a%"),
		D("x%4", 0, "x%4"),
		D("%zz", 0, "%zz"),          /* not hex: kept as-is */
		D("%2z", 0, "%2z"),
		D("%z2", 0, "%z2"),
		D("%%41", 0, "%A"),          /* first '%' literal, then %41 */
		D("%252", 0, "%2"),          /* decoded once only */
		D("100%", 1, "100%"),
#undef D
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char out[64];
		size_t n = strlen(t[i].in);
		size_t got;

		memset(out, '#', sizeof(out));
		got = gw_url_decode(out, t[i].in, n, t[i].form);
		CHECK_MEM_EQ(out, got, t[i].out, t[i].out_len);
		CHECK(got <= n);
	}
	/* n is honoured: "%41" cut to 2 bytes is a truncated escape. */
	{
		char out[4];
		size_t got = gw_url_decode(out, "%41", 2, 0);
		CHECK_MEM_EQ(out, got, "%4", 2);
	}
}

/* Issue 9 item 12: a REST body of control characters is not amplified
 * 6-fold by JSON escaping: it goes base64; text (quotes and all) stays text. */
static void http_event(gw_buf_t *b, const gw_api_t *api, const char *body, size_t len)
{
	gw_http_event_t e;

	memset(&e, 0, sizeof(e));
	e.api = api;
	e.route_key = "POST /up";
	e.method = "POST";
	e.path = (gw_str_t){ "/up", 3 };
	e.query = (gw_str_t){ "", 0 };
	e.body = body;
	e.body_len = len;
	e.source_ip = "203.0.113.7";
	e.request_id = "req-0001";
	e.time = T_EPOCH_MS;
	gw_event_http(b, &e);
}

static void test_http_body_encoding(void)
{
	gw_api_t api = test_api();
	static const char json_text[] = "{\"a\":\"\\\"q\\\"\",\"b\":\"line\nbreak \xc3\xa9\"}";
	static const char quotes[] = "\"\"\"\"\\\\";
	size_t n = 100000, enc;
	char *ctl = malloc(n);
	gw_buf_t b;
	json_t *root;

	memset(ctl, 0x01, n);
	gw_buf_init(&b);
	http_event(&b, &api, ctl, n);
	CHECK_MSG(b.len < n * 4 / 3 + 2048, "event of %zu bytes for %zu control bytes", b.len, n);
	root = parse(__LINE__, &b);
	if (root) {
		const char *v = json_string_value(json_object_get(root, "body"));
		gw_buf_t dec;

		CHECK(json_is_true(json_object_get(root, "isBase64Encoded")));
		gw_buf_init(&dec);
		CHECK(v && !gw_base64_decode(&dec, v, strlen(v)));
		CHECK_MEM_EQ(dec.data, dec.len, ctl, n);
		gw_buf_dispose(&dec);
		json_decref(root);
	}
	CHECK_INT_EQ(gw_event_body_base64(ctl, n, &enc), 1);
	CHECK_INT_EQ(enc, (n + 2) / 3 * 4 + 2);
	/* A few control characters in text: still text. */
	CHECK_INT_EQ(gw_event_body_base64("a\x01" "bcdefghij", 11, &enc), 0);
	CHECK_INT_EQ(enc, 18);
	/* Text full of quotes doubles at most: stays text. */
	CHECK_INT_EQ(gw_event_body_base64(quotes, sizeof(quotes) - 1, &enc), 0);
	CHECK_INT_EQ(enc, 2 * (sizeof(quotes) - 1) + 2);
	http_event(&b, &api, json_text, sizeof(json_text) - 1);
	root = parse(__LINE__, &b);
	if (root) {
		CHECK(json_is_false(json_object_get(root, "isBase64Encoded")));
		CHECK_JSTRN(root, "body", json_text, sizeof(json_text) - 1);
		json_decref(root);
	}
	/* Long header names are lowercased whole, not cut (two names that
	 * differ after 256 bytes stay two keys). */
	{
		char n1[300], n2[300], want[301];
		gw_header_t h[2];
		gw_http_event_t e;

		memset(n1, 'A', sizeof(n1));
		memcpy(n2, n1, sizeof(n2));
		n2[299] = 'B';
		memset(want, 'a', 300);
		want[300] = '\0';
		h[0].name = (gw_str_t){ n1, sizeof(n1) };
		h[0].value = (gw_str_t){ "1", 1 };
		h[1].name = (gw_str_t){ n2, sizeof(n2) };
		h[1].value = (gw_str_t){ "2", 1 };
		memset(&e, 0, sizeof(e));
		e.api = &api;
		e.route_key = "GET /";
		e.method = "GET";
		e.path = (gw_str_t){ "/", 1 };
		e.query = (gw_str_t){ "", 0 };
		e.headers = h;
		e.n_headers = 2;
		e.source_ip = "203.0.113.7";
		e.request_id = "req-0001";
		e.time = T_EPOCH_MS;
		gw_event_http(&b, &e);
		root = parse(__LINE__, &b);
		if (root) {
			json_t *hs = json_object_get(root, "headers");

			CHECK_INT_EQ(json_object_size(hs), 2);
			CHECK(json_is_string(json_object_get(hs, want)));
			json_decref(root);
		}
	}
	/* Not UTF-8: base64. */
	CHECK_INT_EQ(gw_event_body_base64("x\xffy", 3, &enc), 1);
	CHECK_INT_EQ(enc, 6);
	gw_buf_dispose(&b);
	free(ctl);
}

int main(void)
{
	RUN(test_connect);
	RUN(test_connect_query_names_are_case_sensitive);
	RUN(test_connect_without_query);
	RUN(test_connect_many_params);
	RUN(test_message_text);
	RUN(test_message_binary);
	RUN(test_disconnect);
	RUN(test_times);
	RUN(test_url_decode);
	RUN(test_http_body_encoding);
	UNIT_MAIN_END();
}
