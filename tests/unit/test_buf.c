/* buf.c: JSON string escaping, base64 (standard and URL-safe), UTF-8. */
#include "unit.h"

#include "buf.h"

#include <stdlib.h>

/* Escapes in[0..n) and compares with the expected JSON text (quotes included). */
static void check_escape(int line, const char *in, size_t n, const char *want)
{
	gw_buf_t b;

	gw_buf_init(&b);
	gw_buf_append_json_str(&b, in, n);
	unit_checks++;
	if (b.len != strlen(want) || memcmp(b.data, want, b.len)) {
		fprintf(stderr, "%s:%d: [%s] CHECK FAILED: json escape (case at line %d)\n",
			__FILE__, __LINE__, unit_current, line);
		unit_dump("input   ", in, n);
		unit_dump("got     ", b.data, b.len);
		unit_dump("expected", want, strlen(want));
		unit_failures++;
	}
	gw_buf_dispose(&b);
}

#define ESC(lit, want) check_escape(__LINE__, lit, sizeof(lit) - 1, want)

static void test_json_escape(void)
{
	ESC("", "\"\"");
	ESC("plain text", "\"plain text\"");
	ESC("say \"hi\"", "\"say \\\"hi\\\"\"");
	ESC("back\\slash", "\"back\\\\slash\"");
	ESC("a\nb\rc\td", "\"a\\nb\\rc\\td\"");
	ESC("\x01\x08\x0b\x0c\x1f", "\"\\u0001\\u0008\\u000b\\u000c\\u001f\"");
	ESC("/", "\"/\""); /* solidus need not be escaped */
	ESC("\x7f", "\"\x7f\""); /* DEL is not a JSON control character */
	/* NUL inside the input is escaped, not a terminator. */
	ESC("a\0b", "\"a\\u0000b\"");
	ESC("\0", "\"\\u0000\"");
	/* Valid multi-byte UTF-8 is kept byte for byte. */
	ESC("caf\xc3\xa9", "\"caf\xc3\xa9\"");                 /* U+00E9 */
	ESC("\xe2\x82\xac", "\"\xe2\x82\xac\"");               /* U+20AC */
	ESC("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");       /* U+1F600 */
	ESC("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"");       /* U+10FFFF */
	ESC("\xef\xbf\xbd", "\"\xef\xbf\xbd\"");               /* U+FFFD itself */
	/* Invalid bytes become U+FFFD, one per bad byte, rest untouched. */
	ESC("\xff", "\"\xef\xbf\xbd\"");
	ESC("a\x80z", "\"a\xef\xbf\xbdz\"");
	ESC("\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\"");       /* overlong '/' */
	ESC("\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* U+D800 */
	ESC("\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* > U+10FFFF */
	ESC("x\xe2\x82", "\"x\xef\xbf\xbd\xef\xbf\xbd\"");       /* truncated at end */
	ESC("\xc3\"", "\"\xef\xbf\xbd\\\"\"");                 /* lead byte then quote */
	/* Mixed run: escaping state is per byte, text around is intact. */
	ESC("k=\"v\"\n\xc3\xa9\x01!", "\"k=\\\"v\\\"\\n\xc3\xa9\\u0001!\"");
}

static void test_json_escape_appends(void)
{
	gw_buf_t b;

	/* Appends after existing content, and is always NUL-terminated. */
	gw_buf_init(&b);
	gw_buf_append_str(&b, "x:");
	gw_buf_append_json_str(&b, "\"", 1);
	CHECK_MEM_EQ(b.data, b.len, "x:\"\\\"\"", 6);
	CHECK(b.data[b.len] == '\0');
	/* A long input, to cross the initial capacity with escapes. */
	gw_buf_reset(&b);
	{
		char in[3000];
		memset(in, '\n', sizeof(in));
		gw_buf_append_json_str(&b, in, sizeof(in));
		CHECK_INT_EQ(b.len, 2 + 2 * sizeof(in));
		CHECK(b.data[0] == '"' && b.data[b.len - 1] == '"');
		CHECK(b.data[1] == '\\' && b.data[2] == 'n');
	}
	/* Every byte value on its own: output is "...", never a raw control. */
	for (int c = 0; c < 256; c++) {
		char in = (char)c;
		gw_buf_reset(&b);
		gw_buf_append_json_str(&b, &in, 1);
		CHECK_MSG(b.len >= 3 && b.data[0] == '"' && b.data[b.len - 1] == '"',
			  "byte 0x%02x", c);
		for (size_t i = 0; i < b.len; i++)
			CHECK_MSG((unsigned char)b.data[i] >= 0x20, "byte 0x%02x gave raw 0x%02x",
				  c, (unsigned char)b.data[i]);
		if (c >= 0x80)
			CHECK_MEM_EQ(b.data, b.len, "\"\xef\xbf\xbd\"", 5);
	}
	gw_buf_dispose(&b);
}

static void test_buf_numbers(void)
{
	gw_buf_t b;

	gw_buf_init(&b);
	gw_buf_append_u64(&b, 0);
	gw_buf_append_char(&b, ' ');
	gw_buf_append_u64(&b, UINT64_MAX);
	gw_buf_append_char(&b, ' ');
	gw_buf_append_i64(&b, INT64_MIN);
	gw_buf_append_char(&b, ' ');
	gw_buf_append_i64(&b, -1);
	CHECK_STR_EQ(b.data, "0 18446744073709551615 -9223372036854775808 -1");
	CHECK_INT_EQ(b.len, strlen("0 18446744073709551615 -9223372036854775808 -1"));
	/* The digits are written by hand: the same as printf's on every
	 * decimal length and its boundaries. */
	for (uint64_t v = 1, k = 0; k < 20; k++, v *= 10) {
		uint64_t vals[3] = { v - 1, v, v + 1 };

		for (int j = 0; j < 3; j++) {
			char want[48];

			gw_buf_reset(&b);
			gw_buf_append_u64(&b, vals[j]);
			gw_buf_append_char(&b, ' ');
			gw_buf_append_i64(&b, -(int64_t)(vals[j] >> 1));
			snprintf(want, sizeof(want), "%llu %lld", (unsigned long long)vals[j],
				 -(long long)(vals[j] >> 1));
			CHECK_STR_EQ(b.data, want);
		}
	}
	gw_buf_reset(&b);
	gw_buf_append_i64(&b, INT64_MAX);
	CHECK_STR_EQ(b.data, "9223372036854775807");
	gw_buf_dispose(&b);
}

static void test_base64_known(void)
{
	static const struct {
		const char *raw, *b64;
	} rfc[] = { /* RFC 4648 §10 */
		{ "", "" },         { "f", "Zg==" },         { "fo", "Zm8=" },
		{ "foo", "Zm9v" },  { "foob", "Zm9vYg==" },  { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	gw_buf_t b;

	gw_buf_init(&b);
	for (size_t i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
		gw_buf_reset(&b);
		gw_buf_append_base64(&b, rfc[i].raw, strlen(rfc[i].raw));
		CHECK_MEM_EQ(b.data ? b.data : "", b.len, rfc[i].b64, strlen(rfc[i].b64));
		gw_buf_reset(&b);
		CHECK_INT_EQ(gw_base64_decode(&b, rfc[i].b64, strlen(rfc[i].b64)), 0);
		CHECK_MEM_EQ(b.data ? b.data : "", b.len, rfc[i].raw, strlen(rfc[i].raw));
	}
	/* Bytes whose encoding uses '+' and '/'. */
	gw_buf_reset(&b);
	gw_buf_append_base64(&b, "\xfb\xff\xbf", 3);
	CHECK_MEM_EQ(b.data, b.len, "+/+/", 4);
	gw_buf_dispose(&b);
}

static void test_base64_round_trip(void)
{
	unsigned char all[256];
	gw_buf_t enc, dec;

	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	gw_buf_init(&enc);
	gw_buf_init(&dec);
	/* Lengths 0..64 at several offsets, covering all 256 byte values. */
	for (size_t off = 0; off < 256; off += 61) {
		for (size_t n = 0; n <= 64; n++) {
			const unsigned char *p = all + (off + n <= 256 ? off : 256 - n);
			gw_buf_reset(&enc);
			gw_buf_reset(&dec);
			gw_buf_append_base64(&enc, p, n);
			CHECK_INT_EQ(enc.len, 4 * ((n + 2) / 3));
			CHECK_MSG(gw_base64_decode(&dec, enc.data ? enc.data : "", enc.len) == 0,
				  "decode failed, n=%zu off=%zu", n, off);
			CHECK_MEM_EQ(dec.data ? dec.data : "", dec.len, p, n);
		}
	}
	/* The whole byte range in one go. */
	gw_buf_reset(&enc);
	gw_buf_reset(&dec);
	gw_buf_append_base64(&enc, all, sizeof(all));
	CHECK_INT_EQ(gw_base64_decode(&dec, enc.data, enc.len), 0);
	CHECK_MEM_EQ(dec.data, dec.len, all, sizeof(all));
	/* Decoding appends to what is already there. */
	gw_buf_reset(&dec);
	gw_buf_append_str(&dec, "pre");
	CHECK_INT_EQ(gw_base64_decode(&dec, "Zm8=", 4), 0);
	CHECK_MEM_EQ(dec.data, dec.len, "prefo", 5);
	CHECK(dec.data[dec.len] == '\0');
	gw_buf_dispose(&enc);
	gw_buf_dispose(&dec);
}

static void test_base64_decode_invalid(void)
{
	static const char *const bad[] = {
		"Z",        /* length not a multiple of 4 */
		"Zm8",      /* missing padding */
		"Zm9vY",    /* 5 characters */
		"@@@@",     /* characters outside the alphabet */
		"Zm9v!A==", /* '!' */
		"Zm-_",     /* URL-safe alphabet is not standard base64 */
		"Zg==Zg==", /* padding in the middle */
		"Z=g=",     /* padding in the middle of a quantum */
		"=Zg=",     /* padding first */
		"====",     /* padding only */
		"Z===",     /* a single character cannot encode a byte */
	};
	gw_buf_t b;

	gw_buf_init(&b);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		gw_buf_reset(&b);
		int rc = gw_base64_decode(&b, bad[i], strlen(bad[i]));
		CHECK_MSG(rc == -1, "gw_base64_decode(\"%s\") returned %d (%zu bytes), expected -1",
			  bad[i], rc, b.len);
	}
	gw_buf_dispose(&b);
}

static void test_base64url(void)
{
	unsigned char all[256];
	char out[4 * 86 + 1];

	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	/* No padding: length is ceil(4n/3). */
	for (size_t n = 0; n <= 64; n++) {
		size_t len = gw_base64url(out, all + 100, n);
		CHECK_INT_EQ(len, (4 * n + 2) / 3);
		CHECK_INT_EQ(strlen(out), len);
	}
	CHECK_INT_EQ(gw_base64url(out, (const unsigned char *)"f", 1), 2);
	CHECK_STR_EQ(out, "Zg");
	CHECK_INT_EQ(gw_base64url(out, (const unsigned char *)"fo", 2), 3);
	CHECK_STR_EQ(out, "Zm8");
	CHECK_INT_EQ(gw_base64url(out, (const unsigned char *)"foo", 3), 4);
	CHECK_STR_EQ(out, "Zm9v");
	/* '+' and '/' become '-' and '_'. */
	gw_base64url(out, (const unsigned char *)"\xfb\xff\xbf", 3);
	CHECK_STR_EQ(out, "-_-_");
	/* Whole byte range: only [A-Za-z0-9_-], and every one of the 64 used. */
	{
		size_t len = gw_base64url(out, all, sizeof(all));
		int seen[128] = { 0 }, distinct = 0;

		CHECK_INT_EQ(len, (4 * 256 + 2) / 3);
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)out[i];
			int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
				 (c >= '0' && c <= '9') || c == '-' || c == '_';
			CHECK_MSG(ok, "unexpected character 0x%02x at %zu", c, i);
			if (ok && !seen[c]++)
				distinct++;
		}
		/* 0..255 in order yields 6-bit groups 0..63 at least once. */
		CHECK_INT_EQ(distinct, 64);
	}
}

static void test_utf8_valid(void)
{
	static const struct {
		const char *s;
		size_t n;
		int valid;
		const char *what;
	} t[] = {
#define U(lit, v, what) { lit, sizeof(lit) - 1, v, what }
		U("", 1, "empty"),
		U("hello", 1, "ASCII"),
		U("\0", 1, "NUL is a valid code point"),
		U("\x7f", 1, "U+007F"),
		U("\xc2\x80", 1, "U+0080 (smallest 2-byte)"),
		U("\xc3\xa9", 1, "U+00E9"),
		U("\xdf\xbf", 1, "U+07FF"),
		U("\xe0\xa0\x80", 1, "U+0800 (smallest 3-byte)"),
		U("\xe2\x82\xac", 1, "U+20AC"),
		U("\xed\x9f\xbf", 1, "U+D7FF (just below surrogates)"),
		U("\xee\x80\x80", 1, "U+E000 (just above surrogates)"),
		U("\xef\xbf\xbf", 1, "U+FFFF"),
		U("\xf0\x90\x80\x80", 1, "U+10000 (smallest 4-byte)"),
		U("\xf0\x9f\x98\x80", 1, "U+1F600"),
		U("\xf4\x8f\xbf\xbf", 1, "U+10FFFF (largest)"),
		U("a\xc3\xa9z\xe2\x82\xac", 1, "mixed"),
		U("\x80", 0, "lone continuation byte"),
		U("\xbf", 0, "lone continuation byte 0xBF"),
		U("\xc0\x80", 0, "overlong NUL (C0 80)"),
		U("\xc1\xbf", 0, "overlong U+007F"),
		U("\xe0\x80\x80", 0, "overlong 3-byte NUL"),
		U("\xe0\x9f\xbf", 0, "overlong U+07FF"),
		U("\xf0\x80\x80\x80", 0, "overlong 4-byte NUL"),
		U("\xf0\x8f\xbf\xbf", 0, "overlong U+FFFF"),
		U("\xed\xa0\x80", 0, "U+D800 (high surrogate)"),
		U("\xed\xbf\xbf", 0, "U+DFFF (low surrogate)"),
		U("\xed\xa0\xbd\xed\xb8\x80", 0, "CESU-8 surrogate pair"),
		U("\xf4\x90\x80\x80", 0, "U+110000"),
		U("\xf5\x80\x80\x80", 0, "lead byte F5"),
		U("\xf8\x88\x80\x80\x80", 0, "5-byte form"),
		U("\xfe", 0, "byte FE"),
		U("\xff", 0, "byte FF"),
		U("\xc3", 0, "truncated 2-byte"),
		U("\xe2\x82", 0, "truncated 3-byte"),
		U("\xf0\x9f\x98", 0, "truncated 4-byte"),
		U("abc\xf0\x9f", 0, "truncated at end after ASCII"),
		U("\xc3\x28", 0, "bad continuation (2-byte)"),
		U("\xe2\x28\xa1", 0, "bad continuation (3-byte, 2nd)"),
		U("\xe2\x82\x28", 0, "bad continuation (3-byte, 3rd)"),
		U("\xf0\x9f\x98\x28", 0, "bad continuation (4-byte, 4th)"),
		U("\xc3\xa9\xc3", 0, "valid then truncated"),
#undef U
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int got = gw_utf8_valid((const unsigned char *)t[i].s, t[i].n);
		CHECK_MSG(!!got == t[i].valid, "%s: gw_utf8_valid returned %d, expected %d",
			  t[i].what, got, t[i].valid);
	}
	/* The length is honoured: a valid prefix of an invalid buffer. */
	CHECK(gw_utf8_valid((const unsigned char *)"ab\xff", 2));
	CHECK(!gw_utf8_valid((const unsigned char *)"ab\xff", 3));
	/* A sequence cut by n is truncated even if more bytes follow in memory. */
	CHECK(!gw_utf8_valid((const unsigned char *)"\xe2\x82\xac", 2));
}

int main(void)
{
	RUN(test_json_escape);
	RUN(test_json_escape_appends);
	RUN(test_buf_numbers);
	RUN(test_base64_known);
	RUN(test_base64_round_trip);
	RUN(test_base64_decode_invalid);
	RUN(test_base64url);
	RUN(test_utf8_valid);
	UNIT_MAIN_END();
}
