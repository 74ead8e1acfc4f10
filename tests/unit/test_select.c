/* Route selection expressions: AWS's evaluation table (reference §1.1)
 * plus edge cases, and compile errors pointing at the offending character. */
#include "select.h"
#include "unit.h"

#include <stdlib.h>

static const char AWS_BODY[] =
	"{\"service\":\"chat\",\"action\":\"join\",\"data\":{\"room\":\"room1234\"}}";

struct row {
	const char *expr;
	const char *body;
	int rc;            /* 0 evaluated, -1 not JSON */
	const char *want;  /* when rc == 0 */
};

static const struct row rows[] = {
	/* AWS's table */
	{ "$request.body.action", AWS_BODY, 0, "join" },
	{ "${request.body.action}", AWS_BODY, 0, "join" },
	{ "${request.body.service}/${request.body.action}", AWS_BODY, 0, "chat/join" },
	{ "${request.body.action}-${request.body.invalidPath}", AWS_BODY, 0, "join-" },
	{ "action", AWS_BODY, 0, "action" },
	{ "\\$default", AWS_BODY, 0, "$default" },
	{ "$request.body.data.room", AWS_BODY, 0, "room1234" },
	/* scalars and containers */
	{ "$request.body.n", "{\"n\":123}", 0, "123" },
	{ "$request.body.n", "{\"n\":-1.5e+10}", 0, "-1.5e+10" },
	{ "$request.body.n", "{\"n\":123456789012345678901234567890}", 0,
	  "123456789012345678901234567890" },
	{ "$request.body.b", "{\"b\":true}", 0, "true" },
	{ "$request.body.b", "{\"b\":false}", 0, "false" },
	{ "$request.body.b", "{\"b\":null}", 0, "null" },
	{ "$request.body.o", "{\"o\": { \"a\" : [1, 2 ,{\"x\": \"y z\"}] } }", 0,
	  "{\"a\":[1,2,{\"x\":\"y z\"}]}" },
	{ "$request.body.a", "{\"a\":[ \"item1\", \"item2\" ]}", 0, "[\"item1\",\"item2\"]" },
	/* arrays and bracketed keys */
	{ "$request.body.data.items[1].kind", "{\"data\":{\"items\":[{\"kind\":\"a\"},{\"kind\":\"b\"}]}}",
	  0, "b" },
	{ "$request.body.items[5]", "{\"items\":[1,2]}", 0, "" },
	{ "$request.body['a b']", "{\"a b\":\"spaced\"}", 0, "spaced" },
	{ "${request.body[\"a.b\"]}", "{\"a\":{\"b\":\"nested\"},\"a.b\":\"dotted\"}", 0, "dotted" },
	{ "$request.body.a.b", "{\"a\":{\"b\":\"nested\"},\"a.b\":\"dotted\"}", 0, "nested" },
	{ "$request.body['it\\'s']", "{\"it's\":\"quoted\"}", 0, "quoted" },
	/* escapes and unicode */
	{ "$request.body.action", "{\"action\":\"say \\\"hi\\\"\"}", 0, "say \"hi\"" },
	{ "$request.body.action", "{\"action\":\"\\u00e9t\\u00e9\"}", 0, "\xc3\xa9t\xc3\xa9" },
	{ "$request.body.action", "{\"action\":\"\\ud83d\\ude80\"}", 0, "\xf0\x9f\x9a\x80" },
	{ "$request.body.clé", "{\"clé\":\"unicode key\"}", 0, "unicode key" },
	{ "$request.body.k", "{\"\\u006b\":\"escaped key\"}", 0, "escaped key" },
	/* first occurrence wins; key order does not matter */
	{ "$request.body.action", "{\"x\":{\"action\":\"inner\"},\"action\":\"outer\"}", 0, "outer" },
	/* missing paths */
	{ "$request.body.action", "{}", 0, "" },
	{ "$request.body.action", "[1,2]", 0, "" },
	{ "$request.body.action", "\"just a string\"", 0, "" },
	{ "$request.body.action.deeper", "{\"action\":\"join\"}", 0, "" },
	/* not JSON */
	{ "$request.body.action", "hello", -1, NULL },
	{ "$request.body.action", "", -1, NULL },
	{ "$request.body.action", "{\"action\":", -1, NULL },
	{ "$request.body.action", "{\"x\":tru,\"action\":\"a\"}", -1, NULL },
	{ "$request.body.action", "{\"action\":\"bad \\q escape\"}", -1, NULL },
	{ "$request.body.action", "{\"action\":\"\\ud800 lone\"}", -1, NULL },
	{ "$request.body.action", "{\"action\":\"\xc3\x28\"}", -1, NULL },
	{ "$request.body.action", "{\"action\":01}", -1, NULL },
	/* early stop: garbage after the selected value is never read */
	{ "$request.body.action", "{\"action\":\"join\", this is not json", 0, "join" },
	/* static expressions never read the body */
	{ "static", "not json at all", 0, "static" },
};

