/* libwsgate: a small C client for wsgate's management API (the same wire
 * protocol as AWS's apigatewaymanagementapi), HTTP/1.1 over TCP or TLS,
 * signed with SigV4 when keys are given. No threads, no global state
 * beyond OpenSSL's; nothing is printed: errors come back as codes and
 * text the caller may show.
 *
 * Two nouns, as in libuv:
 *   wsgate_client_t  an endpoint and its keys (long-lived, reusable);
 *   wsgate_req_t     one call in flight (one connection, closed at the end).
 *
 * Synchronous use:
 *
 *   wsgate_client_t *c;
 *   wsgate_response_t res;
 *   char err[256];
 *   if (wsgate_client_create(&c, "http://127.0.0.1:8081/dev", err, sizeof(err)))
 *           ... err says why ...
 *   wsgate_client_set_credentials(c, "AKIA...", secret, NULL, "us-east-1");
 *   int rc = wsgate_post(c, id, "hello", 5, &res);
 *   rc < 0: no answer (wsgate_strerror(rc), res.error says more);
 *   rc == 0: an answer: res.status, and on an error res.error_type
 *            ("GoneException", ...) and res.message.
 *   wsgate_response_dispose(&res);
 *   wsgate_client_destroy(c);
 *
 * Non-blocking use, from the caller's poll/epoll loop:
 *
 *   wsgate_req_t *r;
 *   rc = wsgate_req_start(c, &call, &r);     // the connect is started;
 *                                            // r is set even when rc < 0
 *   while ((rc = wsgate_req_step(r)) == WSGATE_AGAIN)
 *           wait until wsgate_req_fd(r) is ready for wsgate_req_events(r)
 *           (POLLIN and/or POLLOUT; with epoll, EPOLLIN/EPOLLOUT: the same
 *           bits), then call wsgate_req_step(r) again;
 *   rc == WSGATE_OK: wsgate_req_response(r); rc < 0: failed;
 *   wsgate_req_destroy(r);                   // also cancels one in flight
 *
 * wsgate_req_step never blocks. The fd may change between steps (another
 * address after a refused connect) and so may the events wanted (TLS may
 * want to read while writing): re-read both after each step, e.g. with
 * EPOLL_CTL_MOD, or DEL + ADD when the fd changed. Deadlines are the
 * caller's: destroy a request that took too long. wsgate_req_start
 * resolves the host name with getaddrinfo, which may block: give the
 * endpoint a numeric address where that matters.
 *
 * Threads: a client and its requests belong to one thread at a time (the
 * TLS context is made on first use); several requests of one client may be
 * in flight together. With https://, ignore SIGPIPE (OpenSSL writes with
 * write(2), which raises it when the peer has gone); plain TCP never does.
 *
 * Lifetimes: a request borrows its client (destroy requests first) and
 * copies everything it needs from the call; a response's strings belong to
 * the response (or to the request, for wsgate_req_response). */
#ifndef WSGATE_CLIENT_H
#define WSGATE_CLIENT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes: 0, WSGATE_AGAIN from wsgate_req_step, or negative. */
enum {
	WSGATE_OK = 0,
	WSGATE_AGAIN = 1,          /* not done: wait for the fd, step again */
	WSGATE_ERR_ARG = -1,       /* a bad endpoint, ID, key or call */
	WSGATE_ERR_RESOLVE = -2,   /* the host name did not resolve */
	WSGATE_ERR_CONNECT = -3,   /* no address accepted the connection */
	WSGATE_ERR_TLS = -4,       /* handshake or certificate failure */
	WSGATE_ERR_IO = -5,        /* the connection broke mid-request */
	WSGATE_ERR_PROTOCOL = -6,  /* the answer was not HTTP/1.1 we can read */
	WSGATE_ERR_TIMEOUT = -7,   /* synchronous calls: no answer in time */
	WSGATE_ERR_NOMEM = -8,
};

/* Text for a return code (static). */
const char *wsgate_strerror(int rc);

/* The operations of the management API. */
typedef enum wsgate_op {
	WSGATE_POST,    /* POST   /@connections/{target}  body: the message */
	WSGATE_GET,     /* GET    /@connections/{target}  -> the record */
	WSGATE_DELETE,  /* DELETE /@connections/{target} */
	WSGATE_LIST,    /* GET    /@connections?limit=&cursor=&channel= -> {"items","cursor"} */
	WSGATE_PUBLISH, /* POST   /@channels/{target}     body: the message */
	WSGATE_JOIN,    /* PUT    /@connections/{target}/channels/{channel} */
	WSGATE_LEAVE,   /* DELETE /@connections/{target}/channels/{channel} */
	WSGATE_BROADCAST, /* POST /@broadcast             body: the message */
} wsgate_op_t;

