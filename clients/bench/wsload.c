/* wsload: a WebSocket load generator. One epoll loop drives thousands of
 * non-blocking client connections; the handshake and the framing (masking,
 * 7/16/64-bit lengths, fragments, ping/pong, close) are written here, and
 * OpenSSL is used only to check Sec-WebSocket-Accept.
 *
 *   wsload connect   -n N -c C            handshakes/s, handshake latency
 *   wsload idle      -n N --pid P         RSS of P before/after, per connection
 *   wsload roundtrip -c C -s S -d D       messages/s, round-trip latency
 *   wsload post      -c C -d D --ids H:P --mgmt H:P [--posters K]
 *                                         posts/s delivered, post-to-client latency
 *   wsload fanout    -c C --rounds R --ids H:P --mgmt H:P [--channel NAME]
 *                                         C members join one channel (PUT); R
 *                                         publishes, one at a time: deliveries/s
 *                                         and publish-to-last-member time;
 *                                         --pushpin: members subscribed by the
 *                                         origin's GRIP control message, each
 *                                         publish a POST /publish/ to Pushpin
 *
 * Every mode prints one line of key=value pairs. --cpu-pid P[,P...] samples
 * /proc/P/stat utime+stime at the start and end of the measured window and
 * prints the target's CPU per operation; the load generator's own CPU is
 * printed too, since both share the machine. */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>

enum { ST_FREE, ST_CONNECTING, ST_HS_SENT, ST_OPEN, ST_CLOSED };
enum { M_CONNECT, M_IDLE, M_ROUNDTRIP, M_POST, M_FANOUT };

typedef struct conn {
	int fd;
	int state;
	int want_out;
	int awaiting;     /* roundtrip: a message is in flight */
	uint64_t t_start; /* handshake start, or send time of the message in flight */
	char key[25];
	unsigned char *rbuf;
	size_t rlen, rcap;
	unsigned char *wbuf;
	size_t wlen, woff, wcap;
	unsigned char *mbuf; /* fragments of a message being assembled */
	size_t mlen, mcap;
	int mop;
} conn_t;

static struct {
	int mode;
	const char *host;
	int port;
	const char *path;
	long n;           /* connections (connect, idle) */
	long conc;        /* connections (roundtrip, post) or handshakes in flight */
	long size;        /* message size */
	double duration;  /* seconds measured */
	double warmup;    /* seconds before measuring (roundtrip) */
	double timeout;   /* bound on the connect phase */
	double hold;      /* idle: seconds to hold before the second RSS sample */
	int close_after;  /* connect: close each connection once open */
	int src_ips;      /* spread sources over 127.0.0.1..N */
	long warm;        /* idle: connections opened before the baseline RSS */
	pidlist_t cpu_pids, rss_pids, aux_pids;
	const char *label;
	/* post */
	const char *ids_addr;
	const char *mgmt_addr;
	const char *post_prefix;
	int posters;
	int pushpin;
	long hs;          /* handshakes in flight while opening (roundtrip, post) */
	long rounds;      /* fanout: publishes */
	const char *channel;
	const char *stage_prefix; /* fanout: "/dev" */
} cfg = {
	.host = "127.0.0.1", .port = 8080, .path = "/", .n = 1000, .conc = 100,
	.size = 32, .duration = 5, .warmup = 1, .timeout = 60, .hold = 1,
		.hs = 256, .warm = 20, .label = "-", .post_prefix = "/dev/@connections/", .posters = 4,
	.rounds = 50, .channel = "bench", .stage_prefix = "/dev",
};

static int ep;
static conn_t *conns;
static long nconns;
static struct sockaddr_in target;
static uint64_t rng = 88172645463325252ull;
static unsigned char *payload;

/* counters */
static long opened, failed, closed_by_peer, inflight_hs, fail_tcp, fail_status, fail_eof;
static int fail_reported;
static samples_t lat;
static long ops;
static int measuring, stopping;
static uint64_t t_measure0, t_measure1;

static uint64_t xrand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void b64(const unsigned char *in, int n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, n);
}

static void accept_for(const char *key, char out[32])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char cat[64 + sizeof(guid)];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	snprintf(cat, sizeof(cat), "%s%s", key, guid);
	EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL);
	b64(md, (int)mdlen, out);
}

/* ---- connection plumbing ---- */

static void conn_close(conn_t *c, int by_peer)
{
	if (c->state == ST_FREE || c->state == ST_CLOSED)
		return;
	if (c->state == ST_CONNECTING || c->state == ST_HS_SENT) {
		inflight_hs--;
		failed++;
		if (c->state == ST_CONNECTING)
			fail_tcp++;
		else if (c->rlen >= 12)
			fail_status++;
		else
			fail_eof++;
		if (c->state == ST_HS_SENT && c->rlen >= 12 && !fail_reported++)
			fprintf(stderr, "wsload: handshake refused: %.*s\n",
				(int)(memchr(c->rbuf, '\r', c->rlen) ?
				      (unsigned char *)memchr(c->rbuf, '\r', c->rlen) - c->rbuf : 12),
				(char *)c->rbuf);
	} else if (by_peer) {
		closed_by_peer++;
	}
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->state = ST_CLOSED;
	free(c->rbuf);
	free(c->wbuf);
	free(c->mbuf);
	c->rbuf = c->wbuf = c->mbuf = NULL;
	c->rlen = c->rcap = c->wlen = c->woff = c->wcap = c->mlen = c->mcap = 0;
}

static void set_out(conn_t *c, int on)
{
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c };

	if (c->want_out == on)
		return;
	c->want_out = on;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush(conn_t *c)
{
	while (c->woff < c->wlen) {
		ssize_t w = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				set_out(c, 1);
				return;
			}
			conn_close(c, 1);
			return;
		}
		c->woff += (size_t)w;
	}
	c->wlen = c->woff = 0;
	if (c->want_out)
		set_out(c, 0);
}

static void wappend(conn_t *c, const void *p, size_t n)
{
	if (c->wlen + n > c->wcap) {
		c->wcap = (c->wlen + n) * 2;
		c->wbuf = xrealloc(c->wbuf, c->wcap);
	}
	memcpy(c->wbuf + c->wlen, p, n);
	c->wlen += n;
}

