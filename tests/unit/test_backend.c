/* integration.c: gw_lambda_parse (Lambda proxy responses); httpresp.c: the
 * backend response parser and the HTTP rules shared with rest.c; backend.c:
 * completions delivered from the loop's safe point, against a real socket. */
#include "unit.h"
#include "httpreq.h"

#include "core.h"
#include "httpresp.h"
#include "integration.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

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
	OK("statusCode 200", "{\"statusCode\":200}", 200, "", 0, NULL),
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
	/* issue 9 item 17: a subprotocol is one token, or it is dropped */
	OK("subprotocol with CR LF dropped",
	   "{\"headers\":{\"Sec-WebSocket-Protocol\":\"a\\r\\nSet-Cookie: x=1\"}}", 200, "", 0, NULL),
	OK("subprotocol with a space dropped",
	   "{\"headers\":{\"Sec-WebSocket-Protocol\":\"a b\"}}", 200, "", 0, NULL),
	OK("subprotocol list dropped",
	   "{\"headers\":{\"Sec-WebSocket-Protocol\":\"a, b\"}}", 200, "", 0, NULL),
	OK("empty subprotocol dropped",
	   "{\"headers\":{\"Sec-WebSocket-Protocol\":\"\"}}", 200, "", 0, NULL),
	OK("subprotocol with NUL dropped",
	   "{\"headers\":{\"Sec-WebSocket-Protocol\":\"a\\u0000b\"}}", 200, "", 0, NULL),
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
	/* issue 9 item 17: an interim status cannot end an exchange */
	FAIL("statusCode 100", "{\"statusCode\":100}"),
	FAIL("statusCode 101", "{\"statusCode\":101,\"body\":\"x\"}"),
	FAIL("statusCode 199 as string", "{\"statusCode\":\"199\"}"),
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


/* --- httpresp.c ------------------------------------------------------------ */

struct resp_case {
	int line;
	const char *what;
	const char *data;
	size_t len;
	int head;                 /* the request was HEAD */
	enum gw_resp_status want; /* after feeding everything (and EOF if eof) */
	int eof;
	int status;               /* when DONE */
	const char *body;         /* when DONE */
	size_t n_headers;         /* when DONE */
};

#define R(what, data, head, want, eof, status, body, nh) \
	{ __LINE__, what, data, sizeof(data) - 1, head, want, eof, status, body, nh }

