/* The $disconnect outbox (outbox.h): a queue per loop in memory, its
 * entries stored in the registry's environment until answered. It must
 * never block the loop on the backend, nor write LMDB once per answer. */
#include "outbox.h"
#include "core.h"
#include "integration.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

#define COMMIT_MAX 256 /* deletes written per transaction */

struct gw_outbox_entry {
	lws_dll2_t list; /* live, replay, retry or inflight */
	uint64_t due;    /* retry: monotonic ms */
	unsigned attempts;
	int replay;
	void *ctx; /* the sender's, while in flight */
	void *tag; /* the sender's, for the entry's life in memory */
	char id[GW_CONN_ID_LEN + 1];
	size_t len;
	unsigned char val[]; /* gw_outbox_record_encode's bytes */
};

struct gw_outbox {
	gw_registry_t *reg;
	gw_outbox_opts_t o;
	lws_dll2_owner_t live;     /* closed in this run, in order */
	lws_dll2_owner_t replay;   /* of an earlier run: sent at the replay rate */
	lws_dll2_owner_t retry;    /* failed, by due time */
	lws_dll2_owner_t inflight;
	size_t n_entries;
	double window; /* calls let out at once: follows the answers (outbox.h) */
	double tokens; /* replay budget */
	uint64_t tokens_at;
	uint32_t rnd;  /* backoff jitter */
	char (*done_ids)[GW_CONN_ID_LEN + 1]; /* answered, delete not written yet */
	size_t n_done;
	gw_outbox_stats_t st;
	/* The binding to a loop (gw_outbox_attach): its timer runs the
	 * outbox; stopped once the loop is being destroyed. */
	struct gw_worker *gw;
	lws_sorted_usec_list_t timer;
	int kicked;
	int stopped;
};

static void refill_tokens(gw_outbox_t *ob, uint64_t now);

static uint64_t default_now(void) { return gw_now_ms(); }
static uint64_t default_wall(void) { return gw_wall_ms(); }

gw_outbox_t *gw_outbox_create(gw_registry_t *reg, const gw_outbox_opts_t *o)
{
	gw_outbox_t *ob = calloc(1, sizeof(*ob));

	if (!ob)
		abort();
	ob->reg = reg;
	ob->o = *o;
	if (!ob->o.now_ms)
		ob->o.now_ms = default_now;
	if (!ob->o.wall_ms)
		ob->o.wall_ms = default_wall;
	if (!ob->o.max_inflight)
		ob->o.max_inflight = GW_OUTBOX_INFLIGHT;
	if (!ob->o.start_inflight)
		ob->o.start_inflight = GW_OUTBOX_INFLIGHT_START;
	ob->window = ob->o.max_inflight < ob->o.start_inflight ? ob->o.max_inflight
							       : ob->o.start_inflight;
	ob->done_ids = malloc(COMMIT_MAX * sizeof(*ob->done_ids));
	if (!ob->done_ids)
		abort();
	ob->tokens_at = ob->o.now_ms();
	ob->tokens = 0;
	refill_tokens(ob, ob->tokens_at + 1000); /* a full burst to start with */
	ob->tokens_at = ob->o.now_ms();
	ob->rnd = (uint32_t)ob->tokens_at | 1;
	return ob;
}

static void entry_free(gw_outbox_t *ob, gw_outbox_entry_t *e)
{
	if (e->tag && ob->o.release)
		ob->o.release(ob->o.user, e->tag);
	free(e);
}

static void free_list(gw_outbox_t *ob, lws_dll2_owner_t *q)
{
	while (q->head) {
		gw_outbox_entry_t *e = lws_container_of(q->head, gw_outbox_entry_t, list);

		lws_dll2_remove(&e->list);
		entry_free(ob, e);
	}
}

