/* SigV4 verification (sigv4.h) against AWS's published test-suite values
 * (aws-sig-v4-test-suite: get-vanilla, get-vanilla-query-order-key-case,
 * post-vanilla, get-utf8) and against signatures the AWS SDK for
 * JavaScript v3 (@smithy/signature-v4) computed for @connections calls;
 * then every way a request must fail. */
#include "sigv4.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define AMZ_DATE "20150830T123600Z"
#define NOW 1440938160LL /* 2015-08-30T12:36:00Z */
#define SKEW 900

struct hdrs {
	const char *const *kv; /* name, value, ..., NULL (names lowercase) */
};

static int get_header(void *user, const char *name, gw_buf_t *out)
{
	const struct hdrs *h = user;
	int found = 0;

	for (const char *const *p = h->kv; *p; p += 2) {
		if (strcmp(p[0], name))
			continue;
		if (found++)
			gw_buf_append_char(out, ',');
		gw_buf_append_str(out, p[1]);
	}
	return found ? 0 : -1;
}

/* begin + finish on one request; the status of the first that fails. */
static enum gw_sigv4_status verify(const char *method, const char *path,
				   const gw_str_t *query, size_t n_query,
				   const char *const *kv, const char *service, long long now,
				   const char *secret, const char *body, char *why,
				   size_t why_len)
{
	struct hdrs h = { kv };
	gw_sigv4_request_t req = { method, path, strlen(path), query, n_query, get_header, &h };
	gw_sigv4_t v;
	enum gw_sigv4_status st;

	gw_sigv4_init(&v);
	st = gw_sigv4_begin(&v, &req, service, now, SKEW, why, why_len);
	if (!st)
		st = gw_sigv4_finish(&v, secret, strlen(secret), body, body ? strlen(body) : 0,
				     why, why_len);
	gw_sigv4_dispose(&v);
	return st;
}

#define AUTH(scope, signed, sig)                                              \
	"AWS4-HMAC-SHA256 Credential=" AKID "/20150830/" scope "/aws4_request, " \
	"SignedHeaders=" signed ", Signature=" sig

#define VANILLA(sig)                                                     \
	(const char *const[]) { "host", "example.amazonaws.com", "x-amz-date", AMZ_DATE, \
		"authorization", AUTH("us-east-1/service", "host;x-amz-date", sig), NULL }

