/* rawfan: the machine's floor for fan-out. A bare server that does nothing
 * but what a fan-out cannot avoid: it holds the same WebSocket connections
 * as wsgate (the same wsload clients, the same 101 handshake), and a
 * publish writes one pre-built frame to each member, as fast as the kernel
 * takes them. No routing, no channel index, no queue, no libwebsockets:
 * whatever wsgate spends above this is its own.
 *
 *   rawfan --port P --mgmt-port M [--uring] [--batch N]
 *
 * The management port speaks just enough HTTP/1.1 (keep-alive) for
 * `wsload fanout --ids 127.0.0.1:M --mgmt 127.0.0.1:M`:
 *   POST /reset                 200 (nothing to reset)
 *   GET  /ids                   one line per member
 *   GET  .../@channels/NAME     {"members":N}
 *   POST .../@channels/NAME     the body to every member: {"queued":Q,"skipped":S}
 * (any channel name: every member is in it).
 *
 * How a publish writes:
 *   default   one send(2) per member (MSG_DONTWAIT), as wsgate's direct write
 *   --uring   io_uring: one SQE per member, N per io_uring_enter (--batch,
 *             default 1024), the same frame buffer for all: one system call
 *             per N members instead of N.
 * sendmmsg(2) does not apply: it sends many messages on one socket, and a
 * fan-out is one message on many sockets. */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>

enum { K_NONE, K_WS_LISTEN, K_MGMT_LISTEN, K_HS, K_MEMBER, K_MGMT };

typedef struct {
	int kind;
	char *buf; /* handshake or management request bytes */
	size_t len, cap;
} fdstate_t;

static fdstate_t *fds;
static long nfds_max;
static int *members;
static long n_members;
static int ep;
static int use_uring;
static unsigned batch = 1024;
static struct io_uring ring;

static int listen_on(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4096)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void watch(int fd, int kind)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	fds[fd].kind = kind;
	fds[fd].len = 0;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static void drop(int fd)
{
	if (fds[fd].kind == K_MEMBER)
		for (long i = 0; i < n_members; i++)
			if (members[i] == fd) {
				members[i] = members[--n_members];
				break;
			}
	fds[fd].kind = K_NONE;
	fds[fd].len = 0;
	close(fd); /* also leaves the epoll set */
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };

			poll(&pf, 1, 1000);
			continue;
		}
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void append(fdstate_t *s, const char *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2;
		s->buf = xrealloc(s->buf, s->cap);
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = 0;
}

/* ---- the WebSocket handshake: the 101 and nothing else ---- */

static int handshake(int fd)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	fdstate_t *s = &fds[fd];
	char *k, key[64], cat[128], acc[64], resp[256];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t kl = 0;
	int n;

	if (!strstr(s->buf, "\r\n\r\n"))
		return s->len > 16384 ? -1 : 0;
	k = strcasestr(s->buf, "\r\nSec-WebSocket-Key:");
	if (!k)
		return -1;
	for (k += 20; *k == ' '; k++)
		;
	while (k[kl] && k[kl] != '\r' && kl < sizeof(key) - 1)
		kl++;
	memcpy(key, k, kl);
	key[kl] = 0;
	snprintf(cat, sizeof(cat), "%s%s", key, guid);
	EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL);
	EVP_EncodeBlock((unsigned char *)acc, md, (int)mdlen);
	n = snprintf(resp, sizeof(resp),
		     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc);
	if (write_all(fd, resp, (size_t)n))
		return -1;
	s->kind = K_MEMBER;
	s->len = 0;
	free(s->buf);
	s->buf = NULL;
	s->cap = 0;
	members[n_members++] = fd;
	return 1;
}

/* ---- a publish: one frame, every member ---- */

static void publish_send(const unsigned char *f, size_t fl, long *queued, long *skipped)
{
	for (long i = 0; i < n_members; i++) {
		if (send(members[i], f, fl, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)fl)
			(*queued)++;
		else
			(*skipped)++;
	}
}

static void publish_uring(const unsigned char *f, size_t fl, long *queued, long *skipped)
{
	for (long i = 0; i < n_members;) {
		unsigned n = 0, seen = 0;
		struct io_uring_cqe *cqe;
		unsigned head;

		for (; i < n_members && n < batch; i++, n++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			io_uring_prep_send(sqe, members[i], f, fl, MSG_DONTWAIT | MSG_NOSIGNAL);
		}
		if (io_uring_submit_and_wait(&ring, n) < 0) {
			*skipped += n;
			continue;
		}
		while (seen < n) {
			io_uring_for_each_cqe(&ring, head, cqe) {
				if (cqe->res == (int)fl)
					(*queued)++;
				else
					(*skipped)++;
				seen++;
			}
			io_uring_cq_advance(&ring, seen);
			if (seen < n && io_uring_wait_cqe(&ring, &cqe))
				break;
		}
	}
}

static void publish(const char *body, size_t bl, char *out, size_t outsz)
{
	static unsigned char *f;
	static size_t fcap;
	size_t hl = bl < 126 ? 2 : bl < 65536 ? 4 : 10;
	long queued = 0, skipped = 0;

	if (hl + bl > fcap) {
		fcap = hl + bl;
		f = xrealloc(f, fcap);
	}
	f[0] = 0x81; /* FIN, text; a server's frames are not masked */
	if (hl == 2) {
		f[1] = (unsigned char)bl;
	} else if (hl == 4) {
		f[1] = 126;
		f[2] = (unsigned char)(bl >> 8);
		f[3] = (unsigned char)bl;
	} else {
		f[1] = 127;
		for (int i = 0; i < 8; i++)
			f[2 + i] = (unsigned char)((uint64_t)bl >> (56 - 8 * i));
	}
	memcpy(f + hl, body, bl);
	if (use_uring)
		publish_uring(f, hl + bl, &queued, &skipped);
	else
		publish_send(f, hl + bl, &queued, &skipped);
	snprintf(out, outsz, "{\"queued\":%ld,\"skipped\":%ld}", queued, skipped);
}

