/* integration.c: gw_lambda_parse (Lambda proxy responses). */
#include "unit.h"

#include "integration.h"

#include <stdlib.h>

struct parse_case {
	int line;
	const char *what;
	const char *json; /* parsed with its full length (may contain NUL) */
	size_t json_len;
	int rc;           /* 0 or -1 */
	int status;       /* when rc == 0 */
	const char *body; /* NULL: don't check; compared with body_len bytes */
	size_t body_len;
	int binary;
	const char *subprotocol; /* NULL: must be NULL */
};

#define OK(what, json, status, body, binary, proto)                                   \
	{ __LINE__, what, json, sizeof(json) - 1, 0, status, body, sizeof(body) - 1, binary, \
	  proto }
#define FAIL(what, json) { __LINE__, what, json, sizeof(json) - 1, -1, 0, NULL, 0, 0, NULL }

static const struct parse_case cases[] = {
	OK("status and body", "{\"statusCode\":200,\"body\":\"hi\"}", 200, "hi", 0, NULL),
	OK("missing statusCode means 200", "{\"body\":\"x\"}", 200, "x", 0, NULL),
	OK("empty object", "{}", 200, "", 0, NULL),
	OK("statusCode as string", "{\"statusCode\":\"401\",\"body\":\"no\"}", 401, "no", 0, NULL),
	OK("statusCode 100", "{\"statusCode\":100}", 100, "", 0, NULL),
	OK("statusCode 599", "{\"statusCode\":599}", 599, "", 0, NULL),
	OK("null body", "{\"statusCode\":204,\"body\":null}", 204, "", 0, NULL),
	OK("base64 body", "{\"body\":\"AAH/\",\"isBase64Encoded\":true}", 200, "\0\1\xff", 1, NULL),
	OK("empty base64 body", "{\"body\":\"\",\"isBase64Encoded\":true}", 200, "", 1, NULL),
	OK("isBase64Encoded false", "{\"body\":\"AAH/\",\"isBase64Encoded\":false}", 200, "AAH/", 0,
	   NULL),
	OK("isBase64Encoded not a boolean is not true",
	   "{\"body\":\"AAH/\",\"isBase64Encoded\":\"true\"}", 200, "AAH/", 0, NULL),
	OK("subprotocol header",
	   "{\"statusCode\":200,\"headers\":{\"Sec-WebSocket-Protocol\":\"chat.v2\"}}", 200, "", 0,
	   "chat.v2"),
	OK("subprotocol header, lower case",
	   "{\"headers\":{\"x-other\":\"1\",\"sec-websocket-protocol\":\"graphql-ws\"}}", 200, "", 0,
	   "graphql-ws"),
	OK("subprotocol header, odd case",
	   "{\"headers\":{\"SEC-WEBSOCKET-PROTOCOL\":\"p\"},\"body\":\"b\"}", 200, "b", 0, "p"),
	OK("subprotocol not a string is ignored",
	   "{\"headers\":{\"Sec-WebSocket-Protocol\":[\"a\"]}}", 200, "", 0, NULL),
	OK("headers not an object are ignored", "{\"headers\":[1]}", 200, "", 0, NULL),
	OK("object body as compact JSON", "{\"body\":{ \"a\" : [1, 2, {\"b\": null}] }}", 200,
	   "{\"a\":[1,2,{\"b\":null}]}", 0, NULL),
	OK("number body", "{\"body\":42}", 200, "42", 0, NULL),
	OK("boolean body", "{\"body\":true}", 200, "true", 0, NULL),
	OK("array body", "{\"body\": [ \"x\" , 1 ]}", 200, "[\"x\",1]", 0, NULL),
	OK("body with NUL", "{\"body\":\"a\\u0000b\"}", 200, "a\0b", 0, NULL),
	OK("body with only NUL", "{\"body\":\"\\u0000\"}", 200, "\0", 0, NULL),
	OK("unicode body", "{\"body\":\"\\u00e9\\ud83d\\ude00\\\"\"}", 200,
	   "\xc3\xa9\xf0\x9f\x98\x80\"", 0, NULL),
	OK("unknown keys ignored", "{\"statusCode\":200,\"multiValueHeaders\":{},\"cookies\":[]}",
	   200, "", 0, NULL),
	FAIL("statusCode 99", "{\"statusCode\":99}"),
	FAIL("statusCode 600", "{\"statusCode\":600}"),
	FAIL("statusCode negative", "{\"statusCode\":-200}"),
	FAIL("statusCode 2^32+200", "{\"statusCode\":4294967496}"),
	FAIL("statusCode -2^32+200", "{\"statusCode\":-4294967096}"),
	FAIL("statusCode string not a number", "{\"statusCode\":\"abc\"}"),
	FAIL("statusCode string out of range", "{\"statusCode\":\"1000\"}"),
	FAIL("statusCode boolean", "{\"statusCode\":true}"),
	FAIL("statusCode real", "{\"statusCode\":200.5}"),
	FAIL("not JSON", "<html>502 Bad Gateway</html>"),
	FAIL("empty", ""),
	FAIL("truncated JSON", "{\"statusCode\":200,\"body\":\"hi"),
	FAIL("JSON string", "\"hello\""),
	FAIL("JSON array", "[{\"statusCode\":200}]"),
	FAIL("JSON number", "200"),
	FAIL("JSON null", "null"),
	FAIL("invalid base64", "{\"body\":\"not base64!\",\"isBase64Encoded\":true}"),
	FAIL("base64 wrong length", "{\"body\":\"AAH\",\"isBase64Encoded\":true}"),
	FAIL("base64 with NUL", "{\"body\":\"AA\\u0000=\",\"isBase64Encoded\":true}"),
};

