/* The management API: AWS's @connections endpoint (PostToConnection,
 * GetConnection, DeleteConnection), wire-compatible with the AWS SDKs.
 *
 * This file only translates: an HTTP request becomes an operation (bus.h)
 * sent to the loop that owns the connection, which its ID names (connid.h);
 * the operation's result, answered by callback on this loop, becomes the
 * HTTP answer, matched to the waiting request by a token. A malformed,
 * forged or stale ID is answered 410 without any lookup; the registry is
 * not read on this path (GET reads it on the owner's loop). A POST to a
 * connection whose $connect is still running waits until the handshake is
 * decided: 200 or 410.
 *
 * What a caller cannot do: reach a connection through another API's stage
 * (403), send a body whose length is not declared up front (411: the
 * framing of what follows would be a guess), take more than
 * BODY_DEADLINE_S to send a body (408), or upgrade the listener to
 * WebSocket or h2c (400). Each of those answers closes the connection.
 *
 * With managementAuth (every API file has one, config.h), each request is
 * signed with SigV4 as the AWS SDKs and CLI sign it (sigv4.h): the head is
 * checked as it arrives (no signature, a malformed one or a stale date:
 * 403 before any body is read), the signature once the body is complete,
 * against the keys of the API the connection ID names. A key reaches its
 * own API's connections only. No secret is ever logged or answered. */
#include "bus.h"
#include "channel.h"
#include "cluster.h"
#include "httpreq.h"
#include "log.h"
#include "sigv4.h"
#include "accesslog.h"
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* The largest maxMessageBytes a configuration may set. */
#define BODY_LIMIT ((size_t)16 << 20)
/* From the request head to the body's last byte. */
#define BODY_DEADLINE_S 10
/* SigV4's allowed clock skew, either way (AWS's 15 minutes). */
#define SIGV4_SKEW_S (15 * 60)

/* The request's method, as an operation (OP_NONE: none that we serve). */
enum op { OP_NONE = 0, OP_POST = GW_OP_POST, OP_GET = GW_OP_GET, OP_DELETE = GW_OP_DELETE,
	  OP_PUT };

/* What the path names: R_CONN is AWS's @connections/{id}; the others are
 * channels, batch, broadcast and listing (see "channels" below). */
enum route { R_NONE = 0, R_CONN, R_CONNS, R_MEMBER, R_CHAN, R_BROADCAST };

struct mgmt_pss {
	gw_worker_t *gw;
	struct lws *wsi;
	enum op op;
	char id[128];
	size_t id_len;
	char stage[132]; /* "" when the path has no stage prefix */
	gw_buf_t body;
	size_t body_max; /* what this request's body may hold */
	int too_large;
	int bad_path;
	int started;
	int bodies_done; /* BODY_COMPLETION calls for this request */
	int close_after; /* the answer ends the connection */
	int closing;     /* answered; close once it is flushed */
	int rx_held;     /* reading stopped until the answer (on_request) */
	lws_sorted_usec_list_t body_timer;
	/* the answer, written when the socket is writable */
	int ready;
	int status;
	const char *error_type;
	gw_buf_t out;
	char request_id[24];
	uint64_t token;
	lws_dll2_t pending; /* gw->mgmt->pending, while an operation runs */
	gw_sigv4_t sig;     /* with managementAuth: the head, checked */
	/* channels, batch, broadcast, listing: one request, several
	 * operations whose results are added up here */
	enum route route;
	char chan[GW_CHAN_NAME_MAX + 4];
	size_t chan_len;
	gw_api_mask_t apis;
	size_t fan_left;
	uint64_t fan_count, fan_skipped;
	gw_buf_t fan_out, fan_failed;
	uint32_t list_loop, list_limit;
	uint32_t list_node; /* in a cluster: the node being listed (cluster.h) */
	int list_done;      /* no node or loop left: the cursor is null */
	const char *ctype;  /* the answer's type when not JSON (/metrics) */
	int metrics;        /* GET /metrics */
	int admin;          /* GET /admin/ (a page's file) or /@apis */
	const gw_admin_file_t *admin_file; /* the file being served */
};

/* One loop's management requests waiting for an operation's result. */
struct gw_mgmt_ctx {
	lws_dll2_owner_t pending; /* mgmt_pss.pending */
	uint64_t tokens;          /* the last token given on this loop */
};

gw_mgmt_ctx_t *gw_mgmt_ctx_create(void)
{
	return calloc(1, sizeof(gw_mgmt_ctx_t));
}

/* After the lws context: its requests are gone, and the list with them. */
void gw_mgmt_ctx_destroy(gw_mgmt_ctx_t *m)
{
	free(m);
}

static void set_answer(struct mgmt_pss *pss, int status, const char *error_type,
		       const char *message)
{
	pss->ready = 1;
	pss->status = status;
	pss->error_type = error_type;
	gw_buf_reset(&pss->out);
	if (message) {
		gw_buf_append_str(&pss->out, "{\"message\":");
		gw_buf_append_json_str(&pss->out, message, strlen(message));
		gw_buf_append_char(&pss->out, '}');
	}
	/* libwebsockets 4.1 offers no WRITEABLE to an HTTP connection whose
	 * reading is stopped (and turns the loop on its POLLOUT meanwhile). */
	if (pss->rx_held) {
		pss->rx_held = 0;
		lws_rx_flow_control(pss->wsi, 1);
	}
	lws_callback_on_writable(pss->wsi);
}

/* On this loop, with the operation's result: answer the HTTP request
 * still waiting for it, if any (it may have hung up meanwhile). */
static void on_done(gw_worker_t *gw, gw_op_t *op)
{
	lws_start_foreach_dll(struct lws_dll2 *, d, gw->mgmt->pending.head) {
		struct mgmt_pss *pss = lws_container_of(d, struct mgmt_pss, pending);

		if (pss->token == op->token) {
			lws_dll2_remove(&pss->pending);
			set_answer(pss, op->status, op->error_type, op->message);
			if (op->data.len) {
				gw_buf_reset(&pss->out);
				gw_buf_append(&pss->out, op->data.data, op->data.len);
			}
			break;
		}
	} lws_end_foreach_dll(d);
	gw_op_destroy(op);
}

void gw_mgmt_free_message(lws_dll2_t *node)
{
	gw_bus_free_message(node);
}

/* As on AWS, a stage only reaches its own API's connections. The ID
 * names the API; past 255 APIs it cannot, and the registry tells. */
static int stage_allowed(gw_worker_t *gw, const char *stage, const gw_op_t *op)
{
	gw_conn_record_t rec;

	if (!stage[0])
		return 1;
	/* The ID's API number is stable across reloads (config.h). */
	if (op->target.api != GW_CONNID_API_MANY)
		return gw_config_api_stage(op->target.api) &&
		       !strcmp(stage, gw_config_api_stage(op->target.api));
	return gw_registry_get(gw->reg, op->id, strlen(op->id), &rec) == GW_REG_OK &&
	       !strcmp(stage, rec.stage);
}

/* --- SigV4 (managementAuth) --- */

static void answer_and_close(struct mgmt_pss *pss, int status, const char *type,
			     const char *message);

/* A header of the request being answered, by its lowercase name. */
static int lws_header(void *user, const char *name, gw_buf_t *out)
{
	struct lws *wsi = user;
	size_t n = strlen(name);
	char key[136];
	int len;

	if (n + 2 > sizeof(key))
		return -1;
	for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
		const char *s = (const char *)lws_token_to_string((enum lws_token_indexes)t);

		if (!s || strncmp(s, name, n) || s[n] != ':' || s[n + 1])
			continue;
		len = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
		if (len <= 0)
			return -1;
		gw_buf_reserve(out, (size_t)len + 1);
		if (lws_hdr_copy(wsi, out->data + out->len, len + 1,
				 (enum lws_token_indexes)t) != len)
			return -1;
		out->len += (size_t)len;
		return 0;
	}
	memcpy(key, name, n);
	key[n] = ':';
	key[n + 1] = '\0';
	len = lws_hdr_custom_length(wsi, key, (int)n + 1);
	if (len < 0)
		return -1;
	gw_buf_reserve(out, (size_t)len + 1);
	if (lws_hdr_custom_copy(wsi, out->data + out->len, len + 1, key, (int)n + 1) != len)
		return -1;
	out->len += (size_t)len;
	return 0;
}