/* ---- the management side: keep-alive HTTP/1.1, Content-Length only ---- */

static int answer(int fd, int status, const char *body, size_t bl)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			 status, status == 200 ? "OK" : "Not Found", bl);

	return write_all(fd, head, (size_t)n) || write_all(fd, body, bl) ? -1 : 0;
}

static int serve_one(int fd, const char *req, const char *body, size_t bl)
{
	char out[128];
	int post = !strncmp(req, "POST ", 5), get = !strncmp(req, "GET ", 4);
	const char *path = req + (post ? 5 : 4);
	const char *sp = strchr(path, ' ');
	size_t pl = sp ? (size_t)(sp - path) : 0;
	int chan = pl && memmem(path, pl, "/@channels/", 11) != NULL;

	if (post && pl == 6 && !memcmp(path, "/reset", 6))
		return answer(fd, 200, "", 0);
	if (get && pl == 4 && !memcmp(path, "/ids", 4)) {
		size_t cap = (size_t)n_members * 12 + 1, len = 0;
		char *ids = xrealloc(NULL, cap);
		int rc;

		for (long i = 0; i < n_members; i++)
			len += (size_t)snprintf(ids + len, cap - len, "m%d\n", members[i]);
		rc = answer(fd, 200, ids, len);
		free(ids);
		return rc;
	}
	if (get && chan) {
		int n = snprintf(out, sizeof(out), "{\"members\":%ld}", n_members);

		return answer(fd, 200, out, (size_t)n);
	}
	if (post && chan) {
		publish(body, bl, out, sizeof(out));
		return answer(fd, 200, out, strlen(out));
	}
	return answer(fd, 404, "", 0);
}

static int mgmt_input(int fd)
{
	fdstate_t *s = &fds[fd];

	for (;;) {
		char *end = s->len ? memmem(s->buf, s->len, "\r\n\r\n", 4) : NULL, *cl;
		size_t hl, bl = 0;

		if (!end)
			return s->len > 65536 ? -1 : 0;
		hl = (size_t)(end - s->buf) + 4;
		*end = 0;
		cl = strcasestr(s->buf, "\r\nContent-Length:");
		if (cl)
			bl = strtoul(cl + 17, NULL, 10);
		*end = '\r';
		if (s->len < hl + bl)
			return 0;
		{
			char save = s->buf[hl + bl];

			s->buf[hl + bl] = 0;
			if (serve_one(fd, s->buf, s->buf + hl, bl))
				return -1;
			s->buf[hl + bl] = save;
		}
		memmove(s->buf, s->buf + hl + bl, s->len - hl - bl);
		s->len -= hl + bl;
	}
}

static void on_readable(int fd)
{
	fdstate_t *s = &fds[fd];
	char buf[65536];

	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
			drop(fd);
			return;
		}
		if (r < 0)
			return;
		if (s->kind == K_MEMBER)
			continue; /* a client's frames (none in fanout) are not read */
		append(s, buf, (size_t)r);
		if ((s->kind == K_HS && handshake(fd) < 0) ||
		    (s->kind == K_MGMT && mgmt_input(fd) < 0)) {
			drop(fd);
			return;
		}
	}
}

static void on_accept(int lfd, int kind)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;

		if (fd < 0)
			return;
		if (fd >= nfds_max) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		watch(fd, kind);
	}
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port", 1, 0, 'p' }, { "mgmt-port", 1, 0, 'm' }, { "uring", 0, 0, 'u' },
		{ "batch", 1, 0, 'b' }, { 0, 0, 0, 0 }
	};
	int o, port = 0, mport = 0, lfd, mfd;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'p': port = atoi(optarg); break;
		case 'm': mport = atoi(optarg); break;
		case 'u': use_uring = 1; break;
		case 'b': batch = (unsigned)atoi(optarg); break;
		default:
			fprintf(stderr, "usage: rawfan --port P --mgmt-port M [--uring] [--batch N]\n");
			return 2;
		}
	}
	if (!port || !mport || batch < 1 || batch > 32768) {
		fprintf(stderr, "usage: rawfan --port P --mgmt-port M [--uring] [--batch N]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	nfds_max = raise_nofile();
	fds = calloc((size_t)nfds_max, sizeof(*fds));
	members = calloc((size_t)nfds_max, sizeof(*members));
	ep = epoll_create1(EPOLL_CLOEXEC);
	lfd = listen_on(port);
	mfd = listen_on(mport);
	if (!fds || !members || ep < 0 || lfd < 0 || mfd < 0) {
		fprintf(stderr, "rawfan: cannot listen on %d and %d\n", port, mport);
		return 1;
	}
	if (use_uring) {
		int rc = io_uring_queue_init(batch, &ring, 0);

		if (rc < 0) {
			fprintf(stderr, "rawfan: io_uring: %s\n", strerror(-rc));
			return 1;
		}
	}
	watch(lfd, K_WS_LISTEN);
	watch(mfd, K_MGMT_LISTEN);
	fprintf(stderr, "rawfan: listening on 127.0.0.1:%d (ws) and :%d (management), %s\n", port,
		mport, use_uring ? "io_uring sends" : "send per member");
	for (;;) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fds[fd].kind == K_WS_LISTEN)
				on_accept(fd, K_HS);
			else if (fds[fd].kind == K_MGMT_LISTEN)
				on_accept(fd, K_MGMT);
			else if (fds[fd].kind != K_NONE)
				on_readable(fd);
		}
	}
}