/* Appends one masked client frame and tries to send it. */
static void ws_send(conn_t *c, int op, const unsigned char *data, size_t len)
{
	unsigned char h[14];
	size_t hl = 2;
	uint32_t mask = (uint32_t)xrand();
	unsigned char *m = (unsigned char *)&mask, *dst;

	h[0] = (unsigned char)(0x80 | op);
	if (len < 126) {
		h[1] = (unsigned char)(0x80 | len);
	} else if (len < 65536) {
		h[1] = 0x80 | 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		hl = 4;
	} else {
		h[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
		hl = 10;
	}
	memcpy(h + hl, m, 4);
	hl += 4;
	wappend(c, h, hl);
	if (c->wlen + len > c->wcap) {
		c->wcap = (c->wlen + len) * 2;
		c->wbuf = xrealloc(c->wbuf, c->wcap);
	}
	dst = c->wbuf + c->wlen;
	for (size_t i = 0; i < len; i++)
		dst[i] = data[i] ^ m[i & 3];
	c->wlen += len;
	flush(c);
}

static void on_open(conn_t *c);
static void on_message(conn_t *c, const unsigned char *p, size_t n);

static int conn_start(conn_t *c, long idx)
{
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN, .data.ptr = c };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	unsigned char kb[16];
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (fd < 0) {
		failed++;
		c->state = ST_CLOSED;
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (cfg.src_ips > 1) {
		struct sockaddr_in src = { .sin_family = AF_INET };

		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(idx % cfg.src_ips));
		bind(fd, (struct sockaddr *)&src, sizeof(src));
	}
	c->fd = fd;
	c->t_start = now_ns();
	if (connect(fd, (struct sockaddr *)&target, sizeof(target)) && errno != EINPROGRESS) {
		close(fd);
		c->fd = -1;
		c->state = ST_CLOSED;
		failed++;
		return -1;
	}
	for (int i = 0; i < 16; i++)
		kb[i] = (unsigned char)xrand();
	b64(kb, 16, c->key);
	c->state = ST_CONNECTING;
	c->want_out = 1;
	inflight_hs++;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

static void send_handshake(conn_t *c)
{
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: 13\r\n\r\n",
			 cfg.path, cfg.host, cfg.port, c->key);

	c->state = ST_HS_SENT;
	wappend(c, req, (size_t)n);
	flush(c);
}

/* Parses the 101 response; returns header length, 0 if incomplete, -1 bad. */
static long parse_handshake(conn_t *c)
{
	char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4), *p, want[32];
	size_t hl;

	if (!end)
		return c->rlen > 16384 ? -1 : 0;
	hl = (size_t)(end - (char *)c->rbuf) + 4;
	if (c->rlen < 12 || memcmp(c->rbuf + 9, "101", 3))
		return -1;
	*end = 0;
	p = strcasestr((char *)c->rbuf, "\r\nSec-WebSocket-Accept:");
	if (!p)
		return -1;
	p += 23;
	while (*p == ' ')
		p++;
	accept_for(c->key, want);
	if (strncmp(p, want, strlen(want)))
		return -1;
	return (long)hl;
}

static void deliver(conn_t *c, int op, const unsigned char *p, size_t n)
{
	(void)op;
	on_message(c, p, n);
}

/* Consumes complete frames from rbuf. */
static void parse_frames(conn_t *c)
{
	size_t pos = 0;

	while (c->state == ST_OPEN) {
		unsigned char *f = c->rbuf + pos;
		size_t avail = c->rlen - pos, hl = 2;
		uint64_t len;
		int fin, op, masked;

		if (avail < 2)
			break;
		fin = f[0] & 0x80;
		op = f[0] & 0x0f;
		masked = f[1] & 0x80;
		len = f[1] & 0x7f;
		if (len == 126) {
			if (avail < 4)
				break;
			len = ((uint64_t)f[2] << 8) | f[3];
			hl = 4;
		} else if (len == 127) {
			if (avail < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = (len << 8) | f[2 + i];
			hl = 10;
		}
		if (masked)
			hl += 4;
		if (len > (1ull << 31)) {
			conn_close(c, 1);
			return;
		}
		if (avail < hl + len)
			break;
		if (masked)
			for (uint64_t i = 0; i < len; i++)
				f[hl + i] ^= f[hl - 4 + (i & 3)];
		pos += hl + len;
		switch (op) {
		case 0x8: /* close: answer, then drop */
			ws_send(c, 0x8, f + hl, len >= 2 ? 2 : 0);
			conn_close(c, 1);
			return;
		case 0x9:
			ws_send(c, 0xA, f + hl, len);
			break;
		case 0xA:
			break;
		case 0x0:
		case 0x1:
		case 0x2:
			if (op && fin && !c->mlen) {
				deliver(c, op, f + hl, len);
				break;
			}
			if (op)
				c->mop = op;
			if (c->mlen + len > c->mcap) {
				c->mcap = (c->mlen + len) * 2;
				c->mbuf = xrealloc(c->mbuf, c->mcap);
			}
			memcpy(c->mbuf + c->mlen, f + hl, len);
			c->mlen += len;
			if (fin) {
				size_t ml = c->mlen;

				c->mlen = 0;
				deliver(c, c->mop, c->mbuf, ml);
			}
			break;
		default:
			conn_close(c, 1);
			return;
		}
		if (c->state != ST_OPEN)
			return;
	}
	if (c->state != ST_OPEN)
		return;
	if (pos) {
		memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
		c->rlen -= pos;
	}
}

static void on_readable(conn_t *c)
{
	for (;;) {
		ssize_t r;

		if (c->rcap - c->rlen < 4096) {
			c->rcap = c->rcap ? c->rcap * 2 : 8192;
			c->rbuf = xrealloc(c->rbuf, c->rcap);
		}
		r = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
		if (r == 0) {
			conn_close(c, 1);
			return;
		}
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_close(c, 1);
			return;
		}
		c->rlen += (size_t)r;
		if (c->state == ST_HS_SENT) {
			long hl = parse_handshake(c);

			if (hl < 0) {
				conn_close(c, 1);
				return;
			}
			if (hl == 0)
				continue;
			memmove(c->rbuf, c->rbuf + hl, c->rlen - (size_t)hl);
			c->rlen -= (size_t)hl;
			c->state = ST_OPEN;
			inflight_hs--;
			opened++;
			on_open(c);
			if (c->state != ST_OPEN)
				return;
		}
		if (c->state == ST_OPEN)
			parse_frames(c);
		if (c->state != ST_OPEN)
			return;
		if ((size_t)r < 4096)
			break;
	}
	/* idle connections: keep no receive buffer around */
	if (c->rlen == 0 && c->rcap > 65536) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rcap = 0;
	}
}

