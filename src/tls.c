/* TLS termination and the plaintext relay (see tls.h). The relay keeps at
 * most one 16 KB chunk in flight per direction and stops reading a side
 * while the other cannot take more, so a slow peer never grows memory.
 * Bytes move through one per-thread scratch buffer; a relay owns heap
 * memory only for what the receiving side has not taken yet, so an idle
 * wss:// connection costs a few hundred bytes here.
 *
 * TLS 1.3 sessions leave OpenSSL once the handshake is done, as kTLS would
 * take them: the keylog callback hands over the application traffic
 * secrets, the SSL object (over 10 KB each) is freed, and the record layer
 * of tlsrec.c carries on with about 300 bytes. For that, OpenSSL must not
 * have read a byte past the client's Finished (read_ahead is off until
 * then) and the records it sent under the new key (session tickets) are
 * counted through the message callback. Anything else stays on the SSL:
 * TLS 1.2, another suite, a session with bytes buffered inside OpenSSL. */
#include "core.h"
#include "log.h"
#include "tls.h"
#include "tlsrec.h"

#include <errno.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK 16384
/* A TLS 1.3 connection quiet for this long (to twice as long) gives back
 * its keyed cipher contexts (about 2 KB): idle memory stays as low as
 * before they existed, and a busy one never re-keys. */
#define CTX_IDLE_MS 5000

/* Pending bytes of one direction: heap memory only while not empty. */
typedef struct pending {
	char *data;
	size_t off, len;
} pending_t;

struct gw_relay_ctx {
	lws_dll2_owner_t relays; /* open relays */
	lws_dll2_owner_t kicks;  /* relays that gave libwebsockets bytes this pass */
	gw_tlsrec_loop_t *rec;   /* cipher contexts of the loop's record layers */
};

struct gw_tls {
	SSL *ssl;              /* the handshake; after it only when not handed over */
	gw_tlsrec_loop_t *loop;
	int fd;
	uint8_t secrets;       /* 1: client's traffic secret seen, 2: server's */
	uint8_t secret_len;
	uint8_t fin_read, fin_written; /* the Finished messages went by */
	uint8_t key_update;    /* one during the handshake: stay on the SSL */
	uint32_t read_after, written_after; /* records under the new keys */
	gw_tlsrec_t rec;       /* the secrets land here, then the keys */
};

struct gw_relay {
	gw_watch_t tls_w;   /* the client's TLS socket */
	gw_watch_t plain_w; /* our end of the socketpair */
	gw_worker_t *gw;
	gw_tls_t *tls;
	lws_dll2_t list;
	pending_t up;   /* TLS -> plaintext */
	pending_t down; /* plaintext -> TLS */
	int plain_eof;
	int closed;
	gw_wheel_entry_t linger; /* closed, its last bytes not yet taken */
	uint64_t linger_until;
	gw_wheel_entry_t ctx_idle; /* armed while the record layer holds contexts */
	lws_dll2_t kick;    /* in kicks */
	int lws_fd;         /* libwebsockets' end of the socketpair */
	uint32_t tls_ev, plain_ev;
};

/* Each loop is one thread; a chunk never outlives one pump() step. */
static __thread char scratch[CHUNK];

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_new(void)
{
	ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "LABEL <client random> <secret>", hex (NSS key log format). */
void gw_tls_keylog(const SSL *ssl, const char *line)
{
	static const char cl[] = "CLIENT_TRAFFIC_SECRET_0 ", sv[] = "SERVER_TRAFFIC_SECRET_0 ";
	gw_tls_t *t = ex_index >= 0 ? SSL_get_ex_data(ssl, ex_index) : NULL;
	uint8_t *dst, bit;
	const char *hex;
	size_t n;

	if (!t)
		return;
	if (!strncmp(line, cl, sizeof(cl) - 1)) {
		dst = t->rec.rx.secret;
		bit = 1;
	} else if (!strncmp(line, sv, sizeof(sv) - 1)) {
		dst = t->rec.tx.secret;
		bit = 2;
	} else {
		return;
	}
	hex = strrchr(line, ' ');
	n = hex ? strlen(++hex) : 0;
	if (!n || n % 2 || n / 2 > GW_TLSREC_MAX_SECRET)
		return;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return;
		dst[i] = (uint8_t)(hi << 4 | lo);
	}
	t->secret_len = (uint8_t)(n / 2);
	t->secrets |= bit;
}

