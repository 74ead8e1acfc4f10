/* httpreq.c: REST request parsing, strict field syntax (issue 9 item 14)
 * and linear cost when a head arrives a byte at a time (item 11). */
#include "unit.h"

#include "httpreq.h"

#include <stdlib.h>
#include <time.h>

#define MAX_HEAD 16384
#define MAX_BODY 65536

static int str_is(gw_str_t s, const char *want)
{
	return s.ptr && s.len == strlen(want) && !memcmp(s.ptr, want, s.len);
}

/* Feeds req in pieces of `step` bytes (0: one piece); the final status and
 * the bytes used in all. */
static enum gw_req_status feed(gw_req_t *r, const char *req, size_t len, size_t step,
			       size_t *total)
{
	enum gw_req_status st = GW_REQ_MORE;
	size_t off = 0;

	*total = 0;
	while (off < len) {
		size_t n = step && len - off > step ? step : len - off, used = 0;

		st = gw_req_feed(r, req + off, n, &used);
		*total += used;
		if (st != GW_REQ_MORE)
			break;
		off += n;
	}
	return st;
}

static void test_valid_requests(void)
{
	static const char post[] = "POST /items/7?x=1 HTTP/1.1\r\n"
				   "Host: api.example.com\r\n"
				   "Content-Type: text/plain\r\n"
				   "X-Tab:\tvalue\twith tab\r\n"
				   "X-Latin: caf\xc3\xa9\r\n"
				   "X-Empty:\r\n"
				   "Content-Length: 5\r\n"
				   "\r\n"
				   "hello";
	static const size_t steps[] = { 0, 1, 2, 7 };

	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		gw_req_t *r = gw_req_create(MAX_HEAD, MAX_BODY);
		size_t used;
		enum gw_req_status st = feed(r, post, sizeof(post) - 1, steps[s], &used);

		CHECK_MSG(st == GW_REQ_DONE, "step %zu: status %d", steps[s], st);
		CHECK_INT_EQ(used, sizeof(post) - 1);
		CHECK_STR_EQ(gw_req_method(r), "POST");
		CHECK(str_is(gw_req_path(r), "/items/7"));
		CHECK(str_is(gw_req_query(r), "x=1"));
		CHECK(str_is(gw_req_get(r, "x-tab"), "value\twith tab"));
		CHECK(str_is(gw_req_get(r, "X-Latin"), "caf\xc3\xa9"));
		CHECK(gw_req_get(r, "X-Empty").ptr && !gw_req_get(r, "X-Empty").len);
		CHECK_INT_EQ(gw_req_header_count(r), 6);
		CHECK_MEM_EQ(gw_req_body(r)->data, gw_req_body(r)->len, "hello", 5);
		gw_req_destroy(r);
	}
}

static void test_chunked_and_pipelined(void)
{
	static const char two[] = "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "3\r\nabc\r\n0\r\n\r\n"
				  "\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
	gw_req_t *r = gw_req_create(MAX_HEAD, MAX_BODY);
	size_t used = 0, first;

	CHECK_INT_EQ(gw_req_feed(r, two, sizeof(two) - 1, &used), GW_REQ_DONE);
	CHECK_MEM_EQ(gw_req_body(r)->data, gw_req_body(r)->len, "abc", 3);
	first = used;
	CHECK(first < sizeof(two) - 1);
	/* The next one starts after an empty line (RFC 9112 §2.2). */
	gw_req_reset(r);
	CHECK_INT_EQ(gw_req_feed(r, two + first, sizeof(two) - 1 - first, &used), GW_REQ_DONE);
	CHECK_STR_EQ(gw_req_method(r), "GET");
	CHECK(str_is(gw_req_path(r), "/b"));
	CHECK_INT_EQ(first + used, sizeof(two) - 1);
	gw_req_destroy(r);
}

/* Heads a proxy must refuse: they pass http-parser 2.9, and a lenient
 * backend could read them differently than the gateway did. */
static const char *const bad_heads[] = {
	/* item 14: whitespace before the colon */
	"GET / HTTP/1.1\r\nHost : evil\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX-A\t: 1\r\n\r\n",
	/* names that are no tokens */
	"GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX Y: sp\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX\x01Y: ctl\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX-\xc3\xa9: non-ascii\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX(Y): sep\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nNo colon\r\n\r\n",
	/* values: NUL, CTLs but HTAB, DEL, bare CR, bare LF */
	"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x0b" "b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7f" "b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX-A: b\n\r\n",
	/* obs-fold, and whitespace before the first field */
	"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n",
	"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
	/* framing (§6.3) */
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
	/* Host (RFC 9112 §3.2) */
	"GET / HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
	/* request lines: HTTP/0.9, HTTP/2 preface, odd targets and versions */
	"GET /\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a\x0c" "b HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a%4 HTTP/1.1\r\nHost: h\r\n\r\n",
	"G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n",
	"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
};

static void test_item14_bad_heads(void)
{
	static const size_t steps[] = { 0, 1 };

	for (size_t i = 0; i < sizeof(bad_heads) / sizeof(bad_heads[0]); i++) {
		for (size_t s = 0; s < 2; s++) {
			gw_req_t *r = gw_req_create(MAX_HEAD, MAX_BODY);
			size_t used;
			enum gw_req_status st = feed(r, bad_heads[i], strlen(bad_heads[i]), steps[s], &used);

			CHECK_MSG(st == GW_REQ_BAD, "case %zu (step %zu): status %d, expected GW_REQ_BAD", i,
				  steps[s], st);
			if (st != GW_REQ_BAD)
				unit_dump("request", bad_heads[i], strlen(bad_heads[i]));
			/* and it stays bad */
			CHECK_INT_EQ(gw_req_feed(r, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 27, &used), GW_REQ_BAD);
			gw_req_destroy(r);
		}
	}
}

