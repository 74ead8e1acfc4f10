/* The TLS 1.3 record layer (see tlsrec.h). RFC 8446 §5.2 (record
 * protection), §5.3 (per-record nonce), §7.1-7.2 (key schedule, KeyUpdate
 * secrets), §4.6.3 (KeyUpdate). No cryptography is written here: AEAD and
 * HKDF-Expand-Label are OpenSSL's. */
#include "tlsrec.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CT_ALERT 21
#define CT_HANDSHAKE 22
#define CT_DATA 23
#define HS_KEY_UPDATE 24

/* Alerts (§6) */
#define A_UNEXPECTED_MESSAGE 10
#define A_BAD_RECORD_MAC 20
#define A_RECORD_OVERFLOW 22
#define A_ILLEGAL_PARAMETER 47
#define A_DECODE_ERROR 50
#define A_INTERNAL_ERROR 80

/* Dead flags: nothing more is read or written. */
#define DEAD_RX 1
#define DEAD_TX 2

/* Data bytes a whole record of len bytes may hold at most: header, tag
 * and the inner content type come off. */
#define MAX_DATA(len) ((len) - GW_TLSREC_HDR - GW_TLSREC_TAG - 1)

/* Records in a row without a byte of data (empty application data,
 * KeyUpdates): each costs a decryption (a KeyUpdate, three key
 * derivations) and gives the caller nothing, so a client streaming them
 * would keep the reader in one call as long as it sends. Past this many,
 * fatal (OpenSSL's MAX_EMPTY_RECORDS and MAX_KEY_UPDATE_MESSAGES). */
#define MAX_EMPTY_RECORDS 32

typedef struct suite {
	uint16_t id;
	const char *md;
	const char *cipher;
	uint8_t key_len, hash_len;
	uint8_t gcm;
} suite_t;

static const suite_t suites[] = {
	{ GW_TLSREC_AES_128_GCM_SHA256, "SHA256", "AES-128-GCM", 16, 32, 1 },
	{ GW_TLSREC_AES_256_GCM_SHA384, "SHA384", "AES-256-GCM", 32, 48, 1 },
	{ GW_TLSREC_CHACHA20_POLY1305_SHA256, "SHA256", "ChaCha20-Poly1305", 32, 32, 0 },
};
#define N_SUITES (sizeof(suites) / sizeof(suites[0]))

struct gw_tlsrec_loop {
	/* Fetched once: a cipher named by a legacy EVP_aes_*() object is
	 * fetched from the provider again at every keying (1.5k instructions
	 * in OpenSSL 3.0). */
	EVP_CIPHER *cipher[N_SUITES];
	/* [suite][encrypt], made on first use: re-keyed for each record of a
	 * connection that has no contexts of its own. */
	EVP_CIPHER_CTX *ctx[N_SUITES][2];
	uint8_t rbuf[GW_TLSREC_MAX_REC];  /* records being opened */
	uint8_t wbuf[GW_TLSREC_MAX_REC];  /* the record being sealed */
};

static EVP_KDF *kdf;
static pthread_once_t kdf_once = PTHREAD_ONCE_INIT;

static void kdf_fetch(void)
{
	kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
}

static const suite_t *suite_of(uint16_t id, size_t *idx)
{
	for (size_t i = 0; i < N_SUITES; i++)
		if (suites[i].id == id) {
			if (idx)
				*idx = i;
			return &suites[i];
		}
	return NULL;
}

/* HKDF-Expand-Label(secret, label, "", len) (§7.1), by OpenSSL's TLS13-KDF. */
static int expand_label(const suite_t *s, const uint8_t *secret, const char *label,
			uint8_t *out, size_t len)
{
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	OSSL_PARAM p[6];
	EVP_KDF_CTX *k;
	int ok;

	pthread_once(&kdf_once, kdf_fetch);
	if (!kdf || !(k = EVP_KDF_CTX_new(kdf)))
		return -1;
	p[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	p[1] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)s->md, 0);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret,
						 s->hash_len);
	p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, "tls13 ", 6);
	p[4] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (void *)label,
						 strlen(label));
	p[5] = OSSL_PARAM_construct_end();
	ok = EVP_KDF_derive(k, out, len, p) == 1;
	EVP_KDF_CTX_free(k);
	return ok ? 0 : -1;
}

