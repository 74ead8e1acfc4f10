/* outbox.c: the $disconnect outbox's core (a fake sender, fake clocks) on
 * a real registry: previous-run records adopted, bounded rate and calls in
 * flight, progress kept across a reopen (nothing repeated or skipped),
 * retries with backoff, giving up, entries that cannot be sent. */
#include "unit.h"

#include "outbox.h"
#include "registry.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];
static uint64_t now_ms = 1000000, wall_ms = 1731324900000ULL;

static uint64_t fake_now(void) { return now_ms; }
static uint64_t fake_wall(void) { return wall_ms; }

/* What the fake sender was asked to send, in order. */
static struct sent {
	gw_outbox_entry_t *e[4096];
	char id[4096][GW_CONN_ID_LEN + 1];
	gw_outbox_record_t last;
	size_t n;
	int refuse; /* answer -1: API gone */
} sent;

static int fake_send(void *user, gw_outbox_entry_t *e, const gw_outbox_record_t *rec)
{
	(void)user;
	if (sent.refuse)
		return -1;
	sent.e[sent.n] = e;
	snprintf(sent.id[sent.n], sizeof(sent.id[0]), "%s", rec->conn.id);
	sent.last = *rec;
	sent.n++;
	return 0;
}

static gw_registry_t *open_reg(void)
{
	gw_registry_t *reg = NULL;
	char err[256] = "";
	int rc = gw_registry_open(dir, &reg, err, sizeof(err));

	CHECK_MSG(rc == 0 && reg, "gw_registry_open(%s): rc=%d: %s", dir, rc, err);
	return rc == 0 ? reg : NULL;
}

static gw_outbox_t *make(gw_registry_t *reg, unsigned inflight, double rate, size_t max)
{
	gw_outbox_opts_t o;

	memset(&o, 0, sizeof(o));
	o.max_inflight = inflight;
	o.start_inflight = inflight;
	o.max_entries = max;
	o.retry_seconds = 60;
	o.replay_rate = rate;
	o.send = fake_send;
	o.now_ms = fake_now;
	o.wall_ms = fake_wall;
	memset(&sent, 0, sizeof(sent));
	return gw_outbox_create(reg, &o);
}

static gw_conn_record_t record(int i)
{
	gw_conn_record_t r;

	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "conn-%019d", i);
	snprintf(r.api, sizeof(r.api), "chat");
	snprintf(r.stage, sizeof(r.stage), "dev");
	snprintf(r.source_ip, sizeof(r.source_ip), "10.0.0.%d", i % 250);
	snprintf(r.user_agent, sizeof(r.user_agent), "agent/%d", i);
	snprintf(r.host, sizeof(r.host), "chat.example.com");
	r.tls = 1;
	r.connected_at = 1731324800000ULL + (uint64_t)i;
	r.last_active_at = r.connected_at;
	return r;
}

static void load_cb(const char *id, size_t idlen, const void *val, size_t len, void *user)
{
	gw_outbox_adopt(user, id, idlen, val, len);
}

static size_t stored(gw_registry_t *reg)
{
	size_t n = (size_t)-1;

	CHECK_INT_EQ(gw_registry_outbox_count(reg, &n), 0);
	return n;
}

/* Records of a run that died become outbox entries at the next open,
 * each with everything its $disconnect event needs. */
