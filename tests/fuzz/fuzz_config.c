/* API files (config.c): any bytes as an API file, loaded from a memfd.
 * A file that loads is then used as the gateway would: routes looked up,
 * REST routes matched, MOCK bodies filled in. Host names resolve only when
 * numeric or "localhost" (no DNS from a fuzzer). Input: the file. */
#include "config.h"
#include "event.h"
#include "fuzz_common.h"
#include "fuzz_memfile.h"
#include "integration.h"
#include "rest.h"

#include <netdb.h>
#include <string.h>

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res);

/* Linked with --wrap=getaddrinfo. */
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res)
{
	struct addrinfo h = *hints;

	if (node && !strcmp(node, "localhost"))
		node = "127.0.0.1";
	h.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
	return __real_getaddrinfo(node, service, &h, res);
}

static fz_memfile_t file;

static void use(const gw_config_t *cfg)
{
	static const char *const paths[] = { "/", "/items", "/items/7", "/a/b/c", "" };
	static const char *const methods[] = { "GET", "POST", "OPTIONS" };
	size_t params[16][2];
	gw_buf_t body;

	gw_buf_init(&body);
	for (size_t a = 0; a < cfg->n_apis; a++) {
		const gw_api_t *api = &cfg->apis[a];

		FZ_CHECK(gw_config_api_for_path(cfg, api->base_path, strlen(api->base_path)));
		for (size_t i = 0; i < api->n_routes; i++)
			FZ_CHECK(gw_config_route(api, api->routes[i].key, api->routes[i].key_len));
		(void)gw_config_route(api, "$default", 8);
		for (size_t i = 0; i < api->n_stage_vars; i++)
			FZ_CHECK(gw_config_stage_var(api, api->stage_vars[i].name,
						     strlen(api->stage_vars[i].name)));
		for (size_t m = 0; m < 3; m++)
			for (size_t p = 0; p < 5; p++)
				(void)gw_rest_match(api, methods[m], paths[p], strlen(paths[p]),
						    params, 16);
		for (size_t i = 0; i < api->n_integrations; i++) {
			const gw_integration_t *in = &api->integrations[i];
			gw_event_ctx_t ctx;

			if (in->type != GW_INTEG_MOCK)
				continue;
			memset(&ctx, 0, sizeof(ctx));
			ctx.api = api;
			ctx.route_key = "$default";
			ctx.connection_id = "abc";
			ctx.request_id = "req";
			ctx.source_ip = "127.0.0.1";
			ctx.domain_name = "localhost";
			gw_buf_reset(&body);
			gw_integ_mock_body(in, &ctx, &body);
			fz_touch(body.data, body.len);
		}
	}
	gw_buf_dispose(&body);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_quiet();
	fz_memfile_open(&file, "api.json");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gw_config_t *cfg = NULL;
	gw_buf_t err;

	fz_memfile_set(&file, data, size);
	gw_buf_init(&err);
	if (!gw_config_load(file.path, &cfg, &err)) {
		FZ_CHECK(cfg && cfg->n_apis == 1);
		use(cfg);
		gw_config_free(cfg);
	} else {
		FZ_CHECK(!cfg && err.len);
	}
	gw_buf_dispose(&err);
	return 0;
}
