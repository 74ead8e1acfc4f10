/* fastbackend: a small, fast HTTP/1.1 backend for the benchmarks. One epoll
 * loop per thread, each with its own SO_REUSEPORT listener, keep-alive,
 * Content-Length bodies (pipelined requests are served in order).
 *
 * Modes:
 *   (default)    Lambda proxy: a MESSAGE event is answered with
 *                {"statusCode":200,"body":<the event's body string>}, anything
 *                else with {"statusCode":200}; CONNECT events' connectionId
 *                is recorded. An authorizer's input gets an Allow.
 *   --pushpin    Pushpin's WebSocket-over-HTTP: OPEN is accepted with the
 *                GRIP extension and the connection subscribed to a channel
 *                named after its Connection-Id (recorded); TEXT is echoed.
 *                With --subscribe NAME every connection is subscribed to
 *                channel NAME instead (the Pushpin fan-out scenario).
 *   --echo-raw   any request gets a fixed small JSON body (REST scenario).
 *   --subscribe NAME  (Lambda proxy) CONNECT is answered with
 *                {"statusCode":200,"subscribe":"NAME"}: every connection
 *                joins channel NAME (the fan-out scenario).
 * In every mode GET /ids returns the recorded ids, one a line, and
 * POST /reset forgets them.
 *
 *   fastbackend [--port P] [--host 127.0.0.1] [--threads N] [mode] */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>

enum { MODE_LAMBDA, MODE_PUSHPIN, MODE_RAW };

static int mode = MODE_LAMBDA;
static const char *host = "127.0.0.1";
static int port = 9000;
static atomic_long nreq;
static const char *subscribe; /* --subscribe: the channel CONNECT joins */

/* recorded connection ids */
static pthread_mutex_t ids_mu = PTHREAD_MUTEX_INITIALIZER;
static char *ids_buf;
static size_t ids_len, ids_cap;

static void ids_add(const char *id, size_t n)
{
	pthread_mutex_lock(&ids_mu);
	if (ids_len + n + 1 > ids_cap) {
		ids_cap = (ids_len + n + 1) * 2;
		ids_buf = xrealloc(ids_buf, ids_cap);
	}
	memcpy(ids_buf + ids_len, id, n);
	ids_len += n;
	ids_buf[ids_len++] = '\n';
	pthread_mutex_unlock(&ids_mu);
}

typedef struct {
	char *p;
	size_t len, cap;
} buf_t;

