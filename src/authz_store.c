/* What an authorizer keeps across requests, owned by the configuration
 * snapshot that config.c loads (and so below it, a leaf): the verdict
 * cache shared by the loops, the JWKS keys read at load or fetched from a
 * jwksUri, and the thread that keeps a jwksUri's keys fresh. authorizer.c
 * decides with them. */
#include "authz_store.h"
#include "httpresp.h"
#include "log.h"

#include <arpa/inet.h>
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

void gw_authz_cache_put_until(struct gw_authz_cache *c, const char *key, size_t len,
			      uint64_t expires_ms, const gw_authz_result_t *r)
{
	uint64_t h = fnv1a(key, len);
	struct entry *e, *old;

	if (!c || (r->verdict != GW_AUTHZ_ALLOW && r->verdict != GW_AUTHZ_DENY))
		return;
	e = calloc(1, sizeof(*e) + len);
	if (!e)
		abort();
	e->hash = h;
	e->expires_ms = expires_ms;
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

void gw_authz_cache_put(const gw_authorizer_t *a, const char *key, size_t len, uint64_t now,
			const gw_authz_result_t *r)
{
	gw_authz_cache_put_until(a->cache, key, len, now + (uint64_t)a->ttl_s * 1000, r);
}

/* --- JWKS keys (checked by gw_authz_jwt) -------------------------------
 * JSON is jansson's; base64url is OpenSSL's base64 decoder after mapping
 * the alphabet. */

/* AWS's limit on a JWKS response. */
#define JWKS_MAX_BYTES 150000

/* base64url (padded or not) into out; -1 when it is not base64url. */
int gw_b64url_decode(const char *s, size_t n, gw_buf_t *out)
{
	size_t padded = (n + 3) / 4 * 4, pad = padded - n;
	unsigned char *tmp;
	int len;

	gw_buf_reset(out);
	if (n % 4 == 1)
		return -1;
	tmp = malloc(padded + 1);
	if (!tmp)
		abort();
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '+' || c == '/' || c == '=') {
			free(tmp);
			return -1; /* base64, not base64url */
		}
		tmp[i] = c == '-' ? '+' : c == '_' ? '/' : (unsigned char)c;
	}
	memset(tmp + n, '=', pad);
	gw_buf_reserve(out, padded / 4 * 3 + 1);
	len = padded ? EVP_DecodeBlock((unsigned char *)out->data, tmp, (int)padded) : 0;
	free(tmp);
	if (len < 0 || (size_t)len < pad)
		return -1;
	out->len = (size_t)len - pad;
	return 0;
}

