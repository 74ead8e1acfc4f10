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
	uint64_t connected_at;   /* epoch ms */
	uint64_t last_active_at; /* epoch ms */
	uint32_t worker;
	uint32_t slot;
	uint32_t state; /* enum gw_conn_state */
} gw_conn_record_t;

/* Opens (creating) the LMDB environment in DIR (data.mdb, lock.mdb). First
 * takes an exclusive lock on DIR/wsgate.lock, held until gw_registry_close
 * (the process's end at the latest): while another gateway holds it, fails
 * with "DIR: the data folder is in use by another wsgate (PID n); ..." and
 * touches nothing. Then starts from empty files: records left by a previous
 * run name sockets that no longer exist. */
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

#endif
