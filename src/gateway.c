#define _GNU_SOURCE
/* The event loop and its listeners. libwebsockets runs the loop; the
 * gateway's own sockets (the two listeners, sockets still reading their
 * request head or waiting for $connect, and a signalfd) live in one epoll
 * set that is itself adopted into libwebsockets as a raw file, so a single
 * poll() covers everything and nothing ever blocks. */
#include "core.h"
#include "gateway_own.h"
#include "accesslog.h"
#include "bus.h"
#include "channel.h"
#include "cluster.h"
#include "log.h"
#include "outbox.h"

#include <arpa/inet.h>
#include <errno.h>
#if GW_LIBEV
#include <ev.h>
#endif
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/rand.h>
#include <pthread.h>

#define FLUSH_INTERVAL_S 5
#define ACCEPT_PAUSE_MS 100
#define FLUSH_SLICE GW_REGISTRY_TOUCH_SLICE

static void worker_teardown(gw_worker_t *gw);
static void worker_free(gw_worker_t *gw);
static void shared_destroy(gw_gateway_t *sh);
static void begin_stop(gw_worker_t *gw, int sig);

static int bind_listener(const char *host, int port, int *out_port, char *err,
			 size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char ports[8];
	int fd = -1, one = 1, rc;
	struct sockaddr_storage sa;
	socklen_t salen = sizeof(sa);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(ports, sizeof(ports), "%d", port);
	rc = getaddrinfo(host, ports, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* No SO_REUSEPORT: it let a second process bind the same port and take
	 * half the connections. The loops share this one socket instead. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 4096))
		goto fail;
	if (getsockname(fd, (struct sockaddr *)&sa, &salen))
		goto fail;
	*out_port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
						   : ((struct sockaddr_in *)&sa)->sin_port);
	freeaddrinfo(res);
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return -1;
}

static int listener_add(gw_worker_t *gw, gw_watch_t *l)
{
	/* Every loop waits on the same socket: wake one, not all. */
	return gw_loop_add(gw->loop, l, EPOLLIN | EPOLLEXCLUSIVE);
}

static void on_accept_resume(lws_sorted_usec_list_t *sul)
{
	gw_worker_t *gw = lws_container_of(sul, struct gw_worker_own, accept_timer)->gw;
	gw_watch_t *ls[] = { &gw->own->listener, &gw->own->mgmt_listener };

	for (int i = 0; i < 2; i++)
		if ((gw->own->accept_paused & (1 << i)) && ls[i]->fd >= 0 && !gw->own->stopping)
			listener_add(gw, ls[i]);
	gw->own->accept_paused = 0;
}

/* Out of descriptors: stop watching the listener for a while instead of
 * waking up on it forever (nginx does the same). */
static void pause_accepting(gw_worker_t *gw, gw_watch_t *l)
{
	int bit = l == &gw->own->listener ? 1 : 2;

	if (gw->own->accept_paused & bit)
		return;
	gw_loop_del(gw->loop, l);
	if (!gw->own->accept_paused)
		lws_sul_schedule(gw->ctx, 0, &gw->own->accept_timer, on_accept_resume,
				 ACCEPT_PAUSE_MS * LWS_US_PER_MS);
	gw->own->accept_paused |= bit;
}

/* Descriptors kept for the management API, backend calls and the relay:
 * client connections stop short of the limit. */
static int fd_reserved(int fd)
{
	struct rlimit rl;
	rlim_t reserve;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return 0;
	reserve = rl.rlim_cur / 16;
	reserve = reserve < 16 ? 16 : reserve > 256 ? 256 : reserve;
	return (rlim_t)fd + reserve >= rl.rlim_cur;
}

static void shed(gw_worker_t *gw, int fd)
{
	static const char body[] = "{\"message\":\"Service Unavailable\"}";
	char busy[256], rid[24];
	int n;

	gw_worker_request_id(gw, rid); /* as on every refusal (conn.c) */
	n = snprintf(busy, sizeof(busy), "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
		     "application/json\r\nContent-Length: %zu\r\napigw-requestid: %s\r\n"
		     "Connection: close\r\n\r\n%s", sizeof(body) - 1, rid, body);
	(void)!send(fd, busy, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static void accept_all(gw_worker_t *gw, gw_watch_t *l)
{
	static const int one = 1;
	int client = l == &gw->own->listener;

	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				gw_log_limited(GW_LOG_WARN, 10000, "%s listener: %s; not accepting "
					       "for %d ms", client ? "gateway" : "management",
					       strerror(errno), ACCEPT_PAUSE_MS);
				pause_accepting(gw, l);
			} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				gw_log_limited(GW_LOG_WARN, 10000, "accept: %s", strerror(errno));
			}
			return;
		}
		if (client && fd_reserved(fd)) {
			gw_log_limited(GW_LOG_WARN, 10000, "near the descriptor limit: new "
				       "connections get 503 for %d ms", ACCEPT_PAUSE_MS);
			shed(gw, fd);
			pause_accepting(gw, l);
			return;
		}
		/* Answers are small and written whole: never wait for an ACK
		 * (Nagle held REST bodies 40 ms behind their headers). */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!client)
			gw_conn_accept_mgmt(gw, fd);
		else
			gw_conn_accept(gw, fd);
	}
}