/* Counts the records each side protected after its Finished: the keys
 * handed over must start at the right sequence numbers. */
static void on_msg(int write_p, int version, int type, const void *buf, size_t len, SSL *ssl,
		   void *arg)
{
	gw_tls_t *t = arg;
	const uint8_t *b = buf;

	if (type == SSL3_RT_HEADER) {
		if (write_p && t->fin_written)
			t->written_after++;
		else if (!write_p && t->fin_read)
			t->read_after++;
	} else if (type == SSL3_RT_HANDSHAKE && len) {
		if (b[0] == SSL3_MT_FINISHED) {
			if (write_p)
				t->fin_written = 1;
			else
				t->fin_read = 1;
		} else if (b[0] == SSL3_MT_KEY_UPDATE) {
			t->key_update = 1;
		}
	}
}

gw_tls_t *gw_tls_new(gw_worker_t *gw, int fd)
{
	gw_tls_t *t = calloc(1, sizeof(*t));

	if (!t)
		abort();
	pthread_once(&ex_once, ex_new);
	t->fd = fd;
	t->loop = gw->relay->rec;
	t->ssl = SSL_new(gw->tls);
	if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1 || ex_index < 0 ||
	    !SSL_set_ex_data(t->ssl, ex_index, t))
		goto fail;
	SSL_set_accept_state(t->ssl);
	/* Not a byte past the client's Finished: what follows is the
	 * record layer's to read. */
	SSL_set_read_ahead(t->ssl, 0);
	SSL_set_msg_callback(t->ssl, on_msg);
	SSL_set_msg_callback_arg(t->ssl, t);
	return t;
fail:
	ERR_clear_error();
	gw_tls_free(t);
	return NULL;
}

void gw_tls_free(gw_tls_t *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	ERR_clear_error();
	gw_tlsrec_dispose(&t->rec);
	free(t);
}

/* The SSL's session stays there (TLS 1.2 and the rest): as before the
 * record layer existed, reading ahead. */
static void stay_on_ssl(gw_tls_t *t)
{
	SSL_set_msg_callback(t->ssl, NULL);
	SSL_set_ex_data(t->ssl, ex_index, NULL);
	SSL_set_read_ahead(t->ssl, 1);
	OPENSSL_cleanse(&t->rec, sizeof(t->rec));
}

/* The handshake is done: hands a TLS 1.3 session over to the record layer
 * and frees the SSL. -1 if the keys could not be derived. */
static int hand_over_keys(gw_tls_t *t)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
	uint8_t cs[GW_TLSREC_MAX_SECRET], ss[GW_TLSREC_MAX_SECRET];
	int rc;

	if (SSL_version(t->ssl) != TLS1_3_VERSION || !c || t->secrets != 3 ||
	    t->key_update || t->read_after || SSL_has_pending(t->ssl) ||
	    (SSL_CIPHER_get_protocol_id(c) != GW_TLSREC_AES_128_GCM_SHA256 &&
	     SSL_CIPHER_get_protocol_id(c) != GW_TLSREC_AES_256_GCM_SHA384 &&
	     SSL_CIPHER_get_protocol_id(c) != GW_TLSREC_CHACHA20_POLY1305_SHA256)) {
		gw_debug("tls: a %s session stays on OpenSSL", SSL_get_version(t->ssl));
		stay_on_ssl(t);
		return 0;
	}
	memcpy(cs, t->rec.rx.secret, sizeof(cs));
	memcpy(ss, t->rec.tx.secret, sizeof(ss));
	rc = gw_tlsrec_init(&t->rec, SSL_CIPHER_get_protocol_id(c), cs, ss, t->secret_len,
			    t->written_after);
	OPENSSL_cleanse(cs, sizeof(cs));
	OPENSSL_cleanse(ss, sizeof(ss));
	if (rc)
		return -1;
	gw_debug("tls: a TLS 1.3 session (%s, %u record%s sent) goes on in the gateway's "
		 "record layer", SSL_CIPHER_get_name(c), (unsigned)t->written_after,
		 t->written_after == 1 ? "" : "s");
	/* No close_notify from it: the session goes on without it. */
	SSL_set_quiet_shutdown(t->ssl, 1);
	SSL_free(t->ssl);
	t->ssl = NULL;
	return 0;
}

