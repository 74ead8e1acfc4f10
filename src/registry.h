/* The connection registry: one LMDB record per live connection, encoded
 * with msgpack, keyed by connection ID. It is how a management call finds
 * the socket (worker and slot) and what outlives a crash for inspection.
 * Writes happen on connect and close only; lastActiveAt is flushed in
 * batches (gw_registry_touch), never once per message. */
#ifndef GW_REGISTRY_H
#define GW_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

/* A connection ID: loop, slot, generation and a MAC, URL-safe (connid.h). */
#define GW_CONN_ID_LEN 24

enum {
	GW_REG_OK = 0,
	GW_REG_NOTFOUND = 1,
	GW_REG_EXISTS = 2,
	GW_REG_FULL = 3, /* the data folder's filesystem is full: refuse, retry later */
	GW_REG_MAP_FULL = 4, /* the LMDB map, grown to its largest, is full of live
			      * records: refuse, retry later */
	GW_REG_ERROR = -1,
};

/* IDs written per transaction by gw_registry_touch (about 0.3 ms). */
#define GW_REGISTRY_TOUCH_SLICE 256

enum gw_conn_state { GW_CONN_PENDING = 0, GW_CONN_OPEN = 1 };

typedef struct gw_registry gw_registry_t;

typedef struct gw_conn_record {
	char id[GW_CONN_ID_LEN + 1];
	char api[130];   /* an API name: at most 128 bytes (config.h) */
	char stage[130];
	char source_ip[64];
	char user_agent[512];
	char host[256];  /* the Host header: the event's domainName */
	uint64_t connected_at;   /* epoch ms */
	uint64_t last_active_at; /* epoch ms */
	uint32_t worker;
	uint32_t slot;
	uint32_t state; /* enum gw_conn_state */
	uint32_t tls;   /* came over TLS (X-Forwarded-Proto https) */
} gw_conn_record_t;

/* Opens (creating) the LMDB environment in DIR (data.mdb, lock.mdb). First
 * takes an exclusive lock on DIR/wsgate.lock, held until gw_registry_close
 * (the process's end at the latest): while another gateway holds it, fails
 * with "DIR: the data folder is in use by another wsgate (PID n); ..." and
 * touches nothing. Then reopens the files of the previous run: its records
 * name sockets that no longer exist, so each is moved, in the same
 * transaction that deletes it, into the $disconnect outbox (1006, "Connection
 * lost: the gateway restarted"): the backend still learns the connection
 * is gone (gw_registry_previous). Files that are not ours or not readable
 * are replaced by empty ones. */
int gw_registry_open(const char *dir, gw_registry_t **out, char *err, size_t errlen);
/* Opens an existing registry to read it while a gateway runs (tools); takes
 * no lock. */
int gw_registry_open_readonly(const char *dir, gw_registry_t **out, char *err,
			      size_t errlen);
void gw_registry_close(gw_registry_t *reg);

/* Fills id with GW_CONN_ID_LEN random URL-safe characters (tests, tools;
 * the gateway's IDs come from connid.h). */
int gw_registry_new_id(char id[GW_CONN_ID_LEN + 1]);

/* Inserts rec; GW_REG_EXISTS if the ID is taken (IDs are never reused),
 * GW_REG_FULL if the disk cannot hold it with room left for the closes and
 * touches of the connections already registered. Writes never fault on a
 * full disk: every write function may return GW_REG_FULL instead. */
int gw_registry_insert(gw_registry_t *reg, const gw_conn_record_t *rec);
/* Overwrites rec (state changes). */
int gw_registry_update(gw_registry_t *reg, const gw_conn_record_t *rec);
int gw_registry_get(gw_registry_t *reg, const char *id, size_t idlen,
		    gw_conn_record_t *rec);
int gw_registry_delete(gw_registry_t *reg, const char *id);
/* Sets lastActiveAt of n connections, one write transaction per
 * GW_REGISTRY_TOUCH_SLICE IDs, without allocating; unknown IDs (closed
 * meanwhile) are skipped. */
