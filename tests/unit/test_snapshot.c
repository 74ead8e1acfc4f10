/* config.c: a configuration is a snapshot counted by reference (issue 10
 * §5): whoever holds a reference (a loop, a connection) keeps it alive
 * after the loader dropped its own; the last reference frees it (ASan
 * reports a leak or a use after free otherwise). */
#include "unit.h"

#include "config.h"

#include <pthread.h>
#include <stdlib.h>

static const char api[] =
	"{\"name\":\"a\",\"routeSelectionExpression\":\"$request.body.action\","
	"\"integrations\":{\"m\":{\"type\":\"MOCK\",\"statusCode\":200}},"
	"\"routes\":{\"$default\":{\"integration\":\"m\"}}}";

static gw_config_t *load(void)
{
	gw_config_t *cfg = NULL;
	gw_buf_t err;

	gw_buf_init(&err);
	CHECK_MSG(!gw_config_parse_buffer("api.json", api, sizeof(api) - 1,
					  GW_CONFIG_NO_RESOLVE, &cfg, &err),
		  "%.*s", (int)err.len, err.data ? err.data : "");
	gw_buf_dispose(&err);
	return cfg;
}

static void test_issue10_item5_snapshot_outlives_loader(void)
{
	gw_config_t *cfg = load(), *held;

	if (!cfg)
		return;
	held = gw_config_ref(cfg); /* a connection's */
	CHECK(held == cfg);
	gw_config_free(cfg); /* the loader's: the connection's copy lives on */
	CHECK_INT_EQ(held->n_apis, 1);
	CHECK_STR_EQ(held->apis[0].name, "a");
	gw_config_unref(held); /* the last: freed (no leak under ASan) */
	gw_config_unref(NULL);
}

static void *churn(void *arg)
{
	gw_config_t *cfg = arg;

	for (int i = 0; i < 100000; i++)
		gw_config_unref(gw_config_ref(cfg));
	return NULL;
}

/* Loops are threads: references taken and dropped on several at once
 * leave the count exact. */
static void test_issue10_item5_refs_across_threads(void)
{
	gw_config_t *cfg = load();
	pthread_t t[4];

	if (!cfg)
		return;
	for (int i = 0; i < 4; i++)
		CHECK(!pthread_create(&t[i], NULL, churn, cfg));
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_INT_EQ(__atomic_load_n(&cfg->refs, __ATOMIC_SEQ_CST), 1);
	gw_config_unref(cfg);
}

int main(void)
{
	RUN(test_issue10_item5_snapshot_outlives_loader);
	RUN(test_issue10_item5_refs_across_threads);
	UNIT_MAIN_END();
}
