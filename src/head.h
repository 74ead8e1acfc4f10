/* Request heads read by the gateway itself before libwebsockets sees the
 * socket (see conn.c): bytes are accumulated here and parsed incrementally
 * by http-parser. Kept apart because http_parser.h and libwebsockets.h
 * both define enum http_status and cannot share a translation unit. */
#ifndef GW_HEAD_H
#define GW_HEAD_H

#include "buf.h"

#include <stddef.h>

enum gw_head_status { GW_HEAD_MORE = 0, GW_HEAD_DONE, GW_HEAD_BAD, GW_HEAD_TOO_LARGE };

typedef struct gw_head gw_head_t;

gw_head_t *gw_head_create(size_t max_bytes);
void gw_head_destroy(gw_head_t *h);
/* Appends bytes and parses them; once DONE, further bytes are kept as-is
 * (data sent before the handshake completed). */
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

#endif