void gw_outbox_destroy(gw_outbox_t *ob)
{
	if (!ob)
		return;
	gw_outbox_commit(ob);
	while (ob->inflight.head) {
		gw_outbox_entry_t *e = lws_container_of(ob->inflight.head, gw_outbox_entry_t, list);

		lws_dll2_remove(&e->list);
		if (ob->o.abandon)
			ob->o.abandon(ob->o.user, e);
		entry_free(ob, e);
	}
	free_list(ob, &ob->live);
	free_list(ob, &ob->replay);
	free_list(ob, &ob->retry);
	free(ob->done_ids);
	free(ob);
}

static gw_outbox_entry_t *entry_new(const char *id, size_t idlen, const void *val, size_t len)
{
	gw_outbox_entry_t *e;

	if (!idlen || idlen > GW_CONN_ID_LEN)
		return NULL;
	e = calloc(1, sizeof(*e) + len);
	if (!e)
		abort();
	memcpy(e->id, id, idlen);
	e->len = len;
	memcpy(e->val, val, len);
	return e;
}

int gw_outbox_add(gw_outbox_t *ob, const gw_outbox_record_t *rec, void *tag)
{
	gw_outbox_entry_t *e;
	void *data;
	size_t len;
	int rc;

	gw_outbox_record_encode(rec, &data, &len);
	rc = gw_registry_outbox_move(ob->reg, rec->conn.id, data, len);
	/* Not stored (disk full): the record goes anyway, from the room kept
	 * for deletes; the call is still made from memory. */
	if (rc)
		gw_registry_delete(ob->reg, rec->conn.id);
	ob->st.added++;
	if (ob->n_entries >= ob->o.max_entries && !rc) {
		/* Stored: the next start sends it. */
		ob->st.overflowed++;
		free(data);
		if (tag && ob->o.release)
			ob->o.release(ob->o.user, tag);
		return rc;
	}
	e = entry_new(rec->conn.id, strlen(rec->conn.id), data, len);
	free(data);
	if (!e) {
		if (tag && ob->o.release)
			ob->o.release(ob->o.user, tag);
		return GW_REG_ERROR;
	}
	e->tag = tag;
	lws_dll2_add_tail(&e->list, &ob->live);
	ob->n_entries++;
	return rc;
}

int gw_outbox_adopt(gw_outbox_t *ob, const char *id, size_t idlen, const void *val,
		    size_t len)
{
	gw_outbox_record_t rec;
	gw_outbox_entry_t *e;

	if (gw_outbox_record_decode(val, len, &rec) || strlen(rec.conn.id) != idlen ||
	    memcmp(rec.conn.id, id, idlen)) {
		/* Not ours: nothing could ever send it. */
		if (idlen <= GW_CONN_ID_LEN) {
			if (ob->n_done == COMMIT_MAX)
				gw_outbox_commit(ob);
			memcpy(ob->done_ids[ob->n_done], id, idlen);
			ob->done_ids[ob->n_done++][idlen] = '\0';
		}
		ob->st.dropped++;
		return -1;
	}
	if (ob->n_entries >= ob->o.max_entries) {
		ob->st.overflowed++;
		return -1;
	}
	e = entry_new(id, idlen, val, len);
	if (!e)
		return -1;
	e->replay = 1;
	lws_dll2_add_tail(&e->list, &ob->replay);
	ob->n_entries++;
	ob->st.adopted++;
	return 0;
}

/* Answered or given up: deleted from the store with the next commit. */
static void forget(gw_outbox_t *ob, gw_outbox_entry_t *e)
{
	if (ob->n_done == COMMIT_MAX)
		gw_outbox_commit(ob);
	memcpy(ob->done_ids[ob->n_done++], e->id, sizeof(e->id));
	lws_dll2_remove(&e->list);
	ob->n_entries--;
	entry_free(ob, e);
}

