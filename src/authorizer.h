/* Authorizers on $connect (reference §5): what an upgrade's identity is
 * (its identity sources), what an authorizer's answer means (an IAM policy
 * on the methodArn, or {"isAuthorized": ...}), the result cache shared by
 * the loops, and JWT checks against a JWKS. The call itself goes through
 * the one invoke path (integration.h); nothing here blocks or logs (but
 * the JWKS refresh thread, gw_jwks_start), and no token or key ever
 * appears in a returned text. */
#ifndef GW_AUTHORIZER_H
#define GW_AUTHORIZER_H

#include "backend.h"
#include "buf.h"
#include "config.h"
#include "httpreq.h"

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

/* The identity of a request: its identity sources' values, as a cache key
 * into key (reset first). -1 when one is missing or empty: 401 without a
 * call. The JWT authorizer's key is its token (see gw_authz_token). */
int gw_authz_identity(const gw_authorizer_t *a, const gw_api_t *api, const gw_req_t *head,
		      gw_buf_t *key);

/* arn:aws:execute-api:local:ACCOUNT:API/STAGE/$connect, ACCOUNT the API's
 * accountId (000000000000 by default). */
void gw_authz_method_arn(const gw_api_t *api, gw_buf_t *out);

/* Reads a REQUEST authorizer's answer. latency_ms becomes the context's
 * integrationLatency. */
void gw_authz_decide(const char *method_arn, const gw_http_resp_t *resp, uint64_t latency_ms,
		     gw_authz_result_t *out);

/* A JWT authorizer's verdict on a request: its token (the identity
 * source's value, bare or "Bearer <token>") signed by a key of the JWKS
 * (by kid and alg: RS256/384/512, ES256/384, EdDSA), iss the issuer, aud
 * (or client_id) one of the audiences, exp, nbf and iat within leeway of
 * now (wall_ms: epoch ms). ALLOW's context is {"jwt":{"claims":{...}}}; every
 * failure is UNAUTHORIZED (401), as on HTTP APIs. A valid token is cached
 * (mono_ms: gw_now_ms) until its exp (leeway included) or the TTL.
 * refresh: an unknown kid may ask for a fetch of the jwksUri (see
 * jwks_wait). */
void gw_authz_jwt(const gw_authorizer_t *a, const gw_api_t *api, const gw_req_t *head,
		  uint64_t wall_ms, uint64_t mono_ms, int refresh, gw_authz_result_t *out);

/* The status and body a verdict gives the client. */
int gw_authz_status(enum gw_authz_verdict v, const char **body);

void gw_authz_result_dispose(gw_authz_result_t *r);

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

#endif