int gw_registry_touch(gw_registry_t *reg, const char *const *ids,
		      const uint64_t *times, size_t n);
int gw_registry_count(gw_registry_t *reg, size_t *count);
/* Calls fn for each record (for tools and tests). Records are copied out in
 * batches, each read in its own short transaction, and fn never runs inside
 * one: a tool killed while it writes (SIGPIPE) leaves no reader behind. */
int gw_registry_foreach(gw_registry_t *reg,
			void (*fn)(const gw_conn_record_t *rec, void *user), void *user);

/* Clears the reader slots of processes that died inside a read transaction
 * (a reader SIGKILLed, say). LMDB reuses no page freed after the oldest
 * reader's snapshot, so one dead reader made the file grow with every
 * write (~35 KB per connection under churn) until the map was full. Cheap
 * and never blocks: a scan of the reader table and a lock probe per
 * process. Runs at open, before the file grows, and when the map is full;
 * the gateway also calls it every few seconds. Returns how many slots it
 * cleared, or GW_REG_ERROR. */
int gw_registry_check_readers(gw_registry_t *reg);
/* For tests: the map size of the registries opened from now on, and the
 * size connects may grow it to (0: the defaults, 4 and 64 GiB). */
void gw_registry_set_map_bytes(size_t bytes, size_t max);

/* msgpack encoding of one record, exposed for unit tests and fuzzing.
 * decode accepts any bytes: GW_REG_ERROR for what encode did not write. */
int gw_registry_encode(const gw_conn_record_t *rec, void **data, size_t *len);
int gw_registry_decode(const void *data, size_t len, gw_conn_record_t *rec);

const char *gw_registry_strerror(int rc);

/* --- the $disconnect outbox (named database "outbox", same environment) ---
 * One entry per $disconnect the backend is owed, keyed by connection ID,
 * from the close of its connection until the backend answered it (outbox.h
 * sends them). Writes go through the same room-checked transactions as the
 * records. */
typedef struct gw_outbox_record {
	gw_conn_record_t conn; /* worker, slot, state and lastActiveAt unused */
	uint32_t code;
	char reason[124];
	uint64_t closed_at; /* epoch ms */
	char request_id[24]; /* kept across retries and restarts */
	/* requestContext.authorizer as JSON text (authorizer.h), when the API
	 * has an authorizer and it fits (gw_registry_set_authorizer) */
	char authorizer[8192];
	size_t authorizer_len;
} gw_outbox_record_t;

#define GW_OUTBOX_REASON_RESTART "Connection lost: the gateway restarted"

int gw_outbox_record_encode(const gw_outbox_record_t *rec, void **data, size_t *len);
int gw_outbox_record_decode(const void *data, size_t len, gw_outbox_record_t *rec);

/* Keeps the authorizer's context (requestContext.authorizer, JSON text) of
 * connection id beside its record, deleted with it, so that a crash's
 * $disconnect carries it too. GW_REG_NOTFOUND when id has no record. */
int gw_registry_set_authorizer(gw_registry_t *reg, const char *id, const char *json,
			       size_t len);
/* What the open found of the previous run: how many records it moved to
 * the outbox, and why it could not reuse the files (NULL: it could). */
void gw_registry_previous(const gw_registry_t *reg, size_t *adopted, const char **problem);
/* One transaction: the record of id (if any) is deleted and the entry
 * (encoded by gw_outbox_record_encode) stored under id. */
int gw_registry_outbox_move(gw_registry_t *reg, const char *id, const void *val, size_t len);
/* One transaction for n entries; unknown ones are skipped. */
int gw_registry_outbox_delete(gw_registry_t *reg, const char *const *ids, size_t n);
int gw_registry_outbox_count(gw_registry_t *reg, size_t *count);
/* Calls fn with each entry's raw value (copy it: it points into the map). */
int gw_registry_outbox_foreach(gw_registry_t *reg,
			       void (*fn)(const char *id, size_t idlen, const void *val,
					  size_t len, void *user),
			       void *user);

#endif
