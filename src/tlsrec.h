/* The TLS 1.3 record layer after the handshake (RFC 8446 §5), what kTLS
 * does in the kernel, done here because this kernel has none: once
 * OpenSSL has finished a TLS 1.3 handshake the gateway keeps only the two
 * application traffic secrets and their keys (about 200 bytes) and frees
 * the SSL object (8.5 KB and two cipher contexts of 1.2 KB each in OpenSSL
 * 3.0). Records are opened and sealed with OpenSSL's AEAD ciphers through
 * one set of cipher contexts per loop, re-keyed per record; keys come from
 * OpenSSL's TLS13-KDF. Handles application data, alerts (close_notify) and
 * KeyUpdate both ways; anything else after the handshake is fatal.
 *
 * Cipher contexts: a connection that goes through more than
 * GW_TLSREC_BUSY records between two idle ticks of its owner keeps one
 * keyed context per direction (about 1.1 KB each in OpenSSL 3.0), so that a
 * record only sets its nonce (re-keying cost half of a record's
 * instructions); a quieter one (the WebSocket handshake, a message now and
 * then) re-keys the loop's shared contexts per record. The owner releases a
 * connection's contexts once it is idle (gw_tlsrec_idle_tick).
 *
 * It parses what a peer sends: every length is checked against the record
 * limits before a byte is touched, and the tag check is OpenSSL's. A
 * connection's buffers exist only while bytes are in flight (a partial
 * record, plaintext the caller had no room for, a record the socket did not
 * take). Never used from two threads at once: one loop context per
 * thread. */
#ifndef GW_TLSREC_H
#define GW_TLSREC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GW_TLSREC_HDR 5
#define GW_TLSREC_MAX_PLAIN 16384                /* 2^14 */
#define GW_TLSREC_MAX_BODY (GW_TLSREC_MAX_PLAIN + 256) /* ciphertext */
#define GW_TLSREC_MAX_REC (GW_TLSREC_HDR + GW_TLSREC_MAX_BODY)
#define GW_TLSREC_TAG 16
#define GW_TLSREC_MAX_SECRET 48
#define GW_TLSREC_BUSY 8 /* records before a connection keys its own contexts */

/* Results of the stream calls (negative) */
enum {
	GW_TLSREC_EOF = -1, /* the peer's close_notify: an orderly end */
	GW_TLSREC_ERR = -2, /* fatal: bad record, alert, socket error */
};

/* Cipher suites, by their TLS code points */
enum {
	GW_TLSREC_AES_128_GCM_SHA256 = 0x1301,
	GW_TLSREC_AES_256_GCM_SHA384 = 0x1302,
	GW_TLSREC_CHACHA20_POLY1305_SHA256 = 0x1303,
};

/* One loop's cipher contexts and scratch buffers. */
typedef struct gw_tlsrec_loop gw_tlsrec_loop_t;

struct evp_cipher_ctx_st;

/* One direction's keys. */
typedef struct gw_tlsrec_dir {
	uint8_t secret[GW_TLSREC_MAX_SECRET];
	uint8_t key[32];
	uint8_t iv[12];
	uint64_t seq;
	struct evp_cipher_ctx_st *ctx; /* keyed with key, while the connection is busy */
} gw_tlsrec_dir_t;

/* One connection (embedded by its owner; init/dispose). */
typedef struct gw_tlsrec {
	gw_tlsrec_dir_t rx, tx;
	uint8_t *in;     /* raw bytes of records not opened yet */
	uint8_t *plain;  /* opened plaintext the caller had no room for */
	uint8_t *out;    /* sealed bytes the socket has not taken */
	uint32_t in_len, plain_off, plain_len, out_off, out_len;
	uint16_t suite;
	uint8_t hash_len, key_len;
	uint8_t dead;    /* fatal error or close_notify seen: nothing more */
	uint8_t used;    /* records since the last idle tick (saturating) */
	uint8_t empty;   /* records in a row that carried no data (bounded) */
	uint8_t hs_len;  /* bytes of a KeyUpdate split across records so far */
	uint8_t hs[4];   /* those bytes (a whole one is 5) */
} gw_tlsrec_t;

