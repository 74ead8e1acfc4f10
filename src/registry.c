/* LMDB + msgpack connection registry, and the $disconnect outbox in the
 * same environment (named databases "conns" and "outbox"). The environment
 * is opened with MDB_NOSYNC: a committed transaction is in the map, that is
 * in the kernel's page cache, so it survives the process being killed
 * (what the outbox is for) but not the machine losing power; an fsync per
 * connect or close would buy only the latter; and with
 * MDB_WRITEMAP, so that a commit writes into the map instead of issuing
 * pwrite calls for its pages (build/bench_registry: insert 7.5 -> 3.6 us,
 * delete 9.5 -> 2.2 us on the development machine).
 *
 * MDB_WRITEMAP has a price: the map is a sparse file, and a store into a
 * hole of a full filesystem is a SIGBUS, not an error. So no write
 * transaction may run unless the pages it can add past LMDB's last page
 * already have disk blocks (posix_fallocate, in steps): a full disk then
 * refuses the new connection instead of killing the process. */
#include "registry.h"
#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <msgpack.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAP_BYTES ((size_t)4 << 30) /* virtual: only what is used takes disk */
#define MAP_MAX_BYTES ((size_t)64 << 30)
#define LOCK_MDB_BYTES 65536       /* LMDB's reader table, preallocated too */
#define GROW_BYTES ((uint64_t)1 << 20)
/* Pages one put or delete can add past the last page: a path copied and
 * split at every level, plus the free list's own record. */
#define OP_PAGES 32
/* A connect keeps room for one touch slice and the deletes after it, so
 * that a full disk stops new connections but not the closing of old ones.
 * (LMDB never shrinks its file, so connects come back when the disk has
 * room again, not when closes emptied pages.) */
#define INSERT_PAGES (OP_PAGES + GW_REGISTRY_TOUCH_SLICE + 2 * OP_PAGES)
/* The largest record: every string of gw_conn_record_t at its cap. */
#define RECORD_MAX 2048

struct gw_registry {
	MDB_env *env;
	MDB_dbi dbi;     /* "conns": the records */
	MDB_dbi outbox;  /* "outbox": $disconnect calls owed (gw_registry_outbox_*) */
	MDB_dbi authz;   /* "authz": an authorizer's context per connection */
	size_t adopted;  /* records of the previous run moved to the outbox */
	char problem[256]; /* why the previous run's files were not reused */
	int lock_fd;     /* DIR/wsgate.lock, flock()ed while the registry is open */
	int data_fd;     /* LMDB's data.mdb; -1 when read-only */
	size_t page;
	uint64_t backed; /* bytes of data.mdb that have disk blocks */
	/* Every transaction runs under the read side; growing the map takes
	 * the write side (LMDB: no transaction may be open in the process). */
	pthread_rwlock_t lock;
	uint64_t map_bytes; /* changed under the write side only */
	uint64_t map_max;   /* the map grows up to this */
	size_t max_records; /* connects beyond are refused (GW_REG_MAP_FULL) */
};

/* A connect refused for the count of records, not for want of pages: no
 * growth would help. */
#define REG_TOO_MANY 100
/* What one record may cost at worst: an overflow page for the largest
 * record, its leaf and branch share, and as much again for copies on write
 * and the free list, twice over, so that a map holding max_records still
 * has room for every close. */
#define RECORD_PAGES 4

/* The map of registries opened from now on (tests make it small). */
static size_t map_bytes_at_open = MAP_BYTES, map_max_at_open = MAP_MAX_BYTES;

void gw_registry_set_map_bytes(size_t bytes, size_t max)
{
	map_bytes_at_open = bytes ? bytes : MAP_BYTES;
	map_max_at_open = max ? max : MAP_MAX_BYTES;
}

const char *gw_registry_strerror(int rc)
{
	switch (rc) {
	case GW_REG_OK: return "ok";
	case GW_REG_NOTFOUND: return "not found";
	case GW_REG_EXISTS: return "already exists";
	case GW_REG_FULL: return "no space left in the data folder";
	case GW_REG_MAP_FULL: return "the registry's LMDB map is full (too many live connections)";
	default: return "LMDB error";
	}
}

/* Takes DIR/wsgate.lock for the life of the registry: a second gateway on
 * the same folder would otherwise wipe the first one's records. flock()
 * ends with the process, so a kill -9 leaves nothing to clean up. */
