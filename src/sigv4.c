/* SigV4 verification (sigv4.h): the canonical request, the string to sign
 * and the key derivation of AWS's "Create a signed AWS API request", with
 * OpenSSL's SHA-256 and HMAC. Never writes a secret anywhere but the
 * derivation buffers, which are wiped before returning. */
#include "sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ALGORITHM "AWS4-HMAC-SHA256"
#define MAX_SIGNED_HEADERS 64

void gw_sigv4_init(gw_sigv4_t *v)
{
	memset(v, 0, sizeof(*v));
	gw_buf_init(&v->method);
	gw_buf_init(&v->uris);
	gw_buf_init(&v->query);
	gw_buf_init(&v->headers);
}

void gw_sigv4_dispose(gw_sigv4_t *v)
{
	gw_buf_dispose(&v->method);
	gw_buf_dispose(&v->uris);
	gw_buf_dispose(&v->query);
	gw_buf_dispose(&v->headers);
}

static void hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

void gw_sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != 32)
		abort();
	hex(md, 32, out);
}

static void hmac(const void *key, size_t key_len, const void *data, size_t len,
		 unsigned char out[32])
{
	unsigned int n = 0;

	if (!HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n) || n != 32)
		abort();
}

/* --- URI encoding (AWS's UriEncode) --- */

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

/* What a client may send as is: RFC 3986 pchar beyond the unreserved, and
 * UTF-8 (AWS's "get-utf8" example sends it raw). */
static int pchar_literal(unsigned char c)
{
	return unreserved(c) || c >= 0x80 || (c && strchr("!$&'()*+,;=:@", c));
}

static void encode(gw_buf_t *out, const char *s, size_t n, int (*keep)(unsigned char))
{
	static const char digits[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (keep(c)) {
			gw_buf_append_char(out, (char)c);
		} else {
			gw_buf_append_char(out, '%');
			gw_buf_append_char(out, digits[c >> 4]);
			gw_buf_append_char(out, digits[c & 15]);
		}
	}
}

/* A segment as the client sent it (literal pchars or all escaped), then
 * escaped once more, as the canonical URI wants. */
static void canonical_segment(gw_buf_t *out, const char *s, size_t n, int escaped)
{
	gw_buf_t raw;

	gw_buf_init(&raw);
	encode(&raw, s, n, escaped ? unreserved : pchar_literal);
	encode(out, raw.data ? raw.data : "", raw.len, unreserved);
	gw_buf_dispose(&raw);
}

static int segment_ambiguous(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!unreserved((unsigned char)s[i]) && pchar_literal((unsigned char)s[i]))
			return 1;
	return 0;
}

/* Candidate canonical URIs: with k segments that can be sent two ways,
 * every combination when k <= 3, else all-literal and all-escaped. */
static void build_uris(gw_sigv4_t *v, const char *path, size_t len)
{
	size_t seg_start[64], seg_len[64], n_seg = 0, ambiguous[3], k = 0, combos;
	int many = 0;

	if (!len || path[0] != '/') {
		gw_buf_append(&v->uris, "/", 2);
		v->n_uris = 1;
		return;
	}
	for (size_t i = 1; i <= len; i++) {
		size_t s = i;

		while (i < len && path[i] != '/')
			i++;
		if (n_seg == 64) {
			many = 1;
			break;
		}
		seg_start[n_seg] = s;
		seg_len[n_seg] = i - s;
		if (segment_ambiguous(path + s, i - s)) {
			if (k < 3)
				ambiguous[k] = n_seg;
			k++;
		}
		n_seg++;
	}
	if (many) {
		/* Not a management path: one candidate, never a match. */
		gw_buf_append(&v->uris, "/", 2);
		v->n_uris = 1;
		return;
	}
	combos = k <= 3 ? (size_t)1 << k : 2;
	for (size_t c = 0; c < combos; c++) {
		for (size_t s = 0; s < n_seg; s++) {
			int escaped;

			if (k > 3) {
				escaped = (int)c;
			} else {
				escaped = 0;
				for (size_t a = 0; a < k; a++)
					if (ambiguous[a] == s)
						escaped = (int)((c >> a) & 1);
			}
			gw_buf_append_char(&v->uris, '/');
			canonical_segment(&v->uris, path + seg_start[s], seg_len[s], escaped);
		}
		gw_buf_append_char(&v->uris, '\0');
	}
	v->n_uris = combos;
}

/* --- canonical query --- */

struct qpair {
	gw_buf_t name, value;
};

