/* Integration HTTP client (see backend.h).
 *
 * A call is queued on its endpoint; an idle keep-alive connection takes it,
 * or a new one is opened while the endpoint is under max_connections. A
 * call never waits on a dead backend for longer than its timeout. An idle
 * connection is checked before it is reused (a server that closed it has
 * left an end of stream to peek at), which is how traffic resumes by itself
 * after a backend restart; a reused connection that fails before answering
 * is retried once on a fresh one only when the request was not written
 * whole, or is idempotent: a POST the backend may have read is never sent
 * twice (an event delivered twice is worse than a 500, as nginx judges). Each call and connection has
 * one owner: calls belong to the backend's list until delivered; a
 * connection belongs to its endpoint.
 *
 * A finished call is not delivered where it finished (inside a socket
 * handler, an expiry, gw_backend_call): it goes on the backend's done list,
 * which a loop task drains at the next safe point (loop.h), after the
 * batch. Its response parser moves into the call, so the connection can
 * be reused before the callback reads the answer. */
#include "backend.h"
#include "core.h"
#include "httpresp.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>


#define MAX_RESPONSE_BYTES (10u << 20)
#define LOG_BURST 20 /* failed-call lines a second */

typedef struct hconn hconn_t;

/* Calls of one timeout value, oldest first: their deadlines are in order,
 * so expiring them means looking at the heads only. Each queue is its own
 * allocation that never moves and lives as long as the backend: an expiry
 * callback may start a call with a timeout not seen yet, which adds a queue
 * while on_tick walks them. */
struct timeout_queue {
	lws_dll2_t list; /* be->tqs */
	unsigned timeout_ms;
	lws_dll2_owner_t calls;
};

#define TICK_MS 10

struct gw_backend {
	gw_worker_t *gw;
	/* Call timeouts: one coarse tick for all calls, instead of a timer
	 * each (libwebsockets keeps timers in one sorted list: inserting one
	 * per call would cost a walk over every connection's timers). */
	lws_dll2_owner_t tqs; /* struct timeout_queue */
	lws_sorted_usec_list_t tick;
	int tick_armed;
	gw_endpoint_t **by_index; /* for cfg's integrations */
	unsigned n_index;
	gw_config_t *cfg; /* a reference */
	lws_dll2_owner_t endpoints;
	lws_dll2_owner_t calls;
	lws_dll2_owner_t done; /* finished, not yet delivered, oldest first */
	int draining;
	/* libwebsockets runs its timers before it polls: a call finished by
	 * one (an expiry, a MOCK call started from another module's timer)
	 * would wait for the next event. This timer ends that wait. */
	lws_sorted_usec_list_t kick;
	int kick_armed;
	int in_io; /* depth of the backend's own handlers (I/O, expiry) */
	/* After a reload, until no older snapshot binds a pool (see sweep). */
	lws_sorted_usec_list_t sweep;
};

struct gw_endpoint {
	lws_dll2_t list;
	gw_backend_t *be;
	char *host, *address, *ca_file;
	int port, tls;
	unsigned max_connections, max_queue;
	SSL_CTX *ssl_ctx;
	lws_dll2_owner_t idle;  /* hconn_t */
	lws_dll2_owner_t queue; /* gw_call_t waiting for a connection */
	lws_dll2_owner_t conns; /* every hconn_t */
	/* Response parsers given back by delivered calls, for reuse. */
	gw_resp_t **spare;
	unsigned n_spare, cap_spare;
	unsigned bound; /* sweep: bindings of live snapshots */
};

struct hconn {
	gw_watch_t watch; /* first: epoll hands back &watch */
	gw_endpoint_t *ep;
	lws_dll2_t list;      /* ep->conns */
	lws_dll2_t idle_list; /* ep->idle */
	SSL *ssl;
	int connecting, handshaking, reused;
	uint32_t events;
	gw_call_t *call;
	size_t wr_off;
	size_t got; /* response bytes read for the current call */
	gw_resp_t *resp;
};

struct gw_call {
	lws_dll2_t list;  /* be->calls */
	lws_dll2_t qlist; /* ep->queue, then be->done once finished */
	lws_dll2_t tlist; /* a timeout queue */
	uint64_t deadline; /* epoch ms */
	gw_backend_t *be;
	gw_endpoint_t *ep;
	hconn_t *hc;
	gw_call_cb cb;
	void *user;
	char *req;
	size_t req_len;
	gw_buf_t req_body; /* sent after req, when given separately */
	int cancelled, finished, retried;
	int wrote; /* a byte of the request reached a socket */
	/* the outcome, from finish() to delivery */
	enum gw_call_outcome outcome;
	const char *error;
	gw_resp_t *resp; /* the parsed answer, when OK from a backend */
	/* local (MOCK) answer */
	int status;
	gw_buf_t body;
	char request_id[24];
	uint64_t started_us; /* metrics: integration latency */
};