static const struct resp_case resp_cases[] = {
	R("plain", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhi", 0, GW_RESP_DONE, 0,
	  200, "hi", 2),
	R("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", 0,
	  GW_RESP_DONE, 0, 200, "hi", 1),
	R("until EOF", "HTTP/1.1 200 OK\r\n\r\nabc", 0, GW_RESP_DONE, 1, 200, "abc", 0),
	R("interim answers skipped",
	  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
	  "HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx", 0, GW_RESP_DONE, 0, 201, "x", 1),
	R("empty values", "HTTP/1.1 200 OK\r\nA:\r\nB: \r\nC: 1\r\nContent-Length: 0\r\n\r\n", 0,
	  GW_RESP_DONE, 0, 200, "", 4),
	R("204 has no body", "HTTP/1.1 204 No Content\r\n\r\n", 0, GW_RESP_DONE, 0, 204, "", 0),
	/* issue 9: header names that are not tokens (http-parser lets spaces
	 * through) would be written out again as they are */
	R("space in a name", "HTTP/1.1 200 OK\r\nX Y: sp\r\nContent-Length: 0\r\n\r\n", 0,
	  GW_RESP_BAD, 0, 0, NULL, 0),
	R("space before the colon",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n", 0,
	  GW_RESP_BAD, 0, 0, NULL, 0),
	R("vertical tab in a value", "HTTP/1.1 200 OK\r\nX: a\x0b b\r\nContent-Length: 0\r\n\r\n",
	  0, GW_RESP_BAD, 0, 0, NULL, 0),
	R("NUL in a value", "HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 0\r\n\r\n", 0,
	  GW_RESP_BAD, 0, 0, NULL, 0),
	R("empty name", "HTTP/1.1 200 OK\r\n: empty\r\nContent-Length: 0\r\n\r\n", 0, GW_RESP_BAD,
	  0, 0, NULL, 0),
	/* issue 9: trailers are not headers (they come after the checks) */
	R("trailers are not headers",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n"
	  "Set-Cookie: evil=1\r\n\r\n", 0, GW_RESP_DONE, 0, 200, "x", 1),
	/* issue 9: the gateway never asked to switch protocols */
	R("101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
	  0, GW_RESP_BAD, 0, 0, NULL, 0),
	R("status 099", "HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n", 0, GW_RESP_BAD, 0, 0, NULL, 0),
	R("status 600", "HTTP/1.1 600 X\r\nContent-Length: 0\r\n\r\n", 0, GW_RESP_BAD, 0, 0, NULL, 0),
	R("status 999", "HTTP/1.1 999 X\r\nContent-Length: 0\r\n\r\n", 0, GW_RESP_BAD, 0, 0, NULL, 0),
	R("status 599", "HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n", 0, GW_RESP_DONE, 0, 599, "", 1),
	R("101 alone", "HTTP/1.1 101 Switching Protocols\r\n\r\n", 0, GW_RESP_BAD, 0, 0, NULL, 0),
	/* issue 9: an answer to HEAD ends at its head */
	R("HEAD with Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", 1,
	  GW_RESP_DONE, 0, 200, "", 1),
	R("HEAD after 100 Continue",
	  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", 1,
	  GW_RESP_DONE, 0, 200, "", 1),
	/* sizes a hostile backend chooses */
	R("Content-Length over 2^64",
	  "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551617\r\n\r\n", 0, GW_RESP_BAD, 0, 0,
	  NULL, 0),
	R("two Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
	  0, GW_RESP_BAD, 0, 0, NULL, 0),
	R("Content-Length and chunked",
	  "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
	  0, GW_RESP_BAD, 0, 0, NULL, 0),
	R("chunk size over 2^64",
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nx", 0,
	  GW_RESP_BAD, 0, 0, NULL, 0),
	R("giant Content-Length, short body then EOF",
	  "HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\nabc", 0, GW_RESP_BAD, 1, 0,
	  NULL, 0),
	R("nothing", "", 0, GW_RESP_BAD, 1, 0, NULL, 0),
	R("not HTTP", "SSH-2.0-OpenSSH\r\n", 0, GW_RESP_BAD, 0, 0, NULL, 0),
};

static enum gw_resp_status feed_case(gw_resp_t *r, const struct resp_case *c, size_t step,
				     int *extra)
{
	enum gw_resp_status st = GW_RESP_MORE;
	size_t off = 0;

	gw_resp_reset(r);
	gw_resp_set_head(r, c->head);
	*extra = 0;
	while (off < c->len && st == GW_RESP_MORE) {
		size_t n = c->len - off < step ? c->len - off : step;

		st = gw_resp_feed(r, c->data + off, n, extra);
		off += n;
	}
	if (st == GW_RESP_MORE && c->eof)
		st = gw_resp_feed(r, "", 0, extra);
	return st;
}

static void test_resp_table(void)
{
	gw_resp_t *r = gw_resp_create(1 << 20);
	/* Whole, then byte by byte: the same outcome either way. */
	static const size_t steps[] = { (size_t)-1, 1, 7 };

	for (size_t i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
		const struct resp_case *c = &resp_cases[i];

		for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			int before = unit_failures, extra;
			enum gw_resp_status st = feed_case(r, c, steps[k], &extra);

			CHECK_INT_EQ(st, c->want);
			if (st == GW_RESP_DONE && c->want == GW_RESP_DONE) {
				gw_str_t b = gw_resp_body(r);

				CHECK_INT_EQ(gw_resp_status_code(r), c->status);
				CHECK_MEM_EQ(b.ptr, b.len, c->body, strlen(c->body));
				CHECK_INT_EQ(gw_resp_header_count(r), c->n_headers);
				CHECK_INT_EQ(extra, 0);
			}
			if (unit_failures != before)
				fprintf(stderr, "    case \"%s\" (line %d), step %zu\n", c->what,
					c->line, steps[k]);
		}
	}
	gw_resp_destroy(r);
}

