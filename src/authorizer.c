/* Authorizers on $connect (see authorizer.h). An answer is judged as AWS
 * judges a Lambda authorizer's (reference §5.4): "Unauthorized" is 401, a
 * Deny or no matching Allow is 403, anything else that is not an Allow is
 * 500. */
#include "authorizer.h"
#include "admit.h"
#include "httpresp.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* --- identity ---------------------------------------------------------- */

static int source_value(const gw_identity_source_t *s, const gw_api_t *api,
			const gw_req_t *head, gw_buf_t *val)
{
	gw_str_t v, url;
	const char *q, *sv;

	gw_buf_reset(val);
	switch (s->kind) {
	case GW_ID_HEADER:
		if (gw_req_count(head, s->name) != 1)
			return -1; /* none, or several: which one is the identity? */
		v = gw_req_get(head, s->name);
		gw_buf_append(val, v.ptr, v.len);
		break;
	case GW_ID_QUERY:
		url = gw_req_url(head);
		q = memchr(url.ptr, '?', url.len);
		if (!q || gw_admit_query_param(q + 1, url.len - (size_t)(q + 1 - url.ptr), s->name,
					       val) != 1)
			return -1;
		break;
	case GW_ID_STAGE_VAR:
		sv = gw_config_stage_var(api, s->name, strlen(s->name));
		if (sv)
			gw_buf_append_str(val, sv);
		break;
	}
	return val->len ? 0 : -1;
}

int gw_authz_identity(const gw_authorizer_t *a, const gw_api_t *api, const gw_req_t *head,
		      gw_buf_t *key)
{
	gw_buf_t val;
	int rc = 0;

	gw_buf_init(&val);
	gw_buf_reset(key);
	for (size_t i = 0; i < a->n_sources && !rc; i++) {
		rc = source_value(&a->sources[i], api, head, &val);
		if (rc)
			break;
		/* Length-prefixed: ("a,b") and ("a", "b") are two identities. */
		gw_buf_append_u64(key, val.len);
		gw_buf_append_char(key, ':');
		gw_buf_append(key, val.data, val.len);
	}
	if (val.data)
		OPENSSL_cleanse(val.data, val.cap);
	gw_buf_dispose(&val);
	return rc;
}

void gw_authz_method_arn(const gw_api_t *api, gw_buf_t *out)
{
	gw_buf_reset(out);
	gw_buf_append_str(out, "arn:aws:execute-api:local:");
	gw_buf_append_str(out, api->account_id[0] ? api->account_id : "000000000000");
	gw_buf_append_char(out, ':');
	gw_buf_append_str(out, api->api_id);
	gw_buf_append_char(out, '/');
	gw_buf_append_str(out, api->stage);
	gw_buf_append_str(out, "/$connect");
}

/* --- IAM policies ------------------------------------------------------ */

/* IAM's wildcards: '*' any run of characters, '?' any one. */
static int glob(const char *p, size_t pn, const char *s, size_t sn, int nocase)
{
	size_t pi = 0, si = 0, star = (size_t)-1, mark = 0;

	while (si < sn) {
		if (pi < pn && (p[pi] == '?' ||
				(nocase ? tolower((unsigned char)p[pi]) == tolower((unsigned char)s[si])
					: p[pi] == s[si]))) {
			pi++;
			si++;
		} else if (pi < pn && p[pi] == '*') {
			star = pi++;
			mark = si;
		} else if (star != (size_t)-1) {
			pi = star + 1;
			si = ++mark;
		} else {
			return 0;
		}
	}
	while (pi < pn && p[pi] == '*')
		pi++;
	return pi == pn;
}

/* A Resource against the ARN: wildcards match within each of the ARN's
 * colon-separated parts (the last part, api/stage/route, may hold more
 * colons), as IAM matches them; "*" alone matches every ARN. */