static int lock_dir(gw_registry_t *reg, const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX], pid[32];
	struct stat st;
	ssize_t n;

	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create the data folder: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st)) {
		snprintf(err, errlen, "%s: cannot read the data folder: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: expected a folder for --data, found a file", dir);
		return -1;
	}
	/* Another user could plant symbolic links there, which the gateway
	 * would truncate and map (a data folder under /tmp, say). */
	if (st.st_mode & S_IWOTH) {
		snprintf(err, errlen, "%s: the data folder is writable by every user (mode %04o); "
			 "expected a folder only the gateway's user can write (chmod o-w)", dir,
			 (unsigned)(st.st_mode & 07777));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/wsgate.lock", dir);
	reg->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (reg->lock_fd < 0) {
		snprintf(err, errlen, "%s: cannot create %s: %s (the data folder must be "
			 "writable)", dir, path, strerror(errno));
		return -1;
	}
	if (flock(reg->lock_fd, LOCK_EX | LOCK_NB)) {
		int e = errno;

		n = pread(reg->lock_fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (e == EWOULDBLOCK)
			snprintf(err, errlen, "%s: the data folder is in use by another wsgate "
				 "(PID %s); each gateway needs its own --data folder", dir,
				 pid[0] ? pid : "unknown");
		else
			snprintf(err, errlen, "%s: cannot lock %s: %s", dir, path, strerror(e));
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(reg->lock_fd, 0) || pwrite(reg->lock_fd, pid, (size_t)n, 0) != n) {
		snprintf(err, errlen, "%s: cannot write %s: %s", dir, path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Starts from new files, when the previous run's cannot be reused (not
 * ours, or not readable by this LMDB: open_previous). The lock file LMDB
 * maps is given its blocks here, before LMDB writes into it. */
static int reset_files(const char *dir, char *err, size_t errlen)
{
	static const char *const names[] = { "data.mdb", "lock.mdb" };
	char path[PATH_MAX];
	int fd, rc;

	/* Both created here, O_EXCL (never through a symbolic link): LMDB
	 * then opens the regular files it finds. */
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (unlink(path) && errno != ENOENT) {
			snprintf(err, errlen, "%s: cannot remove the old %s: %s", dir, path,
				 strerror(errno));
			return -1;
		}
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			snprintf(err, errlen, "%s: cannot create %s: %s", dir, path,
				 strerror(errno));
			return -1;
		}
		rc = i ? posix_fallocate(fd, 0, LOCK_MDB_BYTES) : 0;
		close(fd);
		if (rc) {
			snprintf(err, errlen, "%s: cannot allocate %s: %s", dir, path,
				 strerror(rc));
			return -1;
		}
	}
	return 0;
}

int gw_registry_check_readers(gw_registry_t *reg)
{
	int dead = 0;

	if (mdb_reader_check(reg->env, &dead))
		return GW_REG_ERROR;
	return dead;
}

static int last_page(gw_registry_t *reg, uint64_t *pages_used)
{
	MDB_envinfo info;

	if (mdb_env_info(reg->env, &info))
		return -1;
	*pages_used = (uint64_t)info.me_last_pgno + 1;
	return 0;
}

/* Makes sure `pages` pages past the last one used have disk blocks.
 * Called inside a write transaction, so writers are serialised and the
 * last page is the one this transaction starts from. */
static int ensure_room(gw_registry_t *reg, uint64_t pages)
{
	uint64_t used, need, want;

	if (last_page(reg, &used))
		return -1;
	need = (used + pages) * reg->page;
	if (need > reg->map_bytes)
		need = reg->map_bytes; /* beyond it LMDB answers MDB_MAP_FULL itself */
	if (need <= reg->backed)
		return 0;
	/* About to grow: if a dead reader pinned old pages, freeing its slot
	 * lets this transaction reuse them instead (it computes the oldest
	 * snapshot when it first allocates, after this). */
	if (gw_registry_check_readers(reg) > 0) {
		if (last_page(reg, &used))
			return -1;
		need = (used + pages) * reg->page;
	}
	want = (need + GROW_BYTES - 1) / GROW_BYTES * GROW_BYTES;
	if (want > reg->map_bytes)
		want = reg->map_bytes;
	if (!posix_fallocate(reg->data_fd, (off_t)reg->backed, (off_t)(want - reg->backed))) {
		reg->backed = want;
		return 0;
	}
	if (want > need &&
	    !posix_fallocate(reg->data_fd, (off_t)reg->backed, (off_t)(need - reg->backed))) {
		reg->backed = need;
		return 0;
	}
	return -1;
}

/* Begins a write transaction that may add `pages` pages. */
static int begin_write(gw_registry_t *reg, uint64_t pages, MDB_txn **txn)
{
	if (reg->data_fd < 0 || mdb_txn_begin(reg->env, NULL, 0, txn))
		return GW_REG_ERROR;
	if (ensure_room(reg, pages)) {
		mdb_txn_abort(*txn);
		return GW_REG_FULL;
	}
	return 0;
}

static int lmdb_rc(int rc)
{
	switch (rc) {
	case 0: return GW_REG_OK;
	case MDB_KEYEXIST: return GW_REG_EXISTS;
	case MDB_NOTFOUND: return GW_REG_NOTFOUND;
	case MDB_MAP_FULL: return GW_REG_MAP_FULL;
	case ENOSPC: return GW_REG_FULL;
	default: return GW_REG_ERROR;
	}
}

static int open_env(gw_registry_t *reg, const char *dir, int fresh, char *err,
		    size_t errlen)
{
	MDB_txn *txn = NULL;
	MDB_stat st;
	int rc;

	if ((rc = mdb_env_create(&reg->env)) ||
	    (rc = mdb_env_set_mapsize(reg->env, reg->map_bytes)) ||
	    (rc = mdb_env_set_maxreaders(reg->env, 512)) ||
	    (rc = mdb_env_set_maxdbs(reg->env, 4)) ||
	    (rc = mdb_env_open(reg->env, dir,
			       MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS | MDB_WRITEMAP, 0600)) ||
	    (rc = mdb_env_get_fd(reg->env, &reg->data_fd)) ||
	    (rc = mdb_env_stat(reg->env, &st))) {
		snprintf(err, errlen, "%s: cannot open the LMDB registry: %s", dir,
			 mdb_strerror(rc));
		reg->data_fd = -1;
		return -1;
	}
	reg->page = st.ms_psize;
	if (!fresh) {
		MDB_envinfo info;

		/* A reused file keeps the map a previous run grew it to. */
		if (!mdb_env_info(reg->env, &info) && info.me_mapsize > reg->map_bytes)
			reg->map_bytes = info.me_mapsize;
		if (reg->map_max < reg->map_bytes)
			reg->map_max = reg->map_bytes;
	}
	reg->max_records = (size_t)(reg->map_max / (RECORD_PAGES * reg->page));
	/* Readers a killed process left in a lock file kept from an earlier
	 * run would pin pages from the start. */
	gw_registry_check_readers(reg);
	/* LMDB wrote its two meta pages with write(2): they have blocks. A
	 * reused file gets its blocks again from 0 (fallocate keeps data). */
	reg->backed = fresh ? 2 * (uint64_t)reg->page : 0;
	rc = begin_write(reg, OP_PAGES, &txn);
	if (rc) {
		snprintf(err, errlen, "%s: cannot open the LMDB registry: %s", dir,
			 gw_registry_strerror(rc));
		return -1;
	}
	if ((rc = mdb_dbi_open(txn, "conns", MDB_CREATE, &reg->dbi)) ||
	    (rc = mdb_dbi_open(txn, "outbox", MDB_CREATE, &reg->outbox)) ||
	    (rc = mdb_dbi_open(txn, "authz", MDB_CREATE, &reg->authz)) ||
	    (rc = mdb_txn_commit(txn))) {
		if (rc != MDB_SUCCESS && txn)
			mdb_txn_abort(txn);
		snprintf(err, errlen, "%s: cannot open the LMDB registry: %s", dir,
			 mdb_strerror(rc));
		return -1;
	}
	return 0;
}

static int reusable_files(const char *dir);
static int adopt_previous(gw_registry_t *reg);

/* Reopens the previous run's files when they are ours and LMDB reads
 * them, and moves their records to the outbox; otherwise starts from new
 * files and says why in reg->problem (their $disconnect calls are lost). */
static int open_previous(gw_registry_t *reg, const char *dir, char *err, size_t errlen)
{
	char why[192] = "";

	if (reusable_files(dir)) {
		if (!open_env(reg, dir, 0, why, sizeof(why)) && !adopt_previous(reg))
			return 0;
		if (!why[0])
			snprintf(why, sizeof(why), "its records could not be moved to the outbox");
		snprintf(reg->problem, sizeof(reg->problem), "%s", why);
		if (reg->env)
			mdb_env_close(reg->env);
		reg->env = NULL;
		reg->data_fd = -1;
		reg->adopted = 0;
	}
	if (reset_files(dir, err, errlen))
		return -1;
	return open_env(reg, dir, 1, err, errlen);
}

static gw_registry_t *registry_alloc(void)
{
	gw_registry_t *reg = calloc(1, sizeof(*reg));
	pthread_rwlockattr_t attr;

	if (!reg)
		abort();
	reg->lock_fd = reg->data_fd = -1;
	reg->map_bytes = map_bytes_at_open;
	reg->map_max = map_max_at_open > reg->map_bytes ? map_max_at_open : reg->map_bytes;
	/* A growth waits for the transactions under way, not for every one
	 * that starts after it asked. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&reg->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	return reg;
}

/* Begins a read transaction. A tool's map may have been grown by the
 * gateway since it opened: it adopts the new size (it has no other
 * transaction open) and begins again. */
static int begin_read(gw_registry_t *reg, MDB_txn **txn)
{
	int rc = mdb_txn_begin(reg->env, NULL, MDB_RDONLY, txn);

	if (rc == MDB_MAP_RESIZED && reg->data_fd < 0 && !mdb_env_set_mapsize(reg->env, 0))
		rc = mdb_txn_begin(reg->env, NULL, MDB_RDONLY, txn);
	return rc;
}

int gw_registry_open(const char *dir, gw_registry_t **out, char *err, size_t errlen)
{
	gw_registry_t *reg = registry_alloc();

	*out = NULL;
	/* Nothing is touched before the lock is held. */
	if (lock_dir(reg, dir, err, errlen) || open_previous(reg, dir, err, errlen)) {
		gw_registry_close(reg);
		return GW_REG_ERROR;
	}
	*out = reg;
	return 0;
}

int gw_registry_open_readonly(const char *dir, gw_registry_t **out, char *err,
			      size_t errlen)
{
	gw_registry_t *reg = registry_alloc();
	MDB_txn *txn = NULL;
	int rc;

	*out = NULL;
	if ((rc = mdb_env_create(&reg->env)) ||
	    (rc = mdb_env_set_maxreaders(reg->env, 512)) ||
	    (rc = mdb_env_set_maxdbs(reg->env, 4)) ||
	    (rc = mdb_env_open(reg->env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) ||
	    (rc = mdb_txn_begin(reg->env, NULL, MDB_RDONLY, &txn)) ||
	    (rc = mdb_dbi_open(txn, "conns", 0, &reg->dbi)) ||
	    (rc = mdb_dbi_open(txn, "outbox", 0, &reg->outbox))) {
		snprintf(err, errlen, "%s: cannot open the LMDB registry: %s", dir, mdb_strerror(rc));
		if (txn)
			mdb_txn_abort(txn);
		gw_registry_close(reg);
		return GW_REG_ERROR;
	}
	/* Committed, not aborted: an aborted transaction closes the named
	 * databases it opened. */
	if ((rc = mdb_txn_commit(txn))) {
		snprintf(err, errlen, "%s: cannot open the LMDB registry: %s", dir, mdb_strerror(rc));
		gw_registry_close(reg);
		return GW_REG_ERROR;
	}
	*out = reg;
	return 0;
}

void gw_registry_close(gw_registry_t *reg)
{
	if (!reg)
		return;
	if (reg->env)
		mdb_env_close(reg->env);
	if (reg->lock_fd >= 0)
		close(reg->lock_fd); /* releases the flock */
	pthread_rwlock_destroy(&reg->lock);
	free(reg);
}

int gw_registry_new_id(char id[GW_CONN_ID_LEN + 1])
{
	unsigned char raw[GW_CONN_ID_LEN / 4 * 3];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return GW_REG_ERROR;
	gw_base64url(id, raw, sizeof(raw));
	return 0;
}

static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
	size_t kl = strlen(k), vl = strlen(v);

	msgpack_pack_str(pk, kl);
	msgpack_pack_str_body(pk, k, kl);
	msgpack_pack_str(pk, vl);
	msgpack_pack_str_body(pk, v, vl);
}

static void pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
	size_t kl = strlen(k);

	msgpack_pack_str(pk, kl);
	msgpack_pack_str_body(pk, k, kl);
	msgpack_pack_uint64(pk, v);
}

/* lastActiveAt always takes 9 bytes (0xcf and 8 big-endian bytes), so that
 * a touch rewrites it in place. */
static void pack_kv_fix_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
	size_t kl = strlen(k);

	msgpack_pack_str(pk, kl);
	msgpack_pack_str_body(pk, k, kl);
	msgpack_pack_fix_uint64(pk, v);
}

