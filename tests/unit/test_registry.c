/* registry.c: LMDB-backed connection registry and its msgpack records. */
#define _GNU_SOURCE /* unshare */
#include "unit.h"

#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <lmdb.h>
#include <msgpack.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static gw_conn_record_t make_record(const char *id, uint32_t slot)
{
	gw_conn_record_t r;

	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.api, sizeof(r.api), "chat-api");
	snprintf(r.stage, sizeof(r.stage), "prod");
	snprintf(r.source_ip, sizeof(r.source_ip), "2001:db8::%u", slot);
	snprintf(r.user_agent, sizeof(r.user_agent), "agent/%u", slot);
	r.connected_at = 1731324900000ULL + slot;
	r.last_active_at = 1731324900000ULL + slot;
	r.worker = slot % 4;
	r.slot = slot;
	r.state = GW_CONN_OPEN;
	return r;
}

static int records_equal(const gw_conn_record_t *a, const gw_conn_record_t *b)
{
	return !strcmp(a->id, b->id) && !strcmp(a->api, b->api) &&
	       !strcmp(a->stage, b->stage) && !strcmp(a->source_ip, b->source_ip) &&
	       !strcmp(a->user_agent, b->user_agent) && a->connected_at == b->connected_at &&
	       a->last_active_at == b->last_active_at && a->worker == b->worker &&
	       a->slot == b->slot && a->state == b->state;
}

static gw_registry_t *open_reg(void)
{
	gw_registry_t *reg = NULL;
	char err[256] = "";
	int rc = gw_registry_open(dir, &reg, err, sizeof(err));

	CHECK_MSG(rc == 0 && reg, "gw_registry_open(%s): rc=%d: %s", dir, rc, err);
	return rc == 0 ? reg : NULL;
}

static void test_insert_get_delete(void)
{
	gw_registry_t *reg = open_reg();
	gw_conn_record_t a = make_record("AAAAAAAAAAAAAAAA", 1), b = make_record("BBBBBBBBBBBBBBBB", 2);
	gw_conn_record_t got;
	size_t n = 99;

	if (!reg)
		return;
	CHECK_INT_EQ(gw_registry_count(reg, &n), 0);
	CHECK_INT_EQ(n, 0);
	CHECK_INT_EQ(gw_registry_insert(reg, &a), GW_REG_OK);
	CHECK_INT_EQ(gw_registry_insert(reg, &b), GW_REG_OK);
	CHECK_INT_EQ(gw_registry_count(reg, &n), 0);
	CHECK_INT_EQ(n, 2);

	memset(&got, 0x55, sizeof(got));
	CHECK_INT_EQ(gw_registry_get(reg, a.id, strlen(a.id), &got), GW_REG_OK);
	CHECK(records_equal(&got, &a));
	CHECK_INT_EQ(gw_registry_get(reg, b.id, strlen(b.id), &got), GW_REG_OK);
	CHECK(records_equal(&got, &b));
	CHECK_STR_EQ(got.source_ip, "2001:db8::2");

	/* An existing ID is never overwritten by insert. */
	{
		gw_conn_record_t dup = make_record(a.id, 77);
		CHECK_INT_EQ(gw_registry_insert(reg, &dup), GW_REG_EXISTS);
		CHECK_INT_EQ(gw_registry_get(reg, a.id, strlen(a.id), &got), GW_REG_OK);
		CHECK_INT_EQ(got.slot, 1);
	}
	/* update does overwrite. */
	a.state = GW_CONN_PENDING;
	a.slot = 9;
	CHECK_INT_EQ(gw_registry_update(reg, &a), GW_REG_OK);
	CHECK_INT_EQ(gw_registry_get(reg, a.id, strlen(a.id), &got), GW_REG_OK);
	CHECK(records_equal(&got, &a));

	/* Unknown IDs, including prefixes, extensions and silly lengths. */
	CHECK_INT_EQ(gw_registry_get(reg, "CCCCCCCCCCCCCCCC", 16, &got), GW_REG_NOTFOUND);
	CHECK_INT_EQ(gw_registry_get(reg, a.id, 15, &got), GW_REG_NOTFOUND);
	CHECK_INT_EQ(gw_registry_get(reg, "AAAAAAAAAAAAAAAAA", 17, &got), GW_REG_NOTFOUND);
	CHECK_INT_EQ(gw_registry_get(reg, "", 0, &got), GW_REG_NOTFOUND);
	{
		char big[1024];
		memset(big, 'A', sizeof(big));
		CHECK_INT_EQ(gw_registry_get(reg, big, sizeof(big), &got), GW_REG_NOTFOUND);
	}

	CHECK_INT_EQ(gw_registry_delete(reg, a.id), GW_REG_OK);
	CHECK_INT_EQ(gw_registry_get(reg, a.id, strlen(a.id), &got), GW_REG_NOTFOUND);
	CHECK_INT_EQ(gw_registry_delete(reg, a.id), GW_REG_NOTFOUND);
	CHECK_INT_EQ(gw_registry_count(reg, &n), 0);
	CHECK_INT_EQ(n, 1);
	CHECK_INT_EQ(gw_registry_get(reg, b.id, strlen(b.id), &got), GW_REG_OK);
	CHECK_INT_EQ(gw_registry_delete(reg, b.id), GW_REG_OK);
	CHECK_INT_EQ(gw_registry_count(reg, &n), 0);
	CHECK_INT_EQ(n, 0);
	gw_registry_close(reg);
}

