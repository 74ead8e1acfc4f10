/* HTTP/1.1 client for integrations: per-endpoint pools of keep-alive
 * connections on the gateway's own epoll set (never blocking the loop),
 * a bounded number of connections per endpoint and a bounded FIFO beyond
 * it, a timer per call, TLS with certificate verification. Responses are
 * parsed with http-parser. What a request means (Lambda event, proxied
 * message) is integration.c's business; this module moves bytes. */
#ifndef GW_BACKEND_H
#define GW_BACKEND_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct gw_worker gw_worker_t;
typedef struct gw_backend gw_backend_t;
typedef struct gw_endpoint gw_endpoint_t;
typedef struct gw_call gw_call_t;

enum gw_call_outcome {
	GW_CALL_OK = 0,   /* a complete HTTP response (any status) */
	GW_CALL_FAILED,   /* refused, reset, closed early, malformed, too large */
	GW_CALL_TIMEOUT,  /* no complete response within the timeout */
	GW_CALL_BUSY,     /* every connection busy and the queue full */
};

typedef struct gw_http_resp {
	enum gw_call_outcome outcome;
	int status;
	const char *error; /* why, when not OK */
	/* Not a byte of the request was written (refused, queue full, failed
	 * before sending): the backend cannot have acted on it. */
	int unsent;
	/* headers as NUL-terminated name/value pairs, n of them */
	const char *const *header_names;
	const char *const *header_values;
	size_t n_headers;
	const char *body;
	size_t body_len;
	/* The buffer holding body: a callback may swap its contents out to
	 * keep the body without copying it (REST responses). */
	gw_buf_t *body_buf;
	uint64_t duration_us; /* from the call's start to its delivery; 0 locally */
} gw_http_resp_t;

/* Runs once per call, from a later loop iteration than gw_backend_call,
 * unless the call was cancelled. */
typedef void (*gw_call_cb)(void *user, const gw_http_resp_t *resp);

typedef struct gw_endpoint_opts {
	const char *host;    /* Host header and TLS name */
	const char *address; /* numeric, resolved at config load */
	int port;
	int tls;
	const char *ca_file; /* NULL: the system's CA bundle */
	unsigned max_connections;
	unsigned max_queue;
} gw_endpoint_opts_t;

gw_backend_t *gw_backend_create(gw_worker_t *gw);
/* Fails every call still running (their callbacks are not called). */
void gw_backend_destroy(gw_backend_t *be);
/* A pool is keyed by where it connects and how it checks the peer:
 * (address, port, tls, ca_file), and the TLS name (host) with TLS (a plain
 * connection serves any Host header). Not by the integration or the
 * configuration that asked: a later configuration finds the same pools.
 *
 * The pool for these options, created on first use; an existing one takes
 * the larger of its limits and these. NULL (err filled) if TLS cannot be
 * set up. */
gw_endpoint_t *gw_backend_endpoint(gw_backend_t *be, const gw_endpoint_opts_t *o,
				   char *err, size_t errlen);
/* The pool with o's key, NULL if there is none (limits are ignored). */
gw_endpoint_t *gw_backend_find(gw_backend_t *be, const gw_endpoint_opts_t *o);
void gw_endpoint_limits(const gw_endpoint_t *ep, unsigned *max_connections,
			unsigned *max_queue);

/* This loop's configuration, resolved once: integration index i (see
 * gw_integration_t.index) uses pool ep, found by key at load. A later
 * configuration looks its pools up by key again (gw_backend_endpoint)
 * and binds its own indexes; the pools and their connections stay. */
void gw_backend_bind(gw_backend_t *be, unsigned index, gw_endpoint_t *ep);
gw_endpoint_t *gw_backend_endpoint_for(gw_backend_t *be, unsigned index);
/* The configuration the loop now binds (a reference is taken, the older
 * one dropped): a reload's. The older indexes stay bound. */
struct gw_config;
void gw_backend_set_config(gw_backend_t *be, struct gw_config *cfg);

/* req is a complete HTTP/1.1 request (head and body); it is copied. */
gw_call_t *gw_backend_call(gw_backend_t *be, gw_endpoint_t *ep, const char *req,
			   size_t len, unsigned timeout_ms, const char *request_id,
			   gw_call_cb cb, void *user);
/* Same, with the body sent from body, whose contents the call takes over
 * (body is left empty): a large REST body is not copied again. */
gw_call_t *gw_backend_call_body(gw_backend_t *be, gw_endpoint_t *ep, const char *head,
				size_t head_len, gw_buf_t *body, unsigned timeout_ms,
				const char *request_id, gw_call_cb cb, void *user);
/* Same, for a caller that bounds its calls itself (the $disconnect
 * outbox): queued even when the endpoint's queue is full, never BUSY. */
gw_call_t *gw_backend_call_unbounded(gw_backend_t *be, gw_endpoint_t *ep, const char *head,
				     size_t head_len, gw_buf_t *body, unsigned timeout_ms,
				     const char *request_id, gw_call_cb cb, void *user);
/* Like gw_backend_call for an answer computed locally (MOCK): delivered
 * from the next loop iteration, like any other. */
gw_call_t *gw_backend_local(gw_backend_t *be, int status, const char *body, size_t len,
			    gw_call_cb cb, void *user);
void gw_backend_cancel(gw_call_t *call);
size_t gw_backend_inflight(const gw_backend_t *be);
/* Over every pool: connections carrying a call, idle ones, and calls
 * waiting for a connection (metrics). */
void gw_backend_pool_stats(const gw_backend_t *be, unsigned *in_use, unsigned *idle,
			   unsigned *queued);
/* Whether one of the backend's own handlers (socket I/O, expiry) is on the
 * stack: never, when a callback runs (tests check it). */
int gw_backend_in_io(const gw_backend_t *be);


/* Whether a line about a failed integration call may be logged now: at
 * most a burst a second for the whole process, since a client can make
 * every call fail. When allowed, *left_out is how many lines were not
 * logged since the last one (say so in the line). */
int gw_backend_log_allowed(unsigned *left_out);

#endif
