/* LMDB + msgpack connection registry. The environment is opened with
 * MDB_NOSYNC: a record describes a live socket, which cannot survive a
 * crash anyway, so paying an fsync per connect would buy nothing; and with
 * MDB_WRITEMAP, so that a commit writes into the map instead of issuing
 * pwrite calls for its pages (build/bench_registry: insert 8.7 -> 2.6 us,
 * delete 11.3 -> 1.8 us on the development machine). */
#include "registry.h"
#include "buf.h"

#include <errno.h>
#include <lmdb.h>
#include <msgpack.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct gw_registry {
	MDB_env *env;
	MDB_dbi dbi;
};

const char *gw_registry_strerror(int rc)
{
	switch (rc) {
	case GW_REG_OK: return "ok";
	case GW_REG_NOTFOUND: return "not found";
	case GW_REG_EXISTS: return "already exists";
	default: return "LMDB error";
	}
}

int gw_registry_open(const char *dir, gw_registry_t **out, char *err, size_t errlen)
{
	gw_registry_t *reg = calloc(1, sizeof(*reg));
	MDB_txn *txn = NULL;
	int rc;

	*out = NULL;
	if (!reg)
		abort();
	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create data folder: %s", dir, strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&reg->env)) ||
	    /* Sparse file: only pages in use take disk or memory. */
	    (rc = mdb_env_set_mapsize(reg->env, (size_t)4 << 30)) ||
	    (rc = mdb_env_set_maxreaders(reg->env, 512)) ||
	    (rc = mdb_env_open(reg->env, dir, MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS | MDB_WRITEMAP, 0600))) {
		snprintf(err, errlen, "%s: cannot open LMDB registry: %s", dir, mdb_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_txn_begin(reg->env, NULL, 0, &txn)) ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &reg->dbi)) ||
	    (rc = mdb_drop(txn, reg->dbi, 0)) || (rc = mdb_txn_commit(txn))) {
		txn = NULL;
		snprintf(err, errlen, "%s: cannot reset LMDB registry: %s", dir, mdb_strerror(rc));
		goto fail;
	}
	*out = reg;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (reg->env)
		mdb_env_close(reg->env);
	free(reg);
	return GW_REG_ERROR;
}

int gw_registry_open_readonly(const char *dir, gw_registry_t **out, char *err,
			      size_t errlen)
{
	gw_registry_t *reg = calloc(1, sizeof(*reg));
	MDB_txn *txn = NULL;
	int rc;

	*out = NULL;
	if (!reg)
		abort();
	if ((rc = mdb_env_create(&reg->env)) ||
	    (rc = mdb_env_set_maxreaders(reg->env, 512)) ||
	    (rc = mdb_env_open(reg->env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) ||
	    (rc = mdb_txn_begin(reg->env, NULL, MDB_RDONLY, &txn)) ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &reg->dbi))) {
		snprintf(err, errlen, "%s: cannot open the LMDB registry: %s", dir, mdb_strerror(rc));
		if (txn)
			mdb_txn_abort(txn);
		if (reg->env)
			mdb_env_close(reg->env);
		free(reg);
		return GW_REG_ERROR;
	}
	mdb_txn_abort(txn);
	*out = reg;
	return 0;
}

void gw_registry_close(gw_registry_t *reg)
{
	if (!reg)
		return;
	mdb_env_close(reg->env);
	free(reg);
}

int gw_registry_new_id(char id[GW_CONN_ID_LEN + 1])
{
	unsigned char raw[12];

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

int gw_registry_encode(const gw_conn_record_t *rec, void **data, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 10);
	pack_kv_str(&pk, "id", rec->id);
	pack_kv_str(&pk, "api", rec->api);
	pack_kv_str(&pk, "stage", rec->stage);
	pack_kv_str(&pk, "sourceIp", rec->source_ip);
	pack_kv_str(&pk, "userAgent", rec->user_agent);
	pack_kv_u64(&pk, "connectedAt", rec->connected_at);
	pack_kv_u64(&pk, "lastActiveAt", rec->last_active_at);
	pack_kv_u64(&pk, "worker", rec->worker);
	pack_kv_u64(&pk, "slot", rec->slot);
	pack_kv_u64(&pk, "state", rec->state);
	*data = sb.data;
	*len = sb.size;
	return 0;
}