static int arn_match(const char *pat, const char *arn)
{
	if (!strcmp(pat, "*"))
		return 1;
	for (int part = 0; part < 6; part++) {
		const char *pe = part < 5 ? strchr(pat, ':') : NULL;
		const char *ae = part < 5 ? strchr(arn, ':') : NULL;
		size_t pn, an;

		if (part < 5 && (!pe || !ae))
			return 0;
		pn = pe ? (size_t)(pe - pat) : strlen(pat);
		an = ae ? (size_t)(ae - arn) : strlen(arn);
		if (!glob(pat, pn, arn, an, 0))
			return 0;
		pat += pn + (pe ? 1 : 0);
		arn += an + (ae ? 1 : 0);
	}
	return 1;
}

/* Whether v (a string or an array of strings) matches; -1 if malformed. */
static int any_match(json_t *v, const char *what, int action)
{
	size_t i, n = json_is_array(v) ? json_array_size(v) : 1;
	int hit = 0;

	if (!json_is_array(v) && !json_is_string(v))
		return -1;
	for (i = 0; i < n; i++) {
		json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
		const char *s = json_string_value(e);

		if (!s)
			return -1;
		hit |= action ? glob(s, strlen(s), what, strlen(what), 1) : arn_match(s, what);
	}
	return hit;
}

/* 1: allowed, 0: denied (an explicit Deny wins; no Allow is a Deny), -1:
 * not a policy. */
static int policy_allows(json_t *doc, const char *arn)
{
	json_t *st = json_is_object(doc) ? json_object_get(doc, "Statement") : NULL;
	size_t n = json_is_array(st) ? json_array_size(st) : 1;
	int allow = 0, deny = 0;

	if (!json_is_array(st) && !json_is_object(st))
		return -1;
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_is_array(st) ? json_array_get(st, i) : st;
		const char *effect = json_string_value(json_object_get(s, "Effect"));
		int act, res;

		if (!json_is_object(s) || !effect || (strcmp(effect, "Allow") && strcmp(effect, "Deny")))
			return -1;
		act = any_match(json_object_get(s, "Action"), "execute-api:Invoke", 1);
		res = any_match(json_object_get(s, "Resource"), arn, 0);
		if (act < 0 || res < 0)
			return -1;
		if (act && res) {
			if (!strcmp(effect, "Deny"))
				deny = 1;
			else
				allow = 1;
		}
	}
	return allow && !deny;
}

/* --- the answer -------------------------------------------------------- */

/* context values as AWS passes them on: strings, numbers and booleans as
 * strings ("1", "true"); objects and arrays only in the simple shape (kept
 * as JSON). 0, or -1 when a value cannot be passed. */
static int append_context(gw_buf_t *b, json_t *ctx, int simple)
{
	const char *k;
	json_t *v;

	if (!ctx || json_is_null(ctx))
		return 0;
	if (!json_is_object(ctx))
		return -1;
	json_object_foreach(ctx, k, v) {
		char *text = NULL;

		if (!strcmp(k, "principalId") || !strcmp(k, "integrationLatency") || json_is_null(v))
			continue;
		gw_buf_append_char(b, ',');
		gw_buf_append_json_str(b, k, strlen(k));
		gw_buf_append_char(b, ':');
		if (json_is_string(v)) {
			gw_buf_append_json_str(b, json_string_value(v), json_string_length(v));
			continue;
		}
		if ((json_is_object(v) || json_is_array(v)) && !simple)
			return -1;
		text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!text)
			return -1;
		if (json_is_object(v) || json_is_array(v))
			gw_buf_append_str(b, text);
		else
			gw_buf_append_json_str(b, text, strlen(text));
		free(text);
	}
	return 0;
}

static int is_unauthorized(json_t *root)
{
	const char *s = json_is_string(root) ? json_string_value(root)
		      : json_string_value(json_object_get(root, "errorMessage"));

	return s && !strcmp(s, "Unauthorized");
}