static void finish(gw_call_t *c, enum gw_call_outcome o, const char *error,
		   gw_resp_t **resp);
static void arm_kick(gw_backend_t *be);
static void dispatch(gw_endpoint_t *ep);
static void hconn_close(hconn_t *hc);

/* --- connections -------------------------------------------------------- */

static void set_events(hconn_t *hc, uint32_t want)
{
	if (hc->events == want)
		return;
	gw_loop_mod(hc->ep->be->gw->loop, &hc->watch, want);
	hc->events = want;
}

/* Closes now, frees after the epoll batch (safe points, core.h): a later
 * event of the same batch may still name this connection. */
static void hconn_close(hconn_t *hc)
{
	gw_worker_t *gw = hc->ep->be->gw;

	if (hc->watch.fd < 0)
		return;
	if (hc->call)
		hc->call->hc = NULL;
	hc->call = NULL;
	if (hc->ssl) {
		SSL_free(hc->ssl);
		hc->ssl = NULL;
		ERR_clear_error();
	}
	gw_watch_close(gw, &hc->watch);
	gw_resp_destroy(hc->resp);
	hc->resp = NULL;
	if (!lws_dll2_is_detached(&hc->idle_list))
		lws_dll2_remove(&hc->idle_list);
	lws_dll2_remove(&hc->list);
	gw_defer_free(gw, free, hc);
}

static void hconn_on_io(gw_watch_t *w, uint32_t events);

static hconn_t *hconn_open(gw_endpoint_t *ep, const char **error)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	hconn_t *hc;
	int fd, one = 1;

	memset(&sa, 0, sizeof(sa));
	if (strchr(ep->address, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)ep->port);
		inet_pton(AF_INET6, ep->address, &s6->sin6_addr);
		salen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)ep->port);
		inet_pton(AF_INET, ep->address, &s4->sin_addr);
		salen = sizeof(*s4);
	}
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error = "cannot create a socket";
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, salen) && errno != EINPROGRESS) {
		*error = errno == ECONNREFUSED ? "connection refused" : "cannot connect";
		close(fd);
		return NULL;
	}
	hc = calloc(1, sizeof(*hc));
	if (!hc)
		abort();
	hc->watch.cb = hconn_on_io;
	hc->watch.fd = fd;
	hc->ep = ep;
	hc->connecting = 1;
	if (ep->tls) {
		hc->ssl = SSL_new(ep->ssl_ctx);
		if (!hc->ssl || SSL_set_fd(hc->ssl, fd) != 1 ||
		    SSL_set_tlsext_host_name(hc->ssl, ep->host) != 1 ||
		    SSL_set1_host(hc->ssl, ep->host) != 1) {
			*error = "cannot set up TLS";
			if (hc->ssl)
				SSL_free(hc->ssl);
			close(fd);
			free(hc);
			return NULL;
		}
		SSL_set_connect_state(hc->ssl);
	}
	hc->events = EPOLLOUT;
	if (gw_loop_add(ep->be->gw->loop, &hc->watch, hc->events)) {
		*error = "cannot watch the socket";
		if (hc->ssl)
			SSL_free(hc->ssl);
		close(fd);
		free(hc);
		return NULL;
	}
	lws_dll2_add_tail(&hc->list, &ep->conns);
	return hc;
}

static void assign(hconn_t *hc, gw_call_t *c)
{
	gw_endpoint_t *ep = hc->ep;

	hc->call = c;
	c->hc = hc;
	hc->wr_off = 0;
	hc->got = 0;
	/* The last call took the connection's parser with its answer. */
	if (!hc->resp)
		hc->resp = ep->n_spare ? ep->spare[--ep->n_spare]
				       : gw_resp_create(MAX_RESPONSE_BYTES);
	gw_resp_reset(hc->resp);
	/* An answer to HEAD has no body, whatever its Content-Length says. */
	gw_resp_set_head(hc->resp, c->req_len >= 5 && !memcmp(c->req, "HEAD ", 5));
}

static int idempotent(const gw_call_t *c)
{
	static const char *const methods[] = { "GET ", "HEAD ", "PUT ", "DELETE ", "OPTIONS " };

	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		size_t n = strlen(methods[i]);

		if (c->req_len >= n && !memcmp(c->req, methods[i], n))
			return 1;
	}
	return 0;
}

/* The connection failed while c was on it. A reused connection that had
 * not answered anything was most likely closed by the server while idle:
 * try once more on a fresh one, unless the server may have acted on it. */
