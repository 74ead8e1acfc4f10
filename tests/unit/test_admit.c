/* admit.c (issue 12): allowedOrigins patterns and matching, API key shape
 * and comparison, the key's query parameter. */
#include "unit.h"

#include "admit.h"

#include <stdlib.h>

static void test_origin_patterns(void)
{
	static const char *const good[] = { "*", "null", "https://app.example.com",
		"http://localhost:8080", "https://*.example.com", "https://*.example.com:8443",
		"http://[::1]:3000", "chrome-extension://abcdef", NULL };
	static const char *const bad[] = { "", "app.example.com", "https://", "https://*",
		"https://*.", "https://a.*.example.com", "https://app.example.com/",
		"https://app.example.com/x", "https://x.com:0", "https://x.com:65536",
		"https://x.com:", "*.example.com", "https://[::1", "https://*.[::1]", "nul", NULL };
	const char *why;

	for (const char *const *p = good; *p; p++)
		CHECK_MSG(!gw_admit_origin_pattern_check(*p, &why), "%s", *p);
	for (const char *const *p = bad; *p; p++) {
		why = NULL;
		CHECK_MSG(gw_admit_origin_pattern_check(*p, &why) && why, "%s", *p);
	}
}

struct origin_case {
	const char *origin;
	int allowed;
};

static void test_origin_matching(void)
{
	char *pats[] = { "https://app.example.com", "https://*.example.org", "http://localhost:8080",
		"null" };
	static const struct origin_case cases[] = {
		{ "https://app.example.com", 1 },
		{ "HTTPS://APP.EXAMPLE.COM", 1 },
		{ "https://app.example.com:443", 0 },
		{ "http://app.example.com", 0 },
		{ "https://app.example.com.evil.example", 0 },
		{ "https://evilapp.example.com", 0 },
		{ "https://a.example.org", 1 },
		{ "https://a.b.example.org", 1 },
		{ "https://example.org", 0 },
		{ "https://.example.org", 0 },
		{ "https://a.example.org:444", 0 },
		{ "https://evil.com/.example.org", 0 },
		{ "https://evil.com?.example.org", 0 },
		{ "https://a@b.example.org", 0 },
		{ "http://a.example.org", 0 },
		{ "http://localhost:8080", 1 },
		{ "http://localhost:8081", 0 },
		{ "http://localhost", 0 },
		{ "null", 1 },
		{ "", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_MSG(gw_admit_origin(pats, 4, cases[i].origin, strlen(cases[i].origin)) ==
			  cases[i].allowed, "%s", cases[i].origin);
	/* Lengths, not NULs: a NUL inside the header value never matches. */
	CHECK(!gw_admit_origin(pats, 4, "null\0x", 6));
	CHECK(!gw_admit_origin(pats, 1, "https://app.example.com\0", 24));
	{
		char *star[] = { "*" };

		CHECK(gw_admit_origin(star, 1, "https://anything", 16));
		CHECK(!gw_admit_origin(pats, 0, "https://app.example.com", 23));
	}
}

static void test_api_keys(void)
{
	char *keys[] = { "k1-0123456789abcdefghij", "k2-zyxwvutsrqponmlkji/+=" };

	CHECK(!gw_admit_api_key_check(keys[0], strlen(keys[0])));
	CHECK(gw_admit_api_key_check("short", 5));
	CHECK(gw_admit_api_key_check("with a space 0123456789", 23));
	CHECK(gw_admit_api_key_check("tab\t0123456789012345678", 23));
	CHECK(gw_admit_api_key(keys, 2, "k2-zyxwvutsrqponmlkji/+=", 24));
	CHECK(gw_admit_api_key(keys, 2, keys[0], strlen(keys[0])));
	CHECK(!gw_admit_api_key(keys, 2, keys[0], strlen(keys[0]) - 1));
	CHECK(!gw_admit_api_key(keys, 2, "k1-0123456789abcdefghijX", 24));
	CHECK(!gw_admit_api_key(keys, 2, "", 0));
	CHECK(!gw_admit_api_key(keys, 0, keys[0], strlen(keys[0])));
}

static void test_query_param(void)
{
	gw_buf_t b;
	const char *q;

	gw_buf_init(&b);
	q = "room=a&apiKey=k%2Fx+y&z=1";
	CHECK_INT_EQ(gw_admit_query_param(q, strlen(q), "apiKey", &b), 1);
	CHECK_MEM_EQ(b.data, b.len, "k/x y", 5);
	q = "apiKey=1&apiKey=2";
	CHECK_INT_EQ(gw_admit_query_param(q, strlen(q), "apiKey", &b), 2);
	q = "apikey=1&apiKeyX=2&xapiKey=3";
	CHECK_INT_EQ(gw_admit_query_param(q, strlen(q), "apiKey", &b), 0);
	q = "apiKey=%zz";
	CHECK_INT_EQ(gw_admit_query_param(q, strlen(q), "apiKey", &b), -1);
	q = "apiKey=%4";
	CHECK_INT_EQ(gw_admit_query_param(q, strlen(q), "apiKey", &b), -1);
	q = "apiKey";
	CHECK_INT_EQ(gw_admit_query_param(q, strlen(q), "apiKey", &b), 1);
	CHECK_INT_EQ(b.len, 0);
	CHECK_INT_EQ(gw_admit_query_param("", 0, "apiKey", &b), 0);
	gw_buf_dispose(&b);
}

int main(void)
{
	RUN(test_origin_patterns);
	RUN(test_origin_matching);
	RUN(test_api_keys);
	RUN(test_query_param);
	UNIT_MAIN_END();
}