static void test_parse_table(void)
{
	gw_buf_t scratch;

	gw_buf_init(&scratch);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *c = &cases[i];
		gw_integ_result_t res;
		const char *error = NULL;
		int rc;
		int before = unit_failures;

		memset(&res, 0x5a, sizeof(res));
		rc = gw_lambda_parse(c->json, c->json_len, &scratch, &res, &error);
		CHECK_INT_EQ(rc, c->rc);
		if (rc == 0 && c->rc == 0) {
			CHECK_INT_EQ(res.status_code, c->status);
			CHECK_MEM_EQ(res.body, res.body_len, c->body, c->body_len);
			CHECK_INT_EQ(res.body_binary, c->binary);
			if (c->subprotocol)
				CHECK_STR_EQ(res.subprotocol, c->subprotocol);
			else
				CHECK(res.subprotocol == NULL);
			CHECK(error == NULL);
		} else if (rc == -1) {
			CHECK(error != NULL && error[0] != '\0');
		} else {
			fprintf(stderr, "    (accepted with statusCode %d)\n", res.status_code);
		}
		if (unit_failures != before)
			fprintf(stderr, "    case \"%s\" (line %d)\n", c->what, c->line);
	}
	gw_buf_dispose(&scratch);
}

static void test_scratch_reuse(void)
{
	/* The scratch buffer is reset per call: no leftovers from the last one. */
	static const char r1[] = "{\"body\":\"first body, quite long\"}";
	static const char r2[] = "{\"body\":\"2\",\"headers\":{\"Sec-WebSocket-Protocol\":\"p2\"}}";
	gw_buf_t scratch;
	gw_integ_result_t res;
	const char *error = NULL;

	gw_buf_init(&scratch);
	CHECK_INT_EQ(gw_lambda_parse(r1, sizeof(r1) - 1, &scratch, &res, &error), 0);
	CHECK_MEM_EQ(res.body, res.body_len, "first body, quite long", 22);
	CHECK_INT_EQ(gw_lambda_parse(r2, sizeof(r2) - 1, &scratch, &res, &error), 0);
	CHECK_MEM_EQ(res.body, res.body_len, "2", 1);
	CHECK_STR_EQ(res.subprotocol, "p2");
	/* The body is followed by a NUL, so text bodies can be used as C strings. */
	CHECK(res.body[res.body_len] == '\0');
	/* A failure after a success leaves no stale subprotocol behind. */
	CHECK_INT_EQ(gw_lambda_parse("[]", 2, &scratch, &res, &error), -1);
	CHECK(res.subprotocol == NULL);
	gw_buf_dispose(&scratch);
}

static void test_large_binary_body(void)
{
	/* A large base64 body decodes exactly. */
	unsigned char raw[3000];
	gw_buf_t json, scratch;
	gw_integ_result_t res;
	const char *error = NULL;

	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i * 131 + 7);
	gw_buf_init(&json);
	gw_buf_init(&scratch);
	gw_buf_append_str(&json, "{\"statusCode\":200,\"isBase64Encoded\":true,\"body\":\"");
	gw_buf_append_base64(&json, raw, sizeof(raw));
	gw_buf_append_str(&json, "\"}");
	CHECK_INT_EQ(gw_lambda_parse(json.data, json.len, &scratch, &res, &error), 0);
	CHECK_INT_EQ(res.body_binary, 1);
	CHECK_MEM_EQ(res.body, res.body_len, raw, sizeof(raw));
	/* The length argument is honoured: a prefix is not valid JSON. */
	CHECK_INT_EQ(gw_lambda_parse(json.data, json.len - 1, &scratch, &res, &error), -1);
	gw_buf_dispose(&json);
	gw_buf_dispose(&scratch);
}

int main(void)
{
	RUN(test_parse_table);
	RUN(test_scratch_reuse);
	RUN(test_large_binary_body);
	UNIT_MAIN_END();
}
