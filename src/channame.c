/* Channel names (channame.h). */
#include "channame.h"
#include "connid.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>

int gw_chan_name_valid(const char *name, size_t len)
{
	if (!len || len > GW_CHAN_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':'))
			return 0;
	}
	return 1;
}

/* Keyed, with a key of this process: names are often a client's choice
 * (a room), and with an unkeyed hash (FNV-1a) names made to share their
 * low bits all land in one bucket, each join and publish then walking
 * every channel. */
static unsigned char hash_key[16];
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void)
{
	if (RAND_bytes(hash_key, sizeof(hash_key)) != 1)
		abort();
}

uint64_t gw_chan_hash(const char *s, size_t len)
{
	pthread_once(&hash_once, hash_key_init);
	return gw_siphash24(hash_key, s, len);
}
