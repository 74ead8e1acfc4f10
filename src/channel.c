/* Channels (channel.h): a per-loop index of channel -> members, and each
 * connection's list of memberships. A member is one allocation, linked
 * into both lists, owned by the index: freed when the connection leaves
 * the channel or closes; a channel is freed with its last member. */
#include "channel.h"
#include "cluster.h"
#include "connid.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

typedef struct chan {
	struct chan *next; /* the bucket's chain */
	uint64_t hash;
	lws_dll2_owner_t members;
	size_t len;
	char name[];
} chan_t;

typedef struct member {
	lws_dll2_t in_chan; /* chan->members */
	lws_dll2_t in_conn; /* gw_conn_channels(conn) */
	gw_conn_t *conn;
	chan_t *chan;
} member_t;

struct gw_chan_index {
	chan_t **buckets;
	size_t n_buckets; /* a power of two */
	size_t n_chans;
	uint64_t skips;  /* skipped deliveries on this loop, all time */
	uint64_t logged; /* skips already mentioned in the log */
};

static struct gw_chan_index *index_of(gw_worker_t *gw)
{
	if (!gw->chans) {
		gw->chans = calloc(1, sizeof(*gw->chans));
		if (!gw->chans)
			abort();
		gw->chans->n_buckets = 64;
		gw->chans->buckets = calloc(64, sizeof(chan_t *));
		if (!gw->chans->buckets)
			abort();
	}
	return gw->chans;
}

static chan_t *find(gw_worker_t *gw, const char *name, size_t len)
{
	uint64_t h;

	if (!gw->chans)
		return NULL;
	h = gw_chan_hash(name, len);
	for (chan_t *c = gw->chans->buckets[h & (gw->chans->n_buckets - 1)]; c; c = c->next)
		if (c->hash == h && c->len == len && !memcmp(c->name, name, len))
			return c;
	return NULL;
}

static void grow(struct gw_chan_index *ix)
{
	size_t n = ix->n_buckets * 2;
	chan_t **b = calloc(n, sizeof(*b));

	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < ix->n_buckets; i++)
		while (ix->buckets[i]) {
			chan_t *c = ix->buckets[i];

			ix->buckets[i] = c->next;
			c->next = b[c->hash & (n - 1)];
			b[c->hash & (n - 1)] = c;
		}
	free(ix->buckets);
	ix->buckets = b;
	ix->n_buckets = n;
}

static chan_t *find_or_add(gw_worker_t *gw, const char *name, size_t len)
{
	struct gw_chan_index *ix = index_of(gw);
	chan_t *c = find(gw, name, len);

	if (c)
		return c;
	if (ix->n_chans >= ix->n_buckets)
		grow(ix);
	c = calloc(1, sizeof(*c) + len + 1);
	if (!c)
		abort();
	c->hash = gw_chan_hash(name, len);
	c->len = len;
	memcpy(c->name, name, len);
	c->next = ix->buckets[c->hash & (ix->n_buckets - 1)];
	ix->buckets[c->hash & (ix->n_buckets - 1)] = c;
	ix->n_chans++;
	/* In a cluster, the node now wants this channel's publishes. */
	gw_cluster_chan_interest(name, len, +1);
	return c;
}

static void chan_remove(gw_worker_t *gw, chan_t *c)
{
	struct gw_chan_index *ix = gw->chans;
	chan_t **pp = &ix->buckets[c->hash & (ix->n_buckets - 1)];

	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	ix->n_chans--;
	gw_cluster_chan_interest(c->name, c->len, -1);
	free(c);
}

static member_t *membership(gw_conn_t *conn, const char *name, size_t len)
{
	lws_start_foreach_dll(struct lws_dll2 *, d, gw_conn_channels(conn)->head) {
		member_t *m = lws_container_of(d, member_t, in_conn);

		if (m->chan->len == len && !memcmp(m->chan->name, name, len))
			return m;
	} lws_end_foreach_dll(d);
	return NULL;
}

int gw_chan_is_member(gw_conn_t *conn, const char *name, size_t len)
{
	return membership(conn, name, len) != NULL;
}

int gw_chan_join(gw_worker_t *gw, gw_conn_t *conn, const char *name, size_t len)
{
	member_t *m;

	if (!gw_chan_name_valid(name, len))
		return GW_CHAN_BAD_NAME;
	if (membership(conn, name, len))
		return GW_CHAN_OK;
	if (gw_conn_channels(conn)->count >= GW_CHAN_PER_CONN)
		return GW_CHAN_TOO_MANY;
	m = calloc(1, sizeof(*m));
	if (!m)
		abort();
	m->conn = conn;
	m->chan = find_or_add(gw, name, len);
	lws_dll2_add_tail(&m->in_chan, &m->chan->members);
	lws_dll2_add_tail(&m->in_conn, gw_conn_channels(conn));
	return GW_CHAN_OK;
}