static void bput(buf_t *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 256;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void bputs(buf_t *b, const char *s)
{
	bput(b, s, strlen(s));
}

typedef struct {
	int fd;
	int want_out;
	int close_after;
	buf_t in, out;
	size_t out_off;
} hconn_t;

typedef struct {
	int ep;
	int lfd;
} worker_t;

/* End of the JSON string starting at s (s[0] == '"'): index past the
 * closing quote, or 0 if unterminated. */
static size_t json_str_end(const char *s, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return 0;
}

/* Finds "key": followed by a JSON string; the quoted key can only match
 * outside string values, since quotes inside them are escaped. */
static const char *find_str(const char *body, size_t n, const char *key, size_t *len)
{
	size_t kl = strlen(key);
	const char *p = body, *end = body + n;

	while ((p = memmem(p, (size_t)(end - p), key, kl))) {
		const char *v = p + kl;

		while (v < end && (*v == ' ' || *v == ':'))
			v++;
		if (v < end && *v == '"') {
			size_t e = json_str_end(v, (size_t)(end - v));

			if (e) {
				*len = e;
				return v;
			}
		}
		p += kl;
	}
	return NULL;
}

static void respond(hconn_t *c, int status, const char *ctype, const char *extra,
		    const char *body, size_t blen)
{
	char h[512];
	int n = snprintf(h, sizeof(h),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
			 status, status == 200 ? "OK" : "Not Found", ctype, blen, extra ? extra : "",
			 c->close_after ? "Connection: close\r\n" : "");

	bput(&c->out, h, (size_t)n);
	bput(&c->out, body, blen);
}

static void handle_lambda(hconn_t *c, const char *body, size_t blen)
{
	/* A REQUEST authorizer's input (wsgate's authorizers): an Allow, in
	 * the IAM policy shape with a context (authz.sh). */
	static const char allow[] = "{\"principalId\":\"bench\",\"policyDocument\":{"
		"\"Version\":\"2012-10-17\",\"Statement\":[{\"Action\":\"execute-api:Invoke\","
		"\"Effect\":\"Allow\",\"Resource\":\"*\"}]},\"context\":{\"tenant\":\"bench\"}}";
	size_t tl = 0, bl = 0;
	const char *type = find_str(body, blen, "\"eventType\"", &tl);

	if (blen > 17 && !memcmp(body, "{\"type\":\"REQUEST\"", 17)) {
		respond(c, 200, "application/json", NULL, allow, sizeof(allow) - 1);
		return;
	}
	if (type && tl == 9 && !memcmp(type, "\"MESSAGE\"", 9)) {
		const char *b = find_str(body, blen, "\"body\"", &bl);

		if (b) {
			static const char pre[] = "{\"statusCode\":200,\"body\":";
			char h[256];
			int n = snprintf(h, sizeof(h),
					 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
					 "Content-Length: %zu\r\n%s\r\n",
					 sizeof(pre) - 1 + bl + 1,
					 c->close_after ? "Connection: close\r\n" : "");

			bput(&c->out, h, (size_t)n);
			bput(&c->out, pre, sizeof(pre) - 1);
			bput(&c->out, b, bl);
			bput(&c->out, "}", 1);
			return;
		}
	} else if (type && tl == 9 && !memcmp(type, "\"CONNECT\"", 9)) {
		const char *id = find_str(body, blen, "\"connectionId\"", &bl);

		if (id && bl > 2)
			ids_add(id + 1, bl - 2);
		if (subscribe) {
			char j[256];
			int n = snprintf(j, sizeof(j), "{\"statusCode\":200,\"subscribe\":\"%s\"}",
					 subscribe);

			respond(c, 200, "application/json", NULL, j, (size_t)n);
			return;
		}
	}
	respond(c, 200, "application/json", NULL, "{\"statusCode\":200}", 18);
}

/* WebSocket-over-HTTP: events are "TYPE[ hexlen]\r\n[content\r\n]". */
static void handle_pushpin(hconn_t *c, const char *hdrs, const char *body, size_t blen)
{
	buf_t out = { 0 };
	const char *p = body, *end = body + blen, *cid = NULL;
	size_t cidl = 0;
	int opened = 0;
	char *h = strcasestr(hdrs, "\r\nConnection-Id:");

	if (h) {
		cid = h + 16;
		while (*cid == ' ')
			cid++;
		cidl = strcspn(cid, "\r\n");
	}
	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		const char *sp;
		size_t clen = 0;

		if (!eol)
			break;
		sp = memchr(p, ' ', (size_t)(eol - p));
		if (sp)
			clen = strtoul(sp + 1, NULL, 16);
		if (!memcmp(p, "OPEN", 4)) {
			opened = 1;
			bputs(&out, "OPEN\r\n");
			if (cid) {
				char ctl[256];
				int n = snprintf(ctl, sizeof(ctl),
						 "c:{\"type\":\"subscribe\",\"channel\":\"%.*s\"}",
						 subscribe ? (int)strlen(subscribe) : (int)cidl,
						 subscribe ? subscribe : cid);
				char hd[32];
				int m = snprintf(hd, sizeof(hd), "TEXT %x\r\n", n);

				bput(&out, hd, (size_t)m);
				bput(&out, ctl, (size_t)n);
				bputs(&out, "\r\n");
				ids_add(cid, cidl);
			}
			p = eol + 2;
		} else if (!memcmp(p, "TEXT", 4) || !memcmp(p, "BINARY", 6)) {
			const char *content = eol + 2;

			if (content + clen + 2 > end)
				break;
			bput(&out, p, (size_t)(eol + 2 - p));
			bput(&out, content, clen);
			bputs(&out, "\r\n");
			p = content + clen + 2;
		} else if (!memcmp(p, "CLOSE", 5)) {
			const char *content = eol + 2;

			bputs(&out, "CLOSE\r\n");
			p = content + (sp ? clen + 2 : 0);
		} else {
			/* PING, PONG, DISCONNECT: nothing to say */
			p = eol + 2 + (sp ? clen + 2 : 0);
		}
	}
	respond(c, 200, "application/websocket-events",
		opened ? "Sec-WebSocket-Extensions: grip; message-prefix=\"\"\r\n" : NULL,
		out.p ? out.p : "", out.len);
	free(out.p);
}

/* Handles every complete request in c->in; returns 0, or -1 on a bad one. */
static int process(hconn_t *c)
{
	size_t off = 0;

	for (;;) {
		char *start = c->in.p + off, *end, *cl, *conn;
		size_t avail = c->in.len - off, hl, blen = 0;
		int is_get, http10;

		if (!avail)
			break;
		end = memmem(start, avail, "\r\n\r\n", 4);
		if (!end) {
			if (avail > 65536)
				return -1;
			break;
		}
		hl = (size_t)(end - start) + 4;
		*end = 0; /* headers as a C string; restored below */
		cl = strcasestr(start, "\r\nContent-Length:");
		if (cl)
			blen = strtoul(cl + 17, NULL, 10);
		if (strcasestr(start, "\r\nTransfer-Encoding:")) {
			*end = '\r';
			return -1; /* chunked request bodies are not supported */
		}
		if (avail < hl + blen) {
			*end = '\r';
			break;
		}
		{
			size_t ll = strcspn(start, "\r");

			http10 = ll >= 8 && !memcmp(start + ll - 8, "HTTP/1.0", 8);
		}
		conn = strcasestr(start, "\r\nConnection:");
		c->close_after = http10 ? !(conn && strcasestr(conn, "keep-alive") == conn + 13)
					: (conn && !strncasecmp(conn + 13 + strspn(conn + 13, " "), "close", 5));
		is_get = !strncmp(start, "GET ", 4);
		nreq++;
		if (is_get && !strncmp(start + 4, "/ids ", 5)) {
			pthread_mutex_lock(&ids_mu);
			respond(c, 200, "text/plain", NULL, ids_buf ? ids_buf : "", ids_len);
			pthread_mutex_unlock(&ids_mu);
		} else if (!strncmp(start, "POST /reset ", 12)) {
			pthread_mutex_lock(&ids_mu);
			ids_len = 0;
			pthread_mutex_unlock(&ids_mu);
			respond(c, 200, "text/plain", NULL, "ok\n", 3);
		} else if (mode == MODE_RAW) {
			static const char ok[] = "{\"ok\":true,\"service\":\"fastbackend\"}";

			respond(c, 200, "application/json", NULL, ok, sizeof(ok) - 1);
		} else if (mode == MODE_PUSHPIN) {
			handle_pushpin(c, start, start + hl, blen);
		} else {
			handle_lambda(c, start + hl, blen);
		}
		*end = '\r';
		off += hl + blen;
		if (c->close_after)
			break;
	}
	if (off) {
		memmove(c->in.p, c->in.p + off, c->in.len - off);
		c->in.len -= off;
	}
	return 0;
}

