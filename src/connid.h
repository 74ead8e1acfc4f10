/* Connection IDs that say where the connection lives. An ID is 18 bytes
 * in URL-safe base64 (24 characters): node, loop, API, slot, generation,
 * then a MAC over those 10 bytes (SipHash-2-4, 64 bits) with a 128-bit
 * secret drawn at process start. So the owner of an ID is found by
 * arithmetic, a forged or mistyped ID is refused by one MAC, and a stale ID
 * (its slot reused) by comparing the generation with the slot's. IDs never
 * repeat within a process (a slot whose generation would wrap is retired)
 * and, the secret being new each run, not across runs either.
 * Pure functions, no I/O: the caller owns the key. */
#ifndef GW_CONNID_H
#define GW_CONNID_H

#include <stddef.h>
#include <stdint.h>

#define GW_CONNID_LEN 24      /* characters, without the NUL */
#define GW_CONNID_KEY_BYTES 16
#define GW_CONNID_MAX_SLOT 0xffffffu /* 24 bits */
/* An API index too large for the ID's byte: its stage is checked on the
 * owner's side rather than from the ID. */
#define GW_CONNID_API_MANY 255u

enum {
	GW_CONNID_OK = 0,
	GW_CONNID_MALFORMED = -1, /* wrong length or alphabet */
	GW_CONNID_FORGED = -2,    /* well formed, the MAC does not match */
	GW_CONNID_RANGE = -3,     /* a field does not fit (encode) */
};

typedef struct gw_connid_key {
	unsigned char k[GW_CONNID_KEY_BYTES];
} gw_connid_key_t;

/* Where a connection lives. */
typedef struct gw_connid {
	uint32_t node; /* 0: a single node; in a cluster its node ID, < 256 */
	uint32_t loop; /* event loop index, < 256 */
	uint32_t api;  /* index of the API in the configuration, or API_MANY */
	uint32_t slot; /* index in the loop's slot table, <= GW_CONNID_MAX_SLOT */
	uint32_t gen;  /* the slot's generation when the connection took it */
} gw_connid_t;

/* SipHash-2-4 of data under a 128-bit key (exposed for its test vector). */
uint64_t gw_siphash24(const unsigned char key[16], const void *data, size_t n);

/* Fills key from OpenSSL's CSPRNG; 0 or -1. */
int gw_connid_key_init(gw_connid_key_t *key);
/* The process's key, drawn on first use (thread-safe); NULL if OpenSSL's
 * generator failed. */
const gw_connid_key_t *gw_connid_process_key(void);

/* Makes key the process's key (a cluster's shared secret), before the
 * first gw_connid_process_key call; -1 when a key is already in use. */
int gw_connid_set_process_key(const gw_connid_key_t *key);

/* This node's ID in connection IDs (0 without a cluster) and the epoch
 * XORed into each ID's generation (0 without a cluster, where the secret
 * is new each run): set by the cluster (cluster.c) at its start, before
 * the loops run, read by whatever names connections. */
void gw_connid_set_node(uint32_t self, uint32_t epoch);
uint32_t gw_connid_self(void);
uint32_t gw_connid_epoch(void);

/* Writes the 24 characters and a NUL; GW_CONNID_RANGE if a field does not
 * fit its bits. */
int gw_connid_encode(const gw_connid_key_t *key, const gw_connid_t *id,
		     char out[GW_CONNID_LEN + 1]);
/* Accepts any bytes (s need not be NUL-terminated): GW_CONNID_OK and *id
 * filled, or a negative code and *id untouched. O(1), constant-time MAC
 * comparison. */
int gw_connid_decode(const gw_connid_key_t *key, const char *s, size_t len,
		     gw_connid_t *id);

#endif
