/* REST routes on the gateway listener: every plain HTTP request (not a
 * WebSocket upgrade on an API's basePath) is served here, on the gateway's
 * own epoll set: keep-alive, routing by "METHOD /path" with AWS's priority,
 * AWS_PROXY (payload format 2.0), HTTP_PROXY and MOCK integrations, CORS. */
#ifndef GW_REST_H
#define GW_REST_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_worker gw_worker_t;
typedef struct gw_rest gw_rest_t;
typedef struct gw_api gw_api_t;
typedef struct gw_rest_route gw_rest_route_t;
typedef struct gw_rest_ctx gw_rest_ctx_t;
struct gw_config;

/* One loop's REST state (its open connections, the body limit), held
 * opaquely by the loop. NULL only when memory runs out. */
gw_rest_ctx_t *gw_rest_ctx_create(const struct gw_config *cfg);
/* A reload: requests read from now on take cfg's limits. */
void gw_rest_ctx_set_config(gw_rest_ctx_t *rc, const struct gw_config *cfg);
/* After gw_rest_free_all(). NULL is allowed. */
void gw_rest_ctx_destroy(gw_rest_ctx_t *rc);

/* Takes fd (a client socket whose request is still unread, or the plain
 * end of a TLS relay). */
void gw_rest_accept(gw_worker_t *gw, int fd, const char *source_ip, int tls);
/* Shutdown: idle connections close now, busy ones after their answer. */
void gw_rest_shutdown(gw_worker_t *gw);
void gw_rest_free_all(gw_worker_t *gw);
size_t gw_rest_count(const gw_worker_t *gw);

/* Route matching, exposed for unit tests: the route for method and path
 * (relative to the API's basePath), with up to max path parameters as
 * [start, len] offsets into path. NULL when nothing matches. */
const gw_rest_route_t *gw_rest_match(const gw_api_t *api, const char *method,
				     const char *path, size_t len, size_t (*params)[2],
				     size_t max);

#endif