static void test_accepted_edge_cases(void)
{
	static const char *const ok[] = {
		"GET / HTTP/1.0\r\n\r\n", /* no Host needed in 1.0 */
		"GET / HTTP/1.1\r\nHost:\r\n\r\n", /* empty Host: no authority */
		"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
		"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /a%2Fb?q=%41 HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
		/* framing is sound; the caller answers 501 to gzip */
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3 \r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: h\r\nX-!#$%&'*+-.^_`|~09az: v\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		gw_req_t *r = gw_req_create(MAX_HEAD, MAX_BODY);
		size_t used;
		enum gw_req_status st = feed(r, ok[i], strlen(ok[i]), 1, &used);

		CHECK_MSG(st == GW_REQ_DONE, "case %zu: status %d", i, st);
		gw_req_destroy(r);
	}
}

static void test_limits(void)
{
	gw_buf_t req;
	gw_req_t *r;
	size_t used;

	/* More header lines than kept, and a head over its limit: 431. */
	gw_buf_init(&req);
	gw_buf_append_str(&req, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 0; i < 150; i++) {
		char line[32];

		snprintf(line, sizeof(line), "X-H%d: %d\r\n", i, i);
		gw_buf_append_str(&req, line);
	}
	gw_buf_append_str(&req, "\r\n");
	r = gw_req_create(MAX_HEAD, MAX_BODY);
	CHECK_INT_EQ(feed(r, req.data, req.len, 0, &used), GW_REQ_HEAD_TOO_LARGE);
	gw_req_destroy(r);
	r = gw_req_create(256, MAX_BODY);
	CHECK_INT_EQ(feed(r, req.data, req.len, 0, &used), GW_REQ_HEAD_TOO_LARGE);
	gw_req_destroy(r);
	/* A declared body over the limit, refused before it is read. */
	r = gw_req_create(MAX_HEAD, 10);
	CHECK_INT_EQ(feed(r, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", 48, 0, &used),
		     GW_REQ_BODY_TOO_LARGE);
	gw_req_destroy(r);
	gw_buf_dispose(&req);
}

/* Item 11: a 15 KB head a byte at a time costs about what it costs in one
 * piece, not the square of its length. */
static void test_item11_byte_at_a_time_is_linear(void)
{
	gw_buf_t req;
	gw_req_t *r;
	clock_t t0;
	double one, bytewise;
	size_t used;

	size_t lines = 1;
	char pad[200];

	memset(pad, 'a', sizeof(pad));
	memcpy(pad, "X-Padding: ", 11);
	memcpy(pad + sizeof(pad) - 2, "\r\n", 2);
	gw_buf_init(&req);
	gw_buf_append_str(&req, "GET /x HTTP/1.1\r\nHost: h\r\n");
	for (; req.len < 15000; lines++)
		gw_buf_append(&req, pad, sizeof(pad));
	gw_buf_append_str(&req, "\r\n");

	t0 = clock();
	for (int i = 0; i < 20; i++) {
		r = gw_req_create(MAX_HEAD, MAX_BODY);
		CHECK_INT_EQ(feed(r, req.data, req.len, 0, &used), GW_REQ_DONE);
		gw_req_destroy(r);
	}
	one = (double)(clock() - t0) / CLOCKS_PER_SEC / 20;
	t0 = clock();
	r = gw_req_create(MAX_HEAD, MAX_BODY);
	CHECK_INT_EQ(feed(r, req.data, req.len, 1, &used), GW_REQ_DONE);
	CHECK_INT_EQ(gw_req_header_count(r), lines);
	gw_req_destroy(r);
	bytewise = (double)(clock() - t0) / CLOCKS_PER_SEC;
	/* Quadratic would be ~100 million byte visits: well over 50 ms even
	 * without sanitizers. */
	CHECK_MSG(bytewise < 0.05, "byte at a time took %.3f s (one piece %.5f s)", bytewise, one);
	gw_buf_dispose(&req);
}


/* Beyond the items: trailers of a chunked body joined the headers (with
 * http-parser's lenient syntax, "Host : evil" included), and a CONNECT's
 * body was parsed as a second request. */
static void test_trailers_and_connect(void)
{
	static const char trailer[] = "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
				      "3\r\nabc\r\n0\r\nHost : evil\r\nX-Wsgate-Connection-Id: forged\r\n\r\n";
	static const char connect[] = "CONNECT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 27\r\n\r\n"
				      "GET /admin HTTP/1.1\r\nHost: h\r\n\r\n";
	gw_req_t *r = gw_req_create(MAX_HEAD, MAX_BODY);
	size_t used;

	CHECK_INT_EQ(feed(r, trailer, sizeof(trailer) - 1, 0, &used), GW_REQ_DONE);
	CHECK_INT_EQ(gw_req_header_count(r), 2);
	CHECK(str_is(gw_req_get(r, "Host"), "h"));
	CHECK(gw_req_get(r, "X-Wsgate-Connection-Id").ptr == NULL);
	CHECK_MEM_EQ(gw_req_body(r)->data, gw_req_body(r)->len, "abc", 3);
	gw_req_destroy(r);
	r = gw_req_create(MAX_HEAD, MAX_BODY);
	CHECK_INT_EQ(feed(r, connect, sizeof(connect) - 1, 0, &used), GW_REQ_BAD);
	gw_req_destroy(r);
}

int main(void)
{
	RUN(test_valid_requests);
	RUN(test_chunked_and_pipelined);
	RUN(test_item14_bad_heads);
	RUN(test_accepted_edge_cases);
	RUN(test_limits);
	RUN(test_trailers_and_connect);
	RUN(test_item11_byte_at_a_time_is_linear);
	UNIT_MAIN_END();
}
