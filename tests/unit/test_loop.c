/* The loop's safe points (loop.h): an object closed by one event of a batch
 * gets none of its later events in the same batch, and its memory is freed
 * only after the batch. */
#include "loop.h"
#include "unit.h"

#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct obj {
	gw_watch_t watch;
	int peer;         /* the other end, kept to make the fd readable */
	int events_seen;
	int freed;
	struct obj *other; /* closed by this one's first event */
	gw_loop_t *loop;
} obj_t;

static int frees;

static void obj_free(void *p)
{
	obj_t *o = p;

	o->freed = 1;
	frees++;
}

static void on_event(gw_watch_t *w, uint32_t events)
{
	obj_t *o = (obj_t *)w;

	CHECK(!o->freed);
	o->events_seen++;
	if (o->other && o->other->watch.fd >= 0) {
		gw_loop_close(o->loop, &o->other->watch);
		gw_loop_defer_free(o->loop, obj_free, o->other);
		/* Not yet: the batch may still hold the other's event. */
		CHECK_INT_EQ(frees, 0);
	}
}

static void make(obj_t *o, gw_loop_t *l)
{
	int sv[2];

	CHECK(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
	o->watch.fd = sv[0];
	o->watch.cb = on_event;
	o->peer = sv[1];
	o->loop = l;
	CHECK(write(o->peer, "x", 1) == 1);
	CHECK(!gw_loop_add(l, &o->watch, EPOLLIN));
}

static void test_closed_in_batch_gets_no_event(void)
{
	gw_loop_t *l = gw_loop_create();
	obj_t a = { 0 }, b = { 0 };

	CHECK(l != NULL);
	make(&a, l);
	make(&b, l);
	/* Whichever comes first closes the other. */
	a.other = &b;
	b.other = &a;
	frees = 0;
	gw_loop_drain(l);
	CHECK_INT_EQ(a.events_seen + b.events_seen, 1);
	CHECK_INT_EQ(frees, 1);
	CHECK(a.freed != b.freed);
	if (a.watch.fd >= 0)
		gw_loop_close(l, &a.watch);
	if (b.watch.fd >= 0)
		gw_loop_close(l, &b.watch);
	close(a.peer);
	close(b.peer);
	gw_loop_destroy(l);
}

static void test_deferred_free_runs_at_destroy(void)
{
	gw_loop_t *l = gw_loop_create();
	obj_t a = { 0 };

	frees = 0;
	gw_loop_defer_free(l, obj_free, &a);
	CHECK_INT_EQ(frees, 0);
	gw_loop_destroy(l);
	CHECK_INT_EQ(frees, 1);
}

static void chain_free(void *p)
{
	obj_t *o = p;

	frees++;
	/* A free that defers another (growing the array) still runs it. */
	if (o->other)
		gw_loop_defer_free(o->loop, obj_free, o->other);
}

static void test_free_defers_another(void)
{
	gw_loop_t *l = gw_loop_create();
	obj_t objs[200];

	frees = 0;
	for (int i = 0; i < 200; i++) {
		objs[i].other = i < 199 ? &objs[i + 1] : NULL;
		objs[i].loop = l;
		objs[i].freed = 0;
	}
	for (int i = 0; i < 100; i++)
		gw_loop_defer_free(l, chain_free, &objs[i]);
	gw_loop_run_deferred(l);
	CHECK_INT_EQ(frees, 200);
	gw_loop_destroy(l);
}

int main(void)
{
	RUN(test_closed_in_batch_gets_no_event);
	RUN(test_deferred_free_runs_at_destroy);
	RUN(test_free_defers_another);
	UNIT_MAIN_END();
}
