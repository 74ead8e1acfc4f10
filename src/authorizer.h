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
#include "authz_store.h"

#include <stdint.h>

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

#endif