static void test_touch(void)
{
	gw_registry_t *reg = open_reg();
	gw_conn_record_t r[3], got;
	const char *ids[4];
	uint64_t times[4];
	size_t n = 0;

	if (!reg)
		return;
	r[0] = make_record("touch-0000000000", 10);
	r[1] = make_record("touch-1111111111", 11);
	r[2] = make_record("touch-2222222222", 12);
	for (int i = 0; i < 3; i++)
		CHECK_INT_EQ(gw_registry_insert(reg, &r[i]), GW_REG_OK);

	/* Two known IDs and one unknown one in the middle, in one call. */
	ids[0] = r[0].id;
	times[0] = 2000000000001ULL;
	ids[1] = "nobody-000000000";
	times[1] = 2000000000002ULL;
	ids[2] = r[2].id;
	times[2] = 2000000000003ULL;
	CHECK_INT_EQ(gw_registry_touch(reg, ids, times, 3), GW_REG_OK);

	CHECK_INT_EQ(gw_registry_get(reg, r[0].id, 16, &got), GW_REG_OK);
	CHECK_INT_EQ(got.last_active_at, 2000000000001ULL);
	r[0].last_active_at = 2000000000001ULL;
	CHECK(records_equal(&got, &r[0])); /* nothing else changed */
	CHECK_INT_EQ(gw_registry_get(reg, r[1].id, 16, &got), GW_REG_OK);
	CHECK_INT_EQ(got.last_active_at, r[1].last_active_at); /* untouched */
	CHECK_INT_EQ(gw_registry_get(reg, r[2].id, 16, &got), GW_REG_OK);
	CHECK_INT_EQ(got.last_active_at, 2000000000003ULL);
	/* The unknown ID was skipped, not created. */
	CHECK_INT_EQ(gw_registry_get(reg, "nobody-000000000", 16, &got), GW_REG_NOTFOUND);
	CHECK_INT_EQ(gw_registry_count(reg, &n), 0);
	CHECK_INT_EQ(n, 3);

	/* Zero IDs is a no-op success; the same ID twice keeps the last time. */
	CHECK_INT_EQ(gw_registry_touch(reg, ids, times, 0), GW_REG_OK);
	ids[0] = r[1].id;
	times[0] = 5;
	ids[1] = r[1].id;
	times[1] = 6;
	CHECK_INT_EQ(gw_registry_touch(reg, ids, times, 2), GW_REG_OK);
	CHECK_INT_EQ(gw_registry_get(reg, r[1].id, 16, &got), GW_REG_OK);
	CHECK_INT_EQ(got.last_active_at, 6);
	/* Only unknown IDs. */
	ids[0] = "ghost-0000000000";
	CHECK_INT_EQ(gw_registry_touch(reg, ids, times, 1), GW_REG_OK);
	CHECK_INT_EQ(gw_registry_count(reg, &n), 0);
	CHECK_INT_EQ(n, 3);
	gw_registry_close(reg);
}

struct seen {
	int count;
	int mask;
	int mismatches;
	gw_conn_record_t expect[5];
};

static void on_record(const gw_conn_record_t *rec, void *user)
{
	struct seen *s = user;

	s->count++;
	for (int i = 0; i < 5; i++)
		if (!strcmp(rec->id, s->expect[i].id)) {
			s->mask |= 1 << i;
			if (!records_equal(rec, &s->expect[i]))
				s->mismatches++;
			return;
		}
	s->mismatches++;
}