static const char *const method_names[] = { [OP_POST] = "POST", [OP_GET] = "GET",
					    [OP_DELETE] = "DELETE", [OP_PUT] = "PUT" };

static void refuse_auth(struct mgmt_pss *pss, enum gw_sigv4_status st, const char *why)
{
	const char *type = st == GW_SIGV4_MISSING ? "ForbiddenException" :
			   st == GW_SIGV4_INCOMPLETE ? "IncompleteSignatureException" :
						       "InvalidSignatureException";

	gw_log_limited(GW_LOG_WARN, 10000, "management %s: 403 %s: %s", pss->request_id, type,
		       why);
	answer_and_close(pss, 403, type, why);
}

/* The head of a signed request: header syntax, scope and clock. 0 to go
 * on, -1 when the request has been answered (403). */
static int check_head(struct lws *wsi, struct mgmt_pss *pss, const char *uri, size_t len)
{
	gw_str_t args[32];
	char frags[32][256], why[400];
	size_t n_args = 0;
	enum gw_sigv4_status st;
	gw_sigv4_request_t req = { method_names[pss->op], uri, len, args, 0, lws_header, wsi };

	while (n_args < 32) {
		int n = lws_hdr_copy_fragment(wsi, frags[n_args], sizeof(frags[0]),
					      WSI_TOKEN_HTTP_URI_ARGS, (int)n_args);

		if (n < 0)
			break;
		args[n_args].ptr = frags[n_args];
		args[n_args].len = (size_t)n;
		n_args++;
	}
	/* One that does not fit (too long, or past the 32nd) would be left
	 * out of the check and still read by the request: refused. */
	if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, (int)n_args) > 0) {
		refuse_auth(pss, GW_SIGV4_MISMATCH, "at most 32 query arguments of at most 255 "
			    "bytes each are signed");
		return -1;
	}
	req.n_query = n_args;
	gw_sigv4_dispose(&pss->sig);
	gw_sigv4_init(&pss->sig);
	st = gw_sigv4_begin(&pss->sig, &req, "execute-api", (int64_t)(gw_wall_ms() / 1000),
			    SIGV4_SKEW_S, why, sizeof(why));
	if (st == GW_SIGV4_OK)
		return 0;
	refuse_auth(pss, st, why);
	return -1;
}

/* The signature, under the keys of api (the one the connection ID names),
 * or of any API serving the path's stage when the ID names none. 0 when it
 * holds; otherwise the request has been answered (403). */
static int check_signature(struct mgmt_pss *pss, const gw_api_t *api)
{
	const gw_config_t *cfg = pss->gw->cfg;
	const gw_mgmt_key_t *key = NULL;
	enum gw_sigv4_status st = GW_SIGV4_MISMATCH;
	char why[400] = "";

	for (size_t i = 0; i < cfg->n_apis && st; i++) {
		const gw_api_t *a = api ? api : &cfg->apis[i];
		const gw_mgmt_key_t *k;

		/* A known API is checked against the path's stage afterwards
		 * (403 ForbiddenException); otherwise the stage narrows the keys. */
		if ((api && i) || (!api && pss->stage[0] && strcmp(a->stage, pss->stage)) ||
		    !(k = gw_config_mgmt_key(a, pss->sig.access_key)))
			continue;
		key = k;
		if (!gw_config_mgmt_key_region(k, pss->sig.region)) {
			snprintf(why, sizeof(why), "Credential should be scoped to a valid "
				 "region, not '%s'.", pss->sig.region);
			continue;
		}
		st = gw_sigv4_finish(&pss->sig, k->secret, k->secret_len, pss->body.data,
				     pss->body.len, why, sizeof(why));
	}
	if (!st)
		return 0;
	if (!key) {
		gw_log_limited(GW_LOG_WARN, 10000, "management %s: 403 "
			       "UnrecognizedClientException: access key %s is not a key of "
			       "this connection's API", pss->request_id, pss->sig.access_key);
		set_answer(pss, 403, "UnrecognizedClientException",
			   "The security token included in the request is invalid.");
		return -1;
	}
	refuse_auth(pss, GW_SIGV4_MISMATCH, why);
	pss->close_after = 0; /* the body has been read: the connection can stay */
	return -1;
}

/* The API whose keys sign for op's connection: the one its ID names, or
 * for IDs past 255 APIs the registry's; NULL when nothing says. */
static const gw_api_t *connection_api(gw_worker_t *gw, const gw_op_t *op)
{
	gw_conn_record_t rec;

	if (!op)
		return NULL;
	/* The ID's API number is gw_api_t.id (stable across reloads), not an
	 * index: an API a reload removed has none here. */
	if (op->target.api != GW_CONNID_API_MANY) {
		for (size_t i = 0; i < gw->cfg->n_apis; i++)
			if (gw->cfg->apis[i].id == op->target.api)
				return &gw->cfg->apis[i];
		return NULL;
	}
	if (gw_registry_get(gw->reg, op->id, strlen(op->id), &rec) != GW_REG_OK)
		return NULL;
	for (size_t i = 0; i < gw->cfg->n_apis; i++)
		if (!strcmp(gw->cfg->apis[i].name, rec.api) &&
		    !strcmp(gw->cfg->apis[i].stage, rec.stage))
			return &gw->cfg->apis[i];
	return NULL;
}

/* --- channels, batch post, broadcast, listing ---
 *
 *   PUT|DELETE /@connections/{id}/channels/{channel}   join, leave: 204
 *   POST /@channels/{channel}   publish: {"queued":N,"skipped":M}
 *   GET  /@channels/{channel}   {"channel":"...","members":N}
 *   POST /@connections          {"connectionIds":[...],"data":"..."}
 *   POST /@broadcast            every open connection
 *   GET  /@connections?limit=&cursor=&channel=   {"items":[...],"cursor":...}
 * each with an optional /{stage} prefix, which narrows what they reach to
 * that stage's connections. With managementAuth, a key reaches the
 * connections of the APIs it is a key of. A publish, a count, a broadcast
 * is one operation per loop; a listing visits the loops in turn. */

#define BATCH_MAX_IDS 1000
#define LIST_DEFAULT 100
#define LIST_MAX 1000

/* "/@connections", "/@connections/{id}/channels/{channel}",
 * "/@channels/{channel}", "/@broadcast", after an optional "/{stage}".
 * A channel's name is checked later (400, not 403). */
static enum route parse_ext_path(struct mgmt_pss *pss, const char *uri, size_t len)
{
	static const char conns[] = "/@connections", chans[] = "/@channels/",
			  member[] = "/channels/", bcast[] = "/@broadcast";
	const char *end = uri + len, *p = uri, *name = NULL;
	enum route r = R_NONE;
	size_t n;