int gw_registry_encode(const gw_conn_record_t *rec, void **data, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 12);
	pack_kv_str(&pk, "id", rec->id);
	pack_kv_str(&pk, "api", rec->api);
	pack_kv_str(&pk, "stage", rec->stage);
	pack_kv_str(&pk, "sourceIp", rec->source_ip);
	pack_kv_str(&pk, "userAgent", rec->user_agent);
	pack_kv_u64(&pk, "connectedAt", rec->connected_at);
	pack_kv_fix_u64(&pk, "lastActiveAt", rec->last_active_at);
	pack_kv_u64(&pk, "worker", rec->worker);
	pack_kv_u64(&pk, "slot", rec->slot);
	pack_kv_u64(&pk, "state", rec->state);
	pack_kv_str(&pk, "host", rec->host);
	pack_kv_u64(&pk, "tls", rec->tls);
	*data = sb.data;
	*len = sb.size;
	return 0;
}

static void copy_str(char *dst, size_t cap, const msgpack_object *o)
{
	size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;

	/* msgpack-c leaves ptr NULL for an empty string: memcpy must not see it. */
	if (n)
		memcpy(dst, o->via.str.ptr, n);
	dst[n] = '\0';
}

/* Length of the msgpack string or unsigned integer at p (at most n bytes),
 * or 0 if it is anything else or runs past the end. */