/* Progress on a terminal (common.h's rule): connections, every message
 * received and the rates since the last refresh; stderr only, so the
 * key=value result line on stdout is unchanged. */
static progress_t prog;
static long msgs_seen, prog_msgs, prog_opened;

static void progress_tick(void)
{
	uint64_t t = now_ns();
	double dt;

	if (!progress_due(&prog, t))
		return;
	dt = (double)(t - prog.t_last) / 1e9;
	progress_print(&prog, t, "wsload %s %s: %.1fs, %ld open, %ld failed, %ld messages, %.0f msg/s, %.0f conn/s",
		       cfg.label, cfg.mode == M_CONNECT ? "connect" : cfg.mode == M_IDLE ? "idle" :
		       cfg.mode == M_ROUNDTRIP ? "roundtrip" : cfg.mode == M_POST ? "post" : "fanout",
		       (double)(t - prog.t0) / 1e9, opened, failed, msgs_seen,
		       (double)(msgs_seen - prog_msgs) / dt, (double)(opened - prog_opened) / dt);
	prog_msgs = msgs_seen;
	prog_opened = opened;
}

static void poll_once(int timeout_ms)
{
	struct epoll_event evs[512];
	int n = epoll_wait(ep, evs, 512, timeout_ms);

	for (int i = 0; i < n; i++) {
		conn_t *c = evs[i].data.ptr;

		if (c->state == ST_FREE || c->state == ST_CLOSED)
			continue;
		if (c->state == ST_CONNECTING) {
			int err = 0;
			socklen_t el = sizeof(err);

			if (evs[i].events & (EPOLLERR | EPOLLHUP) ||
			    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
				conn_close(c, 0);
				continue;
			}
			send_handshake(c);
			continue;
		}
		if (evs[i].events & EPOLLOUT)
			flush(c);
		if (c->state != ST_CLOSED && evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			on_readable(c);
	}	progress_tick();
}

/* Opens connections [from, to) with at most cfg.conc handshakes in flight;
 * returns when all are open or failed, or at the deadline. */
static void open_range(long from, long to, long conc, uint64_t deadline)
{
	long next = from;

	while ((next < to || inflight_hs > 0) && now_ns() < deadline) {
		while (next < to && inflight_hs < conc) {
			conn_start(&conns[next], next);
			next++;
		}
		poll_once(10);
	}
}

/* ---- modes ---- */

static samples_t hs_lat;
static uint64_t t_last_open;

static void on_open(conn_t *c)
{
	uint64_t t = now_ns();

	if (cfg.mode == M_CONNECT || cfg.mode == M_IDLE)
		samples_add(&hs_lat, t - c->t_start);
	t_last_open = t;
	if (cfg.mode == M_CONNECT && cfg.close_after)
		conn_close(c, 0);
}

static void rt_send(conn_t *c)
{
	c->t_start = now_ns();
	c->awaiting = 1;
	ws_send(c, 0x1, payload, (size_t)cfg.size);
}

static void on_fanout_message(const unsigned char *p, size_t n, uint64_t t);

static void on_message(conn_t *c, const unsigned char *p, size_t n)
{
	uint64_t t = now_ns();

	msgs_seen++;
	if (cfg.mode == M_ROUNDTRIP) {
		if (!c->awaiting)
			return;
		c->awaiting = 0;
		if (measuring && c->t_start >= t_measure0) {
			samples_add(&lat, t - c->t_start);
			ops++;
		}
		if (!stopping)
			rt_send(c);
	} else if (cfg.mode == M_FANOUT) {
		on_fanout_message(p, n, t);
	} else if (cfg.mode == M_POST) {
		char tmp[24];
		size_t k = n < sizeof(tmp) - 1 ? n : sizeof(tmp) - 1;
		uint64_t ts;

		memcpy(tmp, p, k);
		tmp[k] = 0;
		ts = strtoull(tmp, NULL, 10);
		if (measuring && ts >= t_measure0 && ts <= t && ts < t_measure1) {
			samples_add(&lat, t - ts);
			ops++;
		}
	}
}

static void print_common(const char *mode, double secs, double tcpu, double acpu,
			 double lcpu, long nops)
{
	progress_end(&prog); /* the result starts on a clean line */
	prog.on = 0;
	printf("mode=%s target=%s", mode, cfg.label);
	printf(" ops=%ld secs=%.3f ops_per_s=%.1f", nops, secs, secs > 0 ? nops / secs : 0);
	if (cfg.cpu_pids.n)
		printf(" target_cpu_s=%.3f target_cpu_us_per_op=%.2f", tcpu,
		       nops ? tcpu * 1e6 / (double)nops : 0);
	if (cfg.aux_pids.n)
		printf(" aux_cpu_s=%.3f aux_cpu_us_per_op=%.2f", acpu,
		       nops ? acpu * 1e6 / (double)nops : 0);
	printf(" load_cpu_s=%.3f load_cpu_us_per_op=%.2f", lcpu,
	       nops ? lcpu * 1e6 / (double)nops : 0);
	if (failed)
		printf(" fail_tcp=%ld fail_status=%ld fail_eof=%ld", fail_tcp, fail_status, fail_eof);
}

static int run_connect(void)
{
	uint64_t t0, deadline;
	double c0, a0, l0, c1, a1, l1, secs;

	c0 = pidlist_cpu_s(&cfg.cpu_pids);
	a0 = pidlist_cpu_s(&cfg.aux_pids);
	l0 = self_cpu_s();
	t0 = now_ns();
	deadline = t0 + (uint64_t)(cfg.timeout * 1e9);
	open_range(0, cfg.n, cfg.conc, deadline);
	c1 = pidlist_cpu_s(&cfg.cpu_pids);
	a1 = pidlist_cpu_s(&cfg.aux_pids);
	l1 = self_cpu_s();
	secs = (double)((t_last_open > t0 ? t_last_open : now_ns()) - t0) / 1e9;
	samples_sort(&hs_lat);
	print_common("connect", secs, c1 - c0, a1 - a0, l1 - l0, opened);
	printf(" conns=%ld failed=%ld inflight=%ld p50_us=%.0f p99_us=%.0f\n", opened,
	       failed, cfg.conc, samples_pct_us(&hs_lat, 50), samples_pct_us(&hs_lat, 99));
	return failed ? 1 : 0;
}

static void hold_for(double secs)
{
	uint64_t until = now_ns() + (uint64_t)(secs * 1e9);

	while (now_ns() < until)
		poll_once(50);
}

static int run_idle(void)
{
	long rss0, rss1, base_open;
	uint64_t t0, deadline;
	double c0, c1, l0, l1, secs;

	deadline = now_ns() + (uint64_t)(cfg.timeout * 1e9);
	if (cfg.warm)
		open_range(cfg.n, cfg.n + cfg.warm, cfg.conc, deadline);
	hold_for(0.5);
	base_open = opened;
	rss0 = pidlist_rss_kb(&cfg.rss_pids);
	c0 = pidlist_cpu_s(&cfg.cpu_pids);
	l0 = self_cpu_s();
	t0 = now_ns();
	hs_lat.n = 0;
	open_range(0, cfg.n, cfg.conc, deadline);
	secs = (double)((t_last_open > t0 ? t_last_open : now_ns()) - t0) / 1e9;
	c1 = pidlist_cpu_s(&cfg.cpu_pids);
	l1 = self_cpu_s();
	hold_for(cfg.hold);
	rss1 = pidlist_rss_kb(&cfg.rss_pids);
	samples_sort(&hs_lat);
	print_common("idle", secs, c1 - c0, 0, l1 - l0, opened - base_open);
	printf(" conns=%ld failed=%ld closed=%ld rss_before_kb=%ld rss_after_kb=%ld"
	       " rss_per_conn_b=%.0f p50_us=%.0f p99_us=%.0f nofile=%ld\n",
	       opened - base_open, failed, closed_by_peer, rss0, rss1,
	       opened > base_open ? (double)(rss1 - rss0) * 1024.0 / (double)(opened - base_open) : 0,
	       samples_pct_us(&hs_lat, 50), samples_pct_us(&hs_lat, 99), raise_nofile());
	return failed ? 1 : 0;
}

static int run_roundtrip(void)
{
	uint64_t deadline = now_ns() + (uint64_t)(cfg.timeout * 1e9), t_end;
	double c0, c1, a0, a1, l0, l1, secs;

	open_range(0, cfg.conc, cfg.conc < cfg.hs ? cfg.conc : cfg.hs, deadline);
	for (long i = 0; i < cfg.conc; i++)
		if (conns[i].state == ST_OPEN)
			rt_send(&conns[i]);
	hold_for(cfg.warmup);
	c0 = pidlist_cpu_s(&cfg.cpu_pids);
	a0 = pidlist_cpu_s(&cfg.aux_pids);
	l0 = self_cpu_s();
	t_measure0 = now_ns();
	measuring = 1;
	t_end = t_measure0 + (uint64_t)(cfg.duration * 1e9);
	while (now_ns() < t_end)
		poll_once(10);
	t_measure1 = now_ns();
	c1 = pidlist_cpu_s(&cfg.cpu_pids);
	a1 = pidlist_cpu_s(&cfg.aux_pids);
	l1 = self_cpu_s();
	measuring = 0;
	stopping = 1;
	secs = (double)(t_measure1 - t_measure0) / 1e9;
	samples_sort(&lat);
	print_common("roundtrip", secs, c1 - c0, a1 - a0, l1 - l0, ops);
	printf(" conns=%ld failed=%ld closed=%ld size=%ld p50_us=%.0f p99_us=%.0f\n", opened,
	       failed, closed_by_peer, cfg.size, samples_pct_us(&lat, 50),
	       samples_pct_us(&lat, 99));
	return (failed || closed_by_peer) ? 1 : 0;
}

/* ---- post: blocking HTTP/1.1 keep-alive posters in threads ---- */

static char **ids;
static long nids;
static atomic_long posts_ok, posts_err, reconnects;
static atomic_int posters_stop, err_reported;

static int tcp_connect_addr(const char *addr)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd, one = 1;

	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return -1;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = 0;
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

typedef struct {
	char *buf;
	size_t len, cap;
} rbuf_t;

/* Reads one HTTP response (Content-Length or chunked; keeps what follows).
 * Returns the status, -1 on error; the body is left in body and blen. */
static int http_read_response(int fd, rbuf_t *rb, char **body, size_t *blen, int *conn_close)
{
	size_t hl = 0, need = 0;
	int status = -1, chunked = 0;

	*conn_close = 0;
	for (;;) {
		char *end;

		if (!hl && (end = memmem(rb->buf, rb->len, "\r\n\r\n", 4))) {
			char *cl, save;

			hl = (size_t)(end - rb->buf) + 4;
			save = rb->buf[hl - 1];
			rb->buf[hl - 1] = 0;
			status = rb->len > 12 ? atoi(rb->buf + 9) : -1;
			cl = strcasestr(rb->buf, "\r\nContent-Length:");
			chunked = strcasestr(rb->buf, "\r\nTransfer-Encoding: chunked") != NULL;
			need = cl ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
			*conn_close = strcasestr(rb->buf, "\r\nConnection: close") != NULL;
			rb->buf[hl - 1] = save;
		}
		if (hl && !chunked && rb->len >= hl + need) {
			*body = rb->buf + hl;
			*blen = need; /* the caller consumes it with rbuf_consume */
			return status;
		}
		if (hl && chunked) {
			char *z = memmem(rb->buf + hl, rb->len - hl, "0\r\n\r\n", 5);

			if (z) {
				*body = rb->buf + hl;
				*blen = (size_t)(z + 5 - (rb->buf + hl));
				return status;
			}
		}
		if (rb->cap - rb->len < 4096) {
			rb->cap = rb->cap ? rb->cap * 2 : 16384;
			rb->buf = xrealloc(rb->buf, rb->cap);
		}
		{
			ssize_t r = recv(fd, rb->buf + rb->len, rb->cap - rb->len - 1, 0);

			if (r <= 0) {
				if (r < 0 && errno == EINTR)
					continue;
				return -1;
			}
			rb->len += (size_t)r;
			rb->buf[rb->len] = 0;
		}
	}
}

static void rbuf_consume(rbuf_t *rb, char *body, size_t blen)
{
	size_t used = (size_t)(body + blen - rb->buf);

	memmove(rb->buf, rb->buf + used, rb->len - used);
	rb->len -= used;
}

/* One request on a fresh connection; for the backend's /ids and /reset. */
static int http_simple(const char *addr, const char *method, const char *path,
		       char **out, size_t *outlen)
{
	int fd = tcp_connect_addr(addr), st, cc;
	char req[256], *body;
	size_t blen;
	rbuf_t rb = { 0 };

	if (fd < 0)
		return -1;
	snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n",
		 method, path, addr);
	if (write_all(fd, req, strlen(req))) {
		close(fd);
		return -1;
	}
	st = http_read_response(fd, &rb, &body, &blen, &cc);
	if (st > 0 && out) {
		*out = xrealloc(NULL, blen + 1);
		memcpy(*out, body, blen);
		(*out)[blen] = 0;
		*outlen = blen;
	}
	free(rb.buf);
	close(fd);
	return st;
}

