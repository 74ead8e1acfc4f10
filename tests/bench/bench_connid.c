/* Management lookup micro-benchmark: what a POST costs to find its
 * connection, before and after issue 10 §2. Before: a registry read (LMDB
 * read transaction and msgpack decode) on the receiving loop, and another
 * on the owner's loop. After: the ID's MAC checked and the slot's
 * generation compared, no registry read. Prints figures; asserts nothing.
 *
 *   build/bench_connid [connections]
 */
#include "bus.h"

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
	int n = argc > 1 ? atoi(argv[1]) : 20000, rounds = 10, found = 0;
	char dir[] = "/tmp/wsgate-bench-connid-XXXXXX", err[256], cmd[128];
	char (*ids)[GW_CONN_ID_LEN + 1] = calloc((size_t)n, sizeof(*ids));
	gw_worker_t *gw = calloc(1, sizeof(*gw));
	gw_registry_t *reg;
	gw_conn_record_t rec;
	double t0, t1, t2;

	if (gw)
		gw->conns = gw_conns_create(gw);
	if (!ids || !gw || !gw->conns || !mkdtemp(dir) || gw_registry_open(dir, &reg, err, sizeof(err))) {
		fprintf(stderr, "setup failed: %s\n", err);
		return 1;
	}
	memset(&rec, 0, sizeof(rec));
	strcpy(rec.api, "bench");
	strcpy(rec.stage, "dev");
	strcpy(rec.source_ip, "127.0.0.1");
	strcpy(rec.user_agent, "bench/1.0 (a user agent of typical length for a browser)");
	for (int i = 0; i < n; i++) {
		uint32_t slot;

		gw_worker_slot_alloc(gw, (gw_conn_t *)(uintptr_t)(16 * (i + 1)), &slot);
		if (gw_worker_conn_id(gw, slot, 0, ids[i]))
			return 1;
		memcpy(rec.id, ids[i], sizeof(rec.id));
		rec.slot = slot;
		if (gw_registry_insert(reg, &rec))
			return 1;
	}
	t0 = now_us();
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < n; i++) {
			/* before: twice per POST (mgmt start, then find_conn) */
			found += gw_registry_get(reg, ids[i], GW_CONN_ID_LEN, &rec) == GW_REG_OK;
			found += gw_registry_get(reg, ids[i], GW_CONN_ID_LEN, &rec) == GW_REG_OK;
		}
	t1 = now_us();
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < n; i++) {
			/* after: the edge decodes the ID, the owner checks the slot */
			gw_op_t *op = gw_op_create(GW_OP_POST, ids[i], GW_CONN_ID_LEN);

			found += op && gw_worker_conn_at(gw, &op->target) != NULL;
			gw_op_destroy(op);
		}
	t2 = now_us();
	printf("%d connections: lookup per POST, before (2 registry reads) %.2f us, "
	       "after (ID decode + slot check, op alloc) %.3f us [%d found]\n",
	       n, (t1 - t0) / ((double)n * rounds), (t2 - t1) / ((double)n * rounds), found);
	gw_registry_close(reg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		return 1;
	gw_conns_destroy(gw->conns);
	free(gw);
	free(ids);
	return 0;
}