	pss->stage[0] = '\0';
	pss->id_len = 0;
	pss->chan_len = 0;
	if (!len || uri[0] != '/' || memchr(uri, '\0', len))
		return R_NONE;
	if (len > 1 && uri[1] != '@') {
		const char *slash = memchr(uri + 1, '/', len - 1);

		if (!slash || (size_t)(slash - uri - 1) >= sizeof(pss->stage) || slash == uri + 1)
			return R_NONE;
		memcpy(pss->stage, uri + 1, (size_t)(slash - uri - 1));
		pss->stage[slash - uri - 1] = '\0';
		p = slash;
	}
	n = (size_t)(end - p);
#define IS(lit) (n == sizeof(lit) - 1 && !memcmp(p, lit, n))
#define STARTS(lit) (n > sizeof(lit) - 1 && !memcmp(p, lit, sizeof(lit) - 1))
	if (IS(conns)) {
		r = R_CONNS;
	} else if (IS(bcast)) {
		r = R_BROADCAST;
	} else if (STARTS(chans)) {
		r = R_CHAN;
		name = p + sizeof(chans) - 1;
	} else if (n > sizeof(conns) && !memcmp(p, conns, sizeof(conns) - 1) &&
		   p[sizeof(conns) - 1] == '/') {
		const char *id = p + sizeof(conns), *slash = memchr(id, '/', (size_t)(end - id));

		if (!slash || slash == id || (size_t)(slash - id) >= sizeof(pss->id) ||
		    (size_t)(end - slash) <= sizeof(member) - 1 ||
		    memcmp(slash, member, sizeof(member) - 1))
			return R_NONE;
		pss->id_len = (size_t)(slash - id);
		memcpy(pss->id, id, pss->id_len);
		pss->id[pss->id_len] = '\0';
		r = R_MEMBER;
		name = slash + sizeof(member) - 1;
	}
#undef IS
#undef STARTS
	if (name) {
		/* Too long or with a '/': kept as an invalid name (400). */
		size_t nl = (size_t)(end - name);

		pss->chan_len = nl < sizeof(pss->chan) - 1 ? nl : sizeof(pss->chan) - 1;
		memcpy(pss->chan, name, pss->chan_len);
		pss->chan[pss->chan_len] = '\0';
	}
	return r;
}

static int method_allowed(const struct mgmt_pss *pss)
{
	switch (pss->route) {
	case R_CONN:
		return pss->op != OP_PUT;
	case R_CONNS:
	case R_CHAN:
		return pss->op == OP_POST || pss->op == OP_GET;
	case R_MEMBER:
		return pss->op == OP_PUT || pss->op == OP_DELETE;
	case R_BROADCAST:
		return pss->op == OP_POST;
	default:
		return 0;
	}
}

/* Which APIs' connections this request reaches: its stage's, and with
 * managementAuth those of the APIs whose key signed it. 0, or -1 when it
 * has been answered (403). */
static int reach(struct mgmt_pss *pss)
{
	const gw_config_t *cfg = pss->gw->cfg;

	memset(&pss->apis, 0, sizeof(pss->apis));
	if (gw_config_mgmt_auth(cfg)) {
		if (check_signature(pss, NULL))
			return -1;
		/* APIs past the ID table share one number (GW_CONFIG_API_ID_NONE):
		 * a key of one of them must not reach the others' members. */
		for (size_t i = 0; i < cfg->n_apis; i++)
			if (gw_config_mgmt_key(&cfg->apis[i], pss->sig.access_key) &&
			    (!pss->stage[0] || !strcmp(cfg->apis[i].stage, pss->stage)) &&
			    cfg->apis[i].id != GW_CONFIG_API_ID_NONE)
				gw_api_mask_set(&pss->apis, cfg->apis[i].id);
		return 0;
	}
	for (unsigned id = 0; id < 256; id++) {
		const char *st = id < GW_CONNID_API_MANY ? gw_config_api_stage(id) : NULL;

		/* Past 255 APIs an ID names none: only reached without a stage. */
		if (!pss->stage[0] || (st && !strcmp(st, pss->stage)))
			gw_api_mask_set(&pss->apis, id);
	}
	return 0;
}

static void bad_request(struct mgmt_pss *pss, const char *message)
{
	set_answer(pss, 400, "BadRequestException", message);
}

static struct mgmt_pss *pending_by_token(gw_worker_t *gw, uint64_t token)
{
	lws_start_foreach_dll(struct lws_dll2 *, d, gw->mgmt->pending.head) {
		struct mgmt_pss *pss = lws_container_of(d, struct mgmt_pss, pending);

		if (pss->token == token)
			return pss;
	} lws_end_foreach_dll(d);
	return NULL;
}

static void on_fan_done(gw_worker_t *gw, gw_op_t *op);

/* An operation of this request, counted in fan_left. */
static void fan_send(struct mgmt_pss *pss, gw_op_t *op)
{
	op->token = pss->token;
	op->done = on_fan_done;
	op->apis = pss->apis;
	memcpy(op->channel, pss->chan, pss->chan_len);
	op->channel[pss->chan_len] = '\0';
	pss->fan_left++;
	gw_bus_send(pss->gw, op);
}

static void fan_begin(struct mgmt_pss *pss)
{
	pss->token = ++pss->gw->mgmt->tokens;
	pss->fan_left = 1; /* held until every operation is sent */
	pss->fan_count = pss->fan_skipped = 0;
	gw_buf_reset(&pss->fan_out);
	gw_buf_reset(&pss->fan_failed);
	lws_dll2_add_tail(&pss->pending, &pss->gw->mgmt->pending);
}

static void fan_answer(struct mgmt_pss *pss)
{
	char num[96];

	lws_dll2_remove(&pss->pending);
	set_answer(pss, 200, NULL, NULL);
	switch (pss->route) {
	case R_CHAN:
		if (pss->op == OP_GET) {
			gw_buf_append_str(&pss->out, "{\"channel\":");
			gw_buf_append_json_str(&pss->out, pss->chan, pss->chan_len);
			snprintf(num, sizeof(num), ",\"members\":%llu}",
				 (unsigned long long)pss->fan_count);
			gw_buf_append_str(&pss->out, num);
			break;
		}
		/* fall through */
	case R_BROADCAST:
		snprintf(num, sizeof(num), "{\"queued\":%llu,\"skipped\":%llu}",
			 (unsigned long long)pss->fan_count, (unsigned long long)pss->fan_skipped);
		gw_buf_append_str(&pss->out, num);
		break;
	case R_CONNS:
		if (pss->op == OP_GET) {
			gw_buf_append_str(&pss->out, "{\"items\":[");
			gw_buf_append(&pss->out, pss->fan_out.data, pss->fan_out.len);
			gw_buf_append_str(&pss->out, "],\"cursor\":");
			if (!pss->list_done && gw_cluster_self()) {
				snprintf(num, sizeof(num), "\"%02x%02x%06x\"}", pss->list_node,
					 pss->list_loop, (unsigned)(pss->fan_skipped & 0xffffff));
				gw_buf_append_str(&pss->out, num);
			} else if (!pss->list_done) {
				snprintf(num, sizeof(num), "\"%02x%06x\"}", pss->list_loop,
					 (unsigned)(pss->fan_skipped & 0xffffff));
				gw_buf_append_str(&pss->out, num);
			} else {
				gw_buf_append_str(&pss->out, "null}");
			}
			break;
		}
		snprintf(num, sizeof(num), "{\"posted\":%llu,\"gone\":[",
			 (unsigned long long)pss->fan_count);
		gw_buf_append_str(&pss->out, num);
		gw_buf_append(&pss->out, pss->fan_out.data, pss->fan_out.len);
		gw_buf_append_str(&pss->out, "],\"failed\":[");
		gw_buf_append(&pss->out, pss->fan_failed.data, pss->fan_failed.len);
		gw_buf_append_str(&pss->out, "]}");
		break;
	default:
		break;
	}
}

static void fan_end_one(struct mgmt_pss *pss)
{
	if (!--pss->fan_left)
		fan_answer(pss);
}

static void list_next(struct mgmt_pss *pss, uint32_t cursor)
{
	gw_op_t *op = gw_op_create_loop(GW_OP_LIST, pss->list_loop);

	if (gw_cluster_self())
		op->target.node = pss->list_node; /* another node's, over NATS */

	op->cursor = cursor;
	op->limit = pss->list_limit - (uint32_t)pss->fan_count;
	fan_send(pss, op);
}