static size_t scalar_len(const unsigned char *p, size_t n, int string_only)
{
	size_t head, body;

	if (!n)
		return 0;
	if ((p[0] & 0xe0) == 0xa0) { /* fixstr */
		head = 1;
		body = p[0] & 0x1f;
	} else if (p[0] == 0xd9 && n >= 2) {
		head = 2;
		body = p[1];
	} else if (p[0] == 0xda && n >= 3) {
		head = 3;
		body = (size_t)p[1] << 8 | p[2];
	} else if (string_only) {
		return 0;
	} else if (p[0] < 0x80) { /* positive fixint */
		return 1;
	} else if (p[0] >= 0xcc && p[0] <= 0xcf) { /* uint 8..64 */
		head = 1;
		body = (size_t)1 << (p[0] - 0xcc);
	} else {
		return 0;
	}
	return head + body <= n ? head + body : 0;
}

static int flat_record(const void *data, size_t len)
{
	const unsigned char *p = data, *end = p + len;
	size_t count;

	if (!len)
		return 0;
	if ((p[0] & 0xf0) == 0x80) {
		count = p[0] & 0x0f;
		p++;
	} else if (p[0] == 0xde && len >= 3) {
		count = (size_t)p[1] << 8 | p[2];
		p += 3;
	} else {
		return 0;
	}
	for (size_t i = 0; i < count; i++) {
		size_t k = scalar_len(p, (size_t)(end - p), 1), v;

		if (!k)
			return 0;
		p += k;
		v = scalar_len(p, (size_t)(end - p), 0);
		if (!v)
			return 0;
		p += v;
	}
	return 1;
}

/* The fields of a record, and with out those of an outbox entry. */
static int decode_fields(const void *data, size_t len, gw_conn_record_t *rec,
			 gw_outbox_record_t *out)
{
	msgpack_unpacked up;
	size_t off = 0;
	int rc = GW_REG_ERROR;

	memset(rec, 0, sizeof(*rec));
	/* A record is a flat map of strings to strings or unsigned integers.
	 * Anything else is not ours, and a forged container count would make
	 * msgpack allocate gigabytes before noticing the data is short. */
	if (!flat_record(data, len))
		return GW_REG_ERROR;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
	    up.data.type != MSGPACK_OBJECT_MAP)
		goto out;
	for (uint32_t i = 0; i < up.data.via.map.size; i++) {
		const msgpack_object *k = &up.data.via.map.ptr[i].key;
		const msgpack_object *v = &up.data.via.map.ptr[i].val;
		char key[16];

		if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof(key))
			continue;
		copy_str(key, sizeof(key), k);
		if (v->type == MSGPACK_OBJECT_STR) {
			if (!strcmp(key, "id"))
				copy_str(rec->id, sizeof(rec->id), v);
			else if (!strcmp(key, "api"))
				copy_str(rec->api, sizeof(rec->api), v);
			else if (!strcmp(key, "stage"))
				copy_str(rec->stage, sizeof(rec->stage), v);
			else if (!strcmp(key, "sourceIp"))
				copy_str(rec->source_ip, sizeof(rec->source_ip), v);
			else if (!strcmp(key, "userAgent"))
				copy_str(rec->user_agent, sizeof(rec->user_agent), v);
			else if (!strcmp(key, "host"))
				copy_str(rec->host, sizeof(rec->host), v);
			else if (out && !strcmp(key, "reason"))
				copy_str(out->reason, sizeof(out->reason), v);
			else if (out && !strcmp(key, "requestId"))
				copy_str(out->request_id, sizeof(out->request_id), v);
			else if (out && !strcmp(key, "authorizer") &&
				 v->via.str.size < sizeof(out->authorizer)) {
				copy_str(out->authorizer, sizeof(out->authorizer), v);
				out->authorizer_len = v->via.str.size;
			}
		} else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			uint64_t n = v->via.u64;
			if (!strcmp(key, "connectedAt"))
				rec->connected_at = n;
			else if (!strcmp(key, "lastActiveAt"))
				rec->last_active_at = n;
			else if (!strcmp(key, "worker"))
				rec->worker = (uint32_t)n;
			else if (!strcmp(key, "slot"))
				rec->slot = (uint32_t)n;
			else if (!strcmp(key, "state"))
				rec->state = (uint32_t)n;
			else if (!strcmp(key, "tls"))
				rec->tls = n != 0;
			else if (out && !strcmp(key, "code"))
				out->code = n < 65536 ? (uint32_t)n : 1006;
			else if (out && !strcmp(key, "closedAt"))
				out->closed_at = n;
		}
	}
	rc = rec->id[0] ? GW_REG_OK : GW_REG_ERROR;
out:
	msgpack_unpacked_destroy(&up);
	return rc;
}