static void test_previous_run_adopted(void)
{
	gw_registry_t *reg = open_reg();
	gw_conn_record_t got;
	size_t n = 1, adopted = 0;
	const char *problem = "x";
	gw_outbox_t *ob;

	if (!reg)
		return;
	for (int i = 0; i < 5; i++) {
		gw_conn_record_t r = record(i);
		CHECK_INT_EQ(gw_registry_insert(reg, &r), GW_REG_OK);
	}
	{
		gw_conn_record_t r = record(4);

		CHECK_INT_EQ(gw_registry_set_authorizer(reg, r.id, "{\"principalId\":\"p4\"}", 20),
			     GW_REG_OK);
		/* Not beside a record: refused. */
		CHECK_INT_EQ(gw_registry_set_authorizer(reg, "no-such-connection-0000", "{}", 2),
			     GW_REG_NOTFOUND);
	}
	gw_registry_close(reg); /* as good as a kill -9 for the files */

	reg = open_reg();
	if (!reg)
		return;
	gw_registry_previous(reg, &adopted, &problem);
	CHECK_INT_EQ(adopted, 5);
	CHECK(problem == NULL);
	CHECK_INT_EQ(gw_registry_count(reg, &n), 0);
	CHECK_INT_EQ(n, 0);
	CHECK_INT_EQ(stored(reg), 5);
	{
		gw_conn_record_t r = record(0);
		CHECK_INT_EQ(gw_registry_get(reg, r.id, strlen(r.id), &got), GW_REG_NOTFOUND);
	}

	ob = make(reg, 32, 1e6, 1000);
	CHECK_INT_EQ(gw_registry_outbox_foreach(reg, load_cb, ob), 0);
	CHECK_INT_EQ(gw_outbox_pending(ob), 5);
	gw_outbox_run(ob);
	CHECK_INT_EQ(sent.n, 5);
	CHECK_INT_EQ(sent.last.code, 1006);
	/* record(4) is the last in key order: its authorizer came along. */
	CHECK_STR_EQ(sent.last.conn.id, "conn-0000000000000000004");
	CHECK_STR_EQ(sent.last.authorizer, "{\"principalId\":\"p4\"}");
	CHECK_STR_EQ(sent.last.reason, GW_OUTBOX_REASON_RESTART);
	CHECK_STR_EQ(sent.last.conn.host, "chat.example.com");
	CHECK_STR_EQ(sent.last.conn.api, "chat");
	CHECK_STR_EQ(sent.last.conn.stage, "dev");
	CHECK_INT_EQ(sent.last.conn.tls, 1);
	CHECK_INT_EQ(strlen(sent.last.request_id), 16);
	CHECK(sent.last.conn.connected_at >= 1731324800000ULL);
	for (size_t i = 0; i < sent.n; i++)
		gw_outbox_done(ob, sent.e[i], 1);
	CHECK_INT_EQ(gw_outbox_pending(ob), 0);
	/* Deletes wait for the commit: one transaction for all. */
	CHECK_INT_EQ(stored(reg), 5);
	gw_outbox_commit(ob);
	CHECK_INT_EQ(stored(reg), 0);
	gw_outbox_destroy(ob);
	gw_registry_close(reg);
}

/* A close moves the record to the outbox in one step; the answer removes it. */
static void test_add_moves_record(void)
{
	gw_registry_t *reg = open_reg();
	gw_outbox_record_t o;
	gw_conn_record_t got;
	gw_outbox_t *ob;

	if (!reg)
		return;
	ob = make(reg, 32, 100, 1000);
	memset(&o, 0, sizeof(o));
	o.conn = record(42);
	CHECK_INT_EQ(gw_registry_insert(reg, &o.conn), GW_REG_OK);
	o.code = 1001;
	snprintf(o.reason, sizeof(o.reason), "Going away");
	o.closed_at = wall_ms;
	snprintf(o.request_id, sizeof(o.request_id), "ReqIdReqIdReqId1");
	o.authorizer_len = (size_t)snprintf(o.authorizer, sizeof(o.authorizer),
					    "{\"principalId\":\"u1\"}");
	CHECK_INT_EQ(gw_outbox_add(ob, &o, NULL), GW_REG_OK);
	CHECK_INT_EQ(gw_registry_get(reg, o.conn.id, strlen(o.conn.id), &got), GW_REG_NOTFOUND);
	CHECK_INT_EQ(stored(reg), 1);
	/* A live entry is not held back by the replay rate. */
	gw_outbox_run(ob);
	CHECK_INT_EQ(sent.n, 1);
	CHECK_INT_EQ(sent.last.code, 1001);
	CHECK_STR_EQ(sent.last.reason, "Going away");
	CHECK_STR_EQ(sent.last.request_id, "ReqIdReqIdReqId1");
	CHECK_STR_EQ(sent.last.authorizer, "{\"principalId\":\"u1\"}");
	CHECK_INT_EQ(sent.last.authorizer_len, 20);
	gw_outbox_done(ob, sent.e[0], 1);
	gw_outbox_run(ob);
	CHECK_INT_EQ(stored(reg), 0);
	gw_outbox_destroy(ob);
	gw_registry_close(reg);
}

static void add_n(gw_outbox_t *ob, int from, int n)
{
	for (int i = from; i < from + n; i++) {
		gw_outbox_record_t o;

		memset(&o, 0, sizeof(o));
		o.conn = record(i);
		o.code = 1000;
		snprintf(o.reason, sizeof(o.reason), "bye");
		o.closed_at = wall_ms;
		CHECK_INT_EQ(gw_outbox_add(ob, &o, NULL), GW_REG_OK);
	}
}