typedef struct wsgate_call {
	wsgate_op_t op;
	const char *target; /* the connection ID or channel; NULL for LIST, BROADCAST */
	const void *data;   /* POST, PUBLISH, BROADCAST: the message, binary-safe */
	size_t len;
	unsigned limit;     /* LIST: page size, 0 for the gateway's default */
	const char *cursor; /* LIST: the previous page's cursor, or NULL */
	const char *channel; /* LIST: only this channel's members, or NULL;
			      * JOIN, LEAVE: the channel */
} wsgate_call_t;

typedef struct wsgate_response {
	int status;            /* the HTTP status; 0 when there was no answer */
	char *error_type;      /* x-amzn-ErrorType ("GoneException"), or NULL */
	char *message;         /* the error's "message", or NULL */
	char *request_id;      /* x-amzn-RequestId, or NULL */
	char *body;            /* NUL-terminated, body_len bytes before it */
	size_t body_len;
	char error[256];       /* on a negative return: what went wrong */
} wsgate_response_t;

void wsgate_response_dispose(wsgate_response_t *res);

typedef struct wsgate_client wsgate_client_t;

/* endpoint: http[s]://host[:port][/stage], as the SDKs' `endpoint`
 * (IPv6 as [addr]). Returns 0, or WSGATE_ERR_ARG with err filled. */
int wsgate_client_create(wsgate_client_t **out, const char *endpoint, char *err,
			 size_t err_len);
void wsgate_client_destroy(wsgate_client_t *c);

/* Sign requests with these keys (copied; the secret is wiped on destroy
 * or replacement). session_token is sent as X-Amz-Security-Token, signed,
 * as the AWS CLI does, when not NULL. access_key NULL: unsigned. region
 * NULL: "us-east-1". Returns 0 or WSGATE_ERR_NOMEM. */
int wsgate_client_set_credentials(wsgate_client_t *c, const char *access_key,
				  const char *secret, const char *session_token,
				  const char *region);

/* https:// only: a PEM bundle of trusted CAs instead of the system's, and
 * whether to verify the certificate and host name at all (default 1). */
int wsgate_client_set_tls(wsgate_client_t *c, const char *ca_file, int verify);

/* Synchronous calls: the whole budget, connect to last byte (default
 * 30000 ms). */
void wsgate_client_set_timeout(wsgate_client_t *c, int timeout_ms);

/* One call, waiting for its answer. Returns 0 when the gateway answered
 * (whatever the status: see res->status and res->error_type) or a negative
 * code (res->error says why). res is always initialised: dispose it. */
int wsgate_call(wsgate_client_t *c, const wsgate_call_t *call, wsgate_response_t *res);

int wsgate_post(wsgate_client_t *c, const char *id, const void *data, size_t len,
		wsgate_response_t *res);
int wsgate_get(wsgate_client_t *c, const char *id, wsgate_response_t *res);
int wsgate_delete(wsgate_client_t *c, const char *id, wsgate_response_t *res);
int wsgate_list(wsgate_client_t *c, unsigned limit, const char *cursor, const char *channel,
		wsgate_response_t *res);
int wsgate_publish(wsgate_client_t *c, const char *channel, const void *data, size_t len,
		   wsgate_response_t *res);
/* 204 when done (joining twice and leaving a channel one is not in too). */
int wsgate_join(wsgate_client_t *c, const char *id, const char *channel, wsgate_response_t *res);
int wsgate_leave(wsgate_client_t *c, const char *id, const char *channel, wsgate_response_t *res);
/* Every open connection of the endpoint's stage: {"queued": N, "skipped": M}. */
int wsgate_broadcast(wsgate_client_t *c, const void *data, size_t len, wsgate_response_t *res);

/* The non-blocking variant (see the top of this file). */
typedef struct wsgate_req wsgate_req_t;

/* Builds and signs the request, resolves the host and starts connecting.
 * 0, or a negative code; either way *out is a request (NULL only on
 * WSGATE_ERR_NOMEM) to destroy, whose response's ->error says why it
 * failed and whose later steps return the same code. */
int wsgate_req_start(wsgate_client_t *c, const wsgate_call_t *call, wsgate_req_t **out);
int wsgate_req_fd(const wsgate_req_t *r);
/* POLLIN and/or POLLOUT. */
int wsgate_req_events(const wsgate_req_t *r);
/* WSGATE_AGAIN, WSGATE_OK (answered) or a negative code. */
int wsgate_req_step(wsgate_req_t *r);
/* After WSGATE_OK, the answer; after a failure, its error text is in
 * ->error. Owned by the request. */
const wsgate_response_t *wsgate_req_response(const wsgate_req_t *r);
void wsgate_req_destroy(wsgate_req_t *r);

/* The bytes a call would send (the whole HTTP/1.1 request), signed for
 * now_s (epoch seconds) when the client has keys: for tests and for
 * --debug output. Returns 0 and a malloc'd *out of *out_len bytes
 * (NUL-terminated), or a negative code. */
int wsgate_build_request(const wsgate_client_t *c, const wsgate_call_t *call, long long now_s,
			 char **out, size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif
