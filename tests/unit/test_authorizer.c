/* authorizer.c (issue 12): what a REQUEST authorizer's answer means (IAM
 * policy matching with wildcards, the simple shape, errors), the context
 * passed on, and the verdict cache (TTL, keys, bounds). */
#include "unit.h"

#include "authorizer.h"
#include "registry.h"

#include <stdlib.h>

static const char ARN[] = "arn:aws:execute-api:local:000000000000:chat/dev/$connect";

static enum gw_authz_verdict decide_status(int status, const char *body, char **ctx)
{
	gw_http_resp_t resp;
	gw_authz_result_t r;

	memset(&resp, 0, sizeof(resp));
	resp.outcome = GW_CALL_OK;
	resp.status = status;
	resp.body = body;
	resp.body_len = strlen(body);
	gw_authz_decide(ARN, &resp, 7, &r);
	CHECK(r.why != NULL);
	CHECK((r.verdict == GW_AUTHZ_ALLOW) == (r.context != NULL));
	if (ctx)
		*ctx = r.context ? strdup(r.context) : NULL;
	gw_authz_result_dispose(&r);
	return r.verdict;
}

static enum gw_authz_verdict decide(const char *body)
{
	return decide_status(200, body, NULL);
}

#define POLICY(effect, action, resource)                                                   \
	"{\"principalId\":\"p\",\"policyDocument\":{\"Version\":\"2012-10-17\",\"Statement\":[" \
	"{\"Effect\":\"" effect "\",\"Action\":" action ",\"Resource\":" resource "}]}}"

struct policy_case {
	const char *body;
	enum gw_authz_verdict verdict;
};

static void test_policies(void)
{
	static const struct policy_case cases[] = {
		{ POLICY("Allow", "\"execute-api:Invoke\"",
			 "\"arn:aws:execute-api:local:000000000000:chat/dev/$connect\""), GW_AUTHZ_ALLOW },
		{ POLICY("Allow", "\"execute-api:*\"", "\"arn:aws:execute-api:*:*:chat/*\""), GW_AUTHZ_ALLOW },
		{ POLICY("Allow", "\"*\"", "\"*\""), GW_AUTHZ_ALLOW },
		{ POLICY("Allow", "[\"s3:GetObject\",\"EXECUTE-API:invoke\"]", "[\"x\",\"*\"]"), GW_AUTHZ_ALLOW },
		{ POLICY("Allow", "\"execute-api:Invoke\"", "\"arn:aws:execute-api:local:*:chat/d?v/$connect\""), GW_AUTHZ_ALLOW },
		/* REST-style: */
		{ POLICY("Allow", "\"execute-api:Invoke\"", "\"arn:aws:execute-api:*:*:chat/dev/*/*\""), GW_AUTHZ_DENY },
		/* a '*' does not cross an ARN part: */
		{ POLICY("Allow", "\"execute-api:Invoke\"", "\"arn:aws:*:chat/dev/$connect\""), GW_AUTHZ_DENY },
		{ POLICY("Allow", "\"execute-api:Invoke\"", "\"arn:aws:execute-api:*:*:other/*\""), GW_AUTHZ_DENY },
		{ POLICY("Allow", "\"s3:*\"", "\"*\""), GW_AUTHZ_DENY },
		{ POLICY("Deny", "\"execute-api:Invoke\"", "\"*\""), GW_AUTHZ_DENY },
		{ "{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[{\"Effect\":\"Allow\","
		  "\"Action\":\"*\",\"Resource\":\"*\"},{\"Effect\":\"Deny\",\"Action\":\"*\","
		  "\"Resource\":\"arn:aws:execute-api:*:*:chat/dev/$connect\"}]}}", GW_AUTHZ_DENY },
		{ "{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":{\"Effect\":\"Allow\","
		  "\"Action\":\"*\",\"Resource\":\"*\"}}}", GW_AUTHZ_ALLOW },
		{ "{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[]}}", GW_AUTHZ_DENY },
		/* malformed: 500 */
		{ POLICY("Maybe", "\"*\"", "\"*\""), GW_AUTHZ_ERROR },
		{ POLICY("Allow", "1", "\"*\""), GW_AUTHZ_ERROR },
		{ "{\"principalId\":\"p\",\"policyDocument\":{\"Statement\":[{\"Effect\":\"Allow\","
		  "\"Action\":\"*\"}]}}", GW_AUTHZ_ERROR },
		{ "{\"principalId\":\"p\",\"policyDocument\":\"Allow\"}", GW_AUTHZ_ERROR },
		{ "{\"policyDocument\":{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\","
		  "\"Resource\":\"*\"}]}}", GW_AUTHZ_ERROR },
		{ "{\"principalId\":5,\"policyDocument\":{\"Statement\":[]}}", GW_AUTHZ_ERROR },
		/* the simple shape */
		{ "{\"isAuthorized\":true}", GW_AUTHZ_ALLOW },
		{ "{\"isAuthorized\":false,\"context\":{\"a\":1}}", GW_AUTHZ_DENY },
		{ "{\"isAuthorized\":\"true\"}", GW_AUTHZ_ERROR },
		/* errors */
		{ "\"Unauthorized\"", GW_AUTHZ_UNAUTHORIZED },
		{ "{\"errorMessage\":\"Unauthorized\",\"errorType\":\"Error\"}", GW_AUTHZ_UNAUTHORIZED },
		{ "{\"errorMessage\":\"Invalid token\"}", GW_AUTHZ_ERROR },
		{ "{}", GW_AUTHZ_ERROR },
		{ "[]", GW_AUTHZ_ERROR },
		{ "not json", GW_AUTHZ_ERROR },
		{ "", GW_AUTHZ_ERROR },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_MSG(decide(cases[i].body) == cases[i].verdict, "case %zu: %s -> %d", i,
			  cases[i].body, decide(cases[i].body));
	CHECK_INT_EQ(decide_status(401, "", NULL), GW_AUTHZ_UNAUTHORIZED);
	CHECK_INT_EQ(decide_status(403, "{\"isAuthorized\":true}", NULL), GW_AUTHZ_ERROR);
	CHECK_INT_EQ(decide_status(500, "{\"isAuthorized\":true}", NULL), GW_AUTHZ_ERROR);
}

static void test_outcomes(void)
{
	static const enum gw_call_outcome outcomes[] = { GW_CALL_FAILED, GW_CALL_TIMEOUT,
		GW_CALL_BUSY };
	gw_http_resp_t resp;
	gw_authz_result_t r;
	char big[GW_AUTHZ_MAX_RESPONSE + 64];

	for (size_t i = 0; i < 3; i++) {
		memset(&resp, 0, sizeof(resp));
		resp.outcome = outcomes[i];
		gw_authz_decide(ARN, &resp, 0, &r);
		CHECK_INT_EQ(r.verdict, GW_AUTHZ_ERROR);
	}
	/* Larger than AWS's 8 KB: 500, whatever it says. */
	snprintf(big, sizeof(big), "{\"isAuthorized\":true,\"context\":{\"pad\":\"%*s\"}}",
		 GW_AUTHZ_MAX_RESPONSE, "x");
	CHECK_INT_EQ(decide(big), GW_AUTHZ_ERROR);
}

static void test_context(void)
{
	char *ctx = NULL;

	CHECK_INT_EQ(decide_status(200, "{\"principalId\":\"u\\\"1\",\"policyDocument\":{\"Statement\":"
		     "[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]},\"context\":"
		     "{\"s\":\"x\",\"i\":3,\"r\":1.5,\"t\":true,\"f\":false,\"n\":null,"
		     "\"principalId\":\"spoof\"}}", &ctx), GW_AUTHZ_ALLOW);
	CHECK_STR_EQ(ctx, "{\"principalId\":\"u\\\"1\",\"integrationLatency\":7,\"s\":\"x\","
		     "\"i\":\"3\",\"r\":\"1.5\",\"t\":\"true\",\"f\":\"false\"}");
	free(ctx);
	/* The IAM shape takes no objects or arrays in context (AWS refuses them). */
	CHECK_INT_EQ(decide("{\"principalId\":\"u\",\"policyDocument\":{\"Statement\":[{\"Effect\":"
			    "\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]},\"context\":{\"o\":[1]}}"),
		     GW_AUTHZ_ERROR);
	CHECK_INT_EQ(decide_status(200, "{\"isAuthorized\":true,\"context\":{\"o\":{\"a\":[1,2]}}}",
				   &ctx), GW_AUTHZ_ALLOW);
	CHECK_STR_EQ(ctx, "{\"integrationLatency\":7,\"o\":{\"a\":[1,2]}}");
	free(ctx);
	CHECK_INT_EQ(decide("{\"isAuthorized\":true,\"context\":\"x\"}"), GW_AUTHZ_ERROR);
}

static void test_cache(void)
{
	gw_authorizer_t a;
	gw_authz_result_t allow = { GW_AUTHZ_ALLOW, "{\"principalId\":\"p\"}", 19, "allowed", 0, 0 };
	gw_authz_result_t deny = { GW_AUTHZ_DENY, NULL, 0, "denied", 0, 0 };
	gw_authz_result_t unauth = { GW_AUTHZ_UNAUTHORIZED, NULL, 0, "no", 0, 0 };
	gw_authz_result_t r;
	char key[32];

	memset(&a, 0, sizeof(a));
	a.ttl_s = 10;
	CHECK(!gw_authz_cache_get(&a, "k", 1, 0, &r)); /* no cache: never a hit */
	a.cache = gw_authz_cache_create();
	gw_authz_cache_put(&a, "2:ab", 4, 1000, &allow);
	gw_authz_cache_put(&a, "2:cd", 4, 1000, &deny);
	gw_authz_cache_put(&a, "2:ef", 4, 1000, &unauth);
	CHECK(gw_authz_cache_get(&a, "2:ab", 4, 10999, &r));
	CHECK_INT_EQ(r.verdict, GW_AUTHZ_ALLOW);
	CHECK_STR_EQ(r.context, "{\"principalId\":\"p\"}");
	gw_authz_result_dispose(&r);
	CHECK(gw_authz_cache_get(&a, "2:cd", 4, 2000, &r));
	CHECK_INT_EQ(r.verdict, GW_AUTHZ_DENY);
	CHECK(!gw_authz_cache_get(&a, "2:ef", 4, 2000, &r)); /* 401s are not kept */
	CHECK(!gw_authz_cache_get(&a, "2:a", 3, 2000, &r));
	CHECK(!gw_authz_cache_get(&a, "2:ab", 4, 11000, &r)); /* expired */
	CHECK(!gw_authz_cache_get(&a, "2:ab", 4, 2000, &r));  /* and gone */
	/* Bounded: the oldest go first. */
	for (int i = 0; i < 10050; i++) {
		int n = snprintf(key, sizeof(key), "k%d", i);
		gw_authz_cache_put(&a, key, (size_t)n, 5000, &allow);
	}
	CHECK(!gw_authz_cache_get(&a, "k0", 2, 5000, &r));
	CHECK(gw_authz_cache_get(&a, "k10049", 6, 5000, &r));
	gw_authz_result_dispose(&r);
	gw_authz_cache_destroy(a.cache);
}

static void test_method_arn(void)
{
	gw_api_t api;
	gw_buf_t b;

	memset(&api, 0, sizeof(api));
	api.name = "chat";
	memcpy(api.api_id, "a1b2c3d4e5", 11);
	api.stage = "prod";
	gw_buf_init(&b);
	gw_authz_method_arn(&api, &b);
	gw_buf_append_char(&b, '\0');
	CHECK_STR_EQ(b.data, "arn:aws:execute-api:local:000000000000:a1b2c3d4e5/prod/$connect");
	gw_buf_dispose(&b);
}

/* The $disconnect outbox keeps the context, so that a $disconnect sent
 * later (or by the next start) carries requestContext.authorizer too. */
static void test_outbox_record(void)
{
	static gw_outbox_record_t rec, back;
	static const char ctx[] = "{\"principalId\":\"p\",\"integrationLatency\":3,\"k\":\"v\"}";
	void *data;
	size_t len;

	memset(&rec, 0, sizeof(rec));
	snprintf(rec.conn.id, sizeof(rec.conn.id), "AAAAAAAAAAAAAAAAAAAAAAAA");
	snprintf(rec.conn.api, sizeof(rec.conn.api), "chat");
	memcpy(rec.authorizer, ctx, sizeof(ctx) - 1);
	rec.authorizer_len = sizeof(ctx) - 1;
	CHECK_INT_EQ(gw_outbox_record_encode(&rec, &data, &len), 0);
	CHECK_INT_EQ(gw_outbox_record_decode(data, len, &back), 0);
	CHECK_INT_EQ(back.authorizer_len, sizeof(ctx) - 1);
	CHECK_MEM_EQ(back.authorizer, back.authorizer_len, ctx, sizeof(ctx) - 1);
	free(data);
	/* None: none back (the records of earlier runs have none). */
	rec.authorizer_len = 0;
	CHECK_INT_EQ(gw_outbox_record_encode(&rec, &data, &len), 0);
	CHECK_INT_EQ(gw_outbox_record_decode(data, len, &back), 0);
	CHECK_INT_EQ(back.authorizer_len, 0);
	free(data);
}

int main(void)
{
	RUN(test_policies);
	RUN(test_outcomes);
	RUN(test_context);
	RUN(test_cache);
	RUN(test_method_arn);
	RUN(test_outbox_record);
	UNIT_MAIN_END();
}