static void *poster(void *arg)
{
	long me = (long)arg, k = me;
	int fd = tcp_connect_addr(cfg.mgmt_addr);
	char *req = xrealloc(NULL, (size_t)cfg.size + 1024), *msg = xrealloc(NULL, (size_t)cfg.size + 64);
	rbuf_t rb = { 0 };

	while (!posters_stop) {
		const char *id = ids[k % nids];
		int n, m, st, cc;
		char *body;
		size_t blen;

		k += cfg.posters;
		if (fd < 0) {
			posts_err++;
			usleep(1000);
			fd = tcp_connect_addr(cfg.mgmt_addr);
			rb.len = 0;
			continue;
		}
		m = snprintf(msg, 32, "%llu ", (unsigned long long)now_ns());
		while (m < cfg.size)
			msg[m++] = 'x';
		msg[m] = 0;
		if (cfg.pushpin) {
			char *json = xrealloc(NULL, (size_t)m + 256);
			int jl = snprintf(json, (size_t)m + 256,
					  "{\"items\":[{\"channel\":\"%s\",\"formats\":{\"ws-message\":"
					  "{\"content\":\"%s\"}}}]}", id, msg);

			n = snprintf(req, (size_t)cfg.size + 1024,
				     "POST /publish/ HTTP/1.1\r\nHost: %s\r\n"
				     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
				     cfg.mgmt_addr, jl);
			if (write_all(fd, req, (size_t)n) || write_all(fd, json, (size_t)jl)) {
				free(json);
				close(fd);
				fd = -1;
				posts_err++;
				continue;
			}
			free(json);
		} else {
			n = snprintf(req, (size_t)cfg.size + 1024,
				     "POST %s%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\n"
				     "Content-Length: %d\r\n\r\n%s",
				     cfg.post_prefix, id, cfg.mgmt_addr, m, msg);
			if (write_all(fd, req, (size_t)n)) {
				close(fd);
				fd = -1;
				posts_err++;
				continue;
			}
		}
		st = http_read_response(fd, &rb, &body, &blen, &cc);
		if (st < 0) {
			close(fd);
			fd = -1;
			rb.len = 0;
			posts_err++;
			continue;
		}
		rbuf_consume(&rb, body, blen);
		if (cc) { /* Pushpin's publish endpoint closes after each request */
			close(fd);
			fd = tcp_connect_addr(cfg.mgmt_addr);
			rb.len = 0;
			reconnects++;
		}
		if (st >= 200 && st < 300) {
			posts_ok++;
		} else {
			posts_err++;
			if (!atomic_exchange(&err_reported, 1))
				fprintf(stderr, "wsload: post answered %d: %.*s\n", st,
					(int)(blen < 200 ? blen : 200), body);
		}
	}
	if (fd >= 0)
		close(fd);
	free(req);
	free(msg);
	free(rb.buf);
	return NULL;
}

