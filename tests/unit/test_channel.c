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

/* FNV-1a's low bits depend only on the low bits of its state: names made
 * of blocks that each take the state's low 20 bits to the same value
 * collide there, whatever follows. With 10 blocks of two choices: 1,024
 * such names (an attacker's channel names, where clients pick them). */
#define LOW 0xfffffu

static uint32_t fnv_low(uint32_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x1b3u;
	return h & LOW;
}

static void test_hash_flood(void)
{
	static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
	static uint16_t seen_at[LOW + 1];
	static char seen[LOW + 1][7];
	char pair[10][2][7], name[64];
	static unsigned char used[4096];
	/* FNV-1a's state starts at its offset basis: the hash of "". */
	uint32_t h = (uint32_t)gw_chan_hash("", 0), x = 12345;
	size_t distinct = 0;

	for (int b = 0; b < 10; b++) {
		uint16_t round = (uint16_t)(b + 1);

		for (;;) {
			char s[7];
			uint32_t k;

			for (int i = 0; i < 6; i++) {
				x = x * 1103515245u + 12345u;
				s[i] = abc[(x >> 16) & 63];
			}
			s[6] = '\0';
			k = fnv_low(h, s, 6);
			if (seen_at[k] == round && strcmp(seen[k], s)) {
				memcpy(pair[b][0], seen[k], 7);
				memcpy(pair[b][1], s, 7);
				h = k;
				break;
			}
			seen_at[k] = round;
			memcpy(seen[k], s, 7);
		}
	}
	for (unsigned m = 0; m < 1024; m++) {
		size_t n = 0;

		for (int b = 0; b < 10; b++, n += 6)
			memcpy(name + n, pair[b][(m >> b) & 1], 6);
		CHECK(gw_chan_name_valid(name, n));
		/* A 4,096-bucket index, as with a few thousand channels. */
		if (!used[gw_chan_hash(name, n) & 4095]++)
			distinct++;
	}
	/* Spread as random names would (~900 buckets), not in one chain. */
	if (distinct < 700)
		fprintf(stderr, "1,024 crafted names fell into %zu of 4,096 buckets\n", distinct);
	CHECK(distinct >= 700);
}

int main(void)
{
	RUN(test_hash_flood);
	RUN(test_names);
	RUN(test_lambda_lists);
	UNIT_MAIN_END();
}
