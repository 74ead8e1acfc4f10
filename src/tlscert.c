/* Certificates by SNI and their reload (see tlscert.h). A handshake picks
 * its pair in the servername callback, which OpenSSL runs for every
 * ClientHello (with or without SNI), and moves onto the pair's context with
 * SSL_set_SSL_CTX, which takes a reference: a reload swaps a whole new set
 * under a lock and drops the old one, while connections that already
 * picked keep their context (and certificate) until they end. */
#include "tlscert.h"
#include "tls.h"
#include "log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* TLS 1.2: forward secrecy and AEAD only (Mozilla's "intermediate" list).
 * TLS 1.3 suites all qualify and keep OpenSSL's defaults. */
#define TLS12_CIPHERS                                                   \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"    \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"    \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* One certificate/key pair and the names it serves. */
typedef struct pair {
	SSL_CTX *ctx;
	char *cert; /* file, for the log */
	char **names; /* lower case; "*.example.com" matches one label */
	size_t n_names;
} pair_t;

typedef struct certset {
	pair_t *pairs; /* pairs[0]: the default */
	size_t n;
} certset_t;

/* The front context's app data. */
typedef struct front {
	pthread_mutex_t lock; /* guards cur */
	certset_t *cur;
	char *dir;
	char **certs, **keys;
	size_t n;
} front_t;

static const char *ossl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : "no detail from OpenSSL";
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		abort();
	return d;
}

/* RFC 7301: the only protocol spoken here is HTTP/1.1 (the WebSocket
 * upgrade included). A client that offers ALPN without it would speak
 * something we do not: it gets no_application_protocol, as §3.2 says. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char ours[] = "\x08http/1.1";
	unsigned char *sel = NULL;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* Protocol settings, for the front (whose SSL objects keep them) and for
 * each pair (whose context a handshake moves to: OpenSSL asks its ALPN
 * callback). */
static int ctx_settings(SSL_CTX *ctx, char *err, size_t errlen)
{
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Keys under 2048-bit RSA / 224-bit ECC are refused at load. */
	if (SSL_CTX_get_security_level(ctx) < 2)
		SSL_CTX_set_security_level(ctx, 2);
	/* No renegotiation (a client could make the server redo handshakes at
	 * will), no compression (CRIME), the server's suite order. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	/* One read() per batch of records rather than two per record (header,
	 * then body); what OpenSSL holds beyond a record shows in
	 * SSL_has_pending(), which the relay and the head reader honour. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
	/* The TLS 1.3 traffic secrets go to the gateway's record layer (tls.c). */
	SSL_CTX_set_keylog_callback(ctx, gw_tls_keylog);
	if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
		snprintf(err, errlen, "cannot set the TLS 1.2 cipher suites: %s", ossl_reason());
		return -1;
	}
	return 0;
}

static void pair_dispose(pair_t *p)
{
	SSL_CTX_free(p->ctx);
	free(p->cert);
	for (size_t i = 0; i < p->n_names; i++)
		free(p->names[i]);
	free(p->names);
}

static void certset_free(certset_t *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		pair_dispose(&s->pairs[i]);
	free(s->pairs);
	free(s);
}

static void add_name(pair_t *p, const char *name, size_t len)
{
	char *n = malloc(len + 1);

	if (!n)
		abort();
	for (size_t i = 0; i < len; i++)
		n[i] = (char)tolower((unsigned char)name[i]);
	n[len] = 0;
	p->names = realloc(p->names, (p->n_names + 1) * sizeof(*p->names));
	if (!p->names)
		abort();
	p->names[p->n_names++] = n;
}

/* The DNS names of the subjectAltName, or, without any, the subject CN
 * (as clients did before SAN; a name with a NUL inside is skipped). */
