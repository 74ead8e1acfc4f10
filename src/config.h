/* API files: loading and validating the JSON files of routes/ into an immutable,
 * read-only tree. Everything a message needs at run time (limits, the
 * integration of each route, the backend's resolved address) is decided
 * here, once, so that nothing on the event loop parses or resolves. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include "buf.h"

#include <stddef.h>

typedef enum gw_integration_type {
	GW_INTEG_AWS_PROXY = 0,
} gw_integration_type_t;

typedef struct gw_integration {
	char *name;
	gw_integration_type_t type;
	char *uri;
	int timeout_ms;
	/* Parsed from uri at load time. */
	int tls;
	char *host;    /* as written, for the Host header and TLS SNI */
	char *address; /* numeric address resolved at load time */
	int port;
	char *path;
} gw_integration_t;

typedef struct gw_route {
	char *key;
	const gw_integration_t *integration;
	int route_response;
} gw_route_t;

typedef struct gw_api {
	char *file;
	char *name;
	char *stage;
	char *base_path;
	char *route_selection_expression;
	size_t max_message_bytes;
	unsigned idle_timeout_s;     /* 0 = off */
	unsigned max_connection_s;   /* 0 = off */
	size_t outbound_buffer_bytes; /* per-connection send queue bound */
	gw_integration_t *integrations;
	size_t n_integrations;
	gw_route_t *routes;
	size_t n_routes;
	/* Reserved routes, or NULL when the API does not define them. */
	const gw_route_t *connect_route;
	const gw_route_t *disconnect_route;
	const gw_route_t *default_route;
} gw_api_t;

typedef struct gw_config {
	gw_api_t *apis;
	size_t n_apis;
} gw_config_t;

/* Loads one API file, or every *.json in a folder (in name order). On
 * failure returns -1, leaves *out NULL and appends one line per problem to
 * err, each "FILE: KEY.PATH: what was expected". */
int gw_config_load(const char *path, gw_config_t **out, gw_buf_t *err);
void gw_config_free(gw_config_t *cfg);

/* The API whose basePath equals the request path (query excluded). */
const gw_api_t *gw_config_api_for_path(const gw_config_t *cfg, const char *path,
				       size_t len);

#endif
