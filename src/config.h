/* API files: loading and validating the JSON files of routes/ into an immutable,
 * read-only tree. Everything a message needs at run time (limits, the
 * integration of each route, the backend's resolved address) is decided
 * here, once, so that nothing on the event loop parses or resolves. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

/* A synchronous Lambda invocation's payload limit. */
#define DEFAULT_MAX_EVENT_BYTES 6291456

#include "buf.h"

#include <stddef.h>

#include "select.h"
#include "throttle.h"
#include "iplimit.h"

typedef enum gw_integration_type {
	GW_INTEG_AWS_PROXY = 0, /* Lambda proxy events, Lambda proxy responses */
	GW_INTEG_HTTP_PROXY,    /* the message itself, forwarded as a request */
	GW_INTEG_MOCK,          /* answered by the gateway */
} gw_integration_type_t;

/* Sources of request parameter mapping (reference §6.3). */
typedef enum gw_param_source {
	GW_SRC_CONTEXT,    /* context.<var> */
	GW_SRC_BODY,       /* route.request.body.<path> */
	GW_SRC_HEADER,     /* route.request.header.<name> ($connect) */
	GW_SRC_QUERY,      /* route.request.querystring.<name> ($connect) */
	GW_SRC_STAGE_VAR,  /* stageVariables.<name> */
	GW_SRC_STATIC,     /* 'text' */
} gw_param_source_t;

typedef struct gw_param_map {
	int to_query;      /* integration.request.querystring.X, else .header.X */
	char *name;        /* X */
	gw_param_source_t source;
	char *arg;         /* variable name, header name, static text */
	gw_rse_t *path;    /* GW_SRC_BODY */
} gw_param_map_t;

typedef struct gw_integration {
	char *name;
	gw_integration_type_t type;
	char *uri;         /* after ${stageVariables.X} substitution */
	char *method;      /* HTTP_PROXY; NULL: POST for messages, the
			    * client's method for REST routes */
	int timeout_ms;
	gw_param_map_t *params;
	size_t n_params;
	int mock_status;   /* MOCK */
	char *mock_body;   /* MOCK, may hold ${context.X} / ${stageVariables.X} */
	char *ca_file;     /* https: CA bundle instead of the system's */
	unsigned max_connections, max_queue;
	/* Parsed from uri at load time. */
	int tls;
	char *host;    /* as written, for the Host header and TLS SNI */
	char *address; /* numeric address resolved at load time */
	int port;
	char *path;    /* path and query */
	/* Unique across every configuration this process loads (reloads
	 * included): each event loop binds index i to a connection pool, and
	 * a connection of an older snapshot still finds its own binding. */
	unsigned index;
} gw_integration_t;

typedef struct gw_route {
	char *key;
	size_t key_len;
	const gw_integration_t *integration;
	int route_response;
	unsigned max_in_flight; /* calls per connection at once (1: in order) */
	/* Its messages' token bucket, shared by the loops (its throttling or
	 * the stage's); NULL: not throttled. */
	gw_throttle_t *throttle;
	unsigned metric_slot; /* metrics.h: its series, by API and key */
} gw_route_t;

/* REST routes ("GET /rooms/{room}/messages", "ANY /api/{proxy+}"). */
enum gw_seg_kind { GW_SEG_STATIC = 0, GW_SEG_PARAM, GW_SEG_GREEDY };

typedef struct gw_rest_seg {
	enum gw_seg_kind kind;
	char *text; /* static text, or the parameter's name */
	size_t len;
} gw_rest_seg_t;

typedef struct gw_rest_route {
	gw_route_t route;  /* key, integration */
	char method[8];    /* GET, ..., or ANY */
	gw_rest_seg_t *segs;
	size_t n_segs;
} gw_rest_route_t;

typedef struct gw_cors {
	int enabled;
	char **origins; /* "*" allowed */
	size_t n_origins;
	char *methods;  /* comma-joined, for Access-Control-Allow-Methods */
	char *headers;
	char *expose;
	int max_age;    /* -1: not sent */
	int credentials;
} gw_cors_t;

typedef struct gw_stage_var {
	char *name;
	char *value;
} gw_stage_var_t;