static int run_post(void)
{
	uint64_t deadline = now_ns() + (uint64_t)(cfg.timeout * 1e9);
	double c0, c1, a0, a1, l0, l1, secs;
	char *list = NULL;
	size_t ll = 0;
	pthread_t th[64];

	if (!cfg.ids_addr || !cfg.mgmt_addr) {
		fprintf(stderr, "post needs --ids HOST:PORT and --mgmt HOST:PORT\n");
		return 2;
	}
	if (http_simple(cfg.ids_addr, "POST", "/reset", NULL, NULL) != 200) {
		fprintf(stderr, "cannot reset ids at %s\n", cfg.ids_addr);
		return 2;
	}
	open_range(0, cfg.conc, cfg.conc < cfg.hs ? cfg.conc : cfg.hs, deadline);
	/* the backend sees CONNECT/OPEN before the client sees 101, but allow
	 * for a lag; wait until it knows every open connection */
	for (int tries = 0; tries < 100; tries++) {
		free(list);
		list = NULL;
		nids = 0;
		if (http_simple(cfg.ids_addr, "GET", "/ids", &list, &ll) == 200)
			for (size_t i = 0; i < ll; i++)
				nids += list[i] == '\n';
		if (nids >= opened)
			break;
		hold_for(0.05);
	}
	if (!nids) {
		fprintf(stderr, "backend at %s knows no connection ids\n", cfg.ids_addr);
		return 2;
	}
	ids = xrealloc(NULL, sizeof(char *) * (size_t)nids);
	{
		long k = 0;
		char *save = NULL;

		for (char *t = strtok_r(list, "\n", &save); t && k < nids; t = strtok_r(NULL, "\n", &save))
			ids[k++] = t;
		nids = k;
	}
	hold_for(0.2);
	c0 = pidlist_cpu_s(&cfg.cpu_pids);
	a0 = pidlist_cpu_s(&cfg.aux_pids);
	l0 = self_cpu_s();
	t_measure0 = now_ns();
	t_measure1 = t_measure0 + (uint64_t)(cfg.duration * 1e9);
	measuring = 1;
	if (cfg.posters > 64)
		cfg.posters = 64;
	for (long i = 0; i < cfg.posters; i++)
		pthread_create(&th[i], NULL, poster, (void *)i);
	while (now_ns() < t_measure1)
		poll_once(10);
	posters_stop = 1;
	/* deliveries of posts sent in the window may still be on the way */
	hold_for(0.5);
	c1 = pidlist_cpu_s(&cfg.cpu_pids);
	a1 = pidlist_cpu_s(&cfg.aux_pids);
	l1 = self_cpu_s();
	measuring = 0;
	for (long i = 0; i < cfg.posters; i++)
		pthread_join(th[i], NULL);
	secs = (double)(t_measure1 - t_measure0) / 1e9;
	samples_sort(&lat);
	print_common("post", secs, c1 - c0, a1 - a0, l1 - l0, ops);
	printf(" conns=%ld ids=%ld posters=%d posts_ok=%ld posts_err=%ld reconnects=%ld posts_per_s=%.1f"
	       " delivered=%ld size=%ld p50_us=%.0f p99_us=%.0f\n",
	       opened, nids, cfg.posters, (long)posts_ok, (long)posts_err, (long)reconnects,
	       (double)posts_ok / secs, ops, cfg.size, samples_pct_us(&lat, 50),
	       samples_pct_us(&lat, 99));
	free(list);
	free(ids);
	return posts_err ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: wsload connect|idle|roundtrip|post|fanout [options]\n"
		"  --host H --port P --path /   target (loopback)\n"
		"  -n N        connections (connect, idle)\n"
		"  -c C        connections (roundtrip, post); handshakes in flight (connect, idle)\n"
		"  -s S        message size in bytes (roundtrip, post)\n"
		"  -d D        seconds measured (roundtrip, post)\n"
		"  --warmup W  seconds before measuring (roundtrip)\n"
		"  --timeout T bound on the connect phase, seconds\n"
		"  --close     connect: close each connection once open\n"
		"  --src-ips K spread source addresses over 127.0.0.1..K (more than 28k conns)\n"
		"  --warm W    idle: connections opened before the baseline RSS (default 20)\n"
		"  --hold H    idle: seconds to hold before the second RSS sample\n"
		"  --pid P[,P] RSS of these processes before/after (idle)\n"
		"  --cpu-pid P[,P]  CPU of the target, per operation\n"
		"  --aux-pid P[,P]  CPU of another process (the backend), per operation\n"
		"  --label L   target name printed in the result line\n"
		"  --ids H:P   backend serving GET /ids and POST /reset (post)\n"
		"  --mgmt H:P  management API (post)\n"
		"  --prefix X  post path prefix (default /dev/@connections/)\n"
		"  --posters K poster threads, one keep-alive connection each (default 4)\n"
		"  --hs H      handshakes in flight while opening (roundtrip, post; default 256)\n"
		"  --pushpin   post through Pushpin's publish endpoint (channel = id;\n"
		"              fanout: channel --channel, members subscribed on OPEN)\n"
		"  --rounds R  fanout: publishes, one at a time (default 50)\n"
		"  --channel N fanout: channel name (default bench)\n"
		"  --stage S   fanout: path prefix of the management calls (default /dev)\n");
	exit(2);
}