void gw_outbox_commit(gw_outbox_t *ob)
{
	const char *ids[COMMIT_MAX];
	int rc;

	if (!ob->n_done)
		return;
	for (size_t i = 0; i < ob->n_done; i++)
		ids[i] = ob->done_ids[i];
	rc = gw_registry_outbox_delete(ob->reg, ids, ob->n_done);
	if (rc)
		gw_log_limited(GW_LOG_ERROR, 10000, "$disconnect outbox: cannot delete %zu "
			       "answered entries (%s): the next start sends them again",
			       ob->n_done, gw_registry_strerror(rc));
	ob->n_done = 0;
}

static uint64_t backoff_ms(gw_outbox_t *ob, unsigned attempts)
{
	uint64_t d = GW_OUTBOX_BACKOFF_FIRST_MS;

	for (unsigned i = 1; i < attempts && d < GW_OUTBOX_BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > GW_OUTBOX_BACKOFF_MAX_MS)
		d = GW_OUTBOX_BACKOFF_MAX_MS;
	/* xorshift: spread the retries of a burst of failures */
	ob->rnd ^= ob->rnd << 13;
	ob->rnd ^= ob->rnd >> 17;
	ob->rnd ^= ob->rnd << 5;
	return d / 2 + ob->rnd % (d / 2 + 1);
}

/* Keeps ob->retry sorted by due time; most retries go last. */
static void retry_insert(gw_outbox_t *ob, gw_outbox_entry_t *e)
{
	lws_dll2_t *d = ob->retry.tail;

	while (d && lws_container_of(d, gw_outbox_entry_t, list)->due > e->due)
		d = d->prev;
	if (!d)
		lws_dll2_add_head(&e->list, &ob->retry);
	else if (d->next)
		lws_dll2_add_before(&e->list, d->next);
	else
		lws_dll2_add_tail(&e->list, &ob->retry);
}

void gw_outbox_done(gw_outbox_t *ob, gw_outbox_entry_t *e, int result)
{
	gw_outbox_record_t rec;
	uint64_t wall;

	if (!e)
		return;
	e->ctx = NULL;
	if (result == GW_OUTBOX_DELIVERED || result == GW_OUTBOX_DELIVERED_SLOW) {
		ob->st.delivered++;
		/* Additive increase: one more call at once per window answered
		 * quickly; a late answer takes a quarter off. */
		if (result == GW_OUTBOX_DELIVERED_SLOW)
			ob->window = ob->window * 3 / 4 < 1 ? 1 : ob->window * 3 / 4;
		else
			ob->window += 1.0 / ob->window;
		if (ob->window > ob->o.max_inflight)
			ob->window = ob->o.max_inflight;
		forget(ob, e);
		return;
	}
	if (result == GW_OUTBOX_TIMEOUT) {
		ob->st.timeouts++;
		ob->window = ob->window / 2 < 1 ? 1 : ob->window / 2;
	}
	wall = ob->o.wall_ms();
	if (gw_outbox_record_decode(e->val, e->len, &rec) ||
	    wall >= rec.closed_at + (uint64_t)ob->o.retry_seconds * 1000) {
		ob->st.given_up++;
		gw_log_limited(GW_LOG_WARN, 1000, "$disconnect of %s: no answer after %u "
			       "attempts in %u s, given up", e->id, e->attempts,
			       ob->o.retry_seconds);
		forget(ob, e);
		return;
	}
	ob->st.retried++;
	lws_dll2_remove(&e->list);
	e->due = ob->o.now_ms() + backoff_ms(ob, e->attempts);
	retry_insert(ob, e);
}

static void start(gw_outbox_t *ob, gw_outbox_entry_t *e)
{
	gw_outbox_record_t rec;

	lws_dll2_remove(&e->list);
	if (gw_outbox_record_decode(e->val, e->len, &rec)) {
		lws_dll2_add_tail(&e->list, &ob->inflight);
		ob->st.dropped++;
		forget(ob, e);
		return;
	}
	e->attempts++;
	lws_dll2_add_tail(&e->list, &ob->inflight);
	if (ob->o.send(ob->o.user, e, &rec)) {
		gw_log_limited(GW_LOG_WARN, 1000, "$disconnect of %s: API %s has no $disconnect "
			       "route any more, dropped", e->id, rec.conn.api);
		ob->st.dropped++;
		forget(ob, e);
	}
}

