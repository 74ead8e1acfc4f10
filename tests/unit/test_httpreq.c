/* httpreq.c, the one request parser: a head read by itself for the
 * upgrade path (conn.c), and whole requests for REST routes (rest.c);
 * strict field syntax (issue 9 item 14), what libwebsockets would refuse in
 * an upgrade (item 18), and linear cost when a head arrives a byte at a
 * time (item 11), in both modes. */
#include "unit.h"

#include "httpreq.h"

#include <stdlib.h>
#include <time.h>

#define HEAD_BYTES 8192 /* head mode */
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

/* --- head mode, as conn.c reads an upgrade --- */

static enum gw_req_status head_feed(gw_req_t *h, const char *p, size_t n)
{
	size_t used = 0;
	enum gw_req_status st = gw_req_feed(h, p, n, &used);

	/* every byte is kept, whatever the outcome */
	if (st == GW_REQ_MORE || st == GW_REQ_DONE)
		CHECK_INT_EQ(used, n);
	return st;
}

static int is_get(const gw_req_t *h)
{
	return !strcmp(gw_req_method(h), "GET");
}

static const char upgrade_req[] =
	"GET /chat?token=abc&x=1 HTTP/1.1\r\n"
	"Host: gw.example.com\r\n"
	"Upgrade: websocket\r\n"
	"Connection: Upgrade\r\n"
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	"Sec-WebSocket-Version: 13\r\n"
	"Sec-WebSocket-Protocol: chat.v2, graphql-ws\r\n"
	"User-Agent: unit/1.0\r\n"
	"X-Empty:\r\n"
	"X-Dup: one\r\n"
	"x-dup: two\r\n"
	"\r\n";