static void stop_listening(gw_worker_t *gw)
{
	gw_watch_t *ls[] = { &gw->own->listener, &gw->own->mgmt_listener };

	for (int i = 0; i < 2; i++)
		gw_watch_close(gw, ls[i]);
	gw->own->accept_paused = 0;
}

static void on_stop_deadline(lws_sorted_usec_list_t *sul)
{
	gw_worker_t *gw = lws_container_of(sul, struct gw_worker_own, stop_timer)->gw;

	/* At the drain deadline the sockets of clients whose close is still
	 * not written are reset, so that each gets its $disconnect; those
	 * calls have the send timeout more to be answered. */
	if (!gw->own->stop_dropped) {
		size_t n = gw_conn_drop_all(gw);

		gw->own->stop_dropped = 1;
		if (n) {
			gw_warn("shutdown: %zu connections not closed after %d s: reset",
				n, gw->own->drain_seconds);
			lws_sul_schedule(gw->ctx, 0, &gw->own->stop_timer, on_stop_deadline,
					 (lws_usec_t)gw->sh->send_timeout_s * LWS_US_PER_SEC);
			return;
		}
	}
	gw_warn("shutdown: %zu connections and %zu integration calls still open after "
		"%d s, exiting anyway; %zu $disconnect calls stay in the outbox for the "
		"next start", gw_conn_count(gw), gw_backend_inflight(gw->be), gw->own->drain_seconds,
		gw_outbox_pending(gw->outbox));
	gw->own->stop_deadline_passed = 1;
}

static void begin_stop(gw_worker_t *gw, int sig)
{
	if (gw->own->stopping)
		return;
	if (sig)
		gw_info("signal %d: closing connections (1001) and stopping", sig);
	/* The first loop hears the signal and tells the others. */
	for (unsigned i = 0; sig && i < gw->sh->n_workers; i++) {
		gw_worker_t *w = gw->sh->workers[i];

		if (w == gw)
			continue;
		__atomic_store_n(&w->own->stop_requested, 1, __ATOMIC_SEQ_CST);
		lws_cancel_service(w->ctx);
	}
	gw->own->stopping = 1;
	stop_listening(gw);
	gw_conn_shutdown_all(gw);
	gw_rest_shutdown(gw);
	lws_sul_schedule(gw->ctx, 0, &gw->own->stop_timer, on_stop_deadline,
			 (lws_usec_t)gw->own->drain_seconds * LWS_US_PER_SEC);
}

static void on_listener(gw_watch_t *w, uint32_t events)
{
	accept_all(lws_container_of(w, struct gw_worker_own, listener)->gw, w);
}

static void on_mgmt_listener(gw_watch_t *w, uint32_t events)
{
	accept_all(lws_container_of(w, struct gw_worker_own, mgmt_listener)->gw, w);
}

static void on_signal(gw_watch_t *w, uint32_t events)
{
	struct signalfd_siginfo si;

	if (read(w->fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGHUP)
		gw_gateway_reload(lws_container_of(w, struct gw_worker_own, sigwatch)->gw->sh);
	else if (si.ssi_signo == SIGUSR1)
		gw_alog_reopen(); /* logrotate moved the access logs */
	else
		begin_stop(lws_container_of(w, struct gw_worker_own, sigwatch)->gw, (int)si.ssi_signo);
}

static void swap_config(gw_worker_t *gw, gw_config_t *cfg, unsigned gen);

static void drain_inbox(gw_worker_t *gw)
{
	lws_dll2_owner_t batch;
	gw_config_t *next;
	unsigned gen;

	if (__atomic_load_n(&gw->own->stop_requested, __ATOMIC_SEQ_CST) && !gw->own->stopping)
		begin_stop(gw, 0);
	/* Take the whole list under the lock, work on it outside. */
	pthread_mutex_lock(&gw->own->inbox_lock);
	batch = gw->own->inbox;
	lws_dll2_owner_clear(&gw->own->inbox);
	next = gw->own->next_cfg;
	gen = gw->own->next_gen;
	gw->own->next_cfg = NULL;
	pthread_mutex_unlock(&gw->own->inbox_lock);
	/* Between two events of the loop: a safe point for the swap. */
	if (next)
		swap_config(gw, next, gen);
	while (batch.head) {
		lws_dll2_t *d = batch.head;

		batch.head = d->next;
		memset(d, 0, sizeof(*d));
		gw_bus_on_message(gw, d);
	}
}

static int raw_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
			void *in, size_t len)
{
	gw_worker_t *gw = lws_context_user(lws_get_context(wsi));

	if (reason == LWS_CALLBACK_RAW_RX_FILE)
		gw_loop_drain(gw->loop);
	else if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED)
		drain_inbox(gw);
	return 0;
}