int gw_registry_decode(const void *data, size_t len, gw_conn_record_t *rec)
{
	return decode_fields(data, len, rec, NULL);
}

static int put_once(gw_registry_t *reg, const gw_conn_record_t *rec, unsigned flags)
{
	MDB_txn *txn;
	MDB_val k, v;
	void *data;
	size_t len;
	int rc;

	rc = begin_write(reg, flags & MDB_NOOVERWRITE ? INSERT_PAGES : OP_PAGES, &txn);
	if (rc)
		return rc;
	if (flags & MDB_NOOVERWRITE) {
		MDB_stat st;

		if (mdb_stat(txn, reg->dbi, &st) || st.ms_entries >= reg->max_records) {
			mdb_txn_abort(txn);
			return REG_TOO_MANY;
		}
	}
	gw_registry_encode(rec, &data, &len);
	k.mv_data = (void *)rec->id;
	k.mv_size = strlen(rec->id);
	v.mv_data = data;
	v.mv_size = len;
	rc = mdb_put(txn, reg->dbi, &k, &v, flags);
	free(data);
	if (rc) {
		mdb_txn_abort(txn);
		return lmdb_rc(rc);
	}
	return lmdb_rc(mdb_txn_commit(txn));
}

/* Makes the map larger (doubling, up to limit) unless another thread did
 * since `seen` was read. mdb_env_set_mapsize needs no transaction open in
 * the process: the write side of reg->lock waits for them all. */
static int grow(gw_registry_t *reg, uint64_t seen, uint64_t limit)
{
	uint64_t next;
	int rc = -1;

	pthread_rwlock_wrlock(&reg->lock);
	if (reg->map_bytes > seen) {
		rc = 0;
	} else {
		next = reg->map_bytes * 2 < limit ? reg->map_bytes * 2 : limit;
		if (next > reg->map_bytes && !mdb_env_set_mapsize(reg->env, (size_t)next)) {
			reg->map_bytes = next;
			rc = 0;
		}
	}
	pthread_rwlock_unlock(&reg->lock);
	return rc;
}

/* Runs one write under the read side of reg->lock. A full map is first
 * blamed on readers that died inside a transaction (their pages are reused
 * once their slots are freed), then grown, up to map_max. Connects stop at
 * max_records, which fill at most a quarter of map_max, so that closes and
 * touches always find room (GW_REG_MAP_FULL for a connect, until closes). */
static int run_write(gw_registry_t *reg, int (*op)(gw_registry_t *, void *), void *arg)
{
	for (int tries = 0;; tries++) {
		uint64_t seen;
		int rc;

		pthread_rwlock_rdlock(&reg->lock);
		seen = reg->map_bytes;
		rc = op(reg, arg);
		pthread_rwlock_unlock(&reg->lock);
		if (rc == REG_TOO_MANY)
			return GW_REG_MAP_FULL;
		if (rc != GW_REG_MAP_FULL || tries == 8)
			return rc;
		if (gw_registry_check_readers(reg) <= 0 && grow(reg, seen, reg->map_max))
			return rc;
	}
}

struct put_arg {
	const gw_conn_record_t *rec;
	unsigned flags;
};

static int put_op(gw_registry_t *reg, void *arg)
{
	struct put_arg *a = arg;

	return put_once(reg, a->rec, a->flags);
}

static int put(gw_registry_t *reg, const gw_conn_record_t *rec, unsigned flags)
{
	struct put_arg a = { rec, flags };

	return run_write(reg, put_op, &a);
}

int gw_registry_insert(gw_registry_t *reg, const gw_conn_record_t *rec)
{
	return put(reg, rec, MDB_NOOVERWRITE);
}

int gw_registry_update(gw_registry_t *reg, const gw_conn_record_t *rec)
{
	return put(reg, rec, 0);
}

int gw_registry_get(gw_registry_t *reg, const char *id, size_t idlen,
		    gw_conn_record_t *rec)
{
	MDB_txn *txn;
	MDB_val k = { idlen, (void *)id }, v;
	int rc;

	if (!idlen || idlen > GW_CONN_ID_LEN * 4)
		return GW_REG_NOTFOUND;
	pthread_rwlock_rdlock(&reg->lock);
	if (begin_read(reg, &txn)) {
		pthread_rwlock_unlock(&reg->lock);
		return GW_REG_ERROR;
	}
	rc = mdb_get(txn, reg->dbi, &k, &v);
	/* Decode (copy out) before the transaction ends: v points into the map. */
	if (!rc)
		rc = gw_registry_decode(v.mv_data, v.mv_size, rec);
	else
		rc = rc == MDB_NOTFOUND ? GW_REG_NOTFOUND : GW_REG_ERROR;
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&reg->lock);
	return rc;
}

