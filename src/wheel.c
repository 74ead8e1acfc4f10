/* Timing wheel (see wheel.h). One libwebsockets timer drives it, armed
 * only while entries exist. */
#include "wheel.h"

#include <string.h>
#include <time.h>

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_tick(lws_sorted_usec_list_t *sul);

static void arm(gw_wheel_t *w)
{
	if (w->armed || !w->count)
		return;
	w->armed = 1;
	lws_sul_schedule(w->ctx, 0, &w->sul, on_tick, (lws_usec_t)GW_WHEEL_TICK_MS * LWS_US_PER_MS);
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
	gw_wheel_t *w = lws_container_of(sul, gw_wheel_t, sul);
	uint64_t now = now_ms(), target = now / GW_WHEEL_TICK_MS;

	w->armed = 0;
	/* Every tick since the last one, at most one revolution. */
	if (target - w->done > GW_WHEEL_SLOTS)
		w->done = target - GW_WHEEL_SLOTS;
	while (w->done < target) {
		lws_dll2_owner_t *slot = &w->slots[++w->done % GW_WHEEL_SLOTS];
		lws_dll2_t *d = slot->head;

		while (d) {
			gw_wheel_entry_t *e = lws_container_of(d, gw_wheel_entry_t, list);

			d = d->next;
			if (e->due > now)
				continue; /* a later revolution */
			lws_dll2_remove(&e->list);
			w->count--;
			e->cb(e); /* may set or cancel entries, this one included */
		}
	}
	arm(w);
}

void gw_wheel_init(gw_wheel_t *w, struct lws_context *ctx)
{
	memset(w, 0, sizeof(*w));
	w->ctx = ctx;
	w->done = now_ms() / GW_WHEEL_TICK_MS;
}

void gw_wheel_dispose(gw_wheel_t *w)
{
	lws_sul_cancel(&w->sul);
	for (size_t i = 0; i < GW_WHEEL_SLOTS; i++)
		while (w->slots[i].head)
			lws_dll2_remove(w->slots[i].head);
	w->count = 0;
	w->armed = 0;
}

void gw_wheel_cancel(gw_wheel_t *w, gw_wheel_entry_t *e)
{
	if (lws_dll2_is_detached(&e->list))
		return;
	lws_dll2_remove(&e->list);
	w->count--;
}

void gw_wheel_set(gw_wheel_t *w, gw_wheel_entry_t *e, uint64_t due, gw_wheel_cb cb)
{
	uint64_t tick = (due + GW_WHEEL_TICK_MS - 1) / GW_WHEEL_TICK_MS;

	gw_wheel_cancel(w, e);
	/* A slot already passed this turn would wait a whole revolution. */
	if (tick <= w->done)
		tick = w->done + 1;
	e->due = due;
	e->cb = cb;
	lws_dll2_add_tail(&e->list, &w->slots[tick % GW_WHEEL_SLOTS]);
	w->count++;
	arm(w);
}