static int cmp_qpair(const void *a, const void *b)
{
	const struct qpair *x = a, *y = b;
	size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
	int c = n ? memcmp(x->name.data, y->name.data, n) : 0;

	if (c || x->name.len != y->name.len)
		return c ? c : (x->name.len < y->name.len ? -1 : 1);
	n = x->value.len < y->value.len ? x->value.len : y->value.len;
	c = n ? memcmp(x->value.data, y->value.data, n) : 0;
	if (c || x->value.len == y->value.len)
		return c;
	return x->value.len < y->value.len ? -1 : 1;
}

static void build_query(gw_sigv4_t *v, const gw_str_t *args, size_t n)
{
	struct qpair *pairs;

	if (!n)
		return;
	pairs = calloc(n, sizeof(*pairs));
	if (!pairs)
		abort();
	for (size_t i = 0; i < n; i++) {
		const char *eq = memchr(args[i].ptr, '=', args[i].len);
		size_t nl = eq ? (size_t)(eq - args[i].ptr) : args[i].len;

		gw_buf_init(&pairs[i].name);
		gw_buf_init(&pairs[i].value);
		encode(&pairs[i].name, args[i].ptr, nl, unreserved);
		if (eq)
			encode(&pairs[i].value, eq + 1, args[i].len - nl - 1, unreserved);
	}
	qsort(pairs, n, sizeof(*pairs), cmp_qpair);
	for (size_t i = 0; i < n; i++) {
		if (i)
			gw_buf_append_char(&v->query, '&');
		gw_buf_append(&v->query, pairs[i].name.data, pairs[i].name.len);
		gw_buf_append_char(&v->query, '=');
		gw_buf_append(&v->query, pairs[i].value.data, pairs[i].value.len);
		gw_buf_dispose(&pairs[i].name);
		gw_buf_dispose(&pairs[i].value);
	}
	free(pairs);
}

/* --- the Authorization header --- */

static int is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Copies [p, p+n) into dst (size cap) if every byte passes ok() and it
 * fits; 0 on success. */
static int take(char *dst, size_t cap, const char *p, size_t n, int (*ok)(unsigned char))
{
	if (!n || n >= cap)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!ok((unsigned char)p[i]))
			return -1;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return 0;
}

static int alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int scope_char(unsigned char c)
{
	return alnum(c) || c == '-' || c == '_';
}

static int digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int lower_hex(unsigned char c)
{
	return digit(c) || (c >= 'a' && c <= 'f');
}

static int header_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || digit(c) || c == '-' || c == '_' || c == '.';
}

struct auth_parts {
	const char *credential, *signed_headers, *signature;
	size_t credential_len, signed_len, signature_len;
};

/* "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...";
 * parts in any order, each once. */
static enum gw_sigv4_status parse_authorization(const char *a, size_t n,
						struct auth_parts *ap, char *why,
						size_t why_len)
{
	const char *p = a, *end = a + n;
	size_t alg = sizeof(ALGORITHM) - 1;

	memset(ap, 0, sizeof(*ap));
	if (n < alg || memcmp(a, ALGORITHM, alg) || (n > alg && !is_space(a[alg]))) {
		snprintf(why, why_len, "Authorization header requires the algorithm "
			 "'" ALGORITHM "'.");
		return GW_SIGV4_INCOMPLETE;
	}
	p += alg;
	while (p < end) {
		const char *comma, *eq;
		size_t len;

		while (p < end && (is_space(*p) || *p == ','))
			p++;
		if (p == end)
			break;
		comma = memchr(p, ',', (size_t)(end - p));
		len = (size_t)((comma ? comma : end) - p);
		while (len && is_space(p[len - 1]))
			len--;
		eq = memchr(p, '=', len);
		if (!eq)
			goto bad;
#define PART(key, field, flen)                                                     \
	if ((size_t)(eq - p) == sizeof(key) - 1 && !memcmp(p, key, sizeof(key) - 1)) { \
		if (ap->field)                                                     \
			goto bad;                                                  \
		ap->field = eq + 1;                                                \
		ap->flen = len - (size_t)(eq + 1 - p);                             \
	} else
		PART("Credential", credential, credential_len)
		PART("SignedHeaders", signed_headers, signed_len)
		PART("Signature", signature, signature_len)
			goto bad;
#undef PART
		p = comma ? comma + 1 : end;
	}
	if (ap->credential && ap->signed_headers && ap->signature)
		return GW_SIGV4_OK;
bad:
	snprintf(why, why_len, "Authorization header requires 'Credential', "
		 "'SignedHeaders' and 'Signature' parameters.");
	return GW_SIGV4_INCOMPLETE;
}