static int delete_once(gw_registry_t *reg, const char *id)
{
	MDB_txn *txn;
	MDB_val k = { strlen(id), (void *)id };
	int rc;

	rc = begin_write(reg, OP_PAGES, &txn);
	if (rc)
		return rc;
	rc = mdb_del(txn, reg->dbi, &k, NULL);
	if (!rc) {
		rc = mdb_del(txn, reg->authz, &k, NULL); /* with the record */
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	if (rc) {
		mdb_txn_abort(txn);
		return lmdb_rc(rc);
	}
	return lmdb_rc(mdb_txn_commit(txn));
}

static int delete_op(gw_registry_t *reg, void *arg)
{
	return delete_once(reg, arg);
}

int gw_registry_delete(gw_registry_t *reg, const char *id)
{
	return run_write(reg, delete_op, (void *)id);
}

/* Offset of lastActiveAt's 8 value bytes in a record as encode writes it,
 * or 0 if the record is not in that form. */
static size_t last_active_offset(const unsigned char *p, size_t len)
{
	static const char key[] = "lastActiveAt";
	const unsigned char *q = p, *end = p + len;
	size_t count;

	if (!len || (q[0] & 0xf0) != 0x80)
		return 0;
	count = *q++ & 0x0f;
	for (size_t i = 0; i < count; i++) {
		size_t k = scalar_len(q, (size_t)(end - q), 1), v;

		if (!k)
			return 0;
		v = scalar_len(q + k, (size_t)(end - q - k), 0);
		if (!v)
			return 0;
		if (k == sizeof(key) && !memcmp(q + 1, key, sizeof(key) - 1))
			return v == 9 && q[k] == 0xcf ? (size_t)(q + k + 1 - p) : 0;
		q += k + v;
	}
	return 0;
}

/* One transaction for up to GW_REGISTRY_TOUCH_SLICE IDs, each record
 * rewritten with its new time patched in: no decoding, no allocation. */
static int touch_slice(gw_registry_t *reg, const char *const *ids, const uint64_t *times,
		       size_t n)
{
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc;

	rc = begin_write(reg, n + OP_PAGES, &txn);
	if (rc)
		return rc;
	if ((rc = mdb_cursor_open(txn, reg->dbi, &cur))) {
		mdb_txn_abort(txn);
		return lmdb_rc(rc);
	}
	for (size_t i = 0; i < n; i++) {
		MDB_val k = { strlen(ids[i]), (void *)ids[i] }, v;
		unsigned char buf[RECORD_MAX];
		size_t off;

		if (mdb_cursor_get(cur, &k, &v, MDB_SET_KEY) || v.mv_size > sizeof(buf) ||
		    !(off = last_active_offset(v.mv_data, v.mv_size)))
			continue; /* closed meanwhile */
		memcpy(buf, v.mv_data, v.mv_size);
		for (int b = 0; b < 8; b++)
			buf[off + (size_t)b] = (unsigned char)(times[i] >> (56 - 8 * b));
		v.mv_data = buf;
		rc = mdb_cursor_put(cur, &k, &v, MDB_CURRENT);
		if (rc) {
			mdb_cursor_close(cur);
			mdb_txn_abort(txn);
			return lmdb_rc(rc);
		}
	}
	mdb_cursor_close(cur);
	return lmdb_rc(mdb_txn_commit(txn));
}

struct touch_arg {
	const char *const *ids;
	const uint64_t *times;
	size_t n;
};

static int touch_op(gw_registry_t *reg, void *arg)
{
	struct touch_arg *a = arg;

	return touch_slice(reg, a->ids, a->times, a->n);
}

int gw_registry_touch(gw_registry_t *reg, const char *const *ids,
		      const uint64_t *times, size_t n)
{
	int rc = GW_REG_OK;

	for (size_t i = 0; i < n; i += GW_REGISTRY_TOUCH_SLICE) {
		size_t k = n - i < GW_REGISTRY_TOUCH_SLICE ? n - i : GW_REGISTRY_TOUCH_SLICE;
		struct touch_arg a = { ids + i, times + i, k };
		int r = run_write(reg, touch_op, &a);

		if (r)
			rc = r;
	}
	return rc;
}

/* Entries of one database, read in a short transaction. */
static int count_entries(gw_registry_t *reg, MDB_dbi dbi, size_t *count)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	pthread_rwlock_rdlock(&reg->lock);
	rc = begin_read(reg, &txn);
	if (!rc) {
		rc = mdb_stat(txn, dbi, &st);
		mdb_txn_abort(txn);
	}
	pthread_rwlock_unlock(&reg->lock);
	if (rc)
		return GW_REG_ERROR;
	*count = st.ms_entries;
	return 0;
}

int gw_registry_count(gw_registry_t *reg, size_t *count)
{
	return count_entries(reg, reg->dbi, count);
}

#define FOREACH_BATCH 64
#define KEY_MAX 511 /* LMDB's largest key */

/* Hands `take` up to FOREACH_BATCH entries of dbi after the key `last`, in
 * one short read transaction, and remembers the last key seen: the
 * listing and the outbox replay copy entries out and act on them outside
 * any transaction (a reader stuck in one keeps LMDB from reusing pages).
 * take returns 1 when it kept the entry as the n-th, 0 to skip it, and -1
 * on failure. */
static int walk_batch(gw_registry_t *reg, MDB_dbi dbi, char *last, size_t *last_len,
		      size_t *n, int *more,
		      int (*take)(const MDB_val *k, const MDB_val *v, size_t i, void *ctx),
		      void *ctx)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, r = 0;

	*n = 0;
	*more = 0;
	if (begin_read(reg, &txn))
		return GW_REG_ERROR;
	if (mdb_cursor_open(txn, dbi, &cur)) {
		mdb_txn_abort(txn);
		return GW_REG_ERROR;
	}
	if (*last_len) {
		k.mv_data = last;
		k.mv_size = *last_len;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (!rc && k.mv_size == *last_len && !memcmp(k.mv_data, last, *last_len))
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	} else {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	for (; !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (*n == FOREACH_BATCH) {
			*more = 1;
			break;
		}
		if (k.mv_size <= KEY_MAX) {
			memcpy(last, k.mv_data, k.mv_size);
			*last_len = k.mv_size;
		}
		r = take(&k, &v, *n, ctx);
		if (r < 0)
			break;
		*n += (size_t)r;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return r < 0 ? GW_REG_ERROR : 0;
}

static int take_record(const MDB_val *k, const MDB_val *v, size_t i, void *ctx)
{
	gw_conn_record_t *recs = ctx;

	(void)k;
	return !gw_registry_decode(v->mv_data, v->mv_size, &recs[i]);
}

int gw_registry_foreach(gw_registry_t *reg,
			void (*fn)(const gw_conn_record_t *rec, void *user), void *user)
{
	gw_conn_record_t *recs = malloc(FOREACH_BATCH * sizeof(*recs));
	char last[KEY_MAX];
	size_t last_len = 0, n;
	int more = 1, rc = 0;

	if (!recs)
		return GW_REG_ERROR;
	while (more) {
		pthread_rwlock_rdlock(&reg->lock);
		rc = walk_batch(reg, reg->dbi, last, &last_len, &n, &more, take_record, recs);
		pthread_rwlock_unlock(&reg->lock);
		if (rc)
			break;
		for (size_t i = 0; i < n; i++)
			fn(&recs[i], user);
	}
	free(recs);
	return rc;
}

/* --- the previous run, and the $disconnect outbox ----------------------- */

/* The previous run's data.mdb and lock.mdb, when both are regular files of
 * this user with one link: anything else (a link someone planted, a file
 * of another user) is replaced by reset_files. */
static int reusable_files(const char *dir)
{
	static const char *const names[] = { "data.mdb", "lock.mdb" };
	char path[PATH_MAX];
	struct stat st;

	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (lstat(path, &st) || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
		    st.st_nlink != 1 || (i == 0 && !st.st_size))
			return 0;
	}
	/* LMDB maps the lock file: it must have its blocks (SIGBUS otherwise). */
	snprintf(path, sizeof(path), "%s/lock.mdb", dir);
	{
		int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW), rc;

		if (fd < 0)
			return 0;
		rc = posix_fallocate(fd, 0, LOCK_MDB_BYTES);
		close(fd);
		if (rc)
			return 0;
	}
	return 1;
}

