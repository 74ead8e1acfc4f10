/* What an authorizer keeps across requests (authz_store.c): the verdict
 * cache shared by the loops, the JWKS keys, a jwksUri's refresh thread.
 * Created and freed by the configuration's load (config.c), used by the
 * authorizers' checks (authorizer.h), so below both. */
#ifndef GW_AUTHZ_STORE_H
#define GW_AUTHZ_STORE_H

#include "buf.h"
#include "config.h"

#include <openssl/evp.h>
#include <stdint.h>

/* AWS's limit on what an authorizer may answer (and so on the context a
 * connection keeps for its life). */
#define GW_AUTHZ_MAX_RESPONSE 8192

enum gw_authz_verdict {
	GW_AUTHZ_ALLOW = 0,
	GW_AUTHZ_UNAUTHORIZED, /* 401: "Unauthorized", a missing identity, a bad token */
	GW_AUTHZ_DENY,         /* 403: a Deny (or no Allow) on the methodArn */
	GW_AUTHZ_ERROR,        /* 500: the authorizer failed or answered garbage */
};

typedef struct gw_authz_result {
	enum gw_authz_verdict verdict;
	/* ALLOW: requestContext.authorizer as a JSON object, malloc'd; the
	 * caller owns it. NULL otherwise. */
	char *context;
	size_t context_len;
	const char *why; /* static text for the log */
	/* JWT: the token names a kid the keys lack and a fetch of the jwksUri
	 * was asked: UNAUTHORIZED for now; once gw_jwks_done(a, jwks_wait),
	 * gw_authz_jwt again (refresh 0) has the verdict. 0: final. */
	uint64_t jwks_wait;
	/* JWT, UNAUTHORIZED: the 401's www-authenticate challenge, as HTTP
	 * APIs send it (GW_AUTHZ_BEARER_INVALID: why is its error_description). */
	enum { GW_AUTHZ_NO_CHALLENGE, GW_AUTHZ_BEARER, GW_AUTHZ_BEARER_INVALID } challenge;
} gw_authz_result_t;

/* A JWKS key: immutable once read. */
enum gw_jwk_kind { GW_JWK_RSA, GW_JWK_P256, GW_JWK_P384, GW_JWK_ED25519 };

struct gw_jwk {
	char *kid; /* NULL: none */
	enum gw_jwk_kind kind;
	EVP_PKEY *pkey;
};

/* Immutable once read; shared by reference (a JWKS refresh swaps in a new
 * set while upgrades still verify with the old one). */
struct gw_authz_keys {
	struct gw_jwk *keys;
	size_t n;
	int refs;      /* atomic */
	uint64_t hash; /* of the fetched document; 0: read from a file */
};

/* --- the result cache: per authorizer, shared by the loops, bounded in
 * entries and bytes (the oldest go first); only ALLOW and DENY are kept. */
struct gw_authz_cache *gw_authz_cache_create(void);
void gw_authz_cache_destroy(struct gw_authz_cache *c);
/* 1 and out filled (a copy) on a fresh hit, else 0. */
int gw_authz_cache_get(const gw_authorizer_t *a, const char *key, size_t len, uint64_t now_ms,
		       gw_authz_result_t *out);
void gw_authz_cache_put(const gw_authorizer_t *a, const char *key, size_t len, uint64_t now_ms,
			const gw_authz_result_t *r);

/* --- JWKS: the keys of a JWT authorizer, read at load. NULL and err
 * (naming what is wrong, never key material) on failure. */
struct gw_authz_keys *gw_authz_keys_load(const char *file, char *err, size_t errlen);
/* The same from an https:// URL, verified against ca_file (NULL: the
 * system's CA bundle), within 1.5 s and 150,000 bytes (AWS's limits).
 * Blocks: for the loader (start-up, --check, the reload thread) only. */
struct gw_authz_keys *gw_authz_keys_fetch(const char *url, const char *ca_file, char *err,
					  size_t errlen);
/* Drops a reference (the set is shared once a refresh thread has it). */
void gw_authz_keys_free(struct gw_authz_keys *k);

/* --- a jwksUri kept fresh: a thread fetches it again every refresh_s
 * seconds and when an unknown kid asks (at most once per 10 s), off the
 * event loops; a new document's keys replace keys for every loop at once,
 * a failed fetch keeps them (logged, rate-limited). keys: the set read at
 * load (a reference is taken). Stopped by gw_jwks_stop, which never waits
 * for a fetch. */
struct gw_jwks;
struct gw_jwks *gw_jwks_start(const char *name, const char *url, const char *ca_file,
			      unsigned refresh_s, struct gw_authz_keys *keys);
void gw_jwks_stop(struct gw_jwks *j);
/* Whether the fetch a result's jwks_wait names has ended (well or not). */
int gw_jwks_done(const gw_authorizer_t *a, uint64_t n);

/* --- for gw_authz_jwt (authorizer.c) */
/* The keys in use (a reference) and their generation (0: keys read at
 * load); gw_jwks_put drops it. */
struct gw_authz_keys *gw_jwks_get(const gw_authorizer_t *a, uint64_t *gen);
void gw_jwks_put(const gw_authorizer_t *a, struct gw_authz_keys *ks);
/* Asks for a fetch for an unknown kid: the number to wait for (see
 * gw_jwks_done): the fetch still under way if one is (the upgrades of a
 * rotation wait for the same fetch), else a new one, or 0 when the last
 * one was asked less than 10 s ago. */
uint64_t gw_jwks_ask(struct gw_jwks *j, uint64_t now_ms);
/* A valid token's verdict, kept until expires_ms (gw_now_ms). */
void gw_authz_cache_put_until(struct gw_authz_cache *c, const char *key, size_t len,
			      uint64_t expires_ms, const gw_authz_result_t *r);
/* base64url (padded or not) into out (reset first); -1 when it is not. */
int gw_b64url_decode(const char *s, size_t n, gw_buf_t *out);

#endif
