/* accesslog.c: format compilation (variables, AWS's requestId rule,
 * destinations) and rendering (missing values, escaping, numbers). */
#include "unit.h"

#include "accesslog.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
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

/* A writer that cannot write (a named pipe nobody reads: its open()
 * waits) never holds up the caller: once GW_ALOG_MAX_PENDING bytes wait,
 * lines are dropped at once and gw_alog_write says so. In a child, first
 * (a fresh writer; the child ends with _exit, not waiting for it). */
static void test_drop_under_pressure(void *arg)
{
	char dir[] = "/tmp/wsgate-alog-XXXXXX", fifo[64], err[400], big[1000];
	gw_alog_format_t *f;
	gw_alog_ctx_t c;
	size_t written = 0, dropped = 0;

	(void)arg;
	CHECK(mkdtemp(dir) != NULL);
	snprintf(fifo, sizeof(fifo), "%s/pipe", dir);
	CHECK(mkfifo(fifo, 0600) == 0);
	f = gw_alog_compile("$context.requestId $context.error.message", fifo, err, sizeof(err));
	CHECK_MSG(f != NULL, "%s", err);
	if (!f)
		return;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	gw_alog_ctx_init(&c);
	c.request_id = "r";
	c.error = big;
	for (int i = 0; i < 20000; i++) {
		if (gw_alog_write(f, &c, NULL))
			dropped++;
		else
			written++;
	}
	/* 1,003 bytes a line: 8 MiB hold 8,363 of them, plus at most as many
	 * in the batch the writer took before its open() blocked. */
	CHECK_MSG(written >= GW_ALOG_MAX_PENDING / 1003 && written <= 2 * GW_ALOG_MAX_PENDING / 1003,
		  "%zu lines queued", written);
	CHECK(dropped > 0);
	CHECK_INT_EQ(dropped + written, 20000);
	unlink(fifo);
	rmdir(dir);
}

int main(void)
{
	CHECK_IN_CHILD(test_drop_under_pressure, NULL);
	RUN(test_render);
	RUN(test_compile_errors);
	UNIT_MAIN_END();
}
