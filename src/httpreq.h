/* HTTP/1.1 requests from clients: the one request parser of the gateway,
 * used by the upgrade path (conn.c, which stops after the head and keeps
 * every byte for libwebsockets) and by REST routes (rest.c, which reads the
 * body too). The management API is read by libwebsockets itself.
 *
 * Bytes go through a strict RFC 9112 scanner before http-parser sees them:
 * http-parser 2.9 is lenient where a proxy must not be (spaces in header
 * names, obs-fold, tabs in the request target). The framing rules are
 * checked once the head is complete. Kept apart from libwebsockets.h:
 * http_parser.h and libwebsockets.h both define enum http_status. */
#ifndef GW_HTTPREQ_H
#define GW_HTTPREQ_H

#include "buf.h"

#include <stddef.h>

/* BAD answers 400, HEAD_TOO_LARGE 431, BODY_TOO_LARGE 413. */
enum gw_req_status {
	GW_REQ_MORE = 0,
	GW_REQ_DONE,
	GW_REQ_BAD,
	GW_REQ_HEAD_TOO_LARGE,
	GW_REQ_BODY_TOO_LARGE, /* known from Content-Length, before reading it */
};

typedef struct gw_req gw_req_t;

/* A whole request: a head of at most max_head bytes, then a body of at
 * most max_body gathered into one buffer that the caller may take over, so
 * a request body is copied once on its way to the integration. */
gw_req_t *gw_req_create(size_t max_head, size_t max_body);
/* Stops after the head: DONE once it is complete. Every byte fed is kept,
 * the head and what follows it (data sent before the handshake completed),
 * at most max_bytes in all. */
gw_req_t *gw_req_create_head(size_t max_bytes);
void gw_req_destroy(gw_req_t *r);
/* Ready for the next request on the same connection. */
void gw_req_reset(gw_req_t *r);
/* Parses what it can of data. *used (NULL when not wanted) tells how much
 * was consumed: for a whole request the rest belongs to the next one; in
 * head mode every byte is consumed (kept). A refusal stays. */
enum gw_req_status gw_req_feed(gw_req_t *r, const char *data, size_t len, size_t *used);

const char *gw_req_method(const gw_req_t *r);
gw_str_t gw_req_url(const gw_req_t *r);	  /* the request target, raw, as sent */
gw_str_t gw_req_path(const gw_req_t *r);  /* the target up to '?' */
gw_str_t gw_req_query(const gw_req_t *r); /* raw, without '?' */
size_t gw_req_header_count(const gw_req_t *r);
void gw_req_header(const gw_req_t *r, size_t i, gw_str_t *name, gw_str_t *value);
/* First header with this name (case-insensitive), or {NULL, 0}; and how
 * many headers have this name. */
gw_str_t gw_req_get(const gw_req_t *r, const char *name);
size_t gw_req_count(const gw_req_t *r, const char *name);
int gw_req_keep_alive(const gw_req_t *r);
/* An HTTP/1.1 Upgrade: websocket request. */
int gw_req_is_websocket(const gw_req_t *r);
/* The head is complete, asks for "Expect: 100-continue", and the body has
 * not arrived yet. */
int gw_req_wants_continue(const gw_req_t *r);
/* The body; gw_buf_t so that it can be swapped out without a copy. */
gw_buf_t *gw_req_body(gw_req_t *r);
/* The bytes kept, as received: the head and, in head mode, what followed
 * it; and how many of them make up the head. */
gw_str_t gw_req_bytes(const gw_req_t *r);
size_t gw_req_head_length(const gw_req_t *r);

/* Everything libwebsockets 4.1 would refuse in a WebSocket upgrade head
 * that the gateway itself accepts, checked before $connect is called so
 * that an approved head is never dropped by libwebsockets afterwards (a
 * "ghost" connection: $connect without $disconnect). lws_space is the
 * header space libwebsockets was given (max_http_header_data, default
 * 4096). DONE when libwebsockets will take it, else BAD (answer 400) or
 * HEAD_TOO_LARGE (431), with a short reason in *why (static text). Call on
 * a complete head for which gw_req_is_websocket() is true. */
enum gw_req_status gw_req_check_websocket(const gw_req_t *r, size_t lws_space,
					  const char **why);
/* The same for any head handed to libwebsockets (the management API): its
 * fragment and space limits and the header names its parser loses, past
 * which it drops the connection without an answer. */
enum gw_req_status gw_req_check_lws(const gw_req_t *r, size_t lws_space, const char **why);

/* --- RFC 9110 syntax, for what the gateway writes --- */

/* A token (§5.6.2, non-empty): a header name. */
int gw_http_is_token(const char *p, size_t n);
/* The value of a hexadecimal digit, or -1. */
int gw_http_hexval(int c);
/* 1 if p (len bytes) starts with the path segment "@connections" (or
 * "%40connections", as the management API decodes it), ending there or at
 * a '/': AWS's management path, after its "/{stage}". */
int gw_http_conns_segment(const char *p, size_t len);
/* The reason phrase of an HTTP status, for status lines the gateway writes. */
const char *gw_http_reason(int status);
/* Hop-by-hop headers (§7.6.1) and Content-Length, which a proxy must not
 * forward as they are. */
int gw_http_hop_by_hop(const char *name, size_t len);

#endif