/* ---- fanout: one publish to a channel of C members, R times ---- */

static long fan_round = -1, fan_got, fan_members, fan_late;
static uint64_t fan_t_last;

/* Each message starts with "<round> ": counted for the round in progress. */
static void on_fanout_message(const unsigned char *p, size_t n, uint64_t t)
{
	char tmp[24];
	size_t k = n < sizeof(tmp) - 1 ? n : sizeof(tmp) - 1;

	memcpy(tmp, p, k);
	tmp[k] = 0;
	if (strtol(tmp, NULL, 10) != fan_round) {
		fan_late++;
		return;
	}
	fan_got++;
	fan_t_last = t;
}

/* One request with a body on a new connection: the status, the answer's
 * body in out (NUL-terminated, at most outsz - 1 bytes). */
static int http_req(const char *addr, const char *method, const char *path, const char *body,
		    size_t blen, char *out, size_t outsz)
{
	int fd = tcp_connect_addr(addr), st, cc, n;
	char *req = xrealloc(NULL, blen + 1024), *b;
	size_t bl;
	rbuf_t rb = { 0 };

	if (fd < 0) {
		free(req);
		return -1;
	}
	/* One write: head and body apart would meet Nagle and delayed ACKs. */
	n = snprintf(req, 1024, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %zu\r\n\r\n",
		     method, path, addr, blen);
	memcpy(req + n, body, blen);
	if (write_all(fd, req, (size_t)n + blen)) {
		free(req);
		close(fd);
		return -1;
	}
	free(req);
	st = http_read_response(fd, &rb, &b, &bl, &cc);
	if (st > 0 && out) {
		bl = bl < outsz - 1 ? bl : outsz - 1;
		memcpy(out, b, bl);
		out[bl] = 0;
	}
	free(rb.buf);
	close(fd);
	return st;
}

static int fetch_ids(char **list)
{
	size_t ll = 0;

	for (int tries = 0; tries < 100; tries++) {
		free(*list);
		*list = NULL;
		nids = 0;
		if (http_simple(cfg.ids_addr, "GET", "/ids", list, &ll) == 200)
			for (size_t i = 0; i < ll; i++)
				nids += (*list)[i] == '\n';
		if (nids >= opened)
			break;
		hold_for(0.05);
	}
	if (!nids)
		return -1;
	ids = xrealloc(NULL, sizeof(char *) * (size_t)nids);
	{
		long k = 0;
		char *save = NULL;

		for (char *t = strtok_r(*list, "\n", &save); t && k < nids; t = strtok_r(NULL, "\n", &save))
			ids[k++] = t;
		nids = k;
	}
	return 0;
}

/* A publish on the keep-alive connection *fd (opened, or again after the
 * server closed it): the status, the answer's body in out. */