static void drop_ctx(gw_tlsrec_dir_t *d)
{
	EVP_CIPHER_CTX_free(d->ctx);
	d->ctx = NULL;
}

/* Key and IV from the direction's traffic secret (§7.3). A context keyed
 * with the previous key goes. */
static int derive(const suite_t *s, gw_tlsrec_dir_t *d)
{
	drop_ctx(d);
	d->seq = 0;
	if (expand_label(s, d->secret, "key", d->key, s->key_len) ||
	    expand_label(s, d->secret, "iv", d->iv, sizeof(d->iv)))
		return -1;
	return 0;
}

/* The next generation of a direction's secret (§7.2). */
static int key_update(const suite_t *s, gw_tlsrec_dir_t *d)
{
	uint8_t next[GW_TLSREC_MAX_SECRET];

	if (expand_label(s, d->secret, "traffic upd", next, s->hash_len))
		return -1;
	memcpy(d->secret, next, s->hash_len);
	OPENSSL_cleanse(next, sizeof(next));
	return derive(s, d);
}

int gw_tlsrec_init(gw_tlsrec_t *t, uint16_t suite, const uint8_t *client_secret,
		   const uint8_t *server_secret, size_t secret_len, uint64_t tx_seq)
{
	const suite_t *s = suite_of(suite, NULL);

	memset(t, 0, sizeof(*t));
	if (!s || secret_len != s->hash_len)
		return -1;
	t->suite = suite;
	t->hash_len = s->hash_len;
	t->key_len = s->key_len;
	memcpy(t->rx.secret, client_secret, secret_len);
	memcpy(t->tx.secret, server_secret, secret_len);
	if (derive(s, &t->rx) || derive(s, &t->tx)) {
		gw_tlsrec_dispose(t);
		return -1;
	}
	t->tx.seq = tx_seq;
	return 0;
}

int gw_tlsrec_ctx_count(const gw_tlsrec_t *t)
{
	return !!t->rx.ctx + !!t->tx.ctx;
}

int gw_tlsrec_idle_tick(gw_tlsrec_t *t)
{
	if (t->used) {
		t->used = 0;
		return 0;
	}
	drop_ctx(&t->rx);
	drop_ctx(&t->tx);
	return 1;
}

void gw_tlsrec_dispose(gw_tlsrec_t *t)
{
	drop_ctx(&t->rx);
	drop_ctx(&t->tx);
	free(t->in);
	free(t->plain);
	free(t->out);
	OPENSSL_cleanse(t, sizeof(*t));
}

gw_tlsrec_loop_t *gw_tlsrec_loop_create(void)
{
	return calloc(1, sizeof(gw_tlsrec_loop_t));
}

void gw_tlsrec_loop_destroy(gw_tlsrec_loop_t *L)
{
	if (!L)
		return;
	for (size_t i = 0; i < N_SUITES; i++) {
		for (int e = 0; e < 2; e++)
			EVP_CIPHER_CTX_free(L->ctx[i][e]);
		EVP_CIPHER_free(L->cipher[i]);
	}
	free(L);
}

/* The loop's shared context for the suite and direction. */
static EVP_CIPHER_CTX *shared_ctx(gw_tlsrec_loop_t *L, size_t idx, int enc)
{
	EVP_CIPHER_CTX **c = &L->ctx[idx][enc];

	if (!*c)
		*c = EVP_CIPHER_CTX_new();
	return *c;
}

/* A context ready for the direction's record numbered d->seq: nonce = iv
 * XOR the sequence number (§5.3); tag: the tag to check (opening).
 *
 * A connection that went through fewer than GW_TLSREC_BUSY records since
 * the owner's last idle tick (the WebSocket handshake, a message now and
 * then) uses the loop's context, re-keyed for the record (about 2k
 * instructions: the key expansion and OpenSSL 3.0's provider set-up). A
 * busier one keys a context of its own per direction, once; its records
 * only set their nonce, as OpenSSL's own record layer does. For AES-GCM
 * the nonce goes in as the provider's whole "TLS fixed IV" (length -1,
 * EVP_CTRL_AEAD_SET_IV_FIXED's "restore the whole IV"), with the tag in
 * the same call: EVP_CipherInit_ex would also ask the provider for the IV
 * length at every record (600 instructions in OpenSSL 3.0). A wrong nonce
 * could not go unnoticed: the peer's tag check would fail. */