static const struct lws_protocols raw_protocol = {
	"gw-epoll", raw_callback, 0, 0, 0, NULL, 0
};

static void on_flush_timer(lws_sorted_usec_list_t *sul)
{
	gw_worker_t *gw = lws_container_of(sul, struct gw_worker_own, flush_timer)->gw;
	size_t seen;

	/* One slice per timer callback, 1 ms apart, so that no callback holds
	 * the loop long (100k connections in one took ~230 ms). */
	if (!gw->own->flush_left) {
		gw->own->flush_left = gw_conn_open_count(gw);
		/* Off the hot path, on one loop: free the reader slots of
		 * killed registry readers (registry.h). */
		if (!gw->worker) {
			int dead = gw_registry_check_readers(gw->reg);

			if (dead > 0)
				gw_log_limited(GW_LOG_WARN, 60000, "registry: cleared %d reader%s "
					       "left by killed processes", dead, dead == 1 ? "" : "s");
		}
	}
	seen = gw_conn_flush_slice(gw, gw->own->flush_left < FLUSH_SLICE ? gw->own->flush_left
								    : FLUSH_SLICE);
	gw->own->flush_left = seen && gw->own->flush_left > seen ? gw->own->flush_left - seen : 0;
	lws_sul_schedule(gw->ctx, 0, &gw->own->flush_timer, on_flush_timer,
			 gw->own->flush_left ? LWS_US_PER_MS
					: (lws_usec_t)FLUSH_INTERVAL_S * LWS_US_PER_SEC);
}

/* --- hot reload ------------------------------------------------------------ */

/* One connection pool per distinct backend endpoint, found by key: an
 * endpoint the loop already has (an unchanged one, after a reload) keeps
 * its pool and its kept-alive connections. */
static int bind_pools(gw_worker_t *gw, const gw_config_t *cfg, char *err, size_t errlen)
{
	for (size_t a = 0; a < cfg->n_apis; a++)
		for (size_t i = 0; i < cfg->apis[a].n_integrations; i++) {
			const gw_integration_t *in = &cfg->apis[a].integrations[i];
			gw_endpoint_opts_t eo;
			gw_endpoint_t *ep;

			if (in->type == GW_INTEG_MOCK)
				continue;
			memset(&eo, 0, sizeof(eo));
			eo.host = in->host;
			eo.address = in->address;
			eo.port = in->port;
			eo.tls = in->tls;
			eo.ca_file = in->ca_file;
			eo.max_connections = in->max_connections;
			eo.max_queue = in->max_queue;
			ep = gw_backend_endpoint(gw->be, &eo, err, errlen);
			if (!ep)
				return -1;
			gw_backend_bind(gw->be, in->index, ep);
		}
	return 0;
}

/* The last loop to swap in snapshot gen says so, with the older snapshots
 * that open connections and calls still hold. */
static void reload_done(gw_worker_t *gw, unsigned gen)
{
	gw_gateway_t *sh = gw->sh;

	pthread_mutex_lock(&sh->reload_lock);
	if (gen == sh->reload_gen && sh->reload_waiting && !--sh->reload_waiting) {
		unsigned older = gw_config_live() - 1;

		gw_info("reload: configuration %u in use by every loop (%zu API%s); %u older "
			"snapshot%s still held by open connections or calls", gen, gw->cfg->n_apis,
			gw->cfg->n_apis == 1 ? "" : "s", older, older == 1 ? "" : "s");
	}
	pthread_mutex_unlock(&sh->reload_lock);
}

/* On the loop, between events: new connections and REST requests take
 * cfg from now on; whoever holds the older snapshot keeps it. */
static void swap_config(gw_worker_t *gw, gw_config_t *cfg, unsigned gen)
{
	gw_config_t *old = gw->cfg;
	char err[256];

	if (bind_pools(gw, cfg, err, sizeof(err))) {
		gw_err("reload: loop %u keeps the older configuration: %s", gw->worker, err);
		gw_config_unref(cfg);
		return;
	}
	gw->cfg = cfg; /* the reference the loader gave */
	gw_rest_ctx_set_config(gw->rest, cfg);
	gw_backend_set_config(gw->be, cfg);
	gw_config_unref(old);
	reload_done(gw, gen);
}

/* A CA bundle that --check finds readable may still hold no certificate;
 * at start the gateway refuses it, so a reload does too (before any loop
 * sees the configuration). */
