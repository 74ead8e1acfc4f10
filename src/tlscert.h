/* The gateway listener's certificates: one or more certificate/key pairs,
 * one chosen per handshake by the server name the client asks for (SNI),
 * all read again on reload. The listener's SSL_CTX (the "front") holds the
 * protocol settings (TLS 1.2+, ALPN http/1.1) and never a certificate of
 * its own: every handshake is moved onto the context of one pair. */
#ifndef GW_TLSCERT_H
#define GW_TLSCERT_H

#include <openssl/ssl.h>
#include <stddef.h>

/* Where the pairs come from: a folder (NAME.crt + NAME.key, or NAME.pem
 * holding both; the pair named "default", else the first by name, is the
 * default), or n explicit pairs (certs[0]/keys[0] is the default). */
typedef struct gw_tls_files {
	const char *dir;
	const char *const *certs;
	const char *const *keys;
	size_t n;
} gw_tls_files_t;

/* Reads every pair (the file names are copied, for reloads). On failure
 * writes "FILE: what is wrong (what was expected)" into err and returns
 * NULL. */
SSL_CTX *gw_tlscert_create(const gw_tls_files_t *files, char *err, size_t errlen);
/* Reads the same files (the folder listed again) and swaps the new pairs
 * in for new handshakes; connections keep the certificate they got. A
 * missing or broken pair refuses the whole reload: the old pairs stay.
 * The outcome is logged. Thread-safe against handshakes; from one thread
 * at a time. NULL: nothing to do. */
void gw_tlscert_reload(SSL_CTX *front);
/* After the last handshake. NULL is fine. */
void gw_tlscert_destroy(SSL_CTX *front);

#endif