/* "AKID/20150830/us-east-1/service/aws4_request" */
static enum gw_sigv4_status parse_credential(gw_sigv4_t *v, const char *p, size_t n,
					     char *why, size_t why_len)
{
	const char *part[5];
	size_t len[5], k = 0;
	const char *s = p, *end = p + n;

	while (k < 5) {
		const char *slash = memchr(s, '/', (size_t)(end - s));

		part[k] = s;
		len[k] = (size_t)((slash ? slash : end) - s);
		k++;
		if (!slash)
			break;
		s = slash + 1;
	}
	if (k != 5 || part[4] + len[4] != end ||
	    take(v->access_key, sizeof(v->access_key), part[0], len[0], alnum) ||
	    len[1] != 8 || take(v->date, sizeof(v->date), part[1], len[1], digit) ||
	    take(v->region, sizeof(v->region), part[2], len[2], scope_char) ||
	    take(v->service, sizeof(v->service), part[3], len[3], scope_char)) {
		snprintf(why, why_len, "Credential should be a valid scope of the form "
			 "'<key>/<YYYYMMDD>/<region>/<service>/aws4_request'.");
		return GW_SIGV4_INCOMPLETE;
	}
	if (len[4] != 12 || memcmp(part[4], "aws4_request", 12)) {
		snprintf(why, why_len, "Credential should be scoped with a valid terminator: "
			 "'aws4_request'.");
		return GW_SIGV4_SCOPE;
	}
	return GW_SIGV4_OK;
}

/* Trimmed, inner runs of spaces collapsed to one (AWS's Trimall). */
static void append_trimmed(gw_buf_t *out, const char *s, size_t n)
{
	int space = 0, started = 0;

	for (size_t i = 0; i < n; i++) {
		if (is_space(s[i])) {
			space = started;
			continue;
		}
		if (space)
			gw_buf_append_char(out, ' ');
		space = 0;
		started = 1;
		gw_buf_append_char(out, s[i]);
	}
}

static enum gw_sigv4_status build_headers(gw_sigv4_t *v, const gw_sigv4_request_t *req,
					  const char *list, size_t n, char *why,
					  size_t why_len)
{
	const char *s = list, *end = list + n;
	int host = 0, count = 0;
	gw_buf_t val;

	gw_buf_init(&val);
	while (s <= end) {
		const char *semi = memchr(s, ';', (size_t)(end - s));
		size_t len = (size_t)((semi ? semi : end) - s);
		char name[128];

		if (++count > MAX_SIGNED_HEADERS ||
		    take(name, sizeof(name), s, len, header_name_char))
			goto bad;
		host |= !strcmp(name, "host");
		gw_buf_reset(&val);
		gw_buf_append_str(&v->headers, name);
		gw_buf_append_char(&v->headers, ':');
		if (!req->header(req->user, name, &val))
			append_trimmed(&v->headers, val.data ? val.data : "", val.len);
		gw_buf_append_char(&v->headers, '\n');
		if (!semi)
			break;
		s = semi + 1;
	}
	gw_buf_dispose(&val);
	gw_buf_append_char(&v->headers, '\n');
	gw_buf_append(&v->headers, list, n);
	if (!host) {
		snprintf(why, why_len, "'Host' must be a 'SignedHeader' in the AWS "
			 "Authorization.");
		return GW_SIGV4_INCOMPLETE;
	}
	return GW_SIGV4_OK;
bad:
	gw_buf_dispose(&val);
	snprintf(why, why_len, "Authorization header requires 'SignedHeaders' to be "
		 "a list of at most %d lowercase header names separated by ';'.",
		 MAX_SIGNED_HEADERS);
	return GW_SIGV4_INCOMPLETE;
}

/* "YYYYMMDDTHHMMSSZ" to epoch seconds; -1 when malformed. */
static int64_t parse_amz_date(const char *s)
{
	struct tm tm;
	int f[6];

	if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
		return -1;
	for (int i = 0; i < 15; i++)
		if (i != 8 && !digit((unsigned char)s[i]))
			return -1;
	if (sscanf(s, "%4d%2d%2dT%2d%2d%2dZ", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5]) != 6 ||
	    f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > 31 || f[3] > 23 || f[4] > 59 ||
	    f[5] > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = f[0] - 1900;
	tm.tm_mon = f[1] - 1;
	tm.tm_mday = f[2];
	tm.tm_hour = f[3];
	tm.tm_min = f[4];
	tm.tm_sec = f[5];
	return (int64_t)timegm(&tm);
}