static void test_aws_suite(void)
{
	char why[512];
	gw_str_t q[] = { GW_STR("Param2=value2"), GW_STR("Param1=value1") };

	CHECK_INT_EQ(verify("GET", "/", NULL, 0,
			    VANILLA("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
			    "service", NOW, SECRET, NULL, why, sizeof(why)), GW_SIGV4_OK);
	CHECK_INT_EQ(verify("GET", "/", q, 2,
			    VANILLA("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
			    "service", NOW, SECRET, NULL, why, sizeof(why)), GW_SIGV4_OK);
	CHECK_INT_EQ(verify("POST", "/", NULL, 0,
			    VANILLA("5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
			    "service", NOW, SECRET, NULL, why, sizeof(why)), GW_SIGV4_OK);
	CHECK_INT_EQ(verify("GET", "/\xe1\x88\xb4", NULL, 0,
			    VANILLA("8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
			    "service", NOW, SECRET, NULL, why, sizeof(why)), GW_SIGV4_OK);
}

static const char *const sdk_post[] = {
	"host", "localhost:8081",
	"content-type", "application/octet-stream",
	"x-amz-date", AMZ_DATE,
	"x-amz-content-sha256", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
	"authorization", AUTH("eu-west-1/execute-api",
			      "content-type;host;x-amz-content-sha256;x-amz-date",
			      "ea3a37326ac2c9736e7de2cc08112b28b9884995e4b55c6cb97953f52a9a9ab8"),
	NULL
};
#define SDK_PATH "/prod/@connections/AAAAAAAAAAAAAAAAAAAAAAAA"

/* The SDK sends "@connections" as is; awscurl's documented call sends
 * "%40connections": both arrive decoded alike and both verify. */
static void test_sdk_vectors(void)
{
	static const char *const curl_delete[] = {
		"host", "localhost:8081", "x-amz-date", AMZ_DATE,
		"authorization", AUTH("eu-west-1/execute-api", "host;x-amz-date",
			"74c0210a7a4b43baf58904632e5915bbfcdb245fb86c589a68c5e43b2831c3db"),
		NULL
	};
	char why[512];

	CHECK_INT_EQ(verify("POST", SDK_PATH, NULL, 0, sdk_post, "execute-api", NOW, SECRET,
			    "hello", why, sizeof(why)), GW_SIGV4_OK);
	CHECK_INT_EQ(verify("DELETE", SDK_PATH, NULL, 0, curl_delete, "execute-api", NOW,
			    SECRET, NULL, why, sizeof(why)), GW_SIGV4_OK);
}

static void test_refusals(void)
{
	static const char *const none[] = { "host", "localhost:8081", NULL };
	static const char *const no_date[] = {
		"host", "h", "authorization", AUTH("eu-west-1/execute-api", "host",
			"74c0210a7a4b43baf58904632e5915bbfcdb245fb86c589a68c5e43b2831c3db"), NULL
	};
	static const char *const host_unsigned[] = {
		"host", "h", "x-amz-date", AMZ_DATE,
		"authorization", AUTH("eu-west-1/execute-api", "x-amz-date",
			"74c0210a7a4b43baf58904632e5915bbfcdb245fb86c589a68c5e43b2831c3db"), NULL
	};
	static const char *const bad_alg[] = {
		"host", "h", "x-amz-date", AMZ_DATE,
		"authorization", "AWS4-HMAC-SHA512 Credential=a/b", NULL
	};
	static const char *const unsigned_payload[] = {
		"host", "localhost:8081", "x-amz-date", AMZ_DATE,
		"x-amz-content-sha256", "UNSIGNED-PAYLOAD",
		"authorization", AUTH("eu-west-1/execute-api", "host;x-amz-date",
			"74c0210a7a4b43baf58904632e5915bbfcdb245fb86c589a68c5e43b2831c3db"), NULL
	};
	char why[512];

	CHECK_INT_EQ(verify("GET", "/", NULL, 0, none, "execute-api", NOW, SECRET, NULL, why,
			    sizeof(why)), GW_SIGV4_MISSING);
	CHECK_STR_EQ(why, "Missing Authentication Token");
	CHECK_INT_EQ(verify("GET", "/", NULL, 0, no_date, "execute-api", NOW, SECRET, NULL,
			    why, sizeof(why)), GW_SIGV4_INCOMPLETE);
	CHECK_INT_EQ(verify("GET", "/", NULL, 0, host_unsigned, "execute-api", NOW, SECRET,
			    NULL, why, sizeof(why)), GW_SIGV4_INCOMPLETE);
	CHECK_INT_EQ(verify("GET", "/", NULL, 0, bad_alg, "execute-api", NOW, SECRET, NULL,
			    why, sizeof(why)), GW_SIGV4_INCOMPLETE);
	/* Wrong secret, body, method, path, service: never a match. */
	CHECK_INT_EQ(verify("POST", SDK_PATH, NULL, 0, sdk_post, "execute-api", NOW,
			    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEX", "hello", why,
			    sizeof(why)), GW_SIGV4_MISMATCH);
	CHECK_CONTAINS(why, "does not match");
	CHECK(!strstr(why, "EXAMPLEKEY"));
	CHECK_INT_EQ(verify("POST", SDK_PATH, NULL, 0, sdk_post, "execute-api", NOW, SECRET,
			    "hellO", why, sizeof(why)), GW_SIGV4_MISMATCH);
	CHECK_CONTAINS(why, "x-amz-content-sha256");
	CHECK_INT_EQ(verify("PUT", SDK_PATH, NULL, 0, sdk_post, "execute-api", NOW, SECRET,
			    "hello", why, sizeof(why)), GW_SIGV4_MISMATCH);
	CHECK_INT_EQ(verify("POST", "/prod/@connections/AAAAAAAAAAAAAAAAAAAAAAAB", NULL, 0,
			    sdk_post, "execute-api", NOW, SECRET, "hello", why, sizeof(why)),
		     GW_SIGV4_MISMATCH);
	CHECK_INT_EQ(verify("POST", SDK_PATH, NULL, 0, sdk_post, "execute-apix", NOW, SECRET,
			    "hello", why, sizeof(why)), GW_SIGV4_SCOPE);
	CHECK_INT_EQ(verify("DELETE", SDK_PATH, NULL, 0, unsigned_payload, "execute-api", NOW,
			    SECRET, NULL, why, sizeof(why)), GW_SIGV4_MISMATCH);
	/* The clock: 15 minutes either way, not one second more. */
	CHECK_INT_EQ(verify("POST", SDK_PATH, NULL, 0, sdk_post, "execute-api", NOW + SKEW,
			    SECRET, "hello", why, sizeof(why)), GW_SIGV4_OK);
	CHECK_INT_EQ(verify("POST", SDK_PATH, NULL, 0, sdk_post, "execute-api", NOW - SKEW,
			    SECRET, "hello", why, sizeof(why)), GW_SIGV4_OK);
	CHECK_INT_EQ(verify("POST", SDK_PATH, NULL, 0, sdk_post, "execute-api",
			    NOW + SKEW + 1, SECRET, "hello", why, sizeof(why)), GW_SIGV4_EXPIRED);
	CHECK_STR_EQ(why, "Signature expired: 20150830T123600Z is now earlier than "
		     "20150830T123601Z (20150830T125101Z - 15 min.)");
	CHECK_INT_EQ(verify("POST", SDK_PATH, NULL, 0, sdk_post, "execute-api",
			    NOW - SKEW - 1, SECRET, "hello", why, sizeof(why)), GW_SIGV4_EXPIRED);
	CHECK_CONTAINS(why, "Signature not yet current");
}

/* Header values are trimmed and inner runs of spaces collapsed; the
 * canonical form is what the signature covers. */
static void test_canonical_form(void)
{
	static const char *const kv[] = {
		"host", "  example.amazonaws.com ", "x-amz-date", AMZ_DATE, "my-header",
		"a   b", "authorization", AUTH("us-east-1/service", "host;my-header;x-amz-date",
			"0000000000000000000000000000000000000000000000000000000000000000"), NULL
	};
	struct hdrs h = { kv };
	gw_str_t q[] = { GW_STR("b=2"), GW_STR("a=1 x"), GW_STR("A") };
	gw_sigv4_request_t req = { "GET", "/a b/@c", 7, q, 3, get_header, &h };
	gw_sigv4_t v;
	gw_buf_t out;
	char why[256];

	gw_sigv4_init(&v);
	gw_buf_init(&out);
	CHECK_INT_EQ(gw_sigv4_begin(&v, &req, "service", NOW, SKEW, why, sizeof(why)),
		     GW_SIGV4_OK);
	CHECK_INT_EQ(v.n_uris, 2);
	gw_sigv4_canonical_request(&v, 0, "e3b0", &out);
	gw_buf_append_char(&out, '\0');
	CHECK_STR_EQ(out.data, "GET\n/a%2520b/%40c\nA=&a=1%20x&b=2\nhost:example.amazonaws.com\n"
		     "my-header:a b\nx-amz-date:" AMZ_DATE "\n\nhost;my-header;x-amz-date\ne3b0");
	gw_buf_reset(&out);
	gw_sigv4_canonical_request(&v, 1, "e3b0", &out);
	gw_buf_append_char(&out, '\0');
	CHECK_CONTAINS(out.data, "\n/a%2520b/%2540c\n");
	gw_buf_dispose(&out);
	gw_sigv4_dispose(&v);
}

int main(void)
{
	RUN(test_aws_suite);
	RUN(test_sdk_vectors);
	RUN(test_refusals);
	RUN(test_canonical_form);
	UNIT_MAIN_END();
}