static void test_table(void)
{
	gw_buf_t out;

	gw_buf_init(&out);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char err[256] = "";
		gw_rse_t *r = gw_rse_compile(rows[i].expr, err, sizeof(err));
		int rc;

		CHECK_MSG(r != NULL, "compile %s: %s", rows[i].expr, err);
		if (!r)
			continue;
		rc = gw_rse_eval(r, rows[i].body, strlen(rows[i].body), &out);
		CHECK_MSG(rc == rows[i].rc, "row %zu (%s on %s): rc %d", i, rows[i].expr,
			  rows[i].body, rc);
		if (rc == 0 && rows[i].rc == 0)
			CHECK_MSG(out.len == strlen(rows[i].want) &&
					  !memcmp(out.data, rows[i].want, out.len),
				  "row %zu (%s): got \"%.*s\", want \"%s\"", i, rows[i].expr,
				  (int)out.len, out.data ? out.data : "", rows[i].want);
		gw_rse_free(r);
	}
	gw_buf_dispose(&out);
}

static void test_deep_and_large(void)
{
	gw_buf_t msg, out;
	gw_rse_t *r = gw_rse_compile("$request.body.action", NULL, 0);

	gw_buf_init(&msg);
	gw_buf_init(&out);
	/* 900 levels of nesting before the key: fine. */
	gw_buf_append_str(&msg, "{\"deep\":");
	for (int i = 0; i < 900; i++)
		gw_buf_append_char(&msg, '[');
	for (int i = 0; i < 900; i++)
		gw_buf_append_char(&msg, ']');
	gw_buf_append_str(&msg, ",\"action\":\"late\"}");
	CHECK_INT_EQ(gw_rse_eval(r, msg.data, msg.len, &out), 0);
	CHECK_STR_EQ(out.data, "late");
	/* 5000 levels: refused (cannot be evaluated), never a stack overflow. */
	gw_buf_reset(&msg);
	gw_buf_append_str(&msg, "{\"deep\":");
	for (int i = 0; i < 5000; i++)
		gw_buf_append_char(&msg, '[');
	CHECK_INT_EQ(gw_rse_eval(r, msg.data, msg.len, &out), -1);
	/* A 300-byte key before the selected one. */
	gw_buf_reset(&msg);
	gw_buf_append_str(&msg, "{\"");
	for (int i = 0; i < 300; i++)
		gw_buf_append_char(&msg, 'k');
	gw_buf_append_str(&msg, "\":1,\"action\":\"after long key\"}");
	CHECK_INT_EQ(gw_rse_eval(r, msg.data, msg.len, &out), 0);
	CHECK_STR_EQ(out.data, "after long key");
	gw_rse_free(r);
	gw_buf_dispose(&msg);
	gw_buf_dispose(&out);
}

struct bad {
	const char *expr;
	const char *where; /* expected "at character N" */
};

static const struct bad bads[] = {
	{ "$request.header.x", "at character 2" },
	{ "${request.body.action", "at character 22" },
	{ "$request.body.items[x]", "at character 21" },
	{ "$request.body.items[1", "at character 22" },
	{ "$request.body.", "at character 15" },
	{ "$request.body['open", "at character 15" },
	{ "$requestXbody.a", "at character 2" },
};

static void test_compile_errors(void)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		char err[256] = "";
		gw_rse_t *r = gw_rse_compile(bads[i].expr, err, sizeof(err));

		CHECK_MSG(r == NULL, "%s should not compile", bads[i].expr);
		CHECK_MSG(strstr(err, bads[i].where) != NULL, "%s: error \"%s\" should say %s",
			  bads[i].expr, err, bads[i].where);
		gw_rse_free(r);
	}
}

static void test_paths(void)
{
	char err[128];
	gw_buf_t out;
	gw_rse_t *p = gw_rse_compile_path("data.items[0]['the kind']", err, sizeof(err));

	gw_buf_init(&out);
	CHECK(p != NULL);
	if (p) {
		const char *m = "{\"data\":{\"items\":[{\"the kind\":\"k1\"}]}}";
		CHECK_INT_EQ(gw_rse_eval(p, m, strlen(m), &out), 0);
		CHECK_STR_EQ(out.data, "k1");
	}
	gw_rse_free(p);
	CHECK(gw_rse_compile_path("a..b", err, sizeof(err)) == NULL);
	p = gw_rse_compile("x", err, sizeof(err));
	CHECK(p && gw_rse_is_static(p));
	gw_rse_free(p);
	p = gw_rse_compile("$request.body.x", err, sizeof(err));
	CHECK(p && !gw_rse_is_static(p));
	gw_rse_free(p);
	gw_buf_dispose(&out);
}

int main(void)
{
	RUN(test_table);
	RUN(test_deep_and_large);
	RUN(test_compile_errors);
	RUN(test_paths);
	UNIT_MAIN_END();
}
