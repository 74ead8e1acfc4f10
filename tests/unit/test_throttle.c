/* throttle.c: token buckets (issue 12, throttling): rate and burst as AWS's
 * route settings, 0 refusing everything, and exactness when several threads
 * (event loops) take from one bucket at once. */
#include "unit.h"

#include "throttle.h"
#include "iplimit.h"

#include <pthread.h>

#define S 1000000000ull

static void test_burst_then_rate(void)
{
	gw_throttle_t t;
	uint64_t now = 5 * S;
	int n = 0;

	gw_throttle_init(&t, 10, 5);
	while (gw_throttle_take(&t, now, 1))
		n++;
	CHECK_INT_EQ(n, 5); /* a full bucket: the burst */
	CHECK(!gw_throttle_take(&t, now + S / 10 - 1, 1));
	CHECK(gw_throttle_take(&t, now + S / 10, 1)); /* one token per 100 ms */
	CHECK(!gw_throttle_take(&t, now + S / 10, 1));
	/* A second idle: full again, never more than the burst. */
	n = 0;
	while (gw_throttle_take(&t, now + 10 * S, 1))
		n++;
	CHECK_INT_EQ(n, 5);
}

static void test_fractional_rate(void)
{
	gw_throttle_t t;

	gw_throttle_init(&t, 0.5, 1);
	CHECK(gw_throttle_take(&t, S, 1));
	CHECK(!gw_throttle_take(&t, 2 * S, 1));
	CHECK(gw_throttle_take(&t, 3 * S, 1));
}

static void test_zero_refuses_everything(void)
{
	gw_throttle_t a, b, off;

	gw_throttle_init(&a, 0, 100);
	gw_throttle_init(&b, 100, 0);
	gw_throttle_init_off(&off);
	CHECK(!gw_throttle_take(&a, S, 1));
	CHECK(!gw_throttle_take(&b, S, 1));
	for (int i = 0; i < 1000; i++)
		CHECK(gw_throttle_take(&off, S, 1));
}

static void test_cost(void)
{
	gw_throttle_t t;

	gw_throttle_init(&t, 1000, 1000); /* bytes: 1000/s, 1000 at once */
	CHECK(gw_throttle_take(&t, S, 600));
	CHECK(!gw_throttle_take(&t, S, 600));
	CHECK(gw_throttle_take(&t, S, 400));
	CHECK(!gw_throttle_take(&t, S, 1));
	/* Larger than the burst: only from a full bucket. */
	CHECK(!gw_throttle_take(&t, S + S / 2, 5000));
	CHECK(gw_throttle_take(&t, 3 * S, 5000));
	CHECK(!gw_throttle_take(&t, 3 * S, 1));
}

struct race {
	gw_throttle_t *t;
	uint64_t now;
	int taken;
};

static void *race_thread(void *arg)
{
	struct race *r = arg;

	for (int i = 0; i < 100000; i++)
		r->taken += gw_throttle_take(r->t, r->now, 1);
	return NULL;
}

/* Four loops hammering one bucket at one instant take exactly the burst. */
static void test_shared_across_threads_is_exact(void)
{
	gw_throttle_t t;
	struct race r[4];
	pthread_t th[4];
	int total = 0;

	gw_throttle_init(&t, 1, 1000);
	for (int i = 0; i < 4; i++) {
		r[i] = (struct race){ &t, 7 * S, 0 };
		pthread_create(&th[i], NULL, race_thread, &r[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		total += r[i].taken;
	}
	CHECK_INT_EQ(total, 1000);
}

/* With the real clock: over ~300 ms at 100/s with burst 10, about 40. */
static void test_real_clock(void)
{
	gw_throttle_t t;
	uint64_t start = gw_throttle_now_ns(), now;
	int n = 0;

	gw_throttle_init(&t, 100, 10);
	while ((now = gw_throttle_now_ns()) - start < 300000000ull)
		n += gw_throttle_take(&t, now, 1);
	CHECK_MSG(n >= 38 && n <= 42, "took %d", n);
}

/* iplimit.c: concurrent connections and new connections per second per
 * source address; IPv6 by /64; entries go once they hold nothing. */
static void test_ip_limits(void)
{
	gw_iplimit_rule_t conns = { 2, 0, 0, 0 }, rate = { 0, 1, 1, 2 };
	uint64_t now = 100 * S;

	CHECK_INT_EQ(gw_iplimit_acquire("10.0.0.1", &conns, now), GW_IPLIMIT_OK);
	CHECK_INT_EQ(gw_iplimit_acquire("10.0.0.1", &conns, now), GW_IPLIMIT_OK);
	CHECK_INT_EQ(gw_iplimit_acquire("10.0.0.1", &conns, now), GW_IPLIMIT_TOO_MANY);
	CHECK_INT_EQ(gw_iplimit_acquire("10.0.0.2", &conns, now), GW_IPLIMIT_OK);
	gw_iplimit_release("10.0.0.1", now);
	CHECK_INT_EQ(gw_iplimit_acquire("10.0.0.1", &conns, now), GW_IPLIMIT_OK);
	/* One /64 is one client; the next /64 another. */
	CHECK_INT_EQ(gw_iplimit_acquire("2001:db8:1:2::1", &conns, now), GW_IPLIMIT_OK);
	CHECK_INT_EQ(gw_iplimit_acquire("2001:db8:1:2:ffff::9", &conns, now), GW_IPLIMIT_OK);
	CHECK_INT_EQ(gw_iplimit_acquire("2001:db8:1:2:abcd::", &conns, now), GW_IPLIMIT_TOO_MANY);
	CHECK_INT_EQ(gw_iplimit_acquire("2001:db8:1:3::1", &conns, now), GW_IPLIMIT_OK);
	CHECK_INT_EQ(gw_iplimit_acquire("not an address", &conns, now), GW_IPLIMIT_BAD_ADDR);
	/* New connections per second: a burst of 2, then one a second. */
	CHECK_INT_EQ(gw_iplimit_acquire("10.1.0.1", &rate, now), GW_IPLIMIT_OK);
	CHECK_INT_EQ(gw_iplimit_acquire("10.1.0.1", &rate, now), GW_IPLIMIT_OK);
	CHECK_INT_EQ(gw_iplimit_acquire("10.1.0.1", &rate, now), GW_IPLIMIT_TOO_FAST);
	CHECK_INT_EQ(gw_iplimit_acquire("10.1.0.1", &rate, now + S), GW_IPLIMIT_OK);
	/* Everything given back and the buckets full again: nothing held. */
	for (int i = 0; i < 2; i++)
		gw_iplimit_release("10.0.0.1", now);
	gw_iplimit_release("10.0.0.2", now);
	for (int i = 0; i < 2; i++)
		gw_iplimit_release("2001:db8:1:2::7", now);
	gw_iplimit_release("2001:db8:1:3::1", now);
	for (int i = 0; i < 3; i++)
		gw_iplimit_release("10.1.0.1", now + 10 * S);
	CHECK_INT_EQ(gw_iplimit_entries(), 0);
}

int main(void)
{
	RUN(test_ip_limits);
	RUN(test_burst_then_rate);
	RUN(test_fractional_rate);
	RUN(test_zero_refuses_everything);
	RUN(test_cost);
	RUN(test_shared_across_threads_is_exact);
	RUN(test_real_clock);
	UNIT_MAIN_END();
}
