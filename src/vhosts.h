/* The libwebsockets vhosts of one event loop: the gateway's and the
 * management API's, and one per WebSocket subprotocol in use. Each listens
 * on a unix socket in a private folder (never reachable: see vhosts.c) and
 * only receives sockets the gateway adopts. */
#ifndef GW_VHOSTS_H
#define GW_VHOSTS_H

#include <stdint.h>

struct lws_context;
struct lws_vhost;
struct lws_protocols;

typedef struct gw_vhosts gw_vhosts_t;

/* NULL only when memory runs out. worker names the private folder. */
gw_vhosts_t *gw_vhosts_create(struct lws_context *ctx, uint32_t worker);
/* After lws_context_destroy(): libwebsockets points into the module's
 * memory for as long as its vhosts live. NULL is allowed. */
void gw_vhosts_destroy(gw_vhosts_t *v);
/* A fixed vhost (at most two: gateway, management) serving protos, which
 * must outlive the context. */
struct lws_vhost *gw_vhosts_add(gw_vhosts_t *v, const char *name,
				const struct lws_protocols *protos);
/* The vhost whose one WebSocket protocol (a copy of tmpl) is named proto,
 * with a reference taken (give it back with gw_vhosts_subprotocol_put), or
 * NULL when proto is not a token or every entry is in use. */
struct lws_vhost *gw_vhosts_subprotocol_get(gw_vhosts_t *v, const char *proto,
					     const struct lws_protocols *tmpl,
					     int client_chosen);
void gw_vhosts_subprotocol_put(gw_vhosts_t *v, struct lws_vhost *vh);

struct lws;
/* Marks a management connection adopted from the gateway listener (conn.c,
 * rest.c), and tells one (mgmt.c): its next request may be REST, which
 * libwebsockets cannot hand back, so each answer ends it ("Connection:
 * close") and the client's next request comes on a new socket. */
void gw_vhosts_mark_from_gateway(struct lws *wsi);
int gw_vhosts_from_gateway(struct lws *wsi);

#endif