static void conn_free(worker_t *w, hconn_t *c)
{
	epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in.p);
	free(c->out.p);
	free(c);
}

/* Returns -1 when the connection is finished with. */
static int flush_out(worker_t *w, hconn_t *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				if (!c->want_out) {
					struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };

					c->want_out = 1;
					epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
				}
				return 0;
			}
			return -1;
		}
		c->out_off += (size_t)n;
	}
	c->out.len = c->out_off = 0;
	if (c->want_out) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

		c->want_out = 0;
		epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
	return c->close_after ? -1 : 0;
}

static void *worker(void *arg)
{
	worker_t *w = arg;
	struct epoll_event evs[256];

	for (;;) {
		int n = epoll_wait(w->ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			hconn_t *c = evs[i].data.ptr;

			if (!c) {
				for (;;) {
					int one = 1, fd = accept4(w->lfd, NULL, NULL,
								  SOCK_NONBLOCK | SOCK_CLOEXEC);
					struct epoll_event ev = { .events = EPOLLIN };

					if (fd < 0)
						break;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					c = calloc(1, sizeof(*c));
					if (!c) {
						close(fd);
						continue;
					}
					c->fd = fd;
					ev.data.ptr = c;
					epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			if (evs[i].events & EPOLLOUT) {
				if (flush_out(w, c)) {
					conn_free(w, c);
					continue;
				}
			}
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				int dead = 0;

				for (;;) {
					ssize_t r;

					if (c->in.cap - c->in.len < 4096) {
						c->in.cap = c->in.cap ? c->in.cap * 2 : 8192;
						c->in.p = xrealloc(c->in.p, c->in.cap);
					}
					r = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1, 0);
					if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
						dead = 1;
						break;
					}
					if (r < 0)
						break;
					c->in.len += (size_t)r;
					c->in.p[c->in.len] = 0;
					if ((size_t)r < c->in.cap - c->in.len)
						break;
				}
				if (!dead && process(c))
					dead = 1;
				if (!dead && c->out.len && flush_out(w, c))
					dead = 1;
				if (dead)
					conn_free(w, c);
			}
		}
	}
	return NULL;
}

static int make_listener(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4096)) {
		perror("fastbackend: bind/listen");
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port", 1, 0, 'p' }, { "host", 1, 0, 'H' }, { "threads", 1, 0, 't' },
		{ "pushpin", 0, 0, 'q' }, { "echo-raw", 0, 0, 'r' }, { "subscribe", 1, 0, 's' },
		{ 0, 0, 0, 0 }
	};
	long nthreads = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t th[64];
	worker_t ws[64];
	int o;

	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'p': port = atoi(optarg); break;
		case 'H': host = optarg; break;
		case 't': nthreads = atol(optarg); break;
		case 'q': mode = MODE_PUSHPIN; break;
		case 'r': mode = MODE_RAW; break;
		case 's': subscribe = optarg; break;
		default:
			fprintf(stderr, "usage: fastbackend [--port P] [--host H] [--threads N]"
					" [--pushpin|--echo-raw]\n");
			return 2;
		}
	}
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > 64)
		nthreads = 64;
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	for (long i = 0; i < nthreads; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

		ws[i].lfd = make_listener();
		ws[i].ep = epoll_create1(EPOLL_CLOEXEC);
		if (ws[i].lfd < 0 || ws[i].ep < 0)
			return 1;
		epoll_ctl(ws[i].ep, EPOLL_CTL_ADD, ws[i].lfd, &ev);
	}
	for (long i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, &ws[i]);
	fprintf(stderr, "fastbackend: listening on %s:%d (%s, %ld threads)\n", host, port,
		mode == MODE_RAW ? "echo-raw" : mode == MODE_PUSHPIN ? "pushpin" : "lambda",
		nthreads);
	for (long i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	return 0;
}