static void pack_kv_str_n(msgpack_packer *pk, const char *k, const char *v)
{
	pack_kv_str(pk, k, v ? v : "");
}

int gw_outbox_record_encode(const gw_outbox_record_t *rec, void **data, size_t *len)
{
	const gw_conn_record_t *c = &rec->conn;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, rec->authorizer_len ? 13 : 12);
	pack_kv_str_n(&pk, "id", c->id);
	pack_kv_str_n(&pk, "api", c->api);
	pack_kv_str_n(&pk, "stage", c->stage);
	pack_kv_str_n(&pk, "sourceIp", c->source_ip);
	pack_kv_str_n(&pk, "userAgent", c->user_agent);
	pack_kv_str_n(&pk, "host", c->host);
	pack_kv_u64(&pk, "tls", c->tls);
	pack_kv_u64(&pk, "connectedAt", c->connected_at);
	pack_kv_u64(&pk, "code", rec->code);
	pack_kv_str_n(&pk, "reason", rec->reason);
	pack_kv_u64(&pk, "closedAt", rec->closed_at);
	pack_kv_str_n(&pk, "requestId", rec->request_id);
	if (rec->authorizer_len) {
		msgpack_pack_str(&pk, 10);
		msgpack_pack_str_body(&pk, "authorizer", 10);
		msgpack_pack_str(&pk, rec->authorizer_len);
		msgpack_pack_str_body(&pk, rec->authorizer, rec->authorizer_len);
	}
	*data = sb.data;
	*len = sb.size;
	return 0;
}

int gw_outbox_record_decode(const void *data, size_t len, gw_outbox_record_t *rec)
{
	memset(rec, 0, sizeof(*rec));
	return decode_fields(data, len, &rec->conn, rec);
}

/* A request ID like the gateway's (16 URL-safe characters), drawn here
 * because no loop exists yet; it stays with the entry across retries. */
static int random_request_id(char out[24])
{
	unsigned char raw[12];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	gw_base64url(out, raw, sizeof(raw));
	return 0;
}

#define ADOPT_SLICE 512

struct adopt_arg {
	uint64_t now;
	int left;
};

/* Moves up to ADOPT_SLICE records into the outbox in one transaction;
 * a->left: whether records remain. A crash between slices leaves the rest
 * as records, moved by the next start: none is sent twice or skipped. */
static int adopt_slice(gw_registry_t *reg, void *arg)
{
	struct adopt_arg *a = arg;
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	MDB_stat st;
	MDB_val k, v;
	size_t count, moved = 0;
	int rc, n = 0;

	a->left = 0;
	if (begin_read(reg, &txn))
		return GW_REG_ERROR;
	rc = mdb_stat(txn, reg->dbi, &st);
	mdb_txn_abort(txn);
	if (rc)
		return GW_REG_ERROR;
	count = st.ms_entries < ADOPT_SLICE ? st.ms_entries : ADOPT_SLICE;
	if (!count)
		return 0; /* a clean exit left none: no write */
	/* The entries' pages (at least two records fit a page) and the
	 * records' pages copied before their deletes, and the paths: room for
	 * this, not more (a larger reservation would delay the dead-reader
	 * check that growth runs). */
	rc = begin_write(reg, 3 * count + 2 * OP_PAGES, &txn);
	if (rc)
		return rc;
	if ((rc = mdb_cursor_open(txn, reg->dbi, &cur)))
		goto fail;
	while (!(rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST))) {
		gw_outbox_record_t o;
		MDB_val ov;
		void *data;

		if (n++ == ADOPT_SLICE) {
			a->left = 1;
			break;
		}
		memset(&o, 0, sizeof(o));
		{
			MDB_val av;

			if (!mdb_get(txn, reg->authz, &k, &av)) {
				if (av.mv_size < sizeof(o.authorizer)) {
					memcpy(o.authorizer, av.mv_data, av.mv_size);
					o.authorizer_len = av.mv_size;
				}
				if ((rc = mdb_del(txn, reg->authz, &k, NULL)))
					goto fail;
			}
		}
		if (!gw_registry_decode(v.mv_data, v.mv_size, &o.conn)) {
			o.code = 1006;
			snprintf(o.reason, sizeof(o.reason), "%s", GW_OUTBOX_REASON_RESTART);
			o.closed_at = a->now;
			if (random_request_id(o.request_id)) {
				rc = EIO;
				goto fail;
			}
			gw_outbox_record_encode(&o, &data, &ov.mv_size);
			ov.mv_data = data;
			rc = mdb_put(txn, reg->outbox, &k, &ov, 0);
			free(data);
			if (rc)
				goto fail;
			moved++;
		}
		/* A record that does not decode names no API: dropped. */
		if ((rc = mdb_cursor_del(cur, 0)))
			goto fail;
	}
	if (rc && rc != MDB_NOTFOUND)
		goto fail;
	mdb_cursor_close(cur);
	rc = mdb_txn_commit(txn);
	if (!rc)
		reg->adopted += moved;
	return lmdb_rc(rc);