static void hconn_failed(hconn_t *hc, const char *error)
{
	gw_call_t *c = hc->call;
	gw_endpoint_t *ep = hc->ep;
	int retry = c && hc->reused && !hc->got && !c->retried &&
		    (hc->wr_off < c->req_len + c->req_body.len || idempotent(c));

	hconn_close(hc);
	if (!c)
		return;
	if (retry) {
		const char *e2 = NULL;
		hconn_t *fresh;

		c->retried = 1;
		fresh = hconn_open(ep, &e2);
		if (fresh) {
			assign(fresh, c);
			return;
		}
		error = e2;
	}
	finish(c, GW_CALL_FAILED, error, NULL);
	dispatch(ep);
}

static int do_write(hconn_t *hc)
{
	gw_call_t *c = hc->call;
	size_t total = c->req_len + c->req_body.len;

	while (hc->wr_off < total) {
		const char *p;
		size_t left;
		ssize_t n;

		if (hc->wr_off < c->req_len) {
			p = c->req + hc->wr_off;
			left = c->req_len - hc->wr_off;
		} else {
			p = c->req_body.data + (hc->wr_off - c->req_len);
			left = total - hc->wr_off;
		}
		if (hc->ssl) {
			int k = SSL_write(hc->ssl, p, (int)(left > (1u << 30) ? 1u << 30 : left));
			if (k <= 0) {
				int e = SSL_get_error(hc->ssl, k);
				if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
					return 1;
				return -1;
			}
			n = k;
		} else {
			n = send(hc->watch.fd, p, left, MSG_NOSIGNAL);
			if (n < 0)
				return errno == EAGAIN || errno == EINTR ? 1 : -1;
		}
		hc->wr_off += (size_t)n;
		c->wrote |= n > 0;
	}
	return 0;
}

static void became_idle(hconn_t *hc)
{
	hc->call = NULL;
	hc->reused = 1;
	lws_dll2_add_tail(&hc->idle_list, &hc->ep->idle);
	set_events(hc, EPOLLIN | EPOLLRDHUP);
}