static void test_foreach_and_reopen(void)
{
	gw_registry_t *reg = open_reg();
	struct seen s;
	size_t n = 0;

	if (!reg)
		return;
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < 5; i++) {
		char id[GW_CONN_ID_LEN + 1];
		CHECK_INT_EQ(gw_registry_new_id(id), 0);
		s.expect[i] = make_record(id, (uint32_t)(100 + i));
		CHECK_INT_EQ(gw_registry_insert(reg, &s.expect[i]), GW_REG_OK);
	}
	/* Every record, once. (Records left by earlier tests were deleted.) */
	CHECK_INT_EQ(gw_registry_foreach(reg, on_record, &s), 0);
	CHECK_INT_EQ(s.count, 5);
	CHECK_INT_EQ(s.mask, 0x1f);
	CHECK_INT_EQ(s.mismatches, 0);
	gw_registry_close(reg);

	/* A new open drops what the previous run left. */
	reg = open_reg();
	if (!reg)
		return;
	CHECK_INT_EQ(gw_registry_count(reg, &n), 0);
	CHECK_INT_EQ(n, 0);
	memset(&s, 0, sizeof(s));
	CHECK_INT_EQ(gw_registry_foreach(reg, on_record, &s), 0);
	CHECK_INT_EQ(s.count, 0);
	/* And the registry is usable afterwards, the old IDs free again. */
	{
		gw_conn_record_t r = make_record("again-0000000000", 1), got;
		CHECK_INT_EQ(gw_registry_insert(reg, &r), GW_REG_OK);
		CHECK_INT_EQ(gw_registry_get(reg, r.id, 16, &got), GW_REG_OK);
		CHECK_INT_EQ(gw_registry_delete(reg, r.id), GW_REG_OK);
	}
	gw_registry_close(reg);
	gw_registry_close(NULL); /* harmless */
}

/* Issue 11 item 7: the listing is copied out in batches, each in its own
 * transaction; every record still comes once, in key order. */
struct ordered {
	size_t count;
	char last[GW_CONN_ID_LEN + 1];
	int out_of_order;
};

static void on_ordered(const gw_conn_record_t *rec, void *user)
{
	struct ordered *o = user;

	if (o->count && strcmp(o->last, rec->id) >= 0)
		o->out_of_order++;
	snprintf(o->last, sizeof(o->last), "%s", rec->id);
	o->count++;
}

static void test_foreach_batches(void)
{
	gw_registry_t *reg = open_reg();
	struct ordered o;

	if (!reg)
		return;
	for (uint32_t i = 0; i < 200; i++) {
		char id[GW_CONN_ID_LEN + 1];

		snprintf(id, sizeof(id), "batch-%06u-xxxxxxxxxxx", i);
		gw_conn_record_t r = make_record(id, i);
		CHECK_INT_EQ(gw_registry_insert(reg, &r), GW_REG_OK);
	}
	memset(&o, 0, sizeof(o));
	CHECK_INT_EQ(gw_registry_foreach(reg, on_ordered, &o), 0);
	CHECK_INT_EQ(o.count, 200);
	CHECK_INT_EQ(o.out_of_order, 0);
	gw_registry_close(reg);
}

/* Pages used by the registry in dir (LMDB's high-water mark), read in a
 * child: a second environment on the same files in this process would
 * share its fcntl locks, take itself for the first user and reset the
 * reader table. */
static uint64_t pages_used(void)
{
	uint64_t n = 0;
	int fds[2];
	pid_t pid;

	if (pipe(fds))
		return 0;
	pid = fork();
	if (pid == 0) {
		MDB_env *env;
		MDB_envinfo info;

		if (!mdb_env_create(&env) &&
		    !mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600) &&
		    !mdb_env_info(env, &info))
			n = (uint64_t)info.me_last_pgno + 1;
		_exit(write(fds[1], &n, sizeof(n)) == sizeof(n) ? 0 : 1);
	}
	close(fds[1]);
	if (pid < 0 || read(fds[0], &n, sizeof(n)) != sizeof(n))
		n = 0;
	close(fds[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return n;
}

/* A child that opens the registry with LMDB, begins a read transaction and
 * dies inside it, like `wsgate --connections | head -1` killed by SIGPIPE
 * before the fix. */
static void kill_reader_in_txn(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		MDB_env *env;
		MDB_txn *txn;

		if (mdb_env_create(&env) || mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600) ||
		    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	if (pid > 0) {
		int st;

		waitpid(pid, &st, 0);
		CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "reader child status %d", st);
	}
}

static void churn(gw_registry_t *reg, int n)
{
	for (int i = 0; i < n; i++) {
		char id[GW_CONN_ID_LEN + 1];
		gw_conn_record_t r;

		CHECK_INT_EQ(gw_registry_new_id(id), 0);
		r = make_record(id, (uint32_t)i);
		CHECK_INT_EQ(gw_registry_insert(reg, &r), GW_REG_OK);
		CHECK_INT_EQ(gw_registry_delete(reg, id), GW_REG_OK);
	}
}