static void refill_tokens(gw_outbox_t *ob, uint64_t now)
{
	double rate = ob->o.replay_rate > 0 ? ob->o.replay_rate : 1e9;

	ob->tokens += (double)(now - ob->tokens_at) * rate / 1000.0;
	/* A burst of at most a tenth of a second's worth (and one). */
	if (ob->tokens > rate / 10 + 1)
		ob->tokens = rate / 10 + 1;
	ob->tokens_at = now;
}

uint64_t gw_outbox_run(gw_outbox_t *ob)
{
	uint64_t now = ob->o.now_ms(), wait = 0;

	gw_outbox_commit(ob);
	/* Retries due go back in front of their queue: they are the oldest. */
	while (ob->retry.head) {
		gw_outbox_entry_t *e = lws_container_of(ob->retry.head, gw_outbox_entry_t, list);

		if (e->due > now)
			break;
		lws_dll2_remove(&e->list);
		lws_dll2_add_head(&e->list, e->replay ? &ob->replay : &ob->live);
	}
	while (ob->inflight.count < (unsigned)ob->window && ob->live.head)
		start(ob, lws_container_of(ob->live.head, gw_outbox_entry_t, list));
	refill_tokens(ob, now);
	while (ob->inflight.count < (unsigned)ob->window && ob->replay.head && ob->tokens >= 1) {
		ob->tokens -= 1;
		start(ob, lws_container_of(ob->replay.head, gw_outbox_entry_t, list));
	}
	gw_outbox_commit(ob);
	if (ob->replay.head && ob->inflight.count < (unsigned)ob->window) {
		double rate = ob->o.replay_rate > 0 ? ob->o.replay_rate : 1e9;

		wait = (uint64_t)((1 - ob->tokens) * 1000.0 / rate) + 1;
	}
	if (ob->retry.head) {
		gw_outbox_entry_t *e = lws_container_of(ob->retry.head, gw_outbox_entry_t, list);
		uint64_t w = e->due > now ? e->due - now : 1;

		if (!wait || w < wait)
			wait = w;
	}
	return wait;
}

size_t gw_outbox_pending(const gw_outbox_t *ob)
{
	return ob->n_entries;
}

size_t gw_outbox_active(const gw_outbox_t *ob)
{
	return ob->live.count + ob->replay.count + ob->inflight.count;
}

void gw_outbox_stats(const gw_outbox_t *ob, gw_outbox_stats_t *st)
{
	*st = ob->st;
}

const char *gw_outbox_entry_id(const gw_outbox_entry_t *e)
{
	return e->id;
}

void *gw_outbox_entry_tag(const gw_outbox_entry_t *e)
{
	return e->tag;
}

void **gw_outbox_entry_ctx(gw_outbox_entry_t *e)
{
	return &e->ctx;
}

/* --- binding to an event loop ------------------------------------------ */

/* The API of the loop's configuration named as the entry says. */
static const gw_api_t *find_api(const gw_config_t *cfg, const gw_outbox_record_t *rec)
{
	for (size_t i = 0; i < cfg->n_apis; i++)
		if (!strcmp(cfg->apis[i].name, rec->conn.api) &&
		    !strcmp(cfg->apis[i].stage, rec->conn.stage))
			return &cfg->apis[i];
	for (size_t i = 0; i < cfg->n_apis; i++)
		if (!strcmp(cfg->apis[i].name, rec->conn.api))
			return &cfg->apis[i];
	return NULL;
}

/* What a call holds: the entry and the configuration its route is in. */
typedef struct ob_call {
	gw_worker_t *gw;
	gw_outbox_entry_t *e;
	gw_config_t *cfg;
	const gw_route_t *route;
	gw_call_t *call;
	uint64_t started; /* monotonic ms */
	unsigned api_id;  /* metrics */
} ob_call_t;