/* A listing's page from one loop: the next loop's, until the page is full.
 * fan_skipped holds the slot the next page starts from. */
static void list_result(struct mgmt_pss *pss, gw_op_t *op)
{
	if (op->count && pss->fan_out.len)
		gw_buf_append_char(&pss->fan_out, ',');
	gw_buf_append(&pss->fan_out, op->data.data, op->data.len);
	pss->fan_count += op->count;
	/* Full, or cut short to fit a NATS message: this loop has more. */
	if (pss->fan_count >= pss->list_limit || (op->status == 200 && op->skipped)) {
		pss->fan_skipped = op->cursor;
		return;
	}
	/* This loop has no more: on to the next. */
	pss->list_loop++;
	pss->fan_skipped = 0;
	if (!gw_cluster_self()) {
		if (pss->list_loop < gw_gateway_workers(pss->gw->sh))
			list_next(pss, 0);
		else
			pss->list_done = 1;
		return;
	}
	/* In a cluster, node after node (ascending IDs): another node says
	 * 204 past its last loop, or 410 when it has gone. A loop is a byte
	 * on the wire: past 255, a node still saying 200 is left, not asked
	 * again for ever. */
	if (op->status == 200 && pss->list_loop < 256 &&
	    (pss->list_node != gw_cluster_self() ||
	     pss->list_loop < gw_gateway_workers(pss->gw->sh))) {
		list_next(pss, 0);
		return;
	}
	pss->list_node = gw_cluster_next_node(pss->list_node);
	pss->list_loop = 0;
	if (pss->list_node)
		list_next(pss, 0);
	else
		pss->list_done = 1;
}

static void on_fan_done(gw_worker_t *gw, gw_op_t *op)
{
	struct mgmt_pss *pss = pending_by_token(gw, op->token);
	char num[32];

	if (!pss)
		goto out; /* the caller hung up */
	switch (op->kind) {
	case GW_OP_LIST:
		list_result(pss, op);
		break;
	case GW_OP_POST:
		if (op->status == 200) {
			pss->fan_count++;
			break;
		}
		if (op->status == 410) {
			if (pss->fan_out.len)
				gw_buf_append_char(&pss->fan_out, ',');
			gw_buf_append_json_str(&pss->fan_out, op->id, strlen(op->id));
			break;
		}
		gw_buf_append_str(&pss->fan_failed, pss->fan_failed.len ? ",{" : "{");
		gw_buf_append_str(&pss->fan_failed, "\"connectionId\":");
		gw_buf_append_json_str(&pss->fan_failed, op->id, strlen(op->id));
		snprintf(num, sizeof(num), ",\"status\":%d}", op->status);
		gw_buf_append_str(&pss->fan_failed, num);
		break;
	default:
		pss->fan_count += op->count;
		pss->fan_skipped += op->skipped;
	}
	fan_end_one(pss);
out:
	gw_op_destroy(op);
}

/* The same message to every loop: one copy each. */
static void fan_to_loops(struct mgmt_pss *pss, enum gw_op_kind kind)
{
	int binary = !gw_utf8_valid((const unsigned char *)pss->body.data, pss->body.len);

	fan_begin(pss);
	for (uint32_t i = 0; i < gw_gateway_workers(pss->gw->sh); i++) {
		gw_op_t *op = gw_op_create_loop(kind, i);

		op->binary = binary;
		if (kind != GW_OP_COUNT)
			gw_buf_append(&op->data, pss->body.data ? pss->body.data : "",
				      pss->body.len);
		fan_send(pss, op);
	}
	if (kind != GW_OP_COUNT) { /* and to the other nodes of a cluster */
		gw_cluster_fanout(kind, pss->chan, pss->chan_len, pss->body.data,
				  pss->body.len, binary, &pss->apis);
	} else {
		uint32_t peers[256];
		int n = gw_cluster_peers(peers, 256);

		for (int i = 0; i < n; i++) {
			gw_op_t *op = gw_op_create_loop(kind, 0);

			op->target.node = peers[i];
			fan_send(pss, op);
		}
	}
	fan_end_one(pss);
}

static int api_reached(struct mgmt_pss *pss, const gw_op_t *op)
{
	const gw_api_t *api;

	if (op->target.api != GW_CONNID_API_MANY)
		return gw_api_mask_has(&pss->apis, op->target.api);
	api = connection_api(pss->gw, op);
	return api && gw_api_mask_has(&pss->apis, api->id);
}

/* A batch body: *root (the caller's to free, also on error), its IDs (an
 * array of at most BATCH_MAX_IDS strings) and data (a string). NULL, or
 * why it is refused. */
static const char *parse_batch(const char *body, size_t len, json_t **root, json_t **ids,
			       json_t **data)
{
	json_error_t jerr;
	json_t *v;
	size_t i;

	*root = json_loadb(body ? body : "", len, 0, &jerr);
	*ids = json_object_get(*root, "connectionIds");
	*data = json_object_get(*root, "data");
	if (!json_is_array(*ids) || !json_is_string(*data))
		return "The body must be {\"connectionIds\": [...], \"data\": \"...\"}";
	if (json_array_size(*ids) > BATCH_MAX_IDS)
		return "At most 1000 connectionIds per request";
	json_array_foreach(*ids, i, v)
		if (!json_is_string(v))
			return "connectionIds must be strings";
	return NULL;
}

/* {"connectionIds": [...], "data": "..."}: one POST operation each. */
static void start_batch(struct mgmt_pss *pss)
{
	json_t *root, *ids, *data, *v;
	const char *why = parse_batch(pss->body.data, pss->body.len, &root, &ids, &data);
	size_t i;

	if (why) {
		bad_request(pss, why);
		goto out;
	}
	fan_begin(pss);
	json_array_foreach(ids, i, v) {
		const char *id = json_string_value(v);
		gw_op_t *op = gw_op_create(GW_OP_POST, id, json_string_length(v));

		if (op && !api_reached(pss, op)) {
			gw_buf_append_str(&pss->fan_failed, pss->fan_failed.len ? ",{" : "{");
			gw_buf_append_str(&pss->fan_failed, "\"connectionId\":");
			gw_buf_append_json_str(&pss->fan_failed, id, json_string_length(v));
			gw_buf_append_str(&pss->fan_failed, ",\"status\":403}");
			gw_op_destroy(op);
			continue;
		}
		if (!op) {
			/* Not an ID of this process: gone, without a trip. */
			if (pss->fan_out.len)
				gw_buf_append_char(&pss->fan_out, ',');
			gw_buf_append_json_str(&pss->fan_out, id, json_string_length(v));
			continue;
		}
		gw_buf_append(&op->data, json_string_value(data), json_string_length(data));
		fan_send(pss, op);
	}
	fan_end_one(pss);
out:
	json_decref(root);
}

/* One URL argument "name=value" of the request: its value, or NULL. The
 * scratch holds any argument whole: one too long for a fixed buffer was
 * taken for an absent one (an over-long channel listed every connection,
 * a long argument hid the ones after it). */
static const char *url_arg(struct mgmt_pss *pss, const char *name, gw_buf_t *scratch)
{
	int total = lws_hdr_total_length(pss->wsi, WSI_TOKEN_HTTP_URI_ARGS);
	size_t n = strlen(name);

	if (total <= 0)
		return NULL;
	gw_buf_reset(scratch);
	gw_buf_reserve(scratch, (size_t)total + 1);
	for (int i = 0; i < 256; i++) {
		char *buf = scratch->data;
		int len = lws_hdr_copy_fragment(pss->wsi, buf, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);

		if (len < 0)
			return NULL;
		if ((size_t)len > n && !strncmp(buf, name, n) && buf[n] == '=')
			return buf + n + 1;
	}
	return NULL;
}