static void read_names(pair_t *p, X509 *x)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	X509_NAME *subj;
	int i;

	for (i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *d;
		int len;

		if (g->type != GEN_DNS)
			continue;
		d = ASN1_STRING_get0_data(g->d.dNSName);
		len = ASN1_STRING_length(g->d.dNSName);
		if (len > 0 && !memchr(d, 0, (size_t)len))
			add_name(p, (const char *)d, (size_t)len);
	}
	GENERAL_NAMES_free(gens);
	if (p->n_names)
		return;
	subj = X509_get_subject_name(x);
	i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (i >= 0) {
		ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
		const unsigned char *d = ASN1_STRING_get0_data(cn);
		int len = ASN1_STRING_length(cn);

		if (len > 0 && !memchr(d, 0, (size_t)len))
			add_name(p, (const char *)d, (size_t)len);
	}
}

/* A file that cannot be opened says why in the system's words. */
static int readable(const char *file, const char *what, char *err, size_t errlen)
{
	FILE *f = fopen(file, "r");

	if (f) {
		fclose(f);
		return 0;
	}
	snprintf(err, errlen, "%s: cannot read it: %s (expected %s)", file, strerror(errno),
		 what);
	return -1;
}

/* Read apart from the certificate, so that a key of another certificate is
 * told from a file that holds no key. */
static int use_key(SSL_CTX *ctx, const char *cert, const char *key, char *err, size_t errlen)
{
	BIO *b = BIO_new_file(key, "r");
	EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	int rc = -1;

	BIO_free(b);
	if (!pk)
		snprintf(err, errlen, "%s: cannot load the private key: %s (expected a PEM "
			 "private key, unencrypted)", key, ossl_reason());
	else if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), pk) != 1)
		snprintf(err, errlen, "%s: the private key does not match the certificate %s "
			 "(expected the key the certificate was made for)", key, cert);
	else if (SSL_CTX_use_PrivateKey(ctx, pk) != 1)
		snprintf(err, errlen, "%s: cannot use the private key: %s", key, ossl_reason());
	else
		rc = 0;
	EVP_PKEY_free(pk);
	ERR_clear_error();
	return rc;
}

static int pair_load(pair_t *p, const char *cert, const char *key, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->cert = xstrdup(cert);
	if (readable(cert, "a PEM certificate chain", err, errlen) ||
	    readable(key, "a PEM private key", err, errlen))
		return -1;
	ERR_clear_error();
	p->ctx = SSL_CTX_new(TLS_server_method());
	if (!p->ctx) {
		snprintf(err, errlen, "cannot create a TLS context: %s", ossl_reason());
		return -1;
	}
	if (ctx_settings(p->ctx, err, errlen))
		return -1;
	if (SSL_CTX_use_certificate_chain_file(p->ctx, cert) != 1) {
		snprintf(err, errlen, "%s: cannot load the certificate chain: %s (expected a "
			 "PEM certificate, then its intermediates)", cert, ossl_reason());
		return -1;
	}
	if (use_key(p->ctx, cert, key, err, errlen))
		return -1;
	read_names(p, SSL_CTX_get0_certificate(p->ctx));
	return 0;
}