/* A JWK member decoded from base64url into out; -1 if missing or bad. */
static int jwk_bytes(json_t *jwk, const char *name, gw_buf_t *out)
{
	const char *v = json_string_value(json_object_get(jwk, name));

	return v && *v ? gw_b64url_decode(v, strlen(v), out) : -1;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *rsa_key(json_t *jwk, const char **why)
{
	gw_buf_t n, e;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;

	gw_buf_init(&n);
	gw_buf_init(&e);
	if (jwk_bytes(jwk, "n", &n) || jwk_bytes(jwk, "e", &e)) {
		*why = "an RSA key needs n and e in base64url";
		goto out;
	}
	if (n.len < 256) {
		*why = "an RSA key shorter than 2048 bits";
		goto out;
	}
	bn = BN_bin2bn((unsigned char *)n.data, (int)n.len, NULL);
	be = BN_bin2bn((unsigned char *)e.data, (int)e.len, NULL);
	if (!bld || !bn || !be || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		goto out;
	pkey = from_params("RSA", bld);
	if (!pkey)
		*why = "OpenSSL refused the RSA key";
out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	gw_buf_dispose(&n);
	gw_buf_dispose(&e);
	return pkey;
}

static EVP_PKEY *ec_key(json_t *jwk, enum gw_jwk_kind kind, const char **why)
{
	size_t size = kind == GW_JWK_P256 ? 32 : 48;
	gw_buf_t x, y, pub;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;

	gw_buf_init(&x);
	gw_buf_init(&y);
	gw_buf_init(&pub);
	if (jwk_bytes(jwk, "x", &x) || jwk_bytes(jwk, "y", &y) || x.len != size ||
	    y.len != size) {
		*why = "an EC key needs x and y in base64url, of its curve's size";
		goto out;
	}
	/* An uncompressed point: 0x04, x, y. */
	gw_buf_append_char(&pub, 4);
	gw_buf_append(&pub, x.data, x.len);
	gw_buf_append(&pub, y.data, y.len);
	if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
						     kind == GW_JWK_P256 ? "prime256v1" : "secp384r1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub.data, pub.len))
		goto out;
	pkey = from_params("EC", bld);
	if (!pkey)
		*why = "OpenSSL refused the EC key (not a point of its curve?)";
out:
	OSSL_PARAM_BLD_free(bld);
	gw_buf_dispose(&x);
	gw_buf_dispose(&y);
	gw_buf_dispose(&pub);
	return pkey;
}

static EVP_PKEY *okp_key(json_t *jwk, const char **why)
{
	gw_buf_t x;
	EVP_PKEY *pkey = NULL;

	gw_buf_init(&x);
	if (jwk_bytes(jwk, "x", &x) || x.len != 32)
		*why = "an Ed25519 key needs x, 32 bytes in base64url";
	else if (!(pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
						      (unsigned char *)x.data, x.len)))
		*why = "OpenSSL refused the Ed25519 key";
	gw_buf_dispose(&x);
	return pkey;
}

/* One JWK into k; -1 with *why. A private key's members are ignored. */
static int load_jwk(json_t *jwk, struct gw_jwk *k, const char **why)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	const char *use = json_string_value(json_object_get(jwk, "use"));
	json_t *kid = json_object_get(jwk, "kid");

	*why = "unsupported key";
	if (!json_is_object(jwk)) {
		*why = "not an object";
		return -1;
	}
	if (use && strcmp(use, "sig"))
		return 1; /* an encryption key: not ours to use, not an error */
	if (kid && !json_is_string(kid)) {
		*why = "kid is not a string";
		return -1;
	}
	if (!kty) {
		*why = "no kty";
		return -1;
	}
	if (!strcmp(kty, "RSA")) {
		k->kind = GW_JWK_RSA;
		k->pkey = rsa_key(jwk, why);
	} else if (!strcmp(kty, "EC") && crv && (!strcmp(crv, "P-256") || !strcmp(crv, "P-384"))) {
		k->kind = !strcmp(crv, "P-256") ? GW_JWK_P256 : GW_JWK_P384;
		k->pkey = ec_key(jwk, k->kind, why);
	} else if (!strcmp(kty, "OKP") && crv && !strcmp(crv, "Ed25519")) {
		k->kind = GW_JWK_ED25519;
		k->pkey = okp_key(jwk, why);
	} else {
		*why = "expected kty RSA, EC (crv P-256 or P-384) or OKP (crv Ed25519)";
		return -1;
	}
	if (!k->pkey)
		return -1;
	k->kid = kid ? strdup(json_string_value(kid)) : NULL;
	return 0;
}

/* The keys of a JWKS document (root, borrowed). */
static struct gw_authz_keys *keys_from_json(json_t *root, char *err, size_t errlen)
{
	json_t *list = json_object_get(root, "keys");
	struct gw_authz_keys *ks;

	if (!json_is_array(list) || !json_array_size(list)) {
		snprintf(err, errlen, "expected a JWKS: {\"keys\": [...]} with at least one key");
		return NULL;
	}
	ks = calloc(1, sizeof(*ks));
	if (!ks || !(ks->keys = calloc(json_array_size(list), sizeof(*ks->keys))))
		abort();
	ks->refs = 1;
	for (size_t i = 0; i < json_array_size(list); i++) {
		const char *why;
		int rc = load_jwk(json_array_get(list, i), &ks->keys[ks->n], &why);

		if (rc < 0) {
			snprintf(err, errlen, "keys[%zu]: %s", i, why);
			goto fail;
		}
		if (!rc)
			ks->n++;
	}
	if (!ks->n) {
		snprintf(err, errlen, "no signing key (every key has a \"use\" other than \"sig\")");
		goto fail;
	}
	return ks;
fail:
	gw_authz_keys_free(ks);
	return NULL;
}

struct gw_authz_keys *gw_authz_keys_load(const char *file, char *err, size_t errlen)
{
	struct gw_authz_keys *ks;
	json_error_t jerr;
	json_t *root;
	struct stat st;

	if (stat(file, &st) || !S_ISREG(st.st_mode) || st.st_size > JWKS_MAX_BYTES) {
		snprintf(err, errlen, "cannot read it (expected a regular file of at most %d "
			 "bytes holding a JWKS)", JWKS_MAX_BYTES);
		return NULL;
	}
	root = json_load_file(file, 0, &jerr);
	ks = keys_from_json(root, err, errlen);
	json_decref(root);
	return ks;
}