static void on_answer(void *user, const gw_http_resp_t *resp)
{
	ob_call_t *c = user;
	gw_worker_t *gw = c->gw;
	gw_integ_result_t res;
	int result;

	gw_metrics_integration(gw->metrics, c->api_id, resp->outcome, resp->status, resp->duration_us);
	gw_integ_result(c->route->integration, resp, &gw->rscratch, &res);
	/* AWS ignores a $disconnect answer. Here an answer proves delivery,
	 * unless it says the backend failed (5xx): tried again. A call that
	 * never left (refused, unreachable) or got no answer in time is tried
	 * again; one the backend read and then reset or cut is not, as nginx
	 * does not retry a POST it has sent: the backend would see it twice. */
	if (res.outcome == GW_INTEG_OK)
		result = res.status_code < 500 ? GW_OUTBOX_DELIVERED : GW_OUTBOX_RETRY;
	else if (res.outcome == GW_INTEG_TIMEOUT)
		result = GW_OUTBOX_TIMEOUT;
	else
		result = resp->unsent ? GW_OUTBOX_RETRY : GW_OUTBOX_DELIVERED;
	if (result == GW_OUTBOX_DELIVERED &&
	    gw_now_ms() - c->started > (uint64_t)c->route->integration->timeout_ms / 2)
		result = GW_OUTBOX_DELIVERED_SLOW;
	if (result != GW_OUTBOX_DELIVERED && result != GW_OUTBOX_DELIVERED_SLOW)
		gw_log_limited(GW_LOG_WARN, 1000, "$disconnect of %s: %s, will retry",
			       gw_outbox_entry_id(c->e),
			       res.outcome == GW_INTEG_OK ? "the backend answered 5xx"
			       : resp->error              ? resp->error
							  : "not sent");
	else if (res.outcome != GW_INTEG_OK)
		gw_log_limited(GW_LOG_WARN, 1000, "$disconnect of %s: sent, but %s: not sent "
			       "again (the backend may have acted on it)",
			       gw_outbox_entry_id(c->e), resp->error ? resp->error : "no answer");
	gw_outbox_done(gw->outbox, c->e, result);
	gw_config_unref(c->cfg);
	free(c);
	gw_outbox_kick(gw);
}

static int send_call(void *user, gw_outbox_entry_t *e, const gw_outbox_record_t *rec)
{
	gw_worker_t *gw = user;
	/* The snapshot the connection used (it keeps its routes until it is
	 * closed, reload or not); an earlier run's entry takes the current. */
	gw_config_t *cfg = gw_outbox_entry_tag(e) ? gw_outbox_entry_tag(e) : gw->cfg;
	const gw_api_t *api = find_api(cfg, rec);
	gw_invocation_t inv;
	gw_event_ctx_t ctx;
	ob_call_t *c;

	if (!api || !api->disconnect_route)
		return -1;
	c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->gw = gw;
	c->e = e;
	c->cfg = gw_config_ref(cfg);
	c->route = api->disconnect_route;
	c->started = gw_now_ms();
	c->api_id = api->id;
	memset(&ctx, 0, sizeof(ctx));
	ctx.api = api;
	ctx.route_key = "$disconnect";
	ctx.connection_id = rec->conn.id;
	ctx.connected_at = rec->conn.connected_at;
	ctx.request_id = rec->request_id;
	ctx.request_time = gw_wall_ms();
	ctx.source_ip = rec->conn.source_ip;
	ctx.user_agent = rec->conn.user_agent[0] ? rec->conn.user_agent : NULL;
	ctx.domain_name = rec->conn.host[0] ? rec->conn.host : "localhost";
	ctx.disconnect_code = (int)rec->code;
	ctx.disconnect_reason = rec->reason;
	if (rec->authorizer_len) {
		ctx.authorizer = rec->authorizer;
		ctx.authorizer_len = rec->authorizer_len;
	}
	memset(&inv, 0, sizeof(inv));
	inv.route = c->route;
	inv.type = GW_EV_DISCONNECT;
	inv.ctx = &ctx;
	inv.tls = (int)rec->conn.tls;
	/* The outbox bounds these calls itself: the backend's queue bound is
	 * for messages, and must not refuse a $disconnect. */
	inv.own_bound = 1;
	*gw_outbox_entry_ctx(e) = c;
	c->call = gw_integ_invoke(gw->be, &inv, &gw->scratch, on_answer, c);
	return 0;
}