static int publish_keepalive(int *fd, rbuf_t *rb, const char *path, const char *body,
			     size_t blen, char *out, size_t outsz)
{
	char *req = xrealloc(NULL, blen + 1024), *b;
	size_t bl;
	int n, st, cc;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (*fd < 0) {
			*fd = tcp_connect_addr(cfg.mgmt_addr);
			rb->len = 0;
		}
		if (*fd < 0)
			break;
		n = snprintf(req, 1024, "POST %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %zu\r\n\r\n",
			     path, cfg.mgmt_addr,
			     cfg.pushpin ? "Content-Type: application/json\r\n" : "", blen);
		memcpy(req + n, body, blen);
		if (!write_all(*fd, req, (size_t)n + blen) &&
		    (st = http_read_response(*fd, rb, &b, &bl, &cc)) > 0) {
			size_t k = bl < outsz - 1 ? bl : outsz - 1;

			memcpy(out, b, k);
			out[k] = 0;
			rbuf_consume(rb, b, bl);
			if (cc) {
				close(*fd);
				*fd = -1;
			}
			free(req);
			return st;
		}
		close(*fd);
		*fd = -1;
	}
	free(req);
	return -1;
}

static int fan_joined_all(long joined)
{
	return joined >= nids;
}

/* Pushpin: the publish body for message msg (plain text, no escaping
 * needed) to channel cfg.channel, in buf (at least m + 256 bytes). */
static int pushpin_body(char *buf, size_t cap, const char *msg, int m)
{
	return snprintf(buf, cap, "{\"items\":[{\"channel\":\"%s\",\"formats\":{\"ws-message\":"
			"{\"content\":\"%.*s\"}}}]}", cfg.channel, m, msg);
}

/* Pushpin has no member count: a subscription exists once the proxy has
 * read the origin's answer to OPEN. Probe publishes (rounds from 1000000)
 * until one reaches every member, so that the measured rounds start with
 * the whole channel. */
static int pushpin_wait_members(int *fd, rbuf_t *rb, uint64_t deadline)
{
	char body[512], out[256];

	for (long k = 0; now_ns() < deadline; k++) {
		int m = snprintf(out, sizeof(out), "%ld probe", 1000000 + k), bl;
		uint64_t until;

		bl = pushpin_body(body, sizeof(body), out, m);
		fan_round = 1000000 + k;
		fan_got = 0;
		if (publish_keepalive(fd, rb, "/publish/", body, (size_t)bl, out, sizeof(out)) != 200)
			return -1;
		until = now_ns() + 2000000000ull;
		while (fan_got < fan_members && now_ns() < until)
			poll_once(5);
		if (fan_got >= fan_members)
			return 0;
		hold_for(0.2);
	}
	return -1;
}

