/* The gateway: the process-wide object (gw_gateway_t) owning the
 * listening sockets, the registry, the TLS context, the configuration and
 * its reload, and the event loops (gw_worker_t, one libwebsockets context
 * each) serving the WebSocket/HTTP listener, the management listener and
 * the integration client. main.c only parses the command line and calls
 * this. */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include "config.h"
#include "tlscert.h"

typedef struct gw_gateway gw_gateway_t;
typedef struct gw_worker gw_worker_t;

typedef struct gw_gateway_opts {
	const char *listen_host;
	int listen_port;
	const char *mgmt_host;
	int mgmt_port;
	const char *data_dir;
	/* certificate/key pairs: when any, the gateway listener speaks TLS
	 * (wss://, https://), the certificate chosen by SNI */
	gw_tls_files_t tls;
	/* seconds given to $disconnect calls on shutdown before exiting (what
	 * is left is sent by the next start) */
	int drain_seconds;
	/* seconds a close may wait for a client that does not read before its
	 * socket is reset (0: GW_CLOSE_TIMEOUT_S), like nginx's send_timeout */
	int send_timeout_s;
	/* how long a $disconnect is retried after its close (0: default) */
	unsigned disconnect_retry_seconds;
	/* $disconnect calls of an earlier run sent per second (0: default) */
	unsigned disconnect_rate;
	/* event loops sharing the listeners (0: one per core) */
	unsigned workers;
	/* the API file or folder, read again on reload */
	const char *routes;
	/* The management listener is beyond loopback without --mgmt-insecure:
	 * a reload must keep managementAuth (main.c checked the first load). */
	int reload_needs_mgmt_auth;
	/* --mgmt-on-gateway: the gateway listener also serves
	 * /{stage}/@connections (without it, only under managementAuth) */
	int mgmt_on_gateway;
} gw_gateway_opts_t;

/* Binds the listeners (shared by the event loops) and opens the registry;
 * takes ownership of cfg. On failure writes the reason into err and
 * returns -1. */
int gw_gateway_create(gw_gateway_t **out, gw_config_t *cfg,
		      const gw_gateway_opts_t *opts, char *err, size_t errlen);
/* Ports actually bound (after port 0). */
int gw_gateway_port(const gw_gateway_t *g);
int gw_gateway_mgmt_port(const gw_gateway_t *g);
/* Runs every loop (the first in the calling thread) until SIGINT/SIGTERM,
 * then closes every connection with 1001, waits for their $disconnect
 * calls and returns 0. */
int gw_gateway_run(gw_gateway_t *g);
void gw_gateway_destroy(gw_gateway_t *g);
/* Reads the API files again (SIGHUP), on a thread of its own: a valid
 * configuration is swapped in by every loop at its next safe point, for
 * new connections and requests; open connections keep the snapshot they
 * connected under. An invalid one is refused whole and logged. From any
 * loop's thread. */
void gw_gateway_reload(gw_gateway_t *g);

#endif