/* Previous-run entries go at the replay rate, never more in flight than
 * allowed; a reopen in the middle finds exactly the ones not answered. */
static void test_rate_inflight_and_progress(void)
{
	gw_registry_t *reg = open_reg();
	char seen[200] = { 0 };
	gw_outbox_t *ob;
	uint64_t wait;
	size_t total = 0;

	if (!reg)
		return;
	ob = make(reg, 1000, 1000, 1000);
	add_n(ob, 0, 200);
	gw_outbox_destroy(ob); /* exit before any call: all 200 stay stored */
	CHECK_INT_EQ(stored(reg), 200);

	ob = make(reg, 8, 50, 1000); /* 50 a second, 8 at once */
	CHECK_INT_EQ(gw_registry_outbox_foreach(reg, load_cb, ob), 0);
	CHECK_INT_EQ(gw_outbox_pending(ob), 200);
	wait = gw_outbox_run(ob);
	CHECK_MSG(sent.n >= 1 && sent.n <= 6, "burst of %zu", sent.n);
	CHECK(wait > 0 && wait <= 40);
	/* One second later: about 50 more, but never more than 8 in flight. */
	now_ms += 1000;
	gw_outbox_run(ob);
	CHECK_INT_EQ(sent.n, 8);
	while (sent.n < 60) {
		size_t k = sent.n;

		for (size_t i = total; i < k; i++)
			gw_outbox_done(ob, sent.e[i], 1);
		total = k;
		now_ms += 20;
		gw_outbox_run(ob);
		CHECK(sent.n - total <= 8);
		if (sent.n == k && now_ms > 1000000 + 60000)
			break;
	}
	/* The last ones sent are still in flight: "crash" now. */
	CHECK(sent.n > total);
	for (size_t i = 0; i < total; i++)
		seen[atoi(sent.id[i] + 5)]++;
	gw_outbox_commit(ob);
	gw_outbox_destroy(ob);
	CHECK_INT_EQ(stored(reg), 200 - total);
	gw_registry_close(reg);

	reg = open_reg();
	if (!reg)
		return;
	ob = make(reg, 1000, 1e6, 1000);
	CHECK_INT_EQ(gw_registry_outbox_foreach(reg, load_cb, ob), 0);
	CHECK_INT_EQ(gw_outbox_pending(ob), 200 - total);
	gw_outbox_run(ob);
	CHECK_INT_EQ(sent.n, 200 - total);
	for (size_t i = 0; i < sent.n; i++) {
		seen[atoi(sent.id[i] + 5)]++;
		gw_outbox_done(ob, sent.e[i], 1);
	}
	gw_outbox_commit(ob);
	for (int i = 0; i < 200; i++)
		CHECK_MSG(seen[i] == 1, "entry %d sent %d times", i, seen[i]);
	CHECK_INT_EQ(stored(reg), 0);
	gw_outbox_destroy(ob);
	gw_registry_close(reg);
}

/* A failed call waits its backoff, is sent again, and is given up (and
 * deleted) only once the retry time since its close has passed. */
static void test_retry_backoff_give_up(void)
{
	gw_registry_t *reg = open_reg();
	gw_outbox_stats_t st;
	gw_outbox_t *ob;
	uint64_t wait;

	if (!reg)
		return;
	ob = make(reg, 32, 100, 1000);
	add_n(ob, 500, 1);
	gw_outbox_run(ob);
	CHECK_INT_EQ(sent.n, 1);
	gw_outbox_done(ob, sent.e[0], 0);
	CHECK_INT_EQ(gw_outbox_pending(ob), 1);
	wait = gw_outbox_run(ob);
	CHECK_INT_EQ(sent.n, 1); /* not at once */
	CHECK_MSG(wait >= GW_OUTBOX_BACKOFF_FIRST_MS / 2 && wait <= GW_OUTBOX_BACKOFF_FIRST_MS,
		  "first backoff %llu ms", (unsigned long long)wait);
	now_ms += wait;
	gw_outbox_run(ob);
	CHECK_INT_EQ(sent.n, 2);
	/* Backoff doubles. */
	gw_outbox_done(ob, sent.e[1], 0);
	wait = gw_outbox_run(ob);
	CHECK_MSG(wait >= GW_OUTBOX_BACKOFF_FIRST_MS && wait <= 2 * GW_OUTBOX_BACKOFF_FIRST_MS,
		  "second backoff %llu ms", (unsigned long long)wait);
	now_ms += wait;
	gw_outbox_run(ob);
	CHECK_INT_EQ(sent.n, 3);
	/* Past the retry time: the next failure gives up. */
	wall_ms += 61000;
	gw_outbox_done(ob, sent.e[2], 0);
	gw_outbox_run(ob);
	CHECK_INT_EQ(gw_outbox_pending(ob), 0);
	CHECK_INT_EQ(stored(reg), 0);
	gw_outbox_stats(ob, &st);
	CHECK_INT_EQ(st.given_up, 1);
	CHECK_INT_EQ(st.retried, 2);
	gw_outbox_destroy(ob);
	gw_registry_close(reg);
}

