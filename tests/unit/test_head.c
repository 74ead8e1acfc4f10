/* head.c: incremental request-head parsing. */
#include "unit.h"

#include "head.h"

#include <stdlib.h>

#define MAX_HEAD 8192

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

static int str_is(gw_str_t s, const char *want)
{
	return s.ptr && s.len == strlen(want) && !memcmp(s.ptr, want, s.len);
}

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
static void check_upgrade_head(int line, gw_head_t *h)
{
	int before = unit_failures;
	gw_str_t name, value;

	CHECK_GWSTR(gw_head_url(h), "/chat?token=abc&x=1");
	CHECK(gw_head_is_get(h));
	CHECK(gw_head_is_websocket(h));
	CHECK_INT_EQ(gw_head_count(h), 10);
	if (gw_head_count(h) == 10) {
		gw_head_at(h, 0, &name, &value);
		CHECK_GWSTR(name, "Host");
		CHECK_GWSTR(value, "gw.example.com");
		gw_head_at(h, 6, &name, &value);
		CHECK_GWSTR(name, "User-Agent");
		CHECK_GWSTR(value, "unit/1.0");
		gw_head_at(h, 7, &name, &value);
		CHECK_GWSTR(name, "X-Empty");
		CHECK_INT_EQ(value.len, 0);
		gw_head_at(h, 9, &name, &value);
		CHECK_GWSTR(name, "x-dup");
		CHECK_GWSTR(value, "two");
	}
	CHECK_GWSTR(gw_head_get(h, "Host"), "gw.example.com");
	CHECK_GWSTR(gw_head_get(h, "host"), "gw.example.com");
	CHECK_GWSTR(gw_head_get(h, "HOST"), "gw.example.com");
	CHECK_GWSTR(gw_head_get(h, "sec-websocket-protocol"), "chat.v2, graphql-ws");
	CHECK_GWSTR(gw_head_get(h, "Sec-WebSocket-Key"), "dGhlIHNhbXBsZSBub25jZQ==");
	CHECK_GWSTR(gw_head_get(h, "X-DUP"), "one"); /* the first one */
	CHECK(gw_head_get(h, "X-Empty").ptr != NULL);
	CHECK_INT_EQ(gw_head_get(h, "X-Empty").len, 0);
	CHECK(gw_head_get(h, "Missing").ptr == NULL);
	CHECK_INT_EQ(gw_head_get(h, "Missing").len, 0);
	CHECK(gw_head_get(h, "Hos").ptr == NULL);  /* no prefix match */
	CHECK(gw_head_get(h, "Hostx").ptr == NULL);
	CHECK(gw_head_get(h, "").ptr == NULL);
	CHECK_INT_EQ(gw_head_length(h), sizeof(upgrade_req) - 1);
	if (unit_failures != before)
		fprintf(stderr, "    (head checks called from line %d)\n", line);
}

static void test_one_piece(void)
{
	gw_head_t *h = gw_head_create(MAX_HEAD);

	CHECK_INT_EQ(gw_head_feed(h, upgrade_req, sizeof(upgrade_req) - 1), GW_HEAD_DONE);
	check_upgrade_head(__LINE__, h);
	CHECK_MEM_EQ(gw_head_bytes(h).ptr, gw_head_bytes(h).len, upgrade_req, sizeof(upgrade_req) - 1);
	gw_head_destroy(h);
}

static void test_byte_by_byte(void)
{
	gw_head_t *h = gw_head_create(MAX_HEAD);
	enum gw_head_status st = GW_HEAD_MORE;
	size_t i;

	for (i = 0; i < sizeof(upgrade_req) - 1; i++) {
		st = gw_head_feed(h, upgrade_req + i, 1);
		if (st != GW_HEAD_MORE)
			break;
	}
	CHECK_INT_EQ(st, GW_HEAD_DONE);
	CHECK_INT_EQ(i, sizeof(upgrade_req) - 2); /* DONE on the very last byte */
	check_upgrade_head(__LINE__, h);
	gw_head_destroy(h);
}