/* A listing's cursor as fan_answer writes it: hex digits only (no sign,
 * blank or 0x, which strtoull would take), node (in a cluster), loop, slot.
 * 0, or -1 when it is not one. */
static int parse_cursor(const char *v, int cluster, uint32_t *node, uint32_t *loop,
			uint32_t *slot)
{
	size_t digits = cluster ? 10 : 8;
	uint64_t c = 0;

	if (strlen(v) != digits)
		return -1;
	for (size_t i = 0; i < digits; i++) {
		int x = gw_http_hexval((unsigned char)v[i]);

		if (x < 0)
			return -1;
		c = c << 4 | (uint64_t)x;
	}
	*node = cluster ? (uint32_t)(c >> 32) : 0;
	*loop = (uint32_t)(c >> 24) & 0xff;
	*slot = (uint32_t)c & 0xffffff;
	return 0;
}

static void start_list(struct mgmt_pss *pss)
{
	gw_buf_t buf;
	const char *v;
	unsigned long limit = LIST_DEFAULT, loop = 0, slot = 0;
	char *end;

	gw_buf_init(&buf);
	if ((v = url_arg(pss, "limit", &buf))) {
		limit = strtoul(v, &end, 10);
		if (!*v || *end || limit < 1 || limit > LIST_MAX) {
			bad_request(pss, "limit must be a number from 1 to 1000");
			goto out;
		}
	}
	pss->list_node = gw_cluster_next_node(0);
	pss->list_done = 0;
	if ((v = url_arg(pss, "cursor", &buf))) {
		uint32_t node, l, sl;
		int cluster = gw_cluster_self() != 0;

		if (parse_cursor(v, cluster, &node, &l, &sl) || (cluster && !node) ||
		    ((!cluster || node == gw_cluster_self()) && l >= gw_gateway_workers(pss->gw->sh))) {
			bad_request(pss, "Invalid cursor");
			goto out;
		}
		if (cluster)
			pss->list_node = node;
		loop = l;
		slot = sl;
	}
	if ((v = url_arg(pss, "channel", &buf))) {
		if (!gw_chan_name_valid(v, strlen(v))) {
			bad_request(pss, "Invalid channel name");
			goto out;
		}
		pss->chan_len = strlen(v);
		memcpy(pss->chan, v, pss->chan_len + 1);
	}
	fan_begin(pss);
	pss->list_loop = (uint32_t)loop;
	pss->list_limit = (uint32_t)limit;
	list_next(pss, (uint32_t)slot);
	fan_end_one(pss);
out:
	gw_buf_dispose(&buf);
}

/* PUT / DELETE /@connections/{id}/channels/{channel}: on the owner loop,
 * answered by on_done as the other operations on one connection. */
static void start_member(struct mgmt_pss *pss)
{
	gw_worker_t *gw = pss->gw;
	gw_op_t *op = gw_op_create(pss->op == OP_PUT ? GW_OP_JOIN : GW_OP_LEAVE, pss->id,
				   pss->id_len);

	if (gw_config_mgmt_auth(gw->cfg) && check_signature(pss, connection_api(gw, op)))
		goto fail;
	if (!gw_chan_name_valid(pss->chan, pss->chan_len)) {
		bad_request(pss, "Invalid channel name: 1 to 128 characters of A-Z a-z 0-9 . _ : -");
		goto fail;
	}
	if (!op) {
		set_answer(pss, 410, "GoneException", NULL);
		return;
	}
	if (!stage_allowed(gw, pss->stage, op)) {
		set_answer(pss, 403, "ForbiddenException", "Forbidden");
		goto fail;
	}
	memcpy(op->channel, pss->chan, pss->chan_len + 1);
	op->token = pss->token = ++gw->mgmt->tokens;
	op->done = on_done;
	lws_dll2_add_tail(&pss->pending, &gw->mgmt->pending);
	gw_bus_send(gw, op);
	return;
fail:
	gw_op_destroy(op);
}

static void start_ext(struct mgmt_pss *pss)
{
	if (pss->route == R_MEMBER) {
		start_member(pss);
		return;
	}
	if (reach(pss))
		return;
	if (pss->route == R_CHAN && !gw_chan_name_valid(pss->chan, pss->chan_len)) {
		bad_request(pss, "Invalid channel name: 1 to 128 characters of A-Z a-z 0-9 . _ : -");
		return;
	}
	switch (pss->route) {
	case R_CHAN:
		fan_to_loops(pss, pss->op == OP_GET ? GW_OP_COUNT : GW_OP_PUBLISH);
		break;
	case R_BROADCAST:
		fan_to_loops(pss, GW_OP_BROADCAST);
		break;
	case R_CONNS:
		if (pss->op == OP_GET)
			start_list(pss);
		else
			start_batch(pss);
		break;
	default:
		set_answer(pss, 405, "MethodNotAllowedException", "Method Not Allowed");
	}
}

/* Turns the request into an operation for the connection's loop. A
 * malformed, forged or stale ID is refused (410) without any lookup. */
static void start(struct mgmt_pss *pss)
{
	gw_worker_t *gw = pss->gw;
	gw_op_t *op;

	if (pss->started)
		return;
	pss->started = 1;
	if (pss->op == OP_POST && pss->too_large) {
		set_answer(pss, 413, "PayloadTooLargeException",
			   "Message is larger than the maximum message size");
		return;
	}
	if (pss->route != R_CONN) {
		start_ext(pss);
		return;
	}
	op = gw_op_create((enum gw_op_kind)pss->op, pss->id, pss->id_len);
	if (gw_config_mgmt_auth(gw->cfg) && check_signature(pss, connection_api(gw, op))) {
		gw_op_destroy(op);
		return;
	}
	if (!op) {
		set_answer(pss, 410, "GoneException", NULL);
		return;
	}
	if (!stage_allowed(gw, pss->stage, op)) {
		gw_op_destroy(op);
		set_answer(pss, 403, "ForbiddenException", "Forbidden");
		return;
	}
	op->token = pss->token = ++gw->mgmt->tokens;
	op->done = on_done;
	/* The body travels by swap, not by copy. */
	op->data = pss->body;
	gw_buf_init(&pss->body);
	lws_dll2_add_tail(&pss->pending, &gw->mgmt->pending);
	gw_bus_send(gw, op);
}

/* One access-log line (accesslog.h) per management call, in the log of
 * the API the connection ID names, or else of the path's stage. */
static void alog_mgmt(struct mgmt_pss *pss)
{
	const gw_config_t *cfg = pss->gw->cfg;
	const gw_api_t *api = NULL;
	gw_alog_ctx_t c;
	size_t i;
	gw_op_t *op;

	for (i = 0; i < cfg->n_apis && !cfg->apis[i].access_log; i++)
		;
	if (i == cfg->n_apis || pss->metrics || pss->admin)
		return; /* no API logs: nothing to look up */
	if (pss->id_len && (op = gw_op_create(GW_OP_GET, pss->id, pss->id_len))) {
		api = connection_api(pss->gw, op);
		gw_op_destroy(op);
	}
	for (i = 0; !api && pss->stage[0] && i < cfg->n_apis; i++)
		if (!strcmp(cfg->apis[i].stage, pss->stage))
			api = &cfg->apis[i];
	if (!api || !api->access_log)
		return;
	gw_alog_ctx_init(&c);
	c.api_name = api->name;
	c.stage = api->stage;
	c.request_id = pss->request_id;
	c.connection_id = pss->id_len ? pss->id : NULL;
	c.event_type = "MANAGEMENT";
	c.method = pss->op ? method_names[pss->op] : NULL;
	c.status = pss->status;
	c.error = pss->error_type;
	gw_alog_write(api->access_log, &c, pss->gw->metrics);
}