/* An OpenSSL call that returned ret <= 0: 0 if it only waits for the
 * socket, -1 if the session failed. */
static int ssl_wait_or_fail(SSL *ssl, int ret)
{
	switch (SSL_get_error(ssl, ret)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	default:
		ERR_clear_error();
		return -1;
	}
}

ssize_t gw_tls_read(gw_tls_t *t, void *buf, size_t len)
{
	ssize_t n;

	if (t->ssl && !SSL_is_init_finished(t->ssl)) {
		int k = SSL_do_handshake(t->ssl);

		if (k != 1)
			return ssl_wait_or_fail(t->ssl, k);
		if (hand_over_keys(t))
			return -1;
	}
	if (!t->ssl) {
		n = gw_tlsrec_read(t->loop, &t->rec, t->fd, buf, len);
		return n < 0 ? -1 : n;
	}
	n = SSL_read(t->ssl, buf, (int)len);
	return n > 0 ? n : ssl_wait_or_fail(t->ssl, (int)n);
}

/* All of len through the record layer, or as much as the socket takes. */
static int rec_write_all(gw_tls_t *t, const char *p, size_t len)
{
	while (len) {
		ssize_t k = gw_tlsrec_write(t->loop, &t->rec, t->fd, p, len);

		if (k <= 0)
			return -1;
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

void gw_tls_write_and_close(gw_tls_t *t, const void *a, size_t alen, const void *b,
			    size_t blen)
{
	if (!t->ssl) {
		if (!rec_write_all(t, a, alen))
			rec_write_all(t, b, blen);
		gw_tlsrec_send_alert(t->loop, &t->rec, t->fd, GW_TLSREC_CLOSE_NOTIFY);
		return;
	}
	if (SSL_write(t->ssl, a, (int)alen) == (int)alen && blen)
		SSL_write(t->ssl, b, (int)blen);
	SSL_shutdown(t->ssl);
	ERR_clear_error();
}

static void set_events(gw_relay_t *r, gw_watch_t *w, uint32_t *cur, uint32_t want)
{
	if (*cur == want)
		return;
	gw_loop_mod(r->gw->loop, w, want);
	*cur = want;
}

/* Keeps what the receiving side did not take (from a chunk in scratch). */
static void pending_keep(pending_t *p, const char *rest, size_t len)
{
	p->data = malloc(len);
	if (!p->data)
		abort();
	memcpy(p->data, rest, len);
	p->off = 0;
	p->len = len;
}

static void pending_took(pending_t *p, size_t n)
{
	p->off += n;
	p->len -= n;
	if (!p->len) {
		free(p->data);
		p->data = NULL;
		p->off = 0;
	}
}

static void relay_free(void *p)
{
	gw_relay_t *r = p;

	free(r->up.data);
	free(r->down.data);
	free(r);
}

/* Bytes the kernel still holds for a client that is still there (sent,
 * not acknowledged); 0 once the peer reset, whatever the counters say. */
static int unsent(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int n = 0;

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    (ti.tcpi_state != TCP_ESTABLISHED && ti.tcpi_state != TCP_CLOSE_WAIT))
		return 0;
	return ioctl(fd, SIOCOUTQ, &n) ? 0 : n;
}

/* Closes the TLS socket (the loop skips its remaining events) and frees the
 * memory after the epoll batch. reset: an RST, so that the kernel does not
 * keep retrying bytes a client that does not read never takes (FIN_WAIT1,
 * holding its buffers for minutes). */
static void relay_release(gw_relay_t *r, int reset)
{
	static const struct linger rst = { 1, 0 };

	if (reset && r->tls_w.fd >= 0)
		setsockopt(r->tls_w.fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
	gw_wheel_cancel(&r->gw->wheel, &r->linger);
	gw_wheel_cancel(&r->gw->wheel, &r->ctx_idle);
	lws_dll2_remove(&r->kick);
	gw_watch_close(r->gw, &r->tls_w);
	lws_dll2_remove(&r->list);
	gw_defer_free(r->gw, relay_free, r);
}

/* A closed relay whose client had not taken its last bytes: released once
 * they are taken, reset at the send timeout (--send-timeout). */
static void on_linger(gw_wheel_entry_t *e)
{
	gw_relay_t *r = lws_container_of(e, gw_relay_t, linger);
	int left = unsent(r->tls_w.fd);

	if (left && gw_now_ms() < r->linger_until) {
		gw_wheel_set(&r->gw->wheel, &r->linger, gw_now_ms() + 200, on_linger);
		return;
	}
	relay_release(r, left > 0);
}

/* Closes the relay. graceful: the session ended cleanly, tell the client
 * (close_notify); after a TLS or socket error OpenSSL must not be asked to
 * write again, and the client is reset. A graceful end whose bytes are
 * still in the kernel keeps the TLS socket, out of epoll, until they are
 * taken or the send timeout passes: libwebsockets handed everything over
 * and cannot know the client stopped reading. */
static void relay_close(gw_relay_t *r, int graceful)
{
	if (r->closed)
		return;
	r->closed = 1;
	if (graceful && r->tls->ssl)
		SSL_shutdown(r->tls->ssl);
	else if (graceful)
		gw_tlsrec_send_alert(r->tls->loop, &r->tls->rec, r->tls->fd,
				     GW_TLSREC_CLOSE_NOTIFY);
	gw_tls_free(r->tls);
	r->tls = NULL;
	gw_wheel_cancel(&r->gw->wheel, &r->ctx_idle);
	lws_dll2_remove(&r->kick);
	gw_watch_close(r->gw, &r->plain_w);
	if (graceful && unsent(r->tls_w.fd) > 0) {
		gw_loop_del(r->gw->loop, &r->tls_w);
		r->linger_until = gw_now_ms() + (uint64_t)gw_gateway_send_timeout_s(r->gw->sh) * 1000;
		gw_wheel_set(&r->gw->wheel, &r->linger, gw_now_ms() + 200, on_linger);
		return;
	}
	relay_release(r, !graceful);
}

/* Every CTX_IDLE_MS while the record layer holds cipher contexts: they go
 * if no record went through since the last time. */
static void on_ctx_idle(gw_wheel_entry_t *e)
{
	gw_relay_t *r = lws_container_of(e, gw_relay_t, ctx_idle);

	if (r->closed || !r->tls || r->tls->ssl)
		return;
	if (gw_tlsrec_idle_tick(&r->tls->rec))
		gw_debug("tls: an idle connection's cipher contexts released");
	else
		gw_wheel_set(&r->gw->wheel, &r->ctx_idle, gw_now_ms() + CTX_IDLE_MS, on_ctx_idle);
}

/* What one direction's step did. STEP_LAST: bytes moved and the source
 * looked drained (a short read, nothing left inside OpenSSL), so asking
 * again would only cost a read that says EAGAIN; the level-triggered watch
 * reports anything that arrives later. */
enum step { STEP_IDLE, STEP_MOVED, STEP_LAST, STEP_GONE };

/* Sends buf to libwebsockets: the pending bytes, or a fresh chunk of which
 * whatever the socketpair does not take is kept. */
static enum step plain_send(gw_relay_t *r, const char *buf, size_t len)
{
	ssize_t n = send(r->plain_w.fd, buf, len, MSG_NOSIGNAL);
	size_t took;

	if (n < 0 && errno != EAGAIN && errno != EINTR)
		return STEP_GONE;
	took = n > 0 ? (size_t)n : 0;
	if (r->up.len)
		pending_took(&r->up, took);
	else if (took < len)
		pending_keep(&r->up, buf + took, len - took);
	return took ? STEP_MOVED : STEP_IDLE;
}

/* The same for the client's side. A retried SSL_write must offer the same
 * bytes again, which the pending copy guarantees. */
static enum step tls_write(gw_relay_t *r, const char *buf, size_t len, int *wants_write,
			   int *wants_read)
{
	gw_tls_t *t = r->tls;
	int k = t->ssl ? SSL_write(t->ssl, buf, (int)len)
		       : (int)gw_tlsrec_write(t->loop, &t->rec, t->fd, buf, len);
	size_t took = k > 0 ? (size_t)k : 0;

	if (!t->ssl && k < 0)
		return STEP_GONE;
	if (!t->ssl && !k)
		*wants_write = 1; /* sealed bytes wait for the socket */
	else if (k <= 0) {
		int e = SSL_get_error(t->ssl, k);

		if (e == SSL_ERROR_WANT_WRITE)
			*wants_write = 1;
		else if (e == SSL_ERROR_WANT_READ)
			*wants_read = 1;
		else
			return STEP_GONE;
	}
	if (r->down.len)
		pending_took(&r->down, took);
	else if (took < len)
		pending_keep(&r->down, buf + took, len - took);
	return took ? STEP_MOVED : STEP_IDLE;
}

static int tls_has_pending(const gw_tls_t *t)
{
	return t->ssl ? SSL_has_pending(t->ssl) : gw_tlsrec_has_pending(&t->rec);
}

/* Client to libwebsockets: one chunk. */
static enum step pump_up(gw_relay_t *r, int *tls_wants_write)
{
	gw_tls_t *t = r->tls;
	int k, e;

	if (r->up.len)
		return plain_send(r, r->up.data + r->up.off, r->up.len);
	k = t->ssl ? SSL_read(t->ssl, scratch, CHUNK)
		   : (int)gw_tlsrec_read(t->loop, &t->rec, t->fd, scratch, CHUNK);
	if (k > 0) {
		if (plain_send(r, scratch, (size_t)k) == STEP_GONE)
			return STEP_GONE;
		/* libwebsockets reads it right after this service pass, not
		 * after one more wait of the loop (gw_relay_after_service). */
		if (lws_dll2_is_detached(&r->kick))
			lws_dll2_add_tail(&r->kick, &r->gw->relay->kicks);
		return r->up.len || tls_has_pending(t) ? STEP_MOVED : STEP_LAST;
	}
	if (!t->ssl)
		return k < 0 ? STEP_GONE : STEP_IDLE; /* the peer's close_notify, or TLS failed */
	e = SSL_get_error(t->ssl, k);
	if (e == SSL_ERROR_WANT_WRITE)
		*tls_wants_write = 1;
	else if (e != SSL_ERROR_WANT_READ)
		return STEP_GONE; /* client closed or TLS failed */
	return STEP_IDLE;
}

/* libwebsockets to the client: one chunk. */
static enum step pump_down(gw_relay_t *r, int *tls_wants_write, int *tls_wants_read)
{
	ssize_t n;

	if (r->down.len)
		return tls_write(r, r->down.data + r->down.off, r->down.len, tls_wants_write,
				 tls_wants_read);
	if (r->plain_eof)
		return STEP_IDLE;
	n = recv(r->plain_w.fd, scratch, CHUNK, 0);
	if (n > 0) {
		if (tls_write(r, scratch, (size_t)n, tls_wants_write, tls_wants_read) ==
		    STEP_GONE)
			return STEP_GONE;
		/* A partial write raises no WANT_WRITE: go round to get one. */
		return r->down.len || n == CHUNK ? STEP_MOVED : STEP_LAST;
	}
	if (n == 0) {
		r->plain_eof = 1;
		return STEP_MOVED;
	}
	return errno == EAGAIN || errno == EINTR ? STEP_IDLE : STEP_GONE;
}

/* Moves bytes both ways until nothing moves, then re-arms the watches for
 * exactly what would let it move again. A direction is tried when its
 * source's watch fired (from_tls, from_plain), when it has bytes pending,
 * and again while it moved and may have more; asking a side that did not
 * fire would cost a read that says EAGAIN. Returns -1 once r is closed (its
 * memory is freed after the epoll batch). */
static int pump(gw_relay_t *r, int from_tls, int from_plain)
{
	int tls_wants_write = 0, tls_wants_read_for_write = 0;
	enum step up, down;

	if (r->closed)
		return -1;
	/* Sealed bytes (a record the socket did not take, a KeyUpdate answer)
	 * go before anything else. */
	if (!r->tls->ssl && gw_tlsrec_flush(&r->tls->rec, r->tls->fd) < 0)
		goto gone;
	do {
		up = STEP_IDLE;
		if (from_tls || r->up.len || tls_has_pending(r->tls))
			up = pump_up(r, &tls_wants_write);
		if (up == STEP_GONE)
			goto gone;
		down = STEP_IDLE;
		if (from_plain || r->down.len)
			down = pump_down(r, &tls_wants_write, &tls_wants_read_for_write);
		if (down == STEP_GONE)
			goto gone;
		from_tls = up == STEP_MOVED;
		from_plain = down == STEP_MOVED;
		/* libwebsockets closed its side and everything it said is out. */
		if (r->plain_eof && !r->down.len &&
		    (r->tls->ssl || !gw_tlsrec_wants_write(&r->tls->rec))) {
			relay_close(r, 1);
			return -1;
		}
	} while (up == STEP_MOVED || down == STEP_MOVED);
	if (!r->tls->ssl && gw_tlsrec_wants_write(&r->tls->rec))
		tls_wants_write = 1;
	set_events(r, &r->tls_w, &r->tls_ev,
		   ((!r->up.len || tls_wants_read_for_write) ? EPOLLIN : 0) |
		   (tls_wants_write ? EPOLLOUT : 0));
	set_events(r, &r->plain_w, &r->plain_ev,
		   (!r->down.len && !r->plain_eof ? EPOLLIN : 0) | (r->up.len ? EPOLLOUT : 0));
	if (!r->tls->ssl && gw_tlsrec_ctx_count(&r->tls->rec) &&
	    lws_dll2_is_detached(&r->ctx_idle.list))
		gw_wheel_set(&r->gw->wheel, &r->ctx_idle, gw_now_ms() + CTX_IDLE_MS, on_ctx_idle);
	return 0;
gone:
	relay_close(r, 0);
	return -1;
}

static int watch_add(gw_relay_t *r, gw_watch_t *w)
{
	return gw_loop_add(r->gw->loop, w, 0);
}

static void on_tls_side(gw_watch_t *w, uint32_t events)
{
	pump(lws_container_of(w, gw_relay_t, tls_w), 1, 0);
}

static void on_plain_side(gw_watch_t *w, uint32_t events)
{
	pump(lws_container_of(w, gw_relay_t, plain_w), 0, 1);
}

int gw_relay_start(gw_worker_t *gw, gw_tls_t *tls, int tls_fd, const void *prefix,
		   size_t len)
{
	gw_relay_t *r;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) {
		gw_warn("tls: socketpair: %s", strerror(errno));
		goto fail;
	}
	/* The head is at most 16 KB: it fits in an empty socketpair buffer. */
	if (len && send(sv[0], prefix, len, MSG_NOSIGNAL) != (ssize_t)len) {
		close(sv[0]);
		close(sv[1]);
		goto fail;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	r->gw = gw;
	r->tls = tls;
	r->tls_w.cb = on_tls_side;
	r->tls_w.fd = tls_fd;
	r->plain_w.cb = on_plain_side;
	r->plain_w.fd = sv[0];
	r->lws_fd = sv[1];
	lws_dll2_add_tail(&r->list, &gw->relay->relays);
	/* From here on the relay owns tls, tls_fd and sv[0]: relay_close
	 * releases them; only sv[1], meant for libwebsockets, is ours. */
	if (watch_add(r, &r->tls_w) || watch_add(r, &r->plain_w)) {
		gw_warn("tls: epoll_ctl: %s", strerror(errno));
		relay_close(r, 0);
		goto fail_sv1;
	}
	/* Plaintext already buffered inside OpenSSL raises no socket event;
	 * a client already gone closes the relay here. */
	if (pump(r, 1, 1))
		goto fail_sv1;
	return sv[1];
fail_sv1:
	close(sv[1]);
	return -1;
fail:
	gw_tls_free(tls);
	close(tls_fd);
	return -1;
}


void gw_relay_free_all(gw_worker_t *gw)
{
	/* relay_release unlinks; the memory goes with the loop's deferred frees. */
	while (gw->relay->relays.head) {
		gw_relay_t *r = lws_container_of(gw->relay->relays.head, gw_relay_t, list);

		if (r->closed)
			relay_release(r, 1); /* lingering */
		else
			relay_close(r, 0);
	}
}

/* Serves the plaintext that relays just handed to libwebsockets, as if
 * the loop had reported it (lws_service_fd is libwebsockets' entry for an
 * outside loop): one wait of the loop less per message. libwebsockets' end is still
 * open, or its number is free (nothing to serve) or reused by another of
 * its sockets (a read that finds nothing). */
static void kick_all(gw_worker_t *gw)
{
	gw_relay_ctx_t *rc = gw->relay;

	while (rc->kicks.head) {
		gw_relay_t *r = lws_container_of(rc->kicks.head, gw_relay_t, kick);
		struct lws_pollfd p = { .fd = r->lws_fd, .events = POLLIN, .revents = POLLIN };

		lws_dll2_remove(&r->kick);
		lws_service_fd(gw->ctx, &p);
	}
}

void gw_relay_after_service(gw_worker_t *gw)
{
	gw_relay_ctx_t *rc = gw->relay;

	if (!rc->relays.count)
		return;
	/* Kicked messages, their answers (completions run with the deferred
	 * tasks, MOCK's at once), what libwebsockets wrote back: a round trip
	 * within one pass. Bounded, so that timers and other sockets get
	 * their turn; kicks left over are the loop's to report. */
	for (int pass = 0; pass < 8; pass++) {
		if (rc->kicks.head) {
			kick_all(gw);
			gw_loop_run_deferred(gw->loop);
		} else if (pass) {
			return;
		}
		gw_loop_drain(gw->loop);
	}
	while (rc->kicks.head)
		lws_dll2_remove(rc->kicks.head);
}

gw_relay_ctx_t *gw_relay_ctx_create(void)
{
	gw_relay_ctx_t *rc = calloc(1, sizeof(gw_relay_ctx_t));

	if (rc && !(rc->rec = gw_tlsrec_loop_create())) {
		free(rc);
		return NULL;
	}
	return rc;
}

void gw_relay_ctx_destroy(gw_relay_ctx_t *rc)
{
	if (!rc)
		return;
	gw_tlsrec_loop_destroy(rc->rec);
	free(rc);
}
