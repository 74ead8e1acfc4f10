/* channel.c: channel names; integration.c: the channels an answer asks
 * to join or leave (issue 13). */
#include "unit.h"

#include "channel.h"
#include "integration.h"

static void test_names(void)
{
	char longest[GW_CHAN_NAME_MAX + 1];

	memset(longest, 'a', sizeof(longest));
	CHECK(gw_chan_name_valid("room-1", 6));
	CHECK(gw_chan_name_valid("a.b_c:d-E9", 10));
	CHECK(gw_chan_name_valid(longest, GW_CHAN_NAME_MAX));
	CHECK(!gw_chan_name_valid(longest, GW_CHAN_NAME_MAX + 1));
	CHECK(!gw_chan_name_valid("", 0));
	CHECK(!gw_chan_name_valid("a b", 3));
	CHECK(!gw_chan_name_valid("a/b", 3));
	CHECK(!gw_chan_name_valid("a,b", 3));
	CHECK(!gw_chan_name_valid("a\0b", 3));
	CHECK(!gw_chan_name_valid("caf\xc3\xa9", 5));
}

static void parse(const char *json, gw_buf_t *scratch, gw_integ_result_t *res)
{
	const char *error = NULL;

	CHECK_INT_EQ(gw_lambda_parse(json, strlen(json), scratch, res, &error), 0);
}

static void test_lambda_lists(void)
{
	gw_buf_t scratch;
	gw_integ_result_t res;

	gw_buf_init(&scratch);
	parse("{\"statusCode\":200,\"body\":\"hi\",\"subscribe\":[\"a\",\"b\"],"
	      "\"unsubscribe\":\"c\"}", &scratch, &res);
	CHECK_STR_EQ(res.subscribe, "a,b");
	CHECK_STR_EQ(res.unsubscribe, "c");
	CHECK_MEM_EQ(res.body, res.body_len, "hi", 2);
	parse("{\"statusCode\":200,\"headers\":{\"x-wsgate-subscribe\":\"r1, r2\"},"
	      "\"subscribe\":[\"r0\", 5]}", &scratch, &res);
	CHECK_STR_EQ(res.subscribe, "r0,r1, r2");
	CHECK(res.unsubscribe == NULL);
	parse("{\"statusCode\":200,\"body\":\"x\"}", &scratch, &res);
	CHECK(res.subscribe == NULL && res.unsubscribe == NULL);
	gw_buf_dispose(&scratch);
}

int main(void)
{
	RUN(test_names);
	RUN(test_lambda_lists);
	UNIT_MAIN_END();
}