static void decide_json(json_t *root, const char *arn, uint64_t latency, gw_authz_result_t *out)
{
	json_t *ok = json_object_get(root, "isAuthorized");
	json_t *doc = json_object_get(root, "policyDocument");
	json_t *pid = json_object_get(root, "principalId");
	gw_buf_t b;
	int allowed;

	if (is_unauthorized(root)) {
		out->verdict = GW_AUTHZ_UNAUTHORIZED;
		out->why = "the authorizer said Unauthorized";
		return;
	}
	if (!json_is_object(root) || json_object_get(root, "errorMessage")) {
		out->why = "the authorizer failed";
		return;
	}
	if (ok && !json_is_boolean(ok)) {
		out->why = "isAuthorized is not a boolean";
		return;
	}
	if (!ok && !doc) {
		out->why = "the answer has neither policyDocument nor isAuthorized";
		return;
	}
	if (pid && !json_is_string(pid)) {
		out->why = "principalId is not a string";
		return;
	}
	if (!ok && !pid) {
		out->why = "a policy answer without principalId";
		return;
	}
	allowed = ok ? json_is_true(ok) : policy_allows(doc, arn);
	if (allowed < 0) {
		out->why = "policyDocument is not a valid policy";
		return;
	}
	gw_buf_init(&b);
	gw_buf_append_char(&b, '{');
	if (pid) {
		gw_buf_append_str(&b, "\"principalId\":");
		gw_buf_append_json_str(&b, json_string_value(pid), json_string_length(pid));
		gw_buf_append_char(&b, ',');
	}
	gw_buf_append_str(&b, "\"integrationLatency\":");
	gw_buf_append_u64(&b, latency);
	if (append_context(&b, json_object_get(root, "context"), ok != NULL)) {
		gw_buf_dispose(&b);
		out->why = "context holds a value that cannot be passed on";
		return;
	}
	gw_buf_append_char(&b, '}');
	if (!allowed) {
		gw_buf_dispose(&b);
		out->verdict = GW_AUTHZ_DENY;
		out->why = ok ? "isAuthorized is false" : "the policy does not allow the methodArn";
		return;
	}
	out->verdict = GW_AUTHZ_ALLOW;
	out->context_len = b.len;
	gw_buf_append_char(&b, '\0');
	out->context = b.data; /* taken over */
	out->why = "allowed";
}

void gw_authz_decide(const char *arn, const gw_http_resp_t *resp, uint64_t latency,
		     gw_authz_result_t *out)
{
	json_error_t jerr;
	json_t *root;

	memset(out, 0, sizeof(*out));
	out->verdict = GW_AUTHZ_ERROR;
	switch (resp->outcome) {
	case GW_CALL_OK:
		break;
	case GW_CALL_TIMEOUT:
		out->why = "the authorizer timed out";
		return;
	case GW_CALL_BUSY:
		out->why = "the authorizer's connections and queue are full";
		return;
	default:
		out->why = "the authorizer could not be reached";
		return;
	}
	if (resp->status == 401) {
		out->verdict = GW_AUTHZ_UNAUTHORIZED;
		out->why = "the authorizer answered 401";
		return;
	}
	if (resp->status < 200 || resp->status > 299) {
		out->why = "the authorizer answered a non-2xx HTTP status";
		/* A Lambda that threw or called back "Unauthorized" (Lambda's
		 * error object, as clients/lambda-runner answers it): AWS's 401. */
		if (resp->body_len <= GW_AUTHZ_MAX_RESPONSE &&
		    (root = json_loadb(resp->body, resp->body_len, 0, &jerr))) {
			if (json_is_object(root) && is_unauthorized(root)) {
				out->verdict = GW_AUTHZ_UNAUTHORIZED;
				out->why = "the authorizer failed with \"Unauthorized\"";
			}
			json_decref(root);
		}
		return;
	}
	if (resp->body_len > GW_AUTHZ_MAX_RESPONSE) {
		out->why = "the authorizer's answer is larger than 8 KB";
		return;
	}
	root = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY, &jerr);
	if (!root) {
		out->why = "the authorizer's answer is not JSON";
		return;
	}
	decide_json(root, arn, latency, out);
	json_decref(root);
}

int gw_authz_status(enum gw_authz_verdict v, const char **body)
{
	switch (v) {
	case GW_AUTHZ_ALLOW:
		*body = "";
		return 200;
	case GW_AUTHZ_UNAUTHORIZED:
		*body = "{\"message\":\"Unauthorized\"}";
		return 401;
	case GW_AUTHZ_DENY:
		*body = "{\"message\":\"Forbidden\"}";
		return 403;
	default:
		*body = "{\"message\":\"Internal server error\"}";
		return 500;
	}
}