/* Issue 11 item 7: a dead reader's slot is cleared, by a direct check and
 * before the file grows, so freed pages are reused under churn. */
static void test_dead_reader(void)
{
	gw_registry_t *reg = open_reg();
	uint64_t before, after;

	if (!reg)
		return;
	churn(reg, 50); /* past the first growth step's bookkeeping */
	kill_reader_in_txn();
	CHECK_INT_EQ(gw_registry_check_readers(reg), 1);
	CHECK_INT_EQ(gw_registry_check_readers(reg), 0);

	/* Without a direct check: the growth of the file finds it. */
	kill_reader_in_txn();
	before = pages_used();
	churn(reg, 3000);
	after = pages_used();
	CHECK(before > 0);
	CHECK_MSG(after - before < 512, "%" PRIu64 " pages used after 3000 connections "
		  "with a dead reader (%" PRIu64 " before)", after, before);
	CHECK_INT_EQ(gw_registry_check_readers(reg), 0);
	gw_registry_close(reg);
}

/* Inserts records with long fields until the registry refuses one; returns
 * how many went in and leaves the refusal in *rc. */
static int fill_map(gw_registry_t *reg, int first, int *rc)
{
	int n = 0;

	for (;; n++) {
		char id[GW_CONN_ID_LEN + 1];
		gw_conn_record_t r;

		snprintf(id, sizeof(id), "full-%08u-xxxxxxxxxx", (unsigned)(first + n) % 100000000u);
		r = make_record(id, (uint32_t)n);
		memset(r.user_agent, 'u', sizeof(r.user_agent) - 1);
		*rc = gw_registry_insert(reg, &r);
		if (*rc != GW_REG_OK || n > 100000)
			return n;
	}
}

/* Issue 11 item 7: a full map grows (connects up to the largest size,
 * closes beyond), says so once it cannot (not "LMDB error"), and is never
 * full for good: closes still go through, free pages for new connections,
 * and pages pinned by a reader that died inside a transaction come back
 * once its slot is cleared. */
static void test_map_full(void)
{
	gw_registry_t *reg;
	int n, rc, again;

	gw_registry_set_map_bytes(128 << 10, 4 << 20);
	reg = open_reg();
	gw_registry_set_map_bytes(0, 0);
	if (!reg)
		return;
	n = fill_map(reg, 0, &rc);
	CHECK_INT_EQ(rc, GW_REG_MAP_FULL);
	CHECK_CONTAINS(gw_registry_strerror(rc), "map is full");
	CHECK_MSG(pages_used() > 32, "the map did not grow: %" PRIu64 " pages", pages_used());
	/* Connects stop at a quarter of the largest map: 4 pages a record. */
	CHECK_INT_EQ(n, (4 << 20) / 4 / 4096);
	/* Every close goes through on a full map. */
	for (int i = 0; i < n; i++) {
		char id[GW_CONN_ID_LEN + 1];

		snprintf(id, sizeof(id), "full-%08u-xxxxxxxxxx", (unsigned)(i) % 100000000u);
		rc = gw_registry_delete(reg, id);
		CHECK_MSG(rc == GW_REG_OK, "close %d of %d: %s", i, n, gw_registry_strerror(rc));
		if (rc != GW_REG_OK)
			break;
	}
	again = fill_map(reg, n, &rc);
	CHECK_MSG(again >= n * 3 / 4, "%d records after %d closes", again, n);

	/* A reader dies; closes free pages it pins; new records still fit. */
	kill_reader_in_txn();
	for (int i = n; i < n + again / 2; i++) {
		char id[GW_CONN_ID_LEN + 1];

		snprintf(id, sizeof(id), "full-%08u-xxxxxxxxxx", (unsigned)(i) % 100000000u);
		CHECK_INT_EQ(gw_registry_delete(reg, id), GW_REG_OK);
	}
	rc = fill_map(reg, 2 * n + again, &rc);
	CHECK_MSG(rc >= again / 4, "%d records after %d closes with a dead reader", rc, again / 2);
	gw_registry_close(reg);
}

static void test_open_failure(void)
{
	static int dummy;
	gw_registry_t *reg = (gw_registry_t *)(void *)&dummy;
	char err[256] = "";
	char path[128];

	/* A data folder under a regular file cannot be created. */
	snprintf(path, sizeof(path), "%s/afile", dir);
	{
		FILE *f = fopen(path, "w");
		CHECK(f != NULL);
		if (f)
			fclose(f);
	}
	snprintf(path, sizeof(path), "%s/afile/sub", dir);
	CHECK_INT_EQ(gw_registry_open(path, &reg, err, sizeof(err)), GW_REG_ERROR);
	CHECK(reg == NULL);
	CHECK_CONTAINS(err, path);
	snprintf(path, sizeof(path), "%s/afile", dir);
	unlink(path);
}