static EVP_CIPHER_CTX *keyed(gw_tlsrec_loop_t *L, gw_tlsrec_t *t, gw_tlsrec_dir_t *d, int enc,
			     const uint8_t *tag)
{
	size_t idx;
	const suite_t *s = suite_of(t->suite, &idx);
	uint8_t nonce[12];
	OSSL_PARAM p[3], *q = p;
	EVP_CIPHER_CTX *c = d->ctx;

	if (!s)
		return NULL;
	memcpy(nonce, d->iv, sizeof(nonce));
	for (int i = 0; i < 8; i++)
		nonce[11 - i] ^= (uint8_t)(d->seq >> (8 * i));
	if (t->used < UINT8_MAX)
		t->used++;
	if (!c) {
		if (!L->cipher[idx] && !(L->cipher[idx] = EVP_CIPHER_fetch(NULL, s->cipher, NULL)))
			return NULL;
		if (t->used <= GW_TLSREC_BUSY)
			c = shared_ctx(L, idx, enc);
		else
			c = d->ctx = EVP_CIPHER_CTX_new();
		if (!c || EVP_CipherInit_ex(c, L->cipher[idx], NULL, d->key, nonce, enc) != 1)
			goto fail;
	} else if (s->gcm) {
		*q++ = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED,
							 nonce, (size_t)-1);
	} else if (EVP_CipherInit_ex(c, NULL, NULL, NULL, nonce, enc) != 1) {
		goto fail;
	}
	if (tag)
		*q++ = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, (void *)tag,
							 GW_TLSREC_TAG);
	*q = OSSL_PARAM_construct_end();
	if (q != p && EVP_CIPHER_CTX_set_params(c, p) != 1)
		goto fail;
	return c;
fail:
	drop_ctx(d);
	return NULL;
}

ssize_t gw_tlsrec_parse_header(const uint8_t *p, size_t avail, uint8_t *alert)
{
	size_t len;

	/* Judge what is there as soon as it is there: a bad type or version
	 * is refused before its length arrives. */
	if (avail >= 1 && p[0] != CT_DATA) {
		*alert = A_UNEXPECTED_MESSAGE;
		return -1;
	}
	if ((avail >= 2 && p[1] != 3) || (avail >= 3 && p[2] != 3)) {
		*alert = A_DECODE_ERROR;
		return -1;
	}
	if (avail < GW_TLSREC_HDR)
		return 0;
	len = (size_t)p[3] << 8 | p[4];
	if (len > GW_TLSREC_MAX_BODY) {
		*alert = A_RECORD_OVERFLOW;
		return -1;
	}
	if (len < GW_TLSREC_TAG + 1) { /* not even the content type */
		*alert = A_DECODE_ERROR;
		return -1;
	}
	return avail < GW_TLSREC_HDR + len ? 0 : (ssize_t)(GW_TLSREC_HDR + len);
}

int gw_tlsrec_open(gw_tlsrec_loop_t *L, gw_tlsrec_t *t, uint8_t *rec, size_t len,
		   uint8_t **body, size_t *body_len, uint8_t *alert)
{
	size_t n, inner;
	EVP_CIPHER_CTX *c;
	int outl, fin;

	*alert = A_DECODE_ERROR;
	if (len < GW_TLSREC_HDR + GW_TLSREC_TAG + 1 || len > GW_TLSREC_MAX_REC ||
	    (size_t)(rec[3] << 8 | rec[4]) != len - GW_TLSREC_HDR)
		return -1;
	*alert = A_INTERNAL_ERROR;
	if (t->rx.seq == UINT64_MAX || !(c = keyed(L, t, &t->rx, 0, rec + len - GW_TLSREC_TAG)))
		return -1;
	n = len - GW_TLSREC_HDR - GW_TLSREC_TAG;
	*alert = A_BAD_RECORD_MAC;
	if (EVP_DecryptUpdate(c, NULL, &outl, rec, GW_TLSREC_HDR) != 1 ||
	    EVP_DecryptUpdate(c, rec + GW_TLSREC_HDR, &outl, rec + GW_TLSREC_HDR, (int)n) != 1 ||
	    (size_t)outl != n ||
	    EVP_DecryptFinal_ex(c, rec + GW_TLSREC_HDR + n, &fin) != 1)
		return -1;
	t->rx.seq++;
	inner = n;
	/* TLSInnerPlaintext: content, the type, zeros (§5.4). */
	if (inner > GW_TLSREC_MAX_PLAIN + 1) {
		*alert = A_RECORD_OVERFLOW;
		return -1;
	}
	while (inner && !rec[GW_TLSREC_HDR + inner - 1])
		inner--;
	if (!inner) {
		*alert = A_UNEXPECTED_MESSAGE;
		return -1;
	}
	*body = rec + GW_TLSREC_HDR;
	*body_len = inner - 1;
	return rec[GW_TLSREC_HDR + inner - 1];
}