static void copy_str(char *dst, size_t cap, const msgpack_object *o)
{
	size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;

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

int gw_registry_decode(const void *data, size_t len, gw_conn_record_t *rec)
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
		}
	}
	rc = rec->id[0] ? GW_REG_OK : GW_REG_ERROR;
out:
	msgpack_unpacked_destroy(&up);
	return rc;
}

static int put(gw_registry_t *reg, const gw_conn_record_t *rec, unsigned flags)
{
	MDB_txn *txn;
	MDB_val k, v;
	void *data;
	size_t len;
	int rc;

	gw_registry_encode(rec, &data, &len);
	k.mv_data = (void *)rec->id;
	k.mv_size = strlen(rec->id);
	v.mv_data = data;
	v.mv_size = len;
	rc = mdb_txn_begin(reg->env, NULL, 0, &txn);
	if (rc)
		goto out;
	rc = mdb_put(txn, reg->dbi, &k, &v, flags);
	if (rc) {
		mdb_txn_abort(txn);
		goto out;
	}
	rc = mdb_txn_commit(txn);
out:
	free(data);
	if (rc == MDB_KEYEXIST)
		return GW_REG_EXISTS;
	return rc ? GW_REG_ERROR : GW_REG_OK;
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
	if (mdb_txn_begin(reg->env, NULL, MDB_RDONLY, &txn))
		return GW_REG_ERROR;
	rc = mdb_get(txn, reg->dbi, &k, &v);
	/* Decode (copy out) before the transaction ends: v points into the map. */
	if (!rc)
		rc = gw_registry_decode(v.mv_data, v.mv_size, rec);
	else
		rc = rc == MDB_NOTFOUND ? GW_REG_NOTFOUND : GW_REG_ERROR;
	mdb_txn_abort(txn);
	return rc;
}

int gw_registry_delete(gw_registry_t *reg, const char *id)
{
	MDB_txn *txn;
	MDB_val k = { strlen(id), (void *)id };
	int rc;

	if (mdb_txn_begin(reg->env, NULL, 0, &txn))
		return GW_REG_ERROR;
	rc = mdb_del(txn, reg->dbi, &k, NULL);
	if (rc) {
		mdb_txn_abort(txn);
		return rc == MDB_NOTFOUND ? GW_REG_NOTFOUND : GW_REG_ERROR;
	}
	return mdb_txn_commit(txn) ? GW_REG_ERROR : GW_REG_OK;
}

int gw_registry_touch(gw_registry_t *reg, const char *const *ids,
		      const uint64_t *times, size_t n)
{
	MDB_txn *txn;
	int rc;

	if (!n)
		return 0;
	if (mdb_txn_begin(reg->env, NULL, 0, &txn))
		return GW_REG_ERROR;
	for (size_t i = 0; i < n; i++) {
		MDB_val k = { strlen(ids[i]), (void *)ids[i] }, v;
		gw_conn_record_t rec;
		void *data;
		size_t len;

		if (mdb_get(txn, reg->dbi, &k, &v) ||
		    gw_registry_decode(v.mv_data, v.mv_size, &rec))
			continue; /* closed meanwhile */
		rec.last_active_at = times[i];
		gw_registry_encode(&rec, &data, &len);
		v.mv_data = data;
		v.mv_size = len;
		rc = mdb_put(txn, reg->dbi, &k, &v, 0);
		free(data);
		if (rc) {
			mdb_txn_abort(txn);
			return GW_REG_ERROR;
		}
	}
	return mdb_txn_commit(txn) ? GW_REG_ERROR : GW_REG_OK;
}

int gw_registry_count(gw_registry_t *reg, size_t *count)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	if (mdb_txn_begin(reg->env, NULL, MDB_RDONLY, &txn))
		return GW_REG_ERROR;
	rc = mdb_stat(txn, reg->dbi, &st);
	mdb_txn_abort(txn);
	if (rc)
		return GW_REG_ERROR;
	*count = st.ms_entries;
	return 0;
}

int gw_registry_foreach(gw_registry_t *reg,
			void (*fn)(const gw_conn_record_t *rec, void *user), void *user)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if (mdb_txn_begin(reg->env, NULL, MDB_RDONLY, &txn))
		return GW_REG_ERROR;
	if (mdb_cursor_open(txn, reg->dbi, &cur)) {
		mdb_txn_abort(txn);
		return GW_REG_ERROR;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		gw_conn_record_t rec;
		if (!gw_registry_decode(v.mv_data, v.mv_size, &rec))
			fn(&rec, user);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return 0;
}
