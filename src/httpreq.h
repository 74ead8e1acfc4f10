/* HTTP/1.1 requests for REST routes, parsed incrementally by http-parser
 * (kept apart from libwebsockets.h, see head.h). The body is gathered into
 * one buffer that the caller may take over, so a request body is copied
 * once on its way to the integration. */
#ifndef GW_HTTPREQ_H
#define GW_HTTPREQ_H

#include "buf.h"

#include <stddef.h>

enum gw_req_status {
	GW_REQ_MORE = 0,
	GW_REQ_DONE,
	GW_REQ_BAD,
	GW_REQ_HEAD_TOO_LARGE,
	GW_REQ_BODY_TOO_LARGE, /* known from Content-Length, before reading it */
};

typedef struct gw_req gw_req_t;

gw_req_t *gw_req_create(size_t max_head, size_t max_body);
void gw_req_destroy(gw_req_t *r);
/* Ready for the next request on the same connection. */
void gw_req_reset(gw_req_t *r);
/* Parses what it can of data; *used tells how much was consumed (the rest
 * belongs to the next request). */
enum gw_req_status gw_req_feed(gw_req_t *r, const char *data, size_t len, size_t *used);

const char *gw_req_method(const gw_req_t *r);
gw_str_t gw_req_path(const gw_req_t *r);  /* raw, as sent */
gw_str_t gw_req_query(const gw_req_t *r); /* raw, without '?' */
size_t gw_req_header_count(const gw_req_t *r);
void gw_req_header(const gw_req_t *r, size_t i, gw_str_t *name, gw_str_t *value);
gw_str_t gw_req_get(const gw_req_t *r, const char *name);
int gw_req_keep_alive(const gw_req_t *r);
/* The head is complete, asks for "Expect: 100-continue", and the body has
 * not arrived yet. */
int gw_req_wants_continue(const gw_req_t *r);
/* The reason phrase of an HTTP status, for status lines the gateway writes. */
const char *gw_http_reason(int status);
/* Hop-by-hop headers (RFC 9110 §7.6.1) and Content-Length, which a proxy
 * must not forward as they are. */
int gw_http_hop_by_hop(const char *name, size_t len);

/* The body; gw_buf_t so that it can be swapped out without a copy. */
gw_buf_t *gw_req_body(gw_req_t *r);

#endif