static void member_free(gw_worker_t *gw, member_t *m)
{
	chan_t *c = m->chan;

	lws_dll2_remove(&m->in_chan);
	lws_dll2_remove(&m->in_conn);
	free(m);
	if (!c->members.count)
		chan_remove(gw, c);
}

int gw_chan_leave(gw_worker_t *gw, gw_conn_t *conn, const char *name, size_t len)
{
	member_t *m;

	if (!gw_chan_name_valid(name, len))
		return GW_CHAN_BAD_NAME;
	m = membership(conn, name, len);
	if (m)
		member_free(gw, m);
	return GW_CHAN_OK;
}

void gw_chan_leave_all(gw_worker_t *gw, gw_conn_t *conn)
{
	lws_dll2_owner_t *own = gw_conn_channels(conn);

	while (own->head)
		member_free(gw, lws_container_of(own->head, member_t, in_conn));
}

const char *gw_chan_list_next(const char **list, size_t *len)
{
	const char *p = *list;

	while (p && *p) {
		const char *e = strchr(p, ','), *end = e ? e : p + strlen(p);

		*list = e ? e + 1 : NULL;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end > p) {
			*len = (size_t)(end - p);
			return p;
		}
		p = *list;
	}
	*list = NULL;
	return NULL;
}

/* One list: names separated by commas, blanks around them ignored. For
 * joins, 1 when one of them waits for this node's subscription (cluster.h). */
static int apply_list(gw_worker_t *gw, gw_conn_t *conn, const char *list, int join)
{
	const char *p;
	size_t n, read = 0;
	int unconfirmed = 0;

	while ((p = gw_chan_list_next(&list, &n))) {
		int rc;

		if (read++ == GW_CHAN_PER_ANSWER) {
			/* (two formats: each kind has its own rate limit) */
			if (join)
				gw_log_limited(GW_LOG_WARN, 10000, "connection %s: integration "
					       "answer names more than %d channels to join: the "
					       "rest are ignored", gw_conn_id(conn),
					       GW_CHAN_PER_ANSWER);
			else
				gw_log_limited(GW_LOG_WARN, 10000, "connection %s: integration "
					       "answer names more than %d channels to leave: the "
					       "rest are ignored", gw_conn_id(conn),
					       GW_CHAN_PER_ANSWER);
			break;
		}
		rc = join ? gw_chan_join(gw, conn, p, n) : gw_chan_leave(gw, conn, p, n);

		if (rc)
			gw_log_limited(GW_LOG_WARN, 10000, "connection %s: integration "
				       "asked to %s channel \"%.*s\": %s", gw_conn_id(conn),
				       join ? "join" : "leave", (int)(n > 64 ? 64 : n), p,
				       rc == GW_CHAN_BAD_NAME ? "not a valid name" :
				       "too many channels");
		else if (join && !unconfirmed)
			unconfirmed = gw_cluster_chan_unconfirmed(p, n);
	}
	return unconfirmed;
}

int gw_chan_apply(gw_worker_t *gw, gw_conn_t *conn, const char *subscribe,
		  const char *unsubscribe)
{
	apply_list(gw, conn, unsubscribe, 0);
	return apply_list(gw, conn, subscribe, 1);
}

size_t gw_chan_count(gw_worker_t *gw, const char *name, size_t len,
		     const gw_api_mask_t *apis)
{
	chan_t *c = find(gw, name, len);
	size_t n = 0;

	if (!c)
		return 0;
	lws_start_foreach_dll(struct lws_dll2 *, d, c->members.head) {
		member_t *m = lws_container_of(d, member_t, in_chan);

		n += gw_api_mask_has(apis, gw_conn_api(m->conn)->id) != 0;
	} lws_end_foreach_dll(d);
	return n;
}

/* One delivery: 1 queued, 0 skipped (the queue is full, or the message
 * is over the member's API limit), -1 the connection is closing. */
static int deliver(gw_worker_t *gw, gw_conn_t *conn, gw_payload_t *p, int binary)
{
	switch (gw_conn_send(conn, p, binary)) {
	case GW_POST_OK:
		return 1;
	case GW_POST_GONE:
		return -1;
	default:
		(*gw_conn_chan_skips(conn))++;
		index_of(gw)->skips++;
		return 0;
	}
}

/* Skips are logged as a sum, at most every 10 s per loop. */
static void log_skips(gw_worker_t *gw, const char *what)
{
	struct gw_chan_index *ix = gw->chans;

	if (!ix || ix->skips == ix->logged)
		return;
	gw_log_limited(GW_LOG_WARN, 10000, "%s: %llu deliveries skipped on this loop so far: "
		       "the members' outgoing queues were full", what,
		       (unsigned long long)ix->skips);
	ix->logged = ix->skips;
}