void gw_authz_result_dispose(gw_authz_result_t *r)
{
	free(r->context);
	r->context = NULL;
	r->context_len = 0;
}

/* JWT (see gw_authz_jwt): a token is bounded like an authorizer's answer,
 * since its claims become the connection's context. Keys, their fetch and
 * refresh, and the verdict cache are authz_store.c's. */
#define JWT_MAX_BYTES GW_AUTHZ_MAX_RESPONSE


struct alg {
	const char *name;
	enum gw_jwk_kind kind; /* RSA keys serve every RS* */
	const char *md;     /* NULL: EdDSA, which hashes itself */
	size_t ec_size;     /* ECDSA: r and s sizes in the JWS form */
};

static const struct alg algs[] = {
	{ "RS256", GW_JWK_RSA, "SHA256", 0 },
	{ "RS384", GW_JWK_RSA, "SHA384", 0 },
	{ "RS512", GW_JWK_RSA, "SHA512", 0 },
	{ "ES256", GW_JWK_P256, "SHA256", 32 },
	{ "ES384", GW_JWK_P384, "SHA384", 48 },
	{ "EdDSA", GW_JWK_ED25519, NULL, 0 },
};

/* JWS's ECDSA signature is r||s; OpenSSL verifies DER. */
static int ecdsa_der(const gw_buf_t *raw, size_t size, gw_buf_t *der)
{
	ECDSA_SIG *sig;
	BIGNUM *r, *s;
	unsigned char *p;
	int len;

	if (raw->len != 2 * size)
		return -1;
	r = BN_bin2bn((const unsigned char *)raw->data, (int)size, NULL);
	s = BN_bin2bn((const unsigned char *)raw->data + size, (int)size, NULL);
	sig = ECDSA_SIG_new();
	if (!r || !s || !sig || !ECDSA_SIG_set0(sig, r, s)) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(sig);
		return -1;
	}
	len = i2d_ECDSA_SIG(sig, NULL);
	gw_buf_reset(der);
	gw_buf_reserve(der, (size_t)(len > 0 ? len : 0));
	p = (unsigned char *)der->data;
	len = len > 0 ? i2d_ECDSA_SIG(sig, &p) : -1;
	ECDSA_SIG_free(sig);
	if (len <= 0)
		return -1;
	der->len = (size_t)len;
	return 0;
}

static int verify_with(const struct alg *al, EVP_PKEY *pkey, const char *input, size_t in_len,
		       const gw_buf_t *sig)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	gw_buf_t der;
	const gw_buf_t *s = sig;
	int ok = 0;

	gw_buf_init(&der);
	if (al->ec_size) {
		if (ecdsa_der(sig, al->ec_size, &der))
			goto out;
		s = &der;
	}
	if (md && EVP_DigestVerifyInit_ex(md, NULL, al->md, NULL, NULL, pkey, NULL) == 1)
		ok = EVP_DigestVerify(md, (const unsigned char *)s->data, s->len,
				      (const unsigned char *)input, in_len) == 1;
out:
	EVP_MD_CTX_free(md);
	gw_buf_dispose(&der);
	return ok;
}

/* Whether a number claim (a NumericDate) is present and valid; -1 when it
 * is there but not a number. */
static int time_claim(json_t *claims, const char *name, double *out)
{
	json_t *v = json_object_get(claims, name);

	if (!v)
		return 0;
	if (!json_is_number(v))
		return -1;
	*out = json_number_value(v);
	return 1;
}

static int audience_ok(const gw_authorizer_t *a, json_t *claims)
{
	json_t *aud = json_object_get(claims, "aud");
	size_t n;

	if (!aud)
		aud = json_object_get(claims, "client_id"); /* as AWS accepts it */
	n = json_is_array(aud) ? json_array_size(aud) : 1;
	for (size_t i = 0; i < n; i++) {
		const char *v = json_string_value(json_is_array(aud) ? json_array_get(aud, i) : aud);

		for (size_t j = 0; v && j < a->n_audiences; j++)
			if (!strcmp(v, a->audiences[j]))
				return 1;
	}
	return 0;
}