/* managementAuth: a SigV4 key that may manage this API's connections. */
typedef struct gw_mgmt_key {
	char *access_key_id;
	char *secret;      /* never logged; wiped when the configuration is freed */
	size_t secret_len;
	char **regions;    /* the regions its signatures may name; NULL: any */
	size_t n_regions;
} gw_mgmt_key_t;

/* Authorizers on $connect (reference §5, authorizer.h). */
enum gw_authz_type { GW_AUTHZ_REQUEST = 0, GW_AUTHZ_JWT };
enum gw_identity_kind { GW_ID_HEADER, GW_ID_QUERY, GW_ID_STAGE_VAR };

typedef struct gw_identity_source {
	enum gw_identity_kind kind;
	char *name;
} gw_identity_source_t;

struct gw_authz_cache;
struct gw_authz_keys;
struct gw_jwks;

typedef struct gw_authorizer {
	char *name;
	enum gw_authz_type type;
	/* REQUEST: the call's route: key $connect, the authorizer's integration
	 * (AWS_PROXY), for the one invoke path. */
	gw_route_t route;
	gw_identity_source_t *sources;
	size_t n_sources;
	unsigned ttl_s;                /* authorizerResultTtlInSeconds; 0: no cache */
	struct gw_authz_cache *cache;  /* shared by the loops; NULL when ttl_s is 0 */
	/* JWT */
	char *issuer;
	char **audiences;
	size_t n_audiences;
	char *jwks_file;
	unsigned leeway_s;
	struct gw_authz_keys *keys;    /* the JWKS, read at load */
	unsigned jwks_refresh_s;       /* jwksUri: jwksRefreshSeconds */
	struct gw_jwks *jwks;          /* jwksUri: the keys kept fresh; NULL: keys */
} gw_authorizer_t;

/* AWS's limit on an API name; the registry record holds that much. */
#define GW_API_NAME_MAX 128

typedef struct gw_api {
	char *file;
	char *name;
	char api_id[11]; /* requestContext.apiId: 10 of [a-z0-9], as AWS's */
	char account_id[13]; /* REST events' requestContext.accountId: 12 digits */
	char *stage;
	char *base_path;
	char *route_selection_expression;
	gw_rse_t *rse;
	gw_stage_var_t *stage_vars;
	size_t n_stage_vars;
	size_t max_message_bytes;
	size_t max_frame_bytes; /* one WebSocket frame, in and out (AWS: 32 KB) */
	unsigned idle_timeout_s;     /* 0 = off */
	unsigned max_connection_s;   /* 0 = off */
	size_t outbound_buffer_bytes; /* per-connection send queue bound */
	gw_integration_t *integrations;
	size_t n_integrations;
	gw_route_t *routes;
	size_t n_routes;
	gw_rest_route_t *rest_routes;
	size_t n_rest_routes;
	gw_cors_t cors;
	size_t max_request_bytes; /* REST bodies */
	size_t max_event_bytes;   /* REST Lambda events (AWS's 6 MiB payload limit) */
	/* Reserved routes, or NULL when the API does not define them. */
	const gw_route_t *connect_route;
	const gw_route_t *disconnect_route;
	const gw_route_t *default_route;
	/* Security at the edge (issue 12): checked on each upgrade, before any
	 * integration call (admit.h, throttle.h). */
	int origins_restricted;    /* allowedOrigins given */
	char **allowed_origins;
	size_t n_allowed_origins;
	int api_key_required;      /* routes.$connect.apiKeyRequired */
	char **api_keys;           /* never logged */
	size_t n_api_keys;
	char *api_key_query;       /* query parameter that may carry it, or NULL */
	gw_throttle_t *upgrade_throttle; /* $connect's or the stage's; NULL: none */
	gw_rate_t conn_messages;   /* per connection: messages per second */
	gw_rate_t conn_bytes;      /* per connection: bytes per second */
	int ip_limited;            /* sourceIpLimits given */
	gw_iplimit_rule_t ip_rule;
	/* authorizers; the one routes.$connect.authorizer names, or NULL */
	gw_authorizer_t *authorizers;
	size_t n_authorizers;
	const gw_authorizer_t *connect_authorizer;
	/* managementAuth: when set, the management API takes only requests
	 * signed (SigV4) by one of these keys for this API's connections. */
	int mgmt_auth;
	gw_mgmt_key_t *mgmt_keys;
	size_t n_mgmt_keys;
	/* Stable for the life of the process, across reloads: the same name
	 * and stage always get the same number (config.c keeps the table).
	 * Connection IDs carry it (connid.h); GW_CONFIG_API_ID_NONE once the
	 * table is full. */
	unsigned id;
	/* accessLog (accesslog.h), NULL: none */
	struct gw_alog_format *access_log;
} gw_api_t;