ssize_t gw_tlsrec_seal(gw_tlsrec_loop_t *L, gw_tlsrec_t *t, uint8_t type, const void *in,
		       size_t len, uint8_t *out)
{
	size_t n = len + 1 + GW_TLSREC_TAG;
	uint8_t *body = out + GW_TLSREC_HDR;
	EVP_CIPHER_CTX *c;
	OSSL_PARAM p[2];
	int outl;

	if (len > GW_TLSREC_MAX_PLAIN || t->tx.seq == UINT64_MAX ||
	    !(c = keyed(L, t, &t->tx, 1, NULL)))
		return -1;
	out[0] = CT_DATA;
	out[1] = 3;
	out[2] = 3;
	out[3] = (uint8_t)(n >> 8);
	out[4] = (uint8_t)n;
	/* The content and its type sealed in place, in one call. */
	if (len)
		memmove(body, in, len);
	body[len] = type;
	p[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, body + len + 1,
						 GW_TLSREC_TAG);
	p[1] = OSSL_PARAM_construct_end();
	if (EVP_EncryptUpdate(c, NULL, &outl, out, GW_TLSREC_HDR) != 1 ||
	    EVP_EncryptUpdate(c, body, &outl, body, (int)len + 1) != 1 ||
	    EVP_EncryptFinal_ex(c, body + len + 1, &outl) != 1 ||
	    EVP_CIPHER_CTX_get_params(c, p) != 1)
		return -1;
	t->tx.seq++;
	return (ssize_t)(GW_TLSREC_HDR + n);
}

/* --- the stream over a socket --- */