void gw_chan_publish(gw_worker_t *gw, const char *name, size_t len, const void *data,
		     size_t dlen, int binary, const gw_api_mask_t *apis, size_t *queued,
		     size_t *skipped)
{
	chan_t *c = find(gw, name, len);
	gw_payload_t *p;

	if (!c)
		return;
	/* One copy for the loop's members, each queue holding a reference. */
	p = gw_payload_create(data, dlen);
	lws_start_foreach_dll(struct lws_dll2 *, d, c->members.head) {
		member_t *m = lws_container_of(d, member_t, in_chan);

		/* (no continue inside lws_start_foreach_dll: it skips the step) */
		if (gw_api_mask_has(apis, gw_conn_api(m->conn)->id)) {
			int rc = deliver(gw, m->conn, p, binary);

			*queued += rc > 0;
			*skipped += rc == 0;
		}
	} lws_end_foreach_dll(d);
	gw_payload_unref(p);
	if (*skipped)
		log_skips(gw, "channel publish");
}

void gw_chan_broadcast(gw_worker_t *gw, const void *data, size_t dlen, int binary,
		       const gw_api_mask_t *apis, size_t *queued, size_t *skipped)
{
	gw_payload_t *p = gw_payload_create(data, dlen);

	for (uint32_t i = 0; i < gw_conn_slots(gw); i++) {
		gw_conn_t *conn = gw_conn_at_slot(gw, i);
		int rc;

		if (!conn || !gw_conn_is_open(conn) ||
		    !gw_api_mask_has(apis, gw_conn_api(conn)->id))
			continue;
		rc = deliver(gw, conn, p, binary);
		*queued += rc > 0;
		*skipped += rc == 0;
	}
	gw_payload_unref(p);
	if (*skipped)
		log_skips(gw, "broadcast");
}

size_t gw_chan_list(gw_worker_t *gw, const char *name, size_t len,
		    const gw_api_mask_t *apis, uint32_t *cursor, uint32_t limit, size_t max_bytes,
		    int *cut, gw_buf_t *out)
{
	size_t n = 0, start = out->len;
	uint32_t i;

	*cut = 0;
	for (i = *cursor; i < gw_conn_slots(gw) && n < limit; i++) {
		gw_conn_t *conn = gw_conn_at_slot(gw, i);
		size_t mark = out->len;
		char num[32];

		if (!conn || !gw_conn_is_open(conn) ||
		    !gw_api_mask_has(apis, gw_conn_api(conn)->id) ||
		    (name && !gw_chan_is_member(conn, name, len)))
			continue;
		if (n)
			gw_buf_append_char(out, ',');
		gw_buf_append_str(out, "{\"connectionId\":\"");
		gw_buf_append_str(out, gw_conn_id(conn));
		snprintf(num, sizeof(num), "\",\"channelSkips\":%llu,",
			 (unsigned long long)*gw_conn_chan_skips(conn));
		gw_buf_append_str(out, num);
		gw_buf_append_str(out, "\"channels\":[");
		lws_start_foreach_dll(struct lws_dll2 *, d, gw_conn_channels(conn)->head) {
			member_t *m = lws_container_of(d, member_t, in_conn);

			if (d != gw_conn_channels(conn)->head)
				gw_buf_append_char(out, ',');
			gw_buf_append_json_str(out, m->chan->name, m->chan->len);
		} lws_end_foreach_dll(d);
		gw_buf_append_str(out, "],");
		{
			size_t rec = out->len;

			if (gw_conn_json(gw, conn, gw_conn_id(conn), out)) {
				out->len = mark; /* no record (yet): left out */
				continue;
			}
			/* The record's own braces: its fields join this object. */
			memmove(out->data + rec, out->data + rec + 1, out->len - rec - 1);
			out->len--;
		}
		/* Over the page's bytes: this one starts the next page (a page
		 * holds at least one, so a listing always moves on). */
		if (n && out->len - start > max_bytes) {
			out->len = mark;
			*cut = 1;
			break;
		}
		n++;
	}
	*cursor = i;
	return n;
}

void gw_chan_index_free(gw_worker_t *gw)
{
	struct gw_chan_index *ix = gw->chans;

	if (!ix)
		return;
	/* Connections leave their channels as they close; anything left
	 * belongs to none. */
	for (size_t i = 0; i < ix->n_buckets; i++)
		while (ix->buckets[i]) {
			chan_t *c = ix->buckets[i];

			ix->buckets[i] = c->next;
			while (c->members.head) {
				member_t *m = lws_container_of(c->members.head, member_t, in_chan);

				lws_dll2_remove(&m->in_chan);
				lws_dll2_remove(&m->in_conn);
				free(m);
			}
			free(c);
		}
	free(ix->buckets);
	free(ix);
	gw->chans = NULL;
}

const gw_conn_chan_hooks_t gw_chan_conn_hooks = { gw_chan_apply, gw_chan_leave_all };
