/* SigV4 verification (src/sigv4.h) on whatever a management client sends:
 * the Authorization header, X-Amz-Date, x-amz-content-sha256, the signed
 * header list, the decoded path and query, the body. Input: lines
 * "METHOD PATH", then "name: value" headers (names lowercased here, as
 * libwebsockets hands them over), a blank line, the body. Invariants:
 * nothing crashes or leaks, every refusal says why, and a request the
 * harness signs itself with the module's own canonical form verifies. */
#include "fuzz_common.h"
#include "sigv4.h"

#include <openssl/hmac.h>

#define SECRET "fuzz-secret-not-a-real-one"
#define NOW 1440938160LL /* 2015-08-30T12:36:00Z */

struct hdr {
	const char *name, *value;
	size_t nlen, vlen;
};

struct req {
	struct hdr h[32];
	size_t n;
};

static int get_header(void *user, const char *name, gw_buf_t *out)
{
	const struct req *r = user;
	int found = 0;

	for (size_t i = 0; i < r->n; i++) {
		if (r->h[i].nlen != strlen(name) || memcmp(r->h[i].name, name, r->h[i].nlen))
			continue;
		if (found++)
			gw_buf_append_char(out, ',');
		gw_buf_append(out, r->h[i].value, r->h[i].vlen);
	}
	return found ? 0 : -1;
}

static void mac(const void *k, size_t kl, const char *d, size_t dl, unsigned char out[32])
{
	unsigned int n = 32;

	FZ_CHECK(HMAC(EVP_sha256(), k, (int)kl, (const unsigned char *)d, dl, out, &n));
}

/* The signature of candidate 0 under SECRET, written the long way: the
 * module must accept what its own canonical form signs. */
static void sign_own(gw_sigv4_t *v, const char *body, size_t body_len)
{
	unsigned char key[32];
	char hash[65], creq_hash[65];
	gw_buf_t creq, sts;

	gw_sigv4_sha256_hex(body, body_len, hash);
	gw_buf_init(&creq);
	gw_buf_init(&sts);
	gw_sigv4_canonical_request(v, 0, hash, &creq);
	gw_sigv4_sha256_hex(creq.data, creq.len, creq_hash);
	gw_buf_append_str(&sts, "AWS4-HMAC-SHA256\n");
	gw_buf_append_str(&sts, v->amz_date);
	gw_buf_append_char(&sts, '\n');
	gw_buf_append_str(&sts, v->date);
	gw_buf_append_char(&sts, '/');
	gw_buf_append_str(&sts, v->region);
	gw_buf_append_char(&sts, '/');
	gw_buf_append_str(&sts, v->service);
	gw_buf_append_str(&sts, "/aws4_request\n");
	gw_buf_append_str(&sts, creq_hash);
	mac("AWS4" SECRET, sizeof(SECRET) + 3, v->date, strlen(v->date), key);
	mac(key, 32, v->region, strlen(v->region), key);
	mac(key, 32, v->service, strlen(v->service), key);
	mac(key, 32, "aws4_request", 12, key);
	mac(key, 32, sts.data, sts.len, key);
	for (int i = 0; i < 32; i++)
		snprintf(v->signature + 2 * i, 3, "%02x", key[i]);
	gw_buf_dispose(&creq);
	gw_buf_dispose(&sts);
}

static const char *line(const char *p, const char *end, size_t *len)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	*len = (size_t)((nl ? nl : end) - p);
	return nl ? nl + 1 : end;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *sp;
	char *lower = malloc(size + 1), method[16] = "GET", why[512];
	gw_str_t query[8];
	size_t n_query = 0, len, path_len = 0;
	const char *path = "/", *q;
	struct req r = { .n = 0 };
	gw_sigv4_request_t req;
	gw_sigv4_t v;
	enum gw_sigv4_status st;

	if (!lower)
		abort();
	memcpy(lower, data, size);
	lower[size] = '\0';
	p = lower;
	end = lower + size;
	p = line(p, end, &len);
	sp = memchr(lower, ' ', len);
	if (sp && (size_t)(sp - lower) < sizeof(method)) {
		memcpy(method, lower, (size_t)(sp - lower));
		method[sp - lower] = '\0';
		path = sp + 1;
		path_len = len - (size_t)(sp + 1 - lower);
		/* "?a=b&c" after the path: decoded arguments, as lws gives them. */
		q = memchr(path, '?', path_len);
		if (q) {
			const char *a = q + 1, *qe = path + path_len;

			path_len = (size_t)(q - path);
			while (a < qe && n_query < 8) {
				const char *amp = memchr(a, '&', (size_t)(qe - a));

				query[n_query].ptr = a;
				query[n_query++].len = (size_t)((amp ? amp : qe) - a);
				a = amp ? amp + 1 : qe;
			}
		}
	}
	while (p < end && r.n < 32) {
		const char *l = p, *colon;

		p = line(p, end, &len);
		if (!len)
			break;
		colon = memchr(l, ':', len);
		if (!colon)
			continue;
		for (char *c = (char *)l; c < colon; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c + 32);
		r.h[r.n].name = l;
		r.h[r.n].nlen = (size_t)(colon - l);
		r.h[r.n].value = colon + 1;
		r.h[r.n].vlen = len - (size_t)(colon + 1 - l);
		r.n++;
	}
	req = (gw_sigv4_request_t){ method, path, path_len, query, n_query, get_header, &r };
	gw_sigv4_init(&v);
	st = gw_sigv4_begin(&v, &req, "execute-api", NOW, 900, why, sizeof(why));
	FZ_CHECK(st == GW_SIGV4_OK || why[0]);
	if (st == GW_SIGV4_OK) {
		FZ_CHECK(v.n_uris >= 1 && v.n_uris <= GW_SIGV4_MAX_VARIANTS);
		st = gw_sigv4_finish(&v, SECRET, sizeof(SECRET) - 1, p, (size_t)(end - p), why,
				     sizeof(why));
		FZ_CHECK(st == GW_SIGV4_OK || st == GW_SIGV4_MISMATCH);
		FZ_CHECK(st == GW_SIGV4_OK || why[0]);
		FZ_CHECK(!strstr(why, SECRET));
		if (!v.has_content_sha) {
			sign_own(&v, p, (size_t)(end - p));
			FZ_CHECK(gw_sigv4_finish(&v, SECRET, sizeof(SECRET) - 1, p,
						 (size_t)(end - p), why, sizeof(why)) ==
				 GW_SIGV4_OK);
		}
	}
	gw_sigv4_dispose(&v);
	free(lower);
	return 0;
}
