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
/* One client's TLS session: an OpenSSL SSL for the handshake; then, for
 * TLS 1.3, the gateway's own record layer (tlsrec.h) and the SSL is freed;
 * TLS 1.2 (or a session that cannot be handed over) stays on the SSL. */
typedef struct gw_tls gw_tls_t;

/* A session for the accepted socket fd (which stays the caller's), or
 * NULL. */
gw_tls_t *gw_tls_new(gw_worker_t *gw, int fd);
void gw_tls_free(gw_tls_t *t);
/* Reads plaintext (completing the TLS handshake first). Returns the byte
 * count, 0 when it would block, -1 when the peer is gone or TLS failed. */
ssize_t gw_tls_read(gw_tls_t *t, void *buf, size_t len);
/* Best-effort write of a short answer, then close_notify. */
void gw_tls_write_and_close(gw_tls_t *t, const void *a, size_t alen, const void *b,
			    size_t blen);
/* The keylog callback of the listener's SSL_CTXs (tlscert.c): how the
 * application traffic secrets reach the record layer. */
void gw_tls_keylog(const SSL *ssl, const char *line);

/* Takes ownership of t and its socket; prefix is plaintext already read
 * from it. Returns the socket to give to libwebsockets, or -1 (t and the
 * socket are then closed). */
int gw_relay_start(gw_worker_t *gw, gw_tls_t *t, int tls_fd, const void *prefix,
		   size_t len);

void gw_relay_free_all(gw_worker_t *gw);
/* After each libwebsockets service pass: what libwebsockets wrote to the
 * relays in it goes on to the clients now, not after one more poll() over
 * every socket of the loop. */
void gw_relay_after_service(gw_worker_t *gw);

/* One loop's relays, held opaquely by the loop. NULL only when memory
 * runs out; destroyed after gw_relay_free_all() (NULL is allowed). */
gw_relay_ctx_t *gw_relay_ctx_create(void);
void gw_relay_ctx_destroy(gw_relay_ctx_t *rc);

#endif