/* The admin page's answers: no framing by other sites, no sniffing, and
 * the page runs its own files only (admin/index.html has no inline code). */
static int admin_headers(struct lws *wsi, unsigned char **p, unsigned char *end)
{
	static const char csp[] = "default-src 'self'; img-src 'self' data:; "
				  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

	return lws_add_http_header_by_name(wsi, (const unsigned char *)"content-security-policy:",
					   (const unsigned char *)csp, (int)sizeof(csp) - 1, p,
					   end) ||
	       lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:",
					   (const unsigned char *)"nosniff", 7, p, end) ||
	       lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
					   (const unsigned char *)"no-store", 8, p, end);
}

/* The op label of wsgate_management_requests_total: 0 other, 1 post, 2 get,
 * 3 delete, 4 metrics (metrics_scrape.c). A PUT (channel join) is "other":
 * its enum value follows DELETE and would otherwise land on "metrics". */
static int metrics_op(const struct mgmt_pss *pss)
{
	if (pss->metrics)
		return GW_METRICS_MGMT_OPS - 1;
	if (pss->admin)
		return 0;
	switch (pss->op) {
	case OP_POST:
		return 1;
	case OP_GET:
		return 2;
	case OP_DELETE:
		return 3;
	default:
		return 0;
	}
}

/* libwebsockets' status line has no reason phrase for 204, 429 or 431
 * (and an old one for 413): the line it wrote first in [start, *p) is
 * replaced by the gateway's (gw_http_reason), as rest.c and conn.c write theirs. */
static int own_status_line(unsigned char *start, unsigned char **p, unsigned char *end,
			   int status)
{
	char line[64];
	unsigned char *eol = memchr(start, '\r', (size_t)(*p - start));
	size_t rest;
	int n;

	/* HTTP/2 writes no status line: nothing to replace. The version
	 * libwebsockets chose (the request's) is kept. */
	if (!eol || eol - start < 8 || memcmp(start, "HTTP/1.", 7))
		return 0;
	n = snprintf(line, sizeof(line), "%.8s %d %s", (const char *)start, status,
		     gw_http_reason(status));
	rest = (size_t)(*p - eol);
	if (n < 0 || (size_t)n >= sizeof(line) || (size_t)(end - start) < (size_t)n + rest)
		return -1;
	memmove(start + n, eol, rest);
	memcpy(start, line, (size_t)n);
	*p = start + n + rest;
	return 0;
}

static int write_answer(struct lws *wsi, struct mgmt_pss *pss)
{
	unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start,
		      *end = hdr + sizeof(hdr);
	size_t body_len = pss->admin_file ? pss->admin_file->len : pss->out.len;
	const char *ctype = !body_len ? NULL : pss->ctype ? pss->ctype : "application/json";

	if (gw_vhosts_from_gateway(wsi))
		pss->close_after = 1;
	gw_metrics_mgmt(pss->gw->metrics, metrics_op(pss), pss->status);
	alog_mgmt(pss);
	if (lws_add_http_common_headers(wsi, (unsigned int)pss->status, ctype,
					body_len, &p, end) ||
	    own_status_line(start, &p, end, pss->status) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"x-amzn-RequestId:",
					(const unsigned char *)pss->request_id,
					(int)strlen(pss->request_id), &p, end))
		return -1;
	if (pss->error_type &&
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"x-amzn-ErrorType:",
					(const unsigned char *)pss->error_type,
					(int)strlen(pss->error_type), &p, end))
		return -1;
	if (pss->close_after &&
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
					 (const unsigned char *)"close", 5, &p, end))
		return -1;
	if (pss->admin && admin_headers(wsi, &p, end))
		return -1;
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	if (pss->admin_file) {
		/* Embedded and read-only: copied once, behind LWS_PRE. */
		unsigned char *b = malloc(LWS_PRE + pss->admin_file->len);
		int n;

		if (!b)
			return -1;
		memcpy(b + LWS_PRE, pss->admin_file->data, pss->admin_file->len);
		n = lws_write(wsi, b + LWS_PRE, pss->admin_file->len, LWS_WRITE_HTTP_FINAL);
		free(b);
		pss->admin_file = NULL;
		if (n < 0)
			return -1;
	} else if (pss->out.len) {
		unsigned char *b = malloc(LWS_PRE + pss->out.len);
		int n;

		if (!b)
			return -1;
		memcpy(b + LWS_PRE, pss->out.data, pss->out.len);
		n = lws_write(wsi, b + LWS_PRE, pss->out.len, LWS_WRITE_HTTP_FINAL);
		free(b);
		if (n < 0)
			return -1;
	}
	pss->ready = 0;
	gw_buf_reset(&pss->body);
	gw_buf_reset(&pss->out);
	if (pss->close_after) {
		/* What follows on the socket cannot be framed: hang up once the
		 * answer is out. */
		pss->closing = 1;
		if (!lws_partial_buffered(wsi))
			return -1;
		lws_callback_on_writable(wsi);
		return 0;
	}
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* "/@connections/{id}" or "/{stage}/@connections/{id}"; the URI arrives
 * already percent-decoded by libwebsockets, so len (not a NUL) ends it: a
 * "%00" inside the ID must not cut it short. */
static int parse_path(struct mgmt_pss *pss, const char *uri, size_t len)
{
	static const char conns[] = "/@connections/";
	const char *end = uri + len, *p = uri, *id;
	size_t stage_len = 0;

	pss->stage[0] = '\0';
	pss->id_len = 0;
	if (len && uri[0] == '/' && (size_t)(end - p) > sizeof(conns) - 1 &&
	    memcmp(p, conns, sizeof(conns) - 1)) {
		const char *slash = memchr(uri + 1, '/', len - 1);

		if (!slash)
			return -1;
		stage_len = (size_t)(slash - uri - 1);
		if (!stage_len || stage_len >= sizeof(pss->stage) ||
		    memchr(uri + 1, '\0', stage_len))
			return -1;
		p = slash;
	}
	if ((size_t)(end - p) <= sizeof(conns) - 1 || memcmp(p, conns, sizeof(conns) - 1))
		return -1;
	id = p + sizeof(conns) - 1;
	pss->id_len = (size_t)(end - id);
	if (!pss->id_len || pss->id_len >= sizeof(pss->id) || memchr(id, '/', pss->id_len) ||
	    memchr(id, '\0', pss->id_len))
		return -1;
	memcpy(pss->id, id, pss->id_len);
	pss->id[pss->id_len] = '\0';
	memcpy(pss->stage, uri + 1, stage_len);
	pss->stage[stage_len] = '\0';
	return 0;
}

/* The largest body worth reading for this path: the maxMessageBytes of
 * the stage's API, or the largest of all without a stage. Anything larger
 * gets 413 anyway (gw_conn_post applies the connection's own limit), and
 * reading it would let a few callers hold gigabytes. */
static size_t body_max(const gw_worker_t *gw, const char *stage)
{
	size_t max = 0;

	for (size_t i = 0; i < gw->cfg->n_apis; i++) {
		const gw_api_t *api = &gw->cfg->apis[i];

		if ((!stage[0] || !strcmp(api->stage, stage)) && api->max_message_bytes > max)
			max = api->max_message_bytes;
	}
	/* Also the stage's older APIs, whose connections may still be open. */
	if (stage[0] && gw_config_stage_history(stage) > max)
		max = gw_config_stage_history(stage);
	return max;
}

/* A stage prefix must name a stage this gateway serves. */
static int stage_known(const gw_worker_t *gw, const char *stage)
{
	if (!stage[0])
		return 1;
	for (size_t i = 0; i < gw->cfg->n_apis; i++)
		if (!strcmp(gw->cfg->apis[i].stage, stage))
			return 1;
	/* A stage a reload removed: its connections stay reachable. */
	return gw_config_stage_history(stage) > 0;
}

