/* The process's and each loop's own state (struct gw_gateway, struct
 * gw_worker_own): shared by gateway.c, which creates, runs and destroys
 * them, and worker.c, the services modules below use. No other file
 * includes this. */
#ifndef GW_GATEWAY_OWN_H
#define GW_GATEWAY_OWN_H

#include "core.h"

#include <pthread.h>

/* The process: what the event loops (workers) share: read-only
 * configuration, the LMDB registry (thread-safe by itself), the TLS
 * context, and each other. Loops reach it as gw->sh, other modules
 * through the accessors in core.h. */
struct gw_gateway {
	gw_config_t *cfg;
	gw_registry_t *reg;
	SSL_CTX *tls;
	unsigned n_workers;
	struct gw_worker **workers;
	pthread_t *threads;
	int drain_seconds;
	int send_timeout_s; /* --send-timeout */
	unsigned disconnect_retry_seconds; /* outbox.h */
	double disconnect_rate; /* previous-run $disconnect calls per second */
	int listen_fd, mgmt_fd; /* shared by the loops, each with its own dup */
	int port, mgmt_port;
	/* Hot reload (gateway.c): one loader thread at a time reads routes
	 * again; each loop swaps in the new snapshot from its inbox. */
	char *routes;
	int reload_needs_mgmt_auth; /* gw_gateway_opts_t */
	int mgmt_on_gateway;        /* gw_gateway_opts_t */
	pthread_mutex_t reload_lock;
	pthread_t reload_thread;
	int reload_started;  /* a loader thread exists, not joined yet */
	int reload_running;  /* it has not finished */
	int reload_again;    /* asked again while it ran */
	unsigned reload_gen;     /* the latest snapshot handed to the loops */
	unsigned reload_waiting; /* loops yet to swap it in */
};

/* One loop's own state, which no other module reads: its listeners and
 * signals, request IDs, the flush round, accept pauses, the stop and
 * drain, and the inbox other loops post to. */
struct gw_worker_own {
	gw_worker_t *gw;
	gw_watch_t listener;
	gw_watch_t mgmt_listener;
	gw_watch_t sigwatch;
	uint64_t request_seq;
	unsigned char request_salt[6];
	int stopping;
	int drain_seconds;
	lws_sorted_usec_list_t flush_timer;
	size_t flush_left; /* connections still to look at in this round */
	lws_sorted_usec_list_t accept_timer;
	int accept_paused; /* 1 gateway, 2 management listener */
	lws_sorted_usec_list_t stop_timer;
	int stop_dropped; /* the drain deadline passed: sockets were reset */
	int stop_deadline_passed;
	/* Cross-loop messages (management operations), and the stop request. */
	pthread_mutex_t inbox_lock;
	lws_dll2_owner_t inbox;
	int stop_requested; /* written by another loop: atomics only */
	gw_config_t *next_cfg; /* a reload's snapshot, under inbox_lock */
	unsigned next_gen;
	int ctx_alive;
	/* libev drives libwebsockets (its epoll backend): its default poll()
	 * walked every socket of the loop on each service round. */
	struct ev_loop *evloop;
	lws_sorted_usec_list_t ev_beat; /* run_loop(): libev timer workaround */
};

#endif