static void check_ca_files(const gw_config_t *cfg, gw_buf_t *errs)
{
	for (size_t a = 0; a < cfg->n_apis; a++)
		for (size_t i = 0; i < cfg->apis[a].n_integrations; i++) {
			const gw_integration_t *in = &cfg->apis[a].integrations[i];
			SSL_CTX *ctx;
			char line[1024];

			if (!in->tls || !in->ca_file)
				continue;
			ctx = SSL_CTX_new(TLS_client_method());
			if (ctx && SSL_CTX_load_verify_locations(ctx, in->ca_file, NULL) == 1) {
				SSL_CTX_free(ctx);
				continue;
			}
			SSL_CTX_free(ctx);
			snprintf(line, sizeof(line), "%s: integrations.%s.caFile: cannot load "
				 "certificates from \"%s\" (expected a PEM CA bundle)\n",
				 cfg->apis[a].file, in->name, in->ca_file);
			gw_buf_append_str(errs, line);
		}
}

/* A management listener beyond loopback was allowed at start because the
 * API files had managementAuth: a reload cannot take it away. */
static void check_mgmt_auth(const gw_gateway_t *sh, const gw_config_t *cfg, gw_buf_t *errs)
{
	if (!sh->reload_needs_mgmt_auth || gw_config_mgmt_auth(cfg))
		return;
	for (size_t a = 0; a < cfg->n_apis; a++) {
		char line[1024];

		if (cfg->apis[a].mgmt_auth)
			continue;
		snprintf(line, sizeof(line), "%s: managementAuth: missing (expected SigV4 keys: "
			 "the management API listens beyond loopback and --mgmt-insecure was "
			 "not given)\n", cfg->apis[a].file);
		gw_buf_append_str(errs, line);
	}
}