static void test_split_everywhere(void)
{
	/* Two pieces, split at every position: same result as one piece. */
	size_t n = sizeof(upgrade_req) - 1;
	int bad = 0;

	for (size_t cut = 1; cut < n; cut++) {
		gw_head_t *h = gw_head_create(MAX_HEAD);
		enum gw_head_status a = gw_head_feed(h, upgrade_req, cut);
		enum gw_head_status b = gw_head_feed(h, upgrade_req + cut, n - cut);

		if (a != GW_HEAD_MORE || b != GW_HEAD_DONE || !gw_head_is_websocket(h) ||
		    gw_head_count(h) != 10 || !str_is(gw_head_url(h), "/chat?token=abc&x=1") ||
		    !str_is(gw_head_get(h, "sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==") ||
		    !str_is(gw_head_get(h, "x-dup"), "one")) {
			if (!bad)
				fprintf(stderr, "    first bad cut at %zu: %d %d\n", cut, a, b);
			bad++;
		}
		gw_head_destroy(h);
	}
	CHECK_INT_EQ(bad, 0);
}

static void test_bytes_after_head(void)
{
	/* A client may send its first frame before the handshake completes. */
	static const char frame[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
	gw_buf_t all;
	gw_head_t *h = gw_head_create(MAX_HEAD);
	gw_str_t bytes;

	gw_buf_init(&all);
	gw_buf_append(&all, upgrade_req, sizeof(upgrade_req) - 1);
	gw_buf_append(&all, frame, sizeof(frame) - 1);
	CHECK_INT_EQ(gw_head_feed(h, all.data, all.len), GW_HEAD_DONE);
	CHECK_INT_EQ(gw_head_length(h), sizeof(upgrade_req) - 1);
	bytes = gw_head_bytes(h);
	CHECK_INT_EQ(bytes.len, all.len);
	CHECK(bytes.len > gw_head_length(h));
	CHECK_MEM_EQ(bytes.ptr, bytes.len, all.data, all.len);
	if (gw_head_length(h) <= bytes.len)
		CHECK_MEM_EQ(bytes.ptr + gw_head_length(h), bytes.len - gw_head_length(h), frame,
			     sizeof(frame) - 1);
	/* Once DONE, more bytes are kept as-is and the head is unchanged. */
	CHECK_INT_EQ(gw_head_feed(h, "tail", 4), GW_HEAD_DONE);
	bytes = gw_head_bytes(h);
	CHECK_INT_EQ(bytes.len, all.len + 4);
	CHECK(bytes.len >= 4 && !memcmp(bytes.ptr + bytes.len - 4, "tail", 4));
	CHECK_INT_EQ(gw_head_length(h), sizeof(upgrade_req) - 1);
	CHECK_GWSTR(gw_head_url(h), "/chat?token=abc&x=1");
	CHECK_GWSTR(gw_head_get(h, "Host"), "gw.example.com");
	gw_head_destroy(h);
	gw_buf_dispose(&all);
}

static void test_not_websocket(void)
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
		gw_head_t *h = gw_head_create(MAX_HEAD);
		enum gw_head_status st = gw_head_feed(h, t[i].req, strlen(t[i].req));

		CHECK_MSG(st == GW_HEAD_DONE, "case %zu: status %d", i, st);
		CHECK_MSG(!!gw_head_is_get(h) == t[i].is_get, "case %zu: is_get", i);
		CHECK_MSG(!!gw_head_is_websocket(h) == t[i].is_ws, "case %zu: is_websocket", i);
		CHECK_MSG(str_is(gw_head_url(h), t[i].url), "case %zu: url", i);
		CHECK_MSG(gw_head_length(h) == strlen(t[i].req), "case %zu: head length %zu of %zu", i,
			  gw_head_length(h), strlen(t[i].req));
		gw_head_destroy(h);
	}
}

