/* TLS termination and the plaintext relay (see tls.h). The relay keeps at
 * most one 16 KB chunk in flight per direction and stops reading a side
 * while the other cannot take more, so a slow peer never grows memory.
 * Bytes move through one per-thread scratch buffer; a relay owns heap
 * memory only for what the receiving side has not taken yet, so an idle
 * wss:// connection costs a few hundred bytes here (and OpenSSL drops its
 * own buffers while idle: SSL_MODE_RELEASE_BUFFERS). */
#include "core.h"
#include "log.h"
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
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

/* Pending bytes of one direction: heap memory only while not empty. */
typedef struct pending {
	char *data;
	size_t off, len;
} pending_t;

struct gw_relay_ctx {
	lws_dll2_owner_t relays; /* open relays */
};

struct gw_relay {
	gw_watch_t tls_w;   /* the client's TLS socket */
	gw_watch_t plain_w; /* our end of the socketpair */
	gw_worker_t *gw;
	SSL *ssl;
	lws_dll2_t list;
	pending_t up;   /* TLS -> plaintext */
	pending_t down; /* plaintext -> TLS */
	int plain_eof;
	int closed;
	gw_wheel_entry_t linger; /* closed, its last bytes not yet taken */
	uint64_t linger_until;
	uint32_t tls_ev, plain_ev;
};

/* Each loop is one thread; a chunk never outlives one pump() step. */
static __thread char scratch[CHUNK];

ssize_t gw_tls_read(SSL *ssl, void *buf, size_t len)
{
	int n = SSL_read(ssl, buf, (int)len);

	if (n > 0)
		return n;
	switch (SSL_get_error(ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	default:
		ERR_clear_error();
		return -1;
	}
}

void gw_tls_write_and_close(SSL *ssl, const void *a, size_t alen, const void *b,
			    size_t blen)
{
	if (SSL_write(ssl, a, (int)alen) == (int)alen && blen)
		SSL_write(ssl, b, (int)blen);
	SSL_shutdown(ssl);
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
	if (graceful)
		SSL_shutdown(r->ssl);
	SSL_free(r->ssl);
	r->ssl = NULL;
	ERR_clear_error();
	gw_watch_close(r->gw, &r->plain_w);
	if (graceful && unsent(r->tls_w.fd) > 0) {
		gw_loop_del(r->gw->loop, &r->tls_w);
		r->linger_until = gw_now_ms() + (uint64_t)r->gw->sh->send_timeout_s * 1000;
		gw_wheel_set(&r->gw->wheel, &r->linger, gw_now_ms() + 200, on_linger);
		return;
	}
	relay_release(r, !graceful);
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
	int k = SSL_write(r->ssl, buf, (int)len);
	size_t took = k > 0 ? (size_t)k : 0;

	if (k <= 0) {
		int e = SSL_get_error(r->ssl, k);

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

/* Client to libwebsockets: one chunk. */
static enum step pump_up(gw_relay_t *r, int *tls_wants_write)
{
	int k, e;

	if (r->up.len)
		return plain_send(r, r->up.data + r->up.off, r->up.len);
	k = SSL_read(r->ssl, scratch, CHUNK);
	if (k > 0) {
		if (plain_send(r, scratch, (size_t)k) == STEP_GONE)
			return STEP_GONE;
		return r->up.len || SSL_has_pending(r->ssl) ? STEP_MOVED : STEP_LAST;
	}
	e = SSL_get_error(r->ssl, k);
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
	do {
		up = STEP_IDLE;
		if (from_tls || r->up.len || SSL_has_pending(r->ssl))
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
		if (r->plain_eof && !r->down.len) {
			relay_close(r, 1);
			return -1;
		}
	} while (up == STEP_MOVED || down == STEP_MOVED);
	set_events(r, &r->tls_w, &r->tls_ev,
		   ((!r->up.len || tls_wants_read_for_write) ? EPOLLIN : 0) |
		   (tls_wants_write ? EPOLLOUT : 0));
	set_events(r, &r->plain_w, &r->plain_ev,
		   (!r->down.len && !r->plain_eof ? EPOLLIN : 0) | (r->up.len ? EPOLLOUT : 0));
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

int gw_relay_start(gw_worker_t *gw, SSL *ssl, int tls_fd, const void *prefix,
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
	r->ssl = ssl;
	r->tls_w.cb = on_tls_side;
	r->tls_w.fd = tls_fd;
	r->plain_w.cb = on_plain_side;
	r->plain_w.fd = sv[0];
	lws_dll2_add_tail(&r->list, &gw->relay->relays);
	/* From here on the relay owns ssl, tls_fd and sv[0]: relay_close
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
	SSL_free(ssl);
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

gw_relay_ctx_t *gw_relay_ctx_create(void)
{
	return calloc(1, sizeof(gw_relay_ctx_t));
}

void gw_relay_ctx_destroy(gw_relay_ctx_t *rc)
{
	free(rc);
}