/* Item 23: a second gateway on the same folder is refused before it
 * touches anything, and says who holds the folder. */
static void test_lock_refuses_second_open(void)
{
	gw_registry_t *a = open_reg(), *b = (gw_registry_t *)(void *)&b, *ro = NULL;
	gw_conn_record_t r = make_record("locked-000000000", 3), got;
	char err[512] = "", pid[32], path[128];

	if (!a)
		return;
	CHECK_INT_EQ(gw_registry_insert(a, &r), GW_REG_OK);
	CHECK_INT_EQ(gw_registry_open(dir, &b, err, sizeof(err)), GW_REG_ERROR);
	CHECK(b == NULL);
	CHECK_CONTAINS(err, dir);
	CHECK_CONTAINS(err, "in use by another wsgate");
	snprintf(pid, sizeof(pid), "(PID %ld)", (long)getpid());
	CHECK_CONTAINS(err, pid);
	/* The first one's record survived the attempt. */
	CHECK_INT_EQ(gw_registry_get(a, r.id, 16, &got), GW_REG_OK);
	/* Tools read without the lock. */
	CHECK_INT_EQ(gw_registry_open_readonly(dir, &ro, err, sizeof(err)), 0);
	if (ro) {
		CHECK_INT_EQ(gw_registry_get(ro, r.id, 16, &got), GW_REG_OK);
		gw_registry_close(ro);
	}
	CHECK_INT_EQ(gw_registry_delete(a, r.id), GW_REG_OK);
	gw_registry_close(a);
	/* Closing releases it. */
	a = open_reg();
	gw_registry_close(a);

	/* --data naming a regular file. */
	snprintf(path, sizeof(path), "%s/plainfile", dir);
	{
		FILE *f = fopen(path, "w");
		CHECK(f != NULL);
		if (f)
			fclose(f);
	}
	b = NULL;
	CHECK_INT_EQ(gw_registry_open(path, &b, err, sizeof(err)), GW_REG_ERROR);
	CHECK_CONTAINS(err, path);
	CHECK_CONTAINS(err, "expected a folder");
	unlink(path);
}

/* A data folder other users can write is refused (they could plant
 * symbolic links the gateway would truncate); links planted in a private
 * folder are never followed. */
