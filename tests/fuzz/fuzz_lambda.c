/* The Lambda proxy response (integration.c), as a $connect or message
 * answer: gw_lambda_parse directly, then through gw_integ_result as the
 * body of a 200. Input: the Lambda's JSON answer. */
#include "fuzz_common.h"
#include "integration.h"

#include <string.h>

static void check(const gw_integ_result_t *res)
{
	FZ_CHECK(res->status_code >= 100 && res->status_code <= 599);
	fz_touch(res->body, res->body_len);
	if (res->subprotocol)
		fz_touch(res->subprotocol, strlen(res->subprotocol));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const gw_integration_t lambda = { .name = "lambda", .type = GW_INTEG_AWS_PROXY };
	gw_integ_result_t res;
	gw_buf_t scratch;
	const char *error = NULL;
	gw_http_resp_t hr = {
		.outcome = GW_CALL_OK,
		.status = 200,
		.body = (const char *)data,
		.body_len = size,
	};

	gw_buf_init(&scratch);
	if (!gw_lambda_parse((const char *)data, size, &scratch, &res, &error))
		check(&res);
	else
		FZ_CHECK(error != NULL);
	gw_integ_result(&lambda, &hr, &scratch, &res);
	if (res.outcome == GW_INTEG_OK)
		check(&res);
	gw_buf_dispose(&scratch);
	return 0;
}
