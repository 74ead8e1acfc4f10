/* HTTP/1.1 responses from integrations, parsed incrementally by
 * http-parser (kept apart from libwebsockets.h, see httpreq.h). */
#ifndef GW_HTTPRESP_H
#define GW_HTTPRESP_H

#include "buf.h"

#include <stddef.h>

enum gw_resp_status { GW_RESP_MORE = 0, GW_RESP_DONE, GW_RESP_BAD, GW_RESP_TOO_LARGE };

typedef struct gw_resp gw_resp_t;

gw_resp_t *gw_resp_create(size_t max_body);
void gw_resp_destroy(gw_resp_t *r);
/* Ready for the next response on the same connection. */
void gw_resp_reset(gw_resp_t *r);
/* Feeds bytes; len 0 means the peer closed (ends a body delimited by it).
 * Bytes after a complete response are an error for a client that does not
 * pipeline: *extra tells whether there were any. */
enum gw_resp_status gw_resp_feed(gw_resp_t *r, const char *data, size_t len, int *extra);

int gw_resp_status_code(const gw_resp_t *r);
int gw_resp_keep_alive(const gw_resp_t *r);
size_t gw_resp_header_count(const gw_resp_t *r);
/* NUL-terminated name and value of header i (valid until the next feed). */
void gw_resp_header(const gw_resp_t *r, size_t i, const char **name, const char **value);
gw_str_t gw_resp_body(const gw_resp_t *r);
gw_buf_t *gw_resp_body_buf(gw_resp_t *r);
/* The request was HEAD: the response has no body whatever its headers say
 * (call after gw_resp_reset, before feeding). */
void gw_resp_set_head(gw_resp_t *r, int head);

/* HTTP rules shared by everything that writes a header or a status line
 * built from what a peer sent (RFC 9110). */

/* A header name: gw_http_is_token (httpreq.h). */
/* A header value: VCHAR, obs-text, SP and HTAB only (no CR, LF, NUL or
 * other control characters). */
int gw_http_field_value(const char *s, size_t len);
/* Whether a response with this status may carry a body: not 1xx, 204 or
 * 304 (RFC 9110 §6.4.1); those end at their head. */
int gw_http_status_allows_body(int status);
/* Whether a client's request header may be forwarded to a backend. Not:
 * hop-by-hop headers and Content-Length, Host, Expect, the headers the
 * gateway sets itself (X-Forwarded-For/-Proto/-Host/-Port, Forwarded,
 * X-Amzn-RequestId, every X-Wsgate-*), and names that are not tokens.
 * The gateway then adds its own values (a client's X-Forwarded-For is kept
 * only as the left part of the gateway's, like nginx's
 * $proxy_add_x_forwarded_for). */
int gw_http_forwardable_header(const char *name, size_t len);

#endif
