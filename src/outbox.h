/* The $disconnect outbox: every $disconnect call the backend is owed, from
 * the close of its connection until the backend has answered it. An entry
 * is stored in the registry's LMDB environment (named database "outbox")
 * in the same transaction that deletes the connection's record, so a
 * crash never loses one; it is deleted once answered, in one transaction
 * per loop iteration (gw_outbox_commit). Calls wait here, a bounded number
 * in flight per loop, never in the backend's bounded queue, so they are
 * never refused for a full queue; a failed one is retried with backoff
 * (when it never reached the backend, or the backend answered 5xx) until
 * --disconnect-retry-seconds after the close. What is pending when
 * the gateway exits, or was in flight when it died, is sent by the next
 * start, at a bounded rate: at least once, with the same requestId.
 *
 * The core below knows nothing of sockets: a send function starts a call
 * and gw_outbox_done reports its end, so it is tested alone
 * (tests/unit/test_outbox.c). gw_outbox_attach binds it to a loop. */
#ifndef GW_OUTBOX_H
#define GW_OUTBOX_H

#include "registry.h"

#include <stddef.h>
#include <stdint.h>

typedef struct gw_outbox gw_outbox_t;
typedef struct gw_outbox_entry gw_outbox_entry_t;

/* Defaults (main.c's options). */
#define GW_OUTBOX_RETRY_SECONDS 300
#define GW_OUTBOX_REPLAY_RATE 200   /* previous-run entries per second, per process */
#define GW_OUTBOX_INFLIGHT 32       /* calls at once, per loop, at most */
#define GW_OUTBOX_INFLIGHT_START 4  /* ... at first: grows while answers are quick */
#define GW_OUTBOX_MAX_ENTRIES 262144 /* in memory, per process */
/* Backoff after a failed call: doubles from the first to the last. */
#define GW_OUTBOX_BACKOFF_FIRST_MS 250
#define GW_OUTBOX_BACKOFF_MAX_MS 30000

/* Starts the call for e (rec is e's decoded entry, valid during the call
 * only). 0: started, gw_outbox_done(e) follows from a later loop
 * iteration; -1: it can never be sent (its API or $disconnect route is no
 * longer configured): e is dropped. */
typedef int (*gw_outbox_send_fn)(void *user, gw_outbox_entry_t *e,
				 const gw_outbox_record_t *rec);

typedef struct gw_outbox_opts {
	unsigned max_inflight;
	unsigned start_inflight;   /* 0: GW_OUTBOX_INFLIGHT_START */
	size_t max_entries;        /* beyond: stored, sent by the next start */
	unsigned retry_seconds;
	double replay_rate;        /* per second, this outbox's share */
	gw_outbox_send_fn send;
	/* e was in flight when the outbox is destroyed (its call is gone). */
	void (*abandon)(void *user, gw_outbox_entry_t *e);
	/* An entry's tag (gw_outbox_add) is no longer needed. */
	void (*release)(void *user, void *tag);
	void *user;
	/* Clocks (tests replace them): monotonic and wall-clock ms. */
	uint64_t (*now_ms)(void);
	uint64_t (*wall_ms)(void);
} gw_outbox_opts_t;

gw_outbox_t *gw_outbox_create(gw_registry_t *reg, const gw_outbox_opts_t *o);
/* Commits what was answered; abandons what is in flight (it stays stored). */
void gw_outbox_destroy(gw_outbox_t *ob);

/* A connection closed: stores its entry (deleting its registry record in
 * the same transaction) and queues it. Returns the registry's code; the
 * entry is queued even when it could not be stored (disk full), so the
 * call is still made unless the process dies first. tag (may be NULL) is
 * the sender's, kept with the entry in memory (released by opts.release):
 * the configuration snapshot the connection used. */
int gw_outbox_add(gw_outbox_t *ob, const gw_outbox_record_t *rec, void *tag);
/* Start-up: queues an entry already stored (the previous run's), sent at
 * the replay rate. Returns -1 (nothing queued) when it does not decode
 * (it is deleted) or the outbox is full (it waits for a later start). */
int gw_outbox_adopt(gw_outbox_t *ob, const char *id, size_t idlen, const void *val,
		    size_t len);

/* Commits the deletes of answered entries, starts the calls that are due
 * and allowed. Returns the ms until it wants to run again, or 0 when
 * nothing waits for time (a gw_outbox_add or gw_outbox_done will say). */
uint64_t gw_outbox_run(gw_outbox_t *ob);
/* How a call ended (gw_outbox_done). */
enum gw_outbox_result {
	GW_OUTBOX_RETRY = 0,     /* not delivered: tried again after a backoff */
	GW_OUTBOX_DELIVERED = 1, /* answered (or sent and maybe acted on): done */
	/* No answer in time: tried again, and fewer calls are let out at once
	 * (halved, then one more per window of answers), so that a backend
	 * answering slowly is not sent more than it can answer in time. */
	GW_OUTBOX_TIMEOUT = 2,
	/* Answered, but late (past half its timeout): done, and fewer calls
	 * are let out at once (3/4), before the backend's queue makes them
	 * time out: a call timed out may have been acted on, and is sent
	 * again. */
	GW_OUTBOX_DELIVERED_SLOW = 3,
};
void gw_outbox_done(gw_outbox_t *ob, gw_outbox_entry_t *e, int result);
/* Writes the deletes of answered entries now (one transaction). */
void gw_outbox_commit(gw_outbox_t *ob);

/* Entries not yet answered: queued, waiting for a retry or in flight. */
size_t gw_outbox_pending(const gw_outbox_t *ob);
/* Those queued or in flight, not those waiting for a retry: what a
 * shutdown waits for (a backend that is down does not hold the exit; its
 * calls stay stored for the next start). */
size_t gw_outbox_active(const gw_outbox_t *ob);

typedef struct gw_outbox_stats {
	uint64_t added, adopted, delivered, retried, timeouts, given_up, dropped, overflowed;
} gw_outbox_stats_t;
void gw_outbox_stats(const gw_outbox_t *ob, gw_outbox_stats_t *st);

/* The entry's connection ID, its tag, and per-call state its sender may
 * keep. */
const char *gw_outbox_entry_id(const gw_outbox_entry_t *e);
void *gw_outbox_entry_tag(const gw_outbox_entry_t *e);
void **gw_outbox_entry_ctx(gw_outbox_entry_t *e);

/* --- binding to an event loop (gateway.c) --- */
struct gw_worker;
/* Creates gw's outbox: calls go through gw's backend with its current
 * configuration's $disconnect route of the entry's API; a timer on gw's
 * context runs it. replay_rate is the loop's share. */
gw_outbox_t *gw_outbox_attach(struct gw_worker *gw, unsigned retry_seconds,
			      double replay_rate, size_t max_entries);
/* The loop is being destroyed: the timer is cancelled and no longer
 * scheduled (before the loop's lws context goes). */
void gw_outbox_detach(gw_outbox_t *ob);
/* Runs it soon (after an add; at the end of this loop iteration). */
void gw_outbox_kick(struct gw_worker *gw);
/* Start-up: loads the stored entries, entry i going to loop i % n. */
void gw_outbox_load(struct gw_worker **loops, unsigned n, gw_registry_t *reg);

#endif