#define CHECK_GWSTR(s, want)                                                          \
	do {                                                                          \
		gw_str_t unit_s_ = (s);                                               \
		unit_checks++;                                                        \
		if (!str_is(unit_s_, want)) {                                         \
			UNIT_FAIL_HEAD(#s " is \"" want "\"");                        \
			unit_dump("got", unit_s_.ptr ? unit_s_.ptr : "", unit_s_.len); \
		}                                                                     \
	} while (0)

/* Everything the parser exposes for upgrade_req. */
static void check_upgrade_head(int line, gw_req_t *h)
{
	int before = unit_failures;
	gw_str_t name, value;

	CHECK_GWSTR(gw_req_url(h), "/chat?token=abc&x=1");
	CHECK(is_get(h));
	CHECK(gw_req_is_websocket(h));
	CHECK_INT_EQ(gw_req_header_count(h), 10);
	if (gw_req_header_count(h) == 10) {
		gw_req_header(h, 0, &name, &value);
		CHECK_GWSTR(name, "Host");
		CHECK_GWSTR(value, "gw.example.com");
		gw_req_header(h, 6, &name, &value);
		CHECK_GWSTR(name, "User-Agent");
		CHECK_GWSTR(value, "unit/1.0");
		gw_req_header(h, 7, &name, &value);
		CHECK_GWSTR(name, "X-Empty");
		CHECK_INT_EQ(value.len, 0);
		gw_req_header(h, 9, &name, &value);
		CHECK_GWSTR(name, "x-dup");
		CHECK_GWSTR(value, "two");
	}
	CHECK_GWSTR(gw_req_get(h, "Host"), "gw.example.com");
	CHECK_GWSTR(gw_req_get(h, "host"), "gw.example.com");
	CHECK_GWSTR(gw_req_get(h, "HOST"), "gw.example.com");
	CHECK_GWSTR(gw_req_get(h, "sec-websocket-protocol"), "chat.v2, graphql-ws");
	CHECK_GWSTR(gw_req_get(h, "Sec-WebSocket-Key"), "dGhlIHNhbXBsZSBub25jZQ==");
	CHECK_GWSTR(gw_req_get(h, "X-DUP"), "one"); /* the first one */
	CHECK(gw_req_get(h, "X-Empty").ptr != NULL);
	CHECK_INT_EQ(gw_req_get(h, "X-Empty").len, 0);
	CHECK(gw_req_get(h, "Missing").ptr == NULL);
	CHECK_INT_EQ(gw_req_get(h, "Missing").len, 0);
	CHECK(gw_req_get(h, "Hos").ptr == NULL);  /* no prefix match */
	CHECK(gw_req_get(h, "Hostx").ptr == NULL);
	CHECK(gw_req_get(h, "").ptr == NULL);
	CHECK_INT_EQ(gw_req_count(h, "X-DUP"), 2);
	CHECK_INT_EQ(gw_req_count(h, "host"), 1);
	CHECK_INT_EQ(gw_req_count(h, "Hos"), 0);
	CHECK_INT_EQ(gw_req_count(h, "Missing"), 0);
	CHECK_INT_EQ(gw_req_head_length(h), sizeof(upgrade_req) - 1);
	if (unit_failures != before)
		fprintf(stderr, "    (head checks called from line %d)\n", line);
}

static void test_head_one_piece(void)
{
	gw_req_t *h = gw_req_create_head(HEAD_BYTES);

	CHECK_INT_EQ(head_feed(h, upgrade_req, sizeof(upgrade_req) - 1), GW_REQ_DONE);
	check_upgrade_head(__LINE__, h);
	CHECK_MEM_EQ(gw_req_bytes(h).ptr, gw_req_bytes(h).len, upgrade_req, sizeof(upgrade_req) - 1);
	gw_req_destroy(h);
}

static void test_head_byte_by_byte(void)
{
	gw_req_t *h = gw_req_create_head(HEAD_BYTES);
	enum gw_req_status st = GW_REQ_MORE;
	size_t i;

	for (i = 0; i < sizeof(upgrade_req) - 1; i++) {
		st = head_feed(h, upgrade_req + i, 1);
		if (st != GW_REQ_MORE)
			break;
	}
	CHECK_INT_EQ(st, GW_REQ_DONE);
	CHECK_INT_EQ(i, sizeof(upgrade_req) - 2); /* DONE on the very last byte */
	check_upgrade_head(__LINE__, h);
	gw_req_destroy(h);
}

static void test_head_split_everywhere(void)
{
	/* Two pieces, split at every position: same result as one piece. */
	size_t n = sizeof(upgrade_req) - 1;
	int bad = 0;

	for (size_t cut = 1; cut < n; cut++) {
		gw_req_t *h = gw_req_create_head(HEAD_BYTES);
		enum gw_req_status a = head_feed(h, upgrade_req, cut);
		enum gw_req_status b = head_feed(h, upgrade_req + cut, n - cut);

		if (a != GW_REQ_MORE || b != GW_REQ_DONE || !gw_req_is_websocket(h) ||
		    gw_req_header_count(h) != 10 || !str_is(gw_req_url(h), "/chat?token=abc&x=1") ||
		    !str_is(gw_req_get(h, "sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==") ||
		    !str_is(gw_req_get(h, "x-dup"), "one")) {
			if (!bad)
				fprintf(stderr, "    first bad cut at %zu: %d %d\n", cut, a, b);
			bad++;
		}
		gw_req_destroy(h);
	}
	CHECK_INT_EQ(bad, 0);
}

static void test_head_bytes_after_head(void)
{
	/* A client may send its first frame before the handshake completes. */
	static const char frame[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
	gw_buf_t all;
	gw_req_t *h = gw_req_create_head(HEAD_BYTES);
	gw_str_t bytes;

	gw_buf_init(&all);
	gw_buf_append(&all, upgrade_req, sizeof(upgrade_req) - 1);
	gw_buf_append(&all, frame, sizeof(frame) - 1);
	CHECK_INT_EQ(head_feed(h, all.data, all.len), GW_REQ_DONE);
	CHECK_INT_EQ(gw_req_head_length(h), sizeof(upgrade_req) - 1);
	bytes = gw_req_bytes(h);
	CHECK_INT_EQ(bytes.len, all.len);
	CHECK(bytes.len > gw_req_head_length(h));
	CHECK_MEM_EQ(bytes.ptr, bytes.len, all.data, all.len);
	if (gw_req_head_length(h) <= bytes.len)
		CHECK_MEM_EQ(bytes.ptr + gw_req_head_length(h), bytes.len - gw_req_head_length(h), frame,
			     sizeof(frame) - 1);
	/* Once DONE, more bytes are kept as-is and the head is unchanged. */
	CHECK_INT_EQ(head_feed(h, "tail", 4), GW_REQ_DONE);
	bytes = gw_req_bytes(h);
	CHECK_INT_EQ(bytes.len, all.len + 4);
	CHECK(bytes.len >= 4 && !memcmp(bytes.ptr + bytes.len - 4, "tail", 4));
	CHECK_INT_EQ(gw_req_head_length(h), sizeof(upgrade_req) - 1);
	CHECK_GWSTR(gw_req_url(h), "/chat?token=abc&x=1");
	CHECK_GWSTR(gw_req_get(h, "Host"), "gw.example.com");
	gw_req_destroy(h);
	gw_buf_dispose(&all);
}

static void test_head_not_websocket(void)
{
	static const struct {
		const char *req;
		int is_get, is_ws;
		const char *url;
	} t[] = {
		{ "GET /plain HTTP/1.1\r\nHost: h\r\n\r\n", 1, 0, "/plain" },
		{ "POST /chat HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", 0, 0, "/chat" },
		/* Upgrade header without "Connection: upgrade". */
		{ "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", 1, 0, "/chat" },
		/* Upgrade to something else. */
		{ "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", 1, 0,
		  "/chat" },
		/* Token case and lists. */
		{ "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\n",
		  1, 1, "/chat" },
		{ "POST /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n",
		  0, 1, "/chat" },
		{ "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", 0, 0, "/" },
		{ "GET / HTTP/1.0\r\n\r\n", 1, 0, "/" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		gw_req_t *h = gw_req_create_head(HEAD_BYTES);
		enum gw_req_status st = head_feed(h, t[i].req, strlen(t[i].req));

		CHECK_MSG(st == GW_REQ_DONE, "case %zu: status %d", i, st);
		CHECK_MSG(!!is_get(h) == t[i].is_get, "case %zu: is_get", i);
		CHECK_MSG(!!gw_req_is_websocket(h) == t[i].is_ws, "case %zu: is_websocket", i);
		CHECK_MSG(str_is(gw_req_url(h), t[i].url), "case %zu: url", i);
		CHECK_MSG(gw_req_head_length(h) == strlen(t[i].req), "case %zu: head length %zu of %zu", i,
			  gw_req_head_length(h), strlen(t[i].req));
		gw_req_destroy(h);
	}
}

static void test_head_incomplete_and_bad(void)
{
	static const char *const bad[] = {
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
		"HELLO\r\n\r\n",
		"GET /chat HTTP/1.1 extra\r\n\r\n",
		"GET /chat HTTP/9.9.9\r\n\r\n",
		"GET /chat HTTP/1.1\r\nHost: a\x01" "b\r\n\r\n",
		"GET /ch at HTTP/1.1\r\n\r\n",
		"GET /chat HTTP/1.1\r\nContent-Length: x\r\n\r\n",
	};
	gw_req_t *h;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum gw_req_status st;

		h = gw_req_create_head(HEAD_BYTES);
		st = head_feed(h, bad[i], strlen(bad[i]));
		CHECK_MSG(st == GW_REQ_BAD, "bad case %zu: status %d, expected GW_REQ_BAD", i, st);
		gw_req_destroy(h);
	}
	/* Incomplete heads want more. */
	h = gw_req_create_head(HEAD_BYTES);
	CHECK_INT_EQ(head_feed(h, "", 0), GW_REQ_MORE);
	CHECK_INT_EQ(head_feed(h, "GET /chat HTTP/1.1\r\nHost: h\r\n", 29), GW_REQ_MORE);
	CHECK_INT_EQ(head_feed(h, "\r", 1), GW_REQ_MORE);
	CHECK_INT_EQ(head_feed(h, "\n", 1), GW_REQ_DONE);
	CHECK_GWSTR(gw_req_get(h, "host"), "h");
	gw_req_destroy(h);
	/* Bad stays bad. */
	h = gw_req_create_head(HEAD_BYTES);
	CHECK_INT_EQ(head_feed(h, "XYZ\r\n", 5), GW_REQ_BAD);
	CHECK_INT_EQ(head_feed(h, "GET / HTTP/1.1\r\n\r\n", 18), GW_REQ_BAD);
	gw_req_destroy(h);
}

static void test_head_too_large(void)
{
	gw_buf_t req;
	gw_req_t *h;
	enum gw_req_status st = GW_REQ_MORE;
	int fed = 0;

	gw_buf_init(&req);
	gw_buf_append_str(&req, "GET /chat HTTP/1.1\r\n");
	while (req.len < 3000)
		gw_buf_append_str(&req, "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
	gw_buf_append_str(&req, "\r\n");

	/* In one piece. */
	h = gw_req_create_head(1024);
	CHECK_INT_EQ(head_feed(h, req.data, req.len), GW_REQ_HEAD_TOO_LARGE);
	gw_req_destroy(h);

	/* In small pieces: MORE until the limit, then TOO_LARGE. */
	h = gw_req_create_head(1024);
	for (size_t off = 0; off < req.len; off += 100) {
		size_t n = req.len - off < 100 ? req.len - off : 100;
		st = head_feed(h, req.data + off, n);
		fed += (int)n;
		if (st != GW_REQ_MORE)
			break;
	}
	CHECK_INT_EQ(st, GW_REQ_HEAD_TOO_LARGE);
	CHECK(fed > 1024 && fed <= 1124);
	CHECK(gw_req_bytes(h).len <= 1024);
	gw_req_destroy(h);

	/* Exactly at the limit is fine. */
	h = gw_req_create_head(sizeof(upgrade_req) - 1);
	CHECK_INT_EQ(head_feed(h, upgrade_req, sizeof(upgrade_req) - 1), GW_REQ_DONE);
	gw_req_destroy(h);
	/* One byte below the limit is not. */
	h = gw_req_create_head(sizeof(upgrade_req) - 2);
	CHECK_INT_EQ(head_feed(h, upgrade_req, sizeof(upgrade_req) - 1), GW_REQ_HEAD_TOO_LARGE);
	gw_req_destroy(h);
	gw_buf_dispose(&req);
}

static void test_head_many_headers(void)
{
	/* More header lines than the parser keeps: rejected, not overflowed. */
	gw_buf_t req;
	gw_req_t *h;
	enum gw_req_status st;

	gw_buf_init(&req);
	gw_buf_append_str(&req, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 150; i++) {
		char line[32];
		snprintf(line, sizeof(line), "X-H%d: %d\r\n", i, i);
		gw_buf_append_str(&req, line);
	}
	gw_buf_append_str(&req, "\r\n");
	h = gw_req_create_head(65536);
	st = head_feed(h, req.data, req.len);
	CHECK_MSG(st == GW_REQ_BAD || st == GW_REQ_HEAD_TOO_LARGE, "status %d", st);
	gw_req_destroy(h);
	gw_req_destroy(NULL);
	gw_buf_dispose(&req);
}


/* Item 14: what http-parser 2.9 lets through and a proxy must not. */
static void test_head_item14_field_syntax(void)
{
	static const char *const bad[] = {
		"GET / HTTP/1.1\r\nHost : evil\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX Y: sp\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-\xc3\xa9: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x0b" "b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n",
		"GET / HTTP/1.1\r\n\tHost: h\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
		"GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = strlen(bad[i]);
		gw_req_t *h = gw_req_create_head(HEAD_BYTES);
		enum gw_req_status st = head_feed(h, bad[i], n), b = GW_REQ_MORE;

		CHECK_MSG(st == GW_REQ_BAD, "case %zu: status %d, expected GW_REQ_BAD", i, st);
		gw_req_destroy(h);
		/* the same a byte at a time */
		h = gw_req_create_head(HEAD_BYTES);
		for (size_t j = 0; j < n && b == GW_REQ_MORE; j++)
			b = head_feed(h, bad[i] + j, 1);
		CHECK_MSG(b == GW_REQ_BAD, "case %zu byte by byte: status %d", i, b);
		gw_req_destroy(h);
	}
}

/* An upgrade head with `extra` header lines (each ending in CRLF) and the
 * standard ones, `omit` left out (a name, or NULL). */
static char *upgrade_with(const char *url, const char *omit, const char *extra)
{
	static const char *const std[] = { "Host: gw.example.com", "Upgrade: websocket",
		"Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
		"Sec-WebSocket-Version: 13" };
	gw_buf_t b;

	gw_buf_init(&b);
	gw_buf_append_str(&b, "GET ");
	gw_buf_append_str(&b, url);
	gw_buf_append_str(&b, " HTTP/1.1\r\n");
	for (size_t i = 0; i < 5; i++) {
		if (omit && !strncmp(std[i], omit, strlen(omit)))
			continue;
		gw_buf_append_str(&b, std[i]);
		gw_buf_append_str(&b, "\r\n");
	}
	gw_buf_append_str(&b, extra);
	gw_buf_append_str(&b, "\r\n");
	gw_buf_append_char(&b, '\0');
	return b.data;
}

static enum gw_req_status ws_check(const char *req, size_t lws_space, const char **why)
{
	gw_req_t *h = gw_req_create_head(16384);
	enum gw_req_status st = head_feed(h, req, strlen(req));

	*why = "(parse)";
	if (st == GW_REQ_DONE)
		st = gw_req_check_websocket(h, lws_space, why);
	gw_req_destroy(h);
	return st;
}

static char *repeat(const char *prefix, const char *unit, size_t n, const char *suffix)
{
	gw_buf_t b;

	gw_buf_init(&b);
	gw_buf_append_str(&b, prefix);
	for (size_t i = 0; i < n; i++)
		gw_buf_append_str(&b, unit);
	gw_buf_append_str(&b, suffix);
	gw_buf_append_char(&b, '\0');
	return b.data;
}

/* Item 18: every head below was approved by the gateway (so $connect was
 * called) and then dropped by libwebsockets 4.1.6, as measured against
 * this build (tests/e2e/hardening-parse.test.mjs); the check refuses each
 * first, and still accepts what libwebsockets accepts. */
static void test_item18_websocket_check(void)
{
	struct {
		const char *url, *omit, *extra;
		enum gw_req_status want;
	} t[] = {
		{ "/", NULL, "", GW_REQ_DONE },
		{ "/chat?token=abc&x=1", NULL, "Sec-WebSocket-Protocol: chat.v2, graphql-ws\r\n"
		  "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
		  "Origin: https://app.example.com\r\nCookie: a=b; c=d\r\nX-Foo: 1\r\n", GW_REQ_DONE },
		{ "/", "Connection", "Connection: keep-alive, Upgrade\r\n", GW_REQ_DONE },
		{ "/", "Connection", "Connection: upgrade,\r\n", GW_REQ_BAD }, /* empty element */
		{ "/", "Upgrade", "Upgrade: WebSocket\r\n", GW_REQ_DONE },
		{ "/?a=%41", NULL, "", GW_REQ_DONE },
		/* %00 in the query or the path */
		{ "/?a=%00", NULL, "", GW_REQ_BAD },
		{ "/a%00", NULL, "", GW_REQ_BAD },
		/* obs-fold is refused by the parser already */
		{ "/", NULL, "X-A: one\r\n two\r\n", GW_REQ_BAD },
		/* Sec-WebSocket-Key: 16 bytes in base64, once */
		{ "/", "Sec-WebSocket-Key", "", GW_REQ_BAD },
		{ "/", "Sec-WebSocket-Key", "Sec-WebSocket-Key: abc\r\n", GW_REQ_BAD },
		{ "/", "Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n", GW_REQ_BAD },
		{ "/", "Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n", GW_REQ_BAD },
		{ "/", NULL, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", GW_REQ_BAD },
		/* Sec-WebSocket-Version 13 */
		{ "/", "Sec-WebSocket-Version", "", GW_REQ_BAD },
		{ "/", "Sec-WebSocket-Version", "Sec-WebSocket-Version: 8\r\n", GW_REQ_BAD },
		/* Upgrade: exactly websocket */
		{ "/", "Upgrade", "Upgrade: websocket, h2c\r\n", GW_REQ_BAD },
		{ "/", "Upgrade", "Upgrade: websocket \r\n", GW_REQ_BAD },
		{ "/", NULL, "Upgrade: websocket\r\n", GW_REQ_BAD },
		/* Connection: a token list naming upgrade, under 127 bytes */
		{ "/", "Connection", "Connection: ,, Upgrade ,\r\n", GW_REQ_BAD },
		{ "/", "Connection", "Connection: Upgrade;\r\n", GW_REQ_BAD },
		/* Host, once and not empty */
		{ "/", "Host", "", GW_REQ_BAD },
		{ "/", "Host", "Host:\r\n", GW_REQ_BAD },
		/* names libwebsockets' lookup table loses the end of */
		{ "/", NULL, "X-A: 1\r\n", GW_REQ_BAD },
		{ "/", NULL, "Con: 1\r\n", GW_REQ_BAD },
		{ "/", NULL, "Get: 1\r\n", GW_REQ_BAD },
		{ "/", NULL, "T: 1\r\n", GW_REQ_BAD },
		{ "/", NULL, "Acceptx: 1\r\n", GW_REQ_DONE },
		{ "/", NULL, "X-Foo: 1\r\n", GW_REQ_DONE },
		/* subprotocols: names up to 62 bytes, the list under 127 */
		{ "/", NULL, "Sec-WebSocket-Protocol: a;b\r\n", GW_REQ_BAD },
		{ "/", NULL, "Sec-WebSocket-Protocol: \r\n", GW_REQ_BAD },
		/* tabs: lws keeps one before a known header's value */
		{ "/", "Upgrade", "Upgrade:\twebsocket\r\n", GW_REQ_BAD },
		{ "/", "Upgrade", "Upgrade: \twebsocket\r\n", GW_REQ_BAD },
		{ "/", NULL, "X-Foo:\t1\r\n", GW_REQ_DONE },
		{ "/", NULL, "Sec-WebSocket-Protocol: chat\t, x\r\n", GW_REQ_BAD },
		/* a body on an upgrade, and HTTP/1.0 */
		{ "/", NULL, "Content-Length: 5\r\n", GW_REQ_BAD },
		{ "/", NULL, "Content-Length: 0\r\n", GW_REQ_DONE },
	};
	const char *why;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *req = upgrade_with(t[i].url, t[i].omit, t[i].extra);
		enum gw_req_status st = ws_check(req, 4096, &why);

		CHECK_MSG(st == t[i].want, "case %zu: status %d (%s), expected %d", i, st,
			  why ? why : "ok", t[i].want);
		if (st != t[i].want)
			unit_dump("request", req, strlen(req));
		free(req);
	}
}

/* Item 18, sizes: the limits measured on libwebsockets 4.1.6. */
static void test_item18_websocket_limits(void)
{
	static const struct {
		const char *prefix, *unit, *suffix;
		size_t n;
		int in_url;
		enum gw_req_status want;
	} t[] = {
		/* Sec-WebSocket-Key: lws takes < 128 bytes; we want exactly 24 */
		{ "Sec-WebSocket-Key: ", "A", "\r\n", 130, 0, GW_REQ_BAD },
		/* Connection: 126 bytes (both headers joined) fit its 128-byte copy */
		{ "Connection: Upgrade, ", "x", "\r\n", 109, 0, GW_REQ_DONE },
		{ "Connection: Upgrade, ", "x", "\r\n", 110, 0, GW_REQ_BAD },
		/* Sec-WebSocket-Protocol: each name below 63 bytes */
		{ "Sec-WebSocket-Protocol: ", "p", "\r\n", 62, 0, GW_REQ_DONE },
		{ "Sec-WebSocket-Protocol: ", "p", "\r\n", 63, 0, GW_REQ_BAD },
		{ "Sec-WebSocket-Protocol: p0000000", ", p0000000", "\r\n", 13, 0, GW_REQ_BAD },
		/* Sec-WebSocket-Extensions: 254 bytes */
		{ "Sec-WebSocket-Extensions: ", "x", "\r\n", 254, 0, GW_REQ_DONE },
		{ "Sec-WebSocket-Extensions: ", "x", "\r\n", 255, 0, GW_REQ_BAD },
		/* header fragments: 85 URI arguments fit, 88 do not */
		{ "/?a=1", "&a=1", "", 84, 1, GW_REQ_DONE },
		{ "/?a=1", "&a=1", "", 87, 1, GW_REQ_HEAD_TOO_LARGE },
		{ "/?a=1", ";a=1", "", 87, 1, GW_REQ_HEAD_TOO_LARGE },
		/* 87 known headers fit, 88 do not; unknown ones take none */
		{ "", "Accept: x\r\n", "", 87, 0, GW_REQ_DONE },
		{ "", "Accept: x\r\n", "", 88, 0, GW_REQ_HEAD_TOO_LARGE },
		{ "", "X-Foo: x\r\n", "", 94, 0, GW_REQ_DONE },
		/* header space (4096 by default): a 3,900-byte header fits, 3,997 do not (lws: 3,991) */
		{ "X-Big: ", "a", "\r\n", 3900, 0, GW_REQ_DONE },
		{ "X-Big: ", "a", "\r\n", 3997, 0, GW_REQ_HEAD_TOO_LARGE },
		{ "/?x=", "q", "", 3997, 1, GW_REQ_HEAD_TOO_LARGE },
		{ "Cookie: a=", "b", "\r\n", 5000, 0, GW_REQ_HEAD_TOO_LARGE },
	};
	const char *why;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *part = repeat(t[i].prefix, t[i].unit, t[i].n, t[i].suffix);
		char *req = t[i].in_url ? upgrade_with(part, NULL, "") : upgrade_with("/", NULL, part);
		enum gw_req_status st = ws_check(req, 4096, &why);

		CHECK_MSG(st == t[i].want, "case %zu (%s%s x %zu): status %d (%s), expected %d", i,
			  t[i].prefix, t[i].unit, t[i].n, st, why ? why : "ok", t[i].want);
		free(part);
		free(req);
	}
	/* With the header space raised to the head limit and beyond, a
	 * 12 KB cookie is fine. */
	{
		char *part = repeat("Cookie: a=", "b", 12000, "\r\n");
		char *req = upgrade_with("/", NULL, part);

		CHECK_INT_EQ(ws_check(req, 16384 + 2048, &why), GW_REQ_DONE);
		CHECK_INT_EQ(ws_check(req, 4096, &why), GW_REQ_HEAD_TOO_LARGE);
		free(part);
		free(req);
	}
}

static void test_item18_not_a_done_head(void)
{
	gw_req_t *h = gw_req_create_head(HEAD_BYTES);
	const char *why = NULL;

	CHECK_INT_EQ(head_feed(h, "GET / HTTP/1.1\r\n", 16), GW_REQ_MORE);
	CHECK_INT_EQ(gw_req_check_websocket(h, 4096, &why), GW_REQ_BAD);
	CHECK(why != NULL);
	gw_req_destroy(h);
	/* POST and HTTP/1.0 upgrades */
	h = gw_req_create_head(HEAD_BYTES);
	CHECK_INT_EQ(head_feed(h, upgrade_req, sizeof(upgrade_req) - 1), GW_REQ_DONE);
	CHECK_INT_EQ(gw_req_check_websocket(h, 4096, &why), GW_REQ_DONE);
	gw_req_destroy(h);
	{
		static const char post[] = "POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
					   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
					   "Sec-WebSocket-Version: 13\r\n\r\n";
		static const char v10[] = "GET / HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\n"
					  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
					  "Sec-WebSocket-Version: 13\r\n\r\n";

		CHECK_INT_EQ(ws_check(post, 4096, &why), GW_REQ_BAD);
		CHECK_INT_EQ(ws_check(v10, 4096, &why), GW_REQ_BAD);
	}
}

/* Item 11 (upgrade side): a 15 KB head a byte at a time stays linear. */
static void test_head_item11_byte_at_a_time_is_linear(void)
{
	gw_buf_t req;
	gw_req_t *h = gw_req_create_head(16384);
	enum gw_req_status st = GW_REQ_MORE;
	clock_t t0;
	double took;
	char pad[200];

	memset(pad, 'a', sizeof(pad));
	memcpy(pad, "X-Padding: ", 11);
	memcpy(pad + sizeof(pad) - 2, "\r\n", 2);
	gw_buf_init(&req);
	gw_buf_append_str(&req, "GET /x HTTP/1.1\r\nHost: h\r\n");
	while (req.len < 15000)
		gw_buf_append(&req, pad, sizeof(pad));
	gw_buf_append_str(&req, "\r\n");
	t0 = clock();
	for (size_t i = 0; i < req.len && st == GW_REQ_MORE; i++)
		st = head_feed(h, req.data + i, 1);
	took = (double)(clock() - t0) / CLOCKS_PER_SEC;
	CHECK_INT_EQ(st, GW_REQ_DONE);
	CHECK_INT_EQ(gw_req_head_length(h), req.len);
	CHECK_MSG(took < 0.05, "byte at a time took %.3f s", took);
	gw_req_destroy(h);
	gw_buf_dispose(&req);
}

/* One rule set: every head a whole request is refused for is refused in
 * head mode too, and vice versa for what is accepted. */
static void test_both_modes_agree(void)
{
	for (size_t i = 0; i < sizeof(bad_heads) / sizeof(bad_heads[0]); i++) {
		gw_req_t *h = gw_req_create_head(HEAD_BYTES);
		enum gw_req_status st = head_feed(h, bad_heads[i], strlen(bad_heads[i]));

		CHECK_MSG(st == GW_REQ_BAD, "bad head %zu in head mode: status %d", i, st);
		gw_req_destroy(h);
	}
	{
		static const char req[] = "POST /a?b=c HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
		gw_req_t *h = gw_req_create_head(HEAD_BYTES), *w = gw_req_create(MAX_HEAD, MAX_BODY);
		size_t used;

		CHECK_INT_EQ(head_feed(h, req, sizeof(req) - 1), GW_REQ_DONE);
		CHECK_INT_EQ(gw_req_feed(w, req, sizeof(req) - 1, &used), GW_REQ_DONE);
		CHECK_INT_EQ(gw_req_head_length(h), sizeof(req) - 4);
		CHECK_INT_EQ(gw_req_head_length(w), sizeof(req) - 4);
		/* head mode keeps the body's bytes; a whole request has them apart */
		CHECK_INT_EQ(gw_req_bytes(h).len, sizeof(req) - 1);
		CHECK_INT_EQ(gw_req_bytes(w).len, sizeof(req) - 4);
		CHECK_MEM_EQ(gw_req_body(w)->data, gw_req_body(w)->len, "abc", 3);
		CHECK_INT_EQ(gw_req_body(h)->len, 0);
		CHECK(str_is(gw_req_url(h), "/a?b=c") && str_is(gw_req_url(w), "/a?b=c"));
		CHECK(str_is(gw_req_path(h), "/a") && str_is(gw_req_query(h), "b=c"));
		CHECK_STR_EQ(gw_req_method(h), "POST");
		CHECK_INT_EQ(gw_req_keep_alive(h), gw_req_keep_alive(w));
		gw_req_destroy(h);
		gw_req_destroy(w);
	}
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
	RUN(test_head_one_piece);
	RUN(test_head_byte_by_byte);
	RUN(test_head_split_everywhere);
	RUN(test_head_bytes_after_head);
	RUN(test_head_not_websocket);
	RUN(test_head_incomplete_and_bad);
	RUN(test_head_too_large);
	RUN(test_head_many_headers);
	RUN(test_head_item14_field_syntax);
	RUN(test_item18_websocket_check);
	RUN(test_item18_websocket_limits);
	RUN(test_item18_not_a_done_head);
	RUN(test_head_item11_byte_at_a_time_is_linear);
	RUN(test_both_modes_agree);
	UNIT_MAIN_END();
}
