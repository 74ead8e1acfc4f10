/* Route selection (select.c). Messages come from any client, expressions
 * from API files: input [mode][rest...]. Mode even: rest is a message,
 * evaluated by the expressions of real APIs. Mode odd: rest is
 * "expression\nmessage", the expression compiled as a route selection
 * expression (mode & 2 clear) or a body path (mode & 2 set). */
#include "fuzz_common.h"
#include "select.h"

#include <string.h>

static const char *const EXPRS[] = {
	"$request.body.action",
	"${request.body.service}/${request.body.action}",
	"${request.body.action}-${request.body.invalidPath}",
	"$request.body.data.items[1].kind",
	"$request.body['a b']",
	"${request.body[\"a.b\"]}",
	"\\$default",
	"action",
};
#define N_EXPRS (sizeof(EXPRS) / sizeof(EXPRS[0]))

static gw_rse_t *compiled[N_EXPRS];
static gw_buf_t out;

static void eval(const gw_rse_t *rse, const uint8_t *msg, size_t len)
{
	int rc = gw_rse_eval(rse, (const char *)msg, len, &out);

	FZ_CHECK(rc == 0 || rc == -1);
	fz_touch(out.data, out.len);
	if (gw_rse_is_static(rse))
		FZ_CHECK(rc == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[128];

	fz_quiet();
	gw_buf_init(&out);
	for (size_t i = 0; i < N_EXPRS; i++) {
		compiled[i] = gw_rse_compile(EXPRS[i], err, sizeof(err));
		if (!compiled[i]) {
			fprintf(stderr, "fuzz_select: %s: %s\n", EXPRS[i], err);
			abort();
		}
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl;
	char err[128] = "";
	char *expr;
	gw_rse_t *rse;
	uint8_t mode;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	if (!(mode & 1)) {
		for (size_t i = 0; i < N_EXPRS; i++)
			eval(compiled[i], data, size);
		return 0;
	}
	nl = memchr(data, '\n', size);
	if (!nl)
		nl = data + size;
	expr = strndup((const char *)data, (size_t)(nl - data));
	rse = mode & 2 ? gw_rse_compile_path(expr, err, sizeof(err))
		       : gw_rse_compile(expr, err, sizeof(err));
	if (rse) {
		size_t skip = (size_t)(nl - data) + (nl < data + size);

		eval(rse, data + skip, size - skip);
		gw_rse_free(rse);
	} else {
		FZ_CHECK(strlen(err) > 0);
	}
	free(expr);
	return 0;
}