static void test_incomplete_and_bad(void)
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
	gw_head_t *h;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum gw_head_status st;

		h = gw_head_create(MAX_HEAD);
		st = gw_head_feed(h, bad[i], strlen(bad[i]));
		CHECK_MSG(st == GW_HEAD_BAD, "bad case %zu: status %d, expected GW_HEAD_BAD", i, st);
		gw_head_destroy(h);
	}
	/* Incomplete heads want more. */
	h = gw_head_create(MAX_HEAD);
	CHECK_INT_EQ(gw_head_feed(h, "", 0), GW_HEAD_MORE);
	CHECK_INT_EQ(gw_head_feed(h, "GET /chat HTTP/1.1\r\nHost: h\r\n", 29), GW_HEAD_MORE);
	CHECK_INT_EQ(gw_head_feed(h, "\r", 1), GW_HEAD_MORE);
	CHECK_INT_EQ(gw_head_feed(h, "\n", 1), GW_HEAD_DONE);
	CHECK_GWSTR(gw_head_get(h, "host"), "h");
	gw_head_destroy(h);
	/* Bad stays bad. */
	h = gw_head_create(MAX_HEAD);
	CHECK_INT_EQ(gw_head_feed(h, "XYZ\r\n", 5), GW_HEAD_BAD);
	CHECK_INT_EQ(gw_head_feed(h, "GET / HTTP/1.1\r\n\r\n", 18), GW_HEAD_BAD);
	gw_head_destroy(h);
}

static void test_too_large(void)
{
	gw_buf_t req;
	gw_head_t *h;
	enum gw_head_status st = GW_HEAD_MORE;
	int fed = 0;

	gw_buf_init(&req);
	gw_buf_append_str(&req, "GET /chat HTTP/1.1\r\n");
	while (req.len < 3000)
		gw_buf_append_str(&req, "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
	gw_buf_append_str(&req, "\r\n");

	/* In one piece. */
	h = gw_head_create(1024);
	CHECK_INT_EQ(gw_head_feed(h, req.data, req.len), GW_HEAD_TOO_LARGE);
	gw_head_destroy(h);

	/* In small pieces: MORE until the limit, then TOO_LARGE. */
	h = gw_head_create(1024);
	for (size_t off = 0; off < req.len; off += 100) {
		size_t n = req.len - off < 100 ? req.len - off : 100;
		st = gw_head_feed(h, req.data + off, n);
		fed += (int)n;
		if (st != GW_HEAD_MORE)
			break;
	}
	CHECK_INT_EQ(st, GW_HEAD_TOO_LARGE);
	CHECK(fed > 1024 && fed <= 1124);
	CHECK(gw_head_bytes(h).len <= 1024);
	gw_head_destroy(h);

	/* Exactly at the limit is fine. */
	h = gw_head_create(sizeof(upgrade_req) - 1);
	CHECK_INT_EQ(gw_head_feed(h, upgrade_req, sizeof(upgrade_req) - 1), GW_HEAD_DONE);
	gw_head_destroy(h);
	/* One byte below the limit is not. */
	h = gw_head_create(sizeof(upgrade_req) - 2);
	CHECK_INT_EQ(gw_head_feed(h, upgrade_req, sizeof(upgrade_req) - 1), GW_HEAD_TOO_LARGE);
	gw_head_destroy(h);
	gw_buf_dispose(&req);
}

static void test_many_headers(void)
{
	/* More header lines than the parser keeps: rejected, not overflowed. */
	gw_buf_t req;
	gw_head_t *h;
	enum gw_head_status st;

	gw_buf_init(&req);
	gw_buf_append_str(&req, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 150; i++) {
		char line[32];
		snprintf(line, sizeof(line), "X-H%d: %d\r\n", i, i);
		gw_buf_append_str(&req, line);
	}
	gw_buf_append_str(&req, "\r\n");
	h = gw_head_create(65536);
	st = gw_head_feed(h, req.data, req.len);
	CHECK_MSG(st == GW_HEAD_BAD || st == GW_HEAD_TOO_LARGE, "status %d", st);
	gw_head_destroy(h);
	gw_head_destroy(NULL);
	gw_buf_dispose(&req);
}

int main(void)
{
	RUN(test_one_piece);
	RUN(test_byte_by_byte);
	RUN(test_split_everywhere);
	RUN(test_bytes_after_head);
	RUN(test_not_websocket);
	RUN(test_incomplete_and_bad);
	RUN(test_too_large);
	RUN(test_many_headers);
	UNIT_MAIN_END();
}