static void abandon_call(void *user, gw_outbox_entry_t *e)
{
	ob_call_t *c = *gw_outbox_entry_ctx(e);

	(void)user;
	if (!c)
		return;
	/* The backend is gone (its calls with it) or the call is cancelled. */
	if (c->gw->be)
		gw_backend_cancel(c->call);
	gw_config_unref(c->cfg);
	free(c);
}

static void release_cfg(void *user, void *tag)
{
	(void)user;
	gw_config_unref(tag);
}

static void on_timer(lws_sorted_usec_list_t *sul)
{
	gw_outbox_t *ob = lws_container_of(sul, gw_outbox_t, timer);
	uint64_t wait;

	ob->kicked = 0;
	wait = gw_outbox_run(ob);
	if (wait && !ob->stopped)
		lws_sul_schedule(ob->gw->ctx, 0, &ob->timer, on_timer,
				 (lws_usec_t)wait * LWS_US_PER_MS);
}

gw_outbox_t *gw_outbox_attach(gw_worker_t *gw, unsigned retry_seconds, double replay_rate,
			      size_t max_entries)
{
	gw_outbox_opts_t o;
	gw_outbox_t *ob;

	memset(&o, 0, sizeof(o));
	o.max_inflight = GW_OUTBOX_INFLIGHT;
	o.max_entries = max_entries;
	o.retry_seconds = retry_seconds;
	o.replay_rate = replay_rate;
	o.send = send_call;
	o.abandon = abandon_call;
	o.release = release_cfg;
	o.user = gw;
	ob = gw_outbox_create(gw->reg, &o);
	ob->gw = gw;
	return ob;
}

void gw_outbox_detach(gw_outbox_t *ob)
{
	if (!ob)
		return;
	ob->stopped = 1;
	lws_sul_cancel(&ob->timer);
}

void gw_outbox_kick(gw_worker_t *gw)
{
	gw_outbox_t *ob = gw->outbox;

	if (!ob || ob->stopped || !gw->ctx || ob->kicked)
		return;
	ob->kicked = 1;
	/* At the next timer check: answers of this iteration are committed
	 * together, and new calls start from a later iteration. */
	lws_sul_schedule(gw->ctx, 0, &ob->timer, on_timer, 1);
}

typedef struct load_ctx {
	gw_worker_t **loops;
	unsigned n, next;
} load_ctx_t;

static void load_one(const char *id, size_t idlen, const void *val, size_t len, void *user)
{
	load_ctx_t *l = user;

	gw_outbox_adopt(l->loops[l->next++ % l->n]->outbox, id, idlen, val, len);
}

void gw_outbox_load(gw_worker_t **loops, unsigned n, gw_registry_t *reg)
{
	load_ctx_t l = { loops, n, 0 };
	gw_outbox_stats_t st;
	size_t adopted = 0, over = 0;

	gw_registry_outbox_foreach(reg, load_one, &l);
	for (unsigned i = 0; i < n; i++) {
		gw_outbox_commit(loops[i]->outbox); /* what did not decode */
		gw_outbox_stats(loops[i]->outbox, &st);
		adopted += st.adopted;
		over += st.overflowed;
	}
	if (adopted)
		gw_info("$disconnect outbox: %zu calls owed from an earlier run, sending them",
			adopted);
	if (over)
		gw_warn("$disconnect outbox: %zu more stored than it holds in memory; a later "
			"start sends them", over);
}
