/* config.c across reloads (issue 11, hot reload): two snapshots of one
 * process never share an integration index (each loop binds index i to a
 * pool; an older snapshot's connections keep theirs), an API keeps its id
 * (connection IDs carry it) whatever the order of the files, a stage a
 * reload removed is still known, and snapshots are counted while alive. */
#include "unit.h"

#include "config.h"

static gw_config_t *load(const char *json)
{
	gw_config_t *cfg = NULL;
	gw_buf_t err;

	gw_buf_init(&err);
	CHECK_MSG(!gw_config_parse_buffer("api.json", json, strlen(json), GW_CONFIG_NO_RESOLVE,
					  &cfg, &err),
		  "%.*s", (int)err.len, err.data ? err.data : "");
	gw_buf_dispose(&err);
	return cfg;
}

static const char chat_dev[] =
	"{\"name\":\"chat\",\"stage\":\"dev\",\"limits\":{\"maxMessageBytes\":5000},"
	"\"integrations\":{\"m\":{\"type\":\"MOCK\"},\"h\":{\"type\":\"HTTP_PROXY\","
	"\"uri\":\"http://127.0.0.1:9/x\"}},"
	"\"routes\":{\"$default\":{\"integration\":\"m\"},\"a\":{\"integration\":\"h\"}}}";
static const char other[] =
	"{\"name\":\"other\",\"stage\":\"prod\",\"integrations\":{\"m\":{\"type\":\"MOCK\"}},"
	"\"routes\":{\"$default\":{\"integration\":\"m\"}}}";

static void test_hot_reload_integration_indexes_never_repeat(void)
{
	gw_config_t *a = load(chat_dev), *b = load(chat_dev);

	if (!a || !b)
		goto done;
	CHECK_INT_EQ(a->n_integrations, 2);
	CHECK_INT_EQ(b->n_integrations, 2);
	for (size_t i = 0; i < 2; i++)
		for (size_t j = 0; j < 2; j++)
			CHECK(a->apis[0].integrations[i].index != b->apis[0].integrations[j].index);
	CHECK(a->apis[0].integrations[0].index != a->apis[0].integrations[1].index);
done:
	gw_config_unref(a);
	gw_config_unref(b);
}

static void test_hot_reload_api_ids_are_stable(void)
{
	gw_config_t *a = load(chat_dev), *o = load(other), *b = load(chat_dev);

	if (!a || !o || !b)
		goto done;
	CHECK(a->apis[0].id != GW_CONFIG_API_ID_NONE);
	CHECK_INT_EQ(b->apis[0].id, a->apis[0].id);
	CHECK(o->apis[0].id != a->apis[0].id);
	CHECK_STR_EQ(gw_config_api_stage(a->apis[0].id), "dev");
	CHECK_STR_EQ(gw_config_api_stage(o->apis[0].id), "prod");
	CHECK(gw_config_api_stage(GW_CONFIG_API_ID_NONE) == NULL);
done:
	gw_config_unref(a);
	gw_config_unref(o);
	gw_config_unref(b);
}

static void test_hot_reload_stage_history_outlives_snapshots(void)
{
	gw_config_t *a = load(chat_dev);

	gw_config_unref(a);
	CHECK_INT_EQ(gw_config_stage_history("dev"), 5000);
	CHECK_INT_EQ(gw_config_stage_history("never"), 0);
}

static void test_hot_reload_live_snapshots_counted(void)
{
	unsigned before = gw_config_live();
	gw_config_t *a = load(chat_dev), *held;

	CHECK_INT_EQ(gw_config_live(), before + 1);
	held = gw_config_ref(a);
	gw_config_unref(a);
	CHECK_INT_EQ(gw_config_live(), before + 1); /* a connection still holds it */
	gw_config_unref(held);
	CHECK_INT_EQ(gw_config_live(), before);
}

int main(void)
{
	RUN(test_hot_reload_integration_indexes_never_repeat);
	RUN(test_hot_reload_api_ids_are_stable);
	RUN(test_hot_reload_stage_history_outlives_snapshots);
	RUN(test_hot_reload_live_snapshots_counted);
	UNIT_MAIN_END();
}