static void format_amz_date(int64_t t, char out[17])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static enum gw_sigv4_status check_date(gw_sigv4_t *v, const gw_sigv4_request_t *req,
				       int64_t now_s, int64_t skew_s, char *why,
				       size_t why_len)
{
	gw_buf_t d;
	int64_t t;
	char a[17], b[17];

	gw_buf_init(&d);
	if (req->header(req->user, "x-amz-date", &d) || !d.len || d.len >= sizeof(v->amz_date)) {
		gw_buf_dispose(&d);
		snprintf(why, why_len, "Authorization header requires existence of a "
			 "'X-Amz-Date' header in the form YYYYMMDDTHHMMSSZ.");
		return GW_SIGV4_INCOMPLETE;
	}
	memcpy(v->amz_date, d.data, d.len);
	v->amz_date[d.len] = '\0';
	gw_buf_dispose(&d);
	t = parse_amz_date(v->amz_date);
	if (t < 0) {
		snprintf(why, why_len, "X-Amz-Date must be in the form YYYYMMDDTHHMMSSZ.");
		return GW_SIGV4_INCOMPLETE;
	}
	if (memcmp(v->amz_date, v->date, 8)) {
		snprintf(why, why_len, "Date in Credential scope does not match YYYYMMDD "
			 "from X-Amz-Date.");
		return GW_SIGV4_SCOPE;
	}
	if (t < now_s - skew_s) {
		format_amz_date(now_s - skew_s, a);
		format_amz_date(now_s, b);
		snprintf(why, why_len, "Signature expired: %s is now earlier than %s "
			 "(%s - %lld min.)", v->amz_date, a, b, (long long)(skew_s / 60));
		return GW_SIGV4_EXPIRED;
	}
	if (t > now_s + skew_s) {
		format_amz_date(now_s + skew_s, a);
		format_amz_date(now_s, b);
		snprintf(why, why_len, "Signature not yet current: %s is still later than "
			 "%s (%s + %lld min.)", v->amz_date, a, b, (long long)(skew_s / 60));
		return GW_SIGV4_EXPIRED;
	}
	return GW_SIGV4_OK;
}

enum gw_sigv4_status gw_sigv4_begin(gw_sigv4_t *v, const gw_sigv4_request_t *req,
				    const char *service, int64_t now_s, int64_t skew_s,
				    char *why, size_t why_len)
{
	struct auth_parts ap;
	enum gw_sigv4_status st;
	gw_buf_t a, sha;

	why[0] = '\0';
	gw_buf_init(&a);
	gw_buf_init(&sha);
	if (req->header(req->user, "authorization", &a) || !a.len) {
		snprintf(why, why_len, "Missing Authentication Token");
		st = GW_SIGV4_MISSING;
		goto out;
	}
	if ((st = parse_authorization(a.data, a.len, &ap, why, why_len)) ||
	    (st = parse_credential(v, ap.credential, ap.credential_len, why, why_len)))
		goto out;
	if (strcmp(v->service, service)) {
		snprintf(why, why_len, "Credential should be scoped to correct service: '%s'.",
			 service);
		st = GW_SIGV4_SCOPE;
		goto out;
	}
	if (ap.signature_len != 64 ||
	    take(v->signature, sizeof(v->signature), ap.signature, 64, lower_hex)) {
		snprintf(why, why_len, "Signature should be 64 lowercase hexadecimal digits.");
		st = GW_SIGV4_INCOMPLETE;
		goto out;
	}
	if ((st = check_date(v, req, now_s, skew_s, why, why_len)) ||
	    (st = build_headers(v, req, ap.signed_headers, ap.signed_len, why, why_len)))
		goto out;
	if (!req->header(req->user, "x-amz-content-sha256", &sha)) {
		v->has_content_sha = 1;
		/* Anything but a hex digest (UNSIGNED-PAYLOAD, ...) never
		 * matches the body's: the body is always signed here. */
		snprintf(v->content_sha, sizeof(v->content_sha), "%.*s",
			 (int)(sha.len < 64 ? sha.len : 64), sha.data ? sha.data : "");
		if (sha.len != 64)
			v->content_sha[0] = '\0';
	}
	gw_buf_append_str(&v->method, req->method);
	build_uris(v, req->path, req->path_len);
	build_query(v, req->query, req->n_query);
out:
	gw_buf_dispose(&a);
	gw_buf_dispose(&sha);
	return st;
}