/* Each line of errs ("FILE: KEY: what was expected"), one log line each. */
static void log_refusal(const gw_gateway_t *sh, const gw_buf_t *errs)
{
	const char *p = errs->data ? errs->data : "";

	gw_err("reload refused: %s is not valid; the running configuration stays",
	       sh->routes);
	while (*p) {
		size_t n = strcspn(p, "\n");

		gw_err("reload refused: %.*s", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

/* On the loader thread: reads routes, checks it as --check does, then
 * hands a reference to every loop (the one still waiting there, if a loop
 * has not taken it yet, is replaced). */
static void reload_once(gw_gateway_t *sh)
{
	gw_config_t *cfg = NULL, *old;
	unsigned gen, running = 1;
	gw_buf_t errs;

	gw_tlscert_reload(sh->tls); /* on its own: either may be refused */
	gw_buf_init(&errs);
	if (gw_config_load(sh->routes, &cfg, &errs) == 0) {
		check_ca_files(cfg, &errs);
		check_mgmt_auth(sh, cfg, &errs);
	}
	if (!cfg || errs.len) {
		log_refusal(sh, &errs);
		gw_config_free(cfg);
		gw_buf_dispose(&errs);
		return;
	}
	gw_buf_dispose(&errs);
	for (unsigned i = 1; i < sh->n_workers; i++)
		running += sh->threads[i] != 0;
	pthread_mutex_lock(&sh->reload_lock);
	gen = ++sh->reload_gen;
	sh->reload_waiting = running;
	old = sh->cfg;
	sh->cfg = cfg;
	pthread_mutex_unlock(&sh->reload_lock);
	/* Dropped before any loop can swap and count the live snapshots: the
	 * loops hold their own references to it, and the last loop's count
	 * (reload_done) would otherwise include this one now and then. */
	gw_config_unref(old);
	gw_info("reload: %s read again (%zu API%s), configuration %u; the loops swap it in",
		sh->routes, cfg->n_apis, cfg->n_apis == 1 ? "" : "s", gen);
	for (unsigned i = 0; i < sh->n_workers; i++) {
		gw_worker_t *w = sh->workers[i];
		gw_config_t *prev;
		int alive;

		pthread_mutex_lock(&w->own->inbox_lock);
		prev = w->own->next_cfg;
		w->own->next_cfg = gw_config_ref(cfg);
		w->own->next_gen = gen;
		alive = w->own->ctx_alive;
		/* One the loop never took: gone before it can take this one
		 * and count the live snapshots. */
		gw_config_unref(prev);
		pthread_mutex_unlock(&w->own->inbox_lock);
		if (alive)
			lws_cancel_service(w->ctx);
	}
}

static void *reload_main(void *arg)
{
	gw_gateway_t *sh = arg;

	for (;;) {
		reload_once(sh);
		pthread_mutex_lock(&sh->reload_lock);
		if (!sh->reload_again) {
			sh->reload_running = 0;
			pthread_mutex_unlock(&sh->reload_lock);
			return NULL;
		}
		/* Signals during a load: the files may have changed again. */
		sh->reload_again = 0;
		pthread_mutex_unlock(&sh->reload_lock);
	}
}

void gw_gateway_reload(gw_gateway_t *sh)
{
	/* Signals are read by the first loop, which is the one that stops. */
	if (sh->workers[0]->own->stopping) {
		gw_info("reload: ignored, the gateway is stopping");
		return;
	}
	gw_info("reload: reading %s again", sh->routes);
	pthread_mutex_lock(&sh->reload_lock);
	if (sh->reload_running) {
		sh->reload_again = 1;
		pthread_mutex_unlock(&sh->reload_lock);
		return;
	}
	/* The last loader has finished: joining it does not wait. */
	if (sh->reload_started)
		pthread_join(sh->reload_thread, NULL);
	sh->reload_started = sh->reload_running =
		!pthread_create(&sh->reload_thread, NULL, reload_main, sh);
	pthread_mutex_unlock(&sh->reload_lock);
	if (!sh->reload_started)
		gw_err("reload: cannot start the loader thread; the running configuration stays");
}

static void reload_join(gw_gateway_t *sh)
{
	int started;

	pthread_mutex_lock(&sh->reload_lock);
	sh->reload_again = 0;
	started = sh->reload_started;
	sh->reload_started = 0;
	pthread_mutex_unlock(&sh->reload_lock);
	if (started)
		pthread_join(sh->reload_thread, NULL);
}

#if GW_LIBEV
/* libwebsockets 4.1's libev glue re-arms its one ev_timer with
 * ev_timer_set()+ev_timer_start() while it may still be active, which
 * libev ignores: a timer scheduled nearer than the armed one (a 200 ms
 * integration timeout under a 60 s housekeeping timer) waited for the far
 * one. A timer that never lies further than BEAT_MS ahead keeps that
 * ev_timer firing, and each firing re-arms it for the nearest timer. */
#define BEAT_MS 10
static void on_ev_beat(lws_sorted_usec_list_t *sul)
{
	struct gw_worker_own *own = lws_container_of(sul, struct gw_worker_own, ev_beat);

	lws_sul_schedule(own->gw->ctx, 0, sul, on_ev_beat, (lws_usec_t)BEAT_MS * LWS_US_PER_MS);
}
#endif

/* One event loop. The first binds the ports asked for (possibly 0); the
 * others bind the ports it got. */
static gw_worker_t *worker_create(gw_gateway_t *sh, unsigned index, char *err,
				   size_t errlen)
{
	static struct lws_protocols ws_protos[3], mgmt_protos[2];
	struct lws_context_creation_info info;
#if GW_LIBEV
	void *foreign[1];
#endif
	gw_worker_t *gw = calloc(1, sizeof(*gw));
	gw_config_t *cfg = sh->cfg;
	lws_sock_file_fd_type fd;

	if (!gw || !(gw->own = calloc(1, sizeof(*gw->own))))
		abort();
	gw->own->gw = gw;
	gw->sh = sh;
	gw->metrics = gw_metrics_create();
	gw->worker = index;
	gw->cfg = gw_config_ref(cfg); /* the loop's snapshot (config.h) */
	gw->reg = sh->reg;
	gw->tls = sh->tls;
	pthread_mutex_init(&gw->own->inbox_lock, NULL);
	gw->rest = gw_rest_ctx_create(cfg);
	gw->relay = gw_relay_ctx_create();
	gw->mgmt = gw_mgmt_ctx_create();
	gw->conns = gw_conns_create(gw);
	if (!gw->rest || !gw->relay || !gw->mgmt || !gw->conns)
		abort();
	gw_conns_set_chan_hooks(gw->conns, &gw_chan_conn_hooks);
	gw->own->listener.fd = gw->own->mgmt_listener.fd = gw->own->sigwatch.fd = -1;
	gw->own->drain_seconds = sh->drain_seconds;
	gw_buf_init(&gw->scratch);
	if (RAND_bytes(gw->own->request_salt, sizeof(gw->own->request_salt)) != 1) {
		snprintf(err, errlen, "OpenSSL's random generator failed");
		goto fail;
	}
	/* Each loop holds its own descriptor of the shared listening sockets,
	 * so closing one loop's never closes another's. */
	gw->own->listener.cb = on_listener;
	gw->own->listener.fd = fcntl(sh->listen_fd, F_DUPFD_CLOEXEC, 0);
	gw->own->mgmt_listener.cb = on_mgmt_listener;
	gw->own->mgmt_listener.fd = fcntl(sh->mgmt_fd, F_DUPFD_CLOEXEC, 0);
	if (gw->own->listener.fd < 0 || gw->own->mgmt_listener.fd < 0) {
		snprintf(err, errlen, "cannot share the listening sockets: %s", strerror(errno));
		goto fail;
	}
	gw->loop = gw_loop_create();
	if (!gw->loop || listener_add(gw, &gw->own->listener) ||
	    listener_add(gw, &gw->own->mgmt_listener)) {
		snprintf(err, errlen, "cannot set up the event loop: %s", strerror(errno));
		goto fail;
	}
	if (index == 0) {
		/* Signals arrive as readable data on the first loop (they are
		 * blocked in every thread), not in a handler. */
		sigset_t mask;

		sigemptyset(&mask);
		sigaddset(&mask, SIGINT);
		sigaddset(&mask, SIGTERM);
		sigaddset(&mask, SIGHUP);
		sigaddset(&mask, SIGUSR1);
		gw->own->sigwatch.cb = on_signal;
		gw->own->sigwatch.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
		if (gw->own->sigwatch.fd < 0 || gw_loop_add(gw->loop, &gw->own->sigwatch, EPOLLIN)) {
			snprintf(err, errlen, "cannot watch signals: %s", strerror(errno));
			goto fail;
		}
	}

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	/* No DO_SSL_GLOBAL_INIT: TLS is the gateway's own (tls.c, backend.c);
	 * with it each context also built a client SSL_CTX with the whole
	 * system CA store, which a second context leaked at destruction. */
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
		       LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.user = gw;
#if GW_LIBEV
	/* libev's epoll backend instead of libwebsockets' default poll(),
	 * which walked all the loop's descriptors (10,000 members of a
	 * channel: ~30% of a fan-out's CPU) on every round of the loop. A
	 * foreign loop so that run_loop() turns it once per round. */
	gw->own->evloop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
	if (!gw->own->evloop) {
		snprintf(err, errlen, "cannot create the event loop");
		goto fail;
	}
	foreign[0] = gw->own->evloop;
	info.options |= LWS_SERVER_OPTION_LIBEV;
	info.foreign_loops = foreign;
#endif
	/* libwebsockets' own deadlines (handshakes, management requests, its
	 * close flows): a backstop never shorter than the default, so that a
	 * short --send-timeout does not cut those; the gateway's closes have
	 * their own timer (conn.c). Integration calls have theirs too
	 * (backend.c), which this does not touch. */
	info.timeout_secs = (unsigned)(sh->send_timeout_s > GW_CLOSE_TIMEOUT_S ?
				       sh->send_timeout_s : GW_CLOSE_TIMEOUT_S);
	/* libwebsockets re-reads the head the gateway approved: it must have
	 * room for every head the gateway accepts (its 4 KB default refused
	 * browsers' large cookies after $connect said yes). */
	info.max_http_header_data = GW_LWS_HEADER_SPACE;
	gw->ctx = lws_create_context(&info);
	if (!gw->ctx) {
		snprintf(err, errlen, "cannot create the libwebsockets context");
		goto fail;
	}
	gw->own->ctx_alive = 1;
	gw_wheel_init(&gw->wheel, gw->ctx);
	ws_protos[0] = gw_ws_protocol;
	ws_protos[1] = raw_protocol;
	mgmt_protos[0] = gw_mgmt_protocol;
	gw->vhosts = gw_vhosts_create(gw->ctx, gw->worker);
	if (!gw->vhosts)
		abort();
	gw->vh_ws = gw_vhosts_add(gw->vhosts, "gateway", ws_protos);
	gw->vh_mgmt = gw_vhosts_add(gw->vhosts, "management", mgmt_protos);
	if (!gw->vh_ws || !gw->vh_mgmt) {
		snprintf(err, errlen, "cannot create the libwebsockets vhosts");
		goto fail;
	}
	fd.filefd = gw_loop_fd(gw->loop);
	if (!lws_adopt_descriptor_vhost(gw->vh_ws, LWS_ADOPT_RAW_FILE_DESC, fd,
					"gw-epoll", NULL)) {
		snprintf(err, errlen, "cannot watch the gateway's sockets");
		goto fail;
	}
	gw->be = gw_backend_create(gw);
	if (bind_pools(gw, cfg, err, errlen))
		goto fail;
	gw->outbox = gw_outbox_attach(gw, sh->disconnect_retry_seconds,
				      sh->disconnect_rate / sh->n_workers,
				      GW_OUTBOX_MAX_ENTRIES / sh->n_workers);
	lws_sul_schedule(gw->ctx, 0, &gw->own->flush_timer, on_flush_timer,
			 (lws_usec_t)FLUSH_INTERVAL_S * LWS_US_PER_SEC);
#if GW_LIBEV
	on_ev_beat(&gw->own->ev_beat);
#endif
	gw_metrics_start(gw);
	return gw;
fail:
	worker_teardown(gw);
	worker_free(gw);
	return NULL;
}

/* What the previous run left: the $disconnect calls it owed, and those of
 * the connections it had open when it died (the registry moved them to
 * the outbox), shared out among the loops, which send them. */
static void previous_run(gw_gateway_t *sh, const char *dir)
{
	const char *problem;
	size_t adopted;

	gw_registry_previous(sh->reg, &adopted, &problem);
	if (problem)
		gw_warn("%s: the previous run's registry could not be reused (%s): its "
			"connections get no $disconnect", dir, problem);
	if (adopted)
		gw_info("%zu connections were open when the previous run ended: each gets "
			"$disconnect (1006)", adopted);
	gw_outbox_load(sh->workers, sh->n_workers, sh->reg);
	for (unsigned i = 0; i < sh->n_workers; i++)
		gw_outbox_kick(sh->workers[i]);
}

int gw_gateway_create(gw_gateway_t **out, gw_config_t *cfg,
		      const gw_gateway_opts_t *opts, char *err, size_t errlen)
{
	gw_gateway_t *sh = calloc(1, sizeof(*sh));
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	sigset_t mask;

	*out = NULL;
	if (!sh)
		abort();
	sh->cfg = cfg;
	pthread_mutex_init(&sh->reload_lock, NULL);
	sh->routes = strdup(opts->routes ? opts->routes : "routes/");
	sh->reload_needs_mgmt_auth = opts->reload_needs_mgmt_auth;
	sh->mgmt_on_gateway = opts->mgmt_on_gateway;
	if (!sh->routes)
		abort();
	sh->n_workers = opts->workers ? opts->workers : (unsigned)(cores > 0 ? cores : 1);
	sh->drain_seconds = opts->drain_seconds > 0 ? opts->drain_seconds : 10;
	sh->send_timeout_s = opts->send_timeout_s > 0 ? opts->send_timeout_s : GW_CLOSE_TIMEOUT_S;
	sh->disconnect_retry_seconds = opts->disconnect_retry_seconds
		? opts->disconnect_retry_seconds : GW_OUTBOX_RETRY_SECONDS;
	sh->disconnect_rate = opts->disconnect_rate ? opts->disconnect_rate
						    : GW_OUTBOX_REPLAY_RATE;
	sh->workers = calloc(sh->n_workers, sizeof(*sh->workers));
	sh->threads = calloc(sh->n_workers, sizeof(*sh->threads));
	if (!sh->workers || !sh->threads)
		abort();
	/* Blocked before any thread exists, so every thread inherits it and
	 * only the first loop's signalfd sees them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (opts->tls.dir || opts->tls.n) {
		sh->tls = gw_tlscert_create(&opts->tls, err, errlen);
		if (!sh->tls)
			goto fail;
	}
	/* A second process on the same data folder stops at the registry's
	 * lock before touching it; one on the same ports (with another
	 * folder) fails to bind, since the loops share one socket rather
	 * than SO_REUSEPORT. */
	sh->listen_fd = sh->mgmt_fd = -1;
	if (gw_registry_open(opts->data_dir, &sh->reg, err, errlen))
		goto fail;
	sh->listen_fd = bind_listener(opts->listen_host, opts->listen_port, &sh->port, err,
				      errlen);
	if (sh->listen_fd < 0)
		goto fail;
	sh->mgmt_fd = bind_listener(opts->mgmt_host, opts->mgmt_port, &sh->mgmt_port, err,
				    errlen);
	if (sh->mgmt_fd < 0)
		goto fail;
	for (unsigned i = 0; i < sh->n_workers; i++) {
		sh->workers[i] = worker_create(sh, i, err, errlen);
		if (!sh->workers[i])
			goto fail;
	}
	previous_run(sh, opts->data_dir);
	*out = sh;
	return 0;
fail:
	shared_destroy(sh);
	return -1;
}

static void run_loop(gw_worker_t *gw)
{
	while (!gw->own->stop_deadline_passed) {
#if GW_LIBEV
		/* Input libwebsockets holds already read (a request pipelined
		 * behind one in progress) is served before the loop's events,
		 * as its poll() loop does: under libev it waited for an idle
		 * round, after the writable event, so a keep-alive answer went
		 * out before mgmt.c could see the pipelined request. */
		if (!lws_service_adjust_timeout(gw->ctx, 1, 0))
			_lws_plat_service_forced_tsi(gw->ctx, 0);
		ev_run(gw->own->evloop, EVRUN_ONCE);
#else
		if (lws_service(gw->ctx, 0) < 0)
			break;
#endif
		gw_relay_after_service(gw);
		gw_defer_run(gw);
		if (gw->own->stopping && !gw_conn_count(gw) && !gw_rest_count(gw) &&
		    !gw_backend_inflight(gw->be) && !gw_outbox_active(gw->outbox))
			break;
	}
	gw_conn_flush_activity(gw);
}

static void *thread_main(void *arg)
{
	run_loop(arg);
	return NULL;
}

int gw_gateway_run(gw_gateway_t *sh)
{
	for (unsigned i = 1; i < sh->n_workers; i++)
		if (pthread_create(&sh->threads[i], NULL, thread_main, sh->workers[i])) {
			/* Its listeners would take a share of the connections
			 * that nobody serves: close them; the others serve all. */
			gw_err("cannot start event loop %u: serving with the others", i);
			stop_listening(sh->workers[i]);
			sh->threads[i] = 0;
		}
	{
		unsigned running = 1;

		for (unsigned i = 1; i < sh->n_workers; i++)
			running += sh->threads[i] != 0;
		gw_info("%u event loop%s running", running, running == 1 ? "" : "s");
	}
	run_loop(sh->workers[0]);
	/* A loop may end on its own error: make sure the others end too. */
	for (unsigned i = 1; i < sh->n_workers; i++) {
		__atomic_store_n(&sh->workers[i]->own->stop_requested, 1, __ATOMIC_SEQ_CST);
		lws_cancel_service(sh->workers[i]->ctx);
	}
	for (unsigned i = 1; i < sh->n_workers; i++)
		if (sh->threads[i])
			pthread_join(sh->threads[i], NULL);
	gw_info("stopped");
	return 0;
}

/* First phase of destruction: everything that may still talk to other
 * loops (closing connections decides parked management operations). */
static void worker_teardown(gw_worker_t *gw)
{
	if (!gw)
		return;
	gw_outbox_detach(gw->outbox);
	if (gw->ctx)
		gw_conn_free_unadopted(gw);
	gw_rest_free_all(gw);
	gw_relay_free_all(gw);
	if (gw->ctx) {
		lws_sul_cancel(&gw->own->flush_timer);
#if GW_LIBEV
		lws_sul_cancel(&gw->own->ev_beat);
#endif
		gw_metrics_stop(gw);
		lws_sul_cancel(&gw->own->stop_timer);
		lws_sul_cancel(&gw->own->accept_timer);
		gw_wheel_dispose(&gw->wheel);
		pthread_mutex_lock(&gw->own->inbox_lock);
		gw->own->ctx_alive = 0;
		pthread_mutex_unlock(&gw->own->inbox_lock);
		lws_context_destroy(gw->ctx);
		gw->ctx = NULL;
	}
#if GW_LIBEV
	if (gw->own->evloop) {
		ev_loop_destroy(gw->own->evloop);
		gw->own->evloop = NULL;
	}
#endif
	if (gw->be) {
		gw_backend_destroy(gw->be);
		gw->be = NULL;
	}
	/* After the connections (their $disconnect is stored) and the
	 * backend (its calls are gone): what is owed stays stored. */
	gw_outbox_destroy(gw->outbox);
	gw->outbox = NULL;
}

static void worker_free(gw_worker_t *gw)
{
	if (!gw)
		return;
	while (gw->own->inbox.head) {
		lws_dll2_t *d = gw->own->inbox.head;

		lws_dll2_remove(d);
		gw_mgmt_free_message(d);
	}
	gw_config_unref(gw->own->next_cfg);
	gw_chan_index_free(gw);
	pthread_mutex_destroy(&gw->own->inbox_lock);
	if (gw->loop) {
		stop_listening(gw);
		gw_loop_close(gw->loop, &gw->own->sigwatch);
		gw_loop_destroy(gw->loop);
	} else {
		gw_watch_t *ws[] = { &gw->own->listener, &gw->own->mgmt_listener, &gw->own->sigwatch };

		for (int i = 0; i < 3; i++)
			if (ws[i]->fd >= 0)
				close(ws[i]->fd);
	}
	gw_config_unref(gw->cfg);
	gw_buf_dispose(&gw->scratch);
	gw_buf_dispose(&gw->rscratch);
	gw_vhosts_destroy(gw->vhosts); /* the lws context is gone */
	gw_rest_ctx_destroy(gw->rest); /* its connections went in teardown */
	gw_relay_ctx_destroy(gw->relay); /* the same */
	gw_mgmt_ctx_destroy(gw->mgmt); /* the same */
	gw_conns_destroy(gw->conns); /* its connections went in teardown */
	gw_metrics_destroy(gw->metrics);
	free(gw->own);
	free(gw);
}

static void shared_destroy(gw_gateway_t *sh)
{
	/* The loader hands snapshots to the loops: it ends first. */
	reload_join(sh);
	for (unsigned i = 0; i < sh->n_workers; i++)
		worker_teardown(sh->workers[i]);
	for (unsigned i = 0; i < sh->n_workers; i++)
		worker_free(sh->workers[i]);
	if (sh->listen_fd >= 0)
		close(sh->listen_fd);
	if (sh->mgmt_fd >= 0)
		close(sh->mgmt_fd);
	gw_registry_close(sh->reg);
	gw_config_free(sh->cfg);
	pthread_mutex_destroy(&sh->reload_lock);
	free(sh->routes);
	gw_tlscert_destroy(sh->tls);
	free(sh->workers);
	free(sh->threads);
	free(sh);
}

void gw_gateway_destroy(gw_gateway_t *sh)
{
	if (sh)
		shared_destroy(sh);
}
