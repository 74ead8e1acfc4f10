/* JWT authorizers (authorizer.c): what a client sends and what a JWKS
 * endpoint answers. The first input byte picks:
 *   0  a raw token, in an upgrade's Authorization header (gw_authz_jwt)
 *   1  a header and a claims object (the input, split at its first NUL)
 *      signed by the harness with one of the JWKS's keys (RS256, ES256,
 *      EdDSA, by the second byte), so the claims checks are reached
 *   2  a JWKS document (gw_authz_keys_load, from a memfd)
 * The keys are made at start; the API file names them with jwksFile. */
#include "authorizer.h"
#include "config.h"
#include "fuzz_common.h"
#include "fuzz_memfile.h"
#include "httpreq.h"

#include <ftw.h>
#include <sys/stat.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <time.h>

static char dir[] = "/tmp/wsgate-fuzz-jwt-XXXXXX";
static gw_config_t *cfg;
static const gw_authorizer_t *authz;
static EVP_PKEY *keys[3]; /* RSA, P-256, Ed25519 */
static fz_memfile_t jwks_file;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static void cleanup(void)
{
	gw_config_unref(cfg);
	for (int i = 0; i < 3; i++)
		EVP_PKEY_free(keys[i]);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void b64url(gw_buf_t *o, const unsigned char *d, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) |
			     (i + 2 < n ? d[i + 2] : 0);

		gw_buf_append_char(o, a[v >> 18 & 63]);
		gw_buf_append_char(o, a[v >> 12 & 63]);
		if (i + 1 < n)
			gw_buf_append_char(o, a[v >> 6 & 63]);
		if (i + 2 < n)
			gw_buf_append_char(o, a[v & 63]);
	}
}

static void bn_member(gw_buf_t *o, const char *name, const BIGNUM *bn, int pad)
{
	unsigned char buf[1024];
	int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);

	gw_buf_append_str(o, ",\"");
	gw_buf_append_str(o, name);
	gw_buf_append_str(o, "\":\"");
	b64url(o, buf, (size_t)n);
	gw_buf_append_char(o, '"');
}

static void make_keys(gw_buf_t *jwks)
{
	BIGNUM *n = NULL, *e = NULL, *x = NULL, *y = NULL;
	unsigned char raw[32];
	size_t rlen = sizeof(raw);

	keys[0] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	keys[1] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	keys[2] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!keys[0] || !keys[1] || !keys[2] ||
	    !EVP_PKEY_get_bn_param(keys[0], OSSL_PKEY_PARAM_RSA_N, &n) ||
	    !EVP_PKEY_get_bn_param(keys[0], OSSL_PKEY_PARAM_RSA_E, &e) ||
	    !EVP_PKEY_get_bn_param(keys[1], OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
	    !EVP_PKEY_get_bn_param(keys[1], OSSL_PKEY_PARAM_EC_PUB_Y, &y) ||
	    !EVP_PKEY_get_raw_public_key(keys[2], raw, &rlen))
		abort();
	gw_buf_append_str(jwks, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"alg\":\"RS256\"");
	bn_member(jwks, "n", n, 0);
	bn_member(jwks, "e", e, 0);
	gw_buf_append_str(jwks, "},{\"kty\":\"EC\",\"kid\":\"e\",\"crv\":\"P-256\"");
	bn_member(jwks, "x", x, 32);
	bn_member(jwks, "y", y, 32);
	gw_buf_append_str(jwks, "},{\"kty\":\"OKP\",\"kid\":\"d\",\"crv\":\"Ed25519\",\"x\":\"");
	b64url(jwks, raw, rlen);
	gw_buf_append_str(jwks, "\"}]}");
	BN_free(n);
	BN_free(e);
	BN_free(x);
	BN_free(y);
}

static void write_file(const char *name, const void *data, size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f))
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char api[] =
		"{\"name\":\"chat\",\"stage\":\"dev\",\"basePath\":\"/\","
		"\"integrations\":{\"b\":{\"type\":\"MOCK\"}},"
		"\"authorizers\":{\"jwt\":{\"type\":\"JWT\","
		"\"identitySource\":\"route.request.header.Authorization\","
		"\"jwtConfiguration\":{\"issuer\":\"https://issuer.example/\","
		"\"audience\":[\"chat-app\"],\"jwksFile\":\"keys/jwks.json\",\"leewaySeconds\":30}}},"
		"\"routes\":{\"$connect\":{\"integration\":\"b\",\"authorizer\":\"jwt\"},"
		"\"$default\":{\"integration\":\"b\"}}}";
	gw_buf_t jwks, err;
	char keydir[128];

	fz_quiet();
	gw_buf_init(&jwks);
	gw_buf_init(&err);
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	make_keys(&jwks);
	/* Beside the API file, not among API files (the folder is loaded). */
	snprintf(keydir, sizeof(keydir), "%s/keys", dir);
	if (mkdir(keydir, 0700))
		abort();
	write_file("keys/jwks.json", jwks.data, jwks.len);
	write_file("chat.json", api, strlen(api));
	if (gw_config_load(dir, &cfg, &err) || !cfg->n_apis ||
	    !(authz = cfg->apis[0].connect_authorizer)) {
		fprintf(stderr, "fuzz_jwt: the API does not load: %.*s\n", (int)err.len,
			err.data ? err.data : "");
		abort();
	}
	fz_memfile_open(&jwks_file, "jwks");
	gw_buf_dispose(&jwks);
	gw_buf_dispose(&err);
	return 0;
}