static void hconn_io(hconn_t *hc, uint32_t events)
{
	gw_endpoint_t *ep = hc->ep;
	char buf[16384];

	if (hc->connecting) {
		int err = 0;
		socklen_t el = sizeof(err);

		getsockopt(hc->watch.fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			hconn_failed(hc, err == ECONNREFUSED ? "connection refused" : "cannot connect");
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		hc->connecting = 0;
		hc->handshaking = hc->ssl != NULL;
	}
	if (hc->handshaking) {
		int k = SSL_do_handshake(hc->ssl);

		if (k != 1) {
			int e = SSL_get_error(hc->ssl, k);
			if (e == SSL_ERROR_WANT_READ) {
				set_events(hc, EPOLLIN);
				return;
			}
			if (e == SSL_ERROR_WANT_WRITE) {
				set_events(hc, EPOLLOUT);
				return;
			}
			hconn_failed(hc, SSL_get_verify_result(hc->ssl) != X509_V_OK
						 ? "TLS certificate verification failed"
						 : "TLS handshake failed");
			return;
		}
		hc->handshaking = 0;
	}
	if (!hc->call) {
		/* An idle connection became readable: the server closed it (or
		 * sent something unasked for). Either way it is done. */
		hconn_close(hc);
		return;
	}
	if (hc->wr_off < hc->call->req_len + hc->call->req_body.len) {
		int w = do_write(hc);

		if (w < 0) {
			hconn_failed(hc, "connection reset while sending");
			return;
		}
		if (w > 0) {
			set_events(hc, EPOLLOUT | EPOLLIN | EPOLLRDHUP);
			return;
		}
	}
	/* The same mask as an idle connection: no epoll_ctl per call. */
	set_events(hc, EPOLLIN | EPOLLRDHUP);
	for (;;) {
		gw_call_t *c = hc->call;
		enum gw_resp_status st;
		ssize_t n;
		int extra;

		if (!c) {
			hconn_close(hc);
			return;
		}

		if (hc->ssl) {
			int k = SSL_read(hc->ssl, buf, sizeof(buf));
			if (k <= 0) {
				int e = SSL_get_error(hc->ssl, k);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return;
				n = e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
			} else {
				n = k;
			}
		} else {
			n = recv(hc->watch.fd, buf, sizeof(buf), 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
		}
		if (n < 0 || (n == 0 && !hc->got)) {
			hconn_failed(hc, n == 0 ? "connection closed before a full response"
					      : "connection reset");
			return;
		}
		hc->got += (size_t)n;
		/* n == 0 tells the parser the server closed: that ends a body
		 * delimited by the connection's end. */
		st = gw_resp_feed(hc->resp, buf, (size_t)n, &extra);
		if (st == GW_RESP_DONE) {
			int keep = n && !extra && gw_resp_keep_alive(hc->resp);

			finish(c, GW_CALL_OK, NULL, &hc->resp);
			if (keep)
				became_idle(hc);
			else
				hconn_close(hc);
			dispatch(ep);
			return;
		}
		if (st != GW_RESP_MORE || n == 0) {
			c->retried = 1; /* the server answered: never retry */
			hconn_failed(hc, st == GW_RESP_TOO_LARGE ? "integration response too large"
				     : n == 0 ? "connection closed before a full response"
					      : "malformed HTTP response");
			return;
		}
	}
}

static void hconn_on_io(gw_watch_t *w, uint32_t events)
{
	hconn_t *hc = lws_container_of(w, hconn_t, watch);
	gw_backend_t *be = hc->ep->be;

	be->in_io++;
	hconn_io(hc, events);
	be->in_io--;
}

/* --- calls ---------------------------------------------------------------- */

/* Keeps a delivered call's parser for the endpoint's next call, up to one
 * per connection the endpoint may have. */
static void give_back(gw_endpoint_t *ep, gw_resp_t *resp)
{
	if (ep && !ep->spare) {
		ep->cap_spare = ep->max_connections;
		ep->spare = calloc(ep->cap_spare, sizeof(*ep->spare));
		if (!ep->spare)
			abort();
	}
	if (!ep || ep->n_spare >= ep->cap_spare) {
		gw_resp_destroy(resp);
		return;
	}
	gw_resp_reset(resp); /* drops a large body's memory */
	ep->spare[ep->n_spare++] = resp;
}

static void call_free(gw_call_t *c)
{
	if (c->resp)
		give_back(c->ep, c->resp);
	if (!lws_dll2_is_detached(&c->tlist))
		lws_dll2_remove(&c->tlist);
	if (!lws_dll2_is_detached(&c->qlist))
		lws_dll2_remove(&c->qlist);
	lws_dll2_remove(&c->list);
	if (c->hc)
		c->hc->call = NULL;
	free(c->req);
	gw_buf_dispose(&c->req_body);
	gw_buf_dispose(&c->body);
	free(c);
}

int gw_backend_log_allowed(unsigned *left_out)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static uint64_t second;
	static unsigned logged, dropped;
	uint64_t now = gw_now_ms() / 1000;
	int ok;

	pthread_mutex_lock(&lock);
	if (now != second) {
		second = now;
		logged = 0;
	}
	ok = logged < LOG_BURST;
	if (ok) {
		logged++;
		*left_out = dropped;
		dropped = 0;
	} else {
		dropped++;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

/* The call is over: off its connection and queues, onto the done list,
 * delivered at the next safe point (or dropped, when cancelled). An OK
 * answer from a backend brings its parser along (*resp is taken). */
static void finish(gw_call_t *c, enum gw_call_outcome o, const char *error,
		   gw_resp_t **resp)
{
	if (c->finished)
		return;
	c->finished = 1;
	c->outcome = o;
	c->error = error;
	if (resp) {
		c->resp = *resp;
		*resp = NULL;
	}
	if (!lws_dll2_is_detached(&c->tlist))
		lws_dll2_remove(&c->tlist);
	if (!lws_dll2_is_detached(&c->qlist))
		lws_dll2_remove(&c->qlist);
	if (c->hc)
		c->hc->call = NULL;
	c->hc = NULL;
	if (c->cancelled) {
		call_free(c);
		return;
	}
	lws_dll2_add_tail(&c->qlist, &c->be->done);
	/* In a socket handler (or a drain), the batch's safe point follows;
	 * elsewhere it may be a timer's callback, before libwebsockets polls. */
	if (!c->be->in_io && !c->be->draining)
		arm_kick(c->be);
}

static void log_failure(const gw_call_t *c)
{
	unsigned left_out;
	char more[64] = "";

	if (!gw_backend_log_allowed(&left_out))
		return;
	if (left_out)
		snprintf(more, sizeof(more), " (%u similar line%s not logged)", left_out,
			 left_out == 1 ? "" : "s");
	gw_warn("request %s: integration call %s: %s%s", c->request_id,
		c->outcome == GW_CALL_TIMEOUT ? "timed out"
		: c->outcome == GW_CALL_BUSY  ? "refused"
					      : "failed",
		c->error ? c->error : "unknown error", more);
}

/* Runs the callback of a finished call, off the done list, then frees it
 * (a gw_backend_cancel() from inside the callback is a no-op). */
static void deliver(gw_call_t *c)
{
	const char *names[100], *values[100];
	gw_http_resp_t r;

	lws_dll2_remove(&c->qlist);
	memset(&r, 0, sizeof(r));
	r.outcome = c->outcome;
	r.error = c->error;
	r.unsent = !c->wrote;
	if (c->outcome == GW_CALL_OK && c->resp) {
		gw_str_t body = gw_resp_body(c->resp);

		r.status = gw_resp_status_code(c->resp);
		r.n_headers = gw_resp_header_count(c->resp);
		if (r.n_headers > sizeof(names) / sizeof(names[0]))
			r.n_headers = sizeof(names) / sizeof(names[0]);
		for (size_t i = 0; i < r.n_headers; i++)
			gw_resp_header(c->resp, i, &names[i], &values[i]);
		r.header_names = names;
		r.header_values = values;
		r.body = body.ptr;
		r.body_len = body.len;
		r.body_buf = gw_resp_body_buf(c->resp);
	} else if (c->outcome == GW_CALL_OK) {
		r.status = c->status;
		r.body = c->body.data ? c->body.data : "";
		r.body_len = c->body.len;
		r.body_buf = &c->body;
	} else {
		log_failure(c);
	}
	r.duration_us = c->started_us ? gw_metrics_now_us() - c->started_us : 0;
	c->cb(c->user, &r);
	call_free(c);
}

/* The loop task: every call finished since the last safe point, in the
 * order they finished, including those finished by these callbacks (a
 * MOCK answer to a call started from one of them). */
static void drain(void *arg)
{
	gw_backend_t *be = arg;

	if (be->draining)
		return;
	be->draining = 1;
	while (be->done.head)
		deliver(lws_container_of(be->done.head, gw_call_t, qlist));
	be->draining = 0;
}

static void on_kick(lws_sorted_usec_list_t *sul)
{
	gw_backend_t *be = lws_container_of(sul, gw_backend_t, kick);

	be->kick_armed = 0;
	drain(be);
}

static void arm_kick(gw_backend_t *be)
{
	if (be->kick_armed)
		return;
	be->kick_armed = 1;
	lws_sul_schedule(be->gw->ctx, 0, &be->kick, on_kick, 1);
}

static void expire(gw_call_t *c)
{
	/* The connection is mid-request: it cannot be reused. */
	if (c->hc) {
		gw_endpoint_t *ep = c->ep;
		hconn_t *hc = c->hc;

		c->hc = NULL;
		hc->call = NULL;
		hconn_close(hc);
		finish(c, GW_CALL_TIMEOUT, "no answer within the timeout", NULL);
		dispatch(ep);
		return;
	}
	finish(c, GW_CALL_TIMEOUT, "no connection became free within the timeout", NULL);
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
	gw_backend_t *be = lws_container_of(sul, gw_backend_t, tick);
	uint64_t now = gw_now_ms();
	int more = 0;

	be->in_io++;
	/* An expiry only queues the call's completion (delivered at the safe
	 * point), but dispatching the next queued call may finish others:
	 * every step re-reads the list heads. */
	for (lws_dll2_t *d = be->tqs.head; d; d = d->next) {
		lws_dll2_owner_t *q = &lws_container_of(d, struct timeout_queue, list)->calls;

		while (q->head) {
			gw_call_t *c = lws_container_of(q->head, gw_call_t, tlist);

			if (c->deadline > now)
				break;
			expire(c);
		}
	}
	/* Counted after the walk: a callback may have added a call to a queue
	 * already walked. */
	for (lws_dll2_t *d = be->tqs.head; d && !more; d = d->next)
		more = lws_container_of(d, struct timeout_queue, list)->calls.head != NULL;
	be->tick_armed = more;
	be->in_io--;
	if (be->done.head)
		arm_kick(be);
	if (more)
		lws_sul_schedule(be->gw->ctx, 0, &be->tick, on_tick,
				 (lws_usec_t)TICK_MS * LWS_US_PER_MS);
}

static void arm_timeout(gw_backend_t *be, gw_call_t *c, unsigned timeout_ms)
{
	struct timeout_queue *tq = NULL;

	/* As many queues as distinct timeoutMs values in the configuration. */
	for (lws_dll2_t *d = be->tqs.head; d && !tq; d = d->next)
		if (lws_container_of(d, struct timeout_queue, list)->timeout_ms == timeout_ms)
			tq = lws_container_of(d, struct timeout_queue, list);
	if (!tq) {
		tq = calloc(1, sizeof(*tq));
		if (!tq)
			abort();
		tq->timeout_ms = timeout_ms;
		lws_dll2_add_tail(&tq->list, &be->tqs);
	}
	c->deadline = gw_now_ms() + timeout_ms;
	lws_dll2_add_tail(&c->tlist, &tq->calls);
	if (!be->tick_armed) {
		be->tick_armed = 1;
		lws_sul_schedule(be->gw->ctx, 0, &be->tick, on_tick,
				 (lws_usec_t)(timeout_ms < TICK_MS ? timeout_ms : TICK_MS) * LWS_US_PER_MS);
	}
}

/* Whether an idle connection may take a call: a server that closed it left
 * an end of stream (or a reset) to peek at. Unsolicited bytes on a plain
 * connection (a 408 sent before closing) condemn it too; over TLS they may
 * be a session ticket, left to OpenSSL. */
static int idle_alive(hconn_t *hc)
{
	char b;
	ssize_t n = recv(hc->watch.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	return n > 0 && hc->ssl;
}

static void dispatch(gw_endpoint_t *ep)
{
	while (ep->queue.head) {
		gw_call_t *c = lws_container_of(ep->queue.head, gw_call_t, qlist);
		hconn_t *hc = NULL;

		if (ep->idle.head) {
			hc = lws_container_of(ep->idle.head, hconn_t, idle_list);
			lws_dll2_remove(&hc->idle_list);
			if (!idle_alive(hc)) {
				hconn_close(hc);
				continue;
			}
		} else if (ep->conns.count < ep->max_connections) {
			const char *error = NULL;

			hc = hconn_open(ep, &error);
			if (!hc) {
				finish(c, GW_CALL_FAILED, error, NULL);
				continue;
			}
		} else {
			return;
		}
		lws_dll2_remove(&c->qlist);
		assign(hc, c);
		if (hc->connecting)
			continue; /* written once connected */
		/* A kept-alive connection: write now, saving an epoll round. The
		 * call cannot finish here: if the write fails, the loop sees the
		 * error and retries on a fresh connection. */
		if (do_write(hc))
			set_events(hc, EPOLLOUT | EPOLLIN | EPOLLRDHUP);
	}
}

static gw_call_t *call_new(gw_backend_t *be, gw_call_cb cb, void *user)
{
	gw_call_t *c = calloc(1, sizeof(*c));

	if (!c)
		abort();
	c->be = be;
	c->cb = cb;
	c->user = user;
	gw_buf_init(&c->body);
	gw_buf_init(&c->req_body);
	lws_dll2_add_tail(&c->list, &be->calls);
	return c;
}

/* Queues a call with its request (head, and body taken over when given)
 * complete before anything is written. */
static gw_call_t *call_start(gw_backend_t *be, gw_endpoint_t *ep, const char *req, size_t len,
			     gw_buf_t *body, unsigned timeout_ms, const char *request_id,
			     gw_call_cb cb, void *user, int bounded)
{
	gw_call_t *c = call_new(be, cb, user);

	c->started_us = gw_metrics_now_us(); /* not for MOCK: no clock reads */
	c->ep = ep;
	c->req = malloc(len ? len : 1);
	if (!c->req)
		abort();
	memcpy(c->req, req, len);
	c->req_len = len;
	if (body) {
		/* Swapped, not copied: the caller's buffer is left empty. */
		c->req_body = *body;
		gw_buf_init(body);
	}
	snprintf(c->request_id, sizeof(c->request_id), "%s", request_id ? request_id : "-");
	/* Busy: no idle connection, no room for a new one, and the queue
	 * already as long as allowed. */
	if (bounded && !ep->idle.head && ep->conns.count >= ep->max_connections &&
	    ep->queue.count >= ep->max_queue) {
		finish(c, GW_CALL_BUSY, "every connection to the integration is busy and "
				       "its queue is full", NULL);
		return c;
	}
	arm_timeout(be, c, timeout_ms);
	lws_dll2_add_tail(&c->qlist, &ep->queue);
	dispatch(ep);
	return c;
}

gw_call_t *gw_backend_call(gw_backend_t *be, gw_endpoint_t *ep, const char *req,
			   size_t len, unsigned timeout_ms, const char *request_id,
			   gw_call_cb cb, void *user)
{
	return call_start(be, ep, req, len, NULL, timeout_ms, request_id, cb, user, 1);
}

gw_call_t *gw_backend_call_body(gw_backend_t *be, gw_endpoint_t *ep, const char *head,
				size_t head_len, gw_buf_t *body, unsigned timeout_ms,
				const char *request_id, gw_call_cb cb, void *user)
{
	return call_start(be, ep, head, head_len, body, timeout_ms, request_id, cb, user, 1);
}

gw_call_t *gw_backend_call_unbounded(gw_backend_t *be, gw_endpoint_t *ep, const char *head,
				     size_t head_len, gw_buf_t *body, unsigned timeout_ms,
				     const char *request_id, gw_call_cb cb, void *user)
{
	return call_start(be, ep, head, head_len, body, timeout_ms, request_id, cb, user, 0);
}

gw_call_t *gw_backend_local(gw_backend_t *be, int status, const char *body, size_t len,
			    gw_call_cb cb, void *user)
{
	gw_call_t *c = call_new(be, cb, user);

	c->status = status;
	gw_buf_append(&c->body, body, len);
	snprintf(c->request_id, sizeof(c->request_id), "local");
	finish(c, GW_CALL_OK, NULL, NULL);
	return c;
}

void gw_backend_cancel(gw_call_t *c)
{
	if (!c)
		return;
	if (c->finished) {
		/* Finished, not delivered yet: dropped. Being delivered (its
		 * callback is running): nothing to do. */
		if (!lws_dll2_is_detached(&c->qlist))
			call_free(c);
		return;
	}
	/* In flight: let the response arrive so the connection stays
	 * reusable; queued: gone now. */
	c->cancelled = 1;
	if (!c->hc)
		call_free(c);
}

int gw_backend_in_io(const gw_backend_t *be)
{
	return be->in_io;
}

size_t gw_backend_inflight(const gw_backend_t *be)
{
	size_t n = 0;

	lws_start_foreach_dll(struct lws_dll2 *, d, be->calls.head) {
		if (!lws_container_of(d, gw_call_t, list)->cancelled)
			n++;
	} lws_end_foreach_dll(d);
	return n;
}

/* --- endpoints ------------------------------------------------------------ */

void gw_backend_bind(gw_backend_t *be, unsigned index, gw_endpoint_t *ep)
{
	if (index >= be->n_index) {
		be->by_index = realloc(be->by_index, (index + 1) * sizeof(*be->by_index));
		if (!be->by_index)
			abort();
		memset(be->by_index + be->n_index, 0, (index + 1 - be->n_index) * sizeof(*be->by_index));
		be->n_index = index + 1;
	}
	be->by_index[index] = ep;
}

gw_endpoint_t *gw_backend_endpoint_for(gw_backend_t *be, unsigned index)
{
	return index < be->n_index ? be->by_index[index] : NULL;
}

/* --- pools no configuration names (hot reload) ---------------------------- */

/* How often a loop looks, while an older snapshot still binds pools. */
#define SWEEP_US (1000 * LWS_US_PER_MS)

static void endpoint_free(void *p)
{
	gw_endpoint_t *ep = p;

	if (ep->ssl_ctx)
		SSL_CTX_free(ep->ssl_ctx);
	free(ep->host);
	free(ep->address);
	free(ep->ca_file);
	while (ep->n_spare)
		gw_resp_destroy(ep->spare[--ep->n_spare]);
	free(ep->spare);
	free(ep);
}

/* Whether a call (waiting, running, or finished and not yet delivered,
 * cancelled ones too) still names ep. */
static int endpoint_called(const gw_backend_t *be, const gw_endpoint_t *ep)
{
	if (ep->queue.count || ep->conns.count != ep->idle.count)
		return 1;
	lws_start_foreach_dll(struct lws_dll2 *, d, be->calls.head) {
		if (lws_container_of(d, gw_call_t, list)->ep == ep)
			return 1;
	} lws_end_foreach_dll(d);
	return 0;
}

/* Drops the bindings of dead snapshots (no holder is left to call
 * through them: gw_config_index_live), then frees each pool that no live
 * snapshot binds and no call names, closing its idle connections. Its
 * memory goes after the epoll batch (an event of it may still be queued).
 * 1 while bindings of older snapshots remain (look again later). */
static int sweep_pools(gw_backend_t *be)
{
	const gw_config_t *cur = be->cfg;
	int older = 0;

	lws_start_foreach_dll(struct lws_dll2 *, d, be->endpoints.head) {
		lws_container_of(d, gw_endpoint_t, list)->bound = 0;
	} lws_end_foreach_dll(d);
	for (unsigned i = 0; i < be->n_index; i++) {
		int current = i - cur->index_base < cur->n_integrations;

		if (!be->by_index[i])
			continue;
		if (!current && !gw_config_index_live(i)) {
			be->by_index[i] = NULL;
			continue;
		}
		be->by_index[i]->bound++;
		older |= !current;
	}
	lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, be->endpoints.head) {
		gw_endpoint_t *ep = lws_container_of(d, gw_endpoint_t, list);

		/* (No continue here: it would skip the macro's step.) */
		if (!ep->bound && endpoint_called(be, ep)) {
			older = 1; /* its calls end: look again */
		} else if (!ep->bound) {
			while (ep->conns.head)
				hconn_close(lws_container_of(ep->conns.head, hconn_t, list));
			lws_dll2_remove(&ep->list);
			gw_defer_free(be->gw, endpoint_free, ep);
		}
	} lws_end_foreach_dll_safe(d, d1);
	return older;
}

static void on_sweep(lws_sorted_usec_list_t *sul)
{
	gw_backend_t *be = lws_container_of(sul, gw_backend_t, sweep);

	if (be->cfg && sweep_pools(be))
		lws_sul_schedule(be->gw->ctx, 0, &be->sweep, on_sweep, SWEEP_US);
}

void gw_backend_set_config(gw_backend_t *be, gw_config_t *cfg)
{
	gw_config_t *old = be->cfg;

	be->cfg = cfg ? gw_config_ref(cfg) : NULL;
	gw_config_unref(old);
	/* A reload: the older snapshot's pools may be unbound soon or now. */
	if (old && cfg)
		lws_sul_schedule(be->gw->ctx, 0, &be->sweep, on_sweep, 1);
}

gw_backend_t *gw_backend_create(gw_worker_t *gw)
{
	gw_backend_t *be = calloc(1, sizeof(*be));

	if (!be)
		abort();
	be->gw = gw;
	/* The pools are bound to this configuration's integrations: it stays
	 * while they are (none in unit tests). */
	be->cfg = gw->cfg ? gw_config_ref(gw->cfg) : NULL;
	/* A fixed, small table: running out is a programming error. */
	if (gw_loop_add_task(gw->loop, drain, be))
		abort();
	return be;
}

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

gw_endpoint_t *gw_backend_find(gw_backend_t *be, const gw_endpoint_opts_t *o)
{
	lws_start_foreach_dll(struct lws_dll2 *, d, be->endpoints.head) {
		gw_endpoint_t *ep = lws_container_of(d, gw_endpoint_t, list);

		if (ep->port == o->port && ep->tls == o->tls && !strcmp(ep->address, o->address) &&
		    same(ep->ca_file, o->ca_file) && (!o->tls || !strcmp(ep->host, o->host)))
			return ep;
	} lws_end_foreach_dll(d);
	return NULL;
}

void gw_endpoint_limits(const gw_endpoint_t *ep, unsigned *max_connections,
			unsigned *max_queue)
{
	*max_connections = ep->max_connections;
	*max_queue = ep->max_queue;
}

gw_endpoint_t *gw_backend_endpoint(gw_backend_t *be, const gw_endpoint_opts_t *o,
				   char *err, size_t errlen)
{
	unsigned max_connections = o->max_connections ? o->max_connections : 64;
	gw_endpoint_t *ep = gw_backend_find(be, o);

	if (ep) {
		/* Shared by integrations with different limits: none gets
		 * fewer connections or queue places than it asked for. */
		if (ep->max_connections < max_connections)
			ep->max_connections = max_connections;
		if (ep->max_queue < o->max_queue)
			ep->max_queue = o->max_queue;
		return ep;
	}
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		abort();
	ep->be = be;
	ep->host = strdup(o->host);
	ep->address = strdup(o->address);
	ep->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
	ep->port = o->port;
	ep->tls = o->tls;
	ep->max_connections = max_connections;
	ep->max_queue = o->max_queue;
	if (o->tls) {
		ep->ssl_ctx = SSL_CTX_new(TLS_client_method());
		if (!ep->ssl_ctx ||
		    (o->ca_file ? SSL_CTX_load_verify_locations(ep->ssl_ctx, o->ca_file, NULL)
				: SSL_CTX_set_default_verify_paths(ep->ssl_ctx)) != 1) {
			snprintf(err, errlen, "%s: cannot load CA certificates",
				 o->ca_file ? o->ca_file : "system CA bundle");
			SSL_CTX_free(ep->ssl_ctx);
			free(ep->host);
			free(ep->address);
			free(ep->ca_file);
			free(ep);
			return NULL;
		}
		SSL_CTX_set_verify(ep->ssl_ctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_min_proto_version(ep->ssl_ctx, TLS1_2_VERSION);
		SSL_CTX_set_mode(ep->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	}
	lws_dll2_add_tail(&ep->list, &be->endpoints);
	return ep;
}

void gw_backend_destroy(gw_backend_t *be)
{
	if (!be)
		return;
	gw_loop_remove_task(be->gw->loop, drain, be);
	lws_sul_cancel(&be->tick);
	lws_sul_cancel(&be->kick);
	lws_sul_cancel(&be->sweep);
	while (be->calls.head) {
		gw_call_t *c = lws_container_of(be->calls.head, gw_call_t, list);
		c->cancelled = 1;
		c->finished = 1;
		call_free(c);
	}
	while (be->endpoints.head) {
		gw_endpoint_t *ep = lws_container_of(be->endpoints.head, gw_endpoint_t, list);

		while (ep->conns.head)
			hconn_close(lws_container_of(ep->conns.head, hconn_t, list));
		lws_dll2_remove(&ep->list);
		endpoint_free(ep);
	}
	while (be->tqs.head) {
		struct timeout_queue *tq = lws_container_of(be->tqs.head, struct timeout_queue, list);

		lws_dll2_remove(&tq->list);
		free(tq);
	}
	free(be->by_index);
	gw_config_unref(be->cfg);
	free(be);
}

void gw_backend_pool_stats(const gw_backend_t *be, unsigned *in_use, unsigned *idle,
			   unsigned *queued)
{
	*in_use = *idle = *queued = 0;
	lws_start_foreach_dll(struct lws_dll2 *, d, be->endpoints.head) {
		const gw_endpoint_t *ep = lws_container_of(d, gw_endpoint_t, list);

		*in_use += ep->conns.count - ep->idle.count;
		*idle += ep->idle.count;
		*queued += ep->queue.count;
	} lws_end_foreach_dll(d);
}