static void test_resp_limits(void)
{
	gw_resp_t *r = gw_resp_create(1000);
	gw_buf_t b;
	int extra;

	gw_buf_init(&b);
	/* A body over the limit, announced or not. */
	gw_buf_append_str(&b, "HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n");
	for (int i = 0; i < 1001; i++)
		gw_buf_append_char(&b, 'x');
	CHECK_INT_EQ(gw_resp_feed(r, b.data, b.len, &extra), GW_RESP_TOO_LARGE);
	gw_resp_reset(r);
	gw_buf_reset(&b);
	gw_buf_append_str(&b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 300; i++)
		gw_buf_append_str(&b, "4\r\nabcd\r\n");
	CHECK_INT_EQ(gw_resp_feed(r, b.data, b.len, &extra), GW_RESP_TOO_LARGE);
	/* A header flood: at most 100 headers kept, and the head is bounded. */
	gw_resp_reset(r);
	gw_buf_reset(&b);
	gw_buf_append_str(&b, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 300; i++)
		gw_buf_append_str(&b, "X-Flood: 1\r\n");
	gw_buf_append_str(&b, "Content-Length: 0\r\n\r\n");
	CHECK_INT_EQ(gw_resp_feed(r, b.data, b.len, &extra), GW_RESP_DONE);
	CHECK_INT_EQ(gw_resp_header_count(r), 100);
	{
		const char *n, *v;

		gw_resp_header(r, 99, &n, &v);
		CHECK_STR_EQ(n, "X-Flood");
		CHECK_STR_EQ(v, "1");
	}
	/* Names and values stay apart, empty values included. */
	gw_resp_reset(r);
	{
		static const char e[] = "HTTP/1.1 200 OK\r\nA:\r\nB: \r\nC: 1\r\nContent-Length: 0\r\n\r\n";
		const char *n, *v;

		CHECK_INT_EQ(gw_resp_feed(r, e, sizeof(e) - 1, &extra), GW_RESP_DONE);
		gw_resp_header(r, 0, &n, &v);
		CHECK_STR_EQ(n, "A");
		CHECK_STR_EQ(v, "");
		gw_resp_header(r, 1, &n, &v);
		CHECK_STR_EQ(n, "B");
		CHECK_STR_EQ(v, "");
		gw_resp_header(r, 2, &n, &v);
		CHECK_STR_EQ(n, "C");
		CHECK_STR_EQ(v, "1");
	}
	gw_resp_reset(r);
	gw_buf_reset(&b);
	gw_buf_append_str(&b, "HTTP/1.1 200 OK\r\nX-Big: ");
	for (int i = 0; i < 200000; i++)
		gw_buf_append_char(&b, 'a');
	CHECK_INT_EQ(gw_resp_feed(r, b.data, b.len, &extra), GW_RESP_BAD);
	/* Endless interim answers are bounded by the call's timeout, not here;
	 * they keep no memory. */
	gw_resp_reset(r);
	for (int i = 0; i < 10000; i++)
		CHECK(gw_resp_feed(r, "HTTP/1.1 100 Continue\r\nX: y\r\n\r\n", 31, &extra) ==
		      GW_RESP_MORE);
	CHECK(gw_resp_header_count(r) <= 1);
	gw_buf_dispose(&b);
	gw_resp_destroy(r);
}

