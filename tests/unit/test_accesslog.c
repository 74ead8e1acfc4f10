/* accesslog.c: format compilation (variables, AWS's requestId rule,
 * destinations) and rendering (missing values, escaping, numbers). */
#include "unit.h"

#include "accesslog.h"

#include <stdlib.h>
#include <string.h>

static void render(const char *format, const gw_alog_ctx_t *c, gw_buf_t *out)
{
	char err[400];
	gw_alog_format_t *f = gw_alog_compile(format, "stderr", err, sizeof(err));

	gw_buf_reset(out);
	CHECK_MSG(f != NULL, "%s: %s", format, err);
	if (!f)
		return;
	gw_alog_render(f, c, out);
	gw_alog_format_free(f);
}

static void test_render(void)
{
	gw_alog_ctx_t c;
	gw_buf_t b;

	gw_buf_init(&b);
	gw_alog_ctx_init(&c);
	/* Nothing known: every variable prints "-", as on AWS. */
	render("$context.requestId $context.status $context.integrationLatency "
	       "$context.connectionId $context.error.messageString", &c, &b);
	CHECK_STR_EQ(b.data, "- - - - -\n");
	c.request_id = "rid1";
	c.status = 429;
	c.integration_latency_ms = 0;
	c.connection_id = "AAEAAAAAAAAAADPCM24GeW6R";
	c.error = "Too \"Many\" \\ Requests\n";
	c.route_key = "$default";
	c.disconnect_code = 1001;
	render("{\"id\":\"$context.requestId\",\"s\":$context.status,\"l\":$context.integration.latency,"
	       "\"e\":\"$context.error.message\",\"r\":\"$context.routeKey\"}", &c, &b);
	CHECK_STR_EQ(b.data, "{\"id\":\"rid1\",\"s\":429,\"l\":0,"
		     "\"e\":\"Too \\\"Many\\\" \\\\ Requests\\n\",\"r\":\"$default\"}\n");
	/* A variable ends at the first character that cannot be in a name; a
	 * trailing full stop is text. */
	render("$context.requestId.$context.disconnectStatusCode.", &c, &b);
	CHECK_STR_EQ(b.data, "rid1.1001.\n");
	gw_buf_dispose(&b);
}

static void test_compile_errors(void)
{
	static const struct {
		const char *format, *dest, *want;
	} cases[] = {
		{ "$context.requestId $context.nope", NULL, "unknown variable $context.nope" },
		{ "$context.status", NULL, "expected $context.requestId or $context.extendedRequestId" },
		{ "$context.requestId\n", NULL, "one line" },
		{ NULL, "/nonexistent-folder/x.log", "writable folder" },
		{ NULL, "/tmp/", "expected \"stderr\" or a file path" },
		{ NULL, "", "expected \"stderr\" or a file path" },
	};
	char err[400];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_alog_format_t *f = gw_alog_compile(cases[i].format, cases[i].dest, err, sizeof(err));

		CHECK_MSG(f == NULL, "case %zu compiled", i);
		gw_alog_format_free(f);
		if (!f)
			CHECK_CONTAINS(err, cases[i].want);
	}
	/* The default format and $context.extendedRequestId are fine. */
	gw_alog_format_free(gw_alog_compile(NULL, NULL, err, sizeof(err)));
	{
		gw_alog_format_t *f = gw_alog_compile("$context.extendedRequestId", "stderr", err,
						      sizeof(err));

		CHECK(f != NULL);
		gw_alog_format_free(f);
	}
}

int main(void)
{
	RUN(test_render);
	RUN(test_compile_errors);
	UNIT_MAIN_END();
}