int gw_tlsrec_flush(gw_tlsrec_t *t, int fd)
{
	while (t->out_len) {
		ssize_t k = send(fd, t->out + t->out_off, t->out_len, MSG_NOSIGNAL);

		if (k < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		t->out_off += (uint32_t)k;
		t->out_len -= (uint32_t)k;
	}
	free(t->out);
	t->out = NULL;
	t->out_off = 0;
	return 1;
}

/* Sends a sealed record after what already waits; keeps what the socket
 * does not take. 0, or -1 on a socket error. */
static int send_or_keep(gw_tlsrec_t *t, int fd, const uint8_t *p, size_t n)
{
	ssize_t k = 0;
	uint8_t *o;

	if (!t->out_len) {
		k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		if (k < 0)
			k = 0;
		if ((size_t)k == n)
			return 0;
	}
	/* At most one record and a KeyUpdate wait: the writer stops at the
	 * first record the socket does not take. */
	o = malloc(t->out_len + (n - (size_t)k));
	if (!o)
		return -1;
	if (t->out_len)
		memcpy(o, t->out + t->out_off, t->out_len);
	memcpy(o + t->out_len, p + k, n - (size_t)k);
	free(t->out);
	t->out = o;
	t->out_off = 0;
	t->out_len += (uint32_t)(n - (size_t)k);
	return 0;
}

void gw_tlsrec_send_alert(gw_tlsrec_loop_t *L, gw_tlsrec_t *t, int fd, uint8_t alert)
{
	uint8_t msg[2] = { alert == GW_TLSREC_CLOSE_NOTIFY ? 1 : 2, alert };
	ssize_t n;

	if (t->dead & DEAD_TX)
		return;
	t->dead |= DEAD_TX;
	n = gw_tlsrec_seal(L, t, CT_ALERT, msg, sizeof(msg), L->wbuf);
	if (n > 0 && !send_or_keep(t, fd, L->wbuf, (size_t)n))
		gw_tlsrec_flush(t, fd);
}

static ssize_t fatal(gw_tlsrec_loop_t *L, gw_tlsrec_t *t, int fd, uint8_t alert)
{
	t->dead |= DEAD_RX;
	gw_tlsrec_send_alert(L, t, fd, alert);
	return GW_TLSREC_ERR;
}

/* A post-handshake message: only KeyUpdate, ending its record (a key
 * change ends a record, §5.1). §5.1 also lets a message span records (no
 * client splits a KeyUpdate, but it is allowed): its first bytes wait in
 * t->hs, at most 4, with no other record type in between (see
 * gw_tlsrec_read). Each fragment counts as a record without data. 0, or
 * -1 with *alert. */
static int on_handshake(gw_tlsrec_loop_t *L, gw_tlsrec_t *t, int fd, const uint8_t *frag,
			size_t flen, uint8_t *alert)
{
	const suite_t *s = suite_of(t->suite, NULL);
	static const uint8_t ours[5] = { HS_KEY_UPDATE, 0, 0, 1, 0 };
	uint8_t m[5];
	size_t len = t->hs_len + flen, have = len < sizeof(m) ? len : sizeof(m);
	ssize_t n;

	*alert = A_UNEXPECTED_MESSAGE;
	if (!flen)
		return -1;
	memcpy(m, t->hs, t->hs_len);
	memcpy(m + t->hs_len, frag, have - t->hs_len);
	if (m[0] != HS_KEY_UPDATE)
		return -1;
	/* The length bytes are checked as soon as they come. */
	*alert = A_DECODE_ERROR;
	for (size_t i = 1; i < have && i < 4; i++)
		if (m[i] != (i == 3))
			return -1;
	if (len < sizeof(m)) {
		memcpy(t->hs, m, len);
		t->hs_len = (uint8_t)len;
		return 0;
	}
	t->hs_len = 0;
	/* More after it in the record: a message past a key change (§5.1). */
	*alert = A_UNEXPECTED_MESSAGE;
	if (len != 5)
		return -1;
	*alert = A_ILLEGAL_PARAMETER;
	if (m[4] > 1)
		return -1;
	*alert = A_INTERNAL_ERROR;
	if (key_update(s, &t->rx))
		return -1;
	/* A peer that keeps asking while it reads none of the answers would
	 * make them pile up here: past a record's worth, it is cut off. */
	if (m[4] == 1 && t->out_len > GW_TLSREC_MAX_REC)
		return -1;
	if (m[4] == 1 && !(t->dead & DEAD_TX)) {
		/* update_requested: ours, under the old key, before any more
		 * data (§4.6.3); then our key moves on. */
		n = gw_tlsrec_seal(L, t, CT_HANDSHAKE, ours, sizeof(ours), L->wbuf);
		if (n < 0 || key_update(s, &t->tx))
			return -1;
		if (send_or_keep(t, fd, L->wbuf, (size_t)n))
			return -1;
	}
	return 0;
}

/* Keeps what the caller had no room for. */
static int keep(uint8_t **dst, uint32_t *dlen, const uint8_t *p, size_t n)
{
	*dst = malloc(n);
	if (!*dst)
		return -1;
	memcpy(*dst, p, n);
	*dlen = (uint32_t)n;
	return 0;
}

/* Takes from the plaintext kept by an earlier call. */
static size_t take_plain(gw_tlsrec_t *t, uint8_t *buf, size_t len)
{
	size_t n = t->plain_len < len ? t->plain_len : len;

	memcpy(buf, t->plain + t->plain_off, n);
	t->plain_off += (uint32_t)n;
	t->plain_len -= (uint32_t)n;
	if (!t->plain_len) {
		free(t->plain);
		t->plain = NULL;
		t->plain_off = 0;
	}
	return n;
}

ssize_t gw_tlsrec_read(gw_tlsrec_loop_t *L, gw_tlsrec_t *t, int fd, void *buf, size_t len)
{
	uint8_t *r = L->rbuf, *out = buf, *body, alert;
	size_t have, pos = 0, got = 0, blen;
	ssize_t rl, k;
	int type, eof = 0;

	if (t->plain_len) {
		got = take_plain(t, out, len);
		if (got == len || !len)
			return (ssize_t)got;
	}
	if (t->dead & DEAD_RX)
		return got ? (ssize_t)got : (t->dead & DEAD_TX) ? GW_TLSREC_ERR : GW_TLSREC_EOF;
	/* Bytes kept from earlier calls first: less than one whole record,
	 * or whole records the caller had no room for. */
	have = t->in_len;
	if (have) {
		memcpy(r, t->in, have);
		free(t->in);
		t->in = NULL;
		t->in_len = 0;
	}
	while (!eof) {
		rl = gw_tlsrec_parse_header(r + pos, have - pos, &alert);
		if (rl < 0)
			return fatal(L, t, fd, alert);
		if (!rl) {
			if (got)
				break;
			/* Less than a record: move it to the front, read more
			 * (it is shorter than GW_TLSREC_MAX_REC, so there is room). */
			memmove(r, r + pos, have - pos);
			have -= pos;
			pos = 0;
			k = recv(fd, r + have, GW_TLSREC_MAX_REC - have, 0);
			if (k < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (k <= 0) /* reset, or closed without close_notify */
				return fatal(L, t, fd, A_DECODE_ERROR);
			have += (size_t)k;
			continue;
		}
		/* A record whose data might not fit waits for the next call,
		 * unless nothing was given yet (its excess is then kept). */
		if (got && got + MAX_DATA((size_t)rl) > len)
			break;
		type = gw_tlsrec_open(L, t, r + pos, (size_t)rl, &body, &blen, &alert);
		if (type < 0)
			return fatal(L, t, fd, alert);
		pos += (size_t)rl;
		if (type == CT_DATA && blen)
			t->empty = 0;
		else if (type != CT_ALERT && ++t->empty > MAX_EMPTY_RECORDS)
			return fatal(L, t, fd, A_UNEXPECTED_MESSAGE);
		/* The rest of a split KeyUpdate must come next (§5.1). */
		if (t->hs_len && type != CT_HANDSHAKE)
			return fatal(L, t, fd, A_UNEXPECTED_MESSAGE);
		switch (type) {
		case CT_DATA: {
			size_t n = blen < len - got ? blen : len - got;

			memcpy(out + got, body, n);
			got += n;
			if (n < blen && keep(&t->plain, &t->plain_len, body + n, blen - n))
				return fatal(L, t, fd, A_INTERNAL_ERROR);
			break;
		}
		case CT_ALERT:
			if (blen != 2)
				return fatal(L, t, fd, A_DECODE_ERROR);
			t->dead |= DEAD_RX;
			if (body[1] != GW_TLSREC_CLOSE_NOTIFY) {
				t->dead |= DEAD_TX; /* the peer's fatal alert: nothing to say */
				return GW_TLSREC_ERR;
			}
			eof = 1;
			break;
		case CT_HANDSHAKE:
			if (on_handshake(L, t, fd, body, blen, &alert))
				return fatal(L, t, fd, alert);
			break;
		default:
			return fatal(L, t, fd, A_UNEXPECTED_MESSAGE);
		}
		if (t->plain_len)
			break;
	}
	if (!eof && have > pos && keep(&t->in, &t->in_len, r + pos, have - pos))
		return fatal(L, t, fd, A_INTERNAL_ERROR);
	if (eof && !got)
		return GW_TLSREC_EOF;
	return (ssize_t)got;
}

ssize_t gw_tlsrec_write(gw_tlsrec_loop_t *L, gw_tlsrec_t *t, int fd, const void *buf,
			size_t len)
{
	size_t n = len < GW_TLSREC_MAX_PLAIN ? len : GW_TLSREC_MAX_PLAIN;
	ssize_t rl;
	int f;

	if (t->dead & DEAD_TX)
		return GW_TLSREC_ERR;
	f = gw_tlsrec_flush(t, fd);
	if (f < 0)
		goto fail;
	if (!f || !len)
		return 0;
	rl = gw_tlsrec_seal(L, t, CT_DATA, buf, n, L->wbuf);
	if (rl < 0 || send_or_keep(t, fd, L->wbuf, (size_t)rl))
		goto fail;
	return (ssize_t)n;
fail:
	t->dead |= DEAD_TX | DEAD_RX;
	return GW_TLSREC_ERR;
}

int gw_tlsrec_has_pending(const gw_tlsrec_t *t)
{
	uint8_t alert;

	if (t->plain_len)
		return 1;
	return t->in_len && gw_tlsrec_parse_header(t->in, t->in_len, &alert) != 0;
}

int gw_tlsrec_wants_write(const gw_tlsrec_t *t)
{
	return t->out_len != 0;
}