/* The claims' checks, after the signature: iss, aud, exp, nbf, iat. */
static const char *claims_ok(const gw_authorizer_t *a, json_t *claims, int64_t now)
{
	const char *iss = json_string_value(json_object_get(claims, "iss"));
	double exp, nbf, iat, lee = a->leeway_s;
	int rc;

	if (!iss || strcmp(iss, a->issuer))
		return "the token's iss is not the issuer";
	if (!audience_ok(a, claims))
		return "the token does not have a valid audience";
	rc = time_claim(claims, "exp", &exp);
	if (rc <= 0)
		return "the token has no valid exp";
	if ((double)now >= exp + lee)
		return "the token has expired";
	if ((rc = time_claim(claims, "nbf", &nbf)) < 0 || (rc && (double)now + lee < nbf))
		return "the token is not valid yet (nbf)";
	if ((rc = time_claim(claims, "iat", &iat)) < 0 || (rc && (double)now + lee < iat))
		return "the token was issued in the future (iat)";
	return NULL;
}

/* The token's three parts checked; claims returned (a reference) or NULL
 * with *why. */
static json_t *jwt_verify(const gw_authorizer_t *a, const struct gw_authz_keys *keys,
			  const char *tok, size_t len, int64_t now, const char **why,
			  int *unknown_kid)
{
	const char *d1 = memchr(tok, '.', len), *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
	const struct alg *al = NULL;
	json_t *hdr = NULL, *claims = NULL;
	const char *name, *kid;
	gw_buf_t part, sig;
	json_error_t jerr;
	int verified = 0;

	gw_buf_init(&part);
	gw_buf_init(&sig);
	*why = "the token is not a JWS in compact form";
	if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
		goto out;
	if (gw_b64url_decode(tok, (size_t)(d1 - tok), &part) ||
	    !(hdr = json_loadb(part.data, part.len, 0, &jerr)) ||
	    gw_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), &sig))
		goto out;
	name = json_string_value(json_object_get(hdr, "alg"));
	for (size_t i = 0; name && i < sizeof(algs) / sizeof(algs[0]); i++)
		if (!strcmp(name, algs[i].name))
			al = &algs[i];
	if (!al) {
		*why = "the token's alg is not one of RS256, RS384, RS512, ES256, ES384, EdDSA";
		goto out;
	}
	/* AWS requires the kid: a token without one is refused, never tried
	 * against every key of its type (a signature check per key). */
	kid = json_string_value(json_object_get(hdr, "kid"));
	if (!kid) {
		*why = "the token has no kid";
		goto out;
	}
	*why = "no key of the JWKS has the token's kid and alg";
	*unknown_kid = 1;
	for (size_t i = 0; keys && i < keys->n && !verified; i++) {
		const struct gw_jwk *k = &keys->keys[i];

		if (k->kid && !strcmp(kid, k->kid))
			*unknown_kid = 0;
		if (k->kind != al->kind || !k->kid || strcmp(kid, k->kid))
			continue;
		*why = "the token's signature is not valid";
		verified = verify_with(al, k->pkey, tok, (size_t)(d2 - tok), &sig);
	}
	if (!verified)
		goto out;
	*why = "the token's payload is not a JSON object";
	if (gw_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &part) ||
	    !(claims = json_loadb(part.data, part.len, 0, &jerr)) || !json_is_object(claims)) {
		json_decref(claims);
		claims = NULL;
		goto out;
	}
	*why = claims_ok(a, claims, now);
	if (*why) {
		json_decref(claims);
		claims = NULL;
	}
out:
	json_decref(hdr);
	gw_buf_dispose(&part);
	gw_buf_dispose(&sig);
	return claims;
}

