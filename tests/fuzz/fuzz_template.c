/* SAM/CloudFormation templates (template.c): any bytes as a template,
 * turned into an API file and a function list. An API file it produces
 * must be valid JSON that the configuration loader reads without
 * crashing (it may still refuse it: a template may name anything).
 * Input: the template. */
#include "config.h"
#include "fuzz_common.h"
#include "template.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const gw_tmpl_opts_t o = { .runner_url = "http://127.0.0.1:9/f/" };
	gw_buf_t warn, err;
	json_t *api, *fns;

	gw_buf_init(&warn);
	gw_buf_init(&err);
	api = gw_tmpl_to_api((const char *)data, size, &o, &warn, &err);
	FZ_CHECK(api || err.len); /* a refusal always says why */
	if (api) {
		char *s = json_dumps(api, 0);
		gw_config_t *cfg = NULL;
		gw_buf_t e;

		FZ_CHECK(s != NULL);
		gw_buf_init(&e);
		if (!gw_config_parse_buffer("t", s, strlen(s), GW_CONFIG_NO_RESOLVE, &cfg, &e))
			gw_config_free(cfg);
		gw_buf_dispose(&e);
		free(s);
		json_decref(api);
	}
	gw_buf_reset(&err);
	fns = gw_tmpl_functions((const char *)data, size, &o, &warn, &err);
	FZ_CHECK(fns || err.len);
	json_decref(fns);
	gw_buf_dispose(&warn);
	gw_buf_dispose(&err);
	return 0;
}