static int pair_add(certset_t *s, const char *cert, const char *key, char *err, size_t errlen)
{
	s->pairs = realloc(s->pairs, (s->n + 1) * sizeof(*s->pairs));
	if (!s->pairs)
		abort();
	/* Counted even when it fails: certset_free disposes of what it has. */
	return pair_load(&s->pairs[s->n++], cert, key, err, errlen);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The folder's *.crt, *.pem and *.key files (no hidden ones), sorted. */
static int list_dir(const char *dir, char ***out, size_t *n, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	*out = NULL;
	*n = 0;
	if (!d) {
		snprintf(err, errlen, "%s: cannot read the folder: %s (expected a folder of "
			 "NAME.crt + NAME.key or NAME.pem files)", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		const char *dot = strrchr(e->d_name, '.');

		if (e->d_name[0] == '.' || !dot || dot == e->d_name ||
		    (strcmp(dot, ".crt") && strcmp(dot, ".pem") && strcmp(dot, ".key")))
			continue;
		*out = realloc(*out, (*n + 1) * sizeof(**out));
		if (!*out)
			abort();
		(*out)[(*n)++] = xstrdup(e->d_name);
	}
	closedir(d);
	if (*n)
		qsort(*out, *n, sizeof(**out), by_name);
	return 0;
}

static int has_file(char **files, size_t n, const char *base, size_t blen, const char *ext)
{
	for (size_t i = 0; i < n; i++)
		if (!strncmp(files[i], base, blen) && !strcmp(files[i] + blen, ext))
			return 1;
	return 0;
}

static char *join(const char *dir, const char *base, size_t blen, const char *ext)
{
	size_t len = strlen(dir) + blen + strlen(ext) + 2;
	char *p = malloc(len);

	if (!p)
		abort();
	snprintf(p, len, "%s/%.*s%s", dir, (int)blen, base, ext);
	return p;
}

/* NAME.crt needs NAME.key; NAME.pem takes NAME.key when there is one, else
 * holds its key itself; a NAME.key needs its certificate. */
static int load_dir(certset_t *s, const char *dir, char *err, size_t errlen)
{
	char **files, *cert = NULL, *key = NULL;
	size_t n, dflt = (size_t)-1;
	int rc = -1;

	if (list_dir(dir, &files, &n, err, errlen))
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *f = files[i], *ext = strrchr(f, '.');
		size_t blen = (size_t)(ext - f);
		int crt = !strcmp(ext, ".crt"), pem = !strcmp(ext, ".pem");
		int keyfile = has_file(files, n, f, blen, ".key");

		if (!crt && !pem) {
			if (has_file(files, n, f, blen, ".crt") || has_file(files, n, f, blen, ".pem"))
				continue;
			snprintf(err, errlen, "%s/%s: a key without its certificate (expected "
				 "%.*s.crt or %.*s.pem next to it)", dir, f, (int)blen, f, (int)blen, f);
			goto out;
		}
		if (pem && has_file(files, n, f, blen, ".crt")) {
			snprintf(err, errlen, "%s/%.*s: both .crt and .pem (expected one certificate "
				 "file per name)", dir, (int)blen, f);
			goto out;
		}
		if (crt && !keyfile) {
			snprintf(err, errlen, "%s/%s: no %.*s.key next to it (expected the "
				 "certificate's private key there)", dir, f, (int)blen, f);
			goto out;
		}
		cert = join(dir, f, blen, ext);
		key = keyfile ? join(dir, f, blen, ".key") : xstrdup(cert);
		if (pair_add(s, cert, key, err, errlen))
			goto out;
		if (blen == 7 && !strncmp(f, "default", 7))
			dflt = s->n - 1;
		free(cert);
		free(key);
		cert = key = NULL;
	}
	if (!s->n) {
		snprintf(err, errlen, "%s: no certificate in the folder (expected NAME.crt + "
			 "NAME.key or NAME.pem files)", dir);
		goto out;
	}
	if (dflt != (size_t)-1 && dflt) {
		pair_t p = s->pairs[dflt];

		memmove(&s->pairs[1], &s->pairs[0], dflt * sizeof(*s->pairs));
		s->pairs[0] = p;
	}
	rc = 0;
out:
	free(cert);
	free(key);
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	return rc;
}

static certset_t *certset_load(const front_t *f, char *err, size_t errlen)
{
	certset_t *s = calloc(1, sizeof(*s));

	if (!s)
		abort();
	if (f->dir && load_dir(s, f->dir, err, errlen))
		goto fail;
	for (size_t i = 0; i < f->n; i++)
		if (pair_add(s, f->certs[i], f->keys[i], err, errlen))
			goto fail;
	return s;
fail:
	certset_free(s);
	return NULL;
}

/* "*.example.com" covers "a.example.com", not "example.com" nor
 * "a.b.example.com" (RFC 6125 §6.4.3). */
static int wildcard_match(const char *pattern, const char *name)
{
	const char *dot = strchr(name, '.');

	return pattern[0] == '*' && pattern[1] == '.' && dot && dot != name &&
	       !strcasecmp(dot + 1, pattern + 2);
}

/* An exact name first, then a wildcard, else the default. */
static SSL_CTX *certset_pick(const certset_t *s, const char *name)
{
	if (!name || !*name)
		return s->pairs[0].ctx;
	for (size_t i = 0; i < s->n; i++)
		for (size_t k = 0; k < s->pairs[i].n_names; k++)
			if (!strcasecmp(s->pairs[i].names[k], name))
				return s->pairs[i].ctx;
	for (size_t i = 0; i < s->n; i++)
		for (size_t k = 0; k < s->pairs[i].n_names; k++)
			if (wildcard_match(s->pairs[i].names[k], name))
				return s->pairs[i].ctx;
	return s->pairs[0].ctx;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
	front_t *f = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	SSL_CTX *ctx;
	int ok;

	pthread_mutex_lock(&f->lock);
	ctx = certset_pick(f->cur, name);
	SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&f->lock);
	ok = SSL_set_SSL_CTX(ssl, ctx) != NULL;
	SSL_CTX_free(ctx); /* the SSL holds its own reference */
	if (ok)
		return SSL_TLSEXT_ERR_OK;
	*alert = SSL_AD_INTERNAL_ERROR;
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void log_set(const certset_t *s)
{
	for (size_t i = 0; i < s->n; i++) {
		char names[512];
		size_t len = 0;

		names[0] = 0;
		for (size_t k = 0; k < s->pairs[i].n_names && len < sizeof(names); k++)
			len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s",
						k ? ", " : "", s->pairs[i].names[k]);
		gw_info("tls: %s serves %s%s", s->pairs[i].cert, names[0] ? names : "no name",
			i ? "" : " (and the default: clients without SNI or with another name)");
	}
}

