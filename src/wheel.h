/* A timing wheel for per-connection deadlines (handshake, idle, maximum
 * duration). libwebsockets keeps its timers in one sorted list, so every
 * insertion walks all of them: with a few timers per connection, opening
 * connection n cost O(n). Here adding, moving and removing an entry is O(1);
 * the price is a resolution of GW_WHEEL_TICK_MS. */
#ifndef GW_WHEEL_H
#define GW_WHEEL_H

#include <libwebsockets.h>
#include <stdint.h>

#define GW_WHEEL_TICK_MS 100
#define GW_WHEEL_SLOTS 4096 /* one revolution: 409.6 s; later deadlines wait a turn */

typedef struct gw_wheel_entry gw_wheel_entry_t;
typedef void (*gw_wheel_cb)(gw_wheel_entry_t *e);

struct gw_wheel_entry {
	lws_dll2_t list;
	uint64_t due; /* epoch ms */
	gw_wheel_cb cb;
};

typedef struct gw_wheel {
	struct lws_context *ctx;
	lws_dll2_owner_t slots[GW_WHEEL_SLOTS];
	uint64_t done; /* the tick (ms / TICK) processed last */
	size_t count;
	int armed;
	lws_sorted_usec_list_t sul;
} gw_wheel_t;

void gw_wheel_init(gw_wheel_t *w, struct lws_context *ctx);
void gw_wheel_dispose(gw_wheel_t *w);
/* (Re)schedules e to run cb once, at due (epoch ms) or up to one tick later. */
void gw_wheel_set(gw_wheel_t *w, gw_wheel_entry_t *e, uint64_t due, gw_wheel_cb cb);
void gw_wheel_cancel(gw_wheel_t *w, gw_wheel_entry_t *e);

#endif
