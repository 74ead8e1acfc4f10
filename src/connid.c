/* Connection ID codec (connid.h): packing, URL-safe base64, MAC. */
#include "connid.h"

#include <pthread.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#define RAW_BYTES 18
#define BODY_BYTES 10 /* node, loop, api, slot (3), gen (4) */
#define MAC_BYTES (RAW_BYTES - BODY_BYTES)

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int gw_connid_key_init(gw_connid_key_t *key)
{
	return RAND_bytes(key->k, sizeof(key->k)) == 1 ? 0 : -1;
}

static gw_connid_key_t process_key;
static int process_key_ok, process_key_given;
static pthread_once_t process_key_once = PTHREAD_ONCE_INIT;

static void process_key_draw(void)
{
	if (!process_key_given)
		process_key_ok = !gw_connid_key_init(&process_key);
}

int gw_connid_set_process_key(const gw_connid_key_t *key)
{
	/* Before any thread draws: the once below then finds the key set. */
	if (process_key_ok)
		return -1;
	process_key = *key;
	process_key_given = process_key_ok = 1;
	pthread_once(&process_key_once, process_key_draw);
	return 0;
}

const gw_connid_key_t *gw_connid_process_key(void)
{
	pthread_once(&process_key_once, process_key_draw);
	return process_key_ok ? &process_key : NULL;
}

static uint32_t node_self, node_epoch;

void gw_connid_set_node(uint32_t self, uint32_t epoch)
{
	node_self = self;
	node_epoch = epoch;
}

uint32_t gw_connid_self(void)
{
	return node_self;
}

uint32_t gw_connid_epoch(void)
{
	return node_epoch;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
	do {                                                                   \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);      \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                         \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                         \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);      \
	} while (0)

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* SipHash-2-4 (Aumasson and Bernstein), a MAC made for short inputs: a
 * few dozen nanoseconds where OpenSSL's one-shot HMAC took microseconds. */
uint64_t gw_siphash24(const unsigned char key[16], const void *data, size_t n)
{
	const unsigned char *p = data, *end = p + (n & ~(size_t)7);
	uint64_t k0 = le64(key), k1 = le64(key + 8), m, b = (uint64_t)n << 56;
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;

	for (; p != end; p += 8) {
		m = le64(p);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < (n & 7); i++)
		b |= (uint64_t)p[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static void mac(const gw_connid_key_t *key, const unsigned char *body,
		unsigned char out[MAC_BYTES])
{
	uint64_t t = gw_siphash24(key->k, body, BODY_BYTES);

	for (int i = 0; i < MAC_BYTES; i++)
		out[i] = (unsigned char)(t >> (8 * i));
}

static void put_be(unsigned char *p, uint32_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

static uint32_t get_be(const unsigned char *p, int n)
{
	uint32_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

int gw_connid_encode(const gw_connid_key_t *key, const gw_connid_t *id,
		     char out[GW_CONNID_LEN + 1])
{
	unsigned char raw[RAW_BYTES];

	if (id->node > 255 || id->loop > 255 || id->api > 255 ||
	    id->slot > GW_CONNID_MAX_SLOT)
		return GW_CONNID_RANGE;
	raw[0] = (unsigned char)id->node;
	raw[1] = (unsigned char)id->loop;
	raw[2] = (unsigned char)id->api;
	put_be(raw + 3, id->slot, 3);
	put_be(raw + 6, id->gen, 4);
	mac(key, raw, raw + BODY_BYTES);
	/* 18 bytes are 6 groups of 3: no padding. */
	for (int g = 0; g < RAW_BYTES / 3; g++) {
		uint32_t v = get_be(raw + 3 * g, 3);

		for (int i = 0; i < 4; i++)
			out[4 * g + i] = alphabet[(v >> (18 - 6 * i)) & 63];
	}
	out[GW_CONNID_LEN] = '\0';
	return GW_CONNID_OK;
}

static int sextet(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int gw_connid_decode(const gw_connid_key_t *key, const char *s, size_t len,
		     gw_connid_t *id)
{
	unsigned char raw[RAW_BYTES], want[MAC_BYTES];

	if (len != GW_CONNID_LEN)
		return GW_CONNID_MALFORMED;
	for (int g = 0; g < RAW_BYTES / 3; g++) {
		uint32_t v = 0;

		for (int i = 0; i < 4; i++) {
			int x = sextet((unsigned char)s[4 * g + i]);

			if (x < 0)
				return GW_CONNID_MALFORMED;
			v = v << 6 | (uint32_t)x;
		}
		put_be(raw + 3 * g, v, 3);
	}
	mac(key, raw, want);
	if (CRYPTO_memcmp(want, raw + BODY_BYTES, MAC_BYTES))
		return GW_CONNID_FORGED;
	id->node = raw[0];
	id->loop = raw[1];
	id->api = raw[2];
	id->slot = get_be(raw + 3, 3);
	id->gen = get_be(raw + 6, 4);
	return GW_CONNID_OK;
}