static enum op request_method(struct lws *wsi)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
		return OP_POST;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
		return OP_GET;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI))
		return OP_DELETE;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI))
		return OP_PUT;
	return OP_NONE;
}

/* An answer that ends the connection (the request's framing is unknown). */
static void answer_and_close(struct mgmt_pss *pss, int status, const char *type,
			     const char *message)
{
	pss->close_after = 1;
	set_answer(pss, status, type, message);
}

static void on_body_deadline(lws_sorted_usec_list_t *sul)
{
	struct mgmt_pss *pss = lws_container_of(sul, struct mgmt_pss, body_timer);

	if (pss->ready || pss->started || pss->closing)
		return;
	pss->started = 1;
	answer_and_close(pss, 408, NULL, "Request Timeout");
}

/* Content-Length as digits only; -1 when absent or anything else. */
static long long content_length(struct lws *wsi, int *present)
{
	char cl[24];
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
	long long v = 0;

	*present = n > 0;
	if (n <= 0 || n >= (int)sizeof(cl) - 1 ||
	    lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) != n)
		return -1;
	for (int i = 0; i < n; i++) {
		if (cl[i] < '0' || cl[i] > '9' || v > (1LL << 40))
			return -1;
		v = v * 10 + (cl[i] - '0');
	}
	return v;
}

/* A POST's body framing: 0 to read a body, 1 when it is empty, -1 when
 * the request has been answered. */
static int check_body(struct lws *wsi, struct mgmt_pss *pss)
{
	int has_cl;
	long long cl = content_length(wsi, &has_cl);

	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING)) {
		/* Chunked bodies are not read; with a Content-Length too, the
		 * request is ambiguous (RFC 9112 6.1). */
		if (has_cl)
			answer_and_close(pss, 400, "BadRequestException", "Bad Request");
		else
			answer_and_close(pss, 411, "LengthRequiredException", "Length Required");
		return -1;
	}
	if (!has_cl) {
		answer_and_close(pss, 411, "LengthRequiredException", "Length Required");
		return -1;
	}
	if (cl < 0) {
		answer_and_close(pss, 400, "BadRequestException", "Bad Request");
		return -1;
	}
	/* A body over the limit is read and dropped, then answered 413 (a
	 * client still sending would not see an early answer); one larger
	 * than any limit could be is refused at once. */
	if ((unsigned long long)cl > BODY_LIMIT) {
		answer_and_close(pss, 413, "PayloadTooLargeException",
				 "Message is larger than the maximum message size");
		return -1;
	}
	if (!cl)
		return 1; /* libwebsockets will not call BODY_COMPLETION */
	lws_sul_schedule(lws_get_context(wsi), 0, &pss->body_timer, on_body_deadline,
			 (lws_usec_t)BODY_DEADLINE_S * LWS_US_PER_SEC);
	return 0;
}

/* GET /metrics (metrics.h): with managementAuth, signed by a key of any
 * API, as any management request. */
static void serve_metrics(struct lws *wsi, struct mgmt_pss *pss, const char *uri, size_t len)
{
	pss->metrics = 1;
	pss->close_after = 1; /* as any request without a body: see on_request */
	pss->started = 1;
	if (gw_config_mgmt_auth(pss->gw->cfg) && !gw_metrics_no_auth &&
	    (check_head(wsi, pss, uri, len) || check_signature(pss, NULL)))
		return;
	set_answer(pss, 200, NULL, NULL);
	gw_metrics_render(pss->gw, &pss->out);
	pss->ctype = "text/plain; version=0.0.4; charset=utf-8";
}

/* --- the admin page (admin.h) ---
 *
 *   GET /admin/...   the page's files: no authentication, no secret in them
 *   GET /@apis       {"managementAuth":bool,"apis":[{name, stage, routes...}]}
 * The page calls the management API itself, signed with the key its user
 * types in when managementAuth is configured; /@apis then lists the APIs
 * of that key only. Both answers end the connection, as any request
 * without a body (see on_request). */

/* The page's files, generated from admin/ by cmake/embed-admin.cmake:
 * arrays and the table admin_files[]. Builds without them (the fuzz
 * harnesses) answer 404. */
#if __has_include("admin_files.inc")
#include "admin_files.inc"
#else
static const gw_admin_file_t admin_files[1];
#endif

/* The file at path, or NULL; "/admin" and "/admin/" are index.html. */
static const gw_admin_file_t *admin_file(const char *path, size_t len)
{
	static const char index_path[] = "/admin/index.html";

	if ((len == 6 && !memcmp(path, "/admin", 6)) ||
	    (len == 7 && !memcmp(path, "/admin/", 7))) {
		path = index_path;
		len = sizeof(index_path) - 1;
	}
	for (size_t i = 0; i < sizeof(admin_files) / sizeof(admin_files[0]); i++)
		if (admin_files[i].path && strlen(admin_files[i].path) == len &&
		    !memcmp(admin_files[i].path, path, len))
			return &admin_files[i];
	return NULL;
}

/* "/admin", "/admin/" and "/admin/{file}", but not "/admin/@connections"
 * and the like: a stage may be named "admin". */
static int is_admin_path(const char *uri, size_t len)
{
	return len >= 6 && !memcmp(uri, "/admin", 6) &&
	       (len == 6 || (uri[6] == '/' && (len == 7 || uri[7] != '@')));
}

static void serve_admin_file(struct mgmt_pss *pss, const char *uri, size_t len)
{
	const gw_admin_file_t *f = admin_file(uri, len);

	pss->admin = 1;
	pss->close_after = 1;
	pss->started = 1;
	pss->id_len = 0;
	pss->stage[0] = '\0';
	if (pss->op != OP_GET) {
		set_answer(pss, 405, "MethodNotAllowedException", "Method Not Allowed");
		return;
	}
	if (!f) {
		set_answer(pss, 404, "NotFoundException", "Not Found");
		return;
	}
	set_answer(pss, 200, NULL, NULL);
	pss->admin_file = f;
	pss->ctype = f->type;
}

static const char *const integ_types[] = { [GW_INTEG_AWS_PROXY] = "AWS_PROXY",
					   [GW_INTEG_HTTP_PROXY] = "HTTP_PROXY",
					   [GW_INTEG_MOCK] = "MOCK" };

static void append_route(gw_buf_t *o, const gw_route_t *r, const char *method)
{
	gw_buf_append_str(o, "{\"routeKey\":");
	gw_buf_append_json_str(o, r->key, r->key_len);
	if (method) {
		gw_buf_append_str(o, ",\"method\":");
		gw_buf_append_json_str(o, method, strlen(method));
	}
	if (r->integration && r->integration->name) {
		/* The integration's name and type; its URI may hold secrets. */
		gw_buf_append_str(o, ",\"integration\":");
		gw_buf_append_json_str(o, r->integration->name, strlen(r->integration->name));
		gw_buf_append_str(o, ",\"integrationType\":\"");
		gw_buf_append_str(o, integ_types[r->integration->type]);
		gw_buf_append_char(o, '"');
	}
	gw_buf_append_char(o, '}');
}

static void append_api(gw_buf_t *o, const gw_api_t *api)
{
	gw_buf_append_str(o, "{\"name\":");
	gw_buf_append_json_str(o, api->name, strlen(api->name));
	gw_buf_append_str(o, ",\"stage\":");
	gw_buf_append_json_str(o, api->stage, strlen(api->stage));
	gw_buf_append_str(o, ",\"basePath\":");
	gw_buf_append_json_str(o, api->base_path ? api->base_path : "",
			       api->base_path ? strlen(api->base_path) : 0);
	gw_buf_append_str(o, ",\"routeSelectionExpression\":");
	if (api->route_selection_expression)
		gw_buf_append_json_str(o, api->route_selection_expression,
				       strlen(api->route_selection_expression));
	else
		gw_buf_append_str(o, "null");
	gw_buf_append_str(o, ",\"routes\":[");
	for (size_t i = 0; i < api->n_routes; i++) {
		if (i)
			gw_buf_append_char(o, ',');
		append_route(o, &api->routes[i], NULL);
	}
	gw_buf_append_str(o, "],\"restRoutes\":[");
	for (size_t i = 0; i < api->n_rest_routes; i++) {
		if (i)
			gw_buf_append_char(o, ',');
		append_route(o, &api->rest_routes[i].route, api->rest_routes[i].method);
	}
	gw_buf_append_str(o, "]}");
}