static char **copy_list(const char *const *v, size_t n)
{
	char **c = calloc(n ? n : 1, sizeof(*c));

	if (!c)
		abort();
	for (size_t i = 0; i < n; i++)
		c[i] = xstrdup(v[i]);
	return c;
}

static void front_free(front_t *f)
{
	if (!f)
		return;
	certset_free(f->cur);
	for (size_t i = 0; i < f->n; i++) {
		free(f->certs[i]);
		free(f->keys[i]);
	}
	free(f->certs);
	free(f->keys);
	free(f->dir);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

SSL_CTX *gw_tlscert_create(const gw_tls_files_t *files, char *err, size_t errlen)
{
	front_t *f = calloc(1, sizeof(*f));
	SSL_CTX *front = NULL;

	if (!f)
		abort();
	pthread_mutex_init(&f->lock, NULL);
	f->dir = files->dir ? xstrdup(files->dir) : NULL;
	f->n = files->n;
	f->certs = copy_list(files->certs, files->n);
	f->keys = copy_list(files->keys, files->n);
	f->cur = certset_load(f, err, errlen);
	if (!f->cur)
		goto fail;
	front = SSL_CTX_new(TLS_server_method());
	if (!front) {
		snprintf(err, errlen, "cannot create a TLS context: %s", ossl_reason());
		goto fail;
	}
	if (ctx_settings(front, err, errlen))
		goto fail;
	SSL_CTX_set_tlsext_servername_callback(front, on_servername);
	SSL_CTX_set_tlsext_servername_arg(front, f);
	SSL_CTX_set_app_data(front, f);
	log_set(f->cur);
	return front;
fail:
	SSL_CTX_free(front);
	front_free(f);
	return NULL;
}

void gw_tlscert_reload(SSL_CTX *front)
{
	front_t *f = front ? SSL_CTX_get_app_data(front) : NULL;
	certset_t *s, *old;
	char err[1024];

	if (!f)
		return;
	s = certset_load(f, err, sizeof(err));
	if (!s) {
		gw_err("tls: reload refused: %s; the running certificates stay", err);
		return;
	}
	pthread_mutex_lock(&f->lock);
	old = f->cur;
	f->cur = s;
	pthread_mutex_unlock(&f->lock);
	certset_free(old);
	gw_info("tls: certificates read again (%zu pair%s); new handshakes use them, open "
		"connections keep theirs", s->n, s->n == 1 ? "" : "s");
	log_set(s);
}

void gw_tlscert_destroy(SSL_CTX *front)
{
	if (!front)
		return;
	front_free(SSL_CTX_get_app_data(front));
	SSL_CTX_free(front);
}
