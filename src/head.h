/* Request heads read by the gateway itself before libwebsockets sees the
 * socket (see conn.c): bytes are accumulated here and parsed incrementally
 * by http-parser. Kept apart because http_parser.h and libwebsockets.h
 * both define enum http_status and cannot share a translation unit.
 *
 * Also home of the HTTP/1.1 syntax rules shared with httpreq.c: http-parser
 * 2.9 is lenient where a proxy must not be (spaces in header names, obs-fold,
 * tabs in the request target), so every byte of a head goes through a strict
 * RFC 9112 scanner first, and the framing headers are checked once complete. */
#ifndef GW_HEAD_H
#define GW_HEAD_H

#include "buf.h"

#include <stddef.h>

/* DONE: a complete, well-formed head. BAD answers 400, TOO_LARGE 431. */
enum gw_head_status { GW_HEAD_MORE = 0, GW_HEAD_DONE, GW_HEAD_BAD, GW_HEAD_TOO_LARGE };

typedef struct gw_head gw_head_t;

gw_head_t *gw_head_create(size_t max_bytes);
void gw_head_destroy(gw_head_t *h);
/* Appends bytes and parses them; once DONE, further bytes are kept as-is
 * (data sent before the handshake completed). BAD and TOO_LARGE stay. */
enum gw_head_status gw_head_feed(gw_head_t *h, const char *data, size_t len);

gw_str_t gw_head_url(const gw_head_t *h);
int gw_head_is_get(const gw_head_t *h);
/* An HTTP/1.1 Upgrade: websocket request. */
int gw_head_is_websocket(const gw_head_t *h);
size_t gw_head_count(const gw_head_t *h);
void gw_head_at(const gw_head_t *h, size_t i, gw_str_t *name, gw_str_t *value);
/* First header with this name (case-insensitive), or {NULL, 0}. */
gw_str_t gw_head_get(const gw_head_t *h, const char *name);
/* Every byte received so far, and how many of them make up the head. */
gw_str_t gw_head_bytes(const gw_head_t *h);
size_t gw_head_length(const gw_head_t *h);

/* Everything libwebsockets 4.1 would refuse in a WebSocket upgrade head
 * that the gateway itself accepts, checked before $connect is called so
 * that an approved head is never dropped by libwebsockets afterwards (a
 * "ghost" connection: $connect without $disconnect). lws_space is the
 * header space libwebsockets was given (max_http_header_data, default
 * 4096). DONE when libwebsockets will take it, else BAD (answer 400) or
 * TOO_LARGE (431), with a short reason in *why (static text). Call on a
 * DONE head for which gw_head_is_websocket() is true. */
enum gw_head_status gw_head_check_websocket(const gw_head_t *h, size_t lws_space,
					    const char **why);

/* --- RFC 9112 syntax, shared with httpreq.c --- */

/* Strict byte-level check of a request head (request line, field lines,
 * CRLF, no obs-fold); it stops at the end of the head. Incremental: each
 * byte is looked at once. */
typedef struct gw_http_scan {
	int state;
	size_t n; /* bytes in the current element (method, version, blank lines) */
	char version[8];
} gw_http_scan_t;

void gw_http_scan_init(gw_http_scan_t *s);
/* Scans up to len bytes: MORE (all used), DONE (*used = bytes up to and
 * including the head's final LF) or BAD. Not to be called again once DONE
 * or BAD, until gw_http_scan_init. */
enum gw_head_status gw_http_scan(gw_http_scan_t *s, const char *p, size_t len, size_t *used);

/* RFC 9110 §5.6.2 token (non-empty). */
int gw_http_is_token(const char *p, size_t n);

/* The rules on a complete head's fields that http-parser does not enforce
 * (RFC 9112 §3.2, §6.1, §6.3): exactly one valid Host in HTTP/1.1, at most
 * one in 1.0; Content-Length digits only, repeated only with the same value;
 * Transfer-Encoding ending in chunked, chunked only once, never with
 * Content-Length nor in HTTP/1.0 (other codings are left to the caller,
 * which answers 501). 0, or -1 with *why set. */
int gw_http_check_fields(const gw_str_t *names, const gw_str_t *values, size_t n,
			 int http_minor, const char **why);

#endif