void gw_sigv4_canonical_request(const gw_sigv4_t *v, size_t i, const char *payload_hex,
				gw_buf_t *out)
{
	const char *uri = v->uris.data ? v->uris.data : "/";

	for (size_t k = 0; k < i && k + 1 < v->n_uris; k++)
		uri += strlen(uri) + 1;
	gw_buf_append(out, v->method.data, v->method.len);
	gw_buf_append_char(out, '\n');
	gw_buf_append_str(out, uri);
	gw_buf_append_char(out, '\n');
	gw_buf_append(out, v->query.data, v->query.len);
	gw_buf_append_char(out, '\n');
	gw_buf_append(out, v->headers.data, v->headers.len);
	gw_buf_append_char(out, '\n');
	gw_buf_append_str(out, payload_hex);
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
 * "aws4_request"). */
static void signing_key(const gw_sigv4_t *v, const char *secret, size_t secret_len,
			unsigned char key[32])
{
	unsigned char *k0 = malloc(secret_len + 4);

	if (!k0)
		abort();
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, secret_len);
	hmac(k0, secret_len + 4, v->date, strlen(v->date), key);
	OPENSSL_cleanse(k0, secret_len + 4);
	free(k0);
	hmac(key, 32, v->region, strlen(v->region), key);
	hmac(key, 32, v->service, strlen(v->service), key);
	hmac(key, 32, "aws4_request", 12, key);
}

/* The signature of candidate i under an already derived key. */
static void sign_with_key(const gw_sigv4_t *v, size_t i, const unsigned char key[32],
			  const char *payload_hex, gw_buf_t *creq, gw_buf_t *sts, char out[65])
{
	unsigned char mac[32];
	char creq_hex[65];

	gw_buf_reset(creq);
	gw_buf_reset(sts);
	gw_sigv4_canonical_request(v, i, payload_hex, creq);
	gw_sigv4_sha256_hex(creq->data, creq->len, creq_hex);
	gw_buf_append_str(sts, ALGORITHM "\n");
	gw_buf_append_str(sts, v->amz_date);
	gw_buf_append_char(sts, '\n');
	gw_buf_append_str(sts, v->date);
	gw_buf_append_char(sts, '/');
	gw_buf_append_str(sts, v->region);
	gw_buf_append_char(sts, '/');
	gw_buf_append_str(sts, v->service);
	gw_buf_append_str(sts, "/aws4_request\n");
	gw_buf_append_str(sts, creq_hex);
	hmac(key, 32, sts->data, sts->len, mac);
	hex(mac, 32, out);
}

void gw_sigv4_signature(const gw_sigv4_t *v, size_t i, const char *secret, size_t secret_len,
			const char *payload_hex, char out[65])
{
	unsigned char key[32];
	gw_buf_t creq, sts;

	signing_key(v, secret, secret_len, key);
	gw_buf_init(&creq);
	gw_buf_init(&sts);
	sign_with_key(v, i, key, payload_hex, &creq, &sts, out);
	OPENSSL_cleanse(key, sizeof(key));
	gw_buf_dispose(&creq);
	gw_buf_dispose(&sts);
}

void gw_sigv4_uri_encode(gw_buf_t *out, const char *s, size_t n, int literal_pchars)
{
	encode(out, s, n, literal_pchars ? pchar_literal : unreserved);
}

enum gw_sigv4_status gw_sigv4_finish(gw_sigv4_t *v, const char *secret, size_t secret_len,
				     const void *body, size_t body_len, char *why,
				     size_t why_len)
{
	unsigned char key[32];
	char body_hex[65], sig[65];
	enum gw_sigv4_status st = GW_SIGV4_MISMATCH;
	gw_buf_t creq, sts;

	why[0] = '\0';
	gw_sigv4_sha256_hex(body_len ? body : "", body_len, body_hex);
	if (v->has_content_sha && strcmp(v->content_sha, body_hex)) {
		snprintf(why, why_len, "The provided 'x-amz-content-sha256' header does not "
			 "match what was computed.");
		return GW_SIGV4_MISMATCH;
	}
	signing_key(v, secret, secret_len, key);
	gw_buf_init(&creq);
	gw_buf_init(&sts);
	for (size_t i = 0; i < v->n_uris && st; i++) {
		sign_with_key(v, i, key, body_hex, &creq, &sts, sig);
		if (!CRYPTO_memcmp(sig, v->signature, 64))
			st = GW_SIGV4_OK;
	}
	OPENSSL_cleanse(key, sizeof(key));
	gw_buf_dispose(&creq);
	gw_buf_dispose(&sts);
	if (st)
		snprintf(why, why_len, "The request signature we calculated does not match "
			 "the signature you provided. Check your AWS Secret Access Key and "
			 "signing method. Consult the service documentation for details.");
	return st;
}
