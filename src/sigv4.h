/* AWS Signature Version 4 verification (the Authorization header form), as
 * the AWS SDKs and CLI sign every @connections call. Pure logic: no I/O, no
 * clock, no logging; the caller supplies the request, the time and, once it
 * knows which key the request names, the secret.
 *
 * Two steps, because the key's secret is looked up from what the header
 * says, and a POST's body arrives after its head:
 *   gw_sigv4_init -> gw_sigv4_begin (head: header syntax, scope, clock)
 *   -> the caller looks up v->access_key and v->region
 *   -> gw_sigv4_finish (secret, body: body hash, signature) -> gw_sigv4_dispose
 *
 * A secret is only ever passed in, used for one derivation and wiped from
 * the module's own buffers; no message this module writes holds it.
 *
 * The path arrives percent-decoded (libwebsockets decodes it), while the
 * canonical URI is built from the path as sent. Clients differ in what they
 * escape (the SDKs send "@connections" as is and escape the ID; awscurl
 * escapes both), so each path segment is tried both ways: RFC 3986 pchar
 * characters sent literally, or every reserved byte escaped. Both decode
 * to the same path, so accepting either signs the same request. */
#ifndef GW_SIGV4_H
#define GW_SIGV4_H

#include "buf.h"

#include <stdint.h>

enum gw_sigv4_status {
	GW_SIGV4_OK = 0,
	GW_SIGV4_MISSING,    /* no Authorization header */
	GW_SIGV4_INCOMPLETE, /* a malformed Authorization, no X-Amz-Date, host unsigned */
	GW_SIGV4_SCOPE,      /* another algorithm, service, date or terminator */
	GW_SIGV4_EXPIRED,    /* X-Amz-Date outside the allowed clock skew */
	GW_SIGV4_MISMATCH,   /* the signature or the body hash does not match */
};

/* Appends the value of request header `name` (lowercase) to out; repeated
 * headers joined by ','. Returns 0 when present, -1 when absent. */
typedef int (*gw_sigv4_header_fn)(void *user, const char *name, gw_buf_t *out);

typedef struct gw_sigv4_request {
	const char *method;
	const char *path;       /* percent-decoded, dot segments resolved */
	size_t path_len;
	const gw_str_t *query;  /* decoded "name=value" (or "name") arguments */
	size_t n_query;
	gw_sigv4_header_fn header;
	void *user;
} gw_sigv4_request_t;

#define GW_SIGV4_MAX_VARIANTS 8

typedef struct gw_sigv4 {
	/* From the Authorization header, valid after gw_sigv4_begin. */
	char access_key[129];
	char region[33];
	char date[9];      /* YYYYMMDD of the credential scope */
	char amz_date[17]; /* YYYYMMDDTHHMMSSZ */
	char service[33];
	char signature[65];
	char content_sha[65]; /* x-amz-content-sha256 when sent */
	int has_content_sha;
	/* Canonical request pieces, kept until the body is known. */
	gw_buf_t method;
	gw_buf_t uris;     /* n_uris NUL-terminated candidates */
	size_t n_uris;
	gw_buf_t query;
	gw_buf_t headers;  /* canonical headers, blank line, signed headers */
} gw_sigv4_t;

void gw_sigv4_init(gw_sigv4_t *v);
void gw_sigv4_dispose(gw_sigv4_t *v);

/* Checks the head: the Authorization header's syntax, the algorithm,
 * `service`, the scope's date against X-Amz-Date, and X-Amz-Date against
 * now_s (epoch seconds) within skew_s either way. On failure, why gets a
 * message in AWS's words (no secret, ever). */
enum gw_sigv4_status gw_sigv4_begin(gw_sigv4_t *v, const gw_sigv4_request_t *req,
				    const char *service, int64_t now_s, int64_t skew_s,
				    char *why, size_t why_len);

/* Checks the body against x-amz-content-sha256 (when sent; UNSIGNED-PAYLOAD
 * is refused: the body must be signed) and the signature under secret.
 * GW_SIGV4_OK or GW_SIGV4_MISMATCH. */
enum gw_sigv4_status gw_sigv4_finish(gw_sigv4_t *v, const char *secret, size_t secret_len,
				     const void *body, size_t body_len, char *why,
				     size_t why_len);

/* The canonical request of candidate i (< v->n_uris) for a payload hash,
 * for tests and for the message AWS shows on a mismatch. */
void gw_sigv4_canonical_request(const gw_sigv4_t *v, size_t i, const char *payload_hex,
				gw_buf_t *out);

/* The signer's half: the signature of candidate i for a payload hash
 * under secret, lowercase hex in out[65]. A client signs its own request
 * by running it through gw_sigv4_begin with a placeholder signature, so
 * both ends canonicalise with this one code (clients/libwsgate). */
void gw_sigv4_signature(const gw_sigv4_t *v, size_t i, const char *secret, size_t secret_len,
			const char *payload_hex, char out[65]);

/* AWS's UriEncode of s: unreserved characters kept, the rest escaped; with
 * literal_pchars, RFC 3986 pchars and UTF-8 kept too (a path segment as
 * the SDKs send it, which is candidate 0's form). */
void gw_sigv4_uri_encode(gw_buf_t *out, const char *s, size_t n, int literal_pchars);

/* Lowercase hex SHA-256 of data, in out[65]. */
void gw_sigv4_sha256_hex(const void *data, size_t len, char out[65]);

#endif
