/* Registry micro-benchmark: µs per connect (new ID + insert) and per close
 * (delete), and per batched lastActiveAt touch, in a fresh LMDB folder.
 * The touch is timed the way the gateway flushes it: slices of 256 IDs,
 * one transaction each (mean and worst slice). Prints figures; asserts
 * nothing.
 *
 *   build/bench_registry [connections]
 */
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20000;
	char dir[] = "/tmp/wsgate-bench-reg-XXXXXX", err[256], cmd[128];
	char (*ids)[GW_CONN_ID_LEN + 1] = calloc((size_t)n, sizeof(*ids));
	const char **idp = calloc((size_t)n, sizeof(*idp));
	uint64_t *times = calloc((size_t)n, sizeof(*times));
	gw_registry_t *reg;
	gw_conn_record_t rec;
	double t0, t1, t2, t3, worst = 0;
	size_t slices = 0, worst_at = 0;

	if (!ids || !idp || !times || !mkdtemp(dir) || gw_registry_open(dir, &reg, err, sizeof(err))) {
		fprintf(stderr, "setup failed: %s\n", err);
		return 1;
	}
	memset(&rec, 0, sizeof(rec));
	strcpy(rec.api, "bench");
	strcpy(rec.stage, "dev");
	strcpy(rec.source_ip, "127.0.0.1");
	strcpy(rec.user_agent, "bench/1.0 (a user agent of typical length for a browser)");
	t0 = now_us();
	for (int i = 0; i < n; i++) {
		gw_registry_new_id(ids[i]);
		memcpy(rec.id, ids[i], sizeof(rec.id));
		rec.slot = (uint32_t)i;
		if (gw_registry_insert(reg, &rec)) {
			fprintf(stderr, "insert failed\n");
			return 1;
		}
		idp[i] = ids[i];
		times[i] = (uint64_t)i;
	}
	t1 = now_us();
	for (int i = 0; i < n; i += 256) {
		size_t k = (size_t)(n - i < 256 ? n - i : 256);
		double s0 = now_us(), d;

		for (size_t j = 0; j < k; j++)
			times[(size_t)i + j] += 1000;
		gw_registry_touch(reg, idp + i, times + i, k);
		d = now_us() - s0;
		if (d > worst) {
			worst = d;
			worst_at = slices;
		}
		slices++;
	}
	t2 = now_us();
	for (int i = 0; i < n; i++)
		gw_registry_delete(reg, ids[i]);
	t3 = now_us();
	printf("connections: %d\n", n);
	printf("connect (new ID + insert): %6.2f us\n", (t1 - t0) / n);
	printf("lastActiveAt touch, batched: %6.2f us per connection\n", (t2 - t1) / n);
	printf("  per slice of 256 IDs (one transaction): %7.1f us mean, %7.1f us worst (slice %zu of %zu)\n",
	       (t2 - t1) / (double)slices, worst, worst_at + 1, slices);
	printf("close (delete):            %6.2f us\n", (t3 - t2) / n);
	gw_registry_close(reg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		return 1;
	free(ids);
	free(idp);
	free(times);
	return 0;
}
