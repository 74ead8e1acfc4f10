/* The cluster messages' seal (cluster_wire.h): HMAC-SHA256 (OpenSSL) under
 * a key derived from the cluster secret, over the subject, the reply
 * subject, the head and the payload. Pure apart from OpenSSL: the fuzz
 * harness reaches it, cluster.c seals on its sender thread and opens on
 * the NATS delivery thread. */
#include "cluster_wire.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* OpenSSL 3's context copy costs microseconds (several allocations): the
 * contexts keyed once are kept and re-armed (EVP_MAC_init without a key
 * keeps it), a few per thread that seals or opens at once. */
#define MAC_POOL 8

struct gw_cluster_mac {
	EVP_MAC_CTX *ctx; /* keyed once; the pool's copies come from it */
	pthread_mutex_t lock;
	EVP_MAC_CTX *pool[MAC_POOL];
	int n_pool;
};

#define MAC_LABEL "wsgate cluster NATS messages v1"

void gw_cluster_mac_free(gw_cluster_mac_t *k)
{
	if (!k)
		return;
	while (k->n_pool)
		EVP_MAC_CTX_free(k->pool[--k->n_pool]);
	EVP_MAC_CTX_free(k->ctx);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

gw_cluster_mac_t *gw_cluster_mac_new(const unsigned char *secret, size_t len)
{
	unsigned char key[SHA256_DIGEST_LENGTH];
	unsigned int klen = 0;
	OSSL_PARAM params[2];
	EVP_MAC *mac = NULL;
	gw_cluster_mac_t *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	pthread_mutex_init(&k->lock, NULL);
	/* HMAC(secret, label): the messages' key, unrelated to the IDs'. */
	if (!HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)MAC_LABEL,
		  strlen(MAC_LABEL), key, &klen) || klen != sizeof(key))
		goto fail;
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!mac || !(k->ctx = EVP_MAC_CTX_new(mac)))
		goto fail;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_init(k->ctx, key, sizeof(key), params))
		goto fail;
	EVP_MAC_free(mac);
	OPENSSL_cleanse(key, sizeof(key));
	return k;
fail:
	EVP_MAC_free(mac);
	OPENSSL_cleanse(key, sizeof(key));
	gw_cluster_mac_free(k);
	return NULL;
}

static int mac_part(EVP_MAC_CTX *c, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	unsigned char l[2] = { (unsigned char)(n >> 8), (unsigned char)n };

	return n <= 0xffff && EVP_MAC_update(c, l, 2) &&
	       EVP_MAC_update(c, (const unsigned char *)(s ? s : ""), n);
}

/* A keyed context, ready for a tag; NULL when OpenSSL fails. */
static EVP_MAC_CTX *mac_take(gw_cluster_mac_t *k)
{
	EVP_MAC_CTX *c = NULL;

	pthread_mutex_lock(&k->lock);
	if (k->n_pool)
		c = k->pool[--k->n_pool];
	pthread_mutex_unlock(&k->lock);
	if (c && EVP_MAC_init(c, NULL, 0, NULL))
		return c;
	EVP_MAC_CTX_free(c);
	return EVP_MAC_CTX_dup(k->ctx);
}

static void mac_give(gw_cluster_mac_t *k, EVP_MAC_CTX *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&k->lock);
	if (k->n_pool < MAC_POOL) {
		k->pool[k->n_pool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&k->lock);
	EVP_MAC_CTX_free(c);
}

/* The tag of head[0..10] and the payload, sent on subject with reply. */
static int env_tag(const gw_cluster_mac_t *kc, const char *subject, const char *reply,
		   const unsigned char *head, const unsigned char *payload, size_t len,
		   unsigned char out[GW_CLUSTER_ENV_TAG])
{
	gw_cluster_mac_t *k = (gw_cluster_mac_t *)kc; /* only its pool changes */
	unsigned char full[EVP_MAX_MD_SIZE];
	size_t n = 0;
	EVP_MAC_CTX *c = k ? mac_take(k) : NULL;
	int rc = -1;

	if (c && mac_part(c, subject) && mac_part(c, reply) &&
	    EVP_MAC_update(c, head, GW_CLUSTER_ENV_HEAD - GW_CLUSTER_ENV_TAG) &&
	    EVP_MAC_update(c, payload, len) && EVP_MAC_final(c, full, &n, sizeof(full)) &&
	    n >= GW_CLUSTER_ENV_TAG) {
		memcpy(out, full, GW_CLUSTER_ENV_TAG);
		rc = 0;
	}
	if (k)
		mac_give(k, c);
	return rc;
}

int gw_cluster_seal(const gw_cluster_mac_t *k, const char *subject, const char *reply,
		    int type, uint32_t node, uint64_t seq, unsigned char *msg, size_t len)
{
	msg[0] = 1;
	msg[1] = (unsigned char)type;
	msg[2] = (unsigned char)node;
	for (int i = 0; i < 8; i++)
		msg[3 + i] = (unsigned char)(seq >> (8 * (7 - i)));
	return env_tag(k, subject, reply, msg, msg + GW_CLUSTER_ENV_HEAD, len,
		       msg + GW_CLUSTER_ENV_HEAD - GW_CLUSTER_ENV_TAG);
}

int gw_cluster_open(const gw_cluster_mac_t *k, const char *subject, const char *reply,
		    const unsigned char *d, size_t len, gw_cluster_env_t *env)
{
	unsigned char tag[GW_CLUSTER_ENV_TAG];

	memset(env, 0, sizeof(*env));
	if (len < GW_CLUSTER_ENV_HEAD || d[0] != 1 ||
	    env_tag(k, subject, reply, d, d + GW_CLUSTER_ENV_HEAD, len - GW_CLUSTER_ENV_HEAD, tag) ||
	    CRYPTO_memcmp(tag, d + GW_CLUSTER_ENV_HEAD - GW_CLUSTER_ENV_TAG, sizeof(tag)))
		return -1;
	env->type = d[1];
	env->node = d[2];
	for (int i = 0; i < 8; i++)
		env->seq = env->seq << 8 | d[3 + i];
	env->payload = d + GW_CLUSTER_ENV_HEAD;
	env->len = len - GW_CLUSTER_ENV_HEAD;
	return 0;
}