static void serve_apis(struct lws *wsi, struct mgmt_pss *pss, const char *uri, size_t len)
{
	const gw_config_t *cfg = pss->gw->cfg;
	int auth = gw_config_mgmt_auth(cfg), first = 1;

	pss->admin = 1;
	pss->close_after = 1;
	pss->started = 1;
	pss->id_len = 0;
	pss->stage[0] = '\0';
	if (auth && (check_head(wsi, pss, uri, len) || check_signature(pss, NULL)))
		return;
	set_answer(pss, 200, NULL, NULL);
	gw_buf_append_str(&pss->out, auth ? "{\"managementAuth\":true,\"apis\":[" :
					    "{\"managementAuth\":false,\"apis\":[");
	for (size_t i = 0; i < cfg->n_apis; i++) {
		/* A key sees the APIs it is a key of, as it reaches their connections. */
		if (auth && !gw_config_mgmt_key(&cfg->apis[i], pss->sig.access_key))
			continue;
		if (!first)
			gw_buf_append_char(&pss->out, ',');
		first = 0;
		append_api(&pss->out, &cfg->apis[i]);
	}
	gw_buf_append_str(&pss->out, "]}");
}

static void on_request(struct lws *wsi, struct mgmt_pss *pss, const char *uri, size_t len)
{
	int empty = 0;

	pss->gw = lws_context_user(lws_get_context(wsi));
	pss->wsi = wsi;
	gw_buf_reset(&pss->body);
	pss->too_large = 0;
	pss->started = 0;
	pss->rx_held = 0;
	pss->bodies_done = 0;
	pss->close_after = 0;
	pss->ctype = NULL;
	pss->metrics = 0;
	pss->admin = 0;
	pss->admin_file = NULL;
	gw_worker_request_id(pss->gw, pss->request_id);
	pss->op = request_method(wsi);
	if (pss->op == OP_GET && len == 8 && !memcmp(uri, "/metrics", 8)) {
		serve_metrics(wsi, pss, uri, len);
		return;
	}
	if (is_admin_path(uri, len)) {
		serve_admin_file(pss, uri, len);
		return;
	}
	if (pss->op == OP_GET && len == 6 && !memcmp(uri, "/@apis", 6)) {
		serve_apis(wsi, pss, uri, len);
		return;
	}
	pss->route = parse_path(pss, uri, len) ? parse_ext_path(pss, uri, len) : R_CONN;
	pss->bad_path = pss->route == R_NONE || !stage_known(pss->gw, pss->stage);
	pss->body_max = pss->bad_path ? 0 : body_max(pss->gw, pss->stage);
	if (pss->route == R_CONNS && pss->body_max)
		pss->body_max = pss->body_max * 2 + 65536; /* JSON around the data */
	if (pss->op == OP_POST && (empty = check_body(wsi, pss)) < 0)
		return;
	/* Answers given before a body is read end the connection: the body
	 * must not be read as the next request. */
	if (pss->bad_path) {
		lws_sul_cancel(&pss->body_timer);
		answer_and_close(pss, 403, "ForbiddenException", "Forbidden");
		return;
	}
	if (pss->op == OP_NONE || !method_allowed(pss)) {
		lws_sul_cancel(&pss->body_timer);
		answer_and_close(pss, 405, "MethodNotAllowedException", "Method Not Allowed");
		return;
	}
	if (gw_config_mgmt_auth(pss->gw->cfg) && check_head(wsi, pss, uri, len)) {
		lws_sul_cancel(&pss->body_timer);
		return;
	}
	if (pss->op == OP_POST && !empty)
		return; /* started once the body is complete */
	/* Without a body, libwebsockets gives no sign of requests pipelined
	 * behind this one, and 4.1 would feed a pipelined POST the wrong body
	 * bytes: such an answer ends the connection (a POST with a body is
	 * watched in BODY_COMPLETION instead and keeps it alive). While the
	 * answer waits (a parked POST, another node) nothing more is read:
	 * bytes already read behind the head would be offered again at every
	 * turn of the loop, a busy loop for as long as it waits. */
	pss->close_after = 1;
	start(pss);
	if (!pss->ready) {
		pss->rx_held = 1;
		lws_rx_flow_control(wsi, 0);
	}
}

/* Answers an upgrade request 400 and hangs up (the ah is still bound). */
static int refuse_upgrade(struct lws *wsi)
{
	static const char body[] = "{\"message\":\"Bad Request\"}";
	unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
		      *end = buf + sizeof(buf);
	char rid[24];

	gw_worker_request_id(lws_context_user(lws_get_context(wsi)), rid);
	if (lws_add_http_common_headers(wsi, 400, "application/json", sizeof(body) - 1, &p,
					end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"x-amzn-RequestId:",
					(const unsigned char *)rid, (int)strlen(rid), &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
					 (const unsigned char *)"close", 5, &p, end) ||
	    lws_finalize_http_header(wsi, &p, end))
		return -1;
	if ((size_t)(end - p) < sizeof(body))
		return -1;
	memcpy(p, body, sizeof(body) - 1);
	p += sizeof(body) - 1;
	(void)!lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL);
	return -1;
}

static int mgmt_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
			 void *in, size_t len)
{
	struct mgmt_pss *pss = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		on_request(wsi, pss, in, len);
		return 0;

	case LWS_CALLBACK_HTTP_BODY:
		if (pss->closing || pss->ready)
			return 0; /* answered already: the rest is dropped */
		if (pss->body.len + len > pss->body_max)
			pss->too_large = 1;
		else if (!pss->too_large)
			gw_buf_append(&pss->body, in, len);
		return 0;

	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		lws_sul_cancel(&pss->body_timer);
		if (pss->closing)
			return 0;
		if (pss->bodies_done++) {
			/* Called again: requests are pipelined behind this one.
			 * libwebsockets 4.1 would feed the next one the wrong body
			 * bytes, and until this answer is written it calls here in
			 * a busy loop without offering WRITEABLE. So: answer now
			 * if the answer is known, and end the connection either
			 * way (the operation itself still runs). */
			pss->close_after = 1;
			return pss->ready ? write_answer(wsi, pss) : -1;
		}
		if (pss->op == OP_POST && !pss->bad_path && !pss->ready)
			start(pss);
		return 0;

	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		/* WebSocket or h2c: the management API is plain HTTP/1.1. */
		return refuse_upgrade(wsi);

	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (pss && pss->closing)
			return -1;
		if (!pss || !pss->ready)
			return 0;
		return write_answer(wsi, pss);

	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (pss) {
			lws_sul_cancel(&pss->body_timer);
			/* An operation still running will find no one to answer. */
			if (!lws_dll2_is_detached(&pss->pending))
				lws_dll2_remove(&pss->pending);
			gw_buf_dispose(&pss->body);
			gw_buf_dispose(&pss->out);
			gw_buf_dispose(&pss->fan_out);
			gw_buf_dispose(&pss->fan_failed);
			gw_sigv4_dispose(&pss->sig);
		}
		return 0;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols gw_mgmt_protocol = {
	"gw-mgmt", mgmt_callback, sizeof(struct mgmt_pss), 4096, 0, NULL, 0
};
