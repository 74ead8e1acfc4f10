/* The services a loop gives the modules below it (core.h): clocks,
 * request IDs, safe points, the stop flag, posting to another loop's
 * inbox, and the process's read-only facts. gateway.c, at the top,
 * creates and runs the loops; the modules below call only this, so the
 * dependencies point down. */
#include "core.h"
#include "gateway_own.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

/* Deadlines run on the monotonic clock, so a wall-clock jump closes
 * nothing; only reported times (connectedAt, requestTime) use the wall. */
uint64_t gw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t gw_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t gw_mono_to_wall(uint64_t mono_ms)
{
	uint64_t now = gw_now_ms(), wall = gw_wall_ms();

	return mono_ms >= now ? wall : wall - (now - mono_ms);
}

void gw_worker_request_id(gw_worker_t *gw, char out[24])
{
	unsigned char raw[12];
	uint64_t seq = ++gw->own->request_seq & 0xffffffffffffULL, k = 0;

	/* AWS's request IDs do not visibly count up (issue 15 item 6): a
	 * keyed permutation of the 48-bit counter keeps them unique. */
	memcpy(&k, gw->own->request_salt, sizeof(gw->own->request_salt));
	for (int r = 0; r < 3; r++) {
		seq = (seq * 0x5bd1e995b5ULL + (k >> (8 * r))) & 0xffffffffffffULL;
		seq ^= seq >> 21;
	}

	memcpy(raw, gw->own->request_salt, 6);
	for (int i = 0; i < 6; i++)
		raw[6 + i] = (unsigned char)(seq >> (8 * (5 - i)));
	gw_base64url(out, raw, sizeof(raw));
}

unsigned gw_gateway_workers(const gw_gateway_t *g)
{
	return g->n_workers;
}

gw_worker_t *gw_gateway_worker(const gw_gateway_t *g, unsigned i)
{
	return g->workers[i];
}

int gw_gateway_send_timeout_s(const gw_gateway_t *g)
{
	return g->send_timeout_s;
}

int gw_gateway_mgmt_on_gateway(const gw_gateway_t *g)
{
	return g->mgmt_on_gateway;
}

int gw_gateway_port(const gw_gateway_t *sh)
{
	return sh->port;
}

int gw_gateway_mgmt_port(const gw_gateway_t *sh)
{
	return sh->mgmt_port;
}

int gw_worker_stopping(const gw_worker_t *gw)
{
	return gw->own->stopping;
}

void gw_watch_close(gw_worker_t *gw, gw_watch_t *w)
{
	gw_loop_close(gw->loop, w);
}

void gw_defer_free(gw_worker_t *gw, void (*fn)(void *), void *p)
{
	gw_loop_defer_free(gw->loop, fn, p);
}

void gw_defer_run(gw_worker_t *gw)
{
	gw_loop_run_deferred(gw->loop);
}

void gw_worker_post(gw_worker_t *to, lws_dll2_t *node)
{
	int alive;

	pthread_mutex_lock(&to->own->inbox_lock);
	lws_dll2_add_tail(node, &to->own->inbox);
	alive = to->own->ctx_alive;
	pthread_mutex_unlock(&to->own->inbox_lock);
	if (alive)
		lws_cancel_service(to->ctx);
}