gw_tlsrec_loop_t *gw_tlsrec_loop_create(void);
void gw_tlsrec_loop_destroy(gw_tlsrec_loop_t *L);

/* Sets t up from the traffic secrets (hash-length each) of a finished
 * handshake. tx_seq: records the server already sent under its
 * application key (session tickets). -1 if the suite is not one of the
 * three above or a derivation failed. */
int gw_tlsrec_init(gw_tlsrec_t *t, uint16_t suite, const uint8_t *client_secret,
		   const uint8_t *server_secret, size_t secret_len, uint64_t tx_seq);
/* Frees the buffers and the cipher contexts, and wipes the keys. */
void gw_tlsrec_dispose(gw_tlsrec_t *t);
/* Keyed cipher contexts held (0, 1 or 2). */
int gw_tlsrec_ctx_count(const gw_tlsrec_t *t);
/* Called periodically while t holds contexts: frees them if no record went
 * through since the previous call (1), else only forgets the count (0).
 * After a release the connection starts again on the loop's contexts. */
int gw_tlsrec_idle_tick(gw_tlsrec_t *t);

/* The record parser: checks the header at p (avail bytes). Returns the
 * whole record's length when it is complete, 0 when more bytes are needed,
 * -1 when the header is not a TLS 1.3 application record within the
 * limits (*alert: the alert to send). */
ssize_t gw_tlsrec_parse_header(const uint8_t *p, size_t avail, uint8_t *alert);

/* Opens one whole record in place (rec, len from gw_tlsrec_parse_header).
 * Returns the content type (23 data, 21 alert, 22 handshake) with the
 * content in *body, *body_len, or -1 with *alert set. */
int gw_tlsrec_open(gw_tlsrec_loop_t *L, gw_tlsrec_t *t, uint8_t *rec, size_t len,
		   uint8_t **body, size_t *body_len, uint8_t *alert);
/* Seals len (<= GW_TLSREC_MAX_PLAIN) bytes of type into out, which has
 * room for len + 22. Returns the record's length, or -1 (sequence number
 * exhausted). */
ssize_t gw_tlsrec_seal(gw_tlsrec_loop_t *L, gw_tlsrec_t *t, uint8_t type, const void *in,
		       size_t len, uint8_t *out);

/* Reads plaintext from the socket fd: > 0 bytes, 0 when it would block
 * (or only a KeyUpdate came), GW_TLSREC_EOF or GW_TLSREC_ERR. */
ssize_t gw_tlsrec_read(gw_tlsrec_loop_t *L, gw_tlsrec_t *t, int fd, void *buf, size_t len);
/* Seals up to one record of buf and sends it: the plaintext bytes taken
 * (what the socket did not take waits inside and goes first next time),
 * 0 when sealed bytes still wait for the socket, GW_TLSREC_ERR. */
ssize_t gw_tlsrec_write(gw_tlsrec_loop_t *L, gw_tlsrec_t *t, int fd, const void *buf,
			size_t len);
/* Sends what waits: 1 when nothing is left, 0 when some is, -1 on error. */
int gw_tlsrec_flush(gw_tlsrec_t *t, int fd);
/* Plaintext readable without the socket (a whole record or opened bytes
 * held inside). */
int gw_tlsrec_has_pending(const gw_tlsrec_t *t);
/* Sealed bytes wait for the socket. */
int gw_tlsrec_wants_write(const gw_tlsrec_t *t);
/* Best effort: sends a close_notify (or a fatal alert), without waiting. */
void gw_tlsrec_send_alert(gw_tlsrec_loop_t *L, gw_tlsrec_t *t, int fd, uint8_t alert);

#define GW_TLSREC_CLOSE_NOTIFY 0

#endif