fail:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return lmdb_rc(rc);
}

static int adopt_previous(gw_registry_t *reg)
{
	struct adopt_arg a = { 0, 1 };
	struct timespec ts;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	a.now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	while (a.left && !rc)
		rc = run_write(reg, adopt_slice, &a);
	return rc;
}

void gw_registry_previous(const gw_registry_t *reg, size_t *adopted, const char **problem)
{
	*adopted = reg->adopted;
	*problem = reg->problem[0] ? reg->problem : NULL;
}

struct move_arg {
	const char *id;
	const void *val;
	size_t len;
};

static int move_op(gw_registry_t *reg, void *arg)
{
	struct move_arg *a = arg;
	MDB_txn *txn;
	MDB_val k = { strlen(a->id), (void *)a->id }, v = { a->len, (void *)a->val };
	int rc;

	rc = begin_write(reg, 2 * OP_PAGES, &txn);
	if (rc)
		return rc;
	rc = mdb_del(txn, reg->dbi, &k, NULL);
	if (!rc || rc == MDB_NOTFOUND)
		rc = mdb_del(txn, reg->authz, &k, NULL);
	if ((rc && rc != MDB_NOTFOUND) || (rc = mdb_put(txn, reg->outbox, &k, &v, 0))) {
		mdb_txn_abort(txn);
		return lmdb_rc(rc);
	}
	return lmdb_rc(mdb_txn_commit(txn));
}

int gw_registry_outbox_move(gw_registry_t *reg, const char *id, const void *val, size_t len)
{
	struct move_arg a = { id, val, len };

	return run_write(reg, move_op, &a);
}

struct outbox_del_arg {
	const char *const *ids;
	size_t n;
};

static int outbox_del_op(gw_registry_t *reg, void *arg)
{
	struct outbox_del_arg *a = arg;
	MDB_txn *txn;
	int rc;

	rc = begin_write(reg, a->n + OP_PAGES, &txn);
	if (rc)
		return rc;
	for (size_t i = 0; i < a->n; i++) {
		MDB_val k = { strlen(a->ids[i]), (void *)a->ids[i] };

		rc = mdb_del(txn, reg->outbox, &k, NULL);
		if (rc && rc != MDB_NOTFOUND) {
			mdb_txn_abort(txn);
			return lmdb_rc(rc);
		}
	}
	return lmdb_rc(mdb_txn_commit(txn));
}

int gw_registry_outbox_delete(gw_registry_t *reg, const char *const *ids, size_t n)
{
	struct outbox_del_arg a = { ids, n };

	if (!n)
		return GW_REG_OK;
	return run_write(reg, outbox_del_op, &a);
}

int gw_registry_outbox_count(gw_registry_t *reg, size_t *count)
{
	return count_entries(reg, reg->outbox, count);
}

/* One entry copied out of the map. */
struct outbox_copy {
	char id[GW_CONN_ID_LEN + 1];
	size_t idlen, len;
	void *val;
};

static int take_outbox(const MDB_val *k, const MDB_val *v, size_t i, void *ctx)
{
	struct outbox_copy *out = (struct outbox_copy *)ctx + i;

	if (k->mv_size > GW_CONN_ID_LEN)
		return 0; /* not an ID: never ours */
	out->val = malloc(v->mv_size ? v->mv_size : 1);
	if (!out->val)
		return -1;
	memcpy(out->id, k->mv_data, k->mv_size);
	out->idlen = k->mv_size;
	out->len = v->mv_size;
	memcpy(out->val, v->mv_data, v->mv_size);
	return 1;
}

int gw_registry_outbox_foreach(gw_registry_t *reg,
			       void (*fn)(const char *id, size_t idlen, const void *val,
					  size_t len, void *user),
			       void *user)
{
	struct outbox_copy *batch = calloc(FOREACH_BATCH, sizeof(*batch));
	char last[KEY_MAX];
	size_t last_len = 0, n;
	int more = 1, rc = 0;

	if (!batch)
		return GW_REG_ERROR;
	/* fn runs outside any transaction and lock: it may write (delete
	 * what cannot be sent). */
	while (more) {
		pthread_rwlock_rdlock(&reg->lock);
		rc = walk_batch(reg, reg->outbox, last, &last_len, &n, &more, take_outbox, batch);
		pthread_rwlock_unlock(&reg->lock);
		if (rc) {
			/* A copy failed: free what this batch kept. */
			for (size_t i = 0; i < FOREACH_BATCH; i++)
				free(batch[i].val);
			break;
		}
		for (size_t i = 0; i < n; i++) {
			fn(batch[i].id, batch[i].idlen, batch[i].val, batch[i].len, user);
			free(batch[i].val);
			batch[i].val = NULL;
		}
	}
	free(batch);
	return rc;
}

struct authz_arg {
	const char *id;
	const char *json;
	size_t len;
};

static int authz_op(gw_registry_t *reg, void *arg)
{
	struct authz_arg *a = arg;
	MDB_txn *txn;
	MDB_val k = { strlen(a->id), (void *)a->id }, v = { a->len, (void *)a->json }, rv;
	int rc;

	rc = begin_write(reg, 2 * OP_PAGES, &txn);
	if (rc)
		return rc;
	/* Only beside a record: a connection closed meanwhile has none. */
	rc = mdb_get(txn, reg->dbi, &k, &rv);
	if (!rc)
		rc = mdb_put(txn, reg->authz, &k, &v, 0);
	if (rc) {
		mdb_txn_abort(txn);
		return lmdb_rc(rc);
	}
	return lmdb_rc(mdb_txn_commit(txn));
}

int gw_registry_set_authorizer(gw_registry_t *reg, const char *id, const char *json,
			       size_t len)
{
	struct authz_arg a = { id, json, len };

	if (!len || len >= sizeof(((gw_outbox_record_t *)0)->authorizer))
		return GW_REG_OK; /* too large for a $disconnect event's copy */
	return run_write(reg, authz_op, &a);
}
