/* Authorizers on $connect (see authorizer.h). An answer is judged as AWS
 * judges a Lambda authorizer's (reference §5.4): "Unauthorized" is 401, a
 * Deny or no matching Allow is 403, anything else that is not an Allow is
 * 500. */
#include "authorizer.h"
#include "admit.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
	gw_buf_append_str(out, "arn:aws:execute-api:local:000000000000:");
	gw_buf_append_str(out, api->name);
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

/* --- the cache --------------------------------------------------------- */

#define CACHE_BUCKETS 4096
#define CACHE_MAX_ENTRIES 10000
#define CACHE_MAX_BYTES ((size_t)16 << 20)

struct entry {
	lws_dll2_t order; /* oldest first */
	struct entry *next; /* in its bucket */
	uint64_t hash;
	uint64_t expires_ms;
	enum gw_authz_verdict verdict;
	char *context;
	size_t context_len;
	size_t key_len;
	char key[];
};

struct gw_authz_cache {
	pthread_mutex_t mu;
	struct entry *buckets[CACHE_BUCKETS];
	lws_dll2_owner_t order;
	size_t n, bytes;
};

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ull;
	}
	return h;
}

static size_t entry_cost(const struct entry *e)
{
	return sizeof(*e) + e->key_len + e->context_len;
}

struct gw_authz_cache *gw_authz_cache_create(void)
{
	struct gw_authz_cache *c = calloc(1, sizeof(*c));

	if (!c)
		abort();
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

static void entry_remove(struct gw_authz_cache *c, struct entry *e)
{
	struct entry **pp = &c->buckets[e->hash % CACHE_BUCKETS];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	lws_dll2_remove(&e->order);
	c->n--;
	c->bytes -= entry_cost(e);
	/* A context may name the user: not left in freed memory. */
	memset(e->key, 0, e->key_len);
	free(e->context);
	free(e);
}

void gw_authz_cache_destroy(struct gw_authz_cache *c)
{
	if (!c)
		return;
	while (c->order.head)
		entry_remove(c, lws_container_of(c->order.head, struct entry, order));
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static struct entry *find(struct gw_authz_cache *c, const char *key, size_t len, uint64_t h)
{
	for (struct entry *e = c->buckets[h % CACHE_BUCKETS]; e; e = e->next)
		if (e->hash == h && e->key_len == len && !memcmp(e->key, key, len))
			return e;
	return NULL;
}

int gw_authz_cache_get(const gw_authorizer_t *a, const char *key, size_t len, uint64_t now,
		       gw_authz_result_t *out)
{
	struct gw_authz_cache *c = a->cache;
	uint64_t h = fnv1a(key, len);
	struct entry *e;
	int hit = 0;

	memset(out, 0, sizeof(*out));
	if (!c)
		return 0;
	pthread_mutex_lock(&c->mu);
	e = find(c, key, len, h);
	if (e && e->expires_ms <= now) {
		entry_remove(c, e);
		e = NULL;
	}
	if (e) {
		hit = 1;
		out->verdict = e->verdict;
		out->why = e->verdict == GW_AUTHZ_ALLOW ? "allowed (cached)"
							: "the policy does not allow the methodArn (cached)";
		if (e->context) {
			out->context = malloc(e->context_len + 1);
			if (!out->context)
				abort();
			memcpy(out->context, e->context, e->context_len + 1);
			out->context_len = e->context_len;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void gw_authz_cache_put(const gw_authorizer_t *a, const char *key, size_t len, uint64_t now,
			const gw_authz_result_t *r)
{
	struct gw_authz_cache *c = a->cache;
	uint64_t h = fnv1a(key, len);
	struct entry *e, *old;

	if (!c || (r->verdict != GW_AUTHZ_ALLOW && r->verdict != GW_AUTHZ_DENY))
		return;
	e = calloc(1, sizeof(*e) + len);
	if (!e)
		abort();
	e->hash = h;
	e->expires_ms = now + (uint64_t)a->ttl_s * 1000;
	e->verdict = r->verdict;
	e->key_len = len;
	memcpy(e->key, key, len);
	if (r->context) {
		e->context = malloc(r->context_len + 1);
		if (!e->context)
			abort();
		memcpy(e->context, r->context, r->context_len + 1);
		e->context_len = r->context_len;
	}
	pthread_mutex_lock(&c->mu);
	old = find(c, key, len, h);
	if (old)
		entry_remove(c, old);
	while (c->order.head &&
	       (c->n >= CACHE_MAX_ENTRIES || c->bytes + entry_cost(e) > CACHE_MAX_BYTES))
		entry_remove(c, lws_container_of(c->order.head, struct entry, order));
	e->next = c->buckets[h % CACHE_BUCKETS];
	c->buckets[h % CACHE_BUCKETS] = e;
	lws_dll2_add_tail(&e->order, &c->order);
	c->n++;
	c->bytes += entry_cost(e);
	pthread_mutex_unlock(&c->mu);
}

/* --- JWT (see gw_authz_jwt) -------------------------------------------- */

struct gw_authz_keys {
	int unused;
};

struct gw_authz_keys *gw_authz_keys_load(const char *file, char *err, size_t errlen)
{
	snprintf(err, errlen, "JWT authorizers are not supported yet");
	return NULL;
}

void gw_authz_keys_free(struct gw_authz_keys *k)
{
	free(k);
}

void gw_authz_jwt(const gw_authorizer_t *a, const char *token, size_t len, int64_t now_s,
		  gw_authz_result_t *out)
{
	memset(out, 0, sizeof(*out));
	out->verdict = GW_AUTHZ_ERROR;
	out->why = "JWT authorizers are not supported yet";
}