static void test_resp_memory(void)
{
	/* A pooled connection keeps its parser between calls: one large
	 * answer must not leave megabytes allocated for the connection's life. */
	gw_resp_t *r = gw_resp_create(4 << 20);
	gw_buf_t b;
	int extra;

	gw_buf_init(&b);
	gw_buf_append_str(&b, "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\nX-Big: ");
	for (int i = 0; i < 60000; i++)
		gw_buf_append_char(&b, 'h');
	gw_buf_append_str(&b, "\r\n\r\n");
	for (int i = 0; i < 2000000; i++)
		gw_buf_append_char(&b, 'x');
	CHECK_INT_EQ(gw_resp_feed(r, b.data, b.len, &extra), GW_RESP_DONE);
	CHECK(gw_resp_body_buf(r)->cap >= 2000000);
	gw_resp_reset(r);
	CHECK_MSG(gw_resp_body_buf(r)->cap <= (64 << 10), "kept %zu bytes",
		  gw_resp_body_buf(r)->cap);
	/* Small answers keep their buffer (no allocation per call). */
	CHECK_INT_EQ(gw_resp_feed(r, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 41, &extra),
		     GW_RESP_DONE);
	{
		const char *data = gw_resp_body_buf(r)->data;

		gw_resp_reset(r);
		CHECK(gw_resp_body_buf(r)->data == data);
	}
	gw_buf_dispose(&b);
	gw_resp_destroy(r);
}

static void test_http_rules(void)
{
	static const char tchars[] = "!#$%&'*+-.^_`|~09azAZ";

	CHECK(gw_http_is_token(tchars, sizeof(tchars) - 1));
	CHECK(!gw_http_is_token("", 0));
	for (int c = 0; c < 256; c++) {
		char ch = (char)c;
		int want = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			   (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));

		CHECK_MSG(gw_http_is_token(&ch, 1) == want, "token char 0x%02x", c);
		want = c == '\t' || (c >= 0x20 && c != 0x7f);
		CHECK_MSG(gw_http_field_value(&ch, 1) == want, "value char 0x%02x", c);
	}
	CHECK(gw_http_field_value("", 0));
	CHECK(gw_http_field_value("a b\tc \xc3\xa9", 8));
	CHECK(!gw_http_field_value("a\r\nb", 4));
	for (int s = 100; s < 600; s++)
		CHECK_MSG(gw_http_status_allows_body(s) == (s >= 200 && s != 204 && s != 304),
			  "status %d", s);
	static const char *const own[] = { "Host", "host", "Expect", "Connection", "Upgrade",
		"Content-Length", "Transfer-Encoding", "TE", "Keep-Alive", "Proxy-Connection",
		"X-Forwarded-For", "x-forwarded-for", "X-Forwarded-Proto", "X-Forwarded-Host",
		"X-Forwarded-Port", "Forwarded", "X-Amzn-RequestId", "X-Wsgate-Connection-Id",
		"x-wsgate-event-type", "X-WSGATE-", "X-Wsgate-Anything", "Transfer-Encoding ",
		"X Y", "", "A:B", NULL };
	for (const char *const *h = own; *h; h++)
		CHECK_MSG(!gw_http_forwardable_header(*h, strlen(*h)), "%s", *h);
	static const char *const fwd[] = { "Cookie", "Authorization", "User-Agent",
		"Sec-WebSocket-Protocol", "X-Wsgate", "X-Forwarded", "X-Amzn-Trace-Id", "Origin", NULL };
	for (const char *const *h = fwd; *h; h++)
		CHECK_MSG(gw_http_forwardable_header(*h, strlen(*h)), "%s", *h);
}

/* --- backend.c: completions delivered after the I/O batch ---------------- */

/* A backend in a thread: accepts n connections, reads one request on each,
 * then (once told to) answers all of them at once with the request's path
 * as the body, so that both answers land in one epoll batch. */
