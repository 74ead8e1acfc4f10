/* A WebSocket client over TLS 1.3 that sends KeyUpdate messages (OpenSSL's
 * SSL_key_update; Node's TLS sockets have no such call), for
 * tests/e2e/tls-offload.test.mjs. Against an echo route:
 *
 *   keyupdate_client PORT [ROUNDS]
 *
 * opens wss://127.0.0.1:PORT/, then per round sends a KeyUpdate (even
 * rounds: update_requested, so the gateway must answer with its own; odd:
 * not requested) followed by a text message, and reads its echo. Ends with
 * a close frame (4005) and prints "rounds N keyupdates-received K close C".
 * Exit status 0 only when every echo matched. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int key_updates_received;

static void on_msg(int write_p, int version, int type, const void *buf, size_t len, SSL *ssl,
		   void *arg)
{
	(void)version;
	(void)ssl;
	(void)arg;
	if (!write_p && type == SSL3_RT_HANDSHAKE && len && ((const unsigned char *)buf)[0] == 24)
		key_updates_received++;
}

static int fail(const char *what)
{
	fprintf(stderr, "keyupdate_client: %s\n", what);
	ERR_print_errors_fp(stderr);
	return 1;
}

static int read_exact(SSL *ssl, unsigned char *p, size_t n)
{
	while (n) {
		int k = SSL_read(ssl, p, (int)n);

		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* One masked client frame (mask 0: the bytes go as they are). */
static int send_frame(SSL *ssl, int opcode, const void *data, size_t len)
{
	unsigned char f[256];

	if (len > 125 - 6)
		return -1;
	f[0] = (unsigned char)(0x80 | opcode);
	f[1] = (unsigned char)(0x80 | len);
	memset(f + 2, 0, 4);
	memcpy(f + 6, data, len);
	return SSL_write(ssl, f, (int)(6 + len)) == (int)(6 + len) ? 0 : -1;
}

/* One short server frame: its opcode, payload in buf. */
static int read_frame(SSL *ssl, unsigned char *buf, size_t *len)
{
	unsigned char h[2];

	if (read_exact(ssl, h, 2) || (h[1] & 0x7f) > 125)
		return -1;
	*len = h[1] & 0x7f;
	if (read_exact(ssl, buf, *len))
		return -1;
	return h[0] & 0x0f;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int port = argc > 1 ? atoi(argv[1]) : 0, rounds = argc > 2 ? atoi(argv[2]) : 6;
	unsigned char buf[256];
	char msg[64], head[4096];
	size_t len, hl = 0;
	SSL_CTX *ctx;
	SSL *ssl;
	int fd, code = -1;

	if (port <= 0)
		return fail("usage: keyupdate_client PORT [ROUNDS]");
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return fail("connect");
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_msg_callback(ssl, on_msg);
	if (SSL_connect(ssl) != 1)
		return fail("TLS handshake");
	snprintf(head, sizeof(head),
		 "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
		 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		 "Sec-WebSocket-Version: 13\r\n\r\n", port);
	if (SSL_write(ssl, head, (int)strlen(head)) != (int)strlen(head))
		return fail("write the upgrade");
	while (hl < sizeof(head) - 1) {
		if (SSL_read(ssl, head + hl, 1) != 1)
			return fail("read the 101");
		head[++hl] = 0;
		if (hl >= 4 && !memcmp(head + hl - 4, "\r\n\r\n", 4))
			break;
	}
	if (strncmp(head, "HTTP/1.1 101", 12))
		return fail("no 101");
	for (int i = 0; i < rounds; i++) {
		if (SSL_key_update(ssl, i % 2 ? SSL_KEY_UPDATE_NOT_REQUESTED
					      : SSL_KEY_UPDATE_REQUESTED) != 1)
			return fail("SSL_key_update");
		snprintf(msg, sizeof(msg), "after key update %d", i);
		if (send_frame(ssl, 1, msg, strlen(msg)))
			return fail("send");
		if (read_frame(ssl, buf, &len) != 1 || len != strlen(msg) || memcmp(buf, msg, len))
			return fail("the echo differs or did not come");
	}
	buf[0] = 4005 >> 8;
	buf[1] = 4005 & 0xff;
	if (send_frame(ssl, 8, buf, 2))
		return fail("send close");
	if (read_frame(ssl, buf, &len) == 8 && len >= 2)
		code = buf[0] << 8 | buf[1];
	printf("rounds %d keyupdates-received %d close %d\n", rounds, key_updates_received, code);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return 0;
}