static void test_symlinks_and_modes(void)
{
	char sub[128], victim[128], link[160], err[512] = "";
	gw_registry_t *reg = NULL;
	struct stat st;
	FILE *f;

	snprintf(sub, sizeof(sub), "%s/shared", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	CHECK_INT_EQ(mkdir(sub, 0700), 0);
	CHECK_INT_EQ(chmod(sub, 01777), 0);
	CHECK_INT_EQ(gw_registry_open(sub, &reg, err, sizeof(err)), GW_REG_ERROR);
	CHECK_CONTAINS(err, "writable by every user (mode 1777)");
	CHECK_INT_EQ(chmod(sub, 0755), 0);

	f = fopen(victim, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("precious", f);
		fclose(f);
	}
	/* wsgate.lock as a link: refused, the target left alone. */
	snprintf(link, sizeof(link), "%s/wsgate.lock", sub);
	CHECK_INT_EQ(symlink(victim, link), 0);
	CHECK_INT_EQ(gw_registry_open(sub, &reg, err, sizeof(err)), GW_REG_ERROR);
	CHECK_CONTAINS(err, "wsgate.lock");
	CHECK(stat(victim, &st) == 0 && st.st_size == 8);
	unlink(link);
	/* data.mdb and lock.mdb as links: replaced by files, targets intact. */
	snprintf(link, sizeof(link), "%s/data.mdb", sub);
	CHECK_INT_EQ(symlink(victim, link), 0);
	snprintf(link, sizeof(link), "%s/lock.mdb", sub);
	CHECK_INT_EQ(symlink(victim, link), 0);
	CHECK_INT_EQ(gw_registry_open(sub, &reg, err, sizeof(err)), 0);
	if (reg) {
		gw_conn_record_t r = make_record("linked-000000000", 1);
		CHECK_INT_EQ(gw_registry_insert(reg, &r), GW_REG_OK);
		gw_registry_close(reg);
	}
	CHECK(stat(victim, &st) == 0 && st.st_size == 8);
	CHECK(lstat(link, &st) == 0 && S_ISREG(st.st_mode));
	unlink(victim);
}

/* Item 13: on a full filesystem the registry refuses new records instead
 * of faulting (MDB_WRITEMAP on a sparse file), keeps closing and touching
 * the ones it has, and takes new ones again once the disk has room. Runs
 * in a child with its own mount namespace and a 2 MB tmpfs. */
static void full_disk(void *arg)
{
	enum { MAX = 20000 };
	char mnt[128], err[256] = "", (*ids)[GW_CONN_ID_LEN + 1];
	const char *tids[64];
	uint64_t times[64];
	gw_registry_t *reg = NULL;
	gw_conn_record_t r, got;
	int n = 0, rc = GW_REG_OK;

	(void)arg;
	snprintf(mnt, sizeof(mnt), "%s/full", dir);
	mkdir(mnt, 0700);
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", mnt, "tmpfs", 0, "size=2m,mode=0700")) {
		fprintf(stderr, "    skipped: cannot mount a tmpfs here (%s); needs CAP_SYS_ADMIN\n",
			strerror(errno));
		return;
	}
	ids = calloc(MAX, sizeof(*ids));
	CHECK(ids != NULL);
	CHECK_INT_EQ(gw_registry_open(mnt, &reg, err, sizeof(err)), 0);
	if (!reg || !ids)
		return;
	r = make_record("x", 0);
	memset(r.user_agent, 'u', sizeof(r.user_agent) - 1);
	while (n < MAX) {
		CHECK_INT_EQ(gw_registry_new_id(ids[n]), 0);
		memcpy(r.id, ids[n], sizeof(r.id));
		rc = gw_registry_insert(reg, &r);
		if (rc != GW_REG_OK)
			break;
		n++;
	}
	CHECK_INT_EQ(rc, GW_REG_FULL);
	CHECK_MSG(n > 100, "only %d records fit in 2 MB", n);
	CHECK_STR_EQ(gw_registry_strerror(GW_REG_FULL), "no space left in the data folder");
	/* What is there still works: read, touch, update, delete. */
	CHECK_INT_EQ(gw_registry_get(reg, ids[0], GW_CONN_ID_LEN, &got), GW_REG_OK);
	for (int i = 0; i < 64; i++) {
		tids[i] = ids[i * (n / 64)];
		times[i] = 4000000000000ULL + (uint64_t)i;
	}
	CHECK_INT_EQ(gw_registry_touch(reg, tids, times, 64), GW_REG_OK);
	CHECK_INT_EQ(gw_registry_get(reg, tids[63], GW_CONN_ID_LEN, &got), GW_REG_OK);
	CHECK_INT_EQ(got.last_active_at, 4000000000063ULL);
	memcpy(r.id, ids[1], sizeof(r.id));
	r.state = GW_CONN_PENDING;
	CHECK_INT_EQ(gw_registry_update(reg, &r), GW_REG_OK);
	for (int i = 0; i < n / 2; i++)
		CHECK_INT_EQ(gw_registry_delete(reg, ids[i]), GW_REG_OK);
	CHECK_INT_EQ(gw_registry_new_id(r.id), 0);
	CHECK_INT_EQ(gw_registry_insert(reg, &r), GW_REG_FULL);
	/* The disk grows: connects come back. */
	CHECK_INT_EQ(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=8m,mode=0700"), 0);
	CHECK_INT_EQ(gw_registry_insert(reg, &r), GW_REG_OK);
	gw_registry_close(reg);
	free(ids);
	umount(mnt);
}

/* Encodes a map by hand, to feed decode what encode would never write. */
static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void test_encode_decode(void)
{
	gw_conn_record_t r = make_record("EnCoDe_-12345678", 7), got;
	void *data = NULL;
	size_t len = 0;

	/* Round trip with maximal strings and extreme numbers. */
	memset(r.user_agent, 'u', sizeof(r.user_agent) - 1);
	r.user_agent[sizeof(r.user_agent) - 1] = '\0';
	memset(r.stage, 's', sizeof(r.stage) - 1);
	r.stage[sizeof(r.stage) - 1] = '\0';
	r.connected_at = UINT64_MAX;
	r.last_active_at = 0;
	r.worker = UINT32_MAX;
	r.slot = 0;
	r.state = GW_CONN_PENDING;
	CHECK_INT_EQ(gw_registry_encode(&r, &data, &len), 0);
	CHECK(data && len > 0);
	memset(&got, 0x55, sizeof(got));
	CHECK_INT_EQ(gw_registry_decode(data, len, &got), GW_REG_OK);
	CHECK(records_equal(&got, &r));
	CHECK_INT_EQ(strlen(got.user_agent), sizeof(got.user_agent) - 1);
	free(data);

	/* Empty strings survive as empty strings. */
	r = make_record("e", 0);
	r.api[0] = r.stage[0] = r.source_ip[0] = r.user_agent[0] = '\0';
	CHECK_INT_EQ(gw_registry_encode(&r, &data, &len), 0);
	memset(&got, 0x55, sizeof(got));
	CHECK_INT_EQ(gw_registry_decode(data, len, &got), GW_REG_OK);
	CHECK(records_equal(&got, &r));
	CHECK_STR_EQ(got.api, "");
	CHECK_STR_EQ(got.user_agent, "");

	/* Truncated encodings fail cleanly, at every length. */
	for (size_t cut = 0; cut < len; cut++)
		CHECK_MSG(gw_registry_decode(data, cut, &got) == GW_REG_ERROR,
			  "decode of the first %zu of %zu bytes succeeded", cut, len);
	free(data);
}

static void test_decode_long_strings_truncated(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char ua[2000], id[40];
	gw_conn_record_t got;

	memset(ua, 'x', sizeof(ua));
	memset(id, 'i', sizeof(id));
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5);
	pack_str(&pk, "id", 2);
	pack_str(&pk, id, sizeof(id));
	pack_str(&pk, "userAgent", 9);
	pack_str(&pk, ua, sizeof(ua));
	pack_str(&pk, "api", 3);
	pack_str(&pk, ua, 500);
	pack_str(&pk, "slot", 4);
	msgpack_pack_uint64(&pk, 42);
	pack_str(&pk, "someFutureKey", 13); /* unknown keys are ignored */
	pack_str(&pk, "v", 1);
	memset(&got, 0x55, sizeof(got));
	CHECK_INT_EQ(gw_registry_decode(sb.data, sb.size, &got), GW_REG_OK);
	CHECK_INT_EQ(strlen(got.user_agent), sizeof(got.user_agent) - 1);
	CHECK(got.user_agent[0] == 'x' && got.user_agent[510] == 'x');
	CHECK_INT_EQ(strlen(got.id), GW_CONN_ID_LEN);
	CHECK_INT_EQ(strlen(got.api), sizeof(got.api) - 1);
	CHECK_INT_EQ(got.slot, 42);
	/* Fields absent from the map are zero / empty. */
	CHECK_STR_EQ(got.stage, "");
	CHECK_INT_EQ(got.connected_at, 0);
	msgpack_sbuffer_destroy(&sb);
}