void gw_authz_jwt(const gw_authorizer_t *a, const gw_api_t *api, const gw_req_t *head,
		  uint64_t wall_ms, uint64_t mono_ms, int refresh, gw_authz_result_t *out)
{
	int64_t now = (int64_t)(wall_ms / 1000);
	gw_buf_t tok, b, ckey;
	const char *t;
	size_t len;
	json_t *claims;
	char *text;
	double left;
	struct gw_authz_keys *keys = NULL;
	uint64_t gen = 0;
	int unknown_kid = 0;

	memset(out, 0, sizeof(*out));
	out->verdict = GW_AUTHZ_UNAUTHORIZED;
	out->challenge = GW_AUTHZ_BEARER_INVALID;
	gw_buf_init(&tok);
	gw_buf_init(&ckey);
	if (a->n_sources != 1 || source_value(&a->sources[0], api, head, &tok)) {
		/* No error code without credentials (RFC 6750 §3.1). */
		out->challenge = GW_AUTHZ_BEARER;
		out->why = "no token (the identity source is missing or empty)";
		goto out;
	}
	t = tok.data;
	len = tok.len;
	/* The bare token or "Bearer <token>", as on HTTP APIs. */
	if (len > 7 && !strncasecmp(t, "Bearer ", 7)) {
		t += 7;
		len -= 7;
	}
	if (len > JWT_MAX_BYTES) {
		out->why = "the token is larger than 8 KB";
		goto out;
	}
	/* A token seen valid is not verified again until it expires (or the
	 * TTL ends): a reconnecting client costs a lookup, not a signature
	 * check. Invalid tokens are never kept. The key set's generation is
	 * part of the key: a token whose key left the JWKS is checked again. */
	keys = gw_jwks_get(a, &gen);
	gw_buf_append(&ckey, (const char *)&gen, sizeof(gen));
	gw_buf_append(&ckey, t, len);
	if (gw_authz_cache_get(a, ckey.data, ckey.len, mono_ms, out))
		goto out;
	out->verdict = GW_AUTHZ_UNAUTHORIZED;
	out->challenge = GW_AUTHZ_BEARER_INVALID;
	claims = jwt_verify(a, keys, t, len, now, &out->why, &unknown_kid);
	if (!claims) {
		/* A kid the keys lack may be a new key of the issuer's: the
		 * caller waits for a fetch (at most one per JWKS_KID_MIN_MS,
		 * whatever kids a client makes up). */
		if (unknown_kid && refresh && a->jwks &&
		    !(out->jwks_wait = gw_jwks_ask(a->jwks, mono_ms)))
			out->why = "no key of the JWKS has the token's kid (a refresh of the JWKS "
				   "was asked for less than 10 s ago)";
		goto out;
	}
	/* In ms: a token must not outlive its exp in the cache by a second. */
	left = json_number_value(json_object_get(claims, "exp")) + a->leeway_s -
	       (double)wall_ms / 1000;
	if (left > a->ttl_s)
		left = a->ttl_s;
	text = json_dumps(claims, JSON_COMPACT);
	json_decref(claims);
	if (!text)
		abort();
	/* As HTTP APIs pass them: requestContext.authorizer.jwt.claims. */
	gw_buf_init(&b);
	gw_buf_append_str(&b, "{\"jwt\":{\"claims\":");
	gw_buf_append_str(&b, text);
	gw_buf_append_str(&b, ",\"scopes\":null},\"integrationLatency\":0}");
	free(text);
	out->verdict = GW_AUTHZ_ALLOW;
	out->challenge = GW_AUTHZ_NO_CHALLENGE;
	out->why = "allowed";
	out->context_len = b.len;
	gw_buf_append_char(&b, '\0');
	out->context = b.data;
	if (left > 0)
		gw_authz_cache_put_until(a->cache, ckey.data, ckey.len,
					 mono_ms + (uint64_t)(left * 1000), out);
out:
	if (keys)
		gw_jwks_put(a, keys);
	OPENSSL_cleanse(tok.data, tok.cap);
	gw_buf_dispose(&tok);
	if (ckey.data)
		OPENSSL_cleanse(ckey.data, ckey.cap);
	gw_buf_dispose(&ckey);
}
