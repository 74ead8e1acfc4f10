/* TLS termination and the plaintext relay (see tls.h). The relay keeps at
 * most one 16 KB chunk in flight per direction and stops reading a side
 * while the other cannot take more, so a slow peer never grows memory. */
#include "core.h"
#include "log.h"
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK 16384

struct gw_relay {
	gw_watch_t tls_w;   /* the client's TLS socket */
	gw_watch_t plain_w; /* our end of the socketpair */
	gw_gateway_t *gw;
	SSL *ssl;
	lws_dll2_t list;
	size_t up_off, up_len;     /* TLS -> plaintext, pending */
	size_t down_off, down_len; /* plaintext -> TLS, pending */
	int plain_eof;
	uint32_t tls_ev, plain_ev;
	char up[CHUNK];
	char down[CHUNK];
};

SSL_CTX *gw_tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errlen, "%s: cannot load the certificate chain: %s", cert,
			 ERR_reason_error_string(ERR_get_error()));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "%s: cannot load a private key matching %s: %s", key,
			 cert, ERR_reason_error_string(ERR_get_error()));
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

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
	struct epoll_event ev;

	if (*cur == want)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.ptr = w;
	epoll_ctl(r->gw->epfd, EPOLL_CTL_MOD, w->fd, &ev);
	*cur = want;
}

static void relay_free(gw_relay_t *r)
{
	epoll_ctl(r->gw->epfd, EPOLL_CTL_DEL, r->tls_w.fd, NULL);
	epoll_ctl(r->gw->epfd, EPOLL_CTL_DEL, r->plain_w.fd, NULL);
	SSL_shutdown(r->ssl);
	SSL_free(r->ssl);
	ERR_clear_error();
	close(r->tls_w.fd);
	close(r->plain_w.fd);
	lws_dll2_remove(&r->list);
	free(r);
}

/* Moves bytes both ways until nothing moves, then re-arms the watches for
 * exactly what would let it move again. Returns -1 once r is freed. */
static int pump(gw_relay_t *r)
{
	int tls_wants_write = 0, tls_wants_read_for_write = 0;

	for (;;) {
		int progress = 0;
		ssize_t n;

		if (!r->up_len) {
			int k = SSL_read(r->ssl, r->up, CHUNK);

			if (k > 0) {
				r->up_off = 0;
				r->up_len = (size_t)k;
				progress = 1;
			} else {
				int e = SSL_get_error(r->ssl, k);

				if (e == SSL_ERROR_WANT_WRITE)
					tls_wants_write = 1;
				else if (e != SSL_ERROR_WANT_READ)
					goto gone; /* client closed or TLS failed */
			}
		}
		if (r->up_len) {
			n = send(r->plain_w.fd, r->up + r->up_off, r->up_len, MSG_NOSIGNAL);
			if (n > 0) {
				r->up_off += (size_t)n;
				r->up_len -= (size_t)n;
				progress = 1;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				goto gone;
			}
		}
		if (!r->down_len && !r->plain_eof) {
			n = recv(r->plain_w.fd, r->down, CHUNK, 0);
			if (n > 0) {
				r->down_off = 0;
				r->down_len = (size_t)n;
				progress = 1;
			} else if (n == 0) {
				r->plain_eof = 1;
			} else if (errno != EAGAIN && errno != EINTR) {
				goto gone;
			}
		}
		if (r->down_len) {
			int k = SSL_write(r->ssl, r->down + r->down_off, (int)r->down_len);

			if (k > 0) {
				r->down_off += (size_t)k;
				r->down_len -= (size_t)k;
				progress = 1;
			} else {
				int e = SSL_get_error(r->ssl, k);

				if (e == SSL_ERROR_WANT_WRITE)
					tls_wants_write = 1;
				else if (e == SSL_ERROR_WANT_READ)
					tls_wants_read_for_write = 1;
				else
					goto gone;
			}
		}
		/* libwebsockets closed its side and everything it said is out. */
		if (r->plain_eof && !r->down_len)
			goto gone;
		if (!progress)
			break;
	}
	set_events(r, &r->tls_w, &r->tls_ev,
		   ((!r->up_len || tls_wants_read_for_write) ? EPOLLIN : 0) |
		   (tls_wants_write ? EPOLLOUT : 0));
	set_events(r, &r->plain_w, &r->plain_ev,
		   (!r->down_len && !r->plain_eof ? EPOLLIN : 0) | (r->up_len ? EPOLLOUT : 0));
	return 0;
gone:
	relay_free(r);
	return -1;
}

int gw_relay_start(gw_gateway_t *gw, SSL *ssl, int tls_fd, const void *prefix,
		   size_t len)
{
	gw_relay_t *r;
	int sv[2];
	struct epoll_event ev;

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
	r->tls_w.kind = GW_WATCH_RELAY_TLS;
	r->tls_w.fd = tls_fd;
	r->plain_w.kind = GW_WATCH_RELAY_PLAIN;
	r->plain_w.fd = sv[0];
	lws_dll2_add_tail(&r->list, &gw->relays);
	memset(&ev, 0, sizeof(ev));
	ev.events = 0;
	ev.data.ptr = &r->tls_w;
	epoll_ctl(gw->epfd, EPOLL_CTL_ADD, tls_fd, &ev);
	ev.data.ptr = &r->plain_w;
	epoll_ctl(gw->epfd, EPOLL_CTL_ADD, sv[0], &ev);
	/* Plaintext already buffered inside OpenSSL raises no socket event. */
	if (pump(r))
		return -1;
	return sv[1];
fail:
	SSL_free(ssl);
	close(tls_fd);
	return -1;
}

void gw_relay_on_io(gw_relay_t *r, int plain_side, uint32_t events)
{
	(void)plain_side;
	(void)events;
	pump(r);
}

gw_relay_t *gw_relay_from_watch(gw_watch_t *w)
{
	if (w->kind == GW_WATCH_RELAY_TLS)
		return lws_container_of(w, gw_relay_t, tls_w);
	return lws_container_of(w, gw_relay_t, plain_w);
}

void gw_relay_free_all(gw_gateway_t *gw)
{
	while (gw->relays.head)
		relay_free(lws_container_of(gw->relays.head, gw_relay_t, list));
}