/* Decodes each garbage input; run in a child process (see main). */
static void decode_garbage(void *arg)
{
	static const struct {
		const char *bytes;
		size_t n;
		const char *what;
	} bad[] = {
#define G(lit, what) { lit, sizeof(lit) - 1, what }
		G("", "empty"),
		G("\xc1", "reserved msgpack byte"),
		G("\x93\x01\x02\x03", "array, not a map"),
		G("\xa2id", "string, not a map"),
		G("\x2a", "integer, not a map"),
		G("\xc0", "nil"),
		G("\x80", "empty map (no id)"),
		G("\x81\xa2id\x01", "id is not a string"),
		G("\x81\xa2id\xa0", "id is empty"),
		G("\x81\xa3" "api\xa1x", "map without id"),
		G("\x81\x01\xa1x", "integer key"),
		G("\xde\xff\xff\xa2id", "map16 claiming 65535 entries, truncated"),
		G("\xdb\xff\xff\xff\xff" "abc", "str32 claiming 4 GB"),
		G("\x82\xa2id\xa4" "abcd\xa3", "map truncated after a valid id"),
		G("hello, world", "text"),
#undef G
	};
	gw_conn_record_t got;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = gw_registry_decode(bad[i].bytes, bad[i].n, &got);
		CHECK_MSG(rc == GW_REG_ERROR, "%s: decode returned %d, expected GW_REG_ERROR",
			  bad[i].what, rc);
	}
}

/* Containers whose header claims far more entries than the input holds. */
static void decode_huge_counts(void *arg)
{
	static const char *const bad[] = {
		"\xdf\xff\xff\xff\xff", /* map32, 4294967295 entries, then nothing */
		"\xdd\xff\xff\xff\xff", /* array32, same */
	};
	gw_conn_record_t got;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = gw_registry_decode(bad[i], 5, &got);
		CHECK_MSG(rc == GW_REG_ERROR, "case %zu: decode returned %d", i, rc);
	}
}