static int run_fanout(void)
{
	uint64_t deadline = now_ns() + (uint64_t)(cfg.timeout * 1e9), t_join;
	samples_t last = { 0 }, answer = { 0 };
	double c0, c1, l0, l1, busy = 0;
	char *list = NULL, path[512], out[256], *msg, *pbody;
	long joined = 0, lost = 0, deliveries = 0, queued = 0, skipped = 0;
	int pub_fd = -1;
	rbuf_t pub_rb = { 0 };

	if (!cfg.ids_addr || !cfg.mgmt_addr) {
		fprintf(stderr, "fanout needs --ids HOST:PORT and --mgmt HOST:PORT\n");
		return 2;
	}
	if (http_simple(cfg.ids_addr, "POST", "/reset", NULL, NULL) != 200) {
		fprintf(stderr, "cannot reset ids at %s\n", cfg.ids_addr);
		return 2;
	}
	open_range(0, cfg.conc, cfg.conc < cfg.hs ? cfg.conc : cfg.hs, deadline);
	if (fetch_ids(&list)) {
		fprintf(stderr, "backend at %s knows no connection ids\n", cfg.ids_addr);
		return 2;
	}
	t_join = now_ns();
	if (cfg.pushpin) {
		fan_members = joined = nids;
		if (pushpin_wait_members(&pub_fd, &pub_rb, deadline))
			fprintf(stderr, "wsload: not every member got a probe publish in time\n");
	}
	/* Members that joined from $connect's answer (fastbackend --subscribe)
	 * need no PUT. */
	snprintf(path, sizeof(path), "%s/@channels/%s", cfg.stage_prefix, cfg.channel);
	if (!cfg.pushpin && http_req(cfg.mgmt_addr, "GET", path, NULL, 0, out, sizeof(out)) == 200 &&
	    strstr(out, "\"members\":"))
		joined = atol(strstr(out, "\"members\":") + 10);
	if (joined < nids)
		joined = 0; /* PUT is idempotent: every one again */
	for (long i = 0; i < nids && !cfg.pushpin && !fan_joined_all(joined); i++) {
		snprintf(path, sizeof(path), "%s/@connections/%s/channels/%s", cfg.stage_prefix,
			 ids[i], cfg.channel);
		joined += http_req(cfg.mgmt_addr, "PUT", path, NULL, 0, NULL, 0) == 204;
		if (!(i & 255))
			poll_once(0);
	}
	t_join = now_ns() - t_join;
	fan_members = joined;
	hold_for(0.2);
	msg = xrealloc(NULL, (size_t)cfg.size + 64);
	pbody = xrealloc(NULL, (size_t)cfg.size + 320); /* Pushpin: msg in a JSON item */
	snprintf(path, sizeof(path), "%s/@channels/%s", cfg.stage_prefix, cfg.channel);
	if (cfg.pushpin)
		snprintf(path, sizeof(path), "/publish/");
	c0 = pidlist_cpu_s(&cfg.cpu_pids);
	l0 = self_cpu_s();
	for (long r = 0; r < cfg.rounds; r++) {
		int m = snprintf(msg, 32, "%ld ", r), st;
		uint64_t t0, t_ans, until;

		while (m < cfg.size)
			msg[m++] = 'x';
		if (cfg.pushpin) /* the text in a JSON item, built before the clock starts */
			m = pushpin_body(pbody, (size_t)cfg.size + 320, msg, m);
		fan_round = r;
		fan_got = 0;
		t0 = now_ns();
		/* One keep-alive connection for every publish, as a backend's
		 * HTTP client (the AWS SDK's) keeps one. */
		st = publish_keepalive(&pub_fd, &pub_rb, path, cfg.pushpin ? pbody : msg,
				       (size_t)m, out, sizeof(out));
		t_ans = now_ns();
		if (st != 200) {
			fprintf(stderr, "wsload: publish answered %d: %s\n", st, out);
			break;
		}
		{
			const char *q = strstr(out, "\"queued\":"), *k = strstr(out, "\"skipped\":");

			queued += q ? atol(q + 9) : 0;
			skipped += k ? atol(k + 10) : 0;
		}
		samples_add(&answer, t_ans - t0);
		until = t0 + 5000000000ull;
		while (fan_got < fan_members && now_ns() < until)
			poll_once(5);
		deliveries += fan_got;
		if (fan_got < fan_members) {
			lost += fan_members - fan_got;
			continue;
		}
		samples_add(&last, fan_t_last - t0);
		busy += (double)(fan_t_last - t0) / 1e9;
		hold_for(0.02); /* a pause between publishes */
	}
	c1 = pidlist_cpu_s(&cfg.cpu_pids);
	l1 = self_cpu_s();
	samples_sort(&last);
	samples_sort(&answer);
	print_common("fanout", busy, c1 - c0, 0, l1 - l0, deliveries);
	printf(" conns=%ld members=%ld join_s=%.2f rounds=%ld deliveries=%ld lost=%ld late=%ld"
	       " queued=%ld skipped=%ld p50_us=%.0f p99_us=%.0f answer_p50_us=%.0f"
	       " answer_p99_us=%.0f\n", opened, fan_members, (double)t_join / 1e9, cfg.rounds,
	       deliveries, lost, fan_late, queued, skipped, samples_pct_us(&last, 50),
	       samples_pct_us(&last, 99), samples_pct_us(&answer, 50), samples_pct_us(&answer, 99));
	if (pub_fd >= 0)
		close(pub_fd);
	free(pub_rb.buf);
	free(msg);
	free(pbody);
	free(list);
	free(ids);
	return lost ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "host", 1, 0, 'H' }, { "port", 1, 0, 'p' }, { "path", 1, 0, 'P' },
		{ "warmup", 1, 0, 'w' }, { "timeout", 1, 0, 't' }, { "close", 0, 0, 'x' },
		{ "src-ips", 1, 0, 'i' }, { "warm", 1, 0, 'W' }, { "hold", 1, 0, 'h' },
		{ "pid", 1, 0, 'r' }, { "cpu-pid", 1, 0, 'u' }, { "aux-pid", 1, 0, 'a' },
		{ "label", 1, 0, 'l' }, { "ids", 1, 0, 'I' }, { "mgmt", 1, 0, 'm' },
		{ "prefix", 1, 0, 'X' }, { "posters", 1, 0, 'k' }, { "pushpin", 0, 0, 'q' }, { "hs", 1, 0, 'e' },
		{ "rounds", 1, 0, 'R' }, { "channel", 1, 0, 'C' }, { "stage", 1, 0, 'S' },
		{ 0, 0, 0, 0 }
	};
	const char *m;
	int o, rc;

	if (argc < 2)
		usage();
	m = argv[1];
	if (!strcmp(m, "connect"))
		cfg.mode = M_CONNECT;
	else if (!strcmp(m, "idle"))
		cfg.mode = M_IDLE;
	else if (!strcmp(m, "roundtrip"))
		cfg.mode = M_ROUNDTRIP;
	else if (!strcmp(m, "post"))
		cfg.mode = M_POST;
	else if (!strcmp(m, "fanout"))
		cfg.mode = M_FANOUT;
	else
		usage();
	optind = 2;
	while ((o = getopt_long(argc, argv, "n:c:s:d:", lo, NULL)) != -1) {
		switch (o) {
		case 'H': cfg.host = optarg; break;
		case 'p': cfg.port = atoi(optarg); break;
		case 'P': cfg.path = optarg; break;
		case 'n': cfg.n = atol(optarg); break;
		case 'c': cfg.conc = atol(optarg); break;
		case 's': cfg.size = atol(optarg); break;
		case 'd': cfg.duration = atof(optarg); break;
		case 'w': cfg.warmup = atof(optarg); break;
		case 't': cfg.timeout = atof(optarg); break;
		case 'x': cfg.close_after = 1; break;
		case 'i': cfg.src_ips = atoi(optarg); break;
		case 'W': cfg.warm = atol(optarg); break;
		case 'h': cfg.hold = atof(optarg); break;
		case 'r': pidlist_parse(&cfg.rss_pids, optarg); break;
		case 'u': pidlist_parse(&cfg.cpu_pids, optarg); break;
		case 'a': pidlist_parse(&cfg.aux_pids, optarg); break;
		case 'l': cfg.label = optarg; break;
		case 'I': cfg.ids_addr = optarg; break;
		case 'm': cfg.mgmt_addr = optarg; break;
		case 'X': cfg.post_prefix = optarg; break;
		case 'k': cfg.posters = atoi(optarg); break;
		case 'q': cfg.pushpin = 1; break;
		case 'e': cfg.hs = atol(optarg) > 0 ? atol(optarg) : 1; break;
		case 'R': cfg.rounds = atol(optarg); break;
		case 'C': cfg.channel = optarg; break;
		case 'S': cfg.stage_prefix = optarg; break;
		default: usage();
		}
	}
	if (cfg.n < 0 || cfg.conc < 1 || cfg.size < 1 || cfg.duration <= 0 || cfg.posters < 1)
		usage();
	if (cfg.mode == M_POST && cfg.size < 24)
		cfg.size = 24; /* room for the timestamp */
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	rng ^= now_ns() ^ ((uint64_t)getpid() << 32);
	target.sin_family = AF_INET;
	target.sin_port = htons((uint16_t)cfg.port);
	if (inet_pton(AF_INET, cfg.host, &target.sin_addr) != 1) {
		fprintf(stderr, "host must be an IPv4 address\n");
		return 2;
	}
	payload = xrealloc(NULL, (size_t)cfg.size);
	for (long i = 0; i < cfg.size; i++)
		payload[i] = (unsigned char)('a' + i % 26);
	nconns = (cfg.mode == M_CONNECT || cfg.mode == M_IDLE) ? cfg.n + cfg.warm : cfg.conc;
	conns = calloc((size_t)nconns + 1, sizeof(*conns));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || ep < 0)
		return 2;
	progress_init(&prog);
	switch (cfg.mode) {
	case M_CONNECT: rc = run_connect(); break;
	case M_IDLE: rc = run_idle(); break;
	case M_ROUNDTRIP: rc = run_roundtrip(); break;
	case M_FANOUT: rc = run_fanout(); break;
	default: rc = run_post(); break;
	}
	progress_end(&prog);
	fflush(stdout);
	/* connections are dropped by exit; the kernel closes them */
	return rc;
}
