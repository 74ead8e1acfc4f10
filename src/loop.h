/* The epoll set of one event loop, and its safe points.
 *
 * A registration is a gw_watch_t: a descriptor and the callback its events
 * go to; a new kind of socket brings its own callback and needs no edit
 * here. The set is itself adopted into libwebsockets as one raw file, so
 * one poll() covers the gateway's sockets and libwebsockets' own.
 *
 * Safe points: one epoll batch may hold several events for one object.
 * gw_loop_close() takes a descriptor out of the set, closes it and marks
 * the watch dead (fd -1); the loop skips a dead watch's remaining events in
 * the batch, as libuv does for a closed handle. Memory that holds a watch
 * is released with gw_loop_defer_free(), which runs after the batch (as
 * Redis's freeClientAsync), never inside it. */
#ifndef GW_LOOP_H
#define GW_LOOP_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_loop gw_loop_t;
typedef struct gw_watch gw_watch_t;
typedef void (*gw_watch_cb)(gw_watch_t *w, uint32_t events);

struct gw_watch {
	int fd;
	gw_watch_cb cb;
};

/* NULL when the epoll set cannot be created (errno tells). */
gw_loop_t *gw_loop_create(void);
/* Runs the deferred frees, closes the set. */
void gw_loop_destroy(gw_loop_t *l);
/* The epoll descriptor, to be watched by the outer poll(). */
int gw_loop_fd(const gw_loop_t *l);

int gw_loop_add(gw_loop_t *l, gw_watch_t *w, uint32_t events);
int gw_loop_mod(gw_loop_t *l, gw_watch_t *w, uint32_t events);
/* Out of the set, still open (a socket handed to another owner). */
void gw_loop_del(gw_loop_t *l, gw_watch_t *w);
/* Out of the set and closed; the watch is dead from now on. */
void gw_loop_close(gw_loop_t *l, gw_watch_t *w);

void gw_loop_defer_free(gw_loop_t *l, void (*fn)(void *), void *p);
/* The safe point: runs the post-batch tasks, then the deferred frees (end
 * of a batch, of a service round). */
void gw_loop_run_deferred(gw_loop_t *l);

/* A post-batch task: fn(arg) runs at every safe point, before the deferred
 * frees, so work queued by event handlers (completions of backend calls)
 * is done after the handlers returned, never inside them. A module adds
 * its task when it is created and removes it before it is freed. At most
 * GW_LOOP_MAX_TASKS; -1 when full. */
#define GW_LOOP_MAX_TASKS 8
int gw_loop_add_task(gw_loop_t *l, void (*fn)(void *), void *arg);
void gw_loop_remove_task(gw_loop_t *l, void (*fn)(void *), void *arg);

/* Handles every ready event, batch by batch, without waiting. */
void gw_loop_drain(gw_loop_t *l);

#endif