/* --- fetching a JWKS (jwksUri): blocking, so for the loader only (start-up,
 * --check and the reload thread), never an event loop. */

#define JWKS_TIMEOUT_MS 1500 /* AWS's JWKS endpoint timeout */

static int64_t left_ms(uint64_t deadline)
{
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	return now >= deadline ? 0 : (int64_t)(deadline - now);
}

/* A TCP connection to host:port within the deadline, then blocking with
 * the time left as its send and receive timeouts. -1 on failure. */
static int dial(const char *host, const char *port, uint64_t deadline)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	int fd = -1;

	if (getaddrinfo(host, port, &hints, &res))
		return -1;
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		struct pollfd pfd;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS)
			goto next;
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, (int)left_ms(deadline)) != 1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr)
			goto next;
		continue;
next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0) {
		int64_t ms = left_ms(deadline);
		struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 + 1 };
		int flags = fcntl(fd, F_GETFL);

		fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	return fd;
}

/* https://host[:port][/path] into its parts; -1 if it is not one. */
static int split_url(const char *url, char *host, size_t hl, char *port, size_t pl,
		     const char **path)
{
	const char *h = url + 8, *end, *colon;

	if (strncmp(url, "https://", 8))
		return -1;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end)
			return -1;
		snprintf(host, hl, "%.*s", (int)(end - h - 1), h + 1);
		end++;
	} else {
		end = h + strcspn(h, ":/?#");
		snprintf(host, hl, "%.*s", (int)(end - h), h);
	}
	colon = *end == ':' ? end : NULL;
	*path = strchr(end, '/');
	if (colon)
		snprintf(port, pl, "%.*s", (int)((*path ? *path : end + strlen(end)) - colon - 1),
			 colon + 1);
	else
		snprintf(port, pl, "443");
	if (!*path)
		*path = "/";
	return *host && *port ? 0 : -1;
}

static int fetch(const char *url, const char *ca_file, gw_buf_t *out, char *err, size_t errlen)
{
	uint64_t deadline;
	char host[256], port[16], req[2048], buf[16384];
	struct timespec ts;
	const char *path;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	gw_resp_t *resp = NULL;
	enum gw_resp_status st = GW_RESP_MORE;
	struct in6_addr a6;
	int fd = -1, rc = -1, n, extra;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + JWKS_TIMEOUT_MS;
	if (split_url(url, host, sizeof(host), port, sizeof(port), &path)) {
		snprintf(err, errlen, "expected an https:// URL");
		return -1;
	}
	fd = dial(host, port, deadline);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to %s port %s within %d ms", host, port,
			 JWKS_TIMEOUT_MS);
		goto out;
	}
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    (ca_file ? !SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
		     : !SSL_CTX_set_default_verify_paths(ctx))) {
		snprintf(err, errlen, "cannot set up TLS (CA bundle %s)", ca_file ? ca_file : "of the system");
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd))
		goto out;
	/* The certificate must name the host (an address literal: its IP SAN). */
	if (inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	} else {
		SSL_set_tlsext_host_name(ssl, host);
		SSL_set1_host(ssl, host);
	}
	if (SSL_connect(ssl) != 1) {
		long v = SSL_get_verify_result(ssl);

		snprintf(err, errlen, "TLS with %s failed%s%s", host, v != X509_V_OK ? ": " : "",
			 v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
		goto out;
	}
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n"
		     "User-Agent: wsgate\r\nConnection: close\r\n\r\n", path, host);
	if (n <= 0 || (size_t)n >= sizeof(req) || SSL_write(ssl, req, n) != n) {
		snprintf(err, errlen, "cannot send the request");
		goto out;
	}
	resp = gw_resp_create(JWKS_MAX_BYTES);
	while (st == GW_RESP_MORE && left_ms(deadline) > 0) {
		n = SSL_read(ssl, buf, sizeof(buf));
		if (n <= 0 && SSL_get_error(ssl, n) != SSL_ERROR_ZERO_RETURN &&
		    SSL_get_error(ssl, n) != SSL_ERROR_SYSCALL)
			break;
		st = gw_resp_feed(resp, buf, n > 0 ? (size_t)n : 0, &extra);
		if (n <= 0)
			break;
	}
	if (st == GW_RESP_TOO_LARGE) {
		snprintf(err, errlen, "the JWKS is larger than %d bytes", JWKS_MAX_BYTES);
	} else if (st != GW_RESP_DONE) {
		snprintf(err, errlen, "no complete answer within %d ms", JWKS_TIMEOUT_MS);
	} else if (gw_resp_status_code(resp) != 200) {
		snprintf(err, errlen, "answered HTTP %d (expected 200)", gw_resp_status_code(resp));
	} else {
		gw_str_t body = gw_resp_body(resp);

		gw_buf_reset(out);
		gw_buf_append(out, body.ptr, body.len);
		rc = 0;
	}