struct srv {
	int lfd, port, n;
	int fds[4];
	int received, go, answered, stop; /* atomics */
	pthread_t thread;
};

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	char paths[4][16];

	for (int i = 0; i < s->n; i++) {
		char req[1024];
		size_t got = 0;

		s->fds[i] = accept(s->lfd, NULL, NULL);
		while (got < sizeof(req) - 1) {
			ssize_t k = read(s->fds[i], req + got, sizeof(req) - 1 - got);
			if (k <= 0)
				break;
			got += (size_t)k;
			req[got] = 0;
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[got] = 0;
		sscanf(req, "GET /%15[a-z] ", paths[i]);
		__atomic_add_fetch(&s->received, 1, __ATOMIC_SEQ_CST);
	}
	while (!__atomic_load_n(&s->go, __ATOMIC_SEQ_CST))
		usleep(1000);
	for (int i = 0; i < s->n; i++) {
		char resp[128];
		int len = snprintf(resp, sizeof(resp),
				   "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
				   strlen(paths[i]), paths[i]);
		if (write(s->fds[i], resp, (size_t)len) != len)
			break;
	}
	__atomic_store_n(&s->answered, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST))
		usleep(1000);
	for (int i = 0; i < s->n; i++)
		close(s->fds[i]);
	return NULL;
}

static void srv_start(struct srv *s, int n)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	memset(s, 0, sizeof(*s));
	s->n = n;
	s->lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(!bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK(!listen(s->lfd, 8));
	CHECK(!getsockname(s->lfd, (struct sockaddr *)&sa, &sl));
	s->port = ntohs(sa.sin_port);
	CHECK(!pthread_create(&s->thread, NULL, srv_main, s));
}

