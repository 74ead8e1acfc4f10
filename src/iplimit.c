/* Per source IP connection limits (see iplimit.h): a chained hash table,
 * keyed with a per-process random seed so that a peer cannot aim its
 * addresses at one chain. */
#include "iplimit.h"
#include "throttle.h"

#include <arpa/inet.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define N_CHAINS 4096
#define SWEEP_EVERY 4096

typedef struct entry {
	struct entry *next;
	unsigned char key[16];
	unsigned conns;
	unsigned heads; /* still sending their request head */
	gw_throttle_t rate;
} entry_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t *chains[N_CHAINS];
static unsigned long n_entries, n_acquires;
static uint64_t seed;
static int seeded;
static unsigned heads_total;
static unsigned max_heads = GW_DEFAULT_MAX_PENDING_HEADS;
static unsigned max_heads_per_ip = GW_DEFAULT_MAX_PENDING_HEADS_PER_IP;

/* IPv4 as v4-mapped, IPv6 cut to its /64. */
static int key_of(const char *ip, unsigned char key[16])
{
	struct in_addr a4;

	memset(key, 0, 16);
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &a4, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, key) == 1) {
		memset(key + 8, 0, 8);
		return 0;
	}
	return -1;
}

static size_t chain_of(const unsigned char key[16])
{
	uint64_t a, b, h;

	memcpy(&a, key, 8);
	memcpy(&b, key + 8, 8);
	h = (a ^ seed) * 0x9e3779b97f4a7c15ull;
	h = (h ^ (h >> 29) ^ b) * 0xbf58476d1ce4e5b9ull;
	return (size_t)((h ^ (h >> 32)) % N_CHAINS);
}

/* Nothing held: no connection, and a bucket that would be full by now. */
static int idle(const entry_t *e, uint64_t now_ns)
{
	return !e->conns && !e->heads && e->rate.tat_ns <= now_ns;
}

static void sweep_chain(entry_t **pp, uint64_t now_ns)
{
	while (*pp) {
		entry_t *e = *pp;

		if (idle(e, now_ns)) {
			*pp = e->next;
			free(e);
			n_entries--;
		} else {
			pp = &e->next;
		}
	}
}

static entry_t *find(const unsigned char key[16], entry_t ***chain)
{
	*chain = &chains[chain_of(key)];
	for (entry_t *e = **chain; e; e = e->next)
		if (!memcmp(e->key, key, 16))
			return e;
	return NULL;
}

/* The entry of key, created if needed; under the lock. */
static entry_t *get(const unsigned char key[16], entry_t ***chain, uint64_t now_ns)
{
	entry_t *e;

	if (!seeded) {
		if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
			seed = now_ns;
		seeded = 1;
	}
	if (++n_acquires % SWEEP_EVERY == 0)
		for (size_t i = 0; i < N_CHAINS; i++)
			sweep_chain(&chains[i], now_ns);
	e = find(key, chain);
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			abort();
		memcpy(e->key, key, 16);
		e->next = **chain;
		**chain = e;
		n_entries++;
	}
	return e;
}

enum gw_iplimit_result gw_iplimit_acquire(const char *ip, const gw_iplimit_rule_t *rule,
					  uint64_t now_ns)
{
	enum gw_iplimit_result rc = GW_IPLIMIT_OK;
	unsigned char key[16];
	entry_t **chain, *e;

	if (key_of(ip, key))
		return GW_IPLIMIT_BAD_ADDR;
	pthread_mutex_lock(&lock);
	e = get(key, &chain, now_ns);
	if (rule->max_conns && e->conns >= rule->max_conns) {
		rc = GW_IPLIMIT_TOO_MANY;
	} else if (rule->rate_set) {
		uint64_t tat = e->rate.tat_ns;

		/* The rule may differ per API: the state (tat) is the IP's. */
		gw_throttle_init(&e->rate, rule->rate, rule->burst);
		e->rate.tat_ns = tat;
		if (!gw_throttle_take(&e->rate, now_ns, 1))
			rc = GW_IPLIMIT_TOO_FAST;
	}
	if (rc == GW_IPLIMIT_OK)
		e->conns++;
	sweep_chain(chain, now_ns);
	pthread_mutex_unlock(&lock);
	return rc;
}

void gw_iplimit_release(const char *ip, uint64_t now_ns)
{
	unsigned char key[16];
	entry_t **chain, *e;

	if (key_of(ip, key))
		return;
	pthread_mutex_lock(&lock);
	e = find(key, &chain);
	if (e && e->conns)
		e->conns--;
	sweep_chain(chain, now_ns);
	pthread_mutex_unlock(&lock);
}

void gw_iplimit_heads_configure(unsigned max_total, unsigned max_per_ip)
{
	pthread_mutex_lock(&lock);
	max_heads = max_total;
	max_heads_per_ip = max_per_ip;
	pthread_mutex_unlock(&lock);
}

enum gw_iplimit_result gw_iplimit_head_acquire(const char *ip, int *per_ip)
{
	enum gw_iplimit_result rc = GW_IPLIMIT_OK;
	uint64_t now = gw_throttle_now_ns();
	unsigned char key[16];
	entry_t **chain, *e;

	*per_ip = 0;
	pthread_mutex_lock(&lock);
	if (max_heads && heads_total >= max_heads) {
		rc = GW_IPLIMIT_TOO_MANY;
	} else if (!key_of(ip, key)) {
		e = get(key, &chain, now);
		if (max_heads_per_ip && e->heads >= max_heads_per_ip) {
			rc = GW_IPLIMIT_TOO_MANY;
			*per_ip = 1;
		} else {
			e->heads++;
		}
		sweep_chain(chain, now);
	}
	if (rc == GW_IPLIMIT_OK)
		heads_total++;
	pthread_mutex_unlock(&lock);
	return rc;
}

void gw_iplimit_head_release(const char *ip)
{
	unsigned char key[16];
	entry_t **chain, *e;

	pthread_mutex_lock(&lock);
	if (heads_total)
		heads_total--;
	if (!key_of(ip, key) && (e = find(key, &chain))) {
		if (e->heads)
			e->heads--;
		sweep_chain(chain, gw_throttle_now_ns());
	}
	pthread_mutex_unlock(&lock);
}

unsigned long gw_iplimit_entries(void)
{
	unsigned long n;

	pthread_mutex_lock(&lock);
	n = n_entries;
	pthread_mutex_unlock(&lock);
	return n;
}