out:
	gw_resp_destroy(resp);
	if (ssl)
		SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The keys at url, with the hash of the document. */
static struct gw_authz_keys *keys_fetch(const char *url, const char *ca_file, char *err,
					size_t errlen)
{
	struct gw_authz_keys *ks = NULL;
	json_error_t jerr;
	json_t *root;
	gw_buf_t body;

	gw_buf_init(&body);
	if (!fetch(url, ca_file, &body, err, errlen)) {
		root = json_loadb(body.data ? body.data : "", body.len, 0, &jerr);
		if (!root)
			snprintf(err, errlen, "the answer is not JSON");
		else
			ks = keys_from_json(root, err, errlen);
		if (ks)
			ks->hash = fnv1a(body.data, body.len);
		json_decref(root);
	}
	gw_buf_dispose(&body);
	return ks;
}

struct gw_authz_keys *gw_authz_keys_fetch(const char *url, const char *ca_file, char *err,
					  size_t errlen)
{
	return keys_fetch(url, ca_file, err, errlen);
}

void gw_authz_keys_free(struct gw_authz_keys *ks)
{
	if (!ks || __atomic_sub_fetch(&ks->refs, 1, __ATOMIC_ACQ_REL))
		return;
	for (size_t i = 0; i < ks->n; i++) {
		free(ks->keys[i].kid);
		EVP_PKEY_free(ks->keys[i].pkey);
	}
	free(ks->keys);
	free(ks);
}

/* --- a jwksUri's keys, kept fresh (see gw_jwks_start) ------------------
 * One thread per authorizer sleeps until its timer or an unknown kid asks
 * for a fetch; the fetch runs unlocked, and the new set is swapped in under
 * the lock: a loop holds the lock only to take a reference. */

#define JWKS_KID_MIN_MS 10000 /* an unknown kid fetches at most this often */

struct gw_jwks {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	char *name, *url, *ca;
	unsigned refresh_s;
	int refs;   /* the configuration's and the thread's */
	int stop;
	int wanted; /* an unknown kid asked for a fetch */
	struct gw_authz_keys *cur;
	uint64_t gen;      /* bumped on each swap: part of the cache key */
	uint64_t asked;    /* fetches asked by kid, numbered */
	uint64_t done;     /* the last asked number a fetch has answered */
	uint64_t kid_last; /* when a kid last asked, gw_now_ms(); 0: never */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void jwks_unref(struct gw_jwks *j)
{
	int last;

	pthread_mutex_lock(&j->mu);
	last = !--j->refs;
	pthread_mutex_unlock(&j->mu);
	if (!last)
		return;
	gw_authz_keys_free(j->cur);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j->name);
	free(j->url);
	free(j->ca);
	free(j);
}

/* Sleeps (locked) until the timer is due, a kid asks or stop. */
static void jwks_wait(struct gw_jwks *j, uint64_t due)
{
	while (!j->stop && !j->wanted) {
		uint64_t now = mono_ms();
		struct timespec ts;

		if (now >= due)
			return;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)((due - now) / 1000);
		ts.tv_nsec += (long)((due - now) % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&j->cv, &j->mu, &ts);
	}
}

/* One fetch, unlocked; a new document replaces the keys, a failure keeps
 * them. */
static void jwks_refresh(struct gw_jwks *j)
{
	struct gw_authz_keys *ks, *old = NULL;
	char err[256];

	ks = keys_fetch(j->url, j->ca, err, sizeof(err));
	if (!ks) {
		gw_log_limited(GW_LOG_WARN, 60000, "authorizer %s: refreshing the JWKS from %s "
			       "failed, keeping the keys it has: %s", j->name, j->url, err);
		return;
	}
	pthread_mutex_lock(&j->mu);
	if (ks->hash != j->cur->hash) {
		old = j->cur;
		j->cur = ks;
		j->gen++;
		ks = NULL;
	}
	pthread_mutex_unlock(&j->mu);
	if (old)
		gw_info("authorizer %s: the JWKS from %s changed, its new keys are in use",
			j->name, j->url);
	gw_authz_keys_free(old);
	gw_authz_keys_free(ks);
}