/* A configuration is an immutable snapshot, counted by reference: never
 * changed after it is loaded, shared by the event loops, and each
 * connection holds the one it connected under, so a later issue can swap
 * in a new one (hot reload) without touching open sockets. */
typedef struct gw_config {
	gw_api_t *apis;
	size_t n_apis;
	unsigned n_integrations; /* over all APIs */
	unsigned index_base;     /* their indexes: index_base .. + n_integrations */
	unsigned refs;           /* atomics only: loops are threads */
} gw_config_t;

/* Loads one API file, or every *.json in a folder (in name order). On
 * failure returns -1, leaves *out NULL and appends one line per problem to
 * err, each "FILE: KEY.PATH: what was expected". A loaded configuration
 * has one reference, the caller's. */
int gw_config_load(const char *path, gw_config_t **out, gw_buf_t *err);
/* One more reference (from any thread); returns cfg. */
gw_config_t *gw_config_ref(gw_config_t *cfg);
/* Drops a reference; the last one frees the snapshot. NULL is a no-op. */
void gw_config_unref(gw_config_t *cfg);
/* The same as gw_config_unref: drops the loader's reference. */
void gw_config_free(gw_config_t *cfg);

/* Host names of integration URIs are not resolved (address = host): for
 * fuzzing, where a lookup per input would be the whole cost. */
#define GW_CONFIG_NO_RESOLVE 1u
/* One API file held in memory; name stands for the file in messages.
 * Same checks and same contract as gw_config_load. */
int gw_config_parse_buffer(const char *name, const char *data, size_t len, unsigned flags,
			   gw_config_t **out, gw_buf_t *err);

/* The route whose key equals key exactly, or NULL. */
const gw_route_t *gw_config_route(const gw_api_t *api, const char *key, size_t len);
const char *gw_config_stage_var(const gw_api_t *api, const char *name, size_t len);
/* The context variables that requestParameters and MOCK bodies may name. */
int gw_config_context_var_known(const char *name, size_t len);

/* Whether the management API is authenticated: every API file has a
 * managementAuth (the loader refuses a configuration where only some do). */
int gw_config_mgmt_auth(const gw_config_t *cfg);
/* The key of api named access_key_id, or NULL. */
const gw_mgmt_key_t *gw_config_mgmt_key(const gw_api_t *api, const char *access_key_id);
/* Whether key's signatures may name region. */
int gw_config_mgmt_key_region(const gw_mgmt_key_t *key, const char *region);
/* API ids (gw_api_t.id): the table holds at most this many names and
 * stages, which is what a connection ID's byte can name. */
#define GW_CONFIG_API_ID_NONE 255u
/* The stage of API id, NULL when no configuration of this process had it.
 * Thread-safe, and never changes once returned: an ID issued under an
 * older snapshot keeps its stage after a reload. */
const char *gw_config_api_stage(unsigned id);
/* The name of API id, NULL as for gw_config_api_stage (metrics labels). */
const char *gw_config_api_name(unsigned id);
/* The largest maxMessageBytes any API with this stage had in this
 * process (0: the stage was never loaded): a stage that a reload removed
 * still reaches the connections opened under it. */
size_t gw_config_stage_history(const char *stage);
/* Snapshots allocated and not yet freed (a reload reports the older ones
 * still held by open connections and calls in flight). */
unsigned gw_config_live(void);
/* Whether a live snapshot has an integration with this index (from any
 * thread): once not, none ever will again, so a loop may drop its pool
 * binding (hot reload frees pools no configuration names). */
int gw_config_index_live(unsigned index);

/* The API whose basePath equals the request path (query excluded). */
const gw_api_t *gw_config_api_for_path(const gw_config_t *cfg, const char *path,
				       size_t len);

#endif
