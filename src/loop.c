/* The epoll set of one event loop and its safe points (see loop.h). */
#include "loop.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define BATCH 64

struct deferred {
	void (*fn)(void *);
	void *p;
};

struct task {
	void (*fn)(void *);
	void *arg;
};

struct gw_loop {
	int epfd;
	/* A fixed table: never reallocated while the safe point walks it. */
	struct task tasks[GW_LOOP_MAX_TASKS];
	struct deferred *deferred;
	size_t n_deferred, cap_deferred;
};

gw_loop_t *gw_loop_create(void)
{
	gw_loop_t *l = calloc(1, sizeof(*l));

	if (!l)
		abort();
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	return l;
}

void gw_loop_destroy(gw_loop_t *l)
{
	if (!l)
		return;
	gw_loop_run_deferred(l);
	free(l->deferred);
	close(l->epfd);
	free(l);
}

int gw_loop_fd(const gw_loop_t *l)
{
	return l->epfd;
}

static int ctl(gw_loop_t *l, int op, gw_watch_t *w, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = w;
	return epoll_ctl(l->epfd, op, w->fd, &ev);
}

int gw_loop_add(gw_loop_t *l, gw_watch_t *w, uint32_t events)
{
	return ctl(l, EPOLL_CTL_ADD, w, events);
}

int gw_loop_mod(gw_loop_t *l, gw_watch_t *w, uint32_t events)
{
	return ctl(l, EPOLL_CTL_MOD, w, events);
}

void gw_loop_del(gw_loop_t *l, gw_watch_t *w)
{
	if (w->fd >= 0)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

void gw_loop_close(gw_loop_t *l, gw_watch_t *w)
{
	if (w->fd < 0)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	close(w->fd);
	w->fd = -1;
}

void gw_loop_defer_free(gw_loop_t *l, void (*fn)(void *), void *p)
{
	if (l->n_deferred == l->cap_deferred) {
		size_t n = l->cap_deferred ? l->cap_deferred * 2 : 64;
		struct deferred *d = realloc(l->deferred, n * sizeof(*d));

		if (!d)
			abort();
		l->deferred = d;
		l->cap_deferred = n;
	}
	l->deferred[l->n_deferred].fn = fn;
	l->deferred[l->n_deferred++].p = p;
}

int gw_loop_add_task(gw_loop_t *l, void (*fn)(void *), void *arg)
{
	for (size_t i = 0; i < GW_LOOP_MAX_TASKS; i++)
		if (!l->tasks[i].fn) {
			l->tasks[i].fn = fn;
			l->tasks[i].arg = arg;
			return 0;
		}
	return -1;
}

void gw_loop_remove_task(gw_loop_t *l, void (*fn)(void *), void *arg)
{
	for (size_t i = 0; i < GW_LOOP_MAX_TASKS; i++)
		if (l->tasks[i].fn == fn && l->tasks[i].arg == arg)
			l->tasks[i].fn = NULL;
}

void gw_loop_run_deferred(gw_loop_t *l)
{
	/* Tasks first: what they close is freed in the same pass. */
	for (size_t i = 0; i < GW_LOOP_MAX_TASKS; i++)
		if (l->tasks[i].fn)
			l->tasks[i].fn(l->tasks[i].arg);
	/* By index: a free may defer another one (and grow the array). */
	for (size_t i = 0; i < l->n_deferred; i++)
		l->deferred[i].fn(l->deferred[i].p);
	l->n_deferred = 0;
}

void gw_loop_drain(gw_loop_t *l)
{
	struct epoll_event evs[BATCH];
	int n;

	do {
		n = epoll_wait(l->epfd, evs, BATCH, 0);
		for (int i = 0; i < n; i++) {
			gw_watch_t *w = evs[i].data.ptr;

			/* closed by an earlier event of this batch */
			if (w->fd >= 0)
				w->cb(w, evs[i].events);
		}
		gw_loop_run_deferred(l);
	} while (n == BATCH);
}