/* An entry whose API has no $disconnect any more is dropped; one beyond
 * the memory bound stays stored for a later start; a stored value that
 * does not decode is deleted at load. */
static void test_drop_overflow_garbage(void)
{
	gw_registry_t *reg = open_reg();
	gw_outbox_stats_t st;
	gw_outbox_t *ob;

	if (!reg)
		return;
	ob = make(reg, 32, 100, 2);
	add_n(ob, 600, 3);
	CHECK_INT_EQ(gw_outbox_pending(ob), 2);
	CHECK_INT_EQ(stored(reg), 3);
	sent.refuse = 1;
	gw_outbox_run(ob);
	CHECK_INT_EQ(gw_outbox_pending(ob), 0);
	gw_outbox_stats(ob, &st);
	CHECK_INT_EQ(st.dropped, 2);
	CHECK_INT_EQ(st.overflowed, 1);
	CHECK_INT_EQ(stored(reg), 1);
	gw_outbox_destroy(ob);

	ob = make(reg, 32, 100, 10);
	CHECK_INT_EQ(gw_outbox_adopt(ob, "garbage-id", 10, "\x93\x01\x02\x03", 4), -1);
	CHECK_INT_EQ(gw_registry_outbox_foreach(reg, load_cb, ob), 0);
	CHECK_INT_EQ(gw_outbox_pending(ob), 1);
	gw_outbox_destroy(ob);
	gw_registry_close(reg);
}

/* A timeout halves the calls let out at once (a slow backend is not sent
 * more than it answers in time); answers let it grow back by one per
 * window answered. The call timed out is sent again. */
static void test_timeout_window(void)
{
	gw_registry_t *reg = open_reg();
	gw_outbox_t *ob;
	size_t left;

	if (!reg)
		return;
	left = stored(reg); /* the overflowed one of the test before */
	ob = make(reg, 8, 100, 1000);
	add_n(ob, 700, 20);
	gw_outbox_run(ob);
	CHECK_INT_EQ(sent.n, 8);
	gw_outbox_done(ob, sent.e[0], GW_OUTBOX_TIMEOUT); /* window 4, 7 in flight */
	now_ms += 10000;
	gw_outbox_run(ob);
	CHECK_INT_EQ(sent.n, 8);
	for (int i = 1; i <= 4; i++)
		gw_outbox_done(ob, sent.e[i], GW_OUTBOX_DELIVERED); /* 3 in flight, window 4.9 */
	gw_outbox_run(ob);
	CHECK_INT_EQ(sent.n, 9);
	CHECK_STR_EQ(sent.id[8], sent.id[0]); /* the timed-out one goes first */
	for (int i = 5; i <= 8; i++)
		gw_outbox_done(ob, sent.e[i], GW_OUTBOX_DELIVERED);
	gw_outbox_run(ob);
	CHECK_MSG(sent.n == 14, "%zu sent with window ~5.7", sent.n);
	while (gw_outbox_pending(ob)) {
		size_t k = sent.n;

		for (size_t i = 9; i < k; i++)
			if (sent.e[i]) {
				gw_outbox_done(ob, sent.e[i], GW_OUTBOX_DELIVERED);
				sent.e[i] = NULL;
			}
		gw_outbox_run(ob);
		if (sent.n == k && gw_outbox_pending(ob))
			break;
	}
	CHECK_INT_EQ(gw_outbox_pending(ob), 0);
	CHECK_INT_EQ(sent.n, 21);
	gw_outbox_run(ob);
	CHECK_INT_EQ(stored(reg), left);
	gw_outbox_destroy(ob);
	gw_registry_close(reg);
}

static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char p[600];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(path);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/gw-unit-outbox-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_previous_run_adopted);
	RUN(test_add_moves_record);
	RUN(test_rate_inflight_and_progress);
	RUN(test_retry_backoff_give_up);
	RUN(test_drop_overflow_garbage);
	RUN(test_timeout_window);
	remove_tree(dir);
	UNIT_MAIN_END();
}