static void *jwks_thread(void *arg)
{
	struct gw_jwks *j = arg;
	uint64_t last = mono_ms();

	pthread_mutex_lock(&j->mu);
	while (!j->stop) {
		uint64_t asked;

		jwks_wait(j, last + (uint64_t)j->refresh_s * 1000);
		if (j->stop)
			break;
		asked = j->asked;
		j->wanted = 0;
		pthread_mutex_unlock(&j->mu);
		jwks_refresh(j);
		/* OpenSSL's per-thread state goes now, not at the thread's
		 * end, which the process's exit may never wait for. */
		OPENSSL_thread_stop();
		last = mono_ms();
		pthread_mutex_lock(&j->mu);
		j->done = asked;
	}
	pthread_mutex_unlock(&j->mu);
	jwks_unref(j);
	return NULL;
}

struct gw_jwks *gw_jwks_start(const char *name, const char *url, const char *ca_file,
			      unsigned refresh_s, struct gw_authz_keys *keys)
{
	struct gw_jwks *j = calloc(1, sizeof(*j));
	pthread_condattr_t ca;
	pthread_attr_t at;
	sigset_t all, old;
	pthread_t t;

	if (!j)
		abort();
	pthread_mutex_init(&j->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cv, &ca);
	pthread_condattr_destroy(&ca);
	j->name = strdup(name);
	j->url = strdup(url);
	j->ca = ca_file ? strdup(ca_file) : NULL;
	j->refresh_s = refresh_s;
	j->refs = 2;
	__atomic_add_fetch(&keys->refs, 1, __ATOMIC_ACQ_REL);
	j->cur = keys;
	/* Detached: the configuration's end only tells it to stop, so that
	 * whoever frees a configuration never waits for a fetch. */
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	/* The loops take signals through a signalfd: this thread must never
	 * be the one a SIGTERM is delivered to. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&t, &at, jwks_thread, j)) {
		j->refs = 1; /* no refresh: the keys read at load stay */
		gw_warn("authorizer %s: cannot start the JWKS refresh thread", name);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&at);
	return j;
}

void gw_jwks_stop(struct gw_jwks *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->mu);
	j->stop = 1;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	jwks_unref(j);
}

/* The keys in use (a reference) and their generation. */
struct gw_authz_keys *gw_jwks_get(const gw_authorizer_t *a, uint64_t *gen)
{
	struct gw_authz_keys *ks;

	*gen = 0;
	if (!a->jwks)
		return a->keys; /* borrowed: the configuration outlives the call */
	pthread_mutex_lock(&a->jwks->mu);
	ks = a->jwks->cur;
	__atomic_add_fetch(&ks->refs, 1, __ATOMIC_ACQ_REL);
	*gen = a->jwks->gen;
	pthread_mutex_unlock(&a->jwks->mu);
	return ks;
}

void gw_jwks_put(const gw_authorizer_t *a, struct gw_authz_keys *ks)
{
	if (a->jwks)
		gw_authz_keys_free(ks);
}

/* Asks for a fetch for an unknown kid: the number to wait for (see
 * gw_jwks_done): the fetch still under way if one is (the upgrades of a
 * rotation wait for the same fetch), else a new one, or 0 when the last
 * one was asked less than JWKS_KID_MIN_MS ago. */
uint64_t gw_jwks_ask(struct gw_jwks *j, uint64_t now)
{
	uint64_t n = 0;

	pthread_mutex_lock(&j->mu);
	if (j->asked > j->done) {
		n = j->asked;
	} else if (!j->kid_last || now - j->kid_last >= JWKS_KID_MIN_MS) {
		j->kid_last = now ? now : 1;
		j->wanted = 1;
		n = ++j->asked;
		pthread_cond_signal(&j->cv);
	}
	pthread_mutex_unlock(&j->mu);
	return n;
}

int gw_jwks_done(const gw_authorizer_t *a, uint64_t n)
{
	int done;

	if (!a->jwks)
		return 1;
	pthread_mutex_lock(&a->jwks->mu);
	done = a->jwks->done >= n || a->jwks->stop;
	pthread_mutex_unlock(&a->jwks->mu);
	return done;
}