static void srv_stop(struct srv *s)
{
	__atomic_store_n(&s->go, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(s->thread, NULL);
	close(s->lfd);
}

static gw_worker_t *fake_gw(void)
{
	struct lws_context_creation_info info;
	gw_worker_t *gw = calloc(1, sizeof(*gw));

	lws_set_log_level(0, NULL);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	gw->ctx = lws_create_context(&info);
	gw->loop = gw_loop_create();
	CHECK(gw->ctx != NULL && gw->loop != NULL);
	gw->be = gw_backend_create(gw);
	return gw;
}

static void fake_gw_free(gw_worker_t *gw)
{
	gw_backend_destroy(gw->be);
	gw_loop_destroy(gw->loop);
	lws_context_destroy(gw->ctx);
	free(gw);
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One round of the loop, as the gateway runs it: an epoll batch, then the
 * safe point. */
static void pump_once(gw_worker_t *gw, int wait_ms)
{
	struct pollfd p = { .fd = gw_loop_fd(gw->loop), .events = POLLIN };

	poll(&p, 1, wait_ms);
	gw_loop_drain(gw->loop);
	gw_defer_run(gw);
}

static void pump_until(gw_worker_t *gw, const int *flag, int want, int ms)
{
	uint64_t end = ms_now() + (uint64_t)ms;

	while (__atomic_load_n(flag, __ATOMIC_SEQ_CST) < want && ms_now() < end)
		pump_once(gw, 5);
}

struct rec {
	gw_backend_t *be;
	int delivered;
	int in_io;     /* the backend's I/O handler was on the stack */
	int in_start;  /* gw_backend_call/local was on the stack */
	int status;
	char body[16];
	gw_call_t **cancel; /* cancels this other call when delivered */
};

static int starting;

static void on_done(void *user, const gw_http_resp_t *r)
{
	struct rec *rec = user;

	rec->delivered++;
	rec->in_io = gw_backend_in_io(rec->be);
	rec->in_start = starting;
	rec->status = r->outcome == GW_CALL_OK ? r->status : -1;
	snprintf(rec->body, sizeof(rec->body), "%.*s", (int)r->body_len, r->body ? r->body : "");
	if (rec->cancel && *rec->cancel) {
		gw_backend_cancel(*rec->cancel);
		*rec->cancel = NULL;
	}
}

static gw_endpoint_t *endpoint(gw_worker_t *gw, int port)
{
	gw_endpoint_opts_t eo;
	char err[128];

	memset(&eo, 0, sizeof(eo));
	eo.host = "127.0.0.1";
	eo.address = "127.0.0.1";
	eo.port = port;
	eo.max_connections = 2;
	eo.max_queue = 4;
	return gw_backend_endpoint(gw->be, &eo, err, sizeof(err));
}

static gw_call_t *start(gw_worker_t *gw, gw_endpoint_t *ep, const char *path,
			struct rec *rec)
{
	char req[128];
	int len = snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	gw_call_t *c;

	rec->be = gw->be;
	starting = 1;
	c = gw_backend_call(gw->be, ep, req, (size_t)len, 5000, "t", on_done, rec);
	starting = 0;
	return c;
}

/* Two answers read in one epoll batch: each is delivered once, after the
 * batch (the backend's handler is off the stack), each with its own body
 * (the connection's parser may be reused before the callback runs). */
static void test_issue10_item1_completion_after_batch(void)
{
	gw_worker_t *gw = fake_gw();
	struct rec a = { 0 }, b = { 0 };
	gw_endpoint_t *ep;
	struct srv s;

	srv_start(&s, 2);
	ep = endpoint(gw, s.port);
	CHECK(ep != NULL);
	start(gw, ep, "alpha", &a);
	start(gw, ep, "beta", &b);
	pump_until(gw, &s.received, 2, 3000);
	CHECK_INT_EQ(s.received, 2);
	__atomic_store_n(&s.go, 1, __ATOMIC_SEQ_CST);
	pump_until(gw, &s.answered, 1, 3000);
	usleep(30000);
	pump_once(gw, 0);
	for (int i = 0; i < 100 && a.delivered + b.delivered < 2; i++)
		pump_once(gw, 10);
	CHECK_INT_EQ(a.delivered, 1);
	CHECK_INT_EQ(b.delivered, 1);
	CHECK_INT_EQ(a.in_io, 0);
	CHECK_INT_EQ(b.in_io, 0);
	CHECK_INT_EQ(a.status, 200);
	CHECK_STR_EQ(a.body, "alpha");
	CHECK_STR_EQ(b.body, "beta");
	CHECK_INT_EQ(gw_backend_inflight(gw->be), 0);
	fake_gw_free(gw);
	srv_stop(&s);
}

/* Two answers read in one batch; whichever is delivered first cancels the
 * other, completed but not yet delivered: it is dropped. */
static void test_issue10_item1_cancel_completed(void)
{
	gw_worker_t *gw = fake_gw();
	struct rec a = { 0 }, b = { 0 };
	gw_call_t *ca, *cb;
	gw_endpoint_t *ep;
	struct srv s;

	srv_start(&s, 2);
	ep = endpoint(gw, s.port);
	ca = start(gw, ep, "alpha", &a);
	cb = start(gw, ep, "beta", &b);
	a.cancel = &cb;
	b.cancel = &ca;
	pump_until(gw, &s.received, 2, 3000);
	__atomic_store_n(&s.go, 1, __ATOMIC_SEQ_CST);
	pump_until(gw, &s.answered, 1, 3000);
	usleep(30000);
	for (int i = 0; i < 20; i++)
		pump_once(gw, 5);
	CHECK_INT_EQ(a.delivered + b.delivered, 1);
	CHECK_INT_EQ(gw_backend_inflight(gw->be), 0);
	fake_gw_free(gw);
	srv_stop(&s);
}

/* A local (MOCK) answer is delivered at the safe point, not from inside
 * gw_backend_local; cancelled before that, it is never delivered. */
static void test_issue10_item1_local(void)
{
	gw_worker_t *gw = fake_gw();
	struct rec a = { 0 }, b = { 0 };
	gw_call_t *cb;

	a.be = b.be = gw->be;
	starting = 1;
	gw_backend_local(gw->be, 201, "m", 1, on_done, &a);
	cb = gw_backend_local(gw->be, 202, "n", 1, on_done, &b);
	starting = 0;
	CHECK_INT_EQ(a.delivered, 0);
	gw_backend_cancel(cb);
	for (int i = 0; i < 20 && !a.delivered; i++)
		pump_once(gw, 1);
	CHECK_INT_EQ(a.delivered, 1);
	CHECK_INT_EQ(a.in_start, 0);
	CHECK_INT_EQ(a.status, 201);
	CHECK_STR_EQ(a.body, "m");
	CHECK_INT_EQ(b.delivered, 0);
	CHECK_INT_EQ(gw_backend_inflight(gw->be), 0);
	fake_gw_free(gw);
}

/* Pools are keyed by where they connect and how they check the peer
 * (address, port, TLS, CA, and the TLS name with TLS), not by which
 * integration of which configuration asked: a later configuration finds
 * the same pools. Limits are the largest asked for. */
static void test_issue10_item5_pools_keyed(void)
{
	gw_worker_t *gw = fake_gw();
	gw_endpoint_opts_t a, o;
	gw_endpoint_t *ea, *ed;
	unsigned mc = 0, mq = 0;
	char err[128];

	memset(&a, 0, sizeof(a));
	a.host = "a.example";
	a.address = "127.0.0.1";
	a.port = 8080;
	a.max_connections = 2;
	a.max_queue = 1;
	ea = gw_backend_endpoint(gw->be, &a, err, sizeof(err));
	CHECK(ea != NULL);
	CHECK(gw_backend_find(gw->be, &a) == ea);
	/* Another Host, other limits: the same pool (plain HTTP). */
	o = a;
	o.host = "b.example";
	o.max_connections = 8;
	o.max_queue = 5;
	CHECK(gw_backend_endpoint(gw->be, &o, err, sizeof(err)) == ea);
	CHECK(gw_backend_find(gw->be, &o) == ea);
	gw_endpoint_limits(ea, &mc, &mq);
	CHECK_INT_EQ(mc, 8);
	CHECK_INT_EQ(mq, 5);
	/* Smaller limits later do not shrink it. */
	CHECK(gw_backend_endpoint(gw->be, &a, err, sizeof(err)) == ea);
	gw_endpoint_limits(ea, &mc, &mq);
	CHECK_INT_EQ(mc, 8);
	CHECK_INT_EQ(mq, 5);
	/* Another port: another pool. */
	o = a;
	o.port = 8081;
	CHECK(gw_backend_find(gw->be, &o) == NULL);
	CHECK(gw_backend_endpoint(gw->be, &o, err, sizeof(err)) != ea);
	/* TLS: another pool, and the name checked is part of the key. */
	o = a;
	o.tls = 1;
	ed = gw_backend_endpoint(gw->be, &o, err, sizeof(err));
	CHECK(ed != NULL && ed != ea);
	o.max_connections = 3;
	CHECK(gw_backend_endpoint(gw->be, &o, err, sizeof(err)) == ed);
	o.host = "b.example";
	CHECK(gw_backend_find(gw->be, &o) == NULL);
	CHECK(gw_backend_endpoint(gw->be, &o, err, sizeof(err)) != ed);
	fake_gw_free(gw);
}

int main(void)
{
	RUN(test_parse_table);
	RUN(test_scratch_reuse);
	RUN(test_large_binary_body);
	RUN(test_resp_table);
	RUN(test_resp_limits);
	RUN(test_resp_memory);
	RUN(test_http_rules);
	RUN(test_issue10_item1_completion_after_batch);
	RUN(test_issue10_item1_cancel_completed);
	RUN(test_issue10_item1_local);
	RUN(test_issue10_item5_pools_keyed);
	UNIT_MAIN_END();
}