static void decode_random(void *arg)
{
	gw_conn_record_t got;

	/* Pseudo-random byte strings: never crash (ASan), never a record without id. */
	{
		unsigned char buf[64];
		uint32_t x = 12345;

		for (int round = 0; round < 2000; round++) {
			size_t n = (size_t)(round % 64);
			for (size_t i = 0; i < n; i++) {
				x = x * 1103515245u + 12345u;
				buf[i] = (unsigned char)(x >> 16);
			}
			if (gw_registry_decode(buf, n, &got) == GW_REG_OK)
				CHECK(got.id[0] != '\0');
		}
	}
}

/* Fuzz finding registry-1: an empty string (NULL in msgpack-c) reached
 * memcpy, which UBSan aborts on. */
static void decode_empty_strings(void *arg)
{
	static const char empty_key[] = "\x81\xa0\x27";
	static const char empty_values[] = "\x83\xa2" "id\xa1" "x\xa3" "api\xa0\xa5" "stage\xa0";
	gw_conn_record_t got;

	(void)arg;
	CHECK_INT_EQ(gw_registry_decode(empty_key, sizeof(empty_key) - 1, &got), GW_REG_ERROR);
	CHECK_INT_EQ(gw_registry_decode(empty_values, sizeof(empty_values) - 1, &got), GW_REG_OK);
	CHECK_STR_EQ(got.api, "");
	CHECK_STR_EQ(got.stage, "");
}

static void test_decode_wrong_types(void)
{
	gw_conn_record_t got;

	/* A valid map with a wrong-typed value for a known key ignores it. */
	{
		static const char m[] = "\x82\xa2id\xa4" "abcd\xa4slot\xa3one";
		memset(&got, 0x55, sizeof(got));
		CHECK_INT_EQ(gw_registry_decode(m, sizeof(m) - 1, &got), GW_REG_OK);
		CHECK_STR_EQ(got.id, "abcd");
		CHECK_INT_EQ(got.slot, 0);
	}
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_new_id(void)
{
	enum { N = 10000 };
	char(*ids)[GW_CONN_ID_LEN + 1] = calloc(N, sizeof(*ids));
	int bad_chars = 0, bad_len = 0, dups = 0;

	if (!ids) {
		CHECK(ids != NULL);
		return;
	}
	for (int i = 0; i < N; i++) {
		memset(ids[i], '#', sizeof(ids[i]));
		CHECK_INT_EQ(gw_registry_new_id(ids[i]), 0);
		if (strnlen(ids[i], sizeof(ids[i])) != GW_CONN_ID_LEN)
			bad_len++;
		for (int j = 0; j < GW_CONN_ID_LEN; j++) {
			char c = ids[i][j];
			if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			      (c >= '0' && c <= '9') || c == '-' || c == '_'))
				bad_chars++;
		}
	}
	CHECK_INT_EQ(bad_len, 0);
	CHECK_INT_EQ(bad_chars, 0);
	qsort(ids, N, sizeof(*ids), cmp_id);
	for (int i = 1; i < N; i++)
		if (!strcmp(ids[i - 1], ids[i]))
			dups++;
	CHECK_INT_EQ(dups, 0);
	free(ids);
}

static void test_strerror(void)
{
	CHECK_STR_EQ(gw_registry_strerror(GW_REG_OK), "ok");
	CHECK_STR_EQ(gw_registry_strerror(GW_REG_NOTFOUND), "not found");
	CHECK_STR_EQ(gw_registry_strerror(GW_REG_EXISTS), "already exists");
	CHECK(gw_registry_strerror(GW_REG_ERROR) != NULL);
}

static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char full[512];
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(full, sizeof(full), "%s/%s", path, de->d_name);
		if (unlink(full))
			remove_tree(full);
	}
	closedir(d);
	rmdir(path);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/gw-unit-registry-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_insert_get_delete);
	RUN(test_touch);
	RUN(test_foreach_and_reopen);
	RUN(test_foreach_batches);
	RUN(test_dead_reader);
	RUN(test_map_full);
	RUN(test_open_failure);
	RUN(test_lock_refuses_second_open);
	RUN(test_symlinks_and_modes);
	CHECK_IN_CHILD(full_disk, NULL);
	RUN(test_encode_decode);
	RUN(test_decode_long_strings_truncated);
	CHECK_IN_CHILD(decode_garbage, NULL);
	CHECK_IN_CHILD(decode_huge_counts, NULL);
	CHECK_IN_CHILD(decode_random, NULL);
	CHECK_IN_CHILD(decode_empty_strings, NULL);
	RUN(test_decode_wrong_types);
	RUN(test_new_id);
	RUN(test_strerror);
	remove_tree(dir);
	{
		DIR *d = opendir(dir);
		CHECK_MSG(d == NULL, "temp folder %s was not removed", dir);
		if (d)
			closedir(d);
	}
	UNIT_MAIN_END();
}
