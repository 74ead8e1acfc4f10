/* LD_PRELOAD shim for bench_mgmt_post.mjs: counts mdb_get calls (registry
 * reads) and writes the count to /tmp/mdb_get.PID at exit.
 *   gcc -shared -fPIC -O2 -o /tmp/mdb_get_count.so tests/bench/mdb_get_count.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static unsigned long gets;
int mdb_get(MDB_txn *t, MDB_dbi d, MDB_val *k, MDB_val *v)
{
	static int (*real)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *);
	if (!real)
		real = (int (*)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *))dlsym(RTLD_NEXT, "mdb_get");
	__atomic_add_fetch(&gets, 1, __ATOMIC_RELAXED);
	return real(t, d, k, v);
}
__attribute__((destructor)) static void report(void)
{
	char p[64];
	FILE *f;
	snprintf(p, sizeof(p), "/tmp/mdb_get.%d", (int)getpid());
	if ((f = fopen(p, "w"))) { fprintf(f, "%lu\n", gets); fclose(f); }
}
