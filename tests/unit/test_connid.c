/* Connection IDs (connid.h) and the slot table that issues them
 * (gateway.c): round trip, forged and stale IDs refused, shape checked,
 * never an ID twice. */
#include "bus.h"
#include "unit.h"

#include <stdlib.h>
#include <time.h>

static gw_connid_key_t key;

/* The reference vector of the SipHash paper (appendix A). */
static void test_siphash_vector(void)
{
	unsigned char k[16], m[15];

	for (int i = 0; i < 16; i++)
		k[i] = (unsigned char)i;
	for (int i = 0; i < 15; i++)
		m[i] = (unsigned char)i;
	CHECK(gw_siphash24(k, m, sizeof(m)) == 0xa129ca6149be45e5ULL);
}

static void test_round_trip(void)
{
	gw_connid_t in = { 0, 3, 7, 0xabcdef, 0xdeadbeef }, out;
	char s[GW_CONNID_LEN + 1];

	CHECK_INT_EQ(gw_connid_encode(&key, &in, s), GW_CONNID_OK);
	CHECK_INT_EQ(strlen(s), 24);
	CHECK_INT_EQ(strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789-_"), 24);
	CHECK_INT_EQ(gw_connid_decode(&key, s, strlen(s), &out), GW_CONNID_OK);
	CHECK_INT_EQ(out.node, 0);
	CHECK_INT_EQ(out.loop, 3);
	CHECK_INT_EQ(out.api, 7);
	CHECK_INT_EQ(out.slot, 0xabcdef);
	CHECK_INT_EQ(out.gen, 0xdeadbeef);
	in.slot = GW_CONNID_MAX_SLOT + 1;
	CHECK_INT_EQ(gw_connid_encode(&key, &in, s), GW_CONNID_RANGE);
	in.slot = 0;
	in.loop = 256;
	CHECK_INT_EQ(gw_connid_encode(&key, &in, s), GW_CONNID_RANGE);
}

/* Any one character changed, anywhere, is refused: in the fields by the
 * MAC, in the MAC itself by the comparison. */
static void test_forged_refused(void)
{
	gw_connid_t in = { 0, 1, 0, 42, 5 }, out = { 9, 9, 9, 9, 9 };
	gw_connid_key_t other;
	char s[GW_CONNID_LEN + 1], f[GW_CONNID_LEN + 1];

	CHECK_INT_EQ(gw_connid_encode(&key, &in, s), GW_CONNID_OK);
	for (int i = 0; i < GW_CONNID_LEN; i++) {
		memcpy(f, s, sizeof(f));
		f[i] = f[i] == 'A' ? 'B' : 'A';
		CHECK_MSG(gw_connid_decode(&key, f, GW_CONNID_LEN, &out) == GW_CONNID_FORGED,
			  "position %d", i);
	}
	CHECK_INT_EQ(out.slot, 9); /* untouched on refusal */
	/* Another process's key (another run of the gateway). */
	CHECK_INT_EQ(gw_connid_key_init(&other), 0);
	CHECK_INT_EQ(gw_connid_decode(&other, s, GW_CONNID_LEN, &out), GW_CONNID_FORGED);
}

static void test_shape_refused(void)
{
	gw_connid_t in = { 0, 0, 0, 1, 1 }, out;
	char s[GW_CONNID_LEN + 2], f[GW_CONNID_LEN + 2];
	const char bad[] = "+/=.%~ \n";

	CHECK_INT_EQ(gw_connid_encode(&key, &in, s), GW_CONNID_OK);
	CHECK_INT_EQ(gw_connid_decode(&key, s, 0, &out), GW_CONNID_MALFORMED);
	CHECK_INT_EQ(gw_connid_decode(&key, s, 23, &out), GW_CONNID_MALFORMED);
	memcpy(f, s, GW_CONNID_LEN);
	f[24] = 'A';
	CHECK_INT_EQ(gw_connid_decode(&key, f, 25, &out), GW_CONNID_MALFORMED);
	/* The 16-character random IDs of earlier versions. */
	CHECK_INT_EQ(gw_connid_decode(&key, "AAAAAAAAAAAAAAAA", 16, &out), GW_CONNID_MALFORMED);
	for (size_t b = 0; b < sizeof(bad); b++) { /* the NUL too */
		memcpy(f, s, sizeof(s));
		f[5] = bad[b];
		CHECK_MSG(gw_connid_decode(&key, f, GW_CONNID_LEN, &out) == GW_CONNID_MALFORMED,
			  "byte 0x%02x", (unsigned char)bad[b]);
	}
}

static gw_conn_t *fake(uintptr_t n)
{
	return (gw_conn_t *)(n * 16);
}

/* The slot table: a freed slot's ID finds nothing, even once the slot
 * holds a new connection; IDs of one slot never repeat; a slot whose
 * generation would wrap is retired. */
static void test_slots_stale_and_unique(void)
{
	gw_worker_t *gw = calloc(1, sizeof(*gw));
	char first[GW_CONN_ID_LEN + 1], id[GW_CONN_ID_LEN + 1];
	enum { N = 5000 };
	char(*ids)[GW_CONN_ID_LEN + 1] = calloc(N, sizeof(*ids));
	uint32_t slot, s2, n;
	int dups = 0;

	gw->worker = 2;
	gw->conns = gw_conns_create(gw);
	CHECK_INT_EQ(gw_worker_slot_alloc(gw, fake(1), &slot), 0);
	CHECK_INT_EQ(gw_worker_conn_id(gw, slot, 4, first), 0);
	CHECK(gw_worker_find_conn(gw, first, strlen(first)) == fake(1));
	gw_worker_slot_free(gw, slot);
	CHECK(gw_worker_find_conn(gw, first, strlen(first)) == NULL);
	/* LIFO: the next connection takes the same slot, a newer generation. */
	CHECK_INT_EQ(gw_worker_slot_alloc(gw, fake(2), &s2), 0);
	CHECK_INT_EQ(s2, slot);
	CHECK_INT_EQ(gw_worker_conn_id(gw, s2, 4, id), 0);
	CHECK(strcmp(id, first) != 0);
	CHECK(gw_worker_find_conn(gw, first, strlen(first)) == NULL);
	CHECK(gw_worker_find_conn(gw, id, strlen(id)) == fake(2));
	gw_worker_slot_free(gw, s2);

	/* Another loop's ID is not this loop's connection. */
	gw->worker = 3;
	CHECK(gw_worker_find_conn(gw, id, strlen(id)) == NULL);
	gw->worker = 2;

	for (int i = 0; i < N; i++) {
		CHECK_INT_EQ(gw_worker_slot_alloc(gw, fake(3), &s2), 0);
		gw_worker_conn_id(gw, s2, 0, ids[i]);
		gw_worker_slot_free(gw, s2);
	}
	qsort(ids, N, sizeof(*ids), (int (*)(const void *, const void *))strcmp);
	for (int i = 1; i < N; i++)
		dups += !strcmp(ids[i - 1], ids[i]);
	CHECK_INT_EQ(dups, 0);

	/* Last generation: once freed, the slot is never handed out again. */
	CHECK_INT_EQ(gw_worker_slot_alloc(gw, fake(4), &slot), 0);
	gw_conns_set_gen(gw->conns, slot, UINT32_MAX);
	gw_worker_slot_free(gw, slot);
	n = gw_conn_slots(gw); /* the table grows once the free slots run out */
	for (uint32_t i = 0; i < n; i++) {
		CHECK_INT_EQ(gw_worker_slot_alloc(gw, fake(5), &s2), 0);
		if (s2 == slot) {
			CHECK_MSG(0, "a retired slot was reused");
			break;
		}
	}
	free(ids);
	gw_conns_destroy(gw->conns);
	free(gw);
}

/* A figure, not a check: what refusing or finding an ID costs. */
static void test_cost(void)
{
	gw_connid_t in = { 0, 1, 0, 42, 5 }, out;
	char s[GW_CONNID_LEN + 1];
	struct timespec a, b;
	enum { N = 200000 };
	int ok = 0;

	gw_connid_encode(&key, &in, s);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < N; i++)
		ok += gw_connid_decode(&key, s, GW_CONNID_LEN, &out) == GW_CONNID_OK;
	clock_gettime(CLOCK_MONOTONIC, &b);
	CHECK_INT_EQ(ok, N);
	fprintf(stderr, "connid: decode+verify %.0f ns\n",
		((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / N);
}

int main(void)
{
	if (gw_connid_key_init(&key))
		return 1;
	RUN(test_siphash_vector);
	RUN(test_round_trip);
	RUN(test_forged_refused);
	RUN(test_shape_refused);
	RUN(test_slots_stale_and_unique);
	RUN(test_cost);
	UNIT_MAIN_END();
}
