/* Lock-free token buckets (GCRA). The bucket's state is the time at which
 * it would be full again (tat); taking n tokens moves it n intervals later,
 * and is refused when that would put it more than the burst ahead of now.
 * Never blocks, never allocates. */
#include "throttle.h"

#include <time.h>

void gw_throttle_init_off(gw_throttle_t *t)
{
	t->tat_ns = 0;
	t->interval_ns = 0;
	t->tolerance_ns = 0;
	t->mode = GW_THROTTLE_OFF;
}

void gw_throttle_init(gw_throttle_t *t, double rate, uint64_t burst)
{
	double iv;

	gw_throttle_init_off(t);
	if (!(rate > 0) || !burst) {
		t->mode = GW_THROTTLE_DENY;
		return;
	}
	iv = 1e9 / rate;
	t->interval_ns = iv < 1 ? 1 : iv > 1e15 ? (uint64_t)1e15 : (uint64_t)iv;
	/* Bursts beyond what 64 bits of nanoseconds hold make no difference. */
	t->tolerance_ns = burst > UINT64_MAX / 2 / t->interval_ns ? UINT64_MAX / 2
								  : burst * t->interval_ns;
	t->mode = GW_THROTTLE_ON;
}

int gw_throttle_take(gw_throttle_t *t, uint64_t now_ns, uint64_t cost)
{
	uint64_t tat, next, need;

	if (t->mode != GW_THROTTLE_ON)
		return t->mode == GW_THROTTLE_OFF;
	need = cost > t->tolerance_ns / t->interval_ns ? t->tolerance_ns : cost * t->interval_ns;
	tat = __atomic_load_n(&t->tat_ns, __ATOMIC_RELAXED);
	do {
		next = (tat > now_ns ? tat : now_ns) + need;
		if (next - now_ns > t->tolerance_ns)
			return 0;
	} while (!__atomic_compare_exchange_n(&t->tat_ns, &tat, next, 1, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return 1;
}

uint64_t gw_throttle_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
