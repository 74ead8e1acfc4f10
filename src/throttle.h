/* Token buckets for throttling (AWS's route settings: a rate and a burst),
 * shared by every event loop of the process without a lock.
 *
 * Each bucket is one 64-bit word updated by compare-and-swap: the GCRA form
 * of a token bucket ("theoretical arrival time"), which is exact, needs no
 * refill timer and no lock, and so holds across loops exactly as if one
 * thread took every token. A bucket must never be copied once in use. */
#ifndef GW_THROTTLE_H
#define GW_THROTTLE_H

#include <stdint.h>

typedef struct gw_throttle {
	uint64_t tat_ns;      /* atomics only: when the bucket is full again */
	uint64_t interval_ns; /* one token's worth of time (1 / rate) */
	uint64_t tolerance_ns; /* burst tokens' worth of time */
	int mode;             /* GW_THROTTLE_* */
} gw_throttle_t;

enum { GW_THROTTLE_OFF = 0, GW_THROTTLE_ON, GW_THROTTLE_DENY };

/* A configured limit, before it becomes a bucket. */
typedef struct gw_rate {
	int set;
	double rate;
	uint64_t burst;
} gw_rate_t;

/* rate: tokens per second (> 0, fractions allowed); burst: the bucket's
 * size. A rate or burst of 0 refuses everything, as on AWS. The bucket
 * starts full. */
void gw_throttle_init(gw_throttle_t *t, double rate, uint64_t burst);
/* A bucket that lets everything through. */
void gw_throttle_init_off(gw_throttle_t *t);
/* Takes cost tokens at now_ns (monotonic): 1 when they were there, 0 when
 * throttled (nothing taken). Any thread. A cost larger than the burst is
 * taken once the bucket is full (it would never fit otherwise). */
int gw_throttle_take(gw_throttle_t *t, uint64_t now_ns, uint64_t cost);
/* Monotonic nanoseconds. */
uint64_t gw_throttle_now_ns(void);

#endif
