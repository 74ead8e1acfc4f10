/* TLS on the gateway listener, terminated by the gateway itself so that it
 * can read the request head and hold the handshake for $connect exactly as
 * on a plain socket. libwebsockets cannot adopt an OpenSSL session that is
 * already established, so an accepted TLS connection is handed over as the
 * far end of a socketpair, and a relay pumps bytes between the two: the
 * plaintext side is an ordinary ws:// connection to libwebsockets. */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct gw_worker gw_worker_t;
typedef struct gw_relay gw_relay_t;
typedef struct gw_relay_ctx gw_relay_ctx_t;

/* Reads plaintext (completing the TLS handshake first). Returns the byte
 * count, 0 when it would block, -1 when the peer is gone or TLS failed. */
ssize_t gw_tls_read(SSL *ssl, void *buf, size_t len);
/* Best-effort write of a short answer, then close_notify. */
void gw_tls_write_and_close(SSL *ssl, const void *a, size_t alen, const void *b,
			    size_t blen);

/* Takes ownership of ssl and its socket; prefix is plaintext already read
 * from it. Returns the socket to give to libwebsockets, or -1 (ssl and the
 * socket are then closed). */
int gw_relay_start(gw_worker_t *gw, SSL *ssl, int tls_fd, const void *prefix,
		   size_t len);

void gw_relay_free_all(gw_worker_t *gw);

/* One loop's relays, held opaquely by the loop. NULL only when memory
 * runs out; destroyed after gw_relay_free_all() (NULL is allowed). */
gw_relay_ctx_t *gw_relay_ctx_create(void);
void gw_relay_ctx_destroy(gw_relay_ctx_t *rc);

#endif