/* An upgrade head carrying token; NULL when the token cannot be a header
 * value (the head parser would refuse the upgrade before any authorizer). */
static gw_req_t *head_with(const char *tok, size_t len)
{
	gw_req_t *h;
	gw_buf_t b;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)tok[i] < 0x20 || tok[i] == 0x7f)
			return NULL;
	gw_buf_init(&b);
	gw_buf_append_str(&b, "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: ");
	gw_buf_append(&b, tok, len);
	gw_buf_append_str(&b, "\r\n\r\n");
	h = gw_req_create_head(16384);
	if (gw_req_feed(h, b.data, b.len, NULL) != GW_REQ_DONE) {
		gw_req_destroy(h);
		h = NULL;
	}
	gw_buf_dispose(&b);
	return h;
}

static void check_token(const char *tok, size_t len)
{
	uint64_t wall = (uint64_t)time(NULL) * 1000;
	gw_authz_result_t res;
	gw_req_t *h = head_with(tok, len);

	if (!h)
		return;
	gw_authz_jwt(authz, &cfg->apis[0], h, wall, 1000, 0, &res);
	FZ_CHECK(res.verdict == GW_AUTHZ_ALLOW || res.verdict == GW_AUTHZ_UNAUTHORIZED);
	FZ_CHECK(res.why != NULL);
	if (getenv("FZ_JWT_VERBOSE"))
		fprintf(stderr, "fuzz_jwt: %s (%.60s)\n", res.why, tok);
	if (res.verdict == GW_AUTHZ_ALLOW)
		FZ_CHECK(res.context && strlen(res.context) == res.context_len);
	gw_authz_result_dispose(&res);
	gw_req_destroy(h);
}

/* ES256 wants r || s, not DER. */
static int der_to_raw(const unsigned char *der, size_t dlen, unsigned char out[64])
{
	ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &der, (long)dlen);
	const BIGNUM *r, *sv;

	if (!s)
		return -1;
	ECDSA_SIG_get0(s, &r, &sv);
	BN_bn2binpad(r, out, 32);
	BN_bn2binpad(sv, out + 32, 32);
	ECDSA_SIG_free(s);
	return 0;
}

static void signed_token(const uint8_t *d, size_t n)
{
	static const char *const algs[] = { "RS256", "ES256", "EdDSA" };
	static const char *const kids[] = { "r", "e", "d" }; /* make_keys' */
	const uint8_t *nul;
	unsigned char sig[512], raw[64];
	size_t slen = sizeof(sig);
	int k;
	gw_buf_t tok, hdr;
	EVP_MD_CTX *md;

	if (n < 1)
		return;
	k = d[0] % 3;
	d++;
	n--;
	nul = memchr(d, '\0', n);
	gw_buf_init(&tok);
	gw_buf_init(&hdr);
	/* No header given: a plain one for the key chosen. */
	if (!nul || nul == d) {
		gw_buf_append_str(&hdr, "{\"alg\":\"");
		gw_buf_append_str(&hdr, algs[k]);
		gw_buf_append_str(&hdr, "\",\"kid\":\"");
		gw_buf_append_str(&hdr, kids[k]);
		gw_buf_append_str(&hdr, "\"}");
	} else {
		gw_buf_append(&hdr, d, (size_t)(nul - d));
	}
	b64url(&tok, (const unsigned char *)hdr.data, hdr.len);
	gw_buf_append_char(&tok, '.');
	if (nul)
		b64url(&tok, nul + 1, n - (size_t)(nul + 1 - d));
	else
		b64url(&tok, d, n);
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, k == 2 ? NULL : EVP_sha256(), NULL, keys[k]) <= 0 ||
	    EVP_DigestSign(md, sig, &slen, (const unsigned char *)tok.data, tok.len) <= 0)
		abort();
	EVP_MD_CTX_free(md);
	gw_buf_append_char(&tok, '.');
	if (k == 1) {
		if (der_to_raw(sig, slen, raw))
			abort();
		b64url(&tok, raw, 64);
	} else {
		b64url(&tok, sig, slen);
	}
	check_token(tok.data, tok.len);
	gw_buf_dispose(&tok);
	gw_buf_dispose(&hdr);
}

static void jwks_doc(const uint8_t *d, size_t n)
{
	char err[256];
	struct gw_authz_keys *k;

	fz_memfile_set(&jwks_file, d, n);
	k = gw_authz_keys_load(jwks_file.path, err, sizeof(err));
	if (!k)
		FZ_CHECK(err[0] && memchr(err, '\0', sizeof(err)));
	gw_authz_keys_free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	switch (data[0] % 3) {
	case 0: check_token((const char *)data + 1, size - 1); break;
	case 1: signed_token(data + 1, size - 1); break;
	case 2: jwks_doc(data + 1, size - 1); break;
	}
	return 0;
}
